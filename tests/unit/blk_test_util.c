#include "blk_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

struct waiter {
    bool done;
    int result;
};

static void wait_cb(struct blk_req *req, int result)
{
    struct waiter *w = req->opaque;
    w->done = true;
    w->result = result;
}

static void wait_events(struct blockdev *bd)
{
    struct pollfd p = {.fd = blk_event_fd(bd), .events = POLLIN};
    int r = poll(&p, 1, 10000);
    assert_true(r >= 0);
    if (r == 0)
        fail_msg("no completion within 10 s");
    blk_poll(bd);
}

int tu_io(struct blockdev *bd, enum blk_op op, uint64_t off, void *buf,
          uint64_t len)
{
    struct waiter w = {0};
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    bool data = op == BLK_OP_READ || op == BLK_OP_WRITE;
    struct blk_req req = {
        .op = op,
        .offset = off,
        .len = len,
        .iov = data ? &iov : NULL,
        .iovcnt = data ? 1 : 0,
        .done = wait_cb,
        .opaque = &w,
    };
    int r = blk_submit(bd, &req);
    if (r < 0)
        return r;
    blk_kick(bd);
    while (!w.done)
        wait_events(bd);
    return w.result;
}

int tu_read(struct blockdev *bd, uint64_t off, void *buf, uint64_t len)
{
    return tu_io(bd, BLK_OP_READ, off, buf, len);
}

int tu_write(struct blockdev *bd, uint64_t off, const void *buf, uint64_t len)
{
    return tu_io(bd, BLK_OP_WRITE, off, (void *)buf, len);
}

int tu_flush(struct blockdev *bd)
{
    return tu_io(bd, BLK_OP_FLUSH, 0, NULL, 0);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

void tu_pattern(void *buf, size_t len, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (!(i & 7))
            rnd(&s);
        p[i] = (uint8_t)(s >> ((i & 7) * 8));
    }
}

void tu_model_init(struct tu_model *m, uint64_t size)
{
    m->size = size;
    m->data = calloc(1, size);
    m->known = calloc(1, size);
    assert_non_null(m->data);
    assert_non_null(m->known);
}

void tu_model_free(struct tu_model *m)
{
    free(m->data);
    free(m->known);
}

void tu_model_load(struct tu_model *m, struct blockdev *bd)
{
    for (uint64_t off = 0; off < m->size; off += 1 << 20) {
        uint64_t n = m->size - off < (1 << 20) ? m->size - off : (1 << 20);
        assert_int_equal(tu_read(bd, off, m->data + off, n), 0);
    }
    memset(m->known, 1, m->size);
}

void tu_model_verify(struct tu_model *m, struct blockdev *bd)
{
    uint8_t *buf = malloc(1 << 20);
    assert_non_null(buf);
    for (uint64_t off = 0; off < m->size; off += 1 << 20) {
        uint64_t n = m->size - off < (1 << 20) ? m->size - off : (1 << 20);
        assert_int_equal(tu_read(bd, off, buf, n), 0);
        for (uint64_t i = 0; i < n; i++) {
            if (m->known[off + i] && m->data[off + i] != buf[i])
                fail_msg("byte %llu reads %#x, expected %#x",
                         (unsigned long long)(off + i), buf[i],
                         m->data[off + i]);
            m->data[off + i] = buf[i];
            m->known[off + i] = 1;
        }
    }
    free(buf);
}

void tu_model_save(const struct tu_model *m, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, m->data, m->size, 0), (ssize_t)m->size);
    close(fd);
}

/* ---- the concurrent workload ---- */

struct slot {
    struct blk_req req;
    struct iovec iov[3];
    uint8_t *buf;
    bool busy;
    struct tu_model *m;
    unsigned *inflight;
};

static void stress_done(struct blk_req *req, int result)
{
    struct slot *s = req->opaque;
    if (result != 0)
        fail_msg("request op %d at %llu len %llu failed: %d", req->op,
                 (unsigned long long)req->offset,
                 (unsigned long long)req->len, result);
    if (req->op == BLK_OP_READ) {
        const struct tu_model *m = s->m;
        for (uint64_t i = 0; i < req->len; i++) {
            uint64_t o = req->offset + i;
            if (m->known[o] && m->data[o] != s->buf[i])
                fail_msg("read at %llu len %llu: byte %llu is %#x, "
                         "expected %#x",
                         (unsigned long long)req->offset,
                         (unsigned long long)req->len,
                         (unsigned long long)o, s->buf[i], m->data[o]);
        }
    }
    s->busy = false;
    (*s->inflight)--;
}

static bool overlaps(const struct slot *slots, unsigned n, uint64_t off,
                     uint64_t len)
{
    for (unsigned i = 0; i < n; i++) {
        const struct blk_req *r = &slots[i].req;
        if (!slots[i].busy || r->op == BLK_OP_FLUSH)
            continue;
        if (off < r->offset + r->len && r->offset < off + len)
            return true;
    }
    return false;
}

static void pick(const struct tu_stress *s, uint64_t *seed, uint64_t size,
                 uint64_t *off, uint64_t *len)
{
    uint64_t lo = s->lo, hi = s->hi ? s->hi : size;
    uint64_t unit = s->unaligned ? 1 : 512;
    uint64_t max = s->max_len / unit;
    *len = (rnd(seed) % max + 1) * unit;
    if (rnd(seed) % 4 == 0) /* many small ones too */
        *len = (rnd(seed) % 8 + 1) * unit;
    if (*len > hi - lo)
        *len = hi - lo;
    *off = lo + (rnd(seed) % ((hi - lo - *len) / unit + 1)) * unit;
}

static void prepare(struct slot *sl, struct tu_model *m, enum blk_op op,
                    uint64_t off, uint64_t len, uint64_t *seed)
{
    sl->req = (struct blk_req){.op = op, .offset = off, .len = len,
                               .done = stress_done, .opaque = sl};
    if (op == BLK_OP_READ || op == BLK_OP_WRITE) {
        /* Up to three iovecs with uneven sizes. */
        uint64_t a = len > 2 ? rnd(seed) % len : len, b = (len - a) / 2;
        uint64_t parts[3] = {a, b, len - a - b};
        unsigned n = 0;
        uint64_t pos = 0;
        for (unsigned i = 0; i < 3; i++) {
            if (!parts[i])
                continue;
            sl->iov[n].iov_base = sl->buf + pos;
            sl->iov[n++].iov_len = parts[i];
            pos += parts[i];
        }
        sl->req.iov = sl->iov;
        sl->req.iovcnt = n;
    }
    if (op == BLK_OP_WRITE) {
        tu_pattern(sl->buf, len, rnd(seed));
        memcpy(m->data + off, sl->buf, len);
        memset(m->known + off, 1, len);
    } else if (op == BLK_OP_WRITE_ZEROES) {
        memset(m->data + off, 0, len);
        memset(m->known + off, 1, len);
    } else if (op == BLK_OP_DISCARD) {
        memset(m->known + off, 0, len);
    }
}

static enum blk_op pick_op(const struct tu_stress *s, uint64_t *seed)
{
    unsigned x = rnd(seed) % 100;
    if (s->flush && x < 4)
        return BLK_OP_FLUSH;
    if (s->discard && x < 8)
        return BLK_OP_DISCARD;
    if (s->discard && x < 14)
        return BLK_OP_WRITE_ZEROES;
    return x < 55 ? BLK_OP_WRITE : BLK_OP_READ;
}

void tu_stress_run(struct blockdev *bd, struct tu_model *m,
                   const struct tu_stress *s)
{
    unsigned depth = s->depth ? s->depth : 1, inflight = 0;
    struct slot *slots = calloc(depth, sizeof(*slots));
    assert_non_null(slots);
    for (unsigned i = 0; i < depth; i++) {
        slots[i].buf = malloc(s->max_len);
        assert_non_null(slots[i].buf);
        slots[i].m = m;
        slots[i].inflight = &inflight;
    }
    uint64_t seed = s->seed ? s->seed : 1;
    for (unsigned n = 0; n < s->requests;) {
        struct slot *sl = NULL;
        for (unsigned i = 0; i < depth && !sl; i++)
            if (!slots[i].busy)
                sl = &slots[i];
        enum blk_op op = pick_op(s, &seed);
        uint64_t off = 0, len = 0;
        if (op != BLK_OP_FLUSH)
            pick(s, &seed, m->size, &off, &len);
        if (!sl || overlaps(slots, depth, off, len)) {
            blk_kick(bd);
            wait_events(bd);
            continue;
        }
        prepare(sl, m, op, off, len, &seed);
        sl->busy = true;
        inflight++;
        n++;
        assert_int_equal(blk_submit(bd, &sl->req), 0);
        if (rnd(&seed) % 3 == 0)
            blk_kick(bd);
    }
    blk_kick(bd);
    while (inflight)
        wait_events(bd);
    for (unsigned i = 0; i < depth; i++)
        free(slots[i].buf);
    free(slots);
}

/* ---- environment ---- */

void tu_mkdir(char *out, size_t len)
{
    /* Not /tmp: it may be a tmpfs, where O_DIRECT (cache=none) fails. */
    const char *base = getenv("KVMPC_TEST_TMPDIR");
    snprintf(out, len, "%s/kvmpc-blk-XXXXXX", base ? base : "/var/tmp");
    assert_non_null(mkdtemp(out));
}

void tu_rmdir(const char *dir)
{
    tu_sh("rm -rf '%s'", dir);
}

int tu_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int r = system(cmd);
    if (r < 0 || !WIFEXITED(r))
        return -1;
    return WEXITSTATUS(r);
}

char tu_dir[128];

int tu_setup(void **state)
{
    (void)state;
    tu_mkdir(tu_dir, sizeof(tu_dir));
    return 0;
}

int tu_teardown(void **state)
{
    (void)state;
    tu_rmdir(tu_dir);
    unsetenv("KVMPC_AIO");
    return 0;
}

void tu_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tu_dir, name);
}

void tu_qemu_sh(const char *fmt, ...)
{
    char cmd[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int r = tu_sh("cd '%s' && QI='%s' QIO='%s' && ulimit -c 0 && "
                  "{ %s ; } >/dev/null",
                  tu_dir, tu_qemu_img(), tu_qemu_io(), cmd);
    if (r != 0)
        fail_msg("command failed (%d): %s", r, cmd);
}

static const char *tool(const char *var)
{
    const char *p = getenv(var);
    if (!p || access(p, X_OK) != 0)
        fail_msg("%s (%s) is not installed: install qemu-utils", var,
                 p ? p : "unset");
    return p;
}

const char *tu_qemu_img(void)
{
    return tool("QEMU_IMG");
}

const char *tu_qemu_io(void)
{
    return tool("QEMU_IO");
}

struct blockdev *tu_open(const char *path, enum blk_format fmt, bool ro)
{
    struct blk_open_opts o = {.path = path, .format = fmt, .readonly = ro};
    struct blockdev *bd = NULL;
    if (blk_open(&o, &bd) < 0)
        fail_msg("cannot open %s", path);
    return bd;
}
