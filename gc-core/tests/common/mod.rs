//! Helpers shared by the behaviour tests (each test file includes what it uses).

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gc_core::{Heap, Mutation};

/// Run `f` on a thread; fail if it has not finished within `secs` (the thread is leaked), so a
/// deadlock fails the test instead of hanging the run.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => std::panic::resume_unwind(e),
        Err(_) => panic!("{what}: no progress in {secs} s (deadlock)"),
    }
}

/// A thread spinning on the CPU until `stop` is set: the other threads then lose their CPU in
/// the middle of protocol steps, which widens race windows.
pub fn cpu_hog(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut x = 1u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
    })
}

/// A thread calling `Heap::finish_sweep` in a loop until `stop` is set (a sweeper racing the
/// collector's and the mutators' own).
pub fn finish_sweep_loop(heap: &Heap, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let heap = heap.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            heap.finish_sweep();
            std::thread::yield_now();
        }
    })
}

/// `Heap::finish_sweep` on another thread; the flag is set when it has returned.
pub fn finish_sweep_on_a_thread(heap: &Heap) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let (heap, d) = (heap.clone(), done.clone());
    let t = std::thread::spawn(move || {
        heap.finish_sweep();
        d.store(true, Ordering::SeqCst);
    });
    (done, t)
}

/// Join every thread, then run `then` (stop the helpers the threads needed), then re-raise the
/// first panic: a failure does not leave helpers running.
pub fn join_then<T>(threads: Vec<std::thread::JoinHandle<T>>, then: impl FnOnce()) -> Vec<T> {
    let results: Vec<_> = threads.into_iter().map(|t| t.join()).collect();
    then();
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect()
}

/// How a child process ended.
pub struct ChildEnd {
    /// The signal that ended it (6 is `SIGABRT`), if any.
    pub signal: Option<i32>,
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// All it wrote on stderr.
    pub stderr: String,
}

/// Run this test binary's test `test` in a child process with `env_var=1` (the test does the
/// child's part when it sees it) and wait for it to end; fail if it runs past `timeout` (hung).
pub fn run_child(test: &str, env_var: &str, timeout: Duration) -> ChildEnd {
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(env_var, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr while the child runs: a report longer than the pipe's buffer would otherwise
    // block the child.
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{test}: the child process hung; stderr:\n{}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ChildEnd {
        signal: status.signal(),
        code: status.code(),
        stderr: reader.join().unwrap_or_default(),
    }
}

/// Start a cycle with the background marker and mark assists held, and wait until its mark
/// phase runs. `marking` runs a scope of a mutator of the heap and says whether it saw
/// marking. Nothing is marked beyond the roots' shading until [`release_held`] (or, in a test
/// of assists, `debug_hold_assists(false)`).
pub fn start_held_cycle(heap: &Heap, mut marking: impl FnMut() -> bool) {
    heap.debug_hold_marking(true);
    heap.debug_hold_assists(true);
    heap.debug_start_cycle();
    let t = Instant::now();
    while !marking() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the cycle did not start"
        );
        std::thread::yield_now();
    }
}

/// Let a held cycle go on ([`start_held_cycle`]), first checking that no mark assist has marked
/// anything on this heap (so none while the cycle was held; a test that assisted before it
/// releases the two holds itself): the tests that hold marking leave objects white on purpose (to
/// move them behind the marker's back, or to see what a barrier or a pause marks), and an
/// assist that had marked them would let such a test pass without checking what it is about.
pub fn release_held(heap: &Heap) {
    assert_eq!(
        heap.stats().assist_bytes,
        0,
        "a mark assist marked while marking was held: the test no longer checks its moves"
    );
    heap.debug_hold_assists(false);
    heap.debug_hold_marking(false);
}

/// The handshake of a test in which one thread's scope blocks (`Mutation::blocking`) while the
/// test drives a cycle around it: the scope's thread keeps the [`BlockedScope`], the test the
/// [`ScopeDriver`]. The usual order: the scope calls [`BlockedScope::block`]; the driver
/// [`wait_blocked`](ScopeDriver::wait_blocked)s, starts a cycle, [`release`](ScopeDriver::release)s
/// the scope and [`wait_finished`](ScopeDriver::wait_finished)s for its end; the scope's thread
/// calls [`finished`](BlockedScope::finished) after the scope, and checks its heap once the driver
/// [`let_check`](ScopeDriver::let_check)s (after the collections the test wants in between).
pub fn blocked_scope() -> (BlockedScope, ScopeDriver) {
    let (blocked_tx, blocked) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let (check, check_rx) = mpsc::channel();
    (
        BlockedScope {
            blocked: blocked_tx,
            go: Some(go_rx),
            done: done_tx,
            check: check_rx,
        },
        ScopeDriver {
            blocked,
            go,
            done,
            check,
        },
    )
}

/// The blocking thread's half of [`blocked_scope`].
pub struct BlockedScope {
    blocked: mpsc::Sender<()>,
    go: Option<mpsc::Receiver<()>>,
    done: mpsc::Sender<()>,
    check: mpsc::Receiver<()>,
}

impl BlockedScope {
    /// Tell the driver that this scope blocks, leave the managed state (`mc.blocking`) until the
    /// driver releases it (at most 60 s), and run `then` still inside the blocking region (where
    /// a test writes through `&mut`s borrowed before the block). Once per scope.
    pub fn block<R: Send>(&mut self, mc: &Mutation<'_>, then: impl FnOnce() -> R + Send) -> R {
        // `go` is moved into the region: a `Receiver` is `Send` but not `Sync`.
        let go = self.go.take().expect("the scope blocks once");
        self.blocked.send(()).unwrap();
        mc.blocking(move || {
            go.recv_timeout(Duration::from_secs(60))
                .expect("never released");
            then()
        })
    }

    /// After the scope: tell the driver it ended, and wait until the driver lets this thread
    /// check its heap.
    pub fn finished(&self) {
        self.done.send(()).unwrap();
        self.check.recv().unwrap();
    }
}

/// The test's half of [`blocked_scope`].
pub struct ScopeDriver {
    blocked: mpsc::Receiver<()>,
    go: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
    check: mpsc::Sender<()>,
}

impl ScopeDriver {
    /// Wait until the scope is about to block.
    pub fn wait_blocked(&self) {
        self.blocked.recv().unwrap();
    }

    /// Let the blocked scope go on.
    pub fn release(&self) {
        self.go.send(()).unwrap();
    }

    /// Wait until the scope has ended ([`BlockedScope::finished`]).
    pub fn wait_finished(&self) {
        self.done.recv().unwrap();
    }

    /// Let the scope's thread check its heap.
    pub fn let_check(&self) {
        self.check.send(()).unwrap();
    }
}

/// Start a cycle and wait until it is between STW 2 and the clearing of dead weak references
/// (the weak-clearing window), holding it there (release with `debug_hold_weak_clearing(false)`).
pub fn hold_before_weak_clearing(heap: &Heap) {
    heap.debug_hold_weak_clearing(true);
    heap.debug_start_cycle();
    let t = Instant::now();
    while !heap.debug_weaks_pending() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the cycle did not reach STW 2"
        );
        std::thread::yield_now();
    }
}

/// The (verify mode, span-local marking) settings every concurrency test runs under: verify
/// mode changes the protocol (it sweeps and clears weak references inside the pause), and
/// span-local marking changes how grey objects are kept (`Config::span_marking`).
#[allow(dead_code)]
pub const MODES: [(bool, bool); 4] = [(true, false), (false, false), (true, true), (false, true)];

/// The pacer trace a heap wrote to `path` (read, then removed): its header's column names and
/// each row's fields.
pub fn take_pacer_trace(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::remove_file(path).ok();
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    let header = lines.next().expect("a header line");
    (header, lines.collect())
}
