#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "platform/e820.h"
#include "platform/layout.h"

static uint64_t ram_total(const struct e820_entry *e, unsigned n)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < n; i++)
        if (e[i].type == E820_RAM)
            t += e[i].size;
    return t;
}

static void check_sorted_disjoint(const struct e820_entry *e, unsigned n)
{
    for (unsigned i = 1; i < n; i++)
        assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
}

static void test_small_direct(void **state)
{
    struct machine_info mi = {.ncpus = 1, .ram_size = 256 * MiB};
    struct e820_entry e[E820_MAX_ENTRIES];
    unsigned n = e820_build(&mi, E820_DIRECT, e, E820_MAX_ENTRIES);
    check_sorted_disjoint(e, n);
    assert_int_equal(e[0].addr, 0);
    assert_int_equal(e[0].size, LAYOUT_EBDA_START);
    assert_int_equal(e[0].type, E820_RAM);
    /* every byte not in the legacy holes is RAM */
    assert_int_equal(ram_total(e, n),
                     256 * MiB - (LAYOUT_HIGH_MEM_START - LAYOUT_EBDA_START));
    /* the KVM private pages are reserved */
    int found = 0;
    for (unsigned i = 0; i < n; i++)
        found |= e[i].addr == LAYOUT_KVM_TSS && e[i].type == E820_RESERVED;
    assert_true(found);
}

static void test_large_splits_at_3g(void **state)
{
    struct machine_info mi = {.ncpus = 1, .ram_size = 6 * GiB};
    struct e820_entry e[E820_MAX_ENTRIES];
    unsigned n = e820_build(&mi, E820_FIRMWARE, e, E820_MAX_ENTRIES);
    check_sorted_disjoint(e, n);
    assert_int_equal(e[0].addr, 0);
    assert_int_equal(e[0].size, 3 * GiB);
    assert_int_equal(e[n - 1].addr, 4 * GiB);
    assert_int_equal(e[n - 1].size, 3 * GiB);
    assert_int_equal(ram_total(e, n), 6 * GiB);
    assert_int_equal(layout_pci_hole_start(mi.ram_size), 3 * GiB);
    assert_int_equal(layout_pci_hole_start(2 * GiB), 2 * GiB);
    assert_int_equal(layout_pci_hole_start(2 * GiB + 1), 3 * GiB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_direct),
        cmocka_unit_test(test_large_splits_at_3g),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
