/* libFuzzer harness for the qcow2 open path: header, extensions, L1 and
 * refcount tables, snapshot table, the consistency check, and the table
 * walks of a few reads and writes. The image bytes come from the fuzzer
 * through a memfd; backing files are never opened. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "block/block_int.h"
#include "block/qcow2_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct aio_engine *engine(void)
{
    static struct aio_engine *e; /* one for the whole run */
    if (!e)
        e = aio_engine_new();
    if (!e)
        abort();
    return e;
}

static void done(struct blk_req *req, int result)
{
    *(int *)req->opaque = 1;
    (void)result;
}

static void io(struct blockdev *bd, enum blk_op op, uint64_t off,
               uint64_t len, uint8_t *buf)
{
    uint64_t size = blk_size(bd);
    if (!size)
        return;
    off %= size;
    if (len > size - off)
        len = size - off;
    int finished = 0;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    bool data_op = op == BLK_OP_READ || op == BLK_OP_WRITE;
    struct blk_req req = {.op = op, .offset = off, .len = len,
                          .iov = data_op ? &iov : NULL,
                          .iovcnt = data_op ? 1 : 0,
                          .done = done, .opaque = &finished};
    if (blk_submit(bd, &req) < 0)
        return;
    blk_kick(bd);
    while (!finished) {
        struct pollfd p = {.fd = blk_event_fd(bd), .events = POLLIN};
        poll(&p, 1, 1000);
        blk_poll(bd);
    }
}

static uint64_t word(const uint8_t *data, size_t size, size_t i)
{
    uint64_t v = 0;
    for (size_t k = 0; k < 8 && size; k++)
        v = v << 8 | data[(i * 8 + k) % size];
    return v;
}

static void exercise(struct blockdev *bd, const uint8_t *data, size_t size,
                     bool rw)
{
    static uint8_t buf[1 << 17];
    for (size_t i = 0; i < 4; i++)
        io(bd, BLK_OP_READ, word(data, size, i), 1 + word(data, size, i + 4)
           % sizeof(buf), buf);
    if (!rw)
        return;
    memset(buf, 0xa5, sizeof(buf));
    io(bd, BLK_OP_WRITE, word(data, size, 8), 1 + word(data, size, 9) % 8192,
       buf);
    io(bd, BLK_OP_WRITE_ZEROES, word(data, size, 10),
       word(data, size, 11) % (1 << 20), NULL);
    io(bd, BLK_OP_DISCARD, word(data, size, 12),
       word(data, size, 13) % (1 << 20), NULL);
    io(bd, BLK_OP_FLUSH, 0, 0, NULL);
    io(bd, BLK_OP_READ, word(data, size, 8), sizeof(buf), buf);
}

static void run(const char *path, const uint8_t *data, size_t size, bool rw)
{
    struct blk_open_opts o = {.path = path, .format = BLK_FORMAT_QCOW2,
                              .readonly = !rw};
    struct blk_chain chain = {0};
    struct blockdev *bd;
    if (blk_open_on(&o, engine(), &chain, BLK_OPEN_NO_BACKING, &bd) == 0) {
        if (!rw) {
            struct qcow2_check_result res;
            qcow2_check(bd->priv, NULL, false, &res);
        }
        exercise(bd, data, size, rw);
        blk_close(bd);
    }
    free(chain.seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    run(path, data, size, false);
    run(path, data, size, true);
    close(fd);
    return 0;
}
