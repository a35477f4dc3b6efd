//! The pacer trace (`GCCORE_PACERTRACE=file`, [`Config::pacer_trace`](crate::Config::pacer_trace)):
//! one CSV line per cycle with what the pacer was fed and what it decided, so that a run can be
//! replayed under other settings by a simulator driving the same [`Pacer`](crate::pacer::Pacer)
//! (the pacer lab).
//!
//! Columns (bytes, seconds; [`COLUMNS`] in order):
//!
//! | column | meaning |
//! |---|---|
//! | `cycle` | the cycle, from 1 |
//! | `start_s`, `end_s` | its start (stop request of STW 1) and the end of STW 2, since the heap was made |
//! | `mutator_cpu_s` | CPU the mutators had used by its end: the process's CPU since the heap was made, minus the collector's threads and the assists |
//! | `procs` | CPUs paced for |
//! | `gogc`, `memory_limit` | the settings in force (`off` for none) |
//! | `trigger` | the trigger in force when this cycle started ([`CycleRecord::trigger`]; `heap_start` when there was none) |
//! | `heap_start`, `heap_end`, `heap_marked` | `heap_live` at the start and at mark termination; bytes marked |
//! | `heap_goal`, `heap_goal_extended` | the goal, and the goal the assists paced for at the end |
//! | `heap_scan`, `stack_scan`, `globals_scan` | scan work done on the heap, the root stacks, the stash |
//! | `stw1_s`, `mark_s`, `stw2_s` | the phases' wall times |
//! | `assist_cpu_s`, `background_cpu_s`, `idle_cpu_s` | marking CPU by kind |
//! | `cons_mark` | the pacer's estimate after the cycle |
//! | `limiter_on` | 1 if the GC CPU limiter was on during the mark phase |
//! | `mapped_ready` | memory the heap had mapped and not released, at the end |
//! | `forced`, `concurrent` | 1 for a `collect()` cycle; 1 for a concurrent one |

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use parking_lot::Mutex;

use crate::telemetry::gctrace::CycleRecord;

/// The trace's columns, in order.
pub const COLUMNS: &[&str] = &[
    "cycle",
    "start_s",
    "end_s",
    "mutator_cpu_s",
    "procs",
    "gogc",
    "memory_limit",
    "trigger",
    "heap_start",
    "heap_end",
    "heap_marked",
    "heap_goal",
    "heap_goal_extended",
    "heap_scan",
    "stack_scan",
    "globals_scan",
    "stw1_s",
    "mark_s",
    "stw2_s",
    "assist_cpu_s",
    "background_cpu_s",
    "idle_cpu_s",
    "cons_mark",
    "limiter_on",
    "mapped_ready",
    "forced",
    "concurrent",
];

/// What a trace line needs beyond the cycle's record.
pub(crate) struct TraceExtra {
    pub mutator_cpu_ns: u64,
    pub gc_percent: Option<u64>,
    pub memory_limit: Option<u64>,
    pub mapped_ready: u64,
}

/// The trace file (or none), and the process's CPU time when the heap was made.
pub(crate) struct PacerTrace {
    out: Mutex<Option<BufWriter<File>>>,
    base_cpu_ns: u64,
}

impl PacerTrace {
    /// A trace into `path` (header written now); none without a path, or when the file cannot
    /// be created (said once on stderr: a trace is a diagnostic, not a reason to fail the heap).
    pub(crate) fn open(path: Option<&Path>) -> PacerTrace {
        let out = path.and_then(|p| {
            let made = File::create(p).and_then(|f| {
                let mut w = BufWriter::new(f);
                writeln!(w, "{}", COLUMNS.join(","))?;
                w.flush()?;
                Ok(w)
            });
            match made {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!("gc-core: pacer trace {}: {e}; not tracing", p.display());
                    None
                }
            }
        });
        PacerTrace {
            out: Mutex::new(out),
            base_cpu_ns: crate::util::clock::process_cpu_ns(),
        }
    }

    /// The process's CPU time when the heap was made: the mutator CPU of a line counts from
    /// there, so that a heap made after others in the same process starts at zero.
    pub(crate) fn base_cpu_ns(&self) -> u64 {
        self.base_cpu_ns
    }

    /// Whether a trace is being written.
    pub(crate) fn on(&self) -> bool {
        self.out.lock().is_some()
    }

    /// Append `rec`'s line (flushed, so that a process that exits without dropping its heap
    /// keeps every finished cycle). A write error stops the trace with a message.
    pub(crate) fn write(&self, rec: &CycleRecord, x: &TraceExtra) {
        let mut out = self.out.lock();
        let Some(w) = out.as_mut() else {
            return;
        };
        let trigger = if rec.trigger == usize::MAX {
            rec.heap_start
        } else {
            rec.trigger
        };
        let s = |d: std::time::Duration| d.as_secs_f64();
        let opt = |v: Option<u64>| v.map_or("off".to_string(), |v| v.to_string());
        // The end of STW 2. The stop-the-world collector marks inside its one pause, which
        // `mark_termination` times whole from its stop request (the cycle's start).
        let end = if rec.concurrent {
            rec.start + rec.sweep_termination + rec.mark + rec.mark_termination
        } else {
            rec.start + rec.mark_termination
        };
        let line = format!(
            "{},{:.6},{:.6},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{},{}",
            rec.cycle,
            s(rec.start),
            s(end),
            x.mutator_cpu_ns as f64 * 1e-9,
            rec.procs,
            opt(x.gc_percent),
            opt(x.memory_limit),
            trigger,
            rec.heap_start,
            rec.heap_end,
            rec.heap_marked,
            rec.heap_goal,
            rec.heap_goal_extended.max(rec.heap_goal),
            rec.heap_scan,
            rec.stack_scan,
            rec.globals_scan,
            s(rec.sweep_termination),
            s(rec.mark),
            s(rec.mark_termination),
            s(rec.assist_cpu),
            s(rec.background_cpu),
            s(rec.idle_cpu),
            rec.cons_mark,
            rec.limiter_on as u8,
            x.mapped_ready,
            rec.forced as u8,
            rec.concurrent as u8,
        );
        if let Err(e) = writeln!(w, "{line}").and_then(|()| w.flush()) {
            eprintln!("gc-core: pacer trace: {e}; trace stopped");
            *out = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A line's `end_s` is the end of STW 2 (the stop-the-world collector's one pause holds
    /// its marking), its trigger is `heap_start` when none was in force, and the heap goal the
    /// assists paced for is at least the goal; without a path nothing is traced.
    #[test]
    #[cfg_attr(miri, ignore = "writes a file")]
    fn a_line_ends_at_stw2_with_either_collector() {
        assert!(!PacerTrace::open(None).on());
        let path =
            std::env::temp_dir().join(format!("gccore-pacertrace-unit-{}.csv", std::process::id()));
        let t = PacerTrace::open(Some(&path));
        assert!(t.on());
        assert!(t.base_cpu_ns() > 1, "the process has used CPU");
        let ms = Duration::from_millis;
        let rec = CycleRecord {
            cycle: 3,
            start: ms(1000),
            sweep_termination: ms(100),
            mark: ms(200),
            mark_termination: ms(300),
            concurrent: true,
            trigger: usize::MAX,
            heap_start: 4096,
            heap_goal: 9000,
            heap_goal_extended: 8000,
            ..CycleRecord::default()
        };
        let x = TraceExtra {
            mutator_cpu_ns: 2_500_000_000,
            gc_percent: Some(100),
            memory_limit: None,
            mapped_ready: 7,
        };
        t.write(&rec, &x);
        let stw = CycleRecord {
            concurrent: false,
            trigger: 5000,
            ..rec.clone()
        };
        t.write(&stw, &x);
        drop(t);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], COLUMNS);
        let col =
            |row: usize, name: &str| lines[row][COLUMNS.iter().position(|c| *c == name).unwrap()];
        assert_eq!(
            (col(1, "start_s"), col(1, "end_s")),
            ("1.000000", "1.600000")
        );
        assert_eq!(col(2, "end_s"), "1.300000");
        assert_eq!((col(1, "trigger"), col(2, "trigger")), ("4096", "5000"));
        assert_eq!(col(1, "heap_goal_extended"), "9000");
        assert_eq!(col(1, "mutator_cpu_s"), "2.500000");
        assert_eq!((col(1, "gogc"), col(1, "memory_limit")), ("100", "off"));
        assert_eq!((col(1, "concurrent"), col(2, "concurrent")), ("1", "0"));
        assert_eq!(col(1, "mapped_ready"), "7");
    }
}
