#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vm/memory.h"

static uint8_t low[0x10000], high[0x1000], rom[0x1000];

static struct guest_mem make_mem(void)
{
    struct guest_mem m = {0};
    assert_int_equal(gmem_add(&m, 0, sizeof(low), low, false), 0);
    assert_int_equal(gmem_add(&m, 0x10000, sizeof(high), high, false), 0);
    assert_int_equal(gmem_add(&m, 0xFFFFF000, sizeof(rom), rom, true), 0);
    return m;
}

static void test_inside_one_region(void **state)
{
    struct guest_mem m = make_mem();
    assert_ptr_equal(gpa_ptr(&m, 0x100, 16, GMEM_READ), low + 0x100);
    assert_ptr_equal(gpa_ptr(&m, 0xFFF0, 16, GMEM_WRITE), low + 0xFFF0);
    assert_ptr_equal(gpa_ptr(&m, 0x10000, 0x1000, GMEM_READ), high);
}

static void test_range_crossing_regions_is_refused(void **state)
{
    struct guest_mem m = make_mem();
    assert_null(gpa_ptr(&m, 0xFFF8, 16, GMEM_READ));
    assert_null(gpa_ptr(&m, 0x10FFF, 2, GMEM_READ));
    assert_null(gpa_ptr(&m, 0x11000, 1, GMEM_READ));
}

static void test_overflow_is_refused(void **state)
{
    struct guest_mem m = make_mem();
    assert_null(gpa_ptr(&m, 0x100, UINT64_MAX, GMEM_READ));
    assert_null(gpa_ptr(&m, UINT64_MAX, 2, GMEM_READ));
    assert_null(gpa_ptr(&m, 0xFFFFFFFF, 0xFFFFFFFF00000002ULL, GMEM_READ));
}

static void test_rom_is_read_only(void **state)
{
    struct guest_mem m = make_mem();
    assert_non_null(gpa_ptr(&m, 0xFFFFF000, 16, GMEM_READ));
    assert_null(gpa_ptr(&m, 0xFFFFF000, 16, GMEM_WRITE));
    uint8_t b = 1;
    assert_int_equal(gmem_write(&m, 0xFFFFF000, &b, 1), -1);
}

static void test_copy_spans_adjacent_regions(void **state)
{
    struct guest_mem m = make_mem();
    uint8_t buf[32];
    memset(buf, 0xAB, sizeof(buf));
    assert_int_equal(gmem_write(&m, 0xFFF0, buf, sizeof(buf)), 0);
    assert_int_equal(low[0xFFFF], 0xAB);
    assert_int_equal(high[0xF], 0xAB);
    assert_int_equal(gmem_read(&m, 0x10FF0, buf, 32), -1);
}

static void test_overlap_rejected(void **state)
{
    struct guest_mem m = make_mem();
    static uint8_t x[16];
    assert_int_equal(gmem_add(&m, 0xFFF8, 16, x, false), -1);
    assert_int_equal(gmem_add(&m, UINT64_MAX - 4, 16, x, false), -1);
    assert_int_equal(gmem_add(&m, 0x20000, 0, x, false), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inside_one_region),
        cmocka_unit_test(test_range_crossing_regions_is_refused),
        cmocka_unit_test(test_overflow_is_refused),
        cmocka_unit_test(test_rom_is_read_only),
        cmocka_unit_test(test_copy_spans_adjacent_regions),
        cmocka_unit_test(test_overlap_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
