#!/bin/bash
# mmdebstrap essential hook of build-image.sh for hosts that emulate guest
# ring 0 (PVM: ~1000 times slower than a CPU there). Debian's timeouts
# assume native speed; this sets what an administrator of such a slow
# machine would, before the kernel's initrd is generated:
# - initramfs-tools compresses the initrd with LZ4: Linux's zstd decoders
#   run BMI2 instructions that PVM cannot emulate in ring 0 nor hide from
#   the guest, and unpacking a zstd initrd took over an hour there;
# - the initramfs waits for udev's coldplug to finish (up to 30 minutes)
#   before it looks for the root disk: it gives up after 30 s by default,
#   and loading the disk's modules took ~8 minutes there;
# - systemd gives jobs and devices 30 minutes instead of 90 s.
#
# usage: slow-host.sh ROOT
set -euo pipefail
root=$1

mkdir -p "$root/etc/initramfs-tools/conf.d" \
    "$root/etc/initramfs-tools/scripts/local-top" \
    "$root/etc/systemd/system.conf.d"
echo COMPRESS=lz4 >"$root/etc/initramfs-tools/conf.d/compress"

settle=$root/etc/initramfs-tools/scripts/local-top/udev-settle-slow-host
cat >"$settle" <<'SCRIPT'
#!/bin/sh
# Waits for udev's coldplug before the root disk is looked for: on a host
# that emulates ring 0 it takes minutes, and the initramfs gives up after 30 s.
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in
prereqs) prereqs; exit 0 ;;
esac
udevadm settle --timeout=1800 || true
SCRIPT
chmod 755 "$settle"

cat >"$root/etc/systemd/system.conf.d/slow-host.conf" <<'CONF'
# The guest's ring 0 is emulated on this host: give jobs time.
[Manager]
DefaultTimeoutStartSec=30min
DefaultDeviceTimeoutSec=30min
CONF
