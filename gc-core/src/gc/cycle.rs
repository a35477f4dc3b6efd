//! One GC cycle, in both modes (Go: `gcStart`, `gcBgMarkWorker`, `gcMarkDone`,
//! `gcMarkTermination` in `mgc.go`). Stop-the-world marking (`Config::concurrent(false)`) is the
//! same cycle with the world kept stopped from STW 1 to the end of mark termination.
//!
//! | phase | world | concurrent (default) | stop-the-world mode |
//! |-------|-------|----------------------|---------------------|
//! | **sweep termination** | running | the last cycle's sweep is finished, so all mark bits are clear | same |
//! | **STW 1**: mark setup | stopped | caches flushed, the stash greyed; `marking` and the write barrier on; the world restarts | caches flushed; the stash, every root set and barrier buffer greyed; the world stays stopped (and is stopped only when no scope holds a blocking region: see `gc::blocking`) |
//! | **mark** | running / stopped | each mutator's roots scanned once (by itself before its first scope, or by the collector while it is parked); background workers and assists drain the queue; mutators shade through the barrier and allocate black | every mark worker drains the queue flat out ([`Job::StopTheWorld`]) |
//! | **STW 2**: mark termination | stopped | barrier buffers flushed; if that found grey objects the world restarts and marking goes on; else caches flushed, marking and the barrier off | same pause |
//! | | | figures to the pacer, sweep generation advanced: the weak-clearing window opens (dead weak references are cleared right after the restart, then the spans queued for sweeping); verify mode clears weaks, sweeps and verifies in the pause | weak references cleared and spans queued in the pause |
//! | **sweep** | running | background and lazy sweeping ([`crate::gc::sweep`]) | same |
//!
//! # Why marking is complete (snapshot at the beginning)
//!
//! The claim: when STW 2 ends marking, every object reachable from a root is marked. Let *S*
//! be the objects reachable at STW 1.
//!
//! * **Roots are snapshotted at STW 1.** The stash is greyed in STW 1; each mutator's roots are
//!   scanned exactly as they were at STW 1 (see [`crate::gc::mark::roots`]).
//! * **Every edge of the snapshot is seen.** The marker reads the current value of each slot it
//!   scans; a slot overwritten since STW 1 had its old value shaded by the write barrier first
//!   (Yuasa deletion barrier), and barrier buffers are flushed before marking may end. So
//!   every object of *S* is marked by termination.
//! * **Nothing outside *S* ∪ new objects becomes reachable.** An object unreachable at STW 1
//!   cannot be named by any mutator again, except through a weak reference, and
//!   `GcWeak::upgrade` shades its target while marking. Objects allocated during marking are
//!   allocated black (below) and never scanned, so the marker never reads an object whose
//!   initialisation it has not been ordered after.
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
//! # Termination of concurrent marking
//!
//! The collector drains the queue until it finds it empty, then attempts mark termination: it
//! stops the world, flushes every mutator's barrier buffer into its own grey stack and checks
//! that every mutator's roots were scanned. With the world stopped no mutator can shade or scan,
//! so if the collector then holds no grey object, the queue is empty and no marker is busy, no
//! grey object exists anywhere (see [`crate::gc::mark::work`]): marking is complete. Otherwise it
//! restarts the world and resumes. Each attempt is a short pause (the barrier buffers are at
//! most [`WB_FLUSH_LEN`](crate::gc::barrier::WB_FLUSH_LEN) entries each).
//!
//! **Ephemerons and finalization.** Strong marking complete is not yet the end: the values of
//! ephemeron entries whose keys were marked after their tables were scanned must be traced
//! (`gc::ephemeron`), and unreachable objects registered for finalization are resurrected (once
//! per cycle, or in further rounds when a resurrected object reaches a finalizer queue that was
//! not marked: `gc::finalize`). The collector runs an ephemeron round with the world running
//! whenever it runs out of grey work, and, in the attempt that found nothing grey, rounds to the
//! fixpoint and then resurrection with the world stopped ([`settle`]); if they grey anything the
//! world restarts and marking goes on. So an attempt ends marking only when nothing is grey, no
//! ephemeron entry with a marked key has an unmarked value, and resurrection has run.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::gc::collector::{begin_cycle, complete_cycle, note_sweep_done, request_cycle};
use crate::gc::heap::Shared;
use crate::gc::mark::roots::scan_parked;
use crate::gc::mark::tracer::{Marking, Tracer};
use crate::gc::mark::work::run_stw_worker;
use crate::gc::mark::workers::{Job, Pace, background_slice};
use crate::gc::registry::{MutatorRecord, SCAN_GONE};
use crate::gc::stw::StoppedWorld;
use crate::gc::sweep;
use crate::gc::verify;
use crate::pacer::controller::{CycleMeasures, WORK_UNIT_BYTES};
use crate::telemetry::gctrace::CycleRecord;
use crate::telemetry::phases::Phase;
use crate::util::clock::CpuLap;

/// Run one cycle on the collector thread.
pub(crate) fn gc_cycle(h: &Shared) {
    let concurrent = h.settings.concurrent;
    let t_begin = Instant::now();

    // ---- Sweep termination.
    sweep::finish_sweep(h);
    note_sweep_done(h);

    // Stop-the-world mode: mark termination is in the pause that follows.
    if !concurrent {
        crate::gc::collector::free_kept_spans(h);
    }

    // ---- STW 1: mark setup.
    let mut world = if concurrent {
        StoppedWorld::stop(h)
    } else {
        stop_without_blocking_scopes(h)
    };
    // The cycle's start in its record: the stop request of its STW 1 (Go: `tSweepTerm`; the
    // last attempt, if a blocked scope made the collector stop again), not the sweeping
    // before it.
    let t_start = world.t_stop;
    let cycle = begin_cycle(h);
    if h.hooks.hold_after_begin.load(Ordering::Relaxed) {
        h.hooks.held_after_begin.store(true, Ordering::SeqCst);
        while h.hooks.hold_after_begin.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_micros(200));
        }
        h.hooks.held_after_begin.store(false, Ordering::SeqCst);
    }
    h.ephemerons.start_cycle();
    h.finalize.start_cycle();
    for m in world.mutators() {
        // The spans go back to the partial lists: they are swept and stay usable during
        // concurrent marking.
        m.local.cache.flush(&h.mheap, false, true);
        m.local.assist_debt = 0.0;
    }
    debug_assert_eq!(h.mheap.central.unswept_count(), 0);
    let counters = &h.mheap.counters;
    counters.alloc_black.store(0, Ordering::Relaxed);
    counters.alloc_black_objects.store(0, Ordering::Relaxed);
    h.mark.marked_bytes_others.store(0, Ordering::Relaxed);
    h.mark.marked_objects_others.store(0, Ordering::Relaxed);
    h.mark.work.shared_batches.store(0, Ordering::Relaxed);
    h.mark.cycle.store(cycle, Ordering::Relaxed);
    h.pacer.limited_in_cycle.store(false, Ordering::Relaxed);
    // Heap at the start, goal, trigger off while marking, first assist ratio.
    let heap_start = counters.heap_live.load(Ordering::Relaxed);
    let (cycle_trigger, cycle_goal) = h.controller().start_cycle();
    crate::gc::collector::note_cycle_started(h);
    let (assist0, bg0, idle0) = (
        h.stats.assist_ns.load(Ordering::Relaxed),
        h.stats.bg_mark_ns.load(Ordering::Relaxed),
        h.stats.idle_mark_ns.load(Ordering::Relaxed),
    );
    let helpers = h.mark.helpers.load(Ordering::Relaxed);
    let mut t = Tracer::marking(
        h,
        match (concurrent, helpers) {
            (true, _) => Marking::Local,
            (false, 0) => Marking::Alone,
            (false, _) => Marking::Shared(&h.mark.work),
        },
    );
    h.stash.lock().trace(&mut t);
    h.pacer
        .globals_scan_work
        .store(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);

    // ---- Mark, ending with the world stopped.
    let t_mark = Instant::now();
    let (mut world, mark_time, stw1, wait1) = if concurrent {
        // Published to mutators by the restart's `Release` store, which their scope entry
        // acquires.
        h.mark.marking.store(true, Ordering::Relaxed);
        h.mark.barrier_on.store(true, Ordering::Relaxed);
        let wait1 = (world.scope_wait, world.waited_for);
        let stw1 = world.end_pause(cycle, Phase::SweepTermination);
        h.controller().update_limiter(true, cycle);
        h.mark.pool.start(Job::Background);
        let t_mark = Instant::now();
        let world = concurrent_mark(h, &mut t, cycle);
        h.phases
            .record_span(cycle, Phase::Mark, t_mark, world.t_stop);
        let mark_time = world.t_stop.saturating_duration_since(t_mark);
        (world, mark_time, stw1, wait1)
    } else {
        for m in world.mutators() {
            m.roots.trace_roots(&mut t);
            for a in m.local.wb_buf.drain(..) {
                t.edge(a.0);
            }
        }
        // The roots' scan work, as a concurrent cycle books it when it scans each mutator's
        // roots (the pacer's stack term, gctrace's `MB stacks`).
        h.pacer
            .stack_scan_work
            .fetch_add(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
        h.mark.work.start_workers(helpers + 1);
        h.mark.pool.start(Job::StopTheWorld {
            workers: helpers + 1,
        });
        run_stw_worker(&h.mark.work, &mut t);
        h.mark.pool.wait(helpers);
        // Ephemeron rounds and resurrection, each followed by marking what they greyed (the
        // collector alone: they are rare and usually small).
        let mut resurrection = Resurrection::NotYet;
        while settle(h, &mut t, &mut resurrection) {
            h.mark.work.start_workers(1);
            run_stw_worker(&h.mark.work, &mut t);
        }
        (
            world,
            t_mark.elapsed(),
            Duration::ZERO,
            (Duration::ZERO, None),
        )
    };
    // The longer of the two stops' waits names the mutator.
    let (wait1, waited1) = wait1;
    let (wait2, waited2) = (world.scope_wait, world.waited_for);
    let waited_for = if wait2 >= wait1 {
        waited2.or(waited1)
    } else {
        waited1.or(waited2)
    };

    // ---- STW 2: mark termination. In concurrent mode dead weak references are cleared after
    // the restart, in the weak-clearing window (nothing is swept meanwhile), so the pause does
    // not grow with them.
    for m in world.mutators() {
        // Writing the windows back while marking is still on clears the pre-set marks of the
        // slots they did not hand out.
        m.local.cache.flush(&h.mheap, concurrent, false);
        m.local.assist_debt = 0.0;
    }
    h.mark.marking.store(false, Ordering::Relaxed);
    h.mark.barrier_on.store(false, Ordering::Relaxed);
    // The ephemeron tables still pending hold the dead entries, cleared with the weak
    // references.
    h.ephemerons.end_marking();
    let reached = t.marked.bytes + h.mark.marked_bytes_others.load(Ordering::Relaxed);
    let marked = reached + counters.alloc_black.load(Ordering::Relaxed);
    h.pacer
        .heap_scan_work
        .fetch_add(t.take_work() * WORK_UNIT_BYTES, Ordering::Relaxed);
    let heap_end = counters.heap_live.load(Ordering::Relaxed);
    let assist_ns = h.stats.assist_ns.load(Ordering::Relaxed) - assist0;
    let idle_ns = h.stats.idle_mark_ns.load(Ordering::Relaxed) - idle0;
    counters.heap_marked.store(marked, Ordering::Relaxed);
    counters.heap_reached.store(reached, Ordering::Relaxed);
    counters.heap_live.store(marked, Ordering::Relaxed);
    let end = h.controller().end_cycle(CycleMeasures {
        marked,
        reached,
        heap_end,
        mark_ns: mark_time.as_nanos() as u64,
        assist_ns,
        idle_ns,
        concurrent,
    });
    h.stats.last_marked_objects.store(
        t.marked.objects as u64
            + h.mark.marked_objects_others.load(Ordering::Relaxed)
            + counters.alloc_black_objects.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    h.stats.last_shared_batches.store(
        h.mark.work.shared_batches.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    h.mheap.central.advance_sweep_gen();
    if !concurrent || h.settings.verify {
        sweep::end_weak_window(h);
    }
    if h.settings.verify {
        sweep::finish_sweep(h);
        verify::verify_or_abort(h, &mut world, cycle);
    }
    let stw2 = world.end_pause(
        cycle,
        if concurrent {
            Phase::MarkTermination
        } else {
            Phase::StopTheWorldCycle
        },
    );
    *h.sweep.started.lock() = Some((cycle, Instant::now()));
    // Background workers asleep for want of work leave the mark phase (they are not stopped
    // with the world; woken after the pause, whose length the wake-up would add to).
    h.mark.work.wake_waiting();
    // The next cycle starts at once only if the mutators allocated during this one, or a
    // setting changed meanwhile (its setter left the request to this cycle's end). A heap
    // that stays past its trigger with nobody allocating (a memory limit that the live heap,
    // or spans left sparse by freed objects, exceed: the goal is then the marked heap)
    // collected back to back for nothing, half the CPU of an idle program for as long as it
    // was idle. As in Go, where only an allocation starts a cycle, the next span a mutator
    // takes does (`gc::malloc`), and so does a refused allocation.
    let setting_changed = h.control.setting_changed.swap(false, Ordering::Relaxed);
    if end.cycle_due && (heap_end > heap_start || setting_changed) {
        request_cycle(h);
    }
    if concurrent {
        h.controller().update_limiter(true, cycle);
    }
    let base = crate::gc::report::record_base(
        h,
        cycle,
        t_start,
        (heap_start, heap_end, marked),
        (cycle_trigger, cycle_goal),
        end.cons_mark,
    );
    let forced = crate::gc::report::cycle_done(
        h,
        CycleRecord {
            concurrent,
            sweep_termination: stw1,
            mark: mark_time,
            mark_termination: stw2,
            sweep_termination_wait: wait1,
            mark_termination_wait: wait2,
            waited_for,
            assist_cpu: Duration::from_nanos(assist_ns),
            background_cpu: Duration::from_nanos(h.stats.bg_mark_ns.load(Ordering::Relaxed) - bg0),
            idle_cpu: Duration::from_nanos(idle_ns),
            stack_scan: h.pacer.stack_scan_work.load(Ordering::Relaxed),
            globals_scan: h.pacer.globals_scan_work.load(Ordering::Relaxed),
            heap_scan: h.pacer.heap_scan_work.load(Ordering::Relaxed),
            limiter_on: h.pacer.limited_in_cycle.load(Ordering::Relaxed),
            ephemeron_rounds: h.ephemerons.rounds_in_cycle.load(Ordering::Relaxed),
            finalizers_queued: h
                .finalize
                .finalizers_queued_in_cycle
                .load(Ordering::Relaxed),
            cleanups_pending: h.finalize.cleanups_pending(),
            heap_goal_extended: h.pacer.extended_goal.load(Ordering::Relaxed),
            heap_reached: reached,
            ..base
        },
    );
    // With the world running, in the weak-clearing window: clear dead weak references, queue
    // the spans for the sweepers (O(spans)), then let sweeping begin.
    if h.mheap.central.sweep_held() {
        while h.hooks.hold_weak_clearing.load(Ordering::Relaxed) && !h.control.state.lock().shutdown
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        sweep::end_weak_window(h);
    }
    h.stats
        .record_cycle_end(mark_time, t_begin.elapsed(), forced);
    complete_cycle(h, cycle);
}

/// Stop the world at a moment when no mutator is in a scope that contains a blocking region
/// (its Rust locals would be invisible to this cycle, which also sweeps; see
/// [`crate::gc::blocking`]). Such a scope found after stopping restarts the world (a pause
/// recorded as [`Phase::StopTheWorldRetry`]), and the collector waits for it.
fn stop_without_blocking_scopes(h: &Shared) -> StoppedWorld<'_> {
    let blocked =
        |reg: &[Arc<MutatorRecord>]| reg.iter().any(|r| r.blocking_scope.load(Ordering::Acquire));
    loop {
        if blocked(&h.registry.lock()) {
            crate::gc::blocking::wait_for_scopes(h, || blocked(&h.registry.lock()));
            continue;
        }
        let world = StoppedWorld::stop(h);
        // The flag is written before the mutator's `Release` store of `OUTSIDE`, which the
        // stop acquired.
        if !blocked(world.records()) {
            return world;
        }
        let next = h.control.state.lock().started + 1;
        world.end_pause(next, Phase::StopTheWorldRetry);
    }
}

/// Free the spans kept empty ([`free_kept_spans`](crate::gc::collector::free_kept_spans)) from
/// the concurrent mark loop: the marking so far is booked first, and the mark lap restarts
/// after, since the freeing is booked as background sweeping. Returns how many it freed.
fn free_kept_while_marking(h: &Shared, pace: &mut Pace, lap: &mut CpuLap) -> usize {
    pace.book(h, lap.finish());
    let freed = crate::gc::collector::free_kept_spans(h);
    lap.finish();
    freed
}

/// The concurrent mark phase: scan parked mutators, drain the grey queue at the worker's pace,
/// and attempt termination whenever no grey work is left. Returns with the world stopped,
/// marking complete.
fn concurrent_mark<'h>(h: &'h Shared, t: &mut Tracer, cycle: u64) -> StoppedWorld<'h> {
    debug_assert!(
        !h.mark.work.is_closed(),
        "the queue is closed to helpers at a mark phase's start"
    );
    let mut pace = Pace::new(h, crate::pacer::worker_shares(h.settings.procs)[0]);
    // Raised for the whole mark phase except the waits for blocked scopes: while it is, the
    // collector thread will earn credit, find grey work, or stop the world (which wakes
    // waiting assists), so an assist may wait for it ([`crate::gc::mark::assist`]).
    h.mark.draining.store(true, Ordering::SeqCst);
    let mut lap = CpuLap::start();
    let mut resurrection = Resurrection::NotYet;
    loop {
        if h.hooks.hold_marking.load(Ordering::Relaxed) {
            // A test holds marking: nothing will earn credit until it lets go.
            h.mark.draining.store(false, Ordering::SeqCst);
            crate::gc::mark::assist::wake_parked(h);
            // (Not past the heap's shutdown: a test that fails while holding marking drops its
            // heap, whose drop waits for this thread.)
            while h.hooks.hold_marking.load(Ordering::Relaxed) && !h.control.state.lock().shutdown {
                std::thread::sleep(Duration::from_micros(200));
            }
            h.mark.draining.store(true, Ordering::SeqCst);
        }
        // Mutators that have not entered a scope since STW 1: scan them here.
        let records = h.registry.lock().clone();
        let mut blocked = false;
        for r in &records {
            // SAFETY: registered (the `Arc` keeps the record; `Mutator::drop` marks it gone
            // under the scan lock before freeing the roots); we are the collector.
            blocked |= !unsafe { scan_parked(h, r, cycle) };
        }
        h.mark.terminating.store(false, Ordering::SeqCst);
        loop {
            // One batch at a time: the rest stays where assists can take it.
            if !t.has_grey() {
                match h.mark.work.pop() {
                    Some(batch) => t.push_grey_batch(batch),
                    None => break,
                }
            }
            background_slice(h, t);
            h.controller().revise();
            h.controller().update_limiter(false, cycle);
            if let Some(cpu) = lap.lap() {
                pace.after(h, cpu);
            }
        }
        if h.hooks.stall_holding_pacer.load(Ordering::Relaxed) {
            let _pacer = h.pacer.model.lock();
            h.hooks.pacer_stalled.store(true, Ordering::SeqCst);
            while h.hooks.stall_holding_pacer.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_micros(200));
            }
            h.hooks.pacer_stalled.store(false, Ordering::SeqCst);
        }
        // Out of grey work: an ephemeron round with the world running (values whose keys were
        // marked since their tables were scanned); if it greyed anything, mark on.
        if crate::gc::ephemeron::round(h, t) {
            continue;
        }
        // A scope that was blocked across STW 1 holds its roots (and Rust locals) back until
        // it ends: wait for it with the world running, draining whatever arrives meanwhile.
        if blocked {
            // No credit will come from here until that scope ends, which may wait for a
            // mutator in an assist: assists must not wait on (see `assist::park`).
            h.mark.draining.store(false, Ordering::SeqCst);
            crate::gc::mark::assist::wake_parked(h);
            crate::gc::blocking::wait_for_scopes(h, || {
                records.iter().any(|r| {
                    let s = *r.scanned.lock();
                    s != cycle && s != SCAN_GONE && r.blocking_scope.load(Ordering::Relaxed)
                })
            });
            h.mark.draining.store(true, Ordering::SeqCst);
            continue;
        }
        drop(records);
        // Marking is out of work everywhere (nothing queued, no assist or helper holding grey
        // objects): free the spans kept empty that no allocation took, before anything waits
        // for the stop (booked as background sweeping, so the mark lap restarts after it),
        // then look for work again. Not earlier: this thread runs out of work whenever an
        // assist holds it all, as at the start of most phases, and the 1–2 ms of freeing there
        // (binary-trees: 20–30 MB of spans a cycle) kept the spare CPU from marking what the
        // assist handed back. Not later either, once `terminating` is raised: assists past the
        // goal then wait on the CPU for a stop that would not come until the freeing is done.
        if h.mheap.central.kept_bytes() > 0
            && h.mark.work.is_empty()
            && h.mark.work.busy() == 0
            && free_kept_while_marking(h, &mut pace, &mut lap) > 0
        {
            continue;
        }
        // What the first resurrection round would look at with the world stopped, looked at
        // now with it running; not once `terminating` is raised, for the reason above. The
        // attempt below needs a look taken with no grey work left anywhere (`fresh`); a first
        // look may come earlier, while an assist still holds grey work (this loop then comes
        // back every 20 µs), so that a walk of every entry overlaps the assists' marking rather
        // than lengthen the mark phase; looks again wait for the end (each goes over the
        // entries not marked at the last, which early in a phase may be most of them).
        let no_grey = h.mark.work.is_empty() && h.mark.work.busy() == 0;
        let fresh = resurrection == Resurrection::NotYet && no_grey;
        if fresh
            || (resurrection == Resurrection::NotYet && !crate::gc::finalize::prechecked(h, cycle))
        {
            crate::gc::finalize::precheck(h, t);
        }
        // No credit will come until the attempt fails: assists may allocate on until the stop
        // while the heap is below its goal; past it they keep waiting, for the stop.
        h.mark.terminating.store(true, Ordering::SeqCst);
        crate::gc::mark::assist::wake_parked(h);
        // Attempt termination, unless grey work arrived meanwhile or an assist holds some
        // (the attempt would be a pause for nothing: the stop would wait for the assist to
        // hand its work back, and marking would resume).
        if !h.mark.work.is_empty() {
            continue;
        }
        if h.mark.work.busy() > 0 {
            h.controller().update_limiter(false, cycle);
            std::thread::sleep(Duration::from_micros(20));
            continue;
        }
        // The work ran out between the look above and here (an assist finished what it held)
        // and the first round has not run: look again first, else the round in the pause would
        // look at what was unmarked then, up to every registration.
        if resurrection == Resurrection::NotYet && !fresh {
            continue;
        }
        // The work ran out between the test above and here (an assist finished what it
        // held): free the kept spans now, since none may be kept at mark termination.
        if h.mheap.central.kept_bytes() > 0 {
            free_kept_while_marking(h, &mut pace, &mut lap);
        }
        // Book the marking so far before the pause (which books its own time).
        pace.book(h, lap.finish());
        let mut world = StoppedWorld::stop(h);
        for m in world.mutators() {
            for a in m.local.wb_buf.drain(..) {
                t.edge(a.0);
            }
        }
        let unscanned = world.records().iter().any(|r| {
            let s = *r.scanned.lock();
            s != cycle && s != SCAN_GONE
        });
        // Helpers are not stopped with the world: none may hold grey work either, and none may
        // take a batch while the check runs, or one could hand back what it did not mark
        // between the reads of the queue and of the count (`MarkWork::idle_and_empty` closes
        // the queue to them first; `gc::mark::work`'s module docs).
        let done = !t.has_grey()
            && h.mark.work.idle_and_empty()
            && !unscanned
            && !settle(h, t, &mut resurrection);
        // (A check that read the queue and the count without closing the queue first could
        // pass with a helper's hand-back in flight: caught here in every test that ends a
        // concurrent cycle, rather than left to that race.)
        debug_assert!(
            !done || h.mark.work.is_closed(),
            "marking ended without closing the queue to the helpers"
        );
        h.mark.work.reopen();
        if done {
            h.mark.draining.store(false, Ordering::SeqCst);
            h.mark.terminating.store(false, Ordering::SeqCst);
            pace.finish(h);
            return world;
        }
        world.end_pause(cycle, Phase::MarkTerminationRetry);
        // Helpers that found the queue closed during the check sleep with work queued.
        h.mark.work.wake_all_if_queued();
        // The pause books its own time (wall × CPUs): the lap starts again after it.
        lap.finish();
    }
}

/// Where a cycle's resurrection of objects registered for finalization stands (`settle`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resurrection {
    /// No round yet.
    NotYet,
    /// A round queued objects: the next completion of marking runs another.
    Rounds,
    /// A round queued nothing: done for this cycle.
    Done,
}

/// With the world stopped (or every stop-the-world worker returned) and no grey work anywhere:
/// run ephemeron rounds to the fixpoint, then resurrection rounds for the unreachable objects
/// registered for finalization until one queues nothing (`gc::finalize`). Whether marking must
/// go on: something was greyed (rounds that mark only noscan objects, which may be keys, are
/// repeated here).
fn settle(h: &Shared, t: &mut Tracer, resurrection: &mut Resurrection) -> bool {
    loop {
        let progressed = crate::gc::ephemeron::round(h, t);
        if t.has_grey() {
            return true;
        }
        if progressed {
            continue;
        }
        if *resurrection != Resurrection::Done {
            let first = *resurrection == Resurrection::NotYet;
            if crate::gc::finalize::resurrect(h, t, first) > 0 {
                *resurrection = Resurrection::Rounds;
                if t.has_grey() {
                    return true;
                }
                continue;
            }
            crate::gc::finalize::abandon_undecided(h);
            *resurrection = Resurrection::Done;
        }
        return false;
    }
}

/// Loom model of mark termination with barrier work in flight: a mutator shades in its scopes
/// (into its buffer, which it flushes to the global queue when it fills), while the collector
/// drains the queue and attempts termination as `concurrent_mark` does: stop the world with the real
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
