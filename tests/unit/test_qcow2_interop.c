/* qcow2 interoperability with QEMU's own tools. Each case builds an image
 * with qemu-img/qemu-io (versions 2 and 3, cluster sizes from 512 B to
 * 2 MiB, zlib and zstd compression, backing chains with relative names,
 * extended L2 entries, lazy refcounts, internal snapshots), then:
 *   1. kvmpc reads it and must see what 'qemu-img convert' sees;
 *   2. kvmpc writes it hard (many requests in flight, unaligned, zeroes,
 *      discards, flushes);
 *   3. 'qemu-img check' finds it clean and 'qemu-img compare' finds it
 *      identical to the expected content. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "blk_test_util.h"
#include "block/block.h"
#include "block/img.h"

#define MiB (1ull << 20)

static void load_file(struct tu_model *m, const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, m->data, m->size, 0), (ssize_t)m->size);
    close(fd);
    memset(m->known, 1, m->size);
}

struct icase {
    const char *name;
    const char *setup; /* shell; creates t.qcow2 */
    uint64_t size;
    unsigned requests;
    const char *engine;
    bool direct;
    const char *expect; /* shell; must succeed on the image QEMU made */
};

/* What QEMU reads, kvmpc reads; what kvmpc writes, QEMU reads. */
static void run_case(const struct icase *c)
{
    setenv("KVMPC_AIO", c->engine ? c->engine : "io_uring", 1);
    tu_qemu_sh("%s", c->setup);
    if (c->expect)
        tu_qemu_sh("%s", c->expect);
    tu_qemu_sh("$QI convert -O raw t.qcow2 before.raw");
    char img[256], before[256], after[256];
    tu_path(img, sizeof(img), "t.qcow2");
    tu_path(before, sizeof(before), "before.raw");
    tu_path(after, sizeof(after), "after.raw");

    struct tu_model m;
    tu_model_init(&m, c->size);
    load_file(&m, before);
    struct blk_open_opts o = {
        .path = img, .cache = c->direct ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK};
    struct blockdev *bd;
    assert_int_equal(blk_open(&o, &bd), 0);
    assert_string_equal(blk_format_name(bd), "qcow2");
    assert_int_equal(blk_size(bd), c->size);
    tu_model_verify(&m, bd);
    struct tu_stress s = {
        .requests = c->requests ? c->requests : 1000,
        .depth = 32,
        .max_len = 192 * 1024,
        .unaligned = true,
        .discard = true,
        .flush = true,
        .seed = 42,
    };
    tu_stress_run(bd, &m, &s);
    tu_model_verify(&m, bd);
    blk_close(bd);

    tu_model_save(&m, after);
    tu_qemu_sh("$QI check -q t.qcow2");
    tu_qemu_sh("$QI compare -q -f qcow2 -F raw t.qcow2 after.raw");
    char *argv[] = {"img", "check", img, NULL};
    assert_int_equal(img_main(3, argv), 0);
    tu_model_free(&m);
}

/* Data at a few places, written by QEMU, so that kvmpc both reads and
 * overwrites allocated clusters. */
#define QEMU_DATA(img)                                                         \
    "$QIO -f qcow2 -c 'write -P 0x11 0 3M' -c 'write -P 0x22 5M 1M' "          \
    "-c 'write -P 0x33 7340544 70000' -c 'write -z 9M 2M' " img

static void test_v2_and_v3_cluster_sizes(void **state)
{
    static const char *opts[] = {
        "compat=0.10", "compat=0.10,cluster_size=4k", "cluster_size=512",
        "cluster_size=4k", "cluster_size=64k", "cluster_size=2M",
        "refcount_bits=1", "refcount_bits=64,cluster_size=8k",
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char setup_cmd[512];
        snprintf(setup_cmd, sizeof(setup_cmd),
                 "rm -f t.qcow2 && $QI create -q -f qcow2 -o %s t.qcow2 16M "
                 "&& " QEMU_DATA("t.qcow2"),
                 opts[i]);
        struct icase c = {.name = opts[i], .setup = setup_cmd, .size = 16 * MiB,
                          .engine = i % 2 ? "thread" : "io_uring",
                          .direct = i == 4};
        run_case(&c);
    }
}

/* Text-like data that compresses, plus random data that does not. */
#define MAKE_SOURCE                                                            \
    "python3 -c \"import os,sys; b=bytearray(); "                              \
    "[b.extend((b'block %%d ' %% i).ljust(512, b'.')) for i in range(16384)]; " \
    "b[3<<20:4<<20]=os.urandom(1<<20); b[6<<20:7<<20]=bytes(1<<20); "          \
    "open('src.raw','wb').write(b)\""

static void test_compressed(void **state)
{
    static const char *opts[] = {
        "-o cluster_size=64k",
        "-o cluster_size=4k",
        "-o compression_type=zstd",
        "-o compression_type=zstd,cluster_size=2M",
        "-o compression_type=zstd,cluster_size=512",
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char setup_cmd[1024];
        snprintf(setup_cmd, sizeof(setup_cmd),
                 "rm -f t.qcow2 && " MAKE_SOURCE
                 " && $QI convert -c -O qcow2 %s src.raw t.qcow2",
                 opts[i]);
        struct icase c = {
            .name = opts[i],
            .setup = setup_cmd,
            .size = 8 * MiB,
            /* The image really holds compressed clusters. */
            .expect = "$QI check t.qcow2 | grep -Eq "
                      "'[1-9][0-9]*[.][0-9]+% compressed'",
        };
        run_case(&c);
    }
}

static void test_backing_chain_relative(void **state)
{
    /* base.raw <- images/mid.qcow2 ("../base.raw") <- t.qcow2
     * ("images/mid.qcow2"): names resolve against the image naming them. */
    tu_qemu_sh(
        "rm -rf images && mkdir images && "
        "head -c 14680064 /dev/urandom > base.raw && "
        "$QI create -q -f qcow2 -b ../base.raw -F raw images/mid.qcow2 16M && "
        "$QIO -f qcow2 -c 'write -P 0x44 1M 2M' images/mid.qcow2 && "
        "$QI create -q -f qcow2 -o cluster_size=4k -b images/mid.qcow2 "
        "-F qcow2 t.qcow2 && $QIO -f qcow2 -c 'write -P 0x55 2M 64k' "
        "-c 'write -P 0x66 15M 1M' t.qcow2");
    /* Opened by a relative name from elsewhere, none of the names would
     * resolve against the working directory. */
    char cwd[256], rel[256];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char parent[128];
    snprintf(parent, sizeof(parent), "%s", tu_dir);
    *strrchr(parent, '/') = '\0';
    assert_int_equal(chdir(parent), 0);
    snprintf(rel, sizeof(rel), "%s/t.qcow2", strrchr(tu_dir, '/') + 1);
    struct blockdev *bd = tu_open(rel, BLK_FORMAT_AUTO, true);
    uint8_t b[4];
    assert_int_equal(tu_read(bd, 2 * MiB, b, 4), 0);
    assert_int_equal(b[0], 0x55);
    assert_int_equal(tu_read(bd, 1 * MiB, b, 4), 0);
    assert_int_equal(b[0], 0x44);
    blk_close(bd);
    assert_int_equal(chdir("/"), 0);
    struct icase c = {.name = "chain", .setup = "true", .size = 16 * MiB};
    run_case(&c);
    assert_int_equal(chdir(cwd), 0);
    /* The backing files were only read. */
    tu_qemu_sh("$QI check -q images/mid.qcow2");
}

static void test_deep_chain(void **state)
{
    /* 24 overlays, each writing its own 256 KiB, over a qcow2 base. */
    tu_qemu_sh(
        "rm -f l*.qcow2 && $QI create -q -f qcow2 -o cluster_size=4k l0.qcow2 "
        "8M && for i in $(seq 1 24); do $QI create -q -f qcow2 -b "
        "l$((i-1)).qcow2 -F qcow2 l$i.qcow2 && $QIO -f qcow2 -c \"write -P "
        "$i $((i*262144)) 262144\" l$i.qcow2; done && ln -f l24.qcow2 "
        "t.qcow2");
    struct icase c = {.name = "deep", .setup = "true", .size = 8 * MiB,
                      .requests = 800};
    run_case(&c);
}

static void test_extended_l2(void **state)
{
    static const char *opts[] = {"extended_l2=on",
                                 "extended_l2=on,cluster_size=2M",
                                 "extended_l2=on,cluster_size=16k"};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        /* Subcluster-sized writes leave clusters partly allocated, partly
         * zero, partly backed. */
        char setup_cmd[1024];
        snprintf(setup_cmd, sizeof(setup_cmd),
                 "rm -f t.qcow2 b.raw && head -c 16M /dev/urandom > b.raw && "
                 "$QI create -q -f qcow2 -o %s -b b.raw -F raw t.qcow2 && "
                 "$QIO -f qcow2 -c 'write -P 0x21 4096 2048' -c 'write -P "
                 "0x22 131072 8192' -c 'write -z 200000 100000' -c 'write -P "
                 "0x23 4M 1M' -c 'write -z 6M 1M' t.qcow2",
                 opts[i]);
        struct icase c = {.name = opts[i], .setup = setup_cmd,
                          .size = 16 * MiB};
        run_case(&c);
    }
}

static void test_lazy_refcounts(void **state)
{
    struct icase c = {
        .name = "lazy",
        .setup = "rm -f t.qcow2 && $QI create -q -f qcow2 -o "
                 "lazy_refcounts=on t.qcow2 16M && " QEMU_DATA("t.qcow2"),
        .size = 16 * MiB,
    };
    run_case(&c);
}

static void test_dirty_image_is_repaired(void **state)
{
    /* qemu-io aborts with lazy refcounts in use: the image stays dirty and
     * its refcounts are stale. Opening it for writing repairs it. */
    tu_qemu_sh(
        "rm -f t.qcow2 && $QI create -q -f qcow2 -o lazy_refcounts=on "
        "t.qcow2 16M && ($QIO -f qcow2 -c 'write -P 0x77 0 4M' -c 'write -P "
        "0x78 8M 1M' -c abort t.qcow2 2>/dev/null; true)");
    int dirty = tu_sh("cd '%s' && '%s' check t.qcow2 >/dev/null 2>&1", tu_dir,
                      tu_qemu_img());
    assert_int_not_equal(dirty, 0); /* refcount errors before the repair */
    struct icase c = {.name = "dirty", .setup = "true", .size = 16 * MiB};
    run_case(&c);
}

static void test_internal_snapshot_untouched(void **state)
{
    tu_qemu_sh(
        "rm -f t.qcow2 && $QI create -q -f qcow2 t.qcow2 16M && " QEMU_DATA(
            "t.qcow2") " && $QI snapshot -c first t.qcow2 && $QIO -f qcow2 -c "
                       "'write -P 0x99 1M 4M' t.qcow2 && $QI snapshot -c "
                       "second "
                       "t.qcow2 && $QI convert -O raw -l snapshot.name=first "
                       "t.qcow2 s1.raw && $QI convert -O raw -l "
                       "snapshot.name=second t.qcow2 s2.raw");
    struct icase c = {.name = "snapshot", .setup = "true", .size = 16 * MiB};
    run_case(&c);
    tu_qemu_sh(
        "$QI convert -O raw -l snapshot.name=first t.qcow2 s1.now && cmp "
        "s1.raw s1.now && $QI convert -O raw -l snapshot.name=second "
        "t.qcow2 s2.now && cmp s2.raw s2.now && $QI snapshot -l t.qcow2 | "
        "grep -q second");
}

static void test_preallocated(void **state)
{
    static const char *opts[] = {"preallocation=metadata",
                                 "preallocation=falloc,cluster_size=4k",
                                 "preallocation=full,compat=0.10"};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char setup_cmd[512];
        snprintf(setup_cmd, sizeof(setup_cmd),
                 "rm -f t.qcow2 && $QI create -q -f qcow2 -o %s t.qcow2 16M "
                 "&& $QIO -f qcow2 -c 'write -z 2M 2M' -c 'discard 6M 1M' "
                 "-c 'write -P 0x5a 9M 100k' t.qcow2",
                 opts[i]);
        struct icase c = {.name = opts[i], .setup = setup_cmd,
                          .size = 16 * MiB};
        run_case(&c);
    }
}

/* Images kvmpc makes are images QEMU accepts, and the other way round. */
static void test_img_tools_interop(void **state)
{
    char p[256], b[256];
    tu_path(p, sizeof(p), "k.qcow2");
    tu_path(b, sizeof(b), "kb.raw");
    tu_qemu_sh("head -c 3M /dev/urandom > kb.raw");
    char *argv[] = {"img", "create", "-f", "qcow2", "-o",
                    "cluster_size=4k,compat=0.10", "-b", "kb.raw", p, NULL};
    assert_int_equal(img_main(9, argv), 0);
    tu_qemu_sh(
        "$QI check -q k.qcow2 && $QI info k.qcow2 | grep -q 'virtual size: 3 "
        "MiB' && $QI compare -q k.qcow2 kb.raw");
    tu_qemu_sh(
        "$QI create -q -f qcow2 q.qcow2 1G && $QIO -f qcow2 -c 'write 0 1M' "
        "q.qcow2");
    char q[256];
    tu_path(q, sizeof(q), "q.qcow2");
    char *argv2[] = {"img", "check", q, NULL};
    assert_int_equal(img_main(3, argv2), 0);
    char *argv3[] = {"img", "info", q, NULL};
    assert_int_equal(img_main(3, argv3), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, tu_setup, tu_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_v2_and_v3_cluster_sizes),
        T(test_compressed),
        T(test_backing_chain_relative),
        T(test_deep_chain),
        T(test_extended_l2),
        T(test_lazy_refcounts),
        T(test_dirty_image_is_repaired),
        T(test_internal_snapshot_untouched),
        T(test_preallocated),
        T(test_img_tools_interop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
