//! What a run writes: the per-cycle CSV, a summary line for the table, and the figure (heap,
//! trigger and goal over time; GC CPU utilisation against its target; overshoot per cycle).

use std::path::Path;

use gc_lab::plot::{Axis, LineChart, Scale, Series, panels};

use crate::sim::{CycleRow, Run};

const MIB: f64 = 1024.0 * 1024.0;

/// A run's headline figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub cycles: usize,
    pub wall_s: f64,
    pub peak_heap: u64,
    pub peak_rss: u64,
    /// Over the settled cycles (the second half): median and worst heap at mark termination ÷
    /// goal, and the mean utilisation.
    pub median_ratio: f64,
    pub worst_ratio: f64,
    pub mean_util: f64,
    pub gc_cpu_frac: f64,
    pub limiter_cycles: usize,
    pub stalled_at: Option<f64>,
}

/// How a prediction compares with the real run: ratios of cycles, peak heap and GC CPU.
pub fn agreement(predicted: &Summary, actual: &Summary) -> String {
    let ratio = |p: f64, a: f64| if a > 0.0 { p / a } else { f64::NAN };
    format!(
        "prediction ÷ real run: cycles {:.3}, peak heap {:.3}, GC CPU {:.3}, peak RSS {:.3}",
        ratio(predicted.cycles as f64, actual.cycles as f64),
        ratio(predicted.peak_heap as f64, actual.peak_heap as f64),
        ratio(predicted.gc_cpu_frac, actual.gc_cpu_frac),
        ratio(predicted.peak_rss as f64, actual.peak_rss as f64),
    )
}

/// The cycles that count as settled: the second half of the run.
pub fn settled(rows: &[CycleRow]) -> &[CycleRow] {
    &rows[rows.len() / 2..]
}

pub fn summary(run: &Run) -> Summary {
    let settled = settled(&run.rows);
    let mut ratios: Vec<f64> = settled.iter().map(|r| 1.0 + r.overshoot).collect();
    ratios.sort_by(f64::total_cmp);
    let median = if ratios.is_empty() {
        f64::NAN
    } else {
        ratios[ratios.len() / 2]
    };
    Summary {
        cycles: run.rows.len(),
        wall_s: run.wall_s,
        peak_heap: run.peak_heap,
        peak_rss: run.peak_rss,
        median_ratio: median,
        worst_ratio: ratios.last().copied().unwrap_or(f64::NAN),
        mean_util: settled.iter().map(|r| r.gc_util).sum::<f64>() / settled.len().max(1) as f64,
        gc_cpu_frac: run.gc_cpu_frac,
        limiter_cycles: run.rows.iter().filter(|r| r.limiter_on).count(),
        stalled_at: run.stalled_at,
    }
}

/// The table's header (Markdown), after a first column named `first`.
pub fn table_header(first: &str) -> String {
    format!(
        "| {first} | cycles | wall s | peak heap MiB | peak RSS MiB | heap ÷ goal (median, worst) | utilisation | GC CPU | limiter cycles | stalled at |\n\
         |---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    )
}

/// One table row.
pub fn table_row(name: &str, s: &Summary) -> String {
    format!(
        "| {name} | {} | {:.2} | {:.1} | {:.1} | {:.3}, {:.3} | {:.3} | {:.3} | {} | {} |",
        s.cycles,
        s.wall_s,
        s.peak_heap as f64 / MIB,
        s.peak_rss as f64 / MIB,
        s.median_ratio,
        s.worst_ratio,
        s.mean_util,
        s.gc_cpu_frac,
        s.limiter_cycles,
        s.stalled_at.map_or("—".into(), |t| format!("{t:.2} s")),
    )
}

/// A run's lines for one figure, `tag` naming it in legends and `b` drawing it dashed in the
/// second colour set (comparisons).
struct Lines {
    heap: Vec<Series>,
    util: Vec<Series>,
    overshoot: Vec<Series>,
}

fn lines(run: &Run, tag: &str, b: bool) -> Lines {
    let rows = &run.rows;
    let name = |q: &str| {
        if tag.is_empty() {
            q.to_string()
        } else {
            format!("{q} ({tag})")
        }
    };
    let series = |q: &str, colour: &str, points: Vec<(f64, f64)>, dashed: bool| Series {
        name: name(q),
        colour_of: if b && colour == "heap" {
            "b".into()
        } else {
            colour.into()
        },
        points,
        dashed: dashed || (b && colour != "heap"),
    };
    let mib = |v: u64| v as f64 / MIB;
    let mut heap = Vec::new();
    let mut goal = Vec::new();
    let mut trigger = Vec::new();
    for r in rows {
        heap.extend([
            (r.start_s, mib(r.heap_start)),
            (r.end_s, mib(r.heap_end)),
            (r.end_s, mib(r.marked)),
        ]);
        goal.extend([(r.start_s, mib(r.goal)), (r.end_s, mib(r.goal))]);
        trigger.push((r.start_s, mib(r.trigger)));
    }
    let mut heap_series = vec![
        series("heap", "heap", heap, false),
        series("goal", "goal", goal, false),
        series("trigger", "trigger", trigger, false),
        series(
            "RSS peak",
            "rss",
            rows.iter().map(|r| (r.end_s, mib(r.rss_peak))).collect(),
            true,
        ),
    ];
    if rows.iter().any(|r| r.memory_limit > 0) {
        heap_series.push(series(
            "memory limit",
            "limit",
            rows.iter()
                .filter(|r| r.memory_limit > 0)
                .map(|r| (r.end_s, mib(r.memory_limit)))
                .collect(),
            false,
        ));
    }
    let per_cycle = |f: &dyn Fn(&CycleRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.cycle as f64, f(r))).collect()
    };
    let util = vec![
        series(
            "mark-phase utilisation",
            "heap",
            per_cycle(&|r| r.gc_util),
            false,
        ),
        series(
            "GC CPU, whole cycle",
            "utilisation",
            per_cycle(&|r| r.gc_cpu_frac),
            true,
        ),
    ];
    let overshoot = vec![series(
        "heap at mark termination vs goal",
        "heap",
        per_cycle(&|r| r.overshoot * 100.0),
        false,
    )];
    Lines {
        heap: heap_series,
        util,
        overshoot,
    }
}

fn constant(name: &str, colour: &str, y: f64, x0: f64, x1: f64) -> Series {
    Series {
        name: name.into(),
        colour_of: colour.into(),
        points: vec![(x0, y), (x1, y)],
        dashed: true,
    }
}

/// The figure of one or more runs (overlaid: the first solid, the second dashed) into
/// `<stem>.svg` and `<stem>.png`.
pub fn figure(stem: &Path, title: &str, runs: &[(&str, &Run)]) -> Result<(), String> {
    let mut heap = Vec::new();
    let mut util = Vec::new();
    let mut overshoot = Vec::new();
    let mut cycles = 1.0f64;
    let mut limited = false;
    for (i, (tag, run)) in runs.iter().enumerate() {
        let l = lines(run, tag, i > 0);
        heap.extend(l.heap);
        util.extend(l.util);
        overshoot.extend(l.overshoot);
        cycles = cycles.max(run.rows.len() as f64);
        limited |= run.rows.iter().any(|r| r.memory_limit > 0);
    }
    util.push(constant("target 25%", "target", 0.25, 1.0, cycles));
    if limited {
        util.push(constant("limiter's cap 50%", "limit", 0.5, 1.0, cycles));
    }
    overshoot.push(constant("goal", "goal", 0.0, 1.0, cycles));
    let lin = |desc| Axis {
        desc,
        scale: Scale::Linear,
    };
    let charts = [
        LineChart {
            title: format!("{title}: heap, trigger and goal"),
            x: lin("wall time (s)"),
            y: lin("MiB"),
            y_from_zero: true,
            series: heap,
        },
        LineChart {
            title: "GC CPU utilisation per cycle".into(),
            x: lin("cycle"),
            y: lin("fraction of the CPUs"),
            y_from_zero: true,
            series: util,
        },
        LineChart {
            title: "heap at mark termination vs goal".into(),
            x: lin("cycle"),
            y: lin("% over the goal"),
            y_from_zero: false,
            series: overshoot,
        },
    ];
    panels(stem, &charts)
}
