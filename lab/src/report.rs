//! The runs' figures summarised: medians, minima and maxima per workload, implementation and
//! figure, as CSV, JSON and a markdown table; and the run as a markdown report with its plots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::run::{Figures, median};

/// Per (workload, impl): figure → (median, min, max, runs).
pub type Summary<'a> = Vec<((&'a str, &'a str), BTreeMap<String, (f64, f64, f64, usize)>)>;

pub fn summarize<'a>(results: &[((&'a str, &'a str), Vec<Figures>)]) -> Summary<'a> {
    results
        .iter()
        .map(|(key, runs)| {
            let mut by_key: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for f in runs {
                for (k, v) in &f.0 {
                    by_key.entry(k.clone()).or_default().push(*v);
                }
            }
            let stats = by_key
                .into_iter()
                .filter_map(|(k, mut v)| {
                    // A run with nothing to say (0 for "no steady cycle") is left out of the
                    // median, minimum and maximum, not counted as a ratio of 0.
                    if ZERO_IS_NONE.contains(&k.as_str()) {
                        v.retain(|&x| x != 0.0);
                    }
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let m = median(&v)?;
                    Some((k, (m, lo, hi, v.len())))
                })
                .collect();
            (*key, stats)
        })
        .collect()
}

pub fn summary_csv(s: &Summary<'_>) -> String {
    let mut out = String::from("workload,impl,key,median,min,max,runs\n");
    for ((w, i), stats) in s {
        for (k, (m, lo, hi, n)) in stats {
            let _ = writeln!(out, "{w},{i},{k},{m},{lo},{hi},{n}");
        }
    }
    out
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (`null` for what JSON cannot hold).
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

pub fn summary_json(s: &Summary<'_>, machine: &str) -> String {
    let mut out = format!(
        "{{\n  \"machine\": {},\n  \"results\": [\n",
        json_str(machine)
    );
    for (n, ((w, i), stats)) in s.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"workload\": {}, \"impl\": {}, \"figures\": {{",
            json_str(w),
            json_str(i)
        );
        for (m, (k, (med, lo, hi, runs))) in stats.iter().enumerate() {
            let _ = write!(
                out,
                "{}{}: {{\"median\": {}, \"min\": {}, \"max\": {}, \"runs\": {runs}}}",
                if m == 0 { "" } else { ", " },
                json_str(k),
                json_num(*med),
                json_num(*lo),
                json_num(*hi)
            );
        }
        let _ = writeln!(out, "}}}}{}", if n + 1 < s.len() { "," } else { "" });
    }
    out.push_str("  ]\n}\n");
    out
}

/// A table column: heading, the figure's key in each harness that reports it (the first
/// present counts), decimals.
type Column = (&'static str, &'static [&'static str], usize);

/// GC CPU by Go's definition, compared at the end of the last cycle on both sides: gc-core's
/// first key, Go's only one (Go 1.19 updates `GCCPUFraction` only at mark termination;
/// gc-core's whole-run `gc_cpu_go` counts the time after its last cycle too).
pub const GC_CPU_KEYS: [&str; 2] = ["gc_cpu_go_last_cycle", "gc_cpu_go"];

/// The first of [`GC_CPU_KEYS`] that `med` (a figure's median, NaN if none) has.
pub fn gc_cpu(med: impl Fn(&str) -> f64) -> f64 {
    GC_CPU_KEYS
        .iter()
        .map(|k| med(k))
        .find(|v| !v.is_nan())
        .unwrap_or(f64::NAN)
}

/// Time, memory and GC CPU: every run has these (the kernel's at least).
const COSTS: [Column; 7] = [
    ("wall s", &["wall_s"], 2),
    ("CPU s", &["cpu_s"], 2),
    ("peak RSS MiB", &["rss_mib"], 1),
    ("GC cycles", &["gc_cycles"], 0),
    (
        "peak heap ÷ goal",
        &["peak_over_goal", "peak_heap_over_goal"],
        2,
    ),
    ("GC CPU, Go's def.", &GC_CPU_KEYS, 3),
    ("GC threads' CPU", &["gc_cpu_frac"], 3),
];

/// Pauses, operation latency and MMU: the runs of a collector that reports them.
const LATENCY: [Column; 14] = [
    ("pause p50 µs", &["stw_p50_us"], 0),
    ("p99", &["stw_p99_us"], 0),
    ("p99.9", &["stw_p999_us"], 0),
    ("max", &["pause_max_us", "stw_max_us"], 0),
    ("longest scope wait µs", &["scope_wait_max_us"], 0),
    ("op p50 µs", &["lat_p50_us", "op_p50_us", "push_p50_us"], 1),
    ("p99", &["lat_p99_us", "op_p99_us", "push_p99_us"], 1),
    ("p99.99", &["lat_p9999_us"], 0),
    ("p99.9999", &["lat_p999999_us"], 0),
    ("max", &["lat_max_us", "op_max_us", "push_max_us"], 0),
    ("MMU 1 ms", &["mmu_1ms"], 3),
    ("10 ms", &["mmu_10ms"], 3),
    ("100 ms", &["mmu_100ms"], 3),
    ("10 ms, pauses only", &["mmu_pauses_10ms"], 3),
];

/// Figures a harness reports as 0 when it has nothing to say: no steady-state cycle (a run
/// too short, or no collector at all), where a ratio of 0 would read as a measurement.
const ZERO_IS_NONE: [&str; 4] = [
    "peak_over_goal",
    "peak_heap_over_goal",
    "median_over_goal",
    "peak_over_goal_paced",
];

/// The rows of `s` as a markdown table of `cols`; rows with none of the columns' figures but
/// the first `always` are left out.
fn markdown_table(s: &Summary<'_>, cols: &[Column], always: usize) -> String {
    let mut out = String::from("| workload | implementation |");
    for (h, _, _) in cols {
        let _ = write!(out, " {h} |");
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(cols.len()));
    out.push('\n');
    for ((w, i), stats) in s {
        let cells: Vec<Option<f64>> = cols
            .iter()
            .map(|(_, keys, _)| {
                keys.iter()
                    .find_map(|k| stats.get(*k).map(|v| (k, v.0)))
                    .filter(|&(k, m)| !(m == 0.0 && ZERO_IS_NONE.contains(k)))
                    .map(|(_, m)| m)
            })
            .collect();
        if always == 0 && cells.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(out, "| {w} | {i} |");
        for (cell, (_, _, digits)) in cells.iter().zip(cols) {
            match cell {
                Some(m) => {
                    let _ = write!(out, " {m:.digits$} |");
                }
                None => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    out
}

/// The medians as markdown: one table of time, memory and GC CPU for every implementation, one
/// of pauses, operation latency and MMU for those that report them.
pub fn table(s: &Summary<'_>) -> String {
    format!(
        "{}\nPauses (µs), operation latency (µs) and minimum mutator utilisation (pauses and mark \
         assists count as the collector's time; the last column counts pauses only, as Go's \
         figure does):\n\n{}",
        markdown_table(s, &COSTS, 1),
        markdown_table(s, &LATENCY, 0)
    )
}

/// The plots of a report, in order: (file-name prefix, section heading).
const SECTIONS: [(&str, &str); 8] = [
    ("wall", "Wall time and peak RSS against the no-GC baseline"),
    ("rss", ""),
    ("curve-", "Cost curves: GOGC"),
    ("limit-", "Cost curves: GOMEMLIMIT (GOGC=off)"),
    ("latency-", "Operation latency by percentile"),
    ("mmu-", "Minimum mutator utilisation"),
    ("pauses-", "Pause histograms"),
    ("timeline-", "Heap, goal and trigger over time"),
];

/// The run as markdown: the command, the machine, the table and every SVG plot in `out`, by
/// section, linked by file name.
pub fn markdown(command: &str, machine: &str, table: &str, out: &Path) -> String {
    let mut svgs: Vec<String> = std::fs::read_dir(out)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".svg"))
                .collect()
        })
        .unwrap_or_default();
    svgs.sort();
    let mut md = format!(
        "Produced by `{command}`.\n\nThe machine:\n\n```text\n{}\n```\n\nMedians over the runs \
         (every run's figures are in `runs.csv`, medians with minima and maxima in `summary.csv`):\n\n{table}",
        machine.trim_end()
    );
    for (prefix, heading) in SECTIONS {
        let here: Vec<&String> = svgs
            .iter()
            .filter(|n| {
                n.starts_with(prefix) && (prefix.ends_with('-') || *n == &format!("{prefix}.svg"))
            })
            .collect();
        if here.is_empty() {
            continue;
        }
        if !heading.is_empty() {
            let _ = write!(md, "\n#### {heading}\n\n");
        }
        for n in here {
            let _ = writeln!(md, "![{}]({n})", n.trim_end_matches(".svg"));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that reports 0 for "no steady cycle" is left out of that figure's median and
    /// range (it read as a ratio of 0: two runs 0 and 1.10 gave a median of 0.55); a figure no
    /// run has is left out.
    #[test]
    fn runs_without_a_steady_cycle_are_left_out_of_its_figures() {
        let run = |over: f64, wall: f64| {
            Figures(BTreeMap::from([
                ("peak_over_goal".to_string(), over),
                ("wall_s".to_string(), wall),
            ]))
        };
        let results = vec![
            (("w", "gc"), vec![run(0.0, 1.0), run(1.10, 3.0)]),
            (("w", "none"), vec![run(0.0, 1.0), run(0.0, 2.0)]),
        ];
        let s = summarize(&results);
        assert_eq!(s[0].1["peak_over_goal"], (1.10, 1.10, 1.10, 1));
        assert_eq!(s[0].1["wall_s"], (2.0, 1.0, 3.0, 2));
        assert!(!s[1].1.contains_key("peak_over_goal"));
    }

    #[test]
    fn tables_show_medians_and_skip_rows_without_latency() {
        let mut gc = BTreeMap::new();
        gc.insert("wall_s".to_string(), (1.234, 1.0, 2.0, 3));
        gc.insert("stw_p50_us".to_string(), (7.0, 6.0, 9.0, 3));
        let mut bx = BTreeMap::new();
        bx.insert("wall_s".to_string(), (2.0, 2.0, 2.0, 3));
        let s: Summary<'_> = vec![(("w", "gc-core"), gc), (("w", "box"), bx)];
        let t = table(&s);
        assert!(t.contains("| w | gc-core | 1.23 |"), "{t}");
        assert!(t.contains("| w | box | 2.00 |"), "{t}");
        let latency = t.split("Pauses").nth(1).unwrap();
        assert!(latency.contains("| w | gc-core | 7 |"), "{latency}");
        assert!(!latency.contains("| box |"), "{latency}");
    }

    #[test]
    fn a_zero_heap_over_goal_means_no_steady_cycle() {
        let row = |over: f64| {
            let mut f = BTreeMap::new();
            f.insert("wall_s".to_string(), (1.0, 1.0, 1.0, 3));
            f.insert("peak_over_goal".to_string(), (over, over, over, 3));
            f
        };
        let s: Summary<'_> = vec![(("w", "gc-core"), row(1.04)), (("w", "box"), row(0.0))];
        let t = table(&s);
        assert!(
            t.contains("| w | gc-core | 1.00 | — | — | — | 1.04 |"),
            "{t}"
        );
        assert!(t.contains("| w | box | 1.00 | — | — | — | — |"), "{t}");
    }
}
