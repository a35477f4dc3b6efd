#!/usr/bin/env bash
# Regenerate the pacer lab's figures in docs/img/pacer/ and print the tables docs/pacer.md
# quotes (paste them in by hand: the prose around them reads the numbers).
#
#   scripts/pacer_docs.sh [OUT_DIR]     (default target/pacer-docs; about a minute)
#
# The replay figures come from real heaps (lab/pacer/tests/replay.rs keeps its traces), so
# their real-run rows vary from run to run on a busy machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/pacer-docs}
lab() { cargo run --quiet --release -p pacer-lab -- "$@"; }
rm -rf "$out" && mkdir -p "$out/traces"
out=$(realpath "$out") # the replay test runs in lab/pacer/
echo "## every built-in scenario"
lab run --all --out "$out"
echo "## comparisons"
lab compare steady --a policy=proportional --b sqrt_c=1e-8 --out "$out"
lab compare live-ramp --a gogc=100 --b sqrt_c=1e-8 --out "$out"
lab compare exceed-memory-limit --a limiter_bucket=100ms --b limiter_bucket=1s --out "$out"
lab compare osc-alloc --a cons_mark_window=2 --b cons_mark_window=1 --out "$out"
lab run osc-alloc --set cons_mark_window=8 --no-plots --out "$out/window8"
echo "## trace replay against real runs"
PACER_LAB_KEEP_TRACES="$out/traces" cargo test --quiet --release -p pacer-lab --test replay
for g in 50 200; do
  lab replay "$out/traces/recorded-100.csv" --set gogc=$g --against "$out/traces/real-$g.csv" \
    --out "$out/replay-$g"
  cp "$out/replay-$g/recorded-100-replay.svg" "$out/replay-gogc$g.svg"
done
mkdir -p docs/img/pacer
rm -f docs/img/pacer/*.svg
for f in "$out"/*.svg; do
  cp "$f" docs/img/pacer/
done
echo "docs/img/pacer: $(ls docs/img/pacer | wc -l) figures from $out"
