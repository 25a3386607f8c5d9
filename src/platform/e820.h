/* The guest memory map, one builder for every consumer (zero page, PVH
 * start info, fw_cfg "etc/e820"). */
#ifndef KVMPC_E820_H
#define KVMPC_E820_H

#include <stdint.h>

#include "platform/machine_info.h"

#define E820_RAM 1
#define E820_RESERVED 2
#define E820_ACPI 3

#define E820_MAX_ENTRIES 16

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

enum e820_flavor {
    /* Direct boot: the VMM owns the legacy area, so low RAM stops at the
     * EBDA and 0xE0000-0xFFFFF (tables) is reserved. */
    E820_DIRECT,
    /* Firmware boot: RAM [0, lowmem) as one entry; firmware carves out its
     * own legacy holes (contract §2.8). */
    E820_FIRMWARE,
};

/* Returns the number of entries written (sorted by address). */
unsigned e820_build(const struct machine_info *mi, enum e820_flavor flavor,
                    struct e820_entry *out, unsigned max);

#endif
