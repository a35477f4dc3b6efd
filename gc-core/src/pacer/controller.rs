//! Applying the pacer: what the collector measures goes into [`Pacer`], and what it
//! returns goes into the atomics the allocation path reads (`trigger`, `heap_goal`,
//! `assist_ratio`), plus the GC CPU limiter's feed and the scavenger's goals.
//!
//! | when | Go | here ([`Controller`]) |
//! |------|----|------|
//! | heap created, GOGC or limit changed, mapped memory moved under a limit | `commit`, `trigger` | [`Controller::update_trigger`], [`Controller::note_growth`] |
//! | STW 1 | `startCycle` | [`Controller::start_cycle`] |
//! | while marking (the collector thread's mark loop after each slice; mutators when they take a span) | `revise` | [`Controller::revise`], [`Controller::revise_if_free`] |
//! | STW 2 | `endCycle`, `resetLive`, `commit`, `gcPaceScavenger` | [`Controller::end_cycle`] |
//! | every ms of marking, each pause | `gcCPULimiter.update` | [`Controller::update_limiter`] |
//!
//! The controller sits below the collector: it reads the allocator's counters, the telemetry
//! counters and its own state, and *reports* when a cycle is due (`true` from the trigger
//! updates); the collector requests the cycle.
//!
//! # Scan work
//!
//! The pacer counts marking in *scan work* (see [`crate::pacer`]): here, 8 bytes per unit of
//! tracer work (one object or array chunk scanned, one edge followed), so a pointer-dense
//! object's scan work is about its size. Each tracer's work is added to the scan-work counters
//! once, by whoever takes it (a hand-over of grey work, a background slice, a root scan).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::alloc::mheap::MHeap;
use crate::pacer::scavenger::Scavenger;
use crate::pacer::{CpuLimiter, CycleEnd, LimiterWatch, MemoryStats, Pacer, scavenge_goals};
use crate::telemetry::metrics::Stats;
use crate::telemetry::phases::PhaseLog;
use crate::util::config::Config;

/// Scan work (bytes) per unit of tracer work.
pub(crate) const WORK_UNIT_BYTES: u64 = 8;

/// The pacer's state (Go: `gcControllerState`'s runtime fields). Each field says who writes it.
pub(crate) struct PacerState {
    /// The pure model. Locked by the functions of [`Controller`] only.
    pub model: Mutex<Pacer>,
    /// GOGC (`u64::MAX`: off), a mirror of the model's for readers that do not lock it. Written
    /// under the model lock (`Heap::set_gc_percent`).
    pub gc_percent: AtomicU64,
    /// `heap_live` at which the next cycle starts (`usize::MAX` while a cycle marks, or with
    /// GOGC=off and no limit). Written by [`Controller::update_trigger`] and
    /// [`Controller::start_cycle`].
    pub trigger: AtomicUsize,
    /// The heap goal: of the cycle marking now, else of the next one. Written with `trigger`.
    pub heap_goal: AtomicUsize,
    /// Scan work owed per byte allocated while marking (f64 bits; Go: `assistWorkPerByte`).
    /// Written by [`Controller::revise`].
    pub assist_ratio: AtomicU64,
    /// Scan work done by background markers and not yet taken by assists (Go:
    /// `bgScanCredit`). Added by background markers, taken by assists; reset at the start of a
    /// cycle.
    pub bg_credit: AtomicI64,
    /// Scan work of the current cycle on heap objects, root stacks and the stash (Go:
    /// `heapScanWork`, `stackScanWork`, `globalsScanWork`). Added by every marker as it hands
    /// work over; reset at the start of a cycle (globals: set in STW 1).
    pub heap_scan_work: AtomicU64,
    pub stack_scan_work: AtomicU64,
    pub globals_scan_work: AtomicU64,
    /// Mapped memory when the trigger was last derived (see [`Controller::note_growth`]).
    pub last_trigger_mapped: AtomicUsize,
    /// The GC CPU limiter and its feed; updated by whoever gets its lock when an update is due.
    pub limiter: Mutex<LimiterFeed>,
    /// Whether the GC CPU limiter is on (mark assists are skipped while it is, below a goal
    /// GOGC set and at all under a memory limit that sets it). Written by
    /// [`Controller::update_limiter`].
    pub limiting: AtomicBool,
    /// Whether the limiter was on at any update since the cycle's mark phase began (cleared at
    /// its start): the cycle record reports it, because a cycle whose assists were cut off for a
    /// while may end past its goal by design.
    pub limited_in_cycle: AtomicBool,
    /// The highest goal the assist ratio paced for in the cycle that is marking (or last
    /// marked): its goal, or the extended goal once its scan work passed the expectation
    /// ([`crate::pacer::AssistRatio::extended_goal`]). Reset at the cycle's start.
    pub extended_goal: AtomicUsize,
    /// Whether `heap_goal` leaves the live heap room to grow into ([`Pacer::goal_leaves_room`]:
    /// a GOGC goal, or a memory-limit goal above the live heap); written with `heap_goal`.
    pub goal_has_room: AtomicBool,
    /// [`PacerConfig::max_overshoot`](crate::pacer::PacerConfig::max_overshoot) as the model
    /// took it (fixed at creation), for assists, which must not take the model's lock.
    pub max_overshoot: f64,
    /// When (ns since the heap's creation) the limiter is next due for an update.
    pub limiter_next_ns: AtomicU64,
    /// When (ns since the heap's creation) the last cycle's mark terminated (0: none yet).
    /// Written by [`Controller::end_cycle`].
    last_end_ns: AtomicU64,
    /// The background scavenger's goals and wake-up (its goals are set at each cycle's end).
    pub scavenger: Scavenger,
    /// Concurrent marking: cycles start at the trigger (else at the goal).
    concurrent: bool,
    /// Print a gcpacertrace line per cycle.
    trace: bool,
}

impl PacerState {
    pub(crate) fn new(config: &Config, procs: usize) -> PacerState {
        let model = Pacer::with_config(
            config.gc_percent,
            config.memory_limit.map(|l| l as u64),
            procs,
            config.pacer.clone(),
        );
        let max_overshoot = model.config().max_overshoot;
        PacerState {
            model: Mutex::new(model),
            max_overshoot,
            gc_percent: AtomicU64::new(config.gc_percent.map_or(u64::MAX, u64::from)),
            // Set by `update_trigger` before any mutator exists.
            trigger: AtomicUsize::new(usize::MAX),
            heap_goal: AtomicUsize::new(0),
            goal_has_room: AtomicBool::new(true),
            assist_ratio: AtomicU64::new(0),
            bg_credit: AtomicI64::new(0),
            heap_scan_work: AtomicU64::new(0),
            stack_scan_work: AtomicU64::new(0),
            globals_scan_work: AtomicU64::new(0),
            last_trigger_mapped: AtomicUsize::new(0),
            limiter: Mutex::new(LimiterFeed::new(
                procs,
                config.pacer.limiter_capacity_per_proc_ns,
                config.pacer.limiter_fail_fast_ns,
            )),
            limiting: AtomicBool::new(false),
            limited_in_cycle: AtomicBool::new(false),
            extended_goal: AtomicUsize::new(0),
            limiter_next_ns: AtomicU64::new(0),
            last_end_ns: AtomicU64::new(0),
            scavenger: Scavenger::new(config.memory_limit, procs),
            concurrent: config.concurrent,
            trace: config.pacertrace,
        }
    }

    /// The GC percent, or `None` when off.
    pub(crate) fn gc_percent(&self) -> Option<u64> {
        match self.gc_percent.load(Ordering::Relaxed) {
            u64::MAX => None,
            p => Some(p),
        }
    }
}

/// The controller: the pacer's state with the figures it reads from the layers below.
pub(crate) struct Controller<'a> {
    pub p: &'a PacerState,
    pub mheap: &'a MHeap,
    pub stats: &'a Stats,
    pub phases: &'a PhaseLog,
    pub procs: usize,
}

fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// What the collector measured of a cycle, for [`Controller::end_cycle`].
pub(crate) struct CycleMeasures {
    /// Bytes marked (allocate-black included).
    pub marked: usize,
    /// Of those, the bytes marked by tracing (allocate-black left out).
    pub reached: usize,
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

/// What [`Controller::end_cycle`] returns.
pub(crate) struct CycleEndReport {
    /// The pacer's cons/mark estimate.
    pub cons_mark: f64,
    /// Whether `heap_live` is already past the next trigger (a cycle is due).
    pub cycle_due: bool,
}

impl Controller<'_> {
    /// The heap's memory figures for the memory limit.
    ///
    /// Where the heap cannot return pages to the OS (`Arena::can_release`: not Linux, OS pages
    /// over 8 KiB, or `madvise` refused), mapped memory never falls: one spike past the limit
    /// would stay an overage for good, and every later goal would sit at the marked heap, with
    /// cycles back to back that give the OS nothing back. There the free pages are left out of
    /// the figures (as if released): the limit then bounds the memory in use (objects and the
    /// spans' fragmentation), and free pages are reused before new ones are mapped.
    pub(crate) fn memory_stats(&self) -> MemoryStats {
        let a = &self.mheap.arena;
        let mapped_ready = a.mapped_ready_bytes() as u64;
        // Spans kept empty for their classes count as free.
        let heap_free = self.mheap.page_use().1 as u64;
        let heap_alloc = self.mheap.counters.heap_alloc.load(Ordering::Relaxed) as u64;
        if a.can_release() {
            MemoryStats {
                mapped_ready,
                heap_free,
                heap_alloc,
            }
        } else {
            MemoryStats {
                mapped_ready: mapped_ready.saturating_sub(heap_free),
                heap_free: 0,
                heap_alloc,
            }
        }
    }

    /// Publish the heap goal, and with a live-heap limit (`Config::max_heap`) the bound on the
    /// heap inside a scope: twice the larger of the goal and the limit (none when there is no
    /// goal: with GOGC=off and no memory limit, cycles run when the heap reaches the limit, but
    /// nothing paces the mutators while they mark, so a bound could refuse a program that only
    /// makes garbage). A cycle can only
    /// complete once every scope has ended, so within one long scope the limit (checked
    /// against the last completed mark) cannot see what the scope allocates; past this bound
    /// the allocator refuses new spans instead of growing without end. A scope that polls
    /// `should_yield` keeps the heap within about 1.1 × the goal and never meets it.
    fn set_goal(&self, goal: usize, room: bool) {
        self.p.heap_goal.store(goal, Ordering::Relaxed);
        self.p.goal_has_room.store(room, Ordering::Relaxed);
        let limit = self.mheap.max_heap;
        if limit != usize::MAX {
            self.mheap
                .heap_bound
                .store(goal.max(limit).saturating_mul(2), Ordering::Relaxed);
        }
    }

    /// Recompute the trigger and goal between cycles (after a setting change, or when the
    /// heap's mapped memory moved under a memory limit); `true` if `heap_live` is past the new
    /// trigger (a cycle is due). While a cycle marks (`marking`), the trigger stays off and the
    /// goal is the cycle's.
    pub(crate) fn update_trigger(&self, marking: bool) -> bool {
        let p = self.p;
        let model = p.model.lock();
        let m = self.memory_stats();
        // The figure `note_growth` compares with (not `m`'s, which leaves out free pages where
        // none can be released).
        p.last_trigger_mapped
            .store(self.mheap.arena.mapped_ready_bytes(), Ordering::Relaxed);
        let room = model.goal_leaves_room(m);
        // A cycle that has started but not yet set `marking` (its STW 1), or cleared it and not
        // yet ended, or a stop-the-world cycle: the trigger is off until it ends. Decided under
        // the lock, which the cycle's start and end hold: a setting changed in those windows
        // left a trigger at or below `heap_live` and an extra cycle after this one.
        if marking || model.cycle_running() {
            // The setting moved the cycle's goal: the goal the cycle extended to goes with it
            // (assists judge the bound against the larger of the two), and the next revise
            // extends from the new goal if the scan work calls for it.
            let goal = to_usize(model.heap_goal(m));
            self.set_goal(goal, room);
            p.extended_goal.store(goal, Ordering::Relaxed);
            drop(model);
            self.revise();
            return false;
        }
        let (trigger, goal) = model.trigger(m);
        // The stop-the-world collector marks with the world stopped: it starts at the goal.
        let trigger = if p.concurrent { trigger } else { goal };
        // With no goal the heap can reach (GOGC=off and no memory limit, or a GOGC so large
        // that the goal lies past the arena's reservation) a live-heap cap still needs cycles
        // to find what is live: one runs when the heap reaches the cap. Not while the last
        // cycle found the cap exceeded: the heap would stay past the trigger and cycles run
        // back to back for nothing; allocation is refused then (`MHeap::check_max_heap`: more
        // than the cap reached), and each refusal asks for a cycle. A live heap exactly at the
        // cap is not refused, so it keeps the trigger (with none, nothing stopped the heap
        // growing until the arena ran out). A goal the heap can reach brings a cycle, which
        // applies the cap, by itself.
        let cap = self.mheap.max_heap;
        let unreachable = goal >= self.mheap.arena.len() as u64;
        let trigger =
            if unreachable && self.mheap.counters.heap_reached.load(Ordering::Relaxed) <= cap {
                trigger.min(cap as u64)
            } else {
                trigger
            };
        self.set_goal(to_usize(goal), room);
        p.trigger.store(to_usize(trigger), Ordering::Relaxed);
        drop(model);
        trigger != u64::MAX
            && self.mheap.counters.heap_live.load(Ordering::Relaxed) as u64 >= trigger
    }

    /// Under a memory limit, the goal moves with mapped memory: re-derive the trigger when
    /// mapped memory has moved by 1/64 of the limit since the last time (called when spans are
    /// made). `true` if a cycle is due.
    #[inline]
    pub(crate) fn note_growth(&self, marking: bool) -> bool {
        let a = &self.mheap.arena;
        let limit = a.memory_limit.load(Ordering::Relaxed);
        if limit == usize::MAX {
            return false;
        }
        let now = a.mapped_ready_bytes();
        let last = self.p.last_trigger_mapped.load(Ordering::Relaxed);
        now.abs_diff(last) > limit / 64 && self.update_trigger(marking)
    }

    /// STW 1: the cycle starts at the current `heap_live` (Go: `startCycle`). Turns the trigger
    /// off, resets the per-cycle counters and sets the first assist ratio. Returns the trigger
    /// that was in force (`usize::MAX`: none) and the cycle's goal.
    pub(crate) fn start_cycle(&self) -> (usize, usize) {
        let p = self.p;
        let mut model = p.model.lock();
        let live = self.mheap.counters.heap_live.load(Ordering::Relaxed);
        let m = self.memory_stats();
        let goal = to_usize(model.start_cycle(live as u64, m));
        self.set_goal(goal, model.goal_leaves_room(m));
        // No new cycle is requested while this one marks.
        let trigger = p.trigger.swap(usize::MAX, Ordering::Relaxed);
        p.heap_scan_work.store(0, Ordering::Relaxed);
        p.stack_scan_work.store(0, Ordering::Relaxed);
        p.bg_credit.store(0, Ordering::Relaxed);
        p.extended_goal.store(goal, Ordering::Relaxed);
        drop(model);
        self.revise();
        (trigger, goal)
    }

    /// The assist ratio from the current figures (Go: `revise`), stored for the allocation
    /// path.
    pub(crate) fn revise(&self) {
        self.revise_with(&self.p.model.lock());
    }

    /// [`Controller::revise`] from the allocation path, as Go revises at every change of
    /// `heapLive` while marking: the background worker revises only between its slices, and a
    /// fractional worker sleeps for milliseconds (longer when the machine is busy), while the
    /// mutators allocate on at the last ratio. Skipped when another thread is revising (or
    /// holds the pacer for anything else): its ratio is as fresh.
    pub(crate) fn revise_if_free(&self) {
        if let Some(model) = self.p.model.try_lock() {
            self.revise_with(&model);
        }
    }

    fn revise_with(&self, model: &Pacer) {
        let p = self.p;
        let c = &self.mheap.counters;
        let stack = p.stack_scan_work.load(Ordering::Relaxed);
        // Work done counts the globals (scanned in STW 1), as the work expected does (Go:
        // heap + stack + globals scan work).
        let done = p.heap_scan_work.load(Ordering::Relaxed)
            + stack
            + p.globals_scan_work.load(Ordering::Relaxed);
        let r = model.revise(
            c.heap_live.load(Ordering::Relaxed) as u64,
            c.heap_scan.load(Ordering::Relaxed) as u64,
            stack,
            done,
            self.memory_stats(),
        );
        p.assist_ratio
            .store(r.work_per_byte.to_bits(), Ordering::Relaxed);
        p.extended_goal
            .fetch_max(to_usize(r.extended_goal), Ordering::Relaxed);
    }

    /// STW 2 (world stopped, `heap_live` already reset to the marked bytes): feed the cycle's
    /// figures to the pacer (Go: `endCycle`, `resetLive`, `commit`), set the next trigger and
    /// goal, and the scavenger's goals.
    pub(crate) fn end_cycle(&self, c: CycleMeasures) -> CycleEndReport {
        let p = self.p;
        let mut model = p.model.lock();
        let heap_work = p.heap_scan_work.load(Ordering::Relaxed);
        let stack_work = p.stack_scan_work.load(Ordering::Relaxed);
        let globals_work = p.globals_scan_work.load(Ordering::Relaxed);
        let m = self.memory_stats();
        let goal = model.heap_goal(m);
        let now_ns = self.phases.offset(Instant::now()).as_nanos() as u64;
        let last_end = p.last_end_ns.swap(now_ns, Ordering::Relaxed);
        let cycle_ns = if last_end == 0 {
            0
        } else {
            now_ns - last_end.min(now_ns)
        };
        if c.concurrent {
            let line = model.end_cycle_traced(
                CycleEnd {
                    heap_live: c.heap_end as u64,
                    scan_work: heap_work + stack_work + globals_work,
                    assist_ns: c.assist_ns,
                    idle_ns: c.idle_ns,
                    mark_ns: c.mark_ns,
                    cycle_ns,
                },
                goal,
            );
            if p.trace
                && let Some(l) = line
            {
                eprintln!("{l}");
            }
        } else {
            model.end_cycle(CycleEnd::default(), goal);
        }
        // The stop-the-world collector does not count scan work: its marked bytes stand in.
        let heap_scan = if c.concurrent {
            heap_work
        } else {
            c.marked as u64
        };
        model.reset_live(c.marked as u64, c.reached as u64, heap_scan, stack_work);
        model.set_globals_scan(globals_work);
        self.mheap
            .counters
            .heap_scan
            .store(to_usize(heap_scan), Ordering::Relaxed);
        // The sweep of this cycle has not started: the trigger keeps its distance (Go passes
        // `isSweepDone()`, false here too).
        model.commit(false, c.marked as u64);
        let last_goal = model.last_heap_goal();
        let (next_goal, cons_mark) = (model.heap_goal(m), model.cons_mark());
        let a = &self.mheap.arena;
        let goals = scavenge_goals(
            model.memory_limit(),
            next_goal,
            last_goal,
            // (No span is kept at mark termination: the collector freed them before it.)
            self.mheap.page_use().0 as u64,
            a.mapped_ready_bytes() as u64,
            a.mapped_ready_bytes() as u64,
            crate::alloc::arena::PAGE_SIZE as u64,
        );
        // Published before the lock goes: a memory limit set meanwhile publishes its own goals
        // under it, which these would otherwise overwrite with the old limit's.
        let to = |g: Option<u64>| g.map_or(usize::MAX, to_usize);
        a.retain_goal
            .store(to(goals.gc_percent_goal), Ordering::Relaxed);
        p.scavenger.set_goals(
            to(goals.gc_percent_goal),
            to(goals.memory_limit_goal),
            goals.gc_percent_goal.is_some() || goals.memory_limit_goal.is_some(),
        );
        drop(model);
        let cycle_due = self.update_trigger(false);
        CycleEndReport {
            cons_mark,
            cycle_due,
        }
    }

    /// Feed the limiter the CPU used since the last update, at most every millisecond unless
    /// `force`: GC time as [`Stats::gc_cpu_ns`], mutator time as the process's CPU time minus
    /// the marking in it (stopped mutators use none, so pauses add nothing). Publishes whether
    /// it is on (`limiting`); `cycle` is the cycle in progress (recorded when it turns on).
    pub(crate) fn update_limiter(&self, force: bool, cycle: u64) {
        let p = self.p;
        let now = Instant::now();
        // Cheap check first: assists call this every few microseconds.
        let now_ns = self.phases.offset(now).as_nanos() as u64;
        if !force && now_ns < p.limiter_next_ns.load(Ordering::Relaxed) {
            return;
        }
        let Some(mut f) = p.limiter.try_lock() else {
            // Someone else is updating it.
            return;
        };
        // Read again under the lock: an updater that read the clock before another took and
        // released the lock would feed the watch a time earlier than the last one.
        let now = Instant::now();
        let now_ns = self.phases.offset(now).as_nanos() as u64;
        p.limiter_next_ns
            .store(now_ns + crate::pacer::LIMITER_UPDATE_NS, Ordering::Relaxed);
        let process = crate::util::clock::process_cpu_ns();
        let gc = self.stats.gc_cpu_ns(self.procs);
        let mark = self.stats.mark_cpu_ns();
        if f.last_update.is_some() {
            let d_gc = gc.saturating_sub(f.last_gc_ns);
            let d_mutator = process
                .saturating_sub(f.last_process_ns)
                .saturating_sub(mark.saturating_sub(f.last_mark_ns));
            let on = f.limiter.accumulate(d_mutator, d_gc);
            if on && !p.limiting.load(Ordering::Relaxed) {
                self.stats.limiter_enabled.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .limiter_last_enabled_cycle
                    .store(cycle, Ordering::Relaxed);
            }
            p.limiting.store(on, Ordering::Relaxed);
            if on {
                p.limited_in_cycle.store(true, Ordering::Relaxed);
            }
            // Fail-fast is about the memory limit: without one the limiter may still turn on
            // (a tiny GOGC), but that is no reason to refuse allocation.
            let limited = self.mheap.arena.memory_limit.load(Ordering::Relaxed) != usize::MAX;
            let stalled = f.watch.update(on && limited, now_ns);
            let was = self
                .mheap
                .limiter_stall_ns
                .swap(stalled.unwrap_or(0), Ordering::Relaxed);
            if stalled.is_some() && was == 0 {
                self.stats.limiter_stalls.fetch_add(1, Ordering::Relaxed);
            }
        }
        f.last_update = Some(now);
        f.last_process_ns = process;
        f.last_gc_ns = gc;
        f.last_mark_ns = mark;
    }
}

impl Controller<'_> {
    /// The memory limit changed: forget the fail-fast watch's episode and lift a stall at once
    /// (a stall is about the old limit; under the new one the watch starts over).
    pub(crate) fn reset_fail_fast(&self) {
        self.p.limiter.lock().watch.reset();
        self.mheap.limiter_stall_ns.store(0, Ordering::Relaxed);
    }
}

/// The GC CPU limiter's feed (Go: `gcCPULimiterState.update`): process CPU time and the GC's
/// CPU time at the last update, and the fail-fast watch.
pub(crate) struct LimiterFeed {
    pub limiter: CpuLimiter,
    watch: LimiterWatch,
    last_update: Option<Instant>,
    last_process_ns: u64,
    last_gc_ns: u64,
    last_mark_ns: u64,
}

impl LimiterFeed {
    pub(crate) fn new(procs: usize, per_proc_ns: u64, fail_fast_ns: Option<u64>) -> LimiterFeed {
        LimiterFeed {
            limiter: CpuLimiter::with_capacity(procs, per_proc_ns),
            watch: LimiterWatch::new(fail_fast_ns),
            last_update: None,
            last_process_ns: 0,
            last_gc_ns: 0,
            last_mark_ns: 0,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// What a test's borrowed concurrent cycle measured: `marked` bytes, all reached by
    /// tracing, the heap at `heap_end` at mark termination, 1 ms of marking, no assists.
    fn concurrent_cycle(marked: usize, heap_end: usize) -> CycleMeasures {
        CycleMeasures {
            marked,
            reached: marked,
            heap_end,
            mark_ns: 1_000_000,
            assist_ns: 0,
            idle_ns: 0,
            concurrent: true,
        }
    }

    /// The assist ratio counts the globals' scan work as done, as the work expected counts it
    /// (Go: heap + stack + globals): with 8 MiB of heap and 4 MiB of globals to scan (a goal
    /// of 8 + 12 MiB) and the heap at 10 MiB, 2 MiB of heap and the 4 MiB of globals scanned
    /// leave 6 MiB of work for 10 MiB of runway.
    #[test]
    fn revise_counts_the_globals_scan_work_as_done() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(Some(100))).unwrap();
        let h = heap.shared();
        {
            let mut model = h.pacer.model.lock();
            model.reset_live(8 * MIB, 8 * MIB, 8 * MIB, 0);
            model.set_globals_scan(4 * MIB);
            model.commit(true, 8 * MIB);
            assert_eq!(model.heap_goal(MemoryStats::default()), 20 * MIB);
        }
        let c = &h.mheap.counters;
        let live = c.heap_live.swap(10 * MIB as usize, Ordering::Relaxed);
        let scan = c.heap_scan.swap(8 * MIB as usize, Ordering::Relaxed);
        let p = &h.pacer;
        p.heap_scan_work.store(2 * MIB, Ordering::Relaxed);
        let ratio = |globals: u64| {
            p.globals_scan_work.store(globals, Ordering::Relaxed);
            h.controller().revise();
            f64::from_bits(p.assist_ratio.load(Ordering::Relaxed))
        };
        let (with, without) = (ratio(4 * MIB), ratio(0));
        // The heap this test borrowed goes back as it was (no cycle ran meanwhile).
        c.heap_live.store(live, Ordering::Relaxed);
        c.heap_scan.store(scan, Ordering::Relaxed);
        p.heap_scan_work.store(0, Ordering::Relaxed);
        p.globals_scan_work.store(0, Ordering::Relaxed);
        assert!((with - 0.6).abs() < 1e-9, "work per byte {with}");
        assert!((without - 1.0).abs() < 1e-9, "work per byte {without}");
    }

    /// A heap that shrank keeps about what its new goal needs: at the end of the cycle that
    /// found 32 MiB of 1 KiB buffers dead, the pages growth may keep before releasing
    /// (`Arena::retain_goal`) are the pages in use scaled by the goals' ratio, new ÷ old (Go's
    /// `gcPercentHeapGoal` scaling), plus 10%: about half the new goal here (the heap in use
    /// was about half the old goal), not all it maps, nor the pages scaled the other way (the
    /// test asks for a quarter to three quarters of the new goal).
    #[test]
    #[cfg_attr(
        miri,
        ignore = "needs a heap above the 4 MiB goal minimum: 32 MiB of buffers"
    )]
    fn a_shrunken_heaps_retain_goal_follows_its_new_goal() {
        type Bufs = crate::Rootable!['gc => crate::GcVec<'gc, Option<crate::GcBytes<'gc>>>];
        let heap = crate::Heap::new(crate::Config::default().gc_percent(Some(100))).unwrap();
        let mut m: crate::Mutator<Bufs> = heap.mutator(|mc| crate::GcVec::new(mc));
        let bufs = 32 << 10;
        m.mutate(|mc, v| {
            for _ in 0..bufs {
                v.push(mc, Some(crate::GcBytes::new(mc, &[1u8; 1024])));
            }
        });
        m.collect();
        m.mutate(|mc, v| v.truncate(mc, 0));
        m.collect();
        let goal = heap.take_cycle_records().last().unwrap().next_goal;
        let retain = heap
            .shared()
            .mheap
            .arena
            .retain_goal
            .load(Ordering::Relaxed);
        assert!(
            retain >= goal / 4 && retain <= goal / 4 * 3,
            "retain goal {} KiB, next goal {} KiB",
            retain >> 10,
            goal >> 10
        );
    }

    /// `HeapStats::gc_percent` reads the lock-free mirror of GOGC: as configured, and as set.
    #[test]
    fn the_gc_percent_mirror_follows_the_setting() {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(Some(50))).unwrap();
        assert_eq!(heap.shared().pacer.gc_percent(), Some(50));
        assert_eq!(heap.stats().gc_percent, Some(50));
        heap.set_gc_percent(None);
        assert_eq!(heap.stats().gc_percent, None);
        heap.set_gc_percent(Some(300));
        assert_eq!(heap.stats().gc_percent, Some(300));
    }

    /// A setting changed while a cycle runs but `marking` is not (yet, or no longer) set (STW 1
    /// and STW 2, or a stop-the-world cycle) leaves the trigger off: the model decides.
    #[test]
    fn a_running_cycle_keeps_the_trigger_off_whatever_marking_says() {
        let heap = crate::Heap::new(crate::Config::default()).unwrap();
        let h = heap.shared();
        let c = h.controller();
        c.start_cycle();
        assert_eq!(h.pacer.trigger.load(Ordering::Relaxed), usize::MAX);
        assert!(!c.update_trigger(false));
        let trigger = h.pacer.trigger.load(Ordering::Relaxed);
        // End the borrowed cycle.
        let live = h.mheap.counters.heap_live.load(Ordering::Relaxed);
        c.end_cycle(concurrent_cycle(live, live));
        assert_eq!(trigger, usize::MAX, "a trigger set while the cycle ran");
    }

    /// A live-heap cap with no goal the heap can reach (GOGC=off, no limit) sets the trigger at
    /// the cap, also when the last cycle found the live heap exactly at the cap (which
    /// allocation does not refuse), but not once it found the cap exceeded (allocation is
    /// refused then); a reachable goal keeps its own trigger, even above the cap.
    #[test]
    fn a_live_heap_cap_triggers_only_without_a_reachable_goal() {
        const CAP: usize = 8 << 20;
        let heap = crate::Heap::new(
            crate::Config::default()
                .gc_percent(None)
                .max_heap(Some(CAP)),
        )
        .unwrap();
        let h = heap.shared();
        let c = h.controller();
        let reached = &h.mheap.counters.heap_reached;
        let trigger = || h.pacer.trigger.load(Ordering::Relaxed);
        for (at, want) in [
            (CAP / 2, CAP),
            (CAP, CAP),
            (CAP + 1, usize::MAX),
            (CAP + CAP / 2, usize::MAX),
        ] {
            reached.store(at, Ordering::Relaxed);
            assert!(!c.update_trigger(false));
            assert_eq!(trigger(), want, "reached {at}");
            // At the cap, and not past it: allocation goes on.
            assert_eq!(h.mheap.check_max_heap().is_ok(), at <= CAP, "reached {at}");
        }
        // A reachable goal: GOGC=100 with 6 MiB marked, goal 12 MiB.
        {
            let mut model = h.pacer.model.lock();
            model.set_gc_percent(Some(100));
            model.reset_live(6 * MIB, 6 * MIB, 6 * MIB, 0);
            model.commit(true, 6 * MIB);
        }
        reached.store(6 << 20, Ordering::Relaxed);
        assert!(!c.update_trigger(false));
        assert!(trigger() > CAP, "trigger {} lowered to the cap", trigger());
        reached.store(0, Ordering::Relaxed);
    }

    /// Under a memory limit a fresh span re-derives the trigger once mapped memory has moved by
    /// more than 1/64 of the limit since the last derivation, and not before.
    #[test]
    fn mapped_memory_moving_past_a_64th_of_the_limit_re_derives_the_trigger() {
        const LIMIT: usize = 64 << 20;
        let heap = crate::Heap::new(crate::Config::default().memory_limit(Some(LIMIT))).unwrap();
        let h = heap.shared();
        let c = h.controller();
        let last = &h.pacer.last_trigger_mapped;
        let now = h.mheap.arena.mapped_ready_bytes();
        for moved in [LIMIT, LIMIT / 64 + 1] {
            last.store(now + moved, Ordering::Relaxed);
            // A sentinel the derivation replaces.
            h.pacer.trigger.store(1, Ordering::Relaxed);
            assert!(
                !c.note_growth(false),
                "moved {moved}: nothing allocated, no cycle due"
            );
            assert_eq!(
                last.load(Ordering::Relaxed),
                now,
                "moved {moved}: not re-derived"
            );
            assert_ne!(h.pacer.trigger.load(Ordering::Relaxed), 1, "moved {moved}");
        }
        for moved in [LIMIT / 64, LIMIT / 128, 0] {
            last.store(now + moved, Ordering::Relaxed);
            assert!(!c.note_growth(false));
            assert_eq!(
                last.load(Ordering::Relaxed),
                now + moved,
                "moved {moved}: re-derived"
            );
        }
        last.store(now, Ordering::Relaxed);
    }

    /// An assist revises the ratio when the pacer is free (as `revise` would) and leaves it
    /// when another thread holds the pacer.
    #[test]
    fn revise_if_free_revises_unless_the_pacer_is_held() {
        let heap = crate::Heap::new(crate::Config::default()).unwrap();
        let h = heap.shared();
        let p = &h.pacer;
        let sentinel = (-1.0f64).to_bits();
        p.assist_ratio.store(sentinel, Ordering::Relaxed);
        h.controller().revise_if_free();
        let free = p.assist_ratio.load(Ordering::Relaxed);
        assert_ne!(free, sentinel, "not revised");
        h.controller().revise();
        assert_eq!(p.assist_ratio.load(Ordering::Relaxed), free);
        p.assist_ratio.store(sentinel, Ordering::Relaxed);
        {
            let _held = p.model.lock();
            h.controller().revise_if_free();
        }
        assert_eq!(p.assist_ratio.load(Ordering::Relaxed), sentinel);
        h.controller().revise();
    }

    /// The cons/mark measurement counts heap, stack and globals scan work (Go: all three): 8
    /// MiB allocated during the cycle over 4 MiB of scan work gives the same estimate as the
    /// same cycle with the 4 MiB all heap work, and a different one from 2 MiB.
    #[test]
    fn the_cycles_scan_work_counts_heap_stack_and_globals() {
        let cons_mark = |heap_w: u64, stack_w: u64, globals_w: u64| {
            let heap = crate::Heap::new(crate::Config::default()).unwrap();
            let h = heap.shared();
            let (p, c) = (&h.pacer, h.controller());
            let start = h.mheap.counters.heap_live.load(Ordering::Relaxed);
            c.start_cycle();
            p.heap_scan_work.store(heap_w, Ordering::Relaxed);
            p.stack_scan_work.store(stack_w, Ordering::Relaxed);
            p.globals_scan_work.store(globals_w, Ordering::Relaxed);
            let end = c.end_cycle(concurrent_cycle(start, start + 8 * MIB as usize));
            for w in [&p.heap_scan_work, &p.stack_scan_work, &p.globals_scan_work] {
                w.store(0, Ordering::Relaxed);
            }
            end.cons_mark
        };
        let split = cons_mark(2 * MIB, MIB, MIB);
        assert_eq!(
            split,
            cons_mark(4 * MIB, 0, 0),
            "globals or stack work left out"
        );
        assert_ne!(split, cons_mark(2 * MIB, 0, 0));
    }

    /// The limiter is fed at most every `LIMITER_UPDATE_NS` unless forced: a forced update sets
    /// the next due time that far on; an unforced call before it does nothing, one after it
    /// feeds the limiter; a forced one always does.
    #[test]
    fn the_limiter_is_fed_every_millisecond_unless_forced() {
        let heap = crate::Heap::new(crate::Config::default()).unwrap();
        let h = heap.shared();
        let c = h.controller();
        let next = &h.pacer.limiter_next_ns;
        let now = || h.phases.offset(Instant::now()).as_nanos() as u64;
        let step = crate::pacer::LIMITER_UPDATE_NS;
        let before = now();
        c.update_limiter(true, 1);
        let after = now();
        let n = next.load(Ordering::Relaxed);
        assert!(
            n >= before + step && n <= after + step,
            "next {n}, now {before}..{after}"
        );
        next.store(u64::MAX, Ordering::Relaxed);
        c.update_limiter(false, 1);
        assert_eq!(
            next.load(Ordering::Relaxed),
            u64::MAX,
            "fed before it was due"
        );
        c.update_limiter(true, 1);
        assert_ne!(
            next.load(Ordering::Relaxed),
            u64::MAX,
            "a forced update skipped"
        );
        next.store(0, Ordering::Relaxed);
        c.update_limiter(false, 1);
        assert_ne!(next.load(Ordering::Relaxed), 0, "not fed when due");
    }

    /// The limiter's enabled count counts the times it turns on, not the updates it is on for,
    /// and records the cycle it turned on in.
    #[test]
    fn the_limiter_counts_the_times_it_turns_on() {
        let heap = crate::Heap::new(crate::Config::default()).unwrap();
        let h = heap.shared();
        {
            let mut f = h.pacer.limiter.lock();
            f.limiter = CpuLimiter::with_capacity(1, u64::MAX / 2);
            assert!(f.limiter.accumulate(0, u64::MAX / 2));
        }
        for _ in 0..6 {
            // The first only records the figures.
            h.controller().update_limiter(true, 7);
        }
        assert!(h.pacer.limiting.load(Ordering::Relaxed));
        assert_eq!(h.stats.limiter_enabled.load(Ordering::Relaxed), 1);
        assert_eq!(
            h.stats.limiter_last_enabled_cycle.load(Ordering::Relaxed),
            7
        );
    }

    /// The square-root rule's allocation rate is measured between cycle ends: nothing from the
    /// first cycle (no end before it), then the bytes allocated since the last mark over the
    /// time between the two ends.
    #[test]
    fn the_allocation_rate_is_measured_between_cycle_ends() {
        use crate::util::pacer_config::{PacerConfig, Policy};
        let pacer = PacerConfig {
            policy: Policy::SqrtRule { c: 1e-8 },
            ..PacerConfig::default()
        };
        let heap = crate::Heap::new(crate::Config::default().pacer(pacer)).unwrap();
        let h = heap.shared();
        let (p, c) = (&h.pacer, h.controller());
        let cycle = |heap_end: u64| {
            c.start_cycle();
            p.heap_scan_work.store(MIB, Ordering::Relaxed);
            c.end_cycle(concurrent_cycle(MIB as usize, heap_end as usize));
            p.heap_scan_work.store(0, Ordering::Relaxed);
        };
        cycle(2 * MIB);
        assert!(
            p.model.lock().sqrt_rule_estimates().is_none(),
            "a rate from the first cycle"
        );
        let end1 = p.last_end_ns.load(Ordering::Relaxed);
        let marked = p.model.lock().heap_marked();
        std::thread::sleep(std::time::Duration::from_millis(2));
        cycle(marked + 4 * MIB);
        let end2 = p.last_end_ns.load(Ordering::Relaxed);
        let (g, _) = p
            .model
            .lock()
            .sqrt_rule_estimates()
            .expect("no rate after two cycles");
        let want = (4 * MIB) as f64 / ((end2 - end1) as f64 * 1e-9);
        assert!((g / want - 1.0).abs() < 1e-9, "rate {g}, want {want}");
    }
}
