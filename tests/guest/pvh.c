/* PVH glue: reads struct hvm_start_info (version 1) into kit_boot, and
 * the PVH part of the bootinfo test. */
#include "kit.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr; /* version 1 */
    uint32_t memmap_entries;
    uint32_t reserved;
};

struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};

struct hvm_memmap_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

static struct hvm_start_info si; /* copied once, then used */
static long cmdline_len;

static void copy_memmap(void)
{
    const struct hvm_memmap_entry *mm =
        (const struct hvm_memmap_entry *)(uintptr_t)si.memmap_paddr;

    if (si.version < 1 || !si.memmap_paddr ||
        si.memmap_paddr >= LAYOUT_4G - KIT_MAX_MEM * sizeof(*mm))
        return;
    for (uint32_t i = 0; i < si.memmap_entries && i < KIT_MAX_MEM; i++) {
        kit_boot.mem[i] = (struct kit_mem_range){mm[i].addr, mm[i].size,
                                                 mm[i].type};
        kit_boot.mem_count = i + 1;
    }
}

static void copy_modules(void)
{
    const struct hvm_modlist_entry *ml =
        (const struct hvm_modlist_entry *)(uintptr_t)si.modlist_paddr;

    if (!si.nr_modules || !si.modlist_paddr ||
        si.modlist_paddr >= LAYOUT_4G - sizeof(*ml))
        return;
    kit_boot.initrd_addr = ml[0].paddr;
    kit_boot.initrd_size = ml[0].size;
}

void kit_pvh_main(uint64_t info);

void kit_pvh_main(uint64_t info)
{
    console_init();
    cpu_load_gdt();
    paging_identity_4g();
    if (info >= LAYOUT_4G - sizeof(si))
        kit_fatal("hvm_start_info pointer 0x%lx out of range", info);
    memcpy(&si, (const void *)(uintptr_t)info, sizeof(si));
    if (si.magic != HVM_START_MAGIC)
        kit_fatal("hvm_start_info at 0x%lx: bad magic 0x%x", info, si.magic);
    kit_boot.protocol = "pvh";
    kit_boot.info_addr = info;
    kit_boot.info_size = sizeof(si);
    kit_boot.rsdp_addr = si.rsdp_paddr;
    kit_boot.image_start = (uintptr_t)__image_start;
    kit_boot.image_end = (uintptr_t)__image_end;
    cmdline_len = kit_boot_set_cmdline(si.cmdline_paddr, LAYOUT_CMDLINE_MAX);
    copy_memmap();
    copy_modules();
    kit_main();
}

void boot_protocol_checks(void)
{
    kit_info("pvh.start_info", "0x%lx version %u flags 0x%x modules %u",
             kit_boot.info_addr, si.version, si.flags, si.nr_modules);
    kit_check(si.version >= 1 && si.memmap_paddr && si.memmap_entries &&
                  si.memmap_entries <= KIT_MAX_MEM,
              "pvh-memmap", "version %u, %u entries at 0x%lx", si.version,
              si.memmap_entries, si.memmap_paddr);
    kit_check(cmdline_len >= 0, "pvh-cmdline",
              "at 0x%lx, %ld bytes, NUL-terminated", si.cmdline_paddr,
              cmdline_len);
    kit_check(si.rsdp_paddr != 0, "pvh-rsdp", "rsdp_paddr 0x%lx",
              si.rsdp_paddr);
}
