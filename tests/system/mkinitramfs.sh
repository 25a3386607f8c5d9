#!/bin/bash
# Builds a busybox-static initramfs:
#   mkinitramfs.sh OUT.cpio.gz INIT-SCRIPT [SRC=DEST ...]
# The script becomes /init; busybox provides every applet; each SRC (a file
# or a directory) is copied to DEST inside the initramfs; scripts (#!)
# become executable.
set -euo pipefail
out=$1 init=$2
shift 2
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkinitramfs: busybox-static is not installed" >&2; exit 1; }
file -L "$bb" | grep -q "statically linked" ||
    { echo "mkinitramfs: $bb is not static (install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,dev,proc,sys,tmp,etc,mnt,root,usr/bin,usr/sbin}
cp "$bb" "$tmp/bin/busybox"
for a in $("$bb" --list); do
    [ "$a" = busybox ] || ln -s busybox "$tmp/bin/$a"
done
install -m 755 "$init" "$tmp/init"
for pair in "$@"; do
    src=${pair%%=*} dest=${pair#*=}
    [ -e "$src" ] || { echo "mkinitramfs: $src does not exist" >&2; exit 1; }
    mkdir -p "$(dirname "$tmp/$dest")"
    if [ -f "$src" ] && [ "$(head -c 2 "$src")" = '#!' ]; then
        install -m 755 "$src" "$tmp/$dest"
    else
        cp -a "$src" "$tmp/$dest"
    fi
done
(cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -9 -n > "$out.tmp"
mv "$out.tmp" "$out"
