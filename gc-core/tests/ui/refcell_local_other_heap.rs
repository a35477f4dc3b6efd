// A local `GcRefCell` of one heap cannot hold another heap's `Gc`s: what a cell
// holds must outlive its brand, so borrowing it mutably with this heap's `Mutation` (whose
// barrier would hand the other heap's objects to this heap's marker) does not compile.
use gc_core::{Config, Gc, GcRefCell, Heap, Mutator, Rootable};

fn main() {
    let heap_a = Heap::new(Config::default()).unwrap();
    let heap_b = Heap::new(Config::default()).unwrap();
    let mut a: Mutator<Rootable!['gc => ()]> = heap_a.mutator(|_mc| ());
    let mut b: Mutator<Rootable!['gc => ()]> = heap_b.mutator(|_mc| ());
    a.mutate(|mc_a, _| {
        let x = Gc::new(mc_a, 1u64);
        b.mutate(|mc_b, _| {
            let cell = GcRefCell::new(vec![x]);
            cell.borrow_mut(mc_b).clear();
        });
    });
}
