//! Trace replay: a pacer trace written by a real heap (`GCCORE_PACERTRACE=file`) turned into a
//! scenario — the workload the heap saw, on program time — which the simulator can run under
//! other settings; and the trace's own figures, to compare a prediction with a real run.
//!
//! From each cycle `i` of the trace (mark termination at mutator CPU `c_i`):
//!
//! * **program time** `τ_i = c_i ÷ mutators`, where `mutators` is the CPUs the program kept busy:
//!   (mutator CPU + assists) ÷ (wall time − pauses), at most `procs`;
//! * **allocation rate** from `c_{i−1}` to `c_i`: `(heap_end_i − heap_marked_{i−1}) ÷
//!   (c_i − c_{i−1})`, bytes per mutator CPU-second (what the pacer counts as allocation);
//! * **live heap** at `τ_i`: bytes marked less those allocated during the mark phase (black),
//!   `heap_marked_i − (heap_end_i − heap_start_i)`, linear between cycles;
//! * **scannable fraction** `heap_scan_i ÷ live_i` (at most 1), **scan rate** the work the
//!   model then does, `(min(heap_scan_i, live_i) + stack + globals scan) ÷ (background + assist
//!   + idle CPU)`, **stacks** and **globals** scan work, per cycle;
//! * `cpus` = `procs` (the spare CPUs net of the background workers the heap starts,
//!   `worker_shares`), the pause = the median of `(stw1 + stw2) ÷ 2`, the idle-marking share =
//!   idle marking CPU ÷ (spare CPUs × mark time), GOGC and the memory limit of the first cycle.
//!
//! Cycles started by `collect()` (`forced`) are not cycles the pacer chose: the simulation does
//! not repeat them, but the allocation around them is kept.

use std::collections::HashMap;

use crate::output::Summary;
use crate::scenario::Scenario;
use crate::stream::Stream;

/// One trace line, by column name.
struct Line(HashMap<String, String>);

impl Line {
    fn f(&self, k: &str) -> Result<f64, String> {
        let v = self
            .0
            .get(k)
            .ok_or_else(|| format!("trace has no column {k:?}"))?;
        v.parse()
            .map_err(|_| format!("trace column {k}: {v:?} is not a number"))
    }
    fn opt(&self, k: &str) -> Result<Option<f64>, String> {
        match self.0.get(k).map(String::as_str) {
            Some("off") => Ok(None),
            _ => self.f(k).map(Some),
        }
    }
}

/// A parsed trace.
pub struct Trace {
    lines: Vec<Line>,
}

impl Trace {
    pub fn parse(text: &str) -> Result<Trace, String> {
        let mut it = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<String> = it
            .next()
            .ok_or("empty trace")?
            .split(',')
            .map(|h| h.trim().to_string())
            .collect();
        let mut lines = Vec::new();
        for (n, l) in it.enumerate() {
            let vals: Vec<&str> = l.split(',').collect();
            if vals.len() != header.len() {
                return Err(format!(
                    "trace line {}: {} fields, the header has {}",
                    n + 2,
                    vals.len(),
                    header.len()
                ));
            }
            lines.push(Line(
                header
                    .iter()
                    .cloned()
                    .zip(vals.iter().map(|v| v.trim().to_string()))
                    .collect(),
            ));
        }
        if lines.len() < 2 {
            return Err(format!(
                "trace has {} cycles; replay needs at least 2",
                lines.len()
            ));
        }
        Ok(Trace { lines })
    }

    /// The workload the trace saw, as a scenario named `name`.
    pub fn scenario(&self, name: &str) -> Result<Scenario, String> {
        let l = &self.lines;
        let procs = l[0].f("procs")?.max(1.0);
        let wall = l.last().unwrap().f("end_s")?;
        let mut pauses = 0.0;
        let mut assists = 0.0;
        let mut pause_each = Vec::new();
        for x in l {
            let p = x.f("stw1_s")? + x.f("stw2_s")?;
            pauses += p;
            pause_each.push(p / 2.0);
            assists += x.f("assist_cpu_s")?;
        }
        pause_each.sort_by(f64::total_cmp);
        let mutator_total = l.last().unwrap().f("mutator_cpu_s")?;
        let mutators = ((mutator_total + assists) / (wall - pauses).max(1e-9)).clamp(0.01, procs);
        let mut alloc = Vec::new();
        let mut live = Vec::new();
        let mut scannable = Vec::new();
        let mut scan_rate = Vec::new();
        let mut stacks = Vec::new();
        let mut globals = Vec::new();
        let (mut last_cpu, mut last_marked, mut last_tau) = (0.0, 0.0, f64::NEG_INFINITY);
        let (mut idle_cpu, mut spare_cpu) = (0.0, 0.0);
        for x in l {
            let cpu = x.f("mutator_cpu_s")?;
            let tau = cpu / mutators;
            if tau <= last_tau {
                // Two cycles with no mutator time between (back to back): one point, the
                // later cycle's marked heap the start of the next allocation.
                last_marked = x.f("heap_marked")?;
                continue;
            }
            let (start, end, marked) = (x.f("heap_start")?, x.f("heap_end")?, x.f("heap_marked")?);
            let from = if last_tau.is_finite() {
                last_tau
            } else {
                f64::NEG_INFINITY
            };
            let rate = (end - last_marked).max(0.0) / (cpu - last_cpu).max(1e-9);
            alloc.push((from, rate));
            let l_i = (marked - (end - start)).max(0.0);
            live.push((tau, l_i));
            let heap_scan = x.f("heap_scan")?;
            // The work the model will do: its scannable share is at most 1 of the live heap
            // (small pointer-dense objects cost more scan work than their bytes: a two-pointer
            // node 24 bytes for 16), so the rate is the one that does that work in the
            // recorded GC CPU.
            let modelled = if l_i > 0.0 {
                heap_scan.min(l_i)
            } else {
                heap_scan
            };
            let work = modelled + x.f("stack_scan")? + x.f("globals_scan")?;
            let gc = x.f("background_cpu_s")? + x.f("assist_cpu_s")? + x.f("idle_cpu_s")?;
            idle_cpu += x.f("idle_cpu_s")?;
            let background: f64 = gc_core::pacer::worker_shares(procs as usize).iter().sum();
            let spare = procs - background - mutators;
            spare_cpu += spare.max(0.0) * x.f("mark_s")?;
            scannable.push((
                from,
                if l_i > 0.0 {
                    (heap_scan / l_i).min(1.0)
                } else {
                    1.0
                },
            ));
            if gc > 0.0 && work > 0.0 {
                scan_rate.push((from, work / gc));
            }
            stacks.push((from, x.f("stack_scan")?));
            globals.push((from, x.f("globals_scan")?));
            (last_cpu, last_marked, last_tau) = (cpu, marked, tau);
        }
        let steps = |mut v: Vec<(f64, f64)>| {
            v.dedup_by(|b, a| a.0 >= b.0);
            if v.is_empty() {
                return Stream::Constant(0.0);
            }
            v[0].0 = f64::NEG_INFINITY;
            Stream::Steps(v)
        };
        let first = &l[0];
        let mut s = Scenario {
            name: name.to_string(),
            description: format!("replay of a {}-cycle trace", l.len()),
            duration: last_tau,
            cpus: procs as usize,
            mutators,
            gogc: first.opt("gogc")?.map(|g| g as u32),
            memory_limit: first.opt("memory_limit")?.map(Stream::Constant),
            idle_marking: if spare_cpu > 0.0 {
                (idle_cpu / spare_cpu).min(1.0)
            } else {
                0.0
            },
            pause: pause_each[pause_each.len() / 2],
            alloc_rate: steps(alloc),
            live: Stream::Table(live),
            scannable: steps(scannable),
            scan_rate: steps(scan_rate),
            stacks: steps(stacks),
            globals: steps(globals),
            // The heap's own pacer (the built-in scenarios' default is Go's lowest trigger).
            pacer: gc_core::pacer::PacerConfig::default(),
            ..Scenario::default()
        };
        if matches!(s.scan_rate, Stream::Constant(_)) {
            s.scan_rate = Scenario::default().scan_rate;
        }
        Ok(s)
    }

    /// The trace's own figures, in the simulator's terms: cycles the pacer started (forced ones
    /// left out), peak `heap_live` at mark termination, peak mapped memory, GC CPU fraction,
    /// heap ÷ goal and utilisation over the second half.
    pub fn summary(&self) -> Result<Summary, String> {
        let paced: Vec<&Line> = self
            .lines
            .iter()
            .filter(|x| x.f("forced").map_or(true, |f| f == 0.0))
            .collect();
        let procs = self.lines[0].f("procs")?;
        let wall = self.lines.last().unwrap().f("end_s")?;
        let mut gc = 0.0;
        let mut peak_heap: f64 = 0.0;
        let mut peak_rss: f64 = 0.0;
        for x in &self.lines {
            gc += x.f("background_cpu_s")?
                + x.f("assist_cpu_s")?
                + (x.f("stw1_s")? + x.f("stw2_s")?) * procs;
            peak_heap = peak_heap.max(x.f("heap_end")?);
            peak_rss = peak_rss.max(x.f("mapped_ready")?);
        }
        let settled = &paced[paced.len() / 2..];
        let mut ratios = Vec::new();
        let mut util = 0.0;
        for x in settled {
            ratios.push(x.f("heap_end")? / x.f("heap_goal")?.max(1.0));
            let mark = x.f("mark_s")?;
            if mark > 0.0 {
                util += (x.f("background_cpu_s")? + x.f("assist_cpu_s")?) / (procs * mark);
            }
        }
        ratios.sort_by(f64::total_cmp);
        let mut limiter = 0;
        for x in &paced {
            if x.f("limiter_on")? != 0.0 {
                limiter += 1;
            }
        }
        Ok(Summary {
            cycles: paced.len(),
            wall_s: wall,
            peak_heap: peak_heap as u64,
            peak_rss: peak_rss as u64,
            median_ratio: ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN),
            worst_ratio: ratios.last().copied().unwrap_or(f64::NAN),
            mean_util: util / settled.len().max(1) as f64,
            gc_cpu_frac: gc / (procs * wall).max(1e-9),
            limiter_cycles: limiter,
            stalled_at: None,
        })
    }
}
