#include "fake_block.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define FAKE_MAX_QUEUED 4096

struct blockdev {
    uint8_t *data;
    uint64_t size;
    bool readonly;
    int efd;
    struct blk_req *queued[FAKE_MAX_QUEUED];
    unsigned nqueued, nkicked, limit;
    struct fake_blk_op log[FAKE_BLK_LOG];
    unsigned nlog;
    unsigned nsubmit;
    unsigned ninvalid;
    unsigned fail_count;
    int fail_err;
};

struct blockdev *fake_blk_new(uint64_t size, bool readonly)
{
    struct blockdev *bd = calloc(1, sizeof(*bd));
    if (!bd)
        return NULL;
    bd->data = calloc(1, size ? size : 1);
    bd->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!bd->data || bd->efd < 0) {
        free(bd->data);
        free(bd);
        return NULL;
    }
    bd->size = size;
    bd->readonly = readonly;
    bd->limit = FAKE_MAX_QUEUED;
    return bd;
}

void blk_close(struct blockdev *bd)
{
    if (!bd)
        return;
    close(bd->efd);
    free(bd->data);
    free(bd);
}

uint64_t blk_size(const struct blockdev *bd)
{
    return bd->size;
}

bool blk_is_readonly(const struct blockdev *bd)
{
    return bd->readonly;
}

const char *blk_format_name(const struct blockdev *bd)
{
    return "fake";
}

uint8_t *fake_blk_data(struct blockdev *bd)
{
    return bd->data;
}

unsigned fake_blk_inflight(const struct blockdev *bd)
{
    return bd->nqueued;
}

unsigned fake_blk_log_count(const struct blockdev *bd)
{
    return bd->nlog;
}

const struct fake_blk_op *fake_blk_log(const struct blockdev *bd, unsigned i)
{
    return &bd->log[i % FAKE_BLK_LOG];
}

unsigned fake_blk_submit_count(const struct blockdev *bd)
{
    return bd->nsubmit;
}

unsigned fake_blk_invalid_count(const struct blockdev *bd)
{
    return bd->ninvalid;
}

void fake_blk_fail_next(struct blockdev *bd, unsigned n, int err)
{
    bd->fail_count = n;
    bd->fail_err = err;
}

void fake_blk_set_limit(struct blockdev *bd, unsigned limit)
{
    bd->limit = limit < FAKE_MAX_QUEUED ? limit : FAKE_MAX_QUEUED;
}

static uint64_t iov_total(const struct blk_req *req)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < req->iovcnt; i++)
        n += req->iov[i].iov_len;
    return n;
}

/* The checks the real block layer makes at submission. */
static int validate(const struct blockdev *bd, const struct blk_req *req)
{
    if (req->op == BLK_OP_FLUSH)
        return 0;
    if (req->offset > bd->size || req->len > bd->size - req->offset)
        return -EINVAL;
    if (req->op != BLK_OP_READ && bd->readonly)
        return -EROFS;
    if ((req->op == BLK_OP_READ || req->op == BLK_OP_WRITE) &&
        iov_total(req) != req->len)
        return -EINVAL;
    return 0;
}

int blk_submit(struct blockdev *bd, struct blk_req *req)
{
    bd->nsubmit++;
    if (bd->nqueued >= bd->limit)
        return -EAGAIN;
    int err = validate(bd, req);
    if (err) {
        bd->ninvalid++;
        req->done(req, err);
        return 0;
    }
    bd->queued[bd->nqueued++] = req;
    return 0;
}

void blk_kick(struct blockdev *bd)
{
    if (bd->nkicked == bd->nqueued)
        return;
    bd->nkicked = bd->nqueued;
    uint64_t one = 1;
    if (write(bd->efd, &one, sizeof(one)) != sizeof(one))
        abort();
}

int blk_event_fd(const struct blockdev *bd)
{
    return bd->efd;
}

static void copy_iov(struct blk_req *req, uint8_t *disk, bool to_disk)
{
    for (unsigned i = 0; i < req->iovcnt; i++) {
        const struct iovec *v = &req->iov[i];
        if (to_disk)
            memcpy(disk, v->iov_base, v->iov_len);
        else
            memcpy(v->iov_base, disk, v->iov_len);
        disk += v->iov_len;
    }
}

static int execute(struct blockdev *bd, struct blk_req *req)
{
    bd->log[bd->nlog++ % FAKE_BLK_LOG] = (struct fake_blk_op){
        req->op, req->offset, req->len, req->iovcnt};
    if (bd->fail_count) {
        bd->fail_count--;
        return bd->fail_err;
    }
    uint8_t *disk = bd->data + req->offset;
    switch (req->op) {
    case BLK_OP_READ:
        copy_iov(req, disk, false);
        break;
    case BLK_OP_WRITE:
        copy_iov(req, disk, true);
        break;
    case BLK_OP_DISCARD:
    case BLK_OP_WRITE_ZEROES:
        memset(disk, 0, req->len);
        break;
    case BLK_OP_FLUSH:
        break;
    }
    return 0;
}

void blk_poll(struct blockdev *bd)
{
    uint64_t v;
    if (read(bd->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        abort();
    /* done() may submit follow-up requests; those wait for the next kick. */
    unsigned n = bd->nkicked;
    struct blk_req *batch[FAKE_MAX_QUEUED];
    memcpy(batch, bd->queued, n * sizeof(batch[0]));
    memmove(bd->queued, bd->queued + n,
            (bd->nqueued - n) * sizeof(bd->queued[0]));
    bd->nqueued -= n;
    bd->nkicked = 0;
    for (unsigned i = 0; i < n; i++)
        batch[i]->done(batch[i], execute(bd, batch[i]));
}
