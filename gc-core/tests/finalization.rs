//! Ephemeron tables, cleanups and finalizer queues: what each promises, in both marking modes
//! and with verify mode on and off (the verifier checks every table and queue after each cycle).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gc_core::{
    Config, Gc, GcArray, GcCell, GcEphemeronTable, GcFinalizers, GcVec, GcWeak, Heap, Mutator,
    Rootable, Trace,
};

/// Every setting: concurrent and stop-the-world marking, verify mode on and off, and span-local
/// marking with each collector (under Miri, concurrent marking with verify mode off: each
/// collection is slow there).
fn settings() -> Vec<Config> {
    if cfg!(miri) {
        return vec![Config::default()];
    }
    let mut v = Vec::new();
    for concurrent in [true, false] {
        for verify in [false, true] {
            v.push(Config::default().concurrent(concurrent).verify(verify));
        }
    }
    // Span-local marking too (its marker reaches tables, queues and weak boxes by another
    // path), once with each collector.
    v.push(Config::default().span_marking(true));
    v.push(
        Config::default()
            .concurrent(false)
            .span_marking(true)
            .verify(true),
    );
    v
}

/// Counts its drops.
struct Tracker(Arc<AtomicUsize>);
impl Drop for Tracker {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct Node<'gc> {
    #[gc(skip)]
    id: u64,
    #[gc(skip)]
    _tracker: Option<Tracker>,
    next: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

fn node<'gc>(mc: &gc_core::Mutation<'gc>, id: u64, drops: &Arc<AtomicUsize>) -> Gc<'gc, Node<'gc>> {
    Gc::new(
        mc,
        Node {
            id,
            _tracker: Some(Tracker(drops.clone())),
            next: GcCell::new(None),
        },
    )
}

#[derive(Trace)]
struct Root<'gc> {
    table: GcEphemeronTable<'gc, Node<'gc>, Gc<'gc, Node<'gc>>>,
    keys: GcVec<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

type R = Rootable!['gc => Root<'gc>];

fn root_mutator(heap: &Heap) -> Mutator<R> {
    heap.mutator(|mc| Root {
        table: GcEphemeronTable::new(mc),
        keys: GcVec::new(mc),
    })
}

#[test]
fn an_entry_lives_exactly_as_long_as_its_key() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = root_mutator(&heap);
        // Ten entries; the values point back at their keys (which must not keep them alive).
        m.mutate(|mc, r| {
            for i in 0..10 {
                let k = node(mc, i, &drops);
                let v = node(mc, 100 + i, &drops);
                v.next.set(mc, Some(k));
                r.table.insert(mc, k, v);
                r.keys.push(mc, Some(k));
            }
        });
        m.collect();
        m.collect();
        assert_eq!(drops.load(Ordering::SeqCst), 0, "everything is reachable");
        m.mutate(|_, r| {
            assert_eq!(r.table.len(), 10);
            for i in 0..10 {
                let k = r.keys.get(i).flatten().unwrap();
                let v = r.table.get(k).expect("live key, live entry");
                assert_eq!(v.id, 100 + k.id);
                assert_eq!(v.next.get().map(|n| n.id), Some(k.id));
            }
        });
        // Drop the even keys: their entries (and values) go, the odd ones stay.
        m.mutate(|mc, r| {
            for i in (0..10).step_by(2) {
                r.keys.set(mc, i, None);
            }
        });
        m.collect();
        m.collect();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            10,
            "5 keys and their 5 values"
        );
        m.mutate(|_, r| {
            assert_eq!(r.table.len(), 5);
            for i in (1..10).step_by(2) {
                let k = r.keys.get(i).flatten().unwrap();
                assert_eq!(r.table.get(k).unwrap().id, 100 + k.id);
            }
        });
        drop(m);
        drop(heap);
        assert_eq!(drops.load(Ordering::SeqCst), 20);
    }
}

#[test]
fn chains_and_cycles_through_values() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = root_mutator(&heap);
        const N: u64 = 50;
        // A chain: key i's value is (a node pointing at) key i+1, and the last value points at
        // key 0, closing a cycle through values. Only key 0 is rooted.
        m.mutate(|mc, r| {
            let keys: Vec<_> = (0..N).map(|i| node(mc, i, &drops)).collect();
            for i in 0..N as usize {
                let v = node(mc, 1000 + i as u64, &drops);
                v.next.set(mc, Some(keys[(i + 1) % N as usize]));
                r.table.insert(mc, keys[i], v);
            }
            r.keys.push(mc, Some(keys[0]));
        });
        m.collect();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the whole chain hangs from key 0"
        );
        m.mutate(|_, r| {
            let mut k = r.keys.get(0).flatten().unwrap();
            for i in 0..N {
                assert_eq!(k.id, i);
                let v = r.table.get(k).expect("each link is alive");
                k = v.next.get().unwrap();
            }
            assert_eq!(k.id, 0, "the cycle closes");
        });
        let rounds: u64 = heap
            .take_cycle_records()
            .iter()
            .map(|c| c.ephemeron_rounds)
            .max()
            .unwrap();
        assert!(rounds >= 2, "a chain takes rounds: {rounds}");
        // Unroot key 0: the cycle through values keeps nothing alive.
        m.mutate(|mc, r| r.keys.set(mc, 0, None));
        m.collect();
        m.collect();
        assert_eq!(drops.load(Ordering::SeqCst), 2 * N as usize);
        assert_eq!(m.mutate(|_, r| r.table.len()), 0);
    }
}

/// A cycle long enough to look keys up in the index (a chain through values takes a round a
/// link) clears every entry whose key stayed unmarked, down to a table left with a single one:
/// the chain's table also holds `dead` entries whose keys nothing reaches.
#[test]
fn indexed_rounds_clear_a_table_left_with_one_dead_key() {
    for config in settings() {
        for dead in [1, 2] {
            let what = format!("{config:?}, {dead} dead");
            let heap = Heap::new(config.clone()).unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            let mut m = root_mutator(&heap);
            const N: u64 = 12;
            m.mutate(|mc, r| {
                let keys: Vec<_> = (0..N).map(|i| node(mc, i, &drops)).collect();
                for i in 0..N as usize - 1 {
                    let v = node(mc, 1000 + i as u64, &drops);
                    v.next.set(mc, Some(keys[i + 1]));
                    r.table.insert(mc, keys[i], v);
                }
                for d in 0..dead {
                    r.table
                        .insert(mc, node(mc, 5000 + d, &drops), node(mc, 6000 + d, &drops));
                }
                r.keys.push(mc, Some(keys[0]));
            });
            m.collect();
            let rounds: u64 = heap
                .take_cycle_records()
                .iter()
                .map(|c| c.ephemeron_rounds)
                .max()
                .unwrap();
            assert!(rounds > 3, "{what}: the chain took {rounds} rounds");
            assert_eq!(m.mutate(|_, r| r.table.len()), N as usize - 1, "{what}");
            assert_eq!(drops.load(Ordering::SeqCst), 2 * dead as usize, "{what}");
        }
    }
}

/// A panic payload whose `Drop` panics.
struct PayloadPanicsOnDrop;

impl Drop for PayloadPanicsOnDrop {
    fn drop(&mut self) {
        panic!("a panic payload's Drop that panics");
    }
}

/// `heap.wait_for_cleanups()`, failing the test if it has not returned within a minute.
fn wait_for_cleanups_within_a_minute(heap: &Heap) {
    let (tx, rx) = std::sync::mpsc::channel();
    let heap = heap.clone();
    std::thread::spawn(move || {
        heap.wait_for_cleanups();
        // Before the answer: the caller's handle must be the last one when it drops it.
        drop(heap);
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("wait_for_cleanups returned");
}

/// Cleanups run once each, after their object dies or at teardown; a panicking one is caught
/// and the others still run, also when its panic's payload panics when dropped (that ended the
/// cleanup thread, and every later wait for the cleanups hung; at teardown it unwound out of
/// the heap's drop with the remaining cleanups not run).
#[test]
fn cleanups_run_once_after_the_object_dies_and_at_teardown() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let mut m = root_mutator(&heap);
        m.mutate(|mc, r| {
            for i in 0..20 {
                let k = node(mc, i, &Arc::new(AtomicUsize::new(0)));
                let ran = ran.clone();
                k.add_cleanup(mc, move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                    if i == 0 {
                        // Kept alive: this one runs at teardown, with four others.
                        std::panic::panic_any(PayloadPanicsOnDrop);
                    }
                });
                if i < 5 {
                    r.keys.push(mc, Some(k)); // kept alive
                }
            }
            // One that panics: caught, the others still run.
            Gc::new(mc, 0u64).add_cleanup(mc, || std::panic::panic_any(PayloadPanicsOnDrop));
        });
        m.collect();
        wait_for_cleanups_within_a_minute(&heap);
        assert_eq!(
            ran.load(Ordering::SeqCst),
            15,
            "the 15 unreachable ones, once"
        );
        let metrics = heap.metrics();
        assert_eq!(metrics.u64("/gccore/gc/cleanups/panics:events"), Some(1));
        assert_eq!(metrics.u64("/gccore/gc/cleanups/run:calls"), Some(16));
        assert_eq!(metrics.u64("/gccore/gc/cleanups/pending:calls"), Some(5));
        m.collect();
        wait_for_cleanups_within_a_minute(&heap);
        assert_eq!(
            ran.load(Ordering::SeqCst),
            15,
            "never twice, never for a live object"
        );
        drop(m);
        drop(heap);
        assert_eq!(ran.load(Ordering::SeqCst), 20, "the rest at teardown, once");
    }
}

/// Counts its drop, then panics if asked to: with a message, or with a payload whose own
/// `Drop` panics.
struct Panicky {
    _tracker: Tracker,
    panics: Option<&'static str>,
}

impl Drop for Panicky {
    fn drop(&mut self) {
        match self.panics {
            Some("payload") => std::panic::panic_any(PayloadPanicsOnDrop),
            Some(msg) => panic!("{msg}"),
            None => {}
        }
    }
}

#[derive(Trace)]
struct Noisy {
    #[gc(skip)]
    _inner: Panicky,
}

type NoisyVec = Rootable!['gc => GcVec<'gc, Option<Gc<'gc, Noisy>>>];

/// A drop glue that panics at heap teardown does not stop the others (nothing leaks: every
/// object is dropped once), and the first panic reaches the drop of the last handle, as a
/// `Vec`'s element's would. A later panic whose payload panics when dropped is dropped without
/// letting that out (it unwound out of the teardown, leaving the objects after it undropped).
#[test]
fn a_panicking_drop_at_teardown_drops_the_rest_then_unwinds() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m: Mutator<NoisyVec> = heap.mutator(|mc| GcVec::new(mc));
        m.mutate(|mc, v| {
            for i in 0..10 {
                let n = Noisy {
                    _inner: Panicky {
                        _tracker: Tracker(drops.clone()),
                        panics: match i {
                            3 => Some("a drop that panics at teardown"),
                            5 | 7 => Some("payload"),
                            _ => None,
                        },
                    },
                };
                v.push(mc, Some(Gc::new(mc, n)));
            }
        });
        drop(m);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(heap)));
        let msg = r.expect_err("the panic reaches the drop of the last handle");
        let text = msg.downcast_ref::<String>().cloned();
        // (Not dropped: were it the other payload, its drop would panic here.)
        std::mem::forget(msg);
        assert_eq!(text.as_deref(), Some("a drop that panics at teardown"));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            10,
            "every object dropped once"
        );
    }
}

/// A cleanup that waits for the cleanups would wait for itself: it panics instead (caught and
/// counted like any cleanup's panic), and the cleanups after it still run.
#[test]
fn wait_for_cleanups_from_a_cleanup_panics_instead_of_hanging() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let done = common::within(30, "wait_for_cleanups from a cleanup", {
            let heap = heap.clone();
            move || {
                let ran = Arc::new(AtomicUsize::new(0));
                let mut m = root_mutator(&heap);
                m.mutate(|mc, _| {
                    let h = heap.clone();
                    Gc::new(mc, 1u64).add_cleanup(mc, move || h.wait_for_cleanups());
                    let ran = ran.clone();
                    Gc::new(mc, 2u64).add_cleanup(mc, move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                });
                m.collect();
                heap.wait_for_cleanups();
                ran.load(Ordering::SeqCst)
            }
        });
        assert_eq!(done, 1, "the other cleanup ran");
        let metrics = heap.metrics();
        assert_eq!(metrics.u64("/gccore/gc/cleanups/panics:events"), Some(1));
    }
}

/// Waiting for the cleanups inside a scope is refused, as `collect()` there is: a cleanup that
/// collects waits for the scope to end, and the scope would wait for that cleanup (before the
/// refusal, a deadlock). Between scopes the wait works, and the cleanup's cycle has run.
#[test]
fn wait_for_cleanups_inside_a_scope_panics_instead_of_deadlocking() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let (message, collected) = common::within(30, "wait_for_cleanups inside a scope", {
            let heap = heap.clone();
            move || {
                let collected = Arc::new(AtomicUsize::new(0));
                let mut m = root_mutator(&heap);
                m.mutate(|mc, _| {
                    let (h, collected) = (heap.clone(), collected.clone());
                    Gc::new(mc, 1u64).add_cleanup(mc, move || {
                        h.collect();
                        collected.fetch_add(1, Ordering::SeqCst);
                    });
                });
                m.collect();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    m.mutate(|_, _| heap.wait_for_cleanups())
                }));
                let message = match r {
                    Ok(()) => String::from("no panic"),
                    Err(e) => e
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| e.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| String::from("a panic without a message")),
                };
                heap.wait_for_cleanups();
                (message, collected.load(Ordering::SeqCst))
            }
        });
        assert!(
            message.contains("wait_for_cleanups called inside a mutation scope"),
            "{message}"
        );
        assert_eq!(collected, 1, "the cleanup's collect() returned");
    }
}

#[derive(Trace)]
struct FRoot<'gc> {
    queue: GcFinalizers<'gc, Node<'gc>>,
    weaks: GcVec<'gc, Option<GcWeak<'gc, Node<'gc>>>>,
    kept: GcVec<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// A mutator rooted at an empty [`FRoot`].
fn froot_mutator(heap: &Heap) -> Mutator<Rootable!['gc => FRoot<'gc>]> {
    heap.mutator(|mc| FRoot {
        queue: GcFinalizers::new(mc),
        weaks: GcVec::new(mc),
        kept: GcVec::new(mc),
    })
}

#[test]
fn finalizers_resurrect_in_registration_order_and_free_later() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = froot_mutator(&heap);
        // 0 → 1 → 2 (each registered), 3 alone (registered), 4 not registered.
        m.mutate(|mc, r| {
            let n: Vec<_> = (0..5).map(|i| node(mc, i, &drops)).collect();
            n[0].next.set(mc, Some(n[1]));
            n[1].next.set(mc, Some(n[2]));
            for &i in &[2usize, 0, 1, 3] {
                r.queue.register(mc, n[i]);
            }
            for x in &n {
                r.weaks.push(mc, Some(x.downgrade(mc)));
            }
        });
        m.collect();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "only the unregistered one is freed"
        );
        assert_eq!(
            heap.metrics().u64("/gccore/gc/finalizers/queued:objects"),
            Some(4)
        );
        m.mutate(|mc, r| {
            // Weak references to queued objects are dead already.
            for i in 0..5 {
                assert!(
                    r.weaks.get(i).flatten().unwrap().upgrade(mc).is_none(),
                    "weak {i}"
                );
            }
            // Registration order; each still readable, with what it points to.
            let order: Vec<u64> = std::iter::from_fn(|| r.queue.pop(mc))
                .map(|o| {
                    if o.id == 0 {
                        assert_eq!(o.next.get().unwrap().id, 1);
                        assert_eq!(o.next.get().unwrap().next.get().unwrap().id, 2);
                        r.kept.push(mc, Some(o)); // resurrected for good
                    }
                    o.id
                })
                .collect();
            assert_eq!(order, vec![2, 0, 1, 3]);
        });
        assert_eq!(
            heap.metrics().u64("/gccore/gc/finalizers/popped:objects"),
            Some(4)
        );
        m.collect();
        m.collect();
        // 3 is freed (popped and dropped); 0 is kept and keeps 1 and 2.
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        m.mutate(|mc, r| {
            let o = r.kept.get(0).flatten().unwrap();
            assert_eq!(o.next.get().unwrap().next.get().unwrap().id, 2);
            assert!(r.queue.pop(mc).is_none(), "queued once per registration");
            r.kept.set(mc, 0, None);
        });
        m.collect();
        m.collect();
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    }
}

#[test]
fn a_dead_queue_takes_its_registrations_with_it() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = root_mutator(&heap);
        m.mutate(|mc, _| {
            let q: GcFinalizers<'_, Node<'_>> = GcFinalizers::new(mc);
            for i in 0..3 {
                q.register(mc, node(mc, i, &drops));
            }
        });
        m.collect();
        m.collect();
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        assert_eq!(
            heap.metrics().u64("/gccore/gc/finalizers/queued:objects"),
            Some(0)
        );
    }
}

#[derive(Trace)]
struct SRoot<'gc> {
    table: GcEphemeronTable<'gc, Node<'gc>, Gc<'gc, Node<'gc>>>,
    keys: GcVec<'gc, Option<Gc<'gc, Node<'gc>>>>,
    queue: GcFinalizers<'gc, Node<'gc>>,
}

/// Values are numbered from their key: `key id + VALUE`.
const VALUE: u64 = 1 << 40;

/// Several mutators insert entries (values pointing back at their keys, and chained to the
/// previous key), drop keys, look every rooted key up, register objects for finalization and
/// cleanups, and pop their queues, while cycles run back to back with background helpers; in
/// verify mode too. Every rooted key keeps an intact value; popped objects were never rooted;
/// at the end every dead entry is gone, and every object is dropped and every cleanup run once.
#[test]
fn mutators_change_tables_and_queues_while_cycles_run_back_to_back() {
    let run_for = std::time::Duration::from_millis(if cfg!(miri) { 50 } else { 1200 });
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify).debug_cpus(8)).unwrap();
        heap.debug_back_to_back(true);
        let drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let cleaned = Arc::new(AtomicUsize::new(0));
        let cleanups = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let (heap, drops, made, cleaned, cleanups) =
                    (&heap, &drops, &made, &cleaned, &cleanups);
                s.spawn(move || {
                    let mut m: Mutator<Rootable!['gc => SRoot<'gc>]> = heap.mutator(|mc| SRoot {
                        table: GcEphemeronTable::new(mc),
                        keys: GcVec::new(mc),
                        queue: GcFinalizers::new(mc),
                    });
                    let mut next = t << 32;
                    let mut rng = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                    let mut roll = move |n: u64| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng % n
                    };
                    let start = std::time::Instant::now();
                    let mut popped = 0u64;
                    while start.elapsed() < run_for {
                        m.mutate(|mc, r| {
                            for _ in 0..50 {
                                match roll(10) {
                                    0..=3 => {
                                        next += 1;
                                        made.fetch_add(2, Ordering::Relaxed);
                                        let k = node(mc, next, drops);
                                        let v = node(mc, next + VALUE, drops);
                                        v.next.set(mc, Some(k));
                                        // Chain: the value also keeps the previous key's
                                        // node reachable through another node.
                                        if let Some(Some(prev)) = r
                                            .keys
                                            .len()
                                            .checked_sub(1)
                                            .map(|i| r.keys.get(i).flatten())
                                        {
                                            let link = node(mc, next + 2 * VALUE, drops);
                                            made.fetch_add(1, Ordering::Relaxed);
                                            link.next.set(mc, Some(prev));
                                            k.next.set(mc, Some(link));
                                        }
                                        r.table.insert(mc, k, v);
                                        if roll(3) > 0 {
                                            r.keys.push(mc, Some(k));
                                        }
                                        if roll(8) == 0 {
                                            r.queue.register(mc, v);
                                        }
                                        if roll(8) == 0 {
                                            cleanups.fetch_add(1, Ordering::Relaxed);
                                            let c = cleaned.clone();
                                            k.add_cleanup(mc, move || {
                                                c.fetch_add(1, Ordering::Relaxed);
                                            });
                                        }
                                    }
                                    4..=5 => {
                                        let n = r.keys.len();
                                        if n > 0 {
                                            r.keys.set(mc, roll(n as u64) as usize, None);
                                        }
                                    }
                                    6 => {
                                        // Drop the emptied slots now and then.
                                        if r.keys.len() > 200 {
                                            let live: Vec<_> = (0..r.keys.len())
                                                .filter_map(|i| r.keys.get(i).flatten())
                                                .collect();
                                            r.keys.truncate(mc, 0);
                                            for k in live {
                                                r.keys.push(mc, Some(k));
                                            }
                                        }
                                    }
                                    7 => {
                                        while let Some(o) = r.queue.pop(mc) {
                                            // Only values are registered, and a rooted key's
                                            // value is reachable: a popped one's key is gone.
                                            assert!(o.id >= VALUE && o.id < 2 * VALUE);
                                            popped += 1;
                                        }
                                    }
                                    _ => {
                                        for i in 0..r.keys.len() {
                                            let Some(k) = r.keys.get(i).flatten() else {
                                                continue;
                                            };
                                            let v = r.table.get(k).expect("a rooted key's entry");
                                            assert_eq!(v.id, k.id + VALUE);
                                            assert_eq!(v.next.get().map(|n| n.id), Some(k.id));
                                        }
                                    }
                                }
                            }
                        });
                    }
                    let _ = popped;
                });
            }
        });
        heap.debug_back_to_back(false);
        let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        m.collect();
        m.collect();
        m.collect();
        heap.wait_for_cleanups();
        // Every mutator is gone: everything was garbage, and every cycle's garbage is freed
        // (queued objects included, with their dead queues) and its cleanups run.
        assert_eq!(drops.load(Ordering::SeqCst), made.load(Ordering::SeqCst));
        assert_eq!(
            cleaned.load(Ordering::SeqCst),
            cleanups.load(Ordering::SeqCst)
        );
        drop(m);
        drop(heap);
        assert_eq!(drops.load(Ordering::SeqCst), made.load(Ordering::SeqCst));
    }
}

/// A chain through noscan keys and values: each value is the next entry's key, and marking a
/// value greys nothing, so the rounds that follow the chain run back to back (in the pause,
/// with the world stopped, after the concurrent ones).
#[test]
fn chains_of_noscan_keys_are_followed_to_the_end() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        #[derive(Trace)]
        struct Chain<'gc> {
            table: GcEphemeronTable<'gc, u64, Gc<'gc, u64>>,
            first: GcCell<'gc, Option<Gc<'gc, u64>>>,
        }
        let mut m: Mutator<Rootable!['gc => Chain<'gc>]> = heap.mutator(|mc| Chain {
            table: GcEphemeronTable::new(mc),
            first: GcCell::new(None),
        });
        const N: u64 = 100;
        m.mutate(|mc, r| {
            let keys: Vec<_> = (0..=N).map(|i| Gc::new(mc, i)).collect();
            for i in 0..N as usize {
                r.table.insert(mc, keys[i], keys[i + 1]);
            }
            r.first.set(mc, Some(keys[0]));
        });
        m.collect();
        m.collect();
        m.mutate(|_, r| {
            let mut k = r.first.get().unwrap();
            for i in 0..N {
                assert_eq!(*k, i);
                k = r.table.get(k).expect("every link alive");
            }
            assert_eq!(*k, N);
            assert_eq!(r.table.len(), N as usize);
        });
        m.mutate(|mc, r| r.first.set(mc, None));
        m.collect();
        m.collect();
        assert_eq!(m.mutate(|_, r| r.table.len()), 0);
    }
}

#[derive(Trace)]
struct Chains<'gc> {
    /// Key `i` → a value pointing at key `i + 1`.
    links: GcEphemeronTable<'gc, Node<'gc>, Gc<'gc, Node<'gc>>>,
    /// Every third key → a value of its own (so those keys are in two tables).
    marks: GcEphemeronTable<'gc, Node<'gc>, Gc<'gc, Node<'gc>>>,
    /// Key 0, then keys deep in the chain that the mutator roots.
    keys: GcVec<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// Chains longer than the rounds that go over every entry: later rounds look up the keys the
/// collector's tracer marked since the last one in an index (`gc::ephemeron`). Here a mutator
/// walks the chain while cycles run back to back and roots keys deep in it, which its own
/// barrier and root scan mark, not the collector's tracer: such a key is in no log, and its
/// value must still be traced (the round that finds no logged key goes over the index). Every
/// rooted key's entries and every link after them stay intact, with verify mode on and off;
/// the entries of an unrooted chain beside it are removed, and so is the whole chain once
/// unrooted.
#[test]
fn long_chains_stay_intact_while_a_mutator_roots_keys_deep_in_them() {
    const N: usize = if cfg!(miri) { 40 } else { 1500 };
    const DEAD: u64 = 50;
    let run_for = std::time::Duration::from_millis(if cfg!(miri) { 50 } else { 1000 });
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m: Mutator<Rootable!['gc => Chains<'gc>]> = heap.mutator(|mc| Chains {
            links: GcEphemeronTable::new(mc),
            marks: GcEphemeronTable::new(mc),
            keys: GcVec::new(mc),
        });
        m.mutate(|mc, r| {
            let keys: Vec<_> = (0..N).map(|i| node(mc, i as u64, &drops)).collect();
            for i in 0..N {
                let v = node(mc, VALUE + i as u64, &drops);
                v.next.set(mc, keys.get(i + 1).copied());
                r.links.insert(mc, keys[i], v);
                if i % 3 == 0 {
                    r.marks
                        .insert(mc, keys[i], node(mc, 2 * VALUE + i as u64, &drops));
                }
            }
            r.keys.push(mc, Some(keys[0]));
            // A chain nothing roots, in both tables: cleared by the first cycle.
            let dead: Vec<_> = (0..DEAD).map(|i| node(mc, 3 * VALUE + i, &drops)).collect();
            for (i, &k) in dead.iter().enumerate() {
                let v = node(mc, 4 * VALUE + i as u64, &drops);
                v.next.set(mc, dead.get(i + 1).copied());
                r.links.insert(mc, k, v);
                r.marks.insert(mc, k, v);
            }
        });
        // Follow the chain from key 0 for `steps` links, checking each entry; the key reached.
        fn walk<'gc>(r: &Chains<'gc>, steps: usize) -> Gc<'gc, Node<'gc>> {
            let mut k = r.keys.get(0).flatten().unwrap();
            for i in 0..steps {
                assert_eq!(k.id, i as u64);
                let v = r.links.get(k).expect("a live key's entry");
                assert_eq!(v.id, VALUE + i as u64);
                if i % 3 == 0 {
                    let w = r.marks.get(k).expect("a live key's entry");
                    assert_eq!(w.id, 2 * VALUE + i as u64);
                }
                k = v.next.get().expect("the next link");
            }
            k
        }
        let indexed = |heap: &Heap| {
            heap.metrics()
                .u64("/gccore/gc/ephemerons/indexed:entries")
                .unwrap()
        };
        let indexed_before = indexed(&heap);
        heap.take_cycle_records();
        heap.debug_back_to_back(true);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let start = std::time::Instant::now();
        while start.elapsed() < run_for {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let steps = (rng % (N as u64 - 1)) as usize;
            m.mutate(|mc, r| {
                let deep = walk(r, steps);
                if r.keys.len() > 16 {
                    r.keys.truncate(mc, 1);
                }
                r.keys.push(mc, Some(deep));
            });
        }
        heap.debug_back_to_back(false);
        // Cycles that went over the key index ran while the walks rooted keys (the case this
        // test is for: the quiet collections below index too, but there every key is logged).
        let raced = heap.take_cycle_records().len();
        let indexed_raced = indexed(&heap) - indexed_before;
        assert!(
            (raced > 0 && indexed_raced > 0) || cfg!(miri),
            "verify={verify}: {raced} cycles raced the walks, {indexed_raced} entries indexed in them"
        );
        m.mutate(|mc, r| r.keys.truncate(mc, 1));
        m.collect();
        m.collect();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2 * DEAD as usize,
            "the chain hangs from key 0; the unrooted one is gone"
        );
        m.mutate(|_, r| {
            walk(r, N - 1);
            assert_eq!(r.links.len(), N);
            assert_eq!(r.marks.len(), N.div_ceil(3));
        });
        let rounds = heap
            .take_cycle_records()
            .iter()
            .map(|c| c.ephemeron_rounds)
            .max()
            .unwrap();
        assert!(rounds > 3, "a round per link: {rounds}");
        let indexed = indexed(&heap);
        assert!(
            indexed >= N as u64 / 2,
            "later rounds used the key index: {indexed} entries indexed"
        );
        m.mutate(|mc, r| r.keys.set(mc, 0, None));
        m.collect();
        m.collect();
        assert_eq!(m.mutate(|_, r| (r.links.len(), r.marks.len())), (0, 0));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2 * N + N.div_ceil(3) + 2 * DEAD as usize
        );
    }
}

/// An object registered twice, with one queue or two, is queued by each registration in the
/// cycle that finds it dead; an ephemeron entry keyed by a resurrected object keeps its value.
#[test]
fn double_registration_and_resurrected_keys() {
    for config in settings() {
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        #[derive(Trace)]
        struct Two<'gc> {
            a: GcFinalizers<'gc, Node<'gc>>,
            b: GcFinalizers<'gc, Node<'gc>>,
            table: GcEphemeronTable<'gc, Node<'gc>, Gc<'gc, Node<'gc>>>,
        }
        let mut m: Mutator<Rootable!['gc => Two<'gc>]> = heap.mutator(|mc| Two {
            a: GcFinalizers::new(mc),
            b: GcFinalizers::new(mc),
            table: GcEphemeronTable::new(mc),
        });
        m.mutate(|mc, r| {
            let twice = node(mc, 1, &drops);
            r.a.register(mc, twice);
            r.a.register(mc, twice);
            let both = node(mc, 2, &drops);
            r.a.register(mc, both);
            r.b.register(mc, both);
            r.table.insert(mc, both, node(mc, 3, &drops));
        });
        m.collect();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        m.mutate(|mc, r| {
            let a: Vec<u64> = std::iter::from_fn(|| r.a.pop(mc)).map(|o| o.id).collect();
            let b: Vec<u64> = std::iter::from_fn(|| r.b.pop(mc)).map(|o| o.id).collect();
            assert_eq!(a, vec![1, 1, 2]);
            assert_eq!(b, vec![2]);
        });
        // The resurrected key kept its entry's value; popped and dropped, all three go.
        m.collect();
        m.collect();
        assert_eq!(drops.load(Ordering::SeqCst), 3);
        assert_eq!(m.mutate(|_, r| r.table.len()), 0);
    }
}

/// A scope that blocked across the start of marking holds a key the snapshot never saw (a
/// local, here a large object) and inserts it into a table allocated during marking, which the
/// marker never scans: the insertion must shade the key, or the table would keep the address
/// of a freed key (the verifier checks every key of every table after each cycle). Likewise a
/// value the snapshot never saw (a local made before the block), under a key the program
/// keeps: the insertion must shade the value, or `get` hands out a freed object.
#[test]
fn a_scope_blocked_across_stw1_inserts_a_key_outside_the_snapshot() {
    type Big = [u64; 8192];
    #[derive(Trace)]
    struct Keep<'gc> {
        table: GcCell<'gc, Option<GcEphemeronTable<'gc, Big, Gc<'gc, u64>>>>,
        kept: GcCell<'gc, Option<Gc<'gc, Big>>>,
    }
    for verify in [true, false] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let (mut scope, driver) = common::blocked_scope();
        let a = {
            let heap = heap.clone();
            std::thread::spawn(move || {
                let mut m: Mutator<Rootable!['gc => Keep<'gc>]> = heap.mutator(|_| Keep {
                    table: GcCell::new(None),
                    kept: GcCell::new(None),
                });
                m.mutate(|mc, root| {
                    let key = Gc::new(mc, [7u64; 8192]);
                    let value = Gc::new(mc, 43u64);
                    scope.block(mc, || ());
                    assert!(
                        mc.debug_marking(),
                        "the cycle did not start during the block"
                    );
                    let table = GcEphemeronTable::new(mc);
                    table.insert(mc, key, Gc::new(mc, 42u64));
                    let kept = Gc::new(mc, [8u64; 8192]);
                    table.insert(mc, kept, value);
                    root.table.set(mc, Some(table));
                    root.kept.set(mc, Some(kept));
                    assert_eq!(table.get(key).map(|v| *v), Some(42));
                });
                scope.finished();
                // The first key is gone (it was only ever a local): so is its entry. The kept
                // key's value is there, whole (garbage made meanwhile reuses freed slots).
                for _ in 0..2 {
                    m.collect();
                    m.mutate(|mc, _| {
                        for i in 0..1000 {
                            Gc::new(mc, i as u64);
                        }
                    });
                }
                m.mutate(|_, root| {
                    let table = root.table.get().unwrap();
                    assert_eq!(table.len(), 1);
                    let kept = root.kept.get().unwrap();
                    assert_eq!(table.get(kept).map(|v| *v), Some(43));
                });
            })
        };
        driver.wait_blocked();
        let mut b: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        common::start_held_cycle(&heap, || b.mutate(|mc, _| mc.debug_marking()));
        driver.release();
        driver.wait_finished();
        common::release_held(&heap);
        b.collect();
        b.collect();
        driver.let_check();
        a.join().unwrap();
    }
}

/// A finalizable object; with ballast, resurrecting it leaves marking work for after the
/// resurrection round.
#[derive(Trace)]
struct Weighted<'gc> {
    #[gc(skip)]
    id: u64,
    ballast: GcArray<'gc, Option<Gc<'gc, u64>>>,
}

#[derive(Trace)]
struct WeakAndQueue<'gc> {
    weak: GcWeak<'gc, Weighted<'gc>>,
    queue: GcFinalizers<'gc, Weighted<'gc>>,
}

type WeakAndQueueRoot = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, WeakAndQueue<'gc>>>>];

/// A weak reference reads as dead from the cycle that queues its target for finalization, also
/// to an upgrade racing the end of weak clearing: readers on other threads upgrade the weak
/// reference while the main thread makes the target garbage and collects. An upgrade that
/// returns the target while the queue holds it breaks the promise (it did, with concurrent
/// marking and verify mode off, when the upgrade tested the queued set after leaving the
/// weak-clearing window, which may by then have closed and forgotten the set). Every other
/// target carries 20 000 objects, which the concurrent collector marks with the world running
/// after resurrecting it, before the window opens: upgrades then must refuse it too.
#[test]
fn a_weak_upgrade_racing_weak_clearing_refuses_a_target_queued_for_finalization() {
    use std::sync::atomic::AtomicBool;
    let secs = if cfg!(miri) { 0.2 } else { 1.5 };
    const BALLAST: usize = if cfg!(miri) { 50 } else { 20_000 };
    for config in settings() {
        let what = format!("{config:?}");
        let heap = Heap::new(config).unwrap();
        let mut main: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        let shared =
            main.mutate(|mc, _| mc.stash::<WeakAndQueueRoot>(Gc::new(mc, GcCell::new(None))));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (heap, shared, stop) = (heap.clone(), shared.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
                    let mut upgrades = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let seen = m.mutate(|mc, _| {
                            let pair = shared.fetch(mc).get()?;
                            for _ in 0..1000 {
                                if let Some(obj) = pair.weak.upgrade(mc) {
                                    upgrades += 1;
                                    // No cycle can end inside this scope, so the queue
                                    // held the target already when the upgrade ran.
                                    if !pair.queue.is_empty() {
                                        return Some(obj.id);
                                    }
                                }
                            }
                            None
                        });
                        if let Some(v) = seen {
                            return Err(v);
                        }
                    }
                    Ok(upgrades)
                })
            })
            .collect();
        let start = std::time::Instant::now();
        let mut rounds = 0u64;
        let queued = || {
            heap.metrics()
                .u64("/gccore/gc/finalizers/queued:objects")
                .unwrap_or(0)
        };
        // At least 12 rounds, however slow the build (ThreadSanitizer ran 10 in 1.5 s), and on
        // until some target was queued (a target the readers upgraded while its cycle marked
        // survives that cycle, and a slow build may see that happen round after round).
        while (start.elapsed().as_secs_f64() < secs
            || rounds < 12
            || (queued() == 0 && rounds < 400))
            && !readers.iter().any(|r| r.is_finished())
        {
            main.mutate(|mc, _| {
                let n = if rounds % 2 == 1 { BALLAST } else { 0 };
                let ballast = GcArray::new(mc, n, None);
                for i in 0..n {
                    ballast.set(mc, i, Some(Gc::new(mc, i as u64)));
                }
                let obj = Gc::new(
                    mc,
                    Weighted {
                        id: rounds,
                        ballast,
                    },
                );
                let queue = GcFinalizers::new(mc);
                queue.register(mc, obj);
                let weak = obj.downgrade(mc);
                shared
                    .fetch(mc)
                    .set(mc, Some(Gc::new(mc, WeakAndQueue { weak, queue })));
            });
            // `obj` is unreachable: this cycle queues it and clears the weak reference.
            main.collect();
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let mut upgrades = 0;
        for r in readers {
            match r.join().unwrap() {
                Ok(n) => upgrades += n,
                Err(v) => panic!("{what}: object {v} upgraded while in its finalizer queue"),
            }
        }
        // The readers did race the cycles: they upgraded live targets in between (an upgrade
        // during marking shades its target, which then survives that cycle).
        assert!(
            rounds > 10 && upgrades > 0,
            "{what}: {rounds} rounds, {upgrades} upgrades"
        );
        assert!(
            queued() > 0,
            "{what}: no target was ever queued in {rounds} rounds"
        );
    }
}

/// An object that keeps a finalizer queue of its own (a Lua table with a `__gc` that owns
/// other finalizable objects).
#[derive(Trace)]
struct Owner<'gc> {
    #[gc(skip)]
    id: u64,
    #[gc(skip)]
    _tracker: Tracker,
    queue: GcCell<'gc, Option<GcFinalizers<'gc, Owner<'gc>>>>,
}

type OwnerRoot = Rootable!['gc => GcFinalizers<'gc, Owner<'gc>>];

fn owner<'gc>(
    mc: &gc_core::Mutation<'gc>,
    id: u64,
    queue: Option<GcFinalizers<'gc, Owner<'gc>>>,
    drops: &Arc<AtomicUsize>,
) -> Gc<'gc, Owner<'gc>> {
    Gc::new(
        mc,
        Owner {
            id,
            _tracker: Tracker(drops.clone()),
            queue: GcCell::new(queue),
        },
    )
}

/// A queue that only an object resurrected in the same cycle reaches is alive, so its dead
/// objects are queued on it in that cycle (they were freed unqueued when a queue unmarked at the
/// first decision counted as dead), three levels deep: the root queue finalizes `a`, which
/// holds queue 2, which finalizes `b`, which holds queue 3, which finalizes `c`. A queue that
/// nothing reaches still takes its registration with it: `d`, registered with a queue only
/// `d` itself holds, is freed unqueued.
#[test]
fn a_queue_reached_only_from_a_resurrected_object_gets_its_objects() {
    for config in settings() {
        let what = format!("{config:?}");
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m: Mutator<OwnerRoot> = heap.mutator(|mc| GcFinalizers::new(mc));
        m.mutate(|mc, q1| {
            let owner = |id: u64, queue| owner(mc, id, queue, &drops);
            let (q2, q3, q4) = (
                GcFinalizers::new(mc),
                GcFinalizers::new(mc),
                GcFinalizers::new(mc),
            );
            // Registered innermost first, so that registration order helps nothing.
            q3.register(mc, owner(3, None));
            q2.register(mc, owner(2, Some(q3)));
            q1.register(mc, owner(1, Some(q2)));
            q4.register(mc, owner(4, Some(q4)));
        });
        m.collect();
        // Pop the chain: each object popped from a queue holds the next queue.
        let popped = m.mutate(|mc, q1| {
            let mut ids = Vec::new();
            let mut queue = Some(*q1);
            while let Some(q) = queue.take() {
                let mut next = None;
                while let Some(o) = q.pop(mc) {
                    ids.push(o.id);
                    next = o.queue.get();
                }
                queue = next;
            }
            ids
        });
        assert_eq!(popped, vec![1, 2, 3], "{what}: one finalization per level");
        // The unreachable queue's object was freed at once; the popped ones go next.
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "{what}: only `d` freed yet"
        );
        m.collect();
        m.collect();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            4,
            "{what}: every object freed"
        );
    }
}

#[derive(Trace)]
struct RoundsRoot<'gc> {
    q1: GcFinalizers<'gc, Owner<'gc>>,
    /// Objects the program keeps: registered, never to be queued while kept.
    alive: GcVec<'gc, Option<Gc<'gc, Owner<'gc>>>>,
    /// A queue reached only through a finalized object, kept after that object was popped.
    kept: GcCell<'gc, Option<GcFinalizers<'gc, Owner<'gc>>>>,
}

/// Pop `queue` and, from each object popped, the queue it holds, to the end of the chain: the
/// ids popped, and the last queue popped.
fn pop_chain<'gc>(
    mc: &gc_core::Mutation<'gc>,
    queue: GcFinalizers<'gc, Owner<'gc>>,
) -> (Vec<u64>, GcFinalizers<'gc, Owner<'gc>>) {
    let mut ids = Vec::new();
    let (mut queue, mut last) = (Some(queue), queue);
    while let Some(q) = queue.take() {
        last = q;
        while let Some(o) = q.pop(mc) {
            ids.push(o.id);
            queue = queue.or(o.queue.get());
        }
    }
    (ids, last)
}

/// Registrations set aside in a cycle's first resurrection round (their queue not marked yet)
/// are decided by their own object in a later round and forgotten with their queue: cycle
/// after cycle, the root queue finalizes `a`, which holds a queue `q2` with a dead object and
/// 64 that the program keeps (set aside alive: they must not be queued), and 64 queues that
/// nothing reaches die with a registration each (set aside, then dropped: never looked at
/// again, while their slots are freed and reused by the next cycles' objects, kept ones among
/// them: with verify mode off about 30 of the kept objects of a run land where a dead one was,
/// thanks to the garbage each cycle also makes). At the end, the last `q2`, kept by the program after it popped `a`, gets its objects
/// once the program lets them go: a registration set aside alive is registered again.
#[test]
fn registrations_set_aside_are_decided_by_their_object_and_forgotten_with_their_queue() {
    const CYCLES: u64 = if cfg!(miri) { 3 } else { 24 };
    const DEAD_QUEUES: u64 = if cfg!(miri) { 4 } else { 64 };
    const KEPT: u64 = if cfg!(miri) { 4 } else { 64 };
    const FILLER: u64 = if cfg!(miri) { 16 } else { 4000 };
    for config in settings() {
        let what = format!("{config:?}");
        let heap = Heap::new(config).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m: Mutator<Rootable!['gc => RoundsRoot<'gc>]> = heap.mutator(|mc| RoundsRoot {
            q1: GcFinalizers::new(mc),
            alive: GcVec::new(mc),
            kept: GcCell::new(None),
        });
        let mut made = 0;
        for c in 0..CYCLES {
            let (a, dead, live) = (c * 1000 + 1, c * 1000 + 2, c * 1000 + 3);
            let last = c == CYCLES - 1;
            m.mutate(|mc, r| {
                for k in 0..DEAD_QUEUES {
                    GcFinalizers::new(mc).register(mc, owner(mc, 1_000_000 + k, None, &drops));
                }
                // Garbage of the same type, so that the allocator comes back to the slots freed
                // in the cycles before.
                for _ in 0..FILLER {
                    owner(mc, 0, None, &drops);
                }
                let q2 = GcFinalizers::new(mc);
                q2.register(mc, owner(mc, dead, None, &drops));
                for k in 0..KEPT {
                    let kept = owner(mc, live + k, None, &drops);
                    q2.register(mc, kept);
                    r.alive.push(mc, Some(kept));
                }
                r.q1.register(mc, owner(mc, a, Some(q2), &drops));
            });
            made += (DEAD_QUEUES + KEPT + FILLER) as usize + 2;
            m.collect();
            let popped = m.mutate(|mc, r| {
                let (ids, q2) = pop_chain(mc, r.q1);
                if last {
                    r.kept.set(mc, Some(q2));
                }
                ids
            });
            assert_eq!(popped, [a, dead], "{what}: cycle {c}");
        }
        // Let the kept objects go: those registered with the kept queue are queued there.
        m.mutate(|mc, r| r.alive.truncate(mc, 0));
        m.collect();
        let mut popped = m.mutate(|mc, r| pop_chain(mc, r.kept.get().unwrap()).0);
        popped.sort();
        let last_kept: Vec<u64> = (0..KEPT).map(|k| (CYCLES - 1) * 1000 + 3 + k).collect();
        assert_eq!(popped, last_kept, "{what}: the kept queue's objects");
        m.mutate(|mc, r| r.kept.set(mc, None));
        m.collect();
        m.collect();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            made,
            "{what}: every object freed once"
        );
    }
}

/// A table value whose `Clone` looks itself up in the table it is stored in.
#[derive(Trace)]
struct SelfReading<'gc> {
    table: GcEphemeronTable<'gc, Node<'gc>, SelfReading<'gc>>,
    key: Gc<'gc, Node<'gc>>,
}

impl Clone for SelfReading<'_> {
    fn clone(&self) -> Self {
        assert!(self.table.contains_key(self.key));
        SelfReading {
            table: self.table,
            key: self.key,
        }
    }
}

/// `GcEphemeronTable::get` clones the value with the table locked: a `Clone` that uses the
/// same table panics (it waited for its own lock for ever, and every later pause for its
/// scope), and the table stays usable after the panic.
#[test]
fn a_value_clone_that_reads_its_own_table_panics_instead_of_hanging() {
    let heap = Heap::new(Config::default()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        let outcome = m.mutate(|mc, _| {
            let table = GcEphemeronTable::new(mc);
            let key = node(mc, 1, &drops);
            table.insert(mc, key, SelfReading { table, key });
            let got =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| table.get(key).is_some()));
            // The lock was released on the way out: the table still answers.
            (got.is_err(), table.contains_key(key), table.len())
        });
        m.collect();
        tx.send(outcome).unwrap();
    });
    let (panicked, still_there, len) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("get returned (no deadlock on the table's own lock)");
    assert!(panicked, "the re-entering Clone panicked");
    assert!(
        still_there && len == 1,
        "the table is intact after the panic"
    );
}

/// A table value whose `Clone` asks another table about a key, after waiting at a barrier if
/// it has one.
#[derive(Trace)]
struct OtherReading<'gc> {
    other: GcEphemeronTable<'gc, Node<'gc>, OtherReading<'gc>>,
    key: Gc<'gc, Node<'gc>>,
    #[gc(skip)]
    gate: Option<Arc<std::sync::Barrier>>,
}

impl Clone for OtherReading<'_> {
    fn clone(&self) -> Self {
        if let Some(gate) = &self.gate {
            gate.wait();
        }
        assert!(self.other.contains_key(self.key));
        OtherReading {
            other: self.other,
            key: self.key,
            gate: self.gate.clone(),
        }
    }
}

/// Two tables whose values read each other's, and their keys (`c`: a value without a barrier).
#[derive(Trace)]
struct TwoTables<'gc> {
    a: GcEphemeronTable<'gc, Node<'gc>, OtherReading<'gc>>,
    b: GcEphemeronTable<'gc, Node<'gc>, OtherReading<'gc>>,
    ka: Gc<'gc, Node<'gc>>,
    kb: Gc<'gc, Node<'gc>>,
    kc: Gc<'gc, Node<'gc>>,
}

type TwoTablesR = Rootable!['gc => TwoTables<'gc>];

/// No table operation runs inside a value's `Clone` (which runs with its table locked): two
/// threads each reading a value whose `Clone` uses the other's table at the same moment (a
/// barrier in the `Clone` makes sure each holds its table's lock) waited for each other for
/// ever; now each `Clone` panics. Without another thread the same `Clone` panics too: the rule
/// does not depend on whether threads meet. Both tables stay usable.
#[test]
fn value_clones_that_use_each_others_tables_panic_instead_of_deadlocking() {
    let heap = Heap::new(Config::default()).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(std::sync::Barrier::new(2));
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let stash = m.mutate(|mc, _| {
        let (a, b) = (GcEphemeronTable::new(mc), GcEphemeronTable::new(mc));
        let (ka, kb, kc) = (
            node(mc, 1, &drops),
            node(mc, 2, &drops),
            node(mc, 3, &drops),
        );
        let value = |other, key, gate: &Arc<std::sync::Barrier>| OtherReading {
            other,
            key,
            gate: Some(gate.clone()),
        };
        a.insert(mc, ka, value(b, kb, &gate));
        b.insert(mc, kb, value(a, ka, &gate));
        let alone = OtherReading {
            other: b,
            key: kb,
            gate: None,
        };
        a.insert(mc, kc, alone);
        mc.stash::<TwoTablesR>(Gc::new(mc, TwoTables { a, b, ka, kb, kc }))
    });
    let (tx, rx) = std::sync::mpsc::channel();
    for first in [true, false] {
        let (heap, stash, tx) = (heap.clone(), stash.clone(), tx.clone());
        std::thread::spawn(move || {
            let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
            let panicked = m.mutate(|mc, _| {
                let t = stash.fetch(mc);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    if first { t.a.get(t.ka) } else { t.b.get(t.kb) }.is_some()
                }))
                .is_err()
            });
            tx.send(panicked).unwrap();
        });
    }
    for _ in 0..2 {
        let panicked = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("get returned (no wait for the other thread's table)");
        assert!(panicked, "the Clone that used another table panicked");
    }
    let (alone_panicked, answers) = m.mutate(|mc, _| {
        let t = stash.fetch(mc);
        let alone = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.a.get(t.kc)));
        (
            alone.is_err(),
            (t.a.len(), t.b.len(), t.a.contains_key(t.kc)),
        )
    });
    assert!(
        alone_panicked,
        "also on one thread, with the other table free"
    );
    assert_eq!(
        answers,
        (2, 1, true),
        "the tables are intact after the panics"
    );
}

#[derive(Trace)]
struct PopRoot<'gc> {
    queue: GcFinalizers<'gc, Weighted<'gc>>,
    kept: GcCell<'gc, Option<Gc<'gc, Weighted<'gc>>>>,
    weak: GcCell<'gc, Option<GcWeak<'gc, Weighted<'gc>>>>,
}

type PopRootR = Rootable!['gc => PopRoot<'gc>];

fn pop_root(heap: &Heap) -> Mutator<PopRootR> {
    heap.mutator(|mc| PopRoot {
        queue: GcFinalizers::new(mc),
        kept: GcCell::new(None),
        weak: GcCell::new(None),
    })
}

/// Register a finalizable object that reaches `ballast` others and drop it.
fn register_weighted(m: &mut Mutator<PopRootR>, id: u64, ballast: usize) {
    m.mutate(|mc, r| {
        let b = GcArray::new(mc, ballast, None);
        for i in 0..ballast {
            b.set(mc, i, Some(Gc::new(mc, i as u64)));
        }
        r.queue
            .register(mc, Gc::new(mc, Weighted { id, ballast: b }));
    });
}

/// Pop the queued object, keep it, and make a weak reference to it; whether that reference
/// upgrades in the same scope.
fn pop_and_downgrade(m: &mut Mutator<PopRootR>) -> Option<bool> {
    m.mutate(|mc, r| {
        let o = r.queue.pop(mc)?;
        r.kept.set(mc, Some(o));
        let w = o.downgrade(mc);
        r.weak.set(mc, Some(w));
        Some(w.upgrade(mc).is_some_and(|x| x.id == o.id))
    })
}

/// The reference made from the kept object still upgrades to it, cycles later.
fn assert_weak_upgrades(m: &mut Mutator<PopRootR>, what: &str) {
    m.collect();
    m.collect();
    m.mutate(|mc, r| {
        let (kept, weak) = (r.kept.get().unwrap(), r.weak.get().unwrap());
        let up = weak.upgrade(mc);
        assert!(
            up.is_some_and(|x| x.id == kept.id),
            "{what}: a weak reference to an object kept alive reads as dead"
        );
        // Garbage again: the reference dies with it.
        r.kept.set(mc, None);
    });
    m.collect();
    m.collect();
    m.mutate(|mc, r| {
        let weak = r.weak.get().unwrap();
        assert!(weak.upgrade(mc).is_none(), "{what}: the object died");
        r.weak.set(mc, None);
    });
}

/// A weak reference made to an object after it was queued for finalization (popped from its
/// queue and kept) works like any other, whenever in the cycle it is made: in the weak-clearing
/// window before the collector cleared the cycle's dead references, or while marking resumes
/// for what the resurrected objects reach. (It did not: a reference made then was cleared for
/// good, with its target alive, while one made a moment later worked.) References made before
/// the target was queued read as dead: `finalizers_resurrect_in_registration_order_and_free_later`.
#[test]
fn a_weak_reference_made_to_a_popped_object_works() {
    // In the weak-clearing window, held open (only the concurrent collector with verify mode
    // off clears weak references with the world running).
    let heap = Heap::new(Config::default().concurrent(true).verify(false)).unwrap();
    let mut m = pop_root(&heap);
    register_weighted(&mut m, 1, 0);
    heap.debug_hold_weak_clearing(true);
    heap.debug_start_cycle();
    while !heap.debug_weaks_pending() {
        std::thread::yield_now();
    }
    let upgraded = pop_and_downgrade(&mut m);
    heap.debug_hold_weak_clearing(false);
    assert_eq!(upgraded, Some(true), "in the window");
    assert_weak_upgrades(&mut m, "in the window");

    // While marking resumes for the ballast of the object just resurrected: a second thread
    // pops it as soon as it is queued.
    const BALLAST: usize = if cfg!(miri) { 200 } else { 200_000 };
    for config in settings() {
        let what = format!("{config:?}");
        let heap = Heap::new(config).unwrap();
        let mut m = pop_root(&heap);
        for round in 0..3 {
            register_weighted(&mut m, round, BALLAST);
            let collector = {
                let heap = heap.clone();
                std::thread::spawn(move || heap.collect())
            };
            let upgraded = loop {
                if let Some(u) = pop_and_downgrade(&mut m) {
                    break u;
                }
                std::hint::spin_loop();
            };
            collector.join().unwrap();
            assert!(upgraded, "{what}: round {round}: in the scope that made it");
            assert_weak_upgrades(&mut m, &format!("{what}: round {round}"));
        }
    }
}

/// An object with a finalizer queue of its own and a successor (`Owner` with ballast).
#[derive(Trace)]
struct Holder<'gc> {
    #[gc(skip)]
    id: u64,
    #[gc(skip)]
    _tracker: Tracker,
    ballast: GcArray<'gc, Option<Gc<'gc, u64>>>,
    queue: GcCell<'gc, Option<GcFinalizers<'gc, Holder<'gc>>>>,
    next: GcCell<'gc, Option<Gc<'gc, Holder<'gc>>>>,
    weak: GcCell<'gc, Option<GcWeak<'gc, Holder<'gc>>>>,
}

#[derive(Trace)]
struct HolderRoot<'gc> {
    queue: GcFinalizers<'gc, Holder<'gc>>,
    kept: GcVec<'gc, Option<Gc<'gc, Holder<'gc>>>>,
    weak: GcCell<'gc, Option<GcWeak<'gc, Holder<'gc>>>>,
}

/// A mutator whose root has an empty queue, list and weak reference.
fn holder_mutator(heap: &Heap) -> Mutator<Rootable!['gc => HolderRoot<'gc>]> {
    heap.mutator(|mc| HolderRoot {
        queue: GcFinalizers::new(mc),
        kept: GcVec::new(mc),
        weak: GcCell::new(None),
    })
}

/// One of [`settings`] for the tests of `Holder`s: its name, whether it is concurrent, a heap, a
/// drop counter and a [`holder_mutator`] of the heap.
struct HolderSetting {
    what: String,
    concurrent: bool,
    heap: Heap,
    drops: Arc<AtomicUsize>,
    m: Mutator<Rootable!['gc => HolderRoot<'gc>]>,
}

fn holder_settings() -> impl Iterator<Item = HolderSetting> {
    settings().into_iter().map(|config| {
        let what = format!("{config:?}");
        let concurrent = config.get_concurrent();
        let heap = Heap::new(config).unwrap();
        let m = holder_mutator(&heap);
        HolderSetting {
            what,
            concurrent,
            heap,
            drops: Arc::new(AtomicUsize::new(0)),
            m,
        }
    })
}

/// A new `Holder` with id `id`, counted in `drops` when dropped, with a ballast array of `n`
/// fresh objects (marking what it reaches takes a while when `n` is large).
fn holder<'gc>(
    mc: &gc_core::Mutation<'gc>,
    drops: &Arc<AtomicUsize>,
    id: u64,
    n: usize,
) -> Gc<'gc, Holder<'gc>> {
    let ballast = GcArray::new(mc, n, None);
    for i in 0..n {
        ballast.set(mc, i, Some(Gc::new(mc, i as u64)));
    }
    Gc::new(
        mc,
        Holder {
            id,
            _tracker: Tracker(drops.clone()),
            ballast,
            queue: GcCell::new(None),
            next: GcCell::new(None),
            weak: GcCell::new(None),
        },
    )
}

/// An object that was unreachable when marking first completed, registered with a queue that
/// only a resurrected object reaches, is decided by a later resurrection round. Between the
/// rounds (the concurrent collector marks with the world running) a weak reference made before
/// the first round cannot hand it back: it was dead when marking completed, and the later
/// round queues it, as the first round queued the object that reaches its queue. (An earlier
/// version handed it out and kept it from being queued, which made it alive; the same upgrade
/// of an object that merely *reaches* a queued one could not be undone, see
/// `a_weak_reference_dead_at_the_first_completion_does_not_reach_a_queued_object`.) The
/// stop-the-world collector runs every round in the pause, with the same answer.
#[test]
fn an_object_dead_at_the_first_completion_stays_dead_to_weak_references_between_rounds() {
    const BALLAST: usize = if cfg!(miri) { 200 } else { 200_000 };
    for HolderSetting {
        what,
        concurrent,
        heap,
        drops,
        mut m,
    } in holder_settings()
    {
        let mut between_rounds = 0;
        // Four rounds, and more (up to 32) until one upgrade lands between the resurrection
        // rounds in the concurrent settings: a loaded machine may delay the mutator past them.
        let mut rounds = 0u64;
        while rounds < 4 || (rounds < 32 && concurrent && !cfg!(miri) && between_rounds == 0) {
            let round = rounds;
            rounds += 1;
            m.mutate(|mc, r| {
                let holder = |id, n| holder(mc, &drops, id, n);
                // `a` (root queue) holds queue 2 and `y`; `y` is registered with queue 2.
                let (a, y) = (holder(2 * round, BALLAST), holder(2 * round + 1, 0));
                let q2 = GcFinalizers::new(mc);
                a.queue.set(mc, Some(q2));
                a.next.set(mc, Some(y));
                q2.register(mc, y);
                r.queue.register(mc, a);
                r.weak.set(mc, Some(y.downgrade(mc)));
            });
            let collector = {
                let heap = heap.clone();
                std::thread::spawn(move || heap.collect())
            };
            // As soon as `a` is queued: whether `y`'s round has run yet, and the upgrade.
            let (early, upgraded) = loop {
                let seen = m.mutate(|mc, r| {
                    let a = r.queue.pop(mc)?;
                    r.kept.push(mc, Some(a));
                    let early = a.queue.get().unwrap().is_empty();
                    let y = r.weak.get().unwrap().upgrade(mc);
                    Some((early, y.is_some()))
                });
                if let Some(s) = seen {
                    break s;
                }
                std::hint::spin_loop();
            };
            collector.join().unwrap();
            between_rounds += early as usize;
            assert!(
                !upgraded,
                "{what}: `y`, dead at the first completion, upgraded"
            );
            m.mutate(|mc, r| {
                assert!(
                    r.weak.get().unwrap().upgrade(mc).is_none(),
                    "{what}: the weak reference to `y` reads as alive"
                );
                let a = r.kept.get(r.kept.len() - 1).flatten().unwrap();
                let popped = a.queue.get().unwrap().pop(mc);
                assert_eq!(
                    popped.map(|y| y.id),
                    Some(2 * round + 1),
                    "{what}: `y` was not queued with `a`"
                );
            });
        }
        if concurrent && !cfg!(miri) {
            assert!(
                between_rounds > 0,
                "{what}: no upgrade landed between rounds"
            );
        }
        // Everything becomes garbage and is freed, once each.
        m.mutate(|mc, r| {
            while r.kept.pop(mc).is_some() {}
            while r.queue.pop(mc).is_some() {}
            r.weak.set(mc, None);
        });
        for _ in 0..4 {
            m.collect();
        }
        assert_eq!(
            drops.load(Ordering::SeqCst) as u64,
            2 * rounds,
            "{what}: every object freed once"
        );
    }
}

/// An object `k` with no finalizer, reachable only through a weak reference, points to `y`,
/// registered with a live queue; another object `a`, registered too, carries a large ballast,
/// so that marking what `a`'s resurrection reaches takes a while. Both `a` and `y` are dead
/// when marking first completes and are queued by the first round. Once `a` has been popped
/// (the round has run), upgrading the weak reference to `k` must fail: `k` was dead, and
/// handing it out would give the program `y`, an object queued for finalization, through an
/// ordinary path (its finalizer would run while it is reachable, and any older weak reference
/// to `y` would be cleared while the program holds it). The concurrent collector resumes
/// marking with the world running after the round, which is when the upgrade lands; the
/// stop-the-world one has cleared the reference by then. The same holds for a weak reference
/// that only `a` reaches (its box is dead too when marking first completes) to another dead
/// object. Whether the upgrade landed between the rounds is read off a queue that only `a`
/// reaches, which the cycle's second round fills.
#[test]
fn a_weak_reference_dead_at_the_first_completion_does_not_reach_a_queued_object() {
    const BALLAST: usize = if cfg!(miri) { 200 } else { 200_000 };
    for HolderSetting {
        what,
        concurrent,
        heap,
        drops,
        mut m,
    } in holder_settings()
    {
        let mut resumed = 0;
        // As in the test above: more rounds until one lands while marking resumed.
        let mut rounds = 0u64;
        while rounds < 4 || (rounds < 32 && concurrent && !cfg!(miri) && resumed == 0) {
            let round = rounds;
            rounds += 1;
            m.mutate(|mc, r| {
                let holder = |id, n| holder(mc, &drops, id, n);
                let a = holder(5 * round, BALLAST);
                let k = holder(5 * round + 1, 0);
                let y = holder(5 * round + 2, 0);
                // `z`, registered with a queue only `a` reaches, is queued by the cycle's
                // second round: while that queue is empty, the first round has run and the
                // second has not (marking resumed in this very cycle).
                let q2 = GcFinalizers::new(mc);
                q2.register(mc, holder(5 * round + 4, 0));
                a.queue.set(mc, Some(q2));
                k.next.set(mc, Some(y));
                r.queue.register(mc, a);
                r.queue.register(mc, y);
                r.weak.set(mc, Some(k.downgrade(mc)));
                // A weak reference that only `a` reaches, to another dead object.
                a.weak.set(mc, Some(holder(5 * round + 3, 0).downgrade(mc)));
            });
            let collector = {
                let heap = heap.clone();
                std::thread::spawn(move || heap.collect())
            };
            let (marking, k_upgraded) = loop {
                let seen = m.mutate(|mc, r| {
                    let a = r.queue.pop(mc)?;
                    assert_eq!(a.id, 5 * round, "{what}: queued in registration order");
                    let marking = a.queue.get().unwrap().is_empty();
                    let k = r.weak.get().unwrap().upgrade(mc);
                    if let Some(k) = k {
                        // The program now holds `y` through `k`.
                        r.kept.push(mc, k.next.get());
                    }
                    let other = a.weak.get().unwrap().upgrade(mc);
                    r.kept.push(mc, other);
                    Some((marking, k.is_some() || other.is_some()))
                });
                if let Some(s) = seen {
                    break s;
                }
                std::hint::spin_loop();
            };
            collector.join().unwrap();
            resumed += marking as usize;
            assert!(
                !k_upgraded,
                "{what}: an object dead at the first completion upgraded after the round \
                 (before the second round: {marking})"
            );
            // `y` was queued, and nothing but the queue holds it.
            m.mutate(|mc, r| {
                let y = r.queue.pop(mc).expect("`y` queued");
                assert_eq!(y.id, 5 * round + 2, "{what}");
                assert!(r.queue.pop(mc).is_none(), "{what}");
            });
        }
        if concurrent && !cfg!(miri) {
            assert!(resumed > 0, "{what}: no upgrade landed between the rounds");
        }
        m.mutate(|mc, r| {
            while r.kept.pop(mc).is_some() {}
            r.weak.set(mc, None);
        });
        for _ in 0..4 {
            m.collect();
        }
        assert_eq!(
            drops.load(Ordering::SeqCst) as u64,
            5 * rounds,
            "{what}: every object freed once"
        );
    }
}

/// An `insert` that overwrites an entry returns the old value, which the table held alone:
/// kept in a new object (whose initial values are not shaded: the scope began after STW 1, so
/// everything it can name is in the snapshot, this value through the table), it must be shaded
/// by the insert (the deletion half of the barrier), or the marker, reaching the table after
/// the overwrite, never finds it. Concurrent marking, verify mode on and off.
#[test]
fn an_overwritten_value_kept_by_the_mutator_stays_alive() {
    a_value_taken_out_while_marking_and_kept_stays_alive(false);
}

/// The same for an entry removed while marking: `remove` shades the value it takes out.
#[test]
fn a_removed_value_kept_by_the_mutator_stays_alive() {
    a_value_taken_out_while_marking_and_kept_stays_alive(true);
}

/// Key 1's value (node 2) taken out of the table while marking, by an overwrite with node 3
/// or by `remove`, and kept only in a new object, survives the cycle. Nothing is allocated in
/// the marking scope before the value is taken out (the replacement is made before the cycle):
/// an allocation may assist, and the assist may scan the table first.
fn a_value_taken_out_while_marking_and_kept_stays_alive(remove: bool) {
    for verify in [false, true] {
        let what = format!("remove={remove} verify={verify}");
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = root_mutator(&heap);
        m.mutate(|mc, r| {
            let k = node(mc, 1, &drops);
            r.keys.push(mc, Some(k));
            r.table.insert(mc, k, node(mc, 2, &drops));
            r.keys.push(mc, Some(node(mc, 3, &drops)));
        });
        common::start_held_cycle(&heap, || m.mutate(|mc, _| mc.debug_marking()));
        m.mutate(|mc, r| {
            let k = r.keys.get(0).unwrap().unwrap();
            let old = if remove {
                r.table.remove(mc, k)
            } else {
                r.table.insert(mc, k, r.keys.get(1).unwrap().unwrap())
            };
            let old = old.expect("the entry");
            assert_eq!(old.id, 2);
            let holder = Gc::new(
                mc,
                Node {
                    id: 4,
                    _tracker: None,
                    next: GcCell::new(Some(old)),
                },
            );
            r.keys.push(mc, Some(holder));
        });
        common::release_held(&heap);
        m.collect();
        m.collect();
        m.mutate(|mc, r| {
            // Whatever was freed is reused.
            for i in 0..1000 {
                Gc::new(mc, i as u64);
            }
            assert_eq!(r.table.len(), !remove as usize, "{what}");
            let holder = r.keys.get(2).unwrap().unwrap();
            assert_eq!(holder.next.get().unwrap().id, 2, "{what}");
        });
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "{what}: a live node dropped"
        );
    }
}

/// A table value with drop glue of its own (a field the collector does not trace).
#[derive(Trace)]
struct Tagged<'gc> {
    #[gc(skip)]
    _tracker: Tracker,
    _node: Gc<'gc, Node<'gc>>,
}

#[derive(Trace)]
struct TaggedRoot<'gc> {
    table: GcEphemeronTable<'gc, Node<'gc>, Tagged<'gc>>,
    keys: GcVec<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// The value of an entry whose key dies is dropped with the entry, once, as a swept object's
/// drop glue runs; the live keys' values are not, until the heap goes.
#[test]
fn a_dead_keys_value_is_dropped_once_with_its_entry() {
    for config in settings() {
        let what = format!("{config:?}");
        let heap = Heap::new(config).unwrap();
        let (nodes, values) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut m: Mutator<Rootable!['gc => TaggedRoot<'gc>]> = heap.mutator(|mc| TaggedRoot {
            table: GcEphemeronTable::new(mc),
            keys: GcVec::new(mc),
        });
        m.mutate(|mc, r| {
            for i in 0..4 {
                let k = node(mc, i, &nodes);
                let v = Tagged {
                    _tracker: Tracker(values.clone()),
                    _node: node(mc, 100 + i, &nodes),
                };
                r.table.insert(mc, k, v);
                // The odd keys live.
                if i % 2 == 1 {
                    r.keys.push(mc, Some(k));
                }
            }
        });
        m.collect();
        m.collect();
        assert_eq!(m.mutate(|_, r| r.table.len()), 2, "{what}");
        assert_eq!(
            values.load(Ordering::SeqCst),
            2,
            "{what}: the dead keys' values"
        );
        assert_eq!(
            nodes.load(Ordering::SeqCst),
            4,
            "{what}: the dead keys and their values' nodes"
        );
        drop(m);
        drop(heap);
        assert_eq!(
            values.load(Ordering::SeqCst),
            4,
            "{what}: the rest at teardown"
        );
    }
}

/// Cleanups run on the heap's one cleanup thread, one at a time, in the order their objects
/// were registered: three cycles of ten dead objects each.
#[test]
fn cleanups_run_in_registration_order_on_one_thread() {
    for config in settings() {
        let heap = Heap::new(config.clone()).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut m = root_mutator(&heap);
        for round in 0..3u64 {
            m.mutate(|mc, _| {
                for i in 0..10u64 {
                    let seen = seen.clone();
                    Gc::new(mc, i).add_cleanup(mc, move || {
                        let me = std::thread::current().id();
                        seen.lock().unwrap().push((round * 10 + i, me));
                    });
                }
            });
            m.collect();
            wait_for_cleanups_within_a_minute(&heap);
        }
        let seen = seen.lock().unwrap();
        let order: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(order, (0..30).collect::<Vec<_>>(), "{config:?}");
        assert!(
            seen.iter().all(|s| s.1 == seen[0].1),
            "{config:?}: cleanups ran on more than one thread"
        );
    }
}

/// A cleanup that is running counts as pending (registered, not yet run), and
/// `wait_for_cleanups` waits for it to end.
#[test]
fn a_running_cleanup_is_pending_and_waited_for() {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;
    for config in settings() {
        let heap = Heap::new(config.clone()).unwrap();
        let mut m = root_mutator(&heap);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        m.mutate(|mc, _| {
            Gc::new(mc, 0u64).add_cleanup(mc, move || {
                started_tx.send(()).unwrap();
                // Runs until the test lets it go.
                let _ = go_rx.recv();
            });
        });
        m.collect();
        started
            .recv_timeout(Duration::from_secs(60))
            .expect("the cleanup ran");
        assert_eq!(
            heap.metrics().u64("/gccore/gc/cleanups/pending:calls"),
            Some(1),
            "{config:?}"
        );
        // A wait on another thread does not return while the cleanup runs (here: for 50 ms).
        let returned = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (heap, returned) = (heap.clone(), returned.clone());
            std::thread::spawn(move || {
                heap.wait_for_cleanups();
                returned.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let early = returned.load(Ordering::SeqCst);
        go.send(()).unwrap();
        waiter.join().unwrap();
        assert!(
            !early,
            "{config:?}: wait_for_cleanups returned while the cleanup ran"
        );
        assert_eq!(
            heap.metrics().u64("/gccore/gc/cleanups/pending:calls"),
            Some(0)
        );
    }
}

#[derive(Trace)]
struct Queued<'gc> {
    queue: GcFinalizers<'gc, Node<'gc>>,
    table: GcCell<'gc, Option<GcEphemeronTable<'gc, Node<'gc>, Gc<'gc, Node<'gc>>>>>,
    keys: GcVec<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// A cycle's record counts what that cycle did: the objects it queued for finalization and
/// its ephemeron rounds, not the heap's totals; and a cycle without ephemeron chains builds
/// no key index, also after one that did (its index state starts afresh each cycle).
#[test]
fn cycle_records_count_their_own_cycle_and_only_chains_build_the_key_index() {
    for config in settings() {
        let heap = Heap::new(config.clone().gc_percent(None)).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m: Mutator<Rootable!['gc => Queued<'gc>]> = heap.mutator(|mc| Queued {
            queue: GcFinalizers::new(mc),
            table: GcCell::new(None),
            keys: GcVec::new(mc),
        });
        let indexed = |heap: &Heap| {
            heap.metrics()
                .u64("/gccore/gc/ephemerons/indexed:entries")
                .unwrap()
        };
        // Cycle 1: three objects queued, and a chain of 12 through the values of a table.
        const N: u64 = 12;
        m.mutate(|mc, r| {
            for i in 0..3 {
                r.queue.register(mc, node(mc, 100 + i, &drops));
            }
            let table = GcEphemeronTable::new(mc);
            let keys: Vec<_> = (0..N).map(|i| node(mc, i, &drops)).collect();
            for i in 0..N as usize - 1 {
                let v = node(mc, 1000 + i as u64, &drops);
                v.next.set(mc, Some(keys[i + 1]));
                table.insert(mc, keys[i], v);
            }
            r.keys.push(mc, Some(keys[0]));
            r.table.set(mc, Some(table));
        });
        heap.take_cycle_records();
        m.collect();
        let first = heap.take_cycle_records().pop().unwrap();
        assert_eq!(first.finalizers_queued, 3, "{config:?}");
        assert!(first.ephemeron_rounds > 3, "{config:?}: {first:?}");
        let after_chain = indexed(&heap);
        assert!(after_chain > 0, "{config:?}: the chain built no index");
        // Cycle 2: the queue emptied, the chain dropped; a new table whose five keys are dead.
        m.mutate(|mc, r| {
            while r.queue.pop(mc).is_some() {}
            r.keys.truncate(mc, 0);
            let table = GcEphemeronTable::new(mc);
            for i in 0..5 {
                table.insert(mc, node(mc, 2000 + i, &drops), node(mc, 3000 + i, &drops));
            }
            r.table.set(mc, Some(table));
        });
        m.collect();
        let second = heap.take_cycle_records().pop().unwrap();
        assert_eq!(second.finalizers_queued, 0, "{config:?}: {second:?}");
        assert!(second.ephemeron_rounds <= 2, "{config:?}: {second:?}");
        assert_eq!(
            indexed(&heap),
            after_chain,
            "{config:?}: an index without a chain"
        );
        assert_eq!(m.mutate(|_, r| r.table.get().unwrap().len()), 0);
    }
}

/// A termination attempt that finds more to mark (an object queued for finalization, whose
/// child the attempt greys) is a pause recorded as a retry; only the attempt that ends marking
/// is the cycle's mark termination. Both count as pauses.
#[test]
fn a_termination_attempt_that_finds_work_is_recorded_as_a_retry() {
    use gc_core::phases::Phase;
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify).gc_percent(None)).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = froot_mutator(&heap);
        m.mutate(|mc, r| {
            let parent = node(mc, 1, &drops);
            parent.next.set(mc, Some(node(mc, 2, &drops)));
            r.queue.register(mc, parent);
        });
        heap.take_phase_records();
        let (pauses, cycles) = (heap.stats().pauses, heap.stats().gc_cycles);
        m.collect();
        let recs = heap.take_phase_records();
        let cycle = cycles + 1;
        let of = |p: Phase| {
            recs.iter()
                .filter(|r| r.cycle == cycle && r.phase == p)
                .count()
        };
        assert!(
            of(Phase::MarkTerminationRetry) >= 1,
            "verify={verify}: {recs:?}"
        );
        assert_eq!(of(Phase::MarkTermination), 1, "verify={verify}: {recs:?}");
        let recorded = recs.iter().filter(|r| r.phase.is_pause()).count() as u64;
        assert_eq!(heap.stats().pauses - pauses, recorded, "verify={verify}");
        assert_eq!(m.mutate(|mc, r| r.queue.pop(mc).map(|n| n.id)), Some(1));
        assert_eq!(drops.load(Ordering::SeqCst), 0, "verify={verify}");
    }
}

/// The places of registrations taken out by the rounds are dropped before they are a quarter
/// of the list, also when every cycle takes out only one (a long-lived program's list does not
/// grow with what it ever finalized), and by a later look with the world running, not in the
/// concurrent collector's pause: there a round leaves its places, also in a cycle whose look
/// found every registration marked. The stop-the-world collector drops them in its pause.
#[test]
fn the_places_of_registrations_taken_out_are_dropped_before_they_are_a_quarter_of_the_list() {
    const LIVE: usize = 20;
    const ROUNDS: u64 = if cfg!(miri) { 10 } else { 40 };
    for config in settings() {
        let what = format!("{config:?}");
        let concurrent = config.get_concurrent();
        let heap = Heap::new(config.gc_percent(None)).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = froot_mutator(&heap);
        m.mutate(|mc, r| {
            for id in 0..LIVE as u64 {
                let n = node(mc, id, &drops);
                r.queue.register(mc, n);
                r.kept.push(mc, Some(n));
            }
        });
        m.collect();
        let mut longest = 0;
        for round in 0..ROUNDS {
            let id = LIVE as u64 + round;
            m.mutate(|mc, r| r.queue.register(mc, node(mc, id, &drops)));
            m.collect();
            assert_eq!(
                m.mutate(|mc, r| r.queue.pop(mc).map(|n| n.id)),
                Some(id),
                "{what}"
            );
            let len = heap.debug_finalization_registered();
            longest = longest.max(len);
            if !concurrent {
                assert_eq!(len, LIVE, "{what}: round {round}");
            } else if round == 0 {
                // The pause left the place of the one taken out.
                assert_eq!(len, LIVE + 1, "{what}");
                // A cycle whose look finds every registration marked leaves it too.
                m.collect();
                assert_eq!(heap.debug_finalization_registered(), LIVE + 1, "{what}");
            }
        }
        // Dropped once a quarter: the list peaks at LIVE + LIVE / 3 places.
        assert!(
            longest <= LIVE + LIVE / 3 + 1,
            "{what}: the list grew to {longest} places for {LIVE} registrations"
        );
        if concurrent && !cfg!(miri) {
            assert!(longest > LIVE + 1, "{what}: places dropped every cycle");
        }
        // Those taken out are freed once popped, the kept ones not.
        m.collect();
        m.collect();
        assert_eq!(drops.load(Ordering::SeqCst) as u64, ROUNDS, "{what}");
    }
}

/// A new `Holder` (see [`holder`]) with a weak reference to itself, registered with `r`'s queue.
fn registered<'gc>(
    mc: &gc_core::Mutation<'gc>,
    r: &HolderRoot<'gc>,
    drops: &Arc<AtomicUsize>,
    id: u64,
) -> Gc<'gc, Holder<'gc>> {
    let h = holder(mc, drops, id, 0);
    h.weak.set(mc, Some(h.downgrade(mc)));
    r.queue.register(mc, h);
    h
}

/// The concurrent collector looks at the finalizer registrations and weak references before
/// its termination attempts, with the world running, so that a cycle's first resurrection
/// round, in the pause, looks only at the few whose objects were not marked yet: with 5 000 live
/// registered objects, each with a weak reference to itself, and two dead ones registered each
/// cycle, the pause looks at a handful. (The stop-the-world collector looks at every one: it
/// has no other time.) What the round decides is unchanged: the dead objects are queued in
/// registration order and their older weak references read as dead, the live ones stay
/// registered and their weak references upgrade, and once every other live one dies, those are
/// queued in registration order too (the places the rounds took registrations out of the list
/// keep the order of the rest).
#[test]
fn a_pause_looks_only_at_registrations_and_weak_references_not_found_marked_before_it() {
    // More than one chunk of the precheck's walk (4 096 entries).
    const LIVE: u64 = if cfg!(miri) { 20 } else { 5000 };
    const CYCLES: u64 = if cfg!(miri) { 2 } else { 5 };
    for HolderSetting {
        what,
        concurrent,
        heap,
        drops,
        mut m,
    } in holder_settings()
    {
        m.mutate(|mc, r| {
            for id in 0..LIVE {
                let h = registered(mc, r, &drops, id);
                r.kept.push(mc, Some(h));
            }
        });
        m.collect();
        let pop_all = |m: &mut Mutator<Rootable!['gc => HolderRoot<'gc>]>| {
            m.mutate(|mc, r| {
                let mut ids = Vec::new();
                while let Some(h) = r.queue.pop(mc) {
                    assert!(
                        h.weak.get().unwrap().upgrade(mc).is_none(),
                        "{what}: a weak reference made before {} was queued upgrades",
                        h.id
                    );
                    ids.push(h.id);
                }
                ids
            })
        };
        for c in 0..CYCLES {
            let dead = [LIVE + 2 * c, LIVE + 2 * c + 1];
            m.mutate(|mc, r| {
                for id in dead {
                    registered(mc, r, &drops, id);
                }
            });
            let before = heap.debug_finalization_pause_looked();
            m.collect();
            let looked = heap.debug_finalization_pause_looked() - before;
            if concurrent {
                assert!(
                    looked <= 20,
                    "{what}: the pause looked at {looked} registrations and weak references"
                );
            } else {
                assert!(
                    looked >= 2 * LIVE,
                    "{what}: the stop-the-world pause looked at only {looked}"
                );
            }
            assert_eq!(pop_all(&mut m), dead, "{what}: cycle {c}");
        }
        m.mutate(|mc, r| {
            for i in 0..LIVE as usize {
                let h = r.kept.get(i).flatten().unwrap();
                let up = h.weak.get().unwrap().upgrade(mc);
                assert_eq!(up.map(|u| u.id), Some(h.id), "{what}: live {}", h.id);
            }
            // The odd ones: entry 4 095, the last of the precheck's first chunk, among them.
            for i in (1..LIVE as usize).step_by(2) {
                r.kept.set(mc, i, None);
            }
        });
        m.collect();
        let expected: Vec<u64> = (1..LIVE).step_by(2).collect();
        assert_eq!(pop_all(&mut m), expected, "{what}: every other live one");
        // Everything popped is garbage now; the rest dies with its registrations queued too.
        m.mutate(|mc, r| while r.kept.pop(mc).is_some() {});
        m.collect();
        let rest = pop_all(&mut m);
        assert_eq!(rest.len() as u64, LIVE / 2, "{what}: the other half");
        for _ in 0..3 {
            m.collect();
        }
        assert_eq!(
            drops.load(Ordering::SeqCst) as u64,
            LIVE + 2 * CYCLES,
            "{what}: every object freed once"
        );
        // The places of the registrations taken out are dropped (by a later cycle's precheck,
        // in the concurrent collector).
        assert_eq!(
            heap.debug_finalization_registered(),
            0,
            "{what}: registrations left in the list"
        );
    }
}
