/* Ring-3 side of test=usermode (test_usermode.c): the entry into user
 * mode and the way back, the SYSCALL and SYSENTER entry points, and one
 * page of user code. Position independent, like the rest of the kit. */
#include "cpu_defs.h"
#include "usermode_defs.h"

    .text
    .code64

/* uint64_t um_enter(uint64_t rip, uint64_t rsp, uint64_t rflags,
 *                   uint64_t arg): IRETQ to ring 3 at rip with RDI = arg.
 * Returns the RAX that a ring-0 path hands to um_resume. */
    .globl um_enter
um_enter:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, um_kernel_rsp(%rip)
    pushq $UM_USER_DS
    push %rsi
    push %rdx
    pushq $UM_USER_CS
    push %rdi
    mov %rcx, %rdi
    iretq

/* Back to the caller of um_enter, from any ring-0 context, RAX = result. */
    .globl um_resume
um_resume:
    mov um_kernel_rsp(%rip), %rsp
    mov $KIT_DS, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %ss
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

/* void um_load_gdt(const void *desc, uint16_t tss_sel): LGDT, CS and the
 * data segments reloaded, then LTR. */
    .globl um_load_gdt
um_load_gdt:
    lgdt (%rdi)
    pushq $KIT_CS
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  mov $KIT_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    test %esi, %esi
    jz 2f
    ltr %si
2:  ret

/* MSR_LSTAR. Records what a ring-0 handler sees without touching the
 * (user) stack: RCX, R11, RSP, CS, SS, then RFLAGS on a private stack.
 * um_sc.sysret set: SYSRETQ back to the user; else back to um_enter's
 * caller. Should the CPU arrive here in ring 3, the first fetch faults
 * (the page is supervisor-only) and the #PF handler reports it. */
    .globl um_syscall_entry
um_syscall_entry:
    mov %rcx, um_sc+UM_SC_RCX(%rip)
    mov %r11, um_sc+UM_SC_R11(%rip)
    mov %rsp, um_sc+UM_SC_RSP(%rip)
    mov %rax, um_sc+UM_SC_RAX(%rip)
    movq $0, um_sc+UM_SC_CS(%rip)
    movq $0, um_sc+UM_SC_SS(%rip)
    movw %cs, um_sc+UM_SC_CS(%rip)
    movw %ss, um_sc+UM_SC_SS(%rip)
    lea um_entry_stack_top(%rip), %rsp
    pushfq
    popq um_sc+UM_SC_RFLAGS(%rip)
    incq um_sc+UM_SC_COUNT(%rip)
    cmpq $0, um_sc+UM_SC_SYSRET(%rip)
    je 1f
    mov um_sc+UM_SC_RSP(%rip), %rsp
    mov $UM_SYSRET_RAX, %eax
    sysretq
1:  mov $UM_RES_SYSCALL, %eax
    jmp um_resume

/* MSR_IA32_SYSENTER_EIP: records CS, SS, RSP, RFLAGS; back to the kernel. */
    .globl um_sysenter_entry
um_sysenter_entry:
    mov %rsp, um_sc+UM_SC_RSP(%rip)
    movq $0, um_sc+UM_SC_CS(%rip)
    movq $0, um_sc+UM_SC_SS(%rip)
    movw %cs, um_sc+UM_SC_CS(%rip)
    movw %ss, um_sc+UM_SC_SS(%rip)
    pushfq
    popq um_sc+UM_SC_RFLAGS(%rip)
    incq um_sc+UM_SC_COUNT(%rip)
    mov $UM_RES_SYSENTER, %eax
    jmp um_resume

/* One page of user code, mapped read-only for ring 3 at UM_USER_VA. Every
 * sequence ends by reporting to the kernel with UD2 (#UD is the one way
 * out of ring 3 that no check here depends on): RDI = CS, RSI = SS,
 * RDX = RFLAGS, RAX, R8, R9 kept. */
    .balign 4096
    .globl um_user_start
um_user_start:

/* Straight back: the IRETQ into ring 3 and the #UD out of it. */
    .globl um_user_report
um_user_report:
    mov %cs, %edi
    mov %ss, %esi
    pushfq
    pop %rdx
    .globl um_user_report_ud2
um_user_report_ud2:
    ud2

/* INT 0x80 through a gate of DPL 3. */
    .globl um_user_int
um_user_int:
    int $UM_INT_VECTOR
    .globl um_user_after_int
um_user_after_int:
    jmp um_user_report

/* HLT in ring 3: #GP(0); the kernel resumes us at um_user_report. */
    .globl um_user_hlt
um_user_hlt:
    hlt
    ud2

/* A read of the kernel address in RDI: #PF. */
    .globl um_user_read
um_user_read:
    mov (%rdi), %rax
    ud2

/* SYSCALL; after a SYSRETQ, report (RAX is what the handler set, RCX and
 * R11 what SYSRETQ used). */
    .globl um_user_syscall
um_user_syscall:
    mov $UM_SYSCALL_RAX, %eax
    syscall
    .globl um_user_after_syscall
um_user_after_syscall:
    mov %rcx, %r8
    mov %r11, %r9
    jmp um_user_report

/* SYSENTER. */
    .globl um_user_sysenter
um_user_sysenter:
    sysenter
    ud2

    .balign 4096
    .globl um_user_end
um_user_end:

    .section .data
    .balign 8
    .globl um_sc
um_sc:
    .skip UM_SC_SIZE
    .globl um_kernel_rsp
um_kernel_rsp:
    .quad 0

    .section .bss
    .balign 16
um_entry_stack:
    .skip 512
um_entry_stack_top:
