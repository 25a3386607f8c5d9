/* The small completions: int3/int1/into, cmpxchg8b/16b, xgetbv/xsetbv,
 * rdpid, rdtscp, rdpkru/wrpkru, stac/clac, popcnt, fsgsbase, fwait,
 * ldmxcsr/stmxcsr, serialize, wbinvd/invd; and the dispatch. */
#include <inttypes.h>
#include <stdlib.h>

#include "vm/emulate_priv.h"

/* ---- completions ---------------------------------------------------- */

static enum emu_result do_into(struct emu *e)
{
    if (!(e->regs.rflags & RFLAGS_OF))
        return emu_advance(e);
    return emu_complete_and_raise(e, VEC_OF);
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
    return emu_paging_result(e, st, &f, la);
}

static enum emu_result do_cmpxchg(struct emu *e)
{
    bool wide = e->insn.op == X86_OP_CMPXCHG16B;
    unsigned size = wide ? 16 : 8;
    uint64_t la;
    enum emu_result r = emu_mem_operand(e, size, GP_WRITE, &la);
    if (r != EMU_DONE)
        return r;
    if (wide && (la & 15))
        return emu_raise_gp0(e);
    uint64_t lo = wide ? e->regs.rax : emu_edx_eax(e);
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
        r = emu_paging_result(e, gp_host_ptr(e->mem, &e->mmu, la, size, &host, &f),
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
    emu_set_flag(e, RFLAGS_ZF, ok);
    if (!ok && wide) {
        emu_set_gpr64(e, X86_RAX, lo);
        emu_set_gpr64(e, X86_RDX, hi);
    } else if (!ok) {
        emu_set_gpr32(e, X86_RAX, (uint32_t)lo);
        emu_set_gpr32(e, X86_RDX, (uint32_t)(lo >> 32));
    }
    return emu_advance(e);
}

static enum emu_result do_xgetbv(struct emu *e)
{
    uint64_t xcr0, v;
    if (e->insn.lock || !(e->sregs.cr4 & CR4_OSXSAVE))
        return emu_raise_ud(e);
    uint32_t ecx = (uint32_t)e->regs.rcx;
    if (ecx > 1)
        return emu_raise_gp0(e);
    enum emu_result r = emu_get_xcr0(e, &xcr0);
    if (r != EMU_DONE)
        return r;
    v = xcr0;
    if (ecx == 1) {
        size_t len = emu_xsave_len(e);
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
    emu_set_gpr32(e, X86_RAX, (uint32_t)v);
    emu_set_gpr32(e, X86_RDX, (uint32_t)(v >> 32));
    return emu_advance(e);
}

static enum emu_result do_xsetbv(struct emu *e)
{
    if (e->insn.lock || !(e->sregs.cr4 & CR4_OSXSAVE))
        return emu_raise_ud(e);
    if (e->mmu.cpl != 0 || (uint32_t)e->regs.rcx != 0)
        return emu_raise_gp0(e);
    struct kvm_xcrs x;
    memset(&x, 0, sizeof(x));
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = emu_edx_eax(e);
    if (e->ops->set_xcrs(e->vcpu, &x) != 0)
        return emu_raise_gp0(e); /* KVM refuses values the CPU would */
    return emu_advance(e);
}

static enum emu_result do_rdpid(struct emu *e)
{
    uint64_t aux;
    if (e->insn.lock)
        return emu_raise_ud(e);
    if (e->ops->get_msr(e->vcpu, MSR_TSC_AUX, &aux) != 0)
        return unsupported(e, "IA32_TSC_AUX is not readable");
    if (emu_long64(e))
        emu_set_gpr64(e, e->insn.rm, aux);
    else
        emu_set_gpr32(e, e->insn.rm & 7, (uint32_t)aux);
    return emu_advance(e);
}

static enum emu_result do_rdtscp(struct emu *e)
{
    uint64_t tsc, aux;
    if (e->insn.lock)
        return emu_raise_ud(e);
    if ((e->sregs.cr4 & CR4_TSD) && e->mmu.cpl != 0)
        return emu_raise_gp0(e);
    if (e->ops->get_msr(e->vcpu, MSR_IA32_TSC, &tsc) != 0 ||
        e->ops->get_msr(e->vcpu, MSR_TSC_AUX, &aux) != 0)
        return unsupported(e, "IA32_TSC or IA32_TSC_AUX is not readable");
    emu_set_gpr32(e, X86_RAX, (uint32_t)tsc);
    emu_set_gpr32(e, X86_RDX, (uint32_t)(tsc >> 32));
    emu_set_gpr32(e, X86_RCX, (uint32_t)aux);
    return emu_advance(e);
}

/* RDPKRU/WRPKRU reach PKRU through the XSAVE image (component 9). */
static enum emu_result do_pkru(struct emu *e)
{
    bool wr = e->insn.op == X86_OP_WRPKRU;
    if (e->insn.lock || !(e->sregs.cr4 & CR4_PKE))
        return emu_raise_ud(e);
    if ((uint32_t)e->regs.rcx != 0 || (wr && (uint32_t)e->regs.rdx != 0))
        return emu_raise_gp0(e);
    struct xstate_layout l;
    emu_layout(e, &l);
    size_t len = emu_xsave_len(e);
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
        emu_set_gpr32(e, X86_RAX, v);
        emu_set_gpr32(e, X86_RDX, 0);
    }
    free(img);
    return r == EMU_DONE ? emu_advance(e) : r;
}

/* STAC/CLAC: RFLAGS.AC, which lifts SMAP for supervisor accesses. */
static enum emu_result do_stac_clac(struct emu *e)
{
    if (e->insn.lock || e->mmu.cpl != 0)
        return emu_raise_ud(e);
    emu_set_flag(e, RFLAGS_AC, e->insn.op == X86_OP_STAC);
    return emu_advance(e);
}

static enum emu_result do_popcnt(struct emu *e)
{
    uint64_t v;
    if (e->insn.lock)
        return emu_raise_ud(e);
    enum emu_result r = emu_read_rm(e, e->insn.op_size, &v);
    if (r != EMU_DONE)
        return r;
    emu_set_gpr_sized(e, e->insn.reg, e->insn.op_size,
                  (uint64_t)__builtin_popcountll(v));
    e->regs.rflags &= ~(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF |
                        RFLAGS_SF | RFLAGS_OF);
    emu_set_flag(e, RFLAGS_ZF, v == 0);
    return emu_advance(e);
}

/* Whether LAR/LSL may report this descriptor at this CPL and RPL. */
static bool lar_lsl_visible(const struct emu *e, uint64_t d, uint16_t sel,
                            bool lsl)
{
    unsigned type = (unsigned)(d >> 40) & 0xF, dpl = (unsigned)(d >> 45) & 3;
    bool long_mode = e->sregs.efer & (1ull << 10);
    if (!((d >> 44) & 1)) { /* system descriptors: LDT and TSS; LAR gates */
        static const uint16_t legacy_lsl = 0x0A0E, legacy_lar = 0x1A3E;
        uint16_t ok = long_mode ? (lsl ? 0x0A04 : 0x1A04)
                      : lsl ? legacy_lsl : legacy_lar;
        if (!((ok >> type) & 1))
            return false;
    } else if ((type & 0xC) == 0xC) { /* conforming code: no check */
        return true;
    }
    return dpl >= e->mmu.cpl && dpl >= (sel & 3u);
}

/* LAR/LSL: a segment's access rights or limit, ZF telling whether the
 * selector was visible. Linux's paranoid entries (NMI, #MC) use LSL to
 * find the CPU number when RDPID is missing. */
static enum emu_result do_lar_lsl(struct emu *e)
{
    uint64_t sel, d = 0;
    bool lsl = e->insn.op == X86_OP_LSL, found;
    if (e->insn.lock || e->mmu.mode == X86_MODE_REAL ||
        e->mmu.mode == X86_MODE_VM86)
        return emu_raise_ud(e);
    enum emu_result r = emu_read_rm(e, 2, &sel);
    if (r == EMU_DONE)
        r = emu_read_descriptor(e, (uint16_t)sel, &d, &found);
    if (r != EMU_DONE)
        return r;
    bool ok = found && lar_lsl_visible(e, d, (uint16_t)sel, lsl);
    if (ok) {
        uint64_t v;
        if (lsl) {
            v = (d & 0xFFFF) | ((d >> 32) & 0xF0000);
            if ((d >> 55) & 1)
                v = (v << 12) | 0xFFF;
        } else {
            v = (d >> 32) & 0x00FFFF00; /* 19:16 undefined: as read */
        }
        emu_set_gpr_sized(e, e->insn.reg, e->insn.op_size == 2 ? 2 : 4,
                          e->insn.op_size == 2 ? v & 0xFFFF : v);
    }
    emu_set_flag(e, RFLAGS_ZF, ok);
    return emu_advance(e);
}

/* RDFSBASE/RDGSBASE/WRFSBASE/WRGSBASE (64-bit mode, CR4.FSGSBASE). */
static enum emu_result do_fsgsbase(struct emu *e)
{
    enum x86_op op = e->insn.op;
    bool fs = op == X86_OP_RDFSBASE || op == X86_OP_WRFSBASE;
    struct kvm_segment *seg = fs ? &e->sregs.fs : &e->sregs.gs;
    unsigned size = e->insn.rex_w ? 8 : 4;
    if (e->insn.lock || !emu_long64(e) || !(e->sregs.cr4 & CR4_FSGSBASE))
        return emu_raise_ud(e);
    if (op == X86_OP_RDFSBASE || op == X86_OP_RDGSBASE) {
        emu_set_gpr_sized(e, e->insn.rm, size, seg->base);
        return emu_advance(e);
    }
    uint64_t v = emu_truncate(*emu_gpr(&e->regs, e->insn.rm), size);
    unsigned bits = (e->sregs.cr4 & (1ull << 12)) ? 57 : 48;
    if ((uint64_t)((int64_t)(v << (64 - bits)) >> (64 - bits)) != v)
        return emu_raise_gp0(e);
    seg->base = v;
    if (e->ops->set_sregs(e->vcpu, &e->sregs) != 0)
        return vcpu_error(e, "KVM_SET_SREGS");
    return emu_advance(e);
}

/* FWAIT: #NM under CR0.MP+TS, #MF for a pending unmasked x87 exception
 * (FSW.ES), otherwise nothing. */
static enum emu_result do_fwait(struct emu *e)
{
    uint8_t hdr[XSTATE_EXT_OFF];
    if ((e->sregs.cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
        return emu_raise(e, VEC_NM, false, 0);
    size_t len = emu_xsave_len(e);
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
        return emu_raise(e, VEC_MF, false, 0);
    return emu_advance(e);
}

static enum emu_result load_mxcsr(struct emu *e, uint8_t *img, size_t len,
                                  uint32_t v)
{
    uint32_t mask = get_le32(img + 28);
    if (v & ~(mask ? mask : 0xFFBFu))
        return emu_raise_gp0(e);
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
    return emu_paging_result(e, gp_write(e->mem, &e->mmu, la, img + 24, 4, &f),
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
        return emu_raise_ud(e);
    if (e->sregs.cr0 & CR0_TS)
        return emu_raise(e, VEC_NM, false, 0);
    enum emu_result r = emu_mem_operand(e, 4, load ? GP_READ : GP_WRITE, &la);
    if (r == EMU_DONE && load)
        r = emu_read_linear(e, la, &v, 4, GP_READ);
    if (r != EMU_DONE)
        return r;
    size_t len = emu_xsave_len(e);
    uint8_t *img = calloc(1, len);
    if (!img)
        return unsupported(e, "out of memory");
    if (e->ops->get_xsave(e->vcpu, img, len) != 0) {
        free(img);
        return vcpu_error(e, "KVM_GET_XSAVE");
    }
    r = load ? load_mxcsr(e, img, len, v) : store_mxcsr(e, img, la);
    free(img);
    return r == EMU_DONE ? emu_advance(e) : r;
}

static enum emu_result do_serialize(struct emu *e)
{
    if (e->insn.lock)
        return emu_raise_ud(e);
    return emu_advance(e); /* leaving the guest serializes already */
}

/* WBINVD/INVD: guest RAM is ordinary host memory, coherent already. */
static enum emu_result do_cache_flush(struct emu *e)
{
    if (e->insn.lock)
        return emu_raise_ud(e);
    if (e->mmu.cpl != 0)
        return emu_raise_gp0(e);
    return emu_advance(e);
}

enum emu_result emu_complete(struct emu *e)
{
    switch (e->insn.op) {
    case X86_OP_INT3:
        return emu_complete_and_raise(e, VEC_BP);
    case X86_OP_INT1:
        return emu_complete_and_raise(e, VEC_DB);
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
        return emu_xsave_family(e);
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
    case X86_OP_IRET:
        return emu_iret(e);
    case X86_OP_LAR:
    case X86_OP_LSL:
        return do_lar_lsl(e);
    default:
        if (x86_native_ok(&e->insn))
            return emu_vector(e);
        return unsupported(e, "no userspace completion for this instruction");
    }
}
