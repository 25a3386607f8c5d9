/* Split virtqueues (virtio 1.x, and the legacy layout) over guest memory.
 *
 * Everything in the rings is written by a guest that may be hostile and may
 * change it while we look. The rules here:
 *  - ring areas are checked once, when the driver enables the queue;
 *  - every chain is walked and checked completely before the device sees
 *    it (indices in range, no loops, at most `size` descriptors, indirect
 *    tables well formed and not nested, readable buffers before writable
 *    ones, every buffer inside guest RAM with the right access);
 *  - each descriptor is copied out of guest memory exactly once;
 *  - the device consumes a chain only through host iovecs built from those
 *    copies (reader/writer cursors below), never through descriptors.
 * A chain that breaks a rule makes vq_pop() return VQ_BROKEN; the caller
 * then puts the device into NEEDS_RESET. The queue stays broken until it is
 * reset. Not thread-safe: the owner serialises calls (the device lock). */
#ifndef KVMPC_VIRTIO_QUEUE_H
#define KVMPC_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vm/memory.h"

/* Largest queue a split ring can describe. */
#define VQ_SIZE_LIMIT 32768

/* Descriptor flags */
#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2
#define VQ_DESC_F_INDIRECT 4
/* avail.flags / used.flags */
#define VQ_AVAIL_F_NO_INTERRUPT 1
#define VQ_USED_F_NO_NOTIFY 1

#define VQ_DESC_SIZE 16
#define VQ_LEGACY_ALIGN 4096

struct virtqueue {
    const struct guest_mem *mem;
    uint16_t max_size; /* what the device supports (power of two) */

    /* Driver-programmed configuration, applied by vq_enable(). */
    uint16_t size;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    bool event_idx; /* VIRTIO_F_RING_EVENT_IDX negotiated */
    bool indirect;  /* VIRTIO_F_RING_INDIRECT_DESC negotiated */

    /* Run state. */
    bool ready;
    bool broken;
    uint8_t *desc;  /* host views, valid while ready */
    uint8_t *avail;
    uint8_t *used;
    uint16_t last_avail;
    uint16_t used_idx;      /* next used.idx we publish */
    uint16_t signalled_used; /* used.idx at the last interrupt decision */
    bool signalled_valid;
};

/* One popped chain. iov[0, n_read) are device-readable buffers, followed
 * by n_write device-writable ones; the lengths are totals in bytes. */
struct vq_chain {
    uint16_t head;
    unsigned n_read, n_write;
    uint32_t read_len, write_len;
    struct iovec *iov;
};

enum vq_pop_result {
    VQ_BROKEN = -1,
    VQ_EMPTY = 0,
    VQ_CHAIN = 1,
};

/* Initialises a disabled queue. max_size must be a power of two
 * <= VQ_SIZE_LIMIT. */
void vq_init(struct virtqueue *vq, const struct guest_mem *mem,
             uint16_t max_size);
/* Back to the state after vq_init(): disabled, size = max_size, addresses
 * zero, indices zero, not broken. */
void vq_reset(struct virtqueue *vq);
/* Validates the programmed size and ring areas and starts the queue.
 * Returns 0, or -1 (queue left disabled) when the size is not a power of
 * two <= max_size, a ring is misaligned, or a ring is not inside guest RAM
 * (the used ring must be writable). */
int vq_enable(struct virtqueue *vq);
/* Legacy layout: descriptors at pfn * 4096, available ring right after,
 * used ring at the next 4096 boundary. Sets the addresses only. */
void vq_set_legacy_layout(struct virtqueue *vq, uint32_t pfn);

/* Takes the next available chain. iov must hold iov_cap entries; iov_cap
 * >= vq->size always suffices (zero-length buffers take no entry).
 * Returns VQ_CHAIN, VQ_EMPTY, or VQ_BROKEN (the queue is marked broken;
 * nothing was consumed). */
enum vq_pop_result vq_pop(struct virtqueue *vq, struct vq_chain *chain,
                          struct iovec *iov, unsigned iov_cap);
/* Returns a chain to the driver: len is the number of bytes written into
 * its device-writable buffers. Publishes used.idx at once. */
void vq_push(struct virtqueue *vq, uint16_t head, uint32_t len);
/* After one or more vq_push(): whether the driver wants an interrupt now
 * (EVENT_IDX used_event, or avail.flags NO_INTERRUPT). Records the
 * decision, so a second call without new pushes returns false. */
bool vq_should_notify(struct virtqueue *vq);

/* Driver-notification suppression while the device is busy draining the
 * queue. vq_enable_notify() re-arms notifications and returns true if
 * the queue is still empty afterwards; false means new buffers raced in
 * and the caller should keep popping. */
void vq_disable_notify(struct virtqueue *vq);
bool vq_enable_notify(struct virtqueue *vq);

/* ---- Cursors over a popped chain ------------------------------------ */

struct vq_cursor {
    struct iovec *iov;
    unsigned n;      /* entries */
    unsigned i;      /* current entry */
    size_t off;      /* offset inside iov[i] */
    size_t remaining; /* bytes left in the window */
};

struct vq_reader {
    struct vq_cursor c;
};

struct vq_writer {
    struct vq_cursor c;
};

void vq_reader_init(struct vq_reader *r, const struct vq_chain *chain);
void vq_writer_init(struct vq_writer *w, const struct vq_chain *chain);

/* Copy out of / into the chain; return the bytes moved (short at the end
 * of the buffers). */
size_t vq_read(struct vq_reader *r, void *buf, size_t len);
size_t vq_write(struct vq_writer *w, const void *buf, size_t len);
static inline size_t vq_reader_remaining(const struct vq_reader *r)
{
    return r->c.remaining;
}
static inline size_t vq_writer_remaining(const struct vq_writer *w)
{
    return w->c.remaining;
}
/* Advances without copying; returns the bytes skipped. */
size_t vq_reader_skip(struct vq_reader *r, size_t len);
size_t vq_writer_skip(struct vq_writer *w, size_t len);

/* Zero copy: describes the next len bytes as host iovecs in out (at most
 * cap entries) and advances past them. Returns the entry count, or -1 if
 * fewer than len bytes remain or cap is too small (nothing consumed).
 * out may be the chain's own iov array; the cursor is finished then. */
int vq_reader_iov(struct vq_reader *r, size_t len, struct iovec *out,
                  unsigned cap);
int vq_writer_iov(struct vq_writer *w, size_t len, struct iovec *out,
                  unsigned cap);

/* Removes the last byte from the writer's window and returns where it is
 * (for a trailing status byte), or NULL if the window is empty. */
uint8_t *vq_writer_take_last_byte(struct vq_writer *w);

#endif
