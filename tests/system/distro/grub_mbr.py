#!/usr/bin/env python3
"""Writes GRUB's BIOS boot code into a disk image file, as grub-install
(grub-bios-setup) arranges it on a hard disk, without a block device.

usage: grub_mbr.py IMAGE BOOT_IMG CORE_IMG

boot.img goes into the MBR (its code area only: the disk signature and the
partition table already in IMAGE stay), core.img into the gap between the
MBR and the first partition, from sector 1. The fields grub-bios-setup
patches are set here:
  boot.img 0x5c  u64  LBA of core.img's first sector (1)
  boot.img 0x64  u8   boot drive: 0xff = the drive the firmware passes in DL
  boot.img 0x66  jmp  the floppy-drive check, turned into NOPs for a disk
  boot.img 0x03..0x5a the BIOS parameter block area, kept from the old MBR
  core.img 0x1f4 the blocklist {u64 LBA, u16 sectors, u16 segment} of the
                 rest of core.img, which must say "from sector 2, all of it"
"""
import struct
import sys

SECTOR = 512
KERNEL_SECTOR = 0x5c
BOOT_DRIVE = 0x64
DRIVE_CHECK = 0x66
BPB_START, BPB_END = 0x03, 0x5a
CODE_END = 440              # disk signature, partition table, 0x55aa follow
BLOCKLIST = 0x1f4
JMP_SHORT = 0xeb


def first_partition_lba(mbr):
    """The lowest start LBA among the used primary partition entries."""
    starts = []
    for i in range(4):
        entry = mbr[446 + 16 * i:446 + 16 * (i + 1)]
        ptype, start = entry[4], struct.unpack_from('<I', entry, 8)[0]
        if ptype:
            starts.append(start)
    if not starts:
        sys.exit('grub_mbr: the partition table is empty')
    return min(starts)


def boot_sector(old_mbr, boot):
    if len(boot) != SECTOR or boot[DRIVE_CHECK] != JMP_SHORT:
        sys.exit('grub_mbr: unexpected boot.img')
    if old_mbr[510:512] != b'\x55\xaa':
        sys.exit('grub_mbr: the image has no MBR partition table')
    mbr = bytearray(old_mbr)
    mbr[:CODE_END] = boot[:CODE_END]
    mbr[BPB_START:BPB_END] = old_mbr[BPB_START:BPB_END]
    mbr[KERNEL_SECTOR:KERNEL_SECTOR + 8] = struct.pack('<Q', 1)
    mbr[BOOT_DRIVE] = 0xff
    mbr[DRIVE_CHECK:DRIVE_CHECK + 2] = b'\x90\x90'
    return bytes(mbr)


def check_core(core, gap_sectors):
    sectors = (len(core) + SECTOR - 1) // SECTOR
    if sectors > gap_sectors:
        sys.exit('grub_mbr: core.img (%d sectors) does not fit in the %d '
                 'sectors before the first partition' % (sectors, gap_sectors))
    start, count, _ = struct.unpack_from('<QHH', core, BLOCKLIST)
    if (start, count) != (2, sectors - 1):
        sys.exit('grub_mbr: core.img blocklist says %d+%d, expected 2+%d'
                 % (start, count, sectors - 1))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    image, boot_path, core_path = sys.argv[1:]
    with open(boot_path, 'rb') as f:
        boot = f.read()
    with open(core_path, 'rb') as f:
        core = f.read()
    with open(image, 'r+b') as f:
        old_mbr = f.read(SECTOR)
        check_core(core, first_partition_lba(old_mbr) - 1)
        f.seek(0)
        f.write(boot_sector(old_mbr, boot))
        f.write(core)


if __name__ == '__main__':
    main()
