/* ACPI tables for the machine of machine_info.h (ACPI 6.x for the
 * structures; the revisions chosen per table are noted there).
 *
 * Decisions:
 *  - RSDP revision 2 with both an RSDT and an XSDT listing the same
 *    tables: 64-bit OSes follow the XSDT, 32-bit-only readers the RSDT.
 *  - FADT revision 4 (ACPI 3.0 layout, 244 bytes): enough for RESET_REG,
 *    and the first revision that defines the access size of generic
 *    addresses and the "VGA not present" boot flag. FIRMWARE_CTRL is the only FACS pointer (the spec requires
 *    X_FIRMWARE_CTRL to be zero then). DSDT and X_DSDT both point at the
 *    DSDT: firmware reads the 32-bit field, ACPICA the 64-bit one and only
 *    complains when the two differ. The X_ PM blocks repeat the 32-bit
 *    ones with matching widths.
 *  - Processors are Device (ACPI0007) objects: the Processor () term is
 *    deprecated since ACPI 6.0 and current iasl warns about it; Linux
 *    binds both through _UID = the MADT processor UID.
 *  - PCI INTx goes through the PIIX3 route registers and link devices, so
 *    the same routing serves SeaBIOS, its MP table, `noapic` and ACPI.
 *  - \_SB.PCI0 has _HID but no _ADR (see dsdt_pci0). */
#include "platform/acpi.h"

#include <stdio.h>
#include <string.h>

#include "platform/aml.h"
#include "platform/layout.h"
#include "platform/pci.h"
#include "util.h"

#define OEM_ID "KVMPC"
#define OEM_TABLE_ID "KVMPC"
#define OEM_REVISION 1
#define CREATOR_ID "KVMP"
#define CREATOR_REVISION 1

/* ---- Table plumbing ------------------------------------------------------ */

#define HDR_LEN 36
#define HDR_LENGTH 4
#define HDR_CHECKSUM 9

/* Appends len zero bytes (at align) to blob and stores their offset in
 * *off. The pointer stays valid until the next append. */
static uint8_t *append(struct table_loader *l, unsigned blob, size_t len,
                       size_t align, uint32_t *off)
{
    long o = loader_reserve(l, blob, len, align);
    if (o < 0)
        return NULL;
    *off = (uint32_t)o;
    return l->blobs[blob].data + o;
}

/* Appends a table with its header and fixed part (len bytes). */
static uint8_t *begin_table(struct table_loader *l, unsigned blob,
                            const char *sig, uint8_t rev, size_t len,
                            uint32_t *start)
{
    uint8_t *t = append(l, blob, len, 8, start);
    if (!t)
        return NULL;
    memcpy(t, sig, 4);
    t[8] = rev;
    copy_padded(t + 10, 6, OEM_ID, ' ');
    copy_padded(t + 16, 8, OEM_TABLE_ID, ' ');
    put_le32(t + 24, OEM_REVISION);
    memcpy(t + 28, CREATOR_ID, 4);
    put_le32(t + 32, CREATOR_REVISION);
    return t;
}

/* Sets the length to everything appended since start and emits the
 * checksum; call after every pointer command of the table. */
static int end_table(struct table_loader *l, unsigned blob, uint32_t start)
{
    uint32_t len = (uint32_t)(l->blobs[blob].len - start);
    put_le32(l->blobs[blob].data + start + HDR_LENGTH, len);
    return loader_add_checksum(l, blob, start + HDR_CHECKSUM, start, len);
}

/* A pointer field at blob+field that must hold the address of src_off
 * inside src_blob once linked. */
static int set_pointer(struct table_loader *l, unsigned blob, uint32_t field,
                       uint8_t size, unsigned src_blob, uint32_t src_off)
{
    uint8_t *p = l->blobs[blob].data + field;
    if (size == 8)
        put_le64(p, src_off);
    else
        put_le32(p, src_off);
    return loader_add_pointer(l, blob, field, size, src_blob);
}

/* ---- FACS ---------------------------------------------------------------- */

#define FACS_LEN 64
#define FACS_ALIGN 64
#define FACS_VERSION 1

static int build_facs(struct table_loader *l, unsigned tb, uint32_t *off)
{
    uint8_t *t = append(l, tb, FACS_LEN, FACS_ALIGN, off);
    if (!t)
        return -1;
    memcpy(t, "FACS", 4);
    put_le32(t + 4, FACS_LEN);
    t[32] = FACS_VERSION;
    return 0;
}

/* ---- DSDT ---------------------------------------------------------------- */

#define DSDT_REVISION 2 /* 64-bit integers */
#define PCI_BUS_MAX 0xFF
/* _STA: present (bit 0), enabled (1), shown in UI (2), functioning (3) */
#define STA_SHOWN 0x0F
#define STA_HIDDEN 0x0B
#define STA_DISABLED 0x09
#define PCI_SLOT_ALL_FUNCTIONS 0xFFFF
#define PCI_INTX_PINS 4
#define EXT_IRQ_FIRST_INTERRUPT 5 /* byte offset in the descriptor */
#define ISA_PATH "\\_SB.PCI0.ISA"

static const char *const link_names[LAYOUT_PIRQ_COUNT] = {"LNKA", "LNKB",
                                                          "LNKC", "LNKD"};
#define LINK_SCI "LNKS"

/* _ADR of a bus-0 function: device in the high word, function low. */
static uint32_t pci_adr(unsigned devfn)
{
    return (devfn >> 3) << 16 | (devfn & 7);
}

/* Name (name, <template>), for a finished resource template r. */
static void name_resources(struct aml *a, const char *name, struct aml *r)
{
    aml_res_end(r);
    if (r->failed)
        a->failed = true;
    aml_name_decl(a, name);
    aml_buffer(a, r->buf, r->len);
    aml_free(r);
}

static void name_int(struct aml *a, const char *name, uint64_t v)
{
    aml_name_decl(a, name);
    aml_int(a, v);
}

static void name_string(struct aml *a, const char *name, const char *s)
{
    aml_name_decl(a, name);
    aml_string(a, s);
}

static void name_eisaid(struct aml *a, const char *name, const char *id)
{
    aml_name_decl(a, name);
    aml_eisaid(a, id);
}

static void name_link_irqs(struct aml *a, const char *name,
                           const uint32_t *irqs, unsigned n)
{
    struct aml r;
    aml_init(&r);
    aml_res_interrupt_level_high(&r, irqs, n);
    name_resources(a, name, &r);
}

/* Method (_STA) { If (And (reg, 0x80)) { Return (0x09) } Return (0x0B) } */
static void link_sta(struct aml *a, const char *reg)
{
    aml_method(a, "_STA", 0, false);
    aml_if(a);
    aml_and(a), aml_name(a, reg), aml_int(a, LAYOUT_PIRQ_ROUTE_DISABLED),
        aml_no_target(a);
    aml_return(a), aml_int(a, STA_DISABLED);
    aml_end(a);
    aml_return(a), aml_int(a, STA_HIDDEN);
    aml_end(a);
}

/* Method (_DIS) { Or (reg, 0x80, reg) } */
static void link_dis(struct aml *a, const char *reg)
{
    aml_method(a, "_DIS", 0, false);
    aml_or(a), aml_name(a, reg), aml_int(a, LAYOUT_PIRQ_ROUTE_DISABLED),
        aml_name(a, reg);
    aml_end(a);
}

/* Method (_CRS, 0, Serialized) {
 *     Store (ResourceTemplate () { Interrupt (...) { 0 } }, Local0)
 *     CreateDWordField (Local0, 5, IRQV)
 *     If (LLess (reg, 0x80)) { Store (And (reg, 0x0F), IRQV) }
 *     Return (Local0)
 * }  -- IRQ 0 when disabled, which OSPM reads as "not routed". */
static void link_crs(struct aml *a, const char *reg)
{
    static const uint32_t none[1] = {0};
    struct aml r;
    aml_init(&r);
    aml_res_interrupt_level_high(&r, none, 1);
    aml_res_end(&r);

    aml_method(a, "_CRS", 0, true);
    aml_store(a), aml_buffer(a, r.buf, r.len), aml_local(a, 0);
    aml_create_dword_field(a), aml_local(a, 0),
        aml_int(a, EXT_IRQ_FIRST_INTERRUPT), aml_name(a, "IRQV");
    aml_if(a);
    aml_lless(a), aml_name(a, reg), aml_int(a, LAYOUT_PIRQ_ROUTE_DISABLED);
    aml_store(a);
    aml_and(a), aml_name(a, reg), aml_int(a, LAYOUT_PIRQ_ROUTE_IRQ_MASK),
        aml_no_target(a);
    aml_name(a, "IRQV");
    aml_end(a);
    aml_return(a), aml_local(a, 0);
    aml_end(a);
    if (r.failed)
        a->failed = true;
    aml_free(&r);
}

/* Method (_SRS, 1, Serialized) {
 *     CreateDWordField (Arg0, 5, IRQV)
 *     Store (IRQV, reg)   -- bit 7 clear: enabled
 * } */
static void link_srs(struct aml *a, const char *reg)
{
    aml_method(a, "_SRS", 1, true);
    aml_create_dword_field(a), aml_arg(a, 0),
        aml_int(a, EXT_IRQ_FIRST_INTERRUPT), aml_name(a, "IRQV");
    aml_store(a), aml_name(a, "IRQV"), aml_name(a, reg);
    aml_end(a);
}

/* Device (LNKx): PCI interrupt link over one PIIX3 route register. */
static void dsdt_link(struct aml *a, unsigned pirq)
{
    static const uint32_t possible[] = LAYOUT_PIRQ_POSSIBLE_IRQS;
    char reg[sizeof(ISA_PATH) + 5];
    snprintf(reg, sizeof(reg), ISA_PATH ".PRQ%c", 'A' + pirq);

    aml_device(a, link_names[pirq]);
    name_eisaid(a, "_HID", "PNP0C0F");
    name_int(a, "_UID", pirq);
    name_link_irqs(a, "_PRS", possible, ARRAY_SIZE(possible));
    link_sta(a, reg);
    link_dis(a, reg);
    link_crs(a, reg);
    link_srs(a, reg);
    aml_end(a);
}

/* Device (LNKS): the PM function's INTA, hard-wired to the SCI. */
static void dsdt_link_sci(struct aml *a)
{
    static const uint32_t sci[1] = {LAYOUT_GSI_SCI};
    aml_device(a, LINK_SCI);
    name_eisaid(a, "_HID", "PNP0C0F");
    name_int(a, "_UID", LAYOUT_PIRQ_COUNT);
    name_int(a, "_STA", STA_HIDDEN);
    name_link_irqs(a, "_PRS", sci, 1);
    name_link_irqs(a, "_CRS", sci, 1);
    aml_method(a, "_SRS", 1, false); /* nothing to route */
    aml_end(a);
    aml_end(a);
}

/* Name (_PRT, Package () { Package () { slot << 16 | 0xFFFF, pin, link,
 * 0 }, ... }) for every slot and pin, with the PIIX swizzle. */
static void dsdt_prt(struct aml *a)
{
    aml_name_decl(a, "_PRT");
    aml_package(a, LAYOUT_PCI_SLOTS * PCI_INTX_PINS);
    for (unsigned slot = 0; slot < LAYOUT_PCI_SLOTS; slot++) {
        for (unsigned pin = 0; pin < PCI_INTX_PINS; pin++) {
            char link[16];
            bool sci = slot == (LAYOUT_PCI_PM >> 3) && pin == 0;
            snprintf(link, sizeof(link), "\\_SB.%s",
                     sci ? LINK_SCI : link_names[pci_slot_pirq(slot, pin + 1)]);
            aml_package(a, 4);
            aml_int(a, (uint64_t)slot << 16 | PCI_SLOT_ALL_FUNCTIONS);
            aml_int(a, pin);
            aml_name(a, link);
            aml_int(a, 0);
            aml_end(a);
        }
    }
    aml_end(a);
}

/* _CRS of the root bridge: every range it forwards. */
static void dsdt_pci_crs(struct aml *a, uint64_t ram)
{
    uint64_t mmio64 = layout_pci_mmio64_start(ram);
    struct aml r;
    aml_init(&r);
    aml_res_word_bus(&r, 0, PCI_BUS_MAX);
    aml_res_io(&r, LAYOUT_PORT_PCI_CONFIG_ADDR, LAYOUT_PORT_PCI_CONFIG_LEN);
    aml_res_word_io(&r, 0, LAYOUT_PORT_PCI_CONFIG_ADDR - 1);
    aml_res_word_io(&r, LAYOUT_PORT_PCI_CONFIG_ADDR + LAYOUT_PORT_PCI_CONFIG_LEN,
                    LAYOUT_PCI_IO_END - 1);
    aml_res_dword_mem(&r, LAYOUT_VGA_START, LAYOUT_VGA_END - 1, true);
    aml_res_dword_mem(&r, (uint32_t)layout_pci_hole_start(ram),
                      (uint32_t)(LAYOUT_PCI_MMIO32_END - 1), false);
    aml_res_qword_mem(&r, mmio64, mmio64 + LAYOUT_PCI_MMIO64_SIZE - 1, true);
    name_resources(a, "_CRS", &r);
}

/* A fixed ISA device: _HID (EISA ID or string), _UID, I/O ranges and at
 * most one IRQ. */
struct isa_dev {
    const char *name, *eisaid, *hid;
    unsigned uid, sta;
    uint16_t io[2];
    uint8_t io_len[2];
    int irq; /* -1: none */
};

static void dsdt_isa_dev(struct aml *a, const struct isa_dev *d)
{
    aml_device(a, d->name);
    if (d->eisaid)
        name_eisaid(a, "_HID", d->eisaid);
    else
        name_string(a, "_HID", d->hid);
    name_int(a, "_UID", d->uid);
    name_int(a, "_STA", d->sta);
    struct aml r;
    aml_init(&r);
    for (unsigned i = 0; i < 2 && d->io_len[i]; i++)
        aml_res_io(&r, d->io[i], d->io_len[i]);
    if (d->irq >= 0)
        aml_res_irq_noflags(&r, (unsigned)d->irq);
    name_resources(a, "_CRS", &r);
    aml_end(a);
}

static void dsdt_isa(struct aml *a)
{
    static const struct isa_dev devs[] = {
        {"KBD", "PNP0303", NULL, 0, STA_SHOWN,
         {LAYOUT_PORT_I8042_DATA, LAYOUT_PORT_I8042_CMD}, {1, 1},
         LAYOUT_GSI_KEYBOARD},
        {"RTC", "PNP0B00", NULL, 0, STA_SHOWN, {LAYOUT_PORT_RTC},
         {LAYOUT_PORT_RTC_LEN}, LAYOUT_GSI_RTC},
        {"COM1", "PNP0501", NULL, 1, STA_SHOWN, {LAYOUT_PORT_COM1},
         {LAYOUT_PORT_COM_LEN}, LAYOUT_GSI_COM1},
        /* fw_cfg: a firmware interface, kept out of device lists */
        {"FWCF", NULL, "QEMU0002", 0, STA_HIDDEN, {LAYOUT_PORT_FW_CFG},
         {LAYOUT_PORT_FW_CFG_LEN}, -1},
    };
    aml_device(a, "ISA");
    name_int(a, "_ADR", pci_adr(LAYOUT_PCI_ISA_BRIDGE));
    /* OperationRegion (PIRQ, PCI_Config, 0x60, 4)
     * Field (PIRQ, ByteAcc, NoLock, Preserve) { PRQA, 8, ... PRQD, 8 } */
    aml_op_region(a, "PIRQ", AML_PCI_CONFIG, LAYOUT_PIRQ_ROUTE_REG,
                  LAYOUT_PIRQ_COUNT);
    aml_field(a, "PIRQ", AML_BYTE_ACC);
    for (unsigned i = 0; i < LAYOUT_PIRQ_COUNT; i++) {
        char unit[5] = {'P', 'R', 'Q', (char)('A' + i), 0};
        aml_field_unit(a, unit, 8);
    }
    aml_end(a);
    for (unsigned i = 0; i < ARRAY_SIZE(devs); i++)
        dsdt_isa_dev(a, &devs[i]);
    aml_end(a);
}

/* The root bridge has _HID and no _ADR: a device carries one or the other
 * (ACPI 6.x, 6.1), and iasl warns about both. */
static void dsdt_pci0(struct aml *a, uint64_t ram)
{
    aml_device(a, "PCI0");
    name_eisaid(a, "_HID", "PNP0A03");
    name_int(a, "_UID", 0);
    name_int(a, "_BBN", 0);
    dsdt_pci_crs(a, ram);
    dsdt_prt(a);
    dsdt_isa(a);
    aml_end(a);
}

static void dsdt_cpus(struct aml *a, unsigned ncpus)
{
    for (unsigned i = 0; i < ncpus; i++) {
        char name[16];
        snprintf(name, sizeof(name), "C%03X", i & 0xFFF);
        aml_device(a, name);
        name_string(a, "_HID", "ACPI0007");
        name_int(a, "_UID", i); /* = MADT processor UID */
        aml_end(a);
    }
}

static void dsdt_body(struct aml *a, const struct machine_info *mi)
{
    aml_scope(a, "\\_SB");
    for (unsigned i = 0; i < LAYOUT_PIRQ_COUNT; i++)
        dsdt_link(a, i);
    dsdt_link_sci(a);
    dsdt_pci0(a, mi->ram_size);
    dsdt_cpus(a, mi->ncpus);
    aml_end(a);

    /* Name (\_S5, Package () { typ, typ, 0, 0 }) */
    aml_name_decl(a, "\\_S5");
    aml_package(a, 4);
    aml_int(a, ACPI_S5_SLP_TYP);
    aml_int(a, ACPI_S5_SLP_TYP);
    aml_int(a, 0);
    aml_int(a, 0);
    aml_end(a);
}

static int build_dsdt(const struct machine_info *mi, struct table_loader *l,
                      unsigned tb, uint32_t *off)
{
    struct aml a;
    aml_init(&a);
    dsdt_body(&a, mi);
    int ret = -1;
    if (aml_finish(&a) == 0) {
        uint8_t *t = begin_table(l, tb, "DSDT", DSDT_REVISION,
                                 HDR_LEN + a.len, off);
        if (t) {
            memcpy(t + HDR_LEN, a.buf, a.len);
            ret = end_table(l, tb, *off);
        }
    }
    aml_free(&a);
    return ret;
}

/* ---- FADT ---------------------------------------------------------------- */

#define FADT_REVISION 4
#define FADT_LEN 244
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM_TMR_BLK 76
#define FADT_GPE0_BLK 80
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN 91
#define FADT_GPE0_BLK_LEN 92
#define FADT_P_LVL2_LAT 96
#define FADT_P_LVL3_LAT 98
#define FADT_CENTURY 108
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT_BLK 148
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_X_PM_TMR_BLK 208
#define FADT_X_GPE0_BLK 220

#define P_LVL_UNSUPPORTED 0x0FFF /* C2/C3 latency beyond any limit */

#define BOOT_ARCH_LEGACY_DEVICES (1U << 0)
#define BOOT_ARCH_8042 (1U << 1)
#define BOOT_ARCH_VGA_NOT_PRESENT (1U << 2)

#define FADT_F_WBINVD (1U << 0)
#define FADT_F_PROC_C1 (1U << 2)
#define FADT_F_SLP_BUTTON (1U << 5) /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP (1U << 10)

#define GAS_LEN 12
#define GAS_SYSTEM_IO 1

enum gas_access { GAS_BYTE = 1, GAS_WORD = 2, GAS_DWORD = 3 };

/* Generic Address Structure for len bytes of I/O ports at port. */
static void put_gas_io(uint8_t *p, uint16_t port, unsigned len,
                       enum gas_access acc)
{
    p[0] = GAS_SYSTEM_IO;
    p[1] = (uint8_t)(len * 8);
    p[2] = 0;
    p[3] = (uint8_t)acc;
    put_le64(p + 4, port);
}

/* A PM register block: the 32-bit field, its length byte and the X_ copy. */
static void put_pm_block(uint8_t *t, unsigned blk, unsigned len_field,
                         unsigned xblk, uint16_t port, unsigned len,
                         enum gas_access acc)
{
    put_le32(t + blk, port);
    t[len_field] = (uint8_t)len;
    put_gas_io(t + xblk, port, len, acc);
}

static void fill_fadt(uint8_t *t)
{
    put_le16(t + FADT_SCI_INT, LAYOUT_GSI_SCI);
    put_le32(t + FADT_SMI_CMD, 0); /* no SMM: always in ACPI mode */
    put_pm_block(t, FADT_PM1A_EVT_BLK, FADT_PM1_EVT_LEN, FADT_X_PM1A_EVT_BLK,
                 LAYOUT_PORT_PM1A_EVT, LAYOUT_PORT_PM1A_EVT_LEN, GAS_WORD);
    put_pm_block(t, FADT_PM1A_CNT_BLK, FADT_PM1_CNT_LEN, FADT_X_PM1A_CNT_BLK,
                 LAYOUT_PORT_PM1A_CNT, LAYOUT_PORT_PM1A_CNT_LEN, GAS_WORD);
    put_pm_block(t, FADT_PM_TMR_BLK, FADT_PM_TMR_LEN, FADT_X_PM_TMR_BLK,
                 LAYOUT_PORT_PM_TMR, LAYOUT_PORT_PM_TMR_LEN, GAS_DWORD);
    put_pm_block(t, FADT_GPE0_BLK, FADT_GPE0_BLK_LEN, FADT_X_GPE0_BLK,
                 LAYOUT_PORT_GPE0, LAYOUT_PORT_GPE0_LEN, GAS_BYTE);
    put_le16(t + FADT_P_LVL2_LAT, P_LVL_UNSUPPORTED);
    put_le16(t + FADT_P_LVL3_LAT, P_LVL_UNSUPPORTED);
    t[FADT_CENTURY] = LAYOUT_CMOS_CENTURY;
    put_le16(t + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_LEGACY_DEVICES |
                                          BOOT_ARCH_8042 |
                                          BOOT_ARCH_VGA_NOT_PRESENT);
    put_le32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 |
                                 FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
    put_gas_io(t + FADT_RESET_REG, LAYOUT_PORT_RESET_CONTROL, 1, GAS_BYTE);
    t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
}

static int build_fadt(struct table_loader *l, unsigned tb, uint32_t facs,
                      uint32_t dsdt, uint32_t *off)
{
    uint8_t *t = begin_table(l, tb, "FACP", FADT_REVISION, FADT_LEN, off);
    if (!t)
        return -1;
    fill_fadt(t);
    if (set_pointer(l, tb, *off + FADT_FIRMWARE_CTRL, 4, tb, facs) ||
        set_pointer(l, tb, *off + FADT_DSDT, 4, tb, dsdt) ||
        set_pointer(l, tb, *off + FADT_X_DSDT, 8, tb, dsdt))
        return -1;
    return end_table(l, tb, *off);
}

/* ---- MADT ---------------------------------------------------------------- */

#define MADT_REVISION 3 /* ACPI 4.0: x2APIC structures */
#define MADT_FIXED_LEN 44
#define MADT_PCAT_COMPAT 1
#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_ISO 2
#define MADT_LAPIC_NMI 4
#define MADT_X2APIC 9
#define MADT_X2APIC_NMI 10
#define MADT_ENABLED 1
#define MADT_ALL_CPUS_UID8 0xFF
#define MADT_ALL_CPUS_UID32 0xFFFFFFFFU
#define MADT_NMI_LINT 1
#define MPS_INTI_HIGH_LEVEL 0x000D /* active high, level triggered */
#define XAPIC_MAX_ID 0xFE /* 0xFF is the xAPIC broadcast ID */

static uint8_t *madt_entry(struct table_loader *l, unsigned tb, uint8_t type,
                           uint8_t len)
{
    uint32_t off;
    uint8_t *e = append(l, tb, len, 1, &off);
    if (e) {
        e[0] = type;
        e[1] = len;
    }
    return e;
}

/* vCPU i has APIC ID i and processor UID i. */
static int madt_cpus(struct table_loader *l, unsigned tb, unsigned ncpus)
{
    for (unsigned i = 0; i < ncpus; i++) {
        uint8_t *e;
        if (i <= XAPIC_MAX_ID) {
            if (!(e = madt_entry(l, tb, MADT_LAPIC, 8)))
                return -1;
            e[2] = (uint8_t)i;
            e[3] = (uint8_t)i;
            put_le32(e + 4, MADT_ENABLED);
        } else {
            if (!(e = madt_entry(l, tb, MADT_X2APIC, 16)))
                return -1;
            put_le32(e + 4, i);
            put_le32(e + 8, MADT_ENABLED);
            put_le32(e + 12, i);
        }
    }
    return 0;
}

static int madt_irqs(struct table_loader *l, unsigned tb)
{
    static const uint8_t level_irqs[] = LAYOUT_LEVEL_IRQS;
    uint8_t *e = madt_entry(l, tb, MADT_IOAPIC, 12);
    if (!e)
        return -1;
    e[2] = LAYOUT_IOAPIC_ID;
    put_le32(e + 4, (uint32_t)LAYOUT_IOAPIC_BASE);
    put_le32(e + 8, LAYOUT_IOAPIC_GSI_BASE);
    /* KVM's default routing is GSI n = ISA IRQ n, so the overrides only
     * change trigger and polarity. */
    for (unsigned i = 0; i < ARRAY_SIZE(level_irqs); i++) {
        if (!(e = madt_entry(l, tb, MADT_ISO, 10)))
            return -1;
        e[2] = 0; /* ISA */
        e[3] = level_irqs[i];
        put_le32(e + 4, LAYOUT_IOAPIC_GSI_BASE + level_irqs[i]);
        put_le16(e + 8, MPS_INTI_HIGH_LEVEL);
    }
    return 0;
}

static int madt_nmi(struct table_loader *l, unsigned tb, unsigned ncpus)
{
    uint8_t *e = madt_entry(l, tb, MADT_LAPIC_NMI, 6);
    if (!e)
        return -1;
    e[2] = MADT_ALL_CPUS_UID8;
    put_le16(e + 3, 0); /* conforming */
    e[5] = MADT_NMI_LINT;
    if (ncpus <= XAPIC_MAX_ID + 1)
        return 0;
    if (!(e = madt_entry(l, tb, MADT_X2APIC_NMI, 12)))
        return -1;
    put_le32(e + 4, MADT_ALL_CPUS_UID32);
    e[8] = MADT_NMI_LINT;
    return 0;
}

static int build_madt(const struct machine_info *mi, struct table_loader *l,
                      unsigned tb, uint32_t *off)
{
    uint8_t *t = begin_table(l, tb, "APIC", MADT_REVISION, MADT_FIXED_LEN, off);
    if (!t)
        return -1;
    put_le32(t + 36, (uint32_t)LAYOUT_LAPIC_BASE);
    put_le32(t + 40, MADT_PCAT_COMPAT);
    if (madt_cpus(l, tb, mi->ncpus) || madt_irqs(l, tb) ||
        madt_nmi(l, tb, mi->ncpus))
        return -1;
    return end_table(l, tb, *off);
}

/* ---- RSDT, XSDT, RSDP ---------------------------------------------------- */

#define RSDT_REVISION 1
#define XSDT_REVISION 1

/* RSDT (entry 4) or XSDT (entry 8) listing the tables at offs. */
static int build_sdt(struct table_loader *l, unsigned tb, const char *sig,
                     uint8_t entry, const uint32_t *offs, unsigned n,
                     uint32_t *off)
{
    uint8_t rev = entry == 8 ? XSDT_REVISION : RSDT_REVISION;
    if (!begin_table(l, tb, sig, rev, HDR_LEN + (size_t)entry * n, off))
        return -1;
    for (unsigned i = 0; i < n; i++)
        if (set_pointer(l, tb, *off + HDR_LEN + entry * i, entry, tb, offs[i]))
            return -1;
    return end_table(l, tb, *off);
}

#define RSDP_REVISION 2
#define RSDP_V1_LEN 20
#define RSDP_LEN 36
#define RSDP_CHECKSUM 8
#define RSDP_RSDT 16
#define RSDP_XSDT 24
#define RSDP_EXT_CHECKSUM 32

/* The first checksum covers the ACPI 1.0 part, the extended one all of
 * it including the first, so it goes last. */
static int build_rsdp(struct table_loader *l, unsigned rb, unsigned tb,
                      uint32_t rsdt, uint32_t xsdt)
{
    uint32_t off;
    uint8_t *p = append(l, rb, RSDP_LEN, 16, &off);
    if (!p)
        return -1;
    memcpy(p, "RSD PTR ", 8);
    copy_padded(p + 9, 6, OEM_ID, ' ');
    p[15] = RSDP_REVISION;
    put_le32(p + 20, RSDP_LEN);
    if (set_pointer(l, rb, off + RSDP_RSDT, 4, tb, rsdt) ||
        set_pointer(l, rb, off + RSDP_XSDT, 8, tb, xsdt) ||
        loader_add_checksum(l, rb, off + RSDP_CHECKSUM, off, RSDP_V1_LEN))
        return -1;
    return loader_add_checksum(l, rb, off + RSDP_EXT_CHECKSUM, off, RSDP_LEN);
}

int acpi_build(const struct machine_info *mi, struct table_loader *l)
{
    if (mi->ncpus == 0 || mi->ncpus > ACPI_MAX_CPUS)
        return -1;
    int rb = loader_new_blob(l, ACPI_RSDP_FILE, 16, LOADER_ZONE_FSEG);
    int tb = loader_new_blob(l, ACPI_TABLES_FILE, FACS_ALIGN, LOADER_ZONE_HIGH);
    if (rb < 0 || tb < 0)
        return -1;
    uint32_t facs, dsdt, sdt[2], rsdt, xsdt;
    if (build_facs(l, (unsigned)tb, &facs) ||
        build_dsdt(mi, l, (unsigned)tb, &dsdt) ||
        build_fadt(l, (unsigned)tb, facs, dsdt, &sdt[0]) ||
        build_madt(mi, l, (unsigned)tb, &sdt[1]) ||
        build_sdt(l, (unsigned)tb, "RSDT", 4, sdt, 2, &rsdt) ||
        build_sdt(l, (unsigned)tb, "XSDT", 8, sdt, 2, &xsdt))
        return -1;
    return build_rsdp(l, (unsigned)rb, (unsigned)tb, rsdt, xsdt);
}

int acpi_direct_addresses(const struct table_loader *l,
                          uint64_t addr[LOADER_MAX_BLOBS])
{
    uint64_t at = LAYOUT_ACPI_START;
    for (unsigned i = 0; i < l->blob_count; i++) {
        at = ALIGN_UP(at, (uint64_t)l->blobs[i].align);
        addr[i] = at;
        at += l->blobs[i].len;
    }
    return at <= LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE ? 0 : -1;
}
