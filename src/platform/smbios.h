/* SMBIOS 2.8 structures and entry point. */
#ifndef KVMPC_SMBIOS_H
#define KVMPC_SMBIOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/machine_info.h"

#define SMBIOS_ANCHOR_LEN 31
#define SMBIOS_ANCHOR_FILE "etc/smbios/smbios-anchor"
#define SMBIOS_TABLES_FILE "etc/smbios/smbios-tables"

struct smbios_tables {
    uint8_t anchor[SMBIOS_ANCHOR_LEN]; /* "_SM_" 2.8, address 0, checksums 0 */
    uint8_t *tables;                   /* malloc'ed structure table */
    size_t len;
};

/* Types 0 (only with include_bios: firmware adds its own otherwise), 1, 3,
 * 4 per socket, 16, 17, 19, 32, 127. Returns 0 or -1. */
int smbios_build(const struct machine_info *mi, bool include_bios,
                 struct smbios_tables *out);
void smbios_free(struct smbios_tables *t);

/* Completes the anchor for tables placed at table_addr (direct boot):
 * address, structure count, max structure size and both checksums. */
void smbios_finish_anchor(const struct smbios_tables *t, uint32_t table_addr,
                          uint8_t anchor[SMBIOS_ANCHOR_LEN]);

#endif
