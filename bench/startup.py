#!/usr/bin/env python3
"""bench/startup: exec -> first KVM_RUN, and the VMM's memory overhead.

For kvmpc: its own clock (KVMPC_BENCH_T0_NS set by exec_t0 right before
execve, read back from --stats) and the RSS overhead (RSS minus guest RAM
the host backs). For kvmpc and QEMU alike, in the same run: the time from
sched_process_exec to the first kvm:kvm_userspace_exit (perf), and the peak
RSS. The guest is a tiny PVH kernel that powers off at once.

usage: bench/startup.py BUILD_DIR [--runs N]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

GUEST_ASM = '''
    .section .note.Xen, "a"
    .long 4, 4, 18
    .asciz "Xen"
    .long _start
    .text
    .code32
    .globl _start
_start: mov $0x604, %dx      /* PM1a_CNT: SLP_TYP 0 | SLP_EN = S5 */
    mov $0x2000, %ax
    outw %ax, %dx
1:  hlt
    jmp 1b
'''
GUEST_LDS = ('ENTRY(_start)\nPHDRS { text PT_LOAD; note PT_NOTE; }\n'
             'SECTIONS { . = 0x100000; .text : { *(.text) } :text\n'
             '  .note : { *(.note.Xen) } :text :note }\n')


def build_guest(d):
    with open(os.path.join(d, 'g.S'), 'w') as f:
        f.write(GUEST_ASM)
    with open(os.path.join(d, 'g.ld'), 'w') as f:
        f.write(GUEST_LDS)
    subprocess.run(['gcc', '-m32', '-c', 'g.S', '-o', 'g.o'], cwd=d, check=True)
    subprocess.run(['ld', '-m', 'elf_i386', '-T', 'g.ld', 'g.o', '-o', 'g.elf'],
                   cwd=d, check=True)
    return os.path.join(d, 'g.elf')


def peak_rss_kib(cmd):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss


def perf_first_exit_ms(cmd, d):
    data = os.path.join(d, 'perf.data')
    subprocess.run(['perf', 'record', '-q', '-o', data, '-e',
                    'sched:sched_process_exec', '-e', 'kvm:kvm_userspace_exit',
                    '--'] + cmd, stdin=subprocess.DEVNULL,
                   capture_output=True)
    out = subprocess.run(['perf', 'script', '-i', data], capture_output=True,
                         text=True).stdout
    t_exec = t_exit = None
    for line in out.splitlines():
        m = re.search(r'\s(\d+\.\d+):\s+(\S+):', line)
        if not m:
            continue
        t = float(m.group(1))
        if m.group(2) == 'sched:sched_process_exec' and t_exec is None:
            t_exec = t
        elif m.group(2) == 'kvm:kvm_userspace_exit' and t_exit is None:
            t_exit = t
    if t_exec is None or t_exit is None:
        return None
    return (t_exit - t_exec) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build')
    ap.add_argument('--runs', type=int, default=10)
    a = ap.parse_args()
    kvmpc = os.path.abspath(os.path.join(a.build, 'kvmpc'))
    exec_t0 = os.path.abspath(os.path.join(a.build, 'bench', 'exec_t0'))
    with tempfile.TemporaryDirectory(prefix='kvmpc-bench-') as d:
        guest = build_guest(d)
        kcmd = [kvmpc, 'run', '-k', guest, '-m', '128', '--console', 'none']
        qcmd = ['qemu-system-x86_64', '-accel', 'kvm', '-cpu', 'qemu64,-cx16',
                '-m', '128', '-kernel', guest, '-display', 'none', '-serial',
                'none', '-monitor', 'none', '-nodefaults', '-no-reboot']
        med = statistics.median
        own, overhead = [], []
        for _ in range(a.runs):
            p = subprocess.run([exec_t0] + kcmd + ['--stats'],
                               capture_output=True, text=True)
            m = re.search(r'startup: ([\d.]+) ms', p.stderr)
            o = re.search(r'VMM overhead (\d+) KiB', p.stderr)
            if p.returncode != 0 or not m or not o:
                print('kvmpc failed:', p.returncode, p.stderr[-500:])
                return 1
            own.append(float(m.group(1)))
            overhead.append(int(o.group(1)))
        kperf = [perf_first_exit_ms(kcmd, d) for _ in range(a.runs)]
        qperf = [perf_first_exit_ms(qcmd, d) for _ in range(a.runs)]
        krss = med([peak_rss_kib(kcmd) for _ in range(3)])
        qrss = med([peak_rss_kib(qcmd) for _ in range(3)])
    kperf = [x for x in kperf if x is not None]
    qperf = [x for x in qperf if x is not None]
    print('bench/startup (%d runs each, medians; host: %s)' %
          (a.runs, 'PVM' if os.path.exists('/sys/module/kvm_pvm') else 'KVM'))
    print('  kvmpc exec -> first KVM_RUN (own clock): %.2f ms  (goal < 5 ms)'
          % med(own))
    print('  kvmpc VMM RSS overhead: %.0f KiB = %.2f MiB  (goal < 4 MiB)'
          % (med(overhead), med(overhead) / 1024))
    if kperf and qperf:
        print('  exec -> first exit to userspace (perf): kvmpc %.2f ms, '
              'QEMU %.2f ms, ratio %.2f' % (med(kperf), med(qperf),
                                            med(kperf) / med(qperf)))
    print('  peak RSS: kvmpc %d KiB, QEMU %d KiB, ratio %.2f'
          % (krss, qrss, krss / qrss if qrss else float('nan')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
