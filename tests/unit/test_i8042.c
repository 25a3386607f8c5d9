#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hw/i8042.h"
#include "platform/layout.h"

struct fixture {
    struct i8042 kbc;
    struct irq_line irq;
    unsigned resets;
};

static void count_reset(void *opaque)
{
    ((struct fixture *)opaque)->resets++;
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    irq_line_init(&f.irq, -1, LAYOUT_GSI_KEYBOARD);
    struct i8042_config cfg = {.reset_request = count_reset, .opaque = &f};
    assert_int_equal(i8042_init(&f.kbc, &cfg, &f.irq), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    i8042_destroy(&((struct fixture *)*state)->kbc);
    return 0;
}

static uint8_t status(struct fixture *f)
{
    uint8_t v;
    i8042_cmd_ops.read(&f->kbc, 0, &v, 1);
    return v;
}

static void command(struct fixture *f, uint8_t v)
{
    i8042_cmd_ops.write(&f->kbc, 0, &v, 1);
}

static void data_out(struct fixture *f, uint8_t v)
{
    i8042_data_ops.write(&f->kbc, 0, &v, 1);
}

/* Reads one byte the way drivers do: wait for OBF first. */
static uint8_t data_in(struct fixture *f)
{
    assert_true(status(f) & 0x01);
    uint8_t v;
    i8042_data_ops.read(&f->kbc, 0, &v, 1);
    return v;
}

static void assert_empty(struct fixture *f)
{
    assert_int_equal(status(f) & 0x01, 0);
}

/* Controller command with one reply byte. */
static uint8_t query(struct fixture *f, uint8_t cmd)
{
    command(f, cmd);
    uint8_t v = data_in(f);
    assert_empty(f);
    return v;
}

static void test_power_on_state(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(status(f), 0x10); /* unlocked, nothing buffered */
    assert_int_equal(query(f, 0x20), 0x61);
    assert_int_equal(f->irq.level, 0);
}

/* SeaBIOS ps2_keyboard_setup(), byte for byte. */
static void test_seabios_probe(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 16 && (status(f) & 0x01); i++)
        data_in(f);
    command(f, 0xAD);
    command(f, 0xA7);
    assert_int_equal(query(f, 0xAA), 0x55);
    assert_int_equal(status(f) & 0x04, 0x04); /* system flag */
    assert_int_equal(query(f, 0xAB), 0x00);
    /* Keyboard commands go out with the keyboard enabled, IRQs off. */
    uint8_t ctr = query(f, 0x20);
    command(f, 0x60);
    data_out(f, (uint8_t)((ctr & ~0x13) | 0x20));
    unsigned pulses = f->irq.pulses;
    data_out(f, 0xFF);
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(data_in(f), 0xAA);
    assert_empty(f);
    data_out(f, 0xF5);
    assert_int_equal(data_in(f), 0xFA);
    data_out(f, 0xF0);
    assert_int_equal(data_in(f), 0xFA);
    data_out(f, 0x02);
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(f->irq.pulses, pulses);
    command(f, 0x60);
    data_out(f, 0x61);
    data_out(f, 0xF4);
    assert_int_equal(f->irq.level, 1); /* KBDINT is on now */
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(f->irq.level, 0);
    assert_empty(f);
    assert_int_equal(f->kbc.kbd_set, 2);
    assert_true(f->kbc.kbd_scanning);
}

/* Linux i8042_controller_check/selftest/init, then atkbd's probe. */
static void test_linux_probe(void **state)
{
    struct fixture *f = *state;
    assert_int_not_equal(status(f), 0xFF);
    assert_empty(f);
    assert_int_equal(query(f, 0xAA), 0x55);
    uint8_t ctr = query(f, 0x20);
    assert_int_equal(query(f, 0x20), ctr);
    assert_true(status(f) & 0x10); /* no "Keylock active" */
    ctr = (uint8_t)((ctr | 0x10) & ~0x01);
    command(f, 0x60);
    data_out(f, ctr);
    assert_int_equal(query(f, 0x20), ctr);
    /* Enable the keyboard port with interrupts. */
    ctr = (uint8_t)((ctr & ~0x10) | 0x01);
    command(f, 0x60);
    data_out(f, ctr);
    assert_int_equal(f->irq.level, 0);
    unsigned pulses = f->irq.pulses;
    data_out(f, 0xF2); /* GETID, translated */
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(f->irq.level, 1); /* next byte: a fresh edge */
    assert_int_equal(data_in(f), 0xAB);
    assert_int_equal(data_in(f), 0x41);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(f->irq.pulses, pulses + 3);
    data_out(f, 0xED); /* SETLEDS 0 */
    assert_int_equal(data_in(f), 0xFA);
    data_out(f, 0x00);
    assert_int_equal(data_in(f), 0xFA);
    data_out(f, 0xF3); /* SETREP */
    assert_int_equal(data_in(f), 0xFA);
    data_out(f, 0x20);
    assert_int_equal(data_in(f), 0xFA);
    data_out(f, 0xF4);
    assert_int_equal(data_in(f), 0xFA);
    assert_empty(f);
}

static void test_untranslated_identify_and_scan_set_query(void **state)
{
    struct fixture *f = *state;
    command(f, 0x60);
    data_out(f, 0x00);
    data_out(f, 0xF2);
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(data_in(f), 0xAB);
    assert_int_equal(data_in(f), 0x83);
    data_out(f, 0xF0);
    data_out(f, 0x03);
    data_out(f, 0xF0);
    data_out(f, 0x00);
    for (int i = 0; i < 4; i++)
        assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(data_in(f), 0x03);
    data_out(f, 0xF0);
    data_out(f, 0x07); /* no such set */
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(data_in(f), 0xFE);
    assert_empty(f);
}

static void test_keyboard_misc_commands(void **state)
{
    struct fixture *f = *state;
    data_out(f, 0xEE);
    assert_int_equal(data_in(f), 0xEE);
    data_out(f, 0xFE); /* resend: the last byte again */
    assert_int_equal(data_in(f), 0xEE);
    data_out(f, 0xED);
    data_out(f, 0xFF); /* a parameter, not a reset */
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(data_in(f), 0xFA);
    assert_int_equal(f->kbc.kbd_leds, 0x07);
    data_out(f, 0x12); /* not a command */
    assert_int_equal(data_in(f), 0xFE);
    data_out(f, 0xF5);
    assert_int_equal(data_in(f), 0xFA);
    assert_false(f->kbc.kbd_scanning);
    assert_empty(f);
}

static void test_status_command_data_bit(void **state)
{
    struct fixture *f = *state;
    command(f, 0xAE);
    assert_int_equal(status(f) & 0x08, 0x08);
    data_out(f, 0xF4);
    assert_int_equal(status(f) & 0x08, 0x00);
}

static void test_irq_follows_command_byte(void **state)
{
    struct fixture *f = *state;
    command(f, 0x60);
    data_out(f, 0x60); /* KBDINT off */
    command(f, 0xAB);
    assert_int_equal(f->irq.level, 0);
    command(f, 0x60); /* a new command: the reply stays queued */
    data_out(f, 0x61);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(data_in(f), 0x00);
    assert_int_equal(f->irq.level, 0);
}

static void test_reset_requests(void **state)
{
    struct fixture *f = *state;
    command(f, 0xFF); /* pulses nothing */
    assert_int_equal(f->resets, 0);
    command(f, 0xFE);
    assert_int_equal(f->resets, 1);
    command(f, 0xF0); /* pulses all four lines, reset among them */
    assert_int_equal(f->resets, 2);
    command(f, 0xF1);
    assert_int_equal(f->resets, 2);
    command(f, 0xD1);
    data_out(f, 0xDD); /* A20 off, reset line high */
    assert_int_equal(f->resets, 2);
    assert_int_equal(query(f, 0xD0) & 0x03, 0x01);
    command(f, 0xDF);
    assert_int_equal(query(f, 0xD0) & 0x03, 0x03);
    command(f, 0xD1);
    data_out(f, 0x02); /* reset line low */
    assert_int_equal(f->resets, 3);
}

static void test_no_aux_port(void **state)
{
    struct fixture *f = *state;
    assert_int_not_equal(query(f, 0xA9), 0x00);
    command(f, 0xD3);
    data_out(f, 0x5A);
    command(f, 0xD4);
    data_out(f, 0xFF);
    assert_empty(f);
    assert_int_equal(f->kbc.kbd_scanning, true); /* not sent to the kbd */
    command(f, 0xA7);
    assert_int_equal(query(f, 0x20) & 0x20, 0x20);
    command(f, 0xA8);
    assert_int_equal(query(f, 0x20) & 0x20, 0x00);
}

static void test_write_keyboard_output_buffer(void **state)
{
    struct fixture *f = *state;
    command(f, 0xD2);
    data_out(f, 0x1C);
    assert_int_equal(data_in(f), 0x1C);
    assert_empty(f);
}

static void test_queue_is_bounded(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 40; i++)
        command(f, 0xAA);
    unsigned n = 0;
    while (status(f) & 0x01) {
        assert_int_equal(data_in(f), 0x55);
        n++;
    }
    assert_int_equal(n, I8042_QUEUE_SIZE);
    uint8_t v;
    i8042_data_ops.read(&f->kbc, 0, &v, 1); /* empty: last value again */
    assert_int_equal(v, 0x55);
}

static void test_reset_restores_power_on_state(void **state)
{
    struct fixture *f = *state;
    command(f, 0x60);
    data_out(f, 0x00);
    command(f, 0xAA);
    i8042_reset(&f->kbc);
    assert_int_equal(status(f), 0x10);
    assert_int_equal(query(f, 0x20), 0x61);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_power_on_state),
        T(test_seabios_probe),
        T(test_linux_probe),
        T(test_untranslated_identify_and_scan_set_query),
        T(test_keyboard_misc_commands),
        T(test_status_command_data_bit),
        T(test_irq_follows_command_byte),
        T(test_reset_requests),
        T(test_no_aux_port),
        T(test_write_keyboard_output_buffer),
        T(test_queue_is_bounded),
        T(test_reset_restores_power_on_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
