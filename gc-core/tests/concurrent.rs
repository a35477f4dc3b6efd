//! Concurrent marking against the classic lost-object races, with cycles running back to back
//! so that the marker races the mutator the whole time, and verify mode on (a reachable object
//! freed by mistake is reported, poisoned memory is detected, and the process aborts).
//!
//! Each test moves the only reference to an object from where the marker may not have looked
//! yet to where it has already looked, then deletes the original, over and over: through heap
//! objects, through the root stack, and through a growing `GcVec`. Every object must survive
//! (its payload is checked), and the garbage made along the way must be reclaimed.

#![allow(clippy::type_complexity)] // `Rootable![...]` expands to a long type

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gc_core::{Config, Gc, GcArray, GcCell, GcVec, Heap, Mutator, Rootable, Trace};

mod common;
use common::hold_before_weak_clearing;

#[derive(Trace)]
struct Obj<'gc> {
    id: u64,
    check: u64,
    next: GcCell<'gc, Option<Gc<'gc, Obj<'gc>>>>,
}

fn obj<'gc>(mc: &gc_core::Mutation<'gc>, id: u64) -> Gc<'gc, Obj<'gc>> {
    Gc::new(
        mc,
        Obj {
            id,
            check: id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            next: GcCell::new(None),
        },
    )
}

fn intact(o: &Obj<'_>) -> bool {
    o.check == o.id.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

const SLOTS: usize = 64;

fn run_for() -> Duration {
    Duration::from_millis(if cfg!(miri) { 50 } else { 1500 })
}

fn heap(verify: bool, span: bool) -> Heap {
    let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
    heap.debug_back_to_back(true);
    heap
}

#[derive(Trace)]
struct Two<'gc> {
    /// Where references start (the marker may not have scanned it yet).
    from: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
    /// Where they are moved to.
    to: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
}

type TwoM = Rootable!['gc => Two<'gc>];

/// Put a fresh object, numbered from `next`, in every slot of `from`.
fn fill_fresh<'gc>(
    mc: &gc_core::Mutation<'gc>,
    from: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
    next: &mut u64,
) {
    for i in 0..SLOTS {
        from.set(mc, i, Some(obj(mc, *next)));
        *next += 1;
    }
}

/// Checks each object reachable from `slots` and returns how many there are.
fn check_all<'gc>(arr: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>) -> usize {
    let mut n = 0;
    for o in arr.iter().flatten() {
        assert!(intact(&o), "object {} corrupted", o.id);
        n += 1;
    }
    n
}

#[test]
fn move_between_heap_objects_then_delete_the_original() {
    for (verify, span) in common::MODES {
        move_between_heap_objects_then_delete_the_original_in(verify, span);
    }
}

fn move_between_heap_objects_then_delete_the_original_in(verify: bool, span: bool) {
    let heap = heap(verify, span);
    let mut m: Mutator<TwoM> = heap.mutator(|mc| Two {
        from: GcArray::new(mc, SLOTS, None),
        to: GcArray::new(mc, SLOTS, None),
    });
    let start = Instant::now();
    let cycles0 = heap.stats().gc_cycles;
    let mut next_id = 0u64;
    let mut during_mark = 0usize;
    // At least five cycles, however slow the build or loaded the machine.
    while start.elapsed() < run_for() || heap.stats().gc_cycles - cycles0 < 5 {
        assert!(start.elapsed() < Duration::from_secs(120), "cycles stalled");
        // A fresh object reachable only from `from[i]` (white if this scope ran between
        // cycles)...
        m.mutate(|mc, r| fill_fresh(mc, r.from, &mut next_id));
        m.mutate(|mc, r| {
            if mc.debug_marking() {
                during_mark += 1;
            }
            for i in 0..SLOTS {
                // ...moved to `to[i]` (the old `to[i]` becomes garbage), then deleted from
                // `from`.
                let x = r.from.get(i);
                r.to.set(mc, i, x);
                r.from.set(mc, i, None);
                // Garbage to keep the allocator busy.
                obj(mc, u64::MAX);
            }
        });
        let n = m.mutate(|_, r| check_all(r.to));
        assert_eq!(n, SLOTS);
    }
    heap.debug_back_to_back(false);
    let cycles = heap.stats().gc_cycles - cycles0;
    assert!(cycles >= 5, "only {cycles} cycles ran");
    assert!(during_mark > 0, "no scope ran while marking");
    m.collect();
    m.collect();
    // Only the SLOTS objects in `to` (plus the two arrays) are live now.
    let s = heap.stats();
    assert!(s.marked_objects <= SLOTS as u64 + 2, "{s:?}");
    assert!(s.objects_freed >= next_id, "{s:?}");
}

/// A noscan object (no GC pointers): the marker sets its mark bit and never reads it, and
/// marks of such objects reached from one array chunk are set a mark word at a time.
#[derive(Trace)]
struct Leaf {
    id: u64,
    check: u64,
}

fn leaf<'gc>(mc: &gc_core::Mutation<'gc>, id: u64) -> Gc<'gc, Leaf> {
    Gc::new(
        mc,
        Leaf {
            id,
            check: id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        },
    )
}

#[derive(Trace)]
struct Leaves<'gc> {
    from: GcArray<'gc, Option<Gc<'gc, Leaf>>>,
    to: GcArray<'gc, Option<Gc<'gc, Leaf>>>,
}

type LeavesM = Rootable!['gc => Leaves<'gc>];

/// Arrays of noscan objects (several chunks long, so a scan batches the marks of many objects
/// per mark word, and a word mixes live and dead objects), whose only references move from
/// one array to the other, in reverse order, while cycles run back to back: every object
/// survives, and garbage is reclaimed.
#[test]
fn noscan_objects_moved_between_arrays_survive() {
    for (verify, span) in common::MODES {
        noscan_objects_moved_between_arrays_survive_in(verify, span);
    }
}

fn noscan_objects_moved_between_arrays_survive_in(verify: bool, span: bool) {
    const LEN: usize = if cfg!(miri) { 150 } else { 1000 };
    let heap = heap(verify, span);
    let mut m: Mutator<LeavesM> = heap.mutator(|mc| Leaves {
        from: GcArray::new(mc, LEN, None),
        to: GcArray::new(mc, LEN, None),
    });
    let start = Instant::now();
    let cycles0 = heap.stats().gc_cycles;
    let mut next_id = 0u64;
    let mut during_mark = 0usize;
    // At least five cycles, however slow the build or loaded the machine.
    while start.elapsed() < run_for() || heap.stats().gc_cycles - cycles0 < 5 {
        assert!(start.elapsed() < Duration::from_secs(120), "cycles stalled");
        m.mutate(|mc, r| {
            for i in 0..LEN {
                r.from.set(mc, i, Some(leaf(mc, next_id)));
                next_id += 1;
                if i % 3 == 0 {
                    // Garbage between the live objects, in the same mark words.
                    leaf(mc, u64::MAX);
                }
            }
        });
        m.mutate(|mc, r| {
            if mc.debug_marking() {
                during_mark += 1;
            }
            for i in 0..LEN {
                let x = r.from.get(i);
                r.to.set(mc, LEN - 1 - i, x);
                r.from.set(mc, i, None);
            }
        });
        let n = m.mutate(|_, r| {
            r.to.iter()
                .flatten()
                .inspect(|l| assert_eq!(l.check, l.id.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                .count()
        });
        assert_eq!(n, LEN);
    }
    heap.debug_back_to_back(false);
    let cycles = heap.stats().gc_cycles - cycles0;
    assert!(cycles >= 5, "only {cycles} cycles ran");
    assert!(during_mark > 0, "no scope ran while marking");
    m.collect();
    m.collect();
    // Exactly the LEN objects in `to` and the two arrays are live now.
    let s = heap.stats();
    assert_eq!(s.marked_objects, LEN as u64 + 2, "{s:?}");
    assert!(s.objects_freed >= next_id, "{s:?}");
}

#[derive(Trace)]
struct One<'gc> {
    from: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
}

type OneM = Rootable!['gc => One<'gc>];
type StackM = Rootable!['gc => Gc<'gc, Obj<'gc>>];

#[test]
fn move_into_the_root_stack_then_delete_the_original() {
    for (verify, span) in common::MODES {
        move_into_the_root_stack_then_delete_the_original_in(verify, span);
    }
}

fn move_into_the_root_stack_then_delete_the_original_in(verify: bool, span: bool) {
    let heap = heap(verify, span);
    let mut m: Mutator<OneM, StackM> = heap.mutator_with_stack(|mc| One {
        from: GcArray::new(mc, SLOTS, None),
    });
    m.mutate(|mc, r| {
        for i in 0..SLOTS {
            r.from.set(mc, i, Some(obj(mc, i as u64)));
        }
    });
    let start = Instant::now();
    let mut rounds = 0u64;
    let mut during_mark = 0usize;
    while start.elapsed() < run_for() {
        // Heap → stack (the stack was scanned at scope entry), original deleted.
        m.mutate_with_stack(|mc, r, stack| {
            if mc.debug_marking() {
                during_mark += 1;
            }
            for i in 0..SLOTS {
                let x = r.from.get(i).unwrap();
                stack.push(x);
                r.from.set(mc, i, None);
                obj(mc, u64::MAX);
            }
        });
        // Stack → heap in a later scope (possibly a later cycle), stack emptied.
        m.mutate_with_stack(|mc, r, stack| {
            for i in (0..SLOTS).rev() {
                let x = stack.pop().unwrap();
                assert!(intact(&x), "object {} corrupted", x.id);
                r.from.set(mc, i, Some(x));
            }
        });
        rounds += 1;
    }
    heap.debug_back_to_back(false);
    assert!(during_mark > 0, "no scope ran while marking");
    let ids: Vec<u64> = m.mutate(|_, r| r.from.iter().map(|o| o.unwrap().id).collect());
    assert_eq!(
        ids,
        (0..SLOTS as u64).collect::<Vec<_>>(),
        "after {rounds} rounds"
    );
}

#[derive(Trace)]
struct Grow<'gc> {
    from: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
    vec: GcCell<'gc, Option<GcVec<'gc, Option<Gc<'gc, Obj<'gc>>>>>>,
}

type GrowM = Rootable!['gc => Grow<'gc>];

#[test]
fn move_into_a_growing_vector_then_delete_the_original() {
    for (verify, span) in common::MODES {
        move_into_a_growing_vector_then_delete_the_original_in(verify, span);
    }
}

fn move_into_a_growing_vector_then_delete_the_original_in(verify: bool, span: bool) {
    let heap = heap(verify, span);
    let mut m: Mutator<GrowM> = heap.mutator(|mc| Grow {
        from: GcArray::new(mc, SLOTS, None),
        vec: GcCell::new(None),
    });
    let start = Instant::now();
    let mut next_id = 0u64;
    let mut during_mark = 0usize;
    while start.elapsed() < run_for() {
        m.mutate(|mc, r| fill_fresh(mc, r.from, &mut next_id));
        m.mutate(|mc, r| {
            if mc.debug_marking() {
                during_mark += 1;
            }
            // A new vector each round, grown one push at a time (each growth copies the
            // elements into a new, black array), taking the only references.
            let v = GcVec::new(mc);
            r.vec.set(mc, Some(v));
            for i in 0..SLOTS {
                v.push(mc, r.from.get(i));
                r.from.set(mc, i, None);
                obj(mc, u64::MAX);
            }
        });
        let ok = m.mutate(|_, r| {
            let v = r.vec.get().unwrap();
            v.len() == SLOTS && v.iter().flatten().all(|o| intact(&o))
        });
        assert!(ok, "a moved object was lost or corrupted");
    }
    heap.debug_back_to_back(false);
    assert!(during_mark > 0, "no scope ran while marking");
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
#[gc(unsafe_drop)]
struct Counted(u64);

// SAFETY: `Counted` holds no GC handle.
unsafe impl gc_core::UnsafeDrop for Counted {}

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn objects_allocated_while_marking_survive_and_garbage_is_freed_by_the_next_cycle() {
    for (verify, span) in common::MODES {
        objects_allocated_while_marking_survive_and_garbage_is_freed_by_the_next_cycle_in(
            verify, span,
        );
    }
}

fn objects_allocated_while_marking_survive_and_garbage_is_freed_by_the_next_cycle_in(
    verify: bool,
    span: bool,
) {
    let heap = heap(verify, span);
    let dropped0 = DROPPED.load(Ordering::Relaxed);
    let mut m: Mutator<Rootable!['gc => GcVec<'gc, Option<Gc<'gc, Counted>>>]> =
        heap.mutator(|mc| GcVec::new(mc));
    let start = Instant::now();
    let (mut kept, mut garbage, mut during_mark) = (0u64, 0u64, 0u64);
    while start.elapsed() < run_for() {
        m.mutate(|mc, keep| {
            let marking = mc.debug_marking();
            for _ in 0..100 {
                let o = Gc::new(mc, Counted(kept));
                if marking {
                    during_mark += 1;
                }
                if garbage % 4 == 0 {
                    keep.push(mc, Some(o));
                    kept += 1;
                }
                garbage += 1;
            }
        });
    }
    heap.debug_back_to_back(false);
    assert!(during_mark > 0, "nothing was allocated while marking");
    // Two full cycles after the last allocation: everything unreachable is gone, nothing
    // reachable is (drops counted; the kept ones are checked in order).
    m.collect();
    m.collect();
    assert_eq!(
        (DROPPED.load(Ordering::Relaxed) - dropped0) as u64,
        garbage - kept
    );
    let ok = m.mutate(|_, keep| {
        keep.iter()
            .enumerate()
            .all(|(i, o)| o.is_some_and(|o| o.0 == i as u64))
    });
    assert!(ok, "a kept object was lost");
}

/// Concurrent markers scan a large array a chunk at a time (continuations can be handed from
/// an assist to the background worker). Objects move between the array's last and first
/// chunks under the barrier while cycles run back to back, fresh ones replace old ones, and
/// every slot must still hold its intact object. (Checked by hand: dropping the continuation
/// makes the verifier abort at once.)
#[test]
fn large_arrays_scanned_in_chunks_lose_nothing() {
    for (verify, span) in common::MODES {
        large_arrays_scanned_in_chunks_lose_nothing_in(verify, span);
    }
}

fn large_arrays_scanned_in_chunks_lose_nothing_in(verify: bool, span: bool) {
    const LEN: usize = if cfg!(miri) { 300 } else { 20_000 };
    // Two extra background mark helpers (sized as for 12 CPUs), so chunks of the array also
    // travel between several markers.
    let heap = Heap::new(
        Config::default()
            .verify(verify)
            .span_marking(span)
            .debug_cpus(12),
    )
    .unwrap();
    heap.debug_back_to_back(true);
    let mut m: Mutator<Rootable!['gc => GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>]> =
        heap.mutator(|mc| GcArray::new(mc, LEN, None));
    let mut ids: Vec<u64> = (0..LEN as u64).collect();
    m.mutate(|mc, a| {
        for (i, &id) in ids.iter().enumerate() {
            a.set(mc, i, Some(obj(mc, id)));
        }
    });
    let start = Instant::now();
    let cycles0 = heap.stats().gc_cycles;
    let (mut next, mut k, mut during_mark) = (LEN as u64, 0usize, 0usize);
    // At least five cycles, however slow the build (ThreadSanitizer, Miri).
    while start.elapsed() < run_for() || heap.stats().gc_cycles - cycles0 < 5 {
        assert!(start.elapsed() < Duration::from_secs(120), "cycles stalled");
        m.mutate(|mc, a| {
            if mc.debug_marking() {
                during_mark += 1;
            }
            for _ in 0..50 {
                k = k
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // A slot of the last chunk and one of the first: swap them.
                let (i, j) = (LEN - 1 - (k >> 40) % 100, (k >> 20) % 100);
                let (x, y) = (a.get(i), a.get(j));
                a.set(mc, i, y);
                a.set(mc, j, x);
                ids.swap(i, j);
                // Replace one slot anywhere with a fresh object (the old one is garbage).
                let r = (k >> 8) % LEN;
                a.set(mc, r, Some(obj(mc, next)));
                ids[r] = next;
                next += 1;
            }
        });
        m.mutate(|_, a| {
            for (i, &id) in ids.iter().enumerate() {
                let o = a.get(i).expect("slot emptied");
                assert!(intact(&o), "object {} corrupted", o.id);
                assert_eq!(o.id, id, "slot {i} holds the wrong object");
            }
        });
    }
    heap.debug_back_to_back(false);
    let cycles = heap.stats().gc_cycles - cycles0;
    assert!(cycles >= 5, "only {cycles} cycles ran");
    assert!(during_mark > 0, "no scope ran while marking");
    // The replaced objects are reclaimed: the live count comes back to the array's.
    m.collect();
    m.collect();
    assert_eq!(heap.stats().marked_objects, LEN as u64 + 1);
}

// ---- Deterministic versions: the marker is held at a known point of the cycle. ----
//
// Objects are created white (before the cycle), the cycle starts with the background marker
// held, so nothing the mutator does not scan itself gets scanned; the scope then moves each
// object's only reference into something the marker will never scan (a black object allocated
// during the mark, or the already-scanned root stack) and deletes the original. Checked by
// hand against broken barriers: with no barrier all three abort in the verifier (objects freed
// while reachable); with only the insertion half the root-stack one aborts; with only the
// deletion half (the one the snapshot argument of `concurrent.rs` relies on) all pass.

#[derive(Trace)]
struct Holder<'gc> {
    items: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
}

#[derive(Trace)]
struct Det<'gc> {
    from: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
    to: GcCell<'gc, Option<Gc<'gc, Holder<'gc>>>>,
    vec: GcCell<'gc, Option<GcVec<'gc, Option<Gc<'gc, Obj<'gc>>>>>>,
}

type DetM = Rootable!['gc => Det<'gc>];

const N: usize = if cfg!(miri) { 20 } else { 200 };

/// A heap and mutator with `N` white objects in `from`, and a cycle in its mark phase with the
/// background marker held.
fn held_cycle(verify: bool, span: bool) -> (Heap, Mutator<DetM, StackM>) {
    let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
    let mut m: Mutator<DetM, StackM> = heap.mutator_with_stack(|mc| Det {
        from: GcArray::new(mc, N, None),
        to: GcCell::new(None),
        vec: GcCell::new(None),
    });
    m.mutate(|mc, r| {
        assert!(!mc.debug_marking());
        for i in 0..N {
            r.from.set(mc, i, Some(obj(mc, i as u64)));
        }
    });
    common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
    (heap, m)
}

/// Let the held cycle finish, run another, and check the moved objects.
fn finish_and_check(
    heap: &Heap,
    m: &mut Mutator<DetM, StackM>,
    get: impl Fn(&Det<'_>) -> Vec<u64>,
) {
    common::release_held(heap);
    m.collect();
    m.collect();
    let ids = m.mutate(|_, r| get(r));
    assert_eq!(ids, (0..N as u64).collect::<Vec<_>>());
    assert_eq!(m.mutate(|_, r| r.from.iter().flatten().count()), 0);
}

/// What a cycle allocates while it marks is marked for that alone (allocate-black), and its
/// record says how much: `heap_marked − heap_reached` covers it. The next cycle frees it, since
/// none of it stayed reachable; with the stop-the-world collector nothing is allocated black.
/// Small objects and large ones (their own spans, allocated black on another path) alike.
#[test]
fn cycle_records_count_what_was_allocated_black() {
    const GARBAGE: usize = 2000;
    const LARGE: usize = 16;
    const LARGE_LEN: usize = 8192;
    for (verify, span) in common::MODES {
        let (heap, mut m) = held_cycle(verify, span);
        heap.take_cycle_records();
        m.mutate(|mc, _| {
            assert!(mc.debug_marking());
            for i in 0..GARBAGE {
                std::hint::black_box(Gc::new(mc, [i as u64; 8]));
            }
            for i in 0..LARGE {
                std::hint::black_box(GcArray::new(mc, LARGE_LEN, i as u64));
            }
        });
        common::release_held(&heap);
        m.collect();
        m.collect();
        let recs = heap.take_cycle_records();
        let black = GARBAGE * 64 + LARGE * LARGE_LEN * 8;
        let held = recs
            .iter()
            .position(|r| r.heap_marked - r.heap_reached >= black)
            .unwrap_or_else(|| {
                panic!("verify={verify}: no record shows {black} bytes allocated black: {recs:?}")
            });
        let after = recs[held + 1..].last().expect("a cycle after the held one");
        assert!(
            after.heap_marked + black <= recs[held].heap_marked,
            "verify={verify}, span={span}: the garbage allocated black was not freed: {} then {} bytes marked",
            recs[held].heap_marked,
            after.heap_marked
        );
        assert!(recs.iter().all(|r| r.heap_reached <= r.heap_marked));
    }
    let heap = Heap::new(Config::default().concurrent(false)).unwrap();
    let mut m: Mutator<DetM, StackM> = heap.mutator_with_stack(|mc| Det {
        from: GcArray::new(mc, N, None),
        to: GcCell::new(None),
        vec: GcCell::new(None),
    });
    m.mutate(|mc, r| {
        for i in 0..N {
            r.from.set(mc, i, Some(obj(mc, i as u64)));
        }
    });
    m.collect();
    let recs = heap.take_cycle_records();
    assert!(!recs.is_empty());
    assert!(
        recs.iter().all(|r| r.heap_reached == r.heap_marked),
        "{recs:?}"
    );
}

#[test]
fn held_marker_heap_to_black_object() {
    for (verify, span) in common::MODES {
        held_marker_heap_to_black_object_in(verify, span);
    }
}

fn held_marker_heap_to_black_object_in(verify: bool, span: bool) {
    let (heap, mut m) = held_cycle(verify, span);
    m.mutate(|mc, r| {
        assert!(mc.debug_marking());
        let holder = Gc::new(
            mc,
            Holder {
                items: GcArray::new(mc, N, None),
            },
        );
        r.to.set(mc, Some(holder));
        for i in 0..N {
            holder.items.set(mc, i, r.from.get(i));
            r.from.set(mc, i, None);
        }
    });
    finish_and_check(&heap, &mut m, |r| {
        let h = r.to.get().unwrap();
        h.items
            .iter()
            .map(|o| {
                let o = o.unwrap();
                assert!(intact(&o));
                o.id
            })
            .collect()
    });
}

#[test]
fn held_marker_heap_to_root_stack() {
    for (verify, span) in common::MODES {
        held_marker_heap_to_root_stack_in(verify, span);
    }
}

fn held_marker_heap_to_root_stack_in(verify: bool, span: bool) {
    let (heap, mut m) = held_cycle(verify, span);
    m.mutate_with_stack(|mc, r, stack| {
        assert!(mc.debug_marking());
        for i in 0..N {
            stack.push(r.from.get(i).unwrap());
            r.from.set(mc, i, None);
        }
    });
    common::release_held(&heap);
    m.collect();
    m.collect();
    let ids: Vec<u64> = m.mutate_with_stack(|_, _, stack| {
        stack.with(|v| {
            v.iter()
                .map(|o| {
                    assert!(intact(o));
                    o.id
                })
                .collect()
        })
    });
    assert_eq!(ids, (0..N as u64).collect::<Vec<_>>());
}

/// A large object (its own span) made while marking and held only on the root stack, which
/// has no barrier and was scanned before the push: allocated black, it survives the cycle, and
/// large arrays made after it (garbage, which would take its pages if it were freed) leave it
/// as it was.
#[test]
fn a_large_object_made_while_marking_lives_on_the_root_stack() {
    type BigStack = Rootable!['gc => GcArray<'gc, u64>];
    const LEN: usize = 10_000;
    for (verify, span) in common::MODES {
        let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
        let mut m: Mutator<Rootable!['gc => ()], BigStack> = heap.mutator_with_stack(|_| ());
        common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
        m.mutate_with_stack(|mc, _, stack| {
            assert!(mc.debug_marking());
            stack.push(GcArray::new(mc, LEN, 7u64));
        });
        common::release_held(&heap);
        m.collect();
        for _ in 0..2 {
            m.mutate(|mc, _| {
                for _ in 0..4 {
                    GcArray::new(mc, LEN, 3u64);
                }
            });
            m.collect();
        }
        m.mutate_with_stack(|_, _, stack| {
            let a = stack.last().expect("the array");
            assert_eq!(a.len(), LEN, "verify={verify} span={span}");
            assert!(
                (0..LEN).all(|i| a.get(i) == 7),
                "verify={verify} span={span}: the array was overwritten"
            );
        });
    }
}

#[test]
fn held_marker_heap_to_growing_vector() {
    for (verify, span) in common::MODES {
        held_marker_heap_to_growing_vector_in(verify, span);
    }
}

fn held_marker_heap_to_growing_vector_in(verify: bool, span: bool) {
    let (heap, mut m) = held_cycle(verify, span);
    m.mutate(|mc, r| {
        assert!(mc.debug_marking());
        let v = GcVec::new(mc);
        r.vec.set(mc, Some(v));
        for i in 0..N {
            v.push(mc, r.from.get(i));
            r.from.set(mc, i, None);
        }
    });
    finish_and_check(&heap, &mut m, |r| {
        r.vec
            .get()
            .unwrap()
            .iter()
            .map(|o| {
                let o = o.unwrap();
                assert!(intact(&o));
                o.id
            })
            .collect()
    });
}

/// Each collector's cycles are recorded as their own pauses, then their sweep, once: the
/// concurrent collector's sweep termination, mark phase and mark termination, the
/// stop-the-world collector's one pause; and each cycle's sweep after its last pause.
#[test]
fn each_cycle_records_its_pauses_then_its_sweep() {
    use gc_core::phases::Phase;
    // Verify mode too: its sweep ends inside the pause, and the cycle after records it.
    for (concurrent, verify) in [(true, false), (false, false), (true, true)] {
        let heap = Heap::new(
            Config::default()
                .concurrent(concurrent)
                .verify(verify)
                .gc_percent(None),
        )
        .unwrap();
        let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        heap.take_phase_records();
        let first = heap.stats().gc_cycles + 1;
        for _ in 0..3 {
            m.mutate(|mc, _| {
                for i in 0..1000u64 {
                    obj(mc, i);
                }
            });
            m.collect();
        }
        let recs = heap.take_phase_records();
        // The last cycle's sweep may be recorded later (the background sweeper notes its end).
        for cycle in first..first + 2 {
            let of = |p: Phase| {
                recs.iter()
                    .filter(|r| r.cycle == cycle && r.phase == p)
                    .count()
            };
            let (mine, stw) = if concurrent {
                (
                    [Phase::SweepTermination, Phase::Mark, Phase::MarkTermination],
                    Phase::StopTheWorldCycle,
                )
            } else {
                ([Phase::StopTheWorldCycle; 3], Phase::MarkTermination)
            };
            for p in mine {
                assert_eq!(
                    of(p),
                    1,
                    "concurrent={concurrent} cycle {cycle} {p:?}: {recs:?}"
                );
            }
            assert_eq!(
                of(stw),
                0,
                "concurrent={concurrent} cycle {cycle}: {recs:?}"
            );
            assert_eq!(
                of(Phase::Sweep),
                1,
                "concurrent={concurrent} cycle {cycle}: {recs:?}"
            );
            let last_pause = recs
                .iter()
                .filter(|r| r.cycle == cycle && r.phase.is_pause())
                .map(|r| r.end())
                .max()
                .unwrap();
            let sweep = recs
                .iter()
                .find(|r| r.cycle == cycle && r.phase == Phase::Sweep)
                .unwrap();
            assert!(
                sweep.start >= last_pause,
                "concurrent={concurrent}: {recs:?}"
            );
        }
    }
}

/// Every cycle's phases are recorded, in order, and the headline figures agree with the
/// records they summarise: the pause count and total, `pause_max` the longest pause (the first
/// made long on purpose, a scope that keeps its stop waiting 30 ms, then short ones after it),
/// and the Go-named frees metrics the stats' objects and bytes freed.
#[test]
fn phase_records_cover_every_cycle() {
    use gc_core::phases::Phase;
    let heap = Heap::new(Config::default()).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let slow = {
        let heap = heap.clone();
        std::thread::spawn(move || {
            let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
            m.mutate(|mc, _| {
                ready_tx.send(()).unwrap();
                // Held 30 ms past the stop's request (not past the message: the collector may
                // be slow to ask on a loaded machine), so the stop waits at least that long.
                let t = Instant::now();
                while !mc.should_yield() {
                    assert!(t.elapsed() < Duration::from_secs(20), "no stop requested");
                    std::hint::spin_loop();
                }
                std::thread::sleep(Duration::from_millis(30));
            });
        })
    };
    ready_rx.recv().unwrap();
    heap.collect();
    slow.join().unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    for _ in 0..3 {
        m.mutate(|mc, _| {
            for i in 0..1000u64 {
                obj(mc, i);
            }
        });
        m.collect();
    }
    heap.finish_sweep();
    let recs = heap.take_phase_records();
    let s = heap.stats();
    for cycle in 1..=s.gc_cycles {
        let of = |p: Phase| {
            recs.iter()
                .filter(|r| r.cycle == cycle && r.phase == p)
                .count()
        };
        assert_eq!(of(Phase::SweepTermination), 1, "cycle {cycle}: {recs:?}");
        assert_eq!(of(Phase::Mark), 1, "cycle {cycle}: {recs:?}");
        assert_eq!(of(Phase::MarkTermination), 1, "cycle {cycle}: {recs:?}");
    }
    let pauses: Vec<_> = recs.iter().filter(|r| r.phase.is_pause()).collect();
    assert_eq!(pauses.len() as u64, s.pauses);
    let total: Duration = pauses.iter().map(|r| r.duration).sum();
    assert_eq!(total, s.pause_total);
    let longest = pauses.iter().map(|r| r.duration).max().unwrap();
    assert_eq!(s.pause_max, longest, "{recs:?}");
    assert!(longest >= Duration::from_millis(20), "{recs:?}");
    // The last pause (short), and the marking inside the cycles' time.
    assert_eq!(s.last_pause, pauses.last().unwrap().duration);
    assert!(
        Duration::ZERO < s.mark_total && s.mark_total < s.cycle_total,
        "{s:?}"
    );
    let metrics = heap.metrics();
    assert!(s.objects_freed >= 3000);
    assert_eq!(metrics.u64("/gc/heap/frees:objects"), Some(s.objects_freed));
    assert_eq!(metrics.u64("/gc/heap/frees:bytes"), Some(s.bytes_freed));
    // Phases of one cycle come in order and do not overlap.
    for w in recs.windows(2) {
        if w[0].cycle == w[1].cycle && w[1].phase != Phase::Sweep {
            assert!(w[0].end() <= w[1].start, "{w:?}");
        }
    }
    // Taking empties the log (the last sweep may end, and be logged, in the meantime).
    let later = heap.take_phase_records();
    assert!(later.iter().all(|r| r.phase == Phase::Sweep), "{later:?}");
}

#[test]
fn allocating_while_marking_pays_with_mark_assists() {
    for (verify, span) in common::MODES {
        allocating_while_marking_pays_with_mark_assists_in(verify, span);
    }
}

fn allocating_while_marking_pays_with_mark_assists_in(verify: bool, span: bool) {
    // The background marker is held, so only the allocating mutator's assists can mark the
    // white live list: they must, and must leave it intact.
    let (heap, mut m) = held_cycle(verify, span);
    // Assists are what this test is about.
    heap.debug_hold_assists(false);
    heap.take_cycle_records();
    let before = heap.stats();
    m.mutate(|mc, r| {
        assert!(mc.debug_marking());
        // The white objects of `from` (greyed by this mutator's root scan) are what the assists
        // find to mark.
        for _ in 0..2000 {
            // ~4 MiB of garbage: enough allocation to owe marking many times over.
            for _ in 0..64 {
                obj(mc, u64::MAX);
            }
        }
        let _ = r;
    });
    let s = heap.stats();
    assert!(s.assists > before.assists, "no assist ran: {s:?}");
    assert!(
        s.assist_bytes > before.assist_bytes,
        "assists marked nothing: {s:?}"
    );
    heap.debug_hold_marking(false);
    m.collect();
    // The cycle's record counts its assists' CPU (gctrace, the pacer trace and the MMU with
    // assists read it): more than none, no more than the heap's total since.
    let recs = heap.take_cycle_records();
    let assist: Duration = recs.iter().map(|r| r.assist_cpu).sum();
    let total = heap.stats().assist_time - before.assist_time;
    assert!(
        assist > Duration::ZERO && assist <= total,
        "{assist:?} of {total:?} in the records: {recs:?}"
    );
    let ids: Vec<u64> = m.mutate(|_, r| {
        r.from
            .iter()
            .map(|o| {
                let o = o.unwrap();
                assert!(intact(&o));
                o.id
            })
            .collect()
    });
    assert_eq!(ids, (0..N as u64).collect::<Vec<_>>());
}

#[derive(Trace)]
struct Tree<'gc> {
    id: u64,
    left: Option<Gc<'gc, Tree<'gc>>>,
    right: Option<Gc<'gc, Tree<'gc>>>,
}

type TreeM = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Tree<'gc>>>>];

/// A complete binary tree of `depth` levels, numbered in preorder from `*next`.
fn tree<'gc>(mc: &gc_core::Mutation<'gc>, depth: u32, next: &mut u64) -> Gc<'gc, Tree<'gc>> {
    let id = *next;
    *next += 1;
    let (left, right) = if depth > 1 {
        (
            Some(tree(mc, depth - 1, next)),
            Some(tree(mc, depth - 1, next)),
        )
    } else {
        (None, None)
    };
    Gc::new(mc, Tree { id, left, right })
}

/// The ids of `t`'s nodes in preorder.
fn preorder(t: &Tree<'_>, out: &mut Vec<u64>) {
    out.push(t.id);
    for c in [&t.left, &t.right].into_iter().flatten() {
        preorder(c, out);
    }
}

#[test]
fn assists_offer_the_bottom_of_their_stack_to_the_queue() {
    // Under Miri one setting, with a tree small enough for it (a span-local assist offers
    // only when more than one span waits, so those settings need the full-size tree).
    let modes: &[(bool, bool)] = if cfg!(miri) {
        &[(false, false)]
    } else {
        &common::MODES
    };
    for &(verify, span) in modes {
        assists_offer_the_bottom_of_their_stack_to_the_queue_in(verify, span);
    }
}

/// An assist marking a tree depth-first holds about the tree's depth of grey objects, the
/// bottom ones rooting the largest unmarked subtrees. Whenever the shared queue is empty it
/// offers the older half of them, so that a background worker or idle-priority marking on a
/// spare CPU can mark them instead of the allocating mutator. Here the background marker is
/// held, so only assists mark, and the cycle's balancing count is theirs (they finish the
/// tree before the marker is let go); nothing is lost on the way through the queue. With
/// span-local marking an assist keeps grey objects on their spans and offers spans, so the tree
/// (12 levels: 4 095 nodes in about 12 spans) must cover more than one.
fn assists_offer_the_bottom_of_their_stack_to_the_queue_in(verify: bool, span: bool) {
    const DEPTH: u32 = if cfg!(miri) { 9 } else { 12 };
    let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
    let mut m: Mutator<TreeM> = heap.mutator(|_| GcCell::new(None));
    m.mutate(|mc, root| {
        let mut next = 0;
        root.set(mc, Some(tree(mc, DEPTH, &mut next)));
    });
    let cycles = heap.stats().gc_cycles;
    common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
    // Assists are what this test is about.
    heap.debug_hold_assists(false);
    // Allocate far more than the tree while the marker is held: the assists owe the whole
    // tree's marking many times over.
    m.mutate(|mc, _| {
        for _ in 0..if cfg!(miri) { 2_000 } else { 64_000 } {
            obj(mc, u64::MAX);
        }
    });
    heap.debug_hold_marking(false);
    // Let the held cycle end (the mutator reaches safepoints), without starting another.
    let t = Instant::now();
    while heap.stats().gc_cycles == cycles {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the cycle did not end"
        );
        m.mutate(|_, _| ());
        std::thread::yield_now();
    }
    let s = heap.stats();
    assert!(s.assist_bytes > 0, "assists marked nothing: {s:?}");
    assert!(
        s.mark_shared_batches > 0,
        "no assist offered grey work (verify {verify}, span-local {span}): {s:?}"
    );
    m.collect();
    let ids = m.mutate(|_, root| {
        let mut ids = Vec::new();
        preorder(&root.get().unwrap(), &mut ids);
        ids
    });
    assert_eq!(ids, (0..(1u64 << DEPTH) - 1).collect::<Vec<_>>());
}

#[derive(Trace)]
struct Weaks<'gc> {
    strong: GcVec<'gc, Option<Gc<'gc, Obj<'gc>>>>,
    weak: GcVec<'gc, Option<gc_core::GcWeak<'gc, Obj<'gc>>>>,
}

type WeaksM = Rootable!['gc => Weaks<'gc>];

fn weaks_mutator(heap: &Heap) -> Mutator<WeaksM> {
    heap.mutator(|mc| Weaks {
        strong: GcVec::new(mc),
        weak: GcVec::new(mc),
    })
}

#[test]
fn weak_references_cleared_with_the_world_running() {
    // Verify mode off: weak references are then cleared after STW 2 with the world running
    // (verify mode clears them inside the pause). An upgrade must never hand out a dead object
    // (or whatever reused its slot), and every weak reference to garbage must end up dead.
    let heap = Heap::new(Config::default()).unwrap();
    heap.debug_back_to_back(true);
    let mut m = weaks_mutator(&heap);
    let start = Instant::now();
    let mut next = 0u64;
    let mut upgrades = 0u64;
    // Ids of the objects in `strong`, in order: kept at creation or adopted after an upgrade.
    let mut expected: Vec<u64> = Vec::new();
    while start.elapsed() < run_for() {
        m.mutate(|mc, r| {
            for _ in 0..50 {
                let o = obj(mc, next);
                r.weak.push(mc, Some(o.downgrade(mc)));
                if next.is_multiple_of(3) {
                    r.strong.push(mc, Some(o));
                    expected.push(next);
                }
                next += 1;
            }
            // Upgrade a spread of older weak references: a live result must be the object
            // that weak reference was made for, intact.
            let n = r.weak.len();
            for k in (0..n).step_by(7) {
                if let Some(o) = r.weak.get(k).flatten().and_then(|w| w.upgrade(mc)) {
                    assert_eq!(o.id, k as u64, "weak {k} upgraded to another object");
                    assert!(intact(&o));
                    upgrades += 1;
                    // Hold on to some upgraded objects: an upgrade that handed out an object
                    // the collector considers dead would leave a freed (then reused) object
                    // here, caught by the id check at the end.
                    if k % 3 != 0 && k % 2 == 0 {
                        r.strong.push(mc, Some(o));
                        expected.push(k as u64);
                    }
                }
            }
        });
    }
    heap.debug_back_to_back(false);
    m.collect();
    m.collect();
    assert!(upgrades > 0);
    let held: Vec<u64> = m.mutate(|_, r| {
        r.strong
            .iter()
            .map(|o| {
                let o = o.unwrap();
                assert!(intact(&o));
                o.id
            })
            .collect()
    });
    assert_eq!(
        held, expected,
        "a held object was freed and its slot reused"
    );
    let held: std::collections::HashSet<u64> = held.into_iter().collect();
    m.mutate(|mc, r| {
        for k in 0..r.weak.len() {
            let alive = r.weak.get(k).flatten().unwrap().upgrade(mc);
            if k % 3 == 0 {
                assert_eq!(alive.map(|o| o.id), Some(k as u64), "kept object {k} lost");
            } else if !held.contains(&(k as u64)) {
                assert!(alive.is_none(), "weak {k} to garbage still upgrades");
            }
        }
    });
}

#[test]
fn upgrade_between_mark_termination_and_weak_clearing_sees_dead_targets() {
    // Hold the collector between STW 2 and the clearing of dead weak references: in that
    // window a weak reference to an unmarked (dead, not yet cleared) object must not upgrade.
    let heap = Heap::new(Config::default()).unwrap();
    let mut m = weaks_mutator(&heap);
    m.mutate(|mc, r| {
        for id in 0..10 {
            let o = obj(mc, id);
            r.weak.push(mc, Some(o.downgrade(mc)));
            if id % 2 == 0 {
                r.strong.push(mc, Some(o));
            }
        }
    });
    hold_before_weak_clearing(&heap);
    let alive: Vec<bool> = m.mutate(|mc, r| {
        r.weak
            .iter()
            .map(|w| w.unwrap().upgrade(mc).is_some())
            .collect()
    });
    assert!(
        heap.debug_weaks_pending(),
        "the window closed during the check"
    );
    heap.debug_hold_weak_clearing(false);
    assert_eq!(alive, (0..10).map(|id| id % 2 == 0).collect::<Vec<_>>());
    m.collect();
    assert!(m.mutate(|_, r| {
        r.weak
            .iter()
            .enumerate()
            .all(|(k, w)| w.unwrap().is_dead() == (k % 2 == 1))
    }));
}

#[test]
fn weak_references_made_while_weak_clearing_is_pending() {
    // Between STW 2 and the clearing of dead weak references (held open here), a mutator makes
    // new weak references: to an object allocated in that window and to an old live object.
    // Both boxes are unmarked (marking is over) but alive; the new target too. The clearing
    // must neither clear them nor drop the boxes from the registry (a dropped box would never
    // be cleared, and would upgrade to whatever reuses its target's slot).
    let heap = Heap::new(Config::default()).unwrap();
    let mut m = weaks_mutator(&heap);
    m.mutate(|mc, r| r.strong.push(mc, Some(obj(mc, 1))));
    hold_before_weak_clearing(&heap);
    let in_window: Vec<Option<u64>> = m.mutate(|mc, r| {
        let new = obj(mc, 2);
        r.strong.push(mc, Some(new));
        r.weak.push(mc, Some(new.downgrade(mc)));
        let old = r.strong.get(0).flatten().unwrap();
        r.weak.push(mc, Some(old.downgrade(mc)));
        (0..2)
            .map(|k| r.weak.get(k).flatten().unwrap().upgrade(mc).map(|o| o.id))
            .collect()
    });
    let still_pending = heap.debug_weaks_pending();
    // Release the collector before any assertion (a failing one would otherwise leave it held).
    heap.debug_hold_weak_clearing(false);
    assert!(still_pending, "the window closed too early");
    // In the window, both targets are alive.
    assert_eq!(in_window, [Some(2), Some(1)], "a live target read as dead");
    m.collect();
    let ids = |m: &mut Mutator<WeaksM>| -> Vec<Option<u64>> {
        m.mutate(|mc, r| {
            (0..2)
                .map(|k| r.weak.get(k).flatten().unwrap().upgrade(mc).map(|o| o.id))
                .collect()
        })
    };
    assert_eq!(ids(&mut m), [Some(2), Some(1)], "a live target was cleared");
    // Drop both targets: their weak references must be cleared (so the boxes are still
    // registered), and must not upgrade to new objects in the reused slots.
    m.mutate(|mc, r| {
        r.strong.pop(mc);
        r.strong.pop(mc);
    });
    m.collect();
    m.collect();
    m.mutate(|mc, r| {
        for _ in 0..1000 {
            r.strong.push(mc, Some(obj(mc, 99)));
        }
    });
    assert_eq!(
        ids(&mut m),
        [None, None],
        "a dead target's weak reference was not cleared"
    );
}

/// binary-trees in small: a long-lived tree, and trees of a few thousand nodes built and
/// dropped one per scope, beside a collector pacing itself on two CPUs. Each sweep empties
/// spans that are kept for their class, the mutator's assists hold grey work and finish it
/// while the collector looks for work, and the collector must free the kept spans before every
/// mark termination, also when the last assist's work ran out between its checks (a kept
/// span at termination is a collector bug, which aborts). Nothing reachable is lost (the
/// long-lived tree reads intact) and the dropped trees are freed. The race needs release
/// speed: with the collector's last freeing taken out, the release build aborted in 3 runs
/// of 3 and the debug build never (`scripts/test.sh` runs it in both).
#[test]
fn churned_trees_beside_a_long_lived_one_keep_no_span_at_termination() {
    for (verify, span) in common::MODES {
        churned_trees_beside_a_long_lived_one_in(verify, span);
    }
}

fn churned_trees_beside_a_long_lived_one_in(verify: bool, span: bool) {
    let heap = Heap::new(
        Config::default()
            .verify(verify)
            .span_marking(span)
            .debug_cpus(2),
    )
    .unwrap();
    let mut m: Mutator<TreeM> = heap.mutator(|_| GcCell::new(None));
    let mut next = 0;
    // Smaller in debug builds and under Miri, where each node costs far more.
    let (long_depth, churn_depth) = if cfg!(miri) {
        (6, 4)
    } else if cfg!(debug_assertions) {
        (13, 9)
    } else {
        (15, 11)
    };
    m.mutate(|mc, root| root.set(mc, Some(tree(mc, long_depth, &mut next))));
    let long_lived = next;
    let before = heap.stats();
    // For `run_for`, and at least 5 cycles (slow builds: sanitizers, verify mode's pauses).
    let start = Instant::now();
    let mut built = 0u64;
    while start.elapsed() < run_for() || heap.stats().gc_cycles < before.gc_cycles + 5 {
        assert!(start.elapsed().as_secs() < 300, "5 cycles took 5 minutes");
        m.mutate(|mc, _| {
            let mut id = 0;
            let t = tree(mc, churn_depth, &mut id);
            let mut ids = Vec::new();
            preorder(&t, &mut ids);
            assert_eq!(ids.len() as u64, id);
        });
        built += (1 << churn_depth) - 1;
    }
    let s = heap.stats();
    assert!(s.gc_cycles >= before.gc_cycles + 5, "{s:?}");
    assert!(
        s.objects_freed >= before.objects_freed + built / 2,
        "{built} nodes dropped, {} freed",
        s.objects_freed - before.objects_freed
    );
    m.mutate(|_, root| {
        let mut ids = Vec::new();
        preorder(&root.get().unwrap(), &mut ids);
        assert_eq!(ids, (0..long_lived).collect::<Vec<_>>());
    });
}

/// Allocate one `[u64; N]` of each size listed (each its own type, so each its own span class
/// and cache entry).
macro_rules! one_of_each {
    ($mc:ident; $($n:literal)*) => {
        $( Gc::new($mc, [7u64; $n]); )*
    };
}

/// Two hundred types allocated while marking: more span classes than the mutator's cache has
/// entries (128), so entries are evicted with their windows mostly unused. A window loaded
/// while marking has its free slots marked in advance (allocate-black); written back, the
/// slots it did not hand out must lose those marks, or the sweep would take them for live
/// objects (it stops the process on a marked free slot). Verify mode on and off; the garbage
/// is reclaimed.
#[test]
fn cache_entries_evicted_while_marking_give_back_their_unused_slots() {
    type R = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, u64>>>];
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|_| GcCell::new(None));
        common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
        m.mutate(|mc, _| {
            one_of_each!(mc; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127 128 129 130 131 132 133 134 135 136 137 138 139 140 141 142 143 144 145 146 147 148 149 150 151 152 153 154 155 156 157 158 159 160 161 162 163 164 165 166 167 168 169 170 171 172 173 174 175 176 177 178 179 180 181 182 183 184 185 186 187 188 189 190 191 192 193 194 195 196 197 198 199 200);
        });
        common::release_held(&heap);
        m.collect();
        m.collect();
        let s = heap.stats();
        assert!(
            s.objects_freed >= 200,
            "verify={verify}: {} freed",
            s.objects_freed
        );
        assert_eq!(s.marked_objects, 0, "verify={verify}");
    }
}

/// A scope that stores pointers while the collector marks shades what its barrier buffered
/// when it ends, so that mark termination finds the buffer empty (a pointer left for the
/// pause to shade could make the attempt fail: another pause).
#[test]
fn a_scope_that_ends_while_marking_leaves_its_barrier_buffer_empty() {
    for (verify, span) in common::MODES {
        let (heap, mut m) = held_cycle(verify, span);
        m.mutate(|mc, r| {
            assert!(mc.debug_marking());
            r.from.set(mc, 0, Some(obj(mc, u64::MAX)));
        });
        assert_eq!(
            m.debug_barrier_buffer_len(),
            0,
            "verify={verify} span={span}: the scope left its buffer to the pause"
        );
        common::release_held(&heap);
        m.collect();
        m.mutate(|_, r| assert!(intact(&r.from.get(0).unwrap())));
    }
}

/// An assist pays what its allocation owes (at least 64 KiB of scan work ahead) and returns;
/// it does not go on marking whatever grey work it finds: one allocation's assist, with the
/// background marker held and 6 MiB of objects to mark, marks a small part of them.
#[test]
#[cfg_attr(miri, ignore = "a heap large enough to tell the two apart")]
fn an_assist_marks_what_it_owes_not_everything_it_finds() {
    type R = Rootable!['gc => GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>];
    const OBJECTS: usize = 1 << 18;
    for (verify, span) in common::MODES {
        let heap = Heap::new(Config::default().verify(verify).span_marking(span)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|mc| GcArray::new(mc, OBJECTS, None));
        for i in (0..OBJECTS).step_by(1024) {
            m.mutate(|mc, a| {
                for j in i..i + 1024 {
                    a.set(mc, j, Some(obj(mc, j as u64)));
                }
            });
        }
        m.collect();
        common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
        // Assists are what this test is about.
        heap.debug_hold_assists(false);
        // Allocate until an allocation assists (at a cache refill, once the assist ratio
        // makes it owe something): what that one allocation marked.
        let marked = m.mutate(|mc, _| {
            let before = mc.stats();
            for i in 0..1_000_000 {
                obj(mc, i);
                let s = mc.stats();
                if s.assists > before.assists {
                    return s.assist_bytes - before.assist_bytes;
                }
            }
            panic!("verify={verify} span={span}: no assist");
        });
        assert!(
            marked < (OBJECTS * 24 / 4) as u64,
            "verify={verify} span={span}: one allocation's assist marked {marked} bytes"
        );
        heap.debug_hold_marking(false);
        m.collect();
        m.mutate(|_, a| assert!(a.iter().flatten().all(|o| intact(&o))));
    }
}

/// A mutator dropped while the collector marks gives back the unused slots of its allocation
/// window, which were made black when the window was loaded: no sweep finds them marked but
/// never allocated (it stops the process), and the objects it did allocate are counted as
/// allocated black. Its span is one no other mutator takes before marking ends (a type nobody
/// else allocates). Verify mode on and off.
#[test]
fn a_mutator_dropped_while_marking_gives_back_its_unused_slots() {
    type R = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, u64>>>];
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|_| GcCell::new(None));
        common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
        heap.take_cycle_records();
        let freed = heap.stats().objects_freed;
        let mut d: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        d.mutate(|mc, _| {
            assert!(mc.debug_marking());
            for i in 0..3u64 {
                std::hint::black_box(Gc::new(mc, [i; 3]));
            }
        });
        drop(d);
        common::release_held(&heap);
        m.collect();
        m.collect();
        let recs = heap.take_cycle_records();
        assert!(
            recs.first()
                .is_some_and(|r| r.heap_marked - r.heap_reached >= 3 * 24),
            "verify={verify}: the departed mutator's objects not counted black: {recs:?}"
        );
        assert!(
            heap.stats().objects_freed >= freed + 3,
            "verify={verify}: its garbage not freed"
        );
    }
}

/// A span evicted from the mutator's cache with free slots goes back to its class's list, so
/// that the next refill of that class takes it rather than a new span: forty rounds of two
/// hundred types (more span classes than the cache has entries, so every round evicts most of
/// them) with no cycle to find stranded spans, in about the spans one round needs.
#[test]
fn spans_evicted_from_the_cache_are_refilled_from() {
    type R = Rootable!['gc => ()];
    let heap = Heap::new(Config::default().gc_percent(None)).unwrap();
    let mut m: Mutator<R> = heap.mutator(|_| ());
    let mut after_one = 0;
    for round in 0..40 {
        m.mutate(|mc, _| {
            one_of_each!(mc; 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127 128 129 130 131 132 133 134 135 136 137 138 139 140 141 142 143 144 145 146 147 148 149 150 151 152 153 154 155 156 157 158 159 160 161 162 163 164 165 166 167 168 169 170 171 172 173 174 175 176 177 178 179 180 181 182 183 184 185 186 187 188 189 190 191 192 193 194 195 196 197 198 199 200);
        });
        if round == 0 {
            after_one = heap.stats().in_use_bytes;
        }
    }
    let s = heap.stats();
    assert_eq!(s.gc_cycles, 0);
    // The later rounds' objects (6.3 MB) go mostly into the first round's spans (its 6 MB
    // mostly free slots); with each evicted span stranded, every refill took a new span
    // (160 MB here).
    assert!(
        s.in_use_bytes <= 2 * after_one,
        "{} KiB in use after 40 rounds, {} KiB after one",
        s.in_use_bytes >> 10,
        after_one >> 10
    );
}

/// A mutator allocating slowly while a large heap is marked pays its assists with the
/// background workers' credit (the scan work they did beyond their share), not by marking or
/// waiting itself: every 300 µs it allocates 16 KiB, and the background worker, marking 34 MB
/// meanwhile, earns more than that costs. Measured: no assist in 34–36 scopes; with the credit
/// never earned, 500–590 assists (the mutator waited in them) in 8–12 scopes.
#[test]
fn a_slow_allocator_pays_its_assists_with_background_credit() {
    type R = Rootable!['gc => GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>];
    const N: usize = if cfg!(miri) { 1 << 10 } else { 1 << 20 };
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|mc| GcArray::new(mc, N, None));
        for i in (0..N).step_by(1024) {
            m.mutate(|mc, arr| {
                for j in i..i + 1024 {
                    arr.set(mc, j, Some(obj(mc, j as u64)));
                }
            });
        }
        m.collect();
        let before = heap.stats();
        heap.debug_start_cycle();
        let (mut seen, mut scopes) = (false, 0u64);
        let t = Instant::now();
        loop {
            let marking = m.mutate(|mc, _| {
                for i in 0..682 {
                    obj(mc, i);
                }
                mc.debug_marking()
            });
            scopes += 1;
            seen |= marking;
            if (seen && !marking) || t.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        let assists = heap.stats().assists - before.assists;
        assert!(seen, "verify={verify}: no mark phase seen");
        assert!(
            assists <= 2 * scopes,
            "verify={verify}: {assists} assists in {scopes} scopes"
        );
        m.mutate(|_, arr| assert!(arr.iter().flatten().all(|o| intact(&o))));
    }
}

/// A chain link whose `trace` counts the calls made on a background mark helper's thread and,
/// on the collector's thread, spins for 20 µs: the collector then cannot mark a heap of them
/// alone before the helpers take some of its work.
struct SlowLink<'gc> {
    next: Option<Gc<'gc, SlowLink<'gc>>>,
}

static TRACED_ON_HELPERS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: traces its one `Gc` field; the rest of `trace` touches no heap object.
unsafe impl Trace for SlowLink<'_> {
    fn trace(&self, t: &mut gc_core::Tracer) {
        let name = std::thread::current().name().map(str::to_owned);
        if name
            .as_deref()
            .is_some_and(|n| n.starts_with("gc-core mark worker"))
        {
            TRACED_ON_HELPERS.fetch_add(1, Ordering::Relaxed);
        } else if name.as_deref() == Some("gc-core collector") {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_micros(20) {
                std::hint::spin_loop();
            }
        }
        self.next.trace(t);
    }
}

/// Concurrent marking with helpers (sized as for 8 CPUs: the collector thread and one
/// dedicated background helper) gives the helper some of the work: objects are traced on its
/// thread, and every object survives. (Not started, the helper would stay parked and the
/// collector mark alone; nothing else would show it.)
#[test]
fn concurrent_marking_hands_work_to_the_background_helper() {
    const CHAINS: usize = if cfg!(miri) { 20 } else { 2_000 };
    const LINKS: usize = 10;
    for verify in [false, true] {
        let heap = Heap::new(
            Config::default()
                .verify(verify)
                .gc_percent(None)
                .debug_cpus(8),
        )
        .unwrap();
        let mut m: Mutator<Rootable!['gc => GcVec<'gc, Option<Gc<'gc, SlowLink<'gc>>>>]> =
            heap.mutator(|mc| GcVec::new(mc));
        m.mutate(|mc, v| {
            for _ in 0..CHAINS {
                let mut next = None;
                for _ in 0..LINKS {
                    next = Some(Gc::new(mc, SlowLink { next }));
                }
                v.push(mc, next);
            }
        });
        TRACED_ON_HELPERS.store(0, Ordering::Relaxed);
        // A few collections at most: which marker takes what is timing.
        for _ in 0..10 {
            m.collect();
            if TRACED_ON_HELPERS.load(Ordering::Relaxed) > 0 {
                break;
            }
        }
        assert!(
            TRACED_ON_HELPERS.load(Ordering::Relaxed) > 0,
            "verify {verify}: the helper traced nothing"
        );
        // The links, the vector and its buffer.
        assert_eq!(
            heap.stats().marked_objects,
            (CHAINS * LINKS + 2) as u64,
            "verify {verify}"
        );
        let links: usize = m.mutate(|_, v| {
            v.iter()
                .map(|mut l| {
                    let mut n = 0;
                    while let Some(g) = l {
                        n += 1;
                        l = g.next;
                    }
                    n
                })
                .sum()
        });
        assert_eq!(links, CHAINS * LINKS, "verify {verify}");
    }
}
