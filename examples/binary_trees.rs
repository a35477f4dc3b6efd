//! The benchmarks-game binary-trees workload, on gc-core or (with `--box`) on `Box`.
//!
//! `cargo run --release --example binary_trees -- [DEPTH] [--box]` (DEPTH defaults to 21).
//! One mutator, one thread: a stretch tree of depth DEPTH+1 (built, checked, dropped), a
//! long-lived tree of depth DEPTH kept to the end, and for d = 4, 6, …, DEPTH,
//! 2^(DEPTH−d+4) trees of depth d each built, checked and dropped. The output lines are the
//! benchmarks game's; `--box` builds the same trees with `Box` (malloc/free) in one piece each.
//!
//! # How the gc-core version polls (the bound on a mutation scope)
//!
//! A collection waits for a mutator that is inside a mutation scope to leave it, so the program
//! works as a well-behaved embedder should: **no scope allocates or visits more than
//! [`SCOPE_BUDGET`] = 16 384 nodes** (at most 16 384 node slots allocated: 256 KiB, a node
//! taking 16 bytes), and
//! every scope polls `mc.should_yield()` after each step and returns as soon as it is true. A
//! step is one of:
//!
//! * building and checking one tree of depth ≤ [`PIECE_DEPTH`] = 12 (the smaller trees of the
//!   depth loop; at most 8 191 allocations and 8 191 visits);
//! * building one depth-12 *piece* of a deeper tree (8 191 allocations);
//! * joining the two top finished subtrees under a new node (1 allocation);
//! * checking one piece of a deeper tree (8 191 visits, plus the ≤ DEPTH−11 nodes on its path
//!   from the tree's root).
//!
//! So a stop request waits for at most one step, ≤ 8 191 allocations plus 8 191 node visits:
//! tens to a few hundred microseconds of the mutator's own work, more when its allocations must
//! assist marking or sweep spans, and more wall time when the OS runs the collector's threads in
//! its place (a 2-core machine has more runnable threads than cores while marking).
//! `scope_max_us` on the last line is the longest scope a run had, timed from inside it.
//!
//! Trees deeper than 12 (the stretch tree, the long-lived tree, the depth-14…DEPTH trees of the
//! loop) are built in pieces across scopes: the finished subtrees live between scopes on the
//! mutator's **root stack** (`RootStack`, a root the collector scans at safepoints), and two
//! subtrees of the same height on top of it are joined under a new node, level by level, like
//! a binary counter. This allocates the same nodes in the same order (post-order) as the
//! recursive `bottom_up`, and the same trees. A finished tree is then checked piece by piece
//! (the nodes above the pieces are counted on the path to the first piece below them), so
//! `check` still visits every node once and the output is unchanged. The long-lived tree is
//! moved from the stack into the root object (a `GcCell`) once built.
//!
//! The last line is `key=value` figures: `mode depth wall_ms rss_peak_mib` (VmHWM), and for
//! gc-core `scope_max_us` (the longest time spent inside one mutation scope, timed from inside
//! it), `heap_peak_mib` (the arena's mapped high-water mark) `gc_cycles pauses
//! pause_total_ms pause_max_us` (the longest stop-the-world pause, exact, measured from the stop
//! request, so it includes waiting for the mutator to leave its scope) `mark_total_ms assist_ms
//! gc_cpu_frac` (CPU time of the collector's threads ÷ (wall × CPUs), sweeping included)
//! `gc_cpu_go` (GC CPU as Go 1.19's `GCCPUFraction` counts it: assists, background mark
//! workers and pauses × CPUs ÷ (time since the heap was created × CPUs), leaving out marking at
//! idle priority as Go 1.19 does, like `GcReport::gc_cpu_go` of the other harnesses)
//! `gc_cpu_go_last_cycle` (the same at the end of the last cycle: Go 1.19 updates its figure
//! only at mark termination, so its twin's value is taken there)
//! `assist_parks` (times a mark assist waited for background marking), `scope_wait_max_us`
//! (the longest a stop waited for the mutator to leave its scope), `peak_heap_over_goal` and
//! `median_heap_over_goal` (the largest and the median heap at mark termination ÷ that cycle's
//! goal, from the cycle records, over the steady cycles: from the second cycle to start after
//! the long-lived tree is built, the first whose goal comes from a mark of the whole live heap;
//! before it the live heap grows past each small goal, Go's too) `steady_from` (the first
//! steady cycle) `limited_cycles` (of those, the cycles in which
//! the GC CPU limiter was on during the mark phase) `peak_heap_over_goal_paced` (the largest
//! ratio over the others) `black_share` (the median share of a steady cycle's marked heap that
//! was allocated black during it: the most of it that can be floating garbage)
//! `objects_allocated`. `BINARY_TREES_PAUSES=1` also prints every
//! pause on stderr.

use std::time::{Duration, Instant};

use gc_core::{Gc, GcCell, Heap, Mutation, Mutator, RootStack, Rootable, Trace};
use gc_examples::{GcReport, gc_cpu_frac, rss_peak_mib};

const MIN_DEPTH: u32 = 4;

/// Trees deeper than this are built and checked in pieces of this depth.
const PIECE_DEPTH: u32 = 12;

/// Nodes in a tree of depth `d`.
const fn nodes(d: u32) -> u64 {
    (1 << (d + 1)) - 1
}

/// The most nodes one mutation scope allocates or visits (counted together).
const SCOPE_BUDGET: u64 = 1 << 14;

// A piece, and a small tree built and checked, fit in one scope.
const _: () = assert!(2 * nodes(PIECE_DEPTH) <= SCOPE_BUDGET);

#[derive(Trace)]
struct Node<'gc> {
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
}

#[derive(Trace)]
struct Root<'gc> {
    long_lived: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// The mutator: its root object holds the long-lived tree, its root stack the finished
/// subtrees of a tree being built, and a finished tree while it is being checked.
type TreeMutator = Mutator<Rootable!['gc => Root<'gc>], Rootable!['gc => Gc<'gc, Node<'gc>>]>;

/// The mutator, and the longest time the program has spent inside one of its scopes.
struct Trees {
    m: TreeMutator,
    scope_max: Duration,
}

impl Trees {
    /// Run `f` in a mutation scope, timing it from inside (so not counting a wait to enter).
    fn scope<T>(
        &mut self,
        f: impl for<'gc> FnOnce(&Mutation<'gc>, &Root<'gc>, &RootStack<'gc, Gc<'gc, Node<'gc>>>) -> T,
    ) -> T {
        let (t, took) = self.m.mutate_with_stack(|mc, root, stack| {
            let t0 = Instant::now();
            let t = f(mc, root, stack);
            (t, t0.elapsed())
        });
        self.scope_max = self.scope_max.max(took);
        t
    }
}

fn bottom_up<'gc>(mc: &Mutation<'gc>, depth: u32) -> Gc<'gc, Node<'gc>> {
    if depth == 0 {
        Gc::new(
            mc,
            Node {
                left: None,
                right: None,
            },
        )
    } else {
        let left = bottom_up(mc, depth - 1);
        let right = bottom_up(mc, depth - 1);
        Gc::new(
            mc,
            Node {
                left: Some(left),
                right: Some(right),
            },
        )
    }
}

fn check(n: &Node<'_>) -> u32 {
    1 + n.left.map_or(0, |l| check(&l)) + n.right.map_or(0, |r| check(&r))
}

/// Build a tree of `depth` and push it on the root stack, in scopes of at most
/// [`SCOPE_BUDGET`] allocations.
fn build(m: &mut Trees, depth: u32) {
    if depth <= PIECE_DEPTH {
        m.scope(|mc, _, stack| stack.push(bottom_up(mc, depth)));
        return;
    }
    // Heights of the finished subtrees on top of the stack, bottom to top (strictly
    // decreasing, except for the two just about to be joined).
    let mut heights: Vec<u32> = Vec::with_capacity((depth - PIECE_DEPTH + 1) as usize);
    loop {
        let done = m.scope(|mc, _, stack| {
            let mut spent = 0;
            loop {
                let n = heights.len();
                if n >= 2 && heights[n - 1] == heights[n - 2] {
                    if spent + 1 > SCOPE_BUDGET {
                        return false;
                    }
                    let right = stack.pop();
                    let left = stack.pop();
                    stack.push(Gc::new(mc, Node { left, right }));
                    heights.pop();
                    heights[n - 2] += 1;
                    spent += 1;
                } else if n == 1 && heights[0] == depth {
                    return true;
                } else {
                    if spent + nodes(PIECE_DEPTH) > SCOPE_BUDGET {
                        return false;
                    }
                    stack.push(bottom_up(mc, PIECE_DEPTH));
                    heights.push(PIECE_DEPTH);
                    spent += nodes(PIECE_DEPTH);
                }
                if mc.should_yield() {
                    return false;
                }
            }
        });
        if done {
            return;
        }
    }
}

/// Check the tree of `depth` on top of the root stack and pop it, in scopes of at most
/// [`SCOPE_BUDGET`] node visits.
fn check_and_pop(m: &mut Trees, depth: u32) -> u32 {
    if depth <= PIECE_DEPTH {
        return m.scope(|_, _, stack| check(&stack.pop().expect("a tree")));
    }
    // The tree is 2^levels pieces of depth PIECE_DEPTH under `levels` levels of nodes.
    let levels = depth - PIECE_DEPTH;
    let pieces = 1u64 << levels;
    let step = nodes(PIECE_DEPTH) + u64::from(levels);
    let mut sum = 0u32;
    let mut next = 0u64;
    while next < pieces {
        m.scope(|mc, _, stack| {
            let tree = stack.last().expect("a tree");
            let mut spent = 0;
            while next < pieces && spent + step <= SCOPE_BUDGET {
                // Walk down to piece `next`, counting each node above the pieces on the walk to
                // the first piece below it (where the low bits of `next` below its level are 0).
                let mut n = tree;
                for level in 0..levels {
                    if next & ((1 << (levels - level)) - 1) == 0 {
                        sum += 1;
                    }
                    let child = if (next >> (levels - 1 - level)) & 1 == 0 {
                        n.left
                    } else {
                        n.right
                    };
                    n = child.expect("a complete tree");
                }
                sum += check(&n);
                spent += step;
                next += 1;
                if mc.should_yield() {
                    break;
                }
            }
            if next == pieces {
                stack.pop();
            }
        });
    }
    sum
}

struct BoxNode {
    left: Option<Box<BoxNode>>,
    right: Option<Box<BoxNode>>,
}

fn box_bottom_up(depth: u32) -> Box<BoxNode> {
    if depth == 0 {
        Box::new(BoxNode {
            left: None,
            right: None,
        })
    } else {
        Box::new(BoxNode {
            left: Some(box_bottom_up(depth - 1)),
            right: Some(box_bottom_up(depth - 1)),
        })
    }
}

fn box_check(n: &BoxNode) -> u32 {
    1 + n.left.as_deref().map_or(0, box_check) + n.right.as_deref().map_or(0, box_check)
}

fn run_box(max_depth: u32) {
    let stretch = max_depth + 1;
    println!(
        "stretch tree of depth {stretch}\t check: {}",
        box_check(&box_bottom_up(stretch))
    );
    let long_lived = box_bottom_up(max_depth);
    for d in (MIN_DEPTH..=max_depth).step_by(2) {
        let iterations = 1u32 << (max_depth - d + MIN_DEPTH);
        let mut sum = 0u32;
        for _ in 0..iterations {
            sum = sum.wrapping_add(box_check(&box_bottom_up(d)));
        }
        println!("{iterations}\t trees of depth {d}\t check: {sum}");
    }
    println!(
        "long lived tree of depth {max_depth}\t check: {}",
        box_check(&long_lived)
    );
}

/// Run on gc-core; returns the wall time (up to the last check, before the report and the
/// heap's teardown, where Go's twin stops its clock) and the collector's `key=value` figures
/// (taken while the heap lives).
fn run_gc(max_depth: u32, t0: Instant) -> (std::time::Duration, String) {
    let heap = Heap::from_env().unwrap_or_else(|e| {
        eprintln!("binary_trees: {e}");
        std::process::exit(2)
    });
    let mut m = Trees {
        m: heap.mutator_with_stack(|_| Root {
            long_lived: GcCell::new(None),
        }),
        scope_max: Duration::ZERO,
    };
    let stretch = max_depth + 1;
    build(&mut m, stretch);
    let c = check_and_pop(&mut m, stretch);
    println!("stretch tree of depth {stretch}\t check: {c}");
    build(&mut m, max_depth);
    m.scope(|mc, root, stack| root.long_lived.set(mc, stack.pop()));
    // The live heap has stopped growing. The first steady cycle is the second to start from
    // here (the one running now, if any, started while the tree was being built): the goal
    // of the first to start is set by a mark that began during the build, and may be below
    // the live heap, which no pacer can hold.
    let first_steady = heap.stats().gc_cycles + 3;
    for d in (MIN_DEPTH..=max_depth).step_by(2) {
        let iterations = 1u32 << (max_depth - d + MIN_DEPTH);
        let mut sum = 0u32;
        let mut done = 0;
        if d <= PIECE_DEPTH {
            // Whole trees, as many per scope as the budget allows (at least one), until done
            // or until the collector asks us to yield.
            let cost = 2 * nodes(d);
            while done < iterations {
                m.scope(|mc, _, _| {
                    let mut spent = 0;
                    while done < iterations && spent + cost <= SCOPE_BUDGET {
                        sum = sum.wrapping_add(check(&bottom_up(mc, d)));
                        done += 1;
                        spent += cost;
                        if mc.should_yield() {
                            break;
                        }
                    }
                });
            }
        } else {
            for _ in 0..iterations {
                build(&mut m, d);
                sum = sum.wrapping_add(check_and_pop(&mut m, d));
            }
        }
        println!("{iterations}\t trees of depth {d}\t check: {sum}");
    }
    m.scope(|_, root, stack| stack.push(root.long_lived.get().expect("long-lived")));
    let c = check_and_pop(&mut m, max_depth);
    println!("long lived tree of depth {max_depth}\t check: {c}");

    let wall = t0.elapsed();
    let gc_cpu_frac = gc_cpu_frac(wall);
    // The stretch and long-lived trees are built during the first cycles, where the live heap
    // grows and with it the heap past each small goal (Go's too): the goal figures count the
    // cycles that start after them.
    let r = GcReport::take(Some(&heap), "BINARY_TREES_PAUSES", first_steady);
    let s = heap.stats();
    (
        wall,
        format!(
            "scope_max_us={} heap_peak_mib={:.1} gc_cycles={} pauses={} pause_total_ms={:.1} pause_max_us={} \
         mark_total_ms={:.1} assist_ms={:.1} gc_cpu_frac={gc_cpu_frac:.3} gc_cpu_go={:.4} gc_cpu_go_last_cycle={:.4} \
         peak_heap_over_goal={:.3} median_heap_over_goal={:.3} steady_from={first_steady} limited_cycles={} peak_heap_over_goal_paced={:.3} black_share={:.3} assist_parks={} scope_wait_max_us={} objects_allocated={} {}",
            m.scope_max.as_micros(),
            r.heap_peak_mib,
            s.gc_cycles,
            s.pauses,
            s.pause_total.as_secs_f64() * 1e3,
            gc_examples::round_us(s.pause_max),
            s.mark_total.as_secs_f64() * 1e3,
            r.assist_ms,
            r.gc_cpu_go,
            r.gc_cpu_go_last_cycle,
            r.peak_over_goal,
            r.median_over_goal,
            r.limited_cycles,
            r.peak_over_goal_paced,
            r.black_share,
            s.assist_parks,
            s.scope_wait_max.as_micros(),
            s.objects_allocated,
            r.cpu_keys()
        ),
    )
}

/// The benchmarks game's binary-trees on gc-core (or on `Box`), printing one line of
/// `key=value` figures. Reads GOGC, GOMEMLIMIT, GODEBUG=gctrace=1 and the GCCORE_* settings.
#[derive(clap::Parser)]
#[command(name = "binary_trees")]
struct Args {
    /// Depth of the largest trees.
    #[arg(default_value_t = 21)]
    depth: u32,
    /// Run on `Box` (no GC), the zero-overhead baseline.
    #[arg(long = "box")]
    boxed: bool,
}

fn main() {
    let Args { depth, boxed } = clap::Parser::parse();
    let max_depth = depth.max(MIN_DEPTH + 2);
    let t0 = Instant::now();
    if boxed {
        run_box(max_depth);
        println!(
            "mode=box depth={max_depth} wall_ms={} rss_peak_mib={:.1} gc_cycles=0",
            t0.elapsed().as_millis(),
            rss_peak_mib()
        );
    } else {
        let (wall, figures) = run_gc(max_depth, t0);
        println!(
            "mode=gc depth={max_depth} wall_ms={} rss_peak_mib={:.1} {figures}",
            wall.as_millis(),
            rss_peak_mib(),
        );
    }
}
