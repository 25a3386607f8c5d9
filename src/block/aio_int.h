/* Between the I/O engine's common part (aio.c) and its backends. A
 * backend performs single attempts; the common part retries short
 * transfers and interrupted calls and runs the callbacks. */
#ifndef KVMPC_BLOCK_AIO_INT_H
#define KVMPC_BLOCK_AIO_INT_H

#include <sys/types.h>

#include "block/aio.h"

struct aio_backend_ops {
    const char *name;
    /* Starts one attempt of op (the part after op->done). Returns 0, or
     * -EAGAIN when the backend holds as much as it can take now. */
    int (*start)(struct aio_engine *e, struct aio_op *op);
    /* Hands the attempts started since the last call to the kernel or the
     * workers (batched submission). */
    void (*flush)(struct aio_engine *e);
    /* Reports each finished attempt through aio_attempt_done(). */
    void (*reap)(struct aio_engine *e);
    /* Whether finished attempts wait to be reaped. */
    bool (*ready)(struct aio_engine *e);
    void (*destroy)(struct aio_engine *e);
};

struct aio_engine {
    const struct aio_backend_ops *ops;
    void *be;           /* backend state */
    int efd;            /* eventfd: completions are waiting */
    struct aio_op *queue, *queue_tail; /* submitted, not started */
    struct aio_op *done, *done_tail;   /* finished, callback due */
    unsigned inflight;
};

/* The iovec and length that the next attempt of op covers. */
const struct iovec *aio_cur_iov(const struct aio_op *op, unsigned *cnt);

/* Called by a backend for a finished attempt: res is the system call's
 * result (bytes, or -errno). */
void aio_attempt_done(struct aio_engine *e, struct aio_op *op, ssize_t res);

/* Wakes the poller (eventfd). Thread-safe. */
void aio_signal(int efd);

/* Backends: each returns 0, or -1 when it cannot run here (quietly; the
 * caller decides what to report). */
int aio_thread_init(struct aio_engine *e);
int aio_uring_init(struct aio_engine *e);

#endif
