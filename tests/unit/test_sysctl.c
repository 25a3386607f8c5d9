#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hw/sysctl.h"

static unsigned resets;

static void count_reset(void *opaque)
{
    resets++;
}

static int setup(void **state)
{
    static struct sysctl s;
    resets = 0;
    struct sysctl_config cfg = {.reset_request = count_reset};
    assert_int_equal(sysctl_init(&s, &cfg), 0);
    *state = &s;
    return 0;
}

static int teardown(void **state)
{
    sysctl_destroy(*state);
    return 0;
}

static uint8_t in(const struct bus_ops *ops, struct sysctl *s)
{
    uint8_t v = 0;
    ops->read(s, 0, &v, 1);
    return v;
}

static void out(const struct bus_ops *ops, struct sysctl *s, uint8_t v)
{
    ops->write(s, 0, &v, 1);
}

/* Firmware's A20 dance: read, set bit 1, write back; never a reset. */
static void test_port92(void **state)
{
    struct sysctl *s = *state;
    uint8_t v = in(&sysctl_port92_ops, s);
    assert_int_equal(v, 0x02);
    out(&sysctl_port92_ops, s, v | 0x02);
    out(&sysctl_port92_ops, s, 0x01);
    out(&sysctl_port92_ops, s, 0xFF);
    assert_int_equal(resets, 0);
    assert_int_equal(in(&sysctl_port92_ops, s), 0x02);
}

static void test_reset_control(void **state)
{
    struct sysctl *s = *state;
    assert_int_equal(in(&sysctl_reset_control_ops, s), 0x00);
    out(&sysctl_reset_control_ops, s, 0x02);
    assert_int_equal(resets, 0);
    assert_int_equal(in(&sysctl_reset_control_ops, s), 0x02);
    out(&sysctl_reset_control_ops, s, 0x06);
    assert_int_equal(resets, 1);
    assert_int_equal(in(&sysctl_reset_control_ops, s), 0x02);
    out(&sysctl_reset_control_ops, s, 0x0E);
    assert_int_equal(resets, 2);
    assert_int_equal(in(&sysctl_reset_control_ops, s), 0x0A);
    out(&sysctl_reset_control_ops, s, 0xF1);
    assert_int_equal(resets, 2);
    assert_int_equal(in(&sysctl_reset_control_ops, s), 0x00);
    out(&sysctl_reset_control_ops, s, 0x08);
    sysctl_reset(s);
    assert_int_equal(in(&sysctl_reset_control_ops, s), 0x00);
}

static void test_post_port(void **state)
{
    struct sysctl *s = *state;
    out(&sysctl_post_ops, s, 0x55);
    assert_int_equal(in(&sysctl_post_ops, s), 0xFF);
    assert_int_equal(resets, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_port92),
        T(test_reset_control),
        T(test_post_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
