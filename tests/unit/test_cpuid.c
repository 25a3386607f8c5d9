#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"
#include "vm/cpuid.h"

static struct kvm_cpuid2 *make_supported(void)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES *
                                                      sizeof(c->entries[0]));
    struct kvm_cpuid_entry2 e[] = {
        {.function = 0, .eax = 0xD},
        {.function = 1, .eax = 0x50654, .ebx = 0x00010800,
         .ecx = 0x7FFAFBFF, .edx = 0xBFEBFBFF},
        {.function = 4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
         .eax = 0x1C004121},
        {.function = 4, .index = 3, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
         .eax = 0x1C03C163},
        {.function = 0xB, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
        {.function = 0xB, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
        {.function = 0xB, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX},
        {.function = 0x80000008, .eax = 0x3030, .ecx = 0x7},
        {.function = 0x40000001, .eax = 0x1007EFB}, /* KVM features */
    };
    c->nent = sizeof(e) / sizeof(e[0]);
    memcpy(c->entries, e, sizeof(e));
    return c;
}

static void check_vcpu(const struct kvm_cpuid2 *sup, unsigned ncpus,
                       unsigned id, bool pvm)
{
    struct kvm_cpuid2 *out = calloc(
        1, sizeof(*out) + CPUID_MAX_ENTRIES * sizeof(out->entries[0]));
    struct cpuid_policy p = {.ncpus = ncpus, .hide_cx16 = pvm,
                             .hide_pv_unhalt = pvm};
    cpuid_for_vcpu(sup, &p, id, out);
    struct kvm_cpuid_entry2 *l1 = cpuid_find(out, 1, 0);
    assert_int_equal(l1->ebx >> 24, id);
    assert_true(l1->ecx & (1u << 31)); /* hypervisor */
    assert_int_equal(!!(l1->ecx & (1u << 13)), !pvm);
    unsigned logical = (l1->ebx >> 16) & 0xFF;
    assert_true(logical >= ncpus);
    assert_int_equal(!!(l1->edx & (1u << 28)), ncpus > 1);
    struct kvm_cpuid_entry2 *smt = cpuid_find(out, 0xB, 0);
    struct kvm_cpuid_entry2 *core = cpuid_find(out, 0xB, 1);
    struct kvm_cpuid_entry2 *end = cpuid_find(out, 0xB, 2);
    assert_int_equal(smt->edx, id);
    assert_int_equal(smt->ebx, 1);
    assert_int_equal((smt->ecx >> 8) & 0xFF, 1);
    assert_int_equal(core->ebx, ncpus);
    assert_int_equal((core->ecx >> 8) & 0xFF, 2);
    assert_true((1u << core->eax) >= ncpus);
    assert_true(core->eax == 0 || (1u << (core->eax - 1)) < ncpus);
    assert_int_equal((end->ecx >> 8) & 0xFF, 0);
    /* APIC IDs fit the core field, as the MADT lists them */
    assert_int_equal(id >> core->eax, 0);
    struct kvm_cpuid_entry2 *l4 = cpuid_find(out, 4, 3);
    assert_true(((l4->eax >> 26) + 1) >= ncpus);
    struct kvm_cpuid_entry2 *amd = cpuid_find(out, 0x80000008, 0);
    assert_int_equal((amd->ecx & 0xFF) + 1, ncpus);
    /* PV_UNHALT (bit 7) hidden on PVM, the other KVM features kept */
    struct kvm_cpuid_entry2 *kvm = cpuid_find(out, 0x40000001, 0);
    assert_int_equal(kvm->eax, pvm ? 0x1007E7Bu : 0x1007EFBu);
    free(out);
}

static void test_topology(void **state)
{
    struct kvm_cpuid2 *sup = make_supported();
    unsigned counts[] = {1, 2, 3, 4, 8, 13, 64};
    for (unsigned i = 0; i < ARRAY_SIZE(counts); i++)
        for (unsigned id = 0; id < counts[i]; id++)
            check_vcpu(sup, counts[i], id, id & 1);
    free(sup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topology),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
