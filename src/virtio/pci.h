/* virtio-pci: the PCI transport for any struct virtio_dev.
 *
 * A transitional function (legacy drivers such as SeaBIOS's and modern
 * ones such as Linux's both work) for the device types that have a
 * transitional ID, a modern-only one for the others:
 *   BAR0  I/O, legacy register block (transitional only)
 *   BAR1  32-bit memory, MSI-X table (0x000) and PBA (0x800)
 *   BAR4  64-bit prefetchable memory: common configuration (0x0000),
 *         ISR (0x1000), device configuration (0x2000), notifications
 *         (0x3000, 4 bytes per queue)
 * plus the vendor capabilities COMMON, NOTIFY, ISR, DEVICE, PCI_CFG and
 * an MSI-X capability with one vector per queue and one for configuration
 * changes. Unused BARs are unimplemented (read 0, ignore writes).
 *
 * Queue notifications are always handled in the I/O thread: each queue
 * has an eventfd. The machine binds it to the queue's notify addresses
 * with KVM_IOEVENTFD through the ioeventfd hook (re-bound whenever the
 * firmware or OS moves a BAR) and polls it with
 * virtio_pci_notifier_event(). A notify write that reaches the MMIO/PIO
 * handler instead (no ioeventfd, or another access width) signals the
 * same eventfd.
 *
 * Interrupts: MSI-X when the guest enables it (vectors per the virtio
 * registers, masking and pending bits per PCI), otherwise INTx with the
 * ISR register (reading it clears it and de-asserts INTx).
 *
 * Wiring (machine.c): virtio_pci_init() with a hook that issues
 * KVM_IOEVENTFD (PIO / DATAMATCH / DEASSIGN flags from the request),
 * pci_host_add(&vp->pci, devfn), and in the event loop every notifier's
 * fd with virtio_pci_notifier_event(notifier) plus the device's own
 * completion fd (virtio_blk_event_fd() -> virtio_blk_handle_completions()).
 * Teardown, after the I/O thread has stopped: close the backend (it
 * finishes requests in flight, which may still signal interrupts), then
 * virtio_pci_destroy() while the VM fd is open, then free the device.
 *
 * Locks: the device's lock (virtio_dev.lock) covers the registers; the
 * ISR and MSI-X state have small leaf locks of their own so that
 * interrupts are delivered without the device lock. Order: PCI host lock
 * -> device lock -> ISR/MSI-X lock -> PCI INTx lock / MSI router lock. */
#ifndef KVMPC_VIRTIO_PCI_H
#define KVMPC_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/pci.h"
#include "virtio/virtio.h"
#include "vm/irq.h"

#define VIRTIO_PCI_VENDOR 0x1AF4
#define VIRTIO_PCI_MODERN_DEVICE_BASE 0x1040
#define VIRTIO_MSI_NO_VECTOR 0xFFFF

/* BARs */
#define VIRTIO_PCI_LEGACY_BAR 0
#define VIRTIO_PCI_MSIX_BAR 1
#define VIRTIO_PCI_MODERN_BAR 4

/* BAR4 layout */
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_COMMON_LEN 0x38
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4
#define VIRTIO_PCI_MODERN_BAR_SIZE 0x4000

/* BAR1 layout */
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x800
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000
#define VIRTIO_PCI_MAX_VECTORS (VIRTIO_MAX_QUEUES + 1)

/* Vendor capability cfg_type */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* Common configuration registers (offsets in the COMMON structure) */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0C
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1A
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1C
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1E
#define VIRTIO_PCI_COMMON_Q_DESCLO 0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI 0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2C
#define VIRTIO_PCI_COMMON_Q_USEDLO 0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI 0x34

/* Legacy register block (BAR0) */
#define VIRTIO_PCI_LEGACY_HOST_FEATURES 0
#define VIRTIO_PCI_LEGACY_GUEST_FEATURES 4
#define VIRTIO_PCI_LEGACY_QUEUE_PFN 8
#define VIRTIO_PCI_LEGACY_QUEUE_NUM 12
#define VIRTIO_PCI_LEGACY_QUEUE_SEL 14
#define VIRTIO_PCI_LEGACY_QUEUE_NOTIFY 16
#define VIRTIO_PCI_LEGACY_STATUS 18
#define VIRTIO_PCI_LEGACY_ISR 19
#define VIRTIO_PCI_LEGACY_MSIX_CONFIG 20 /* only while MSI-X is enabled */
#define VIRTIO_PCI_LEGACY_MSIX_QUEUE 22
#define VIRTIO_PCI_LEGACY_CONFIG 20      /* 24 while MSI-X is enabled */
#define VIRTIO_PCI_LEGACY_CONFIG_MSIX 24
/* Legacy drivers cannot negotiate the queue size. */
#define VIRTIO_PCI_LEGACY_MAX_QUEUE 256

#define VIRTIO_ISR_QUEUE 0x1
#define VIRTIO_ISR_CONFIG 0x2

/* One KVM_IOEVENTFD binding the machine makes (assign) or removes. */
struct virtio_pci_ioeventfd {
    int fd;
    bool pio;          /* port I/O, else MMIO */
    uint64_t addr;
    unsigned len;      /* the width drivers write (2) */
    bool datamatch;    /* only writes of `data` (legacy: queue index) */
    uint64_t data;
};

/* Returns 0 or -1; on failure the MMIO/PIO fallback keeps working. */
typedef int (*virtio_pci_ioeventfd_fn)(void *opaque,
                                       const struct virtio_pci_ioeventfd *io,
                                       bool assign);

struct virtio_pci;

/* Per-queue notification source for the I/O thread's event loop. */
struct virtio_pci_notifier {
    struct virtio_pci *vp;
    unsigned queue;
    int fd;
    /* current ioeventfd bindings (for unbinding when a BAR moves) */
    bool modern_bound, legacy_bound;
    uint64_t modern_addr, legacy_addr;
};

struct virtio_pci_msix_entry {
    uint8_t raw[16]; /* address lo/hi, data, vector control (LE) */
};

struct virtio_pci {
    struct pci_dev pci;
    struct virtio_dev *vdev;
    bool transitional;
    unsigned legacy_size; /* BAR0 bytes */

    /* Register state (device lock). Vector numbers are also read when
     * interrupts are delivered, without that lock: atomic accesses. */
    uint32_t dfselect, gfselect;
    uint16_t queue_select;
    uint16_t config_vector;
    uint16_t queue_vector[VIRTIO_MAX_QUEUES];

    /* INTx and the ISR register */
    pthread_mutex_t isr_lock;
    uint8_t isr;

    /* MSI-X */
    pthread_mutex_t msix_lock;
    unsigned nvectors;
    uint8_t msix_cap, pcicfg_cap;
    bool msix_enabled, msix_func_masked; /* shadows of the capability */
    struct virtio_pci_msix_entry table[VIRTIO_PCI_MAX_VECTORS];
    uint64_t pending; /* PBA */
    struct msi_vector vectors[VIRTIO_PCI_MAX_VECTORS];
    bool vectors_ready;

    /* Notifications */
    struct virtio_pci_notifier notifier[VIRTIO_MAX_QUEUES];
    virtio_pci_ioeventfd_fn ioeventfd;
    void *ioeventfd_opaque;
};

/* Builds the PCI function for vdev (not yet plugged: pci_host_add()
 * vp->pci afterwards). router provides the MSI-X vectors. ioeventfd may be
 * NULL (tests). Returns 0, or -1 after reporting the problem. */
int virtio_pci_init(struct virtio_pci *vp, struct virtio_dev *vdev,
                    struct irq_router *router, virtio_pci_ioeventfd_fn fn,
                    void *fn_opaque);
void virtio_pci_destroy(struct virtio_pci *vp);

/* For the event loop: the eventfd of queue q's notifications, and the
 * handler (signature of evloop_fn) to run when it is readable. */
unsigned virtio_pci_num_notifiers(const struct virtio_pci *vp);
struct virtio_pci_notifier *virtio_pci_notifier(struct virtio_pci *vp,
                                                unsigned q);
void virtio_pci_notifier_event(void *opaque, uint32_t events);

#endif
