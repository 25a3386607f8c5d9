/* One thread per vCPU running KVM_RUN and dispatching exits. */
#ifndef KVMPC_VCPU_H
#define KVMPC_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vm/emulate.h"
#include "vm/pvm_quirks.h"

#define VCPU_EXIT_REASONS 64

struct vm;
struct kernel_entry;

struct vcpu_stats {
    uint64_t exits[VCPU_EXIT_REASONS]; /* by KVM_EXIT_* */
    uint64_t pio_unclaimed, mmio_unclaimed;
};

struct vcpu {
    struct vm *vm;
    unsigned id;
    int fd;
    struct kvm_run *run;
    size_t run_size;
    pthread_t thread;
    bool started;
    struct vcpu_stats stats;
    struct emu_kvm_vcpu emu; /* completes what KVM cannot emulate */
    struct pvm_quirks pvm;   /* PVM hosts only */
};

int vcpu_create(struct vm *vm, unsigned id, struct vcpu *v);
/* Direct boot: the BSP starts in the kernel's entry state, like a
 * firmware would leave it (LAPIC virtual wire, MTRRs on). */
int vcpu_set_entry_state(struct vcpu *v, const struct kernel_entry *e);
/* Every vCPU: LAPIC LINT0 ExtINT / LINT1 NMI, MTRR default WB. */
int vcpu_set_platform_state(struct vcpu *v);
int vcpu_start(struct vcpu *v);
/* Makes KVM_RUN return promptly (immediate_exit + signal). */
void vcpu_kick(struct vcpu *v);
void vcpu_join(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);

/* Signal used to kick vCPU threads out of KVM_RUN; its handler is empty. */
int vcpu_install_kick_handler(void);

/* Prints the register dump of a stopped vCPU (RIP, mode, instruction
 * bytes) to stderr. */
void vcpu_dump(struct vcpu *v);

#endif
