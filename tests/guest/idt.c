/* A 64-bit IDT whose every vector enters isr_dispatch(); exceptions are
 * fatal, interrupts go to the handler a test installed. */
#include "kit.h"

struct idt_gate {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t ist;
    uint8_t type; /* P | DPL | 64-bit interrupt gate */
    uint16_t off_mid;
    uint32_t off_hi;
    uint32_t zero;
};

static struct idt_gate idt[256] __attribute__((aligned(16)));
static irq_handler_t handlers[256];

void idt_init(void)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } desc = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};

    for (unsigned v = 0; v < 256; v++) {
        uint64_t off = (uint64_t)(uintptr_t)isr_stubs + v * ISR_STUB_SIZE;
        idt[v] = (struct idt_gate){
            .off_lo = (uint16_t)off,
            .sel = KIT_CS,
            .type = 0x8E,
            .off_mid = (uint16_t)(off >> 16),
            .off_hi = (uint32_t)(off >> 32),
        };
    }
    __asm__ volatile("lidt %0" : : "m"(desc));
}

void idt_set_handler(unsigned vector, irq_handler_t h)
{
    handlers[vector & 0xFF] = h;
}

void idt_set_gate_dpl(unsigned vector, unsigned dpl)
{
    idt[vector & 0xFF].type = (uint8_t)(0x8E | (dpl & 3) << 5);
}

void isr_dispatch(struct irq_frame *f)
{
    irq_handler_t h = handlers[f->vector & 0xFF];

    if (h) {
        h(f);
        return;
    }
    if (f->vector < 32) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        kit_fatal("exception %lu error 0x%lx rip 0x%lx cr2 0x%lx",
                  f->vector, f->error, f->rip, cr2);
    }
    kit_fatal("unexpected interrupt vector %lu at rip 0x%lx", f->vector,
              f->rip);
}
