//! The benchmarks-game binary-trees workload, on gc-core or (with `--box`) on `Box`.
//!
//! `cargo run --release --example binary_trees -- [DEPTH] [--box]` (DEPTH defaults to 21).
//! One mutator; the last line is `key=value` figures.

use std::time::Instant;

use gc_core::{Gc, GcCell, Heap, Mutator, Rootable, Trace};
use gc_examples::rss_peak_mib;

const MIN_DEPTH: u32 = 4;

#[derive(Trace)]
struct Node<'gc> {
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
}

#[derive(Trace)]
struct Root<'gc> {
    long_lived: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

fn bottom_up<'gc>(mc: &gc_core::Mutation<'gc>, depth: u32) -> Gc<'gc, Node<'gc>> {
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

fn run_gc(max_depth: u32) -> gc_core::HeapStats {
    let heap = Heap::from_env().unwrap_or_else(|e| {
        eprintln!("binary_trees: {e}");
        std::process::exit(2)
    });
    let mut m: Mutator<Rootable!['gc => Root<'gc>]> = heap.mutator(|_| Root {
        long_lived: GcCell::new(None),
    });
    let stretch = max_depth + 1;
    let c = m.mutate(|mc, _| check(&bottom_up(mc, stretch)));
    println!("stretch tree of depth {stretch}\t check: {c}");
    m.mutate(|mc, root| root.long_lived.set(mc, Some(bottom_up(mc, max_depth))));
    for d in (MIN_DEPTH..=max_depth).step_by(2) {
        let iterations = 1u32 << (max_depth - d + MIN_DEPTH);
        let mut sum = 0u32;
        let mut done = 0;
        while done < iterations {
            // Build trees until done or until the collector asks us to yield.
            m.mutate(|mc, _| {
                while done < iterations {
                    sum = sum.wrapping_add(check(&bottom_up(mc, d)));
                    done += 1;
                    if mc.should_yield() {
                        break;
                    }
                }
            });
        }
        println!("{iterations}\t trees of depth {d}\t check: {sum}");
    }
    let c = m.mutate(|_, root| check(&root.long_lived.get().expect("long-lived tree")));
    println!("long lived tree of depth {max_depth}\t check: {c}");
    heap.stats()
}

fn main() {
    let mut depth = 21;
    let mut boxed = false;
    for a in std::env::args().skip(1) {
        if a == "--box" {
            boxed = true;
        } else if let Ok(d) = a.parse() {
            depth = d;
        } else {
            eprintln!("usage: binary_trees [DEPTH] [--box]");
            std::process::exit(2);
        }
    }
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
        let s = run_gc(max_depth);
        println!(
            "mode=gc depth={max_depth} wall_ms={} rss_peak_mib={:.1} gc_cycles={} pause_total_ms={:.1} pause_max_us={} mark_total_ms={:.1} objects_allocated={}",
            t0.elapsed().as_millis(),
            rss_peak_mib(),
            s.gc_cycles,
            s.pause_total.as_secs_f64() * 1e3,
            s.pause_max.as_micros(),
            s.mark_total.as_secs_f64() * 1e3,
            s.objects_allocated
        );
    }
}
