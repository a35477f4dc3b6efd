#!/usr/bin/env bash
# binary-trees (benchmarks game) side by side: gc-core with concurrent marking (the default),
# gc-core stop-the-world (GCCORE_CONCURRENT=0), Go 1.19 (benches/go/binarytrees; skipped with a
# message where /usr/lib/go-1.19/bin/go, or $GO, is absent: apt-get install golang-1.19-go) and
# Box (the same Rust binary with --box: malloc/free, no GC). RUNS rounds, each running the four
# one after the other (alternating, so that the machine's drift hits all of them), at DEPTH.
# Every run must print the same benchmarks-game lines (checked); each run's key=value line goes
# to stderr, and one markdown table of medians to stdout:
#
#   wall s; peak RSS MiB (each program's own VmHWM, rss_peak_mib); peak and median heap ÷ goal
#   (gc-core: the largest and the median heap at mark termination ÷ that cycle's goal from the
#   second cycle to start after the long-lived tree is built (the first whose goal comes from a
#   mark of the whole live heap; both programs print or use the same point), exact, from the
#   cycle records; Go: allocs − frees ÷ goal sampled every 2 ms while nothing is being swept, so
#   from below; see benches/go/report); gc-core's steady cycles in which the GC CPU limiter was
#   on during the mark phase (assists off, so the heap may pass the goal by design) and the worst
#   heap ÷ goal of the others; GC CPU (Go 1.19's GCCPUFraction definition on both:
#   assists, background mark workers and pauses × CPUs ÷ (wall × CPUs), idle-priority marking
#   left out; gc_cpu_go); cycles; longest stop-the-world
#   pause in ms (gc-core: exact, from the stop request; Go: the upper bound of its
#   /gc/pauses:seconds histogram bucket); then wall time and peak RSS as ratios of the medians
#   to Go's and to Box's.
#
# Extra settings (GOGC=50, GOMEMLIMIT=…, GCCORE_MARK_WORKERS=1, …) apply to gc-core and Go
# alike: set them in the environment or pass them as VAR=VALUE arguments after RUNS
# (GCCORE_CONCURRENT is set by the script for the two gc-core rows). An argument
# gc:VAR=VALUE[&VAR=VALUE…] adds a row: gc-core, concurrent, with those settings on top (e.g. a
# GOGC or pacer knob to set beside Go at its default).
#
#   scripts/bench_binary_trees.sh [DEPTH=21] [RUNS=5] [VAR=VALUE | gc:VAR=VALUE[&…] ...]
#   e.g. scripts/bench_binary_trees.sh 21 5 GOGC=50
#        scripts/bench_binary_trees.sh 21 3 gc:GOGC=80 gc:GCCORE_PACER=min_trigger=0.875
set -euo pipefail
cd "$(dirname "$0")/.."
depth="${1:-21}"
runs="${2:-5}"
shift $(($# < 2 ? $# : 2))
extra=()
variants=()
for kv in "$@"; do
  [[ "$kv" == *=* ]] || { echo "not VAR=VALUE or gc:VAR=VALUE: $kv" >&2; exit 2; }
  if [[ "$kv" == gc:* ]]; then
    variants+=("${kv#gc:}")
  else
    extra+=("$kv")
  fi
done

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
cargo build --quiet --release --example binary_trees
gc_bin="$target/release/examples/binary_trees"
GO="${GO:-/usr/lib/go-1.19/bin/go}"
impls=(gc-concurrent)
for v in "${!variants[@]}"; do
  impls+=("gc-v$v")
done
impls+=(gc-stw go box)
if [ -x "$GO" ]; then
  go_bin="$target/release/binarytrees-go"
  (cd benches/go && "$GO" build -o "$go_bin" ./binarytrees)
  echo "go: $("$GO" version)" >&2
else
  echo "Go 1.19 not found at $GO (apt-get install golang-1.19-go, or set GO=): no Go row" >&2
  kept=()
  for impl in "${impls[@]}"; do
    [ "$impl" = go ] || kept+=("$impl")
  done
  impls=("${kept[@]}")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lines="$work/lines"
: >"$lines"
for i in $(seq "$runs"); do
  for impl in "${impls[@]}"; do
    case "$impl" in
      gc-concurrent) cmd=(env "${extra[@]}" GCCORE_CONCURRENT=1 "$gc_bin" "$depth") ;;
      gc-stw) cmd=(env "${extra[@]}" GCCORE_CONCURRENT=0 "$gc_bin" "$depth") ;;
      go) cmd=(env "${extra[@]}" "$go_bin" "$depth") ;;
      box) cmd=(env "${extra[@]}" "$gc_bin" "$depth" --box) ;;
      gc-v*)
        IFS='&' read -ra settings <<<"${variants[${impl#gc-v}]}"
        cmd=(env "${extra[@]}" "${settings[@]}" GCCORE_CONCURRENT=1 "$gc_bin" "$depth")
        ;;
    esac
    "${cmd[@]}" >"$work/out"
    # The benchmarks-game lines must be the same for every run and implementation.
    head -n -1 "$work/out" >"$work/trees"
    if [ -f "$work/trees.ref" ]; then
      if ! cmp -s "$work/trees" "$work/trees.ref"; then
        echo "$impl (round $i) printed different trees:" >&2
        diff "$work/trees.ref" "$work/trees" >&2 || true
        exit 1
      fi
    else
      mv "$work/trees" "$work/trees.ref"
    fi
    last=$(tail -1 "$work/out")
    echo "round $i $impl: $last" >&2
    echo "impl=$impl $last" >>"$lines"
  done
done

echo
echo "binary-trees depth $depth, median of $runs runs${extra:+, ${extra[*]}}:"
echo
python3 - "$lines" "$runs" "${variants[@]}" <<'PY'
import statistics, sys

rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1]) if l.strip()]
names = {"gc-concurrent": "gc-core concurrent"}
for n, v in enumerate(sys.argv[3:]):
    names[f"gc-v{n}"] = "gc-core concurrent, " + v.replace("&", ", ")
names.update({"gc-stw": "gc-core stop-the-world", "go": "Go 1.19", "box": "Box (malloc/free)"})
impls = [i for i in names if any(r["impl"] == i for r in rows)]

def med(impl, key, scale=1.0):
    v = [float(r[key]) * scale for r in rows if r["impl"] == impl and key in r]
    return statistics.median(v) if v else None

def fmt(v, spec):
    return "—" if v is None else format(v, spec)

def ms(v):  # 0.147, 3.00, 81.3, 267
    if v is None:
        return "—"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"

def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"

wall = {i: med(i, "wall_ms", 1e-3) for i in impls}
rss = {i: med(i, "rss_peak_mib") for i in impls}
print("| implementation | wall s | peak RSS MiB | peak heap ÷ goal | median heap ÷ goal "
      "| cycles with the limiter on | peak heap ÷ goal without | GC CPU | cycles "
      "| longest stop ms | wall ÷ Go | RSS ÷ Go | wall ÷ Box | RSS ÷ Box |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for i in impls:
    gc = i != "box"
    cells = [
        names[i],
        fmt(wall[i], ".2f"),
        fmt(rss[i], ".1f"),
        fmt(med(i, "peak_heap_over_goal") if gc else None, ".3f"),
        fmt(med(i, "median_heap_over_goal") if gc else None, ".3f"),
        fmt(med(i, "limited_cycles") if gc else None, ".0f"),
        fmt(med(i, "peak_heap_over_goal_paced") if gc else None, ".3f"),
        # At the end of the last cycle on both sides: where Go 1.19 last updates
        # GCCPUFraction (gc-core's whole-run figure counts the time after its last cycle).
        fmt((med(i, "gc_cpu_go_last_cycle") or med(i, "gc_cpu_go")) if gc else None, ".3f"),
        fmt(med(i, "gc_cycles") if gc else None, ".0f"),
        ms(med(i, "pause_max_us", 1e-3) if gc else None),
        ratio(wall[i], wall.get("go")),
        ratio(rss[i], rss.get("go")),
        ratio(wall[i], wall.get("box")),
        ratio(rss[i], rss.get("box")),
    ]
    print("| " + " | ".join(cells) + " |")
PY
