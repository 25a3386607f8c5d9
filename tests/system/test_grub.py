#!/usr/bin/env python3
"""Boots the grub-selftest disk: GRUB (boot.img + core.img from
grub-pc-bin) reads grub.cfg from ext4 on virtio-blk through int 13h, lists
the partitions and the root directory, prints a file and halts (ACPI).

usage: test_grub.py KVMPC | --qemu
"""
import re
import sys

import sysimg

STAGES = [sysimg.FIRMWARE, sysimg.BOOT_DISK,
          ('bootloader', r'GRUB loading'),
          ('grub.cfg', r'kvmpc-grub: begin'),
          ('end marker', r'kvmpc-grub: end')]


def section(log, first, last):
    """The console text between two marker lines of grub.cfg."""
    m = re.search(re.escape(first) + r'\n(.*?)' + re.escape(last), log, re.S)
    return m.group(1) if m else ''


def main():
    args = sysimg.arg_parser(__doc__).parse_args()
    vmm = sysimg.vmm_from_args(args)
    image = sysimg.build('grub-selftest.sh')
    res = sysimg.boot(vmm, [image], STAGES, args.timeout or 180)
    res.report(vmm.name, 'grub-selftest')
    c = sysimg.Checker()
    for name, pattern in STAGES:
        c.expect(res.stages[name] is not None,
                 'stage %s: /%s/ on the console' % (name, pattern))
    parts = section(res.log, 'kvmpc-grub: ls', 'kvmpc-grub: ls (hd0')
    c.expect(re.search(r'\(hd0\) \(hd0,msdos1\)', parts) is not None,
             'ls shows (hd0) and its partition (hd0,msdos1): %r' %
             parts.strip())
    files = section(res.log, 'kvmpc-grub: ls (hd0,msdos1)/',
                    'kvmpc-grub: cat')
    c.expect(all(f in files.split() for f in ('boot/', 'hello.txt')),
             'ls (hd0,msdos1)/ shows boot/ and hello.txt: %r' %
             files.strip())
    text = section(res.log, 'kvmpc-grub: cat', 'kvmpc-grub: end')
    c.expect('kvmpc grub selftest file: ext4 read ok' in text,
             'cat prints the test file from ext4')
    c.expect(res.status == sysimg.EXIT_POWEROFF,
             "GRUB's halt (ACPI) ends the VM with status 0 (%s)" %
             res.outcome())
    return c.finish(res)


if __name__ == '__main__':
    sys.exit(main())
