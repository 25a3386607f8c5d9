#!/usr/bin/env python3
"""Bad host input: one line naming the problem, exit status 1, the terminal
as it was, and no output file left behind.

usage: bad_input.py KVMPC CASE     (bad_input.py KVMPC --list lists cases)
Each case runs kvmpc on a pseudo-terminal (so raw-mode handling is
exercised) and compares the terminal settings before and after.
"""
import os
import pty
import select
import sys
import tempfile
import termios

import guestasm

HERE = os.path.dirname(os.path.abspath(__file__))


def make_files(d):
    """Inputs of every kind, built once per case in a temp dir."""
    f = {}
    f['empty'] = os.path.join(d, 'empty')
    open(f['empty'], 'wb').close()
    f['garbage'] = os.path.join(d, 'garbage')
    with open(f['garbage'], 'wb') as g:
        g.write(os.urandom(64 * 1024))
    # A bzImage header that promises more than the file holds.
    f['truncated_bz'] = os.path.join(d, 'truncated.bzImage')
    hdr = bytearray(0x2000)
    hdr[0x1F1] = 4
    hdr[0x1FE:0x200] = b'\x55\xaa'
    hdr[0x202:0x206] = b'HdrS'
    hdr[0x206:0x208] = (0x020F).to_bytes(2, 'little')
    hdr[0x236:0x238] = (1).to_bytes(2, 'little')
    hdr[0x230:0x234] = (0x200000).to_bytes(4, 'little')
    hdr[0x1F4:0x1F8] = (0x100000).to_bytes(4, 'little')  # 16 MiB payload
    with open(f['truncated_bz'], 'wb') as g:
        g.write(hdr)
    # An ELF cut in the middle of its program headers.
    f['truncated_elf'] = os.path.join(d, 'truncated.elf')
    with open('/bin/true', 'rb') as src, open(f['truncated_elf'], 'wb') as g:
        g.write(src.read()[:80])
    # A valid PVH kernel for cases that need one.
    f['kernel'] = guestasm.pvh_kernel(d, '1: hlt\n    jmp 1b\n')
    f['big_initrd'] = os.path.join(d, 'big-initrd')
    with open(f['big_initrd'], 'wb') as g:
        g.truncate(31 << 20)
    f['missing'] = os.path.join(d, 'no-such-file')
    f['garbage_link'] = os.path.join(d, 'garbage-link')
    os.symlink(f['garbage'], f['garbage_link'])
    # A directory is a disk no one can read as an image.
    f['unreadable'] = os.path.join(d, 'unreadable')
    os.mkdir(f['unreadable'])
    f['console_dir'] = os.path.join(d, 'no-such-dir', 'console.log')
    f['outdir'] = d
    return f


CASES = {
    # name: (argument builder, words the message must contain)
    'kernel-missing': (lambda f: ['-k', f['missing']], ['kernel', 'no-such-file']),
    'kernel-empty': (lambda f: ['-k', f['empty']], ['kernel', 'empty']),
    'kernel-garbage': (lambda f: ['-k', f['garbage']], ['kernel', 'neither']),
    'kernel-truncated-bzimage': (lambda f: ['-k', f['truncated_bz']], ['kernel', 'truncated']),
    'kernel-truncated-elf': (lambda f: ['-k', f['truncated_elf']], ['kernel', 'ELF']),
    'initrd-missing': (lambda f: ['-k', f['kernel'], '-i', f['missing']], ['initrd', 'no-such-file']),
    'initrd-empty': (lambda f: ['-k', f['kernel'], '-i', f['empty']], ['initrd', 'empty']),
    'initrd-too-big': (lambda f: ['-k', f['kernel'], '-i', f['big_initrd'], '-m', '32'], ['initrd']),
    'mem-too-small': (lambda f: ['-k', f['kernel'], '-m', '16'], ['--mem', 'small']),
    'mem-too-large': (lambda f: ['-k', f['kernel'], '-m', '900G'], ['--mem', 'host']),
    'mem-garbage': (lambda f: ['-k', f['kernel'], '-m', 'lots'], ['--mem']),
    'cpus-zero': (lambda f: ['-k', f['kernel'], '-c', '0'], ['--cpus']),
    'cpus-too-many': (lambda f: ['-k', f['kernel'], '-c', '65'], ['--cpus']),
    'unknown-option': (lambda f: ['-k', f['kernel'], '--frobnicate'], ['unknown option', '--frobnicate']),
    'repeated-option': (lambda f: ['-k', f['kernel'], '-k', f['kernel']], ['--kernel', 'more than once']),
    'console-unopenable': (lambda f: ['-k', f['kernel'], '--console', 'file:' + f['console_dir']], ['--console', 'no-such-dir']),
    'firmware-wrong-size': (lambda f: ['--firmware', f['garbage']], ['firmware', 'KiB']),
    'firmware-garbage': (lambda f: ['--firmware', f['garbage128']], ['firmware', 'BIOS']),
    'firmware-missing': (lambda f: ['--firmware', f['missing']], ['firmware', 'no-such-file']),
    'disk-missing': (lambda f: ['--disk', f['missing']], ['no-such-file']),
    'disk-twice': (lambda f: ['--disk', f['garbage'], '--disk', f['garbage']], ['twice']),
    'disk-twice-other-name': (lambda f: ['--disk', f['garbage'], '--disk', f['garbage_link']], ['same disk']),
    'disk-unreadable': (lambda f: ['--disk', f['unreadable']], ['not a regular file']),
    'disk-bad-option': (lambda f: ['--disk', f['garbage'] + ',speed=fast'], ['speed']),
}


def run_on_pty(cmd, cwd):
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execv(cmd[0], cmd)
    before = termios.tcgetattr(fd)
    out = b''
    while True:
        r, _, _ = select.select([fd], [], [], 30)
        if not r:
            os.kill(pid, 9)
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    after = termios.tcgetattr(fd)
    _, status = os.waitpid(pid, 0)
    return out.decode(errors='replace'), os.waitstatus_to_exitcode(status), before, after


def main():
    if sys.argv[2] == '--list':
        print('\n'.join(CASES))
        return 0
    kvmpc, case = os.path.abspath(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory(prefix='kvmpc-bad-') as d:
        f = make_files(d)
        f['garbage128'] = os.path.join(d, 'garbage128')
        with open(f['garbage128'], 'wb') as g:
            g.write(bytes(128 * 1024))
        build, words = CASES[case]
        outdir = os.path.join(d, 'out')
        os.mkdir(outdir)
        debugcon = os.path.join(outdir, 'debugcon.log')
        cmd = [kvmpc, 'run'] + build(f) + ['--debugcon', debugcon]
        if case == 'repeated-option' or case == 'unknown-option':
            cmd = [kvmpc, 'run'] + build(f)
        text, code, before, after = run_on_pty(cmd, outdir)
        lines = [l for l in text.replace('\r', '').split('\n') if l.strip()]
        problems = []
        if code != 1:
            problems.append('exit status %d, expected 1' % code)
        if len(lines) != 1:
            problems.append('%d output lines, expected exactly 1' % len(lines))
        elif not lines[0].startswith('kvmpc: '):
            problems.append('message does not start with "kvmpc: "')
        for w in words:
            if w.lower() not in text.lower():
                problems.append('message does not mention %r' % w)
        if before != after:
            problems.append('terminal settings changed')
        left = os.listdir(outdir)
        if left:
            problems.append('left behind: %s' % left)
        print('%s: %r -> exit %d' % (case, text.strip(), code))
        if problems:
            print('FAIL: ' + '; '.join(problems))
            return 1
        print('PASS')
        return 0


if __name__ == '__main__':
    sys.exit(main())
