/* ACPI tables: RSDP, XSDT, FADT, FACS, DSDT, MADT. */
#ifndef KVMPC_ACPI_H
#define KVMPC_ACPI_H

#include "platform/machine_info.h"
#include "platform/table_loader.h"

#define ACPI_RSDP_FILE "etc/acpi/rsdp"
#define ACPI_TABLES_FILE "etc/acpi/tables"

/* Builds every table into two blobs of l: ACPI_RSDP_FILE (zone FSEG,
 * align 16, the RSDP only) and ACPI_TABLES_FILE (zone HIGH, align 64, FACS
 * first), with the pointer and checksum commands that link them.
 * Returns 0 or -1 (allocation failure). */
int acpi_build(const struct machine_info *mi, struct table_loader *l);

/* _S5 sleep type written to PM1a_CNT.SLP_TYP for power-off. */
#define ACPI_S5_SLP_TYP 0

#endif
