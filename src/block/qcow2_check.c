/* qcow2 consistency check: counts the references to every host cluster
 * from the header, the tables of the active image and of every snapshot,
 * then compares them with the stored refcounts. A refcount below the
 * references is corruption (the cluster could be handed out twice); one
 * above is a leak (wasted space). Also checks the copied flags of the
 * active tables and the shape of every entry. Reads the file as it is on
 * disk, so it runs before the image is used (at open, or by 'img check').
 * In repair mode it rewrites refcounts to match. */
#include "block/qcow2_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PAGE_BITS 16
#define MAX_PRINTED 200

struct checker {
    struct qcow2 *q;
    FILE *out;
    uint64_t nclusters; /* clusters in the file */
    uint32_t **pages;
    uint64_t npages;
    uint8_t *buf;
    uint64_t printed, max_ref;
    struct qcow2_check_result *res;
    bool oom;
};

static void problem(struct checker *k, bool corruption, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static void problem(struct checker *k, bool corruption, const char *fmt, ...)
{
    if (corruption)
        k->res->corruptions++;
    else
        k->res->leaks++;
    if (!k->out || k->printed++ >= MAX_PRINTED)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs(corruption ? "ERROR " : "Leaked ", k->out);
    vfprintf(k->out, fmt, ap);
    fputc('\n', k->out);
    va_end(ap);
}

static uint32_t *ref_slot(struct checker *k, uint64_t c, bool create)
{
    uint64_t p = c >> PAGE_BITS;
    if (!k->pages[p]) {
        if (!create)
            return NULL;
        k->pages[p] = calloc(1u << PAGE_BITS, sizeof(uint32_t));
        if (!k->pages[p]) {
            k->oom = true;
            return NULL;
        }
    }
    return &k->pages[p][c & ((1u << PAGE_BITS) - 1)];
}

static uint64_t refs(struct checker *k, uint64_t c)
{
    if (c >= k->nclusters)
        return 0;
    uint32_t *s = ref_slot(k, c, false);
    return s ? *s : 0;
}

/* One more reference to every cluster of [off, off+len). */
static void count(struct checker *k, uint64_t off, uint64_t len,
                  const char *what)
{
    if (!len)
        return;
    const struct qcow2_meta *m = &k->q->m;
    uint64_t first = off >> m->cb, last = (off + len - 1) >> m->cb;
    for (uint64_t c = first; c <= last; c++) {
        if (c >= k->nclusters) {
            problem(k, true, "%s at %#llx lies beyond the end of the file",
                    what, (unsigned long long)off);
            return;
        }
        uint32_t *s = ref_slot(k, c, true);
        if (s && *s < UINT32_MAX)
            (*s)++;
        k->max_ref = MAX(k->max_ref, c + 1);
    }
}

static void check_l2_entry(struct checker *k, const uint8_t *ent, uint64_t l2off,
                           uint64_t i)
{
    const struct qcow2_meta *m = &k->q->m;
    uint64_t e = get_be64(ent), bm = m->ext_l2 ? get_be64(ent + 8) : 0;
    if (e & QCOW_OFLAG_COMPRESSED) {
        uint64_t off, len;
        qcow2_compressed_range(m, e, &off, &len);
        if (bm || (e & QCOW_OFLAG_COPIED))
            problem(k, true, "compressed L2 entry %#llx (table %#llx index "
                    "%llu) has stray flags",
                    (unsigned long long)e, (unsigned long long)l2off,
                    (unsigned long long)i);
        count(k, off, len, "compressed cluster");
        return;
    }
    uint64_t off = e & L2E_OFFSET_MASK;
    uint32_t alloc = (uint32_t)bm, zero = (uint32_t)(bm >> 32);
    if ((e & L2E_STD_RESERVED) || (off & (m->cs - 1)) ||
        (m->ext_l2 && ((e & QCOW_OFLAG_ZERO) || (alloc & zero) ||
                       (alloc && !off))) ||
        (!off && (e & QCOW_OFLAG_COPIED))) {
        problem(k, true, "malformed L2 entry %#llx (table %#llx index %llu)",
                (unsigned long long)e, (unsigned long long)l2off,
                (unsigned long long)i);
        return;
    }
    if (off)
        count(k, off, m->cs, "data cluster");
}

static void walk_l2(struct checker *k, uint64_t l2off)
{
    const struct qcow2_meta *m = &k->q->m;
    int r = blk_file_pread(&k->q->f, k->buf, m->cs, l2off);
    if (r < 0) {
        problem(k, true, "cannot read L2 table %#llx: %s",
                (unsigned long long)l2off, strerror(-r));
        return;
    }
    for (uint64_t i = 0; i < (1ull << m->l2_bits); i++)
        check_l2_entry(k, k->buf + (i << m->esz_bits), l2off, i);
}

static void walk_l1(struct checker *k, const uint64_t *l1, uint32_t n)
{
    const struct qcow2_meta *m = &k->q->m;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = l1[i] & L1E_OFFSET_MASK;
        if (!off)
            continue;
        if ((l1[i] & L1E_RESERVED) || (off & (m->cs - 1))) {
            problem(k, true, "malformed L1 entry %u: %#llx", i,
                    (unsigned long long)l1[i]);
            continue;
        }
        count(k, off, m->cs, "L2 table");
        if ((off >> m->cb) < k->nclusters)
            walk_l2(k, off);
    }
}

static void walk_snapshot(struct checker *k, const struct qcow2_snapshot *s)
{
    uint64_t *l1 = malloc((uint64_t)s->l1_size * 8 + 8);
    if (!l1) {
        k->oom = true;
        return;
    }
    int r = blk_file_pread(&k->q->f, l1, (uint64_t)s->l1_size * 8,
                           s->l1_offset);
    if (r < 0) {
        problem(k, true, "cannot read snapshot L1 table %#llx",
                (unsigned long long)s->l1_offset);
    } else {
        for (uint32_t i = 0; i < s->l1_size; i++)
            l1[i] = get_be64(&l1[i]);
        count(k, s->l1_offset, (uint64_t)s->l1_size * 8, "snapshot L1 table");
        walk_l1(k, l1, s->l1_size);
    }
    free(l1);
}

static void count_all(struct checker *k, const uint64_t *rt, uint64_t rtn)
{
    struct qcow2 *q = k->q;
    const struct qcow2_meta *m = &q->m;
    count(k, 0, m->cs, "header");
    count(k, m->h.l1_table_offset, (uint64_t)m->h.l1_size * 8, "L1 table");
    count(k, q->rt_offset, (uint64_t)q->rt_clusters << m->cb,
          "refcount table");
    for (uint64_t i = 0; i < rtn; i++) {
        uint64_t off = rt[i] & REFT_OFFSET_MASK;
        if (!rt[i])
            continue;
        if ((rt[i] & REFT_RESERVED) || (off & (m->cs - 1)))
            problem(k, true, "malformed refcount table entry %llu: %#llx",
                    (unsigned long long)i, (unsigned long long)rt[i]);
        else
            count(k, off, m->cs, "refcount block");
    }
    count(k, m->h.snapshots_offset, m->snap_table_bytes, "snapshot table");
    walk_l1(k, m->l1, m->h.l1_size);
    for (uint32_t i = 0; i < m->nb_snaps; i++)
        walk_snapshot(k, &m->snaps[i]);
}

/* Compares (or, repairing, sets) the refcount of cluster c. */
static void compare_one(struct checker *k, uint64_t c, uint64_t rc,
                        bool repair)
{
    uint64_t ref = refs(k, c);
    if (rc == ref)
        return;
    if (repair) {
        if (qcow2_rc_set(k->q, c, ref) == 0)
            k->res->fixed++;
        else
            problem(k, true, "cannot fix the refcount of cluster %llu",
                    (unsigned long long)c);
        return;
    }
    problem(k, rc < ref, "cluster %llu refcount=%llu references=%llu",
            (unsigned long long)c, (unsigned long long)rc,
            (unsigned long long)ref);
}

static void compare_all(struct checker *k, const uint64_t *rt, uint64_t rtn,
                        bool repair)
{
    const struct qcow2_meta *m = &k->q->m;
    uint64_t per = 1ull << m->rb_bits;
    uint8_t *blk = malloc(m->cs);
    if (!blk) {
        k->oom = true;
        return;
    }
    for (uint64_t rti = 0; rti < rtn; rti++) {
        uint64_t base = rti * per, off = rt[rti] & REFT_OFFSET_MASK;
        bool have = rt[rti] && !(rt[rti] & REFT_RESERVED) &&
                    !(off & (m->cs - 1)) &&
                    blk_file_pread(&k->q->f, blk, m->cs, off) == 0;
        for (uint64_t i = 0; i < per; i++) {
            if (!have && base + i >= k->nclusters)
                break;
            uint64_t rc = have ? qcow2_rb_get_entry(blk, m->rc_order, i) : 0;
            compare_one(k, base + i, rc, repair);
        }
    }
    for (uint64_t c = rtn * per; c < k->nclusters; c++)
        compare_one(k, c, 0, repair);
    free(blk);
}

/* The copied flag must be set exactly where the refcount is one. */
static void check_copied(struct checker *k)
{
    const struct qcow2_meta *m = &k->q->m;
    for (uint32_t i = 0; i < m->h.l1_size; i++) {
        uint64_t l1e = m->l1[i], off = l1e & L1E_OFFSET_MASK;
        if (!off || (off & (m->cs - 1)) || (off >> m->cb) >= k->nclusters)
            continue;
        if ((refs(k, off >> m->cb) == 1) != !!(l1e & QCOW_OFLAG_COPIED))
            problem(k, true, "copied flag of L1 entry %u (%#llx) is wrong",
                    i, (unsigned long long)l1e);
        if (blk_file_pread(&k->q->f, k->buf, m->cs, off) < 0)
            continue;
        for (uint64_t j = 0; j < (1ull << m->l2_bits); j++) {
            uint64_t e = get_be64(k->buf + (j << m->esz_bits));
            uint64_t d = e & L2E_OFFSET_MASK;
            if ((e & QCOW_OFLAG_COMPRESSED) || !d || (d & (m->cs - 1)) ||
                (d >> m->cb) >= k->nclusters)
                continue;
            if ((refs(k, d >> m->cb) == 1) != !!(e & QCOW_OFLAG_COPIED))
                problem(k, true, "copied flag of L2 entry %#llx (table "
                        "%#llx) is wrong",
                        (unsigned long long)e, (unsigned long long)off);
        }
    }
}

int qcow2_check(struct qcow2 *q, FILE *out, bool repair,
                struct qcow2_check_result *res)
{
    memset(res, 0, sizeof(*res));
    struct checker k = {.q = q, .out = out, .res = res};
    k.nclusters = (q->f.size + q->m.cs - 1) >> q->m.cb;
    if (k.nclusters > (1ull << 32)) {
        report_error("'%s' is too large to check", q->path);
        return -1;
    }
    k.npages = (k.nclusters >> PAGE_BITS) + 1;
    k.pages = calloc(k.npages, sizeof(*k.pages));
    k.buf = malloc(q->m.cs);
    /* The table as it is now: repairs may grow the live one. */
    uint64_t rtn = q->m.rt_entries;
    uint64_t *rt = malloc(rtn * 8);
    int ret = -1;
    if (!k.pages || !k.buf || !rt)
        goto out;
    memcpy(rt, q->m.rt, rtn * 8);
    count_all(&k, rt, rtn);
    if (k.oom)
        goto out;
    if (repair) /* new refcount blocks go after everything referenced */
        q->free_hint = q->alloc_end = MAX(q->alloc_end, k.nclusters);
    compare_all(&k, rt, rtn, repair);
    check_copied(&k);
    res->image_end = k.max_ref << q->m.cb;
    ret = k.oom ? -1 : 0;
out:
    if (ret < 0)
        report_error("out of memory checking '%s'", q->path);
    for (uint64_t i = 0; k.pages && i < k.npages; i++)
        free(k.pages[i]);
    free(k.pages);
    free(k.buf);
    free(rt);
    return ret;
}
