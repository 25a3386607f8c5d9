/* IRET in 16/32-bit protected mode, which some hosts' emulators lack
 * (seen: syslinux's COM32 code returning from its interrupt stubs).
 * Covered: return to the same privilege level and to an outer one (the
 * stack then switches). Left out, with a diagnostic: nested-task returns
 * (EFLAGS.NT), returns to virtual-8086 mode, and every other mode (real
 * and long mode IRET are the host emulator's). */
#include "vm/emulate_priv.h"

#define RFLAGS_IF (1ull << 9)
#define RFLAGS_IOPL (3ull << 12)
#define RFLAGS_NT (1ull << 14)
#define RFLAGS_VM (1ull << 17)
#define RFLAGS_VIF (1ull << 19)
#define RFLAGS_VIP (1ull << 20)
#define RFLAGS_FIXED 0x2ull
/* Bits any IRET may load: CF PF AF ZF SF TF DF OF NT RF AC ID */
#define RFLAGS_IRET_BITS 0x254DD5ull

struct frame {
    uint32_t ip, cs, flags, sp, ss;
};

static enum emu_result pop_frame(struct emu *e, unsigned size, bool outer,
                                 uint64_t sp, struct frame *f)
{
    struct gp_segment ss = emu_segment(e, X86_SS);
    unsigned n = outer ? 5 : 3;
    uint8_t buf[5 * 4];
    uint64_t mask = ss.db ? 0xFFFFFFFFull : 0xFFFFull;
    for (unsigned i = 0; i < n; i++) {
        uint64_t la = ss.base + ((sp + i * size) & mask);
        if (!ss.db)
            la &= 0xFFFFFFFFull;
        enum emu_result r = emu_read_linear(e, la, buf + i * size, size,
                                            GP_READ);
        if (r != EMU_DONE)
            return r;
    }
    uint32_t *out[] = {&f->ip, &f->cs, &f->flags, &f->sp, &f->ss};
    for (unsigned i = 0; i < n; i++)
        *out[i] = size == 4 ? get_le32(buf + 4 * i) : get_le16(buf + 2 * i);
    return EMU_DONE;
}

/* The descriptor a selector names; #GP(selector) when there is none. */
static enum emu_result read_descriptor(struct emu *e, uint16_t sel,
                                       uint64_t *desc)
{
    bool found;
    enum emu_result r = emu_read_descriptor(e, sel, desc, &found);
    if (r == EMU_DONE && !found)
        return emu_raise(e, GP_VEC_GP, true, sel & ~3u);
    return r;
}

static struct kvm_segment segment_from(uint64_t d, uint16_t sel)
{
    uint32_t limit = (uint32_t)((d & 0xFFFF) | ((d >> 32) & 0xF0000));
    bool g = (d >> 55) & 1;
    return (struct kvm_segment){
        .base = ((d >> 16) & 0xFFFFFF) | (((d >> 56) & 0xFF) << 24),
        .limit = g ? (limit << 12) | 0xFFF : limit,
        .selector = sel,
        .type = (uint8_t)((d >> 40) & 0xF),
        .s = (uint8_t)((d >> 44) & 1),
        .dpl = (uint8_t)((d >> 45) & 3),
        .present = (uint8_t)((d >> 47) & 1),
        .avl = (uint8_t)((d >> 52) & 1),
        .l = (uint8_t)((d >> 53) & 1),
        .db = (uint8_t)((d >> 54) & 1),
        .g = g,
    };
}

/* CS for the return: a present code segment the new CPL may run. */
static enum emu_result load_cs(struct emu *e, uint16_t sel,
                               struct kvm_segment *cs)
{
    uint64_t d;
    enum emu_result r = read_descriptor(e, sel, &d);
    if (r != EMU_DONE)
        return r;
    *cs = segment_from(d, sel);
    unsigned rpl = sel & 3, cpl = e->mmu.cpl;
    bool code = cs->s && (cs->type & 8), conforming = cs->type & 4;
    if (!code || rpl < cpl || (conforming ? cs->dpl > rpl : cs->dpl != rpl) ||
        cs->l)
        return emu_raise(e, GP_VEC_GP, true, sel & ~3u);
    if (!cs->present)
        return emu_raise(e, 11 /* #NP */, true, sel & ~3u);
    cs->type |= 1; /* accessed */
    return EMU_DONE;
}

/* SS for an outer return: a writable data segment at the new CPL. */
static enum emu_result load_ss(struct emu *e, uint16_t sel, unsigned cpl,
                               struct kvm_segment *ss)
{
    uint64_t d;
    enum emu_result r = read_descriptor(e, sel, &d);
    if (r != EMU_DONE)
        return r;
    *ss = segment_from(d, sel);
    bool writable_data = ss->s && !(ss->type & 8) && (ss->type & 2);
    if ((sel & 3) != cpl || ss->dpl != cpl || !writable_data)
        return emu_raise(e, GP_VEC_GP, true, sel & ~3u);
    if (!ss->present)
        return emu_raise(e, GP_VEC_SS, true, sel & ~3u);
    ss->type |= 1;
    return EMU_DONE;
}

static uint64_t new_flags(const struct emu *e, unsigned size, uint32_t popped)
{
    uint64_t keep = ~RFLAGS_IRET_BITS, load = RFLAGS_IRET_BITS;
    unsigned cpl = e->mmu.cpl, iopl = (e->regs.rflags >> 12) & 3;
    if (cpl == 0)
        load |= RFLAGS_IOPL | RFLAGS_IF | RFLAGS_VIF | RFLAGS_VIP;
    else if (cpl <= iopl)
        load |= RFLAGS_IF;
    if (size == 2)
        load &= 0xFFFF;
    keep = ~load;
    return ((e->regs.rflags & keep) | (popped & load) | RFLAGS_FIXED) &
           ~RFLAGS_VM;
}

/* Data segments the new CPL may not use become null. */
static void check_data_segments(struct emu *e, unsigned cpl)
{
    struct kvm_segment *segs[] = {&e->sregs.ds, &e->sregs.es, &e->sregs.fs,
                                  &e->sregs.gs};
    for (unsigned i = 0; i < ARRAY_SIZE(segs); i++) {
        struct kvm_segment *s = segs[i];
        bool code_conforming = (s->type & 8) && (s->type & 4);
        if (!s->unusable && !code_conforming && s->dpl < cpl) {
            s->selector = 0;
            s->unusable = 1;
            s->present = 0;
        }
    }
}

enum emu_result emu_iret(struct emu *e)
{
    enum x86_mode m = e->mmu.mode;
    if (m != X86_MODE_PROT16 && m != X86_MODE_PROT32)
        return unsupported(e, "iret in this mode");
    if (e->regs.rflags & RFLAGS_NT)
        return unsupported(e, "iret to a nested task");
    unsigned size = e->insn.op_size == 2 ? 2 : 4;
    struct frame f;
    enum emu_result r = pop_frame(e, size, false, e->regs.rsp, &f);
    if (r != EMU_DONE)
        return r;
    if (size == 4 && (f.flags & RFLAGS_VM) && e->mmu.cpl == 0)
        return unsupported(e, "iret to virtual-8086 mode");
    struct kvm_segment cs, ss;
    if ((r = load_cs(e, (uint16_t)f.cs, &cs)) != EMU_DONE)
        return r;
    unsigned new_cpl = f.cs & 3;
    bool outer = new_cpl > e->mmu.cpl;
    if (outer) {
        if ((r = pop_frame(e, size, true, e->regs.rsp, &f)) != EMU_DONE ||
            (r = load_ss(e, (uint16_t)f.ss, new_cpl, &ss)) != EMU_DONE)
            return r;
    }
    if (f.ip > cs.limit)
        return emu_raise_gp0(e);
    e->regs.rflags = new_flags(e, size, f.flags);
    e->regs.rip = size == 2 ? (f.ip & 0xFFFF) : f.ip;
    struct gp_segment cur_ss = emu_segment(e, X86_SS);
    uint64_t sp_mask = cur_ss.db ? 0xFFFFFFFFull : 0xFFFFull;
    if (outer) {
        e->regs.rsp = size == 2 ? (e->regs.rsp & ~0xFFFFull) | (f.sp & 0xFFFF)
                                : f.sp;
        e->sregs.ss = ss;
        check_data_segments(e, new_cpl);
    } else {
        uint64_t sp = (e->regs.rsp + 3 * size) & sp_mask;
        e->regs.rsp = (e->regs.rsp & ~sp_mask) | sp;
    }
    e->sregs.cs = cs;
    e->regs_changed = true;
    e->sregs_changed = true;
    return EMU_DONE;
}
