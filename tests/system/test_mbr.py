#!/usr/bin/env python3
"""Boots the mbr-hello disk: int 10h output, an int 13h read and an ACPI
power-off found by a boot sector's own table walk (images/mbr-hello.S).

usage: test_mbr.py KVMPC | --qemu
"""
import sys

import sysimg

STAGES = [sysimg.FIRMWARE, sysimg.BOOT_DISK,
          ('int10', r'mbr-hello: int 10h ok'),
          ('int13', r'int 13h: sector 1 says kvmpc-disk-ok'),
          ('acpi', r'ACPI PM1a_CNT=0x[0-9a-f]{4} SLP_TYP=[0-7]')]


def main():
    args = sysimg.arg_parser(__doc__).parse_args()
    vmm = sysimg.vmm_from_args(args)
    image = sysimg.build('mbr-hello.sh')
    res = sysimg.boot(vmm, [image], STAGES, args.timeout or 120)
    res.report(vmm.name, 'mbr-hello')
    c = sysimg.Checker()
    for name, pattern in STAGES:
        c.expect(res.stages[name] is not None,
                 'stage %s: /%s/ on the console' % (name, pattern))
    c.expect('FAIL' not in res.log, 'the boot sector reports no failure')
    c.expect(res.status == sysimg.EXIT_POWEROFF,
             'ACPI power-off ends the VM with status 0 (%s)' %
             res.outcome())
    return c.finish(res)


if __name__ == '__main__':
    sys.exit(main())
