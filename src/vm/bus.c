#include "vm/bus.h"

#include <stdlib.h>
#include <string.h>

int bus_init(struct bus *b)
{
    memset(b, 0, sizeof(*b));
    return pthread_rwlock_init(&b->lock, NULL) ? -1 : 0;
}

void bus_destroy(struct bus *b)
{
    free(b->ranges);
    pthread_rwlock_destroy(&b->lock);
    memset(b, 0, sizeof(*b));
}

/* Index of the first range whose base is > addr. */
static unsigned upper_bound(const struct bus *b, uint64_t addr)
{
    unsigned lo = 0, hi = b->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (b->ranges[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int bus_add(struct bus *b, uint64_t base, uint64_t len,
            const struct bus_ops *ops, void *opaque, const char *name)
{
    uint64_t last;
    if (len == 0 || __builtin_add_overflow(base, len - 1, &last))
        return -1;
    pthread_rwlock_wrlock(&b->lock);
    unsigned pos = upper_bound(b, base);
    bool overlap = (pos > 0 && b->ranges[pos - 1].base +
                                       (b->ranges[pos - 1].len - 1) >= base) ||
                   (pos < b->count && b->ranges[pos].base <= last);
    if (overlap) {
        pthread_rwlock_unlock(&b->lock);
        return -1;
    }
    if (b->count == b->cap) {
        unsigned cap = b->cap ? b->cap * 2 : 16;
        struct bus_range *r = realloc(b->ranges, cap * sizeof(*r));
        if (!r) {
            pthread_rwlock_unlock(&b->lock);
            return -1;
        }
        b->ranges = r;
        b->cap = cap;
    }
    memmove(&b->ranges[pos + 1], &b->ranges[pos],
            (b->count - pos) * sizeof(b->ranges[0]));
    b->ranges[pos] = (struct bus_range){base, len, ops, opaque, name};
    b->count++;
    pthread_rwlock_unlock(&b->lock);
    return 0;
}

int bus_remove(struct bus *b, uint64_t base, void *opaque)
{
    int ret = -1;
    pthread_rwlock_wrlock(&b->lock);
    unsigned pos = upper_bound(b, base);
    if (pos > 0 && b->ranges[pos - 1].base == base &&
        b->ranges[pos - 1].opaque == opaque) {
        memmove(&b->ranges[pos - 1], &b->ranges[pos],
                (b->count - pos) * sizeof(b->ranges[0]));
        b->count--;
        ret = 0;
    }
    pthread_rwlock_unlock(&b->lock);
    return ret;
}

/* Copies the claiming range out under the lock so the handler runs
 * unlocked: handlers may themselves add or remove ranges (BAR moves). */
static bool lookup(struct bus *b, uint64_t addr, unsigned len,
                   struct bus_range *out)
{
    bool found = false;
    pthread_rwlock_rdlock(&b->lock);
    unsigned pos = upper_bound(b, addr);
    if (pos > 0) {
        const struct bus_range *r = &b->ranges[pos - 1];
        uint64_t off = addr - r->base;
        if (off < r->len && len <= r->len - off) {
            *out = *r;
            found = true;
        }
    }
    pthread_rwlock_unlock(&b->lock);
    return found;
}

bool bus_read(struct bus *b, uint64_t addr, void *data, unsigned len)
{
    struct bus_range r;
    if (!lookup(b, addr, len, &r))
        return false;
    if (r.ops->read)
        r.ops->read(r.opaque, addr - r.base, data, len);
    return true;
}

bool bus_write(struct bus *b, uint64_t addr, const void *data, unsigned len)
{
    struct bus_range r;
    if (!lookup(b, addr, len, &r))
        return false;
    if (r.ops->write)
        r.ops->write(r.opaque, addr - r.base, data, len);
    return true;
}
