/* poweroff and reset: the FADT and DSDT describe how; the VMM's exit
 * status says whether it worked (0 after power-off, 2 after reset). */
#include "kit.h"

#define MPS_LEVEL_HIGH 0x0D /* trigger level (3 << 2), polarity high (1) */

/* The PM timer (3.579545 MHz, 24 or 32 bits) measures a PIT one-shot. */
static void check_pm_timer(const struct acpi_info *ai)
{
    const uint32_t shot_us = 50000, pm_hz = 3579545;
    uint32_t mask = ai->fadt_flags & (1u << 8) ? 0xFFFFFFFFu : 0xFFFFFFu;
    uint16_t tmr = (uint16_t)ai->pm_tmr;
    uint32_t t0 = inl(tmr), ticks;
    uint64_t us;

    pit_delay_us(shot_us);
    ticks = (inl(tmr) - t0) & mask;
    us = (uint64_t)ticks * 1000000u / pm_hz;
    kit_check(us >= shot_us / 2 && us <= 20 * shot_us, "pm-timer",
              "port 0x%x measured %u us of PIT time as %lu us", tmr, shot_us, us);
}

void test_poweroff(const struct acpi_info *ai)
{
    const struct acpi_madt_info *m = &ai->madt_info;

    kit_check(ai->s5_found, "acpi-s5", "\\_S5 SLP_TYP a=%u b=%u",
              ai->s5_typ_a, ai->s5_typ_b);
    kit_check(ai->pm1a_cnt == LAYOUT_PORT_PM1A_CNT, "fadt-pm1a-cnt",
              "PM1a_CNT 0x%x, PM1b_CNT 0x%x", ai->pm1a_cnt, ai->pm1b_cnt);
    if (kit_check(ai->pm_tmr == LAYOUT_PORT_PM_TMR, "fadt-pm-tmr",
                  "PM_TMR 0x%x", ai->pm_tmr))
        check_pm_timer(ai);
    /* The SCI is ISA IRQ 9, wired level/active high (an override says so). */
    kit_check(ai->sci_int == LAYOUT_GSI_SCI &&
                  m->isa_gsi[LAYOUT_GSI_SCI] == LAYOUT_GSI_SCI &&
                  (m->isa_flags[LAYOUT_GSI_SCI] & 0x0F) == MPS_LEVEL_HIGH,
              "fadt-sci", "SCI %u -> GSI %u flags 0x%x", ai->sci_int,
              m->isa_gsi[LAYOUT_GSI_SCI], m->isa_flags[LAYOUT_GSI_SCI]);
    /* kit_done() powers off when every check passed. */
}

void test_reset(const struct acpi_info *ai)
{
    bool ok = kit_check(ai->reset_supported && ai->reset_reg.space == 1 &&
                            ai->reset_reg.addr == LAYOUT_PORT_RESET_CONTROL,
                        "fadt-reset-reg",
                        "supported %u space %u addr 0x%lx value 0x%x",
                        ai->reset_supported, ai->reset_reg.space,
                        ai->reset_reg.addr, ai->reset_value);

    if (!ok || kit_failures())
        return;
    acpi_reset(ai);
    pit_delay_us(1000000);
    kit_check(false, "reset", "still running 1 s after the reset write");
}
