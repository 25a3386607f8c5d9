#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include "hw/debugcon.h"

static void test_reads_signature(void **state)
{
    struct debugcon d;
    debugcon_init(&d, -1);
    uint8_t v = 0;
    debugcon_bus_ops.read(&d, 0, &v, 1);
    assert_int_equal(v, 0xE9);
}

static void test_writes_reach_the_fd(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    struct debugcon d;
    debugcon_init(&d, p[1]);
    for (const char *s = "SeaBIOS\n"; *s; s++)
        debugcon_bus_ops.write(&d, 0, s, 1);
    char buf[16] = {0};
    assert_int_equal(read(p[0], buf, sizeof(buf)), 8);
    assert_string_equal(buf, "SeaBIOS\n");
    close(p[0]);
    /* A reader that went away loses output, nothing else (kvmpc, like
     * this test, ignores SIGPIPE). */
    debugcon_bus_ops.write(&d, 0, "x", 1);
    close(p[1]);
}

static void test_no_fd_discards(void **state)
{
    struct debugcon d;
    debugcon_init(&d, -1);
    debugcon_bus_ops.write(&d, 0, "x", 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_signature),
        cmocka_unit_test(test_writes_reach_the_fd),
        cmocka_unit_test(test_no_fd_discards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
