/* Intel MultiProcessor Specification 1.4 tables, for direct boot (an OS
 * started with ACPI disabled still finds its CPUs and interrupts). The
 * routing matches the MADT: ISA IRQ n on IOAPIC pin n, the level-triggered
 * ISA IRQs active high, PCI INTx on the IRQ its PIRQ is preset to. */
#include "platform/mptable.h"

#include <string.h>

#include "platform/layout.h"
#include "platform/pci.h"
#include "util.h"

#define MP_SPEC_REV 4 /* 1.4 */
#define MP_FLOAT_LEN 16
#define MP_HEADER_LEN 44
#define MP_CPU_LEN 20
#define MP_ENTRY_LEN 8

#define MP_PROCESSOR 0
#define MP_BUS 1
#define MP_IOAPIC 2
#define MP_IO_INTERRUPT 3
#define MP_LOCAL_INTERRUPT 4

#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP 0x02
#define MP_IOAPIC_ENABLED 0x01
#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3
#define MP_HIGH_LEVEL 0x000D /* active high (01), level (11 << 2) */
#define MP_CONFORMING 0x0000
#define MP_ALL_LAPICS 0xFF

/* What the in-kernel LAPIC and IOAPIC report in their version registers. */
#define LAPIC_VERSION 0x14
#define IOAPIC_VERSION 0x11
/* CPUID signature and features for the processor entries: family 6 with
 * FPU and APIC. Informational; OSes read the real CPUID. */
#define MP_CPU_SIGNATURE 0x600
#define MP_CPU_FEATURES ((1U << 0) | (1U << 9))

#define BUS_PCI 0
#define BUS_ISA 1
#define ISA_IRQS 16
#define MAX_XAPIC_ID 0xFE /* 8-bit APIC IDs; 0xFF is the broadcast */

struct mp_writer {
    uint8_t *p;
    unsigned entries;
};

static uint8_t *entry(struct mp_writer *w, uint8_t type, size_t len)
{
    uint8_t *e = w->p;
    e[0] = type;
    w->p += len;
    w->entries++;
    return e;
}

static void processors(struct mp_writer *w, unsigned ncpus)
{
    for (unsigned i = 0; i < ncpus; i++) {
        uint8_t *e = entry(w, MP_PROCESSOR, MP_CPU_LEN);
        e[1] = (uint8_t)i; /* APIC ID */
        e[2] = LAPIC_VERSION;
        e[3] = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0);
        put_le32(e + 4, MP_CPU_SIGNATURE);
        put_le32(e + 8, MP_CPU_FEATURES);
    }
}

static void bus(struct mp_writer *w, uint8_t id, const char *name)
{
    uint8_t *e = entry(w, MP_BUS, MP_ENTRY_LEN);
    e[1] = id;
    copy_padded(e + 2, 6, name, ' ');
}

static void ioapic(struct mp_writer *w)
{
    uint8_t *e = entry(w, MP_IOAPIC, MP_ENTRY_LEN);
    e[1] = LAYOUT_IOAPIC_ID;
    e[2] = IOAPIC_VERSION;
    e[3] = MP_IOAPIC_ENABLED;
    put_le32(e + 4, (uint32_t)LAYOUT_IOAPIC_BASE);
}

static void io_int(struct mp_writer *w, uint16_t flags, uint8_t src_bus,
                   uint8_t src_irq, unsigned gsi)
{
    uint8_t *e = entry(w, MP_IO_INTERRUPT, MP_ENTRY_LEN);
    e[1] = MP_INT;
    put_le16(e + 2, flags);
    e[4] = src_bus;
    e[5] = src_irq;
    e[6] = LAYOUT_IOAPIC_ID;
    e[7] = (uint8_t)(gsi - LAYOUT_IOAPIC_GSI_BASE);
}

static bool is_level_irq(unsigned irq)
{
    static const uint8_t level[] = LAYOUT_LEVEL_IRQS;
    for (unsigned i = 0; i < ARRAY_SIZE(level); i++)
        if (level[i] == irq)
            return true;
    return false;
}

static void isa_ints(struct mp_writer *w)
{
    for (unsigned irq = 0; irq < ISA_IRQS; irq++)
        io_int(w, is_level_irq(irq) ? MP_HIGH_LEVEL : MP_CONFORMING, BUS_ISA,
               (uint8_t)irq, irq);
}

/* The IRQ a bus-0 slot/pin reaches: the PM function's INTA is wired to
 * the SCI, everything else goes through the PIRQ the swizzle selects. */
static unsigned pci_irq(unsigned slot, unsigned pin)
{
    static const uint8_t pirq_irq[LAYOUT_PIRQ_COUNT] = LAYOUT_PIRQ_DEFAULT_IRQS;
    if (slot == (LAYOUT_PCI_PM >> 3) && pin == 1)
        return LAYOUT_GSI_SCI;
    return pirq_irq[pci_slot_pirq(slot, pin)];
}

static bool valid_intx(const struct pci_intx_user *u)
{
    return u->slot < LAYOUT_PCI_SLOTS && u->pin >= 1 && u->pin <= 4;
}

/* One entry per distinct valid slot/pin (functions of a slot share). */
static unsigned pci_users(const struct machine_info *mi,
                          struct pci_intx_user *out)
{
    bool seen[LAYOUT_PCI_SLOTS][4] = {{false}};
    unsigned n = 0;
    for (unsigned i = 0; i < mi->intx_count && i < LAYOUT_PCI_SLOTS; i++) {
        const struct pci_intx_user *u = &mi->intx[i];
        if (!valid_intx(u) || seen[u->slot][u->pin - 1])
            continue;
        seen[u->slot][u->pin - 1] = true;
        out[n++] = *u;
    }
    return n;
}

static void pci_ints(struct mp_writer *w, const struct pci_intx_user *u,
                     unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        io_int(w, MP_HIGH_LEVEL, BUS_PCI,
               (uint8_t)(u[i].slot << 2 | (u[i].pin - 1)),
               pci_irq(u[i].slot, u[i].pin));
}

static void local_int(struct mp_writer *w, uint8_t type, uint8_t lint)
{
    uint8_t *e = entry(w, MP_LOCAL_INTERRUPT, MP_ENTRY_LEN);
    e[1] = type;
    put_le16(e + 2, MP_CONFORMING);
    e[4] = BUS_ISA;
    e[5] = 0;
    e[6] = MP_ALL_LAPICS;
    e[7] = lint;
}

static void floating_pointer(uint8_t *f, uint32_t config_addr)
{
    memcpy(f, "_MP_", 4);
    put_le32(f + 4, config_addr);
    f[8] = 1; /* length in paragraphs */
    f[9] = MP_SPEC_REV;
    /* feature bytes 0: a configuration table follows; no IMCR */
    f[10] = checksum8(f, MP_FLOAT_LEN);
}

static void config_header(uint8_t *h, size_t len, unsigned entries)
{
    memcpy(h, "PCMP", 4);
    put_le16(h + 4, (uint16_t)len);
    h[6] = MP_SPEC_REV;
    copy_padded(h + 8, 8, "KVMPC", ' ');   /* OEM ID */
    copy_padded(h + 16, 12, "KVMPC", ' '); /* product ID */
    put_le16(h + 34, (uint16_t)entries);
    put_le32(h + 36, (uint32_t)LAYOUT_LAPIC_BASE);
    h[7] = checksum8(h, len);
}

size_t mptable_build(const struct machine_info *mi, uint32_t base,
                     uint8_t *buf, size_t cap)
{
    struct pci_intx_user users[LAYOUT_PCI_SLOTS];
    unsigned npci = pci_users(mi, users);
    size_t config_len = MP_HEADER_LEN + (size_t)mi->ncpus * MP_CPU_LEN +
                        (2 + 1 + ISA_IRQS + npci + 2) * MP_ENTRY_LEN;
    size_t total = MP_FLOAT_LEN + config_len;
    if (mi->ncpus == 0 || mi->ncpus > MAX_XAPIC_ID + 1 || total > cap ||
        config_len > UINT16_MAX || (uint64_t)base + total > UINT32_MAX)
        return 0;

    memset(buf, 0, total);
    uint8_t *config = buf + MP_FLOAT_LEN;
    struct mp_writer w = {.p = config + MP_HEADER_LEN};
    processors(&w, mi->ncpus);
    bus(&w, BUS_PCI, "PCI");
    bus(&w, BUS_ISA, "ISA");
    ioapic(&w);
    isa_ints(&w);
    pci_ints(&w, users, npci);
    local_int(&w, MP_EXTINT, 0);
    local_int(&w, MP_NMI, 1);
    config_header(config, config_len, w.entries);
    floating_pointer(buf, base + MP_FLOAT_LEN);
    return total;
}
