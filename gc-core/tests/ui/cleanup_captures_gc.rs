// A cleanup is `'static`: it cannot hold the object it cleans up after (or any `Gc`), so it can
// never reach an object that is being freed.
use gc_core::{Config, Gc, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        let obj = Gc::new(mc, 5u64);
        obj.add_cleanup(mc, move || {
            println!("{}", *obj);
        });
    });
}
