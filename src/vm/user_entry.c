#include "vm/user_entry.h"

#include "util.h"

#define RFLAGS_FIXED 0x2ull
#define RFLAGS_TF (1ull << 8)
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_NT (1ull << 14)
#define RFLAGS_RF (1ull << 16)
#define RFLAGS_VM (1ull << 17)
#define PFEC_USER 0x4ull
#define GATE_INTERRUPT64 0xE
#define GATE_TRAP64 0xF
#define TSS64_RSP0 4
#define TSS64_IST1 0x24

void exc_frame64_parse(const uint8_t *buf, bool has_error,
                       struct exc_frame64 *f)
{
    unsigned at = has_error ? 8 : 0;
    f->error = has_error ? get_le64(buf) : 0;
    f->rip = get_le64(buf + at);
    f->cs = get_le64(buf + at + 8);
    f->rflags = get_le64(buf + at + 16);
    f->rsp = get_le64(buf + at + 24);
    f->ss = get_le64(buf + at + 32);
}

bool idt_gate64_decode(const uint8_t gate[IDT_GATE64_SIZE],
                       struct idt_gate64 *out)
{
    uint8_t attr = gate[5];
    unsigned type = attr & 0xF;
    if (!(attr & 0x80) || (attr & 0x10) ||
        (type != GATE_INTERRUPT64 && type != GATE_TRAP64))
        return false;
    *out = (struct idt_gate64){
        .handler = (uint64_t)get_le16(gate) |
                   (uint64_t)get_le16(gate + 6) << 16 |
                   (uint64_t)get_le32(gate + 8) << 32,
        .selector = get_le16(gate + 2),
        .ist = gate[4] & 7,
        .dpl = (attr >> 5) & 3,
        .trap = type == GATE_TRAP64};
    return true;
}

void kernel_flat_segments(uint16_t sel, struct kvm_segment *cs,
                          struct kvm_segment *ss)
{
    sel &= 0xFFFC;
    *cs = (struct kvm_segment){.base = 0, .limit = 0xFFFFFFFF, .selector = sel,
                               .type = 0xB, .present = 1, .dpl = 0, .db = 0,
                               .s = 1, .l = 1, .g = 1};
    *ss = (struct kvm_segment){.base = 0, .limit = 0xFFFFFFFF,
                               .selector = (uint16_t)(sel + 8), .type = 0x3,
                               .present = 1, .dpl = 0, .db = 1, .s = 1,
                               .l = 0, .g = 1};
}

/* ---- SYSCALL -------------------------------------------------------------- */

bool syscall_lost_in_fault(const struct syscall_msrs *m,
                           const struct exc_frame64 *f, uint64_t cr2,
                           uint64_t r11)
{
    /* The fault delivery may set RF in the pushed flags. */
    uint64_t masked = m->sfmask | RFLAGS_RF;
    return f->rip == m->lstar && cr2 == m->lstar && (f->cs & 3) == 3 &&
           (f->error & PFEC_USER) && !(f->rflags & m->sfmask & ~RFLAGS_RF) &&
           !((r11 ^ f->rflags) & ~masked);
}

void syscall_complete(const struct syscall_msrs *m,
                      const struct exc_frame64 *f, struct kvm_regs *regs,
                      struct kvm_sregs *sregs)
{
    regs->rip = m->lstar;
    regs->rsp = f->rsp;
    regs->rflags = (f->rflags & ~(m->sfmask | RFLAGS_RF)) | RFLAGS_FIXED;
    kernel_flat_segments((uint16_t)(m->star >> 32), &sregs->cs, &sregs->ss);
}

/* ---- SYSENTER and INT n ------------------------------------------------------ */

enum user_insn user_insn_classify(const uint8_t bytes[2], uint8_t *vector)
{
    if (bytes[0] == 0x0F && bytes[1] == 0x34)
        return USER_INSN_SYSENTER;
    if (bytes[0] == 0xCD) {
        *vector = bytes[1];
        return USER_INSN_INT;
    }
    return USER_INSN_OTHER;
}

bool sysenter_complete(const struct sysenter_msrs *m,
                       const struct exc_frame64 *f, struct kvm_regs *regs,
                       struct kvm_sregs *sregs)
{
    if (!(m->cs & 0xFFFC))
        return false;
    regs->rip = m->eip;
    regs->rsp = m->esp;
    regs->rflags = (f->rflags & ~(RFLAGS_VM | RFLAGS_IF | RFLAGS_RF)) |
                   RFLAGS_FIXED;
    kernel_flat_segments((uint16_t)m->cs, &sregs->cs, &sregs->ss);
    return true;
}

bool int_gate_usable(const struct idt_gate64 *g, uint16_t cur_cs)
{
    return g->dpl == 3 && (g->selector & 0xFFFC) == (cur_cs & 0xFFFC);
}

uint64_t int_frame_address(const uint8_t tss[TSS64_MIN_SIZE],
                           const struct idt_gate64 *g)
{
    uint64_t top = g->ist ? get_le64(tss + TSS64_IST1 + 8 * (g->ist - 1))
                          : get_le64(tss + TSS64_RSP0);
    return (top & ~15ull) - INT_FRAME64_SIZE;
}

void int_complete(const struct exc_frame64 *f, const struct idt_gate64 *g,
                  uint64_t frame_at, uint8_t out[INT_FRAME64_SIZE],
                  struct kvm_regs *regs)
{
    uint64_t clear = RFLAGS_TF | RFLAGS_NT | RFLAGS_RF | RFLAGS_VM |
                     (g->trap ? 0 : RFLAGS_IF);
    put_le64(out, f->rip + 2);
    put_le64(out + 8, f->cs);
    put_le64(out + 16, f->rflags & ~RFLAGS_RF);
    put_le64(out + 24, f->rsp);
    put_le64(out + 32, f->ss);
    regs->rip = g->handler;
    regs->rsp = frame_at;
    regs->rflags = (f->rflags & ~clear) | RFLAGS_FIXED;
}
