#include "vblk_harness.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/evloop.h"
#include "platform/layout.h"
#include "platform/pci.h"
#include "platform/piix.h"
#include "util.h"
#include "virtio/blk.h"
#include "virtio/pci.h"
#include "vm/bus.h"
#include "vm/irq.h"
#include "vm/memory.h"

/* Guest-physical layout the driver chooses (RAM starts at 0). */
#define RING_GPA 0x10000ULL     /* descriptors, avail (+4 KiB), used (+8 KiB) */
#define META_GPA 0x20000ULL     /* per slot: header, status, range, table */
#define META_SLOT 0x1000ULL
#define META_STATUS 16
#define META_RANGE 32
#define META_TABLE 64
#define DATA_GPA (2 * MiB)      /* per slot: max_bytes of data */
#define QUEUE_SIZE 256
#define SLOT_DEVFN LAYOUT_PCI_DEVFN(LAYOUT_PCI_FIRST_DEVICE_SLOT, 0)
#define CONFIG_VECTOR 0x30      /* LAPIC vectors the MSI-X entries name */
#define QUEUE_VECTOR 0x31
#define MAX_BINDINGS 8

struct binding {
    struct virtio_pci_ioeventfd io;
    bool live;
};

/* What KVM would do for the harness: ioeventfds and irqfds. */
struct fake_kvm {
    pthread_mutex_t lock;
    struct binding bindings[MAX_BINDINGS];
};

struct slot {
    struct vh_req req;
    bool busy;
    uint64_t data_gpa;
};

struct vh {
    struct vh_opts o;
    uint8_t *ram;
    uint64_t ram_size;
    struct guest_mem mem;
    struct bus pio, mmio;
    struct pci_host host;
    struct piix piix;
    struct irq_router router;
    struct blockdev *bd;
    struct virtio_blk *blk;
    struct virtio_pci vp;
    bool vp_ready, plugged;
    struct fake_kvm kvm;
    struct evloop *loop;
    pthread_t io_thread;
    bool io_running;

    /* Driver state: where the BARs and structures are. */
    uint64_t common, notify, device_cfg; /* guest-physical addresses */
    uint64_t msix_table;
    uint32_t notify_mult;
    uint64_t features;
    uint64_t capacity;
    bool readonly;

    /* The split ring, from the driver's side. */
    uint16_t qsize;
    uint8_t *desc, *avail, *used;
    uint16_t avail_shadow, kicked_idx, last_used;
    unsigned desc_per_slot;
    struct slot slots[VH_MAX_DEPTH];
    unsigned inflight;
    int irqfd; /* the queue vector's eventfd */
    unsigned long interrupts, notifies;
};

static void vh_die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
                                                      noreturn));
static void vh_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vblk harness: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* ---- The KVM stand-in -------------------------------------------------- */

static int fake_ioeventfd(void *opaque, const struct virtio_pci_ioeventfd *io,
                          bool assign)
{
    struct fake_kvm *k = opaque;
    int ret = -1;
    pthread_mutex_lock(&k->lock);
    for (unsigned i = 0; i < MAX_BINDINGS; i++) {
        struct binding *b = &k->bindings[i];
        if (assign && !b->live) {
            *b = (struct binding){*io, true};
            ret = 0;
            break;
        }
        if (!assign && b->live && b->io.fd == io->fd &&
            b->io.addr == io->addr && b->io.pio == io->pio) {
            b->live = false;
            ret = 0;
            break;
        }
    }
    pthread_mutex_unlock(&k->lock);
    return ret;
}

/* An MMIO write of the guest: KVM signals a matching ioeventfd without an
 * exit, anything else becomes an exit handled through the MMIO bus. */
static void guest_mmio_write(struct vh *h, uint64_t addr, uint64_t val,
                             unsigned len)
{
    int fd = -1;
    pthread_mutex_lock(&h->kvm.lock);
    for (unsigned i = 0; i < MAX_BINDINGS; i++) {
        const struct binding *b = &h->kvm.bindings[i];
        if (b->live && !b->io.pio && b->io.addr == addr &&
            b->io.len == len && (!b->io.datamatch || b->io.data == val))
            fd = b->io.fd;
    }
    pthread_mutex_unlock(&h->kvm.lock);
    if (fd >= 0) {
        uint64_t one = 1;
        if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            vh_die("ioeventfd write: %s", strerror(errno));
        return;
    }
    if (!bus_write(&h->mmio, addr, &val, len))
        vh_die("MMIO write to 0x%llx hits nothing", (unsigned long long)addr);
}

static uint64_t guest_mmio_read(struct vh *h, uint64_t addr, unsigned len)
{
    uint64_t v = 0;
    if (!bus_read(&h->mmio, addr, &v, len))
        vh_die("MMIO read of 0x%llx hits nothing", (unsigned long long)addr);
    return v;
}

/* Each MSI vector gets an eventfd as its irqfd; the driver waits on the
 * one whose message names its queue's LAPIC vector. */
static int attach_irqfds(struct vh *h)
{
    for (unsigned v = 0; v < h->vp.nvectors; v++) {
        h->vp.vectors[v].eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (h->vp.vectors[v].eventfd < 0)
            return -1;
    }
    return 0;
}

static int find_irqfd(struct vh *h, uint8_t lapic_vector)
{
    for (unsigned v = 0; v < h->vp.nvectors; v++) {
        const struct msi_vector *m = &h->vp.vectors[v];
        if (m->routed && m->address == LAYOUT_LAPIC_BASE &&
            (m->data & 0xFF) == lapic_vector)
            return m->eventfd;
    }
    return -1;
}

/* ---- PCI configuration mechanism #1 ------------------------------------- */

static void cf8(struct vh *h, uint8_t devfn, unsigned off)
{
    uint32_t a = 0x80000000u | (uint32_t)devfn << 8 | (off & 0xFC);
    bus_write(&h->pio, LAYOUT_PORT_PCI_CONFIG_ADDR, &a, 4);
}

static uint32_t cfg_read(struct vh *h, uint8_t devfn, unsigned off,
                         unsigned len)
{
    uint32_t v = 0;
    cf8(h, devfn, off);
    bus_read(&h->pio, LAYOUT_PORT_PCI_CONFIG_DATA + (off & 3), &v, len);
    return v;
}

static void cfg_write(struct vh *h, uint8_t devfn, unsigned off, unsigned len,
                      uint32_t v)
{
    cf8(h, devfn, off);
    bus_write(&h->pio, LAYOUT_PORT_PCI_CONFIG_DATA + (off & 3), &v, len);
}

/* What firmware would have done: size every BAR and place it naturally
 * aligned, I/O from the PCI I/O window, memory from the PCI hole. */
static void assign_bars(struct vh *h, uint8_t devfn)
{
    uint64_t io = LAYOUT_PCI_IO_START;
    uint64_t mem = layout_pci_hole_start(h->ram_size);
    for (unsigned bar = 0; bar < PCI_NUM_BARS; bar++) {
        unsigned off = PCI_BAR0 + 4 * bar;
        cfg_write(h, devfn, off, 4, 0xFFFFFFFF);
        uint32_t lo = cfg_read(h, devfn, off, 4);
        if (!lo)
            continue;
        if (lo & 1) {
            uint64_t size = (uint16_t)(~(lo & ~3u) + 1);
            io = ALIGN_UP(io, size);
            cfg_write(h, devfn, off, 4, (uint32_t)io);
            io += size;
            continue;
        }
        bool is64 = ((lo >> 1) & 3) == 2;
        uint64_t mask = lo & ~0xFull;
        if (is64) {
            cfg_write(h, devfn, off + 4, 4, 0xFFFFFFFF);
            mask |= (uint64_t)cfg_read(h, devfn, off + 4, 4) << 32;
        } else {
            mask |= 0xFFFFFFFF00000000ull;
        }
        uint64_t size = ~mask + 1;
        mem = ALIGN_UP(mem, size);
        cfg_write(h, devfn, off, 4, (uint32_t)mem);
        if (is64)
            cfg_write(h, devfn, off + 4, 4, (uint32_t)(mem >> 32));
        mem += size;
        bar += is64;
    }
    cfg_write(h, devfn, PCI_COMMAND, 2,
              PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static uint64_t bar_address(struct vh *h, uint8_t devfn, unsigned bar)
{
    uint32_t lo = cfg_read(h, devfn, PCI_BAR0 + 4 * bar, 4);
    uint64_t a = lo & ~0xFull;
    if (((lo >> 1) & 3) == 2)
        a |= (uint64_t)cfg_read(h, devfn, PCI_BAR0 + 4 * bar + 4, 4) << 32;
    return a;
}

static uint8_t find_virtio_blk(struct vh *h)
{
    for (unsigned devfn = 0; devfn < LAYOUT_PCI_SLOTS * 8; devfn += 8) {
        uint32_t id = cfg_read(h, (uint8_t)devfn, PCI_VENDOR_ID, 4);
        if ((id & 0xFFFF) == VIRTIO_PCI_VENDOR &&
            ((id >> 16) == 0x1001 || (id >> 16) == 0x1042))
            return (uint8_t)devfn;
    }
    vh_die("no virtio-blk function on bus 0");
}

/* Walks the capability list for the virtio structures and MSI-X. */
static void find_structures(struct vh *h, uint8_t devfn)
{
    if (!(cfg_read(h, devfn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
        vh_die("no capability list");
    unsigned off = cfg_read(h, devfn, PCI_CAP_PTR, 1);
    for (unsigned hops = 0; off && hops < 48; hops++) {
        uint8_t id = (uint8_t)cfg_read(h, devfn, off, 1);
        if (id == PCI_CAP_ID_VNDR) {
            uint8_t type = (uint8_t)cfg_read(h, devfn, off + 3, 1);
            uint8_t bar = (uint8_t)cfg_read(h, devfn, off + 4, 1);
            uint64_t at = bar_address(h, devfn, bar) +
                          cfg_read(h, devfn, off + 8, 4);
            if (type == VIRTIO_PCI_CAP_COMMON_CFG)
                h->common = at;
            else if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
                h->device_cfg = at;
            else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
                h->notify = at;
                h->notify_mult = cfg_read(h, devfn, off + 16, 4);
            }
        } else if (id == PCI_CAP_ID_MSIX) {
            uint32_t t = cfg_read(h, devfn, off + 4, 4);
            h->msix_table = bar_address(h, devfn, t & 7) + (t & ~7u);
            /* enabled, all masked while the entries are written */
            cfg_write(h, devfn, off + 2, 2, 0xC000);
            for (unsigned v = 0; v < 2; v++) {
                uint64_t e = h->msix_table + 16 * v;
                guest_mmio_write(h, e, LAYOUT_LAPIC_BASE, 4);
                guest_mmio_write(h, e + 4, 0, 4);
                guest_mmio_write(h, e + 8, v ? QUEUE_VECTOR : CONFIG_VECTOR, 4);
                guest_mmio_write(h, e + 12, 0, 4);
            }
            cfg_write(h, devfn, off + 2, 2, 0x8000);
        }
        off = cfg_read(h, devfn, off + 1, 1);
    }
    if (!h->common || !h->notify || !h->device_cfg || !h->msix_table)
        vh_die("virtio structures missing");
}

/* ---- The modern handshake ----------------------------------------------- */

static uint64_t common_rd(struct vh *h, unsigned off, unsigned len)
{
    return guest_mmio_read(h, h->common + off, len);
}

static void common_wr(struct vh *h, unsigned off, unsigned len, uint64_t v)
{
    guest_mmio_write(h, h->common + off, v, len);
}

static void set_status(struct vh *h, uint8_t bits)
{
    uint8_t s = (uint8_t)common_rd(h, VIRTIO_PCI_COMMON_STATUS, 1);
    common_wr(h, VIRTIO_PCI_COMMON_STATUS, 1, s | bits);
}

static uint64_t wanted_features(const struct vh *h)
{
    uint64_t f = VIRTIO_FEATURE(VIRTIO_F_VERSION_1) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_SIZE_MAX) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_SEG_MAX) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_BLK_SIZE) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_RO) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_DISCARD) |
                 VIRTIO_FEATURE(VIRTIO_BLK_F_WRITE_ZEROES);
    if (h->o.indirect)
        f |= VIRTIO_FEATURE(VIRTIO_F_RING_INDIRECT_DESC);
    if (h->o.event_idx)
        f |= VIRTIO_FEATURE(VIRTIO_F_RING_EVENT_IDX);
    return f;
}

static void negotiate(struct vh *h)
{
    common_wr(h, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    if (common_rd(h, VIRTIO_PCI_COMMON_STATUS, 1) != 0)
        vh_die("reset did not complete");
    set_status(h, VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(h, VIRTIO_STATUS_DRIVER);
    uint64_t dev = 0;
    for (unsigned sel = 0; sel < 2; sel++) {
        common_wr(h, VIRTIO_PCI_COMMON_DFSELECT, 4, sel);
        dev |= common_rd(h, VIRTIO_PCI_COMMON_DF, 4) << (32 * sel);
    }
    h->features = dev & wanted_features(h);
    if (!(h->features & VIRTIO_FEATURE(VIRTIO_F_VERSION_1)))
        vh_die("device does not offer VERSION_1");
    if (h->o.indirect &&
        !(h->features & VIRTIO_FEATURE(VIRTIO_F_RING_INDIRECT_DESC)))
        vh_die("device does not offer INDIRECT_DESC");
    for (unsigned sel = 0; sel < 2; sel++) {
        common_wr(h, VIRTIO_PCI_COMMON_GFSELECT, 4, sel);
        common_wr(h, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(h->features >> (32 * sel)));
    }
    set_status(h, VIRTIO_STATUS_FEATURES_OK);
    if (!(common_rd(h, VIRTIO_PCI_COMMON_STATUS, 1) &
          VIRTIO_STATUS_FEATURES_OK))
        vh_die("FEATURES_OK refused");
}

static void read_config(struct vh *h)
{
    uint8_t gen;
    do {
        gen = (uint8_t)common_rd(h, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
        h->capacity = guest_mmio_read(h, h->device_cfg + VIRTIO_BLK_CFG_CAPACITY, 4) |
                      guest_mmio_read(h, h->device_cfg + VIRTIO_BLK_CFG_CAPACITY + 4, 4) << 32;
    } while (gen != common_rd(h, VIRTIO_PCI_COMMON_CFGGENERATION, 1));
    h->readonly = h->features & VIRTIO_FEATURE(VIRTIO_BLK_F_RO);
    uint32_t seg_max = (uint32_t)guest_mmio_read(
        h, h->device_cfg + VIRTIO_BLK_CFG_SEG_MAX, 4);
    if (h->o.max_segs > seg_max)
        vh_die("seg_max %u is below the %u segments asked for", seg_max,
               h->o.max_segs);
}

static void setup_queue(struct vh *h)
{
    common_wr(h, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    if (common_rd(h, VIRTIO_PCI_COMMON_MSIX, 2) != 0)
        vh_die("config vector not accepted");
    common_wr(h, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    uint16_t max = (uint16_t)common_rd(h, VIRTIO_PCI_COMMON_Q_SIZE, 2);
    h->qsize = MIN(max, QUEUE_SIZE);
    h->desc_per_slot = h->o.indirect ? 1 : h->o.max_segs + 2;
    if (h->o.depth * h->desc_per_slot > h->qsize)
        vh_die("queue of %u cannot hold %u requests", h->qsize, h->o.depth);
    h->desc = h->ram + RING_GPA;
    h->avail = h->ram + RING_GPA + 0x1000;
    h->used = h->ram + RING_GPA + 0x2000;
    memset(h->desc, 0, 0x3000);
    common_wr(h, VIRTIO_PCI_COMMON_Q_SIZE, 2, h->qsize);
    common_wr(h, VIRTIO_PCI_COMMON_Q_DESCLO, 4, RING_GPA);
    common_wr(h, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    common_wr(h, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, RING_GPA + 0x1000);
    common_wr(h, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
    common_wr(h, VIRTIO_PCI_COMMON_Q_USEDLO, 4, RING_GPA + 0x2000);
    common_wr(h, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    common_wr(h, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    if (common_rd(h, VIRTIO_PCI_COMMON_Q_MSIX, 2) != 1)
        vh_die("queue vector not accepted");
    h->notify += common_rd(h, VIRTIO_PCI_COMMON_Q_NOFF, 2) * h->notify_mult;
    common_wr(h, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    if (common_rd(h, VIRTIO_PCI_COMMON_Q_ENABLE, 2) != 1)
        vh_die("queue not enabled");
}

static void driver_init(struct vh *h)
{
    uint8_t devfn = find_virtio_blk(h);
    assign_bars(h, devfn);
    find_structures(h, devfn);
    negotiate(h);
    read_config(h);
    setup_queue(h);
    set_status(h, VIRTIO_STATUS_DRIVER_OK);
    h->irqfd = find_irqfd(h, QUEUE_VECTOR);
    if (h->irqfd < 0)
        vh_die("the queue's MSI-X vector is not routed");
    for (unsigned i = 0; i < h->o.depth; i++)
        h->slots[i].data_gpa = DATA_GPA + (uint64_t)i * h->o.max_bytes;
}

/* ---- The machine and its I/O thread ---------------------------------------- */

static void disk_completions(void *opaque, uint32_t events)
{
    virtio_blk_handle_completions(opaque);
}

static void *io_thread(void *arg)
{
    struct vh *h = arg;
    if (evloop_run(h->loop) < 0)
        vh_die("event loop failed");
    return NULL;
}

static int setup_ram(struct vh *h)
{
    h->ram_size = ALIGN_UP(DATA_GPA + (uint64_t)h->o.depth * h->o.max_bytes,
                           2 * MiB);
    h->ram = mmap(NULL, h->ram_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (h->ram == MAP_FAILED) {
        h->ram = NULL;
        return -1;
    }
    madvise(h->ram, h->ram_size, MADV_HUGEPAGE);
    /* Touched now, as a running guest's RAM would be, so that no
     * measurement pays for faulting it in. */
    memset(h->ram, 0, h->ram_size);
    return gmem_add(&h->mem, 0, h->ram_size, h->ram, false);
}

static int setup_platform(struct vh *h)
{
    pthread_mutex_init(&h->kvm.lock, NULL);
    if (bus_init(&h->pio) || bus_init(&h->mmio) ||
        pci_host_init(&h->host, &h->pio, &h->mmio, -1) ||
        pci_host_register_ports(&h->host) ||
        piix_init(&h->piix, &h->host, true) ||
        irq_router_init(&h->router, -1))
        return -1;
    return 0;
}

static int setup_device(struct vh *h)
{
    if (blk_open(&h->o.disk, &h->bd) < 0)
        return -1;
    struct virtio_blk_opts bo = {.bd = h->bd, .serial = "vblk-harness"};
    if (virtio_blk_new(&h->mem, &bo, &h->blk) ||
        virtio_pci_init(&h->vp, virtio_blk_dev(h->blk), &h->router,
                        fake_ioeventfd, &h->kvm))
        return -1;
    h->vp_ready = true;
    if (attach_irqfds(h) ||
        pci_host_add(&h->host, &h->vp.pci, SLOT_DEVFN))
        return -1;
    h->plugged = true;
    h->loop = evloop_new();
    if (!h->loop)
        return -1;
    for (unsigned q = 0; q < virtio_pci_num_notifiers(&h->vp); q++) {
        struct virtio_pci_notifier *n = virtio_pci_notifier(&h->vp, q);
        if (evloop_add(h->loop, n->fd, EPOLLIN, virtio_pci_notifier_event,
                       n))
            return -1;
    }
    if (evloop_add(h->loop, virtio_blk_event_fd(h->blk), EPOLLIN,
                   disk_completions, h->blk))
        return -1;
    if (pthread_create(&h->io_thread, NULL, io_thread, h))
        return -1;
    h->io_running = true;
    return 0;
}

static void apply_defaults(struct vh_opts *o)
{
    if (!o->depth)
        o->depth = 32;
    if (!o->max_bytes)
        o->max_bytes = 1 << 20;
    if (!o->max_segs)
        o->max_segs = 1;
    o->max_bytes = ALIGN_UP(o->max_bytes, 4096u);
}

int vh_open(const struct vh_opts *o, struct vh **out)
{
    struct vh *h = calloc(1, sizeof(*h));
    if (!h)
        return -1;
    h->o = *o;
    apply_defaults(&h->o);
    h->irqfd = -1;
    if (h->o.depth > VH_MAX_DEPTH || h->o.max_segs > VH_MAX_SEGS) {
        fprintf(stderr, "vblk harness: depth or segments out of range\n");
        free(h);
        return -1;
    }
    if (setup_ram(h) || setup_platform(h) || setup_device(h)) {
        fprintf(stderr, "vblk harness: cannot build the machine\n");
        vh_close(h);
        return -1;
    }
    driver_init(h);
    *out = h;
    return 0;
}

void vh_close(struct vh *h)
{
    if (!h)
        return;
    for (int tries = 0; h->io_running && h->inflight && tries < 600; tries++)
        vh_wait(h, 100);
    if (h->io_running) {
        evloop_stop(h->loop);
        pthread_join(h->io_thread, NULL);
    }
    /* As kvmpc at exit: finish what is in flight, then drop the function. */
    if (h->bd)
        blk_drain(h->bd);
    if (h->blk)
        virtio_blk_handle_completions(h->blk);
    if (h->vp_ready)
        virtio_pci_destroy(&h->vp);
    if (h->blk)
        virtio_blk_free(h->blk);
    if (h->bd)
        blk_close(h->bd);
    if (h->loop)
        evloop_free(h->loop);
    irq_router_destroy(&h->router);
    pci_host_destroy(&h->host);
    bus_destroy(&h->pio);
    bus_destroy(&h->mmio);
    if (h->ram)
        munmap(h->ram, h->ram_size);
    free(h);
}

/* ---- Requests ------------------------------------------------------------------ */

uint64_t vh_capacity(const struct vh *h) { return h->capacity; }
uint64_t vh_features(const struct vh *h) { return h->features; }
bool vh_is_readonly(const struct vh *h) { return h->readonly; }
unsigned vh_inflight(const struct vh *h) { return h->inflight; }
unsigned long vh_interrupts(const struct vh *h) { return h->interrupts; }
unsigned long vh_notifies(const struct vh *h) { return h->notifies; }

uint8_t vh_device_status(struct vh *h)
{
    return (uint8_t)common_rd(h, VIRTIO_PCI_COMMON_STATUS, 1);
}

struct vh_req *vh_alloc(struct vh *h)
{
    for (unsigned i = 0; i < h->o.depth; i++) {
        struct slot *s = &h->slots[i];
        if (s->busy)
            continue;
        s->busy = true;
        h->inflight++;
        s->req = (struct vh_req){.data = h->ram + s->data_gpa};
        return &s->req;
    }
    return NULL;
}

/* req is the slot's first member. */
static struct slot *slot_of_req(struct vh_req *r)
{
    return (struct slot *)(void *)r;
}

struct chain {
    uint64_t addr[VH_MAX_SEGS + 2];
    uint32_t len[VH_MAX_SEGS + 2];
    uint16_t flags[VH_MAX_SEGS + 2];
    unsigned n;
};

static void chain_add(struct chain *c, uint64_t addr, uint32_t len,
                      bool writable)
{
    c->addr[c->n] = addr;
    c->len[c->n] = len;
    c->flags[c->n] = writable ? VQ_DESC_F_WRITE : 0;
    c->n++;
}

/* Splits len bytes at addr into segs descriptors at points that depend on
 * seed: each piece is about len/segs, none empty. */
static void chain_add_data(struct chain *c, uint64_t addr, uint32_t len,
                           unsigned segs, uint32_t seed, bool writable)
{
    segs = MAX(1u, MIN(segs, len));
    uint32_t prev = 0;
    for (unsigned i = 1; i <= segs; i++) {
        uint32_t cut = len;
        if (i < segs) {
            uint32_t jitter = len / (2 * segs);
            seed = seed * 1103515245u + 12345u;
            cut = (uint32_t)((uint64_t)len * i / segs) +
                  (jitter ? (seed >> 8) % jitter : 0);
        }
        chain_add(c, addr + prev, cut - prev, writable);
        prev = cut;
    }
}

static void build_chain(struct vh *h, struct slot *s, struct chain *c)
{
    struct vh_req *r = &s->req;
    unsigned idx = (unsigned)(s - h->slots);
    uint64_t meta = META_GPA + idx * META_SLOT;
    uint8_t *m = h->ram + meta;
    put_le32(m, r->type);
    put_le32(m + 4, 0);
    put_le64(m + 8, r->sector);
    m[META_STATUS] = 0xFF; /* the device must overwrite it */
    c->n = 0;
    chain_add(c, meta, 16, false);
    if (r->len > h->o.max_bytes || r->segs > h->o.max_segs)
        vh_die("request larger than the harness was opened for");
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_GET_ID:
    case VIRTIO_BLK_T_OUT:
        if (r->len)
            chain_add_data(c, s->data_gpa, r->len, r->segs, r->seg_seed,
                           r->type != VIRTIO_BLK_T_OUT);
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        put_le64(m + META_RANGE, r->range_sector);
        put_le32(m + META_RANGE + 8, r->range_count);
        put_le32(m + META_RANGE + 12, r->range_flags);
        chain_add(c, meta + META_RANGE, 16, false);
        break;
    default:
        break;
    }
    chain_add(c, meta + META_STATUS, 1, true);
}

static void write_desc(uint8_t *p, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next)
{
    put_le64(p, addr);
    put_le32(p + 8, len);
    put_le16(p + 12, flags);
    put_le16(p + 14, next);
}

void vh_queue(struct vh *h, struct vh_req *r)
{
    struct slot *s = slot_of_req(r);
    unsigned idx = (unsigned)(s - h->slots);
    struct chain c;
    build_chain(h, s, &c);
    uint16_t head = (uint16_t)(idx * h->desc_per_slot);
    if (h->o.indirect) {
        uint64_t table = META_GPA + idx * META_SLOT + META_TABLE;
        for (unsigned i = 0; i < c.n; i++)
            write_desc(h->ram + table + 16 * i, c.addr[i], c.len[i],
                       c.flags[i] | (i + 1 < c.n ? VQ_DESC_F_NEXT : 0),
                       (uint16_t)(i + 1));
        write_desc(h->desc + 16 * head, table, 16 * c.n, VQ_DESC_F_INDIRECT,
                   0);
    } else {
        for (unsigned i = 0; i < c.n; i++)
            write_desc(h->desc + 16 * (head + i), c.addr[i], c.len[i],
                       c.flags[i] | (i + 1 < c.n ? VQ_DESC_F_NEXT : 0),
                       (uint16_t)(head + i + 1));
    }
    put_le16(h->avail + 4 + 2 * (h->avail_shadow % h->qsize), head);
    h->avail_shadow++;
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

void vh_kick(struct vh *h)
{
    uint16_t old = h->kicked_idx, now = h->avail_shadow;
    if (old == now)
        return;
    __atomic_store_n((uint16_t *)(void *)(h->avail + 2), now, __ATOMIC_RELEASE);
    h->kicked_idx = now;
    /* The index store must be visible before the device's flags are read. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    bool notify;
    if (h->features & VIRTIO_FEATURE(VIRTIO_F_RING_EVENT_IDX)) {
        uint16_t ev = __atomic_load_n((uint16_t *)(void *)(h->used + 4 + 8 * h->qsize),
                                      __ATOMIC_ACQUIRE);
        notify = need_event(ev, now, old);
    } else {
        notify = !(__atomic_load_n((uint16_t *)(void *)h->used, __ATOMIC_ACQUIRE) &
                   VQ_USED_F_NO_NOTIFY);
    }
    if (notify) {
        h->notifies++;
        guest_mmio_write(h, h->notify, 0, 2);
    }
}

static struct slot *slot_of(struct vh *h, uint32_t id)
{
    if (id % h->desc_per_slot || id / h->desc_per_slot >= h->o.depth)
        vh_die("used id %u is no request head", id);
    struct slot *s = &h->slots[id / h->desc_per_slot];
    if (!s->busy)
        vh_die("used id %u is not in flight", id);
    return s;
}

static unsigned reap(struct vh *h)
{
    unsigned n = 0;
    for (;;) {
        uint16_t used_idx = __atomic_load_n((uint16_t *)(void *)(h->used + 2),
                                            __ATOMIC_ACQUIRE);
        while (h->last_used != used_idx) {
            const uint8_t *e = h->used + 4 + 8 * (h->last_used % h->qsize);
            struct slot *s = slot_of(h, get_le32(e));
            unsigned idx = (unsigned)(s - h->slots);
            s->req.used_len = get_le32(e + 4);
            s->req.status = h->ram[META_GPA + idx * META_SLOT + META_STATUS];
            h->last_used++;
            n++;
            if (s->req.done)
                s->req.done(h, &s->req);
            s->busy = false; /* only now: done() sees its request intact */
            h->inflight--;
        }
        if (!(h->features & VIRTIO_FEATURE(VIRTIO_F_RING_EVENT_IDX)))
            return n;
        /* Ask for an interrupt at the next completion, then look again
         * for one that slipped in meanwhile. */
        __atomic_store_n((uint16_t *)(void *)(h->avail + 4 + 2 * h->qsize),
                         h->last_used, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n((uint16_t *)(void *)(h->used + 2), __ATOMIC_ACQUIRE) ==
            h->last_used)
            return n;
    }
}

unsigned vh_wait(struct vh *h, int timeout_ms)
{
    unsigned n = reap(h);
    if (n || !h->inflight)
        return n;
    struct pollfd p = {.fd = h->irqfd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) > 0) {
        uint64_t v;
        if (read(h->irqfd, &v, sizeof(v)) == sizeof(v))
            h->interrupts++;
    }
    return reap(h);
}

static struct vh_req *wait_one(struct vh *h, struct vh_req *r)
{
    bool *busy = &slot_of_req(r)->busy;
    for (int waited = 0; *busy; waited++) {
        if (waited > 300)
            vh_die("request type %u not completed in 30 s (device status "
                   "0x%x)", r->type, vh_device_status(h));
        vh_wait(h, 100);
    }
    return r;
}

uint8_t vh_sync(struct vh *h, uint32_t type, uint64_t sector, void *buf,
                uint32_t len, unsigned segs)
{
    while (h->inflight >= h->o.depth)
        vh_wait(h, 100);
    struct vh_req *r = vh_alloc(h);
    r->type = type;
    r->sector = sector;
    r->len = len;
    r->segs = segs;
    if (type == VIRTIO_BLK_T_OUT)
        memcpy(r->data, buf, len);
    vh_queue(h, r);
    vh_kick(h);
    wait_one(h, r);
    if (type != VIRTIO_BLK_T_OUT && buf && r->status == VIRTIO_BLK_S_OK)
        memcpy(buf, r->data, len);
    return r->status;
}

uint8_t vh_sync_range(struct vh *h, uint32_t type, uint64_t sector,
                      uint32_t count, uint32_t flags)
{
    while (h->inflight >= h->o.depth)
        vh_wait(h, 100);
    struct vh_req *r = vh_alloc(h);
    r->type = type;
    r->range_sector = sector;
    r->range_count = count;
    r->range_flags = flags;
    vh_queue(h, r);
    vh_kick(h);
    return wait_one(h, r)->status;
}
