/* GDT, interrupt entry stubs and the deliberate triple fault. Position
 * independent: the same object serves the fixed PVH image and the
 * relocatable boot-protocol image. */
#include "cpu_defs.h"

    .section .data
    .balign 16
    .globl kit_gdt
kit_gdt:
    .quad 0
    .quad 0
    .quad 0x00af9a000000ffff /* 0x10: 64-bit code */
    .quad 0x00cf92000000ffff /* 0x18: flat data */
    .globl kit_gdt_end
kit_gdt_end:
    .if kit_gdt_end - kit_gdt - KIT_GDT_ENTRIES * 8
    .error "KIT_GDT_ENTRIES does not match kit_gdt"
    .endif

    .text
    .code64

/* void cpu_load_gdt(void): loads kit_gdt and reloads every segment. */
    .globl cpu_load_gdt
cpu_load_gdt:
    sub $16, %rsp
    movw $(kit_gdt_end - kit_gdt - 1), (%rsp)
    lea kit_gdt(%rip), %rax
    mov %rax, 2(%rsp)
    lgdt (%rsp)
    add $16, %rsp
    pushq $KIT_CS
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  mov $KIT_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    ret

/* Vectors for which the CPU pushes an error code. */
#define HAS_ERROR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || \
                      (v) == 21 || (v) == 29 || (v) == 30)

    .balign 16
    .globl isr_stubs
isr_stubs:
    vec = 0
    .rept 256
    .balign 16
    .if !HAS_ERROR(vec)
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    vec = vec + 1
    .endr

/* Saves the registers as struct irq_frame and calls isr_dispatch(frame).
 * The CPU aligned RSP to 16 before its 5-word frame; with the error code,
 * the vector and 15 registers RSP stays 16-aligned for the call. */
isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    mov %rsp, %rdi
    call isr_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

/* An empty IDT turns the #UD into #GP, #DF and finally a shutdown, which
 * the VMM reports as a triple fault. (ud2, not int3: int3 is not
 * available on every host's instruction emulator.) */
    .globl kit_triple_fault
kit_triple_fault:
    cli
    sub $16, %rsp
    movw $0, (%rsp)
    movq $0, 2(%rsp)
    lidt (%rsp)
    ud2
1:  hlt
    jmp 1b

/* The boot stack of the BSP, shared by both entry paths. */
    .section .bss
    .balign 16
    .globl kit_stack_top
kit_stack:
    .skip 16384
kit_stack_top:
