//! The concurrent cycle: marking while the mutators run (Go: `gcStart`, `gcBgMarkWorker`,
//! `gcMarkDone`, `gcMarkTermination` in `mgc.go`).
//!
//! | phase | world | what happens |
//! |-------|-------|--------------|
//! | **STW 1**: sweep termination + mark setup | stopped | caches flushed; `marking` and the write barrier on; the stash greyed |
//! | **mark** | running | each mutator's roots scanned once, by itself before its first scope or by the collector while it is parked; the background worker drains the grey queue; mutators shade through the barrier and allocate black |
//! | **STW 2**: mark termination | stopped | barrier buffers flushed; if that found grey objects the world restarts and marking goes on; else caches flushed, barrier off, sweep generation advanced: the weak-clearing window opens (dead weak references are cleared right after the restart, and the spans queued for sweeping, before the window closes and anything is swept) |
//! | sweep | running | background and lazy sweeping ([`crate::gc::sweep`]) |
//!
//! # Why marking is complete (snapshot at the beginning)
//!
//! The claim: when STW 2 ends marking, every object reachable from a root is marked. Let *S*
//! be the objects reachable at STW 1.
//!
//! * **Roots are snapshotted at STW 1.** The stash is greyed in STW 1. A mutator's root object
//!   and root stack change only inside its scopes, and no scope of the cycle begins before
//!   those roots have been scanned (the first scope entry scans them, under the mutator's
//!   `scanned` lock, which the collector also takes to scan a parked mutator). So each scan
//!   sees the roots exactly as they were at STW 1. A mutator dropped before its scan never ran
//!   during the cycle, so it moved no pointer anywhere; its roots simply stop being roots.
//! * **Every edge of the snapshot is seen.** The marker reads the current value of each slot it
//!   scans; a slot overwritten since STW 1 had its old value shaded by the write barrier first
//!   (Yuasa deletion barrier), and barrier buffers are flushed before marking may end. So
//!   every object of *S* is marked by termination.
//! * **Nothing outside *S* ∪ new objects becomes reachable.** An object unreachable at STW 1
//!   cannot be named by any mutator again, except through a weak reference, and
//!   `GcWeak::upgrade` shades its target while marking. Objects allocated during marking are
//!   allocated black (see below) and never scanned, so the marker never reads an object whose
//!   initialisation it has not been ordered after (brief §2.3).
//!
//! The barrier also shades the new value (Dijkstra insertion), as Go's hybrid barrier does. The
//! snapshot argument does not need it, but it costs nothing extra (the slow path records both
//! words anyway) and keeps the invariant robust.
//!
//! # Allocate-black
//!
//! A mutator's cache hands out slots from a 64-slot window of a span. A window loaded while
//! `marking` is on has the mark bits of its free slots set in the same step (one `fetch_or`);
//! when the window is written back, the bits of slots still free are cleared again (one
//! `fetch_and`), and the bytes actually handed out are counted as allocated black. Windows are
//! flushed at both pauses, so a window is pre-marked exactly when it was loaded during marking,
//! and the allocation fast path is unchanged.
//!
//! # Termination
//!
//! The background worker drains the grey queue until it finds it empty, then attempts mark
//! termination: it stops the world, flushes every mutator's barrier buffer into its own grey
//! stack and checks that every mutator's roots were scanned. With the world stopped no mutator
//! can shade or scan, so if the worker then holds no grey object and the queue is empty, no grey
//! object exists anywhere: marking is complete. Otherwise it restarts the world and resumes.
//! Each attempt is a short pause (the barrier buffers are at most [`WB_FLUSH_LEN`] entries each).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::gc::collector;
use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;
use crate::gc::registry::{InScope, MutatorRecord, SCAN_GONE};
use crate::gc::stw::StoppedWorld;
use crate::gc::sweep;
use crate::gc::verify;
use crate::pacer::controller::{self as pacing, WORK_UNIT_BYTES};
use crate::telemetry::phases::Phase;
use crate::util::bug::AbortOnUnwind;

/// A mutator flushes its write-barrier buffer into the grey queue when it reaches this length.
pub(crate) const WB_FLUSH_LEN: usize = 256;

/// Work (objects scanned and edges followed, see `Tracer::drain_budget`) between two checks of
/// the background worker's pace and of the queue.
const DRAIN_SLICE: usize = 1024;

/// Work an assist does between two checks for a pause request. A unit is usually tens of
/// nanoseconds, but microseconds when it misses cache and TLB, so keep it small.
const ASSIST_SLICE: usize = 32;

/// Scan the scope owner's roots for the cycle `epoch` unless already done, handing the grey
/// objects to the background marker. Called by the mutator itself at scope entry, before any
/// user code of the scope.
pub(crate) fn scan_own_roots(h: &Shared, scope: &InScope<'_>, epoch: u64) {
    let rec = scope.record();
    let mut scanned = rec.scanned.lock();
    // SAFETY: the record is registered (a scope of it runs), we hold its scan lock, and we are
    // its owner at scope entry, before any user code: nobody writes the roots.
    unsafe { scan_roots_locked(h, rec, &mut scanned, epoch) };
}

/// Collector side of [`scan_own_roots`]: scan a mutator that has not entered a scope since STW 1.
/// Returns `false` if its roots stay unscanned because it is in a scope that contains a
/// blocking region (its owner scans them when that scope ends; see [`crate::gc::blocking`]).
///
/// # Safety
///
/// `rec` must be registered; the caller is the collector.
pub(crate) unsafe fn scan_parked(h: &Shared, rec: &MutatorRecord, epoch: u64) -> bool {
    let mut scanned = rec.scanned.lock();
    if *scanned == epoch || *scanned == SCAN_GONE {
        return true;
    }
    // Set by the owner under this lock before it leaves the managed state in a scope, and
    // cleared under it when that scope ends.
    if rec.blocking_scope.load(Ordering::Relaxed) {
        return false;
    }
    // SAFETY: the owner is not inside a scope: a scope of this cycle scans at entry (under
    // this lock, so it would have set `scanned`), and a scope begun before STW 1 could only
    // still be open if it blocked, which sets `blocking_scope` first. If the owner enters a
    // scope now, it waits for this lock, then finds the roots scanned.
    unsafe { scan_roots_locked(h, rec, &mut scanned, epoch) };
    true
}

/// Scan `rec`'s roots for `epoch` unless already done; `scanned` is its scan lock, held.
///
/// # Safety
///
/// `rec` must be registered (its roots alive: `Mutator::drop` marks the record gone under the
/// scan lock before freeing them), and nobody may write its roots during the call: their owner
/// writes them only inside its scopes, so the caller is the owner (between a scope's entry or
/// end and any user code) or the owner is outside every scope and must take the lock to enter.
pub(crate) unsafe fn scan_roots_locked(
    h: &Shared,
    rec: &MutatorRecord,
    scanned: &mut u64,
    epoch: u64,
) {
    if *scanned == epoch || *scanned == SCAN_GONE {
        return;
    }
    let guard = AbortOnUnwind("a root scan");
    let mut t = Tracer::new_concurrent(&h.mheap.arena);
    // SAFETY: the scan lock is held and did not read `SCAN_GONE`; the caller's contract says
    // nobody writes the roots meanwhile.
    unsafe { rec.roots_when_parked() }.trace_roots(&mut t);
    *scanned = epoch;
    h.pacer
        .stack_scan_work
        .fetch_add(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
    hand_over(h, &mut t);
    guard.disarm();
}

/// Shade the addresses of a write-barrier buffer (mutator side, while marking).
pub(crate) fn shade(h: &Shared, addrs: impl IntoIterator<Item = ObjAddr>) {
    let mut t = Tracer::new_concurrent(&h.mheap.arena);
    for a in addrs {
        t.edge(a.0);
    }
    hand_over(h, &mut t);
}

/// Shade the pointers a value holds (mutator side, while marking).
pub(crate) fn shade_value<T: crate::gc::trace::Trace + ?Sized>(h: &Shared, value: &T) {
    let guard = AbortOnUnwind("shading a stored value");
    let mut t = Tracer::new_concurrent(&h.mheap.arena);
    value.trace(&mut t);
    hand_over(h, &mut t);
    guard.disarm();
}

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
    // `mark_busy` stays raised until the work is handed back, so unwinding out of here would
    // leave marking unable to end, as well as lose the grey objects: abort instead.
    let guard = AbortOnUnwind("a mark assist");
    h.mark.busy.fetch_add(1, Ordering::SeqCst);
    let mut t = Tracer::new_concurrent(&h.mheap.arena);
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
            h.pacing()
                .update_limiter(false, h.mark.cycle.load(Ordering::Relaxed));
        }
        slices += 1;
        // A pause is waiting for this mutator, or the GC has taken too much of the CPU: stop
        // assisting (the debt stays for later).
        if h.safepoint.stop_requested() || h.pacer.limiting.load(Ordering::Relaxed) {
            break;
        }
        if !t.has_grey() {
            match h.mark.grey.pop() {
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
    hand_over(h, &mut t);
    // After the hand-over: a collector that sees no assist running finds their work queued.
    h.mark.busy.fetch_sub(1, Ordering::SeqCst);
    guard.disarm();
    h.stats.assist_ns.fetch_add(
        crate::util::clock::thread_cpu_ns().saturating_sub(last),
        Ordering::Relaxed,
    );
    debt - done as f64
}

/// Give a mutator-side tracer's grey objects and marked bytes to the background marker.
fn hand_over(h: &Shared, t: &mut Tracer) {
    h.pacer
        .heap_scan_work
        .fetch_add(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
    h.mark
        .marked_bytes_others
        .fetch_add(t.marked_bytes, Ordering::Relaxed);
    h.mark
        .marked_objects_others
        .fetch_add(t.marked_objects as u64, Ordering::Relaxed);
    t.marked_bytes = 0;
    t.marked_objects = 0;
    if t.has_grey() {
        h.mark.grey.push(t.take_grey_batch());
    }
}

/// A background mark helper thread (the workers after the collector thread in
/// [`crate::pacer::worker_shares`]): while marking, it takes grey work from the heap's queue, marks at its CPU
/// share, and hands back what is left after each slice, so that the workers, the assists and the
/// collector share the work. It counts itself in `mark_busy` before taking work and until it has
/// handed back the rest, which is what lets mark termination ignore helpers that hold nothing.
pub(crate) fn background_helper(h: &Shared, share: f64) {
    loop {
        {
            let mut g = h.mark.workers_wake.lock();
            while !h.mark.marking.load(Ordering::Acquire) && !h.control.stop.load(Ordering::Acquire)
            {
                g = h.mark.workers_wake.wait_for(g, Duration::from_millis(10));
            }
        }
        if h.control.stop.load(Ordering::Acquire) {
            return;
        }
        let mut pace = Pace::new(share, h.settings.procs);
        let mut t = Tracer::new_concurrent(&h.mheap.arena);
        while h.mark.marking.load(Ordering::Acquire) && !h.control.stop.load(Ordering::Relaxed) {
            if h.hooks.hold_marking.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            h.mark.busy.fetch_add(1, Ordering::SeqCst);
            match h.mark.grey.pop() {
                Some(b) => t.push_grey_batch(b),
                None => {
                    h.mark.busy.fetch_sub(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(50));
                    continue;
                }
            }
            let took = background_slice(h, &mut t);
            hand_over(h, &mut t);
            h.mark.busy.fetch_sub(1, Ordering::SeqCst);
            pace.after(h, took);
        }
    }
}

/// A background marker holding more grey objects than this shares half of them when the
/// heap's queue is empty (Go: `gcWork.balance`), so that assists and other workers find work.
const BALANCE_MIN: usize = 64;

/// One slice of background marking: drain up to [`DRAIN_SLICE`] units, count the scan work
/// (for the pacer, and as credit assists can steal) and the time, share work if the queue is
/// empty, and return the time (for the worker's pace).
fn background_slice(h: &Shared, t: &mut Tracer) -> Duration {
    let start = crate::util::clock::thread_cpu_ns();
    t.drain_budget(DRAIN_SLICE);
    if h.mark.grey.is_empty()
        && let Some(b) = t.split_grey(BALANCE_MIN)
    {
        h.mark.grey.push(b);
    }
    let work = t.take_work() * WORK_UNIT_BYTES;
    h.pacer.heap_scan_work.fetch_add(work, Ordering::Relaxed);
    h.pacer.bg_credit.fetch_add(work as i64, Ordering::Relaxed);
    Duration::from_nanos(crate::util::clock::thread_cpu_ns().saturating_sub(start))
}

/// Keeps a background worker's CPU use near its share (see [`crate::pacer::worker_shares`]),
/// and lets a fractional worker mark at idle priority (Go: idle mark workers) while a CPU is
/// spare.
///
/// Go runs an idle-priority mark worker on every processor that has nothing else to run. There
/// is no scheduler here to ask, so a fractional worker looks at the process's CPU clock every
/// [`IDLE_WINDOW`]: if over the last window the other threads left at least one whole CPU
/// unused (`cpus × wall − (process CPU − own marking) ≥ wall`), it marks without pausing
/// through the next window and books that time as *idle* marking, which the pacer's
/// cons/mark formula counts as Go counts idle utilisation and which the CPU limiter leaves out,
/// as Go's does (it took CPU nobody wanted). On two CPUs with one busy mutator that doubles the
/// marking rate; with two busy mutators nothing changes.
struct Pace {
    start: Instant,
    busy: Duration,
    share: f64,
    cpus: usize,
    /// Start of the current idle-detection window: wall time, process CPU, own marking.
    window: (Instant, u64, Duration),
    own: Duration,
    /// Marking at idle priority until the window ends.
    idle: bool,
}

/// How often a fractional worker checks for a spare CPU.
const IDLE_WINDOW: Duration = Duration::from_millis(2);

impl Pace {
    fn new(share: f64, cpus: usize) -> Pace {
        let now = Instant::now();
        Pace {
            start: now,
            busy: Duration::ZERO,
            share,
            cpus,
            window: (now, crate::util::clock::process_cpu_ns(), Duration::ZERO),
            own: Duration::ZERO,
            idle: false,
        }
    }

    /// Account `slice` of work (as background or idle marking); sleep if the worker is ahead
    /// of its share and no CPU is spare.
    fn after(&mut self, h: &Shared, slice: Duration) {
        self.own += slice;
        let counter = if self.idle {
            &h.stats.idle_mark_ns
        } else {
            self.busy += slice;
            &h.stats.bg_mark_ns
        };
        counter.fetch_add(slice.as_nanos() as u64, Ordering::Relaxed);
        if self.share >= 1.0 {
            return;
        }
        let now = Instant::now();
        let wall = now.saturating_duration_since(self.window.0);
        if wall >= IDLE_WINDOW {
            let process = crate::util::clock::process_cpu_ns();
            let others = process
                .saturating_sub(self.window.1)
                .saturating_sub((self.own - self.window.2).as_nanos() as u64);
            let spare = (self.cpus as u64 * wall.as_nanos() as u64).saturating_sub(others);
            // Only when the cycle is late (the heap has reached its goal, assists are being
            // paid): marking flat out on the "spare" CPU also takes the slack that absorbs the
            // machine's other work, which cost treechurn's operations up to 19 ms and its
            // pauses up to 4 ms when done all the time.
            let late = h.mheap.counters.heap_live.load(Ordering::Relaxed)
                >= h.pacer.heap_goal.load(Ordering::Relaxed);
            self.idle = late && spare >= wall.as_nanos() as u64;
            self.window = (now, process, self.own);
        }
        if self.idle {
            return;
        }
        let allowed = self.start.elapsed().as_secs_f64() * self.share;
        let ahead = self.busy.as_secs_f64() - allowed;
        if ahead > 0.0 {
            std::thread::sleep(
                Duration::from_secs_f64(ahead / self.share).min(Duration::from_millis(2)),
            );
        }
    }
}

/// One concurrent cycle, run on the collector thread.
pub(crate) fn gc_cycle(h: &Shared) {
    let t_begin = Instant::now();
    sweep::finish_sweep(h);

    // ---- STW 1: sweep termination and mark setup.
    collector::note_sweep_done(h);
    let mut world = StoppedWorld::stop(h);
    let cycle = collector::begin_cycle(h);
    for m in world.mutators() {
        // The spans go back to the partial lists: they are swept and stay usable during
        // marking.
        m.local.cache.flush(&h.mheap, false, true);
        m.local.assist_debt = 0.0;
    }
    debug_assert_eq!(h.mheap.central.unswept_count(), 0);
    let counters = &h.mheap.counters;
    counters.alloc_black.store(0, Ordering::Relaxed);
    counters.alloc_black_objects.store(0, Ordering::Relaxed);
    h.mark.marked_bytes_others.store(0, Ordering::Relaxed);
    h.mark.marked_objects_others.store(0, Ordering::Relaxed);
    h.mark.cycle.store(cycle, Ordering::Relaxed);
    // Heap at the start, goal, trigger off while marking, first assist ratio.
    let heap_start = counters.heap_live.load(Ordering::Relaxed);
    let cycle_goal = h.pacing().start_cycle();
    let (assist0, bg0, idle0) = (
        h.stats.assist_ns.load(Ordering::Relaxed),
        h.stats.bg_mark_ns.load(Ordering::Relaxed),
        h.stats.idle_mark_ns.load(Ordering::Relaxed),
    );
    let mut t = Tracer::new_concurrent(&h.mheap.arena);
    h.stash.lock().trace(&mut t);
    h.pacer
        .globals_scan_work
        .store(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
    // Published to mutators by the restart's `Release` store, which their scope entry acquires.
    h.mark.marking.store(true, Ordering::Relaxed);
    h.mark.barrier_on.store(true, Ordering::Relaxed);
    let stw1 = world.end_pause(cycle, Phase::SweepTermination);
    h.pacing().update_limiter(true, cycle);
    h.mark.workers_wake.wake_all();

    // ---- Concurrent mark, ending with the world stopped (STW 2).
    let t_mark = Instant::now();
    let mut world = mark(h, &mut t, cycle);
    let mark_time = world.t_stop.saturating_duration_since(t_mark);
    h.phases
        .record_span(cycle, Phase::Mark, t_mark, world.t_stop);

    // ---- STW 2: mark termination. Dead weak references are cleared after the restart, in the
    // weak-clearing window (nothing is swept meanwhile), so the pause does not grow with them.
    for m in world.mutators() {
        // Writing the windows back while marking is still on clears the pre-set marks of the
        // slots they did not hand out.
        m.local.cache.flush(&h.mheap, true, false);
        m.local.assist_debt = 0.0;
    }
    h.mark.marking.store(false, Ordering::Relaxed);
    h.mark.barrier_on.store(false, Ordering::Relaxed);
    let marked = t.marked_bytes
        + h.mark.marked_bytes_others.load(Ordering::Relaxed)
        + counters.alloc_black.load(Ordering::Relaxed);
    h.pacer
        .heap_scan_work
        .fetch_add(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
    let heap_end = counters.heap_live.load(Ordering::Relaxed);
    let assist_ns = h.stats.assist_ns.load(Ordering::Relaxed) - assist0;
    let idle_ns = h.stats.idle_mark_ns.load(Ordering::Relaxed) - idle0;
    counters.heap_marked.store(marked, Ordering::Relaxed);
    counters.heap_live.store(marked, Ordering::Relaxed);
    let end = h.pacing().end_cycle(pacing::CycleMeasures {
        marked,
        heap_end,
        mark_ns: mark_time.as_nanos() as u64,
        assist_ns,
        idle_ns,
        concurrent: true,
    });
    h.stats.last_marked_objects.store(
        t.marked_objects as u64
            + h.mark.marked_objects_others.load(Ordering::Relaxed)
            + counters.alloc_black_objects.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    h.mheap.central.advance_sweep_gen();
    if h.settings.verify {
        sweep::end_weak_window(h);
        sweep::finish_sweep(h);
        verify::verify_or_abort(h, &mut world, cycle);
    }
    let stw2 = world.end_pause(cycle, Phase::MarkTermination);
    *h.sweep.started.lock() = Some((cycle, Instant::now()));
    if end.cycle_due {
        collector::request_cycle(h);
    }
    h.pacing().update_limiter(true, cycle);
    let base = crate::gc::report::record_base(
        h,
        cycle,
        t_begin,
        (heap_start, heap_end, marked),
        cycle_goal,
        end.cons_mark,
    );
    crate::gc::report::cycle_done(
        h,
        crate::telemetry::gctrace::CycleRecord {
            concurrent: true,
            sweep_termination: stw1,
            mark: mark_time,
            mark_termination: stw2,
            assist_cpu: Duration::from_nanos(assist_ns),
            background_cpu: Duration::from_nanos(h.stats.bg_mark_ns.load(Ordering::Relaxed) - bg0),
            idle_cpu: Duration::from_nanos(idle_ns),
            stack_scan: h.pacer.stack_scan_work.load(Ordering::Relaxed),
            globals_scan: h.pacer.globals_scan_work.load(Ordering::Relaxed),
            heap_scan: h.pacer.heap_scan_work.load(Ordering::Relaxed),
            limiter_on: h.pacer.limiting.load(Ordering::Relaxed),
            ..base
        },
    );
    // With the world running, in the weak-clearing window: clear dead weak references, queue
    // the spans for the sweepers (O(spans)), then let sweeping begin.
    if h.mheap.central.sweep_held() {
        while h.hooks.hold_weak_clearing.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
        sweep::end_weak_window(h);
    }
    h.stats.record_cycle_end(mark_time, t_begin.elapsed());
    collector::complete_cycle(h, cycle);
}

/// The concurrent mark phase: scan parked mutators, drain the grey queue at the worker's pace,
/// and attempt termination whenever no grey work is left. Returns with the world stopped,
/// marking complete.
fn mark<'h>(h: &'h Shared, t: &mut Tracer, epoch: u64) -> StoppedWorld<'h> {
    let mut pace = Pace::new(
        crate::pacer::worker_shares(h.settings.procs)[0],
        h.settings.procs,
    );
    loop {
        while h.hooks.hold_marking.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
        }
        // Mutators that have not entered a scope since STW 1: scan them here.
        let records = h.registry.lock().clone();
        let mut blocked = false;
        for r in &records {
            // SAFETY: registered (the `Arc` keeps the record; `Mutator::drop` marks it gone
            // under the scan lock before freeing the roots); we are the collector.
            blocked |= !unsafe { scan_parked(h, r, epoch) };
        }
        loop {
            // One batch at a time: the rest stays where assists can take it.
            if !t.has_grey() {
                match h.mark.grey.pop() {
                    Some(batch) => t.push_grey_batch(batch),
                    None => break,
                }
            }
            let took = background_slice(h, t);
            h.pacing().revise();
            h.pacing().update_limiter(false, epoch);
            pace.after(h, took);
        }
        // A scope that was blocked across STW 1 holds its roots (and Rust locals) back until
        // it ends: wait for it with the world running, draining whatever arrives meanwhile.
        if blocked {
            crate::gc::blocking::wait_for_scopes(h, || {
                records.iter().any(|r| {
                    let s = *r.scanned.lock();
                    s != epoch && s != SCAN_GONE && r.blocking_scope.load(Ordering::Relaxed)
                })
            });
            continue;
        }
        drop(records);
        // Attempt termination, unless grey work arrived meanwhile or an assist holds some
        // (the attempt would be a pause for nothing: the stop would wait for the assist to
        // hand its work back, and marking would resume).
        if !h.mark.grey.is_empty() {
            continue;
        }
        if h.mark.busy.load(Ordering::SeqCst) > 0 {
            h.pacing().update_limiter(false, epoch);
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        let mut world = StoppedWorld::stop(h);
        for m in world.mutators() {
            for a in m.local.wb_buf.drain(..) {
                t.edge(a.0);
            }
        }
        let unscanned = world.records().iter().any(|r| {
            let s = *r.scanned.lock();
            s != epoch && s != SCAN_GONE
        });
        // Helpers are not stopped with the world: none may hold grey work either. (A helper
        // counts itself busy before it pops a batch, `SeqCst` on both sides: if the queue
        // reads empty after its pop, the count read after that sees it.)
        if !t.has_grey()
            && h.mark.grey.is_empty()
            && h.mark.busy.load(Ordering::SeqCst) == 0
            && !unscanned
        {
            return world;
        }
        world.end_pause(epoch, Phase::MarkTerminationRetry);
    }
}

/// Loom model of mark termination with barrier work in flight: a mutator shades in its scopes
/// (into its buffer, which it flushes to the global queue when it fills), while the collector
/// drains the queue and attempts termination as `mark` does: stop the world with the real
/// safepoint handshake, flush the buffer, and end only if nothing is grey. Checked in every
/// interleaving (two preemptions): when the collector ends marking, every item the mutator
/// shaded has been processed; and the buffer (a loom `UnsafeCell`, which reports unsynchronised
/// access) is never touched by both at once.
///
/// `RUSTFLAGS="--cfg loom" cargo test -p gc-core --lib --release loom_`
#[cfg(all(test, loom))]
mod loom_tests {
    use crate::gc::safepoint::{OUTSIDE, Safepoint};
    use crate::util::primitive::AtomicU8;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};

    /// The mutator's barrier buffer: touched by the mutator inside its scopes and by the
    /// collector with the world stopped.
    struct Buffer(UnsafeCell<Vec<u32>>);
    // SAFETY: the handshake orders the two sides' accesses (what this model checks; loom's
    // `UnsafeCell` would report a violation).
    unsafe impl Sync for Buffer {}

    #[test]
    fn loom_termination_sees_buffered_and_queued_work() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let sp = Arc::new(Safepoint::default());
            let state = Arc::new(AtomicU8::new(OUTSIDE));
            let buf = Arc::new(Buffer(UnsafeCell::new(Vec::new())));
            let queue = Arc::new(Mutex::new(Vec::<u32>::new()));
            let produced = Arc::new(AtomicUsize::new(0));
            let mutator = {
                let (sp, state, buf, queue, produced) = (
                    sp.clone(),
                    state.clone(),
                    buf.clone(),
                    queue.clone(),
                    produced.clone(),
                );
                loom::thread::spawn(move || {
                    for k in 0..2 {
                        sp.enter(&state);
                        let full = buf.0.with_mut(|v| {
                            // SAFETY: inside a scope, the mutator owns its buffer.
                            let v = unsafe { &mut *v };
                            v.push(k);
                            produced.fetch_add(1, Ordering::SeqCst);
                            (v.len() >= 2).then(|| std::mem::take(v))
                        });
                        if let Some(batch) = full {
                            queue.lock().unwrap().extend(batch);
                        }
                        sp.exit(&state);
                    }
                })
            };
            let mut processed = 0;
            loop {
                processed += std::mem::take(&mut *queue.lock().unwrap()).len();
                sp.stop(std::iter::once(&*state));
                // SAFETY: world stopped: the mutator is outside its scopes.
                processed += buf.0.with_mut(|v| std::mem::take(unsafe { &mut *v }).len());
                let grey_left = !queue.lock().unwrap().is_empty();
                if !grey_left {
                    assert_eq!(
                        processed,
                        produced.load(Ordering::SeqCst),
                        "marking ended with shaded work unprocessed"
                    );
                    sp.start();
                    break;
                }
                sp.start();
            }
            mutator.join().unwrap();
        });
    }
}
