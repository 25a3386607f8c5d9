/* Userspace completion: vCPU state in and out, fetching and decoding the
 * instruction, exceptions, statistics. The instructions themselves are in
 * emulate_ops.c, emulate_xsave.c and emulate_vector.c. */
#include "vm/emulate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>

#include "vm/emulate_priv.h"

/* ---- diagnostics ---------------------------------------------------- */

static void describe(const struct emu *e, char *buf, size_t len)
{
    char bytes[3 * X86_MAX_INSN_LEN + 1] = "", name[64] = "?";
    const uint8_t *b = e->decoded ? e->insn.bytes : e->raw;
    unsigned n = e->decoded ? e->insn.len : e->raw_len;
    for (unsigned i = 0, at = 0; i < n; i++)
        at += (unsigned)snprintf(bytes + at, sizeof(bytes) - at, "%s%02x",
                                 i ? " " : "", b[i]);
    if (e->decoded)
        x86_insn_name(&e->insn, name, sizeof(name));
    snprintf(buf, len, "mode %s cpl %u rip 0x%" PRIx64 " bytes [%s] (%s)",
             x86_mode_name(e->mmu.mode), e->mmu.cpl, (uint64_t)e->regs.rip,
             bytes, name);
}

enum emu_result emu_stop(struct emu *e, enum emu_result r, const char *fmt, ...)
{
    char where[160], why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    describe(e, where, sizeof(where));
    if (e->diag && e->diag_len)
        snprintf(e->diag, e->diag_len, "cannot complete instruction: %s: %s",
                 where, why);
    return r;
}

/* ---- registers ------------------------------------------------------ */

uint64_t *emu_gpr(struct kvm_regs *r, unsigned i)
{
    uint64_t *const p[16] = {
        (uint64_t *)&r->rax, (uint64_t *)&r->rcx, (uint64_t *)&r->rdx,
        (uint64_t *)&r->rbx, (uint64_t *)&r->rsp, (uint64_t *)&r->rbp,
        (uint64_t *)&r->rsi, (uint64_t *)&r->rdi, (uint64_t *)&r->r8,
        (uint64_t *)&r->r9,  (uint64_t *)&r->r10, (uint64_t *)&r->r11,
        (uint64_t *)&r->r12, (uint64_t *)&r->r13, (uint64_t *)&r->r14,
        (uint64_t *)&r->r15,
    };
    return p[i & 15];
}

bool emu_long64(const struct emu *e)
{
    return e->mmu.mode == X86_MODE_LONG64;
}

/* A 32-bit register write: zero-extends in 64-bit mode, keeps the
 * (architecturally invisible) upper half elsewhere. */
void emu_set_gpr32(struct emu *e, unsigned i, uint32_t v)
{
    uint64_t *r = emu_gpr(&e->regs, i);
    *r = emu_long64(e) ? v : (*r & ~0xFFFFFFFFull) | v;
    e->regs_changed = true;
}

void emu_set_gpr64(struct emu *e, unsigned i, uint64_t v)
{
    *emu_gpr(&e->regs, i) = v;
    e->regs_changed = true;
}

/* A register write of the operand size: 8 bytes whole, 4 zero-extended
 * in 64-bit mode, 2 merged into the low word. */
void emu_set_gpr_sized(struct emu *e, unsigned i, unsigned size,
                          uint64_t v)
{
    uint64_t *r = emu_gpr(&e->regs, i);
    if (size == 8)
        emu_set_gpr64(e, i, v);
    else if (size == 4)
        emu_set_gpr32(e, i, (uint32_t)v);
    else
        *r = (*r & ~0xFFFFull) | (v & 0xFFFF);
    e->regs_changed = true;
}

uint64_t emu_truncate(uint64_t v, unsigned size)
{
    return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
}

uint64_t emu_edx_eax(const struct emu *e)
{
    return (e->regs.rdx & 0xFFFFFFFF) << 32 | (e->regs.rax & 0xFFFFFFFF);
}

void emu_set_flag(struct emu *e, uint64_t flag, bool on)
{
    e->regs.rflags = on ? e->regs.rflags | flag : e->regs.rflags & ~flag;
    e->regs_changed = true;
}

/* Moves RIP past the instruction: it completed. */
enum emu_result emu_advance(struct emu *e)
{
    uint64_t next = e->regs.rip + e->insn.len;
    if (!emu_long64(e))
        next &= x86_mode_default_size(e->mmu.mode) == 4 ? 0xFFFFFFFFull
                                                        : 0xFFFFull;
    e->regs.rip = next;
    e->regs.rflags &= ~RFLAGS_RF;
    e->regs_changed = true;
    return EMU_DONE;
}

/* ---- exceptions ----------------------------------------------------- */

enum emu_result emu_raise(struct emu *e, uint8_t vector, bool has_error,
                             uint32_t error)
{
    e->exc = (struct exception){.set = true, .vector = vector,
                                .has_error = has_error, .error = error};
    return EMU_FAULT;
}

enum emu_result emu_raise_gp0(struct emu *e)
{
    return emu_raise(e, GP_VEC_GP, true, 0);
}

enum emu_result emu_raise_ud(struct emu *e)
{
    return emu_raise(e, VEC_UD, false, 0);
}

/* A trap-like exception after the instruction completed (int3 etc.). */
enum emu_result emu_complete_and_raise(struct emu *e, uint8_t vector)
{
    emu_advance(e);
    e->exc = (struct exception){.set = true, .vector = vector};
    return EMU_DONE;
}

enum emu_result emu_paging_result(struct emu *e, enum gp_status st,
                                     const struct gp_fault *f, uint64_t la)
{
    if (st == GP_OK)
        return EMU_DONE;
    if (st == GP_NO_MEMORY)
        return unsupported(e, "linear address 0x%" PRIx64
                              " is not guest RAM (or is read-only)", la);
    e->exc = (struct exception){.set = true, .vector = f->vector,
                                .has_error = true, .error = f->error_code,
                                .has_cr2 = f->vector == GP_VEC_PF,
                                .cr2 = f->cr2};
    return EMU_FAULT;
}

/* ---- memory --------------------------------------------------------- */

static const struct kvm_segment *kvm_seg(const struct kvm_sregs *s,
                                         enum x86_seg n)
{
    switch (n) {
    case X86_ES: return &s->es;
    case X86_CS: return &s->cs;
    case X86_SS: return &s->ss;
    case X86_FS: return &s->fs;
    case X86_GS: return &s->gs;
    default: return &s->ds;
    }
}

struct gp_segment emu_segment(const struct emu *e, enum x86_seg n)
{
    const struct kvm_segment *k = kvm_seg(&e->sregs, n);
    return (struct gp_segment){
        .base = k->base, .limit = k->limit, .type = k->type, .s = k->s,
        .dpl = k->dpl, .present = k->present, .db = k->db, .g = k->g,
        .l = k->l, .unusable = k->unusable};
}

size_t emu_xsave_len(const struct emu *e)
{
    size_t n = e->ops->xsave_size(e->vcpu);
    return n < sizeof(struct kvm_xsave) ? sizeof(struct kvm_xsave) : n;
}

static void cpuid_adapter(void *opaque, uint32_t leaf, uint32_t sub,
                          uint32_t out[4])
{
    const struct emu *e = opaque;
    e->ops->cpuid(e->vcpu, leaf, sub, out);
}

void emu_layout(struct emu *e, struct xstate_layout *l)
{
    xstate_layout_from_cpuid(l, cpuid_adapter, e);
}

/* PKRU matters to data accesses to user pages when CR4.PKE is set. */
static enum emu_result load_pkru(struct emu *e)
{
    if (!(e->sregs.cr4 & CR4_PKE))
        return EMU_DONE;
    size_t len = emu_xsave_len(e);
    uint8_t *img = calloc(1, len);
    struct xstate_layout l;
    if (!img)
        return unsupported(e, "out of memory");
    emu_layout(e, &l);
    if (e->ops->get_xsave(e->vcpu, img, len) != 0) {
        free(img);
        return vcpu_error(e, "reading the XSAVE state");
    }
    uint64_t bv;
    memcpy(&bv, img + XSTATE_HEADER_OFF, 8);
    uint32_t off = l.offset[PKRU_COMPONENT];
    e->mmu.pkru = 0;
    if ((bv & (1ull << PKRU_COMPONENT)) && off && off + 4 <= len)
        memcpy(&e->mmu.pkru, img + off, 4);
    free(img);
    return EMU_DONE;
}

/* Linear address of the memory operand, checked for size bytes. */
enum emu_result emu_mem_operand(struct emu *e, uint64_t size,
                                   enum gp_access acc, uint64_t *la)
{
    uint64_t regs[16];
    for (unsigned i = 0; i < 16; i++)
        regs[i] = *emu_gpr(&e->regs, i);
    uint64_t off = x86_mem_offset(&e->insn, regs, e->regs.rip + e->insn.len);
    struct gp_segment seg = emu_segment(e, e->insn.mem.seg);
    struct gp_fault f;
    enum gp_status st =
        gp_linear(&e->mmu, &seg, e->insn.mem.seg, off, size, acc, la, &f);
    if (st != GP_OK)
        return emu_paging_result(e, st, &f, off);
    return load_pkru(e);
}

enum emu_result emu_read_linear(struct emu *e, uint64_t la, void *buf,
                                   size_t len, enum gp_access acc)
{
    struct gp_fault f;
    enum gp_status st = gp_read(e->mem, &e->mmu, la, buf, len, acc, &f);
    return emu_paging_result(e, st, &f, la);
}

enum emu_result emu_read_descriptor(struct emu *e, uint16_t sel,
                                    uint64_t *desc, bool *found)
{
    const struct kvm_dtable *gdt = &e->sregs.gdt;
    const struct kvm_segment *ldt = &e->sregs.ldt;
    bool local = sel & 4;
    uint64_t base = local ? ldt->base : gdt->base;
    uint64_t limit = local ? ldt->limit : gdt->limit;
    uint64_t off = sel & ~7u;
    *found = false;
    if ((!local && off == 0) || (local && (ldt->unusable || !ldt->present)) ||
        off + 7 > limit)
        return EMU_DONE;
    if (!(e->sregs.efer & (1ull << 10))) /* EFER.LMA: 64-bit table bases */
        base &= 0xFFFFFFFFull;
    uint8_t cpl = e->mmu.cpl;
    e->mmu.cpl = 0;
    enum emu_result r = emu_read_linear(e, base + off, desc, 8, GP_READ);
    e->mmu.cpl = cpl;
    *found = r == EMU_DONE;
    return r;
}

/* The ModRM r/m source operand of size bytes (register or memory). */
enum emu_result emu_read_rm(struct emu *e, unsigned size, uint64_t *v)
{
    uint64_t la;
    if (!e->insn.has_mem) {
        *v = emu_truncate(*emu_gpr(&e->regs, e->insn.rm), size);
        return EMU_DONE;
    }
    enum emu_result r = emu_mem_operand(e, size, GP_READ, &la);
    *v = 0;
    return r == EMU_DONE ? emu_read_linear(e, la, v, size, GP_READ) : r;
}

enum emu_result emu_get_xcr0(struct emu *e, uint64_t *xcr0)
{
    struct kvm_xcrs x;
    memset(&x, 0, sizeof(x));
    if (e->ops->get_xcrs(e->vcpu, &x) != 0)
        return vcpu_error(e, "KVM_GET_XCRS");
    *xcr0 = 1; /* x87 is always enabled */
    for (unsigned i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++)
        if (x.xcrs[i].xcr == 0)
            *xcr0 = x.xcrs[i].value;
    return EMU_DONE;
}

/* ---- fetch and decode ----------------------------------------------- */

static enum emu_result decode_status(struct emu *e,
                                     enum x86_decode_status st)
{
    switch (st) {
    case X86_DECODE_OK:
        e->decoded = true;
        return EMU_DONE;
    case X86_DECODE_TOO_LONG:
        return emu_raise_gp0(e);
    case X86_DECODE_INVALID:
        return emu_raise_ud(e);
    default:
        return unsupported(e, "truncated instruction");
    }
}

static enum emu_result fetch(struct emu *e, uint64_t la, unsigned from,
                             unsigned n)
{
    struct gp_fault f;
    enum gp_status st =
        gp_read(e->mem, &e->mmu, la + from, e->raw + from, n, GP_FETCH, &f);
    if (st != GP_OK)
        return emu_paging_result(e, st, &f, la + from);
    e->raw_len = from + n;
    return EMU_DONE;
}

/* Reads the instruction at CS:RIP from guest memory, one page at a time
 * so that a fault on the next page is raised only when needed. */
static enum emu_result fetch_from_memory(struct emu *e)
{
    uint64_t la;
    struct gp_fault f;
    struct gp_segment cs = emu_segment(e, X86_CS);
    enum gp_status st = gp_linear(&e->mmu, &cs, X86_CS, e->regs.rip, 1,
                                  GP_FETCH, &la, &f);
    if (st != GP_OK)
        return emu_paging_result(e, st, &f, e->regs.rip);
    unsigned first = 4096 - (unsigned)(la & 4095);
    if (first > X86_MAX_INSN_LEN)
        first = X86_MAX_INSN_LEN;
    enum emu_result r = fetch(e, la, 0, first);
    if (r != EMU_DONE)
        return r;
    enum x86_decode_status ds =
        x86_decode(e->raw, first, e->mmu.mode, &e->insn);
    if (ds == X86_DECODE_TRUNCATED && first < X86_MAX_INSN_LEN) {
        r = fetch(e, la, first, X86_MAX_INSN_LEN - first);
        if (r != EMU_DONE)
            return r;
        ds = x86_decode(e->raw, X86_MAX_INSN_LEN, e->mmu.mode, &e->insn);
    }
    r = decode_status(e, ds);
    if (r != EMU_DONE)
        return r;
    st = gp_linear(&e->mmu, &cs, X86_CS, e->regs.rip, e->insn.len, GP_FETCH,
                   &la, &f);
    return emu_paging_result(e, st, &f, e->regs.rip);
}

bool emu_peek_next(struct emu *e)
{
    uint64_t la;
    uint8_t buf[X86_MAX_INSN_LEN];
    struct gp_fault f;
    struct gp_segment cs = emu_segment(e, X86_CS);
    if (gp_linear(&e->mmu, &cs, X86_CS, e->regs.rip, X86_MAX_INSN_LEN,
                  GP_FETCH, &la, &f) != GP_OK)
        return false;
    unsigned n = 4096 - (unsigned)(la & 4095);
    if (n > X86_MAX_INSN_LEN)
        n = X86_MAX_INSN_LEN;
    if (gp_read(e->mem, &e->mmu, la, buf, n, GP_FETCH, &f) != GP_OK)
        return false;
    enum x86_decode_status ds = x86_decode(buf, n, e->mmu.mode, &e->insn);
    if (ds == X86_DECODE_TRUNCATED && n < X86_MAX_INSN_LEN &&
        gp_read(e->mem, &e->mmu, la + n, buf + n, X86_MAX_INSN_LEN - n,
                GP_FETCH, &f) == GP_OK)
        ds = x86_decode(buf, X86_MAX_INSN_LEN, e->mmu.mode, &e->insn);
    return ds == X86_DECODE_OK;
}

static enum emu_result fetch_and_decode(struct emu *e,
                                        const struct kvm_run *run)
{
    const __typeof__(run->emulation_failure) *ef = &run->emulation_failure;
    if (ef->ndata >= 3 &&
        (ef->flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
        ef->insn_size > 0 && ef->insn_size <= X86_MAX_INSN_LEN) {
        memcpy(e->raw, ef->insn_bytes, ef->insn_size);
        e->raw_len = ef->insn_size;
        enum x86_decode_status st =
            x86_decode(e->raw, e->raw_len, e->mmu.mode, &e->insn);
        if (st != X86_DECODE_TRUNCATED)
            return decode_status(e, st);
    }
    return fetch_from_memory(e);
}

/* ---- state in and out ----------------------------------------------- */

static enum emu_result load_state(struct emu *e)
{
    if (e->ops->get_regs(e->vcpu, &e->regs) != 0)
        return vcpu_error(e, "KVM_GET_REGS");
    if (e->ops->get_sregs(e->vcpu, &e->sregs) != 0)
        return vcpu_error(e, "KVM_GET_SREGS");
    const struct kvm_sregs *s = &e->sregs;
    uint32_t id[4];
    e->ops->cpuid(e->vcpu, 0x80000008, 0, id);
    e->mmu = (struct gp_mmu){
        .cr0 = s->cr0, .cr3 = s->cr3, .cr4 = s->cr4, .efer = s->efer,
        .rflags = e->regs.rflags, .maxphyaddr = (uint8_t)id[0],
        .mode = x86_mode_of(s->cr0, s->efer, e->regs.rflags, s->cs.l,
                            s->cs.db)};
    if (e->mmu.mode == X86_MODE_REAL)
        e->mmu.cpl = 0;
    else if (e->mmu.mode == X86_MODE_VM86)
        e->mmu.cpl = 3;
    else
        e->mmu.cpl = s->ss.dpl;
    return EMU_DONE;
}

static void set_exception(struct emu *e, struct kvm_vcpu_events *ev)
{
    const struct exception *x = &e->exc;
    bool payload = ev->flags & KVM_VCPUEVENT_VALID_PAYLOAD;
    ev->exception.nr = x->vector;
    ev->exception.has_error_code = x->has_error;
    ev->exception.error_code = x->error;
    /* With exception payloads enabled KVM delivers CR2 itself from a
     * pending exception; without, CR2 is written before injection. */
    ev->exception.pending = payload;
    ev->exception.injected = !payload;
    ev->exception_has_payload = payload && x->has_cr2;
    ev->exception_payload = payload && x->has_cr2 ? x->cr2 : 0;
}

/* Writes back what the completion changed; the exception KVM may have
 * queued for the failed emulation (#UD) is dropped or replaced. */
static enum emu_result store_state(struct emu *e, enum emu_result r)
{
    struct kvm_vcpu_events ev;
    if (e->sregs_changed && r == EMU_DONE &&
        e->ops->set_sregs(e->vcpu, &e->sregs) != 0)
        return vcpu_error(e, "KVM_SET_SREGS");
    if (e->regs_changed && r == EMU_DONE &&
        e->ops->set_regs(e->vcpu, &e->regs) != 0)
        return vcpu_error(e, "KVM_SET_REGS");
    memset(&ev, 0, sizeof(ev));
    if (e->ops->get_events(e->vcpu, &ev) != 0)
        return vcpu_error(e, "KVM_GET_VCPU_EVENTS");
    /* Usually there is nothing to drop or raise: save the ioctl. */
    if (!e->exc.set && !ev.exception.pending && !ev.exception.injected &&
        !ev.exception_has_payload && !(r == EMU_DONE && ev.interrupt.shadow))
        return r;
    memset(&ev.exception, 0, sizeof(ev.exception));
    ev.exception_has_payload = 0;
    ev.exception_payload = 0;
    if (r == EMU_DONE) { /* a completed instruction ends an STI/MOV SS shadow */
        ev.interrupt.shadow = 0;
        ev.flags |= KVM_VCPUEVENT_VALID_SHADOW;
    }
    if (e->exc.set) {
        set_exception(e, &ev);
        if (e->exc.has_cr2 && !(ev.flags & KVM_VCPUEVENT_VALID_PAYLOAD)) {
            e->sregs.cr2 = e->exc.cr2;
            if (e->ops->set_sregs(e->vcpu, &e->sregs) != 0)
                return vcpu_error(e, "KVM_SET_SREGS");
        }
    }
    if (e->ops->set_events(e->vcpu, &ev) != 0)
        return vcpu_error(e, "KVM_SET_VCPU_EVENTS");
    return r;
}

static void count(struct emu_stats *stats, const struct emu *e,
                  enum emu_result r)
{
    if (!stats)
        return;
    enum x86_op op = e->stat_op ? e->stat_op
                     : e->decoded ? e->insn.op
                                  : X86_OP_OTHER;
    uint64_t *c = r == EMU_DONE    ? &stats->completed[op]
                  : r == EMU_FAULT ? &stats->faulted[op]
                                   : &stats->unsupported;
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
    if (e->extra_done)
        __atomic_fetch_add(&stats->completed[op], e->extra_done,
                           __ATOMIC_RELAXED);
}

enum emu_result emu_handle_failure(const struct emu_vcpu_ops *ops, void *vcpu,
                                   const struct guest_mem *mem,
                                   const struct kvm_run *run,
                                   struct emu_stats *stats, char *diag,
                                   size_t diag_len)
{
    struct emu e;
    memset(&e, 0, sizeof(e));
    e.ops = ops;
    e.vcpu = vcpu;
    e.mem = mem;
    e.diag = diag;
    e.diag_len = diag_len;
    if (diag && diag_len)
        diag[0] = '\0';
    enum emu_result r = load_state(&e);
    if (r == EMU_DONE && (run->exit_reason != KVM_EXIT_INTERNAL_ERROR ||
                          run->internal.suberror !=
                              KVM_INTERNAL_ERROR_EMULATION))
        r = unsupported(&e, "not an emulation failure (exit %u, suberror %u)",
                        run->exit_reason, run->internal.suberror);
    if (r == EMU_DONE)
        r = fetch_and_decode(&e, run);
    if (r == EMU_DONE)
        r = emu_complete(&e);
    if (r == EMU_DONE || r == EMU_FAULT)
        r = store_state(&e, r);
    count(stats, &e, r);
    return r;
}

void emu_stats_print(const struct emu_stats *s, FILE *out)
{
    bool header = false;
    for (unsigned i = 0; i < X86_OP_COUNT; i++) {
        uint64_t done = __atomic_load_n(&s->completed[i], __ATOMIC_RELAXED);
        uint64_t flt = __atomic_load_n(&s->faulted[i], __ATOMIC_RELAXED);
        if (!done && !flt)
            continue;
        if (!header)
            fprintf(out, "kvmpc: instructions completed in userspace:\n");
        header = true;
        fprintf(out, "  %-16s %" PRIu64, x86_op_name((enum x86_op)i), done);
        if (flt)
            fprintf(out, " (+%" PRIu64 " raised an exception)", flt);
        fputc('\n', out);
    }
    uint64_t u = __atomic_load_n(&s->unsupported, __ATOMIC_RELAXED);
    if (u)
        fprintf(out, "kvmpc: emulation failures not completed: %" PRIu64 "\n",
                u);
}
