#!/bin/bash
# Builds a busybox-static initramfs: mkinitramfs.sh OUT.cpio.gz INIT-SCRIPT
# The script becomes /init; busybox provides every applet.
set -euo pipefail
out=$1 init=$2
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
(cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -9 > "$out.tmp"
mv "$out.tmp" "$out"
