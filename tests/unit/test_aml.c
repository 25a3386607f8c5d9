/* The AML writer against byte sequences worked out from the ACPI
 * specification (section 20, "AML Specification", and 6.4 for resource
 * descriptors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "platform/aml.h"

#define EXPECT(a, ...)                                                         \
    do {                                                                       \
        static const uint8_t want_[] = {__VA_ARGS__};                          \
        assert_int_equal(aml_finish(a), 0);                                    \
        assert_int_equal((a)->len, sizeof(want_));                             \
        assert_memory_equal((a)->buf, want_, sizeof(want_));                   \
    } while (0)

static void test_integers(void **state)
{
    static const struct {
        uint64_t v;
        uint8_t len;
        uint8_t bytes[9];
    } cases[] = {
        {0, 1, {0x00}},
        {1, 1, {0x01}},
        {2, 2, {0x0A, 0x02}},
        {0xFF, 2, {0x0A, 0xFF}},
        {0x100, 3, {0x0B, 0x00, 0x01}},
        {0xFFFF, 3, {0x0B, 0xFF, 0xFF}},
        {0xFFFFFFFF, 5, {0x0C, 0xFF, 0xFF, 0xFF, 0xFF}},
        {0x10000, 5, {0x0C, 0x00, 0x00, 0x01, 0x00}},
        {0xFEBFFFFF, 5, {0x0C, 0xFF, 0xFF, 0xBF, 0xFE}},
        {0x100000000ULL, 9, {0x0E, 0, 0, 0, 0, 1, 0, 0, 0}},
        {UINT64_MAX, 1, {0xFF}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct aml a;
        aml_init(&a);
        aml_int(&a, cases[i].v);
        assert_int_equal(aml_finish(&a), 0);
        assert_int_equal(a.len, cases[i].len);
        assert_memory_equal(a.buf, cases[i].bytes, cases[i].len);
        aml_free(&a);
    }
}

static void test_names(void **state)
{
    struct aml a;
    aml_init(&a);
    aml_name(&a, "_HID");
    EXPECT(&a, '_', 'H', 'I', 'D');
    aml_free(&a);

    aml_init(&a);
    aml_name(&a, "\\_SB");
    aml_name(&a, "^LNK");
    EXPECT(&a, '\\', '_', 'S', 'B', '_', '^', 'L', 'N', 'K', '_');
    aml_free(&a);

    aml_init(&a);
    aml_name(&a, "\\_SB.PCI0");
    EXPECT(&a, '\\', 0x2E, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');
    aml_free(&a);

    aml_init(&a);
    aml_name(&a, "\\_SB.PCI0.ISA.PRQA");
    EXPECT(&a, '\\', 0x2F, 4, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'I',
           'S', 'A', '_', 'P', 'R', 'Q', 'A');
    aml_free(&a);

    static const char *const bad[] = {"1ABC", "ABCDE", "lnka", "A..B", "A-B"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aml_init(&a);
        aml_name(&a, bad[i]);
        assert_int_equal(aml_finish(&a), -1);
        aml_free(&a);
    }
}

static void test_data(void **state)
{
    struct aml a;
    aml_init(&a);
    aml_eisaid(&a, "PNP0A03");
    aml_string(&a, "ACPI0007");
    aml_local(&a, 0);
    aml_arg(&a, 1);
    EXPECT(&a, 0x0C, 0x41, 0xD0, 0x0A, 0x03, 0x0D, 'A', 'C', 'P', 'I', '0',
           '0', '0', '7', 0x00, 0x60, 0x69);
    aml_free(&a);

    aml_init(&a);
    aml_eisaid(&a, "pnp0a03");
    assert_int_equal(aml_finish(&a), -1);
    aml_free(&a);
}

static void test_blocks(void **state)
{
    struct aml a;
    aml_init(&a);
    /* Scope (\_SB) { Method (_SRS, 1, Serialized) { } } */
    aml_scope(&a, "\\_SB");
    aml_method(&a, "_SRS", 1, true);
    aml_end(&a);
    aml_end(&a);
    EXPECT(&a, 0x10, 0x0D, '\\', '_', 'S', 'B', '_', 0x14, 0x06, '_', 'S',
           'R', 'S', 0x09);
    aml_free(&a);

    aml_init(&a);
    /* Device (KBD) { If (LEqual (Arg0, One)) { Return (Zero) } Else { } } */
    aml_device(&a, "KBD");
    aml_if(&a);
    aml_lequal(&a), aml_arg(&a, 0), aml_int(&a, 1);
    aml_return(&a), aml_int(&a, 0);
    aml_end(&a);
    aml_else(&a);
    aml_end(&a);
    aml_end(&a);
    EXPECT(&a, 0x5B, 0x82, 0x0E, 'K', 'B', 'D', '_', 0xA0, 0x06, 0x93, 0x68,
           0x01, 0xA4, 0x00, 0xA1, 0x01);
    aml_free(&a);
}

static void test_region_and_field(void **state)
{
    struct aml a;
    aml_init(&a);
    aml_op_region(&a, "PIRQ", AML_PCI_CONFIG, 0x60, 4);
    aml_field(&a, "PIRQ", AML_BYTE_ACC);
    aml_field_unit(&a, "PRQA", 8);
    aml_field_unit(&a, "PRQB", 100);
    aml_end(&a);
    EXPECT(&a, 0x5B, 0x80, 'P', 'I', 'R', 'Q', 0x02, 0x0A, 0x60, 0x0A, 0x04,
           /* Field: body 4 + 1 + 5 + 6 = 16, PkgLength 17 */
           0x5B, 0x81, 0x11, 'P', 'I', 'R', 'Q', 0x01, 'P', 'R', 'Q', 'A',
           0x08, 'P', 'R', 'Q', 'B', 0x44, 0x06);
    aml_free(&a);
}

/* PkgLength: one byte up to 63, then a lead byte holding the count of
 * following bytes and the low nibble. */
static void check_package_of_zeros(unsigned n, const uint8_t *head,
                                   size_t head_len)
{
    struct aml a;
    aml_init(&a);
    aml_package(&a, n);
    for (unsigned i = 0; i < n; i++)
        aml_int(&a, 0);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);
    assert_int_equal(a.len, head_len + n);
    assert_memory_equal(a.buf, head, head_len);
    aml_free(&a);
}

static void check_buffer(size_t n, const uint8_t *head, size_t head_len)
{
    uint8_t *data = calloc(1, n);
    assert_non_null(data);
    struct aml a;
    aml_init(&a);
    aml_buffer(&a, data, n);
    assert_int_equal(aml_finish(&a), 0);
    assert_int_equal(a.len, head_len + n);
    assert_memory_equal(a.buf, head, head_len);
    aml_free(&a);
    free(data);
}

static void test_pkg_length_boundaries(void **state)
{
    static const uint8_t p61[] = {0x12, 63, 61};
    static const uint8_t p62[] = {0x12, 0x41, 0x04, 62};
    check_package_of_zeros(61, p61, sizeof(p61));
    check_package_of_zeros(62, p62, sizeof(p62));
    /* Buffer: BufferOp, PkgLength, WordConst size, bytes */
    static const uint8_t b4090[] = {0x11, 0x4F, 0xFF, 0x0B, 0xFA, 0x0F};
    static const uint8_t b4091[] = {0x11, 0x81, 0x00, 0x01, 0x0B, 0xFB, 0x0F};
    static const uint8_t b5000[] = {0x11, 0x8E, 0x38, 0x01, 0x0B, 0x88, 0x13};
    static const uint8_t b1m[] = {0x11, 0xC9, 0x00, 0x00, 0x01,
                                  0x0C, 0x00, 0x00, 0x10, 0x00};
    check_buffer(4090, b4090, sizeof(b4090));
    check_buffer(4091, b4091, sizeof(b4091));
    check_buffer(5000, b5000, sizeof(b5000));
    check_buffer(1 << 20, b1m, sizeof(b1m));
}

static void test_misuse_fails(void **state)
{
    struct aml a;
    aml_init(&a);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), -1);
    aml_free(&a);

    aml_init(&a);
    aml_scope(&a, "\\_SB");
    assert_int_equal(aml_finish(&a), -1);
    aml_free(&a);

    aml_init(&a);
    for (unsigned i = 0; i <= AML_MAX_DEPTH; i++)
        aml_if(&a);
    for (unsigned i = 0; i <= AML_MAX_DEPTH; i++)
        aml_end(&a);
    assert_int_equal(aml_finish(&a), -1);
    aml_free(&a);

    aml_init(&a);
    aml_local(&a, 8);
    assert_int_equal(aml_finish(&a), -1);
    aml_free(&a);
}

static void test_resources(void **state)
{
    static const uint32_t irqs[] = {5, 10, 11};
    struct aml r;
    aml_init(&r);
    aml_res_io(&r, 0x3F8, 8);
    aml_res_irq_noflags(&r, 4);
    aml_res_interrupt_level_high(&r, irqs, 3);
    aml_res_word_bus(&r, 0, 0xFF);
    aml_res_end(&r);
    EXPECT(&r, 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08, /* IO */
           0x22, 0x10, 0x00,                                 /* IRQNoFlags */
           0x89, 0x0E, 0x00, 0x09, 0x03, 5, 0, 0, 0, 10, 0, 0, 0, 11, 0, 0, 0,
           0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF,
           0x00, 0x00, 0x00, 0x00, 0x01, /* WordBusNumber */
           0x79, 0x00);
    aml_free(&r);

    aml_init(&r);
    aml_res_qword_mem(&r, 0x100000000ULL, 0x10FFFFFFFFULL, true);
    assert_int_equal(aml_finish(&r), 0);
    assert_int_equal(r.len, 46);
    static const uint8_t head[] = {0x8A, 0x2B, 0x00, 0x00, 0x0C, 0x03};
    assert_memory_equal(r.buf, head, sizeof(head));
    static const uint8_t length[] = {0, 0, 0, 0, 0x10, 0, 0, 0};
    assert_memory_equal(r.buf + 38, length, 8);
    aml_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_region_and_field),
        cmocka_unit_test(test_pkg_length_boundaries),
        cmocka_unit_test(test_misuse_fails),
        cmocka_unit_test(test_resources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
