/* The I/O thread's event loop (epoll). Devices do not use it directly:
 * a device that needs a timer or an fd exposes it (e.g. rtc_timer_fd())
 * plus a handler, and machine.c registers the pair here. */
#ifndef KVMPC_EVLOOP_H
#define KVMPC_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop;

struct evloop *evloop_new(void);
void evloop_free(struct evloop *l);
/* events: EPOLLIN / EPOLLOUT ... Returns 0 or -1. */
int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn,
               void *opaque);
int evloop_modify(struct evloop *l, int fd, uint32_t events);
int evloop_del(struct evloop *l, int fd);
/* Runs until evloop_stop(); returns 0, or -1 on an epoll failure. A
 * stopped loop can be run again. */
int evloop_run(struct evloop *l);
/* Thread-safe and async-signal-safe. */
void evloop_stop(struct evloop *l);

#endif
