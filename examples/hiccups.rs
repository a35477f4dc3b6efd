//! hiccups: the machine's own latency floor, with no GC involved (after jHiccup).
//!
//! ```sh
//! cargo run --release --example hiccups -- [--threads T] [--secs S]
//! ```
//!
//! T threads spin reading the clock for S seconds; any gap between two consecutive readings is
//! time the thread was not running (descheduled by the OS or the hypervisor, an interrupt, a
//! page-table stall). A GC pause or an operation that happens to span such a gap includes it,
//! so this is the floor under the pause and operation figures of `treechurn`: run it in the
//! same session. The last line is `key=value` pairs: `threads secs gaps_over_100us
//! gaps_over_1ms gap_p99_us gap_max_us` (percentiles over the gaps above 10 µs).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

fn main() {
    let (mut threads, mut secs) = (2usize, 5u64);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} needs a positive integer"));
        match k.as_str() {
            "--threads" => threads = v.max(1) as usize,
            "--secs" => secs = v.max(1),
            other => panic!("unknown argument {other}; usage: hiccups [--threads T] [--secs S]"),
        }
    }
    let run = Duration::from_secs(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut gaps = Histogram::<u64>::new(3).unwrap();
                let start = Instant::now();
                let mut last = start;
                while last - start < run {
                    let now = Instant::now();
                    let gap = (now - last).as_micros() as u64;
                    if gap > 10 {
                        gaps.record(gap).unwrap();
                    }
                    last = now;
                }
                gaps
            })
        })
        .collect();
    let mut gaps = Histogram::<u64>::new(3).unwrap();
    for h in handles {
        gaps.add(h.join().unwrap()).unwrap();
    }
    let over = |us: u64| {
        gaps.iter_recorded()
            .filter(|v| v.value_iterated_to() > us)
            .map(|v| v.count_at_value())
            .sum::<u64>()
    };
    println!(
        "threads={threads} secs={secs} gaps_over_100us={} gaps_over_1ms={} gap_p99_us={} gap_max_us={}",
        over(100),
        over(1000),
        gaps.value_at_quantile(0.99),
        gaps.max()
    );
}
