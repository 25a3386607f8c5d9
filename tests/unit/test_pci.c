#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "platform/piix.h"
#include "util.h"

struct env {
    struct bus pio, mmio;
    struct pci_host host;
    struct piix piix;
    struct pci_dev dev;
    int moved;
};

static void nop_read(void *o, uint64_t off, void *data, unsigned len)
{
    memset(data, 0x5A, len);
}
static void nop_write(void *o, uint64_t off, const void *d, unsigned len) {}
static const struct bus_ops nop_ops = {nop_read, nop_write};

static void on_bar_moved(struct pci_dev *d, unsigned bar, bool mapped,
                         uint64_t addr)
{
    ((struct env *)d->opaque)->moved++;
}

static int setup(void **state)
{
    static struct env e;
    memset(&e, 0, sizeof(e));
    assert_int_equal(bus_init(&e.pio), 0);
    assert_int_equal(bus_init(&e.mmio), 0);
    assert_int_equal(pci_host_init(&e.host, &e.pio, &e.mmio, -1), 0);
    assert_int_equal(pci_host_register_ports(&e.host), 0);
    assert_int_equal(piix_init(&e.piix, &e.host, true), 0);
    pci_dev_init(&e.dev, "test", 0x1AF4, 0x1001, 0x010000, 0, 0x1AF4, 2);
    pci_dev_set_bar(&e.dev, 0, PCI_BAR_IO, 0x40, false, &nop_ops, &e);
    pci_dev_set_bar(&e.dev, 1, PCI_BAR_MEM32, 0x1000, false, &nop_ops, &e);
    pci_dev_set_bar(&e.dev, 4, PCI_BAR_MEM64, 0x4000, true, &nop_ops, &e);
    pci_dev_set_intx_pin(&e.dev, 1);
    e.dev.opaque = &e;
    e.dev.bar_moved = on_bar_moved;
    assert_int_equal(pci_host_add(&e.host, &e.dev, LAYOUT_PCI_DEVFN(3, 0)), 0);
    *state = &e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    pci_host_destroy(&e->host);
    bus_destroy(&e->pio);
    bus_destroy(&e->mmio);
    return 0;
}

static uint32_t inl(struct env *e, uint16_t port)
{
    uint32_t v = 0;
    if (!bus_read(&e->pio, port, &v, 4))
        return 0xFFFFFFFF;
    return v;
}

static void outl(struct env *e, uint16_t port, uint32_t v)
{
    assert_true(bus_write(&e->pio, port, &v, 4));
}

static uint32_t cfg_read32(struct env *e, unsigned dev, unsigned fn,
                           unsigned reg)
{
    outl(e, 0xCF8, 0x80000000u | dev << 11 | fn << 8 | reg);
    return inl(e, 0xCFC);
}

static void cfg_write32(struct env *e, unsigned dev, unsigned fn, unsigned reg,
                        uint32_t v)
{
    outl(e, 0xCF8, 0x80000000u | dev << 11 | fn << 8 | reg);
    outl(e, 0xCFC, v);
}

static void test_mechanism1_probe_and_ids(void **state)
{
    struct env *e = *state;
    /* Linux's type-1 probe: byte to 0xCFB, then the dword read-back. */
    uint8_t one = 1;
    assert_true(bus_write(&e->pio, 0xCFB, &one, 1));
    outl(e, 0xCF8, 0x80000000u);
    assert_int_equal(inl(e, 0xCF8), 0x80000000u);
    assert_int_equal(cfg_read32(e, 0, 0, 0), 0x12378086);
    assert_int_equal(cfg_read32(e, 1, 0, 0), 0x70008086);
    assert_int_equal(cfg_read32(e, 1, 3, 0), 0x71138086);
    assert_int_equal(cfg_read32(e, 1, 0, 0x0C) >> 16 & 0xFF, 0x80);
    /* absent functions and other buses read all ones */
    assert_int_equal(cfg_read32(e, 5, 0, 0), 0xFFFFFFFFu);
    outl(e, 0xCF8, 0x80010000u);
    assert_int_equal(inl(e, 0xCFC), 0xFFFFFFFFu);
    /* disabled mechanism */
    outl(e, 0xCF8, 0x00000000u);
    assert_int_equal(inl(e, 0xCFC), 0xFFFFFFFFu);
    /* byte and word accesses at 0xCFC + (reg & 3) */
    outl(e, 0xCF8, 0x80000000u | 3 << 11 | 0x00);
    uint16_t w = 0;
    assert_true(bus_read(&e->pio, 0xCFE, &w, 2));
    assert_int_equal(w, 0x1001);
    /* direct boot: the SMBus controller is at its ports and enabled */
    assert_int_equal(cfg_read32(e, 1, 3, 0x90), 0x701);
    assert_int_equal(cfg_read32(e, 1, 3, 0xD0) >> 16 & 0xFF, 0x09);
    /* SMM stays off: APMC_EN preset in PIIX4 DEVACTB */
    assert_int_equal(cfg_read32(e, 1, 3, 0x58) >> 24, 0x02);
    cfg_write32(e, 1, 3, 0x58, 0);
    assert_int_equal(cfg_read32(e, 1, 3, 0x58) >> 24, 0x02);
}

static void test_bar_sizing_and_mapping(void **state)
{
    struct env *e = *state;
    cfg_write32(e, 3, 0, 0x10, 0xFFFFFFFF);
    assert_int_equal(cfg_read32(e, 3, 0, 0x10), 0xFFFFFFC1u);
    cfg_write32(e, 3, 0, 0x14, 0xFFFFFFFF);
    assert_int_equal(cfg_read32(e, 3, 0, 0x14), 0xFFFFF000u);
    cfg_write32(e, 3, 0, 0x20, 0xFFFFFFFF);
    cfg_write32(e, 3, 0, 0x24, 0xFFFFFFFF);
    assert_int_equal(cfg_read32(e, 3, 0, 0x20), 0xFFFFC00Cu);
    assert_int_equal(cfg_read32(e, 3, 0, 0x24), 0xFFFFFFFFu);
    /* unimplemented BARs and the ROM BAR read 0 and ignore writes */
    cfg_write32(e, 3, 0, 0x18, 0xFFFFFFFF);
    assert_int_equal(cfg_read32(e, 3, 0, 0x18), 0);
    cfg_write32(e, 3, 0, 0x30, 0xFFFFFFFF);
    assert_int_equal(cfg_read32(e, 3, 0, 0x30), 0);

    cfg_write32(e, 3, 0, 0x10, 0xC000);
    cfg_write32(e, 3, 0, 0x14, 0xFEB00000);
    cfg_write32(e, 3, 0, 0x20, 0x0);
    cfg_write32(e, 3, 0, 0x24, 0x8);
    uint32_t v;
    assert_false(bus_read(&e->pio, 0xC000, &v, 4)); /* decode still off */
    cfg_write32(e, 3, 0, 0x04, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
    assert_true(bus_read(&e->pio, 0xC03C, &v, 4));
    assert_true(bus_read(&e->mmio, 0xFEB00FFC, &v, 4));
    assert_true(bus_read(&e->mmio, 0x800000000ULL, &v, 4));
    assert_int_equal(e->moved, 3);
    /* moving a BAR moves its decode */
    cfg_write32(e, 3, 0, 0x14, 0xFEA00000);
    assert_false(bus_read(&e->mmio, 0xFEB00000, &v, 4));
    assert_true(bus_read(&e->mmio, 0xFEA00000, &v, 4));
    /* sizing with decode on does not map the pattern */
    cfg_write32(e, 3, 0, 0x14, 0xFFFFFFFF);
    assert_false(bus_read(&e->mmio, 0xFFFFF000, &v, 4));
    cfg_write32(e, 3, 0, 0x04, 0);
    assert_false(bus_read(&e->pio, 0xC000, &v, 4));
}

static void test_intx_follows_pirq_routes(void **state)
{
    struct env *e = *state;
    /* slot 3 INTA -> PIRQ (3 + 1 - 2) & 3 = 2 -> preset IRQ 11 */
    assert_int_equal(pci_slot_pirq(3, 1), 2);
    pci_dev_set_intx(&e->dev, true);
    assert_int_equal(e->host.isa_irq[11].level, 1);
    assert_true(cfg_read32(e, 3, 0, 0x04) >> 16 & PCI_STATUS_INTERRUPT);
    /* the guest re-routes PIRQC to IRQ 5 while asserted */
    outl(e, 0xCF8, 0x80000000u | 1 << 11 | 0x60);
    uint8_t irq5 = 5;
    assert_true(bus_write(&e->pio, 0xCFE, &irq5, 1));
    assert_int_equal(e->host.isa_irq[11].level, 0);
    assert_int_equal(e->host.isa_irq[5].level, 1);
    /* INTx disable gates the line */
    cfg_write32(e, 3, 0, 0x04, PCI_COMMAND_INTX_DISABLE);
    assert_int_equal(e->host.isa_irq[5].level, 0);
    cfg_write32(e, 3, 0, 0x04, 0);
    assert_int_equal(e->host.isa_irq[5].level, 1);
    pci_dev_set_intx(&e->dev, false);
    assert_int_equal(e->host.isa_irq[5].level, 0);
    /* a disabled route drives nothing */
    uint8_t off = 0x80;
    outl(e, 0xCF8, 0x80000000u | 1 << 11 | 0x60);
    assert_true(bus_write(&e->pio, 0xCFE, &off, 1));
    pci_dev_set_intx(&e->dev, true);
    for (int i = 0; i < 16; i++)
        assert_int_equal(e->host.isa_irq[i].level, 0);
    pci_dev_set_intx(&e->dev, false);
}

static void test_bad_config_offsets(void **state)
{
    struct env *e = *state;
    assert_int_equal(pci_host_config_read(&e->host, 0, 0xFE, 4), 0xFFFFFFFFu);
    assert_int_equal(pci_host_config_read(&e->host, 0, 0x01, 2), 0xFFFFFFFFu);
    pci_host_config_write(&e->host, 0, 0xFF, 4, 0); /* ignored, no crash */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mechanism1_probe_and_ids, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing_and_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_intx_follows_pirq_routes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_config_offsets, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
