#!/bin/bash
# A brief fuzzing run for CI: seed corpus, then SECONDS of fuzzing.
# usage: run_fuzz.sh HARNESS CORPUS_GENERATOR SECONDS [generator args...]
set -eu
harness=$(realpath "$1") gen=$2 secs=$3
shift 3
work=$(mktemp -d /tmp/kvmpc-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$gen" "$work/corpus" "$@"
cd "$work"
"$harness" -max_total_time="$secs" -max_len=65536 -timeout=20 \
    -rss_limit_mb=4096 -close_fd_mask=2 corpus
