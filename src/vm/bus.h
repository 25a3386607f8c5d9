/* Port-I/O and MMIO dispatch: a per-VM sorted range map. Ranges never
 * overlap; an access is delivered only if it fits inside one range. */
#ifndef KVMPC_BUS_H
#define KVMPC_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
    /* off is relative to the range base; data holds len bytes, LE. */
    void (*read)(void *opaque, uint64_t off, void *data, unsigned len);
    void (*write)(void *opaque, uint64_t off, const void *data, unsigned len);
};

struct bus_range {
    uint64_t base;
    uint64_t len;
    const struct bus_ops *ops;
    void *opaque;
    const char *name;
};

struct bus {
    pthread_rwlock_t lock; /* taken for the lookup only, never during a call */
    struct bus_range *ranges; /* sorted by base */
    unsigned count, cap;
};

int bus_init(struct bus *b);
void bus_destroy(struct bus *b);

/* Fails (-1) on len 0, overflow, or overlap with an existing range. */
int bus_add(struct bus *b, uint64_t base, uint64_t len,
            const struct bus_ops *ops, void *opaque, const char *name)
    __attribute__((warn_unused_result));
/* Removes the range starting at base owned by opaque; -1 if none. */
int bus_remove(struct bus *b, uint64_t base, void *opaque);

/* Dispatch. Returns false if no range claims the whole access; the
 * caller then applies the unclaimed-access policy. */
bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned len);
bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned len);

#endif
