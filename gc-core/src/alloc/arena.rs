//! The arena: one virtual reservation, divided into 8 KiB pages, handed out as runs of pages.
//!
//! At start-up the heap reserves one large range of address space (default 64 GiB) with an
//! anonymous `MAP_NORESERVE` mapping through `memmap2`. Nothing is committed: the kernel backs a
//! page with memory the first time it is touched, so the reservation costs address space only.
//! Reserving once means every heap address lies in `[base, base + len)`, which makes "is this a
//! heap pointer" one comparison and "which span owns this address" one array load.
//!
//! * **Page allocator** (Go: `mheap`/`pageAlloc`): free runs of pages are kept in two ordered
//!   maps (by start and by length) under one lock; allocation is best-fit, freeing coalesces with
//!   both neighbours. Pages never handed out lie above the **high-water mark** and are untouched.
//! * **Page map** (Go: `mheap_.spans`): one `AtomicPtr<Span>` per page of the reservation, itself
//!   in a lazily committed mapping (8 bytes per 8 KiB page, 0.1 %). A span publishes itself by
//!   storing its pointer for each of its pages with `Release`; the marker loads with `Acquire`.
//!
//! * **Released pages** (Go: the scavenged bits of `pageAlloc`): free pages the scavenger has
//!   returned to the OS with `madvise(MADV_DONTNEED)` have a bit set in a per-page bitmap. They
//!   stay in the free runs (coalescing ignores the bit); allocating a run clears its bits, and the
//!   kernel supplies fresh zero pages on first touch. So *mapped and not released* memory (Go:
//!   `mappedReady`) is the high-water mark minus the released pages.
//!
//! Under Miri (which cannot `mmap`), the reservation and the page map come from the global
//! allocator instead, and the default reservation is small; everything above the backing is the
//! same code.

use std::collections::{BTreeMap, BTreeSet};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::alloc::span::Span;
use crate::util::error::HeapError;

/// log2 of the page size.
pub const PAGE_SHIFT: usize = 13;
/// Page size: 8 KiB, as Go's runtime uses.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Free runs `alloc_pages` considers (best fit first) to find one without released pages.
const FIT_CANDIDATES: usize = 8;

/// Which runs [`Arena::alloc_pages_zeroed`] may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Only a free run with no released page (memory that is resident already).
    Ready,
    /// Any free run, preferring one without released pages, else new pages above the
    /// high-water mark.
    Grow,
}

/// Pages a single allocation releases at most beyond its own growth (the background
/// scavenger does the rest): each released stretch is a system call under the page lock,
/// and a mutator holding it cannot reach a safepoint.
const SYNC_SCAVENGE_SLACK: usize = 16;

/// The smallest reservation accepted: room for the largest small-object span, 16 pages (the
/// configuration's figure, which checks `GCCORE_ARENA` against it).
pub const MIN_RESERVATION: usize = crate::util::config::MIN_ARENA_BYTES;
const _: () = assert!(MIN_RESERVATION == 16 * PAGE_SIZE);

/// Raw memory behind the arena and the page map.
struct Backing {
    ptr: *mut u8,
    #[cfg(not(miri))]
    _map: memmap2::MmapMut,
    #[cfg(miri)]
    layout: std::alloc::Layout,
}

impl Backing {
    fn reserve(len: usize) -> std::io::Result<Backing> {
        #[cfg(not(miri))]
        {
            let mut map = memmap2::MmapOptions::new()
                .len(len)
                .no_reserve_swap()
                .map_anon()?;
            let ptr = map.as_mut_ptr();
            Ok(Backing { ptr, _map: map })
        }
        #[cfg(miri)]
        {
            let layout = std::alloc::Layout::from_size_align(len, PAGE_SIZE)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            // SAFETY: `layout` has non-zero size (callers reserve at least MIN_RESERVATION).
            let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
            if ptr.is_null() {
                return Err(std::io::Error::from(std::io::ErrorKind::OutOfMemory));
            }
            Ok(Backing { ptr, layout })
        }
    }
}

#[cfg(miri)]
impl Drop for Backing {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed(self.layout)` and is freed once, here.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Free runs of pages, protected by `Arena::pages`.
#[derive(Default)]
struct PageAlloc {
    /// start page → length.
    by_start: BTreeMap<usize, usize>,
    /// (length, start): best fit is the first entry at or above the wanted length.
    by_len: BTreeSet<(usize, usize)>,
    /// Pages at or above this index have never been handed out.
    high_water: usize,
    /// Pages currently in spans.
    in_use: usize,
    /// One bit per page below the high-water mark: set if the page is free and released.
    released: Vec<u64>,
    /// Pages with their `released` bit set.
    released_pages: usize,
    /// No free page at or above this index is unreleased (Go: the scavenger's search
    /// address): scavenging starts below it instead of walking every released run again.
    scav_hint: usize,
    /// Free pages out of the free runs while [`Arena::scavenge`] releases them without the
    /// lock: an allocation that finds no room waits for them instead of failing.
    scavenging: usize,
}

impl PageAlloc {
    fn insert(&mut self, start: usize, len: usize) {
        self.by_start.insert(start, len);
        self.by_len.insert((len, start));
    }
    fn remove(&mut self, start: usize, len: usize) {
        self.by_start.remove(&start);
        self.by_len.remove(&(len, start));
    }

    /// Set the released bits of `[start, start + len)`, pages that were not released (their
    /// `madvise` has just succeeded).
    fn mark_released(&mut self, start: usize, len: usize) {
        for p in start..start + len {
            self.released[p / 64] |= 1 << (p % 64);
        }
        self.released_pages += len;
    }

    /// Clear the released bits of `[start, start + len)` (pages being allocated); returns how
    /// many were set.
    fn unrelease(&mut self, start: usize, len: usize) -> usize {
        let mut n = 0;
        for p in start..(start + len).min(self.released.len() * 64) {
            let (w, b) = (p / 64, 1u64 << (p % 64));
            if self.released[w] & b != 0 {
                self.released[w] &= !b;
                n += 1;
            }
        }
        self.released_pages -= n;
        n
    }

    /// The highest stretch of free, unreleased pages below the scavenge hint, at most `max`
    /// pages: `(run start, run length, stretch start, stretch length)`. Lowers the hint past
    /// the runs it finds fully released.
    fn unreleased_stretch(&mut self, max: usize) -> Option<(usize, usize, usize, usize)> {
        let mut key = self.scav_hint;
        while let Some((&start, &len)) = self.by_start.range(..key).next_back() {
            // The highest unreleased page of the run, then the stretch below it.
            let mut p = start + len;
            while p > start && self.released[(p - 1) / 64] & (1 << ((p - 1) % 64)) != 0 {
                p -= 1;
            }
            if p > start {
                let end = p;
                while p > start
                    && end - p < max
                    && self.released[(p - 1) / 64] & (1 << ((p - 1) % 64)) == 0
                {
                    p -= 1;
                }
                self.scav_hint = start + len;
                return Some((start, len, p, end - p));
            }
            key = start;
        }
        self.scav_hint = key;
        None
    }

    /// Whether any page of `[start, start + len)` is released.
    fn any_released(&self, start: usize, len: usize) -> bool {
        (start..start + len).any(|p| {
            self.released
                .get(p / 64)
                .is_some_and(|w| w & (1 << (p % 64)) != 0)
        })
    }

    /// Pages touched and not released.
    fn ready(&self) -> usize {
        self.high_water - self.released_pages
    }
}

/// The reservation, its page allocator and its page map.
pub(crate) struct Arena {
    base: usize,
    len: usize,
    npages: usize,
    memory: Backing,
    /// One `AtomicPtr<Span>` per page (all null at start: zeroed memory).
    page_map: Backing,
    pages: Mutex<PageAlloc>,
    /// Bytes of pages ever handed out (the high-water mark), for metrics.
    mapped: AtomicUsize,
    /// Bytes of pages released to the OS (free and not backed).
    released: AtomicUsize,
    /// Bytes of free pages (released or not).
    free: AtomicUsize,
    /// The soft memory limit (`usize::MAX`: none): growing the heap past it releases free
    /// pages first (Go: `allocSpan`'s scavenging when over the limit).
    pub(crate) memory_limit: AtomicUsize,
    /// Retained memory the scavenger aims at (`usize::MAX`: none); growing past it releases at
    /// most as much as the growth (Go: the `gcPercentGoal` part of `allocSpan`'s scavenging).
    pub(crate) retain_goal: AtomicUsize,
    /// Bytes released by allocations (the synchronous part) and CPU nanoseconds it took.
    pub(crate) sync_released: AtomicUsize,
    pub(crate) sync_scavenge_ns: AtomicUsize,
    /// Whether free pages can be released to the OS such that they read as zero afterwards
    /// ([`release_supported`]); cleared for good the first time an `madvise` fails (memory
    /// locked with `mlock`/`mlockall`). While false nothing is released, so no page is marked
    /// released and none is taken for zero that was not fresh.
    can_release: AtomicBool,
}

/// Whether this system releases an arena page to the OS exactly and reads it as zeros
/// afterwards: `MADV_DONTNEED` on a private anonymous mapping gives zero pages on Linux only
/// (elsewhere the contents may stay), and it acts on whole OS pages, so an OS page larger than
/// an arena page (16 KiB or 64 KiB pages on some arm64 and ppc64 kernels) would zero the live
/// neighbours of a free page. Elsewhere the heap returns no memory to the OS.
fn release_supported() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    // SAFETY: `sysconf` reads a configuration value; it has no preconditions.
    releases_exactly(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
}

/// Whether an OS page of `os_page` bytes (`sysconf`'s answer: -1 if unknown) divides an arena
/// page, so that releasing whole arena pages releases nothing else.
fn releases_exactly(os_page: libc::c_long) -> bool {
    os_page > 0 && PAGE_SIZE.is_multiple_of(os_page as usize)
}

// SAFETY: the raw pointers in `Backing` point to memory owned by the arena for its whole life;
// all shared mutable state is atomic (`page_map`, `mapped`) or behind `pages`' mutex.
unsafe impl Send for Arena {}
// SAFETY: as for `Send`.
unsafe impl Sync for Arena {}

impl Arena {
    /// Reserve `len` bytes (rounded down to whole pages).
    pub(crate) fn new(len: usize) -> Result<Arena, HeapError> {
        let len = len & !(PAGE_SIZE - 1);
        if len < MIN_RESERVATION {
            return Err(HeapError::ReservationTooSmall {
                requested: len,
                minimum: MIN_RESERVATION,
            });
        }
        let npages = len / PAGE_SIZE;
        let memory = Backing::reserve(len).map_err(HeapError::Reserve)?;
        let map_bytes = npages * std::mem::size_of::<AtomicPtr<Span>>();
        let page_map = Backing::reserve(map_bytes.max(PAGE_SIZE)).map_err(HeapError::Reserve)?;
        Ok(Arena {
            base: memory.ptr as usize,
            len,
            npages,
            memory,
            page_map,
            pages: Mutex::new(PageAlloc::default()),
            mapped: AtomicUsize::new(0),
            released: AtomicUsize::new(0),
            free: AtomicUsize::new(0),
            memory_limit: AtomicUsize::new(usize::MAX),
            retain_goal: AtomicUsize::new(usize::MAX),
            sync_released: AtomicUsize::new(0),
            sync_scavenge_ns: AtomicUsize::new(0),
            can_release: AtomicBool::new(release_supported()),
        })
    }

    /// The reservation's first address (aligned to the OS page only); pages are counted from it.
    #[inline]
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Reservation length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether `addr` lies in the reservation.
    #[inline]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    /// Bytes of pages ever handed out.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Bytes of pages currently in spans.
    pub(crate) fn in_use_bytes(&self) -> usize {
        self.pages.lock().in_use * PAGE_SIZE
    }

    /// Whether free pages are released to the OS (see the field `can_release`).
    pub(crate) fn can_release(&self) -> bool {
        self.can_release.load(Ordering::Relaxed)
    }

    /// Stop releasing pages for good, as a refused `madvise` does (a test hook: the heap then
    /// behaves as on a system where releasing is not supported). Pages released before stay
    /// released (they read as zero when reused); none is released after, but a release
    /// already under way completes (its pages are then marked released too).
    pub(crate) fn stop_releasing(&self) {
        self.can_release.store(false, Ordering::Relaxed);
    }

    /// Bytes of pages released to the OS (Go: `/memory/classes/heap/released:bytes`).
    pub(crate) fn released_bytes(&self) -> usize {
        self.released.load(Ordering::Relaxed)
    }

    /// Bytes of free pages not released (Go: `heapFree`).
    pub(crate) fn free_ready_bytes(&self) -> usize {
        self.free
            .load(Ordering::Relaxed)
            .saturating_sub(self.released.load(Ordering::Relaxed))
    }

    /// Bytes of pages touched and not released (Go: `mappedReady`, the heap part).
    pub(crate) fn mapped_ready_bytes(&self) -> usize {
        self.mapped
            .load(Ordering::Relaxed)
            .saturating_sub(self.released.load(Ordering::Relaxed))
    }

    /// Release every free page to the OS now, on the calling thread (`Heap::free_os_memory`;
    /// Go: `mheap.scavengeAll`), booked as synchronous scavenging like allocation's; returns
    /// the bytes released.
    pub(crate) fn scavenge_all(&self) -> usize {
        let t = std::time::Instant::now();
        let mut released = 0;
        loop {
            let n = self.scavenge(usize::MAX);
            if n == 0 {
                break;
            }
            released += n;
        }
        self.sync_released.fetch_add(released, Ordering::Relaxed);
        self.sync_scavenge_ns
            .fetch_add(t.elapsed().as_nanos() as usize, Ordering::Relaxed);
        released
    }

    /// Release up to `max_bytes` of free pages to the OS, the highest unreleased stretch first
    /// (Go: `pageAlloc.scavenge`), without holding the page lock during the system call: the
    /// stretch is taken out of the free runs (so no allocation can take it meanwhile), released,
    /// and put back marked released (or, if the OS refused, put back unmarked). Returns the
    /// bytes released. (The background scavenger's
    /// path; allocation releases with the lock held, see `scavenge_for_growth`.)
    pub(crate) fn scavenge(&self, max_bytes: usize) -> usize {
        if !self.can_release.load(Ordering::Relaxed) {
            return 0;
        }
        let max_pages = max_bytes.div_ceil(PAGE_SIZE);
        let (first, n) = {
            let mut pa = self.pages.lock();
            let Some((start, len, first, n)) = pa.unreleased_stretch(max_pages) else {
                return 0;
            };
            pa.remove(start, len);
            if first > start {
                pa.insert(start, first - start);
            }
            if first + n < start + len {
                pa.insert(first + n, start + len - (first + n));
            }
            // Still counted in `free` while out of the runs (and put back without adding it
            // again): the pacer's figures (free ready bytes, and so the non-heap memory a
            // memory limit leaves out) must not see the stretch as something else for the
            // length of the system call.
            pa.scavenging += n;
            (first, n)
        };
        #[cfg(test)]
        tests::DURING_RELEASE.with(|f| {
            if let Some(f) = f.get() {
                f(self)
            }
        });
        let released = self.release_to_os(first, n);
        let mut pa = self.pages.lock();
        pa.scavenging -= n;
        if !released {
            // Still resident, with whatever it held: a free run again, not marked released.
            Self::insert_run(&mut pa, first, n);
            return 0;
        }
        pa.mark_released(first, n);
        self.released
            .store(pa.released_pages * PAGE_SIZE, Ordering::Relaxed);
        Self::insert_run(&mut pa, first, n);
        n * PAGE_SIZE
    }

    /// [`Arena::scavenge`] of up to `max_pages` with the page lock held.
    fn scavenge_locked(&self, pa: &mut PageAlloc, max_pages: usize) -> usize {
        if !self.can_release.load(Ordering::Relaxed) {
            return 0;
        }
        let mut done = 0;
        let mut key = pa.scav_hint;
        'runs: while let Some((&start, &len)) = pa.by_start.range(..key).next_back() {
            let mut p = start;
            while p < start + len {
                if done >= max_pages {
                    // This run may have unreleased pages left.
                    key = start + len;
                    break 'runs;
                }
                // Skip released pages (a whole word at a time where possible), then take the
                // longest unreleased stretch that fits.
                if p % 64 == 0 && pa.released[p / 64] == u64::MAX {
                    p += 64;
                    continue;
                }
                if pa.released[p / 64] & (1 << (p % 64)) != 0 {
                    p += 1;
                    continue;
                }
                let first = p;
                while p < start + len
                    && p - first < max_pages - done
                    && pa.released[p / 64] & (1 << (p % 64)) == 0
                {
                    p += 1;
                }
                if !self.release_to_os(first, p - first) {
                    // Still resident: releasing is off from now on.
                    break 'runs;
                }
                pa.mark_released(first, p - first);
                done += p - first;
            }
            key = start;
        }
        pa.scav_hint = key;
        self.released
            .store(pa.released_pages * PAGE_SIZE, Ordering::Relaxed);
        done * PAGE_SIZE
    }

    /// `madvise(MADV_DONTNEED)` the pages `[first, first + n)`; whether they were released
    /// (and so read as zero from now on). A failure (pages locked in memory) turns releasing
    /// off for good (`can_release`): the pages stay resident with their contents.
    /// Its callers do not call it once releasing is off.
    fn release_to_os(&self, first: usize, n: usize) -> bool {
        #[cfg(not(miri))]
        {
            // SAFETY: the pages are free: no span owns them, so no object lives there and no
            // reference or pointer the collector or a mutator may dereference points into them
            // (a span's pages are unpublished before they are freed). DONTNEED on a private
            // anonymous mapping only replaces their contents with zero pages on the next touch,
            // and the range lies inside the mapping.
            let r = unsafe {
                self.memory._map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    first * PAGE_SIZE,
                    n * PAGE_SIZE,
                )
            };
            if r.is_err() {
                self.can_release.store(false, Ordering::Relaxed);
                return false;
            }
            true
        }
        // Releasing does nothing under Miri, so released pages are not known zero there
        // (`alloc_pages_zeroed`).
        #[cfg(miri)]
        {
            let _ = (first, n);
            true
        }
    }

    #[inline]
    fn page_slot(&self, page: usize) -> &AtomicPtr<Span> {
        debug_assert!(page < self.npages);
        // SAFETY: the page map holds `npages` zero-initialised `AtomicPtr`s (a null pointer is
        // all-zero bytes) in memory owned by `self`; `page < npages` is checked by every caller.
        unsafe { &*(self.page_map.ptr as *const AtomicPtr<Span>).add(page) }
    }

    /// The span owning `addr`, or null if `addr` is not in an in-use span.
    #[inline]
    pub(crate) fn span_of(&self, addr: usize) -> *const Span {
        if !self.contains(addr) {
            return ptr::null();
        }
        // Acquire pairs with the Release in `publish`: the span's fields are initialised before
        // anyone can find it here.
        self.page_slot((addr - self.base) >> PAGE_SHIFT)
            .load(Ordering::Acquire)
    }

    /// The span owning `addr`, or `None` if `addr` is not in an in-use span.
    ///
    /// # Safety
    /// The span found must not be freed (nor its metadata reused) while the reference is used:
    /// `addr` lies in an object that stays allocated meanwhile (reachable, or allocated in the
    /// caller's scope), or no span can be freed meanwhile (the world is stopped and sweeping is
    /// done, or the weak-clearing window is open).
    #[inline]
    pub(crate) unsafe fn span_of_live(&self, addr: usize) -> Option<&Span> {
        let span = self.span_of(addr);
        // SAFETY: non-null page-map entries point to in-use spans (published initialised,
        // unpublished before they are freed); by the contract it stays so while in use.
        (!span.is_null()).then(|| unsafe { &*span })
    }

    /// Point every page of `[addr, addr + npages pages)` at `span` (or null to unpublish).
    pub(crate) fn publish(&self, addr: usize, npages: usize, span: *const Span) {
        let first = (addr - self.base) >> PAGE_SHIFT;
        for p in first..first + npages {
            self.page_slot(p)
                .store(span as *mut Span, Ordering::Release);
        }
    }

    /// Allocate a run of `npages` pages, from the runs `fit` allows. Returns its address, or
    /// `None` if none fits (with [`Fit::Grow`]: the reservation is exhausted).
    #[cfg(test)]
    pub(crate) fn alloc_pages(&self, npages: usize, fit: Fit) -> Option<usize> {
        self.alloc_pages_zeroed(npages, fit).map(|(addr, _)| addr)
    }

    /// Allocate a run of `npages` pages, from the runs `fit` allows: its address, or `None` if
    /// none fits (with [`Fit::Grow`]: the reservation is exhausted), and whether every byte of
    /// the run is known to be zero (Go: the negation of `needzero`): pages above the high-water mark were never touched since the
    /// anonymous private mapping was made, and released pages (`MADV_DONTNEED`) read as zero
    /// on their next touch; a run of only such pages is zero. A run with any page used since
    /// (freed by a span, not released) is not. (Under Miri releasing does nothing, so only the
    /// pages above the high-water mark count.)
    pub(crate) fn alloc_pages_zeroed(&self, npages: usize, fit: Fit) -> Option<(usize, bool)> {
        let mut pa = self.pages.lock();
        // Free pages the background scavenger holds out of the free runs while it releases
        // them (microseconds): an allocation that finds no room without them waits for them
        // rather than failing with the arena full of free pages.
        while fit == Fit::Grow
            && pa.scavenging > 0
            && pa.high_water + npages > self.npages
            && pa.by_len.range((npages, 0)..).next().is_none()
        {
            drop(pa);
            std::thread::yield_now();
            pa = self.pages.lock();
        }
        // Best fit, but among the few best-fitting runs prefer one without released pages:
        // reusing released pages makes memory resident again, which under a memory limit
        // means releasing other pages right away (a run of small `madvise` calls).
        let found = {
            let mut fits = pa.by_len.range((npages, 0)..).take(FIT_CANDIDATES);
            let first = fits.next().copied();
            match first {
                Some((_, s)) if pa.any_released(s, npages) => fits
                    .find(|&&(_, s)| !pa.any_released(s, npages))
                    .copied()
                    .or(first.filter(|_| fit == Fit::Grow)),
                f => f,
            }
        };
        let (start, growth, zeroed) = match found {
            Some((len, start)) => {
                pa.remove(start, len);
                if len > npages {
                    pa.insert(start + npages, len - npages);
                }
                self.free.fetch_sub(npages * PAGE_SIZE, Ordering::Relaxed);
                let reused = pa.unrelease(start, npages);
                self.released
                    .store(pa.released_pages * PAGE_SIZE, Ordering::Relaxed);
                (start, reused, reused == npages && cfg!(not(miri)))
            }
            None => {
                if fit == Fit::Ready || pa.high_water + npages > self.npages {
                    return None;
                }
                let start = pa.high_water;
                pa.high_water += npages;
                let words = pa.high_water.div_ceil(64);
                if pa.released.len() < words {
                    pa.released.resize(words, 0);
                }
                self.mapped
                    .store(pa.high_water * PAGE_SIZE, Ordering::Relaxed);
                (start, npages, true)
            }
        };
        pa.in_use += npages;
        if growth > 0 {
            self.scavenge_for_growth(&mut pa, growth);
        }
        Some((self.base + start * PAGE_SIZE, zeroed))
    }

    /// Whether retained memory (touched, not released) is over the scavenger's goal or 95% of
    /// the memory limit (the scavenger's own bound): then freed pages should go back to the
    /// page allocator, where the scavenger can release them, rather than be kept in spans.
    /// Never where nothing can be released (mapped memory then never falls).
    pub(crate) fn over_retain_goal(&self) -> bool {
        let goal = self.retain_goal.load(Ordering::Relaxed);
        let limit = self.memory_limit.load(Ordering::Relaxed) / 100 * 95;
        self.can_release() && self.mapped_ready_bytes() > goal.min(limit)
    }

    /// The heap just grew by `growth` backed pages: release free pages so that mapped memory
    /// stays under the memory limit, and release up to `growth` pages if retained memory is over
    /// the scavenger's goal (Go: the scavenging in `mheap.allocSpan`).
    fn scavenge_for_growth(&self, pa: &mut PageAlloc, growth: usize) {
        let ready = pa.ready();
        let limit = self.memory_limit.load(Ordering::Relaxed) / PAGE_SIZE;
        let goal = self.retain_goal.load(Ordering::Relaxed) / PAGE_SIZE;
        let mut todo = ready.saturating_sub(limit);
        todo += ready.saturating_sub(goal).min(growth);
        let todo = todo.min(growth + SYNC_SCAVENGE_SLACK);
        if todo > 0 && pa.released_pages < pa.high_water - pa.in_use {
            let t = std::time::Instant::now();
            let n = self.scavenge_locked(pa, todo);
            self.sync_released.fetch_add(n, Ordering::Relaxed);
            self.sync_scavenge_ns
                .fetch_add(t.elapsed().as_nanos() as usize, Ordering::Relaxed);
        }
    }

    /// Return a run of pages obtained from `alloc_pages`, coalescing with free neighbours.
    ///
    /// The run's pages must be unpublished first (`publish(addr, npages, null)`): once free, they
    /// may be taken and published by another thread's new span at any moment, and a late null
    /// store would hide that span from the marker, which then frees its reachable objects.
    pub(crate) fn free_pages(&self, addr: usize, npages: usize) {
        debug_assert!(
            (0..npages).all(|i| self.span_of(addr + i * PAGE_SIZE).is_null()),
            "pages freed while still published in the page map"
        );
        let mut pa = self.pages.lock();
        pa.in_use -= npages;
        self.insert_free(&mut pa, (addr - self.base) >> PAGE_SHIFT, npages);
    }

    /// Make pages `[start, start + len)` a free run again, coalescing with free neighbours.
    fn insert_free(&self, pa: &mut PageAlloc, start: usize, len: usize) {
        self.free.fetch_add(len * PAGE_SIZE, Ordering::Relaxed);
        Self::insert_run(pa, start, len);
    }

    /// Put a run back into the free runs, coalescing with its neighbours, without counting it
    /// in `free` (a run that stayed counted while out of them: [`Arena::scavenge`]).
    fn insert_run(pa: &mut PageAlloc, mut start: usize, mut len: usize) {
        if let Some((&ps, &pl)) = pa.by_start.range(..start).next_back()
            && ps + pl == start
        {
            pa.remove(ps, pl);
            start = ps;
            len += pl;
        }
        if let Some(&nl) = pa.by_start.get(&(start + len)) {
            pa.remove(start + len, nl);
            len += nl;
        }
        pa.insert(start, len);
        pa.scav_hint = pa.scav_hint.max(start + len);
    }

    /// Raw pointer to the first byte of the reservation (for tests and teardown checks).
    #[allow(dead_code)]
    pub(crate) fn memory_ptr(&self) -> *mut u8 {
        self.memory.ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_small_is_an_error() {
        match Arena::new(PAGE_SIZE) {
            Err(HeapError::ReservationTooSmall { minimum, .. }) => {
                assert_eq!(minimum, MIN_RESERVATION)
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a one-page reservation was accepted"),
        }
    }

    /// Retained memory is over the goal when it is past the scavenger's retain goal or past
    /// 95% of the memory limit, whichever is lower, and never where nothing can be released.
    #[test]
    fn retained_memory_is_over_the_lower_of_the_retain_goal_and_the_limit() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        a.alloc_pages(8, Fit::Grow).unwrap();
        let ready = a.mapped_ready_bytes();
        assert!(ready >= 8 * PAGE_SIZE);
        let over = |goal: usize, limit: usize| {
            a.retain_goal.store(goal, Ordering::Relaxed);
            a.memory_limit.store(limit, Ordering::Relaxed);
            a.over_retain_goal()
        };
        if !a.can_release() {
            assert!(!over(0, 0), "over, with nothing that can be released");
            return;
        }
        assert!(!over(usize::MAX, usize::MAX));
        assert!(
            over(ready - 1, usize::MAX),
            "past the retain goal, no limit"
        );
        assert!(!over(ready, usize::MAX));
        assert!(over(usize::MAX, ready), "past 95% of the limit");
        assert!(!over(usize::MAX, 2 * ready));
    }

    #[test]
    fn alloc_free_coalesce_and_exhaust() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let x = a.alloc_pages(4, Fit::Grow).unwrap();
        let y = a.alloc_pages(4, Fit::Grow).unwrap();
        let z = a.alloc_pages(8, Fit::Grow).unwrap();
        assert_eq!(y, x + 4 * PAGE_SIZE);
        assert_eq!(z, y + 4 * PAGE_SIZE);
        assert!(
            a.alloc_pages(1, Fit::Grow).is_none(),
            "reservation should be exhausted"
        );
        a.free_pages(x, 4);
        a.free_pages(z, 8);
        a.free_pages(y, 4);
        // All three runs coalesced into one: a 16-page request fits again.
        assert_eq!(a.alloc_pages(16, Fit::Grow), Some(x));
        assert_eq!(a.in_use_bytes(), 16 * PAGE_SIZE);
    }

    /// A run is known zero when it comes from above the high-water mark or is all released
    /// pages, and not when any page of it was used and freed since; the pages of a zero run
    /// read as zero, also after they were written, freed and released.
    /// An allocation that finds the arena full while the scavenger holds free pages out of the
    /// free runs (releasing them without the lock) waits for them instead of failing.
    #[test]
    fn an_allocation_waits_for_pages_the_scavenger_holds() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let all = a.npages;
        let x = a.alloc_pages(all, Fit::Grow).unwrap();
        a.free_pages(x, all);
        // Take the whole free run out, as `scavenge` does around its system call.
        {
            let mut pa = a.pages.lock();
            pa.remove(0, all);
            pa.scavenging += all;
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let mut pa = a.pages.lock();
                pa.scavenging -= all;
                Arena::insert_run(&mut pa, 0, all);
            });
            assert_eq!(a.alloc_pages(all, Fit::Grow), Some(x));
        });
        // Nothing held: a full arena refuses at once.
        assert!(a.alloc_pages(1, Fit::Grow).is_none());
    }

    #[test]
    fn zeroed_runs_are_fresh_or_released() {
        if !release_supported() {
            return; // no page is released on this system
        }
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let all_zero = |addr: usize, n: usize| {
            // SAFETY: the run was just allocated to this test and lies inside the mapping.
            let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, n * PAGE_SIZE) };
            bytes.iter().all(|&b| b == 0)
        };
        let (x, fresh) = a.alloc_pages_zeroed(4, Fit::Grow).unwrap();
        assert!(fresh);
        assert!(all_zero(x, 4));
        // SAFETY: as above; dirty the run.
        unsafe { std::ptr::write_bytes(x as *mut u8, 0xAB, 4 * PAGE_SIZE) };
        a.free_pages(x, 4);
        assert_eq!(
            a.alloc_pages_zeroed(4, Fit::Grow),
            Some((x, false)),
            "used pages"
        );
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(x as *mut u8, 0xCD, 4 * PAGE_SIZE) };
        a.free_pages(x, 4);
        a.scavenge_all();
        let (y, zeroed) = a.alloc_pages_zeroed(4, Fit::Grow).unwrap();
        assert_eq!(y, x);
        // Releasing does nothing under Miri, so released pages are not known zero there.
        assert_eq!(zeroed, cfg!(not(miri)));
        if zeroed {
            assert!(all_zero(y, 4), "released pages read as zero");
        }
        // Part released, part used: not zero.
        a.free_pages(y, 4);
        a.scavenge_all();
        let (z, _) = a.alloc_pages_zeroed(2, Fit::Grow).unwrap();
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(z as *mut u8, 0xEF, 2 * PAGE_SIZE) };
        a.free_pages(z, 2);
        assert_eq!(
            a.alloc_pages_zeroed(4, Fit::Grow).map(|(_, z)| z),
            Some(false)
        );
    }

    /// Run `f` with the `pages` pages at `x` (part of `a`'s mapping, free, filled with `0xAB`)
    /// locked in memory, so that the OS refuses to release them; `None` (and nothing run) where
    /// this process may not lock memory. Then check that the pages were not taken for released:
    /// the next allocation of their size gets them back, not as zero, with their contents.
    fn refused_release<T>(a: &Arena, x: usize, pages: usize, f: impl FnOnce() -> T) -> Option<T> {
        // SAFETY: locks pages of the live mapping; unlocked below.
        if unsafe { libc::mlock(x as *const libc::c_void, pages * PAGE_SIZE) } != 0 {
            eprintln!("mlock refused (RLIMIT_MEMLOCK); nothing to check");
            return None;
        }
        let r = f();
        // SAFETY: as above.
        unsafe { libc::munlock(x as *const libc::c_void, pages * PAGE_SIZE) };
        assert_eq!(a.released_bytes(), 0);
        let (y, zeroed) = a.alloc_pages_zeroed(pages, Fit::Grow).unwrap();
        assert_eq!(y, x);
        assert!(!zeroed, "pages whose release failed taken for zero");
        // SAFETY: the run was just allocated to the caller and lies inside the mapping.
        let bytes = unsafe { std::slice::from_raw_parts(y as *const u8, pages * PAGE_SIZE) };
        assert!(bytes.iter().all(|&b| b == 0xAB), "the contents stayed");
        Some(r)
    }

    /// A release the OS refuses (pages locked in memory: `MADV_DONTNEED` fails with `EINVAL`)
    /// leaves the pages resident with their contents, so they must not be marked released nor
    /// handed out as zero (an array allocated there would skip writing its initial elements
    /// and read stale pointers), and releasing stops.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_refused_release_marks_nothing_released() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        if !a.can_release.load(Ordering::Relaxed) {
            eprintln!("this system releases no pages; nothing to check");
            return;
        }
        let (x, fresh) = a.alloc_pages_zeroed(4, Fit::Grow).unwrap();
        assert!(fresh);
        // SAFETY: the run was just allocated to this test and lies inside the mapping.
        unsafe { std::ptr::write_bytes(x as *mut u8, 0xAB, 4 * PAGE_SIZE) };
        a.free_pages(x, 4);
        let Some(released) = refused_release(&a, x, 4, || a.scavenge_all()) else {
            return;
        };
        assert_eq!(released, 0, "a refused release counts nothing");
        // Releasing is off for good: nothing is released later either.
        a.free_pages(x, 4);
        assert_eq!(a.scavenge_all(), 0);
        assert_eq!(a.released_bytes(), 0);
    }

    #[test]
    fn best_fit_reuses_smallest_hole() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let p: Vec<usize> = (0..6)
            .map(|_| a.alloc_pages(2, Fit::Grow).unwrap())
            .collect();
        a.free_pages(p[1], 2); // hole of 2
        a.free_pages(p[3], 2);
        a.free_pages(p[4], 2); // hole of 4
        assert_eq!(a.alloc_pages(2, Fit::Grow), Some(p[1]));
        assert_eq!(a.alloc_pages(3, Fit::Grow), Some(p[3]));
    }

    #[test]
    fn ready_fit_takes_only_resident_free_runs() {
        if !release_supported() {
            return; // no page is released on this system
        }
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let x = a.alloc_pages(4, Fit::Ready);
        assert_eq!(x, None, "a fresh arena has no free run");
        assert_eq!(a.mapped_bytes(), 0);
        let p: Vec<usize> = (0..4)
            .map(|_| a.alloc_pages(2, Fit::Grow).unwrap())
            .collect();
        // SAFETY: the pages were just allocated and hold nothing; touching them makes their
        // release observable.
        unsafe { std::ptr::write_bytes(p[0] as *mut u8, 1, 8 * PAGE_SIZE) };
        a.free_pages(p[1], 2);
        assert_eq!(a.alloc_pages(3, Fit::Ready), None, "no free run of 3 pages");
        assert_eq!(a.mapped_bytes(), 8 * PAGE_SIZE, "grew with `Fit::Ready`");
        assert_eq!(a.alloc_pages(2, Fit::Ready), Some(p[1]));
        // A released run: `Ready` leaves it, `Grow` takes it rather than growing.
        a.free_pages(p[3], 2);
        assert_eq!(a.scavenge_all(), 2 * PAGE_SIZE);
        assert_eq!(a.alloc_pages(2, Fit::Ready), None, "took released pages");
        assert_eq!(a.alloc_pages(2, Fit::Grow), Some(p[3]));
        assert_eq!(a.mapped_bytes(), 8 * PAGE_SIZE);
    }

    thread_local! {
        /// Called by [`Arena::scavenge`] on this thread while it holds a stretch out of the free
        /// runs, before its system call.
        pub(super) static DURING_RELEASE: std::cell::Cell<Option<fn(&Arena)>> =
            const { std::cell::Cell::new(None) };
        static SEEN: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
    }

    /// While the scavenger holds a stretch out of the free runs for its system call, the
    /// stretch still counts as free (ready) memory: the pacer derives the non-heap memory a
    /// memory limit leaves out from these figures, and saw the whole stretch as non-heap
    /// memory for the length of the call (`Heap::free_os_memory` releases gigabytes at a time).
    #[test]
    fn pages_being_released_still_count_as_free() {
        if !release_supported() {
            return; // no page is released on this system: `scavenge` never holds any
        }
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let x = a.alloc_pages(8, Fit::Grow).unwrap();
        a.free_pages(x, 8);
        let before = (a.free_ready_bytes(), a.mapped_ready_bytes());
        DURING_RELEASE.with(|f| {
            f.set(Some(|a: &Arena| {
                SEEN.with(|s| s.set((a.free_ready_bytes(), a.mapped_ready_bytes())))
            }))
        });
        let released = a.scavenge(8 * PAGE_SIZE);
        DURING_RELEASE.with(|f| f.set(None));
        assert_eq!(SEEN.with(|s| s.get()), before, "during the call");
        assert_eq!(
            (a.free_ready_bytes(), a.mapped_ready_bytes()),
            (before.0 - released, before.1 - released),
            "after it"
        );
    }

    #[test]
    fn scavenge_releases_free_pages_highest_first() {
        if !release_supported() {
            return; // no page is released on this system
        }
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let p: Vec<usize> = (0..4)
            .map(|_| a.alloc_pages(4, Fit::Grow).unwrap())
            .collect();
        assert_eq!(a.mapped_ready_bytes(), 16 * PAGE_SIZE);
        // Touch the pages so that release is observable.
        for &x in &p {
            // SAFETY: the run is allocated to this test and inside the reservation.
            unsafe { std::ptr::write_bytes(x as *mut u8, 0xAB, 4 * PAGE_SIZE) };
        }
        a.free_pages(p[1], 4);
        a.free_pages(p[3], 4);
        assert_eq!(a.free_ready_bytes(), 8 * PAGE_SIZE);
        // Release 2 pages: the top half of the highest free run (one stretch per call).
        assert_eq!(a.scavenge(2 * PAGE_SIZE), 2 * PAGE_SIZE);
        assert_eq!(a.released_bytes(), 2 * PAGE_SIZE);
        assert_eq!(a.free_ready_bytes(), 6 * PAGE_SIZE);
        // The run is whole again, 2 of its pages released. Next the rest of it, then the
        // lower run.
        assert_eq!(a.scavenge(5 * PAGE_SIZE), 2 * PAGE_SIZE);
        assert_eq!(a.mapped_ready_bytes(), 12 * PAGE_SIZE);
        #[cfg(not(miri))]
        {
            // SAFETY: released pages stay mapped (they read as zero); nothing else uses them.
            let b = unsafe { *((p[3] + PAGE_SIZE) as *const u8) };
            assert_eq!(b, 0, "released page still holds its old contents");
        }
        assert_eq!(a.scavenge(100 * PAGE_SIZE), 4 * PAGE_SIZE);
        assert_eq!(a.scavenge(100 * PAGE_SIZE), 0);
        assert_eq!(a.free_ready_bytes(), 0);
        // Reusing released pages makes them ready again.
        let q = a.alloc_pages(4, Fit::Grow).unwrap();
        assert!(q == p[1] || q == p[3]);
        assert_eq!(a.released_bytes(), 4 * PAGE_SIZE);
        assert_eq!(a.mapped_ready_bytes(), 12 * PAGE_SIZE);
    }

    #[test]
    fn growth_over_the_memory_limit_releases_free_pages() {
        let a = Arena::new(64 * PAGE_SIZE).unwrap();
        a.memory_limit.store(12 * PAGE_SIZE, Ordering::Relaxed);
        let x = a.alloc_pages(8, Fit::Grow).unwrap();
        let _y = a.alloc_pages(4, Fit::Grow).unwrap();
        a.free_pages(x, 8);
        assert_eq!(a.mapped_ready_bytes(), 12 * PAGE_SIZE);
        // 10 new pages (the free run is too short) would make 22 ready, 10 over the limit: all
        // 8 free pages are released, which leaves only the pages in use (14).
        let _z = a.alloc_pages(10, Fit::Grow).unwrap();
        assert_eq!(a.sync_released.load(Ordering::Relaxed), 8 * PAGE_SIZE);
        assert_eq!(a.mapped_ready_bytes(), 14 * PAGE_SIZE);
        assert_eq!(a.in_use_bytes(), 14 * PAGE_SIZE);
        if a.can_release.load(Ordering::Relaxed) {
            // The time it took is booked (`/cpu/classes/scavenge/assist`).
            assert!(a.sync_scavenge_ns.load(Ordering::Relaxed) > 0);
        }
    }

    /// A run freed below a free run not yet released leaves both to the scavenger (its hint,
    /// the top of the highest free page not released, only rises on a free): every free page
    /// is released, also by a growth over the memory limit.
    #[test]
    fn a_run_freed_below_an_unreleased_one_leaves_both_to_the_scavenger() {
        if !release_supported() {
            return; // no page is released on this system
        }
        // Two free runs of 4 pages, kept apart by pages in use, the higher one freed first.
        let freed_high_then_low = |a: &Arena| {
            let runs: Vec<usize> = (0..2)
                .map(|_| {
                    let r = a.alloc_pages(4, Fit::Grow).unwrap();
                    a.alloc_pages(1, Fit::Grow).unwrap();
                    // SAFETY: the run is allocated to this test and inside the reservation.
                    unsafe { std::ptr::write_bytes(r as *mut u8, 0xAB, 4 * PAGE_SIZE) };
                    r
                })
                .collect();
            a.free_pages(runs[1], 4);
            a.free_pages(runs[0], 4);
            assert_eq!(a.free_ready_bytes(), 8 * PAGE_SIZE);
        };
        let a = Arena::new(64 * PAGE_SIZE).unwrap();
        freed_high_then_low(&a);
        assert_eq!(a.scavenge_all(), 8 * PAGE_SIZE);
        assert_eq!(a.free_ready_bytes(), 0);
        assert!(
            a.sync_scavenge_ns.load(Ordering::Relaxed) > 0,
            "time booked"
        );
        // Growth past the limit: 10 new pages (the free runs are too short) beside 2 in use and
        // 8 free, under a limit of 12, must release all 8.
        let a = Arena::new(64 * PAGE_SIZE).unwrap();
        freed_high_then_low(&a);
        a.memory_limit.store(12 * PAGE_SIZE, Ordering::Relaxed);
        let _ = a.alloc_pages(10, Fit::Grow).unwrap();
        assert_eq!(a.sync_released.load(Ordering::Relaxed), 8 * PAGE_SIZE);
        assert_eq!(a.mapped_ready_bytes(), 12 * PAGE_SIZE);
    }

    /// An allocation that grows the heap releases nothing while retained memory is within the
    /// scavenger's goal and the memory limit, and past them at most its own growth plus
    /// [`SYNC_SCAVENGE_SLACK`] pages (each released stretch is a system call under the page
    /// lock; the background scavenger does the rest).
    #[test]
    fn growth_releases_at_most_its_own_size_and_the_slack() {
        let a = Arena::new(256 * PAGE_SIZE).unwrap();
        if !a.can_release.load(Ordering::Relaxed) {
            eprintln!("this system releases no pages; nothing to check");
            return;
        }
        // 64 free pages between runs in use (so that none is reused for the growth).
        let mut runs = Vec::new();
        for _ in 0..16 {
            let free = a.alloc_pages(4, Fit::Grow).unwrap();
            runs.push(free);
            a.alloc_pages(1, Fit::Grow).unwrap();
        }
        for &r in &runs {
            a.free_pages(r, 4);
        }
        let _ = a.alloc_pages(8, Fit::Grow).unwrap();
        assert_eq!(
            a.sync_released.load(Ordering::Relaxed),
            0,
            "released with no limit and no goal"
        );
        // Under a limit of 24 pages, growing by 8 more (96 ready) would want 72 released: it
        // releases its 8 and the slack, of the 64 free.
        a.memory_limit.store(24 * PAGE_SIZE, Ordering::Relaxed);
        let _ = a.alloc_pages(8, Fit::Grow).unwrap();
        assert_eq!(
            a.sync_released.load(Ordering::Relaxed),
            (8 + SYNC_SCAVENGE_SLACK) * PAGE_SIZE
        );
    }

    /// A free run of 16 pages and one in use above it, each page written.
    fn a_written_free_run(a: &Arena) -> usize {
        let x = a.alloc_pages(16, Fit::Grow).unwrap();
        a.alloc_pages(1, Fit::Grow).unwrap();
        // SAFETY: the run was just allocated to this test and lies inside the mapping.
        unsafe { std::ptr::write_bytes(x as *mut u8, 0xAB, 16 * PAGE_SIZE) };
        a.free_pages(x, 16);
        x
    }

    /// A free run the background scavenger releases a stretch at a time stays one run: the
    /// released pages above each stretch go back with the rest, and the whole run is handed
    /// out again (in an arena too small to grow by as much instead).
    #[test]
    fn a_run_released_in_stretches_stays_one_run() {
        let a = Arena::new(32 * PAGE_SIZE).unwrap();
        if !a.can_release() {
            eprintln!("this system releases no pages; nothing to check");
            return;
        }
        let x = a_written_free_run(&a);
        assert_eq!(a.scavenge(8 * PAGE_SIZE), 8 * PAGE_SIZE);
        assert_eq!(a.scavenge(8 * PAGE_SIZE), 8 * PAGE_SIZE);
        assert_eq!(a.released_bytes(), 16 * PAGE_SIZE);
        assert_eq!(a.alloc_pages(16, Fit::Grow), Some(x));
        assert_eq!(a.mapped_bytes(), 17 * PAGE_SIZE);
    }

    /// A release on growth that stops inside a run leaves the rest of the run to the
    /// scavenger: 7 of a free run's 16 pages released to keep under the memory limit, then
    /// the other 9 by `scavenge_all`.
    #[test]
    fn a_release_on_growth_stopped_inside_a_run_leaves_the_rest_to_the_scavenger() {
        let a = Arena::new(64 * PAGE_SIZE).unwrap();
        if !a.can_release() {
            eprintln!("this system releases no pages; nothing to check");
            return;
        }
        a_written_free_run(&a);
        // 17 new pages (the free run is too short) make 34 ready, 7 over a 27-page limit.
        a.memory_limit.store(27 * PAGE_SIZE, Ordering::Relaxed);
        a.alloc_pages(17, Fit::Grow).unwrap();
        assert_eq!(a.sync_released.load(Ordering::Relaxed), 7 * PAGE_SIZE);
        assert_eq!(a.scavenge_all(), 9 * PAGE_SIZE);
        assert_eq!(a.free_ready_bytes(), 0);
    }

    /// Reusing released pages makes them resident again, which counts as growth (as in Go):
    /// under the memory limit, other free pages are released for them.
    #[test]
    fn reusing_released_pages_under_the_memory_limit_releases_others() {
        let a = Arena::new(64 * PAGE_SIZE).unwrap();
        if !a.can_release() {
            eprintln!("this system releases no pages; nothing to check");
            return;
        }
        let b = a.alloc_pages(2, Fit::Grow).unwrap();
        a.alloc_pages(1, Fit::Grow).unwrap();
        let x = a.alloc_pages(4, Fit::Grow).unwrap();
        a.alloc_pages(1, Fit::Grow).unwrap();
        for (run, n) in [(b, 2), (x, 4)] {
            // SAFETY: the runs were just allocated to this test and lie inside the mapping.
            unsafe { std::ptr::write_bytes(run as *mut u8, 0xAB, n * PAGE_SIZE) };
            a.free_pages(run, n);
        }
        // The highest run released, the lower one not.
        assert_eq!(a.scavenge(4 * PAGE_SIZE), 4 * PAGE_SIZE);
        assert_eq!(a.mapped_ready_bytes(), 4 * PAGE_SIZE);
        // Taking the released run back makes 8 pages ready, 3 over a 5-page limit: the other
        // free run's 2 pages go.
        a.memory_limit.store(5 * PAGE_SIZE, Ordering::Relaxed);
        assert_eq!(a.alloc_pages(4, Fit::Grow), Some(x));
        assert_eq!(a.sync_released.load(Ordering::Relaxed), 2 * PAGE_SIZE);
        assert_eq!(a.mapped_ready_bytes(), 6 * PAGE_SIZE);
    }

    /// Past the scavenger's goal (retained memory GOGC allows, with no memory limit), a heap
    /// that grows releases as much as it grows.
    #[test]
    fn growth_past_the_retain_goal_releases_its_own_size() {
        let a = Arena::new(64 * PAGE_SIZE).unwrap();
        if !a.can_release() {
            eprintln!("this system releases no pages; nothing to check");
            return;
        }
        // Four free runs of 4 pages between pages in use: 20 pages ready.
        let runs: Vec<usize> = (0..4)
            .map(|_| {
                let run = a.alloc_pages(4, Fit::Grow).unwrap();
                a.alloc_pages(1, Fit::Grow).unwrap();
                run
            })
            .collect();
        for &run in &runs {
            // SAFETY: the run was allocated to this test and lies inside the mapping.
            unsafe { std::ptr::write_bytes(run as *mut u8, 0xAB, 4 * PAGE_SIZE) };
            a.free_pages(run, 4);
        }
        // 5 new pages (no free run is long enough) make 25 ready, 17 over a goal of 8: the
        // release is the growth's 5 pages.
        a.retain_goal.store(8 * PAGE_SIZE, Ordering::Relaxed);
        a.alloc_pages(5, Fit::Grow).unwrap();
        assert_eq!(a.sync_released.load(Ordering::Relaxed), 5 * PAGE_SIZE);
    }

    /// The same through the release an allocation makes when the heap grows past the memory
    /// limit (`scavenge_for_growth`, with the page lock held): a refused release marks nothing
    /// released, so the pages are not handed out as zero.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_refused_release_on_growth_marks_nothing_released() {
        let a = Arena::new(64 * PAGE_SIZE).unwrap();
        if !a.can_release.load(Ordering::Relaxed) {
            eprintln!("this system releases no pages; nothing to check");
            return;
        }
        a.memory_limit.store(12 * PAGE_SIZE, Ordering::Relaxed);
        let (x, _) = a.alloc_pages_zeroed(8, Fit::Grow).unwrap();
        let _y = a.alloc_pages(4, Fit::Grow).unwrap();
        // SAFETY: the run was just allocated to this test and lies inside the mapping.
        unsafe { std::ptr::write_bytes(x as *mut u8, 0xAB, 8 * PAGE_SIZE) };
        a.free_pages(x, 8);
        // 10 new pages would make 22 ready, 10 over the limit: the 8 free pages are offered
        // to the OS, which refuses them.
        refused_release(&a, x, 8, || {
            a.alloc_pages(10, Fit::Grow).unwrap();
            assert_eq!(a.sync_released.load(Ordering::Relaxed), 0);
        });
    }

    /// Releasing is on only where OS pages divide arena pages: on a kernel with 16 or 64 KiB
    /// pages, releasing a free 8 KiB arena page would zero the OS page around it, live
    /// neighbours included.
    #[test]
    fn pages_are_released_only_where_os_pages_divide_arena_pages() {
        for os_page in [512, 4096, PAGE_SIZE as libc::c_long] {
            assert!(releases_exactly(os_page), "{os_page}-byte OS pages");
        }
        for os_page in [-1, 0, 3000, 2 * PAGE_SIZE as libc::c_long, 16384, 65536] {
            assert!(!releases_exactly(os_page), "{os_page}-byte OS pages");
        }
        // And on this machine, if Linux with small enough pages, releasing is on: the
        // scavenger's tests, which check nothing where it is off, check something here.
        // SAFETY: `sysconf` reads a configuration value; it has no preconditions.
        let os_page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if cfg!(all(target_os = "linux", not(miri))) && releases_exactly(os_page) {
            let a = Arena::new(MIN_RESERVATION).unwrap();
            assert!(
                a.can_release(),
                "Linux with {os_page}-byte pages releases no memory"
            );
        }
    }

    #[test]
    fn page_map_publish_and_lookup() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let x = a.alloc_pages(2, Fit::Grow).unwrap();
        let fake = 0x1000 as *const Span;
        a.publish(x, 2, fake);
        assert_eq!(a.span_of(x), fake);
        assert_eq!(a.span_of(x + PAGE_SIZE + 5), fake);
        assert!(a.span_of(x + 2 * PAGE_SIZE).is_null());
        assert!(a.span_of(0).is_null());
        a.publish(x, 2, ptr::null());
        assert!(a.span_of(x).is_null());
    }
}
