/* CPUID policy: what each vCPU sees. Starts from KVM_GET_SUPPORTED_CPUID
 * and sets the topology leaves so that APIC IDs, CPUID and the MADT agree:
 * one socket, ncpus cores, one thread per core, APIC ID = vCPU index. */
#ifndef KVMPC_CPUID_H
#define KVMPC_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

#define CPUID_MAX_ENTRIES 256

struct cpuid_policy {
    unsigned ncpus;
    /* The host's KVM cannot emulate cmpxchg16b for guest kernel code
     * (PVM): hide CX16 so the guest never uses it. */
    bool hide_cx16;
    /* Its vCPUs halted with interrupts off stay asleep when another vCPU
     * kicks them (KVM_HC_KICK_CPU, PVM): hide KVM_FEATURE_PV_UNHALT so the
     * guest's spinlocks spin instead of halting (Linux hung in pv
     * qspinlocks there with several vCPUs). */
    bool hide_pv_unhalt;
};

/* KVM_GET_SUPPORTED_CPUID into a malloc'ed table; NULL after reporting. */
struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd);

/* Builds the table for one vCPU into out (capacity CPUID_MAX_ENTRIES).
 * Pure: unit-testable without KVM. */
void cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
                    const struct cpuid_policy *policy, unsigned vcpu_id,
                    struct kvm_cpuid2 *out);

/* Finds an entry; NULL if absent. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, unsigned function,
                                    unsigned index);

/* True when /dev/kvm is the PVM software hypervisor. */
bool cpuid_host_is_pvm(void);

#endif
