//! Span metadata, allocated in chunks (Go: `mheap_.spanalloc`, a fixed-size allocator for
//! `mspan`s).
//!
//! A [`Span`] is cache-line aligned. Allocated one by one with the global allocator, every
//! span paid for its alignment: glibc's aligned allocation leaves fragments around each block,
//! and spans of 448 bytes made in a row were measured 576–704 bytes apart. A slab hands out consecutive slots of
//! chunks of [`CHUNK`] spans instead, so span metadata costs its size and no more, and spans
//! made together sit together.
//!
//! Slots are never returned to the global allocator one by one: a freed span goes to
//! `Central`'s spare list and its slot is reused for the next span made (as Go's `mspan`s are).
//! So the metadata of the heap's largest span count stays allocated until the slab is dropped,
//! with the heap.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::alloc::span::Span;

/// Spans per chunk (20 KiB of metadata; 2 MiB of heap in four-page spans).
const CHUNK: usize = 64;

/// Chunks of span slots, the last one filled up to `used`.
pub(crate) struct SpanSlab {
    /// The first slot of each chunk (a leaked `Box<[MaybeUninit<Span>]>` of [`CHUNK`] slots);
    /// every chunk but the last is full. Slots are reached by pointer arithmetic from these,
    /// never through a reference to a whole chunk, so making a span does not touch (retag)
    /// the slots of spans handed out before it, which other threads use.
    chunks: Vec<NonNull<MaybeUninit<Span>>>,
    /// Initialised slots of the last chunk.
    used: usize,
}

// SAFETY: the slab owns its chunks and the spans in them (`Span` is `Send`: atomics, mutexes
// and owned buffers); the slots are only reached through `&mut self` or through the pointers
// handed out, whose use is governed by `SpanRef`'s invariant.
unsafe impl Send for SpanSlab {}

impl SpanSlab {
    pub(crate) const fn new() -> SpanSlab {
        SpanSlab {
            chunks: Vec::new(),
            used: CHUNK,
        }
    }

    /// Move `span` into a fresh slot and return its address, stable until the slab is dropped
    /// or [`SpanSlab::clear`]ed.
    pub(crate) fn alloc(&mut self, span: Span) -> NonNull<Span> {
        if self.used == CHUNK {
            let chunk = Box::into_raw(Box::<[MaybeUninit<Span>]>::new_uninit_slice(CHUNK));
            self.chunks
                .push(NonNull::new(chunk.cast()).expect("Box::into_raw is never null"));
            self.used = 0;
        }
        let base = *self.chunks.last().expect("a chunk was just pushed");
        // SAFETY: `used < CHUNK`, so the slot is inside the last chunk's allocation; it is not
        // initialised yet (slots are filled in order), so nothing else refers to it.
        let slot = unsafe { base.add(self.used) };
        // SAFETY: as above: a valid, unaliased slot of the chunk, written once.
        unsafe { slot.write(MaybeUninit::new(span)) };
        self.used += 1;
        slot.cast()
    }

    /// Spans made so far (in use or spare).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        match self.chunks.len() {
            0 => 0,
            n => (n - 1) * CHUNK + self.used,
        }
    }

    /// Drop every span and free the chunks.
    ///
    /// # Safety
    /// No pointer [`SpanSlab::alloc`] returned may be used afterwards.
    pub(crate) unsafe fn clear(&mut self) {
        // Emptied first, so that a panic in a span's drop cannot drop these slots again (in the
        // slab's own `Drop`): the rest would leak instead.
        let chunks = std::mem::take(&mut self.chunks);
        let used = std::mem::replace(&mut self.used, CHUNK);
        let last = chunks.len().saturating_sub(1);
        for (c, &base) in chunks.iter().enumerate() {
            let n = if c == last { used } else { CHUNK };
            for i in 0..n {
                // SAFETY: the first `n` slots of this chunk were initialised by `alloc` (every
                // chunk but the last is full) and are dropped once: the slab no longer lists
                // the chunk, and the caller promises nothing uses the spans any more.
                unsafe { std::ptr::drop_in_place(base.add(i).cast::<Span>().as_ptr()) };
            }
            let chunk = std::ptr::slice_from_raw_parts_mut(base.as_ptr(), CHUNK);
            // SAFETY: `chunk` is the allocation `alloc` leaked with `Box::into_raw` (same
            // element type and length), freed once here; its spans were dropped above and
            // `MaybeUninit` slots need no drop.
            drop(unsafe { Box::from_raw(chunk) });
        }
    }
}

impl Drop for SpanSlab {
    fn drop(&mut self) {
        // SAFETY: dropping the slab ends the life of every slot; `Central`, which owns it, is
        // being dropped, and with it every list that held its spans (the heap's arena, whose
        // page map points to them, is dropped before it and never read after).
        unsafe { self.clear() }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::alloc::span_class::test_tag;

    static T: u8 = 0;

    #[test]
    fn slots_are_packed_stable_and_dropped() {
        let mut slab = SpanSlab::new();
        let n = 2 * CHUNK + 5;
        let spans: Vec<NonNull<Span>> = (0..n)
            .map(|i| {
                let s = Span::new(0x10000 * (i + 1), 1, 16, 512, 1, 0, test_tag(&T, false), 0);
                slab.alloc(s.with_scan_words())
            })
            .collect();
        assert_eq!(slab.len(), n);
        for (i, p) in spans.iter().enumerate() {
            // SAFETY: the slab is alive and not cleared.
            assert_eq!(
                unsafe { p.as_ref() }.start,
                0x10000 * (i + 1),
                "slot {i} kept"
            );
        }
        // Within a chunk, spans are exactly their size apart.
        let gap = spans[1].as_ptr() as usize - spans[0].as_ptr() as usize;
        assert_eq!(gap, std::mem::size_of::<Span>());
        // SAFETY: `spans` is not used after this.
        unsafe { slab.clear() };
        assert_eq!(slab.len(), 0);
        slab.alloc(Span::new(0x10000, 1, 16, 512, 1, 0, test_tag(&T, false), 0));
        assert_eq!(slab.len(), 1);
    }
}
