/* The io_uring backend of the I/O engine (liburing). Each attempt is one
 * SQE; completions are reaped from the CQ ring, and the ring's eventfd is
 * the engine's. */
#include "config.h"

#include "block/aio_int.h"

#if HAVE_LIBURING

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#define URING_ENTRIES 256

struct uring {
    struct io_uring ring;
    unsigned inflight;
    bool unsubmitted;
    bool plain_rw; /* IORING_OP_READ/WRITE: cheaper for one buffer */
};

static int uring_start(struct aio_engine *e, struct aio_op *op)
{
    struct uring *u = e->be;
    if (u->inflight >= URING_ENTRIES)
        return -EAGAIN;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
        if (!sqe)
            return -EAGAIN;
    }
    unsigned cnt;
    const struct iovec *iov = aio_cur_iov(op, &cnt);
    uint64_t off = op->offset + op->done;
    switch (op->opcode) {
    case AIO_READ:
        if (cnt == 1 && u->plain_rw)
            io_uring_prep_read(sqe, op->fd, iov->iov_base,
                               (unsigned)iov->iov_len, off);
        else
            io_uring_prep_readv(sqe, op->fd, iov, cnt, off);
        break;
    case AIO_WRITE:
        if (cnt == 1 && u->plain_rw)
            io_uring_prep_write(sqe, op->fd, iov->iov_base,
                                (unsigned)iov->iov_len, off);
        else
            io_uring_prep_writev(sqe, op->fd, iov, cnt, off);
        break;
    case AIO_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
        break;
    case AIO_FALLOCATE:
        io_uring_prep_fallocate(sqe, op->fd, op->mode, op->offset, op->len);
        break;
    }
    io_uring_sqe_set_data(sqe, op);
    u->inflight++;
    u->unsubmitted = true;
    return 0;
}

static void uring_flush(struct aio_engine *e)
{
    struct uring *u = e->be;
    if (!u->unsubmitted)
        return;
    /* On -EBUSY/-EAGAIN the SQEs stay queued; the next poll retries. */
    if (io_uring_submit(&u->ring) >= 0)
        u->unsubmitted = false;
}

static void uring_reap(struct aio_engine *e)
{
    struct uring *u = e->be;
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        struct aio_op *op = io_uring_cqe_get_data(cqe);
        u->inflight--;
        n++;
        aio_attempt_done(e, op, cqe->res);
    }
    io_uring_cq_advance(&u->ring, n);
}

static bool uring_ready(struct aio_engine *e)
{
    struct uring *u = e->be;
    return io_uring_cq_ready(&u->ring) > 0;
}

static void uring_destroy(struct aio_engine *e)
{
    struct uring *u = e->be;
    io_uring_queue_exit(&u->ring);
    free(u);
}

static const struct aio_backend_ops uring_ops = {
    .name = "io_uring",
    .start = uring_start,
    .flush = uring_flush,
    .reap = uring_reap,
    .ready = uring_ready,
    .destroy = uring_destroy,
};

static bool uring_has_ops(struct uring *u)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&u->ring);
    if (!p)
        return false;
    bool ok = io_uring_opcode_supported(p, IORING_OP_READV) &&
              io_uring_opcode_supported(p, IORING_OP_WRITEV) &&
              io_uring_opcode_supported(p, IORING_OP_FSYNC) &&
              io_uring_opcode_supported(p, IORING_OP_FALLOCATE);
    u->plain_rw = io_uring_opcode_supported(p, IORING_OP_READ) &&
                  io_uring_opcode_supported(p, IORING_OP_WRITE);
    io_uring_free_probe(p);
    return ok;
}

int aio_uring_init(struct aio_engine *e)
{
    struct uring *u = calloc(1, sizeof(*u));
    if (!u)
        return -1;
    /* Kernels without io_uring (or with it disabled by sysctl or seccomp)
     * fail here; the caller falls back to the thread pool. */
    /* Cooperative task running (5.19+) spares an interrupt per completion;
     * the I/O thread enters the kernel often enough to run the work. */
    if (io_uring_queue_init(URING_ENTRIES, &u->ring,
                            IORING_SETUP_COOP_TASKRUN) < 0 &&
        io_uring_queue_init(URING_ENTRIES, &u->ring, 0) < 0) {
        free(u);
        return -1;
    }
    if (!uring_has_ops(u) ||
        io_uring_register_eventfd(&u->ring, e->efd) < 0) {
        io_uring_queue_exit(&u->ring);
        free(u);
        return -1;
    }
    e->be = u;
    e->ops = &uring_ops;
    return 0;
}

#else

int aio_uring_init(struct aio_engine *e)
{
    (void)e;
    return -1;
}

#endif
