/* vblkbench: throughput of kvmpc's virtio-blk device and block layer
 * together, driven by the host-side virtio-blk harness (vblk_harness.h):
 * real request chains in a split virtqueue, notifications through the
 * ioeventfd path to the device's I/O thread, completions back through
 * MSI-X. Prints the same line as blkbench.
 *
 * usage: vblkbench [-f raw|qcow2] [-c none|writeback] [-q DEPTH] [-b BYTES]
 *                  [-t SECONDS] [-s SPAN] [-n SEGMENTS] [-i] [-E] PATTERN FILE
 * PATTERN: seqread, seqwrite, randread, randwrite. -i: indirect
 * descriptors; -E: no EVENT_IDX. The guest refills every free slot after
 * each interrupt and notifies once per batch. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vblk_harness.h"
#include "virtio/blk.h"

struct bench {
    bool write, random;
    uint64_t bs, span, next, seed, bytes, ios;
};

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void done(struct vh *h, struct vh_req *r)
{
    struct bench *b = r->opaque;
    if (r->status != VIRTIO_BLK_S_OK) {
        fprintf(stderr, "vblkbench: request failed with status %u\n",
                r->status);
        exit(1);
    }
    b->bytes += r->len;
    b->ios++;
}

static void fill(struct vh *h, struct bench *b, unsigned segs)
{
    struct vh_req *r;
    while ((r = vh_alloc(h))) {
        uint64_t off;
        if (b->random) {
            off = (rnd(&b->seed) % (b->span / b->bs)) * b->bs;
        } else {
            off = b->next;
            b->next = (b->next + b->bs) % b->span;
        }
        r->type = b->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
        r->sector = off / VIRTIO_BLK_SECTOR;
        r->len = (uint32_t)b->bs;
        r->segs = segs;
        r->done = done;
        r->opaque = b;
        vh_queue(h, r);
    }
    vh_kick(h);
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
            "usage: vblkbench [-f raw|qcow2] [-c none|writeback] [-q DEPTH] "
            "[-b BYTES] [-t SECONDS] [-s SPAN] [-n SEGMENTS] [-i] [-E] "
            "PATTERN FILE\nPATTERN: seqread seqwrite randread randwrite\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct vh_opts o = {.disk.cache = BLK_CACHE_NONE, .depth = 32,
                        .event_idx = true};
    struct bench b = {.bs = 4096, .seed = 88172645463325252ull};
    double secs = 5;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        char opt = argv[i][1];
        if (opt == 'i' || opt == 'E') {
            if (opt == 'i')
                o.indirect = true;
            else
                o.event_idx = false;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        switch (opt) {
        case 'f':
            o.disk.format = !strcmp(v, "raw") ? BLK_FORMAT_RAW
                                              : BLK_FORMAT_QCOW2;
            break;
        case 'c':
            o.disk.cache = !strcmp(v, "none") ? BLK_CACHE_NONE
                                              : BLK_CACHE_WRITEBACK;
            break;
        case 'q': o.depth = (unsigned)atoi(v); break;
        case 'b': b.bs = strtoull(v, NULL, 0); break;
        case 't': secs = atof(v); break;
        case 's': b.span = strtoull(v, NULL, 0); break;
        case 'n': o.max_segs = (unsigned)atoi(v); break;
        default: usage();
        }
    }
    if (argc - i != 2 || !o.depth || !b.bs || b.bs % VIRTIO_BLK_SECTOR ||
        b.bs > (1u << 30))
        usage();
    const char *pat = argv[i];
    b.write = strstr(pat, "write") != NULL;
    b.random = !strncmp(pat, "rand", 4);
    o.disk.path = argv[i + 1];
    o.max_bytes = (uint32_t)b.bs;
    struct vh *h;
    if (vh_open(&o, &h) < 0)
        return 1;
    uint64_t size = vh_capacity(h) * VIRTIO_BLK_SECTOR;
    if (!b.span || b.span > size)
        b.span = size;
    if (b.span < b.bs)
        usage();
    double start = now(), end = start + secs;
    fill(h, &b, o.max_segs);
    while (now() < end) {
        vh_wait(h, 1000);
        fill(h, &b, o.max_segs);
    }
    while (vh_inflight(h))
        vh_wait(h, 1000);
    double t = now() - start;
    printf("%s bs=%llu qd=%u virtio-blk: %.1f MB/s %.0f IOPS "
           "(%.1f requests per interrupt, %.1f per notify)\n", pat,
           (unsigned long long)b.bs, o.depth, (double)b.bytes / t / 1e6,
           (double)b.ios / t,
           (double)b.ios / (double)(vh_interrupts(h) ? vh_interrupts(h) : 1),
           (double)b.ios / (double)(vh_notifies(h) ? vh_notifies(h) : 1));
    vh_close(h);
    return 0;
}
