//! `pacer-lab`: gc-core's pacer in virtual time. Runs workload scenarios (built in, from a TOML
//! file, or changed with `--set`) through the same `gc_core::pacer` code the heap uses, replays
//! traces recorded by real heaps (`GCCORE_PACERTRACE`) under other settings, and compares two
//! configurations on one scenario. Writes a CSV per run, a figure per run, and a table.
//!
//! ```text
//! cargo run --release -p pacer-lab -- list
//! cargo run --release -p pacer-lab -- run steady exceed-memory-limit --set gogc=50
//! cargo run --release -p pacer-lab -- run --all --out docs/img/pacer
//! cargo run --release -p pacer-lab -- compare steady --a policy=proportional --b sqrt_c=2e-9
//! cargo run --release -p pacer-lab -- replay run.csv --set gogc=200 --against run200.csv
//! ```
//!
//! `docs/pacer.md` explains the model, the scenario format and what each scenario shows.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use pacer_lab::output::{agreement, figure, summary, table_header, table_row};
use pacer_lab::replay;
use pacer_lab::scenario::{BUILTIN, KEYS, Scenario, builtin};
use pacer_lab::sim::{Run, csv, simulate};

#[derive(Parser)]
#[command(
    name = "pacer-lab",
    version,
    about = "Simulate, replay and compare gc-core's pacer in virtual time"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the built-in scenarios and the keys a scenario takes.
    List,
    /// Run scenarios: built-in names, and/or files.
    Run {
        /// Built-in scenario names.
        names: Vec<String>,
        /// Every built-in scenario.
        #[arg(long)]
        all: bool,
        /// Scenario files (TOML).
        #[arg(long = "file", value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Override a key for every scenario run (repeatable): gogc=50, memory_limit=256MiB,
        /// alloc_rate=jitter(64MiB,8MiB,100ms), max_overshoot=1.05…
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Where the CSVs, figures and summary.md go.
        #[arg(long, default_value = "target/pacer-lab")]
        out: PathBuf,
        /// Write the CSVs and the table only.
        #[arg(long)]
        no_plots: bool,
    },
    /// Run one scenario under two configurations: one table, overlaid figures.
    Compare {
        /// A built-in scenario name, or a scenario file.
        scenario: String,
        /// Overrides of configuration A (repeatable; none: the scenario as it is).
        #[arg(long = "a", value_name = "KEY=VALUE")]
        a: Vec<String>,
        /// Overrides of configuration B (repeatable).
        #[arg(long = "b", value_name = "KEY=VALUE")]
        b: Vec<String>,
        #[arg(long, default_value = "target/pacer-lab")]
        out: PathBuf,
        #[arg(long)]
        no_plots: bool,
    },
    /// Replay a pacer trace (GCCORE_PACERTRACE) under other settings and predict its cycles,
    /// peak heap and GC CPU.
    Replay {
        /// The recorded trace.
        trace: PathBuf,
        /// Settings to predict for (repeatable): gogc=200, memory_limit=64MiB…
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// A trace of the real run under those settings, to compare the prediction with.
        #[arg(long, value_name = "TRACE")]
        against: Option<PathBuf>,
        #[arg(long, default_value = "target/pacer-lab")]
        out: PathBuf,
        #[arg(long)]
        no_plots: bool,
    },
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args.command) {
        eprintln!("pacer-lab: {e}");
        std::process::exit(1);
    }
}

fn run(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::List => {
            println!("Built-in scenarios:");
            for (name, _) in BUILTIN {
                let s = builtin(name).expect("listed")?;
                println!("  {name:30} {}", s.description);
            }
            println!("\nScenario keys (in a file, or --set key=value):");
            for (k, what) in KEYS {
                println!("  {k:18} {what}");
            }
            println!(
                "\nPacer keys (a file's [pacer] table, --set, or GCCORE_PACER for a real heap):"
            );
            for (k, what) in gc_core::pacer::PACER_KEYS {
                println!("  {k:18} {what}");
            }
            Ok(())
        }
        Command::Run {
            names,
            all,
            files,
            sets,
            out,
            no_plots,
        } => {
            let mut scenarios = Vec::new();
            let names: Vec<String> = if all {
                BUILTIN.iter().map(|b| b.0.to_string()).collect()
            } else {
                names
            };
            for n in &names {
                scenarios.push(
                    builtin(n)
                        .ok_or_else(|| format!("no built-in scenario {n:?} (see `list`)"))??,
                );
            }
            for f in &files {
                scenarios.push(load(f)?);
            }
            if scenarios.is_empty() {
                return Err("nothing to run: name scenarios, --all, or --file".into());
            }
            mkdir(&out)?;
            let mut table = vec![table_header("scenario")];
            for mut s in scenarios {
                s.apply(&sets)?;
                let r = simulate(&s);
                write_run(&out, &s.name, &r)?;
                if !no_plots {
                    plot(&out.join(&s.name), &s.name, &[("", &r)]);
                }
                table.push(table_row(&s.name, &summary(&r)));
            }
            finish_table(&out, &table)
        }
        Command::Compare {
            scenario,
            a,
            b,
            out,
            no_plots,
        } => {
            let base = match builtin(&scenario) {
                Some(s) => s?,
                None => load(Path::new(&scenario))?,
            };
            let label = |sets: &[String]| {
                if sets.is_empty() {
                    "as is".to_string()
                } else {
                    sets.join(" ")
                }
            };
            let (la, lb) = (format!("A: {}", label(&a)), format!("B: {}", label(&b)));
            let mut sa = base.clone();
            sa.apply(&a)?;
            let mut sb = base.clone();
            sb.apply(&b)?;
            let (ra, rb) = (simulate(&sa), simulate(&sb));
            mkdir(&out)?;
            let stem = format!("{}-compare", base.name);
            write_run(&out, &format!("{stem}-a"), &ra)?;
            write_run(&out, &format!("{stem}-b"), &rb)?;
            if !no_plots {
                plot(&out.join(&stem), &base.name, &[("A", &ra), ("B", &rb)]);
            }
            let table = vec![
                table_header("configuration"),
                table_row(&la, &summary(&ra)),
                table_row(&lb, &summary(&rb)),
            ];
            finish_table(&out, &table)
        }
        Command::Replay {
            trace,
            sets,
            against,
            out,
            no_plots,
        } => {
            let t = read_trace(&trace)?;
            let name = trace
                .file_stem()
                .map_or("replay".into(), |s| s.to_string_lossy().to_string());
            let mut s = t.scenario(&format!("{name}-replay"))?;
            s.apply(&sets)?;
            let r = simulate(&s);
            mkdir(&out)?;
            write_run(&out, &s.name, &r)?;
            if !no_plots {
                plot(&out.join(&s.name), &s.name, &[("", &r)]);
            }
            let predicted = summary(&r);
            let mut table = vec![
                table_header("run"),
                table_row("recorded", &t.summary()?),
                table_row(&format!("predicted: {}", sets.join(" ")), &predicted),
            ];
            if let Some(a) = against {
                let actual = read_trace(&a)?.summary()?;
                table.push(table_row("real run", &actual));
                table.push(String::new());
                table.push(agreement(&predicted, &actual));
            }
            finish_table(&out, &table)
        }
    }
}

fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_trace(path: &Path) -> Result<replay::Trace, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    replay::Trace::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn write_run(out: &Path, name: &str, r: &Run) -> Result<(), String> {
    let path = out.join(format!("{name}.csv"));
    std::fs::write(&path, csv(r)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Draw a figure, or say why not (a missing font is not an error: the CSVs are the result).
fn plot(stem: &Path, title: &str, runs: &[(&str, &Run)]) {
    if !gc_lab::plot::load_font() {
        eprintln!("pacer-lab: no TrueType font found; figures skipped");
        return;
    }
    if let Err(e) = figure(stem, title, runs) {
        eprintln!("pacer-lab: {e}");
    }
}

fn finish_table(out: &Path, lines: &[String]) -> Result<(), String> {
    let text = lines.join("\n") + "\n";
    print!("{text}");
    let path = out.join("summary.md");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
