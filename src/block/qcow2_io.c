/* qcow2 requests. A request is split into pieces by mapping (data, zero,
 * backing, compressed); every piece is one asynchronous operation.
 *
 * Writes to clusters that are allocated and not shared go in place under
 * a shared per-cluster lock. Anything else (unallocated, zero, compressed,
 * shared with a snapshot, partly allocated subclusters) is copied on
 * write under an exclusive lock: new clusters are allocated, the old
 * content around the guest data is read through the normal read path,
 * the whole clusters are written, and only then do the L2 entries change
 * (in memory; the writeback job orders them onto the disk). Reads take no
 * locks: old clusters are freed only after the new mapping is durable. */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define COW_MAX_BYTES (2u << 20)

enum { QM_DATA, QM_ZERO, QM_BACKING, QM_COMPRESSED };

struct qmap {
    int kind;
    uint64_t host, len, l2e;
};

struct qreq {
    struct qcow2 *q;
    struct blk_req *req;
    void (*dispatch)(struct qreq *r);
    uint64_t pos, end;
    int pending, error;
    bool internal;
    struct qreq *next;
    struct aio_op defer;
    struct blk_req sub; /* WRITE_ZEROES done as a write of zeros */
    struct iovec sub_iov;
    uint8_t *zbuf;
};

struct qpiece {
    struct aio_op op;
    struct qreq *r;
    struct blk_req breq;
    struct iovec *iov;
    unsigned iovcnt;
    struct iovec inl[4];
    uint64_t lock_ci, lock_n;
    uint64_t skip, len;
    uint64_t l2e, cskip;
};

struct qcow {
    struct qcow2 *q;
    struct qreq *r;
    uint64_t ci, n, host;
    uint64_t wpos, wend;
    uint8_t *head, *tail;
    struct blk_req hreq, treq;
    struct iovec hiov, tiov;
    struct aio_op op;
    struct iovec *iov;
    int pending, error;
};

static void qreq_put(struct qreq *r);
static void read_dispatch(struct qreq *r);
static void write_dispatch(struct qreq *r);
static void zero_dispatch(struct qreq *r);

/* ---- cluster locks ---- */

static struct qlock **lock_slot(struct qcow2 *q, uint64_t ci)
{
    return &q->locks[(ci * 0x9e3779b97f4a7c15ull) >> 54];
}

static struct qlock *lock_find(struct qcow2 *q, uint64_t ci)
{
    for (struct qlock *l = *lock_slot(q, ci); l; l = l->next)
        if (l->ci == ci)
            return l;
    return NULL;
}

static struct qlock *lock_get(struct qcow2 *q, uint64_t ci)
{
    struct qlock *l = lock_find(q, ci);
    if (l)
        return l;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    struct qlock **s = lock_slot(q, ci);
    l->ci = ci;
    l->next = *s;
    *s = l;
    return l;
}

static void lock_wait(struct qlock *l, struct qreq *r)
{
    r->next = NULL;
    if (l->wtail)
        l->wtail->next = r;
    else
        l->waiters = r;
    l->wtail = r;
}

/* Takes locks on clusters [ci, ci+n); -ENOMEM undoes nothing because the
 * caller releases what it got. Returns the number taken. */
static uint64_t lock_range(struct qcow2 *q, uint64_t ci, uint64_t n,
                           bool excl)
{
    for (uint64_t i = 0; i < n; i++) {
        struct qlock *l = lock_get(q, ci + i);
        if (!l)
            return i;
        if (excl)
            l->excl = true;
        else
            l->shared++;
    }
    return n;
}

static void lock_release(struct qcow2 *q, uint64_t ci, bool excl)
{
    struct qlock **s = lock_slot(q, ci), *l;
    for (; (l = *s); s = &l->next)
        if (l->ci == ci)
            break;
    if (!l)
        return;
    if (excl)
        l->excl = false;
    else
        l->shared--;
    if (l->excl || l->shared)
        return;
    *s = l->next;
    struct qreq *w = l->waiters;
    free(l);
    while (w) { /* each waiter re-examines the cluster */
        struct qreq *next = w->next;
        w->dispatch(w);
        w = next;
    }
}

static void unlock_range(struct qcow2 *q, uint64_t ci, uint64_t n, bool excl)
{
    for (uint64_t i = 0; i < n; i++)
        lock_release(q, ci + i, excl);
}

/* ---- requests ---- */

static struct qreq *qreq_new(struct qcow2 *q, struct blk_req *req,
                             bool internal)
{
    struct qreq *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->q = q;
    r->req = req;
    r->pos = req->offset;
    r->end = req->offset + req->len;
    r->pending = 1; /* the dispatcher's reference */
    r->internal = internal;
    switch (req->op) {
    case BLK_OP_READ:
        r->dispatch = read_dispatch;
        break;
    case BLK_OP_WRITE:
        r->dispatch = write_dispatch;
        break;
    default:
        r->dispatch = zero_dispatch;
        break;
    }
    return r;
}

static void deferred_done(struct aio_op *op, int result)
{
    struct qreq *r = container_of(op, struct qreq, defer);
    struct blockdev *bd = r->q->bd;
    struct blk_req *req = r->req;
    free(r);
    blk_complete(bd, req, result);
}

static void qreq_put(struct qreq *r)
{
    if (--r->pending)
        return;
    struct qcow2 *q = r->q;
    struct blk_req *req = r->req;
    int res = r->error;
    if (r->internal) {
        free(r);
        req->done(req, res);
    } else if (q->in_submit) {
        /* done() must not run inside blk_submit() for a valid request. */
        r->defer.cb = deferred_done;
        aio_complete_later(q->bd->eng, &r->defer, res);
    } else {
        free(r);
        blk_complete(q->bd, req, res);
    }
}

static void qreq_fail(struct qreq *r, int err)
{
    if (!r->error)
        r->error = err;
}

static struct qpiece *piece_new(struct qreq *r, uint64_t skip, uint64_t len,
                                bool slice)
{
    struct qpiece *p = calloc(1, sizeof(*p));
    if (!p) {
        qreq_fail(r, -ENOMEM);
        return NULL;
    }
    p->r = r;
    p->skip = skip;
    p->len = len;
    if (slice) {
        unsigned max = iov_slice_max(r->req->iovcnt);
        p->iov = max <= ARRAY_SIZE(p->inl) ? p->inl
                                           : malloc(max * sizeof(*p->iov));
        if (!p->iov) {
            free(p);
            qreq_fail(r, -ENOMEM);
            return NULL;
        }
        p->iovcnt = iov_slice(r->req->iov, r->req->iovcnt, skip, len, p->iov,
                              max);
    }
    r->pending++;
    return p;
}

static void piece_done(struct qpiece *p, int res)
{
    struct qreq *r = p->r;
    if (res < 0)
        qreq_fail(r, res);
    if (p->lock_n)
        unlock_range(r->q, p->lock_ci, p->lock_n, false);
    if (p->iov != p->inl)
        free(p->iov);
    free(p);
    qreq_put(r);
}

static void piece_io_done(struct aio_op *op, int res)
{
    piece_done(container_of(op, struct qpiece, op),
               res);
}

static void piece_breq_done(struct blk_req *req, int res)
{
    piece_done(req->opaque, res);
}

/* ---- tables ---- */

static bool hits_fixed_meta(const struct qcow2 *q, uint64_t off)
{
    const struct qcow2_meta *m = &q->m;
    uint64_t l1_end = m->h.l1_table_offset + (uint64_t)m->h.l1_size * 8;
    uint64_t rt_end = q->rt_offset + ((uint64_t)q->rt_clusters << m->cb);
    return off < m->cs ||
           (off + m->cs > m->h.l1_table_offset && off < l1_end) ||
           (off + m->cs > q->rt_offset && off < rt_end);
}

int qcow2_l2_lookup(struct qcow2 *q, uint64_t l1i, struct mentry **out)
{
    uint64_t l1e = q->m.l1[l1i], off = l1e & L1E_OFFSET_MASK;
    *out = NULL;
    if (!off)
        return 0;
    struct mentry *e = mc_find(&q->l2c, l1i);
    if (e && e->offset == off) {
        *out = e;
        return 0;
    }
    if (e)
        mc_remove(&q->l2c, e);
    if ((off & (q->m.cs - 1)) || off >= q->f.size || hits_fixed_meta(q, off))
        return qcow2_corrupt(q, "L2 table %#llx is misplaced",
                             (unsigned long long)off);
    e = mc_insert(&q->l2c, l1i, off);
    if (!e)
        return -ENOMEM;
    int r = blk_file_pread(&q->f, e->data, q->m.cs, off);
    if (r < 0) {
        mc_remove(&q->l2c, e);
        return r;
    }
    *out = e;
    return 0;
}

/* The L2 table for l1i, allocated or copied (when shared with a snapshot)
 * so that it may be modified. */
int qcow2_l2_for_write(struct qcow2 *q, uint64_t l1i, struct mentry **out)
{
    uint64_t l1e = q->m.l1[l1i], off = l1e & L1E_OFFSET_MASK;
    if (off && (l1e & QCOW_OFLAG_COPIED))
        return qcow2_l2_lookup(q, l1i, out);
    struct mentry *e = NULL;
    if (off) {
        int r = qcow2_l2_lookup(q, l1i, &e);
        if (r < 0)
            return r;
    }
    uint64_t host, got;
    int r = qcow2_alloc(q, 1, &host, &got);
    if (r < 0)
        return r;
    if (!e) {
        e = mc_insert(&q->l2c, l1i, host);
        if (!e) {
            qcow2_unalloc(q, host, 1);
            return -ENOMEM;
        }
        memset(e->data, 0, q->m.cs);
    }
    if (qcow2_meta_add(q, host) < 0) {
        qcow2_unalloc(q, host, 1);
        return -ENOMEM;
    }
    e->offset = host; /* a copy keeps the old content */
    e->fresh = true;
    mc_mark_dirty(&q->l2c, e);
    q->m.l1[l1i] = host | QCOW_OFLAG_COPIED;
    qcow2_l1_dirty(q, l1i);
    if (off)
        qcow2_defer_free(q, off, 1);
    *out = e;
    return 0;
}

/* ---- mapping ---- */

static int classify(struct qcow2 *q, const uint8_t *ent, unsigned sc,
                    struct qmap *m)
{
    uint64_t e = get_be64(ent);
    if (e & QCOW_OFLAG_COMPRESSED) {
        if (q->m.ext_l2 && get_be64(ent + 8))
            return qcow2_corrupt(q, "compressed cluster with subclusters");
        m->kind = QM_COMPRESSED;
        m->l2e = e;
        return 0;
    }
    uint64_t host = e & L2E_OFFSET_MASK;
    if ((e & L2E_STD_RESERVED) || (host & (q->m.cs - 1)) ||
        (!host && (e & QCOW_OFLAG_COPIED)))
        return qcow2_corrupt(q, "malformed L2 entry %#llx",
                             (unsigned long long)e);
    if (!q->m.ext_l2) {
        if ((e & QCOW_OFLAG_ZERO) && !q->v3)
            return qcow2_corrupt(q, "zero cluster in a version 2 image");
        m->kind = (e & QCOW_OFLAG_ZERO) ? QM_ZERO
                  : host                ? QM_DATA
                                        : QM_BACKING;
    } else {
        uint64_t bm = get_be64(ent + 8);
        uint32_t alloc = (uint32_t)bm, zero = (uint32_t)(bm >> 32);
        if ((e & QCOW_OFLAG_ZERO) || (alloc & zero) || (!host && alloc))
            return qcow2_corrupt(q, "malformed extended L2 entry %#llx/%#llx",
                                 (unsigned long long)e,
                                 (unsigned long long)bm);
        m->kind = (alloc >> sc) & 1  ? QM_DATA
                  : (zero >> sc) & 1 ? QM_ZERO
                                     : QM_BACKING;
        host += (uint64_t)sc << q->m.sc_bits;
    }
    if (m->kind == QM_DATA && host >= q->f.size)
        return qcow2_corrupt(q, "data cluster %#llx lies beyond the end of "
                                "the file",
                             (unsigned long long)host);
    m->host = host;
    return 0;
}

/* Maps the longest run starting at guest offset off (at most maxlen bytes)
 * that reads the same way: one contiguous host range, zeros, the backing
 * file, or one compressed cluster. */
static int q_map(struct qcow2 *q, uint64_t off, uint64_t maxlen,
                 struct qmap *m)
{
    const struct qcow2_meta *g = &q->m;
    uint64_t ci = off >> g->cb, l1i = ci >> g->l2_bits;
    uint64_t tbl_end = (l1i + 1) << (g->l2_bits + g->cb);
    uint64_t lim = off + MIN(maxlen, tbl_end - off);
    struct mentry *e = NULL;
    if (l1i < g->h.l1_size) {
        int r = qcow2_l2_lookup(q, l1i, &e);
        if (r < 0)
            return r;
    }
    if (!e) {
        *m = (struct qmap){.kind = QM_BACKING, .len = lim - off};
        return 0;
    }
    unsigned ub = g->sc_bits; /* unit: subcluster (== cluster w/o ext L2) */
    uint64_t l2mask = (1ull << g->l2_bits) - 1;
    uint64_t u = off >> ub;
    for (uint64_t cur = off;;) {
        struct qmap x;
        uint64_t cc = u >> (g->cb - ub);
        const uint8_t *ent = e->data + ((cc & l2mask) << g->esz_bits);
        int r = classify(q, ent, (unsigned)(u & ((1u << (g->cb - ub)) - 1)),
                         &x);
        if (r < 0)
            return r;
        uint64_t unit_end = MIN(lim, (u + 1) << ub);
        if (cur == off) {
            *m = x;
            m->host = x.host + (off & ((1ull << ub) - 1));
            if (x.kind == QM_COMPRESSED) {
                m->len = MIN(lim, (cc + 1) << g->cb) - off;
                return 0;
            }
        } else if (x.kind != m->kind ||
                   (x.kind == QM_DATA && x.host != m->host + (cur - off))) {
            break;
        }
        m->len = unit_end - off;
        cur = unit_end;
        u++;
        if (cur >= lim)
            break;
    }
    return 0;
}

/* ---- reads ---- */

static void read_data(struct qreq *r, uint64_t host, uint64_t skip,
                      uint64_t len)
{
    struct qpiece *p = piece_new(r, skip, len, true);
    if (!p)
        return;
    struct qcow2 *q = r->q;
    p->op = (struct aio_op){
        .opcode = AIO_READ,
        .fd = blk_file_fd_for(&q->f, host, p->iov, p->iovcnt),
        .offset = host,
        .iov = p->iov,
        .iovcnt = p->iovcnt,
        .cb = piece_io_done,
    };
    aio_submit(q->bd->eng, &p->op);
}

static void read_backing(struct qreq *r, uint64_t guest, uint64_t skip,
                         uint64_t len)
{
    struct qcow2 *q = r->q;
    const struct blk_req *req = r->req;
    uint64_t in = 0;
    if (q->backing && guest < q->backing_size)
        in = MIN(len, q->backing_size - guest);
    if (in < len)
        iov_memset(req->iov, req->iovcnt, skip + in, 0, len - in);
    if (!in)
        return;
    struct qpiece *p = piece_new(r, skip, in, true);
    if (!p)
        return;
    p->breq = (struct blk_req){
        .op = BLK_OP_READ,
        .offset = guest,
        .len = in,
        .iov = p->iov,
        .iovcnt = p->iovcnt,
        .done = piece_breq_done,
        .opaque = p,
    };
    int e = blk_submit(q->backing, &p->breq);
    if (e < 0)
        piece_done(p, e);
}

static const uint8_t *zc_find(struct qcow2 *q, uint64_t key)
{
    for (unsigned i = 0; i < QZCACHE; i++)
        if (q->zc[i].data && q->zc[i].key == key)
            return q->zc[i].data;
    return NULL;
}

static void zc_store(struct qcow2 *q, uint64_t key, uint8_t *data)
{
    unsigned i = q->zc_next++ % QZCACHE;
    free(q->zc[i].data);
    q->zc[i].key = key;
    q->zc[i].data = data;
}

static void compressed_done(struct aio_op *op, int res)
{
    struct qpiece *p = container_of(op, struct qpiece, op);
    struct qcow2 *q = p->r->q;
    const struct blk_req *req = p->r->req;
    uint8_t *c = p->inl[0].iov_base;
    if (res == 0) {
        uint8_t *d = malloc(q->m.cs);
        if (!d) {
            res = -ENOMEM;
        } else if (qcow2_decompress(q->ctype, c, p->inl[0].iov_len, d,
                                    q->m.cs) < 0) {
            free(d);
            res = qcow2_corrupt(q, "compressed cluster %#llx does not "
                                   "decompress",
                                (unsigned long long)p->l2e);
        } else {
            iov_from_buf(req->iov, req->iovcnt, p->skip, d + p->cskip, p->len);
            zc_store(q, p->l2e, d);
        }
    }
    free(c);
    piece_done(p, res);
}

static void read_compressed(struct qreq *r, uint64_t l2e, uint64_t guest,
                            uint64_t skip, uint64_t len)
{
    struct qcow2 *q = r->q;
    const struct blk_req *req = r->req;
    uint64_t cskip = guest & (q->m.cs - 1);
    const uint8_t *hit = zc_find(q, l2e);
    if (hit) {
        iov_from_buf(req->iov, req->iovcnt, skip, hit + cskip, len);
        return;
    }
    uint64_t off, clen;
    qcow2_compressed_range(&q->m, l2e, &off, &clen);
    if (off >= q->f.size || clen > 2 * q->m.cs) {
        qreq_fail(r, qcow2_corrupt(q, "compressed cluster %#llx is out of "
                                      "range",
                                   (unsigned long long)l2e));
        return;
    }
    struct qpiece *p = piece_new(r, skip, len, false);
    if (!p)
        return;
    p->l2e = l2e;
    p->cskip = cskip;
    p->inl[0].iov_base = malloc(clen);
    p->inl[0].iov_len = clen;
    if (!p->inl[0].iov_base) {
        piece_done(p, -ENOMEM);
        return;
    }
    p->iov = p->inl; /* freed in compressed_done, not piece_done */
    p->op = (struct aio_op){
        .opcode = AIO_READ,
        .fd = q->f.bfd,
        .offset = off,
        .iov = p->inl,
        .iovcnt = 1,
        .cb = compressed_done,
    };
    aio_submit(q->bd->eng, &p->op);
}

static void read_dispatch(struct qreq *r)
{
    struct qcow2 *q = r->q;
    const struct blk_req *req = r->req;
    while (r->pos < r->end && !r->error) {
        struct qmap m;
        int e = q_map(q, r->pos, r->end - r->pos, &m);
        if (e < 0) {
            qreq_fail(r, e);
            break;
        }
        uint64_t skip = r->pos - req->offset;
        switch (m.kind) {
        case QM_ZERO:
            iov_memset(req->iov, req->iovcnt, skip, 0, m.len);
            break;
        case QM_DATA:
            read_data(r, m.host, skip, m.len);
            break;
        case QM_BACKING:
            read_backing(r, r->pos, skip, m.len);
            break;
        case QM_COMPRESSED:
            read_compressed(r, m.l2e, r->pos, skip, m.len);
            break;
        }
        r->pos += m.len;
    }
    qreq_put(r);
}

/* Requests the layer makes of its own image (copy-on-write fills, zero
 * writes): no validation, no blk_complete() accounting. */
static void q_internal(struct qcow2 *q, struct blk_req *req)
{
    struct qreq *r = qreq_new(q, req, true);
    if (!r) {
        req->done(req, -ENOMEM);
        return;
    }
    r->dispatch(r);
}

/* ---- writes ---- */

/* 1: the bytes [from, to) of cluster ci may be written in place at *host;
 * 0: the cluster needs copy-on-write; <0: error. */
static int write_class(struct qcow2 *q, uint64_t ci, uint64_t from,
                       uint64_t to, uint64_t *host)
{
    const struct qcow2_meta *g = &q->m;
    uint64_t l1i = ci >> g->l2_bits;
    if (l1i >= g->h.l1_size || !(g->l1[l1i] & L1E_OFFSET_MASK))
        return 0;
    struct mentry *e;
    int r = qcow2_l2_lookup(q, l1i, &e);
    if (r < 0)
        return r;
    const uint8_t *ent =
        e->data + ((ci & ((1ull << g->l2_bits) - 1)) << g->esz_bits);
    uint64_t v = get_be64(ent), off = v & L2E_OFFSET_MASK;
    if ((v & QCOW_OFLAG_COMPRESSED) || !(v & QCOW_OFLAG_COPIED))
        return 0;
    if ((v & L2E_STD_RESERVED) || !off || (off & (g->cs - 1)) ||
        off >= q->f.size)
        return qcow2_corrupt(q, "malformed L2 entry %#llx",
                             (unsigned long long)v);
    if (!g->ext_l2) {
        if (v & QCOW_OFLAG_ZERO)
            return 0;
    } else {
        uint64_t first = from >> g->sc_bits, last = (to - 1) >> g->sc_bits;
        uint32_t need = (uint32_t)((2ull << last) - (1ull << first));
        if (((uint32_t)get_be64(ent + 8) & need) != need)
            return 0;
    }
    *host = off;
    return 1;
}

static uint64_t cluster_to(const struct qreq *r, uint64_t ci, unsigned cb)
{
    return MIN(r->end, (ci + 1) << cb);
}

static void write_inplace(struct qreq *r, uint64_t ci, uint64_t host)
{
    struct qcow2 *q = r->q;
    unsigned cb = q->m.cb;
    uint64_t start = r->pos, hstart = host + (start & (q->m.cs - 1));
    uint64_t n = 1, end = cluster_to(r, ci, cb);
    while (end < r->end) { /* extend over host-contiguous clusters */
        uint64_t c2 = ci + n, h2;
        struct qlock *l = lock_find(q, c2);
        uint64_t to = cluster_to(r, c2, cb);
        if ((l && l->excl) ||
            write_class(q, c2, 0, to - (c2 << cb), &h2) != 1 ||
            h2 != host + (n << cb))
            break;
        end = to;
        n++;
    }
    if (qcow2_overlaps_meta(q, hstart, end - start)) {
        qreq_fail(r, qcow2_corrupt(q, "data cluster %#llx overlaps metadata",
                                   (unsigned long long)host));
        return;
    }
    struct qpiece *p = piece_new(r, start - r->req->offset, end - start, true);
    if (!p)
        return;
    p->lock_ci = ci;
    p->lock_n = lock_range(q, ci, n, false);
    r->pos = end;
    if (p->lock_n < n) {
        piece_done(p, -ENOMEM);
        return;
    }
    p->op = (struct aio_op){
        .opcode = AIO_WRITE,
        .fd = blk_file_fd_for(&q->f, hstart, p->iov, p->iovcnt),
        .offset = hstart,
        .iov = p->iov,
        .iovcnt = p->iovcnt,
        .cb = piece_io_done,
    };
    aio_submit(q->bd->eng, &p->op);
}

static void cow_free(struct qcow *c)
{
    free(c->head);
    free(c->tail);
    free(c->iov);
    free(c);
}

/* Points the L2 entries of the copied clusters at their new home. */
static int cow_commit(struct qcow *c)
{
    struct qcow2 *q = c->q;
    const struct qcow2_meta *g = &q->m;
    for (uint64_t i = 0; i < c->n; i++) {
        uint64_t ci = c->ci + i;
        struct mentry *e;
        int r = qcow2_l2_for_write(q, ci >> g->l2_bits, &e);
        if (r < 0) {
            qcow2_unalloc(q, c->host + (i << g->cb), c->n - i);
            return r;
        }
        uint8_t *ent =
            e->data + ((ci & ((1ull << g->l2_bits) - 1)) << g->esz_bits);
        uint64_t old = get_be64(ent);
        put_be64(ent, (c->host + (i << g->cb)) | QCOW_OFLAG_COPIED);
        if (g->ext_l2)
            put_be64(ent + 8, EXTL2_ALL_ALLOC);
        mc_mark_dirty(&q->l2c, e);
        qcow2_defer_free_entry(q, old);
    }
    return 0;
}

static void cow_write_done(struct aio_op *op, int res)
{
    struct qcow *c = container_of(op, struct qcow, op);
    struct qcow2 *q = c->q;
    struct qreq *r = c->r;
    if (res == 0) {
        uint64_t end = c->host + (c->n << q->m.cb);
        if (end > q->f.size)
            q->f.size = end;
        res = cow_commit(c);
    } else {
        qcow2_unalloc(q, c->host, c->n);
    }
    uint64_t ci = c->ci, n = c->n;
    cow_free(c);
    if (res < 0)
        qreq_fail(r, res);
    unlock_range(q, ci, n, true);
    qreq_put(r);
}

static void cow_write(struct qcow *c)
{
    struct qcow2 *q = c->q;
    const struct blk_req *req = c->r->req;
    unsigned max = iov_slice_max(req->iovcnt) + 2, n = 0;
    c->iov = malloc(max * sizeof(*c->iov));
    if (!c->iov) {
        c->op.cb = cow_write_done;
        aio_complete_later(q->bd->eng, &c->op, -ENOMEM);
        return;
    }
    if (c->hiov.iov_len)
        c->iov[n++] = c->hiov;
    n += iov_slice(req->iov, req->iovcnt, c->wpos - req->offset,
                   c->wend - c->wpos, c->iov + n, max - 2);
    if (c->tiov.iov_len)
        c->iov[n++] = c->tiov;
    c->op = (struct aio_op){
        .opcode = AIO_WRITE,
        .fd = blk_file_fd_for(&q->f, c->host, c->iov, n),
        .offset = c->host,
        .iov = c->iov,
        .iovcnt = n,
        .cb = cow_write_done,
    };
    aio_submit(q->bd->eng, &c->op);
}

static void cow_put(struct qcow *c)
{
    if (--c->pending)
        return;
    if (c->error) {
        c->op.cb = cow_write_done;
        aio_complete_later(c->q->bd->eng, &c->op, c->error);
        return;
    }
    cow_write(c);
}

static void cow_fill_done(struct blk_req *req, int res)
{
    struct qcow *c = req->opaque;
    if (res < 0 && !c->error)
        c->error = res;
    cow_put(c);
}

/* Reads the old content of [off, off+len) into a new buffer. */
static void cow_fill(struct qcow *c, struct blk_req *req, struct iovec *iov,
                     uint8_t **buf, uint64_t off, uint64_t len)
{
    *buf = blk_alloc_buf(len);
    if (!*buf) {
        c->error = -ENOMEM;
        return;
    }
    iov->iov_base = *buf;
    iov->iov_len = len;
    *req = (struct blk_req){
        .op = BLK_OP_READ,
        .offset = off,
        .len = len,
        .iov = iov,
        .iovcnt = 1,
        .done = cow_fill_done,
        .opaque = c,
    };
    c->pending++;
    q_internal(c->q, req);
}

static void cow_start(struct qcow *c)
{
    unsigned cb = c->q->m.cb;
    uint64_t cstart = c->ci << cb, cend = (c->ci + c->n) << cb;
    c->pending = 1;
    if (c->wpos > cstart)
        cow_fill(c, &c->hreq, &c->hiov, &c->head, cstart, c->wpos - cstart);
    if (cend > c->wend && !c->error)
        cow_fill(c, &c->treq, &c->tiov, &c->tail, c->wend, cend - c->wend);
    cow_put(c);
}

static void write_cow(struct qreq *r, uint64_t ci)
{
    struct qcow2 *q = r->q;
    unsigned cb = q->m.cb;
    uint64_t n = 1, max = MAX(1u, COW_MAX_BYTES >> cb), h;
    while (n < max && ((ci + n) << cb) < r->end) {
        uint64_t c2 = ci + n;
        if (lock_find(q, c2) ||
            write_class(q, c2, 0, cluster_to(r, c2, cb) - (c2 << cb), &h) != 0)
            break;
        n++;
    }
    uint64_t host, got;
    int e = qcow2_alloc(q, n, &host, &got);
    if (e < 0) {
        qreq_fail(r, e);
        return;
    }
    struct qcow *c = calloc(1, sizeof(*c));
    if (!c || lock_range(q, ci, got, true) < got) {
        unlock_range(q, ci, got, true);
        qcow2_unalloc(q, host, got);
        free(c);
        qreq_fail(r, -ENOMEM);
        return;
    }
    c->q = q;
    c->r = r;
    c->ci = ci;
    c->n = got;
    c->host = host;
    c->wpos = r->pos;
    c->wend = cluster_to(r, ci + got - 1, cb);
    r->pos = c->wend;
    r->pending++;
    cow_start(c);
}

static void write_dispatch(struct qreq *r)
{
    struct qcow2 *q = r->q;
    unsigned cb = q->m.cb;
    while (r->pos < r->end && !r->error) {
        if (q->broken) {
            qreq_fail(r, -EIO);
            break;
        }
        uint64_t ci = r->pos >> cb, host;
        struct qlock *l = lock_find(q, ci);
        if (l && l->excl) {
            lock_wait(l, r);
            return;
        }
        int c = write_class(q, ci, r->pos & (q->m.cs - 1),
                            cluster_to(r, ci, cb) - (ci << cb), &host);
        if (c < 0) {
            qreq_fail(r, c);
            break;
        }
        if (c == 1) {
            write_inplace(r, ci, host);
            continue;
        }
        if (l) { /* in-place writes in flight: copy after them */
            lock_wait(l, r);
            return;
        }
        write_cow(r, ci);
    }
    qreq_put(r);
}

/* ---- discard and write zeroes ---- */

/* Makes a whole cluster read as zeros (or unallocated, for a discard with
 * no backing file) by changing its L2 entry only. */
static int zero_cluster(struct qcow2 *q, uint64_t ci, bool unmap)
{
    const struct qcow2_meta *g = &q->m;
    uint64_t l1i = ci >> g->l2_bits;
    if (!q->backing && !(g->l1[l1i] & L1E_OFFSET_MASK))
        return 0; /* reads as zeros already */
    uint64_t want = 0, want_bm = 0;
    if (!unmap || q->backing) {
        want = g->ext_l2 ? 0 : QCOW_OFLAG_ZERO;
        want_bm = EXTL2_ALL_ZERO;
    }
    struct mentry *e;
    int r = qcow2_l2_for_write(q, l1i, &e);
    if (r < 0)
        return r;
    uint8_t *ent = e->data + ((ci & ((1ull << g->l2_bits) - 1)) << g->esz_bits);
    uint64_t old = get_be64(ent);
    if (old == want && (!g->ext_l2 || get_be64(ent + 8) == want_bm))
        return 0;
    put_be64(ent, want);
    if (g->ext_l2)
        put_be64(ent + 8, want_bm);
    mc_mark_dirty(&q->l2c, e);
    qcow2_defer_free_entry(q, old);
    return 0;
}

static void zero_sub_done(struct blk_req *req, int res)
{
    struct qreq *r = req->opaque;
    free(r->zbuf);
    r->zbuf = NULL;
    if (res < 0)
        qreq_fail(r, res);
    zero_dispatch(r);
}

/* Writes real zeros over [r->pos, to), one cluster at a time. */
static void zero_by_write(struct qreq *r, uint64_t to)
{
    uint64_t len = to - r->pos;
    r->zbuf = blk_alloc_buf(len);
    if (!r->zbuf) {
        qreq_fail(r, -ENOMEM);
        zero_dispatch(r);
        return;
    }
    memset(r->zbuf, 0, len);
    r->sub_iov = (struct iovec){.iov_base = r->zbuf, .iov_len = len};
    r->sub = (struct blk_req){
        .op = BLK_OP_WRITE,
        .offset = r->pos,
        .len = len,
        .iov = &r->sub_iov,
        .iovcnt = 1,
        .done = zero_sub_done,
        .opaque = r,
    };
    r->pos = to;
    q_internal(r->q, &r->sub);
}

static bool reads_zero(struct qcow2 *q, uint64_t off, uint64_t len)
{
    struct qmap m;
    if (q_map(q, off, len, &m) < 0 || m.len < len)
        return false;
    return m.kind == QM_ZERO || (m.kind == QM_BACKING && !q->backing);
}

static void zero_dispatch(struct qreq *r)
{
    struct qcow2 *q = r->q;
    unsigned cb = q->m.cb;
    bool discard = r->req->op == BLK_OP_DISCARD;
    while (r->pos < r->end && !r->error) {
        if (q->broken) {
            qreq_fail(r, -EIO);
            break;
        }
        uint64_t ci = r->pos >> cb, to = cluster_to(r, ci, cb);
        uint64_t vis = MIN((ci + 1) << cb, q->bd->size);
        bool whole = r->pos == ci << cb && r->end >= vis;
        if (whole && (q->v3 || (discard && !q->backing))) {
            struct qlock *l = lock_find(q, ci);
            if (l) {
                lock_wait(l, r);
                return;
            }
            int e = zero_cluster(q, ci, discard);
            if (e < 0)
                qreq_fail(r, e);
            r->pos = to;
            continue;
        }
        if (discard || reads_zero(q, r->pos, to - r->pos)) {
            r->pos = to; /* discard is advisory */
            continue;
        }
        zero_by_write(r, to);
        return;
    }
    qreq_put(r);
}

/* ---- entry point ---- */

void qcow2_queue_flush(struct qcow2 *q, struct qreq *r)
{
    r->next = NULL;
    if (q->flushes_tail)
        q->flushes_tail->next = r;
    else
        q->flushes = r;
    q->flushes_tail = r;
    qcow2_start_job(q);
}

void qcow2_flush_done(struct qreq *r, int res)
{
    qreq_fail(r, res);
    qreq_put(r);
}

int qcow2_submit(struct blockdev *bd, struct blk_req *req)
{
    struct qcow2 *q = bd->priv;
    struct qreq *r = qreq_new(q, req, false);
    if (!r)
        return -ENOMEM;
    q->in_submit = true;
    if (req->op == BLK_OP_FLUSH) {
        if (bd->readonly)
            qreq_put(r);
        else
            qcow2_queue_flush(q, r);
    } else {
        r->dispatch(r);
    }
    q->in_submit = false;
    return 0;
}

struct qreq *qcow2_next_flush(struct qreq *r)
{
    return r->next;
}

void qcow2_io_cleanup(struct qcow2 *q)
{
    for (unsigned i = 0; i < QZCACHE; i++) {
        free(q->zc[i].data);
        q->zc[i].data = NULL;
    }
}
