#!/usr/bin/env python3
"""--reboot: a boot sector counts its boots on the disk (int 13h read and
write of sector 1) and resets the machine through port 0xCF9 until the
third boot, then powers off. With --reboot=restart kvmpc rebuilds the
machine each time and exits 0 after three boots; with --reboot=exit (the
default) it exits 2 after the first.

usage: restart_test.py KVMPC restart|exit
"""
import os
import subprocess
import sys
import tempfile

SECTOR = r'''
    .code16
    .globl _start
_start:
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %dl, drive
    mov $0x0201, %ax        /* read 1 sector: C0 H0 S2 -> 0x8000 */
    mov $0x0002, %cx
    xor %dh, %dh
    mov drive, %dl
    mov $0x8000, %bx
    int $0x13
    jc fail
    incb 0x8000
    mov $0x0301, %ax        /* write it back */
    mov $0x0002, %cx
    xor %dh, %dh
    mov drive, %dl
    mov $0x8000, %bx
    int $0x13
    jc fail
    mov $msg, %si
    call puts
    mov 0x8000, %al
    add $'0', %al
    call putc
    mov $crlf, %si
    call puts
    mov $0x86, %ah          /* wait 0.1 s (RTC periodic interrupt) so */
    xor %cx, %cx            /* the firmware's serial console flushes */
    mov $0x86a0, %dx
    mov $1, %cx
    int $0x15
    cmpb $3, 0x8000
    jae off
    mov $0xcf9, %dx         /* hard reset */
    mov $0x06, %al
    out %al, %dx
1:  hlt
    jmp 1b
off:
    mov $0x604, %dx
    mov $0x2000, %ax
    out %ax, %dx
2:  hlt
    jmp 2b
fail:
    mov $err, %si
    call puts
3:  hlt
    jmp 3b
putc:
    mov $0x0e, %ah
    mov $7, %bx
    int $0x10
    ret
puts:
    lodsb
    test %al, %al
    jz 4f
    call putc
    jmp puts
4:  ret
drive: .byte 0
msg: .asciz "boot number "
crlf: .asciz "\r\n"
err: .asciz "disk error\r\n"
    .org 510
    .word 0xaa55
'''


def main():
    kvmpc, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory(prefix='kvmpc-restart-') as d:
        with open(os.path.join(d, 's.S'), 'w') as f:
            f.write(SECTOR)
        subprocess.run(['gcc', '-c', 's.S', '-o', 's.o'], cwd=d, check=True)
        subprocess.run(['ld', '-Ttext=0x7c00', '--oformat', 'binary', '-o',
                        's.bin', 's.o'], cwd=d, check=True)
        disk = os.path.join(d, 'disk.img')
        with open(disk, 'wb') as f:
            f.write(open(os.path.join(d, 's.bin'), 'rb').read())
            f.truncate(1 << 20)
        log = os.path.join(d, 'serial.log')
        p = subprocess.run([kvmpc, 'run', '--disk', disk, '--reboot', mode,
                            '--console', 'file:' + log], timeout=300,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True)
        boots = open(disk, 'rb').read()[512]
        out = open(log, errors='replace').read()
    want_status, want_boots = (0, 3) if mode == 'restart' else (2, 1)
    print('exit %d, boots counted on disk: %d; stderr: %r' %
          (p.returncode, boots, p.stderr[-300:]))
    problems = []
    if p.returncode != want_status:
        problems.append('exit status %d, expected %d' %
                        (p.returncode, want_status))
    if boots != want_boots:
        problems.append('%d boots, expected %d' % (boots, want_boots))
    if 'boot number %d' % want_boots not in out:
        problems.append('serial log lacks "boot number %d"' % want_boots)
    if problems:
        print('FAIL: ' + '; '.join(problems) + '\n' + out[-500:])
        return 1
    print('PASS')
    return 0


if __name__ == '__main__':
    sys.exit(main())
