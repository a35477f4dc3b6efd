// `#[gc(skip)]` requires a 'static field type, so a skipped field cannot hide a Gc.
use gc_core::{Config, Gc, Heap, Mutator, Rootable, Trace};

#[derive(Trace)]
struct Hidden<'gc> {
    #[gc(skip)]
    g: Gc<'gc, u32>,
}

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        let g = Gc::new(mc, 1u32);
        Gc::new(mc, Hidden { g });
    });
}
