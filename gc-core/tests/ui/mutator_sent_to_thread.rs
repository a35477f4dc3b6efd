// A Mutator belongs to the thread that registered it.
use gc_core::{Config, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    std::thread::spawn(move || m.collect());
}
