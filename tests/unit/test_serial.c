#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hw/serial.h"

enum { RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5,
       MSR = 6, SCR = 7 };

struct fixture {
    struct serial uart;
    struct irq_line irq;
    uint8_t out[256];
    size_t out_len;
    unsigned rx_ready_calls;
};

static void capture_write(void *opaque, const void *buf, size_t len)
{
    struct fixture *f = opaque;
    assert_true(f->out_len + len <= sizeof(f->out));
    memcpy(f->out + f->out_len, buf, len);
    f->out_len += len;
}

static void count_rx_ready(void *opaque)
{
    struct fixture *f = opaque;
    f->rx_ready_calls++;
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    irq_line_init(&f.irq, -1, 4);
    struct serial_config cfg = {
        .write = capture_write, .rx_ready = count_rx_ready, .opaque = &f};
    assert_int_equal(serial_init(&f.uart, &cfg, &f.irq), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    serial_destroy(&f->uart);
    return 0;
}

static uint8_t inb(struct fixture *f, unsigned reg)
{
    uint8_t v = 0xAA;
    serial_bus_ops.read(&f->uart, reg, &v, 1);
    return v;
}

static void outb(struct fixture *f, unsigned reg, uint8_t v)
{
    serial_bus_ops.write(&f->uart, reg, &v, 1);
}

static size_t receive_str(struct fixture *f, const char *s)
{
    return serial_receive(&f->uart, (const uint8_t *)s, strlen(s));
}

static void test_reset_state(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(inb(f, IIR), 0x01);
    assert_int_equal(inb(f, IER), 0x00);
    assert_int_equal(inb(f, MCR), 0x00);
    assert_int_equal(inb(f, MSR), 0xB0); /* CTS, DSR, DCD from the far end */
    assert_int_equal(f->irq.level, 0);
}

static void test_transmit_reaches_callback_and_lsr_stays_idle(void **state)
{
    struct fixture *f = *state;
    outb(f, LCR, 0x03);
    outb(f, FCR, 0x01);
    for (const char *p = "hello\n"; *p; p++) {
        assert_int_equal(inb(f, LSR) & 0x60, 0x60);
        outb(f, RBR, (uint8_t)*p);
    }
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(f->out_len, 6);
    assert_memory_equal(f->out, "hello\n", 6);
}

/* SeaBIOS serial_setup(): IER=0x02 must read back, IIR must say THRE. */
static void test_seabios_detection(void **state)
{
    struct fixture *f = *state;
    outb(f, IER, 0x02);
    assert_int_equal(inb(f, IER), 0x02);
    assert_int_equal(inb(f, IIR) & 0x3F, 0x02);
    outb(f, IER, 0x00);
    assert_int_equal(inb(f, IIR) & 0x3F, 0x01);
}

/* The register checks of Linux's 8250 autoconfig, in its order. */
static void test_linux_8250_probe(void **state)
{
    struct fixture *f = *state;
    outb(f, IER, 0x00);
    assert_int_equal(inb(f, IER) & 0x0F, 0x00);
    outb(f, IER, 0x0F);
    assert_int_equal(inb(f, IER) & 0x0F, 0x0F);
    outb(f, IER, 0x00);
    /* Loopback: MCR = LOOP|OUT2|RTS gives CTS and DCD. */
    outb(f, MCR, 0x1A);
    assert_int_equal(inb(f, MSR) & 0xF0, 0x90);
    outb(f, MCR, 0x00);
    /* FIFO present: IIR bits 7:6 = 3 -> 16550A family. */
    outb(f, FCR, 0x01);
    assert_int_equal(inb(f, IIR) >> 6, 3);
    /* No EFR behind LCR=0xBF or 0x80 (IIR does not read 0 there). */
    outb(f, LCR, 0xBF);
    assert_int_not_equal(inb(f, IIR), 0);
    outb(f, LCR, 0x80);
    assert_int_not_equal(inb(f, IIR), 0);
    /* No 64-byte FIFO: IIR bit 5 stays clear with FCR bit 5 set. */
    outb(f, LCR, 0x00);
    outb(f, FCR, 0x21);
    assert_int_equal(inb(f, IIR) >> 5, 6);
    outb(f, LCR, 0x80);
    outb(f, FCR, 0x21);
    assert_int_equal(inb(f, IIR) >> 5, 6);
    outb(f, LCR, 0x00);
    /* IER bit 6 (XScale UUE) does not stick. */
    outb(f, IER, 0x40);
    assert_int_equal(inb(f, IER), 0x00);
    /* Scratch register works. */
    outb(f, SCR, 0xA5);
    assert_int_equal(inb(f, SCR), 0xA5);
}

/* Linux's startup test: THRE must be re-asserted each time IER.THRI goes
 * from 0 to 1, even after the previous one was acknowledged. */
static void test_thre_reasserted_on_ier_write(void **state)
{
    struct fixture *f = *state;
    outb(f, FCR, 0x01);
    outb(f, MCR, 0x0B);
    outb(f, IER, 0x02);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(inb(f, IIR), 0xC2);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(inb(f, IIR), 0xC1); /* acknowledged by the read */
    outb(f, IER, 0x00);
    outb(f, IER, 0x02);
    assert_int_equal(inb(f, IIR), 0xC2);
    assert_int_equal(f->irq.pulses, 2);
    /* Writing THR re-arms it too: the byte leaves at once. */
    outb(f, RBR, 'x');
    assert_int_equal(inb(f, IIR), 0xC2);
    assert_int_equal(f->irq.pulses, 3);
}

static void test_out2_gates_the_irq(void **state)
{
    struct fixture *f = *state;
    outb(f, IER, 0x02);
    assert_int_equal(f->irq.level, 0); /* pending, but OUT2 is off */
    outb(f, MCR, 0x08);
    assert_int_equal(f->irq.level, 1);
    outb(f, MCR, 0x00);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(inb(f, IIR), 0x02); /* still pending inside */
}

static void test_loopback(void **state)
{
    struct fixture *f = *state;
    outb(f, MCR, 0x18); /* LOOP | OUT2 */
    outb(f, IER, 0x01);
    outb(f, RBR, 'Z');
    assert_int_equal(f->out_len, 0);
    assert_int_equal(inb(f, LSR), 0x61);
    assert_int_equal(inb(f, IIR), 0x04);
    assert_int_equal(f->irq.level, 0); /* OUT2 is cut off in loopback */
    assert_int_equal(inb(f, RBR), 'Z');
    assert_int_equal(inb(f, LSR), 0x60);
    /* Host input waits during loopback and is announced afterwards. */
    assert_int_equal(receive_str(f, "k"), 0);
    outb(f, MCR, 0x08);
    assert_int_equal(f->rx_ready_calls, 1);
    assert_int_equal(receive_str(f, "k"), 1);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(inb(f, RBR), 'k');
}

static void test_loopback_overrun_sets_oe(void **state)
{
    struct fixture *f = *state;
    outb(f, MCR, 0x10);
    outb(f, RBR, '1');
    outb(f, RBR, '2'); /* no FIFO: one-byte holding register */
    assert_int_equal(inb(f, LSR), 0x63);
    assert_int_equal(inb(f, LSR), 0x61); /* OE cleared by the read */
    assert_int_equal(inb(f, RBR), '1');
}

static void test_fifo_trigger_levels(void **state)
{
    struct fixture *f = *state;
    static const struct { uint8_t fcr; unsigned level; } cases[] = {
        {0x01, 1}, {0x41, 4}, {0x81, 8}, {0xC1, 14}};
    outb(f, IER, 0x01);
    outb(f, MCR, 0x08);
    for (unsigned c = 0; c < 4; c++) {
        outb(f, FCR, cases[c].fcr | 0x02); /* also clears the FIFO */
        assert_int_equal(inb(f, LSR) & 1, 0);
        for (unsigned n = 1; n <= cases[c].level; n++) {
            assert_int_equal(serial_receive(&f->uart, (const uint8_t *)"x",
                                             1), 1);
            uint8_t want = n < cases[c].level ? 0xCC : 0xC4;
            assert_int_equal(inb(f, IIR), want);
            assert_int_equal(f->irq.level, 1);
        }
    }
}

static void test_fifo_capacity_and_rx_ready(void **state)
{
    struct fixture *f = *state;
    outb(f, FCR, 0x01);
    assert_int_equal(receive_str(f, "0123456789abcdefXYZ"), 16);
    assert_int_equal(f->rx_ready_calls, 0);
    assert_int_equal(receive_str(f, "X"), 0);
    assert_int_equal(inb(f, RBR), '0');
    assert_int_equal(f->rx_ready_calls, 1);
    assert_int_equal(inb(f, RBR), '1');
    assert_int_equal(f->rx_ready_calls, 1); /* only once per refusal */
    assert_int_equal(receive_str(f, "XYZ"), 2);
    for (const char *p = "23456789abcdefXY"; *p; p++)
        assert_int_equal(inb(f, RBR), *p);
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(f->rx_ready_calls, 2);
}

static void test_fifo_disabled_holds_one_byte(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(receive_str(f, "ab"), 1);
    assert_int_equal(inb(f, IIR), 0x01); /* IER is 0 */
    outb(f, IER, 0x01);
    assert_int_equal(inb(f, IIR), 0x04);
    assert_int_equal(inb(f, RBR), 'a');
    assert_int_equal(f->rx_ready_calls, 1);
    /* Turning the FIFO on or off drops what it held. */
    assert_int_equal(receive_str(f, "b"), 1);
    outb(f, FCR, 0x01);
    assert_int_equal(inb(f, LSR), 0x60);
}

/* RLS > RDA/timeout > THRE > MSR, each acknowledged its own way. */
static void test_interrupt_priority(void **state)
{
    struct fixture *f = *state;
    outb(f, MCR, 0x10);                 /* loopback, no FIFO */
    outb(f, RBR, 'a');
    outb(f, RBR, 'b');                  /* overrun */
    outb(f, MCR, 0x12);                 /* RTS -> CTS: DCTS */
    outb(f, IER, 0x0F);
    assert_int_equal(inb(f, IIR), 0x06);
    inb(f, LSR);                        /* clears OE */
    assert_int_equal(inb(f, IIR), 0x04);
    assert_int_equal(inb(f, RBR), 'a'); /* empties RBR */
    assert_int_equal(inb(f, IIR), 0x02);
    assert_int_equal(inb(f, IIR), 0x00); /* THRE acknowledged by IIR read */
    assert_int_equal(inb(f, MSR) & 0x0F, 0x0B); /* entering loopback too */
    assert_int_equal(inb(f, IIR), 0x01);
}

static void test_dlab_selects_divisor_latch(void **state)
{
    struct fixture *f = *state;
    outb(f, IER, 0x05);
    outb(f, LCR, 0x83);
    outb(f, 0, 0x01); /* DLL */
    outb(f, 1, 0x02); /* DLM */
    assert_int_equal(inb(f, 0), 0x01);
    assert_int_equal(inb(f, 1), 0x02);
    assert_int_equal(f->out_len, 0);
    outb(f, LCR, 0x03);
    assert_int_equal(inb(f, LCR), 0x03);
    assert_int_equal(inb(f, IER), 0x05);
    outb(f, LCR, 0x80);
    assert_int_equal(inb(f, 0), 0x01);
}

static void test_msr_deltas_in_loopback(void **state)
{
    struct fixture *f = *state;
    outb(f, MCR, 0x10);
    inb(f, MSR); /* leaving the external lines latched deltas */
    outb(f, MCR, 0x14); /* OUT1 -> RI */
    assert_int_equal(inb(f, MSR), 0x40);
    outb(f, MCR, 0x10); /* RI falls: trailing edge */
    assert_int_equal(inb(f, MSR), 0x04);
    outb(f, MCR, 0x19); /* DTR, OUT2 -> DSR, DCD */
    assert_int_equal(inb(f, MSR), 0xAA);
    assert_int_equal(inb(f, MSR), 0xA0);
}

static void test_word_access_is_two_bytes(void **state)
{
    struct fixture *f = *state;
    uint8_t w[2] = {0x03, 0x0B}; /* LCR, MCR */
    serial_bus_ops.write(&f->uart, LCR, w, 2);
    assert_int_equal(inb(f, LCR), 0x03);
    assert_int_equal(inb(f, MCR), 0x0B);
    uint8_t r[2] = {0, 0};
    serial_bus_ops.read(&f->uart, SCR, r, 2); /* second byte outside */
    assert_int_equal(r[1], 0xFF);
}

static void test_reset_drops_state(void **state)
{
    struct fixture *f = *state;
    outb(f, MCR, 0x08);
    outb(f, IER, 0x03);
    assert_int_equal(receive_str(f, "q"), 1);
    assert_int_equal(f->irq.level, 1);
    serial_reset(&f->uart);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(inb(f, LSR), 0x60);
    assert_int_equal(inb(f, IER), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reset_state),
        T(test_transmit_reaches_callback_and_lsr_stays_idle),
        T(test_seabios_detection),
        T(test_linux_8250_probe),
        T(test_thre_reasserted_on_ier_write),
        T(test_out2_gates_the_irq),
        T(test_loopback),
        T(test_loopback_overrun_sets_oe),
        T(test_fifo_trigger_levels),
        T(test_fifo_capacity_and_rx_ready),
        T(test_fifo_disabled_holds_one_byte),
        T(test_interrupt_priority),
        T(test_dlab_selects_divisor_latch),
        T(test_msr_deltas_in_loopback),
        T(test_word_access_is_two_bytes),
        T(test_reset_drops_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
