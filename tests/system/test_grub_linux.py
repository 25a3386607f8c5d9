#!/usr/bin/env python3
"""Boots the small kernel from a GRUB disk (images/linux-disk.sh): GRUB
loads bzImage and the initramfs from ext4, the initramfs mounts the ext4
root on virtio-blk and switches to it, and its /sbin/init reports what Linux
found before powering off. Checks the CPU count, the virtio disk, IO-APIC
lines in /proc/interrupts, a DMI BIOS date, the root file system, and
that the power-off ends the VM with status 0.

usage: test_grub_linux.py KVMPC [--cpus N] [--append ARGS] | --qemu [--tcg]
"""
import sys

import sysimg


def check_summary(c, facts, cpus):
    sysimg.check_machine(c, facts, cpus)

    def one(key):
        vals = facts.get(key, [])
        return vals[0] if len(vals) == 1 else None

    c.expect(one('root.device') == '/dev/vda1' and
             one('root.fstype') == 'ext4',
             'the root file system is ext4 on /dev/vda1 (%s %s)' %
             (one('root.device'), one('root.fstype')))
    c.expect(one('root.driver') == 'virtio_blk' and
             (one('root.pci') or '').split()[-1].startswith(
                 sysimg.VIRTIO_VENDOR),
             'the root disk is virtio-blk on PCI (%s, %s)' %
             (one('root.driver'), one('root.pci')))


def main():
    ap = sysimg.arg_parser(__doc__)
    ap.add_argument('--cpus', type=int, default=1)
    ap.add_argument('--mem', default='512')
    # With several vCPUs on a host that emulates guest ring 0 (PVM), the
    # kernel can stay quiet for a long time: 4 vCPUs sharing the host with
    # other VMs were seen silent after "pnp: PnP ACPI init" for ~15
    # minutes before booting on normally. A real hang stays quiet.
    ap.add_argument('--stall', type=float, default=1800,
                    help='seconds without console output taken as a hang')
    ap.add_argument('--append', default='',
                    help='extra kernel arguments (a disk of its own)')
    args = ap.parse_args()
    vmm = sysimg.vmm_from_args(args)
    build_args = ['--append', args.append] if args.append else []
    image = sysimg.build('linux-disk.sh', *build_args)
    res = sysimg.boot(vmm, [image], sysimg.LINUX_STAGES,
                      args.timeout or 1500, cpus=args.cpus, mem=args.mem,
                      stall=args.stall)
    res.report(vmm.name, 'small kernel via GRUB, %d CPUs' % args.cpus)
    c = sysimg.Checker()
    for name, pattern in sysimg.LINUX_STAGES:
        c.expect(res.stages[name] is not None,
                 'stage %s: /%s/ on the console' % (name, pattern))
    facts = sysimg.summary(res.log)
    for key, vals in sorted(facts.items()):
        print('  | %s=%s' % (key, ' ; '.join(vals)))
    check_summary(c, facts, args.cpus)
    c.expect(res.status == sysimg.EXIT_POWEROFF,
             'poweroff -f (ACPI S5) ends the VM with status 0 (%s)' %
             res.outcome())
    return c.finish(res)


if __name__ == '__main__':
    sys.exit(main())
