// A `HashMap`'s hasher is not traced (and its drop glue runs at the sweep), so it must be
// `'static`: a hasher holding a `Gc` would dangle once the object it points to is freed.
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasher;

use gc_core::{Config, Gc, GcHashMap, Heap, Mutator, Rootable, Trace};

#[derive(Trace)]
struct Key(u64);

struct GcHasher<'gc>(Gc<'gc, Key>);
impl BuildHasher for GcHasher<'_> {
    type Hasher = DefaultHasher;
    fn build_hasher(&self) -> DefaultHasher {
        DefaultHasher::new()
    }
}

#[derive(Trace)]
struct Holder<'gc> {
    table: GcHashMap<'gc, u32, u32, GcHasher<'gc>>,
}

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let _m: Mutator<Rootable!['gc => HashMap<u32, u32, GcHasher<'gc>>]> =
        heap.mutator(|mc| HashMap::with_hasher(GcHasher(Gc::new(mc, Key(1)))));
}
