//! `gc-lab`: the benchmark suite in one command.
//!
//! ```sh
//! cargo run --release -p gc-lab -- [--quick] [--runs N] [--out DIR] [--only NAME,…]
//! ```
//!
//! Builds the workload programs (the gc-core examples and the Lox VM with cargo, the Go 1.19
//! twins under `benches/go/` with `go build` where Go is installed), then runs every workload on
//! every implementation it has (gc-core; the no-GC `Box` baseline; the Go twin; for the Lox VM,
//! a reference `clox`), `--runs` times, the implementations of a workload one after the other in
//! each round so that the machine's drift hits all of them. Each run is measured by the kernel
//! (wall time, CPU time, peak RSS from `wait4`) and by the program's own `key=value` line (the
//! collector's figures). Writes, into `--out`:
//!
//! * `machine.txt`: CPUs, CPU model, kernel, and the latency floor `hiccups` measures;
//! * `runs.csv`: every figure of every run (`workload,impl,run,key,value`);
//! * `summary.csv` and `summary.json`: per workload, implementation and figure, the median,
//!   minimum and maximum over the runs;
//! * `wall.svg`/`.png` and `rss.svg`/`.png`: each implementation's median wall time and peak
//!   RSS against its workload's no-GC baseline, with the runs' range;
//!
//! and prints a markdown table of the medians. `--curves 25,50,100,200,400,800` also runs
//! binary-trees and treechurn at each GOGC on gc-core and Go (and `Box` once) and plots wall time
//! against peak RSS (`curve-<workload>.svg/png`, `curves.csv`). `--quick` runs every workload once at a small
//! size (a smoke run: it checks that everything runs, not how fast).

mod plot;
mod run;
mod workloads;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::run::{Figures, measure, median};
use crate::workloads::{Setup, workloads};

/// Run the benchmark suite and write its figures.
#[derive(Parser)]
#[command(name = "gc-lab")]
struct Args {
    /// Every workload once at a small size (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Rounds of the whole suite (medians over them).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Where the CSV, JSON and machine description go.
    #[arg(long, default_value = "target/lab")]
    out: PathBuf,
    /// Only these workloads (comma-separated names; see the table's first column).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The Go 1.19 toolchain (its twins are skipped with a message when it is absent).
    #[arg(long, env = "GO", default_value = "/usr/lib/go-1.19/bin/go")]
    go: PathBuf,
    /// A reference clox binary for the Lox workloads (skipped when absent).
    #[arg(long, env = "CLOX")]
    clox: Option<PathBuf>,
    /// Also run binary-trees and treechurn at each of these GOGC values on gc-core and Go, and
    /// plot time against peak RSS (`curve-<workload>.svg/png`, `curves.csv`).
    #[arg(long, value_delimiter = ',', value_name = "GOGC,…")]
    curves: Vec<u32>,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = lab(&args) {
        eprintln!("gc-lab: {e}");
        std::process::exit(1);
    }
}

fn lab(args: &Args) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the lab is a member of the workspace")
        .to_path_buf();
    let out = root.join(&args.out);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let setup = Setup::prepare(&root, args.go.as_path(), args.clox.as_deref(), &out)?;
    let mut suite = workloads(&setup, args.quick);
    if !args.only.is_empty() {
        suite.retain(|w| args.only.iter().any(|o| o == w.name));
        if suite.is_empty() {
            return Err(format!("no workload named {:?}", args.only));
        }
    }
    let machine = describe_machine(&setup, args.quick);
    write(&out.join("machine.txt"), &machine)?;
    eprint!("{machine}");

    let runs = if args.quick { 1 } else { args.runs };
    let total: usize = suite.iter().map(|w| w.impls.len()).sum::<usize>() * runs as usize;
    let mut done = 0;
    // (workload, impl) → the runs' figures, in suite order.
    let mut results: Vec<((&str, &str), Vec<Figures>)> = Vec::new();
    for w in &suite {
        for i in &w.impls {
            results.push(((w.name, i.name), Vec::new()));
        }
    }
    let mut csv = String::from("workload,impl,run,key,value\n");
    for r in 1..=runs {
        for w in &suite {
            for i in &w.impls {
                done += 1;
                eprint!("[{done}/{total}] {} on {} (round {r})… ", w.name, i.name);
                let f = measure((i.command)(), &root)?;
                eprintln!("{:.2} s", f.0["wall_s"]);
                for (k, v) in &f.0 {
                    let _ = writeln!(csv, "{},{},{r},{k},{v}", w.name, i.name);
                }
                results
                    .iter_mut()
                    .find(|(key, _)| *key == (w.name, i.name))
                    .expect("listed above")
                    .1
                    .push(f);
            }
        }
    }
    write(&out.join("runs.csv"), &csv)?;
    if !args.curves.is_empty() {
        curves(&suite, &args.curves, runs, &root, &out)?;
    }
    let summary = summarize(&results);
    write(&out.join("summary.csv"), &summary_csv(&summary))?;
    write(&out.join("summary.json"), &summary_json(&summary, &machine))?;
    plots(&summary, &out);
    print!("{}", table(&summary));
    eprintln!("figures written to {}", out.display());
    Ok(())
}

/// Per (workload, impl): figure → (median, min, max, runs).
type Summary<'a> = Vec<((&'a str, &'a str), BTreeMap<String, (f64, f64, f64, usize)>)>;

fn summarize<'a>(results: &[((&'a str, &'a str), Vec<Figures>)]) -> Summary<'a> {
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

fn summary_csv(s: &Summary<'_>) -> String {
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

fn summary_json(s: &Summary<'_>, machine: &str) -> String {
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
fn table(s: &Summary<'_>) -> String {
    // (heading, the figure's key in each harness that reports it, decimals)
    let cols: [(&str, &[&str], usize); 9] = [
        ("wall s", &["wall_s"], 2),
        ("CPU s", &["cpu_s"], 2),
        ("peak RSS MiB", &["rss_mib"], 1),
        ("GC cycles", &["gc_cycles"], 0),
        ("pause p99 µs", &["stw_p99_us"], 0),
        ("longest pause µs", &["pause_max_us", "stw_max_us"], 0),
        ("op p99 µs", &["op_p99_us", "push_p99_us"], 0),
        ("MMU 10 ms", &["mmu_10ms"], 3),
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

/// The cost curves (the DaCapo way: time against memory as the heap size setting varies): for
/// binary-trees and the single-mutator treechurn, gc-core and Go at each GOGC value and `Box`
/// once, medians over `runs`; `curves.csv` and one plot per workload.
fn curves(
    suite: &[workloads::Workload],
    gogcs: &[u32],
    runs: u32,
    root: &Path,
    out: &Path,
) -> Result<(), String> {
    let mut csv = String::from("workload,impl,gogc,wall_s,rss_mib,gc_cpu_go\n");
    let fonts = plot::load_font();
    for w in suite
        .iter()
        .filter(|w| w.name == "binary-trees" || w.name == "treechurn")
    {
        let mut lines: Vec<plot::Curve> = Vec::new();
        for i in &w.impls {
            let settings: Vec<Option<u32>> = if i.name == "box" {
                vec![None]
            } else {
                gogcs.iter().map(|&g| Some(g)).collect()
            };
            let mut points = Vec::new();
            for g in settings {
                let mut figs: Vec<Figures> = Vec::new();
                for r in 1..=runs {
                    eprint!(
                        "curve: {} on {} GOGC={} (round {r})… ",
                        w.name,
                        i.name,
                        g.map_or("-".into(), |g| g.to_string())
                    );
                    let mut cmd = (i.command)();
                    if let Some(g) = g {
                        cmd.env("GOGC", g.to_string());
                    }
                    let f = measure(cmd, root)?;
                    eprintln!("{:.2} s, {:.0} MiB", f.0["wall_s"], f.0["rss_mib"]);
                    figs.push(f);
                }
                let med = |k: &str| {
                    median(
                        &figs
                            .iter()
                            .filter_map(|f| f.0.get(k).copied())
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or(f64::NAN)
                };
                let (wall, rss, cpu) = (med("wall_s"), med("rss_mib"), med("gc_cpu_go"));
                let _ = writeln!(
                    csv,
                    "{},{},{},{wall},{rss},{cpu}",
                    w.name,
                    i.name,
                    g.map_or(String::new(), |g| g.to_string())
                );
                points.push(plot::Point {
                    label: g.map_or(String::new(), |g| g.to_string()),
                    x: rss,
                    y: wall,
                });
            }
            lines.push(plot::Curve {
                implementation: i.name.to_string(),
                points,
            });
        }
        if fonts {
            let title = format!(
                "{}: wall time against peak RSS, GOGC {}",
                w.name,
                gogcs
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            );
            if let Err(e) = plot::curves(&out.join(format!("curve-{}", w.name)), &title, &lines) {
                eprintln!("plot curve-{}: {e}", w.name);
            }
        }
    }
    write(&out.join("curves.csv"), &csv)
}

/// `wall.svg/png` and `rss.svg/png`: each implementation's median wall time and peak RSS as a
/// ratio to its workload's baseline (`box`, or `clox` for the Lox programs), with the runs'
/// range. Skipped with a message without a font, or for a workload without its baseline.
fn plots(s: &Summary<'_>, out: &Path) {
    if !plot::load_font() {
        eprintln!("no TrueType font found (DejaVu or Liberation Sans): no plots");
        return;
    }
    for (key, stem, title, y) in [
        (
            "wall_s",
            "wall",
            "Wall time against the no-GC baseline (median, range over the runs)",
            "wall time ÷ baseline",
        ),
        (
            "rss_mib",
            "rss",
            "Peak RSS against the no-GC baseline (median, range over the runs)",
            "peak RSS ÷ baseline",
        ),
    ] {
        let mut groups: Vec<plot::Group> = Vec::new();
        let workloads: Vec<&str> = s.iter().map(|((w, _), _)| *w).fold(Vec::new(), |mut v, w| {
            if !v.contains(&w) {
                v.push(w);
            }
            v
        });
        for w in workloads {
            let of = |i: &str| {
                s.iter()
                    .find(|((sw, si), _)| *sw == w && *si == i)
                    .and_then(|(_, st)| st.get(key).copied())
            };
            let Some((base, ..)) = of("box").or_else(|| of("clox")) else {
                continue;
            };
            let bars = s
                .iter()
                .filter(|((sw, _), _)| *sw == w)
                .filter_map(|((_, i), st)| {
                    let (m, lo, hi, _) = st.get(key)?;
                    Some(plot::Bar {
                        implementation: i.to_string(),
                        median: m / base,
                        min: lo / base,
                        max: hi / base,
                    })
                })
                .collect();
            groups.push(plot::Group {
                workload: w.to_string(),
                bars,
            });
        }
        if let Err(e) = plot::bars(&out.join(stem), title, y, &groups) {
            eprintln!("plot {stem}: {e}");
        }
    }
}

/// CPUs, CPU model, kernel and the latency floor (the `hiccups` example: threads spinning on the
/// clock report the gaps in which they did not run).
fn describe_machine(setup: &Setup, quick: bool) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut s = format!("cpus: {cpus}\ncpu model: {model}\nkernel: {kernel}\n");
    let secs = if quick { "1" } else { "5" };
    match measure(setup.hiccups(secs), &setup.root) {
        Ok(f) => {
            let g = |k: &str| f.0.get(k).copied().unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "latency floor (hiccups, {secs} s, {} threads): gaps over 100 µs {}, over 1 ms {}, \
                 p99 gap {} µs, longest gap {} µs",
                g("threads"),
                g("gaps_over_100us"),
                g("gaps_over_1ms"),
                g("gap_p99_us"),
                g("gap_max_us")
            );
        }
        Err(e) => {
            let _ = writeln!(s, "latency floor: not measured ({e})");
        }
    }
    let _ = writeln!(s, "go: {}", setup.go_version.as_deref().unwrap_or("absent"));
    let _ = writeln!(
        s,
        "clox: {}",
        setup
            .clox
            .as_ref()
            .map_or("absent".into(), |p| p.display().to_string())
    );
    s
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
