#include "virtio/blk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HEADER_BYTES 16
#define SEGMENT_BYTES 16 /* struct virtio_blk_discard_write_zeroes */
#define PCI_CLASS_STORAGE_SCSI 0x010000

struct vblk_req {
    struct virtio_blk *blk;
    struct vblk_req *next_free;
    unsigned queue;
    uint16_t head;
    uint32_t generation;
    uint8_t *status;     /* the chain's last writable byte */
    uint32_t used_len;   /* bytes written into the chain on success */
    bool flush_after;    /* write-through: flush before completing */
    struct blk_req io;
    struct iovec *iov;   /* queue_size entries: the chain, then the data */
};

struct vblk_queue {
    struct vblk_req *reqs;
    struct iovec *iov;
    struct vblk_req *free;
    bool stalled; /* stopped popping: every request slot was busy */
};

struct virtio_blk {
    struct virtio_dev vdev;
    struct blockdev *bd;
    uint64_t sectors;
    bool readonly;
    uint16_t queue_size;
    char serial[VIRTIO_BLK_ID_BYTES];
    bool need_kick;
    uint64_t pushed; /* queues with used buffers not yet signalled */
    struct vblk_queue q[VIRTIO_BLK_MAX_QUEUES];
};

static struct virtio_blk *to_blk(struct virtio_dev *d)
{
    return d->opaque;
}

/* ---- Completion -------------------------------------------------------- */

static void free_req(struct virtio_blk *b, struct vblk_req *r)
{
    struct vblk_queue *q = &b->q[r->queue];
    r->next_free = q->free;
    q->free = r;
}

static void complete_req(struct vblk_req *r, uint8_t status)
{
    struct virtio_blk *b = r->blk;
    /* A request from before a reset must not touch the new rings. */
    if (virtio_dev_request_end(&b->vdev, r->generation)) {
        *r->status = status;
        vq_push(&b->vdev.vq[r->queue], r->head,
                status == VIRTIO_BLK_S_OK ? r->used_len : 1);
        b->pushed |= 1ULL << r->queue;
    }
    free_req(b, r);
}

static void signal_used(struct virtio_blk *b)
{
    for (unsigned q = 0; b->pushed; q++) {
        if (b->pushed & (1ULL << q)) {
            virtio_dev_queue_used(&b->vdev, q);
            b->pushed &= ~(1ULL << q);
        }
    }
}

static uint8_t status_from_errno(int result)
{
    if (result == 0)
        return VIRTIO_BLK_S_OK;
    return result == -EOPNOTSUPP ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR;
}

static void submit(struct vblk_req *r);

static void io_done(struct blk_req *io, int result)
{
    struct vblk_req *r = io->opaque;
    if (result == 0 && r->flush_after) {
        r->flush_after = false;
        r->io = (struct blk_req){.op = BLK_OP_FLUSH, .done = io_done,
                                 .opaque = r};
        submit(r);
        return;
    }
    complete_req(r, status_from_errno(result));
}

static void submit(struct vblk_req *r)
{
    int rc = blk_submit(r->blk->bd, &r->io);
    if (rc < 0)
        complete_req(r, status_from_errno(rc));
    else
        r->blk->need_kick = true;
}

static void submit_io(struct vblk_req *r, enum blk_op op, uint64_t offset,
                      uint64_t len, unsigned iovcnt)
{
    r->io = (struct blk_req){
        .op = op,
        .offset = offset,
        .len = len,
        .iov = r->iov,
        .iovcnt = iovcnt,
        .done = io_done,
        .opaque = r,
    };
    submit(r);
}

/* ---- Request parsing ----------------------------------------------------- */

struct vblk_parse {
    struct vq_reader rd;
    struct vq_writer wr;
    uint32_t type;
    uint64_t sector;
};

static bool in_bounds(const struct virtio_blk *b, uint64_t sector,
                      uint64_t count)
{
    return sector <= b->sectors && count <= b->sectors - sector;
}

static bool write_through(const struct virtio_blk *b)
{
    return !virtio_dev_has_feature(&b->vdev, VIRTIO_BLK_F_FLUSH);
}

static void do_read(struct vblk_req *r, struct vblk_parse *p)
{
    struct virtio_blk *b = r->blk;
    size_t len = vq_writer_remaining(&p->wr);
    if (len % VIRTIO_BLK_SECTOR ||
        !in_bounds(b, p->sector, len / VIRTIO_BLK_SECTOR)) {
        complete_req(r, VIRTIO_BLK_S_IOERR);
        return;
    }
    r->used_len = (uint32_t)len + 1;
    if (len == 0) {
        complete_req(r, VIRTIO_BLK_S_OK);
        return;
    }
    int n = vq_writer_iov(&p->wr, len, r->iov, b->queue_size);
    if (n < 0) {
        complete_req(r, VIRTIO_BLK_S_IOERR);
        return;
    }
    submit_io(r, BLK_OP_READ, p->sector * VIRTIO_BLK_SECTOR, len,
              (unsigned)n);
}

static void do_write(struct vblk_req *r, struct vblk_parse *p)
{
    struct virtio_blk *b = r->blk;
    size_t len = vq_reader_remaining(&p->rd);
    if (b->readonly || len % VIRTIO_BLK_SECTOR ||
        !in_bounds(b, p->sector, len / VIRTIO_BLK_SECTOR)) {
        complete_req(r, VIRTIO_BLK_S_IOERR);
        return;
    }
    if (len == 0) {
        complete_req(r, VIRTIO_BLK_S_OK);
        return;
    }
    int n = vq_reader_iov(&p->rd, len, r->iov, b->queue_size);
    if (n < 0) {
        complete_req(r, VIRTIO_BLK_S_IOERR);
        return;
    }
    r->flush_after = write_through(b);
    submit_io(r, BLK_OP_WRITE, p->sector * VIRTIO_BLK_SECTOR, len,
              (unsigned)n);
}

static void do_get_id(struct vblk_req *r, struct vblk_parse *p)
{
    size_t n = vq_write(&p->wr, r->blk->serial, VIRTIO_BLK_ID_BYTES);
    r->used_len = (uint32_t)n + 1;
    complete_req(r, VIRTIO_BLK_S_OK);
}

/* DISCARD and WRITE_ZEROES: one segment per request (max_*_seg = 1). */
static uint8_t check_segment(struct virtio_blk *b, struct vblk_parse *p,
                             uint64_t *sector, uint32_t *count)
{
    bool zeroes = p->type == VIRTIO_BLK_T_WRITE_ZEROES;
    unsigned feature = zeroes ? VIRTIO_BLK_F_WRITE_ZEROES
                              : VIRTIO_BLK_F_DISCARD;
    if (!virtio_dev_has_feature(&b->vdev, feature))
        return VIRTIO_BLK_S_UNSUPP;
    size_t len = vq_reader_remaining(&p->rd);
    if (len > SEGMENT_BYTES)
        return VIRTIO_BLK_S_UNSUPP; /* more segments than offered */
    uint8_t seg[SEGMENT_BYTES];
    if (vq_read(&p->rd, seg, sizeof(seg)) != sizeof(seg))
        return VIRTIO_BLK_S_IOERR;
    uint32_t flags = get_le32(seg + 12);
    uint32_t allowed = zeroes ? VIRTIO_BLK_WZ_F_UNMAP : 0;
    if (flags & ~allowed)
        return VIRTIO_BLK_S_UNSUPP;
    *sector = get_le64(seg);
    *count = get_le32(seg + 8);
    if (b->readonly || *count > VIRTIO_BLK_MAX_DISCARD_SECTORS ||
        !in_bounds(b, *sector, *count))
        return VIRTIO_BLK_S_IOERR;
    return VIRTIO_BLK_S_OK;
}

static void do_discard_or_zeroes(struct vblk_req *r, struct vblk_parse *p)
{
    struct virtio_blk *b = r->blk;
    uint64_t sector;
    uint32_t count;
    uint8_t status = check_segment(b, p, &sector, &count);
    if (status != VIRTIO_BLK_S_OK || count == 0) {
        complete_req(r, status);
        return;
    }
    bool zeroes = p->type == VIRTIO_BLK_T_WRITE_ZEROES;
    /* The backend picks how to zero (it may deallocate); UNMAP is only a
     * permission, so it needs no separate path. */
    r->flush_after = zeroes && write_through(b);
    submit_io(r, zeroes ? BLK_OP_WRITE_ZEROES : BLK_OP_DISCARD,
              sector * VIRTIO_BLK_SECTOR, (uint64_t)count * VIRTIO_BLK_SECTOR,
              0);
}

static void dispatch(struct vblk_req *r, struct vblk_parse *p)
{
    switch (p->type) {
    case VIRTIO_BLK_T_IN:
        do_read(r, p);
        break;
    case VIRTIO_BLK_T_OUT:
        do_write(r, p);
        break;
    case VIRTIO_BLK_T_FLUSH:
    case VIRTIO_BLK_T_FLUSH_OUT:
        r->io = (struct blk_req){.op = BLK_OP_FLUSH, .done = io_done,
                                 .opaque = r};
        submit(r);
        break;
    case VIRTIO_BLK_T_GET_ID:
        do_get_id(r, p);
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        do_discard_or_zeroes(r, p);
        break;
    default:
        complete_req(r, VIRTIO_BLK_S_UNSUPP);
        break;
    }
}

/* Starts the request in chain; r is a free slot of queue qi. Returns -1 if
 * the chain cannot carry a request at all (no header, no status byte). */
static int start_request(struct virtio_blk *b, unsigned qi,
                         struct vblk_req *r, const struct vq_chain *chain)
{
    struct vblk_parse p;
    uint8_t hdr[HEADER_BYTES];
    vq_reader_init(&p.rd, chain);
    vq_writer_init(&p.wr, chain);
    uint8_t *status = vq_writer_take_last_byte(&p.wr);
    if (vq_read(&p.rd, hdr, sizeof(hdr)) != sizeof(hdr) || !status)
        return -1;
    p.type = get_le32(hdr);
    p.sector = get_le64(hdr + 8);
    r->queue = qi;
    r->head = chain->head;
    r->status = status;
    r->used_len = 1;
    r->flush_after = false;
    r->generation = virtio_dev_request_begin(&b->vdev);
    dispatch(r, &p);
    return 0;
}

/* ---- Queue processing ------------------------------------------------------ */

/* Pops until the queue is empty or every request slot is busy. Returns
 * false if the queue broke. */
static bool drain_queue(struct virtio_blk *b, unsigned qi)
{
    struct vblk_queue *q = &b->q[qi];
    struct virtqueue *vq = &b->vdev.vq[qi];
    for (;;) {
        struct vblk_req *r = q->free;
        if (!r) {
            q->stalled = true;
            return true;
        }
        struct vq_chain chain;
        enum vq_pop_result res = vq_pop(vq, &chain, r->iov, b->queue_size);
        if (res == VQ_EMPTY)
            return true;
        if (res == VQ_BROKEN) {
            guest_warn("virtio-blk: malformed descriptor chain on queue %u",
                       qi);
            return false;
        }
        q->free = r->next_free;
        if (start_request(b, qi, r, &chain) < 0) {
            free_req(b, r);
            guest_warn("virtio-blk: request without header or status");
            return false;
        }
    }
}

static void process_queue(struct virtio_blk *b, unsigned qi)
{
    struct virtqueue *vq = &b->vdev.vq[qi];
    b->q[qi].stalled = false;
    for (;;) {
        vq_disable_notify(vq);
        if (!drain_queue(b, qi)) {
            virtio_dev_needs_reset(&b->vdev);
            break;
        }
        /* A stalled queue keeps notifications off; completions resume it. */
        if (b->q[qi].stalled || vq_enable_notify(vq))
            break;
    }
    signal_used(b);
    if (b->need_kick) {
        b->need_kick = false;
        blk_kick(b->bd);
    }
}

static void blk_queue_notify(struct virtio_dev *d, unsigned q)
{
    process_queue(to_blk(d), q);
}

static void blk_reset(struct virtio_dev *d)
{
    struct virtio_blk *b = to_blk(d);
    for (unsigned q = 0; q < d->num_queues; q++)
        b->q[q].stalled = false;
    b->pushed = 0;
}

void virtio_blk_handle_completions(struct virtio_blk *b)
{
    virtio_dev_lock(&b->vdev);
    blk_poll(b->bd);
    for (unsigned q = 0; q < b->vdev.num_queues; q++) {
        if (b->q[q].stalled && b->q[q].free &&
            virtio_dev_queue_live(&b->vdev, q))
            process_queue(b, q);
    }
    signal_used(b);
    if (b->need_kick) {
        b->need_kick = false;
        blk_kick(b->bd);
    }
    virtio_dev_unlock(&b->vdev);
}

/* ---- Set-up ------------------------------------------------------------------ */

static const struct virtio_dev_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .pci_class = PCI_CLASS_STORAGE_SCSI,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

static uint64_t blk_features(const struct virtio_blk *b, unsigned nq)
{
    uint64_t f = VIRTIO_FEATURE(VIRTIO_BLK_F_SIZE_MAX) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_SEG_MAX) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_GEOMETRY) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_BLK_SIZE) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH);
    if (b->readonly)
        f |= VIRTIO_FEATURE(VIRTIO_BLK_F_RO);
    else
        f |= VIRTIO_FEATURE(VIRTIO_BLK_F_DISCARD) |
             VIRTIO_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES);
    if (nq > 1)
        f |= VIRTIO_FEATURE(VIRTIO_BLK_F_MQ);
    return f;
}

/* The classic translated geometry: 16 heads, 63 sectors per track. */
static void fill_geometry(uint8_t *cfg, uint64_t sectors)
{
    uint64_t cyl = sectors / (16 * 63);
    put_le16(cfg + VIRTIO_BLK_CFG_CYLINDERS,
             (uint16_t)MAX(MIN(cyl, 16383), 2));
    cfg[VIRTIO_BLK_CFG_HEADS] = 16;
    cfg[VIRTIO_BLK_CFG_SECTORS] = 63;
}

static void fill_config(struct virtio_blk *b, unsigned nq)
{
    uint8_t *cfg = b->vdev.config;
    put_le64(cfg + VIRTIO_BLK_CFG_CAPACITY, b->sectors);
    put_le32(cfg + VIRTIO_BLK_CFG_SIZE_MAX, VIRTIO_BLK_SIZE_MAX);
    put_le32(cfg + VIRTIO_BLK_CFG_SEG_MAX, b->queue_size - 2u);
    fill_geometry(cfg, b->sectors);
    put_le32(cfg + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR);
    put_le16(cfg + VIRTIO_BLK_CFG_NUM_QUEUES, (uint16_t)nq);
    put_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
             VIRTIO_BLK_MAX_DISCARD_SECTORS);
    put_le32(cfg + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 1);
    put_le32(cfg + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 8); /* 4 KiB */
    put_le32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SECTORS,
             VIRTIO_BLK_MAX_DISCARD_SECTORS);
    put_le32(cfg + VIRTIO_BLK_CFG_MAX_WZ_SEG, 1);
    cfg[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 0; /* the backend decides; no promise */
}

static int alloc_queue(struct virtio_blk *b, struct vblk_queue *q)
{
    size_t n = b->queue_size;
    q->reqs = calloc(n, sizeof(*q->reqs));
    q->iov = calloc(n * n, sizeof(*q->iov));
    if (!q->reqs || !q->iov)
        return -1;
    for (size_t i = 0; i < n; i++) {
        q->reqs[i].blk = b;
        q->reqs[i].iov = q->iov + i * n;
        q->reqs[i].next_free = i + 1 < n ? &q->reqs[i + 1] : NULL;
    }
    q->free = &q->reqs[0];
    return 0;
}

static int check_opts(const struct virtio_blk_opts *o, unsigned *nq,
                      uint16_t *qsize)
{
    *nq = o->num_queues ? o->num_queues : 1;
    *qsize = o->queue_size ? o->queue_size : VIRTIO_BLK_MAX_QUEUE_SIZE;
    if (*nq > VIRTIO_BLK_MAX_QUEUES) {
        report_error("virtio-blk: at most %u queues", VIRTIO_BLK_MAX_QUEUES);
        return -1;
    }
    if (!IS_POWER_OF_2(*qsize) || *qsize < 2 ||
        *qsize > VIRTIO_BLK_MAX_QUEUE_SIZE) {
        report_error("virtio-blk: queue size must be a power of two "
                     "between 2 and %u", VIRTIO_BLK_MAX_QUEUE_SIZE);
        return -1;
    }
    if (o->serial && strlen(o->serial) > VIRTIO_BLK_ID_BYTES) {
        report_error("virtio-blk: serial '%s' is longer than %u bytes",
                     o->serial, VIRTIO_BLK_ID_BYTES);
        return -1;
    }
    return 0;
}

int virtio_blk_new(const struct guest_mem *mem,
                   const struct virtio_blk_opts *opts,
                   struct virtio_blk **out)
{
    unsigned nq;
    uint16_t qsize;
    if (check_opts(opts, &nq, &qsize) < 0)
        return -1;
    struct virtio_blk *b = calloc(1, sizeof(*b));
    if (!b) {
        report_error("virtio-blk: out of memory");
        return -1;
    }
    b->bd = opts->bd;
    b->sectors = blk_size(opts->bd) / VIRTIO_BLK_SECTOR;
    b->readonly = blk_is_readonly(opts->bd);
    b->queue_size = qsize;
    if (opts->serial)
        memcpy(b->serial, opts->serial, strlen(opts->serial));
    if (virtio_dev_init(&b->vdev, &blk_ops, mem, blk_features(b, nq), nq,
                        qsize, VIRTIO_BLK_CFG_LEN) < 0) {
        report_error("virtio-blk: cannot initialise the device");
        free(b);
        return -1;
    }
    b->vdev.opaque = b;
    fill_config(b, nq);
    for (unsigned q = 0; q < nq; q++) {
        if (alloc_queue(b, &b->q[q]) < 0) {
            report_error("virtio-blk: out of memory");
            virtio_blk_free(b);
            return -1;
        }
    }
    *out = b;
    return 0;
}

void virtio_blk_free(struct virtio_blk *b)
{
    if (!b)
        return;
    for (unsigned q = 0; q < VIRTIO_BLK_MAX_QUEUES; q++) {
        free(b->q[q].reqs);
        free(b->q[q].iov);
    }
    virtio_dev_destroy(&b->vdev);
    free(b);
}

struct virtio_dev *virtio_blk_dev(struct virtio_blk *b)
{
    return &b->vdev;
}

int virtio_blk_event_fd(const struct virtio_blk *b)
{
    return blk_event_fd(b->bd);
}
