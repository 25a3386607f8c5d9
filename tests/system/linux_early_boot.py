#!/usr/bin/env python3
"""Boots Debian's stock kernel directly and checks its early boot log.

On hosts whose KVM cannot run the whole boot (PVM, see README) the check is
the early log: the e820 map as configured, ACPI/MADT SMP configuration, the
CPU count, the IOAPIC and a DMI line. The same kernel can be run under QEMU
(--qemu-compare) and its lines are printed beside ours.

usage: linux_early_boot.py KVMPC --entry pvh|bzimage --cpus N [--mem MiB]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import stagetimes
import sysimg

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20
GiB = 1 << 30


def expected_e820(mem):
    low = min(mem, 3 * GiB)
    ranges = [(0, 0x9fbff, 'usable'), (0x9fc00, 0xfffff, 'reserved'),
              (0x100000, low - 1, 'usable'),
              (0xfeffc000, 0xfeffffff, 'reserved')]
    if mem > low:
        ranges.append((1 << 32, (1 << 32) + mem - low - 1, 'usable'))
    return ['BIOS-e820: [mem 0x%016x-0x%016x] %s' % r for r in ranges]


def wanted_lines(cpus, mem):
    # The EBDA and the BIOS area are reserved: PVH kernels print them as one
    # merged range, the boot protocol as the two entries kvmpc gives.
    pats = [re.escape(l) if '9fc00' not in l else
            re.escape(l).replace('00000000000fffff', '00000000000(9ffff|fffff)')
            for l in expected_e820(mem)]
    pats += [
        re.escape('ACPI: Using ACPI (MADT) for SMP configuration information'),
        re.escape('smpboot: Allowing %d CPUs, 0 hotplug CPUs' % cpus),
        r'IOAPIC\[0\]: apic_id 0, version \d+, address 0xfec00000, GSI 0-23',
        r'DMI: \S.*',
    ]
    return pats


def run_until(cmd, log, pats, timeout):
    """Runs cmd until every pattern matched in log (or exit/timeout)."""
    start = time.time()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = ''
    while time.time() - start < timeout:
        try:
            with open(log, errors='replace') as f:
                text = f.read()
        except FileNotFoundError:
            pass
        if all(re.search(p, text) for p in pats) or proc.poll() is not None:
            break
        time.sleep(1)
    elapsed = time.time() - start
    if proc.poll() is None:
        proc.kill()
    _, err = proc.communicate()
    with open(log, errors='replace') as f:
        text = f.read()
    return text, err.decode(errors='replace'), proc.returncode, elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvmpc')
    ap.add_argument('--entry', choices=['pvh', 'bzimage'], default='pvh')
    ap.add_argument('--cpus', type=int, default=1)
    ap.add_argument('--mem', type=int, default=512)
    ap.add_argument('--timeout', type=int, default=600)
    ap.add_argument('--qemu-compare', action='store_true')
    a = ap.parse_args()
    kdir = sysimg.debian_kernel_dir()
    kernel = os.path.join(kdir, 'vmlinux' if a.entry == 'pvh' else 'vmlinuz')
    append = 'console=ttyS0 earlyprintk=serial'
    pats = wanted_lines(a.cpus, a.mem * MiB)
    tmp = tempfile.mkdtemp(prefix='kvmpc-linux-')
    log = os.path.join(tmp, 'serial.log')
    cmd = [a.kvmpc, 'run', '--kernel', kernel, '--cpus', str(a.cpus),
           '--mem', str(a.mem), '--append', append, '--console', 'file:' + log]
    text, err, rc, secs = run_until(cmd, log, pats, a.timeout)
    missing = [p for p in pats if not re.search(p, text)]
    print('kvmpc %s entry, %d CPUs: %.1f s, exit %s' %
          (a.entry, a.cpus, secs, rc))
    stagetimes.record('Debian kernel, %s entry, %d CPUs (kvmpc)' %
                      (a.entry, a.cpus),
                      {'early-boot': round(secs, 1)} if not missing else {},
                      secs, 'evidence complete' if not missing
                      else 'evidence missing')
    for line in text.splitlines():
        if any(re.search(p, line) for p in pats):
            print('  kvmpc| ' + line.strip())
    if a.qemu_compare:
        qlog = os.path.join(tmp, 'qemu.log')
        qcmd = ['qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'qemu64,-cx16',
                '-m', str(a.mem), '-smp', str(a.cpus), '-kernel', kernel,
                '-append', append, '-display', 'none', '-serial',
                'file:' + qlog, '-no-reboot', '-monitor', 'none']
        qtext, _, qrc, qsecs = run_until(qcmd, qlog, pats[-4:], a.timeout)
        print('qemu  %s entry, %d CPUs: %.1f s, exit %s' %
              (a.entry, a.cpus, qsecs, qrc))
        for line in qtext.splitlines():
            if any(re.search(p, line) for p in pats) or 'e820' in line:
                print('  qemu | ' + line.strip())
    if missing:
        print('FAIL: missing from the kvmpc boot log:')
        for p in missing:
            print('  ' + p)
        print('--- serial log tail ---\n' + '\n'.join(text.splitlines()[-25:]))
        print('--- kvmpc stderr ---\n' + err[-3000:])
        return 1
    print('PASS')
    return 0


if __name__ == '__main__':
    sys.exit(main())
