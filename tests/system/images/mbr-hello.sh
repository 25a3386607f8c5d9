#!/bin/bash
# Builds the mbr-hello disk (see mbr-hello.S): a 4 MiB raw image with the
# boot sector in sector 0 and a known text in sector 1, which the boot
# sector reads through int 13h and prints. Prints the image path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

img_need as ld
key=$(img_key "$img_self" "$img_dir/mbr-hello.S" \
    "$(as --version | head -n 1)" "$(ld --version | head -n 1)")
img_result_file=mbr-hello.img
img_begin mbr-hello "$key"

as --32 -o "$img_tmp/mbr.o" "$img_dir/mbr-hello.S"
ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$img_tmp/mbr.bin" \
    "$img_tmp/mbr.o"
[ "$(stat -c %s "$img_tmp/mbr.bin")" = 512 ] ||
    img_die "the boot sector is not 512 bytes"
img=$img_tmp/mbr-hello.img
truncate -s 4M "$img"
dd if="$img_tmp/mbr.bin" of="$img" conv=notrunc status=none
printf 'sector 1 says kvmpc-disk-ok\0' |
    dd of="$img" bs=512 seek=1 conv=notrunc status=none
rm "$img_tmp/mbr.o"
img_commit
