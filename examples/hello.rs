//! The smallest program on the API (the README names it beside the Lox demo): build a linked structure on the gc-core heap, drop part of it, collect, and
//! print what was freed and what the heap looks like.
//!
//! Run: `cargo run --release --example hello`

use gc_core::{Gc, GcCell, GcStr, Heap, Mutator, Rootable, Trace};
use gc_examples::mib;

/// A node of a singly linked list: a name (a pointer-free heap string) and a next pointer.
#[derive(Trace)]
struct Node<'gc> {
    name: GcStr<'gc>,
    next: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// The mutator's root: the head of the list.
#[derive(Trace)]
struct Root<'gc> {
    head: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// The README demo: a linked list on the gc-core heap, part of it dropped and collected.
/// Reads GOGC, GOMEMLIMIT, GODEBUG=gctrace=1 and the GCCORE_* settings.
#[derive(clap::Parser)]
#[command(name = "hello")]
struct Args {}

fn main() {
    let Args {} = clap::Parser::parse();
    let heap = match Heap::from_env() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("hello: {e}");
            std::process::exit(2);
        }
    };
    let mut m: Mutator<Rootable!['gc => Root<'gc>]> = heap.mutator(|_mc| Root {
        head: GcCell::new(None),
    });

    const N: usize = 100_000;
    // 1. Build a list of N nodes (2N objects: node + name string).
    m.mutate(|mc, root| {
        for i in (0..N).rev() {
            let name = GcStr::new(mc, &format!("node-{i}"));
            let next = GcCell::new(root.head.get());
            root.head.set(mc, Some(Gc::new(mc, Node { name, next })));
        }
    });
    m.collect();
    let before = heap.stats();
    println!(
        "built a list of {N} nodes: {} objects live, heap {} MiB",
        before.live_objects(),
        mib(before.heap_marked)
    );

    // 2. Cut the list after its first 1000 nodes: the other 99000 become garbage.
    m.mutate(|mc, root| {
        let mut cur = root.head.get();
        for _ in 0..999 {
            cur = cur.and_then(|n| n.next.get());
        }
        if let Some(last_kept) = cur {
            last_kept.next.set(mc, None);
        }
    });
    m.collect();
    let after = heap.stats();
    let (first, len) = m.mutate(|_mc, root| {
        let first = root.head.get().map(|n| n.name.to_string());
        let mut len = 0;
        let mut cur = root.head.get();
        while let Some(n) = cur {
            len += 1;
            cur = n.next.get();
        }
        (first, len)
    });
    println!(
        "cut the list to {len} nodes (head {:?}): freed {} objects, {} objects live, heap {} MiB",
        first.unwrap_or_default(),
        after.objects_freed - before.objects_freed,
        after.live_objects(),
        mib(after.heap_marked)
    );
    println!(
        "heap: goal {} MiB, mapped {} MiB, in spans {} MiB, {} cycles, max pause {:?}",
        mib(after.heap_goal),
        mib(after.mapped_bytes),
        mib(after.in_use_bytes),
        after.gc_cycles,
        after.pause_max
    );
    println!(
        "live_objects={} freed_objects={} heap_marked_bytes={} gc_cycles={} pause_max_us={}",
        after.live_objects(),
        after.objects_freed,
        after.heap_marked,
        after.gc_cycles,
        after.pause_max.as_micros()
    );
}
