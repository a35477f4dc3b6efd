#!/usr/bin/env bash
# Lox VM (examples/lox) vs the reference clox, on the programs in examples/lox/bench/.
#
# Usage: scripts/bench_lox.sh [RUNS=5] [PROGRAM...]
#   PROGRAM: a bench name such as binary_trees (default: every examples/lox/bench/*.lox).
#
# For each program it checks that lox and clox print the same stdout and exit code, times both
# (hyperfine when present, else an alternating Python loop), prints a Markdown table of medians
# with the lox/clox ratio and their geometric mean, then runs the allocation-heavy programs once
# with `lox --gc-stats` and prints the collector's key=value figures.
#
# Environment:
#   LOX_BIN     the lox binary to measure; when set, the cargo build is skipped
#               (default: target/release/lox, built here with cargo build --release -p lox)
#   CLOX        the reference binary (default: bin/clox of the Lox test data, $LOX_TEST_DATA,
#               by default the test-data directory beside the repository root)
#   NO_INSTALL  set to 1 to never try `apt-get install hyperfine`
#   NO_HYPERFINE set to 1 to use the Python timing loop even when hyperfine is present
# Exit status: 0 when every program printed the same as clox, 1 otherwise.
set -euo pipefail

# Resolve user-supplied paths before moving to the repo root.
abs_bin() {
  local dir
  case "$1" in
    */*) dir="$(cd "$(dirname "$1")" 2>/dev/null && pwd)" || { echo "no such directory for $1" >&2; exit 2; }
         echo "$dir/$(basename "$1")" ;;
    *) command -v "$1" || { echo "$1 not found on PATH" >&2; exit 2; } ;;
  esac
}
lox_bin_env=""
if [ -n "${LOX_BIN:-}" ]; then lox_bin_env="$(abs_bin "$LOX_BIN")"; fi
clox_env=""
if [ -n "${CLOX:-}" ]; then clox_env="$(abs_bin "$CLOX")"; fi

cd "$(dirname "$0")/.."
root="$(pwd)"
bench_dir="examples/lox/bench"

runs="${1:-5}"
[ $# -gt 0 ] && shift
case "$runs" in
  ''|*[!0-9]*|0) echo "RUNS must be a positive integer, got '$runs'" >&2; exit 2 ;;
esac

clox="$clox_env"
if [ -z "$clox" ]; then
  data="${LOX_TEST_DATA:-$root/../shared/lox}"
  clox="$data/bin/clox"
  [ -d "$data/bin" ] && clox="$(cd "$data/bin" && pwd)/clox"
fi
if [ ! -x "$clox" ]; then
  echo "clox not found or not executable at $clox (set CLOX)" >&2
  exit 2
fi

if [ -n "$lox_bin_env" ]; then
  lox="$lox_bin_env"
else
  echo "building lox (cargo build --release -p lox)..." >&2
  cargo build --quiet --release -p lox
  lox="$root/target/release/lox"
fi
if [ ! -x "$lox" ]; then
  echo "lox binary not found or not executable at $lox" >&2
  exit 2
fi

# The programs, in a fixed order.
programs=()
if [ $# -gt 0 ]; then
  for p in "$@"; do
    p="${p%.lox}"; p="${p##*/}"
    [ -f "$bench_dir/$p.lox" ] || { echo "no such bench program: $bench_dir/$p.lox" >&2; exit 2; }
    programs+=("$p")
  done
else
  for f in "$bench_dir"/*.lox; do
    p="${f##*/}"; programs+=("${p%.lox}")
  done
fi
[ ${#programs[@]} -gt 0 ] || { echo "no programs in $bench_dir" >&2; exit 2; }

# The allocation-heavy ones get a --gc-stats run.
gc_programs="binary_trees tree_rebuild instantiation string_build"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Timing tool.
use_hyperfine=0
if [ "${NO_HYPERFINE:-0}" != 1 ]; then
  if ! command -v hyperfine >/dev/null 2>&1 && [ "${NO_INSTALL:-0}" != 1 ] \
     && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "hyperfine not found; trying apt-get install -y hyperfine..." >&2
    { timeout 300 apt-get install -y -qq hyperfine \
        || { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq hyperfine; }; } \
        >/dev/null 2>&1 || echo "could not install hyperfine; using the Python timing loop" >&2
  fi
  command -v hyperfine >/dev/null 2>&1 && use_hyperfine=1
fi

echo "lox:  $lox"
echo "clox: $clox"
if [ "$use_hyperfine" = 1 ]; then
  echo "timing: $(hyperfine --version), $runs runs each after 1 warm-up"
else
  echo "timing: Python loop alternating the two binaries, $runs runs each"
fi
echo

# 1. Same output?
status=0
results="$tmp/results.tsv"
: > "$results"
for p in "${programs[@]}"; do
  f="$bench_dir/$p.lox"
  set +e
  "$clox" "$f" > "$tmp/$p.clox.out" 2> "$tmp/$p.clox.err"; clox_rc=$?
  "$lox" "$f" > "$tmp/$p.lox.out" 2> "$tmp/$p.lox.err"; lox_rc=$?
  set -e
  if [ "$clox_rc" != 0 ]; then
    echo "$p: clox failed (exit $clox_rc):" >&2; head -5 "$tmp/$p.clox.err" >&2
    echo -e "$p\tclox-error" >> "$results"; status=1
  elif [ "$lox_rc" != "$clox_rc" ] || ! cmp -s "$tmp/$p.clox.out" "$tmp/$p.lox.out"; then
    echo "$p: OUTPUT DIFFERS (clox exit $clox_rc, lox exit $lox_rc)" >&2
    diff "$tmp/$p.clox.out" "$tmp/$p.lox.out" | head -10 >&2 || true
    head -5 "$tmp/$p.lox.err" >&2
    echo -e "$p\tmismatch" >> "$results"; status=1
  else
    echo "$p: same output ($(wc -l < "$tmp/$p.clox.out") lines)"
    echo -e "$p\tok" >> "$results"
  fi
done
echo

# 2. Timing, only for the programs whose output matched.
for p in $(awk -F'\t' '$2 == "ok" {print $1}' "$results"); do
  f="$root/$bench_dir/$p.lox"
  echo "timing $p..." >&2
  if [ "$use_hyperfine" = 1 ]; then
    hyperfine --warmup 1 --runs "$runs" --export-json "$tmp/$p.json" \
      -n clox "'$clox' '$f'" -n lox "'$lox' '$f'" > "$tmp/$p.hyperfine.log" 2>&1 \
      || { cat "$tmp/$p.hyperfine.log" >&2; exit 1; }
  else
    python3 - "$runs" "$clox" "$lox" "$f" "$tmp/$p.json" <<'PY'
import json, subprocess, sys, time
runs, clox, lox, prog, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
times = {"clox": [], "lox": []}
for i in range(runs):
    order = [("clox", clox), ("lox", lox)]
    if i % 2:
        order.reverse()  # alternate who goes first
    for name, exe in order:
        t0 = time.perf_counter()
        subprocess.run([exe, prog], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times[name].append(time.perf_counter() - t0)
json.dump({"results": [{"command": k, "times": v} for k, v in times.items()]}, open(out, "w"))
PY
  fi
done

# 3. The table.
python3 - "$tmp" "$results" <<'PY'
import json, math, statistics, sys
tmp, results = sys.argv[1], sys.argv[2]
rows, ratios = [], []
for line in open(results):
    name, state = line.rstrip("\n").split("\t")
    if state != "ok":
        rows.append(f"| {name} | {state} | | |")
        continue
    data = json.load(open(f"{tmp}/{name}.json"))
    # Both timing paths list clox first, lox second.
    c, l = (statistics.median(r["times"]) for r in data["results"][:2])
    ratio = l / c
    ratios.append(ratio)
    rows.append(f"| {name} | {c:.3f} | {l:.3f} | {ratio:.2f} |")
print("| program | clox median s | lox median s | lox/clox |")
print("| --- | ---: | ---: | ---: |")
print("\n".join(rows))
if ratios:
    gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"| **geometric mean** | | | **{gm:.2f}** |")
PY
echo

# 4. Collector figures for the allocation-heavy programs.
gc_list=()
for p in "${programs[@]}"; do
  case " $gc_programs " in *" $p "*) gc_list+=("$p") ;; esac
done
if [ ${#gc_list[@]} -gt 0 ]; then
  echo "lox --gc-stats (one run each; figures from stderr):"
  echo
  for p in "${gc_list[@]}"; do
    set +e
    "$lox" --gc-stats "$bench_dir/$p.lox" > /dev/null 2> "$tmp/$p.gc.err"; echo $? > "$tmp/$p.gc.rc"
    set -e
  done
  python3 - "$tmp" "${gc_list[@]}" <<'PY'
import sys
tmp, names = sys.argv[1], sys.argv[2:]
keys, table, notes = [], {}, []
for n in names:
    table[n] = {}
    text = open(f"{tmp}/{n}.gc.err", errors="replace").read()
    rc = open(f"{tmp}/{n}.gc.rc").read().strip()
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            if k and k not in keys:
                keys.append(k)
            table[n][k] = v
    if rc != "0" or not table[n]:
        what = f"exit {rc}" + ("" if table[n] else ", no key=value figures on stderr")
        lines = text.strip().splitlines()[:3]
        notes.append(f"{n}: {what}" + "".join("\n    " + l for l in lines))
if keys:
    print("| program | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for n in names:
        print(f"| {n} | " + " | ".join(table[n].get(k, "") for k in keys) + " |")
    if notes:
        print()
print("\n".join(notes))
PY
fi

exit "$status"
