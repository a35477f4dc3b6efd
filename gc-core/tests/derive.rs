//! `#[derive(Trace)]`: what it accepts and the `NEEDS_TRACE` it computes (positive tests, which
//! need only the trait), and what it rejects (the trybuild cases in `tests/ui/`, run by `compile_fail.rs`).

#![allow(dead_code)] // the derived types exist for their impls

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;

use gc_core::{Gc, Trace};

/// `T::NEEDS_TRACE`, through a function so the value is checked at run time like any other.
fn needs_trace<T: Trace + ?Sized>() -> bool {
    T::NEEDS_TRACE
}

// ---- named structs ----

#[derive(Trace)]
struct Plain {
    a: u32,
    s: String,
}

#[derive(Trace)]
struct Linked<'gc> {
    value: u64,
    next: Option<Gc<'gc, Linked<'gc>>>,
}

// ---- tuple structs ----

#[derive(Trace)]
struct PlainTuple(u8, String, (u32, bool));

#[derive(Trace)]
struct PairTuple<'gc>(u32, Gc<'gc, u32>);

// ---- unit struct ----

#[derive(Trace)]
struct Marker;

// ---- enums ----

#[derive(Trace)]
enum Value<'gc> {
    Nil,
    Int(i64),
    Str(String),
    Cons {
        car: Gc<'gc, Value<'gc>>,
        cdr: Gc<'gc, Value<'gc>>,
    },
}

#[derive(Trace)]
enum Token {
    Eof,
    Num(u64),
    Ident { name: String },
}

#[derive(Trace)]
enum Never {}

// ---- generics ----

#[derive(Trace)]
struct Wrapper<'gc, T>
where
    T: Clone,
{
    items: Vec<T>,
    extra: Option<Gc<'gc, u32>>,
}

#[derive(Trace)]
struct Boxed<T> {
    inner: Box<T>,
    marker: PhantomData<T>,
}

#[derive(Trace)]
struct Fixed<T, const N: usize> {
    items: [T; N],
}

// ---- #[gc(skip)] ----

#[derive(Trace)]
struct Counted {
    #[gc(skip)]
    counter: AtomicU64,
}

#[derive(Trace)]
struct CountedNode<'gc> {
    #[gc(skip)]
    counter: AtomicU64,
    next: Option<Gc<'gc, CountedNode<'gc>>>,
}

#[derive(Trace)]
enum MaybeCounted<'gc> {
    Counter(#[gc(skip)] AtomicU64),
    Node(Gc<'gc, u32>),
}

// ---- #[gc(unsafe_drop)] ----

#[derive(Trace)]
#[gc(unsafe_drop)]
struct Guard<'gc> {
    target: Gc<'gc, u32>,
    #[gc(skip)]
    drops: AtomicU64,
}

// SAFETY: `Guard::drop` never dereferences `target`: it only counts its drops.
unsafe impl gc_core::UnsafeDrop for Guard<'_> {}

impl Drop for Guard<'_> {
    // Never dereferences `target`: that is the `unsafe_drop` promise.
    fn drop(&mut self) {
        *self.drops.get_mut() += 1;
    }
}

#[derive(Trace)]
#[gc(unsafe_drop)]
struct PlainWithDrop {
    name: String,
}

// SAFETY: no GC handle at all.
unsafe impl gc_core::UnsafeDrop for PlainWithDrop {}

impl Drop for PlainWithDrop {
    fn drop(&mut self) {}
}

/// The derived impls hold for every `'gc`, not only `'static` (no skipped field mentions `'gc`).
fn needs_trace_in_scope<'gc>(_: Option<Gc<'gc, u32>>) -> [bool; 4] {
    [
        needs_trace::<Linked<'gc>>(),
        needs_trace::<CountedNode<'gc>>(),
        needs_trace::<MaybeCounted<'gc>>(),
        needs_trace::<Guard<'gc>>(),
    ]
}

#[test]
fn named_struct() {
    assert!(!needs_trace::<Plain>(), "only u32/String fields: noscan");
    assert!(needs_trace::<Linked<'static>>());
}

#[test]
fn tuple_struct() {
    assert!(!needs_trace::<PlainTuple>());
    assert!(needs_trace::<PairTuple<'static>>());
}

#[test]
fn unit_struct() {
    assert!(!needs_trace::<Marker>());
}

#[test]
fn enum_with_data() {
    assert!(needs_trace::<Value<'static>>());
    assert!(!needs_trace::<Token>());
    assert!(!needs_trace::<Never>());
}

#[test]
fn generic_struct() {
    // `extra` may hold a Gc whatever T is.
    assert!(needs_trace::<Wrapper<'static, u32>>());
    // Otherwise it follows the type argument.
    assert!(!needs_trace::<Boxed<String>>());
    assert!(needs_trace::<Boxed<Gc<'static, u32>>>());
    assert!(!needs_trace::<Fixed<u8, 4>>());
    assert!(needs_trace::<Fixed<Option<Gc<'static, u32>>, 2>>());
}

#[test]
fn skipped_fields() {
    assert!(!needs_trace::<Counted>(), "a skipped-only struct is noscan");
    assert!(needs_trace::<CountedNode<'static>>());
    assert!(needs_trace::<MaybeCounted<'static>>());
}

#[test]
fn unsafe_drop() {
    assert!(needs_trace::<Guard<'static>>());
    assert!(!needs_trace::<PlainWithDrop>());
}

#[test]
fn any_lifetime() {
    assert_eq!(needs_trace_in_scope(None), [true; 4]);
}
