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
                .map(|(k, v)| {
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (k, (median(&v).unwrap_or(f64::NAN), lo, hi, v.len()))
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

/// The medians as a markdown table: the kernel's figures for every implementation, the
/// collector's where the program reports them.
pub fn table(s: &Summary<'_>) -> String {
    // (heading, the figure's key in each harness that reports it, decimals)
    let cols: [(&str, &[&str], usize); 15] = [
        ("wall s", &["wall_s"], 2),
        ("CPU s", &["cpu_s"], 2),
        ("peak RSS MiB", &["rss_mib"], 1),
        ("GC cycles", &["gc_cycles"], 0),
        ("pause p50 µs", &["stw_p50_us"], 0),
        ("pause p99 µs", &["stw_p99_us"], 0),
        ("pause p99.9 µs", &["stw_p999_us"], 0),
        ("longest pause µs", &["pause_max_us", "stw_max_us"], 0),
        ("longest scope wait µs", &["scope_wait_max_us"], 0),
        ("op p99 µs", &["lat_p99_us", "op_p99_us", "push_p99_us"], 1),
        ("op p99.9999 µs", &["lat_p999999_us"], 0),
        ("MMU 10 ms", &["mmu_10ms"], 3),
        ("MMU 10 ms (pauses only)", &["mmu_pauses_10ms"], 3),
        ("heap ÷ goal", &["peak_over_goal", "peak_heap_over_goal"], 2),
        ("GC CPU (Go's def.)", &["gc_cpu_go"], 3),
    ];
    let mut out = String::from("| workload | implementation |");
    for (h, _, _) in cols {
        let _ = write!(out, " {h} |");
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(cols.len()));
    out.push('\n');
    for ((w, i), stats) in s {
        let _ = write!(out, "| {w} | {i} |");
        for (_, keys, digits) in cols {
            match keys.iter().find_map(|k| stats.get(*k)) {
                Some((m, ..)) => {
                    let _ = write!(out, " {m:.digits$} |");
                }
                None => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    out
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
