#include "vm/emulate.h"

#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include "util.h"
#include "vm/emulate_native.h"
#include "vm/guest_paging.h"
#include "vm/xstate.h"

#define CR0_MP (1ull << 1)
#define CR0_TS (1ull << 3)
#define CR0_EM (1ull << 2)
#define CR0_NE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_TSD (1ull << 2)
#define CR4_FSGSBASE (1ull << 16)
#define CR4_OSXSAVE (1ull << 18)
#define CR4_PKE (1ull << 22)
#define RFLAGS_CF (1ull << 0)
#define RFLAGS_PF (1ull << 2)
#define RFLAGS_AF (1ull << 4)
#define RFLAGS_ZF (1ull << 6)
#define RFLAGS_SF (1ull << 7)
#define RFLAGS_OF (1ull << 11)
#define RFLAGS_RF (1ull << 16)
#define RFLAGS_AC (1ull << 18)

#define MSR_IA32_TSC 0x10u
#define MSR_IA32_XSS 0xDA0u
#define MSR_TSC_AUX 0xC0000103u

#define PKRU_COMPONENT 9

enum {
    VEC_DB = 1,
    VEC_BP = 3,
    VEC_OF = 4,
    VEC_UD = 6,
    VEC_NM = 7,
    VEC_MF = 16,
    VEC_XM = 19,
};

struct exception {
    bool set;
    uint8_t vector;
    bool has_error;
    uint32_t error;
    bool has_cr2;
    uint64_t cr2;
};

/* Everything one completion works on. */
struct emu {
    const struct emu_vcpu_ops *ops;
    void *vcpu;
    const struct guest_mem *mem;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct gp_mmu mmu;
    struct x86_insn insn;
    bool decoded;
    uint8_t raw[X86_MAX_INSN_LEN];
    unsigned raw_len;
    bool regs_changed;
    enum x86_op stat_op; /* the counter this exit goes to */
    struct exception exc;
    char *diag;
    size_t diag_len;
};

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

__attribute__((format(printf, 3, 4))) static enum emu_result
stop(struct emu *e, enum emu_result r, const char *fmt, ...)
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

#define unsupported(e, ...) stop(e, EMU_UNSUPPORTED, __VA_ARGS__)
#define vcpu_error(e, what) \
    stop(e, EMU_ERROR, "%s failed: %s", what, strerror(errno))

/* ---- registers ------------------------------------------------------ */

static uint64_t *gpr(struct kvm_regs *r, unsigned i)
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

static bool long64(const struct emu *e)
{
    return e->mmu.mode == X86_MODE_LONG64;
}

/* A 32-bit register write: zero-extends in 64-bit mode, keeps the
 * (architecturally invisible) upper half elsewhere. */
static void set_gpr32(struct emu *e, unsigned i, uint32_t v)
{
    uint64_t *r = gpr(&e->regs, i);
    *r = long64(e) ? v : (*r & ~0xFFFFFFFFull) | v;
    e->regs_changed = true;
}

static void set_gpr64(struct emu *e, unsigned i, uint64_t v)
{
    *gpr(&e->regs, i) = v;
    e->regs_changed = true;
}

/* A register write of the operand size: 8 bytes whole, 4 zero-extended
 * in 64-bit mode, 2 merged into the low word. */
static void set_gpr_sized(struct emu *e, unsigned i, unsigned size,
                          uint64_t v)
{
    uint64_t *r = gpr(&e->regs, i);
    if (size == 8)
        set_gpr64(e, i, v);
    else if (size == 4)
        set_gpr32(e, i, (uint32_t)v);
    else
        *r = (*r & ~0xFFFFull) | (v & 0xFFFF);
    e->regs_changed = true;
}

static uint64_t truncate_to(uint64_t v, unsigned size)
{
    return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
}

static uint64_t edx_eax(const struct emu *e)
{
    return (e->regs.rdx & 0xFFFFFFFF) << 32 | (e->regs.rax & 0xFFFFFFFF);
}

static void set_flag(struct emu *e, uint64_t flag, bool on)
{
    e->regs.rflags = on ? e->regs.rflags | flag : e->regs.rflags & ~flag;
    e->regs_changed = true;
}

/* Moves RIP past the instruction: it completed. */
static enum emu_result advance(struct emu *e)
{
    uint64_t next = e->regs.rip + e->insn.len;
    if (!long64(e))
        next &= x86_mode_default_size(e->mmu.mode) == 4 ? 0xFFFFFFFFull
                                                        : 0xFFFFull;
    e->regs.rip = next;
    e->regs.rflags &= ~RFLAGS_RF;
    e->regs_changed = true;
    return EMU_DONE;
}

/* ---- exceptions ----------------------------------------------------- */

static enum emu_result raise_exc(struct emu *e, uint8_t vector, bool has_error,
                             uint32_t error)
{
    e->exc = (struct exception){.set = true, .vector = vector,
                                .has_error = has_error, .error = error};
    return EMU_FAULT;
}

static enum emu_result raise_gp0(struct emu *e)
{
    return raise_exc(e, GP_VEC_GP, true, 0);
}

static enum emu_result raise_ud(struct emu *e)
{
    return raise_exc(e, VEC_UD, false, 0);
}

/* A trap-like exception after the instruction completed (int3 etc.). */
static enum emu_result complete_and_raise(struct emu *e, uint8_t vector)
{
    advance(e);
    e->exc = (struct exception){.set = true, .vector = vector};
    return EMU_DONE;
}

static enum emu_result paging_result(struct emu *e, enum gp_status st,
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

static struct gp_segment segment(const struct emu *e, enum x86_seg n)
{
    const struct kvm_segment *k = kvm_seg(&e->sregs, n);
    return (struct gp_segment){
        .base = k->base, .limit = k->limit, .type = k->type, .s = k->s,
        .dpl = k->dpl, .present = k->present, .db = k->db, .g = k->g,
        .l = k->l, .unusable = k->unusable};
}

static size_t xsave_len(const struct emu *e)
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

static void layout(struct emu *e, struct xstate_layout *l)
{
    xstate_layout_from_cpuid(l, cpuid_adapter, e);
}

/* PKRU matters to data accesses to user pages when CR4.PKE is set. */
static enum emu_result load_pkru(struct emu *e)
{
    if (!(e->sregs.cr4 & CR4_PKE))
        return EMU_DONE;
    size_t len = xsave_len(e);
    uint8_t *img = calloc(1, len);
    struct xstate_layout l;
    if (!img)
        return unsupported(e, "out of memory");
    layout(e, &l);
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
static enum emu_result mem_operand(struct emu *e, uint64_t size,
                                   enum gp_access acc, uint64_t *la)
{
    uint64_t regs[16];
    for (unsigned i = 0; i < 16; i++)
        regs[i] = *gpr(&e->regs, i);
    uint64_t off = x86_mem_offset(&e->insn, regs, e->regs.rip + e->insn.len);
    struct gp_segment seg = segment(e, e->insn.mem.seg);
    struct gp_fault f;
    enum gp_status st =
        gp_linear(&e->mmu, &seg, e->insn.mem.seg, off, size, acc, la, &f);
    if (st != GP_OK)
        return paging_result(e, st, &f, off);
    return load_pkru(e);
}

static enum emu_result read_linear(struct emu *e, uint64_t la, void *buf,
                                   size_t len, enum gp_access acc)
{
    struct gp_fault f;
    enum gp_status st = gp_read(e->mem, &e->mmu, la, buf, len, acc, &f);
    return paging_result(e, st, &f, la);
}

/* The ModRM r/m source operand of size bytes (register or memory). */
static enum emu_result read_rm(struct emu *e, unsigned size, uint64_t *v)
{
    uint64_t la;
    if (!e->insn.has_mem) {
        *v = truncate_to(*gpr(&e->regs, e->insn.rm), size);
        return EMU_DONE;
    }
    enum emu_result r = mem_operand(e, size, GP_READ, &la);
    *v = 0;
    return r == EMU_DONE ? read_linear(e, la, v, size, GP_READ) : r;
}

/* ---- completions ---------------------------------------------------- */

static enum emu_result do_into(struct emu *e)
{
    if (!(e->regs.rflags & RFLAGS_OF))
        return advance(e);
    return complete_and_raise(e, VEC_OF);
}

static bool host_cmpxchg16(void *p, uint64_t *lo, uint64_t *hi,
                           uint64_t new_lo, uint64_t new_hi)
{
    struct u128 {
        uint64_t q[2];
    } __attribute__((aligned(16))) *m = p;
    bool ok;
    __asm__ volatile("lock cmpxchg16b %1"
                     : "=@ccz"(ok), "+m"(*m), "+a"(*lo), "+d"(*hi)
                     : "b"(new_lo), "c"(new_hi)
                     : "memory");
    return ok;
}

/* cmpxchg8b across a page or cache-line boundary: not atomic against
 * other vCPUs (no guest is known to do this; the host has no atomic
 * operation spanning two pages). */
static enum emu_result cmpxchg8b_split(struct emu *e, uint64_t la,
                                       uint64_t *cmp, uint64_t new, bool *ok)
{
    uint64_t cur;
    struct gp_fault f;
    enum gp_status st = gp_probe_write(e->mem, &e->mmu, la, 8, &f);
    if (st == GP_OK)
        st = gp_read(e->mem, &e->mmu, la, &cur, 8, GP_WRITE, &f);
    *ok = st == GP_OK && cur == *cmp;
    if (st == GP_OK && *ok)
        st = gp_write(e->mem, &e->mmu, la, &new, 8, &f);
    if (st == GP_OK && !*ok)
        *cmp = cur;
    return paging_result(e, st, &f, la);
}

static enum emu_result do_cmpxchg(struct emu *e)
{
    bool wide = e->insn.op == X86_OP_CMPXCHG16B;
    unsigned size = wide ? 16 : 8;
    uint64_t la;
    enum emu_result r = mem_operand(e, size, GP_WRITE, &la);
    if (r != EMU_DONE)
        return r;
    if (wide && (la & 15))
        return raise_gp0(e);
    uint64_t lo = wide ? e->regs.rax : edx_eax(e);
    uint64_t hi = e->regs.rdx;
    uint64_t new_lo = wide ? e->regs.rbx
                           : (e->regs.rcx & 0xFFFFFFFF) << 32 |
                                 (e->regs.rbx & 0xFFFFFFFF);
    bool ok;
    if (!wide && (la & 63) + 8 > 64) {
        r = cmpxchg8b_split(e, la, &lo, new_lo, &ok);
        if (r != EMU_DONE)
            return r;
    } else {
        void *host;
        struct gp_fault f;
        r = paging_result(e, gp_host_ptr(e->mem, &e->mmu, la, size, &host, &f),
                          &f, la);
        if (r != EMU_DONE)
            return r;
        if (wide)
            ok = host_cmpxchg16(host, &lo, &hi, new_lo, e->regs.rcx);
        else
            ok = __atomic_compare_exchange_n((uint64_t *)host, &lo, new_lo,
                                             false, __ATOMIC_SEQ_CST,
                                             __ATOMIC_SEQ_CST);
    }
    set_flag(e, RFLAGS_ZF, ok);
    if (!ok && wide) {
        set_gpr64(e, X86_RAX, lo);
        set_gpr64(e, X86_RDX, hi);
    } else if (!ok) {
        set_gpr32(e, X86_RAX, (uint32_t)lo);
        set_gpr32(e, X86_RDX, (uint32_t)(lo >> 32));
    }
    return advance(e);
}

static bool is_supervisor_op(enum x86_op op)
{
    return op == X86_OP_XSAVES || op == X86_OP_XRSTORS;
}

/* Faults every XSAVE-family instruction checks first. */
static enum emu_result xsave_checks(struct emu *e)
{
    if (e->insn.lock || !(e->sregs.cr4 & CR4_OSXSAVE))
        return raise_ud(e);
    if (e->sregs.cr0 & CR0_TS)
        return raise_exc(e, VEC_NM, false, 0);
    if (is_supervisor_op(e->insn.op) && e->mmu.cpl != 0)
        return raise_gp0(e);
    return EMU_DONE;
}

static enum emu_result get_xcr0(struct emu *e, uint64_t *xcr0)
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

/* XCR0, or XCR0 | IA32_XSS for the supervisor variants. */
static enum emu_result enabled_components(struct emu *e, uint64_t *mask)
{
    enum emu_result r = get_xcr0(e, mask);
    uint64_t xss = 0;
    if (r == EMU_DONE && is_supervisor_op(e->insn.op) &&
        e->ops->get_msr(e->vcpu, MSR_IA32_XSS, &xss) == 0)
        *mask |= xss;
    return r;
}

/* Shared set-up of the save and restore paths. */
struct xs_job {
    struct xstate_layout l;
    uint64_t rfbm, enabled, la;
    uint8_t *kvm, *area;
    size_t kvm_len, area_len;
};

static enum emu_result xs_prepare(struct emu *e, struct xs_job *j)
{
    enum emu_result r = xsave_checks(e);
    if (r == EMU_DONE)
        r = enabled_components(e, &j->enabled);
    if (r != EMU_DONE)
        return r;
    layout(e, &j->l);
    j->rfbm = j->enabled & edx_eax(e);
    if (j->rfbm & ~(j->l.user_mask | 3ull))
        return unsupported(e, "state components 0x%" PRIx64
                              " are not reachable through KVM_GET_XSAVE",
                           (uint64_t)(j->rfbm & ~(j->l.user_mask | 3ull)));
    j->kvm_len = xsave_len(e);
    j->area_len = xstate_area_size(&j->l, false, j->l.user_mask);
    uint32_t c = xstate_area_size(&j->l, true, j->l.user_mask);
    if (c > j->area_len)
        j->area_len = c;
    j->kvm = calloc(1, j->kvm_len);
    j->area = calloc(1, j->area_len);
    if (!j->kvm || !j->area)
        return unsupported(e, "out of memory");
    if (e->ops->get_xsave(e->vcpu, j->kvm, j->kvm_len) != 0)
        return vcpu_error(e, "KVM_GET_XSAVE");
    return EMU_DONE;
}

static enum emu_result xs_address(struct emu *e, struct xs_job *j,
                                  uint32_t size, enum gp_access acc)
{
    enum emu_result r = mem_operand(e, size, acc, &j->la);
    if (r == EMU_DONE && (j->la & 63))
        return raise_gp0(e);
    return r;
}

static enum emu_result write_ranges(struct emu *e, const struct xs_job *j,
                                    const struct xstate_ranges *w)
{
    struct gp_fault f;
    /* Fault before storing anything. */
    for (unsigned i = 0; i < w->n; i++) {
        uint64_t la = j->la + w->r[i].off;
        enum gp_status st = gp_probe_write(e->mem, &e->mmu, la, w->r[i].len,
                                           &f);
        if (st != GP_OK)
            return paging_result(e, st, &f, la);
    }
    for (unsigned i = 0; i < w->n; i++) {
        uint64_t la = j->la + w->r[i].off;
        enum gp_status st = gp_write(e->mem, &e->mmu, la,
                                     j->area + w->r[i].off, w->r[i].len, &f);
        if (st != GP_OK)
            return paging_result(e, st, &f, la);
    }
    return EMU_DONE;
}

static enum emu_result xs_save(struct emu *e, struct xs_job *j)
{
    bool compacted = e->insn.op == X86_OP_XSAVEC ||
                     e->insn.op == X86_OP_XSAVES;
    enum emu_result r = xs_prepare(e, j);
    if (r == EMU_DONE)
        r = xs_address(e, j, xstate_area_size(&j->l, compacted, j->rfbm),
                       GP_WRITE);
    if (r == EMU_DONE && !compacted) /* XSTATE_BV is read-modify-write */
        r = read_linear(e, j->la + XSTATE_HEADER_OFF,
                        j->area + XSTATE_HEADER_OFF, 8, GP_WRITE);
    if (r != EMU_DONE)
        return r;
    struct xstate_ranges w;
    if (xstate_save(&j->l, j->kvm, j->kvm_len, compacted, e->insn.rex_w,
                    j->rfbm, j->area, j->area_len, &w) != XSTATE_OK)
        return unsupported(e, "KVM's XSAVE image lacks components 0x%" PRIx64,
                           j->rfbm);
    r = write_ranges(e, j, &w);
    return r == EMU_DONE ? advance(e) : r;
}

static enum emu_result xs_restore(struct emu *e, struct xs_job *j)
{
    uint8_t hdr[XSTATE_HEADER_SIZE];
    struct xstate_ranges rd;
    enum emu_result r = xs_prepare(e, j);
    if (r == EMU_DONE)
        r = xs_address(e, j, XSTATE_EXT_OFF, GP_READ);
    if (r == EMU_DONE)
        r = read_linear(e, j->la + XSTATE_HEADER_OFF, hdr, sizeof(hdr),
                        GP_READ);
    if (r != EMU_DONE)
        return r;
    enum xstate_result xr = xstate_restore_plan(
        &j->l, hdr, j->rfbm, j->enabled, e->insn.op == X86_OP_XRSTORS, &rd);
    if (xr == XSTATE_GP)
        return raise_gp0(e);
    if (xr != XSTATE_OK)
        return unsupported(e, "XSAVE header names unknown components");
    uint32_t end = 0;
    for (unsigned i = 0; i < rd.n; i++)
        if (rd.r[i].off + rd.r[i].len > end)
            end = rd.r[i].off + rd.r[i].len;
    r = xs_address(e, j, end, GP_READ); /* the segment limit, whole extent */
    for (unsigned i = 0; i < rd.n && r == EMU_DONE; i++)
        r = read_linear(e, j->la + rd.r[i].off, j->area + rd.r[i].off,
                        rd.r[i].len, GP_READ);
    if (r != EMU_DONE)
        return r;
    memcpy(j->area + XSTATE_HEADER_OFF, hdr, sizeof(hdr)); /* as checked */
    xr = xstate_restore(&j->l, j->kvm, j->kvm_len, j->area, j->area_len,
                        e->insn.rex_w, j->rfbm);
    if (xr == XSTATE_GP)
        return raise_gp0(e);
    if (xr != XSTATE_OK)
        return unsupported(e, "KVM's XSAVE image lacks components 0x%" PRIx64,
                           j->rfbm);
    if (e->ops->set_xsave(e->vcpu, j->kvm, j->kvm_len) != 0)
        return vcpu_error(e, "KVM_SET_XSAVE");
    return advance(e);
}

static enum emu_result do_xsave_family(struct emu *e)
{
    struct xs_job j;
    memset(&j, 0, sizeof(j));
    bool restore = e->insn.op == X86_OP_XRSTOR ||
                   e->insn.op == X86_OP_XRSTORS;
    enum emu_result r = restore ? xs_restore(e, &j) : xs_save(e, &j);
    free(j.kvm);
    free(j.area);
    return r;
}

static enum emu_result do_xgetbv(struct emu *e)
{
    uint64_t xcr0, v;
    if (e->insn.lock || !(e->sregs.cr4 & CR4_OSXSAVE))
        return raise_ud(e);
    uint32_t ecx = (uint32_t)e->regs.rcx;
    if (ecx > 1)
        return raise_gp0(e);
    enum emu_result r = get_xcr0(e, &xcr0);
    if (r != EMU_DONE)
        return r;
    v = xcr0;
    if (ecx == 1) {
        size_t len = xsave_len(e);
        uint8_t *img = calloc(1, len);
        if (!img)
            return unsupported(e, "out of memory");
        if (e->ops->get_xsave(e->vcpu, img, len) != 0) {
            free(img);
            return vcpu_error(e, "KVM_GET_XSAVE");
        }
        v = xcr0 & xstate_inuse(img, false);
        free(img);
    }
    set_gpr32(e, X86_RAX, (uint32_t)v);
    set_gpr32(e, X86_RDX, (uint32_t)(v >> 32));
    return advance(e);
}

static enum emu_result do_xsetbv(struct emu *e)
{
    if (e->insn.lock || !(e->sregs.cr4 & CR4_OSXSAVE))
        return raise_ud(e);
    if (e->mmu.cpl != 0 || (uint32_t)e->regs.rcx != 0)
        return raise_gp0(e);
    struct kvm_xcrs x;
    memset(&x, 0, sizeof(x));
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = edx_eax(e);
    if (e->ops->set_xcrs(e->vcpu, &x) != 0)
        return raise_gp0(e); /* KVM refuses values the CPU would */
    return advance(e);
}

static enum emu_result do_rdpid(struct emu *e)
{
    uint64_t aux;
    if (e->insn.lock)
        return raise_ud(e);
    if (e->ops->get_msr(e->vcpu, MSR_TSC_AUX, &aux) != 0)
        return unsupported(e, "IA32_TSC_AUX is not readable");
    if (long64(e))
        set_gpr64(e, e->insn.rm, aux);
    else
        set_gpr32(e, e->insn.rm & 7, (uint32_t)aux);
    return advance(e);
}

static enum emu_result do_rdtscp(struct emu *e)
{
    uint64_t tsc, aux;
    if (e->insn.lock)
        return raise_ud(e);
    if ((e->sregs.cr4 & CR4_TSD) && e->mmu.cpl != 0)
        return raise_gp0(e);
    if (e->ops->get_msr(e->vcpu, MSR_IA32_TSC, &tsc) != 0 ||
        e->ops->get_msr(e->vcpu, MSR_TSC_AUX, &aux) != 0)
        return unsupported(e, "IA32_TSC or IA32_TSC_AUX is not readable");
    set_gpr32(e, X86_RAX, (uint32_t)tsc);
    set_gpr32(e, X86_RDX, (uint32_t)(tsc >> 32));
    set_gpr32(e, X86_RCX, (uint32_t)aux);
    return advance(e);
}

/* RDPKRU/WRPKRU reach PKRU through the XSAVE image (component 9). */
static enum emu_result do_pkru(struct emu *e)
{
    bool wr = e->insn.op == X86_OP_WRPKRU;
    if (e->insn.lock || !(e->sregs.cr4 & CR4_PKE))
        return raise_ud(e);
    if ((uint32_t)e->regs.rcx != 0 || (wr && (uint32_t)e->regs.rdx != 0))
        return raise_gp0(e);
    struct xstate_layout l;
    layout(e, &l);
    size_t len = xsave_len(e);
    uint32_t off = l.offset[PKRU_COMPONENT];
    if (!off || off + 4 > len)
        return unsupported(e, "PKRU is not in KVM's XSAVE image");
    uint8_t *img = calloc(1, len);
    if (!img)
        return unsupported(e, "out of memory");
    enum emu_result r = EMU_DONE;
    if (e->ops->get_xsave(e->vcpu, img, len) != 0) {
        r = vcpu_error(e, "KVM_GET_XSAVE");
    } else if (wr) {
        uint64_t bv;
        uint32_t v = (uint32_t)e->regs.rax;
        memcpy(img + off, &v, 4);
        memcpy(&bv, img + XSTATE_HEADER_OFF, 8);
        bv |= 1ull << PKRU_COMPONENT;
        memcpy(img + XSTATE_HEADER_OFF, &bv, 8);
        if (e->ops->set_xsave(e->vcpu, img, len) != 0)
            r = vcpu_error(e, "KVM_SET_XSAVE");
    } else {
        uint64_t bv;
        uint32_t v = 0;
        memcpy(&bv, img + XSTATE_HEADER_OFF, 8);
        if (bv & (1ull << PKRU_COMPONENT))
            memcpy(&v, img + off, 4);
        set_gpr32(e, X86_RAX, v);
        set_gpr32(e, X86_RDX, 0);
    }
    free(img);
    return r == EMU_DONE ? advance(e) : r;
}

/* STAC/CLAC: RFLAGS.AC, which lifts SMAP for supervisor accesses. */
static enum emu_result do_stac_clac(struct emu *e)
{
    if (e->insn.lock || e->mmu.cpl != 0)
        return raise_ud(e);
    set_flag(e, RFLAGS_AC, e->insn.op == X86_OP_STAC);
    return advance(e);
}

static enum emu_result do_popcnt(struct emu *e)
{
    uint64_t v;
    if (e->insn.lock)
        return raise_ud(e);
    enum emu_result r = read_rm(e, e->insn.op_size, &v);
    if (r != EMU_DONE)
        return r;
    set_gpr_sized(e, e->insn.reg, e->insn.op_size,
                  (uint64_t)__builtin_popcountll(v));
    e->regs.rflags &= ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF |
                        RFLAGS_SF | RFLAGS_OF);
    set_flag(e, RFLAGS_ZF, v == 0);
    return advance(e);
}

/* RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE (64-bit mode, CR4.FSGSBASE). */
static enum emu_result do_fsgsbase(struct emu *e)
{
    enum x86_op op = e->insn.op;
    bool fs = op == X86_OP_RDFSBASE || op == X86_OP_WRFSBASE;
    struct kvm_segment *seg = fs ? &e->sregs.fs : &e->sregs.gs;
    unsigned size = e->insn.rex_w ? 8 : 4;
    if (e->insn.lock || !long64(e) || !(e->sregs.cr4 & CR4_FSGSBASE))
        return raise_ud(e);
    if (op == X86_OP_RDFSBASE || op == X86_OP_RDGSBASE) {
        set_gpr_sized(e, e->insn.rm, size, seg->base);
        return advance(e);
    }
    uint64_t v = truncate_to(*gpr(&e->regs, e->insn.rm), size);
    unsigned bits = (e->sregs.cr4 & (1ull << 12)) ? 57 : 48;
    if ((uint64_t)((int64_t)(v << (64 - bits)) >> (64 - bits)) != v)
        return raise_gp0(e);
    seg->base = v;
    if (e->ops->set_sregs(e->vcpu, &e->sregs) != 0)
        return vcpu_error(e, "KVM_SET_SREGS");
    return advance(e);
}

/* FWAIT: #NM under CR0.MP+TS, #MF for a pending unmasked x87 exception
 * (FSW.ES), otherwise nothing. */
static enum emu_result do_fwait(struct emu *e)
{
    uint8_t hdr[XSTATE_EXT_OFF];
    if ((e->sregs.cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
        return raise_exc(e, VEC_NM, false, 0);
    size_t len = xsave_len(e);
    uint8_t *img = calloc(1, len);
    if (!img)
        return unsupported(e, "out of memory");
    if (e->ops->get_xsave(e->vcpu, img, len) != 0) {
        free(img);
        return vcpu_error(e, "KVM_GET_XSAVE");
    }
    memcpy(hdr, img, sizeof(hdr));
    free(img);
    bool x87_in_use = hdr[XSTATE_HEADER_OFF] & 1;
    bool es = x87_in_use && (hdr[2] & 0x80); /* FSW bit 7 */
    if (es && (e->sregs.cr0 & CR0_NE))
        return raise_exc(e, VEC_MF, false, 0);
    return advance(e);
}

static enum emu_result load_mxcsr(struct emu *e, uint8_t *img, size_t len,
                                  uint32_t v)
{
    uint32_t mask = get_le32(img + 28);
    if (v & ~(mask ? mask : 0xFFBFu))
        return raise_gp0(e);
    put_le32(img + 24, v);
    /* KVM takes MXCSR only along with an in-use SSE component. */
    img[XSTATE_HEADER_OFF] |= 2;
    if (e->ops->set_xsave(e->vcpu, img, len) != 0)
        return vcpu_error(e, "KVM_SET_XSAVE");
    return EMU_DONE;
}

static enum emu_result store_mxcsr(struct emu *e, const uint8_t *img,
                                   uint64_t la)
{
    struct gp_fault f;
    return paging_result(e, gp_write(e->mem, &e->mmu, la, img + 24, 4, &f),
                         &f, la);
}

/* LDMXCSR/STMXCSR: MXCSR lives in the legacy region of the XSAVE image. */
static enum emu_result do_mxcsr(struct emu *e)
{
    uint64_t la;
    uint32_t v = 0;
    bool load = e->insn.op == X86_OP_LDMXCSR;
    if (e->insn.lock || (e->sregs.cr0 & CR0_EM) ||
        !(e->sregs.cr4 & CR4_OSFXSR))
        return raise_ud(e);
    if (e->sregs.cr0 & CR0_TS)
        return raise_exc(e, VEC_NM, false, 0);
    enum emu_result r = mem_operand(e, 4, load ? GP_READ : GP_WRITE, &la);
    if (r == EMU_DONE && load)
        r = read_linear(e, la, &v, 4, GP_READ);
    if (r != EMU_DONE)
        return r;
    size_t len = xsave_len(e);
    uint8_t *img = calloc(1, len);
    if (!img)
        return unsupported(e, "out of memory");
    if (e->ops->get_xsave(e->vcpu, img, len) != 0) {
        free(img);
        return vcpu_error(e, "KVM_GET_XSAVE");
    }
    r = load ? load_mxcsr(e, img, len, v) : store_mxcsr(e, img, la);
    free(img);
    return r == EMU_DONE ? advance(e) : r;
}

static enum emu_result do_serialize(struct emu *e)
{
    if (e->insn.lock)
        return raise_ud(e);
    return advance(e); /* leaving the guest serializes already */
}

/* WBINVD/INVD: guest RAM is ordinary host memory, coherent already. */
static enum emu_result do_cache_flush(struct emu *e)
{
    if (e->insn.lock)
        return raise_ud(e);
    if (e->mmu.cpl != 0)
        return raise_gp0(e);
    return advance(e);
}

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

/* #UD/#NM conditions of SSE/AVX/AVX-512 instructions. */
static enum emu_result vector_checks(struct emu *e, uint64_t xcr0)
{
    const struct x86_insn *in = &e->insn;
    if (gpr_only(in))
        return EMU_DONE;
    if (in->enc == X86_ENC_LEGACY) {
        if ((e->sregs.cr0 & CR0_EM) || !(e->sregs.cr4 & CR4_OSFXSR))
            return raise_ud(e);
    } else {
        uint64_t need = in->enc == X86_ENC_EVEX ? 0xE6 : 0x6;
        if (!(e->sregs.cr4 & CR4_OSXSAVE) || (xcr0 & need) != need)
            return raise_ud(e);
    }
    if (e->sregs.cr0 & CR0_TS)
        return raise_exc(e, VEC_NM, false, 0);
    return EMU_DONE;
}

struct native_mem {
    struct emu_native *n;
    uint64_t page[2]; /* linear addresses of the two pages */
    int prot[2];
    uint8_t orig[2][EMU_NATIVE_PAGE];
};

/* Copies a guest page into the bounce area with the access the guest
 * has to it. A page the guest cannot read is left inaccessible: only an
 * instruction that touches it faults. */
static enum emu_result bounce_page(struct emu *e, struct native_mem *m,
                                   unsigned i)
{
    uint8_t *dst = emu_native_bounce(m->n) + i * EMU_NATIVE_PAGE;
    uint64_t gpa;
    struct gp_fault f;
    m->prot[i] = PROT_NONE;
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
        m->prot[i] = PROT_READ;
        if (gp_lookup(e->mem, &e->mmu, m->page[i], GP_WRITE, &gpa, &f) ==
                GP_OK &&
            gpa_ptr(e->mem, gpa, EMU_NATIVE_PAGE, GMEM_WRITE))
            m->prot[i] |= PROT_WRITE;
    } else if (st == GP_NO_MEMORY) {
        return unsupported(e, "page tables for 0x%" PRIx64
                              " are not guest RAM", m->page[i]);
    }
    memcpy(m->orig[i], dst, EMU_NATIVE_PAGE);
    if (emu_native_protect(m->n, i, m->prot[i]) != 0)
        return unsupported(e, "cannot protect the bounce page");
    return EMU_DONE;
}

/* The memory operand: pages la falls in (two when a 64-byte access could
 * cross), and the host address the instruction will use. */
static enum emu_result bounce_operand(struct emu *e, struct native_mem *m,
                                      uint64_t *host)
{
    uint64_t la;
    enum emu_result r = mem_operand(e, 1, GP_READ, &la);
    if (r != EMU_DONE)
        return r;
    m->page[0] = la & ~(uint64_t)(EMU_NATIVE_PAGE - 1);
    m->page[1] = m->page[0] + EMU_NATIVE_PAGE;
    r = bounce_page(e, m, 0);
    if (r == EMU_DONE && (la & (EMU_NATIVE_PAGE - 1)) + 64 > EMU_NATIVE_PAGE)
        r = bounce_page(e, m, 1);
    else if (r == EMU_DONE && emu_native_protect(m->n, 1, PROT_NONE) != 0)
        r = unsupported(e, "cannot protect the bounce page");
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
        enum emu_result r = paging_result(
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
        return raise_ud(e);
    if (job->signo == SIGFPE && job->trapno == VEC_XM)
        return (e->sregs.cr4 & CR4_OSXMMEXCPT) ? raise_exc(e, VEC_XM, false, 0)
                                               : raise_ud(e);
    if (job->signo == SIGFPE && job->trapno == VEC_MF)
        return raise_exc(e, VEC_MF, false, 0);
    if (job->signo == SIGSEGV && job->trapno == GP_VEC_GP)
        return raise_gp0(e); /* alignment */
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
            return paging_result(e, st, &f, la);
    }
    return unsupported(e, "native execution raised signal %d (trap %d)",
                       job->signo, job->trapno);
}

static void native_results(struct emu *e, const struct emu_native_job *job,
                           int base)
{
    for (unsigned i = 0; i < 16; i++)
        if ((int)i != base && *gpr(&e->regs, i) != job->gpr[i])
            set_gpr64(e, i, job->gpr[i]);
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
        job->gpr[i] = *gpr(&e->regs, i);
    job->rflags = e->regs.rflags;
    if (e->insn.enc == X86_ENC_EVEX && e->insn.disp_size == 1 &&
        e->insn.mem.disp != 0) {
        unsigned scale;
        if (emu_native_disp8_scale(m->n, &e->insn, job, &scale) != 0)
            return unsupported(e, "cannot find the EVEX disp8 scale");
        e->insn.mem.disp *= scale;
        for (unsigned i = 0; i < 16; i++)
            job->gpr[i] = *gpr(&e->regs, i);
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

static enum emu_result do_native(struct emu *e)
{
    struct native_mem *m;
    uint64_t xcr0;
    struct emu_native_job job;
    e->stat_op = X86_OP_NATIVE;
    struct emu_native *n = e->ops->native ? e->ops->native(e->vcpu) : NULL;
    if (!n)
        return unsupported(e, "no executor for vector instructions");
    enum emu_result r = get_xcr0(e, &xcr0);
    if (r == EMU_DONE)
        r = vector_checks(e, xcr0);
    if (r != EMU_DONE)
        return r;
    memset(&job, 0, sizeof(job));
    job.xsave_len = xsave_len(e);
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
        r = native_run(e, m, &job);
    }
    if (r == EMU_DONE && memcmp(before, job.xsave, job.xsave_len) != 0 &&
        e->ops->set_xsave(e->vcpu, job.xsave, job.xsave_len) != 0)
        r = vcpu_error(e, "KVM_SET_XSAVE");
    free(job.xsave);
    free(before);
    free(m);
    return r == EMU_DONE ? advance(e) : r;
}

static enum emu_result complete(struct emu *e)
{
    switch (e->insn.op) {
    case X86_OP_INT3:
        return complete_and_raise(e, VEC_BP);
    case X86_OP_INT1:
        return complete_and_raise(e, VEC_DB);
    case X86_OP_INTO:
        return do_into(e);
    case X86_OP_CMPXCHG8B:
    case X86_OP_CMPXCHG16B:
        return do_cmpxchg(e);
    case X86_OP_XSAVE:
    case X86_OP_XSAVEOPT:
    case X86_OP_XSAVEC:
    case X86_OP_XSAVES:
    case X86_OP_XRSTOR:
    case X86_OP_XRSTORS:
        return do_xsave_family(e);
    case X86_OP_XGETBV:
        return do_xgetbv(e);
    case X86_OP_XSETBV:
        return do_xsetbv(e);
    case X86_OP_RDPID:
        return do_rdpid(e);
    case X86_OP_RDTSCP:
        return do_rdtscp(e);
    case X86_OP_RDPKRU:
    case X86_OP_WRPKRU:
        return do_pkru(e);
    case X86_OP_STAC:
    case X86_OP_CLAC:
        return do_stac_clac(e);
    case X86_OP_POPCNT:
        return do_popcnt(e);
    case X86_OP_RDFSBASE:
    case X86_OP_RDGSBASE:
    case X86_OP_WRFSBASE:
    case X86_OP_WRGSBASE:
        return do_fsgsbase(e);
    case X86_OP_SERIALIZE:
        return do_serialize(e);
    case X86_OP_FWAIT:
        return do_fwait(e);
    case X86_OP_LDMXCSR:
    case X86_OP_STMXCSR:
        return do_mxcsr(e);
    case X86_OP_WBINVD:
    case X86_OP_INVD:
        return do_cache_flush(e);
    default:
        if (x86_native_ok(&e->insn))
            return do_native(e);
        return unsupported(e, "no userspace completion for this instruction");
    }
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
        return raise_gp0(e);
    case X86_DECODE_INVALID:
        return raise_ud(e);
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
        return paging_result(e, st, &f, la + from);
    e->raw_len = from + n;
    return EMU_DONE;
}

/* Reads the instruction at CS:RIP from guest memory, one page at a time
 * so that a fault on the next page is raised only when needed. */
static enum emu_result fetch_from_memory(struct emu *e)
{
    uint64_t la;
    struct gp_fault f;
    struct gp_segment cs = segment(e, X86_CS);
    enum gp_status st = gp_linear(&e->mmu, &cs, X86_CS, e->regs.rip, 1,
                                  GP_FETCH, &la, &f);
    if (st != GP_OK)
        return paging_result(e, st, &f, e->regs.rip);
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
    return paging_result(e, st, &f, e->regs.rip);
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
    if (e->regs_changed && r == EMU_DONE &&
        e->ops->set_regs(e->vcpu, &e->regs) != 0)
        return vcpu_error(e, "KVM_SET_REGS");
    memset(&ev, 0, sizeof(ev));
    if (e->ops->get_events(e->vcpu, &ev) != 0)
        return vcpu_error(e, "KVM_GET_VCPU_EVENTS");
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
        r = complete(&e);
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
