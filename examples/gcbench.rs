//! GCBench (John Ellis and Pete Kovac's, as adapted by Hans Boehm), on gc-core or (with `--box`)
//! on `Box`.
//!
//! `cargo run --release --example gcbench -- [--box] [--stretch-depth 18] [--long-lived-depth 16]
//! [--array 500000] [--max-depth 16]` (Boehm's parameters are the defaults).
//!
//! 1. A *stretch* tree of depth 18 is built bottom up and dropped.
//! 2. A long-lived tree of depth 16 is built top down (each node allocated empty, then its
//!    children stored into it: the write barrier's path) and a long-lived array of 500 000
//!    doubles (`a[i] = 1/i`, pointer-free) is made; both are kept to the end.
//! 3. For d = 4, 6, …, 16: `2 × size(stretch) / size(d)` trees of depth d are built top down,
//!    then as many bottom up; each is dropped at once. (`size(d) = 2^(d+1) − 1` nodes.)
//! 4. The long-lived tree and array are checked.
//!
//! A node holds two pointers and two `i32`s, as GCBench's `Node { left, right, i, j }`.
//!
//! The gc-core version bounds its mutation scopes as a well-behaved embedder does (see
//! `binary_trees.rs`): no scope allocates more than 16 384 nodes, and each polls `should_yield`
//! after every step. Top-down construction keeps the nodes still to populate on the mutator's
//! root stack (a depth-first work list, children pushed right then left, so nodes are filled in
//! the recursive order); bottom-up trees deeper than 12 are built in depth-12 pieces joined on
//! the root stack.
//!
//! Lines: GCBench's own, then `key=value` figures: `mode wall_ms rss_peak_mib`, and for gc-core
//! `heap_peak_mib gc_cycles pauses pause_total_ms pause_max_us mark_total_ms assist_ms
//! gc_cpu_frac gc_cpu_go gc_cpu_go_last_cycle` (as `binary_trees`) `objects_allocated scope_wait_max_us` and the CPU
//! breakdown.

use std::time::Instant;

use clap::Parser;
use gc_core::{Gc, GcArray, GcCell, Heap, Mutation, Mutator, RootStack, Rootable, Trace};
use gc_examples::{GcReport, gc_cpu_frac, rss_peak_mib};

/// GCBench: trees built top down and bottom up beside a long-lived tree and array.
#[derive(Parser)]
#[command(name = "gcbench")]
struct Args {
    /// Depth of the stretch tree (also sets how many trees each depth builds).
    #[arg(long, default_value_t = 18)]
    stretch_depth: u32,
    /// Depth of the long-lived tree.
    #[arg(long, default_value_t = 16)]
    long_lived_depth: u32,
    /// Doubles in the long-lived array.
    #[arg(long, default_value_t = 500_000, value_parser = gc_examples::positive)]
    array: usize,
    /// The deepest temporary trees (from depth 4, in steps of 2).
    #[arg(long, default_value_t = 16)]
    max_depth: u32,
    /// Run on `Box` (no GC), the zero-overhead baseline.
    #[arg(long = "box")]
    boxed: bool,
}

const MIN_DEPTH: u32 = 4;

/// Nodes in a tree of depth `d`.
const fn tree_size(d: u32) -> u64 {
    (1 << (d + 1)) - 1
}

/// Trees of depth `d` built each way.
fn iterations(a: &Args, d: u32) -> u64 {
    2 * tree_size(a.stretch_depth) / tree_size(d)
}

/// The most nodes a mutation scope allocates or visits.
const SCOPE_BUDGET: u64 = 1 << 14;
/// Bottom-up trees deeper than this are built in pieces of this depth.
const PIECE_DEPTH: u32 = 12;

#[derive(Trace)]
struct Node<'gc> {
    left: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    right: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    i: i32,
    j: i32,
}

fn node<'gc>(
    mc: &Mutation<'gc>,
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
) -> Gc<'gc, Node<'gc>> {
    Gc::new(
        mc,
        Node {
            left: GcCell::new(left),
            right: GcCell::new(right),
            i: 0,
            j: 0,
        },
    )
}

#[derive(Trace)]
struct Root<'gc> {
    long_lived: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    array: GcCell<'gc, Option<GcArray<'gc, f64>>>,
}

type Stack<'gc> = RootStack<'gc, Gc<'gc, Node<'gc>>>;
type BenchMutator = Mutator<Rootable!['gc => Root<'gc>], Rootable!['gc => Gc<'gc, Node<'gc>>]>;

fn make_tree<'gc>(mc: &Mutation<'gc>, d: u32) -> Gc<'gc, Node<'gc>> {
    if d == 0 {
        node(mc, None, None)
    } else {
        let l = make_tree(mc, d - 1);
        let r = make_tree(mc, d - 1);
        node(mc, Some(l), Some(r))
    }
}

/// Build a tree of depth `d` bottom up and push it on the root stack, in bounded scopes.
fn build_bottom_up(m: &mut BenchMutator, d: u32) {
    if d <= PIECE_DEPTH {
        m.mutate_with_stack(|mc, _, stack| stack.push(make_tree(mc, d)));
        return;
    }
    // Heights of the finished subtrees on top of the stack (a binary counter: two of the same
    // height are joined under a new node).
    let mut heights: Vec<u32> = Vec::new();
    loop {
        let done = m.mutate_with_stack(|mc, _, stack| {
            let mut spent = 0;
            loop {
                let n = heights.len();
                if n >= 2 && heights[n - 1] == heights[n - 2] {
                    let r = stack.pop();
                    let l = stack.pop();
                    stack.push(node(mc, l, r));
                    heights.pop();
                    heights[n - 2] += 1;
                    spent += 1;
                } else if n == 1 && heights[0] == d {
                    return true;
                } else {
                    if spent + tree_size(PIECE_DEPTH) > SCOPE_BUDGET {
                        return false;
                    }
                    stack.push(make_tree(mc, PIECE_DEPTH));
                    heights.push(PIECE_DEPTH);
                    spent += tree_size(PIECE_DEPTH);
                }
                if spent >= SCOPE_BUDGET || mc.should_yield() {
                    return false;
                }
            }
        });
        if done {
            return;
        }
    }
}

/// Build a tree of depth `d` top down (GCBench's `Populate`) under a new root node pushed on the
/// root stack, in bounded scopes: the stack above the root is the work list of nodes to fill,
/// `depths` their remaining depths.
fn build_top_down(m: &mut BenchMutator, d: u32) {
    let base = m.mutate_with_stack(|mc, _, stack| {
        let root = node(mc, None, None);
        stack.push(root);
        stack.push(root);
        stack.len() - 1
    });
    let mut depths = vec![d];
    while !depths.is_empty() {
        m.mutate_with_stack(|mc, _, stack: &Stack<'_>| {
            let mut spent = 0;
            while let Some(left) = depths.pop() {
                let n = stack.pop().expect("a node to fill");
                if left > 0 {
                    let (l, r) = (node(mc, None, None), node(mc, None, None));
                    n.left.set(mc, Some(l));
                    n.right.set(mc, Some(r));
                    stack.push(r);
                    depths.push(left - 1);
                    stack.push(l);
                    depths.push(left - 1);
                    spent += 2;
                }
                if spent >= SCOPE_BUDGET || mc.should_yield() {
                    break;
                }
            }
            debug_assert!(stack.len() >= base);
        });
    }
}

/// Nodes of the tree on top of the root stack (popped), counted in bounded scopes with the
/// stack above it as the work list.
fn count_and_pop(m: &mut BenchMutator) -> u64 {
    let base = m.mutate_with_stack(|_, _, stack| {
        let t = stack.last().expect("a tree");
        stack.push(t);
        stack.len() - 1
    });
    let mut count = 0;
    loop {
        let done = m.mutate_with_stack(|mc, _, stack| {
            let mut spent = 0;
            while stack.len() > base {
                let n = stack.pop().unwrap();
                count += 1;
                for c in [n.right.get(), n.left.get()].into_iter().flatten() {
                    stack.push(c);
                }
                spent += 1;
                if spent >= SCOPE_BUDGET || mc.should_yield() {
                    break;
                }
            }
            let done = stack.len() == base;
            if done {
                stack.pop();
            }
            done
        });
        if done {
            return count;
        }
    }
}

/// Runs the benchmark; returns its wall time (up to its last check, before the report and the
/// heap's teardown, where Go's twin stops its clock) and the figures.
fn run_gc(a: &Args, t0: Instant) -> (std::time::Duration, String) {
    let heap = Heap::from_env().unwrap_or_else(|e| {
        eprintln!("gcbench: {e}");
        std::process::exit(2)
    });
    let mut m: BenchMutator = heap.mutator_with_stack(|_| Root {
        long_lived: GcCell::new(None),
        array: GcCell::new(None),
    });
    println!(
        "Stretching memory with a binary tree of depth {}",
        a.stretch_depth
    );
    build_bottom_up(&mut m, a.stretch_depth);
    m.mutate_with_stack(|_, _, stack| {
        stack.pop();
    });
    println!(
        "Creating a long-lived binary tree of depth {}",
        a.long_lived_depth
    );
    build_top_down(&mut m, a.long_lived_depth);
    m.mutate_with_stack(|mc, root, stack| root.long_lived.set(mc, stack.pop()));
    println!("Creating a long-lived array of {} doubles", a.array);
    m.mutate(|mc, root| root.array.set(mc, Some(GcArray::new(mc, a.array, 0.0))));
    let mut filled = 1;
    while filled < a.array {
        m.mutate(|mc, root| {
            let arr = root.array.get().expect("the long-lived array");
            let end = (filled + SCOPE_BUDGET as usize).min(a.array);
            while filled < end {
                arr.set(mc, filled, 1.0 / filled as f64);
                filled += 1;
            }
        });
    }
    for d in (MIN_DEPTH..=a.max_depth).step_by(2) {
        let n = iterations(a, d);
        println!("Creating {n} trees of depth {d}");
        let t = Instant::now();
        for _ in 0..n {
            build_top_down(&mut m, d);
            m.mutate_with_stack(|_, _, stack| {
                stack.pop();
            });
        }
        println!(
            "\tTop down construction took {} ms",
            t.elapsed().as_millis()
        );
        let t = Instant::now();
        let mut done = 0;
        while done < n {
            if d > PIECE_DEPTH {
                build_bottom_up(&mut m, d);
                m.mutate_with_stack(|_, _, stack| {
                    stack.pop();
                });
                done += 1;
                continue;
            }
            // Small trees: as many per scope as the budget allows.
            m.mutate(|mc, _| {
                let mut spent = 0;
                while done < n && spent + tree_size(d) <= SCOPE_BUDGET.max(tree_size(d)) {
                    std::hint::black_box(make_tree(mc, d));
                    done += 1;
                    spent += tree_size(d);
                    if mc.should_yield() {
                        break;
                    }
                }
            });
        }
        println!(
            "\tBottom up construction took {} ms",
            t.elapsed().as_millis()
        );
    }
    let ok = m.mutate(|_, root| {
        let arr = root.array.get().expect("the long-lived array");
        let probe = 1000.min(a.array - 1).max(1);
        root.long_lived.get().is_some() && arr.get(probe) == 1.0 / probe as f64
    });
    m.mutate_with_stack(|_, root, stack| stack.push(root.long_lived.get().unwrap()));
    let count = count_and_pop(&mut m);
    assert!(
        ok && count == tree_size(a.long_lived_depth),
        "the long-lived data did not survive"
    );
    let wall = t0.elapsed();
    let frac = gc_cpu_frac(wall);
    let r = GcReport::take(Some(&heap), "GCBENCH_PAUSES", 1);
    let s = heap.stats();
    (
        wall,
        format!(
            "heap_peak_mib={:.1} gc_cycles={} pauses={} pause_total_ms={:.1} pause_max_us={} \
         mark_total_ms={:.1} assist_ms={:.1} gc_cpu_frac={frac:.3} gc_cpu_go={:.4} gc_cpu_go_last_cycle={:.4} \
         objects_allocated={} scope_wait_max_us={} {}",
            r.heap_peak_mib,
            s.gc_cycles,
            s.pauses,
            s.pause_total.as_secs_f64() * 1e3,
            gc_examples::round_us(s.pause_max),
            s.mark_total.as_secs_f64() * 1e3,
            r.assist_ms,
            r.gc_cpu_go,
            r.gc_cpu_go_last_cycle,
            s.objects_allocated,
            r.scope_wait_max_us,
            r.cpu_keys()
        ),
    )
}

/// The `Box` baseline: the same trees with `malloc`/`free`.
struct BoxNode {
    left: Option<Box<BoxNode>>,
    right: Option<Box<BoxNode>>,
    #[allow(dead_code)] // GCBench's payload, never read
    i: i32,
    #[allow(dead_code)]
    j: i32,
}

fn box_node() -> Box<BoxNode> {
    Box::new(BoxNode {
        left: None,
        right: None,
        i: 0,
        j: 0,
    })
}

fn box_make_tree(d: u32) -> Box<BoxNode> {
    let mut n = box_node();
    if d > 0 {
        n.left = Some(box_make_tree(d - 1));
        n.right = Some(box_make_tree(d - 1));
    }
    n
}

fn box_populate(d: u32, n: &mut BoxNode) {
    if d > 0 {
        let mut l = box_node();
        let mut r = box_node();
        box_populate(d - 1, &mut l);
        box_populate(d - 1, &mut r);
        n.left = Some(l);
        n.right = Some(r);
    }
}

fn box_count(n: &BoxNode) -> u64 {
    1 + n.left.as_deref().map_or(0, box_count) + n.right.as_deref().map_or(0, box_count)
}

fn run_box(a: &Args) {
    println!(
        "Stretching memory with a binary tree of depth {}",
        a.stretch_depth
    );
    drop(std::hint::black_box(box_make_tree(a.stretch_depth)));
    println!(
        "Creating a long-lived binary tree of depth {}",
        a.long_lived_depth
    );
    let mut long_lived = box_node();
    box_populate(a.long_lived_depth, &mut long_lived);
    println!("Creating a long-lived array of {} doubles", a.array);
    let array: Vec<f64> = (0..a.array)
        .map(|i| if i == 0 { 0.0 } else { 1.0 / i as f64 })
        .collect();
    for d in (MIN_DEPTH..=a.max_depth).step_by(2) {
        let n = iterations(a, d);
        println!("Creating {n} trees of depth {d}");
        let t = Instant::now();
        for _ in 0..n {
            let mut t = box_node();
            box_populate(d, &mut t);
            drop(std::hint::black_box(t));
        }
        println!(
            "\tTop down construction took {} ms",
            t.elapsed().as_millis()
        );
        let t = Instant::now();
        for _ in 0..n {
            drop(std::hint::black_box(box_make_tree(d)));
        }
        println!(
            "\tBottom up construction took {} ms",
            t.elapsed().as_millis()
        );
    }
    let probe = 1000.min(a.array - 1).max(1);
    assert!(
        box_count(&long_lived) == tree_size(a.long_lived_depth)
            && array[probe] == 1.0 / probe as f64,
        "the long-lived data did not survive"
    );
}

fn main() {
    let a = Args::parse();
    if a.max_depth < MIN_DEPTH || a.stretch_depth < a.max_depth {
        eprintln!(
            "gcbench: need {MIN_DEPTH} <= --max-depth <= --stretch-depth (got {} and {})",
            a.max_depth, a.stretch_depth
        );
        std::process::exit(2);
    }
    let t0 = Instant::now();
    let (mode, wall, figures) = if a.boxed {
        run_box(&a);
        ("box", t0.elapsed(), "gc_cycles=0".to_string())
    } else {
        let (wall, figures) = run_gc(&a, t0);
        ("gc", wall, figures)
    };
    println!("Completed in {} ms.", wall.as_millis());
    println!(
        "mode={mode} stretch_depth={} long_lived_depth={} max_depth={} wall_ms={} rss_peak_mib={:.1} {figures}",
        a.stretch_depth,
        a.long_lived_depth,
        a.max_depth,
        wall.as_millis(),
        rss_peak_mib()
    );
}
