#!/usr/bin/env python3
"""The terminal console, end to end through SeaBIOS's serial console:
keys typed on kvmpc's terminal reach the guest (an echo boot sector reading
int 16h), Ctrl-A Ctrl-A sends Ctrl-A, SIGINT arrives as Ctrl-C, Ctrl-A x
quits with status 5, SIGTERM stops with status 5; the terminal settings
are restored in every case.

usage: console_test.py KVMPC CASE   (CASE: keys, quit, sigterm)
"""
import os
import pty
import select
import signal
import sys
import tempfile
import termios
import time

import guestasm

ECHO_SECTOR = r'''
    .code16
    .globl _start
_start:
    xor %ax, %ax
    mov %ax, %ds
    mov $ready, %si
    call puts
next:
    xor %ah, %ah
    int $0x16               /* wait for a key: AL = ASCII */
    cmp $'q', %al
    je off
    mov %al, %dl
    mov $'<', %al
    call putc
    mov %dl, %al
    shr $4, %al
    call puthex
    mov %dl, %al
    call puthex
    mov $'>', %al
    call putc
    jmp next
off:
    mov $bye, %si
    call puts
    mov $0x604, %dx         /* ACPI S5 */
    mov $0x2000, %ax
    out %ax, %dx
1:  hlt
    jmp 1b
puthex:
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe putc
    add $7, %al
putc:
    push %bx
    mov $0x0e, %ah
    mov $7, %bx
    int $0x10
    pop %bx
    ret
puts:
    lodsb
    test %al, %al
    jz 2f
    call putc
    jmp puts
2:  ret
ready: .asciz "echo-ready\r\n"
bye: .asciz "\r\nbye\r\n"
    .org 510
    .word 0xaa55
'''


class Session:
    def __init__(self, cmd):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(cmd[0], cmd)
        self.before = termios.tcgetattr(self.fd)
        self.out = b''
        self.status = None

    def read_until(self, text, timeout=120):
        end = time.time() + timeout
        while text.encode() not in self.out and time.time() < end:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    break
        return text.encode() in self.out

    def send(self, data):
        os.write(self.fd, data)

    def finish(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                break
            self.read_until('\x00never', 0.2)
        self.after = termios.tcgetattr(self.fd)
        return self.status


def main():
    kvmpc, case = os.path.abspath(sys.argv[1]), sys.argv[2]
    problems = []
    with tempfile.TemporaryDirectory(prefix='kvmpc-con-') as d:
        disk = guestasm.boot_sector_disk(d, ECHO_SECTOR, 'echo')
        s = Session([kvmpc, 'run', '--disk', disk])
        if not s.read_until('echo-ready'):
            problems.append('the guest never became ready')
        elif case == 'keys':
            s.send(b'ab')
            s.read_until('<62>', 30)
            s.send(b'\x01\x01')      # Ctrl-A Ctrl-A: a literal Ctrl-A
            s.read_until('<01>', 30)
            os.kill(s.pid, signal.SIGINT)   # becomes Ctrl-C for the guest
            s.read_until('<03>', 30)
            s.send(b'q')
            code = s.finish()
            for want in ['<61><62>', '<01>', '<03>']:
                if want.encode() not in s.out:
                    problems.append('guest did not receive %s' % want)
            if code != 0:
                problems.append('exit status %s after power-off, expected 0'
                                % code)
        elif case == 'quit':
            s.send(b'\x01x')
            code = s.finish()
            if code != 5:
                problems.append('exit status %s after Ctrl-A x, expected 5'
                                % code)
        elif case == 'sigterm':
            os.kill(s.pid, signal.SIGTERM)
            code = s.finish()
            if code != 5:
                problems.append('exit status %s after SIGTERM, expected 5'
                                % code)
        if s.status is None:
            os.kill(s.pid, signal.SIGKILL)
            problems.append('kvmpc did not exit')
        elif s.before != s.after:
            problems.append('terminal settings not restored')
    print(repr(s.out[-300:]))
    if problems:
        print('FAIL: ' + '; '.join(problems))
        return 1
    print('PASS')
    return 0


if __name__ == '__main__':
    sys.exit(main())
