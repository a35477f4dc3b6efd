//! Verify mode: check the heap after every cycle and fail loudly.
//!
//! Enabled by `Config::verify(true)` or `GCCORE_VERIFY=1`. Freed slots are overwritten with a
//! poison byte (`0xDB`) by the sweeper, fresh spans are poisoned when created, and after each
//! cycle (with the world stopped and the sweep finished) [`verify_heap`] checks:
//!
//! 1. **Reachability**: walking from every root (root objects, root stacks, stash, live weak
//!    targets, the objects and queues of finalization and cleanup registrations), every object
//!    reached lies in an in-use span, starts a slot, has its alloc bit set
//!    and its pointer words are not all poison. A failure here is a live object the collector
//!    freed.
//! 2. **Bitmaps**: every span is swept, its mark bitmap is clear, its `allocated` count equals the
//!    alloc bitmap's population, and the alloc bits past the last slot are set.
//! 3. **Poison**: every free slot is still entirely poison (nothing wrote to freed memory).
//! 4. **Page map**: every page of every span maps back to that span.
//!
//! The collector aborts the process with the list of problems if any check fails.

use crate::alloc::arena::PAGE_SIZE;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::alloc::arena::Arena;
use crate::alloc::span::POISON;
use crate::gc::heap::Shared;
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::{Object, TypeInfo, type_of};
use crate::gc::stw::StoppedWorld;
use crate::gc::weak::WeakBox;

/// Verify the heap after `cycle` and abort with the problems found, if any (verify mode; world
/// stopped, registry locked).
pub(crate) fn verify_or_abort(h: &Shared, world: &mut StoppedWorld<'_>, cycle: u64) {
    if let Err(problems) = verify_heap(h, world) {
        let mut report = format!("gc-core: heap verification failed after cycle {cycle}:");
        for p in &problems {
            report.push_str("\n  ");
            report.push_str(p);
        }
        crate::util::bug::fatal(report);
    }
}

/// Run every check; `Err` lists what is wrong (at most a few dozen entries).
pub(crate) fn verify_heap(h: &Shared, world: &mut StoppedWorld<'_>) -> Result<(), Vec<String>> {
    let mut t = Tracer::checking(&h.mheap.arena);
    for m in world.mutators() {
        m.roots.trace_roots(&mut t);
    }
    h.stash.lock().trace(&mut t);
    h.finalize.for_each_registered(|p| t.edge(p));
    for w in h.weaks.lock().iter() {
        t.edge(w.0);
        // SAFETY: registered weak boxes that survived `process_weaks` are live `WeakBox`es.
        let target = unsafe { (*(w.0 as *const WeakBox)).target() };
        if !target.is_null() {
            t.edge(target);
        }
    }
    t.drain();
    let mut problems = t.take_problems();
    check_spans(h, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn check_spans(h: &Shared, problems: &mut Vec<String>) {
    let all = h.mheap.central.all.lock().clone();
    for (i, s) in all.into_iter().enumerate() {
        if problems.len() >= 32 {
            return;
        }
        let span = s.get();
        let st = span.state.lock();
        let where_ = format!("span {:#x} (size {})", span.start, span.elem_size);
        if span.all_index.load(Ordering::Relaxed) != i {
            problems.push(format!("{where_}: wrong position in the all-spans list"));
        }
        if !h.mheap.central.is_swept(span) {
            problems.push(format!("{where_}: not swept after the cycle"));
        }
        if span.marked_count() != 0 {
            problems.push(format!("{where_}: mark bits not cleared by the sweep"));
        }
        let ones = st.alloc[..span.nelems].count_ones();
        if ones != st.allocated {
            problems.push(format!(
                "{where_}: allocated count {} disagrees with alloc bitmap ({ones})",
                st.allocated
            ));
        }
        if !st.alloc[span.nelems..].all() {
            problems.push(format!("{where_}: alloc bits past the last slot are clear"));
        }
        for p in 0..span.npages {
            if !std::ptr::eq(
                h.mheap.arena.span_of(span.start + p * PAGE_SIZE),
                s.as_ptr(),
            ) {
                problems.push(format!("{where_}: page {p} does not map back to the span"));
            }
        }
        if h.settings.verify {
            for i in st.alloc[..span.nelems].iter_zeros() {
                let a = span.slot_addr(i);
                // SAFETY: a free slot of an in-use span: memory we own, read as bytes.
                let bytes = unsafe { std::slice::from_raw_parts(a as *const u8, span.elem_size) };
                if let Some(off) = bytes.iter().position(|&b| b != POISON) {
                    problems.push(format!(
                        "{where_}: free slot {i} was written after it was freed (offset {off})"
                    ));
                    break;
                }
            }
        }
    }
}

/// The verifier's side of a checking tracer ([`Tracer::checking`]): checks each object an
/// edge reaches, and has the tracer walk each good one once.
pub(crate) struct Checker {
    seen: HashSet<usize>,
    problems: Vec<String>,
}

impl Checker {
    /// A checker that has seen nothing yet.
    pub(crate) fn new() -> Checker {
        Checker {
            seen: HashSet::new(),
            problems: Vec::new(),
        }
    }

    /// Check the object at `h`; its type if the tracer should walk it (good, and not seen
    /// before).
    #[cold]
    pub(crate) fn visit(
        &mut self,
        arena: *const Arena,
        h: *const Object,
    ) -> Option<&'static TypeInfo> {
        let addr = h as usize;
        // SAFETY: the arena outlives every tracer (see the field `Tracer::arena`).
        match check_object(unsafe { &*arena }, addr) {
            Err(p) => {
                if self.problems.len() < 32 {
                    self.problems.push(p);
                }
                None
            }
            Ok(info) => self.seen.insert(addr).then_some(info),
        }
    }

    /// The problems found so far.
    pub(crate) fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.problems)
    }
}

/// What is wrong with a reachable pointer `addr`, if anything: not in an in-use span, not a
/// slot start, a free slot, or poisoned. Its type if nothing is.
fn check_object(arena: &Arena, addr: usize) -> Result<&'static TypeInfo, String> {
    // SAFETY: the verifier runs with the world stopped and the sweep finished: no span is freed
    // meanwhile.
    let Some(span) = (unsafe { arena.span_of_live(addr) }) else {
        return Err(format!(
            "reachable pointer {addr:#x} is not in an in-use span"
        ));
    };
    if !span.is_slot_start(addr) {
        return Err(format!(
            "reachable pointer {addr:#x} is not a slot start (span {:#x}, size {})",
            span.start, span.elem_size
        ));
    }
    let i = span.slot_index(addr);
    let allocated = span.state.lock().alloc[i];
    let info = type_of(span);
    if !allocated {
        return Err(format!(
            "reachable `{}` at {addr:#x} points into a free slot (span {:#x}, slot {i})",
            (info.name)(),
            span.start
        ));
    }
    // Objects have no header whose corruption would show, so look for what the sweep leaves in
    // a freed slot: poison over the whole object, read in the object's pointer words (the
    // bytes between fields may be uninitialised padding, which no code may read as integers;
    // pointer words are always initialised). A valid object has them all poison only if each
    // holds a non-pointer of poison bytes (a `NanBox` number 0xDBDB…), since a pointer of
    // poison bytes lies in no span. Types the marker scans through `trace` (no pointer words)
    // are left to the checks of the edges `trace` reports. (The alloc-bit check above is the
    // exact one; this catches a bitmap that disagrees with the memory.)
    if info.pointer_words != 0 {
        let poison = usize::from_ne_bytes([POISON; std::mem::size_of::<usize>()]);
        let mut words = info.pointer_words;
        let mut all_poison = true;
        while words != 0 && all_poison {
            let k = words.trailing_zeros() as usize;
            words &= words - 1;
            // SAFETY: word `k` lies inside the slot (a pointer word of the span's type) and is
            // aligned; it is initialised whatever the slot holds in verify mode: the object
            // (pointer words are always initialised), the sweep's poison, or a fresh span's
            // poison. A live object's pointer words are written after construction only
            // atomically (`Trace::POINTER_WORDS`), so this atomic load races with nothing, also
            // with a mutator in a blocking region, which runs through the pause.
            let w = unsafe { (*(addr as *const AtomicUsize).add(k)).load(Ordering::Relaxed) };
            all_poison = w == poison;
        }
        if all_poison {
            return Err(format!(
                "reachable `{}` at {addr:#x} has been poisoned (freed while reachable)",
                (info.name)()
            ));
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Gc, GcCell, Heap, Mutator, Rootable};

    /// The verifier must catch a reachable object whose slot was freed (simulated collector bug),
    /// and a write into a free slot.
    #[test]
    #[allow(clippy::type_complexity)]
    fn verifier_detects_freed_reachable_object_and_writes_to_free_slots() {
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let mut m: Mutator<Rootable!['gc => GcCell<'gc, Option<Gc<'gc, [u64; 3]>>>]> =
            heap.mutator(|_| GcCell::new(None));
        let addr = m.mutate(|mc, root| {
            let g = Gc::new(mc, [1u64, 2, 3]);
            root.set(mc, Some(g));
            Gc::new(mc, [9u64; 3]); // garbage: its slot becomes free and poisoned
            g.to_word()
        });
        m.collect();
        let h = heap.shared();
        {
            let mut world = StoppedWorld::stop(h);
            assert_eq!(verify_heap(h, &mut world), Ok(()));
            // Corrupt: free the reachable object's slot behind the collector's back (and
            // restore it).
            freed_behind_the_back_is_reported(h, &mut world, addr, "the root's object");
            // Then scribble on the freed garbage slot next to it.
            // SAFETY (test): the world is stopped, the slot belongs to the arena.
            let span = unsafe { h.mheap.arena.span_of_live(addr) }.unwrap();
            let i = span.slot_index(addr);
            let free = span.state.lock().alloc[..span.nelems].first_zero().unwrap();
            // SAFETY (test): a free slot of our span.
            unsafe { *(span.slot_addr(free) as *mut u8).add(3) = 0 };
            let problems = verify_heap(h, &mut world).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("written after it was freed")),
                "{problems:?}"
            );
            // Leave a consistent heap for teardown: re-poison the free slot.
            // SAFETY (test): as above.
            unsafe { *(span.slot_addr(free) as *mut u8).add(3) = POISON };
            let mut st = span.state.lock();
            st.alloc.set(i, false);
            st.allocated -= 1;
        }
    }

    /// `verify_heap` reports a problem containing `what`, and finds none once `undo` has run.
    fn reported(h: &Shared, world: &mut StoppedWorld<'_>, what: &str, undo: impl FnOnce()) {
        let problems = verify_heap(h, world).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "{what}: {problems:?}"
        );
        undo();
        assert_eq!(verify_heap(h, world), Ok(()), "{what}: undone");
    }

    /// Each check of the verifier's span walk and object check reports its corruption: bits
    /// past the last slot cleared, a span not swept, marks left, an allocated count off, a
    /// later page of the span not mapped back, a write into the last free slot's last byte,
    /// and pointers that are not slot starts (inside an object, in the span's tail).
    #[test]
    #[cfg_attr(miri, ignore = "several whole-heap verifications")]
    fn verifier_reports_each_kind_of_span_corruption() {
        type R = Rootable!['gc => crate::GcVec<'gc, Option<Gc<'gc, [u64; 6]>>>];
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let mut m: Mutator<R> = heap.mutator(|mc| crate::GcVec::new(mc));
        let addr = m.mutate(|mc, root| {
            for i in 0..4 {
                root.push(mc, Some(Gc::new(mc, [i; 6])));
                Gc::new(mc, [9u64; 6]); // garbage: free, poisoned slots
            }
            root.get(0).flatten().unwrap().to_word()
        });
        m.collect();
        let h = heap.shared();
        let mut world = StoppedWorld::stop(h);
        assert_eq!(verify_heap(h, &mut world), Ok(()));
        // SAFETY (test): the world is stopped and the object is allocated in an in-use span.
        let span = unsafe { h.mheap.arena.span_of_live(addr) }.unwrap();
        assert!(
            span.nelems % 64 != 0 && span.npages > 1,
            "a 48-byte class span: a tail of bits and several pages"
        );
        let i = span.slot_index(addr);
        span.state.lock().alloc.set(span.nelems, false);
        reported(h, &mut world, "past the last slot", || {
            span.state.lock().alloc.set(span.nelems, true)
        });
        let g = span.sweep_gen.load(Ordering::Relaxed);
        span.sweep_gen.store(g - 1, Ordering::Relaxed);
        reported(h, &mut world, "not swept after the cycle", || {
            span.sweep_gen.store(g, Ordering::Relaxed)
        });
        assert!(span.try_mark(i));
        reported(h, &mut world, "mark bits not cleared", || {
            span.clear_marks(i / 64)
        });
        span.state.lock().allocated += 1;
        reported(h, &mut world, "allocated count", || {
            span.state.lock().allocated -= 1
        });
        let last_page = span.start + (span.npages - 1) * PAGE_SIZE;
        h.mheap.arena.publish(last_page, 1, std::ptr::null());
        let p = span.npages - 1;
        reported(
            h,
            &mut world,
            &format!("page {p} does not map back"),
            || h.mheap.arena.publish(last_page, 1, span as *const _),
        );
        // The last byte of the last free slot.
        let free = span.state.lock().alloc[..span.nelems].last_zero().unwrap();
        let byte = span.slot_addr(free) + span.elem_size - 1;
        // SAFETY (test): a free slot of our span, poisoned by the sweep; written back below.
        unsafe { *(byte as *mut u8) = 0 };
        reported(h, &mut world, "written after it was freed", || {
            // SAFETY (test): as above.
            unsafe { *(byte as *mut u8) = POISON }
        });
        let tail = span.start + span.nelems * span.elem_size;
        assert!(tail < span.start + span.npages * PAGE_SIZE, "a tail");
        for bad in [addr + 8, tail] {
            let e = check_object(&h.mheap.arena, bad).err().unwrap_or_default();
            assert!(e.contains("not a slot start"), "{bad:#x}: {e}");
        }
        assert!(check_object(&h.mheap.arena, addr).is_ok());
    }

    /// Free the object at `addr` behind the collector's back (alloc bit cleared, memory
    /// poisoned, as a sweep that freed it would leave it), check that the verifier reports a
    /// reachable object in a free slot (`what`: the path it is reached by), and put it back.
    fn freed_behind_the_back_is_reported(
        h: &Shared,
        world: &mut StoppedWorld<'_>,
        addr: usize,
        what: &str,
    ) {
        // SAFETY (test): the world is stopped and the object is allocated in an in-use span.
        let span = unsafe { h.mheap.arena.span_of_live(addr) }.unwrap();
        let i = span.slot_index(addr);
        // SAFETY (test): our test object's bytes, read, poisoned, then written back below.
        let saved: Vec<u8> =
            unsafe { std::slice::from_raw_parts(addr as *const u8, span.elem_size) }.to_vec();
        {
            let mut st = span.state.lock();
            st.alloc.set(i, false);
            st.allocated -= 1;
        }
        // SAFETY (test): as above.
        unsafe { std::ptr::write_bytes(addr as *mut u8, POISON, span.elem_size) };
        let problems = verify_heap(h, world).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("free slot")),
            "{what}: {problems:?}"
        );
        {
            let mut st = span.state.lock();
            st.alloc.set(i, true);
            st.allocated += 1;
        }
        // SAFETY (test): as above.
        unsafe { std::ptr::copy_nonoverlapping(saved.as_ptr(), addr as *mut u8, saved.len()) };
        assert_eq!(verify_heap(h, world), Ok(()), "{what}: restored");
    }

    #[derive(crate::Trace)]
    struct Holders<'gc> {
        strong: crate::GcVec<'gc, Option<Gc<'gc, [u64; 3]>>>,
        weak: GcCell<'gc, Option<crate::GcWeak<'gc, [u64; 3]>>>,
        table: crate::GcEphemeronTable<'gc, [u64; 3], Gc<'gc, [u64; 3]>>,
        queue: crate::GcFinalizers<'gc, [u64; 3]>,
    }

    /// The verifier walks every way an object stays reachable besides roots and fields: a
    /// stash, a weak reference's live target (an upgrade may hand it out), an ephemeron
    /// table's keys and values, and the objects of finalization and cleanup registrations. An
    /// object reached only that way and freed behind the collector's back is reported.
    #[test]
    #[allow(clippy::type_complexity)]
    #[cfg_attr(
        miri,
        ignore = "thirteen whole-heap verifications: did not finish in 15 minutes under Miri"
    )]
    fn verifier_reaches_objects_through_stashes_weak_references_and_ephemeron_tables() {
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let mut m: Mutator<Rootable!['gc => Holders<'gc>]> = heap.mutator(|mc| Holders {
            strong: crate::GcVec::new(mc),
            weak: GcCell::new(None),
            table: crate::GcEphemeronTable::new(mc),
            queue: crate::GcFinalizers::new(mc),
        });
        let (stash, addrs) = m.mutate(|mc, r| {
            let obj = |n: u64| Gc::new(mc, [n; 3]);
            let (stashed, weak, key, value) = (obj(1), obj(2), obj(3), obj(4));
            let (finalizable, cleaned) = (obj(5), obj(6));
            let stash = mc.stash::<Rootable!['gc => [u64; 3]]>(stashed);
            r.weak.set(mc, Some(weak.downgrade(mc)));
            r.table.insert(mc, key, value);
            r.queue.register(mc, finalizable);
            cleaned.add_cleanup(mc, || {});
            // Held strongly for the collection below, then let go.
            for g in [weak, key, finalizable, cleaned] {
                r.strong.push(mc, Some(g));
            }
            let a = |g: Gc<'_, [u64; 3]>| g.to_word();
            let addrs = [
                a(stashed),
                a(weak),
                a(key),
                a(value),
                a(finalizable),
                a(cleaned),
            ];
            (stash, addrs)
        });
        m.collect();
        // No cycle runs after this: the weak target stays set and the entry stays, each
        // reached by that path alone.
        m.mutate(|mc, r| r.strong.truncate(mc, 0));
        let h = heap.shared();
        {
            let mut world = StoppedWorld::stop(h);
            assert_eq!(verify_heap(h, &mut world), Ok(()));
            let paths = [
                "a stash",
                "a weak reference",
                "a table's key",
                "a table's value",
                "a finalization registration",
                "a cleanup",
            ];
            for (addr, what) in addrs.into_iter().zip(paths) {
                freed_behind_the_back_is_reported(h, &mut world, addr, what);
            }
        }
        drop(stash);
    }

    #[derive(crate::Trace)]
    struct Link<'gc> {
        tag: u8,
        next: Option<Gc<'gc, Link<'gc>>>,
    }

    /// The verifier walks the whole graph, through objects read by their pointer words, and
    /// the roots of every mutator: the tail of a chain of 10 000 objects, reached by nothing
    /// else, and an object only a second mutator's root stack holds, each freed behind the
    /// collector's back, are reported.
    #[test]
    #[allow(clippy::type_complexity)]
    #[cfg_attr(miri, ignore = "a 10 000-object walk, three times")]
    fn verifier_walks_long_chains_and_every_mutators_roots() {
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let mut m: Mutator<Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Link<'gc>>>>]> =
            heap.mutator(|_| GcCell::new(None));
        let tail = m.mutate(|mc, root| {
            let tail = Gc::new(mc, Link { tag: 0, next: None });
            let mut head = tail;
            for i in 1..10_000u32 {
                head = Gc::new(
                    mc,
                    Link {
                        tag: i as u8,
                        next: Some(head),
                    },
                );
            }
            root.set(mc, Some(head));
            tail.to_word()
        });
        let mut other: Mutator<Rootable!['gc => ()], Rootable!['gc => Gc<'gc, [u64; 3]>]> =
            heap.mutator_with_stack(|_| ());
        let held = other.mutate_with_stack(|mc, _, stack| {
            let g = Gc::new(mc, [7u64; 3]);
            stack.push(g);
            g.to_word()
        });
        m.collect();
        let h = heap.shared();
        let mut world = StoppedWorld::stop(h);
        assert_eq!(verify_heap(h, &mut world), Ok(()));
        freed_behind_the_back_is_reported(h, &mut world, tail, "the tail of a long chain");
        freed_behind_the_back_is_reported(h, &mut world, held, "a second mutator's root stack");
    }

    #[derive(crate::Trace)]
    struct QueueHolder<'gc> {
        queue: GcCell<'gc, Option<crate::GcFinalizers<'gc, [u64; 3]>>>,
        object: GcCell<'gc, Option<Gc<'gc, [u64; 3]>>>,
    }

    /// A finalization queue reached only through a registration (its holder let go of it since
    /// the last cycle) is walked: freed behind the collector's back, it is reported. (A
    /// registration kept after its queue died would push objects onto whatever queue took its
    /// slot.)
    #[test]
    #[allow(clippy::type_complexity)]
    #[cfg_attr(miri, ignore = "whole-heap verifications")]
    fn verifier_walks_the_queues_of_finalization_registrations() {
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let mut m: Mutator<Rootable!['gc => QueueHolder<'gc>]> = heap.mutator(|_| QueueHolder {
            queue: GcCell::new(None),
            object: GcCell::new(None),
        });
        let queue = m.mutate(|mc, r| {
            let q = crate::GcFinalizers::new(mc);
            let o = Gc::new(mc, [5u64; 3]);
            q.register(mc, o);
            r.queue.set(mc, Some(q));
            r.object.set(mc, Some(o));
            crate::api::cell::Slot::to_word(q)
        });
        m.collect();
        // No cycle after this: the registration alone reaches the queue.
        m.mutate(|mc, r| r.queue.set(mc, None));
        let h = heap.shared();
        let mut world = StoppedWorld::stop(h);
        assert_eq!(verify_heap(h, &mut world), Ok(()));
        freed_behind_the_back_is_reported(h, &mut world, queue, "a registration's queue");
    }

    /// A reachable object whose memory holds the sweep's poison though its alloc bit is set (a
    /// bitmap that disagrees with the memory) is reported, from its pointer words: the bytes
    /// of its padding (after `tag`) are never read.
    #[test]
    #[allow(clippy::type_complexity)]
    fn verifier_detects_a_poisoned_object_by_its_pointer_words() {
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let mut m: Mutator<Rootable!['gc => GcCell<'gc, Option<Gc<'gc, Link<'gc>>>>]> =
            heap.mutator(|_| GcCell::new(None));
        let addr = m.mutate(|mc, root| {
            let g = Gc::new(mc, Link { tag: 7, next: None });
            root.set(mc, Some(g));
            g.to_word()
        });
        assert_ne!(<Link<'static> as crate::Trace>::POINTER_WORDS, None);
        m.collect();
        let h = heap.shared();
        let mut world = StoppedWorld::stop(h);
        assert_eq!(verify_heap(h, &mut world), Ok(()));
        // SAFETY (test): the world is stopped and the object is ours; it is written back
        // below before anything reads it as a `Link`.
        unsafe { std::ptr::write_bytes(addr as *mut u8, POISON, size_of::<Link<'static>>()) };
        let problems = verify_heap(h, &mut world).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("has been poisoned")),
            "{problems:?}"
        );
        // SAFETY (test): as above; the object as it was.
        unsafe { std::ptr::write(addr as *mut Link<'static>, Link { tag: 7, next: None }) };
        assert_eq!(verify_heap(h, &mut world), Ok(()));
    }
}
