/* ACPI table walking: RSDP -> XSDT (or RSDT) -> FADT -> DSDT (\_S5), MADT.
 * Tables are read through the identity map; every pointer and length is
 * checked before use, as a guest OS would have to. */
#include "kit.h"

#define ACPI_HDR_LEN 36
#define RSDP_V1_LEN 20
#define RSDP_V2_LEN 36
#define BIOS_AREA_END 0x100000ULL
#define FADT_FLAG_RESET_REG_SUP (1u << 10)

static uint8_t rd8(uint64_t a)
{
    return *(const volatile uint8_t *)(uintptr_t)a;
}

static uint16_t rd16(uint64_t a)
{
    return (uint16_t)(rd8(a) | rd8(a + 1) << 8);
}

static uint32_t rd32(uint64_t a)
{
    return rd16(a) | (uint32_t)rd16(a + 2) << 16;
}

static uint64_t rd64(uint64_t a)
{
    return rd32(a) | (uint64_t)rd32(a + 4) << 32;
}

bool acpi_checksum_ok(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint8_t sum = 0;
    while (len--)
        sum += *b++;
    return sum == 0;
}

static bool in_low_4g(uint64_t addr, uint64_t len)
{
    return addr && len <= LAYOUT_4G && addr <= LAYOUT_4G - len;
}

bool acpi_rsdp_valid(uint64_t addr, const char **why)
{
    const void *p = (const void *)(uintptr_t)addr;

    *why = "";
    if (!in_low_4g(addr, RSDP_V2_LEN) || memcmp(p, "RSD PTR ", 8)) {
        *why = "no RSDP signature";
        return false;
    }
    if (!acpi_checksum_ok(p, RSDP_V1_LEN)) {
        *why = "bad RSDP checksum";
        return false;
    }
    if (rd8(addr + 15) >= 2 &&
        (rd32(addr + 20) < RSDP_V2_LEN || !acpi_checksum_ok(p, RSDP_V2_LEN))) {
        *why = "bad RSDP extended checksum or length";
        return false;
    }
    return true;
}

static uint64_t scan_rsdp(uint64_t start, uint64_t end)
{
    const char *why;
    for (uint64_t a = start; a + RSDP_V1_LEN <= end; a += 16)
        if (acpi_rsdp_valid(a, &why))
            return a;
    return 0;
}

/* The EBDA segment from the BIOS data area, then the BIOS area. */
uint64_t acpi_scan_rsdp(void)
{
    uint64_t ebda = (uint64_t)rd16(0x40E) << 4, a = 0;
    if (ebda >= 0x80000 && ebda < LAYOUT_LOW_RAM_END)
        a = scan_rsdp(ebda, ebda + KiB);
    return a ? a : scan_rsdp(LAYOUT_BIOS_AREA_START, BIOS_AREA_END);
}

static void remember(struct acpi_info *ai, uint64_t addr, uint32_t len,
                     const char *sig)
{
    if (ai->table_count >= ACPI_MAX_TABLES)
        return;
    ai->table_addr[ai->table_count] = addr;
    ai->table_len[ai->table_count] = len;
    memcpy(ai->table_sig[ai->table_count], sig, 4);
    ai->table_sig[ai->table_count][4] = 0;
    ai->table_count++;
}

/* Checks a table header: where, how long, signature and checksum. */
static bool table_valid(struct acpi_info *ai, uint64_t addr, const char *sig)
{
    uint32_t len;

    if (!in_low_4g(addr, ACPI_HDR_LEN))
        return kit_check(false, "acpi-tables", "%s at 0x%lx: outside 4 GiB",
                         sig, addr);
    len = rd32(addr + 4);
    if (memcmp((const void *)(uintptr_t)addr, sig, 4) || len < ACPI_HDR_LEN ||
        !in_low_4g(addr, len))
        return kit_check(false, "acpi-tables", "%s at 0x%lx: bad header",
                         sig, addr);
    if (!acpi_checksum_ok((const void *)(uintptr_t)addr, len))
        return kit_check(false, "acpi-tables", "%s at 0x%lx: bad checksum",
                         sig, addr);
    remember(ai, addr, len, sig);
    return true;
}

static int decode_aml_int(const uint8_t *p, const uint8_t *end, uint8_t *v)
{
    if (p >= end)
        return 0;
    switch (p[0]) {
    case 0x00: *v = 0; return 1; /* ZeroOp */
    case 0x01: *v = 1; return 1; /* OneOp */
    case 0x0A:                   /* BytePrefix */
        if (p + 1 >= end)
            return 0;
        *v = p[1];
        return 2;
    case 0x0B: /* WordPrefix: SLP_TYP is 3 bits, take the low byte */
        if (p + 2 >= end)
            return 0;
        *v = p[1];
        return 3;
    case 0x0C: /* DWordPrefix */
        if (p + 4 >= end)
            return 0;
        *v = p[1];
        return 5;
    default:
        return 0;
    }
}

bool acpi_find_s5(const uint8_t *aml, size_t len, uint8_t *a, uint8_t *b)
{
    const uint8_t *end = aml + len;

    for (const uint8_t *p = aml + 1; p + 4 < end; p++) {
        const uint8_t *q = p + 4;
        int n;

        /* NameOp, optionally a root prefix, "_S5_", PackageOp. */
        if (memcmp(p, "_S5_", 4) || *q != 0x12)
            continue;
        if (p[-1] != 0x08 && !(p[-1] == '\\' && p > aml + 1 && p[-2] == 0x08))
            continue;
        q++;
        if (q >= end)
            return false;
        q += 1 + (*q >> 6); /* PkgLength: lead byte + 0..3 more */
        if (q >= end || *q < 2) /* NumElements */
            return false;
        q++;
        n = decode_aml_int(q, end, a);
        if (!n)
            return false;
        return decode_aml_int(q + n, end, b) != 0;
    }
    return false;
}

/* A GAS if it is set, else the legacy 32-bit port field. */
static uint32_t fadt_port(const struct acpi_info *ai, unsigned legacy_off,
                          unsigned gas_off)
{
    uint64_t f = ai->fadt;
    if (ai->fadt_len >= gas_off + 12 && rd64(f + gas_off + 4) &&
        rd8(f + gas_off) == 1)
        return (uint32_t)rd64(f + gas_off + 4);
    return rd32(f + legacy_off);
}

static bool parse_fadt(struct acpi_info *ai)
{
    uint64_t f = ai->fadt, dsdt = 0;

    ai->fadt_len = rd32(f + 4);
    ai->fadt_rev = rd8(f + 8);
    if (ai->fadt_len < 116)
        return kit_check(false, "acpi-tables", "FADT too short (%u bytes)",
                         ai->fadt_len);
    ai->sci_int = rd16(f + 46);
    ai->smi_cmd = rd32(f + 48);
    ai->acpi_enable = rd8(f + 52);
    ai->pm1a_cnt = fadt_port(ai, 64, 172);
    ai->pm1b_cnt = fadt_port(ai, 68, 184);
    ai->pm_tmr = fadt_port(ai, 76, 208);
    ai->fadt_flags = rd32(f + 112);
    if (ai->fadt_len >= 129) {
        ai->reset_supported = ai->fadt_flags & FADT_FLAG_RESET_REG_SUP;
        ai->reset_reg.space = rd8(f + 116);
        ai->reset_reg.bit_width = rd8(f + 117);
        ai->reset_reg.addr = rd64(f + 120);
        ai->reset_value = rd8(f + 128);
    }
    if (ai->fadt_len >= 148)
        dsdt = rd64(f + 140);
    if (!dsdt)
        dsdt = rd32(f + 40);
    if (!table_valid(ai, dsdt, "DSDT"))
        return false;
    ai->dsdt = dsdt;
    ai->s5_found = acpi_find_s5((const uint8_t *)(uintptr_t)dsdt + ACPI_HDR_LEN,
                                rd32(dsdt + 4) - ACPI_HDR_LEN, &ai->s5_typ_a,
                                &ai->s5_typ_b);
    return true;
}

static void madt_entry(struct acpi_madt_info *m, uint64_t e, uint8_t type)
{
    switch (type) {
    case 0: /* processor local APIC; enabled or online-capable */
        if ((rd32(e + 4) & 3) && m->cpu_count < LAYOUT_MAX_CPUS)
            m->apic_ids[m->cpu_count++] = rd8(e + 3);
        break;
    case 1: /* IOAPIC: the tests use the first one */
        if (!m->ioapic_count++) {
            m->ioapic_id = rd8(e + 2);
            m->ioapic_addr = rd32(e + 4);
            m->ioapic_gsi_base = rd32(e + 8);
        }
        break;
    case 2: /* interrupt source override */
        if (rd8(e + 2) == 0 && rd8(e + 3) < 16) {
            m->isa_gsi[rd8(e + 3)] = rd32(e + 4);
            m->isa_flags[rd8(e + 3)] = rd16(e + 8);
            m->override_count++;
        }
        break;
    case 5: /* local APIC address override */
        m->lapic_addr = rd64(e + 4);
        break;
    case 9: /* processor local x2APIC */
        if ((rd32(e + 8) & 3) && m->cpu_count < LAYOUT_MAX_CPUS)
            m->apic_ids[m->cpu_count++] = rd32(e + 4);
        break;
    default:
        break;
    }
}

static bool parse_madt(struct acpi_info *ai)
{
    struct acpi_madt_info *m = &ai->madt_info;
    uint64_t end = ai->madt + rd32(ai->madt + 4);

    for (unsigned i = 0; i < 16; i++)
        m->isa_gsi[i] = i;
    m->lapic_addr = rd32(ai->madt + 36);
    for (uint64_t e = ai->madt + 44; e + 2 <= end;) {
        uint8_t len = rd8(e + 1);
        if (len < 2 || e + len > end)
            return kit_check(false, "acpi-tables",
                             "MADT entry at 0x%lx: bad length %u", e, len);
        madt_entry(m, e, rd8(e));
        e += len;
    }
    return true;
}

static void print_madt(const struct acpi_madt_info *m)
{
    kit_printf("INFO acpi.madt cpus %u lapic 0x%lx ioapic 0x%lx gsi %u overrides",
               m->cpu_count, m->lapic_addr, m->ioapic_addr, m->ioapic_gsi_base);
    for (unsigned irq = 0; irq < 16; irq++)
        if (m->isa_gsi[irq] != irq || m->isa_flags[irq])
            kit_printf(" %u->%u/0x%x", irq, m->isa_gsi[irq], m->isa_flags[irq]);
    kit_printf("\n");
}

static bool walk_root(struct acpi_info *ai)
{
    unsigned esize = ai->root_is_xsdt ? 8 : 4;
    uint64_t end = ai->root + rd32(ai->root + 4);

    for (uint64_t e = ai->root + ACPI_HDR_LEN; e + esize <= end; e += esize) {
        uint64_t t = esize == 8 ? rd64(e) : rd32(e);
        if (!in_low_4g(t, ACPI_HDR_LEN))
            return kit_check(false, "acpi-tables",
                             "root entry 0x%lx outside 4 GiB", t);
        if (!memcmp((const void *)(uintptr_t)t, "FACP", 4)) {
            if (!table_valid(ai, t, "FACP"))
                return false;
            ai->fadt = t;
        } else if (!memcmp((const void *)(uintptr_t)t, "APIC", 4)) {
            if (!table_valid(ai, t, "APIC"))
                return false;
            ai->madt = t;
        }
    }
    if (!ai->fadt || !ai->madt)
        return kit_check(false, "acpi-tables", "FADT %s, MADT %s",
                         ai->fadt ? "found" : "missing",
                         ai->madt ? "found" : "missing");
    return true;
}

bool acpi_load(struct acpi_info *ai)
{
    const char *why;

    memset(ai, 0, sizeof(*ai));
    ai->rsdp = kit_boot.rsdp_addr ? kit_boot.rsdp_addr : acpi_scan_rsdp();
    if (!acpi_rsdp_valid(ai->rsdp, &why))
        return kit_check(false, "acpi-tables", "RSDP at 0x%lx: %s", ai->rsdp,
                         why);
    ai->rsdp_rev = rd8(ai->rsdp + 15);
    remember(ai, ai->rsdp, ai->rsdp_rev >= 2 ? RSDP_V2_LEN : RSDP_V1_LEN,
             "RSDP");
    ai->root_is_xsdt = ai->rsdp_rev >= 2 && rd64(ai->rsdp + 24);
    ai->root = ai->root_is_xsdt ? rd64(ai->rsdp + 24) : rd32(ai->rsdp + 16);
    if (!table_valid(ai, ai->root, ai->root_is_xsdt ? "XSDT" : "RSDT") ||
        !walk_root(ai) || !parse_fadt(ai) || !parse_madt(ai))
        return false;
    kit_info("acpi.rsdp", "0x%lx rev %u %s 0x%lx", ai->rsdp, ai->rsdp_rev,
             ai->root_is_xsdt ? "xsdt" : "rsdt", ai->root);
    kit_info("acpi.fadt", "rev %u len %u pm1a_cnt 0x%x sci %u smi_cmd 0x%x",
             ai->fadt_rev, ai->fadt_len, ai->pm1a_cnt, ai->sci_int,
             ai->smi_cmd);
    kit_info("acpi.reset", "supported %u space %u addr 0x%lx value 0x%x",
             ai->reset_supported, ai->reset_reg.space, ai->reset_reg.addr,
             ai->reset_value);
    print_madt(&ai->madt_info);
    return kit_check(true, "acpi-tables", "%u tables", ai->table_count);
}

/* SCI_EN in PM1_CNT says the machine is in ACPI mode; without it, an OS
 * asks firmware through SMI_CMD first. */
static void acpi_enable_mode(const struct acpi_info *ai)
{
    if (!ai->smi_cmd || (inw((uint16_t)ai->pm1a_cnt) & 1))
        return;
    outb((uint16_t)ai->smi_cmd, ai->acpi_enable);
    for (unsigned i = 0; i < 100 && !(inw((uint16_t)ai->pm1a_cnt) & 1); i++)
        pit_delay_us(1000);
}

void acpi_poweroff(const struct acpi_info *ai)
{
    const uint16_t slp_en = 1u << 13;

    acpi_enable_mode(ai);
    kit_printf("ACTION poweroff\n");
    if (ai->pm1b_cnt)
        outw((uint16_t)ai->pm1b_cnt,
             (uint16_t)((ai->s5_typ_b & 7) << 10 | slp_en));
    outw((uint16_t)ai->pm1a_cnt, (uint16_t)((ai->s5_typ_a & 7) << 10 | slp_en));
}

void acpi_reset(const struct acpi_info *ai)
{
    kit_printf("ACTION reset\n");
    if (ai->reset_reg.space == 1)
        outb((uint16_t)ai->reset_reg.addr, ai->reset_value);
    else if (ai->reset_reg.space == 0 && in_low_4g(ai->reset_reg.addr, 1))
        *(volatile uint8_t *)(uintptr_t)ai->reset_reg.addr = ai->reset_value;
}
