//! treechurn: a live heap of binary trees, one random tree replaced per operation, with latency
//! figures for operations and stop-the-world pauses.
//!
//! ```sh
//! cargo run --release --example treechurn -- --live-mib 256 --ops 20000 [--mutators 2 [--share]] [--box]
//! ```
//!
//! Each mutator keeps `live-mib / mutators` MiB of depth-10 binary trees (2047 nodes of two
//! pointers and two 8-byte words each) in a GC array, and per operation builds a new tree and
//! replaces a randomly chosen one (which becomes garbage). An operation polls `should_yield`
//! between 127-node subtrees, as an interpreter's loop would, and is timed from start to end
//! (including any time spent waiting for a pause). With `--share`, the mutators also hand trees
//! to each other through the stash: every 8th operation posts the new tree in the mutator's
//! slot of a mailbox (a `GcArray` reached through a `Stash`, one slot per mutator) and adopts
//! the tree the next mutator posted in its place, so that trees built on one thread become
//! reachable from another's root (cross-thread stores and barriers; on `Box`, a tree's root is
//! an `Arc` and the mailbox a `Mutex<Vec<Option<Arc<_>>>>`). `--box` runs the same workload on `Box` (no
//! GC) as the floor.
//!
//! The last line is `key=value` pairs: `stw_count stw_p50_us stw_p99_us stw_max_us op_p50_us
//! op_p99_us op_max_us ops_over_1ms ops_over_2ms gc_cycles gc_cpu_frac heap_peak_mib rss_peak_mib wall_ms` (pauses from
//! the heap's phase records, measured from the stop request, except `stw_max_us`, the heap's
//! exact `pause_max`; percentiles with `hdrhistogram`;
//! `gc_cpu_frac` = CPU time of the collector threads ÷ (wall time × CPUs); `heap_peak_mib` =
//! the arena's mapped high-water mark), the pacing and CPU keys of `GcReport::pacing_keys`,
//! and the operation latency distribution as `lat_p50_us … lat_p999999_us lat_max_us`
//! (`gc_examples::lab_data`, which also writes the run's detailed data for the benchmark lab).
//! `TREECHURN_PAUSES=1` also prints every pause, with its cycle and phase, on stderr.

use std::time::Instant;

use gc_core::{Gc, GcArray, GcCell, Heap, Mutator, Rootable, Stash, Trace};
use gc_examples::{GcReport, gc_cpu_frac, rss_peak_mib};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DEPTH: u32 = 10;
const NODES_PER_TREE: usize = (1 << (DEPTH + 1)) - 1;

#[derive(Trace)]
struct Node<'gc> {
    left: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    right: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    a: u64,
    b: u64,
}

fn tree<'gc>(mc: &gc_core::Mutation<'gc>, depth: u32, seed: u64) -> Gc<'gc, Node<'gc>> {
    let (l, r) = if depth == 0 {
        (None, None)
    } else {
        (
            Some(tree(mc, depth - 1, seed.wrapping_mul(3))),
            Some(tree(mc, depth - 1, seed.wrapping_mul(5))),
        )
    };
    Gc::new(
        mc,
        Node {
            left: GcCell::new(l),
            right: GcCell::new(r),
            a: seed,
            b: depth as u64,
        },
    )
}

type R = Rootable!['gc => GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>];

/// `--share`: one slot per mutator, where it posts a tree for the next mutator to adopt.
#[derive(Trace)]
struct Mailbox<'gc> {
    slots: GcArray<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

type MailboxM = Rootable!['gc => Mailbox<'gc>];

/// With `--share`, every this many operations a mutator exchanges a tree through the mailbox.
const SHARE_EVERY: usize = 8;
type S = Rootable!['gc => Gc<'gc, Node<'gc>>];

/// Depth of the subtrees an operation builds one at a time (16 of them make a tree).
const SUB_DEPTH: u32 = DEPTH - 4;

/// One operation: build a new depth-10 tree and put it in slot `i`. Like an interpreter that
/// polls, the mutator leaves its scope when the collector asks: the tree is built as 16
/// subtrees (127 nodes each) kept on the root stack between scopes, then joined.
fn replace(m: &mut Mutator<R, S>, i: usize, seed: u64) {
    let mut built = 0;
    while built < 16 {
        m.mutate_with_stack(|mc, _, stack| {
            while built < 16 {
                stack.push(tree(mc, SUB_DEPTH, seed.wrapping_add(built)));
                built += 1;
                if mc.should_yield() {
                    break;
                }
            }
        });
    }
    m.mutate_with_stack(|mc, arr, stack| {
        let mut level: Vec<Gc<'_, Node<'_>>> = (0..16).map(|_| stack.pop().unwrap()).collect();
        for depth in SUB_DEPTH + 1..=DEPTH {
            level = level
                .chunks(2)
                .map(|p| {
                    Gc::new(
                        mc,
                        Node {
                            left: GcCell::new(Some(p[0])),
                            right: GcCell::new(Some(p[1])),
                            a: seed,
                            b: depth as u64,
                        },
                    )
                })
                .collect();
        }
        arr.set(mc, i, Some(level[0]));
    });
}

/// `--share` on gc-core: post tree `i` in mutator `t`'s mailbox slot and, if the next of the
/// `n` mutators has posted one, adopt that tree in slot `i` instead.
fn exchange(m: &mut Mutator<R, S>, mailbox: &Stash<MailboxM>, i: usize, t: usize, n: usize) {
    m.mutate(|mc, arr| {
        let b = mailbox.fetch(mc);
        b.slots.set(mc, t, arr.get(i));
        if let Some(other) = b.slots.get((t + 1) % n) {
            arr.set(mc, i, Some(other));
        }
    });
}

struct BoxNode {
    left: Option<Box<BoxNode>>,
    right: Option<Box<BoxNode>>,
    a: u64,
    b: u64,
}

fn box_tree(depth: u32, seed: u64) -> Box<BoxNode> {
    let (left, right) = if depth == 0 {
        (None, None)
    } else {
        (
            Some(box_tree(depth - 1, seed.wrapping_mul(3))),
            Some(box_tree(depth - 1, seed.wrapping_mul(5))),
        )
    };
    Box::new(BoxNode {
        left,
        right,
        a: seed,
        b: depth as u64,
    })
}

/// treechurn: a live heap of binary trees, each operation replacing one tree; prints operation
/// latency, pause and MMU figures as `key=value` pairs.
#[derive(clap::Parser)]
#[command(name = "treechurn")]
struct Args {
    /// Live heap to keep, in MiB.
    #[arg(long, default_value_t = 64)]
    live_mib: usize,
    /// Operations in all (each replaces one tree).
    #[arg(long, default_value_t = 5000)]
    ops: usize,
    /// Mutator threads sharing the heap.
    #[arg(long, default_value_t = 1, value_parser = gc_examples::positive)]
    mutators: usize,
    /// Hand trees between the mutators through a stashed mailbox every 8th operation.
    #[arg(long)]
    share: bool,
    /// Run on `Box` (no GC), the zero-overhead baseline.
    #[arg(long = "box")]
    boxed: bool,
}

/// Trees per mutator for `live_mib` MiB shared by `mutators` (a node takes a 32-byte slot, as in
/// Go: objects have no header).
fn trees_per_mutator(a: &Args) -> usize {
    let tree_bytes = NODES_PER_TREE * std::mem::size_of::<Node<'static>>();
    (a.live_mib << 20).div_ceil(tree_bytes * a.mutators).max(1)
}

/// The median, p99 and maximum of operation times recorded in nanoseconds, in microseconds
/// (recorded in nanoseconds, as Go's twin does: whole microseconds read up to 1 µs low).
fn percentiles(h: &Histogram<u64>) -> (f64, f64, f64) {
    let us = |ns: u64| ns as f64 / 1000.0;
    (
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.max()),
    )
}

fn main() {
    let a: Args = clap::Parser::parse();
    let trees = trees_per_mutator(&a);
    let ops_each = a.ops.div_ceil(a.mutators);
    let start = Instant::now();
    let heap = (!a.boxed).then(|| Heap::from_env().expect("heap configuration"));
    // The first cycle that starts after every mutator has built its trees (for the steady-state
    // figures): set by mutator 0 once all have.
    let built = std::sync::Arc::new(std::sync::Barrier::new(a.mutators));
    let first_steady = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // --share: the mailbox, stashed so that every mutator can reach it (gc-core), or behind a
    // lock (Box).
    let mailbox: Option<Stash<MailboxM>> = heap.as_ref().filter(|_| a.share).map(|heap| {
        let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        m.mutate(|mc, _| {
            let b = Gc::new(
                mc,
                Mailbox {
                    slots: GcArray::new(mc, a.mutators, None),
                },
            );
            mc.stash::<MailboxM>(b)
        })
    });
    let box_mailbox: std::sync::Arc<std::sync::Mutex<Vec<Option<std::sync::Arc<BoxNode>>>>> =
        std::sync::Arc::new(std::sync::Mutex::new(
            (0..a.mutators).map(|_| None).collect(),
        ));
    let (share, n) = (a.share, a.mutators);
    let handles: Vec<_> = (0..a.mutators)
        .map(|t| {
            let heap = heap.clone();
            let (built, first_steady) = (built.clone(), first_steady.clone());
            let (mailbox, box_mailbox) = (mailbox.clone(), box_mailbox.clone());
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t as u64);
                let mut ops = Histogram::<u64>::new(3).unwrap();
                match heap {
                    Some(heap) => {
                        let mut m: Mutator<R, S> =
                            heap.mutator_with_stack(|mc| GcArray::new(mc, trees, None));
                        for i in 0..trees {
                            replace(&mut m, i, i as u64);
                        }
                        built.wait();
                        if t == 0 {
                            // The cycle in progress (if any) started before: count from the next.
                            let next = heap.stats().gc_cycles + 2;
                            first_steady.store(next, std::sync::atomic::Ordering::Relaxed);
                        }
                        for op in 0..ops_each {
                            let i = rng.gen_range(0..trees);
                            let t0 = Instant::now();
                            replace(&mut m, i, op as u64);
                            if let Some(mb) = &mailbox
                                && op % SHARE_EVERY == 0
                            {
                                exchange(&mut m, mb, i, t, n);
                            }
                            ops.record(t0.elapsed().as_nanos() as u64).unwrap();
                        }
                        let sum =
                            m.mutate(|_, arr| arr.iter().flatten().map(|n| n.a ^ n.b).sum::<u64>());
                        std::hint::black_box(sum);
                    }
                    None => {
                        // A tree's root is an `Arc`, so that `--share` can hand it to another
                        // thread as gc-core and Go do (one reference count per tree).
                        let mut v: Vec<std::sync::Arc<BoxNode>> = (0..trees)
                            .map(|i| std::sync::Arc::new(*box_tree(DEPTH, i as u64)))
                            .collect();
                        for op in 0..ops_each {
                            let i = rng.gen_range(0..trees);
                            let t0 = Instant::now();
                            v[i] = std::sync::Arc::new(*box_tree(DEPTH, op as u64));
                            if share && op % SHARE_EVERY == 0 {
                                // Post this tree, adopt the next mutator's; the tree the post
                                // displaces is released outside the lock.
                                let mut mb = box_mailbox.lock().unwrap();
                                let displaced = mb[t].replace(v[i].clone());
                                if let Some(other) = &mb[(t + 1) % n] {
                                    v[i] = other.clone();
                                }
                                drop(mb);
                                drop(displaced);
                            }
                            ops.record(t0.elapsed().as_nanos() as u64).unwrap();
                        }
                        let sum: u64 = v.iter().map(|n| n.a ^ n.b).sum();
                        std::hint::black_box(sum);
                        std::hint::black_box(
                            v.iter()
                                .map(|n| n.left.is_some() as u64 + n.right.is_some() as u64)
                                .sum::<u64>(),
                        );
                    }
                }
                ops
            })
        })
        .collect();
    let mut ops = Histogram::<u64>::new(3).unwrap();
    for h in handles {
        ops.add(h.join().unwrap()).unwrap();
    }
    let wall = start.elapsed();
    let gc_cpu_frac = gc_cpu_frac(wall);
    let report = GcReport::take(
        heap.as_ref(),
        "TREECHURN_PAUSES",
        first_steady.load(std::sync::atomic::Ordering::Relaxed),
    );
    let pacing = report.pacing_keys();
    let GcReport {
        stw,
        stw_max_us: smax,
        gc_cycles: cycles,
        heap_peak_mib: heap_peak,
        assist_ms,
        heap_goal_mib: goal_mib,
        ..
    } = report;
    let (s50, s99) = (stw.value_at_quantile(0.5), stw.value_at_quantile(0.99));
    let (o50, o99, omax) = percentiles(&ops);
    let ops_over = |us: u64| ops.count_between(us * 1000 + 1, u64::MAX);
    let lat_keys = gc_examples::lab_data::latency(&ops, 1.0);
    println!(
        "treechurn {} live_mib={} mutators={} share={} trees={} nodes_per_tree={}",
        if a.boxed { "box" } else { "gc" },
        a.live_mib,
        a.mutators,
        u8::from(a.share),
        trees * a.mutators,
        NODES_PER_TREE
    );
    println!(
        "mode={} live_mib={} mutators={} ops={} stw_count={} stw_p50_us={s50} stw_p99_us={s99} \
         stw_max_us={smax} op_p50_us={o50:.1} op_p99_us={o99:.1} op_max_us={omax:.1} ops_over_1ms={} ops_over_2ms={} gc_cycles={cycles} \
         gc_cpu_frac={gc_cpu_frac:.3} assist_ms={assist_ms:.1} heap_goal_mib={goal_mib:.1} \
         heap_peak_mib={heap_peak:.1} rss_peak_mib={:.1} wall_ms={} {pacing} {lat_keys}",
        if a.boxed { "box" } else { "gc" },
        a.live_mib,
        a.mutators,
        ops_each * a.mutators,
        stw.len(),
        ops_over(1000),
        ops_over(2000),
        rss_peak_mib(),
        wall.as_millis(),
    );
}
