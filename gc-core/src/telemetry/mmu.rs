//! Minimum mutator utilisation (Cheng & Blelloch 2001): over every window of a given length,
//! the smallest share of the CPU the mutators had. A collector with short pauses but many of
//! them close together has a low MMU at small windows even though each pause is short.
//!
//! Build the GC's busy intervals from the heap's records with [`busy_intervals`] (pauses, and
//! optionally each cycle's assist and background-marking time spread over its mark phase), then
//! call [`mmu`]:
//!
//! ```
//! use gc_core::mmu::{Busy, mmu};
//! use std::time::Duration;
//! let ms = Duration::from_millis;
//! // One 2 ms pause in 100 ms: a 10 ms window can include all of it.
//! let busy = [Busy { start: ms(50), duration: ms(2), share: 1.0 }];
//! assert!((mmu(&busy, ms(0), ms(100), ms(10)) - 0.8).abs() < 1e-9);
//! assert!((mmu(&busy, ms(0), ms(100), ms(1)) - 0.0).abs() < 1e-9);
//! ```

use std::time::Duration;

use crate::telemetry::gctrace::CycleRecord;
use crate::telemetry::phases::{Phase, PhaseRecord};

/// A stretch of time in which the collector took `share` (0–1) of the mutators' CPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Busy {
    /// Start, as an offset from the heap's creation.
    pub start: Duration,
    /// Length.
    pub duration: Duration,
    /// Share of the CPU taken: 1 for a pause.
    pub share: f64,
}

/// What [`busy_intervals`] counts besides pauses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Include {
    /// Mark assists (a cycle's assist time, spread evenly over its mark phase).
    pub assists: bool,
    /// Background mark workers (likewise).
    pub background: bool,
}

/// Busy intervals from phase records (every pause counts fully) and cycle records (assist and
/// background time of a cycle, as a share of its mark phase × the CPUs, if asked for).
pub fn busy_intervals(
    phases: &[PhaseRecord],
    cycles: &[CycleRecord],
    include: Include,
) -> Vec<Busy> {
    let mut out = Vec::new();
    for p in phases {
        if p.phase.is_pause() {
            out.push(Busy {
                start: p.start,
                duration: p.duration,
                share: 1.0,
            });
        } else if p.phase == Phase::Mark && (include.assists || include.background) {
            let Some(c) = cycles.iter().find(|c| c.cycle == p.cycle) else {
                continue;
            };
            let mut cpu = Duration::ZERO;
            if include.assists {
                cpu += c.assist_cpu;
            }
            if include.background {
                cpu += c.background_cpu;
            }
            let capacity = p.duration.as_secs_f64() * c.procs.max(1) as f64;
            if capacity > 0.0 {
                out.push(Busy {
                    start: p.start,
                    duration: p.duration,
                    share: (cpu.as_secs_f64() / capacity).min(1.0),
                });
            }
        }
    }
    out
}

/// The minimum over all windows of length `window` inside `[from, to]` of the mutators' share
/// of the CPU (1 − the busy share, overlapping intervals adding up to at most 1). A window longer
/// than `[from, to]` is shrunk to it.
pub fn mmu(busy: &[Busy], from: Duration, to: Duration, window: Duration) -> f64 {
    let (t0, t1) = (from.as_secs_f64(), to.as_secs_f64());
    let w = window.as_secs_f64().min(t1 - t0);
    if w <= 0.0 {
        return 1.0;
    }
    // Busy share as a step function: change points with the share from there on.
    let mut edges: Vec<(f64, f64)> = Vec::with_capacity(2 * busy.len());
    for b in busy {
        let s = b.start.as_secs_f64();
        edges.push((s, b.share));
        edges.push((s + b.duration.as_secs_f64(), -b.share));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut points = vec![t0];
    let mut level = vec![0.0f64];
    let mut acc = 0.0;
    for (t, d) in edges {
        acc += d;
        let t = t.clamp(t0, t1);
        if t > *points.last().unwrap() {
            points.push(t);
            level.push(0.0);
        }
        *level.last_mut().unwrap() = acc.clamp(0.0, 1.0);
    }
    // Prefix integral of the busy share at each point.
    let mut integral = vec![0.0; points.len()];
    for i in 1..points.len() {
        integral[i] = integral[i - 1] + level[i - 1] * (points[i] - points[i - 1]);
    }
    let at = |t: f64| -> f64 {
        let i = points.partition_point(|&p| p <= t).saturating_sub(1);
        integral[i] + level[i] * (t - points[i])
    };
    // The busy time in a window is piecewise linear in its start, with breaks where either end
    // meets a change point, so its maximum over the starts in [t0, t1 - w] is at such a break or
    // at an end of that range. A break outside the range is moved to the range's nearer end,
    // which covers both ends: t0 is a change point, and the last start matters only when a
    // change point lies after it (with none, its window is idle). Moving rather than dropping
    // also keeps the whole range's window when rounding puts t0 + w a hair past t1.
    let last_start = (t1 - w).max(t0);
    let worst = points
        .iter()
        .flat_map(|&p| [p, p - w])
        .map(|s| {
            let s = s.clamp(t0, last_start);
            at(s + w) - at(s)
        })
        .fold(0.0f64, f64::max);
    (1.0 - worst / w).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn busy(start: Duration, duration: Duration, share: f64) -> Busy {
        Busy {
            start,
            duration,
            share,
        }
    }

    /// The worst window may start at no change point, ending where a busy stretch ends:
    /// marking at half a CPU over 0–10 ms, then a 1 ms pause; the worst 5 ms window is 6–11 ms
    /// (4 ms × 0.5 + 1 ms busy), so the utilisation is 0.4, not the 0.5 of any window that
    /// starts at a change point.
    #[test]
    fn a_window_may_end_where_a_busy_stretch_ends() {
        let busy = [busy(ms(0), ms(10), 0.5), busy(ms(10), ms(1), 1.0)];
        let m = mmu(&busy, ms(0), ms(100), ms(5));
        assert!((m - 0.4).abs() < 1e-9, "{m}");
    }

    #[test]
    fn pauses_close_together_add_up() {
        // Two 1 ms pauses 2 ms apart (at 10 and 13 ms) in 100 ms.
        let busy = [busy(ms(10), ms(1), 1.0), busy(ms(13), ms(1), 1.0)];
        let m = |w| mmu(&busy, ms(0), ms(100), ms(w));
        assert!((m(1) - 0.0).abs() < 1e-9);
        // A 4 ms window holds both: 2 of 4 ms busy.
        assert!((m(4) - 0.5).abs() < 1e-9);
        // A 2 ms window holds at most one: 1 of 2 ms.
        assert!((m(2) - 0.5).abs() < 1e-9);
        assert!((m(10) - 0.8).abs() < 1e-9);
        assert!((m(100) - 0.98).abs() < 1e-9);
        assert_eq!(mmu(&[], ms(0), ms(100), ms(10)), 1.0);
        // A window longer than the range is the range: 2 of the first 10 ms busy.
        let short = |w| mmu(&busy, ms(5), ms(15), ms(w));
        assert!((short(100) - 0.8).abs() < 1e-9, "{}", short(100));
        assert!((short(10) - 0.8).abs() < 1e-9);
    }

    #[test]
    fn shares_overlap_up_to_one() {
        // 25% background marking from 0 to 50 ms, a pause inside it, and assists at 50%.
        let busy = [
            busy(ms(0), ms(50), 0.25),
            busy(ms(20), ms(1), 1.0),
            busy(ms(30), ms(10), 0.5),
        ];
        let m = |w| mmu(&busy, ms(0), ms(100), ms(w));
        assert!((m(1) - 0.0).abs() < 1e-9);
        // 10 ms at 75% busy (30–40 ms).
        assert!((m(10) - 0.25).abs() < 1e-9);
        // Beyond the busy stretch the window slides into idle time; the worst 100 ms is all.
        let total = 50.0 * 0.25 + 1.0 * 0.75 + 10.0 * 0.5;
        assert!((m(100) - (1.0 - total / 100.0)).abs() < 1e-9);
    }

    /// A busy stretch that began before the range counts only from the range's start: 0–15 ms
    /// at half a CPU, seen from 10 ms, puts 2.5 ms of busy time in the worst 10 ms window
    /// (10–20 ms), not the 5 ms a window starting before the range would see.
    #[test]
    fn busy_time_before_the_range_is_not_counted() {
        let busy = [busy(ms(0), ms(15), 0.5)];
        let m = mmu(&busy, ms(10), ms(100), ms(10));
        assert!((m - 0.75).abs() < 1e-9, "{m}");
    }

    /// Windows of seconds, late in a long range: a 2 s pause at 90 s of 100 s is the worst
    /// 4 s window's half.
    #[test]
    fn a_long_window_late_in_a_long_range() {
        let s = Duration::from_secs;
        let busy = [busy(s(90), s(2), 1.0)];
        let m = mmu(&busy, s(0), s(100), s(4));
        assert!((m - 0.5).abs() < 1e-9, "{m}");
    }

    /// The whole range as the window, where rounding makes no start in floating point fit
    /// exactly: from 1 to 9 ms, 0.001 + (0.009 − 0.001) is a hair above 0.009 and 0.009 −
    /// (0.009 − 0.001) a hair below 0.001. The one window is still judged: a 1 ms pause in 8 ms.
    #[test]
    fn the_whole_range_is_a_window_despite_rounding() {
        let (t0, t1) = (ms(1).as_secs_f64(), ms(9).as_secs_f64());
        assert!(
            t0 + (t1 - t0) > t1 && t1 - (t1 - t0) < t0,
            "the premise: rounding"
        );
        let busy = [busy(ms(3), ms(1), 1.0)];
        for window in [ms(8), ms(100)] {
            let m = mmu(&busy, ms(1), ms(9), window);
            assert!((m - 0.875).abs() < 1e-9, "{window:?}: {m}");
        }
    }

    #[test]
    fn from_records() {
        let rec = |cycle, phase, start, d| PhaseRecord {
            cycle,
            phase,
            start: ms(start),
            duration: ms(d),
        };
        let phases = [
            rec(1, Phase::SweepTermination, 0, 1),
            rec(1, Phase::Mark, 1, 10),
            rec(1, Phase::MarkTermination, 11, 1),
            rec(1, Phase::Sweep, 12, 5),
        ];
        let cycles = [CycleRecord {
            cycle: 1,
            procs: 2,
            assist_cpu: ms(5),
            background_cpu: ms(5),
            ..Default::default()
        }];
        assert_eq!(
            busy_intervals(&phases, &cycles, Include::default()).len(),
            2
        );
        let b = busy_intervals(
            &phases,
            &cycles,
            Include {
                assists: true,
                background: true,
            },
        );
        assert_eq!(b.len(), 3);
        // 10 ms of marking CPU over 10 ms × 2 CPUs.
        assert!((b[1].share - 0.5).abs() < 1e-9);
        // A mark phase of no length has no share to give (its CPU over no capacity): no
        // interval, rather than a share made up.
        let mut instant = phases;
        instant[1].duration = Duration::ZERO;
        let both = Include {
            assists: true,
            background: true,
        };
        assert_eq!(busy_intervals(&instant, &cycles, both).len(), 2);
        // Each class alone counts its own CPU (the harnesses count assists only): 2 ms of
        // assists and 6 of background work, over 10 ms × 2 CPUs.
        let cycles = [CycleRecord {
            assist_cpu: ms(2),
            background_cpu: ms(6),
            ..cycles[0].clone()
        }];
        for (include, share) in [
            (
                Include {
                    assists: true,
                    background: false,
                },
                0.1,
            ),
            (
                Include {
                    assists: false,
                    background: true,
                },
                0.3,
            ),
        ] {
            let b = busy_intervals(&phases, &cycles, include);
            assert!((b[1].share - share).abs() < 1e-9, "{}", b[1].share);
        }
    }
}
