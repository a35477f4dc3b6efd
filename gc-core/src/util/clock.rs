//! CPU-time clocks: the process's and the calling thread's (what marking and assists are booked
//! as, and what the GC CPU limiter compares them with).

/// Read a CPU-time clock (`CLOCK_PROCESS_CPUTIME_ID` or `CLOCK_THREAD_CPUTIME_ID`), in
/// nanoseconds. Under Miri, which has no CPU clocks, wall time since the first call stands in.
fn cpu_clock_ns(#[cfg_attr(miri, allow(unused_variables))] clock: libc::clockid_t) -> u64 {
    #[cfg(not(miri))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; both CPU-time clocks are supported by
        // every Linux (and POSIX) kernel. On failure `ts` stays zero.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(miri)]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

/// CPU time of the whole process (all threads), in nanoseconds.
pub(crate) fn process_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The CPU-time clock of the calling thread, which other threads can read with
/// [`clock_ns`] (`None` where it cannot be had, and under Miri).
pub(crate) fn this_thread_clock() -> Option<libc::clockid_t> {
    #[cfg(not(miri))]
    {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `pthread_self()` is the calling thread, alive during the call; `id` is a
        // valid, writable clockid.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
        (rc == 0).then_some(id)
    }
    #[cfg(miri)]
    None
}

/// Read a thread's CPU-time clock from [`this_thread_clock`] (0 once the thread has exited).
pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    cpu_clock_ns(clock)
}

/// CPU time of the calling thread, in nanoseconds: what marking is booked as, so that a
/// thread preempted in the middle of a slice (a busy machine) does not count the wait as GC
/// time.
pub(crate) fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// How much wall time passes between two reads of the thread's CPU clock by a [`CpuLap`].
pub(crate) const LAP: std::time::Duration = std::time::Duration::from_micros(100);

/// Books a thread's CPU time over many short stretches of work (slices of marking) without
/// reading its CPU clock after each: the thread's CPU clock is a system call (0.6 µs on a
/// virtual machine, where a slice of marking lasts a few microseconds, so reading it twice a
/// slice took a fifth of a background worker's time), while the wall clock is read in user
/// space (30 ns). [`CpuLap::lap`] looks at the wall clock and reads the CPU clock only once
/// [`LAP`] has passed since the last read, returning the CPU time since then; nothing is lost
/// between laps, only booked later. Go books its mark workers' and assists' time from the
/// wall clock alone; the CPU clock keeps a thread that was descheduled mid-stretch from
/// booking the wait as work.
pub(crate) struct CpuLap {
    cpu: u64,
    wall: std::time::Instant,
}

impl CpuLap {
    /// Start counting the calling thread's CPU time now.
    pub(crate) fn start() -> CpuLap {
        CpuLap {
            cpu: thread_cpu_ns(),
            wall: std::time::Instant::now(),
        }
    }

    /// The calling thread's CPU time since the last read, if [`LAP`] has passed since then.
    /// Must be called on the thread that started it.
    pub(crate) fn lap(&mut self) -> Option<std::time::Duration> {
        (self.wall.elapsed() >= LAP).then(|| self.finish())
    }

    /// The calling thread's CPU time since the last read, now (the end of the work).
    pub(crate) fn finish(&mut self) -> std::time::Duration {
        let now = thread_cpu_ns();
        let d = now.saturating_sub(self.cpu);
        self.cpu = now;
        self.wall = std::time::Instant::now();
        std::time::Duration::from_nanos(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A clock's seconds and nanoseconds make one count of nanoseconds: read between two
    /// reads of the same clock by `clock_gettime` itself (the monotonic clock, whose seconds
    /// since boot are many, so that a wrong scale of the seconds shows).
    #[test]
    #[cfg_attr(miri, ignore = "no clock_gettime under Miri")]
    fn a_clock_reads_as_nanoseconds() {
        let read = || {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec.
            assert_eq!(
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
                0
            );
            Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
        };
        let before = read();
        let ns = cpu_clock_ns(libc::CLOCK_MONOTONIC) as u128;
        let after = read();
        assert!(before.as_secs() > 0, "the premise: a second since boot");
        assert!(
            (before.as_nanos()..=after.as_nanos()).contains(&ns),
            "{ns} not within {before:?}..{after:?}"
        );
    }

    /// Laps come once per [`LAP`] of wall time, and laps plus the finish book exactly the
    /// thread's CPU time between the start and the finish: nothing is lost or counted twice.
    #[test]
    // Miri has no CPU clocks (wall time stands in), and its interpretation between the reads
    // would count against the bound below.
    #[cfg_attr(miri, ignore)]
    fn laps_book_all_of_the_threads_cpu_time_once() {
        let before = thread_cpu_ns();
        let mut lap = CpuLap::start();
        let (mut booked, mut laps) = (Duration::ZERO, 0u32);
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < 8 * LAP {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            if let Some(d) = lap.lap() {
                booked += d;
                laps += 1;
            }
        }
        // Laps come with the wall clock: a lap of wall time later, there is one to book.
        std::thread::sleep(LAP);
        let d = lap.lap().expect("a lap after LAP of wall time");
        booked += d;
        laps += 1;
        booked += lap.finish();
        let after = thread_cpu_ns();
        // At most one lap per LAP of wall time (fewer if the thread was descheduled).
        assert!((1..=9).contains(&laps), "{laps} laps in 9 × LAP");
        let total = Duration::from_nanos(after - before);
        assert!(booked <= total, "booked {booked:?} of {total:?}");
        // Only the two outer reads' own cost lies outside the laps.
        assert!(
            total - booked < Duration::from_micros(200),
            "booked {booked:?} of {total:?}"
        );
    }
}
