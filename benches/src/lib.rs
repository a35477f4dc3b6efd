//! Heap shapes shared by the mark benchmark (`benches/mark.rs`) and the hardware-counter
//! harness (`src/bin/mark_counters.rs`), so that both measure the same heaps.
//!
//! | shape | what it stresses |
//! |---|---|
//! | [`build_tree`] random | 2²⁰ − 1 two-pointer nodes (16 MiB) linked into a complete binary tree in random address order: a cache miss per edge (span, mark bitmap, object) |
//! | [`build_tree`] in order | the same tree built recursively, children first: the marker walks memory in address order |
//! | [`build_ring`] | 1 KiB `GcBytes` reached from one array: marking without scanning (msgbuf's shape) |
//! | [`build_arrays`] | 16 arrays of 65 536 pointers to 256 shared objects: array scanning in chunks, edges to marked objects |

use gc_core::{Config, Gc, GcArray, GcBytes, GcCell, Heap, Mutation, Mutator, Rootable, Trace};

/// A two-pointer node (16 bytes).
#[derive(Trace)]
pub struct Node<'gc> {
    pub left: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
    pub right: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
}

/// A new node with the given children.
pub fn node<'gc>(
    mc: &Mutation<'gc>,
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
) -> Gc<'gc, Node<'gc>> {
    Gc::new(
        mc,
        Node {
            left: GcCell::new(left),
            right: GcCell::new(right),
        },
    )
}

/// Root of the tree shapes.
pub type NodeRoot = Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>];
/// Root of the ring of buffers.
pub type BytesRoot = Rootable!['gc => GcArray<'gc, Option<GcBytes<'gc>>>];
/// Root of the large arrays.
pub type ArraysRoot = Rootable!['gc => GcArray<'gc, Option<GcArray<'gc, Option<Gc<'gc, u64>>>>>];

/// Slots of the tree shapes: the tree has `NODES - 1` nodes.
pub const NODES: usize = 1 << 20;
/// Buffers in the ring shape.
pub const RING: usize = 16 * 1024;
/// Arrays, and pointers per array, of the large-arrays shape.
pub const ARRAYS: (usize, usize) = (16, 1 << 16);

/// A heap whose cycles are full stop-the-world collections run only when asked (GOGC off), with
/// `workers` mark workers (`None`: one per CPU) and span-local marking on or off.
pub fn heap(workers: Option<usize>, span_marking: bool) -> Heap {
    heap_with(workers, span_marking, false)
}

/// [`heap`], with concurrent cycles instead if `concurrent` (each `collect()` then runs a cycle
/// of concurrent marking, the mutator idle in its wait).
pub fn heap_with(workers: Option<usize>, span_marking: bool, concurrent: bool) -> Heap {
    let mut c = Config::default()
        .concurrent(concurrent)
        .gc_percent(None)
        .span_marking(span_marking);
    if let Some(w) = workers {
        c = c.mark_workers(w);
    }
    Heap::new(c).unwrap()
}

/// A small deterministic generator (xorshift), so the benchmarks need no extra dependency.
pub fn shuffle(v: &mut [usize], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// A binary tree of [`NODES`] − 1 nodes. `random`: node `k` of the breadth-first order has
/// children `2k + 1` and `2k + 2` and sits at a random allocation slot; else the tree is built
/// recursively, children before their parent (as binary-trees and most recursive builders do),
/// so the marker's depth-first walk reads memory in (descending) address order.
pub fn build_tree(m: &mut Mutator<NodeRoot>, random: bool) {
    build_tree_of(m, random, NODES);
}

/// [`build_tree`] with `nodes` − 1 nodes (`nodes` a power of two).
pub fn build_tree_of(m: &mut Mutator<NodeRoot>, random: bool, nodes: usize) {
    assert!(nodes.is_power_of_two() && nodes >= 2, "a power of two");
    fn bottom_up<'gc>(mc: &Mutation<'gc>, depth: u32) -> Gc<'gc, Node<'gc>> {
        let (left, right) = if depth == 0 {
            (None, None)
        } else {
            (
                Some(bottom_up(mc, depth - 1)),
                Some(bottom_up(mc, depth - 1)),
            )
        };
        node(mc, left, right)
    }
    if !random {
        m.mutate(|mc, root| root.set(mc, Some(bottom_up(mc, nodes.trailing_zeros() - 1))));
        return;
    }
    let mut order: Vec<usize> = (0..nodes - 1).collect();
    shuffle(&mut order, 0x9E37_79B9_7F4A_7C15);
    m.mutate(|mc, root| {
        let slots: Vec<Gc<Node>> = (0..nodes - 1).map(|_| node(mc, None, None)).collect();
        // Breadth-first position k lives in allocation slot order[k].
        let at = |k: usize| slots[order[k]];
        for k in 0..nodes - 1 {
            if 2 * k + 2 < nodes - 1 {
                at(k).left.set(mc, Some(at(2 * k + 1)));
                at(k).right.set(mc, Some(at(2 * k + 2)));
            }
        }
        root.set(mc, Some(at(0)));
    });
}

/// A mutator whose root is an array of `n` 1 KiB buffers (the benchmark's ring has [`RING`]).
pub fn build_ring(h: &Heap, n: usize) -> Mutator<BytesRoot> {
    let mut m: Mutator<BytesRoot> = h.mutator(|mc| GcArray::new(mc, n, None));
    m.mutate(|mc, ring| {
        let buf = [7u8; 1024];
        for i in 0..n {
            ring.set(mc, i, Some(GcBytes::new(mc, &buf)));
        }
    });
    m
}

/// A mutator whose root holds [`ARRAYS`]: arrays of pointers to 256 shared `u64`s.
pub fn build_arrays(h: &Heap) -> Mutator<ArraysRoot> {
    let (arrays, len) = ARRAYS;
    let mut m: Mutator<ArraysRoot> = h.mutator(|mc| GcArray::new(mc, arrays, None));
    m.mutate(|mc, root| {
        let shared: Vec<Gc<u64>> = (0..256).map(|i| Gc::new(mc, i)).collect();
        for a in 0..arrays {
            let arr = GcArray::new(mc, len, None);
            for i in 0..len {
                arr.set(mc, i, Some(shared[(i * 31 + a) % 256]));
            }
            root.set(mc, a, Some(arr));
        }
    });
    m
}
