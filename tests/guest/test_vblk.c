/* vblk: a minimal virtio-blk driver, as an OS without firmware help would
 * need it. Finds the 1AF4:1001/1042 function on bus 0 through
 * configuration mechanism #1, assigns the BARs that no firmware assigned
 * (direct boot) inside the 32-bit PCI window, walks the capabilities,
 * performs the modern virtio-pci handshake, sets up one queue with its
 * MSI-X vector aimed at this CPU, then, polling for completions:
 * reads sectors and compares them with the pattern the runner put there,
 * writes sectors, reads them back and flushes. With vblk.ro=1 the disk
 * is read-only: the write must fail with IOERR and change nothing.
 *
 * Pattern (the runner's too): byte at offset o is
 * ((o / 512) * 157 + (o % 512) * 3 + 1) mod 256; written sectors hold the
 * pattern XOR 0xFF. */
#include "kit.h"

#define VENDOR_VIRTIO 0x1AF4
#define PCI_VENDOR 0x00
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_BAR0 0x10
#define PCI_CAP_PTR 0x34
#define CMD_IO 0x1
#define CMD_MEM 0x2
#define CMD_MASTER 0x4
#define STATUS_CAP_LIST 0x10
#define CAP_MSIX 0x11
#define CAP_VENDOR 0x09

/* virtio-pci structures */
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_DEVICE 4
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0C
#define C_MSIX 0x10
#define C_STATUS 0x14
#define C_QSELECT 0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1A
#define C_QENABLE 0x1C
#define C_QNOFF 0x1E
#define C_QDESC 0x20
#define C_QAVAIL 0x28
#define C_QUSED 0x30
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 0x40
#define NO_VECTOR 0xFFFF

/* virtio-blk */
#define F_RO 5
#define F_FLUSH 9
#define F_VERSION_1 32
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define S_OK 0
#define S_IOERR 1
#define SECTOR 512

#define QSIZE 16
#define DESC_NEXT 1
#define DESC_WRITE 2
#define VEC_VBLK 0x51
#define IO_SECTORS 64      /* per read/write: 32 KiB */
#define WRITE_AT 128       /* first sector written */
/* BARs go into the top 16 MiB of the 32-bit PCI window (uncached). */
#define BAR_WINDOW (LAYOUT_PCI_MMIO32_END - 16 * MiB)

struct vblk {
    uint8_t devfn;
    uint64_t common, notify, device;
    uint32_t notify_mult;
    uint64_t msix_table;
    uint8_t msix_cap;
    uint64_t features;
    uint16_t qsize, avail_idx, used_seen;
};

static uint8_t ring[3 * 4096] __attribute__((aligned(4096)));
static uint8_t data[IO_SECTORS * SECTOR] __attribute__((aligned(4096)));
static uint8_t header[16] __attribute__((aligned(16)));
static volatile uint8_t status_byte;
static volatile uint32_t vblk_irqs;

/* ---- configuration mechanism #1 ------------------------------------------ */

static void cf8(uint8_t devfn, unsigned off)
{
    outl(LAYOUT_PORT_PCI_CONFIG_ADDR,
         0x80000000u | (uint32_t)devfn << 8 | (off & 0xFC));
}

static uint32_t cfg_read32(uint8_t devfn, unsigned off)
{
    cf8(devfn, off);
    return inl(LAYOUT_PORT_PCI_CONFIG_DATA);
}

static uint8_t cfg_read8(uint8_t devfn, unsigned off)
{
    return (uint8_t)(cfg_read32(devfn, off) >> (8 * (off & 3)));
}

static uint16_t cfg_read16(uint8_t devfn, unsigned off)
{
    return (uint16_t)(cfg_read32(devfn, off) >> (8 * (off & 2)));
}

static void cfg_write32(uint8_t devfn, unsigned off, uint32_t v)
{
    cf8(devfn, off);
    outl(LAYOUT_PORT_PCI_CONFIG_DATA, v);
}

static void cfg_write16(uint8_t devfn, unsigned off, uint16_t v)
{
    cf8(devfn, off);
    outw(LAYOUT_PORT_PCI_CONFIG_DATA + (off & 2), v);
}

/* ---- MMIO of the widths the virtio registers have ---------------------- */

static uint8_t rd8(uint64_t a) { return *(volatile uint8_t *)(uintptr_t)a; }
static uint16_t rd16(uint64_t a) { return *(volatile uint16_t *)(uintptr_t)a; }
static void wr8(uint64_t a, uint8_t v) { *(volatile uint8_t *)(uintptr_t)a = v; }
static void wr16(uint64_t a, uint16_t v)
{
    *(volatile uint16_t *)(uintptr_t)a = v;
}

static void barrier(void)
{
    /* x86 keeps stores in order; the notify write is an exit. */
    __asm__ volatile("" ::: "memory");
}

/* ---- finding and placing the function ------------------------------------- */

static bool find_function(struct vblk *v)
{
    for (unsigned slot = 0; slot < LAYOUT_PCI_SLOTS; slot++) {
        uint32_t id = cfg_read32((uint8_t)(slot << 3), PCI_VENDOR);
        uint16_t dev = (uint16_t)(id >> 16);
        if ((id & 0xFFFF) == VENDOR_VIRTIO && (dev == 0x1001 || dev == 0x1042)) {
            v->devfn = (uint8_t)(slot << 3);
            kit_info("vblk.function", "00:%02x.0 1af4:%04x", slot, dev);
            return true;
        }
    }
    return false;
}

/* Sizes each BAR with decoding off; keeps an address firmware gave it,
 * assigns a naturally aligned one otherwise. Returns the number of BARs
 * this driver assigned. */
static unsigned place_bars(struct vblk *v)
{
    uint64_t mem = BAR_WINDOW, io = LAYOUT_PCI_IO_START;
    unsigned assigned = 0;
    cfg_write16(v->devfn, PCI_COMMAND, 0);
    for (unsigned bar = 0; bar < 6; bar++) {
        unsigned off = PCI_BAR0 + 4 * bar;
        uint32_t old = cfg_read32(v->devfn, off);
        cfg_write32(v->devfn, off, 0xFFFFFFFF);
        uint32_t mask = cfg_read32(v->devfn, off);
        cfg_write32(v->devfn, off, old);
        if (!mask)
            continue;
        bool is_io = mask & 1, is64 = !is_io && ((mask >> 1) & 3) == 2;
        uint32_t old_hi = is64 ? cfg_read32(v->devfn, off + 4) : 0;
        uint64_t cur = (old & (is_io ? ~3u : ~0xFu)) | (uint64_t)old_hi << 32;
        uint64_t size = is_io ? (uint16_t)(~(mask & ~3u) + 1)
                              : (uint32_t)(~(mask & ~0xFu) + 1);
        if (!cur) {
            uint64_t *next = is_io ? &io : &mem;
            cur = (*next + size - 1) & ~(size - 1);
            *next = cur + size;
            cfg_write32(v->devfn, off, (uint32_t)cur);
            if (is64)
                cfg_write32(v->devfn, off + 4, 0);
            assigned++;
        }
        kit_info("vblk.bar", "%u %s 0x%llx size 0x%llx", bar,
                 is_io ? "io" : "mem", (unsigned long long)cur,
                 (unsigned long long)size);
        bar += is64;
    }
    cfg_write16(v->devfn, PCI_COMMAND, CMD_IO | CMD_MEM | CMD_MASTER);
    return assigned;
}

static uint64_t bar_address(struct vblk *v, unsigned bar)
{
    uint32_t lo = cfg_read32(v->devfn, PCI_BAR0 + 4 * bar);
    uint64_t a = lo & ~0xFu;
    if (((lo >> 1) & 3) == 2)
        a |= (uint64_t)cfg_read32(v->devfn, PCI_BAR0 + 4 * bar + 4) << 32;
    return a;
}

static bool find_structures(struct vblk *v)
{
    if (!(cfg_read16(v->devfn, PCI_STATUS) & STATUS_CAP_LIST))
        return false;
    unsigned off = cfg_read8(v->devfn, PCI_CAP_PTR);
    for (unsigned hops = 0; off && hops < 48; hops++) {
        uint8_t id = cfg_read8(v->devfn, off);
        if (id == CAP_VENDOR) {
            uint8_t type = cfg_read8(v->devfn, off + 3);
            uint64_t at = bar_address(v, cfg_read8(v->devfn, off + 4)) +
                          cfg_read32(v->devfn, off + 8);
            if (type == CFG_COMMON)
                v->common = at;
            else if (type == CFG_DEVICE)
                v->device = at;
            else if (type == CFG_NOTIFY) {
                v->notify = at;
                v->notify_mult = cfg_read32(v->devfn, off + 16);
            }
        } else if (id == CAP_MSIX) {
            uint32_t t = cfg_read32(v->devfn, off + 4);
            v->msix_cap = (uint8_t)off;
            v->msix_table = bar_address(v, t & 7) + (t & ~7u);
        }
        off = cfg_read8(v->devfn, off + 1);
    }
    return v->common && v->notify && v->device && v->msix_table;
}

/* ---- the handshake ------------------------------------------------------- */

static void add_status(struct vblk *v, uint8_t bits)
{
    wr8(v->common + C_STATUS, rd8(v->common + C_STATUS) | bits);
}

static bool negotiate(struct vblk *v, bool ro)
{
    uint64_t offered = 0;
    wr8(v->common + C_STATUS, 0);
    if (rd8(v->common + C_STATUS) != 0)
        return kit_check(false, "vblk-features", "reset did not complete");
    add_status(v, ST_ACK);
    add_status(v, ST_DRIVER);
    for (unsigned sel = 0; sel < 2; sel++) {
        mmio_write32(v->common + C_DFSELECT, sel);
        offered |= (uint64_t)mmio_read32(v->common + C_DF) << (32 * sel);
    }
    v->features = offered & ((1ULL << F_VERSION_1) | (1ULL << F_RO) |
                             (1ULL << F_FLUSH));
    for (unsigned sel = 0; sel < 2; sel++) {
        mmio_write32(v->common + C_GFSELECT, sel);
        mmio_write32(v->common + C_GF, (uint32_t)(v->features >> (32 * sel)));
    }
    add_status(v, ST_FEATURES_OK);
    bool ok = rd8(v->common + C_STATUS) & ST_FEATURES_OK;
    bool dev_ro = offered & (1ULL << F_RO);
    return kit_check(ok && (offered & (1ULL << F_VERSION_1)) &&
                         (offered & (1ULL << F_FLUSH)) && dev_ro == ro,
                     "vblk-features",
                     "offered 0x%llx, FEATURES_OK %s, read-only %d (want %d)",
                     (unsigned long long)offered, ok ? "kept" : "refused",
                     dev_ro, ro);
}

static void on_vblk_irq(struct irq_frame *f)
{
    (void)f;
    vblk_irqs++;
    lapic_eoi();
}

/* MSI-X entry 1 -> this CPU's LAPIC, vector VEC_VBLK; the queue uses it. */
static void setup_msix(struct vblk *v)
{
    uint64_t e = v->msix_table + 16;
    idt_set_handler(VEC_VBLK, on_vblk_irq);
    lapic_enable();
    cfg_write16(v->devfn, v->msix_cap + 2, 0xC000); /* enable, all masked */
    mmio_write32(e, (uint32_t)LAYOUT_LAPIC_BASE | lapic_id() << 12);
    mmio_write32(e + 4, 0);
    mmio_write32(e + 8, VEC_VBLK);
    mmio_write32(e + 12, 0);
    cfg_write16(v->devfn, v->msix_cap + 2, 0x8000);
}

static void write64(uint64_t a, uint64_t val)
{
    mmio_write32(a, (uint32_t)val);
    mmio_write32(a + 4, (uint32_t)(val >> 32));
}

static bool setup_queue(struct vblk *v)
{
    uint64_t desc = (uintptr_t)ring, avail = desc + 4096, used = desc + 8192;
    memset(ring, 0, sizeof(ring));
    wr16(v->common + C_MSIX, NO_VECTOR);
    wr16(v->common + C_QSELECT, 0);
    uint16_t max = rd16(v->common + C_QSIZE);
    v->qsize = max < QSIZE ? max : QSIZE;
    wr16(v->common + C_QSIZE, v->qsize);
    write64(v->common + C_QDESC, desc);
    write64(v->common + C_QAVAIL, avail);
    write64(v->common + C_QUSED, used);
    wr16(v->common + C_QMSIX, 1);
    bool vec_ok = rd16(v->common + C_QMSIX) == 1;
    v->notify += (uint64_t)rd16(v->common + C_QNOFF) * v->notify_mult;
    wr16(v->common + C_QENABLE, 1);
    add_status(v, ST_DRIVER_OK);
    uint8_t st = rd8(v->common + C_STATUS);
    return kit_check(max >= 2 && vec_ok && rd16(v->common + C_QENABLE) == 1 &&
                         (st & ST_DRIVER_OK) && !(st & ST_NEEDS_RESET),
                     "vblk-queue", "queue size %u of %u, vector %s, status 0x%x",
                     v->qsize, max, vec_ok ? "1" : "refused", st);
}

/* ---- requests -------------------------------------------------------------- */

static void put_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
    uint8_t *d = ring + 16 * i;
    *(uint64_t *)(void *)d = addr;
    *(uint32_t *)(void *)(d + 8) = len;
    *(uint16_t *)(void *)(d + 12) = flags;
    *(uint16_t *)(void *)(d + 14) = (uint16_t)(i + 1);
}

static bool used_moved(void *arg)
{
    struct vblk *v = arg;
    return *(volatile uint16_t *)(void *)(ring + 8192 + 2) != v->used_seen;
}

/* One request: header, data split in two descriptors, status. Polls for
 * its completion; returns the status byte, or 0xFF on a timeout. */
static uint8_t request(struct vblk *v, uint32_t type, uint64_t sector,
                       uint32_t bytes)
{
    unsigned n = 0;
    bool to_device = type == T_OUT;
    *(uint32_t *)(void *)header = type;
    *(uint32_t *)(void *)(header + 4) = 0;
    *(uint64_t *)(void *)(header + 8) = sector;
    status_byte = 0xFF;
    put_desc(n++, (uintptr_t)header, 16, DESC_NEXT);
    if (bytes) {
        uint32_t half = bytes / 2;
        uint16_t f = DESC_NEXT | (to_device ? 0 : DESC_WRITE);
        put_desc(n++, (uintptr_t)data, half, f);
        put_desc(n++, (uintptr_t)data + half, bytes - half, f);
    }
    put_desc(n, (uintptr_t)&status_byte, 1, DESC_WRITE);
    uint8_t *avail = ring + 4096;
    *(uint16_t *)(void *)(avail + 4 + 2 * (v->avail_idx % v->qsize)) = 0;
    barrier();
    *(volatile uint16_t *)(void *)(avail + 2) = ++v->avail_idx;
    barrier();
    irq_enable();
    wr16(v->notify, 0);
    bool done = pit_wait_ms(5000, used_moved, v);
    irq_disable();
    if (!done)
        return 0xFF;
    v->used_seen++;
    barrier();
    return status_byte;
}

static uint8_t pattern(uint64_t off)
{
    return (uint8_t)((off / SECTOR) * 157 + (off % SECTOR) * 3 + 1);
}

/* First offset in data[] that differs from the (inverted) pattern of the
 * sectors starting at sector, or -1. */
static long mismatch(uint64_t sector, uint32_t bytes, uint8_t invert)
{
    for (uint32_t i = 0; i < bytes; i++)
        if (data[i] != (pattern(sector * SECTOR + i) ^ invert))
            return (long)i;
    return -1;
}

static void check_read(struct vblk *v, const char *name, uint64_t sector,
                       uint8_t invert)
{
    memset(data, 0, sizeof(data));
    uint8_t st = request(v, T_IN, sector, sizeof(data));
    long bad = st == S_OK ? mismatch(sector, sizeof(data), invert) : -1;
    kit_check(st == S_OK && bad < 0, name,
              "sectors %llu+%u: status %u, first difference at byte %ld",
              (unsigned long long)sector, IO_SECTORS, st, bad);
}

static void run_io(struct vblk *v, uint64_t capacity, bool ro)
{
    check_read(v, "vblk-read", 0, 0);
    check_read(v, "vblk-read-end", capacity - IO_SECTORS, 0);
    for (uint32_t i = 0; i < sizeof(data); i++)
        data[i] = pattern(WRITE_AT * SECTOR + i) ^ 0xFF;
    uint8_t st = request(v, T_OUT, WRITE_AT, sizeof(data));
    uint8_t want = ro ? S_IOERR : S_OK;
    kit_check(st == want, "vblk-write", "sectors %u+%u: status %u, want %u",
              WRITE_AT, IO_SECTORS, st, want);
    check_read(v, "vblk-readback", WRITE_AT, ro ? 0 : 0xFF);
    st = request(v, T_FLUSH, 0, 0);
    kit_check(st == S_OK, "vblk-flush", "status %u", st);
    kit_check(vblk_irqs > 0, "vblk-msix",
              "%u interrupts through MSI-X vector 0x%x", vblk_irqs, VEC_VBLK);
}

static uint64_t read_capacity(struct vblk *v)
{
    return mmio_read32(v->device) | (uint64_t)mmio_read32(v->device + 4) << 32;
}

void test_vblk(const struct acpi_info *ai)
{
    struct vblk v = {0};
    uint64_t want_sectors = cmdline_u64("vblk.sectors", 0);
    bool ro = cmdline_u64("vblk.ro", 0) != 0;

    (void)ai;
    pic_disable();
    if (!kit_check(find_function(&v), "vblk-found",
                   "virtio-blk function on bus 0"))
        return;
    unsigned assigned = place_bars(&v);
    kit_info("vblk.bars_assigned", "%u", assigned);
    bool found = find_structures(&v);
    if (!kit_check(found, "vblk-caps",
                   "common 0x%llx notify 0x%llx device 0x%llx msix 0x%llx",
                   (unsigned long long)v.common, (unsigned long long)v.notify,
                   (unsigned long long)v.device,
                   (unsigned long long)v.msix_table))
        return;
    if (!negotiate(&v, ro))
        return;
    setup_msix(&v);
    if (!setup_queue(&v))
        return;
    uint64_t cap = read_capacity(&v);
    if (!kit_check(cap == want_sectors && cap >= WRITE_AT + IO_SECTORS,
                   "vblk-capacity", "%llu sectors, want %llu",
                   (unsigned long long)cap, (unsigned long long)want_sectors))
        return;
    run_io(&v, cap, ro);
    wr8(v.common + C_STATUS, 0); /* leave the device reset */
}
