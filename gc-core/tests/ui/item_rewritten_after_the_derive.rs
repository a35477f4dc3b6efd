// An attribute macro written below `#[derive(Trace)]` expands after the derive and may change
// the item it read: a field added (a `Gc` the impl would not trace), a field's type changed (a
// `Gc` its impl would read as the old type, through `Deref`), a variant added. The derived impl
// must not compile for a type other than the one it was made for.
use gc_core::{Gc, Trace};
use gc_test_rewrite::{add_gc_field, add_variant, retype_first_field};

#[derive(Trace)]
#[add_gc_field]
struct Added<'gc> {
    tag: u64,
    _p: std::marker::PhantomData<Gc<'gc, u64>>,
}

#[derive(Trace)]
#[retype_first_field]
struct Retyped<'gc> {
    tag: u64,
    _p: std::marker::PhantomData<Gc<'gc, u64>>,
}

#[derive(Trace)]
#[add_variant]
enum Variant<'gc> {
    A(u64),
    B(std::marker::PhantomData<Gc<'gc, u64>>),
}

fn main() {}
