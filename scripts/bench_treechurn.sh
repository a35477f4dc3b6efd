#!/usr/bin/env bash
# treechurn at 256 and 1024 MiB live with 1, 2 and 4 mutators, plus the Box baseline, RUNS times
# each (default 3), then the machine's own latency floor (hiccups, 1 and 2 spinning threads).
# Prints one markdown row per configuration with the median of each figure over the runs.
#
#   scripts/bench_treechurn.sh [RUNS] [OPS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
OPS="${2:-20000}"
cargo build -q --release --example treechurn --example hiccups
tc=target/release/examples/treechurn

# median of the values of key $1 in the lines on stdin
med() { grep -o " $1=[0-9.]*" | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| live MiB | mutators | STW p50 µs | STW p99 µs | STW max µs | op p50 µs | op p99 µs | op max µs | ops > 2 ms | cycles | GC CPU | heap peak MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in 256 1024; do
  for m in 1 2 4 box; do
    out=""
    for _ in $(seq "$RUNS"); do
      if [ "$m" = box ]; then
        out+=" $($tc --live-mib "$n" --ops "$OPS" --box | tail -1)"$'\n'
      else
        out+=" $($tc --live-mib "$n" --ops "$OPS" --mutators "$m" | tail -1)"$'\n'
      fi
    done
    row="| $n | $m"
    for k in stw_p50_us stw_p99_us stw_max_us op_p50_us op_p99_us op_max_us ops_over_2ms gc_cycles gc_cpu_frac; do
      row+=" | $(printf '%s' "$out" | med $k)"
    done
    if [ "$m" = box ]; then
      row+=" | $(printf '%s' "$out" | med rss_peak_mib) (RSS) |"
    else
      row+=" | $(printf '%s' "$out" | med heap_peak_mib) |"
    fi
    echo "$row"
  done
done
echo
for t in 1 2; do target/release/examples/hiccups --threads $t --secs 5; done
