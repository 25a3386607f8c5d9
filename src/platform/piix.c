#include "platform/piix.h"

#include <string.h>

#include "util.h"

#define INTEL_VENDOR 0x8086
#define I440FX_DEVICE 0x1237
#define PIIX3_ISA_DEVICE 0x7000
#define PIIX4_PM_DEVICE 0x7113
/* Subsystem of the QEMU-compatible platform: firmware takes it as "a
 * virtual machine whose fw_cfg describes everything". */
#define PLATFORM_SUBSYS_VENDOR 0x1AF4
#define PLATFORM_SUBSYS_ID 0x1100

#define I440FX_PAM0 0x59
#define I440FX_PAM_COUNT 7
#define I440FX_SMRAM 0x72
#define PAM_RAM_READ 0x10 /* "shadow RAM present": firmware skips its copy */

#define PIIX_PIRQ_ROUTE 0x60
#define PIIX_ROUTE_DISABLED 0x80

#define PIIX4_PMBASE 0x40
#define PIIX4_DEVACTB 0x58
#define PIIX4_APMC_EN 0x02 /* byte 0x5B bit 1: firmware then skips SMM setup */
#define PIIX4_PMREGMISC 0x80
#define PIIX4_SMBBASE 0x90
#define PIIX4_SMBHSTCFG 0xD2
#define SMBHSTCFG_ENABLE_IRQ9 0x09 /* host enabled, interrupt select IRQ9 */

static void host_bridge_init(struct pci_dev *d)
{
    pci_dev_init(d, "i440fx", INTEL_VENDOR, I440FX_DEVICE, 0x060000, 0x02,
                 PLATFORM_SUBSYS_VENDOR, PLATFORM_SUBSYS_ID);
    /* PAM registers read back what firmware writes; guest RAM below 1 MiB
     * is always plain RAM holding the firmware image. */
    d->cfg[I440FX_PAM0] = PAM_RAM_READ;
    memset(&d->wmask[I440FX_PAM0], 0xFF, I440FX_PAM_COUNT);
    d->cfg[I440FX_SMRAM] = 0x02;
}

static void isa_bridge_init(struct pci_dev *d, bool preset_routes)
{
    static const uint8_t default_irqs[] = LAYOUT_PIRQ_DEFAULT_IRQS;
    pci_dev_init(d, "piix3-isa", INTEL_VENDOR, PIIX3_ISA_DEVICE, 0x060100,
                 0x00, PLATFORM_SUBSYS_VENDOR, PLATFORM_SUBSYS_ID);
    d->cfg[PCI_HEADER_TYPE] = 0x80; /* multi-function: the PM is fn 3 */
    for (unsigned i = 0; i < LAYOUT_PIRQ_COUNT; i++) {
        d->cfg[PIIX_PIRQ_ROUTE + i] =
            preset_routes ? default_irqs[i] : PIIX_ROUTE_DISABLED;
        d->wmask[PIIX_PIRQ_ROUTE + i] = 0x8F;
    }
}

static void pm_init(struct pci_dev *d, bool preset_routes)
{
    pci_dev_init(d, "piix4-pm", INTEL_VENDOR, PIIX4_PM_DEVICE, 0x068000, 0x03,
                 PLATFORM_SUBSYS_VENDOR, PLATFORM_SUBSYS_ID);
    pci_dev_set_intx_pin(d, 1); /* INTA, wired to the SCI */
    if (preset_routes)
        d->cfg[PCI_INTERRUPT_LINE] = LAYOUT_GSI_SCI;
    /* The PM block is fixed where firmware would move it (layout.h). */
    put_le32(&d->cfg[PIIX4_PMBASE], LAYOUT_PORT_PM_BASE | 1);
    d->cfg[PIIX4_DEVACTB + 3] = PIIX4_APMC_EN;
    d->cfg[PIIX4_PMREGMISC] = 1;
    d->wmask[PIIX4_PMREGMISC] = 0x01;
    put_le32(&d->wmask[PIIX4_SMBBASE], 0xFFF0);
    d->wmask[PIIX4_SMBHSTCFG] = 0xFF;
    /* Firmware gives the SMBus controller its ports and enables it;
     * without, Linux's i2c-piix4 logs an error asking for a BIOS upgrade. */
    if (preset_routes) {
        put_le32(&d->cfg[PIIX4_SMBBASE], LAYOUT_PORT_SMBUS_BASE | 1);
        d->cfg[PIIX4_SMBHSTCFG] = SMBHSTCFG_ENABLE_IRQ9;
    }
}

int piix_init(struct piix *p, struct pci_host *h, bool preset_routes)
{
    host_bridge_init(&p->host_bridge);
    isa_bridge_init(&p->isa_bridge, preset_routes);
    pm_init(&p->pm, preset_routes);
    if (pci_host_add(h, &p->host_bridge, LAYOUT_PCI_HOST_BRIDGE) ||
        pci_host_add(h, &p->isa_bridge, LAYOUT_PCI_ISA_BRIDGE) ||
        pci_host_add(h, &p->pm, LAYOUT_PCI_PM)) {
        report_error("PCI chipset functions collide");
        return -1;
    }
    pci_host_set_pirq_router(h, &p->isa_bridge);
    return 0;
}
