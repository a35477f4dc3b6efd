//! Per-cycle records and Go's `GODEBUG=gctrace=1` line.
//!
//! At the end of every cycle the collector logs a [`CycleRecord`] (read them with
//! [`Heap::take_cycle_records`](crate::Heap::take_cycle_records)); with
//! [`Config::gctrace`](crate::Config::gctrace) on it also prints the record's
//! [`gctrace_line`](CycleRecord::gctrace_line) to stderr, in the format of Go's runtime:
//!
//! ```text
//! gc 7 @1.204s 9%: 0.011+48+0.018 ms clock, 0.022+3.1/24/0+0.036 ms cpu, 61->63->31 MB, 63 MB goal, 0 MB stacks, 0 MB globals, 2 P, 0.004+0.009 ms scope wait (mutator 1)
//! ```
//!
//! | field | Go's meaning | gc-core's meaning, where it differs |
//! |-------|--------------|--------------------------------------|
//! | `gc N` | cycle number | |
//! | `@T s` | seconds since program start | seconds since the heap was created |
//! | `P%` | GC CPU since start ÷ (elapsed × GOMAXPROCS) | the same, with the heap's CPU count |
//! | `a+b+c ms clock` | STW sweep termination, concurrent mark, STW mark termination | stop-the-world collector: `a` = 0, `b` = marking (inside the pause), `c` = the whole pause |
//! | `d+e/f/g+h ms cpu` | `a` × procs, assist / background / idle mark CPU, `c` × procs | background = the collector thread's and helpers' mark slices within their 25% share (thread CPU time); idle = a fractional worker marking beyond its share while a CPU is spare |
//! | `X->Y->Z MB` | heap at start, heap at mark termination, marked | `heap_live` when the cycle started and at mark termination, bytes marked |
//! | `G MB goal` | the cycle's heap goal | |
//! | `S MB stacks`, `L MB globals` | scannable stack and globals | scan work of the root stacks and of the stash, this cycle |
//! | `W P` | GOMAXPROCS | the CPUs the heap paces for |
//! | `u+v ms scope wait (mutator M)` | (gc-core only) | how long STW 1 and STW 2 waited for mutators to leave their mutation scopes (part of `a` and `c`), and the mutator the longer wait was for; long waits mean scopes that do not poll `should_yield` often enough |
//! | `R eph rounds, F fin, C cleanups` | (gc-core only; printed when any is non-zero) | ephemeron rounds this cycle ran, objects it queued for finalization (`GcFinalizers`), cleanups registered and not yet run when it ended |
//! | `(forced)` | cycle started by `runtime.GC()` | started by `collect()`, `request_collect()` or `free_os_memory()` |
//!
//! Go prints MB for 2^20 bytes, rounded down; so does this.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;

/// Cycle records kept before the oldest are dropped.
pub const MAX_CYCLE_RECORDS: usize = 1 << 12;

/// What one cycle did (one gctrace line).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleRecord {
    /// The cycle (1 for the heap's first).
    pub cycle: u64,
    /// When it started (the stop request of its STW 1), as an offset from the heap's creation.
    pub start: Duration,
    /// Started by an explicit request (`collect()`, `request_collect()`, `free_os_memory()`)
    /// rather than the trigger.
    pub forced: bool,
    /// Marked concurrently (else the stop-the-world collector).
    pub concurrent: bool,
    /// STW 1 (sweep termination and mark setup), from the stop request.
    pub sweep_termination: Duration,
    /// Concurrent marking, from the end of STW 1 to the stop request of the final STW 2
    /// (including any mark-termination retries). For the stop-the-world collector, the
    /// marking inside its one pause (part of `mark_termination`).
    pub mark: Duration,
    /// STW 2 (mark termination), from the stop request.
    pub mark_termination: Duration,
    /// How long STW 1 waited for mutators to leave their mutation scopes (part of
    /// `sweep_termination`; for the stop-the-world collector, zero).
    pub sweep_termination_wait: Duration,
    /// How long STW 2 (or the stop-the-world collector's one pause) waited for them (part of
    /// `mark_termination`).
    pub mark_termination_wait: Duration,
    /// The mutator the longer of the two waits was for ([`Mutator::id`](crate::Mutator::id)).
    pub waited_for: Option<usize>,
    /// Time mutators spent in mark assists during the cycle.
    pub assist_cpu: Duration,
    /// Time the background mark workers spent marking during the cycle, within their share.
    pub background_cpu: Duration,
    /// Time they marked beyond it at idle priority (a CPU was spare; Go: idle mark workers).
    pub idle_cpu: Duration,
    /// CPUs the heap paces for (Go: GOMAXPROCS).
    pub procs: usize,
    /// `heap_live` when the cycle started (Go: `heap0`).
    pub heap_start: usize,
    /// The trigger in force when the cycle started (`usize::MAX`: none, as with `GOGC=off`
    /// and no memory limit). `heap_start` is at or past it for a cycle the trigger started, and
    /// may be below it for a forced one.
    pub trigger: usize,
    /// `heap_live` at mark termination (Go: `heap1`).
    pub heap_end: usize,
    /// Bytes marked live (Go: `heap2`).
    pub heap_marked: usize,
    /// Of those, the bytes marked by tracing: `heap_marked − heap_reached` were allocated
    /// during the cycle and marked for that alone (allocate-black), live or not; what of it is
    /// garbage (floating garbage) the next cycle frees. For the stop-the-world collector, all
    /// of `heap_marked`.
    pub heap_reached: usize,
    /// The goal this cycle paced for.
    pub heap_goal: usize,
    /// The goal the assists paced for at the end of marking: `heap_goal`, or more when the
    /// cycle's scan work passed what the pacer expected from the last cycle, which it takes as
    /// a growing heap and answers by moving the goal out in proportion (Go's `revise`: at most
    /// to `(1 + GOGC/100) × heap_goal`, and to the memory limit). The pacer lets a cycle end up
    /// to 1.1 × this ([`PacerConfig::max_overshoot`](crate::pacer::PacerConfig::max_overshoot)) before its assists stop all allocation
    /// until marking is done.
    pub heap_goal_extended: usize,
    /// The goal it set for the next cycle.
    pub next_goal: usize,
    /// The trigger it set for the next cycle.
    pub next_trigger: usize,
    /// Scan work of the mutators' roots: root objects and root stacks (bytes).
    pub stack_scan: u64,
    /// Scan work of the stash.
    pub globals_scan: u64,
    /// Scan work of the heap.
    pub heap_scan: u64,
    /// The pacer's cons/mark estimate after this cycle.
    pub cons_mark: f64,
    /// Whether the GC CPU limiter was on at any time during the mark phase (mark assists are
    /// skipped or slowed while it is, so such a cycle may end past its goal: up to 1.1 × the
    /// goal, or the goal it extended to, where GOGC sets the goal; without bound under a
    /// memory limit that sets it).
    pub limiter_on: bool,
    /// GC CPU since the heap was created ÷ (elapsed × procs), at the end of the cycle.
    pub gc_cpu_fraction: f64,
    /// Ephemeron rounds the cycle ran (passes over the tables whose keys were not all marked
    /// when they were scanned; `GcEphemeronTable`).
    pub ephemeron_rounds: u64,
    /// Objects the cycle found unreachable and queued for finalization (`GcFinalizers`).
    pub finalizers_queued: u64,
    /// Cleanups registered and not yet run when the cycle ended (`Gc::add_cleanup`).
    pub cleanups_pending: u64,
}

/// Go's `fmtNSAsMS`: whole milliseconds from 10 ms up, else two significant digits with at most
/// three decimals (`0.015`, `1.2`, `9.9`).
fn fmt_ms(d: Duration) -> String {
    let ns = d.as_nanos() as u64;
    if ns >= 10_000_000 {
        return (ns / 1_000_000).to_string();
    }
    let mut x = ns / 1_000;
    if x == 0 {
        return "0".into();
    }
    let mut dec = 3;
    while x >= 100 {
        x /= 10;
        dec -= 1;
    }
    let s = format!("{x:0>width$}", width = dec + 1);
    let (int, frac) = s.split_at(s.len() - dec);
    if dec == 0 {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

impl CycleRecord {
    /// The record in Go's gctrace format (see the module docs).
    pub fn gctrace_line(&self) -> String {
        let procs = self.procs as u32;
        let mb = |b: usize| b >> 20;
        let mut line = format!(
            "gc {} @{:.3}s {}%: {}+{}+{} ms clock, {}+{}/{}/{}+{} ms cpu, {}->{}->{} MB, {} MB goal, {} MB stacks, {} MB globals, {} P",
            self.cycle,
            self.start.as_secs_f64(),
            (self.gc_cpu_fraction * 100.0) as u64,
            fmt_ms(self.sweep_termination),
            fmt_ms(self.mark),
            fmt_ms(self.mark_termination),
            fmt_ms(self.sweep_termination * procs),
            fmt_ms(self.assist_cpu),
            fmt_ms(self.background_cpu),
            fmt_ms(self.idle_cpu),
            fmt_ms(self.mark_termination * procs),
            mb(self.heap_start),
            mb(self.heap_end),
            mb(self.heap_marked),
            mb(self.heap_goal),
            self.stack_scan >> 20,
            self.globals_scan >> 20,
            self.procs,
        );
        line.push_str(&format!(
            ", {}+{} ms scope wait",
            fmt_ms(self.sweep_termination_wait),
            fmt_ms(self.mark_termination_wait)
        ));
        if let Some(m) = self.waited_for {
            line.push_str(&format!(" (mutator {m})"));
        }
        if self.ephemeron_rounds + self.finalizers_queued + self.cleanups_pending > 0 {
            line.push_str(&format!(
                ", {} eph rounds, {} fin, {} cleanups",
                self.ephemeron_rounds, self.finalizers_queued, self.cleanups_pending
            ));
        }
        if self.forced {
            line.push_str(" (forced)");
        }
        line
    }
}

/// The heap's log of cycle records.
#[derive(Default)]
pub(crate) struct CycleLog {
    records: Mutex<VecDeque<CycleRecord>>,
}

impl CycleLog {
    pub(crate) fn push(&self, rec: CycleRecord) {
        let mut r = self.records.lock();
        if r.len() == MAX_CYCLE_RECORDS {
            r.pop_front();
        }
        r.push_back(rec);
    }

    pub(crate) fn take(&self) -> Vec<CycleRecord> {
        self.records.lock().drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_as_go_prints_them() {
        let us = Duration::from_micros;
        assert_eq!(fmt_ms(Duration::ZERO), "0");
        assert_eq!(fmt_ms(Duration::from_nanos(999)), "0");
        assert_eq!(fmt_ms(us(15)), "0.015");
        assert_eq!(fmt_ms(us(5)), "0.005");
        assert_eq!(fmt_ms(us(123)), "0.12");
        assert_eq!(fmt_ms(us(1234)), "1.2");
        assert_eq!(fmt_ms(us(9999)), "9.9");
        assert_eq!(fmt_ms(Duration::from_millis(10)), "10");
        assert_eq!(fmt_ms(Duration::from_millis(1234)), "1234");
    }

    #[test]
    fn line_has_gos_shape() {
        let r = CycleRecord {
            cycle: 7,
            start: Duration::from_millis(1204),
            forced: false,
            concurrent: true,
            sweep_termination: Duration::from_micros(11),
            mark: Duration::from_millis(48),
            mark_termination: Duration::from_micros(18),
            assist_cpu: Duration::from_micros(3100),
            background_cpu: Duration::from_millis(24),
            procs: 2,
            heap_start: 61 << 20,
            heap_end: (63 << 20) + 5,
            heap_marked: 31 << 20,
            heap_goal: 63 << 20,
            gc_cpu_fraction: 0.094,
            sweep_termination_wait: Duration::from_micros(4),
            mark_termination_wait: Duration::from_micros(9),
            waited_for: Some(1),
            ..CycleRecord::default()
        };
        assert_eq!(
            r.gctrace_line(),
            "gc 7 @1.204s 9%: 0.011+48+0.018 ms clock, 0.022+3.1/24/0+0.036 ms cpu, \
             61->63->31 MB, 63 MB goal, 0 MB stacks, 0 MB globals, 2 P, \
             0.004+0.009 ms scope wait (mutator 1)"
        );
        let forced = CycleRecord {
            forced: true,
            waited_for: None,
            ..r
        };
        assert!(
            forced
                .gctrace_line()
                .ends_with("2 P, 0.004+0.009 ms scope wait (forced)")
        );
        // The heap at mark termination, not the goal, between the arrows (the overshoot a
        // reader looks for).
        let past = CycleRecord {
            heap_end: 70 << 20,
            ..forced.clone()
        };
        assert!(
            past.gctrace_line().contains("61->70->31 MB, 63 MB goal"),
            "{}",
            past.gctrace_line()
        );
        // Roots, ephemeron rounds, finalizers and cleanups, each in its place.
        let busy = CycleRecord {
            stack_scan: 3 << 20,
            globals_scan: 5 << 20,
            ephemeron_rounds: 4,
            finalizers_queued: 9,
            cleanups_pending: 2,
            ..forced
        };
        let line = busy.gctrace_line();
        assert!(
            line.contains("3 MB stacks, 5 MB globals")
                && line.ends_with("4 eph rounds, 9 fin, 2 cleanups (forced)"),
            "{line}"
        );
        // Any one of the three alone shows them (a cycle that queued finalizers and nothing
        // else says so).
        for (rounds, fin, cleanups) in [(1, 0, 0), (0, 1, 0), (0, 0, 1)] {
            let one = CycleRecord {
                ephemeron_rounds: rounds,
                finalizers_queued: fin,
                cleanups_pending: cleanups,
                ..busy.clone()
            };
            let want = format!("{rounds} eph rounds, {fin} fin, {cleanups} cleanups (forced)");
            assert!(
                one.gctrace_line().ends_with(&want),
                "{}",
                one.gctrace_line()
            );
        }
    }

    /// The log keeps the newest records: past its capacity, the oldest go.
    #[test]
    fn the_cycle_log_drops_its_oldest_records() {
        let log = CycleLog::default();
        for cycle in 1..=MAX_CYCLE_RECORDS as u64 + 10 {
            log.push(CycleRecord {
                cycle,
                ..CycleRecord::default()
            });
        }
        let kept = log.take();
        assert_eq!(kept.len(), MAX_CYCLE_RECORDS);
        assert_eq!(kept.first().unwrap().cycle, 11);
        assert_eq!(kept.last().unwrap().cycle, MAX_CYCLE_RECORDS as u64 + 10);
    }
}
