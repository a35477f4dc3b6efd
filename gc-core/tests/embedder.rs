//! What an interpreter embedding the heap needs beyond the basics: collecting from inside a
//! scope (`Mutation::request_collect`, for a `(gc)` builtin), a vector of NaN-boxed values,
//! fallible forms of every allocating constructor, a live-heap limit that lifts by itself once
//! data is dropped, returning memory to the OS at once (`Heap::free_os_memory`), and cycle
//! records that say which cycles were forced.

#![allow(clippy::type_complexity)] // `Rootable![...]` expands to a long type

use std::time::{Duration, Instant};

use gc_core::{
    AllocError, Config, Gc, GcArray, GcBytes, GcCell, GcVec, GcWeak, Heap, Mutator, NanBox,
    Rootable, Trace, Unboxed,
};

const MIB: usize = 1 << 20;

#[derive(Trace)]
struct Obj {
    id: u64,
}

/// Polls `done` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

type Weak = Rootable!['gc => GcCell<'gc, Option<GcWeak<'gc, Obj>>>];

/// A `(gc)` builtin: requested inside a scope, the collection starts at once and is forced;
/// the scope sees `should_yield` and leaves; the cycle then completes without `collect()` and
/// reclaims what was garbage.
#[test]
fn request_collect_runs_a_forced_cycle_from_inside_a_scope() {
    for verify in [false, true] {
        // GOGC=off: no cycle but the requested one.
        let heap = Heap::new(Config::default().gc_percent(None).verify(verify)).unwrap();
        let mut m: Mutator<Weak> = heap.mutator(|_| GcCell::new(None));
        let before = heap.stats().gc_cycles;
        m.mutate(|mc, root| {
            let garbage = Gc::new(mc, Obj { id: 7 });
            root.set(mc, Some(garbage.downgrade(mc)));
            mc.request_collect();
            assert!(
                wait_for(Duration::from_secs(10), || mc.should_yield()),
                "the requested cycle never asked this scope to yield"
            );
        });
        assert!(
            wait_for(Duration::from_secs(10), || heap.stats().gc_cycles > before),
            "the requested cycle did not complete"
        );
        heap.finish_sweep();
        let recs = heap.take_cycle_records();
        assert_eq!(recs.len(), 1, "one cycle: the requested one");
        assert!(recs[0].forced, "a requested cycle is forced");
        assert!(
            m.mutate(|mc, root| root.get().unwrap().upgrade(mc).is_none()),
            "the garbage survived the requested cycle"
        );
    }
}

/// A cycle the trigger (here: `debug_start_cycle`) started is not labelled forced because a
/// forced one was asked for while it marked; the forced one is.
#[test]
fn only_requested_cycles_are_labelled_forced() {
    let heap = Heap::new(Config::default().gc_percent(None)).unwrap();
    let mut m: Mutator<Weak> = heap.mutator(|_| GcCell::new(None));
    heap.debug_hold_marking(true);
    heap.debug_start_cycle();
    assert!(wait_for(Duration::from_secs(10), || m
        .mutate(|mc, _| mc.debug_marking())));
    // Cycle 1 marks (held); ask for a forced one, which can only be cycle 2.
    m.mutate(|mc, _| mc.request_collect());
    heap.debug_hold_marking(false);
    assert!(wait_for(Duration::from_secs(10), || heap.stats().gc_cycles >= 2));
    let recs = heap.take_cycle_records();
    let forced: Vec<(u64, bool)> = recs.iter().map(|r| (r.cycle, r.forced)).collect();
    assert_eq!(forced, vec![(1, false), (2, true)]);
    assert!(!recs[0].gctrace_line().contains("(forced)"));
    assert!(recs[1].gctrace_line().ends_with("(forced)"));
}

#[derive(Trace)]
struct ValuesRoot<'gc> {
    v: GcVec<'gc, NanBox<'gc, Obj>>,
    popped: GcCell<'gc, Option<GcWeak<'gc, Obj>>>,
}

type Values = Rootable!['gc => ValuesRoot<'gc>];

/// `GcVec<NanBox<_>>`: numbers, immediates and pointers round-trip, the pointers keep their
/// objects alive across cycles, popped ones are reclaimed, spare capacity holds the default
/// (the immediate 0).
#[test]
fn a_vector_of_nan_boxed_values() {
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<Values> = heap.mutator(|mc| ValuesRoot {
            v: GcVec::new(mc),
            popped: GcCell::new(None),
        });
        m.mutate(|mc, r| {
            let v = r.v;
            for i in 0..1000u32 {
                v.push(mc, NanBox::number(i as f64 + 0.5));
                v.push(mc, NanBox::imm(i));
                v.push(mc, NanBox::gc(Gc::new(mc, Obj { id: i as u64 })));
            }
        });
        m.collect();
        m.mutate(|mc, r| {
            let v = r.v;
            for i in 0..1000usize {
                assert_eq!(v.get(3 * i).unwrap().as_number(), Some(i as f64 + 0.5));
                assert!(
                    matches!(v.get(3 * i + 1).unwrap().unbox(), Unboxed::Imm(x) if x == i as u32)
                );
                match v.get(3 * i + 2).unwrap().unbox() {
                    Unboxed::Ptr(o) => assert_eq!(o.id, i as u64),
                    _ => panic!("element {} is not a pointer", 3 * i + 2),
                }
            }
            assert!(matches!(NanBox::<Obj>::default().unbox(), Unboxed::Imm(0)));
            let Some(Unboxed::Ptr(last)) = v.pop(mc).map(|b| b.unbox()) else {
                panic!("the last element is a pointer")
            };
            r.popped.set(mc, Some(last.downgrade(mc)));
        });
        m.collect();
        m.mutate(|mc, r| {
            let weak = r.popped.get().unwrap();
            assert!(weak.upgrade(mc).is_none(), "a popped object survived");
            assert_eq!(r.v.len(), 2999);
            // The one before it is still there.
            assert!(matches!(r.v.get(2996).unwrap().unbox(), Unboxed::Ptr(o) if o.id == 998));
        });
    }
}

type Chunks = Rootable!['gc => GcCell<'gc, Option<GcVec<'gc, Option<GcBytes<'gc>>>>>];

#[derive(Trace)]
struct Held<'gc> {
    chunks: GcVec<'gc, Option<GcBytes<'gc>>>,
    nums: GcVec<'gc, u64>,
}

/// A `try_push` that must grow the vector and is refused (over the live-heap limit) leaves it
/// as it was: length, capacity and elements.
#[test]
fn a_refused_try_push_leaves_the_vector_unchanged() {
    let heap = Heap::new(Config::default().gc_percent(None).max_heap(Some(8 * MIB))).unwrap();
    let mut m: Mutator<Rootable!['gc => Held<'gc>]> = heap.mutator(|mc| Held {
        chunks: GcVec::new(mc),
        nums: GcVec::new(mc),
    });
    // A full vector of 8192 numbers (growing it takes a 128 KiB array: a span of its own),
    // and 12 MiB live beside it, which the collection finds over the limit.
    m.mutate(|mc, r| {
        for i in 0..8192u64 {
            r.nums.push(mc, i);
        }
        assert_eq!((r.nums.len(), r.nums.capacity()), (8192, 8192));
        for _ in 0..12 * 1024 {
            r.chunks.push(mc, Some(GcBytes::new(mc, &[7; 1000])));
        }
    });
    heap.collect();
    m.mutate(|mc, r| {
        let e = r.nums.try_push(mc, 8192).unwrap_err();
        assert!(matches!(e, AllocError::HeapLimit { .. }), "{e}");
        assert_eq!((r.nums.len(), r.nums.capacity()), (8192, 8192));
        assert!((0..8192).all(|i| r.nums.get(i) == Some(i as u64)));
    });
}

/// The fallible forms return `AllocError` where the plain ones would panic, and leave things as
/// they were; after data is dropped, a refusal by the live-heap limit lifts without
/// `collect()` (the refusal itself starts a cycle).
#[test]
fn allocation_under_the_live_heap_limit_fails_cleanly_and_recovers() {
    for verify in [false, true] {
        let heap = Heap::new(
            Config::default()
                .gc_percent(None)
                .max_heap(Some(8 * MIB))
                .verify(verify),
        )
        .unwrap();
        let mut m: Mutator<Chunks> = heap
            .try_mutator(|mc| {
                Ok::<_, AllocError>(GcCell::new(Some(GcVec::try_with_capacity(mc, 0)?)))
            })
            .unwrap();
        // 12 MiB live, then a collection finds it: over the limit.
        m.mutate(|mc, root| {
            let v = root.get().unwrap();
            for _ in 0..12 * 1024 {
                v.try_push(mc, Some(GcBytes::try_new(mc, &[7; 1000]).unwrap()))
                    .unwrap();
            }
        });
        heap.collect();
        let refused = m.mutate(|mc, root| {
            let v = root.get().unwrap();
            let len = v.len();
            // Enough for several new spans: the first that needs one is refused.
            for _ in 0..1024 {
                match GcBytes::try_new(mc, &[1; 1000]) {
                    Ok(b) => {
                        let _ = v.try_push(mc, Some(b));
                    }
                    Err(e) => {
                        assert!(matches!(e, AllocError::HeapLimit { .. }), "{e}");
                        assert!(matches!(
                            GcArray::try_from_slice(mc, &[1u64; 2000]),
                            Err(AllocError::HeapLimit { .. })
                        ));
                        assert!(matches!(
                            GcVec::<u64>::try_with_capacity(mc, 4000),
                            Err(AllocError::HeapLimit { .. })
                        ));
                        assert!(v.len() >= len);
                        // Drop everything.
                        root.set(mc, None);
                        return true;
                    }
                }
            }
            false
        });
        assert!(
            refused,
            "12 MiB live under an 8 MiB limit was never refused"
        );
        // No collect(): the refusal started a cycle, which finds nothing live.
        assert!(
            wait_for(Duration::from_secs(10), || m
                .mutate(|mc, _| GcBytes::try_new(mc, &[2; 1000]).is_ok()
                    && GcArray::try_from_slice(mc, &[1u64; 2000]).is_ok())),
            "allocation stayed refused after the data was dropped"
        );
    }
}

/// A mutator whose fallible root initialiser fails is not registered: the next collection
/// does not wait for it, and the heap can be dropped.
#[test]
fn a_failed_root_initialiser_leaves_no_mutator() {
    let heap = Heap::new(Config::default()).unwrap();
    let r: Result<Mutator<Weak>, &str> = heap.try_mutator(|_| Err("no room"));
    assert_eq!(r.err(), Some("no room"));
    let mut m: Mutator<Weak> = heap.mutator(|_| GcCell::new(None));
    m.collect();
    assert_eq!(heap.stats().gc_cycles, 1);
}

type Big = Rootable!['gc => GcCell<'gc, Option<GcArray<'gc, Option<GcBytes<'gc>>>>>];

/// Where the heap returns no memory to the OS, `free_os_memory` still collects (a forced
/// cycle, the garbage freed) and returns 0, releasing nothing.
#[test]
fn free_os_memory_without_releasing_collects_and_returns_zero() {
    let heap = Heap::new(Config::default().gc_percent(None)).unwrap();
    heap.debug_stop_releasing();
    assert!(!heap.returns_memory_to_os());
    let mut m: Mutator<Big> = heap.mutator(|_| GcCell::new(None));
    m.mutate(|mc, _| {
        let a = GcArray::new(mc, 4096, None);
        for i in 0..a.len() {
            a.set(mc, i, Some(GcBytes::new(mc, &[3; 1000])));
        }
    });
    let metrics = heap.metrics();
    let (forced, released) = (
        metrics.u64("/gc/cycles/forced:gc-cycles").unwrap(),
        metrics.u64("/memory/classes/heap/released:bytes").unwrap(),
    );
    let freed = heap.stats().objects_freed;
    assert_eq!(heap.free_os_memory(), 0);
    let metrics = heap.metrics();
    assert_eq!(metrics.u64("/gc/cycles/forced:gc-cycles"), Some(forced + 1));
    assert_eq!(
        metrics.u64("/memory/classes/heap/released:bytes"),
        Some(released)
    );
    assert!(heap.stats().objects_freed >= freed + 4097);
}

/// `free_os_memory` collects and releases every free page at once: after 64 MiB of garbage,
/// it releases most of it (the background scavenger would take many seconds), the metric
/// shows it, a second call has nothing left, and the heap allocates on (released pages come
/// back usable; verify mode checks them).
#[test]
fn free_os_memory_releases_the_free_pages_at_once() {
    for verify in [false, true] {
        let heap = Heap::new(Config::default().gc_percent(None).verify(verify)).unwrap();
        if !heap.returns_memory_to_os() {
            eprintln!("this system returns no memory to the OS: nothing to check");
            return;
        }
        let mut m: Mutator<Big> = heap.mutator(|_| GcCell::new(None));
        m.mutate(|mc, root| {
            let a = GcArray::new(mc, 64 * 1024, None);
            for i in 0..a.len() {
                a.set(mc, i, Some(GcBytes::new(mc, &[3; 1000])));
            }
            root.set(mc, Some(a));
        });
        let released_metric = "/memory/classes/heap/released:bytes";
        let before = heap.metrics().u64(released_metric).unwrap();
        m.mutate(|mc, root| root.set(mc, None));
        let released = heap.free_os_memory();
        assert!(
            released >= 48 * MIB,
            "released only {released} bytes of 64 MiB of garbage"
        );
        let after = heap.metrics().u64(released_metric).unwrap();
        assert!(after >= before + released as u64, "{before} -> {after}");
        assert_eq!(
            heap.free_os_memory(),
            0,
            "a second call found pages to release"
        );
        m.mutate(|mc, root| {
            let a = GcArray::new(mc, 16 * 1024, None);
            for i in 0..a.len() {
                a.set(mc, i, Some(GcBytes::new(mc, &[4; 1000])));
            }
            root.set(mc, Some(a));
        });
        m.collect();
        m.mutate(|_, root| {
            let a = root.get().unwrap();
            assert!(
                a.iter()
                    .all(|b| b.unwrap().as_bytes().iter().all(|&x| x == 4))
            );
        });
    }
}

/// The metrics print as `name value` lines and as one JSON object, with the figures of the
/// snapshot; the pause histogram prints its buckets, their counts summing to the pauses.
#[test]
fn metrics_render_as_text_and_json() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Weak> = heap.mutator(|_| GcCell::new(None));
    m.collect();
    m.collect();
    let metrics = heap.metrics();
    let cycles = metrics.u64("/gc/cycles/total:gc-cycles").unwrap();
    assert_eq!(cycles, 2);
    let text = metrics.to_string();
    assert_eq!(text.lines().count(), gc_core::metrics::ALL.len());
    assert!(
        text.lines().any(|l| l == "/gc/cycles/total:gc-cycles 2"),
        "{text}"
    );
    let pauses = metrics.histogram("/gc/pauses:seconds").unwrap();
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "/gc/pauses:seconds count={} p50<=",
            pauses.total()
        ))),
        "{text}"
    );
    let json = metrics.to_json();
    assert!(json.starts_with('{') && json.ends_with('}'));
    assert!(json.contains("\"/gc/cycles/total:gc-cycles\":2,"), "{json}");
    assert!(
        json.contains("\"/gc/pauses:seconds\":{\"counts\":["),
        "{json}"
    );
    assert!(
        json.contains(",null]}"),
        "the +inf boundary is null: {json}"
    );
    assert!(!json.contains("inf") && !json.contains("NaN"), "{json}");
    // Balanced braces and brackets, one top-level key per metric.
    let depth = json.chars().try_fold(0i32, |d, c| {
        let d = match c {
            '{' | '[' => d + 1,
            '}' | ']' => d - 1,
            _ => d,
        };
        (d >= 0).then_some(d)
    });
    assert_eq!(depth, Some(0));
    let table = pauses.to_string();
    let counted: u64 = table
        .lines()
        .map(|l| {
            l.split(')')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(counted, pauses.total(), "{table}");
    assert!(pauses.total() >= 4, "two cycles make at least four pauses");
}

/// Under a live-heap limit, a scope that never yields cannot grow the heap without end: past
/// twice the larger of the goal and the limit, allocation fails with `HeapLimitInScope`; once
/// the scope ends, a collection runs and allocation works again. (Before, an 8 MiB limit let
/// one scope reach whatever it allocated: the limit was only checked against completed marks.)
#[test]
fn a_scope_that_never_yields_meets_the_heap_bound() {
    for verify in [false, true] {
        let limit = 8 * MIB;
        let heap = Heap::new(Config::default().max_heap(Some(limit)).verify(verify)).unwrap();
        let mut m: Mutator<Weak> = heap.mutator(|_| GcCell::new(None));
        let refused = m.mutate(|mc, _| {
            // Garbage only, never polling: up to 256 MiB if nothing stops it.
            for _ in 0..256 * 1024 {
                if let Err(e) = GcBytes::try_new(mc, &[5; 1000]) {
                    return Some((e, mc.stats()));
                }
            }
            None
        });
        let Some((e, stats)) = refused else {
            panic!("a scope allocated 256 MiB under an 8 MiB limit without a refusal")
        };
        let AllocError::HeapLimitInScope {
            heap: at, bound, ..
        } = e
        else {
            panic!("refused with {e}, not HeapLimitInScope")
        };
        assert!(
            bound >= 2 * limit && bound <= 2 * stats.heap_goal.max(limit),
            "{e}"
        );
        assert!(at <= bound + MIB && stats.heap_live <= bound + MIB, "{e}");
        // The refusal asked for a cycle; it runs once the scope has ended.
        assert!(
            wait_for(Duration::from_secs(10), || m
                .mutate(|mc, _| GcBytes::try_new(mc, &[6; 1000]).is_ok())),
            "allocation stayed refused after the scope ended"
        );
        // (The cycle count is published just after the world restarts.)
        assert!(wait_for(Duration::from_secs(10), || heap.stats().gc_cycles >= 1));
    }
}

/// With no goal the heap can reach (`GOGC=off` and no memory limit; a `GOGC` so large that
/// the goal lies past the arena; a memory limit past the arena) a live-heap cap still runs
/// cycles (when the heap reaches it), so a program that makes garbage in short scopes runs
/// under it, its garbage reclaimed as it goes, and data over the cap is refused. (Before,
/// nothing ran a cycle: the heap grew to the arena's size and the cap never applied.)
#[test]
fn a_live_heap_cap_without_a_reachable_goal_runs_cycles() {
    let settings: [(&str, fn(Config) -> Config); 3] = [
        ("GOGC=off", |c| c.gc_percent(None)),
        ("GOGC=u32::MAX", |c| c.gc_percent(Some(u32::MAX))),
        ("GOGC=off, a 1 TiB limit", |c| {
            c.gc_percent(None).memory_limit(Some(1 << 40))
        }),
    ];
    for ((setting, set), verify) in settings.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let label = format!("{setting}, verify={verify}");
        let limit = 8 * MIB;
        let heap = Heap::new(
            set(Config::default())
                .max_heap(Some(limit))
                .arena_bytes(1 << 30)
                .verify(verify),
        )
        .unwrap();
        let mut m: Mutator<Chunks> = heap.mutator(|mc| GcCell::new(Some(GcVec::new(mc))));
        let mut highest = 0;
        // 64 MiB of garbage in scopes of 256 KiB, and on (up to four times that) until three
        // cycles ran: a collector thread kept off a loaded machine's CPUs starts cycles late.
        let mut scopes = 0;
        while scopes < 256 || (heap.stats().gc_cycles < 3 && scopes < 1024) {
            scopes += 1;
            m.mutate(|mc, _| {
                for _ in 0..256 {
                    GcBytes::new(mc, &[5; 1000]);
                }
                highest = highest.max(mc.stats().heap_live);
            });
        }
        let cycles = heap.stats().gc_cycles;
        assert!(cycles >= 3, "{label}: {cycles} cycles");
        // Reclaimed while it ran (the cycles are not paced: with no goal there are no assists,
        // so the heap may run past the cap while one marks).
        assert!(
            highest <= 40 * MIB,
            "{label}: the heap reached {} KiB",
            highest >> 10
        );
        // Data kept over the cap (12 MiB): once a cycle has found it, new spans are refused.
        for _ in 0..48 {
            m.mutate(|mc, root| {
                let v = root.get().unwrap();
                for _ in 0..256 {
                    let Ok(b) = GcBytes::try_new(mc, &[7; 1000]) else {
                        return;
                    };
                    if v.try_push(mc, Some(b)).is_err() {
                        return;
                    }
                }
            });
        }
        heap.collect();
        // (Free slots of spans already made are still handed out, and spans kept empty for
        // their class: only new spans are refused. The heap reached at most 40 MiB above, so
        // 80 MB of allocation in one scope needs new spans whatever the sweep left free; 4 MB
        // did not always: with more empty spans kept, no new span was needed.)
        let refused =
            m.mutate(|mc, _| (0..80_000).find_map(|_| GcBytes::try_new(mc, &[6; 1000]).err()));
        assert!(
            matches!(refused, Some(AllocError::HeapLimit { live, .. }) if live > limit),
            "{label}: {refused:?}"
        );
        // Over the cap, cycles run when a refusal asks for one, not back to back.
        let cycles = heap.stats().gc_cycles;
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            heap.stats().gc_cycles <= cycles + 1,
            "{label}: {} cycles in 300 ms with the mutator idle",
            heap.stats().gc_cycles - cycles
        );
    }
}

type ObjRoot = Rootable!['gc => Obj];

/// `StashValue`: a NaN-boxed value kept across scopes and handed to another thread: numbers and
/// immediates come back as they were; a pointer's object stays alive while stashed (also
/// across collections) and is reclaimed once the last `StashValue` holding it is dropped.
#[test]
fn nan_boxed_values_can_be_stashed() {
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let mut m: Mutator<Weak> = heap.mutator(|_| GcCell::new(None));
        let (num, imm, ptr) = m.mutate(|mc, root| {
            let o = Gc::new(mc, Obj { id: 42 });
            root.set(mc, Some(o.downgrade(mc)));
            (
                mc.stash_value::<ObjRoot>(NanBox::number(-2.5)),
                mc.stash_value::<ObjRoot>(NanBox::imm(7)),
                mc.stash_value::<ObjRoot>(NanBox::gc(o)),
            )
        });
        let copy = ptr.clone();
        // Copies of a number and an immediate hold the same bits.
        let (num, imm) = (num.clone(), imm.clone());
        m.collect();
        let h2 = heap.clone();
        let seen = std::thread::spawn(move || {
            let mut m2: Mutator<Weak> = h2.mutator(|_| GcCell::new(None));
            m2.collect();
            m2.mutate(|mc, _| {
                let n = num.fetch(mc).as_number();
                let i = matches!(imm.fetch(mc).unbox(), Unboxed::Imm(7));
                let Unboxed::Ptr(o) = ptr.fetch(mc).unbox() else {
                    panic!("the stashed pointer came back as something else")
                };
                (n, i, o.id)
            })
        })
        .join()
        .unwrap();
        assert_eq!(seen, (Some(-2.5), true, 42));
        // `ptr` was dropped with the thread's closure; `copy` still holds the object.
        m.collect();
        assert!(m.mutate(|mc, root| root.get().unwrap().upgrade(mc).is_some()));
        drop(copy);
        m.collect();
        assert!(
            m.mutate(|mc, root| root.get().unwrap().upgrade(mc).is_none()),
            "the object outlived its last StashValue"
        );
    }
}

type Unit = Rootable!['gc => ()];

thread_local! {
    /// A per-thread mutator, as an embedder running one interpreter per thread may keep it.
    static THREAD_MUTATOR: std::cell::RefCell<Option<Mutator<Unit>>> =
        const { std::cell::RefCell::new(None) };
}

/// A mutator kept in a thread-local is dropped with the thread's other thread-locals as the
/// thread exits, possibly after the collector's own record of the thread's scopes is gone: it
/// must unregister (the heap collects afterwards, and frees what it allocated), not abort the
/// process on a destroyed thread-local.
#[test]
fn a_mutator_in_a_thread_local_is_dropped_at_thread_exit() {
    for concurrent in [true, false] {
        let heap = Heap::new(Config::default().concurrent(concurrent)).unwrap();
        let h = heap.clone();
        std::thread::spawn(move || {
            // Touched first, so that its destructor runs after those registered later.
            THREAD_MUTATOR.with(|_| ());
            let mut m: Mutator<Unit> = h.mutator(|_| ());
            // Enter a scope, so that the collector's per-thread record of scopes exists and
            // is destroyed before this thread-local.
            m.mutate(|mc, _| {
                for i in 0..1000u64 {
                    Gc::new(mc, Obj { id: i });
                }
            });
            THREAD_MUTATOR.with(|s| *s.borrow_mut() = Some(m));
        })
        .join()
        .expect("the thread exited cleanly");
        heap.collect();
        let s = heap.stats();
        assert!(
            s.objects_freed >= 1000,
            "concurrent {concurrent}: the thread's garbage was collected: {s:?}"
        );
    }
}

/// A scope that waits for threads sharing its objects, which themselves need the heap (a new
/// mutator, a scope, its drop), while a collection is requested: inside `Mutation::blocking`
/// the pause goes ahead without the waiting scope, so the threads get in and out and the wait
/// ends. (Outside `blocking` the pause would wait for the scope and the threads for the pause:
/// the deadlock `docs/api.md` warns of.) Verify mode on and off.
#[test]
fn a_scope_joins_threads_that_use_the_heap_inside_a_blocking_region() {
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        let h = heap.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut m: Mutator<Rootable!['gc => ()]> = h.mutator(|_| ());
            let sum = m.mutate(|mc, _| {
                let shared = Gc::new(mc, Obj { id: 7 });
                mc.request_collect();
                // Once the pause is waiting for this scope, the helpers' registrations and
                // scopes wait for the pause until this scope is outside the managed state
                // (before that, they would get in and out without needing `blocking`).
                assert!(
                    wait_for(Duration::from_secs(10), || mc.should_yield()),
                    "the requested cycle never asked this scope to yield"
                );
                mc.blocking(|| {
                    std::thread::scope(|s| {
                        let helpers: Vec<_> = (0..2u64)
                            .map(|i| {
                                let h = &h;
                                s.spawn(move || {
                                    let mut m2: Mutator<Rootable!['gc => ()]> = h.mutator(|_| ());
                                    let made = m2.mutate(|mc, _| Gc::new(mc, Obj { id: i }).id);
                                    made + shared.id
                                })
                            })
                            .collect();
                        helpers.into_iter().map(|t| t.join().unwrap()).sum::<u64>()
                    })
                })
            });
            tx.send(sum).unwrap();
        });
        let sum = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the scope's wait for its helpers ended");
        assert_eq!(sum, 7 + 7 + 1, "verify={verify}");
        assert!(
            wait_for(Duration::from_secs(10), || heap.stats().gc_cycles >= 1),
            "verify={verify}: the requested collection ran"
        );
    }
}

/// One scope allocating up to `most` bytes of garbage, polling `should_yield`, while a hook
/// holds any cycle's start: whether it was told to leave, and what it had allocated then.
fn allocate_with_the_start_held(heap: &Heap, m: &mut Mutator<Unit>, most: usize) -> (bool, usize) {
    heap.debug_hold_cycle_start(true);
    let mut allocated = 0usize;
    let yielded = m.mutate(|mc, _| {
        while allocated < most {
            for i in 0..256u64 {
                std::hint::black_box(Gc::new(mc, [i; 4]));
            }
            allocated += 256 * 32;
            if mc.should_yield() {
                return true;
            }
        }
        false
    });
    heap.debug_hold_cycle_start(false);
    (yielded, allocated)
}

/// A scope that polls `should_yield` while the collector is late to start a cycle the trigger
/// requested (here a hook holds the start; no stop is requested) is told to leave once it has
/// allocated past the heap's bound, not long after; once that cycle has run, the mutator's
/// next scope is not told to leave. Both collectors, verify mode on and off.
#[test]
fn should_yield_ends_a_scope_past_the_bound_of_a_late_start_and_only_that_one() {
    for concurrent in [true, false] {
        for verify in [false, true] {
            let what = format!("concurrent={concurrent} verify={verify}");
            let heap = Heap::new(Config::default().concurrent(concurrent).verify(verify)).unwrap();
            let mut m: Mutator<Unit> = heap.mutator(|_| ());
            m.collect();
            let goal = heap.stats().heap_goal;
            let (yielded, allocated) = allocate_with_the_start_held(&heap, &mut m, 8 * goal);
            assert!(
                yielded && allocated < 2 * goal,
                "{what}: left after {} KiB, goal {} KiB (told to: {yielded})",
                allocated >> 10,
                goal >> 10
            );
            m.collect();
            assert!(
                !m.mutate(|mc, _| mc.should_yield()),
                "{what}: still told to leave after the cycle ran"
            );
        }
    }
}

/// A live-heap cap starts cycles only where no goal can be reached: with GOGC off the trigger
/// is the cap itself; with GOGC=100 and 5 MiB live under an 8 MiB cap, the goal (about
/// 10 MiB) is reachable and GOGC's trigger stands, past the cap.
#[test]
#[cfg_attr(miri, ignore = "5 MiB of buffers")]
fn the_cap_triggers_cycles_only_where_no_goal_is_reachable() {
    let heap = Heap::new(Config::default().gc_percent(None).max_heap(Some(8 * MIB))).unwrap();
    assert_eq!(heap.stats().heap_trigger, 8 * MIB);
    let heap = Heap::new(Config::default().max_heap(Some(8 * MIB))).unwrap();
    let mut m: Mutator<Chunks> = heap.mutator(|mc| GcCell::new(Some(GcVec::new(mc))));
    m.mutate(|mc, r| {
        let v = r.get().unwrap();
        for _ in 0..5 * 1024 {
            v.push(mc, Some(GcBytes::new(mc, &[1; 1000])));
        }
    });
    m.collect();
    let s = heap.stats();
    assert!(
        s.heap_goal > 8 * MIB && s.heap_trigger > 8 * MIB && s.heap_trigger != usize::MAX,
        "{s:?}"
    );
}

/// With GOGC off and a live-heap cap, a cycle the cap asked for whose start is late (a hook
/// holds it) tells a polling scope to leave once the heap is past 1.1 × the cap.
#[test]
fn should_yield_ends_a_scope_past_the_cap_of_a_late_start() {
    let heap = Heap::new(Config::default().gc_percent(None).max_heap(Some(8 * MIB))).unwrap();
    let mut m: Mutator<Unit> = heap.mutator(|_| ());
    m.collect();
    let (yielded, allocated) = allocate_with_the_start_held(&heap, &mut m, 64 * MIB);
    assert!(
        yielded && allocated < 16 * MIB,
        "left after {} KiB (told to: {yielded})",
        allocated >> 10
    );
}
