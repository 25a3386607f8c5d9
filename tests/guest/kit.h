/* Runtime shared by the test guests: freestanding 64-bit code that runs in
 * ring 0 on an identity map of the low 4 GiB, entered either through PVH
 * (entry_pvh.S) or the 64-bit boot protocol (entry_bzimage.S). */
#ifndef KIT_H
#define KIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu_defs.h"
#include "platform/layout.h"

#define KIT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define KIT_NORETURN __attribute__((noreturn))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- port and MMIO access --------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
    return *(volatile uint32_t *)(uintptr_t)addr;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)addr = v;
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" ::: "memory");
}

static inline void irq_enable(void)
{
    __asm__ volatile("sti" ::: "memory");
}

static inline void irq_disable(void)
{
    __asm__ volatile("cli" ::: "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c,
                         uint32_t *d)
{
    __asm__ volatile("cpuid"
                     : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                     : "a"(leaf), "c"(0));
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return lo | (uint64_t)hi << 32;
}

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return lo | (uint64_t)hi << 32;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr"
                     : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

/* ---- lib.c: the few libc functions the compiler may call --------------- */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);
/* Parses a decimal or 0x-hex number with an optional K/M/G suffix.
 * Returns the number of characters used, 0 when s holds no number. */
size_t kit_parse_u64(const char *s, uint64_t *out);

/* ---- console.c: serial (COM1, polled) mirrored to the debug port ------- */

void console_init(void);
void console_putc(char c);
void kit_printf(const char *fmt, ...) KIT_PRINTF(1, 2);

/* ---- result protocol (main.c) ------------------------------------------
 * Every line a guest prints is one of
 *   INFO <key> <value>                facts the runner may compare
 *   TEST <name> PASS|FAIL <detail>    one line per check
 *   DONE PASS | DONE FAIL <count>     followed by power-off / triple fault
 *   FATAL <reason>                    unexpected exception, then triple fault
 *   ACTION poweroff|reset             right before the guest stops itself
 */
void kit_info(const char *key, const char *fmt, ...) KIT_PRINTF(2, 3);
/* Prints "TEST name PASS|FAIL detail"; returns ok. */
bool kit_check(bool ok, const char *name, const char *fmt, ...)
    KIT_PRINTF(3, 4);
unsigned kit_failures(void);
/* Ends the run: power-off when every check passed, triple fault otherwise. */
KIT_NORETURN void kit_done(void);
KIT_NORETURN void kit_fatal(const char *fmt, ...) KIT_PRINTF(1, 2);
KIT_NORETURN void kit_triple_fault(void);

/* ---- boot information, filled by the entry path ----------------------- */

#define KIT_MAX_MEM 64

struct kit_mem_range {
    uint64_t addr;
    uint64_t size;
    uint32_t type; /* 1 RAM, 2 reserved, 3 ACPI ... (e820 numbering) */
};

struct kit_boot {
    const char *protocol; /* "pvh" or "bzimage" */
    uint64_t cmdline_addr; /* 0 when none */
    const char *cmdline;   /* "" when none */
    uint64_t initrd_addr;
    uint64_t initrd_size; /* 0 when none */
    uint64_t rsdp_addr;   /* 0 when not given */
    struct kit_mem_range mem[KIT_MAX_MEM];
    unsigned mem_count;
    uint64_t info_addr, info_size; /* the boot structure itself */
    uint64_t image_start, image_end; /* this guest, bss and stacks included */
};

extern struct kit_boot kit_boot;
extern char __image_start[], __image_end[];

/* Entry glue (pvh.c, bzimage.c) fills kit_boot, then calls kit_main(). */
KIT_NORETURN void kit_main(void);
/* Copies a NUL-terminated boot string into kit_boot's buffer; returns its
 * length, or -1 when it is not terminated within max bytes. */
long kit_boot_set_cmdline(uint64_t addr, uint64_t max);
/* Protocol-specific checks of the bootinfo test (pvh.c or bzimage.c). */
void boot_protocol_checks(void);

/* ---- cmdline.c -------------------------------------------------------- */

/* Finds "key=value" in the command line; copies value (NUL-terminated)
 * into buf. Returns false when the key is absent or the value too long. */
bool cmdline_get(const char *key, char *buf, size_t len);
/* Numeric option; returns def when absent. Bad numbers are fatal. */
uint64_t cmdline_u64(const char *key, uint64_t def);

/* ---- cpu.S / idt.c ---------------------------------------------------- */


struct irq_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

typedef void (*irq_handler_t)(struct irq_frame *f);

void cpu_load_gdt(void); /* our GDT, CS/DS reloaded */
void idt_init(void);
void idt_set_handler(unsigned vector, irq_handler_t h);
/* Who may use the gate with INT n: DPL 0 (the default) or 3. */
void idt_set_gate_dpl(unsigned vector, unsigned dpl);
void isr_dispatch(struct irq_frame *f);
/* 256 entry stubs of ISR_STUB_SIZE bytes each (cpu.S). */
#define ISR_STUB_SIZE 16
extern const char isr_stubs[];

/* ---- paging.c --------------------------------------------------------- */

/* Builds an identity map of [0, 4 GiB) (uncached above 3 GiB) and loads it. */
void paging_identity_4g(void);
/* Translates va through the tables at cr3; returns false when unmapped. */
bool paging_translate(uint64_t cr3, uint64_t va, uint64_t *pa);

/* ---- pit.c: delays and timeouts from PIT channel 2 -------------------- */

void pit_delay_us(uint32_t us);
/* A single countdown of at most 50 ms, and whether it has run out. */
void pit_one_shot(uint32_t us);
bool pit_one_shot_done(void);
/* Polls done() until it returns true or ms milliseconds passed. */
bool pit_wait_ms(uint32_t ms, bool (*done)(void *), void *arg);
/* Channel 0 as a periodic rate generator at hz. */
void pit_start_periodic(uint32_t hz);
void pit_stop(void);

/* ---- acpi.c ----------------------------------------------------------- */

struct acpi_gas {
    uint8_t space; /* 0 memory, 1 I/O */
    uint8_t bit_width;
    uint64_t addr;
};

struct acpi_madt_info {
    uint64_t lapic_addr;
    unsigned cpu_count; /* enabled processor entries */
    uint32_t apic_ids[LAYOUT_MAX_CPUS];
    unsigned ioapic_count;
    uint8_t ioapic_id;
    uint64_t ioapic_addr;
    uint32_t ioapic_gsi_base;
    uint32_t isa_gsi[16];   /* ISA IRQ -> GSI after overrides */
    uint16_t isa_flags[16]; /* MPS INTI flags from the override, 0 = ISA default */
    unsigned override_count;
};

#define ACPI_MAX_TABLES 16

struct acpi_info {
    /* Every table found (RSDP, root, DSDT included), for placement checks. */
    uint64_t table_addr[ACPI_MAX_TABLES];
    uint32_t table_len[ACPI_MAX_TABLES];
    char table_sig[ACPI_MAX_TABLES][5];
    unsigned table_count;
    uint64_t rsdp;
    uint8_t rsdp_rev;
    uint64_t root; /* XSDT, or RSDT when rsdp_rev < 2 */
    bool root_is_xsdt;
    uint64_t fadt, dsdt, madt;
    uint8_t fadt_rev;
    uint32_t fadt_len;
    uint32_t pm1a_cnt, pm1b_cnt;
    uint32_t pm_tmr;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    uint32_t fadt_flags; /* bit 8: 32-bit PM timer */
    bool reset_supported;
    struct acpi_gas reset_reg;
    uint8_t reset_value;
    bool s5_found;
    uint8_t s5_typ_a, s5_typ_b;
    struct acpi_madt_info madt_info;
};

/* Validates an RSDP (signature, checksums). */
bool acpi_rsdp_valid(uint64_t addr, const char **why);
/* Scans the EBDA and the BIOS area the way a legacy OS does; 0 if absent. */
uint64_t acpi_scan_rsdp(void);
/* Finds the RSDP: the boot-info value, else the BIOS-area scan. Walks the
 * root table, FADT, DSDT (for \_S5) and MADT. Prints a FAIL line and
 * returns false on the first inconsistency. */
bool acpi_load(struct acpi_info *ai);
bool acpi_checksum_ok(const void *p, size_t len);
/* Finds "_S5_" in an AML block and decodes the first two package elements. */
bool acpi_find_s5(const uint8_t *aml, size_t len, uint8_t *a, uint8_t *b);

/* ---- apic.c ----------------------------------------------------------- */

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xB0
#define LAPIC_SVR 0xF0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310

uint32_t lapic_read(unsigned reg);
void lapic_write(unsigned reg, uint32_t v);
void lapic_set_base(uint64_t base);
void lapic_enable(void);
uint32_t lapic_id(void);
void lapic_eoi(void);
/* Sends an IPI and waits until the LAPIC reports it delivered. */
bool lapic_send_ipi(uint32_t dest, uint32_t icr_lo);

void ioapic_set_base(uint64_t base);
uint32_t ioapic_read(unsigned reg);
void ioapic_write(unsigned reg, uint32_t v);
unsigned ioapic_pins(void);
void ioapic_route(unsigned pin, uint8_t vector, uint32_t dest, bool level,
                  bool active_low);
void ioapic_mask(unsigned pin);
void pic_disable(void);

/* ---- tests (one file each) -------------------------------------------- */

void test_smp(const struct acpi_info *ai);
void test_ioapic(const struct acpi_info *ai);
void test_poweroff(const struct acpi_info *ai);
void test_reset(const struct acpi_info *ai);
void test_bootinfo(const struct acpi_info *ai);
void test_vblk(const struct acpi_info *ai);
void test_emulate(const struct acpi_info *ai);
void test_usermode(const struct acpi_info *ai);

/* Power-off through PM1a/b_CNT with SLP_TYP from \_S5 (and SLP_EN). */
void acpi_poweroff(const struct acpi_info *ai);
void acpi_reset(const struct acpi_info *ai);

#endif
