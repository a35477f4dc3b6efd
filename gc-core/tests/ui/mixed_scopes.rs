// Gc handles of two different scopes (here two heaps) cannot be mixed.
use gc_core::{Config, Gc, GcCell, Heap, Mutator, Rootable};

fn main() {
    let h1 = Heap::new(Config::default()).unwrap();
    let h2 = Heap::new(Config::default()).unwrap();
    let mut m1: Mutator<Rootable!['gc => ()]> = h1.mutator(|_| ());
    let mut m2: Mutator<Rootable!['gc => ()]> = h2.mutator(|_| ());
    m1.mutate(|mc1, _| {
        let a = Gc::new(mc1, 1u32);
        m2.mutate(|mc2, _| {
            let cell = Gc::new(mc2, GcCell::new(None));
            cell.set(mc2, Some(a));
        });
    });
}
