#!/bin/bash
# Crash test: a writer keeps writing through kvmpc's block layer while it
# is SIGKILLed at random moments. After every kill, 'qemu-img check' must
# find no errors (leaked clusters are allowed) and every write that an
# acknowledged flush covered must be in the image.
#
# usage: crash_test.sh CRASH_WRITER QEMU_IMG QEMU_IO [ROUNDS]
set -u
writer=$(realpath "$1") qimg=$2 qio=$3 rounds=${4:-100}
for t in "$writer" "$qimg" "$qio"; do
    [ -x "$t" ] || { echo "missing tool: $t (install qemu-utils)"; exit 1; }
done
work=$(mktemp -d /tmp/kvmpc-crash-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# Image kinds, taken in turn; each keeps its image and log across rounds.
setup() {
    case $1 in
    0) "$qimg" create -q -f qcow2 img0.qcow2 32M ;;
    1) "$qimg" create -q -f qcow2 -o cluster_size=512 img1.qcow2 32M ;;
    2) head -c 33554432 /dev/urandom > base2.raw &&
       "$qimg" create -q -f qcow2 -o cluster_size=4k -b base2.raw -F raw \
           img2.qcow2 ;;
    3) "$qimg" create -q -f qcow2 -o compat=0.10 img3.qcow2 32M &&
       "$qio" -f qcow2 -c 'write -P 0x3c 0 20M' img3.qcow2 >/dev/null &&
       "$qimg" snapshot -c before img3.qcow2 ;;
    4) "$qimg" create -q -f qcow2 -o cluster_size=2M,extended_l2=on \
           img4.qcow2 32M ;;
    esac && "$qimg" dd -f qcow2 -O raw if=img$1.qcow2 of=initial$1.raw \
        bs=1M count=16 >/dev/null && : > log$1
}

kinds=5
for k in $(seq 0 $((kinds - 1))); do
    setup $k || { echo "setup of image kind $k failed"; exit 1; }
done

fail() { echo "round $round (image kind $k): $*"; exit 1; }
start=$SECONDS
for round in $(seq 1 "$rounds"); do
    k=$((round % kinds))
    "$writer" write img$k.qcow2 log$k $((round * 7919)) 2>writer.err &
    pid=$!
    sleep "$(printf '0.%03d' $((RANDOM % 300 + 20)))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    status=$?
    [ $status -eq 137 ] || fail "the writer ended by itself ($status): $(cat writer.err)"
    # The kernel finishes the dead writer's io_uring requests and only then
    # drops its file lock: wait for that, as any next user of the image
    # would.
    for i in $(seq 100); do
        "$qimg" info -U img$k.qcow2 >/dev/null 2>&1 &&
            "$qimg" info img$k.qcow2 >/dev/null 2>&1 && break
        sleep 0.05
    done
    "$qimg" check img$k.qcow2 >check.out 2>&1
    rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 3 ] || { cat check.out; fail "qemu-img check: $rc"; }
    rm -f dump.raw
    "$qimg" dd -f qcow2 -O raw if=img$k.qcow2 of=dump.raw bs=1M count=16 \
        >/dev/null 2>&1 || fail "qemu-img dd"
    "$writer" verify dump.raw initial$k.raw log$k >verify.out ||
        { cat verify.out; fail "data lost or damaged"; }
done
# The snapshot taken before the rounds is intact.
"$qimg" convert -O raw -l snapshot.name=before img3.qcow2 snap.raw &&
    head -c 16777216 snap.raw | cmp -s - initial3.raw ||
    { echo "snapshot changed"; exit 1; }
echo "$rounds rounds in $((SECONDS - start)) s: clean and durable"
