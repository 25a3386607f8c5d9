/* libFuzzer harness for the virtio-pci transport: a virtio-blk function on
 * a PCI host, driven by a stream of guest register accesses (config space,
 * the legacy I/O BAR, the modern BAR, the MSI-X BAR) and I/O-thread events,
 * over guest RAM taken from the input. Nothing may crash, read or write
 * outside guest memory (ASan), write read-only memory, or pass the block
 * layer an unchecked request.
 *
 * Input: le16 length of the operation stream, the stream (4-byte
 * operations: kind, offset, value, value), then guest RAM. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/fake_block.h"
#include "platform/piix.h"
#include "util.h"
#include "virtio/blk.h"
#include "virtio/pci.h"

#define RAM_SIZE 0x10000
#define ROM_GPA 0x100000
#define ROM_SIZE 0x1000
#define DISK_SIZE (128 * 1024)
#define DEVFN LAYOUT_PCI_DEVFN(3, 0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct env {
    struct bus pio, mmio;
    struct pci_host host;
    struct piix piix;
    struct irq_router router;
    struct guest_mem mem;
    uint8_t *ram, *rom;
    struct blockdev *bd;
    struct virtio_blk *blk;
    struct virtio_pci vp;
};

static int ioeventfd_ok(void *opaque, const struct virtio_pci_ioeventfd *io,
                        bool assign)
{
    return 0;
}

static bool setup(struct env *e, const uint8_t *ram, size_t ram_len)
{
    e->ram = calloc(1, RAM_SIZE);
    e->rom = malloc(ROM_SIZE);
    memcpy(e->ram, ram, ram_len < RAM_SIZE ? ram_len : RAM_SIZE);
    memset(e->rom, 0x77, ROM_SIZE);
    if (bus_init(&e->pio) || bus_init(&e->mmio) ||
        pci_host_init(&e->host, &e->pio, &e->mmio, -1) ||
        piix_init(&e->piix, &e->host, true) ||
        irq_router_init(&e->router, -1) ||
        gmem_add(&e->mem, 0, RAM_SIZE, e->ram, false) ||
        gmem_add(&e->mem, ROM_GPA, ROM_SIZE, e->rom, true))
        return false;
    e->bd = fake_blk_new(DISK_SIZE, false);
    struct virtio_blk_opts opts = {.bd = e->bd, .num_queues = 2,
                                   .queue_size = 16};
    return e->bd && virtio_blk_new(&e->mem, &opts, &e->blk) == 0 &&
           virtio_pci_init(&e->vp, virtio_blk_dev(e->blk), &e->router,
                           ioeventfd_ok, e) == 0 &&
           pci_host_add(&e->host, &e->vp.pci, DEVFN) == 0;
}

static void teardown(struct env *e)
{
    for (unsigned i = 0; i < 8 && fake_blk_inflight(e->bd); i++)
        virtio_blk_handle_completions(e->blk);
    virtio_pci_destroy(&e->vp);
    virtio_blk_free(e->blk);
    blk_close(e->bd);
    irq_router_destroy(&e->router);
    pci_host_destroy(&e->host);
    bus_destroy(&e->pio);
    bus_destroy(&e->mmio);
    free(e->ram);
    free(e->rom);
}

static unsigned width(uint8_t sel, bool allow8)
{
    static const unsigned w[] = {1, 2, 4, 8};
    return w[sel % (allow8 ? 4 : 3)];
}

static void bar_access(struct env *e, unsigned bar, uint32_t off,
                       unsigned len, uint64_t val, bool write)
{
    const struct pci_bar *b = &e->vp.pci.bar[bar];
    if (!b->ops || b->size < len)
        return;
    off %= (uint32_t)(b->size - len + 1); /* the bus keeps accesses inside */
    if (write)
        b->ops->write(b->opaque, off, &val, len);
    else
        b->ops->read(b->opaque, off, &val, len);
}

static void run_op(struct env *e, const uint8_t op[4])
{
    uint8_t kind = op[0] & 15, sel = op[0] >> 4;
    uint32_t val = (uint32_t)op[2] | (uint32_t)op[3] << 8;
    val |= val << 16;
    switch (kind) {
    case 0: case 1: {
        unsigned len = width(sel, false);
        unsigned off = op[1] & ~(len - 1);
        if (kind == 0)
            pci_host_config_write(&e->host, DEVFN, off, len, val);
        else
            pci_host_config_read(&e->host, DEVFN, off, len);
        break;
    }
    case 2: case 3:
        bar_access(e, VIRTIO_PCI_LEGACY_BAR, op[1], width(sel, false), val,
                   kind == 2);
        break;
    case 4: case 5: case 6: case 7: {
        /* Common configuration, ISR, device configuration, notify. */
        uint32_t off = (uint32_t)(kind - 4) * 0x1000 + op[1];
        bar_access(e, VIRTIO_PCI_MODERN_BAR, off, width(sel, true), val,
                   sel & 8);
        break;
    }
    case 8: case 9:
        bar_access(e, VIRTIO_PCI_MSIX_BAR, (uint32_t)op[1] * 8,
                   width(sel, true), val, kind == 8);
        break;
    case 10:
        virtio_pci_notifier_event(
            virtio_pci_notifier(&e->vp, op[1] % 2), 0);
        break;
    case 11:
        virtio_blk_handle_completions(e->blk);
        break;
    default: /* common registers by name, where most state lives */
        bar_access(e, VIRTIO_PCI_MODERN_BAR, op[1] % VIRTIO_PCI_COMMON_LEN,
                   width(sel, false), val, true);
        break;
    }
    if (fake_blk_invalid_count(e->bd))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t ops_len = get_le16(data) & ~3u;
    if (ops_len > size - 2)
        ops_len = (size - 2) & ~(size_t)3;
    const uint8_t *ops = data + 2;
    struct env e;
    memset(&e, 0, sizeof(e));
    if (!setup(&e, ops + ops_len, size - 2 - ops_len))
        abort();
    for (size_t i = 0; i + 4 <= ops_len; i += 4)
        run_op(&e, ops + i);
    for (size_t i = 0; i < ROM_SIZE; i++)
        if (e.rom[i] != 0x77)
            abort();
    teardown(&e);
    return 0;
}
