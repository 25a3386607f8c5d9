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
 * or endless. The ACPI PM timer (3.579545 MHz) is the independent witness
 * and bounds the wait to 20 times the one-shot. */
static bool check_timers(const struct acpi_info *ai)
{
    const uint32_t shot_us = 50000, pm_hz = 3579545;
    uint32_t mask = ai->fadt_flags & (1u << 8) ? 0xFFFFFFFFu : 0xFFFFFFu;
    uint16_t tmr = (uint16_t)ai->pm_tmr;
    uint32_t t0, ticks = 0;
    bool low_at_start, done = false;
    uint64_t us;

    pit_one_shot(shot_us);
    t0 = inl(tmr);
    low_at_start = !pit_one_shot_done();
    for (unsigned spins = 0; !done && spins < 1000000u; spins++) {
        done = pit_one_shot_done();
        ticks = (inl(tmr) - t0) & mask;
        if ((uint64_t)ticks * 1000000u > (uint64_t)20 * shot_us * pm_hz)
            break;
    }
    us = (uint64_t)ticks * 1000000u / pm_hz;
    return kit_check(low_at_start && done && us >= shot_us / 2, "timers",
                     "PIT channel 2 one-shot of %u us %s after %lu us by the "
                     "PM timer at 0x%x (OUT2 %s when armed)",
                     shot_us, done ? "ran out" : "still running", us, tmr,
                     low_at_start ? "low" : "already high");
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
        if (check_timers(&acpi))
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
