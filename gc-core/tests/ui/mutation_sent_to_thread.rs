// The mutation context (allocation cache, barrier buffer) stays on its mutator's thread.
use gc_core::{Config, Gc, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        std::thread::scope(|s| {
            s.spawn(|| {
                Gc::new(mc, 1u32);
            });
        });
    });
}
