#!/usr/bin/env python3
"""Debian's stock kernel booted by GRUB from a disk image through SeaBIOS:
the same early-boot evidence as the direct-boot test (linux_early_boot.py)
— the e820 map as the firmware reports it, ACPI/MADT SMP configuration,
the CPU count, the IOAPIC and a DMI line. The run stops once all appeared.

The stock bzImage is xz-compressed; where guest ring 0 is emulated (PVM
hosts) its decompression alone takes tens of minutes, hence suite 'slow'.

usage: test_grub_debian.py KVMPC [--cpus N] | --qemu
"""
import os
import re
import subprocess
import sys

import sysimg

HERE = os.path.dirname(os.path.abspath(__file__))


def early_boot_stages(cpus):
    return [
        sysimg.FIRMWARE, sysimg.BOOT_DISK,
        ('bootloader', r'Welcome to GRUB|kvmpc-grub: loading'),
        ('kernel', r'Linux version \d'),
        ('e820', r'BIOS-e820: \[mem 0x0000000000100000-'),
        ('dmi', r'DMI: \S'),
        ('ioapic', r'IOAPIC\[0\]: apic_id 0, version \d+, address '
                   r'0xfec00000, GSI 0-23'),
        ('madt', re.escape('ACPI: Using ACPI (MADT) for SMP configuration '
                           'information')),
        ('cpus', re.escape('smpboot: Allowing %d CPUs, 0 hotplug CPUs'
                           % cpus)),
    ]


def main():
    ap = sysimg.arg_parser(__doc__)
    ap.add_argument('--cpus', type=int, default=1)
    args = ap.parse_args()
    vmm = sysimg.vmm_from_args(args)
    kdir = subprocess.run([os.path.join(HERE, 'debian-kernel.sh')],
                          check=True, capture_output=True,
                          text=True).stdout.split()[-1]
    image = sysimg.build('linux-disk.sh', '--kernel',
                         os.path.join(kdir, 'vmlinuz'), '--append',
                         'earlyprintk=serial')
    stages = early_boot_stages(args.cpus)
    res = sysimg.boot(vmm, [image], stages, args.timeout or 5400,
                      cpus=args.cpus, stop_at='cpus', stall=1800)
    res.report(vmm.name, 'Debian kernel via GRUB, %d CPUs' % args.cpus)
    c = sysimg.Checker()
    for name, pattern in stages:
        c.expect(res.stages[name] is not None,
                 'stage %s: /%s/ on the console' % (name, pattern))
    for line in res.log.splitlines():
        if re.search(r'BIOS-e820|DMI:|IOAPIC\[0\]|MADT|smpboot: Allowing',
                     line):
            print('  | ' + line.strip())
    return c.finish(res)


if __name__ == '__main__':
    sys.exit(main())
