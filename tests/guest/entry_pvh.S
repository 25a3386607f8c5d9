/* PVH entry: the VMM starts us in 32-bit protected mode, paging off, with
 * EBX = struct hvm_start_info. We clear .bss, map the first GiB, enter
 * long mode and call kit_pvh_main(start_info). */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#include "cpu_defs.h"
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100
#define CR4_PAE 0x20
#define CR0_PG_PE 0x80000001
#define PDE_2M 0x83 /* present, writable, 2 MiB page */

    .section .note.Xen, "a", @note
    .balign 4
    .long 4            /* name size */
    .long 4            /* descriptor size */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .long pvh_start    /* physical address of the 32-bit entry */

    .section .text.entry32, "ax"
    .code32
    .globl pvh_start
pvh_start:
    cli
    cld
    mov %ebx, %esi

    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl

    /* A temporary identity map of the first GiB; C builds the full one. */
    mov $boot_pd, %edi
    mov $PDE_2M, %eax
    xor %ecx, %ecx
1:  mov %eax, (%edi,%ecx,8)
    add $0x200000, %eax
    inc %ecx
    cmp $512, %ecx
    jne 1b
    movl $(boot_pd + 3), boot_pdpt
    movl $(boot_pdpt + 3), boot_pml4

    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    lgdt gdt_desc32
    mov %cr0, %eax
    or $CR0_PG_PE, %eax
    mov %eax, %cr0
    ljmp $KIT_CS, $start64

    .code64
start64:
    mov $KIT_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lea kit_stack_top(%rip), %rsp
    mov %esi, %edi
    call kit_pvh_main
    jmp kit_triple_fault

    .section .data
    .balign 8
gdt_desc32:
    .word KIT_GDT_ENTRIES * 8 - 1
    .long kit_gdt

    .section .bss
    .balign 4096
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096
