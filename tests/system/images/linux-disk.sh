#!/bin/bash
# Builds a Debian-style boot disk for the small kernel (kernel.sh): an MBR
# disk whose ext4 partition 1 holds /boot/bzImage, /boot/initramfs.gz,
# /boot/grub/grub.cfg (GRUB from grub.sh boots the kernel with
# root=/dev/vda1 console=ttyS0 and the initramfs) and a busybox-static
# userland whose /sbin/init (rootfs-init) prints a summary of the machine
# and powers off. The initramfs (initramfs-init) mounts the root partition
# and switches to it.
#
# usage: linux-disk.sh [--demo] [--append ARGS]
#   --demo         the root file system gives a shell instead of powering off
#   --append ARGS  extra kernel command line arguments
# Prints the image path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$img_dir/grub.sh"

name=linux-test
append=
while [ $# -gt 0 ]; do
    case $1 in
    --demo) name=linux-demo; shift ;;
    --append) append=${2?--append needs an argument}; shift 2 ;;
    *) img_die "usage: linux-disk.sh [--demo] [--append ARGS]" ;;
    esac
done
grub_need
img_need cpio gzip
bb=/bin/busybox
[ -x "$bb" ] && file -L "$bb" | grep -q 'statically linked' ||
    img_die "$bb is missing or not static (apt-get install busybox-static)"
kernel=$(img_run_builder kernel.sh)
[ -f "$kernel/bzImage" ] || img_die "kernel.sh gave no bzImage"
cmdline="root=/dev/vda1 console=ttyS0${append:+ $append}"
key=$(img_key "$img_self" "$img_dir/grub.sh" \
    "$img_dir/initramfs-init" "$img_dir/rootfs-init" "$(grub_inputs)" \
    "busybox-static $(img_pkg_version busybox-static)" "$kernel" \
    "$name" "$cmdline")
img_result_file=$name.img
img_begin "$name" "$key"

# busybox_tree DIR: busybox with every applet as a link to it.
busybox_tree() {
    local dir=$1 applet
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc}
    cp "$bb" "$dir/bin/busybox"
    for applet in $("$bb" --list-full); do
        [ -e "$dir/$applet" ] || ln -s /bin/busybox "$dir/$applet"
    done
}

# The initramfs: busybox and /init, as a reproducible newc cpio.
initrd=$img_tmp/initrd
busybox_tree "$initrd"
install -m 755 "$img_dir/initramfs-init" "$initrd/init"
root=$img_tmp/root
busybox_tree "$root"
mkdir -p "$root/boot/grub"
find "$initrd" -exec touch -h -d @"$grub_epoch" {} +
(cd "$initrd" && find . | LC_ALL=C sort |
    cpio -o -H newc --quiet -R 0:0 --reproducible) |
    gzip -9 -n >"$root/boot/initramfs.gz"
rm -rf "$initrd"

cp "$kernel/bzImage" "$root/boot/bzImage"
install -m 755 "$img_dir/rootfs-init" "$root/sbin/init"
[ "$name" = linux-demo ] && echo "shell instead of power-off" >"$root/etc/kvmpc-demo"
cat >"$root/boot/grub/grub.cfg" <<CFG
set timeout=0
terminal_output console
echo "kvmpc-grub: loading /boot/bzImage"
linux /boot/bzImage $cmdline
echo "kvmpc-grub: loading /boot/initramfs.gz"
initrd /boot/initramfs.gz
echo "kvmpc-grub: booting"
boot
CFG
grub_disk "$img_tmp/$name.img" "$root" 64
rm -rf "$root"
img_commit
