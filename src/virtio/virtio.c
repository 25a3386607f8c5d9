#include "virtio/virtio.h"

#include <string.h>

#include "util.h"

#define RING_FEATURES                                                          \
    (VIRTIO_FEATURE(VIRTIO_F_RING_INDIRECT_DESC) |                             \
     VIRTIO_FEATURE(VIRTIO_F_RING_EVENT_IDX) |                                 \
     VIRTIO_FEATURE(VIRTIO_F_VERSION_1))

int virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
                    const struct guest_mem *mem, uint64_t features,
                    unsigned num_queues, uint16_t queue_max,
                    unsigned config_len)
{
    if (num_queues == 0 || num_queues > VIRTIO_MAX_QUEUES ||
        !IS_POWER_OF_2(queue_max) || queue_max > VQ_SIZE_LIMIT ||
        config_len > VIRTIO_CONFIG_MAX)
        return -1;
    memset(d, 0, sizeof(*d));
    if (pthread_mutex_init(&d->lock, NULL) != 0)
        return -1;
    d->ops = ops;
    d->mem = mem;
    d->host_features = features | RING_FEATURES;
    d->num_queues = num_queues;
    d->config_len = config_len;
    for (unsigned q = 0; q < num_queues; q++)
        vq_init(&d->vq[q], mem, queue_max);
    return 0;
}

void virtio_dev_destroy(struct virtio_dev *d)
{
    pthread_mutex_destroy(&d->lock);
}

void virtio_dev_set_transport(struct virtio_dev *d,
                              const struct virtio_transport_ops *ops,
                              void *opaque)
{
    d->transport = ops;
    d->transport_opaque = opaque;
}

void virtio_dev_lock(struct virtio_dev *d)
{
    pthread_mutex_lock(&d->lock);
}

void virtio_dev_unlock(struct virtio_dev *d)
{
    uint64_t pending = d->irq_pending;
    d->irq_pending = 0;
    pthread_mutex_unlock(&d->lock);
    if (pending && d->transport && d->transport->interrupt)
        d->transport->interrupt(d->transport_opaque, pending);
}

/* ---- Features ------------------------------------------------------------ */

static uint32_t feature_word(uint64_t f, unsigned sel)
{
    return sel < 2 ? (uint32_t)(f >> (32 * sel)) : 0;
}

uint32_t virtio_dev_host_features(const struct virtio_dev *d, unsigned sel)
{
    return feature_word(d->host_features, sel);
}

uint32_t virtio_dev_driver_features(const struct virtio_dev *d, unsigned sel)
{
    return feature_word(d->driver_features, sel);
}

void virtio_dev_set_driver_features(struct virtio_dev *d, unsigned sel,
                                    uint32_t val)
{
    if (sel >= 2 || (d->status & VIRTIO_STATUS_FEATURES_OK))
        return;
    unsigned shift = 32 * sel;
    d->driver_features &= ~((uint64_t)UINT32_MAX << shift);
    d->driver_features |= (uint64_t)val << shift;
}

void virtio_dev_set_legacy_features(struct virtio_dev *d, uint32_t val)
{
    d->driver_features = val & d->host_features & UINT32_MAX;
}

bool virtio_dev_has_feature(const struct virtio_dev *d, unsigned bit)
{
    return bit < 64 && (d->driver_features & d->host_features &
                        VIRTIO_FEATURE(bit));
}

bool virtio_dev_is_modern(const struct virtio_dev *d)
{
    return virtio_dev_has_feature(d, VIRTIO_F_VERSION_1);
}

static bool features_acceptable(const struct virtio_dev *d, bool modern)
{
    if (d->driver_features & ~d->host_features)
        return false;
    return !modern || (d->driver_features & VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
}

/* ---- Status and reset ---------------------------------------------------- */

static void dev_reset(struct virtio_dev *d)
{
    if (d->status)
        d->status_before_reset = d->status;
    d->status = 0;
    d->driver_features = 0;
    for (unsigned q = 0; q < d->num_queues; q++)
        vq_reset(&d->vq[q]);
    d->stale += d->inflight;
    d->inflight = 0;
    d->generation++;
    d->irq_pending = 0;
    if (d->ops->reset)
        d->ops->reset(d);
}

static void apply_ring_features(struct virtio_dev *d, struct virtqueue *vq)
{
    vq->event_idx = virtio_dev_has_feature(d, VIRTIO_F_RING_EVENT_IDX);
    vq->indirect = virtio_dev_has_feature(d, VIRTIO_F_RING_INDIRECT_DESC);
}

static void driver_ok(struct virtio_dev *d)
{
    for (unsigned q = 0; q < d->num_queues; q++) {
        if (!d->vq[q].ready)
            continue;
        apply_ring_features(d, &d->vq[q]);
        /* Buffers may have been queued before DRIVER_OK. */
        if (d->transport && d->transport->kick)
            d->transport->kick(d->transport_opaque, q);
    }
}

bool virtio_dev_set_status(struct virtio_dev *d, uint8_t val, bool modern)
{
    if (val == 0) {
        dev_reset(d);
        return true;
    }
    uint8_t old = d->status;
    val = (uint8_t)((val & ~VIRTIO_STATUS_NEEDS_RESET) |
                    (old & VIRTIO_STATUS_NEEDS_RESET));
    if ((val & VIRTIO_STATUS_FEATURES_OK) &&
        !(old & VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(d, modern))
        val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
    d->status = val;
    if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
        driver_ok(d);
    return false;
}

uint8_t virtio_dev_get_status(const struct virtio_dev *d)
{
    if (d->status == 0 && d->stale > 0)
        return d->status_before_reset;
    return d->status;
}

/* ---- Queues -------------------------------------------------------------- */

int virtio_dev_queue_enable(struct virtio_dev *d, unsigned q)
{
    if (q >= d->num_queues)
        return -1;
    struct virtqueue *vq = &d->vq[q];
    apply_ring_features(d, vq);
    if (vq_enable(vq) < 0) {
        guest_warn("%s: queue %u set up outside guest RAM or misaligned",
                   d->ops->name, q);
        virtio_dev_needs_reset(d);
        return -1;
    }
    return 0;
}

void virtio_dev_queue_disable(struct virtio_dev *d, unsigned q)
{
    if (q < d->num_queues)
        vq_reset(&d->vq[q]);
}

bool virtio_dev_queue_live(const struct virtio_dev *d, unsigned q)
{
    if (q >= d->num_queues || !d->vq[q].ready || d->vq[q].broken)
        return false;
    if (d->status & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
        return false;
    /* Legacy drivers may use a queue before DRIVER_OK. */
    return (d->status & VIRTIO_STATUS_DRIVER_OK) || !virtio_dev_is_modern(d);
}

/* ---- Configuration space --------------------------------------------------- */

void virtio_dev_config_read(struct virtio_dev *d, unsigned off, void *data,
                            unsigned len)
{
    uint8_t *out = data;
    for (unsigned i = 0; i < len; i++)
        out[i] = off + i < d->config_len ? d->config[off + i] : 0;
}

void virtio_dev_config_write(struct virtio_dev *d, unsigned off,
                             const void *data, unsigned len)
{
    if (!d->ops->config_write || off >= d->config_len ||
        len > d->config_len - off)
        return;
    memcpy(d->config + off, data, len);
    d->ops->config_write(d, off, len);
}

/* ---- Device side ----------------------------------------------------------- */

void virtio_dev_needs_reset(struct virtio_dev *d)
{
    if (d->status & VIRTIO_STATUS_NEEDS_RESET)
        return;
    d->status |= VIRTIO_STATUS_NEEDS_RESET;
    if (d->status & VIRTIO_STATUS_DRIVER_OK)
        d->irq_pending |= VIRTIO_IRQ_CONFIG;
}

void virtio_dev_queue_used(struct virtio_dev *d, unsigned q)
{
    if (q < d->num_queues && vq_should_notify(&d->vq[q]))
        d->irq_pending |= 1ULL << q;
}

void virtio_dev_config_changed(struct virtio_dev *d)
{
    d->config_generation++;
    if (d->status & VIRTIO_STATUS_DRIVER_OK)
        d->irq_pending |= VIRTIO_IRQ_CONFIG;
}

uint32_t virtio_dev_request_begin(struct virtio_dev *d)
{
    d->inflight++;
    return d->generation;
}

bool virtio_dev_request_end(struct virtio_dev *d, uint32_t generation)
{
    if (generation == d->generation) {
        d->inflight--;
        return true;
    }
    d->stale--;
    return false;
}

void virtio_dev_handle_notify(struct virtio_dev *d, unsigned q)
{
    virtio_dev_lock(d);
    if (virtio_dev_queue_live(d, q))
        d->ops->queue_notify(d, q);
    virtio_dev_unlock(d);
}
