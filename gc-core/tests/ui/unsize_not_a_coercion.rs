// `unsize!` only performs an unsizing coercion: asking it to turn a `Gc<u64>` into a `Gc<u32>`
// (a reinterpretation a raw-pointer `as` cast would allow) or into a trait object of a trait
// the type does not implement is a type error.
use gc_core::{unsize, Config, Gc, Heap, Mutator, Rootable};

trait Shape: Send + Sync {
    fn area(&self) -> f64;
}

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_mc| ());
    m.mutate(|mc, _root| {
        let n = Gc::new(mc, 1u64);
        let _small: Gc<u32> = unsize!(n => u32);
        let _shape: Gc<dyn Shape> = unsize!(n => dyn Shape);
    });
}
