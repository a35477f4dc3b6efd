#!/usr/bin/env bash
# treechurn at 256 and 1024 MiB live with 1, 2 and 4 mutators, plus the Box baseline and, when
# Go 1.19 is installed (apt-get install golang-1.19-go), the same workload in Go
# (benches/go/treechurn), RUNS times each (default 3), then the machine's own latency floor
# (hiccups, 1 and 2 spinning threads). Prints one markdown row per configuration with the
# median of each figure over the runs.
#
#   scripts/bench_treechurn.sh [RUNS] [OPS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
OPS="${2:-20000}"
cargo build -q --release --example treechurn --example hiccups
tc=target/release/examples/treechurn
GO=/usr/lib/go-1.19/bin/go
gotc=""
if [ -x "$GO" ]; then
  (cd benches/go && "$GO" build -o ../../target/release/treechurn-go ./treechurn)
  gotc=target/release/treechurn-go
fi

# median of the values of key $1 in the lines on stdin
# The median (the mean of the middle two of an even count, as the harness's and the lab's).
med() { grep -o " $1=[0-9.]*" | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else if (NR) print (a[NR/2]+a[NR/2+1])/2}'; }

echo "| live MiB | mutators | STW p50 µs | STW p99 µs | STW max µs | op p50 µs | op p99 µs | op max µs | ops > 2 ms | cycles | GC CPU (Go's def.) | heap peak MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in 256 1024; do
  for m in 1 2 4 box ${gotc:+go1 go2 go4}; do
    out=""
    for _ in $(seq "$RUNS"); do
      case "$m" in
        box) out+=" $($tc --live-mib "$n" --ops "$OPS" --box | tail -1)"$'\n' ;;
        go*) out+=" $($gotc -live-mib "$n" -ops "$OPS" -mutators "${m#go}" | tail -1)"$'\n' ;;
        *) out+=" $($tc --live-mib "$n" --ops "$OPS" --mutators "$m" | tail -1)"$'\n' ;;
      esac
    done
    row="| $n | $m"
    # GC CPU at the end of the last cycle, where Go 1.19 last updates its GCCPUFraction.
    for k in stw_p50_us stw_p99_us stw_max_us op_p50_us op_p99_us op_max_us ops_over_2ms gc_cycles gc_cpu_go_last_cycle; do
      row+=" | $(printf '%s' "$out" | med $k)"
    done
    if [ "$m" = box ]; then
      row+=" | $(printf '%s' "$out" | med rss_peak_mib) (RSS) |"
    elif [[ "$m" = go* ]]; then
      row="| $n | Go 1.19, ${m#go}"
      for k in stw_p50_us stw_p99_us stw_max_us op_p50_us op_p99_us op_max_us ops_over_2ms gc_cycles gc_cpu_go; do
        row+=" | $(printf '%s' "$out" | med $k)"
      done
      row+=" | $(printf '%s' "$out" | med heap_peak_mib) |"
    else
      row+=" | $(printf '%s' "$out" | med heap_peak_mib) |"
    fi
    echo "$row"
  done
done
echo
for t in 1 2; do target/release/examples/hiccups --threads $t --secs 5; done
