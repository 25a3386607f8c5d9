/* The transport-independent part of a virtio device: feature negotiation,
 * device status and reset, the virtqueues, the device-specific
 * configuration bytes, and deferred interrupt delivery.
 *
 * A device type (blk now; net, rng, console later) fills a struct
 * virtio_dev_ops and embeds a struct virtio_dev. A transport (virtio-pci)
 * drives the device through the virtio_dev_* calls below and receives
 * interrupts and kicks through struct virtio_transport_ops.
 *
 * Threads and locking: one lock per device (virtio_dev.lock) guards
 * everything here and the device type's own state. Register accesses
 * (vCPU threads) and queue processing (the I/O thread) take it. Nothing
 * that may take another lock (INTx, MSI routing) is called while it is
 * held: interrupts raised under the lock are recorded and delivered by
 * virtio_dev_unlock() after the mutex is released. */
#ifndef KVMPC_VIRTIO_H
#define KVMPC_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/queue.h"
#include "vm/memory.h"

/* Device status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Device-independent feature bits every device here offers. */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_FEATURE(bit) (1ULL << (bit))

/* Device types */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

#define VIRTIO_MAX_QUEUES 32
#define VIRTIO_CONFIG_MAX 256

struct virtio_dev;

struct virtio_dev_ops {
    const char *name;
    uint16_t device_id;  /* VIRTIO_ID_* */
    uint32_t pci_class;  /* class code the PCI transport presents */
    /* Buffers may be waiting on queue q (I/O thread, lock held). Only
     * called for a live queue (virtio_dev_queue_live()). */
    void (*queue_notify)(struct virtio_dev *d, unsigned q);
    /* The device was reset: forget all queue work (lock held). Requests
     * still in flight in a backend finish later; their completion is
     * recognised as stale by virtio_dev_request_end(). Optional. */
    void (*reset)(struct virtio_dev *d);
    /* The driver wrote device-specific configuration bytes (already
     * stored in d->config if inside config_len). Optional. */
    void (*config_write)(struct virtio_dev *d, unsigned off, unsigned len);
};

#define VIRTIO_IRQ_CONFIG (1ULL << 63) /* in the mask: config change */

struct virtio_transport_ops {
    /* Deliver the interrupts in mask (bit q = queue q, VIRTIO_IRQ_CONFIG).
     * Called without the device lock. */
    void (*interrupt)(void *opaque, uint64_t mask);
    /* Ask the I/O thread to look at queue q (it will call
     * virtio_dev_handle_notify()). May be called with the lock held. */
    void (*kick)(void *opaque, unsigned q);
};

struct virtio_dev {
    pthread_mutex_t lock;
    const struct virtio_dev_ops *ops;
    const struct guest_mem *mem;
    void *opaque; /* the device type's state */

    uint64_t host_features;
    uint64_t driver_features; /* as written by the driver */
    uint8_t status;
    uint8_t config_generation;

    unsigned num_queues;
    struct virtqueue vq[VIRTIO_MAX_QUEUES];

    uint8_t config[VIRTIO_CONFIG_MAX]; /* device-specific, little-endian */
    unsigned config_len;

    /* Reset bookkeeping: requests started in an older generation are
     * stale. While stale ones are in flight a reset is not complete. */
    uint32_t generation;
    unsigned inflight, stale;
    uint8_t status_before_reset;

    uint64_t irq_pending; /* delivered by virtio_dev_unlock() */

    const struct virtio_transport_ops *transport;
    void *transport_opaque;
};

/* features: the device type's bits; the ring and VERSION_1 bits are added
 * here. queue_max: power of two <= VQ_SIZE_LIMIT. Returns 0 or -1. */
int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
                    const struct guest_mem *mem, uint64_t features,
                    unsigned num_queues, uint16_t queue_max,
                    unsigned config_len);
void virtio_dev_destroy(struct virtio_dev *d);
void virtio_dev_set_transport(struct virtio_dev *d,
                              const struct virtio_transport_ops *ops,
                              void *opaque);

void virtio_dev_lock(struct virtio_dev *d);
/* Releases the lock, then delivers the interrupts recorded meanwhile. */
void virtio_dev_unlock(struct virtio_dev *d);

/* ---- Driver-facing operations (lock held) ------------------------------ */

uint32_t virtio_dev_host_features(const struct virtio_dev *d, unsigned sel);
uint32_t virtio_dev_driver_features(const struct virtio_dev *d, unsigned sel);
/* Ignored once FEATURES_OK is set. */
void virtio_dev_set_driver_features(struct virtio_dev *d, unsigned sel,
                                    uint32_t val);
/* Legacy interface: bits 0-31 only, unoffered bits dropped, no
 * FEATURES_OK step. */
void virtio_dev_set_legacy_features(struct virtio_dev *d, uint32_t val);
bool virtio_dev_is_modern(const struct virtio_dev *d);
bool virtio_dev_has_feature(const struct virtio_dev *d, unsigned bit);

/* Writes device_status: 0 resets; FEATURES_OK is refused (stays clear)
 * when the driver accepted unoffered bits or, through the modern
 * interface, not VERSION_1; NEEDS_RESET cannot be set or cleared by the
 * driver. Returns true if this was a reset. */
bool virtio_dev_set_status(struct virtio_dev *d, uint8_t val, bool modern);
/* device_status as the modern interface presents it: a reset is complete
 * (0) only when no stale request is in flight any more. */
uint8_t virtio_dev_get_status(const struct virtio_dev *d);

/* Validates and starts queue q with the programmed size and addresses.
 * A bad ring puts the device into NEEDS_RESET. Returns 0 or -1. */
int virtio_dev_queue_enable(struct virtio_dev *d, unsigned q);
void virtio_dev_queue_disable(struct virtio_dev *d, unsigned q);
/* Whether queue q may be processed now. */
bool virtio_dev_queue_live(const struct virtio_dev *d, unsigned q);

void virtio_dev_config_read(struct virtio_dev *d, unsigned off, void *data,
                            unsigned len);
void virtio_dev_config_write(struct virtio_dev *d, unsigned off,
                             const void *data, unsigned len);

/* ---- Device-facing operations (lock held) ------------------------------ */

/* The driver broke the protocol (e.g. a malformed chain): set NEEDS_RESET
 * and, once the driver is running, signal a configuration change. */
void virtio_dev_needs_reset(struct virtio_dev *d);
/* Used buffers were pushed to queue q: interrupt if the driver wants one. */
void virtio_dev_queue_used(struct virtio_dev *d, unsigned q);
void virtio_dev_config_changed(struct virtio_dev *d);

/* In-flight request accounting across resets. */
uint32_t virtio_dev_request_begin(struct virtio_dev *d);
/* Returns true if the request belongs to the current generation (its
 * completion may touch the rings), false if a reset made it stale. */
bool virtio_dev_request_end(struct virtio_dev *d, uint32_t generation);

/* ---- Entry points for the I/O thread ----------------------------------- */

/* The driver notified queue q (ioeventfd, or the transport's fallback).
 * Takes the lock. */
void virtio_dev_handle_notify(struct virtio_dev *d, unsigned q);

#endif
