#include "io/evloop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

#define EVLOOP_MAX_HANDLERS 256

struct evloop_handler {
    int fd;
    evloop_fn fn;
    void *opaque;
};

struct evloop {
    int epfd;
    int stopfd;
    volatile int stopping;
    struct evloop_handler handlers[EVLOOP_MAX_HANDLERS];
};

struct evloop *evloop_new(void)
{
    struct evloop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    for (unsigned i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        l->handlers[i].fd = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (l->epfd < 0 || l->stopfd < 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev) < 0) {
        report_error("cannot create the event loop: %s", strerror(errno));
        evloop_free(l);
        return NULL;
    }
    return l;
}

void evloop_free(struct evloop *l)
{
    if (!l)
        return;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->stopfd >= 0)
        close(l->stopfd);
    free(l);
}

static struct evloop_handler *find(struct evloop *l, int fd)
{
    for (unsigned i = 0; i < EVLOOP_MAX_HANDLERS; i++)
        if (l->handlers[i].fd == fd)
            return &l->handlers[i];
    return NULL;
}

int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn,
               void *opaque)
{
    struct evloop_handler *h = find(l, -1);
    if (!h || fd < 0) {
        report_error("event loop: no room for another handler");
        return -1;
    }
    struct epoll_event ev = {.events = events, .data.ptr = h};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        /* EPERM: a regular file; the caller decides whether that matters */
        if (errno != EPERM)
            report_error("event loop: cannot watch fd %d: %s", fd,
                         strerror(errno));
        return -1;
    }
    *h = (struct evloop_handler){fd, fn, opaque};
    return 0;
}

int evloop_modify(struct evloop *l, int fd, uint32_t events)
{
    struct evloop_handler *h = find(l, fd);
    if (!h)
        return -1;
    struct epoll_event ev = {.events = events, .data.ptr = h};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev);
}

int evloop_del(struct evloop *l, int fd)
{
    struct evloop_handler *h = find(l, fd);
    if (!h)
        return -1;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    h->fd = -1;
    return 0;
}

int evloop_run(struct evloop *l)
{
    struct epoll_event events[32];
    int ret = 0;
    while (!l->stopping) {
        int n = epoll_wait(l->epfd, events, 32, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            report_error("event loop: epoll_wait: %s", strerror(errno));
            ret = -1;
            break;
        }
        for (int i = 0; i < n && !l->stopping; i++) {
            struct evloop_handler *h = events[i].data.ptr;
            if (h && h->fd >= 0)
                h->fn(h->opaque, events[i].events);
        }
    }
    /* Re-arm for the next run (a guest-initiated restart). */
    uint64_t v;
    while (read(l->stopfd, &v, sizeof(v)) == sizeof(v))
        ;
    l->stopping = 0;
    return ret;
}

void evloop_stop(struct evloop *l)
{
    l->stopping = 1;
    uint64_t one = 1;
    ssize_t r = write(l->stopfd, &one, sizeof(one));
    (void)r;
}
