//! Allocation as the collector sees it (Go: `mallocgc`): the allocator hands out the slot, and
//! reports what it took; here that report becomes a cycle request when `heap_live` crosses the
//! trigger, a mark assist while marking, and a trigger update when mapped memory grew under a
//! memory limit.

use std::sync::atomic::Ordering;

use crate::alloc::mheap::TookSpan;
use crate::alloc::span_class::TypeTag;
use crate::gc::heap::Shared;
use crate::gc::object::TypeInfo;
use crate::gc::registry::InScope;
use crate::gc::sweep::LazySweeper;
use crate::util::error::AllocError;

/// Allocate an object of type `info` and `bytes` bytes, in size class `class` from the scope's
/// cache, or as a large object (`class` is `None`). Also says whether the object's memory is
/// known to be zero: only a large object's can be, in a span of pages never touched or released
/// to the OS since (see `Arena::alloc_pages_zeroed`); its maker may then skip writing zeros.
#[inline(always)]
pub(crate) fn malloc(
    h: &Shared,
    scope: &InScope<'_>,
    info: &'static TypeInfo,
    class: Option<usize>,
    bytes: usize,
) -> Result<(usize, bool), AllocError> {
    let tag = info.tag();
    match class {
        Some(class) => alloc_small(h, scope, tag, class).map(|addr| (addr, false)),
        None => alloc_large(h, scope, bytes, tag),
    }
}

/// Allocate a slot of type `tag` in size class `class` from the scope's cache: the fast path is
/// one window operation; the slow path refills the cache.
#[inline(always)]
pub(crate) fn alloc_small(
    h: &Shared,
    scope: &InScope<'_>,
    tag: TypeTag,
    class: usize,
) -> Result<usize, AllocError> {
    match alloc_small_fast(scope, tag, class) {
        Some(addr) => Ok(addr),
        None => alloc_small_slow(h, scope, tag, class),
    }
}

/// The fast path alone: a slot of type `tag` in size class `class` from the scope's cache, if
/// the cache holds one (`None`: the caller takes the slow path).
#[inline(always)]
pub(crate) fn alloc_small_fast(scope: &InScope<'_>, tag: TypeTag, class: usize) -> Option<usize> {
    let key = tag.key(class);
    scope.with_local(|l| l.cache.alloc_small(key))
}

#[cold]
#[inline(never)]
fn alloc_small_slow(
    h: &Shared,
    scope: &InScope<'_>,
    tag: TypeTag,
    class: usize,
) -> Result<usize, AllocError> {
    let black = h.mark.marking.load(Ordering::Relaxed);
    let sweeper = LazySweeper(h);
    let mheap = &h.mheap;
    let (addr, took) = unless_refused(h, || {
        scope.with_local(|l| {
            l.cache.refill(
                mheap,
                tag,
                class,
                black,
                &sweeper,
                crate::gc::object::identity,
            )
        })
    })?;
    if let Some(t) = took {
        took_span(h, scope, t, black);
    }
    Ok(addr)
}

/// Allocate a large object (more than 32 KiB) of type `tag` in a span of its own; also says
/// whether its memory is known to be zero.
pub(crate) fn alloc_large(
    h: &Shared,
    scope: &InScope<'_>,
    bytes: usize,
    tag: TypeTag,
) -> Result<(usize, bool), AllocError> {
    let black = h.mark.marking.load(Ordering::Relaxed);
    let (addr, took, zeroed) = unless_refused(h, || h.mheap.alloc_large(bytes, tag, black))?;
    took_span(h, scope, took, black);
    Ok((addr, zeroed))
}

/// Run `alloc` (a cache refill or a large allocation), handing a refusal to [`refused`]. A
/// fail-fast stall ([`AllocError::MemoryLimitStall`]) is looked at again first: the limiter is
/// fed (and the stall decided) only while the collector works, so after a pause in the
/// program's allocation the stall may describe an episode that ended with it. The limiter is
/// fed now; if that lifts the stall (it ends once the limiter has been off, or not fed at all,
/// for a quarter of the fail-fast window: `LimiterWatch`), `alloc` runs once more.
#[inline(always)]
fn unless_refused<T>(
    h: &Shared,
    mut alloc: impl FnMut() -> Result<T, AllocError>,
) -> Result<T, AllocError> {
    match alloc() {
        Ok(v) => Ok(v),
        Err(AllocError::MemoryLimitStall { .. }) if stall_lifted(h) => {
            alloc().map_err(|e| refused(h, e))
        }
        Err(e) => Err(refused(h, e)),
    }
}

/// Feed the limiter now; whether the fail-fast stall is lifted.
#[cold]
fn stall_lifted(h: &Shared) -> bool {
    h.controller()
        .update_limiter(true, h.mark.cycle.load(Ordering::Relaxed));
    h.mheap.limiter_stall_ns.load(Ordering::Relaxed) == 0
}

/// An allocation failed with `e`. The live-heap limit ([`AllocError::HeapLimit`]) is checked
/// against the last completed mark, so a refusal would last until the embedder called
/// `collect()` even after it had dropped its data: start a cycle (if none is due yet), after
/// which allocation works again if less is live. A refusal of the bound inside a scope
/// ([`AllocError::HeapLimitInScope`]) starts one too, so that `should_yield` turns true. So
/// does an exhausted arena ([`AllocError::OutOfMemory`]): its pages may be full of garbage
/// that no cycle was due to free (an arena smaller than the trigger, which the pacer keeps at
/// 4 MiB × GOGC/100 or more, never reached it), and leaving the scope and retrying, as the
/// error asks, must then find them freed; unless the request is larger than the whole arena,
/// which no cycle helps.
#[cold]
fn refused(h: &Shared, e: AllocError) -> AllocError {
    let helps = match e {
        AllocError::HeapLimit { .. }
        | AllocError::HeapLimitInScope { .. }
        | AllocError::MemoryLimitStall { .. } => true,
        AllocError::OutOfMemory {
            requested,
            reservation,
        } => requested <= reservation,
        _ => false,
    };
    if helps {
        crate::gc::collector::request_cycle(h);
    }
    e
}

/// The allocator took `t` (a span's free bytes, or a large object): request a cycle if
/// `heap_live` crossed the trigger, note a late start (the scope's successor then waits for
/// it, `collector::wait_for_late_start`) or charge the mark assist while marking (`black`),
/// and re-derive the trigger if mapped memory grew under a memory limit.
fn took_span(h: &Shared, scope: &InScope<'_>, t: TookSpan, black: bool) {
    let live = h.mheap.counters.heap_live.load(Ordering::Relaxed);
    if live >= h.pacer.trigger.load(Ordering::Relaxed) && !h.control.pending.load(Ordering::Relaxed)
    {
        crate::gc::collector::request_cycle(h);
    }
    if !black && crate::gc::collector::start_is_late(h) {
        scope.record().late_start.store(true, Ordering::Relaxed);
    }
    if black {
        let debt = scope.with_local(|l| l.assist_debt);
        let debt = crate::gc::mark::assist::assist(h, debt, t.bytes);
        scope.with_local(|l| l.assist_debt = debt);
    }
    if t.fresh && h.controller().note_growth(black) {
        crate::gc::collector::request_cycle(h);
    }
}
