//! Mutators and mutation scopes: where user code touches the heap.
//!
//! A [`Mutator`] is one thread's registration with a heap (`!Send`: it stays on the thread that
//! made it). It owns a root object, a root stack and an allocation cache. Code reaches the heap
//! only inside a **mutation scope**:
//!
//! ```
//! # use gc_core::*;
//! let heap = Heap::new(Config::default()).unwrap();
//! let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_mc| ());
//! let sum = m.mutate(|mc, _root| {
//!     let a = Gc::new(mc, 20u64);
//!     let b = Gc::new(mc, 22u64);
//!     *a + *b
//! });
//! assert_eq!(sum, 42);
//! ```
//!
//! The closure is generic over `'gc` (`for<'gc> FnOnce(&Mutation<'gc>, …)`), so no `Gc<'gc, _>`
//! can leave it: not in the return value, not in a captured variable, not in a thread. When the
//! closure returns, the mutator is at a **safepoint**, and the collector may free anything the
//! roots do not reach.
//!
//! A long-running scope should poll [`Mutation::should_yield`] (two relaxed loads) and return
//! when it is true, so that a waiting collection can start; re-enter with a new scope.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::api::heap::Owner;
use crate::api::root::{NoStack, Root, RootStack, Rootable, RootsBox};
use crate::gc::heap::Shared;
use crate::gc::object::TypeInfo;
use crate::gc::registry::{InScope, MutatorRecord, SCAN_GONE};
use crate::gc::roots::RootSet;
use crate::gc::scope::in_scope_of;
use crate::gc::trace::Trace;
use crate::telemetry::metrics::HeapStats;
use crate::util::error::AllocError;

/// One thread's handle on a heap: a root object of type `Root<'gc, R>` and a root stack of
/// `Root<'gc, S>` values. Heap access happens in [`Mutator::mutate`] scopes; between scopes the
/// mutator is at a safepoint and the collector may run.
///
/// ```
/// # use gc_core::*;
/// let heap = Heap::new(Config::default()).unwrap();
/// let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_mc| ());
/// let sum = m.mutate(|mc, _root| *Gc::new(mc, 20u64) + *Gc::new(mc, 22u64));
/// assert_eq!(sum, 42);
/// ```
pub struct Mutator<R, S = NoStack>
where
    R: for<'gc> Rootable<'gc>,
    S: for<'gc> Rootable<'gc>,
{
    owner: Arc<Owner>,
    record: Arc<MutatorRecord>,
    roots: NonNull<RootsBox<R, S>>,
    /// `!Send`: the allocation cache and root stack belong to this thread.
    _not_send: PhantomData<*mut ()>,
}

/// The context of a mutation scope: allocation, write barriers, polls. Handed out as
/// `&Mutation<'gc>`; not `Send`/`Sync`, so it never leaves the mutator's thread.
pub struct Mutation<'gc> {
    owner: &'gc Arc<Owner>,
    pub(crate) shared: &'gc Shared,
    /// Proof that this thread is inside a scope of the mutator (`!Send`, `!Sync`).
    scope: InScope<'gc>,
    /// Invariant in `'gc`, so brands of different scopes never unify.
    _invariant: PhantomData<std::cell::Cell<&'gc ()>>,
}

/// A running scope: entered on creation, left when dropped (also on unwinding), after which,
/// if it was the thread's outermost scope, the work deferred past the thread's scopes runs
/// ([`defer_past_scopes`]: unregistering mutators dropped inside it, joining a heap's collector).
struct ScopeGuard<'a> {
    mc: Mutation<'a>,
}

impl<'a> ScopeGuard<'a> {
    fn enter(owner: &'a Arc<Owner>, record: &'a MutatorRecord) -> Self {
        let shared = &*owner.shared;
        // SAFETY: called by `Mutator`'s scope methods, which take `&mut self` (so the owner, on
        // its own thread — `Mutator` is `!Send` — outside its scopes); the token lives in the
        // `Mutation` this guard owns, and `drop` ends the scope.
        let scope = unsafe { crate::gc::scope::enter(shared, record) };
        ScopeGuard {
            mc: Mutation {
                owner,
                shared,
                scope,
                _invariant: PhantomData,
            },
        }
    }
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        let h = self.mc.shared;
        crate::gc::scope::exit(h, &self.mc.scope);
        // Work deferred inside this scope or scopes nested in it (it was the thread's
        // outermost): now that this thread is outside every scope, run it. Each piece runs even
        // if one before it panics (a root's `Drop`); the first panic then goes on.
        let key = h as *const Shared as usize;
        let deferred: Vec<_> = DEFERRED_WORK.with(|d| {
            let mut d = d.borrow_mut();
            let (mine, others) = std::mem::take(&mut *d)
                .into_iter()
                .partition(|(k, _)| *k == key);
            *d = others;
            mine
        });
        // (Not resumed while already unwinding out of the scope: a second panic would abort.)
        let mut first = crate::util::unwind::FirstPanic::default();
        for (_, work) in deferred {
            first.run(work);
        }
        first.resume();
    }
}

/// Work left for when the thread has left its outermost scope, with that scope's heap.
type DeferredWork = (usize, Box<dyn FnOnce()>);

thread_local! {
    /// Work deferred while this thread was inside a scope, with the heap of its outermost scope
    /// (by `Shared` address); run when that scope ends ([`defer_past_scopes`]).
    static DEFERRED_WORK: std::cell::RefCell<Vec<DeferredWork>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// If this thread is inside a mutation scope (of any heap), keep `work` for when it has left
/// its outermost scope and return `None`; else return `work` to be done now. For work that
/// waits for a heap in a way a scope must not: unregistering a mutator takes its heap's registry
/// lock, which a pause holds while it waits for every scope of that heap (this thread's, or a
/// thread's that waits for a pause of the heap this thread is in a scope of); joining a heap's
/// collector thread waits for its teardown, whose cleanups may wait for another heap.
pub(crate) fn defer_past_scopes(work: Box<dyn FnOnce()>) -> Option<Box<dyn FnOnce()>> {
    match crate::gc::scope::outermost_scope() {
        Some(outer) => {
            DEFERRED_WORK.with(|d| d.borrow_mut().push((outer, work)));
            None
        }
        None => Some(work),
    }
}

impl<R, S> Mutator<R, S>
where
    R: for<'gc> Rootable<'gc>,
    S: for<'gc> Rootable<'gc>,
    for<'gc> Root<'gc, R>: Trace + Sized,
    for<'gc> Root<'gc, S>: Trace + Sized,
{
    pub(crate) fn new(
        owner: Arc<Owner>,
        init: impl for<'gc> FnOnce(&Mutation<'gc>) -> Root<'gc, R>,
    ) -> Self {
        match Self::try_new(owner, |mc| Ok::<_, std::convert::Infallible>(init(mc))) {
            Ok(m) => m,
        }
    }

    /// [`Mutator::new`] with a fallible `init`: on its error the mutator is unregistered
    /// (dropped) and the error returned.
    pub(crate) fn try_new<E>(
        owner: Arc<Owner>,
        init: impl for<'gc> FnOnce(&Mutation<'gc>) -> Result<Root<'gc, R>, E>,
    ) -> Result<Self, E> {
        // Before the registry lock: a collector may hold it while it waits for the scope this
        // thread is in (or for the sweep whose drop glue this is).
        crate::gc::scope::before_waiting_for(
            &owner.shared,
            "Heap::mutator",
            "its first scope would nest in that one",
        );
        let roots: NonNull<RootsBox<R, S>> = NonNull::from(Box::leak(Box::new(RootsBox {
            root: None,
            stack: RootStack::new(),
        })));
        let h = &owner.shared;
        let id = h
            .next_mutator_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let record = Arc::new(MutatorRecord::new(id, roots as NonNull<dyn RootSet>));
        // Blocks while a stop-the-world phase holds the registry.
        h.registry.lock().push(record.clone());
        let m = Mutator {
            owner,
            record,
            roots,
            _not_send: PhantomData,
        };
        let failed = 'scope: {
            let scope = ScopeGuard::enter(&m.owner, &m.record);
            let root = match init(&scope.mc) {
                Ok(root) => root,
                // The scope ends with this block, before the mutator unregisters (dropped).
                Err(e) => break 'scope Some(e),
            };
            // SAFETY: `Root<'x, R>` and `Root<'static, R>` are the same type but for the
            // lifetime, so they have the same layout; the erased value is only ever handed out
            // again as `&Root<'gc, R>` for a fresh scope's `'gc` (see `mutate`), and is stored
            // before the scope ends, so the collector sees it from the first safepoint on.
            let erased: Root<'static, R> = unsafe {
                let r = std::ptr::read(&root as *const Root<'_, R> as *const Root<'static, R>);
                std::mem::forget(root);
                r
            };
            // SAFETY: we are inside a scope of this mutator, so the collector is not reading the
            // roots; `roots` is uniquely owned by this mutator.
            unsafe { (*m.roots.as_ptr()).root = Some(erased) };
            None
        };
        match failed {
            None => Ok(m),
            Some(e) => Err(e),
        }
    }

    /// Run `f` in a mutation scope with this mutator's root object.
    ///
    /// # Panics
    ///
    /// If this thread is already inside a scope of the same heap (with another mutator), runs
    /// drop glue for the sweeper, or is inside a scope of another heap that nests the two heaps
    /// in the order opposite to one seen before (`docs/api.md`, §6: two threads nesting in
    /// both orders deadlock).
    #[inline]
    pub fn mutate<T>(&mut self, f: impl for<'gc> FnOnce(&Mutation<'gc>, &Root<'gc, R>) -> T) -> T {
        self.mutate_with_stack(|mc, root, _stack| f(mc, root))
    }

    /// Run `f` in a mutation scope with the root object and the root stack.
    ///
    /// # Panics
    ///
    /// As [`Mutator::mutate`].
    #[inline]
    pub fn mutate_with_stack<T>(
        &mut self,
        f: impl for<'gc> FnOnce(&Mutation<'gc>, &Root<'gc, R>, &RootStack<'gc, Root<'gc, S>>) -> T,
    ) -> T {
        let scope = ScopeGuard::enter(&self.owner, &self.record);
        // SAFETY: `roots` is alive until `Drop`, and the collector reads it only at safepoints,
        // never while this scope runs. The lifetime cast is the branding argument: the
        // references handed out are valid for this scope only, and the `'gc` brand is fresh
        // (`f` is generic over it), so nothing read through them outlives the scope.
        let (root, stack) = unsafe {
            let b = &*self.roots.as_ptr();
            let root = b
                .root
                .as_ref()
                .expect("root is set when the mutator is created");
            (
                &*(root as *const Root<'static, R>).cast::<Root<'_, R>>(),
                &*(&raw const b.stack).cast::<RootStack<'_, Root<'_, S>>>(),
            )
        };
        f(&scope.mc, root, stack)
    }

    /// Run a full collection (and its sweep) and wait for it. Must be called between scopes,
    /// which `&mut self` guarantees for this mutator.
    pub fn collect(&mut self) {
        crate::gc::collector::collect(&self.owner.shared);
    }

    /// The heap this mutator belongs to.
    pub fn heap(&self) -> crate::Heap {
        crate::Heap {
            owner: self.owner.clone(),
        }
    }

    /// This mutator's id (unique within its heap).
    pub fn id(&self) -> usize {
        self.record.id
    }

    /// Pointers recorded by this mutator's write barrier and not yet shaded (test hook).
    #[doc(hidden)]
    pub fn debug_barrier_buffer_len(&self) -> usize {
        assert!(
            !in_scope_of(&self.owner.shared),
            "gc-core: debug_barrier_buffer_len inside a mutation scope of the same heap would \
             wait for the collector that waits for that scope"
        );
        let reg = self.owner.shared.registry.lock();
        // SAFETY: the owner's thread (`Mutator` is `!Send`), outside its scopes (they need
        // `&mut self`; a scope of another mutator of this heap was refused above), holding the
        // registry lock.
        unsafe { self.record.local_outside_scopes(&reg) }
            .wb_buf
            .len()
    }
}

impl<R, S> Drop for Mutator<R, S>
where
    R: for<'gc> Rootable<'gc>,
    S: for<'gc> Rootable<'gc>,
{
    fn drop(&mut self) {
        let (owner, record, roots) = (self.owner.clone(), self.record.clone(), self.roots);
        let unregister = move || {
            // SAFETY: `roots` came from `Box::leak` in `new` and is dropped only here, once.
            unsafe { unregister(&owner.shared, &record, roots) }
        };
        // Inside a scope (of another mutator of this heap, or of another heap), unregistered
        // when the thread has left its last scope; until then this mutator stays registered,
        // outside any scope (a parked mutator).
        if let Some(unregister) = defer_past_scopes(Box::new(unregister)) {
            // The registry lock: a pause holds it while it waits for every scope of the heap,
            // and for a sweep whose drop glue this may be (verify mode sweeps in the pause).
            crate::gc::sweep::refuse_in_drop_glue("a Mutator's drop");
            unregister();
        }
    }
}

/// Unregister a mutator and free its roots (its `Drop`, on its own thread, outside every scope
/// of its heap).
///
/// # Safety
///
/// `roots` is the mutator's root box (from `Box::leak`), not yet freed, and `record` points to
/// it; the caller never uses either again.
unsafe fn unregister<R, S>(h: &Shared, record: &Arc<MutatorRecord>, roots: NonNull<RootsBox<R, S>>)
where
    R: for<'gc> Rootable<'gc>,
    S: for<'gc> Rootable<'gc>,
{
    {
        let mut reg = h.registry.lock();
        let marking = h.mark.marking.load(std::sync::atomic::Ordering::Relaxed);
        let buf = {
            // SAFETY: the owner's `Drop`, on its thread, outside every scope of the heap (see
            // `DEFERRED_WORK`), holding the registry lock.
            let local = unsafe { record.local_outside_scopes(&reg) };
            local.cache.flush(&h.mheap, marking, true);
            std::mem::take(&mut local.wb_buf)
        };
        // While marking, the buffered values are deletions the marker must still see.
        if marking {
            crate::gc::mark::roots::shade(h, buf);
        }
        reg.retain(|r| !Arc::ptr_eq(r, record));
    }
    // No scan of these roots may start now, and none is running once we hold the lock.
    *record.scanned.lock() = SCAN_GONE;
    // SAFETY: by the contract, `roots` is the live root box; the record pointing to it is no
    // longer registered, so the collector cannot read it any more.
    drop(unsafe { Box::from_raw(roots.as_ptr()) });
}

impl<'gc> Mutation<'gc> {
    /// Whether the collector is waiting for this mutator to leave its scope, or a cycle is due
    /// whose start is late while this mutator allocates past the heap's bound (its next scope
    /// then waits for the start). Two relaxed loads: poll it in long loops and return from the
    /// scope when it is true.
    #[inline(always)]
    pub fn should_yield(&self) -> bool {
        self.shared.safepoint.stop_requested()
            || self
                .scope
                .record()
                .late_start
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Start a full collection now, without leaving the scope (what a `(gc)` or
    /// `collectgarbage()` builtin of an interpreter calls): the cycle is requested at once and
    /// counted as forced, like [`Heap::collect`]'s, but this call does not wait for it. Its
    /// stop-the-world phases wait for this scope to end, as every stop does: keep polling
    /// [`Mutation::should_yield`] (it turns true when the collector is ready) and leave the
    /// scope then. A cycle already marking completes first; the requested one starts after it.
    ///
    /// [`Heap::collect`]: crate::Heap::collect
    pub fn request_collect(&self) {
        crate::gc::collector::request_forced_cycle(self.shared);
    }

    /// Testing: whether a concurrent mark is in progress (constant during a scope, except
    /// across a [`Mutation::blocking`] region).
    #[doc(hidden)]
    pub fn debug_marking(&self) -> bool {
        self.shared
            .mark
            .marking
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A snapshot of the heap's figures.
    pub fn stats(&self) -> HeapStats {
        crate::gc::report::heap_stats(self.shared)
    }

    /// The heap's owner handle (for stash handles).
    pub(crate) fn owner(&self) -> Arc<Owner> {
        self.owner.clone()
    }

    /// Allocate an object of type `info` and `bytes` bytes from this mutator's cache, in size
    /// class `class` (computed at compile time for sized types), or as a large object when
    /// `class` is `None`. Also says whether the memory is known to be zero (a large object in
    /// pages fresh from the OS: see `gc::malloc::malloc`).
    #[inline(always)]
    pub(crate) fn alloc_raw(
        &self,
        info: &'static TypeInfo,
        class: Option<usize>,
        bytes: usize,
    ) -> Result<(usize, bool), AllocError> {
        crate::gc::malloc::malloc(self.shared, &self.scope, info, class, bytes)
    }

    /// The allocation fast path: a slot of size class `class` for type `info` from this
    /// mutator's cache, or `None` if the cache has none for it or (`shade`: the value to store
    /// holds pointers) this scope must shade what it stores into new objects; the caller then
    /// takes [`Mutation::alloc_raw`] and [`Mutation::shade_init`]. Inlined into every
    /// allocation, so that the common case is a few instructions in the caller and the rest
    /// (refills, shading, errors) one call out of line.
    #[inline(always)]
    pub(crate) fn alloc_fast(
        &self,
        info: &'static TypeInfo,
        class: usize,
        shade: bool,
    ) -> Option<usize> {
        if shade && crate::gc::blocking::must_shade_init(&self.scope) {
            return None;
        }
        crate::gc::malloc::alloc_small_fast(&self.scope, info.tag(), class)
    }

    /// The write barrier, before `old` is replaced by `new` in a heap slot: while marking, a
    /// slot type whose word names its one pointer ([`Slot::WORD_EDGE`](crate::Slot)) has the
    /// two words' pointers appended to the buffer; any other is traced into it.
    #[inline(always)]
    pub(crate) fn write_barrier<T: crate::Slot<'gc>>(&self, old: T, new: T) {
        if T::NEEDS_TRACE && T::WORD_EDGE {
            crate::gc::barrier::write_words(
                self.shared,
                &self.scope,
                T::word_edge(old.to_word()),
                T::word_edge(new.to_word()),
            );
        } else {
            crate::gc::barrier::write(self.shared, &self.scope, &old, &new);
        }
    }

    /// The barrier of a value put into or taken out of a container without slots (ephemeron
    /// tables, finalizer queues): shade it while marking.
    #[inline(always)]
    pub(crate) fn shade_barrier<T: Trace + ?Sized>(&self, value: &T) {
        crate::gc::barrier::shade(self.shared, &self.scope, value);
    }

    /// Shade the pointers in `value`, about to be stored into a new object, if this scope is
    /// stale (it blocked across the start of a mark phase: see `gc::blocking`).
    #[inline(always)]
    pub(crate) fn shade_init<T: Trace + ?Sized>(&self, value: &T) {
        if T::NEEDS_TRACE && crate::gc::blocking::must_shade_init(&self.scope) {
            crate::gc::blocking::shade_init(self.shared, value);
        }
    }

    /// The barrier of a `GcRefCell` being mutably borrowed (`value`: its contents): shade
    /// them if this cycle's mark phase has not yet (`shaded_in`: the last cycle it did).
    #[inline(always)]
    pub(crate) fn snapshot_barrier<T: Trace + ?Sized>(
        &self,
        shaded_in: &std::sync::atomic::AtomicU64,
        value: &T,
    ) {
        if T::NEEDS_TRACE {
            crate::gc::barrier::snapshot(self.shared, shaded_in, value);
        }
    }

    /// The token proving this thread is inside the scope (for the collector's side of
    /// allocation, barriers and blocking regions).
    #[inline(always)]
    pub(crate) fn scope(&self) -> &InScope<'gc> {
        &self.scope
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Config, Heap, Mutator, Rootable};

    type Unit = Rootable!['gc => ()];

    /// A mutator dropped inside nested scopes of two other heaps is unregistered when the
    /// outermost scope ends, not the innermost: unregistering takes its heap's registry lock,
    /// which must not be waited for from inside any scope.
    #[test]
    fn a_mutator_dropped_in_nested_scopes_goes_when_the_outermost_ends() {
        let (a, c, x) = (
            Heap::new(Config::default()).unwrap(),
            Heap::new(Config::default()).unwrap(),
            Heap::new(Config::default()).unwrap(),
        );
        let mut ma: Mutator<Unit> = a.mutator(|_| ());
        let mut mc: Mutator<Unit> = c.mutator(|_| ());
        let mut mx = Some(x.mutator::<Unit>(|_| ()));
        let registered = || x.shared().registry.lock().len();
        assert_eq!(registered(), 1);
        ma.mutate(|_, _| {
            mc.mutate(|_, _| drop(mx.take()));
            // The inner scope has ended, the outer goes on: still registered.
            assert_eq!(registered(), 1);
        });
        assert_eq!(registered(), 0);
    }

    /// A concurrent mark phase scans parked mutators' roots from a copy of the registry, taken
    /// without holding its lock: a mutator dropped meanwhile must read as gone to that copy
    /// (its record's scan mark `SCAN_GONE`, set under the scan lock before the roots are
    /// freed), or the scan reads freed roots.
    #[test]
    fn a_dropped_mutator_reads_as_gone_to_a_copy_of_the_registry() {
        use crate::gc::registry::SCAN_GONE;
        let heap = Heap::new(Config::default()).unwrap();
        let m: Mutator<Unit> = heap.mutator(|_| ());
        let copy = heap.shared().registry.lock()[0].clone();
        assert_ne!(*copy.scanned.lock(), SCAN_GONE);
        drop(m);
        assert!(heap.shared().registry.lock().is_empty());
        assert_eq!(*copy.scanned.lock(), SCAN_GONE);
    }
}
