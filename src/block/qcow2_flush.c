/* The qcow2 metadata writeback job. It snapshots every dirty piece of
 * metadata at once, then writes in ordered phases, each closed by
 * fdatasync:
 *   1. refcount blocks, newly allocated L2 tables, a moved refcount table;
 *   2. refcount table chunks, or the header fields naming a moved table;
 *   3. L2 tables already linked from the L1 table, and L1 chunks.
 * The snapshot is consistent (every in-memory table change comes after
 * the refcount change it needs), so after phase 1 every cluster the
 * snapshot references is counted on disk, and every new table exists
 * before the pointer to it is written. A job also serves the FLUSH
 * requests queued before it started: its last fdatasync covers the data
 * writes they wait for. Deferred refcount decrements apply when it ends. */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum jw_kind { JW_L2, JW_RB, JW_L1, JW_RT, JW_HEADER };

struct qjw {
    struct aio_op op;
    struct iovec iov;
    struct qjob *job;
    struct mentry *e;
    struct mcache *c;
    bool was_fresh;
    enum jw_kind kind;
    size_t chunk;
    int phase;
};

struct qjob {
    struct qcow2 *q;
    unsigned seq;
    struct qjw *w;
    size_t nw, cap;
    int phase, pending, error;
    bool wrote;
    struct qreq *waiters;
    struct aio_op sync;
    bool rt_fresh;
    unsigned rt_gen;
};

static void run_phase(struct qjob *j, int phase);

static struct qjw *jw_add(struct qjob *j, enum jw_kind kind, int phase,
                          uint64_t off, const void *src, size_t len)
{
    if (j->nw == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 16;
        struct qjw *p = realloc(j->w, cap * sizeof(*p));
        if (!p)
            return NULL;
        j->w = p;
        j->cap = cap;
    }
    uint8_t *buf = malloc(len);
    if (!buf)
        return NULL;
    if (src)
        memcpy(buf, src, len);
    struct qjw *w = &j->w[j->nw++];
    *w = (struct qjw){.kind = kind, .phase = phase, .job = j};
    w->iov = (struct iovec){.iov_base = buf, .iov_len = len};
    w->op.offset = off;
    return w;
}

static int snap_cache(struct qjob *j, struct mcache *c, enum jw_kind kind)
{
    struct mentry *e = c->dirty;
    c->dirty = NULL;
    int err = 0;
    while (e) {
        struct mentry *next = e->dnext;
        e->listed = false;
        if (e->dirty && !err) {
            int phase = (kind == JW_RB || e->fresh) ? 1 : 3;
            struct qjw *w = jw_add(j, kind, phase, e->offset, e->data,
                                   c->entry_size);
            if (w) {
                w->e = e;
                w->c = c;
                w->was_fresh = e->fresh;
                e->dirty = false;
                c->ndirty--;
                e->busy++;
            } else {
                err = -ENOMEM;
            }
        }
        if (e->dirty) /* not taken: keep it listed */
            mc_mark_dirty(c, e);
        e = next;
    }
    return err;
}

/* Big-endian copy of entries [first, first+n) of a host-order table. */
static struct qjw *add_table(struct qjob *j, enum jw_kind kind, int phase,
                             uint64_t off, const uint64_t *t, size_t n)
{
    struct qjw *w = jw_add(j, kind, phase, off, NULL, n * 8);
    if (!w)
        return NULL;
    uint8_t *b = w->iov.iov_base;
    for (size_t i = 0; i < n; i++)
        put_be64(b + 8 * i, t[i]);
    return w;
}

static int snap_chunks(struct qjob *j, enum jw_kind kind, uint8_t *dirty,
                       size_t nchunks, const uint64_t *t, uint64_t entries,
                       uint64_t off, int phase)
{
    for (size_t i = 0; i < nchunks; i++) {
        if (!dirty[i] || i * 64 >= entries)
            continue;
        size_t n = MIN(64, entries - i * 64);
        struct qjw *w = add_table(j, kind, phase, off + i * 512, t + i * 64, n);
        if (!w)
            return -ENOMEM;
        w->chunk = i;
        dirty[i] = 0;
    }
    return 0;
}

static int snap_reftable(struct qjob *j)
{
    struct qcow2 *q = j->q;
    if (!q->rt_fresh)
        return snap_chunks(j, JW_RT, q->rt_dirty, q->rt_chunks, q->m.rt,
                           q->m.rt_entries, q->rt_offset, 2);
    if (!add_table(j, JW_RT, 1, q->rt_offset, q->m.rt, q->m.rt_entries))
        return -ENOMEM;
    memset(q->rt_dirty, 0, q->rt_chunks);
    uint8_t hdr[12];
    put_be64(hdr, q->rt_offset);
    put_be32(hdr + 8, q->rt_clusters);
    if (!jw_add(j, JW_HEADER, 2, 48, hdr, sizeof(hdr)))
        return -ENOMEM;
    j->rt_fresh = true;
    j->rt_gen = q->rt_gen;
    return 0;
}

static int snapshot(struct qjob *j)
{
    struct qcow2 *q = j->q;
    int r = snap_cache(j, &q->rbc, JW_RB);
    if (!r)
        r = snap_cache(j, &q->l2c, JW_L2);
    if (!r)
        r = snap_reftable(j);
    if (!r)
        r = snap_chunks(j, JW_L1, q->l1_dirty, q->l1_chunks, q->m.l1,
                        q->m.h.l1_size, q->m.h.l1_table_offset, 3);
    return r;
}

/* Puts everything a failed (or unstarted) job took back to dirty. */
static void job_undo(struct qjob *j)
{
    struct qcow2 *q = j->q;
    for (size_t i = 0; i < j->nw; i++) {
        struct qjw *w = &j->w[i];
        if (w->e)
            mc_mark_dirty(w->c, w->e);
        else if (w->kind == JW_L1)
            q->l1_dirty[w->chunk] = 1;
        else if (w->kind == JW_RT && !j->rt_fresh)
            q->rt_dirty[w->chunk] = 1;
    }
}

static void job_free(struct qjob *j)
{
    for (size_t i = 0; i < j->nw; i++) {
        struct qjw *w = &j->w[i];
        if (w->e)
            w->e->busy--;
        free(w->iov.iov_base);
    }
    free(j->w);
    free(j);
}

static void job_end(struct qjob *j)
{
    struct qcow2 *q = j->q;
    q->job = NULL;
    q->job_error = j->error;
    if (j->error) {
        job_undo(j);
    } else {
        for (size_t i = 0; i < j->nw; i++)
            if (j->w[i].e && j->w[i].was_fresh)
                j->w[i].e->fresh = false;
        if (j->rt_fresh && j->rt_gen == q->rt_gen)
            q->rt_fresh = false;
        qcow2_apply_frees(q, j->seq);
    }
    struct qreq *w = j->waiters;
    int err = j->error;
    job_free(j);
    while (w) {
        struct qreq *next = qcow2_next_flush(w);
        qcow2_flush_done(w, err);
        w = next;
    }
    if (q->flushes)
        qcow2_start_job(q);
}

static void job_next(struct qjob *j)
{
    if (j->error || j->phase == 3)
        job_end(j);
    else
        run_phase(j, j->phase + 1);
}

static void sync_done(struct aio_op *op, int res)
{
    struct qjob *j = container_of(op, struct qjob, sync);
    if (res < 0 && !j->error)
        j->error = res;
    job_next(j);
}

static void job_put(struct qjob *j)
{
    if (--j->pending)
        return;
    bool need_sync = j->wrote || (j->phase == 3 && j->waiters);
    if (j->error || !need_sync) {
        job_next(j);
        return;
    }
    j->sync = (struct aio_op){
        .opcode = AIO_FSYNC, .fd = j->q->f.bfd, .cb = sync_done};
    aio_submit(j->q->bd->eng, &j->sync);
}

static void jw_done(struct aio_op *op, int res)
{
    struct qjw *w = container_of(op, struct qjw, op);
    struct qjob *j = w->job;
    if (res < 0 && !j->error)
        j->error = res;
    uint64_t end = w->op.offset + w->iov.iov_len;
    if (!res && end > j->q->f.size)
        j->q->f.size = end;
    job_put(j);
}

static void run_phase(struct qjob *j, int phase)
{
    j->phase = phase;
    j->pending = 1;
    j->wrote = false;
    for (size_t i = 0; i < j->nw; i++) {
        struct qjw *w = &j->w[i];
        if (w->phase != phase)
            continue;
        uint64_t off = w->op.offset;
        w->op = (struct aio_op){
            .opcode = AIO_WRITE,
            .fd = j->q->f.bfd,
            .offset = off,
            .iov = &w->iov,
            .iovcnt = 1,
            .cb = jw_done,
        };
        j->pending++;
        j->wrote = true;
        aio_submit(j->q->bd->eng, &w->op);
    }
    job_put(j);
}

static bool has_work(const struct qcow2 *q)
{
    if (q->flushes || q->l2c.ndirty || q->rbc.ndirty || q->rt_fresh ||
        q->nfrees)
        return true;
    for (size_t i = 0; i < q->l1_chunks; i++)
        if (q->l1_dirty[i])
            return true;
    for (size_t i = 0; i < q->rt_chunks; i++)
        if (q->rt_dirty[i])
            return true;
    return false;
}

bool qcow2_writeback_wanted(const struct qcow2 *q)
{
    return q->flushes || q->l2c.ndirty > q->l2c.max / 2 ||
           q->rbc.ndirty > q->rbc.max / 2 || q->nfrees > 4096;
}

void qcow2_start_job(struct qcow2 *q)
{
    if (q->job || !has_work(q))
        return;
    struct qjob *j = calloc(1, sizeof(*j));
    if (!j)
        return; /* retried at the next flush or idle point */
    j->q = q;
    j->seq = ++q->job_started;
    if (snapshot(j) < 0) {
        job_undo(j);
        job_free(j);
        return;
    }
    j->waiters = q->flushes;
    q->flushes = q->flushes_tail = NULL;
    q->job = j;
    run_phase(j, 1);
}

int qcow2_flush_all(struct qcow2 *q)
{
    /* Each round may leave work behind: frees applied at the end of a job
     * dirty refcount blocks again. A few rounds settle it. */
    for (int round = 0; round < 8; round++) {
        while (q->job)
            aio_wait(q->bd->eng);
        if (!has_work(q))
            return 0;
        unsigned before = q->job_started;
        qcow2_start_job(q);
        if (q->job_started == before)
            return -ENOMEM;
        while (q->job)
            aio_wait(q->bd->eng);
        if (q->job_error)
            return q->job_error;
    }
    return has_work(q) ? -EIO : 0;
}
