#include "vm/cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

#define CPUID_1_ECX_CX16 (1u << 13)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define KVM_CPUID_FEATURES_LEAF 0x40000001u
#define KVM_FEATURE_PV_UNHALT_BIT (1u << 7)
#define TOPO_LEVEL_SMT 1
#define TOPO_LEVEL_CORE 2

struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES *
                                                      sizeof(c->entries[0]));
    if (!c)
        return NULL;
    c->nent = CPUID_MAX_ENTRIES;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        report_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
        free(c);
        return NULL;
    }
    return c;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function,
                                    unsigned index)
{
    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function != function)
            continue;
        if (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index)
            return e;
    }
    return NULL;
}

/* Bits needed to hold n distinct IDs. */
static unsigned id_bits(unsigned n)
{
    unsigned b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

static void set_leaf1(struct kvm_cpuid_entry2 *e, const struct cpuid_policy *p,
                      unsigned apic_id)
{
    e->ebx &= 0x0000FFFFu;
    e->ebx |= apic_id << 24;
    if (p->ncpus > 1) {
        e->ebx |= (1u << id_bits(p->ncpus)) << 16;
        e->edx |= CPUID_1_EDX_HTT;
    } else {
        e->ebx |= 1u << 16;
        e->edx &= ~CPUID_1_EDX_HTT;
    }
    e->ecx |= CPUID_1_ECX_HYPERVISOR;
    if (p->hide_cx16)
        e->ecx &= ~CPUID_1_ECX_CX16;
}

/* Leaf 4 (Intel caches): cores per package and sharing per level. */
static void set_leaf4(struct kvm_cpuid_entry2 *e, const struct cpuid_policy *p)
{
    unsigned level = (e->eax >> 5) & 7;
    unsigned cores = 1u << id_bits(p->ncpus);
    unsigned sharing = level >= 3 ? cores : 1;
    e->eax &= 0x00003FFFu;
    e->eax |= (cores - 1) << 26 | (sharing - 1) << 14;
}

/* Leaves 0xB / 0x1F: x2APIC topology, SMT level then core level. */
static void set_topology_leaf(struct kvm_cpuid_entry2 *e,
                              const struct cpuid_policy *p, unsigned apic_id)
{
    e->edx = apic_id;
    switch (e->index) {
    case 0:
        e->eax = 0;
        e->ebx = 1;
        e->ecx = TOPO_LEVEL_SMT << 8 | e->index;
        break;
    case 1:
        e->eax = id_bits(p->ncpus);
        e->ebx = p->ncpus;
        e->ecx = TOPO_LEVEL_CORE << 8 | e->index;
        break;
    default:
        e->eax = 0;
        e->ebx = 0;
        e->ecx = e->index;
        break;
    }
}

/* AMD: 0x80000008 ECX carries the core count and APIC ID width. */
static void set_amd_cores(struct kvm_cpuid_entry2 *e,
                          const struct cpuid_policy *p)
{
    e->ecx &= ~0xF0FFu;
    e->ecx |= (p->ncpus - 1) | id_bits(p->ncpus) << 12;
}

void cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
                    const struct cpuid_policy *policy, unsigned vcpu_id,
                    struct kvm_cpuid2 *out)
{
    unsigned n = MIN(supported->nent, (unsigned)CPUID_MAX_ENTRIES);
    out->nent = n;
    memcpy(out->entries, supported->entries, n * sizeof(out->entries[0]));
    for (unsigned i = 0; i < n; i++) {
        struct kvm_cpuid_entry2 *e = &out->entries[i];
        switch (e->function) {
        case 1: set_leaf1(e, policy, vcpu_id); break;
        case 4: set_leaf4(e, policy); break;
        case 0xB:
        case 0x1F: set_topology_leaf(e, policy, vcpu_id); break;
        case 0x80000008: set_amd_cores(e, policy); break;
        case KVM_CPUID_FEATURES_LEAF:
            if (policy->hide_pv_unhalt)
                e->eax &= ~KVM_FEATURE_PV_UNHALT_BIT;
            break;
        }
    }
}

bool cpuid_host_is_pvm(void)
{
    return access("/sys/module/kvm_pvm", F_OK) == 0;
}
