//! Heap figures: counters kept by the collector and the [`HeapStats`] snapshot users read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters updated by the allocator, the sweeper and the collector.
#[derive(Default)]
pub(crate) struct Stats {
    pub objects_freed: AtomicU64,
    pub bytes_freed: AtomicU64,
    pub cycles: AtomicU64,
    pub pauses: AtomicU64,
    pub pause_total_ns: AtomicU64,
    pub pause_max_ns: AtomicU64,
    pub last_pause_ns: AtomicU64,
    pub mark_total_ns: AtomicU64,
    pub cycle_total_ns: AtomicU64,
    pub last_marked_objects: AtomicU64,
    pub last_shared_batches: AtomicU64,
    pub assists: AtomicU64,
    pub assist_bytes: AtomicU64,
    pub assist_ns: AtomicU64,
    /// Times an assist found neither credit nor grey work and waited for background marking.
    pub assist_parks: AtomicU64,
    /// Waits of mutators at a scope's entry for a late cycle start, and their time
    /// (`collector::wait_for_late_start`).
    pub late_start_waits: AtomicU64,
    pub late_start_wait_ns: AtomicU64,
    /// Time stops waited for mutators to leave their scopes: in all, and the longest wait with
    /// the mutator it waited for (`usize::MAX`: none).
    pub scope_wait_total_ns: AtomicU64,
    pub scope_wait_max_ns: AtomicU64,
    pub scope_wait_max_mutator: std::sync::atomic::AtomicUsize,
    /// Time background mark workers spent in mark slices within their share.
    pub bg_mark_ns: AtomicU64,
    /// Time they spent marking beyond it, at idle priority (a CPU was spare).
    pub idle_mark_ns: AtomicU64,
    /// Time the background scavenger spent releasing pages.
    pub scavenge_ns: AtomicU64,
    /// Times the background scavenger looked for free pages to release.
    pub scavenge_looks: AtomicU64,
    /// Time the collector thread spent sweeping in the background (between cycles).
    pub sweep_bg_ns: AtomicU64,
    /// The CPU clocks of the collector's own threads (collector, mark workers, scavenger), each
    /// registered by its thread when it starts: what the collector costs in all, read by
    /// `/gccore/cpu/collector-threads:cpu-seconds`.
    pub collector_clocks: parking_lot::Mutex<Vec<libc::clockid_t>>,
    /// The largest `/gccore/cpu/collector-other:cpu-seconds` read so far, in ns: the threads'
    /// clocks run ahead of the classes booked on them (by a lap: 100 µs and the slice that ends
    /// it), so their difference can dip, and a cumulative metric must not go down. It therefore
    /// overstates by the largest such lag a read has caught.
    pub collector_other_ns: AtomicU64,
    /// Times the GC CPU limiter turned on, and the cycle it last did.
    pub limiter_enabled: AtomicU64,
    pub limiter_last_enabled_cycle: AtomicU64,
    /// Times the heap became stalled by the limiter's fail-fast window.
    pub limiter_stalls: AtomicU64,
    /// Completed cycles started by `collect()`, and the others.
    pub forced_cycles: AtomicU64,
    pub automatic_cycles: AtomicU64,
    /// Pause durations (see [`crate::telemetry::metrics::PAUSE_BUCKETS`]).
    pub pause_hist: PauseHistogram,
}

impl Stats {
    /// A stop waited `wait` for mutators to leave their scopes, longest for `mutator`.
    pub(crate) fn record_scope_wait(&self, wait: Duration, mutator: Option<usize>) {
        let ns = wait.as_nanos() as u64;
        self.scope_wait_total_ns.fetch_add(ns, Ordering::Relaxed);
        // Only the collector thread stops the world, so the maximum and its mutator are
        // written together by one thread.
        if ns > self.scope_wait_max_ns.load(Ordering::Relaxed) {
            self.scope_wait_max_ns.store(ns, Ordering::Relaxed);
            self.scope_wait_max_mutator
                .store(mutator.unwrap_or(usize::MAX), Ordering::Relaxed);
        }
    }

    /// One stop-the-world pause (measured from the stop request).
    pub(crate) fn record_pause(&self, pause: Duration) {
        let ns = pause.as_nanos() as u64;
        self.pauses.fetch_add(1, Ordering::Relaxed);
        self.pause_total_ns.fetch_add(ns, Ordering::Relaxed);
        self.pause_max_ns.fetch_max(ns, Ordering::Relaxed);
        self.last_pause_ns.store(ns, Ordering::Relaxed);
        self.pause_hist.record(ns);
    }

    /// GC CPU time so far as the CPU limiter counts it: assists, background marking within
    /// the workers' share, and each pause × `procs` (as Go counts a stop-the-world pause: no
    /// CPU runs the mutator). Idle-priority marking is left out, as Go's limiter leaves it
    /// out: it used CPU that nothing else wanted.
    pub(crate) fn gc_cpu_ns(&self, procs: usize) -> u64 {
        self.assist_ns.load(Ordering::Relaxed)
            + self.bg_mark_ns.load(Ordering::Relaxed)
            + self.pause_total_ns.load(Ordering::Relaxed) * procs as u64
    }

    /// CPU time the collector's own threads have used so far (their clocks summed).
    pub(crate) fn collector_threads_ns(&self) -> u64 {
        self.collector_clocks
            .lock()
            .iter()
            .map(|&c| crate::util::clock::clock_ns(c))
            .sum()
    }

    /// Time spent marking with the world running: assists, background and idle-priority
    /// marking.
    pub(crate) fn mark_cpu_ns(&self) -> u64 {
        self.assist_ns.load(Ordering::Relaxed)
            + self.bg_mark_ns.load(Ordering::Relaxed)
            + self.idle_mark_ns.load(Ordering::Relaxed)
    }

    /// A completed cycle: its marking time, its time from start to the end of STW 2, and
    /// whether `collect()` asked for it (counted by kind here too, so that the counts by kind
    /// add up to the total but for a cycle ending at the moment they are read).
    pub(crate) fn record_cycle_end(&self, mark: Duration, cycle: Duration, forced: bool) {
        if forced {
            self.forced_cycles.fetch_add(1, Ordering::Relaxed);
        } else {
            self.automatic_cycles.fetch_add(1, Ordering::Relaxed);
        }
        self.cycles.fetch_add(1, Ordering::Relaxed);
        self.mark_total_ns
            .fetch_add(mark.as_nanos() as u64, Ordering::Relaxed);
        self.cycle_total_ns
            .fetch_add(cycle.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// A snapshot of the heap's figures.
///
/// Allocation counts include what mutator caches have handed back: each cache publishes its
/// count whenever it gives up a span, so between cycles the figure lags by at most the objects
/// of the spans currently cached (one per size class and mutator); it is exact after a collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Completed collection cycles.
    pub gc_cycles: u64,
    /// Bytes considered allocated now (Go: `heapLive`).
    pub heap_live: usize,
    /// Live bytes found by the last cycle's mark (Go: `heapMarked`).
    pub heap_marked: usize,
    /// Objects found live by the last cycle.
    pub marked_objects: u64,
    /// Batches of grey objects the last cycle's mark workers handed to each other.
    pub mark_shared_batches: u64,
    /// The heap size the last cycle set as the goal for the next (`usize::MAX` with GOGC=off and
    /// no memory limit).
    pub heap_goal: usize,
    /// `heap_live` at which the next cycle starts (at or below the goal; `usize::MAX` while a
    /// cycle is marking, or with GOGC=off and neither a memory limit nor a live-heap cap: with
    /// one of those, the trigger they set).
    pub heap_trigger: usize,
    /// Bytes of arena pages ever handed out (the high-water mark).
    pub mapped_bytes: usize,
    /// Bytes of arena pages currently in spans (not counting empty spans kept for reuse by
    /// their size class, which count as free).
    pub in_use_bytes: usize,
    /// Objects allocated since the heap was created.
    pub objects_allocated: u64,
    /// Objects freed by sweeping.
    pub objects_freed: u64,
    /// Bytes (slot sizes) freed by sweeping.
    pub bytes_freed: u64,
    /// Stop-the-world pauses (two per concurrent cycle, more when a mark-termination attempt
    /// finds grey objects and marking resumes; one per stop-the-world cycle, more when a stop
    /// finds a scope in a blocking region and restarts the world to wait for it).
    pub pauses: u64,
    /// Total stop-the-world time.
    pub pause_total: Duration,
    /// Longest stop-the-world pause.
    pub pause_max: Duration,
    /// Last stop-the-world pause.
    pub last_pause: Duration,
    /// Total time spent marking.
    pub mark_total: Duration,
    /// Total time of whole cycles (including the sweep-termination sweep).
    pub cycle_total: Duration,
    /// GC percent (`None` = off).
    pub gc_percent: Option<u32>,
    /// Mark assists run by allocating mutators (Go: `gcAssistAlloc`).
    pub assists: u64,
    /// Bytes marked by mark assists.
    pub assist_bytes: u64,
    /// Time mutators spent in mark assists.
    pub assist_time: Duration,
    /// Times an assist found neither background credit nor grey work to pay its debt with, and
    /// waited for background marking (Go: assists parked on the assist queue).
    pub assist_parks: u64,
    /// Times a mutator that allocated past 1.1 × the goal while a requested cycle had not
    /// started waited for that start at its next scope entry (the collector thread was late,
    /// usually kept off its CPU), and the time they waited in all.
    pub late_start_waits: u64,
    /// See `late_start_waits`.
    pub late_start_wait: Duration,
    /// Time stop-the-world pauses waited for mutators to leave their mutation scopes, in all
    /// (included in `pause_total`).
    pub scope_wait_total: Duration,
    /// The longest such wait (included in `pause_max`). A long wait means some mutator's scopes
    /// run long without polling [`Mutation::should_yield`](crate::Mutation::should_yield).
    pub scope_wait_max: Duration,
    /// The mutator the longest wait was for ([`Mutator::id`](crate::Mutator::id)).
    pub scope_wait_max_mutator: Option<usize>,
    /// Live stash handles.
    pub stashed: usize,
    /// Registered weak references not yet cleared.
    pub weak_refs: usize,
}

impl HeapStats {
    /// Objects allocated and not (yet) freed.
    pub fn live_objects(&self) -> u64 {
        self.objects_allocated.saturating_sub(self.objects_freed)
    }
}

/// Pause histogram buckets: `[0, 256 ns)`, then four per power of two from 256 ns to 2^36 ns
/// (about 69 s), then one for longer pauses.
pub const PAUSE_BUCKETS: usize = 2 + (36 - 8) * 4;

/// Pause counts by duration (see [`PAUSE_BUCKETS`]).
pub(crate) struct PauseHistogram([AtomicU64; PAUSE_BUCKETS]);

impl Default for PauseHistogram {
    fn default() -> Self {
        PauseHistogram(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// The bucket of a pause of `ns` nanoseconds.
fn pause_bucket(ns: u64) -> usize {
    if ns < 256 {
        return 0;
    }
    let k = 63 - ns.leading_zeros() as usize;
    if k >= 36 {
        return PAUSE_BUCKETS - 1;
    }
    1 + (k - 8) * 4 + ((ns >> (k - 2)) & 3) as usize
}

/// The lower bound of bucket `i`, in nanoseconds (the last bucket's, 2^36, is the one past
/// the last power of two's quarters).
fn pause_bucket_start(i: usize) -> u64 {
    match i {
        0 => 0,
        i => {
            let (k, sub) = ((i - 1) / 4 + 8, (i - 1) % 4);
            (1u64 << k) + sub as u64 * (1u64 << (k - 2))
        }
    }
}

impl PauseHistogram {
    fn record(&self, ns: u64) {
        self.0[pause_bucket(ns)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> Histogram {
        let mut buckets: Vec<f64> = (0..PAUSE_BUCKETS)
            .map(|i| pause_bucket_start(i) as f64 / 1e9)
            .collect();
        buckets.push(f64::INFINITY);
        Histogram {
            counts: self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            buckets,
        }
    }
}

/// A histogram as `runtime/metrics` gives one (`Float64Histogram`): `counts[i]` values fell in
/// `[buckets[i], buckets[i + 1])`; `buckets` has one more entry than `counts`, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Count per bucket.
    pub counts: Vec<u64>,
    /// Bucket boundaries (seconds); the last is +∞.
    pub buckets: Vec<f64>,
}

impl Histogram {
    /// Total count.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper boundary of the bucket holding quantile `q` (0–1), in seconds: an upper bound
    /// on that quantile (`None` if empty).
    pub fn quantile_upper_bound(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let want = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(self.buckets[i + 1]);
            }
        }
        self.buckets.last().copied()
    }
}

/// A metric's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A count or byte figure.
    Uint64(u64),
    /// A time in seconds or a ratio.
    Float64(f64),
    /// A distribution.
    Histogram(Histogram),
}

/// One metric of a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric's name, as in Go's `runtime/metrics` (`/gc/cycles/total:gc-cycles`), or under
    /// `/gccore/` for figures Go does not have.
    pub name: &'static str,
    /// Its value.
    pub value: Value,
}

/// Every metric a snapshot holds, with what it means (Go's `metrics.All`).
pub const ALL: &[(&str, &str)] = &[
    ("/gc/cycles/total:gc-cycles", "Completed GC cycles."),
    (
        "/gc/cycles/automatic:gc-cycles",
        "Completed cycles started by the trigger.",
    ),
    (
        "/gc/cycles/forced:gc-cycles",
        "Completed cycles started by collect(), request_collect() or free_os_memory().",
    ),
    (
        "/gc/pauses:seconds",
        "Stop-the-world pauses, from the stop request (histogram).",
    ),
    (
        "/gc/heap/goal:bytes",
        "The heap goal (u64::MAX with GOGC=off and no memory limit).",
    ),
    (
        "/gc/heap/live:bytes",
        "Bytes marked live by the last cycle.",
    ),
    ("/gc/heap/allocs:objects", "Objects allocated (cumulative)."),
    (
        "/gc/heap/frees:objects",
        "Objects freed by sweeping (cumulative).",
    ),
    (
        "/gc/heap/frees:bytes",
        "Bytes freed by sweeping (cumulative).",
    ),
    (
        "/gc/heap/objects:objects",
        "Objects allocated and not yet freed.",
    ),
    ("/gc/gogc:percent", "GOGC (u64::MAX when off)."),
    (
        "/gc/gomemlimit:bytes",
        "The soft memory limit (i64::MAX when off, as Go).",
    ),
    (
        "/gc/limiter/last-enabled:gc-cycle",
        "The cycle in which the GC CPU limiter last turned on (0: never).",
    ),
    (
        "/memory/classes/heap/objects:bytes",
        "Bytes of objects allocated and not yet swept free.",
    ),
    (
        "/memory/classes/heap/unused:bytes",
        "Bytes in spans not holding objects.",
    ),
    (
        "/memory/classes/heap/free:bytes",
        "Free pages not returned to the OS (with empty spans kept for reuse by their size class).",
    ),
    (
        "/memory/classes/heap/released:bytes",
        "Free pages returned to the OS.",
    ),
    (
        "/memory/classes/total:bytes",
        "Arena pages ever touched (mapped), released or not.",
    ),
    (
        "/cpu/classes/gc/mark/assist:cpu-seconds",
        "Time in mark assists.",
    ),
    (
        "/cpu/classes/gc/mark/dedicated:cpu-seconds",
        "Time of the background mark workers (gc-core does not split dedicated and fractional).",
    ),
    (
        "/cpu/classes/gc/mark/idle:cpu-seconds",
        "Marking beyond the workers' share while a CPU was spare (Go's idle mark workers).",
    ),
    (
        "/cpu/classes/gc/pause:cpu-seconds",
        "Pause time × the CPUs paced for.",
    ),
    (
        "/cpu/classes/gc/total:cpu-seconds",
        "Assist + background + idle marking + pause CPU.",
    ),
    (
        "/cpu/classes/scavenge/background:cpu-seconds",
        "CPU time of the background scavenger (its thread's clock while it releases pages).",
    ),
    (
        "/cpu/classes/scavenge/assist:cpu-seconds",
        "Time allocations spent releasing pages over the memory limit.",
    ),
    (
        "/cpu/classes/total:cpu-seconds",
        "Wall time since the heap was created × the CPUs paced for.",
    ),
    (
        "/sched/gomaxprocs:threads",
        "The CPUs the heap paces for (Go: GOMAXPROCS).",
    ),
    (
        "/gccore/heap/trigger:bytes",
        "heap_live at which the next cycle starts.",
    ),
    (
        "/gccore/heap/live-now:bytes",
        "Go's heapLive: marked by the last cycle plus allocated since.",
    ),
    (
        "/gccore/memory/mapped-ready:bytes",
        "Mapped and not released (what the memory limit bounds).",
    ),
    (
        "/gccore/cpu/process:cpu-seconds",
        "CPU time of the whole process (all threads).",
    ),
    (
        "/gccore/cpu/sweep/background:cpu-seconds",
        "Background sweeping on the collector thread (not in /cpu/classes/gc/total: Go books its background sweeper as mutator time).",
    ),
    (
        "/gccore/cpu/collector-threads:cpu-seconds",
        "CPU time of the collector's own threads (collector, mark workers, scavenger), from their clocks.",
    ),
    (
        "/gccore/cpu/collector-other:cpu-seconds",
        "collector-threads minus what the classes book on them (background and idle marking, background sweeping and scavenging): cycle control, pause work, mark termination attempts, waits. Never decreases (the largest difference read so far: the classes are booked a lap, about 100 µs, late, so it may overstate by that).",
    ),
    (
        "/gccore/gc/limiter/enabled:bool",
        "1 while the GC CPU limiter is on.",
    ),
    (
        "/gccore/gc/limiter/enabled-count:events",
        "Times the GC CPU limiter turned on.",
    ),
    (
        "/gccore/pacer/cons-mark:ratio",
        "The pacer's cons/mark estimate.",
    ),
    (
        "/gccore/gc/limiter/stalls:events",
        "Times the heap became stalled: the GC CPU limiter stayed on past the pacer's fail-fast window, and allocations needing a new span failed with MemoryLimitStall until it turned off.",
    ),
    (
        "/gccore/gc/limiter/stalled:bool",
        "1 while the heap is stalled by the fail-fast window.",
    ),
    (
        "/gccore/gc/limiter/goal-has-room:bool",
        "1 while the heap goal leaves the live heap room to grow into: a GOGC goal, or a memory limit at least 1/16 above the heap the last cycle reached by tracing. The GC CPU limiter then stops assists only below the goal. 0: the live heap is at or over the memory limit (the death spiral), and with the limiter on the heap overshoots its goal.",
    ),
    (
        "/gccore/gc/ephemerons/rounds:rounds",
        "Ephemeron rounds run (cumulative): passes over the ephemeron tables whose keys were not all marked when they were scanned.",
    ),
    (
        "/gccore/gc/ephemerons/cleared:entries",
        "Ephemeron table entries removed because their key died (cumulative).",
    ),
    (
        "/gccore/gc/ephemerons/indexed:entries",
        "Ephemeron table entries indexed by key (cumulative): the entries with unmarked keys in a cycle that needed more than two ephemeron rounds that marked something (chains through values), whose later rounds look keys up instead of going over the tables.",
    ),
    (
        "/gccore/gc/finalizers/queued:objects",
        "Objects found unreachable and resurrected onto a GcFinalizers queue (cumulative).",
    ),
    (
        "/gccore/gc/finalizers/popped:objects",
        "Queued objects handed back by GcFinalizers::pop (the finalizers the embedder ran; cumulative).",
    ),
    (
        "/gccore/gc/cleanups/run:calls",
        "Cleanups (Gc::add_cleanup) run, including those that panicked (cumulative).",
    ),
    (
        "/gccore/gc/cleanups/pending:calls",
        "Cleanups registered and not yet run: their objects alive, or queued on the cleanup thread.",
    ),
    (
        "/gccore/gc/cleanups/panics:events",
        "Cleanups that panicked (caught; the others still ran).",
    ),
    (
        "/gccore/gc/late-start/waits:events",
        "Times a mutator that allocated past 1.1 × the heap goal, with a cycle due but not started (the collector thread late, usually off its CPU), waited for the start at its next scope entry.",
    ),
    (
        "/gccore/gc/late-start/wait:seconds",
        "Time mutators waited at scope entries for late cycle starts (cumulative).",
    ),
    (
        "/gccore/gc/scope-wait/total:seconds",
        "Time stop-the-world pauses waited for mutators to leave their mutation scopes (cumulative; part of the pauses).",
    ),
    (
        "/gccore/gc/scope-wait/max:seconds",
        "The longest a pause waited for mutators to leave their scopes (HeapStats::scope_wait_max_mutator names the last to leave).",
    ),
    (
        "/gccore/scavenge/looks:calls",
        "Times the background scavenger looked for free pages to release (cumulative): once per 64 KiB released while retained memory is over its goal; where it finds nothing free, again after a wait that doubles up to 1 s unless a cycle's or a sweep's end wakes it.",
    ),
];

/// A snapshot of the heap's metrics, by `runtime/metrics` name (see [`ALL`]); read with
/// [`Heap::metrics`](crate::Heap::metrics).
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// The snapshot of `values`, in the order of [`ALL`].
    pub(crate) fn from_values(values: Vec<Value>) -> Metrics {
        debug_assert_eq!(values.len(), ALL.len());
        Metrics {
            samples: ALL
                .iter()
                .zip(values)
                .map(|(&(name, _), value)| Sample { name, value })
                .collect(),
        }
    }

    /// All samples, in the order of [`ALL`].
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The value of the metric `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.samples
            .iter()
            .find(|s| s.name == name)
            .map(|s| &s.value)
    }

    /// The value of a `Uint64` metric.
    pub fn u64(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            Value::Uint64(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of a `Float64` metric.
    pub fn f64(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Float64(v) => Some(*v),
            _ => None,
        }
    }

    /// The value of a histogram metric.
    pub fn histogram(&self, name: &str) -> Option<&Histogram> {
        match self.get(name)? {
            Value::Histogram(v) => Some(v),
            _ => None,
        }
    }

    /// GC CPU ÷ process CPU between two snapshots (`earlier`, then `self`): the share of the
    /// CPU the program used that went to the collector, as the GC CPU limiter counts it —
    /// assists, background marking within the workers' share, pauses × CPUs (counted on both
    /// sides) — leaving out idle-priority marking, which only used CPU nothing else wanted
    /// (`/cpu/classes/gc/mark/idle:cpu-seconds`; it is in neither the numerator nor the
    /// denominator).
    pub fn gc_cpu_fraction_since(&self, earlier: &Metrics) -> f64 {
        let d = |n: &str| self.f64(n).unwrap_or(0.0) - earlier.f64(n).unwrap_or(0.0);
        let idle = d("/cpu/classes/gc/mark/idle:cpu-seconds");
        let gc = d("/cpu/classes/gc/total:cpu-seconds") - idle;
        let pause = d("/cpu/classes/gc/pause:cpu-seconds");
        let process = d("/gccore/cpu/process:cpu-seconds") - idle;
        if process + pause <= 0.0 {
            return 0.0;
        }
        (gc / (process + pause)).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot holding only the CPU classes `gc_cpu_fraction_since` reads.
    fn cpu(total: f64, idle: f64, pause: f64, process: f64) -> Metrics {
        let samples = [
            ("/cpu/classes/gc/total:cpu-seconds", total),
            ("/cpu/classes/gc/mark/idle:cpu-seconds", idle),
            ("/cpu/classes/gc/pause:cpu-seconds", pause),
            ("/gccore/cpu/process:cpu-seconds", process),
        ];
        Metrics {
            samples: samples
                .into_iter()
                .map(|(name, v)| Sample {
                    name,
                    value: Value::Float64(v),
                })
                .collect(),
        }
    }

    /// GC CPU over process CPU between two snapshots, idle marking on neither side and pauses
    /// (× CPUs) on both; at most 1, and 0 where no CPU was used.
    #[test]
    fn gc_cpu_fraction_leaves_out_idle_marking_and_counts_pauses_on_both_sides() {
        let earlier = cpu(1.0, 0.5, 0.25, 3.0);
        let later = cpu(1.6, 0.6, 0.45, 4.1);
        // GC 0.6 − idle 0.1 = 0.5 over (process 1.1 − idle 0.1) + pause 0.2 = 1.2.
        let f = later.gc_cpu_fraction_since(&earlier);
        assert!((f - 0.5 / 1.2).abs() < 1e-12, "{f}");
        assert_eq!(
            cpu(3.0, 0.0, 0.0, 1.0).gc_cpu_fraction_since(&cpu(0.0, 0.0, 0.0, 0.0)),
            1.0
        );
        assert_eq!(later.gc_cpu_fraction_since(&later), 0.0);
        // Pauses × CPUs may exceed the process's CPU (threads idle in a pause): still a share.
        let f = cpu(0.3, 0.0, 0.2, 0.1).gc_cpu_fraction_since(&cpu(0.0, 0.0, 0.0, 0.0));
        assert!((f - 1.0).abs() < 1e-12, "{f}");
        let f = cpu(0.15, 0.0, 0.2, 0.1).gc_cpu_fraction_since(&cpu(0.0, 0.0, 0.0, 0.0));
        assert!((f - 0.5).abs() < 1e-12, "{f}");
    }

    /// The counters add up what is recorded: pauses (count, total, longest, last, histogram),
    /// scope waits (total, longest and its mutator), cycles by kind with their times, and the
    /// CPU sums the limiter and the metrics read.
    #[test]
    fn stats_add_up_what_is_recorded() {
        let s = Stats::default();
        let us = Duration::from_micros;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for p in [1, 3, 2] {
            s.record_pause(us(p));
        }
        assert_eq!(get(&s.pauses), 3);
        assert_eq!(get(&s.pause_total_ns), 6_000);
        assert_eq!(get(&s.pause_max_ns), 3_000);
        assert_eq!(get(&s.last_pause_ns), 2_000);
        let h = s.pause_hist.read();
        assert_eq!(h.total(), 3);
        assert_eq!(h.counts[pause_bucket(3_000)], 1);

        s.record_scope_wait(us(5), Some(3));
        s.record_scope_wait(us(2), Some(4));
        assert_eq!(get(&s.scope_wait_total_ns), 7_000);
        assert_eq!(get(&s.scope_wait_max_ns), 5_000);
        assert_eq!(s.scope_wait_max_mutator.load(Ordering::Relaxed), 3);
        s.record_scope_wait(us(9), None);
        assert_eq!(get(&s.scope_wait_max_ns), 9_000);
        assert_eq!(s.scope_wait_max_mutator.load(Ordering::Relaxed), usize::MAX);

        s.record_cycle_end(us(10), us(30), true);
        s.record_cycle_end(us(20), us(40), false);
        s.record_cycle_end(us(20), us(40), false);
        assert_eq!(get(&s.cycles), 3);
        assert_eq!((get(&s.forced_cycles), get(&s.automatic_cycles)), (1, 2));
        assert_eq!(get(&s.mark_total_ns), 50_000);
        assert_eq!(get(&s.cycle_total_ns), 110_000);

        s.assist_ns.store(100, Ordering::Relaxed);
        s.bg_mark_ns.store(200, Ordering::Relaxed);
        s.idle_mark_ns.store(400, Ordering::Relaxed);
        // The limiter's sum: assists + background + pauses × 3 CPUs, idle marking left out.
        assert_eq!(s.gc_cpu_ns(3), 100 + 200 + 6_000 * 3);
        assert_eq!(s.mark_cpu_ns(), 700);

        // The collector threads' CPU is their registered clocks summed: here this thread's,
        // twice, read after it has used `before` of CPU.
        #[cfg(not(miri))]
        {
            let clock = crate::util::clock::this_thread_clock().unwrap();
            s.collector_clocks.lock().extend([clock, clock]);
            let before = crate::util::clock::thread_cpu_ns();
            let both = s.collector_threads_ns();
            assert!(
                before > 1 && both >= 2 * before && both < 2 * before + 10_000_000,
                "{both} for 2 × {before}"
            );
        }
    }

    /// Live objects are allocations less frees, never below zero; a snapshot's typed getters
    /// answer only for their own kind of value; a histogram's quantile bound clamps `q` into
    /// 0–1, so the lowest quantile is bounded by the first non-empty bucket.
    #[test]
    fn snapshot_readers() {
        let stats = |objects_allocated, objects_freed| HeapStats {
            objects_allocated,
            objects_freed,
            ..HeapStats::default()
        };
        assert_eq!(stats(10, 4).live_objects(), 6);
        assert_eq!(stats(4, 10).live_objects(), 0);

        let h = Histogram {
            counts: vec![0, 2, 1],
            buckets: vec![0.0, 1.0, 2.0, f64::INFINITY],
        };
        assert_eq!(h.quantile_upper_bound(-1.0), Some(2.0));
        assert_eq!(h.quantile_upper_bound(0.0), Some(2.0));
        assert_eq!(h.quantile_upper_bound(0.67), Some(f64::INFINITY));
        assert_eq!(h.quantile_upper_bound(2.0), Some(f64::INFINITY));
        let empty = Histogram {
            counts: vec![0],
            buckets: vec![0.0, f64::INFINITY],
        };
        assert_eq!(empty.quantile_upper_bound(0.5), None);
        // Unclamped, q = 2 would ask for a second value that the one-value histogram lacks.
        let one = Histogram {
            counts: vec![1, 0],
            buckets: vec![0.0, 1.0, f64::INFINITY],
        };
        assert_eq!(one.quantile_upper_bound(2.0), Some(1.0));

        let m = Metrics {
            samples: vec![
                Sample {
                    name: "/a",
                    value: Value::Uint64(7),
                },
                Sample {
                    name: "/b",
                    value: Value::Float64(0.5),
                },
                Sample {
                    name: "/c",
                    value: Value::Histogram(h.clone()),
                },
            ],
        };
        assert_eq!(
            (m.u64("/a"), m.f64("/a"), m.histogram("/a")),
            (Some(7), None, None)
        );
        assert_eq!(
            (m.u64("/b"), m.f64("/b"), m.histogram("/b")),
            (None, Some(0.5), None)
        );
        assert_eq!(
            (m.u64("/c"), m.f64("/c"), m.histogram("/c")),
            (None, None, Some(&h))
        );
        assert_eq!(m.get("/d"), None);
        assert_eq!(m.samples().len(), 3);
    }

    #[test]
    fn pause_buckets_are_contiguous_and_contain_their_values() {
        for i in 0..PAUSE_BUCKETS - 1 {
            assert!(pause_bucket_start(i) < pause_bucket_start(i + 1), "{i}");
            assert_eq!(pause_bucket(pause_bucket_start(i)), i);
            assert_eq!(pause_bucket(pause_bucket_start(i + 1) - 1), i);
        }
        assert_eq!(pause_bucket(u64::MAX), PAUSE_BUCKETS - 1);
        assert_eq!(pause_bucket(1000), pause_bucket(1023));
        let h = PauseHistogram::default();
        for ns in [100, 10_000, 10_500, 50_000, 2_000_000] {
            h.record(ns);
        }
        let r = h.read();
        assert_eq!(r.total(), 5);
        assert_eq!(r.buckets.len(), r.counts.len() + 1);
        // The median (third of five) is 10.5 µs: its bucket [10240, 12288) ns.
        assert_eq!(r.quantile_upper_bound(0.5), Some(12288.0 / 1e9));
        assert_eq!(
            r.quantile_upper_bound(1.0),
            Some(pause_bucket_start(pause_bucket(2_000_000) + 1) as f64 / 1e9)
        );
    }
}
