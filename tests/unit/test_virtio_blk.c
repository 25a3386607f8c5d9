#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fake_block.h"
#include "virtio/blk.h"
#include "vring_driver.h"

#define RAM_SIZE 0x100000
#define DISK_SIZE (64 * 1024)
#define DISK_SECTORS (DISK_SIZE / 512)
#define QSIZE 16
#define RING 0x1000
#define HDR 0x20000   /* request headers, 16 bytes apart */
#define STATUS 0x30000 /* status bytes, one per slot */
#define DATA 0x40000  /* data buffers, 0x2000 apart */

static uint8_t ram[RAM_SIZE];

struct fixture {
    struct guest_mem mem;
    struct blockdev *bd;
    struct virtio_blk *blk;
    struct virtio_dev *dev;
    struct test_ring tr;
    uint16_t next_desc;
    uint64_t irq_mask;
    unsigned irq_count;
    unsigned kicks;
};

static void on_interrupt(void *opaque, uint64_t mask)
{
    struct fixture *f = opaque;
    f->irq_mask |= mask;
    f->irq_count++;
}

static void on_kick(void *opaque, unsigned q)
{
    struct fixture *f = opaque;
    f->kicks++;
}

static const struct virtio_transport_ops transport = {
    .interrupt = on_interrupt,
    .kick = on_kick,
};

static struct fixture fx;

static void make_device(struct fixture *f, bool readonly, const char *serial)
{
    memset(f, 0, sizeof(*f));
    memset(ram, 0, sizeof(ram));
    assert_int_equal(gmem_add(&f->mem, 0, RAM_SIZE, ram, false), 0);
    f->bd = fake_blk_new(DISK_SIZE, readonly);
    assert_non_null(f->bd);
    struct virtio_blk_opts opts = {.bd = f->bd, .serial = serial,
                                   .queue_size = QSIZE};
    assert_int_equal(virtio_blk_new(&f->mem, &opts, &f->blk), 0);
    f->dev = virtio_blk_dev(f->blk);
    virtio_dev_set_transport(f->dev, &transport, f);
    tr_init(&f->tr, ram, RING, QSIZE);
}

static int setup(void **state)
{
    make_device(&fx, false, "kvmpc-disk-0");
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    virtio_blk_free(f->blk);
    blk_close(f->bd);
    return 0;
}

/* The driver side of initialisation, through the core API. */
static void driver_init(struct fixture *f, uint64_t features, bool modern)
{
    virtio_dev_lock(f->dev);
    virtio_dev_set_status(f->dev, 0, modern);
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_ACKNOWLEDGE, modern);
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_ACKNOWLEDGE |
                                      VIRTIO_STATUS_DRIVER, modern);
    if (modern) {
        virtio_dev_set_driver_features(f->dev, 0, (uint32_t)features);
        virtio_dev_set_driver_features(f->dev, 1,
                                       (uint32_t)(features >> 32));
        virtio_dev_set_status(f->dev, VIRTIO_STATUS_ACKNOWLEDGE |
                                          VIRTIO_STATUS_DRIVER |
                                          VIRTIO_STATUS_FEATURES_OK, true);
        assert_true(virtio_dev_get_status(f->dev) &
                    VIRTIO_STATUS_FEATURES_OK);
    } else {
        virtio_dev_set_legacy_features(f->dev, (uint32_t)features);
    }
    struct virtqueue *vq = &f->dev->vq[0];
    vq->size = QSIZE;
    vq->desc_gpa = f->tr.desc;
    vq->avail_gpa = f->tr.avail;
    vq->used_gpa = f->tr.used;
    assert_int_equal(virtio_dev_queue_enable(f->dev, 0), 0);
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_ACKNOWLEDGE |
                                      VIRTIO_STATUS_DRIVER |
                                      VIRTIO_STATUS_FEATURES_OK |
                                      VIRTIO_STATUS_DRIVER_OK, modern);
    virtio_dev_unlock(f->dev);
}

#define MODERN_FEATURES                                                        \
    (VIRTIO_FEATURE(VIRTIO_F_VERSION_1) |                                      \
     VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH) |                                      \
     VIRTIO_FEATURE(VIRTIO_BLK_F_DISCARD) |                                    \
     VIRTIO_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES))

static uint16_t alloc_desc(struct fixture *f)
{
    uint16_t d = f->next_desc;
    f->next_desc = (uint16_t)((f->next_desc + 1) % QSIZE);
    return d;
}

/* Queues a request of header + data + status as three descriptors.
 * Returns the slot number (status byte at STATUS + slot). */
static unsigned queue_request(struct fixture *f, uint32_t type,
                              uint64_t sector, uint64_t data, uint32_t len,
                              bool data_writable)
{
    static unsigned slot;
    slot = (slot + 1) % 64;
    uint64_t hdr = HDR + 16 * slot;
    put_le32(ram + hdr, type);
    put_le32(ram + hdr + 4, 0);
    put_le64(ram + hdr + 8, sector);
    ram[STATUS + slot] = 0xFF;
    uint16_t d0 = alloc_desc(f), d1 = alloc_desc(f), d2 = alloc_desc(f);
    if (len) {
        tr_desc(&f->tr, d0, hdr, 16, VQ_DESC_F_NEXT, d1);
        tr_desc(&f->tr, d1, data, len,
                VQ_DESC_F_NEXT | (data_writable ? VQ_DESC_F_WRITE : 0), d2);
    } else {
        tr_desc(&f->tr, d0, hdr, 16, VQ_DESC_F_NEXT, d2);
    }
    tr_desc(&f->tr, d2, STATUS + slot, 1, VQ_DESC_F_WRITE, 0);
    tr_publish(&f->tr, d0);
    return slot;
}

static void notify(struct fixture *f)
{
    virtio_dev_handle_notify(f->dev, 0);
}

static void complete(struct fixture *f)
{
    virtio_blk_handle_completions(f->blk);
}

static uint8_t run_request(struct fixture *f, uint32_t type, uint64_t sector,
                           uint64_t data, uint32_t len, bool writable)
{
    unsigned slot = queue_request(f, type, sector, data, len, writable);
    notify(f);
    complete(f);
    complete(f); /* follow-up flushes */
    return ram[STATUS + slot];
}

static uint32_t last_used_len(struct fixture *f)
{
    uint32_t id, len;
    tr_used_elem(&f->tr, (uint16_t)(tr_used_idx(&f->tr) - 1), &id, &len);
    return len;
}

/* ---- configuration and features ------------------------------------- */

static void test_config_space(void **state)
{
    struct fixture *f = *state;
    uint8_t cfg[VIRTIO_BLK_CFG_LEN];
    virtio_dev_config_read(f->dev, 0, cfg, sizeof(cfg));
    assert_int_equal(get_le64(cfg + VIRTIO_BLK_CFG_CAPACITY), DISK_SECTORS);
    assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_BLK_SIZE), 512);
    assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_SEG_MAX), QSIZE - 2);
    assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_SIZE_MAX),
                     VIRTIO_BLK_SIZE_MAX);
    assert_int_equal(get_le16(cfg + VIRTIO_BLK_CFG_CYLINDERS), 2);
    assert_int_equal(cfg[VIRTIO_BLK_CFG_HEADS], 16);
    assert_int_equal(cfg[VIRTIO_BLK_CFG_SECTORS], 63);
    assert_int_equal(get_le16(cfg + VIRTIO_BLK_CFG_NUM_QUEUES), 1);
    assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG), 1);
    assert_int_equal(get_le32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SEG), 1);
    /* Past the end reads as zero. */
    uint32_t beyond = 0xFFFFFFFF;
    virtio_dev_config_read(f->dev, VIRTIO_BLK_CFG_LEN, &beyond, 4);
    assert_int_equal(beyond, 0);
    /* Read-only configuration ignores writes. */
    uint32_t junk = 0x12345678;
    virtio_dev_config_write(f->dev, VIRTIO_BLK_CFG_BLK_SIZE, &junk, 4);
    virtio_dev_config_read(f->dev, VIRTIO_BLK_CFG_BLK_SIZE, &junk, 4);
    assert_int_equal(junk, 512);
}

static void test_offered_features(void **state)
{
    struct fixture *f = *state;
    uint64_t hf = virtio_dev_host_features(f->dev, 0) |
                  (uint64_t)virtio_dev_host_features(f->dev, 1) << 32;
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_F_RING_EVENT_IDX));
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_F_RING_INDIRECT_DESC));
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_BLK_SIZE));
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_SEG_MAX));
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH));
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_DISCARD));
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES));
    assert_false(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_RO));
    assert_false(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_MQ));
    assert_int_equal(virtio_dev_host_features(f->dev, 2), 0);
}

static void test_unoffered_feature_refused(void **state)
{
    struct fixture *f = *state;
    virtio_dev_lock(f->dev);
    virtio_dev_set_driver_features(f->dev, 0, 1u << VIRTIO_BLK_F_MQ);
    virtio_dev_set_driver_features(f->dev, 1, 1); /* VERSION_1 */
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_ACKNOWLEDGE |
                                      VIRTIO_STATUS_DRIVER |
                                      VIRTIO_STATUS_FEATURES_OK, true);
    assert_false(virtio_dev_get_status(f->dev) & VIRTIO_STATUS_FEATURES_OK);
    virtio_dev_unlock(f->dev);
}

static void test_modern_without_version_1_refused(void **state)
{
    struct fixture *f = *state;
    virtio_dev_lock(f->dev);
    virtio_dev_set_driver_features(f->dev, 0, 1u << VIRTIO_BLK_F_FLUSH);
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_FEATURES_OK, true);
    assert_int_equal(virtio_dev_get_status(f->dev), 0);
    virtio_dev_unlock(f->dev);
}

static void test_readonly_disk_features(void **state)
{
    struct fixture *f = *state;
    teardown(state);
    make_device(f, true, NULL);
    uint64_t hf = virtio_dev_host_features(f->dev, 0);
    assert_true(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_RO));
    assert_false(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_DISCARD));
    assert_false(hf & VIRTIO_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES));
}

/* ---- requests ------------------------------------------------------------- */

static void test_read(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    uint8_t *disk = fake_blk_data(f->bd);
    for (unsigned i = 0; i < 1024; i++)
        disk[512 * 3 + i] = (uint8_t)(i * 7);
    unsigned slot = queue_request(f, VIRTIO_BLK_T_IN, 3, DATA, 1024, true);
    notify(f);
    /* Submitted, not complete: nothing visible to the guest yet. */
    assert_int_equal(fake_blk_inflight(f->bd), 1);
    assert_int_equal(tr_used_idx(&f->tr), 0);
    assert_int_equal(ram[STATUS + slot], 0xFF);
    complete(f);
    assert_int_equal(ram[STATUS + slot], VIRTIO_BLK_S_OK);
    assert_int_equal(tr_used_idx(&f->tr), 1);
    assert_int_equal(last_used_len(f), 1025);
    assert_memory_equal(ram + DATA, disk + 512 * 3, 1024);
    assert_true(f->irq_mask & 1);
}

static void test_write_with_flush_negotiated(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    memset(ram + DATA, 0x5A, 512);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_OUT, 5, DATA, 512, false),
                     VIRTIO_BLK_S_OK);
    assert_memory_equal(fake_blk_data(f->bd) + 5 * 512, ram + DATA, 512);
    assert_int_equal(fake_blk_log_count(f->bd), 1);
    assert_int_equal(fake_blk_log(f->bd, 0)->op, BLK_OP_WRITE);
    assert_int_equal(fake_blk_log(f->bd, 0)->offset, 5 * 512);
    assert_int_equal(last_used_len(f), 1);
}

static void test_write_through_without_flush_feature(void **state)
{
    struct fixture *f = *state;
    driver_init(f, VIRTIO_FEATURE(VIRTIO_F_VERSION_1), true);
    unsigned slot = queue_request(f, VIRTIO_BLK_T_OUT, 0, DATA, 512, false);
    notify(f);
    complete(f); /* the write completes, the flush is queued */
    assert_int_equal(ram[STATUS + slot], 0xFF);
    assert_int_equal(tr_used_idx(&f->tr), 0);
    complete(f);
    assert_int_equal(ram[STATUS + slot], VIRTIO_BLK_S_OK);
    assert_int_equal(fake_blk_log_count(f->bd), 2);
    assert_int_equal(fake_blk_log(f->bd, 0)->op, BLK_OP_WRITE);
    assert_int_equal(fake_blk_log(f->bd, 1)->op, BLK_OP_FLUSH);
}

static void test_flush(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    unsigned slot = queue_request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
    notify(f);
    assert_int_equal(ram[STATUS + slot], 0xFF);
    complete(f);
    assert_int_equal(ram[STATUS + slot], VIRTIO_BLK_S_OK);
    assert_int_equal(fake_blk_log(f->bd, 0)->op, BLK_OP_FLUSH);
}

static void test_get_id(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    memset(ram + DATA, 0xEE, 32);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, true),
                     VIRTIO_BLK_S_OK);
    uint8_t expect[20] = "kvmpc-disk-0";
    assert_memory_equal(ram + DATA, expect, 20);
    assert_int_equal(ram[DATA + 20], 0xEE);
    assert_int_equal(last_used_len(f), 21);
    assert_int_equal(fake_blk_log_count(f->bd), 0);
}

static void test_get_id_short_buffer(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    memset(ram + DATA, 0xEE, 32);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_GET_ID, 0, DATA, 5, true),
                     VIRTIO_BLK_S_OK);
    assert_memory_equal(ram + DATA, "kvmpc", 5);
    assert_int_equal(ram[DATA + 5], 0xEE);
}

static void test_out_of_bounds(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, DATA,
                                 1024, true),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_OUT, DISK_SECTORS, DATA, 512,
                                 false),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, UINT64_MAX / 256, DATA,
                                 512, true),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(fake_blk_submit_count(f->bd), 0);
    /* The last sector itself is fine. */
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, DATA,
                                 512, true),
                     VIRTIO_BLK_S_OK);
}

static void test_partial_sector_length(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, 0, DATA, 100, true),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_OUT, 0, DATA, 513, false),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(fake_blk_submit_count(f->bd), 0);
}

static void test_readonly_write_fails(void **state)
{
    struct fixture *f = *state;
    teardown(state);
    make_device(f, true, NULL);
    driver_init(f, VIRTIO_FEATURE(VIRTIO_F_VERSION_1) |
                       VIRTIO_FEATURE(VIRTIO_BLK_F_RO),
                true);
    memset(ram + DATA, 0x77, 512);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_OUT, 0, DATA, 512, false),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(fake_blk_data(f->bd)[0], 0);
    assert_int_equal(fake_blk_submit_count(f->bd), 0);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false),
                     VIRTIO_BLK_S_UNSUPP);
}

static void put_segment(uint64_t gpa, uint64_t sector, uint32_t count,
                        uint32_t flags)
{
    put_le64(ram + gpa, sector);
    put_le32(ram + gpa + 8, count);
    put_le32(ram + gpa + 12, flags);
}

static void test_discard(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    memset(fake_blk_data(f->bd) + 8 * 512, 0xAA, 16 * 512);
    put_segment(DATA, 8, 16, 0);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false),
                     VIRTIO_BLK_S_OK);
    const struct fake_blk_op *op = fake_blk_log(f->bd, 0);
    assert_int_equal(op->op, BLK_OP_DISCARD);
    assert_int_equal(op->offset, 8 * 512);
    assert_int_equal(op->len, 16 * 512);
    /* UNMAP is not a discard flag. */
    put_segment(DATA, 8, 16, VIRTIO_BLK_WZ_F_UNMAP);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false),
                     VIRTIO_BLK_S_UNSUPP);
    put_segment(DATA, DISK_SECTORS - 1, 2, 0);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false),
                     VIRTIO_BLK_S_IOERR);
    /* Two segments: more than max_discard_seg. */
    put_segment(DATA + 16, 0, 1, 0);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 32, false),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 8, false),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(fake_blk_submit_count(f->bd), 1);
}

static void test_write_zeroes(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    memset(fake_blk_data(f->bd), 0xAA, DISK_SIZE);
    put_segment(DATA, 4, 2, VIRTIO_BLK_WZ_F_UNMAP);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16,
                                 false),
                     VIRTIO_BLK_S_OK);
    uint8_t zero[1024] = {0};
    assert_memory_equal(fake_blk_data(f->bd) + 4 * 512, zero, 1024);
    assert_int_equal(fake_blk_data(f->bd)[6 * 512], 0xAA);
    assert_int_equal(fake_blk_log(f->bd, 0)->op, BLK_OP_WRITE_ZEROES);
    put_segment(DATA, 4, 2, 0x2);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16,
                                 false),
                     VIRTIO_BLK_S_UNSUPP);
}

static void test_discard_not_negotiated(void **state)
{
    struct fixture *f = *state;
    driver_init(f, VIRTIO_FEATURE(VIRTIO_F_VERSION_1), true);
    put_segment(DATA, 0, 1, 0);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 16,
                                 false),
                     VIRTIO_BLK_S_UNSUPP);
}

static void test_unsupported_type(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    assert_int_equal(run_request(f, 2 /* SCSI */, 0, DATA, 64, false),
                     VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(run_request(f, 0x80000001, 0, DATA, 512, false),
                     VIRTIO_BLK_S_UNSUPP);
}

static void test_backend_errors(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    fake_blk_fail_next(f->bd, 1, -EIO);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(last_used_len(f), 1);
    fake_blk_fail_next(f->bd, 1, -EOPNOTSUPP);
    put_segment(DATA, 0, 1, 0);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_DISCARD, 0, DATA, 16, false),
                     VIRTIO_BLK_S_UNSUPP);
}

static void test_split_data_is_zero_copy(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    memset(fake_blk_data(f->bd), 0x3C, 1536);
    /* Header and the first data bytes share a descriptor; data spans three
     * buffers; the status byte shares the last one. */
    uint64_t hdr = HDR;
    put_le32(ram + hdr, VIRTIO_BLK_T_IN);
    put_le64(ram + hdr + 8, 0);
    tr_desc(&f->tr, 0, hdr, 16, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, DATA, 1000, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, 2);
    tr_desc(&f->tr, 2, DATA + 0x2000, 500, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE,
            3);
    tr_desc(&f->tr, 3, DATA + 0x4000, 37, VQ_DESC_F_WRITE, 0);
    ram[DATA + 0x4000 + 36] = 0xFF;
    tr_publish(&f->tr, 0);
    notify(f);
    complete(f);
    assert_int_equal(ram[DATA + 0x4000 + 36], VIRTIO_BLK_S_OK);
    assert_int_equal(fake_blk_log(f->bd, 0)->iovcnt, 3);
    assert_int_equal(fake_blk_log(f->bd, 0)->len, 1536);
    assert_int_equal(ram[DATA + 999], 0x3C);
    assert_int_equal(ram[DATA + 0x2000 + 499], 0x3C);
    assert_int_equal(ram[DATA + 0x4000 + 35], 0x3C);
}

static void test_many_requests_in_flight(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    unsigned slots[5];
    for (unsigned i = 0; i < 5; i++)
        slots[i] = queue_request(f, VIRTIO_BLK_T_IN, i, DATA + 0x2000 * i,
                                 512, true);
    notify(f);
    assert_int_equal(fake_blk_inflight(f->bd), 5);
    f->irq_count = 0;
    complete(f);
    assert_int_equal(tr_used_idx(&f->tr), 5);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(ram[STATUS + slots[i]], VIRTIO_BLK_S_OK);
    assert_int_equal(f->irq_count, 1); /* one interrupt for the batch */
}

static void test_busy_slots_stall_then_resume(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    /* A guest may list one head many times; each takes a request slot. */
    put_le32(ram + HDR, VIRTIO_BLK_T_IN);
    tr_desc(&f->tr, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, DATA, 512, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, 2);
    tr_desc(&f->tr, 2, STATUS, 1, VQ_DESC_F_WRITE, 0);
    for (unsigned i = 0; i < QSIZE; i++)
        tr_publish(&f->tr, 0);
    notify(f);
    assert_int_equal(fake_blk_inflight(f->bd), QSIZE);
    for (unsigned i = 0; i < 3; i++)
        tr_publish(&f->tr, 0);
    notify(f); /* no free slot */
    assert_int_equal(fake_blk_inflight(f->bd), QSIZE);
    complete(f); /* frees slots and resumes the queue */
    assert_int_equal(tr_used_idx(&f->tr), QSIZE);
    assert_int_equal(fake_blk_inflight(f->bd), 3);
    complete(f);
    assert_int_equal(tr_used_idx(&f->tr), QSIZE + 3);
}

/* ---- protocol violations ---------------------------------------------------- */

static void test_malformed_chain_needs_reset(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    tr_desc(&f->tr, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, HDR, 16, VQ_DESC_F_NEXT, 0); /* loop */
    tr_publish(&f->tr, 0);
    f->irq_mask = 0;
    notify(f);
    assert_true(virtio_dev_get_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET);
    assert_true(f->irq_mask & VIRTIO_IRQ_CONFIG);
    assert_int_equal(tr_used_idx(&f->tr), 0);
    /* Further notifications are ignored until the driver resets. */
    queue_request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true);
    notify(f);
    assert_int_equal(fake_blk_log_count(f->bd), 0);
    /* The driver cannot clear NEEDS_RESET, only reset. */
    virtio_dev_lock(f->dev);
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_DRIVER_OK, true);
    assert_true(virtio_dev_get_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET);
    virtio_dev_set_status(f->dev, 0, true);
    assert_int_equal(virtio_dev_get_status(f->dev), 0);
    virtio_dev_unlock(f->dev);
}

static void test_request_without_status_needs_reset(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    put_le32(ram + HDR, VIRTIO_BLK_T_IN);
    tr_desc(&f->tr, 0, HDR, 16, 0, 0);
    tr_publish(&f->tr, 0);
    notify(f);
    assert_true(virtio_dev_get_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_short_header_needs_reset(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    tr_desc(&f->tr, 0, HDR, 8, VQ_DESC_F_NEXT, 1);
    tr_desc(&f->tr, 1, STATUS, 1, VQ_DESC_F_WRITE, 0);
    tr_publish(&f->tr, 0);
    notify(f);
    assert_true(virtio_dev_get_status(f->dev) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_modern_waits_for_driver_ok(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    virtio_dev_lock(f->dev);
    virtio_dev_set_status(f->dev, 0, true);
    virtio_dev_set_driver_features(f->dev, 1, 1);
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_FEATURES_OK, true);
    f->dev->vq[0].desc_gpa = f->tr.desc;
    f->dev->vq[0].avail_gpa = f->tr.avail;
    f->dev->vq[0].used_gpa = f->tr.used;
    assert_int_equal(virtio_dev_queue_enable(f->dev, 0), 0);
    virtio_dev_unlock(f->dev);
    tr_init(&f->tr, ram, RING, QSIZE);
    queue_request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true);
    notify(f);
    assert_int_equal(fake_blk_inflight(f->bd), 0);
    /* DRIVER_OK asks the I/O thread to look at the queue. */
    f->kicks = 0;
    virtio_dev_lock(f->dev);
    virtio_dev_set_status(f->dev, VIRTIO_STATUS_FEATURES_OK |
                                      VIRTIO_STATUS_DRIVER_OK, true);
    virtio_dev_unlock(f->dev);
    assert_int_equal(f->kicks, 1);
    notify(f);
    assert_int_equal(fake_blk_inflight(f->bd), 1);
}

static void test_legacy_driver(void **state)
{
    struct fixture *f = *state;
    driver_init(f, VIRTIO_FEATURE(VIRTIO_BLK_F_BLK_SIZE) |
                       VIRTIO_FEATURE(VIRTIO_F_VERSION_1),
                false);
    /* The legacy interface cannot accept VERSION_1. */
    assert_false(virtio_dev_is_modern(f->dev));
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true),
                     VIRTIO_BLK_S_OK);
}

static void test_reset_with_requests_in_flight(void **state)
{
    struct fixture *f = *state;
    driver_init(f, MODERN_FEATURES, true);
    memset(fake_blk_data(f->bd), 0x11, 512);
    unsigned slot = queue_request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true);
    notify(f);
    virtio_dev_lock(f->dev);
    virtio_dev_set_status(f->dev, 0, true);
    /* Not complete while the old request is in flight. */
    assert_int_not_equal(virtio_dev_get_status(f->dev), 0);
    assert_false(f->dev->vq[0].ready);
    virtio_dev_unlock(f->dev);
    complete(f);
    assert_int_equal(virtio_dev_get_status(f->dev), 0);
    /* The stale completion touched neither the used ring nor the status. */
    assert_int_equal(tr_used_idx(&f->tr), 0);
    assert_int_equal(ram[STATUS + slot], 0xFF);
    /* The device works again after re-initialisation. */
    tr_init(&f->tr, ram, RING, QSIZE);
    f->next_desc = 0;
    driver_init(f, MODERN_FEATURES, true);
    assert_int_equal(run_request(f, VIRTIO_BLK_T_IN, 0, DATA, 512, true),
                     VIRTIO_BLK_S_OK);
}

static void test_bad_options(void **state)
{
    struct fixture *f = *state;
    struct virtio_blk *b;
    struct virtio_blk_opts opts = {.bd = f->bd, .queue_size = 512};
    assert_int_equal(virtio_blk_new(&f->mem, &opts, &b), -1);
    opts.queue_size = 24;
    assert_int_equal(virtio_blk_new(&f->mem, &opts, &b), -1);
    opts = (struct virtio_blk_opts){.bd = f->bd, .num_queues = 17};
    assert_int_equal(virtio_blk_new(&f->mem, &opts, &b), -1);
    opts = (struct virtio_blk_opts){.bd = f->bd,
                                    .serial = "123456789012345678901"};
    assert_int_equal(virtio_blk_new(&f->mem, &opts, &b), -1);
    opts = (struct virtio_blk_opts){.bd = f->bd, .num_queues = 4};
    assert_int_equal(virtio_blk_new(&f->mem, &opts, &b), 0);
    struct virtio_dev *d = virtio_blk_dev(b);
    assert_true(virtio_dev_host_features(d, 0) &
                VIRTIO_FEATURE(VIRTIO_BLK_F_MQ));
    assert_int_equal(d->num_queues, 4);
    assert_int_equal(get_le16(d->config + VIRTIO_BLK_CFG_NUM_QUEUES), 4);
    assert_int_equal(d->vq[0].max_size, 256);
    virtio_blk_free(b);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_space),
        T(test_offered_features),
        T(test_unoffered_feature_refused),
        T(test_modern_without_version_1_refused),
        T(test_readonly_disk_features),
        T(test_read),
        T(test_write_with_flush_negotiated),
        T(test_write_through_without_flush_feature),
        T(test_flush),
        T(test_get_id),
        T(test_get_id_short_buffer),
        T(test_out_of_bounds),
        T(test_partial_sector_length),
        T(test_readonly_write_fails),
        T(test_discard),
        T(test_write_zeroes),
        T(test_discard_not_negotiated),
        T(test_unsupported_type),
        T(test_backend_errors),
        T(test_split_data_is_zero_copy),
        T(test_many_requests_in_flight),
        T(test_busy_slots_stall_then_resume),
        T(test_malformed_chain_needs_reset),
        T(test_request_without_status_needs_reset),
        T(test_short_header_needs_reset),
        T(test_modern_waits_for_driver_ok),
        T(test_legacy_driver),
        T(test_reset_with_requests_in_flight),
        T(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
