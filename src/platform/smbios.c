/* SMBIOS 2.8 structures (DMTF DSP0134) for the machine of machine_info.h.
 *
 * Handle 0 belongs to type 0 whether or not we build it: firmware that
 * adds its own type 0 gives it handle 0, so every other structure is
 * numbered from 1. */
#include "platform/smbios.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "platform/layout.h"
#include "util.h"

#define VENDOR "kvmpc"
#define PRODUCT "kvmpc (i440FX + PIIX)"
#define FAMILY "Virtual Machine"
/* Type 0 release date: MM/DD/YYYY, moved on with each release. */
#define BIOS_RELEASE_DATE "11/25/2026"

#define MAX_FORMATTED 0x30
#define MAX_STRINGS 8
#define HANDLE_TYPE0 0
#define HANDLE_NONE 0xFFFF      /* "not provided" */
#define HANDLE_NO_ERROR 0xFFFE  /* memory error information not provided */

/* One structure being filled: formatted area, then its strings. */
struct smbios_struct {
    uint8_t f[MAX_FORMATTED];
    const char *str[MAX_STRINGS];
    unsigned nstr;
};

/* The growing structure table. */
struct table {
    uint8_t *buf;
    size_t len, cap;
    uint16_t next_handle;
    bool failed;
};

static void init_struct(struct smbios_struct *s, uint8_t type, uint8_t len)
{
    memset(s, 0, sizeof(*s));
    s->f[0] = type;
    s->f[1] = len;
}

/* Registers a string and returns its number for a string field; an
 * absent or empty string is number 0. */
static uint8_t add_string(struct smbios_struct *s, const char *str)
{
    if (!str || !*str || s->nstr == MAX_STRINGS)
        return 0;
    s->str[s->nstr++] = str;
    return (uint8_t)s->nstr;
}

static void table_append(struct table *t, const void *data, size_t len)
{
    if (t->failed)
        return;
    if (t->len + len > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + len)
            cap *= 2;
        uint8_t *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, data, len);
    t->len += len;
}

/* Appends s with the given handle: formatted area, each string with its
 * NUL, then the terminating NUL (two NULs when there are no strings). */
static uint16_t emit_handle(struct table *t, struct smbios_struct *s,
                            uint16_t handle)
{
    static const uint8_t nul[2];
    put_le16(s->f + 2, handle);
    table_append(t, s->f, s->f[1]);
    for (unsigned i = 0; i < s->nstr; i++)
        table_append(t, s->str[i], strlen(s->str[i]) + 1);
    table_append(t, nul, s->nstr ? 1 : 2);
    return handle;
}

static uint16_t emit(struct table *t, struct smbios_struct *s)
{
    return emit_handle(t, s, t->next_handle++);
}

/* ---- Type 0: BIOS information -------------------------------------- */

#define T0_LEN 0x18
#define T0_CHAR_ISA (1ULL << 4)
#define T0_CHAR_PCI (1ULL << 7)
#define T0_EXT1_ACPI 0x01
#define T0_EXT2_TARGETED_CONTENT 0x04
#define T0_EXT2_VIRTUAL_MACHINE 0x10
#define T0_ROM_UNIT (64 * KiB)
#define T0_NO_EC 0xFF

static void type0(struct table *t)
{
    unsigned major = 0, minor = 0;
    if (sscanf(KVMPC_VERSION, "%u.%u", &major, &minor) < 1)
        major = 0;
    struct smbios_struct s;
    init_struct(&s, 0, T0_LEN);
    s.f[0x04] = add_string(&s, VENDOR);
    s.f[0x05] = add_string(&s, KVMPC_VERSION);
    put_le16(s.f + 0x06, (uint16_t)(LAYOUT_BIOS_AREA_START >> 4));
    s.f[0x08] = add_string(&s, BIOS_RELEASE_DATE);
    s.f[0x09] = (uint8_t)((LAYOUT_BIOS_LOW_END - LAYOUT_BIOS_AREA_START) /
                              T0_ROM_UNIT - 1);
    put_le64(s.f + 0x0A, T0_CHAR_ISA | T0_CHAR_PCI);
    s.f[0x12] = T0_EXT1_ACPI;
    s.f[0x13] = T0_EXT2_TARGETED_CONTENT | T0_EXT2_VIRTUAL_MACHINE;
    s.f[0x14] = (uint8_t)major;
    s.f[0x15] = (uint8_t)minor;
    s.f[0x16] = T0_NO_EC;
    s.f[0x17] = T0_NO_EC;
    emit_handle(t, &s, HANDLE_TYPE0);
}

/* ---- Type 1: system information ------------------------------------- */

#define T1_LEN 0x1B
#define T1_WAKE_POWER_SWITCH 0x06

/* SMBIOS 2.6+ stores the first three UUID fields little-endian; uuid is
 * in RFC 4122 (printed) order. */
static void put_uuid(uint8_t *p, const uint8_t uuid[16])
{
    static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6,
                                      8, 9, 10, 11, 12, 13, 14, 15};
    for (unsigned i = 0; i < 16; i++)
        p[i] = uuid[order[i]];
}

static void type1(struct table *t, const struct machine_info *mi)
{
    struct smbios_struct s;
    init_struct(&s, 1, T1_LEN);
    s.f[0x04] = add_string(&s, VENDOR);
    s.f[0x05] = add_string(&s, PRODUCT);
    s.f[0x06] = add_string(&s, KVMPC_VERSION);
    s.f[0x07] = add_string(&s, mi->name); /* serial number */
    put_uuid(s.f + 0x08, mi->uuid);
    s.f[0x18] = T1_WAKE_POWER_SWITCH;
    s.f[0x1A] = add_string(&s, FAMILY);
    emit(t, &s);
}

/* ---- Type 3: chassis -------------------------------------------------- */

#define T3_LEN 0x16 /* 2.7: SKU string after an empty element list */
#define T3_TYPE_OTHER 0x01
#define T3_STATE_SAFE 0x03
#define T3_SECURITY_NONE 0x03

static void type3(struct table *t)
{
    struct smbios_struct s;
    init_struct(&s, 3, T3_LEN);
    s.f[0x04] = add_string(&s, VENDOR);
    s.f[0x05] = T3_TYPE_OTHER;
    s.f[0x09] = T3_STATE_SAFE; /* boot-up */
    s.f[0x0A] = T3_STATE_SAFE; /* power supply */
    s.f[0x0B] = T3_STATE_SAFE; /* thermal */
    s.f[0x0C] = T3_SECURITY_NONE;
    emit(t, &s);
}

/* ---- Type 4: processor (one socket) ------------------------------------ */

#define T4_LEN 0x2A /* 2.6: Processor Family 2 */
#define T4_CENTRAL_PROCESSOR 0x03
#define T4_FAMILY_OTHER 0x01
#define T4_STATUS_POPULATED_ENABLED 0x41
#define T4_UPGRADE_OTHER 0x01
#define T4_CHAR_64BIT 0x04
#define T4_CHAR_MULTI_CORE 0x08

static void type4(struct table *t, unsigned socket, unsigned cores)
{
    char name[16];
    snprintf(name, sizeof(name), "CPU %u", socket % 1000);
    uint8_t count = (uint8_t)MIN(cores, 0xFFu); /* 0xFF: see core count 2 */
    struct smbios_struct s;
    init_struct(&s, 4, T4_LEN);
    s.f[0x04] = add_string(&s, name);
    s.f[0x05] = T4_CENTRAL_PROCESSOR;
    s.f[0x06] = T4_FAMILY_OTHER;
    s.f[0x07] = add_string(&s, VENDOR);
    s.f[0x18] = T4_STATUS_POPULATED_ENABLED;
    s.f[0x19] = T4_UPGRADE_OTHER;
    put_le16(s.f + 0x1A, HANDLE_NONE); /* L1, L2, L3 cache */
    put_le16(s.f + 0x1C, HANDLE_NONE);
    put_le16(s.f + 0x1E, HANDLE_NONE);
    s.f[0x23] = count; /* cores */
    s.f[0x24] = count; /* cores enabled */
    s.f[0x25] = count; /* threads: one per core */
    put_le16(s.f + 0x26, T4_CHAR_64BIT | (cores > 1 ? T4_CHAR_MULTI_CORE : 0));
    put_le16(s.f + 0x28, T4_FAMILY_OTHER);
    emit(t, &s);
}

/* ---- Types 16, 17, 19: memory ------------------------------------------ */

#define T16_LEN 0x17
#define T16_LOCATION_OTHER 0x01
#define T16_USE_SYSTEM_MEMORY 0x03
#define T16_ECC_NONE 0x03
#define T16_CAPACITY_EXTENDED 0x80000000U /* KiB field overflows */

static uint16_t type16(struct table *t, uint64_t ram)
{
    uint64_t kib = ram / KiB;
    struct smbios_struct s;
    init_struct(&s, 16, T16_LEN);
    s.f[0x04] = T16_LOCATION_OTHER;
    s.f[0x05] = T16_USE_SYSTEM_MEMORY;
    s.f[0x06] = T16_ECC_NONE;
    if (kib < T16_CAPACITY_EXTENDED) {
        put_le32(s.f + 0x07, (uint32_t)kib);
    } else {
        put_le32(s.f + 0x07, T16_CAPACITY_EXTENDED);
        put_le64(s.f + 0x0F, ram);
    }
    put_le16(s.f + 0x0B, HANDLE_NO_ERROR);
    put_le16(s.f + 0x0D, 1); /* memory devices */
    return emit(t, &s);
}

#define T17_LEN 0x28
#define T17_WIDTH_UNKNOWN 0xFFFF
#define T17_SIZE_EXTENDED 0x7FFF /* MiB in the extended size field */
#define T17_FORM_DIMM 0x09
#define T17_TYPE_RAM 0x07
#define T17_DETAIL_OTHER 0x0002

static void type17(struct table *t, uint16_t array, uint64_t ram)
{
    uint64_t mib = (ram + MiB - 1) / MiB;
    struct smbios_struct s;
    init_struct(&s, 17, T17_LEN);
    put_le16(s.f + 0x04, array);
    put_le16(s.f + 0x06, HANDLE_NO_ERROR);
    put_le16(s.f + 0x08, T17_WIDTH_UNKNOWN);
    put_le16(s.f + 0x0A, T17_WIDTH_UNKNOWN);
    if (mib < T17_SIZE_EXTENDED) {
        put_le16(s.f + 0x0C, (uint16_t)mib);
    } else {
        put_le16(s.f + 0x0C, T17_SIZE_EXTENDED);
        put_le32(s.f + 0x1C, (uint32_t)MIN(mib, (uint64_t)INT32_MAX));
    }
    s.f[0x0E] = T17_FORM_DIMM;
    s.f[0x10] = add_string(&s, "DIMM 0");
    s.f[0x12] = T17_TYPE_RAM;
    put_le16(s.f + 0x13, T17_DETAIL_OTHER);
    s.f[0x17] = add_string(&s, VENDOR);
    emit(t, &s);
}

#define T19_LEN 0x1F
#define T19_ADDR_EXTENDED 0xFFFFFFFFU

/* RAM [start, start + size) as seen by the processor. */
static void type19(struct table *t, uint16_t array, uint64_t start,
                   uint64_t size)
{
    uint64_t end_kib = (start + size) / KiB - 1; /* inclusive */
    struct smbios_struct s;
    init_struct(&s, 19, T19_LEN);
    if (end_kib < T19_ADDR_EXTENDED) {
        put_le32(s.f + 0x04, (uint32_t)(start / KiB));
        put_le32(s.f + 0x08, (uint32_t)end_kib);
    } else {
        put_le32(s.f + 0x04, T19_ADDR_EXTENDED);
        put_le32(s.f + 0x08, T19_ADDR_EXTENDED);
        put_le64(s.f + 0x0F, start);
        put_le64(s.f + 0x17, start + size - 1);
    }
    put_le16(s.f + 0x0C, array);
    s.f[0x0E] = 1; /* partition width: one device */
    emit(t, &s);
}

/* ---- Types 32 and 127 -------------------------------------------------- */

#define T32_LEN 0x0B
#define T127_LEN 0x04

static void type32(struct table *t)
{
    struct smbios_struct s;
    init_struct(&s, 32, T32_LEN); /* boot status 0: no errors */
    emit(t, &s);
}

static void type127(struct table *t)
{
    struct smbios_struct s;
    init_struct(&s, 127, T127_LEN);
    emit(t, &s);
}

/* ---- Entry point -------------------------------------------------------- */

#define EP_CHECKSUM 0x04
#define EP_MAX_STRUCT 0x08
#define EP_INTERMEDIATE 0x10
#define EP_INTERMEDIATE_LEN 15
#define EP_INT_CHECKSUM 0x15
#define EP_TABLE_LEN 0x16
#define EP_TABLE_ADDR 0x18
#define EP_COUNT 0x1C
#define EP_BCD_REVISION 0x1E

/* Walks the structure table: count and largest structure (formatted area
 * plus strings). Returns -1 on a malformed table. */
static int walk(const uint8_t *p, size_t len, unsigned *count, size_t *max)
{
    *count = 0;
    *max = 0;
    for (size_t off = 0; off < len;) {
        if (len - off < 4 || p[off + 1] < 4 || p[off + 1] > len - off)
            return -1;
        size_t end = off + p[off + 1];
        while (end + 1 < len && (p[end] || p[end + 1]))
            end++;
        if (end + 1 >= len)
            return -1;
        end += 2; /* the double NUL */
        *max = MAX(*max, end - off);
        (*count)++;
        off = end;
    }
    return 0;
}

static void fill_anchor(uint8_t *a, const uint8_t *tables, size_t len)
{
    unsigned count;
    size_t max;
    memset(a, 0, SMBIOS_ANCHOR_LEN);
    memcpy(a, "_SM_", 4);
    a[0x05] = SMBIOS_ANCHOR_LEN;
    a[0x06] = 2; /* version 2.8 */
    a[0x07] = 8;
    memcpy(a + EP_INTERMEDIATE, "_DMI_", 5);
    put_le16(a + EP_TABLE_LEN, (uint16_t)len);
    a[EP_BCD_REVISION] = 0x28;
    if (walk(tables, len, &count, &max) == 0) {
        put_le16(a + EP_MAX_STRUCT, (uint16_t)MIN(max, (size_t)UINT16_MAX));
        put_le16(a + EP_COUNT, (uint16_t)count);
    }
}

int smbios_build(const struct machine_info *mi, bool include_bios,
                 struct smbios_tables *out)
{
    struct table t = {.next_handle = HANDLE_TYPE0 + 1};
    uint64_t low = layout_lowmem(mi->ram_size);
    uint64_t high = layout_highmem(mi->ram_size);

    memset(out, 0, sizeof(*out));
    if (include_bios)
        type0(&t);
    type1(&t, mi);
    type3(&t);
    type4(&t, 0, mi->ncpus);
    uint16_t array = type16(&t, mi->ram_size);
    type17(&t, array, mi->ram_size);
    type19(&t, array, 0, low);
    if (high)
        type19(&t, array, LAYOUT_MEM_ABOVE_4G, high);
    type32(&t);
    type127(&t);
    if (t.failed || t.len > UINT16_MAX) {
        free(t.buf);
        return -1;
    }
    out->tables = t.buf;
    out->len = t.len;
    fill_anchor(out->anchor, t.buf, t.len);
    return 0;
}

void smbios_free(struct smbios_tables *t)
{
    free(t->tables);
    t->tables = NULL;
    t->len = 0;
}

void smbios_finish_anchor(const struct smbios_tables *t, uint32_t table_addr,
                          uint8_t anchor[SMBIOS_ANCHOR_LEN])
{
    fill_anchor(anchor, t->tables, t->len);
    put_le32(anchor + EP_TABLE_ADDR, table_addr);
    /* The intermediate checksum lies inside the range of the outer one. */
    anchor[EP_INT_CHECKSUM] =
        checksum8(anchor + EP_INTERMEDIATE, EP_INTERMEDIATE_LEN);
    anchor[EP_CHECKSUM] = checksum8(anchor, SMBIOS_ANCHOR_LEN);
}
