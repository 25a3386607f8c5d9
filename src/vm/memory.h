/* Guest physical memory as the host sees it, and THE checked accessor.
 * Everything that touches guest memory on behalf of a guest-supplied
 * address goes through gpa_ptr(); there is no unchecked translator. */
#ifndef KVMPC_MEMORY_H
#define KVMPC_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 8

enum gmem_access {
    GMEM_READ = 1,
    GMEM_WRITE = 2,
};

struct gmem_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
    bool readonly; /* the guest cannot write it (ROM); neither may devices */
};

struct guest_mem {
    struct gmem_region regions[GMEM_MAX_REGIONS];
    unsigned count;
};

/* Adds a region backed by host memory; regions must not overlap.
 * Returns 0 or -1 (too many regions, overlap, overflow). */
int gmem_add(struct guest_mem *m, uint64_t gpa, uint64_t size, uint8_t *host,
             bool readonly);

/* Host pointer for [gpa, gpa + len) if that whole range lies inside one
 * region and the region allows the access; NULL otherwise (also on
 * overflow). len 0 is checked as len 1. */
void *gpa_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len,
              enum gmem_access access);

/* Copies between guest memory and a host buffer; the range may span
 * adjacent regions. Returns 0, or -1 if any byte is outside guest memory. */
int gmem_read(const struct guest_mem *m, uint64_t gpa, void *buf, size_t len);
int gmem_write(const struct guest_mem *m, uint64_t gpa, const void *buf,
               size_t len);

#endif
