//! The collector: when cycles run and what a cycle does (Go: `mgc.go`).
//!
//! One background thread per heap runs the cycles and, between them, sweeps in the background.
//! A cycle is requested by the allocation path when `heap_live` crosses the trigger, or by an
//! explicit `collect()`. By default a cycle marks concurrently with the mutators
//! ([`crate::gc::concurrent`]). With `Config::concurrent(false)` it is the stop-the-world cycle
//! below:
//!
//! 1. **Sweep termination** (concurrent with mutators): sweep every span still unswept from the
//!    last cycle, so that all mark bits are clear.
//! 2. **Stop the world** ([`crate::gc::safepoint`]): wait for every mutator inside a scope to leave
//!    it. The pause is measured from here (the request), so a slow-to-yield mutator shows up.
//! 3. Flush every mutator's allocation cache (their spans become sweepable).
//! 4. **Mark**: grey the roots (root objects, root stacks, stash, write-barrier buffers), then
//!    drain the grey stack, in parallel with the mark helper threads ([`crate::gc::mark::workers`]).
//! 5. **Mark termination**: clear dead weak references; `heap_marked` becomes the live heap;
//!    compute the next goal; queue every span for sweeping.
//! 6. In verify mode, sweep everything and verify the heap ([`crate::gc::verify`]).
//! 7. **Start the world**; the sweep runs concurrently (background + lazy) from here.
//!
//! # Goal and trigger
//!
//! Set by the pacer ([`crate::pacer`], applied by [`crate::pacer::controller`]). The stop-the-world cycle
//! starts when `heap_live` reaches the goal; a concurrent cycle must finish marking while the
//! mutators keep allocating, so it starts at the pacer's trigger, below the goal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::gc::heap::Shared;
use crate::gc::mark::tracer::Tracer;
use crate::gc::mark::workers::{self, MarkJob};
use crate::gc::scope::in_scope_of;
use crate::gc::stw::StoppedWorld;
use crate::gc::sweep;
use crate::gc::verify;
use crate::telemetry::phases::Phase;

/// When cycles run. Each field says who writes it.
#[derive(Default)]
pub(crate) struct Control {
    /// Cycle counts and requests; see [`Cycles`].
    pub state: Mutex<Cycles>,
    /// Wakes the collector thread (requests, shutdown). Notified under `state`.
    pub wake: Condvar,
    /// Wakes threads waiting for a cycle to complete. Notified after `completed` moves.
    pub done: Condvar,
    /// Set by the allocation path when it requests a cycle (so that later allocations skip
    /// the lock); cleared when the cycle starts.
    pub pending: AtomicBool,
    /// Set when the collector thread shuts down: the mark workers exit.
    pub stop: AtomicBool,
}

/// Cycle bookkeeping, behind `Control::state`.
#[derive(Default)]
pub(crate) struct Cycles {
    /// Cycles asked for: a cycle runs while `requested > started`.
    pub requested: u64,
    /// Cycles that have stopped the world.
    pub started: u64,
    /// Cycles that have finished (world restarted).
    pub completed: u64,
    /// Set when the last user handle is dropped.
    pub shutdown: bool,
    /// Cycles up to this one were asked for by `collect()` (Go: forced).
    pub forced_upto: u64,
}

/// Ask for a cycle (allocation trigger). Cheap if one is already pending.
pub(crate) fn request_cycle(h: &Shared) {
    if h.control.pending.swap(true, Ordering::Relaxed) {
        return;
    }
    let mut st = h.control.state.lock();
    st.requested = st.requested.max(st.started + 1);
    h.control.wake.notify_all();
}

thread_local! {
    /// Set on the collector thread (where drop glue runs during background sweeping).
    static ON_COLLECTOR_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run a full cycle that starts after this call, wait for it, and finish its sweep.
pub(crate) fn collect(h: &Shared) {
    sweep::refuse_in_drop_glue("collect()");
    if ON_COLLECTOR_THREAD.with(|c| c.get()) {
        panic!(
            "gc-core: collect() called on a collector thread (from drop glue run by the sweeper); \
             the cycle would wait for this thread (deadlock)"
        );
    }
    if in_scope_of(h) {
        panic!(
            "gc-core: collect() called inside a mutation scope of the same heap; it would wait \
             for that scope to end (deadlock). Call it between scopes."
        );
    }
    {
        let mut st = h.control.state.lock();
        let target = st.started + 1;
        st.requested = st.requested.max(target);
        st.forced_upto = st.forced_upto.max(target);
        h.control.wake.notify_all();
        while st.completed < target {
            h.control.done.wait(&mut st);
        }
    }
    sweep::finish_sweep(h);
}

/// If a sweep phase is open and nothing is left to sweep, record its end.
pub(crate) fn note_sweep_done(h: &Shared) {
    let mut s = h.sweep.started.lock();
    if let Some((cycle, start)) = *s
        && h.mheap.central.unswept_count() == 0
    {
        h.phases
            .record(cycle, crate::telemetry::phases::Phase::Sweep, start);
        *s = None;
    }
}

/// Count a cycle as started (world stopped); returns its number.
pub(crate) fn begin_cycle(h: &Shared) -> u64 {
    let n = {
        let mut st = h.control.state.lock();
        st.started += 1;
        st.started
    };
    h.control.pending.store(false, Ordering::Relaxed);
    n
}

/// Recompute the trigger and goal (a setting changed, or the heap was created) and request a
/// cycle if one is due.
pub(crate) fn update_trigger(h: &Shared) {
    if h.pacing()
        .update_trigger(h.mark.marking.load(Ordering::Relaxed))
    {
        request_cycle(h);
    }
}

/// Start the collector thread of `h`.
pub(crate) fn spawn(h: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gc-core collector".into())
        .spawn(move || run(h))
}

/// Count cycle `n` as completed and wake the threads waiting for it.
pub(crate) fn complete_cycle(h: &Shared, n: u64) {
    {
        let mut st = h.control.state.lock();
        st.completed = n;
    }
    h.control.done.notify_all();
}

/// The collector thread: start the mark helpers, run the loop, stop the helpers.
fn run(h: Arc<Shared>) {
    ON_COLLECTOR_THREAD.with(|c| c.set(true));
    std::thread::scope(|s| {
        let mut helpers = 0;
        for i in 1..h.settings.stw_mark_workers {
            let h = &*h;
            let spawned = std::thread::Builder::new()
                .name(format!("gc-core mark worker {i}"))
                // The collector waits for every helper with the world stopped.
                .spawn_scoped(s, move || {
                    fatal_on_panic("a mark worker", || h.mark.pool.helper(h))
                });
            if spawned.is_ok() {
                helpers += 1;
            }
        }
        h.mark.stw_helpers.store(helpers, Ordering::Relaxed);
        {
            let h = &*h;
            // Without a scavenger the heap only keeps its pages; not fatal.
            let _ = std::thread::Builder::new()
                .name("gc-core scavenger".into())
                .spawn_scoped(s, move || h.pacer.scavenger.run(&h.mheap.arena, &h.stats));
        }
        // Background mark helpers of the concurrent cycle (25% of the CPUs in all, the
        // collector thread being the first worker).
        if h.settings.concurrent {
            for (i, share) in crate::pacer::worker_shares(h.settings.procs)
                .into_iter()
                .enumerate()
                .skip(1)
            {
                let h = &*h;
                // A helper that cannot be spawned only means less background marking.
                let _ = std::thread::Builder::new()
                    .name(format!("gc-core bg mark worker {i}"))
                    // Marking would wait for it forever.
                    .spawn_scoped(s, move || {
                        fatal_on_panic("a mark worker", || {
                            crate::gc::concurrent::background_helper(h, share)
                        })
                    });
            }
        }
        // A panic here would leave mutators waiting for a world that never restarts.
        fatal_on_panic("the collector thread", || collector_loop(&h));
        h.mark.pool.shutdown();
        h.control.stop.store(true, Ordering::Release);
        h.pacer.scavenger.shutdown();
        h.mark.workers_wake.wake_all();
    });
}

/// Run `f`, the body of a collector-side thread; if it panics (a `Trace` implementation, drop
/// glue, or a gc-core bug), abort with a message naming `who`: other threads wait for this one
/// (a pause, the end of marking), so unwinding would leave the process hanging.
fn fatal_on_panic(who: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        eprintln!(
            "gc-core: {who} panicked (a `Trace` implementation, drop glue or a gc-core bug); \
             aborting"
        );
        std::process::abort();
    }
}

/// Wait for requests; run cycles; sweep in the background in between.
fn collector_loop(h: &Shared) {
    loop {
        let cycle = {
            let mut st = h.control.state.lock();
            loop {
                if st.shutdown {
                    return;
                }
                if st.requested > st.started {
                    break true;
                }
                if h.hooks.back_to_back.load(Ordering::Relaxed) {
                    // Testing: start the next cycle as soon as the last one ended.
                    st.requested = st.started + 1;
                    break true;
                }
                if h.mheap.central.unswept_count() > 0 {
                    break false;
                }
                h.control.wake.wait(&mut st);
            }
        };
        if cycle {
            if h.settings.concurrent {
                crate::gc::concurrent::gc_cycle(h);
            } else {
                gc_cycle(h);
            }
        } else {
            // Background sweeping, in small batches so a request is noticed promptly.
            for _ in 0..16 {
                if !sweep::sweep_some(h) {
                    break;
                }
            }
            note_sweep_done(h);
        }
    }
}

/// Stop the world at a moment when no mutator is in a scope that contains a blocking region
/// (its Rust locals would be invisible to this cycle, which also sweeps; see
/// [`crate::gc::blocking`]). Such a scope found after stopping restarts the world (a pause
/// recorded as [`Phase::StopTheWorldRetry`]), and the collector waits for it.
fn stop_without_blocking_scopes(h: &Shared) -> StoppedWorld<'_> {
    let blocked = |reg: &[Arc<crate::gc::registry::MutatorRecord>]| {
        reg.iter().any(|r| r.blocking_scope.load(Ordering::Acquire))
    };
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

/// One complete stop-the-world cycle (steps 1–7 of the module docs; `Config::concurrent(false)`).
pub(crate) fn gc_cycle(h: &Shared) {
    let t_begin = Instant::now();
    sweep::finish_sweep(h);
    let mut world = stop_without_blocking_scopes(h);
    let cycle = begin_cycle(h);
    let heap_start = h.mheap.counters.heap_live.load(Ordering::Relaxed);
    h.pacing().start_cycle();
    // Every mutator is at a safepoint: their caches, barrier buffers and roots are ours.
    for m in world.mutators() {
        m.local.cache.flush(&h.mheap, false, false);
        m.local.assist_debt = 0.0;
    }
    sweep::finish_sweep(h);
    debug_assert_eq!(h.mheap.central.unswept_count(), 0);

    let t_mark = Instant::now();
    let helpers = h.mark.stw_helpers.load(Ordering::Relaxed);
    let job = (helpers > 0).then(|| Arc::new(MarkJob::new(helpers + 1)));
    let mut t = match &job {
        Some(job) => Tracer::new_parallel(&h.mheap.arena, job),
        None => Tracer::new(&h.mheap.arena),
    };
    for m in world.mutators() {
        m.roots.trace_roots(&mut t);
        for a in m.local.wb_buf.drain(..) {
            t.edge(a.0);
        }
    }
    h.stash.lock().trace(&mut t);
    let (marked, marked_objects) = match &job {
        Some(job) => {
            h.mark.pool.start(job.clone());
            workers::work(job, &mut t);
            h.mark.pool.wait(helpers);
            h.stats.last_shared_batches.store(
                job.shared_batches.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            job.totals()
        }
        None => {
            t.drain();
            (t.marked_bytes, t.marked_objects as u64)
        }
    };
    let mark_time = t_mark.elapsed();

    // Mark termination. Weak references are cleared in the weak-clearing window (after the
    // sweep generation advanced, what `weak::is_live` expects), before anything is swept.
    let counters = &h.mheap.counters;
    let heap_end = counters.heap_live.load(Ordering::Relaxed);
    counters.heap_marked.store(marked, Ordering::Relaxed);
    counters.heap_live.store(marked, Ordering::Relaxed);
    let end = h
        .pacing()
        .end_cycle(crate::pacer::controller::CycleMeasures {
            marked,
            heap_end,
            mark_ns: mark_time.as_nanos() as u64,
            assist_ns: 0,
            idle_ns: 0,
            concurrent: false,
        });
    h.stats
        .last_marked_objects
        .store(marked_objects, Ordering::Relaxed);
    h.mheap.central.advance_sweep_gen();
    sweep::end_weak_window(h);
    if h.settings.verify {
        sweep::finish_sweep(h);
        verify::verify_or_abort(h, &mut world, cycle);
    }
    let pause = world.end_pause(cycle, Phase::StopTheWorldCycle);
    if end.cycle_due {
        request_cycle(h);
    }
    h.stats.record_cycle_end(mark_time, t_begin.elapsed());
    let base = crate::gc::report::record_base(
        h,
        cycle,
        t_begin,
        (heap_start, heap_end, marked),
        end.goal,
        end.cons_mark,
    );
    crate::gc::report::cycle_done(
        h,
        crate::telemetry::gctrace::CycleRecord {
            mark: mark_time,
            mark_termination: pause,
            ..base
        },
    );
    complete_cycle(h, cycle);
}
