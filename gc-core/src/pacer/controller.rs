//! Applying the pacer: what the collector measures goes into [`crate::pacer::Pacer`], and what
//! it returns goes into the atomics the allocation path reads (`trigger`, `heap_goal`,
//! `assist_ratio`), plus the GC CPU limiter's feed and the scavenger's goals.
//!
//! | when | Go | here |
//! |------|----|------|
//! | heap created, GOGC or limit changed | `commit`, `trigger` | [`update_trigger`] |
//! | STW 1 | `startCycle` | [`start_cycle`] |
//! | while marking (background worker, every slice) | `revise` | [`revise`] |
//! | STW 2 | `endCycle`, `resetLive`, `commit`, `gcPaceScavenger` | [`end_cycle`] |
//! | every ms of marking, each pause | `gcCPULimiter.update` | [`update_limiter`] |
//!
//! # Scan work
//!
//! The pacer counts marking in *scan work* (see [`crate::pacer`]): here, 8 bytes per unit of
//! tracer work (one object or array chunk scanned, one edge followed), so a pointer-dense
//! object's scan work is about its size. Each tracer's work is added to `scan_work` once, by
//! whoever takes it (`concurrent::hand_over`, the background slice, a root scan).

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::gc::heap::Shared;
use crate::pacer::{CpuLimiter, CycleEnd, MemoryStats, scavenge_goals};

/// Scan work (bytes) per unit of tracer work.
pub(crate) const WORK_UNIT_BYTES: u64 = 8;

/// The heap's memory figures for the memory limit.
pub(crate) fn memory_stats(h: &Shared) -> MemoryStats {
    MemoryStats {
        mapped_ready: h.arena.mapped_ready_bytes() as u64,
        heap_free: h.arena.free_ready_bytes() as u64,
        heap_alloc: h.heap_alloc.load(Ordering::Relaxed) as u64,
    }
}

/// Recompute the trigger and goal between cycles (after a setting change, or when the heap's
/// mapped memory moved under a memory limit) and request a cycle if `heap_live` is past the
/// trigger. While a cycle marks, the trigger stays off and the goal is the cycle's.
pub(crate) fn update_trigger(h: &Shared) {
    let p = h.pacer.lock();
    let m = memory_stats(h);
    h.last_trigger_mapped
        .store(m.mapped_ready as usize, Ordering::Relaxed);
    if h.marking.load(Ordering::Relaxed) {
        h.stats
            .heap_goal
            .store(to_usize(p.heap_goal(m)), Ordering::Relaxed);
        return;
    }
    let (trigger, goal) = p.trigger(m);
    // The stop-the-world collector marks with the world stopped: it starts at the goal.
    let trigger = if h.concurrent { trigger } else { goal };
    h.stats.heap_goal.store(to_usize(goal), Ordering::Relaxed);
    h.trigger.store(to_usize(trigger), Ordering::Relaxed);
    drop(p);
    if trigger != u64::MAX && h.heap_live.load(Ordering::Relaxed) as u64 >= trigger {
        crate::gc::collector::request_cycle(h);
    }
}

/// Under a memory limit, the goal moves with mapped memory: re-derive the trigger when mapped
/// memory has moved by 1/64 of the limit since the last time (called when spans are created).
#[inline]
pub(crate) fn note_growth(h: &Shared) {
    let limit = h.arena.memory_limit.load(Ordering::Relaxed);
    if limit == usize::MAX {
        return;
    }
    let now = h.arena.mapped_ready_bytes();
    let last = h.last_trigger_mapped.load(Ordering::Relaxed);
    if now.abs_diff(last) > limit / 64 {
        update_trigger(h);
    }
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// STW 1: the cycle starts at the current `heap_live` (Go: `startCycle`). Turns the trigger off,
/// resets the per-cycle counters and sets the first assist ratio. Returns the cycle's goal.
pub(crate) fn start_cycle(h: &Shared) -> usize {
    let mut p = h.pacer.lock();
    let live = h.heap_live.load(Ordering::Relaxed);
    h.cycle_heap_start.store(live, Ordering::Relaxed);
    let m = memory_stats(h);
    let goal = to_usize(p.start_cycle(live as u64, m));
    h.stats.heap_goal.store(goal, Ordering::Relaxed);
    // No new cycle is requested while this one marks.
    h.trigger.store(usize::MAX, Ordering::Relaxed);
    h.scan_work.store(0, Ordering::Relaxed);
    h.stack_scan_work.store(0, Ordering::Relaxed);
    h.bg_credit.store(0, Ordering::Relaxed);
    drop(p);
    revise(h);
    goal
}

/// The assist ratio from the current figures (Go: `revise`), stored for the allocation path.
pub(crate) fn revise(h: &Shared) {
    let p = h.pacer.lock();
    let r = p.revise(
        h.heap_live.load(Ordering::Relaxed) as u64,
        h.heap_scan.load(Ordering::Relaxed) as u64,
        h.stack_scan_work.load(Ordering::Relaxed),
        h.scan_work.load(Ordering::Relaxed) + h.stack_scan_work.load(Ordering::Relaxed),
        memory_stats(h),
    );
    h.assist_ratio
        .store(r.work_per_byte.to_bits(), Ordering::Relaxed);
}

/// What the collector measured of a cycle, for [`end_cycle`].
pub(crate) struct CycleMeasures {
    /// Bytes marked (allocate-black included).
    pub marked: usize,
    /// `heap_live` at mark termination, before it was reset to `marked`.
    pub heap_end: usize,
    /// Wall time of the mark phase (assists enabled).
    pub mark_ns: u64,
    /// Assist time during the cycle.
    pub assist_ns: u64,
    /// Idle-priority marking during the cycle.
    pub idle_ns: u64,
    /// Whether this was a concurrent cycle (the cons/mark estimate only learns from those).
    pub concurrent: bool,
}

/// STW 2 (world stopped, `heap_live` already reset to the marked bytes): feed the cycle's
/// figures to the pacer (Go: `endCycle`, `resetLive`, `commit`), set the next trigger and goal,
/// and the scavenger's goals. Returns the goal the cycle paced for and the pacer's cons/mark
/// estimate.
pub(crate) fn end_cycle(h: &Shared, c: CycleMeasures) -> (usize, f64) {
    let mut p = h.pacer.lock();
    let heap_live = c.heap_end as u64;
    let heap_work = h.scan_work.load(Ordering::Relaxed);
    let stack_work = h.stack_scan_work.load(Ordering::Relaxed);
    let m = memory_stats(h);
    let goal = p.heap_goal(m);
    if c.concurrent {
        let line = p.end_cycle_traced(
            CycleEnd {
                heap_live,
                scan_work: heap_work + stack_work,
                assist_ns: c.assist_ns,
                idle_ns: c.idle_ns,
                mark_ns: c.mark_ns,
            },
            goal,
        );
        if h.pacertrace
            && let Some(l) = line
        {
            eprintln!("{l}");
        }
    } else {
        p.end_cycle(CycleEnd::default(), goal);
    }
    // The stop-the-world collector does not count scan work: its marked bytes stand in.
    let heap_scan = if c.concurrent {
        heap_work
    } else {
        c.marked as u64
    };
    p.reset_live(c.marked as u64, heap_scan, stack_work);
    p.set_globals_scan(h.globals_scan_work.load(Ordering::Relaxed));
    h.heap_scan.store(to_usize(heap_scan), Ordering::Relaxed);
    // The sweep of this cycle has not started: the trigger keeps its distance (Go passes
    // `isSweepDone()`, false here too).
    p.commit(false, c.marked as u64);
    let last_goal = p.last_heap_goal();
    let (next_goal, cons_mark) = (p.heap_goal(m), p.cons_mark());
    let goals = scavenge_goals(
        p.memory_limit(),
        next_goal,
        last_goal,
        h.arena.in_use_bytes() as u64,
        h.arena.mapped_ready_bytes() as u64,
        h.arena.mapped_ready_bytes() as u64,
        crate::alloc::arena::PAGE_SIZE as u64,
    );
    drop(p);
    let to = |g: Option<u64>| g.map_or(usize::MAX, to_usize);
    h.arena
        .retain_goal
        .store(to(goals.gc_percent_goal), Ordering::Relaxed);
    h.scavenge_goals
        .0
        .store(to(goals.gc_percent_goal), Ordering::Relaxed);
    h.scavenge_goals
        .1
        .store(to(goals.memory_limit_goal), Ordering::Relaxed);
    debug_assert!(!h.marking.load(Ordering::Relaxed));
    update_trigger(h);
    if goals.gc_percent_goal.is_some() || goals.memory_limit_goal.is_some() {
        crate::pacer::scavenger::wake(h);
    }
    (to_usize(goal), cons_mark)
}

/// The GC CPU limiter's feed (Go: `gcCPULimiterState.update`): process CPU time and the GC's
/// CPU time at the last update.
pub(crate) struct LimiterFeed {
    pub limiter: CpuLimiter,
    last_update: Option<Instant>,
    last_process_ns: u64,
    last_gc_ns: u64,
    last_mark_ns: u64,
}

impl LimiterFeed {
    pub(crate) fn new(procs: usize) -> LimiterFeed {
        LimiterFeed {
            limiter: CpuLimiter::new(procs),
            last_update: None,
            last_process_ns: 0,
            last_gc_ns: 0,
            last_mark_ns: 0,
        }
    }
}

/// GC CPU time so far as the CPU limiter counts it: assists, background marking within the
/// workers' share, and each pause × the CPUs (as Go counts a stop-the-world pause: no CPU runs
/// the mutator). Idle-priority marking is left out, as Go's limiter leaves it out: it used CPU
/// that nothing else wanted.
pub(crate) fn gc_cpu_ns(h: &Shared) -> u64 {
    h.stats.assist_ns.load(Ordering::Relaxed)
        + h.stats.bg_mark_ns.load(Ordering::Relaxed)
        + h.stats.pause_total_ns.load(Ordering::Relaxed) * h.cpus as u64
}

/// Time spent marking with the world running: assists, background and idle-priority marking.
fn mark_cpu_ns(h: &Shared) -> u64 {
    h.stats.assist_ns.load(Ordering::Relaxed)
        + h.stats.bg_mark_ns.load(Ordering::Relaxed)
        + h.stats.idle_mark_ns.load(Ordering::Relaxed)
}

/// Read a CPU-time clock (`CLOCK_PROCESS_CPUTIME_ID` or `CLOCK_THREAD_CPUTIME_ID`), in
/// nanoseconds. Under Miri, which has no CPU clocks, wall time since the first call stands in.
fn cpu_clock_ns(#[cfg_attr(miri, allow(unused_variables))] clock: libc::clockid_t) -> u64 {
    #[cfg(not(miri))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; both CPU-time clocks are supported by
        // every Linux (and POSIX) kernel. On failure `ts` stays zero.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(miri)]
    {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// CPU time of the whole process (all threads), in nanoseconds.
pub(crate) fn process_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread, in nanoseconds: what marking is booked as, so that a
/// thread preempted in the middle of a slice (a busy machine) does not count the wait as GC
/// time.
pub(crate) fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Feed the limiter the CPU used since the last update, at most every millisecond unless
/// `force`: GC time as [`gc_cpu_ns`], mutator time as the process's CPU time minus the marking
/// in it (stopped mutators use none, so pauses add nothing). Publishes whether it is on
/// (`limiting`).
pub(crate) fn update_limiter(h: &Shared, force: bool) {
    let now = Instant::now();
    // Cheap check first: assists call this every few microseconds.
    let now_ns = h.phases.offset(now).as_nanos() as u64;
    if !force && now_ns < h.limiter_next_ns.load(Ordering::Relaxed) {
        return;
    }
    let Some(mut f) = h.limiter.try_lock() else {
        // Someone else is updating it.
        return;
    };
    h.limiter_next_ns
        .store(now_ns + 1_000_000, Ordering::Relaxed);
    let process = process_cpu_ns();
    let gc = gc_cpu_ns(h);
    let mark = mark_cpu_ns(h);
    if f.last_update.is_some() {
        let d_gc = gc.saturating_sub(f.last_gc_ns);
        let d_mutator = process
            .saturating_sub(f.last_process_ns)
            .saturating_sub(mark.saturating_sub(f.last_mark_ns));
        let on = f.limiter.accumulate(d_mutator, d_gc);
        if on && !h.limiting.load(Ordering::Relaxed) {
            h.stats.limiter_enabled.fetch_add(1, Ordering::Relaxed);
            h.stats
                .limiter_last_enabled_cycle
                .store(h.mark_epoch.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        h.limiting.store(on, Ordering::Relaxed);
    }
    f.last_update = Some(now);
    f.last_process_ns = process;
    f.last_gc_ns = gc;
    f.last_mark_ns = mark;
}
