#!/usr/bin/env bash
# Side-by-side timing of two builds of gc-core (e.g. before and after a protocol change) on the
# headline workloads: binary-trees 21 (wall, peak RSS), treechurn 256 MiB (STW and op latency),
# msgbuf (push latency, STW), the Lox VM on binary_trees.lox; and the GC CPU of the first three
# (gc_cpu_go: Go 1.19's definition; gc_cpu_frac: the collector threads' own clocks, of all CPUs;
# cpu_other_s: collector-thread CPU seconds no class booked). Medians of RUNS runs, the two
# builds interleaved run by run so machine noise hits both alike.
#
#   scripts/bench_before_after.sh BEFORE_TARGET_DIR AFTER_TARGET_DIR [RUNS]
#
# Each target dir must hold release builds of the examples binary_trees, treechurn, msgbuf and
# the lox binary (cargo build --release --example binary_trees --example treechurn
# --example msgbuf -p gc-examples; cargo build --release -p lox).
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B="$2"; RUNS="${3:-3}"
# The median (the mean of the middle two of an even count, as the harness's and the lab's).
med() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else if (NR) print (a[NR/2]+a[NR/2+1])/2}'; }
field() { grep -o " $1=[0-9.]*" | cut -d= -f2; }
declare -A res
run() { # label dir
  local d="$2" t
  t=$( { /usr/bin/time -f "wall=%e rss_kb=%M" "$d/release/examples/binary_trees" 21 | tail -1; } 2>&1 | tail -2 | tr '\n' ' ')
  res[$1,bt_wall]+="$(echo " $t" | field wall)"$'\n'
  res[$1,bt_rss]+="$(echo " $t" | field rss_kb)"$'\n'
  for k in gc_cpu_go cpu_other_s; do res[$1,bt_$k]+="$(echo " $t" | field $k)"$'\n'; done
  t=" $("$d/release/examples/treechurn" --live-mib 256 --ops 20000 | tail -1)"
  for k in stw_max_us stw_p99_us op_max_us op_p99_us gc_cpu_frac gc_cpu_go cpu_other_s; do res[$1,tc_$k]+="$(echo "$t" | field $k)"$'\n'; done
  t=" $("$d/release/examples/msgbuf" | tail -1)"
  for k in push_max_us push_p999_us stw_max_us wall_ms gc_cpu_frac gc_cpu_go cpu_other_s; do res[$1,mb_$k]+="$(echo "$t" | field $k)"$'\n'; done
  t=$( { /usr/bin/time -f "wall=%e" "$d/release/lox" examples/lox/bench/binary_trees.lox >/dev/null; } 2>&1 | tail -1)
  res[$1,lox_wall]+="$(echo " $t" | field wall)"$'\n'
}
for _ in $(seq "$RUNS"); do run before "$A"; run after "$B"; done
echo "| figure | before | after |"
echo "|---|---:|---:|"
for k in bt_wall bt_rss bt_gc_cpu_go bt_cpu_other_s tc_stw_max_us tc_stw_p99_us tc_op_max_us tc_op_p99_us \
  tc_gc_cpu_frac tc_gc_cpu_go tc_cpu_other_s mb_wall_ms mb_push_max_us mb_push_p999_us mb_stw_max_us \
  mb_gc_cpu_frac mb_gc_cpu_go mb_cpu_other_s lox_wall; do
  echo "| $k | $(printf '%s' "${res[before,$k]}" | med) | $(printf '%s' "${res[after,$k]}" | med) |"
done
