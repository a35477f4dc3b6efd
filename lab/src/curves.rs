//! Cost curves, the DaCapo way of reporting a collector's cost: time and GC CPU against peak
//! memory as the heap-size setting varies, for binary-trees and the single-mutator treechurn.
//! gc-core and Go run at each GOGC value (`--curves`) and, with `GOGC=off`, at each soft memory
//! limit (`--limits`, GOMEMLIMIT in MiB); the no-GC baseline and the Rust peers, which have no
//! such setting, run once and appear as points on every plot. Medians over the rounds; every
//! point into `curves.csv`; per workload and kind of setting two plots, wall time and GC CPU
//! (Go's definition) against peak RSS: `curve-<workload>`, `curve-gccpu-<workload>` (GOGC) and
//! `limit-<workload>`, `limit-gccpu-<workload>` (GOMEMLIMIT).

use std::fmt::Write as _;
use std::path::Path;

use crate::progress::Progress;
use crate::run::{Figures, measure, median};
use crate::{plot, workloads, write};

/// The heap-size settings of one kind.
pub struct Settings {
    /// Each setting's label and environment.
    pub points: Vec<(String, Vec<(&'static str, String)>)>,
}

impl Settings {
    pub fn gogc(values: &[u32]) -> Settings {
        Settings {
            points: values
                .iter()
                .map(|g| (format!("GOGC={g}"), vec![("GOGC", g.to_string())]))
                .collect(),
        }
    }

    pub fn limits(mib: &[u32]) -> Settings {
        Settings {
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
}

/// A measured point: wall time, peak RSS and GC CPU (medians).
#[derive(Clone, Copy)]
pub struct Measured {
    pub wall: f64,
    pub rss: f64,
    pub gc_cpu: f64,
}

/// One point of `curves.csv`: an implementation's medians on a workload at one setting
/// (`GOGC=50`, `GOMEMLIMIT=400MiB`; empty for an implementation without such a setting, run
/// once).
pub struct Row {
    pub workload: String,
    pub implementation: String,
    pub setting: String,
    pub m: Measured,
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
            let (f, ..) = measure(cmd, root)?;
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
            gc_cpu: crate::report::gc_cpu(med),
        })
    };
    let mut rows = Vec::new();
    for w in chosen {
        for i in &w.impls {
            let row = |setting: &str, m: Measured| Row {
                workload: w.name.to_string(),
                implementation: i.name.to_string(),
                setting: setting.to_string(),
                m,
            };
            if !tunable(i.name) {
                let m = match known(w.name, i.name) {
                    Some(m) => m,
                    None => measure_median(w.name, i, "", &[])?,
                };
                rows.push(row("", m));
                continue;
            }
            for s in settings {
                for (label, env) in &s.points {
                    rows.push(row(label, measure_median(w.name, i, label, env)?));
                }
            }
        }
    }
    progress.finish();
    write(&out.join("curves.csv"), &to_csv(&rows))?;
    plot_all(&rows, out);
    Ok(())
}

fn to_csv(rows: &[Row]) -> String {
    let mut csv = String::from("workload,impl,setting,wall_s,rss_mib,gc_cpu_go\n");
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{}",
            r.workload, r.implementation, r.setting, r.m.wall, r.m.rss, r.m.gc_cpu
        );
    }
    csv
}

/// The rows of a `curves.csv`.
pub fn read_csv(text: &str) -> Result<Vec<Row>, String> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let num = |k: usize| f.get(k).and_then(|v| v.parse::<f64>().ok());
            match (f.len(), num(3), num(4)) {
                (6, Some(wall), Some(rss)) => Ok(Row {
                    workload: f[0].to_string(),
                    implementation: f[1].to_string(),
                    setting: f[2].to_string(),
                    m: Measured {
                        wall,
                        rss,
                        gc_cpu: num(5).unwrap_or(f64::NAN),
                    },
                }),
                _ => Err(format!("curves.csv: bad line {l:?}")),
            }
        })
        .collect()
}

/// The plots of `rows` into `out`: per workload and kind of setting present (GOGC, GOMEMLIMIT),
/// wall time and GC CPU against peak RSS. Skipped without a font.
pub fn plot_all(rows: &[Row], out: &Path) {
    if !plot::load_font() {
        return;
    }
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    for w in workloads {
        let here: Vec<&Row> = rows.iter().filter(|r| r.workload == w).collect();
        for (kind, var, setting) in [
            ("curve", "GOGC=", "GOGC"),
            ("limit", "GOMEMLIMIT=", "GOGC=off, GOMEMLIMIT"),
        ] {
            let mut values: Vec<&str> = Vec::new();
            for r in &here {
                if let Some(v) = r.setting.strip_prefix(var)
                    && !values.contains(&v)
                {
                    values.push(v);
                }
            }
            if values.is_empty() {
                continue;
            }
            let mut implementations: Vec<&str> = Vec::new();
            for r in &here {
                if !implementations.contains(&r.implementation.as_str()) {
                    implementations.push(&r.implementation);
                }
            }
            // An implementation's points at this kind of setting, or its one fixed point.
            let points = |i: &str| -> Vec<(String, Measured)> {
                let at: Vec<(String, Measured)> = here
                    .iter()
                    .filter(|r| r.implementation == i)
                    .filter_map(|r| Some((r.setting.strip_prefix(var)?.to_string(), r.m)))
                    .collect();
                if !at.is_empty() {
                    return at;
                }
                here.iter()
                    .filter(|r| r.implementation == i && r.setting.is_empty())
                    .map(|r| (String::new(), r.m))
                    .collect()
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
                let curves: Vec<plot::Curve> = implementations
                    .iter()
                    .map(|i| plot::Curve {
                        implementation: i.to_string(),
                        points: points(i)
                            .into_iter()
                            .map(|(label, m)| plot::Point {
                                label,
                                x: m.rss,
                                y: y(&m),
                            })
                            .filter(|p| p.y.is_finite())
                            .collect(),
                    })
                    .filter(|c| !c.points.is_empty())
                    .collect();
                let stem = format!("{kind}-{suffix}{w}");
                let title = format!(
                    "{w}: {what} against peak RSS, {setting} {}",
                    values.join("/")
                );
                if let Err(e) = plot::curves(&out.join(&stem), &title, y_desc, &curves) {
                    eprintln!("plot {stem}: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_the_csv() {
        let rows = vec![
            Row {
                workload: "treechurn".into(),
                implementation: "box".into(),
                setting: String::new(),
                m: Measured {
                    wall: 1.5,
                    rss: 300.0,
                    gc_cpu: f64::NAN,
                },
            },
            Row {
                workload: "treechurn".into(),
                implementation: "gc-core".into(),
                setting: "GOMEMLIMIT=400MiB".into(),
                m: Measured {
                    wall: 2.0,
                    rss: 410.0,
                    gc_cpu: 0.25,
                },
            },
        ];
        let back = read_csv(&to_csv(&rows)).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].setting, "GOMEMLIMIT=400MiB");
        assert_eq!(back[1].m.rss, 410.0);
        assert!(back[0].m.gc_cpu.is_nan() && back[0].setting.is_empty());
        assert!(read_csv("header\nnot,a,row\n").is_err());
    }
}
