#include "io/console.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

/* The one piece of process-wide state: the terminal settings to put back,
 * needed by fatal-signal handlers that have no VM object to hand. */
static struct termios saved_termios;
static volatile sig_atomic_t termios_saved;

void console_restore_terminal(void)
{
    if (termios_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
        termios_saved = 0;
    }
}

static void fatal_signal(int sig)
{
    console_restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_fatal_handlers(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT,
                               SIGQUIT};
    for (unsigned i = 0; i < ARRAY_SIZE(sigs); i++)
        signal(sigs[i], fatal_signal);
}

int console_open(struct console *c, enum console_kind kind, const char *path)
{
    memset(c, 0, sizeof(*c));
    c->out_fd = -1;
    c->in_fd = -1;
    c->resume_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->resume_fd < 0) {
        report_error("cannot create an eventfd: %s", strerror(errno));
        return -1;
    }
    pthread_mutex_init(&c->out_lock, NULL);
    switch (kind) {
    case CONSOLE_STDIO:
        c->out_fd = STDOUT_FILENO;
        c->in_fd = STDIN_FILENO;
        break;
    case CONSOLE_NONE:
        break;
    case CONSOLE_FILE:
        c->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (c->out_fd < 0) {
            report_error("--console: cannot open '%s': %s", path,
                         strerror(errno));
            return -1;
        }
        c->close_out = true;
        break;
    }
    return 0;
}

static int make_raw(void)
{
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &t) < 0)
        return -1;
    saved_termios = t;
    termios_saved = 1;
    atexit(console_restore_terminal);
    install_fatal_handlers();
    cfmakeraw(&t);
    t.c_oflag |= OPOST | ONLCR; /* keep our own stderr lines readable */
    return tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

static void deliver_pending(struct console *c)
{
    while (c->pending_off < c->pending_len) {
        size_t n = c->sink(c->sink_opaque, c->pending + c->pending_off,
                           c->pending_len - c->pending_off);
        if (n == 0)
            break;
        c->pending_off += n;
    }
    if (c->pending_off == c->pending_len)
        c->pending_off = c->pending_len = 0;
}

/* Handles the Ctrl-A escape in place; returns the bytes for the guest. */
static size_t filter_escapes(struct console *c, uint8_t *buf, size_t len)
{
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = buf[i];
        if (c->escape_pending) {
            c->escape_pending = false;
            if (b == 'x' || b == 'X') {
                if (c->quit)
                    c->quit(c->quit_opaque);
                return out;
            }
            if (b != CONSOLE_ESCAPE)
                continue; /* unknown escape: swallowed */
        } else if (b == CONSOLE_ESCAPE) {
            c->escape_pending = true;
            continue;
        }
        buf[out++] = b;
    }
    return out;
}

static void on_input(void *opaque, uint32_t events)
{
    struct console *c = opaque;
    if (c->pending_len) {
        deliver_pending(c);
        if (c->pending_len) {
            evloop_modify(c->loop, c->in_fd, 0);
            return;
        }
    }
    ssize_t n = read(c->in_fd, c->pending, sizeof(c->pending));
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            evloop_del(c->loop, c->in_fd); /* EOF: no more input */
            c->in_fd = -1;
        }
        return;
    }
    c->pending_len = filter_escapes(c, c->pending, (size_t)n);
    c->pending_off = 0;
    deliver_pending(c);
    if (c->pending_len)
        evloop_modify(c->loop, c->in_fd, 0);
}

static void on_resume(void *opaque, uint32_t events)
{
    struct console *c = opaque;
    uint64_t v;
    if (read(c->resume_fd, &v, sizeof(v)) == sizeof(v))
        console_resume(c);
}

int console_start(struct console *c, struct evloop *loop)
{
    c->loop = loop;
    if (c->in_fd < 0 || !c->sink)
        return 0;
    if (evloop_add(loop, c->resume_fd, EPOLLIN, on_resume, c))
        return -1;
    if (isatty(c->in_fd)) {
        if (make_raw() < 0) {
            report_error("cannot set the terminal to raw mode: %s",
                         strerror(errno));
            return -1;
        }
        c->raw_tty = true;
    }
    int fl = fcntl(c->in_fd, F_GETFL);
    if (fl >= 0)
        fcntl(c->in_fd, F_SETFL, fl | O_NONBLOCK);
    if (evloop_add(loop, c->in_fd, EPOLLIN, on_input, c) < 0) {
        /* stdin that epoll cannot watch (a regular file): no input */
        c->in_fd = -1;
    }
    return 0;
}

void console_resume(struct console *c)
{
    if (c->in_fd < 0 || !c->loop)
        return;
    deliver_pending(c);
    if (!c->pending_len)
        evloop_modify(c->loop, c->in_fd, EPOLLIN);
}

void console_resume_async(struct console *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->resume_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: a wake-up is already pending */
}

void console_inject(struct console *c, const uint8_t *buf, size_t len)
{
    if (c->sink)
        c->sink(c->sink_opaque, buf, len);
}

void console_write(struct console *c, const void *buf, size_t len)
{
    if (c->out_fd < 0)
        return;
    const uint8_t *p = buf;
    pthread_mutex_lock(&c->out_lock);
    while (len > 0) {
        ssize_t n = write(c->out_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            usleep(1000);
            continue;
        }
        if (n <= 0)
            break; /* output gone (EPIPE): drop, the guest keeps running */
        p += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&c->out_lock);
}

void console_close(struct console *c)
{
    if (c->in_fd >= 0) {
        int fl = fcntl(c->in_fd, F_GETFL);
        if (fl >= 0)
            fcntl(c->in_fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    if (c->raw_tty)
        console_restore_terminal();
    if (c->close_out && c->out_fd >= 0)
        close(c->out_fd);
    if (c->resume_fd >= 0) {
        if (c->loop)
            evloop_del(c->loop, c->resume_fd);
        close(c->resume_fd);
    }
    c->out_fd = -1;
    pthread_mutex_destroy(&c->out_lock);
}
