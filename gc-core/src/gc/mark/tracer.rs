//! The tracer: what every [`Trace::trace`](crate::gc::trace::Trace::trace) call reports its
//! edges to, and the marker's grey stack (Go: `greyobject`, `scanobject`, `gcDrain`).
//!
//! | colour | meaning                                   | representation |
//! |--------|-------------------------------------------|----------------|
//! | white  | not reached (yet); freed by the sweep if it stays white | mark bit 0 |
//! | grey   | reached, its fields not yet scanned       | mark bit 1, on a grey stack; with span-local marking, in a small span: mark bit 1, scan bit 0, its span on a span queue |
//! | black  | reached and scanned                       | mark bit 1, on no stack; with span-local marking, in a small span: mark and scan bits 1 |
//!
//! Noscan objects go straight from white to black: their mark bit is set and they are never queued,
//! so the marker never reads them. Inside a drain, a marker that shares mark bits with others
//! claims the white objects it reaches in a batch of one mark word and sets the batch with one
//! read-modify-write when it moves on to another word or the drain ends ([`Tracer::mark_deferred`];
//! a span-local marker batches only the noscan objects of one array chunk's scan). Objects
//! allocated during marking are black at once (mark and scan bits set by the allocation cache,
//! `Span::mark_black`).
//!
//! # Span-local marking
//!
//! Off by default (`Config::span_marking`): then every grey scan object is pushed on the grey
//! stack with its type, and the marker walks the graph depth-first.
//!
//! With it, marking an object of a small span does not push the object: it sets the mark bit
//! and puts the *span* on the tracer's span queue unless it is queued already
//! (`Span::enqueue`). A
//! marker takes a span off the queue (oldest first, so that marks accumulate on spans that wait),
//! claims every grey object of the span at once (`Span::claim_grey`: mark and not scan bit, scan
//! bit set in the same step), prefetches them and scans them in address order
//! ([`Tracer::scan_span`]). A span with one grey object costs one pass over its few mark words
//! more than the object alone would. This is the idea of Go's "Green Tea" marker: the marker
//! reads objects in memory order, a span's worth at a time, instead of one cold object per
//! edge. Large objects (one per span) and array continuations keep a grey stack of their own.
//!
//! # One type, three purposes
//!
//! `Trace::trace` names one type, and marking's hot path must not pay a dynamic call per edge,
//! so a tracer is one struct whose [`Tracer::edge`] dispatches on its purpose with one
//! predictable branch:
//!
//! | purpose | made by | what `edge` does |
//! |---------|---------|------------------|
//! | **marking** ([`Tracer::marking`]) | mark workers, assists, root scans, shading | find the span through the page map (one load; none when the edge lands on the page of the last lookup, see `HotSpan`), the slot by a multiply-shift, test-and-set the mark bit; queue the span of a newly greyed scan object (a large one: push it with its type) |
//! | **collecting** ([`Tracer::collecting`]) | the write barrier (`gc::barrier`) | record the edge; marks nothing |
//! | **checking** ([`Tracer::checking`]) | the verifier (`gc::verify`'s [`Checker`]) | check the object is live and unpoisoned; walk it once |
//!
//! The `trace` function of an object comes from its span's type (objects have no header:
//! `gc::object`). A marker scans an object whose type has pointer words
//! ([`Trace::POINTER_WORDS`](crate::gc::trace::Trace::POINTER_WORDS)) by reading those words
//! itself, as Go's marker reads a type's pointer bitmap ([`Tracer::scan_object`]); the verifier
//! always calls `trace`, so that it checks the words against it. [`Tracer::drain`] scans queued
//! spans, grey large objects and array chunks until none is left; a marker offers half its
//! spans (or its stack) to the shared [`MarkWork`] queue when the queue is empty (see
//! `gc::mark::work` for when each kind of marker does). A depth-first drain that keeps leaving
//! the hot page (a heap reached in random address order) takes its objects through a small
//! prefetch ring instead of straight off the stack ([`Tracer::judge_window`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::alloc::arena::{Arena, PAGE_SHIFT};
use crate::alloc::span::{MARK_WORDS, Span};
use crate::gc::ephemeron::{Ephemerons, Pending};
use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::batch::{MarkBatch, Marked};
use crate::gc::mark::work::{MarkWork, SHARE_MIN};
use crate::gc::object::{Object, TypeInfo, type_of};
use crate::gc::verify::Checker;

/// What the tracer does with each edge.
enum Purpose {
    Mark,
    Collect,
    Check(Box<Checker>),
}

/// How a marking tracer sets mark bits and shares its work.
pub(crate) enum Marking<'a> {
    /// The only marker (stop-the-world marking with one worker): no other thread touches mark
    /// bits, so they are set without an atomic read-modify-write.
    Alone,
    /// One of several stop-the-world mark workers: offers half its stack to `work` at every
    /// pop that finds the queue empty.
    Shared(&'a MarkWork),
    /// Any other marker: a concurrent worker (which offers work between slices, see
    /// `gc::mark::workers`), or a short-lived tracer (root scan, shading, assist) that hands all
    /// its work over when done.
    Local,
}

/// Receives the GC pointers reported by [`Trace::trace`](crate::gc::trace::Trace::trace).
///
/// Only the collector creates tracers; user code sees one only as the argument of `trace`,
/// where the one thing to do with it is pass it on to the fields' `trace`.
pub struct Tracer {
    /// The heap's arena, which outlives every tracer: each lives inside one collection, one
    /// barrier or one verification, during which the heap is alive.
    arena: *const Arena,
    /// Grey objects (marking: with span-local marking only those of large spans), objects to
    /// walk (checking).
    stack: Vec<Grey>,
    /// Marking: small spans with grey objects, scanned a span at a time (see
    /// [`Tracer::scan_span`]), oldest first.
    spans: VecDeque<SpanPtr>,
    /// Marking: grey small objects by queueing their spans ([`Tracer::scan_span`]); else
    /// they are pushed on `stack` like large ones.
    span_local: bool,
    /// Marking: the span [`Tracer::scan_span`] is scanning (null: none), and the mark words in
    /// which this tracer greyed objects of it meanwhile (one bit per word: it scans them in
    /// another pass instead of queueing the span).
    current: *const Span,
    rescan: u32,
    /// The edges reported (collecting): the mutator's barrier buffer, lent for the call.
    collected: Vec<ObjAddr>,
    purpose: Purpose,
    /// Marking: the queue to share with (null: none). Outlives the tracer (it is the heap's).
    share: *const MarkWork,
    /// Marking: where ephemeron tables with unmarked keys are deferred (the heap's, which
    /// outlives the tracer; null for the other purposes).
    ephemerons: *const Ephemerons,
    /// Objects (and their bytes) this tracer marked.
    pub(crate) marked: Marked,
    /// Marking: the unscanned rest of large arrays, as (array, next index) continuations.
    chunks: Vec<(*const Object, usize)>,
    /// Marking: work done, in units of one object or chunk scanned or one edge followed;
    /// bounds [`Tracer::drain_budget`].
    work: usize,
    /// Marking: how an edge sets a mark bit: [`ATOMIC`], [`EXCLUSIVE`], or one of the deferring
    /// modes ([`DEFERRED`], [`DEFERRED_NOSCAN`]) inside a drain or an array chunk's scan, with
    /// the [`LOG`] bit set while marks are logged. One byte, so that the marking path tests it
    /// once.
    mode: u8,
    /// Marking, while deferring: the claims on one mark word not yet set
    /// ([`Tracer::mark_deferred`]).
    batch: MarkBatch,
    /// Marking: the page and span of the last object whose span [`Tracer::mark`] looked up.
    hot: HotSpan,
    /// Marking, while [`LOG`] is set in `mode`: the objects this tracer marked since
    /// [`Tracer::start_mark_log`], at most `log_cap` of them (the ephemeron index asks which
    /// of its keys are among them: `gc::ephemeron`).
    mark_log: Vec<usize>,
    log_cap: usize,
    /// Marking: edges whose span the depth-first drain loop looked up through the page map
    /// (the hot page missed; the general path's lookups are not counted: the ring cannot help
    /// objects scanned by their `trace`), and whether that loop takes its objects through a
    /// prefetch ring ([`Tracer::judge_window`] decides, a window of work at a time).
    misses: usize,
    ring: bool,
    /// The work count and misses when the current window began, and the windows judged for
    /// the ring so far.
    window: (usize, usize),
    ring_windows: usize,
}

/// The page of the last object whose span a marking tracer found through the page map, and
/// that span: an edge into the same page finds its span without the page-map load, so the
/// loads of the span's geometry do not wait for it. Objects allocated together are marked
/// together, so most edges of a tree built in order land in the page of the last one. The
/// test depends only on the edge's address (not on the span the last lookup found), so on a
/// heap reached in random order, where it misses, the lookups of successive edges still
/// overlap.
///
/// Pages are counted from the arena's base, as the page map counts them: the reservation is
/// only aligned to the OS page, so an address's own `addr >> PAGE_SHIFT` could straddle two
/// arena pages of two spans.
///
/// Valid while this cycle's marking lasts: the span held an object this tracer reached, which
/// is marked for the rest of the cycle, so no sweep frees the span before the cycle's marking
/// ends. A tracer marks inside one cycle's marking, except a background helper's, which may
/// sleep through the end of its cycle between slices, and marks only work it took from the
/// shared queue: a tracer forgets the hot page whenever it takes a batch
/// ([`Tracer::push_grey_batch`]).
#[derive(Clone, Copy)]
struct HotSpan {
    /// The arena's base address (constant).
    base: usize,
    /// Arena page index (`usize::MAX`: none; no page index is that large).
    page: usize,
    span: *const Span,
}

impl HotSpan {
    /// No hot page, for the arena at `base`.
    fn none(base: usize) -> HotSpan {
        HotSpan {
            base,
            page: usize::MAX,
            span: std::ptr::null(),
        }
    }

    /// The arena page index of `addr` (an address in the arena).
    #[inline(always)]
    fn page_of(&self, addr: usize) -> usize {
        addr.wrapping_sub(self.base) >> PAGE_SHIFT
    }
}

/// [`Tracer`]'s `mode`: mark bits are set with a locked read-modify-write.
const ATOMIC: u8 = 0;
/// [`Tracer`]'s `mode`: the only marker ([`Marking::Alone`]) sets mark bits with a load and a
/// store.
const EXCLUSIVE: u8 = 1;
/// [`Tracer`]'s `mode` inside a drain of a depth-first marker that shares mark bits with
/// others: marks are claimed in the tracer's batch and set a mark word at a time
/// ([`Tracer::mark_deferred`]).
const DEFERRED: u8 = 2;
/// [`Tracer`]'s `mode` inside an array chunk's scan by a span-local marker: only the marks of
/// noscan objects are batched (a span-local grey object must be marked in memory before its span is
/// queued, since whoever scans the span finds it by its mark bit).
const DEFERRED_NOSCAN: u8 = 4;
/// [`Tracer`]'s `mode`, a bit set beside [`ATOMIC`] or [`EXCLUSIVE`]: every object the tracer
/// marks is also logged ([`Tracer::start_mark_log`]). Marks are not deferred meanwhile
/// ([`Tracer::begin_deferred`] refuses), so every new mark goes through
/// [`Tracer::mark_other_mode`], out of the inlined path.
const LOG: u8 = 8;

/// Grey objects scanned by their type's `trace` one after another on the general path of a
/// drain, before its local-state loop is tried again (`Tracer::drain_until`).
const TRACED_RUN: usize = 64;

/// Objects a depth-first drain loop in ring mode takes off its grey stack ahead of scanning
/// them, each prefetched when taken (`Ring`).
const PREFETCH_RING: usize = 8;

/// Work units (`Tracer::drain_until`) after which a depth-first drain loop judges its hot-page
/// misses again, and the share of them (one miss per this many units) past which it takes its
/// objects through the prefetch ring.
const ORDER_WINDOW: usize = 1024;
const RING_MISSES: usize = 8;

/// The drain loop's page-map lookup for the edge to `addr` off the hot page, counted in
/// `misses` (the tracer's). Out of line, so that the count takes no register in the loop (kept
/// there, it made the in-order tree 5% slower with two workers); the loop comes here on a miss
/// only, which on a heap in random order is where its time goes to the cache misses anyway.
#[cold]
#[inline(never)]
fn page_miss(arena: &Arena, addr: usize, misses: &mut usize) -> *const Span {
    *misses += 1;
    let span = arena.span_of(addr);
    if span.is_null() {
        bug!("traced pointer {addr:#x} is not in an in-use span");
    }
    span
}

/// Grey objects taken off the stack and prefetched, scanned oldest first (`Tracer::drain_stack`
/// in ring mode): each object's cache miss overlaps the scans of the ones before it.
struct Ring {
    slots: [Option<Grey>; PREFETCH_RING],
    head: usize,
    len: usize,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            slots: [None; PREFETCH_RING],
            head: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, g: Grey) {
        debug_assert!(self.len < PREFETCH_RING);
        self.slots[(self.head + self.len) % PREFETCH_RING] = Some(g);
        self.len += 1;
    }

    #[inline(always)]
    fn pop(&mut self) -> Option<Grey> {
        if self.len == 0 {
            return None;
        }
        let g = self.slots[self.head].take();
        self.head = (self.head + 1) % PREFETCH_RING;
        self.len -= 1;
        g
    }

    /// Put the objects back on `stack` (the ring is empty after).
    fn drain_into(&mut self, stack: &mut Vec<Grey>) {
        while let Some(g) = self.pop() {
            stack.push(g);
        }
    }
}

/// Elements of an array a marker scans as one unit (Go splits objects into 128 KiB "oblets" for
/// the same reason): a large array is scanned in pieces between which the marker checks for a
/// pause request or a budget, and the rest can be handed to another marker.
pub(crate) const ARRAY_CHUNK: usize = 128;

/// Cache lines at the start of a `Span` that marking an object in it reads: the slot-finding
/// fields and the mark words (`Tracer::prefetch_words`).
const SPAN_MARK_LINES: usize = 3;

/// Array chunks shorter than this are traced without prefetching (`Tracer::prefetch_words`).
const PREFETCH_MIN_WORDS: usize = 32;

/// How a marker reads a grey object's pointer words (`Tracer::drain_stack`,
/// `Tracer::scan_object`). `Acquire`: a mutator that allocates while marking publishes the new
/// object's address with a `Release` store after its mark bit was set (allocate-black,
/// `Span::mark_black`), and a marker that tests the bit with a plain load (deferred marks,
/// `gc::mark::batch`) must then see it set, or it would claim a black object as white and scan
/// it, perhaps before its contents are visible. x86 orders every load so; weaker CPUs
/// (AArch64, POWER) do not (the loom model `loom_deferred_marks_never_grey_a_black_object`
/// reads its published address with this ordering).
pub(crate) const POINTER_WORD_LOAD: Ordering = Ordering::Acquire;

/// A grey object: its address and its type, one with a `trace` function.
#[derive(Clone, Copy)]
pub(crate) struct Grey {
    obj: *const Object,
    info: &'static TypeInfo,
}

// SAFETY: an object address and immutable `'static` type information; the object is `Send +
// Sync` (every heap type is) and alive for the cycle (it is marked).
unsafe impl Send for Grey {}

/// Ask the CPU to load the slots `bits` of mark word `w` of a span at `start` with slots of
/// `size` bytes, which the marker will scan next: their cache misses then overlap instead of
/// coming one after another.
#[inline(always)]
fn prefetch_slots(start: usize, size: usize, w: usize, mut bits: u64) {
    while bits != 0 {
        let i = w * 64 + bits.trailing_zeros() as usize;
        bits &= bits - 1;
        crate::util::prefetch::prefetch(start + i * size);
    }
}

/// A small span with grey objects, on a span queue, and the slot of the object whose marking
/// queued it (its representative, see [`Span::enqueue`]).
#[derive(Clone, Copy)]
pub(crate) struct SpanPtr(*const Span, u32);

// SAFETY: spans are shared by every thread (`Span` is `Sync`); a queued span holds a marked
// object, so no sweep frees it before the cycle's marking ends, and every queue is empty then.
unsafe impl Send for SpanPtr {}

/// Grey work handed between markers through the shared queue: whole objects, and the unscanned
/// rest of large arrays (array, first element not yet scanned).
#[derive(Default)]
pub(crate) struct GreyBatch {
    pub objs: Vec<Grey>,
    pub spans: Vec<SpanPtr>,
    pub chunks: Vec<(ObjAddr, usize)>,
}

impl Tracer {
    fn with_purpose(arena: &Arena, purpose: Purpose) -> Tracer {
        Tracer {
            arena,
            stack: Vec::new(),
            spans: VecDeque::new(),
            span_local: false,
            current: std::ptr::null(),
            rescan: 0,
            collected: Vec::new(),
            purpose,
            share: std::ptr::null(),
            ephemerons: std::ptr::null(),
            marked: Marked::default(),
            chunks: Vec::new(),
            work: 0,
            mode: ATOMIC,
            batch: MarkBatch::new(),
            hot: HotSpan::none(arena.base()),
            mark_log: Vec::new(),
            log_cap: 0,
            misses: 0,
            ring: false,
            window: (0, 0),
            ring_windows: 0,
        }
    }

    /// A marking tracer over the heap `h` (whose arena, like the queue of
    /// [`Marking::Shared`], outlives it), span-local if the heap is configured so.
    pub(crate) fn marking(h: &Shared, m: Marking<'_>) -> Tracer {
        let mut t = Tracer::with_purpose(&h.mheap.arena, Purpose::Mark);
        t.span_local = h.settings.span_marking;
        t.ephemerons = &h.ephemerons;
        match m {
            Marking::Alone => t.mode = EXCLUSIVE,
            Marking::Shared(w) => {
                t.share = w;
                // Long-lived: start with room for a deep graph.
                t.stack.reserve(1024);
                t.spans.reserve(1024);
            }
            // Short-lived (a buffer flush, a root scan, an assist): the stack grows as needed.
            Marking::Local => {}
        }
        t
    }

    /// A tracer that only records the edges it is given, appending them to `into` (the write
    /// barrier lends it the mutator's buffer, so that a store allocates nothing).
    #[inline]
    pub(crate) fn collecting(arena: &Arena, into: Vec<ObjAddr>) -> Tracer {
        let mut t = Tracer::with_purpose(arena, Purpose::Collect);
        t.collected = into;
        t
    }

    /// A tracer that walks the heap checking every object it reaches (the verifier).
    pub(crate) fn checking(arena: &Arena) -> Tracer {
        Tracer::with_purpose(arena, Purpose::Check(Box::new(Checker::new())))
    }

    /// Whether this tracer marks (else it collects edges for the barrier or checks them for
    /// the verifier): ephemeron tables trace values only for marked keys when it does.
    pub(crate) fn is_marking(&self) -> bool {
        matches!(self.purpose, Purpose::Mark)
    }

    /// Marking: whether the object at `h` is marked: a key an ephemeron table holds, a
    /// finalizer registration's object or queue, a weak reference's box or target, each
    /// allocated this cycle (see `gc::ephemeron` and `gc::finalize`).
    pub(crate) fn is_marked(&self, h: *const Object) -> bool {
        // SAFETY: the arena outlives the tracer; the object is allocated for the cycle (the
        // callers' contract: a table never holds a key freed by an earlier sweep, registrations
        // and weak boxes leave their lists in the weak clearing of the cycle that finds them
        // dead, and weak targets are cleared there, all before that cycle's sweep).
        let Some(span) = (unsafe { (*self.arena).span_of_live(h as usize) }) else {
            bug!(
                "an object {:#x} tested for its mark is not in an in-use span",
                h as usize
            );
        };
        let i = span.slot_index(h as usize);
        // A mark this tracer claimed but has not set yet counts.
        span.is_marked(i) || self.batch.holds(span, i)
    }

    /// Marking: defer an ephemeron table that has unmarked keys to the cycle's rounds.
    pub(crate) fn defer_ephemerons(&mut self, p: Pending) {
        debug_assert!(!self.ephemerons.is_null());
        // SAFETY: set from the heap's state, which outlives every tracer (see `marking`).
        if let Some(e) = unsafe { self.ephemerons.as_ref() } {
            e.defer(p);
        }
    }

    /// Report one edge to the object at `h`.
    #[inline(always)]
    pub(crate) fn edge(&mut self, h: *const Object) {
        if let Purpose::Mark = self.purpose {
            self.mark(h)
        } else {
            self.edge_other(h)
        }
    }

    /// The edges of the other purposes, kept out of marking's inlined path.
    #[cold]
    #[inline(never)]
    fn edge_other(&mut self, h: *const Object) {
        match &mut self.purpose {
            Purpose::Mark => self.mark(h),
            Purpose::Collect => self.collected.push(ObjAddr(h)),
            Purpose::Check(c) => {
                if let Some(info) = c.visit(self.arena, h) {
                    self.push_grey(h, info);
                }
            }
        }
    }

    /// Marking edge: set the mark bit; grey a newly marked scan object.
    #[inline(always)]
    fn mark(&mut self, h: *const Object) {
        self.work += 1;
        let addr = h as usize;
        let page = self.hot.page_of(addr);
        let span = if page == self.hot.page {
            #[cfg(debug_assertions)]
            {
                // SAFETY: the arena outlives the tracer (see the field).
                let entry = unsafe { (*self.arena).span_of(addr) };
                assert!(
                    std::ptr::eq(entry, self.hot.span),
                    "the hot page of {addr:#x} changed span while a tracer held it"
                );
            }
            self.hot.span
        } else {
            self.find_span(addr, page)
        };
        // SAFETY: `span` is the in-use span of the object at `addr`, found through the page map
        // now or for an earlier edge onto the same page; an edge a `Trace` impl reported (its
        // contract: a `Gc` of the current scope or of the graph being marked) is a reachable
        // object, and either object keeps its span from being freed while this cycle's marking
        // lasts (see `HotSpan`), which this use lies in.
        let span = unsafe { &*span };
        self.mark_in(span, span.slot_index(addr), h);
    }

    /// The span of the object at `addr` (an edge being marked, on arena page `page`), through
    /// the page map; its page becomes the hot page.
    #[inline(always)]
    fn find_span(&mut self, addr: usize, page: usize) -> *const Span {
        // SAFETY: the arena outlives the tracer (see the field).
        let span = unsafe { (*self.arena).span_of(addr) };
        if span.is_null() {
            // A `Gc` can only be obtained from an allocation, so this is a collector bug; going
            // on would mean freeing something reachable.
            bug!("traced pointer {addr:#x} is not in an in-use span");
        }
        self.hot.page = page;
        self.hot.span = span;
        span
    }

    /// Forget the hot page (see [`HotSpan`]): the tracer may next mark in a later cycle.
    fn forget_hot(&mut self) {
        self.hot = HotSpan::none(self.hot.base);
    }

    /// Marking: whether this is the only marker ([`Marking::Alone`]), which sets mark bits
    /// without an atomic read-modify-write.
    #[inline(always)]
    fn exclusive(&self) -> bool {
        self.mode & EXCLUSIVE != 0
    }

    /// Marking edge to slot `i` of `span` (the object `h`). (`Tracer::drain_stack` repeats
    /// this path, and `newly_marked`'s and `grey`'s, for the modes it runs in, on its own
    /// copies of the tracer's state: a change here belongs there too.)
    #[inline(always)]
    fn mark_in(&mut self, span: &Span, i: usize, h: *const Object) {
        let newly = match self.mode {
            ATOMIC => span.try_mark(i),
            EXCLUSIVE => span.try_mark_exclusive(i),
            DEFERRED => return self.mark_deferred(span, i, h),
            _ => return self.mark_other_mode(span, i, h),
        };
        if newly {
            self.newly_marked(span, i, h);
        }
    }

    /// Count newly marked slot `i` of `span` (the object `h`) and make it grey.
    #[inline(always)]
    fn newly_marked(&mut self, span: &Span, i: usize, h: *const Object) {
        self.marked.bytes += span.elem_size;
        self.marked.objects += 1;
        self.grey(span, i, h);
    }

    /// Make newly marked slot `i` of `span` (the object `h`) grey: queue its span or push it.
    #[inline(always)]
    fn grey(&mut self, span: &Span, i: usize, h: *const Object) {
        if span.tag.noscan {
            // Black at once: never read.
        } else if self.span_local && span.nelems > 1 {
            // Grey until a marker claims it from its span (see `scan_span`).
            if std::ptr::eq(span, self.current) {
                self.rescan |= 1 << (i / 64);
            } else if span.enqueue(self.exclusive()) {
                self.spans.push_back(SpanPtr(span, i as u32));
            }
        } else {
            // A large object, or any without span-local marking: scanned on its own
            // (arrays a chunk at a time).
            self.push_grey(h, type_of(span));
        }
    }

    /// Push the grey object `h` of type `info`, if the type has anything to scan (a `trace`).
    #[inline(always)]
    fn push_grey(&mut self, h: *const Object, info: &'static TypeInfo) {
        if info.trace.is_some() {
            self.stack.push(Grey { obj: h, info });
        }
    }

    /// Marking edge of a depth-first marker inside a drain ([`DEFERRED`]): claim the object
    /// in the tracer's [`MarkBatch`] (one mark word's claims, set with one locked `fetch_or`
    /// when an edge reaches another word or the drain ends) and grey it if it was white.
    /// Marking a tree of small nodes allocated together then costs one locked operation per
    /// run of objects in one mark word instead of one per object. Nothing reads a mark bit as
    /// final before every drain has returned (mark termination, sweeping), and an ephemeron
    /// table's key test asks this tracer too ([`Tracer::is_marked`]); why an object greyed
    /// twice is harmless and a stale bit never greys a black object: `gc::mark::batch`.
    #[inline(always)]
    fn mark_deferred(&mut self, span: &Span, i: usize, h: *const Object) {
        debug_assert!(
            !self.span_local,
            "span-local marking with every mark deferred"
        );
        // Pushed here rather than through `grey`, whose span-local test (never true in this
        // mode) cost the in-order tree 5% on this path.
        if self.batch.claim(span, i, &mut self.marked) && !span.tag.noscan {
            self.push_grey(h, type_of(span));
        }
    }

    /// Marking edge in the modes that are not inlined: [`DEFERRED_NOSCAN`], and marking with
    /// the [`LOG`] bit set, which logs each object it marks (if the log is full, it stops
    /// logging: [`Tracer::take_mark_log`] then says the log is incomplete).
    #[inline(never)]
    fn mark_other_mode(&mut self, span: &Span, i: usize, h: *const Object) {
        if self.mode & LOG == 0 {
            return self.mark_deferred_noscan(span, i, h);
        }
        let newly = if self.exclusive() {
            span.try_mark_exclusive(i)
        } else {
            span.try_mark(i)
        };
        if newly {
            self.newly_marked(span, i, h);
            if self.mark_log.len() < self.log_cap {
                self.mark_log.push(h as usize);
            } else {
                self.mode &= !LOG;
            }
        }
    }

    /// Marking: log every object this tracer marks from now on, at most `cap` of them, in
    /// `buf` (emptied first; a buffer [`Tracer::take_mark_log`] returned, to reuse its
    /// memory). Not inside a drain (marks may be deferred there).
    pub(crate) fn start_mark_log(&mut self, cap: usize, mut buf: Vec<usize>) {
        debug_assert!(self.is_marking() && self.batch_closed());
        buf.clear();
        self.mark_log = buf;
        self.log_cap = cap;
        self.mode |= LOG;
    }

    /// Marking: stop logging marks; the objects marked since [`Tracer::start_mark_log`], and
    /// whether that is all of them (false if the log filled up, or none was started).
    pub(crate) fn take_mark_log(&mut self) -> (Vec<usize>, bool) {
        let complete = self.mode & LOG != 0;
        self.mode &= !LOG;
        (std::mem::take(&mut self.mark_log), complete)
    }

    /// Marking edge of a span-local marker inside an array chunk's scan ([`DEFERRED_NOSCAN`]):
    /// a noscan object's mark joins the batch (it greys nothing, so its bit may be set later in
    /// the scan), any other is marked at once. Reached through [`Tracer::mark_other_mode`], out
    /// of line, so that the path every other edge takes stays small.
    #[inline(always)]
    fn mark_deferred_noscan(&mut self, span: &Span, i: usize, h: *const Object) {
        if span.tag.noscan {
            self.batch.claim(span, i, &mut self.marked);
        } else if span.try_mark(i) {
            self.newly_marked(span, i, h);
        }
    }

    /// Marking: defer the marks of the edges that follow (see [`DEFERRED`] and
    /// [`DEFERRED_NOSCAN`]) until [`Tracer::end_deferred`], which the caller must reach before
    /// its marking ends (a drain, an array chunk's scan); whether this call turned deferring
    /// on (false if it was on already, or if the tracer is the only marker: its plain load
    /// and store per mark cost no more than a batch).
    #[inline]
    pub(crate) fn begin_deferred(&mut self) -> bool {
        if self.mode != ATOMIC || !self.is_marking() {
            return false;
        }
        self.mode = if self.span_local {
            DEFERRED_NOSCAN
        } else {
            DEFERRED
        };
        true
    }

    /// [`Tracer::begin_deferred`] for a drain: a span-local marker defers only inside an
    /// array chunk's scan (where its noscan edges come in runs), since its mark path would
    /// otherwise take the out-of-line [`DEFERRED_NOSCAN`] edge for every object.
    #[inline]
    fn begin_drain(&mut self) -> bool {
        !self.span_local && self.begin_deferred()
    }

    /// End what [`Tracer::begin_deferred`] began (`began`: what it returned): set the pending
    /// mark bits.
    #[inline]
    pub(crate) fn end_deferred(&mut self, began: bool) {
        if began {
            self.batch.finish(&mut self.marked);
            self.mode = ATOMIC;
        }
    }

    /// Scan the grey objects of a small span taken off a span queue, in address order (the
    /// idea of Go's "Green Tea" marker): marking an object sets its mark bit and queues its
    /// span, and the span is scanned later, once, for every object greyed in it meanwhile, so
    /// that the marker reads objects in memory order instead of one cold object per edge.
    /// Objects this tracer greys in the span while it scans it (a subgraph allocated together)
    /// are scanned in further passes of the same visit; other markers' marks queue it again.
    ///
    /// A span queued for one object (no other marked since, see [`Span::enqueue`]) has only
    /// the representative's mark word claimed, not all of its words.
    fn scan_span(&mut self, s: SpanPtr) {
        // SAFETY: a queued span holds a marked object, so no sweep frees it during the cycle
        // (see `SpanPtr`).
        let span = unsafe { &*s.0 };
        let words = span.mark_len();
        // The words to claim in this pass, one bit each.
        let mut todo = span.dequeue(s.1 as usize, self.exclusive());
        #[cfg(test)]
        AFTER_DEQUEUE.with(|f| {
            if let Some(f) = f.borrow_mut().as_mut() {
                f()
            }
        });
        let info = type_of(span);
        if info.trace.is_none() {
            bug!("a span of a type without trace was queued");
        }
        let (start, size) = (span.start, span.elem_size);
        self.current = span;
        let mut claimed = [0u64; MARK_WORDS];
        while todo != 0 {
            self.rescan = 0;
            // Claim every grey object of the pass and have the CPU fetch them all, then scan
            // them in address order.
            for (w, c) in claimed[..words].iter_mut().enumerate() {
                *c = if todo & (1 << w) != 0 {
                    span.claim_grey(w, self.exclusive())
                } else {
                    0
                };
                prefetch_slots(start, size, w, *c);
            }
            for (w, &c) in claimed[..words].iter().enumerate() {
                let mut grey = c;
                while grey != 0 {
                    let i = w * 64 + grey.trailing_zeros() as usize;
                    grey &= grey - 1;
                    self.work += 1;
                    // SAFETY: slot `i` was marked by a marker (allocate-black slots are
                    // claimed scanned before they are marked), so it is an allocated,
                    // initialised object of the span's type, which `info` is (with a `trace`,
                    // tested above); this claim is the only one of it.
                    unsafe { self.scan_object((start + i * size) as *const Object, info) }
                }
            }
            // Objects this pass greyed in the span itself (a subgraph allocated together):
            // scan them now, while the span is in cache, instead of queueing it again.
            todo = self.rescan;
        }
        self.current = std::ptr::null();
    }

    /// Where the scan of an array of `len` elements that starts at `start` stops: for a
    /// marking tracer the end of one chunk (the rest kept as a continuation), else the end.
    #[inline]
    pub(crate) fn array_chunk_end(&mut self, h: *const Object, start: usize, len: usize) -> usize {
        if !matches!(self.purpose, Purpose::Mark) || len - start <= ARRAY_CHUNK {
            return len;
        }
        let end = start + ARRAY_CHUNK;
        self.chunks.push((h, end));
        end
    }

    /// Marking: before the words of an array chunk are traced, have the CPU load what marking
    /// each will read — the first lines of its span (the fields that find the slot, and the
    /// mark words), once per run of words in one span — so that the cache misses of a chunk
    /// overlap. Traced one by one, each element's misses come after the last one's, since
    /// marking a white object is a locked read-modify-write, which the CPU lets no later load
    /// pass: a ring of buffers scattered over the heap (msgbuf's shape) then costs a miss in a
    /// row per element. One pass: a second one that first prefetched the page-map entries cost
    /// more than it saved (the entries of a ring's spans are read in order, which the CPU's own
    /// prefetcher covers). Any word may be passed (a tagged value, null): prefetches are hints.
    /// Short arrays (an interpreter's small tables and frames) are left alone: for them the
    /// extra pass costs more than the overlap saves.
    pub(crate) fn prefetch_words(&self, words: &[std::sync::atomic::AtomicUsize]) {
        use std::sync::atomic::Ordering::Relaxed;
        if words.len() < PREFETCH_MIN_WORDS || !matches!(self.purpose, Purpose::Mark) {
            return;
        }
        // SAFETY: the arena outlives the tracer (see the field).
        let arena = unsafe { &*self.arena };
        let mut last = std::ptr::null();
        for w in words {
            let a = w.load(Relaxed);
            if arena.contains(a) {
                let span = arena.span_of(a);
                if !span.is_null() && span != last {
                    crate::util::prefetch::prefetch_lines(span as usize, SPAN_MARK_LINES);
                    last = span;
                }
            }
        }
    }

    /// Whether no deferring is on and no claim pending: true whenever a tracer's work is handed
    /// over or its grey work taken (a batch lives inside one drain or one array chunk's
    /// scan).
    pub(crate) fn batch_closed(&self) -> bool {
        self.batch.is_empty() && self.mode & (DEFERRED | DEFERRED_NOSCAN) == 0
    }

    /// Take the grey work this tracer holds (to hand it to another marker).
    pub(crate) fn take_grey_batch(&mut self) -> GreyBatch {
        debug_assert!(self.batch_closed(), "grey work taken with marks pending");
        GreyBatch {
            objs: std::mem::take(&mut self.stack),
            spans: std::mem::take(&mut self.spans).into(),
            chunks: std::mem::take(&mut self.chunks)
                .into_iter()
                .map(|(h, i)| (ObjAddr(h), i))
                .collect(),
        }
    }

    /// Add grey work taken from the shared queue.
    pub(crate) fn push_grey_batch(&mut self, b: GreyBatch) {
        self.forget_hot();
        self.stack.extend(b.objs);
        self.spans.extend(b.spans);
        self.chunks
            .extend(b.chunks.into_iter().map(|(a, i)| (a.0, i)));
    }

    /// At every pop of a stop-the-world worker ([`Marking::Shared`]): offer work when another
    /// worker waits for some ([`MarkWork::hungry`], see [`Tracer::offer`]). Offering whenever
    /// the queue was empty kept a batch in it all the time: two workers marking a tree of a
    /// million nodes built in order handed 1 365 batches over (each a vector of half a stack)
    /// where they now hand about 700, and mark it 6% faster.
    #[inline]
    fn balance(&mut self) {
        if self.share.is_null()
            || (self.stack.len() <= SHARE_MIN && self.spans.len() <= 1 && self.chunks.is_empty())
        {
            return;
        }
        // SAFETY: `share` was made from a reference to the heap's queue, which outlives every
        // tracer (see `marking`).
        let work = unsafe { &*self.share };
        if work.hungry() {
            self.offer(work, SHARE_MIN);
        }
    }

    /// If `work`'s queue is empty, hand it the older half of this tracer's queued spans when
    /// it holds more than `min / 8` of them (at least two: a span holds one or more grey
    /// objects), or else the older half of its grey stack when it holds more than `min`,
    /// or else half of its array continuations when it holds several, or its one continuation
    /// when it has spans to go on with (Go: `gcWork.balance`; the bottom of a depth-first stack
    /// roots the largest unexplored subgraphs).
    pub(crate) fn offer(&mut self, work: &MarkWork, min: usize) {
        if !work.is_empty() {
            return;
        }
        let batch = if self.spans.len() > (min / 8).max(1) {
            let n = self.spans.len() / 2;
            GreyBatch {
                spans: self.spans.drain(..n).collect(),
                ..GreyBatch::default()
            }
        } else if self.stack.len() > min {
            let n = self.stack.len() / 2;
            GreyBatch {
                objs: self.stack.drain(..n).collect(),
                ..GreyBatch::default()
            }
        } else if self.chunks.len() > 1 || (self.chunks.len() == 1 && !self.spans.is_empty()) {
            let n = self.chunks.len().div_ceil(2);
            GreyBatch {
                chunks: self
                    .chunks
                    .drain(..n)
                    .map(|(h, i)| (ObjAddr(h), i))
                    .collect(),
                ..GreyBatch::default()
            }
        } else {
            return;
        };
        work.push(batch);
        work.shared_batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Scan grey objects and array chunks until about `budget` units of work are done (one
    /// per object or chunk scanned and per edge followed; one unit of overshoot is at most an
    /// object's edges or an [`ARRAY_CHUNK`]); whether grey work remains.
    pub(crate) fn drain_budget(&mut self, budget: usize) -> bool {
        let end = self.work.saturating_add(budget);
        let began = self.begin_drain();
        let more = self.drain_until(end);
        self.end_deferred(began);
        more && self.has_grey()
    }

    /// Scan grey objects until none is left.
    pub(crate) fn drain(&mut self) {
        let began = self.begin_drain();
        self.drain_until(usize::MAX);
        self.end_deferred(began);
    }

    /// The loop of [`Tracer::drain_budget`] and [`Tracer::drain`]: scan until the work count
    /// reaches `end`; false if the grey work ran out first. A depth-first marker whose mode is
    /// [`EXCLUSIVE`] or [`DEFERRED`] pops its grey stack in [`Tracer::drain_stack`].
    #[inline(always)]
    fn drain_until(&mut self, end: usize) -> bool {
        while self.work < end {
            if !self.span_local && (self.mode == EXCLUSIVE || self.mode == DEFERRED) {
                // A long drain (a stop-the-world marker's whole drain) runs to the end of the
                // current window at most; a slice of a budget (a worker's, an assist's) runs
                // whole, and slices add up to windows (also across `take_work`). The window is
                // judged when complete.
                let window_end = if end.saturating_sub(self.work) > 2 * ORDER_WINDOW {
                    end.min(self.window.0.wrapping_add(ORDER_WINDOW))
                } else {
                    end
                };
                let traced = match (self.mode == EXCLUSIVE, self.ring) {
                    (true, false) => self.drain_stack::<true, false>(window_end),
                    (true, true) => self.drain_stack::<true, true>(window_end),
                    (false, false) => self.drain_stack::<false, false>(window_end),
                    (false, true) => self.drain_stack::<false, true>(window_end),
                };
                self.judge_window();
                if traced {
                    // A run of objects scanned by their `trace` (an interpreter's heap is
                    // mostly such objects) on the general path, before trying again.
                    for _ in 0..TRACED_RUN {
                        if self.work >= end {
                            return true;
                        }
                        if !self.scan_next() {
                            return false;
                        }
                    }
                    continue;
                }
                if self.work >= end {
                    break;
                }
            }
            if !self.scan_next() {
                return false;
            }
        }
        true
    }

    /// Whether the depth-first drain loop takes its objects through the prefetch ring: at the
    /// end of each window of [`ORDER_WINDOW`] work units, yes if more than one unit in
    /// [`RING_MISSES`] was an edge off the hot page (a heap reached in random address order,
    /// where each object is a cache miss), else no (a heap reached in address order, where the
    /// depth-first order is what keeps the next object in cache).
    #[inline]
    fn judge_window(&mut self) {
        let (work0, misses0) = self.window;
        // Modulo the word: `take_work` moves the start below zero.
        let done = self.work.wrapping_sub(work0);
        if done >= ORDER_WINDOW {
            self.ring = (self.misses - misses0) * RING_MISSES > done;
            self.ring_windows += self.ring as usize;
            self.window = (self.work, self.misses);
        }
    }

    /// Pop and scan the grey stack of a depth-first marker in the [`EXCLUSIVE`] or
    /// [`DEFERRED`] mode (`EXCL`: the former) until it is empty or the work count reaches
    /// `end`, with what every object's scan updates — the stack, the work count, the hot page,
    /// the batch of deferred marks and the marked counts — in local variables, written back to
    /// the tracer around an offer of work and at the end. As the tracer's fields (which the
    /// general path, [`Tracer::scan_next`], must use: a type's `trace` reports to the tracer)
    /// they were loaded and stored for every edge, a chain of store-to-load dependencies from
    /// one object to the next: the tree of the `mark` benchmark, built in order, marks 3–8%
    /// faster this way with one worker and 15–20% with two. The only marker ([`EXCLUSIVE`])
    /// also keeps the last object an object greyed out of the stack and scans it next (a push
    /// and a pop less per object that greys one: another 10%; with deferred marks, whose batch
    /// takes the registers, it made two workers 13% slower). Stops at an object whose type has
    /// no pointer words, leaving it on the stack; returns whether it did.
    ///
    /// `RING`: objects are taken off the stack into a [`Ring`] of [`PREFETCH_RING`], prefetched
    /// as they are taken and scanned oldest first, so that on a heap reached in random address
    /// order each object's cache miss overlaps the scans of the ones before it (the only
    /// marker's kept-out object is not used then). [`Tracer::judge_window`] picks the mode; the
    /// ring's objects go back on the stack wherever the state is written back. The marked
    /// counts of the only marker are one scalar per hot span (`hot_marked`).
    #[inline(never)]
    fn drain_stack<const EXCL: bool, const RING: bool>(&mut self, end: usize) -> bool {
        debug_assert!(!self.span_local && self.mode == if EXCL { EXCLUSIVE } else { DEFERRED });
        let exclusive = EXCL;
        // SAFETY: the arena outlives the tracer (see the field).
        let arena = unsafe { &*self.arena };
        // SAFETY: made from a reference to the heap's queue, which outlives every tracer (see
        // `marking`), or null.
        let share = if EXCL {
            None
        } else {
            unsafe { self.share.as_ref() }
        };
        let mut stack = std::mem::take(&mut self.stack);
        let mut work = self.work;
        let mut hot = self.hot;
        let mut batch = std::mem::replace(&mut self.batch, MarkBatch::new());
        let mut marked = std::mem::take(&mut self.marked);
        // EXCL: objects marked in the hot span since it became hot, counted into `marked` when
        // it stops being hot and when the state is put back: kept as one scalar, because the
        // two counts of `marked` added per mark were a vector the compiler copied between two
        // stack slots every iteration (a store-to-load chain per object).
        let mut hot_marked = 0usize;
        macro_rules! count_hot {
            () => {
                if hot_marked != 0 {
                    // SAFETY: the hot span, non-null since an object was marked in it, is kept
                    // from being freed while this cycle's marking lasts (see `HotSpan`).
                    marked.bytes += hot_marked * unsafe { (*hot.span).elem_size };
                    marked.objects += hot_marked;
                    #[allow(unused_assignments)]
                    {
                        hot_marked = 0;
                    }
                }
            };
        }
        macro_rules! put_back {
            () => {
                count_hot!();
                self.stack = std::mem::take(&mut stack);
                self.work = work;
                self.hot = hot;
                self.batch = std::mem::replace(&mut batch, MarkBatch::new());
                self.marked = std::mem::take(&mut marked);
            };
        }
        macro_rules! take_back {
            () => {
                stack = std::mem::take(&mut self.stack);
                work = self.work;
                hot = self.hot;
                batch = std::mem::replace(&mut self.batch, MarkBatch::new());
                marked = std::mem::take(&mut self.marked);
            };
        }
        // The object to scan next: the last one greyed by the object before, kept out of the
        // stack (a push and a pop less for every object that greys one).
        let mut next: Option<Grey> = None;
        // RING: the objects to scan next, taken off the stack and prefetched ahead.
        let mut ring = Ring::new();
        while work < end {
            if let Some(w) = share
                && (stack.len() > SHARE_MIN || self.spans.len() > 1 || !self.chunks.is_empty())
                && w.hungry()
            {
                stack.extend(next.take());
                ring.drain_into(&mut stack);
                put_back!();
                self.offer(w, SHARE_MIN);
                take_back!();
            }
            let g = if RING {
                while ring.len < PREFETCH_RING {
                    let Some(g) = stack.pop() else { break };
                    crate::util::prefetch::prefetch(g.obj as usize);
                    ring.push(g);
                }
                let Some(g) = ring.pop() else { break };
                g
            } else {
                let Some(g) = next.take().or_else(|| stack.pop()) else {
                    break;
                };
                // The object's cache miss starts now, not after its type's pointer words are
                // read.
                crate::util::prefetch::prefetch(g.obj as usize);
                g
            };
            work += 1;
            let mut words = g.info.pointer_words;
            if words == 0 {
                // Scanned by its `trace`, which reports to the tracer itself: left to the
                // general path (see `drain_until`).
                ring.drain_into(&mut stack);
                stack.push(g);
                work -= 1;
                put_back!();
                return true;
            }
            while words != 0 {
                let k = words.trailing_zeros() as usize;
                words &= words - 1;
                // SAFETY: as in `scan_object`: word `k` of an initialised object of a type
                // whose pointer words include it, written after construction only atomically.
                let addr =
                    unsafe { (*(g.obj as *const AtomicUsize).add(k)).load(POINTER_WORD_LOAD) };
                if addr == 0 {
                    continue;
                }
                // `Tracer::mark`, on the locals.
                work += 1;
                let page = hot.page_of(addr);
                if page != hot.page {
                    let span = page_miss(arena, addr, &mut self.misses);
                    if EXCL {
                        count_hot!();
                    }
                    hot.page = page;
                    hot.span = span;
                }
                #[cfg(debug_assertions)]
                assert!(
                    std::ptr::eq(arena.span_of(addr), hot.span),
                    "the hot page of {addr:#x} changed span while a tracer held it"
                );
                // SAFETY: as in `Tracer::mark`: the in-use span of a reachable object, found
                // through the page map now or for an earlier edge onto the same page, kept
                // from being freed while this cycle's marking lasts.
                let span = unsafe { &*hot.span };
                let i = span.slot_index(addr);
                let newly = if exclusive {
                    let white = span.try_mark_exclusive(i);
                    hot_marked += white as usize;
                    white
                } else {
                    batch.claim(span, i, &mut marked)
                };
                if newly && !span.tag.noscan {
                    // A span's type has a `trace` unless the span is noscan.
                    let grey = Grey {
                        obj: addr as *const Object,
                        info: type_of(span),
                    };
                    debug_assert!(grey.info.trace.is_some());
                    if !EXCL || RING {
                        stack.push(grey);
                    } else if let Some(prev) = next.replace(grey) {
                        stack.push(prev);
                    }
                }
            }
        }
        stack.extend(next);
        ring.drain_into(&mut stack);
        put_back!();
        false
    }

    /// Scan the next grey object, or else the next queued span or array chunk; false if there
    /// is none. Objects first, so that what a chunk greyed is scanned before the array goes on
    /// and the grey stack stays small. Inlined into the drain loops, the rest out of line: the
    /// pop and the call of its `trace` are the whole per-object overhead of marking, and as a
    /// call of its own (saving and restoring registers around every object) it cost a tree of
    /// small nodes 10% more or less from build to build, as the compiler's inlining went.
    #[inline(always)]
    fn scan_next(&mut self) -> bool {
        self.balance();
        if let Some(g) = self.stack.pop() {
            // The object's cache miss starts now, not after its type's pointer words are read
            // (without this a tree in random address order marked 20-50% slower).
            crate::util::prefetch::prefetch(g.obj as usize);
            self.work += 1;
            // SAFETY: only allocated, initialised objects are pushed (`edge` pushes what a `Gc`
            // points to, batches come from other markers' stacks), each with its span's type,
            // which is the type it was allocated with, and one with a `trace`.
            unsafe { self.scan_object(g.obj, g.info) }
            true
        } else {
            self.scan_next_queued()
        }
    }

    /// Scan the grey object `obj` of type `info`: read its pointer words, if its type has them
    /// and this tracer marks, else call its `trace`. Reading the words in the drain loop saves
    /// the call of `trace` per object (its register saves, and the tracer's fields reloaded
    /// after every call).
    ///
    /// # Safety
    ///
    /// `obj` must be an allocated, initialised object of the type `info` describes, and that
    /// type must have a `trace`.
    #[inline(always)]
    unsafe fn scan_object(&mut self, obj: *const Object, info: &'static TypeInfo) {
        let mut words = info.pointer_words;
        if words != 0 && self.is_marking() {
            while words != 0 {
                let k = words.trailing_zeros() as usize;
                words &= words - 1;
                // SAFETY: `obj` is an initialised object of a type whose pointer words include
                // word `k` (the caller's contract): it lies inside the object, is aligned and
                // initialised, and is written after construction only atomically
                // (`Trace::POINTER_WORDS`), so this atomic load races with nothing.
                let w = unsafe { (*(obj as *const AtomicUsize).add(k)).load(POINTER_WORD_LOAD) };
                if w != 0 {
                    // What the type's `trace` would report for this word: the address of the
                    // object the `Gc` in it points to.
                    self.mark(w as *const Object);
                }
            }
        } else if let Some(trace) = info.trace {
            // SAFETY: `obj` is an initialised object of the type `trace` is for (the caller's
            // contract).
            unsafe { trace(obj, self) }
        } else {
            bug!("a grey object of a type without trace");
        }
    }

    /// [`Tracer::scan_next`] with the grey stack empty: the next queued span, or else the next
    /// array chunk; false if there is none.
    #[inline(never)]
    fn scan_next_queued(&mut self) -> bool {
        if let Some(s) = self.spans.pop_front() {
            self.scan_span(s);
        } else if let Some((h, start)) = self.chunks.pop() {
            self.work += 1;
            // SAFETY: continuations are pushed only by `array_chunk_end`, for the array being
            // scanned, which is marked: alive, with its span, for the whole cycle.
            let span = unsafe { (*self.arena).span_of_live(h as usize) }
                .unwrap_or_else(|| bug!("an array continuation is in no span"));
            let trace_from = type_of(span)
                .trace_from
                .unwrap_or_else(|| bug!("a continuation of an object that is not an array"));
            // SAFETY: `h` is a live array of the type `trace_from` was recorded for (its span's
            // type), and `start` is below its length.
            unsafe { trace_from(h, start, self) }
        } else {
            return false;
        }
        true
    }

    /// Units of work done since the last [`Tracer::take_work`].
    pub(crate) fn work(&self) -> u64 {
        self.work as u64
    }

    /// Units of work done since the last call, resetting the count (whoever takes the work
    /// accounts for it: see [`crate::pacer::controller`]).
    pub(crate) fn take_work(&mut self) -> u64 {
        let taken = std::mem::take(&mut self.work);
        // The window of `judge_window` goes on across the take: its start moves with the
        // count (modulo the word: a window may now start "below" zero).
        self.window.0 = self.window.0.wrapping_sub(taken);
        taken as u64
    }

    /// Whether the tracer has grey objects or array chunks left.
    pub(crate) fn has_grey(&self) -> bool {
        !self.stack.is_empty() || !self.spans.is_empty() || !self.chunks.is_empty()
    }

    /// The edges a collecting tracer recorded.
    pub(crate) fn take_collected(&mut self) -> Vec<ObjAddr> {
        std::mem::take(&mut self.collected)
    }

    /// The problems a checking walk found.
    pub(crate) fn take_problems(&mut self) -> Vec<String> {
        match &mut self.purpose {
            Purpose::Check(c) => c.take_problems(),
            Purpose::Mark | Purpose::Collect => Vec::new(),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Testing: called on this thread right after [`Tracer::scan_span`] took a span off its
    /// queue, before it claims the span's grey objects.
    pub(crate) static AFTER_DEQUEUE: std::cell::RefCell<Option<Box<dyn FnMut()>>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::alloc::arena::PAGE_SIZE;
    use crate::gc::mark::workers::DRAIN_SLICE;

    #[test]
    fn the_hot_page_is_counted_from_the_arena_base() {
        // A reservation aligned to the OS page only: arena page 0 is [base, base + 8 KiB), and
        // the 8 KiB-aligned block that holds its top half also holds the bottom half of page 1.
        let base = 0x7f00_0000_1000usize;
        assert_ne!(base % PAGE_SIZE, 0);
        let hot = HotSpan::none(base);
        let (top_of_0, bottom_of_1) = (base + PAGE_SIZE - 16, base + PAGE_SIZE);
        assert_eq!(top_of_0 >> PAGE_SHIFT, bottom_of_1 >> PAGE_SHIFT);
        assert_eq!(hot.page_of(base), 0);
        assert_eq!(hot.page_of(top_of_0), 0);
        assert_eq!(hot.page_of(bottom_of_1), 1);
        // Nothing matches before a lookup, not even an address below the base.
        assert!(
            [0, base - 16, base, usize::MAX]
                .iter()
                .all(|&a| hot.page_of(a) != hot.page)
        );
        // A heap's tracers count from its arena's base (wherever the OS put the reservation),
        // also after forgetting the hot page; and are span-local as the heap is configured.
        for span in [false, true] {
            let heap = crate::Heap::new(crate::Config::default().span_marking(span)).unwrap();
            let h = heap.shared();
            let mut t = Tracer::marking(h, Marking::Alone);
            assert_eq!(t.hot.base, h.mheap.arena.base());
            t.forget_hot();
            assert_eq!(t.hot.base, h.mheap.arena.base());
            assert_eq!(t.span_local, span);
        }
    }

    /// The only marker (`Marking::Alone`) drained on a small budget, as a marker that checks
    /// for pauses between slices would be: the object it keeps out of its stack to scan next
    /// (`Tracer::drain_stack`) goes back on the stack when a slice ends, so every object of a
    /// tree is marked, once.
    #[test]
    fn a_lone_marker_on_a_budget_marks_every_object() {
        // A tracer marks the tree outside any cycle, which no collection follows (the heap is
        // dropped after).
        let (heap, _m, root) = crate::gc::mark::test_heaps::rooted_tree(8);
        let mut t = Tracer::marking(heap.shared(), Marking::Alone);
        t.edge(root as *const Object);
        let mut slices = 0;
        while t.drain_budget(5) {
            slices += 1;
        }
        assert!(slices > 100, "{slices} slices");
        assert_eq!(t.marked.objects, (1 << 9) - 1, "every node marked once");
        assert!(!t.has_grey());
    }

    /// A tree whose nodes sit in random address order is drained through the prefetch ring
    /// (nearly every edge leaves the hot page), one in address order is not; either way, by the
    /// only marker, by one that defers its marks, and by a stop-the-world worker that offers
    /// half its work to a hungry queue (fed back to it here), drained at once, in small slices
    /// (whose work adds up to the windows that decide) or in a background worker's slices
    /// (whose work count is taken after each), every object is marked once, and the marked
    /// bytes agree.
    #[test]
    fn a_heap_in_random_address_order_goes_through_the_prefetch_ring() {
        #[derive(crate::Trace)]
        struct Node<'gc> {
            left: crate::GcCell<'gc, Option<crate::Gc<'gc, Node<'gc>>>>,
            right: crate::GcCell<'gc, Option<crate::Gc<'gc, Node<'gc>>>>,
            side: Option<crate::Gc<'gc, Side<'gc>>>,
        }
        /// Scanned by its `trace` (a `Vec` has no pointer words): the drain loop hands it to
        /// the general path, with what its ring holds.
        #[derive(crate::Trace)]
        struct Side<'gc> {
            kids: Vec<crate::Gc<'gc, Node<'gc>>>,
        }
        const N: usize = if cfg!(miri) { 1 << 10 } else { 1 << 14 };
        // Few: after each, the drain hands a run of up to `TRACED_RUN` objects to the general
        // path, which judges no order.
        const SIDES: usize = N / 256;
        type R = crate::Rootable!['gc => crate::GcCell<'gc, Option<crate::Gc<'gc, Node<'gc>>>>];
        for shuffled in [true, false] {
            let mut bytes = None;
            for marker in ["alone", "local", "shared"] {
                for budget in [None, Some(7), Some(DRAIN_SLICE)] {
                    let what = format!("shuffled {shuffled}, {marker}, budget {budget:?}");
                    let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
                    let mut m: crate::Mutator<R> = heap.mutator(|_| crate::GcCell::new(None));
                    // Breadth-first position k (children 2k + 1 and 2k + 2) is the node
                    // allocated `order[k]`-th: in random order, or in the order the depth-first
                    // marker visits them (a node, its right subtree, its left one). A tracer
                    // marks the tree outside any cycle, which no collection follows (the heap
                    // is dropped after).
                    let mut order: Vec<usize> = vec![0; N];
                    fn visit(k: usize, next: &mut usize, order: &mut [usize]) {
                        if k < order.len() {
                            order[k] = *next;
                            *next += 1;
                            visit(2 * k + 2, next, order);
                            visit(2 * k + 1, next, order);
                        }
                    }
                    visit(0, &mut 0, &mut order);
                    if shuffled {
                        let mut x = 0x9E37_79B9_7F4A_7C15u64;
                        for i in (1..N).rev() {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            order.swap(i, (x % (i as u64 + 1)) as usize);
                        }
                    }
                    let root = m.mutate(|mc, r| {
                        let nodes: Vec<_> = (0..N)
                            .map(|i| {
                                let side = (i % 256 == 0)
                                    .then(|| crate::Gc::new(mc, Side { kids: Vec::new() }));
                                crate::Gc::new(
                                    mc,
                                    Node {
                                        left: crate::GcCell::new(None),
                                        right: crate::GcCell::new(None),
                                        side,
                                    },
                                )
                            })
                            .collect();
                        let at = |k: usize| nodes[order[k]];
                        for k in 0..N {
                            if 2 * k + 1 < N {
                                at(k).left.set(mc, Some(at(2 * k + 1)));
                            }
                            if 2 * k + 2 < N {
                                at(k).right.set(mc, Some(at(2 * k + 2)));
                            }
                        }
                        r.set(mc, Some(at(0)));
                        at(0).object() as usize
                    });
                    // A queue whose other worker waits for work (hungry), so that the shared
                    // marker offers half its stack whenever the queue is empty; the batches are
                    // handed back to it between slices.
                    let queue = MarkWork::new();
                    queue.start_workers(2);
                    queue.leave();
                    let marking = match marker {
                        "alone" => Marking::Alone,
                        "local" => Marking::Local,
                        _ => Marking::Shared(&queue),
                    };
                    let mut t = Tracer::marking(heap.shared(), marking);
                    t.edge(root as *const Object);
                    let mut taken = 0;
                    let mut offered = 0;
                    loop {
                        match budget {
                            None => t.drain(),
                            Some(DRAIN_SLICE) => {
                                while t.drain_budget(DRAIN_SLICE) {
                                    taken += t.take_work() as usize;
                                }
                            }
                            Some(b) => while t.drain_budget(b) {},
                        }
                        let Some(batch) = queue.pop() else { break };
                        offered += 1;
                        t.push_grey_batch(batch);
                    }
                    assert_eq!(offered > 0, marker == "shared", "{what}: offers");
                    // Shuffled, most windows (after the first, which the root's few edges
                    // begin) go through the ring; in order, none.
                    let windows = (taken + t.work) / ORDER_WINDOW;
                    if shuffled {
                        assert!(
                            t.ring_windows * 2 >= windows && windows >= 2,
                            "{what}: the prefetch ring in {} of {windows} windows",
                            t.ring_windows
                        );
                    } else {
                        assert_eq!(t.ring_windows, 0, "{what}: the prefetch ring");
                    }
                    assert_eq!(
                        t.marked.objects,
                        N + SIDES,
                        "{what}: every object marked once"
                    );
                    assert!(!t.has_grey(), "{what}");
                    assert_eq!(
                        *bytes.get_or_insert(t.marked.bytes),
                        t.marked.bytes,
                        "{what}: marked bytes"
                    );
                }
            }
        }
    }

    /// The root of [`live_numbers`]' mutator.
    type Numbers = crate::Rootable!['gc => crate::GcVec<'gc, Option<crate::Gc<'gc, u64>>>];

    /// A heap with GOGC off whose mutator roots `n` noscan objects allocated one after
    /// another, and their addresses: tests mark them with tracers outside any cycle, which no
    /// collection follows (the heap is dropped after).
    fn live_numbers(n: usize) -> (crate::Heap, crate::Mutator<Numbers>, Vec<usize>) {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let mut m: crate::Mutator<Numbers> = heap.mutator(|mc| crate::GcVec::new(mc));
        let objs = m.mutate(|mc, v| {
            (0..n)
                .map(|i| {
                    let g = crate::Gc::new(mc, i as u64);
                    v.push(mc, Some(g));
                    g.object() as usize
                })
                .collect()
        });
        (heap, m, objs)
    }

    /// Two threads at the same moment in the same step (`step`: the one each is at), each
    /// waiting for the other to reach it: a spin barrier per step, so that two markers touch
    /// the same mark words and spans within nanoseconds of each other. A thread that ends (or
    /// panics) holding a [`Done`] lets the other through every later step; one that waits a
    /// minute for the other aborts the test binary.
    fn lockstep(at: &[AtomicUsize; 2], me: usize, step: usize) {
        at[me].store(step, Ordering::Release);
        let (mut spins, began) = (0u32, std::time::Instant::now());
        while at[1 - me].load(Ordering::Acquire) < step {
            spins += 1;
            if spins.is_multiple_of(64) {
                // A marker that hangs (a panicking one lets this one go: `Done`) stops the
                // test binary: unwinding would leave the scope waiting for the hung thread.
                if began.elapsed() > std::time::Duration::from_secs(60) {
                    eprintln!("step {step}: the other marker never came");
                    std::process::abort();
                }
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Sets its thread's step in [`lockstep`] past every step when dropped.
    struct Done<'a>(&'a [AtomicUsize; 2], usize);

    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0[self.1].store(usize::MAX, Ordering::Release);
        }
    }

    /// Run `marker(at, me)` for `me` 0 and 1 on two threads, `at` the steps of their
    /// [`lockstep`] (each thread past every step once it returns or panics: [`Done`]); both
    /// results.
    fn two_markers<R: Send>(
        marker: impl Fn(&std::sync::Arc<[AtomicUsize; 2]>, usize) -> R + Sync,
    ) -> (R, R) {
        let at = std::sync::Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        std::thread::scope(|s| {
            let run = |me: usize| {
                let (at, marker) = (&at, &marker);
                move || {
                    let _done = Done(at, me);
                    marker(at, me)
                }
            };
            let a = s.spawn(run(0));
            let b = s.spawn(run(1));
            (a.join().unwrap(), b.join().unwrap())
        })
    }

    /// Clear every mark of `s`: white again for a test's next round.
    fn whiten(s: &Span) {
        (0..s.mark_len()).for_each(|w| s.clear_marks(w));
    }

    /// A marker that logs its marks (the collector's tracer once the ephemeron index is being
    /// built, `gc::ephemeron`, which marks concurrently with assists, shading and helpers) and
    /// another marker set bits of the same mark words at once, word by word in lockstep:
    /// neither erases the other's (the logging path sets them with a read-modify-write too),
    /// so every object is marked, counted once, and the log holds the logging marker's.
    #[test]
    fn a_logging_marker_and_another_sharing_its_mark_words_lose_no_mark() {
        const N: usize = if cfg!(miri) { 256 } else { 1 << 16 };
        // Allocated one after another, so 64 in a row share mark words.
        let (heap, m, objs) = live_numbers(N);
        let h = heap.shared();
        let spans: std::collections::BTreeSet<usize> = objs
            .iter()
            .map(|&o| h.mheap.arena.span_of(o) as usize)
            .collect();
        // Rounds over the same objects, white again after each: the markers must meet in one
        // word within nanoseconds, which a round may not bring about.
        for round in 0..if cfg!(miri) { 1 } else { 10 } {
            let (logger, other) = two_markers(|at, me| {
                let mut t = Tracer::marking(h, Marking::Local);
                if me == 0 {
                    t.start_mark_log(usize::MAX, Vec::new());
                }
                for (c, run) in objs.chunks(64).enumerate() {
                    lockstep(at, me, c);
                    for &o in run.iter().skip(me).step_by(2) {
                        t.edge(o as *const Object);
                    }
                }
                let log = if me == 0 {
                    t.take_mark_log()
                } else {
                    (Vec::new(), true)
                };
                (t.marked.objects, log)
            });
            let check = Tracer::marking(h, Marking::Local);
            let lost = objs
                .iter()
                .filter(|&&o| !check.is_marked(o as *const Object))
                .count();
            assert_eq!(
                lost, 0,
                "round {round}: objects whose mark bit another marker erased"
            );
            assert_eq!((logger.0, other.0), (N / 2, N / 2), "marks counted");
            let evens: Vec<usize> = objs.iter().copied().step_by(2).collect();
            assert_eq!(
                logger.1,
                (evens, true),
                "the log: the logging marker's marks"
            );
            for &s in &spans {
                // SAFETY: the in-use span of live objects (rooted by `m`).
                whiten(unsafe { &*(s as *const Span) });
            }
        }
        drop(m);
    }

    /// Span-local markers on two threads grey objects of the same spans, in lockstep span by
    /// span: one takes a span off its queue while the other greys a second object of it (in
    /// another mark word: the dequeue must see it and claim its word too, or the other must
    /// queue the span again); both grey a third and a fourth object of it at once (both find
    /// it unqueued: one queues it); and both claim one mark word at the same moment (one took
    /// the span off its queue for an object, the other then greyed a second object in the
    /// same word, queued the span and took it off too, and both wait for each other right
    /// after the dequeue: `AFTER_DEQUEUE`). Every greyed object is claimed and scanned exactly once (its `trace` counts),
    /// none else is, and no span is left queued.
    #[test]
    fn span_local_markers_greying_one_span_together_scan_every_grey_object_once() {
        use std::sync::atomic::AtomicU32;
        struct Counted {
            scans: AtomicU32,
        }
        // SAFETY: holds no `Gc`; `trace` reports nothing, it counts its calls.
        unsafe impl crate::Trace for Counted {
            fn trace(&self, _: &mut Tracer) {
                self.scans.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (n, rounds) = if cfg!(miri) { (640, 2) } else { (1 << 16, 40) };
        let heap =
            crate::Heap::new(crate::Config::default().gc_percent(None).span_marking(true)).unwrap();
        type Objs = crate::Rootable!['gc => crate::GcVec<'gc, Option<crate::Gc<'gc, Counted>>>];
        let mut m: crate::Mutator<Objs> = heap.mutator(|mc| crate::GcVec::new(mc));
        let objs: Vec<usize> = m.mutate(|mc, v| {
            (0..n)
                .map(|_| {
                    let g = crate::Gc::new(
                        mc,
                        Counted {
                            scans: AtomicU32::new(0),
                        },
                    );
                    v.push(mc, Some(g));
                    g.object() as usize
                })
                .collect()
        });
        let h = heap.shared();
        let arena = &h.mheap.arena;
        // Each span's objects by mark word.
        let mut by_span: Vec<(*const Span, Vec<Vec<usize>>)> = Vec::new();
        for &o in &objs {
            let span = arena.span_of(o);
            if by_span.last().is_none_or(|(s, _)| !std::ptr::eq(*s, span)) {
                by_span.push((span, Vec::new()));
            }
            // SAFETY: the in-use span of a live object (rooted by `m`).
            let w = unsafe { (*span).slot_index(o) } / 64;
            let words = &mut by_span.last_mut().unwrap().1;
            words.resize_with(words.len().max(w + 1), Vec::new);
            words[w].push(o);
        }
        // Six objects of each span that has them, in mark words 0, 1, 2, 3, 4 and 4: the
        // first's marker queues the span alone, the others come while it is queued or taken.
        let picks: Vec<(&Span, [usize; 6])> = by_span
            .iter()
            .filter(|(_, words)| words.len() >= 5 && words[..5].iter().all(|w| w.len() >= 2))
            .map(|(s, words)| {
                let o = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (4, 1)].map(|(w, j)| words[w][j]);
                // SAFETY: as above.
                (unsafe { &**s }, o)
            })
            .collect();
        assert!(
            picks.len() >= if cfg!(miri) { 1 } else { 8 },
            "{} spans",
            picks.len()
        );
        for round in 0..rounds {
            two_markers(|at, me| {
                let mut t = Tracer::marking(h, Marking::Local);
                // Steps in `lockstep` after the dequeue of the next span taken, then a
                // pause of 0 to 15 spins: the thread that reached the last step second
                // leaves it first, and the pauses vary which claim comes first by about
                // as much.
                let mut seed = (round * picks.len() * 2 + me + 1) as u64;
                let mut after_dequeue = |steps: Vec<usize>| {
                    let at = at.clone();
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let pause = seed % 16;
                    AFTER_DEQUEUE.set(Some(Box::new(move || {
                        steps.iter().for_each(|&step| lockstep(&at, me, step));
                        (0..pause).for_each(|_| std::hint::spin_loop());
                    })));
                };
                for (k, (_, o)) in picks.iter().enumerate() {
                    let step = 5 * k;
                    // One queues the span for one object; then it takes the span while
                    // the other greys `late` (and takes it again if it queued it).
                    let taken_while_greyed =
                        |t: &mut Tracer, step: usize, first: usize, late: usize| {
                            if me == 0 {
                                t.edge(o[first] as *const Object);
                            }
                            lockstep(at, me, step);
                            if me == 1 {
                                t.edge(o[late] as *const Object);
                            }
                            t.drain();
                        };
                    taken_while_greyed(&mut t, step + 1, 0, 1);
                    lockstep(at, me, step + 2);
                    t.edge(o[2 + me] as *const Object);
                    t.drain();
                    // Both claim mark word 4 at once.
                    if me == 0 {
                        t.edge(o[4] as *const Object);
                        after_dequeue(vec![step + 3, step + 4]);
                    } else {
                        lockstep(at, me, step + 3);
                        t.edge(o[5] as *const Object);
                        after_dequeue(vec![step + 4]);
                    }
                    t.drain();
                    AFTER_DEQUEUE.set(None);
                }
                assert!(!t.has_grey());
            });
            let scans: Vec<u32> = m.mutate(|_, v| {
                v.iter()
                    .map(|g| g.unwrap().scans.swap(0, Ordering::Relaxed))
                    .collect()
            });
            let picked: std::collections::HashSet<usize> =
                picks.iter().flat_map(|(_, o)| o.iter().copied()).collect();
            let check = Tracer::marking(h, Marking::Local);
            for (i, &o) in objs.iter().enumerate() {
                let want = picked.contains(&o) as u32;
                assert_eq!(
                    (check.is_marked(o as *const Object) as u32, scans[i]),
                    (want, want),
                    "round {round}, object {i}: (marked, scans)"
                );
            }
            for (s, _) in &picks {
                assert!(!s.is_queued(), "round {round}: a span left queued");
                whiten(s);
            }
        }
        drop(m);
    }

    /// The mark log (what the ephemeron index reads): objects newly marked, once each, while
    /// logging; full, it stops and says so; no deferred marks meanwhile.
    #[test]
    fn the_mark_log_holds_new_marks_and_says_when_it_filled_up() {
        let (heap, _m, objs) = live_numbers(4);
        let h = heap.shared();
        let mut t = Tracer::marking(h, Marking::Local);
        t.start_mark_log(2, Vec::new());
        assert!(!t.begin_deferred(), "marks are not deferred while logged");
        for &o in &[objs[0], objs[1], objs[0]] {
            t.edge(o as *const Object);
        }
        assert_eq!(t.take_mark_log(), (vec![objs[0], objs[1]], true));
        // Not logging: nothing is.
        t.edge(objs[2] as *const Object);
        t.start_mark_log(0, Vec::new());
        assert_eq!(t.take_mark_log(), (vec![], true));
        // A log with room for none: the next new mark fills it.
        t.start_mark_log(0, Vec::new());
        t.edge(objs[3] as *const Object);
        assert_eq!(t.take_mark_log(), (vec![], false));
        assert_eq!(t.marked.objects, 4, "every object marked once");
        assert!(t.begin_deferred(), "deferring again once the log is taken");
        t.end_deferred(true);
    }
}
