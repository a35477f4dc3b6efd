#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Builds and runs every test of the
# workspace: unit tests, behaviour tests (model, stress, bad input, API), trybuild compile-fail
# tests, doc tests, the loom model check, and the examples end to end. Formatting and clippy are
# checked first so a run fails fast on them. Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# The multi-mutator stress test runs this many seconds in each of its four settings (verify mode
# on and off, each with depth-first and with span-local marking).
export GCCORE_STRESS_SECS="${GCCORE_STRESS_SECS:-10}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# What the run needs beyond Cargo's dependencies: the formatting and lint components (added when
# rustup is there), and the Lox test suite (the Lox VM's tests read it).
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
fi
lox_data="${LOX_TEST_DATA:-../shared/lox}"
if [ ! -d "$lox_data/test" ]; then
  echo "scripts/test.sh: the Lox test suite is not at $lox_data/test: put the craftinginterpreters"
  echo "suite (its test/ directory) at ../shared/lox beside the repository, or set LOX_TEST_DATA"
  exit 1
fi
if [ ! -x "$lox_data/bin/clox" ] && [ -z "${LOX_NO_CLOX:-}" ]; then
  echo "scripts/test.sh: no reference clox at $lox_data/bin/clox (the Lox VM's tests compare"
  echo "with it); put it there, or set LOX_NO_CLOX=1 to skip those comparisons"
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Doc links stay valid across moves (private items too: the module docs are the map).
RUSTDOCFLAGS="-D warnings" cargo doc -p gc-core --no-deps --document-private-items --quiet
cargo test --workspace --all-targets 2>&1 | tee -a "$log"
cargo test --workspace --doc 2>&1 | tee -a "$log"
# Pacer behaviour on real heaps (steady state vs goal, memory limit, limit below the live heap,
# scavenger): gigabytes of allocation, so optimised; ignored in the debug run above.
cargo test --release -p gc-core --test pacing 2>&1 | tee -a "$log"
# Mark termination racing the assists that finish the last grey work, at the speed a user's
# release build runs it (the debug run above is too slow to open the window).
cargo test --release -p gc-core --test concurrent -- churned_trees 2>&1 | tee -a "$log"
# loom model check of the safepoint handshake (separate target dir: different cfg).
CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
  cargo test -p gc-core --lib --release loom_ 2>&1 | tee -a "$log"
# The example programs run end to end (small sizes), also in verify mode and with one mark
# worker, and reject a malformed GOGC with a message naming it.
cargo run --quiet --release --example hello
# The README's demo: the Lox VM on a benchmark program, with the collector's figures.
cargo run --quiet --release -p lox -- --gc-stats examples/lox/bench/binary_trees.lox
GCCORE_VERIFY=1 cargo run --quiet --release --example binary_trees -- 12
GCCORE_MARK_WORKERS=1 GOGC=50 cargo run --quiet --release --example binary_trees -- 10
cargo run --quiet --release --example binary_trees -- 10 --box
# The stop-the-world collector still works, and the treechurn harness runs (small).
GCCORE_CONCURRENT=0 cargo run --quiet --release --example binary_trees -- 10
cargo run --quiet --release --example treechurn -- --live-mib 8 --ops 500 --mutators 2
cargo run --quiet --release --example msgbuf -- --window 20000 --pushes 200000
# GCBench, small, in verify mode and on Box.
GCCORE_VERIFY=1 cargo run --quiet --release --example gcbench -- --stretch-depth 14 --long-lived-depth 12 --max-depth 12 --array 20000 | tail -1
cargo run --quiet --release --example gcbench -- --box --stretch-depth 14 --long-lived-depth 12 --max-depth 12 --array 20000 | tail -1
# Finalizer registrations and weak references decided at mark termination, in verify mode.
GCCORE_VERIFY=1 cargo run --quiet --release --example finalizer_pauses -- --objects 20000 --finalizers --weaks --cycles 4
# Every example's command line: `--help` prints the usage and exits 0, an unknown flag exits 2
# (the Lox VM: 64, the book's usage code).
for ex in hello binary_trees treechurn msgbuf hiccups allocbench evaluator gcbench finalizer_pauses lox; do
  bin=target/release/examples/$ex; want=2
  if [ "$ex" = lox ]; then bin=target/release/lox; want=64; fi
  [ -x "$bin" ] || cargo build --quiet --release -p gc-examples --examples
  "$bin" --help | grep -q "Usage: $ex" || { echo "$ex --help: no usage"; exit 1; }
  rc=0; "$bin" --no-such-flag >/dev/null 2>&1 || rc=$?
  [ "$rc" = "$want" ] || { echo "$ex --no-such-flag: exit $rc, want $want"; exit 1; }
done
echo "example command lines: --help exits 0, an unknown flag exits 2 (lox: 64)"
# The benchmark suite's smoke run: every workload once, small, on every implementation present
# (Go twins and clox only where installed); every output file written.
rm -rf target/lab-quick
cargo run --quiet --release -p gc-lab -- --quick --curves 50,200 --limits 16,32 --out target/lab-quick >/dev/null
for f in machine.txt runs.csv summary.csv summary.json curves.csv; do
  [ -s "target/lab-quick/$f" ] || { echo "gc-lab --quick wrote no $f"; exit 1; }
done
for w in binary-trees gcbench msgbuf treechurn treechurn-1g treechurn-x2 treechurn-x4 treechurn-x8 \
         "lox quick"; do
  grep -q "^$w,gc-core,wall_s," target/lab-quick/summary.csv || { echo "gc-lab: no $w run"; exit 1; }
done
# The Rust peers run binary-trees, GCBench, msgbuf and treechurn (binary-trees answering as
# gc-core did, or the lab fails).
for p in gc-arena dumpster rust-gc sandpit; do
  for w in binary-trees gcbench msgbuf treechurn; do
    grep -q "^$w,$p,wall_s," target/lab-quick/summary.csv || { echo "gc-lab: no $w run on $p"; exit 1; }
  done
done
# The plots need a TrueType font (the lab reads DejaVu or Liberation Sans at run time).
fonts=0
for f in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/TTF/DejaVuSans.ttf \
         /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf \
         /usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf; do
  if [ -f "$f" ]; then fonts=1; fi
done
if [ "$fonts" = 1 ]; then
  for stem in wall rss curve-binary-trees curve-treechurn curve-gccpu-treechurn limit-treechurn \
              limit-gccpu-binary-trees latency-msgbuf latency-treechurn-x8 mmu-msgbuf \
              mmu-treechurn-1g pauses-treechurn pauses-binary-trees timeline-msgbuf-gc-core \
              timeline-treechurn-x2-gc-core; do
    for ext in svg png; do
      [ -s "target/lab-quick/$stem.$ext" ] || { echo "gc-lab --quick drew no $stem.$ext"; exit 1; }
    done
  done
fi
# --replot draws the same files again from the run's CSVs and data.
rm -f target/lab-quick/*.svg target/lab-quick/*.png target/lab-quick/report.md
cargo run --quiet --release -p gc-lab -- --replot --out target/lab-quick >/dev/null
[ -s target/lab-quick/report.md ] || { echo "gc-lab --replot wrote no report.md"; exit 1; }
if [ "$fonts" = 1 ]; then
  [ -s target/lab-quick/curve-treechurn.svg ] && [ -s target/lab-quick/latency-msgbuf.png ] ||
    { echo "gc-lab --replot drew no plots"; exit 1; }
fi
echo "gc-lab --quick: every workload ran, every file written (and again with --replot)"
# The pacer lab: the simulator's tests (the replay test runs real heaps: optimised), then the
# command line: every built-in scenario, a comparison, and the replay of a trace that a real
# heap wrote (GCCORE_PACERTRACE) under another GOGC.
cargo test --release -p pacer-lab 2>&1 | tee -a "$log"
rm -rf target/pacer-smoke
cargo run --quiet --release -p pacer-lab -- run --all --out target/pacer-smoke >/dev/null
cargo run --quiet --release -p pacer-lab -- compare steady --b sqrt_c=1e-8 --out target/pacer-smoke >/dev/null
GCCORE_PACERTRACE=target/pacer-smoke/trace.csv cargo run --quiet --release --example binary_trees -- 16 >/dev/null
GOGC=200 GCCORE_PACERTRACE=target/pacer-smoke/trace200.csv \
  cargo run --quiet --release --example binary_trees -- 16 >/dev/null
cargo run --quiet --release -p pacer-lab -- replay target/pacer-smoke/trace.csv --set gogc=200 \
  --against target/pacer-smoke/trace200.csv --out target/pacer-smoke | grep -q "prediction ÷ real run" ||
  { echo "pacer-lab replay printed no comparison"; exit 1; }
for f in steady.csv fail-fast.csv steady-compare-a.csv steady-compare-b.csv trace-replay.csv summary.md; do
  [ -s "target/pacer-smoke/$f" ] || { echo "pacer-lab wrote no $f"; exit 1; }
done
if [ "$fonts" = 1 ]; then
  for stem in steady exceed-memory-limit steady-compare trace-replay; do
    [ -s "target/pacer-smoke/$stem.svg" ] || { echo "pacer-lab drew no $stem.svg"; exit 1; }
  done
fi
for bad in "--set gogc=lots" "--set colour=red" "--set max_overshoot=0.5"; do
  if cargo run --quiet --release -p pacer-lab -- run steady $bad --out target/pacer-smoke >/dev/null 2>&1; then
    echo "pacer-lab accepted $bad"; exit 1
  fi
done
echo "pacer-lab: every scenario, a comparison and a replay ran; bad settings refused"
for bad in GOGC=abc GOGC=-5x GOMEMLIMIT=12XB GODEBUG=gctrace=yes; do
  if err=$(env "$bad" cargo run --quiet --release --example hello 2>&1); then
    echo "hello accepted $bad"; exit 1
  fi
  case "$err" in *"${bad%%=*}"*) echo "$bad rejected: $err" ;; *) echo "unexpected: $err"; exit 1 ;; esac
done
# GODEBUG=gctrace=1 prints Go's line per cycle; GOMEMLIMIT applies to the examples too.
trace=$(GODEBUG=gctrace=1 GOMEMLIMIT=64MiB cargo run --quiet --release --example binary_trees -- 14 2>&1 >/dev/null)
echo "$trace" | head -3
echo "$trace" | grep -Eq '^gc 1 @[0-9.]+s [0-9]+%: [0-9.]+\+[0-9.]+\+[0-9.]+ ms clock, .* MB goal, .* P' \
  || { echo "no gctrace line"; exit 1; }

awk '/^test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed/ { p += $4; f += $6 }
     END { printf "%d passed, %d failed\n", p, f; exit (f || !p) }' "$log"
