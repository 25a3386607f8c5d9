/* poweroff and reset: the FADT and DSDT describe how; the VMM's exit
 * status says whether it worked (0 after power-off, 2 after reset). */
#include "kit.h"

#define MPS_LEVEL_HIGH 0x0D /* trigger level (3 << 2), polarity high (1) */

void test_poweroff(const struct acpi_info *ai)
{
    const struct acpi_madt_info *m = &ai->madt_info;

    kit_check(ai->s5_found, "acpi-s5", "\\_S5 SLP_TYP a=%u b=%u",
              ai->s5_typ_a, ai->s5_typ_b);
    kit_check(ai->pm1a_cnt == LAYOUT_PORT_PM1A_CNT, "fadt-pm1a-cnt",
              "PM1a_CNT 0x%x, PM1b_CNT 0x%x", ai->pm1a_cnt, ai->pm1b_cnt);
    kit_check(ai->pm_tmr == LAYOUT_PORT_PM_TMR, "fadt-pm-tmr", "PM_TMR 0x%x",
              ai->pm_tmr);
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
