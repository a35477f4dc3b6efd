//! Multi-mutator stress: 4 mutator threads share objects through a stashed board, concurrent
//! cycles run back to back (plus forced collections), and a thread spinning on the CPU makes
//! the others lose theirs mid-step. Once with verify mode on, once with it off (verify mode
//! sweeps and clears weak references inside the pause, which hides the races of doing so with
//! the world running). Each runs for `GCCORE_STRESS_SECS` seconds (default 10); the soak is
//! `GCCORE_STRESS_SECS=1800 cargo test --release --test stress verify_off`.
//!
//! Every item carries a checksum of its value; every read checks it, so a freed-and-reused or
//! poisoned object is caught at once, and the heap verifier checks the whole heap after each
//! cycle. At the end, heap teardown must have dropped every item exactly as many times as items
//! were allocated, and collections must have freed garbage along the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gc_core::{Config, Gc, GcArray, GcCell, Heap, Mutator, Rootable, Stash, Trace};
mod common;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Items allocated and dropped, per test (index: verify mode + 2 × span-local marking), as the
/// tests run side by side.
static ALLOCATED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static DROPPED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

struct Count(usize);
impl Drop for Count {
    fn drop(&mut self) {
        DROPPED[self.0].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
struct Item<'gc> {
    value: u64,
    check: u64,
    next: GcCell<'gc, Option<Gc<'gc, Item<'gc>>>>,
    #[gc(skip)]
    _count: Count,
}

fn checksum(v: u64) -> u64 {
    v.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_F0F0_0F0F
}

fn item<'gc>(
    mc: &gc_core::Mutation<'gc>,
    k: usize,
    value: u64,
    next: Option<Gc<'gc, Item<'gc>>>,
) -> Gc<'gc, Item<'gc>> {
    ALLOCATED[k].fetch_add(1, Ordering::Relaxed);
    Gc::new(
        mc,
        Item {
            value,
            check: checksum(value),
            next: GcCell::new(next),
            _count: Count(k),
        },
    )
}

/// Walk a list, checking every checksum; returns its length.
fn walk<'gc>(mut cur: Option<Gc<'gc, Item<'gc>>>, limit: usize) -> usize {
    let mut n = 0;
    while let Some(i) = cur {
        assert_eq!(
            i.check,
            checksum(i.value),
            "corrupted item (freed while reachable?)"
        );
        n += 1;
        if n >= limit {
            break;
        }
        cur = i.next.get();
    }
    n
}

#[derive(Trace)]
struct Board<'gc> {
    slots: GcArray<'gc, Option<Gc<'gc, Item<'gc>>>>,
}

#[derive(Trace)]
struct Local<'gc> {
    mine: GcCell<'gc, Option<Gc<'gc, Item<'gc>>>>,
}

type BoardM = Rootable!['gc => Board<'gc>];

#[test]
fn four_mutators_share_and_collect_verify_on() {
    four_mutators_share_and_collect(true, false);
}

#[test]
fn four_mutators_share_and_collect_verify_off() {
    four_mutators_share_and_collect(false, false);
}

#[test]
fn four_mutators_share_and_collect_span_marking_verify_on() {
    four_mutators_share_and_collect(true, true);
}

#[test]
fn four_mutators_share_and_collect_span_marking_verify_off() {
    four_mutators_share_and_collect(false, true);
}

fn four_mutators_share_and_collect(verify: bool, span: bool) {
    let k = verify as usize + 2 * span as usize;
    let secs: u64 = std::env::var("GCCORE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(miri) { 0 } else { 10 });
    let heap = Heap::new(
        Config::from_env()
            .unwrap()
            .verify(verify)
            .span_marking(span)
            .gc_percent(Some(50))
            // Background mark helpers as on an 8-CPU machine (the collector thread and one
            // helper), so that several markers race the mutators here too.
            .debug_cpus(8),
    )
    .unwrap();
    // Marking races the mutators all the time (set GCCORE_BACK_TO_BACK=0 to let only the
    // allocation trigger and the explicit collections start cycles).
    heap.debug_back_to_back(std::env::var("GCCORE_BACK_TO_BACK").map_or(true, |v| v != "0"));
    let board: Stash<BoardM> = {
        let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        m.mutate(|mc, _| {
            let b = Gc::new(
                mc,
                Board {
                    slots: GcArray::new(mc, 64, None),
                },
            );
            mc.stash::<BoardM>(b)
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let hog = common::cpu_hog(stop.clone());
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (heap, board, stop) = (heap.clone(), board.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                let mut m: Mutator<Rootable!['gc => Local<'gc>]> = heap.mutator(|_| Local {
                    mine: GcCell::new(None),
                });
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) || rounds < 20 {
                    rounds += 1;
                    m.mutate(|mc, root| {
                        let b = board.fetch(mc);
                        for _ in 0..rng.gen_range(1..200) {
                            match rng.gen_range(0..20) {
                                // Grow my list (garbage appears when it is cut below).
                                0..=8 => {
                                    let head = item(mc, k, rng.r#gen(), root.mine.get());
                                    root.mine.set(mc, Some(head));
                                }
                                // Publish my head on the board.
                                9 | 10 => b.slots.set(mc, rng.gen_range(0..64), root.mine.get()),
                                // Adopt an item from the board (possibly another thread's list).
                                11 | 12 => {
                                    if let Some(other) = b.slots.get(rng.gen_range(0..64)) {
                                        walk(Some(other), 50);
                                        let head = item(mc, k, rng.r#gen(), Some(other));
                                        root.mine.set(mc, Some(head));
                                    }
                                }
                                // Cut my list short.
                                13 => {
                                    if let Some(h) = root.mine.get() {
                                        let mut cur = h;
                                        for _ in 0..rng.gen_range(0..2000) {
                                            match cur.next.get() {
                                                Some(n) => cur = n,
                                                None => break,
                                            }
                                        }
                                        cur.next.set(mc, None);
                                    }
                                }
                                // Read everything reachable a little.
                                _ => {
                                    walk(root.mine.get(), 200);
                                    walk(b.slots.get(rng.gen_range(0..64)), 200);
                                }
                            }
                            if mc.should_yield() {
                                break;
                            }
                        }
                    });
                    if rng.gen_range(0..50) == 0 {
                        m.collect();
                    }
                }
                rounds
            })
        })
        .collect();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        heap.collect();
    }
    stop.store(true, Ordering::Relaxed);
    let rounds: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    hog.join().unwrap();
    heap.collect();
    let s = heap.stats();
    eprintln!("stress (verify {verify}, span marking {span}): {rounds} rounds, {s:?}");
    assert!(s.gc_cycles >= 5, "too few cycles: {s:?}");
    assert!(s.objects_freed > 0, "no garbage was reclaimed: {s:?}");
    drop(board);
    drop(heap);
    assert_eq!(
        ALLOCATED[k].load(Ordering::Relaxed),
        DROPPED[k].load(Ordering::Relaxed),
        "every item is dropped exactly once by teardown"
    );
}
