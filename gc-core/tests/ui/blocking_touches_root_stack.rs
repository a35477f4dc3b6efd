// The root stack has no barrier because the collector scans it only while its mutator is
// outside the managed state; a blocking region is such a time, so its closure must not reach
// the root stack (`RootStack` is not `Sync`, so `&RootStack` is not `Send`).
use gc_core::{Config, Heap, Mutator, Rootable};

fn main() {
    let heap = Heap::new(Config::default()).unwrap();
    let mut m: Mutator<Rootable!['gc => ()], Rootable!['gc => u64]> =
        heap.mutator_with_stack(|_mc| ());
    m.mutate_with_stack(|mc, _root, stack| {
        mc.blocking(|| {
            stack.push(1);
        });
    });
}
