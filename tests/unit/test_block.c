/* The block layer through its asynchronous API: --disk parsing, format
 * detection, request validation, raw and qcow2 images created by kvmpc
 * under a concurrent random workload with both I/O engines and both cache
 * modes, checked against a model and by qemu-img. */
#include <errno.h>
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
#include "block/block.h"
#include "block/img.h"
#include "util.h"

#define MiB (1ull << 20)

static void test_parse_disk_opts(void **state)
{
    struct blk_open_opts o;
    assert_int_equal(blk_parse_disk_opts("disk.img", &o), 0);
    assert_string_equal(o.path, "disk.img");
    assert_int_equal(o.format, BLK_FORMAT_AUTO);
    assert_false(o.readonly);
    assert_int_equal(o.cache, BLK_CACHE_WRITEBACK);
    free((char *)o.path);

    assert_int_equal(
        blk_parse_disk_opts("/a,,b.qcow2,format=qcow2,ro,cache=none", &o), 0);
    assert_string_equal(o.path, "/a,b.qcow2");
    assert_int_equal(o.format, BLK_FORMAT_QCOW2);
    assert_true(o.readonly);
    assert_int_equal(o.cache, BLK_CACHE_NONE);
    free((char *)o.path);

    assert_int_equal(blk_parse_disk_opts("x,format=raw,cache=writeback", &o),
                     0);
    assert_int_equal(o.format, BLK_FORMAT_RAW);
    free((char *)o.path);

    assert_int_equal(blk_parse_disk_opts("x,format=vmdk", &o), -1);
    assert_int_equal(blk_parse_disk_opts("x,cache=unsafe", &o), -1);
    assert_int_equal(blk_parse_disk_opts("x,bogus=1", &o), -1);
    assert_int_equal(blk_parse_disk_opts("x,ro=maybe", &o), -1);
    assert_int_equal(blk_parse_disk_opts("", &o), -1);
    assert_int_equal(blk_parse_disk_opts(",ro", &o), -1);
}

static void make_file(const char *path, uint64_t size, uint64_t seed)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(MiB);
    assert_non_null(buf);
    for (uint64_t off = 0; off < size; off += MiB) {
        tu_pattern(buf, MiB, seed + off);
        assert_int_equal(pwrite(fd, buf, MIN(MiB, size - off), (off_t)off),
                         (ssize_t)MIN(MiB, size - off));
    }
    free(buf);
    close(fd);
}

static void test_detect_format(void **state)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/data.img", tu_dir);
    make_file(p, MiB, 7);
    struct blockdev *bd = tu_open(p, BLK_FORMAT_AUTO, true);
    assert_string_equal(blk_format_name(bd), "raw");
    assert_int_equal(blk_size(bd), MiB);
    blk_close(bd);

    /* A VMDK signature is refused rather than handed out as raw... */
    int fd = open(p, O_WRONLY);
    assert_int_equal(pwrite(fd, "KDMV", 4, 0), 4);
    close(fd);
    struct blk_open_opts o = {.path = p, .readonly = true};
    assert_int_equal(blk_open(&o, &bd), -1);
    /* ...unless raw is asked for. */
    bd = tu_open(p, BLK_FORMAT_RAW, true);
    blk_close(bd);

    snprintf(p, sizeof(p), "%s/q.qcow2", tu_dir);
    char *argv[] = {"img", "create", "-f", "qcow2", p, "1M", NULL};
    assert_int_equal(img_main(6, argv), 0);
    bd = tu_open(p, BLK_FORMAT_AUTO, true);
    assert_string_equal(blk_format_name(bd), "qcow2");
    assert_int_equal(blk_size(bd), MiB);
    blk_close(bd);
    bd = tu_open(p, BLK_FORMAT_RAW, true); /* the bytes as they are */
    assert_string_equal(blk_format_name(bd), "raw");
    blk_close(bd);

    o.path = "/nonexistent/disk.img";
    assert_int_equal(blk_open(&o, &bd), -1);
    o.path = "/dev/null"; /* not a regular file or block device */
    assert_int_equal(blk_open(&o, &bd), -1);
}

static int last_result;
static bool got_done;

static void note_done(struct blk_req *req, int result)
{
    got_done = true;
    last_result = result;
}

static void submit_expect(struct blockdev *bd, struct blk_req *req, int want)
{
    got_done = false;
    req->done = note_done;
    assert_int_equal(blk_submit(bd, req), 0);
    assert_true(got_done); /* validation failures finish at once */
    assert_int_equal(last_result, want);
}

static void test_validation(void **state)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/v.img", tu_dir);
    make_file(p, MiB, 1);
    struct blockdev *bd = tu_open(p, BLK_FORMAT_RAW, true);
    assert_true(blk_is_readonly(bd));
    uint8_t buf[1024];
    struct iovec iov = {buf, sizeof(buf)};
    struct blk_req r = {.op = BLK_OP_WRITE, .len = 1024, .iov = &iov,
                        .iovcnt = 1};
    submit_expect(bd, &r, -EROFS);
    r.op = BLK_OP_DISCARD;
    submit_expect(bd, &r, -EROFS);
    r.op = BLK_OP_READ;
    r.offset = MiB - 512;
    submit_expect(bd, &r, -EINVAL); /* past the end */
    r.offset = UINT64_MAX - 100;
    submit_expect(bd, &r, -EINVAL); /* wraps around */
    r.offset = 0;
    r.len = 512; /* iov holds 1024 */
    submit_expect(bd, &r, -EINVAL);
    r.op = (enum blk_op)99;
    submit_expect(bd, &r, -EINVAL);
    /* A read-only disk still reads and flushes. */
    assert_int_equal(tu_read(bd, 0, buf, sizeof(buf)), 0);
    assert_int_equal(tu_flush(bd), 0);
    assert_int_equal(tu_read(bd, 0, buf, 0), 0);
    blk_close(bd);
}

static void stress_and_verify(struct blockdev *bd, uint64_t size,
                              bool unaligned, uint64_t seed,
                              struct tu_model *m)
{
    struct tu_stress s = {
        .requests = 2000,
        .depth = 32,
        .max_len = 256 * 1024,
        .unaligned = unaligned,
        .discard = true,
        .flush = true,
        .seed = seed,
    };
    tu_stress_run(bd, m, &s);
    tu_model_verify(m, bd);
    (void)size;
}

static void raw_case(const char *engine, enum blk_cache cache)
{
    setenv("KVMPC_AIO", engine, 1);
    char p[256];
    snprintf(p, sizeof(p), "%s/raw-%s-%d.img", tu_dir, engine, cache);
    uint64_t size = 16 * MiB;
    make_file(p, size, 3);
    struct blk_open_opts o = {.path = p, .cache = cache};
    struct blockdev *bd;
    assert_int_equal(blk_open(&o, &bd), 0);
    assert_string_equal(blk_format_name(bd), "raw");
    struct tu_model m;
    tu_model_init(&m, size);
    tu_model_load(&m, bd);
    stress_and_verify(bd, size, true, 11, &m);
    assert_int_equal(tu_flush(bd), 0);
    blk_close(bd);
    /* What the file holds now is what the model says. */
    bd = tu_open(p, BLK_FORMAT_RAW, true);
    tu_model_verify(&m, bd);
    blk_close(bd);
    tu_model_free(&m);
}

static void test_raw_io_uring(void **state)
{
    raw_case("io_uring", BLK_CACHE_WRITEBACK);
    raw_case("io_uring", BLK_CACHE_NONE);
}

static void test_raw_threads(void **state)
{
    raw_case("thread", BLK_CACHE_WRITEBACK);
    raw_case("thread", BLK_CACHE_NONE);
}

static void check_clean(const char *img)
{
    assert_int_equal(tu_sh("'%s' check -q '%s'", tu_qemu_img(), img), 0);
    char *argv[] = {"img", "check", (char *)img, NULL};
    assert_int_equal(img_main(3, argv), 0);
}

static void compare_with(const char *img, const struct tu_model *m)
{
    char ref[300];
    snprintf(ref, sizeof(ref), "%s.expected", img);
    tu_model_save(m, ref);
    assert_int_equal(tu_sh("'%s' compare -q -f qcow2 -F raw '%s' '%s'",
                           tu_qemu_img(), img, ref),
                     0);
}

/* kvmpc creates the image, writes it hard, and qemu-img agrees. */
static void qcow2_case(const char *engine, const char *opts, bool backing,
                       enum blk_cache cache, uint64_t seed)
{
    setenv("KVMPC_AIO", engine, 1);
    char p[256], b[256];
    uint64_t size = 32 * MiB;
    snprintf(p, sizeof(p), "%s/k-%llu.qcow2", tu_dir, (unsigned long long)seed);
    snprintf(b, sizeof(b), "%s/k-%llu.base", tu_dir, (unsigned long long)seed);
    char *argv[12] = {"img", "create", "-f", "qcow2", "-o", (char *)opts};
    int argc = 6;
    if (backing) {
        make_file(b, size - 3 * MiB, seed); /* shorter than the overlay */
        argv[argc++] = "-b";
        argv[argc++] = strrchr(b, '/') + 1; /* relative to the overlay */
        argv[argc++] = "-F";
        argv[argc++] = "raw";
    }
    argv[argc++] = p;
    argv[argc++] = "32M";
    assert_int_equal(img_main(argc, argv), 0);
    check_clean(p);

    struct blk_open_opts o = {.path = p, .cache = cache};
    struct blockdev *bd;
    assert_int_equal(blk_open(&o, &bd), 0);
    struct tu_model m;
    tu_model_init(&m, size);
    tu_model_load(&m, bd);
    stress_and_verify(bd, size, true, seed, &m);
    blk_close(bd);
    check_clean(p);
    compare_with(p, &m);
    /* Reopened, it reads the same. */
    bd = tu_open(p, BLK_FORMAT_QCOW2, true);
    tu_model_verify(&m, bd);
    blk_close(bd);
    tu_model_free(&m);
}

static void test_qcow2_created_by_kvmpc(void **state)
{
    qcow2_case("io_uring", "cluster_size=64k", false, BLK_CACHE_WRITEBACK, 1);
    qcow2_case("io_uring", "cluster_size=512", false, BLK_CACHE_WRITEBACK, 2);
    qcow2_case("thread", "cluster_size=4k", true, BLK_CACHE_WRITEBACK, 3);
    qcow2_case("io_uring", "cluster_size=2M", true, BLK_CACHE_NONE, 4);
    qcow2_case("thread", "compat=0.10,cluster_size=64k", true,
               BLK_CACHE_NONE, 5);
    qcow2_case("io_uring", "refcount_bits=1,cluster_size=1k", false,
               BLK_CACHE_WRITEBACK, 6);
    qcow2_case("io_uring", "refcount_bits=64,lazy_refcounts=on", true,
               BLK_CACHE_WRITEBACK, 7);
}

/* Small clusters and a small first refcount table: writing 32 MiB makes
 * the table grow (and move) several times. */
static void test_qcow2_refcount_table_growth(void **state)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/grow.qcow2", tu_dir);
    char *argv[] = {"img", "create", "-f", "qcow2", "-o",
                    "cluster_size=512,refcount_bits=64", p, "64M", NULL};
    assert_int_equal(img_main(8, argv), 0);
    struct blockdev *bd = tu_open(p, BLK_FORMAT_AUTO, false);
    uint8_t *buf = malloc(MiB);
    struct tu_model m;
    tu_model_init(&m, 64 * MiB);
    for (uint64_t off = 0; off < 32 * MiB; off += MiB) {
        tu_pattern(buf, MiB, off);
        assert_int_equal(tu_write(bd, off, buf, MiB), 0);
        memcpy(m.data + off, buf, MiB);
        if ((off / MiB) % 8 == 7)
            assert_int_equal(tu_flush(bd), 0);
    }
    memset(m.known, 1, m.size);
    tu_model_verify(&m, bd);
    blk_close(bd);
    free(buf);
    check_clean(p);
    compare_with(p, &m);
    tu_model_free(&m);
}

static void test_img_usage_errors(void **state)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/u.qcow2", tu_dir);
    char *a1[] = {"img", NULL};
    assert_int_equal(img_main(1, a1), 1);
    char *a2[] = {"img", "create", "-f", "qcow2", p, NULL};
    assert_int_equal(img_main(5, a2), 1); /* no size, no backing */
    char *a3[] = {"img", "create", "-f", "vmdk", p, "1M", NULL};
    assert_int_equal(img_main(6, a3), 1);
    char *a4[] = {"img", "create", "-f", "qcow2", "-o", "cluster_size=3k", p,
                  "1M", NULL};
    assert_int_equal(img_main(8, a4), 1);
    char *a5[] = {"img", "create", "-f", "qcow2", p, "1000", NULL};
    assert_int_equal(img_main(6, a5), 1); /* not a multiple of 512 */
    char *a6[] = {"img", "create", "-f", "qcow2", "-b", "missing.img", p,
                  NULL};
    assert_int_equal(img_main(7, a6), 1);
    char *a7[] = {"img", "check", "/nonexistent", NULL};
    assert_int_equal(img_main(3, a7), 1);
    char *a8[] = {"img", "frobnicate", NULL};
    assert_int_equal(img_main(2, a8), 1);
    char *a9[] = {"img", "create", "-f", "raw", p, "5M", NULL};
    assert_int_equal(img_main(6, a9), 0);
    char *a10[] = {"img", "info", p, NULL};
    assert_int_equal(img_main(3, a10), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup, tu_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_disk_opts),
        T(test_detect_format),
        T(test_validation),
        T(test_raw_io_uring),
        T(test_raw_threads),
        T(test_qcow2_created_by_kvmpc),
        T(test_qcow2_refcount_table_growth),
        T(test_img_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
