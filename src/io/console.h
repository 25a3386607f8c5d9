/* The host side of the guest's serial console: the terminal (raw mode,
 * restored on every exit path), or a log file, or nothing. Input from
 * stdin goes to a sink (the UART) with flow control; Ctrl-A x quits and
 * Ctrl-A Ctrl-A sends a literal Ctrl-A. */
#ifndef KVMPC_CONSOLE_H
#define KVMPC_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/vm_config.h"
#include "io/evloop.h"

#define CONSOLE_ESCAPE 0x01 /* Ctrl-A */

struct console {
    int out_fd;      /* -1: output dropped */
    bool close_out;  /* out_fd is ours (a file) */
    int in_fd;       /* -1: no input */
    bool raw_tty;    /* we changed the terminal and must restore it */
    bool escape_pending;
    pthread_mutex_t out_lock;
    /* input waiting for the sink (the UART FIFO was full) */
    uint8_t pending[256];
    size_t pending_len, pending_off;
    struct evloop *loop;
    /* sink: returns how many bytes it accepted */
    size_t (*sink)(void *opaque, const uint8_t *buf, size_t len);
    void *sink_opaque;
    void (*quit)(void *opaque);
    void *quit_opaque;
    int resume_fd; /* eventfd: another thread asks for console_resume() */
};

/* Opens the output (a file is created only now, after all input was
 * validated). Returns 0 or -1 after reporting. */
int console_open(struct console *c, enum console_kind kind, const char *path);
/* Switches the terminal to raw mode (stdio on a tty only) and starts
 * reading input through loop. */
int console_start(struct console *c, struct evloop *loop);
void console_write(struct console *c, const void *buf, size_t len);
/* The sink has room again: deliver what is pending, resume reading. */
void console_resume(struct console *c);
/* Same, from any thread: the I/O thread resumes. */
void console_resume_async(struct console *c);
/* Injects bytes as if typed (SIGINT becomes Ctrl-C). */
void console_inject(struct console *c, const uint8_t *buf, size_t len);
void console_close(struct console *c);

/* Restores the terminal; async-signal-safe, idempotent. */
void console_restore_terminal(void);

#endif
