//! Small helpers shared by the example programs and workload harnesses.

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
