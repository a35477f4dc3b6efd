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

/// CPU time of the calling thread, in nanoseconds: what marking is booked as, so that a
/// thread preempted in the middle of a slice (a busy machine) does not count the wait as GC
/// time.
pub(crate) fn thread_cpu_ns() -> u64 {
    cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}
