//! Go's pauses, from its gctrace: the lab runs the Go twins with `GODEBUG=gctrace=1` and reads,
//! from each cycle's line (`gc 7 @1.234s 3%: 0.012+2.1+0.034 ms clock, …`), when the cycle
//! started and its two stop-the-world pauses (sweep termination, mark termination) and the
//! concurrent mark between them. That places every pause of the run, which `runtime/metrics`
//! (a histogram without times) and `MemStats` (one sum per cycle, the last 256 cycles) do not.
//! gctrace prints times with two significant digits. From them the lab writes the run's
//! `pauses.csv` and `mmu-pauses.csv` (in the format of the gc-core harnesses') and its pause
//! figures.

use std::fmt::Write as _;
use std::path::Path;

use crate::run::Figures;

/// One stop-the-world pause: start (s, from the program's start), length (µs), cycle, phase.
#[derive(Debug, PartialEq)]
pub struct Pause {
    pub start_s: f64,
    pub duration_us: f64,
    pub cycle: u64,
    pub phase: &'static str,
}

/// The pauses of the gctrace lines in `stderr`, in order.
pub fn pauses(stderr: &str) -> Vec<Pause> {
    let mut out = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("gc ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let cycle = it.next().and_then(|n| n.parse::<u64>().ok());
        let at = it
            .next()
            .and_then(|t| t.strip_prefix('@')?.strip_suffix('s')?.parse::<f64>().ok());
        let _cpu_share = it.next();
        let clock: Option<Vec<f64>> = it
            .next()
            .map(|c| c.split('+').map(|v| v.parse::<f64>().ok()).collect())
            .and_then(|v: Vec<Option<f64>>| v.into_iter().collect());
        let (Some(cycle), Some(at), Some(clock), Some("ms")) = (cycle, at, clock, it.next()) else {
            continue;
        };
        let [stw1, mark, stw2] = clock[..] else {
            continue;
        };
        out.push(Pause {
            start_s: at,
            duration_us: stw1 * 1e3,
            cycle,
            phase: "SweepTermination",
        });
        out.push(Pause {
            start_s: at + (stw1 + mark) / 1e3,
            duration_us: stw2 * 1e3,
            cycle,
            phase: "MarkTermination",
        });
    }
    out
}

/// The MMU curve's windows, 100 µs to 1 s (as the gc-core harnesses').
const MMU_WINDOWS_MS: [f64; 13] = [
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
];

/// Minimum mutator utilisation over windows of `w` seconds inside `[from, to]`, the pauses
/// (`(start, end)` in seconds, disjoint) counting as lost time; a window longer than
/// `[from, to]` shrinks to it. The least utilisation is found with a window that starts where a
/// pause starts or ends where one ends, so only those windows are tried.
pub fn mmu(pauses: &[(f64, f64)], from: f64, to: f64, w: f64) -> f64 {
    let w = w.min(to - from);
    if w <= 0.0 {
        return 1.0;
    }
    let lost = |a: f64| -> f64 {
        let b = a + w;
        pauses
            .iter()
            .map(|&(s, e)| (e.min(b) - s.max(a)).max(0.0))
            .sum()
    };
    // The latest start a window may have (`from` when it spans all, rounding aside).
    let last = (to - w).max(from);
    let worst = pauses
        .iter()
        .flat_map(|&(s, e)| [s, e - w])
        .map(|a| lost(a.clamp(from, last)))
        .fold(0.0, f64::max);
    1.0 - worst / w
}

/// From a Go run's stderr: `pauses.csv` and `mmu-pauses.csv` into `dir`, and the pause figures
/// (`stw_count`, `stw_max_us`, `pause_max_us`) into `f`, replacing the program's own (which come
/// from a histogram's bucket bounds). Nothing if the run printed no gctrace.
pub fn apply(stderr: &str, dir: &Path, f: &mut Figures) -> Result<(), String> {
    let p = pauses(stderr);
    if p.is_empty() {
        return Ok(());
    }
    let mut csv = String::from("start_s,duration_us,cycle,phase\n");
    for q in &p {
        let _ = writeln!(
            csv,
            "{},{},{},{}",
            q.start_s, q.duration_us, q.cycle, q.phase
        );
    }
    crate::write(&dir.join("pauses.csv"), &csv)?;
    let spans: Vec<(f64, f64)> = p
        .iter()
        .map(|q| (q.start_s, q.start_s + q.duration_us / 1e6))
        .collect();
    let (from, to) = (spans[0].0, spans.iter().map(|s| s.1).fold(0.0, f64::max));
    let mut mmu_csv = String::from("window_ms,mmu\n");
    for ms in MMU_WINDOWS_MS {
        let _ = writeln!(mmu_csv, "{ms},{}", mmu(&spans, from, to, ms / 1e3));
    }
    crate::write(&dir.join("mmu-pauses.csv"), &mmu_csv)?;
    let max = p.iter().map(|q| q.duration_us).fold(0.0, f64::max);
    f.0.insert("stw_count".into(), p.len() as f64);
    f.0.insert("stw_max_us".into(), max);
    f.0.insert("pause_max_us".into(), max);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gctrace_lines_give_both_pauses() {
        let err = "mode=go x=1\n\
                   gc 1 @0.012s 2%: 0.011+1.2+0.003 ms clock, 0.045+0.10/0.35/0.74+0.012 ms cpu, 4->4->0 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 4 P\n\
                   gc 2 @1.5s 3%: 0.020+10+0.050 ms clock, 0.08+1/2/3+0.2 ms cpu, 8->9->4 MB, 9 MB goal, 0 MB stacks, 0 MB globals, 4 P (forced)\n\
                   not a gc line\n";
        let p = pauses(err);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].cycle, 1);
        assert!((p[0].duration_us - 11.0).abs() < 1e-9);
        assert!((p[1].start_s - (0.012 + 0.001211)).abs() < 1e-12);
        assert!((p[1].duration_us - 3.0).abs() < 1e-9);
        assert_eq!(p[3].phase, "MarkTermination");
        assert!((p[3].start_s - 1.51002).abs() < 1e-9);
    }

    #[test]
    fn mmu_of_one_pause() {
        // One 1 ms pause in a 10 s run.
        let p = [(5.0, 5.001)];
        assert!((mmu(&p, 0.0, 10.0, 0.001) - 0.0).abs() < 1e-9);
        assert!((mmu(&p, 0.0, 10.0, 0.002) - 0.5).abs() < 1e-9);
        assert!((mmu(&p, 0.0, 10.0, 0.1) - 0.99).abs() < 1e-9);
        // Two pauses 1 ms apart: a 3 ms window holds both.
        let p2 = [(5.0, 5.001), (5.002, 5.003)];
        assert!((mmu(&p2, 0.0, 10.0, 0.003) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(mmu(&p, 1.0, 1.0, 0.1), 1.0, "an empty span loses nothing");
        // A window longer than the span shrinks to it: 1 ms lost in 0.3 s.
        let whole = mmu(&[(0.1, 0.101)], 0.1, 0.4, 1.0);
        assert!((whole - (1.0 - 0.001 / 0.3)).abs() < 1e-9, "{whole}");
    }
}
