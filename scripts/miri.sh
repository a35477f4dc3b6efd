#!/usr/bin/env bash
# Miri (nightly) over the unit tests (arena, size classes, spans, safepoint handshake, config,
# the heap smoke test, the verifier) and the small randomized model test and API tests.
# Under Miri the arena is backed by the global allocator instead of mmap (see arena.rs), and
# test sizes shrink (cfg(miri)). Result goes in docs/verification.md.
#
#   rustup component add --toolchain nightly miri rust-src   # once
#   scripts/miri.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Objects are addressed by integer (span arithmetic), so use permissive provenance.
# Tree Borrows: bitvec 1.x (our bitmap crate) makes zero-sized retags inside its own code that
# the older Stacked Borrows model rejects (in bitvec/wyz, not in gc-core); Tree Borrows, the
# model Miri is moving to, accepts them and still checks every access gc-core makes.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-permissive-provenance -Zmiri-disable-isolation -Zmiri-tree-borrows}"
cargo +nightly miri test -p gc-core --lib
cargo +nightly miri test -p gc-core --test model --test api -- --skip a_polling_scope
# Objects of every kind without headers (plain, drop glue, arrays, strings, weak boxes, NanBox
# payloads, zero-sized, large), traced and dropped through their span's type; and the 16-byte
# node.
cargo +nightly miri test -p gc-core --test object_kinds -- every_kind_concurrent_verify_off two_pointer
# A small concurrent test: the marker held at a known point, references moved under the
# barrier, with the collector thread running alongside (Miri checks the data races too).
# Without the aliasing model: with Tree Borrows it did not finish one of its three tests in
# 50 minutes (a profile of Miri put about 40% of its time in Tree Borrows' accesses through
# wildcard provenance, which every integer-addressed object access is under permissive
# provenance: about 20 000 basic blocks a second); without it, data races, uninitialised
# reads, out-of-bounds and use-after-free accesses are still checked. The model and API tests
# above run the barrier and the marker (concurrent cycles in the model test) under Tree Borrows.
MIRIFLAGS="-Zmiri-permissive-provenance -Zmiri-disable-isolation -Zmiri-disable-stacked-borrows" \
    cargo +nightly miri test -p gc-core --test concurrent -- held_marker
# An assist offering the bottom of its grey stack to the shared queue (marker held; one
# setting, a 511-node tree).
cargo +nightly miri test -p gc-core --test concurrent -- assists_offer
# Noscan objects reached from arrays, whose marks are set a mark word at a time: each marked
# and counted once, with one stop-the-world worker, two, and concurrent marking.
cargo +nightly miri test -p gc-core --test parallel_mark -- noscan_objects trees_and_objects two_markers
# GcRefCell: a mutable borrow held across STW 1 by a blocked scope while the marker skips the
# value, and the borrow rules (the held-marker test, 16 heaps, did not finish in 20 minutes).
cargo +nightly miri test -p gc-core --test refcell -- a_borrow_held borrows_conflict
# Blocking regions: a scope blocked across STW 1 (marker held), and a panic inside a region.
cargo +nightly miri test -p gc-core --test blocking -- a_scope_blocked a_panic
# Sweeping and weak references with the world running, short under Miri (`GCCORE_RACE_SECS`
# defaults to 0.05 s there). Verify mode off only: with it on, the heap verifier after each of
# the many cycles made one test run for over 25 minutes under Miri (it runs natively and under
# TSan in both modes).
cargo +nightly miri test -p gc-core --test races -- --skip verify_on
# Ephemeron tables, cleanups and finalizer queues: entries dying with their keys (values
# pointing back at them), chains through values, resurrection and freeing later, cleanups once
# and at teardown (the cleanup thread included), double registration, a resurrected key;
# concurrent marking, verify off (`settings()` under Miri: each collection is slow there).
cargo +nightly miri test -p gc-core --test finalization -- an_entry chains_and chains_of_noscan cleanups finalizers_resurrect double_registration a_queue_reached a_value_clone a_weak_reference_made an_object_dead_at_the_first a_weak_reference_dead_at_the_first registrations_set_aside indexed_rounds a_pause_looks the_places
