#!/bin/sh
# Runs every libFuzzer harness in a build directory for a few seconds,
# starting from the seeds make-seeds.py writes (and from seed directories
# other harnesses keep next to this script: seeds/<harness>/).
#
# usage: run-short.sh BUILD_DIR [SECONDS]   (default 10 per harness)
# BUILD_DIR is the -Dfuzz=true build directory or its tests/fuzz/.
# Exit status: non-zero if a harness crashed or none was found.
set -eu

dir=${1:?usage: run-short.sh BUILD_DIR [SECONDS]}
[ -d "$dir/tests/fuzz" ] && dir="$dir/tests/fuzz"
secs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 "$here/make-seeds.py" "$work/seeds"

found=0
for bin in "$dir"/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    found=$((found + 1))
    corpus="$work/corpus/$name"
    mkdir -p "$corpus"
    for seeds in "$work/seeds/$name" "$here/seeds/$name"; do
        if [ -d "$seeds" ]; then
            cp -r "$seeds/." "$corpus/"
        fi
    done
    echo "== $name: ${secs}s"
    # Crash artefacts go to the scratch directory, not the source tree.
    "$bin" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$work/" "$corpus" 2>"$work/$name.log" || {
        tail -n 60 "$work/$name.log"
        for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
            [ -f "$a" ] || continue
            cp "$a" "$dir/$name-$(basename "$a")"
            echo "reproducer saved: $dir/$name-$(basename "$a")"
        done
        echo "$name FAILED"
        exit 1
    }
    grep -E 'stat::number_of_executed_runs|cov:' "$work/$name.log" | tail -n 2
done

if [ "$found" -eq 0 ]; then
    echo "no fuzz_* harness in $dir" >&2
    exit 1
fi
echo "all $found harnesses ran ${secs}s without a crash"
