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
//! A long-running scope should poll [`Mutation::should_yield`] (one relaxed load) and return
//! when it is true, so that a waiting collection can start; re-enter with a new scope.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::alloc::cache::MCache;
use crate::api::root::{NoStack, Root, RootSet, RootStack, Rootable, RootsBox};
use crate::gc::heap::{IN_SCOPE, ObjAddr, Owner, Shared, in_scope_of};
use crate::gc::safepoint::OUTSIDE;
use crate::gc::trace::Trace;
use crate::telemetry::metrics::HeapStats;
use crate::util::primitive::AtomicU8;

/// The collector's view of one mutator.
///
/// | field     | touched by |
/// |-----------|------------|
/// | `state`   | atomics (see [`crate::gc::safepoint`]) |
/// | `cache`, `wb_buf` | the mutator inside its scopes; the collector with the world stopped; the mutator's `Drop` under the registry lock |
/// | `roots`   | written once before registration; the pointee is read by the collector with the world stopped |
pub(crate) struct MutatorRecord {
    pub id: usize,
    /// The cycle whose concurrent mark has scanned this mutator's roots ([`SCAN_GONE`] once
    /// the mutator is dropped). Taken by the mutator at scope entry and by the collector to
    /// scan a parked mutator (see [`crate::gc::concurrent`]).
    pub scanned: parking_lot::Mutex<u64>,
    /// Set (under `scanned`) by the owner when a scope of it leaves the managed state for a
    /// blocking region, cleared when that scope ends: while set, only the owner scans its
    /// roots (see [`crate::api::blocking`]).
    pub blocking_scope: std::sync::atomic::AtomicBool,
    pub state: AtomicU8,
    pub cache: UnsafeCell<MCache>,
    pub wb_buf: UnsafeCell<Vec<ObjAddr>>,
    pub roots: NonNull<dyn RootSet>,
}

// SAFETY: the non-`Sync` fields (`cache`, `wb_buf`, the `roots` pointee) are accessed only as the
// table above says: by one thread at a time, with the safepoint handshake or the registry lock
// ordering the accesses of different threads.
unsafe impl Sync for MutatorRecord {}
// SAFETY: as for `Sync`; the record is shared through `Arc` between the mutator and collector.
unsafe impl Send for MutatorRecord {}

/// `MutatorRecord::scanned` of a dropped mutator: never scan its roots again.
pub(crate) const SCAN_GONE: u64 = u64::MAX;

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
    pub(crate) record: &'gc MutatorRecord,
    /// Invariant in `'gc`, so brands of different scopes never unify.
    _invariant: PhantomData<std::cell::Cell<&'gc ()>>,
    _not_sync: PhantomData<*mut ()>,
}

/// Leaves the scope (and the thread-local scope list) when dropped, also on unwinding.
struct ScopeGuard<'a> {
    shared: &'a Shared,
    record: &'a MutatorRecord,
}

impl<'a> ScopeGuard<'a> {
    fn enter(shared: &'a Shared, record: &'a MutatorRecord) -> Self {
        let key = shared as *const Shared as usize;
        IN_SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            if s.contains(&key) {
                panic!(
                    "gc-core: this thread is already inside a mutation scope of this heap; \
                     nesting scopes of two mutators of one heap on one thread would deadlock \
                     the collector"
                );
            }
            s.push(key);
        });
        shared.safepoint.enter(&record.state);
        // Ordered after STW 1 by `enter`'s acquire of the restarted world (`marking` changes
        // only with the world stopped).
        if shared.marking.load(std::sync::atomic::Ordering::Relaxed) {
            let epoch = shared.mark_epoch.load(std::sync::atomic::Ordering::Relaxed);
            // SAFETY: we are the owner, at scope entry, before any user code of the scope.
            unsafe { crate::gc::concurrent::scan_roots(shared, record, epoch) };
        }
        ScopeGuard { shared, record }
    }
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        // While marking, shade what the barrier buffered before leaving, so that a pause finds
        // the buffers empty and does no shading work itself.
        if self
            .shared
            .marking
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // SAFETY: still inside the scope (state `INSIDE`), so the buffer is ours; no user
            // code runs meanwhile.
            let buf = unsafe { &mut *self.record.wb_buf.get() };
            if !buf.is_empty() {
                // Drained, not taken: the buffer keeps its capacity (no reallocation per scope).
                crate::gc::concurrent::shade(self.shared, buf.drain(..));
            }
        }
        if self
            .record
            .blocking_scope
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // SAFETY: we are the owner, inside the scope, after its user code; the flag is set.
            unsafe { crate::api::blocking::end_scope(self.shared, self.record) };
        }
        self.shared.safepoint.exit(&self.record.state);
        let key = self.shared as *const Shared as usize;
        IN_SCOPE.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(i) = s.iter().rposition(|&k| k == key) {
                s.swap_remove(i);
            }
        });
        // Mutators of this heap dropped inside the scope: now that this thread is outside
        // every scope of the heap, unregister them.
        let deferred: Vec<_> = DEFERRED_DROPS.with(|d| {
            let mut d = d.borrow_mut();
            let (mine, others) = std::mem::take(&mut *d)
                .into_iter()
                .partition(|(k, _)| *k == key);
            *d = others;
            mine
        });
        for (_, unregister) in deferred {
            unregister();
        }
    }
}

/// An unregistration left for later: a boxed [`unregister`] call.
type DeferredDrop = (usize, Box<dyn FnOnce()>);

thread_local! {
    /// Mutators dropped while this thread was inside a scope of another mutator of the same heap
    /// (by `Shared` address), unregistered when that scope ends. Unregistering takes the
    /// registry lock, which a collector holds while it waits for that very scope to end.
    static DEFERRED_DROPS: std::cell::RefCell<Vec<DeferredDrop>> =
        const { std::cell::RefCell::new(Vec::new()) };
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
        // Before the registry lock: a collector may hold it while it waits for the scope this
        // thread is in (or for the sweep whose drop glue this is).
        crate::gc::sweep::refuse_in_drop_glue("Heap::mutator");
        if in_scope_of(&owner.shared) {
            panic!(
                "gc-core: a mutator was created inside a mutation scope of the same heap; its \
                 first scope would nest in that one (deadlock). Create mutators between scopes."
            );
        }
        let roots: NonNull<RootsBox<R, S>> = NonNull::from(Box::leak(Box::new(RootsBox {
            root: None,
            stack: RootStack::new(),
        })));
        let h = &owner.shared;
        let record = Arc::new(MutatorRecord {
            id: h
                .next_mutator_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            scanned: parking_lot::Mutex::new(0),
            blocking_scope: std::sync::atomic::AtomicBool::new(false),
            state: AtomicU8::new(OUTSIDE),
            cache: UnsafeCell::new(MCache::new()),
            wb_buf: UnsafeCell::new(Vec::new()),
            roots: roots as NonNull<dyn RootSet>,
        });
        // Blocks while a stop-the-world phase holds the registry.
        h.registry.lock().push(record.clone());
        let m = Mutator {
            owner,
            record,
            roots,
            _not_send: PhantomData,
        };
        {
            let h = &*m.owner.shared;
            let _scope = ScopeGuard::enter(h, &m.record);
            let mc = Mutation::new(&m.owner, &m.record);
            let root = init(&mc);
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
        }
        m
    }

    /// Run `f` in a mutation scope with this mutator's root object.
    #[inline]
    pub fn mutate<T>(&mut self, f: impl for<'gc> FnOnce(&Mutation<'gc>, &Root<'gc, R>) -> T) -> T {
        self.mutate_with_stack(|mc, root, _stack| f(mc, root))
    }

    /// Run `f` in a mutation scope with the root object and the root stack.
    #[inline]
    pub fn mutate_with_stack<T>(
        &mut self,
        f: impl for<'gc> FnOnce(&Mutation<'gc>, &Root<'gc, R>, &RootStack<'gc, Root<'gc, S>>) -> T,
    ) -> T {
        let h = &*self.owner.shared;
        let _scope = ScopeGuard::enter(h, &self.record);
        let mc = Mutation::new(&self.owner, &self.record);
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
        f(&mc, root, stack)
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
        let _reg = self.owner.shared.registry.lock();
        // SAFETY: outside any scope (we hold `&self` and scopes need `&mut self`), holding the
        // registry lock: no collector phase is running, so nobody else touches the buffer.
        unsafe { (*self.record.wb_buf.get()).len() }
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
        if in_scope_of(&self.owner.shared) {
            // Inside a scope of another mutator of this heap: taking the registry lock could
            // wait for a collector that waits for that scope. Unregister when it ends; until
            // then this mutator stays registered, outside any scope (a parked mutator).
            let key = &*self.owner.shared as *const Shared as usize;
            DEFERRED_DROPS.with(|d| d.borrow_mut().push((key, Box::new(unregister))));
        } else {
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
        // SAFETY: we hold the registry lock, so no stop-the-world phase is running, and the
        // mutator is outside any scope (its `Drop` runs outside them; see `DEFERRED_DROPS`):
        // this thread is the only one touching the cache and barrier buffer.
        unsafe { (*record.cache.get()).flush(h, true) };
        // SAFETY: as above.
        let buf = unsafe { std::mem::take(&mut *record.wb_buf.get()) };
        // While marking, the buffered values are deletions the marker must still see.
        if h.marking.load(std::sync::atomic::Ordering::Relaxed) {
            crate::gc::concurrent::shade(h, buf);
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
    fn new(owner: &'gc Arc<Owner>, record: &'gc MutatorRecord) -> Self {
        Mutation {
            owner,
            shared: &owner.shared,
            record,
            _invariant: PhantomData,
            _not_sync: PhantomData,
        }
    }

    /// Whether the collector is waiting for this mutator to leave its scope. One relaxed load:
    /// poll it in long loops and return from the scope when it is true.
    #[inline(always)]
    pub fn should_yield(&self) -> bool {
        self.shared.safepoint.stop_requested()
    }

    /// Testing: whether a concurrent mark is in progress (constant during a scope, except
    /// across a [`Mutation::blocking`] region).
    #[doc(hidden)]
    pub fn debug_marking(&self) -> bool {
        self.shared
            .marking
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A snapshot of the heap's figures.
    pub fn stats(&self) -> HeapStats {
        HeapStats::read(self.shared)
    }

    /// The heap's owner handle (for stash handles).
    pub(crate) fn owner(&self) -> Arc<Owner> {
        self.owner.clone()
    }

    /// The allocation cache.
    ///
    /// # Safety
    /// The returned reference must not overlap another reference to the cache: callers use it
    /// for one allocation and drop it, and never call user code while holding it.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn cache(&self) -> &mut MCache {
        // SAFETY: we are inside a scope of this mutator (a `Mutation` exists only there), so the
        // collector does not touch the cache; `Mutation` is `!Sync`, so only this thread has it;
        // non-overlap is the caller's contract.
        unsafe { &mut *self.record.cache.get() }
    }

    /// The write-barrier buffer.
    ///
    /// # Safety
    /// As for [`Mutation::cache`].
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn wb_buf(&self) -> &mut Vec<ObjAddr> {
        // SAFETY: as in `cache`.
        unsafe { &mut *self.record.wb_buf.get() }
    }
}
