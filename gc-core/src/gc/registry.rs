//! The registry of mutators: what the collector keeps of each one, and the tokens through which
//! the owner and the collector reach a mutator's private state without `unsafe` at each use.
//!
//! | field of [`MutatorRecord`] | touched by |
//! |----------------------------|------------|
//! | `state` | atomics of the safepoint handshake ([`crate::gc::safepoint`]) |
//! | `scanned`, `blocking_scope` | under the scan lock (`scanned`): the owner at scope entry and end, the collector scanning a parked mutator |
//! | `local`: allocation cache, barrier buffer, assist debt, `shade_init` | the owner inside its scopes in the managed state, through [`InScope`]; the collector with the world stopped (every owner `OUTSIDE`), through [`StoppedWorld`](crate::gc::stw::StoppedWorld); the owner outside its scopes under the registry lock (registration and exit) |
//! | `roots` (the root object and root stack, owned by the `Mutator`) | written by the owner inside its scopes; read by the collector with the world stopped, or under the scan lock while the owner is parked |
//!
//! The safepoint handshake orders the owner's and the collector's accesses (the owner's
//! `Release` store of `OUTSIDE`, acquired by the stop; the collector's `Release` restart,
//! acquired at scope entry), which is why `local` needs no lock.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;

use parking_lot::{Mutex, MutexGuard};

use crate::alloc::cache::MCache;
use crate::gc::heap::ObjAddr;
use crate::gc::roots::RootSet;
use crate::gc::safepoint::OUTSIDE;
use crate::util::primitive::AtomicU8;

/// `MutatorRecord::scanned` of a dropped mutator: never scan its roots again.
pub(crate) const SCAN_GONE: u64 = u64::MAX;

/// A mutator's private state: touched by one thread at a time (see the module docs).
pub(crate) struct MutatorLocal {
    /// The allocation cache (Go: `mcache`).
    pub cache: MCache,
    /// Pointers recorded by the write barrier and not yet shaded (Go: `wbBuf`).
    pub wb_buf: Vec<ObjAddr>,
    /// Mark-assist debt in bytes of scan work (negative: credit); reset at every pause.
    pub assist_debt: f64,
    /// Set while the current scope is stale (it blocked across the start of a mark phase): the
    /// values stored into new objects are shaded (see [`crate::gc::blocking`]).
    pub shade_init: bool,
}

/// The collector's view of one mutator.
pub(crate) struct MutatorRecord {
    pub id: usize,
    /// The cycle whose concurrent mark has scanned this mutator's roots ([`SCAN_GONE`] once
    /// the mutator is dropped). Taken by the owner at scope entry and by the collector to scan
    /// a parked mutator (see [`crate::gc::mark::roots`]).
    pub scanned: Mutex<u64>,
    /// Set (under `scanned`) by the owner when a scope of it leaves the managed state for a
    /// blocking region, cleared when that scope ends: while set, only the owner scans its roots
    /// (see [`crate::gc::blocking`]).
    pub blocking_scope: AtomicBool,
    /// Safepoint state: `OUTSIDE` or `INSIDE` a scope.
    pub state: AtomicU8,
    /// Set by the owner when it took a span past the heap's bound with a requested cycle not
    /// started yet; taken at its next scope entry, which then waits for the start
    /// ([`crate::gc::collector::wait_for_late_start`]). Owner only.
    pub late_start: AtomicBool,
    local: UnsafeCell<MutatorLocal>,
    roots: NonNull<dyn RootSet>,
}

// SAFETY: the non-`Sync` parts (`local`, the `roots` pointee) are accessed only as the module
// docs say: by one thread at a time, with the safepoint handshake or the registry lock ordering
// the accesses of different threads; the tokens below are the only ways in.
unsafe impl Sync for MutatorRecord {}
// SAFETY: as for `Sync`; the record is shared through `Arc` between the owner and the collector.
unsafe impl Send for MutatorRecord {}

impl MutatorRecord {
    /// A record for a new mutator whose roots are at `roots` (owned by the `Mutator`, which
    /// frees them only after unregistering: see [`MutatorRecord::roots_when_parked`]).
    pub(crate) fn new(id: usize, roots: NonNull<dyn RootSet>) -> MutatorRecord {
        MutatorRecord {
            id,
            scanned: Mutex::new(0),
            blocking_scope: AtomicBool::new(false),
            state: AtomicU8::new(OUTSIDE),
            late_start: AtomicBool::new(false),
            local: UnsafeCell::new(MutatorLocal {
                cache: MCache::new(),
                wb_buf: Vec::new(),
                assist_debt: 0.0,
                shade_init: false,
            }),
            roots,
        }
    }

    /// The private state, for the owner outside its scopes while it holds the registry lock
    /// (registration, exit, test hooks): no stop-the-world phase runs meanwhile (the collector
    /// holds that lock for each one) and the owner is in no scope.
    ///
    /// # Safety
    /// The caller is the owner's thread, outside every scope of this mutator, `_registry` is the
    /// heap's registry lock, and the reference is dropped before the lock.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn local_outside_scopes<'a>(
        &'a self,
        _registry: &'a MutexGuard<'_, Vec<std::sync::Arc<MutatorRecord>>>,
    ) -> &'a mut MutatorLocal {
        // SAFETY: by the contract, neither the owner (outside its scopes, busy here) nor the
        // collector (which needs the registry lock for a stop) touches `local` meanwhile.
        unsafe { &mut *self.local.get() }
    }

    /// The private state and the roots, with the world stopped (for
    /// [`StoppedWorld`](crate::gc::stw::StoppedWorld)).
    ///
    /// # Safety
    /// The world is stopped and the caller holds the registry lock (so the record is registered:
    /// its roots are alive; and its owner is `OUTSIDE`, outside its scopes or in a blocking
    /// region: nobody else touches `local` or writes the roots), and no other reference to this record's `local` exists while the
    /// returned ones are used.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn parts_stopped(&self) -> (&mut MutatorLocal, &dyn RootSet) {
        // SAFETY: forwarded contract.
        unsafe { (&mut *self.local.get(), self.roots.as_ref()) }
    }

    /// The roots of a parked mutator, for a root scan with the world running.
    ///
    /// # Safety
    /// The caller holds the scan lock (`scanned`), which did not read [`SCAN_GONE`] (the owner
    /// marks the record gone under that lock before it frees the roots), and the owner is not
    /// inside a scope, or is at a scope's entry or end before or after its user code, and is the
    /// caller (nobody writes the roots meanwhile).
    pub(crate) unsafe fn roots_when_parked(&self) -> &dyn RootSet {
        // SAFETY: forwarded contract.
        unsafe { self.roots.as_ref() }
    }
}

/// Proof that the calling thread is the owner of a mutator and inside one of its scopes, so that
/// nothing else touches the mutator's private state: the state is reached only through this
/// token (which is `!Send` and `!Sync`, and of which at most one exists per mutator: a scope
/// needs `&mut Mutator`), and the collector reaches it only with the world stopped, that is while
/// the owner's safepoint state is `OUTSIDE`.
///
/// The owner is `OUTSIDE` while inside a scope only in a blocking region
/// ([`crate::gc::blocking`]): from `leave`'s exit of the managed state to `reenter`'s entry. No
/// `with_local` may run in that stretch: `leave` does its last access before it exits, `reenter`
/// its first after it has entered, and the region's closure cannot reach the token (it is `Send`,
/// the token is `!Sync`).
pub(crate) struct InScope<'a> {
    record: &'a MutatorRecord,
    _not_send: PhantomData<*mut ()>,
}

impl<'a> InScope<'a> {
    /// # Safety
    /// The calling thread owns `record` and has just entered a scope of it (state `INSIDE`);
    /// the token does not outlive the scope, and no other token for `record` exists meanwhile.
    pub(crate) unsafe fn new(record: &'a MutatorRecord) -> InScope<'a> {
        InScope {
            record,
            _not_send: PhantomData,
        }
    }

    /// The mutator's record.
    #[inline(always)]
    pub(crate) fn record(&self) -> &'a MutatorRecord {
        self.record
    }

    /// Run `f` on the mutator's private state. The `&mut` is unique while `f` runs: `f` is
    /// `Send`, so it cannot capture this token or a `&Mutation` (both `!Sync`) and call
    /// `with_local` again; and the user code `f` may call (drop glue of a lazy sweep, `Trace`
    /// impls) cannot reach them either: a `Mutation<'gc>` is not `'static` (so not in a static or
    /// thread-local) and cannot be stored in a heap object (`Send + Sync` only), and a scope of
    /// another mutator of the same heap on this thread panics at entry.
    #[inline(always)]
    pub(crate) fn with_local<R>(&self, f: impl FnOnce(&mut MutatorLocal) -> R + Send) -> R {
        // SAFETY: this thread is inside a scope of the mutator and in the managed state (the
        // token's invariant), so the collector leaves `local` alone; no other `&mut` to it exists
        // (see above).
        f(unsafe { &mut *self.record.local.get() })
    }

    /// The mutator's roots (read by their owner inside its scope).
    pub(crate) fn roots(&self) -> &'a dyn RootSet {
        // SAFETY: the record is registered for as long as a scope of it runs (the `Mutator`
        // unregisters in `Drop`, outside every scope), so the roots are alive.
        unsafe { self.record.roots.as_ref() }
    }
}
