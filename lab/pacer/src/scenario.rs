//! Scenarios: a workload model (allocation rate, live heap, scan rate, roots over program time),
//! the machine (CPUs, how many the program keeps busy), the settings (GOGC, the memory limit,
//! the pacer's knobs) and the simulation's own (length, step, seed).
//!
//! A scenario file is TOML: top-level keys, and the tables `[workload]`, `[memory]` and
//! `[pacer]` (whose keys are `GCCORE_PACER`'s). Every key can also be set from the command line
//! with `--set key=value`; the sections are only for reading, a key means the same wherever it
//! is. `docs/pacer.md` lists the keys; [`KEYS`] is the list the program checks against.

use gc_core::pacer::PacerConfig;

use crate::stream::{Stream, quantity};

/// The keys a scenario takes (besides the pacer's), with their meaning.
pub const KEYS: &[(&str, &str)] = &[
    ("name", "the scenario's name (file names)"),
    ("description", "one line on what it shows"),
    (
        "duration",
        "program time simulated (mutator CPU-seconds per mutator), e.g. 20s",
    ),
    ("seed", "seed of jitter() draws"),
    ("cpus", "CPUs (GOMAXPROCS)"),
    (
        "mutators",
        "CPUs the program keeps busy (may be fractional; at most cpus)",
    ),
    ("gogc", "GOGC: a percentage, or off"),
    (
        "memory_limit",
        "the soft memory limit: a stream of bytes, or off",
    ),
    (
        "idle_marking",
        "spare CPUs mark during a cycle (true/false)",
    ),
    (
        "pause",
        "each stop-the-world pause (STW 1 and STW 2), e.g. 50us",
    ),
    ("step", "the simulation's time step, e.g. 1ms"),
    (
        "alloc_rate",
        "[workload] bytes allocated per mutator CPU-second (stream)",
    ),
    ("live", "[workload] bytes reachable (stream)"),
    (
        "scannable",
        "[workload] fraction of the live heap holding pointers (stream)",
    ),
    (
        "scan_rate",
        "[workload] scan work per GC CPU-second (stream)",
    ),
    (
        "stacks",
        "[workload] root-stack bytes scanned per cycle (stream)",
    ),
    (
        "globals",
        "[workload] global-root bytes scanned per cycle (stream)",
    ),
    (
        "fragmentation",
        "[memory] span bytes over object bytes, minus 1 (e.g. 0.05)",
    ),
    (
        "scavenge_rate",
        "[memory] bytes per second the background scavenger returns",
    ),
];

/// A scenario, ready to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Program time to simulate, seconds.
    pub duration: f64,
    pub seed: u64,
    pub cpus: usize,
    pub mutators: f64,
    pub gogc: Option<u32>,
    pub memory_limit: Option<Stream>,
    /// Share of the spare CPUs (not mutators, not background workers) that mark.
    pub idle_marking: f64,
    /// Seconds per pause.
    pub pause: f64,
    /// Seconds per simulation step.
    pub step: f64,
    pub alloc_rate: Stream,
    pub live: Stream,
    pub scannable: Stream,
    pub scan_rate: Stream,
    pub stacks: Stream,
    pub globals: Stream,
    pub fragmentation: f64,
    pub scavenge_rate: f64,
    pub pacer: PacerConfig,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Default for Scenario {
    /// Go's `TestGcPacer` defaults, on program time: 8 CPUs all running the program, 33 MiB
    /// allocated per CPU-second, scanning at 1 GiB per GC CPU-second, a fully scannable 64 MiB
    /// live heap reached over the first second, 8 KiB of stacks, 32 KiB of globals, GOGC=100;
    /// gc-core's pacer knobs but Go's lowest trigger (45/64, which Go's scenarios were written
    /// for: gc-core's 0.8 puts several of them on that bound, with assists; `--set
    /// min_trigger=0.8` runs them so).
    fn default() -> Self {
        Scenario {
            name: "custom".into(),
            description: String::new(),
            duration: 15.0,
            seed: 1,
            cpus: 8,
            mutators: 8.0,
            gogc: Some(100),
            memory_limit: None,
            idle_marking: 0.0,
            pause: 50e-6,
            step: 1e-3,
            alloc_rate: Stream::Constant(33.0 * MIB),
            live: Stream::Ramp {
                from: 4.0 * MIB,
                to: 64.0 * MIB,
                t0: 0.0,
                t1: 1.0,
            },
            scannable: Stream::Constant(1.0),
            scan_rate: Stream::Constant(1024.0 * MIB),
            stacks: Stream::Constant(8192.0),
            globals: Stream::Constant(32768.0),
            fragmentation: 0.0,
            scavenge_rate: 64.0 * MIB,
            pacer: PacerConfig {
                min_trigger_ratio: 45.0 / 64.0,
                ..PacerConfig::default()
            },
        }
    }
}

/// A salt per quantity, so that two jittered quantities draw differently.
fn salt(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl Scenario {
    /// Set `key` to `value` (the keys of [`KEYS`] and of the pacer).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        let stream = || Stream::parse(v, salt(key));
        let err = |e: String| format!("{key}: {e}");
        match key {
            "name" => self.name = v.to_string(),
            "description" => self.description = v.to_string(),
            "duration" => self.duration = positive(v).map_err(err)?,
            "seed" => self.seed = v.parse().map_err(|_| format!("seed: {v:?}"))?,
            "cpus" => {
                self.cpus = v
                    .parse()
                    .ok()
                    .filter(|&n| (1..=1024).contains(&n))
                    .ok_or_else(|| format!("cpus: {v:?} is not 1 to 1024"))?
            }
            "mutators" => self.mutators = positive(v).map_err(err)?,
            "gogc" => {
                self.gogc = match v {
                    "off" => None,
                    _ => Some(
                        v.parse()
                            .map_err(|_| format!("gogc: {v:?} is not a percentage or off"))?,
                    ),
                }
            }
            "memory_limit" => {
                self.memory_limit = match v {
                    "off" => None,
                    _ => Some(stream().map_err(err)?),
                }
            }
            "idle_marking" => {
                self.idle_marking = match v {
                    "true" => 1.0,
                    "false" => 0.0,
                    _ => v
                        .parse::<f64>()
                        .ok()
                        .filter(|x| (0.0..=1.0).contains(x))
                        .ok_or_else(|| {
                            format!("idle_marking: {v:?} is not 0 to 1, true or false")
                        })?,
                }
            }
            "pause" => self.pause = quantity(v).map_err(err)?.max(0.0),
            "step" => {
                self.step = positive(v).map_err(err)?;
                if self.step > 0.1 {
                    return Err("step: at most 100ms".into());
                }
            }
            "alloc_rate" => self.alloc_rate = stream().map_err(err)?,
            "live" => self.live = stream().map_err(err)?,
            "scannable" => self.scannable = stream().map_err(err)?,
            "scan_rate" => self.scan_rate = stream().map_err(err)?,
            "stacks" => self.stacks = stream().map_err(err)?,
            "globals" => self.globals = stream().map_err(err)?,
            "fragmentation" => self.fragmentation = quantity(v).map_err(err)?.max(0.0),
            "scavenge_rate" => self.scavenge_rate = quantity(v).map_err(err)?.max(0.0),
            _ => self.pacer.set(key, v)?,
        }
        Ok(())
    }

    /// Apply `key=value` overrides.
    pub fn apply(&mut self, sets: &[String]) -> Result<(), String> {
        for s in sets {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| format!("--set {s:?}: not key=value"))?;
            self.set(k.trim(), v)?;
        }
        self.check()
    }

    /// Read a scenario file's text (TOML) onto the defaults.
    pub fn from_toml(text: &str) -> Result<Scenario, String> {
        let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
        let mut s = Scenario::default();
        let mut pairs = Vec::new();
        for (k, v) in &table {
            match (k.as_str(), v) {
                ("workload" | "memory" | "pacer", toml::Value::Table(t)) => {
                    for (k2, v2) in t {
                        pairs.push((k2.clone(), value_text(v2)?));
                    }
                }
                _ => pairs.push((k.clone(), value_text(v)?)),
            }
        }
        for (k, v) in pairs {
            s.set(&k, &v)?;
        }
        s.check()?;
        Ok(s)
    }

    /// Cross-checks: mutators within the CPUs.
    fn check(&self) -> Result<(), String> {
        if self.mutators > self.cpus as f64 {
            return Err(format!(
                "mutators ({}) must be at most cpus ({})",
                self.mutators, self.cpus
            ));
        }
        self.pacer.validate()
    }
}

fn positive(v: &str) -> Result<f64, String> {
    let x = quantity(v)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(format!("{v:?} must be positive"))
    }
}

/// A TOML value as the text `set` takes.
fn value_text(v: &toml::Value) -> Result<String, String> {
    Ok(match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => return Err(format!("{other}: expected a string, number or boolean")),
    })
}

/// The built-in scenarios' files, in the order `docs/pacer.md` shows them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("steady", include_str!("../scenarios/steady.toml")),
    ("step-alloc", include_str!("../scenarios/step-alloc.toml")),
    (
        "heavy-step-alloc",
        include_str!("../scenarios/heavy-step-alloc.toml"),
    ),
    (
        "step-scannable-frac",
        include_str!("../scenarios/step-scannable-frac.toml"),
    ),
    ("big-stacks", include_str!("../scenarios/big-stacks.toml")),
    ("big-globals", include_str!("../scenarios/big-globals.toml")),
    ("osc-alloc", include_str!("../scenarios/osc-alloc.toml")),
    (
        "jitter-alloc",
        include_str!("../scenarios/jitter-alloc.toml"),
    ),
    (
        "heavy-jitter-alloc",
        include_str!("../scenarios/heavy-jitter-alloc.toml"),
    ),
    ("high-gogc", include_str!("../scenarios/high-gogc.toml")),
    (
        "small-heap-slow-alloc",
        include_str!("../scenarios/small-heap-slow-alloc.toml"),
    ),
    (
        "large-heap-slow-alloc",
        include_str!("../scenarios/large-heap-slow-alloc.toml"),
    ),
    ("live-ramp", include_str!("../scenarios/live-ramp.toml")),
    ("live-spike", include_str!("../scenarios/live-spike.toml")),
    (
        "live-oscillate",
        include_str!("../scenarios/live-oscillate.toml"),
    ),
    (
        "live-step-down",
        include_str!("../scenarios/live-step-down.toml"),
    ),
    (
        "few-mutators",
        include_str!("../scenarios/few-mutators.toml"),
    ),
    (
        "steady-memory-limit",
        include_str!("../scenarios/steady-memory-limit.toml"),
    ),
    (
        "steady-memory-limit-gogc-off",
        include_str!("../scenarios/steady-memory-limit-gogc-off.toml"),
    ),
    (
        "maintain-memory-limit",
        include_str!("../scenarios/maintain-memory-limit.toml"),
    ),
    (
        "exceed-memory-limit",
        include_str!("../scenarios/exceed-memory-limit.toml"),
    ),
    (
        "exceed-memory-limit-gogc-off",
        include_str!("../scenarios/exceed-memory-limit-gogc-off.toml"),
    ),
    (
        "limit-lowered-raised",
        include_str!("../scenarios/limit-lowered-raised.toml"),
    ),
    ("fail-fast", include_str!("../scenarios/fail-fast.toml")),
];

/// A built-in scenario by name.
pub fn builtin(name: &str) -> Option<Result<Scenario, String>> {
    BUILTIN
        .iter()
        .find(|b| b.0 == name)
        .map(|b| Scenario::from_toml(b.1).map_err(|e| format!("built-in {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_flags_set_the_same_fields() {
        let s = Scenario::from_toml(
            r#"
name = "x"
cpus = 4
mutators = 2.5
gogc = "off"
memory_limit = "steps(512MiB, 5s:256MiB)"
[workload]
alloc_rate = "jitter(100MiB, 10MiB, 250ms)"
live = 128
[pacer]
max_overshoot = 1.05
"#,
        )
        .unwrap();
        let mut t = Scenario::default();
        t.apply(&[
            "name=x".into(),
            "cpus=4".into(),
            "mutators=2.5".into(),
            "gogc=off".into(),
            "memory_limit=steps(512MiB, 5s:256MiB)".into(),
            "alloc_rate=jitter(100MiB, 10MiB, 250ms)".into(),
            "live=128".into(),
            "max_overshoot=1.05".into(),
        ])
        .unwrap();
        assert_eq!(s, t);
        assert_eq!(s.gogc, None);
        assert_eq!(s.pacer.max_overshoot, 1.05);
        for bad in [
            "cpus = 0",
            "mutators = 9",
            "gogc = \"lots\"",
            "colour = \"red\"",
            "[workload]\nlive = \"wobble(1)\"",
            "[pacer]\nmin_trigger = 2.0",
        ] {
            assert!(Scenario::from_toml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_builtin_parses_under_its_name() {
        for (name, _) in BUILTIN {
            let s = builtin(name).unwrap().unwrap();
            assert_eq!(&s.name, name);
            assert!(!s.description.is_empty(), "{name} has a description");
        }
    }
}
