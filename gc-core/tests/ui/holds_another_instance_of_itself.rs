// A type that holds another instance of itself outside a `Gc` (`Poly<'gc, Gc<…>>` inside
// `Poly<'gc, T>`) is not read as holding itself (with `()` for it, `Poly<'gc, u64>` would be
// noscan while its `Wrap` holds a `Gc`): its `NEEDS_TRACE` stays the compiler's to work out,
// which here is a cycle.
use gc_core::{Gc, Trace};

#[derive(Trace)]
enum Poly<'gc, T> {
    Leaf(T),
    Wrap(Box<Poly<'gc, Gc<'gc, u64>>>),
}

fn main() {
    let _ = <Poly<'static, u64> as Trace>::NEEDS_TRACE;
}
