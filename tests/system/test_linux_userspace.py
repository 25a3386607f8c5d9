#!/usr/bin/env python3
"""Debian's stock kernel, entered through PVH from its uncompressed vmlinux
(no decompression), with a busybox initramfs built here: the initramfs loads
Debian's virtio modules, finds the virtio-blk disk, and its /sbin/init
(images/rootfs-init) prints the CPU count, the block devices, the PCI
devices, the DMI BIOS date and the interrupts through the IO-APIC, then
powers off. kvmpc must exit 0. The kernel line is console=ttyS0 only.

On PVM hosts this takes about half an hour (guest ring 0 is emulated).

usage: test_linux_userspace.py KVMPC [--cpus N] [--timeout S] | --qemu
"""
import os
import shutil
import sys
import tempfile

import sysimg

DISK_BYTES = 64 << 20


def main():
    ap = sysimg.arg_parser(__doc__)
    ap.add_argument('--cpus', type=int, default=1)
    ap.add_argument('--mem', default='512')
    ap.add_argument('--stall', type=float, default=900,
                    help='seconds without console output taken as a hang')
    args = ap.parse_args()
    vmm = sysimg.vmm_from_args(args)
    kdir = sysimg.debian_kernel_dir()
    workdir = tempfile.mkdtemp(prefix='kvmpc-userspace-')
    initrd = sysimg.direct_boot_initramfs(
        os.path.join(workdir, 'initramfs.gz'), os.path.join(kdir, 'modules'))
    disk = os.path.join(workdir, 'data.img')
    with open(disk, 'wb') as f:
        f.truncate(DISK_BYTES)
    kernel = (os.path.join(kdir, 'vmlinux'), initrd, 'console=ttyS0')
    res = sysimg.boot(vmm, [disk], sysimg.DIRECT_STAGES, args.timeout or 5400,
                      cpus=args.cpus, mem=args.mem, stall=args.stall,
                      kernel=kernel)
    res.report(vmm.name, 'Debian kernel to /init (PVH), %d CPUs' % args.cpus)
    c = sysimg.Checker()
    for name, pattern in sysimg.DIRECT_STAGES:
        c.expect(res.stages[name] is not None,
                 'stage %s: /%s/ on the console' % (name, pattern))
    facts = sysimg.summary(res.log)
    for key, vals in sorted(facts.items()):
        print('  | %s=%s' % (key, ' ; '.join(vals)))
    sysimg.check_machine(c, facts, args.cpus)
    c.expect(facts.get('block.vda') == ['sectors=%d driver=virtio_blk' %
                                        (DISK_BYTES // 512)],
             'the disk has the size it was given (%s)' % facts.get('block.vda'))
    c.expect(res.status == sysimg.EXIT_POWEROFF,
             'poweroff -f (ACPI S5) ends the VM with status 0 (%s)' %
             res.outcome())
    shutil.rmtree(workdir, ignore_errors=True)
    return c.finish(res)


if __name__ == '__main__':
    sys.exit(main())
