//! Finalization: code that runs when an object dies (the API is `Gc::add_cleanup` and
//! `GcFinalizers`; this is the collector's side).
//!
//! Two kinds, as Go 1.24 and Lua/gc-arena offer them:
//!
//! * **Cleanups** (Go: `runtime.AddCleanup`): a `'static + Send` closure registered for an
//!   object runs once the object is unreachable. It cannot reach the object (it is `'static`, so
//!   it holds no `Gc`). After each cycle's marking, in the weak-clearing window (nothing swept
//!   yet, [`crate::gc::weak::is_live`] valid), the cleanups of objects that did not survive are
//!   handed to the heap's **cleanup thread**, which runs them one at a time, in the order their
//!   objects were found dead (then registered). A cleanup that panics is caught and counted; the
//!   others still run. At heap teardown every cleanup not yet run runs exactly once: the queued
//!   ones on the cleanup thread, then those of objects still alive, on the thread that drops the
//!   heap, in registration order.
//! * **Finalizers with resurrection** (Lua's `__gc`, gc-arena's finalization): an object
//!   registered with a finalizer queue is, when found unreachable, *resurrected*: marked again
//!   with everything it reaches, and pushed on its queue, which holds it strongly; the embedder
//!   pops it inside a mutation scope and may read it, store it again (it lives on) or drop it (it
//!   is freed once unreachable again; registration is one-shot).
//!
//! # When an object is found dead
//!
//! Resurrection needs marking to be complete, ephemerons included: with the world stopped in a
//! termination attempt that proved completion (`gc::cycle`), [`resurrect`] goes over the
//! registrations in order (the concurrent collector, just before its attempts, finds the
//! registrations and weak references whose objects are marked already, so that the pause looks
//! only at the rest: [`precheck`]). An object not marked is dead: it is queued, added to the cycle's
//! *resurrected* set and marked (greyed). Marking then resumes (with the world running in the
//! concurrent collector) for what the resurrected objects reach, ephemeron rounds included,
//! until a second attempt proves completion again. A registration whose queue is not marked is
//! set aside: a resurrected object may reach its queue (a queue kept in a finalized object).
//! At the next completion a further round decides the set-aside registrations whose queue is
//! marked now, by their object's mark as marking first left it, and so on; once a round queues
//! nothing, the registrations whose queue is still not marked are dropped (their objects are
//! not finalized: nothing could pop them). Rounds after the first happen only in that case, so
//! a cycle without such registrations resurrects once. Every object found dead in a cycle (by
//! the marks before any resurrection) is queued in that cycle, so objects that point to each
//! other are finalized together (in registration order), and each finalizer can still read the
//! others: none is freed while a resurrected object reaches it.
//!
//! # Weak references and ephemerons
//!
//! A `GcWeak` to a resurrected object reads as dead from the moment the object is queued, as
//! Go's weak pointers do once a finalizer is queued: upgrades refuse the objects of the
//! resurrected set, and the weak-clearing window clears references to them. Only references
//! made before: one made from the popped object (while marking resumes, or in the window) is
//! an ordinary reference; each weak box records how many rounds had queued objects when it
//! was made ([`Finalization::queued_since`]).
//!
//! A first round that queues objects makes marking resume after it, with the world running in
//! the concurrent collector, and from then on *every* weak reference whose target that
//! marking left unmarked is dead, not only those to queued objects: the round puts those
//! targets into the same set (a walk of the weak registry, a mark-bit test per reference: in
//! the pause, over the references that [`precheck`] did not find marked just before it in the
//! concurrent collector). Otherwise an upgrade between the rounds could hand out an object that was dead
//! (it would be shaded, so alive again) and, through it, an object already queued or set aside
//! for a later round: the program would hold an object whose finalizer runs, and see older weak
//! references to it cleared while it holds it. So the set is the objects not strongly
//! reachable when marking first completed, as Java and Lua clear weak references to objects
//! reachable only through objects being finalized; a later round decides a set-aside
//! registration by its object's first mark, and no upgrade can have made that object alive
//! since. (Go marks what a finalizable object reaches in the same mark phase, so weak pointers
//! to those objects stay valid there; gc-core resurrects after marking, and the objects
//! resurrection reaches are dead to weak references made before.)
//!
//! An ephemeron entry
//! keyed by a resurrected object stays (its key is marked), as Lua keeps resurrected keys in
//! weak-keyed tables until the next collection. Cleanups of a resurrected object wait until it
//! is really freed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::Object;
use crate::gc::trace::Trace;
use crate::gc::weak::WeakBox;

/// A cleanup closure.
pub(crate) type Cleanup = Box<dyn FnOnce() + Send + 'static>;

/// The heap's finalization state.
#[derive(Default)]
pub(crate) struct Finalization {
    /// (queue, object) registrations for resurrecting finalization, oldest first; a first
    /// round that used a [`Precheck`] leaves [`REMOVED`] where it took registrations out, and
    /// a cycle's first precheck (outside any pause) drops those places once they are a quarter
    /// of the list.
    registered: Mutex<Vec<(ObjAddr, ObjAddr)>>,
    /// What the concurrent collector found before this cycle's termination attempts: which
    /// registrations, and which weak references, a first round need not look at
    /// ([`precheck`]).
    precheck: Mutex<Option<Precheck>>,
    weak_precheck: Mutex<Option<Precheck>>,
    /// During a cycle's resurrection rounds: the registrations whose queue was not marked when
    /// they were decided (see [`resurrect`]). Empty outside them.
    undecided: Mutex<Vec<Undecided>>,
    /// The objects of `undecided` that were not marked as marking first left them: a later
    /// round queues these. Empty outside the rounds.
    set_aside_dead: Mutex<HashSet<usize>>,
    /// The objects dead to weak references this cycle (queued for finalization, or a weak
    /// reference's target that marking left unmarked before a first round that queued
    /// something), each with the number of the round that put it here: filled at mark
    /// termination, emptied after the weak-clearing window closed (module docs).
    resurrected: RwLock<HashMap<usize, u64>>,
    any_resurrected: AtomicBool,
    /// Resurrection rounds that queued objects, in all cycles (a weak box records the count
    /// when it is made: [`Finalization::queued_since`]).
    rounds: AtomicU64,
    /// Cleanups by object, oldest first.
    cleanups: Mutex<Vec<(ObjAddr, Cleanup)>>,
    /// The cleanup thread's queue.
    runner: Arc<Runner>,
    /// Objects queued for finalization, in all cycles and in the current one.
    pub finalizers_queued: AtomicU64,
    pub finalizers_queued_in_cycle: AtomicU64,
    /// Queued objects handed to the embedder (`GcFinalizers::pop`): finalizers run.
    pub finalizers_popped: AtomicU64,
    /// Registrations and weak references a first round looked at with the world stopped, in
    /// all cycles (what [`precheck`] saves the pause).
    pub pause_looked: AtomicU64,
    /// The places of removed registrations ([`REMOVED`]) in `registered`.
    removed: AtomicUsize,
}

/// A registration a first round took out of the list, without moving the rest (its place is
/// dropped later, outside the pause: [`precheck`]).
const REMOVED: (ObjAddr, ObjAddr) = (ObjAddr(std::ptr::null()), ObjAddr(std::ptr::null()));

fn is_removed(e: &(ObjAddr, ObjAddr)) -> bool {
    e.1.0.is_null()
}

/// What [`precheck`] found in a list (of registrations, or of weak boxes) during the marking of
/// cycle `cycle`: its first `len` entries were looked at, and of those only the ones at
/// `unmarked` (ascending) were not yet found marked. The marks of allocated objects only grow
/// until the cycle's marking ends (sweeping alone clears them; an allocation cache's write-back
/// clears only slots it did not hand out) and the list only grows until the first round (which
/// takes the precheck), so every
/// other entry of the first `len` is still what it was found to be: a first round need only
/// look at `unmarked` and at the entries added since.
struct Precheck {
    cycle: u64,
    len: usize,
    unmarked: Vec<usize>,
}

/// Whether `pre` is a precheck of cycle `cycle`.
fn of_cycle(pre: &Option<Precheck>, cycle: u64) -> bool {
    pre.as_ref().is_some_and(|p| p.cycle == cycle)
}

/// The entries a first round of `cycle` must look at in a list of `len` entries, in order: the
/// unmarked ones of `pre` and those added since, or every entry if `pre` is not a precheck of
/// this cycle (none: the stop-the-world collector); and whether that is every entry.
fn candidates(
    pre: Option<Precheck>,
    cycle: u64,
    len: usize,
) -> (impl Iterator<Item = usize>, bool) {
    let (unmarked, from) = match pre {
        Some(p) if p.cycle == cycle && p.len <= len => (p.unmarked, p.len),
        _ => (Vec::new(), 0),
    };
    let every = from == 0 && unmarked.is_empty();
    (unmarked.into_iter().chain(from..len), every)
}

impl Finalization {
    /// Register `obj` for finalization into the queue object `queue`.
    pub(crate) fn register(&self, queue: *const Object, obj: *const Object) {
        self.registered.lock().push((ObjAddr(queue), ObjAddr(obj)));
    }

    /// The length of the registrations' list, places of removed ones included.
    pub(crate) fn registered_len(&self) -> usize {
        self.registered.lock().len()
    }

    /// Register a cleanup for `obj`.
    pub(crate) fn add_cleanup(&self, obj: *const Object, f: Cleanup) {
        self.cleanups.lock().push((ObjAddr(obj), f));
    }

    /// Every object a registration names: the queue and the object of each finalization
    /// registration, the object of each cleanup (the verifier walks them: between cycles each
    /// is alive, since a cycle that finds one dead resurrects it, queues its cleanup, or drops
    /// the registration with its dead queue).
    pub(crate) fn for_each_registered(&self, mut each: impl FnMut(*const Object)) {
        for &(q, o) in self.registered.lock().iter() {
            if !is_removed(&(q, o)) {
                each(q.0);
                each(o.0);
            }
        }
        for (o, _) in self.cleanups.lock().iter() {
            each(o.0);
        }
    }

    /// The number of resurrection rounds that have queued objects so far, for a weak box made
    /// now. (Rounds run with the world stopped and boxes are made inside scopes, so the stop's
    /// handshake orders every box before or after each round.)
    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Whether `p` was queued for finalization in the cycle whose weak references are being
    /// cleared, by a round after the first `born` (a weak box made when [`Finalization::rounds`]
    /// was `born`). A weak reference made before its target was queued reads as dead from
    /// then on (`GcWeak::upgrade` refuses it, weak clearing clears it); one made afterwards,
    /// from the object popped off its queue and kept, is an ordinary reference.
    pub(crate) fn queued_since(&self, born: u64, p: usize) -> bool {
        self.any_resurrected.load(Ordering::Acquire)
            && self.resurrected.read().get(&p).is_some_and(|&r| r > born)
    }

    /// Start of a cycle (STW 1).
    pub(crate) fn start_cycle(&self) {
        self.finalizers_queued_in_cycle.store(0, Ordering::Relaxed);
    }

    /// In the weak-clearing window: hand the cleanups of objects that did not survive to the
    /// cleanup thread (of the heap with id `heap`).
    pub(crate) fn queue_cleanups(&self, is_live: &dyn Fn(*const Object) -> bool, heap: u64) {
        let ready: Vec<Cleanup> = {
            let mut all = self.cleanups.lock();
            if all.is_empty() {
                return;
            }
            let (dead, live): (Vec<_>, Vec<_>) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|(o, _)| !is_live(o.0));
            *all = live;
            dead.into_iter().map(|(_, f)| f).collect()
        };
        if !ready.is_empty() {
            self.runner.push(ready, heap);
        }
    }

    /// After the weak-clearing window closed: forget the cycle's resurrected set.
    pub(crate) fn end_weak_window(&self) {
        if self.any_resurrected.swap(false, Ordering::AcqRel) {
            self.resurrected.write().clear();
        }
    }

    /// Cleanups registered and not yet run (their objects alive, or queued on the thread).
    pub(crate) fn cleanups_pending(&self) -> u64 {
        self.cleanups.lock().len() as u64 + self.runner.backlog()
    }

    /// Cleanups run, and of those, the ones that panicked.
    pub(crate) fn cleanups_run(&self) -> (u64, u64) {
        (
            self.runner.ran.load(Ordering::Relaxed),
            self.runner.panicked.load(Ordering::Relaxed),
        )
    }

    /// Wait until the cleanup thread has run every cleanup queued so far.
    pub(crate) fn wait_for_cleanups(&self) {
        self.runner.wait_idle();
    }

    /// The cleanup runner, for a test to see who holds it (the cleanup thread does while it
    /// lives).
    #[cfg(test)]
    pub(crate) fn runner_for_test(&self) -> std::sync::Weak<dyn Send + Sync> {
        let weak: std::sync::Weak<dyn Send + Sync> = Arc::downgrade(&self.runner) as _;
        weak
    }

    /// A heap that is leaked instead of torn down (`api::heap`): its cleanup thread exits
    /// without running the cleanups queued (they never run, as the leak's policy says).
    pub(crate) fn abandon(&self) {
        self.runner.abandon();
    }

    /// Heap teardown (every object is about to be dropped): run every cleanup not yet run,
    /// exactly once — the queued ones on the cleanup thread, which then exits, the others here.
    pub(crate) fn teardown(&self) {
        self.runner.shut_down();
        let rest = std::mem::take(&mut *self.cleanups.lock());
        for (_, f) in rest {
            self.runner.run_one(f);
        }
    }
}

/// A registration whose queue was not marked when its round decided it (whether its object was
/// dead before any resurrection of the cycle is in `Finalization::set_aside_dead`).
#[derive(Clone, Copy)]
pub(crate) struct Undecided {
    queue: ObjAddr,
    obj: ObjAddr,
}

/// Before a termination attempt of the concurrent collector whose first resurrection round has
/// not run (marking out of work, the world running): find the registrations whose object and
/// queue are marked already, and, if some are not (only then can the first round queue
/// anything, and so go over the weak references), the weak references whose target is marked
/// or null. The first round, in the pause, then looks only at the rest and at what was added
/// since ([`Precheck`]). It went over every registration in every cycle, and over every weak
/// reference in a cycle that queued something, with the world stopped, a mark-bit test each:
/// mark termination took 0.4–0.6 ms per 100 000 registrations and 0.2–0.4 ms per 100 000 weak
/// references, release build, this project's 2-CPU machine. Runs before the attempt raises
/// `terminating` (assists past the goal then wait on the CPU for the stop). A later attempt of
/// the same cycle (the first failed: marking resumed) looks again only at what was not marked
/// and at what was added since. Walks each list a chunk at a time ([`PRECHECK_CHUNK`]), and
/// drops the places first rounds left in the registrations ([`REMOVED`]) once they are a
/// quarter of the list.
///
/// Entries added after the precheck are objects and boxes a mutator held during this cycle's
/// marking, marked by its end (the snapshot's or allocated black): the first round finds them
/// alive, but looks at them anyway, a few, rather than rest on that.
///
/// `t` holds no claimed mark that it has not set (it is out of work between drains), so its
/// mark test is the bits'; a mark another marker has claimed and not set reads as unmarked,
/// which only leaves the entry to the pause.
pub(crate) fn precheck(h: &Shared, t: &Tracer) {
    let f = &h.finalize;
    let cycle = h.mark.cycle.load(Ordering::Relaxed);
    let any = {
        let mut pre = f.precheck.lock();
        if !of_cycle(&pre, cycle) && f.removed.load(Ordering::Relaxed) > 0 {
            // A cycle's first precheck: drop the places the last first rounds left, once they
            // are a quarter of the list (no precheck indexes the list across cycles). One pass
            // over the list under its lock (about a millisecond per million entries), in a
            // cycle after rounds that took out a quarter of the registrations.
            let mut reg = f.registered.lock();
            if f.removed.load(Ordering::Relaxed) * 4 >= reg.len() {
                reg.retain(|e| !is_removed(e));
                f.removed.store(0, Ordering::Relaxed);
            }
        }
        precheck_list(&mut pre, cycle, &f.registered, |(q, o)| {
            // A place of a removed registration is not looked at (null).
            let left = is_removed(&(q, o)) || (t.is_marked(o.0) && t.is_marked(q.0));
            !left
        });
        pre.as_ref().is_some_and(|p| !p.unmarked.is_empty())
    };
    let mut pre = f.weak_precheck.lock();
    if !any {
        // No first round of this cycle can queue anything, as things stand; a precheck of an
        // earlier attempt of the cycle is kept (still valid, and a later attempt may need it:
        // a registration made meanwhile may not be marked yet), one of an earlier cycle is
        // dropped.
        if !of_cycle(&pre, cycle) {
            *pre = None;
        }
        return;
    }
    precheck_list(&mut pre, cycle, &h.weaks, |ObjAddr(b)| {
        // SAFETY: as in [`resurrect`]'s walk: a registered weak box is allocated, and so is
        // its target if not null; no sweep runs while marking does.
        let target = unsafe { &*(b as *const WeakBox) }.target();
        !target.is_null() && !t.is_marked(target)
    });
}

/// Whether [`precheck`] has looked at the registrations in cycle `cycle`.
pub(crate) fn prechecked(h: &Shared, cycle: u64) -> bool {
    of_cycle(&h.finalize.precheck.lock(), cycle)
}

/// Entries [`precheck`] looks at under a list's lock at a time: it lets go of the lock between
/// chunks, so that a mutator registering an object or making a weak reference meanwhile waits
/// for a chunk (tens of microseconds), not for the whole walk (milliseconds per million).
const PRECHECK_CHUNK: usize = 4096;

/// Bring `pre` up to date for `cycle` over `list` (`candidate`: whether an entry must be left to
/// the pause): a precheck of another cycle (or none) starts afresh, one of this cycle looks again
/// at its candidates, then at the entries added since, a chunk at a time. Indices stay valid
/// across the chunks: the list only grows while the cycle marks (see [`Precheck`]).
fn precheck_list<T: Copy>(
    pre: &mut Option<Precheck>,
    cycle: u64,
    list: &Mutex<Vec<T>>,
    candidate: impl Fn(T) -> bool,
) {
    if !of_cycle(pre, cycle) {
        *pre = Some(Precheck {
            cycle,
            len: 0,
            unmarked: Vec::new(),
        });
    }
    let Some(p) = pre.as_mut() else { return };
    if list.lock().len() < p.len {
        debug_assert!(false, "a list shrank between two prechecks of a cycle");
        (p.len, p.unmarked) = (0, Vec::new());
    }
    // Each chunk's lock let go fairly: a mutator waiting for it gets it before this thread
    // takes it again (parking_lot's mutex lets the releasing thread barge in otherwise).
    let earlier = std::mem::take(&mut p.unmarked);
    for part in earlier.chunks(PRECHECK_CHUNK) {
        let l = list.lock();
        p.unmarked
            .extend(part.iter().copied().filter(|&i| candidate(l[i])));
        MutexGuard::unlock_fair(l);
    }
    loop {
        let l = list.lock();
        if p.len >= l.len() {
            return;
        }
        let end = (p.len + PRECHECK_CHUNK).min(l.len());
        p.unmarked.extend((p.len..end).filter(|&i| candidate(l[i])));
        p.len = end;
        MutexGuard::unlock_fair(l);
    }
}

/// With the world stopped and marking complete (ephemerons included): one resurrection round
/// (module docs). Returns how many objects it queued (and marked).
///
/// The first round (`first`) decides every registration from the marks as marking left them:
/// an object not marked, of a marked queue, is queued and marked (an object registered twice,
/// with one queue or two, is queued by each registration). A registration whose queue is not
/// marked is set aside, with its object's mark: the queue may yet be reached from an object
/// resurrected in this round (a finalizer queue kept in a finalized object). Each later round,
/// after marking has completed again for what the last round resurrected, takes the set-aside
/// registrations whose queue is marked now and decides them by their object's first mark;
/// [`abandon_undecided`] drops the rest once a round queues nothing (their queues are dead:
/// nobody could pop their objects). A first round that queues objects also makes every weak
/// reference's unmarked target dead to weak references made before it (module docs), which
/// the later rounds rely on: no upgrade hands out an object the first marks left dead.
pub(crate) fn resurrect(h: &Shared, t: &mut Tracer, first: bool) -> u64 {
    let f = &h.finalize;
    let mut dead = Vec::new();
    let cycle = h.mark.cycle.load(Ordering::Relaxed);
    if first {
        // (Each precheck's lock before its list's, as in `precheck`.)
        let pre = f.precheck.lock().take();
        let mut reg = f.registered.lock();
        let mut undecided = f.undecided.lock();
        let mut set_aside_dead = f.set_aside_dead.lock();
        // Whether the registration stays (its object and queue are marked); else it is queued
        // or set aside.
        let mut decide = |(q, o): (ObjAddr, ObjAddr)| {
            let obj_dead = !t.is_marked(o.0);
            if !t.is_marked(q.0) {
                undecided.push(Undecided { queue: q, obj: o });
                if obj_dead {
                    set_aside_dead.insert(o.0 as usize);
                }
                return false;
            }
            if obj_dead {
                dead.push((q, o));
                return false;
            }
            true
        };
        let (look, every) = candidates(pre, cycle, reg.len());
        let (mut looked, mut removed) = (0, 0);
        for i in look {
            looked += 1;
            if !is_removed(&reg[i]) && !decide(reg[i]) {
                reg[i] = REMOVED;
                removed += 1;
            }
        }
        f.pause_looked.fetch_add(looked, Ordering::Relaxed);
        f.removed.fetch_add(removed, Ordering::Relaxed);
        if every {
            // This pause went over the whole list anyway (no precheck will drop the places in
            // the stop-the-world collector).
            reg.retain(|e| !is_removed(e));
            f.removed.store(0, Ordering::Relaxed);
        }
    } else {
        let mut undecided = f.undecided.lock();
        let set_aside_dead = f.set_aside_dead.lock();
        let mut alive = Vec::new();
        undecided.retain(|u| {
            if !t.is_marked(u.queue.0) {
                return true;
            }
            if set_aside_dead.contains(&(u.obj.0 as usize)) {
                dead.push((u.queue, u.obj));
            } else {
                alive.push((u.queue, u.obj));
            }
            false
        });
        drop((undecided, set_aside_dead));
        if !alive.is_empty() {
            // Registered again in their order; objects registered since come before them,
            // which changes nothing but the order of a later cycle's queueing.
            f.registered.lock().extend(alive);
        }
    }
    if dead.is_empty() {
        return 0;
    }
    let mut set = f.resurrected.write();
    let n = dead.len() as u64;
    let round = f.rounds.fetch_add(1, Ordering::AcqRel) + 1;
    if first {
        // Marking resumes after this round (with the world running in the concurrent
        // collector): from now on every weak reference whose target marking left unmarked is
        // dead, whatever later marking of resurrected objects reaches (module docs).
        // Every box, marked or not: one that only a resurrected object reaches can be upgraded
        // from that object once it is popped.
        let pre = f.weak_precheck.lock().take();
        let weaks = h.weaks.lock();
        let mut dead_target = |ObjAddr(b): ObjAddr| {
            // SAFETY: registered objects are `WeakBox`es, and each is allocated: a box leaves
            // the registry in the weak clearing of the cycle that finds it dead, before that
            // cycle's sweep may free it, and nothing of this cycle has been swept yet. Its
            // target, if not null, is allocated too: that clearing nulls every target that did
            // not survive, and a box made since points at an object its maker held.
            let target = unsafe { &*(b as *const WeakBox) }.target();
            if !target.is_null() && !t.is_marked(target) {
                set.entry(target as usize).or_insert(round);
            }
        };
        let (look, _) = candidates(pre, cycle, weaks.len());
        let mut looked = 0;
        for i in look {
            looked += 1;
            dead_target(weaks[i]);
        }
        f.pause_looked.fetch_add(looked, Ordering::Relaxed);
    }
    for (q, o) in dead {
        // SAFETY: registered queues are `FinalizerObj`s (`register`'s callers), and this one is
        // marked, so alive.
        let queue = unsafe { &*(q.0 as *const FinalizerObj) };
        queue.ready.lock().push_back(o);
        set.insert(o.0 as usize, round);
        t.edge(o.0);
    }
    if n > 0 {
        f.any_resurrected.store(true, Ordering::Release);
    }
    f.finalizers_queued.fetch_add(n, Ordering::Relaxed);
    f.finalizers_queued_in_cycle.fetch_add(n, Ordering::Relaxed);
    n
}

/// After the last resurrection round of a cycle: drop the registrations set aside because
/// their queue was not marked, which it still is not (the queue is dead, and nobody could pop
/// the object). Their addresses are not read: the queue and maybe the object are garbage.
pub(crate) fn abandon_undecided(h: &Shared) {
    let f = &h.finalize;
    f.undecided.lock().clear();
    f.set_aside_dead.lock().clear();
}

/// The heap object behind a `GcFinalizers` queue: the resurrected objects not yet popped.
#[doc(hidden)]
pub struct FinalizerObj {
    ready: Mutex<VecDeque<ObjAddr>>,
}

impl FinalizerObj {
    pub(crate) fn new() -> Self {
        FinalizerObj {
            ready: Mutex::new(VecDeque::new()),
        }
    }

    /// The oldest object queued and not yet popped.
    pub(crate) fn pop(&self) -> Option<*const Object> {
        self.ready.lock().pop_front().map(|a| a.0)
    }

    /// Objects queued and not yet popped.
    pub(crate) fn len(&self) -> usize {
        self.ready.lock().len()
    }
}

// SAFETY: every queued object is reported (the queue holds them strongly). The list is read
// under its lock, which mutators hold only inside `pop`/`len` and the collector only with the
// world stopped.
unsafe impl Trace for FinalizerObj {
    fn trace(&self, t: &mut Tracer) {
        for o in self.ready.lock().iter() {
            t.edge(o.0);
        }
    }
}

/// The cleanup thread's queue (shared with the thread, which does not hold the heap).
#[derive(Default)]
struct Runner {
    state: Mutex<RunnerState>,
    cv: Condvar,
    ran: AtomicU64,
    panicked: AtomicU64,
}

#[derive(Default)]
struct RunnerState {
    queue: VecDeque<Cleanup>,
    /// A cleanup is running.
    busy: bool,
    started: bool,
    closed: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runner {
    fn push(self: &Arc<Self>, fs: Vec<Cleanup>, heap: u64) {
        let mut st = self.state.lock();
        st.queue.extend(fs);
        if !st.started && !st.closed {
            st.started = true;
            let me = self.clone();
            match std::thread::Builder::new()
                .name("gc-core cleanups".into())
                .spawn(move || {
                    crate::gc::scope::run_cleanups_of(heap);
                    me.work()
                }) {
                Ok(t) => st.thread = Some(t),
                Err(e) => {
                    // No thread: the cleanups run at teardown instead.
                    eprintln!("gc-core: cannot start the cleanup thread ({e}); cleanups wait");
                }
            }
        }
        self.cv.notify_all();
    }

    fn work(&self) {
        let mut st = self.state.lock();
        loop {
            if let Some(f) = st.queue.pop_front() {
                st.busy = true;
                drop(st);
                self.run_one(f);
                st = self.state.lock();
                st.busy = false;
                self.cv.notify_all();
            } else if st.closed {
                return;
            } else {
                self.cv.wait(&mut st);
            }
        }
    }

    /// Run one cleanup, catching a panic (reported once on stderr, counted; its payload
    /// dropped without letting a panic of its own `Drop` out, which would end the cleanup
    /// thread with `busy` set and every later wait hanging).
    fn run_one(&self, f: Cleanup) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            crate::util::unwind::drop_payload(p);
            self.panicked.fetch_add(1, Ordering::Relaxed);
            eprintln!("gc-core: a cleanup panicked; the other cleanups still run");
        }
        self.ran.fetch_add(1, Ordering::Relaxed);
    }

    fn backlog(&self) -> u64 {
        let st = self.state.lock();
        st.queue.len() as u64 + st.busy as u64
    }

    /// # Panics
    /// On the cleanup thread (a cleanup that waits for the cleanups would wait for itself).
    fn wait_idle(&self) {
        let mut st = self.state.lock();
        if st
            .thread
            .as_ref()
            .is_some_and(|t| t.thread().id() == std::thread::current().id())
        {
            drop(st);
            panic!(
                "gc-core: Heap::wait_for_cleanups called from a cleanup; it would wait for that \
                 cleanup to end (deadlock)"
            );
        }
        while (!st.queue.is_empty() && st.thread.is_some()) || st.busy {
            self.cv.wait(&mut st);
        }
    }

    /// Let the thread exit without running what is queued, and detach it (a leaked heap: see
    /// [`Finalization::abandon`]). The queued cleanups are forgotten, not dropped: what they
    /// captured is leaked with the heap, as the cleanups registered on its live objects are,
    /// rather than dropped here, on a thread that may be the cleanup thread itself or one
    /// serving another heap. A cleanup running now ends first.
    fn abandon(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        std::mem::forget(std::mem::take(&mut st.queue));
        drop(st.thread.take());
        self.cv.notify_all();
    }

    /// Let the thread run what is queued and exit; join it (unless this is that thread: a
    /// cleanup dropped the last handle of the heap), then run whatever is left here.
    fn shut_down(&self) {
        let thread = {
            let mut st = self.state.lock();
            st.closed = true;
            self.cv.notify_all();
            st.thread.take()
        };
        if let Some(t) = thread
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
        let rest = std::mem::take(&mut self.state.lock().queue);
        for f in rest {
            self.run_one(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second look of a cycle keeps, of the entries the first found unmarked, those still
    /// unmarked (over more than one chunk of them, the last one partial), and goes on with the
    /// entries added since; a first round then looks at those and at what was added after the
    /// look, in order. A precheck of another cycle, or of more entries than the list has, is
    /// not trusted (the round looks at every entry), and a look in a new cycle starts afresh.
    #[test]
    fn a_second_look_keeps_what_is_still_unmarked_and_a_round_looks_at_that_and_the_rest() {
        let n = if cfg!(miri) {
            PRECHECK_CHUNK + 8
        } else {
            3 * PRECHECK_CHUNK
        };
        let list = Mutex::new((0..n).collect::<Vec<usize>>());
        let mut pre = None;
        // The first look: the even ones unmarked (more than a chunk of them).
        precheck_list(&mut pre, 1, &list, |x| x % 2 == 0);
        let p = pre.as_ref().unwrap();
        assert_eq!((p.cycle, p.len), (1, n));
        assert_eq!(p.unmarked, (0..n).step_by(2).collect::<Vec<_>>());
        // Entries added, and half of the candidates marked since.
        list.lock().extend(n..n + 10);
        precheck_list(&mut pre, 1, &list, |x| x % 4 == 0);
        let p = pre.as_ref().unwrap();
        assert_eq!(p.len, n + 10);
        assert_eq!(p.unmarked, (0..n + 10).step_by(4).collect::<Vec<_>>());
        // The first round: those, then what was added after the look.
        let (look, every) = candidates(pre.take(), 1, n + 12);
        assert!(!every);
        let want: Vec<usize> = (0..n + 10).step_by(4).chain(n + 10..n + 12).collect();
        assert_eq!(look.collect::<Vec<_>>(), want);
        // Not trusted: another cycle's, or one longer than the list.
        let stale = || {
            Some(Precheck {
                cycle: 1,
                len: 3,
                unmarked: vec![1],
            })
        };
        let (look, every) = candidates(stale(), 2, 5);
        assert!(every);
        assert_eq!(look.collect::<Vec<_>>(), (0..5).collect::<Vec<_>>());
        let (look, every) = candidates(stale(), 1, 2);
        assert!(every);
        assert_eq!(look.collect::<Vec<_>>(), vec![0, 1]);
        // A look in a new cycle starts afresh.
        let mut pre = stale();
        precheck_list(&mut pre, 2, &list, |x| x == 5);
        let p = pre.as_ref().unwrap();
        assert_eq!((p.cycle, p.len, &p.unmarked[..]), (2, n + 10, &[5][..]));
    }

    /// A leaked heap's cleanup thread that is idle, parked for the next cleanup (the usual
    /// state), is woken by the abandon and exits, letting go of the runner, and its handle is
    /// dropped (the thread detached, not left unjoined for the life of the process).
    #[test]
    // The detached thread may still be exiting when the test ends, which Miri reports as a
    // leak of its memory.
    #[cfg_attr(miri, ignore = "detaches a thread")]
    fn an_abandoned_runner_wakes_its_idle_thread_which_exits_detached() {
        let r = Arc::new(Runner::default());
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        r.push(
            vec![Box::new(move || flag.store(true, Ordering::SeqCst))],
            1,
        );
        // Returns once the thread, done, waits for more: it has let go of the lock.
        r.wait_idle();
        assert!(ran.load(Ordering::SeqCst));
        assert_eq!(Arc::strong_count(&r), 2, "this test's and the thread's");
        r.abandon();
        assert!(r.state.lock().thread.is_none(), "the thread's handle kept");
        let start = std::time::Instant::now();
        while Arc::strong_count(&r) > 1 {
            assert!(
                start.elapsed().as_secs() < 10,
                "the idle cleanup thread never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
