/* Temporary stand-ins until the table generators land. */
#include <string.h>

#include "platform/acpi.h"
#include "platform/mptable.h"
#include "platform/smbios.h"

int acpi_build(const struct machine_info *mi, struct table_loader *l)
{
    int r = loader_new_blob(l, ACPI_RSDP_FILE, 16, LOADER_ZONE_FSEG);
    int t = loader_new_blob(l, ACPI_TABLES_FILE, 64, LOADER_ZONE_HIGH);
    loader_reserve(l, (unsigned)r, 36, 1);
    loader_reserve(l, (unsigned)t, 64, 1);
    return 0;
}

int smbios_build(const struct machine_info *mi, bool include_bios,
                 struct smbios_tables *out)
{
    memset(out, 0, sizeof(*out));
    return 0;
}

void smbios_free(struct smbios_tables *t) {}

void smbios_finish_anchor(const struct smbios_tables *t, uint32_t table_addr,
                          uint8_t anchor[SMBIOS_ANCHOR_LEN])
{
    memset(anchor, 0, SMBIOS_ANCHOR_LEN);
}

size_t mptable_build(const struct machine_info *mi, uint32_t base,
                     uint8_t *buf, size_t cap)
{
    return 1;
}
