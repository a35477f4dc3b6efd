//! The simulator: a scenario's program run in virtual time against gc-core's own
//! [`Pacer`], [`CpuLimiter`], [`LimiterWatch`] and [`scavenge_goals`], the code the heap runs.
//!
//! Time advances in steps (`step`, 1 ms by default; a step is cut where the heap crosses the
//! trigger or marking finishes, so neither waits for a step boundary). Per step:
//!
//! * **Between cycles** the mutators run on `min(mutators, cpus)` CPUs and allocate
//!   `alloc_rate` bytes per CPU-second; `heap_live` grows by that. When it reaches the trigger
//!   (the pacer's `trigger()` from the memory figures of the moment) a cycle starts: a pause,
//!   then [`Pacer::start_cycle`].
//! * **While marking** the background workers take 25% of the CPUs, rounded to whole workers
//!   as the heap starts them (`worker_shares`), and scan at `scan_rate`;
//!   a share `idle_marking` of the spare CPUs marks too. The mutators get the rest; every byte they allocate
//!   owes `assist ratio` units of scan work ([`Pacer::revise`], called every step as the heap
//!   calls it on every allocation slow path), paid first from the background workers' credit,
//!   then by assists out of the mutators' own CPU time. Past 1.1 × the goal (or the goal it
//!   extended to; [`PacerConfig::max_overshoot`](gc_core::pacer::PacerConfig::max_overshoot))
//!   assists hold the mutators: what a step would allocate past that bound is marking instead.
//!   The GC CPU limiter stops assists below the goal; past it, it stops them (the hold too)
//!   only when the goal leaves the live heap no room ([`Pacer::goal_leaves_room`]: a memory
//!   limit within 1/16 of the live heap or under it, the death spiral), as the heap's does.
//!   (The heap's assists past the goal with the limiter on pay a slice per call without
//!   waiting for credit; the simulator, which has no waiting, pays them as usual.)
//!   The cycle's work is the scannable part of the live heap when it started plus its stacks and
//!   globals; objects allocated during marking are black (marked, not scanned), so the
//!   scannable heap passed to [`Pacer::revise`] stays put while marking, as the heap's does.
//! * **Mark termination**: a pause; bytes marked = the live heap at the cycle's start plus
//!   everything allocated since (allocate-black); [`Pacer::end_cycle`], [`Pacer::reset_live`],
//!   [`Pacer::commit`] as the heap's controller calls them; sweeping is instant.
//! * **The limiter** is fed every step: GC CPU (background, assists, pauses on every CPU) against
//!   mutator CPU, as the heap feeds it; the fail-fast watch reads it.
//! * **Memory**: spans in use are `heap_live`; object bytes `heap_live ÷ (1 + fragmentation)`;
//!   mapped memory grows to cover what is in use, is given back synchronously when growth would
//!   pass the memory limit, and by the background scavenger at `scavenge_rate` towards the goals
//!   of [`scavenge_goals`]. The RSS model is mapped memory.
//!
//! Program time (the workload's clock) is mutator CPU per mutator: it runs at wall speed while
//! the mutators have their CPUs, slower while marking takes some and assists take more.

use gc_core::pacer::{
    CpuLimiter, CycleEnd, LimiterWatch, MemoryStats, Pacer, scavenge_goals, worker_shares,
};

use crate::scenario::Scenario;

/// Page size the scavenger goals are rounded to (gc-core's).
const PAGE: u64 = 8192;

/// One cycle's figures (a CSV row).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleRow {
    pub cycle: u64,
    /// Wall time at mark start and at the end of mark termination (seconds).
    pub start_s: f64,
    pub end_s: f64,
    /// Program time at mark termination.
    pub program_s: f64,
    pub trigger: u64,
    pub goal: u64,
    /// The goal the assists paced for at the end (the goal, or the extended goal).
    pub goal_extended: u64,
    pub heap_start: u64,
    pub heap_end: u64,
    pub marked: u64,
    /// The live heap when the cycle started (the model's truth).
    pub live: u64,
    /// `heap_end ÷ goal − 1`.
    pub overshoot: f64,
    pub mark_ms: f64,
    pub bg_cpu_ms: f64,
    pub assist_cpu_ms: f64,
    pub idle_cpu_ms: f64,
    /// The assist ratio (scan work per byte), averaged over the mark phase's time.
    pub assist_ratio: f64,
    /// (background + assists) ÷ (CPUs × mark time): Go's utilisation, target 0.25.
    pub gc_util: f64,
    /// GC CPU (marking, assists, pauses) ÷ CPU capacity since the last cycle ended.
    pub gc_cpu_frac: f64,
    pub cons_mark: f64,
    /// The limiter's bucket, full = 1, at the end; whether it was on at any time in the cycle.
    pub limiter_fill: f64,
    pub limiter_on: bool,
    /// The scavenger's goals set at the end (bytes; 0: none).
    pub scavenge_retained: u64,
    pub scavenge_mapped: u64,
    /// Mapped memory at the end, and its peak since the last cycle.
    pub rss: u64,
    pub rss_peak: u64,
    /// The memory limit in force at the end (0: none).
    pub memory_limit: u64,
}

/// The CSV header of [`CycleRow`]s.
pub const CSV_HEADER: &str = "cycle,start_s,end_s,program_s,trigger,goal,goal_extended,\
heap_start,heap_end,marked,live,overshoot,mark_ms,bg_cpu_ms,assist_cpu_ms,idle_cpu_ms,\
assist_ratio,gc_util,gc_cpu_frac,cons_mark,limiter_fill,limiter_on,scavenge_retained,\
scavenge_mapped,rss,rss_peak,memory_limit";

impl CycleRow {
    /// The row in CSV (fixed decimals: the same inputs give the same bytes).
    pub fn csv(&self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{},{},{},{},{},{},{},{:.6},{:.4},{:.4},{:.4},{:.4},{:.6},{:.6},{:.6},{:.6},{:.4},{},{},{},{},{},{}",
            self.cycle,
            self.start_s,
            self.end_s,
            self.program_s,
            self.trigger,
            self.goal,
            self.goal_extended,
            self.heap_start,
            self.heap_end,
            self.marked,
            self.live,
            self.overshoot,
            self.mark_ms,
            self.bg_cpu_ms,
            self.assist_cpu_ms,
            self.idle_cpu_ms,
            self.assist_ratio,
            self.gc_util,
            self.gc_cpu_frac,
            self.cons_mark,
            self.limiter_fill,
            self.limiter_on as u8,
            self.scavenge_retained,
            self.scavenge_mapped,
            self.rss,
            self.rss_peak,
            self.memory_limit,
        )
    }
}

/// What a run produced.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub rows: Vec<CycleRow>,
    /// Wall time simulated (seconds).
    pub wall_s: f64,
    /// GC CPU over the whole run ÷ (CPUs × wall).
    pub gc_cpu_frac: f64,
    /// Highest `heap_live` and mapped memory seen.
    pub peak_heap: u64,
    pub peak_rss: u64,
    /// Wall time at which the fail-fast watch stalled the heap (the run stops there: the
    /// program would get `MemoryLimitStall`), if it did.
    pub stalled_at: Option<f64>,
    /// Wall time the GC CPU limiter was on.
    pub limiter_on_s: f64,
}

/// The state of a cycle that is marking.
struct Marking {
    start_s: f64,
    trigger: u64,
    goal: u64,
    heap_start: u64,
    live: u64,
    work_total: f64,
    work_done: f64,
    heap_scan_work: f64,
    stacks: f64,
    globals: f64,
    credit: f64,
    bg_cpu: f64,
    assist_cpu: f64,
    idle_cpu: f64,
    ratio_time: f64,
    extended: u64,
    limited: bool,
}

/// Simulate `s`.
pub fn simulate(s: &Scenario) -> Run {
    Sim::new(s).run()
}

struct Sim<'a> {
    s: &'a Scenario,
    pacer: Pacer,
    limiter: CpuLimiter,
    watch: LimiterWatch,
    /// Wall and program time (seconds).
    t: f64,
    tau: f64,
    heap_live: f64,
    /// Scannable bytes of the last mark's heap work plus those allocated since.
    heap_scan: f64,
    mapped: f64,
    scav_goals: (f64, f64),
    marking: Option<Marking>,
    limit: Option<u64>,
    /// GC and total CPU since the last cycle ended, and over the run.
    gc_since: f64,
    cap_since: f64,
    gc_total: f64,
    last_end_s: Option<f64>,
    rss_peak_since: f64,
    run: Run,
}

impl<'a> Sim<'a> {
    fn new(s: &'a Scenario) -> Sim<'a> {
        let limit = s.memory_limit.as_ref().map(|l| l.at(0.0, s.seed) as u64);
        let mut pacer = Pacer::with_config(s.gogc, limit, s.cpus, s.pacer.clone());
        // A new heap: nothing marked yet, so the goal is the heap minimum.
        pacer.commit(true, 0);
        Sim {
            s,
            pacer,
            limiter: CpuLimiter::with_capacity(s.cpus, s.pacer.limiter_capacity_per_proc_ns),
            watch: LimiterWatch::new(s.pacer.limiter_fail_fast_ns),
            t: 0.0,
            tau: 0.0,
            heap_live: 0.0,
            heap_scan: 0.0,
            mapped: 0.0,
            scav_goals: (f64::INFINITY, f64::INFINITY),
            marking: None,
            limit,
            gc_since: 0.0,
            cap_since: 0.0,
            gc_total: 0.0,
            last_end_s: None,
            rss_peak_since: 0.0,
            run: Run::default(),
        }
    }

    fn memory(&self) -> MemoryStats {
        let in_use = self.heap_live;
        MemoryStats {
            mapped_ready: self.mapped as u64,
            heap_free: (self.mapped - in_use).max(0.0) as u64,
            heap_alloc: (in_use / (1.0 + self.s.fragmentation)) as u64,
        }
    }

    fn run(mut self) -> Run {
        let s = self.s;
        while self.tau < s.duration {
            self.settings();
            if self.marking.is_some() {
                self.mark_step(s.step);
            } else {
                self.run_step(s.step);
            }
            if self.run.stalled_at.is_some() {
                break;
            }
        }
        let cap = self.t * s.cpus as f64;
        self.run.wall_s = self.t;
        self.run.gc_cpu_frac = if cap > 0.0 { self.gc_total / cap } else { 0.0 };
        self.run
    }

    /// Apply a memory limit that changed with program time (`Heap::set_memory_limit`).
    fn settings(&mut self) {
        let limit = self
            .s
            .memory_limit
            .as_ref()
            .map(|l| l.at(self.tau, self.s.seed).max(1.0) as u64);
        if limit != self.limit {
            // As `Heap::set_memory_limit`: the model's limit, the scavenger's goal under it
            // (95% of the limit) at once, and the fail-fast watch starting over.
            self.limit = limit;
            self.pacer.set_memory_limit(limit);
            self.scav_goals.1 = limit.map_or(f64::INFINITY, |l| (l / 100 * 95) as f64);
            self.watch.reset();
        }
    }

    /// Memory after `heap_live` changed: grow the mapping, give pages back under the limit
    /// (synchronously) and to the scavenger's goals (at its rate over `dt`).
    fn memory_step(&mut self, dt: f64) {
        let in_use = self.heap_live;
        if in_use > self.mapped {
            self.mapped = in_use;
        }
        if let Some(l) = self.limit
            && self.mapped > l as f64
        {
            self.mapped = in_use.max(l as f64);
        }
        let goal = self.scav_goals.0.min(self.scav_goals.1);
        if self.mapped > goal {
            let floor = in_use.max(goal);
            self.mapped = (self.mapped - self.s.scavenge_rate * dt).max(floor);
        }
        self.rss_peak_since = self.rss_peak_since.max(self.mapped);
        self.run.peak_rss = self.run.peak_rss.max(self.mapped as u64);
        self.run.peak_heap = self.run.peak_heap.max(self.heap_live as u64);
    }

    /// Account CPU for the limiter and the GC fraction; stall if the watch says so.
    fn cpu(&mut self, mutator_cpu: f64, gc_cpu: f64, wall: f64) {
        let on = self
            .limiter
            .accumulate((mutator_cpu * 1e9) as u64, (gc_cpu * 1e9) as u64);
        if let Some(m) = self.marking.as_mut() {
            m.limited |= on;
        }
        if on {
            self.run.limiter_on_s += wall;
        }
        let watched = on && self.limit.is_some();
        if self.watch.update(watched, (self.t * 1e9) as u64).is_some() {
            self.run.stalled_at.get_or_insert(self.t);
        }
        self.gc_since += gc_cpu;
        self.gc_total += gc_cpu;
        self.cap_since += wall * self.s.cpus as f64;
    }

    /// A step between cycles: the mutators allocate up to the trigger.
    fn run_step(&mut self, dt: f64) {
        let s = self.s;
        let (trigger, _) = self.pacer.trigger(self.memory());
        let cpus = s.mutators.min(s.cpus as f64);
        let rate = s.alloc_rate.at(self.tau, s.seed).max(0.0);
        let want = rate * cpus * dt;
        let room = trigger as f64 - self.heap_live;
        let frac = if want > room {
            (room / want).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let d = dt * frac;
        self.heap_live += want * frac;
        self.heap_scan += want * frac * s.scannable.at(self.tau, s.seed).clamp(0.0, 1.0);
        self.tau += d * cpus / s.mutators;
        self.t += d;
        self.memory_step(d);
        self.cpu(cpus * d, 0.0, d);
        if frac < 1.0 && trigger != u64::MAX {
            self.start_cycle(trigger);
        }
    }

    fn pause(&mut self) {
        let p = self.s.pause;
        self.t += p;
        self.cpu(0.0, p * self.s.cpus as f64, p);
    }

    fn start_cycle(&mut self, trigger: u64) {
        let s = self.s;
        self.pause();
        let heap_start = self.heap_live as u64;
        let live = s.live.at(self.tau, s.seed).clamp(0.0, self.heap_live);
        let scannable = s.scannable.at(self.tau, s.seed).clamp(0.0, 1.0);
        let stacks = s.stacks.at(self.tau, s.seed).max(0.0);
        let globals = s.globals.at(self.tau, s.seed).max(0.0);
        let goal = self.pacer.start_cycle(heap_start, self.memory());
        self.marking = Some(Marking {
            start_s: self.t,
            trigger,
            goal,
            heap_start,
            live: live as u64,
            work_total: (live * scannable + stacks + globals).max(1.0),
            work_done: 0.0,
            heap_scan_work: live * scannable,
            stacks,
            globals,
            credit: 0.0,
            bg_cpu: 0.0,
            assist_cpu: 0.0,
            idle_cpu: 0.0,
            ratio_time: 0.0,
            extended: goal,
            limited: false,
        });
    }

    /// A step of marking.
    fn mark_step(&mut self, dt: f64) {
        let s = self.s;
        let cpus = s.cpus as f64;
        // The background workers the heap starts: 25% of the CPUs rounded to whole dedicated
        // workers where that is within 30% of it, as Go's (10 CPUs: 3 workers, 5 CPUs: 1).
        let bg: f64 = worker_shares(s.cpus).iter().sum();
        let mut_cpus = s.mutators.min(cpus - bg);
        let idle = (cpus - bg - mut_cpus).max(0.0) * s.idle_marking;
        let scan = s.scan_rate.at(self.tau, s.seed).max(1.0);
        let rate = s.alloc_rate.at(self.tau, s.seed).max(0.0);
        let mem = self.memory();
        let m = self.marking.as_mut().expect("marking");
        let r = self.pacer.revise(
            self.heap_live as u64,
            self.heap_scan as u64,
            m.stacks as u64,
            m.work_done as u64,
            mem,
        );
        m.extended = m.extended.max(r.extended_goal);
        let ratio = r.work_per_byte;
        // Work the collector's own CPUs do this step, and the mutators' CPU.
        let gc_work = scan * (bg + idle) * dt;
        let mcpu = mut_cpus * dt;
        let c = m.credit + gc_work;
        // Where the heap stands against its goal (or the goal it extended to) and the bound
        // 1.1 × past it, as the heap's assists judge it (`gc::mark::assist::position`): the
        // limiter stops assists below the goal, and past it too when the goal leaves the live
        // heap no room (the death spiral).
        let goal = self.pacer.heap_goal(mem).max(m.extended) as f64;
        let bound = goal * self.pacer.config().max_overshoot;
        let stops_past_goal = self.limiter.limiting() && !self.pacer.goal_leaves_room(mem);
        let limiter_stops = stops_past_goal || (self.limiter.limiting() && self.heap_live < goal);
        let (mut assist, mut alloc) = if limiter_stops || ratio * rate * mcpu <= c {
            (0.0, rate * mcpu)
        } else {
            // Allocate x = rate × (mcpu − a) while assists a make up what the credit lacks:
            // ratio × x = c + scan × a.
            let a = ((ratio * rate * mcpu - c) / (scan + ratio * rate)).clamp(0.0, mcpu);
            (a, rate * (mcpu - a))
        };
        // Past the bound, assists hold the mutators, whatever their debt, unless the limiter
        // stops them: from the moment in the step the heap would pass the bound (if marking
        // has not finished by then), the mutators' CPU marks instead of allocating. `assist`
        // and `alloc` become the step's averages up to where marking ends.
        let left = m.work_total - m.work_done;
        let normal = gc_work + scan * assist;
        let ends = (left / normal).min(1.0);
        if left > 0.0 && !stops_past_goal && self.heap_live + alloc * ends > bound {
            let at = if alloc > 0.0 {
                ((bound - self.heap_live).max(0.0) / alloc).min(ends)
            } else {
                0.0
            };
            let held = gc_work + scan * mcpu;
            let until = (at + (left - at * normal).max(0.0) / held).min(1.0);
            assist = (assist * at + mcpu * (until - at)) / until;
            alloc = alloc * at / until;
        }
        let step_work = gc_work + scan * assist;
        let f = if step_work >= left {
            (left / step_work).clamp(0.0, 1.0)
        } else {
            1.0
        };
        m.credit = if assist > 0.0 {
            0.0
        } else {
            (c - ratio * alloc).max(0.0) * f
        };
        m.work_done += step_work * f;
        m.bg_cpu += bg * dt * f;
        m.idle_cpu += idle * dt * f;
        m.assist_cpu += assist * f;
        m.ratio_time += ratio * dt * f;
        let d = dt * f;
        // Allocated black: `heap_scan` (the worst-case scan work the pacer is told) stays put
        // while marking, as the heap's does.
        self.heap_live += alloc * f;
        self.tau += (mcpu - assist) * f / s.mutators;
        self.t += d;
        self.memory_step(d);
        self.cpu((mcpu - assist) * f, (bg * dt + assist) * f, d);
        if f < 1.0
            || self
                .marking
                .as_ref()
                .is_some_and(|m| m.work_done >= m.work_total)
        {
            self.end_cycle();
        }
    }

    fn end_cycle(&mut self) {
        let s = self.s;
        self.pause();
        let m = self.marking.take().expect("marking");
        let heap_end = self.heap_live as u64;
        let allocated_black = heap_end.saturating_sub(m.heap_start);
        let marked = (m.live + allocated_black).min(heap_end);
        let mark_s = self.t - m.start_s - s.pause;
        let mem = self.memory();
        let goal_now = self.pacer.heap_goal(mem);
        let cycle_ns = self.last_end_s.map_or(0, |e| ((self.t - e) * 1e9) as u64);
        self.pacer.end_cycle(
            CycleEnd {
                heap_live: heap_end,
                scan_work: m.work_total as u64,
                assist_ns: (m.assist_cpu * 1e9) as u64,
                idle_ns: (m.idle_cpu * 1e9) as u64,
                mark_ns: (mark_s * 1e9) as u64,
                cycle_ns,
            },
            goal_now,
        );
        self.pacer.reset_live(
            marked,
            m.live.min(marked),
            m.heap_scan_work as u64,
            m.stacks as u64,
        );
        self.pacer.set_globals_scan(m.globals as u64);
        self.pacer.commit(false, marked);
        self.heap_live = marked as f64;
        self.heap_scan = m.heap_scan_work;
        self.last_end_s = Some(self.t);
        let mem = self.memory();
        let next_goal = self.pacer.heap_goal(mem);
        let g = scavenge_goals(
            self.limit,
            next_goal,
            self.pacer.last_heap_goal(),
            // The pages in use at mark termination, before the sweep (the controller's
            // `page_use`): the heap at its end, garbage included.
            heap_end,
            self.mapped as u64,
            self.mapped as u64,
            PAGE,
        );
        self.scav_goals = (
            g.gc_percent_goal.map_or(f64::INFINITY, |v| v as f64),
            g.memory_limit_goal.map_or(f64::INFINITY, |v| v as f64),
        );
        let cpus = s.cpus as f64;
        let (fill, capacity) = self.limiter.fill();
        let row = CycleRow {
            cycle: self.run.rows.len() as u64 + 1,
            start_s: m.start_s,
            end_s: self.t,
            program_s: self.tau,
            trigger: m.trigger,
            goal: m.goal,
            goal_extended: m.extended,
            heap_start: m.heap_start,
            heap_end,
            marked,
            live: m.live,
            overshoot: heap_end as f64 / m.goal as f64 - 1.0,
            mark_ms: mark_s * 1e3,
            bg_cpu_ms: m.bg_cpu * 1e3,
            assist_cpu_ms: m.assist_cpu * 1e3,
            idle_cpu_ms: m.idle_cpu * 1e3,
            assist_ratio: if mark_s > 0.0 {
                m.ratio_time / mark_s
            } else {
                0.0
            },
            gc_util: if mark_s > 0.0 {
                (m.bg_cpu + m.assist_cpu) / (cpus * mark_s)
            } else {
                0.0
            },
            gc_cpu_frac: if self.cap_since > 0.0 {
                self.gc_since / self.cap_since
            } else {
                0.0
            },
            cons_mark: self.pacer.cons_mark(),
            limiter_fill: fill as f64 / capacity as f64,
            limiter_on: m.limited,
            scavenge_retained: g.gc_percent_goal.unwrap_or(0),
            scavenge_mapped: g.memory_limit_goal.unwrap_or(0),
            rss: self.mapped as u64,
            rss_peak: self.rss_peak_since as u64,
            memory_limit: self.limit.unwrap_or(0),
        };
        self.run.rows.push(row);
        self.gc_since = 0.0;
        self.cap_since = 0.0;
        self.rss_peak_since = self.mapped;
    }
}

/// The run's rows as CSV text.
pub fn csv(run: &Run) -> String {
    let mut out = String::with_capacity(200 * (run.rows.len() + 1));
    out.push_str(CSV_HEADER);
    out.push('\n');
    for r in &run.rows {
        out.push_str(&r.csv());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    /// A memory limit lowered while the program runs moves the scavenger's goal under the
    /// limit at once, as `Heap::set_memory_limit` does, not at the next cycle's end: with the
    /// heap well under the new limit, the mapping first drops to the limit (the synchronous
    /// release) and then, at the scavenger's rate, below it towards 95% of it. (With the goal
    /// left at 95% of the old limit, the mapping would stay at the new limit until a cycle
    /// ended. The whole-run tests cannot see this: a cycle ends soon after any change.)
    #[test]
    fn a_lowered_limit_moves_the_scavengers_goal_at_once() {
        let s = Scenario::from_toml(
            "gogc = \"off\"\nmemory_limit = \"steps(512MiB, 5s:256MiB)\"\n[workload]\nlive = 64",
        )
        .unwrap();
        let mut sim = Sim::new(&s);
        sim.tau = 1.0;
        sim.settings();
        sim.heap_live = 100.0 * MIB;
        sim.mapped = 400.0 * MIB;
        // As a cycle under the first limit leaves them (GOGC off: no retained-heap goal).
        sim.scav_goals = (f64::INFINITY, (512 * 1024 * 1024 / 100 * 95) as f64);
        sim.memory_step(0.1);
        assert_eq!(
            sim.mapped,
            400.0 * MIB,
            "nothing to give back under 512 MiB"
        );
        sim.tau = 6.0;
        sim.settings();
        assert_eq!(sim.limit, Some(256 * 1024 * 1024));
        sim.memory_step(0.1);
        let limit = 256.0 * MIB;
        assert!(
            sim.mapped < limit - 0.1 * s.scavenge_rate * 0.99,
            "mapped {:.1} MiB a tenth of a second after the limit fell to 256 MiB",
            sim.mapped / MIB
        );
        assert!(
            sim.mapped >= 0.95 * limit - MIB,
            "below the scavenger's goal"
        );
        for _ in 0..20 {
            sim.memory_step(0.1);
        }
        assert!(
            (sim.mapped - (256 * 1024 * 1024 / 100 * 95) as f64).abs() < 1.0,
            "the scavenger stops at 95% of the new limit: {:.2} MiB",
            sim.mapped / MIB
        );
    }
}
