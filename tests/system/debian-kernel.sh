#!/bin/bash
# Fetches Debian's stock kernel (package linux-image-amd64) without
# installing it, unpacks it under the cache and extracts the uncompressed
# vmlinux (PVH entry) and the virtio modules an initramfs needs to see a
# virtio-blk disk (Debian builds them as modules). Prints the cache directory
# holding vmlinuz, vmlinux, config and modules/ (with a file "order": the
# modules in load order). Cached: later runs are instant.
set -euo pipefail
cache=${KVMPC_CACHE:-/var/cache/kvmpc}
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
      awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
    echo "debian-kernel: cannot resolve linux-image-amd64 (apt-get update?)" >&2
    exit 1
fi
dir=$cache/$pkg
# Load order: every module after those it depends on.
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
         virtio_pci virtio_blk)
if [ ! -s "$dir/vmlinux" ] || [ ! -s "$dir/modules/order" ]; then
    mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt-get download -q "$pkg" >/dev/null 2>&1 ||
        apt-get download "$pkg")
    rm -rf "$dir/x"
    dpkg-deb -x "$dir"/deb/*.deb "$dir/x"
    cp "$dir"/x/boot/vmlinuz-* "$dir/vmlinuz"
    cp "$dir"/x/boot/config-* "$dir/config"
    python3 - "$dir/vmlinuz" "$dir/vmlinux.tmp" <<'PY'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
start = data.find(b'\xfd7zXZ\x00')
if start < 0:
    sys.exit("debian-kernel: no xz payload in the bzImage")
out = lzma.LZMADecompressor().decompress(data[start:])
open(sys.argv[2], 'wb').write(out)
PY
    mv "$dir/vmlinux.tmp" "$dir/vmlinux"
    rm -rf "$dir/modules" && mkdir -p "$dir/modules"
    for m in "${modules[@]}"; do
        ko=$(find "$dir/x/lib/modules" -name "$m.ko" | head -n 1)
        [ -n "$ko" ] || { echo "debian-kernel: $m.ko not in $pkg" >&2; exit 1; }
        cp "$ko" "$dir/modules/"
        echo "$m.ko" >>"$dir/modules/order.tmp"
    done
    mv "$dir/modules/order.tmp" "$dir/modules/order"
    rm -rf "$dir/x" "$dir/deb"
fi
echo "$dir"
