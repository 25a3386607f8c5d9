/* Direct kernel boot: bzImage (64-bit boot protocol) and ELF vmlinux with
 * a PVH entry note. Split into probe (parse and validate the file), plan
 * (decide every address for a given RAM size; reports what does not fit)
 * and load (write into guest memory, produce the entry state), so that all
 * bad input is refused before the VM exists. */
#ifndef KVMPC_KERNEL_H
#define KVMPC_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "platform/e820.h"
#include "vm/memory.h"

enum kernel_kind {
    KERNEL_BZIMAGE,
    KERNEL_PVH,
};

#define KERNEL_MAX_SEGMENTS 16

struct kernel_segment {
    uint64_t paddr;
    uint64_t file_offset;
    uint64_t file_size;
    uint64_t mem_size;
};

struct kernel_image {
    enum kernel_kind kind;
    const uint8_t *data; /* the file, owned by the caller */
    size_t len;
    /* bzImage */
    size_t setup_len;    /* real-mode part incl. boot sector */
    uint16_t version;
    uint32_t initrd_addr_max;
    uint32_t cmdline_max; /* bytes excluding NUL */
    uint32_t alignment;
    uint64_t pref_address;
    uint64_t init_size;
    bool relocatable;
    /* PVH */
    uint64_t entry;
    struct kernel_segment seg[KERNEL_MAX_SEGMENTS];
    unsigned nseg;
};

struct kernel_plan {
    uint64_t load_addr; /* bzImage: protected-mode kernel */
    uint64_t kernel_end;
    uint64_t initrd_addr;
    uint64_t initrd_len;
};

enum entry_mode {
    ENTRY_LONG64, /* bzImage: long mode, identity-mapped low 4 GiB */
    ENTRY_PROT32, /* PVH: flat 32-bit protected mode, paging off */
};

struct kernel_entry {
    enum entry_mode mode;
    uint64_t rip;
    uint64_t rsi; /* bzImage: boot_params */
    uint64_t rbx; /* PVH: hvm_start_info */
};

/* Parses the file; reports "kernel '<path>': <problem>" on failure. */
int kernel_probe(const char *path, const uint8_t *data, size_t len,
                 struct kernel_image *k);

/* Places kernel and initrd in RAM below lowmem; reports what does not fit. */
int kernel_plan(const struct kernel_image *k, uint64_t lowmem,
                uint64_t initrd_len, size_t cmdline_len, struct kernel_plan *p);

struct kernel_boot_info {
    const char *cmdline; /* may be NULL */
    const uint8_t *initrd;
    const struct e820_entry *e820;
    unsigned e820_count;
    uint64_t rsdp_addr;
};

/* Writes kernel, initrd, command line and boot_params/hvm_start_info into
 * guest memory and returns the entry state. */
int kernel_load(const struct kernel_image *k, const struct kernel_plan *p,
                const struct kernel_boot_info *info,
                const struct guest_mem *mem, struct kernel_entry *entry);

#endif
