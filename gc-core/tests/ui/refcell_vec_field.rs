// A Rust container behind interior mutability cannot be traced soundly: the marker could walk
// the Vec while a mutator reallocates it.
use gc_core::{Gc, Trace};
use std::cell::RefCell;

#[derive(Trace)]
struct Bad<'gc> {
    items: RefCell<Vec<Gc<'gc, u32>>>,
}

fn main() {}
