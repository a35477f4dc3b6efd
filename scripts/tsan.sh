#!/usr/bin/env bash
# ThreadSanitizer (nightly) over the multi-mutator stress test (4 mutators, concurrent cycles
# back to back, verify mode on and off), the concurrent-marking, blocking, scavenger, sweep/weak
# race and liveness tests, the embedder tests (a stash handed to another thread, a
# collection requested from inside a scope), the GcRefCell tests (markers reading
# collections that mutators borrow mutably), the parallel stop-the-world markers, the
# finalization tests (weak upgrades racing weak clearing, tables and queues changed while cycles
# run), the API tests (a vector raced by two threads) and the several-heaps tests (scopes of two
# heaps on two threads, cleanups ordering heaps, a heap dropped inside another's scope). Result
# goes in docs/verification.md.
#
#   rustup component add --toolchain nightly rust-src   # once (-Zbuild-std needs it)
#   scripts/tsan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"
export GCCORE_STRESS_SECS="${GCCORE_STRESS_SECS:-5}"
export CARGO_TARGET_DIR=target/tsan
cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu -p gc-core \
  --test stress --test concurrent --test blocking --test scavenge --test races --test liveness \
  --test object_kinds --test embedder --test refcell --test parallel_mark --test finalization \
  --test api --test heaps
