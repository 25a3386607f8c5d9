#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vm/bus.h"

struct fake {
    uint64_t last_off;
    unsigned last_len;
    uint32_t value;
    int writes;
};

static void fake_read(void *opaque, uint64_t off, void *data, unsigned len)
{
    struct fake *f = opaque;
    f->last_off = off;
    f->last_len = len;
    memcpy(data, &f->value, len > 4 ? 4 : len);
}

static void fake_write(void *opaque, uint64_t off, const void *data,
                       unsigned len)
{
    struct fake *f = opaque;
    f->last_off = off;
    f->last_len = len;
    f->writes++;
}

static const struct bus_ops fake_ops = {fake_read, fake_write};

static void test_dispatch_with_offset(void **state)
{
    struct bus b;
    struct fake a = {.value = 0x11223344}, c = {.value = 0x55};
    assert_int_equal(bus_init(&b), 0);
    assert_int_equal(bus_add(&b, 0x3F8, 8, &fake_ops, &a, "a"), 0);
    assert_int_equal(bus_add(&b, 0x70, 2, &fake_ops, &c, "c"), 0);
    uint32_t v = 0;
    assert_true(bus_read(&b, 0x3FD, &v, 1));
    assert_int_equal(a.last_off, 5);
    assert_int_equal(v, 0x44);
    assert_true(bus_write(&b, 0x71, &v, 1));
    assert_int_equal(c.writes, 1);
    assert_int_equal(c.last_off, 1);
    bus_destroy(&b);
}

static void test_unclaimed_and_straddling(void **state)
{
    struct bus b;
    struct fake a = {0};
    assert_int_equal(bus_init(&b), 0);
    assert_int_equal(bus_add(&b, 0x100, 4, &fake_ops, &a, "a"), 0);
    uint32_t v;
    assert_false(bus_read(&b, 0xFF, &v, 1));
    assert_false(bus_read(&b, 0x104, &v, 1));
    assert_false(bus_read(&b, 0x102, &v, 4)); /* straddles the end */
    assert_true(bus_read(&b, 0x100, &v, 4));
    bus_destroy(&b);
}

static void test_add_rejects_overlap_and_overflow(void **state)
{
    struct bus b;
    struct fake a = {0};
    assert_int_equal(bus_init(&b), 0);
    assert_int_equal(bus_add(&b, 0x100, 0x10, &fake_ops, &a, "a"), 0);
    assert_int_equal(bus_add(&b, 0x10F, 1, &fake_ops, &a, "x"), -1);
    assert_int_equal(bus_add(&b, 0xF0, 0x11, &fake_ops, &a, "x"), -1);
    assert_int_equal(bus_add(&b, 0x80, 0x100, &fake_ops, &a, "x"), -1);
    assert_int_equal(bus_add(&b, 0x200, 0, &fake_ops, &a, "x"), -1);
    assert_int_equal(bus_add(&b, UINT64_MAX, 2, &fake_ops, &a, "x"), -1);
    assert_int_equal(bus_add(&b, 0x110, 0x10, &fake_ops, &a, "b"), 0);
    assert_int_equal(bus_add(&b, UINT64_MAX, 1, &fake_ops, &a, "top"), 0);
    bus_destroy(&b);
}

static void test_remove(void **state)
{
    struct bus b;
    struct fake a = {0}, c = {0};
    uint32_t v;
    assert_int_equal(bus_init(&b), 0);
    assert_int_equal(bus_add(&b, 0x1000, 0x100, &fake_ops, &a, "a"), 0);
    assert_int_equal(bus_remove(&b, 0x1000, &c), -1);
    assert_int_equal(bus_remove(&b, 0x1000, &a), 0);
    assert_false(bus_read(&b, 0x1000, &v, 4));
    assert_int_equal(bus_add(&b, 0x1000, 0x100, &fake_ops, &c, "c"), 0);
    bus_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_with_offset),
        cmocka_unit_test(test_unclaimed_and_straddling),
        cmocka_unit_test(test_add_rejects_overlap_and_overflow),
        cmocka_unit_test(test_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
