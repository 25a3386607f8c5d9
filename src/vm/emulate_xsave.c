/* XSAVE, XSAVEOPT, XSAVEC, XSAVES, XRSTOR, XRSTORS on guest memory,
 * through the vCPU's XSAVE image (xstate.c does the format work). */
#include <inttypes.h>
#include <stdlib.h>

#include "vm/emulate_priv.h"

static bool is_supervisor_op(enum x86_op op)
{
    return op == X86_OP_XSAVES || op == X86_OP_XRSTORS;
}

/* Faults every XSAVE-family instruction checks first. */
static enum emu_result xsave_checks(struct emu *e)
{
    if (e->insn.lock || !(e->sregs.cr4 & CR4_OSXSAVE))
        return emu_raise_ud(e);
    if (e->sregs.cr0 & CR0_TS)
        return emu_raise(e, VEC_NM, false, 0);
    if (is_supervisor_op(e->insn.op) && e->mmu.cpl != 0)
        return emu_raise_gp0(e);
    return EMU_DONE;
}

/* XCR0, or XCR0 | IA32_XSS for the supervisor variants. */
static enum emu_result enabled_components(struct emu *e, uint64_t *mask)
{
    enum emu_result r = emu_get_xcr0(e, mask);
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
    emu_layout(e, &j->l);
    j->rfbm = j->enabled & emu_edx_eax(e);
    if (j->rfbm & ~(j->l.user_mask | 3ull))
        return unsupported(e, "state components 0x%" PRIx64
                              " are not reachable through KVM_GET_XSAVE",
                           (uint64_t)(j->rfbm & ~(j->l.user_mask | 3ull)));
    j->kvm_len = emu_xsave_len(e);
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
    enum emu_result r = emu_mem_operand(e, size, acc, &j->la);
    if (r == EMU_DONE && (j->la & 63))
        return emu_raise_gp0(e);
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
            return emu_paging_result(e, st, &f, la);
    }
    for (unsigned i = 0; i < w->n; i++) {
        uint64_t la = j->la + w->r[i].off;
        enum gp_status st = gp_write(e->mem, &e->mmu, la,
                                     j->area + w->r[i].off, w->r[i].len, &f);
        if (st != GP_OK)
            return emu_paging_result(e, st, &f, la);
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
        r = emu_read_linear(e, j->la + XSTATE_HEADER_OFF,
                        j->area + XSTATE_HEADER_OFF, 8, GP_WRITE);
    if (r != EMU_DONE)
        return r;
    struct xstate_ranges w;
    if (xstate_save(&j->l, j->kvm, j->kvm_len, compacted, e->insn.rex_w,
                    j->rfbm, j->area, j->area_len, &w) != XSTATE_OK)
        return unsupported(e, "KVM's XSAVE image lacks components 0x%" PRIx64,
                           j->rfbm);
    r = write_ranges(e, j, &w);
    return r == EMU_DONE ? emu_advance(e) : r;
}

static enum emu_result xs_restore(struct emu *e, struct xs_job *j)
{
    uint8_t hdr[XSTATE_HEADER_SIZE];
    struct xstate_ranges rd;
    enum emu_result r = xs_prepare(e, j);
    if (r == EMU_DONE)
        r = xs_address(e, j, XSTATE_EXT_OFF, GP_READ);
    if (r == EMU_DONE)
        r = emu_read_linear(e, j->la + XSTATE_HEADER_OFF, hdr, sizeof(hdr),
                        GP_READ);
    if (r != EMU_DONE)
        return r;
    enum xstate_result xr = xstate_restore_plan(
        &j->l, hdr, j->rfbm, j->enabled, e->insn.op == X86_OP_XRSTORS, &rd);
    if (xr == XSTATE_GP)
        return emu_raise_gp0(e);
    if (xr != XSTATE_OK)
        return unsupported(e, "XSAVE header names unknown components");
    uint32_t end = 0;
    for (unsigned i = 0; i < rd.n; i++)
        if (rd.r[i].off + rd.r[i].len > end)
            end = rd.r[i].off + rd.r[i].len;
    r = xs_address(e, j, end, GP_READ); /* the segment limit, whole extent */
    for (unsigned i = 0; i < rd.n && r == EMU_DONE; i++)
        r = emu_read_linear(e, j->la + rd.r[i].off, j->area + rd.r[i].off,
                        rd.r[i].len, GP_READ);
    if (r != EMU_DONE)
        return r;
    memcpy(j->area + XSTATE_HEADER_OFF, hdr, sizeof(hdr)); /* as checked */
    xr = xstate_restore(&j->l, j->kvm, j->kvm_len, j->area, j->area_len,
                        e->insn.rex_w, j->rfbm);
    if (xr == XSTATE_GP)
        return emu_raise_gp0(e);
    if (xr != XSTATE_OK)
        return unsupported(e, "KVM's XSAVE image lacks components 0x%" PRIx64,
                           j->rfbm);
    if (e->ops->set_xsave(e->vcpu, j->kvm, j->kvm_len) != 0)
        return vcpu_error(e, "KVM_SET_XSAVE");
    return emu_advance(e);
}

enum emu_result emu_xsave_family(struct emu *e)
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
