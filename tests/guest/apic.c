/* Local APIC (xAPIC MMIO), IOAPIC and the legacy PIC, as far as the tests
 * need them. */
#include "kit.h"

#define ICR_DELIVERY_PENDING (1u << 12)
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_REG_VER 0x01
#define IOAPIC_REDTBL(pin) (0x10 + 2 * (pin))
#define IOAPIC_MASKED (1u << 16)
#define IOAPIC_LEVEL (1u << 15)
#define IOAPIC_ACTIVE_LOW (1u << 13)

static uint64_t lapic_base = LAYOUT_LAPIC_BASE;
static uint64_t ioapic_base = LAYOUT_IOAPIC_BASE;

void lapic_set_base(uint64_t base)
{
    lapic_base = base;
}

uint32_t lapic_read(unsigned reg)
{
    return mmio_read32(lapic_base + reg);
}

void lapic_write(unsigned reg, uint32_t v)
{
    mmio_write32(lapic_base + reg, v);
}

uint32_t lapic_id(void)
{
    return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

static void spurious(struct irq_frame *f)
{
    (void)f; /* a spurious vector needs no EOI */
}

void lapic_enable(void)
{
    idt_set_handler(0xFF, spurious);
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, 0x100 | 0xFF); /* software enable, vector 0xFF */
}

bool lapic_send_ipi(uint32_t dest, uint32_t icr_lo)
{
    lapic_write(LAPIC_ICR_HI, dest << 24);
    lapic_write(LAPIC_ICR_LO, icr_lo);
    for (unsigned i = 0; i < 100000; i++)
        if (!(lapic_read(LAPIC_ICR_LO) & ICR_DELIVERY_PENDING))
            return true;
    return false;
}

void ioapic_set_base(uint64_t base)
{
    ioapic_base = base;
}

uint32_t ioapic_read(unsigned reg)
{
    mmio_write32(ioapic_base + IOAPIC_REGSEL, reg);
    return mmio_read32(ioapic_base + IOAPIC_WIN);
}

void ioapic_write(unsigned reg, uint32_t v)
{
    mmio_write32(ioapic_base + IOAPIC_REGSEL, reg);
    mmio_write32(ioapic_base + IOAPIC_WIN, v);
}

unsigned ioapic_pins(void)
{
    return ((ioapic_read(IOAPIC_REG_VER) >> 16) & 0xFF) + 1;
}

void ioapic_route(unsigned pin, uint8_t vector, uint32_t dest, bool level,
                  bool active_low)
{
    uint32_t lo = vector; /* fixed delivery, physical destination */
    if (level)
        lo |= IOAPIC_LEVEL;
    if (active_low)
        lo |= IOAPIC_ACTIVE_LOW;
    ioapic_write(IOAPIC_REDTBL(pin) + 1, dest << 24);
    ioapic_write(IOAPIC_REDTBL(pin), lo);
}

void ioapic_mask(unsigned pin)
{
    ioapic_write(IOAPIC_REDTBL(pin), IOAPIC_MASKED);
}

/* Initialises both 8259s (vectors 0x20/0x28) and masks every line, so
 * that an interrupt can only arrive through the IOAPIC. */
void pic_disable(void)
{
    static const uint8_t init[2][4] = {
        {0x11, 0x20, 0x04, 0x01}, /* master: ICW1..ICW4 */
        {0x11, 0x28, 0x02, 0x01}, /* slave */
    };
    static const uint16_t base[2] = {0x20, 0xA0};

    for (unsigned c = 0; c < 2; c++) {
        outb(base[c], init[c][0]);
        for (unsigned i = 1; i < 4; i++)
            outb(base[c] + 1, init[c][i]);
        outb(base[c] + 1, 0xFF);
    }
}
