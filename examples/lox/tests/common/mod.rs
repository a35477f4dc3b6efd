//! Shared helpers for the `lox` integration tests.
//!
//! - [`test_data_dir`]: where the *Crafting Interpreters* test suite ([`suite_dir`],
//!   [`suite_files`]) and the reference `clox` ([`clox`]) are read from: `$LOX_TEST_DATA`, or
//!   the test-data directory checked out beside the workspace.
//! - [`lox_bin`]: the binary under test: `$LOX_BIN` when set (e.g. the reference `clox`),
//!   otherwise the `lox` binary Cargo built for this package.
//! - [`Expectations::parse`]: reads the `// expect: …`, `// Error …`, `// [line N] Error …`,
//!   `// [c line N] Error …` and `// expect runtime error: …` comments of a test program,
//!   following the rules of the suite's README and of the book's own runner (`tool/test.py`).
//! - [`run_lox`]: runs the binary with a wall-clock limit (killing it on expiry), capturing
//!   stdout, stderr and how it ended.
//! - [`Expectations::check`]: compares a run with the expectations and returns one
//!   human-readable line per mismatch (empty = pass).
//! - [`par_map`]: runs a closure over a slice on a few threads (the CI machines have 2 cores).

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Exit code of a program with a compile error (sysexits `EX_DATAERR`).
pub const EXIT_COMPILE_ERROR: i32 = 65;
/// Exit code of a program that stopped on a runtime error (sysexits `EX_SOFTWARE`).
pub const EXIT_RUNTIME_ERROR: i32 = 70;
/// Exit code for bad command-line usage (sysexits `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;
/// Exit code when the source file cannot be read (sysexits `EX_IOERR`).
pub const EXIT_IO_ERROR: i32 = 74;

/// Default wall-clock limit for one run of a suite program.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this much of each output stream is kept (the rest is read and dropped), so that a
/// runaway program printing in a loop cannot exhaust the test's memory.
const CAPTURE_LIMIT: usize = 4 << 20;

/// The workspace root (`examples/lox/../..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test data: the book's suite in `test/`, the reference `clox` in `bin/clox`.
/// `$LOX_TEST_DATA` when set, else the test-data directory beside the workspace root.
pub fn test_data_dir() -> PathBuf {
    std::env::var_os("LOX_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/lox"))
}

/// The suite directory (`test/` of [`test_data_dir`]).
pub fn suite_dir() -> PathBuf {
    test_data_dir().join("test")
}

/// The reference `clox` binary of the test data; `None` (the comparisons skipped) only where
/// `LOX_NO_CLOX` is set, a panic otherwise.
pub fn clox() -> Option<PathBuf> {
    let path = test_data_dir().join("bin/clox");
    if path.is_file() {
        return Some(path);
    }
    // Without it the comparisons would pass having compared nothing: only when asked.
    assert!(
        std::env::var_os("LOX_NO_CLOX").is_some(),
        "no reference clox at {}: put it there (LOX_TEST_DATA names the directory), or set \
         LOX_NO_CLOX=1 to skip the comparisons with it",
        path.display()
    );
    None
}

/// Every `.lox` file under the suite directory, recursively, in sorted order.
pub fn suite_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read suite directory {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("suite directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension() == Some(OsStr::new("lox")) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&suite_dir(), &mut files);
    files.sort();
    files
}

/// A suite path relative to the suite directory, for messages (`closure/nested_closure.lox`).
pub fn suite_name(path: &Path) -> String {
    let dir = suite_dir();
    path.strip_prefix(&dir)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The binary under test: `$LOX_BIN` if set, else the `lox` binary of this package.
pub fn lox_bin() -> PathBuf {
    match std::env::var_os("LOX_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_lox")),
    }
}

/// A scratch directory for files the tests write (`target/tmp/<name>`), created if needed.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// What a suite program says it must do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The exact lines of stdout, in order.
    pub output: Vec<String>,
    /// The exact lines of stderr for a compile error (`[line N] Error…`), in order.
    pub compile_errors: Vec<String>,
    /// The first stderr line of a runtime error and the source line it must be reported at.
    pub runtime_error: Option<(String, usize)>,
}

impl Expectations {
    /// Parses the expectation comments of a test program; `None` for a `// nontest` file.
    ///
    /// The matching mirrors the book's runner: on each line the first of these that matches
    /// wins: `// expect: TEXT`, `// Error…`, `// [(c |java )?line N] Error…`,
    /// `// expect runtime error: MESSAGE`. Line numbers start at 1.
    pub fn parse(source: &str) -> Option<Expectations> {
        let mut exp = Expectations::default();
        for (index, line) in source.split('\n').enumerate() {
            let line_no = index + 1;
            if line.contains("// nontest") {
                return None;
            }
            if let Some(rest) = after(line, "// expect:") {
                exp.output
                    .push(rest.strip_prefix(' ').unwrap_or(rest).to_string());
                continue;
            }
            if let Some(at) = line.find("// Error") {
                exp.compile_errors
                    .push(format!("[line {line_no}] {}", &line[at + 3..]));
                continue;
            }
            if let Some((flavour, n, error)) = error_line(line) {
                if flavour != Some("java") {
                    exp.compile_errors.push(format!("[line {n}] {error}"));
                }
                continue;
            }
            match after(line, "// expect runtime error: ") {
                Some(message) if !message.is_empty() => {
                    exp.runtime_error = Some((message.to_string(), line_no));
                }
                _ => {}
            }
        }
        assert!(
            exp.compile_errors.is_empty() || exp.runtime_error.is_none(),
            "a test cannot expect both compile and runtime errors"
        );
        Some(exp)
    }

    /// Reads and parses a test program; `None` for a `// nontest` file.
    pub fn from_file(path: &Path) -> Option<Expectations> {
        let source = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Expectations::parse(&source)
    }

    /// The exit code the program must end with.
    pub fn exit_code(&self) -> i32 {
        if !self.compile_errors.is_empty() {
            EXIT_COMPILE_ERROR
        } else if self.runtime_error.is_some() {
            EXIT_RUNTIME_ERROR
        } else {
            0
        }
    }

    /// Compares a run with these expectations: one human-readable line per mismatch.
    pub fn check(&self, run: &Run) -> Vec<String> {
        let mut problems = Vec::new();
        if run.timed_out {
            problems.push(format!(
                "timed out after {:.1} s (killed)",
                run.elapsed.as_secs_f64()
            ));
        } else if let Some(signal) = run.signal {
            problems.push(format!("killed by signal {signal}"));
        }
        if let Some(err) = &run.spawn_error {
            problems.push(format!("could not start {}: {err}", lox_bin().display()));
            return problems;
        }
        if !run.timed_out && run.signal.is_none() && run.code != Some(self.exit_code()) {
            problems.push(format!(
                "exit code: expected {}, got {}",
                self.exit_code(),
                describe_code(run.code)
            ));
        }

        compare_lines("stdout", &self.output, &lines(&run.stdout), &mut problems);

        let err_lines = lines(&run.stderr);
        if let Some((message, line_no)) = &self.runtime_error {
            match err_lines.first() {
                None => problems.push(format!(
                    "stderr: expected runtime error `{message}`, got nothing"
                )),
                Some(first) if first != message => problems.push(format!(
                    "stderr line 1: expected runtime error `{message}`, got `{first}`"
                )),
                Some(_) => {
                    let want = format!("[line {line_no}]");
                    match err_lines.get(1) {
                        None => problems.push(format!(
                            "stderr: expected a stack trace starting with `{want}`, got none"
                        )),
                        Some(trace) if !trace.starts_with(&want) => problems.push(format!(
                            "stderr line 2: expected a stack trace line starting with \
                             `{want}`, got `{trace}`"
                        )),
                        Some(_) => {}
                    }
                }
            }
        } else {
            // Compile errors (or none): stderr must hold exactly the expected lines.
            compare_lines("stderr", &self.compile_errors, &err_lines, &mut problems);
        }
        problems
    }
}

/// The text after the first occurrence of `marker` in `line`.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|at| &line[at + marker.len()..])
}

/// Matches `// [(c |java )?line N] Error…` anywhere in `line`: (flavour, N, "Error…").
fn error_line(line: &str) -> Option<(Option<&str>, usize, &str)> {
    let mut from = 0;
    while let Some(at) = line[from..].find("// [") {
        let start = from + at;
        from = start + 1;
        let mut rest = &line[start + 4..];
        let mut flavour = None;
        for name in ["c ", "java "] {
            if let Some(r) = rest.strip_prefix(name) {
                flavour = Some(name.trim_end());
                rest = r;
            }
        }
        let Some(rest) = rest.strip_prefix("line ") else {
            continue;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(n) = rest[..digits].parse::<usize>() else {
            continue;
        };
        let Some(error) = rest[digits..].strip_prefix("] ") else {
            continue;
        };
        if error.starts_with("Error") {
            return Some((flavour, n, error));
        }
    }
    None
}

/// Splits captured output into lines, dropping the empty piece after a final newline.
pub fn lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// Reports how `got` differs from `want` line by line (at most a few lines, then a count).
fn compare_lines(stream: &str, want: &[String], got: &[String], problems: &mut Vec<String>) {
    const SHOWN: usize = 6;
    let mut shown = 0;
    let mut hidden = 0;
    for i in 0..want.len().max(got.len()) {
        let problem = match (want.get(i), got.get(i)) {
            (Some(w), Some(g)) if w == g => continue,
            (Some(w), Some(g)) => format!("{stream} line {}: expected `{w}`, got `{g}`", i + 1),
            (Some(w), None) => format!("{stream} line {}: missing, expected `{w}`", i + 1),
            (None, Some(g)) => format!("{stream} line {}: unexpected `{g}`", i + 1),
            (None, None) => unreachable!(),
        };
        if shown < SHOWN {
            problems.push(problem);
            shown += 1;
        } else {
            hidden += 1;
        }
    }
    if hidden > 0 {
        problems.push(format!("{stream}: … and {hidden} more differing lines"));
    }
}

/// How a run of the binary ended and what it printed.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    /// The exit code, if the process exited normally.
    pub code: Option<i32>,
    /// The signal that ended the process, if any (Unix).
    pub signal: Option<i32>,
    /// The run hit its time limit and was killed.
    pub timed_out: bool,
    /// Some output beyond [`CAPTURE_LIMIT`] bytes was dropped.
    pub truncated: bool,
    /// The process could not be started.
    pub spawn_error: Option<String>,
    pub elapsed: Duration,
}

impl Run {
    /// One line saying how the run ended, for messages.
    pub fn outcome(&self) -> String {
        if let Some(err) = &self.spawn_error {
            format!("could not start: {err}")
        } else if self.timed_out {
            format!("timed out after {:.1} s", self.elapsed.as_secs_f64())
        } else if let Some(signal) = self.signal {
            format!("killed by signal {signal}")
        } else {
            format!("exit code {}", describe_code(self.code))
        }
    }

    /// The first `n` lines of stderr, for messages.
    pub fn stderr_head(&self, n: usize) -> String {
        let mut out = String::new();
        for line in self.stderr.lines().take(n) {
            let _ = writeln!(out, "    | {line}");
        }
        out
    }
}

fn describe_code(code: Option<i32>) -> String {
    code.map_or_else(|| "none".to_string(), |c| c.to_string())
}

/// Runs the binary under test with `args` and extra environment `env`, stdin closed, killing
/// it after `timeout`.
pub fn run_lox<A: AsRef<OsStr>>(args: &[A], env: &[(&str, &str)], timeout: Duration) -> Run {
    run_binary(&lox_bin(), args, env, timeout)
}

/// Runs `binary` with `args` and extra environment `env`, stdin closed, killing it after
/// `timeout`.
pub fn run_binary<A: AsRef<OsStr>>(
    binary: &Path,
    args: &[A],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Run {
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    run_command(command, timeout)
}

/// Like [`run_lox`], with the process's address space capped at `max_kib` KiB (`ulimit -v`,
/// through `/bin/sh`), so that a binary that runs away with memory fails alone (its
/// allocation fails, it aborts) instead of exhausting the machine. The gc-core heap reserves
/// its whole arena up front (64 GiB by default), so callers also set `GCCORE_ARENA` well
/// below the cap.
pub fn run_lox_capped<A: AsRef<OsStr>>(
    args: &[A],
    env: &[(&str, &str)],
    timeout: Duration,
    max_kib: u64,
) -> Run {
    let script = format!("ulimit -v {max_kib} && exec \"$0\" \"$@\"");
    let bin = lox_bin();
    let mut all: Vec<&OsStr> = vec![OsStr::new("-c"), OsStr::new(&script), bin.as_os_str()];
    all.extend(args.iter().map(AsRef::as_ref));
    run_binary(Path::new("/bin/sh"), &all, env, timeout)
}

/// Runs the binary on one program file, with `flags` before the path.
pub fn run_file(flags: &[&str], path: &Path, env: &[(&str, &str)], timeout: Duration) -> Run {
    let mut args: Vec<OsString> = flags.iter().map(OsString::from).collect();
    args.push(path.as_os_str().to_owned());
    run_lox(&args, env, timeout)
}

fn run_command(mut command: Command, timeout: Duration) -> Run {
    let start = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Run {
                spawn_error: Some(e.to_string()),
                ..Run::default()
            };
        }
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || read_capped(stdout));
    let err_reader = std::thread::spawn(move || read_capped(stderr));

    let deadline = start + timeout;
    let mut pause = Duration::from_millis(1);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait for killed child");
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => panic!("waiting for the lox process failed: {e}"),
        }
    };
    let elapsed = start.elapsed();
    let (stdout, out_truncated) = out_reader.join().expect("stdout reader");
    let (stderr, err_truncated) = err_reader.join().expect("stderr reader");

    #[cfg(unix)]
    let signal = {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    };
    #[cfg(not(unix))]
    let signal = None;

    Run {
        stdout,
        stderr,
        code: status.code(),
        signal: if timed_out { None } else { signal },
        timed_out,
        truncated: out_truncated || err_truncated,
        spawn_error: None,
        elapsed,
    }
}

/// Reads a stream to its end, keeping at most [`CAPTURE_LIMIT`] bytes.
fn read_capped(mut stream: impl Read) -> (String, bool) {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut truncated = false;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = CAPTURE_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), truncated)
}

/// Maps `f` over `items` on `threads` threads, keeping the order of `items`.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    results.lock().unwrap()[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

/// How many threads the tests run programs on: `$LOX_TEST_THREADS`, else 2.
pub fn test_threads() -> usize {
    std::env::var("LOX_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}
