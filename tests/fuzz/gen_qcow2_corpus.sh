#!/bin/bash
# Seed corpus for fuzz_qcow2: small images of every kind QEMU makes.
# usage: gen_qcow2_corpus.sh OUTDIR [QEMU_IMG [QEMU_IO]]
set -eu
out=$1 qi=${2:-qemu-img} qio=${3:-qemu-io}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
n=0
seed() { cp "$1" "$out/seed-$n.qcow2"; n=$((n + 1)); }
data() { "$qio" -f qcow2 -c 'write -P 0x41 0 3k' -c 'write -z 8k 2k' \
    -c 'write -P 0x42 20k 1k' "$1" >/dev/null; }
for opts in cluster_size=512 compat=0.10,cluster_size=512 \
    cluster_size=512,refcount_bits=1 cluster_size=512,refcount_bits=64 \
    cluster_size=1k,lazy_refcounts=on extended_l2=on,cluster_size=16k; do
    rm -f i.qcow2
    "$qi" create -q -f qcow2 -o "$opts" i.qcow2 64k
    seed i.qcow2
    data i.qcow2
    seed i.qcow2
done
# Backing file name and format, internal snapshot, dirty image.
"$qi" create -q -f qcow2 -o cluster_size=512 b.qcow2 64k
"$qi" create -q -f qcow2 -o cluster_size=512 -b b.qcow2 -F qcow2 o.qcow2
data o.qcow2 && seed o.qcow2
"$qi" snapshot -c snap o.qcow2 && "$qio" -f qcow2 -c 'write -P 7 0 1k' \
    o.qcow2 >/dev/null && seed o.qcow2
"$qi" create -q -f qcow2 -o cluster_size=512,lazy_refcounts=on d.qcow2 64k
(ulimit -c 0; "$qio" -f qcow2 -c 'write -P 1 0 2k' -c abort d.qcow2 \
    >/dev/null 2>&1 || true) 2>/dev/null
seed d.qcow2
# Compressed clusters, zlib and zstd.
head -c 32768 /dev/zero | tr '\0' 'x' > src.raw
for c in zlib zstd; do
    "$qi" convert -c -O qcow2 -o cluster_size=4k,compression_type=$c \
        src.raw c.qcow2
    seed c.qcow2
done
echo "$n seeds in $out"
