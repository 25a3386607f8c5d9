/* Raw images: guest offset = file offset. Every request is one engine
 * operation, except WRITE_ZEROES on file systems that cannot zero a range,
 * which falls back to writing zeros. */
#include "block/block_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ZERO_CHUNK (1u << 20)

struct raw_req {
    struct aio_op op;
    struct blockdev *bd;
    struct blk_req *req;
    struct raw_req *next_free;
    uint8_t *zbuf; /* zero-writing fallback */
    uint64_t zpos;
    struct iovec ziov;
};

struct raw {
    struct blk_file f;
    struct raw_req *free;
};

static struct raw_req *rreq_get(struct raw *r)
{
    struct raw_req *q = r->free;
    if (q) {
        r->free = q->next_free;
        return q;
    }
    return malloc(sizeof(*q));
}

static void rreq_put(struct raw *r, struct raw_req *q)
{
    q->next_free = r->free;
    r->free = q;
}

static void raw_finish(struct raw_req *q, int result)
{
    struct blockdev *bd = q->bd;
    struct blk_req *req = q->req;
    free(q->zbuf);
    rreq_put(bd->priv, q);
    blk_complete(bd, req, result);
}

static void raw_done(struct aio_op *op, int result)
{
    raw_finish(container_of(op, struct raw_req, op),
               result);
}

static void discard_done(struct aio_op *op, int result)
{
    /* Discard is advisory: a file system that cannot punch holes has
     * still done what the guest may rely on. */
    if (result == -EOPNOTSUPP || result == -ENOTTY || result == -ENOSYS)
        result = 0;
    raw_done(op, result);
}

static void zero_write_next(struct raw_req *q);

static void zero_write_done(struct aio_op *op, int result)
{
    struct raw_req *q =
        container_of(op, struct raw_req, op);
    if (result < 0) {
        raw_finish(q, result);
        return;
    }
    q->zpos += q->ziov.iov_len;
    zero_write_next(q);
}

static void zero_write_next(struct raw_req *q)
{
    struct raw *r = q->bd->priv;
    uint64_t end = q->req->offset + q->req->len;
    if (q->zpos >= end) {
        raw_finish(q, 0);
        return;
    }
    q->ziov.iov_base = q->zbuf;
    q->ziov.iov_len = MIN(end - q->zpos, ZERO_CHUNK);
    q->op = (struct aio_op){
        .opcode = AIO_WRITE,
        .fd = blk_file_fd_for(&r->f, q->zpos, &q->ziov, 1),
        .offset = q->zpos,
        .iov = &q->ziov,
        .iovcnt = 1,
        .cb = zero_write_done,
    };
    aio_submit(q->bd->eng, &q->op);
}

static void zero_range_done(struct aio_op *op, int result)
{
    struct raw_req *q =
        container_of(op, struct raw_req, op);
    if (result != -EOPNOTSUPP && result != -EINVAL && result != -ENODEV &&
        result != -ENOSYS) {
        raw_done(op, result);
        return;
    }
    q->zbuf = blk_alloc_buf(ZERO_CHUNK);
    if (!q->zbuf) {
        raw_finish(q, -ENOMEM);
        return;
    }
    memset(q->zbuf, 0, ZERO_CHUNK);
    q->zpos = q->req->offset;
    zero_write_next(q);
}

static int raw_submit(struct blockdev *bd, struct blk_req *req)
{
    struct raw *r = bd->priv;
    struct raw_req *q = rreq_get(r);
    if (!q)
        return -ENOMEM;
    q->bd = bd;
    q->req = req;
    q->zbuf = NULL;
    q->op = (struct aio_op){.fd = r->f.bfd, .offset = req->offset,
                            .len = req->len, .cb = raw_done};
    switch (req->op) {
    case BLK_OP_READ:
    case BLK_OP_WRITE:
        q->op.opcode = req->op == BLK_OP_READ ? AIO_READ : AIO_WRITE;
        q->op.iov = req->iov;
        q->op.iovcnt = req->iovcnt;
        q->op.fd = blk_file_fd_for(&r->f, req->offset, req->iov, req->iovcnt);
        break;
    case BLK_OP_FLUSH:
        q->op.opcode = AIO_FSYNC;
        break;
    case BLK_OP_DISCARD:
        q->op.opcode = AIO_FALLOCATE;
        q->op.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        q->op.cb = discard_done;
        break;
    case BLK_OP_WRITE_ZEROES:
        q->op.opcode = AIO_FALLOCATE;
        q->op.mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
        q->op.cb = zero_range_done;
        break;
    }
    if (q->op.opcode == AIO_FALLOCATE && !req->len)
        aio_complete_later(bd->eng, &q->op, 0);
    else
        aio_submit(bd->eng, &q->op);
    return 0;
}

static void raw_close(struct blockdev *bd)
{
    struct raw *r = bd->priv;
    blk_file_close(&r->f);
    while (r->free) {
        struct raw_req *q = r->free;
        r->free = q->next_free;
        free(q);
    }
    free(r);
}

static const struct blk_driver raw_driver = {
    .name = "raw",
    .submit = raw_submit,
    .close = raw_close,
};

int raw_open(struct blockdev *bd, const struct blk_open_opts *opts,
             struct blk_chain *chain)
{
    struct raw *r = calloc(1, sizeof(*r));
    if (!r) {
        report_error("out of memory opening '%s'", opts->path);
        return -1;
    }
    if (blk_file_open(&r->f, opts->path, opts->readonly,
                      opts->cache == BLK_CACHE_NONE) < 0) {
        free(r);
        return -1;
    }
    if (blk_chain_enter(chain, &r->f, opts->path) < 0) {
        blk_file_close(&r->f);
        free(r);
        return -1;
    }
    bd->drv = &raw_driver;
    bd->priv = r;
    bd->size = r->f.size;
    return 0;
}
