// `#[gc(unsafe_drop)]` alone does not allow a Drop impl: the type must also carry the promise
// that its Drop never dereferences a Gc, an `unsafe impl UnsafeDrop` its author writes (so the
// promise is made with the `unsafe` keyword). Without it the derive's impl does not compile.
use gc_core::{Gc, Trace};

#[derive(Trace)]
#[gc(unsafe_drop)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
}

impl Drop for Node<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.next {
            let _ = &n.next;
        }
    }
}

fn main() {}
