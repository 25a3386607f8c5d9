/* The VM object: the one owner of all machine state. machine.c builds the
 * PC in one visible order and tears it down in reverse. */
#ifndef KVMPC_MACHINE_H
#define KVMPC_MACHINE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot/kernel.h"
#include "cli/vm_config.h"
#include "io/console.h"
#include "io/evloop.h"
#include "platform/machine_info.h"
#include "platform/pci.h"
#include "platform/piix.h"
#include "vm/bus.h"
#include "vm/irq.h"
#include "vm/memory.h"
#include "vm/vcpu.h"
#include "hw/acpi_pm.h"
#include "hw/debugcon.h"
#include "hw/i8042.h"
#include "hw/rtc.h"
#include "hw/serial.h"
#include "hw/sysctl.h"
#include "platform/fw_cfg.h"
#include "virtio/blk.h"
#include "virtio/pci.h"

enum vm_stop_reason {
    VM_RUNNING = 0,
    VM_STOP_POWEROFF,
    VM_STOP_RESET,
    VM_STOP_TRIPLE_FAULT,
    VM_STOP_INTERNAL_ERROR,
    VM_STOP_SIGNAL,
    VM_STOP_QUIT,
    VM_STOP_HOST_ERROR,
};

/* The host side the VM talks to; outlives guest-initiated restarts. */
struct vm_env {
    struct console *console;
    struct evloop *loop;
    int debugcon_fd; /* -1: debug port output dropped */
};

/* What main.c read and validated before any VM exists; reused across
 * guest-initiated restarts. */
struct boot_inputs {
    struct kernel_image kernel; /* direct boot when kernel.data != NULL */
    struct kernel_plan plan;
    uint8_t *kernel_file;
    size_t kernel_len;
    uint8_t *initrd;
    size_t initrd_len;
    uint8_t *firmware;
    size_t firmware_len;
    struct blockdev *disks[CONFIG_MAX_DISKS]; /* opened, in --disk order */
    unsigned ndisks;
};

/* One --disk: a virtio-blk function on bus 0. */
struct vm_disk {
    struct virtio_blk *blk;
    struct virtio_pci vp;
    bool vp_ready, plugged, watched;
};

struct vm {
    const struct vm_config *cfg;
    const struct boot_inputs *boot;
    struct machine_info info;
    int kvm_fd, vm_fd;
    size_t run_size;
    struct kvm_cpuid2 *supported_cpuid;
    bool host_is_pvm;

    uint8_t *ram;
    uint64_t ram_size;
    struct guest_mem mem;
    unsigned next_slot;

    struct bus pio, mmio;
    struct irq_router irq;
    struct pci_host pci;
    struct piix piix;

    const struct vm_env *env;
    uint8_t *rom; /* pristine firmware copy mapped below 4 GiB */
    size_t rom_size;

    /* ISA interrupt inputs of the legacy devices */
    struct irq_line irq_com1, irq_rtc, irq_kbd, irq_sci;
    struct serial com1;
    struct rtc rtc;
    struct i8042 kbc;
    struct acpi_pm pm;
    struct debugcon debugcon;
    struct sysctl sysctl;
    struct fw_cfg fw_cfg;
    bool rtc_timer_registered;
    bool devices_up;
    struct vm_disk disks[CONFIG_MAX_DISKS];
    unsigned ndisks;

    struct vcpu *vcpus;
    unsigned ncpus;
    struct emu_stats emu_stats; /* instructions completed in userspace */

    /* KVM's coalesced-write ring (debug port output), shared by vCPUs */
    struct kvm_coalesced_mmio_ring *coalesced;
    pthread_mutex_t coalesced_lock;

    int stop_reason; /* enum vm_stop_reason, first one wins */
    uint64_t first_run_ns; /* CLOCK_MONOTONIC at the BSP's first KVM_RUN */
};

int vm_create(struct vm *vm, const struct vm_config *cfg,
              const struct boot_inputs *boot, const struct vm_env *env);
/* Runs until the guest or the host stops it; returns the reason. */
enum vm_stop_reason vm_run(struct vm *vm);
void vm_destroy(struct vm *vm);

/* Delivers the writes KVM batched in the coalesced ring. Any thread. */
void vm_drain_coalesced(struct vm *vm);

/* Thread-safe; the first reason wins. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason why);
enum vm_stop_reason vm_stop_reason(struct vm *vm);

/* Prints --stats counters: exits by reason, startup time (from t0_ns,
 * CLOCK_MONOTONIC) and the VMM's memory overhead. */
void vm_print_stats(struct vm *vm, uint64_t t0_ns);

uint64_t monotonic_ns(void);

#endif
