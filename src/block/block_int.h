/* Inside the block layer: the blockdev object, format drivers, the image
 * file wrapper and iovec helpers shared by raw.c and qcow2*.c. */
#ifndef KVMPC_BLOCK_INT_H
#define KVMPC_BLOCK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "block/aio.h"
#include "block/block.h"

#ifndef container_of
/* The structure that embeds member ptr (through void *: no alignment
 * warning, the embedding structure is aligned by construction). */
#define container_of(ptr, type, member)                                        \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

/* An open image file. Data goes through fd (O_DIRECT with cache=none);
 * metadata, and data whose buffers or offsets O_DIRECT cannot take, go
 * through bfd, a buffered descriptor of the same file (the kernel keeps
 * the two coherent). */
struct blk_file {
    int fd, bfd;
    bool direct, readonly, is_bdev;
    uint32_t mem_align, off_align; /* O_DIRECT requirements */
    uint64_t size;                 /* bytes; grows with our writes */
    dev_t dev;
    ino_t ino;
};

int blk_file_open(struct blk_file *f, const char *path, bool readonly,
                  bool direct);
void blk_file_close(struct blk_file *f);
/* Whole-file OFD lock: exclusive for writers, shared for readers, so that
 * two programs (kvmpc or QEMU's tools) never write one image at once.
 * Taken after the backing chain check (a loop must be reported as such,
 * not as a lock conflict with ourselves). */
int blk_file_lock(const struct blk_file *f, const char *path);
/* The descriptor that can carry this transfer. */
int blk_file_fd_for(const struct blk_file *f, uint64_t off,
                    const struct iovec *iov, unsigned cnt);
/* Synchronous helpers on bfd; reads past the end of file give zeros.
 * Return 0 or -errno. */
int blk_file_pread(const struct blk_file *f, void *buf, size_t len,
                   uint64_t off);
int blk_file_pwrite(struct blk_file *f, const void *buf, size_t len,
                    uint64_t off);
int blk_file_sync(const struct blk_file *f);
/* Queries O_DIRECT alignment (statx); 0 when unknown. */
void blk_file_dio_align(int fd, uint32_t *mem, uint32_t *off);

struct blk_driver {
    const char *name;
    /* Takes a validated request and finishes it through blk_complete(),
     * or returns -ENOMEM without having taken it. */
    int (*submit)(struct blockdev *bd, struct blk_req *req);
    /* Called at the end of blk_submit()/blk_poll(), when no request code
     * is on the stack: the place to trim caches. May be NULL. */
    void (*idle)(struct blockdev *bd);
    /* Finishes internal work (requests are done by then) and frees. */
    void (*close)(struct blockdev *bd);
};

struct blockdev {
    const struct blk_driver *drv;
    void *priv;
    struct aio_engine *eng;
    bool own_engine;
    bool readonly;
    uint64_t size;
    unsigned inflight;
    char *path;
};

/* Finishes a request: runs done() (from blk_poll() context). */
void blk_complete(struct blockdev *bd, struct blk_req *req, int result);

/* Open flags for images opened inside the layer. */
#define BLK_OPEN_NO_BACKING 1u /* ignore backing files (fuzzing, check) */

/* Backing chains: the files seen so far, to refuse loops. */
struct blk_chain {
    unsigned depth;
    unsigned n, cap;
    struct {
        dev_t dev;
        ino_t ino;
    } *seen;
};
#define BLK_MAX_CHAIN 1024

/* Opens an image on an existing engine (the top image's). */
int blk_open_on(const struct blk_open_opts *opts, struct aio_engine *eng,
                struct blk_chain *chain, unsigned flags,
                struct blockdev **out);
/* Records a file in the chain and takes its lock; fails (reported) on a
 * loop, a chain too long, or a file another program holds. */
int blk_chain_enter(struct blk_chain *chain, const struct blk_file *f,
                    const char *path);

int raw_open(struct blockdev *bd, const struct blk_open_opts *opts,
             struct blk_chain *chain);
int qcow2_open(struct blockdev *bd, const struct blk_open_opts *opts,
               struct blk_chain *chain, unsigned flags);

/* iovec helpers. */
uint64_t iov_total(const struct iovec *iov, unsigned cnt);
/* Describes bytes [skip, skip+len) of src in dst (at most max entries);
 * returns the number of entries used. */
unsigned iov_slice(const struct iovec *src, unsigned cnt, uint64_t skip,
                   uint64_t len, struct iovec *dst, unsigned max);
/* Upper bound on iov_slice()'s entries for any range of src. */
static inline unsigned iov_slice_max(unsigned cnt)
{
    return cnt ? cnt : 1;
}
void iov_memset(const struct iovec *iov, unsigned cnt, uint64_t skip, int c,
                uint64_t len);
void iov_from_buf(const struct iovec *iov, unsigned cnt, uint64_t skip,
                  const void *buf, uint64_t len);
bool iov_aligned(const struct iovec *iov, unsigned cnt, uint32_t mem_align,
                 uint32_t len_align);

/* Aligned buffer for I/O that may go through O_DIRECT. */
void *blk_alloc_buf(size_t len);

#endif
