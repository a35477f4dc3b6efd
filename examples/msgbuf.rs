//! msgbuf: the classic GC latency test: a window of recent messages, each a fresh 1 KiB
//! pointer-free buffer, with latency figures for pushes and stop-the-world pauses.
//!
//! ```sh
//! cargo run --release --example msgbuf -- [--window 200000] [--pushes 10000000] [--box]
//! ```
//!
//! The mutator's root is a GC array of `window` slots (`GcArray<Option<GcBytes>>`). Push `i`
//! allocates a new 1 KiB `GcBytes` (its first 8 bytes are `i`) and stores it in slot
//! `i % window` with the write barrier; the message it replaces becomes garbage, so the live heap
//! stays at about `window` KiB. Pushes run in mutation scopes of at most 1000, and a scope is left
//! early when the collector asks (`should_yield`), as an interpreter's loop would. A push is
//! timed from the end of the one before it to its own end, so the time to leave a scope and
//! enter the next (waiting for any pause there) counts in the first push of the new scope.
//! `--box` runs the same workload on `Vec<Option<Box<[u8]>>>` (no GC) as the floor. The answer,
//! `window sum: N` (the sum of the first bytes of the messages left in the window), is the
//! same for every implementation, which the benchmark lab checks.
//!
//! The last line is `key=value` pairs: `stw_count stw_p50_us stw_p99_us stw_max_us push_p50_us
//! push_p99_us push_p999_us push_max_us pushes_over_1ms pushes_over_2ms gc_cycles gc_cpu_frac
//! assist_ms heap_goal_mib heap_peak_mib rss_peak_mib wall_ms`, as treechurn's: pauses from the
//! heap's phase records, measured from the stop request, except `stw_max_us`, the heap's exact
//! `pause_max`; percentiles with `hdrhistogram`; push times are recorded in ns and printed in µs
//! with three decimals (a push takes well under a microsecond); `gc_cpu_frac` = CPU time of the
//! collector threads ÷ (wall time × CPUs); `heap_peak_mib` = the arena's mapped high-water mark.
//! Then the pacing and CPU keys (`GcReport::pacing_keys`) and the push latency distribution as
//! `lat_p50_us … lat_p999999_us lat_max_us` (`gc_examples::lab_data`, which also writes the
//! run's detailed data for the benchmark lab). `MSGBUF_PAUSES=1` also prints every pause, with
//! its cycle and phase, on stderr.

use std::time::Instant;

use gc_core::{Config, GcArray, GcBytes, Heap, Mutator, Rootable};
use gc_examples::{GcReport, WARMUP_CYCLES, gc_cpu_frac, rss_peak_mib};
use hdrhistogram::Histogram;

/// Bytes per message.
const MSG_BYTES: usize = 1024;

/// Pushes per mutation scope (fewer when the collector asks the mutator to yield).
const SCOPE_PUSHES: usize = 1000;

type R = Rootable!['gc => GcArray<'gc, Option<GcBytes<'gc>>>];

/// The message of push `i`: zeroes with `i` in its first 8 bytes.
fn message(buf: &mut [u8; MSG_BYTES], i: usize) -> &[u8] {
    buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
    buf
}

/// Go's `gc_latency` benchmark: a window of 1 KiB messages, each push replacing the oldest;
/// prints push-latency percentiles and the collector's figures as `key=value` pairs.
#[derive(clap::Parser)]
#[command(name = "msgbuf")]
struct Args {
    /// Messages kept alive (the window).
    #[arg(long, default_value_t = 200_000, value_parser = gc_examples::positive)]
    window: usize,
    /// Messages pushed in all.
    #[arg(long, default_value_t = 10_000_000)]
    pushes: usize,
    /// Run on `Box` (no GC), the zero-overhead baseline.
    #[arg(long = "box")]
    boxed: bool,
}

/// The pushes on gc-core; returns the push latencies in ns.
fn run_gc(heap: &Heap, a: &Args) -> Histogram<u64> {
    let mut lat = Histogram::<u64>::new(3).unwrap();
    let mut m: Mutator<R> = heap.mutator(|mc| GcArray::new(mc, a.window, None));
    let mut buf = [0u8; MSG_BYTES];
    let mut i = 0;
    let mut last = Instant::now();
    while i < a.pushes {
        m.mutate(|mc, win| {
            let end = (i + SCOPE_PUSHES).min(a.pushes);
            while i < end {
                let msg = GcBytes::new(mc, message(&mut buf, i));
                win.set(mc, i % a.window, Some(msg));
                let now = Instant::now();
                lat.record((now - last).as_nanos() as u64).unwrap();
                last = now;
                i += 1;
                if mc.should_yield() {
                    break;
                }
            }
        });
    }
    let sum = m.mutate(|_, win| {
        win.iter()
            .flatten()
            .map(|b| b.as_bytes()[0] as u64)
            .sum::<u64>()
    });
    println!("window sum: {sum}");
    lat
}

/// The same pushes on `Box` (no GC).
fn run_box(a: &Args) -> Histogram<u64> {
    let mut lat = Histogram::<u64>::new(3).unwrap();
    let mut win: Vec<Option<Box<[u8]>>> = (0..a.window).map(|_| None).collect();
    let mut buf = [0u8; MSG_BYTES];
    let mut last = Instant::now();
    for i in 0..a.pushes {
        win[i % a.window] = Some(Box::from(message(&mut buf, i)));
        let now = Instant::now();
        lat.record((now - last).as_nanos() as u64).unwrap();
        last = now;
    }
    let sum: u64 = win.iter().flatten().map(|b| b[0] as u64).sum();
    println!("window sum: {sum}");
    lat
}

fn main() {
    let a: Args = clap::Parser::parse();
    let start = Instant::now();
    let heap = (!a.boxed).then(|| {
        let config = Config::from_env().unwrap_or_else(|e| {
            eprintln!("msgbuf: {e}");
            std::process::exit(2)
        });
        Heap::new(config).unwrap_or_else(|e| {
            eprintln!("msgbuf: {e}");
            std::process::exit(2)
        })
    });
    let lat = match &heap {
        Some(heap) => run_gc(heap, &a),
        None => run_box(&a),
    };
    let wall = start.elapsed();
    let gc_cpu_frac = gc_cpu_frac(wall);
    let report = GcReport::take(heap.as_ref(), "MSGBUF_PAUSES", WARMUP_CYCLES + 1);
    let pacing = report.pacing_keys();
    let GcReport {
        stw,
        stw_max_us: smax,
        gc_cycles: cycles,
        heap_peak_mib: heap_peak,
        assist_ms,
        heap_goal_mib: goal_mib,
        ..
    } = report;
    let (s50, s99) = (stw.value_at_quantile(0.5), stw.value_at_quantile(0.99));
    let us = |q: f64| lat.value_at_quantile(q) as f64 / 1e3;
    let over = |ns: u64| lat.count_between(ns + 1, u64::MAX);
    let mode = if a.boxed { "box" } else { "gc" };
    let lat_keys = gc_examples::lab_data::latency(&lat, 1.0);
    println!(
        "msgbuf {mode} window={} pushes={} msg_bytes={MSG_BYTES} scope_pushes={SCOPE_PUSHES}",
        a.window, a.pushes
    );
    println!(
        "mode={mode} window={} pushes={} stw_count={} stw_p50_us={s50} stw_p99_us={s99} \
         stw_max_us={smax} push_p50_us={:.3} push_p99_us={:.3} push_p999_us={:.3} \
         push_max_us={:.3} pushes_over_1ms={} pushes_over_2ms={} gc_cycles={cycles} \
         gc_cpu_frac={gc_cpu_frac:.3} assist_ms={assist_ms:.1} heap_goal_mib={goal_mib:.1} \
         heap_peak_mib={heap_peak:.1} rss_peak_mib={:.1} wall_ms={} {pacing} {lat_keys}",
        a.window,
        a.pushes,
        stw.len(),
        us(0.5),
        us(0.99),
        us(0.999),
        lat.max() as f64 / 1e3,
        over(1_000_000),
        over(2_000_000),
        rss_peak_mib(),
        wall.as_millis(),
    );
}
