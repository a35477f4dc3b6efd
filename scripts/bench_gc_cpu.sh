#!/usr/bin/env bash
# Where the collector's CPU goes, two builds of gc-core and Go 1.19 side by side: binary-trees
# (depth 21), treechurn (256 MiB live, 10 000 ops) and msgbuf (200 000 × 1 KiB, 10M pushes).
# Runs the three implementations interleaved, RUNS times each (default 3), and prints per
# workload the median of each figure: wall, peak RSS, GC CPU as Go 1.19's GCCPUFraction counts it
# (`gc_cpu_go`: assists, background marking, pauses × CPUs ÷ wall × CPUs; for gc-core also
# `gc_cpu_go_last_cycle`, the same at the end of its last cycle, where Go 1.19 last updates its
# figure) and, for gc-core, the
# CPU seconds by class (background, assist and idle marking, pauses × CPUs, background sweeping,
# scavenging, the rest of the collector threads' time, and the collector threads' clocks in all).
#
#   scripts/bench_gc_cpu.sh BEFORE_TARGET_DIR AFTER_TARGET_DIR [RUNS]
#
# Each target dir must hold release builds of the examples binary_trees, treechurn and msgbuf
# (cargo build --release --examples -p gc-examples) that print the CPU breakdown (`cpu_*_s`).
# Go's twins are built from benches/go (apt-get install golang-1.19-go; skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE="$1"; AFTER="$2"; RUNS="${3:-3}"
impls="before after"
if scripts/build_go_twins.sh; then impls="before after go"; fi
keys="wall_s rss_mib gc_cpu_go gc_cpu_go_last_cycle cpu_bg_s cpu_assist_s cpu_idle_s cpu_pause_s cpu_sweep_s cpu_scav_bg_s cpu_scav_assist_s cpu_other_s cpu_threads_s"
# The median (the mean of the middle two of an even count, as the harness's and the lab's).
med() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else if (NR) print (a[NR/2]+a[NR/2+1])/2; else print "—"}'; }
declare -A res
run() { # impl workload
  local cmd
  case "$1" in
    before) d="$BEFORE/release/examples" ;;
    after) d="$AFTER/release/examples" ;;
  esac
  case "$1-$2" in
    go-binary-trees) cmd=(target/release/binarytrees-go 21) ;;
    go-treechurn) cmd=(target/release/treechurn-go -live-mib 256 -ops 10000) ;;
    go-msgbuf) cmd=(target/release/msgbuf-go) ;;
    *-binary-trees) cmd=("$d/binary_trees" 21) ;;
    *-treechurn) cmd=("$d/treechurn" --live-mib 256 --ops 10000) ;;
    *-msgbuf) cmd=("$d/msgbuf") ;;
  esac
  local out t
  out=$( { /usr/bin/time -f "time_wall=%e time_rss_kb=%M" "${cmd[@]}" | tail -1; } 2>&1 | tr '\n' ' ')
  t=" $out"
  res[$1,$2,wall_s]+="$(echo "$t" | grep -o " time_wall=[0-9.]*" | cut -d= -f2)"$'\n'
  res[$1,$2,rss_mib]+="$(echo "$t" | grep -o " time_rss_kb=[0-9]*" | cut -d= -f2 | awk '{printf "%.0f", $1/1024}')"$'\n'
  for k in $keys; do
    case $k in wall_s|rss_mib) continue ;; esac
    v=$(echo "$t" | grep -o " $k=[0-9.]*" | cut -d= -f2 || true)
    [ -n "$v" ] && res[$1,$2,$k]+="$v"$'\n'
  done
  return 0
}
for _ in $(seq "$RUNS"); do
  for w in binary-trees treechurn msgbuf; do
    for i in $impls; do run "$i" "$w"; done
  done
done
for w in binary-trees treechurn msgbuf; do
  echo
  echo "### $w"
  echo
  echo "| figure | ${impls// / | } |"
  echo "|---|$(for _ in $impls; do printf -- '---:|'; done)"
  for k in $keys; do
    row="| $k |"
    for i in $impls; do row+=" $(printf '%s' "${res[$i,$w,$k]:-}" | med) |"; done
    echo "$row"
  done
done
