#!/bin/bash
# Builds the syslinux disk: an MBR (syslinux's mbr.bin) with one bootable
# FAT16 partition at 1 MiB on which `syslinux --install` (mtools, no
# mounting) put its boot sector and ldlinux.sys. syslinux.cfg prints a SAY
# line and a DISPLAY file, shows the "boot:" prompt for 5 s and then runs
# the default label, poweroff.c32 (APM power-off through the firmware).
# Prints the image path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

img_need mkfs.fat mcopy syslinux sfdisk dd truncate
mods=/usr/lib/syslinux/modules/bios
mbr=/usr/lib/syslinux/mbr/mbr.bin
for f in "$mbr" "$mods/poweroff.c32" "$mods/reboot.c32"; do
    [ -f "$f" ] || img_die "$f is missing (apt-get install syslinux-common)"
done
key=$(img_key "$img_self" "syslinux $(img_pkg_version syslinux)" \
    "syslinux-common $(img_pkg_version syslinux-common)" \
    "dosfstools $(img_pkg_version dosfstools)" \
    "mtools $(img_pkg_version mtools)" "fdisk $(img_pkg_version fdisk)")
img_result_file=syslinux.img
img_begin syslinux "$key"

start=2048                      # sectors: the partition at 1 MiB
mib=32
files=$img_tmp/files
mkdir -p "$files"
cat >"$files/syslinux.cfg" <<'CFG'
SAY kvmpc-syslinux: syslinux.cfg read from the FAT partition
DISPLAY message.txt
PROMPT 1
TIMEOUT 50
DEFAULT poweroff
LABEL poweroff
  COM32 poweroff.c32
LABEL reboot
  COM32 reboot.c32
CFG
printf 'kvmpc-syslinux: DISPLAY message.txt\r\nlabels: poweroff (default, in 5 s) reboot\r\n' \
    >"$files/message.txt"
cp "$mods/poweroff.c32" "$mods/reboot.c32" "$files/"
touch -d @1704067200 "$files"/*

part=$img_tmp/part.img
mkfs.fat -C -F 16 -n KVMPC-SYSL -i 4b564d50 --invariant -h "$start" \
    "$part" $(( (mib - 1) * 1024 )) >&2
mcopy -m -i "$part" "$files"/* ::/
syslinux --install "$part"

img=$img_tmp/syslinux.img
truncate -s "${mib}M" "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" <<SFD
label: dos
label-id: 0x4b564d51
start=$start, type=e, bootable
SFD
dd if="$mbr" of="$img" bs=440 count=1 conv=notrunc status=none
dd if="$part" of="$img" bs=512 seek="$start" conv=notrunc,sparse status=none
rm -rf "$files" "$part"
img_commit
