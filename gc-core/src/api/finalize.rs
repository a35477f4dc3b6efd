//! Running code when objects die: cleanups ([`Gc::add_cleanup`], in the style of Go's
//! `runtime.AddCleanup`) and resurrecting finalizer queues ([`GcFinalizers`], in the style of
//! Lua's `__gc` and gc-arena's finalization). The collector's side is `gc::finalize`.

use std::fmt;
use std::marker::PhantomData;

use crate::api::cell::Slot;
use crate::api::gc::Gc;
use crate::api::mutator::Mutation;
use crate::gc::finalize::FinalizerObj;
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;
use crate::util::error::AllocError;

impl<'gc, T: ?Sized + 'gc> Gc<'gc, T> {
    /// Run `cleanup` once this object has become unreachable (Go: `runtime.AddCleanup`).
    ///
    /// The closure is `'static`, so it cannot hold the object (or any `Gc`): give it what it
    /// needs to release (a file handle, a socket, an id to forget) by value. It runs on the
    /// heap's cleanup thread, after the cycle that found the object dead, one cleanup at a
    /// time; a cleanup that panics is caught and counted (`/gccore/gc/cleanups/panics:events`)
    /// and the others still run. At heap teardown every cleanup not yet run runs, exactly once.
    /// An object waiting in a [`GcFinalizers`] queue is not dead yet: its cleanups run when it
    /// is finally freed.
    ///
    /// A cleanup must not wait for the collector (it would wait for itself at teardown): no
    /// [`Heap::collect`](crate::Heap)-style calls or mutation scopes of this heap in it; send a
    /// message to a thread that does them instead. A cleanup that holds a [`Heap`](crate::Heap)
    /// handle keeps the heap from being torn down until it runs.
    pub fn add_cleanup(self, mc: &Mutation<'gc>, cleanup: impl FnOnce() + Send + 'static) {
        mc.shared
            .finalize
            .add_cleanup(self.object(), Box::new(cleanup));
    }
}

/// A queue of objects that were found unreachable and brought back for finalization (Lua's
/// `__gc` with resurrection; gc-arena's finalization).
///
/// [`GcFinalizers::register`] an object, and when a cycle finds it unreachable it is not freed
/// but *resurrected*: pushed on the queue (which holds it, and everything it reaches, alive)
/// for the embedder to [`pop`](GcFinalizers::pop) inside a mutation scope. A finalizer may read
/// the object, store it somewhere again (it lives on) or drop it; it is freed once unreachable
/// again, without being queued a second time unless it is registered again.
///
/// * **Ordering**: every registered object found unreachable in a cycle is queued in that
///   cycle, in registration order (one exception: a registration set aside in a cycle because
///   only a resurrected object reached its queue, and found alive after all, goes to the end,
///   behind registrations made since). Objects that point to each other are queued together, so
///   a finalizer may find that an object it refers to has been finalized already; none of them
///   is freed while a queued or resurrected object reaches it.
/// * **Weak references** to an object read as dead from the cycle that queues it
///   ([`GcWeak::upgrade`](crate::GcWeak::upgrade) returns `None`, as Go's weak pointers do once
///   a finalizer is queued), even if the finalizer stores it again, and so do those to
///   everything that was unreachable with it (what only queued objects reach included, as
///   Java and Lua clear them): no weak reference hands the program an object through which it
///   could reach one being finalized. A weak reference made
///   *after* it was queued (from the popped object) is an ordinary one, whenever in the cycle
///   it is made, until the object is queued again (an object registered twice may be queued
///   twice in one cycle). An
///   [`GcEphemeronTable`](crate::GcEphemeronTable) entry keyed by it stays while it is alive.
/// * **A queue that dies** takes its registrations with it: objects registered with an
///   unreachable queue are freed without being queued. A queue that only an object resurrected
///   in the same cycle reaches (a queue kept in a finalized object) is alive: its dead
///   objects are queued on it in that cycle too.
/// * **Teardown**: objects still registered or queued when the heap is dropped are dropped
///   without finalization (a finalizer needs a mutation scope); use cleanups for what must
///   run exactly once.
///
/// ```
/// use gc_core::{Config, Gc, GcFinalizers, Heap, Mutator, Rootable};
///
/// let heap = Heap::new(Config::default()).unwrap();
/// let mut m: Mutator<Rootable!['gc => GcFinalizers<'gc, String>]> =
///     heap.mutator(|mc| GcFinalizers::new(mc));
/// m.mutate(|mc, queue| {
///     queue.register(mc, Gc::new(mc, "closing".to_string()));
/// });
/// m.collect(); // unreachable: resurrected onto the queue
/// m.mutate(|mc, queue| {
///     let dead = queue.pop(mc).expect("queued");
///     assert_eq!(dead.as_str(), "closing"); // still readable
/// });
/// ```
pub struct GcFinalizers<'gc, T> {
    inner: Gc<'gc, FinalizerObj>,
    _t: PhantomData<Queued<'gc, T>>,
}

/// What a [`GcFinalizers`] holds in phantom: `Gc<'gc, T>`s (its auto traits and brand),
/// invariantly in `T` (the `fn(T) -> T`): `register` stores objects through a shared handle and
/// `pop` hands them back as `T`s, so a queue of `T` must not be usable as a queue of a
/// supertype (`tests/ui/handle_variance.rs`).
type Queued<'gc, T> = (Gc<'gc, T>, fn(T) -> T);

impl<T> Clone for GcFinalizers<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GcFinalizers<'_, T> {}

impl<T> fmt::Debug for GcFinalizers<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcFinalizers({:p})", self.inner.object())
    }
}

impl<'gc, T: 'gc> GcFinalizers<'gc, T> {
    /// A new, empty queue.
    ///
    /// # Panics
    /// Where [`GcFinalizers::try_new`] would return an [`AllocError`] (the
    /// arena is exhausted, a heap limit refuses), with its message.
    pub fn new(mc: &Mutation<'gc>) -> Self {
        match Self::try_new(mc) {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        }
    }

    /// A new, empty queue, or an error if the arena cannot hold it.
    pub fn try_new(mc: &Mutation<'gc>) -> Result<Self, AllocError> {
        Ok(GcFinalizers {
            inner: Gc::try_new(mc, FinalizerObj::new())?,
            _t: PhantomData,
        })
    }

    /// Queue `obj` here when a cycle finds it unreachable (once per call: an object registered
    /// twice is queued twice).
    pub fn register(&self, mc: &Mutation<'gc>, obj: Gc<'gc, T>) {
        mc.shared
            .finalize
            .register(self.inner.object(), obj.object());
    }

    /// The oldest object queued and not yet popped.
    pub fn pop(&self, mc: &Mutation<'gc>) -> Option<Gc<'gc, T>> {
        let p = self.inner.pop()?;
        // SAFETY: queued objects were registered as `Gc<'gc, T>` with this queue (`register`),
        // so `p` is a `T`; the queue held it strongly until now and this scope holds it from
        // here (shaded below while marking: taking it out of the queue removes an edge the
        // marker may not have seen).
        let g: Gc<'gc, T> = unsafe { Gc::from_word(p as usize) };
        mc.shade_barrier(&g);
        mc.shared
            .finalize
            .finalizers_popped
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(g)
    }

    /// Objects queued and not yet popped.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether [`GcFinalizers::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: the one edge is to the queue object, whose own `trace` reports what it holds.
unsafe impl<T> Trace for GcFinalizers<'_, T> {
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        self.inner.trace(tracer);
    }
}

// SAFETY: the handle is the queue object's non-null address.
// `WORD_EDGE`: the word is also the one edge the handle's `trace` reports.
unsafe impl<'gc, T: 'gc> Slot<'gc> for GcFinalizers<'gc, T> {
    const WORD_EDGE: bool = true;
    fn to_word(self) -> usize {
        self.inner.to_word()
    }
    unsafe fn from_word(w: usize) -> Self {
        GcFinalizers {
            // SAFETY: forwarded contract.
            inner: unsafe { Gc::from_word(w) },
            _t: PhantomData,
        }
    }
}

// SAFETY: `None` is 0, which no queue address is.
// `WORD_EDGE`: `None` reports nothing; `Some` is the handle's word, the one edge its
// `trace` reports.
unsafe impl<'gc, T: 'gc> Slot<'gc> for Option<GcFinalizers<'gc, T>> {
    const WORD_EDGE: bool = true;
    fn to_word(self) -> usize {
        self.map_or(0, |q| q.to_word())
    }
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract; 0 is `None`.
        (w != 0).then(|| unsafe { GcFinalizers::from_word(w) })
    }
}
