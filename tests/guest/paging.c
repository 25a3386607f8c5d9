/* The guest's own identity map of [0, 4 GiB) with 2 MiB pages, and a
 * walker to check the one a loader handed over. */
#include "kit.h"

#define PTE_P 0x001ULL
#define PTE_RW 0x002ULL
#define PTE_PWT 0x008ULL
#define PTE_PCD 0x010ULL
#define PTE_PS 0x080ULL
#define PTE_ADDR 0x000FFFFFFFFFF000ULL

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[4][512] __attribute__((aligned(4096)));

void paging_identity_4g(void)
{
    for (unsigned g = 0; g < 4; g++) {
        /* The last GiB holds the PCI hole, IOAPIC and LAPIC: uncached. */
        uint64_t attr = PTE_P | PTE_RW | PTE_PS | (g == 3 ? PTE_PCD | PTE_PWT : 0);
        for (unsigned i = 0; i < 512; i++)
            pd[g][i] = (g * GiB + i * 2 * MiB) | attr;
        pdpt[g] = (uint64_t)(uintptr_t)pd[g] | PTE_P | PTE_RW;
    }
    pml4[0] = (uint64_t)(uintptr_t)pdpt | PTE_P | PTE_RW;
    __asm__ volatile("mov %0, %%cr3" : : "r"((uint64_t)(uintptr_t)pml4)
                     : "memory");
}

/* Reads one entry of a table; tables are reached through the identity
 * map, so only the low 4 GiB are readable. */
static bool read_entry(uint64_t table, unsigned index, uint64_t *e)
{
    uint64_t addr = (table & PTE_ADDR) + index * 8;
    if (addr >= LAYOUT_4G)
        return false;
    *e = *(volatile uint64_t *)(uintptr_t)addr;
    return *e & PTE_P;
}

bool paging_translate(uint64_t cr3, uint64_t va, uint64_t *pa)
{
    uint64_t e = cr3;
    /* PML4, PDPT (1 GiB pages), PD (2 MiB pages), PT. */
    static const unsigned shift[4] = {39, 30, 21, 12};

    for (unsigned level = 0; level < 4; level++) {
        if (!read_entry(e, (va >> shift[level]) & 511, &e))
            return false;
        if (level == 3 || (level > 0 && (e & PTE_PS))) {
            uint64_t mask = (1ULL << shift[level]) - 1;
            *pa = ((e & PTE_ADDR) & ~mask) | (va & mask);
            return true;
        }
    }
    return false;
}
