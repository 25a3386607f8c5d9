/* The crash test's two halves.
 *
 *   crash_writer write IMAGE LOG SEED
 *       writes through the block layer forever (random 4 KiB-block runs,
 *       whole-cluster zeroes, flushes; many requests in flight, never two
 *       overlapping) and appends what it does to LOG: the intent before a
 *       request is submitted, completions, flush submissions and flush
 *       completions. It is meant to be killed with SIGKILL.
 *   crash_writer verify DUMP INITIAL LOG
 *       checks a raw dump of the image (made by qemu-img convert) against
 *       the log: every write completed before an acknowledged flush was
 *       submitted must be there (or something newer); every sector must
 *       hold the initial content, zeros of a logged zeroing, or exactly
 *       the data of a logged write.
 *
 * Each sector of a written block is self-describing: magic, block number,
 * version (unique per request) and sector number, then a pattern derived
 * from them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"

#define BLOCK 4096u
#define SECTOR 512u
#define REGION (16u << 20) /* the part of the disk the writer uses */
#define NBLOCKS (REGION / BLOCK)
#define DEPTH 16
#define MAGIC 0x4b564d43u
#define ZERO_UNIT (64u << 10)

static void die(const char *msg)
{
    fprintf(stderr, "crash_writer: %s\n", msg);
    exit(2);
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_sector(uint8_t *p, uint32_t block, uint64_t version,
                        uint32_t sector)
{
    uint64_t s = (version * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)block << 20) ^
                 sector ^ 0x5555;
    for (unsigned i = 0; i < SECTOR; i += 8) {
        rnd(&s);
        memcpy(p + i, &s, 8);
    }
    memcpy(p, &(uint32_t){MAGIC}, 4);
    memcpy(p + 4, &block, 4);
    memcpy(p + 8, &version, 8);
    memcpy(p + 16, &sector, 4);
}

/* ---- writer ---- */

struct slot {
    struct blk_req req;
    struct iovec iov;
    uint8_t *buf;
    bool busy;
    uint64_t version;
};

struct writer {
    struct blockdev *bd;
    int log;
    struct slot slots[DEPTH];
    unsigned inflight;
    bool flushing;
    uint64_t flush_id;
    struct blk_req flush_req;
};

static void logf_(struct writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(struct writer *w, const char *fmt, ...)
{
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* No fsync: a killed process loses nothing already written. */
    if (write(w->log, line, (size_t)n) != n)
        die("cannot write the log");
}

static void write_done(struct blk_req *req, int result)
{
    struct slot *s = req->opaque;
    if (result != 0) {
        fprintf(stderr, "crash_writer: request failed: %s\n",
                strerror(-result));
        exit(3);
    }
    s->busy = false;
}

static void flush_done(struct blk_req *req, int result)
{
    struct writer *w = req->opaque;
    if (result != 0) {
        fprintf(stderr, "crash_writer: flush failed: %s\n", strerror(-result));
        exit(3);
    }
    logf_(w, "F %llu\n", (unsigned long long)w->flush_id);
    w->flushing = false;
}

static bool overlaps(const struct writer *w, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < DEPTH; i++) {
        const struct blk_req *r = &w->slots[i].req;
        if (w->slots[i].busy && off < r->offset + r->len &&
            r->offset < off + len)
            return true;
    }
    return false;
}

static void wait_some(struct writer *w)
{
    blk_kick(w->bd);
    struct pollfd p = {.fd = blk_event_fd(w->bd), .events = POLLIN};
    if (poll(&p, 1, 5000) <= 0)
        die("no completion for 5 s");
    /* Completions are logged after blk_poll() ran their callbacks. */
    bool was[DEPTH];
    for (unsigned i = 0; i < DEPTH; i++)
        was[i] = w->slots[i].busy;
    blk_poll(w->bd);
    for (unsigned i = 0; i < DEPTH; i++)
        if (was[i] && !w->slots[i].busy)
            logf_(w, "C %llu\n", (unsigned long long)w->slots[i].version);
}

static void submit_write(struct writer *w, struct slot *s, uint64_t *seed,
                         uint64_t version)
{
    bool zero = rnd(seed) % 8 == 0;
    uint64_t off, len;
    if (zero) {
        len = ZERO_UNIT * (1 + rnd(seed) % 2);
        off = (rnd(seed) % (REGION / ZERO_UNIT - 1)) * ZERO_UNIT;
    } else {
        len = BLOCK * (1 + (rnd(seed) % 4 ? rnd(seed) % 4 : rnd(seed) % 32));
        off = (rnd(seed) % (NBLOCKS - len / BLOCK + 1)) * BLOCK;
    }
    if (overlaps(w, off, len))
        return;
    s->version = version;
    s->req = (struct blk_req){
        .op = zero ? BLK_OP_WRITE_ZEROES : BLK_OP_WRITE,
        .offset = off,
        .len = len,
        .done = write_done,
        .opaque = s,
    };
    if (!zero) {
        for (uint64_t b = 0; b < len / BLOCK; b++)
            for (uint32_t k = 0; k < BLOCK / SECTOR; k++)
                fill_sector(s->buf + b * BLOCK + k * SECTOR,
                            (uint32_t)(off / BLOCK + b), version, k);
        s->iov = (struct iovec){.iov_base = s->buf, .iov_len = len};
        s->req.iov = &s->iov;
        s->req.iovcnt = 1;
    }
    logf_(w, "%c %llu %llu %llu\n", zero ? 'Z' : 'W',
          (unsigned long long)(off / BLOCK),
          (unsigned long long)(len / BLOCK), (unsigned long long)version);
    s->busy = true;
    if (blk_submit(w->bd, &s->req) != 0)
        die("submit failed");
}

static uint64_t last_version(const char *log)
{
    FILE *f = fopen(log, "r");
    uint64_t v = 0;
    char line[128];
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long long a, b, c;
        if ((line[0] == 'W' || line[0] == 'Z') &&
            sscanf(line + 2, "%llu %llu %llu", &a, &b, &c) == 3 && c > v)
            v = c;
        if (line[0] == 'S' && sscanf(line + 2, "%llu", &a) == 1 && a > v)
            v = a;
    }
    if (f)
        fclose(f);
    return v;
}

static int do_write(const char *image, const char *log, uint64_t seed,
                    uint64_t limit)
{
    struct writer w = {0};
    uint64_t version = last_version(log) + 1;
    w.log = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (w.log < 0)
        die("cannot open the log");
    for (unsigned i = 0; i < DEPTH; i++)
        if (!(w.slots[i].buf = aligned_alloc(4096, 32 * BLOCK)))
            die("out of memory");
    struct blk_open_opts o = {.path = image};
    if (blk_open(&o, &w.bd) < 0)
        return 2;
    if (blk_size(w.bd) < REGION)
        die("image too small");
    logf_(&w, "R %llu\n", (unsigned long long)seed); /* a new round */
    for (uint64_t n = 0; !limit || n < limit; n++) {
        if (!w.flushing && rnd(&seed) % 24 == 0) {
            w.flushing = true;
            w.flush_id = version++;
            w.flush_req = (struct blk_req){
                .op = BLK_OP_FLUSH, .done = flush_done, .opaque = &w};
            logf_(&w, "S %llu\n", (unsigned long long)w.flush_id);
            if (blk_submit(w.bd, &w.flush_req) != 0)
                die("submit failed");
        }
        struct slot *s = NULL;
        for (unsigned i = 0; i < DEPTH && !s; i++)
            if (!w.slots[i].busy)
                s = &w.slots[i];
        if (s)
            submit_write(&w, s, &seed, version++);
        if (!s || rnd(&seed) % 4 == 0)
            wait_some(&w);
    }
    /* A bounded run (for debugging) ends cleanly. */
    while (w.flushing)
        wait_some(&w);
    for (unsigned i = 0; i < DEPTH; i++)
        while (w.slots[i].busy)
            wait_some(&w);
    blk_close(w.bd);
    return 0;
}

/* ---- verifier ---- */

struct wrec {
    char kind;
    uint64_t first, count, version;
};

struct vstate {
    struct wrec *w;
    size_t nw;
    uint64_t *durable_min; /* per block */
    uint64_t *zero_max;    /* per block: the newest zeroing */
};

static struct wrec *find_version(struct vstate *v, uint64_t version)
{
    size_t lo = 0, hi = v->nw; /* versions increase through the log */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->w[mid].version < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->nw && v->w[lo].version == version ? &v->w[lo] : NULL;
}

/* Reads the log: writes, and for each acknowledged flush, the writes
 * completed before it was submitted in the same session. */
static void read_log(struct vstate *v, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot read the log");
    size_t cap = 1024, ndone = 0, dcap = 1024, durable = 0;
    uint64_t *done = malloc(dcap * 8);
    struct {
        uint64_t id;
        size_t upto;
    } flush = {0, 0};
    v->w = malloc(cap * sizeof(*v->w));
    char line[128];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long a, b, c;
        if ((line[0] == 'W' || line[0] == 'Z') &&
            sscanf(line + 2, "%llu %llu %llu", &a, &b, &c) == 3) {
            if (v->nw == cap)
                v->w = realloc(v->w, (cap *= 2) * sizeof(*v->w));
            v->w[v->nw++] = (struct wrec){line[0], a, b, c};
        } else if (line[0] == 'C' && sscanf(line + 2, "%llu", &a) == 1) {
            if (ndone == dcap)
                done = realloc(done, (dcap *= 2) * 8);
            done[ndone++] = a;
        } else if (line[0] == 'S' && sscanf(line + 2, "%llu", &a) == 1) {
            flush.id = a;
            flush.upto = ndone;
        } else if (line[0] == 'F' && sscanf(line + 2, "%llu", &a) == 1) {
            if (a == flush.id && flush.upto > durable)
                durable = flush.upto;
        } else if (line[0] == 'R') {
            /* A new session: what the killed one completed but never
             * flushed may be lost, and no later flush brings it back. */
            ndone = durable;
            flush.upto = 0;
            flush.id = 0;
        }
    }
    fclose(f);
    v->durable_min = calloc(NBLOCKS, 8);
    v->zero_max = calloc(NBLOCKS, 8);
    for (size_t i = 0; i < v->nw; i++)
        if (v->w[i].kind == 'Z')
            for (uint64_t b = v->w[i].first;
                 b < v->w[i].first + v->w[i].count; b++)
                v->zero_max[b] = v->w[i].version;
    for (size_t i = 0; i < durable; i++) {
        struct wrec *r = find_version(v, done[i]);
        if (!r)
            die("log: completion of an unknown request");
        for (uint64_t b = r->first; b < r->first + r->count; b++)
            if (r->version > v->durable_min[b])
                v->durable_min[b] = r->version;
    }
    printf("log: %zu requests, %zu completed, %zu durable\n", v->nw, ndone,
           durable);
    free(done);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* May sector k of block b hold what it holds? */
static bool sector_ok(struct vstate *v, uint32_t b, uint32_t k,
                      const uint8_t *got, const uint8_t *initial)
{
    uint64_t min = v->durable_min[b];
    if (min == 0 && !memcmp(got, initial, SECTOR))
        return true;
    uint32_t magic, blk, sec;
    uint64_t ver;
    memcpy(&magic, got, 4);
    memcpy(&blk, got + 4, 4);
    memcpy(&ver, got + 8, 8);
    memcpy(&sec, got + 16, 4);
    if (all_zero(got, SECTOR))
        return v->zero_max[b] && v->zero_max[b] >= min;
    if (magic != MAGIC || blk != b || sec != k || ver < min)
        return false;
    const struct wrec *r = find_version(v, ver);
    if (!r || r->kind != 'W' || b < r->first || b >= r->first + r->count)
        return false;
    uint8_t want[SECTOR];
    fill_sector(want, b, ver, k);
    return !memcmp(want, got, SECTOR);
}

static uint8_t *slurp(const char *path)
{
    uint8_t *buf = malloc(REGION);
    int fd = open(path, O_RDONLY);
    if (!buf || fd < 0 || pread(fd, buf, REGION, 0) != REGION)
        die("cannot read a dump");
    close(fd);
    return buf;
}

static int do_verify(const char *dump, const char *initial, const char *log)
{
    struct vstate v = {0};
    read_log(&v, log);
    uint8_t *got = slurp(dump), *init = slurp(initial);
    unsigned bad = 0;
    for (uint32_t b = 0; b < NBLOCKS; b++) {
        for (uint32_t k = 0; k < BLOCK / SECTOR; k++) {
            size_t off = (size_t)b * BLOCK + k * SECTOR;
            if (sector_ok(&v, b, k, got + off, init + off))
                continue;
            if (bad++ < 10)
                printf("block %u sector %u: unexpected content (durable "
                       "version %llu)\n",
                       b, k, (unsigned long long)v.durable_min[b]);
        }
    }
    printf("%u bad sectors\n", bad);
    free(got);
    free(init);
    free(v.w);
    free(v.durable_min);
    free(v.zero_max);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "write"))
        return do_write(argv[2], argv[3], strtoull(argv[4], NULL, 0),
                        argc == 6 ? strtoull(argv[5], NULL, 0) : 0);
    if (argc == 5 && !strcmp(argv[1], "verify"))
        return do_verify(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: crash_writer write IMAGE LOG SEED [COUNT]\n"
                    "       crash_writer verify DUMP INITIAL LOG\n");
    return 2;
}
