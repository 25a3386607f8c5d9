/* Start of the boot-protocol payload, linked at 0 and loaded anywhere
 * (relocatable_kernel): the 64-bit entry at +0x200 records the state the
 * loader left (for the bootparams checks), clears .bss, applies the
 * R_X86_64_RELATIVE relocations for the load address and calls
 * kit_bzimage_main(boot_params). */
#include "bzimage_defs.h"

#define MSR_EFER 0xC0000080
#define R_X86_64_RELATIVE 8

    .section .head, "ax"
    .code32
    .globl startup_32
startup_32:
    /* The 32-bit entry of the protocol: not offered by this image. */
    ud2

    .org BZ_ENTRY64_OFFSET
    .code64
    .globl startup_64
startup_64:
    cli
    mov %rsi, bz_entry+BZ_ES_RSI(%rip)
    mov %cr0, %rax
    mov %rax, bz_entry+BZ_ES_CR0(%rip)
    mov %cr3, %rax
    mov %rax, bz_entry+BZ_ES_CR3(%rip)
    mov %cr4, %rax
    mov %rax, bz_entry+BZ_ES_CR4(%rip)
    mov $MSR_EFER, %ecx
    rdmsr
    mov %eax, bz_entry+BZ_ES_EFER(%rip)
    mov %edx, bz_entry+BZ_ES_EFER+4(%rip)
    mov %cs, bz_entry+BZ_ES_CS(%rip)
    mov %ds, bz_entry+BZ_ES_DS(%rip)
    mov %es, bz_entry+BZ_ES_ES(%rip)
    mov %ss, bz_entry+BZ_ES_SS(%rip)
    sgdt bz_entry+BZ_ES_GDTR(%rip)
    lea startup_32(%rip), %rbx         /* load address = relocation delta */
    mov %rbx, bz_entry+BZ_ES_LOAD(%rip)
    lea kit_stack_top(%rip), %rsp
    pushfq
    pop %rax
    mov %rax, bz_entry+BZ_ES_RFLAGS(%rip)

    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    shr $3, %rcx
    xor %eax, %eax
    rep stosq

    lea __rela_start(%rip), %rsi
    lea __rela_end(%rip), %rdi
1:  cmp %rdi, %rsi
    jae 3f
    cmpl $R_X86_64_RELATIVE, 8(%rsi)   /* r_info: type in the low word */
    jne 2f
    mov (%rsi), %rax                   /* r_offset */
    mov 16(%rsi), %rdx                 /* r_addend */
    add %rbx, %rdx
    mov %rdx, (%rbx,%rax)
    add $24, %rsi
    jmp 1b
2:  ud2                                /* a relocation type we cannot apply */

3:  mov bz_entry+BZ_ES_RSI(%rip), %rdi
    call kit_bzimage_main
    jmp kit_triple_fault
