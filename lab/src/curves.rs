//! Cost curves, the DaCapo way of reporting a collector's cost: time and GC CPU against peak
//! memory as the heap-size setting varies, for binary-trees and the single-mutator treechurn.
//! gc-core and Go run at each GOGC value (`--curves`) and, with `GOGC=off`, at each soft memory
//! limit (`--limits`, GOMEMLIMIT in MiB); the no-GC baseline and the Rust peers, which have no
//! such setting, run once and appear as points on every plot. Medians over the rounds; every
//! point into `curves.csv`; per workload and kind of setting two plots, wall time and GC CPU
//! (Go's definition) against peak RSS: `curve-<workload>`, `curve-gccpu-<workload>` (GOGC) and
//! `limit-<workload>`, `limit-gccpu-<workload>` (GOMEMLIMIT).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::progress::Progress;
use crate::run::{Figures, measure, median};
use crate::{plot, workloads, write};

/// The heap-size settings of one kind.
pub struct Settings {
    /// `curve` (GOGC) or `limit` (GOMEMLIMIT): the plots' file prefix.
    pub kind: &'static str,
    /// Each setting's label and environment.
    pub points: Vec<(String, Vec<(&'static str, String)>)>,
}

impl Settings {
    pub fn gogc(values: &[u32]) -> Settings {
        Settings {
            kind: "curve",
            points: values
                .iter()
                .map(|g| (format!("GOGC={g}"), vec![("GOGC", g.to_string())]))
                .collect(),
        }
    }

    pub fn limits(mib: &[u32]) -> Settings {
        Settings {
            kind: "limit",
            points: mib
                .iter()
                .map(|m| {
                    (
                        format!("GOMEMLIMIT={m}MiB"),
                        vec![
                            ("GOGC", "off".to_string()),
                            ("GOMEMLIMIT", format!("{m}MiB")),
                        ],
                    )
                })
                .collect(),
        }
    }

    /// The settings' values, for a title.
    fn values(&self) -> String {
        self.points
            .iter()
            .map(|(l, _)| l.rsplit('=').next().unwrap_or(l))
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// A measured point: wall time, peak RSS and GC CPU (medians).
#[derive(Clone, Copy)]
pub struct Measured {
    pub wall: f64,
    pub rss: f64,
    pub gc_cpu: f64,
}

/// Runs `settings` (one kind after the other) for the curve workloads of `suite`; writes
/// `curves.csv` and the plots. `known(workload, implementation)` gives the medians the suite
/// already measured at the default settings: the implementations without a heap-size setting
/// are not run again where it has them.
pub fn curves(
    suite: &[workloads::Workload],
    settings: &[Settings],
    known: &dyn Fn(&str, &str) -> Option<Measured>,
    runs: u32,
    root: &Path,
    out: &Path,
) -> Result<(), String> {
    let mut csv = String::from("workload,impl,setting,wall_s,rss_mib,gc_cpu_go\n");
    let fonts = plot::load_font();
    let chosen: Vec<&workloads::Workload> = suite
        .iter()
        .filter(|w| w.name == "binary-trees" || w.name == "treechurn")
        .collect();
    let tunable = |name: &str| matches!(name, "gc-core" | "go");
    let total: usize = chosen
        .iter()
        .map(|w| {
            w.impls
                .iter()
                .map(|i| {
                    if tunable(i.name) {
                        settings.iter().map(|s| s.points.len()).sum()
                    } else if known(w.name, i.name).is_some() {
                        0
                    } else {
                        1
                    }
                })
                .sum::<usize>()
        })
        .sum::<usize>()
        * runs as usize;
    let progress = Progress::new(total as u64);
    let measure_median = |w: &str, i: &workloads::Impl, label: &str, env: &[(&str, String)]| {
        let mut figs: Vec<Figures> = Vec::new();
        let what = format!(
            "curve: {w} on {}{}{label}",
            i.name,
            if label.is_empty() { "" } else { " " }
        );
        for r in 1..=runs {
            progress.start(&format!("{what} (round {r})"));
            let mut cmd = (i.command)();
            cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            let (f, _) = measure(cmd, root)?;
            progress.done(&format!(
                "{what} (round {r}): {:.2} s, {:.0} MiB",
                f.0["wall_s"], f.0["rss_mib"]
            ));
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
        Ok::<_, String>(Measured {
            wall: med("wall_s"),
            rss: med("rss_mib"),
            gc_cpu: med("gc_cpu_go"),
        })
    };
    for w in chosen {
        // The baselines and peers, measured once for all kinds of setting.
        let mut fixed: BTreeMap<&str, Measured> = BTreeMap::new();
        for i in w.impls.iter().filter(|i| !tunable(i.name)) {
            let m = match known(w.name, i.name) {
                Some(m) => m,
                None => measure_median(w.name, i, "", &[])?,
            };
            let _ = writeln!(
                csv,
                "{},{},,{},{},{}",
                w.name, i.name, m.wall, m.rss, m.gc_cpu
            );
            fixed.insert(i.name, m);
        }
        for s in settings {
            let mut lines: Vec<(String, Vec<(String, Measured)>)> = Vec::new();
            for i in &w.impls {
                let points = if let Some(m) = fixed.get(i.name) {
                    vec![(String::new(), *m)]
                } else {
                    let mut v = Vec::new();
                    for (label, env) in &s.points {
                        let m = measure_median(w.name, i, label, env)?;
                        let _ = writeln!(
                            csv,
                            "{},{},{label},{},{},{}",
                            w.name, i.name, m.wall, m.rss, m.gc_cpu
                        );
                        v.push((label.rsplit('=').next().unwrap_or(label).to_string(), m));
                    }
                    v
                };
                lines.push((i.name.to_string(), points));
            }
            if !fonts {
                continue;
            }
            let setting = if s.kind == "curve" {
                "GOGC"
            } else {
                "GOGC=off, GOMEMLIMIT (MiB)"
            };
            for (suffix, what, y_desc, y) in [
                (
                    "",
                    "wall time",
                    "wall time (s)",
                    (|m: &Measured| m.wall) as fn(&Measured) -> f64,
                ),
                (
                    "gccpu-",
                    "GC CPU",
                    "GC CPU (Go's definition)",
                    |m: &Measured| m.gc_cpu,
                ),
            ] {
                let curves: Vec<plot::Curve> = lines
                    .iter()
                    .filter(|(i, _)| !what.starts_with("GC") || tunable(i))
                    .map(|(i, pts)| plot::Curve {
                        implementation: i.clone(),
                        points: pts
                            .iter()
                            .map(|(label, m)| plot::Point {
                                label: label.clone(),
                                x: m.rss,
                                y: y(m),
                            })
                            .collect(),
                    })
                    .collect();
                let stem = format!("{}-{suffix}{}", s.kind, w.name);
                let title = format!(
                    "{}: {what} against peak RSS, {setting} {}",
                    w.name,
                    s.values()
                );
                if let Err(e) = plot::curves(&out.join(&stem), &title, y_desc, &curves) {
                    eprintln!("plot {stem}: {e}");
                }
            }
        }
    }
    progress.finish();
    write(&out.join("curves.csv"), &csv)
}
