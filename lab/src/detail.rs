//! The runs' detailed data: each harness that supports it writes, into the directory the lab
//! gives it (`GC_LAB_DATA`), `latency.csv`, `pauses.csv`, `mmu.csv` and `timeline.csv` (formats
//! in `gc_examples::lab_data` and `benches/go/report`). From the first round's files this module
//! draws, per workload, the implementations side by side:
//!
//! * `latency-<workload>`: operation latency against percentile, 50 % to 99.9999 %, log scale;
//! * `mmu-<workload>`: minimum mutator utilisation against the window, 100 µs to 1 s, counting
//!   pauses and mark assists (solid; gc-core) and pauses only (dashed; gc-core and Go);
//! * `pauses-<workload>`: the pause histogram (share of pauses per power-of-two bucket of µs);
//! * `timeline-<workload>-<impl>`: the heap, its goal and its trigger over time;
//!
//! and completes a run's figures with its MMU at 1, 10 and 100 ms where the program did not
//! print them (binary-trees, GCBench, the Go twins), and with its pause percentiles.

use std::path::Path;

use crate::plot::{self, Axis, LineChart, Scale, Series};
use crate::run::Figures;

/// The rows of a CSV file with a header, as numbers (`NaN` for an empty or bad field); empty if
/// the file is absent.
fn read_csv(path: &Path) -> Vec<Vec<f64>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|f| f.trim().parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

/// (x, y) from columns `x` and `y` of `rows`, where both are numbers.
fn column_pairs(rows: &[Vec<f64>], x: usize, y: usize) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| Some((*r.get(x)?, *r.get(y)?)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect()
}

/// The MMU at 1, 10 and 100 ms from `dir/mmu.csv` (`mmu_10ms`, …) and `dir/mmu-pauses.csv`
/// (`mmu_pauses_10ms`, …), added to `f` where it has none; and the pauses' 50th, 99th and
/// 99.9th percentiles (`stw_p50_us`, `stw_p99_us`, `stw_p999_us`, nearest rank) from
/// `dir/pauses.csv`, replacing the program's own, so that every implementation's come from
/// the same computation.
pub fn complete(f: &mut Figures, dir: &Path) {
    let mut pauses: Vec<f64> = read_csv(&dir.join("pauses.csv"))
        .iter()
        .filter_map(|r| r.get(1).copied())
        .filter(|v| v.is_finite())
        .collect();
    if !pauses.is_empty() {
        pauses.sort_by(f64::total_cmp);
        for (q, key) in [
            (0.5, "stw_p50_us"),
            (0.99, "stw_p99_us"),
            (0.999, "stw_p999_us"),
        ] {
            let rank = (q * pauses.len() as f64).ceil() as usize;
            f.0.insert(key.into(), pauses[rank.clamp(1, pauses.len()) - 1]);
        }
    }
    for (file, prefix) in [("mmu.csv", "mmu"), ("mmu-pauses.csv", "mmu_pauses")] {
        let mmu = column_pairs(&read_csv(&dir.join(file)), 0, 1);
        for ms in [1.0, 10.0, 100.0] {
            if let Some((_, v)) = mmu.iter().find(|(w, _)| *w == ms) {
                f.0.entry(format!("{prefix}_{ms}ms")).or_insert(*v);
            }
        }
    }
}

/// Pause durations (µs) as (bucket's upper bound, share of the pauses) over power-of-two
/// buckets from 1 µs.
pub fn pause_histogram(durations_us: &[f64]) -> Vec<(f64, f64)> {
    if durations_us.is_empty() {
        return Vec::new();
    }
    let bucket = |d: f64| d.max(1.0).log2().ceil() as usize;
    let top = durations_us.iter().map(|&d| bucket(d)).max().unwrap_or(0);
    let mut counts = vec![0usize; top + 1];
    for &d in durations_us {
        counts[bucket(d)] += 1;
    }
    let n = durations_us.len() as f64;
    counts
        .iter()
        .enumerate()
        .map(|(b, &c)| ((1u64 << b) as f64, c as f64 / n))
        .collect()
}

/// Draw the detail plots of `workload` from `dirs` (implementation, its first run's data
/// directory) into `out`.
pub fn plots(workload: &str, dirs: &[(&str, std::path::PathBuf)], out: &Path) {
    let stem = workload.replace(' ', "-");
    let series = |file: &str, x: usize, y: usize| -> Vec<Series> {
        dirs.iter()
            .map(|(i, d)| Series {
                name: i.to_string(),
                colour_of: i.to_string(),
                points: column_pairs(&read_csv(&d.join(file)), x, y),
                dashed: false,
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let mut charts: Vec<(String, LineChart)> = Vec::new();
    let latency = series("latency.csv", 0, 1);
    if !latency.is_empty() {
        charts.push((
            format!("latency-{stem}"),
            LineChart {
                title: format!("{workload}: operation latency by percentile"),
                x: Axis {
                    desc: "percentile",
                    scale: Scale::Nines,
                },
                y: Axis {
                    desc: "latency (µs)",
                    scale: Scale::Log,
                },
                y_from_zero: false,
                series: latency,
            },
        ));
    }
    let mut mmu = series("mmu.csv", 0, 1);
    for s in &mut mmu {
        s.name = format!("{} (pauses + assists)", s.name);
    }
    for mut s in series("mmu-pauses.csv", 0, 1) {
        s.name = format!("{} (pauses only)", s.name);
        s.dashed = true;
        mmu.push(s);
    }
    if !mmu.is_empty() {
        charts.push((
            format!("mmu-{stem}"),
            LineChart {
                title: format!("{workload}: minimum mutator utilisation"),
                x: Axis {
                    desc: "window (ms)",
                    scale: Scale::Log,
                },
                y: Axis {
                    desc: "MMU",
                    scale: Scale::Linear,
                },
                y_from_zero: true,
                series: mmu,
            },
        ));
    }
    let pauses: Vec<Series> = dirs
        .iter()
        .map(|(i, d)| {
            let durations: Vec<f64> = read_csv(&d.join("pauses.csv"))
                .iter()
                .filter_map(|r| r.get(1).copied())
                .filter(|v| v.is_finite())
                .collect();
            Series {
                name: format!("{i} ({} pauses)", durations.len()),
                colour_of: i.to_string(),
                points: pause_histogram(&durations),
                dashed: false,
            }
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !pauses.is_empty() {
        charts.push((
            format!("pauses-{stem}"),
            LineChart {
                title: format!("{workload}: stop-the-world pauses"),
                x: Axis {
                    desc: "pause (µs, power-of-two buckets by upper bound)",
                    scale: Scale::Log,
                },
                y: Axis {
                    desc: "share of pauses",
                    scale: Scale::Linear,
                },
                y_from_zero: true,
                series: pauses,
            },
        ));
    }
    for (i, d) in dirs {
        let rows = read_csv(&d.join("timeline.csv"));
        let line = |name: &str, col: usize, colour_of: &str, dashed: bool| Series {
            name: name.to_string(),
            colour_of: colour_of.to_string(),
            points: column_pairs(&rows, 0, col),
            dashed,
        };
        let lines: Vec<Series> = [
            line("heap", 1, i, false),
            line("goal", 2, "goal", true),
            line("trigger", 3, "trigger", true),
        ]
        .into_iter()
        .filter(|s| !s.points.is_empty())
        .collect();
        if !lines.is_empty() {
            charts.push((
                format!("timeline-{stem}-{i}"),
                LineChart {
                    title: format!("{workload} on {i}: heap, goal and trigger"),
                    x: Axis {
                        desc: "time (s)",
                        scale: Scale::Linear,
                    },
                    y: Axis {
                        desc: "MiB",
                        scale: Scale::Linear,
                    },
                    y_from_zero: true,
                    series: lines,
                },
            ));
        }
    }
    for (name, chart) in charts {
        if let Err(e) = plot::lines(&out.join(&name), &chart) {
            eprintln!("plot {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_fall_in_power_of_two_buckets() {
        let h = pause_histogram(&[0.5, 1.0, 3.0, 4.0, 100.0]);
        // ≤1 µs: 2, (2,4]: 2, (64,128]: 1.
        assert_eq!(h[0], (1.0, 0.4));
        assert_eq!(h[2], (4.0, 0.4));
        assert_eq!(h[7], (128.0, 0.2));
        assert_eq!(h.len(), 8);
        assert!((h.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(pause_histogram(&[]).is_empty());
    }

    #[test]
    fn go_runs_get_their_mmu_from_the_file() {
        let dir = std::env::temp_dir().join(format!("gc-lab-detail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("mmu.csv"),
            "window_ms,mmu\n1,0.5\n10,0.8\n100,0.9\n",
        )
        .unwrap();
        std::fs::write(dir.join("mmu-pauses.csv"), "window_ms,mmu\n10,0.95\n").unwrap();
        let pauses: String = (1..=2000).map(|d| format!(",{d},,\n")).collect();
        std::fs::write(
            dir.join("pauses.csv"),
            format!("start_s,duration_us,cycle,phase\n{pauses}"),
        )
        .unwrap();
        let mut f = Figures::default();
        f.0.insert("mmu_10ms".into(), 0.7);
        complete(&mut f, &dir);
        assert_eq!(f.0["mmu_1ms"], 0.5);
        assert_eq!(f.0["mmu_10ms"], 0.7, "the program's own figure wins");
        assert_eq!(f.0["mmu_100ms"], 0.9);
        assert_eq!(f.0["mmu_pauses_10ms"], 0.95);
        assert_eq!(f.0["stw_p999_us"], 1998.0);
        assert_eq!(f.0["stw_p50_us"], 1000.0);
        assert_eq!(f.0["stw_p99_us"], 1980.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
