#include "virtio/pci.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_MASKED 0x1

/* Capability field offsets (from the capability's first byte). */
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_EXTRA 16 /* notify_off_multiplier / pci_cfg_data */
#define MSIX_CAP_CTRL 2

/* ---- Identity ------------------------------------------------------- */

/* Transitional PCI device IDs exist only for the pre-1.0 device types. */
static uint16_t transitional_id(uint16_t type)
{
    switch (type) {
    case 1: return 0x1000; /* network */
    case 2: return 0x1001; /* block */
    case 5: return 0x1002; /* balloon */
    case 3: return 0x1003; /* console */
    case 8: return 0x1004; /* SCSI */
    case 4: return 0x1005; /* entropy */
    case 9: return 0x1009; /* 9P */
    default: return 0;
    }
}

/* ---- Notifications ------------------------------------------------------- */

static void signal_queue(struct virtio_pci *vp, unsigned q)
{
    if (q >= vp->vdev->num_queues)
        return;
    uint64_t one = 1;
    ssize_t n = write(vp->notifier[q].fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero */
}

void virtio_pci_notifier_event(void *opaque, uint32_t events)
{
    struct virtio_pci_notifier *n = opaque;
    uint64_t v;
    ssize_t r = read(n->fd, &v, sizeof(v));
    (void)r; /* EAGAIN: a spurious wake-up, look anyway */
    virtio_dev_handle_notify(n->vp->vdev, n->queue);
}

unsigned virtio_pci_num_notifiers(const struct virtio_pci *vp)
{
    return vp->vdev->num_queues;
}

struct virtio_pci_notifier *virtio_pci_notifier(struct virtio_pci *vp,
                                                unsigned q)
{
    return q < vp->vdev->num_queues ? &vp->notifier[q] : NULL;
}

static void bind_notifier(struct virtio_pci *vp, struct virtio_pci_notifier *n,
                          bool legacy, bool assign, uint64_t addr)
{
    struct virtio_pci_ioeventfd io = {
        .fd = n->fd,
        .pio = legacy,
        .addr = addr,
        .len = 2,
        .datamatch = legacy,
        .data = n->queue,
    };
    if (vp->ioeventfd(vp->ioeventfd_opaque, &io, assign) < 0)
        return; /* the MMIO/PIO handler still signals the eventfd */
    if (legacy) {
        n->legacy_bound = assign;
        n->legacy_addr = addr;
    } else {
        n->modern_bound = assign;
        n->modern_addr = addr;
    }
}

/* Moves the ioeventfds of every queue along with a BAR (host lock held). */
static void vp_bar_moved(struct pci_dev *d, unsigned bar, bool mapped,
                         uint64_t addr)
{
    struct virtio_pci *vp = d->opaque;
    bool legacy = bar == VIRTIO_PCI_LEGACY_BAR && vp->transitional;
    if (!vp->ioeventfd || (bar != VIRTIO_PCI_MODERN_BAR && !legacy))
        return;
    for (unsigned q = 0; q < vp->vdev->num_queues; q++) {
        struct virtio_pci_notifier *n = &vp->notifier[q];
        bool bound = legacy ? n->legacy_bound : n->modern_bound;
        uint64_t old = legacy ? n->legacy_addr : n->modern_addr;
        if (bound)
            bind_notifier(vp, n, legacy, false, old);
        if (!mapped)
            continue;
        uint64_t at = legacy ? addr + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY
                             : addr + VIRTIO_PCI_NOTIFY_OFF +
                                   (uint64_t)q * VIRTIO_PCI_NOTIFY_MULTIPLIER;
        bind_notifier(vp, n, legacy, true, at);
    }
}

/* ---- Interrupts ------------------------------------------------------------ */

static void raise_isr(struct virtio_pci *vp, uint8_t bits)
{
    pthread_mutex_lock(&vp->isr_lock);
    vp->isr |= bits;
    pci_dev_set_intx(&vp->pci, true);
    pthread_mutex_unlock(&vp->isr_lock);
}

/* Reading ISR clears it and lowers INTx; peek leaves both alone. */
static uint8_t read_isr(struct virtio_pci *vp, bool peek)
{
    pthread_mutex_lock(&vp->isr_lock);
    uint8_t v = vp->isr;
    if (!peek && v) {
        vp->isr = 0;
        pci_dev_set_intx(&vp->pci, false);
    }
    pthread_mutex_unlock(&vp->isr_lock);
    return v;
}

static uint32_t entry_word(const struct virtio_pci *vp, unsigned v,
                           unsigned off)
{
    return get_le32(vp->table[v].raw + off);
}

static bool entry_masked(const struct virtio_pci *vp, unsigned v)
{
    return entry_word(vp, v, 12) & MSIX_ENTRY_MASKED;
}

static bool deliverable(const struct virtio_pci *vp, unsigned v)
{
    return vp->msix_enabled && !vp->msix_func_masked && !entry_masked(vp, v);
}

/* Makes vector v's route current and sends what was pending, if the
 * vector is unmasked now (MSI-X lock held). */
static void msix_sync_locked(struct virtio_pci *vp, unsigned v)
{
    if (!deliverable(vp, v))
        return;
    uint64_t addr = entry_word(vp, v, 0) |
                    (uint64_t)entry_word(vp, v, 4) << 32;
    msi_vector_update(&vp->vectors[v], addr, entry_word(vp, v, 8));
    if (vp->pending & (1ULL << v)) {
        vp->pending &= ~(1ULL << v);
        msi_vector_fire(&vp->vectors[v]);
    }
}

static void msix_deliver_locked(struct virtio_pci *vp, unsigned v)
{
    if (v >= vp->nvectors)
        return; /* VIRTIO_MSI_NO_VECTOR */
    if (!deliverable(vp, v))
        vp->pending |= 1ULL << v;
    else
        msi_vector_fire(&vp->vectors[v]);
}

static uint16_t load_vector(const uint16_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The transport's interrupt hook; runs without the device lock. */
static void vp_interrupt(void *opaque, uint64_t mask)
{
    struct virtio_pci *vp = opaque;
    pthread_mutex_lock(&vp->msix_lock);
    bool msix = vp->msix_enabled;
    if (msix) {
        if (mask & VIRTIO_IRQ_CONFIG)
            msix_deliver_locked(vp, load_vector(&vp->config_vector));
        for (unsigned q = 0; q < vp->vdev->num_queues; q++)
            if (mask & (1ULL << q))
                msix_deliver_locked(vp, load_vector(&vp->queue_vector[q]));
    }
    pthread_mutex_unlock(&vp->msix_lock);
    if (msix)
        return;
    uint8_t bits = 0;
    if (mask & VIRTIO_IRQ_CONFIG)
        bits |= VIRTIO_ISR_CONFIG;
    if (mask & ~VIRTIO_IRQ_CONFIG)
        bits |= VIRTIO_ISR_QUEUE;
    raise_isr(vp, bits);
}

static void vp_kick(void *opaque, unsigned q)
{
    signal_queue(opaque, q);
}

static const struct virtio_transport_ops vp_transport = {
    .interrupt = vp_interrupt,
    .kick = vp_kick,
};

/* ---- Registers shared by both interfaces (device lock held) -------------- */

static void store_vector(struct virtio_pci *vp, uint16_t *p, uint32_t v)
{
    /* An out-of-range vector reads back as NO_VECTOR: mapping failed. */
    uint16_t val = v < vp->nvectors ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
    __atomic_store_n(p, val, __ATOMIC_RELAXED);
}

static void transport_reset(struct virtio_pci *vp)
{
    vp->dfselect = vp->gfselect = 0;
    vp->queue_select = 0;
    store_vector(vp, &vp->config_vector, VIRTIO_MSI_NO_VECTOR);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        store_vector(vp, &vp->queue_vector[q], VIRTIO_MSI_NO_VECTOR);
    read_isr(vp, false);
}

static void write_status(struct virtio_pci *vp, uint8_t val, bool modern)
{
    if (virtio_dev_set_status(vp->vdev, val, modern))
        transport_reset(vp);
}

static struct virtqueue *selected_queue(struct virtio_pci *vp)
{
    unsigned q = vp->queue_select;
    return q < vp->vdev->num_queues ? &vp->vdev->vq[q] : NULL;
}

/* ---- Modern common configuration --------------------------------------- */

enum common_field {
    CF_DFSELECT, CF_DF, CF_GFSELECT, CF_GF, CF_MSIX, CF_NUMQ, CF_STATUS,
    CF_CFGGEN, CF_QSELECT, CF_QSIZE, CF_QMSIX, CF_QENABLE, CF_QNOFF,
    CF_QDESCLO, CF_QDESCHI, CF_QAVAILLO, CF_QAVAILHI, CF_QUSEDLO,
    CF_QUSEDHI, CF_COUNT
};

static const struct {
    uint8_t off, size;
} common_layout[CF_COUNT] = {
    [CF_DFSELECT] = {VIRTIO_PCI_COMMON_DFSELECT, 4},
    [CF_DF] = {VIRTIO_PCI_COMMON_DF, 4},
    [CF_GFSELECT] = {VIRTIO_PCI_COMMON_GFSELECT, 4},
    [CF_GF] = {VIRTIO_PCI_COMMON_GF, 4},
    [CF_MSIX] = {VIRTIO_PCI_COMMON_MSIX, 2},
    [CF_NUMQ] = {VIRTIO_PCI_COMMON_NUMQ, 2},
    [CF_STATUS] = {VIRTIO_PCI_COMMON_STATUS, 1},
    [CF_CFGGEN] = {VIRTIO_PCI_COMMON_CFGGENERATION, 1},
    [CF_QSELECT] = {VIRTIO_PCI_COMMON_Q_SELECT, 2},
    [CF_QSIZE] = {VIRTIO_PCI_COMMON_Q_SIZE, 2},
    [CF_QMSIX] = {VIRTIO_PCI_COMMON_Q_MSIX, 2},
    [CF_QENABLE] = {VIRTIO_PCI_COMMON_Q_ENABLE, 2},
    [CF_QNOFF] = {VIRTIO_PCI_COMMON_Q_NOFF, 2},
    [CF_QDESCLO] = {VIRTIO_PCI_COMMON_Q_DESCLO, 4},
    [CF_QDESCHI] = {VIRTIO_PCI_COMMON_Q_DESCHI, 4},
    [CF_QAVAILLO] = {VIRTIO_PCI_COMMON_Q_AVAILLO, 4},
    [CF_QAVAILHI] = {VIRTIO_PCI_COMMON_Q_AVAILHI, 4},
    [CF_QUSEDLO] = {VIRTIO_PCI_COMMON_Q_USEDLO, 4},
    [CF_QUSEDHI] = {VIRTIO_PCI_COMMON_Q_USEDHI, 4},
};

static uint64_t *queue_addr(struct virtqueue *vq, enum common_field f)
{
    if (f <= CF_QDESCHI)
        return &vq->desc_gpa;
    return f <= CF_QAVAILHI ? &vq->avail_gpa : &vq->used_gpa;
}

static uint32_t common_get(struct virtio_pci *vp, enum common_field f)
{
    struct virtio_dev *d = vp->vdev;
    struct virtqueue *vq = selected_queue(vp);
    switch (f) {
    case CF_DFSELECT: return vp->dfselect;
    case CF_DF: return virtio_dev_host_features(d, vp->dfselect);
    case CF_GFSELECT: return vp->gfselect;
    case CF_GF: return virtio_dev_driver_features(d, vp->gfselect);
    case CF_MSIX: return load_vector(&vp->config_vector);
    case CF_NUMQ: return d->num_queues;
    case CF_STATUS: return virtio_dev_get_status(d);
    case CF_CFGGEN: return d->config_generation;
    case CF_QSELECT: return vp->queue_select;
    case CF_QSIZE: return vq ? vq->size : 0;
    case CF_QMSIX:
        return vq ? load_vector(&vp->queue_vector[vp->queue_select])
                  : VIRTIO_MSI_NO_VECTOR;
    case CF_QENABLE: return vq ? vq->ready : 0;
    case CF_QNOFF: return vq ? vp->queue_select : 0;
    default: break;
    }
    if (!vq)
        return 0;
    uint64_t a = *queue_addr(vq, f);
    bool high = f == CF_QDESCHI || f == CF_QAVAILHI || f == CF_QUSEDHI;
    return (uint32_t)(high ? a >> 32 : a);
}

static void set_queue_addr(struct virtqueue *vq, enum common_field f,
                           uint32_t v)
{
    uint64_t *a = queue_addr(vq, f);
    if (f == CF_QDESCHI || f == CF_QAVAILHI || f == CF_QUSEDHI)
        *a = (*a & UINT32_MAX) | (uint64_t)v << 32;
    else
        *a = (*a & ~(uint64_t)UINT32_MAX) | v;
}

static void common_set(struct virtio_pci *vp, enum common_field f, uint32_t v)
{
    struct virtio_dev *d = vp->vdev;
    struct virtqueue *vq = selected_queue(vp);
    switch (f) {
    case CF_DFSELECT: vp->dfselect = v; return;
    case CF_GFSELECT: vp->gfselect = v; return;
    case CF_GF: virtio_dev_set_driver_features(d, vp->gfselect, v); return;
    case CF_MSIX: store_vector(vp, &vp->config_vector, v); return;
    case CF_STATUS: write_status(vp, (uint8_t)v, true); return;
    case CF_QSELECT: vp->queue_select = (uint16_t)v; return;
    default: break;
    }
    if (!vq)
        return; /* queue_select names no queue */
    unsigned q = vp->queue_select;
    if (f == CF_QMSIX) {
        store_vector(vp, &vp->queue_vector[q], v);
    } else if (f == CF_QENABLE) {
        if (v == 1 && !vq->ready)
            virtio_dev_queue_enable(d, q);
    } else if (vq->ready) {
        return; /* the ring is fixed while the queue runs */
    } else if (f == CF_QSIZE) {
        vq->size = (uint16_t)v; /* checked when the queue is enabled */
    } else if (f >= CF_QDESCLO) {
        set_queue_addr(vq, f, v);
    }
}

/* Byte-wise access to a register image: any width and alignment works,
 * and a 64-bit address may be written as two halves. */
static void common_read(struct virtio_pci *vp, unsigned off, uint8_t *out,
                        unsigned len)
{
    memset(out, 0, len);
    for (unsigned f = 0; f < CF_COUNT; f++) {
        unsigned start = common_layout[f].off;
        unsigned end = start + common_layout[f].size;
        if (end <= off || start >= off + len)
            continue;
        uint32_t v = common_get(vp, f);
        for (unsigned i = MAX(start, off); i < MIN(end, off + len); i++)
            out[i - off] = (uint8_t)(v >> (8 * (i - start)));
    }
}

static void common_write(struct virtio_pci *vp, unsigned off,
                         const uint8_t *in, unsigned len)
{
    for (unsigned f = 0; f < CF_COUNT; f++) {
        unsigned start = common_layout[f].off;
        unsigned end = start + common_layout[f].size;
        if (end <= off || start >= off + len)
            continue;
        uint32_t v = common_get(vp, f);
        for (unsigned i = MAX(start, off); i < MIN(end, off + len); i++) {
            unsigned shift = 8 * (i - start);
            v = (v & ~(0xFFu << shift)) | (uint32_t)in[i - off] << shift;
        }
        common_set(vp, f, v);
    }
}

/* ---- BAR4: modern structures ------------------------------------------- */

static bool within(unsigned off, unsigned len, unsigned start, unsigned size)
{
    return off >= start && off - start < size && len <= size - (off - start);
}

static void modern_read(struct virtio_pci *vp, unsigned off, uint8_t *out,
                        unsigned len, bool peek)
{
    struct virtio_dev *d = vp->vdev;
    memset(out, 0, len);
    if (within(off, len, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN))
        common_read(vp, off - VIRTIO_PCI_COMMON_OFF, out, len);
    else if (off == VIRTIO_PCI_ISR_OFF)
        out[0] = read_isr(vp, peek);
    else if (within(off, len, VIRTIO_PCI_DEVICE_OFF, d->config_len))
        virtio_dev_config_read(d, off - VIRTIO_PCI_DEVICE_OFF, out, len);
}

static void modern_write(struct virtio_pci *vp, unsigned off,
                         const uint8_t *in, unsigned len)
{
    struct virtio_dev *d = vp->vdev;
    unsigned notify_len = d->num_queues * VIRTIO_PCI_NOTIFY_MULTIPLIER;
    if (within(off, len, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN))
        common_write(vp, off - VIRTIO_PCI_COMMON_OFF, in, len);
    else if (within(off, len, VIRTIO_PCI_DEVICE_OFF, d->config_len))
        virtio_dev_config_write(d, off - VIRTIO_PCI_DEVICE_OFF, in, len);
    else if (within(off, 1, VIRTIO_PCI_NOTIFY_OFF, notify_len))
        signal_queue(vp, (off - VIRTIO_PCI_NOTIFY_OFF) /
                             VIRTIO_PCI_NOTIFY_MULTIPLIER);
}

static void bar4_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct virtio_pci *vp = opaque;
    virtio_dev_lock(vp->vdev);
    modern_read(vp, (unsigned)off, data, len, false);
    virtio_dev_unlock(vp->vdev);
}

static void bar4_write(void *opaque, uint64_t off, const void *data,
                       unsigned len)
{
    struct virtio_pci *vp = opaque;
    virtio_dev_lock(vp->vdev);
    modern_write(vp, (unsigned)off, data, len);
    virtio_dev_unlock(vp->vdev);
}

static const struct bus_ops bar4_ops = {bar4_read, bar4_write};

/* ---- BAR0: legacy register block ----------------------------------------- */

static bool msix_enabled(struct virtio_pci *vp)
{
    pthread_mutex_lock(&vp->msix_lock);
    bool on = vp->msix_enabled;
    pthread_mutex_unlock(&vp->msix_lock);
    return on;
}

static uint16_t legacy_queue_size(const struct virtqueue *vq)
{
    return MIN(vq->max_size, VIRTIO_PCI_LEGACY_MAX_QUEUE);
}

static uint32_t legacy_get(struct virtio_pci *vp, unsigned reg, bool peek)
{
    struct virtio_dev *d = vp->vdev;
    struct virtqueue *vq = selected_queue(vp);
    switch (reg) {
    case VIRTIO_PCI_LEGACY_HOST_FEATURES: return virtio_dev_host_features(d, 0);
    case VIRTIO_PCI_LEGACY_GUEST_FEATURES:
        return virtio_dev_driver_features(d, 0);
    case VIRTIO_PCI_LEGACY_QUEUE_PFN:
        return vq && vq->ready ? (uint32_t)(vq->desc_gpa / VQ_LEGACY_ALIGN)
                               : 0;
    case VIRTIO_PCI_LEGACY_QUEUE_NUM: return vq ? legacy_queue_size(vq) : 0;
    case VIRTIO_PCI_LEGACY_QUEUE_SEL: return vp->queue_select;
    case VIRTIO_PCI_LEGACY_STATUS: return d->status;
    case VIRTIO_PCI_LEGACY_ISR: return read_isr(vp, peek);
    case VIRTIO_PCI_LEGACY_MSIX_CONFIG: return load_vector(&vp->config_vector);
    case VIRTIO_PCI_LEGACY_MSIX_QUEUE:
        return vq ? load_vector(&vp->queue_vector[vp->queue_select])
                  : VIRTIO_MSI_NO_VECTOR;
    default: return 0; /* QUEUE_NOTIFY reads as 0 */
    }
}

static void legacy_set_pfn(struct virtio_pci *vp, uint32_t pfn)
{
    struct virtqueue *vq = selected_queue(vp);
    if (!vq)
        return;
    unsigned q = vp->queue_select;
    virtio_dev_queue_disable(vp->vdev, q);
    if (pfn == 0)
        return; /* PFN 0 stops the queue */
    vq->size = legacy_queue_size(vq);
    vq_set_legacy_layout(vq, pfn);
    virtio_dev_queue_enable(vp->vdev, q);
}

static void legacy_set(struct virtio_pci *vp, unsigned reg, uint32_t v)
{
    struct virtio_dev *d = vp->vdev;
    switch (reg) {
    case VIRTIO_PCI_LEGACY_GUEST_FEATURES:
        virtio_dev_set_legacy_features(d, v);
        break;
    case VIRTIO_PCI_LEGACY_QUEUE_PFN: legacy_set_pfn(vp, v); break;
    case VIRTIO_PCI_LEGACY_QUEUE_SEL: vp->queue_select = (uint16_t)v; break;
    case VIRTIO_PCI_LEGACY_QUEUE_NOTIFY: signal_queue(vp, v); break;
    case VIRTIO_PCI_LEGACY_STATUS: write_status(vp, (uint8_t)v, false); break;
    case VIRTIO_PCI_LEGACY_MSIX_CONFIG:
        store_vector(vp, &vp->config_vector, v);
        break;
    case VIRTIO_PCI_LEGACY_MSIX_QUEUE:
        if (selected_queue(vp))
            store_vector(vp, &vp->queue_vector[vp->queue_select], v);
        break;
    default: break;
    }
}

static const uint8_t legacy_reg_size[] = {
    [VIRTIO_PCI_LEGACY_HOST_FEATURES] = 4, [VIRTIO_PCI_LEGACY_GUEST_FEATURES] = 4,
    [VIRTIO_PCI_LEGACY_QUEUE_PFN] = 4,     [VIRTIO_PCI_LEGACY_QUEUE_NUM] = 2,
    [VIRTIO_PCI_LEGACY_QUEUE_SEL] = 2,     [VIRTIO_PCI_LEGACY_QUEUE_NOTIFY] = 2,
    [VIRTIO_PCI_LEGACY_STATUS] = 1,        [VIRTIO_PCI_LEGACY_ISR] = 1,
    [VIRTIO_PCI_LEGACY_MSIX_CONFIG] = 2,   [VIRTIO_PCI_LEGACY_MSIX_QUEUE] = 2,
};

/* Registers below the device configuration, accessed byte-wise like the
 * common configuration. header is 20, or 24 with the MSI-X vectors. */
static void legacy_regs_read(struct virtio_pci *vp, unsigned off, uint8_t *out,
                             unsigned len, unsigned header, bool peek)
{
    for (unsigned reg = 0; reg < header; reg += legacy_reg_size[reg]) {
        unsigned end = reg + legacy_reg_size[reg];
        if (end <= off || reg >= off + len)
            continue;
        uint32_t v = legacy_get(vp, reg, peek);
        for (unsigned i = MAX(reg, off); i < MIN(end, off + len); i++)
            out[i - off] = (uint8_t)(v >> (8 * (i - reg)));
    }
}

static void legacy_regs_write(struct virtio_pci *vp, unsigned off,
                              const uint8_t *in, unsigned len, unsigned header)
{
    for (unsigned reg = 0; reg < header; reg += legacy_reg_size[reg]) {
        unsigned end = reg + legacy_reg_size[reg];
        if (end <= off || reg >= off + len)
            continue;
        /* Start from 0, not the current value: reading would clear ISR. */
        uint32_t v = reg == VIRTIO_PCI_LEGACY_ISR ? 0
                                                  : legacy_get(vp, reg, true);
        for (unsigned i = MAX(reg, off); i < MIN(end, off + len); i++) {
            unsigned shift = 8 * (i - reg);
            v = (v & ~(0xFFu << shift)) | (uint32_t)in[i - off] << shift;
        }
        legacy_set(vp, reg, v);
    }
}

static unsigned legacy_header(struct virtio_pci *vp)
{
    return msix_enabled(vp) ? VIRTIO_PCI_LEGACY_CONFIG_MSIX
                            : VIRTIO_PCI_LEGACY_CONFIG;
}

static void legacy_read(struct virtio_pci *vp, unsigned off, uint8_t *out,
                        unsigned len, bool peek)
{
    unsigned header = legacy_header(vp);
    memset(out, 0, len);
    legacy_regs_read(vp, off, out, len, header, peek);
    if (off + len > header) {
        unsigned start = MAX(off, header);
        virtio_dev_config_read(vp->vdev, start - header, out + (start - off),
                               off + len - start);
    }
}

static void legacy_write(struct virtio_pci *vp, unsigned off,
                         const uint8_t *in, unsigned len)
{
    unsigned header = legacy_header(vp);
    legacy_regs_write(vp, off, in, len, header);
    if (off + len > header) {
        unsigned start = MAX(off, header);
        virtio_dev_config_write(vp->vdev, start - header, in + (start - off),
                                off + len - start);
    }
}

static void bar0_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct virtio_pci *vp = opaque;
    virtio_dev_lock(vp->vdev);
    legacy_read(vp, (unsigned)off, data, len, false);
    virtio_dev_unlock(vp->vdev);
}

static void bar0_write(void *opaque, uint64_t off, const void *data,
                       unsigned len)
{
    struct virtio_pci *vp = opaque;
    virtio_dev_lock(vp->vdev);
    legacy_write(vp, (unsigned)off, data, len);
    virtio_dev_unlock(vp->vdev);
}

static const struct bus_ops bar0_ops = {bar0_read, bar0_write};

/* ---- BAR1: MSI-X table and PBA ------------------------------------------- */

static void bar1_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct virtio_pci *vp = opaque;
    uint8_t *out = data;
    unsigned table_len = vp->nvectors * 16;
    pthread_mutex_lock(&vp->msix_lock);
    for (unsigned i = 0; i < len; i++) {
        uint64_t o = off + i;
        out[i] = 0;
        if (o < table_len)
            out[i] = vp->table[o / 16].raw[o % 16];
        else if (o >= VIRTIO_PCI_MSIX_PBA_OFF && o < VIRTIO_PCI_MSIX_PBA_OFF + 8)
            out[i] = (uint8_t)(vp->pending >> (8 * (o - VIRTIO_PCI_MSIX_PBA_OFF)));
    }
    pthread_mutex_unlock(&vp->msix_lock);
}

static void bar1_write(void *opaque, uint64_t off, const void *data,
                       unsigned len)
{
    struct virtio_pci *vp = opaque;
    const uint8_t *in = data;
    unsigned table_len = vp->nvectors * 16;
    pthread_mutex_lock(&vp->msix_lock);
    for (unsigned i = 0; i < len; i++) {
        uint64_t o = off + i;
        if (o < table_len)
            vp->table[o / 16].raw[o % 16] = in[i]; /* the PBA is read-only */
    }
    for (uint64_t o = off; o < off + len && o < table_len; o += 16 - o % 16)
        msix_sync_locked(vp, (unsigned)(o / 16));
    pthread_mutex_unlock(&vp->msix_lock);
}

static const struct bus_ops bar1_ops = {bar1_read, bar1_write};

/* ---- Configuration space hooks (PCI host lock held) ------------------------ */

static bool touches(unsigned off, unsigned len, unsigned start, unsigned n)
{
    return off < start + n && start < off + len;
}

static void msix_control_written(struct virtio_pci *vp)
{
    uint16_t ctrl = get_le16(&vp->pci.cfg[vp->msix_cap + MSIX_CAP_CTRL]);
    pthread_mutex_lock(&vp->msix_lock);
    vp->msix_enabled = ctrl & MSIX_CTRL_ENABLE;
    vp->msix_func_masked = ctrl & MSIX_CTRL_MASKALL;
    for (unsigned v = 0; v < vp->nvectors; v++)
        msix_sync_locked(vp, v);
    pthread_mutex_unlock(&vp->msix_lock);
}

/* The PCI_CFG window: an access of cap.length bytes at cap.offset of
 * cap.bar, through pci_cfg_data, performed when the guest reads or writes
 * pci_cfg_data, with the same side effects as through the BAR (an ISR read
 * clears the ISR). */
static bool window(struct virtio_pci *vp, unsigned *bar, unsigned *off,
                   unsigned *len)
{
    const uint8_t *cap = &vp->pci.cfg[vp->pcicfg_cap];
    *bar = cap[CAP_BAR];
    *off = get_le32(cap + CAP_OFFSET);
    *len = get_le32(cap + CAP_LENGTH);
    if (*len != 1 && *len != 2 && *len != 4)
        return false;
    if (*bar == VIRTIO_PCI_MODERN_BAR)
        return within(*off, *len, 0, VIRTIO_PCI_MODERN_BAR_SIZE);
    if (*bar == VIRTIO_PCI_LEGACY_BAR && vp->transitional)
        return within(*off, *len, 0, vp->legacy_size);
    return false;
}

static void window_access(struct virtio_pci *vp, bool write)
{
    unsigned bar, off, len;
    uint8_t *data = &vp->pci.cfg[vp->pcicfg_cap + CAP_EXTRA];
    if (!window(vp, &bar, &off, &len))
        return;
    virtio_dev_lock(vp->vdev);
    if (bar == VIRTIO_PCI_MODERN_BAR && write)
        modern_write(vp, off, data, len);
    else if (bar == VIRTIO_PCI_MODERN_BAR)
        modern_read(vp, off, data, len, true);
    else if (write)
        legacy_write(vp, off, data, len);
    else
        legacy_read(vp, off, data, len, true);
    virtio_dev_unlock(vp->vdev);
}

static void vp_config_written(struct pci_dev *d, unsigned off, unsigned len,
                              uint32_t old)
{
    struct virtio_pci *vp = d->opaque;
    if (touches(off, len, vp->msix_cap + MSIX_CAP_CTRL, 2))
        msix_control_written(vp);
    if (touches(off, len, vp->pcicfg_cap + CAP_EXTRA, 4))
        window_access(vp, true);
}

static void vp_config_read(struct pci_dev *d, unsigned off, unsigned len)
{
    struct virtio_pci *vp = d->opaque;
    if (touches(off, len, vp->pcicfg_cap + CAP_EXTRA, 4))
        window_access(vp, false);
}

/* ---- Construction -------------------------------------------------------- */

static uint8_t add_vendor_cap(struct virtio_pci *vp, uint8_t type,
                              uint8_t bar, uint32_t off, uint32_t len,
                              uint32_t extra, bool has_extra, bool writable)
{
    uint8_t body[CAP_EXTRA + 4 - 2] = {0};
    uint8_t wmask[sizeof(body)] = {0};
    uint8_t cap_len = has_extra ? CAP_EXTRA + 4 : CAP_EXTRA;
    body[0] = cap_len;
    body[1] = type;
    body[CAP_BAR - 2] = bar;
    put_le32(body + CAP_OFFSET - 2, off);
    put_le32(body + CAP_LENGTH - 2, len);
    put_le32(body + CAP_EXTRA - 2, extra);
    if (writable) {
        wmask[CAP_BAR - 2] = 0xFF;
        memset(wmask + CAP_OFFSET - 2, 0xFF, 4 + 4 + 4);
    }
    return pci_dev_add_cap(&vp->pci, PCI_CAP_ID_VNDR, body,
                           (uint8_t)(cap_len - 2), wmask);
}

static uint8_t add_msix_cap(struct virtio_pci *vp)
{
    uint8_t body[10] = {0}, wmask[10] = {0};
    put_le16(body, (uint16_t)(vp->nvectors - 1));
    put_le32(body + 2, VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_MSIX_BAR);
    put_le32(body + 6, VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_MSIX_BAR);
    put_le16(wmask, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
    return pci_dev_add_cap(&vp->pci, PCI_CAP_ID_MSIX, body, sizeof(body),
                           wmask);
}

static int add_caps(struct virtio_pci *vp)
{
    const uint8_t bar = VIRTIO_PCI_MODERN_BAR;
    unsigned nq = vp->vdev->num_queues;
    bool ok = add_vendor_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, bar,
                             VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN, 0,
                             false, false) &&
              add_vendor_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, bar,
                             VIRTIO_PCI_ISR_OFF, 1, 0, false, false) &&
              add_vendor_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, bar,
                             VIRTIO_PCI_DEVICE_OFF, vp->vdev->config_len, 0,
                             false, false) &&
              add_vendor_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, bar,
                             VIRTIO_PCI_NOTIFY_OFF,
                             nq * VIRTIO_PCI_NOTIFY_MULTIPLIER,
                             VIRTIO_PCI_NOTIFY_MULTIPLIER, true, false);
    vp->pcicfg_cap = add_vendor_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, 0,
                                    true, true);
    vp->msix_cap = add_msix_cap(vp);
    return ok && vp->pcicfg_cap && vp->msix_cap ? 0 : -1;
}

static unsigned legacy_bar_size(unsigned config_len)
{
    unsigned n = 32;
    while (n < VIRTIO_PCI_LEGACY_CONFIG_MSIX + config_len)
        n *= 2;
    return n;
}

static void init_function(struct virtio_pci *vp)
{
    const struct virtio_dev_ops *ops = vp->vdev->ops;
    uint16_t type = ops->device_id;
    uint16_t tid = transitional_id(type);
    vp->transitional = tid != 0;
    /* Transitional: revision 0, subsystem ID = device type (legacy
     * drivers match on it); modern-only: revision 1, subsystem >= 0x40. */
    pci_dev_init(&vp->pci, ops->name, VIRTIO_PCI_VENDOR,
                 vp->transitional ? tid : VIRTIO_PCI_MODERN_DEVICE_BASE + type,
                 ops->pci_class, vp->transitional ? 0 : 1, VIRTIO_PCI_VENDOR,
                 vp->transitional ? type : (uint16_t)(0x40 + type));
    pci_dev_set_intx_pin(&vp->pci, 1);
    if (vp->transitional) {
        vp->legacy_size = legacy_bar_size(vp->vdev->config_len);
        pci_dev_set_bar(&vp->pci, VIRTIO_PCI_LEGACY_BAR, PCI_BAR_IO,
                        vp->legacy_size, false, &bar0_ops, vp);
    }
    pci_dev_set_bar(&vp->pci, VIRTIO_PCI_MSIX_BAR, PCI_BAR_MEM32,
                    VIRTIO_PCI_MSIX_BAR_SIZE, false, &bar1_ops, vp);
    /* 64-bit prefetchable like other implementations, so firmware may move
     * it above 4 GiB when the 32-bit window is full. */
    pci_dev_set_bar(&vp->pci, VIRTIO_PCI_MODERN_BAR, PCI_BAR_MEM64,
                    VIRTIO_PCI_MODERN_BAR_SIZE, true, &bar4_ops, vp);
    vp->pci.opaque = vp;
    vp->pci.config_written = vp_config_written;
    vp->pci.config_read = vp_config_read;
    vp->pci.bar_moved = vp_bar_moved;
}

static int init_vectors(struct virtio_pci *vp, struct irq_router *router)
{
    vp->nvectors = vp->vdev->num_queues + 1;
    for (unsigned v = 0; v < vp->nvectors; v++) {
        put_le32(vp->table[v].raw + 12, MSIX_ENTRY_MASKED);
        if (msi_vector_init(router, &vp->vectors[v]) < 0) {
            for (unsigned i = 0; i < v; i++)
                msi_vector_destroy(&vp->vectors[i]);
            return -1;
        }
    }
    vp->vectors_ready = true;
    return 0;
}

static int init_notifiers(struct virtio_pci *vp)
{
    for (unsigned q = 0; q < vp->vdev->num_queues; q++) {
        struct virtio_pci_notifier *n = &vp->notifier[q];
        n->vp = vp;
        n->queue = q;
        n->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (n->fd < 0) {
            report_error("%s: cannot create an eventfd: %s",
                         vp->vdev->ops->name, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int virtio_pci_init(struct virtio_pci *vp, struct virtio_dev *vdev,
                    struct irq_router *router, virtio_pci_ioeventfd_fn fn,
                    void *fn_opaque)
{
    memset(vp, 0, sizeof(*vp));
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        vp->notifier[q].fd = -1;
    vp->vdev = vdev;
    vp->ioeventfd = fn;
    vp->ioeventfd_opaque = fn_opaque;
    if (pthread_mutex_init(&vp->isr_lock, NULL) ||
        pthread_mutex_init(&vp->msix_lock, NULL)) {
        report_error("%s: cannot initialise locks", vdev->ops->name);
        return -1;
    }
    init_function(vp);
    vp->nvectors = vdev->num_queues + 1;
    if (add_caps(vp) < 0) {
        report_error("%s: PCI capabilities do not fit", vdev->ops->name);
        virtio_pci_destroy(vp);
        return -1;
    }
    transport_reset(vp);
    if (init_notifiers(vp) < 0 || init_vectors(vp, router) < 0) {
        virtio_pci_destroy(vp);
        return -1;
    }
    virtio_dev_set_transport(vdev, &vp_transport, vp);
    return 0;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        struct virtio_pci_notifier *n = &vp->notifier[q];
        if (n->modern_bound)
            bind_notifier(vp, n, false, false, n->modern_addr);
        if (n->legacy_bound)
            bind_notifier(vp, n, true, false, n->legacy_addr);
        if (n->fd >= 0)
            close(n->fd);
        n->fd = -1;
    }
    if (vp->vectors_ready)
        for (unsigned v = 0; v < vp->nvectors; v++)
            msi_vector_destroy(&vp->vectors[v]);
    vp->vectors_ready = false;
    if (vp->vdev && vp->vdev->transport_opaque == vp)
        virtio_dev_set_transport(vp->vdev, NULL, NULL);
    pthread_mutex_destroy(&vp->isr_lock);
    pthread_mutex_destroy(&vp->msix_lock);
}
