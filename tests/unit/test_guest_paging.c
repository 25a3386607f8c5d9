/* The page walker on crafted page tables in fake guest memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"
#include "vm/guest_paging.h"

#define RAM_SIZE (4u << 20)
static uint8_t ram[RAM_SIZE];
static uint8_t rom[4096];
static struct guest_mem mem;

#define P 0x1ull
#define RW 0x2ull
#define US 0x4ull
#define A 0x20ull
#define D 0x40ull
#define PS 0x80ull
#define XD (1ull << 63)

#define CR0_PE 0x1ull
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PSE (1ull << 4)
#define CR4_PAE (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define CR4_SMEP (1ull << 20)
#define CR4_SMAP (1ull << 21)
#define CR4_PKE (1ull << 22)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

static int setup(void **state)
{
    memset(ram, 0, sizeof(ram));
    memset(&mem, 0, sizeof(mem));
    assert_int_equal(gmem_add(&mem, 0, RAM_SIZE, ram, false), 0);
    assert_int_equal(gmem_add(&mem, 0xFFFFF000, sizeof(rom), rom, true), 0);
    return 0;
}

static void set64(uint64_t gpa, uint64_t v) { put_le64(ram + gpa, v); }
static uint64_t get64(uint64_t gpa) { return get_le64(ram + gpa); }
static void set32(uint64_t gpa, uint32_t v) { put_le32(ram + gpa, v); }
static uint32_t get32(uint64_t gpa) { return get_le32(ram + gpa); }

static struct gp_mmu long_mode(void)
{
    return (struct gp_mmu){.cr0 = CR0_PE | CR0_PG | CR0_WP,
                           .cr3 = 0x1000,
                           .cr4 = CR4_PAE,
                           .efer = EFER_LME | EFER_LMA | EFER_NXE,
                           .rflags = 2,
                           .maxphyaddr = 46,
                           .mode = X86_MODE_LONG64};
}

/* 4-level tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000
 * (PT). la 0x400000 + i*4K -> PT[i]. */
static void build_4level(uint64_t pt_flags)
{
    set64(0x1000, 0x2000 | P | RW | US);
    set64(0x2000, 0x3000 | P | RW | US);
    set64(0x3000 + 2 * 8, 0x4000 | P | RW | US);
    set64(0x4000, 0x100000 | pt_flags);
    set64(0x4000 + 8, 0x101000 | pt_flags);
}

static enum gp_status xlate(const struct gp_mmu *mmu, uint64_t la,
                            enum gp_access acc, uint64_t *gpa,
                            struct gp_fault *f)
{
    memset(f, 0xEE, sizeof(*f));
    return gp_translate(&mem, mmu, la, acc, gpa, f);
}

static void test_no_paging(void **state)
{
    struct gp_mmu mmu = {.cr0 = CR0_PE, .mode = X86_MODE_PROT32};
    uint64_t gpa;
    struct gp_fault f;
    assert_int_equal(xlate(&mmu, 0x123456, GP_WRITE, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x123456);
    assert_int_equal(xlate(&mmu, 0x100000000ull + 5, GP_READ, &gpa, &f),
                     GP_OK);
    assert_int_equal(gpa, 5);
}

static void test_4k_and_accessed_dirty(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    build_4level(P | RW);
    assert_int_equal(xlate(&mmu, 0x400123, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x100123);
    assert_true(get64(0x1000) & A);
    assert_true(get64(0x2000) & A);
    assert_true(get64(0x3010) & A);
    assert_true(get64(0x4000) & A);
    assert_false(get64(0x4000) & D);
    assert_int_equal(xlate(&mmu, 0x401FFF, GP_WRITE, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x101FFF);
    assert_true(get64(0x4008) & D);
    assert_false(get64(0x3010) & D); /* only the last level gets D */
}

static void test_large_pages(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    build_4level(P | RW);
    set64(0x3000 + 8, 0x200000 | P | RW | PS);             /* 2 MiB */
    set64(0x2000 + 8, 0x40000000 | P | RW | PS);           /* 1 GiB */
    set64(0x2000 + 16, 0x80000000 | P | RW | PS | 0x1000); /* PAT bit */
    assert_int_equal(xlate(&mmu, 0x212345, GP_WRITE, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x212345);
    assert_true(get64(0x3008) & D);
    assert_int_equal(xlate(&mmu, 0x40000000 + 0x3456789, GP_READ, &gpa, &f),
                     GP_OK);
    assert_int_equal(gpa, 0x43456789);
    assert_int_equal(xlate(&mmu, 0x80000010, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x80000010);
    /* Reserved bits inside a large-page frame field. */
    set64(0x3000 + 8, 0x200000 | P | RW | PS | 0x2000);
    assert_int_equal(xlate(&mmu, 0x200000, GP_READ, &gpa, &f), GP_FAULT);
    assert_int_equal(f.vector, GP_VEC_PF);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_RSVD);
    /* PS in a PML4 entry is reserved. */
    set64(0x1000 + 8, 0x2000 | P | PS);
    assert_int_equal(xlate(&mmu, 1ull << 39, GP_READ, &gpa, &f), GP_FAULT);
    assert_true(f.error_code & GP_PFEC_RSVD);
}

static void test_not_present(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    build_4level(P | RW);
    assert_int_equal(xlate(&mmu, 0x402000, GP_READ, &gpa, &f), GP_FAULT);
    assert_int_equal(f.vector, GP_VEC_PF);
    assert_int_equal(f.error_code, 0);
    assert_int_equal(f.cr2, 0x402000);
    mmu.cpl = 3;
    assert_int_equal(xlate(&mmu, 0x7F0000000000ull, GP_WRITE, &gpa, &f),
                     GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_W | GP_PFEC_U);
    assert_int_equal(f.cr2, 0x7F0000000000ull);
    /* A failed walk sets no accessed bit. */
    assert_false(get64(0x1000) & A);
}

static void test_write_protect(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    build_4level(P | US); /* read-only user page */
    assert_int_equal(xlate(&mmu, 0x400000, GP_WRITE, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_W);
    mmu.cr0 &= ~CR0_WP; /* supervisor writes ignore R/W without CR0.WP */
    assert_int_equal(xlate(&mmu, 0x400000, GP_WRITE, &gpa, &f), GP_OK);
    mmu.cpl = 3; /* but user writes never do */
    assert_int_equal(xlate(&mmu, 0x400000, GP_WRITE, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_W | GP_PFEC_U);
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_OK);
    /* A supervisor page is out of reach for CPL 3. */
    set64(0x4000, 0x100000 | P | RW);
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_U);
}

static void test_nx_smep_smap(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    build_4level(P | RW | XD);
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(xlate(&mmu, 0x400000, GP_FETCH, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_I);
    /* Without EFER.NXE, bit 63 is reserved. */
    mmu.efer &= ~EFER_NXE;
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_RSVD);
    mmu.efer |= EFER_NXE;
    /* User page, supervisor access. */
    build_4level(P | RW | US);
    mmu.cr4 |= CR4_SMEP | CR4_SMAP;
    assert_int_equal(xlate(&mmu, 0x400000, GP_FETCH, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_I);
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P);
    mmu.rflags |= 1u << 18; /* EFLAGS.AC lifts SMAP */
    assert_int_equal(xlate(&mmu, 0x400000, GP_WRITE, &gpa, &f), GP_OK);
    mmu.cr4 &= ~(CR4_SMEP | CR4_SMAP);
    assert_int_equal(xlate(&mmu, 0x400000, GP_FETCH, &gpa, &f), GP_OK);
}

static void test_reserved_physical_bits(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    build_4level(P | RW);
    set64(0x4000, (1ull << 47) | 0x100000 | P | RW); /* above MAXPHYADDR 46 */
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_RSVD);
    mmu.maxphyaddr = 52;
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(gpa, (1ull << 47) | 0x100000);
}

static void test_protection_keys(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    build_4level(P | RW | US | (3ull << 59)); /* key 3 */
    mmu.cr4 |= CR4_PKE;
    mmu.cpl = 3;
    mmu.pkru = 2u << (2 * 3); /* WD for key 3 */
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(xlate(&mmu, 0x400000, GP_WRITE, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code,
                     GP_PFEC_P | GP_PFEC_W | GP_PFEC_U | GP_PFEC_PK);
    mmu.pkru = 1u << (2 * 3); /* AD */
    assert_int_equal(xlate(&mmu, 0x400000, GP_READ, &gpa, &f), GP_FAULT);
    assert_true(f.error_code & GP_PFEC_PK);
    assert_int_equal(xlate(&mmu, 0x400000, GP_FETCH, &gpa, &f), GP_OK);
    mmu.pkru = 3u << (2 * 2); /* another key: no effect */
    assert_int_equal(xlate(&mmu, 0x400000, GP_WRITE, &gpa, &f), GP_OK);
}

static void test_five_level(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    mmu.cr4 |= CR4_LA57;
    mmu.cr3 = 0x5000;
    uint64_t la = 0x00FF000000400000ull; /* PML5 index 255 */
    set64(0x5000 + 255 * 8, 0x1000 | P | RW);
    build_4level(P | RW);
    assert_int_equal(xlate(&mmu, la + 0x10, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x100010);
    assert_true(get64(0x5000 + 255 * 8) & A);
}

static void test_pae(void **state)
{
    struct gp_mmu mmu = {.cr0 = CR0_PE | CR0_PG | CR0_WP, .cr3 = 0x1020,
                         .cr4 = CR4_PAE, .efer = EFER_NXE, .rflags = 2,
                         .maxphyaddr = 36, .mode = X86_MODE_PROT32};
    uint64_t gpa;
    struct gp_fault f;
    set64(0x1020 + 3 * 8, 0x3000 | P);             /* PDPTE 3 */
    set64(0x3000 + 5 * 8, 0x4000 | P | RW);        /* PDE 5 -> PT */
    set64(0x4000 + 7 * 8, 0x123000 | P | RW | XD); /* PTE 7 */
    set64(0x3000 + 6 * 8, 0x600000 | P | PS);      /* 2 MiB, read-only */
    uint64_t la = (3ull << 30) | (5ull << 21) | (7ull << 12) | 0x45;
    assert_int_equal(xlate(&mmu, la, GP_WRITE, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x123045);
    assert_int_equal(xlate(&mmu, la, GP_FETCH, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_I);
    uint64_t big = (3ull << 30) | (6ull << 21) | 0x1234;
    assert_int_equal(xlate(&mmu, big, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x601234);
    assert_int_equal(xlate(&mmu, big, GP_WRITE, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_W);
    /* PDPTEs carry no accessed bit; reserved bits in them fault. */
    assert_false(get64(0x1020 + 3 * 8) & A);
    set64(0x1020 + 3 * 8, 0x3000 | P | RW);
    assert_int_equal(xlate(&mmu, la, GP_READ, &gpa, &f), GP_FAULT);
    assert_true(f.error_code & GP_PFEC_RSVD);
    /* The address wraps at 4 GiB outside long mode. */
    set64(0x1020, 0x3000 | P);
    set64(0x3000, 0x600000 | P | PS);
    assert_int_equal(xlate(&mmu, 0x100000010ull, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x600010);
}

static void test_32bit_paging(void **state)
{
    struct gp_mmu mmu = {.cr0 = CR0_PE | CR0_PG | CR0_WP, .cr3 = 0x1000,
                         .cr4 = CR4_PSE, .rflags = 2, .maxphyaddr = 40,
                         .mode = X86_MODE_PROT32};
    uint64_t gpa;
    struct gp_fault f;
    set32(0x1000 + 1 * 4, 0x2000 | P | RW); /* PDE 1 -> PT */
    set32(0x2000 + 3 * 4, 0x00345000 | P | RW);
    /* 4 MiB page with PSE-36 bits 39:32 = 0x12 in PDE bits 20:13. */
    set32(0x1000 + 2 * 4, 0x00C00000 | (0x12u << 13) | P | RW | PS);
    uint64_t la = (1u << 22) | (3u << 12) | 0x67;
    assert_int_equal(xlate(&mmu, la, GP_WRITE, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x345067);
    assert_true(get32(0x1004) & A);
    assert_true(get32(0x200C) & D);
    assert_int_equal(xlate(&mmu, (2u << 22) | 0x1234, GP_READ, &gpa, &f),
                     GP_OK);
    assert_int_equal(gpa, 0x1200C01234ull);
    /* No NX in 32-bit paging: bit 63 does not exist, fetch is fine. */
    assert_int_equal(xlate(&mmu, la, GP_FETCH, &gpa, &f), GP_OK);
    /* Without CR4.PSE the PS bit is ignored: PDE 2 points to a table. */
    mmu.cr4 = 0;
    set32(0x00C00000 & (RAM_SIZE - 1), 0); /* not in RAM anyway */
    assert_int_equal(xlate(&mmu, (2u << 22) | 0x1234, GP_READ, &gpa, &f),
                     GP_NO_MEMORY);
    set32(0x1000 + 4 * 4, 0x3000 | P | RW | PS); /* PDE 4 -> table 0x3000 */
    set32(0x3000, 0x7000 | P);
    assert_int_equal(xlate(&mmu, 4u << 22, GP_READ, &gpa, &f), GP_OK);
    assert_int_equal(gpa, 0x7000);
    /* Bit 21 of a 4 MiB PDE is reserved. */
    mmu.cr4 = CR4_PSE;
    set32(0x1000 + 5 * 4, 0x00400000 | (1u << 21) | P | PS);
    assert_int_equal(xlate(&mmu, 5u << 22, GP_READ, &gpa, &f), GP_FAULT);
    assert_int_equal(f.error_code, GP_PFEC_P | GP_PFEC_RSVD);
}

static void test_page_table_outside_ram(void **state)
{
    struct gp_mmu mmu = long_mode();
    uint64_t gpa;
    struct gp_fault f;
    set64(0x1000, 0x80000000ull | P | RW); /* PDPT in a hole */
    assert_int_equal(xlate(&mmu, 0x1000, GP_READ, &gpa, &f), GP_NO_MEMORY);
}

static void test_cross_page_access(void **state)
{
    struct gp_mmu mmu = long_mode();
    struct gp_fault f;
    uint8_t buf[16];
    build_4level(P | RW);
    memset(buf, 0xAB, sizeof(buf));
    /* Both pages present and physically apart: bytes split correctly. */
    assert_int_equal(gp_write(&mem, &mmu, 0x400FF8, buf, 16, &f), GP_OK);
    assert_int_equal(ram[0x100FF8], 0xAB);
    assert_int_equal(ram[0x101007], 0xAB);
    assert_int_equal(ram[0x101008], 0);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(gp_read(&mem, &mmu, 0x400FF8, buf, 16, GP_READ, &f),
                     GP_OK);
    assert_int_equal(buf[15], 0xAB);
    /* Second page not present: #PF at its first byte, nothing written. */
    memset(buf, 0xCD, sizeof(buf));
    assert_int_equal(gp_write(&mem, &mmu, 0x401FF8, buf, 16, &f), GP_FAULT);
    assert_int_equal(f.cr2, 0x402000);
    assert_int_equal(f.error_code, GP_PFEC_W);
    assert_int_equal(ram[0x101FF8], 0);
    assert_int_equal(gp_probe_write(&mem, &mmu, 0x401FF8, 8, &f), GP_OK);
    assert_int_equal(gp_probe_write(&mem, &mmu, 0x401FF8, 9, &f), GP_FAULT);
}

static void test_host_pointer(void **state)
{
    struct gp_mmu mmu = long_mode();
    struct gp_fault f;
    void *p;
    build_4level(P | RW);
    assert_int_equal(gp_host_ptr(&mem, &mmu, 0x400010, 16, &p, &f), GP_OK);
    assert_ptr_equal(p, ram + 0x100010);
    assert_int_equal(gp_host_ptr(&mem, &mmu, 0x400FF8, 16, &p, &f),
                     GP_NO_MEMORY);
    set64(0x4000 + 2 * 8, 0xFFFFF000ull | P | RW); /* the ROM */
    assert_int_equal(gp_host_ptr(&mem, &mmu, 0x402000, 8, &p, &f),
                     GP_NO_MEMORY);
    assert_int_equal(gp_write(&mem, &mmu, 0x402000, "x", 1, &f), GP_NO_MEMORY);
}

static void test_segments_64(void **state)
{
    struct gp_mmu mmu = long_mode();
    struct gp_segment fs = {.base = 0x10000, .limit = 0};
    struct gp_fault f;
    uint64_t la;
    assert_int_equal(
        gp_linear(&mmu, &fs, X86_FS, 0x20, 8, GP_READ, &la, &f), GP_OK);
    assert_int_equal(la, 0x10020);
    assert_int_equal(
        gp_linear(&mmu, &fs, X86_DS, 0x20, 8, GP_READ, &la, &f), GP_OK);
    assert_int_equal(la, 0x20); /* DS base ignored in 64-bit mode */
    assert_int_equal(gp_linear(&mmu, &fs, X86_DS, 0x0000800000000000ull, 8,
                               GP_READ, &la, &f),
                     GP_FAULT);
    assert_int_equal(f.vector, GP_VEC_GP);
    assert_int_equal(gp_linear(&mmu, &fs, X86_SS, 0x00007FFFFFFFFFF8ull, 16,
                               GP_WRITE, &la, &f),
                     GP_FAULT);
    assert_int_equal(f.vector, GP_VEC_SS);
    mmu.cr4 |= CR4_LA57;
    assert_int_equal(gp_linear(&mmu, &fs, X86_DS, 0x0000800000000000ull, 8,
                               GP_READ, &la, &f),
                     GP_OK);
}

static void test_segments_protected(void **state)
{
    struct gp_mmu mmu = {.cr0 = CR0_PE, .mode = X86_MODE_PROT32};
    struct gp_segment ds = {.base = 0x1000, .limit = 0xFFF, .type = 3,
                            .s = 1, .present = 1, .db = 1};
    struct gp_fault f;
    uint64_t la;
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0xFF8, 8, GP_WRITE, &la, &f),
                     GP_OK);
    assert_int_equal(la, 0x1FF8);
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0xFF9, 8, GP_READ, &la, &f),
                     GP_FAULT);
    assert_int_equal(f.vector, GP_VEC_GP);
    assert_int_equal(gp_linear(&mmu, &ds, X86_SS, 0x1000, 1, GP_READ, &la, &f),
                     GP_FAULT);
    assert_int_equal(f.vector, GP_VEC_SS);
    ds.type = 1; /* read-only data */
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0, 4, GP_WRITE, &la, &f),
                     GP_FAULT);
    ds.type = 0xB; /* execute/read code: readable, not writable */
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0, 4, GP_READ, &la, &f),
                     GP_OK);
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0, 4, GP_WRITE, &la, &f),
                     GP_FAULT);
    ds.type = 7; /* expand-down: valid offsets are (limit, 4G) */
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0x800, 4, GP_READ, &la, &f),
                     GP_FAULT);
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0x1000, 4, GP_READ, &la, &f),
                     GP_OK);
    ds.type = 3;
    ds.unusable = 1;
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0, 4, GP_READ, &la, &f),
                     GP_FAULT);
    /* The linear address wraps at 4 GiB. */
    ds = (struct gp_segment){.base = 0xFFFFF000, .limit = 0xFFFFFFFF,
                             .type = 3, .s = 1, .present = 1, .db = 1};
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0x2000, 4, GP_READ, &la, &f),
                     GP_OK);
    assert_int_equal(la, 0x1000);
}

static void test_segments_real(void **state)
{
    struct gp_mmu mmu = {.mode = X86_MODE_REAL};
    struct gp_segment ds = {.base = 0xF0000, .limit = 0xFFFF, .type = 3};
    struct gp_fault f;
    uint64_t la;
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0xFFF0, 16, GP_READ, &la,
                               &f),
                     GP_OK);
    assert_int_equal(la, 0xFFFF0);
    assert_int_equal(gp_linear(&mmu, &ds, X86_DS, 0xFFF8, 16, GP_READ, &la,
                               &f),
                     GP_FAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_paging, setup),
        cmocka_unit_test_setup(test_4k_and_accessed_dirty, setup),
        cmocka_unit_test_setup(test_large_pages, setup),
        cmocka_unit_test_setup(test_not_present, setup),
        cmocka_unit_test_setup(test_write_protect, setup),
        cmocka_unit_test_setup(test_nx_smep_smap, setup),
        cmocka_unit_test_setup(test_reserved_physical_bits, setup),
        cmocka_unit_test_setup(test_protection_keys, setup),
        cmocka_unit_test_setup(test_five_level, setup),
        cmocka_unit_test_setup(test_pae, setup),
        cmocka_unit_test_setup(test_32bit_paging, setup),
        cmocka_unit_test_setup(test_page_table_outside_ram, setup),
        cmocka_unit_test_setup(test_cross_page_access, setup),
        cmocka_unit_test_setup(test_host_pointer, setup),
        cmocka_unit_test_setup(test_segments_64, setup),
        cmocka_unit_test_setup(test_segments_protected, setup),
        cmocka_unit_test_setup(test_segments_real, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
