/* libFuzzer harness for virtio-blk request handling: the input becomes
 * guest RAM holding the rings and requests, plus the negotiated features.
 * The device must never crash, never touch memory outside guest RAM
 * (ASan), never write the read-only region, and never hand the block
 * layer a request it has not validated (out of range, wrong iov total,
 * write to a read-only disk).
 *
 * Input: byte 0 flags (bit0 modern, bit1 FLUSH, bit2 EVENT_IDX,
 * bit3 INDIRECT_DESC, bit4 DISCARD, bit5 WRITE_ZEROES, bit6 read-only
 * disk, bit7 reset while requests are in flight), byte 1 log2 of the
 * queue size, byte 2 rounds, rest: RAM from gpa 0. The rings use the
 * legacy layout at gpa 0x1000. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/fake_block.h"
#include "virtio/blk.h"

#define RAM_SIZE 0x10000
#define ROM_GPA 0x100000
#define ROM_SIZE 0x1000
#define DISK_SIZE (256 * 1024)
#define RING_PFN 1

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t features_from(uint8_t flags)
{
    static const unsigned bits[] = {
        VIRTIO_F_VERSION_1,      VIRTIO_BLK_F_FLUSH,
        VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_RING_INDIRECT_DESC,
        VIRTIO_BLK_F_DISCARD,    VIRTIO_BLK_F_WRITE_ZEROES,
    };
    uint64_t f = VIRTIO_FEATURE(VIRTIO_BLK_F_BLK_SIZE);
    for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
        if (flags & (1u << i))
            f |= VIRTIO_FEATURE(bits[i]);
    return f;
}

static void driver_init(struct virtio_dev *d, uint8_t flags, uint16_t qsize)
{
    bool modern = flags & 1;
    uint64_t f = features_from(flags) & d->host_features;
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    virtio_dev_lock(d);
    virtio_dev_set_status(d, st, modern);
    if (modern) {
        virtio_dev_set_driver_features(d, 0, (uint32_t)f);
        virtio_dev_set_driver_features(d, 1, (uint32_t)(f >> 32));
        st |= VIRTIO_STATUS_FEATURES_OK;
        virtio_dev_set_status(d, st, modern);
    } else {
        virtio_dev_set_legacy_features(d, (uint32_t)f);
    }
    d->vq[0].size = qsize;
    vq_set_legacy_layout(&d->vq[0], RING_PFN);
    virtio_dev_queue_enable(d, 0);
    virtio_dev_set_status(d, st | VIRTIO_STATUS_DRIVER_OK, modern);
    virtio_dev_unlock(d);
}

static void check_backend(struct blockdev *bd)
{
    if (fake_blk_invalid_count(bd) != 0)
        abort(); /* virtio-blk passed an unchecked request on */
}

static void drain(struct virtio_blk *b, struct blockdev *bd)
{
    for (unsigned i = 0; i < 8 && fake_blk_inflight(bd); i++)
        virtio_blk_handle_completions(b);
    check_backend(bd);
}

static void run(struct guest_mem *mem, uint8_t flags, uint8_t size_log2,
                uint8_t rounds)
{
    struct blockdev *bd = fake_blk_new(DISK_SIZE, flags & 0x40);
    if (!bd)
        abort();
    struct virtio_blk *b;
    struct virtio_blk_opts opts = {.bd = bd, .serial = "fuzz"};
    if (virtio_blk_new(mem, &opts, &b) < 0)
        abort();
    struct virtio_dev *d = virtio_blk_dev(b);
    driver_init(d, flags, (uint16_t)(1u << (size_log2 % 9)));
    for (unsigned r = 0; r <= rounds % 4; r++) {
        virtio_dev_handle_notify(d, 0);
        check_backend(bd);
        if ((flags & 0x80) && r == 0) {
            virtio_dev_lock(d);
            virtio_dev_set_status(d, 0, flags & 1);
            virtio_dev_unlock(d);
            drain(b, bd);
            driver_init(d, flags, (uint16_t)(1u << (size_log2 % 9)));
        }
        virtio_blk_handle_completions(b);
        check_backend(bd);
    }
    drain(b, bd);
    virtio_blk_free(b);
    blk_close(bd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t *ram = calloc(1, RAM_SIZE);
    uint8_t *rom = malloc(ROM_SIZE);
    if (!ram || !rom)
        abort();
    size_t n = size - 3 < RAM_SIZE ? size - 3 : RAM_SIZE;
    memcpy(ram, data + 3, n);
    memset(rom, 0xC3, ROM_SIZE);
    struct guest_mem mem = {0};
    if (gmem_add(&mem, 0, RAM_SIZE, ram, false) < 0 ||
        gmem_add(&mem, ROM_GPA, ROM_SIZE, rom, true) < 0)
        abort();
    run(&mem, data[0], data[1], data[2]);
    for (size_t i = 0; i < ROM_SIZE; i++)
        if (rom[i] != 0xC3)
            abort();
    free(ram);
    free(rom);
    return 0;
}
