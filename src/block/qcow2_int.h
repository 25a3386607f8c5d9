/* qcow2 inside the block layer: on-disk constants, the parsed image
 * metadata, the runtime state, and the functions the qcow2_*.c files share.
 *
 * Crash safety rests on three rules, kept by the metadata writeback job
 * (qcow2_flush.c):
 *  1. a refcount increment reaches the disk before any table that points
 *     at the cluster (refcount blocks, sync, then tables);
 *  2. a newly allocated table (L2 table, refcount block, refcount table)
 *     reaches the disk before the pointer to it;
 *  3. a refcount decrement is applied only after the table that dropped
 *     the reference is on disk, so a freed cluster is never reused while
 *     an on-disk table still points at it.
 * A SIGKILL at any moment therefore leaves at worst leaked clusters. */
#ifndef KVMPC_BLOCK_QCOW2_INT_H
#define KVMPC_BLOCK_QCOW2_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "block/block_int.h"
#include "util.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_BACKING_NAME 1023

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN 0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

#define QCOW2_EXT_END 0u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u

#define QCOW2_COMPRESS_ZLIB 0
#define QCOW2_COMPRESS_ZSTD 1

/* Table entries. */
#define QCOW_OFLAG_COPIED (1ull << 63)
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO 1ull
#define L1E_OFFSET_MASK 0x00fffffffffffe00ull
#define L1E_RESERVED 0x7f000000000001ffull
#define L2E_OFFSET_MASK 0x00fffffffffffe00ull
#define L2E_STD_RESERVED 0x3f000000000001feull
#define REFT_OFFSET_MASK 0xfffffffffffffe00ull
#define REFT_RESERVED 0x1ffull
#define EXTL2_ALL_ALLOC 0x00000000ffffffffull
#define EXTL2_ALL_ZERO 0xffffffff00000000ull

struct qcow2_header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible, compatible, autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
};

struct qcow2_snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
};

/* The image's metadata as parsed and validated at open. L1 and refcount
 * table are kept in host byte order. */
struct qcow2_meta {
    struct qcow2_header h;
    unsigned cb;       /* cluster bits */
    uint64_t cs;       /* cluster size */
    bool ext_l2;
    unsigned l2_bits;  /* log2 of entries per L2 table */
    unsigned esz_bits; /* log2 of bytes per L2 entry: 3, or 4 (extended) */
    unsigned sc_bits;  /* log2 of the allocation unit (subcluster) */
    unsigned rc_order;
    unsigned rb_bits;  /* log2 of entries per refcount block */
    uint64_t *l1;
    uint64_t *rt;
    uint64_t rt_entries;
    struct qcow2_snapshot *snaps;
    uint32_t nb_snaps;
    uint64_t snap_table_bytes;
    bool has_backing;
    char backing[QCOW2_MAX_BACKING_NAME + 1];
    enum blk_format backing_fmt; /* AUTO when the image does not say */
};

/* Parses and validates the header, extensions, L1 and refcount tables and
 * the snapshot table. writable: the image will be written (stricter).
 * Reports one line and returns -1 on failure. */
int qcow2_meta_load(struct qcow2_meta *m, const struct blk_file *f,
                    const char *path, bool writable);
void qcow2_meta_free(struct qcow2_meta *m);
/* Offset/size of the compressed data an L2 entry points at. */
void qcow2_compressed_range(const struct qcow2_meta *m, uint64_t l2e,
                            uint64_t *off, uint64_t *len);

/* ---- metadata cache (L2 tables keyed by L1 index, refcount blocks
 * keyed by refcount table index) ---- */

struct mentry {
    uint64_t key, offset;
    uint8_t *data;    /* one cluster, on-disk byte order */
    bool dirty;       /* changed since the last writeback snapshot */
    bool fresh;       /* newly allocated: its parent pointer is not on disk */
    bool listed;      /* on the dirty list */
    unsigned busy;    /* being written by a job: not evictable */
    struct mentry *hnext, *lprev, *lnext, *dnext;
};

struct mcache {
    struct mentry **buckets;
    unsigned nbuckets;
    struct mentry *lru_head, *lru_tail, *dirty;
    size_t count, max, ndirty;
    size_t entry_size;
};

int mc_init(struct mcache *c, size_t entry_size, size_t max);
void mc_destroy(struct mcache *c);
struct mentry *mc_find(struct mcache *c, uint64_t key);
/* A new entry with uninitialised data; NULL when out of memory. */
struct mentry *mc_insert(struct mcache *c, uint64_t key, uint64_t offset);
void mc_remove(struct mcache *c, struct mentry *e);
void mc_mark_dirty(struct mcache *c, struct mentry *e);
/* Evicts clean, idle entries beyond the limit. */
void mc_trim(struct mcache *c);

/* ---- runtime state ---- */

struct qreq;
struct qjob;

struct qfree {
    uint64_t cluster, n;
    unsigned after; /* the first job whose completion makes it safe */
};

struct qlock {
    uint64_t ci;
    unsigned shared;
    bool excl;
    struct qreq *waiters, *wtail;
    struct qlock *next;
};

#define QLOCK_BUCKETS 1024
#define QZCACHE 4

struct qcow2 {
    struct blockdev *bd;
    struct blk_file f;
    struct qcow2_meta m;
    const char *path;
    bool v3;
    int ctype;

    struct blockdev *backing;
    uint64_t backing_size;

    struct mcache l2c, rbc;
    uint8_t *l1_dirty; /* per 512-byte chunk of the L1 table */
    size_t l1_chunks;
    uint8_t *rt_dirty; /* per 512-byte chunk of the refcount table */
    size_t rt_chunks;
    uint64_t rt_offset;
    uint32_t rt_clusters;
    bool rt_fresh;     /* the table moved; the header does not say so yet */
    unsigned rt_gen;

    uint64_t free_hint, alloc_end; /* clusters */
    struct qfree *frees;
    size_t nfrees, cap_frees;

    uint64_t *meta;    /* sorted clusters of L2 tables and refcount blocks */
    size_t nmeta, cap_meta;

    struct qjob *job;
    unsigned job_started;
    int job_error; /* of the last job that ended */
    struct qreq *flushes, *flushes_tail;

    struct qlock *locks[QLOCK_BUCKETS];

    struct {
        uint64_t key;
        uint8_t *data;
    } zc[QZCACHE];
    unsigned zc_next;

    bool in_submit;
    bool broken;
    unsigned warnings;
};

/* Reports a corruption found at run time (rate-limited) and returns
 * -EIO; writes are refused from then on. */
int qcow2_corrupt(struct qcow2 *q, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* qcow2_alloc.c: refcounts, allocation, deferred frees, metadata set. */
int qcow2_rc_get(struct qcow2 *q, uint64_t cluster, uint64_t *val);
int qcow2_rc_set(struct qcow2 *q, uint64_t cluster, uint64_t val);
int qcow2_rc_add(struct qcow2 *q, uint64_t cluster, int delta);
/* Allocates up to n contiguous clusters (at least one); refcounts are
 * set to 1. Returns 0 with *host (bytes) and *got, or -errno. */
int qcow2_alloc(struct qcow2 *q, uint64_t n, uint64_t *host, uint64_t *got);
/* Gives clusters back at once (they were never referenced). */
void qcow2_unalloc(struct qcow2 *q, uint64_t host, uint64_t n);
void qcow2_defer_free(struct qcow2 *q, uint64_t host, uint64_t n);
/* Defers freeing what an L2 entry points at (data or compressed). */
void qcow2_defer_free_entry(struct qcow2 *q, uint64_t l2e);
void qcow2_apply_frees(struct qcow2 *q, unsigned done_seq);
bool qcow2_overlaps_meta(const struct qcow2 *q, uint64_t off, uint64_t len);
int qcow2_meta_add(struct qcow2 *q, uint64_t off);
void qcow2_meta_del(struct qcow2 *q, uint64_t off);
uint64_t qcow2_rb_get_entry(const uint8_t *b, unsigned order, uint64_t i);
void qcow2_rb_set_entry(uint8_t *b, unsigned order, uint64_t i, uint64_t v);

/* Marks the 512-byte chunk of the L1 / refcount table holding an entry
 * for writeback. */
void qcow2_l1_dirty(struct qcow2 *q, uint64_t l1i);
void qcow2_rt_dirty(struct qcow2 *q, uint64_t rti);

/* qcow2_io.c: tables. */
int qcow2_l2_lookup(struct qcow2 *q, uint64_t l1i, struct mentry **out);
int qcow2_l2_for_write(struct qcow2 *q, uint64_t l1i, struct mentry **out);

/* qcow2_io.c: requests. */
int qcow2_submit(struct blockdev *bd, struct blk_req *req);
void qcow2_io_cleanup(struct qcow2 *q);
/* FLUSH requests wait for a job in a list linked through their requests. */
struct qreq *qcow2_next_flush(struct qreq *r);
void qcow2_flush_done(struct qreq *r, int res);

/* qcow2_flush.c: the metadata writeback job. */
bool qcow2_writeback_wanted(const struct qcow2 *q);
/* Starts a job if none runs and there is work (or flush waiters). */
void qcow2_start_job(struct qcow2 *q);
/* Queues a FLUSH request for the next job. */
void qcow2_queue_flush(struct qcow2 *q, struct qreq *r);
/* Writes everything back and waits; returns 0 or -errno. */
int qcow2_flush_all(struct qcow2 *q);

/* qcow2_check.c. */
struct qcow2_check_result {
    uint64_t corruptions, leaks, fixed;
    uint64_t image_end;
};
/* Compares refcounts with the references of every table (active and
 * snapshots). out: where to print findings (NULL: quiet). repair: rewrite
 * refcounts to match (for dirty images). */
int qcow2_check(struct qcow2 *q, FILE *out, bool repair,
                struct qcow2_check_result *res);

/* qcow2_create.c: a new, empty image. */
struct qcow2_create_opts {
    uint64_t size;
    unsigned cluster_bits;
    unsigned version; /* 2 or 3 */
    unsigned refcount_order;
    bool lazy_refcounts;
    const char *backing;     /* NULL: none; stored as given */
    const char *backing_fmt; /* NULL: not recorded */
};
/* Reports one line and returns -1 on failure. */
int qcow2_create(const char *path, const struct qcow2_create_opts *o);

/* compress.c */
int qcow2_decompress(int type, const uint8_t *src, size_t slen, uint8_t *dst,
                     size_t dlen);

#endif
