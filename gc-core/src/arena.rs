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
//! Under Miri (which cannot `mmap`), the reservation and the page map come from the global
//! allocator instead, and the default reservation is small; everything above the backing is the
//! same code.

use std::collections::{BTreeMap, BTreeSet};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::HeapError;
use crate::span::Span;

/// log2 of the page size.
pub const PAGE_SHIFT: usize = 13;
/// Page size: 8 KiB, as Go's runtime uses.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// The smallest reservation accepted: room for the largest small-object span.
pub const MIN_RESERVATION: usize = 16 * PAGE_SIZE;

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
        })
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

    /// Point every page of `[addr, addr + npages pages)` at `span` (or null to unpublish).
    pub(crate) fn publish(&self, addr: usize, npages: usize, span: *const Span) {
        let first = (addr - self.base) >> PAGE_SHIFT;
        for p in first..first + npages {
            self.page_slot(p)
                .store(span as *mut Span, Ordering::Release);
        }
    }

    /// Allocate a run of `npages` pages. Returns its address, or `None` if the reservation is
    /// exhausted.
    pub(crate) fn alloc_pages(&self, npages: usize) -> Option<usize> {
        let mut pa = self.pages.lock();
        let found = pa.by_len.range((npages, 0)..).next().copied();
        let start = match found {
            Some((len, start)) => {
                pa.remove(start, len);
                if len > npages {
                    pa.insert(start + npages, len - npages);
                }
                start
            }
            None => {
                if pa.high_water + npages > self.npages {
                    return None;
                }
                let start = pa.high_water;
                pa.high_water += npages;
                self.mapped
                    .store(pa.high_water * PAGE_SIZE, Ordering::Relaxed);
                start
            }
        };
        pa.in_use += npages;
        Some(self.base + start * PAGE_SIZE)
    }

    /// Return a run of pages obtained from `alloc_pages`, coalescing with free neighbours.
    pub(crate) fn free_pages(&self, addr: usize, npages: usize) {
        let mut pa = self.pages.lock();
        pa.in_use -= npages;
        let mut start = (addr - self.base) >> PAGE_SHIFT;
        let mut len = npages;
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

    #[test]
    fn alloc_free_coalesce_and_exhaust() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let x = a.alloc_pages(4).unwrap();
        let y = a.alloc_pages(4).unwrap();
        let z = a.alloc_pages(8).unwrap();
        assert_eq!(y, x + 4 * PAGE_SIZE);
        assert_eq!(z, y + 4 * PAGE_SIZE);
        assert!(
            a.alloc_pages(1).is_none(),
            "reservation should be exhausted"
        );
        a.free_pages(x, 4);
        a.free_pages(z, 8);
        a.free_pages(y, 4);
        // All three runs coalesced into one: a 16-page request fits again.
        assert_eq!(a.alloc_pages(16), Some(x));
        assert_eq!(a.in_use_bytes(), 16 * PAGE_SIZE);
    }

    #[test]
    fn best_fit_reuses_smallest_hole() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let p: Vec<usize> = (0..6).map(|_| a.alloc_pages(2).unwrap()).collect();
        a.free_pages(p[1], 2); // hole of 2
        a.free_pages(p[3], 2);
        a.free_pages(p[4], 2); // hole of 4
        assert_eq!(a.alloc_pages(2), Some(p[1]));
        assert_eq!(a.alloc_pages(3), Some(p[3]));
    }

    #[test]
    fn page_map_publish_and_lookup() {
        let a = Arena::new(MIN_RESERVATION).unwrap();
        let x = a.alloc_pages(2).unwrap();
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
