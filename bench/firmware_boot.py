#!/usr/bin/env python3
"""bench/firmware-boot: the same bios.bin and the same disk under kvmpc and
QEMU, in one run. For each: wall time from start to the bootloader's first
output on the serial console, and the KVM exits to userspace of the whole
run (perf stat -e kvm:kvm_userspace_exit). The default disk holds a boot
sector that prints a line through int 10h and powers off through ACPI.

usage: bench/firmware_boot.py KVMPC [--disk IMG --marker TEXT] [--runs N]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'system'))
import guestasm  # noqa: E402

BIOS = '/usr/share/seabios/bios-256k.bin'
MARKER = 'kvmpc-bench boot sector'
BOOT_SECTOR = r'''
    .code16
    .globl _start
_start:
    xor %ax, %ax
    mov %ax, %ds
    mov $msg, %si
1:  lodsb
    test %al, %al
    jz 2f
    mov $0x0e, %ah
    mov $7, %bx
    int $0x10
    jmp 1b
2:  mov $0x604, %dx          /* PM1a_CNT of both machines: S5 */
    mov $0x2000, %ax
    out %ax, %dx
3:  hlt
    jmp 3b
msg: .asciz "''' + MARKER + r'''\r\n"
    .org 510
    .word 0xaa55
'''


def time_to_marker(cmd, log, marker, stdout_log=False, timeout=300):
    """Seconds from spawn until marker appears in log; the run is then
    allowed to finish (power-off) so that exit counts cover it."""
    if os.path.exists(log):
        os.unlink(log)
    out = open(log, 'wb') if stdout_log else subprocess.DEVNULL
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.DEVNULL)
    seen = None
    while time.monotonic() - t0 < timeout:
        try:
            with open(log, 'rb') as f:
                if marker.encode() in f.read():
                    seen = time.monotonic() - t0
                    break
        except FileNotFoundError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.005)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return seen


def count_exits(cmd, d):
    out = os.path.join(d, 'perf.txt')
    subprocess.run(['perf', 'stat', '-x,', '-o', out, '-e',
                    'kvm:kvm_userspace_exit', '--'] + cmd,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=600)
    for line in open(out):
        if 'kvm_userspace_exit' in line:
            v = line.split(',')[0]
            return int(v) if v.isdigit() else None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvmpc')
    ap.add_argument('--disk')
    # sercon flushes lazily: the line's tail may be lost at power-off, so
    # the marker is its first word.
    ap.add_argument('--marker', default=MARKER.split()[0])
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--cpus', type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix='kvmpc-fwbench-') as d:
        disk = a.disk or guestasm.boot_sector_disk(d, BOOT_SECTOR, size=16 << 20)
        klog, qlog = os.path.join(d, 'k.log'), os.path.join(d, 'q.log')
        kcmd = [os.path.abspath(a.kvmpc), 'run', '--firmware', BIOS,
                '--disk', disk + ',ro', '--cpus', str(a.cpus), '--mem', '512',
                '--console', 'file:' + klog]
        qcmd = ['qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'EPYC',
                '-nographic', '-bios', BIOS, '-m', '512', '-smp', str(a.cpus),
                '-drive', 'file=%s,if=virtio,format=raw,readonly=on' % disk,
                '-no-reboot', '-monitor', 'none']
        kt, qt = [], []
        for _ in range(a.runs):
            kt.append(time_to_marker(kcmd, klog, a.marker))
            qt.append(time_to_marker(qcmd, qlog, a.marker, stdout_log=True))
        ke, qe = count_exits(kcmd, d), count_exits(qcmd, d)
    if None in kt or None in qt:
        print('a run never printed the marker: kvmpc %s, QEMU %s' % (kt, qt))
        return 1
    km, qm = statistics.median(kt), statistics.median(qt)
    print('bench/firmware-boot: %s, %d vCPU(s), %d runs (medians)' %
          (os.path.basename(BIOS), a.cpus, a.runs))
    print('  start -> bootloader output: kvmpc %.3f s, QEMU %.3f s, '
          'ratio %.2f (goal <= 0.5)' % (km, qm, km / qm))
    if ke is not None and qe is not None:
        print('  KVM exits to userspace:     kvmpc %d, QEMU %d, ratio %.2f '
              '(goal <= 0.5)' % (ke, qe, ke / qe))
    else:
        print('  KVM exits: perf could not count kvm:kvm_userspace_exit')
    return 0


if __name__ == '__main__':
    sys.exit(main())
