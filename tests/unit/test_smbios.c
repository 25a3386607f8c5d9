/* SMBIOS tables, decoded by dmidecode from a dump file in the layout
 * `dmidecode --dump-bin` writes: entry point at 0, structures at 0x20. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "platform/layout.h"
#include "platform/smbios.h"
#include "tools.h"
#include "util.h"

#define DUMP_TABLE_ADDR 0x20

static const uint8_t test_uuid[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
                                      0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB,
                                      0xCC, 0xDD, 0xEE, 0xFF};
#define TEST_UUID_TEXT "00112233-4455-6677-8899-AABBCCDDEEFF"

struct smbios_case {
    unsigned ncpus;
    uint64_t ram;
    bool bios;
    const char *name;
    /* what dmidecode must print */
    unsigned structures;
    const char *dimm_size, *low_range, *high_range;
};

static uint8_t sum8(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static void check_anchor(const struct smbios_tables *t, unsigned count)
{
    const uint8_t *a = t->anchor;
    assert_memory_equal(a, "_SM_", 4);
    assert_int_equal(a[5], SMBIOS_ANCHOR_LEN);
    assert_int_equal(a[6], 2);
    assert_int_equal(a[7], 8);
    assert_memory_equal(a + 0x10, "_DMI_", 5);
    /* firmware checks that the table length matches the tables file */
    assert_int_equal(get_le16(a + 0x16), t->len);
    assert_int_equal(get_le32(a + 0x18), 0);

    uint8_t done[SMBIOS_ANCHOR_LEN];
    smbios_finish_anchor(t, 0x12345670, done);
    assert_int_equal(sum8(done, SMBIOS_ANCHOR_LEN), 0);
    assert_int_equal(sum8(done + 0x10, 15), 0);
    assert_int_equal(get_le32(done + 0x18), 0x12345670);
    assert_int_equal(get_le16(done + 0x1C), count);
    assert_int_equal(get_le16(done + 0x16), t->len);
    assert_true(get_le16(done + 0x08) > 0 && get_le16(done + 0x08) < t->len);
}

/* Every "Handle 0x...." line is distinct; type 0, when present, is 0. */
static unsigned check_handles(const char *out)
{
    unsigned handles[64], n = 0;
    for (const char *p = strstr(out, "Handle 0x"); p;
         p = strstr(p + 1, "Handle 0x")) {
        assert_true(n < 64);
        handles[n] = (unsigned)strtoul(p + 7, NULL, 16);
        for (unsigned i = 0; i < n; i++)
            assert_int_not_equal(handles[i], handles[n]);
        if (strncmp(strchr(p, ','), ", DMI type 0,", 13) == 0)
            assert_int_equal(handles[n], 0);
        else
            assert_int_not_equal(handles[n], 0);
        n++;
    }
    return n;
}

static void assert_has(const char *out, const char *want)
{
    if (!strcasestr(out, want)) {
        print_error("%s\n", out);
        fail_msg("dmidecode output (above) lacks \"%s\"", want);
    }
}

static void check_bios(const char *out)
{
    assert_has(out, "BIOS Information\n\tVendor: kvmpc\n");
    assert_has(out, "\tVersion: " KVMPC_VERSION "\n");
    const char *d = strstr(out, "Release Date: ");
    assert_non_null(d);
    unsigned mm, dd, yyyy;
    char end;
    assert_int_equal(sscanf(d, "Release Date: %2u/%2u/%4u%c", &mm, &dd,
                            &yyyy, &end), 4);
    assert_true(d[14 + 2] == '/' && d[14 + 5] == '/' && end == '\n');
    assert_true(mm >= 1 && mm <= 12 && dd >= 1 && dd <= 31 && yyyy > 2000);
    assert_has(out, "PCI is supported");
    assert_has(out, "ACPI is supported");
    assert_has(out, "System is a virtual machine");
}

static void check_decoded(const struct smbios_case *c, const char *out)
{
    char want[96];
    assert_has(out, "SMBIOS 2.8 present.");
    assert_null(strstr(out, "Wrong"));
    assert_null(strstr(out, "Invalid"));
    assert_null(strstr(out, "BAD INDEX"));
    assert_null(strstr(out, "OUT OF SPEC"));
    assert_int_equal(check_handles(out), c->structures);
    if (c->bios)
        check_bios(out);
    else
        assert_null(strstr(out, "BIOS Information"));
    assert_has(out, "System Information\n\tManufacturer: kvmpc\n\tProduct Name: ");
    assert_has(out, "UUID: " TEST_UUID_TEXT);
    if (c->name) {
        snprintf(want, sizeof(want), "Serial Number: %s\n", c->name);
        assert_has(out, want);
    }
    assert_has(out, "Chassis Information");
    assert_int_equal(count_str(out, "Processor Information"), 1);
    snprintf(want, sizeof(want), "Core Count: %u\n", c->ncpus);
    assert_has(out, want);
    snprintf(want, sizeof(want), "Core Enabled: %u\n", c->ncpus);
    assert_has(out, want);
    snprintf(want, sizeof(want), "Thread Count: %u\n", c->ncpus);
    assert_has(out, want);
    assert_has(out, c->dimm_size);
    assert_has(out, c->low_range);
    if (c->high_range)
        assert_has(out, c->high_range);
    assert_int_equal(count_str(out, "Memory Array Mapped Address"),
                     c->high_range ? 2 : 1);
    assert_has(out, "System Boot Information");
    assert_has(out, "End Of Table");
}

static void test_dmidecode(void **state)
{
    const struct smbios_case *c = *state;
    const char *dmidecode = tool_path("DMIDECODE");
    struct machine_info mi = {.ncpus = c->ncpus, .ram_size = c->ram,
                              .name = c->name};
    memcpy(mi.uuid, test_uuid, sizeof(test_uuid));
    struct smbios_tables t;
    assert_int_equal(smbios_build(&mi, c->bios, &t), 0);
    check_anchor(&t, c->structures);

    size_t len = DUMP_TABLE_ADDR + t.len;
    uint8_t *dump = calloc(1, len);
    assert_non_null(dump);
    smbios_finish_anchor(&t, DUMP_TABLE_ADDR, dump);
    memcpy(dump + DUMP_TABLE_ADDR, t.tables, t.len);
    char *dir = tool_mkdtemp();
    tool_write(dir, "dmi.bin", dump, len);
    char *out;
    int rc = tool_run(dir, dmidecode, "--from-dump dmi.bin", &out);
    if (rc != 0)
        fail_msg("dmidecode (rc %d):\n%s", rc, out);
    char want[64];
    snprintf(want, sizeof(want), "%u structures occupying %zu bytes.",
             c->structures, t.len);
    assert_has(out, want);
    check_decoded(c, out);
    free(out);
    tool_rmdir(dir);
    free(dump);
    smbios_free(&t);
}

int main(void)
{
    static const struct smbios_case cases[] = {
        {4, 6 * GiB, true, "vm-test", 10, "Size: 6 GB",
         "Range Size: 3 GB", "Starting Address: 0x00100000000"},
        {4, 6 * GiB, false, "vm-test", 9, "Size: 6 GB", "Range Size: 3 GB",
         "Ending Address: 0x001BFFFFFFF"},
        {1, 256 * MiB, true, NULL, 9, "Size: 256 MB",
         "Ending Address: 0x0000FFFFFFF", NULL},
        {64, 48 * GiB, true, "big", 10, "Size: 48 GB",
         "Range Size: 3 GB", "Range Size: 45 GB"},
    };
#define CASE(name, i) {name, test_dmidecode, NULL, NULL, (void *)&cases[i]}
    const struct CMUnitTest tests[] = {
        CASE("type 0, 4 cpus, 6 GiB", 0),
        CASE("no type 0, 4 cpus, 6 GiB", 1),
        CASE("type 0, 1 cpu, 256 MiB, no name", 2),
        CASE("type 0, 64 cpus, 48 GiB", 3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
