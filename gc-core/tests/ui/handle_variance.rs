// The handles written through `&self` or a copy (`GcCell::set`, `GcArray::set`, `GcVec::push`,
// `GcFinalizers::register`) are invariant in their value type. Were one covariant, a handle
// to values of type `T` could be viewed as one to a supertype `U` and store a `U` that is no
// `T`, which the original handle then reads back as a `T`. With fn pointers: a hasher of type
// `for<'a> fn(&'a String)` may be called with a local, while `fn(&'static String)` may keep
// its argument forever; storing the second where the first is expected lets safe code keep a
// local past its end (a use-after-free).
use gc_core::{Gc, GcArray, GcCell, GcFinalizers, GcVec};
use std::collections::HashMap;

type General = for<'a> fn(&'a String);
type OnlyStatic = fn(&'static String);
type Map<F> = HashMap<u8, u8, F>;

fn cell<'r, 'gc>(c: &'r GcCell<'gc, Gc<'gc, Map<General>>>) -> &'r GcCell<'gc, Gc<'gc, Map<OnlyStatic>>> {
    c
}

fn array<'gc>(a: GcArray<'gc, Option<Gc<'gc, Map<General>>>>) -> GcArray<'gc, Option<Gc<'gc, Map<OnlyStatic>>>> {
    a
}

fn vec<'gc>(v: GcVec<'gc, Option<Gc<'gc, Map<General>>>>) -> GcVec<'gc, Option<Gc<'gc, Map<OnlyStatic>>>> {
    v
}

fn finalizers<'gc>(q: GcFinalizers<'gc, Map<General>>) -> GcFinalizers<'gc, Map<OnlyStatic>> {
    q
}

fn main() {}
