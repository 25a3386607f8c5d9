#include "vm/pvm_quirks.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util.h"
#include "vm/guest_paging.h"
#include "vm/machine.h"
#include "vm/user_entry.h"
#include "vm/vcpu.h"

#define VEC_UD 6
#define VEC_PF 14
#define EFER_LMA (1ull << 10)
#define PFEC_USER 0x4ull
/* DR7: breakpoints 0 and 1 enabled (local and global), on execution of
 * one byte (their R/W and LEN fields zero). */
#define DR7_BP0 0x3ull
#define DR7_BP1 0xCull

int pvm_quirks_vm_init(int vm_fd)
{
    struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR};
    cap.args[0] = KVM_MSR_EXIT_REASON_FILTER;
    uint8_t deny_lstar = 0; /* one MSR, its bit clear: writes exit */
    struct kvm_msr_filter filter = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};
    filter.ranges[0] = (struct kvm_msr_filter_range){
        .flags = KVM_MSR_FILTER_WRITE, .nmsrs = 1, .base = MSR_LSTAR,
        .bitmap = &deny_lstar};
    if (ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0 ||
        ioctl(vm_fd, KVM_X86_SET_MSR_FILTER, &filter) < 0) {
        report_warning("PVM host: cannot filter MSR writes (%s); system "
                       "calls from guest user mode will fail",
                       strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- vCPU access -------------------------------------------------------- */

static bool fail(char *diag, size_t len, const char *what)
{
    snprintf(diag, len, "PVM work-around: %s failed: %s", what,
             strerror(errno));
    return false;
}

/* struct kvm_msrs ends in a flexible array: room for n entries. */
#define MSRS_WORDS(n) \
    ((sizeof(struct kvm_msrs) + (n) * sizeof(struct kvm_msr_entry) + 7) / 8)

/* Reads n MSRs into values[]; 0 or -1. */
static int get_msrs(struct vcpu *v, const uint32_t *index, uint64_t *values,
                    unsigned n)
{
    uint64_t buf[MSRS_WORDS(3)] = {0};
    struct kvm_msrs *m = (struct kvm_msrs *)buf;
    if (n > 3)
        return -1;
    m->nmsrs = n;
    for (unsigned i = 0; i < n; i++)
        m->entries[i].index = index[i];
    if (ioctl(v->fd, KVM_GET_MSRS, m) != (int)n)
        return -1;
    for (unsigned i = 0; i < n; i++)
        values[i] = m->entries[i].data;
    return 0;
}

static int set_msr(struct vcpu *v, uint32_t index, uint64_t value)
{
    uint64_t buf[MSRS_WORDS(1)] = {0};
    struct kvm_msrs *m = (struct kvm_msrs *)buf;
    m->nmsrs = 1;
    m->entries[0].index = index;
    m->entries[0].data = value;
    return ioctl(v->fd, KVM_SET_MSRS, m) == 1 ? 0 : -1;
}

/* The vCPU's registers, from the run area where the exit brought them
 * (emu_kvm_sync_regs()), else by ioctl. */
static bool get_state(struct vcpu *v, struct kvm_regs *r, struct kvm_sregs *s)
{
    return emu_kvm_ops.get_regs(&v->emu, r) == 0 &&
           emu_kvm_ops.get_sregs(&v->emu, s) == 0;
}

static struct gp_mmu mmu_at(const struct kvm_sregs *s, uint64_t rflags,
                            uint8_t cpl)
{
    return (struct gp_mmu){
        .cr0 = s->cr0, .cr3 = s->cr3, .cr4 = s->cr4, .efer = s->efer,
        .rflags = rflags, .cpl = cpl,
        .mode = x86_mode_of(s->cr0, s->efer, rflags, s->cs.l, s->cs.db)};
}

/* Guest memory as ring 0 reads it (the CPU's own IDT, TSS and stack
 * accesses). */
static bool read_kernel(struct vcpu *v, const struct kvm_sregs *s,
                        uint64_t rflags, uint64_t la, void *buf, size_t len)
{
    struct gp_mmu mmu = mmu_at(s, rflags, 0);
    struct gp_fault f;
    return gp_read(&v->vm->mem, &mmu, la, buf, len, GP_READ, &f) == GP_OK;
}

static bool idt_gate(struct vcpu *v, const struct kvm_sregs *s,
                     uint64_t rflags, unsigned vector, struct idt_gate64 *g)
{
    uint8_t raw[IDT_GATE64_SIZE];
    uint64_t at = (uint64_t)vector * IDT_GATE64_SIZE;
    return (s->efer & EFER_LMA) && s->idt.limit >= at + IDT_GATE64_SIZE - 1 &&
           read_kernel(v, s, rflags, s->idt.base + at, raw, sizeof(raw)) &&
           idt_gate64_decode(raw, g);
}

/* Where vector goes in the guest's IDT now; 0 when nowhere usable. */
static uint64_t handler_of(struct vcpu *v, const struct kvm_sregs *s,
                           uint64_t rflags, unsigned vector)
{
    struct idt_gate64 g;
    return idt_gate(v, s, rflags, vector, &g) ? g.handler : 0;
}

/* The two breakpoints, a single step, or nothing. */
static int set_guest_debug(struct vcpu *v, bool step)
{
    struct kvm_guest_debug d;
    memset(&d, 0, sizeof(d));
    if (step) {
        int flags = ioctl(v->vm->vm_fd, KVM_CHECK_EXTENSION,
                          KVM_CAP_SET_GUEST_DEBUG2);
        d.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
        if (flags > 0 && (flags & KVM_GUESTDBG_BLOCKIRQ))
            d.control |= KVM_GUESTDBG_BLOCKIRQ; /* no detour into an IRQ */
    } else if (v->pvm.pf_handler || v->pvm.ud_handler) {
        d.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
        d.arch.debugreg[0] = v->pvm.pf_handler;
        d.arch.debugreg[1] = v->pvm.ud_handler;
        d.arch.debugreg[7] = (v->pvm.pf_handler ? DR7_BP0 : 0) |
                             (v->pvm.ud_handler ? DR7_BP1 : 0);
    }
    return ioctl(v->fd, KVM_SET_GUEST_DEBUG, &d) < 0 ? -1 : 0;
}

/* (Re)places the breakpoints where the guest's IDT sends #PF and #UD. */
static bool arm(struct vcpu *v, char *diag, size_t len)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    if (!get_state(v, &r, &s))
        return fail(diag, len, "reading the vCPU state");
    v->pvm.pf_handler = handler_of(v, &s, r.rflags, VEC_PF);
    v->pvm.ud_handler = handler_of(v, &s, r.rflags, VEC_UD);
    v->pvm.stepping = false;
    if (set_guest_debug(v, false))
        return fail(diag, len, "KVM_SET_GUEST_DEBUG");
    return true;
}

/* Lets the exception at the breakpoint run its course. */
static bool step_over(struct vcpu *v, char *diag, size_t len)
{
    v->pvm.stepped++;
    v->pvm.stepping = true;
    if (set_guest_debug(v, true))
        return fail(diag, len, "KVM_SET_GUEST_DEBUG (single step)");
    return true;
}

static bool put_state(struct vcpu *v, const struct kvm_regs *r,
                      const struct kvm_sregs *s, char *diag, size_t len)
{
    if ((s && emu_kvm_ops.set_sregs(&v->emu, s) != 0) ||
        emu_kvm_ops.set_regs(&v->emu, r) != 0)
        return fail(diag, len, "writing the vCPU state");
    return true;
}

/* ---- at the #PF handler: SYSCALL ------------------------------------------ */

static bool at_pf_handler(struct vcpu *v, char *diag, size_t len)
{
    static const uint32_t idx[3] = {MSR_STAR, MSR_LSTAR, MSR_SFMASK};
    struct kvm_regs r;
    struct kvm_sregs s;
    uint8_t raw[INT_FRAME64_SIZE + 8];
    struct exc_frame64 f = {0};
    uint64_t val[3];
    if (!get_state(v, &r, &s))
        return fail(diag, len, "reading the vCPU state");
    if (read_kernel(v, &s, r.rflags, r.rsp, raw, sizeof(raw)))
        exc_frame64_parse(raw, true, &f);
    if ((f.cs & 3) != 3 || !(f.error & PFEC_USER) || s.cr2 != f.rip)
        return step_over(v, diag, len);
    if (get_msrs(v, idx, val, 3))
        return fail(diag, len, "KVM_GET_MSRS");
    struct syscall_msrs m = {.star = val[0], .lstar = val[1],
                             .sfmask = val[2]};
    if (!syscall_lost_in_fault(&m, &f, s.cr2, r.r11))
        return step_over(v, diag, len);
    syscall_complete(&m, &f, &r, &s);
    v->pvm.syscalls++;
    return put_state(v, &r, &s, diag, len);
}

/* ---- at the #UD handler: SYSENTER, INT n ---------------------------------- */

static bool do_sysenter(struct vcpu *v, struct kvm_regs *r,
                        struct kvm_sregs *s, const struct exc_frame64 *f,
                        char *diag, size_t len)
{
    static const uint32_t idx[3] = {MSR_SYSENTER_CS, MSR_SYSENTER_EIP,
                                    MSR_SYSENTER_ESP};
    uint64_t val[3];
    if (get_msrs(v, idx, val, 3))
        return fail(diag, len, "KVM_GET_MSRS");
    struct sysenter_msrs m = {.cs = val[0], .eip = val[1], .esp = val[2]};
    if (!sysenter_complete(&m, f, r, s))
        return step_over(v, diag, len);
    v->pvm.sysenters++;
    return put_state(v, r, s, diag, len);
}

static bool do_int(struct vcpu *v, struct kvm_regs *r, struct kvm_sregs *s,
                   const struct exc_frame64 *f, uint8_t vector, char *diag,
                   size_t len)
{
    struct idt_gate64 g;
    uint8_t tss[TSS64_MIN_SIZE], frame[INT_FRAME64_SIZE];
    if (!idt_gate(v, s, r->rflags, vector, &g) ||
        !int_gate_usable(&g, s->cs.selector) ||
        s->tr.limit < TSS64_MIN_SIZE - 1 ||
        !read_kernel(v, s, r->rflags, s->tr.base, tss, sizeof(tss)))
        return step_over(v, diag, len); /* the #UD stands */
    uint64_t at = int_frame_address(tss, &g);
    int_complete(f, &g, at, frame, r);
    struct gp_mmu mmu = mmu_at(s, r->rflags, 0);
    struct gp_fault pf;
    if (gp_write(&v->vm->mem, &mmu, at, frame, sizeof(frame), &pf) != GP_OK)
        return step_over(v, diag, len);
    v->pvm.ints++;
    return put_state(v, r, NULL, diag, len);
}

static bool at_ud_handler(struct vcpu *v, char *diag, size_t len)
{
    struct kvm_regs r;
    struct kvm_sregs s;
    uint8_t raw[INT_FRAME64_SIZE], insn[2];
    struct exc_frame64 f = {0};
    uint8_t vector = 0;
    if (!get_state(v, &r, &s))
        return fail(diag, len, "reading the vCPU state");
    if (read_kernel(v, &s, r.rflags, r.rsp, raw, sizeof(raw)))
        exc_frame64_parse(raw, false, &f);
    /* The instruction as ring 3 fetched it. */
    struct gp_mmu user = mmu_at(&s, f.rflags, 3);
    struct gp_fault pf;
    if ((f.cs & 3) != 3 || gp_read(&v->vm->mem, &user, f.rip, insn,
                                   sizeof(insn), GP_FETCH, &pf) != GP_OK)
        return step_over(v, diag, len);
    switch (user_insn_classify(insn, &vector)) {
    case USER_INSN_SYSENTER:
        return do_sysenter(v, &r, &s, &f, diag, len);
    case USER_INSN_INT:
        return do_int(v, &r, &s, &f, vector, diag, len);
    default:
        return step_over(v, diag, len);
    }
}

/* ---- exits -------------------------------------------------------------- */

/* The guest enables system calls: KVM gets the value, we the moment to
 * find the handlers. A value KVM refuses is a #GP, as on a CPU. */
static bool handle_wrmsr(struct vcpu *v, char *diag, size_t len)
{
    struct kvm_run *run = v->run;
    if (run->msr.index != MSR_LSTAR || set_msr(v, MSR_LSTAR, run->msr.data)) {
        run->msr.error = 1;
        return true;
    }
    run->msr.error = 0;
    return arm(v, diag, len);
}

static bool handle_debug(struct vcpu *v, char *diag, size_t len)
{
    uint64_t pc = v->run->debug.arch.pc;
    if (v->pvm.stepping) /* past the handler's first instruction */
        return arm(v, diag, len);
    if (v->pvm.pf_handler && pc == v->pvm.pf_handler)
        return at_pf_handler(v, diag, len);
    if (v->pvm.ud_handler && pc == v->pvm.ud_handler)
        return at_ud_handler(v, diag, len);
    return true; /* a breakpoint that has moved since: nothing to do */
}

bool pvm_quirks_handle_exit(struct vcpu *v, char *diag, size_t diag_len)
{
    switch (v->run->exit_reason) {
    case KVM_EXIT_DEBUG:
        return handle_debug(v, diag, diag_len);
    case KVM_EXIT_X86_WRMSR:
        return handle_wrmsr(v, diag, diag_len);
    case KVM_EXIT_X86_RDMSR: /* not filtered; refuse like a missing MSR */
        v->run->msr.error = 1;
        return true;
    default:
        snprintf(diag, diag_len, "unexpected KVM exit %u",
                 v->run->exit_reason);
        return false;
    }
}
