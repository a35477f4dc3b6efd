//! Cost curves: time and memory as the heap-size setting varies.

use std::fmt::Write as _;
use std::path::Path;

use crate::run::{Figures, measure, median};
use crate::{plot, workloads, write};

/// The cost curves (the DaCapo way: time against memory as the heap size setting varies): for
/// binary-trees and the single-mutator treechurn, gc-core and Go at each GOGC value and `Box`
/// once, medians over `runs`; `curves.csv` and one plot per workload.
pub fn curves(
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
            // GOGC sets gc-core's and Go's heap size; the others run once, as points.
            let settings: Vec<Option<u32>> = if !matches!(i.name, "gc-core" | "go") {
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
                    let (f, _) = measure(cmd, root)?;
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
