/* The image file: descriptors, size, O_DIRECT alignment, locking, and
 * synchronous helpers for metadata. */
#include "block/block_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int blk_file_lock(const struct blk_file *f, const char *path)
{
    int fd = f->bfd;
    bool readonly = f->readonly;
    struct flock fl = {
        .l_type = readonly ? F_RDLCK : F_WRLCK,
        .l_whence = SEEK_SET,
    };
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES) {
        report_error("'%s' is in use by another program (file lock)", path);
        return -1;
    }
    return 0; /* file systems without locks: go on unlocked */
}

static int file_size(struct blk_file *f, const struct stat *st)
{
    if (!f->is_bdev) {
        f->size = (uint64_t)st->st_size;
        return 0;
    }
    uint64_t sz;
    if (ioctl(f->bfd, BLKGETSIZE64, &sz) < 0)
        return -errno;
    f->size = sz;
    return 0;
}

static int open_buffered(struct blk_file *f, const char *path, bool readonly)
{
    /* O_NONBLOCK: a FIFO named as an image must not hang the open. */
    int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
                            O_NONBLOCK);
    if (fd < 0) {
        report_error("cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        report_error("'%s' is not a regular file or block device", path);
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    f->bfd = fd;
    f->is_bdev = S_ISBLK(st.st_mode);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    int r = file_size(f, &st);
    if (r < 0) {
        report_error("cannot get the size of '%s': %s", path, strerror(-r));
        close(fd);
        return -1;
    }
    return 0;
}

static int open_direct(struct blk_file *f, const char *path)
{
    int fd = open(path, (f->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
                            O_DIRECT);
    if (fd < 0) {
        report_error("cache=none: cannot open '%s' with O_DIRECT: %s", path,
                     errno == EINVAL ? "the file system does not support it"
                                     : strerror(errno));
        return -1;
    }
    blk_file_dio_align(fd, &f->mem_align, &f->off_align);
    if (!f->off_align && f->is_bdev) {
        int ss;
        if (ioctl(fd, BLKSSZGET, &ss) == 0 && ss > 0 && IS_POWER_OF_2(ss))
            f->off_align = f->mem_align = (uint32_t)ss;
    }
    if (!f->off_align || !f->mem_align)
        f->off_align = f->mem_align = 4096; /* safe when unknown */
    f->fd = fd;
    f->direct = true;
    return 0;
}

int blk_file_open(struct blk_file *f, const char *path, bool readonly,
                  bool direct)
{
    memset(f, 0, sizeof(*f));
    f->fd = f->bfd = -1;
    f->readonly = readonly;
    if (open_buffered(f, path, readonly) < 0)
        return -1;
    if (direct && open_direct(f, path) < 0) {
        close(f->bfd);
        f->bfd = -1;
        return -1;
    }
    if (!direct)
        f->fd = f->bfd;
    return 0;
}

void blk_file_close(struct blk_file *f)
{
    if (f->fd >= 0 && f->fd != f->bfd)
        close(f->fd);
    if (f->bfd >= 0)
        close(f->bfd);
    f->fd = f->bfd = -1;
}

bool iov_aligned(const struct iovec *iov, unsigned cnt, uint32_t mem_align,
                 uint32_t len_align)
{
    for (unsigned i = 0; i < cnt; i++) {
        if ((uintptr_t)iov[i].iov_base & (mem_align - 1))
            return false;
        if (iov[i].iov_len & (len_align - 1))
            return false;
    }
    return true;
}

int blk_file_fd_for(const struct blk_file *f, uint64_t off,
                    const struct iovec *iov, unsigned cnt)
{
    if (!f->direct)
        return f->bfd;
    if ((off & (f->off_align - 1)) ||
        !iov_aligned(iov, cnt, f->mem_align, f->off_align))
        return f->bfd;
    return f->fd;
}

int blk_file_pread(const struct blk_file *f, void *buf, size_t len,
                   uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(f->bfd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int blk_file_pwrite(struct blk_file *f, const void *buf, size_t len,
                    uint64_t off)
{
    const uint8_t *p = buf;
    uint64_t end = off + len;
    while (len) {
        ssize_t n = pwrite(f->bfd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    if (end > f->size)
        f->size = end;
    return 0;
}

int blk_file_sync(const struct blk_file *f)
{
    while (fdatasync(f->bfd) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

void *blk_alloc_buf(size_t len)
{
    void *p;
    if (posix_memalign(&p, 4096, len ? len : 1))
        return NULL;
    return p;
}

uint64_t iov_total(const struct iovec *iov, unsigned cnt)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

unsigned iov_slice(const struct iovec *src, unsigned cnt, uint64_t skip,
                   uint64_t len, struct iovec *dst, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < cnt && len && n < max; i++) {
        size_t l = src[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        size_t take = l - skip;
        if (take > len)
            take = len;
        dst[n].iov_base = (uint8_t *)src[i].iov_base + skip;
        dst[n].iov_len = take;
        n++;
        len -= take;
        skip = 0;
    }
    return n;
}

void iov_memset(const struct iovec *iov, unsigned cnt, uint64_t skip, int c,
                uint64_t len)
{
    for (unsigned i = 0; i < cnt && len; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        size_t take = MIN(l - skip, len);
        memset((uint8_t *)iov[i].iov_base + skip, c, take);
        len -= take;
        skip = 0;
    }
}

void iov_from_buf(const struct iovec *iov, unsigned cnt, uint64_t skip,
                  const void *buf, uint64_t len)
{
    const uint8_t *p = buf;
    for (unsigned i = 0; i < cnt && len; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        size_t take = MIN(l - skip, len);
        memcpy((uint8_t *)iov[i].iov_base + skip, p, take);
        p += take;
        len -= take;
        skip = 0;
    }
}
