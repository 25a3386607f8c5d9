#include "platform/e820.h"

#include "platform/layout.h"

static unsigned add(struct e820_entry *out, unsigned n, unsigned max,
                    uint64_t addr, uint64_t size, uint32_t type)
{
    if (n < max && size)
        out[n++] = (struct e820_entry){addr, size, type};
    return n;
}

unsigned e820_build(const struct machine_info *mi, enum e820_flavor flavor,
                    struct e820_entry *out, unsigned max)
{
    uint64_t low = layout_lowmem(mi->ram_size);
    uint64_t high = layout_highmem(mi->ram_size);
    unsigned n = 0;

    if (flavor == E820_DIRECT) {
        n = add(out, n, max, 0, LAYOUT_EBDA_START, E820_RAM);
        n = add(out, n, max, LAYOUT_EBDA_START,
                LAYOUT_LOW_RAM_END - LAYOUT_EBDA_START, E820_RESERVED);
        n = add(out, n, max, LAYOUT_BIOS_AREA_START,
                LAYOUT_HIGH_MEM_START - LAYOUT_BIOS_AREA_START, E820_RESERVED);
        n = add(out, n, max, LAYOUT_HIGH_MEM_START,
                low - LAYOUT_HIGH_MEM_START, E820_RAM);
    } else {
        n = add(out, n, max, 0, low, E820_RAM);
    }
    n = add(out, n, max, LAYOUT_KVM_TSS, LAYOUT_KVM_PRIVATE_SIZE,
            E820_RESERVED);
    n = add(out, n, max, LAYOUT_MEM_ABOVE_4G, high, E820_RAM);
    return n;
}
