//! `gc-lab`: the benchmark suite in one command.
//!
//! ```sh
//! cargo run --release -p gc-lab -- [--quick] [--runs N] [--out DIR] [--only NAME,…] [--no-peers]
//!     [--curves 25,50,100,200,400,800] [--limits 320,400,600,800] [--replot]
//! ```
//!
//! Builds the workload programs (the gc-core examples, the Lox VM and the Rust peers with
//! cargo, the Go 1.19 twins under `benches/go/` with `go build` where Go is installed), then
//! runs every workload on every implementation it has (gc-core; the no-GC `Box` baseline; the Go
//! twin; for binary-trees, GCBench, msgbuf and treechurn the Rust peers gc-arena, dumpster,
//! rust-gc and sandpit;
//! for the Lox VM, a reference `clox`), `--runs` times, the implementations of a workload one
//! after the other in each round so that the machine's drift hits all of them. Each run is
//! measured by the kernel (wall time, CPU time, peak RSS from `wait4`) and by the program's own
//! `key=value` line (the collector's figures), and where a workload prints an answer (node
//! counts), every implementation must print the first one's. Writes, into `--out`:
//!
//! * `machine.txt`: CPUs, CPU model, kernel, and the latency floor `hiccups` measures;
//! * `runs.csv`: every figure of every run (`workload,impl,run,key,value`);
//! * `summary.csv` and `summary.json`: per workload, implementation and figure, the median,
//!   minimum and maximum over the runs;
//! * `wall.svg`/`.png` and `rss.svg`/`.png`: each implementation's median wall time and peak
//!   RSS against its workload's no-GC baseline, with the runs' range;
//! * `data/<workload>/<impl>/run<N>/`: each run's detailed data (latency distribution, pauses,
//!   MMU curve, heap timeline; see [`detail`]), and from the first round's, per workload,
//!   `latency-*`, `mmu-*`, `pauses-*` and `timeline-*` plots;
//!
//! and `report.md`: the command, the machine, the table of medians (which it also prints) and
//! every SVG plot embedded, ready to replace the suite's section of `docs/benchmarks.md`
//! (`scripts/lab_docs.sh`). `--curves` also runs binary-trees and treechurn at
//! each GOGC value on gc-core and Go, `--limits` at each GOMEMLIMIT with GOGC=off, and plots time
//! and GC CPU against peak RSS ([`curves`]). `--quick` runs every workload once at a small size
//! (a smoke run: it checks that everything runs and every file is written, not how fast).

mod curves;
mod detail;
mod gotrace;
mod progress;
mod report;
mod run;
mod workloads;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Parser;
/// The plots live in the package's library, which the pacer lab shares.
pub(crate) use gc_lab::plot;

use crate::progress::Progress;
use crate::report::Summary;
use crate::run::{Figures, measure};
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
    /// plot time and GC CPU against peak RSS (`curve-*.svg/png`, `curves.csv`).
    #[arg(long, value_delimiter = ',', value_name = "GOGC,…")]
    curves: Vec<u32>,
    /// Likewise with GOGC=off and each of these soft memory limits (GOMEMLIMIT, in MiB)
    /// (`limit-*.svg/png`).
    #[arg(long, value_delimiter = ',', value_name = "MiB,…")]
    limits: Vec<u32>,
    /// Leave out the Rust peers (gc-arena, dumpster, rust-gc, sandpit).
    #[arg(long)]
    no_peers: bool,
    /// Run nothing: redraw the plots and rewrite the summaries and `report.md` of the run
    /// already in `--out` (from its `runs.csv`, `curves.csv`, `machine.txt` and `data/`).
    #[arg(long)]
    replot: bool,
}

/// The environment variable that tells a harness where to write its detailed data (pause
/// list, latency distribution, MMU curve, heap timeline), which the lab plots.
pub const DATA_VAR: &str = "GC_LAB_DATA";

/// Where run `r` of `implementation` on `workload` writes its detailed data.
fn run_data_dir(out: &Path, workload: &str, implementation: &str, r: u32) -> PathBuf {
    out.join("data")
        .join(workload.replace(' ', "-"))
        .join(implementation)
        .join(format!("run{r}"))
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
    if args.replot {
        return replot(&out);
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    remove_plots(&out);
    let command = format!(
        "cargo run --release -p gc-lab --{}",
        std::env::args()
            .skip(1)
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    write(&out.join("command.txt"), &command)?;
    let setup = Setup::prepare(&root, args.go.as_path(), args.clox.as_deref(), &out)?;
    let mut suite = workloads(&setup, args.quick, !args.no_peers);
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
    let progress = Progress::new(total as u64);
    // (workload, impl) → the runs' figures, in suite order.
    let mut results: Vec<((&str, &str), Vec<Figures>)> = Vec::new();
    for w in &suite {
        for i in &w.impls {
            results.push(((w.name, i.name), Vec::new()));
        }
    }
    let mut csv = String::from("workload,impl,run,key,value\n");
    // Runs that failed or answered differently: reported at the end, after every file is
    // written, so that one bad run does not cost the others.
    let mut problems: Vec<String> = Vec::new();
    for r in 1..=runs {
        for w in &suite {
            // The first implementation's answer lines, which the others must repeat.
            let mut answer: Option<(&str, Vec<String>)> = None;
            for i in &w.impls {
                progress.start(&format!("{} on {} (round {r})", w.name, i.name));
                let mut cmd = (i.command)();
                let data = run_data_dir(&out, w.name, i.name, r);
                std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
                cmd.env(DATA_VAR, &data);
                if i.name == "go" {
                    // Every pause, placed in time (see `gotrace`).
                    cmd.env("GODEBUG", "gctrace=1");
                }
                let (mut f, stdout, stderr) = match measure(cmd, &root) {
                    Ok(m) => m,
                    Err(e) => {
                        progress.done(&format!("{} on {} (round {r}) failed", w.name, i.name));
                        problems.push(e);
                        continue;
                    }
                };
                if i.name == "go" {
                    gotrace::apply(&stderr, &data, &mut f)?;
                }
                detail::complete(&mut f, &data);
                progress.done(&format!(
                    "{} on {} (round {r}): {:.2} s, {:.0} MiB",
                    w.name, i.name, f.0["wall_s"], f.0["rss_mib"]
                ));
                let lines: Vec<String> = stdout
                    .lines()
                    .filter(|l| (w.answer)(l))
                    .map(str::to_string)
                    .collect();
                match &answer {
                    None => answer = Some((i.name, lines)),
                    Some((first, expected)) if *expected != lines => {
                        problems.push(format!(
                            "{} on {} (round {r}) answered\n{}\nwhere {first} answered\n{}",
                            w.name,
                            i.name,
                            lines.join("\n"),
                            expected.join("\n")
                        ));
                    }
                    Some(_) => {}
                }
                for (k, v) in &f.0 {
                    let _ = writeln!(csv, "{},{},{r},{k},{v}", w.name, i.name);
                }
                write(&out.join("runs.csv"), &csv)?;
                results
                    .iter_mut()
                    .find(|(key, _)| *key == (w.name, i.name))
                    .expect("listed above")
                    .1
                    .push(f);
            }
        }
    }
    progress.finish();
    write(&out.join("runs.csv"), &csv)?;
    let summary = report::summarize(&results);
    // The report before the curves (which take long), and again with them.
    render(&results, &summary, &machine, &command, &out)?;
    let mut settings = Vec::new();
    if !args.curves.is_empty() {
        settings.push(curves::Settings::gogc(&args.curves));
    }
    if !args.limits.is_empty() {
        settings.push(curves::Settings::limits(&args.limits));
    }
    if !settings.is_empty() {
        let known = |w: &str, i: &str| {
            let stats = &summary.iter().find(|(key, _)| *key == (w, i))?.1;
            let med = |k: &str| stats.get(k).map_or(f64::NAN, |s| s.0);
            Some(curves::Measured {
                wall: med("wall_s"),
                rss: med("rss_mib"),
                gc_cpu: crate::report::gc_cpu(med),
            })
        };
        curves::curves(&suite, &settings, &known, runs, &root, &out)?;
        render(&results, &summary, &machine, &command, &out)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Remove the plots of an earlier run in `out`, so that a report lists only its own.
fn remove_plots(out: &Path) {
    let Ok(dir) = std::fs::read_dir(out) else {
        return;
    };
    for e in dir.flatten() {
        let p = e.path();
        if matches!(p.extension().and_then(|x| x.to_str()), Some("svg" | "png")) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write the summaries, the plots and `report.md` of a run's `results`, and print its table.
fn render(
    results: &[((&str, &str), Vec<Figures>)],
    summary: &Summary<'_>,
    machine: &str,
    command: &str,
    out: &Path,
) -> Result<(), String> {
    write(&out.join("summary.csv"), &report::summary_csv(summary))?;
    write(
        &out.join("summary.json"),
        &report::summary_json(summary, machine),
    )?;
    plots(summary, out);
    if plot::load_font() {
        let mut workloads: Vec<&str> = Vec::new();
        for ((w, _), _) in results {
            if !workloads.contains(w) {
                workloads.push(w);
            }
        }
        for w in workloads {
            let dirs: Vec<(&str, PathBuf)> = results
                .iter()
                .filter(|((rw, _), _)| *rw == w)
                .map(|((_, i), _)| (*i, run_data_dir(out, w, i, 1)))
                .collect();
            detail::plots(w, &dirs, out);
        }
    }
    let table = report::table(summary);
    write(
        &out.join("report.md"),
        &report::markdown(command, machine, &table, out),
    )?;
    print!("{table}");
    eprintln!("figures written to {}", out.display());
    Ok(())
}

/// `--replot`: the figures of the run in `out`, read back, rendered again.
fn replot(out: &Path) -> Result<(), String> {
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    let runs = read("runs.csv")?;
    let machine = read("machine.txt")?;
    let command = read("command.txt").unwrap_or_else(|_| "gc-lab (command not recorded)".into());
    // (workload, impl) in the order of first appearance, and each one's runs' figures.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut figures: Vec<Vec<Figures>> = Vec::new();
    for line in runs.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let [w, i, r, k, v] = f[..] else {
            return Err(format!("runs.csv: bad line {line:?}"));
        };
        let (Ok(r @ 1..), Ok(v)) = (r.parse::<usize>(), v.parse::<f64>()) else {
            return Err(format!("runs.csv: bad line {line:?}"));
        };
        let at = match keys.iter().position(|(kw, ki)| kw == w && ki == i) {
            Some(at) => at,
            None => {
                keys.push((w.to_string(), i.to_string()));
                figures.push(Vec::new());
                keys.len() - 1
            }
        };
        let runs = &mut figures[at];
        while runs.len() < r {
            runs.push(Figures::default());
        }
        runs[r - 1].0.insert(k.to_string(), v);
    }
    let results: Vec<((&str, &str), Vec<Figures>)> = keys
        .iter()
        .zip(figures)
        .map(|((w, i), f)| ((w.as_str(), i.as_str()), f))
        .collect();
    let summary = report::summarize(&results);
    remove_plots(out);
    if let Ok(text) = read("curves.csv") {
        curves::plot_all(&curves::read_csv(&text)?, out);
    }
    render(&results, &summary, &machine, command.trim(), out)
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
        Ok((f, ..)) => {
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
        if setup.clox.is_some() {
            "present"
        } else {
            "absent"
        }
    );
    s
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
