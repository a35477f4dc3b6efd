//! `#[derive(Trace)]` writes an `unsafe impl` whose pointer words the marker trusts, and its
//! output names items by `::gc_core::` paths, which resolve in the crate using it. This crate
//! rebinds `::gc_core` to itself (`extern crate self as gc_core;`, which safe code may write),
//! re-exports gc-core's `Trace` and `Tracer` there, and puts a helper of its own, which lies,
//! under the name the derive once called by path. The derived masks must still be the true
//! ones (the derive reaches its helper through the trait), and the objects they describe must
//! outlive collections with the verifier on (freed memory poisoned, the heap checked at every
//! cycle), concurrent and stop-the-world.

extern crate gc_core as real;
extern crate self as gc_core;

pub use real::{Trace, Tracer};

use real::{Config, Gc, GcCell, Heap, Mutator, Rootable};

/// A forged helper with the signature of the one the derive called by path before: it claims
/// word 0 holds a pointer and drops every field's own words.
#[doc(hidden)]
pub const fn __add_field_pointer_words(
    words: Option<u64>,
    _field: Option<u64>,
    offset: usize,
) -> Option<u64> {
    match words {
        Some(w) if offset == 0 => Some(w | 1),
        w => w,
    }
}

/// A number where the forged helper puts a pointer, and the pointer after it.
#[derive(Trace)]
#[repr(C)]
struct NumberFirst<'gc> {
    number: u64,
    target: Gc<'gc, u64>,
}

/// Pointers around a number.
#[derive(Trace)]
#[repr(C)]
struct Around<'gc> {
    first: Gc<'gc, u64>,
    number: u64,
    last: Option<Gc<'gc, u64>>,
}

#[test]
fn derived_pointer_words_ignore_helpers_a_crate_puts_under_gc_core() {
    assert_eq!(<NumberFirst<'static> as Trace>::POINTER_WORDS, Some(0b10));
    assert_eq!(<Around<'static> as Trace>::POINTER_WORDS, Some(0b101));
    // The forged helper is callable here, and would have given other masks.
    assert_eq!(__add_field_pointer_words(Some(0), Some(1), 8), Some(0));
}

/// The roots: one object of each type, reached only through their pointer words.
#[derive(Trace)]
struct Roots<'gc> {
    number_first: GcCell<'gc, Option<Gc<'gc, NumberFirst<'gc>>>>,
    around: GcCell<'gc, Option<Gc<'gc, Around<'gc>>>>,
}

type Root = Rootable!['gc => Roots<'gc>];

/// Keep a `NumberFirst` and an `Around` whose numbers are addresses of garbage objects (what
/// a forged mask would read as pointers in place of the real ones), allocate garbage through
/// several cycles, and read every target back; then drop them and check the heap shrinks.
fn objects_outlive_cycles(concurrent: bool) {
    let heap = Heap::new(Config::default().verify(true).concurrent(concurrent)).unwrap();
    let mut m: Mutator<Root> = heap.mutator(|_| Roots {
        number_first: GcCell::new(None),
        around: GcCell::new(None),
    });
    m.mutate(|mc, root| {
        let decoy = Gc::as_ptr(Gc::new(mc, 7u64)) as u64;
        let around = Around {
            first: Gc::new(mc, 2u64),
            number: decoy,
            last: Some(Gc::new(mc, 3u64)),
        };
        root.around.set(mc, Some(Gc::new(mc, around)));
        let number_first = NumberFirst {
            number: decoy,
            target: Gc::new(mc, 42u64),
        };
        root.number_first.set(mc, Some(Gc::new(mc, number_first)));
    });
    let cycles = heap.stats().gc_cycles;
    for round in 0..8u64 {
        m.mutate(|mc, _| {
            for i in 0..20_000u64 {
                Gc::new(mc, i ^ round);
            }
        });
        m.collect();
    }
    assert!(heap.stats().gc_cycles >= cycles + 8);
    m.mutate(|_, root| {
        let n = root.number_first.get().expect("rooted");
        assert_eq!(*n.target, 42, "the word after the number");
        let a = root.around.get().expect("rooted");
        assert_eq!(
            (*a.first, a.last.map(|l| *l)),
            (2, Some(3)),
            "the words around it"
        );
    });
    let objects = heap.stats().objects_freed;
    m.mutate(|mc, root| {
        root.number_first.set(mc, None);
        root.around.set(mc, None);
    });
    m.collect();
    m.collect();
    assert!(
        heap.stats().objects_freed >= objects + 5,
        "the five dropped objects were reclaimed"
    );
}

#[test]
fn derived_pointer_words_keep_their_targets_alive_concurrent() {
    objects_outlive_cycles(true);
}

#[test]
fn derived_pointer_words_keep_their_targets_alive_stop_the_world() {
    objects_outlive_cycles(false);
}
