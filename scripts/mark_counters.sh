#!/usr/bin/env bash
# Hardware counters per marked object (cycles, instructions, LLC references and misses, L1D and
# dTLB read misses; CPU time), every heap shape and marker, for one or more builds of the
# `mark_counters` harness side by side:
#
#   scripts/mark_counters.sh [LABEL=PATH ...]     (default: now=target/release/mark_counters)
#
# Build it with `cargo build --release -p gc-benches --bin mark_counters`. It needs a machine
# whose PMU a process may use (this project's 2-core VM has none: the harness exits with
# status 2 there, and `--software` still gives the CPU time). Prints one line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- now=target/release/mark_counters
runs=(
  "random --workers 1" "random --workers 1 --span-marking" "random" "random --span-marking"
  "in-order --workers 1" "in-order --workers 1 --span-marking" "in-order" "in-order --span-marking"
  "ring --workers 1" "ring" "ring --ring 200000 --workers 1" "ring --ring 200000"
  "arrays --workers 1"
)
for r in "${runs[@]}"; do
  for b in "$@"; do
    # shellcheck disable=SC2086
    echo "build=${b%%=*} $("${b#*=}" $r ${MARK_COUNTERS_FLAGS:-})"
  done
done
