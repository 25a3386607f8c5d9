/* Intel MultiProcessor table (direct boot only; firmware builds its own). */
#ifndef KVMPC_MPTABLE_H
#define KVMPC_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "platform/machine_info.h"

/* Writes the floating pointer followed by the configuration table, as
 * they must appear at guest address base, into buf. Returns the length
 * used, or 0 if cap is too small or the CPUs do not fit 8-bit APIC IDs. */
size_t mptable_build(const struct machine_info *mi, uint32_t base,
                     uint8_t *buf, size_t cap);

#endif
