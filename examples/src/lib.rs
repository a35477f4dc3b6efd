//! Small helpers shared by the example programs and workload harnesses.

pub mod lab_data;

/// Peak resident set size of this process in MiB (`VmHWM` from `/proc/self/status`), or 0.0
/// where that file does not exist.
pub fn rss_peak_mib() -> f64 {
    proc_status_kib("VmHWM:") as f64 / 1024.0
}

/// Current resident set size in MiB (`VmRSS`).
pub fn rss_mib() -> f64 {
    proc_status_kib("VmRSS:") as f64 / 1024.0
}

fn proc_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Format a byte count in MiB with one decimal.
pub fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// CPU time (user + system) used so far by this process's threads whose name starts with
/// `prefix` (e.g. `"gc-core"` for the collector and its helpers), from
/// `/proc/self/task/*/stat`. 0.0 where that is unavailable. Threads that have exited are not
/// counted, so call it while they run (the collector runs as long as its heap).
pub fn threads_cpu_secs(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    // Clock ticks per second are 100 on Linux (USER_HZ).
    const TICKS: f64 = 100.0;
    let mut total = 0u64;
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ... utime stime ..." — comm may contain spaces, so split at ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // Fields after ')': state is index 0, utime is field 14 of the line = index 11 here.
        if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
            total += u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
        }
    }
    total as f64 / TICKS
}

/// CPU time (user + system) of the whole process so far, from `/proc/self/stat`.
pub fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    match (fields.get(11), fields.get(12)) {
        (Some(u), Some(s)) => {
            (u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0)) as f64 / 100.0
        }
        _ => 0.0,
    }
}

/// A `clap` value parser for a count that must be at least 1.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got {s:?}")),
    }
}

/// Collector CPU share of a run: CPU time of the heap's threads (names starting `gc-core`) ÷
/// (`wall` × available CPUs). Call it while the heap is alive (see [`threads_cpu_secs`]).
pub fn gc_cpu_frac(wall: std::time::Duration) -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    threads_cpu_secs("gc-core") / (wall.as_secs_f64() * cpus)
}

/// Cycles left out of [`GcReport::peak_over_goal`] by a harness without a build phase (msgbuf;
/// its Go twin skips as many).
pub const WARMUP_CYCLES: u64 = 4;

/// A heap's collector figures at the end of a latency harness run (treechurn, msgbuf).
pub struct GcReport {
    /// Stop-the-world pauses in µs, from the heap's phase records (each measured from the stop
    /// request, so a mutator slow to reach a safepoint shows up in it).
    pub stw: hdrhistogram::Histogram<u64>,
    /// The longest pause in µs, from [`HeapStats::pause_max`](gc_core::HeapStats::pause_max):
    /// exact, and over all pauses, also those the bounded phase log has dropped.
    pub stw_max_us: u64,
    /// Completed cycles.
    pub gc_cycles: u64,
    /// The arena's mapped high-water mark in MiB.
    pub heap_peak_mib: f64,
    /// Time mutators spent in mark assists, in ms.
    pub assist_ms: f64,
    /// The heap goal at the end, in MiB.
    pub heap_goal_mib: f64,
    /// The largest ratio, over the steady-state cycles (from `first_steady_cycle` on, see
    /// [`GcReport::take`]), of the heap at mark termination to that cycle's goal (from the cycle
    /// records; 0 without such cycles).
    pub peak_over_goal: f64,
    /// The median of the same ratio over the same cycles.
    pub median_over_goal: f64,
    /// Of those cycles, the ones in which the GC CPU limiter was on at some time during the
    /// mark phase (mark assists stop while it is, so such a cycle may end past its goal by
    /// design).
    pub limited_cycles: u64,
    /// The largest ratio over the steady-state cycles in which the limiter stayed off.
    pub peak_over_goal_paced: f64,
    /// The median, over the steady-state cycles, of the share of the marked heap that was
    /// allocated black during the cycle (`1 − heap_reached ÷ heap_marked`): the upper bound on
    /// the floating garbage a cycle leaves, which the next goal counts as live.
    pub black_share: f64,
    /// Minimum mutator utilisation over windows of 1, 10 and 100 ms, counting pauses and mark
    /// assists (each cycle's assist time spread over its mark phase) as time lost to the GC
    /// ([`gc_core::mmu`]).
    pub mmu: [f64; 3],
    /// GC CPU as Go 1.19's `GCCPUFraction` counts it: assists, background marking and pauses ×
    /// CPUs (not idle-priority marking, which Go 1.19 leaves out as free, nor sweeping or
    /// scavenging) ÷ (time since the heap was created × CPUs), from
    /// [`Heap::metrics`](gc_core::Heap::metrics).
    pub gc_cpu_go: f64,
    /// [`GcReport::gc_cpu_go`] as it stood at the end of the last cycle
    /// ([`CycleRecord::gc_cpu_fraction`](gc_core::gctrace::CycleRecord::gc_cpu_fraction)): Go
    /// 1.19 updates `GCCPUFraction` only at mark termination, so a Go twin's figure is taken
    /// there, and this is the same moment on gc-core's side (0 without a cycle).
    pub gc_cpu_go_last_cycle: f64,
    /// Idle-priority marking ÷ (time since the heap was created × CPUs): what `gc_cpu_go`
    /// leaves out.
    pub gc_cpu_idle: f64,
    /// The longest a stop waited for a mutator to leave its mutation scope, in µs
    /// ([`HeapStats::scope_wait_max`](gc_core::HeapStats::scope_wait_max)).
    pub scope_wait_max_us: u64,
    /// Where the collector's CPU went, in seconds, by class (from
    /// [`Heap::metrics`](gc_core::Heap::metrics)): see [`CPU_CLASSES`].
    pub cpu_s: [f64; CPU_CLASSES.len()],
}

/// The CPU classes [`GcReport::cpu_s`] reports, as (key, metric): marking in the background,
/// in assists and at idle priority, pauses (× CPUs), background sweeping, scavenging
/// (background and in allocations), the rest of the collector threads' time, and the collector
/// threads' own clocks in all (which the background, idle, sweep, background-scavenge and
/// other classes add up to).
pub const CPU_CLASSES: [(&str, &str); 9] = [
    ("cpu_bg_s", "/cpu/classes/gc/mark/dedicated:cpu-seconds"),
    ("cpu_assist_s", "/cpu/classes/gc/mark/assist:cpu-seconds"),
    ("cpu_idle_s", "/cpu/classes/gc/mark/idle:cpu-seconds"),
    ("cpu_pause_s", "/cpu/classes/gc/pause:cpu-seconds"),
    ("cpu_sweep_s", "/gccore/cpu/sweep/background:cpu-seconds"),
    (
        "cpu_scav_bg_s",
        "/cpu/classes/scavenge/background:cpu-seconds",
    ),
    (
        "cpu_scav_assist_s",
        "/cpu/classes/scavenge/assist:cpu-seconds",
    ),
    ("cpu_other_s", "/gccore/cpu/collector-other:cpu-seconds"),
    ("cpu_threads_s", "/gccore/cpu/collector-threads:cpu-seconds"),
];

/// `d` in whole microseconds, rounded to the nearest (tables print pause percentiles rounded;
/// a maximum floored could read below them).
pub fn round_us(d: std::time::Duration) -> u64 {
    ((d.as_nanos() + 500) / 1000) as u64
}

/// The median of `sorted` (the mean of the middle two of an even count, as the lab's; 0 when
/// empty).
fn sorted_median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

impl GcReport {
    /// The pacing figures and the CPU breakdown as `key=value` pairs for a harness's last line.
    pub fn pacing_keys(&self) -> String {
        format!(
            "gc_cpu_go={:.4} gc_cpu_go_last_cycle={:.4} gc_cpu_idle={:.3} peak_over_goal={:.3} median_over_goal={:.3} limited_cycles={} peak_over_goal_paced={:.3} black_share={:.3} mmu_1ms={:.3} mmu_10ms={:.3} mmu_100ms={:.3} scope_wait_max_us={} {}",
            self.gc_cpu_go,
            self.gc_cpu_go_last_cycle,
            self.gc_cpu_idle,
            self.peak_over_goal,
            self.median_over_goal,
            self.limited_cycles,
            self.peak_over_goal_paced,
            self.black_share,
            self.mmu[0],
            self.mmu[1],
            self.mmu[2],
            self.scope_wait_max_us,
            self.cpu_keys()
        )
    }

    /// The CPU breakdown ([`GcReport::cpu_s`]) as `key=value` pairs.
    pub fn cpu_keys(&self) -> String {
        CPU_CLASSES
            .iter()
            .zip(self.cpu_s)
            .map(|((k, _), v)| format!("{k}={v:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Take `heap`'s phase and cycle records (emptying its logs) and read its stats; `None` (a
    /// `--box` run) gives an empty report. Cycles numbered `first_steady_cycle` and up count
    /// for [`GcReport::peak_over_goal`]: the earlier ones happen while the harness builds its
    /// live set, where the heap grows and Go's pacer too lets it pass the goal. Where the
    /// environment variable `pause_log_var` is set, every pause is also printed on stderr with
    /// its cycle and phase.
    pub fn take(
        heap: Option<&gc_core::Heap>,
        pause_log_var: &str,
        first_steady_cycle: u64,
    ) -> GcReport {
        let mut r = GcReport {
            stw: hdrhistogram::Histogram::new(3).unwrap(),
            stw_max_us: 0,
            gc_cycles: 0,
            heap_peak_mib: 0.0,
            assist_ms: 0.0,
            heap_goal_mib: 0.0,
            peak_over_goal: 0.0,
            median_over_goal: 0.0,
            limited_cycles: 0,
            peak_over_goal_paced: 0.0,
            black_share: 0.0,
            mmu: [1.0; 3],
            gc_cpu_go: 0.0,
            gc_cpu_go_last_cycle: 0.0,
            gc_cpu_idle: 0.0,
            scope_wait_max_us: 0,
            cpu_s: [0.0; CPU_CLASSES.len()],
        };
        let Some(heap) = heap else {
            return r;
        };
        let log = std::env::var_os(pause_log_var).is_some();
        let metrics = heap.metrics();
        let f = |n: &str| metrics.f64(n).unwrap_or(0.0);
        let total = f("/cpu/classes/total:cpu-seconds").max(f64::MIN_POSITIVE);
        let idle = f("/cpu/classes/gc/mark/idle:cpu-seconds");
        r.gc_cpu_go = (f("/cpu/classes/gc/total:cpu-seconds") - idle) / total;
        r.gc_cpu_idle = idle / total;
        for (v, (_, name)) in r.cpu_s.iter_mut().zip(CPU_CLASSES) {
            *v = f(name);
        }
        let phases = heap.take_phase_records();
        let cycles = heap.take_cycle_records();
        lab_data::heap(&phases, &cycles);
        r.gc_cpu_go_last_cycle = cycles.last().map_or(0.0, |c| c.gc_cpu_fraction);
        let steady: Vec<_> = cycles
            .iter()
            .filter(|c| c.cycle >= first_steady_cycle)
            .collect();
        let over_goal =
            |c: &&gc_core::gctrace::CycleRecord| c.heap_end as f64 / c.heap_goal.max(1) as f64;
        let mut ratios: Vec<f64> = steady.iter().map(over_goal).collect();
        ratios.sort_by(f64::total_cmp);
        r.peak_over_goal = ratios.last().copied().unwrap_or(0.0);
        r.median_over_goal = sorted_median(&ratios);
        r.limited_cycles = steady.iter().filter(|c| c.limiter_on).count() as u64;
        r.peak_over_goal_paced = steady
            .iter()
            .filter(|c| !c.limiter_on)
            .map(over_goal)
            .fold(0.0, f64::max);
        // Cycles that marked nothing have no share (it was 1.0 for them: nothing reached).
        let mut black: Vec<f64> = steady
            .iter()
            .filter(|c| c.heap_marked > 0)
            .map(|c| 1.0 - c.heap_reached as f64 / c.heap_marked as f64)
            .collect();
        black.sort_by(f64::total_cmp);
        r.black_share = sorted_median(&black);
        if let (Some(first), Some(last)) = (phases.first(), phases.iter().map(|p| p.end()).max()) {
            let include = gc_core::mmu::Include {
                assists: true,
                background: false,
            };
            let busy = gc_core::mmu::busy_intervals(&phases, &cycles, include);
            for (m, ms) in r.mmu.iter_mut().zip([1, 10, 100]) {
                let w = std::time::Duration::from_millis(ms);
                *m = gc_core::mmu::mmu(&busy, first.start, last, w);
            }
        }
        for p in phases {
            if p.phase.is_pause() {
                r.stw.record(round_us(p.duration)).unwrap();
                if log {
                    eprintln!("cycle {} {:?} {:?}", p.cycle, p.phase, p.duration);
                }
            }
        }
        let s = heap.stats();
        // Rounded, as the pauses the percentiles beside it come from are.
        r.stw_max_us = round_us(s.pause_max);
        r.scope_wait_max_us = s.scope_wait_max.as_micros() as u64;
        r.gc_cycles = s.gc_cycles;
        r.heap_peak_mib = s.mapped_bytes as f64 / (1 << 20) as f64;
        r.assist_ms = s.assist_time.as_secs_f64() * 1e3;
        r.heap_goal_mib = s.heap_goal as f64 / (1 << 20) as f64;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gc_cpu_at_the_last_cycle_comes_from_that_cycles_record() {
        assert_eq!(GcReport::take(None, "", 0).gc_cpu_go_last_cycle, 0.0);
        let heap = gc_core::Heap::new(gc_core::Config::default()).unwrap();
        // Something live, so that each cycle marks.
        type Live = gc_core::Rootable!['gc => gc_core::Gc<'gc, [u64; 64]>];
        let mut m: gc_core::Mutator<Live> = heap.mutator(|mc| gc_core::Gc::new(mc, [7; 64]));
        for _ in 0..3 {
            m.mutate(|mc, _| {
                for i in 0..10_000u64 {
                    gc_core::Gc::new(mc, i);
                }
            });
            m.collect();
        }
        // No cycle runs from here on (only allocation would start one): the whole-run figure
        // keeps its GC CPU and gains time, so the report's falls below the last cycle's.
        std::thread::sleep(std::time::Duration::from_millis(100));
        // Every cycle paused, and pauses count × CPUs: the fraction at a cycle's end is positive.
        let r = GcReport::take(Some(&heap), "", 0);
        assert!(r.gc_cycles >= 3);
        assert!(
            r.gc_cpu_go_last_cycle > 0.0 && r.gc_cpu_go_last_cycle <= 1.0,
            "{}",
            r.gc_cpu_go_last_cycle
        );
        // Taken at the end of the last cycle: the figure at the report counts the same GC CPU
        // (nothing ran since) over a longer time, so it is smaller (Go's figure, updated only
        // at mark termination, overstates its run's in the same way).
        assert!(
            r.gc_cpu_go < r.gc_cpu_go_last_cycle * 0.99,
            "at the report {} vs at the last cycle {}: not the cycle record's figure",
            r.gc_cpu_go,
            r.gc_cpu_go_last_cycle
        );
        // Nothing was allocated while these cycles marked (each a `collect` between scopes):
        // nothing allocated black, all of the marked heap reached by tracing.
        assert!(r.black_share < 0.01, "black share {}", r.black_share);
    }
}
