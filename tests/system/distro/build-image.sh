#!/bin/bash
# Builds the distro suite's disk image: Debian 12 (bookworm) laid out the
# way the installer lays out a BIOS machine with one disk. An MBR partition
# table with one bootable ext4 root partition from 1 MiB; GRUB (grub-pc) in
# the MBR and the gap after it; Debian's stock kernel with its
# initramfs-tools initrd; systemd; a serial getty on ttyS0 that logs root in.
#
# mmdebstrap builds the tree (no loop device, nothing mounted from the
# image), mkfs.ext4 -d turns it into the root file system, grub_mbr.py
# writes GRUB's boot code as grub-install would.
#
# The result lives in ${KVMPC_CACHE:-/var/cache/kvmpc}/distro/debian12-KEY/
# (disk.img, info, packages, build-times), KEY being a hash of the build
# inputs: these scripts, the apt sources, the package list and the versions
# apt offers for the main packages. It is built beside and renamed into
# place, so a reader sees it whole or not at all. Tests never write to
# disk.img: they boot an overlay of it.
#
# usage: build-image.sh        prints the result directory (last line)
#   KVMPC_DISTRO_SOURCES=FILE  apt sources for the image (default: the
#                              host's Debian sources)
#   KVMPC_DISTRO_SLOW_HOST=1|0 build for a host that emulates guest ring 0
#                              (slow-host.sh: LZ4 initrd, longer timeouts);
#                              default 1 on PVM hosts, else 0
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KVMPC_CACHE:-/var/cache/kvmpc}/distro
suite=bookworm
variant=minbase
# mmdebstrap installs no Recommends; an installed system has those of
# initramfs-tools (zstd: the initrd's compression; busybox: its shell).
packages=(linux-image-amd64 initramfs-tools zstd busybox grub-pc systemd-sysv
          udev e2fsprogs util-linux kmod)
# On a host that emulates guest ring 0 the image gets what an administrator
# of such a slow machine would set (slow-host.sh); elsewhere Debian's
# defaults (a zstd initrd) stand.
slow_host=${KVMPC_DISTRO_SLOW_HOST:-}
if [ -z "$slow_host" ]; then
    slow_host=0
    [ -d /sys/module/kvm_pvm ] && slow_host=1
fi
case $slow_host in
0) initrd_compress=zstd ;;
1) initrd_compress=lz4; packages+=(lz4) ;;
*) echo "build-image.sh: KVMPC_DISTRO_SLOW_HOST=$slow_host: expected 0 or 1" >&2
   exit 1 ;;
esac
disk_mib=2048
part_start=2048                 # sectors: the partition starts at 1 MiB
host=kvmpc-distro

die() {
    echo "build-image.sh: $*" >&2
    exit 1
}

for tool in mmdebstrap mkfs.ext4 e2fsck sfdisk python3 sha256sum flock; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing (apt-get install mmdebstrap e2fsprogs fdisk python3)"
done
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap --mode=root, chroot)"

# The host's Debian sources (deb822 or one-line style), else mmdebstrap's
# default mirrors for the suite.
sources=${KVMPC_DISTRO_SOURCES:-}
if [ -z "$sources" ]; then
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [ -s "$f" ] && { sources=$f; break; }
    done
fi
[ -z "$sources" ] || [ -s "$sources" ] || die "$sources is empty or missing"

# candidate_versions: what apt would install for the main packages now,
# including the kernel package behind linux-image-amd64.
candidate_versions() {
    local kpkg
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$kpkg" ] || die "apt cannot resolve linux-image-amd64 (apt-get update?)"
    apt-cache policy "${packages[@]}" "$kpkg" systemd grub-pc-bin |
        awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}'
}

key=$( {
    for f in "$0" "$here/customize.sh" "$here/slow-host.sh" "$here/grub_mbr.py" \
             ${sources:+"$sources"}; do
        echo "file ${f##*/}"; sha256sum <"$f"
    done
    echo "$suite $variant ${packages[*]} $disk_mib $part_start $host $slow_host"
    candidate_versions
} | sha256sum | cut -c1-16)
out=$cache/debian12-$key
if [ -f "$out/disk.img" ]; then
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
exec {lock}>"$cache/.lock-$key"
flock "$lock"
if [ -f "$out/disk.img" ]; then          # built by someone else meanwhile
    echo "$out"
    exit 0
fi
tmp=$(mktemp -d "$cache/.tmp-$key.XXXXXX")
# mmdebstrap mounts /proc, /sys and /dev parts inside the tree while it
# works: never delete through a mount it left behind.
cleanup() {
    if grep -q " $tmp/" /proc/self/mounts; then
        echo "build-image.sh: leaving $tmp, mounts remain inside" >&2
    else
        rm -rf --one-file-system "$tmp"
    fi
}
trap cleanup EXIT
chmod 755 "$tmp"

# Identities derived from the key: the same inputs give the same UUIDs.
hex=$(printf 'kvmpc-distro %s' "$key" | sha256sum)
uuid=$(sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/' <<<"$hex")
machine_id=${hex:32:32}

stage_start=$(date +%s)
stage() {       # stage NAME: the seconds since the previous stage
    local now
    now=$(date +%s)
    printf '%-12s %5d s\n' "$1" $((now - stage_start)) >>"$tmp/build-times"
    echo "build-image.sh: $1 done in $((now - stage_start)) s" >&2
    stage_start=$now
}

root=$tmp/root
include=$(IFS=,; echo "${packages[*]}")
hooks=()
[ "$slow_host" = 0 ] || hooks=(--essential-hook="'$here/slow-host.sh' \"\$1\"")
echo "build-image.sh: mmdebstrap $suite ($variant + $include)" >&2
mmdebstrap --mode=root --variant="$variant" --include="$include" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    "${hooks[@]}" \
    --customize-hook="'$here/customize.sh' \"\$1\" $uuid $host $initrd_compress" \
    --customize-hook='chroot "$1" dpkg-query -W -f="\${Package} \${Version}\n" >"$1/../packages"' \
    "$suite" "$root" ${sources:+"$sources"} >"$tmp/mmdebstrap.log" 2>&1 ||
    { tail -n 40 "$tmp/mmdebstrap.log" >&2; die "mmdebstrap failed (log above)"; }
stage mmdebstrap
# An installed system has its machine id. mmdebstrap empties the file in
# its cleanup, after the customize hooks; left empty, every boot of the
# image is a "first boot" that starts systemd-machine-id-commit, which has
# 30 s to write the id and fails on a slow host.
echo "$machine_id" >"$root/etc/machine-id"

kernels=("$root"/lib/modules/*)
kver=${kernels[0]##*/}
# The installer formats with the target's mke2fs defaults: GRUB and the
# kernel of that release read every feature they enable.
psectors=$(( disk_mib * 2048 - part_start ))
MKE2FS_CONFIG=$root/etc/mke2fs.conf mkfs.ext4 -q -F -t ext4 -U "$uuid" \
    -d "$root" "$tmp/root.ext4" "$(( psectors / 2 ))k"
e2fsck -n -f "$tmp/root.ext4" >"$tmp/e2fsck.log" 2>&1 ||
    { cat "$tmp/e2fsck.log" >&2; die "the new root file system is not clean"; }
cp "$root/boot/grub/i386-pc/boot.img" "$root/boot/grub/i386-pc/core.img" "$tmp/"
rm -rf "$root"
stage mkfs.ext4

img=$tmp/disk.img
truncate -s "${disk_mib}M" "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" <<EOF
label: dos
label-id: 0x${hex:0:8}
start=$part_start, size=$psectors, type=83, bootable
EOF
dd if="$tmp/root.ext4" of="$img" bs=1M seek=$(( part_start / 2048 )) \
    conv=notrunc,sparse status=none
rm -f "$tmp/root.ext4"
python3 "$here/grub_mbr.py" "$img" "$tmp/boot.img" "$tmp/core.img"
rm -f "$tmp/boot.img" "$tmp/core.img"
stage disk

cat >"$tmp/info" <<EOF
root_uuid=$uuid
part_start_sectors=$part_start
part_sectors=$psectors
kernel=$kver
hostname=$host
slow_host=$slow_host
initrd_compress=$initrd_compress
EOF
sync -f "$tmp"
mv -T "$tmp" "$out"
trap - EXIT
echo "build-image.sh: built $out" >&2
echo "$out"
