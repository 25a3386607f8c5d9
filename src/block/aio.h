/* The I/O engine under the block layer: asynchronous preadv, pwritev,
 * fdatasync and fallocate with completion callbacks. One engine serves a
 * disk and its whole backing chain. Backends: io_uring (liburing) where
 * the kernel offers it, else a small pool of threads doing the system
 * calls. KVMPC_AIO=thread|io_uring in the environment forces one.
 *
 * Single-threaded interface: every call comes from the thread that polls
 * completions (the I/O thread); callbacks run from aio_poll() only. */
#ifndef KVMPC_BLOCK_AIO_H
#define KVMPC_BLOCK_AIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum aio_opcode {
    AIO_READ,      /* short reads at end of file are zero-filled */
    AIO_WRITE,
    AIO_FSYNC,     /* fdatasync */
    AIO_FALLOCATE, /* mode, offset, len */
};

struct aio_op {
    /* Filled in by the caller. */
    enum aio_opcode opcode;
    int fd;
    int mode;          /* FALLOCATE */
    uint64_t offset;
    uint64_t len;      /* FALLOCATE; READ/WRITE: computed from iov */
    const struct iovec *iov;
    unsigned iovcnt;   /* at most AIO_MAX_IOV */
    /* result: 0 (the whole length was transferred) or -errno. */
    void (*cb)(struct aio_op *op, int result);

    /* Engine private. */
    struct aio_op *next;
    uint64_t done;       /* bytes transferred so far */
    struct iovec *rest;  /* what is left after a short transfer */
    unsigned restcnt;
    int result;
};

#define AIO_MAX_IOV 1024

struct aio_engine;

/* Returns NULL after reporting why no engine could be set up. */
struct aio_engine *aio_engine_new(void);
/* Waits for every operation in flight, then frees the engine. */
void aio_engine_free(struct aio_engine *e);
const char *aio_engine_name(const struct aio_engine *e);

/* Queues an operation; it starts at the next aio_kick() (or poll). */
void aio_submit(struct aio_engine *e, struct aio_op *op);
/* Queues a callback with a result and no I/O; it runs at the next poll. */
void aio_complete_later(struct aio_engine *e, struct aio_op *op, int result);
void aio_kick(struct aio_engine *e);

/* Readable when completions are waiting. */
int aio_event_fd(const struct aio_engine *e);
/* Runs the callbacks of finished operations; returns how many ran. */
unsigned aio_poll(struct aio_engine *e);
/* Blocks until at least one completion is ready (or nothing is in flight),
 * then polls. For shutdown and synchronous helpers only. */
void aio_wait(struct aio_engine *e);
/* Operations submitted and not yet called back. */
unsigned aio_inflight(const struct aio_engine *e);

#endif
