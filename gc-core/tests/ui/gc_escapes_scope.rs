// A Gc cannot leave the mutation scope it was created in.
use gc_core::{Config, Gc, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let mut out = None;
    m.mutate(|mc, _| {
        out = Some(Gc::new(mc, 5u32));
    });
    m.collect();
    println!("{}", *out.unwrap());
}
