//! The pacer's knobs ([`PacerConfig`]): the constants Go's pacer hard-codes, and the heap-sizing
//! policy, as one value the heap ([`Config::pacer`](crate::Config::pacer), `GCCORE_PACER`) and a
//! simulator driving [`Pacer`](crate::pacer::Pacer) both take.
//!
//! The defaults are gc-core's pacer as documented in [`crate::pacer`]; changing them is for
//! experiments (the pacer lab replays a recorded run under other values in seconds).

use std::fmt;

use crate::util::error::ConfigError;

/// How the heap goal is sized from the live heap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// Go's rule: the goal is the live heap plus `GOGC` percent of it and of the roots
    /// (`marked + (marked + stacks + globals) × GOGC/100`).
    Proportional,
    /// MemBalancer's square-root rule (Kirisame et al., "Optimal heap limits for reducing
    /// browser memory use", OOPSLA 2022): the extra heap over the live heap `L` is
    /// `E = √(L × g ÷ (c × s))`, with `g` the allocation rate (bytes per second of wall time)
    /// and `s` the collector's speed (scan work per second of its CPU time), both smoothed
    /// over cycles, and `c` the knob trading memory for GC time: a cycle then costs about as
    /// much extra memory-time as it saves GC time, summed over heaps. Where `g` is high or
    /// marking slow the heap gets more room; a live heap 4× larger gets only 2× the room. GOGC
    /// still switches proportional collection off (`GOGC=off`), and the memory limit still
    /// caps the goal. Until a cycle has measured `g` and `s`, the proportional rule applies.
    SqrtRule {
        /// The tuning constant `c` (> 0; smaller: more memory, less GC time). Its unit is
        /// 1/bytes: `c = 1e-8` gives a 100 MiB live heap allocating as fast as it marks
        /// about 100 MiB of extra room.
        c: f64,
    },
}

/// The pacer's knobs. `PacerConfig::default()` is gc-core's pacer.
#[derive(Clone, Debug, PartialEq)]
pub struct PacerConfig {
    /// How the goal is sized (default: [`Policy::Proportional`], GOGC).
    pub policy: Policy,
    /// The trigger is at least this far (a fraction of `goal − marked`) from the live heap to
    /// the goal, so that a fast allocator does not keep the collector marking nearly all the
    /// time. gc-core: 0.8; Go 1.19: 45/64 ≈ 0.70. A mutator that allocates faster than the
    /// collector marks starts every cycle at this bound, and what it allocates between the
    /// trigger and mark termination is allocated black and doubled into the next goal: gc-core's
    /// mutators allocate two to three times as fast as Go's on the same program, so at Go's
    /// bound its heap was 8% larger than Go's on binary-trees; at 0.8 it is Go's size, for
    /// assists that cost that program about a tenth of its wall time (`docs/tuning.md`).
    pub min_trigger_ratio: f64,
    /// … and at most this far (Go 1.19: 61/64 ≈ 0.95, or `goal − 4 MiB` for large heaps),
    /// so that some runway is always left.
    pub max_trigger_ratio: f64,
    /// The cons/mark estimate is the mean of the last this many cycles' values (Go 1.19: 2;
    /// 1 uses the last cycle's alone). At most 64.
    pub cons_mark_window: usize,
    /// Past its goal, a cycle aims this much further before its assists stop all allocation
    /// (Go: `maxOvershoot`, 1.1). At least 1.
    pub max_overshoot: f64,
    /// The goal extension stops at this factor of the goal (at least 1), or at the hard goal
    /// (`1 + GOGC/100` times the goal) if that is lower. A cycle whose scan work passes the last
    /// cycle's moves its goal out in proportion to the extra work, as Go 1.19 does, so that a
    /// heap that is growing is not met with an assist storm; this bounds how far (`None`, the
    /// default: the hard goal alone, as Go). `1` turns the extension off: such a cycle paces
    /// for its goal with the worst-case work left, and past it for `max_overshoot` times it.
    pub max_extension: Option<f64>,
    /// CPU time per CPU the GC CPU limiter's bucket holds, in nanoseconds (gc-core: 100 ms;
    /// Go: 1 s). The limiter turns on once the GC has used this much more CPU than half the
    /// machine.
    pub limiter_capacity_per_proc_ns: u64,
    /// Fail fast under a memory limit (what Go users ask for in golang/go#58106): once the GC
    /// CPU limiter has been engaged for this long (nanoseconds of wall time; an engagement goes
    /// on through breaks of up to a quarter of this, and at least 2 ms, see
    /// [`LimiterWatch`](crate::pacer::LimiterWatch)), the heap is *stalled*: allocations that
    /// need a new span fail with
    /// [`AllocError::MemoryLimitStall`](crate::AllocError::MemoryLimitStall) until the limiter
    /// has stayed off for longer than such a break (or the memory limit is changed). Counted only while a memory limit is set. `None`
    /// (the default): never; the heap goes on past its limit, as Go does.
    pub limiter_fail_fast_ns: Option<u64>,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            policy: Policy::Proportional,
            min_trigger_ratio: 0.8,
            max_trigger_ratio: 61.0 / 64.0,
            cons_mark_window: 2,
            max_overshoot: 1.1,
            max_extension: None,
            limiter_capacity_per_proc_ns: 100_000_000,
            limiter_fail_fast_ns: None,
        }
    }
}

/// The smallest GC CPU limiter bucket per CPU, in nanoseconds: the limiter turns on within
/// 1/40 of full and off at 1/20 short (`pacer::LIMITER_ON_MARGIN`), margins a smaller bucket
/// would not have.
pub const MIN_LIMITER_BUCKET_NS: u64 = 40;

/// The keys [`PacerConfig::set`] takes, with what their values look like.
pub const PACER_KEYS: &[(&str, &str)] = &[
    ("policy", "proportional | sqrt"),
    (
        "sqrt_c",
        "the square-root rule's c, a positive number (sets policy=sqrt)",
    ),
    (
        "min_trigger",
        "a ratio from 0.01 to 0.99, at most max_trigger",
    ),
    (
        "max_trigger",
        "a ratio from 0.01 to 0.99, at least min_trigger",
    ),
    ("cons_mark_window", "cycles averaged, 1 to 64"),
    ("max_overshoot", "a factor, at least 1"),
    (
        "max_extension",
        "a factor of the goal, at least 1, or hard (the hard goal alone)",
    ),
    (
        "limiter_bucket",
        "a duration per CPU, at least 40ns: 100ms, 1s, 250us",
    ),
    (
        "fail_fast",
        "a duration (the limiter on that long stalls allocation), or off",
    ),
];

const EXPECTED: &str = "comma-separated key=value pairs: policy=proportional|sqrt, sqrt_c=X, \
     min_trigger=R, max_trigger=R, cons_mark_window=N, max_overshoot=F, max_extension=F|hard, \
     limiter_bucket=DUR, fail_fast=DUR|off";

impl PacerConfig {
    /// Set one knob by name (the keys of [`PACER_KEYS`]), as `GCCORE_PACER` and the pacer lab
    /// spell them. Only the value's form is checked here: knobs that constrain each other
    /// (`min_trigger ≤ max_trigger`) may be set in any order, and [`PacerConfig::validate`]
    /// (which [`PacerConfig::apply`] and [`Heap::new`](crate::Heap::new) call) checks the
    /// result.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        let num = || {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{key}: {v:?} is not a number"))
        };
        match key.trim() {
            "policy" => {
                self.policy = match v {
                    "proportional" | "gogc" | "go" => Policy::Proportional,
                    "sqrt" | "membalancer" => match self.policy {
                        p @ Policy::SqrtRule { .. } => p,
                        Policy::Proportional => Policy::SqrtRule { c: 1e-8 },
                    },
                    _ => return Err(format!("policy: {v:?} is not proportional or sqrt")),
                }
            }
            "sqrt_c" => self.policy = Policy::SqrtRule { c: num()? },
            "min_trigger" => self.min_trigger_ratio = num()?,
            "max_trigger" => self.max_trigger_ratio = num()?,
            "cons_mark_window" => {
                self.cons_mark_window = v
                    .parse()
                    .map_err(|_| format!("cons_mark_window: {v:?} is not a whole number"))?
            }
            "max_overshoot" => self.max_overshoot = num()?,
            "max_extension" => {
                self.max_extension = match v {
                    "hard" | "go" => None,
                    _ => Some(num()?),
                }
            }
            "limiter_bucket" => self.limiter_capacity_per_proc_ns = parse_duration_ns(v)?,
            "fail_fast" => {
                self.limiter_fail_fast_ns = match v {
                    "off" | "none" => None,
                    _ => Some(parse_duration_ns(v)?),
                }
            }
            k => {
                let known: Vec<&str> = PACER_KEYS.iter().map(|k| k.0).collect();
                return Err(format!(
                    "unknown pacer key {k:?} (known: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Apply `key=value` pairs separated by commas (`GCCORE_PACER`'s form), in any order, then
    /// [`validate`](PacerConfig::validate) the result.
    pub fn apply(&mut self, assignments: &str) -> Result<(), String> {
        for pair in assignments.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            self.set(k, v)?;
        }
        self.validate()
    }

    /// Check the knobs: trigger ratios `0.01 ≤ min ≤ max ≤ 0.99`, window 1–64, overshoot ≥ 1,
    /// a finite extension bound ≥ 1 (if any), a limiter bucket of at least
    /// [`MIN_LIMITER_BUCKET_NS`] and a non-zero fail-fast
    /// window, a positive `c`. These are the ranges the pacer applies: a value it would move
    /// into them is refused rather than shown as set and not in force.
    pub fn validate(&self) -> Result<(), String> {
        let (lo, hi) = (self.min_trigger_ratio, self.max_trigger_ratio);
        if !(lo >= 0.01 && lo <= hi && hi <= 0.99) {
            return Err(format!(
                "trigger ratios must satisfy 0.01 ≤ min_trigger ≤ max_trigger ≤ 0.99 (got {lo}, {hi})"
            ));
        }
        if !(1..=64).contains(&self.cons_mark_window) {
            return Err(format!(
                "cons_mark_window must be 1 to 64 (got {})",
                self.cons_mark_window
            ));
        }
        if !(self.max_overshoot >= 1.0 && self.max_overshoot.is_finite()) {
            return Err(format!(
                "max_overshoot must be at least 1 (got {})",
                self.max_overshoot
            ));
        }
        if let Some(x) = self.max_extension
            && !(x >= 1.0 && x.is_finite())
        {
            return Err(format!(
                "max_extension must be at least 1, or hard (got {x})"
            ));
        }
        if self.limiter_capacity_per_proc_ns < MIN_LIMITER_BUCKET_NS {
            return Err(format!(
                "limiter_bucket must be at least {MIN_LIMITER_BUCKET_NS}ns (got {}ns)",
                self.limiter_capacity_per_proc_ns
            ));
        }
        if self.limiter_fail_fast_ns == Some(0) {
            return Err("fail_fast must be more than zero (or off)".into());
        }
        if let Policy::SqrtRule { c } = self.policy
            && !(c > 0.0 && c.is_finite())
        {
            return Err(format!("sqrt_c must be a positive number (got {c})"));
        }
        Ok(())
    }

    /// Parse `GCCORE_PACER`'s value onto the defaults. An empty value is an error, as for the
    /// other variables (a script's unset variable would otherwise pass as the defaults).
    pub(crate) fn from_env_value(v: &str) -> Result<PacerConfig, ConfigError> {
        if v.trim().is_empty() {
            return Err(ConfigError {
                var: "GCCORE_PACER",
                value: v.to_string(),
                expected: EXPECTED,
            });
        }
        let mut c = PacerConfig::default();
        // The value, with why it was refused (as `Heap::new` reports a `Config::pacer` that
        // fails `validate`).
        c.apply(v).map_err(|why| ConfigError {
            var: "GCCORE_PACER",
            value: format!("{v} ({why})"),
            expected: EXPECTED,
        })?;
        Ok(c)
    }
}

impl fmt::Display for PacerConfig {
    /// The knobs in [`PacerConfig::apply`]'s form (which reads it back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.policy {
            Policy::Proportional => write!(f, "policy=proportional")?,
            Policy::SqrtRule { c } => write!(f, "policy=sqrt,sqrt_c={c:e}")?,
        }
        write!(
            f,
            ",min_trigger={},max_trigger={},cons_mark_window={},max_overshoot={},max_extension=",
            self.min_trigger_ratio,
            self.max_trigger_ratio,
            self.cons_mark_window,
            self.max_overshoot,
        )?;
        match self.max_extension {
            Some(x) => write!(f, "{x}")?,
            None => write!(f, "hard")?,
        }
        write!(
            f,
            ",limiter_bucket={}ns,fail_fast=",
            self.limiter_capacity_per_proc_ns
        )?;
        match self.limiter_fail_fast_ns {
            Some(ns) => write!(f, "{ns}ns"),
            None => write!(f, "off"),
        }
    }
}

/// A duration with a unit: `250us`, `100ms`, `1.5s`, `2m`, `40ns`.
pub fn parse_duration_ns(v: &str) -> Result<u64, String> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{v:?} has no unit (ns, us, ms, s, m)"))?;
    let (num, unit) = v.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        u => return Err(format!("{v:?}: unknown unit {u:?} (ns, us, ms, s, m)")),
    };
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a duration"))?;
    let ns = x * scale;
    if !(ns.is_finite() && ns >= 0.0 && ns < u64::MAX as f64) {
        return Err(format!("{v:?} is out of range"));
    }
    Ok(ns.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_apply_validate_and_display_round_trip() {
        let mut c = PacerConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.apply(
            "policy=sqrt, sqrt_c=2e-8,max_overshoot=1.05,max_extension=1.2,limiter_bucket=1s,fail_fast=2s",
        )
        .unwrap();
        assert_eq!(c.max_extension, Some(1.2));
        assert_eq!(c.policy, Policy::SqrtRule { c: 2e-8 });
        assert_eq!(c.max_overshoot, 1.05);
        assert_eq!(c.limiter_capacity_per_proc_ns, 1_000_000_000);
        assert_eq!(c.limiter_fail_fast_ns, Some(2_000_000_000));
        let mut back = PacerConfig::default();
        back.apply(&c.to_string()).unwrap();
        assert_eq!(back, c);
        // Keys in any order: the constant before the policy is kept.
        let mut d = PacerConfig::default();
        d.apply("sqrt_c=3e-8,policy=sqrt").unwrap();
        assert_eq!(d.policy, Policy::SqrtRule { c: 3e-8 });
        // Refusals name what was wrong.
        for bad in [
            "min_trigger=0.99",
            "max_trigger=1",
            "cons_mark_window=0",
            "cons_mark_window=65",
            "cons_mark_window=1000",
            "min_trigger=0",
            "min_trigger=-0.1",
            "max_overshoot=0.9",
            "max_extension=0.5",
            "max_extension=inf",
            "limiter_bucket=0ms",
            "limiter_bucket=5",
            "fail_fast=0s",
            "sqrt_c=-1",
            "sqrt_c=0",
            "min_trigger=0.005",
            "max_trigger=0.995",
            "limiter_bucket=39ns",
            "policy=pi",
            "colour=red",
            "max_overshoot",
        ] {
            assert!(PacerConfig::default().apply(bad).is_err(), "{bad}");
        }
        // The ends of the ranges are accepted.
        for good in [
            "cons_mark_window=1",
            "cons_mark_window=64",
            "min_trigger=0.01",
            "max_overshoot=1",
            "max_extension=1",
            "min_trigger=0.01,max_trigger=0.99",
            "limiter_bucket=40ns",
        ] {
            let mut c = PacerConfig::default();
            assert!(c.apply(good).is_ok(), "{good}");
            // What is accepted is what the pacer applies (not moved into its range).
            let applied = crate::pacer::Pacer::with_config(Some(100), None, 4, c.clone());
            assert_eq!(applied.config(), &c, "{good}");
        }
        // The default extension bound (the hard goal) and no extension round-trip too.
        for x in [None, Some(1.0)] {
            let c = PacerConfig {
                max_extension: x,
                ..PacerConfig::default()
            };
            let mut back = PacerConfig::default();
            back.apply("max_extension=1.5").unwrap();
            back.apply(&c.to_string()).unwrap();
            assert_eq!(back, c);
        }
        let e = PacerConfig::from_env_value("max_overshoot=x").unwrap_err();
        assert_eq!(e.var, "GCCORE_PACER");
        // The error says why, not only which forms are accepted.
        let e = PacerConfig::from_env_value("min_trigger=0.9,max_trigger=0.5").unwrap_err();
        assert!(e.to_string().contains("min_trigger ≤ max_trigger"), "{e}");
        // Knobs that constrain each other may come in any order: only the result is checked.
        let mut c = PacerConfig::default();
        c.apply("min_trigger=0.96,max_trigger=0.98").unwrap();
        assert_eq!((c.min_trigger_ratio, c.max_trigger_ratio), (0.96, 0.98));
        c.apply("max_trigger=0.5,min_trigger=0.4").unwrap();
        assert_eq!((c.min_trigger_ratio, c.max_trigger_ratio), (0.4, 0.5));
        c.set("min_trigger", "0.9").unwrap(); // not checked yet ...
        assert!(c.validate().is_err()); // ... but refused as a whole
    }

    #[test]
    fn the_env_error_names_every_key() {
        for (key, _) in PACER_KEYS {
            assert!(EXPECTED.contains(&format!("{key}=")), "{key}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("250us"), Ok(250_000));
        assert_eq!(parse_duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration_ns("2m"), Ok(120_000_000_000));
        assert!(parse_duration_ns("ms").is_err());
        assert!(parse_duration_ns("3 parsecs").is_err());
        // Durations past what a u64 of nanoseconds holds are refused, not saturated: 2^64 ns
        // exactly (the first value a u64 cannot hold), 600 billion years, and a number too
        // long for an f64 (infinite).
        for v in [
            "18446744073709551616ns",
            "20000000000000000000s",
            &format!("{}s", "9".repeat(400)),
        ] {
            let e = parse_duration_ns(v).unwrap_err();
            assert!(e.contains("out of range"), "{v}: {e}");
        }
        // The largest whole f64 below 2^64 is accepted.
        assert_eq!(
            parse_duration_ns("18446744073709549568ns"),
            Ok(18_446_744_073_709_549_568)
        );
    }
}
