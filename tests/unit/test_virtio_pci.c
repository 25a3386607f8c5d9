#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_block.h"
#include "platform/piix.h"
#include "virtio/blk.h"
#include "virtio/pci.h"
#include "vring_driver.h"

#define RAM_SIZE 0x100000
#define DISK_SIZE (1024 * 1024)
#define SLOT 3
#define DEVFN LAYOUT_PCI_DEVFN(SLOT, 0)
#define IO_BASE 0xC000
#define MSIX_BASE 0xFEB00000ULL
#define MODERN_BASE 0xFD000000ULL
#define RING 0x10000
#define HDR 0x20000
#define STATUS 0x21000
#define DATA 0x30000
#define MSI_ADDR 0xFEE00000U

static uint8_t ram[RAM_SIZE];

struct binding {
    struct virtio_pci_ioeventfd io;
    bool live;
};

struct env {
    struct bus pio, mmio;
    struct pci_host host;
    struct piix piix;
    struct irq_router router;
    struct guest_mem mem;
    struct blockdev *bd;
    struct virtio_blk *blk;
    struct virtio_dev *dev;
    struct virtio_pci vp;
    struct binding bindings[16];
    unsigned nbindings;
    struct test_ring tr;
};

static int record_ioeventfd(void *opaque, const struct virtio_pci_ioeventfd *io,
                            bool assign)
{
    struct env *e = opaque;
    if (assign) {
        assert_true(e->nbindings < 16);
        e->bindings[e->nbindings++] = (struct binding){*io, true};
        return 0;
    }
    for (unsigned i = 0; i < e->nbindings; i++) {
        struct binding *b = &e->bindings[i];
        if (b->live && b->io.fd == io->fd && b->io.addr == io->addr &&
            b->io.pio == io->pio) {
            b->live = false;
            return 0;
        }
    }
    fail_msg("unbinding an ioeventfd that is not bound");
    return -1;
}

static const struct binding *find_binding(struct env *e, bool pio,
                                          uint64_t addr)
{
    for (unsigned i = 0; i < e->nbindings; i++)
        if (e->bindings[i].live && e->bindings[i].io.pio == pio &&
            e->bindings[i].io.addr == addr)
            return &e->bindings[i];
    return NULL;
}

static unsigned live_bindings(struct env *e)
{
    unsigned n = 0;
    for (unsigned i = 0; i < e->nbindings; i++)
        n += e->bindings[i].live;
    return n;
}

/* ---- config space and BAR access helpers ----------------------------- */

static uint32_t cfg_rd(struct env *e, unsigned off, unsigned len)
{
    return pci_host_config_read(&e->host, DEVFN, off, len);
}

static void cfg_wr(struct env *e, unsigned off, unsigned len, uint32_t v)
{
    pci_host_config_write(&e->host, DEVFN, off, len, v);
}

static uint64_t rd(struct bus *b, uint64_t addr, unsigned len)
{
    uint64_t v = 0;
    assert_true(bus_read(b, addr, &v, len));
    return v;
}

static void wr(struct bus *b, uint64_t addr, unsigned len, uint64_t v)
{
    assert_true(bus_write(b, addr, &v, len));
}

static uint64_t common_rd(struct env *e, unsigned off, unsigned len)
{
    return rd(&e->mmio, MODERN_BASE + VIRTIO_PCI_COMMON_OFF + off, len);
}

static void common_wr(struct env *e, unsigned off, unsigned len, uint64_t v)
{
    wr(&e->mmio, MODERN_BASE + VIRTIO_PCI_COMMON_OFF + off, len, v);
}

static uint64_t legacy_rd(struct env *e, unsigned off, unsigned len)
{
    return rd(&e->pio, IO_BASE + off, len);
}

static void legacy_wr(struct env *e, unsigned off, unsigned len, uint64_t v)
{
    wr(&e->pio, IO_BASE + off, len, v);
}

static uint8_t isr_rd(struct env *e)
{
    return (uint8_t)rd(&e->mmio, MODERN_BASE + VIRTIO_PCI_ISR_OFF, 1);
}

/* What firmware does: size every BAR, program the ones that exist. */
static void program_bars(struct env *e)
{
    for (unsigned bar = 0; bar < 6; bar++) {
        unsigned off = PCI_BAR0 + 4 * bar;
        uint32_t old = cfg_rd(e, off, 4);
        cfg_wr(e, off, 4, 0xFFFFFFFF);
        cfg_rd(e, off, 4);
        cfg_wr(e, off, 4, old);
    }
    cfg_wr(e, PCI_BAR0, 4, IO_BASE);
    cfg_wr(e, PCI_BAR0 + 4, 4, (uint32_t)MSIX_BASE);
    cfg_wr(e, PCI_BAR0 + 16, 4, (uint32_t)MODERN_BASE);
    cfg_wr(e, PCI_BAR0 + 20, 4, 0);
    cfg_wr(e, PCI_BAR0 + 8, 4, 0); /* unimplemented ones get zeros */
    cfg_wr(e, PCI_BAR0 + 12, 4, 0);
    cfg_wr(e, PCI_COMMAND, 2,
           PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static int setup_nq(void **state, unsigned nq)
{
    static struct env e;
    memset(&e, 0, sizeof(e));
    memset(ram, 0, sizeof(ram));
    assert_int_equal(bus_init(&e.pio), 0);
    assert_int_equal(bus_init(&e.mmio), 0);
    assert_int_equal(pci_host_init(&e.host, &e.pio, &e.mmio, -1), 0);
    assert_int_equal(piix_init(&e.piix, &e.host, true), 0);
    assert_int_equal(irq_router_init(&e.router, -1), 0);
    assert_int_equal(gmem_add(&e.mem, 0, RAM_SIZE, ram, false), 0);
    e.bd = fake_blk_new(DISK_SIZE, false);
    struct virtio_blk_opts opts = {.bd = e.bd, .num_queues = nq,
                                   .serial = "pci"};
    assert_int_equal(virtio_blk_new(&e.mem, &opts, &e.blk), 0);
    e.dev = virtio_blk_dev(e.blk);
    assert_int_equal(virtio_pci_init(&e.vp, e.dev, &e.router,
                                     record_ioeventfd, &e),
                     0);
    assert_int_equal(pci_host_add(&e.host, &e.vp.pci, DEVFN), 0);
    program_bars(&e);
    *state = &e;
    return 0;
}

static int setup(void **state)
{
    return setup_nq(state, 1);
}

static int setup_mq(void **state)
{
    return setup_nq(state, 4);
}

static int teardown(void **state)
{
    struct env *e = *state;
    virtio_pci_destroy(&e->vp);
    virtio_blk_free(e->blk);
    blk_close(e->bd);
    irq_router_destroy(&e->router);
    pci_host_destroy(&e->host);
    bus_destroy(&e->pio);
    bus_destroy(&e->mmio);
    return 0;
}

/* Walks the capability list: offset of the vendor cap of cfg_type, or of
 * the capability with id when type is 0. */
static unsigned find_cap(struct env *e, uint8_t id, uint8_t type)
{
    unsigned off = cfg_rd(e, PCI_CAP_PTR, 1);
    for (unsigned hops = 0; off && hops < 48; hops++) {
        if (cfg_rd(e, off, 1) == id &&
            (type == 0 || cfg_rd(e, off + 3, 1) == type))
            return off;
        off = cfg_rd(e, off + 1, 1);
    }
    return 0;
}

static bool notify_pending(struct env *e, unsigned q)
{
    uint64_t v;
    int fd = virtio_pci_notifier(&e->vp, q)->fd;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return false;
    /* put it back for the handler */
    assert_int_equal(write(fd, &v, sizeof(v)), sizeof(v));
    return true;
}

static void io_thread_notify(struct env *e, unsigned q)
{
    virtio_pci_notifier_event(virtio_pci_notifier(&e->vp, q), 0);
}

static unsigned pirq_irq(void)
{
    static const unsigned irqs[] = LAYOUT_PIRQ_DEFAULT_IRQS;
    return irqs[pci_slot_pirq(SLOT, 1)];
}

/* ---- identity, BARs, capabilities -------------------------------------- */

static void test_identity(void **state)
{
    struct env *e = *state;
    assert_int_equal(cfg_rd(e, PCI_VENDOR_ID, 2), 0x1AF4);
    assert_int_equal(cfg_rd(e, PCI_DEVICE_ID, 2), 0x1001);
    assert_int_equal(cfg_rd(e, PCI_REVISION, 1), 0);
    assert_int_equal(cfg_rd(e, PCI_SUBSYS_VENDOR, 2), 0x1AF4);
    assert_int_equal(cfg_rd(e, PCI_SUBSYS_ID, 2), VIRTIO_ID_BLOCK);
    assert_int_equal(cfg_rd(e, PCI_REVISION, 4) >> 8, 0x010000);
    assert_int_equal(cfg_rd(e, PCI_INTERRUPT_PIN, 1), 1);
    assert_true(cfg_rd(e, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
}

static void test_bar_sizing(void **state)
{
    struct env *e = *state;
    static const uint32_t expect[6] = {0xFFFFFF81, 0xFFFFF000, 0, 0,
                                       0xFFFFC00C, 0xFFFFFFFF};
    for (unsigned bar = 0; bar < 6; bar++) {
        unsigned off = PCI_BAR0 + 4 * bar;
        uint32_t old = cfg_rd(e, off, 4);
        cfg_wr(e, off, 4, 0xFFFFFFFF);
        assert_int_equal(cfg_rd(e, off, 4), expect[bar]);
        cfg_wr(e, off, 4, old);
        assert_int_equal(cfg_rd(e, off, 4), old);
    }
    assert_int_equal(cfg_rd(e, PCI_BAR0 + 8, 4), 0);
    cfg_wr(e, PCI_ROM_BAR, 4, 0xFFFFFFFF);
    assert_int_equal(cfg_rd(e, PCI_ROM_BAR, 4), 0);
    /* All three BARs decode after programming. */
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_QUEUE_NUM, 2), 256);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
    assert_int_equal(rd(&e->mmio, MSIX_BASE + 12, 4), 1); /* masked */
}

static void test_capabilities(void **state)
{
    struct env *e = *state;
    static const struct {
        uint8_t type;
        uint32_t off, len;
    } want[] = {
        {VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN},
        {VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1},
        {VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, VIRTIO_BLK_CFG_LEN},
        {VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, 4},
    };
    for (unsigned i = 0; i < 4; i++) {
        unsigned c = find_cap(e, PCI_CAP_ID_VNDR, want[i].type);
        assert_int_not_equal(c, 0);
        assert_int_equal(cfg_rd(e, c + 4, 1), VIRTIO_PCI_MODERN_BAR);
        assert_int_equal(cfg_rd(e, c + 8, 4), want[i].off);
        assert_int_equal(cfg_rd(e, c + 12, 4), want[i].len);
    }
    unsigned n = find_cap(e, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG);
    assert_int_equal(cfg_rd(e, n + 2, 1), 20);
    assert_int_equal(cfg_rd(e, n + 16, 4), VIRTIO_PCI_NOTIFY_MULTIPLIER);
    assert_int_not_equal(find_cap(e, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG),
                         0);
    unsigned m = find_cap(e, PCI_CAP_ID_MSIX, 0);
    assert_int_not_equal(m, 0);
    assert_int_equal(cfg_rd(e, m + 2, 2), 1); /* 2 vectors */
    assert_int_equal(cfg_rd(e, m + 4, 4), VIRTIO_PCI_MSIX_BAR);
    assert_int_equal(cfg_rd(e, m + 8, 4),
                     VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_MSIX_BAR);
    /* The driver cannot change the virtio capabilities. */
    unsigned c = find_cap(e, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG);
    cfg_wr(e, c + 8, 4, 0x1234);
    assert_int_equal(cfg_rd(e, c + 8, 4), VIRTIO_PCI_COMMON_OFF);
}

/* ---- modern interface ---------------------------------------------------- */

static void modern_queue_setup(struct env *e, uint16_t size)
{
    tr_init(&e->tr, ram, RING, size);
    common_wr(e, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
    common_wr(e, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)e->tr.desc);
    common_wr(e, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)e->tr.avail);
    common_wr(e, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)e->tr.used);
    common_wr(e, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static uint8_t status_rd(struct env *e)
{
    return (uint8_t)common_rd(e, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void status_wr(struct env *e, uint8_t v)
{
    common_wr(e, VIRTIO_PCI_COMMON_STATUS, 1, v);
}

/* The sequence SeaBIOS's modern driver performs. */
static void modern_init(struct env *e, uint64_t features)
{
    status_wr(e, 0);
    isr_rd(e);
    status_wr(e, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    common_wr(e, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    common_wr(e, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
    common_wr(e, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_wr(e, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
    status_wr(e, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                     VIRTIO_STATUS_FEATURES_OK);
    assert_true(status_rd(e) & VIRTIO_STATUS_FEATURES_OK);
    modern_queue_setup(e, 128);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
    status_wr(e, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                     VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static unsigned queue_read_request(struct env *e, uint64_t sector)
{
    static unsigned n;
    unsigned slot = n++ % 16;
    uint16_t d = (uint16_t)(3 * (slot % 8));
    put_le32(ram + HDR + 16 * slot, VIRTIO_BLK_T_IN);
    put_le64(ram + HDR + 16 * slot + 8, sector);
    ram[STATUS + slot] = 0xFF;
    tr_desc(&e->tr, d, HDR + 16 * slot, 16, VQ_DESC_F_NEXT, d + 1);
    tr_desc(&e->tr, d + 1, DATA + 512 * slot, 512,
            VQ_DESC_F_NEXT | VQ_DESC_F_WRITE, d + 2);
    tr_desc(&e->tr, d + 2, STATUS + slot, 1, VQ_DESC_F_WRITE, 0);
    tr_publish(&e->tr, d);
    return slot;
}

static void test_modern_features(void **state)
{
    struct env *e = *state;
    common_wr(e, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    uint32_t lo = (uint32_t)common_rd(e, VIRTIO_PCI_COMMON_DF, 4);
    common_wr(e, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    uint32_t hi = (uint32_t)common_rd(e, VIRTIO_PCI_COMMON_DF, 4);
    assert_true(hi & 1); /* VERSION_1 */
    assert_true(lo & (1u << VIRTIO_BLK_F_BLK_SIZE));
    assert_true(lo & (1u << VIRTIO_BLK_F_SEG_MAX));
    common_wr(e, VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_DF, 4), 0);
    /* An unoffered bit: FEATURES_OK does not stick. */
    common_wr(e, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_wr(e, VIRTIO_PCI_COMMON_GF, 4, 1 | 0x80000000u);
    status_wr(e, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                     VIRTIO_STATUS_FEATURES_OK);
    assert_false(status_rd(e) & VIRTIO_STATUS_FEATURES_OK);
    /* Only the offered ones: accepted. */
    status_wr(e, 0);
    common_wr(e, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_wr(e, VIRTIO_PCI_COMMON_GF, 4, 1);
    status_wr(e, VIRTIO_STATUS_FEATURES_OK);
    assert_true(status_rd(e) & VIRTIO_STATUS_FEATURES_OK);
    /* Features are frozen after FEATURES_OK. */
    common_wr(e, VIRTIO_PCI_COMMON_GF, 4, 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_GF, 4), 1);
}

static void test_modern_request_with_intx(void **state)
{
    struct env *e = *state;
    memset(fake_blk_data(e->bd) + 512, 0x42, 512);
    modern_init(e, VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    unsigned slot = queue_read_request(e, 1);
    /* A plain MMIO write to the notify address (no ioeventfd in KVM). */
    wr(&e->mmio, MODERN_BASE + VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    assert_true(notify_pending(e, 0));
    assert_int_equal(fake_blk_inflight(e->bd), 0); /* not on this thread */
    io_thread_notify(e, 0);
    assert_int_equal(fake_blk_inflight(e->bd), 1);
    virtio_blk_handle_completions(e->blk);
    assert_int_equal(ram[STATUS + slot], VIRTIO_BLK_S_OK);
    assert_int_equal(ram[DATA + 512 * slot], 0x42);
    assert_int_equal(tr_used_idx(&e->tr), 1);
    /* INTx, since MSI-X is off: ISR bit 0 and the PIRQ's IRQ line. */
    assert_int_equal(e->host.isa_irq[pirq_irq()].level, 1);
    assert_true(cfg_rd(e, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    assert_int_equal(isr_rd(e), VIRTIO_ISR_QUEUE);
    assert_int_equal(e->host.isa_irq[pirq_irq()].level, 0);
    assert_int_equal(isr_rd(e), 0);
}

static void test_queue_size_and_enable(void **state)
{
    struct env *e = *state;
    common_wr(e, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    common_wr(e, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
    /* 64-bit addresses in two halves, and as one 64-bit access */
    common_wr(e, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x12345000);
    common_wr(e, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0x9);
    assert_int_equal(e->dev->vq[0].desc_gpa, 0x912345000ULL);
    common_wr(e, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, 0x0000000A00001000ULL);
    assert_int_equal(e->dev->vq[0].avail_gpa, 0xA00001000ULL);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_AVAILLO, 8),
                     0xA00001000ULL);
    /* Rings outside guest RAM: enabling fails and the device wants a
     * reset, with a configuration interrupt once DRIVER_OK is set. */
    status_wr(e, VIRTIO_STATUS_DRIVER_OK);
    common_wr(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_true(status_rd(e) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(isr_rd(e), VIRTIO_ISR_CONFIG);
    /* Not a power of two. */
    status_wr(e, 0);
    tr_init(&e->tr, ram, RING, 64);
    modern_queue_setup(e, 48);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_true(status_rd(e) & VIRTIO_STATUS_NEEDS_RESET);
    /* A good queue; its fields are fixed while it runs. */
    status_wr(e, 0);
    modern_queue_setup(e, 64);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    common_wr(e, VIRTIO_PCI_COMMON_Q_SIZE, 2, 32);
    common_wr(e, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_DESCLO, 4), RING);
    /* Writing 0 to queue_enable is not a way to stop it. */
    common_wr(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
}

static void test_reset_drops_queue_state(void **state)
{
    struct env *e = *state;
    modern_init(e, VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    common_wr(e, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    status_wr(e, 0);
    assert_int_equal(status_rd(e), 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_MSIX, 2),
                     VIRTIO_MSI_NO_VECTOR);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_MSIX, 2),
                     VIRTIO_MSI_NO_VECTOR);
    common_wr(e, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_GF, 4), 0);
    /* A stale notification after the reset is harmless. */
    queue_read_request(e, 0);
    io_thread_notify(e, 0);
    assert_int_equal(fake_blk_inflight(e->bd), 0);
}

static void test_reset_waits_for_inflight(void **state)
{
    struct env *e = *state;
    modern_init(e, VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    queue_read_request(e, 0);
    io_thread_notify(e, 0);
    status_wr(e, 0);
    assert_int_not_equal(status_rd(e), 0); /* the driver keeps polling */
    virtio_blk_handle_completions(e->blk);
    assert_int_equal(status_rd(e), 0);
    assert_int_equal(tr_used_idx(&e->tr), 0);
}

static void test_driver_ok_kicks_queued_buffers(void **state)
{
    struct env *e = *state;
    status_wr(e, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    common_wr(e, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    common_wr(e, VIRTIO_PCI_COMMON_GF, 4, 1);
    status_wr(e, VIRTIO_STATUS_FEATURES_OK);
    modern_queue_setup(e, 16);
    queue_read_request(e, 0);
    wr(&e->mmio, MODERN_BASE + VIRTIO_PCI_NOTIFY_OFF, 2, 0);
    io_thread_notify(e, 0); /* before DRIVER_OK: ignored */
    assert_false(notify_pending(e, 0));
    assert_int_equal(fake_blk_inflight(e->bd), 0);
    status_wr(e, VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    assert_true(notify_pending(e, 0));
    io_thread_notify(e, 0);
    assert_int_equal(fake_blk_inflight(e->bd), 1);
}

static void test_hostile_indices(void **state)
{
    struct env *e = *state;
    common_wr(e, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0xFFFF);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_MSIX, 2),
                     VIRTIO_MSI_NO_VECTOR);
    common_wr(e, VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
    common_wr(e, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    common_wr(e, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_SEL, 2, 1);
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_PFN, 4, 0x10);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_QUEUE_NUM, 2), 0);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_QUEUE_PFN, 4), 0);
    /* Vector numbers beyond the table read back as NO_VECTOR. */
    common_wr(e, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_MSIX, 2),
                     VIRTIO_MSI_NO_VECTOR);
    common_wr(e, VIRTIO_PCI_COMMON_MSIX, 2, 0x7FF);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_MSIX, 2),
                     VIRTIO_MSI_NO_VECTOR);
    common_wr(e, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
    /* Notifications for queues that do not exist go nowhere. */
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, 2, 7);
    wr(&e->mmio, MODERN_BASE + VIRTIO_PCI_NOTIFY_OFF + 4, 2, 1);
    assert_false(notify_pending(e, 0));
    /* Every offset of every BAR, every width: no crash, unknown is 0. */
    for (uint64_t off = 0; off < VIRTIO_PCI_MODERN_BAR_SIZE; off += 4)
        rd(&e->mmio, MODERN_BASE + off, 4);
    assert_int_equal(rd(&e->mmio, MODERN_BASE + 0x1004, 4), 0);
    assert_int_equal(rd(&e->mmio, MODERN_BASE + VIRTIO_PCI_DEVICE_OFF +
                                      VIRTIO_BLK_CFG_LEN, 4),
                     0);
    for (uint64_t off = 0; off < 0x80; off++)
        legacy_rd(e, (unsigned)off, 1);
    for (uint64_t off = 0; off < VIRTIO_PCI_MSIX_BAR_SIZE; off += 8)
        rd(&e->mmio, MSIX_BASE + off, 8);
}

static void test_device_config_widths(void **state)
{
    struct env *e = *state;
    uint64_t dev = MODERN_BASE + VIRTIO_PCI_DEVICE_OFF;
    uint64_t cap = DISK_SIZE / 512;
    assert_int_equal(rd(&e->mmio, dev + VIRTIO_BLK_CFG_CAPACITY, 8), cap);
    assert_int_equal(rd(&e->mmio, dev + VIRTIO_BLK_CFG_CAPACITY, 4), cap);
    assert_int_equal(rd(&e->mmio, dev + VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
    assert_int_equal(rd(&e->mmio, dev + VIRTIO_BLK_CFG_HEADS, 1), 16);
    assert_int_equal(rd(&e->mmio, dev + VIRTIO_BLK_CFG_BLK_SIZE + 1, 1), 2);
}

/* ---- legacy interface ---------------------------------------------------- */

static void test_legacy_layout_and_request(void **state)
{
    struct env *e = *state;
    /* What SeaBIOS's legacy driver does. */
    legacy_wr(e, VIRTIO_PCI_LEGACY_STATUS, 1, 0);
    legacy_rd(e, VIRTIO_PCI_LEGACY_ISR, 1);
    legacy_wr(e, VIRTIO_PCI_LEGACY_STATUS, 1,
              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint32_t hf = (uint32_t)legacy_rd(e, VIRTIO_PCI_LEGACY_HOST_FEATURES, 4);
    assert_true(hf & (1u << VIRTIO_BLK_F_BLK_SIZE));
    legacy_wr(e, VIRTIO_PCI_LEGACY_GUEST_FEATURES, 4,
              hf | 0x80000000u); /* unoffered bit: dropped */
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_GUEST_FEATURES, 4), hf);
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_SEL, 2, 0);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_QUEUE_NUM, 2), 256);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_QUEUE_PFN, 4), 0);
    tr_init(&e->tr, ram, RING, 256);
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_PFN, 4, RING >> 12);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_QUEUE_PFN, 4),
                     RING >> 12);
    assert_int_equal(e->dev->vq[0].used_gpa, e->tr.used);
    /* Device configuration right after the 20-byte header. */
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_CONFIG, 4),
                     DISK_SIZE / 512);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_CONFIG +
                                      VIRTIO_BLK_CFG_BLK_SIZE, 4),
                     512);
    legacy_wr(e, VIRTIO_PCI_LEGACY_STATUS, 1,
              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                  VIRTIO_STATUS_DRIVER_OK);
    unsigned slot = queue_read_request(e, 0);
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, 2, 0);
    assert_true(notify_pending(e, 0));
    io_thread_notify(e, 0);
    virtio_blk_handle_completions(e->blk);
    assert_int_equal(ram[STATUS + slot], VIRTIO_BLK_S_OK);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_ISR, 1), VIRTIO_ISR_QUEUE);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_ISR, 1), 0);
    /* PFN 0 stops the queue; status 0 resets. */
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_PFN, 4, 0);
    assert_false(e->dev->vq[0].ready);
    legacy_wr(e, VIRTIO_PCI_LEGACY_STATUS, 1, 0);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_STATUS, 1), 0);
}

static unsigned msix_cap(struct env *e)
{
    return find_cap(e, PCI_CAP_ID_MSIX, 0);
}

static void msix_enable(struct env *e, bool on, bool maskall)
{
    cfg_wr(e, msix_cap(e) + 2, 2, (on ? 0x8000 : 0) | (maskall ? 0x4000 : 0));
}

static void msix_program(struct env *e, unsigned v, uint32_t data, bool mask)
{
    uint64_t entry = MSIX_BASE + VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v;
    wr(&e->mmio, entry + 0, 4, MSI_ADDR);
    wr(&e->mmio, entry + 4, 4, 0);
    wr(&e->mmio, entry + 8, 4, data);
    wr(&e->mmio, entry + 12, 4, mask ? 1 : 0);
}

static void test_legacy_msix_header(void **state)
{
    struct env *e = *state;
    msix_enable(e, true, false);
    /* With MSI-X enabled the vectors sit at 20/22 and config moves to 24. */
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_CONFIG_MSIX, 4),
                     DISK_SIZE / 512);
    legacy_wr(e, VIRTIO_PCI_LEGACY_MSIX_CONFIG, 2, 0);
    legacy_wr(e, VIRTIO_PCI_LEGACY_QUEUE_SEL, 2, 0);
    legacy_wr(e, VIRTIO_PCI_LEGACY_MSIX_QUEUE, 2, 1);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_MSIX_CONFIG, 2), 0);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_MSIX_QUEUE, 2), 1);
    legacy_wr(e, VIRTIO_PCI_LEGACY_MSIX_QUEUE, 2, 5);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_MSIX_QUEUE, 2),
                     VIRTIO_MSI_NO_VECTOR);
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_MSIX, 2), 0);
    msix_enable(e, false, false);
    assert_int_equal(legacy_rd(e, VIRTIO_PCI_LEGACY_CONFIG, 4),
                     DISK_SIZE / 512);
}

/* ---- MSI-X ------------------------------------------------------------------ */

static void complete_one_read(struct env *e)
{
    queue_read_request(e, 0);
    io_thread_notify(e, 0);
    virtio_blk_handle_completions(e->blk);
}

static void test_msix_delivery_masking_pending(void **state)
{
    struct env *e = *state;
    msix_enable(e, true, false);
    msix_program(e, 0, 0x30, false);
    msix_program(e, 1, 0x31, false);
    assert_int_equal(rd(&e->mmio, MSIX_BASE + 16 + 8, 4), 0x31);
    modern_init(e, VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    common_wr(e, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    common_wr(e, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    complete_one_read(e);
    assert_int_equal(e->vp.vectors[1].fired, 1);
    assert_int_equal(e->vp.vectors[1].address, MSI_ADDR);
    assert_int_equal(e->vp.vectors[1].data, 0x31);
    assert_int_equal(e->vp.vectors[0].fired, 0);
    assert_int_equal(isr_rd(e), 0); /* ISR unused with MSI-X */
    assert_int_equal(e->host.isa_irq[pirq_irq()].level, 0);

    /* Entry masked: the interrupt waits in the PBA. */
    wr(&e->mmio, MSIX_BASE + 16 + 12, 4, 1);
    complete_one_read(e);
    assert_int_equal(e->vp.vectors[1].fired, 1);
    assert_int_equal(rd(&e->mmio, MSIX_BASE + VIRTIO_PCI_MSIX_PBA_OFF, 8),
                     1u << 1);
    wr(&e->mmio, MSIX_BASE + VIRTIO_PCI_MSIX_PBA_OFF, 8, 0); /* read-only */
    assert_int_equal(rd(&e->mmio, MSIX_BASE + VIRTIO_PCI_MSIX_PBA_OFF, 8),
                     1u << 1);
    wr(&e->mmio, MSIX_BASE + 16 + 12, 4, 0);
    assert_int_equal(e->vp.vectors[1].fired, 2);
    assert_int_equal(rd(&e->mmio, MSIX_BASE + VIRTIO_PCI_MSIX_PBA_OFF, 8), 0);

    /* Function mask works the same way. */
    msix_enable(e, true, true);
    complete_one_read(e);
    assert_int_equal(e->vp.vectors[1].fired, 2);
    msix_enable(e, true, false);
    assert_int_equal(e->vp.vectors[1].fired, 3);

    /* A queue mapped to NO_VECTOR gets no interrupt at all. */
    common_wr(e, VIRTIO_PCI_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
    complete_one_read(e);
    assert_int_equal(e->vp.vectors[1].fired, 3);
    assert_int_equal(e->vp.pending, 0);
    assert_int_equal(isr_rd(e), 0);
}

static void test_msix_config_vector_on_needs_reset(void **state)
{
    struct env *e = *state;
    msix_enable(e, true, false);
    msix_program(e, 0, 0x40, false);
    modern_init(e, VIRTIO_FEATURE(VIRTIO_F_VERSION_1));
    common_wr(e, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    /* A descriptor loop. */
    tr_desc(&e->tr, 0, HDR, 16, VQ_DESC_F_NEXT, 1);
    tr_desc(&e->tr, 1, HDR, 16, VQ_DESC_F_NEXT, 0);
    tr_publish(&e->tr, 0);
    io_thread_notify(e, 0);
    assert_true(status_rd(e) & VIRTIO_STATUS_NEEDS_RESET);
    assert_int_equal(e->vp.vectors[0].fired, 1);
}

static void test_multiqueue_vectors_and_notify(void **state)
{
    struct env *e = *state;
    assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_NUMQ, 2), 4);
    assert_int_equal(cfg_rd(e, msix_cap(e) + 2, 2) & 0x7FF, 4);
    for (unsigned q = 0; q < 4; q++) {
        common_wr(e, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
        assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_NOFF, 2), q);
        common_wr(e, VIRTIO_PCI_COMMON_Q_MSIX, 2, q + 1);
        assert_int_equal(common_rd(e, VIRTIO_PCI_COMMON_Q_MSIX, 2), q + 1);
    }
    wr(&e->mmio, MODERN_BASE + VIRTIO_PCI_NOTIFY_OFF + 3 * 4, 2, 3);
    assert_true(notify_pending(e, 3));
    assert_false(notify_pending(e, 2));
}

/* ---- ioeventfds and the PCI_CFG window ------------------------------------- */

static void test_ioeventfd_bindings_follow_bars(void **state)
{
    struct env *e = *state;
    const struct binding *m =
        find_binding(e, false, MODERN_BASE + VIRTIO_PCI_NOTIFY_OFF);
    const struct binding *l =
        find_binding(e, true, IO_BASE + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY);
    assert_non_null(m);
    assert_non_null(l);
    assert_int_equal(m->io.fd, virtio_pci_notifier(&e->vp, 0)->fd);
    assert_false(m->io.datamatch);
    assert_int_equal(m->io.len, 2);
    assert_true(l->io.datamatch);
    assert_int_equal(l->io.data, 0);
    assert_int_equal(live_bindings(e), 2);
    /* The OS moves BAR4: the binding moves with it. */
    cfg_wr(e, PCI_BAR0 + 16, 4, 0xFC000000);
    assert_null(find_binding(e, false, MODERN_BASE + VIRTIO_PCI_NOTIFY_OFF));
    assert_non_null(
        find_binding(e, false, 0xFC000000ULL + VIRTIO_PCI_NOTIFY_OFF));
    /* Decoding off: nothing bound. */
    cfg_wr(e, PCI_COMMAND, 2, 0);
    assert_int_equal(live_bindings(e), 0);
}

static void test_ioeventfds_for_every_queue(void **state)
{
    struct env *e = *state;
    for (unsigned q = 0; q < 4; q++) {
        const struct binding *m = find_binding(
            e, false, MODERN_BASE + VIRTIO_PCI_NOTIFY_OFF + 4 * q);
        assert_non_null(m);
        assert_int_equal(m->io.fd, virtio_pci_notifier(&e->vp, q)->fd);
    }
    assert_int_equal(live_bindings(e), 8);
}

/* Points the PCI_CFG capability at c to len bytes at off of the modern
 * BAR. */
static void window_program(struct env *e, unsigned c, uint32_t off,
                           uint32_t len)
{
    cfg_wr(e, c + 4, 1, VIRTIO_PCI_MODERN_BAR);
    cfg_wr(e, c + 8, 4, off);
    cfg_wr(e, c + 12, 4, len);
}

static void test_pci_cfg_window(void **state)
{
    struct env *e = *state;
    unsigned c = find_cap(e, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
    /* Write device_status through the window, as SeaBIOS does for a BAR
     * above 4 GiB. */
    window_program(e, c, VIRTIO_PCI_COMMON_STATUS, 1);
    cfg_wr(e, c + 16, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(status_rd(e), VIRTIO_STATUS_ACKNOWLEDGE);
    /* And read the queue size of queue 0. */
    window_program(e, c, VIRTIO_PCI_COMMON_Q_SIZE, 2);
    assert_int_equal(cfg_rd(e, c + 16, 2), 256);
    /* Device configuration, 4 bytes. */
    cfg_wr(e, c + 8, 4, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_BLK_SIZE);
    cfg_wr(e, c + 12, 4, 4);
    assert_int_equal(cfg_rd(e, c + 16, 4), 512);
    /* Out-of-range windows do nothing. */
    cfg_wr(e, c + 8, 4, VIRTIO_PCI_MODERN_BAR_SIZE - 2);
    cfg_wr(e, c + 16, 4, 0xFFFFFFFF);
    cfg_wr(e, c + 4, 1, 3);
    cfg_wr(e, c + 8, 4, 0);
    cfg_wr(e, c + 16, 4, 0);
    cfg_wr(e, c + 12, 4, 3);
    assert_int_equal(status_rd(e), VIRTIO_STATUS_ACKNOWLEDGE);
}

/* A window read happens when pci_cfg_data is read, not when the window is
 * programmed: a driver that polls a register through it sees it change. */
static void test_pci_cfg_window_reads_live(void **state)
{
    struct env *e = *state;
    unsigned c = find_cap(e, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
    window_program(e, c, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
    uint8_t gen = (uint8_t)cfg_rd(e, c + 16, 1);
    virtio_dev_config_changed(e->dev);
    assert_int_equal(cfg_rd(e, c + 16, 1), (uint8_t)(gen + 1));
    cfg_wr(e, c + 8, 4, VIRTIO_PCI_COMMON_STATUS);
    status_wr(e, VIRTIO_STATUS_ACKNOWLEDGE);
    assert_int_equal(cfg_rd(e, c + 16, 1), VIRTIO_STATUS_ACKNOWLEDGE);
    status_wr(e, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    assert_int_equal(cfg_rd(e, c + 16, 1),
                     VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    /* Reading the capability's other fields does not access the BAR. */
    assert_int_equal(cfg_rd(e, c + 8, 4), VIRTIO_PCI_COMMON_STATUS);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TMQ(fn) cmocka_unit_test_setup_teardown(fn, setup_mq, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_identity),
        T(test_bar_sizing),
        T(test_capabilities),
        T(test_modern_features),
        T(test_modern_request_with_intx),
        T(test_queue_size_and_enable),
        T(test_reset_drops_queue_state),
        T(test_reset_waits_for_inflight),
        T(test_driver_ok_kicks_queued_buffers),
        T(test_hostile_indices),
        T(test_device_config_widths),
        T(test_legacy_layout_and_request),
        T(test_legacy_msix_header),
        T(test_msix_delivery_masking_pending),
        T(test_msix_config_vector_on_needs_reset),
        TMQ(test_multiqueue_vectors_and_notify),
        T(test_ioeventfd_bindings_follow_bars),
        TMQ(test_ioeventfds_for_every_queue),
        T(test_pci_cfg_window),
        T(test_pci_cfg_window_reads_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
