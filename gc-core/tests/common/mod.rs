//! Helpers shared by the behaviour tests (each test file includes what it uses).

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gc_core::Heap;

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

/// Start a cycle with the background marker held, and wait until its mark phase runs.
/// `marking` runs a scope of a mutator of the heap and says whether it saw marking.
pub fn start_held_cycle(heap: &Heap, mut marking: impl FnMut() -> bool) {
    heap.debug_hold_marking(true);
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
