/* O_DIRECT alignment from statx(STATX_DIOALIGN). Kept apart because the
 * kernel's struct statx (with the alignment fields) and the C library's
 * <sys/stat.h> cannot be included together. */
#include <fcntl.h>
#include <linux/stat.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

void blk_file_dio_align(int fd, uint32_t *mem, uint32_t *off);

void blk_file_dio_align(int fd, uint32_t *mem, uint32_t *off)
{
    struct statx sx = {0};
    *mem = *off = 0;
    if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) < 0)
        return; /* old kernel: the caller picks a safe default */
    if (!(sx.stx_mask & STATX_DIOALIGN))
        return;
    *mem = sx.stx_dio_mem_align;
    *off = sx.stx_dio_offset_align;
}
