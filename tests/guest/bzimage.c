/* 64-bit boot protocol glue: reads boot_params (the zero page) into
 * kit_boot, and the protocol part of the bootparams test: the CPU state at
 * the 64-bit entry, the loader's identity map, and the setup header the
 * loader passed on. */
#include "bzimage_defs.h"
#include "kit.h"

#define ZP_SIZE 4096
#define ZP_EXT_RAMDISK_IMAGE 0x0C0
#define ZP_EXT_RAMDISK_SIZE 0x0C4
#define ZP_EXT_CMD_LINE_PTR 0x0C8
#define ZP_RSDP 0x070
#define ZP_E820_COUNT 0x1E8
#define ZP_E820_TABLE 0x2D0
#define ZP_E820_MAX 128
#define HDR_BOOT_FLAG 0x1FE
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21C
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22C
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260

#define CR0_PE 0x1ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL
#define RFLAGS_IF 0x200ULL

struct bz_entry_state {
    uint64_t rsi, cr0, cr3, cr4, efer, rflags, load;
    uint16_t cs, ds, es, ss;
    uint8_t gdtr[10];
    uint8_t pad[6];
};

_Static_assert(__builtin_offsetof(struct bz_entry_state, cs) == BZ_ES_CS, "");
_Static_assert(__builtin_offsetof(struct bz_entry_state, gdtr) == BZ_ES_GDTR, "");
_Static_assert(__builtin_offsetof(struct bz_entry_state, load) == BZ_ES_LOAD, "");
_Static_assert(sizeof(struct bz_entry_state) == BZ_ES_SIZE, "");

/* Written by entry_bzimage.S before .bss is cleared, hence .data. */
struct bz_entry_state bz_entry __attribute__((section(".data")));
static uint8_t zp[ZP_SIZE]; /* boot_params, copied once */
static long cmdline_len;

static uint64_t zp_u(unsigned off, unsigned size)
{
    uint64_t v = 0;
    memcpy(&v, zp + off, size);
    return v;
}

static void copy_e820(void)
{
    unsigned n = zp[ZP_E820_COUNT];

    for (unsigned i = 0; i < n && i < ZP_E820_MAX && i < KIT_MAX_MEM; i++) {
        unsigned off = ZP_E820_TABLE + i * 20;
        kit_boot.mem[i] = (struct kit_mem_range){zp_u(off, 8), zp_u(off + 8, 8),
                                                 (uint32_t)zp_u(off + 16, 4)};
        kit_boot.mem_count = i + 1;
    }
}

void kit_bzimage_main(uint64_t boot_params);

void kit_bzimage_main(uint64_t boot_params)
{
    console_init();
    cpu_load_gdt();
    paging_identity_4g();
    if (boot_params >= LAYOUT_4G - ZP_SIZE)
        kit_fatal("boot_params pointer 0x%lx out of range", boot_params);
    memcpy(zp, (const void *)(uintptr_t)boot_params, ZP_SIZE);
    kit_boot.protocol = "bzimage";
    kit_boot.info_addr = boot_params;
    kit_boot.info_size = ZP_SIZE;
    kit_boot.rsdp_addr = zp_u(ZP_RSDP, 8);
    kit_boot.initrd_addr = zp_u(HDR_RAMDISK_IMAGE, 4) |
                           zp_u(ZP_EXT_RAMDISK_IMAGE, 4) << 32;
    kit_boot.initrd_size = zp_u(HDR_RAMDISK_SIZE, 4) |
                           zp_u(ZP_EXT_RAMDISK_SIZE, 4) << 32;
    kit_boot.image_start = bz_entry.load;
    kit_boot.image_end = bz_entry.load + zp_u(HDR_INIT_SIZE, 4);
    cmdline_len = kit_boot_set_cmdline(zp_u(HDR_CMD_LINE_PTR, 4) |
                                           zp_u(ZP_EXT_CMD_LINE_PTR, 4) << 32,
                                       BZ_CMDLINE_SIZE + 1);
    copy_e820();
    kit_main();
}

static void check_cpu_state(void)
{
    const struct bz_entry_state *e = &bz_entry;

    kit_info("bz.entry", "cr0 0x%lx cr3 0x%lx cr4 0x%lx efer 0x%lx rflags 0x%lx",
             e->cr0, e->cr3, e->cr4, e->efer, e->rflags);
    kit_check((e->cr0 & (CR0_PE | CR0_PG)) == (CR0_PE | CR0_PG) &&
                  (e->cr4 & CR4_PAE) &&
                  (e->efer & (EFER_LME | EFER_LMA)) == (EFER_LME | EFER_LMA),
              "bz-long-mode", "paging, PAE, EFER.LME and LMA set");
    kit_check(!(e->rflags & RFLAGS_IF), "bz-interrupts-off", "rflags 0x%lx",
              e->rflags);
}

/* Reads the loader's descriptor for sel from its GDT. */
static bool loader_descriptor(uint16_t sel, uint64_t *d)
{
    uint16_t limit;
    uint64_t base;

    memcpy(&limit, bz_entry.gdtr, 2);
    memcpy(&base, bz_entry.gdtr + 2, 8);
    if (sel + 7u > limit || base >= LAYOUT_4G - 8 - sel)
        return false;
    memcpy(d, (const void *)(uintptr_t)(base + sel), 8);
    return true;
}

/* Base 0, limit 4 GiB (0xFFFFF pages), present, ring 0, code or data. */
static bool flat_descriptor(uint64_t d, bool code)
{
    uint64_t base = ((d >> 16) & 0xFFFFFF) | ((d >> 56) << 24);
    uint64_t limit = (d & 0xFFFF) | ((d >> 32) & 0xF0000);
    unsigned type = (d >> 40) & 0x1F, flags = (d >> 52) & 0xF;
    bool page_gran = flags & 0x8, long_code = flags & 0x2;

    if (base || !(d >> 47 & 1) || (d >> 45 & 3))
        return false;
    if (code) /* S=1, executable, readable; 64-bit */
        return (type & 0x1A) == 0x1A && long_code;
    return (type & 0x1A) == 0x12 && page_gran && limit == 0xFFFFF;
}

static void check_segments(void)
{
    const struct bz_entry_state *e = &bz_entry;
    uint64_t cs = 0, ds = 0;
    bool gdt = loader_descriptor(KIT_CS, &cs) && loader_descriptor(KIT_DS, &ds);

    kit_check(e->cs == KIT_CS && e->ds == KIT_DS && e->es == KIT_DS &&
                  e->ss == KIT_DS,
              "bz-selectors", "cs 0x%x ds 0x%x es 0x%x ss 0x%x", e->cs, e->ds,
              e->es, e->ss);
    kit_check(gdt && flat_descriptor(cs, true) && flat_descriptor(ds, false),
              "bz-gdt", "__BOOT_CS 0x%lx __BOOT_DS 0x%lx", cs, ds);
}

static void check_identity_map(void)
{
    uint64_t bad = ~0ULL, pa = 0;

    /* Both ends of every 2 MiB of [0, 4 GiB). */
    for (uint64_t va = 0; va < LAYOUT_4G && bad == ~0ULL; va += 2 * MiB) {
        if (!paging_translate(bz_entry.cr3, va, &pa) || pa != va)
            bad = va;
        else if (!paging_translate(bz_entry.cr3, va + 2 * MiB - 1, &pa) ||
                 pa != va + 2 * MiB - 1)
            bad = va + 2 * MiB - 1;
    }
    if (bad == ~0ULL)
        kit_check(true, "bz-identity-map",
                  "loader's tables at 0x%lx map [0, 4 GiB) 1:1", bz_entry.cr3);
    else
        kit_check(false, "bz-identity-map",
                  "loader's tables at 0x%lx do not map 0x%lx 1:1", bz_entry.cr3,
                  bad);
}

static void check_header(void)
{
    uint64_t load = bz_entry.load, align = zp_u(HDR_KERNEL_ALIGNMENT, 4);
    uint64_t own_size = ((uint64_t)(uintptr_t)__image_end - load + 0xFFF) & ~0xFFFULL;

    kit_check(zp_u(HDR_BOOT_FLAG, 2) == 0xAA55 && !memcmp(zp + HDR_MAGIC, "HdrS", 4) &&
                  zp_u(HDR_VERSION, 2) == BZ_VERSION &&
                  zp_u(HDR_XLOADFLAGS, 2) == BZ_XLOADFLAGS &&
                  zp_u(HDR_CMDLINE_SIZE, 4) == BZ_CMDLINE_SIZE &&
                  zp_u(HDR_PREF_ADDRESS, 8) == BZ_PREF_ADDRESS &&
                  zp_u(HDR_RELOCATABLE, 1) == 1 && align == BZ_KERNEL_ALIGNMENT &&
                  zp_u(HDR_INIT_SIZE, 4) == own_size,
              "bz-header", "the image's setup header, version 0x%lx, init_size 0x%lx",
              zp_u(HDR_VERSION, 2), zp_u(HDR_INIT_SIZE, 4));
    kit_check(zp_u(HDR_TYPE_OF_LOADER, 1) != 0 &&
                  (zp_u(HDR_LOADFLAGS, 1) & BZ_LOADFLAGS),
              "bz-loader-fields", "type_of_loader 0x%lx loadflags 0x%lx",
              zp_u(HDR_TYPE_OF_LOADER, 1), zp_u(HDR_LOADFLAGS, 1));
    kit_info("boot.load_addr", "0x%lx", load);
    kit_check(align && !(load % align), "bz-load-addr",
              "0x%lx, aligned to kernel_alignment 0x%lx", load, align);
    kit_check(cmdline_len >= 0 && cmdline_len <= BZ_CMDLINE_SIZE, "bz-cmdline",
              "%ld bytes at 0x%lx, at most %u", cmdline_len,
              kit_boot.cmdline_addr, BZ_CMDLINE_SIZE);
    kit_check(!kit_boot.initrd_size ||
                  kit_boot.initrd_addr + kit_boot.initrd_size - 1 <=
                      zp_u(HDR_INITRD_ADDR_MAX, 4),
              "bz-initrd-max", "initrd ends at 0x%lx, initrd_addr_max 0x%lx",
              kit_boot.initrd_addr + kit_boot.initrd_size,
              zp_u(HDR_INITRD_ADDR_MAX, 4));
}

void boot_protocol_checks(void)
{
    check_cpu_state();
    check_segments();
    check_identity_map();
    check_header();
    kit_check(zp[ZP_E820_COUNT] > 0 && zp[ZP_E820_COUNT] <= ZP_E820_MAX,
              "bz-e820", "%u entries", zp[ZP_E820_COUNT]);
}
