/* ACPI fixed-hardware PM block (LAYOUT_PORT_PM_BASE, LAYOUT_PORT_PM_LEN
 * ports): PM1a event (STS write-1-to-clear, EN), PM1a control, the 24-bit
 * 3.579545 MHz PM timer, and GPE0 (STS, EN). Registers accept any access
 * width; a write touches only the bytes it covers.
 *
 * PM1_CNT: SCI_EN reads 1 always (there is no SMI_CMD, the machine is in
 * ACPI mode from reset). SLP_EN with SLP_TYP == ACPI_S5_SLP_TYP calls
 * poweroff_request; other sleep types are ignored (no S1-S4).
 *
 * The SCI is a level: (PM1_STS & PM1_EN) | (GPE0_STS & GPE0_EN). TMR_STS
 * (bit 23 of the timer toggled) is latched when the block is accessed;
 * TMR_EN has no timer of its own to raise the SCI between accesses (no
 * OS in use enables it).
 *
 * Locking: one mutex; poweroff_request is called without it. */
#ifndef KVMPC_HW_ACPI_PM_H
#define KVMPC_HW_ACPI_PM_H

#include <pthread.h>
#include <stdint.h>

#include "vm/bus.h"
#include "vm/irq.h"

struct acpi_pm_config {
    /* The guest asked for S5 (from a vCPU thread). */
    void (*poweroff_request)(void *opaque);
    void *opaque;
    /* Monotonic clock in ns; NULL means CLOCK_MONOTONIC. For tests. */
    int64_t (*clock_ns)(void *opaque);
    void *clock_opaque;
};

struct acpi_pm {
    pthread_mutex_t lock;
    struct acpi_pm_config cfg;
    struct irq_line *sci;
    uint16_t pm1_sts, pm1_en, pm1_cnt;
    uint16_t gpe0_sts, gpe0_en;
    int64_t timer_start_ns;
    uint64_t timer_half_periods; /* (ticks >> 23) when last looked at */
};

extern const struct bus_ops acpi_pm_bus_ops;

int acpi_pm_init(struct acpi_pm *pm, const struct acpi_pm_config *cfg,
                 struct irq_line *sci);
void acpi_pm_destroy(struct acpi_pm *pm);
/* System reset: status, enables and control cleared. */
void acpi_pm_reset(struct acpi_pm *pm);

/* A press of the power button: PWRBTN_STS, and the SCI if the OS enabled
 * PWRBTN_EN (an ACPI OS then shuts down cleanly). Any thread. */
void acpi_pm_power_button(struct acpi_pm *pm);
/* A general-purpose event (bit < 16) for future hot-plug sources. */
void acpi_pm_raise_gpe(struct acpi_pm *pm, unsigned bit);

#endif
