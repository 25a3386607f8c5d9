/* ioapic: with both 8259s masked, PIT IRQ 0 and COM1 IRQ 4 reach the CPU
 * through the IOAPIC pins the MADT names (overrides applied). COM1 sends
 * one line interrupt-driven: each byte waits for its THRE interrupt. */
#include "kit.h"

#define VEC_PIC_BASE 0x20 /* the masked 8259s would use 0x20-0x2F */
#define VEC_PIT 0x40
#define VEC_COM1 0x41
#define TICK_HZ 100
#define WINDOW_MS 200
#define COM_IER 1
#define COM_IIR 2
#define COM_MCR 4
#define IIR_THRE 0x02
#define IOAPIC_REG_ID 0x00

static volatile uint32_t ticks, com_irqs, com_bad_iir, stray;

static void on_pit(struct irq_frame *f)
{
    (void)f;
    ticks++;
    lapic_eoi();
}

static void on_com1(struct irq_frame *f)
{
    uint8_t iir = inb(LAYOUT_PORT_COM1 + COM_IIR);

    (void)f;
    if ((iir & 0x0F) != IIR_THRE)
        com_bad_iir++;
    com_irqs++;
    lapic_eoi();
}

static void on_stray(struct irq_frame *f)
{
    (void)f;
    stray++;
}

/* Routes ISA irq to vector through its GSI; returns the pin. MPS INTI
 * flags: polarity bits 1:0 (3 = low), trigger bits 3:2 (3 = level);
 * 0 means the ISA default, edge and active high. */
static unsigned route_isa(const struct acpi_madt_info *m, unsigned irq,
                          uint8_t vector)
{
    unsigned pin = m->isa_gsi[irq] - m->ioapic_gsi_base;
    uint16_t fl = m->isa_flags[irq];

    ioapic_route(pin, vector, lapic_id(), ((fl >> 2) & 3) == 3, (fl & 3) == 3);
    return pin;
}

static bool counter_nonzero(void *p)
{
    return *(volatile uint32_t *)p != 0;
}

static bool count_reached(void *want)
{
    return com_irqs >= *(uint32_t *)want;
}

static void check_pit(const struct acpi_madt_info *m)
{
    unsigned pin = route_isa(m, 0, VEC_PIT);
    uint32_t in_window;
    bool ticking;

    kit_info("ioapic.pit", "IRQ 0 -> GSI %u, pin %u, flags 0x%x",
             m->isa_gsi[0], pin, m->isa_flags[0]);
    pit_start_periodic(TICK_HZ);
    irq_enable();
    ticking = pit_wait_ms(1000, counter_nonzero, (void *)&ticks);
    ticks = 0;
    pit_delay_us(WINDOW_MS * 1000);
    in_window = ticks;
    irq_disable();
    ioapic_mask(pin);
    pit_stop();
    kit_check(ticking, "ioapic-pit", "PIT ticks through IOAPIC pin %u", pin);
    /* Generous bounds: a wrong trigger mode shows up as a storm. */
    kit_check(in_window >= TICK_HZ * WINDOW_MS / 4000 &&
                  in_window <= TICK_HZ * WINDOW_MS * 3 / 1000,
              "ioapic-pit-rate", "%u ticks in %u ms at %u Hz", in_window,
              WINDOW_MS, TICK_HZ);
}

static void check_com1(const struct acpi_madt_info *m)
{
    static const char line[] = "INFO com1.irq-driven-line ok\n";
    const uint16_t com = LAYOUT_PORT_COM1;
    unsigned pin = route_isa(m, 4, VEC_COM1), sent = 0;
    uint32_t want = 1;

    kit_info("ioapic.com1", "IRQ 4 -> GSI %u, pin %u", m->isa_gsi[4], pin);
    outb(com + COM_MCR, 0x0B); /* DTR, RTS, OUT2 (the interrupt gate) */
    outb(com + COM_IER, 0x02); /* THR empty interrupt */
    irq_enable();
    while (sent < sizeof(line) - 1 && pit_wait_ms(200, count_reached, &want)) {
        outb(com, (uint8_t)line[sent]);
        outb(LAYOUT_PORT_DEBUGCON, (uint8_t)line[sent]);
        sent++;
        want++;
    }
    pit_wait_ms(200, count_reached, &want);
    irq_disable();
    outb(com + COM_IER, 0);
    outb(com + COM_MCR, 0x03);
    ioapic_mask(pin);
    if (sent && sent < sizeof(line) - 1)
        console_putc('\n'); /* end the partial line */
    kit_check(sent == sizeof(line) - 1 && com_irqs == sent + 1 &&
                  !com_bad_iir,
              "ioapic-com1", "%u THRE interrupts for %u bytes, %u not THRE",
              com_irqs, sent, com_bad_iir);
}

void test_ioapic(const struct acpi_info *ai)
{
    const struct acpi_madt_info *m = &ai->madt_info;
    uint32_t id;

    if (!kit_check(m->ioapic_count >= 1 && m->ioapic_addr == LAYOUT_IOAPIC_BASE &&
                       m->ioapic_gsi_base == 0,
                   "ioapic-madt", "%u IOAPICs, first at 0x%lx GSI base %u",
                   m->ioapic_count, m->ioapic_addr, m->ioapic_gsi_base))
        return;
    id = (ioapic_read(IOAPIC_REG_ID) >> 24) & 0x0F;
    kit_check(id == m->ioapic_id && ioapic_pins() == LAYOUT_IOAPIC_PINS,
              "ioapic-regs", "ID %u (MADT %u), %u pins", id, m->ioapic_id,
              ioapic_pins());
    for (unsigned v = VEC_PIC_BASE; v < VEC_PIC_BASE + 16; v++)
        idt_set_handler(v, on_stray);
    idt_set_handler(VEC_PIT, on_pit);
    idt_set_handler(VEC_COM1, on_com1);
    pic_disable();
    lapic_enable();
    for (unsigned pin = 0; pin < ioapic_pins(); pin++)
        ioapic_mask(pin);
    check_pit(m);
    check_com1(m);
    kit_check(stray == 0, "pic-masked", "%u interrupts through the 8259s",
              stray);
}
