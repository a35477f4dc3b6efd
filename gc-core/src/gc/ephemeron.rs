//! Ephemerons: table entries whose value is kept alive only while the key is reachable
//! otherwise (the API type is `GcEphemeronTable`; this is the collector's side).
//!
//! A table is a heap object ([`EphemeronObj`]) holding a map from key addresses to values under
//! a lock. The marker never traces a key from the table, and traces a value only once its key
//! is marked:
//!
//! * **Scanning a table** ([`EphemeronObj`]'s `trace`) traces the value of every entry whose key
//!   is already marked. If some key is not, the table is *deferred*: put on the cycle's list of
//!   pending tables ([`Ephemerons::pending`]).
//! * **A round** ([`round`]) goes over the pending tables again, tracing the values of entries
//!   whose key has been marked since, and keeps the tables that still have unmarked keys. A
//!   round that greys anything means more marking, which may mark more keys: marking and rounds
//!   alternate until a round finds nothing new — the ephemeron **fixpoint**. Chains (a value
//!   leads to the key of another entry) take one round per link. A cycle's rounds go over every
//!   entry of every pending table (a mark-bit test each; the values of marked keys are traced
//!   again, which marks nothing new once they are marked) until [`ROUNDS_BEFORE_INDEX`] of them
//!   have marked something; later ones look up the keys marked since the last round in an
//!   [`Index`] of the entries with unmarked keys, so that a chain the collector's tracer marks
//!   costs time linear in its length, not quadratic.
//! * **Termination.** Rounds run with the world running whenever the collector runs out of grey
//!   work, and once more in every termination attempt, with the world stopped: a key may have
//!   been marked after the last concurrent round, and only a round that finds nothing new with
//!   nothing grey anywhere proves the fixpoint. With an index, a round that finds nothing new
//!   has tested every indexed key's mark bit, as a round without one tests every pending
//!   entry's. (`gc::cycle` runs them; the loom model in this file checks the protocol, with a
//!   round that goes over the entries; the index changes which round finds a key, not what
//!   the last round tests.)
//! * **Clearing.** After marking, the entries of the tables still pending (or indexed, with
//!   keys still unmarked) have unmarked keys:
//!   dead. In the weak-clearing window (nothing swept yet) those entries are removed and their
//!   values dropped (as drop glue), so no table ever holds the address of a freed key. A table
//!   that never got pending had every key marked when it was scanned, and every key inserted
//!   since (or into a table allocated during marking, never scanned) was shaded by the
//!   insertion barrier: it holds no dead key.
//!
//! # The barrier
//!
//! An entry removed or overwritten while marking has its old value shaded (the deletion half
//! of the hybrid barrier: the marker may not have traced it yet, and the snapshot reached it if
//! its key was reachable); an entry inserted while marking has its key and value shaded (the
//! insertion half: a table allocated during marking is black and never scanned, and a scope
//! that blocked across STW 1 may insert a key or value the snapshot never saw; any other key a
//! mutator can name is marked by the end of marking anyway). A lookup needs no barrier: a mutator can only look up a key it holds, and
//! a key a mutator holds is marked by the end of marking (snapshot or allocate-black), so the
//! entry's value is traced by a round unless the entry is removed first (then the deletion
//! barrier shaded it). There is no iteration over entries (as with JavaScript's `WeakMap`): an
//! entry is reachable only through its key.
//!
//! # Locking
//!
//! The map's lock is taken by mutators inside one table operation (never across a barrier or
//! allocation call or a scope's end), by markers scanning a table, and by the collector in
//! rounds and clearing. A lookup needs no `Mutation`, so one may run inside a blocking region
//! while the world is stopped; a marker then waits for that one map operation, which never
//! waits for the collector (unless a value's `Clone` waits for another thread: see below).
//!
//! The one piece of user code run under the lock is the value's `Clone` in `get`. A `Clone`
//! that used the same table again would wait for its own lock for ever (and every later pause
//! for its scope); two threads whose values' `Clone`s each used the other's table would wait
//! for each other's lock. So no table operation may run inside a value's `Clone`: it panics,
//! as a `RefCell` borrowed twice does, and no thread ever holds two tables' locks. Each thread
//! counts the `get`s whose `Clone` it is inside ([`EphemeronObj::get_cloned`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;
use crate::gc::object::Object;
use crate::gc::trace::Trace;

/// A scan of one table: trace the values of entries whose key is marked, append the unmarked
/// keys to the vector (if one is given); whether entries with unmarked keys remain.
pub(crate) type ScanFn = unsafe fn(*const Object, &mut Tracer, Option<&mut Vec<usize>>) -> bool;
/// Trace the value of one table's entry keyed by the object at the given address, if there is
/// one.
type ValueFn = unsafe fn(*const Object, usize, &mut Tracer);
/// Remove the entries whose key `is_live` refuses; how many were removed.
type ClearFn = unsafe fn(*const Object, &dyn Fn(*const Object) -> bool) -> usize;

/// A pending table: its address and its type's scan, value and clearing functions.
#[derive(Clone, Copy)]
pub(crate) struct Pending {
    table: ObjAddr,
    scan: ScanFn,
    value: ValueFn,
    clear: ClearFn,
}

/// Rounds in a cycle that go over the pending tables' entries and mark something; the rounds
/// after them use the cycle's [`Index`]. Most cycles need one such round or two, for which a
/// pass over the entries costs less than building the index; more mean chains. (Rounds that
/// mark nothing do not count: the collector runs one whenever it runs out of grey work, which
/// on a busy heap may be often, and they say nothing about chains.)
const ROUNDS_BEFORE_INDEX: u64 = 2;

/// Marks the collector's tracer logs for the [`Index`] at least (more when the index holds
/// more keys: the pass over the index that a full log costs is then paid for by the marks).
const LOG_MIN: usize = 1 << 16;

/// The entries with unmarked keys of the tables pending in a cycle that needed more than
/// [`ROUNDS_BEFORE_INDEX`] rounds that marked something, by key, so that a round looks up the
/// keys marked since the last one instead of going over every entry again: with chains of
/// entries (a value leads to another entry's key) a round finds one more link, so passes over
/// the entries made marking quadratic in the chain's length (V8 switches to such an index for
/// the same reason).
///
/// Which keys were marked since the last round: the objects the collector's tracer logged
/// ([`Tracer::start_mark_log`]) while it marked what the last round greyed. Keys that another
/// marker marked (a mark worker, an assist) are not in that log, nor are those marked after
/// the log filled up; so a round whose lookups find nothing, or that has no complete log,
/// goes over the index's keys (a mark-bit test each) before it reports no progress. The last
/// round of every cycle is therefore such a pass, as the rounds without an index are: the
/// fixpoint argument (module docs) is unchanged. It also means that a chain whose keys other
/// markers mark (the values are subgraphs large enough for the collector to hand part of them
/// to a worker, or a mutator roots keys of the chain) still costs a pass over the index's
/// keys for each of those links: fewer keys than the pending entries and no value traced
/// twice, but quadratic all the same. Logging by every marker would fix that, at a cost to
/// the marking of every cycle with an index.
///
/// Memory: a hash-table slot and a link per indexed key, and the log (8 bytes an object, up to
/// the larger of [`LOG_MIN`] and the number of indexed keys): tens of megabytes for a million
/// pending entries, freed at the end of the cycle.
///
/// Each key's value is traced once, when the round finds the key marked; the entry's later
/// values are shaded by the barrier (module docs), so that is enough. Keys are addresses of
/// objects that are unmarked when indexed: alive (white objects are freed only by this cycle's
/// sweep) and never reused within the cycle.
#[derive(Default)]
struct Index {
    /// The indexed tables, and how many of their indexed keys are not marked yet.
    tables: Vec<(Pending, usize)>,
    /// Each unmarked key's first link in `links`.
    keys: HashMap<usize, u32, BuildAddrHasher>,
    /// (table in `tables`, next link of the same key or [`NO_LINK`]): a key may be in several
    /// tables.
    links: Vec<(u32, u32)>,
    /// The buffer of the collector's mark log, kept between rounds.
    log: Vec<usize>,
}

/// The end of a key's links in [`Index::links`].
const NO_LINK: u32 = u32::MAX;

impl Index {
    /// Index table `p`'s unmarked keys.
    fn add(&mut self, p: Pending, keys: &[usize]) {
        if keys.is_empty() {
            return;
        }
        let ti = u32::try_from(self.tables.len()).expect("fewer than 2^32 indexed tables");
        self.tables.push((p, keys.len()));
        // Once, rather than rehashing as it grows (this may run with the world stopped).
        self.keys.reserve(keys.len());
        self.links.reserve(keys.len());
        for &k in keys {
            let link = u32::try_from(self.links.len())
                .ok()
                .filter(|&l| l != NO_LINK)
                .expect("fewer than 2^32 - 1 indexed entries");
            let head = self.keys.entry(k).or_insert(NO_LINK);
            self.links.push((ti, *head));
            *head = link;
        }
    }

    /// The key at `k` is marked: trace its values and drop it from the index; whether it was
    /// in the index.
    fn visit(&mut self, k: usize, t: &mut Tracer) -> bool {
        let Some(mut link) = self.keys.remove(&k) else {
            return false;
        };
        while link != NO_LINK {
            let (ti, next) = self.links[link as usize];
            let (p, left) = &mut self.tables[ti as usize];
            *left -= 1;
            // SAFETY: an indexed table was marked (scanned) this cycle, so it is alive for the
            // cycle; `value` is its type's.
            unsafe { (p.value)(p.table.0, k, t) };
            link = next;
        }
        true
    }

    /// Visit every indexed key that is marked (a mark-bit test each). The hash table shrinks
    /// first when most of its keys are gone, so that the pass costs the keys left, not the
    /// table's largest size.
    fn visit_marked(&mut self, t: &mut Tracer) {
        if self.keys.len() < self.keys.capacity() / 4 {
            self.keys.shrink_to_fit();
        }
        let marked: Vec<usize> = self
            .keys
            .keys()
            .copied()
            .filter(|&k| t.is_marked(k as *const Object))
            .collect();
        for k in marked {
            self.visit(k, t);
        }
    }

    /// The tables that still have unmarked keys.
    fn unfinished(&self) -> impl Iterator<Item = Pending> + '_ {
        self.tables
            .iter()
            .filter(|&&(_, left)| left > 0)
            .map(|&(p, _)| p)
    }
}

/// Hashes an object address for the [`Index`]: the address times an odd constant, folded (the
/// high half of the product mixes every bit of the address; std's SipHash costs several times
/// more and guards against chosen keys, which object addresses are not).
#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        let m = (self.0 ^ n) as u128 * 0x9e37_79b9_7f4a_7c15u128;
        self.0 = (m >> 64) as u64 ^ m as u64;
    }
}

type BuildAddrHasher = std::hash::BuildHasherDefault<AddrHasher>;

/// The heap's ephemeron state.
pub(crate) struct Ephemerons {
    /// Tables scanned this cycle with entries whose key was not marked: pushed by markers,
    /// filtered by rounds (collector thread), taken at mark termination for clearing; and how
    /// many deferrals there have been (under the same lock).
    pending: Mutex<(Vec<Pending>, u64)>,
    /// Tables to clear in the weak-clearing window (the pending list and the indexed tables
    /// with unmarked keys at mark termination), and the cycle's index, freed then too (not in
    /// the pause: its hash table and links can take tens of megabytes).
    to_clear: Mutex<(Vec<Pending>, Option<Index>)>,
    /// Rounds run, in all cycles and in the current one (reset at its start).
    pub rounds: AtomicU64,
    pub rounds_in_cycle: AtomicU64,
    /// Rounds of the current cycle that went over the entries and marked something (see
    /// [`ROUNDS_BEFORE_INDEX`]; collector thread only).
    passes_marked: AtomicU64,
    /// Entries removed because their key died.
    pub cleared: AtomicU64,
    /// Entries indexed by key ([`Index`]).
    pub indexed: AtomicU64,
    /// The cycle's count of marked objects (see [`marks`]) and of deferrals, read at the start
    /// of the last round that marked nothing (`u64::MAX`: none this cycle). A round that finds
    /// both unchanged would mark nothing either, and is skipped: so a termination attempt with
    /// the world stopped does not go over a large table of dead keys again when nothing was
    /// marked or deferred since the concurrent round.
    quiet_at: Mutex<(u64, u64)>,
    /// The cycle's [`Index`], once more than [`ROUNDS_BEFORE_INDEX`] rounds marked something
    /// (used by the collector thread only, which runs the rounds).
    index: Mutex<Option<Index>>,
}

impl Default for Ephemerons {
    fn default() -> Self {
        Ephemerons {
            pending: Mutex::default(),
            to_clear: Mutex::default(),
            rounds: AtomicU64::new(0),
            rounds_in_cycle: AtomicU64::new(0),
            passes_marked: AtomicU64::new(0),
            cleared: AtomicU64::new(0),
            indexed: AtomicU64::new(0),
            quiet_at: Mutex::new((u64::MAX, u64::MAX)),
            index: Mutex::new(None),
        }
    }
}

/// Objects marked so far this cycle: every other tracer's, handed over (`Release`) when it
/// stops, plus the caller's own. A tracer marks before it hands its count over, so a count read
/// with `Acquire` covers marks whose bits a round started after it will see.
fn marks(h: &Shared, t: &Tracer) -> u64 {
    h.mark.marked_objects_others.load(Ordering::Acquire) + t.marked.objects as u64
}

impl Ephemerons {
    /// A marker scanned a table with unmarked keys.
    pub(crate) fn defer(&self, p: Pending) {
        let mut pending = self.pending.lock();
        pending.0.push(p);
        pending.1 += 1;
    }

    /// Start of a cycle (STW 1).
    pub(crate) fn start_cycle(&self) {
        debug_assert!(self.pending.lock().0.is_empty());
        debug_assert!(self.index.lock().is_none());
        self.rounds_in_cycle.store(0, Ordering::Relaxed);
        self.passes_marked.store(0, Ordering::Relaxed);
        *self.quiet_at.lock() = (u64::MAX, u64::MAX);
    }

    /// Marking is over (STW 2): the tables still pending hold dead entries, cleared in the
    /// weak-clearing window ([`Ephemerons::clear_dead`]).
    pub(crate) fn end_marking(&self) {
        let p = std::mem::take(&mut self.pending.lock().0);
        let mut to_clear = self.to_clear.lock();
        to_clear.0.extend(p);
        if let Some(index) = self.index.lock().take() {
            to_clear.0.extend(index.unfinished());
            to_clear.1 = Some(index);
        }
    }

    /// Remove the entries of the tables pending at mark termination whose key did not survive
    /// (weak-clearing window, or with the world stopped). `is_live` is
    /// [`crate::gc::weak::is_live`].
    pub(crate) fn clear_dead(&self, is_live: &dyn Fn(*const Object) -> bool) {
        let (tables, index) = std::mem::take(&mut *self.to_clear.lock());
        drop(index);
        let mut n = 0;
        for p in tables {
            // SAFETY: the table was marked this cycle (it was scanned), so it is alive until
            // the sweep, which has not begun (weak-clearing window); `clear` is its type's.
            n += unsafe { (p.clear)(p.table.0, is_live) };
        }
        self.cleared.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One round over the pending tables (module docs): trace the values of entries whose key has
/// been marked, keep the tables that still have unmarked keys. Whether it greyed or marked
/// anything (then marking must go on before the fixpoint is reached). After
/// [`ROUNDS_BEFORE_INDEX`] rounds in a cycle that marked something, the round looks up the keys
/// marked since the last one in the cycle's [`Index`] instead of going over the entries.
///
/// Skipped when nothing was marked and no table deferred since a round that marked nothing
/// started (see [`Ephemerons::quiet_at`]): every key it found unmarked still is, and the tables
/// are the same.
pub(crate) fn round(h: &Shared, t: &mut Tracer) -> bool {
    let e = &h.ephemerons;
    let count = marks(h, t);
    let (tables, deferrals) = {
        let mut pending = e.pending.lock();
        if *e.quiet_at.lock() == (count, pending.1) {
            return false;
        }
        (std::mem::take(&mut pending.0), pending.1)
    };
    let mut index = e.index.lock();
    if tables.is_empty() && index.as_ref().is_none_or(|i| i.keys.is_empty()) {
        return false;
    }
    e.rounds.fetch_add(1, Ordering::Relaxed);
    e.rounds_in_cycle.fetch_add(1, Ordering::Relaxed);
    let before = t.marked.objects;
    if index.is_none() && e.passes_marked.load(Ordering::Relaxed) < ROUNDS_BEFORE_INDEX {
        let mut keep = Vec::new();
        for p in tables {
            // SAFETY: a pending table was marked (scanned) this cycle, so it is alive for the
            // cycle; `scan` is its type's.
            if unsafe { (p.scan)(p.table.0, t, None) } {
                keep.push(p);
            }
        }
        e.pending.lock().0.extend(keep);
        if t.marked.objects != before || t.has_grey() {
            e.passes_marked.fetch_add(1, Ordering::Relaxed);
        }
    } else {
        let index = index.get_or_insert_with(Index::default);
        // The marks since the last round; log the ones from here on for the next.
        let (log, complete) = t.take_mark_log();
        let buf = std::mem::take(&mut index.log);
        t.start_mark_log(LOG_MIN.max(index.keys.len()), buf);
        let mut keys = Vec::new();
        for p in tables {
            keys.clear();
            // SAFETY: as above.
            unsafe { (p.scan)(p.table.0, t, Some(&mut keys)) };
            index.add(p, &keys);
            e.indexed.fetch_add(keys.len() as u64, Ordering::Relaxed);
        }
        for &k in &log {
            index.visit(k, t);
        }
        index.log = log;
        // Keys other markers marked, or marked after the log filled up: before the round
        // reports no progress, every indexed key is tested.
        if !complete || (t.marked.objects == before && !t.has_grey()) {
            index.visit_marked(t);
        }
    }
    drop(index);
    let progressed = t.marked.objects != before || t.has_grey();
    if !progressed {
        *e.quiet_at.lock() = (count, deferrals);
    }
    progressed
}

thread_local! {
    /// How many `get`s are cloning a value on this thread (with their tables locked).
    static CLONING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts a `get` cloning a value on this thread while it lives (also on unwinding).
struct Cloning;

impl Cloning {
    fn start() -> Cloning {
        CLONING.with(|c| c.set(c.get() + 1));
        Cloning
    }
}

impl Drop for Cloning {
    fn drop(&mut self) {
        CLONING.with(|c| c.set(c.get() - 1));
    }
}

/// The heap object behind a `GcEphemeronTable`: values by key address.
#[doc(hidden)]
pub struct EphemeronObj<V> {
    map: Mutex<HashMap<usize, V>>,
}

impl<V: Trace> EphemeronObj<V> {
    pub(crate) fn new() -> Self {
        EphemeronObj {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The map, locked (see the module docs on locking: callers never allocate, run a barrier
    /// or end a scope while they hold it).
    ///
    /// # Panics
    /// If this thread is inside [`EphemeronObj::get_cloned`] of any table: a value's `Clone`
    /// used a table while the one it is read from is locked (its own: the wait would never
    /// end; another: two threads doing so in opposite directions would wait for each other).
    pub(crate) fn map(&self) -> parking_lot::MutexGuard<'_, HashMap<usize, V>> {
        // Tested on every operation, not only when the lock is taken: whether two threads meet
        // is timing, and the rule must not depend on it.
        if CLONING.try_with(|c| c.get() > 0).unwrap_or(false) {
            panic!(
                "gc-core: a GcEphemeronTable value's Clone used an ephemeron table \
                 (GcEphemeronTable::get clones the value with its table locked)"
            );
        }
        self.map.lock()
    }

    /// The value of the entry keyed by the object at `key`, cloned.
    pub(crate) fn get_cloned(&self, key: usize) -> Option<V>
    where
        V: Clone,
    {
        let map = self.map();
        let v = map.get(&key)?;
        let _cloning = Cloning::start();
        Some(v.clone())
    }

    /// Trace the values of entries whose key is marked, appending the unmarked keys to
    /// `unmarked` if given; whether unmarked keys remain.
    fn trace_marked(&self, t: &mut Tracer, mut unmarked: Option<&mut Vec<usize>>) -> bool {
        let map = self.map.lock();
        let mut pending = false;
        for (&k, v) in map.iter() {
            if t.is_marked(k as *const Object) {
                v.trace(t);
            } else {
                pending = true;
                if let Some(u) = unmarked.as_deref_mut() {
                    u.push(k);
                }
            }
        }
        pending
    }
}

/// [`ScanFn`] of `EphemeronObj<V>`.
///
/// # Safety
/// `obj` is a live `EphemeronObj<V>`, and `t` a marking tracer.
unsafe fn scan_of<V: Trace>(
    obj: *const Object,
    t: &mut Tracer,
    unmarked: Option<&mut Vec<usize>>,
) -> bool {
    // SAFETY: the caller's contract.
    unsafe { &*(obj as *const EphemeronObj<V>) }.trace_marked(t, unmarked)
}

/// [`ValueFn`] of `EphemeronObj<V>`.
///
/// # Safety
/// `obj` is a live `EphemeronObj<V>`, and `t` a marking tracer.
unsafe fn value_of<V: Trace>(obj: *const Object, key: usize, t: &mut Tracer) {
    // SAFETY: the caller's contract.
    let table = unsafe { &*(obj as *const EphemeronObj<V>) };
    if let Some(v) = table.map.lock().get(&key) {
        v.trace(t);
    }
}

/// [`ClearFn`] of `EphemeronObj<V>`.
///
/// # Safety
/// `obj` is a live `EphemeronObj<V>`, after its cycle's marking and before its sweep.
unsafe fn clear_of<V: Trace>(obj: *const Object, is_live: &dyn Fn(*const Object) -> bool) -> usize {
    // SAFETY: the caller's contract.
    let table = unsafe { &*(obj as *const EphemeronObj<V>) };
    let dead: Vec<V> = {
        let mut map = table.map.lock();
        let keys: Vec<usize> = map
            .keys()
            .copied()
            .filter(|&k| !is_live(k as *const Object))
            .collect();
        keys.iter().filter_map(|k| map.remove(k)).collect()
    };
    // Dropped outside the lock, as the sweeper drops objects (the values were part of the
    // table object, whose drop glue would have dropped them).
    let n = dead.len();
    crate::gc::sweep::as_drop_glue(|| std::any::type_name::<V>().to_string(), || drop(dead));
    n
}

// SAFETY: a table's keys are weak (never reported to a marker); its values are reported once
// their key is marked, in this scan or in a later round of the same cycle (the table is then
// deferred), which `gc::cycle` runs to a fixpoint before marking ends (module docs). The map
// is read under its lock, which no one holds across anything that waits for the collector.
// Tracers that do not mark (the barrier's, the verifier's) get every key and value.
unsafe impl<V: Trace> Trace for EphemeronObj<V> {
    fn trace(&self, t: &mut Tracer) {
        if t.is_marking() {
            if self.trace_marked(t, None) {
                t.defer_ephemerons(Pending {
                    table: ObjAddr(self as *const Self as *const Object),
                    scan: scan_of::<V>,
                    value: value_of::<V>,
                    clear: clear_of::<V>,
                });
            }
        } else {
            let map = self.map.lock();
            for (&k, v) in map.iter() {
                t.edge(k as *const Object);
                v.trace(t);
            }
        }
    }
}

/// Loom model of the ephemeron fixpoint's termination, with the real safepoint handshake. One
/// table entry `K → V`; the table was scanned with `K` unmarked, so it is pending. A helper
/// marker (not stopped with the world, counted `busy` around its batch, as `gc::mark::work`
/// counts it) takes `K` from the queue and marks it; a mutator removes the entry inside a scope,
/// shading `V` into its barrier buffer (the deletion barrier). The collector does what
/// `gc::cycle` does: a round with the world running, then termination attempts — stop the
/// world, flush the buffer, check the queue and `busy`, rounds until one marks nothing — and
/// ends only when an attempt finds nothing. Checked in every interleaving (two preemptions):
/// when marking ends, `V` is marked if `K` is and the entry is still in the table, or if the
/// entry was removed (the mutator may have kept `V`). Without the rounds in the pause, or
/// without the deletion barrier, it fails.
///
/// `RUSTFLAGS="--cfg loom" cargo test -p gc-core --lib --release loom_`
#[cfg(all(test, loom))]
mod loom_tests {
    use crate::gc::safepoint::{OUTSIDE, Safepoint};
    use crate::util::primitive::AtomicU8;
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};

    struct World {
        key: AtomicBool,
        value: AtomicBool,
        /// The entry is in the table; the table is pending (scanned with `K` unmarked).
        entry: Mutex<bool>,
        pending: Mutex<bool>,
        /// Grey work the helper may take: `K`.
        queue: Mutex<Vec<()>>,
        busy: AtomicUsize,
        /// The mutator's barrier buffer (`V` shaded), flushed with the world stopped.
        buffer: Mutex<bool>,
        removed: AtomicBool,
    }

    impl World {
        /// An ephemeron round: trace `V` if `K` is marked and the entry is there; whether it
        /// marked anything.
        fn round(&self) -> bool {
            let mut pending = self.pending.lock().unwrap();
            if !*pending {
                return false;
            }
            let entry = self.entry.lock().unwrap();
            if !*entry {
                *pending = false;
                return false;
            }
            if self.key.load(Ordering::Relaxed) {
                *pending = false;
                return !self.value.swap(true, Ordering::Relaxed);
            }
            false
        }
    }

    #[test]
    fn loom_ephemeron_fixpoint_ends_with_every_live_value_marked() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let w = Arc::new(World {
                key: AtomicBool::new(false),
                value: AtomicBool::new(false),
                entry: Mutex::new(true),
                pending: Mutex::new(true),
                queue: Mutex::new(vec![()]),
                busy: AtomicUsize::new(0),
                buffer: Mutex::new(false),
                removed: AtomicBool::new(false),
            });
            let sp = Arc::new(Safepoint::default());
            let state = Arc::new(AtomicU8::new(OUTSIDE));
            let helper = {
                let w = w.clone();
                loom::thread::spawn(move || {
                    w.busy.fetch_add(1, Ordering::SeqCst);
                    if w.queue.lock().unwrap().pop().is_some() {
                        w.key.store(true, Ordering::Relaxed);
                    }
                    w.busy.fetch_sub(1, Ordering::SeqCst);
                })
            };
            let mutator = {
                let (w, sp, state) = (w.clone(), sp.clone(), state.clone());
                loom::thread::spawn(move || {
                    sp.enter(&state);
                    let had = std::mem::replace(&mut *w.entry.lock().unwrap(), false);
                    if had {
                        // Deletion barrier, outside the table's lock.
                        *w.buffer.lock().unwrap() = true;
                        w.removed.store(true, Ordering::Relaxed);
                    }
                    sp.exit(&state);
                })
            };
            // The collector: out of grey work, a round with the world running.
            w.round();
            loop {
                sp.stop(std::iter::once(&*state));
                if std::mem::take(&mut *w.buffer.lock().unwrap()) {
                    w.value.store(true, Ordering::Relaxed);
                }
                let quiet =
                    w.queue.lock().unwrap().is_empty() && w.busy.load(Ordering::SeqCst) == 0;
                // Rounds to the fixpoint with the world stopped (nothing here is grey after a
                // round: `V` has no fields).
                while quiet && w.round() {}
                if quiet {
                    let key = w.key.load(Ordering::Relaxed);
                    let value = w.value.load(Ordering::Relaxed);
                    let entry = *w.entry.lock().unwrap();
                    let removed = w.removed.load(Ordering::Relaxed);
                    assert!(
                        value || !((key && entry) || removed),
                        "marking ended with a live value unmarked (key {key}, entry {entry}, removed {removed})"
                    );
                    sp.start();
                    break;
                }
                sp.start();
                loom::thread::yield_now();
            }
            helper.join().unwrap();
            mutator.join().unwrap();
        });
    }
}
