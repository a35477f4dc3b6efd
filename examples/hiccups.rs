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

/// The machine's latency floor: threads spinning on the clock report the gaps in which they did
/// not run.
#[derive(clap::Parser)]
#[command(name = "hiccups")]
struct Args {
    /// Spinning threads.
    #[arg(long, default_value_t = 2, value_parser = gc_examples::positive)]
    threads: usize,
    /// Seconds to spin.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    secs: u64,
}

fn main() {
    let Args { threads, secs } = clap::Parser::parse();
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
