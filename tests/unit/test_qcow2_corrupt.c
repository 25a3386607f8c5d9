/* Damaged and hostile qcow2 images: every one must give a clear one-line
 * error at open, or I/O errors on the requests that touch the damage,
 * and never crash or write outside the image's own data clusters. */
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

#define CS 65536ull /* cluster size of the images made here */
#define L1_OFF (3 * CS)

static char img[256];

static int setup(void **state)
{
    tu_mkdir(tu_dir, sizeof(tu_dir));
    snprintf(img, sizeof(img), "%s/c.qcow2", tu_dir);
    return 0;
}

static int teardown(void **state)
{
    tu_rmdir(tu_dir);
    return 0;
}

/* A 16 MiB image holding data in its first 4 MiB (one L2 table). */
static void make_image(const char *opts)
{
    char *argv[] = {"img", "create", "-f", "qcow2", "-o", (char *)opts, img,
                    "16M", NULL};
    assert_int_equal(img_main(8, argv), 0);
    struct blockdev *bd = tu_open(img, BLK_FORMAT_QCOW2, false);
    uint8_t *buf = malloc(4 << 20);
    tu_pattern(buf, 4 << 20, 5);
    assert_int_equal(tu_write(bd, 0, buf, 4 << 20), 0);
    blk_close(bd);
    free(buf);
}

static void poke(uint64_t off, const void *data, size_t len)
{
    int fd = open(img, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void poke_be64(uint64_t off, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    poke(off, b, 8);
}

static void poke_be32(uint64_t off, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    poke(off, b, 4);
}

static uint64_t peek_be64(uint64_t off)
{
    uint8_t b[8];
    int fd = open(img, O_RDONLY);
    assert_int_equal(pread(fd, b, 8, (off_t)off), 8);
    close(fd);
    return get_be64(b);
}

/* The open fails with one line on stderr that contains what. */
static void open_fails(const char *path, bool ro, const char *what)
{
    char log[256];
    snprintf(log, sizeof(log), "%s/stderr.txt", tu_dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    struct blk_open_opts o = {.path = path, .readonly = ro};
    struct blockdev *bd = NULL;
    int r = blk_open(&o, &bd);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    if (r == 0) {
        blk_close(bd);
        fail_msg("%s opened, expected an error about '%s'", path, what);
    }
    char text[512] = {0};
    fd = open(log, O_RDONLY);
    assert_true(read(fd, text, sizeof(text) - 1) > 0);
    close(fd);
    fprintf(stderr, "(expected) %s", text);
    if (!strstr(text, what))
        fail_msg("error '%s' does not mention '%s'", text, what);
    const char *nl = strchr(text, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0'); /* one line */
}

static void test_truncated_header(void **state)
{
    make_image("cluster_size=64k");
    assert_int_equal(truncate(img, 40), 0);
    open_fails(img, true, "too short");
    make_image("cluster_size=64k");
    assert_int_equal(truncate(img, 90), 0); /* v3 needs 104 bytes */
    open_fails(img, true, "truncated");
    make_image("cluster_size=64k");
    assert_int_equal(truncate(img, 2 * CS), 0); /* tables cut off */
    open_fails(img, true, "beyond the end of the file");
    assert_int_equal(truncate(img, 0), 0);
    struct blk_open_opts o = {.path = img, .format = BLK_FORMAT_QCOW2};
    struct blockdev *bd;
    assert_int_equal(blk_open(&o, &bd), -1);
}

static void test_bad_header_fields(void **state)
{
    make_image("cluster_size=64k");
    poke_be32(4, 1);
    open_fails(img, true, "version 1");
    poke_be32(4, 4);
    open_fails(img, true, "version 4");
    poke_be32(4, 3);
    poke_be32(20, 30);
    open_fails(img, true, "cluster size");
    poke_be32(20, 16);
    poke_be32(32, 1);
    open_fails(img, true, "encrypted");
    poke_be32(32, 0);
    poke_be64(72, 1ull << 40);
    open_fails(img, true, "does not support: bit 40");
    poke_be64(72, 1ull << 2);
    open_fails(img, true, "external data file");
    poke_be64(72, 1ull << 3); /* compression type bit without a type */
    open_fails(img, true, "compression type");
    poke_be64(72, 1ull << 1); /* corrupt: read-only is allowed */
    open_fails(img, false, "marked corrupt");
    struct blockdev *bd = tu_open(img, BLK_FORMAT_QCOW2, true);
    blk_close(bd);
    poke_be64(72, 0);
    poke_be32(100, 100); /* header length not a multiple of 8 */
    open_fails(img, true, "header length");
}

static void test_l1_table_beyond_eof(void **state)
{
    make_image("cluster_size=64k");
    poke_be64(40, 1ull << 40);
    open_fails(img, true, "L1 table");
    poke_be64(40, L1_OFF + 8); /* misaligned */
    open_fails(img, true, "L1 table");
    poke_be64(40, L1_OFF);
    poke_be32(36, 0xfffffff0u); /* absurd L1 size */
    open_fails(img, true, "too large");
    poke_be32(36, 0); /* too small for the virtual size */
    open_fails(img, true, "L1 entries");
    poke_be32(36, 1);
    /* An L1 entry pointing outside the file. */
    poke_be64(L1_OFF, (1ull << 40) | (1ull << 63));
    open_fails(img, true, "L1 entry 0");
}

static void test_refcount_structures(void **state)
{
    make_image("cluster_size=64k");
    poke_be32(96, 7); /* 128-bit refcounts */
    open_fails(img, true, "refcount width");
    poke_be32(96, 4);
    poke_be32(56, 0xffffffffu); /* table size overflows */
    open_fails(img, true, "refcount table");
    poke_be32(56, 0);
    open_fails(img, true, "refcount table");
    poke_be32(56, 1);
    poke_be64(48, 1ull << 50);
    open_fails(img, true, "refcount table");
    poke_be64(48, CS);
    poke_be64(CS, 1ull << 45); /* a refcount block outside the file */
    open_fails(img, false, "refcount table entry 0");
}

/* Every free cluster of the first refcount block has its refcount at the
 * maximum: nothing there looks free, new clusters go past the covered
 * range, and qemu-img sees only leaks. */
static void test_refcounts_saturated(void **state)
{
    make_image("cluster_size=64k,refcount_bits=8");
    uint64_t rb = peek_be64(CS);
    uint8_t *blk = malloc(CS);
    int fd = open(img, O_RDONLY);
    assert_int_equal(pread(fd, blk, CS, (off_t)rb), (ssize_t)CS);
    close(fd);
    for (uint64_t i = 0; i < CS; i++)
        if (!blk[i])
            blk[i] = 0xff;
    poke(rb, blk, CS);
    free(blk);
    struct blockdev *bd = tu_open(img, BLK_FORMAT_QCOW2, false);
    uint8_t buf[8192];
    tu_pattern(buf, sizeof(buf), 9);
    assert_int_equal(tu_write(bd, 8 << 20, buf, sizeof(buf)), 0);
    assert_int_equal(tu_flush(bd), 0);
    uint8_t back[8192];
    assert_int_equal(tu_read(bd, 8 << 20, back, sizeof(back)), 0);
    assert_memory_equal(buf, back, sizeof(buf));
    blk_close(bd);
    int r = tu_sh("'%s' check '%s' >/dev/null 2>&1", tu_qemu_img(), img);
    assert_int_equal(r, 3); /* leaks, no errors */
}

/* A cluster whose refcount says 0 although the table uses it: zeroing the
 * guest cluster drops the reference, and the refcount decrement that
 * follows would go below zero. It is refused, the image is declared
 * corrupt, and later writes fail instead of damaging more. */
static void test_refcount_underflow(void **state)
{
    make_image("cluster_size=64k");
    uint64_t l2 = peek_be64(L1_OFF) & 0x00fffffffffffe00ull;
    uint64_t data = peek_be64(l2) & 0x00fffffffffffe00ull;
    uint64_t rb = peek_be64(CS);
    uint8_t zero[2] = {0};
    poke(rb + 2 * (data / CS), zero, 2);
    struct blockdev *bd = tu_open(img, BLK_FORMAT_QCOW2, false);
    assert_int_equal(tu_io(bd, BLK_OP_WRITE_ZEROES, 0, NULL, CS), 0);
    assert_int_equal(tu_flush(bd), 0); /* the decrement is refused here */
    uint8_t buf[512] = {1};
    assert_int_equal(tu_write(bd, 1 << 20, buf, sizeof(buf)), -EIO);
    assert_int_equal(tu_read(bd, 0, buf, sizeof(buf)), 0);
    assert_int_equal(buf[0], 0);
    blk_close(bd);
}

static void test_l2_entries_into_metadata(void **state)
{
    make_image("cluster_size=64k");
    uint64_t l2 = peek_be64(L1_OFF) & 0x00fffffffffffe00ull;
    /* Guest cluster 0 -> the header; cluster 1 -> the L1 table; cluster 2
     * -> the L2 table itself. Writing them must not damage the image. */
    poke_be64(l2, 0 | (1ull << 63) | 0); /* offset 0 + copied: malformed */
    poke_be64(l2 + 8, L1_OFF | (1ull << 63));
    poke_be64(l2 + 16, l2 | (1ull << 63));
    uint8_t hdr_before[4096], hdr_after[4096];
    int fd = open(img, O_RDONLY);
    assert_int_equal(pread(fd, hdr_before, sizeof(hdr_before), 0), 4096);
    close(fd);
    uint8_t buf[4096];
    memset(buf, 0xee, sizeof(buf));
    /* Each open starts afresh: a corruption found refuses later writes. */
    struct blockdev *bd = tu_open(img, BLK_FORMAT_QCOW2, false);
    assert_int_equal(tu_write(bd, CS, buf, 512), -EIO);
    blk_close(bd);
    bd = tu_open(img, BLK_FORMAT_QCOW2, false);
    assert_int_equal(tu_write(bd, 2 * CS + 100, buf, 512), -EIO);
    blk_close(bd);
    bd = tu_open(img, BLK_FORMAT_QCOW2, false);
    assert_int_equal(tu_read(bd, 0, buf, 512), -EIO);
    assert_int_equal(tu_write(bd, 0, buf, 512), -EIO);
    blk_close(bd);
    fd = open(img, O_RDONLY);
    assert_int_equal(pread(fd, hdr_after, sizeof(hdr_after), 0), 4096);
    close(fd);
    assert_memory_equal(hdr_before, hdr_after, sizeof(hdr_before));
    assert_int_equal(peek_be64(l2 + 16), l2 | (1ull << 63));
    /* An L1 entry naming the refcount table as an L2 table. */
    make_image("cluster_size=64k");
    poke_be64(L1_OFF, CS | (1ull << 63));
    bd = tu_open(img, BLK_FORMAT_QCOW2, false);
    assert_int_equal(tu_read(bd, 0, buf, 512), -EIO);
    assert_int_equal(tu_write(bd, 0, buf, 512), -EIO);
    blk_close(bd);
    assert_int_equal(peek_be64(CS) & 0x1ff, 0); /* untouched */
}

static void test_l2_entries_beyond_eof(void **state)
{
    make_image("cluster_size=64k");
    uint64_t l2 = peek_be64(L1_OFF) & 0x00fffffffffffe00ull;
    poke_be64(l2, (1ull << 44) | (1ull << 63));
    poke_be64(l2 + 8, (1ull << 62) | (1ull << 44)); /* compressed */
    poke_be64(l2 + 16, 0x300 | (1ull << 63));       /* misaligned */
    poke_be64(l2 + 24, (5 * CS) | (1ull << 63) | (1ull << 60)); /* reserved */
    poke_be64(l2 + 32, (1ull << 62) | (5 * CS)); /* compressed garbage */
    struct blockdev *bd = tu_open(img, BLK_FORMAT_QCOW2, true);
    uint8_t buf[4096];
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_read(bd, (uint64_t)i * CS, buf, sizeof(buf)),
                         -EIO);
    assert_int_equal(tu_read(bd, 5 * CS, buf, sizeof(buf)), 0);
    blk_close(bd);
}

static void test_backing_loops_and_missing(void **state)
{
    char a[256], b[256];
    snprintf(a, sizeof(a), "%s/a.qcow2", tu_dir);
    snprintf(b, sizeof(b), "%s/b.qcow2", tu_dir);
    assert_int_equal(tu_sh("cd %s && %s create -q -f qcow2 b.qcow2 1M && "
                           "%s create -q -f qcow2 -b b.qcow2 -F qcow2 a.qcow2 "
                           "&& %s rebase -u -b a.qcow2 -F qcow2 b.qcow2",
                           tu_dir, tu_qemu_img(), tu_qemu_img(), tu_qemu_img()),
                     0);
    open_fails(a, true, "loop");
    open_fails(b, false, "loop");
    /* A -> A */
    assert_int_equal(tu_sh("cd %s && %s rebase -u -b a.qcow2 -F qcow2 a.qcow2",
                           tu_dir, tu_qemu_img()),
                     0);
    open_fails(a, true, "loop");
    /* Missing backing file, and an unsupported backing format. */
    assert_int_equal(tu_sh("cd %s && %s rebase -u -b gone.qcow2 -F qcow2 "
                           "a.qcow2",
                           tu_dir, tu_qemu_img()),
                     0);
    open_fails(a, true, "gone.qcow2");
    assert_int_equal(tu_sh("cd %s && %s rebase -u -b b.qcow2 -F vmdk "
                           "a.qcow2",
                           tu_dir, tu_qemu_img()),
                     0);
    open_fails(a, true, "backing file format");
}

static void test_huge_virtual_size(void **state)
{
    make_image("cluster_size=64k");
    poke_be64(24, UINT64_MAX);
    open_fails(img, true, "L1 entries");
    poke_be64(24, 1ull << 62);
    open_fails(img, true, "L1 entries");
    char big[256];
    snprintf(big, sizeof(big), "%s/big.qcow2", tu_dir);
    char *argv[] = {"img", "create", "-f", "qcow2", "-o", "cluster_size=512",
                    big, "4T", NULL};
    assert_int_equal(img_main(8, argv), 1);
    char *argv2[] = {"img", "create", "-f", "qcow2", big, "16E", NULL};
    assert_int_equal(img_main(6, argv2), 1);
    /* The largest the format allows with 2 MiB clusters is fine. */
    char *argv3[] = {"img", "create", "-f", "qcow2", "-o", "cluster_size=2M",
                     big, "1P", NULL};
    assert_int_equal(img_main(8, argv3), 0);
    struct blockdev *bd = tu_open(big, BLK_FORMAT_QCOW2, false);
    uint8_t buf[512] = {7};
    assert_int_equal(tu_write(bd, (1ull << 50) - 512, buf, 512), 0);
    assert_int_equal(tu_read(bd, (1ull << 50) - 512, buf, 512), 0);
    assert_int_equal(buf[0], 7);
    blk_close(bd);
    assert_int_equal(tu_sh("'%s' check -q '%s'", tu_qemu_img(), big), 0);
}

static void test_snapshot_table(void **state)
{
    make_image("cluster_size=64k");
    poke_be32(60, 100000);
    poke_be64(64, 4 * CS);
    open_fails(img, true, "snapshot");
    poke_be32(60, 1);
    poke_be64(64, 1ull << 40);
    open_fails(img, true, "snapshot");
    poke_be64(64, 4 * CS); /* an entry that claims a huge L1 table */
    uint8_t entry[48] = {0};
    poke(4 * CS, entry, sizeof(entry));
    poke_be64(4 * CS, 5 * CS);
    poke_be32(4 * CS + 8, 0x10000000);
    open_fails(img, true, "snapshot 0");
}

/* Random damage to the metadata clusters: opening, reading, writing and
 * closing must never crash (the sanitizer build makes this strict). */
static void test_random_damage(void **state)
{
    uint64_t s = 12345;
    for (int round = 0; round < 150; round++) {
        make_image(round % 2 ? "cluster_size=4k" : "cluster_size=64k");
        uint64_t cs = round % 2 ? 4096 : CS;
        for (int k = 0; k < 1 + round % 6; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            uint64_t off = (s >> 8) % (5 * cs);
            uint8_t v = (uint8_t)s;
            poke(off, &v, 1);
        }
        fflush(stderr);
        int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        struct blk_open_opts o = {.path = img, .format = BLK_FORMAT_QCOW2};
        struct blockdev *bd;
        if (blk_open(&o, &bd) == 0) {
            uint8_t buf[8192];
            uint64_t size = blk_size(bd);
            for (int i = 0; i < 8 && size >= sizeof(buf); i++) {
                uint64_t off = ((s >> 3) * (i + 1)) % (size - sizeof(buf));
                tu_read(bd, off, buf, sizeof(buf));
                tu_write(bd, off ^ 4096, buf, sizeof(buf) / 2);
            }
            tu_io(bd, BLK_OP_WRITE_ZEROES, 0, NULL, MIN(size, 1 << 20));
            tu_flush(bd);
            blk_close(bd);
        }
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        close(devnull);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_truncated_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_header_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_l1_table_beyond_eof, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refcount_structures, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refcounts_saturated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refcount_underflow, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_l2_entries_into_metadata, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_l2_entries_beyond_eof, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_backing_loops_and_missing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_huge_virtual_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_damage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
