//! The scavenger and the memory limit racing allocation: two mutators allocate spikes of
//! short-lived buffers and keep a set of node chains alive under a small memory limit, in verify
//! mode, while the background scavenger and allocation-time scavenging release free pages and
//! allocation reuses them. Released pages must come back usable (verify mode poisons new spans
//! and checks every free slot after every cycle) and live data must stay intact; pages must
//! actually be released. Small enough for a debug build and for ThreadSanitizer
//! (`scripts/tsan.sh`).

use gc_core::{Config, Gc, GcArray, GcBytes, GcCell, Heap, Mutator, Rootable, Trace};

const MIB: usize = 1 << 20;

#[derive(Trace)]
struct Node<'gc> {
    next: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    tag: u64,
}

type R = Rootable!['gc => GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>];

fn chain<'gc>(mc: &gc_core::Mutation<'gc>, tag: u64, len: usize) -> Gc<'gc, Node<'gc>> {
    let mut head = None;
    for _ in 0..len {
        head = Some(Gc::new(
            mc,
            Node {
                next: GcCell::new(head),
                tag,
            },
        ));
    }
    head.unwrap()
}

#[test]
fn released_pages_are_reused_safely_while_mutators_allocate() {
    for verify in [true, false] {
        released_pages_are_reused_safely_while_mutators_allocate_in(verify);
    }
}

fn released_pages_are_reused_safely_while_mutators_allocate_in(verify: bool) {
    let rounds = if cfg!(debug_assertions) { 12 } else { 40 };
    let heap = Heap::new(
        Config::default()
            .verify(verify)
            .memory_limit(Some(12 * MIB))
            .gc_percent(Some(50)),
    )
    .unwrap();
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let heap = heap.clone();
            std::thread::spawn(move || {
                let mut m: Mutator<R> = heap.mutator(|mc| GcArray::new(mc, 64, None));
                let buf = vec![t as u8 + 1; 64 << 10];
                for round in 0..rounds {
                    // A spike of garbage: 4 MiB of 64 KiB buffers (large objects: whole pages).
                    for _ in 0..64 {
                        m.mutate(|mc, _| {
                            let b = GcBytes::new(mc, &buf);
                            assert_eq!(b.as_bytes()[100], t as u8 + 1);
                        });
                    }
                    // Replace some chains (small objects in pages that may have been released).
                    m.mutate(|mc, arr| {
                        for i in 0..16 {
                            let slot = (round * 16 + i) % arr.len();
                            arr.set(mc, slot, Some(chain(mc, t * 1000 + slot as u64, 32)));
                        }
                    });
                    // Every chain intact.
                    m.mutate(|_, arr| {
                        for (slot, head) in arr.iter().enumerate() {
                            let mut n = head;
                            let mut len = 0;
                            while let Some(node) = n {
                                assert_eq!(node.tag, t * 1000 + slot as u64);
                                n = node.next.get();
                                len += 1;
                            }
                            assert!(len == 0 || len == 32, "chain {slot} has {len} nodes");
                        }
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    heap.collect();
    let m = heap.metrics();
    let released = m.u64("/memory/classes/heap/released:bytes").unwrap();
    let cycles = m.u64("/gc/cycles/total:gc-cycles").unwrap();
    assert!(
        released > 0 || !heap.returns_memory_to_os(),
        "no page was released under a 12 MiB limit"
    );
    let mapped = m.u64("/gccore/memory/mapped-ready:bytes").unwrap();
    eprintln!(
        "verify {verify}: {cycles} cycles, {} MiB mapped",
        mapped >> 20
    );
    if verify {
        // Pages were reused rather than the heap growing with what was allocated (about
        // 100 MiB). How close mapped memory stays to the limit depends on how fast marking
        // keeps up (a debug build in verify mode on a busy machine reached 37 MiB);
        // `tests/pacing.rs` measures that.
        assert!(cycles >= 5, "only {cycles} cycles");
        assert!(mapped < 64 * MIB as u64, "{} MiB mapped", mapped >> 20);
    }
    // Without verify mode the dead 64 KiB buffers (large objects) are freed only by the
    // background sweeper (an allocation sweeps only small spans of its own class), and in a
    // debug build the memory limit is held poorly here: 2–46 cycles and 7–97 MiB mapped for
    // ~96 MiB allocated (4 cycles and 73–94 MiB in most runs before the sweeping fix too).
    // That is a pacing question, not this test's: with verify off it checks the data (every
    // buffer and chain is read back above) and that pages were released.
}

type Buffers = Rootable!['gc => GcArray<'gc, Option<GcBytes<'gc>>>];

/// A heap whose live data falls far under its memory limit leaves its pages free but mapped,
/// over the limit: the limit-based goal then sits at the marked heap, and a cycle cannot help
/// (it frees objects, not pages). The scavenger must release those pages promptly, and the
/// collector must not run cycles back to back meanwhile. It did: at the scavenger's 1% pacing
/// 96 MiB took about four seconds to release, while the collector ran thousands of cycles on an
/// empty heap (about one CPU).
#[test]
fn a_heap_that_shrinks_under_its_memory_limit_releases_its_pages_and_stops_collecting() {
    use std::time::{Duration, Instant};
    for verify in [false, true] {
        let heap = Heap::new(Config::default().verify(verify)).unwrap();
        if !heap.returns_memory_to_os() {
            eprintln!("this system returns no memory to the OS: nothing to check");
            return;
        }
        let n = 1536; // 96 MiB of 64 KiB buffers
        let mut m: Mutator<Buffers> = heap.mutator(|mc| GcArray::new(mc, n, None));
        let buf = vec![7u8; 64 << 10];
        for i in 0..n {
            m.mutate(|mc, a| a.set(mc, i, Some(GcBytes::new(mc, &buf))));
        }
        m.mutate(|mc, a| {
            for i in 0..n {
                a.set(mc, i, None);
            }
        });
        m.collect();
        let metric = |name: &str| heap.metrics().u64(name).unwrap();
        let mapped = || metric("/gccore/memory/mapped-ready:bytes") as usize;
        assert!(
            mapped() > 64 * MIB,
            "verify={verify}: the pages are still mapped"
        );
        let limit = 32 * MIB;
        let before = metric("/gc/cycles/total:gc-cycles");
        heap.set_memory_limit(Some(limit));
        // A nearly idle program: one small allocation every 10 ms.
        let start = Instant::now();
        let mut under = None;
        while start.elapsed() < Duration::from_secs(3) {
            m.mutate(|mc, a| a.set(mc, 0, Some(GcBytes::new(mc, b"x"))));
            if mapped() <= limit {
                under = Some(start.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let under = under.unwrap_or_else(|| {
            panic!(
                "verify={verify}: mapped memory {} MiB, over the {} MiB limit after 3 s",
                mapped() / MIB,
                limit / MIB
            )
        });
        // Released at once (about 25 ms here; 1.7–1.9 s at the 1% pacing), and few cycles
        // meanwhile (a few hundred here; 44 000–220 000 at the 1% pacing).
        let spun = metric("/gc/cycles/total:gc-cycles") - before;
        assert!(
            under < Duration::from_secs(1) && spun < 10_000,
            "verify={verify}: under the limit after {under:?}, {spun} cycles meanwhile"
        );
        // Then the collector rests: a heap of one small object needs no cycle.
        let cycles = metric("/gc/cycles/total:gc-cycles");
        for _ in 0..50 {
            m.mutate(|mc, a| a.set(mc, 0, Some(GcBytes::new(mc, b"x"))));
            std::thread::sleep(Duration::from_millis(10));
        }
        let more = metric("/gc/cycles/total:gc-cycles") - cycles;
        assert!(
            more < 20,
            "verify={verify}: {more} cycles in half a second on an empty heap (under the limit \
             after {under:?})"
        );
    }
}

/// A heap whose live data is over its memory limit's scavenging goal, idle, with no free page
/// to release: the scavenger looks for pages a few times, waiting longer each time (before, it
/// looked 100 times a second for as long as the program ran). Where the heap returns no
/// memory to the OS it does not look at all.
#[test]
fn an_idle_heap_with_nothing_to_release_is_not_polled() {
    use std::time::Duration;
    for stop_releasing in [false, true] {
        let heap = Heap::new(Config::default()).unwrap();
        if !heap.returns_memory_to_os() {
            eprintln!("this system returns no memory to the OS: nothing to check");
            return;
        }
        if stop_releasing {
            heap.debug_stop_releasing();
        }
        let n = 512; // 32 MiB of 64 KiB buffers, all live
        let mut m: Mutator<Buffers> = heap.mutator(|mc| GcArray::new(mc, n, None));
        let buf = vec![7u8; 64 << 10];
        for i in 0..n {
            m.mutate(|mc, a| a.set(mc, i, Some(GcBytes::new(mc, &buf))));
        }
        m.collect();
        heap.set_memory_limit(Some(16 * MIB));
        let looks = || heap.metrics().u64("/gccore/scavenge/looks:calls").unwrap();
        // Whatever was free is released in the first moments.
        std::thread::sleep(Duration::from_millis(300));
        let cycles = heap.stats().gc_cycles;
        let first = looks();
        std::thread::sleep(Duration::from_millis(1500));
        let looked = looks() - first;
        assert_eq!(heap.stats().gc_cycles, cycles, "the heap is idle");
        let most = if stop_releasing { 0 } else { 8 };
        assert!(
            looked <= most,
            "stop_releasing={stop_releasing}: {looked} looks in 1.5 s with nothing to release"
        );
        // Live data intact.
        m.mutate(|_, a| {
            for i in 0..n {
                assert_eq!(a.get(i).unwrap()[100], 7);
            }
        });
    }
}

/// Dropping a heap wakes its scavenger instead of waiting for its idle wait (100 ms) to time
/// out: an embedder that makes a heap per task pays no stall at each teardown. Five heaps, each
/// idle long enough for its scavenger to be asleep, are dropped in well under one such wait
/// together (a wait not cut short would cost about 50 ms each). The least of three rounds is
/// judged, so that a moment of load on the machine does not count (a round measured 1.7 ms;
/// 250 ms with the wake-up removed, in every round).
#[test]
fn dropping_an_idle_heap_wakes_its_scavenger() {
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let mut total = std::time::Duration::ZERO;
        for _ in 0..5 {
            let heap = Heap::new(Config::default()).unwrap();
            type One = Rootable!['gc => GcCell<'gc, Option<GcBytes<'gc>>>];
            let mut m: Mutator<One> = heap.mutator(|_| GcCell::new(None));
            m.mutate(|mc, r| r.set(mc, Some(GcBytes::new(mc, &[1; 100]))));
            drop(m);
            std::thread::sleep(std::time::Duration::from_millis(150));
            let t = std::time::Instant::now();
            drop(heap);
            total += t.elapsed();
        }
        rounds.push(total);
        if total < std::time::Duration::from_millis(100) {
            return;
        }
    }
    panic!("five idle heaps took {rounds:?} to drop, in three rounds");
}
