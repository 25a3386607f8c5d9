/* A minimal guest-side virtio driver for tests and fuzzers: builds split
 * rings in a flat "guest RAM" buffer the way a driver would. */
#ifndef KVMPC_TEST_VRING_DRIVER_H
#define KVMPC_TEST_VRING_DRIVER_H

#include <stdint.h>
#include <string.h>

#include "util.h"

struct test_ring {
    uint8_t *ram;      /* host view of guest RAM starting at gpa 0 */
    uint16_t size;
    uint64_t desc, avail, used; /* gpas */
    uint16_t avail_idx;
    uint16_t used_seen;
};

/* Rings at base (4 KiB aligned), laid out like the legacy layout. */
static inline void tr_init(struct test_ring *t, uint8_t *ram, uint64_t base,
                           uint16_t size)
{
    memset(t, 0, sizeof(*t));
    t->ram = ram;
    t->size = size;
    t->desc = base;
    t->avail = base + 16ULL * size;
    t->used = ALIGN_UP(t->avail + 6 + 2ULL * size, 4096ULL);
    memset(ram + t->desc, 0, t->used + 6 + 8ULL * size - base);
}

static inline void tr_desc_at(uint8_t *p, uint64_t addr, uint32_t len,
                              uint16_t flags, uint16_t next)
{
    put_le64(p, addr);
    put_le32(p + 8, len);
    put_le16(p + 12, flags);
    put_le16(p + 14, next);
}

static inline void tr_desc(struct test_ring *t, uint16_t idx, uint64_t addr,
                           uint32_t len, uint16_t flags, uint16_t next)
{
    tr_desc_at(t->ram + t->desc + 16ULL * idx, addr, len, flags, next);
}

/* Makes head available and bumps avail.idx. */
static inline void tr_publish(struct test_ring *t, uint16_t head)
{
    put_le16(t->ram + t->avail + 4 + 2 * (t->avail_idx % t->size), head);
    t->avail_idx++;
    put_le16(t->ram + t->avail + 2, t->avail_idx);
}

static inline void tr_set_avail_idx(struct test_ring *t, uint16_t idx)
{
    t->avail_idx = idx;
    put_le16(t->ram + t->avail + 2, idx);
}

static inline uint16_t tr_used_idx(const struct test_ring *t)
{
    return get_le16(t->ram + t->used + 2);
}

static inline uint16_t tr_used_flags(const struct test_ring *t)
{
    return get_le16(t->ram + t->used);
}

static inline uint16_t tr_avail_event(const struct test_ring *t)
{
    return get_le16(t->ram + t->used + 4 + 8ULL * t->size);
}

static inline void tr_set_used_event(struct test_ring *t, uint16_t v)
{
    put_le16(t->ram + t->avail + 4 + 2ULL * t->size, v);
}

static inline void tr_set_avail_flags(struct test_ring *t, uint16_t v)
{
    put_le16(t->ram + t->avail, v);
}

/* Used element number n (counting from 0 since the queue was enabled). */
static inline void tr_used_elem(const struct test_ring *t, uint16_t n,
                                uint32_t *id, uint32_t *len)
{
    const uint8_t *e = t->ram + t->used + 4 + 8 * (n % t->size);
    *id = get_le32(e);
    *len = get_le32(e + 4);
}

#endif
