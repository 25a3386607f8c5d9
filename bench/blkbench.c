/* blkbench: drives the block layer's asynchronous API the way a virtio-blk
 * device does (many requests in flight, completions resubmit from done())
 * and prints throughput.
 *
 * usage: blkbench [-f raw|qcow2] [-c none|writeback] [-q DEPTH] [-b BYTES]
 *                 [-t SECONDS] [-s SPAN] [-l LOW] PATTERN FILE
 * PATTERN: seqread, seqwrite, randread, randwrite. Completed requests are
 * refilled once no more than LOW are in flight (default DEPTH - 1: at
 * once). */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "block/block.h"

struct bench {
    struct blockdev *bd;
    bool write, random, stop;
    uint64_t bs, span, next, seed, bytes, ios;
    unsigned inflight, depth, low;
    struct slot **idle; /* completed slots waiting for a refill */
    unsigned nidle;
};

struct slot {
    struct blk_req req;
    struct iovec iov;
    struct bench *b;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void submit(struct slot *s);

static void done(struct blk_req *req, int result)
{
    struct slot *s = req->opaque;
    struct bench *b = s->b;
    if (result < 0) {
        fprintf(stderr, "blkbench: I/O error: %s\n", strerror(-result));
        exit(1);
    }
    b->inflight--;
    b->bytes += req->len;
    b->ios++;
    if (b->stop)
        return;
    /* Refill once the depth has dropped to the low-water mark, in one
     * batch, like a guest queueing several requests per notification. */
    b->idle[b->nidle++] = s;
    if (b->inflight <= b->low)
        while (b->nidle)
            submit(b->idle[--b->nidle]);
}

static void submit(struct slot *s)
{
    struct bench *b = s->b;
    uint64_t off;
    if (b->random) {
        off = (rnd(&b->seed) % (b->span / b->bs)) * b->bs;
    } else {
        off = b->next;
        b->next = (b->next + b->bs) % b->span;
    }
    s->req = (struct blk_req){
        .op = b->write ? BLK_OP_WRITE : BLK_OP_READ,
        .offset = off,
        .len = b->bs,
        .iov = &s->iov,
        .iovcnt = 1,
        .done = done,
        .opaque = s,
    };
    b->inflight++;
    if (blk_submit(b->bd, &s->req) < 0) {
        fprintf(stderr, "blkbench: submit failed\n");
        exit(1);
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: blkbench [-f raw|qcow2] [-c none|writeback] [-q DEPTH] "
            "[-b BYTES] [-t SECONDS] [-s SPAN] [-l LOW] PATTERN FILE\n"
            "PATTERN: seqread seqwrite randread randwrite\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct blk_open_opts o = {.cache = BLK_CACHE_NONE};
    unsigned depth = 32;
    int low = -1;
    double secs = 5;
    struct bench b = {.bs = 4096, .seed = 88172645463325252ull};
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        const char *v = argv[i + 1];
        switch (argv[i][1]) {
        case 'f':
            o.format = !strcmp(v, "raw") ? BLK_FORMAT_RAW : BLK_FORMAT_QCOW2;
            break;
        case 'c':
            o.cache = !strcmp(v, "none") ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK;
            break;
        case 'q':
            depth = (unsigned)atoi(v);
            break;
        case 'b':
            b.bs = strtoull(v, NULL, 0);
            break;
        case 't':
            secs = atof(v);
            break;
        case 's':
            b.span = strtoull(v, NULL, 0);
            break;
        case 'l':
            low = atoi(v);
            break;
        default:
            usage();
        }
    }
    if (argc - i != 2 || !depth || !b.bs)
        usage();
    const char *pat = argv[i];
    b.write = strstr(pat, "write") != NULL;
    b.random = !strncmp(pat, "rand", 4);
    o.path = argv[i + 1];
    if (blk_open(&o, &b.bd) < 0)
        return 1;
    if (!b.span || b.span > blk_size(b.bd))
        b.span = blk_size(b.bd);
    if (b.span < b.bs)
        usage();
    b.depth = depth;
    b.low = low < 0 || (unsigned)low >= depth ? depth - 1 : (unsigned)low;
    b.idle = calloc(depth, sizeof(*b.idle));
    struct slot *slots = calloc(depth, sizeof(*slots));
    /* The buffers share one region advised for huge pages, as guest RAM
     * normally is: large transfers then pin few pages. */
    size_t region = ((size_t)depth * b.bs + (2u << 20) - 1) & ~((2u << 20) - 1);
    uint8_t *mem;
    if (!slots || !b.idle || posix_memalign((void **)&mem, 2u << 20, region))
        return 1;
    madvise(mem, region, MADV_HUGEPAGE);
    memset(mem, 0x5a, region);
    for (unsigned k = 0; k < depth; k++) {
        slots[k].b = &b;
        slots[k].iov.iov_len = b.bs;
        slots[k].iov.iov_base = mem + (size_t)k * b.bs;
    }
    double start = now(), end = start + secs;
    for (unsigned k = 0; k < depth; k++)
        submit(&slots[k]);
    blk_kick(b.bd);
    struct pollfd p = {.fd = blk_event_fd(b.bd), .events = POLLIN};
    while (b.inflight) {
        poll(&p, 1, 1000);
        blk_poll(b.bd);
        blk_kick(b.bd);
        if (!b.stop && now() >= end)
            b.stop = true;
    }
    double t = now() - start;
    printf("%s bs=%llu qd=%u %s: %.1f MB/s %.0f IOPS\n", pat,
           (unsigned long long)b.bs, depth, blk_format_name(b.bd),
           (double)b.bytes / t / 1e6, (double)b.ios / t);
    blk_close(b.bd);
    return 0;
}
