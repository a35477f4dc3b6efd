//! Mark assists (Go: `gcAssistAlloc`): a mutator allocating while the cycle marks pays for its
//! allocation with marking of its own, in proportion to the pacer's assist ratio.

use std::sync::atomic::Ordering;

use crate::gc::heap::Shared;
use crate::gc::mark::tracer::{Marking, Tracer};
use crate::pacer::controller::WORK_UNIT_BYTES;
use crate::util::bug::AbortOnUnwind;

/// Work an assist does between two checks for a pause request. A unit is usually tens of
/// nanoseconds, but microseconds when it misses cache and TLB, so keep it small.
const ASSIST_SLICE: usize = 32;

/// Scan work an assist does at least, paying ahead for later allocations (Go:
/// `gcOverAssistWork`): an assist has a fixed cost, so it is not worth doing for a few bytes.
const OVER_ASSIST_WORK: f64 = 64.0 * 1024.0;

/// Mark assist (Go: `gcAssistAlloc`): a mutator that took `bytes` of new allocation while
/// marking owes `bytes × assist ratio` of scan work ([`crate::pacer::controller`]). Its `debt` (scan
/// work; negative is credit) grows by that; if it is in debt it pays, at least
/// [`OVER_ASSIST_WORK`], first from the background workers' surplus (`bg_credit`), then by
/// marking grey objects itself. Returns the new debt. A mutator that allocates faster than
/// marking progresses thus spends its own time marking, which keeps the heap near its goal.
///
/// While the GC CPU limiter is on (the GC has used over half the CPU), nothing is paid: the
/// heap may overshoot the goal instead (Go does the same).
pub(crate) fn assist(h: &Shared, debt: f64, bytes: usize) -> f64 {
    let ratio = f64::from_bits(h.pacer.assist_ratio.load(Ordering::Relaxed));
    let mut debt = debt + bytes as f64 * ratio;
    if debt <= 0.0 || h.pacer.limiting.load(Ordering::Relaxed) {
        return debt;
    }
    // Steal the background workers' credit.
    let want = debt.max(OVER_ASSIST_WORK) as i64;
    let mut credit = h.pacer.bg_credit.load(Ordering::Relaxed);
    let mut stolen = 0;
    while credit > 0 {
        let take = credit.min(want);
        match h.pacer.bg_credit.compare_exchange_weak(
            credit,
            credit - take,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                stolen = take;
                break;
            }
            Err(c) => credit = c,
        }
    }
    debt -= stolen as f64;
    if stolen >= want {
        return debt;
    }
    let target = (want - stolen) as u64;
    let mut last = crate::util::clock::thread_cpu_ns();
    // `busy` stays raised until the work is handed back, so unwinding out of here would
    // leave marking unable to end, as well as lose the grey objects: abort instead.
    let guard = AbortOnUnwind("a mark assist");
    h.mark.work.enter();
    let mut t = Tracer::marking(&h.mheap.arena, Marking::Local);
    let mut slices = 0u32;
    while t.work() * WORK_UNIT_BYTES < target {
        // Account the CPU time as it passes (the CPU limiter reads it; every 16 slices, a
        // few tens of microseconds) and let the limiter update.
        if slices % 16 == 0 {
            let now = crate::util::clock::thread_cpu_ns();
            h.stats
                .assist_ns
                .fetch_add(now.saturating_sub(last), Ordering::Relaxed);
            last = now;
            h.controller()
                .update_limiter(false, h.mark.cycle.load(Ordering::Relaxed));
        }
        slices += 1;
        // A pause is waiting for this mutator, or the GC has taken too much of the CPU: stop
        // assisting (the debt stays for later).
        if h.safepoint.stop_requested() || h.pacer.limiting.load(Ordering::Relaxed) {
            break;
        }
        if !t.has_grey() {
            match h.mark.work.pop() {
                Some(b) => t.push_grey_batch(b),
                // No grey work left: marking is nearly done; keep the debt.
                None => break,
            }
        }
        t.drain_budget(ASSIST_SLICE);
    }
    let done = t.work() * WORK_UNIT_BYTES;
    h.stats.assists.fetch_add(1, Ordering::Relaxed);
    h.stats
        .assist_bytes
        .fetch_add(t.marked_bytes as u64, Ordering::Relaxed);
    crate::gc::mark::roots::hand_over(h, &mut t);
    // After the hand-over: a collector that sees no assist running finds their work queued.
    h.mark.work.leave();
    guard.disarm();
    h.stats.assist_ns.fetch_add(
        crate::util::clock::thread_cpu_ns().saturating_sub(last),
        Ordering::Relaxed,
    );
    debt - done as f64
}
