#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "platform/table_loader.h"
#include "util.h"

static void test_link_pointer_and_checksum(void **state)
{
    struct table_loader l;
    loader_init(&l);
    int a = loader_new_blob(&l, "etc/a", 16, LOADER_ZONE_FSEG);
    int b = loader_new_blob(&l, "etc/b", 64, LOADER_ZONE_HIGH);
    assert_true(a == 0 && b == 1);
    long pa = loader_reserve(&l, a, 20, 1);
    long pb = loader_reserve(&l, b, 100, 1);
    long pb2 = loader_reserve(&l, b, 8, 64);
    assert_int_equal(pa, 0);
    assert_int_equal(pb, 0);
    assert_int_equal(pb2, 128);
    put_le32(l.blobs[a].data + 4, (uint32_t)pb2); /* a -> b+128 */
    l.blobs[a].data[0] = 0x42;
    assert_int_equal(loader_add_pointer(&l, a, 4, 4, b), 0);
    assert_int_equal(loader_add_checksum(&l, a, 8, 0, 20), 0);
    /* invalid commands are refused */
    assert_int_equal(loader_add_pointer(&l, a, 18, 4, b), -1);
    assert_int_equal(loader_add_pointer(&l, a, 0, 3, b), -1);
    assert_int_equal(loader_add_checksum(&l, a, 30, 0, 20), -1);

    uint64_t addr[2] = {0xE0000, 0x7FF0000};
    uint8_t *img[2];
    assert_int_equal(loader_link(&l, addr, img), 0);
    assert_int_equal(get_le32(img[0] + 4), 0x7FF0000 + 128);
    uint8_t sum = 0;
    for (int i = 0; i < 20; i++)
        sum = (uint8_t)(sum + img[0][i]);
    assert_int_equal(sum, 0);
    free(img[0]);
    free(img[1]);

    /* a misaligned placement is refused */
    addr[1] = 0x7FF0010;
    assert_int_equal(loader_link(&l, addr, img), -1);

    uint8_t *ser;
    size_t len;
    assert_int_equal(loader_serialize(&l, &ser, &len), 0);
    assert_int_equal(len, 4 * 128);
    assert_int_equal(get_le32(ser), 1);
    assert_string_equal((char *)ser + 4, "etc/a");
    assert_int_equal(get_le32(ser + 60), 16);
    assert_int_equal(ser[64], 2);
    assert_int_equal(get_le32(ser + 256), 2);
    assert_string_equal((char *)ser + 256 + 4, "etc/a");
    assert_string_equal((char *)ser + 256 + 60, "etc/b");
    assert_int_equal(get_le32(ser + 256 + 116), 4);
    assert_int_equal(ser[256 + 120], 4);
    assert_int_equal(get_le32(ser + 384), 3);
    assert_int_equal(get_le32(ser + 384 + 60), 8);
    assert_int_equal(get_le32(ser + 384 + 68), 20);
    free(ser);
    loader_free(&l);
}

static void test_pointer_overflowing_field(void **state)
{
    struct table_loader l;
    loader_init(&l);
    int a = loader_new_blob(&l, "a", 16, LOADER_ZONE_HIGH);
    int b = loader_new_blob(&l, "b", 16, LOADER_ZONE_HIGH);
    loader_reserve(&l, a, 4, 1);
    loader_reserve(&l, b, 4, 1);
    assert_int_equal(loader_add_pointer(&l, a, 0, 2, b), 0);
    uint64_t addr[2] = {0, 0x10000};
    uint8_t *img[2];
    assert_int_equal(loader_link(&l, addr, img), -1);
    loader_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_pointer_and_checksum),
        cmocka_unit_test(test_pointer_overflowing_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
