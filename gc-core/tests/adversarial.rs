//! Adversarial tests of the sweeping and weak-clearing protocol, written by a review that tried
//! to break it with safe code (the public API and the safe `debug_*` hooks only):
//!
//! * torture runs (both collectors, both verify modes): objects of small, medium and large
//!   sizes with drop tags (dropped twice or used after drop = failure), weak upgrades checked
//!   across the window, threads calling `finish_sweep`, `collect` and `debug_start_cycle`,
//!   holding the weak-clearing window at random, making and dropping mutators (some inside
//!   another mutator's scope, some calling `finish_sweep` inside a scope or a blocking region);
//! * a scope spanning a whole cycle through a blocking region, and everything that may happen
//!   inside a held weak-clearing window (deterministic);
//! * liveness: calls that would wait on themselves end in a clear panic or abort, not a hang.
//!
//! `ATTACK_SECS` sets the seconds of each torture run (default 2).

#![allow(clippy::type_complexity)]

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gc_core::{Config, Gc, GcCell, GcVec, GcWeak, Heap, Mutation, Mutator, Rootable, Trace};

mod common;
use common::{finish_sweep_loop, join_then, run_child, within};

fn secs() -> f64 {
    std::env::var("ATTACK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0)
}

// ---- Drop tracking: every object carries a tag; its drop glue records the drop exactly once.

const MAX_IDS: usize = 1 << 24;
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// 0 = never made, 1 = alive, 2 = dropped.
fn table() -> &'static [AtomicU8] {
    static T: OnceLock<Vec<AtomicU8>> = OnceLock::new();
    T.get_or_init(|| (0..MAX_IDS).map(|_| AtomicU8::new(0)).collect())
}
static BAD_DROPS: AtomicU64 = AtomicU64::new(0);

fn checksum(v: u64) -> u64 {
    v.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_F0F0_0F0F
}

struct Tag {
    id: u64,
    check: u64,
}

impl Tag {
    fn new() -> Tag {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        assert!((id as usize) < MAX_IDS, "id table too small");
        table()[id as usize].store(1, Ordering::SeqCst);
        Tag {
            id,
            check: checksum(id),
        }
    }
    fn check(&self, what: &str) {
        assert_eq!(self.check, checksum(self.id), "{what}: corrupted tag");
        let s = table()[self.id as usize].load(Ordering::SeqCst);
        assert_eq!(
            s, 1,
            "{what}: object {} used after its drop glue ran",
            self.id
        );
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        if self.check != checksum(self.id) || (self.id as usize) >= MAX_IDS {
            BAD_DROPS.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if table()[self.id as usize].swap(2, Ordering::SeqCst) != 1 {
            // Dropped twice (span swept twice) or a wild object.
            BAD_DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Trace)]
struct Small {
    #[gc(skip)]
    tag: Tag,
    #[gc(skip)]
    data: Vec<u64>,
}

#[derive(Trace)]
struct Medium {
    #[gc(skip)]
    tag: Tag,
    #[gc(skip)]
    data: [u64; 60],
}

#[derive(Trace)]
struct Large {
    #[gc(skip)]
    tag: Tag,
    #[gc(skip)]
    data: [u64; 4500],
}

trait Tagged: Trace + Send + Sync + 'static {
    fn tag(&self) -> &Tag;
    fn data_ok(&self) -> bool;
}
impl Tagged for Small {
    fn tag(&self) -> &Tag {
        &self.tag
    }
    fn data_ok(&self) -> bool {
        self.data.len() == 3
            && self
                .data
                .iter()
                .enumerate()
                .all(|(i, &d)| d == checksum(self.tag.id ^ i as u64))
    }
}
impl Tagged for Medium {
    fn tag(&self) -> &Tag {
        &self.tag
    }
    fn data_ok(&self) -> bool {
        self.data
            .iter()
            .enumerate()
            .all(|(i, &d)| d == checksum(self.tag.id ^ i as u64))
    }
}
impl Tagged for Large {
    fn tag(&self) -> &Tag {
        &self.tag
    }
    fn data_ok(&self) -> bool {
        [0usize, 1, 2000, 4499]
            .iter()
            .all(|&i| self.data[i] == checksum(self.tag.id ^ i as u64))
    }
}

fn check<T: Tagged>(o: &T, id: Option<u64>, what: &str) {
    o.tag().check(what);
    assert!(
        o.data_ok(),
        "{what}: corrupted data of object {}",
        o.tag().id
    );
    if let Some(id) = id {
        assert_eq!(
            o.tag().id,
            id,
            "{what}: weak reference upgraded to another object"
        );
    }
}

fn small() -> Small {
    let tag = Tag::new();
    let id = tag.id;
    Small {
        tag,
        data: (0..3).map(|i| checksum(id ^ i)).collect(),
    }
}
fn medium() -> Medium {
    let tag = Tag::new();
    let id = tag.id;
    Medium {
        tag,
        data: std::array::from_fn(|i| checksum(id ^ i as u64)),
    }
}
fn large() -> Large {
    let tag = Tag::new();
    let id = tag.id;
    Large {
        tag,
        data: std::array::from_fn(|i| checksum(id ^ i as u64)),
    }
}

#[derive(Trace)]
struct ARoot<'gc> {
    ss: GcVec<'gc, Option<Gc<'gc, Small>>>,
    sm: GcVec<'gc, Option<Gc<'gc, Medium>>>,
    sl: GcVec<'gc, Option<Gc<'gc, Large>>>,
    ws: GcVec<'gc, Option<GcWeak<'gc, Small>>>,
    wm: GcVec<'gc, Option<GcWeak<'gc, Medium>>>,
    wl: GcVec<'gc, Option<GcWeak<'gc, Large>>>,
    cs: GcCell<'gc, Option<Gc<'gc, Small>>>,
    cm: GcCell<'gc, Option<Gc<'gc, Medium>>>,
    cl: GcCell<'gc, Option<Gc<'gc, Large>>>,
}

type RootM = Rootable!['gc => ARoot<'gc>];

fn new_root<'gc>(mc: &Mutation<'gc>) -> ARoot<'gc> {
    ARoot {
        ss: GcVec::new(mc),
        sm: GcVec::new(mc),
        sl: GcVec::new(mc),
        ws: GcVec::new(mc),
        wm: GcVec::new(mc),
        wl: GcVec::new(mc),
        cs: GcCell::new(None),
        cm: GcCell::new(None),
        cl: GcCell::new(None),
    }
}

/// A weak reference made by a worker: its kind (0 small, 1 medium, 2 large), index in that
/// kind's weak vector, target id, and whether the target is also held strongly.
#[derive(Clone, Copy)]
struct Entry {
    kind: u8,
    idx: usize,
    id: u64,
    held: bool,
}

/// Make one object of kind `k % 16` (large for 0, medium for 1..=5), weak-reference it, keep
/// it strongly if `keep`, and return its entry.
fn make_entry<'gc>(mc: &Mutation<'gc>, r: &ARoot<'gc>, k: u64, keep: bool) -> Entry {
    match k % 16 {
        0 => {
            let o = Gc::new(mc, large());
            r.wl.push(mc, Some(o.downgrade(mc)));
            if keep {
                r.sl.push(mc, Some(o));
            }
            Entry {
                kind: 2,
                idx: r.wl.len() - 1,
                id: o.tag.id,
                held: keep,
            }
        }
        1..=5 => {
            let o = Gc::new(mc, medium());
            r.wm.push(mc, Some(o.downgrade(mc)));
            if keep {
                r.sm.push(mc, Some(o));
            }
            Entry {
                kind: 1,
                idx: r.wm.len() - 1,
                id: o.tag.id,
                held: keep,
            }
        }
        _ => {
            let o = Gc::new(mc, small());
            r.ws.push(mc, Some(o.downgrade(mc)));
            if keep {
                r.ss.push(mc, Some(o));
            }
            Entry {
                kind: 0,
                idx: r.ws.len() - 1,
                id: o.tag.id,
                held: keep,
            }
        }
    }
}

/// Upgrade entry `e`; check what comes back; optionally call `during` while holding it, then
/// check again; optionally store it in a cell. Returns whether it upgraded.
fn upgrade_entry<'gc>(
    mc: &Mutation<'gc>,
    r: &ARoot<'gc>,
    e: Entry,
    during: impl FnOnce(),
    store: bool,
    what: &str,
) -> bool {
    macro_rules! go {
        ($w:ident, $c:ident) => {{
            let w = r.$w.get(e.idx).flatten().unwrap();
            match w.upgrade(mc) {
                Some(o) => {
                    check(&*o, Some(e.id), what);
                    during();
                    check(&*o, Some(e.id), what);
                    if store {
                        r.$c.set(mc, Some(o));
                    }
                    true
                }
                None => false,
            }
        }};
    }
    match e.kind {
        0 => go!(ws, cs),
        1 => go!(wm, cm),
        _ => go!(wl, cl),
    }
}

fn check_strong(r: &ARoot<'_>, what: &str) {
    for o in r.ss.iter().flatten() {
        check(&*o, None, what);
    }
    for o in r.sm.iter().flatten() {
        check(&*o, None, what);
    }
    for o in r.sl.iter().flatten() {
        check(&*o, None, what);
    }
}

fn clear_root<'gc>(mc: &Mutation<'gc>, r: &ARoot<'gc>) {
    r.ss.truncate(mc, 0);
    r.sm.truncate(mc, 0);
    r.sl.truncate(mc, 0);
    r.ws.truncate(mc, 0);
    r.wm.truncate(mc, 0);
    r.wl.truncate(mc, 0);
}

struct Disturbers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Disturbers {
    fn start(heap: &Heap, hold_toggler: bool) -> Disturbers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![finish_sweep_loop(heap, stop.clone())];
        {
            let (stop, heap) = (stop.clone(), heap.clone());
            threads.push(std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    std::thread::sleep(Duration::from_millis(2 + i % 5));
                    if i.is_multiple_of(3) {
                        heap.debug_start_cycle();
                    } else {
                        heap.collect();
                    }
                }
            }));
        }
        if hold_toggler {
            // Hold the weak-clearing window open for random stretches, so that allocations,
            // upgrades, finish_sweep calls and mutator drops land inside it.
            let (stop, heap) = (stop.clone(), heap.clone());
            threads.push(std::thread::spawn(move || {
                let mut x = 12345u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    heap.debug_hold_weak_clearing(true);
                    std::thread::sleep(Duration::from_micros(50 + (x >> 40) % 1500));
                    heap.debug_hold_weak_clearing(false);
                    std::thread::sleep(Duration::from_micros(50 + (x >> 20) % 1500));
                }
                heap.debug_hold_weak_clearing(false);
            }));
        }
        // Mutator churn: mutators made and dropped, some dropped inside another's scope
        // (deferred unregistration), finish_sweep called inside scopes and blocking regions.
        {
            let (stop, heap) = (stop.clone(), heap.clone());
            threads.push(std::thread::spawn(move || {
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let mut a: Mutator<RootM> = heap.mutator(|mc| new_root(mc));
                    let mut b: Mutator<RootM> = heap.mutator(|mc| new_root(mc));
                    for m in [&mut a, &mut b] {
                        m.mutate(|mc, r| {
                            for k in 0..40 {
                                make_entry(mc, r, round + k, k % 2 == 0);
                            }
                        });
                    }
                    let h2 = heap.clone();
                    // (ATTACK_NO_INSCOPE_DROP: drop b before the scope, for running this file
                    // against the code before the change, where the in-scope drop deadlocks.)
                    let b = if std::env::var_os("ATTACK_NO_INSCOPE_DROP").is_some() {
                        drop(b);
                        None
                    } else {
                        Some(b)
                    };
                    a.mutate(|mc, r| {
                        // b's cache holds spans; it is dropped inside a's scope.
                        drop(b);
                        for k in 0..30 {
                            make_entry(mc, r, round * 7 + k, false);
                        }
                        if round.is_multiple_of(4) {
                            h2.finish_sweep();
                        }
                        if round % 4 == 1 {
                            mc.blocking(|| h2.finish_sweep());
                        }
                        check_strong(r, "churn");
                    });
                    drop(a);
                    std::thread::yield_now();
                }
            }));
        }
        Disturbers { stop, threads }
    }
}

impl Drop for Disturbers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if let Err(e) = t.join()
                && !std::thread::panicking()
            {
                std::panic::resume_unwind(e);
            }
        }
    }
}

/// Mutators making objects of three sizes (one large), weak references to all, strong
/// references to some; they upgrade weak references all the time (checking contents and that
/// drop glue has not run), keep some upgraded objects, and — when an upgrade happens in the
/// weak-clearing window — spin a while and check again (a dead target handed out would be
/// swept under them once the window closes). Targets held strongly must always upgrade.
fn torture(verify: bool, concurrent: bool) {
    let heap = Heap::new(
        Config::default()
            .verify(verify)
            .concurrent(concurrent)
            .gc_percent(Some(10))
            .debug_cpus(8),
    )
    .unwrap();
    let disturbers = Disturbers::start(&heap, concurrent && !verify);
    let deadline = Instant::now() + Duration::from_secs_f64(secs());
    let window_upgrades = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let (heap, window_upgrades) = (heap.clone(), window_upgrades.clone());
            std::thread::spawn(move || {
                let mut m: Mutator<RootM> = heap.mutator(|mc| new_root(mc));
                let mut rounds = 0u64;
                let mut rng = 0x1234_5678u64 ^ (t << 32);
                let mut entries: Vec<Entry> = Vec::new();
                while rounds < 4 || Instant::now() < deadline {
                    rounds += 1;
                    if entries.len() > 3000 {
                        m.mutate(clear_root);
                        entries.clear();
                    }
                    let h2 = heap.clone();
                    m.mutate(|mc, r| {
                        // What earlier scopes kept of their upgrades is still intact (a dead
                        // target handed out in a window would have been freed since).
                        if let Some(o) = r.cs.get() {
                            check(&*o, None, "kept (small)");
                        }
                        if let Some(o) = r.cm.get() {
                            check(&*o, None, "kept (medium)");
                        }
                        if let Some(o) = r.cl.get() {
                            check(&*o, None, "kept (large)");
                        }
                        for _ in 0..60 {
                            rng = rng
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            let keep = (rng >> 20).is_multiple_of(3);
                            entries.push(make_entry(mc, r, rng >> 33, keep));
                            // Upgrade a few random older ones.
                            for j in 0..3u64 {
                                let k = ((rng >> (8 + j * 7)) as usize) % entries.len();
                                let e = entries[k];
                                let in_window = h2.debug_weaks_pending();
                                let got = upgrade_entry(
                                    mc,
                                    r,
                                    e,
                                    || {
                                        if in_window {
                                            window_upgrades.fetch_add(1, Ordering::Relaxed);
                                            // Give the window time to close and sweepers time
                                            // to run, then look again.
                                            let t0 = Instant::now();
                                            while t0.elapsed() < Duration::from_micros(300)
                                                && !mc.should_yield()
                                            {
                                                std::hint::spin_loop();
                                            }
                                        }
                                    },
                                    k.is_multiple_of(7),
                                    "upgraded",
                                );
                                assert!(
                                    got || !e.held,
                                    "the weak reference of a strongly held object (id {}) is dead",
                                    e.id
                                );
                            }
                            if mc.should_yield() {
                                break;
                            }
                        }
                        check_strong(r, "strong");
                    });
                }
                rounds
            })
        })
        .collect();
    let rounds: u64 = join_then(workers, || drop(disturbers)).into_iter().sum();
    heap.collect();
    let s = heap.stats();
    eprintln!(
        "torture(verify={verify}, concurrent={concurrent}): {rounds} rounds, {} upgrades in the \
         window, {s:?}",
        window_upgrades.load(Ordering::Relaxed)
    );
    assert_eq!(
        BAD_DROPS.load(Ordering::SeqCst),
        0,
        "drop glue ran twice or on a wild object"
    );
    assert!(s.gc_cycles >= 3);
    // Where there is a window (the concurrent collector, verify off), some upgrades landed in
    // it, or the checks made there never ran.
    if concurrent && !verify {
        assert!(
            window_upgrades.load(Ordering::Relaxed) > 0,
            "no upgrade landed in a weak-clearing window"
        );
    }
}

#[test]
fn torture_concurrent_verify_off() {
    torture(false, true);
}

#[test]
fn torture_concurrent_verify_on() {
    torture(true, true);
}

#[test]
fn torture_stw_verify_off() {
    torture(false, false);
}

#[test]
fn torture_stw_verify_on() {
    torture(true, false);
}

// ---- A scope that spans a whole mark termination through a blocking region.

/// A scope begins while marking (its roots scanned), holds an object obtained by upgrading a
/// weak reference to an otherwise unreachable object (upgrade shades it), then blocks while
/// the cycle's STW 2, weak clearing and sweep all happen; after it comes back, in and after the
/// window, a weak reference to a target that was unreachable at STW 1 and never upgraded must
/// not upgrade, and the upgraded object must still be intact.
#[test]
fn scope_spanning_mark_termination_via_blocking() {
    within(30, "scope spanning mark termination", || {
        for round in 0..5 {
            let heap = Heap::new(Config::default()).unwrap();
            let mut m: Mutator<RootM> = heap.mutator(|mc| new_root(mc));
            // Two objects reachable only weakly.
            let (e0, e1) =
                m.mutate(|mc, r| (make_entry(mc, r, 1, false), make_entry(mc, r, 2, false)));
            heap.debug_hold_marking(true);
            heap.debug_start_cycle();
            // Wait until marking has begun (from a scope: debug_marking).
            let t0 = Instant::now();
            loop {
                if m.mutate(|mc, _| mc.debug_marking()) {
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "no marking");
                std::thread::sleep(Duration::from_millis(1));
            }
            let h2 = heap.clone();
            m.mutate(|mc, r| {
                assert!(mc.debug_marking());
                // Upgrade the first (shaded, survives); leave the second alone (dies).
                let w0 = r.wm.get(e0.idx).flatten().unwrap();
                let kept = w0.upgrade(mc).expect("alive before the cycle ends");
                check(&*kept, Some(e0.id), "before blocking");
                let hold_window = round % 2 == 0;
                mc.blocking(move || {
                    if hold_window {
                        h2.debug_hold_weak_clearing(true);
                    }
                    h2.debug_hold_marking(false);
                    let t0 = Instant::now();
                    if hold_window {
                        while !h2.debug_weaks_pending() {
                            assert!(t0.elapsed() < Duration::from_secs(10), "no STW 2");
                            std::thread::yield_now();
                        }
                    } else {
                        // Wait for the whole cycle, its clearing and its sweep.
                        while h2.stats().gc_cycles < 1 || h2.debug_weaks_pending() {
                            assert!(t0.elapsed() < Duration::from_secs(10), "no cycle end");
                            std::thread::yield_now();
                        }
                        h2.finish_sweep();
                    }
                });
                // Back in the scope: in the window (held) or after the sweep.
                assert!(
                    !upgrade_entry(mc, r, e1, || (), false, "dead"),
                    "a target unreachable at STW 1 upgraded after mark termination (round {round})"
                );
                check(&*kept, Some(e0.id), "after blocking");
                if hold_window {
                    assert!(heap.debug_weaks_pending());
                    let h3 = heap.clone();
                    mc.blocking(move || {
                        h3.debug_hold_weak_clearing(false);
                        h3.finish_sweep();
                    });
                    assert!(!upgrade_entry(mc, r, e1, || (), false, "dead"));
                    check(&*kept, Some(e0.id), "after the window");
                    assert!(
                        upgrade_entry(mc, r, e0, || (), false, "kept"),
                        "the upgraded target was cleared"
                    );
                }
            });
            heap.collect();
            assert_eq!(BAD_DROPS.load(Ordering::SeqCst), 0);
        }
    });
}

// ---- Liveness probes.

/// `Mutator::debug_barrier_buffer_len` of one mutator called inside a scope of another (same
/// heap, same thread) while a collector waits for that scope would take the registry lock the
/// collector holds: it panics instead, and the cycle then runs.
#[test]
fn debug_barrier_buffer_len_inside_another_scope() {
    within(20, "debug_barrier_buffer_len inside a scope", || {
        let heap = Heap::new(Config::default()).unwrap();
        let mut m1: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        let m2: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
        let cycles = heap.stats().gc_cycles;
        let r = m1.mutate(|mc, _| {
            heap.debug_start_cycle();
            let t = Instant::now();
            while !mc.should_yield() {
                assert!(t.elapsed() < Duration::from_secs(10), "no stop requested");
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(20));
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                m2.debug_barrier_buffer_len()
            }))
        });
        assert!(r.is_err(), "expected a panic inside the scope");
        heap.collect();
        assert!(heap.stats().gc_cycles > cycles);
    });
}

/// Drop glue that calls `Heap::finish_sweep` (safe API; drop glue may run on the collector
/// thread during background sweeping): that `finish_sweep` waits for `sweepers == 0`, which
/// includes the sweep running the drop glue.
struct CallsFinishSweep {
    heap: Heap,
    done: Arc<AtomicBool>,
}
impl Drop for CallsFinishSweep {
    fn drop(&mut self) {
        self.heap.finish_sweep();
        self.done.store(true, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct HasHeap {
    #[gc(skip)]
    #[allow(dead_code)]
    h: CallsFinishSweep,
}

fn finish_sweep_from_drop_glue_child() {
    let heap = Heap::new(Config::default()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        Gc::new(
            mc,
            HasHeap {
                h: CallsFinishSweep {
                    heap: heap.clone(),
                    done: done.clone(),
                },
            },
        );
    });
    // The object is garbage: the sweep after this cycle runs its drop glue (here or on the
    // collector thread).
    heap.collect();
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("drop glue finished: {}", done.load(Ordering::SeqCst));
    std::process::exit(3);
}

/// Drop glue that calls `Heap::finish_sweep` would wait for the sweep running it: the call
/// panics, which aborts the process with both messages (never a hang).
#[test]
fn finish_sweep_from_drop_glue() {
    if std::env::var_os("ATTACK_CHILD_DROP").is_some() {
        finish_sweep_from_drop_glue_child();
        return;
    }
    let end = run_child(
        "finish_sweep_from_drop_glue",
        "ATTACK_CHILD_DROP",
        Duration::from_secs(30),
    );
    assert_eq!(end.signal, Some(6), "expected an abort:\n{}", end.stderr);
    assert!(
        end.stderr
            .contains("called from drop glue run by the sweeper"),
        "the report does not say why:\n{}",
        end.stderr
    );
}

thread_local! {
    /// The mutator that `EntersScope`'s drop glue uses, on the thread that made it.
    static THREAD_MUTATOR: std::cell::RefCell<Option<Mutator<Rootable!['gc => ()]>>> =
        const { std::cell::RefCell::new(None) };
}

/// Drop glue that enters a mutation scope with a mutator of its thread. A sweep runs it: in
/// verify mode inside the mark-termination pause, which the scope's entry would wait for.
struct EntersScope(Arc<AtomicBool>);
impl Drop for EntersScope {
    fn drop(&mut self) {
        THREAD_MUTATOR.with(|m| {
            if let Ok(mut m) = m.try_borrow_mut()
                && let Some(m) = m.as_mut()
            {
                m.mutate(|mc, _| {
                    Gc::new(mc, 0u64);
                });
                self.0.store(true, Ordering::SeqCst);
            }
        });
    }
}

#[derive(Trace)]
struct HasEntersScope {
    #[gc(skip)]
    #[allow(dead_code)]
    e: EntersScope,
    #[gc(skip)]
    _pad: [u64; 60],
}

fn scope_from_drop_glue_child() {
    let heap = Heap::new(Config::default()).unwrap();
    THREAD_MUTATOR.with(|m| *m.borrow_mut() = Some(heap.mutator(|_| ())));
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    let entered = Arc::new(AtomicBool::new(false));
    // Garbage in many spans and cycles, so that this thread sweeps some of them itself (lazily,
    // as it allocates spans while the background sweeper is behind, and in `collect()`, which
    // finishes the sweep) and runs their drop glue, which finds the thread's other mutator
    // (the collector thread has none).
    for round in 0..400 {
        m.mutate(|mc, _| {
            for _ in 0..4096 {
                Gc::new(
                    mc,
                    HasEntersScope {
                        e: EntersScope(entered.clone()),
                        _pad: [0; 60],
                    },
                );
            }
        });
        if round % 50 == 49 {
            heap.collect();
        }
    }
    eprintln!(
        "drop glue entered a scope: {}",
        entered.load(Ordering::SeqCst)
    );
    std::process::exit(3);
}

/// Drop glue that enters a mutation scope would wait for a pause that waits for the sweep
/// running it (verify mode sweeps inside mark termination): the entry panics, which aborts the
/// process with the reason (never a hang), also where it would not have deadlocked.
#[test]
fn scope_from_drop_glue() {
    if std::env::var_os("ATTACK_CHILD_SCOPE").is_some() {
        scope_from_drop_glue_child();
        return;
    }
    let end = run_child(
        "scope_from_drop_glue",
        "ATTACK_CHILD_SCOPE",
        Duration::from_secs(60),
    );
    assert_eq!(end.signal, Some(6), "expected an abort:\n{}", end.stderr);
    assert!(
        end.stderr
            .contains("a mutation scope entered called from drop glue run by the sweeper"),
        "the report does not say why:\n{}",
        end.stderr
    );
}

// ---- A panic in `Trace` on a stop-the-world parallel mark helper: the collector waits for the
// helpers with the world stopped, so the helper's panic must abort the process, not hang it.

struct PanicsWhenTraced;

static ARMED: AtomicBool = AtomicBool::new(false);

// SAFETY: no pointers; `trace` only panics.
unsafe impl Trace for PanicsWhenTraced {
    fn trace(&self, _: &mut gc_core::Tracer) {
        // Only on a parallel mark helper (a user `Trace` that panics depending on thread-local
        // state, say); on the collector thread the panic is caught and aborts.
        if ARMED.load(Ordering::Relaxed)
            && std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("gc-core mark worker"))
        {
            panic!("a Trace implementation panicked");
        }
    }
}

fn stw_helper_panic_child() {
    let heap = Heap::new(Config::default().concurrent(false).mark_workers(4)).unwrap();
    let mut m: Mutator<
        Rootable!['gc => GcVec<'gc, Option<Gc<'gc, Vec<Gc<'gc, PanicsWhenTraced>>>>>],
    > = heap.mutator(|mc| GcVec::new(mc));
    m.mutate(|mc, r| {
        for _ in 0..256 {
            let v = (0..400).map(|_| Gc::new(mc, PanicsWhenTraced)).collect();
            r.push(mc, Some(Gc::new(mc, v)));
        }
    });
    ARMED.store(true, Ordering::Relaxed);
    // Until a helper takes some of the marking (which one takes what is timing: on a busy
    // machine the collector thread may mark a whole heap alone, so a fixed count of
    // collections was not always enough), for at most 20 s (the parent waits 30).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        heap.collect();
    }
    eprintln!("collect returned");
    std::process::exit(3);
}

#[test]
fn panic_in_trace_on_a_stw_mark_helper() {
    if std::env::var_os("ATTACK_CHILD").is_some() {
        stw_helper_panic_child();
        return;
    }
    for _ in 0..4 {
        let end = run_child(
            "panic_in_trace_on_a_stw_mark_helper",
            "ATTACK_CHILD",
            Duration::from_secs(30),
        );
        assert_eq!(end.signal, Some(6), "expected an abort:\n{}", end.stderr);
        assert!(
            end.stderr.contains("a mark worker panicked"),
            "the report does not say what happened:\n{}",
            end.stderr
        );
    }
}

// ---- Deterministic: everything that may happen inside a held weak-clearing window.

fn state(id: u64) -> u8 {
    table()[id as usize].load(Ordering::SeqCst)
}

/// With the window held open: allocate in every size (fresh spans), make weak references to
/// new objects (in fresh spans, unmarked: alive), drop a mutator whose cache holds fresh spans
/// (they go to the partial lists in the window), call `finish_sweep` from another thread
/// (must wait), upgrade weak references to garbage (must fail) and to survivors (must
/// succeed). After the window: exactly the cycle's garbage is freed, the window's objects are
/// intact, the partial spans the dropped mutator left are usable, and the next cycles free the
/// rest.
#[test]
fn everything_inside_a_held_window() {
    within(60, "held window", || {
        let heap = Heap::new(Config::default().gc_percent(None)).unwrap();
        let mut a: Mutator<RootM> = heap.mutator(|mc| new_root(mc));
        // Before the cycle: garbage (weakly referenced) and survivors (held), every size.
        let before: Vec<Entry> =
            a.mutate(|mc, r| (0..48).map(|k| make_entry(mc, r, k, k % 2 == 0)).collect());
        heap.debug_hold_weak_clearing(true);
        heap.debug_start_cycle();
        let t0 = Instant::now();
        while !heap.debug_weaks_pending() {
            assert!(t0.elapsed() < Duration::from_secs(10), "no STW 2");
            std::thread::yield_now();
        }
        let freed0 = heap.stats().objects_freed;
        // A mutator made and dropped in the window, its cache full of fresh spans.
        let b_ids: Vec<u64> = {
            let mut b: Mutator<RootM> = heap.mutator(|mc| new_root(mc));
            let ids = b.mutate(|mc, r| (0..48).map(|k| make_entry(mc, r, k, true).id).collect());
            drop(b);
            ids
        };
        // finish_sweep from another thread must wait.
        let (done, sweeper) = common::finish_sweep_on_a_thread(&heap);
        // Allocation, weak references and upgrades in the window.
        let (window, dead_is_dead) = a.mutate(|mc, r| {
            let window: Vec<Entry> = (0..48).map(|k| make_entry(mc, r, k, false)).collect();
            for e in &window {
                assert!(
                    upgrade_entry(mc, r, *e, || (), false, "window"),
                    "a window object's weak reference is dead"
                );
            }
            let mut dead_is_dead = Vec::new();
            for e in &before {
                let got = upgrade_entry(mc, r, *e, || (), false, "before");
                assert_eq!(
                    got, e.held,
                    "upgrade in the window disagrees with marking (entry {})",
                    e.id
                );
                if !e.held {
                    let w_dead = match e.kind {
                        0 => r.ws.get(e.idx).flatten().unwrap().is_dead(),
                        1 => r.wm.get(e.idx).flatten().unwrap().is_dead(),
                        _ => r.wl.get(e.idx).flatten().unwrap().is_dead(),
                    };
                    dead_is_dead.push(w_dead);
                }
            }
            (window, dead_is_dead)
        });
        std::thread::sleep(Duration::from_millis(50));
        let in_window_done = done.load(Ordering::SeqCst);
        let in_window_freed = heap.stats().objects_freed - freed0;
        heap.debug_hold_weak_clearing(false);
        sweeper.join().unwrap();
        heap.finish_sweep();
        assert!(!in_window_done, "finish_sweep returned inside the window");
        assert_eq!(in_window_freed, 0, "freed inside the window");
        eprintln!(
            "is_dead() of dead-but-not-yet-cleared weak references inside the window: {:?}",
            dead_is_dead.iter().filter(|&&d| d).count()
        );
        for e in &before {
            assert_eq!(
                state(e.id),
                if e.held { 1 } else { 2 },
                "object {} (held {})",
                e.id,
                e.held
            );
        }
        for e in &window {
            assert_eq!(state(e.id), 1, "a window object was freed");
        }
        for &id in &b_ids {
            assert_eq!(
                state(id),
                1,
                "an object of the dropped mutator was freed by this sweep"
            );
        }
        // Allocate enough to take the partial spans the dropped mutator left.
        a.mutate(|mc, r| {
            for k in 0..400 {
                make_entry(mc, r, k, false);
            }
            check_strong(r, "after the window");
            for e in &window {
                assert!(upgrade_entry(mc, r, *e, || (), false, "window, after"));
            }
        });
        heap.collect();
        heap.collect();
        for &id in &b_ids {
            assert_eq!(state(id), 2, "the dropped mutator's objects were not freed");
        }
        for e in &window {
            assert_eq!(state(e.id), 2, "window garbage not freed");
        }
        a.mutate(|_, r| check_strong(r, "end"));
        assert_eq!(BAD_DROPS.load(Ordering::SeqCst), 0);
    });
}

// ---- A `Drop` that panics while the sweep runs it: the sweep cannot unwind half done, so the
// process aborts, naming the type (as `docs/api.md` says).

#[derive(Trace)]
#[gc(unsafe_drop)]
struct BoomOnDrop(u64);

// SAFETY: `BoomOnDrop` holds no GC handle.
unsafe impl gc_core::UnsafeDrop for BoomOnDrop {}

impl Drop for BoomOnDrop {
    fn drop(&mut self) {
        panic!("BoomOnDrop {}", self.0);
    }
}

fn panicking_drop_child(verify: bool) {
    let heap = Heap::new(Config::default().verify(verify)).unwrap();
    let mut m: Mutator<Rootable!['gc => ()]> = heap.mutator(|_| ());
    m.mutate(|mc, _| {
        Gc::new(mc, BoomOnDrop(7));
    });
    m.collect();
    eprintln!("the drop glue's panic was not seen");
    std::process::exit(3);
}

/// A `Drop` that panics during a sweep aborts the process with a report naming the type, with
/// verify mode on (the sweep inside the pause) and off.
#[test]
fn a_panicking_drop_during_a_sweep_aborts_naming_the_type() {
    for (var, verify) in [
        ("ATTACK_CHILD_BOOM", false),
        ("ATTACK_CHILD_BOOM_VERIFY", true),
    ] {
        if std::env::var_os(var).is_some() {
            panicking_drop_child(verify);
            return;
        }
    }
    for (var, _) in [
        ("ATTACK_CHILD_BOOM", false),
        ("ATTACK_CHILD_BOOM_VERIFY", true),
    ] {
        let end = run_child(
            "a_panicking_drop_during_a_sweep_aborts_naming_the_type",
            var,
            Duration::from_secs(60),
        );
        assert_eq!(
            end.signal,
            Some(6),
            "{var}: expected an abort:\n{}",
            end.stderr
        );
        assert!(
            end.stderr.contains("drop glue of a `")
                && end.stderr.contains("BoomOnDrop` panicked during sweeping"),
            "{var}: the report does not name the type:\n{}",
            end.stderr
        );
    }
}
