//! The background scavenger (Go: `bgscavenge` in `mgcscavenge.go`): returns free pages to the
//! OS so that resident memory follows the heap's needs and the memory limit.
//!
//! Each cycle's end sets two goals ([`crate::pacer::scavenge_goals`]): retained memory at most
//! `1.1 × heap in use × (next goal ÷ last goal)`, and mapped memory at most 95% of the memory
//! limit. While either is exceeded, this thread releases [`SCAVENGE_QUANTUM`] of free pages at a
//! time (highest addresses first, `madvise(MADV_DONTNEED)`), sleeping between quanta so that it
//! uses about 1% of the CPUs (Go: `scavengePercent`), at most one CPU. Allocation does the
//! urgent part itself: growing the heap past the memory limit releases pages synchronously (see
//! `Arena::alloc_pages`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::gc::heap::Shared;

/// Bytes released per step (Go: 64 KiB, `scavengeQuantum` in 1.19's background scavenger).
pub(crate) const SCAVENGE_QUANTUM: usize = 64 << 10;

/// Share of the CPUs the background scavenger aims to use (Go: `scavengePercent`, 1%).
const SCAVENGE_CPU_FRACTION: f64 = 0.01;

/// Whether mapped memory is above a scavenging goal.
fn has_work(h: &Shared) -> bool {
    let ready = h.arena.mapped_ready_bytes();
    ready > h.scavenge_goals.0.load(Ordering::Relaxed)
        || ready > h.scavenge_goals.1.load(Ordering::Relaxed)
}

/// Wake the scavenger (new goals were set).
pub(crate) fn wake(h: &Shared) {
    let _g = h.scavenger_wake.0.lock();
    h.scavenger_wake.1.notify_all();
}

/// The scavenger thread's body; returns when the collector shuts down (`bg_stop`).
pub(crate) fn run(h: &Shared) {
    let share = (SCAVENGE_CPU_FRACTION * h.cpus as f64).min(1.0);
    loop {
        {
            let mut g = h.scavenger_wake.0.lock();
            while !h.bg_stop.load(Ordering::Acquire) && !has_work(h) {
                h.scavenger_wake
                    .1
                    .wait_for(&mut g, Duration::from_millis(100));
            }
        }
        if h.bg_stop.load(Ordering::Acquire) {
            return;
        }
        let t = Instant::now();
        let n = h.arena.scavenge(SCAVENGE_QUANTUM);
        let took = t.elapsed();
        h.stats
            .scavenge_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        if n == 0 {
            // Over the goal with no free page left to release: the goals are recomputed at
            // the next cycle's end; look again later.
            let mut g = h.scavenger_wake.0.lock();
            h.scavenger_wake
                .1
                .wait_for(&mut g, Duration::from_millis(10));
            continue;
        }
        let sleep = took.as_secs_f64() * (1.0 / share - 1.0);
        std::thread::sleep(Duration::from_secs_f64(sleep.min(0.01)));
    }
}
