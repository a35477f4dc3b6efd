//! Software prefetch: ask the CPU to start loading a cache line the caller will read soon, so
//! that the misses of a walk over cold metadata (spans being swept, objects being scanned)
//! overlap instead of coming one after another. A hint only: it reads no memory
//! architecturally, so any address is allowed, and it is a no-op off x86-64 and under Miri.

/// Prefetch the cache line holding `addr` into every cache level.
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: a prefetch is a hint that performs no architectural memory access; it cannot
    // fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = addr;
}

/// Prefetch the `lines` cache lines from `addr` on.
#[inline(always)]
pub(crate) fn prefetch_lines(addr: usize, lines: usize) {
    for l in 0..lines {
        prefetch(addr + l * 64);
    }
}
