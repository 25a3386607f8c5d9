#!/bin/bash
# Builds the small test kernel from Debian's linux-source-6.1: tinyconfig
# plus kernel.config, no modules. Prints the result directory holding
# bzImage (LZ4), vmlinux (uncompressed ELF with the PVH note) and config.
# Cached by the hash of this script, the fragment, the source package and
# compiler versions; a cold build takes long (see README.md).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

img_need make gcc ld bison flex bc lz4 perl tar xz
src=/usr/src/linux-source-6.1.tar.xz
[ -f "$src" ] || img_die "$src is missing (apt-get install linux-source-6.1)"
frag=$img_dir/kernel.config
jobs=${KVMPC_JOBS:-$(nproc)}
key=$(img_key "$img_self" "$frag" \
    "$(img_pkg_version linux-source-6.1)" "$(gcc --version | head -n 1)" \
    "$(ld --version | head -n 1)")
img_begin kernel "$key"

echo "kernel.sh: unpacking $src" >&2
tar -xJf "$src" -C "$img_tmp"
k=$img_tmp/linux-source-6.1
m() { make -C "$k" ARCH=x86_64 KBUILD_BUILD_USER=kvmpc \
           KBUILD_BUILD_HOST=kvmpc KBUILD_BUILD_TIMESTAMP=2024-01-01 "$@"; }
m -s tinyconfig >&2
(cd "$k" && scripts/kconfig/merge_config.sh -m .config "$frag") >/dev/null
m -s olddefconfig >&2

# Kconfig silently drops options whose dependencies are unmet.
missing=0
while IFS= read -r line; do
    case $line in
    CONFIG_*) grep -qxF "$line" "$k/.config" || { echo "  $line" >&2; missing=1; } ;;
    "# CONFIG_"*" is not set")
        sym=${line#\# }; sym=${sym%% *}
        ! grep -q "^$sym=" "$k/.config" || { echo "  $line" >&2; missing=1; } ;;
    esac
done <"$frag"
[ "$missing" = 0 ] || img_die "kernel.config lines not honoured by Kconfig (above)"

echo "kernel.sh: make -j$jobs bzImage vmlinux" >&2
start=$(date +%s)
m -s -j"$jobs" bzImage vmlinux >&2
echo "$(( $(date +%s) - start )) s with -j$jobs" >"$img_tmp/compile-seconds"
cp "$k/arch/x86/boot/bzImage" "$img_tmp/bzImage"
cp "$k/vmlinux" "$img_tmp/vmlinux"
cp "$k/.config" "$img_tmp/config"
m -s kernelrelease >"$img_tmp/release"
rm -rf "$k"
img_commit
