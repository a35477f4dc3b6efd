//! Parallel stop-the-world marking (`Config::concurrent(false)`): several mark workers share a wide object graph (so work is split through the
//! global queue) and every reachable object survives, cycle after cycle, with verify mode on;
//! garbage in between is reclaimed.

use gc_core::{Config, Gc, GcArray, GcBytes, GcCell, Heap, Mutator, Rootable, Trace};

#[derive(Trace)]
struct Leaf<'gc> {
    id: u64,
    next: Option<Gc<'gc, Leaf<'gc>>>,
}

type RootM = Rootable!['gc => GcCell<'gc, Option<GcArray<'gc, Option<Gc<'gc, Leaf<'gc>>>>>>];

#[test]
fn workers_mark_a_wide_graph_completely() {
    const WIDTH: usize = if cfg!(miri) { 300 } else { 20_000 };
    for (workers, span) in [
        (1, false),
        (2, false),
        (4, false),
        (1, true),
        (2, true),
        (4, true),
    ] {
        let heap = Heap::new(
            Config::default()
                .verify(true)
                .span_marking(span)
                .concurrent(false)
                .mark_workers(workers),
        )
        .unwrap();
        let mut m: Mutator<RootM> = heap.mutator(|_| GcCell::new(None));
        m.mutate(|mc, root| {
            let arr = GcArray::new(mc, WIDTH, None);
            for i in 0..WIDTH {
                // Each slot: a chain of 3 leaves; plus one garbage leaf per slot.
                let mut chain = None;
                for k in 0..3 {
                    chain = Some(Gc::new(
                        mc,
                        Leaf {
                            id: (i * 3 + k) as u64,
                            next: chain,
                        },
                    ));
                }
                arr.set(mc, i, chain);
                Gc::new(
                    mc,
                    Leaf {
                        id: u64::MAX,
                        next: None,
                    },
                );
            }
            root.set(mc, Some(arr));
        });
        // Batches handed to helpers over the rounds. A worker offers work only once another
        // waits for some, so a round may go unshared: in the first, the helper threads are
        // still starting when the collector has marked everything.
        let mut shared = 0;
        for round in 0..3 {
            m.collect();
            let s = heap.stats();
            assert_eq!(
                s.marked_objects,
                (WIDTH * 3 + 1) as u64,
                "workers {workers} round {round}"
            );
            shared += s.mark_shared_batches;
            let sum = m.mutate(|_, root| {
                let arr = root.get().unwrap();
                arr.iter()
                    .map(|c| {
                        let mut sum = 0;
                        let mut cur = c;
                        while let Some(l) = cur {
                            sum += l.id;
                            cur = l.next;
                        }
                        sum
                    })
                    .sum::<u64>()
            });
            let n = (WIDTH * 3) as u64;
            assert_eq!(sum, n * (n - 1) / 2);
        }
        if workers > 1 {
            assert!(shared > 0, "workers {workers}: work was never shared");
        }
        assert!(heap.stats().objects_freed >= WIDTH as u64);
        // The figure is the last cycle's: a cycle that marks nothing shares nothing.
        m.mutate(|mc, root| root.set(mc, None));
        m.collect();
        m.collect();
        assert_eq!(heap.stats().mark_shared_batches, 0, "workers {workers}");
    }
}

#[derive(Trace)]
struct Noscan<'gc> {
    nums: GcArray<'gc, Option<Gc<'gc, u64>>>,
    bufs: GcArray<'gc, Option<GcBytes<'gc>>>,
    /// The objects of `nums` again, in reverse order: each must be counted once.
    again: GcArray<'gc, Option<Gc<'gc, u64>>>,
}

type NoscanM = Rootable!['gc => Noscan<'gc>];

/// Noscan objects reached from arrays (whose scans set their mark bits a mark word at a
/// time): each is marked and counted exactly once (also when two arrays reach it), with one stop-the-world worker (plain
/// stores), several (atomics) and concurrent marking, verify mode on and off; the ones the
/// arrays drop are freed.
#[test]
fn noscan_objects_reached_from_arrays_are_marked_and_counted_once() {
    // Under Miri: two mark words' worth, verify off, two workers stop-the-world and concurrent
    // (every setting took over 20 minutes there).
    const WIDTH: usize = if cfg!(miri) { 100 } else { 20_000 };
    let settings: &[(bool, usize, bool)] = if cfg!(miri) {
        &[(false, 2, false), (true, 2, false)]
    } else {
        &[
            (false, 1, false),
            (false, 2, false),
            (true, 2, false),
            (true, 2, true),
        ]
    };
    for verify in [false, true].into_iter().filter(|&v| !(cfg!(miri) && v)) {
        for &(concurrent, workers, span) in settings {
            let what = format!("verify {verify} concurrent {concurrent} workers {workers}");
            let heap = Heap::new(
                Config::default()
                    .verify(verify)
                    .concurrent(concurrent)
                    .mark_workers(workers)
                    .span_marking(span),
            )
            .unwrap();
            let mut m: Mutator<NoscanM> = heap.mutator(|mc| Noscan {
                nums: GcArray::new(mc, WIDTH, None),
                bufs: GcArray::new(mc, WIDTH, None),
                again: GcArray::new(mc, WIDTH, None),
            });
            m.mutate(|mc, r| {
                for i in 0..WIDTH {
                    let n = Gc::new(mc, i as u64);
                    r.nums.set(mc, i, Some(n));
                    r.again.set(mc, WIDTH - 1 - i, Some(n));
                    r.bufs.set(mc, i, Some(GcBytes::new(mc, &[i as u8; 100])));
                    if i % 5 == 0 {
                        // Garbage in the same mark words as the live objects.
                        Gc::new(mc, u64::MAX);
                        GcBytes::new(mc, &[0xEE; 100]);
                    }
                }
            });
            let check = |m: &mut Mutator<NoscanM>, live: &dyn Fn(usize) -> bool| {
                m.mutate(|_, r| {
                    for i in 0..WIDTH {
                        let (n, b) = (r.nums.get(i), r.bufs.get(i));
                        assert_eq!(n.is_some(), live(i), "{what}: slot {i}");
                        let again = r.again.get(WIDTH - 1 - i);
                        assert_eq!(again.map(|a| *a), n.map(|n| *n), "{what}: slot {i}");
                        if let (Some(n), Some(b)) = (n, b) {
                            assert_eq!(*n, i as u64, "{what}");
                            assert!(b.iter().all(|&x| x == i as u8), "{what}: buffer {i}");
                        }
                    }
                })
            };
            for round in 0..2 {
                m.collect();
                let s = heap.stats();
                assert_eq!(
                    s.marked_objects,
                    2 * WIDTH as u64 + 3,
                    "{what} round {round}: {s:?}"
                );
                check(&mut m, &|_| true);
            }
            let marked_all = heap.stats().heap_marked;
            m.mutate(|mc, r| {
                for i in (0..WIDTH).filter(|i| i % 2 == 1) {
                    r.nums.set(mc, i, None);
                    r.bufs.set(mc, i, None);
                    r.again.set(mc, WIDTH - 1 - i, None);
                }
            });
            let freed = heap.stats().objects_freed;
            m.collect();
            m.collect();
            let s = heap.stats();
            assert_eq!(s.marked_objects, WIDTH as u64 + 3, "{what}: {s:?}");
            assert!(s.heap_marked < marked_all, "{what}: {s:?}");
            assert!(s.objects_freed >= freed + WIDTH as u64, "{what}: {s:?}");
            check(&mut m, &|i| i % 2 == 0);
        }
    }
}

/// A binary tree node: two pointer words, read by the marker itself.
#[derive(Trace)]
struct Node<'gc> {
    id: u64,
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
    /// Every seventh node: an object the marker scans through its `trace` (a `Vec` field has
    /// no pointer words), which leads on to a subtree of its own.
    side: Option<Gc<'gc, Side<'gc>>>,
}

#[derive(Trace)]
struct Side<'gc> {
    nodes: Vec<Gc<'gc, Node<'gc>>>,
}

type TreeM = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>];

fn tree<'gc>(mc: &gc_core::Mutation<'gc>, depth: u32, next_id: &mut u64) -> Gc<'gc, Node<'gc>> {
    let (left, right) = if depth == 0 {
        (None, None)
    } else {
        (
            Some(tree(mc, depth - 1, next_id)),
            Some(tree(mc, depth - 1, next_id)),
        )
    };
    let id = *next_id;
    *next_id += 1;
    let side = (id.is_multiple_of(7) && depth > 0 && depth < 4).then(|| {
        let nodes = (0..2).map(|_| tree(mc, depth - 1, next_id)).collect();
        Gc::new(mc, Side { nodes })
    });
    Gc::new(
        mc,
        Node {
            id,
            left,
            right,
            side,
        },
    )
}

/// Objects (and ids) of the tree under `n`, side trees included.
fn count(n: &Node<'_>) -> (u64, u64) {
    let mut todo = vec![n];
    let (mut objects, mut ids) = (0, 0);
    while let Some(n) = todo.pop() {
        objects += 1;
        ids += n.id;
        todo.extend(n.left.as_deref());
        todo.extend(n.right.as_deref());
        if let Some(s) = &n.side {
            objects += 1;
            todo.extend(s.nodes.iter().map(|g| &**g));
        }
    }
    (objects, ids)
}

/// Trees, whose nodes each grey two objects, mixed with objects scanned through their
/// `trace`: every stop-the-world marker (one worker: plain stores, the last object greyed kept
/// out of the stack; two: deferred marks and shared batches; span-local) and concurrent
/// marking, verify mode on and off, marks every reachable object exactly once, cycle after
/// cycle; a tree dropped between cycles is reclaimed.
#[test]
fn trees_and_objects_traced_by_their_trace_are_marked_completely() {
    const DEPTH: u32 = if cfg!(miri) { 5 } else { 13 };
    let configs = [
        (1, false, false, false),
        (1, false, false, true),
        (2, false, false, false),
        (2, false, false, true),
        (1, true, false, true),
        (2, false, true, false),
        (2, false, true, true),
    ];
    // Under Miri (each collection is slow there, and this test ran past 20 minutes with all
    // seven): the lone marker, whose drain loop is the one with the most unsafe reads.
    let configs = if cfg!(miri) {
        &configs[..1]
    } else {
        &configs[..]
    };
    for &(workers, span, concurrent, verify) in configs {
        let label =
            format!("workers {workers} span {span} concurrent {concurrent} verify {verify}");
        let heap = Heap::new(
            Config::default()
                .verify(verify)
                .span_marking(span)
                .concurrent(concurrent)
                .gc_percent(None)
                .mark_workers(workers),
        )
        .unwrap();
        let mut m: Mutator<TreeM> = heap.mutator(|_| GcCell::new(None));
        let mut next_id = 0;
        let (objects, ids) = m.mutate(|mc, root| {
            let t = tree(mc, DEPTH, &mut next_id);
            root.set(mc, Some(t));
            // Garbage beside it.
            tree(mc, DEPTH - 2, &mut next_id);
            count(&t)
        });
        assert!(objects > 1 << DEPTH, "{label}: {objects} objects");
        for round in 0..3 {
            m.collect();
            assert_eq!(
                heap.stats().marked_objects,
                objects,
                "{label}, round {round}: marked objects"
            );
            let again = m.mutate(|_, root| count(&root.get().unwrap()));
            assert_eq!(again, (objects, ids), "{label}, round {round}: the tree");
        }
        let live = heap.stats().heap_live;
        m.mutate(|mc, root| root.set(mc, None));
        m.collect();
        m.collect();
        let s = heap.stats();
        assert_eq!(s.marked_objects, 0, "{label}: marked after the drop");
        assert!(
            s.heap_live < live / 8,
            "{label}: {} bytes live after the drop, {live} before",
            s.heap_live
        );
    }
}

#[derive(Trace)]
struct Twin<'gc> {
    a: GcArray<'gc, Option<Gc<'gc, Leaf<'gc>>>>,
    b: GcArray<'gc, Option<Gc<'gc, Leaf<'gc>>>>,
}

type TwinM = Rootable!['gc => Twin<'gc>];

/// Two large arrays whose elements alternate in the same spans (`a`'s at the even slots, `b`'s
/// at the odd ones), marked span-locally by two stop-the-world workers: the workers scan the
/// two arrays' chunks side by side, so they set bits of the same mark words at the same time.
/// Scan objects reached from a chunk are marked at once with a read-modify-write (only noscan
/// ones are batched); with a load and a store instead, one worker's mark overwrites the
/// other's, the object is never scanned nor kept, and the count below comes up short (and
/// verify mode stops the process). Every object is counted once, cycle after cycle.
#[test]
fn two_markers_setting_bits_of_one_mark_word_lose_no_mark() {
    const N: usize = if cfg!(miri) { 600 } else { 100_000 };
    let rounds = if cfg!(miri) { 1 } else { 6 };
    for verify in [false, true] {
        let heap = Heap::new(
            Config::default()
                .verify(verify)
                .span_marking(true)
                .concurrent(false)
                .mark_workers(2),
        )
        .unwrap();
        let mut m: Mutator<TwinM> = heap.mutator(|mc| Twin {
            a: GcArray::new(mc, N, None),
            b: GcArray::new(mc, N, None),
        });
        m.mutate(|mc, r| {
            for i in 0..N {
                let leaf = |id| Gc::new(mc, Leaf { id, next: None });
                r.a.set(mc, i, Some(leaf(2 * i as u64)));
                r.b.set(mc, i, Some(leaf(2 * i as u64 + 1)));
            }
        });
        // Batches the collector offered and the helper took: without any, the helper never
        // marked and no two markers set bits of one word at once.
        let mut shared = 0;
        for round in 0..rounds {
            m.collect();
            shared += heap.stats().mark_shared_batches;
            assert_eq!(
                heap.stats().marked_objects,
                (2 * N + 2) as u64,
                "verify {verify}, round {round}: marked objects (the leaves and the two arrays)"
            );
            let sum = m.mutate(|_, r| {
                r.a.iter()
                    .chain(r.b.iter())
                    .map(|l| l.unwrap().id)
                    .sum::<u64>()
            });
            let n = (2 * N) as u64;
            assert_eq!(sum, n * (n - 1) / 2, "verify {verify}, round {round}");
        }
        assert!(
            shared > 0 || cfg!(miri),
            "verify {verify}: the second worker never took work in {rounds} rounds"
        );
    }
}

#[derive(Trace)]
struct Holder<'gc> {
    next: Option<Gc<'gc, Holder<'gc>>>,
    buf: Gc<'gc, [u64; 128]>,
}

type HolderM = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Holder<'gc>>>>];

/// The stop-the-world markers whose figures must agree: one worker (which counts its marks
/// per span as it goes) and two, depth-first and span-local.
const MARKERS: [(usize, bool); 4] = [(1, false), (2, false), (1, true), (2, true)];

/// A stop-the-world heap marked by `workers` workers, span-local or not, with GOGC off.
fn stw_heap(workers: usize, span: bool) -> Heap {
    Heap::new(
        Config::default()
            .concurrent(false)
            .mark_workers(workers)
            .span_marking(span)
            .gc_percent(None),
    )
    .unwrap()
}

/// The record of the second of two collections (the first settles what the mutator built).
fn second_collection(heap: &Heap) -> gc_core::gctrace::CycleRecord {
    heap.collect();
    heap.take_cycle_records();
    heap.collect();
    heap.take_cycle_records().pop().expect("a record")
}

/// The marked heap counts every object at its own slot size, and the scan work (the pacer's
/// input) is the same whichever marker does it: a list of 16-byte nodes, each holding a
/// 1 KiB buffer, so that the marker moves between spans of two sizes at every step. One
/// stop-the-world worker (which counts its marks per span as it goes), two, and span-local
/// marking all report the same figures.
#[test]
fn the_marked_heap_and_scan_work_are_the_same_for_every_marker() {
    const N: usize = if cfg!(miri) { 50 } else { 2000 };
    let mut seen = Vec::new();
    for (workers, span) in MARKERS {
        let heap = stw_heap(workers, span);
        let mut m: Mutator<HolderM> = heap.mutator(|_| GcCell::new(None));
        m.mutate(|mc, root| {
            let mut list = None;
            for i in 0..N {
                let buf = Gc::new(mc, [i as u64; 128]);
                list = Some(Gc::new(mc, Holder { next: list, buf }));
            }
            root.set(mc, list);
        });
        let r = second_collection(&heap);
        let (marked, scan) = (r.heap_marked, r.heap_scan);
        let least = N * (16 + 1024);
        assert!(
            (least..least + 64 * 1024).contains(&marked),
            "workers {workers} span {span}: {marked} bytes marked for {least}"
        );
        assert_eq!(heap.stats().marked_objects, 2 * N as u64);
        // A work unit (8 bytes) per node scanned (the buffers hold no pointers: not scanned)
        // and per pointer followed (N − 1 `next`, N `buf`); the root's is root-scan work.
        assert_eq!(
            scan,
            8 * (3 * N as u64 - 1),
            "workers {workers} span {span}: heap scan work"
        );
        seen.push((workers, span, marked, scan));
        // Dropped, the list is freed object for object and byte for byte.
        let before = heap.stats();
        m.mutate(|mc, root| root.set(mc, None));
        m.collect();
        let after = heap.stats();
        assert_eq!(after.objects_freed - before.objects_freed, 2 * N as u64);
        assert_eq!((after.bytes_freed - before.bytes_freed) as usize, marked);
    }
    assert!(
        seen.iter().all(|s| (s.2, s.3) == (seen[0].2, seen[0].3)),
        "marked bytes and scan work differ between markers: {seen:?}"
    );
}

/// Scanned by its `trace` (a `Vec` has no pointer words): the general path.
#[derive(Trace)]
struct TracedNode<'gc> {
    next: Option<Gc<'gc, TracedNode<'gc>>>,
    extra: Vec<u64>,
}

#[derive(Trace)]
struct Paths<'gc> {
    list: GcCell<'gc, Option<Gc<'gc, TracedNode<'gc>>>>,
    array: GcCell<'gc, Option<GcArray<'gc, Option<Gc<'gc, u64>>>>>,
}

/// The scan work of objects marked on the other paths (scanned by their `trace`, and a large
/// array scanned in chunks) is counted once, by every marker the same exact figure: a unit per
/// object scanned, per array chunk and per pointer followed.
#[test]
fn scan_work_on_the_general_and_array_paths_is_counted_once() {
    const M: u64 = if cfg!(miri) { 50 } else { 1000 };
    const A: u64 = if cfg!(miri) { 600 } else { 5000 };
    for (workers, span) in MARKERS {
        let heap = stw_heap(workers, span);
        let mut m: Mutator<Rootable!['gc => Paths<'gc>]> = heap.mutator(|_| Paths {
            list: GcCell::new(None),
            array: GcCell::new(None),
        });
        m.mutate(|mc, root| {
            let mut list = None;
            for i in 0..M {
                list = Some(Gc::new(
                    mc,
                    TracedNode {
                        next: list,
                        extra: vec![i; 3],
                    },
                ));
            }
            root.list.set(mc, list);
            let a = GcArray::new(mc, A as usize, None);
            for i in 0..A as usize {
                a.set(mc, i, Some(Gc::new(mc, i as u64)));
            }
            root.array.set(mc, Some(a));
        });
        let r = second_collection(&heap);
        assert_eq!(heap.stats().marked_objects, M + 1 + A);
        // The list: M nodes and M − 1 `next` pointers (the root's is root-scan work); the
        // array: a unit per chunk of 128 elements scanned and one per element.
        let want = 8 * (M + (M - 1) + A.div_ceil(128) + A);
        assert_eq!(r.heap_scan, want, "workers {workers} span {span}");
    }
}
