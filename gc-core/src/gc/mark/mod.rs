//! Marking (Go: `mgcmark.go`, `mgcwork.go`): the tracer and its deferred marks, the grey work
//! every marker shares and its termination, the mark workers, the mutators' side (root scans,
//! shading), mark assists, and the mark phase's shared state.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use crate::util::primitive::Monitor;

pub(crate) mod assist;
pub(crate) mod batch;
pub(crate) mod roots;
pub(crate) mod tracer;
pub(crate) mod work;
pub(crate) mod workers;

/// The mark phase's shared state. Each field says who writes it.
pub(crate) struct MarkState {
    /// On from STW 1 to STW 2 of a concurrent cycle: objects are allocated black, mutators scan
    /// their roots before their first scope, assists run. Written with the world stopped.
    pub marking: AtomicBool,
    /// The write barrier (Go: `writeBarrier.enabled`): on while marking, read by every barrier
    /// with one relaxed load. Written with the world stopped (and by
    /// `Heap::debug_force_barrier`).
    pub barrier_on: AtomicBool,
    /// The cycle whose marking is in progress (root scans are stamped with it). Written in
    /// STW 1.
    pub cycle: AtomicU64,
    /// The grey work every marker shares, and the termination count.
    pub work: work::MarkWork,
    /// Bytes and objects marked during the current mark phase by every tracer but the
    /// collector thread's own (mutator-side tracers, assists, background helpers), added when
    /// they hand their work over. Reset in STW 1.
    pub marked_bytes_others: AtomicUsize,
    pub marked_objects_others: AtomicU64,
    /// The mark workers' helper threads, parked between mark phases.
    pub pool: workers::Pool,
    /// Helper threads actually running (set by the collector thread at start).
    pub helpers: AtomicUsize,
    /// Where assists that found neither credit nor work wait for the background workers to earn
    /// some (Go: the assist queue, `gcParkAssist`); see [`assist`].
    pub assist_park: Monitor,
    /// Assists waiting on `assist_park`: background workers wake them when they add credit.
    pub assists_parked: AtomicUsize,
    /// The collector thread is marking: draining grey work or attempting termination, not
    /// waiting for a blocked scope. Assists may wait for the credit it earns or for its stop.
    /// Written by the collector thread.
    pub draining: AtomicBool,
    /// The collector thread found no grey work and is attempting mark termination: no credit
    /// will come before the stop, so only assists with the heap past its goal keep waiting
    /// (for the stop, which wakes them). Written by the collector thread.
    pub terminating: AtomicBool,
    /// The fractional mark worker's idle-detection window, and whether it was marking at idle
    /// priority, as the last mark phase left them, for the next phase to go on from (see
    /// [`workers::Pace`]). Written by that worker as it leaves a mark phase.
    pub idle_window: parking_lot::Mutex<Option<(workers::IdleWindow, bool)>>,
}

impl Default for MarkState {
    fn default() -> MarkState {
        MarkState {
            marking: AtomicBool::new(false),
            barrier_on: AtomicBool::new(false),
            cycle: AtomicU64::new(0),
            work: work::MarkWork::new(),
            marked_bytes_others: AtomicUsize::new(0),
            marked_objects_others: AtomicU64::new(0),
            pool: workers::Pool::default(),
            helpers: AtomicUsize::new(0),
            assist_park: Monitor::default(),
            assists_parked: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            terminating: AtomicBool::new(false),
            idle_window: parking_lot::Mutex::new(None),
        }
    }
}

/// Heaps for the markers' unit tests.
#[cfg(test)]
pub(crate) mod test_heaps {
    /// A node of a binary tree.
    #[derive(crate::Trace)]
    pub(crate) struct Node<'gc> {
        left: Option<crate::Gc<'gc, Node<'gc>>>,
        right: Option<crate::Gc<'gc, Node<'gc>>>,
    }

    fn tree<'gc>(mc: &crate::Mutation<'gc>, depth: u32) -> crate::Gc<'gc, Node<'gc>> {
        let kid = |mc| (depth > 0).then(|| tree(mc, depth - 1));
        let (left, right) = (kid(mc), kid(mc));
        crate::Gc::new(mc, Node { left, right })
    }

    /// The root of [`rooted_tree`]'s mutator.
    pub(crate) type TreeRoot =
        crate::Rootable!['gc => crate::GcCell<'gc, Option<crate::Gc<'gc, Node<'gc>>>>];

    /// A heap with GOGC off whose mutator roots a complete binary tree of `depth` (2^(depth+1)
    /// − 1 two-pointer nodes), and the address of the tree's root object (to mark from).
    pub(crate) fn rooted_tree(depth: u32) -> (crate::Heap, crate::Mutator<TreeRoot>, usize) {
        let heap = crate::Heap::new(crate::Config::default().gc_percent(None)).unwrap();
        let mut m: crate::Mutator<TreeRoot> = heap.mutator(|_| crate::GcCell::new(None));
        let root = m.mutate(|mc, r| {
            let t = tree(mc, depth);
            r.set(mc, Some(t));
            t.object() as usize
        });
        (heap, m, root)
    }
}
