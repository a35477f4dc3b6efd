#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Builds and runs every test of the
# workspace: unit tests, behaviour tests (model, stress, bad input, API), trybuild compile-fail
# tests and doc tests. Formatting and clippy are checked first so CI fails fast on them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# The multi-mutator stress test runs this many seconds (verify mode on).
export GCCORE_STRESS_SECS="${GCCORE_STRESS_SECS:-10}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc
# loom model check of the safepoint handshake (separate target dir: different cfg).
CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" cargo test -p gc-core --lib --release loom_
# The example programs run end to end (small sizes).
cargo run --quiet --release --example hello
cargo run --quiet --release --example binary_trees -- 10
cargo run --quiet --release --example binary_trees -- 10 --box
