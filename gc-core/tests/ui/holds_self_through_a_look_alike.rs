// A field written like one of the containers the derive reads through (`Vec<Self>`) but that is
// something else (here a type alias of the user's that maps `()` to a number and the type itself
// to a `Gc`) is refused, rather than read with the type as `()` (which would make it noscan, and
// its `Gc`s freed while reachable).
use gc_core::{Gc, Trace};

trait Pick {
    type Out;
}
impl Pick for () {
    type Out = u32;
}
impl<'gc> Pick for Node<'gc> {
    type Out = Gc<'gc, u32>;
}

type Vec<T> = <T as Pick>::Out;

#[derive(Trace)]
struct Node<'gc> {
    v: Vec<Node<'gc>>,
}

fn main() {
    let _ = <Node<'static> as Trace>::NEEDS_TRACE;
}
