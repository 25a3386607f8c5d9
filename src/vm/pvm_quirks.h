/* Work-arounds for hosts whose /dev/kvm is PVM (cpuid_host_is_pvm()),
 * whose guest user mode runs natively but whose entries from ring 3 into
 * ring 0 other than exceptions and interrupts are broken. Nothing here is
 * active elsewhere.
 *
 * SYSCALL: PVM sets RCX, R11, RFLAGS (SFMASK) and RIP = LSTAR but leaves
 * CS, SS and the CPL as they were, so the fetch at LSTAR runs in ring 3
 * and faults (#PF, user, instruction fetch) into the guest's page-fault
 * handler. SYSENTER and INT n raise #UD. Exceptions themselves, IRET and
 * SYSRET work. kvmpc sees none of these events, nor the fetch at LSTAR
 * (PVM raises the #PF before any code breakpoint there is checked), but
 * hardware breakpoints (KVM_SET_GUEST_DEBUG) on the first instruction of
 * the guest's #PF and #UD handlers stop every such exception in ring 0.
 * There the frame on the stack shows what ring 3 did (user_entry.h);
 * kvmpc undoes the exception delivery and finishes the entry instead.
 * Any other #PF or #UD goes on after one single step over the breakpoint.
 *
 * The handler addresses come from the guest's IDT, read when the guest
 * writes MSR_LSTAR (an MSR filter sends those writes here; kvmpc passes
 * them on to KVM) and again after every step. Costs: two exits per guest
 * page fault and #UD, one per system call. The guest's own debug
 * registers are not honoured while the breakpoints are in use. */
#ifndef KVMPC_PVM_QUIRKS_H
#define KVMPC_PVM_QUIRKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vcpu;

/* Per-vCPU state, part of struct vcpu. */
struct pvm_quirks {
    uint64_t pf_handler, ud_handler; /* breakpoints; 0: none */
    bool stepping;                   /* single-stepping over one of them */
    /* entries completed; other exceptions stepped over */
    uint64_t syscalls, sysenters, ints, stepped;
};

/* VM-wide setup before any vCPU runs: guest writes of MSR_LSTAR exit to
 * userspace. Returns 0, or -1 (reported) when KVM cannot filter MSRs. */
int pvm_quirks_vm_init(int vm_fd);

/* Handles an exit only the quirks cause (KVM_EXIT_DEBUG,
 * KVM_EXIT_X86_WRMSR, KVM_EXIT_X86_RDMSR). Returns false, with diag
 * filled in, when the vCPU cannot go on. */
bool pvm_quirks_handle_exit(struct vcpu *v, char *diag, size_t diag_len);

#endif
