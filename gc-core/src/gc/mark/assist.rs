//! Mark assists (Go: `gcAssistAlloc`): a mutator allocating while the cycle marks pays for its
//! allocation with marking of its own, in proportion to the pacer's assist ratio.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::gc::heap::Shared;
use crate::gc::mark::tracer::{Marking, Tracer};
use crate::pacer::controller::WORK_UNIT_BYTES;
use crate::util::bug::AbortOnUnwind;

/// Work an assist does between two checks for a pause request. A unit is usually tens of
/// nanoseconds, but microseconds when it misses cache and TLB, so keep it small.
const ASSIST_SLICE: usize = 32;

/// An assist holding more grey objects than this offers the older half of them when the
/// shared queue is empty, after each slice (Go: `gcDrainN` balances when `work.full` is
/// empty). Low, because a depth-first stack over a tree holds about its depth: the bottom
/// entries root the largest subtrees, which the background worker (and idle-priority
/// marking on a spare CPU) can then mark instead of the mutator.
const ASSIST_OFFER_MIN: usize = 4;

/// Scan work an assist does at least, paying ahead for later allocations (Go:
/// `gcOverAssistWork`): an assist has a fixed cost, so it is not worth doing for a few bytes.
const OVER_ASSIST_WORK: f64 = 64.0 * 1024.0;

/// The longest an assist waits at a time for background credit before it looks again (a safety
/// net: background workers wake waiting assists when they add credit, and a stop request wakes
/// them too).
const PARK_MAX: Duration = Duration::from_millis(2);

/// Mark assist (Go: `gcAssistAlloc`): a mutator that took `bytes` of new allocation while
/// marking owes `bytes × assist ratio` of scan work ([`crate::pacer::controller`]). Its `debt` (scan
/// work; negative is credit) grows by that; if it is in debt it pays, at least
/// [`OVER_ASSIST_WORK`], first from the background workers' surplus (`bg_credit`), then by
/// marking grey objects itself. Returns the new debt. A mutator that allocates faster than
/// marking progresses thus spends its own time marking, which keeps the heap near its goal.
///
/// When it finds neither credit nor grey work (a background worker holds the graph's only grey
/// objects on its own stack, which is the usual case when one deep structure is being marked),
/// the assist **waits** for the background workers to earn credit ([`park`]), as Go parks an
/// assist on its assist queue: the mutator cannot allocate faster than marking progresses, so
/// the heap holds its goal. It waits outside the mark-termination count (holding no grey work),
/// so marking can end meanwhile, and it stops waiting when any stop is requested (mark
/// termination waits for this scope to end): the debt then stays, and the mutator allocates on
/// until it reaches a safepoint. So a mutator that polls [`should_yield`] is held to the goal,
/// and one that does not is never deadlocked, only unthrottled until its scope ends.
///
/// Past the furthest the cycle may take the heap (1.1 × its goal, see [`position`]), the assist
/// holds the mutator, marking or waiting, whatever its debt.
///
/// While the GC CPU limiter is on (the GC has used over half the CPU), nothing is paid below
/// the goal, past it at most [`OVER_ASSIST_WORK`] per call and without waiting, and when the
/// live heap is at the memory limit that sets the goal nothing at all: the heap may overshoot
/// the goal instead, as in Go ([`limiter_stops`]).
///
/// [`should_yield`]: crate::Mutation::should_yield
pub(crate) fn assist(h: &Shared, debt: f64, bytes: usize) -> f64 {
    h.controller().revise_if_free();
    let ratio = f64::from_bits(h.pacer.assist_ratio.load(Ordering::Relaxed));
    let mut debt = debt + bytes as f64 * ratio;
    if h.hooks.hold_assists.load(Ordering::Relaxed) {
        return debt;
    }
    loop {
        // Past the bound, the mutator pays with marking of its own, or waits, whatever its debt.
        let at = position(h);
        let held = at.past_bound;
        if must_stop(h, at) {
            return debt;
        }
        if debt <= 0.0 && !held {
            return debt;
        }
        // With the limiter on, an assist that got here is past the goal (below it the limiter
        // stopped it) but not the bound: it pays one slice's worth and never waits
        // ([`limiter_stops`]).
        let limited = !held && h.pacer.limiting.load(Ordering::Relaxed);
        let mut want = if limited {
            OVER_ASSIST_WORK
        } else {
            debt.max(OVER_ASSIST_WORK)
        } as i64;
        let credit_seen = h.pacer.bg_credit.load(Ordering::SeqCst);
        if !held {
            let stolen = steal_credit(h, want);
            debt -= stolen as f64;
            if stolen >= want {
                return debt;
            }
            want -= stolen;
        }
        let (done, out_of_work) = mark_for(h, want as u64, at);
        debt -= done as f64;
        if limited {
            return debt;
        }
        if !out_of_work || (debt <= 0.0 && !held) {
            // Paid, or interrupted by a stop request or the limiter (the loop's check), or
            // marking on past the bound.
            continue;
        }
        if !may_wait(h) {
            // Nothing will earn credit: marking waits for a scope blocked across STW 1 (which
            // may wait for this mutator), or is about to end with the heap below its goal.
            // Keep the debt.
            return debt;
        }
        h.stats.assist_parks.fetch_add(1, Ordering::Relaxed);
        park(h, credit_seen, at);
    }
}

/// Whether the heap has passed its goal (or the goal it extended to), and whether it has passed
/// the furthest a cycle may take it, that goal times
/// [`PacerConfig::max_overshoot`](crate::pacer::PacerConfig::max_overshoot) (the bound).
/// Past the bound an assist takes no background credit and returns only when a stop is
/// requested, marking ends, nothing will earn credit ([`may_wait`]) or, where the live heap is
/// at the memory limit that sets the goal, the limiter turns on ([`limiter_stops`]): the mutator
/// marks or waits meanwhile, whatever its debt. Debt alone did not hold that bound: it is
/// charged at the last revised assist ratio, and a mutator revises only when the pacer's lock
/// is free, so with the collector thread descheduled while holding it (another process on a
/// CPU) the ratio from below the goal, where it is small, stayed in force; a busy-machine
/// pacing test once ended a cycle at 1.137 × its goal with the lowest trigger at 0.8.
fn position(h: &Shared) -> Position {
    let live = h.mheap.counters.heap_live.load(Ordering::Relaxed) as f64;
    let goal = h
        .pacer
        .heap_goal
        .load(Ordering::Relaxed)
        .max(h.pacer.extended_goal.load(Ordering::Relaxed)) as f64;
    Position {
        past_goal: live >= goal,
        past_bound: live >= goal * h.pacer.max_overshoot,
    }
}

/// Where `heap_live` stands against the cycle's goal (or the goal it extended to), from
/// [`position`].
#[derive(Clone, Copy)]
struct Position {
    past_goal: bool,
    past_bound: bool,
}

/// Whether an assist must stop paying (keeping its debt): a pause is waiting for this mutator,
/// marking is over, or the GC has taken too much of the CPU ([`limiter_stops`]). `at`: where
/// the heap stood when the assist looked ([`position`]).
fn must_stop(h: &Shared, at: Position) -> bool {
    h.safepoint.stop_requested() || !h.mark.marking.load(Ordering::Relaxed) || limiter_stops(h, at)
}

/// Whether the GC CPU limiter stops an assist: it is on, and the heap is below its goal, or
/// the goal leaves the live heap no room ([`Pacer::goal_leaves_room`]). The limiter is there
/// for the death spiral, a memory limit under which the live heap leaves a cycle no room,
/// where assists would take all the CPU and still not reach the goal; Go lets the heap
/// overshoot instead, and so does gc-core then. A GOGC goal always leaves GOGC% of the marked
/// heap to grow into, and a memory-limit goal well above the live heap leaves room too, so
/// there the limiter lets the mutators reach the goal without assists, and past it slows them
/// instead of stopping their assists: each pays at most [`OVER_ASSIST_WORK`] per call and
/// never waits for credit ([`assist`]), and past the bound they are held as in any cycle. (Go
/// has no such exception. Without it, treechurn at GOGC=50 had the limiter on in most cycles
/// and a heap larger than at GOGC=100, and treechurn with 256 MiB live under a 384 MiB limit
/// ran its heap to 600–700 MiB: every byte allocated while assists were off was marked, and
/// the heap it took past the limit shrank the next goal. Two other rules were measured:
/// stopping assists up to 1.1 × the goal left every such cycle at 1.1 ×; letting them pay in
/// full past the goal held it, but a mutator then owed the end of marking's large ratio and
/// waited 45 ms for credit.)
///
/// [`Pacer::goal_leaves_room`]: crate::pacer::Pacer::goal_leaves_room
fn limiter_stops(h: &Shared, at: Position) -> bool {
    h.pacer.limiting.load(Ordering::Relaxed)
        && (!at.past_goal || !h.pacer.goal_has_room.load(Ordering::Relaxed))
}

/// Whether an assist that found neither credit nor grey work may wait for the markers: they
/// are [`progressing`], and either still draining (credit will come) or attempting termination
/// with the heap at or past its goal. The stop will come then; allocating on would take the
/// heap further past the goal, by as much as the mutator allocates before the stop lands (a
/// collector thread descheduled in that window let it run a megabyte or more past). Below the
/// goal the mutator allocates on until the stop, so that the stop need not wake it.
fn may_wait(h: &Shared) -> bool {
    progressing(h)
        && (!h.mark.terminating.load(Ordering::SeqCst)
            || h.mheap.counters.heap_live.load(Ordering::Relaxed)
                >= h.pacer.heap_goal.load(Ordering::Relaxed))
}

/// Whether marking goes on without this mutator: the collector thread is marking (draining, or
/// attempting termination, whose stop wakes waiting assists), a helper or another assist is
/// marking, or work is queued. False only while the collector waits for a blocked scope.
fn progressing(h: &Shared) -> bool {
    h.mark.draining.load(Ordering::SeqCst) || h.mark.work.busy() > 0 || !h.mark.work.is_empty()
}

/// Take up to `want` of the background workers' surplus credit; returns what was taken.
fn steal_credit(h: &Shared, want: i64) -> i64 {
    let mut credit = h.pacer.bg_credit.load(Ordering::Relaxed);
    while credit > 0 {
        let take = credit.min(want);
        match h.pacer.bg_credit.compare_exchange_weak(
            credit,
            credit - take,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return take,
            Err(c) => credit = c,
        }
    }
    0
}

/// Wait until the background workers add credit (they wake waiting assists), a stop is
/// requested (`StoppedWorld::stop` wakes them), the collector stops draining or starts to
/// attempt termination (it wakes them; then no credit may come: marking waits for a scope
/// blocked across STW 1, or is about to end), marking ends, or [`PARK_MAX`] passes. Holds no
/// grey work and is not counted as a busy marker, so marking can end meanwhile.
fn park(h: &Shared, credit_seen: i64, at: Position) {
    if h.mark.terminating.load(Ordering::SeqCst) {
        // The stop is coming, and its handshake waits for this mutator: wait for it on the
        // CPU, yielding, since waking a parked thread added tens of microseconds to the pause
        // (treechurn: mark termination's wait at the 90th percentile 17 → 60 µs).
        let start = std::time::Instant::now();
        while may_wait(h) && !must_stop(h, at) && start.elapsed() < PARK_MAX {
            std::thread::yield_now();
        }
        return;
    }
    let m = &h.mark.assist_park;
    // Raised before the credit, `draining` and `terminating` are read again (all `SeqCst`),
    // and a worker adds credit (the collector changes the flags) before it reads this count:
    // either it sees this assist waiting and wakes it (under the monitor's lock, so not before
    // it waits), or this assist sees the change.
    h.mark.assists_parked.fetch_add(1, Ordering::SeqCst);
    let g = m.lock();
    if h.pacer.bg_credit.load(Ordering::SeqCst) == credit_seen && !must_stop(h, at) && may_wait(h) {
        drop(m.wait_for(g, PARK_MAX));
    }
    h.mark.assists_parked.fetch_sub(1, Ordering::SeqCst);
}

/// Wake the assists waiting for credit (a background worker added some, or a stop is being
/// requested).
pub(crate) fn wake_parked(h: &Shared) {
    if h.mark.assists_parked.load(Ordering::SeqCst) > 0 {
        h.mark.assist_park.wake_all();
    }
}

/// Mark grey objects (taken from the shared queue) until `target` scan work is done, a stop is
/// requested or the limiter stops it (`at`: see [`limiter_stops`]); returns
/// the work done and whether it stopped because no grey work was left.
fn mark_for(h: &Shared, target: u64, at: Position) -> (u64, bool) {
    let mut out_of_work = false;
    let mut lap = crate::util::clock::CpuLap::start();
    // `busy` stays raised until the work is handed back, so unwinding out of here would
    // leave marking unable to end, as well as lose the grey objects: abort instead.
    let guard = AbortOnUnwind("a mark assist");
    h.mark.work.enter();
    let mut t = Tracer::marking(h, Marking::Local);
    let mut slices = 0u32;
    while t.work() * WORK_UNIT_BYTES < target {
        // Account the CPU time as it passes (the CPU limiter reads it) and let the limiter
        // update, every 16 slices (a few tens of microseconds).
        if slices.is_multiple_of(16) {
            if let Some(cpu) = lap.lap() {
                h.stats
                    .assist_ns
                    .fetch_add(cpu.as_nanos() as u64, Ordering::Relaxed);
            }
            h.controller()
                .update_limiter(false, h.mark.cycle.load(Ordering::Relaxed));
        }
        slices += 1;
        // A pause is waiting for this mutator, or the GC has taken too much of the CPU: stop
        // assisting (the debt stays for later).
        if must_stop(h, at) {
            break;
        }
        if !t.has_grey() {
            match h.mark.work.pop() {
                Some(b) => t.push_grey_batch(b),
                // No grey work to share: the caller waits for background credit.
                None => {
                    out_of_work = true;
                    break;
                }
            }
        }
        t.drain_budget(ASSIST_SLICE);
        t.offer(&h.mark.work, ASSIST_OFFER_MIN);
    }
    let done = t.work() * WORK_UNIT_BYTES;
    h.stats.assists.fetch_add(1, Ordering::Relaxed);
    h.stats
        .assist_bytes
        .fetch_add(t.marked.bytes as u64, Ordering::Relaxed);
    crate::gc::mark::roots::hand_over(h, &mut t);
    // After the hand-over: a collector that sees no assist running finds their work queued.
    h.mark.work.leave_handed_over(&t);
    guard.disarm();
    h.stats
        .assist_ns
        .fetch_add(lap.finish().as_nanos() as u64, Ordering::Relaxed);
    (done, out_of_work)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An assist whose debt the background workers' credit covers takes the credit and
    /// returns: no mark assist runs (or is counted), and the debt is paid ahead by up to
    /// [`OVER_ASSIST_WORK`]. Without credit, it marks (here: nothing to mark, so it counts an
    /// assist and keeps its debt, the heap being far below its goal). The heap's mark phase is
    /// set by hand, with no cycle (GOGC off, nothing requested).
    #[test]
    fn an_assist_covered_by_background_credit_does_not_mark() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let h = heap.shared();
        h.mark.marking.store(true, Ordering::Release);
        h.pacer.bg_credit.store(1 << 40, Ordering::SeqCst);
        let assists = h.stats.assists.load(Ordering::Relaxed);
        let debt = assist(h, 1000.0, 0);
        assert_eq!(debt, 1000.0 - OVER_ASSIST_WORK);
        assert_eq!(
            h.pacer.bg_credit.load(Ordering::SeqCst),
            (1 << 40) - OVER_ASSIST_WORK as i64
        );
        assert_eq!(h.stats.assists.load(Ordering::Relaxed), assists);
        // Less credit than the debt: all of it taken, no more.
        h.pacer.bg_credit.store(600, Ordering::SeqCst);
        assert_eq!(
            assist(h, 1000.0, 0),
            400.0,
            "nothing to mark, the credit paid"
        );
        assert_eq!(
            h.pacer.bg_credit.load(Ordering::SeqCst),
            0,
            "more credit taken than there was"
        );
        let assists = h.stats.assists.load(Ordering::Relaxed);
        h.pacer.bg_credit.store(0, Ordering::SeqCst);
        let kept = assist(h, 1000.0, 0);
        assert_eq!(kept, 1000.0, "nothing to mark, nothing paid");
        assert_eq!(h.stats.assists.load(Ordering::Relaxed), assists + 1);
        h.mark.marking.store(false, Ordering::Release);
    }

    /// An assist that finds neither credit nor grey work while the collector still marks
    /// waits for credit, counted as waiting (what lets a wake-up reach it, and the collector
    /// thread mark on at idle priority beside it), and returns paid once credit comes. The
    /// heap's figures are set by hand: no cycle runs, its goal far away.
    #[test]
    #[cfg_attr(miri, ignore = "real time")]
    fn a_waiting_assist_is_counted_and_woken_by_credit() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let h = heap.shared();
        h.pacer.heap_goal.store(usize::MAX / 4, Ordering::Relaxed);
        h.pacer
            .extended_goal
            .store(usize::MAX / 4, Ordering::Relaxed);
        h.mark.marking.store(true, Ordering::Release);
        h.mark.draining.store(true, Ordering::SeqCst);
        // Several rounds: the wait also ends by itself after `PARK_MAX`, after which the assist
        // finds the credit without any wake-up, so the median time from the wake-up to the
        // assist's return must be well under that.
        let mut after_wake = Vec::new();
        for _ in 0..7 {
            h.pacer.bg_credit.store(0, Ordering::SeqCst);
            let (counted, debt, woken) = std::thread::scope(|s| {
                let a = s.spawn(|| assist(h, 1000.0, 0));
                let t = std::time::Instant::now();
                while h.mark.assists_parked.load(Ordering::SeqCst) == 0
                    && t.elapsed() < Duration::from_secs(5)
                {
                    std::thread::yield_now();
                }
                let counted = h.mark.assists_parked.load(Ordering::SeqCst) > 0;
                h.pacer.bg_credit.store(1 << 40, Ordering::SeqCst);
                let woke = std::time::Instant::now();
                wake_parked(h);
                let debt = a.join().unwrap();
                (counted, debt, woke.elapsed())
            });
            assert!(counted, "a waiting assist is not counted as waiting");
            assert!(debt <= 0.0, "{debt}");
            assert_eq!(h.mark.assists_parked.load(Ordering::SeqCst), 0);
            after_wake.push(woken);
        }
        h.mark.draining.store(false, Ordering::SeqCst);
        h.mark.marking.store(false, Ordering::Release);
        after_wake.sort();
        assert!(
            after_wake[3] < PARK_MAX / 2,
            "the waiting assists returned at their timeout, not at the wake-up: {after_wake:?}"
        );
    }

    /// An assist waiting through a termination attempt (past its goal, for the stop) stops
    /// waiting as soon as the stop is requested: the stop waits for it.
    #[test]
    #[cfg_attr(miri, ignore = "real time")]
    fn a_stop_request_ends_an_assists_wait_through_termination_at_once() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let h = heap.shared();
        h.pacer.heap_goal.store(0, Ordering::Relaxed);
        h.mark.marking.store(true, Ordering::Release);
        h.mark.draining.store(true, Ordering::SeqCst);
        h.mark.terminating.store(true, Ordering::SeqCst);
        h.safepoint.request_stop();
        let at = position(h);
        let t = std::time::Instant::now();
        for _ in 0..100 {
            park(h, 0, at);
        }
        let took = t.elapsed();
        h.safepoint.start();
        h.mark.terminating.store(false, Ordering::SeqCst);
        h.mark.draining.store(false, Ordering::SeqCst);
        h.mark.marking.store(false, Ordering::Release);
        assert!(
            took < Duration::from_millis(100),
            "100 waits took {took:?} with a stop requested"
        );
    }
}
