//! Running one program: wall time, CPU time and peak RSS from the kernel (`wait4`'s rusage),
//! the same way for every implementation, and the `key=value` figures of its last such line.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one run measured: the runner's own figures (`wall_s`, `cpu_s`, `rss_mib`) and the
/// numeric `key=value` pairs the program printed on its last line that has them.
#[derive(Debug, Clone, Default)]
pub struct Figures(pub BTreeMap<String, f64>);

/// Run `cmd` in `dir`, its output captured; an error (with the output) if it cannot start or
/// exits unsuccessfully. The figures are the `key=value` pairs of stdout's last line that has
/// any, completed by stderr's (where a program such as the Lox VM prints its collector
/// figures, stdout being the script's); the program's stdout and stderr come with them.
pub fn measure(mut cmd: Command, dir: &Path) -> Result<(Figures, String, String), String> {
    let shown = format!("{cmd:?}");
    cmd.current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{shown}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    // Read both pipes before waiting (stderr on a thread), so that a chatty program cannot
    // block on a full pipe.
    let mut err = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut t = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut t);
        t
    });
    let mut out = child.stdout.take().expect("piped");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text).map_err(|e| format!("{shown}: {e}"))?;
    let errors = err_reader.join().unwrap_or_default();
    let mut status = 0;
    // SAFETY: `rusage` is plain data, zero is a valid value, and `wait4` fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped (`Child::wait` was not called); the pointers
    // are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if r != pid {
        return Err(format!("{shown}: wait4 failed"));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!(
            "{shown}: exited with status {status:#x}\n{text}{errors}"
        ));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let mut f = parse_keys(&text);
    for (k, v) in parse_keys(&errors).0 {
        f.0.entry(k).or_insert(v);
    }
    f.0.insert("wall_s".into(), wall);
    f.0.insert("cpu_s".into(), tv(usage.ru_utime) + tv(usage.ru_stime));
    // Linux reports ru_maxrss in KiB.
    f.0.insert("rss_mib".into(), usage.ru_maxrss as f64 / 1024.0);
    Ok((f, text, errors))
}

/// The numeric `key=value` pairs of the last line of `text` that has any.
pub fn parse_keys(text: &str) -> Figures {
    for line in text.lines().rev() {
        let pairs: BTreeMap<String, f64> = line
            .split_whitespace()
            .filter_map(|w| {
                let (k, v) = w.split_once('=')?;
                Some((k.to_string(), v.parse::<f64>().ok()?))
            })
            .collect();
        if !pairs.is_empty() {
            return Figures(pairs);
        }
    }
    Figures::default()
}

/// The median of `v` (the mean of the middle two for an even count); `None` if empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_with_keys_counts() {
        let f = parse_keys("mode=gc wall_ms=12 x=abc\nmode=box wall_ms=7 rss=1.5\nplain text\n");
        assert_eq!(f.0.get("wall_ms"), Some(&7.0));
        assert_eq!(f.0.get("rss"), Some(&1.5));
        assert_eq!(f.0.get("x"), None);
        assert!(parse_keys("no keys here").0.is_empty());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn a_run_is_measured_by_the_kernel() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'a=1 b=2.5'; echo done; echo 'b=9 c=3' >&2"]);
        let (f, out, err) = measure(cmd, Path::new(".")).unwrap();
        assert_eq!(out, "a=1 b=2.5\ndone\n");
        assert_eq!(err, "b=9 c=3\n");
        assert_eq!(f.0["a"], 1.0);
        assert_eq!(f.0["b"], 2.5, "stdout's figures come first");
        assert_eq!(f.0["c"], 3.0, "stderr's complete them");
        assert!(f.0["wall_s"] > 0.0 && f.0["rss_mib"] > 0.0);
        let mut bad = Command::new("sh");
        bad.args(["-c", "exit 3"]);
        assert!(measure(bad, Path::new(".")).is_err());
    }
}
