/* The block layer: disk images (raw, qcow2) behind one asynchronous
 * interface. It knows nothing of virtio. All calls for one blockdev are
 * made from one thread (the I/O thread), which also polls completions. */
#ifndef KVMPC_BLOCK_H
#define KVMPC_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum blk_format {
    BLK_FORMAT_AUTO = 0, /* detect from the header; raw if no signature */
    BLK_FORMAT_RAW,
    BLK_FORMAT_QCOW2,
};

enum blk_cache {
    BLK_CACHE_WRITEBACK = 0,
    BLK_CACHE_NONE, /* O_DIRECT */
};

struct blk_open_opts {
    const char *path;
    bool readonly;
    enum blk_format format;
    enum blk_cache cache;
};

enum blk_op {
    BLK_OP_READ,
    BLK_OP_WRITE,
    BLK_OP_FLUSH,        /* durable (fdatasync) before completion */
    BLK_OP_DISCARD,
    BLK_OP_WRITE_ZEROES,
};

/* Most iovec entries one READ/WRITE may carry. */
#define BLK_MAX_IOV 1016

struct blk_req {
    enum blk_op op;
    uint64_t offset; /* bytes */
    uint64_t len;    /* bytes; for READ/WRITE the iovec total */
    const struct iovec *iov;
    unsigned iovcnt;
    /* result: 0 or -errno. Called from blk_poll() (or, for requests that
     * fail validation, from blk_submit() itself). */
    void (*done)(struct blk_req *req, int result);
    void *opaque;
};

struct blockdev;

/* Opens an image; on failure reports one line naming the problem and
 * returns -1. */
int blk_open(const struct blk_open_opts *opts, struct blockdev **out);
void blk_close(struct blockdev *bd); /* waits for requests in flight */
/* Waits until every submitted request has completed (done() called). */
void blk_drain(struct blockdev *bd);

uint64_t blk_size(const struct blockdev *bd); /* virtual size, bytes */
bool blk_is_readonly(const struct blockdev *bd);
const char *blk_format_name(const struct blockdev *bd);

/* Queues a request; several may be in flight. Returns 0, or -errno if it
 * could not be queued (done() is not called then). A request that fails
 * validation (range beyond the disk, iov total != len, write to a
 * read-only disk: -EINVAL/-EROFS) is finished at once: done() runs inside
 * blk_submit() and 0 is returned. Requests in flight at the same time
 * complete in any order; a FLUSH makes durable every write that completed
 * before the FLUSH was submitted. Offsets and lengths are in bytes with
 * no alignment requirement. req and its iov stay untouched and must live
 * until done(). */
int blk_submit(struct blockdev *bd, struct blk_req *req);
/* Starts queued requests (batched submission). */
void blk_kick(struct blockdev *bd);
/* An fd that becomes readable when completions are ready (for epoll). */
int blk_event_fd(const struct blockdev *bd);
/* Runs done() for every finished request. */
void blk_poll(struct blockdev *bd);

/* Parses a --disk value: FILE[,format=raw|qcow2][,ro][,cache=writeback|none]
 * (",," is a comma inside FILE). On success out->path is a malloc'ed copy
 * the caller frees. On failure reports one line and returns -1. */
int blk_parse_disk_opts(const char *arg, struct blk_open_opts *out);

#endif
