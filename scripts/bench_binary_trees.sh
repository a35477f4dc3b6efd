#!/usr/bin/env bash
# binary-trees, gc-core vs Box, same binary, alternating runs; prints each run's last line and
# the medians. Usage: scripts/bench_binary_trees.sh [DEPTH=21] [RUNS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
depth="${1:-21}"; runs="${2:-5}"
cargo build --quiet --release --example binary_trees
bin=target/release/examples/binary_trees
out=$(mktemp)
for i in $(seq "$runs"); do
  for mode in "" "--box"; do
    $bin "$depth" $mode | tail -1 | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics
rows = [dict(kv.split("=") for kv in l.split()) for l in open(sys.argv[1]) if l.strip()]
med = {}
for mode in ("gc", "box"):
    r = [x for x in rows if x["mode"] == mode]
    med[mode] = {k: statistics.median(float(x[k]) for x in r) for k in ("wall_ms", "rss_peak_mib")}
    extra = ""
    if mode == "gc":
        for k in ("gc_cycles", "pause_total_ms", "pause_max_us", "mark_total_ms"):
            extra += f" {k}={statistics.median(float(x[k]) for x in r):g}"
    print(f"median {mode}: wall_ms={med[mode]['wall_ms']:g} rss_peak_mib={med[mode]['rss_peak_mib']:g}{extra} (n={len(r)})")
print(f"ratio gc/box: time {med['gc']['wall_ms']/med['box']['wall_ms']:.2f}x, peak RSS {med['gc']['rss_peak_mib']/med['box']['rss_peak_mib']:.2f}x")
PY
rm -f "$out"
