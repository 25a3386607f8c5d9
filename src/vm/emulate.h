/* Completion, in userspace, of guest instructions the host's in-kernel
 * emulator gives up on (KVM_EXIT_INTERNAL_ERROR, suberror EMULATION):
 * int3/int1/into, cmpxchg8b/16b (atomically on guest memory), the XSAVE
 * family, xgetbv/xsetbv, rdpid, rdtscp, rdpkru/wrpkru, wbinvd/invd.
 * Exceptions an instruction must raise (#PF, #GP, #UD, #NM, #SS) are
 * injected instead of completing it. What cannot be completed stops the
 * VM with a one-line diagnostic: mode, RIP, bytes, mnemonic.
 *
 * The vCPU is reached only through struct emu_vcpu_ops, so the same code
 * runs against a real KVM vCPU (emulate_kvm.c) and a fake one in tests. */
#ifndef KVMPC_EMULATE_H
#define KVMPC_EMULATE_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vm/memory.h"
#include "vm/x86_decode.h"

struct emu_vcpu_ops {
    int (*get_regs)(void *vcpu, struct kvm_regs *regs);
    int (*set_regs)(void *vcpu, const struct kvm_regs *regs);
    int (*get_sregs)(void *vcpu, struct kvm_sregs *sregs);
    int (*set_sregs)(void *vcpu, const struct kvm_sregs *sregs);
    /* The XSAVE image in KVM's layout (struct kvm_xsave: standard format,
     * XSTATE_BV = components in use); len is xsave_size(). */
    size_t (*xsave_size)(void *vcpu);
    int (*get_xsave)(void *vcpu, void *buf, size_t len);
    int (*set_xsave)(void *vcpu, const void *buf, size_t len);
    int (*get_xcrs)(void *vcpu, struct kvm_xcrs *xcrs);
    /* Fails (non-zero) when the value is invalid for the vCPU. */
    int (*set_xcrs)(void *vcpu, const struct kvm_xcrs *xcrs);
    /* Fails when the MSR is not available. */
    int (*get_msr)(void *vcpu, uint32_t index, uint64_t *value);
    int (*get_events)(void *vcpu, struct kvm_vcpu_events *events);
    int (*set_events)(void *vcpu, const struct kvm_vcpu_events *events);
    /* CPUID as the guest sees it (leaf 0xD layout, 0x80000008). */
    void (*cpuid)(void *vcpu, uint32_t leaf, uint32_t subleaf,
                  uint32_t out[4]);
    /* The vCPU thread's executor for vector instructions (see
     * emulate_native.h); NULL, or returning NULL, leaves them unsupported. */
    struct emu_native *(*native)(void *vcpu);
};

enum emu_result {
    EMU_DONE,        /* completed; resume the guest */
    EMU_FAULT,       /* the exception it raises was injected; resume */
    EMU_UNSUPPORTED, /* cannot complete; diag says why; stop the VM */
    EMU_ERROR,       /* a vCPU operation failed; diag says which */
};

/* Counters, safe to share between vCPU threads. */
struct emu_stats {
    uint64_t completed[X86_OP_COUNT];
    uint64_t faulted[X86_OP_COUNT]; /* an exception was injected instead */
    uint64_t unsupported;
};

/* Handles one KVM_EXIT_INTERNAL_ERROR exit of the vCPU. stats may be
 * NULL. On EMU_UNSUPPORTED/EMU_ERROR, diag holds one line (no newline). */
enum emu_result emu_handle_failure(const struct emu_vcpu_ops *ops, void *vcpu,
                                   const struct guest_mem *mem,
                                   const struct kvm_run *run,
                                   struct emu_stats *stats, char *diag,
                                   size_t diag_len);

/* Prints the non-zero counters under a heading, one "  <insn> N" line
 * each; nothing when all are zero. */
void emu_stats_print(const struct emu_stats *stats, FILE *out);

struct emu_native;

/* The real-vCPU implementation (emulate_kvm.c). */
struct emu_kvm_vcpu {
    int vcpu_fd;
    size_t xsave_size; /* 4096, or what KVM_CAP_XSAVE2 reports */
    struct emu_native *native;
    struct kvm_run *sync; /* state comes and goes through it, or NULL */
};

extern const struct emu_vcpu_ops emu_kvm_ops;

/* Prepares v for vcpu_fd of the VM vm_fd. Returns 0 or -1 (reported). */
int emu_kvm_init(struct emu_kvm_vcpu *v, int vm_fd, int vcpu_fd);
void emu_kvm_fini(struct emu_kvm_vcpu *v);

/* Has every exit of v bring the registers, segment state and events in
 * run (KVM_CAP_SYNC_REGS), and the ops read and write them there: what a
 * completion changes goes back with the next KVM_RUN, which applies it
 * before anything else. That saves the four or more ioctls a completion
 * costs, but copies the state out on every exit: worth it where emulation
 * failures are the common exit (PVM hosts, ~6 us per ioctl). Nothing else
 * may set v's state by ioctl between a completion and the next KVM_RUN.
 * Returns 0, or -1 (not reported) when KVM cannot sync all three. */
int emu_kvm_sync_regs(struct emu_kvm_vcpu *v, int vm_fd, struct kvm_run *run);

/* Asks KVM to exit to userspace on every emulation failure, with the
 * instruction bytes, instead of injecting #UD (KVM_CAP_EXIT_ON_
 * EMULATION_FAILURE). Call once per VM before the vCPUs run. Returns 0,
 * or -1 (not reported) when the capability is missing: the exits still
 * come for CPL 0, with a #UD queued that emu_handle_failure() discards. */
int emu_kvm_enable(int vm_fd);

#endif
