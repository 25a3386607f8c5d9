/* The i440FX/PIIX3/PIIX4 identities firmware and operating systems
 * recognise: host bridge 00:00.0, ISA bridge 00:01.0 with the PIRQ
 * routers, and the ACPI PM function 00:01.3. They carry configuration
 * registers only; the PM block's ports are a separate device (hw/acpi_pm). */
#ifndef KVMPC_PIIX_H
#define KVMPC_PIIX_H

#include <stdbool.h>

#include "platform/pci.h"

struct piix {
    struct pci_dev host_bridge;
    struct pci_dev isa_bridge;
    struct pci_dev pm;
};

/* Plugs the three functions into h. With preset_routes (direct boot, no
 * firmware to do it) the PIRQ routers, the PM function's interrupt line
 * and its SMBus base start as firmware would leave them. */
int piix_init(struct piix *p, struct pci_host *h, bool preset_routes);

#endif
