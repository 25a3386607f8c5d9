/* The I/O engine's common part: queueing, retries of short transfers,
 * callbacks; plus the portable backend, a pool of threads doing the
 * system calls. */
#include "block/aio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

/* ---- common part ---- */

static void list_append(struct aio_op **head, struct aio_op **tail,
                        struct aio_op *op)
{
    op->next = NULL;
    if (*tail)
        (*tail)->next = op;
    else
        *head = op;
    *tail = op;
}

void aio_signal(int efd)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the poller wakes anyway. */
    while (write(efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

const struct iovec *aio_cur_iov(const struct aio_op *op, unsigned *cnt)
{
    if (op->rest) {
        *cnt = op->restcnt;
        return op->rest;
    }
    *cnt = op->iovcnt;
    return op->iov;
}

static void finish(struct aio_engine *e, struct aio_op *op, int result)
{
    free(op->rest);
    op->rest = NULL;
    op->result = result;
    list_append(&e->done, &e->done_tail, op);
}

/* Builds the iovec for the bytes after op->done. */
static int advance_iov(struct aio_op *op)
{
    uint64_t skip = op->done;
    unsigned i = 0;
    while (i < op->iovcnt && skip >= op->iov[i].iov_len)
        skip -= op->iov[i++].iov_len;
    unsigned n = op->iovcnt - i;
    struct iovec *rest = malloc(sizeof(*rest) * (n ? n : 1));
    if (!rest)
        return -ENOMEM;
    memcpy(rest, op->iov + i, sizeof(*rest) * n);
    if (n) {
        rest[0].iov_base = (uint8_t *)rest[0].iov_base + skip;
        rest[0].iov_len -= skip;
    }
    free(op->rest);
    op->rest = rest;
    op->restcnt = n;
    return 0;
}

static void zero_rest(struct aio_op *op)
{
    uint64_t skip = op->done;
    for (unsigned i = 0; i < op->iovcnt; i++) {
        size_t l = op->iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memset((uint8_t *)op->iov[i].iov_base + skip, 0, l - skip);
        skip = 0;
    }
}

void aio_attempt_done(struct aio_engine *e, struct aio_op *op, ssize_t res)
{
    if (res == -EINTR || res == -EAGAIN) {
        list_append(&e->queue, &e->queue_tail, op);
        return;
    }
    if (res < 0) {
        finish(e, op, (int)res);
        return;
    }
    if (op->opcode != AIO_READ && op->opcode != AIO_WRITE) {
        finish(e, op, 0);
        return;
    }
    if (res == 0) {
        if (op->opcode == AIO_READ) /* end of file: the rest reads zero */
            zero_rest(op);
        finish(e, op, op->opcode == AIO_READ ? 0 : -EIO);
        return;
    }
    op->done += (uint64_t)res;
    if (op->done >= op->len) {
        finish(e, op, 0);
        return;
    }
    int r = advance_iov(op);
    if (r < 0)
        finish(e, op, r);
    else
        list_append(&e->queue, &e->queue_tail, op);
}

void aio_submit(struct aio_engine *e, struct aio_op *op)
{
    op->done = 0;
    op->rest = NULL;
    op->restcnt = 0;
    op->result = 0;
    if (op->opcode == AIO_READ || op->opcode == AIO_WRITE) {
        uint64_t len = 0;
        for (unsigned i = 0; i < op->iovcnt; i++)
            len += op->iov[i].iov_len;
        op->len = len;
    }
    if ((op->opcode == AIO_READ || op->opcode == AIO_WRITE) && op->len == 0) {
        aio_complete_later(e, op, 0);
        return;
    }
    e->inflight++;
    list_append(&e->queue, &e->queue_tail, op);
}

void aio_complete_later(struct aio_engine *e, struct aio_op *op, int result)
{
    op->rest = NULL;
    e->inflight++;
    finish(e, op, result);
    aio_signal(e->efd);
}

void aio_kick(struct aio_engine *e)
{
    while (e->queue) {
        struct aio_op *op = e->queue, *next = op->next;
        if (e->ops->start(e, op) < 0)
            break; /* full: the rest starts when something completes */
        e->queue = next; /* start() may reuse op->next */
        if (!e->queue)
            e->queue_tail = NULL;
    }
    e->ops->flush(e);
}

int aio_event_fd(const struct aio_engine *e)
{
    return e->efd;
}

unsigned aio_inflight(const struct aio_engine *e)
{
    return e->inflight;
}

const char *aio_engine_name(const struct aio_engine *e)
{
    return e->ops->name;
}

unsigned aio_poll(struct aio_engine *e)
{
    uint64_t cnt;
    while (read(e->efd, &cnt, sizeof(cnt)) < 0 && errno == EINTR)
        ;
    unsigned n = 0;
    /* Completions that arrive while callbacks run are taken in the same
     * pass: the refills they cause then go to the kernel in one batch. */
    do {
        e->ops->reap(e);
        struct aio_op *list = e->done;
        e->done = e->done_tail = NULL;
        while (list) {
            struct aio_op *op = list;
            list = op->next;
            e->inflight--;
            n++;
            op->cb(op, op->result);
        }
    } while (e->ops->ready(e) && n < 4096);
    aio_kick(e); /* retries, and what the callbacks submitted */
    return n;
}

void aio_wait(struct aio_engine *e)
{
    aio_kick(e);
    if (!e->inflight)
        return;
    if (!e->done) {
        struct pollfd p = {.fd = e->efd, .events = POLLIN};
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
            ;
    }
    aio_poll(e);
}

struct aio_engine *aio_engine_new(void)
{
    struct aio_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        report_error("out of memory creating the I/O engine");
        return NULL;
    }
    e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->efd < 0) {
        report_error("cannot create an eventfd: %s", strerror(errno));
        free(e);
        return NULL;
    }
    const char *want = getenv("KVMPC_AIO");
    int r = -1;
    if (!want || !*want || !strcmp(want, "io_uring"))
        r = aio_uring_init(e);
    if (r < 0 && want && !strcmp(want, "io_uring")) {
        report_error("KVMPC_AIO=io_uring: io_uring is not available here");
    } else if (r < 0 && want && *want && strcmp(want, "thread")) {
        report_error("KVMPC_AIO=%s: expected io_uring or thread", want);
    } else if (r < 0) {
        r = aio_thread_init(e);
        if (r < 0)
            report_error("cannot start the I/O worker threads");
    }
    if (r < 0) {
        close(e->efd);
        free(e);
        return NULL;
    }
    return e;
}

void aio_engine_free(struct aio_engine *e)
{
    if (!e)
        return;
    while (e->inflight)
        aio_wait(e);
    e->ops->destroy(e);
    close(e->efd);
    free(e);
}

/* ---- the thread pool backend ---- */

#define TPOOL_MAX_THREADS 32

struct tpool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct aio_op *batch, *batch_tail; /* started, not yet handed over */
    struct aio_op *todo, *todo_tail;   /* waiting for a worker */
    struct aio_op *fin, *fin_tail;     /* attempts done */
    unsigned queued, idle, nthreads;
    bool stop;
    int efd;
    pthread_t threads[TPOOL_MAX_THREADS];
};

static ssize_t tpool_syscall(struct aio_op *op)
{
    unsigned cnt;
    const struct iovec *iov = aio_cur_iov(op, &cnt);
    off_t off = (off_t)(op->offset + op->done);
    ssize_t r;
    switch (op->opcode) {
    case AIO_READ:
        r = preadv(op->fd, iov, (int)cnt, off);
        break;
    case AIO_WRITE:
        r = pwritev(op->fd, iov, (int)cnt, off);
        break;
    case AIO_FSYNC:
        r = fdatasync(op->fd);
        break;
    case AIO_FALLOCATE:
        r = fallocate(op->fd, op->mode, (off_t)op->offset, (off_t)op->len);
        break;
    default:
        r = -1;
        errno = EINVAL;
    }
    return r < 0 ? -errno : r;
}

static void *tpool_worker(void *arg)
{
    struct tpool *t = arg;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->todo && !t->stop) {
            t->idle++;
            pthread_cond_wait(&t->cond, &t->lock);
            t->idle--;
        }
        if (!t->todo)
            break;
        struct aio_op *op = t->todo;
        t->todo = op->next;
        if (!t->todo)
            t->todo_tail = NULL;
        t->queued--;
        pthread_mutex_unlock(&t->lock);
        /* The attempt's result travels in op->result until reaped. */
        op->result = (int)tpool_syscall(op);
        pthread_mutex_lock(&t->lock);
        list_append(&t->fin, &t->fin_tail, op);
        aio_signal(t->efd);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static int tpool_start(struct aio_engine *e, struct aio_op *op)
{
    struct tpool *t = e->be;
    list_append(&t->batch, &t->batch_tail, op);
    return 0;
}

static void tpool_flush(struct aio_engine *e)
{
    struct tpool *t = e->be;
    if (!t->batch)
        return;
    unsigned n = 0;
    for (struct aio_op *op = t->batch; op; op = op->next)
        n++;
    pthread_mutex_lock(&t->lock);
    if (t->todo_tail)
        t->todo_tail->next = t->batch;
    else
        t->todo = t->batch;
    t->todo_tail = t->batch_tail;
    t->batch = t->batch_tail = NULL;
    t->queued += n;
    /* Threads are started on demand, up to the cap; one that is still
     * starting is not counted as idle, so a burst may start a few extra. */
    unsigned want = t->queued > t->idle ? t->queued - t->idle : 0;
    if (want && t->nthreads < TPOOL_MAX_THREADS) {
        /* Workers inherit a full signal mask: signals meant for vCPU
         * threads must never land on them. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        while (want-- && t->nthreads < TPOOL_MAX_THREADS) {
            if (pthread_create(&t->threads[t->nthreads], NULL, tpool_worker,
                               t))
                break; /* the threads there are will do */
            t->nthreads++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (n > 1)
        pthread_cond_broadcast(&t->cond);
    else
        pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void tpool_reap(struct aio_engine *e)
{
    struct tpool *t = e->be;
    pthread_mutex_lock(&t->lock);
    struct aio_op *list = t->fin;
    t->fin = t->fin_tail = NULL;
    pthread_mutex_unlock(&t->lock);
    while (list) {
        struct aio_op *op = list;
        list = op->next;
        aio_attempt_done(e, op, op->result);
    }
}

static bool tpool_ready(struct aio_engine *e)
{
    struct tpool *t = e->be;
    pthread_mutex_lock(&t->lock);
    bool r = t->fin != NULL;
    pthread_mutex_unlock(&t->lock);
    return r;
}

static void tpool_destroy(struct aio_engine *e)
{
    struct tpool *t = e->be;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    for (unsigned i = 0; i < t->nthreads; i++)
        pthread_join(t->threads[i], NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static const struct aio_backend_ops tpool_ops = {
    .name = "thread",
    .start = tpool_start,
    .flush = tpool_flush,
    .reap = tpool_reap,
    .ready = tpool_ready,
    .destroy = tpool_destroy,
};

int aio_thread_init(struct aio_engine *e)
{
    struct tpool *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    if (pthread_mutex_init(&t->lock, NULL)) {
        free(t);
        return -1;
    }
    if (pthread_cond_init(&t->cond, NULL)) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        return -1;
    }
    t->efd = e->efd;
    e->be = t;
    e->ops = &tpool_ops;
    return 0;
}
