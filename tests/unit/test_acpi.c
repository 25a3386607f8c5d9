/* ACPI tables: built, linked at the direct-boot addresses like the VMM
 * does, checked field by field, and round-tripped through iasl and
 * acpiexec. Expected ports, addresses and IRQs are written out from the
 * platform contract on purpose: a layout.h change that breaks the
 * contract must fail here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "platform/acpi.h"
#include "platform/layout.h"
#include "tools.h"
#include "util.h"

#define HDR_LEN 36

struct linked {
    struct table_loader l;
    uint64_t addr[LOADER_MAX_BLOBS];
    uint8_t *img[LOADER_MAX_BLOBS];
    unsigned rsdp, tables; /* blob indices */
};

/* Guest addresses of the tables, found by following the pointers. */
struct found {
    uint64_t rsdt, xsdt, fadt, madt, facs, dsdt;
};

static unsigned blob_index(const struct table_loader *l, const char *name)
{
    for (unsigned i = 0; i < l->blob_count; i++)
        if (!strcmp(l->blobs[i].name, name))
            return i;
    fail_msg("no blob %s", name);
    return 0;
}

static void build(struct linked *k, unsigned ncpus, uint64_t ram)
{
    struct machine_info mi = {.ncpus = ncpus, .ram_size = ram};
    loader_init(&k->l);
    assert_int_equal(acpi_build(&mi, &k->l), 0);
    k->rsdp = blob_index(&k->l, ACPI_RSDP_FILE);
    k->tables = blob_index(&k->l, ACPI_TABLES_FILE);
    assert_int_equal(k->l.blob_count, 2);
    assert_int_equal(k->l.blobs[k->rsdp].zone, LOADER_ZONE_FSEG);
    assert_int_equal(k->l.blobs[k->rsdp].align, 16);
    assert_int_equal(k->l.blobs[k->tables].zone, LOADER_ZONE_HIGH);
    assert_int_equal(k->l.blobs[k->tables].align, 64);
    assert_int_equal(acpi_direct_addresses(&k->l, k->addr), 0);
    assert_int_equal(k->addr[k->rsdp], LAYOUT_ACPI_START);
    assert_int_equal(loader_link(&k->l, k->addr, k->img), 0);
}

static void release(struct linked *k)
{
    for (unsigned i = 0; i < k->l.blob_count; i++)
        free(k->img[i]);
    loader_free(&k->l);
}

/* The linked bytes at guest address gpa; all len of them lie in a blob. */
static const uint8_t *at(const struct linked *k, uint64_t gpa, size_t len)
{
    for (unsigned i = 0; i < k->l.blob_count; i++) {
        uint64_t a = k->addr[i];
        if (gpa >= a && gpa + len <= a + k->l.blobs[i].len)
            return k->img[i] + (gpa - a);
    }
    fail_msg("0x%" PRIx64 "+%zu is outside every table blob", gpa, len);
    return NULL;
}

static uint8_t sum8(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

/* A table with signature sig at gpa, its whole length inside a blob and
 * its checksum right. */
static const uint8_t *table(const struct linked *k, uint64_t gpa,
                            const char *sig)
{
    const uint8_t *h = at(k, gpa, HDR_LEN);
    assert_memory_equal(h, sig, 4);
    uint32_t len = get_le32(h + 4);
    assert_true(len >= HDR_LEN);
    at(k, gpa, len);
    assert_int_equal(sum8(h, len), 0);
    return h;
}

/* ---- Binary checks ------------------------------------------------------- */

static void check_rsdp(const struct linked *k, struct found *f)
{
    const uint8_t *p = at(k, LAYOUT_ACPI_START, 36);
    assert_memory_equal(p, "RSD PTR ", 8);
    assert_int_equal(sum8(p, 20), 0);
    assert_int_equal(p[15], 2);
    assert_int_equal(get_le32(p + 20), 36);
    assert_int_equal(sum8(p, 36), 0);
    f->rsdt = get_le32(p + 16);
    f->xsdt = get_le64(p + 24);
}

/* RSDT and XSDT list the same tables: one FADT, one MADT. */
static void check_sdts(const struct linked *k, struct found *f)
{
    const uint8_t *r = table(k, f->rsdt, "RSDT");
    const uint8_t *x = table(k, f->xsdt, "XSDT");
    unsigned n = (get_le32(r + 4) - HDR_LEN) / 4;
    assert_int_equal(n, 2);
    assert_int_equal(get_le32(x + 4), HDR_LEN + 8 * n);
    f->fadt = f->madt = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t a = get_le32(r + HDR_LEN + 4 * i);
        assert_int_equal(get_le64(x + HDR_LEN + 8 * i), a);
        const uint8_t *t = at(k, a, HDR_LEN);
        if (!memcmp(t, "FACP", 4) && !f->fadt)
            f->fadt = a;
        else if (!memcmp(t, "APIC", 4) && !f->madt)
            f->madt = a;
        else
            fail_msg("unexpected or repeated table %.4s", (const char *)t);
    }
    assert_true(f->fadt && f->madt);
}

static void check_fadt(const struct linked *k, struct found *f)
{
    const uint8_t *t = table(k, f->fadt, "FACP");
    assert_int_equal(get_le32(t + 4), 244);
    assert_true(t[8] >= 3);
    f->facs = get_le32(t + 36);
    f->dsdt = get_le32(t + 40);
    assert_int_equal(get_le64(t + 132), 0); /* X_FIRMWARE_CTRL */
    assert_int_equal(get_le64(t + 140), f->dsdt);
    /* FACS first in the tables blob, 64-byte aligned */
    assert_int_equal(f->facs, k->addr[k->tables]);
    assert_int_equal(f->facs % 64, 0);
    const uint8_t *facs = at(k, f->facs, 64);
    assert_memory_equal(facs, "FACS", 4);
    assert_int_equal(get_le32(facs + 4), 64);
    table(k, f->dsdt, "DSDT");

    assert_int_equal(get_le16(t + 46), 9);
    assert_int_equal(get_le32(t + 48), 0); /* SMI_CMD: no SMM */
    assert_int_equal(get_le32(t + 56), 0x600);
    assert_int_equal(get_le32(t + 64), 0x604);
    assert_int_equal(get_le32(t + 76), 0x608);
    assert_int_equal(get_le32(t + 80), 0x620);
    assert_int_equal(t[88], 4);
    assert_int_equal(t[89], 2);
    assert_int_equal(t[91], 4);
    assert_int_equal(t[92], 4);
    assert_int_equal(t[108], 0x32);            /* century */
    assert_int_equal(get_le16(t + 109), 0x07); /* legacy, 8042, no VGA */
    assert_true(get_le32(t + 112) & (1U << 10)); /* RESET_REG_SUP */
    assert_int_equal(t[116], 1);                 /* system I/O */
    assert_int_equal(t[117], 8);
    assert_int_equal(get_le64(t + 120), 0xCF9);
    assert_int_equal(t[128], 0x06);
    /* X_PM_TMR_BLK repeats PM_TMR_BLK */
    assert_int_equal(t[208], 1);
    assert_int_equal(t[209], 32);
    assert_int_equal(get_le64(t + 212), 0x608);
}

struct madt_counts {
    unsigned lapic, x2apic, ioapic, iso, nmi, x2nmi;
};

static void check_madt_entry(const uint8_t *e, struct madt_counts *c)
{
    static const uint8_t level[] = {5, 9, 10, 11};
    switch (e[0]) {
    case 0: /* vCPU i: UID i, APIC ID i, enabled */
        assert_int_equal(e[1], 8);
        assert_int_equal(e[2], c->lapic);
        assert_int_equal(e[3], c->lapic);
        assert_int_equal(get_le32(e + 4), 1);
        c->lapic++;
        break;
    case 9:
        assert_int_equal(e[1], 16);
        assert_int_equal(get_le32(e + 4), 255 + c->x2apic);
        assert_int_equal(get_le32(e + 8), 1);
        assert_int_equal(get_le32(e + 12), 255 + c->x2apic);
        c->x2apic++;
        break;
    case 1:
        assert_int_equal(e[2], 0);
        assert_int_equal(get_le32(e + 4), 0xFEC00000);
        assert_int_equal(get_le32(e + 8), 0);
        c->ioapic++;
        break;
    case 2: /* the level IRQs, identity mapped: no IRQ0 -> GSI2 */
        assert_int_equal(e[2], 0);
        assert_int_equal(e[3], level[c->iso]);
        assert_int_equal(get_le32(e + 4), level[c->iso]);
        assert_int_equal(get_le16(e + 8), 0x000D);
        c->iso++;
        break;
    case 4:
        assert_int_equal(e[2], 0xFF);
        assert_int_equal(e[5], 1); /* LINT1 */
        c->nmi++;
        break;
    case 10:
        assert_int_equal(get_le32(e + 4), 0xFFFFFFFF);
        assert_int_equal(e[8], 1);
        c->x2nmi++;
        break;
    default:
        fail_msg("unexpected MADT entry type %u", e[0]);
    }
}

static void check_madt(const struct linked *k, const struct found *f,
                       unsigned ncpus)
{
    const uint8_t *t = table(k, f->madt, "APIC");
    uint32_t len = get_le32(t + 4);
    assert_int_equal(get_le32(t + 36), 0xFEE00000);
    assert_int_equal(get_le32(t + 40), 1); /* PCAT_COMPAT */
    struct madt_counts c = {0};
    for (uint32_t off = 44; off < len;) {
        assert_true(off + 2 <= len && t[off + 1] >= 2 &&
                    off + t[off + 1] <= len);
        check_madt_entry(t + off, &c);
        off += t[off + 1];
    }
    unsigned xapic = ncpus < 255 ? ncpus : 255;
    assert_int_equal(c.lapic, xapic);
    assert_int_equal(c.x2apic, ncpus - xapic);
    assert_int_equal(c.ioapic, 1);
    assert_int_equal(c.iso, 4);
    assert_int_equal(c.nmi, 1);
    assert_int_equal(c.x2nmi, ncpus > 255 ? 1 : 0);
}

static bool pointer_in_checksum(const struct loader_cmd *ptr,
                                const struct loader_cmd *sum)
{
    return sum->type == LOADER_ADD_CHECKSUM && ptr->blob == sum->blob &&
           ptr->offset < sum->start + sum->length &&
           ptr->offset + ptr->size > sum->start;
}

/* All ALLOCATEs first; every pointer lies in a checksummed table whose
 * checksum comes after it; the RSDP's commands come last. */
static void check_commands(const struct linked *k)
{
    const struct table_loader *l = &k->l;
    unsigned i = 0, checksums = 0;
    while (i < l->cmd_count && l->cmds[i].type == LOADER_ALLOCATE)
        i++;
    assert_int_equal(i, l->blob_count);
    bool in_rsdp = false;
    for (; i < l->cmd_count; i++) {
        const struct loader_cmd *c = &l->cmds[i];
        assert_int_not_equal(c->type, LOADER_ALLOCATE);
        in_rsdp |= c->blob == k->rsdp;
        if (in_rsdp)
            assert_int_equal(c->blob, k->rsdp);
        if (c->type == LOADER_ADD_CHECKSUM) {
            checksums++;
            continue;
        }
        bool covered = false;
        for (unsigned j = 0; j < l->cmd_count; j++) {
            if (pointer_in_checksum(c, &l->cmds[j])) {
                assert_true(j > i);
                covered = true;
            }
        }
        assert_true(covered);
    }
    assert_int_equal(checksums, 7); /* DSDT FADT MADT RSDT XSDT, RSDP x2 */
    assert_int_equal(l->cmds[l->cmd_count - 1].type, LOADER_ADD_CHECKSUM);
    assert_int_equal(l->cmds[l->cmd_count - 1].blob, k->rsdp);
}

/* ---- iasl ----------------------------------------------------------------- */

static void write_table(const struct linked *k, const char *dir,
                        const char *name, uint64_t gpa)
{
    const uint8_t *t = at(k, gpa, HDR_LEN);
    tool_write(dir, name, t, get_le32(t + 4));
}

/* Parses "0x1F", "Zero", "One" or a path token of iasl output. */
static const char *next_token(const char *p, char *tok, size_t cap)
{
    while (*p == ' ' || *p == '\n' || *p == ',')
        p++;
    size_t n = 0;
    while (*p && *p != ',' && *p != ' ' && *p != '\n' && *p != '}' &&
           n + 1 < cap)
        tok[n++] = *p++;
    tok[n] = 0;
    return p;
}

static uint64_t token_value(const char *tok)
{
    if (!strcmp(tok, "Zero"))
        return 0;
    if (!strcmp(tok, "One"))
        return 1;
    assert_true(!strncmp(tok, "0x", 2));
    return strtoull(tok, NULL, 16);
}

/* Every slot and pin appears once, on {LNKD, LNKA, LNKB, LNKC}[(slot +
 * pin) mod 4], except 00:01 INTA, which is the SCI's LNKS. */
static void check_prt(const char *dsl)
{
    static const char *const links[4] = {"\\_SB.LNKD", "\\_SB.LNKA",
                                         "\\_SB.LNKB", "\\_SB.LNKC"};
    bool seen[32][4] = {{false}};
    const char *p = strstr(dsl, "Name (_PRT, Package (0x80)");
    assert_non_null(p);
    for (unsigned i = 0; i < 128; i++) {
        char tok[4][32];
        p = strstr(p + 1, "Package (0x04)");
        assert_non_null(p);
        const char *q = strchr(p, '{');
        assert_non_null(q);
        q++;
        for (unsigned j = 0; j < 4; j++)
            q = next_token(q, tok[j], sizeof(tok[j]));
        uint64_t adr = token_value(tok[0]);
        uint64_t pin = token_value(tok[1]);
        assert_int_equal(adr & 0xFFFF, 0xFFFF);
        unsigned slot = (unsigned)(adr >> 16);
        assert_true(slot < 32 && pin < 4 && !seen[slot][pin]);
        seen[slot][pin] = true;
        const char *want = slot == 1 && pin == 0 ? "\\_SB.LNKS"
                                                  : links[(slot + pin) % 4];
        assert_string_equal(tok[2], want);
        assert_int_equal(token_value(tok[3]), 0);
    }
}

/* The ranges of the root bridge's _CRS, in order. */
static void check_pci_crs(const char *dsl, uint64_t ram)
{
    uint64_t hole = ram <= 2 * GiB ? 2 * GiB : 3 * GiB;
    uint64_t mmio64 = ALIGN_UP(4 * GiB + (ram > 3 * GiB ? ram - 3 * GiB : 0),
                               GiB);
    const uint64_t want[][2] = {
        {0, 0xFF},           {0xCF8, 0xCF8},      {0, 0xCF7},
        {0xD00, 0xFFFF},     {0xA0000, 0xBFFFF},  {hole, 0xFEBFFFFF},
        {mmio64, mmio64 + 64 * GiB - 1},
    };
    const char *p = strstr(dsl, "Device (PCI0)");
    const char *end = strstr(dsl, "Name (_PRT");
    assert_true(p && end && p < end);
    for (unsigned i = 0; i < ARRAY_SIZE(want); i++) {
        for (unsigned j = 0; j < 2; j++) {
            const char *label = j ? "// Range Maximum" : "// Range Minimum";
            const char *l = strstr(p, label);
            assert_true(l && l < end);
            const char *v = l;
            while (v > p && v[-1] != '\n')
                v--;
            assert_int_equal(strtoull(v, NULL, 16), want[i][j]);
            p = l + 1;
        }
    }
    const char *extra = strstr(p, "// Range Minimum");
    assert_true(!extra || extra > end);
}

/* PRQA..PRQD are the route registers 0x60..0x63, and LNKx uses PRQx. */
static void check_route_registers(const char *dsl)
{
    const char *p = strstr(dsl, "Field (PIRQ, ByteAcc, NoLock, Preserve)");
    assert_non_null(p);
    for (char c = 'A'; c <= 'D'; c++) {
        char unit[16];
        snprintf(unit, sizeof(unit), "PRQ%c,   8", c);
        const char *u = strstr(p, unit);
        assert_non_null(u);
        assert_null(memchr(p, '}', (size_t)(u - p)));
        p = u;
    }
    for (char c = 'A'; c <= 'D'; c++) {
        char dev[16], reg[24];
        snprintf(dev, sizeof(dev), "Device (LNK%c)", c);
        const char *start = strstr(dsl, dev);
        assert_non_null(start);
        const char *end = strstr(start + 1, "Device (");
        assert_non_null(end);
        unsigned uses = 0;
        for (char r = 'A'; r <= 'D'; r++) {
            snprintf(reg, sizeof(reg), "\\_SB.PCI0.ISA.PRQ%c", r);
            for (const char *q = strstr(start, reg); q && q < end;
                 q = strstr(q + 1, reg)) {
                assert_int_equal(r, c);
                uses++;
            }
        }
        assert_true(uses >= 4); /* _STA, _DIS, _CRS, _SRS */
    }
}

static void check_dsdt_text(const char *dsl, unsigned ncpus, uint64_t ram)
{
    assert_non_null(strstr(dsl, "Name (\\_S5, Package (0x04)"));
    assert_non_null(strstr(dsl, "Device (PCI0)"));
    assert_non_null(strstr(dsl, "EisaId (\"PNP0A03\")"));
    assert_non_null(strstr(dsl, "Device (ISA)"));
    assert_non_null(strstr(dsl, "OperationRegion (PIRQ, PCI_Config, 0x60, 0x04)"));
    for (char c = 'A'; c <= 'D'; c++) {
        char dev[16];
        snprintf(dev, sizeof(dev), "Device (LNK%c)", c);
        assert_non_null(strstr(dsl, dev));
    }
    assert_non_null(strstr(dsl, "Device (LNKS)"));
    assert_int_equal(count_str(dsl, "EisaId (\"PNP0C0F\")"), 5);
    assert_int_equal(count_str(dsl, "Name (_HID, \"ACPI0007\""), ncpus);
    assert_non_null(strstr(dsl, "EisaId (\"PNP0303\")"));
    assert_non_null(strstr(dsl, "EisaId (\"PNP0B00\")"));
    assert_non_null(strstr(dsl, "EisaId (\"PNP0501\")"));
    assert_non_null(strstr(dsl, "Name (_HID, \"QEMU0002\")"));
    check_route_registers(dsl);
    check_prt(dsl);
    check_pci_crs(dsl, ram);
}

/* iasl found nothing to complain about. */
static void assert_clean(int rc, const char *out)
{
    if (rc != 0 || strstr(out, "Warning") || strstr(out, "Error") ||
        strstr(out, "Incorrect"))
        fail_msg("iasl (rc %d):\n%s", rc, out);
}

static void check_iasl(const struct linked *k, const struct found *f,
                       unsigned ncpus, uint64_t ram)
{
    const char *iasl = tool_path("IASL");
    char *dir = tool_mkdtemp();
    write_table(k, dir, "facp.dat", f->fadt);
    write_table(k, dir, "apic.dat", f->madt);
    write_table(k, dir, "dsdt.dat", f->dsdt);
    write_table(k, dir, "rsdt.dat", f->rsdt);
    write_table(k, dir, "xsdt.dat", f->xsdt);
    tool_write(dir, "facs.dat", at(k, f->facs, 64), 64);

    char *out;
    int rc = tool_run(dir, iasl,
                      "-d facp.dat apic.dat dsdt.dat rsdt.dat xsdt.dat facs.dat",
                      &out);
    assert_clean(rc, out);
    free(out);

    char *apic = tool_read(dir, "apic.dsl");
    unsigned xapic = ncpus < 255 ? ncpus : 255;
    assert_int_equal(count_str(apic, "[Processor Local APIC]"), xapic);
    assert_int_equal(count_str(apic, "[Processor Local x2APIC]"),
                     ncpus - xapic);
    assert_int_equal(count_str(apic, "[Interrupt Source Override]"), 4);
    assert_int_equal(count_str(apic, "[I/O APIC]"), 1);
    free(apic);
    char *facp = tool_read(dir, "facp.dsl");
    assert_non_null(strstr(facp, "Value to cause reset : 06"));
    free(facp);
    char *dsl = tool_read(dir, "dsdt.dsl");
    check_dsdt_text(dsl, ncpus, ram);
    free(dsl);

    /* the disassembly compiles again, without warnings */
    rc = tool_run(dir, iasl, "-p recompiled dsdt.dsl", &out);
    if (rc != 0 || !strstr(out, "Compilation successful. 0 Errors, 0 Warnings,"))
        fail_msg("iasl recompile (rc %d):\n%s", rc, out);
    free(out);
    tool_rmdir(dir);
}

/* ---- acpiexec: the link devices run under ACPICA's interpreter ---------- */

struct eval_step {
    const char *path, *args, *want; /* want: text in the printed result */
};

/* Runs every step in one acpiexec session over the DSDT and checks each
 * result in order. acpiexec backs the PCI_Config region with memory, so
 * the route registers keep what _SRS and _DIS write. */
static void run_steps(const char *dir, const struct eval_step *steps,
                      unsigned n)
{
    char cmds[4096] = "-b \"";
    for (unsigned i = 0; i < n; i++) {
        size_t len = strlen(cmds);
        snprintf(cmds + len, sizeof(cmds) - len, "evaluate %s %s; ",
                 steps[i].path, steps[i].args);
    }
    strcat(cmds, "\" dsdt.dat");
    char *out;
    int rc = tool_run(dir, tool_path("ACPIEXEC"), cmds, &out);
    if (rc != 0 || strstr(out, "Error") || strstr(out, "Exception"))
        fail_msg("acpiexec (rc %d):\n%s", rc, out);
    const char *p = out;
    for (unsigned i = 0; i < n; i++) {
        char head[96];
        snprintf(head, sizeof(head), "Evaluating %s\n", steps[i].path);
        p = strstr(p, head);
        assert_non_null(p);
        p += strlen(head);
        const char *end = strstr(p, "Evaluating ");
        const char *hit = strstr(p, steps[i].want);
        if (!hit || (end && hit > end))
            fail_msg("%s: no \"%s\" in:\n%s", steps[i].path, steps[i].want, p);
    }
    free(out);
}

static void test_link_methods(void **state)
{
    /* The buffers are Interrupt () descriptors with one IRQ. */
#define IRQ_RES(irq) "89 06 00 09 01 " irq " 00 00 00 79 00"
    static const struct eval_step steps[] = {
        {"\\_SB.LNKB._SRS", "(" IRQ_RES("0B") ")", "No object was returned"},
        {"\\_SB.LNKB._STA", "", "[Integer] = 000000000000000B"},
        {"\\_SB.LNKB._CRS", "", IRQ_RES("0B")},
        {"\\_SB.LNKB._DIS", "", "No object was returned"},
        {"\\_SB.LNKB._STA", "", "[Integer] = 0000000000000009"},
        {"\\_SB.LNKB._CRS", "", IRQ_RES("00")},
        {"\\_SB.LNKD._SRS", "(" IRQ_RES("05") ")", "No object was returned"},
        {"\\_SB.LNKD._CRS", "", IRQ_RES("05")},
        {"\\_SB.LNKB._STA", "", "[Integer] = 0000000000000009"},
        {"\\_SB.LNKS._CRS", "", IRQ_RES("09")},
        {"\\_SB.LNKA._PRS", "", "0000: 89 0E 00 09 03 05 00 00 00 0A 00 00 00 0B"},
        {"\\_SB.C001._UID", "", "[Integer] = 0000000000000001"},
        {"\\_S5", "", "[Package] Contains 4 Elements"},
    };
#undef IRQ_RES
    struct linked k;
    struct found f;
    build(&k, 2, 256 * MiB);
    check_rsdp(&k, &f);
    check_sdts(&k, &f);
    check_fadt(&k, &f);
    char *dir = tool_mkdtemp();
    write_table(&k, dir, "dsdt.dat", f.dsdt);
    run_steps(dir, steps, ARRAY_SIZE(steps));

    /* every _PRT source resolves to a link device object at load time */
    char *out;
    int rc = tool_run(dir, tool_path("ACPIEXEC"),
                      "-b \"dump \\_SB.PCI0._PRT\" dsdt.dat", &out);
    assert_int_equal(rc, 0);
    assert_int_equal(count_str(out, "[Package] Contains 4 Elements"), 128);
    assert_int_equal(count_str(out, "[Named Object]"), 128);
    assert_int_equal(count_str(out, "Device: \\_SB.LNK"), 128);
    assert_int_equal(count_str(out, "Device: \\_SB.LNKS"), 1);
    free(out);
    tool_rmdir(dir);
    release(&k);
}

/* ---- Tests ---------------------------------------------------------------- */

struct acpi_case {
    unsigned ncpus;
    uint64_t ram;
};

static void test_tables(void **state)
{
    const struct acpi_case *c = *state;
    struct linked k;
    struct found f;
    build(&k, c->ncpus, c->ram);
    check_rsdp(&k, &f);
    check_sdts(&k, &f);
    check_fadt(&k, &f);
    check_madt(&k, &f, c->ncpus);
    check_commands(&k);
    check_iasl(&k, &f, c->ncpus, c->ram);
    release(&k);
}

static void test_rejects_cpu_counts(void **state)
{
    struct machine_info mi = {.ncpus = 0, .ram_size = 256 * MiB};
    struct table_loader l;
    loader_init(&l);
    assert_int_equal(acpi_build(&mi, &l), -1);
    loader_free(&l);
    mi.ncpus = ACPI_MAX_CPUS + 1;
    loader_init(&l);
    assert_int_equal(acpi_build(&mi, &l), -1);
    loader_free(&l);
}

/* Firmware receives the same blobs unlinked: pointer fields hold offsets
 * inside the tables blob. */
static void test_unlinked_offsets(void **state)
{
    struct machine_info mi = {.ncpus = 2, .ram_size = 256 * MiB};
    struct table_loader l;
    loader_init(&l);
    assert_int_equal(acpi_build(&mi, &l), 0);
    const struct loader_blob *r = &l.blobs[blob_index(&l, ACPI_RSDP_FILE)];
    const struct loader_blob *t = &l.blobs[blob_index(&l, ACPI_TABLES_FILE)];
    assert_memory_equal(t->data, "FACS", 4);
    uint32_t xsdt = (uint32_t)get_le64(r->data + 24);
    assert_true(xsdt + HDR_LEN <= t->len);
    assert_memory_equal(t->data + xsdt, "XSDT", 4);
    assert_memory_equal(t->data + get_le32(r->data + 16), "RSDT", 4);
    loader_free(&l);
}

int main(void)
{
    static const struct acpi_case cases[] = {
        {1, 256 * MiB}, {2, 256 * MiB}, {4, 256 * MiB}, {64, 256 * MiB},
        {1, 6 * GiB},   {2, 6 * GiB},   {4, 6 * GiB},   {64, 6 * GiB},
        {300, 2 * GiB}, /* x2APIC entries (beyond the machine's limit) */
    };
#define CASE(name, i) {name, test_tables, NULL, NULL, (void *)&cases[i]}
    const struct CMUnitTest tests[] = {
        CASE("1 cpu, 256 MiB", 0),   CASE("2 cpus, 256 MiB", 1),
        CASE("4 cpus, 256 MiB", 2),  CASE("64 cpus, 256 MiB", 3),
        CASE("1 cpu, 6 GiB", 4),     CASE("2 cpus, 6 GiB", 5),
        CASE("4 cpus, 6 GiB", 6),    CASE("64 cpus, 6 GiB", 7),
        CASE("300 cpus, 2 GiB", 8),
        cmocka_unit_test(test_link_methods),
        cmocka_unit_test(test_rejects_cpu_counts),
        cmocka_unit_test(test_unlinked_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
