#!/bin/bash
# Builds the grub-selftest disk: GRUB (grub.sh) reads its grub.cfg from an
# ext4 partition, lists the partitions and the root directory, prints a
# test file between markers and halts (ACPI power-off; a second's pause
# first lets the firmware's serial console flush). No kernel.
# Prints the image path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$img_dir/grub.sh"

grub_need
key=$(img_key "$img_self" "$img_dir/grub.sh" "$(grub_inputs)")
img_result_file=grub-selftest.img
img_begin grub-selftest "$key"

root=$img_tmp/root
mkdir -p "$root/boot/grub"
echo "kvmpc grub selftest file: ext4 read ok" >"$root/hello.txt"
cat >"$root/boot/grub/grub.cfg" <<'CFG'
set timeout=0
terminal_output console
echo "kvmpc-grub: begin"
echo "kvmpc-grub: ls"
ls
echo "kvmpc-grub: ls (hd0,msdos1)/"
ls (hd0,msdos1)/
echo "kvmpc-grub: cat"
cat (hd0,msdos1)/hello.txt
echo "kvmpc-grub: end"
echo "kvmpc-grub: halting"
sleep 1
halt
CFG
grub_disk "$img_tmp/grub-selftest.img" "$root" 32
rm -rf "$root"
img_commit
