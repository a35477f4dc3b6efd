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
