"""Helpers of the system tests that boot disk images through firmware.

A test builds its image with a builder under images/ (cached, see
images/README.md), boots a private copy of it under kvmpc, or under QEMU as
a reference (--qemu), streams the serial console to a file and records when
each boot stage first shows up there:

    res = sysimg.boot(vmm, [image], sysimg.LINUX_STAGES, timeout=900)
    res.status      # exit status in kvmpc's terms (see EXIT_*), None if
                    # the machine was stopped (timeout, hang)
    res.stages      # {'firmware': 1.2, 'bootloader': 3.4, ...} seconds
    res.log         # serial console text, terminal escapes removed

QEMU exit statuses differ from kvmpc's: a guest power-off and a guest reset
both end QEMU (-no-reboot) with 0, so the reference run traces the shutdown
request and maps its reason onto kvmpc's statuses.

The reference runs under KVM like kvmpc (--qemu) or, where the host's KVM
cannot run a guest to the end (a PVM host lacks int3, xsave and 32-bit
iret in its emulator), under QEMU's own emulator (--qemu --tcg).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import stagetimes

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, 'images')

# kvmpc's exit statuses (kvmpc run --help).
EXIT_POWEROFF = 0
EXIT_ERROR = 1
EXIT_RESET = 2
EXIT_TRIPLE_FAULT = 3
EXIT_INTERNAL_ERROR = 4

# Stages: (name, pattern), in boot order, searched in the cleaned log.
FIRMWARE = ('firmware', r'SeaBIOS \(version')
BOOT_DISK = ('boot', r'Booting from Hard Disk')
LINUX_STAGES = [
    FIRMWARE, BOOT_DISK,
    ('bootloader', r'Welcome to GRUB'),
    ('kernel', r'Linux version \d'),
    ('initramfs', r'kvmpc-initramfs: /init started'),
    ('userspace', r'kvmpc-init: /sbin/init started'),
    ('summary', r'kvmpc-init: summary end'),
    ('poweroff', r'reboot: Power down'),
]

_ESCAPES = re.compile(r'\x1b(\[[0-9;?]*[A-Za-z]|[c()][0-9A-Za-z]?)')


def clean(text):
    """The console text without terminal escapes and carriage returns.

    The firmware's serial console redraws the screen with cursor moves,
    which may fall inside a line of text.
    """
    return _ESCAPES.sub('', text).replace('\r', '')


def build(script, *args):
    """Runs an image builder; returns its result path (last stdout line)."""
    path = os.path.join(IMAGES, script)
    start = time.time()
    proc = subprocess.run([path, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise RuntimeError('%s failed with status %d' %
                           (script, proc.returncode))
    result = proc.stdout.strip().splitlines()[-1]
    print('image %s: %s (%.1f s)' % (script, result, time.time() - start))
    return result


# Stages of a kernel booted directly with the direct-boot initramfs.
DIRECT_STAGES = LINUX_STAGES[3:]


def debian_kernel_dir():
    """Debian's stock kernel, unpacked under the cache (debian-kernel.sh):
    vmlinuz, vmlinux, config and modules/."""
    out = subprocess.run([os.path.join(HERE, 'debian-kernel.sh')],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def direct_boot_initramfs(out, modules=None):
    """Builds the initramfs of direct-boot-init at out: it loads the
    modules in modules/order (if given), waits for the virtio-blk disk and
    runs images/rootfs-init, which prints the summary and powers off."""
    extra = [modules + '=lib/modules'] if modules else []
    subprocess.run([os.path.join(HERE, 'mkinitramfs.sh'), out,
                    os.path.join(HERE, 'direct-boot-init')] + extra +
                   [os.path.join(IMAGES, 'rootfs-init') + '=sbin/init'],
                   check=True)
    return out


class Vmm:
    """kvmpc (path to its binary) or QEMU (kvmpc=None) with accel."""

    def __init__(self, kvmpc=None, accel='kvm'):
        self.kvmpc = kvmpc
        self.accel = accel
        self.name = 'kvmpc' if kvmpc else 'qemu-' + accel

    def command(self, disks, console, cpus, mem, debugcon=None, kernel=None):
        """kernel: (vmlinux or bzImage, initrd, append) to boot directly."""
        if self.kvmpc:
            cmd = [self.kvmpc, 'run', '--cpus', str(cpus), '--mem', str(mem),
                   '--console', 'file:' + console]
            if kernel:
                cmd += ['--kernel', kernel[0], '--initrd', kernel[1],
                        '--append', kernel[2]]
            for d in disks:
                cmd += ['--disk', d]
            if debugcon:
                cmd += ['--debugcon', debugcon]
            return cmd
        # -nographic makes QEMU turn on SeaBIOS's serial console, as kvmpc
        # always does; the trace tells a power-off from a reset.
        cpu = 'qemu64,-cx16' if self.accel == 'kvm' else 'qemu64'
        cmd = ['qemu-system-x86_64', '-accel', self.accel, '-cpu', cpu,
               '-m', str(mem), '-smp', str(cpus), '-nographic',
               '-serial', 'file:' + console, '-monitor', 'none',
               '-no-reboot', '-trace', 'qemu_system_shutdown_request']
        if kernel:
            cmd += ['-kernel', kernel[0], '-initrd', kernel[1],
                    '-append', kernel[2]]
        for d in disks:
            cmd += ['-drive', 'file=%s,format=raw,if=virtio' % d]
        if debugcon:
            cmd += ['-device', 'isa-debugcon,iobase=0x402,chardev=dbg',
                    '-chardev', 'file,id=dbg,path=' + debugcon]
        return cmd

    def status(self, returncode, output):
        """The exit status in kvmpc's terms.

        QEMU traces a guest power-off as a shutdown request with reason 6
        (guest shutdown); with -no-reboot a guest reset (a triple fault
        too) ends it with status 0 and no such trace.
        """
        if self.kvmpc:
            return returncode
        if 'KVM internal error' in output:
            return EXIT_INTERNAL_ERROR
        if returncode != 0:
            return EXIT_ERROR
        if re.search(r'qemu_system_shutdown_request reason=6\b', output):
            return EXIT_POWEROFF
        return EXIT_RESET


class Result:
    def __init__(self):
        self.status = None
        self.timed_out = False
        self.stalled = False
        self.seconds = 0.0
        self.stages = {}
        self.log = ''
        self.output = ''
        self.command = []
        self.workdir = ''

    def report(self, vmm_name, title):
        """Prints the stage times, one line each, and the outcome; also
        records them for the suite's table (stagetimes.py)."""
        print('%s on %s:' % (title, vmm_name))
        for name, secs in self.stages.items():
            print('  %-11s %s' % (name, 'not seen' if secs is None
                                  else '%7.1f s' % secs))
        print('  %-11s %7.1f s, %s' % ('end', self.seconds, self.outcome()))
        stagetimes.record('%s (%s)' % (title, vmm_name), self.stages,
                          self.seconds, self.outcome())

    def outcome(self):
        if self.timed_out:
            return 'timed out'
        if self.stalled:
            return 'no console output for too long (hung)'
        if self.status is None:
            return 'stopped'
        return 'status %d' % self.status

    def tail(self, lines=40):
        return '\n'.join(self.log.splitlines()[-lines:])


def private_copy(image, workdir):
    """A copy of a cached image that the guest may write (sparse)."""
    dst = os.path.join(workdir, os.path.basename(image))
    subprocess.run(['cp', '--sparse=always', image, dst], check=True)
    return dst


def boot(vmm, images, stages, timeout, cpus=1, mem=512, stop_at=None,
         stall=None, kernel=None):
    """Boots private copies of images; see the module comment.

    stop_at: a stage name after which the machine is stopped (for images
    that do not power off by themselves); the status is then None.
    kernel: (kernel, initrd, append) booted directly instead of firmware.
    stall: seconds without new console output after which the machine is
    stopped as hung (res.stalled; status None).
    """
    res = Result()
    res.workdir = tempfile.mkdtemp(prefix='kvmpc-sys-')
    console = os.path.join(res.workdir, 'console.log')
    debugcon = os.path.join(res.workdir, 'debugcon.log')
    disks = [private_copy(i, res.workdir) for i in images]
    res.command = vmm.command(disks, console, cpus, mem, debugcon, kernel)
    out_path = os.path.join(res.workdir, 'vmm-output.log')
    pending = list(stages)
    res.stages = {name: None for name, _ in stages}
    with open(out_path, 'wb') as out:
        start = time.monotonic()
        proc = subprocess.Popen(res.command, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
        stopped = internal = False
        seen, seen_at = 0, 0.0
        while True:
            done = proc.poll() is not None
            now = time.monotonic() - start
            raw = _read(console)
            if len(raw) != seen:
                seen, seen_at = len(raw), now
            res.log = clean(raw)
            while pending and re.search(pending[0][1], res.log):
                res.stages[pending.pop(0)[0]] = round(now, 1)
            output = _read(out_path)
            if done:
                break
            if stop_at and res.stages.get(stop_at) is not None:
                stopped = True
            if now > timeout:
                res.timed_out = True
            if stall and now - seen_at > stall:
                res.stalled = True
            # QEMU pauses at an emulation failure: nothing more to see.
            internal = not vmm.kvmpc and 'KVM internal error' in output
            if stopped or internal or res.timed_out or res.stalled:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.2)
        res.seconds = time.monotonic() - start
    res.log = clean(_read(console))
    res.output = _read(out_path)
    if internal:
        res.status = EXIT_INTERNAL_ERROR
    elif not (res.timed_out or res.stalled or stopped):
        res.status = vmm.status(proc.returncode, res.output)
    for d in disks:
        os.unlink(d)
    return res


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read().decode('utf-8', errors='replace')
    except FileNotFoundError:
        return ''


def summary(log):
    """The "SUMMARY key=value" lines of the test disks' /sbin/init.

    Returns {key: [values]} (a key such as irq.ioapic repeats).
    """
    facts = {}
    for m in re.finditer(r'^SUMMARY ([\w.:-]+)=(.*)$', log, re.M):
        facts.setdefault(m.group(1), []).append(m.group(2).strip())
    return facts


VIRTIO_VENDOR = '0x1af4'
VIRTIO_BLK_DEVICES = ('0x1001', '0x1042')   # transitional, modern


def check_machine(c, facts, cpus):
    """What rootfs-init's summary must say about the machine: the CPUs,
    one virtio-blk disk on PCI, IO-APIC interrupts, a DMI BIOS date."""
    def one(key):
        vals = facts.get(key, [])
        return vals[0] if len(vals) == 1 else None

    c.expect(one('cpus.nproc') == str(cpus),
             'nproc says %d CPUs (got %s)' % (cpus, one('cpus.nproc')))
    c.expect(one('cpus.cpuinfo') == str(cpus),
             '/proc/cpuinfo lists %d CPUs (got %s)' %
             (cpus, one('cpus.cpuinfo')))
    blk = one('block.vda') or ''
    c.expect(blk.endswith('driver=virtio_blk'),
             '/sys/block/vda is a virtio_blk disk (%s)' % blk)
    virtio = [v for k, v in facts.items() if k.startswith('pci.') and
              v[0].split()[0] in ['%s:%s' % (VIRTIO_VENDOR, d)
                                  for d in VIRTIO_BLK_DEVICES]]
    c.expect(len(virtio) == 1, 'one virtio-blk PCI function (%d)' %
             len(virtio))
    lines = facts.get('irq.ioapic', [])
    c.expect(len(lines) >= 1 and one('irq.ioapic_lines') == str(len(lines)),
             '/proc/interrupts has IO-APIC lines (%d)' % len(lines))
    c.expect(any(re.search(r'IO-APIC 4-edge ttyS0$', l) for l in lines),
             'the serial port (ttyS0) interrupts through IO-APIC pin 4')
    date = one('dmi.bios_date') or ''
    c.expect(re.fullmatch(r'\d\d/\d\d/\d{4}', date) is not None,
             'DMI BIOS date (%s)' % date)

def arg_parser(doc):
    """The command line every system test takes."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument('kvmpc', nargs='?',
                    help='kvmpc binary (ignored with --qemu)')
    ap.add_argument('--qemu', action='store_true',
                    help='run the same image under QEMU as a reference')
    ap.add_argument('--tcg', action='store_true',
                    help='with --qemu: QEMU emulates the CPU (no KVM)')
    ap.add_argument('--timeout', type=float, default=None,
                    help='seconds before the machine is stopped')
    return ap


def vmm_from_args(args):
    if args.qemu:
        if not shutil.which('qemu-system-x86_64'):
            sys.exit('qemu-system-x86_64 is not installed')
        return Vmm(None, 'tcg' if args.tcg else 'kvm')
    if args.tcg:
        sys.exit('--tcg goes with --qemu')
    if not args.kvmpc or not os.access(args.kvmpc, os.X_OK):
        sys.exit('usage: give the kvmpc binary (or --qemu)')
    return Vmm(os.path.abspath(args.kvmpc))


class Checker:
    """Collects failed expectations, prints them, gives the exit status."""

    def __init__(self):
        self.failures = []

    def expect(self, ok, what):
        print('  %s %s' % ('ok  ' if ok else 'FAIL', what))
        if not ok:
            self.failures.append(what)
        return ok

    def finish(self, res):
        if self.failures:
            print('--- console (last 40 lines) ---\n' + res.tail())
            out = res.output.strip()
            if out:
                print('--- VMM output (tail) ---\n' + out[-3000:])
            print('logs: ' + res.workdir)
            print('FAIL')
            return 1
        shutil.rmtree(res.workdir, ignore_errors=True)
        print('PASS')
        return 0
