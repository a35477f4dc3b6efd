#!/usr/bin/env bash
# Pacing side by side with Go 1.19: treechurn (256 MiB live) and msgbuf (200000 × 1 KiB
# messages, 10M pushes) at GOGC=50/100/200 and with a memory limit, on gc-core and on Go
# (benches/go; apt-get install golang-1.19-go), RUNS times each (default 3). Prints one markdown
# row per configuration with the median of each figure over the runs: peak heap ÷ goal
# (gc-core: heap at mark termination ÷ the cycle's goal; Go: heap sampled every 2 ms ÷ goal;
# both after the harness's warm-up cycles), heap peak (mapped and not released) and RSS peak,
# GC CPU fraction as Go's GCCPUFraction counts it (assists, mark workers, pauses × CPUs ÷ wall ×
# CPUs; at the end of the last cycle on both sides, where Go 1.19 last updates it)
# and, for gc-core, the CPU share of all its collector threads (sweeping and scavenging
# included), cycles, and the latency figures (STW max; treechurn op max; msgbuf push p99.9
# and max).
#
#   scripts/bench_pacer.sh [RUNS] [TREECHURN_OPS] [MSGBUF_PUSHES]
#   WORKLOADS=msgbuf scripts/bench_pacer.sh 3     # one workload only
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
OPS="${2:-10000}"
PUSHES="${3:-10000000}"
cargo build -q --release --example treechurn --example msgbuf
impls="gc"
if scripts/build_go_twins.sh; then impls="gc go"; fi

# median of the values of key $1 in the lines on stdin
# The median (the mean of the middle two of an even count, as the harness's and the lab's).
med() { grep -o " $1=[0-9.]*" | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else if (NR) print (a[NR/2]+a[NR/2+1])/2}'; }

# The memory limit as the same multiple of each implementation's own live heap: a treechurn
# node is 32 bytes on both (objects have no header), but a msgbuf message takes a 1040-byte slot
# on gc-core (1 KiB and its length word, in a length-header size class) against Go's 1024, so Go
# gets the msgbuf limit scaled down by that ratio (320MiB → 315MiB).
go_limit() { # workload limit-in-MiB
  case "$1" in
    treechurn) echo "$2MiB" ;;
    msgbuf) echo "$(($2 * 1024 / 1040))MiB" ;;
  esac
}

run() { # impl workload env...
  local impl=$1 w=$2; shift 2
  if [ "$impl" = go ]; then
    local args=() a n
    for a in "$@"; do
      case "$a" in
        GOMEMLIMIT=*MiB) n=${a#GOMEMLIMIT=}; n=${n%MiB}; a="GOMEMLIMIT=$(go_limit "$w" "$n")" ;;
      esac
      args+=("$a")
    done
    set -- "${args[@]}"
  fi
  local bin
  case "$impl-$w" in
    gc-treechurn) bin=(target/release/examples/treechurn --live-mib 256 --ops "$OPS") ;;
    go-treechurn) bin=(target/release/treechurn-go -live-mib 256 -ops "$OPS") ;;
    gc-msgbuf) bin=(target/release/examples/msgbuf --pushes "$PUSHES") ;;
    go-msgbuf) bin=(target/release/msgbuf-go -pushes "$PUSHES") ;;
  esac
  [ -n "${BENCH_ECHO:-}" ] && echo "$impl $w $*" >&2
  env "$@" "${bin[@]}" | tail -1
}

for w in ${WORKLOADS:-treechurn msgbuf}; do
  echo
  echo "### $w"
  echo
  if [ "$w" = treechurn ]; then
    echo "| impl | setting | peak ÷ goal | heap peak MiB | RSS peak MiB | GC CPU | collector threads | cycles | STW max µs | op max µs |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    limit=384MiB
  else
    echo "| impl | setting | peak ÷ goal | heap peak MiB | RSS peak MiB | GC CPU | collector threads | cycles | STW max µs | push p99.9 µs | push max µs |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    limit=320MiB
  fi
  for setting in GOGC=50 GOGC=100 GOGC=200 "GOMEMLIMIT=$limit" "GOGC=off GOMEMLIMIT=$limit"; do
    for impl in $impls; do
      out=""
      for _ in $(seq "$RUNS"); do
        # shellcheck disable=SC2086
        out+=" $(run "$impl" "$w" $setting)"$'\n'
      done
      shown=$setting
      if [ "$impl" = go ]; then
        case "$setting" in *GOMEMLIMIT=*) n=${setting##*GOMEMLIMIT=}; n=${n%MiB}; shown="${setting%GOMEMLIMIT=*}GOMEMLIMIT=$(go_limit "$w" "$n")" ;; esac
      fi
      row="| $impl | \`$shown\` | $(echo "$out" | med peak_over_goal) | $(echo "$out" | med heap_peak_mib) | $(echo "$out" | med rss_peak_mib) | $( [ "$impl" = gc ] && echo "$out" | med gc_cpu_go_last_cycle || echo "$out" | med gc_cpu_go) | $( [ "$impl" = gc ] && echo "$out" | med gc_cpu_frac || echo –) | $(echo "$out" | med gc_cycles) | $(echo "$out" | med stw_max_us)"
      if [ "$w" = treechurn ]; then
        echo "$row | $(echo "$out" | med op_max_us) |"
      else
        echo "$row | $(echo "$out" | med push_p999_us) | $(echo "$out" | med push_max_us) |"
      fi
    done
  done
done
