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
//!
//! **Over the limit, no pacing.** When the live heap has fallen (a phase of the program ended),
//! the pages it left are free but still mapped, and while mapped memory is over the memory
//! limit the pacer's limit-based goal subtracts the excess: it sits at the marked heap, and
//! cycles run back to back on a heap with nothing to free, since a cycle frees objects, not
//! pages. Allocation cannot help either, as it reuses those free pages instead of growing. At
//! 1% of the CPUs, releasing a few hundred MiB took 5–12 s, during which the collector ran tens
//! of thousands of cycles (about one CPU). So while mapped memory is over the limit itself and
//! the last cycle found at most half the limit live, the thread releases quantum after quantum
//! without sleeping, down to the limit; the 1% pacing takes over from there to 95% of it. Not
//! when more is live: a heap that lives near its limit (treechurn's 256 MiB under a 384 MiB
//! limit) needs those pages again before its next cycle, and releasing them in bursts cost it
//! 27% of its wall time in page faults, and msgbuf's pauses milliseconds (the `madvise` calls
//! hold the page lock and interrupt every thread).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::alloc::arena::Arena;
use crate::alloc::mheap::MHeap;
use crate::telemetry::metrics::Stats;
use crate::util::primitive::Monitor;

/// Bytes released per step (Go: 64 KiB, `scavengeQuantum` in 1.19's background scavenger).
pub(crate) const SCAVENGE_QUANTUM: usize = 64 << 10;

/// Share of the CPUs the background scavenger aims to use (Go: `scavengePercent`, 1%).
const SCAVENGE_CPU_FRACTION: f64 = 0.01;

/// How long the thread first waits, over a goal with no free page left to release, before it
/// looks again (unless woken: a cycle's end, a sweep's end, a new memory limit); each look that
/// finds nothing doubles the wait, up to [`NOTHING_FREE_WAIT_MAX`].
const NOTHING_FREE_WAIT_MIN: Duration = Duration::from_millis(10);

/// The longest wait between two looks that find nothing to release (see
/// [`NOTHING_FREE_WAIT_MIN`]).
const NOTHING_FREE_WAIT_MAX: Duration = Duration::from_secs(1);

/// The scavenger's goals and its thread's wake-up.
pub(crate) struct Scavenger {
    /// Retained bytes (GOGC part) and mapped bytes (memory-limit part) to scavenge down to;
    /// `usize::MAX` where there is nothing to do. Written at each cycle's end and when the
    /// memory limit changes.
    goals: (AtomicUsize, AtomicUsize),
    /// Wakes the scavenger thread.
    wake: Monitor,
    /// Set when the heap shuts down: the thread exits.
    stop: AtomicBool,
    /// Set by every wake-up ([`Scavenger::wake`]), cleared by the thread before it looks for
    /// pages to release: a wake-up that comes while it looks is not lost.
    woken: AtomicBool,
    /// Share of one CPU the thread may use.
    share: f64,
}

impl Scavenger {
    pub(crate) fn new(memory_limit: Option<usize>, procs: usize) -> Scavenger {
        let s = Scavenger {
            goals: (AtomicUsize::new(usize::MAX), AtomicUsize::new(usize::MAX)),
            wake: Monitor::default(),
            stop: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            share: (SCAVENGE_CPU_FRACTION * procs as f64).min(1.0),
        };
        s.set_memory_limit(memory_limit);
        s
    }

    /// Set both goals (a cycle ended); wake the thread if `wake`.
    pub(crate) fn set_goals(&self, retained: usize, mapped: usize, wake: bool) {
        self.goals.0.store(retained, Ordering::Relaxed);
        self.goals.1.store(mapped, Ordering::Relaxed);
        if wake {
            self.wake();
        }
    }

    /// The memory limit changed: mapped memory should stay under 95% of it. Wakes the thread.
    pub(crate) fn set_memory_limit(&self, limit: Option<usize>) {
        let goal = limit.map_or(usize::MAX, |l| l / 100 * 95);
        self.goals.1.store(goal, Ordering::Relaxed);
        self.wake();
    }

    /// Testing: the mapped-memory goal (95% of the memory limit; `usize::MAX` without one).
    #[cfg(test)]
    pub(crate) fn mapped_goal(&self) -> usize {
        self.goals.1.load(Ordering::Relaxed)
    }

    /// Wake the thread to look for pages to release: the goals changed, or a sweep has ended
    /// (it frees the pages of the spans it emptied).
    pub(crate) fn wake(&self) {
        self.woken.store(true, Ordering::Relaxed);
        self.wake.wake_all();
    }

    /// Stop the thread (heap shutdown).
    pub(crate) fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    /// Whether mapped memory is above a scavenging goal, and the heap releases pages at all
    /// (without that, a goal below the heap stays out of reach and the thread would look for
    /// pages to release every few milliseconds for as long as the program runs).
    fn has_work(&self, arena: &Arena) -> bool {
        let ready = arena.mapped_ready_bytes();
        arena.can_release()
            && (ready > self.goals.0.load(Ordering::Relaxed)
                || ready > self.goals.1.load(Ordering::Relaxed))
    }

    /// The scavenger thread's body; returns after [`Scavenger::shutdown`].
    pub(crate) fn run(&self, mheap: &MHeap, stats: &Stats) {
        let arena = &mheap.arena;
        let mut nothing_free_wait = NOTHING_FREE_WAIT_MIN;
        loop {
            {
                let mut g = self.wake.lock();
                while !self.stop.load(Ordering::Acquire) && !self.has_work(arena) {
                    g = self.wake.wait_for(g, Duration::from_millis(100));
                }
            }
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            // The thread's CPU time, not the wall clock: waiting for the arena's lock, or for a
            // CPU on a busy machine, is not scavenging (and the class must stay within the
            // collector threads' clocks, which `/gccore/cpu/collector-other` subtracts it from).
            let mut lap = crate::util::clock::CpuLap::start();
            self.woken.store(false, Ordering::Relaxed);
            stats.scavenge_looks.fetch_add(1, Ordering::Relaxed);
            let n = arena.scavenge(SCAVENGE_QUANTUM);
            let took = lap.finish();
            stats
                .scavenge_ns
                .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
            if n == 0 {
                // Over the goal with no free page left to release (the heap in use is above
                // it): pages come free when a sweep empties spans, and the goals move at a
                // cycle's end, both of which wake the thread. Until then it looks again after a
                // wait that doubles each time it finds nothing, so that a program that stays in
                // this state (an idle one: no cycle comes) is not polled 100 times a second for
                // as long as it runs.
                let g = self.wake.lock();
                if !self.woken.load(Ordering::Relaxed) && !self.stop.load(Ordering::Acquire) {
                    drop(self.wake.wait_for(g, nothing_free_wait));
                }
                nothing_free_wait = (nothing_free_wait * 2).min(NOTHING_FREE_WAIT_MAX);
                continue;
            }
            nothing_free_wait = NOTHING_FREE_WAIT_MIN;
            let pause = pace(
                took,
                self.share,
                arena.mapped_ready_bytes(),
                // The limit as the arena applies it (`usize::MAX`: none).
                arena.memory_limit.load(Ordering::Relaxed),
                mheap.counters.heap_marked.load(Ordering::Relaxed),
            );
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }
}

/// The longest the scavenger sleeps after one release, however long the release took.
const PACE_SLEEP_MAX: Duration = Duration::from_millis(10);

/// How long the scavenger sleeps after a release that took `took` of its CPU, with `mapped`
/// bytes mapped and ready, the memory limit at `limit` (`usize::MAX`: none) and `marked` bytes
/// found live by the last cycle: long enough that releasing takes `share` of a CPU
/// (`took × (1 ÷ share − 1)`, at most [`PACE_SLEEP_MAX`]), or not at all while over the limit
/// with at most half of it live (every moment then costs collections: module docs).
fn pace(took: Duration, share: f64, mapped: usize, limit: usize, marked: usize) -> Duration {
    if mapped > limit && marked <= limit / 2 {
        return Duration::ZERO;
    }
    // (A share of 0 would make it infinite or NaN, which `Duration` refuses: the cap then.)
    let secs = took.as_secs_f64() * (1.0 / share - 1.0);
    Duration::try_from_secs_f64(secs).map_or(PACE_SLEEP_MAX, |d| d.min(PACE_SLEEP_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scavenger's share is 1% of the CPUs, at most one CPU (past 100 CPUs its sleep
    /// between releases would be negative); its goal under a memory limit is 95% of it.
    #[test]
    fn the_share_is_at_most_one_cpu_and_the_goal_95_percent_of_the_limit() {
        assert!((Scavenger::new(None, 2).share - 0.02).abs() < 1e-12);
        assert_eq!(Scavenger::new(None, 256).share, 1.0);
        let s = Scavenger::new(Some(100 << 20), 2);
        assert_eq!(s.goals.1.load(Ordering::Relaxed), (100 << 20) / 100 * 95);
        assert_eq!(
            Scavenger::new(None, 2).goals.1.load(Ordering::Relaxed),
            usize::MAX
        );
    }

    /// Between releases the scavenger sleeps 1 ÷ share − 1 times what the release took, at
    /// most 10 ms (with the share at one CPU, not at all); over the memory limit with at most
    /// half of it live it does not sleep, with more live it does.
    #[test]
    fn the_scavenger_sleeps_for_its_share_except_over_the_limit_with_little_live() {
        const MIB: usize = 1 << 20;
        let us = Duration::from_micros;
        let none = usize::MAX;
        assert_eq!(pace(us(20), 0.02, 100 * MIB, none, 50 * MIB), us(980));
        assert_eq!(
            pace(us(1000), 0.02, 100 * MIB, none, 50 * MIB),
            PACE_SLEEP_MAX
        );
        assert_eq!(pace(us(20), 1.0, 100 * MIB, none, 50 * MIB), Duration::ZERO);
        // Under a limit of 100 MiB: over it with 50 MiB live, no sleep; with 60 MiB, the share.
        assert_eq!(
            pace(us(20), 0.02, 120 * MIB, 100 * MIB, 50 * MIB),
            Duration::ZERO
        );
        assert_eq!(pace(us(20), 0.02, 120 * MIB, 100 * MIB, 60 * MIB), us(980));
        // At the limit, not over it: the share.
        assert_eq!(pace(us(20), 0.02, 100 * MIB, 100 * MIB, 50 * MIB), us(980));
        // Under the limit: the share, however little is live.
        assert_eq!(pace(us(20), 0.02, 90 * MIB, 100 * MIB, MIB), us(980));
    }

    /// The thread releases free pages while mapped memory is over a goal, a quantum per look,
    /// down to the goal and no further. Over a goal with no free page (the pages in use are
    /// above it), it looks again after waits that double, not in a loop; shut down, it exits
    /// at once, also from such a wait.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "real time, and pages are released only where they are mapped"
    )]
    fn the_thread_releases_down_to_its_goal_and_waits_longer_when_nothing_is_free() {
        use crate::alloc::arena::{Fit, PAGE_SIZE};
        let mheap = MHeap::new(Arena::new(64 << 20).unwrap(), false, None, false);
        let arena = &mheap.arena;
        let stats = Stats::default();
        let looks = || stats.scavenge_looks.load(Ordering::Relaxed);
        const QUANTA: usize = 8;
        let npages = QUANTA * SCAVENGE_QUANTUM / PAGE_SIZE;
        // Pages in use, which no release can take, below a free run.
        arena.alloc_pages(4, Fit::Grow).unwrap();
        let start = arena.alloc_pages(npages, Fit::Grow).unwrap();
        arena.free_pages(start, npages);
        let ready = arena.mapped_ready_bytes();
        assert_eq!(ready, 4 * PAGE_SIZE + QUANTA * SCAVENGE_QUANTUM);
        if !arena.can_release() {
            // The system refused a release before (the arena found out at its creation).
            return;
        }
        let mut s = Scavenger::new(None, 2);
        // A share so small that every sleep after a release is the longest.
        s.share = 1e-6;
        let s = s;
        let goal = ready - QUANTA / 2 * SCAVENGE_QUANTUM;
        s.set_goals(goal, usize::MAX, false);
        let until = |what: &str, done: &dyn Fn() -> bool| {
            let t = std::time::Instant::now();
            while !done() {
                assert!(t.elapsed() < Duration::from_secs(10), "{what}: not in 10 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        /// Shuts the thread down when dropped, also when an assertion fails (else the scope
        /// would wait for the thread for ever).
        struct Shutdown<'a>(&'a Scavenger);
        impl Drop for Shutdown<'_> {
            fn drop(&mut self) {
                self.0.shutdown();
            }
        }
        std::thread::scope(|sc| {
            let _shutdown = Shutdown(&s);
            let t = std::time::Instant::now();
            let thread = sc.spawn(|| s.run(&mheap, &stats));
            until("down to the goal", &|| arena.mapped_ready_bytes() <= goal);
            let took = t.elapsed();
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(arena.mapped_ready_bytes(), goal, "released past the goal");
            assert_eq!(looks(), QUANTA as u64 / 2, "a quantum per look");
            assert!(stats.scavenge_ns.load(Ordering::Relaxed) > 0);
            // Paced: the longest sleep after each of the first three releases.
            assert!(took >= 3 * PACE_SLEEP_MAX, "four releases in {took:?}");
            // Every free page released, then over the goal with nothing free: looks about 10,
            // 20, 40, 80, 160, 320 and 640 ms after the last release (waits that double), so
            // the shutdown below, at about 400 ms, comes during a wait of 320 ms.
            s.set_goals(0, usize::MAX, true);
            until("every free page released", &|| {
                arena.free_ready_bytes() == 0
            });
            let (first, t) = (looks(), std::time::Instant::now());
            std::thread::sleep(Duration::from_millis(400));
            let idle = looks() - first;
            assert!(
                (1..=8).contains(&idle),
                "{idle} looks in {:?} with nothing free",
                t.elapsed()
            );
            let t = std::time::Instant::now();
            s.shutdown();
            thread.join().unwrap();
            assert!(
                t.elapsed() < Duration::from_millis(150),
                "the shutdown waited out the wait: {:?}",
                t.elapsed()
            );
        });
        assert_eq!(arena.mapped_ready_bytes(), 4 * PAGE_SIZE);
    }

    /// The thread has work while mapped memory is above either goal, each on its own (the
    /// retained goal a cycle's end sets, the mapped goal under a memory limit), and none at
    /// or below both; none at all where the arena cannot release pages.
    #[test]
    #[cfg_attr(miri, ignore = "the arena releases pages only where it is mapped")]
    fn there_is_work_above_either_goal_and_none_at_or_below_both() {
        type R = crate::Rootable!['gc => crate::Gc<'gc, [u64; 4]>];
        let heap = crate::Heap::new(crate::Config::default()).unwrap();
        // Some pages mapped.
        let _m: crate::Mutator<R> = heap.mutator(|mc| crate::Gc::new(mc, [1; 4]));
        let h = heap.shared();
        let arena = &h.mheap.arena;
        let s = Scavenger::new(None, 2);
        let ready = arena.mapped_ready_bytes();
        assert!(ready > 0);
        let work = |retained: usize, mapped: usize| {
            s.goals.0.store(retained, Ordering::Relaxed);
            s.goals.1.store(mapped, Ordering::Relaxed);
            s.has_work(arena)
        };
        if !arena.can_release() {
            assert!(!work(0, 0));
            return;
        }
        let none = usize::MAX;
        assert!(work(ready - 1, none), "above the retained goal");
        assert!(work(none, ready - 1), "above the mapped goal");
        assert!(work(0, 0));
        assert!(!work(ready, ready), "at both goals");
        assert!(!work(ready, none));
        assert!(!work(none, ready));
        assert!(!work(none, none));
    }
}
