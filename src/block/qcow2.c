/* The qcow2 driver: open (metadata, caches, backing chain, repair of
 * dirty images), the idle hook, close. */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define L2_CACHE_BYTES (32u << 20)
#define RB_CACHE_BYTES (4u << 20)

static void qcow2_idle(struct blockdev *bd)
{
    struct qcow2 *q = bd->priv;
    mc_trim(&q->l2c);
    mc_trim(&q->rbc);
    if (!q->job && !bd->readonly && qcow2_writeback_wanted(q))
        qcow2_start_job(q);
}

static void qcow2_free(struct qcow2 *q)
{
    if (q->backing)
        blk_close(q->backing);
    mc_destroy(&q->l2c);
    mc_destroy(&q->rbc);
    qcow2_io_cleanup(q);
    for (unsigned i = 0; i < QLOCK_BUCKETS; i++) {
        while (q->locks[i]) { /* none remain once requests are done */
            struct qlock *l = q->locks[i];
            q->locks[i] = l->next;
            free(l);
        }
    }
    qcow2_meta_free(&q->m);
    blk_file_close(&q->f);
    free(q->l1_dirty);
    free(q->rt_dirty);
    free(q->frees);
    free(q->meta);
    free(q);
}

static void qcow2_close(struct blockdev *bd)
{
    struct qcow2 *q = bd->priv;
    if (!bd->readonly) {
        int r = qcow2_flush_all(q);
        if (!r)
            r = blk_file_sync(&q->f);
        if (r)
            report_error("'%s': writing metadata back failed: %s", q->path,
                         strerror(-r));
    }
    while (q->job)
        aio_wait(bd->eng);
    qcow2_free(q);
}

static const struct blk_driver qcow2_driver = {
    .name = "qcow2",
    .submit = qcow2_submit,
    .idle = qcow2_idle,
    .close = qcow2_close,
};

/* A backing file name is relative to the image that names it. */
static char *backing_path(const char *image, const char *name)
{
    const char *slash = strrchr(image, '/');
    if (name[0] == '/' || !slash)
        return strdup(name);
    size_t dir = (size_t)(slash - image) + 1;
    char *p = malloc(dir + strlen(name) + 1);
    if (p) {
        memcpy(p, image, dir);
        strcpy(p + dir, name);
    }
    return p;
}

static int open_backing(struct qcow2 *q, const struct blk_open_opts *opts,
                        struct blk_chain *chain, unsigned flags)
{
    if (!q->m.has_backing || (flags & BLK_OPEN_NO_BACKING))
        return 0;
    const char *name = q->m.backing;
    if (!strncmp(name, "json:", 5) || strstr(name, "://")) {
        report_error("'%s': backing file '%s' is not a plain file name",
                     q->path, name);
        return -1;
    }
    char *path = backing_path(q->path, name);
    if (!path) {
        report_error("out of memory opening '%s'", q->path);
        return -1;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        report_error("backing file '%s' of '%s': %s", path, q->path,
                     strerror(errno));
        free(path);
        return -1;
    }
    struct blk_open_opts bo = {
        .path = path,
        .readonly = true,
        .format = q->m.backing_fmt,
        .cache = opts->cache,
    };
    int r = blk_open_on(&bo, q->bd->eng, chain, flags, &q->backing);
    free(path);
    if (r < 0)
        return -1;
    q->backing_size = blk_size(q->backing);
    return 0;
}

static int init_runtime(struct qcow2 *q)
{
    const struct qcow2_meta *m = &q->m;
    uint64_t per_l1 = 1ull << (m->l2_bits + m->cb);
    uint64_t tables = m->h.size / per_l1 + 1;
    size_t l2max = (size_t)MAX(16, MIN(tables, L2_CACHE_BYTES >> m->cb));
    size_t rbmax = (size_t)MAX(16, RB_CACHE_BYTES >> m->cb);
    q->l1_chunks = m->h.l1_size / 64 + 1;
    q->rt_chunks = m->rt_entries / 64 + 1;
    q->l1_dirty = calloc(q->l1_chunks, 1);
    q->rt_dirty = calloc(q->rt_chunks, 1);
    if (!q->l1_dirty || !q->rt_dirty || mc_init(&q->l2c, m->cs, l2max) < 0 ||
        mc_init(&q->rbc, m->cs, rbmax) < 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->h.l1_size; i++)
        if ((m->l1[i] & L1E_OFFSET_MASK) &&
            qcow2_meta_add(q, m->l1[i] & L1E_OFFSET_MASK) < 0)
            return -ENOMEM;
    for (uint64_t i = 0; i < m->rt_entries; i++)
        if (m->rt[i] && qcow2_meta_add(q, m->rt[i] & REFT_OFFSET_MASK) < 0)
            return -ENOMEM;
    q->v3 = m->h.version >= 3;
    q->ctype = m->h.compression_type;
    q->rt_offset = m->h.refcount_table_offset;
    q->rt_clusters = m->h.refcount_table_clusters;
    q->alloc_end = (q->f.size + m->cs - 1) >> m->cb;
    return 0;
}

static int write_header_u64(struct qcow2 *q, uint64_t off, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    int r = blk_file_pwrite(&q->f, b, 8, off);
    if (!r)
        r = blk_file_sync(&q->f);
    if (r < 0)
        report_error("cannot update the header of '%s': %s", q->path,
                     strerror(-r));
    return r;
}

/* An image left dirty (lazy refcounts, or a crash of a program using
 * them) has refcounts that cannot be trusted: rebuild them from the
 * tables before anything is allocated, then clear the bit. */
static int repair_dirty(struct qcow2 *q)
{
    struct qcow2_check_result res;
    if (qcow2_check(q, NULL, true, &res) < 0 || res.corruptions) {
        report_error("'%s' was left dirty and its refcounts cannot be "
                     "rebuilt",
                     q->path);
        return -1;
    }
    int r = qcow2_flush_all(q);
    if (!r)
        r = blk_file_sync(&q->f);
    if (r < 0) {
        report_error("'%s': writing rebuilt refcounts failed: %s", q->path,
                     strerror(-r));
        return -1;
    }
    q->m.h.incompatible &= ~QCOW2_INCOMPAT_DIRTY;
    return write_header_u64(q, 72, q->m.h.incompatible);
}

static int prepare_writes(struct qcow2 *q)
{
    if ((q->m.h.incompatible & QCOW2_INCOMPAT_DIRTY) && repair_dirty(q) < 0)
        return -1;
    /* Auto-clear bits describe data kvmpc does not maintain (bitmaps):
     * writing means declaring them stale. */
    if (q->m.h.autoclear) {
        q->m.h.autoclear = 0;
        if (write_header_u64(q, 88, 0) < 0)
            return -1;
    }
    return 0;
}

int qcow2_open(struct blockdev *bd, const struct blk_open_opts *opts,
               struct blk_chain *chain, unsigned flags)
{
    struct qcow2 *q = calloc(1, sizeof(*q));
    if (!q) {
        report_error("out of memory opening '%s'", opts->path);
        return -1;
    }
    q->bd = bd;
    q->path = bd->path;
    if (blk_file_open(&q->f, opts->path, opts->readonly,
                      opts->cache == BLK_CACHE_NONE) < 0) {
        free(q);
        return -1;
    }
    bd->priv = q;
    bd->drv = &qcow2_driver;
    if (blk_chain_enter(chain, &q->f, opts->path) < 0 ||
        qcow2_meta_load(&q->m, &q->f, opts->path, !opts->readonly) < 0)
        goto fail;
    if (init_runtime(q) < 0) {
        report_error("out of memory opening '%s'", opts->path);
        goto fail;
    }
    bd->size = q->m.h.size;
    if (open_backing(q, opts, chain, flags) < 0)
        goto fail;
    if (!opts->readonly && prepare_writes(q) < 0)
        goto fail;
    return 0;
fail:
    qcow2_free(q);
    bd->priv = NULL;
    return -1;
}
