/* Direct boot structures: bzImage zero page and PVH start info, built
 * into fake guest memory exactly as the guest will find them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <elf.h>

#include "boot/kernel.h"
#include "platform/e820.h"
#include "platform/layout.h"
#include "util.h"

#define RAM (64 * MiB)

static uint8_t *ram;
static struct guest_mem mem;

static int setup(void **state)
{
    ram = calloc(1, RAM);
    memset(&mem, 0, sizeof(mem));
    assert_int_equal(gmem_add(&mem, 0, RAM, ram, false), 0);
    return 0;
}

static int teardown(void **state)
{
    free(ram);
    return 0;
}

/* A bzImage with 4 setup sectors and a 64 KiB payload. */
static uint8_t *make_bzimage(size_t *len)
{
    size_t setup = 5 * 512, payload = 64 * 1024;
    uint8_t *d = calloc(1, setup + payload);
    d[0x1F1] = 4;
    put_le32(d + 0x1F4, (uint32_t)(payload / 16));
    put_le16(d + 0x1FE, 0xAA55);
    d[0x200] = 0xEB;
    d[0x201] = 0x6A; /* header ends at 0x26C */
    memcpy(d + 0x202, "HdrS", 4);
    put_le16(d + 0x206, 0x020F);
    d[0x211] = 0x01; /* LOADED_HIGH */
    put_le32(d + 0x22C, 0x7FFFFFFF);
    put_le32(d + 0x230, 0x200000);
    d[0x234] = 1;
    put_le16(d + 0x236, 0x1); /* XLF_KERNEL_64 */
    put_le32(d + 0x238, 255);
    put_le64(d + 0x258, 0x1000000);
    put_le32(d + 0x260, 0x400000);
    memset(d + setup, 0x90, payload);
    *len = setup + payload;
    return d;
}

static void test_bzimage_zero_page(void **state)
{
    size_t len;
    uint8_t *img = make_bzimage(&len);
    struct kernel_image k;
    struct kernel_plan p;
    assert_int_equal(kernel_probe("t", img, len, &k), 0);
    assert_int_equal(k.kind, KERNEL_BZIMAGE);
    uint8_t initrd[5000];
    memset(initrd, 0xA5, sizeof(initrd));
    assert_int_equal(kernel_plan(&k, RAM, sizeof(initrd), 13, &p), 0);
    assert_int_equal(p.load_addr, 0x1000000);
    assert_int_equal(p.initrd_addr % 4096, 0);
    assert_true(p.initrd_addr + sizeof(initrd) <= RAM);
    assert_true(p.initrd_addr >= p.kernel_end);

    struct machine_info mi = {.ncpus = 1, .ram_size = RAM};
    struct e820_entry e820[E820_MAX_ENTRIES];
    struct kernel_boot_info info = {
        .cmdline = "console=ttyS0", .initrd = initrd, .e820 = e820,
        .e820_count = e820_build(&mi, E820_DIRECT, e820, E820_MAX_ENTRIES),
        .rsdp_addr = LAYOUT_ACPI_START};
    struct kernel_entry entry;
    assert_int_equal(kernel_load(&k, &p, &info, &mem, &entry), 0);
    assert_int_equal(entry.mode, ENTRY_LONG64);
    assert_int_equal(entry.rip, 0x1000000 + 0x200);
    assert_int_equal(entry.rsi, LAYOUT_ZERO_PAGE);

    const uint8_t *bp = ram + LAYOUT_ZERO_PAGE;
    assert_memory_equal(bp + 0x202, "HdrS", 4);    /* header copied */
    assert_int_equal(bp[0x210], 0xFF);               /* type_of_loader */
    assert_int_equal(get_le32(bp + 0x228), LAYOUT_CMDLINE);
    assert_string_equal((char *)ram + LAYOUT_CMDLINE, "console=ttyS0");
    assert_int_equal(get_le32(bp + 0x218), p.initrd_addr);
    assert_int_equal(get_le32(bp + 0x21C), sizeof(initrd));
    assert_memory_equal(ram + p.initrd_addr, initrd, sizeof(initrd));
    assert_int_equal(get_le64(bp + 0x070), LAYOUT_ACPI_START);
    assert_int_equal(bp[0x1E8], info.e820_count);
    for (unsigned i = 0; i < info.e820_count; i++) {
        const uint8_t *e = bp + 0x2D0 + 20 * i;
        assert_int_equal(get_le64(e), e820[i].addr);
        assert_int_equal(get_le64(e + 8), e820[i].size);
        assert_int_equal(get_le32(e + 16), e820[i].type);
    }
    assert_int_equal(ram[0x1000000], 0x90); /* payload in place */
    free(img);
}

static void test_bzimage_refusals(void **state)
{
    size_t len;
    uint8_t *img = make_bzimage(&len);
    struct kernel_image k;
    struct kernel_plan p;
    /* command line longer than cmdline_size */
    assert_int_equal(kernel_probe("t", img, len, &k), 0);
    assert_int_equal(kernel_plan(&k, RAM, 0, 300, &p), -1);
    /* no room: RAM too small for init_size above 2 MiB alignment */
    assert_int_equal(kernel_plan(&k, 4 * MiB, 0, 0, &p), -1);
    /* initrd bigger than the space above the kernel */
    assert_int_equal(kernel_plan(&k, RAM, RAM - 20 * MiB, 0, &p), 0);
    assert_int_equal(kernel_plan(&k, RAM, RAM - 20 * MiB + 4096, 0, &p), -1);
    /* initrd_addr_max honoured */
    put_le32(img + 0x22C, 0x1FFFFFF);
    assert_int_equal(kernel_probe("t", img, len, &k), 0);
    assert_int_equal(kernel_plan(&k, RAM, 4096, 0, &p), 0);
    assert_true(p.initrd_addr + 4096 <= 0x2000000);
    /* 32-bit-only kernels and truncated files */
    put_le16(img + 0x236, 0);
    assert_int_equal(kernel_probe("t", img, len, &k), -1);
    put_le16(img + 0x236, 1);
    assert_int_equal(kernel_probe("t", img, len - 100, &k), -1);
    free(img);
}

/* An ELF64 with one PT_LOAD at 2 MiB and a PVH note. */
static uint8_t *make_pvh(size_t *len, uint32_t entry)
{
    size_t sz = 0x3000;
    uint8_t *d = calloc(1, sz);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)(void *)d;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_machine = EM_X86_64;
    eh->e_phoff = sizeof(*eh);
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 2;
    Elf64_Phdr *ph = (Elf64_Phdr *)(void *)(d + sizeof(*eh));
    ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = 0x1000,
                         .p_paddr = 0x200000, .p_filesz = 0x1000,
                         .p_memsz = 0x3000};
    ph[1] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = 0x2000,
                         .p_filesz = 20};
    memset(d + 0x1000, 0xCC, 0x1000);
    uint8_t *n = d + 0x2000;
    put_le32(n, 4);
    put_le32(n + 4, 4);
    put_le32(n + 8, 18);
    memcpy(n + 12, "Xen", 4);
    put_le32(n + 16, entry);
    *len = sz;
    return d;
}

static void test_pvh_start_info(void **state)
{
    size_t len;
    uint8_t *img = make_pvh(&len, 0x200040);
    struct kernel_image k;
    struct kernel_plan p;
    assert_int_equal(kernel_probe("t", img, len, &k), 0);
    assert_int_equal(k.kind, KERNEL_PVH);
    assert_int_equal(k.entry, 0x200040);
    uint8_t initrd[3000];
    memset(initrd, 0x5A, sizeof(initrd));
    assert_int_equal(kernel_plan(&k, RAM, sizeof(initrd), 4, &p), 0);
    assert_int_equal(p.kernel_end, 0x203000);

    memset(ram + 0x202000, 0xEE, 0x1000); /* bss must be cleared */
    struct machine_info mi = {.ncpus = 2, .ram_size = RAM};
    struct e820_entry e820[E820_MAX_ENTRIES];
    struct kernel_boot_info info = {
        .cmdline = "quiet", .initrd = initrd, .e820 = e820,
        .e820_count = e820_build(&mi, E820_DIRECT, e820, E820_MAX_ENTRIES),
        .rsdp_addr = LAYOUT_ACPI_START};
    struct kernel_entry entry;
    assert_int_equal(kernel_load(&k, &p, &info, &mem, &entry), 0);
    assert_int_equal(entry.mode, ENTRY_PROT32);
    assert_int_equal(entry.rip, 0x200040);
    assert_int_equal(entry.rbx, LAYOUT_PVH_INFO);
    const uint8_t *si = ram + LAYOUT_PVH_INFO;
    assert_int_equal(get_le32(si), 0x336ec578);
    assert_int_equal(get_le32(si + 4), 1);
    assert_int_equal(get_le32(si + 12), 1); /* one module: the initrd */
    uint64_t modlist = get_le64(si + 16);
    assert_int_equal(get_le64(ram + modlist), p.initrd_addr);
    assert_int_equal(get_le64(ram + modlist + 8), sizeof(initrd));
    assert_string_equal((char *)ram + get_le64(si + 24), "quiet");
    assert_int_equal(get_le64(si + 32), LAYOUT_ACPI_START);
    uint64_t mm = get_le64(si + 40);
    assert_int_equal(get_le32(si + 48), info.e820_count);
    for (unsigned i = 0; i < info.e820_count; i++) {
        assert_int_equal(get_le64(ram + mm + 24 * i), e820[i].addr);
        assert_int_equal(get_le64(ram + mm + 24 * i + 8), e820[i].size);
        assert_int_equal(get_le32(ram + mm + 24 * i + 16), e820[i].type);
    }
    assert_int_equal(ram[0x200000], 0xCC);
    assert_int_equal(ram[0x202000], 0); /* memsz beyond filesz zeroed */
    free(img);
}

static void test_pvh_refusals(void **state)
{
    size_t len;
    uint8_t *img = make_pvh(&len, 0x200040);
    struct kernel_image k;
    struct kernel_plan p;
    /* note missing */
    put_le32(img + 0x2000 + 8, 17);
    assert_int_equal(kernel_probe("t", img, len, &k), -1);
    put_le32(img + 0x2000 + 8, 18);
    /* segment beyond the file */
    Elf64_Phdr *ph = (Elf64_Phdr *)(void *)(img + sizeof(Elf64_Ehdr));
    ph[0].p_filesz = 0x10000;
    assert_int_equal(kernel_probe("t", img, len, &k), -1);
    ph[0].p_filesz = 0x1000;
    /* segment below 1 MiB or beyond RAM */
    ph[0].p_paddr = 0x80000;
    assert_int_equal(kernel_probe("t", img, len, &k), 0);
    assert_int_equal(kernel_plan(&k, RAM, 0, 0, &p), -1);
    ph[0].p_paddr = RAM - 0x1000;
    assert_int_equal(kernel_probe("t", img, len, &k), 0);
    assert_int_equal(kernel_plan(&k, RAM, 0, 0, &p), -1);
    /* overflowing segment */
    ph[0].p_paddr = UINT64_MAX - 0x100;
    assert_int_equal(kernel_probe("t", img, len, &k), 0);
    assert_int_equal(kernel_plan(&k, RAM, 0, 0, &p), -1);
    /* garbage */
    assert_int_equal(kernel_probe("t", img + 1, len - 1, &k), -1);
    free(img);
}

static void test_layout_regions_disjoint(void **state)
{
    struct {
        uint64_t start, size;
    } r[] = {
        {LAYOUT_BOOT_GDT, 5 * 8},
        {LAYOUT_PVH_INFO, LAYOUT_PVH_INFO_SIZE},
        {LAYOUT_ZERO_PAGE, 0x1000},
        {LAYOUT_PAGE_TABLES, LAYOUT_PAGE_TABLES_SIZE},
        {LAYOUT_CMDLINE, LAYOUT_CMDLINE_MAX},
        {LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE},
        {LAYOUT_SMBIOS_START, LAYOUT_SMBIOS_SIZE},
        {LAYOUT_MPTABLE_START, LAYOUT_MPTABLE_SIZE},
        {LAYOUT_IOAPIC_BASE, LAYOUT_IOAPIC_SIZE},
        {LAYOUT_LAPIC_BASE, LAYOUT_LAPIC_SIZE},
        {LAYOUT_KVM_TSS, LAYOUT_KVM_PRIVATE_SIZE},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(r); i++)
        for (unsigned j = i + 1; j < ARRAY_SIZE(r); j++)
            assert_true(r[i].start + r[i].size <= r[j].start ||
                        r[j].start + r[j].size <= r[i].start);
    /* the boot structures sit in conventional memory, the tables in the
     * reserved BIOS area, the fixed MMIO above the 32-bit BAR window */
    assert_true(LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX <= LAYOUT_EBDA_START);
    assert_true(LAYOUT_ACPI_START >= LAYOUT_BIOS_AREA_START);
    assert_true(LAYOUT_MPTABLE_START + LAYOUT_MPTABLE_SIZE <= LAYOUT_HIGH_MEM_START);
    assert_true(LAYOUT_IOAPIC_BASE >= LAYOUT_PCI_MMIO32_END);
    assert_true(LAYOUT_KVM_TSS + LAYOUT_KVM_PRIVATE_SIZE <=
                LAYOUT_4G - LAYOUT_BIOS_RESERVED_SIZE);
    /* the hole below 4 GiB is a power of two for every RAM size */
    for (uint64_t ram_mib = 32; ram_mib <= 8192; ram_mib += 32) {
        uint64_t hole = LAYOUT_4G - layout_pci_hole_start(ram_mib * MiB);
        assert_true(IS_POWER_OF_2(hole));
        assert_true(layout_lowmem(ram_mib * MiB) <=
                    layout_pci_hole_start(ram_mib * MiB));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bzimage_zero_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bzimage_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pvh_start_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pvh_refusals, setup, teardown),
        cmocka_unit_test(test_layout_regions_disjoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
