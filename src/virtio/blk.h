/* virtio-blk: a disk backed by the block layer (src/block/block.h).
 *
 * Requests are parsed from validated chains, checked (sector bounds,
 * 512-byte multiples, read-only disks) and submitted asynchronously; many
 * may be in flight per queue. Everything runs in the I/O thread: queue
 * notifications arrive through virtio_dev_handle_notify() and completions
 * through virtio_blk_handle_completions() when virtio_blk_event_fd()
 * becomes readable.
 *
 * Durability: with VIRTIO_BLK_F_FLUSH negotiated, FLUSH requests reach the
 * backend as BLK_OP_FLUSH (fdatasync) and complete only after it; without
 * it (SeaBIOS, old drivers) every write is followed by a flush before it
 * completes (write-through). */
#ifndef KVMPC_VIRTIO_BLK_H
#define KVMPC_VIRTIO_BLK_H

#include <stdint.h>

#include "block/block.h"
#include "virtio/virtio.h"

/* Feature bits */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_FLUSH_OUT 5 /* legacy synonym of FLUSH */
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_WZ_F_UNMAP 1

/* Status byte */
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* Configuration space offsets (struct virtio_blk_config) */
#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_CYLINDERS 16
#define VIRTIO_BLK_CFG_HEADS 18
#define VIRTIO_BLK_CFG_SECTORS 19
#define VIRTIO_BLK_CFG_BLK_SIZE 20
#define VIRTIO_BLK_CFG_NUM_QUEUES 34
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT 44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG 52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP 56
#define VIRTIO_BLK_CFG_LEN 60

#define VIRTIO_BLK_SECTOR 512
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_MAX_QUEUES 16
/* A transitional device's legacy interface cannot describe more. */
#define VIRTIO_BLK_MAX_QUEUE_SIZE 256
#define VIRTIO_BLK_SIZE_MAX (1024 * 1024)
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1U << 22) /* 2 GiB per request */

struct virtio_blk_opts {
    struct blockdev *bd;  /* opened by the caller, closed after free */
    const char *serial;   /* GET_ID string, up to 20 bytes; NULL: empty */
    unsigned num_queues;  /* 0 means 1; at most VIRTIO_BLK_MAX_QUEUES */
    uint16_t queue_size;  /* 0 means 256; a power of two 2..256 */
};

struct virtio_blk;

/* Returns 0, or -1 after reporting a bad option. */
int virtio_blk_new(const struct guest_mem *mem,
                   const struct virtio_blk_opts *opts,
                   struct virtio_blk **out);
/* Requests still in flight must have completed (blk_close() first). */
void virtio_blk_free(struct virtio_blk *b);

struct virtio_dev *virtio_blk_dev(struct virtio_blk *b);
/* Readable when completions are ready; then call
 * virtio_blk_handle_completions() (I/O thread). */
int virtio_blk_event_fd(const struct virtio_blk *b);
void virtio_blk_handle_completions(struct virtio_blk *b);

#endif
