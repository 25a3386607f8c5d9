#!/bin/bash
# mmdebstrap customize hook of build-image.sh: turns the freshly bootstrapped
# tree ROOT into what the Debian installer would leave on the root
# partition: hostname, fstab with the root by UUID, a serial
# getty with root logged in automatically, GRUB's files under /boot/grub
# (modules, core.img, grubenv, grub.cfg), all without a block device. It
# also checks that the initramfs can find the root disk (virtio, ext4).
#
# usage: customize.sh ROOT ROOT_UUID HOSTNAME INITRD_COMPRESS
set -euo pipefail
root=$1 uuid=$2 host=$3 compress=$4

die() {
    echo "customize.sh: $*" >&2
    exit 1
}

# The one kernel that linux-image-amd64 pulled in.
kernels=("$root"/lib/modules/*)
[ ${#kernels[@]} -eq 1 ] && [ -d "${kernels[0]}" ] ||
    die "expected exactly one kernel under /lib/modules, found: ${kernels[*]}"
kver=${kernels[0]##*/}
[ -f "$root/boot/vmlinuz-$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] ||
    die "/boot lacks vmlinuz-$kver or initrd.img-$kver"

echo "$host" >"$root/etc/hostname"
cat >"$root/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$host

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
cat >"$root/etc/fstab" <<EOF
# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=$uuid /               ext4    errors=remount-ro 0       1
EOF

# systemd's getty generator starts serial-getty@ttyS0 for console=ttyS0;
# this drop-in logs root in there (Debian's ExecStart plus --autologin).
dropin=$root/etc/systemd/system/serial-getty@ttyS0.service.d
mkdir -p "$dropin"
cat >"$dropin/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - $TERM
EOF

# The initramfs (initramfs-tools, MODULES=most) must reach a virtio disk.
grep -qx 'MODULES=most' "$root/etc/initramfs-tools/initramfs.conf" ||
    die "initramfs.conf does not say MODULES=most"
listing=$(chroot "$root" lsinitramfs "/boot/initrd.img-$kver")
# The compression build-image.sh chose; mkinitramfs silently falls back to
# gzip when the kernel lacks a decompressor.
magic=$(od -An -tx1 -N4 "$root/boot/initrd.img-$kver" | tr -d ' ')
case $compress:$magic in
zstd:28b52ffd|lz4:02214c18|gzip:1f8b*|xz:fd377a58) ;;
*) die "the initrd starts with $magic, not $compress data" ;;
esac
settle=scripts/local-top/udev-settle-slow-host  # slow-host.sh's, if it ran
if [ -e "$root/etc/initramfs-tools/$settle" ]; then
    grep -q "^$settle\$" <<<"$listing" || die "the initramfs lacks $settle"
fi
for mod in virtio_pci virtio_blk ext4; do
    grep -q "/$mod\.ko" <<<"$listing" ||
        die "the initramfs lacks $mod.ko"
done

# GRUB as grub-install lays it out for a BIOS disk: the modules under
# /boot/grub/i386-pc, a core.img that finds the root file system by UUID,
# an empty grubenv. build-image.sh writes boot.img and core.img to the disk.
grubdir=$root/boot/grub
mkdir -p "$grubdir/i386-pc"
cp "$root"/usr/lib/grub/i386-pc/*.mod "$root"/usr/lib/grub/i386-pc/*.lst \
    "$root"/usr/lib/grub/i386-pc/boot.img "$grubdir/i386-pc/"
cat >"$grubdir/i386-pc/load.cfg" <<EOF
search.fs_uuid $uuid root hd0,msdos1
set prefix=(\$root)'/boot/grub'
EOF
chroot "$root" grub-mkimage -O i386-pc -d /usr/lib/grub/i386-pc \
    -c /boot/grub/i386-pc/load.cfg -p '(hd0,msdos1)/boot/grub' \
    -o /boot/grub/i386-pc/core.img biosdisk part_msdos ext2 search_fs_uuid
chroot "$root" grub-editenv /boot/grub/grubenv create

# The settings a serial-console install has; update-grub in the guest
# regenerates the grub.cfg below from them. The serial terminal alone: the
# BIOS console may itself be redirected to the serial port (SeaBIOS's
# sercon), which would print every line twice.
mkdir -p "$root/etc/default/grub.d"
cat >"$root/etc/default/grub.d/serial.cfg" <<'EOF'
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200n8"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1"
EOF
# grub-mkconfig needs the root device mounted to probe it, so grub.cfg is
# written here the way it writes it for those settings. No "quiet": the
# kernel's log on the serial console marks the boot stages.
cat >"$grubdir/grub.cfg" <<EOF
# Written by kvmpc's tests/system/distro/customize.sh in the form
# update-grub gives for /etc/default/grub.d/serial.cfg.
if [ -s \$prefix/grubenv ]; then
  load_env
fi
set default="0"
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial
terminal_output serial
set timeout_style=menu
set timeout=1
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $uuid
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os {
	insmod gzio
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root $uuid
	echo	'Loading Linux $kver ...'
	linux	/boot/vmlinuz-$kver root=UUID=$uuid ro console=ttyS0,115200n8
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-$kver
}
EOF
