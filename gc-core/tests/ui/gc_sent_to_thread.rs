// A Gc cannot be sent to a thread that may outlive the scope.
use gc_core::{Config, Gc, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        let g = Gc::new(mc, 5u32);
        std::thread::spawn(move || println!("{}", *g));
    });
}
