// The barrier test hook can turn the write barrier off while a cycle marks, which loses
// objects: safe code must not be able to call it.
use gc_core::{Config, Heap};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    heap.debug_force_barrier(false);
}
