// A traced type may not implement Drop without `#[gc(unsafe_drop)]`: its drop glue runs when
// the sweeper frees it, and the objects its Gc fields point to may already be freed.
use gc_core::{Gc, Trace};

#[derive(Trace)]
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
