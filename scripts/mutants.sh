#!/usr/bin/env bash
# Mutation testing with cargo-mutants: every mutant it makes of the given source files (a
# replaced operator, a function body emptied, a comparison flipped), judged by gc-core's unit
# tests (about 10 s a mutant on 2 CPUs; the behaviour tests in gc-core/tests would take
# minutes each, so a mutant "missed" here may still be caught there: sort the misses by hand,
# as docs/verification.md does for each run). Results under OUT (default /tmp/mutants):
# missed.txt, caught.txt, and a diff per mutant. Functions of a `tests` module are left out:
# cargo-mutants skips `#[cfg(test)]` modules but not `#[cfg(all(test, not(loom)))]` ones.
#
#   scripts/mutants.sh gc-core/src/pacer/controller.rs [more files...]
#   OUT=/tmp/m scripts/mutants.sh gc-core/src/pacer/scavenger.rs
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    echo "usage: scripts/mutants.sh FILE..." >&2
    exit 64
fi
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked --version 27.1.0
files=()
for f in "$@"; do files+=(-f "$f"); done
cargo mutants "${files[@]}" --test-package gc-core -o "${OUT:-/tmp/mutants}" --timeout 300 \
    --exclude-re 'tests::' -- --lib
