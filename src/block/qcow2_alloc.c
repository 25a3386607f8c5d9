/* qcow2 host cluster management: refcounts (any width from 1 to 64 bits),
 * allocation, refcount blocks and refcount table growth, deferred frees,
 * and the set of metadata clusters that data writes must never hit. */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Host offsets live in bits 9..55 of table entries. */
#define MAX_HOST_CLUSTER(q) (1ull << (56 - (q)->m.cb))

uint64_t qcow2_rb_get_entry(const uint8_t *b, unsigned order, uint64_t i)
{
    switch (order) {
    case 3:
        return b[i];
    case 4:
        return get_be16(b + 2 * i);
    case 5:
        return get_be32(b + 4 * i);
    case 6:
        return get_be64(b + 8 * i);
    default: {
        unsigned bits = 1u << order;
        uint64_t bit = i << order;
        return (b[bit >> 3] >> (bit & 7)) & ((1u << bits) - 1);
    }
    }
}

void qcow2_rb_set_entry(uint8_t *b, unsigned order, uint64_t i, uint64_t v)
{
    switch (order) {
    case 3:
        b[i] = (uint8_t)v;
        return;
    case 4:
        put_be16(b + 2 * i, (uint16_t)v);
        return;
    case 5:
        put_be32(b + 4 * i, (uint32_t)v);
        return;
    case 6:
        put_be64(b + 8 * i, v);
        return;
    default: {
        unsigned bits = 1u << order;
        uint64_t bit = i << order;
        unsigned mask = ((1u << bits) - 1) << (bit & 7);
        b[bit >> 3] = (uint8_t)((b[bit >> 3] & ~mask) |
                                ((v << (bit & 7)) & mask));
        return;
    }
    }
}

static uint64_t rc_max(unsigned order)
{
    return order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
}

int qcow2_corrupt(struct qcow2 *q, const char *fmt, ...)
{
    q->broken = true;
    if (q->warnings < 5) {
        q->warnings++;
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        report_warning("'%s' is corrupt: %s; writes to it now fail", q->path,
                       msg);
    }
    return -EIO;
}

/* ---- dirty chunks of the in-memory L1 and refcount tables ---- */

void qcow2_l1_dirty(struct qcow2 *q, uint64_t l1i)
{
    q->l1_dirty[l1i / 64] = 1; /* 64 entries per 512-byte chunk */
}

void qcow2_rt_dirty(struct qcow2 *q, uint64_t rti)
{
    q->rt_dirty[rti / 64] = 1;
}

/* ---- metadata clusters ---- */

static size_t meta_pos(const struct qcow2 *q, uint64_t c)
{
    size_t lo = 0, hi = q->nmeta;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (q->meta[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int qcow2_meta_add(struct qcow2 *q, uint64_t off)
{
    uint64_t c = off >> q->m.cb;
    size_t i = meta_pos(q, c);
    if (i < q->nmeta && q->meta[i] == c)
        return 0;
    if (q->nmeta == q->cap_meta) {
        size_t cap = q->cap_meta ? q->cap_meta * 2 : 64;
        uint64_t *p = realloc(q->meta, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        q->meta = p;
        q->cap_meta = cap;
    }
    memmove(q->meta + i + 1, q->meta + i, (q->nmeta - i) * sizeof(*q->meta));
    q->meta[i] = c;
    q->nmeta++;
    return 0;
}

void qcow2_meta_del(struct qcow2 *q, uint64_t off)
{
    uint64_t c = off >> q->m.cb;
    size_t i = meta_pos(q, c);
    if (i < q->nmeta && q->meta[i] == c) {
        memmove(q->meta + i, q->meta + i + 1,
                (q->nmeta - i - 1) * sizeof(*q->meta));
        q->nmeta--;
    }
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
                           uint64_t blen)
{
    return blen && alen && a < b + blen && b < a + alen;
}

bool qcow2_overlaps_meta(const struct qcow2 *q, uint64_t off, uint64_t len)
{
    const struct qcow2_meta *m = &q->m;
    if (ranges_overlap(off, len, 0, m->cs) ||
        ranges_overlap(off, len, m->h.l1_table_offset,
                       (uint64_t)m->h.l1_size * 8) ||
        ranges_overlap(off, len, q->rt_offset,
                       (uint64_t)q->rt_clusters << m->cb) ||
        ranges_overlap(off, len, m->h.snapshots_offset, m->snap_table_bytes))
        return true;
    for (uint32_t i = 0; i < m->nb_snaps; i++)
        if (ranges_overlap(off, len, m->snaps[i].l1_offset,
                           (uint64_t)m->snaps[i].l1_size * 8))
            return true;
    uint64_t first = off >> m->cb, last = (off + len - 1) >> m->cb;
    size_t i = meta_pos(q, first);
    return i < q->nmeta && q->meta[i] <= last;
}

/* ---- refcount blocks ---- */

static bool rb_exists(const struct qcow2 *q, uint64_t rti)
{
    return rti < q->m.rt_entries && q->m.rt[rti];
}

static int rb_load(struct qcow2 *q, uint64_t rti, struct mentry **out)
{
    uint64_t off = q->m.rt[rti] & REFT_OFFSET_MASK;
    struct mentry *e = mc_find(&q->rbc, rti);
    if (e && e->offset == off) {
        *out = e;
        return 0;
    }
    if (e) /* the table entry changed under a clean entry: reload */
        mc_remove(&q->rbc, e);
    if ((off & (q->m.cs - 1)) || !off || off >= q->f.size)
        return qcow2_corrupt(q, "refcount block %#llx is outside the file",
                             (unsigned long long)off);
    e = mc_insert(&q->rbc, rti, off);
    if (!e)
        return -ENOMEM;
    int r = blk_file_pread(&q->f, e->data, q->m.cs, off);
    if (r < 0) {
        mc_remove(&q->rbc, e);
        return r;
    }
    *out = e;
    return 0;
}

static int grow_reftable(struct qcow2 *q, uint64_t need);

/* A new, empty refcount block for range rti, stored in cluster c. The
 * caller accounts for c's own refcount. */
static int rb_create_at(struct qcow2 *q, uint64_t rti, uint64_t c)
{
    if (rti >= q->m.rt_entries) {
        int r = grow_reftable(q, rti);
        if (r < 0)
            return r;
    }
    struct mentry *e = mc_insert(&q->rbc, rti, c << q->m.cb);
    if (!e || qcow2_meta_add(q, c << q->m.cb) < 0) {
        if (e)
            mc_remove(&q->rbc, e);
        return -ENOMEM;
    }
    memset(e->data, 0, q->m.cs);
    e->fresh = true;
    mc_mark_dirty(&q->rbc, e);
    q->m.rt[rti] = c << q->m.cb;
    qcow2_rt_dirty(q, rti);
    return 0;
}

int qcow2_rc_get(struct qcow2 *q, uint64_t cluster, uint64_t *val)
{
    uint64_t rti = cluster >> q->m.rb_bits;
    if (!rb_exists(q, rti)) {
        *val = 0;
        return 0;
    }
    struct mentry *e;
    int r = rb_load(q, rti, &e);
    if (r < 0)
        return r;
    uint64_t mask = (1ull << q->m.rb_bits) - 1;
    *val = qcow2_rb_get_entry(e->data, q->m.rc_order, cluster & mask);
    return 0;
}

/* A refcount block for range rti, placed wherever the allocator finds
 * room (used when a refcount must be set in an uncovered range). */
static int rb_ensure(struct qcow2 *q, uint64_t rti)
{
    uint64_t host, got;
    int r = qcow2_alloc(q, 1, &host, &got);
    if (r < 0)
        return r;
    if (rb_exists(q, rti)) { /* the allocation created it meanwhile */
        qcow2_unalloc(q, host, 1);
        return 0;
    }
    return rb_create_at(q, rti, host >> q->m.cb);
}

int qcow2_rc_set(struct qcow2 *q, uint64_t cluster, uint64_t val)
{
    uint64_t rti = cluster >> q->m.rb_bits;
    if (!rb_exists(q, rti)) {
        if (!val)
            return 0;
        int r = rb_ensure(q, rti);
        if (r < 0)
            return r;
    }
    struct mentry *e;
    int r = rb_load(q, rti, &e);
    if (r < 0)
        return r;
    uint64_t mask = (1ull << q->m.rb_bits) - 1;
    qcow2_rb_set_entry(e->data, q->m.rc_order, cluster & mask, val);
    mc_mark_dirty(&q->rbc, e);
    if (!val && cluster < q->free_hint)
        q->free_hint = cluster;
    if (val && cluster >= q->alloc_end)
        q->alloc_end = cluster + 1;
    return 0;
}

int qcow2_rc_add(struct qcow2 *q, uint64_t cluster, int delta)
{
    uint64_t v;
    int r = qcow2_rc_get(q, cluster, &v);
    if (r < 0)
        return r;
    if (delta > 0 && v == rc_max(q->m.rc_order))
        return qcow2_corrupt(q, "refcount of cluster %#llx overflows",
                             (unsigned long long)cluster << q->m.cb);
    if (delta < 0 && v == 0)
        return qcow2_corrupt(q, "refcount of cluster %#llx drops below 0",
                             (unsigned long long)cluster << q->m.cb);
    return qcow2_rc_set(q, cluster, delta > 0 ? v + 1 : v - 1);
}

/* ---- refcount table growth ---- */

/* Ranges without a refcount block among clusters [first, first+n). */
static uint64_t uncovered_ranges(const struct qcow2 *q, uint64_t first,
                                 uint64_t n)
{
    uint64_t k = 0;
    for (uint64_t r = first >> q->m.rb_bits;
         r <= (first + n - 1) >> q->m.rb_bits; r++)
        k += !rb_exists(q, r);
    return k;
}

/* Picks the size of a new table at cluster p that covers need and its own
 * clusters plus the k refcount blocks stored right after it. */
static int plan_reftable(const struct qcow2 *q, uint64_t need, uint64_t p,
                         uint64_t *entries, uint64_t *t, uint64_t *k)
{
    uint64_t per = q->m.cs / 8;
    uint64_t n = MAX(need + 1, q->m.rt_entries * 2);
    for (;;) {
        n = ALIGN_UP(n, per);
        *t = n / per;
        if (*t << q->m.cb > QCOW2_MAX_REFTABLE_BYTES)
            return -ENOSPC;
        *k = 0;
        for (;;) {
            uint64_t k2 = uncovered_ranges(q, p, *t + *k);
            if (k2 == *k)
                break;
            *k = k2;
        }
        uint64_t last = (p + *t + *k - 1) >> q->m.rb_bits;
        if (last < n) {
            *entries = n;
            return 0;
        }
        n = last + 1;
    }
}

static int grow_reftable(struct qcow2 *q, uint64_t need)
{
    uint64_t p = q->alloc_end, entries, t, k;
    if (plan_reftable(q, need, p, &entries, &t, &k) < 0 ||
        p + t + k >= MAX_HOST_CLUSTER(q))
        return qcow2_corrupt(q, "refcount table cannot grow further");
    uint64_t *nt = calloc(entries, 8);
    uint8_t *nd = calloc(entries / 64 + 1, 1);
    if (!nt || !nd) {
        free(nt);
        free(nd);
        return -ENOMEM;
    }
    memcpy(nt, q->m.rt, q->m.rt_entries * 8);
    uint64_t old_off = q->rt_offset, old_clusters = q->rt_clusters;
    free(q->m.rt);
    free(q->rt_dirty);
    q->m.rt = nt;
    q->m.rt_entries = entries;
    q->rt_dirty = nd;
    q->rt_chunks = entries / 64 + 1;
    q->rt_offset = p << q->m.cb;
    q->rt_clusters = (uint32_t)t;
    q->rt_fresh = true;
    q->rt_gen++;
    q->alloc_end = p + t + k;
    uint64_t next = p + t;
    for (uint64_t r = p >> q->m.rb_bits; r <= (p + t + k - 1) >> q->m.rb_bits;
         r++) {
        if (rb_exists(q, r))
            continue;
        int e = rb_create_at(q, r, next++);
        if (e < 0)
            return e;
    }
    for (uint64_t c = p; c < p + t + k; c++) {
        int e = qcow2_rc_add(q, c, 1);
        if (e < 0)
            return e;
    }
    qcow2_defer_free(q, old_off, old_clusters);
    return 0;
}

/* ---- allocation ---- */

/* First free cluster at index >= i in a refcount block; the block's size
 * when there is none. Clusters holding metadata are skipped even if their
 * refcount says free (a corrupt image must not get its tables
 * overwritten). */
static uint64_t rb_first_free(const struct qcow2 *q, const uint8_t *b,
                              uint64_t base, uint64_t i)
{
    uint64_t n = 1ull << q->m.rb_bits;
    for (; i < n; i++) {
        if (qcow2_rb_get_entry(b, q->m.rc_order, i) == 0 &&
            !qcow2_overlaps_meta(q, (base + i) << q->m.cb, q->m.cs))
            return i;
    }
    return n;
}

/* The cluster c starts a range without a refcount block: the new block
 * goes into c itself and describes itself. */
static int cover_range_at(struct qcow2 *q, uint64_t c)
{
    uint64_t rti = c >> q->m.rb_bits;
    if (rti >= q->m.rt_entries)
        return grow_reftable(q, rti);
    int r = rb_create_at(q, rti, c);
    if (r < 0)
        return r;
    return qcow2_rc_add(q, c, 1);
}

int qcow2_alloc(struct qcow2 *q, uint64_t n, uint64_t *host, uint64_t *got)
{
    uint64_t c = q->free_hint;
    uint64_t per = 1ull << q->m.rb_bits;
    for (;;) {
        if (c >= MAX_HOST_CLUSTER(q))
            return -ENOSPC;
        uint64_t rti = c >> q->m.rb_bits;
        if (!rb_exists(q, rti)) {
            if (qcow2_overlaps_meta(q, c << q->m.cb, q->m.cs)) {
                c++;
                continue;
            }
            int r = cover_range_at(q, c);
            if (r < 0)
                return r;
            continue; /* c is taken now, or the table grew: look again */
        }
        struct mentry *e;
        int r = rb_load(q, rti, &e);
        if (r < 0)
            return r;
        uint64_t base = rti << q->m.rb_bits;
        uint64_t i = rb_first_free(q, e->data, base, c - base);
        if (i == per) {
            c = base + per;
            continue;
        }
        uint64_t run = 1;
        while (run < n && i + run < per &&
               qcow2_rb_get_entry(e->data, q->m.rc_order, i + run) == 0 &&
               !qcow2_overlaps_meta(q, (base + i + run) << q->m.cb, q->m.cs))
            run++;
        for (uint64_t j = 0; j < run; j++)
            qcow2_rb_set_entry(e->data, q->m.rc_order, i + j, 1);
        mc_mark_dirty(&q->rbc, e);
        c = base + i;
        q->free_hint = c + run;
        q->alloc_end = MAX(q->alloc_end, c + run);
        *host = c << q->m.cb;
        *got = run;
        return 0;
    }
}

void qcow2_unalloc(struct qcow2 *q, uint64_t host, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        qcow2_rc_add(q, (host >> q->m.cb) + i, -1);
}

/* ---- deferred frees ---- */

void qcow2_defer_free(struct qcow2 *q, uint64_t host, uint64_t n)
{
    if (!n)
        return;
    if (q->nfrees == q->cap_frees) {
        size_t cap = q->cap_frees ? q->cap_frees * 2 : 64;
        struct qfree *p = realloc(q->frees, cap * sizeof(*p));
        if (!p)
            return; /* the clusters leak: harmless */
        q->frees = p;
        q->cap_frees = cap;
    }
    q->frees[q->nfrees++] = (struct qfree){
        .cluster = host >> q->m.cb,
        .n = n,
        .after = q->job_started + 1,
    };
}

void qcow2_defer_free_entry(struct qcow2 *q, uint64_t l2e)
{
    if (l2e & QCOW_OFLAG_COMPRESSED) {
        uint64_t off, len;
        qcow2_compressed_range(&q->m, l2e, &off, &len);
        uint64_t first = off >> q->m.cb, last = (off + len - 1) >> q->m.cb;
        qcow2_defer_free(q, first << q->m.cb, last - first + 1);
        return;
    }
    uint64_t off = l2e & L2E_OFFSET_MASK;
    if (off)
        qcow2_defer_free(q, off, 1);
}

void qcow2_apply_frees(struct qcow2 *q, unsigned done_seq)
{
    size_t keep = 0;
    for (size_t i = 0; i < q->nfrees; i++) {
        struct qfree f = q->frees[i];
        if ((int)(done_seq - f.after) < 0) {
            q->frees[keep++] = f;
            continue;
        }
        for (uint64_t j = 0; j < f.n; j++) {
            uint64_t v;
            if (qcow2_rc_add(q, f.cluster + j, -1) == 0 &&
                qcow2_rc_get(q, f.cluster + j, &v) == 0 && v == 0)
                qcow2_meta_del(q, (f.cluster + j) << q->m.cb);
        }
    }
    q->nfrees = keep;
}
