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
