// Returning a Gc from the scope is the same escape.
use gc_core::{Config, Gc, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let g = m.mutate(|mc, _| Gc::new(mc, 5u32));
    m.collect();
    println!("{}", *g);
}
