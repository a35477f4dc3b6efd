//! Detailed run data for the benchmark lab (`gc-lab`): when the environment variable
//! [`DATA_VAR`] names a directory, a harness writes there, as CSV,
//!
//! * `latency.csv` (`quantile,value_us`): its operation latency distribution, at the
//!   quantiles of [`quantiles`] (median to 99.9999 %) and the maximum (quantile 1);
//! * `pauses.csv` (`start_s,duration_us,cycle,phase`): every stop-the-world pause the heap's
//!   phase log kept, from the heap's creation;
//! * `mmu.csv` (`window_ms,mmu`): minimum mutator utilisation over windows of [`MMU_WINDOWS_MS`]
//!   (pauses and mark assists count as the collector's time, as in the harnesses' `mmu_*` keys),
//!   and `mmu-pauses.csv`, the same counting pauses only (what the Go twins can measure);
//! * `timeline.csv` (`t_s,heap_mib,goal_mib,trigger_mib`): the heap at each cycle's start and at
//!   its mark termination, with the goal and trigger it ran under.
//!
//! The Go twins write the same files (`benches/go/report`), so the lab plots both alike.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use gc_core::gctrace::CycleRecord;
use gc_core::phases::PhaseRecord;
use hdrhistogram::Histogram;

/// The environment variable naming the directory (the lab sets it for every run).
pub const DATA_VAR: &str = "GC_LAB_DATA";

/// The latency distribution's quantiles: 50 %, then 1 − 10^(−k/4) for k = 4..=24, from 90 % to
/// 99.9999 % in quarter-nines.
pub fn quantiles() -> impl Iterator<Item = f64> {
    std::iter::once(0.5).chain((4..=24).map(|k| 1.0 - 10f64.powf(-f64::from(k) / 4.0)))
}

/// The MMU curve's windows, 100 µs to 1 s.
pub const MMU_WINDOWS_MS: [f64; 13] = [
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
];

/// The directory the lab asked for, if any.
pub fn dir() -> Option<PathBuf> {
    std::env::var_os(DATA_VAR).map(PathBuf::from)
}

fn write(name: &str, text: &str) {
    if let Some(d) = dir() {
        let path = d.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("{}: {e}", path.display());
        }
    }
}

/// `h`'s value at quantile `q` in µs, its values being in units of `unit_ns` nanoseconds.
fn at(h: &Histogram<u64>, q: f64, unit_ns: f64) -> f64 {
    let v = if q >= 1.0 {
        h.max()
    } else {
        h.value_at_quantile(q)
    };
    v as f64 * unit_ns / 1e3
}

/// The latency figures as `key=value` pairs in µs: `lat_p50_us lat_p99_us lat_p999_us
/// lat_p9999_us lat_p99999_us lat_p999999_us lat_max_us` (the same keys in every harness and
/// its Go twin); and, where the lab asked, `latency.csv`. `h` holds values in units of
/// `unit_ns` nanoseconds (1 for ns, 1000 for µs).
pub fn latency(h: &Histogram<u64>, unit_ns: f64) -> String {
    let mut csv = String::from("quantile,value_us\n");
    for q in quantiles().chain([1.0]) {
        let _ = writeln!(csv, "{q},{}", at(h, q, unit_ns));
    }
    write("latency.csv", &csv);
    let keys = [
        ("p50", 0.5),
        ("p99", 0.99),
        ("p999", 0.999),
        ("p9999", 0.9999),
        ("p99999", 0.99999),
        ("p999999", 0.999999),
        ("max", 1.0),
    ];
    keys.iter()
        .map(|(k, q)| format!("lat_{k}_us={:.3}", at(h, *q, unit_ns)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the lab asked: `pauses.csv`, `mmu.csv` and `timeline.csv` from a heap's phase and
/// cycle records (see the module docs).
pub fn heap(phases: &[PhaseRecord], cycles: &[CycleRecord]) {
    if dir().is_none() {
        return;
    }
    let mut pauses = String::from("start_s,duration_us,cycle,phase\n");
    for p in phases.iter().filter(|p| p.phase.is_pause()) {
        let _ = writeln!(
            pauses,
            "{},{},{},{:?}",
            p.start.as_secs_f64(),
            p.duration.as_secs_f64() * 1e6,
            p.cycle,
            p.phase
        );
    }
    write("pauses.csv", &pauses);
    for (file, assists) in [("mmu.csv", true), ("mmu-pauses.csv", false)] {
        let mut mmu = String::from("window_ms,mmu\n");
        if let (Some(first), Some(last)) = (phases.first(), phases.iter().map(|p| p.end()).max()) {
            let include = gc_core::mmu::Include {
                assists,
                background: false,
            };
            let busy = gc_core::mmu::busy_intervals(phases, cycles, include);
            for ms in MMU_WINDOWS_MS {
                let w = Duration::from_secs_f64(ms / 1e3);
                let _ = writeln!(
                    mmu,
                    "{ms},{}",
                    gc_core::mmu::mmu(&busy, first.start, last, w)
                );
            }
        }
        write(file, &mmu);
    }
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let mut timeline = String::from("t_s,heap_mib,goal_mib,trigger_mib\n");
    for c in cycles {
        let end = c.start + c.sweep_termination + c.mark + c.mark_termination;
        // The cycle's own trigger (a setting changed since the cycle before, or a late start,
        // leaves it other than that cycle's `next_trigger`).
        let t = if c.trigger == usize::MAX {
            String::new()
        } else {
            mib(c.trigger).to_string()
        };
        for (at, heap) in [(c.start, c.heap_start), (end, c.heap_end)] {
            let _ = writeln!(
                timeline,
                "{},{},{},{t}",
                at.as_secs_f64(),
                mib(heap),
                mib(c.heap_goal)
            );
        }
    }
    write("timeline.csv", &timeline);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_run_from_the_median_to_six_nines() {
        let q: Vec<f64> = quantiles().collect();
        assert_eq!(q.len(), 22);
        assert_eq!(q[0], 0.5);
        assert!((q[1] - 0.9).abs() < 1e-12);
        assert!((q[5] - 0.99).abs() < 1e-12);
        assert!((q[21] - 0.999_999).abs() < 1e-12);
        assert!(q.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn latency_keys_are_in_microseconds() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap(); // 1..1000 µs, in ns
        }
        let keys = latency(&h, 1.0);
        let get = |k: &str| -> f64 {
            keys.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {keys}"))
        };
        // hdrhistogram with 3 significant digits: within 0.1 %.
        assert!((get("lat_p50_us") - 500.0).abs() <= 0.5, "{keys}");
        assert!((get("lat_p99_us") - 990.0).abs() <= 1.0, "{keys}");
        assert!((get("lat_max_us") - 1000.0).abs() <= 1.0, "{keys}");
        assert!(get("lat_p999999_us") <= get("lat_max_us"));
    }
}
