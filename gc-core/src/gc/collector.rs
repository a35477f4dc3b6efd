//! The collector thread: when cycles run (Go: `gcTrigger`, `gcStart`'s callers).
//!
//! One thread per heap runs the cycles ([`crate::gc::cycle`]) and, between them, sweeps in the
//! background. A cycle is requested by the allocation path when `heap_live` crosses the
//! trigger (`gc::malloc`), by the pacer when a setting change put the heap past the trigger,
//! or by an explicit `collect()`. The collector thread also owns the mark workers' pool and the
//! scavenger thread, and stops them when the heap is dropped.
//!
//! # Goal and trigger
//!
//! Set by the pacer ([`crate::pacer`], applied by [`crate::pacer::controller`]). The
//! stop-the-world mode starts a cycle when `heap_live` reaches the goal; a concurrent cycle must
//! finish marking while the mutators keep allocating, so it starts at the pacer's trigger,
//! below the goal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::gc::heap::Shared;
use crate::gc::sweep;

/// When cycles run. Each field says who writes it.
#[derive(Default)]
pub(crate) struct Control {
    /// Cycle counts and requests; see [`Cycles`].
    pub state: Mutex<Cycles>,
    /// Wakes the collector thread (requests, shutdown). Notified under `state`.
    pub wake: Condvar,
    /// Wakes threads waiting for a cycle to complete, or to start ([`wait_for_late_start`]).
    /// Notified after `completed` or `started` moves.
    pub done: Condvar,
    /// Set by the allocation path when it requests a cycle (so that later allocations skip
    /// the lock); cleared when the cycle starts.
    pub pending: AtomicBool,
    /// Set when the collector thread shuts down: the mark workers exit.
    pub stop: AtomicBool,
    /// Set by a mutator whose wait for a late start timed out ([`wait_for_late_start`]);
    /// cleared when a cycle starts. While set, no mutator waits for the start again.
    pub late_start_gave_up: AtomicBool,
    /// Set when a setting moved the trigger ([`update_trigger`]); taken at each cycle's end,
    /// which then asks for the next cycle if one is due even when no mutator allocated during
    /// it (a setter that found a cycle running leaves the request to that cycle's end).
    pub setting_changed: AtomicBool,
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
    /// From a cycle's count as started to the pacer's start of it (STW 1), where the pacer
    /// cannot yet tell that a cycle runs ([`update_trigger`]).
    pub starting: bool,
    /// Set when the last user handle is dropped.
    pub shutdown: bool,
    /// The cycles `collect()` asked for (Go: forced) that have not completed yet: each call
    /// asks for the cycle after the last started one. (A bound "cycles up to N" also labelled
    /// a cycle the trigger had started, still marking when `collect()` was called, as forced.)
    pub forced: Vec<u64>,
}

/// Ask for a cycle (allocation trigger). Cheap if one is already pending.
pub(crate) fn request_cycle(h: &Shared) {
    if h.control.pending.swap(true, Ordering::Relaxed) {
        return;
    }
    ask_for_cycle(h);
}

/// Ask the collector thread for a cycle after the last one started, without waiting for it.
pub(crate) fn ask_for_cycle(h: &Shared) {
    ask_locked(h, &mut h.control.state.lock());
}

/// [`ask_for_cycle`] with the state locked.
fn ask_locked(h: &Shared, st: &mut Cycles) {
    st.requested = st.requested.max(st.started + 1);
    h.control.wake.notify_all();
}

thread_local! {
    /// Set on the collector thread (where drop glue runs during background sweeping).
    static ON_COLLECTOR_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is a collector thread (of any heap).
pub(crate) fn on_collector_thread() -> bool {
    ON_COLLECTOR_THREAD.try_with(|c| c.get()).unwrap_or(false)
}

/// Ask for a forced cycle (as `collect()` does) that starts after this call, without waiting
/// for it; returns its number. Its stops wait for the caller's scope like any other.
pub(crate) fn request_forced_cycle(h: &Shared) -> u64 {
    let mut st = h.control.state.lock();
    let target = st.started + 1;
    st.requested = st.requested.max(target);
    if !st.forced.contains(&target) {
        st.forced.push(target);
    }
    h.control.wake.notify_all();
    target
}

/// Run a full cycle that starts after this call, wait for it, and finish its sweep.
pub(crate) fn collect(h: &Shared) {
    crate::gc::scope::before_waiting_for(h, "collect()", "it would wait for that scope to end");
    if ON_COLLECTOR_THREAD.with(|c| c.get()) {
        panic!(
            "gc-core: collect() called on a collector thread (from drop glue run by the sweeper); \
             the cycle would wait for this thread (deadlock)"
        );
    }
    let target = request_forced_cycle(h);
    {
        let mut st = h.control.state.lock();
        while st.completed < target {
            h.control.done.wait(&mut st);
        }
    }
    sweep::finish_sweep(h);
}

/// If a sweep phase is open and nothing is left to sweep, record its end (and wake the
/// scavenger).
pub(crate) fn note_sweep_done(h: &Shared) {
    let mut s = h.sweep.started.lock();
    if let Some((cycle, start)) = *s
        && h.mheap.central.unswept_count() == 0
    {
        h.phases
            .record(cycle, crate::telemetry::phases::Phase::Sweep, start);
        *s = None;
        // The sweep freed the pages of the spans it emptied: the scavenger may release them.
        h.pacer.scavenger.wake();
    }
}

/// Count a cycle as started (world stopped); returns its number.
pub(crate) fn begin_cycle(h: &Shared) -> u64 {
    let n = {
        let mut st = h.control.state.lock();
        st.started += 1;
        st.starting = true;
        st.started
    };
    h.control.pending.store(false, Ordering::Relaxed);
    h.control.late_start_gave_up.store(false, Ordering::Relaxed);
    // Mutators held at a scope's entry for this start ([`wait_for_late_start`]).
    h.control.done.notify_all();
    n
}

/// The longest a mutator waits at a scope's entry for a late cycle to start
/// ([`wait_for_late_start`]).
const LATE_START_WAIT_MAX: Duration = Duration::from_millis(50);

/// At the allocation of a span or large object outside marking (`gc::malloc`): whether the
/// trigger has requested a cycle that has not started yet while `heap_live` is past the
/// furthest a cycle may take the heap (`max_overshoot` × the goal, the bound assists hold once
/// marking runs, or × the live-heap cap `Config::max_heap` if that is lower: with no goal the
/// heap can reach, GOGC=off for one, the cap is what triggers cycles), and no wait for this
/// start has timed out. The mutator then waits for the start at its next scope entry
/// ([`wait_for_late_start`]), and `Mutation::should_yield` tells it to leave its scope
/// meanwhile.
pub(crate) fn start_is_late(h: &Shared) -> bool {
    if !h.control.pending.load(Ordering::Relaxed)
        || h.control.late_start_gave_up.load(Ordering::Relaxed)
    {
        return false;
    }
    let live = h.mheap.counters.heap_live.load(Ordering::Relaxed) as f64;
    let goal = h.pacer.heap_goal.load(Ordering::Relaxed) as f64;
    live >= goal.min(h.mheap.max_heap as f64) * h.pacer.max_overshoot
}

/// At the entry of a scope of `h` (the thread is in none) by a mutator that allocated past the
/// bound with the cycle not started ([`start_is_late`]): if that is still so, wait for the
/// cycle to start, at most [`LATE_START_WAIT_MAX`].
///
/// The allocation path only asks the collector thread for a cycle; it does not start it, as
/// Go's allocating goroutine does (`gcStart`). A collector thread kept off its CPU by other
/// threads (a machine with more runnable threads than CPUs) then leaves the mutators
/// allocating, unpaced, until it runs; nothing holds them before the mark phase, so the cycle
/// began past its bound. Here, between scopes, the mutator holds nothing the cycle needs and no
/// pause waits for it, so it can wait safely; waiting gives the collector thread its CPU. Only
/// a mutator that allocated past the bound waits: one that only reads is not held up. The wait
/// is bounded because the start may itself wait for another mutator's scope (its pause cannot
/// begin before that scope ends, or a blocking region's), and that scope might wait for this
/// thread: once a wait has timed out, no mutator waits for that cycle's start again, and they go
/// on unthrottled, as an assist does when nothing marks. Not on the collector thread (drop glue
/// the background sweep runs): the cycle waits for that sweep; nor inside a scope of another
/// heap (see `scope::enter`), whose pauses would wait for this one.
pub(crate) fn wait_for_late_start(h: &Shared) {
    if !start_is_late(h) || ON_COLLECTOR_THREAD.with(|c| c.get()) {
        return;
    }
    let began = Instant::now();
    let deadline = began + LATE_START_WAIT_MAX;
    {
        let mut st = h.control.state.lock();
        if st.requested <= st.started || st.shutdown {
            return;
        }
        while st.requested > st.started && !st.shutdown {
            if h.control.done.wait_until(&mut st, deadline).timed_out() {
                // Something other than the CPU holds the start (a scope it waits for): waiting
                // again for it would only slow the mutators down.
                h.control.late_start_gave_up.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
    h.stats.late_start_waits.fetch_add(1, Ordering::Relaxed);
    h.stats
        .late_start_wait_ns
        .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Recompute the trigger and goal (a setting changed, or the heap was created) and request a
/// cycle if one is due.
pub(crate) fn update_trigger(h: &Shared) {
    h.control.setting_changed.store(true, Ordering::Relaxed);
    if !h
        .controller()
        .update_trigger(h.mark.marking.load(Ordering::Relaxed))
    {
        return;
    }
    // Not while a cycle is starting (counted as started, not yet started by the pacer, which
    // cannot tell that one runs and so found the heap past the trigger): the cycle's end sets
    // the next trigger with this setting and asks for a cycle then if one is due; a request
    // now queued a second cycle right after it. Decided under the lock that counts starts, so
    // that a cycle cannot start between the test and the request.
    let mut st = h.control.state.lock();
    if st.starting || h.control.pending.swap(true, Ordering::Relaxed) {
        return;
    }
    ask_locked(h, &mut st);
}

/// Note that the pacer has started the cycle counted by [`begin_cycle`].
pub(crate) fn note_cycle_started(h: &Shared) {
    h.control.state.lock().starting = false;
}

/// The stack of the threads that trace and drop heap values: the collector thread (marking,
/// the verifier's walk, background sweeping), the mark workers and the teardown thread that
/// drop glue or a cleanup hands a heap's last handle to. A value that holds its own type
/// through `Box` (an interpreter's syntax tree) is traced and dropped by recursion, tens to a
/// couple of hundred bytes of stack per level in an optimised build and 2–3 KiB in a debug
/// one: with the default 2 MiB of a spawned thread a left-nested expression of a thousand
/// terms overflowed the collector's stack in a debug build (an abort), and one of 100 000 in an
/// optimised one; with 64 MiB, 20 000 and 1 000 000 were traced and dropped. Only what a thread
/// touches of its stack is resident (where transparent huge pages are `always`, perhaps one
/// 2 MiB page).
pub(crate) const TRACING_STACK: usize = 64 << 20;

/// Start the collector thread of `h` (on a [`TRACING_STACK`], or the default stack where the
/// system refuses that much: strict overcommit accounting, an address-space limit).
pub(crate) fn spawn(h: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    let named = || std::thread::Builder::new().name("gc-core collector".into());
    let first = h.clone();
    named()
        .stack_size(TRACING_STACK)
        .spawn(move || run(first))
        .or_else(|_| named().spawn(move || run(h)))
}

/// Count cycle `n` as completed and wake the threads waiting for it.
pub(crate) fn complete_cycle(h: &Shared, n: u64) {
    {
        let mut st = h.control.state.lock();
        st.completed = n;
    }
    h.control.done.notify_all();
}

/// The collector thread: start the mark helpers and the scavenger, run the loop, stop them.
fn run(h: Arc<Shared>) {
    ON_COLLECTOR_THREAD.with(|c| c.set(true));
    register_clock(&h);
    std::thread::scope(|s| {
        // The mark workers (the collector thread is worker 0): one per configured worker for
        // stop-the-world marking, 25% of the CPUs for concurrent marking.
        let shares = crate::pacer::worker_shares(h.settings.procs);
        let workers = if h.settings.concurrent {
            shares.len()
        } else {
            h.settings.stw_mark_workers
        };
        let mut helpers = 0;
        for i in 1..workers {
            let h = &*h;
            let share = shares.get(i).copied().unwrap_or(1.0);
            let named = || std::thread::Builder::new().name(format!("gc-core mark worker {i}"));
            let worker = move || {
                register_clock(h);
                // Marking would wait for it forever.
                fatal_on_panic("a mark worker", || h.mark.pool.helper(h, i, share))
            };
            // As the collector's stack (`spawn`): the default where that much is refused.
            let spawned = named()
                .stack_size(TRACING_STACK)
                .spawn_scoped(s, worker)
                .or_else(|_| named().spawn_scoped(s, worker));
            // A helper that cannot be spawned only means less parallel marking.
            if spawned.is_err() {
                break;
            }
            helpers += 1;
        }
        h.mark.helpers.store(helpers, Ordering::Relaxed);
        {
            let h = &*h;
            // Without a scavenger the heap only keeps its pages; not fatal.
            let _ = std::thread::Builder::new()
                .name("gc-core scavenger".into())
                .spawn_scoped(s, move || {
                    register_clock(h);
                    h.pacer.scavenger.run(&h.mheap, &h.stats)
                });
        }
        // A panic here would leave mutators waiting for a world that never restarts.
        fatal_on_panic("the collector thread", || collector_loop(&h));
        h.control.stop.store(true, Ordering::Release);
        h.mark.pool.shutdown();
        h.pacer.scavenger.shutdown();
    });
}

/// Register the calling collector thread's CPU clock, so that the metrics can read what the
/// collector's threads cost in all.
fn register_clock(h: &Shared) {
    if let Some(c) = crate::util::clock::this_thread_clock() {
        h.stats.collector_clocks.lock().push(c);
    }
}

/// Run `f`, the body of a collector-side thread; if it panics (a `Trace` implementation, drop
/// glue, or a gc-core bug), abort with a message naming `who`: other threads wait for this one
/// (a pause, the end of marking), so unwinding would leave the process hanging.
fn fatal_on_panic(who: &str, f: impl FnOnce()) {
    // The payload is kept (bound, not dropped) until the abort: its `Drop` is user code that
    // could panic and unwind this thread after all.
    if let Err(_payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        crate::util::bug::fatal(format!(
            "gc-core: {who} panicked (a `Trace` implementation, drop glue or a gc-core bug); \
             aborting"
        ));
    }
}

/// Book what background sweeping has spent since its last lap, and end the lap (before this
/// thread does anything else: a cycle, waiting, exiting).
fn end_sweep_lap(h: &Shared, sweeping: &mut Option<crate::util::clock::CpuLap>) {
    if let Some(mut lap) = sweeping.take() {
        book_sweep(h, lap.finish());
    }
}

/// Free the spans the last sweep kept empty for their classes and no allocation took
/// ([`Central::free_kept`](crate::alloc::central::Central::free_kept)), on the collector thread
/// before it stops the world for mark termination (in the stop-the-world mode: for the
/// cycle); booked as background sweeping. Returns how many it freed.
pub(crate) fn free_kept_spans(h: &Shared) -> usize {
    if h.mheap.central.kept_bytes() == 0 {
        return 0;
    }
    let mut lap = crate::util::clock::CpuLap::start();
    let n = h.mheap.central.free_kept(&h.mheap.arena);
    book_sweep(h, lap.finish());
    n
}

/// Book `cpu` of background sweeping.
fn book_sweep(h: &Shared, cpu: std::time::Duration) {
    h.stats
        .sweep_bg_ns
        .fetch_add(cpu.as_nanos() as u64, Ordering::Relaxed);
}

/// Wait for requests; run cycles; sweep in the background in between.
fn collector_loop(h: &Shared) {
    // Background sweeping's CPU time, booked in laps (`CpuLap`) across batches; every way out
    // of sweeping but another batch ends the lap.
    let mut sweeping: Option<crate::util::clock::CpuLap> = None;
    loop {
        let cycle = {
            let mut st = h.control.state.lock();
            loop {
                if st.shutdown {
                    end_sweep_lap(h, &mut sweeping);
                    return;
                }
                if st.requested > st.started {
                    end_sweep_lap(h, &mut sweeping);
                    break true;
                }
                if h.hooks.back_to_back.load(Ordering::Relaxed) {
                    // Testing: start the next cycle as soon as the last one ended.
                    end_sweep_lap(h, &mut sweeping);
                    st.requested = st.started + 1;
                    break true;
                }
                if h.mheap.central.unswept_count() > 0 {
                    break false;
                }
                end_sweep_lap(h, &mut sweeping);
                h.control.wake.wait(&mut st);
            }
        };
        if cycle {
            if !hold_start(h) {
                continue;
            }
            crate::gc::cycle::gc_cycle(h);
        } else {
            // Background sweeping, in small batches so a request is noticed promptly.
            let lap = sweeping.get_or_insert_with(crate::util::clock::CpuLap::start);
            sweep::sweep_batch(h);
            if let Some(d) = lap.lap() {
                book_sweep(h, d);
            }
            note_sweep_done(h);
        }
    }
}

/// Testing: wait while `Heap::debug_hold_cycle_start` holds the start of a cycle; false if the
/// heap shut down meanwhile.
fn hold_start(h: &Shared) -> bool {
    while h.hooks.hold_cycle_start.load(Ordering::Relaxed) {
        if h.control.state.lock().shutdown {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}
