//! Quantities that vary over a scenario's program time: the allocation rate, the live heap, the
//! scan rate, the memory limit… written as one small expression, the same in a scenario file and
//! in a `--set` flag.
//!
//! | form | value at program time `t` |
//! |---|---|
//! | `64MiB`, `0.5`, `1e6` | constant |
//! | `ramp(from, to, t0, t1)` | `from` before `t0`, `to` after `t1`, linear between |
//! | `step(before, after, at)` | `before` until `at`, then `after` |
//! | `spike(base, peak, at, width)` | `peak` from `at` for `width`, else `base` |
//! | `oscillate(mean, amplitude, period)` | `mean + amplitude × sin(2πt / period)` |
//! | `jitter(mean, amplitude, every)` | `mean ± amplitude`, uniform, a new draw every `every` (from the scenario's seed) |
//! | `steps(v0, t1:v1, t2:v2, …)` | `v0`, then `v1` from `t1`, … |
//! | `table(t0:v0, t1:v1, …)` | linear between the points, constant beyond (trace replay builds these) |
//!
//! Quantities take a unit: bytes `B`, `KiB`, `MiB`, `GiB`, `TiB` (and `KB`, `MB`, `GB`: powers of
//! ten); times `ns`, `us`, `ms`, `s`, `min`; or none.

use std::fmt;

/// A quantity over program time (seconds).
#[derive(Clone, Debug, PartialEq)]
pub enum Stream {
    Constant(f64),
    Ramp {
        from: f64,
        to: f64,
        t0: f64,
        t1: f64,
    },
    Step {
        before: f64,
        after: f64,
        at: f64,
    },
    Spike {
        base: f64,
        peak: f64,
        at: f64,
        width: f64,
    },
    Oscillate {
        mean: f64,
        amplitude: f64,
        period: f64,
    },
    Jitter {
        mean: f64,
        amplitude: f64,
        every: f64,
        /// Mixed with the scenario's seed so that two jittered quantities differ.
        salt: u64,
    },
    /// `(from, value)` pairs, sorted by time; the first applies from the start.
    Steps(Vec<(f64, f64)>),
    /// Points of a piecewise-linear function, sorted by time.
    Table(Vec<(f64, f64)>),
}

impl Stream {
    /// The value at program time `t` (seconds) under `seed`.
    pub fn at(&self, t: f64, seed: u64) -> f64 {
        match *self {
            Stream::Constant(v) => v,
            Stream::Ramp { from, to, t0, t1 } => {
                if t <= t0 {
                    from
                } else if t >= t1 {
                    to
                } else {
                    from + (to - from) * (t - t0) / (t1 - t0)
                }
            }
            Stream::Step { before, after, at } => {
                if t < at {
                    before
                } else {
                    after
                }
            }
            Stream::Spike {
                base,
                peak,
                at,
                width,
            } => {
                if t >= at && t < at + width {
                    peak
                } else {
                    base
                }
            }
            Stream::Oscillate {
                mean,
                amplitude,
                period,
            } => mean + amplitude * (std::f64::consts::TAU * t / period).sin(),
            Stream::Jitter {
                mean,
                amplitude,
                every,
                salt,
            } => {
                let draw = (t / every).floor() as u64;
                mean + amplitude * unit_noise(seed ^ salt, draw)
            }
            Stream::Steps(ref points) => points
                .iter()
                .rev()
                .find(|p| p.0 <= t)
                .or(points.first())
                .map_or(0.0, |p| p.1),
            Stream::Table(ref points) => {
                let i = points.partition_point(|p| p.0 <= t);
                match (i.checked_sub(1).map(|j| points[j]), points.get(i)) {
                    (None, Some(b)) => b.1,
                    (Some(a), None) => a.1,
                    (Some(a), Some(b)) => a.1 + (b.1 - a.1) * (t - a.0) / (b.0 - a.0),
                    (None, None) => 0.0,
                }
            }
        }
    }

    /// Parse a stream; `salt` distinguishes jitter draws of different quantities.
    pub fn parse(text: &str, salt: u64) -> Result<Stream, String> {
        let text = text.trim();
        let Some(open) = text.find('(') else {
            return Ok(Stream::Constant(quantity(text)?));
        };
        let name = text[..open].trim();
        let args = text[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{text:?}: no closing parenthesis"))?;
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        let want = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{name}() takes {n} arguments, {text:?} has {}",
                    args.len()
                ))
            }
        };
        let q = |i: usize| quantity(args[i]);
        // `time:value` pairs, times increasing.
        let points = |args: &[&str]| -> Result<Vec<(f64, f64)>, String> {
            let mut v = Vec::new();
            for a in args {
                let (t, x) = a
                    .split_once(':')
                    .ok_or_else(|| format!("{a:?} in {text:?} is not time:value"))?;
                v.push((quantity(t)?, quantity(x)?));
            }
            if v.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(format!("{text:?}: times must increase"));
            }
            Ok(v)
        };
        let s = match name {
            "constant" => {
                want(1)?;
                Stream::Constant(q(0)?)
            }
            "ramp" => {
                want(4)?;
                let (t0, t1) = (q(2)?, q(3)?);
                if t1 <= t0 {
                    return Err(format!("{text:?}: the ramp must end after it starts"));
                }
                Stream::Ramp {
                    from: q(0)?,
                    to: q(1)?,
                    t0,
                    t1,
                }
            }
            "step" => {
                want(3)?;
                Stream::Step {
                    before: q(0)?,
                    after: q(1)?,
                    at: q(2)?,
                }
            }
            "spike" => {
                want(4)?;
                Stream::Spike {
                    base: q(0)?,
                    peak: q(1)?,
                    at: q(2)?,
                    width: q(3)?,
                }
            }
            "oscillate" => {
                want(3)?;
                let period = q(2)?;
                if period <= 0.0 {
                    return Err(format!("{text:?}: the period must be positive"));
                }
                Stream::Oscillate {
                    mean: q(0)?,
                    amplitude: q(1)?,
                    period,
                }
            }
            "jitter" => {
                want(3)?;
                let every = q(2)?;
                if every <= 0.0 {
                    return Err(format!("{text:?}: `every` must be positive"));
                }
                Stream::Jitter {
                    mean: q(0)?,
                    amplitude: q(1)?,
                    every,
                    salt,
                }
            }
            "steps" => {
                let mut v = vec![(f64::NEG_INFINITY, quantity(args[0])?)];
                v.extend(points(&args[1..])?);
                Stream::Steps(v)
            }
            "table" => Stream::Table(points(&args)?),
            _ => return Err(format!("{text:?}: unknown stream {name:?}")),
        };
        Ok(s)
    }
}

impl fmt::Display for Stream {
    /// The stream in [`Stream::parse`]'s syntax (bytes and seconds as plain numbers).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pts = |v: &[(f64, f64)]| {
            v.iter()
                .map(|(t, x)| format!("{t}:{x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Stream::Constant(v) => write!(f, "{v}"),
            Stream::Ramp { from, to, t0, t1 } => write!(f, "ramp({from}, {to}, {t0}, {t1})"),
            Stream::Step { before, after, at } => write!(f, "step({before}, {after}, {at})"),
            Stream::Spike {
                base,
                peak,
                at,
                width,
            } => write!(f, "spike({base}, {peak}, {at}, {width})"),
            Stream::Oscillate {
                mean,
                amplitude,
                period,
            } => write!(f, "oscillate({mean}, {amplitude}, {period})"),
            Stream::Jitter {
                mean,
                amplitude,
                every,
                ..
            } => write!(f, "jitter({mean}, {amplitude}, {every})"),
            Stream::Steps(v) if v.len() == 1 => write!(f, "steps({})", v[0].1),
            Stream::Steps(v) => write!(f, "steps({}, {})", v[0].1, pts(&v[1..])),
            Stream::Table(v) => write!(f, "table({})", pts(v)),
        }
    }
}

/// A number with an optional unit (see the module table), in bytes or seconds.
pub fn quantity(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| c.is_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" => 1.0,
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024f64.powi(4),
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        u => return Err(format!("{t:?}: unknown unit {u:?}")),
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{t:?} is not a number with a unit"))?;
    if !x.is_finite() {
        return Err(format!("{t:?} is not finite"));
    }
    Ok(x * scale)
}

/// A deterministic draw in [−1, 1] for (`seed`, `n`): SplitMix64's finaliser.
fn unit_noise(seed: u64, n: u64) -> f64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn quantities() {
        assert_eq!(quantity("64MiB"), Ok(64.0 * MIB));
        assert_eq!(quantity("1.5s"), Ok(1.5));
        assert_eq!(quantity("250ms"), Ok(0.25));
        assert_eq!(quantity("1e6"), Ok(1e6));
        assert_eq!(quantity("2GB"), Ok(2e9));
        assert!(quantity("3 parsecs").is_err());
        // Durations read as gc-core reads the pacer's (`GCCORE_PACER=fail_fast=2m`).
        for d in ["250us", "250µs", "1.5s", "2m", "40ns", "100ms"] {
            let ns = (quantity(d).unwrap() * 1e9).round() as u64;
            assert_eq!(Ok(ns), gc_core::pacer::parse_duration_ns(d), "{d}");
        }
        assert!(quantity("MiB").is_err());
    }

    #[test]
    fn shapes() {
        let s = |t: &str| Stream::parse(t, 0).unwrap();
        let r = s("ramp(0, 10MiB, 1s, 2s)");
        assert_eq!(r.at(0.5, 0), 0.0);
        assert_eq!(r.at(1.5, 0), 5.0 * MIB);
        assert_eq!(r.at(9.0, 0), 10.0 * MIB);
        let st = s("step(1, 2, 3s)");
        assert_eq!((st.at(2.9, 0), st.at(3.0, 0)), (1.0, 2.0));
        let sp = s("spike(1, 9, 2s, 500ms)");
        assert_eq!(
            (sp.at(1.9, 0), sp.at(2.2, 0), sp.at(2.5, 0)),
            (1.0, 9.0, 1.0)
        );
        let o = s("oscillate(10, 2, 4s)");
        assert!((o.at(1.0, 0) - 12.0).abs() < 1e-9 && (o.at(3.0, 0) - 8.0).abs() < 1e-9);
        let steps = s("steps(512MiB, 5s:256MiB, 10s:1GiB)");
        assert_eq!(steps.at(0.0, 0), 512.0 * MIB);
        assert_eq!(steps.at(7.0, 0), 256.0 * MIB);
        assert_eq!(steps.at(99.0, 0), 1024.0 * MIB);
        let t = s("table(1s:10, 3s:30)");
        assert_eq!(
            (t.at(0.0, 0), t.at(2.0, 0), t.at(5.0, 0)),
            (10.0, 20.0, 30.0)
        );
        // Jitter: within its amplitude, fixed within a draw, reproducible from the seed, and
        // different under another seed.
        let j = s("jitter(100, 10, 1s)");
        let draws: Vec<f64> = (0..50).map(|i| j.at(i as f64 + 0.5, 7)).collect();
        assert!(draws.iter().all(|v| (90.0..=110.0).contains(v)));
        assert_eq!(j.at(3.2, 7), j.at(3.9, 7));
        assert_eq!(
            draws,
            (0..50).map(|i| j.at(i as f64 + 0.5, 7)).collect::<Vec<_>>()
        );
        assert_ne!(
            draws,
            (0..50).map(|i| j.at(i as f64 + 0.5, 8)).collect::<Vec<_>>()
        );
        let spread = draws.iter().cloned().fold(f64::MIN, f64::max)
            - draws.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 10.0, "draws cover the range: {spread}");
        for bad in [
            "ramp(1, 2)",
            "wobble(1)",
            "step(1, 2, 3",
            "table(2s:1, 1s:2)",
            "jitter(1, 1, 0s)",
        ] {
            assert!(Stream::parse(bad, 0).is_err(), "{bad}");
        }
        // Display parses back to the same stream.
        for text in [
            "ramp(0, 10MiB, 1s, 2s)",
            "steps(1, 5s:2)",
            "steps(3)",
            "table(1s:10, 3s:30)",
            "7",
        ] {
            let a = s(text);
            assert_eq!(Stream::parse(&a.to_string(), 0).unwrap(), a, "{text}");
        }
    }
}
