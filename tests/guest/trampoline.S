/* AP start-up code. The BSP copies ap_tramp_start..ap_tramp_end to a
 * page below 1 MiB, fills the parameter block and sends INIT-SIPI-SIPI
 * with that page as the vector. The AP enters in real mode at page:0,
 * switches to 32-bit protected mode (paging stays off), records its APIC
 * ID as CPUID and its LAPIC report it, counts itself and halts for good. */

    .section .rodata
    .code16
    .globl ap_tramp_start
ap_tramp_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    movzwl %ax, %ebp
    shl $4, %ebp                 /* EBP = linear address of this page */
    leal (ap_gdt - ap_tramp_start)(%ebp), %eax
    movl %eax, (ap_gdtr - ap_tramp_start + 2)
    leal (ap_pm32 - ap_tramp_start)(%ebp), %eax
    movl %eax, (ap_farptr - ap_tramp_start)
    lgdtl (ap_gdtr - ap_tramp_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl *(ap_farptr - ap_tramp_start)

    .code32
ap_pm32:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov $1, %eax
    cpuid
    shr $24, %ebx                /* initial APIC ID */
    mov (ap_param_lapic - ap_tramp_start)(%ebp), %ecx
    mov 0x20(%ecx), %ecx
    shr $24, %ecx                /* LAPIC ID register */
    mov (ap_param_started - ap_tramp_start)(%ebp), %edx
    mov $1, %eax
    lock xadd %eax, (%edx)       /* EAX = this AP's slot */
    mov (ap_param_slots - ap_tramp_start)(%ebp), %edx
    mov %ebx, (%edx,%eax,8)
    mov %ecx, 4(%edx,%eax,8)
    mov (ap_param_done - ap_tramp_start)(%ebp), %edx
    lock incl (%edx)
1:  cli
    hlt
    jmp 1b

    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff     /* 0x08: 32-bit flat code */
    .quad 0x00cf92000000ffff     /* 0x10: flat data */
ap_gdtr:
    .word 23
    .long 0                      /* patched: linear address of ap_gdt */
ap_farptr:
    .long 0                      /* patched: linear address of ap_pm32 */
    .word 0x08

    .balign 4
    .globl ap_tramp_params
ap_tramp_params:                 /* struct ap_params, filled by the BSP */
ap_param_lapic:
    .long 0
ap_param_started:
    .long 0
ap_param_done:
    .long 0
ap_param_slots:
    .long 0
    .globl ap_tramp_end
ap_tramp_end:
