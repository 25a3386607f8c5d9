/*
 * mbr-hello: a one-sector boot program for the firmware tests.
 *
 * 1. prints a line through int 10h (teletype);
 * 2. reads sector 1 through int 13h and prints the text found there;
 * 3. powers the machine off through ACPI: finds the RSDP (EBDA, then
 *    0xE0000-0xFFFFF), the FADT through the RSDT, PM1a_CNT and the DSDT,
 *    the \_S5 package in the DSDT by a byte scan, and writes SLP_TYP|SLP_EN
 *    (kvmpc's FADT has no SMI_CMD: always in ACPI mode; QEMU's PM1a_CNT
 *    honours SLP_EN without SCI_EN, so ACPI mode is not switched on).
 * Tables above 1 MiB are read in "unreal" mode (FS with a 4 GiB limit) with
 * interrupts off, so that no BIOS call reloads FS in between.
 * Every outcome prints a line; a failure prints "FAIL" and a
 * letter (d: disk read, a: ACPI tables, p: still running after the power-off
 * write) and ends in a halt loop (interrupts on). Linked at 0x7c00; CS may be 0 or 0x7c0
 * since only relative jumps and calls are used.
 */
	.code16
	.text
	.globl	_start
_start:
	cli
	xor	%ax, %ax
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	$0x7c00, %sp
	sti
	cld			/* dl: boot drive, kept (the BIOS calls
				 * below preserve dx) */

	mov	$msg_hello, %si
	call	puts

	/* int 13h AH=02h: 1 sector, cylinder 0, head 0, sector 2 -> 0x7e00 */
	mov	$0x0201, %ax
	mov	$0x0002, %cx
	xor	%dh, %dh
	mov	$0x7e00, %bx
	int	$0x13
	mov	$'d', %al
	jc	fail
	mov	$msg_read, %si
	call	puts
	movb	$0, 0x7e00 + 63		/* print at most 63 bytes of it */
	mov	$0x7e00, %si
	call	puts
	call	newline

	call	find_s5
	mov	$'a', %al
	jc	fail
	/* bx = PM1a_CNT port, cl = SLP_TYPa */
	mov	%bx, %dx
	mov	$msg_acpi, %si
	call	puts
	mov	%dx, %ax
	call	puthex
	mov	$msg_typ, %si
	call	puts
	mov	%cl, %al
	and	$7, %al
	add	$'0', %al
	call	putc
	call	newline

	call	wait_ticks		/* lets the serial console flush */
	mov	%cx, %ax
	and	$7, %ax
	shl	$10, %ax
	or	$0x2000, %ax		/* SLP_EN */
	out	%ax, %dx
	call	wait_ticks		/* the power-off may take effect late */
	mov	$'p', %al
fail:
	push	%ax
	mov	$msg_fail, %si
	call	puts
	pop	%ax
	call	putc
	call	newline
1:	sti			/* the firmware's serial console flushes */
	hlt			/* its output from the timer interrupt */
	jmp	1b

/* wait_ticks: waits for 8 interrupts (timer ticks); interrupts are on. */
wait_ticks:
	mov	$8, %bp
1:	hlt
	dec	%bp
	jnz	1b
	ret

/* find_s5: returns bx = PM1a_CNT port, cl = SLP_TYPa of \_S5,
 * or CF set. Runs with interrupts off, restores them. */
find_s5:
	call	unreal
	movzwl	0x40e, %esi		/* EBDA segment from the BDA */
	shl	$4, %esi
	mov	$1024 / 16, %cx
	call	scan_rsdp
	je	1f
	mov	$0xe0000, %esi
	mov	$0x20000 / 16, %cx
	call	scan_rsdp
	jne	9f
1:	mov	%fs:16(%esi), %esi	/* RsdtAddress */
	mov	%fs:4(%esi), %ecx
	add	%esi, %ecx		/* end of the RSDT */
	add	$36, %esi
2:	cmp	%ecx, %esi
	jae	9f
	mov	%fs:(%esi), %edi
	add	$4, %esi
	cmpl	$0x50434146, %fs:(%edi)	/* "FACP" */
	jne	2b
	mov	%fs:64(%edi), %ebx	/* PM1a_CNT_BLK */
	mov	%fs:40(%edi), %esi	/* DSDT */
	mov	%fs:4(%esi), %ecx
	add	%esi, %ecx
3:	cmp	%ecx, %esi
	jae	9f
	inc	%esi
	cmpl	$0x5f35535f, %fs:-1(%esi)	/* "_S5_" */
	jne	3b
	cmpb	$0x12, %fs:3(%esi)	/* PackageOp */
	jne	9f
	movzbl	%fs:4(%esi), %eax	/* PkgLength lead byte: */
	shr	$6, %al			/* count of further length bytes */
	add	%eax, %esi
	mov	%fs:6(%esi), %al	/* first element */
	cmp	$0x0a, %al		/* BytePrefix */
	jne	4f
	mov	%fs:7(%esi), %al
4:	mov	%al, %cl
	sti
	clc
	ret
9:	sti
	stc
	ret

/* scan_rsdp: looks for "RSD PTR " at 16-byte steps from esi, cx steps.
 * ZF set and esi at the RSDP when found. */
scan_rsdp:
	cmpl	$0x20445352, %fs:(%esi)	/* "RSD " */
	jne	1f
	cmpl	$0x20525450, %fs:4(%esi)	/* "PTR " */
	je	2f
1:	add	$16, %esi
	loop	scan_rsdp
2:	ret

/* unreal: loads FS with a flat 4 GiB data segment and returns to real
 * mode; leaves interrupts off. */
unreal:
	cli
	lgdt	gdt_desc
	mov	%cr0, %eax
	or	$1, %al
	mov	%eax, %cr0
	mov	$8, %bx
	mov	%bx, %fs
	and	$0xfe, %al
	mov	%eax, %cr0
	ret

puthex:				/* prints ax as 4 hex digits */
	mov	$4, %bp
1:	rol	$4, %ax
	push	%ax
	and	$0x0f, %al
	add	$'0', %al
	cmp	$'9', %al
	jbe	2f
	add	$'a' - '9' - 1, %al
2:	call	putc
	pop	%ax
	dec	%bp
	jnz	1b
	ret

newline:
	mov	$msg_crlf, %si
puts:				/* prints the NUL-terminated string at si */
	lodsb
	test	%al, %al
	jz	1f
	call	putc
	jmp	puts
1:	ret

putc:
	push	%ax
	push	%bx
	mov	$0x0e, %ah
	mov	$0x0007, %bx
	int	$0x10
	pop	%bx
	pop	%ax
	ret

	.p2align 3
gdt:				/* the null descriptor holds the GDTR image */
gdt_desc:
	.word	gdt_end - gdt - 1
	.long	gdt
	.word	0
	.quad	0x00cf92000000ffff	/* flat data: base 0, limit 4 GiB */
gdt_end:

msg_hello:	.asciz	"mbr-hello: int 10h ok\r\n"
msg_read:	.asciz	"int 13h: "
msg_acpi:	.asciz	"ACPI PM1a_CNT=0x"
msg_typ:	.asciz	" SLP_TYP="
msg_fail:	.asciz	"FAIL "
msg_crlf:	.asciz	"\r\n"

	.org	510
	.byte	0x55, 0xaa
