# GRUB disk assembly (sourced by the builders after lib.sh).
#
# grub_disk IMG ROOTDIR SIZE_MIB: writes IMG, an MBR-partitioned disk of
# SIZE_MIB MiB whose partition 1 (from 1 MiB, bootable, type 83) is an ext4
# file system holding ROOTDIR, which must contain /boot/grub/grub.cfg. GRUB
# from grub-pc-bin boots it the way grub-install would arrange it, without
# a block device: boot.img in the MBR (partition table kept), core.img in
# the gap after the MBR (sectors 1..2047) with the modules built in and its
# prefix pointing at (hd0,msdos1)/boot/grub.

grub_lib=/usr/lib/grub/i386-pc
grub_part_start=2048                    # sectors: partition 1 at 1 MiB
grub_modules="biosdisk part_msdos ext2 normal configfile terminal echo ls
    cat test sleep search search_fs_uuid search_label halt reboot linux
    acpi"

# grub_inputs: the facts a GRUB disk depends on besides its files.
grub_inputs() {
    echo "grub-pc-bin $(img_pkg_version grub-pc-bin)" \
         "e2fsprogs $(img_pkg_version e2fsprogs)" \
         "fdisk $(img_pkg_version fdisk)"
}

grub_need() {
    img_need grub-mkimage sfdisk mkfs.ext4 debugfs dd truncate python3
    [ -f "$grub_lib/boot.img" ] ||
        img_die "$grub_lib/boot.img is missing (apt-get install grub-pc-bin)"
}

# grub_core OUT: core.img with the modules above built in.
grub_core() {
    # shellcheck disable=SC2086
    grub-mkimage -O i386-pc -d "$grub_lib" -p '(hd0,msdos1)/boot/grub' \
        -o "$1" $grub_modules
    local sectors=$(( ($(stat -c %s "$1") + 511) / 512 ))
    [ "$sectors" -lt "$grub_part_start" ] ||
        img_die "core.img ($sectors sectors) does not fit before the partition"
}

# grub_boot_code IMG CORE: core.img into sectors 1.. and boot.img into the
# MBR, patched as grub-bios-setup patches them for a hard disk. (That tool
# needs the GRUB directory on a block device it can open: it cannot set up
# a plain image file.)
grub_boot_code() {
    python3 - "$1" "$2" "$grub_lib/boot.img" <<'PY'
import struct, sys
img, core_path, boot_path = sys.argv[1:]
# boot.img fields
KERNEL_SECTOR = 0x5c    # u64: LBA of core.img's first sector
BOOT_DRIVE = 0x64       # u8: 0xff = use the drive the BIOS passes in DL
DRIVE_CHECK = 0x66      # 2-byte jmp that a hard-disk setup turns into NOPs
CODE_END = 440          # disk signature and partition table follow
# The blocklist at the end of core.img's first sector (diskboot.img) says
# where the rest of core.img lies: {u64 start, u16 sectors, u16 segment}.
BLOCKLIST = 0x1f4
core = open(core_path, 'rb').read()
sectors = (len(core) + 511) // 512
start, count, _ = struct.unpack_from('<QHH', core, BLOCKLIST)
if (start, count) != (2, sectors - 1):
    sys.exit('grub.sh: unexpected core.img blocklist %d+%d' % (start, count))
boot = open(boot_path, 'rb').read()
if len(boot) != 512 or boot[DRIVE_CHECK] != 0xeb:
    sys.exit('grub.sh: unexpected boot.img')
with open(img, 'r+b') as f:
    mbr = bytearray(f.read(512))
    mbr[:CODE_END] = boot[:CODE_END]
    mbr[KERNEL_SECTOR:KERNEL_SECTOR + 8] = struct.pack('<Q', 1)
    mbr[BOOT_DRIVE] = 0xff
    mbr[DRIVE_CHECK:DRIVE_CHECK + 2] = b'\x90\x90'
    f.seek(0)
    f.write(mbr)
    f.write(core)
PY
}

# grub_ext4 PART ROOTDIR SIZE_SECTORS KEY: the root file system image. Its
# UUID and hash seed derive from KEY and every time stamp is fixed, so the
# same inputs give the same bytes (mkfs.ext4 -d copies atime and ctime from
# the files; debugfs sets them afterwards).
grub_epoch=1704067200
grub_ext4() {
    local part=$1 root=$2 sectors=$3 key=$4
    local uuid
    uuid=$(printf '%s' "$key" | sha256sum |
           sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/')
    export E2FSPROGS_FAKE_TIME=$grub_epoch
    mkfs.ext4 -q -F -L kvmpc-root -U "$uuid" \
        -E "hash_seed=$uuid,root_owner=0:0" -d "$root" \
        "$part" "$(( sectors / 2 ))k" >&2
    { (cd "$root" && find . -mindepth 1 | cut -c2-); echo /; echo /lost+found; } |
        while IFS= read -r path; do
            for field in atime ctime mtime crtime; do
                echo "sif \"$path\" $field @$grub_epoch"
                echo "sif \"$path\" ${field}_extra 0"
            done
        done >"$part.times"
    debugfs -w -f "$part.times" "$part" >/dev/null 2>"$part.log" ||
        { cat "$part.log" >&2; img_die "debugfs failed on $part"; }
    ! grep -v '^debugfs [0-9.]* (' "$part.log" >&2 ||
        img_die "debugfs could not set the time stamps (above)"
    rm -f "$part.times" "$part.log"
    unset E2FSPROGS_FAKE_TIME
}

grub_disk() {
    local img=$1 root=$2 mib=$3
    [ -f "$root/boot/grub/grub.cfg" ] || img_die "$root has no /boot/grub/grub.cfg"
    local total=$(( mib * 2048 ))
    local psize=$(( total - grub_part_start ))
    rm -f "$img"
    truncate -s "${mib}M" "$img"
    sfdisk --quiet --no-reread --no-tell-kernel "$img" <<SFD
label: dos
label-id: 0x4b564d50
start=$grub_part_start, size=$psize, type=83, bootable
SFD
    grub_ext4 "$img.part" "$root" "$psize" "$(basename "$img") $mib"
    dd if="$img.part" of="$img" bs=512 seek="$grub_part_start" \
        conv=notrunc,sparse status=none
    rm -f "$img.part"
    grub_core "$img.core"
    grub_boot_code "$img" "$img.core"
    rm -f "$img.core"
}
