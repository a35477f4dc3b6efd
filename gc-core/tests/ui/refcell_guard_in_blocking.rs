// A `GcRefCell`'s mutable borrow holds the scope's `Mutation` (its release may have to shade the
// value), so it cannot be moved into a blocking region, which runs outside the managed state.
use gc_core::{Config, Gc, GcRefCell, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_mc| ());
    m.mutate(|mc, _root| {
        let cell = Gc::new(mc, GcRefCell::new(vec![1u64]));
        let mut guard = cell.borrow_mut(mc);
        mc.blocking(move || guard.push(2));
    });
}
