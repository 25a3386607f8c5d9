#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <poll.h>
#include <cmocka.h>

#include "hw/rtc.h"
#include "platform/layout.h"

#define NS 1000000000LL
/* 2024-02-29 13:45:30 UTC, a Thursday. */
#define T0 (1709214330LL * NS)

struct fixture {
    struct rtc rtc;
    struct irq_line irq;
    int64_t now;
};

static int64_t fake_clock(void *opaque)
{
    return ((struct fixture *)opaque)->now;
}

static struct fixture *make(uint64_t ram, unsigned ncpus)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.now = T0;
    irq_line_init(&f.irq, -1, LAYOUT_GSI_RTC);
    struct rtc_config cfg = {.ram_size = ram, .ncpus = ncpus,
                             .clock_ns = fake_clock, .clock_opaque = &f};
    assert_int_equal(rtc_init(&f.rtc, &cfg, &f.irq), 0);
    return &f;
}

static int setup(void **state)
{
    *state = make(256 * MiB, 2);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rtc_destroy(&f->rtc);
    return 0;
}

static uint8_t cmos_read(struct fixture *f, uint8_t idx)
{
    uint8_t v = 0x80 | idx; /* firmware always sets the NMI-mask bit */
    rtc_bus_ops.write(&f->rtc, 0, &v, 1);
    rtc_bus_ops.read(&f->rtc, 1, &v, 1);
    return v;
}

static void cmos_write(struct fixture *f, uint8_t idx, uint8_t val)
{
    uint8_t v = 0x80 | idx;
    rtc_bus_ops.write(&f->rtc, 0, &v, 1);
    rtc_bus_ops.write(&f->rtc, 1, &val, 1);
}

static void expire_at(struct fixture *f, int64_t t)
{
    f->now = t;
    rtc_timer_expired(&f->rtc);
}

static void test_cmos_defaults(void **state)
{
    struct fixture *f = *state;
    static const uint8_t set[] = {0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09,
                                  0x0A, 0x0B, 0x0D, 0x14, 0x15, 0x16, 0x17,
                                  0x18, 0x30, 0x31, 0x32, 0x34, 0x35, 0x37,
                                  0x3D, 0x5F};
    assert_int_equal(cmos_read(f, 0x0A), 0x26);
    assert_int_equal(cmos_read(f, 0x0B), 0x02);
    assert_int_equal(cmos_read(f, 0x0C), 0x00);
    assert_int_equal(cmos_read(f, 0x0D), 0x80);
    assert_int_equal(cmos_read(f, 0x0F), 0x00);
    assert_int_equal(cmos_read(f, 0x10), 0x00);
    assert_int_equal(cmos_read(f, 0x14), 0x02);
    assert_int_equal(cmos_read(f, 0x32), 0x20);
    assert_int_equal(cmos_read(f, 0x37), 0x20);
    assert_int_equal(cmos_read(f, 0x3D), 0x02);
    assert_int_equal(cmos_read(f, 0x5F), 1);
    /* Everything else reads 0, never 0xFF. */
    for (unsigned i = 0; i < 128; i++) {
        if (memchr(set, (int)i, sizeof(set)))
            continue;
        assert_int_equal(cmos_read(f, (uint8_t)i), 0);
    }
}

static void test_memory_bytes_256m(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(cmos_read(f, 0x15), 0x80); /* 640 KiB */
    assert_int_equal(cmos_read(f, 0x16), 0x02);
    assert_int_equal(cmos_read(f, 0x17), 0xFF); /* 255 MiB capped */
    assert_int_equal(cmos_read(f, 0x18), 0xFF);
    assert_int_equal(cmos_read(f, 0x30), 0xFF);
    assert_int_equal(cmos_read(f, 0x31), 0xFF);
    assert_int_equal(cmos_read(f, 0x34), 0x00); /* 240 MiB = 0x0F00 x 64K */
    assert_int_equal(cmos_read(f, 0x35), 0x0F);
    assert_int_equal(cmos_read(f, 0x5B), 0);
    assert_int_equal(cmos_read(f, 0x5C), 0);
    assert_int_equal(cmos_read(f, 0x5D), 0);
}

static void test_memory_bytes_6g(void **state)
{
    struct fixture *f = make(6 * GiB, 3);
    assert_int_equal(cmos_read(f, 0x17), 0xFF);
    assert_int_equal(cmos_read(f, 0x18), 0xFF);
    assert_int_equal(cmos_read(f, 0x34), 0x00); /* 3 GiB - 16 MiB */
    assert_int_equal(cmos_read(f, 0x35), 0xBF);
    assert_int_equal(cmos_read(f, 0x5B), 0x00); /* 3 GiB above 4 GiB */
    assert_int_equal(cmos_read(f, 0x5C), 0xC0);
    assert_int_equal(cmos_read(f, 0x5D), 0x00);
    assert_int_equal(cmos_read(f, 0x5F), 2);
    rtc_destroy(&f->rtc);
}

static void test_memory_bytes_32m(void **state)
{
    struct fixture *f = make(32 * MiB, 1);
    assert_int_equal(cmos_read(f, 0x17), 0x00); /* 31 MiB = 0x7C00 KiB */
    assert_int_equal(cmos_read(f, 0x18), 0x7C);
    assert_int_equal(cmos_read(f, 0x34), 0x00); /* 16 MiB = 0x100 x 64K */
    assert_int_equal(cmos_read(f, 0x35), 0x01);
    assert_int_equal(cmos_read(f, 0x5F), 0);
    rtc_destroy(&f->rtc);
}

static void test_time_bcd_24h(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(cmos_read(f, 0x00), 0x30);
    assert_int_equal(cmos_read(f, 0x02), 0x45);
    assert_int_equal(cmos_read(f, 0x04), 0x13);
    assert_int_equal(cmos_read(f, 0x06), 5); /* Thursday, Sunday = 1 */
    assert_int_equal(cmos_read(f, 0x07), 0x29);
    assert_int_equal(cmos_read(f, 0x08), 0x02);
    assert_int_equal(cmos_read(f, 0x09), 0x24);
    assert_int_equal(cmos_read(f, 0x32), 0x20);
    f->now += 29 * NS + NS / 2;
    assert_int_equal(cmos_read(f, 0x00), 0x59);
    f->now += NS / 2;
    assert_int_equal(cmos_read(f, 0x00), 0x00);
    assert_int_equal(cmos_read(f, 0x02), 0x46);
}

static void test_binary_and_12h_modes(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x0B, 0x04); /* binary, 12 h */
    assert_int_equal(cmos_read(f, 0x04), 0x81); /* 1 PM */
    assert_int_equal(cmos_read(f, 0x02), 45);
    assert_int_equal(cmos_read(f, 0x09), 24);
    assert_int_equal(cmos_read(f, 0x32), 20);
    cmos_write(f, 0x0B, 0x00); /* BCD, 12 h */
    assert_int_equal(cmos_read(f, 0x04), 0x81);
    f->now += (10 * 3600 + 15 * 60) * NS; /* 00:00:30 */
    assert_int_equal(cmos_read(f, 0x04), 0x12); /* 12 AM */
    f->now += 12 * 3600 * NS;
    assert_int_equal(cmos_read(f, 0x04), 0x92); /* 12 PM */
    cmos_write(f, 0x0B, 0x06); /* binary, 24 h */
    assert_int_equal(cmos_read(f, 0x04), 12);
}

static void test_set_time_with_set_bit(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x0B, 0x82);
    assert_int_equal(cmos_read(f, 0x00), 0x30); /* frozen copy */
    cmos_write(f, 0x09, 0x99);
    cmos_write(f, 0x08, 0x12);
    cmos_write(f, 0x07, 0x31);
    cmos_write(f, 0x04, 0x23);
    cmos_write(f, 0x02, 0x59);
    cmos_write(f, 0x00, 0x58);
    f->now += 5 * NS; /* stopped while SET */
    assert_int_equal(cmos_read(f, 0x00), 0x58);
    assert_int_equal(cmos_read(f, 0x0A) & 0x80, 0); /* no UIP while SET */
    cmos_write(f, 0x0B, 0x02);
    assert_int_equal(cmos_read(f, 0x00), 0x58);
    f->now += 2 * NS;
    assert_int_equal(cmos_read(f, 0x00), 0x00);
    assert_int_equal(cmos_read(f, 0x02), 0x00);
    assert_int_equal(cmos_read(f, 0x04), 0x00);
    assert_int_equal(cmos_read(f, 0x07), 0x01);
    assert_int_equal(cmos_read(f, 0x08), 0x01);
    assert_int_equal(cmos_read(f, 0x09), 0x00);
    assert_int_equal(cmos_read(f, 0x32), 0x21);
    assert_int_equal(cmos_read(f, 0x37), 0x21);
    assert_int_equal(cmos_read(f, 0x06), 0x06); /* 2100-01-01: Friday */
}

static void test_write_while_running_sets_field(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x04, 0x07);
    assert_int_equal(cmos_read(f, 0x04), 0x07);
    assert_int_equal(cmos_read(f, 0x02), 0x45);
    f->now += 30 * NS;
    assert_int_equal(cmos_read(f, 0x02), 0x46);
    assert_int_equal(cmos_read(f, 0x04), 0x07);
}

static void test_hostile_time_values(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x0B, 0x82);
    cmos_write(f, 0x32, 0xFF); /* BCD garbage: year 16665 */
    cmos_write(f, 0x09, 0xFF);
    cmos_write(f, 0x08, 0xFF);
    cmos_write(f, 0x0B, 0x02);
    assert_int_equal(cmos_read(f, 0x09), 0x24); /* ignored */
    cmos_write(f, 0x0B, 0x86); /* binary */
    cmos_write(f, 0x32, 20);
    cmos_write(f, 0x08, 200); /* month 200: normalised, no crash */
    cmos_write(f, 0x07, 0);
    cmos_write(f, 0x04, 0xFF);
    cmos_write(f, 0x0B, 0x06);
    uint8_t y = cmos_read(f, 0x09), c = cmos_read(f, 0x32);
    assert_true(c == 20 || c == 21);
    assert_true(y < 100);
}

static void test_uip_before_update(void **state)
{
    struct fixture *f = *state;
    f->now = T0 + NS - 244001;
    assert_int_equal(cmos_read(f, 0x0A), 0x26);
    f->now = T0 + NS - 244000;
    assert_int_equal(cmos_read(f, 0x0A), 0xA6);
    f->now = T0 + NS - 1;
    assert_int_equal(cmos_read(f, 0x0A), 0xA6);
    assert_int_equal(cmos_read(f, 0x00), 0x30); /* update not yet done */
    f->now = T0 + NS;
    assert_int_equal(cmos_read(f, 0x0A), 0x26);
    assert_int_equal(cmos_read(f, 0x00), 0x31);
    cmos_write(f, 0x0A, 0xA6); /* UIP is read-only */
    assert_int_equal(cmos_read(f, 0x0A), 0x26);
}

static void test_register_c_clear_on_read(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x0A, 0x20); /* no periodic flag in the way */
    cmos_write(f, 0x0B, 0x12); /* UIE */
    assert_int_equal(f->rtc.deadline_ns, T0 + NS);
    expire_at(f, T0 + NS);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(f->rtc.deadline_ns, -1); /* nothing until C is read */
    assert_int_equal(cmos_read(f, 0x0C), 0x90);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(cmos_read(f, 0x0C), 0x00);
    assert_int_equal(f->rtc.deadline_ns, T0 + 2 * NS);
    /* Register D: valid RAM and time. */
    assert_int_equal(cmos_read(f, 0x0D), 0x80);
    cmos_write(f, 0x0C, 0xFF);
    cmos_write(f, 0x0D, 0x00);
    assert_int_equal(cmos_read(f, 0x0C), 0x00);
    assert_int_equal(cmos_read(f, 0x0D), 0x80);
}

static void test_flags_latch_without_enables(void **state)
{
    struct fixture *f = *state;
    f->now += NS / 100;
    assert_int_equal(cmos_read(f, 0x0C), 0x40); /* PF, no IRQF */
    f->now += NS;
    assert_int_equal(cmos_read(f, 0x0C), 0x50); /* PF and UF */
    assert_int_equal(f->irq.pulses, 0);
    assert_int_equal(f->rtc.deadline_ns, -1);
    /* Enabling PIE while PF is pending raises the line at once. */
    f->now += NS / 100;
    cmos_write(f, 0x0B, 0x42);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(cmos_read(f, 0x0C), 0xC0);
}

/* SeaBIOS programs A = 0x26 and PIE for INT 15h/86h waits. */
static void test_periodic_interrupt_rate(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x0B, 0x42);
    for (unsigned i = 1; i <= 1024; i++) {
        int64_t d = f->rtc.deadline_ns;
        /* tick i of the second, rounded up to whole nanoseconds */
        assert_int_equal(d, T0 + (i * NS + 1023) / 1024);
        expire_at(f, d - 1);
        assert_int_equal(f->irq.level, 0); /* early wake-up: nothing */
        expire_at(f, d);
        assert_int_equal(f->irq.level, 1);
        assert_int_equal(cmos_read(f, 0x0C) & 0xC0, 0xC0);
        assert_int_equal(f->irq.level, 0);
    }
    assert_int_equal(f->irq.pulses, 1024);
    assert_int_equal(f->now, T0 + NS);
    /* 2 Hz */
    cmos_write(f, 0x0A, 0x2F);
    assert_int_equal(f->rtc.deadline_ns, T0 + NS + NS / 2);
    expire_at(f, T0 + NS + NS / 2);
    assert_int_equal(f->irq.pulses, 1025);
    /* Rate 0 and PIE off stop the timer. */
    cmos_read(f, 0x0C);
    cmos_write(f, 0x0A, 0x20);
    assert_int_equal(f->rtc.deadline_ns, -1);
}

static void test_alarm_interrupt(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x0A, 0x20); /* no periodic flag in the way */
    cmos_write(f, 0x01, 0x00);
    cmos_write(f, 0x03, 0x46);
    cmos_write(f, 0x05, 0x13);
    cmos_write(f, 0x0B, 0x22); /* AIE */
    for (int64_t s = 1; s < 30; s++) {
        expire_at(f, T0 + s * NS);
        assert_int_equal(f->irq.level, 0);
    }
    expire_at(f, T0 + 30 * NS); /* 13:46:00 */
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(cmos_read(f, 0x0C), 0xB0);
    /* "Don't care" hours and minutes: every minute at :05 */
    cmos_write(f, 0x01, 0x05);
    cmos_write(f, 0x03, 0xC0);
    cmos_write(f, 0x05, 0xFF);
    f->now = T0 + 34 * NS;
    assert_int_equal(cmos_read(f, 0x0C), 0x10);
    expire_at(f, T0 + 35 * NS);
    assert_int_equal(cmos_read(f, 0x0C), 0xB0);
    /* An alarm missed while nobody looked is still latched (one day). */
    cmos_write(f, 0x0B, 0x02);
    f->now = T0 + 3 * 3600 * NS;
    assert_int_equal(cmos_read(f, 0x0C), 0x30);
}

static void test_set_bit_clears_uie_and_stops_updates(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x0B, 0x92);
    assert_int_equal(cmos_read(f, 0x0B), 0x82);
    f->now += 3 * NS;
    assert_int_equal(cmos_read(f, 0x0C) & 0x10, 0);
}

static void test_reset_keeps_time_and_cmos(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x50, 0x5A);
    cmos_write(f, 0x0B, 0x72);
    f->now += NS;
    rtc_timer_expired(&f->rtc);
    assert_int_equal(f->irq.level, 1);
    rtc_reset(&f->rtc);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(cmos_read(f, 0x0B), 0x02);
    assert_int_equal(cmos_read(f, 0x0C), 0x00);
    assert_int_equal(cmos_read(f, 0x50), 0x5A);
    assert_int_equal(cmos_read(f, 0x00), 0x31);
}

static void test_index_port(void **state)
{
    struct fixture *f = *state;
    cmos_write(f, 0x7F, 0x42); /* index written as 0xFF */
    assert_int_equal(cmos_read(f, 0x7F), 0x42);
    uint8_t w[2] = {0x7F, 0x43}; /* outw: index and data at once */
    rtc_bus_ops.write(&f->rtc, 0, w, 2);
    assert_int_equal(cmos_read(f, 0x7F), 0x43);
}

/* With the real clock, the timerfd really fires at the periodic rate. */
static void test_timer_fd_fires(void **state)
{
    struct fixture f;
    memset(&f, 0, sizeof(f));
    irq_line_init(&f.irq, -1, LAYOUT_GSI_RTC);
    struct rtc_config cfg = {.ram_size = 64 * MiB, .ncpus = 1};
    assert_int_equal(rtc_init(&f.rtc, &cfg, &f.irq), 0);
    cmos_write(&f, 0x0B, 0x42);
    struct pollfd p = {.fd = rtc_timer_fd(&f.rtc), .events = POLLIN};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(poll(&p, 1, 1000), 1);
        rtc_timer_expired(&f.rtc);
        assert_int_equal(f.irq.level, 1);
        cmos_read(&f, 0x0C);
    }
    assert_int_equal(f.irq.pulses, 3);
    rtc_destroy(&f.rtc);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_cmos_defaults),
        T(test_memory_bytes_256m),
        cmocka_unit_test(test_memory_bytes_6g),
        cmocka_unit_test(test_memory_bytes_32m),
        T(test_time_bcd_24h),
        T(test_binary_and_12h_modes),
        T(test_set_time_with_set_bit),
        T(test_write_while_running_sets_field),
        T(test_hostile_time_values),
        T(test_uip_before_update),
        T(test_register_c_clear_on_read),
        T(test_flags_latch_without_enables),
        T(test_periodic_interrupt_rate),
        T(test_alarm_interrupt),
        T(test_set_bit_clears_uie_and_stops_updates),
        T(test_reset_keeps_time_and_cmos),
        T(test_index_port),
        cmocka_unit_test(test_timer_fd_fires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
