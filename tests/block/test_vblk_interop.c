/* kvmpc's virtio-blk device on images made by QEMU's tools, driven through
 * the host-side virtio-blk harness (bench/vblk_harness.h): real request
 * chains, 32 in flight, notifications through the ioeventfd path to the
 * device's I/O thread, completions through MSI-X. Each case:
 *   1. builds an image with qemu-img/qemu-io (raw; qcow2 v2 and v3 with
 *      4K, 64K and 2M clusters; zlib and zstd compressed; a backing chain
 *      base.raw <- mid.qcow2 <- top.qcow2 with relative names);
 *   2. reads all of it through virtio-blk and compares with what
 *      'qemu-img convert' says the content is;
 *   3. writes, zeroes, discards, flushes and reads through virtio-blk,
 *      checked against a model of the disk;
 *   4. 'qemu-img check' finds the image clean and 'qemu-img compare'
 *      finds it identical to the model; backing files are unchanged.
 * Read-only disks must fail writes with VIRTIO_BLK_S_IOERR. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "blk_test_util.h"
#include "util.h"
#include "vblk_harness.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"

#define MiB (1ull << 20)
#define SECTOR VIRTIO_BLK_SECTOR
#define MAX_SECTORS 512 /* 256 KiB per request */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- The driver's side of a workload ------------------------------------ */

struct range {
    struct vh_req *r;
    uint64_t lo, hi; /* bytes */
};

struct work {
    struct tu_model *m;
    struct range busy[VH_MAX_DEPTH];
    unsigned nbusy;
    unsigned long reads, writes, zeroes, discards, flushes;
};

static bool overlaps_busy(const struct work *w, uint64_t lo, uint64_t hi)
{
    for (unsigned i = 0; i < w->nbusy; i++)
        if (lo < w->busy[i].hi && w->busy[i].lo < hi)
            return true;
    return false;
}

static void forget_busy(struct work *w, const struct vh_req *r)
{
    for (unsigned i = 0; i < w->nbusy; i++) {
        if (w->busy[i].r == r) {
            w->busy[i] = w->busy[--w->nbusy];
            return;
        }
    }
}

/* Compares what a read returned with the known bytes; learns the rest. */
static void check_read(struct tu_model *m, uint64_t off, const uint8_t *buf,
                       uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        if (m->known[off + i] && m->data[off + i] != buf[i])
            fail_msg("byte %llu reads %#x through virtio-blk, expected %#x",
                     (unsigned long long)(off + i), buf[i], m->data[off + i]);
        m->data[off + i] = buf[i];
        m->known[off + i] = 1;
    }
}

static void work_done(struct vh *h, struct vh_req *r)
{
    struct work *w = r->opaque;
    forget_busy(w, r);
    if (r->status != VIRTIO_BLK_S_OK)
        fail_msg("request type %u sector %llu failed with status %u",
                 r->type, (unsigned long long)r->sector, r->status);
    if (r->type == VIRTIO_BLK_T_IN) {
        assert_int_equal(r->used_len, r->len + 1);
        check_read(w->m, r->sector * SECTOR, r->data, r->len);
    }
}

/* Gets a slot, waiting for completions while all are busy. */
static struct vh_req *get_slot(struct vh *h)
{
    struct vh_req *r;
    while (!(r = vh_alloc(h))) {
        vh_kick(h);
        vh_wait(h, 1000);
    }
    return r;
}

/* Waits until [lo, hi) overlaps no request in flight. */
static void wait_free_range(struct vh *h, struct work *w, uint64_t lo,
                            uint64_t hi)
{
    while (overlaps_busy(w, lo, hi)) {
        vh_kick(h);
        vh_wait(h, 1000);
    }
}

static void drain(struct vh *h)
{
    vh_kick(h);
    for (int i = 0; vh_inflight(h); i++) {
        if (i > 300)
            fail_msg("requests still in flight after 30 s (status 0x%x)",
                     vh_device_status(h));
        vh_wait(h, 100);
    }
}

static void submit_rw(struct vh *h, struct work *w, uint32_t type,
                      uint64_t sector, uint32_t sectors, unsigned segs,
                      uint64_t *seed)
{
    uint64_t lo = sector * SECTOR, hi = lo + (uint64_t)sectors * SECTOR;
    wait_free_range(h, w, lo, hi);
    struct vh_req *r = get_slot(h);
    r->type = type;
    r->sector = sector;
    r->len = sectors * SECTOR;
    r->segs = segs;
    r->seg_seed = (uint32_t)rnd(seed);
    r->done = work_done;
    r->opaque = w;
    if (type == VIRTIO_BLK_T_OUT) {
        tu_pattern(r->data, r->len, rnd(seed));
        memcpy(w->m->data + lo, r->data, r->len);
        memset(w->m->known + lo, 1, r->len);
        w->writes++;
    } else {
        w->reads++;
    }
    w->busy[w->nbusy++] = (struct range){r, lo, hi};
    vh_queue(h, r);
}

static void submit_range(struct vh *h, struct work *w, uint32_t type,
                         uint64_t sector, uint32_t sectors, uint32_t flags)
{
    uint64_t lo = sector * SECTOR, hi = lo + (uint64_t)sectors * SECTOR;
    wait_free_range(h, w, lo, hi);
    struct vh_req *r = get_slot(h);
    r->type = type;
    r->range_sector = sector;
    r->range_count = sectors;
    r->range_flags = flags;
    r->done = work_done;
    r->opaque = w;
    if (type == VIRTIO_BLK_T_WRITE_ZEROES) {
        memset(w->m->data + lo, 0, hi - lo);
        memset(w->m->known + lo, 1, hi - lo);
        w->zeroes++;
    } else if (type == VIRTIO_BLK_T_DISCARD) {
        /* After a discard the content is the device's choice. */
        memset(w->m->known + lo, 0, hi - lo);
        w->discards++;
    } else {
        w->flushes++;
    }
    if (type != VIRTIO_BLK_T_FLUSH)
        w->busy[w->nbusy++] = (struct range){r, lo, hi};
    vh_queue(h, r);
}

/* Reads the whole disk in requests of random size, many in flight. */
static void read_all(struct vh *h, struct work *w, unsigned segs,
                     uint64_t seed)
{
    uint64_t total = w->m->size / SECTOR;
    for (uint64_t s = 0; s < total;) {
        uint32_t n = (uint32_t)MIN(total - s, 1 + rnd(&seed) % MAX_SECTORS);
        submit_rw(h, w, VIRTIO_BLK_T_IN, s, n, 1 + rnd(&seed) % segs, &seed);
        s += n;
        if (vh_inflight(h) % 8 == 0)
            vh_kick(h);
    }
    drain(h);
}

static void random_ops(struct vh *h, struct work *w, unsigned count,
                       unsigned segs, uint64_t seed)
{
    uint64_t total = w->m->size / SECTOR;
    for (unsigned i = 0; i < count; i++) {
        uint64_t k = rnd(&seed) % 100;
        uint32_t n = 1 + (uint32_t)(rnd(&seed) % MAX_SECTORS);
        if (k >= 90)
            n = 1 + (uint32_t)(rnd(&seed) % 8192); /* zeroes/discard: large */
        uint64_t s = rnd(&seed) % (total - MIN(n, total - 1));
        n = (uint32_t)MIN(n, total - s);
        if (k < 55)
            submit_rw(h, w, VIRTIO_BLK_T_OUT, s, n, 1 + rnd(&seed) % segs,
                      &seed);
        else if (k < 80)
            submit_rw(h, w, VIRTIO_BLK_T_IN, s, n, 1 + rnd(&seed) % segs,
                      &seed);
        else if (k < 85)
            submit_range(h, w, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
        else if (k < 95)
            submit_range(h, w, VIRTIO_BLK_T_WRITE_ZEROES, s, n,
                         k & 1 ? VIRTIO_BLK_WZ_F_UNMAP : 0);
        else
            submit_range(h, w, VIRTIO_BLK_T_DISCARD, s, n, 0);
        if (rnd(&seed) % 4 == 0)
            vh_kick(h);
    }
    drain(h);
}

/* ---- Cases ----------------------------------------------------------------- */

struct vcase {
    const char *name;
    const char *setup; /* shell: creates t.img (and its backing files) */
    const char *fmt;   /* of t.img, for qemu-img */
    uint64_t size;
    const char *engine;
    bool direct, indirect, no_event_idx;
    unsigned segs;     /* data descriptors per request, at most */
    const char *frozen; /* files that must come out unchanged */
};

static struct vh *open_disk(const struct vcase *c, const char *img, bool ro)
{
    struct vh_opts o = {
        .disk = {.path = img, .readonly = ro,
                 .cache = c->direct ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK},
        .depth = 32,
        .max_bytes = MAX_SECTORS * SECTOR,
        .max_segs = c->segs ? c->segs : 4,
        .indirect = c->indirect,
        .event_idx = !c->no_event_idx,
    };
    struct vh *h;
    assert_int_equal(vh_open(&o, &h), 0);
    assert_int_equal(vh_capacity(h), c->size / SECTOR);
    assert_int_equal(vh_is_readonly(h), ro);
    return h;
}

static void load_file(struct tu_model *m, const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, m->data, m->size, 0), (ssize_t)m->size);
    close(fd);
    memset(m->known, 1, m->size);
}

static void assert_device_healthy(struct vh *h)
{
    uint8_t st = vh_device_status(h);
    assert_true(st & VIRTIO_STATUS_DRIVER_OK);
    assert_false(st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

static void run_case(const struct vcase *c)
{
    setenv("KVMPC_AIO", c->engine ? c->engine : "io_uring", 1);
    tu_qemu_sh("rm -f t.img before.raw after.raw frozen.md5 && %s", c->setup);
    tu_qemu_sh("$QI convert -f %s -O raw t.img before.raw", c->fmt);
    if (c->frozen)
        tu_qemu_sh("md5sum %s > frozen.md5", c->frozen);
    char img[256], before[256], after[256];
    tu_path(img, sizeof(img), "t.img");
    tu_path(before, sizeof(before), "before.raw");
    tu_path(after, sizeof(after), "after.raw");

    struct tu_model m;
    tu_model_init(&m, c->size);
    load_file(&m, before);
    struct work w = {.m = &m};
    unsigned segs = c->segs ? c->segs : 4;
    struct vh *h = open_disk(c, img, false);
    read_all(h, &w, segs, 1);                 /* what QEMU sees */
    random_ops(h, &w, 600, segs, 2);
    assert_int_equal(vh_sync_range(h, VIRTIO_BLK_T_FLUSH, 0, 0, 0),
                     VIRTIO_BLK_S_OK);
    read_all(h, &w, segs, 3);                 /* learns discarded bytes */
    assert_device_healthy(h);
    assert_true(w.writes > 0 && w.zeroes > 0 && w.discards > 0 &&
                w.flushes > 0 && w.reads > 0);
    vh_close(h);

    tu_model_save(&m, after);
    if (!strcmp(c->fmt, "qcow2"))
        tu_qemu_sh("$QI check -q t.img");
    tu_qemu_sh("$QI compare -q -f %s -F raw t.img after.raw", c->fmt);
    if (c->frozen)
        tu_qemu_sh("md5sum -c --quiet frozen.md5");
    tu_model_free(&m);
}

/* Data in a few places, written by QEMU: kvmpc reads it and overwrites
 * allocated, zero and unallocated clusters. */
#define QEMU_DATA(fmt)                                                         \
    "$QIO -f " fmt " -c 'write -P 0x11 0 3M' -c 'write -P 0x22 5M 1M' "        \
    "-c 'write -P 0x33 7340544 70000' -c 'write -z 9M 2M' "                    \
    "-c 'write -P 0x44 13M 64k' t.img"

static void test_raw(void **state)
{
    struct vcase c = {.name = "raw", .fmt = "raw", .size = 16 * MiB,
                      .setup = "$QI create -q -f raw t.img 16M && "
                               QEMU_DATA("raw"),
                      .direct = true};
    run_case(&c);
    c.direct = false;
    c.engine = "thread";
    c.indirect = true;
    run_case(&c);
}

static void test_qcow2_versions_and_clusters(void **state)
{
    static const char *opts[] = {
        "compat=0.10,cluster_size=4k", "compat=1.1,cluster_size=4k",
        "compat=0.10,cluster_size=64k", "compat=1.1,cluster_size=64k",
        "compat=0.10,cluster_size=2M", "compat=1.1,cluster_size=2M",
    };
    for (unsigned i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char setup_cmd[512];
        snprintf(setup_cmd, sizeof(setup_cmd),
                 "$QI create -q -f qcow2 -o %s t.img 16M && "
                 QEMU_DATA("qcow2"), opts[i]);
        struct vcase c = {.name = opts[i], .setup = setup_cmd, .fmt = "qcow2",
                          .size = 16 * MiB,
                          .engine = i % 2 ? "thread" : "io_uring",
                          .direct = i % 3 == 0, .indirect = i >= 3,
                          .no_event_idx = i == 2, .segs = i == 4 ? 16 : 4};
        run_case(&c);
    }
}

/* Text-like data that compresses, random data that does not, zeroes. */
#define MAKE_SOURCE                                                            \
    "python3 -c \"import os; b=bytearray(); "                                  \
    "[b.extend((b'sector %%d ' %% i).ljust(512, b'.')) for i in range(32768)]; " \
    "b[3<<20:4<<20]=os.urandom(1<<20); b[6<<20:7<<20]=bytes(1<<20); "          \
    "open('src.raw','wb').write(b)\""

static void test_compressed(void **state)
{
    static const char *opts[] = {
        "-o compression_type=zlib",
        "-o compression_type=zstd",
        "-o compat=0.10,cluster_size=4k",
        "-o compression_type=zstd,cluster_size=2M",
    };
    for (unsigned i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char setup_cmd[1024];
        snprintf(setup_cmd, sizeof(setup_cmd),
                 MAKE_SOURCE " && $QI convert -c -O qcow2 %s src.raw t.img "
                 "&& $QI check t.img | grep -Eq '[1-9][0-9]*[.][0-9]+%% "
                 "compressed'", opts[i]);
        struct vcase c = {.name = opts[i], .setup = setup_cmd, .fmt = "qcow2",
                          .size = 16 * MiB, .indirect = i % 2,
                          .direct = i == 1};
        run_case(&c);
    }
}

static void test_backing_chain(void **state)
{
    /* base.raw <- mid.qcow2 <- t.img, every name relative. */
    struct vcase c = {
        .name = "chain",
        .fmt = "qcow2",
        .size = 16 * MiB,
        .setup = "rm -f base.raw mid.qcow2 && "
                 "head -c 14680064 /dev/urandom > base.raw && "
                 "$QI create -q -f qcow2 -o compat=0.10 -b base.raw -F raw "
                 "mid.qcow2 16M && "
                 "$QIO -f qcow2 -c 'write -P 0x44 1M 2M' -c 'write -z 4M 1M' "
                 "mid.qcow2 && "
                 "$QI create -q -f qcow2 -o cluster_size=4k -b mid.qcow2 "
                 "-F qcow2 t.img && "
                 "$QIO -f qcow2 -c 'write -P 0x55 2M 64k' "
                 "-c 'write -P 0x66 15M 1M' -c 'write -z 8M 4k' t.img && "
                 "$QI info --backing-chain t.img | grep -q 'backing file: "
                 "base.raw'",
        .frozen = "base.raw mid.qcow2",
        .indirect = true,
    };
    run_case(&c);
}

static void fill_pattern(void *buf, size_t len, uint8_t v)
{
    memset(buf, v, len);
}

static void count_ioerr(struct vh *h, struct vh_req *r)
{
    if (r->status == VIRTIO_BLK_S_IOERR && r->used_len >= 1)
        ++*(unsigned *)r->opaque;
}

/* A read-only disk: reads work, every write fails with IOERR, zeroes and
 * discards are not offered, and the image stays as it was. */
static void test_readonly(void **state)
{
    setenv("KVMPC_AIO", "io_uring", 1);
    tu_qemu_sh(
        "rm -f t.img && " MAKE_SOURCE " && "
        "$QI convert -c -O qcow2 -o compression_type=zstd src.raw t.img && "
        "$QI convert -O raw t.img before.raw && md5sum t.img > frozen.md5");
    char img[256], before[256];
    tu_path(img, sizeof(img), "t.img");
    tu_path(before, sizeof(before), "before.raw");
    struct vcase c = {.name = "ro", .fmt = "qcow2", .size = 16 * MiB};
    struct vh *h = open_disk(&c, img, true);
    uint64_t f = vh_features(h);
    assert_true(f & VIRTIO_FEATURE(VIRTIO_BLK_F_RO));
    assert_false(f & VIRTIO_FEATURE(VIRTIO_BLK_F_DISCARD));
    assert_false(f & VIRTIO_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES));

    struct tu_model m;
    tu_model_init(&m, c.size);
    load_file(&m, before);
    struct work w = {.m = &m};
    read_all(h, &w, 4, 7);

    static uint8_t buf[64 * 1024];
    fill_pattern(buf, sizeof(buf), 0xA5);
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_OUT, 0, buf, 4096, 1),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_OUT, 100, buf, sizeof(buf), 3),
                     VIRTIO_BLK_S_IOERR);
    /* Many writes in flight at once: every one fails. */
    unsigned ioerr = 0;
    for (unsigned i = 0; i < 32; i++) {
        struct vh_req *r = vh_alloc(h);
        assert_non_null(r);
        r->type = VIRTIO_BLK_T_OUT;
        r->sector = i * 64;
        r->len = 4096;
        r->done = count_ioerr;
        r->opaque = &ioerr;
        memset(r->data, 0x5A, r->len);
        vh_queue(h, r);
    }
    assert_null(vh_alloc(h));
    drain(h);
    assert_int_equal(ioerr, 32);
    assert_int_not_equal(vh_sync_range(h, VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0),
                         VIRTIO_BLK_S_OK);
    assert_int_not_equal(vh_sync_range(h, VIRTIO_BLK_T_DISCARD, 0, 8, 0),
                         VIRTIO_BLK_S_OK);
    /* The data is what it was. */
    read_all(h, &w, 4, 8);
    char id[VIRTIO_BLK_ID_BYTES + 1] = {0};
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_GET_ID, 0, id,
                             VIRTIO_BLK_ID_BYTES, 1),
                     VIRTIO_BLK_S_OK);
    assert_string_equal(id, "vblk-harness");
    assert_device_healthy(h);
    vh_close(h);
    tu_model_free(&m);
    tu_qemu_sh("md5sum -c --quiet frozen.md5 && $QI check -q t.img && "
               "$QI compare -q t.img before.raw");
}

/* Requests the device must refuse without breaking. */
static void test_bad_requests(void **state)
{
    setenv("KVMPC_AIO", "io_uring", 1);
    tu_qemu_sh("$QI create -q -f qcow2 t.img 1M");
    char img[256];
    tu_path(img, sizeof(img), "t.img");
    struct vcase c = {.name = "bad", .fmt = "qcow2", .size = 1 * MiB};
    struct vh *h = open_disk(&c, img, false);
    static uint8_t buf[8192];
    uint64_t last = c.size / SECTOR - 1;
    /* Past the end, straddling the end, not a sector multiple. */
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_IN, last + 1, buf, 512, 1),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_OUT, last, buf, 1024, 1),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_IN, 0, buf, 700, 2),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(vh_sync_range(h, VIRTIO_BLK_T_WRITE_ZEROES, last, 2, 0),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(vh_sync_range(h, VIRTIO_BLK_T_DISCARD, 0, 8, 0x80),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(vh_sync(h, 99, 0, NULL, 0, 0), VIRTIO_BLK_S_UNSUPP);
    /* The device still works. */
    fill_pattern(buf, sizeof(buf), 0x3C);
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_OUT, last - 15, buf, 8192, 4),
                     VIRTIO_BLK_S_OK);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(vh_sync(h, VIRTIO_BLK_T_IN, last - 15, buf, 8192, 3),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(buf[0], 0x3C);
    assert_int_equal(buf[8191], 0x3C);
    assert_device_healthy(h);
    vh_close(h);
    tu_qemu_sh("$QI check -q t.img && "
               "$QIO -f qcow2 -c 'read -P 0x3c 1040384 8192' "
               "t.img | grep -q 'read 8192/8192'");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup, tu_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_raw),
        T(test_qcow2_versions_and_clusters),
        T(test_compressed),
        T(test_backing_chain),
        T(test_readonly),
        T(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
