# Shared helpers of the image builders (sourced, not run).
#
# Every result lives in ${KVMPC_CACHE:-/var/cache/kvmpc}/images/NAME-KEY,
# where KEY hashes everything the result is made from: the builder
# scripts, their configuration and the versions of the Debian packages
# whose files end up in it. This file only finds, locks and publishes
# results (it shapes no content), so it is part of no KEY. A result is
# built in a temporary directory beside it and renamed into place once
# complete, so a reader sees it whole or not at all; a lock serialises
# builders of the same result. Old results are not removed: worktrees of
# other branches may still use them.

img_root=${KVMPC_CACHE:-/var/cache/kvmpc}/images
img_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
img_self=$img_dir/${0##*/}         # the running builder, for its key

img_die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# img_need TOOL...: fails unless every tool is on PATH.
img_need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null ||
            img_die "$t is missing (see tests/system/images/README.md)"
    done
}

# img_pkg_version PKG: the installed version of a Debian package.
img_pkg_version() {
    dpkg-query -W -f='${Version}' "$1" 2>/dev/null ||
        img_die "Debian package $1 is not installed"
}

# img_key ITEM...: a short hash of the items; an item that is a path (has
# a slash) to a file stands for the file's contents, any other for itself.
img_key() {
    local item
    for item in "$@"; do
        if [[ $item == */* && -f $item ]]; then
            printf 'file %s\n' "${item##*/}"
            sha256sum <"$item"
        else
            printf 'value %s\n' "$item"
        fi
    done | sha256sum | cut -c1-16
}

# img_begin NAME KEY: sets img_out to the result directory. If the result
# exists, prints its path and exits the builder; otherwise takes the lock,
# creates the temporary directory img_tmp and arranges its removal.
img_begin() {
    img_out=$img_root/$1-$2
    if [ -d "$img_out" ]; then
        img_print_result
        exit 0
    fi
    mkdir -p "$img_root"
    exec {img_lock_fd}>"$img_root/.lock-$1-$2"
    flock "$img_lock_fd"
    if [ -d "$img_out" ]; then      # built by someone else meanwhile
        img_print_result
        exit 0
    fi
    img_tmp=$(mktemp -d "$img_root/.tmp-$1-$2.XXXXXX")
    chmod 755 "$img_tmp"
    trap 'rm -rf "$img_tmp"' EXIT
    img_started=$(date +%s)
}

# img_result_file: the file of the result directory that the builder
# prints as its result (empty: the directory itself).
img_result_file=
img_print_result() {
    if [ -n "$img_result_file" ]; then
        echo "$img_out/$img_result_file"
    else
        echo "$img_out"
    fi
}

# img_commit: publishes img_tmp as img_out and prints the result. The lock
# file goes once the result is in place (a builder still waiting on it then
# finds the result); after a failure it stays.
img_commit() {
    echo "$(( $(date +%s) - img_started )) s" >"$img_tmp/build-seconds"
    sync -f "$img_tmp"
    if ! mv -T "$img_tmp" "$img_out" 2>/dev/null; then
        [ -d "$img_out" ] || img_die "cannot publish $img_out"
        rm -rf "$img_tmp"               # another builder was first
    fi
    trap - EXIT
    rm -f "$img_root/.lock-${img_out##*/}"
    echo "${0##*/}: built $img_out in $(cat "$img_out/build-seconds")" >&2
    img_print_result
}

# img_run_builder SCRIPT ARG...: runs another builder, returns its result.
img_run_builder() {
    "$img_dir/$1" "${@:2}" | tail -n 1
}
