/* ACPI tables: RSDP, RSDT, XSDT, FADT, FACS, DSDT, MADT. */
#ifndef KVMPC_ACPI_H
#define KVMPC_ACPI_H

#include "platform/machine_info.h"
#include "platform/table_loader.h"

#define ACPI_RSDP_FILE "etc/acpi/rsdp"
#define ACPI_TABLES_FILE "etc/acpi/tables"

/* What the generator can describe (processor object names C000-CFFF);
 * the machine itself is limited to LAYOUT_MAX_CPUS. */
#define ACPI_MAX_CPUS 4096

/* Builds every table into two blobs of l: ACPI_RSDP_FILE (zone FSEG,
 * align 16, the RSDP only) and ACPI_TABLES_FILE (zone HIGH, align 64, FACS
 * first), with the pointer and checksum commands that link them.
 * Returns 0 or -1 (allocation failure, ncpus 0 or above ACPI_MAX_CPUS). */
int acpi_build(const struct machine_info *mi, struct table_loader *l);

/* Direct boot: the guest address of each blob of l, packed in creation
 * order from LAYOUT_ACPI_START (the RSDP first), each at its alignment;
 * pass them to loader_link(). Returns 0, or -1 when they do not fit in
 * LAYOUT_ACPI_SIZE. */
int acpi_direct_addresses(const struct table_loader *l,
                          uint64_t addr[LOADER_MAX_BLOBS]);

/* _S5 sleep type written to PM1a_CNT.SLP_TYP for power-off. */
#define ACPI_S5_SLP_TYP 0
/* The FADT reset register: this value written to
 * LAYOUT_PORT_RESET_CONTROL resets the machine. */
#define ACPI_RESET_VALUE 0x06

#endif
