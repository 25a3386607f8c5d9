/* Vector instructions (SSE, AVX, AVX-512, BMI, ...) run on the host CPU
 * through emulate_native.c, their memory operand in a bounce area. */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "vm/emulate_native.h"
#include "vm/emulate_priv.h"

/* ---- vector instructions, run on the host --------------------------- */

/* Instructions on general registers only: no FPU/SIMD state checks. */
static bool gpr_only(const struct x86_insn *in)
{
    if (in->enc == X86_ENC_LEGACY)
        return (in->map == X86_MAP_0F38 &&
                (in->opcode == 0xF0 || in->opcode == 0xF1 ||
                 in->opcode == 0xF6)) ||
               (in->map == X86_MAP_0F &&
                (in->opcode == 0xBC || in->opcode == 0xBD ||
                 in->opcode == 0xC3));
    return (in->vex_map == 2 && in->opcode >= 0xF0) ||
           (in->vex_map == 3 && in->opcode == 0xF0);
}

/* The #UD (or #NM) an SSE/AVX/AVX-512 instruction raises before doing
 * anything, 0 when none. */
static uint8_t vector_exception(const struct emu *e, uint64_t xcr0)
{
    const struct x86_insn *in = &e->insn;
    if (gpr_only(in))
        return 0;
    if (in->enc == X86_ENC_LEGACY) {
        if ((e->sregs.cr0 & CR0_EM) || !(e->sregs.cr4 & CR4_OSFXSR))
            return VEC_UD;
    } else {
        uint64_t need = in->enc == X86_ENC_EVEX ? 0xE6 : 0x6;
        if (!(e->sregs.cr4 & CR4_OSXSAVE) || (xcr0 & need) != need)
            return VEC_UD;
    }
    return (e->sregs.cr0 & CR0_TS) ? VEC_NM : 0;
}

struct native_mem {
    struct emu_native *n;
    uint64_t page[2]; /* linear addresses of the two pages */
    int prot[2];
    uint8_t orig[2][EMU_NATIVE_PAGE];
};

/* Sets bounce page i's access and records it: the record says what
 * bounce_write_back may take back, so the two never part. */
static int bounce_protect(struct native_mem *m, unsigned i, int prot)
{
    m->prot[i] = prot;
    return emu_native_protect(m->n, i, prot);
}

/* Copies a guest page into the bounce area with the access the guest
 * has to it. A page the guest cannot read is left inaccessible: only an
 * instruction that touches it faults. */
static enum emu_result bounce_page(struct emu *e, struct native_mem *m,
                                   unsigned i)
{
    uint8_t *dst = emu_native_bounce(m->n) + i * EMU_NATIVE_PAGE;
    uint64_t gpa;
    struct gp_fault f;
    int prot = PROT_NONE;
    m->prot[i] = PROT_NONE; /* nothing to take back until the copy is whole */
    if (emu_native_protect(m->n, i, PROT_READ | PROT_WRITE) != 0)
        return unsupported(e, "cannot prepare the bounce page");
    memset(dst, 0, EMU_NATIVE_PAGE);
    enum gp_status st = gp_translate(e->mem, &e->mmu, m->page[i], GP_READ,
                                     &gpa, &f);
    if (st == GP_OK) {
        const uint8_t *src = gpa_ptr(e->mem, gpa, EMU_NATIVE_PAGE, GMEM_READ);
        if (!src)
            return unsupported(e, "vector operand at 0x%" PRIx64
                                  " is not guest RAM", m->page[i]);
        memcpy(dst, src, EMU_NATIVE_PAGE);
        prot = PROT_READ;
        if (gp_lookup(e->mem, &e->mmu, m->page[i], GP_WRITE, &gpa, &f) ==
                GP_OK &&
            gpa_ptr(e->mem, gpa, EMU_NATIVE_PAGE, GMEM_WRITE))
            prot |= PROT_WRITE;
    } else if (st == GP_NO_MEMORY) {
        return unsupported(e, "page tables for 0x%" PRIx64
                              " are not guest RAM", m->page[i]);
    }
    memcpy(m->orig[i], dst, EMU_NATIVE_PAGE);
    if (bounce_protect(m, i, prot) != 0)
        return unsupported(e, "cannot protect the bounce page");
    return EMU_DONE;
}

/* The memory operand: pages la falls in (two when a 64-byte access could
 * cross), and the host address the instruction will use. */
static enum emu_result bounce_operand(struct emu *e, struct native_mem *m,
                                      uint64_t *host)
{
    uint64_t la;
    enum emu_result r = emu_mem_operand(e, 1, GP_READ, &la);
    if (r != EMU_DONE)
        return r;
    m->page[0] = la & ~(uint64_t)(EMU_NATIVE_PAGE - 1);
    m->page[1] = m->page[0] + EMU_NATIVE_PAGE;
    r = bounce_page(e, m, 0);
    if (r == EMU_DONE && (la & (EMU_NATIVE_PAGE - 1)) + 64 > EMU_NATIVE_PAGE) {
        r = bounce_page(e, m, 1);
    } else if (r == EMU_DONE) {
        /* Not this instruction's page, whatever an earlier one of the
         * batch left there: nothing to write back from it. */
        if (bounce_protect(m, 1, PROT_NONE) != 0)
            r = unsupported(e, "cannot protect the bounce page");
    }
    *host = (uint64_t)(emu_native_bounce(m->n) + (la & (EMU_NATIVE_PAGE - 1)));
    return r;
}

/* Stores of the instruction: changed bytes go back to guest memory. */
static enum emu_result bounce_write_back(struct emu *e, struct native_mem *m)
{
    for (unsigned i = 0; i < 2; i++) {
        const uint8_t *now = emu_native_bounce(m->n) + i * EMU_NATIVE_PAGE;
        unsigned first = 0, last = EMU_NATIVE_PAGE;
        if (!(m->prot[i] & PROT_WRITE))
            continue;
        while (first < EMU_NATIVE_PAGE && now[first] == m->orig[i][first])
            first++;
        while (last > first && now[last - 1] == m->orig[i][last - 1])
            last--;
        if (first == last)
            continue;
        struct gp_fault f;
        uint64_t la = m->page[i] + first;
        enum emu_result r = emu_paging_result(
            e, gp_write(e->mem, &e->mmu, la, now + first, last - first, &f),
            &f, la);
        if (r != EMU_DONE)
            return r;
    }
    return EMU_DONE;
}

/* A fault of the instruction on the host, as the guest exception. */
static enum emu_result native_fault(struct emu *e, const struct native_mem *m,
                                    const struct emu_native_job *job)
{
    if (!job->in_slot)
        return unsupported(e, "the native executor failed (signal %d)",
                           job->signo);
    if (job->signo == SIGILL)
        return emu_raise_ud(e);
    if (job->signo == SIGFPE && job->trapno == VEC_XM)
        return (e->sregs.cr4 & CR4_OSXMMEXCPT) ? emu_raise(e, VEC_XM, false, 0)
                                               : emu_raise_ud(e);
    if (job->signo == SIGFPE && job->trapno == VEC_MF)
        return emu_raise(e, VEC_MF, false, 0);
    if (job->signo == SIGSEGV && job->trapno == GP_VEC_GP)
        return emu_raise_gp0(e); /* alignment */
    uint64_t bounce = (uint64_t)emu_native_bounce(m->n);
    if ((job->signo == SIGSEGV || job->signo == SIGBUS) &&
        job->trapno == GP_VEC_PF && job->fault_addr >= bounce &&
        job->fault_addr < bounce + 2 * EMU_NATIVE_PAGE) {
        uint64_t off = job->fault_addr - bounce;
        uint64_t la = m->page[off / EMU_NATIVE_PAGE] + off % EMU_NATIVE_PAGE;
        enum gp_access acc = (job->error_code & 2) ? GP_WRITE : GP_READ;
        uint64_t gpa;
        struct gp_fault f;
        enum gp_status st = gp_translate(e->mem, &e->mmu, la, acc, &gpa, &f);
        if (st != GP_OK)
            return emu_paging_result(e, st, &f, la);
    }
    return unsupported(e, "native execution raised signal %d (trap %d)",
                       job->signo, job->trapno);
}

static void native_results(struct emu *e, const struct emu_native_job *job,
                           int base)
{
    for (unsigned i = 0; i < 16; i++)
        if ((int)i != base && *emu_gpr(&e->regs, i) != job->gpr[i])
            emu_set_gpr64(e, i, job->gpr[i]);
    if (e->regs.rflags != job->rflags) {
        e->regs.rflags = job->rflags;
        e->regs_changed = true;
    }
}

static enum emu_result native_run(struct emu *e, struct native_mem *m,
                                  struct emu_native_job *job)
{
    int base;
    uint64_t host = 0;
    enum emu_result r = EMU_DONE;
    for (unsigned i = 0; i < 16; i++)
        job->gpr[i] = *emu_gpr(&e->regs, i);
    job->rflags = e->regs.rflags;
    if (e->insn.enc == X86_ENC_EVEX && e->insn.disp_size == 1 &&
        e->insn.mem.disp != 0) {
        unsigned scale;
        if (emu_native_disp8_scale(m->n, &e->insn, job, &scale) != 0)
            return unsupported(e, "cannot find the EVEX disp8 scale");
        e->insn.mem.disp *= scale;
        for (unsigned i = 0; i < 16; i++)
            job->gpr[i] = *emu_gpr(&e->regs, i);
    }
    job->code_len = emu_native_encode(&e->insn, job->code, &base);
    if (job->code_len == 0)
        return unsupported(e, "cannot re-encode the memory operand");
    if (base != X86_REG_NONE) {
        r = bounce_operand(e, m, &host);
        job->gpr[base] = host;
    }
    if (r != EMU_DONE)
        return r;
    if (emu_native_exec(m->n, job) != 0)
        return unsupported(e, "the native executor failed");
    if (job->signo)
        return native_fault(e, m, job);
    if (base != X86_REG_NONE)
        r = bounce_write_back(e, m);
    if (r == EMU_DONE)
        native_results(e, job, base);
    return r;
}

/* Up to this many vector instructions in a row complete in one exit: a
 * vectorised loop costs one exit per iteration, not per instruction. */
#define BATCH_MAX 64

/* The next instruction joins the batch when it runs on the host too and
 * raises nothing before it starts. Single-stepping guests get no batch. */
static bool batch_next(struct emu *e, uint64_t xcr0, bool gpr)
{
    return !(e->regs.rflags & 0x100) && emu_peek_next(e) &&
           x86_native_ok(&e->insn) && (!gpr || gpr_only(&e->insn)) &&
           !vector_exception(e, xcr0);
}

/* Runs the instruction in e->insn and the vector instructions that follow
 * it. Only the first one's exceptions are raised: a later one that faults
 * ends the batch unexecuted and faults when the guest runs it again. */
static enum emu_result run_batch(struct emu *e, struct native_mem *m,
                                 struct emu_native_job *job, uint64_t xcr0,
                                 bool gpr)
{
    enum emu_result r = native_run(e, m, job);
    if (r != EMU_DONE)
        return r;
    emu_advance(e);
    while (e->extra_done + 1 < BATCH_MAX && batch_next(e, xcr0, gpr)) {
        struct exception saved = e->exc;
        if (native_run(e, m, job) != EMU_DONE) {
            e->exc = saved;
            if (e->diag && e->diag_len)
                e->diag[0] = '\0';
            break;
        }
        emu_advance(e);
        e->extra_done++;
    }
    return EMU_DONE;
}

/* An XSAVE header of zeros: what the executor restores and saves for
 * instructions on general registers only (its component mask is 0). */
#define NO_XSTATE_LEN 576

/* Instructions on general registers only (BMI, CRC32, MOVBE, ...) need
 * neither XCR0 nor the guest's XSAVE state: two ioctls fewer per exit. */
static enum emu_result gpr_batch(struct emu *e, struct emu_native *n)
{
    uint8_t none[NO_XSTATE_LEN] = {0};
    struct emu_native_job job;
    struct native_mem *m = calloc(1, sizeof(*m));
    if (!m)
        return unsupported(e, "out of memory");
    memset(&job, 0, sizeof(job));
    job.xsave = none;
    job.xsave_len = sizeof(none);
    m->n = n;
    enum emu_result r = run_batch(e, m, &job, 0, true);
    free(m);
    return r;
}

enum emu_result emu_vector(struct emu *e)
{
    struct native_mem *m;
    uint64_t xcr0;
    struct emu_native_job job;
    e->stat_op = X86_OP_NATIVE;
    struct emu_native *n = e->ops->native ? e->ops->native(e->vcpu) : NULL;
    if (!n)
        return unsupported(e, "no executor for vector instructions");
    if (gpr_only(&e->insn))
        return gpr_batch(e, n);
    enum emu_result r = emu_get_xcr0(e, &xcr0);
    if (r != EMU_DONE)
        return r;
    uint8_t vec = vector_exception(e, xcr0);
    if (vec)
        return vec == VEC_UD ? emu_raise_ud(e) : emu_raise(e, vec, false, 0);
    memset(&job, 0, sizeof(job));
    job.xsave_len = emu_xsave_len(e);
    job.xsave = calloc(1, job.xsave_len);
    uint8_t *before = calloc(1, job.xsave_len);
    m = calloc(1, sizeof(*m));
    if (!job.xsave || !before || !m) {
        r = unsupported(e, "out of memory");
    } else if (e->ops->get_xsave(e->vcpu, job.xsave, job.xsave_len) != 0) {
        r = vcpu_error(e, "KVM_GET_XSAVE");
    } else {
        memcpy(before, job.xsave, job.xsave_len);
        job.xsave_mask = emu_native_xsave_mask() & (xcr0 | 3);
        m->n = n;
        r = run_batch(e, m, &job, xcr0, false);
    }
    if (r == EMU_DONE && memcmp(before, job.xsave, job.xsave_len) != 0 &&
        e->ops->set_xsave(e->vcpu, job.xsave, job.xsave_len) != 0)
        r = vcpu_error(e, "KVM_SET_XSAVE");
    free(job.xsave);
    free(before);
    free(m);
    return r;
}
