//! Marking: tri-colour tracing from the roots (Go: `mgcmark.go`).
//!
//! | colour | meaning                                   | representation |
//! |--------|-------------------------------------------|----------------|
//! | white  | not reached (yet); freed by the sweep if it stays white | mark bit 0 |
//! | grey   | reached, its fields not yet scanned       | mark bit 1, on the grey stack |
//! | black  | reached and scanned                       | mark bit 1, off the grey stack |
//!
//! Noscan objects go straight from white to black: their mark bit is set and they are never
//! pushed, so the marker never reads them.
//!
//! A [`Tracer`] is handed to every [`Trace::trace`](crate::gc::trace::Trace::trace) call. For each `Gc` it
//! is given it finds the object's span through the arena's page map (one load), the slot index
//! by a multiply-shift (`Span::slot_index`), and sets the mark bit with a test-and-set; a newly
//! greyed scan object is pushed on the grey stack. [`Tracer::drain`] pops grey objects and calls
//! the `trace` function recorded in their header until the stack is empty.
//!
//! The same type also runs the verifier's walk ([`crate::gc::verify`]), which checks each edge
//! instead of marking it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::alloc::arena::Arena;
use crate::alloc::span::POISON_WORD;
use crate::gc::heap::ObjAddr;
use crate::gc::mark::workers::{BatchQueue, MarkJob, SHARE_THRESHOLD};
use crate::gc::object::Header;

/// What the tracer does with each edge.
enum Mode {
    /// Mark reachable objects.
    Mark,
    /// Collect the edges (write barrier): marks nothing.
    Collect,
    /// Check every reachable object (verify mode): collects problems, marks nothing.
    Verify {
        seen: HashSet<usize>,
        problems: Vec<String>,
    },
}

/// Receives the GC pointers reported by [`Trace::trace`](crate::gc::trace::Trace::trace).
///
/// Only the collector creates tracers; user code sees one only as the argument of `trace`,
/// where the one thing to do with it is pass it on to the fields' `trace`.
pub struct Tracer {
    arena: *const Arena,
    stack: Vec<*const Header>,
    mode: Mode,
    /// The parallel mark phase this tracer works for (None: the only marker).
    job: Option<Arc<MarkJob>>,
    /// Set mark bits with an atomic read-modify-write: other threads (workers, mutators
    /// allocating black or shading) may set bits of the same word concurrently.
    atomic: bool,
    /// Bytes of the objects this tracer marked.
    pub(crate) marked_bytes: usize,
    /// Objects this tracer marked.
    pub(crate) marked_objects: usize,
    /// Scan large arrays a chunk at a time (concurrent markers), keeping the rest here as
    /// (array, next index) continuations.
    chunked: bool,
    chunks: Vec<(*const Header, usize)>,
    /// Work done, in units of one object or chunk scanned or one edge followed; bounds
    /// [`Tracer::drain_budget`].
    work: usize,
}

/// Elements of an array a concurrent marker scans as one unit (Go splits objects into 128 KiB
/// "oblets" for the same reason): a large array is scanned in pieces between which the marker
/// checks for a pause request or a budget, and the rest can be handed to another marker.
pub(crate) const ARRAY_CHUNK: usize = 128;

/// Grey work handed between concurrent markers through the heap's queue: whole objects, and
/// the unscanned rest of large arrays (array header, first element not yet scanned).
#[derive(Default)]
pub(crate) struct GreyBatch {
    pub objs: Vec<ObjAddr>,
    pub chunks: Vec<(ObjAddr, usize)>,
}

impl Tracer {
    /// A marking tracer over `arena`, which must outlive it.
    pub(crate) fn new(arena: &Arena) -> Tracer {
        Tracer {
            arena,
            stack: Vec::with_capacity(1024),
            mode: Mode::Mark,
            job: None,
            atomic: false,
            marked_bytes: 0,
            marked_objects: 0,
            chunked: false,
            chunks: Vec::new(),
            work: 0,
        }
    }

    /// A marking tracer that is one of several workers of `job` (see [`crate::gc::mark::workers`]).
    pub(crate) fn new_parallel(arena: &Arena, job: &Arc<MarkJob>) -> Tracer {
        Tracer {
            job: Some(job.clone()),
            atomic: true,
            ..Tracer::new(arena)
        }
    }

    /// A marking tracer for the concurrent mark phase (the background worker, a mutator
    /// scanning its roots or flushing its barrier buffer): marks atomically, shares nothing by
    /// itself (see [`crate::gc::concurrent`]).
    pub(crate) fn new_concurrent(arena: &Arena) -> Tracer {
        Tracer {
            arena,
            // Mutator-side tracers are short-lived (a buffer flush, a root scan, an assist):
            // let the stack grow as needed instead of allocating 1024 slots each time.
            stack: Vec::new(),
            mode: Mode::Mark,
            job: None,
            atomic: true,
            marked_bytes: 0,
            marked_objects: 0,
            chunked: true,
            chunks: Vec::new(),
            work: 0,
        }
    }

    /// Where the scan of an array of `len` elements that starts at `start` stops: the end,
    /// or for a chunked tracer the end of one chunk, the rest being kept as a continuation.
    #[inline]
    pub(crate) fn array_chunk_end(&mut self, h: *const Header, start: usize, len: usize) -> usize {
        if !self.chunked || len - start <= ARRAY_CHUNK {
            return len;
        }
        let end = start + ARRAY_CHUNK;
        self.chunks.push((h, end));
        end
    }

    /// Take the grey work this tracer holds (to hand it to another concurrent marker).
    pub(crate) fn take_grey_batch(&mut self) -> GreyBatch {
        GreyBatch {
            objs: self.take_grey(),
            chunks: std::mem::take(&mut self.chunks)
                .into_iter()
                .map(|(h, i)| (ObjAddr(h), i))
                .collect(),
        }
    }

    /// Add grey work taken from the heap's queue.
    pub(crate) fn push_grey_batch(&mut self, b: GreyBatch) {
        self.push_batch(b.objs);
        self.chunks
            .extend(b.chunks.into_iter().map(|(a, i)| (a.0, i)));
    }

    /// Half of this tracer's grey work, if it holds more than `min` objects (or more than one
    /// array continuation and no objects), for other markers (Go: `gcWork.balance`). The
    /// oldest entries go: on a depth-first stack they root the largest unexplored subgraphs.
    pub(crate) fn split_grey(&mut self, min: usize) -> Option<GreyBatch> {
        if self.stack.len() > min {
            let half = self.stack.len() / 2;
            let objs = self.stack.drain(..half).map(ObjAddr).collect();
            return Some(GreyBatch {
                objs,
                chunks: Vec::new(),
            });
        }
        if self.stack.is_empty() && self.chunks.len() > 1 {
            let half = self.chunks.len() / 2;
            let chunks = self
                .chunks
                .drain(..half)
                .map(|(h, i)| (ObjAddr(h), i))
                .collect();
            return Some(GreyBatch {
                objs: Vec::new(),
                chunks,
            });
        }
        None
    }

    /// Take the grey objects this tracer holds (to hand them to another marker).
    pub(crate) fn take_grey(&mut self) -> Vec<ObjAddr> {
        std::mem::take(&mut self.stack)
            .into_iter()
            .map(ObjAddr)
            .collect()
    }

    /// Scan grey objects and array chunks until about `budget` units of work are done (one
    /// per object or chunk scanned and per edge followed; one unit of overshoot is at most an
    /// object's edges or an [`ARRAY_CHUNK`]); whether grey work remains.
    pub(crate) fn drain_budget(&mut self, budget: usize) -> bool {
        let end = self.work + budget;
        while self.work < end {
            if !self.scan_next() {
                return false;
            }
        }
        self.has_grey()
    }

    /// Scan the next grey object, or else the next array chunk; false if there is none.
    /// Objects first, so that what a chunk greyed is scanned before the array goes on and the
    /// grey stack stays small.
    #[inline]
    fn scan_next(&mut self) -> bool {
        if let Some(h) = self.stack.pop() {
            self.scan(h);
        } else if let Some((h, start)) = self.chunks.pop() {
            self.work += 1;
            // SAFETY: continuations are pushed only by `array_chunk_end`, for the array being
            // scanned (alive for the whole cycle: marked), whose header names its type.
            let trace_from = unsafe { (*h).info }
                .trace_from
                .expect("only arrays leave continuations");
            // SAFETY: `h` is a live array of the type `trace_from` was recorded for, and
            // `start` is below its length.
            unsafe { trace_from(h, start, self) }
        } else {
            return false;
        }
        true
    }

    /// Scan one grey object.
    #[inline]
    fn scan(&mut self, h: *const Header) {
        self.work += 1;
        // SAFETY: only headers of allocated, initialised objects are pushed (`edge` pushes
        // what a `Gc` points to, batches come from other markers' stacks); the header is
        // immutable after allocation.
        let info = unsafe { (*h).info };
        if let Some(trace) = info.trace {
            // SAFETY: `trace` was recorded for exactly this object's type at allocation.
            unsafe { trace(h, self) }
        }
    }

    /// Add a batch of grey objects taken from the global queue.
    pub(crate) fn push_batch(&mut self, batch: Vec<ObjAddr>) {
        self.stack.extend(batch.into_iter().map(|a| a.0));
    }

    /// A tracer that only records the edges it is given (for the write barrier).
    pub(crate) fn new_collect(arena: &Arena) -> Tracer {
        Tracer {
            stack: Vec::new(),
            mode: Mode::Collect,
            ..Tracer::new(arena)
        }
    }

    /// The edges a collecting tracer recorded.
    pub(crate) fn take_collected(&mut self) -> Vec<ObjAddr> {
        std::mem::take(&mut self.stack)
            .into_iter()
            .map(ObjAddr)
            .collect()
    }

    /// A verifying tracer over `arena` (see [`crate::gc::verify`]).
    pub(crate) fn new_verify(arena: &Arena) -> Tracer {
        Tracer {
            mode: Mode::Verify {
                seen: HashSet::new(),
                problems: Vec::new(),
            },
            ..Tracer::new(arena)
        }
    }

    #[inline(always)]
    fn arena(&self) -> &Arena {
        // SAFETY: `new` takes `&Arena`, and every tracer lives inside one collection, during
        // which the heap (and so the arena) is alive.
        unsafe { &*self.arena }
    }

    /// Report one edge to the object whose header is at `h`.
    #[inline]
    pub(crate) fn edge(&mut self, h: *const Header) {
        match self.mode {
            Mode::Mark => self.work += 1,
            Mode::Collect => return self.stack.push(h),
            Mode::Verify { .. } => return self.verify_edge(h),
        }
        let addr = h as usize;
        let arena = self.arena;
        // SAFETY: the arena outlives the tracer (see `arena`); `h` is an edge a `Trace` impl
        // reported (its contract: a `Gc` of the current scope or of the graph being marked), so
        // a reachable object, whose span no sweep frees during this cycle.
        let Some(span) = (unsafe { (*arena).span_of_live(addr) }) else {
            // A `Gc` can only be obtained from an allocation, so this is a collector bug; going
            // on would mean freeing something reachable.
            bug!("traced pointer {addr:#x} is not in an in-use span");
        };
        let i = span.slot_index(addr);
        // A lone stop-the-world marker is the only thread touching mark bits while it runs (the
        // sweep finished before the world stopped), so it can skip the atomic RMW; parallel
        // workers race on the bits and need it.
        let newly = if self.atomic {
            span.try_mark(i)
        } else {
            span.try_mark_exclusive(i)
        };
        if newly {
            self.marked_bytes += span.elem_size;
            self.marked_objects += 1;
            if !span.noscan {
                self.stack.push(h);
            }
        }
    }

    /// Units of work done since the last [`Tracer::take_work`].
    pub(crate) fn work(&self) -> u64 {
        self.work as u64
    }

    /// Units of work done since the last call, resetting the count (whoever takes the work
    /// accounts for it: see [`crate::pacer::controller`]).
    pub(crate) fn take_work(&mut self) -> u64 {
        std::mem::take(&mut self.work) as u64
    }

    /// Scan grey objects until none is left.
    pub(crate) fn drain(&mut self) {
        loop {
            self.drain_stack();
            // Array continuations (chunked tracers only); what they grey is drained next.
            if !self.scan_next() {
                break;
            }
        }
    }

    fn drain_stack(&mut self) {
        while let Some(h) = self.stack.pop() {
            if let Some(job) = &self.job
                && self.stack.len() > SHARE_THRESHOLD
                && job.global.is_empty()
            {
                // Offer the older half of the local work to idle workers: the bottom of a
                // depth-first stack holds the roots of the largest unexplored subgraphs.
                let n = self.stack.len() / 2;
                BatchQueue::push(&job.global, self.stack.drain(..n).map(ObjAddr).collect());
                job.shared_batches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.scan(h);
        }
    }

    /// Whether the tracer has grey objects or array chunks left.
    pub(crate) fn has_grey(&self) -> bool {
        !self.stack.is_empty() || !self.chunks.is_empty()
    }

    /// Verifier edge: check that `h` is a live, allocated, unpoisoned object, then scan it once.
    #[cold]
    fn verify_edge(&mut self, h: *const Header) {
        let addr = h as usize;
        let problem = self.check_object(addr);
        let Mode::Verify { seen, problems } = &mut self.mode else {
            unreachable!()
        };
        if let Some(p) = problem {
            if problems.len() < 32 {
                problems.push(p);
            }
            return;
        }
        if seen.insert(addr) {
            self.stack.push(h);
        }
    }

    fn check_object(&self, addr: usize) -> Option<String> {
        // SAFETY: the verifier runs with the world stopped and the sweep finished: no span is
        // freed meanwhile.
        let Some(span) = (unsafe { self.arena().span_of_live(addr) }) else {
            return Some(format!(
                "reachable pointer {addr:#x} is not in an in-use span"
            ));
        };
        if !span.is_slot_start(addr) {
            return Some(format!(
                "reachable pointer {addr:#x} is not a slot start (span {:#x}, size {})",
                span.start, span.elem_size
            ));
        }
        let i = span.slot_index(addr);
        let allocated = span.state.lock().alloc[i];
        if !allocated {
            return Some(format!(
                "reachable pointer {addr:#x} points into a free slot (span {:#x}, slot {i})",
                span.start
            ));
        }
        // SAFETY: the slot is allocated, so its first word is an initialised header (or, in a
        // corrupted heap, poison: which is what we check for, as a plain word read).
        let first = unsafe { *(addr as *const usize) };
        if first == POISON_WORD {
            return Some(format!(
                "reachable object {addr:#x} has been poisoned (freed while reachable)"
            ));
        }
        None
    }

    /// The problems a verifying walk found.
    pub(crate) fn take_problems(&mut self) -> Vec<String> {
        match &mut self.mode {
            Mode::Verify { problems, .. } => std::mem::take(problems),
            Mode::Mark | Mode::Collect => Vec::new(),
        }
    }
}
