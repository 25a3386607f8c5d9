/* Common part of every guest run: announce the boot, load the ACPI
 * tables, run the tests named by "test=a,b,..." and stop the machine. */
#include "kit.h"

struct kit_boot kit_boot;
static char cmdline_copy[LAYOUT_CMDLINE_MAX];

long kit_boot_set_cmdline(uint64_t addr, uint64_t max)
{
    const char *src = (const char *)(uintptr_t)addr;

    kit_boot.cmdline_addr = addr;
    kit_boot.cmdline = "";
    if (max > sizeof(cmdline_copy))
        max = sizeof(cmdline_copy);
    if (!addr || addr >= LAYOUT_4G - max)
        return -1;
    for (uint64_t i = 0; i < max; i++) {
        cmdline_copy[i] = src[i];
        if (!src[i]) {
            kit_boot.cmdline = cmdline_copy;
            return (long)i;
        }
    }
    return -1;
}
static struct acpi_info acpi;
static bool acpi_ok;

struct kit_test {
    const char *name;
    void (*run)(const struct acpi_info *ai);
};

static const struct kit_test tests[] = {
    {"bootinfo", test_bootinfo},
    {"smp", test_smp},
    {"ioapic", test_ioapic},
    {"poweroff", test_poweroff},
    {"vblk", test_vblk},
    {"emulate", test_emulate},
    {"usermode", test_usermode},
    {"reset", test_reset}, /* last: it does not come back */
};

static void run_test(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
        if (!strncmp(tests[i].name, name, 64)) {
            tests[i].run(&acpi);
            return;
        }
    }
    kit_check(false, "select", "unknown test \"%s\"", name);
}

static void run_selected(void)
{
    char list[128];

    if (!cmdline_get("test", list, sizeof(list)))
        kit_fatal("no test=NAME[,NAME...] on the command line");
    for (char *p = list; *p;) {
        size_t n = 0;
        while (p[n] && p[n] != ',')
            n++;
        bool last = !p[n];
        p[n] = 0;
        run_test(p);
        p += last ? n : n + 1;
    }
}

/* Every delay and timeout of the kit runs on PIT channel 2 through port
 * 0x61; a port that does not follow the counter would make them all zero
 * or endless, so the tests only run when this check passes. */
static bool check_pit(void)
{
    const uint32_t shot_us = 50000, max_polls = 2000000;
    uint32_t polls = 0;
    bool low_at_start;

    pit_one_shot(shot_us);
    low_at_start = !pit_one_shot_done();
    while (!pit_one_shot_done() && polls < max_polls)
        polls++;
    return kit_check(low_at_start && polls < max_polls, "pit-ch2",
                     "one-shot of %u us: OUT2 %s when armed, %s after %u polls",
                     shot_us, low_at_start ? "low" : "already high",
                     polls < max_polls ? "ran out" : "still running", polls);
}

void kit_main(void)
{
    kit_info("boot.protocol", "%s", kit_boot.protocol);
    kit_info("boot.cmdline", "\"%s\"", kit_boot.cmdline);
    idt_init();
    acpi_ok = acpi_load(&acpi);
    if (acpi_ok) {
        lapic_set_base(acpi.madt_info.lapic_addr);
        ioapic_set_base(acpi.madt_info.ioapic_addr);
        if (check_pit())
            run_selected();
    }
    kit_done();
}

void kit_done(void)
{
    unsigned failed = kit_failures();

    if (failed || !acpi_ok) {
        kit_printf("DONE FAIL %u\n", failed);
        kit_triple_fault();
    }
    kit_printf("DONE PASS\n");
    acpi_poweroff(&acpi);
    pit_delay_us(1000000);
    kit_fatal("still running 1 s after the ACPI power-off");
}
