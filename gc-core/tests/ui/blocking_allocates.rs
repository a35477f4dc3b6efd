// A blocking region runs with the mutator outside the managed state (the collector may flush its
// cache meanwhile), so the closure must not be able to allocate: it cannot capture the
// `Mutation`, which is not `Sync` (so `&Mutation` is not `Send`).
use gc_core::{Config, Gc, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_mc| ());
    m.mutate(|mc, _root| {
        mc.blocking(|| {
            Gc::new(mc, 1u64);
        });
    });
}
