#!/usr/bin/env python3
"""The distro system test: Debian 12 installed on a disk image (see
build-image.sh) boots under kvmpc with Debian's SeaBIOS to a root shell on
the serial console, answers a few questions about its machine and powers
off; its root file system must then be clean.

The console is a pty, so the test types into the guest as a person would.
Every chunk of console output is stamped with its arrival time, which gives
the boot stages:
  firmware    start -> the MBR boot code runs (SeaBIOS's "Booting from
              0000:7c00" on the debug port)
  bootloader  -> the kernel starts (GRUB's menu, vmlinuz and the initrd
              read through the BIOS, the bzImage decompressing itself)
  kernel      -> "Run /init"
  userspace   -> the root shell (initramfs, systemd, getty autologin)
The kernel's start is not on the console (its log reaches ttyS0 only once
the serial console registers): it is the arrival of a line printed live
minus that line's printk time stamp.

usage: test_distro.py KVMPC [--cpus N] [--mem MiB] [--qemu] [--timeout S]
                            [--keep] [--append ARGS] [--direct] [--accel A]
  --qemu    the same under qemu-system-x86_64 as a reference (KVMPC unused)
  --accel   QEMU's accelerator: kvm, or tcg (the default on PVM hosts)
  --append  extra kernel arguments, typed into GRUB's menu editor
  --direct  the image's kernel and initrd booted directly (diagnosis)
Exit status 0 when every check passed.
"""
import argparse
import bisect
import lzma
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANSI = re.compile(rb'\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\x1b[=>]')
PROMPT = re.compile(rb'root@[\w.-]+:[^\r\n]*# ')
# Warnings and errors about the platform the guest must not report.
PLATFORM_WORDS = re.compile(r'pci|acpi|apic|ioapic|firmware bug|bios bug',
                            re.I)
# Lines of a stack or register dump (a soft lockup report, say) name
# functions and registers, not the platform's problems.
DUMP_LINE = re.compile(r'\w\+0x[0-9a-f]+/0x[0-9a-f]+|\] (RIP|Code|RSP|RAX|RDX|'
                       r'RBP|R10|R13|FS|CS|CR2|DR0|DR3|Workqueue|'
                       r'Hardware name|Modules linked in|CPU: \d+ PID):? ')
# ... except these, which a PC with an i440FX host bridge gives by design.
PLATFORM_EXPECTED = [
    # No PCI Express: no MCFG table, no extended configuration space.
    re.compile(r'acpi PNP0A03:00: fail to add MMCONFIG information, '
               r"can't access extended PCI configuration space"),
]
KVMPC_EXIT = {0: 'powered off', 1: 'error', 2: 'guest reset',
              3: 'triple fault', 4: 'KVM internal error', 5: 'signal'}


class Stream:
    """Bytes from the guest with the arrival time of every chunk."""

    def __init__(self, log_path):
        self.buf = bytearray()
        self.starts = []        # offset of each chunk in buf
        self.times = []         # its arrival, seconds since the VM started
        self.log = open(log_path, 'wb')

    def add(self, data, when):
        if not data:
            return
        self.starts.append(len(self.buf))
        self.times.append(when)
        self.buf += data
        self.log.write(data)
        self.log.flush()

    def time_at(self, offset):
        """Arrival time of the byte at offset."""
        return self.times[bisect.bisect_right(self.starts, offset) - 1]

    def search(self, regex, start=0):
        return re.compile(regex).search(self.buf, start)

    def when(self, regex, start=0):
        """Arrival time of the first match (its last byte), or None."""
        m = self.search(regex, start)
        return self.time_at(m.end() - 1) if m else None

    def text(self, start=0):
        return ANSI.sub(b'', bytes(self.buf[start:])).decode(
            errors='replace').replace('\r\n', '\n').replace('\r', '')


class Guest:
    """A running VM: its console on a pty, its debug port in a file."""

    def __init__(self, cmd, workdir, deadline, stuck=None):
        self.workdir = workdir
        self.deadline = deadline
        self.stuck = stuck      # (stderr pattern, exit status it stands for)
        self.debugcon_path = os.path.join(workdir, 'debugcon.log')
        self.stderr_path = os.path.join(workdir, 'stderr.log')
        self.serial = Stream(os.path.join(workdir, 'serial.log'))
        self.debugcon = Stream(os.path.join(workdir, 'debugcon-times.log'))
        self.debugcon_fd = None
        master, slave = pty.openpty()
        self.master = master
        self.t0 = time.monotonic()
        with open(self.stderr_path, 'wb') as err:
            self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave,
                                         stderr=err, start_new_session=True)
        os.close(slave)
        self.rc = None
        self.eof = False

    def now(self):
        return time.monotonic() - self.t0

    def pump(self, wait):
        """Takes in what the guest wrote within `wait` seconds."""
        if not self.eof:
            ready, _, _ = select.select([self.master], [], [], wait)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:     # EIO: the VMM closed its side
                    data = b''
                if data:
                    self.serial.add(data, self.now())
                else:
                    self.eof = True
        else:
            time.sleep(wait)
        self.pump_debugcon()
        if self.rc is None:
            self.rc = self.proc.poll()
        if self.rc is None and self.stuck and self.stderr_has(self.stuck[0]):
            self.kill()
            self.rc = self.stuck[1]

    def stderr_has(self, pattern):
        with open(self.stderr_path, 'rb') as f:
            return re.search(pattern, f.read()) is not None

    def pump_debugcon(self):
        if self.debugcon_fd is None:
            try:
                self.debugcon_fd = os.open(self.debugcon_path, os.O_RDONLY)
            except FileNotFoundError:
                return
        while True:
            data = os.read(self.debugcon_fd, 65536)
            if not data:
                return
            self.debugcon.add(data, self.now())

    def wait_for(self, regex, start=0, what=None):
        """Pumps until regex matches the console from start; the match."""
        while True:
            m = self.serial.search(regex, start)
            if m:
                return m
            if self.rc is not None:
                self.pump(0)      # what is still in the pty
                m = self.serial.search(regex, start)
                if m:
                    return m
                raise Failure('the VM exited with status %d (%s) while '
                              'waiting for %s' % (self.rc, KVMPC_EXIT.get(
                                  self.rc, '?'), what or regex))
            if time.monotonic() > self.deadline:
                raise Failure('timed out waiting for %s' % (what or regex))
            self.pump(0.5)

    def wait_exit(self):
        while self.rc is None:
            if time.monotonic() > self.deadline:
                raise Failure('timed out waiting for the VM to exit')
            self.pump(0.5)
        for _ in range(20):       # drain the pty
            if self.eof:
                break
            self.pump(0.05)
        return self.rc

    def type(self, text):
        os.write(self.master, text.encode())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Failure(Exception):
    pass


def shell(guest, tag, command):
    """Runs command at the root prompt; returns (output, exit status)."""
    # The quotes keep the typed line from matching the markers.
    begin, end = 'KVMPC-%s-BEGIN' % tag, 'KVMPC-%s-END' % tag
    start = len(guest.serial.buf)
    guest.type("echo %s''%s; %s; echo %s''%s $?\n" %
               (begin[:-2], begin[-2:], command, end[:-2], end[-2:]))
    m_end = guest.wait_for(re.escape(end.encode()) + rb' (\d+)\r*\n', start,
                           'the end of `%s`' % command)
    m_begin = guest.serial.search(re.escape(begin.encode()) + rb'\r*\n', start)
    guest.wait_for(PROMPT, m_end.end(), 'the prompt after `%s`' % command)
    text = ANSI.sub(b'', bytes(guest.serial.buf[m_begin.end():m_end.start()]))
    out = text.decode(errors='replace').replace('\r\n', '\n').replace('\r', '')
    return out.rstrip('\n'), int(m_end.group(1))


def build_image():
    t, started = time.monotonic(), time.time()
    res = subprocess.run([os.path.join(HERE, 'build-image.sh')],
                         stdout=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise Failure('build-image.sh failed (status %d)' % res.returncode)
    outdir = res.stdout.strip().splitlines()[-1]
    info = {}
    with open(os.path.join(outdir, 'info')) as f:
        for line in f:
            k, _, v = line.strip().partition('=')
            info[k] = v
    cached = os.stat(os.path.join(outdir, 'disk.img')).st_mtime < started
    return outdir, info, time.monotonic() - t, cached


def image_file(base, info, path, out):
    """Copies a file out of the base image's root file system, which
    debugfs opens read-only."""
    spec = '%s?offset=%d' % (base, int(info['part_start_sectors']) * 512)
    res = subprocess.run(['debugfs', '-R', 'dump %s %s' % (path, out), spec],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if res.returncode != 0 or not os.path.isfile(out) or \
            os.path.getsize(out) == 0:
        raise Failure('cannot read %s from %s: %s' %
                      (path, base, res.stderr.decode(errors='replace')))
    return out


def direct_boot_files(base, info, workdir):
    """The image's kernel as an ELF vmlinux (PVH entry) and its initrd."""
    kver = info['kernel']
    vmlinuz = image_file(base, info, '/boot/vmlinuz-' + kver,
                         os.path.join(workdir, 'vmlinuz'))
    initrd = image_file(base, info, '/boot/initrd.img-' + kver,
                        os.path.join(workdir, 'initrd.img'))
    with open(vmlinuz, 'rb') as f:
        data = f.read()
    start = data.find(b'\xfd7zXZ\x00')
    if start < 0:
        raise Failure('no xz payload in the image\'s vmlinuz')
    vmlinux = os.path.join(workdir, 'vmlinux')
    with open(vmlinux, 'wb') as f:
        f.write(lzma.LZMADecompressor().decompress(data[start:]))
    return vmlinux, initrd


def kernel_cmdline(info, append):
    """The kernel command line grub.cfg gives, plus append."""
    line = 'root=UUID=%s ro console=ttyS0,115200n8' % info['root_uuid']
    return line + (' ' + append if append else '')


def vm_command(a, overlay, debugcon, direct):
    if a.qemu:
        cpu = 'qemu64,-cx16' if a.accel == 'kvm' else 'qemu64'
        cmd = ['qemu-system-x86_64', '-accel', a.accel, '-cpu', cpu, '-m', str(a.mem), '-smp', str(a.cpus), '-display', 'none',
               '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
               '-monitor', 'none', '-no-reboot',
               '-debugcon', 'file:' + debugcon,
               '-global', 'isa-debugcon.iobase=0x402',
               '-drive', 'file=%s,format=qcow2,if=virtio' % overlay]
        if direct:
            cmd += ['-kernel', direct[0], '-initrd', direct[1],
                    '-append', direct[2]]
        return cmd
    # --stats: exits by reason and instruction completions, in stderr.log.
    cmd = [a.kvmpc, 'run', '--disk', overlay + ',format=qcow2',
           '--cpus', str(a.cpus), '--mem', str(a.mem), '--console', 'stdio',
           '--debugcon', debugcon, '--stats']
    if direct:
        cmd += ['--kernel', direct[0], '--initrd', direct[1],
                '--append', direct[2]]
    return cmd


def grub_append(g, base, info, extra):
    """Adds extra to the kernel line of the default entry in GRUB's menu
    editor, as a person at the console would, and boots it."""
    cfg = os.path.join(g.workdir, 'grub.cfg')
    with open(image_file(base, info, '/boot/grub/grub.cfg', cfg)) as f:
        body = f.read().split('menuentry', 1)[1].split('{', 1)[1]
    lines = [l.strip() for l in body.split('}', 1)[0].splitlines()
             if l.strip()]
    down = [i for i, l in enumerate(lines) if l.startswith('linux')]
    if not down:
        raise Failure('grub.cfg has no linux line in its first entry')
    menu = g.wait_for(rb'GNU GRUB', 0, "GRUB's menu")
    g.type('e')
    m = g.wait_for(rb'Minimum Emacs-like screen editing|Booting `', menu.end(),
                   "GRUB's editor")
    if m.group(0).startswith(b'Booting'):
        raise Failure("GRUB booted before its menu took the key 'e'")
    # Ctrl-N: next line, Ctrl-E: end of line, Ctrl-X: boot.
    g.type('\x0e' * down[0] + '\x05' + ' ' + extra + '\x18')


def stage_marks(g):
    """Arrival times of the boot milestones (None where not seen)."""
    s, d = g.serial, g.debugcon
    marks = {
        'mbr': d.when(rb'Booting from 0000:7c00'),
        'grub_menu': s.when(rb'GNU GRUB'),
        'grub_kernel': s.when(rb'Loading Linux'),
        'grub_initrd': s.when(rb'Loading initial ramdisk'),
        'linux_version': s.when(rb'Linux version'),
        'run_init': s.when(rb'Run /init as init process'),
        'systemd': s.when(rb'Welcome to .*Debian'),
        'autologin': s.when(rb'\(automatic login\)'),
    }
    m = s.search(rb'\[\s*(\d+\.\d+)\] Run /init as init process')
    marks['kernel_start'] = None
    if m and marks['run_init'] is not None:
        est = marks['run_init'] - float(m.group(1))
        lo = marks['grub_initrd'] or marks['mbr'] or 0.0
        if lo <= est <= marks['run_init']:
            # A guest clock that runs a little fast (TCG) cannot place the
            # start after the kernel's first line reached the console.
            marks['kernel_start'] = min(est, marks['linux_version'] or est)
    al = s.search(rb'\(automatic login\)')
    p = s.search(PROMPT, al.end()) if al else None
    marks['shell'] = s.time_at(p.end() - 1) if p else None
    return marks


def stage_table(marks, build_secs, poweroff_at, exit_at, cached):
    rows = [('image build' + (' (cached)' if cached else ''), 0.0, build_secs,
             'build-image.sh')]
    order = [
        ('firmware', None, 'mbr', 'SeaBIOS up to the MBR boot code'),
        ('bootloader', 'mbr', 'kernel_start',
         'GRUB, vmlinuz+initrd via BIOS, decompression'),
        ('  GRUB up to its menu', 'mbr', 'grub_menu', None),
        ('  menu (1 s timeout)', 'grub_menu', 'grub_kernel', None),
        ('  read vmlinuz', 'grub_kernel', 'grub_initrd', None),
        ('  read initrd, decompress', 'grub_initrd', 'kernel_start',
         'kernel start from printk time'),
        ('kernel', 'kernel_start', 'run_init', 'to "Run /init"'),
        ('  kernel log reaches ttyS0', 'linux_version', None, None),
        ('userspace', 'run_init', 'shell', 'initramfs, systemd, autologin'),
        ('  initramfs', 'run_init', 'systemd', None),
        ('  systemd to login', 'systemd', 'autologin', None),
        ('  login to shell', 'autologin', 'shell', None),
    ]
    for name, a, b, note in order:
        ta = 0.0 if a is None else marks.get(a)
        tb = marks.get(b) if b else None
        rows.append((name, ta, tb, note))
    rows.append(('boot total', 0.0, marks.get('shell'), 'start to shell'))
    rows.append(('shutdown', poweroff_at, exit_at, 'poweroff to VM exit'))
    out = ['%-28s %10s %10s  %s' % ('stage', 'seconds', 'ends at', ''),
           '-' * 72]
    for name, ta, tb, note in rows:
        secs, at = 'n/a', ''
        if ta is not None and tb is not None:
            secs, at = '%.1f' % (tb - ta), '%.1f' % tb
        elif name.startswith('  ') and ta is not None:
            secs, at = '', '%.1f' % ta    # a point in time, not a span
        if name.startswith('image build'):
            at = ''
        out.append('%-28s %10s %10s  %s' % (name, secs, at, note or ''))
    return '\n'.join(out)


def fsck_root(overlay, info, workdir):
    raw = os.path.join(workdir, 'disk.raw')
    subprocess.run(['qemu-img', 'convert', '-O', 'raw', overlay, raw],
                   check=True)
    offset = int(info['part_start_sectors']) * 512
    res = subprocess.run(['e2fsck', '-n', '-f', '%s?offset=%d' % (raw, offset)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    os.unlink(raw)
    return res.returncode, res.stdout


def check_tools(a):
    need = ['qemu-img', 'e2fsck', 'debugfs', 'mmdebstrap']
    need.append('qemu-system-x86_64' if a.qemu else a.kvmpc)
    missing = [t for t in need if shutil.which(t) is None]
    if missing:
        raise Failure('missing: %s (apt-get install mmdebstrap qemu-utils '
                      'qemu-system-x86 e2fsprogs)' % ' '.join(missing))


def check_session(g, a, results):
    """The questions asked at the root shell; appends failures."""
    problems = []
    nproc, rc = shell(g, 'NPROC', 'nproc')
    results.append(('nproc', nproc))
    if rc != 0 or nproc.strip() != str(a.cpus):
        problems.append('nproc says %r, expected %d' % (nproc, a.cpus))
    lsblk, rc = shell(g, 'LSBLK', 'lsblk')
    results.append(('lsblk', lsblk))
    if rc != 0 or not re.search(r'^vda\s.*\s2G\s+0\s+disk', lsblk, re.M) or \
            not re.search(r'vda1\s.*\spart\s+/$', lsblk, re.M):
        problems.append('lsblk does not show vda (2G) with vda1 mounted on /')
    dmesg, rc = shell(g, 'DMESG', 'dmesg --color=never '
                      '--level=emerg,alert,crit,err,warn')
    results.append(('dmesg --level=emerg,alert,crit,err,warn', dmesg))
    if rc != 0:
        problems.append('dmesg failed (status %d)' % rc)
    platform = [l for l in dmesg.splitlines() if PLATFORM_WORDS.search(l)
                and not DUMP_LINE.search(l)
                and not any(e.search(l) for e in PLATFORM_EXPECTED)]
    results.append(('PCI/ACPI/APIC warnings and errors (less those an '
                    'i440FX PC gives by design)',
                    '\n'.join(platform) if platform else '(none)'))
    if platform:
        problems.append('%d PCI/ACPI/APIC warnings or errors in dmesg'
                        % len(platform))
    # "starting" is fine (a slow host may still be at work); a failed unit
    # is not.
    state, _ = shell(g, 'STATE', 'systemctl is-system-running')
    results.append(('systemctl is-system-running', state))
    failed, rc = shell(g, 'FAILED', 'systemctl --failed --no-legend --plain')
    results.append(('systemctl --failed', failed or '(none)'))
    units = [l.split()[0] for l in failed.splitlines() if l.strip()]
    if rc != 0:
        problems.append('systemctl --failed exited %d' % rc)
    elif units:
        problems.append('failed systemd units: ' + ', '.join(units))
    return problems


def run_test(a, workdir):
    check_tools(a)
    outdir, info, build_secs, cached = build_image()
    print('image: %s/disk.img (kernel %s, root UUID %s)' %
          (outdir, info['kernel'], info['root_uuid']))
    base = os.path.join(outdir, 'disk.img')
    overlay = os.path.join(workdir, 'overlay.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base,
                    '-F', 'raw', overlay], check=True)
    direct = None
    if a.direct:
        direct = direct_boot_files(base, info, workdir) + \
            (kernel_cmdline(info, a.append),)
    cmd = vm_command(a, overlay, os.path.join(workdir, 'debugcon.log'), direct)
    print('running: ' + ' '.join(cmd), flush=True)
    # QEMU stops (it does not exit) on a KVM internal error.
    stuck = (rb'KVM internal error', 4) if a.qemu else None
    g = Guest(cmd, workdir, time.monotonic() + a.timeout, stuck)
    a.guest = g
    results, problems = [], []
    poweroff_at, exit_at = None, None
    try:
        if a.append and not a.direct:
            grub_append(g, base, info, a.append)
        al = g.wait_for(rb'\(automatic login\)', 0, 'the autologin')
        g.wait_for(PROMPT, al.end(), 'the root prompt')
        print('root shell after %.1f s' % g.now(), flush=True)
        problems += check_session(g, a, results)
        poweroff_at = g.now()
        g.type('poweroff\n')
        rc = g.wait_exit()
        exit_at = g.now()
    finally:
        g.kill()
        a.report = (stage_marks(g), build_secs, poweroff_at, exit_at, cached)
    for title, text in results:
        print('--- %s ---\n%s' % (title, text))
    if a.qemu:
        if rc == 0 and not g.serial.search(rb'reboot: Power down'):
            rc = 2 if g.serial.search(rb'reboot: Restarting') else 1
    print('VM exit status %d (%s)' % (rc, KVMPC_EXIT.get(rc, '?')))
    if not a.qemu:
        with open(g.stderr_path, errors='replace') as f:
            print('--- kvmpc --stats ---\n' + f.read().strip())
    if rc != 0:
        problems.append('the VM exited with status %d, not 0 (power-off)' % rc)
    fsck_rc, fsck_out = fsck_root(overlay, info, workdir)
    print('--- e2fsck -n -f (root file system after the run) ---\n' +
          fsck_out.strip())
    if fsck_rc != 0:
        problems.append('e2fsck -n -f exited %d: the root file system is '
                        'not clean' % fsck_rc)
    return problems


def print_diagnostics(g):
    if g is None:
        return
    print('--- serial console (last 40 lines) ---')
    print('\n'.join(g.serial.text().splitlines()[-40:]))
    print('--- debug port (last 10 lines) ---')
    print('\n'.join(g.debugcon.text().splitlines()[-10:]))
    try:
        with open(g.stderr_path, errors='replace') as f:
            err = f.read()
    except OSError:
        err = ''
    print('--- VMM stderr ---\n' + err[-4000:])


def host_is_pvm():
    """PVM, the software nested hypervisor whose instruction emulator
    lacks xsave/xrstor/int3 in guest ring 0: QEMU with KVM stops there
    (the kernel's alternatives self-test runs int3 on every boot)."""
    return os.path.exists('/sys/module/kvm_pvm')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('kvmpc')
    ap.add_argument('--cpus', type=int, default=2)
    ap.add_argument('--mem', type=int, default=1024, help='MiB')
    ap.add_argument('--qemu', action='store_true')
    ap.add_argument('--timeout', type=int, default=3 * 3600,
                    help='seconds for the whole boot and session')
    ap.add_argument('--keep', action='store_true',
                    help='keep the work directory (overlay, logs)')
    ap.add_argument('--append', default='',
                    help='extra kernel arguments, typed into GRUB\'s editor')
    ap.add_argument('--accel', choices=['kvm', 'tcg'],
                    help='QEMU\'s accelerator (default: kvm; tcg on a PVM '
                    'host, whose KVM cannot run this kernel\'s ring 0 for '
                    'QEMU: no xsave, xrstor, int3 there)')
    ap.add_argument('--direct', action='store_true',
                    help='boot the image\'s kernel and initrd directly '
                    '(PVH entry): skips firmware, GRUB and the kernel\'s '
                    'decompression, for looking at the later stages')
    a = ap.parse_args()
    if a.accel is None:
        a.accel = 'tcg' if host_is_pvm() else 'kvm'
    a.report = a.guest = None
    workdir = tempfile.mkdtemp(prefix='kvmpc-distro-')
    vmm = 'qemu' if a.qemu else 'kvmpc'
    try:
        problems = run_test(a, workdir)
    except Failure as e:
        problems = [str(e)]
    except subprocess.CalledProcessError as e:
        problems = ['%s failed (status %d)' % (e.cmd[0], e.returncode)]
    if a.report:
        how = ', '.join((['-accel ' + a.accel] if a.qemu else []) +
                        ['%d CPUs' % a.cpus, '%d MiB' % a.mem] +
                        (['direct kernel boot'] if a.direct else []) +
                        (['extra kernel args "%s"' % a.append]
                         if a.append else []))
        print('\nboot stages under %s, %s (wall seconds):' % (vmm, how))
        print(stage_table(*a.report))
    if problems:
        print_diagnostics(a.guest)
        print('FAIL (%s):' % vmm)
        for p in problems:
            print('  ' + p)
        print('logs kept in ' + workdir)
        return 1
    if a.keep:
        print('logs kept in ' + workdir)
    else:
        shutil.rmtree(workdir)
    print('PASS (%s)' % vmm)
    return 0


if __name__ == '__main__':
    sys.exit(main())
