// The handles written through `&self` or a copy (`GcCell::set`, `GcArray::set`, `GcVec::push`,
// `GcFinalizers::register`, `GcRefCell`, `GcHashMap`) and the handles that name their object's type
// through a `Rootable` marker (`Stash`, `StashValue`, `Mutator`) are invariant in that type. Were one covariant, a handle
// to values of type `T` could be viewed as one to a supertype `U` and store a `U` that is no
// `T`, which the original handle then reads back as a `T`. With fn pointers: a hasher of type
// `for<'a> fn(&'a String)` may be called with a local, while `fn(&'static String)` may keep
// its argument forever; storing the second where the first is expected lets safe code keep a
// local past its end (a use-after-free).
use gc_core::{
    Gc, GcArray, GcCell, GcFinalizers, GcHashMap, GcRefCell, GcVec, Mutator, Rootable, Stash,
    StashValue,
};
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

// The stash handles rebuild `Gc<Root<'gc, R>>` from the marker `R`, so their variance in `R` is
// the marker's: a user's marker covariant in a type parameter would make a covariant stash.
struct Marker<F: 'static>(std::marker::PhantomData<F>);
impl<'gc, F: 'static> Rootable<'gc> for Marker<F> {
    type Root = GcCell<'gc, Gc<'gc, Map<F>>>;
}

fn stash(s: Stash<Marker<General>>) -> Stash<Marker<OnlyStatic>> {
    s
}

fn stash_value(s: StashValue<Marker<General>>) -> StashValue<Marker<OnlyStatic>> {
    s
}

fn refcell<'r, 'gc>(c: &'r GcRefCell<'gc, Map<General>>) -> &'r GcRefCell<'gc, Map<OnlyStatic>> {
    c
}

fn hash_map<'r, 'gc>(t: &'r GcHashMap<'gc, u8, u8, General>) -> &'r GcHashMap<'gc, u8, u8, OnlyStatic> {
    t
}

fn mutator(m: Mutator<Marker<General>>) -> Mutator<Marker<OnlyStatic>> {
    m
}

fn main() {}
