#include "vm/vcpu.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot/kernel.h"
#include "platform/layout.h"
#include "util.h"
#include "vm/cpuid.h"
#include "vm/machine.h"

#define SIG_VCPU_KICK SIGUSR1

/* Boot GDT selectors: the 64-bit boot protocol wants code at 0x10 and
 * data at 0x18; PVH only needs flat segments. */
#define GDT_CODE32 0x08
#define GDT_CODE64 0x10
#define GDT_DATA 0x18
#define GDT_TSS 0x20

#define CR0_PE 0x1ULL
#define CR0_ET 0x10ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

#define MSR_MTRR_DEF_TYPE 0x2FF
#define MTRR_ENABLE_WB 0xC06 /* MTRRs + fixed ranges on, default WB */

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_EXTINT 0x700
#define APIC_MODE_NMI 0x400

static void kick_handler(int sig) { (void)sig; }

int vcpu_install_kick_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler; /* no SA_RESTART: KVM_RUN returns EINTR */
    sigemptyset(&sa.sa_mask);
    return sigaction(SIG_VCPU_KICK, &sa, NULL);
}

int vcpu_create(struct vm *vm, unsigned id, struct vcpu *v)
{
    memset(v, 0, sizeof(*v));
    v->vm = vm;
    v->id = id;
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
    if (v->fd < 0) {
        report_error("KVM_CREATE_VCPU %u: %s", id, strerror(errno));
        return -1;
    }
    v->run_size = vm->run_size;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        report_error("cannot map the vCPU run area: %s", strerror(errno));
        return -1;
    }
    struct kvm_cpuid2 *cpuid = calloc(
        1, sizeof(*cpuid) + CPUID_MAX_ENTRIES * sizeof(cpuid->entries[0]));
    if (!cpuid)
        return -1;
    struct cpuid_policy policy = {.ncpus = vm->ncpus,
                                  .hide_cx16 = vm->host_is_pvm,
                                  .hide_pv_unhalt = vm->host_is_pvm};
    cpuid_for_vcpu(vm->supported_cpuid, &policy, id, cpuid);
    int r = ioctl(v->fd, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (r < 0) {
        report_error("KVM_SET_CPUID2: %s", strerror(errno));
        return -1;
    }
    if (emu_kvm_init(&v->emu, vm->vm_fd, v->fd))
        return -1;
    /* On PVM most exits are completions: let them skip the ioctls. */
    if (vm->host_is_pvm && emu_kvm_sync_regs(&v->emu, vm->vm_fd, v->run))
        report_warning("vCPU %u: KVM cannot sync registers through the "
                       "run area; completions will be slower", id);
    return 0;
}

static int set_msr(struct vcpu *v, uint32_t index, uint64_t value)
{
    /* struct kvm_msrs ends in a flexible array: room for one entry */
    uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) /
                 sizeof(uint64_t)] = {0};
    struct kvm_msrs *m = (struct kvm_msrs *)buf;
    m->nmsrs = 1;
    m->entries[0].index = index;
    m->entries[0].data = value;
    return ioctl(v->fd, KVM_SET_MSRS, m) == 1 ? 0 : -1;
}

int vcpu_set_platform_state(struct vcpu *v)
{
    struct kvm_lapic_state lapic;
    if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0) {
        report_error("KVM_GET_LAPIC: %s", strerror(errno));
        return -1;
    }
    uint32_t lint0 = get_le32(&lapic.regs[APIC_LVT_LINT0]);
    uint32_t lint1 = get_le32(&lapic.regs[APIC_LVT_LINT1]);
    put_le32(&lapic.regs[APIC_LVT_LINT0], (lint0 & ~0x700u) | APIC_MODE_EXTINT);
    put_le32(&lapic.regs[APIC_LVT_LINT1], (lint1 & ~0x700u) | APIC_MODE_NMI);
    if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0) {
        report_error("KVM_SET_LAPIC: %s", strerror(errno));
        return -1;
    }
    if (set_msr(v, MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB))
        report_warning("vCPU %u: cannot enable MTRRs", v->id);
    return 0;
}

static struct kvm_segment flat_segment(uint16_t sel, uint8_t type, bool code64)
{
    return (struct kvm_segment){
        .base = 0, .limit = 0xFFFFFFFF, .selector = sel, .type = type,
        .present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1,
        .l = code64 ? 1 : 0, .g = 1};
}

static int write_boot_gdt(struct vm *vm)
{
    uint64_t gdt[5] = {
        0,
        0x00CF9B000000FFFFULL, /* 0x08 code32 */
        0x00AF9B000000FFFFULL, /* 0x10 code64 */
        0x00CF93000000FFFFULL, /* 0x18 data */
        0x00008B0000000067ULL, /* 0x20 TSS, busy, base 0, limit 0x67 */
    };
    return gmem_write(&vm->mem, LAYOUT_BOOT_GDT, gdt, sizeof(gdt));
}

/* Identity map of the low 4 GiB with 2 MiB pages. */
static int write_boot_page_tables(struct vm *vm)
{
    uint64_t pml4 = LAYOUT_PAGE_TABLES, pdpt = pml4 + 0x1000;
    uint64_t pd = pdpt + 0x1000;
    uint64_t *t = gpa_ptr(&vm->mem, pml4, LAYOUT_PAGE_TABLES_SIZE, GMEM_WRITE);
    if (!t)
        return -1;
    memset(t, 0, LAYOUT_PAGE_TABLES_SIZE);
    t[0] = pdpt | 0x3;
    for (unsigned i = 0; i < 4; i++) {
        t[512 + i] = (pd + 0x1000 * i) | 0x3;
        for (unsigned j = 0; j < 512; j++)
            t[1024 + 512 * i + j] =
                ((uint64_t)(512 * i + j) << 21) | 0x83; /* P, RW, PS */
    }
    return 0;
}

int vcpu_set_entry_state(struct vcpu *v, const struct kernel_entry *e)
{
    struct vm *vm = v->vm;
    struct kvm_sregs s;
    struct kvm_regs r = {0};
    if (write_boot_gdt(vm) || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
        report_error("cannot prepare the boot CPU state");
        return -1;
    }
    s.gdt.base = LAYOUT_BOOT_GDT;
    s.gdt.limit = 5 * 8 - 1;
    s.idt.base = 0;
    s.idt.limit = 0;
    s.tr = (struct kvm_segment){.base = 0, .limit = 0x67, .selector = GDT_TSS,
                                .type = 11, .present = 1};
    s.ldt = (struct kvm_segment){.selector = 0, .type = 2, .present = 1,
                                 .unusable = 1};
    struct kvm_segment data = flat_segment(GDT_DATA, 3, false);
    s.ds = s.es = s.fs = s.gs = s.ss = data;
    s.cr0 = CR0_PE | CR0_ET;
    if (e->mode == ENTRY_LONG64) {
        if (write_boot_page_tables(vm)) {
            report_error("cannot write the boot page tables");
            return -1;
        }
        s.cs = flat_segment(GDT_CODE64, 11, true);
        s.cr0 |= CR0_PG;
        s.cr3 = LAYOUT_PAGE_TABLES;
        s.cr4 = CR4_PAE;
        s.efer = EFER_LME | EFER_LMA;
    } else {
        s.cs = flat_segment(GDT_CODE32, 11, false);
        s.cr4 = 0;
        s.efer = 0;
    }
    r.rflags = 0x2;
    r.rip = e->rip;
    r.rsi = e->rsi;
    r.rbx = e->rbx;
    r.rsp = LAYOUT_BOOT_STACK_TOP;
    if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 ||
        ioctl(v->fd, KVM_SET_REGS, &r) < 0) {
        report_error("cannot set the boot CPU state: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- exit handling ------------------------------------------------------ */

static void handle_pio(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;
    if (size != 1 && size != 2 && size != 4)
        return;
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        bool claimed;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            claimed = bus_write(&v->vm->pio, run->io.port, data, size);
        } else {
            memset(data, 0xFF, size); /* unclaimed reads: all ones */
            claimed = bus_read(&v->vm->pio, run->io.port, data, size);
        }
        if (!claimed)
            v->stats.pio_unclaimed++;
    }
}

static void handle_mmio(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    unsigned len = run->mmio.len;
    if (len == 0 || len > sizeof(run->mmio.data))
        return;
    bool claimed;
    if (run->mmio.is_write) {
        claimed = bus_write(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data,
                            len);
    } else {
        memset(run->mmio.data, 0xFF, len); /* master abort: all ones */
        claimed = bus_read(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data,
                           len);
    }
    if (!claimed)
        v->stats.mmio_unclaimed++;
}

static void handle_system_event(struct vcpu *v)
{
    switch (v->run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        vm_request_stop(v->vm, VM_STOP_POWEROFF);
        break;
    case KVM_SYSTEM_EVENT_RESET:
        vm_request_stop(v->vm, VM_STOP_RESET);
        break;
    default:
        report_error("vCPU %u: unexpected system event %u", v->id,
                     v->run->system_event.type);
        vm_request_stop(v->vm, VM_STOP_INTERNAL_ERROR);
        break;
    }
}

static void fatal_exit(struct vcpu *v, enum vm_stop_reason why,
                       const char *fmt, ...) PRINTF_LIKE(3, 4);

static void fatal_exit(struct vcpu *v, enum vm_stop_reason why,
                       const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Only the first fatal exit reports; the others just stop. */
    if (__atomic_load_n(&v->vm->stop_reason, __ATOMIC_ACQUIRE) == VM_RUNNING) {
        console_restore_terminal();
        report_error("vCPU %u: %s", v->id, msg);
        vcpu_dump(v);
    }
    vm_request_stop(v->vm, why);
}

/* Returns false when the loop must end. */
static bool handle_internal_error(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
        char diag[320];
        enum emu_result r =
            emu_handle_failure(&emu_kvm_ops, &v->emu, &v->vm->mem, run,
                               &v->vm->emu_stats, diag, sizeof(diag));
        if (r == EMU_DONE || r == EMU_FAULT)
            return true;
        fatal_exit(v, VM_STOP_INTERNAL_ERROR, "%s", diag);
        return false;
    }
    const char *what = run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                           ? "instruction emulation failed"
                           : "KVM internal error";
    fatal_exit(v, VM_STOP_INTERNAL_ERROR, "%s (suberror %u)", what,
               run->internal.suberror);
    return false;
}

/* Exits that only the PVM work-arounds ask for. */
static bool handle_pvm_quirk(struct vcpu *v)
{
    char diag[200];
    if (!v->vm->host_is_pvm) {
        fatal_exit(v, VM_STOP_INTERNAL_ERROR, "unexpected KVM exit %u",
                   v->run->exit_reason);
        return false;
    }
    if (pvm_quirks_handle_exit(v, diag, sizeof(diag)))
        return true;
    fatal_exit(v, VM_STOP_INTERNAL_ERROR, "%s", diag);
    return false;
}

/* Returns false when the loop must end. */
static bool handle_exit(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    if (run->exit_reason < VCPU_EXIT_REASONS)
        v->stats.exits[run->exit_reason]++;
    /* Batched writes happened before this exit: deliver them first. */
    vm_drain_coalesced(v->vm);
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_pio(v);
        return true;
    case KVM_EXIT_MMIO:
        handle_mmio(v);
        return true;
    case KVM_EXIT_INTR:
    case KVM_EXIT_HLT:
        return true;
    case KVM_EXIT_SHUTDOWN:
        if (v->vm->cfg->reboot == REBOOT_RESTART) {
            vm_request_stop(v->vm, VM_STOP_RESET);
            return false;
        }
        fatal_exit(v, VM_STOP_TRIPLE_FAULT, "triple fault");
        return false;
    case KVM_EXIT_SYSTEM_EVENT:
        handle_system_event(v);
        return false;
    case KVM_EXIT_INTERNAL_ERROR:
        return handle_internal_error(v);
    case KVM_EXIT_DEBUG:
    case KVM_EXIT_X86_RDMSR:
    case KVM_EXIT_X86_WRMSR:
        return handle_pvm_quirk(v);
    case KVM_EXIT_FAIL_ENTRY:
        fatal_exit(v, VM_STOP_INTERNAL_ERROR,
                   "VM entry failed (hardware reason 0x%llx)",
                   (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return false;
    default:
        fatal_exit(v, VM_STOP_INTERNAL_ERROR, "unexpected KVM exit %u",
                   run->exit_reason);
        return false;
    }
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_VCPU_KICK);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    char name[16];
    snprintf(name, sizeof(name), "vcpu%u", v->id);
    pthread_setname_np(pthread_self(), name);

    if (v->id == 0)
        v->vm->first_run_ns = monotonic_ns();
    while (vm_stop_reason(v->vm) == VM_RUNNING) {
        int r = ioctl(v->fd, KVM_RUN, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                v->run->immediate_exit = 0;
                v->stats.exits[KVM_EXIT_INTR]++;
                continue;
            }
            fatal_exit(v, VM_STOP_INTERNAL_ERROR, "KVM_RUN: %s",
                       strerror(errno));
            break;
        }
        if (!handle_exit(v))
            break;
    }
    return NULL;
}

int vcpu_start(struct vcpu *v)
{
    if (pthread_create(&v->thread, NULL, vcpu_thread, v)) {
        report_error("cannot start vCPU thread %u", v->id);
        return -1;
    }
    v->started = true;
    return 0;
}

void vcpu_kick(struct vcpu *v)
{
    if (!v->started)
        return;
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
    pthread_kill(v->thread, SIG_VCPU_KICK);
}

void vcpu_join(struct vcpu *v)
{
    if (v->started)
        pthread_join(v->thread, NULL);
    v->started = false;
}

void vcpu_destroy(struct vcpu *v)
{
    emu_kvm_fini(&v->emu);
    if (v->run)
        munmap(v->run, v->run_size);
    if (v->fd >= 0)
        close(v->fd);
    v->run = NULL;
    v->fd = -1;
}

/* ---- diagnostics ----------------------------------------------------- */

static const char *cpu_mode(const struct kvm_sregs *s)
{
    if (!(s->cr0 & CR0_PE))
        return "real mode";
    if (s->efer & EFER_LMA)
        return s->cs.l ? "64-bit mode" : "compatibility mode";
    return s->cs.db ? "32-bit protected mode" : "16-bit protected mode";
}

/* Guest-physical address of a linear address, via KVM's own walk. */
static bool linear_to_phys(struct vcpu *v, const struct kvm_sregs *s,
                           uint64_t linear, uint64_t *phys)
{
    if (!(s->cr0 & CR0_PG)) {
        *phys = linear;
        return true;
    }
    struct kvm_translation t = {.linear_address = linear};
    if (ioctl(v->fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
        return false;
    *phys = t.physical_address;
    return true;
}

static int read_code(struct vcpu *v, const struct kvm_sregs *s, uint64_t rip,
                     uint8_t *buf, int len)
{
    uint64_t linear = (s->efer & EFER_LMA) && s->cs.l ? rip : s->cs.base + rip;
    if (!(s->efer & EFER_LMA))
        linear &= 0xFFFFFFFFULL;
    int got = 0;
    while (got < len) {
        uint64_t phys;
        if (!linear_to_phys(v, s, linear + got, &phys))
            break;
        int chunk = (int)MIN((uint64_t)(len - got),
                             0x1000 - ((linear + got) & 0xFFF));
        if (gmem_read(&v->vm->mem, phys, buf + got, (size_t)chunk))
            break;
        got += chunk;
    }
    return got;
}

void vcpu_dump(struct vcpu *v)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
        ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
        fprintf(stderr, "  (registers unavailable: %s)\n", strerror(errno));
        return;
    }
    uint8_t code[15];
    int n = read_code(v, &s, r.rip, code, sizeof(code));
    fprintf(stderr, "  %s, CS:RIP %04x:%016llx, RFLAGS %08llx\n",
            cpu_mode(&s), s.cs.selector, (unsigned long long)r.rip,
            (unsigned long long)r.rflags);
    fprintf(stderr, "  code:");
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %02x", code[i]);
    fprintf(stderr, n ? "\n" : " (unreadable)\n");
    fprintf(stderr,
            "  RAX %016llx RBX %016llx RCX %016llx RDX %016llx\n"
            "  RSI %016llx RDI %016llx RBP %016llx RSP %016llx\n"
            "  R8  %016llx R9  %016llx R10 %016llx R11 %016llx\n"
            "  R12 %016llx R13 %016llx R14 %016llx R15 %016llx\n",
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9,
            r.r10, r.r11, r.r12, r.r13, r.r14, r.r15);
    fprintf(stderr,
            "  CR0 %016llx CR2 %016llx CR3 %016llx CR4 %016llx EFER %llx\n"
            "  GDT %016llx/%04x IDT %016llx/%04x SS %04x DS %04x\n",
            s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.gdt.base, s.gdt.limit,
            s.idt.base, s.idt.limit, s.ss.selector, s.ds.selector);
}
