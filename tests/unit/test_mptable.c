/* MP table: parsed back as an OS reads it, from the floating pointer.
 * Expected values are the platform contract's, written out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "platform/layout.h"
#include "platform/mptable.h"
#include "util.h"

#define BASE ((uint32_t)LAYOUT_MPTABLE_START)
#define CAP ((size_t)LAYOUT_MPTABLE_SIZE)

static uint8_t sum8(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

struct parsed {
    unsigned cpus, bsp, buses, ioapics, isa_ints, pci_ints, extint, nmi;
    uint8_t isa_pin[16];
    uint16_t isa_flags[16];
    uint8_t pci_pin[32][4]; /* 0 = no entry */
};

static void parse_cpu(const uint8_t *e, struct parsed *p)
{
    assert_int_equal(e[1], p->cpus); /* APIC ID = vCPU index */
    assert_true(e[3] & 1);           /* enabled */
    if (e[3] & 2) {
        assert_int_equal(e[1], 0);
        p->bsp++;
    }
    p->cpus++;
}

static void parse_bus(const uint8_t *e, struct parsed *p)
{
    if (e[1] == 0)
        assert_memory_equal(e + 2, "PCI   ", 6);
    else if (e[1] == 1)
        assert_memory_equal(e + 2, "ISA   ", 6);
    else
        fail_msg("unexpected bus id %u", e[1]);
    p->buses++;
}

static void parse_io_int(const uint8_t *e, struct parsed *p)
{
    assert_int_equal(e[1], 0); /* INT */
    assert_int_equal(e[6], 0); /* IOAPIC ID */
    uint16_t flags = get_le16(e + 2);
    if (e[4] == 1) { /* ISA */
        assert_true(e[5] < 16);
        p->isa_pin[e[5]] = e[7];
        p->isa_flags[e[5]] = flags;
        p->isa_ints++;
    } else {
        assert_int_equal(e[4], 0); /* PCI: slot << 2 | pin */
        assert_int_equal(flags, 0x000D);
        assert_int_equal(p->pci_pin[e[5] >> 2][e[5] & 3], 0);
        p->pci_pin[e[5] >> 2][e[5] & 3] = e[7];
        p->pci_ints++;
    }
}

static void parse_local_int(const uint8_t *e, struct parsed *p)
{
    assert_int_equal(e[6], 0xFF); /* all LAPICs */
    if (e[1] == 3) {
        assert_int_equal(e[7], 0);
        p->extint++;
    } else {
        assert_int_equal(e[1], 1);
        assert_int_equal(e[7], 1);
        p->nmi++;
    }
}

/* Entries must come in ascending type order (MP spec 1.4, 4.3). */
static void parse_entries(const uint8_t *c, size_t len, unsigned count,
                          struct parsed *p)
{
    size_t off = 44;
    uint8_t last_type = 0;
    for (unsigned i = 0; i < count; i++) {
        assert_true(off < len);
        const uint8_t *e = c + off;
        assert_true(e[0] >= last_type);
        last_type = e[0];
        size_t elen = e[0] == 0 ? 20 : 8;
        assert_true(off + elen <= len);
        switch (e[0]) {
        case 0:
            parse_cpu(e, p);
            break;
        case 1:
            parse_bus(e, p);
            break;
        case 2:
            assert_int_equal(e[1], 0);
            assert_true(e[3] & 1);
            assert_int_equal(get_le32(e + 4), 0xFEC00000);
            p->ioapics++;
            break;
        case 3:
            parse_io_int(e, p);
            break;
        case 4:
            parse_local_int(e, p);
            break;
        default:
            fail_msg("unexpected entry type %u", e[0]);
        }
        off += elen;
    }
    assert_int_equal(off, len);
}

static size_t parse(const uint8_t *buf, size_t total, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    assert_memory_equal(buf, "_MP_", 4);
    assert_int_equal(buf[8], 1);
    assert_int_equal(buf[9], 4);
    assert_int_equal(sum8(buf, 16), 0);
    assert_int_equal(buf[11], 0); /* configuration table present */
    uint32_t cfg = get_le32(buf + 4);
    assert_true(cfg >= BASE + 16 && cfg + 44 <= BASE + total);
    const uint8_t *c = buf + (cfg - BASE);
    assert_memory_equal(c, "PCMP", 4);
    uint16_t len = get_le16(c + 4);
    assert_true(cfg + len <= BASE + total);
    assert_int_equal(c[6], 4);
    assert_int_equal(sum8(c, len), 0);
    assert_int_equal(get_le32(c + 36), 0xFEE00000);
    assert_int_equal(get_le16(c + 40), 0); /* no extended entries */
    parse_entries(c, len, get_le16(c + 34), p);
    return cfg - BASE + len;
}

static void test_routing(void **state)
{
    static const unsigned cpu_counts[] = {1, 4, 64};
    static const uint8_t pirq_irq[4] = {10, 10, 11, 11};
    struct machine_info mi = {.ram_size = 256 * MiB};
    /* 00:02 INTA, 00:03 INTA and INTB (twice), the PM function's INTA */
    const struct pci_intx_user users[] = {{2, 1}, {3, 1}, {3, 2}, {3, 1},
                                          {1, 1}};
    memcpy(mi.intx, users, sizeof(users));
    mi.intx_count = ARRAY_SIZE(users);
    uint8_t *buf = malloc(CAP);
    assert_non_null(buf);

    for (unsigned n = 0; n < ARRAY_SIZE(cpu_counts); n++) {
        mi.ncpus = cpu_counts[n];
        size_t total = mptable_build(&mi, BASE, buf, CAP);
        assert_true(total > 0 && total <= CAP);
        struct parsed p;
        assert_int_equal(parse(buf, total, &p), total);
        assert_int_equal(p.cpus, mi.ncpus);
        assert_int_equal(p.bsp, 1);
        assert_int_equal(p.buses, 2);
        assert_int_equal(p.ioapics, 1);
        assert_int_equal(p.extint, 1);
        assert_int_equal(p.nmi, 1);
        /* ISA IRQs identity mapped; 5, 9, 10, 11 level, active high */
        assert_int_equal(p.isa_ints, 16);
        for (unsigned irq = 0; irq < 16; irq++) {
            bool level = irq == 5 || irq == 9 || irq == 10 || irq == 11;
            assert_int_equal(p.isa_pin[irq], irq);
            assert_int_equal(p.isa_flags[irq], level ? 0x000D : 0);
        }
        /* PCI: the PIRQ's preset IRQ, (slot + pin - 2) mod 4; SCI for PM */
        assert_int_equal(p.pci_ints, 4);
        assert_int_equal(p.pci_pin[2][0], pirq_irq[(2 + 1 - 2) % 4]);
        assert_int_equal(p.pci_pin[3][0], pirq_irq[(3 + 1 - 2) % 4]);
        assert_int_equal(p.pci_pin[3][1], pirq_irq[(3 + 2 - 2) % 4]);
        assert_int_equal(p.pci_pin[1][0], 9);
    }
    free(buf);
}

static void test_limits(void **state)
{
    struct machine_info mi = {.ncpus = 4, .ram_size = 256 * MiB};
    uint8_t buf[1024];
    size_t total = mptable_build(&mi, BASE, buf, sizeof(buf));
    assert_true(total > 0);
    assert_int_equal(mptable_build(&mi, BASE, buf, total - 1), 0);
    assert_int_equal(mptable_build(&mi, BASE, buf, total), total);
    /* APIC IDs must fit 8 bits without the broadcast ID */
    mi.ncpus = 0;
    assert_int_equal(mptable_build(&mi, BASE, buf, sizeof(buf)), 0);
    mi.ncpus = 256;
    uint8_t *big = malloc(16384);
    assert_non_null(big);
    assert_int_equal(mptable_build(&mi, BASE, big, 16384), 0);
    mi.ncpus = 255;
    assert_true(mptable_build(&mi, BASE, big, 16384) > 0);
    free(big);
    /* invalid INTx users are ignored */
    mi.ncpus = 1;
    mi.intx[0] = (struct pci_intx_user){40, 1};
    mi.intx[1] = (struct pci_intx_user){4, 0};
    mi.intx[2] = (struct pci_intx_user){4, 5};
    mi.intx_count = 3;
    struct parsed p;
    total = mptable_build(&mi, BASE, buf, sizeof(buf));
    parse(buf, total, &p);
    assert_int_equal(p.pci_ints, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
