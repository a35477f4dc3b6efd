//! The pacer model: trigger, heap goal, assist ratio, CPU limiter and scavenger goals (pure).

use std::collections::VecDeque;

use crate::util::pacer_config::{PacerConfig, Policy};

/// Fraction of the CPUs background marking uses (Go: `gcBackgroundUtilization`); also the goal
/// utilisation of a cycle (`gcGoalUtilization`): the trigger is placed so that marking at this
/// utilisation alone ends as the heap reaches the goal, with no assists.
pub const GC_BACKGROUND_UTILIZATION: f64 = 0.25;

/// Heap minimum at GOGC=100 (Go: `defaultHeapMinimum`): the goal is never below
/// `4 MiB × GOGC/100`, which amortises the fixed cost of a cycle over small heaps.
pub const DEFAULT_HEAP_MINIMUM: u64 = 4 << 20;

/// The goal is at least this far above the heap size at which the cycle started (Go:
/// `heapGoalInternal`, `minRunway`), since assists are proportional to the distance.
pub const MIN_RUNWAY: u64 = 64 << 10;

/// While the last cycle's sweep is not done, the trigger is at least this far above the live heap
/// (Go: `sweepMinHeapDistance`), so that sweeping has some allocation to happen in.
pub const SWEEP_MIN_HEAP_DISTANCE: u64 = 1 << 20;

/// Memory-limit headroom: the limit-based goal is lowered by 3% of itself, at least 1 MiB, to
/// absorb pacing error (Go 1.21's `memoryLimitHeapGoalHeadroomPercent` and its 1 MiB minimum;
/// Go 1.19 used a flat 1 MiB, which lets a heap of hundreds of MiB overshoot the limit).
const LIMIT_HEADROOM_PERCENT: u64 = 3;
const LIMIT_HEADROOM_MIN: u64 = 1 << 20;

/// The least room a goal the memory limit sets must leave, as a fraction of the heap the last
/// cycle reached by tracing, for the GC CPU limiter to treat it as it treats a GOGC goal (a
/// GOGC of 6, so to speak; see [`Pacer::goal_leaves_room`]).
pub const LIMIT_MIN_ROOM: f64 = 1.0 / 16.0;

/// Past the goal, a cycle aims this much further (Go: `maxOvershoot` in `revise`); the default
/// of [`PacerConfig::max_overshoot`].
pub const MAX_OVERSHOOT: f64 = 1.1;

/// What the heap has mapped, for the memory limit (Go: `mappedReady`, `heapFree`,
/// `totalAlloc − totalFree`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Memory mapped and not returned to the OS (arena pages ever used minus pages released).
    pub mapped_ready: u64,
    /// Free pages not yet released to the OS.
    pub heap_free: u64,
    /// Bytes of allocated objects not yet freed by the sweeper (live, and dead but unswept).
    pub heap_alloc: u64,
}

/// How much scan work an allocating mutator owes per byte, and its inverse (Go:
/// `assistWorkPerByte`, `assistBytesPerWork`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AssistRatio {
    /// Scan work owed per byte allocated.
    pub work_per_byte: f64,
    /// Bytes of allocation one unit of scan work pays for.
    pub bytes_per_work: f64,
    /// The goal the ratio paces for before any overshoot allowance: the cycle's goal, or the
    /// extended goal once the scan work has passed the expectation (see [`Pacer::revise`]).
    /// The pacer lets a cycle end up to [`MAX_OVERSHOOT`] × this.
    pub extended_goal: u64,
}

/// What a cycle measured, for the cons/mark estimate (Go: the inputs of `endCycle`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleEnd {
    /// The live heap at mark termination (Go: `heapLive`).
    pub heap_live: u64,
    /// Scan work done by the cycle: heap, root stacks, global roots.
    pub scan_work: u64,
    /// CPU time of mark assists.
    pub assist_ns: u64,
    /// CPU time of idle-priority marking (a fractional worker marking on a spare CPU).
    pub idle_ns: u64,
    /// Wall time assists were enabled: from mark start to mark termination.
    pub mark_ns: u64,
    /// Wall time since the last cycle's mark termination (the allocation rate's denominator
    /// for [`Policy::SqrtRule`]; 0 for the heap's first cycle).
    pub cycle_ns: u64,
}

/// The pacer state (Go: `gcControllerState`, the parts that are not counters).
#[derive(Clone, Debug, PartialEq)]
pub struct Pacer {
    cfg: PacerConfig,
    gc_percent: Option<u32>,
    memory_limit: Option<u64>,
    heap_minimum: u64,
    procs: usize,
    /// Bytes marked by the last cycle (Go: `heapMarked`).
    heap_marked: u64,
    /// Of those, the bytes it reached by tracing: the marked heap without what was allocated
    /// black during the cycle, i.e. what was live at its start and still is (Go has no such
    /// figure). Free of the floating garbage allocate-black keeps.
    heap_reached: u64,
    /// Heap scan work of the last cycle (Go: `lastHeapScan`).
    last_heap_scan: u64,
    /// Root-stack scan work of the last cycle (Go: `lastStackScan`).
    last_stack_scan: u64,
    /// Global-root scan work (the stash; Go: `globalsScan`).
    globals_scan: u64,
    /// The cons/mark estimate used for the next trigger (Go: `consMark`) and the last cycles'
    /// raw values, newest last (Go 1.19 keeps one: `lastConsMark`).
    cons_mark: f64,
    cons_mark_history: VecDeque<f64>,
    /// The square-root rule's smoothed allocation rate (bytes per second) and collector speed
    /// (scan work per GC CPU-second), once a cycle has measured them.
    alloc_rate: Option<f64>,
    gc_speed: Option<f64>,
    /// Goal from GOGC alone (Go: `gcPercentHeapGoal`), set by `commit`.
    gc_percent_goal: u64,
    /// Heap growth the next cycle needs to mark in (Go: `runway`), set by `commit`.
    runway: u64,
    /// Lower bound on the trigger while sweeping (Go: `sweepDistMinTrigger`).
    sweep_dist_min_trigger: u64,
    /// The heap size at which the current cycle started (Go: `triggered`), `None` between
    /// cycles.
    triggered: Option<u64>,
    /// The goal when the last cycle ended (Go: `lastHeapGoal`, for the scavenger).
    last_heap_goal: u64,
}

impl Pacer {
    /// A pacer for `GOGC = gc_percent` (`None`: off), the soft memory limit (`None`: none) and
    /// `procs` CPUs (Go: GOMAXPROCS).
    pub fn new(gc_percent: Option<u32>, memory_limit: Option<u64>, procs: usize) -> Pacer {
        Pacer::with_config(gc_percent, memory_limit, procs, PacerConfig::default())
    }

    /// [`Pacer::new`] with other knobs than the defaults. `cfg` should pass
    /// [`PacerConfig::validate`] (the heap refuses one that does not); here out-of-range values
    /// are clamped into range (trigger ratios into `[0.01, 0.99]` with the maximum at least the
    /// minimum, the window into 1–64, the overshoot to at least 1, the limiter's bucket to at
    /// least [`MIN_LIMITER_BUCKET_NS`](crate::util::pacer_config::MIN_LIMITER_BUCKET_NS) as its
    /// limiter does, the fail-fast window to at least 1 ns)
    /// and a square-root rule without a positive, finite `c` falls back to the proportional one.
    pub fn with_config(
        gc_percent: Option<u32>,
        memory_limit: Option<u64>,
        procs: usize,
        cfg: PacerConfig,
    ) -> Pacer {
        let ratio = |r: f64| if r.is_nan() { 0.5 } else { r.clamp(0.01, 0.99) };
        let min_trigger_ratio = ratio(cfg.min_trigger_ratio);
        let mut p = Pacer {
            cfg: PacerConfig {
                policy: match cfg.policy {
                    Policy::SqrtRule { c } if !(c > 0.0 && c.is_finite()) => Policy::Proportional,
                    p => p,
                },
                min_trigger_ratio,
                max_trigger_ratio: ratio(cfg.max_trigger_ratio).max(min_trigger_ratio),
                cons_mark_window: cfg.cons_mark_window.clamp(1, 64),
                max_overshoot: if cfg.max_overshoot.is_finite() {
                    cfg.max_overshoot.max(1.0)
                } else {
                    1.0
                },
                max_extension: cfg
                    .max_extension
                    .filter(|x| !x.is_nan())
                    .map(|x| x.max(1.0)),
                limiter_capacity_per_proc_ns: cfg
                    .limiter_capacity_per_proc_ns
                    .max(crate::util::pacer_config::MIN_LIMITER_BUCKET_NS),
                limiter_fail_fast_ns: cfg.limiter_fail_fast_ns.map(|n| n.max(1)),
            },
            gc_percent: None,
            memory_limit,
            heap_minimum: 0,
            procs: procs.max(1),
            heap_marked: 0,
            heap_reached: 0,
            last_heap_scan: 0,
            last_stack_scan: 0,
            globals_scan: 0,
            cons_mark: 0.0,
            cons_mark_history: VecDeque::new(),
            alloc_rate: None,
            gc_speed: None,
            gc_percent_goal: 0,
            runway: 0,
            sweep_dist_min_trigger: 0,
            triggered: None,
            last_heap_goal: 0,
        };
        p.set_gc_percent(gc_percent);
        p
    }

    /// Set GOGC and return the old value (Go: `setGCPercent`). The heap minimum follows:
    /// `4 MiB × GOGC/100`.
    pub fn set_gc_percent(&mut self, gc_percent: Option<u32>) -> Option<u32> {
        let old = self.gc_percent;
        self.gc_percent = gc_percent;
        self.heap_minimum = match gc_percent {
            Some(p) => DEFAULT_HEAP_MINIMUM.saturating_mul(p as u64) / 100,
            None => 0,
        };
        self.recompute();
        old
    }

    /// Set the soft memory limit and return the old one (Go: `setMemoryLimit`).
    pub fn set_memory_limit(&mut self, limit: Option<u64>) -> Option<u64> {
        std::mem::replace(&mut self.memory_limit, limit)
    }

    /// The knobs this pacer runs with.
    pub fn config(&self) -> &PacerConfig {
        &self.cfg
    }

    /// The square-root rule's estimates: the smoothed allocation rate (bytes per second) and
    /// collector speed (scan work per GC CPU-second), once a cycle has measured them.
    pub fn sqrt_rule_estimates(&self) -> Option<(f64, f64)> {
        Some((self.alloc_rate?, self.gc_speed?))
    }

    /// GOGC (`None`: off).
    pub fn gc_percent(&self) -> Option<u32> {
        self.gc_percent
    }

    /// The soft memory limit (`None`: none).
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// Bytes marked by the last cycle.
    pub fn heap_marked(&self) -> u64 {
        self.heap_marked
    }

    /// The cons/mark estimate (bytes allocated per unit of scan work, CPU for CPU).
    pub fn cons_mark(&self) -> f64 {
        self.cons_mark
    }

    /// The goal when the last cycle ended.
    pub fn last_heap_goal(&self) -> u64 {
        self.last_heap_goal
    }

    /// The scan work a cycle expects (Go: `lastHeapScan + lastStackScan + globalsScan`): the last
    /// cycle's heap and stack scan work and the global roots' now. It sizes the runway and is
    /// what [`Pacer::revise`] paces for until more than that has been done.
    fn expected_scan_work(&self) -> u64 {
        self.last_heap_scan
            .saturating_add(self.last_stack_scan)
            .saturating_add(self.globals_scan)
    }

    /// Set the scan work of the global roots (the stash) for the next goal.
    pub fn set_globals_scan(&mut self, bytes: u64) {
        self.globals_scan = bytes;
    }

    /// Record the end of a mark phase (Go: `resetLive`): `marked` bytes are live, `reached` of
    /// them were reached by tracing (the rest was allocated black during the cycle),
    /// `heap_scan_work` of them were scanned, and the root stacks took `stack_scan_work`.
    pub fn reset_live(
        &mut self,
        marked: u64,
        reached: u64,
        heap_scan_work: u64,
        stack_scan_work: u64,
    ) {
        self.heap_marked = marked;
        self.heap_reached = reached.min(marked);
        self.last_heap_scan = heap_scan_work;
        self.last_stack_scan = stack_scan_work;
        self.triggered = None;
    }

    /// Whether a cycle has started ([`Pacer::start_cycle`]) and not yet ended
    /// ([`Pacer::reset_live`]).
    pub fn cycle_running(&self) -> bool {
        self.triggered.is_some()
    }

    /// Recompute the GOGC goal and the runway (Go: `commit`), after a cycle or a setting change.
    ///
    /// * GOGC goal = `marked + (marked + stack scan + globals scan) × GOGC/100`, at least the
    ///   heap minimum `4 MiB × GOGC/100`; none with GOGC=off. Under [`Policy::SqrtRule`], once
    ///   a cycle has measured the allocation rate `g` and the collector's speed `s`, the goal
    ///   is `marked + √(marked × g ÷ (c × s))` instead, at least the heap minimum of GOGC=100
    ///   (4 MiB) and `marked + MIN_RUNWAY`.
    /// * runway = `cons/mark × (1 − u)/u × (last heap scan + stack scan + globals scan)` with
    ///   `u` = [`GC_BACKGROUND_UTILIZATION`]: the bytes the mutators allocate while the
    ///   background workers, at `u` of the CPUs, do the expected scan work — the mutators having
    ///   the other `1 − u`. The trigger is the goal minus the runway.
    /// * While the last sweep is not done, the trigger stays [`SWEEP_MIN_HEAP_DISTANCE`] above
    ///   `heap_live`.
    pub fn commit(&mut self, sweep_done: bool, heap_live: u64) {
        self.sweep_dist_min_trigger = if sweep_done {
            0
        } else {
            heap_live.saturating_add(SWEEP_MIN_HEAP_DISTANCE)
        };
        self.recompute();
    }

    /// The GOGC goal and the runway from the current state (the body of Go's `commit`).
    fn recompute(&mut self) {
        let scan = self.expected_scan_work();
        self.gc_percent_goal = match (self.gc_percent, self.cfg.policy, self.sqrt_rule_estimates())
        {
            (None, _, _) => u64::MAX,
            (Some(_), Policy::SqrtRule { c }, Some((g, s))) => {
                let extra = (self.heap_marked as f64 * g / (c * s)).sqrt();
                let goal = self.heap_marked as f64 + extra;
                let goal = if goal.is_finite() {
                    goal.min(u64::MAX as f64) as u64
                } else {
                    u64::MAX
                };
                goal.max(DEFAULT_HEAP_MINIMUM)
                    .max(self.heap_marked.saturating_add(MIN_RUNWAY))
            }
            (Some(p), _, _) => {
                let roots_and_heap = (self.heap_marked as u128
                    + self.last_stack_scan as u128
                    + self.globals_scan as u128)
                    * p as u128
                    / 100;
                (self.heap_marked as u128 + roots_and_heap)
                    .min(u64::MAX as u128)
                    .max(self.heap_minimum as u128) as u64
            }
        };
        let u = GC_BACKGROUND_UTILIZATION;
        let runway = self.cons_mark * (1.0 - u) / u * scan as f64;
        // `as` saturates: a runway too long for a `u64` (an unbounded cons/mark) starts the
        // cycle at the trigger's lower bound, a negative or NaN one (never from `end_cycle`,
        // whose estimates are finite and positive) at its upper bound.
        self.runway = runway as u64;
    }

    /// The goal the soft memory limit allows (Go: `memoryLimitHeapGoal`; `u64::MAX` without a
    /// limit).
    ///
    /// Memory that is mapped but not heap objects or free pages (span fragmentation, for
    /// gc-core; unswept garbage is still in `heap_alloc`) is `non_heap = mapped_ready − heap_free − heap_alloc`; what is
    /// mapped beyond the limit is the `overage`. The goal is `limit − (non_heap + overage)`,
    /// minus the headroom (3%, at least 1 MiB), and never below the live heap: a limit below
    /// the live heap gives back-to-back cycles, whose CPU the [`CpuLimiter`] caps.
    pub fn memory_limit_heap_goal(&self, m: MemoryStats) -> u64 {
        let Some(limit) = self.memory_limit else {
            return u64::MAX;
        };
        self.memory_limit_goal_less(limit, m, m.mapped_ready.saturating_sub(limit))
            .max(self.heap_marked)
    }

    /// `limit − (non_heap + overage)` minus the headroom, 0 when those take all of the limit:
    /// the memory-limit goal for the given overage.
    fn memory_limit_goal_less(&self, limit: u64, m: MemoryStats, overage: u64) -> u64 {
        let non_heap = m.mapped_ready.saturating_sub(m.heap_free + m.heap_alloc);
        if non_heap + overage >= limit {
            return 0;
        }
        let goal = limit - (non_heap + overage);
        let headroom = (goal / 100 * LIMIT_HEADROOM_PERCENT).max(LIMIT_HEADROOM_MIN);
        // Below twice the headroom, the headroom itself (not what is left of the goal).
        goal.saturating_sub(headroom).max(headroom)
    }

    /// The most the heap may reach under the memory limit: `limit − (non_heap + overage)`
    /// without the headroom, at least the live heap (`u64::MAX` without a limit). Assists
    /// aim at most here however far marking runs over ([`Pacer::revise`]).
    pub fn memory_limit_hard_goal(&self, m: MemoryStats) -> u64 {
        let Some(limit) = self.memory_limit else {
            return u64::MAX;
        };
        let non_heap = m.mapped_ready.saturating_sub(m.heap_free + m.heap_alloc);
        let overage = m.mapped_ready.saturating_sub(limit);
        limit
            .saturating_sub(non_heap + overage)
            .max(self.heap_marked)
    }

    /// Whether the memory limit sets the heap goal (its goal is below the GOGC goal), as
    /// [`Pacer::heap_goal_and_min_trigger`] decides. Only then can the live heap leave a cycle
    /// no room to reach its goal, the death spiral the GC CPU limiter is there to stop: a GOGC
    /// goal is always GOGC% above the marked heap.
    pub fn goal_from_memory_limit(&self, m: MemoryStats) -> bool {
        self.memory_limit_heap_goal(m) < self.gc_percent_goal
    }

    /// Whether the goal leaves the live heap room to grow into, which decides what the GC CPU
    /// limiter does past the goal (`gc::mark::assist`): a GOGC goal always does (it is GOGC%
    /// above the marked heap); a goal the memory limit sets does when the limit, before it is
    /// held at the live heap, is at least [`LIMIT_MIN_ROOM`] above the heap the last cycle
    /// reached by tracing. When it is not, the live heap is at (or over) the limit: the death
    /// spiral, in which assists would take all the CPU and still not reach the goal, and the
    /// limiter lets the heap overshoot instead, as Go's does.
    ///
    /// Why the reached heap and not the marked one: what the mutators allocate during a mark
    /// phase is marked (allocate-black) whether or not it is garbage by the end. With the
    /// limiter stopping assists, a fast allocator makes most of the marked heap floating
    /// garbage (treechurn, 256 MiB live under a 384 MiB limit: 483 MB marked of which 227 MB
    /// allocated during the phase), and judged by the marked heap the limit would look
    /// outgrown and the spiral would feed itself.
    ///
    /// For the same reason the room leaves out the overage (what is mapped beyond the limit),
    /// which the goal subtracts: that is garbage and free pages the next cycle and the scavenger
    /// return, not live data. Counted, a heap pushed over its limit once (a collector thread
    /// kept off the CPU by another process) lost its room, the limiter stopped every assist,
    /// the heap overshot further and the overage grew: on a loaded two-CPU machine the pacing
    /// test under a 28 MiB limit ran its cycles to 2.5–2.8 × their goal.
    pub fn goal_leaves_room(&self, m: MemoryStats) -> bool {
        if !self.goal_from_memory_limit(m) {
            return true;
        }
        let Some(limit) = self.memory_limit else {
            return true;
        };
        self.memory_limit_goal_less(limit, m, 0) as f64
            >= self.heap_reached as f64 * (1.0 + LIMIT_MIN_ROOM)
    }

    /// The heap goal and the lowest trigger the goal allows (Go: `heapGoalInternal`): the
    /// smaller of the GOGC goal and the memory-limit goal. When GOGC decides, the goal is also
    /// at least the sweep distance and [`MIN_RUNWAY`] above where the current cycle started.
    pub fn heap_goal_and_min_trigger(&self, m: MemoryStats) -> (u64, u64) {
        let mut goal = self.gc_percent_goal;
        let limit_goal = self.memory_limit_heap_goal(m);
        if limit_goal < goal {
            return (limit_goal, 0);
        }
        goal = goal.max(self.sweep_dist_min_trigger);
        if let Some(t) = self.triggered {
            goal = goal.max(t.saturating_add(MIN_RUNWAY));
        }
        (goal, self.sweep_dist_min_trigger)
    }

    /// The heap goal (Go: `heapGoal`; `u64::MAX` with GOGC=off and no memory limit).
    pub fn heap_goal(&self, m: MemoryStats) -> u64 {
        self.heap_goal_and_min_trigger(m).0
    }

    /// The trigger and the goal (Go 1.19: `gcControllerState.trigger`): `goal − runway`,
    /// bounded below by `marked + (goal − marked) × min_trigger` (0.8; Go: 45/64, so that a fast
    /// allocator does not make the collector run nearly all the time) and above by `marked +
    /// (goal − marked) × 61/64` or, for large heaps, `goal − heap minimum` (some headroom is
    /// left whenever a cycle starts). The two ratios are [`PacerConfig::min_trigger_ratio`] and
    /// [`PacerConfig::max_trigger_ratio`].
    pub fn trigger(&self, m: MemoryStats) -> (u64, u64) {
        let (goal, mut min_trigger) = self.heap_goal_and_min_trigger(m);
        if goal == u64::MAX {
            return (u64::MAX, u64::MAX);
        }
        let marked = self.heap_marked;
        if marked >= goal {
            return (goal, goal);
        }
        min_trigger = min_trigger.max(marked);
        let span = goal - marked;
        let at = |ratio: f64| (span as f64 * ratio) as u64 + marked;
        min_trigger = min_trigger.max(at(self.cfg.min_trigger_ratio));
        let max_trigger = at(self.cfg.max_trigger_ratio)
            .max(goal.saturating_sub(DEFAULT_HEAP_MINIMUM))
            .max(min_trigger);
        let trigger = goal.saturating_sub(self.runway);
        (trigger.clamp(min_trigger, max_trigger).min(goal), goal)
    }

    /// A cycle starts at `heap_live` (Go: `startCycle`, which also sets `triggered`). Returns
    /// the goal of the cycle.
    pub fn start_cycle(&mut self, heap_live: u64, m: MemoryStats) -> u64 {
        self.triggered = Some(heap_live);
        self.heap_goal(m)
    }

    /// The assist ratio during a cycle (Go: `revise`): scan work remaining ÷ heap remaining.
    ///
    /// * Expected scan work = last heap scan + stack scan + globals scan. If more than that has
    ///   been done (the heap grew), the cycle assumes the worst — all scannable memory
    ///   (`heap_scan` + roots) is live — and moves the goal out in proportion, at most to
    ///   `(1 + GOGC/100) × goal` (Go's hard goal), and at most to
    ///   [`PacerConfig::max_extension`] × goal when that is set.
    /// * Past the goal anyway, it aims at 1.1 × the goal with the worst-case work.
    /// * Under a memory limit the extension stops at the limit itself (the limit-based goal
    ///   without its headroom, [`Pacer::memory_limit_hard_goal`]), so the overshoot past it is
    ///   the 10% above at most: gc-core's choice. Go 1.19 extends to `(1 + GOGC/100) × goal`
    ///   with GOGC taken as 100000 when off, i.e. without bound. (Capping the 10% overshoot
    ///   at the limit too held mapped memory down but made a single treechurn operation wait
    ///   66 ms in assists.) A cycle with no scan work on record yet (the heap's first)
    ///   extends straight to the hard goal (or `max_extension` × goal, if lower).
    /// * Remaining work is at least 1000, remaining heap at least 1 byte.
    ///
    /// `heap_live`: now; `heap_scan`: scannable bytes of the heap now (marked scannable bytes
    /// plus scannable bytes allocated since); `work_done`: scan work done so far this cycle.
    pub fn revise(
        &self,
        heap_live: u64,
        heap_scan: u64,
        stack_scan: u64,
        work_done: u64,
        m: MemoryStats,
    ) -> AssistRatio {
        let gc_percent = self.gc_percent.unwrap_or(100_000) as f64;
        let mut heap_goal = self.heap_goal(m).min(i64::MAX as u64) as f64;
        let triggered = self.triggered.unwrap_or(heap_live) as f64;
        let mut expected = self.expected_scan_work() as f64;
        let max_work =
            (heap_scan + stack_scan.max(self.last_stack_scan) + self.globals_scan) as f64;
        let work = work_done as f64;
        if work > expected {
            let ext = if expected > 0.0 {
                (heap_goal - triggered) / expected * max_work + triggered
            } else {
                f64::INFINITY
            };
            expected = max_work;
            let mut hard = (1.0 + gc_percent / 100.0) * heap_goal;
            if let Some(x) = self.cfg.max_extension {
                hard = hard.min(x * heap_goal);
            }
            let limit = self.memory_limit_hard_goal(m) as f64;
            heap_goal = ext.min(hard).min(limit.max(heap_goal));
        }
        let extended_goal = heap_goal as u64;
        if heap_live as f64 > heap_goal {
            heap_goal *= self.cfg.max_overshoot;
            expected = max_work;
        }
        let remaining_work = (expected - work).max(1000.0);
        let remaining_heap = (heap_goal - heap_live as f64).max(1.0);
        AssistRatio {
            work_per_byte: remaining_work / remaining_heap,
            bytes_per_work: remaining_heap / remaining_work,
            extended_goal,
        }
    }

    /// The square-root rule's measurements of one cycle (see [`Pacer::end_cycle`]).
    fn learn_sqrt_rule(&mut self, c: &CycleEnd) {
        let allocated = c.heap_live.saturating_sub(self.heap_marked) as f64;
        let gc_cpu = c.mark_ns as f64 * GC_BACKGROUND_UTILIZATION * self.procs as f64
            + c.assist_ns as f64
            + c.idle_ns as f64;
        let ewma = |old: Option<f64>, new: f64| Some(old.map_or(new, |o| (o + new) / 2.0));
        if c.cycle_ns > 0 && allocated > 0.0 {
            self.alloc_rate = ewma(self.alloc_rate, allocated / (c.cycle_ns as f64 * 1e-9));
        }
        if gc_cpu > 0.0 && c.scan_work > 0 {
            self.gc_speed = ewma(self.gc_speed, c.scan_work as f64 / (gc_cpu * 1e-9));
        }
    }

    /// Update the cons/mark estimate at the end of a cycle (Go 1.19: `endCycle`).
    ///
    /// With `u` = background utilisation (assumed at its target, 25%) plus assist utilisation
    /// (`assist CPU ÷ (mark time × procs)`) and `i` the idle utilisation, the cycle's cons/mark
    /// is
    ///
    /// ```text
    /// (heap_live − triggered) × (u + i)  ÷  (scan work × (1 − u))
    /// ```
    ///
    /// — bytes allocated per mutator CPU over scan work per GC CPU. The estimate used for the
    /// next trigger is the mean of this cycle's and the last cycle's values (Go 1.19 replaced
    /// 1.18's PI controller by this two-cycle average: the raw value is noisy); the window is
    /// [`PacerConfig::cons_mark_window`] cycles.
    ///
    /// For [`Policy::SqrtRule`] it also updates the allocation rate `g` = bytes allocated since
    /// the last cycle ÷ [`CycleEnd::cycle_ns`] and the collector's speed `s` = scan work ÷
    /// the mark phase's GC CPU (background share, assists, idle marking), each an exponentially
    /// weighted mean that gives the new cycle half the weight (MemBalancer smooths both).
    pub fn end_cycle(&mut self, c: CycleEnd, goal: u64) {
        self.end_cycle_traced(c, goal);
    }

    /// [`Pacer::end_cycle`], returning Go's `gcpacertrace` line for the cycle (`None` for a
    /// cycle that taught nothing).
    pub fn end_cycle_traced(&mut self, c: CycleEnd, goal: u64) -> Option<String> {
        self.last_heap_goal = goal;
        let triggered = self.triggered?;
        self.learn_sqrt_rule(&c);
        let procs = self.procs as f64;
        let mut utilization = GC_BACKGROUND_UTILIZATION;
        let mut idle = 0.0;
        if c.mark_ns > 0 {
            utilization += c.assist_ns as f64 / (c.mark_ns as f64 * procs);
            idle = c.idle_ns as f64 / (c.mark_ns as f64 * procs);
        }
        if c.heap_live <= triggered || c.scan_work == 0 || utilization >= 1.0 {
            // A cycle too short to say anything (Go ignores it too).
            return None;
        }
        let current = (c.heap_live - triggered) as f64 * (utilization + idle)
            / (c.scan_work as f64 * (1.0 - utilization));
        let old = self.cons_mark;
        // Go 1.19 starts with a zero `lastConsMark`: the first estimate is half the first value.
        // Only the two-cycle window gets that seed: a longer one would average it in for
        // several cycles.
        if self.cons_mark_history.is_empty() && self.cfg.cons_mark_window == 2 {
            self.cons_mark_history.push_back(0.0);
        }
        self.cons_mark_history.push_back(current);
        while self.cons_mark_history.len() > self.cfg.cons_mark_window {
            self.cons_mark_history.pop_front();
        }
        self.cons_mark =
            self.cons_mark_history.iter().sum::<f64>() / self.cons_mark_history.len() as f64;
        Some(format!(
            "pacer: {}% CPU ({} exp.) for {} B work ({} B exp.) in {} B -> {} B (∆goal {}, cons/mark {:.6})",
            (utilization * 100.0) as u64,
            (GC_BACKGROUND_UTILIZATION * 100.0) as u64,
            c.scan_work,
            self.expected_scan_work(),
            triggered,
            c.heap_live,
            // No goal (GOGC=off and no memory limit): no distance to it.
            if goal == u64::MAX {
                "none".to_string()
            } else {
                (c.heap_live as i128 - goal as i128).to_string()
            },
            old
        ))
    }
}

/// Background marking at [`GC_BACKGROUND_UTILIZATION`] of `procs` CPUs, split as Go's
/// `startCycle` splits it: `total = 0.25 × procs` rounded to whole *dedicated* workers, unless
/// rounding is off by more than 30%, in which case the dedicated count is rounded down and the
/// rest is one *fractional* worker. Returns each worker's share of a CPU (dedicated first). Two
/// CPUs: `[0.5]`; four: `[1]`; six: `[1, 0.5]`; eight: `[1, 1]`.
pub fn worker_shares(procs: usize) -> Vec<f64> {
    let total = GC_BACKGROUND_UTILIZATION * procs.max(1) as f64;
    let mut dedicated = (total + 0.5).floor();
    let mut fractional = 0.0;
    if dedicated == 0.0 || (dedicated - total).abs() / total > 0.3 {
        if dedicated > total {
            dedicated -= 1.0;
        }
        fractional = total - dedicated;
    }
    let mut shares = vec![1.0; dedicated as usize];
    if fractional > 0.0 {
        shares.push(fractional);
    }
    shares
}

/// The GC CPU limiter (Go: `gcCPULimiterState` in `mgclimit.go`): a leaky bucket of capacity
/// [`LIMITER_CAPACITY_PER_PROC`] per CPU. GC CPU time fills it, mutator CPU time drains it, so it fills only
/// while the GC takes more than half of the CPU. While it is full the limiter is *on*: mark
/// assists stop (the heap may then overshoot its goal), which keeps a memory limit below the
/// live heap from turning every CPU into a collector (a "death spiral").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuLimiter {
    capacity: u64,
    fill: u64,
    enabled: bool,
    /// GC CPU time that did not fit in the full bucket (Go: `overflow`): the time the limiter
    /// would have taken away.
    overflow: u64,
}

/// Once on, the limiter stays on until its bucket has drained by 1/this of its capacity.
pub const LIMITER_OFF_MARGIN: u64 = 20;

/// The limiter turns on when its bucket is within 1/this of its capacity of full.
pub const LIMITER_ON_MARGIN: u64 = 40;

// The smallest bucket `PacerConfig::validate` accepts is the one with a margin of 1 ns.
const _: () = assert!(crate::util::pacer_config::MIN_LIMITER_BUCKET_NS == LIMITER_ON_MARGIN);

/// CPU time per CPU the limiter's bucket holds: 100 ms. Go's `capacityPerProc` is one second,
/// which lets the GC take well over half the CPU for the first several seconds of a memory
/// limit below the live heap (the bucket fills at the *excess* over 50%, e.g. 0.1 CPU-s per
/// second at 55%); a VM that runs a script for a few seconds would never see the limiter. A
/// tenth of that engages within about a second and still absorbs the short bursts (a cycle's
/// assists) the limiter is not meant to cut.
pub const LIMITER_CAPACITY_PER_PROC: u64 = 100_000_000;

impl CpuLimiter {
    /// A limiter for `procs` CPUs, empty and off.
    pub fn new(procs: usize) -> CpuLimiter {
        CpuLimiter::with_capacity(procs, LIMITER_CAPACITY_PER_PROC)
    }

    /// A limiter for `procs` CPUs whose bucket holds `per_proc_ns` per CPU
    /// ([`PacerConfig::limiter_capacity_per_proc_ns`]; at least 40 ns, so that its margins are
    /// not zero; a bucket past `u64::MAX` ns in all holds `u64::MAX`, centuries of CPU time,
    /// rather than wrap round to a tiny one that would keep the limiter on).
    pub fn with_capacity(procs: usize, per_proc_ns: u64) -> CpuLimiter {
        CpuLimiter {
            capacity: per_proc_ns
                .max(LIMITER_ON_MARGIN)
                .saturating_mul(procs.max(1) as u64),
            fill: 0,
            enabled: false,
            overflow: 0,
        }
    }

    /// Account a window in which the GC used `gc_ns` and the mutators `mutator_ns` of CPU
    /// (Go: `accumulate`); returns whether the limiter is on afterwards.
    pub fn accumulate(&mut self, mutator_ns: u64, gc_ns: u64) -> bool {
        if gc_ns >= mutator_ns {
            let change = gc_ns - mutator_ns;
            let headroom = self.capacity - self.fill;
            if change >= headroom {
                self.overflow = self.overflow.saturating_add(change - headroom);
                self.fill = self.capacity;
                self.enabled = true;
                return true;
            }
            self.fill += change;
        } else {
            self.fill = self.fill.saturating_sub(mutator_ns - gc_ns);
        }
        // Go turns the limiter on when the bucket is full and off as soon as it is not; gc-core
        // turns it on 1/40 short of full and keeps it on until it has drained to 1/20 short.
        // Without those margins each off window (assists at full force) overflows the bucket
        // before the next update (at most every millisecond) notices, and the GC averages well
        // over half the CPU: the overflow is GC time the bucket never counted. (Measured:
        // 56–61% instead of about 50% with a memory limit below the live heap;
        // `tests/pacing.rs`.)
        self.enabled = if self.enabled {
            self.fill > self.capacity - self.capacity / LIMITER_OFF_MARGIN
        } else {
            self.fill >= self.capacity - self.capacity / LIMITER_ON_MARGIN
        };
        self.enabled
    }

    /// Whether the limiter is on.
    pub fn limiting(&self) -> bool {
        self.enabled
    }

    /// How full the bucket is, in CPU nanoseconds, and its capacity.
    pub fn fill(&self) -> (u64, u64) {
        (self.fill, self.capacity)
    }

    /// GC CPU time the limiter has refused so far.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }
}

/// How often a heap feeds its GC CPU limiter the CPU time used since the last update, at
/// most (while something calls for updates: marking, assists, allocation under a limit).
pub const LIMITER_UPDATE_NS: u64 = 1_000_000;

/// The fail-fast watch on the GC CPU limiter ([`PacerConfig::limiter_fail_fast_ns`]).
///
/// The limiter does not stay on without a break when the heap is stuck over its memory limit:
/// it turns off as soon as its bucket drains a little, the assists it allowed again refill it,
/// and it flickers, on for milliseconds at a time. So the watch counts *episodes*: an episode
/// starts when the limiter turns on and goes on through breaks of up to a quarter of the
/// window, and at least two of the heap's limiter updates ([`LIMITER_UPDATE_NS`] apart; a
/// shorter break could never be told from the time between two updates, and a window under
/// 4 ms would never stall); it ends once the limiter has stayed off for longer than that. The heap is
/// *stalled* while an episode has lasted the window (from its start to the limiter's latest
/// time on).
///
/// Between two updates that both see the limiter on, it is taken to have stayed on, unless
/// they are further apart than that break: then nobody watched, and the gap counts as one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimiterWatch {
    window_ns: Option<u64>,
    /// When the current episode started, and when the limiter was last seen on.
    episode: Option<(u64, u64)>,
    /// Whether it was on at the last update, and when that was.
    last: Option<(bool, u64)>,
}

impl LimiterWatch {
    /// A watch that stalls after `window_ns` of limiting (`None`: never).
    pub fn new(window_ns: Option<u64>) -> LimiterWatch {
        LimiterWatch {
            window_ns,
            episode: None,
            last: None,
        }
    }

    /// Forget the current episode (the memory limit changed: what the limiter did under the
    /// old one says nothing about the new one).
    pub fn reset(&mut self) {
        self.episode = None;
        self.last = None;
    }

    /// The limiter is `on` at `now_ns` (any monotonic clock). Returns how long the episode has
    /// lasted if the heap is stalled, else `None`.
    pub fn update(&mut self, on: bool, now_ns: u64) -> Option<u64> {
        let window = self.window_ns?;
        let longest_break = (window / 4).max(2 * LIMITER_UPDATE_NS);
        let was_on = match self.last.replace((on, now_ns)) {
            Some((was_on, at)) => was_on && now_ns.saturating_sub(at) <= longest_break,
            None => false,
        };
        if let Some((_, last_on)) = self.episode
            && !was_on
            && now_ns.saturating_sub(last_on) > longest_break
        {
            self.episode = None;
        }
        if on {
            let (start, last_on) = self.episode.unwrap_or((now_ns, now_ns));
            // Times only move on (a caller's clock read may race with another's).
            self.episode = Some((start, now_ns.max(last_on)));
        }
        let (start, last_on) = self.episode?;
        let lasted = last_on.saturating_sub(start);
        (lasted >= window).then_some(lasted)
    }
}

/// Extra retained memory the scavenger allows over the heap in use, scaled by the goal's
/// change (Go: `retainExtraPercent`).
const RETAIN_EXTRA_PERCENT: u64 = 10;
/// The scavenger keeps mapped memory at 95% of the memory limit (Go: `reduceExtraPercent`).
const REDUCE_EXTRA_PERCENT: u64 = 5;

/// What the background scavenger works towards (Go 1.19: `gcPaceScavenger`): it returns free
/// pages to the OS while retained memory is above `gc_percent_goal` or mapped memory above
/// `memory_limit_goal` (`None`: no work for that goal).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScavengeGoals {
    /// `heap in use × (goal ÷ last goal) × 1.1`, rounded up to a page.
    pub gc_percent_goal: Option<u64>,
    /// 95% of the memory limit.
    pub memory_limit_goal: Option<u64>,
}

/// Compute the scavenger's goals at the end of a cycle: `heap_goal` of the next cycle and
/// `last_heap_goal` of the one that ended, `heap_in_use` (bytes in spans at mark
/// termination), `retained` (heap pages mapped and not released: in use plus free) and
/// `mapped_ready`. `page` is the page size the goal is rounded to.
pub fn scavenge_goals(
    memory_limit: Option<u64>,
    heap_goal: u64,
    last_heap_goal: u64,
    heap_in_use: u64,
    retained: u64,
    mapped_ready: u64,
    page: u64,
) -> ScavengeGoals {
    let memory_limit_goal = memory_limit
        .map(|l| l / 100 * (100 - REDUCE_EXTRA_PERCENT))
        .filter(|&g| mapped_ready > g);
    let gc_percent_goal = if last_heap_goal == 0 || heap_goal == u64::MAX {
        None
    } else {
        let ratio = heap_goal as f64 / last_heap_goal as f64;
        let page = page.max(1);
        let mut g = (heap_in_use as f64 * ratio) as u64;
        g = g.saturating_add(g / (100 / RETAIN_EXTRA_PERCENT));
        g = g.div_ceil(page).saturating_mul(page);
        (retained.saturating_sub(g) >= page).then_some(g)
    };
    ScavengeGoals {
        gc_percent_goal,
        memory_limit_goal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn after_cycle(gogc: Option<u32>, marked: u64, scan: u64, stack: u64) -> Pacer {
        let mut p = Pacer::new(gogc, None, 4);
        p.reset_live(marked, marked, scan, stack);
        p.commit(true, marked);
        p
    }

    #[test]
    fn gogc_goal_counts_roots_and_has_a_minimum() {
        let none = MemoryStats::default();
        // 100 MiB marked, 1 MiB of root stacks, 2 MiB of globals: Go's
        // goal = marked + (marked + stack + globals) × GOGC/100.
        let mut p = after_cycle(Some(100), 100 * MIB, 80 * MIB, MIB);
        p.set_globals_scan(2 * MIB);
        p.commit(true, 100 * MIB);
        assert_eq!(p.heap_goal(none), 100 * MIB + 103 * MIB);
        assert_eq!(p.set_gc_percent(Some(50)), Some(100));
        assert_eq!(p.gc_percent(), Some(50));
        assert_eq!(p.heap_goal(none), 100 * MIB + 103 * MIB / 2);
        p.set_gc_percent(Some(200));
        assert_eq!(p.heap_goal(none), 100 * MIB + 206 * MIB);
        // A tiny heap: 4 MiB × GOGC/100.
        let mut p = after_cycle(Some(100), 10_000, 10_000, 0);
        assert_eq!(p.heap_goal(none), 4 * MIB);
        assert_eq!(p.set_gc_percent(Some(50)), Some(100));
        assert_eq!(p.heap_goal(none), 2 * MIB);
        // GOGC=off: no goal, no trigger.
        let p = after_cycle(None, 100 * MIB, 80 * MIB, 0);
        assert_eq!(p.gc_percent(), None);
        assert_eq!(p.trigger(none), (u64::MAX, u64::MAX));
        // While sweeping, the goal is at least 1 MiB above the live heap.
        let mut p = after_cycle(Some(0), 100 * MIB, 80 * MIB, 0);
        p.commit(false, 100 * MIB);
        assert_eq!(p.heap_goal(none), 101 * MIB);
    }

    #[test]
    fn trigger_from_cons_mark_and_its_bounds() {
        let none = MemoryStats::default();
        let marked = 100 * MIB;
        let mut p = after_cycle(Some(100), marked, 60 * MIB, 0);
        let goal = 200 * MIB;
        // No estimate yet (cons/mark 0): runway 0, so the trigger is at its upper bound,
        // max(marked + (goal − marked)/64 × 61, goal − 4 MiB).
        let hi = (goal - 4 * MIB).max(marked + (goal - marked) / 64 * 61);
        assert_eq!(p.trigger(none), (hi, goal));
        // cons/mark 0.1: runway = 0.1 × 0.75/0.25 × 60 MiB = 18 MiB → trigger 182 MiB.
        p.cons_mark = 0.1;
        p.commit(true, marked);
        let runway = (0.1f64 * 0.75 / 0.25 * (60 * MIB) as f64) as u64;
        assert_eq!(p.trigger(none), (goal - runway, goal));
        // cons/mark 2: a runway of 360 MiB would trigger below the live heap; the lower bound
        // marked + (goal − marked) × 0.8 holds.
        p.cons_mark = 2.0;
        p.commit(true, marked);
        assert_eq!(p.trigger(none).0, marked + (goal - marked) / 5 * 4);
        // An unbounded cons/mark (a runway past `u64`) also triggers at the lower bound; one
        // that is not a number, at the upper.
        p.cons_mark = f64::INFINITY;
        p.commit(true, marked);
        assert_eq!(p.trigger(none).0, marked + (goal - marked) / 5 * 4);
        p.cons_mark = f64::NAN;
        p.commit(true, marked);
        assert_eq!(p.trigger(none), (hi, goal));
        // The upper bound's `goal − 4 MiB` is Go's fixed heap minimum at any GOGC (not the
        // minimum goal GOGC scales): at GOGC=400 it is above the 61/64 point, at GOGC=25 below.
        let p = after_cycle(Some(400), marked, marked, 0);
        assert_eq!(p.trigger(none), (496 * MIB, 500 * MIB));
        let p = after_cycle(Some(25), marked, marked, 0);
        assert_eq!(p.trigger(none), (marked + 25 * MIB / 64 * 61, 125 * MIB));
    }

    #[test]
    fn memory_limit_caps_the_goal() {
        let mut p = after_cycle(Some(100), 100 * MIB, 100 * MIB, 0);
        p.set_memory_limit(Some(160 * MIB));
        // 150 MiB mapped: 10 MiB free pages, 130 MiB of objects → 10 MiB non-heap.
        let m = MemoryStats {
            mapped_ready: 150 * MIB,
            heap_free: 10 * MIB,
            heap_alloc: 130 * MIB,
        };
        let raw = 160 * MIB - 10 * MIB;
        let want = raw - raw / 100 * 3;
        assert_eq!(p.memory_limit_heap_goal(m), want);
        assert_eq!(
            p.heap_goal(m),
            want,
            "smaller than the GOGC goal of 200 MiB"
        );
        assert!(p.goal_from_memory_limit(m));
        // Mapped above the limit: the overage comes off too.
        let m2 = MemoryStats {
            mapped_ready: 170 * MIB,
            heap_free: 0,
            heap_alloc: 165 * MIB,
        };
        let raw = 160 * MIB - (5 * MIB + 10 * MIB);
        assert_eq!(p.heap_goal(m2), raw - raw / 100 * 3);
        // A limit below the live heap: the goal is the live heap (back-to-back cycles).
        p.set_memory_limit(Some(64 * MIB));
        assert_eq!(p.heap_goal(m), 100 * MIB);
        assert_eq!(p.trigger(m), (100 * MIB, 100 * MIB));
        // Small limits keep at least the 1 MiB headroom.
        let q = Pacer::new(Some(100), Some(20 * MIB), 1);
        assert_eq!(q.memory_limit_heap_goal(MemoryStats::default()), 19 * MIB);
        // Below twice the headroom, the goal is the headroom (not what is left of the limit).
        for l in [MIB, MIB + MIB / 2] {
            let q = Pacer::new(Some(100), Some(l), 1);
            assert_eq!(q.memory_limit_heap_goal(MemoryStats::default()), MIB);
        }
        // No limit: no cap, and GOGC sets the goal (also with GOGC=off: no goal at all).
        assert_eq!(
            after_cycle(Some(100), MIB, MIB, 0).memory_limit_heap_goal(m),
            u64::MAX
        );
        assert!(!after_cycle(Some(100), MIB, MIB, 0).goal_from_memory_limit(m));
        assert!(!after_cycle(None, MIB, MIB, 0).goal_from_memory_limit(m));
        // A limit above the GOGC goal: GOGC sets it.
        p.set_memory_limit(Some(1024 * MIB));
        assert_eq!(p.heap_goal(m), 200 * MIB);
        assert!(!p.goal_from_memory_limit(m));
    }

    #[test]
    fn a_goal_leaves_room_unless_the_reached_heap_is_at_the_limit() {
        let mapped = |mib: u64| MemoryStats {
            mapped_ready: mib * MIB,
            heap_free: 0,
            heap_alloc: mib * MIB,
        };
        // A GOGC goal always leaves room, however small GOGC is.
        assert!(after_cycle(Some(1), 100 * MIB, 100 * MIB, 0).goal_leaves_room(mapped(100)));
        // Also under a memory limit just above it: the limit's goal (105 MiB less 3%) is
        // above GOGC=1's 101 MiB, so GOGC decides, though the limit leaves less than 1/16 over
        // the reached heap.
        let mut g = Pacer::new(Some(1), Some(105 * MIB), 2);
        g.reset_live(100 * MIB, 100 * MIB, 100 * MIB, 0);
        g.commit(true, 100 * MIB);
        assert_eq!(g.heap_goal(mapped(100)), 101 * MIB);
        assert!(!g.goal_from_memory_limit(mapped(100)));
        assert!(g.goal_leaves_room(mapped(100)));
        // 400 MiB marked of which 250 MiB reached by tracing (150 MiB allocated black), under
        // a 384 MiB limit: the limit-based goal is the marked heap (the limit is below it),
        // but the live heap has room under the limit.
        let mut p = Pacer::new(Some(100), Some(384 * MIB), 2);
        p.reset_live(400 * MIB, 250 * MIB, 250 * MIB, 0);
        p.commit(true, 400 * MIB);
        assert_eq!(p.heap_goal(mapped(380)), 400 * MIB);
        assert!(p.goal_from_memory_limit(mapped(380)));
        assert!(p.goal_leaves_room(mapped(380)));
        // The same marked heap, all of it reached: the live heap is over the limit (the death
        // spiral).
        p.reset_live(400 * MIB, 400 * MIB, 400 * MIB, 0);
        assert!(!p.goal_leaves_room(mapped(380)));
        // Just under the limit: less than 1/16 of room is none.
        let room = |reached: u64| {
            let mut q = Pacer::new(Some(100), Some(384 * MIB), 2);
            q.reset_live(reached, reached, reached, 0);
            q.commit(true, reached);
            q.goal_leaves_room(mapped(reached >> 20))
        };
        let goal = 384 * MIB - 384 * MIB / 100 * 3;
        assert!(room((goal as f64 / (1.0 + LIMIT_MIN_ROOM)) as u64 - MIB));
        assert!(!room((goal as f64 / (1.0 + LIMIT_MIN_ROOM)) as u64 + MIB));
        // Memory mapped past the limit lowers the goal but not the room: it is garbage and
        // free pages, which the next cycle and the scavenger return.
        let mut r = Pacer::new(Some(100), Some(384 * MIB), 2);
        r.reset_live(300 * MIB, 300 * MIB, 300 * MIB, 0);
        r.commit(true, 300 * MIB);
        assert!(r.goal_leaves_room(mapped(300)));
        assert!(r.goal_from_memory_limit(mapped(480)));
        assert!(r.heap_goal(mapped(480)) < r.heap_goal(mapped(300)));
        assert!(r.goal_leaves_room(mapped(480)));
        // Memory mapped for other things (not heap objects, not free pages) is not returned
        // by a cycle: it counts against the room.
        let other = MemoryStats {
            mapped_ready: 480 * MIB,
            heap_free: 0,
            heap_alloc: 300 * MIB,
        };
        assert!(!r.goal_leaves_room(other));
    }

    #[test]
    fn goal_keeps_a_min_runway_above_the_start() {
        let none = MemoryStats::default();
        let mut p = after_cycle(Some(100), 100 * MIB, 100 * MIB, 0);
        assert_eq!(p.start_cycle(150 * MIB, none), 200 * MIB);
        // A cycle started late, at 199.99 MiB: the goal is 64 KiB above the start.
        let late = 200 * MIB - 10_000;
        assert_eq!(p.start_cycle(late, none), late + MIN_RUNWAY);
    }

    #[test]
    fn assist_ratio_follows_revise() {
        let none = MemoryStats::default();
        // Last cycle: 100 MiB marked, 80 MiB scanned, 1 MiB of stacks. Goal 201 MiB.
        let mut p = after_cycle(Some(100), 100 * MIB, 80 * MIB, MIB);
        let goal = p.heap_goal(none) as f64;
        assert_eq!(goal as u64, 201 * MIB);
        let trigger = 170 * MIB;
        p.start_cycle(trigger, none);
        // Under the goal, 30 MiB of the expected 81 MiB done, live 180 MiB:
        // (81 − 30) MiB of work over (201 − 180) MiB of heap.
        let r = p.revise(180 * MIB, 90 * MIB, MIB, 30 * MIB, none);
        let want = (51 * MIB) as f64 / (goal - (180 * MIB) as f64);
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?} vs {want}");
        assert_eq!(r.extended_goal, goal as u64);
        assert!((r.bytes_per_work * r.work_per_byte - 1.0).abs() < 1e-12);
        // More work done than expected (85 > 81 MiB): worst case is all 120 MiB of scannable
        // heap + 1 MiB of stacks; the goal moves to (goal − trigger)/81 × 121 + trigger,
        // within the hard goal 2 × goal.
        let r = p.revise(190 * MIB, 120 * MIB, MIB, 85 * MIB, none);
        let ext = (goal - trigger as f64) / (81 * MIB) as f64 * (121 * MIB) as f64 + trigger as f64;
        let want = (36 * MIB) as f64 / (ext - (190 * MIB) as f64);
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?} vs {want}");
        assert_eq!(r.extended_goal, ext as u64);
        // Less stack scanned so far than in the last cycle: the worst case keeps the last
        // cycle's (Go: `max(stackScan, lastStackScan)`), so the same extension.
        let r = p.revise(190 * MIB, 120 * MIB, MIB / 4, 85 * MIB, none);
        assert_eq!(r.extended_goal, ext as u64);
        // Past the goal (210 MiB live, expected work not exceeded): aim at 1.1 × goal with the
        // worst-case work (121 MiB).
        let r = p.revise(210 * MIB, 120 * MIB, MIB, 50 * MIB, none);
        let want = (71 * MIB) as f64 / (goal * 1.1 - (210 * MIB) as f64);
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?} vs {want}");
        // The overshoot allowance is not an extension.
        assert_eq!(r.extended_goal, goal as u64);
        // Past even that: at least 1 byte of heap and 1000 units of work remain.
        let r = p.revise(400 * MIB, 120 * MIB, MIB, 500 * MIB, none);
        assert_eq!(r.work_per_byte, 1000.0);
        // Under a 210 MiB limit (the goal, 201 MiB, still from GOGC: the limit's is 210 MiB
        // less 3%; nothing mapped beyond the objects): the extended goal (216 MiB) would pass
        // the limit, so the cycle aims at the limit itself with the worst-case work.
        p.set_memory_limit(Some(210 * MIB));
        let m = MemoryStats {
            mapped_ready: 190 * MIB,
            heap_free: 0,
            heap_alloc: 190 * MIB,
        };
        assert_eq!(p.heap_goal(m), 201 * MIB);
        assert_eq!(p.memory_limit_hard_goal(m), 210 * MIB);
        let r = p.revise(190 * MIB, 120 * MIB, MIB, 85 * MIB, m);
        let want = (36 * MIB) as f64 / (20 * MIB) as f64;
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?} vs {want}");
    }

    /// The global roots' scan work counts in the runway, in the work a cycle expects and in the
    /// worst case past it; and at the boundaries the cycle keeps its goal: exactly the expected
    /// work done does not extend it, a heap exactly at it is not past it (Go's `>` both times).
    #[test]
    fn globals_count_in_the_expected_work_and_boundaries_keep_the_goal() {
        let none = MemoryStats::default();
        // 100 MiB marked, 60 MiB scanned, 1 MiB of stacks, 3 MiB of globals: goal 204 MiB,
        // 64 MiB of scan work expected.
        let mut p = after_cycle(Some(100), 100 * MIB, 60 * MIB, MIB);
        p.set_globals_scan(3 * MIB);
        p.cons_mark = 0.1;
        p.commit(true, 100 * MIB);
        let goal = 204 * MIB;
        let runway = (0.1f64 * 0.75 / 0.25 * (64 * MIB) as f64) as u64;
        let trigger = goal - runway;
        assert_eq!(p.trigger(none), (trigger, goal));
        p.start_cycle(trigger, none);
        // 30 MiB done, 190 MiB live: 34 MiB of work over 14 MiB of heap.
        let r = p.revise(190 * MIB, 80 * MIB, MIB, 30 * MIB, none);
        let want = (34 * MIB) as f64 / (14 * MIB) as f64;
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?} vs {want}");
        // Exactly the 64 MiB expected: the goal stays, at least 1000 units of work remain.
        let r = p.revise(190 * MIB, 80 * MIB, MIB, 64 * MIB, none);
        assert_eq!(r.extended_goal, goal);
        assert_eq!(r.work_per_byte, 1000.0 / (14 * MIB) as f64);
        // 70 MiB done: the worst case is 80 MiB of scannable heap, 1 of stacks, 3 of globals.
        let r = p.revise(190 * MIB, 80 * MIB, MIB, 70 * MIB, none);
        let ext = (goal - trigger) as f64 / (64 * MIB) as f64 * (84 * MIB) as f64 + trigger as f64;
        assert_eq!(r.extended_goal, ext as u64);
        // A heap exactly at the goal is not past it: no 10% allowance, 1 byte of heap left.
        let r = p.revise(goal, 80 * MIB, MIB, 30 * MIB, none);
        assert_eq!(r.work_per_byte, (34 * MIB) as f64);
        assert!(
            p.end_cycle_traced(
                CycleEnd {
                    heap_live: 200 * MIB,
                    scan_work: 70 * MIB,
                    mark_ns: 1_000_000,
                    ..CycleEnd::default()
                },
                goal,
            )
            .unwrap()
            .contains(&format!("({} B exp.)", 64 * MIB))
        );
    }

    /// The heap's first cycle (no scan work on record, so any work is more than expected),
    /// started past the goal a memory limit sets, extends to the limit's hard goal, not below
    /// where it started.
    #[test]
    fn a_first_cycle_started_past_a_memory_limit_goal_extends_to_the_hard_goal() {
        // A 3 MiB limit, 2.5 MiB mapped, all of it objects: the goal is 3 MiB less the 1 MiB
        // headroom, the hard goal the limit itself.
        let mut p = Pacer::new(Some(100), Some(3 * MIB), 4);
        let m = MemoryStats {
            mapped_ready: 5 * MIB / 2,
            heap_free: 0,
            heap_alloc: 5 * MIB / 2,
        };
        assert_eq!(p.heap_goal(m), 2 * MIB);
        assert_eq!(p.memory_limit_hard_goal(m), 3 * MIB);
        p.start_cycle(5 * MIB / 2, m);
        let live = 11 * MIB / 4;
        let r = p.revise(live, live, 0, MIB, m);
        assert_eq!(r.extended_goal, 3 * MIB);
        // The worst case, all 2.75 MiB scannable, less the 1 MiB done, over the 0.25 MiB left.
        assert_eq!(r.work_per_byte, 7.0);
    }

    /// More work than expected extends the goal at most to Go's hard goal, (1 + GOGC/100) ×
    /// the goal: the first cycle (no expectation yet, so an unbounded extension) aims at twice
    /// the 4 MiB minimum goal; a later cycle whose work runs far past its expectation at twice,
    /// or at GOGC=50 one and a half times, its goal.
    #[test]
    fn the_hard_goal_caps_the_extension() {
        let none = MemoryStats::default();
        let mut p = Pacer::new(Some(100), None, 4);
        p.start_cycle(3 * MIB, none);
        assert_eq!(p.heap_goal(none), 4 * MIB);
        let r = p.revise(3 * MIB + MIB / 2, 3 * MIB + MIB / 2, 0, MIB, none);
        assert_eq!(r.extended_goal, 8 * MIB);
        for (gogc, goal, start) in [(100, 200, 170), (50, 150, 140)] {
            let mut p = after_cycle(Some(gogc), 100 * MIB, MIB, 0);
            assert_eq!(p.heap_goal(none), goal * MIB);
            p.start_cycle(start * MIB, none);
            let r = p.revise((start + 5) * MIB, 100 * MIB, 0, 2 * MIB, none);
            let hard = goal * MIB / 100 * (100 + gogc as u64);
            assert_eq!(r.extended_goal, hard, "GOGC={gogc}");
        }
    }

    /// Under a memory limit, the hard goal leaves out what is mapped past the limit as well
    /// as the memory that is not heap: with 10 MiB mapped over a 210 MiB limit, an extension
    /// stops at 200 MiB.
    #[test]
    fn the_memory_limits_hard_goal_leaves_out_the_overage() {
        let mut p = after_cycle(Some(100), 100 * MIB, 80 * MIB, MIB);
        let none = MemoryStats::default();
        p.start_cycle(170 * MIB, none);
        p.set_memory_limit(Some(210 * MIB));
        let m = MemoryStats {
            mapped_ready: 220 * MIB,
            heap_free: 0,
            heap_alloc: 220 * MIB,
        };
        assert_eq!(p.memory_limit_hard_goal(m), 200 * MIB);
        let r = p.revise(190 * MIB, 120 * MIB, MIB, 85 * MIB, m);
        assert_eq!(r.extended_goal, 200 * MIB);
        // The memory that is not heap comes off too: 10 MiB of it under the limit.
        let m = MemoryStats {
            mapped_ready: 200 * MIB,
            heap_free: 0,
            heap_alloc: 190 * MIB,
        };
        assert_eq!(p.memory_limit_hard_goal(m), 200 * MIB);
    }

    #[test]
    fn cons_mark_is_a_two_cycle_average() {
        let none = MemoryStats::default();
        let mut p = after_cycle(Some(100), 100 * MIB, 80 * MIB, 0);
        p.start_cycle(150 * MIB, none);
        // 40 MiB allocated during a 100 ms mark on 4 CPUs with 40 ms of assists; 80 MiB of
        // scan work. u = 0.25 + 40/(100 × 4) = 0.35.
        let end = CycleEnd {
            heap_live: 190 * MIB,
            scan_work: 80 * MIB,
            assist_ns: 40_000_000,
            idle_ns: 0,
            mark_ns: 100_000_000,
            cycle_ns: 0,
        };
        p.end_cycle(end, 200 * MIB);
        let u = 0.35;
        let c1 = (40 * MIB) as f64 * u / ((80 * MIB) as f64 * (1.0 - u));
        assert!((p.cons_mark() - c1 / 2.0).abs() < 1e-12);
        assert_eq!(p.last_heap_goal(), 200 * MIB);
        // Second cycle: no assists, 20 MiB allocated over 80 MiB of work.
        p.start_cycle(150 * MIB, none);
        p.end_cycle(
            CycleEnd {
                heap_live: 170 * MIB,
                assist_ns: 0,
                ..end
            },
            200 * MIB,
        );
        let c2 = (20 * MIB) as f64 * 0.25 / ((80 * MIB) as f64 * 0.75);
        assert!((p.cons_mark() - (c1 + c2) / 2.0).abs() < 1e-12);
        // Third cycle: 60 ms of idle marking on the 4 CPUs counts as collector time beside
        // the background share (Go: `utilization + idleUtilization` over `1 − utilization`),
        // so the same allocation gives a larger cons/mark: i = 60/(100 × 4) = 0.15.
        p.start_cycle(150 * MIB, none);
        p.end_cycle(
            CycleEnd {
                heap_live: 170 * MIB,
                assist_ns: 0,
                idle_ns: 60_000_000,
                ..end
            },
            200 * MIB,
        );
        let c3 = (20 * MIB) as f64 * (0.25 + 0.15) / ((80 * MIB) as f64 * 0.75);
        assert!((p.cons_mark() - (c2 + c3) / 2.0).abs() < 1e-12);
        // A cycle that allocated nothing leaves the estimate alone.
        let before = p.cons_mark();
        p.start_cycle(150 * MIB, none);
        p.end_cycle(
            CycleEnd {
                heap_live: 150 * MIB,
                ..end
            },
            200 * MIB,
        );
        assert_eq!(p.cons_mark(), before);
        // Nor does one whose assists took three quarters of the CPUs or more (utilization 1:
        // the formula divides by zero, and past it turns negative).
        for assist_ms in [300, 400] {
            p.start_cycle(150 * MIB, none);
            let line = p.end_cycle_traced(
                CycleEnd {
                    heap_live: 190 * MIB,
                    assist_ns: assist_ms * 1_000_000,
                    ..end
                },
                200 * MIB,
            );
            assert!(line.is_none(), "{assist_ms} ms of assists: {line:?}");
            assert_eq!(p.cons_mark(), before, "{assist_ms} ms of assists");
        }
        // A mark phase too short for the clock (0 ns) counts the background share alone: no
        // assist or idle utilization to divide by it.
        p.start_cycle(150 * MIB, none);
        let zero = CycleEnd {
            heap_live: 170 * MIB,
            assist_ns: 0,
            mark_ns: 0,
            ..end
        };
        assert!(p.end_cycle_traced(zero, 200 * MIB).is_some());
        assert!((p.cons_mark() - (c3 + c2) / 2.0).abs() < 1e-12);
    }

    /// A cycle that started at `start` and ended at `end` after `scan` units of work in a
    /// 100 ms mark phase (no assists), `cycle_ns` after the last one, finding 100 MiB live.
    fn run_cycle(p: &mut Pacer, start: u64, end: u64, scan: u64, cycle_ns: u64) {
        let none = MemoryStats::default();
        p.start_cycle(start, none);
        let goal = p.heap_goal(none);
        p.end_cycle(
            CycleEnd {
                heap_live: end,
                scan_work: scan,
                mark_ns: 100_000_000,
                cycle_ns,
                ..CycleEnd::default()
            },
            goal,
        );
        // The same 100 MiB found live each time.
        p.reset_live(100 * MIB, 100 * MIB, scan, 0);
        p.commit(true, 100 * MIB);
    }

    #[test]
    fn sqrt_rule_sizes_the_goal_from_rates() {
        let none = MemoryStats::default();
        let c = 1e-8;
        let cfg = PacerConfig {
            policy: Policy::SqrtRule { c },
            ..PacerConfig::default()
        };
        let mut p = Pacer::with_config(Some(100), None, 4, cfg);
        p.reset_live(100 * MIB, 100 * MIB, 100 * MIB, 0);
        p.commit(true, 100 * MIB);
        // No rates yet: GOGC's goal.
        assert_eq!(p.heap_goal(none), 200 * MIB);
        assert_eq!(p.sqrt_rule_estimates(), None);
        // 50 MiB allocated in 1 s; 100 MiB of scan work in a 100 ms mark at 1 of 4 CPUs.
        run_cycle(&mut p, 140 * MIB, 150 * MIB, 100 * MIB, 1_000_000_000);
        let (g, s) = p.sqrt_rule_estimates().unwrap();
        assert!((g - (50 * MIB) as f64).abs() < 1.0, "{g}");
        assert!((s - (100 * MIB) as f64 / 0.1).abs() < 1.0, "{s}");
        let want = 100.0 * MIB as f64 + (100.0 * MIB as f64 * g / (c * s)).sqrt();
        assert_eq!(p.heap_goal(none), want as u64);
        // A second cycle allocating twice as fast: the estimate moves halfway.
        run_cycle(&mut p, 140 * MIB, 200 * MIB, 100 * MIB, 1_000_000_000);
        let (g2, _) = p.sqrt_rule_estimates().unwrap();
        assert!((g2 - (g + (100 * MIB) as f64) / 2.0).abs() < 1.0, "{g2}");
        // GOGC=off still means off; the memory limit still caps.
        p.set_gc_percent(None);
        assert_eq!(p.heap_goal(none), u64::MAX);
        p.set_gc_percent(Some(100));
        p.set_memory_limit(Some(110 * MIB));
        assert!(p.heap_goal(none) < 110 * MIB);
    }

    /// The square-root rule's collector speed divides the scan work by all the GC CPU of the
    /// cycle, the background share, the assists' and idle marking's; and its goal keeps the
    /// heap minimum, however small the live heap.
    #[test]
    fn sqrt_rule_speed_counts_assists_and_idle_marking_and_its_goal_a_minimum() {
        let none = MemoryStats::default();
        let cfg = PacerConfig {
            policy: Policy::SqrtRule { c: 1e-8 },
            ..PacerConfig::default()
        };
        let mut p = Pacer::with_config(Some(100), None, 4, cfg);
        p.reset_live(100 * MIB, 100 * MIB, 100 * MIB, 0);
        p.commit(true, 100 * MIB);
        p.start_cycle(140 * MIB, none);
        let goal = p.heap_goal(none);
        // A 100 ms mark at 1 of 4 CPUs (0.1 CPU-s), 0.2 CPU-s of assists, 0.1 of idle marking:
        // 100 MiB of scan work in 0.4 CPU-s.
        p.end_cycle(
            CycleEnd {
                heap_live: 150 * MIB,
                scan_work: 100 * MIB,
                assist_ns: 200_000_000,
                idle_ns: 100_000_000,
                mark_ns: 100_000_000,
                cycle_ns: 1_000_000_000,
            },
            goal,
        );
        let (_, speed) = p.sqrt_rule_estimates().unwrap();
        let want = (100 * MIB) as f64 / 0.4;
        assert!((speed - want).abs() < 1.0, "{speed} against {want}");
        // A live heap of 64 KiB allocating 1 KiB/s: the rule asks for a few KiB of runway;
        // the goal is the heap minimum (4 MiB at GOGC=100) all the same.
        let mut small = Pacer::with_config(Some(100), None, 4, p.config().clone());
        small.reset_live(64 << 10, 64 << 10, 64 << 10, 0);
        small.commit(true, 64 << 10);
        small.start_cycle(100 << 10, none);
        let goal = small.heap_goal(none);
        small.end_cycle(
            CycleEnd {
                heap_live: 65 << 10,
                scan_work: 64 << 10,
                mark_ns: 1_000_000,
                cycle_ns: 1_000_000_000,
                ..CycleEnd::default()
            },
            goal,
        );
        small.reset_live(64 << 10, 64 << 10, 64 << 10, 0);
        small.commit(true, 64 << 10);
        assert!(small.sqrt_rule_estimates().is_some());
        assert_eq!(small.heap_goal(none), DEFAULT_HEAP_MINIMUM);
    }

    /// A cycle that measured nothing leaves the square-root rule's rates as they were: nothing
    /// allocated since the last mark, no time since the last cycle (no allocation rate), no
    /// scan work or no GC CPU (no collector speed).
    #[test]
    fn sqrt_rule_rates_ignore_cycles_that_measured_nothing() {
        let none = MemoryStats::default();
        let mut p = Pacer::new(Some(100), None, 4);
        p.reset_live(100 * MIB, 100 * MIB, 100 * MIB, 0);
        p.commit(true, 100 * MIB);
        let mut learn = |end: CycleEnd| {
            p.start_cycle(140 * MIB, none);
            p.end_cycle(end, 200 * MIB);
            p.sqrt_rule_estimates()
        };
        // 50 MiB allocated in 1 s; 100 MiB of scan work in 0.1 CPU-s.
        let base = CycleEnd {
            heap_live: 150 * MIB,
            scan_work: 100 * MIB,
            mark_ns: 100_000_000,
            cycle_ns: 1_000_000_000,
            ..CycleEnd::default()
        };
        let rates = learn(base);
        let (g, speed) = rates.unwrap();
        assert!((g - (50 * MIB) as f64).abs() < 1.0, "{g}");
        assert!((speed - (100 * MIB) as f64 / 0.1).abs() < 1.0, "{speed}");
        for (what, end) in [
            (
                "nothing allocated",
                CycleEnd {
                    heap_live: 100 * MIB,
                    ..base
                },
            ),
            (
                "no time since the last cycle",
                CycleEnd {
                    cycle_ns: 0,
                    ..base
                },
            ),
            (
                "no scan work",
                CycleEnd {
                    scan_work: 0,
                    ..base
                },
            ),
            ("no GC CPU", CycleEnd { mark_ns: 0, ..base }),
        ] {
            assert_eq!(learn(end), rates, "{what}");
        }
    }

    /// At a tie between the memory limit's goal and GOGC's, GOGC's decides (Go takes the
    /// limit's only when it is lower), and with it the minimum runway above the start.
    #[test]
    fn at_a_tie_the_gogc_goal_decides() {
        let none = MemoryStats::default();
        // GOGC=100 over 48.5 MiB marked: 97 MiB; a 100 MiB limit less its 3%: 97 MiB.
        let marked = 97 * MIB / 2;
        let mut p = after_cycle(Some(100), marked, marked, 0);
        p.set_memory_limit(Some(100 * MIB));
        assert_eq!(p.memory_limit_heap_goal(none), 97 * MIB);
        assert_eq!(p.heap_goal(none), 97 * MIB);
        assert!(!p.goal_from_memory_limit(none));
        p.start_cycle(97 * MIB, none);
        assert_eq!(p.heap_goal(none), 97 * MIB + MIN_RUNWAY);
    }

    /// A square-root rule whose constant is not positive and finite sizes no goal: the pacer
    /// takes the proportional rule instead.
    #[test]
    fn a_square_root_rule_needs_a_positive_finite_constant() {
        let with = |c: f64| {
            let cfg = PacerConfig {
                policy: Policy::SqrtRule { c },
                ..PacerConfig::default()
            };
            Pacer::with_config(Some(100), None, 4, cfg).config().policy
        };
        for c in [0.0, -1e-8, f64::INFINITY, f64::NAN] {
            assert_eq!(with(c), Policy::Proportional, "c = {c}");
        }
        assert_eq!(with(1e-8), Policy::SqrtRule { c: 1e-8 });
    }

    /// `max_extension` bounds the goal extension below the hard goal; 1 turns it off (the
    /// cycle paces for its goal with the worst-case work left).
    #[test]
    fn max_extension_bounds_the_extended_goal() {
        let none = MemoryStats::default();
        let at = |x: Option<f64>| {
            let cfg = PacerConfig {
                max_extension: x,
                ..PacerConfig::default()
            };
            let mut p = Pacer::with_config(Some(100), None, 4, cfg);
            // Last cycle: 100 MiB marked and scanned; goal 200 MiB; triggered at 170 MiB.
            p.reset_live(100 * MIB, 100 * MIB, 100 * MIB, 0);
            p.commit(true, 100 * MIB);
            p.start_cycle(170 * MIB, none);
            // 110 MiB of work done of the 100 MiB expected, 150 MiB scannable now: the extension
            // is (200 − 170) / 100 × 150 + 170 = 215 MiB, within the hard goal (400 MiB).
            p.revise(190 * MIB, 150 * MIB, 0, 110 * MIB, none)
        };
        assert_eq!(at(None).extended_goal, 215 * MIB);
        assert_eq!(at(Some(1.5)).extended_goal, 215 * MIB);
        let r = at(Some(1.05));
        assert_eq!(r.extended_goal, 210 * MIB);
        let want = (40 * MIB) as f64 / (20 * MIB) as f64;
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?} vs {want}");
        let r = at(Some(1.0));
        assert_eq!(r.extended_goal, 200 * MIB);
        let want = (40 * MIB) as f64 / (10 * MIB) as f64;
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?} vs {want}");
    }

    #[test]
    fn knobs_change_trigger_bounds_overshoot_and_smoothing() {
        let none = MemoryStats::default();
        let cfg = PacerConfig {
            min_trigger_ratio: 0.5,
            max_trigger_ratio: 0.6,
            max_overshoot: 1.5,
            cons_mark_window: 1,
            ..PacerConfig::default()
        };
        // A small heap: the upper bound is the ratio, 0.6 of the way from marked to the goal
        // (no runway measured yet, so the trigger sits at it).
        let mut small = Pacer::with_config(Some(100), None, 4, cfg.clone());
        small.reset_live(4 * MIB, 4 * MIB, 4 * MIB, 0);
        small.commit(true, 4 * MIB);
        let at = ((4 * MIB) as f64 * 0.6) as u64 + 4 * MIB;
        assert_eq!(small.trigger(none), (at, 8 * MIB));
        let mut p = Pacer::with_config(Some(100), None, 4, cfg);
        p.reset_live(100 * MIB, 100 * MIB, 100 * MIB, 0);
        p.commit(true, 100 * MIB);
        // A large heap: the upper bound is raised to goal − 4 MiB, as Go raises it.
        assert_eq!(p.trigger(none), (196 * MIB, 200 * MIB));
        p.cons_mark = 10.0;
        p.commit(true, 100 * MIB);
        assert_eq!(
            p.trigger(none).0,
            150 * MIB,
            "the lower bound, 0.5 of the way"
        );
        // Past the goal the cycle aims at 1.5 × it.
        p.start_cycle(150 * MIB, none);
        let r = p.revise(210 * MIB, 100 * MIB, 0, 10 * MIB, none);
        let want = (90 * MIB) as f64 / (300.0 * MIB as f64 - (210 * MIB) as f64);
        assert!((r.work_per_byte - want).abs() < 1e-12, "{r:?}");
        // A one-cycle window: the estimate is the last cycle's value alone.
        let mut q = Pacer::with_config(
            Some(100),
            None,
            4,
            PacerConfig {
                cons_mark_window: 1,
                ..PacerConfig::default()
            },
        );
        q.reset_live(100 * MIB, 100 * MIB, 80 * MIB, 0);
        q.commit(true, 100 * MIB);
        run_cycle(&mut q, 150 * MIB, 190 * MIB, 80 * MIB, 0);
        let c1 = (40 * MIB) as f64 * 0.25 / ((80 * MIB) as f64 * 0.75);
        assert!((q.cons_mark() - c1).abs() < 1e-12);
        run_cycle(&mut q, 150 * MIB, 170 * MIB, 80 * MIB, 0);
        assert!((q.cons_mark() - c1 / 2.0).abs() < 1e-12);
        // A longer window is not seeded with Go's zero: the first estimate is the first value,
        // then the mean of those seen.
        let mut w = Pacer::with_config(
            Some(100),
            None,
            4,
            PacerConfig {
                cons_mark_window: 3,
                ..PacerConfig::default()
            },
        );
        w.reset_live(100 * MIB, 100 * MIB, 80 * MIB, 0);
        w.commit(true, 100 * MIB);
        run_cycle(&mut w, 150 * MIB, 190 * MIB, 80 * MIB, 0);
        assert!((w.cons_mark() - c1).abs() < 1e-12);
        run_cycle(&mut w, 150 * MIB, 170 * MIB, 80 * MIB, 0);
        assert!((w.cons_mark() - 0.75 * c1).abs() < 1e-12);
    }

    /// A bucket too large to count in nanoseconds holds `u64::MAX` instead of wrapping round
    /// (2⁶³ ns per CPU on two CPUs wrapped to 0, which kept the limiter on for good).
    #[test]
    fn a_huge_limiter_bucket_saturates() {
        let mut l = CpuLimiter::with_capacity(2, 1 << 63);
        assert_eq!(l.fill(), (0, u64::MAX));
        assert!(!l.accumulate(0, 1_000_000_000_000));
        assert!(!l.limiting());
    }

    #[test]
    fn limiter_capacity_and_fail_fast_watch() {
        let mut l = CpuLimiter::with_capacity(2, 1_000_000_000);
        assert_eq!(l.fill(), (0, 2_000_000_000));
        // 100% GC for 1 s of 2 CPUs fills 2 CPU-s: on.
        assert!(!l.accumulate(0, 1_000_000_000));
        assert!(l.accumulate(0, 1_000_000_000));
        // Times in units of 0.1 ms: a window of 40 ms, whose quarter (10 ms) is longer than
        // two of the heap's limiter updates.
        let u = |t: u64| t * 100_000;
        let mut w = LimiterWatch::new(Some(u(400)));
        for t in [u(1000), u(1100), u(1200), u(1300), u(1399)] {
            assert_eq!(w.update(true, t), None);
        }
        assert_eq!(w.update(true, u(1400)), Some(u(400)));
        // A break of up to a quarter of the window keeps the episode (and the stall) going.
        assert_eq!(w.update(false, u(1450)), Some(u(400)));
        assert_eq!(w.update(false, u(1500)), Some(u(400)));
        // Off for longer: the episode is over.
        assert_eq!(w.update(false, u(1501)), None);
        assert_eq!(w.update(true, u(1600)), None);
        // Flickering, on 10 in every 40: the breaks are short, so the episode runs on and
        // stalls 400 after it started.
        let mut now = u(1600);
        let mut stalled_at = None;
        for _ in 0..30 {
            now += u(10);
            if w.update(true, now).is_some() {
                stalled_at.get_or_insert(now);
            }
            now += u(30);
            w.update(false, now);
        }
        assert_eq!(stalled_at, Some(u(2010)));
        // On at two updates too far apart to say what happened between: a break, and a new
        // episode.
        let mut w = LimiterWatch::new(Some(u(400)));
        assert_eq!(w.update(true, u(0)), None);
        assert_eq!(w.update(true, u(500)), None);
        for t in [u(600), u(700), u(800)] {
            assert_eq!(w.update(true, t), None);
        }
        assert_eq!(w.update(true, u(900)), Some(u(400)));
        // A reset forgets the episode and the stall.
        w.reset();
        assert_eq!(w.update(true, u(950)), None);
        // A time earlier than the last (two updaters' clock reads racing) neither moves the
        // episode back nor underflows its length.
        let mut w = LimiterWatch::new(Some(u(400)));
        assert_eq!(w.update(true, u(1000)), None);
        assert_eq!(w.update(true, u(990)), None);
        for t in [u(1090), u(1190), u(1290), u(1390)] {
            assert_eq!(w.update(true, t), None);
        }
        assert_eq!(w.update(true, u(1400)), Some(u(400)));
        // No window: never stalls.
        let mut never = LimiterWatch::new(None);
        assert_eq!(never.update(true, 0), None);
        assert_eq!(never.update(true, u64::MAX), None);
        // A window shorter than 4 ms, fed as a heap feeds it (an update a millisecond while
        // the limiter stays on): its quarter is shorter than the time between two updates,
        // and the episode still runs on (breaks of up to 2 ms), so the heap stalls.
        let ms = |t: u64| t * LIMITER_UPDATE_NS;
        let mut w = LimiterWatch::new(Some(ms(2)));
        assert_eq!(w.update(true, ms(10)), None);
        assert_eq!(w.update(true, ms(11)), None);
        assert_eq!(w.update(true, ms(12)), Some(ms(2)));
        // Off for longer than 2 ms: over.
        assert_eq!(w.update(false, ms(14)), Some(ms(2)));
        assert_eq!(w.update(false, ms(15)), None);
        assert_eq!(w.update(true, ms(16)), None);
    }

    /// The pure pacer's public functions saturate at extreme inputs instead of overflowing
    /// (a panic in a debug build, a wrapped value in a release build).
    #[test]
    fn extreme_inputs_saturate() {
        // A marked heap of u64::MAX (with stacks and globals on top): the goal saturates.
        let p = after_cycle(Some(100), u64::MAX, 1, 1);
        assert_eq!(p.heap_goal(MemoryStats::default()), u64::MAX);
        // The limiter's overflow counter saturates.
        let mut l = CpuLimiter::new(1);
        assert!(l.accumulate(0, u64::MAX));
        assert!(l.accumulate(0, u64::MAX));
        assert_eq!(l.overflow(), u64::MAX);
        // Scavenging goals with a goal near u64::MAX, and a zero page size (taken as 1 byte).
        let g = scavenge_goals(None, u64::MAX - 1, 1, 2, u64::MAX, 4, 8192);
        assert_eq!(
            g.gc_percent_goal, None,
            "the goal saturates: nothing over it to return"
        );
        // 10 in use × (200 ÷ 100) × 1.1 = 22, in pages of 1 byte.
        let g = scavenge_goals(None, 200, 100, 10, 100, 4, 0);
        assert_eq!(g.gc_percent_goal, Some(22));
    }

    #[test]
    fn worker_shares_follow_gos_rounding() {
        // 25% of the CPUs, in dedicated workers unless rounding would be off by over 30%.
        assert_eq!(worker_shares(1), [0.25]);
        assert_eq!(worker_shares(2), [0.5]);
        assert_eq!(worker_shares(3), [0.75]);
        assert_eq!(worker_shares(4), [1.0]);
        assert_eq!(worker_shares(6), [1.0, 0.5]);
        assert_eq!(worker_shares(8), [1.0, 1.0]);
        // 2.5 rounds to 3 dedicated: off by 20%, within Go's 30%.
        assert_eq!(worker_shares(10), [1.0, 1.0, 1.0]);
        assert_eq!(worker_shares(16), [1.0; 4]);
        for cpus in 1..64 {
            let want = 0.25 * cpus as f64;
            let total: f64 = worker_shares(cpus).iter().sum();
            assert!((total - want).abs() <= 0.3 * want + 1e-9, "{cpus} CPUs");
        }
    }

    #[test]
    fn limiter_fills_above_half_and_drains_below() {
        let mut l = CpuLimiter::new(2);
        assert_eq!(l.fill(), (0, 200_000_000));
        // GC at 60% of 2 CPUs for 0.1 s: fills by 0.12 − 0.08 = 0.04 CPU-s.
        for _ in 0..4 {
            assert!(!l.accumulate(80_000_000, 120_000_000));
        }
        assert_eq!(l.fill().0, 160_000_000);
        // 0.19 CPU-s: not yet within 1/40 (0.005) of full.
        assert!(!l.accumulate(85_000_000, 115_000_000));
        assert_eq!(l.fill().0, 190_000_000);
        // 0.195: on, short of full.
        assert!(l.accumulate(97_500_000, 102_500_000));
        assert_eq!(l.fill().0, 195_000_000);
        assert!(l.accumulate(80_000_000, 120_000_000), "full");
        assert!(l.limiting());
        assert!(l.accumulate(80_000_000, 120_000_000));
        assert_eq!(l.overflow(), 35_000_000 + 40_000_000);
        // Exactly half: stays full and on.
        assert!(l.accumulate(100_000_000, 100_000_000));
        // GC at 47.5%: drains by 0.005 CPU-s per 0.1 s; on until 1/20 (0.01 CPU-s) has
        // drained.
        assert!(l.accumulate(52_500_000, 47_500_000));
        assert_eq!(l.fill().0, 195_000_000);
        assert!(!l.accumulate(52_500_000, 47_500_000));
        assert_eq!(l.fill().0, 190_000_000);
        // Off again until within 1/40 of full (0.195).
        assert!(!l.accumulate(45_000_000, 49_000_000));
        assert!(l.accumulate(45_000_000, 46_000_000));
        assert!(!l.accumulate(u64::MAX / 2, 0));
        assert_eq!(l.fill().0, 0);
    }

    #[test]
    fn scavenger_goals() {
        let page = 8192;
        // (memory limit, goal, last goal, in use, retained, mapped), in pages of 8 KiB.
        let goals = |limit: Option<u64>, goal, last, in_use, retained, mapped| {
            scavenge_goals(limit, goal, last, in_use, retained, mapped, page)
        };
        // Goal unchanged (200 MiB → 200 MiB), 150 MiB in use: retain 165 MiB.
        let g = goals(None, 200 * MIB, 200 * MIB, 150 * MIB, 400 * MIB, 400 * MIB);
        assert_eq!(g.gc_percent_goal, Some(165 * MIB));
        assert_eq!(g.memory_limit_goal, None);
        // Goal halved: retain half as much.
        let g = goals(None, 100 * MIB, 200 * MIB, 150 * MIB, 400 * MIB, 400 * MIB);
        assert_eq!(
            g.gc_percent_goal,
            Some((75 * MIB + 75 * MIB / 10).div_ceil(page) * page)
        );
        // Already below: nothing to do.
        let g = goals(None, 200 * MIB, 200 * MIB, 150 * MIB, 160 * MIB, 160 * MIB);
        assert_eq!(g.gc_percent_goal, None);
        // Memory limit 256 MiB: keep mapped memory at 95% of it, only when above.
        let (limit, at_95) = (Some(256 * MIB), 256 * MIB / 100 * 95);
        let g = goals(limit, 200 * MIB, 200 * MIB, 150 * MIB, 160 * MIB, 250 * MIB);
        assert_eq!(g.memory_limit_goal, Some(at_95));
        // Mapped exactly at 95%: nothing over it.
        let g = goals(limit, 200 * MIB, 200 * MIB, 150 * MIB, 160 * MIB, at_95);
        assert_eq!(g.memory_limit_goal, None);
        // Less than a page over the 165 MiB goal: nothing to return.
        let near = 165 * MIB + page - 1;
        let g = goals(None, 200 * MIB, 200 * MIB, 150 * MIB, near, 400 * MIB);
        assert_eq!(g.gc_percent_goal, None);
        // No goal of a last cycle to scale from (the heap's first): none, also with nothing
        // in use (0 × ∞ would read as a goal of 0 pages).
        for in_use in [0, 150 * MIB] {
            let g = goals(None, 200 * MIB, 0, in_use, 400 * MIB, 400 * MIB);
            assert_eq!(g.gc_percent_goal, None, "{in_use} in use");
        }
        // Below 95%: nothing either.
        let g = goals(limit, 200 * MIB, 200 * MIB, 150 * MIB, 160 * MIB, 200 * MIB);
        assert_eq!(g.memory_limit_goal, None);
    }
}
