/* smp: the MADT lists cpus=N processors with APIC IDs 0..N-1; every AP
 * starts with INIT-SIPI-SIPI, reaches protected mode and reports the APIC
 * ID the MADT promised, once. */
#include "kit.h"

#define ICR_INIT 0x4500    /* INIT, level assert, edge */
#define ICR_STARTUP 0x4600 /* Start-up IPI; vector = page number */
#define AP_TIMEOUT_MS 1000

struct ap_params {
    uint32_t lapic, started, done, slots;
};

struct ap_slot {
    uint32_t cpuid_id;
    uint32_t lapic_id;
};

extern const char ap_tramp_start[], ap_tramp_end[], ap_tramp_params[];

static volatile uint32_t ap_started, ap_done;
static volatile struct ap_slot ap_slots[LAYOUT_MAX_CPUS];

static bool madt_ids_ok(const struct acpi_madt_info *m)
{
    uint64_t seen = 0;

    for (unsigned i = 0; i < m->cpu_count; i++) {
        uint32_t id = m->apic_ids[i];
        if (id >= m->cpu_count || (seen & (1ULL << id)))
            return false;
        seen |= 1ULL << id;
    }
    return true;
}

/* Highest page of the RAM at 0 (below the EBDA): free once we run, and
 * away from where loaders put their boot structures. */
static uint64_t trampoline_page(void)
{
    for (unsigned i = 0; i < kit_boot.mem_count; i++)
        if (kit_boot.mem[i].type == 1 && kit_boot.mem[i].addr == 0 &&
            kit_boot.mem[i].size >= 0x10000)
            return ((kit_boot.mem[i].size & ~0xFFFULL) - 0x1000);
    return 0;
}

static bool trampoline_install(uint64_t page, const struct acpi_info *ai)
{
    size_t len = (size_t)(ap_tramp_end - ap_tramp_start);
    struct ap_params p = {
        .lapic = (uint32_t)ai->madt_info.lapic_addr,
        .started = (uint32_t)(uintptr_t)&ap_started,
        .done = (uint32_t)(uintptr_t)&ap_done,
        .slots = (uint32_t)(uintptr_t)ap_slots,
    };
    uint64_t c = kit_boot.cmdline_addr, i = kit_boot.info_addr;

    if (!page)
        return kit_check(false, "smp-trampoline", "no RAM at 0 for the trampoline");
    if ((c < page + 0x1000 && page < c + strlen(kit_boot.cmdline) + 1) ||
        (i < page + 0x1000 && page < i + kit_boot.info_size))
        return kit_check(false, "smp-trampoline",
                         "page 0x%lx overlaps the boot data", page);
    memcpy((void *)(uintptr_t)page, ap_tramp_start, len);
    memcpy((char *)(uintptr_t)page + (ap_tramp_params - ap_tramp_start), &p,
           sizeof(p));
    return true;
}

static bool ap_arrived(void *want)
{
    return ap_done >= *(uint32_t *)want;
}

/* INIT, 10 ms, SIPI, 200 us, SIPI: the MP specification's sequence. */
static bool start_ap(uint32_t id, uint64_t page)
{
    uint32_t want = ap_done + 1;
    bool sent = lapic_send_ipi(id, ICR_INIT);

    pit_delay_us(10000);
    for (int i = 0; i < 2 && sent; i++) {
        sent = lapic_send_ipi(id, ICR_STARTUP | (uint32_t)(page >> 12));
        pit_delay_us(200);
    }
    if (!sent)
        return kit_check(false, "ap-ipi", "IPI to APIC ID %u not delivered", id);
    return pit_wait_ms(AP_TIMEOUT_MS, ap_arrived, &want);
}

static void check_ap(uint32_t id, bool arrived)
{
    char name[16] = "ap-", *p = name + 3;
    uint32_t slot = ap_done - 1;

    if (id >= 10)
        *p++ = (char)('0' + id / 10 % 10);
    *p++ = (char)('0' + id % 10);
    *p = 0;
    if (!arrived) {
        kit_check(false, name, "APIC ID %u did not report within %u ms", id,
                  AP_TIMEOUT_MS);
        return;
    }
    kit_check(ap_slots[slot].cpuid_id == id && ap_slots[slot].lapic_id == id,
              name, "APIC ID %u: CPUID says %u, LAPIC says %u", id,
              ap_slots[slot].cpuid_id, ap_slots[slot].lapic_id);
}

static void start_all_aps(const struct acpi_madt_info *m, uint32_t bsp,
                          uint64_t page)
{
    unsigned aps = 0;

    for (unsigned i = 0; i < m->cpu_count; i++) {
        if (m->apic_ids[i] == bsp)
            continue;
        aps++;
        check_ap(m->apic_ids[i], start_ap(m->apic_ids[i], page));
    }
    pit_delay_us(20000); /* late or repeated starts would show up here */
    kit_check(ap_started == aps && ap_done == aps, "smp",
              "%u CPUs, %u APs started (%u expected)", m->cpu_count,
              ap_started, aps);
}

void test_smp(const struct acpi_info *ai)
{
    const struct acpi_madt_info *m = &ai->madt_info;
    uint64_t want = cmdline_u64("cpus", 0);
    uint32_t a, b, c, d, bsp = lapic_id();
    uint64_t page = trampoline_page();

    cpuid(1, &a, &b, &c, &d);
    kit_info("smp.bsp", "APIC ID %u (CPUID %u)", bsp, b >> 24);
    kit_check(m->cpu_count == want, "madt-cpus", "%u processors, %lu expected",
              m->cpu_count, want);
    kit_check(madt_ids_ok(m), "madt-apic-ids", "APIC IDs are 0..%u",
              m->cpu_count - 1);
    kit_check(bsp == b >> 24 && bsp < m->cpu_count, "bsp-apic-id",
              "LAPIC %u, CPUID %u", bsp, b >> 24);
    kit_info("smp.trampoline", "0x%lx", page);
    lapic_enable();
    if (trampoline_install(page, ai))
        start_all_aps(m, bsp, page);
}
