/* Helpers for the block layer tests: synchronous I/O over the async API,
 * a randomized concurrent workload checked against an in-memory model,
 * temporary directories and running qemu-img. */
#ifndef KVMPC_TESTS_BLK_TEST_UTIL_H
#define KVMPC_TESTS_BLK_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/block.h"

/* One request, waited for. Returns the result. */
int tu_io(struct blockdev *bd, enum blk_op op, uint64_t off, void *buf,
          uint64_t len);
int tu_read(struct blockdev *bd, uint64_t off, void *buf, uint64_t len);
int tu_write(struct blockdev *bd, uint64_t off, const void *buf, uint64_t len);
int tu_flush(struct blockdev *bd);

void tu_pattern(void *buf, size_t len, uint64_t seed);

/* A model of the disk: its bytes, and which of them are known (a discard
 * leaves bytes unknown until read back). */
struct tu_model {
    uint8_t *data;
    uint8_t *known; /* per byte */
    uint64_t size;
};
void tu_model_init(struct tu_model *m, uint64_t size);
void tu_model_free(struct tu_model *m);
/* Fills the model from the disk (everything known). */
void tu_model_load(struct tu_model *m, struct blockdev *bd);
/* Reads the whole disk and checks it against the known bytes; unknown
 * bytes take the value read. */
void tu_model_verify(struct tu_model *m, struct blockdev *bd);
/* Writes the model to a raw file (for qemu-img compare). */
void tu_model_save(const struct tu_model *m, const char *path);

struct tu_stress {
    unsigned requests;
    unsigned depth;       /* requests in flight */
    uint64_t max_len;
    bool unaligned;       /* byte-granular offsets and lengths */
    bool discard;         /* also DISCARD and WRITE_ZEROES */
    bool flush;
    uint64_t lo, hi;      /* the range used (hi 0: the whole disk) */
    uint64_t seed;
};
/* Random reads, writes (split into several iovecs), zeroes, discards and
 * flushes, many in flight, never two overlapping ones at once; every read
 * is checked against the model. */
void tu_stress_run(struct blockdev *bd, struct tu_model *m,
                   const struct tu_stress *s);

/* Temporary directory under $KVMPC_TEST_TMPDIR or /var/tmp (removed by
 * tu_rmdir). */
void tu_mkdir(char *out, size_t len);
void tu_rmdir(const char *dir);
/* The current test's directory, made by tu_setup and removed by
 * tu_teardown (cmocka setup and teardown functions). */
extern char tu_dir[128];
int tu_setup(void **state);
int tu_teardown(void **state);
/* tu_dir/name into out. */
void tu_path(char *out, size_t len, const char *name);
/* Runs a shell snippet in tu_dir with $QI = qemu-img and $QIO = qemu-io,
 * its output discarded; fails the test when it fails. */
void tu_qemu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a shell command (printf format); returns its exit status. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* QEMU_IMG from the environment; the test fails when it is missing. */
const char *tu_qemu_img(void);
const char *tu_qemu_io(void);

struct blockdev *tu_open(const char *path, enum blk_format fmt, bool ro);

#endif
