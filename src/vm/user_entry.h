/* Entries from ring 3 into ring 0 that a host may leave unfinished, done
 * in software from the exception they turned into (see pvm_quirks.h):
 * SYSCALL, SYSENTER and INT n in IA-32e mode. The pure part: recognising
 * them and the state they must produce. No KVM, no guest memory: callers
 * pass copies in and write the results back. */
#ifndef KVMPC_USER_ENTRY_H
#define KVMPC_USER_ENTRY_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#define MSR_SYSENTER_CS 0x174u
#define MSR_SYSENTER_ESP 0x175u
#define MSR_SYSENTER_EIP 0x176u
#define MSR_STAR 0xC0000081u
#define MSR_LSTAR 0xC0000082u
#define MSR_SFMASK 0xC0000084u

#define IDT_GATE64_SIZE 16
#define INT_FRAME64_SIZE 40 /* RIP, CS, RFLAGS, RSP, SS */
#define TSS64_MIN_SIZE 0x68

/* What the CPU pushes on an exception or interrupt in IA-32e mode; the
 * error code only for the vectors that have one. */
struct exc_frame64 {
    uint64_t error, rip, cs, rflags, rsp, ss;
};

/* Decodes the frame at the handler's first instruction (little endian);
 * buf holds 48 bytes with an error code, 40 without. */
void exc_frame64_parse(const uint8_t *buf, bool has_error,
                       struct exc_frame64 *f);

struct idt_gate64 {
    uint64_t handler;
    uint16_t selector;
    uint8_t ist; /* 0: no IST */
    uint8_t dpl;
    bool trap; /* trap gate: IF stays as it was */
};

/* False unless gate is a present 64-bit interrupt or trap gate. */
bool idt_gate64_decode(const uint8_t gate[IDT_GATE64_SIZE],
                       struct idt_gate64 *out);

/* Fixed flat descriptors of DPL 0 as SYSCALL and SYSENTER load them:
 * 64-bit code at sel, data at sel + 8 (RPL cleared). */
void kernel_flat_segments(uint16_t sel, struct kvm_segment *cs,
                          struct kvm_segment *ss);

/* ---- SYSCALL -------------------------------------------------------------
 * The host sets RIP = LSTAR, RCX = next RIP, R11 = RFLAGS, masks RFLAGS
 * with SFMASK, but stays in ring 3: the fetch at LSTAR faults (#PF, user,
 * CR2 = LSTAR). */

struct syscall_msrs {
    uint64_t star, lstar, sfmask;
};

/* Whether a #PF (frame f, cr2, R11 now) is such a SYSCALL. A ring-3 jump
 * to LSTAR does not pass: ring 3 cannot clear what SFMASK masks (IF), and
 * R11 would not match the flags. */
bool syscall_lost_in_fault(const struct syscall_msrs *m,
                           const struct exc_frame64 *f, uint64_t cr2,
                           uint64_t r11);

/* The state right after that SYSCALL, from the state at the #PF handler:
 * RIP = LSTAR, RSP and RFLAGS (SFMASK applied) from the frame, CS/SS from
 * STAR[47:32]. RCX and R11 stay: the host set them. */
void syscall_complete(const struct syscall_msrs *m,
                      const struct exc_frame64 *f, struct kvm_regs *regs,
                      struct kvm_sregs *sregs);

/* ---- SYSENTER and INT n ----------------------------------------------------
 * The host raises #UD at the instruction instead. */

enum user_insn {
    USER_INSN_OTHER,
    USER_INSN_SYSENTER, /* 0F 34 */
    USER_INSN_INT,      /* CD ib */
};

/* What the first bytes at the #UD's RIP are; *vector for INT n. */
enum user_insn user_insn_classify(const uint8_t bytes[2], uint8_t *vector);

struct sysenter_msrs {
    uint64_t cs, eip, esp;
};

/* SYSENTER from the #UD frame f: false when SYSENTER_CS is null (the CPU
 * raises #GP(0); the #UD is left alone). */
bool sysenter_complete(const struct sysenter_msrs *m,
                       const struct exc_frame64 *f, struct kvm_regs *regs,
                       struct kvm_sregs *sregs);

/* INT n from ring 3 through gate g, from the #UD frame f: whether ring 3
 * may use the gate and it leads to ring 0 on the handler's own code
 * segment (cur_cs, the one the #UD delivery loaded). */
bool int_gate_usable(const struct idt_gate64 *g, uint16_t cur_cs);

/* Where the interrupt frame goes: the IST slot or RSP0 of the 64-bit TSS
 * (tss: its first TSS64_MIN_SIZE bytes), 16-byte aligned, minus the
 * frame. */
uint64_t int_frame_address(const uint8_t tss[TSS64_MIN_SIZE],
                           const struct idt_gate64 *g);

/* The frame INT n pushes (into out) and the state at the handler: RIP
 * after the 2-byte instruction, RFLAGS without TF/NT/RF (and IF through an
 * interrupt gate), RSP = frame_at. CS and SS stay as the #UD delivery
 * loaded them. */
void int_complete(const struct exc_frame64 *f, const struct idt_gate64 *g,
                  uint64_t frame_at, uint8_t out[INT_FRAME64_SIZE],
                  struct kvm_regs *regs);

#endif
