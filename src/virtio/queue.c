#include "virtio/queue.h"

#include <string.h>

#include "util.h"

/* Ring layout (all little-endian; the host is x86-64):
 *   desc:  size x {le64 addr, le32 len, le16 flags, le16 next}
 *   avail: le16 flags, le16 idx, le16 ring[size], le16 used_event
 *   used:  le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event
 * The index fields are shared with a guest running on other CPUs, so they
 * are accessed with atomics; the ordering follows the virtio memory model
 * (read avail.idx, then acquire, then the ring; write the used element,
 * release, then used.idx; full barrier before looking at the other side's
 * event index). */

static size_t avail_bytes(uint16_t size)
{
    return 6 + 2 * (size_t)size;
}

static size_t used_bytes(uint16_t size)
{
    return 6 + 8 * (size_t)size;
}

static uint16_t load16(const uint8_t *p)
{
    return __atomic_load_n((const uint16_t *)(const void *)p,
                           __ATOMIC_RELAXED);
}

static void store16(uint8_t *p, uint16_t v)
{
    __atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELAXED);
}

void vq_init(struct virtqueue *vq, const struct guest_mem *mem,
             uint16_t max_size)
{
    memset(vq, 0, sizeof(*vq));
    vq->mem = mem;
    vq->max_size = max_size;
    vq->size = max_size;
}

void vq_reset(struct virtqueue *vq)
{
    vq_init(vq, vq->mem, vq->max_size);
}

void vq_set_legacy_layout(struct virtqueue *vq, uint32_t pfn)
{
    uint64_t desc = (uint64_t)pfn * VQ_LEGACY_ALIGN;
    uint64_t avail = desc + (uint64_t)vq->size * VQ_DESC_SIZE;
    vq->desc_gpa = desc;
    vq->avail_gpa = avail;
    vq->used_gpa = ALIGN_UP(avail + avail_bytes(vq->size),
                            (uint64_t)VQ_LEGACY_ALIGN);
}

int vq_enable(struct virtqueue *vq)
{
    uint16_t n = vq->size;
    if (!IS_POWER_OF_2(n) || n > vq->max_size)
        return -1;
    if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
        return -1;
    /* The event-index words sit at the end of the rings; they are part of
     * the areas whether or not EVENT_IDX is negotiated later. */
    uint8_t *desc = gpa_ptr(vq->mem, vq->desc_gpa,
                            (uint64_t)n * VQ_DESC_SIZE, GMEM_READ);
    uint8_t *avail = gpa_ptr(vq->mem, vq->avail_gpa, avail_bytes(n),
                             GMEM_READ);
    uint8_t *used = gpa_ptr(vq->mem, vq->used_gpa, used_bytes(n),
                            GMEM_READ | GMEM_WRITE);
    if (!desc || !avail || !used)
        return -1;
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    vq->last_avail = 0;
    vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_valid = false;
    vq->broken = false;
    vq->ready = true;
    return 0;
}

/* ---- Chain walk ------------------------------------------------------ */

struct vq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* The one read of a descriptor: copy it, then only the copy is used. */
static struct vq_desc fetch_desc(const uint8_t *table, unsigned idx)
{
    uint8_t raw[VQ_DESC_SIZE];
    memcpy(raw, table + (size_t)idx * VQ_DESC_SIZE, sizeof(raw));
    return (struct vq_desc){
        .addr = get_le64(raw),
        .len = get_le32(raw + 8),
        .flags = get_le16(raw + 12),
        .next = get_le16(raw + 14),
    };
}

struct chain_walk {
    const struct virtqueue *vq;
    struct vq_chain *chain;
    unsigned iov_cap;
    unsigned buffers; /* data descriptors seen, the hop limit */
    uint64_t total;
    bool writing;     /* a device-writable buffer has been seen */
};

/* Appends one data descriptor to the chain. */
static int add_buffer(struct chain_walk *w, const struct vq_desc *d)
{
    bool write = d->flags & VQ_DESC_F_WRITE;
    if (++w->buffers > w->vq->size)
        return -1; /* too long, or a loop */
    if (!write && w->writing)
        return -1; /* readable after writable */
    w->writing |= write;
    w->total += d->len;
    if (w->total > UINT32_MAX)
        return -1;
    if (d->len == 0)
        return 0;
    void *p = gpa_ptr(w->vq->mem, d->addr, d->len,
                      write ? GMEM_READ | GMEM_WRITE : GMEM_READ);
    struct vq_chain *c = w->chain;
    unsigned n = c->n_read + c->n_write;
    if (!p || n >= w->iov_cap)
        return -1;
    c->iov[n] = (struct iovec){p, d->len};
    if (write) {
        c->n_write++;
        c->write_len += d->len;
    } else {
        c->n_read++;
        c->read_len += d->len;
    }
    return 0;
}

/* Walks an indirect table named by descriptor d. */
static int walk_indirect(struct chain_walk *w, const struct vq_desc *d)
{
    if (!w->vq->indirect || (d->flags & VQ_DESC_F_NEXT) || d->len == 0 ||
        d->len % VQ_DESC_SIZE)
        return -1;
    const uint8_t *table = gpa_ptr(w->vq->mem, d->addr, d->len, GMEM_READ);
    if (!table)
        return -1;
    unsigned count = d->len / VQ_DESC_SIZE;
    unsigned idx = 0;
    for (;;) {
        struct vq_desc e = fetch_desc(table, idx);
        if (e.flags & VQ_DESC_F_INDIRECT)
            return -1; /* nested */
        if (add_buffer(w, &e) < 0)
            return -1;
        if (!(e.flags & VQ_DESC_F_NEXT))
            return 0;
        if (e.next >= count)
            return -1;
        idx = e.next;
    }
}

static int walk_chain(struct chain_walk *w, uint16_t head)
{
    const struct virtqueue *vq = w->vq;
    unsigned idx = head;
    for (;;) {
        struct vq_desc d = fetch_desc(vq->desc, idx);
        if (d.flags & VQ_DESC_F_INDIRECT)
            return walk_indirect(w, &d); /* the table ends the chain */
        if (add_buffer(w, &d) < 0)
            return -1;
        if (!(d.flags & VQ_DESC_F_NEXT))
            return 0;
        if (d.next >= vq->size)
            return -1;
        idx = d.next;
    }
}

enum vq_pop_result vq_pop(struct virtqueue *vq, struct vq_chain *chain,
                          struct iovec *iov, unsigned iov_cap)
{
    if (!vq->ready || vq->broken)
        return vq->broken ? VQ_BROKEN : VQ_EMPTY;
    uint16_t avail_idx = load16(vq->avail + 2);
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
    if (pending == 0)
        return VQ_EMPTY;
    if (pending > vq->size)
        goto broken;
    /* The ring entries and descriptors were written before avail.idx. */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint16_t slot = vq->last_avail & (vq->size - 1);
    uint16_t head = load16(vq->avail + 4 + 2 * (size_t)slot);
    if (head >= vq->size)
        goto broken;
    *chain = (struct vq_chain){.head = head, .iov = iov};
    struct chain_walk w = {.vq = vq, .chain = chain, .iov_cap = iov_cap};
    if (walk_chain(&w, head) < 0)
        goto broken;
    vq->last_avail++;
    return VQ_CHAIN;
broken:
    vq->broken = true;
    return VQ_BROKEN;
}

void vq_push(struct virtqueue *vq, uint16_t head, uint32_t len)
{
    if (!vq->ready)
        return;
    uint16_t slot = vq->used_idx & (vq->size - 1);
    uint8_t elem[8];
    put_le32(elem, head);
    put_le32(elem + 4, len);
    memcpy(vq->used + 4 + 8 * (size_t)slot, elem, sizeof(elem));
    vq->used_idx++;
    /* The element must be visible before the index that publishes it. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    store16(vq->used + 2, vq->used_idx);
}

/* True if the driver asked to be told once used.idx moves past event. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool vq_should_notify(struct virtqueue *vq)
{
    if (!vq->ready)
        return false;
    /* Our used.idx store must be ordered before reading the driver's
     * suppression state, or both sides could miss each other. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t old = vq->signalled_used;
    bool valid = vq->signalled_valid;
    vq->signalled_used = vq->used_idx;
    vq->signalled_valid = true;
    if (valid && old == vq->used_idx)
        return false;
    if (!vq->event_idx)
        return !(load16(vq->avail) & VQ_AVAIL_F_NO_INTERRUPT);
    uint16_t used_event = load16(vq->avail + 4 + 2 * (size_t)vq->size);
    return !valid || need_event(used_event, vq->used_idx, old);
}

void vq_disable_notify(struct virtqueue *vq)
{
    if (!vq->ready || vq->event_idx)
        return; /* with EVENT_IDX a stale avail_event already suppresses */
    store16(vq->used, load16(vq->used) | VQ_USED_F_NO_NOTIFY);
}

bool vq_enable_notify(struct virtqueue *vq)
{
    if (!vq->ready)
        return true;
    if (vq->event_idx)
        store16(vq->used + 4 + 8 * (size_t)vq->size, vq->last_avail);
    else
        store16(vq->used, load16(vq->used) & ~VQ_USED_F_NO_NOTIFY);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load16(vq->avail + 2) == vq->last_avail;
}

/* ---- Cursors ----------------------------------------------------------- */

static void cursor_init(struct vq_cursor *c, struct iovec *iov, unsigned n,
                        size_t total)
{
    *c = (struct vq_cursor){.iov = iov, .n = n, .remaining = total};
}

void vq_reader_init(struct vq_reader *r, const struct vq_chain *chain)
{
    cursor_init(&r->c, chain->iov, chain->n_read, chain->read_len);
}

void vq_writer_init(struct vq_writer *w, const struct vq_chain *chain)
{
    cursor_init(&w->c, chain->iov + chain->n_read, chain->n_write,
                chain->write_len);
}

/* Moves up to len bytes out of the chain (into out) or into it (from in);
 * with neither it skips. Returns the bytes moved. */
static size_t cursor_move(struct vq_cursor *c, void *out, const void *in,
                          size_t len)
{
    size_t done = 0;
    len = MIN(len, c->remaining);
    while (done < len) {
        struct iovec *v = &c->iov[c->i];
        size_t n = MIN(v->iov_len - c->off, len - done);
        uint8_t *p = (uint8_t *)v->iov_base + c->off;
        if (out)
            memcpy((uint8_t *)out + done, p, n);
        else if (in)
            memcpy(p, (const uint8_t *)in + done, n);
        done += n;
        c->off += n;
        if (c->off == v->iov_len) {
            c->i++;
            c->off = 0;
        }
    }
    c->remaining -= done;
    return done;
}

size_t vq_read(struct vq_reader *r, void *buf, size_t len)
{
    return cursor_move(&r->c, buf, NULL, len);
}

size_t vq_write(struct vq_writer *w, const void *buf, size_t len)
{
    return cursor_move(&w->c, NULL, buf, len);
}

size_t vq_reader_skip(struct vq_reader *r, size_t len)
{
    return cursor_move(&r->c, NULL, NULL, len);
}

size_t vq_writer_skip(struct vq_writer *w, size_t len)
{
    return cursor_move(&w->c, NULL, NULL, len);
}

/* out may be the array the cursor walks (entry k of out is written only
 * after source entry i + k, i >= 0, has been read); the cursor must not be
 * used afterwards then. */
static int cursor_iov(struct vq_cursor *c, size_t len, struct iovec *out,
                      unsigned cap)
{
    if (len > c->remaining)
        return -1;
    unsigned count = 0;
    size_t left = len;
    for (unsigned i = c->i; left > 0; i++) {
        size_t avail = c->iov[i].iov_len - (i == c->i ? c->off : 0);
        left -= MIN(avail, left);
        count++;
    }
    if (count > cap)
        return -1;
    for (unsigned k = 0; k < count; k++) {
        struct iovec src = c->iov[c->i];
        size_t n = MIN(src.iov_len - c->off, len);
        out[k] = (struct iovec){(uint8_t *)src.iov_base + c->off, n};
        len -= n;
        c->remaining -= n;
        c->off += n;
        if (c->off == src.iov_len) {
            c->i++;
            c->off = 0;
        }
    }
    return (int)count;
}

int vq_reader_iov(struct vq_reader *r, size_t len, struct iovec *out,
                  unsigned cap)
{
    return cursor_iov(&r->c, len, out, cap);
}

int vq_writer_iov(struct vq_writer *w, size_t len, struct iovec *out,
                  unsigned cap)
{
    return cursor_iov(&w->c, len, out, cap);
}

uint8_t *vq_writer_take_last_byte(struct vq_writer *w)
{
    struct vq_cursor *c = &w->c;
    if (c->remaining == 0)
        return NULL;
    /* Find the entry holding the last byte of the window. */
    size_t left = c->remaining;
    unsigned i = c->i;
    size_t off = c->off;
    for (;;) {
        size_t avail = c->iov[i].iov_len - off;
        if (left <= avail) {
            c->remaining--;
            return (uint8_t *)c->iov[i].iov_base + off + left - 1;
        }
        left -= avail;
        i++;
        off = 0;
    }
}
