// Heap objects are read by the marker thread and may be shared between mutators, so they must
// be Send + Sync: a Cell cannot be allocated.
use gc_core::{Config, Gc, Heap, Mutator, Rootable};
use std::cell::Cell;

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        Gc::new(mc, Cell::new(1u32));
    });
}
