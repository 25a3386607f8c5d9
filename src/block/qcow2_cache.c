/* The qcow2 metadata cache: one cluster per entry, a hash by key, an LRU
 * list for eviction and a list of dirty entries for writeback. Eviction
 * happens only in mc_trim(), which the driver calls when no request code
 * holds entry pointers; dirty and busy entries are never evicted. */
#include "block/qcow2_int.h"

#include <stdlib.h>
#include <string.h>

static unsigned bucket(const struct mcache *c, uint64_t key)
{
    key *= 0x9e3779b97f4a7c15ull;
    return (unsigned)(key >> 40) & (c->nbuckets - 1);
}

int mc_init(struct mcache *c, size_t entry_size, size_t max)
{
    memset(c, 0, sizeof(*c));
    c->nbuckets = 256;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets)
        return -1;
    c->entry_size = entry_size;
    c->max = max;
    return 0;
}

static void lru_unlink(struct mcache *c, struct mentry *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        c->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        c->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push(struct mcache *c, struct mentry *e)
{
    e->lprev = NULL;
    e->lnext = c->lru_head;
    if (c->lru_head)
        c->lru_head->lprev = e;
    else
        c->lru_tail = e;
    c->lru_head = e;
}

static void grow(struct mcache *c)
{
    unsigned n = c->nbuckets * 2;
    struct mentry **b = calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    struct mentry **old = c->buckets;
    unsigned oldn = c->nbuckets;
    c->buckets = b;
    c->nbuckets = n;
    for (unsigned i = 0; i < oldn; i++) {
        struct mentry *e = old[i];
        while (e) {
            struct mentry *next = e->hnext;
            unsigned k = bucket(c, e->key);
            e->hnext = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(old);
}

struct mentry *mc_find(struct mcache *c, uint64_t key)
{
    for (struct mentry *e = c->buckets[bucket(c, key)]; e; e = e->hnext) {
        if (e->key == key) {
            if (c->lru_head != e) {
                lru_unlink(c, e);
                lru_push(c, e);
            }
            return e;
        }
    }
    return NULL;
}

struct mentry *mc_insert(struct mcache *c, uint64_t key, uint64_t offset)
{
    struct mentry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->data = blk_alloc_buf(c->entry_size);
    if (!e->data) {
        free(e);
        return NULL;
    }
    e->key = key;
    e->offset = offset;
    if (c->count >= c->nbuckets * 2)
        grow(c);
    unsigned k = bucket(c, key);
    e->hnext = c->buckets[k];
    c->buckets[k] = e;
    lru_push(c, e);
    c->count++;
    return e;
}

static void dirty_unlink(struct mcache *c, struct mentry *e)
{
    for (struct mentry **p = &c->dirty; *p; p = &(*p)->dnext) {
        if (*p == e) {
            *p = e->dnext;
            e->listed = false;
            return;
        }
    }
}

void mc_remove(struct mcache *c, struct mentry *e)
{
    for (struct mentry **p = &c->buckets[bucket(c, e->key)]; *p;
         p = &(*p)->hnext) {
        if (*p == e) {
            *p = e->hnext;
            break;
        }
    }
    if (e->listed)
        dirty_unlink(c, e);
    if (e->dirty)
        c->ndirty--;
    lru_unlink(c, e);
    c->count--;
    free(e->data);
    free(e);
}

void mc_mark_dirty(struct mcache *c, struct mentry *e)
{
    if (!e->dirty) {
        e->dirty = true;
        c->ndirty++;
    }
    if (!e->listed) {
        e->listed = true;
        e->dnext = c->dirty;
        c->dirty = e;
    }
}

void mc_trim(struct mcache *c)
{
    struct mentry *e = c->lru_tail;
    unsigned pinned = 0; /* bounded work when the tail is all dirty */
    while (c->count > c->max && e && pinned < 64) {
        struct mentry *prev = e->lprev;
        if (!e->dirty && !e->busy && !e->fresh)
            mc_remove(c, e);
        else
            pinned++;
        e = prev;
    }
}

void mc_destroy(struct mcache *c)
{
    while (c->lru_head)
        mc_remove(c, c->lru_head);
    free(c->buckets);
    c->buckets = NULL;
}
