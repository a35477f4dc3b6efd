//! Configuration: the `Config` builder and Go's environment spellings.
//!
//! | setting       | builder               | environment          | default |
//! |---------------|-----------------------|----------------------|---------|
//! | GC percent    | [`Config::gc_percent`] | `GOGC=100`, `GOGC=off` (a negative number also means off, as in Go) | 100 |
//! | soft memory limit | [`Config::memory_limit`] | `GOMEMLIMIT=512MiB`, `GOMEMLIMIT=off` (B, KiB, MiB, GiB, TiB; at least 1 MiB) | off |
//! | gctrace       | [`Config::gctrace`]    | `GODEBUG=gctrace=1` (other `GODEBUG` keys are ignored, as Go ignores unknown ones) | off |
//! | gcpacertrace  | [`Config::gcpacertrace`] | `GODEBUG=gcpacertrace=1` (with `gctrace`: `GODEBUG=gctrace=1,gcpacertrace=1`) | off |
//! | live-heap limit | [`Config::max_heap`] | `GCCORE_MAX_HEAP=1GiB`, `off` (units as for `GOMEMLIMIT`; at least 1 MiB) | off |
//! | arena size    | [`Config::arena_bytes`] | `GCCORE_ARENA=64GiB` (B, KiB, MiB, GiB, TiB) | 64 GiB (16 MiB under Miri) |
//! | verify mode   | [`Config::verify`]     | `GCCORE_VERIFY=1` (0/1, true/false, on/off, yes/no, any case) | off |
//! | mark workers (stop-the-world collector) | [`Config::mark_workers`] | `GCCORE_MARK_WORKERS=2` (1–64) | one per core, ≤ 8 |
//! | concurrent marking | [`Config::concurrent`] | `GCCORE_CONCURRENT=1` (0/1, true/false, on/off, yes/no, any case) | on |
//! | span-local marking | [`Config::span_marking`] | `GCCORE_SPAN_MARKING=1` (0/1, true/false, on/off, yes/no, any case) | off |
//! | pacer knobs   | [`Config::pacer`]      | `GCCORE_PACER=max_overshoot=1.05,fail_fast=2s` (the keys of [`PACER_KEYS`](crate::pacer::PACER_KEYS)) | gc-core's pacer |
//! | pacer trace   | [`Config::pacer_trace`] | `GCCORE_PACERTRACE=/tmp/run.csv` (empty or `off`: off) | off |
//!
//! Unlike Go, which silently falls back to 100 on `GOGC=abc`, a value that does not parse (or
//! is not valid UTF-8) is an error naming the variable and the accepted forms. So is an empty
//! value (Go reads `GOGC=` as unset): read as a default it would hide a script's unset variable,
//! and read as false it would turn `GCCORE_CONCURRENT` off. Two take an empty value, as their
//! forms say: `GODEBUG`, a list of settings (empty: none, as in Go), and `GCCORE_PACERTRACE`
//! (empty: off).

use std::path::PathBuf;

use crate::util::error::ConfigError;
use crate::util::pacer_config::PacerConfig;

/// Default arena reservation.
#[cfg(not(miri))]
pub const DEFAULT_ARENA_BYTES: usize = 64 << 30;
/// Default arena reservation (small under Miri, which backs it with real allocations).
#[cfg(miri)]
pub const DEFAULT_ARENA_BYTES: usize = 16 << 20;

/// Heap configuration. Build with [`Config::default`] or [`Config::from_env`], then adjust.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub(crate) gc_percent: Option<u32>,
    pub(crate) arena_bytes: usize,
    pub(crate) verify: bool,
    pub(crate) mark_workers: usize,
    pub(crate) concurrent: bool,
    pub(crate) span_marking: bool,
    /// CPUs the background-worker sizing assumes (testing override; `None`: the machine's).
    pub(crate) procs: Option<usize>,
    pub(crate) memory_limit: Option<usize>,
    pub(crate) gctrace: bool,
    pub(crate) pacertrace: bool,
    pub(crate) max_heap: Option<usize>,
    pub(crate) pacer: PacerConfig,
    pub(crate) pacer_trace: Option<PathBuf>,
}

/// The smallest soft memory limit accepted (`GOMEMLIMIT`): 1 MiB, the limit-based goal's
/// headroom. (Go accepts anything, down to 0; a limit that small only means back-to-back cycles.)
pub const MIN_MEMORY_LIMIT: usize = 1 << 20;

/// The smallest arena reservation a heap accepts ([`Config::arena_bytes`], `GCCORE_ARENA`):
/// 128 KiB, room for the largest small-object span (`gc_core::layout::MIN_RESERVATION`, the
/// same figure, is where the arena checks it).
pub const MIN_ARENA_BYTES: usize = 128 << 10;

/// The most CPUs [`Config::debug_cpus`] sizes the mark workers for: 64 background workers.
#[doc(hidden)]
pub const DEBUG_CPUS_MAX: usize = 256;

impl Default for Config {
    fn default() -> Self {
        Config {
            gc_percent: Some(100),
            arena_bytes: DEFAULT_ARENA_BYTES,
            verify: false,
            mark_workers: default_mark_workers(),
            concurrent: true,
            span_marking: false,
            procs: None,
            memory_limit: None,
            gctrace: false,
            pacertrace: false,
            max_heap: None,
            pacer: PacerConfig::default(),
            pacer_trace: None,
        }
    }
}

/// One mark worker per core (at most 8); one under Miri.
fn default_mark_workers() -> usize {
    if cfg!(miri) {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    }
}

/// The environment variables [`Config::from_env`] reads.
const ENV_VARS: [&str; 11] = [
    "GOGC",
    "GOMEMLIMIT",
    "GODEBUG",
    "GCCORE_MAX_HEAP",
    "GCCORE_ARENA",
    "GCCORE_VERIFY",
    "GCCORE_CONCURRENT",
    "GCCORE_SPAN_MARKING",
    "GCCORE_PACER",
    "GCCORE_PACERTRACE",
    "GCCORE_MARK_WORKERS",
];

impl Config {
    /// The default configuration with the variables of the module table (`GOGC`, `GOMEMLIMIT`,
    /// `GODEBUG`, `GCCORE_*`) applied from the environment. Unset variables keep their defaults; malformed ones are errors.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_os_lookup(|k| std::env::var_os(k))
    }

    /// [`Config::from_env`] over any lookup of raw values (the environment's, or a map in
    /// tests): a value that is not valid UTF-8 is malformed too (not unset), and the first such
    /// is the error, naming its variable.
    fn from_os_lookup(
        get: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Config, ConfigError> {
        let bad = std::cell::RefCell::new(None);
        let config = Config::default().apply_env(|k| match get(k)?.into_string() {
            Ok(v) => Some(v),
            Err(v) => {
                bad.borrow_mut()
                    .get_or_insert((k.to_string(), v.to_string_lossy().into_owned()));
                None
            }
        });
        match bad.into_inner() {
            Some((k, value)) => Err(ConfigError {
                var: ENV_VARS
                    .iter()
                    .copied()
                    .find(|n| *n == k)
                    .unwrap_or("environment"),
                value,
                expected: "valid UTF-8",
            }),
            None => config,
        }
    }

    /// Apply settings from a lookup function (the environment, or a map in tests).
    pub fn apply_env(
        mut self,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if let Some(v) = get("GOGC") {
            self.gc_percent = parse_gogc(&v)?;
        }
        if let Some(v) = get("GOMEMLIMIT") {
            self.memory_limit = parse_memory_limit(&v)?;
        }
        if let Some(v) = get("GODEBUG") {
            if let Some(on) = parse_godebug(&v, "gctrace")? {
                self.gctrace = on;
            }
            if let Some(on) = parse_godebug(&v, "gcpacertrace")? {
                self.pacertrace = on;
            }
        }
        if let Some(v) = get("GCCORE_MAX_HEAP") {
            self.max_heap = parse_max_heap(&v)?;
        }
        if let Some(v) = get("GCCORE_ARENA") {
            self.arena_bytes = parse_arena(&v)?;
        }
        if let Some(v) = get("GCCORE_VERIFY") {
            self.verify = parse_bool("GCCORE_VERIFY", &v)?;
        }
        if let Some(v) = get("GCCORE_CONCURRENT") {
            self.concurrent = parse_bool("GCCORE_CONCURRENT", &v)?;
        }
        if let Some(v) = get("GCCORE_SPAN_MARKING") {
            self.span_marking = parse_bool("GCCORE_SPAN_MARKING", &v)?;
        }
        if let Some(v) = get("GCCORE_PACER") {
            self.pacer = PacerConfig::from_env_value(&v)?;
        }
        if let Some(v) = get("GCCORE_PACERTRACE") {
            self.pacer_trace = match v.trim() {
                "" => None,
                off if is_off(off) => None,
                path => Some(PathBuf::from(path)),
            };
        }
        if let Some(v) = get("GCCORE_MARK_WORKERS") {
            self.mark_workers = match v.trim().parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => n,
                _ => {
                    return Err(ConfigError {
                        var: "GCCORE_MARK_WORKERS",
                        value: v,
                        expected: "an integer from 1 to 64",
                    });
                }
            };
        }
        Ok(self)
    }

    /// GC percent: collect when the heap grows by this percentage over the live heap of the
    /// last cycle. `None` turns proportional collection off (`GOGC=off`): cycles then run only
    /// when asked for (`collect()`, `request_collect()`, `free_os_memory()`), when a memory
    /// limit needs them, or when the heap reaches the live-heap cap (`max_heap`).
    pub fn gc_percent(mut self, percent: Option<u32>) -> Self {
        self.gc_percent = percent;
        self
    }

    /// The soft memory limit (Go: `GOMEMLIMIT`, `debug.SetMemoryLimit`): the heap goal is
    /// capped so that the memory the heap has mapped and not returned to the OS stays under
    /// `bytes`, and free pages are returned to the OS to keep it there. It is *soft*: a live
    /// heap larger than the limit is not an error; the collector then runs back to back, its
    /// CPU capped at about half by the GC CPU limiter. `None`: no limit. Values below
    /// [`MIN_MEMORY_LIMIT`] are raised to it.
    pub fn memory_limit(mut self, bytes: Option<usize>) -> Self {
        self.memory_limit = bytes.map(|b| b.max(MIN_MEMORY_LIMIT));
        self
    }

    /// Print one line per cycle to stderr in Go's `GODEBUG=gctrace=1` format (see
    /// [`CycleRecord::gctrace_line`](crate::telemetry::gctrace::CycleRecord::gctrace_line)).
    pub fn gctrace(mut self, on: bool) -> Self {
        self.gctrace = on;
        self
    }

    /// Print the pacer's view of each concurrent cycle to stderr, as Go's
    /// `GODEBUG=gcpacertrace=1` does: utilisation, scan work done and expected, heap at trigger
    /// and at the end, distance to the goal, cons/mark. As in Go, a cycle that taught the pacer
    /// nothing (it allocated nothing after its trigger, or its assists took the CPUs) prints no
    /// line, and neither do stop-the-world cycles (`Config::concurrent(false)`), which have no
    /// cons/mark to estimate.
    pub fn gcpacertrace(mut self, on: bool) -> Self {
        self.pacertrace = on;
        self
    }

    /// A hard limit on the *live* heap: once a completed cycle has found more than `bytes`
    /// live, allocations that need a new span fail with
    /// [`AllocError::HeapLimit`](crate::AllocError::HeapLimit) until a cycle finds less (the
    /// first refusal starts one, so dropping data is enough: no `collect()` is needed).
    /// This is how a VM gets a clean "out of memory" instead of growing without bound. `None`
    /// (the default): no limit beyond the arena reservation. Values below
    /// [`MIN_MEMORY_LIMIT`] (1 MiB) are raised to it, as for [`Config::memory_limit`].
    ///
    /// "Live" is what the last cycle reached by tracing from the roots: the data live when it
    /// began. What the mutators allocated while it marked (allocated black, much of it
    /// garbage) counts from the next cycle, if it is still live then, so a refusal comes at
    /// most a cycle late and never for garbage.
    pub fn max_heap(mut self, bytes: Option<usize>) -> Self {
        self.max_heap = bytes.map(|b| b.max(MIN_MEMORY_LIMIT));
        self
    }

    /// Size of the virtual reservation backing the heap (rounded down to 8 KiB pages). This is
    /// the hard limit on heap memory. Below [`MIN_ARENA_BYTES`] (128 KiB), `Heap::new` fails
    /// with [`HeapError::ReservationTooSmall`](crate::HeapError::ReservationTooSmall).
    pub fn arena_bytes(mut self, bytes: usize) -> Self {
        self.arena_bytes = bytes;
        self
    }

    /// Verify mode: poison freed slots and check the heap after every cycle (slow; for tests).
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Threads that mark while the world is stopped (the collector thread plus `n - 1` helpers);
    /// at least 1. Default: one per core, at most 8. Only the stop-the-world collector
    /// (`concurrent(false)`) uses it: concurrent marking takes 25% of the CPUs, as Go's does
    /// (its background workers are sized from the CPU count).
    pub fn mark_workers(mut self, n: usize) -> Self {
        self.mark_workers = n.clamp(1, 64);
        self
    }

    /// Concurrent marking (the default): a cycle stops the world only briefly at its start
    /// (STW 1) and end (STW 2) and marks while the mutators run. `false` selects the
    /// stop-the-world collector, which marks in parallel (see [`Config::mark_workers`]) with the
    /// world stopped: shorter cycles, pauses proportional to the live heap.
    pub fn concurrent(mut self, on: bool) -> Self {
        self.concurrent = on;
        self
    }

    /// Span-local marking (in the spirit of Go's "Green Tea" marker): marking an object of a
    /// small span queues the span instead of the object, and a marker scans every object greyed
    /// in a span at once, in address order. It pays where the marker would otherwise chase
    /// pointers across a heap whose objects are not in the order they are reached in (a
    /// long-lived heap mutated in random order: marking a shuffled tree of small nodes is 2–5×
    /// faster); where the heap is reached in the order it was allocated in (trees built
    /// recursively and marked soon after, an interpreter's freshly built objects) the ordinary
    /// depth-first marker follows memory already, and span-local marking was measured up to
    /// 2× slower per object. Off by default; see `docs/benchmarks.md`.
    pub fn span_marking(mut self, on: bool) -> Self {
        self.span_marking = on;
        self
    }

    /// The pacer's knobs: trigger bounds, cons/mark smoothing, overshoot, the GC CPU limiter's
    /// bucket and fail-fast window, the goal-sizing policy (see [`PacerConfig`]). The
    /// stop-the-world collector (`concurrent(false)`) starts each cycle at the goal and has no
    /// assists or limiter, so of these it uses only the goal's inputs; the heap refuses the two
    /// that would change its behaviour silently (`fail_fast`, `sqrt`).
    /// [`Heap::new`](crate::Heap::new) refuses knobs that do not pass
    /// [`PacerConfig::validate`] with [`HeapError::Config`](crate::HeapError::Config)
    /// (`GCCORE_PACER` is checked the same way by [`Config::from_env`]).
    pub fn pacer(mut self, pacer: PacerConfig) -> Self {
        self.pacer = pacer;
        self
    }

    /// Write the pacer's inputs and decisions, one CSV line per cycle, to `path` (created or
    /// truncated when the heap is made; `None`: off). The pacer lab replays such a trace under
    /// other settings; `docs/pacer.md` lists the columns. If the file cannot be created the
    /// heap says so on stderr once and runs without it.
    pub fn pacer_trace(mut self, path: Option<PathBuf>) -> Self {
        self.pacer_trace = path;
        self
    }

    /// Testing: size the background mark workers as if the machine had `n` CPUs (they are 25%
    /// of the CPUs: see [`crate::pacer::worker_shares`]), so that several workers can be exercised
    /// on a small machine. From 1 to [`DEBUG_CPUS_MAX`] (a larger `n` would spawn a mark
    /// worker per 4 of them, or overflow the collector's sizing).
    #[doc(hidden)]
    pub fn debug_cpus(mut self, n: usize) -> Self {
        self.procs = Some(n.clamp(1, DEBUG_CPUS_MAX));
        self
    }

    // The getters take the `get_` prefix because the builder methods own the plain names (the
    // convention of `std::process::Command`: `arg` / `get_args`, `current_dir` /
    // `get_current_dir`).

    /// The pacer's knobs.
    pub fn get_pacer(&self) -> &PacerConfig {
        &self.pacer
    }

    /// Where the pacer trace goes (`None`: off).
    pub fn get_pacer_trace(&self) -> Option<&std::path::Path> {
        self.pacer_trace.as_deref()
    }

    /// The configured GC percent (`None`: off).
    pub fn get_gc_percent(&self) -> Option<u32> {
        self.gc_percent
    }

    /// The configured soft memory limit.
    pub fn get_memory_limit(&self) -> Option<usize> {
        self.memory_limit
    }

    /// Whether gctrace is on.
    pub fn get_gctrace(&self) -> bool {
        self.gctrace
    }

    /// Whether gcpacertrace is on.
    pub fn get_gcpacertrace(&self) -> bool {
        self.pacertrace
    }

    /// The configured live-heap limit.
    pub fn get_max_heap(&self) -> Option<usize> {
        self.max_heap
    }

    /// The arena reservation in bytes.
    pub fn get_arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// Whether verify mode is on.
    pub fn get_verify(&self) -> bool {
        self.verify
    }

    /// Mark workers of stop-the-world marking.
    pub fn get_mark_workers(&self) -> usize {
        self.mark_workers
    }

    /// Whether marking is concurrent.
    pub fn get_concurrent(&self) -> bool {
        self.concurrent
    }

    /// Whether marking is span-local.
    pub fn get_span_marking(&self) -> bool {
        self.span_marking
    }
}

/// Parse a `GOMEMLIMIT` value: `off`, or a byte count with Go's units (B, KiB, MiB, GiB, TiB) of
/// at least [`MIN_MEMORY_LIMIT`]. A count from `i64::MAX` (Go's `math.MaxInt64`, its "no
/// limit") up to what a `u64` holds also means off; a larger one is an error, as in Go.
pub fn parse_memory_limit(v: &str) -> Result<Option<usize>, ConfigError> {
    let limit = parse_limit(
        "GOMEMLIMIT",
        "a byte count of at least 1MiB with an optional unit B, KiB, MiB, GiB or TiB (e.g. \
         512MiB), or \"off\"",
        v,
    )?;
    Ok(limit.filter(|&b| (b as u64) < i64::MAX as u64))
}

/// `GCCORE_ARENA`: a byte count of at least the smallest reservation a heap can work in (a
/// smaller one would only fail later, in `Heap::new`, with an error that does not name the
/// variable).
fn parse_arena(v: &str) -> Result<usize, ConfigError> {
    match parse_bytes("GCCORE_ARENA", v) {
        Ok(b) if b >= MIN_ARENA_BYTES => Ok(b),
        _ => Err(ConfigError {
            var: "GCCORE_ARENA",
            value: v.to_string(),
            expected: "a byte count of at least 128KiB with an optional unit B, KiB, MiB, GiB or \
                       TiB (e.g. 64GiB)",
        }),
    }
}

/// Parse a `GCCORE_MAX_HEAP` value: `off`, or a byte count (units as for `GOMEMLIMIT`) of at
/// least [`MIN_MEMORY_LIMIT`].
fn parse_max_heap(v: &str) -> Result<Option<usize>, ConfigError> {
    parse_limit(
        "GCCORE_MAX_HEAP",
        "a byte count of at least 1MiB with an optional unit B, KiB, MiB, GiB or TiB (e.g. \
         1GiB), or \"off\"",
        v,
    )
}

/// A limit's value for the variable `var`: `off` (any case), or a byte count of at least
/// [`MIN_MEMORY_LIMIT`]; otherwise an error naming `expected`.
fn parse_limit(
    var: &'static str,
    expected: &'static str,
    v: &str,
) -> Result<Option<usize>, ConfigError> {
    if is_off(v) {
        return Ok(None);
    }
    match parse_bytes(var, v) {
        Ok(b) if b >= MIN_MEMORY_LIMIT => Ok(Some(b)),
        _ => Err(ConfigError {
            var,
            value: v.to_string(),
            expected,
        }),
    }
}

/// The setting `key` (`gctrace`, `gcpacertrace`) of a `GODEBUG` value (`key=value` pairs
/// separated by commas; other keys ignored): `Some(n > 0)` if present.
pub fn parse_godebug(v: &str, key: &str) -> Result<Option<bool>, ConfigError> {
    let mut out = None;
    for kv in v.split(',') {
        if let Some(val) = kv
            .trim()
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
        {
            out = Some(match val.parse::<u32>() {
                Ok(n) => n > 0,
                Err(_) => {
                    return Err(ConfigError {
                        var: "GODEBUG",
                        value: v.to_string(),
                        expected: "comma-separated key=value pairs with gctrace and gcpacertrace \
                                   0 or 1 (e.g. gctrace=1)",
                    });
                }
            });
        }
    }
    Ok(out)
}

/// Whether a setting's value is `off`, in any case (`GOGC`, `GOMEMLIMIT`, `GCCORE_MAX_HEAP`).
fn is_off(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("off")
}

/// Parse a `GOGC` value: `off`, or a decimal integer that fits an `i64` (negative means off, as
/// in Go; values above `u32::MAX` are taken as `u32::MAX`, a goal no heap reaches).
pub fn parse_gogc(v: &str) -> Result<Option<u32>, ConfigError> {
    if is_off(v) {
        return Ok(None);
    }
    let t = v.trim();
    match t.parse::<i64>() {
        Ok(n) if n < 0 => Ok(None),
        Ok(n) => Ok(Some(n.min(u32::MAX as i64) as u32)),
        Err(_) => Err(ConfigError {
            var: "GOGC",
            value: v.to_string(),
            expected: "a non-negative integer percentage (e.g. 100) or \"off\"",
        }),
    }
}

/// Parse a byte size with Go's units: `123`, `123B`, `64KiB`, `512MiB`, `1GiB`, `2TiB`.
pub fn parse_bytes(var: &'static str, v: &str) -> Result<usize, ConfigError> {
    let err = || ConfigError {
        var,
        value: v.to_string(),
        expected: "a byte count with an optional unit B, KiB, MiB, GiB or TiB (e.g. 512MiB)",
    };
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| err())?;
    let shift = match unit {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return Err(err()),
    };
    n.checked_mul(1u64 << shift)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(err)
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        // Empty is an error, as it is for GOGC: `GCCORE_CONCURRENT=` read as false would select
        // stop-the-world marking without a word.
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(ConfigError {
            var,
            value: v.to_string(),
            expected: "1/0, true/false, on/off or yes/no",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::default()
            .apply_env(move |k| pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone()))
    }

    /// Each builder sets its own setting, its getter reads it back, and every other setting is
    /// left as it was: each is applied to the default, and the result compared whole with the
    /// default changed in that one field.
    #[test]
    fn each_builder_sets_what_its_getter_reads_and_nothing_else() {
        let d = Config::default();
        let pacer = PacerConfig {
            max_overshoot: 1.3,
            ..PacerConfig::default()
        };
        let trace = PathBuf::from("pacer.trace");
        let mb = 64 << 20;
        // One line a setting: the builder call, the field it must change (to the same value),
        // and what its getter must read.
        macro_rules! check {
            ($set:ident($v:expr); $field:ident; |$c:ident| $reads:expr) => {{
                let what = stringify!($set($v));
                let built = d.clone().$set($v);
                let $c = &built;
                assert!($reads, "{what}: the getter does not read what was set");
                let expected = Config {
                    $field: $v,
                    ..d.clone()
                };
                assert_eq!(built, expected, "{what}");
                assert_ne!(
                    built, d,
                    "{what}: the premise: a setting other than the default"
                );
            }};
        }
        check!(gc_percent(Some(37)); gc_percent; |c| c.get_gc_percent() == Some(37));
        check!(gc_percent(None); gc_percent; |c| c.get_gc_percent().is_none());
        check!(memory_limit(Some(mb)); memory_limit; |c| c.get_memory_limit() == Some(mb));
        check!(max_heap(Some(mb)); max_heap; |c| c.get_max_heap() == Some(mb));
        check!(gctrace(true); gctrace; |c| c.get_gctrace());
        check!(gcpacertrace(true); pacertrace; |c| c.get_gcpacertrace());
        check!(arena_bytes(mb); arena_bytes; |c| c.get_arena_bytes() == mb);
        check!(verify(true); verify; |c| c.get_verify());
        check!(mark_workers(13); mark_workers; |c| c.get_mark_workers() == 13);
        check!(concurrent(false); concurrent; |c| !c.get_concurrent());
        check!(span_marking(true); span_marking; |c| c.get_span_marking());
        check!(pacer(pacer.clone()); pacer; |c| *c.get_pacer() == pacer);
        check!(pacer_trace(Some(trace.clone())); pacer_trace; |c| {
            c.get_pacer_trace() == Some(trace.as_path())
        });
        // The defaults the getters report: GOGC 100, concurrent marking, no traces, no limits,
        // and one mark worker per CPU, at most eight (one under Miri).
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(d.get_gc_percent(), Some(100));
        assert!(d.get_concurrent() && !d.get_verify() && !d.get_span_marking());
        assert!(!d.get_gctrace() && !d.get_gcpacertrace() && d.get_pacer_trace().is_none());
        assert_eq!((d.get_memory_limit(), d.get_max_heap()), (None, None));
        let workers = if cfg!(miri) { 1 } else { cpus.min(8) };
        assert_eq!(d.get_mark_workers(), workers);
        assert_eq!(d.get_arena_bytes(), DEFAULT_ARENA_BYTES);
    }

    /// A value that is not valid UTF-8 is an error naming its variable (here not the first one
    /// read), with the value shown as far as it can be; valid values apply as from the
    /// environment, and an empty lookup is the default.
    #[test]
    fn a_raw_value_that_is_not_utf8_is_an_error_naming_its_variable() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let e = Config::from_os_lookup(|k| match k {
            "GOGC" => Some(OsString::from("50")),
            "GCCORE_MAX_HEAP" => Some(OsString::from_vec(b"64MiB\xff".to_vec())),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(e.var, "GCCORE_MAX_HEAP");
        assert_eq!(e.expected, "valid UTF-8");
        assert!(e.value.starts_with("64MiB"), "{}", e.value);
        let c = Config::from_os_lookup(|k| (k == "GOGC").then(|| OsString::from("50"))).unwrap();
        assert_eq!(c, Config::default().gc_percent(Some(50)));
        assert_eq!(Config::from_os_lookup(|_| None).unwrap(), Config::default());
    }

    /// The testing CPU count stays within what the collector sizes its workers for.
    #[test]
    fn debug_cpus_is_clamped() {
        assert_eq!(Config::default().debug_cpus(0).procs, Some(1));
        assert_eq!(Config::default().debug_cpus(12).procs, Some(12));
        assert_eq!(
            Config::default().debug_cpus(usize::MAX).procs,
            Some(DEBUG_CPUS_MAX)
        );
    }

    #[test]
    fn gogc_spellings() {
        assert_eq!(parse_gogc("100"), Ok(Some(100)));
        assert_eq!(parse_gogc("50"), Ok(Some(50)));
        assert_eq!(parse_gogc("0"), Ok(Some(0)));
        assert_eq!(parse_gogc("off"), Ok(None));
        assert_eq!(parse_gogc("OFF"), Ok(None));
        assert_eq!(parse_gogc("-1"), Ok(None));
        // Past `u32::MAX`: taken as `u32::MAX` (a goal no heap reaches), not wrapped (2³² would
        // be GOGC=0, cycles back to back).
        assert_eq!(parse_gogc("4294967295"), Ok(Some(u32::MAX)));
        assert_eq!(parse_gogc("4294967296"), Ok(Some(u32::MAX)));
        assert_eq!(parse_gogc("5000000000"), Ok(Some(u32::MAX)));
        for bad in ["abc", "", "10%", "-5x", "1e3"] {
            let e = parse_gogc(bad).unwrap_err();
            assert_eq!(e.var, "GOGC");
            assert!(e.to_string().contains("GOGC"), "{e}");
            assert!(e.to_string().contains("off"), "{e}");
        }
    }

    #[test]
    fn gomemlimit_spellings() {
        assert_eq!(parse_memory_limit("512MiB"), Ok(Some(512 << 20)));
        assert_eq!(parse_memory_limit("1GiB"), Ok(Some(1 << 30)));
        assert_eq!(parse_memory_limit("123456789"), Ok(Some(123456789)));
        assert_eq!(parse_memory_limit("123456789B"), Ok(Some(123456789)));
        assert_eq!(parse_memory_limit("2048KiB"), Ok(Some(2 << 20)));
        assert_eq!(parse_memory_limit("1TiB"), Ok(Some(1 << 40)));
        assert_eq!(parse_memory_limit("off"), Ok(None));
        assert_eq!(
            parse_memory_limit("OFF"),
            Ok(None),
            "as GOGC=OFF is accepted"
        );
        assert_eq!(parse_memory_limit("9223372036854775807"), Ok(None));
        for bad in [
            "12XB", "", "MiB", "1.5GiB", "-1", "512 MB", "512mb", "100", "1023KiB",
        ] {
            let e = parse_memory_limit(bad).unwrap_err();
            assert_eq!(e.var, "GOMEMLIMIT", "{bad}");
            let msg = e.to_string();
            assert!(
                msg.contains("GOMEMLIMIT") && msg.contains("MiB") && msg.contains("off"),
                "{msg}"
            );
        }
    }

    #[test]
    fn godebug_gctrace() {
        let g = |v| parse_godebug(v, "gctrace");
        assert_eq!(g("gctrace=1"), Ok(Some(true)));
        assert_eq!(g("gctrace=0"), Ok(Some(false)));
        assert_eq!(g("madvdontneed=1,gctrace=2"), Ok(Some(true)));
        assert_eq!(g("madvdontneed=1"), Ok(None));
        assert_eq!(g("gcpacertrace=1"), Ok(None));
        assert_eq!(g(""), Ok(None));
        assert_eq!(
            parse_godebug("gctrace=1,gcpacertrace=1", "gcpacertrace"),
            Ok(Some(true))
        );
        let e = g("gctrace=yes").unwrap_err();
        assert_eq!(e.var, "GODEBUG");
        assert!(e.to_string().contains("gctrace=1"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("X", "123"), Ok(123));
        assert_eq!(parse_bytes("X", "123B"), Ok(123));
        assert_eq!(parse_bytes("X", "64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("X", "512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("X", "1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("X", "2TiB"), Ok(2usize << 40));
        for bad in ["12XB", "MiB", "1.5GiB", "-1", "99999999999999TiB"] {
            assert!(parse_bytes("X", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_variables_read_are_the_ones_listed() {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::default()
            .apply_env(|k| {
                asked.borrow_mut().push(k.to_string());
                None
            })
            .unwrap();
        assert_eq!(asked.into_inner(), ENV_VARS);
    }

    #[test]
    fn pacer_trace_off_in_any_case() {
        for v in ["", " off ", "OFF", "Off"] {
            assert_eq!(env(&[("GCCORE_PACERTRACE", v)]).unwrap().pacer_trace, None);
        }
        assert_eq!(
            env(&[("GCCORE_PACERTRACE", "/tmp/x.csv")])
                .unwrap()
                .pacer_trace,
            Some(PathBuf::from("/tmp/x.csv"))
        );
    }

    #[test]
    fn from_env_applies_and_rejects() {
        let c = env(&[("GOGC", "off"), ("GCCORE_VERIFY", "1")]).unwrap();
        assert_eq!(c.gc_percent, None);
        assert!(c.verify);
        let c = env(&[("GCCORE_ARENA", "1GiB")]).unwrap();
        assert_eq!(c.arena_bytes, 1 << 30);
        // Below the smallest reservation: refused here, naming the variable.
        for small in ["0", "64KiB", "131071"] {
            let e = env(&[("GCCORE_ARENA", small)]).unwrap_err();
            assert_eq!(e.var, "GCCORE_ARENA");
            assert!(e.expected.contains("at least 128KiB"), "{e}");
        }
        assert_eq!(
            env(&[("GCCORE_ARENA", "128KiB")]).unwrap().arena_bytes,
            MIN_ARENA_BYTES
        );
        assert_eq!(c.gc_percent, Some(100));
        let c = env(&[
            ("GOMEMLIMIT", "256MiB"),
            ("GODEBUG", "gctrace=1"),
            ("GCCORE_MAX_HEAP", "1GiB"),
        ])
        .unwrap();
        assert_eq!(c.memory_limit, Some(256 << 20));
        assert!(c.gctrace);
        assert_eq!(c.max_heap, Some(1 << 30));
        assert_eq!(
            env(&[("GOMEMLIMIT", "12XB")]).unwrap_err().var,
            "GOMEMLIMIT"
        );
        assert_eq!(env(&[("GOGC", "-5x")]).unwrap_err().var, "GOGC");
        assert_eq!(
            env(&[("GCCORE_MAX_HEAP", "lots")]).unwrap_err().var,
            "GCCORE_MAX_HEAP"
        );
        assert_eq!(
            Config::default().memory_limit(Some(5)).memory_limit,
            Some(MIN_MEMORY_LIMIT)
        );
        let e = env(&[("GOGC", "abc")]).unwrap_err();
        assert_eq!(e.var, "GOGC");
        assert!(env(&[("GCCORE_VERIFY", "maybe")]).is_err());
        // Empty is an error, as for GOGC: read as false it would turn concurrent marking off.
        let e = env(&[("GCCORE_PACER", " ")]).unwrap_err();
        assert_eq!(e.var, "GCCORE_PACER");
        let e = env(&[("GCCORE_CONCURRENT", "")]).unwrap_err();
        assert_eq!(e.var, "GCCORE_CONCURRENT");
        assert!(env(&[("GCCORE_CONCURRENT", " on ")]).unwrap().concurrent);
        assert!(
            !env(&[]).unwrap().span_marking,
            "span-local marking is off by default"
        );
        assert!(env(&[("GCCORE_SPAN_MARKING", "1")]).unwrap().span_marking);
        assert_eq!(
            env(&[("GCCORE_SPAN_MARKING", "maybe")]).unwrap_err().var,
            "GCCORE_SPAN_MARKING"
        );
        assert_eq!(
            env(&[("GCCORE_MARK_WORKERS", "3")]).unwrap().mark_workers,
            3
        );
        for bad in ["0", "x", "65"] {
            assert_eq!(
                env(&[("GCCORE_MARK_WORKERS", bad)]).unwrap_err().var,
                "GCCORE_MARK_WORKERS"
            );
        }
        assert_eq!(
            env(&[("GCCORE_MARK_WORKERS", "64")]).unwrap().mark_workers,
            64
        );
    }

    /// Every documented spelling of the three switches, both ways, against the default of
    /// the other value (so a spelling read the wrong way shows).
    #[test]
    fn switches_read_every_spelling_both_ways() {
        for (on, off) in [("1", "0"), ("true", "false"), ("on", "off"), ("yes", "no")] {
            for v in [on, &on.to_uppercase()] {
                assert!(env(&[("GCCORE_VERIFY", v)]).unwrap().verify, "{v}");
                assert!(
                    env(&[("GCCORE_SPAN_MARKING", v)]).unwrap().span_marking,
                    "{v}"
                );
                let c = Config::default().concurrent(false);
                let c = c.apply_env(|k| (k == "GCCORE_CONCURRENT").then(|| v.to_string()));
                assert!(c.unwrap().concurrent, "{v}");
            }
            for v in [off, &off.to_uppercase()] {
                assert!(!env(&[("GCCORE_CONCURRENT", v)]).unwrap().concurrent, "{v}");
                let c = Config::default().verify(true).span_marking(true);
                let c = c
                    .apply_env(|k| {
                        (k == "GCCORE_VERIFY" || k == "GCCORE_SPAN_MARKING").then(|| v.to_string())
                    })
                    .unwrap();
                assert!(!c.verify && !c.span_marking, "{v}");
            }
        }
    }

    /// `GODEBUG`'s two keys set their own switch and leave the other alone.
    #[test]
    fn godebug_keys_set_their_own_switch() {
        let c = env(&[("GODEBUG", "gcpacertrace=1")]).unwrap();
        assert!(c.pacertrace && !c.gctrace);
        let c = env(&[("GODEBUG", "gctrace=1,gcpacertrace=0")]).unwrap();
        assert!(c.gctrace && !c.pacertrace);
        let c = env(&[("GODEBUG", "gcpacertrace=1,gctrace=1")]).unwrap();
        assert!(c.gctrace && c.pacertrace);
    }
}
