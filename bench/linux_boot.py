#!/usr/bin/env python3
"""bench/linux-boot: the same kernel, initramfs and disk booted directly
under kvmpc and under qemu-system-x86_64 -accel kvm -cpu qemu64,-cx16, one
after the other in one run. For each: how far the boot got (the last stage
seen on the serial console), the time of every stage, how the run ended,
and the KVM exits to userspace (perf stat -e kvm:kvm_userspace_exit).

The initramfs (tests/system/direct-boot-init + images/rootfs-init) prints a
summary of the machine and powers off. Kernels:
  small   the small kernel the tests build from linux-source-6.1 (bzImage,
          LZ4; built on first use, see tests/system/images/kernel.sh)
  debian  Debian's stock kernel through PVH (its uncompressed vmlinux);
          about half an hour where guest ring 0 is emulated (PVM hosts)

usage: bench/linux_boot.py KVMPC [--kernel small|debian] [--cpus N]
                           [--timeout S] [--no-qemu]
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'system'))
import sysimg  # noqa: E402

STAGES = sysimg.DIRECT_STAGES


def kernel_and_initrd(which, d):
    """(kernel, initrd) for the chosen kernel; the initrd built in d."""
    initrd = os.path.join(d, 'initramfs.gz')
    if which == 'debian':
        kdir = sysimg.debian_kernel_dir()
        sysimg.direct_boot_initramfs(initrd, os.path.join(kdir, 'modules'))
        return os.path.join(kdir, 'vmlinux'), initrd
    kdir = sysimg.build('kernel.sh')
    sysimg.direct_boot_initramfs(initrd)
    return os.path.join(kdir, 'bzImage'), initrd


def perf_count(path):
    try:
        for line in open(path):
            if 'kvm_userspace_exit' in line:
                v = line.split(',')[0]
                return int(v) if v.isdigit() else None
    except FileNotFoundError:
        pass
    return None


def run(name, cmd, console, d, timeout):
    """Runs cmd under perf stat; returns a result dict."""
    perf_out = os.path.join(d, name + '.perf')
    out_path = os.path.join(d, name + '.out')
    with open(out_path, 'wb') as out:
        t0 = time.monotonic()
        p = subprocess.Popen(['perf', 'stat', '-x,', '-o', perf_out, '-e',
                              'kvm:kvm_userspace_exit', '--'] + cmd,
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT)
        stages, pending, why = {}, list(STAGES), None
        while p.poll() is None:
            now = time.monotonic() - t0
            try:
                text = open(console, 'rb').read().decode(errors='replace')
            except FileNotFoundError:
                text = ''
            while pending and re.search(pending[0][1], text):
                stages[pending.pop(0)[0]] = now
            output = open(out_path, 'rb').read().decode(errors='replace')
            # QEMU stops the guest at an emulation failure and waits.
            if 'KVM internal error' in output:
                why = 'KVM internal error (QEMU paused the guest)'
            elif now > timeout:
                why = 'stopped after %d s' % timeout
            if why:
                # Stop the VMM, not perf, so that perf still reports.
                for pid in subprocess.run(['pgrep', '-P', str(p.pid)],
                                          capture_output=True,
                                          text=True).stdout.split():
                    os.kill(int(pid), signal.SIGKILL)
                break
            time.sleep(0.2)
        p.wait()
        total = time.monotonic() - t0
    text = open(console, 'rb').read().decode(errors='replace') \
        if os.path.exists(console) else ''
    while pending and re.search(pending[0][1], text):
        stages[pending.pop(0)[0]] = total
    output = open(out_path, 'rb').read().decode(errors='replace')
    if why is None:
        why = 'exit status %d' % p.returncode
        if name == 'qemu' and p.returncode == 0:
            why = 'exited (0)'
    for line in output.splitlines():
        if re.search(r'internal error|emulation failure|fatal|error:', line,
                     re.I):
            why += '; ' + line.strip()[:100]
            break
    stats = [l for l in output.splitlines() if l.startswith(('kvmpc: ', '  '))]
    return {'stages': stages, 'total': total, 'why': why, 'stats': stats,
            'exits': perf_count(perf_out), 'tail': text.splitlines()[-3:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kvmpc')
    ap.add_argument('--kernel', choices=['small', 'debian'], default='small')
    ap.add_argument('--cpus', type=int, default=1)
    ap.add_argument('--mem', type=int, default=512)
    ap.add_argument('--timeout', type=int, default=900)
    ap.add_argument('--no-qemu', action='store_true')
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix='kvmpc-linuxbench-')
    kernel, initrd = kernel_and_initrd(a.kernel, d)
    disk = os.path.join(d, 'data.img')
    with open(disk, 'wb') as f:
        f.truncate(64 << 20)
    append = 'console=ttyS0'
    results = {}
    kcon = os.path.join(d, 'kvmpc.console')
    results['kvmpc'] = run('kvmpc', [
        os.path.abspath(a.kvmpc), 'run', '--kernel', kernel, '--initrd',
        initrd, '--append', append, '--disk', disk, '--cpus', str(a.cpus),
        '--mem', str(a.mem), '--console', 'file:' + kcon, '--stats'],
        kcon, d, a.timeout)
    if not a.no_qemu:
        qcon = os.path.join(d, 'qemu.console')
        results['qemu'] = run('qemu', [
            'qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'qemu64,-cx16',
            '-m', str(a.mem), '-smp', str(a.cpus), '-kernel', kernel,
            '-initrd', initrd, '-append', append, '-drive',
            'file=%s,format=raw,if=virtio' % disk, '-display', 'none',
            '-serial', 'file:' + qcon, '-monitor', 'none', '-no-reboot'],
            qcon, d, a.timeout)
    print('bench/linux-boot: %s kernel (%s), %d vCPU(s), %d MiB' %
          (a.kernel, os.path.basename(kernel), a.cpus, a.mem))
    names = list(results)
    print('  %-22s' % 'stage (s from start)' +
          ''.join('%14s' % n for n in names))
    for stage, _ in STAGES:
        print('  %-22s' % stage + ''.join(
            '%14s' % ('%.1f' % results[n]['stages'][stage]
                      if stage in results[n]['stages'] else '-')
            for n in names))
    print('  %-22s' % 'run ended after' +
          ''.join('%14.1f' % results[n]['total'] for n in names))
    print('  %-22s' % 'KVM exits to userspace' + ''.join(
        '%14s' % (results[n]['exits'] if results[n]['exits'] is not None
                  else '?') for n in names))
    for n in names:
        r = results[n]
        reached = [s for s, _ in STAGES if s in r['stages']]
        print('  %s: reached %s; %s' % (n, reached[-1] if reached else
                                         'nothing on the console', r['why']))
        if not reached or reached[-1] != 'poweroff':
            for line in r['tail']:
                print('    | ' + line.strip()[:120])
    if results['kvmpc']['stats']:
        print('  kvmpc --stats:')
        for line in results['kvmpc']['stats']:
            print('    ' + line)
    # Exit counts compare only when both ran the whole boot.
    if 'qemu' in results and results['qemu']['exits'] and \
            results['kvmpc']['exits'] and all(
                'poweroff' in r['stages'] for r in results.values()):
        print('  exits ratio kvmpc/QEMU: %.2f' %
              (results['kvmpc']['exits'] / results['qemu']['exits']))
    ok = 'poweroff' in results['kvmpc']['stages']
    if ok:
        subprocess.run(['rm', '-rf', d])
    else:
        print('  consoles and VMM output kept in ' + d)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
