//! The derive's output compiles and traces the right fields, checked against a minimal stand-in
//! for gc-core (so this crate's tests need not build gc-core). `extern crate self as gc_core;`
//! makes the generated `::gc_core::...` paths resolve to the items below, as gc-core does for
//! itself.

#![allow(dead_code)]

extern crate self as gc_core;

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;

use gc_derive::Trace;

/// Records which GC pointers were reported.
#[derive(Default)]
pub struct Tracer {
    seen: Vec<u32>,
}

/// Same shape as gc-core's trait.
///
/// # Safety
/// Report every `Gc`.
pub unsafe trait Trace {
    const NEEDS_TRACE: bool = true;
    const POINTER_WORDS: Option<u64> = if Self::NEEDS_TRACE { None } else { Some(0) };
    const __DERIVE_KIT: DeriveKit = DeriveKit;
    fn trace(&self, tracer: &mut Tracer);
}

/// Same as gc-core's: the promise a `#[gc(unsafe_drop)]` type makes.
///
/// # Safety
/// The type's `Drop` never dereferences a `Gc`.
pub unsafe trait UnsafeDrop {}

/// Same as gc-core's: the derive's helpers, reached through the trait.
#[derive(Clone, Copy)]
pub struct DeriveKit;

impl DeriveKit {
    pub const fn unsafe_drop<T: UnsafeDrop + ?Sized>(self) {}
    pub const fn add_field(
        self,
        words: Option<u64>,
        field: Option<u64>,
        offset: usize,
    ) -> Option<u64> {
        add_field_pointer_words(words, field, offset)
    }
}

/// Same as gc-core's: `field`'s pointer words at byte `offset` added to `words`.
const fn add_field_pointer_words(
    words: Option<u64>,
    field: Option<u64>,
    offset: usize,
) -> Option<u64> {
    match (words, field) {
        (Some(w), Some(0)) => Some(w),
        (Some(w), Some(f)) if offset.is_multiple_of(8) && offset / 8 < 64 => {
            if f.leading_zeros() < (offset / 8) as u32 {
                None
            } else {
                Some(w | f << (offset / 8))
            }
        }
        _ => None,
    }
}

/// A word the marker could read as a pointer (gc-core's `Gc` is one).
pub struct Word(u64);

unsafe impl Trace for Word {
    const POINTER_WORDS: Option<u64> = Some(1);
    fn trace(&self, tracer: &mut Tracer) {
        tracer.seen.push(self.0 as u32);
    }
}

/// Makes `Gc` invariant in `'gc`, like gc-core's.
type Invariant<'gc> = fn(&'gc ()) -> &'gc ();

/// Stand-in for `gc_core::Gc`: invariant in `'gc`, reports its id when traced.
#[derive(Clone, Copy)]
pub struct Gc<'gc, T> {
    id: u32,
    _marker: PhantomData<(Invariant<'gc>, T)>,
}

fn gc<'gc, T>(id: u32) -> Gc<'gc, T> {
    Gc {
        id,
        _marker: PhantomData,
    }
}

unsafe impl<T> Trace for Gc<'_, T> {
    fn trace(&self, tracer: &mut Tracer) {
        tracer.seen.push(self.id);
    }
}

macro_rules! leaf {
    ($($t:ty),*) => {$(
        unsafe impl Trace for $t {
            const NEEDS_TRACE: bool = false;
            fn trace(&self, _: &mut Tracer) {}
        }
    )*};
}
leaf!(u8, u32, u64, String);

unsafe impl<T: Trace> Trace for Option<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, tracer: &mut Tracer) {
        if let Some(v) = self {
            v.trace(tracer);
        }
    }
}

unsafe impl<T: Trace> Trace for Vec<T> {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, tracer: &mut Tracer) {
        for v in self {
            v.trace(tracer);
        }
    }
}

unsafe impl<T: Trace> Trace for [T] {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, tracer: &mut Tracer) {
        for v in self {
            v.trace(tracer);
        }
    }
}

unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    const NEEDS_TRACE: bool = T::NEEDS_TRACE;
    fn trace(&self, tracer: &mut Tracer) {
        for v in self {
            v.trace(tracer);
        }
    }
}

fn traced<T: Trace>(v: &T) -> Vec<u32> {
    let mut t = Tracer::default();
    v.trace(&mut t);
    t.seen
}

#[derive(Trace)]
struct Named<'gc> {
    a: Gc<'gc, u8>,
    n: u32,
    b: Option<Gc<'gc, Named<'gc>>>,
}

#[derive(Trace)]
struct Tuple<'gc>(u8, Gc<'gc, u8>, Gc<'gc, u8>);

#[derive(Trace)]
struct Unit;

#[derive(Trace)]
struct Plain {
    a: u32,
    s: String,
}

#[derive(Trace)]
enum Enum<'gc> {
    Empty,
    One(Gc<'gc, u8>),
    Two {
        x: Gc<'gc, u8>,
        #[gc(skip)]
        hidden: u64,
        tracer: Gc<'gc, u8>,
    },
}

#[derive(Trace)]
enum NoData {
    A,
    B,
}

#[derive(Trace)]
enum Never {}

#[derive(Trace)]
struct Generic<'gc, T, const N: usize>
where
    T: Clone,
{
    items: [T; N],
    link: Option<Gc<'gc, u8>>,
}

#[derive(Trace)]
struct Skipped {
    #[gc(skip)]
    counter: AtomicU64,
}

#[derive(Trace)]
struct SkipGeneric<T> {
    #[gc(skip)]
    t: T,
    n: u8,
}

#[derive(Trace)]
#[gc(unsafe_drop)]
struct WithDrop<'gc> {
    g: Gc<'gc, u8>,
}

// SAFETY: its `Drop` does nothing.
unsafe impl UnsafeDrop for WithDrop<'_> {}

impl Drop for WithDrop<'_> {
    fn drop(&mut self) {}
}

// Field types coming from a `macro_rules!` invocation keep working (hygiene of `self`/`tracer`).
macro_rules! make_struct {
    ($name:ident, $field:ident : $ty:ty) => {
        #[derive(Trace)]
        struct $name<'gc> {
            $field: $ty,
            other: Gc<'gc, u8>,
        }
    };
}
make_struct!(FromMacro, inner: Option<Gc<'gc, u8>>);

#[repr(C)]
#[derive(Trace)]
struct Words {
    a: u64,
    b: Word,
    #[gc(skip)]
    c: Vec<u64>,
    d: [u8; 8],
    e: Word,
}

#[repr(C)]
#[derive(Trace)]
struct WordInArray {
    a: u32,
    b: [Word; 1],
}

#[repr(C)]
#[derive(Trace)]
struct WordAfter64 {
    pad: [u64; 64],
    w: Word,
}

#[repr(C)]
#[derive(Trace)]
struct Nested {
    pad: u64,
    words: Words,
}

#[test]
fn pointer_words_are_the_traced_fields_words() {
    // Word fields at words 1 and 6 (after the skipped `Vec` of three words and 8 bytes).
    const { assert!(matches!(<Words as Trace>::POINTER_WORDS, Some(0b100_0010))) };
    // A nested struct's words move with its offset.
    const {
        assert!(matches!(
            <Nested as Trace>::POINTER_WORDS,
            Some(0b1000_0100)
        ))
    };
    // A field with no pointer words of its own (an array here) makes the whole type `None`;
    // so does a word past the 64th.
    const { assert!(<WordInArray as Trace>::POINTER_WORDS.is_none()) };
    const { assert!(<WordAfter64 as Trace>::POINTER_WORDS.is_none()) };
    // Enums are traced by their `trace`.
    const { assert!(<Enum<'static> as Trace>::POINTER_WORDS.is_none()) };
    const { assert!(matches!(<Plain as Trace>::POINTER_WORDS, Some(0))) };
}

#[test]
fn named_struct() {
    let v = Named {
        a: gc(1),
        n: 7,
        b: Some(gc(2)),
    };
    assert_eq!(traced(&v), [1, 2]);
    const { assert!(<Named<'static> as Trace>::NEEDS_TRACE) };
}

#[test]
fn tuple_struct() {
    assert_eq!(traced(&Tuple(0, gc(3), gc(4))), [3, 4]);
    const { assert!(<Tuple<'static> as Trace>::NEEDS_TRACE) };
}

#[test]
fn unit_and_plain_structs_are_noscan() {
    assert_eq!(traced(&Unit), [] as [u32; 0]);
    const { assert!(!<Unit as Trace>::NEEDS_TRACE) };
    const { assert!(!<Plain as Trace>::NEEDS_TRACE) };
}

#[test]
fn enum_variants() {
    assert_eq!(traced(&Enum::Empty), [] as [u32; 0]);
    assert_eq!(traced(&Enum::One(gc(5))), [5]);
    let two = Enum::Two {
        x: gc(6),
        hidden: 0,
        tracer: gc(7),
    };
    assert_eq!(traced(&two), [6, 7]);
    const { assert!(<Enum<'static> as Trace>::NEEDS_TRACE) };
    const { assert!(!<NoData as Trace>::NEEDS_TRACE) };
    const { assert!(!<Never as Trace>::NEEDS_TRACE) };
    assert_eq!(traced(&NoData::B), [] as [u32; 0]);
}

#[test]
fn generics() {
    let v: Generic<'_, Gc<'_, u8>, 2> = Generic {
        items: [gc(8), gc(9)],
        link: Some(gc(10)),
    };
    assert_eq!(traced(&v), [8, 9, 10]);
    const { assert!(<Generic<'static, u32, 3> as Trace>::NEEDS_TRACE) };
}

#[test]
fn skip() {
    assert_eq!(
        traced(&Skipped {
            counter: AtomicU64::new(0)
        }),
        [] as [u32; 0]
    );
    const { assert!(!<Skipped as Trace>::NEEDS_TRACE) };
    const { assert!(!<SkipGeneric<String> as Trace>::NEEDS_TRACE) };
    assert_eq!(
        traced(&SkipGeneric {
            t: String::new(),
            n: 1
        }),
        [] as [u32; 0]
    );
}

#[test]
fn unsafe_drop() {
    assert_eq!(traced(&WithDrop { g: gc(11) }), [11]);
}

#[test]
fn macro_generated_fields() {
    let v = FromMacro {
        inner: Some(gc(12)),
        other: gc(13),
    };
    assert_eq!(traced(&v), [12, 13]);
}

/// Works for any `'gc`, not only `'static`, when nothing is skipped.
fn trace_in_scope<'gc>(g: Gc<'gc, u8>) -> Vec<u32> {
    traced(&Named {
        a: g,
        n: 0,
        b: None,
    })
}

#[test]
fn non_static_lifetimes() {
    assert_eq!(trace_in_scope(gc(14)), [14]);
}

#[derive(Trace)]
struct Unsized<T: ?Sized> {
    n: u32,
    tail: T,
}

#[derive(Trace)]
struct SliceTail<'gc> {
    n: u32,
    tail: [Gc<'gc, u8>],
}

#[derive(Trace)]
struct UnsizedWhere<T>
where
    T: ?Sized,
{
    tail: T,
}

#[test]
fn a_struct_with_an_unsized_parameter_is_traced_by_its_trace() {
    let v = Unsized {
        n: 1,
        tail: [gc::<u8>(5), gc(6)],
    };
    assert_eq!(traced(&v), [5, 6]);
    assert_eq!(traced(&UnsizedWhere { tail: Word(7) }), [7]);
    // No pointer words, even where the parameter is a word.
    const { assert!(<UnsizedWhere<Word> as Trace>::POINTER_WORDS.is_none()) };
    const { assert!(<SliceTail<'static> as Trace>::POINTER_WORDS.is_none()) };
}
