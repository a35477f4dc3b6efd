//! `Mutation::blocking`: running blocking code inside a scope without holding up the collector
//! (Go: `entersyscall` / `exitsyscall`). The protocol, and why the scope's locals stay valid, is
//! in `gc::blocking`.

use crate::api::mutator::Mutation;

impl<'gc> Mutation<'gc> {
    /// Run `f` with this mutator outside the managed state, so that a collection needing a
    /// stop-the-world pause does not wait for `f` (Go's system-call state). Use it around
    /// blocking I/O, lock waits or long native calls inside a scope, and always around a wait
    /// for another thread that may use this heap (joining scoped threads that share the
    /// scope's `Gc`s, a channel, a lock): outside `blocking`, a pause requested meanwhile
    /// waits for this scope while that thread waits for the pause, and the heap deadlocks.
    ///
    /// `f` must be `Send`, which keeps the `Mutation` and the root stack out of it: it cannot
    /// allocate or run a write barrier. It may read objects through captured `Gc`s, which stay
    /// valid for the whole scope, and write through a `&mut` into a [`GcRefCell`] borrowed
    /// before the call (the collector skips a value while it is borrowed mutably; the barrier
    /// of the borrow covers what the region writes).
    ///
    /// [`GcRefCell`]: crate::GcRefCell
    ///
    /// ```
    /// # use gc_core::*;
    /// let heap = Heap::new(Config::default()).unwrap();
    /// let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_mc| ());
    /// let n = m.mutate(|mc, _root| {
    ///     let greeting = GcStr::new(mc, "hello");
    ///     // Other mutators' collections proceed while this sleeps.
    ///     let len = mc.blocking(|| {
    ///         std::thread::sleep(std::time::Duration::from_millis(1));
    ///         greeting.as_str().len()
    ///     });
    ///     len + greeting.as_str().len()
    /// });
    /// assert_eq!(n, 10);
    /// ```
    ///
    /// A cycle that starts while `f` runs cannot complete its mark phase until this scope ends
    /// (the collector cannot see the scope's Rust locals; see the `blocking` module docs in the
    /// repository and `docs/design.md`). So block at the end of a scope, or leave the scope to
    /// block for long.
    ///
    /// # Panics
    /// Inside [`RootStack::with`](crate::RootStack::with) (the stack is borrowed, and the
    /// collector may have to read it while `f` runs).
    pub fn blocking<T>(&self, f: impl FnOnce() -> T + Send) -> T {
        let _outside = crate::gc::blocking::leave(self.shared, self.scope());
        f()
    }
}
