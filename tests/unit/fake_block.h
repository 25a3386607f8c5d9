/* An in-memory block device implementing src/block/block.h for tests and
 * fuzzers that exercise virtio-blk without the real block layer.
 * Requests complete only in blk_poll(), after blk_kick(), so tests see
 * real asynchrony. Every executed request is logged. */
#ifndef KVMPC_TEST_FAKE_BLOCK_H
#define KVMPC_TEST_FAKE_BLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"

#define FAKE_BLK_LOG 64

struct fake_blk_op {
    enum blk_op op;
    uint64_t offset, len;
    unsigned iovcnt;
};

/* size bytes of zeroed disk. */
struct blockdev *fake_blk_new(uint64_t size, bool readonly);
uint8_t *fake_blk_data(struct blockdev *bd);
/* Requests queued but not yet completed. */
unsigned fake_blk_inflight(const struct blockdev *bd);
/* Executed requests (all ops), the last FAKE_BLK_LOG kept. */
unsigned fake_blk_log_count(const struct blockdev *bd);
const struct fake_blk_op *fake_blk_log(const struct blockdev *bd, unsigned i);
/* Every blk_submit() call, including ones the fake refused. */
unsigned fake_blk_submit_count(const struct blockdev *bd);
/* Submissions the fake refused as invalid (out of range, iov total not
 * matching len, write to a read-only disk). */
unsigned fake_blk_invalid_count(const struct blockdev *bd);
/* The next n executed requests fail with err (a negative errno). */
void fake_blk_fail_next(struct blockdev *bd, unsigned n, int err);
/* blk_submit() refuses (-EAGAIN) once this many requests are queued. */
void fake_blk_set_limit(struct blockdev *bd, unsigned limit);

#endif
