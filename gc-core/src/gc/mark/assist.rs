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
    use crate::gc::object::Object;

    /// A heap with GOGC off, in which no cycle runs: the tests set its figures by hand.
    fn idle_heap() -> crate::Heap {
        crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap()
    }

    /// Queue the root of a tree rooted in `heap` as grey work, as a root scan would: the tree's
    /// other nodes are white, for an assist to mark.
    fn queue_grey_root(h: &Shared, root: usize) {
        let mut t = Tracer::marking(h, Marking::Local);
        t.edge(root as *const Object);
        crate::gc::mark::roots::hand_over(h, &mut t);
    }

    /// Goals so far away that the heap is past neither them nor their bound.
    fn far_goals(h: &Shared) {
        h.pacer.heap_goal.store(usize::MAX / 4, Ordering::Relaxed);
        h.pacer
            .extended_goal
            .store(usize::MAX / 4, Ordering::Relaxed);
    }

    /// A heap marking (set by hand: no cycle runs) with a complete tree of `depth` rooted and
    /// its root queued as grey work ([`queue_grey_root`]), the goals far away ([`far_goals`]).
    fn marking_a_tree(
        depth: u32,
    ) -> (
        crate::Heap,
        crate::Mutator<crate::gc::mark::test_heaps::TreeRoot>,
    ) {
        let (heap, m, root) = crate::gc::mark::test_heaps::rooted_tree(depth);
        let h = heap.shared();
        far_goals(h);
        h.mark.marking.store(true, Ordering::Release);
        queue_grey_root(h, root);
        (heap, m)
    }

    /// An assist adds its allocation times the assist ratio to its debt (negative: credit),
    /// whether or not it goes on to pay: here marking is off, so it returns at once, as it does
    /// while assists are held.
    #[test]
    fn an_assist_owes_its_allocation_times_the_assist_ratio() {
        let heap = idle_heap();
        let h = heap.shared();
        // Held, so that the assist's own revision leaves the ratio set here.
        let model = h.pacer.model.lock();
        h.pacer
            .assist_ratio
            .store(0.25f64.to_bits(), Ordering::Relaxed);
        assert_eq!(assist(h, 100.0, 1000), 350.0);
        assert_eq!(assist(h, -500.0, 1000), -250.0);
        h.mark.marking.store(true, Ordering::Release);
        h.hooks.hold_assists.store(true, Ordering::Relaxed);
        assert_eq!(assist(h, 100.0, 4000), 1100.0, "held: owed, not paid");
        h.hooks.hold_assists.store(false, Ordering::Relaxed);
        h.mark.marking.store(false, Ordering::Release);
        drop(model);
    }

    /// Where the heap stands: past the goal from the goal itself, past the bound from the goal
    /// times `max_overshoot`; the goal is the larger of the cycle's goal and the goal it
    /// extended to.
    #[test]
    fn the_heap_is_placed_against_the_larger_goal_and_its_bound() {
        let heap = idle_heap();
        let h = heap.shared();
        let live = &h.mheap.counters.heap_live;
        let was = live.load(Ordering::Relaxed);
        assert_eq!(h.pacer.max_overshoot, 1.1, "the default bound");
        let at = |l: usize, goal: usize, extended: usize| {
            live.store(l, Ordering::Relaxed);
            h.pacer.heap_goal.store(goal, Ordering::Relaxed);
            h.pacer.extended_goal.store(extended, Ordering::Relaxed);
            let p = position(h);
            (p.past_goal, p.past_bound)
        };
        assert_eq!(at(999, 1000, 0), (false, false));
        assert_eq!(at(1000, 1000, 0), (true, false));
        assert_eq!(at(1099, 1000, 0), (true, false));
        assert_eq!(at(1100, 1000, 0), (true, true));
        // The extended goal when larger, the goal when the extension is smaller.
        assert_eq!(at(1500, 1000, 2000), (false, false));
        assert_eq!(at(2000, 1000, 2000), (true, false));
        assert_eq!(at(2199, 1000, 2000), (true, false));
        assert_eq!(at(2200, 1000, 2000), (true, true));
        assert_eq!(at(1000, 1000, 500), (true, false));
        assert_eq!(at(1100, 1000, 500), (true, true));
        live.store(was, Ordering::Relaxed);
    }

    /// An assist stops paying when a stop is requested, when marking is over, and when the
    /// limiter is on with the heap below its goal or a goal that leaves the live heap no room;
    /// with the limiter off, or past a goal that leaves room, it pays.
    #[test]
    fn an_assist_stops_for_a_stop_the_end_of_marking_and_the_limiter() {
        let heap = idle_heap();
        let h = heap.shared();
        let below = Position {
            past_goal: false,
            past_bound: false,
        };
        let past = Position {
            past_goal: true,
            past_bound: false,
        };
        h.mark.marking.store(true, Ordering::Release);
        for (limiting, room, at, stops) in [
            (false, true, below, false),
            (false, false, past, false),
            (true, true, below, true),
            (true, true, past, false),
            (true, false, past, true),
            (true, false, below, true),
        ] {
            h.pacer.limiting.store(limiting, Ordering::Relaxed);
            h.pacer.goal_has_room.store(room, Ordering::Relaxed);
            let what = format!(
                "limiter {limiting}, room {room}, past goal {}",
                at.past_goal
            );
            assert_eq!(limiter_stops(h, at), stops, "{what}");
            assert_eq!(must_stop(h, at), stops, "{what}");
        }
        h.pacer.limiting.store(false, Ordering::Relaxed);
        h.pacer.goal_has_room.store(true, Ordering::Relaxed);
        assert!(!must_stop(h, past));
        h.safepoint.request_stop();
        assert!(must_stop(h, past), "a stop requested");
        h.safepoint.start();
        h.mark.marking.store(false, Ordering::Release);
        assert!(must_stop(h, past), "marking over");
    }

    /// Marking progresses without the assist while the collector drains, another marker is
    /// busy, or grey work is queued; an assist may wait for it then, unless a termination
    /// attempt has begun with the heap below its goal.
    #[test]
    fn an_assist_waits_only_while_marking_progresses_without_it() {
        let (heap, _m, root) = crate::gc::mark::test_heaps::rooted_tree(2);
        let h = heap.shared();
        let live = &h.mheap.counters.heap_live;
        let was = live.load(Ordering::Relaxed);
        h.mark.marking.store(true, Ordering::Release);
        assert!(!progressing(h) && !may_wait(h), "nothing marks");
        h.mark.draining.store(true, Ordering::SeqCst);
        assert!(progressing(h) && may_wait(h), "the collector drains");
        h.mark.draining.store(false, Ordering::SeqCst);
        h.mark.work.enter();
        assert!(progressing(h) && may_wait(h), "another marker is busy");
        h.mark.work.leave();
        queue_grey_root(h, root);
        assert!(progressing(h) && may_wait(h), "grey work queued");
        // A termination attempt: waiting only at or past the goal.
        h.mark.terminating.store(true, Ordering::SeqCst);
        h.pacer.heap_goal.store(1000, Ordering::Relaxed);
        live.store(999, Ordering::Relaxed);
        assert!(progressing(h) && !may_wait(h), "terminating below the goal");
        live.store(1000, Ordering::Relaxed);
        assert!(may_wait(h), "terminating at the goal");
        live.store(was, Ordering::Relaxed);
        h.mark.terminating.store(false, Ordering::SeqCst);
        assert!(h.mark.work.pop().is_some());
        assert!(!progressing(h), "the queue emptied");
        h.mark.marking.store(false, Ordering::Release);
    }

    /// Scan work the heap's markers have counted so far this cycle.
    fn scan_work(h: &Shared) -> u64 {
        h.pacer.heap_scan_work.load(Ordering::Relaxed)
    }

    /// An assist that takes some background credit marks only what the credit left unpaid;
    /// with the limiter on (past a goal that leaves room), it marks [`OVER_ASSIST_WORK`] and
    /// returns, owing the rest, where without the limiter it would mark until paid.
    #[test]
    #[cfg_attr(miri, ignore = "trees of 8k to 16k nodes: minutes under Miri")]
    fn an_assist_marks_what_credit_leaves_and_under_the_limiter_one_share() {
        const DEPTH: u32 = 13;
        // One slice's overshoot at most: 32 two-pointer nodes.
        const SLACK: u64 = 4096;
        let (heap, _m) = marking_a_tree(DEPTH);
        let h = heap.shared();
        // A unit of work per node scanned and per edge followed (but the root's, followed by
        // the root scan).
        let nodes = (1u64 << (DEPTH + 1)) - 1;
        let tree_work = (2 * nodes - 1) * WORK_UNIT_BYTES;
        assert!(tree_work > 2 * OVER_ASSIST_WORK as u64 + SLACK);
        let start = scan_work(h);
        let credit = 40_000i64;
        h.pacer.bg_credit.store(credit, Ordering::SeqCst);
        let before = scan_work(h);
        let debt = assist(h, 1000.0, 0);
        let marked = scan_work(h) - before;
        let unpaid = OVER_ASSIST_WORK as u64 - credit as u64;
        assert!(
            (unpaid..unpaid + SLACK).contains(&marked),
            "marked {marked} with {unpaid} left unpaid by the credit"
        );
        assert_eq!(debt, 1000.0 - credit as f64 - marked as f64);
        assert_eq!(h.pacer.bg_credit.load(Ordering::SeqCst), 0);
        // The limiter on, the heap past its goal (which leaves room), not past the bound.
        let live = &h.mheap.counters.heap_live;
        let was = live.load(Ordering::Relaxed);
        live.store(1000, Ordering::Relaxed);
        h.pacer.heap_goal.store(1000, Ordering::Relaxed);
        h.pacer.extended_goal.store(0, Ordering::Relaxed);
        h.pacer.limiting.store(true, Ordering::Relaxed);
        let before = scan_work(h);
        let owed = 1e12;
        // Held, so that the assist's own revision does not raise the extended goal.
        let model = h.pacer.model.lock();
        let debt = assist(h, owed, 0);
        drop(model);
        let marked = scan_work(h) - before;
        let share = OVER_ASSIST_WORK as u64;
        assert!(
            (share..share + SLACK).contains(&marked),
            "marked {marked} under the limiter"
        );
        assert_eq!(debt, owed - marked as f64);
        assert!(!h.mark.work.is_empty(), "the rest is left queued");
        h.pacer.limiting.store(false, Ordering::Relaxed);
        live.store(was, Ordering::Relaxed);
        // Marking without the limiter would not stop short: drain the rest.
        far_goals(h);
        assist(h, owed, 0);
        assert!(h.mark.work.is_empty());
        assert_eq!(
            scan_work(h) - start,
            tree_work,
            "the three assists scanned the tree once"
        );
        h.mark.marking.store(false, Ordering::Release);
    }

    /// An assist that has paid by the time the grey work runs out returns without waiting for
    /// credit, though the collector still drains.
    #[test]
    fn a_paid_assist_returns_without_waiting() {
        let (heap, _m) = marking_a_tree(6);
        let h = heap.shared();
        h.mark.draining.store(true, Ordering::SeqCst);
        let before = parks(h);
        let debt = assist(h, 1000.0, 0);
        assert!(debt <= 0.0, "{debt}: the tree's 127 nodes pay 1000 bytes");
        assert!(h.mark.work.is_empty());
        assert_eq!(parks(h), before, "a paid assist waited for credit");
        h.mark.draining.store(false, Ordering::SeqCst);
        h.mark.marking.store(false, Ordering::Release);
    }

    /// Waits for credit counted so far.
    fn parks(h: &Shared) -> u64 {
        h.stats.assist_parks.load(Ordering::Relaxed)
    }

    /// An assist past the bound marks all the grey work there is, owing nothing, without
    /// waiting for credit between its rounds.
    #[test]
    #[cfg_attr(miri, ignore = "trees of 8k to 16k nodes: minutes under Miri")]
    fn a_held_assist_marks_on_without_waiting() {
        let (heap, _m, root) = crate::gc::mark::test_heaps::rooted_tree(12);
        let h = heap.shared();
        let live = &h.mheap.counters.heap_live;
        let was = live.load(Ordering::Relaxed);
        live.store(1100, Ordering::Relaxed);
        h.pacer.heap_goal.store(1000, Ordering::Relaxed);
        h.pacer.extended_goal.store(0, Ordering::Relaxed);
        h.mark.marking.store(true, Ordering::Release);
        queue_grey_root(h, root);
        let start = scan_work(h);
        let before = parks(h);
        // Held, so that the assist's own revision does not raise the extended goal.
        let model = h.pacer.model.lock();
        let debt = assist(h, 0.0, 0);
        drop(model);
        let marked = scan_work(h) - start;
        assert!(
            marked > OVER_ASSIST_WORK as u64,
            "marked {marked}: more than one round"
        );
        assert_eq!(debt, -(marked as f64), "held past the bound, owing nothing");
        assert!(
            h.mark.work.is_empty(),
            "held: marks until no grey work is left"
        );
        assert_eq!(parks(h), before, "a held assist with grey work waited");
        live.store(was, Ordering::Relaxed);
        h.mark.marking.store(false, Ordering::Release);
    }

    /// An assist marks the queued grey work until it has paid its debt (at least
    /// [`OVER_ASSIST_WORK`]), leaving the rest queued; the next, owing more than is left,
    /// marks the rest and, with nothing left that could earn credit, keeps what it still owes.
    /// Every object is marked once between them, counted in the assists' marked bytes and
    /// the cycle's scan work, and no marker is left counted busy.
    #[test]
    #[cfg_attr(miri, ignore = "trees of 8k to 16k nodes: minutes under Miri")]
    fn an_assist_marks_queued_grey_work_until_it_has_paid() {
        const DEPTH: u32 = 12;
        let (heap, _m) = marking_a_tree(DEPTH);
        let h = heap.shared();
        let nodes = (1u64 << (DEPTH + 1)) - 1;
        let work_root = scan_work(h);
        let assists = h.stats.assists.load(Ordering::Relaxed);
        let bytes = h.stats.assist_bytes.load(Ordering::Relaxed);
        let first = assist(h, 1000.0, 0);
        let paid = 1000.0 - first;
        assert!(paid >= OVER_ASSIST_WORK, "paid {paid}");
        assert!(
            !h.mark.work.is_empty(),
            "the assist marked on past its debt"
        );
        let owed = 1e12;
        let second = assist(h, owed, 0);
        let all = h.pacer.heap_scan_work.load(Ordering::Relaxed) - work_root;
        assert_eq!(paid + (owed - second), all as f64, "scan work paid");
        let node = std::mem::size_of::<crate::gc::mark::test_heaps::Node<'static>>() as u64;
        assert_eq!(
            h.stats.assist_bytes.load(Ordering::Relaxed) - bytes,
            (nodes - 1) * node,
            "every node but the root (marked by the root scan) marked once by the assists"
        );
        assert_eq!(h.stats.assists.load(Ordering::Relaxed), assists + 2);
        assert!(h.mark.work.is_empty() && h.mark.work.busy() == 0);
        h.mark.marking.store(false, Ordering::Release);
    }

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
        far_goals(h);
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

    /// An assist waits for credit only while none has come since it looked, it need not stop
    /// and marking progresses without it; then until [`PARK_MAX`] passes (nothing here wakes
    /// it). Through a termination attempt, past its goal, it waits on the CPU for the stop,
    /// also up to [`PARK_MAX`].
    #[test]
    #[cfg_attr(miri, ignore = "real time")]
    fn an_assist_waits_only_while_nothing_else_can_end_its_wait() {
        let heap = idle_heap();
        let h = heap.shared();
        h.pacer.heap_goal.store(0, Ordering::Relaxed);
        let at = position(h);
        let waits = |credit_seen: i64| {
            let t = std::time::Instant::now();
            for _ in 0..20 {
                park(h, credit_seen, at);
            }
            t.elapsed()
        };
        let set = |marking: bool, draining: bool| {
            h.mark.marking.store(marking, Ordering::Release);
            h.mark.draining.store(draining, Ordering::SeqCst);
        };
        // Twenty waits that end at once take far less than twenty timeouts.
        let at_once = 10 * PARK_MAX;
        h.pacer.bg_credit.store(5, Ordering::SeqCst);
        set(true, true);
        let took = waits(0);
        assert!(took < at_once, "credit came since: {took:?}");
        let took = waits(5);
        assert!(took >= 10 * PARK_MAX, "the assist did not wait: {took:?}");
        set(false, true);
        let took = waits(5);
        assert!(took < at_once, "marking over: {took:?}");
        set(true, false);
        let took = waits(5);
        assert!(took < at_once, "nothing marks: {took:?}");
        // A termination attempt, the heap past its goal, no stop requested yet.
        set(true, true);
        h.mark.terminating.store(true, Ordering::SeqCst);
        let took = waits(5);
        assert!(
            took >= 20 * PARK_MAX,
            "the assist did not wait for the stop: {took:?}"
        );
        h.mark.terminating.store(false, Ordering::SeqCst);
        set(false, false);
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
