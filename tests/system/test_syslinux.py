#!/usr/bin/env python3
"""Boots the syslinux disk: syslinux's mbr.bin chains to the FAT
partition's boot sector, ldlinux reads syslinux.cfg, prints its SAY line
and DISPLAY file, shows the boot: prompt, and after its timeout runs
poweroff.c32 (APM power-off through the firmware, ACPI underneath).

usage: test_syslinux.py KVMPC | --qemu
"""
import sys

import sysimg

STAGES = [sysimg.FIRMWARE, sysimg.BOOT_DISK,
          ('bootloader', r'SYSLINUX \d+\.\d+'),
          ('say', r'kvmpc-syslinux: syslinux.cfg read from the FAT partition'),
          ('display', r'kvmpc-syslinux: DISPLAY message.txt'),
          ('prompt', r'boot: ')]


def main():
    args = sysimg.arg_parser(__doc__).parse_args()
    vmm = sysimg.vmm_from_args(args)
    image = sysimg.build('syslinux.sh')
    res = sysimg.boot(vmm, [image], STAGES, args.timeout or 180)
    res.report(vmm.name, 'syslinux')
    c = sysimg.Checker()
    for name, pattern in STAGES:
        c.expect(res.stages[name] is not None,
                 'stage %s: /%s/ on the console' % (name, pattern))
    c.expect('Power off failed' not in res.log and
             'APM' not in res.log, 'poweroff.c32 reports no APM failure')
    c.expect(res.status == sysimg.EXIT_POWEROFF,
             'the default label powers off: status 0 (%s)' %
             res.outcome())
    prompt = res.stages['prompt']
    c.expect(prompt is not None and res.seconds - prompt >= 4,
             'the prompt stays up for the 5 s TIMEOUT (%.1f s)' %
             (res.seconds - (prompt or res.seconds)))
    return c.finish(res)


if __name__ == '__main__':
    sys.exit(main())
