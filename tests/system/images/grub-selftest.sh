#!/bin/bash
# Builds the grub-selftest disk: GRUB (grub.sh) reads its grub.cfg from an
# ext4 partition, lists the partitions and the root directory, prints a
# test file between two markers and halts (ACPI power-off). No kernel.
# Prints the image path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$img_dir/grub.sh"

grub_need
key=$(img_key "$0" "$img_dir/grub.sh" "$(grub_inputs)")
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
echo "kvmpc-grub: end, halting"
halt
CFG
grub_disk "$img_tmp/grub-selftest.img" "$root" 32
rm -rf "$root"
img_commit
