#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hw/acpi_pm.h"
#include "platform/layout.h"

#define STS (LAYOUT_PORT_PM1A_EVT - LAYOUT_PORT_PM_BASE)
#define EN (STS + 2)
#define CNT (LAYOUT_PORT_PM1A_CNT - LAYOUT_PORT_PM_BASE)
#define TMR (LAYOUT_PORT_PM_TMR - LAYOUT_PORT_PM_BASE)
#define GPE_STS (LAYOUT_PORT_GPE0 - LAYOUT_PORT_PM_BASE)
#define GPE_EN (GPE_STS + 2)

struct fixture {
    struct acpi_pm pm;
    struct irq_line sci;
    int64_t now;
    unsigned poweroffs;
};

static int64_t fake_clock(void *opaque)
{
    return ((struct fixture *)opaque)->now;
}

static void count_poweroff(void *opaque)
{
    ((struct fixture *)opaque)->poweroffs++;
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.now = 1000000007; /* the timer counts from init, not from 0 */
    irq_line_init(&f.sci, -1, LAYOUT_GSI_SCI);
    struct acpi_pm_config cfg = {.poweroff_request = count_poweroff,
                                 .opaque = &f, .clock_ns = fake_clock,
                                 .clock_opaque = &f};
    assert_int_equal(acpi_pm_init(&f.pm, &cfg, &f.sci), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    acpi_pm_destroy(&((struct fixture *)*state)->pm);
    return 0;
}

static uint32_t in(struct fixture *f, unsigned off, unsigned len)
{
    uint8_t b[4] = {0xAA, 0xAA, 0xAA, 0xAA};
    acpi_pm_bus_ops.read(&f->pm, off, b, len);
    uint32_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static void out(struct fixture *f, unsigned off, uint32_t v, unsigned len)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                    (uint8_t)(v >> 24)};
    acpi_pm_bus_ops.write(&f->pm, off, b, len);
}

static void test_reset_state(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(in(f, STS, 2), 0);
    assert_int_equal(in(f, EN, 2), 0);
    assert_int_equal(in(f, CNT, 2), 0x0001); /* SCI_EN */
    assert_int_equal(in(f, GPE_STS, 4), 0);
    assert_int_equal(f->sci.level, 0);
}

static void test_power_button_and_write_one_to_clear(void **state)
{
    struct fixture *f = *state;
    acpi_pm_power_button(&f->pm);
    assert_int_equal(in(f, STS, 2), 0x0100);
    assert_int_equal(f->sci.level, 0); /* not enabled */
    out(f, EN, 0x0100, 2);
    assert_int_equal(f->sci.level, 1);
    out(f, STS, 0x0000, 2); /* zeros clear nothing */
    assert_int_equal(in(f, STS, 2), 0x0100);
    out(f, STS, 0x8000, 2); /* WAK_STS only */
    assert_int_equal(in(f, STS, 2), 0x0100);
    out(f, STS + 1, 0x01, 1); /* byte write to the high half */
    assert_int_equal(in(f, STS, 2), 0x0000);
    assert_int_equal(f->sci.level, 0);
    /* One dword write: clear STS and program EN together. */
    acpi_pm_power_button(&f->pm);
    assert_int_equal(f->sci.level, 1);
    out(f, STS, 0x0000FFFF, 4);
    assert_int_equal(in(f, STS, 4), 0);
    assert_int_equal(f->sci.level, 0);
}

static void test_enable_bits_are_masked(void **state)
{
    struct fixture *f = *state;
    out(f, EN, 0xFFFF, 2);
    assert_int_equal(in(f, EN, 2), 0x0721);
}

static void test_s5_powers_off(void **state)
{
    struct fixture *f = *state;
    out(f, CNT, 0 << 10, 2); /* Linux: SLP_TYP first ... */
    assert_int_equal(f->poweroffs, 0);
    out(f, CNT, (0 << 10) | 0x2000, 2); /* ... then with SLP_EN */
    assert_int_equal(f->poweroffs, 1);
    assert_int_equal(in(f, CNT, 2), 0x0001); /* SLP_EN reads 0 */
    out(f, CNT + 1, 0x20, 1); /* SeaBIOS APM: 0x2000, as a byte here */
    assert_int_equal(f->poweroffs, 2);
}

static void test_other_sleep_types_are_ignored(void **state)
{
    struct fixture *f = *state;
    out(f, CNT, (5 << 10) | 0x2000, 2);
    out(f, CNT, (1 << 10) | 0x2000, 2);
    assert_int_equal(f->poweroffs, 0);
    assert_int_equal(in(f, CNT, 2), (1 << 10) | 0x0001);
    out(f, CNT, 0x0000, 2); /* SCI_EN cannot be cleared */
    assert_int_equal(in(f, CNT, 2), 0x0001);
}

static void test_pm_timer_counts_at_3_58_mhz(void **state)
{
    struct fixture *f = *state;
    int64_t t0 = f->now;
    assert_int_equal(in(f, TMR, 4), 0);
    f->now = t0 + 1000000000;
    assert_int_equal(in(f, TMR, 4), 3579545);
    f->now = t0 + 1000;
    assert_int_equal(in(f, TMR, 4), 3); /* 3.58 ticks */
    /* 24 bits: wraps after 2^24 ticks (4.687 s). */
    f->now = t0 + 4687500000LL; /* 16779117 ticks */
    assert_int_equal(in(f, TMR, 4), 16779117 - (1 << 24));
    assert_int_equal(in(f, TMR + 3, 1), 0);
    f->now = t0 + 2000000000;
    assert_int_equal(in(f, TMR + 2, 1), (7159090 >> 16) & 0xFF);
    out(f, TMR, 0, 4); /* read-only */
    assert_int_equal(in(f, TMR, 4), 7159090);
}

static void test_tmr_sts_on_bit_23_toggle(void **state)
{
    struct fixture *f = *state;
    int64_t t0 = f->now;
    f->now = t0 + 2000000000; /* 7159090 < 2^23 */
    assert_int_equal(in(f, STS, 2) & 1, 0);
    f->now = t0 + 2400000000LL; /* 8590908 >= 2^23 */
    assert_int_equal(in(f, STS, 2) & 1, 1);
    out(f, STS, 1, 2);
    assert_int_equal(in(f, STS, 2) & 1, 0);
    out(f, EN, 1, 2);
    assert_int_equal(f->sci.level, 0);
    f->now = t0 + 4700000000LL; /* bit 23 falls at the wrap */
    assert_int_equal(in(f, STS, 2) & 1, 1);
    assert_int_equal(f->sci.level, 1);
}

static void test_gpe0(void **state)
{
    struct fixture *f = *state;
    acpi_pm_raise_gpe(&f->pm, 3);
    acpi_pm_raise_gpe(&f->pm, 16); /* out of range: ignored */
    assert_int_equal(in(f, GPE_STS, 2), 0x0008);
    assert_int_equal(f->sci.level, 0);
    out(f, GPE_EN, 0x0008, 2);
    assert_int_equal(in(f, GPE_EN, 2), 0x0008);
    assert_int_equal(f->sci.level, 1);
    out(f, GPE_STS, 0x0008, 2);
    assert_int_equal(in(f, GPE_STS, 2), 0);
    assert_int_equal(f->sci.level, 0);
}

static void test_accesses_at_the_edges(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(in(f, 0x10, 4), 0);
    assert_int_equal(in(f, LAYOUT_PORT_PM_LEN - 2, 4), 0);
    out(f, LAYOUT_PORT_PM_LEN - 1, 0xFFFFFFFF, 4);
    out(f, 0x06, 0xFFFF, 2);
    assert_int_equal(in(f, CNT, 4), 0x0001);
    assert_int_equal(f->poweroffs, 0);
}

static void test_reset_clears_state(void **state)
{
    struct fixture *f = *state;
    out(f, EN, 0x0100, 2);
    acpi_pm_power_button(&f->pm);
    assert_int_equal(f->sci.level, 1);
    acpi_pm_reset(&f->pm);
    assert_int_equal(f->sci.level, 0);
    assert_int_equal(in(f, STS, 4), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reset_state),
        T(test_power_button_and_write_one_to_clear),
        T(test_enable_bits_are_masked),
        T(test_s5_powers_off),
        T(test_other_sleep_types_are_ignored),
        T(test_pm_timer_counts_at_3_58_mhz),
        T(test_tmr_sts_on_bit_23_toggle),
        T(test_gpe0),
        T(test_accesses_at_the_edges),
        T(test_reset_clears_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
