#!/usr/bin/env bash
# gc-core under a soft memory limit, two builds and Go 1.19 side by side: treechurn (256 MiB live)
# under GOMEMLIMIT=384MiB (the live heap has room) and 200MiB (the live heap is over the limit:
# the death spiral the GC CPU limiter is for), msgbuf under 300MiB (Go: 295MiB, the same multiple
# of its live heap; tables in docs/benchmarks.md before the twenty-seventh session gave Go 300MiB
# too) and binary-trees (depth 21) under 160MiB. Runs each workload ROUNDS times (default 3), the three implementations
# interleaved, and prints one line per run with the harnesses' figures:
#
#   scripts/bench_memory_limit.sh BEFORE_TARGET_DIR AFTER_TARGET_DIR [ROUNDS] | sort -s -k1,2
#
# Each target dir must hold release builds of the examples binary_trees, treechurn and msgbuf
# (cargo build --release --examples -p gc-examples). Go's twins are built from benches/go
# (scripts/build_go_twins.sh; skipped without Go 1.19).
set -euo pipefail
cd "$(dirname "$0")/.."
B="$1/release/examples"; A="$2/release/examples"; ROUNDS="${3:-3}"
impls="before after"
if scripts/build_go_twins.sh; then impls="before after go"; fi
keys='wall_ms|heap_peak_mib|rss_peak_mib|gc_cpu_go|gc_cpu_go_last_cycle|op_p99_us|op_max_us|push_p999_us|push_max_us|limited_cycles|peak_over_goal|median_over_goal|gc_cycles'
for _ in $(seq "$ROUNDS"); do
  for w in tc384 tc200 mb300 bt160; do
    for impl in $impls; do
      case $impl in before) d=$B ;; after) d=$A ;; go) d= ;; esac
      case $w in
        tc384|tc200)
          limit=${w#tc}MiB
          if [ -z "$d" ]; then cmd=(target/release/treechurn-go -live-mib 256 -ops 30000)
          else cmd=("$d/treechurn" --live-mib 256 --ops 30000); fi ;;
        mb300)
          # Go's limit the same multiple of its own live heap as gc-core's (a message takes a
          # 1040-byte slot on gc-core, 1024 bytes on Go), as scripts/bench_pacer.sh does.
          limit=300MiB
          if [ -z "$d" ]; then cmd=(target/release/msgbuf-go); limit=$((300 * 1024 / 1040))MiB
          else cmd=("$d/msgbuf"); fi ;;
        bt160)
          limit=160MiB
          if [ -z "$d" ]; then cmd=(target/release/binarytrees-go 21)
          else cmd=("$d/binary_trees" 21); fi ;;
      esac
      out=$(GOMEMLIMIT=$limit "${cmd[@]}" 2>/dev/null | tail -1 | tr ' ' '\n' | grep -E "^($keys)=" | tr '\n' ' ')
      echo "$w $impl $out"
    done
  done
done
