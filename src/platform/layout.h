/* The guest's view of the machine: every guest-physical address, I/O port,
 * GSI and PCI slot that devices, boot loaders and table generators share.
 * No address, port or GSI literal belongs anywhere else in the tree. */
#ifndef KVMPC_LAYOUT_H
#define KVMPC_LAYOUT_H

#include <stdint.h>

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/* ---- Guest-physical memory ------------------------------------------ */

/* Real-mode area. Direct boot only: with firmware, SeaBIOS owns 0-1 MiB. */
#define LAYOUT_BOOT_GDT 0x500ULL        /* 4 descriptors for direct entry */
#define LAYOUT_BOOT_STACK_TOP 0x5000ULL /* scratch stack for test/entry code */
#define LAYOUT_PVH_INFO 0x6000ULL       /* hvm_start_info, modlist, memmap */
#define LAYOUT_PVH_INFO_SIZE 0x1000ULL
#define LAYOUT_ZERO_PAGE 0x7000ULL      /* bzImage boot_params */
#define LAYOUT_PAGE_TABLES 0x9000ULL    /* PML4, PDPT, 4 x PD: 6 pages */
#define LAYOUT_PAGE_TABLES_SIZE 0x6000ULL
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL   /* bytes incl. NUL */

/* Top of conventional memory; the EBDA sits just below 640 KiB. */
#define LAYOUT_EBDA_START 0x9FC00ULL
#define LAYOUT_LOW_RAM_END 0xA0000ULL
#define LAYOUT_VGA_START 0xA0000ULL
#define LAYOUT_VGA_END 0xC0000ULL /* legacy VGA window, forwarded to PCI */
#define LAYOUT_BIOS_AREA_START 0xE0000ULL /* reserved in e820 (direct boot) */

/* Direct boot: tables the VMM places in the BIOS area, where an OS scans. */
#define LAYOUT_ACPI_START 0xE0000ULL /* RSDP first, then the other tables */
#define LAYOUT_ACPI_SIZE 0x10000ULL
#define LAYOUT_SMBIOS_START 0xF0000ULL /* entry point, then structures */
#define LAYOUT_SMBIOS_SIZE 0x8000ULL
#define LAYOUT_MPTABLE_START 0xF8000ULL /* floating pointer, then config */
#define LAYOUT_MPTABLE_SIZE 0x7000ULL

#define LAYOUT_HIGH_MEM_START 0x100000ULL /* 1 MiB */

/* Guest RAM below 4 GiB ends at min(RAM, 3 GiB); the rest lives above
 * 4 GiB. The PCI hole then starts at 2 or 3 GiB, so 4 GiB minus its start
 * is a power of two, as firmware's MTRR setup expects. */
#define LAYOUT_LOWMEM_MAX (3 * GiB)
#define LAYOUT_MEM_ABOVE_4G 0x100000000ULL

#define LAYOUT_PCI_MMIO32_END 0xFEC00000ULL /* BARs end below the IOAPIC */
#define LAYOUT_IOAPIC_BASE 0xFEC00000ULL
#define LAYOUT_IOAPIC_SIZE 0x1000ULL
#define LAYOUT_LAPIC_BASE 0xFEE00000ULL
#define LAYOUT_LAPIC_SIZE 0x1000ULL
/* KVM_SET_TSS_ADDR needs 3 pages, the identity map one more; both are
 * reserved in every memory map we hand out. */
#define LAYOUT_KVM_TSS 0xFEFFC000ULL
#define LAYOUT_KVM_IDENTITY_MAP 0xFEFFF000ULL
#define LAYOUT_KVM_PRIVATE_SIZE 0x4000ULL

/* Firmware images are linked so that their last byte is 0xFFFFF; the
 * pristine copy also sits right below 4 GiB (reset vector). */
#define LAYOUT_BIOS_LOW_END 0x100000ULL
#define LAYOUT_4G 0x100000000ULL
#define LAYOUT_BIOS_RESERVED_SIZE (256 * KiB) /* firmware reserves this much below 4G */

/* 64-bit PCI window above RAM (1 GiB aligned). */
#define LAYOUT_PCI_MMIO64_ALIGN GiB
#define LAYOUT_PCI_MMIO64_SIZE (64 * GiB)

#define LAYOUT_MEM_MIN (32 * MiB)
#define LAYOUT_MEM_MAX (1024 * GiB)

/* Direct-boot kernel placement. */
#define LAYOUT_KERNEL_DEFAULT_LOAD 0x1000000ULL /* 16 MiB, bzImage pref_address */

/* ---- I/O ports -------------------------------------------------------- */

#define LAYOUT_PORT_I8042_DATA 0x60
#define LAYOUT_PORT_I8042_CMD 0x64
#define LAYOUT_PORT_RTC 0x70 /* index, data at +1 */
#define LAYOUT_PORT_RTC_LEN 2
#define LAYOUT_CMOS_CENTURY 0x32 /* CMOS index of the century byte (FADT) */
#define LAYOUT_PORT_POST 0x80
#define LAYOUT_PORT_A20 0x92
#define LAYOUT_PORT_PCI_CONFIG_ADDR 0xCF8
#define LAYOUT_PORT_RESET_CONTROL 0xCF9
#define LAYOUT_PORT_PCI_CONFIG_DATA 0xCFC
#define LAYOUT_PORT_PCI_CONFIG_LEN 8 /* 0xCF8-0xCFF, not forwarded to PCI */
#define LAYOUT_PORT_COM1 0x3F8
#define LAYOUT_PORT_COM_LEN 8
#define LAYOUT_PORT_DEBUGCON 0x402
#define LAYOUT_PORT_FW_CFG 0x510 /* selector; data at +1 */
#define LAYOUT_PORT_FW_CFG_DMA 0x514 /* 8 bytes, big-endian address */
#define LAYOUT_PORT_FW_CFG_LEN 12

/* ACPI PM block of the PIIX4 PM function. Firmware moves pm_base to 0x600
 * whenever a table-loader exists, so that is where it lives for good. */
#define LAYOUT_PORT_PM_BASE 0x600
#define LAYOUT_PORT_PM1A_EVT (LAYOUT_PORT_PM_BASE + 0x0) /* STS 2, EN 2 */
#define LAYOUT_PORT_PM1A_EVT_LEN 4
#define LAYOUT_PORT_PM1A_CNT (LAYOUT_PORT_PM_BASE + 0x4)
#define LAYOUT_PORT_PM1A_CNT_LEN 2
#define LAYOUT_PORT_PM_TMR (LAYOUT_PORT_PM_BASE + 0x8)
#define LAYOUT_PORT_PM_TMR_LEN 4
#define LAYOUT_PORT_GPE0 (LAYOUT_PORT_PM_BASE + 0x20) /* STS 2, EN 2 */
#define LAYOUT_PORT_GPE0_LEN 4
#define LAYOUT_PORT_PM_LEN 0x40
#define LAYOUT_PORT_SMBUS_BASE (LAYOUT_PORT_PM_BASE + 0x100)

/* PCI I/O BARs: the root bridge forwards everything outside the legacy
 * range and the config ports. */
#define LAYOUT_PCI_IO_START 0xC000
#define LAYOUT_PCI_IO_END 0x10000

/* ---- Interrupts (GSI == ISA IRQ == IOAPIC pin under KVM's default routing) */

#define LAYOUT_IOAPIC_PINS 24
#define LAYOUT_IOAPIC_ID 0
#define LAYOUT_IOAPIC_GSI_BASE 0
#define LAYOUT_GSI_PIT 0
#define LAYOUT_GSI_KEYBOARD 1
#define LAYOUT_GSI_COM1 4
#define LAYOUT_GSI_RTC 8
#define LAYOUT_GSI_SCI 9
#define LAYOUT_GSI_MOUSE 12
/* PCI INTx goes through the PIIX PIRQ routers; these are the IRQs the
 * firmware programs (PIRQA..D) and the ones the links may take. */
#define LAYOUT_PIRQ_COUNT 4
/* PIIX3 route registers PIRQA..D at this offset of the ISA bridge's config
 * space: bit 7 disables the PIRQ, bits 3:0 select its ISA IRQ. */
#define LAYOUT_PIRQ_ROUTE_REG 0x60
#define LAYOUT_PIRQ_ROUTE_DISABLED 0x80
#define LAYOUT_PIRQ_ROUTE_IRQ_MASK 0x0F
#define LAYOUT_PIRQ_DEFAULT_IRQS {10, 10, 11, 11}
#define LAYOUT_PIRQ_POSSIBLE_IRQS {5, 10, 11}
/* ISA IRQs wired level/active-high (MADT overrides, ELCR). */
#define LAYOUT_LEVEL_IRQS {5, 9, 10, 11}

/* ---- PCI topology (bus 0) -------------------------------------------- */

#define LAYOUT_PCI_DEVFN(slot, fn) (((slot) << 3) | (fn))
#define LAYOUT_PCI_HOST_BRIDGE LAYOUT_PCI_DEVFN(0, 0)
#define LAYOUT_PCI_ISA_BRIDGE LAYOUT_PCI_DEVFN(1, 0)
#define LAYOUT_PCI_PM LAYOUT_PCI_DEVFN(1, 3)
#define LAYOUT_PCI_SLOT_ISA 1
#define LAYOUT_PCI_FIRST_DEVICE_SLOT 2
#define LAYOUT_PCI_SLOTS 32

/* ---- CPUs ---------------------------------------------------------------- */

#define LAYOUT_MAX_CPUS 64

/* RAM split helpers shared by memory setup, e820 and the tables. */
static inline uint64_t layout_lowmem(uint64_t ram)
{
    return ram < LAYOUT_LOWMEM_MAX ? ram : LAYOUT_LOWMEM_MAX;
}

static inline uint64_t layout_highmem(uint64_t ram)
{
    return ram - layout_lowmem(ram);
}

/* Where the firmware (and our _CRS) starts the 32-bit PCI window. */
static inline uint64_t layout_pci_hole_start(uint64_t ram)
{
    return layout_lowmem(ram) <= 2 * GiB ? 2 * GiB : 3 * GiB;
}

static inline uint64_t layout_pci_mmio64_start(uint64_t ram)
{
    uint64_t end = LAYOUT_MEM_ABOVE_4G + layout_highmem(ram);
    return (end + LAYOUT_PCI_MMIO64_ALIGN - 1) & ~(LAYOUT_PCI_MMIO64_ALIGN - 1);
}

#endif
