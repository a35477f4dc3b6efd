//! Sweeping: free the white objects of a finished cycle, span by span.
//!
//! Mark termination makes every span unswept at once ([`crate::alloc::sweepgen`]) and opens the
//! weak-clearing window, in which nothing is swept; the collector clears the dead weak
//! references, queues every unswept span on its class's unswept list and closes the window
//! (see [`crate::alloc::central`]). From then on a span is swept by the one thread that pops it from
//! an unswept list and claims it:
//!
//! * the **background sweeper** (the collector thread, between cycles: [`sweep_batch`], up
//!   to [`SWEEP_BATCH`] spans of one class per lock of its lists);
//! * a **mutator** that needs a span of that class (lazy sweeping in the cache refill), so a
//!   span is always swept before its slots are handed out again;
//! * a thread in [`finish_sweep`]: **sweep termination** at the start of the next cycle (so
//!   that the next mark starts from clean mark bits), `collect` callers, `Heap::finish_sweep`.
//!
//! Sweep termination also waits for sweeps in progress on other threads outside scopes
//! (`Central::sweepers`); a mutator's lazy sweep runs inside its scope, which STW 1 waits for, so
//! no sweep of the last cycle can clear mark bits of the next. A span is never swept while
//! it is listed or cached: whoever sweeps it took it off its list first, and places it
//! afterwards (keeps it for its class or frees it if empty, lists it as partial if it has free
//! slots).
//!
//! Sweeping a span: for each slot that is allocated and not marked, run its drop glue (if the
//! span's type has drop glue) and, in verify mode, overwrite it with poison; then the
//! mark bitmap becomes the alloc bitmap and the mark bitmap is cleared. Spans whose objects have
//! no drop glue are swept by bitmap arithmetic alone, without touching the objects.
//!
//! Drop glue runs exactly once per dead object: a slot's alloc bit is cleared by the same sweep
//! that runs its drop glue, and a slot with a clear alloc bit is never dropped again. A panic in
//! drop glue aborts the process (it would otherwise leave the span half-swept).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::alloc::cache::LazySweep;
use crate::alloc::central::{SpanRef, Swept};
use crate::alloc::span::LARGE;
use crate::alloc::span::POISON;
use crate::gc::heap::Shared;
use crate::gc::object::{Object, TypeInfo, type_of};

/// The sweep's shared state.
#[derive(Default)]
pub(crate) struct SweepState {
    /// The span class the background sweeper looks at first (where it last found work).
    /// Written by background sweepers.
    pub cursor: AtomicUsize,
    /// The cycle whose sweep is in progress and when it began; recorded as a phase when the
    /// sweep ends. Written at mark termination and by whoever sees the sweep end.
    pub started: Mutex<Option<(u64, Instant)>>,
}

/// Lazy sweeping for the allocator: a span is swept by the allocating mutator, until a pause is
/// waiting for it.
pub(crate) struct LazySweeper<'h>(pub &'h Shared);

impl LazySweep for LazySweeper<'_> {
    fn should_stop(&self) -> bool {
        self.0.safepoint.stop_requested()
    }
    fn sweep(&self, s: SpanRef) -> Swept {
        sweep_span(self.0, s)
    }
}

/// Sweep one span the caller has claimed ([`Central::try_claim`](crate::alloc::central::Central::try_claim));
/// it is in no cache. The span is left allocated; the caller decides where it goes.
pub(crate) fn sweep_span(h: &Shared, s: SpanRef) -> Swept {
    let span = s.get();
    let mut st = span.state.lock();
    debug_assert!(!st.in_cache);
    // Checked in release builds too (one load per span): a span still queued here was lost by
    // span-local marking with grey objects unscanned, and would stay queued for good, so that
    // no later mark of it is ever scanned; stop rather than free what they reach.
    if span.is_queued() {
        bug!("a span swept while on a mark queue (grey objects of it never scanned)");
    }
    let info = type_of(span);
    let run_drops = info.drop.is_some();
    let slow = run_drops || h.settings.verify;
    let nelems = span.nelems;
    let mut freed = 0usize;
    let mut live = 0usize;
    for (wi, w) in st.alloc.as_raw_mut_slice().iter_mut().enumerate() {
        let valid = span.slot_bits(wi);
        let m = span.mark_word(wi).load(Ordering::Relaxed) & valid;
        // Marks are set only on allocated slots (a cache's window pre-marks its slots while
        // marking runs, and writing the window back clears the marks of those it did not hand
        // out): a marked free slot would become allocated below with nothing in it, and its
        // drop glue run on whatever bytes are there.
        if m & !*w != 0 {
            bug!(
                "span {:#x}: slots {:#x} of mark word {wi} are marked but not allocated",
                span.start,
                m & !*w
            );
        }
        let mut dead = *w & !m & valid;
        freed += dead.count_ones() as usize;
        live += m.count_ones() as usize;
        if slow {
            while dead != 0 {
                let i = wi * 64 + dead.trailing_zeros() as usize;
                dead &= dead - 1;
                let addr = span.slot_addr(i);
                if run_drops {
                    run_drop(info, addr as *mut Object);
                }
                if h.settings.verify {
                    // SAFETY: slot `i` is dead (allocated, unmarked): nothing reachable points
                    // to it and its drop glue has run, so its bytes are ours to overwrite.
                    unsafe { std::ptr::write_bytes(addr as *mut u8, POISON, span.elem_size) };
                }
            }
        }
        *w = m | !valid;
        span.clear_marks(wi);
    }
    st.allocated = live;
    h.mheap.central.set_swept(span);
    drop(st);
    if freed > 0 {
        h.stats
            .objects_freed
            .fetch_add(freed as u64, Ordering::Relaxed);
        h.stats
            .bytes_freed
            .fetch_add((freed * span.elem_size) as u64, Ordering::Relaxed);
        h.mheap
            .counters
            .heap_alloc
            .fetch_sub(freed * span.elem_size, Ordering::Relaxed);
    }
    Swept {
        free_slots: nelems - live,
        empty: live == 0,
    }
}

thread_local! {
    /// Set while this thread runs drop glue for a sweep.
    static IN_DROP_GLUE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is running drop glue for a sweep (of any heap).
pub(crate) fn in_drop_glue() -> bool {
    IN_DROP_GLUE.with(|c| c.get())
}

/// Panic if called from drop glue run by a sweep: `what` would wait for that sweep (or for a
/// pause that waits for it) to end, which it never would. The panic aborts the process (see
/// [`run_drop`]) with this message, rather than hanging it.
pub(crate) fn refuse_in_drop_glue(what: &str) {
    if in_drop_glue() {
        panic!(
            "gc-core: {what} called from drop glue run by the sweeper; it would wait for the \
             sweep that runs this drop glue (deadlock)"
        );
    }
}

/// Run the drop glue of the dead object `o` of type `info`.
fn run_drop(info: &'static TypeInfo, o: *mut Object) {
    if let Some(d) = info.drop {
        as_drop_glue(
            || (info.name)().to_string(),
            // SAFETY: `o` is a dead object (allocated, unmarked) of the span's type, in a span
            // being swept by this thread alone; it is intact (only sweeping overwrites dead
            // objects, after this call), and this is the one sweep that frees it, so it is
            // dropped exactly once, here.
            || unsafe { d(o) },
        );
    }
}

/// Run `drop` as the collector runs drop glue (a sweep, or the removal of a dead ephemeron
/// entry): calls that would wait for the collector are refused ([`refuse_in_drop_glue`]), and
/// a panic aborts with a message naming `what` (a sweep cannot unwind half done).
pub(crate) fn as_drop_glue(what: impl FnOnce() -> String, glue: impl FnOnce()) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Restored, not cleared, afterwards: this drop glue may itself run in drop glue (a
        // lazy sweep of another heap it allocated in).
        let outer = IN_DROP_GLUE.with(|c| c.replace(true));
        glue();
        IN_DROP_GLUE.with(|c| c.set(outer));
    }));
    if r.is_err() {
        crate::util::bug::fatal(format!(
            "gc-core: drop glue of a `{}` panicked during sweeping; aborting",
            what()
        ));
    }
}

/// Place a span swept by a sweeper that popped it from an unswept list (so it is listed
/// nowhere and cached nowhere): keep it for its class or free it if it is empty
/// ([`Central::place_empty`](crate::alloc::central::Central::place_empty)), list it as partial
/// if it has free slots, leave it otherwise (full: found again through `all` after the next
/// mark).
fn place(h: &Shared, s: SpanRef, r: Swept) {
    let span = s.get();
    if r.empty {
        h.mheap.central.place_empty(&h.mheap.arena, s);
        return;
    }
    if span.class == LARGE || r.free_slots == 0 {
        return;
    }
    h.mheap
        .central
        .place_swept_batch(&h.mheap.arena, span.class_id, &[], &[Some(s)]);
}

/// Claim a span the caller popped from an unswept list, for sweeping.
fn claim(h: &Shared, s: SpanRef) {
    // Popped outside the window (checked under the list lock), and the next mark termination
    // waits for this sweeper: the claim cannot fail.
    if !h.mheap.central.try_claim(s.get()) {
        bug!("a span popped from an unswept list could not be claimed");
    }
}

/// Sweep one unswept span, if any is left (`finish_sweep`; the background sweeper takes
/// batches, [`sweep_batch`]). Returns false when there was nothing to sweep (also in the
/// weak-clearing window, when nothing may be swept).
pub(crate) fn sweep_some(h: &Shared) -> bool {
    let c = &h.mheap.central;
    // Counted before the pop, so "lists empty and no sweeper" means the sweep is over.
    c.sweepers.fetch_add(1, Ordering::SeqCst);
    let popped = c.pop_large_unswept().or_else(|| {
        let n = c.classes.count().max(1);
        let start = h.sweep.cursor.load(Ordering::Relaxed) % n;
        (0..n).find_map(|k| {
            let sc = (start + k) % n;
            let s = c.pop_unswept(sc);
            if s.is_some() {
                h.sweep.cursor.store(sc, Ordering::Relaxed);
            }
            s
        })
    });
    let found = popped.is_some();
    if let Some(s) = popped {
        claim_sweep_place(h, s);
    }
    c.sweepers.fetch_sub(1, Ordering::SeqCst);
    found
}

/// Spans the background sweeper takes off an unswept list at a time ([`sweep_batch`]).
pub(crate) const SWEEP_BATCH: usize = 16;

/// Background sweeping: sweep one large unswept span, or up to [`SWEEP_BATCH`] small ones of
/// one span class, taken off its unswept list under one lock and placed afterwards under one
/// more. Sweeping a span of small objects without drop glue is bitmap arithmetic; taken and
/// placed one at a time (as [`sweep_some`] does), each span cost two locks of its class's
/// lists and four contended atomic updates, most of the collector's sweep time on a heap of
/// 1 KiB buffers (msgbuf) and contention with the mutator allocating from the same class.
/// Returns false when there was nothing to sweep (also in the weak-clearing window).
pub(crate) fn sweep_batch(h: &Shared) -> bool {
    let c = &h.mheap.central;
    // Counted before the pops, so "lists empty and no sweeper" means the sweep is over.
    c.sweepers.fetch_add(1, Ordering::SeqCst);
    let found = if let Some(s) = c.pop_large_unswept() {
        claim_sweep_place(h, s);
        true
    } else {
        let mut batch = [None; SWEEP_BATCH];
        let classes = c.classes.count().max(1);
        let start = h.sweep.cursor.load(Ordering::Relaxed) % classes;
        let popped = (0..classes).find_map(|k| {
            let sc = (start + k) % classes;
            let n = c.pop_unswept_batch(sc, &mut batch);
            (n > 0).then(|| {
                h.sweep.cursor.store(sc, Ordering::Relaxed);
                (sc, n)
            })
        });
        if let Some((sc, n)) = popped {
            let (mut empty, mut ne) = ([None; SWEEP_BATCH], 0);
            let (mut partial, mut np) = ([None; SWEEP_BATCH], 0);
            for s in batch[..n].iter().flatten() {
                claim(h, *s);
                let r = sweep_span(h, *s);
                if r.empty {
                    empty[ne] = Some(*s);
                    ne += 1;
                } else if r.free_slots > 0 {
                    partial[np] = Some(*s);
                    np += 1;
                }
                // Else full: found again through `all` after the next mark.
            }
            c.place_swept_batch(&h.mheap.arena, sc, &empty[..ne], &partial[..np]);
        }
        popped.is_some()
    };
    c.sweepers.fetch_sub(1, Ordering::SeqCst);
    found
}

/// Claim a span popped from an unswept list, sweep it and place it.
fn claim_sweep_place(h: &Shared, s: SpanRef) {
    claim(h, s);
    let r = sweep_span(h, s);
    place(h, s, r);
}

/// The work of the weak-clearing window, after mark termination opened it (see
/// [`crate::alloc::sweepgen`]): clear the dead weak references and ephemeron entries, hand the
/// cleanups of dead objects to the cleanup thread (all of which need the mark bits as marking
/// left them), queue every span that needs sweeping, then let sweeping begin.
pub(crate) fn end_weak_window(h: &Shared) {
    crate::gc::weak::process_weaks(h);
    let live = |p: *const crate::gc::object::Object| crate::gc::weak::is_live(h, p);
    h.ephemerons.clear_dead(&live);
    h.finalize.queue_cleanups(&live, h.id);
    h.mheap.central.queue_unswept();
    h.mheap.central.open_sweep();
    h.finalize.end_weak_window();
}

/// Sweep everything still unswept and wait for sweeps in progress on other threads (sweep
/// termination, `collect`, `Heap::finish_sweep`, verify mode). Called in the weak-clearing
/// window (by a thread other than the collector), it first waits for the window to close.
pub(crate) fn finish_sweep(h: &Shared) {
    while h.mheap.central.sweep_held() {
        std::thread::yield_now();
    }
    while sweep_some(h) {}
    while h.mheap.central.sweepers.load(Ordering::SeqCst) > 0 {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, GcArray, GcBytes, GcCell, Heap, Mutator, Rootable};
    use std::sync::atomic::{AtomicBool, Ordering};

    type Bufs = Rootable!['gc => GcCell<'gc, Option<GcArray<'gc, Option<GcBytes<'gc>>>>>];

    /// Messages per batch: 8 MiB of 1000-byte buffers (1 KiB slots), fewer under Miri.
    const N: usize = if cfg!(miri) { 128 } else { 8 * 1024 };

    /// Spans `n` of the test's buffers (1000 bytes behind a length word) fill.
    fn spans_of(n: usize) -> usize {
        use crate::alloc::size_class::{CLASSES, class_for};
        n.div_ceil(CLASSES[class_for(1000 + 8, 8).unwrap()].slots)
    }

    /// Fill the root with `N` buffers of `len` bytes each (every byte `fill`).
    fn fill(m: &mut Mutator<Bufs>, len: usize, fill: u8) {
        m.mutate(|mc, root| {
            let a = GcArray::new(mc, N, None);
            for i in 0..N {
                a.set(mc, i, Some(GcBytes::new(mc, &vec![fill; len])));
            }
            root.set(mc, Some(a));
        });
    }

    /// Every buffer of the root is intact (nothing reachable was freed or reused).
    fn check(m: &mut Mutator<Bufs>, len: usize, fill: u8) {
        m.mutate(|_, root| {
            let a = root.get().unwrap();
            for i in 0..N {
                let b = a.get(i).unwrap();
                assert!(b.len() == len && b.iter().all(|&x| x == fill), "buffer {i}");
            }
        });
    }

    /// The heap's memory classes add up to its mapped pages, and the spans kept empty (`kept`
    /// of them, of any class) count as free memory, not as in use.
    fn check_memory_classes(heap: &Heap, kept: usize) {
        let kept_bytes = heap.shared().mheap.central.kept_bytes();
        assert!(
            kept_bytes >= kept * crate::alloc::arena::PAGE_SIZE,
            "{kept} kept spans in {kept_bytes} bytes"
        );
        let m = heap.metrics();
        let g = |n: &str| m.u64(&format!("/memory/classes/{n}:bytes")).unwrap();
        let (objects, unused, free, released) = (
            g("heap/objects"),
            g("heap/unused"),
            g("heap/free"),
            g("heap/released"),
        );
        assert_eq!(
            objects + unused + free + released,
            g("total"),
            "classes do not add up"
        );
        assert!(
            free >= kept_bytes as u64,
            "{kept} kept spans of {kept_bytes} bytes, {free} bytes free"
        );
        let in_use = heap.stats().in_use_bytes as u64;
        assert_eq!(in_use, objects + unused, "in-use bytes count kept spans");
    }

    fn heap(verify: bool) -> Heap {
        Heap::new(Config::default().gc_percent(None).verify(verify)).unwrap()
    }

    thread_local! {
        /// Spans taken off unswept lists on this thread, and the fewest sweepers counted when
        /// one had just been taken (recorded by [`count_pops`]).
        static POPS: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, usize::MAX)) };
    }

    /// `Central`'s after-pop callback for [`a_sweep_is_counted_before_it_takes_a_span`].
    fn count_pops(c: &crate::alloc::central::Central) {
        let n = c.sweepers.load(std::sync::atomic::Ordering::SeqCst);
        POPS.with(|p| {
            let (pops, least) = p.get();
            p.set((pops + 1, least.min(n)));
        });
    }

    /// A heap whose every other buffer is garbage found by a cycle, its spans queued for
    /// sweeping, and its collector thread kept from sweeping them (a second cycle requested
    /// while the first marked, its start held: release with `debug_hold_cycle_start(false)`),
    /// so that this test's threads sweep every span. Returns the mutator holding the rest.
    fn unswept_with_the_collector_held(heap: &Heap) -> Mutator<Bufs> {
        let mut m: Mutator<Bufs> = heap.mutator(|_| GcCell::new(None));
        fill(&mut m, 1000, 1);
        m.mutate(|mc, root| {
            let a = root.get().unwrap();
            for i in (0..N).step_by(2) {
                a.set(mc, i, None);
            }
        });
        let cycles = heap.stats().gc_cycles;
        heap.debug_hold_marking(true);
        heap.debug_start_cycle();
        while !m.mutate(|mc, _| mc.debug_marking()) {
            std::thread::yield_now();
        }
        heap.debug_hold_cycle_start(true);
        heap.debug_start_cycle();
        heap.debug_hold_marking(false);
        let t = std::time::Instant::now();
        // The cycle counted, and its weak-clearing window (which queues the spans for sweeping
        // and lets sweeps begin) closed.
        while heap.stats().gc_cycles == cycles || heap.debug_weaks_pending() {
            let limit = if cfg!(miri) { 1200 } else { 20 };
            assert!(t.elapsed().as_secs() < limit, "the cycle did not end");
            std::thread::yield_now();
        }
        m
    }

    static HOLD_AFTER_POP: AtomicBool = AtomicBool::new(false);
    static POPPED: AtomicBool = AtomicBool::new(false);

    /// `Central`'s after-pop callback for [`finish_sweep_waits_for_a_sweep_in_progress_elsewhere`]:
    /// say so, and hold the sweep (with its span taken) while `HOLD_AFTER_POP` is set.
    fn hold_after_pop(_: &crate::alloc::central::Central) {
        POPPED.store(true, Ordering::SeqCst);
        while HOLD_AFTER_POP.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    }

    /// `finish_sweep` (what `collect`, `Heap::finish_sweep` and sweep termination wait with)
    /// waits for sweeps in progress on other threads, not only until the unswept lists are
    /// empty: with one thread's sweep held just after it took a span, another thread's
    /// `finish_sweep` sweeps the rest and then waits until that sweep is done.
    #[test]
    fn finish_sweep_waits_for_a_sweep_in_progress_elsewhere() {
        use crate::alloc::central::AFTER_POP;
        let heap = heap(false);
        let h = heap.shared();
        let _m = unswept_with_the_collector_held(&heap);
        HOLD_AFTER_POP.store(true, Ordering::SeqCst);
        let finished = AtomicBool::new(false);
        let limit = if cfg!(miri) { 1200 } else { 20 };
        let early = std::thread::scope(|s| {
            let held = s.spawn(|| {
                AFTER_POP.with(|f| f.set(Some(hold_after_pop)));
                super::sweep_some(h);
                AFTER_POP.with(|f| f.set(None));
            });
            let t = std::time::Instant::now();
            while !POPPED.load(Ordering::SeqCst) {
                assert!(t.elapsed().as_secs() < limit, "no span taken");
                std::thread::yield_now();
            }
            let waiting = s.spawn(|| {
                super::finish_sweep(h);
                finished.store(true, Ordering::SeqCst);
            });
            // The waiting thread has swept the rest (the lists are empty and the held sweep is
            // the only one left), so all it has left to do is wait: one that did not would
            // return within microseconds.
            while h.mheap.central.unswept_count() > 0
                || h.mheap.central.sweepers.load(Ordering::SeqCst) > 1
            {
                assert!(
                    t.elapsed().as_secs() < limit,
                    "the other finish_sweep did not sweep the rest"
                );
                std::thread::yield_now();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let early = finished.load(Ordering::SeqCst);
            HOLD_AFTER_POP.store(false, Ordering::SeqCst);
            held.join().unwrap();
            waiting.join().unwrap();
            early
        });
        heap.debug_hold_cycle_start(false);
        assert!(
            !early,
            "finish_sweep returned while a sweep was in progress"
        );
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(h.mheap.central.unswept_count(), 0);
    }

    /// A sweep counts itself as a sweeper before it takes spans off an unswept list, so that
    /// "lists empty and no sweeper" (what sweep termination waits for) cannot hold while a
    /// span taken off a list is still unswept. The collector thread is kept from sweeping (a
    /// second cycle requested while the first marks, its start held), so that this thread's
    /// sweeps take every span, one at a time and in batches.
    #[test]
    fn a_sweep_is_counted_before_it_takes_a_span() {
        use crate::alloc::central::AFTER_POP;
        let heap = heap(false);
        let h = heap.shared();
        let _m = unswept_with_the_collector_held(&heap);
        AFTER_POP.with(|f| f.set(Some(count_pops)));
        let mut singles = 0;
        while singles < 3 && super::sweep_some(h) {
            singles += 1;
        }
        while super::sweep_batch(h) {}
        AFTER_POP.with(|f| f.set(None));
        heap.debug_hold_cycle_start(false);
        let (pops, least) = POPS.with(|p| p.get());
        assert!(
            singles == 3 && pops > 3,
            "{singles} single sweeps, {pops} pops"
        );
        assert!(least >= 1, "a sweep took a span before counting itself");
        assert_eq!(h.mheap.central.unswept_count(), 0);
    }

    /// A sweep that empties spans keeps them for their class; the class's next allocations
    /// take them instead of new spans, and what no allocation took is freed before the next
    /// mark termination (kept at most one cycle).
    #[test]
    fn emptied_spans_are_kept_one_cycle_and_reused() {
        for verify in [false, true] {
            let heap = heap(verify);
            let h = heap.shared();
            let (central, arena) = (&h.mheap.central, &h.mheap.arena);
            let mut m: Mutator<Bufs> = heap.mutator(|_| GcCell::new(None));
            // Releasing memory turns keeping off only while it runs: the heap keeps emptied
            // spans afterwards as before.
            heap.free_os_memory();
            fill(&mut m, 1000, 1);
            m.mutate(|mc, root| root.set(mc, None));
            let freed = heap.stats().objects_freed;
            m.collect();
            assert!(
                heap.stats().objects_freed >= freed + N as u64,
                "garbage not freed"
            );
            // Nearly all of the buffers' spans are empty now, and kept.
            let kept = central.kept_empty();
            assert!(
                kept >= spans_of(N) * 9 / 10,
                "kept {kept} spans of {}",
                spans_of(N)
            );
            check_memory_classes(&heap, kept);
            let (mapped, made) = (arena.mapped_bytes(), central.spans_made());
            fill(&mut m, 1000, 2);
            check(&mut m, 1000, 2);
            assert!(
                central.kept_empty() <= kept / 10,
                "the class took {} of {kept} kept spans",
                kept - central.kept_empty()
            );
            assert!(
                arena.mapped_bytes() <= mapped + 64 * 1024,
                "the arena grew from {mapped} to {} bytes",
                arena.mapped_bytes()
            );
            check_memory_classes(&heap, central.kept_empty());
            // The array (one large span) and a few spans: not one per kept span.
            let new = central.spans_made() - made;
            assert!(new <= 4, "{new} new spans made next to {kept} kept ones");
            // Garbage again, and two cycles with no allocation in between: the first keeps
            // the emptied spans, the second frees them (no cache took one) before its mark
            // termination.
            m.mutate(|mc, root| root.set(mc, None));
            m.collect();
            assert!(central.kept_empty() >= spans_of(N) * 9 / 10);
            let free = arena.free_ready_bytes() + arena.released_bytes();
            m.collect();
            assert_eq!(
                central.kept_empty(),
                0,
                "kept spans outlived a second cycle"
            );
            assert!(
                arena.free_ready_bytes() + arena.released_bytes() >= free + N * 1024 * 9 / 10,
                "freed pages: {free} -> {}",
                arena.free_ready_bytes() + arena.released_bytes()
            );
        }
    }

    /// Background sweeps take spans off the unswept lists in batches: every span is swept
    /// (this thread sweeps batches too, racing the collector's sweeper), the emptied spans are
    /// kept for their class and the partly emptied ones listed as partial, where the class's
    /// next allocations find their free slots without growing the arena. With verify mode on,
    /// the cycle sweeps everything in its pause a span at a time (`sweep_some`), so that run
    /// checks the same outcome of the one-span path; the batches run with it off (which fails
    /// if a batch's partial spans are not listed).
    #[test]
    fn batched_sweeps_keep_emptied_spans_and_list_partial_ones() {
        use std::sync::atomic::Ordering;
        for verify in [false, true] {
            let heap = heap(verify);
            let h = heap.shared();
            let (central, arena) = (&h.mheap.central, &h.mheap.arena);
            let mut m: Mutator<Bufs> = heap.mutator(|_| GcCell::new(None));
            fill(&mut m, 1000, 1);
            // The first half's spans empty, the second half's partial.
            let dropped = |i: usize| i < N / 2 || i % 2 == 1;
            m.mutate(|mc, root| {
                let a = root.get().unwrap();
                for i in (0..N).filter(|&i| dropped(i)) {
                    a.set(mc, i, None);
                }
            });
            let (freed, cycles) = (heap.stats().objects_freed, heap.stats().gc_cycles);
            // A cycle whose sweep this thread does not finish (`collect` would).
            heap.debug_start_cycle();
            let t = std::time::Instant::now();
            while heap.stats().gc_cycles == cycles {
                let limit = if cfg!(miri) { 1200 } else { 20 };
                assert!(t.elapsed().as_secs() < limit, "the cycle did not end");
                std::thread::yield_now();
            }
            while super::sweep_batch(h) {}
            while central.sweepers.load(Ordering::SeqCst) > 0 {
                std::thread::yield_now();
            }
            assert_eq!(central.unswept_count(), 0);
            let s = heap.stats();
            assert!(s.objects_freed >= freed + (N / 2 + N / 4) as u64, "{s:?}");
            let kept = central.kept_empty();
            assert!(
                kept >= spans_of(N / 2) * 9 / 10,
                "kept {kept} of {} spans",
                spans_of(N / 2)
            );
            check_memory_classes(&heap, kept);
            let mapped = arena.mapped_bytes();
            m.mutate(|mc, root| {
                let a = root.get().unwrap();
                for i in (0..N).filter(|&i| dropped(i)) {
                    a.set(mc, i, Some(GcBytes::new(mc, &[9; 1000])));
                }
            });
            assert!(
                arena.mapped_bytes() <= mapped + 64 * 1024,
                "the arena grew from {mapped} to {} bytes",
                arena.mapped_bytes()
            );
            m.mutate(|_, root| {
                let a = root.get().unwrap();
                for i in 0..N {
                    let want = if dropped(i) { 9 } else { 1 };
                    assert!(a.get(i).unwrap().iter().all(|&x| x == want), "buffer {i}");
                }
            });
        }
    }

    /// With retained memory over the memory limit, sweeps keep no span: the pages go back to
    /// the page allocator, where the scavenger can release them. (Not under Miri: its `N` is
    /// far below the smallest memory limit, 1 MiB.)
    #[test]
    #[cfg_attr(miri, ignore)]
    fn over_the_memory_limit_no_span_is_kept() {
        for verify in [false, true] {
            let heap = Heap::new(
                Config::default()
                    .gc_percent(None)
                    .memory_limit(Some(N / 4 * 1024))
                    .verify(verify),
            )
            .unwrap();
            let h = heap.shared();
            let (central, arena) = (&h.mheap.central, &h.mheap.arena);
            let mut m: Mutator<Bufs> = heap.mutator(|_| GcCell::new(None));
            fill(&mut m, 1000, 5);
            check(&mut m, 1000, 5);
            m.mutate(|mc, root| root.set(mc, None));
            let free = arena.free_ready_bytes() + arena.released_bytes();
            m.collect();
            assert_eq!(central.kept_empty(), 0, "a span kept over the memory limit");
            assert!(
                arena.free_ready_bytes() + arena.released_bytes() >= free + N * 1024 * 9 / 10,
                "freed pages: {free} -> {}",
                arena.free_ready_bytes() + arena.released_bytes()
            );
        }
    }

    /// Spans kept for one class are freed for another before the arena grows: a program that
    /// switches from 1 KiB buffers to 2 KiB ones reuses the pages.
    #[test]
    fn kept_spans_are_freed_before_the_arena_grows() {
        for verify in [false, true] {
            let heap = heap(verify);
            let h = heap.shared();
            let (central, arena) = (&h.mheap.central, &h.mheap.arena);
            let mut m: Mutator<Bufs> = heap.mutator(|_| GcCell::new(None));
            fill(&mut m, 1000, 3);
            m.mutate(|mc, root| root.set(mc, None));
            m.collect();
            assert!(central.kept_empty() >= spans_of(N) * 9 / 10);
            let mapped = arena.mapped_bytes();
            // Half as many buffers, twice the size: the same bytes in another size class.
            m.mutate(|mc, root| {
                let a = GcArray::new(mc, N / 2, None);
                for i in 0..N / 2 {
                    a.set(mc, i, Some(GcBytes::new(mc, &[4; 2000])));
                }
                root.set(mc, Some(a));
            });
            assert!(
                central.kept_empty() <= (spans_of(N) / 10).max(2),
                "{} spans still kept while the arena grew",
                central.kept_empty()
            );
            assert!(
                arena.mapped_bytes() <= mapped + 64 * 1024,
                "the arena grew from {mapped} to {} bytes",
                arena.mapped_bytes()
            );
            m.collect();
            m.mutate(|_, root| {
                let a = root.get().unwrap();
                for i in 0..N / 2 {
                    assert!(a.get(i).unwrap().iter().all(|&x| x == 4), "buffer {i}");
                }
            });
        }
    }
}
