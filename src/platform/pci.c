#include "platform/pci.h"

#include <string.h>

#include "util.h"

#define PIIX_PIRQ_ROUTE 0x60 /* PIRQA..D route registers of the ISA bridge */
#define PIIX_PIRQ_DISABLED 0x80

/* ---- function model ------------------------------------------------- */

static void cfg_put16(struct pci_dev *d, unsigned off, uint16_t v)
{
    put_le16(&d->cfg[off], v);
}

void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor,
                  uint16_t device, uint32_t class_code, uint8_t revision,
                  uint16_t subsys_vendor, uint16_t subsys_id)
{
    memset(d, 0, sizeof(*d));
    d->name = name;
    cfg_put16(d, PCI_VENDOR_ID, vendor);
    cfg_put16(d, PCI_DEVICE_ID, device);
    d->cfg[PCI_REVISION] = revision;
    d->cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
    d->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
    d->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
    cfg_put16(d, PCI_SUBSYS_VENDOR, subsys_vendor);
    cfg_put16(d, PCI_SUBSYS_ID, subsys_id);
    /* COMMAND: I/O, memory, bus master, SERR, INTx disable are writable. */
    put_le16(&d->wmask[PCI_COMMAND], PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
                                         PCI_COMMAND_MASTER | 0x0100 |
                                         PCI_COMMAND_INTX_DISABLE);
    /* STATUS: the error bits are write-1-to-clear. */
    put_le16(&d->w1c[PCI_STATUS], 0xF900);
    d->wmask[0x0C] = 0xFF; /* cache line size */
    d->wmask[0x0D] = 0xFF; /* latency timer */
    d->wmask[PCI_INTERRUPT_LINE] = 0xFF;
    d->cap_end = 0x40;
}

void pci_dev_set_bar(struct pci_dev *d, unsigned idx, enum pci_bar_type type,
                     uint64_t size, bool prefetch, const struct bus_ops *ops,
                     void *opaque)
{
    if (idx >= PCI_NUM_BARS || (type == PCI_BAR_MEM64 && idx + 1 >= PCI_NUM_BARS))
        return;
    struct pci_bar *b = &d->bar[idx];
    *b = (struct pci_bar){.type = type, .prefetch = prefetch, .size = size,
                          .ops = ops, .opaque = opaque};
    unsigned off = PCI_BAR0 + 4 * idx;
    uint64_t mask = ~(size - 1);
    uint32_t low_bits = 0;
    if (type == PCI_BAR_IO) {
        low_bits = 0x1;
        mask &= ~0x3ULL;
    } else {
        low_bits = (type == PCI_BAR_MEM64 ? 0x4 : 0x0) | (prefetch ? 0x8 : 0);
        mask &= ~0xFULL;
    }
    put_le32(&d->cfg[off], low_bits);
    put_le32(&d->wmask[off], (uint32_t)mask);
    if (type == PCI_BAR_MEM64) {
        put_le32(&d->cfg[off + 4], 0);
        put_le32(&d->wmask[off + 4], (uint32_t)(mask >> 32));
        d->bar[idx + 1] = (struct pci_bar){.type = PCI_BAR_NONE};
    }
}

uint8_t pci_dev_add_cap(struct pci_dev *d, uint8_t id, const void *body,
                        uint8_t body_len, const void *wmask_body)
{
    unsigned off = ALIGN_UP((unsigned)d->cap_end, 4u);
    if (off + 2u + body_len > PCI_CFG_SIZE)
        return 0;
    d->cfg[off] = id;
    d->cfg[off + 1] = 0;
    memcpy(&d->cfg[off + 2], body, body_len);
    if (wmask_body)
        memcpy(&d->wmask[off + 2], wmask_body, body_len);
    if (d->cap_tail)
        d->cfg[d->cap_tail + 1] = (uint8_t)off;
    else
        d->cfg[PCI_CAP_PTR] = (uint8_t)off;
    d->cap_tail = (uint8_t)off;
    d->cap_end = (uint8_t)MIN(off + 2u + body_len, 0xFFu);
    put_le16(&d->cfg[PCI_STATUS],
             get_le16(&d->cfg[PCI_STATUS]) | PCI_STATUS_CAP_LIST);
    return (uint8_t)off;
}

void pci_dev_set_intx_pin(struct pci_dev *d, uint8_t pin)
{
    d->cfg[PCI_INTERRUPT_PIN] = pin;
}

/* ---- BAR decoding ------------------------------------------------------ */

static uint64_t bar_address(const struct pci_dev *d, unsigned idx)
{
    const struct pci_bar *b = &d->bar[idx];
    uint32_t lo = get_le32(&d->cfg[PCI_BAR0 + 4 * idx]);
    if (b->type == PCI_BAR_IO)
        return lo & ~0x3u;
    uint64_t addr = lo & ~0xFu;
    if (b->type == PCI_BAR_MEM64)
        addr |= (uint64_t)get_le32(&d->cfg[PCI_BAR0 + 4 * idx + 4]) << 32;
    return addr;
}

static bool bar_decodes(const struct pci_dev *d, unsigned idx, uint64_t addr)
{
    const struct pci_bar *b = &d->bar[idx];
    uint16_t cmd = get_le16(&d->cfg[PCI_COMMAND]);
    uint64_t end;
    if (b->type == PCI_BAR_NONE || addr == 0 ||
        __builtin_add_overflow(addr, b->size, &end))
        return false;
    if (b->type == PCI_BAR_IO)
        return (cmd & PCI_COMMAND_IO) && end <= LAYOUT_PCI_IO_END;
    if (!(cmd & PCI_COMMAND_MEMORY))
        return false;
    /* A 32-bit BAR that still holds its sizing pattern ends at 4 GiB and
     * is not taken as an address. */
    return b->type == PCI_BAR_MEM64 || end < LAYOUT_4G;
}

static void bar_update(struct pci_host *h, struct pci_dev *d, unsigned idx)
{
    struct pci_bar *b = &d->bar[idx];
    uint64_t addr = bar_address(d, idx);
    bool want = bar_decodes(d, idx, addr);
    if (b->mapped == want && (!want || b->addr == addr))
        return;
    struct bus *bus = b->type == PCI_BAR_IO ? h->pio : h->mmio;
    if (b->mapped) {
        bus_remove(bus, b->addr, b->opaque);
        b->mapped = false;
        if (d->bar_moved)
            d->bar_moved(d, idx, false, b->addr);
    }
    if (!want)
        return;
    if (bus_add(bus, addr, b->size, b->ops, b->opaque, d->name)) {
        guest_warn("%s: BAR%u at 0x%llx overlaps another range; not decoded",
                   d->name, idx, (unsigned long long)addr);
        return;
    }
    b->mapped = true;
    b->addr = addr;
    if (d->bar_moved)
        d->bar_moved(d, idx, true, addr);
}

static void bars_update(struct pci_host *h, struct pci_dev *d)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        bar_update(h, d, i);
}

/* ---- config access -------------------------------------------------- */

static uint32_t cfg_read(const struct pci_dev *d, unsigned off, unsigned len)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint32_t)d->cfg[off + i] << (8 * i);
    return v;
}

static void cfg_write(struct pci_dev *d, unsigned off, unsigned len,
                      uint32_t val)
{
    for (unsigned i = 0; i < len; i++) {
        uint8_t b = (uint8_t)(val >> (8 * i));
        unsigned o = off + i;
        d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (b & d->wmask[o]));
        d->cfg[o] &= (uint8_t)~(b & d->w1c[o]);
    }
}

static bool touches(unsigned off, unsigned len, unsigned start, unsigned end)
{
    return off < end && start < off + len;
}

static bool valid_access(unsigned off, unsigned len)
{
    return (len == 1 || len == 2 || len == 4) && off < PCI_CFG_SIZE &&
           off + len <= PCI_CFG_SIZE && (off & (len - 1)) == 0;
}

uint32_t pci_host_config_read(struct pci_host *h, uint8_t devfn, unsigned off,
                              unsigned len)
{
    if (!valid_access(off, len))
        return 0xFFFFFFFFu;
    pthread_mutex_lock(&h->lock);
    struct pci_dev *d = h->fn[devfn];
    if (d && d->config_read)
        d->config_read(d, off, len);
    uint32_t v = d ? cfg_read(d, off, len)
                   : (uint32_t)((1ULL << (8 * len)) - 1);
    pthread_mutex_unlock(&h->lock);
    return v;
}

void pci_host_config_write(struct pci_host *h, uint8_t devfn, unsigned off,
                           unsigned len, uint32_t val)
{
    if (!valid_access(off, len))
        return;
    pthread_mutex_lock(&h->lock);
    struct pci_dev *d = h->fn[devfn];
    if (!d) {
        pthread_mutex_unlock(&h->lock);
        return;
    }
    uint32_t old = cfg_read(d, off, len);
    cfg_write(d, off, len, val);
    if (touches(off, len, PCI_COMMAND, PCI_COMMAND + 2) ||
        touches(off, len, PCI_BAR0, PCI_BAR0 + 4 * PCI_NUM_BARS))
        bars_update(h, d);
    if (d->config_written)
        d->config_written(d, off, len, old);
    bool routes = d == h->isa_bridge &&
                  touches(off, len, PIIX_PIRQ_ROUTE,
                          PIIX_PIRQ_ROUTE + LAYOUT_PIRQ_COUNT);
    bool intx_gate = touches(off, len, PCI_COMMAND + 1, PCI_COMMAND + 2);
    pthread_mutex_unlock(&h->lock);
    if (routes)
        pci_host_pirq_routes_changed(h);
    if (intx_gate)
        pci_dev_set_intx(d, d->intx_asserted);
}

/* ---- INTx through the PIIX PIRQ routers ------------------------------ */

static int pirq_target(struct pci_host *h, unsigned pirq)
{
    if (!h->isa_bridge)
        return -1;
    uint8_t r = __atomic_load_n(&h->isa_bridge->cfg[PIIX_PIRQ_ROUTE + pirq],
                                __ATOMIC_RELAXED);
    unsigned irq = r & 0x0F;
    /* IRQs 0-2, 8 and 13 are reserved in the route registers. */
    if ((r & PIIX_PIRQ_DISABLED) || irq < 3 || irq == 8 || irq == 13)
        return -1;
    return (int)irq;
}

static void pirq_apply_locked(struct pci_host *h)
{
    int level[16] = {0};
    bool used[16] = {false};
    for (unsigned p = 0; p < LAYOUT_PIRQ_COUNT; p++) {
        int irq = pirq_target(h, p);
        if (irq < 0)
            continue;
        used[irq] = true;
        level[irq] |= h->pirq_asserted[p] > 0;
    }
    for (unsigned irq = 0; irq < 16; irq++)
        if (used[irq] || h->isa_irq[irq].level)
            irq_line_set(&h->isa_irq[irq], level[irq]);
}

void pci_dev_set_intx(struct pci_dev *d, bool level)
{
    struct pci_host *h = d->host;
    uint8_t pin = d->cfg[PCI_INTERRUPT_PIN];
    if (!h || pin < 1 || pin > 4)
        return;
    pthread_mutex_lock(&h->intx_lock);
    bool gated = get_le16(&d->cfg[PCI_COMMAND]) & PCI_COMMAND_INTX_DISABLE;
    bool effective = level && !gated;
    bool was = d->intx_asserted && !d->cfg_intx_gated;
    d->intx_asserted = level;
    d->cfg_intx_gated = gated;
    uint16_t st = get_le16(&d->cfg[PCI_STATUS]);
    st = level ? (st | PCI_STATUS_INTERRUPT) : (st & ~PCI_STATUS_INTERRUPT);
    put_le16(&d->cfg[PCI_STATUS], st);
    if (effective != was) {
        unsigned pirq = pci_slot_pirq(d->devfn >> 3, pin);
        if (effective)
            h->pirq_asserted[pirq]++;
        else if (h->pirq_asserted[pirq])
            h->pirq_asserted[pirq]--;
        pirq_apply_locked(h);
    }
    pthread_mutex_unlock(&h->intx_lock);
}

void pci_host_set_pirq_router(struct pci_host *h, struct pci_dev *isa_bridge)
{
    h->isa_bridge = isa_bridge;
}

void pci_host_pirq_routes_changed(struct pci_host *h)
{
    pthread_mutex_lock(&h->intx_lock);
    pirq_apply_locked(h);
    pthread_mutex_unlock(&h->intx_lock);
}

/* ---- mechanism #1 ports ----------------------------------------------- */

static void cf8_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct pci_host *h = opaque;
    if (off == 1 && len == 1 && h->reset_control_ops) {
        h->reset_control_ops->read(h->reset_control_opaque, 0, data, 1);
        return;
    }
    uint32_t v = __atomic_load_n(&h->config_addr, __ATOMIC_RELAXED);
    v >>= 8 * off;
    memcpy(data, &v, len);
}

static void cf8_write(void *opaque, uint64_t off, const void *data,
                      unsigned len)
{
    struct pci_host *h = opaque;
    if (off == 1 && len == 1 && h->reset_control_ops) {
        h->reset_control_ops->write(h->reset_control_opaque, 0, data, 1);
        return;
    }
    /* Only a full dword write changes the address latch; Linux's probe
     * writes a byte to 0xCFB first and expects the dword to survive. */
    if (off == 0 && len == 4) {
        uint32_t v;
        memcpy(&v, data, 4);
        __atomic_store_n(&h->config_addr, v & 0x80FFFFFCu, __ATOMIC_RELAXED);
    }
}

/* Returns the devfn the latch selects on bus 0, or -1. */
static int selected_devfn(struct pci_host *h, unsigned *reg)
{
    uint32_t a = __atomic_load_n(&h->config_addr, __ATOMIC_RELAXED);
    if (!(a & 0x80000000u) || ((a >> 16) & 0xFF) != 0)
        return -1;
    *reg = a & 0xFC;
    return (int)((a >> 8) & 0xFF);
}

static void cfc_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct pci_host *h = opaque;
    unsigned reg;
    int devfn = selected_devfn(h, &reg);
    uint32_t v = devfn < 0 ? 0xFFFFFFFFu
                           : pci_host_config_read(h, (uint8_t)devfn,
                                                  reg + (unsigned)off, len);
    memcpy(data, &v, len);
}

static void cfc_write(void *opaque, uint64_t off, const void *data,
                      unsigned len)
{
    struct pci_host *h = opaque;
    unsigned reg;
    int devfn = selected_devfn(h, &reg);
    uint32_t v = 0;
    memcpy(&v, data, len);
    if (devfn >= 0)
        pci_host_config_write(h, (uint8_t)devfn, reg + (unsigned)off, len, v);
}

static const struct bus_ops cf8_ops = {cf8_read, cf8_write};
static const struct bus_ops cfc_ops = {cfc_read, cfc_write};

int pci_host_init(struct pci_host *h, struct bus *pio, struct bus *mmio,
                  int vmfd)
{
    memset(h, 0, sizeof(*h));
    h->pio = pio;
    h->mmio = mmio;
    h->vmfd = vmfd;
    for (unsigned i = 0; i < 16; i++)
        irq_line_init(&h->isa_irq[i], vmfd, i);
    if (pthread_mutex_init(&h->lock, NULL) ||
        pthread_mutex_init(&h->intx_lock, NULL))
        return -1;
    return 0;
}

void pci_host_destroy(struct pci_host *h)
{
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->intx_lock);
}

int pci_host_add(struct pci_host *h, struct pci_dev *d, uint8_t devfn)
{
    if (h->fn[devfn])
        return -1;
    d->devfn = devfn;
    d->host = h;
    h->fn[devfn] = d;
    return 0;
}

int pci_host_register_ports(struct pci_host *h)
{
    if (bus_add(h->pio, LAYOUT_PORT_PCI_CONFIG_ADDR, 4, &cf8_ops, h,
                "pci-config-address") ||
        bus_add(h->pio, LAYOUT_PORT_PCI_CONFIG_DATA, 4, &cfc_ops, h,
                "pci-config-data")) {
        report_error("cannot register the PCI configuration ports");
        return -1;
    }
    return 0;
}
