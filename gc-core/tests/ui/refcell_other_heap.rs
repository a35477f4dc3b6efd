// A `GcRefCell` of one heap cannot be borrowed mutably with another heap's `Mutation` (whose
// barrier would not protect it): the two scopes' brands differ.
use gc_core::{Config, Gc, GcRefCell, Heap, Mutator, Rootable};

fn main() {
    let heap_a = Heap::new(Config::default()).unwrap();
    let heap_b = Heap::new(Config::default()).unwrap();
    let mut a: Mutator<Rootable!['gc => ()]> = heap_a.mutator(|_mc| ());
    let mut b: Mutator<Rootable!['gc => ()]> = heap_b.mutator(|_mc| ());
    a.mutate(|mc_a, _| {
        let cell = Gc::new(mc_a, GcRefCell::new(Vec::<Gc<u64>>::new()));
        b.mutate(|mc_b, _| {
            cell.borrow_mut(mc_b).clear();
        });
    });
}
