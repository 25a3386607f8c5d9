/* Boot sector and setup sectors of the boot-protocol image: the setup
 * header a 64-bit-protocol loader reads (kvmpc enters the payload at
 * +0x200 in long mode and never runs this code), and a small real-mode
 * loader for BIOS-style loaders that enter at setup+0x200 (the reference
 * mode under QEMU). That loader builds boot_params (header copy, E820 from
 * INT 15h, RSDP from a BIOS-area scan), identity-maps 4 GiB, switches
 * straight to long mode, moves the payload from code32_start to
 * pref_address and jumps to its 64-bit entry, as a 64-bit loader would. */
#include "bzimage_defs.h"
#include "cpu_defs.h"

#define BP_OFF 0x1000       /* boot_params, within the setup segment */
#define PT_OFF 0x2000       /* PML4, PDPT, 4 PDs: 6 pages */
#define BP_RSDP 0x070
#define BP_E820_COUNT 0x1E8
#define BP_HDR 0x1F1
#define BP_HDR_END 0x268
#define BP_E820_TABLE 0x2D0
#define E820_MAX 128
#define SMAP 0x534D4150

    .code16
    .section .text
    .globl _start
_start:
    .org BP_HDR
setup_sects:      .byte BZ_SETUP_SECTS
root_flags:       .word 0
syssize:          .long 0                /* filled by mkbzimage.py */
ram_size:         .word 0
vid_mode:         .word 0xFFFF
root_dev:         .word 0
boot_flag:        .word 0xAA55
    .org 0x200
jump:             .byte 0xEB, start_of_setup - 0x202
header:           .ascii "HdrS"
version:          .word BZ_VERSION
realmode_swtch:   .long 0
start_sys_seg:    .word 0
kernel_version:   .word version_string - 0x200
type_of_loader:   .byte 0
loadflags:        .byte BZ_LOADFLAGS
setup_move_size:  .word 0
code32_start:     .long BZ_CODE32_START
ramdisk_image:    .long 0
ramdisk_size:     .long 0
bootsect_kludge:  .long 0
heap_end_ptr:     .word 0
ext_loader_ver:   .byte 0
ext_loader_type:  .byte 0
cmd_line_ptr:     .long 0
initrd_addr_max:  .long BZ_INITRD_ADDR_MAX
kernel_alignment: .long BZ_KERNEL_ALIGNMENT
relocatable:      .byte 1
min_alignment:    .byte BZ_MIN_ALIGNMENT
xloadflags:       .word BZ_XLOADFLAGS
cmdline_size:     .long BZ_CMDLINE_SIZE
hardware_subarch: .long 0
subarch_data:     .quad 0
payload_offset:   .long 0
payload_length:   .long 0
setup_data:       .quad 0
pref_address:     .quad BZ_PREF_ADDRESS
init_size:        .long 0                /* filled by mkbzimage.py */
handover_offset:  .long 0
    .org BP_HDR_END               /* fails if the header grew past 2.12's end */

/* ---- real-mode loader: DS = ES = SS = setup segment ------------------ */
start_of_setup:
    cli
    cld
    mov %ds, %ax
    mov %ax, %es
    movzwl %ax, %ebx
    shl $4, %ebx                  /* EBX = linear base of the setup */
    test $0xFFF, %ebx
    jnz fail                      /* page tables need a 4 KiB aligned base */
    mov $BP_OFF, %di              /* boot_params = 0, then the header */
    mov $0x800, %cx
    xor %ax, %ax
    rep stosw
    mov $BP_HDR, %si
    mov $BP_OFF + BP_HDR, %di
    mov $BP_HDR_END - BP_HDR, %cx
    rep movsb
    call read_e820
    call find_rsdp
    call build_page_tables
    jmp enter_long_mode

read_e820:
    xor %ebx, %ebx
    mov $BP_OFF + BP_E820_TABLE, %di
    xor %bp, %bp
1:  mov $0xE820, %eax
    mov $SMAP, %edx
    mov $20, %ecx
    int $0x15
    jc 2f
    cmp $SMAP, %eax
    jne 2f
    add $20, %di
    inc %bp
    cmp $E820_MAX, %bp
    je 2f
    test %ebx, %ebx
    jnz 1b
2:  mov %bp, %ax
    mov %al, BP_OFF + BP_E820_COUNT
    mov %ds, %bx                  /* INT 15h clobbered EBX */
    movzwl %bx, %ebx
    shl $4, %ebx
    ret

/* The RSDP lives on a 16-byte boundary in 0xE0000-0xFFFFF. */
find_rsdp:
    push %ds
    mov $0xE000, %ax
1:  mov %ax, %ds
    cmpl $0x20445352, 0           /* "RSD " */
    jne 2f
    cmpl $0x20525450, 4           /* "PTR " */
    je 3f
2:  inc %ax
    jnz 1b
    pop %ds
    ret
3:  movzwl %ax, %eax
    shl $4, %eax
    pop %ds
    mov %eax, BP_OFF + BP_RSDP
    ret

/* Identity map of [0, 4 GiB) with 2 MiB pages at EBX + PT_OFF. */
build_page_tables:
    mov $PT_OFF, %di
    mov $0x3000, %cx
    xor %ax, %ax
    rep stosw
    lea PT_OFF + 0x1003(%ebx), %eax
    mov %eax, PT_OFF
    lea PT_OFF + 0x2003(%ebx), %eax
    mov $PT_OFF + 0x1000, %di
    mov $4, %cx
1:  mov %eax, (%di)
    add $0x1000, %eax
    add $8, %di
    loop 1b
    mov $PT_OFF + 0x2000, %di
    mov $0x83, %eax               /* present, writable, 2 MiB */
    mov $2048, %cx
2:  mov %eax, (%di)
    add $0x200000, %eax
    add $8, %di
    loop 2b
    ret

enter_long_mode:
    lea gdt(%ebx), %eax
    mov %eax, gdtr + 2
    lea long64(%ebx), %eax
    mov %eax, farptr
    lea BP_OFF(%ebx), %esi        /* boot_params for the payload */
    mov code32_start, %eax
    mov %eax, payload_src
    mov $0x20, %eax               /* CR4.PAE */
    mov %eax, %cr4
    lea PT_OFF(%ebx), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax               /* EFER.LME */
    wrmsr
    lgdtl gdtr
    mov %cr0, %eax
    or $0x80000001, %eax          /* PG | PE */
    mov %eax, %cr0
    ljmpl *farptr

fail:
    hlt
    jmp fail

    .code64
long64:
    mov $KIT_DS, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %esi, %esi                /* zero-extend what real mode set */
    mov %ebx, %ebx
    mov payload_src(%rip), %eax
    mov %rax, %r8
    mov BP_OFF + 0x1F4(%rbx), %ecx   /* syssize: 16-byte units */
    shl $4, %rcx
    mov $BZ_PREF_ADDRESS, %edi
    mov %rsi, %rdx
    mov %r8, %rsi
    rep movsb
    mov %rdx, %rsi
    mov $BZ_PREF_ADDRESS + BZ_ENTRY64_OFFSET, %eax
    jmp *%rax

    .balign 8
gdt:
    .quad 0
    .quad 0
    .quad 0x00af9a000000ffff      /* KIT_CS: 64-bit code */
    .quad 0x00cf92000000ffff      /* KIT_DS: flat data */
gdtr:
    .word 31
    .long 0
farptr:
    .long 0
    .word KIT_CS
payload_src:
    .long 0
version_string:
    .asciz "kvmpc guest test kit"

    .org (BZ_SETUP_SECTS + 1) * 512 - 1
    .byte 0
