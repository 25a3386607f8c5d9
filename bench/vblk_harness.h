/* A host-side virtio-blk harness: plays the guest against kvmpc's real
 * device code with no KVM.
 *
 * The pieces are the ones kvmpc's machine wires up (src/vm/machine.c):
 * guest RAM in host memory (anonymous, advised for huge pages like
 * kvmpc's), a PCI host with the PIIX functions, a blockdev from
 * blk_open(), a virtio_blk on it and its virtio-pci function on bus 0
 * slot 2, and an I/O thread running the real event loop over the queue
 * notifiers and the disk's completion fd. The harness stands in for two
 * things only:
 *  - the guest driver (the calling thread): it assigns the BARs through
 *    configuration mechanism #1, walks the capability list, performs the
 *    modern virtio-pci handshake, programs MSI-X, lays out a split
 *    virtqueue in guest RAM and builds real request chains (header, data,
 *    status; optionally through indirect tables);
 *  - KVM: an MMIO write to a notify address that the device bound an
 *    ioeventfd to signals that eventfd (others go to the MMIO bus, as an
 *    exit would), and each MSI vector gets an eventfd as its irqfd, which
 *    the driver waits on as its interrupt.
 * Everything the device does is its own code, on its own thread. */
#ifndef KVMPC_BENCH_VBLK_HARNESS_H
#define KVMPC_BENCH_VBLK_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"

#define VH_MAX_DEPTH 64
#define VH_MAX_SEGS 32 /* data descriptors per request */

struct vh_opts {
    struct blk_open_opts disk;
    unsigned depth;     /* requests in flight at most (default 32) */
    uint32_t max_bytes; /* largest transfer of one request (default 1 MiB) */
    unsigned max_segs;  /* data descriptors per request (default 1) */
    bool indirect;      /* negotiate INDIRECT_DESC and put chains there */
    bool event_idx;     /* negotiate EVENT_IDX */
};

struct vh;

/* One request. The caller fills the fields above `data` after
 * vh_alloc(); data is this slot's buffer in guest RAM (max_bytes). */
struct vh_req {
    uint32_t type;      /* VIRTIO_BLK_T_* */
    uint64_t sector;
    uint32_t len;       /* data bytes for IN, OUT and GET_ID */
    unsigned segs;      /* data descriptors (0 or 1: one; at most max_segs) */
    uint32_t seg_seed;  /* where the split points fall (any value) */
    uint64_t range_sector; /* DISCARD / WRITE_ZEROES segment */
    uint32_t range_count, range_flags;
    /* Called from vh_wait(); the slot is free again once it returns. */
    void (*done)(struct vh *h, struct vh_req *r);
    void *opaque;
    uint8_t *data;
    /* results */
    uint8_t status;
    uint32_t used_len;
};

/* Builds the machine, starts the I/O thread and brings the device to
 * DRIVER_OK. Returns 0, or -1 after printing the problem. */
int vh_open(const struct vh_opts *o, struct vh **out);
/* Stops the I/O thread (waits for requests in flight first), then tears
 * everything down the way kvmpc does at exit. */
void vh_close(struct vh *h);

uint64_t vh_capacity(const struct vh *h); /* sectors, from config space */
uint64_t vh_features(const struct vh *h); /* negotiated */
bool vh_is_readonly(const struct vh *h);
uint8_t vh_device_status(struct vh *h);   /* device_status register */
unsigned vh_inflight(const struct vh *h);
unsigned long vh_interrupts(const struct vh *h);
unsigned long vh_notifies(const struct vh *h);

/* A free request slot, or NULL when depth requests are in flight. */
struct vh_req *vh_alloc(struct vh *h);
/* Builds the chain and makes it available (the device is not told). */
void vh_queue(struct vh *h, struct vh_req *r);
/* Publishes the queued chains and notifies the device if it asked. */
void vh_kick(struct vh *h);
/* Runs done() for every used buffer, waiting up to timeout_ms for an
 * interrupt when there is none yet. Returns the number completed. */
unsigned vh_wait(struct vh *h, int timeout_ms);

/* One request, waited for; copies buf in (OUT) or out (IN, GET_ID).
 * Returns the status byte. */
uint8_t vh_sync(struct vh *h, uint32_t type, uint64_t sector, void *buf,
                uint32_t len, unsigned segs);
uint8_t vh_sync_range(struct vh *h, uint32_t type, uint64_t sector,
                      uint32_t count, uint32_t flags);

#endif
