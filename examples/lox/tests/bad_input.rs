//! The `lox` binary on hostile input and resource exhaustion: each must end with the
//! documented exit code and message, never a crash or a Rust panic.
//!
//! - a malformed program: exit 65, exactly the compile errors on stderr, nothing run;
//! - unbounded recursion: exit 70, `Stack overflow.` and a stack trace;
//! - 10 000 levels of non-tail recursion: either the right answer or `Stack overflow.`;
//! - a string doubled 40 times in a 256 MiB heap (`GCCORE_ARENA`), and an endlessly growing
//!   linked list of instances in a 64 MiB heap or under `GOMEMLIMIT=32MiB`: exit 70 with the
//!   runtime error
//!   `Out of memory.` (the VM's policy for an allocation the heap cannot satisfy); these run
//!   under `ulimit -v` (8 GiB) so that a binary ignoring the limit cannot take the machine down;
//! - a missing source file: exit 74 with a message; a source that is not UTF-8: exit 65 or
//!   74 with a message;
//! - too many command-line arguments, an unknown flag, a bad `--gc-stress` count: exit 64 with a
//!   usage message; `--help`: the usage on stdout, exit 0;
//! - `--gc-stats`: collector figures (`gc_cycles=`) on stderr at exit, stdout unchanged;
//! - printing into a pipe whose reader has closed: exit 141, as when SIGPIPE ends clox; into a
//!   full disk: exit 74 with a message, also for output still buffered at the end.
//!
//! `LOX_BIN` selects another binary (see `common/mod.rs`).

mod common;

use common::{
    EXIT_COMPILE_ERROR, EXIT_IO_ERROR, EXIT_RUNTIME_ERROR, EXIT_USAGE, Run, lines, run_file,
    run_lox, scratch_dir,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
/// The out-of-memory programs may fill the whole heap first; a debug build is slow at that.
const OOM_TIMEOUT: Duration = Duration::from_secs(180);

/// Writes `source` to `target/tmp/lox-bad-input/NAME.lox`.
fn program(name: &str, source: impl AsRef<[u8]>) -> PathBuf {
    let path = scratch_dir("lox-bad-input").join(format!("{name}.lox"));
    std::fs::write(&path, source).expect("write test program");
    path
}

/// Everything about a run, for assertion messages.
fn describe(run: &Run) -> String {
    format!(
        "{}\n--- stdout ({} bytes) ---\n{}\n--- stderr ---\n{}",
        run.outcome(),
        run.stdout.len(),
        run.stdout.chars().take(2000).collect::<String>(),
        run.stderr.chars().take(4000).collect::<String>(),
    )
}

/// The run ended by exiting (no signal, no timeout) without a Rust panic.
fn assert_no_crash(run: &Run) {
    assert!(
        run.spawn_error.is_none() && !run.timed_out && run.signal.is_none(),
        "the binary did not exit normally: {}",
        describe(run)
    );
    assert!(
        run.code != Some(101)
            && !run.stderr.contains("panicked")
            && !run.stderr.contains("RUST_BACKTRACE"),
        "the binary panicked: {}",
        describe(run)
    );
}

fn assert_exit(run: &Run, code: i32) {
    assert_no_crash(run);
    assert_eq!(run.code, Some(code), "wrong exit code: {}", describe(run));
}

/// Runs the program with `env` and its address space capped at 8 GiB (see
/// [`common::run_lox_capped`]): ample for a heap of a few hundred MiB and its side tables.
fn run_capped(path: &Path, env: &[(&str, &str)]) -> Run {
    common::run_lox_capped(&[path], env, OOM_TIMEOUT, 8 << 20)
}

fn first_stderr_line(run: &Run) -> &str {
    run.stderr.lines().next().unwrap_or("")
}

#[test]
fn malformed_program_reports_compile_errors() {
    let path = program(
        "malformed",
        "print \"before\";\nvar x = 1 +;\nprint x\nprint \"after\";\n",
    );
    let run = run_file(&[], &path, &[], TIMEOUT);
    assert_exit(&run, EXIT_COMPILE_ERROR);
    assert_eq!(
        lines(&run.stderr),
        [
            "[line 2] Error at ';': Expect expression.",
            "[line 4] Error at 'print': Expect ';' after value.",
        ],
        "{}",
        describe(&run)
    );
    assert_eq!(run.stdout, "", "a program with compile errors must not run");
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    let path = program("unbounded_recursion", "fun f() { f(); }\nf();\n");
    let run = run_file(&[], &path, &[], TIMEOUT);
    assert_exit(&run, EXIT_RUNTIME_ERROR);
    assert_eq!(
        first_stderr_line(&run),
        "Stack overflow.",
        "{}",
        describe(&run)
    );
    let trace = lines(&run.stderr);
    assert!(
        trace.get(1).is_some_and(|l| l.starts_with("[line 1]")),
        "expected a stack trace after the message: {}",
        describe(&run)
    );
}

/// The same through method invocations (their fast path had its own depth check), under the
/// memory cap: without the check the stack grows until memory runs out.
#[test]
fn unbounded_method_recursion_is_a_stack_overflow() {
    let path = program(
        "unbounded_method_recursion",
        "class A {\n  m() { return this.m(); }\n}\nA().m();\n",
    );
    let run = run_capped(&path, &[("GCCORE_ARENA", "256MiB")]);
    assert_exit(&run, EXIT_RUNTIME_ERROR);
    assert_eq!(
        first_stderr_line(&run),
        "Stack overflow.",
        "{}",
        describe(&run)
    );
    assert!(
        lines(&run.stderr)
            .get(1)
            .is_some_and(|l| l.starts_with("[line 2]")),
        "{}",
        describe(&run)
    );
}

#[test]
fn deep_non_tail_recursion_ends_cleanly() {
    // The VM may have room for 10 000 frames or not; either way the outcome must be a Lox
    // outcome: the right sum, or the runtime error `Stack overflow.`.
    let path = program(
        "deep_recursion",
        "fun f(n) { if (n == 0) return 0; return 1 + f(n - 1); }\nprint f(10000);\n",
    );
    let run = run_file(&[], &path, &[], TIMEOUT);
    assert_no_crash(&run);
    match run.code {
        Some(0) => assert_eq!(run.stdout, "10000\n", "{}", describe(&run)),
        Some(EXIT_RUNTIME_ERROR) => {
            assert_eq!(
                first_stderr_line(&run),
                "Stack overflow.",
                "{}",
                describe(&run)
            )
        }
        _ => panic!("expected exit 0 or 70: {}", describe(&run)),
    }
}

#[test]
fn huge_string_runs_out_of_memory() {
    // 2 × 2^40 bytes: far beyond the 256 MiB heap, in 40 doublings.
    let path = program(
        "huge_string",
        "var s = \"ab\";\nfor (var i = 0; i < 40; i = i + 1) s = s + s;\nprint s;\n",
    );
    let run = run_capped(&path, &[("GCCORE_ARENA", "256MiB")]);
    assert_exit(&run, EXIT_RUNTIME_ERROR);
    assert!(
        first_stderr_line(&run).contains("Out of memory"),
        "expected `Out of memory.`: {}",
        describe(&run)
    );
    assert_eq!(run.stdout, "", "{}", describe(&run));
}

#[test]
fn garbage_only_loop_runs_in_an_arena_smaller_than_the_first_trigger() {
    // The arena (2 MiB) fills before the heap reaches its first trigger (4 MiB), so no cycle
    // is ever triggered: every fill is an allocation failure, collected and retried. Only the
    // retried instruction's own second failure is final (it ended the run at the second fill).
    let path = program(
        "garbage_small_arena",
        "class N {}\nvar s = 0;\nfor (var i = 0; i < 300000; i = i + 1) { N(); s = s + 1; }\nprint s;\n",
    );
    let run = run_capped(&path, &[("GCCORE_ARENA", "2MiB")]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, "300000\n", "{}", describe(&run));
}

/// The same with the class called through a field (an invocation whose callee is not a
/// method): the rewound instruction must find the receiver where it was.
#[test]
fn garbage_made_through_a_field_holding_a_class_runs_in_a_small_arena() {
    let path = program(
        "garbage_small_arena_field",
        "class N {}\nclass H { init() { this.make = N; } }\nvar h = H();\nvar s = 0;\n\
         for (var i = 0; i < 300000; i = i + 1) { h.make(); s = s + 1; }\nprint s;\n",
    );
    let run = run_capped(&path, &[("GCCORE_ARENA", "2MiB")]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, "300000\n", "{}", describe(&run));
}

/// The documented limit of global names: 65 534 of the program's own (with `clock` and
/// `WeakMap`); one more is a compile error at its name, not a slot shared with `clock`.
#[test]
fn too_many_globals_is_a_compile_error() {
    let mut source = String::new();
    for i in 0..65_535 {
        source.push_str(&format!("var g{i};\n"));
    }
    source.push_str("print clock;\n");
    let path = program("too_many_globals", &source);
    let run = run_file(&[], &path, &[], TIMEOUT);
    assert_exit(&run, EXIT_COMPILE_ERROR);
    assert_eq!(
        lines(&run.stderr),
        ["[line 65535] Error at 'g65534': Too many global variables."],
        "{}",
        describe(&run)
    );
}

/// `--gc-stress=N` collects after every N allocations, not at every poll point once N were
/// made: 1 001 allocations (a class and 1 000 instances), at N = 100, make 10 collections.
#[test]
fn gc_stress_collects_every_n_allocations() {
    let path = program(
        "stress_every_100",
        "class P {}\nfor (var i = 0; i < 1000; i = i + 1) P();\n",
    );
    let run = run_file(&["--gc-stress=100", "--gc-stats"], &path, &[], TIMEOUT);
    assert_exit(&run, 0);
    assert_eq!(
        gc_stat(&run, "stress_collections"),
        10,
        "{}",
        describe(&run)
    );
}

#[test]
fn unbounded_instance_list_runs_out_of_memory() {
    // Every node stays reachable, so no collection can help.
    let path = program(
        "unbounded_list",
        "class N { init(n) { this.next = n; } }\nvar l = nil;\nwhile (true) l = N(l);\n",
    );
    let run = run_capped(&path, &[("GCCORE_ARENA", "64MiB")]);
    assert_exit(&run, EXIT_RUNTIME_ERROR);
    assert!(
        first_stderr_line(&run).contains("Out of memory"),
        "expected `Out of memory.`: {}",
        describe(&run)
    );
}

#[test]
fn unbounded_list_under_a_small_memory_limit_runs_out_of_memory() {
    // The same program under GOMEMLIMIT=32MiB (arena at its default 64 GiB): the soft limit
    // makes the collector work hard, and the VM's live-heap cap (the limit) ends the run.
    an_unbounded_list_ends_at_a_32_mib_cap(
        "unbounded_list_memlimit",
        &[("GOMEMLIMIT", "32MiB"), ("GCCORE_ARENA", "4GiB")],
    );
    // A garbage-only loop under the same limit finishes: the limit caps the live heap, not
    // what is allocated.
    let path = program(
        "garbage_memlimit",
        "class N { init(n) { this.next = n; } }\nvar s = 0;\nfor (var i = 0; i < 300000; i = i + 1) { var l = N(nil); l = N(l); s = s + 1; }\nprint s;\n",
    );
    let run = run_capped(&path, &[("GOMEMLIMIT", "32MiB"), ("GCCORE_ARENA", "4GiB")]);
    assert_exit(&run, 0);
    assert_eq!(run.stdout, "300000\n", "{}", describe(&run));
}

#[test]
fn missing_source_file_is_an_io_error() {
    let path = scratch_dir("lox-bad-input").join("does_not_exist.lox");
    let _ = std::fs::remove_file(&path);
    let run = run_file(&[], &path, &[], TIMEOUT);
    assert_exit(&run, EXIT_IO_ERROR);
    assert!(
        !run.stderr.trim().is_empty(),
        "expected a message: {}",
        describe(&run)
    );
}

#[test]
fn invalid_utf8_source_is_rejected() {
    // Invalid bytes inside a string literal ("café" in Latin-1, a lone continuation byte),
    // where a byte-oriented scanner would not notice them, and outside any token.
    let sources: [(&str, &[u8]); 2] = [
        (
            "invalid_utf8_in_string",
            b"print \"caf\xe9\";\nprint \"\x80\";\n",
        ),
        ("invalid_utf8_in_code", b"print 1;\n\xff\xfe print 2;\n"),
    ];
    for (name, source) in sources {
        let run = run_file(&[], &program(name, source), &[], TIMEOUT);
        assert_no_crash(&run);
        assert!(
            matches!(run.code, Some(EXIT_COMPILE_ERROR | EXIT_IO_ERROR)),
            "{name}: expected exit 65 or 74: {}",
            describe(&run)
        );
        assert!(
            !run.stderr.trim().is_empty(),
            "{name}: expected a message: {}",
            describe(&run)
        );
    }
}

#[test]
fn too_many_arguments_is_a_usage_error() {
    let run = run_lox(&["a.lox", "b.lox"], &[], TIMEOUT);
    assert_exit(&run, EXIT_USAGE);
    let said = format!("{}{}", run.stdout, run.stderr).to_lowercase();
    assert!(
        said.contains("usage"),
        "expected a usage message: {}",
        describe(&run)
    );
}

#[test]
fn an_unknown_flag_is_a_usage_error_and_help_is_not() {
    for args in [
        &["--bogus"][..],
        &["--gc-stress=0", "a.lox"],
        &["--gc-stress=x"],
    ] {
        let run = run_lox(args, &[], TIMEOUT);
        assert_exit(&run, EXIT_USAGE);
        assert!(
            run.stderr.contains("error:") && run.stderr.contains("--help"),
            "{}",
            describe(&run)
        );
    }
    let run = run_lox(&["--help"], &[], TIMEOUT);
    assert_exit(&run, 0);
    assert!(
        run.stdout.contains("Usage: lox") && run.stdout.contains("--gc-stress"),
        "{}",
        describe(&run)
    );
}

#[test]
fn bad_heap_settings_are_a_configuration_error() {
    let path = program("config", "print 1;\n");
    for (var, value) in [
        ("GOGC", "abc"),
        ("GOGC", "-5x"),
        ("GCCORE_ARENA", "12XB"),
        ("GOMEMLIMIT", "12XB"),
        ("GODEBUG", "gctrace=yes"),
    ] {
        let run = run_lox(&[path.as_os_str()], &[(var, value)], TIMEOUT);
        assert_exit(&run, 78);
        assert!(
            run.stderr.contains(var) && run.stdout.is_empty(),
            "expected an error naming {var}: {}",
            describe(&run)
        );
    }
}

#[test]
fn gc_stats_go_to_stderr_and_leave_stdout_alone() {
    // Enough garbage for a few collections in the default heap.
    let path = program(
        "gc_stats",
        "class P { init(x) { this.x = x; } }\n\
         var keep = nil;\n\
         for (var i = 0; i < 200000; i = i + 1) {\n\
           var s = \"item\" + \"-\" + \"x\";\n\
           var p = P(s);\n\
           keep = p;\n\
         }\n\
         print keep.x;\n\
         print \"done\";\n",
    );
    let plain = run_file(&[], &path, &[], TIMEOUT);
    assert_exit(&plain, 0);
    assert_eq!(plain.stdout, "item-x\ndone\n", "{}", describe(&plain));

    let stats = run_file(&["--gc-stats"], &path, &[], TIMEOUT);
    assert_exit(&stats, 0);
    assert_eq!(
        stats.stdout,
        plain.stdout,
        "--gc-stats changed stdout: {}",
        describe(&stats)
    );
    assert!(
        stats.stderr.contains("gc_cycles="),
        "expected collector figures (`gc_cycles=`) on stderr: {}",
        describe(&stats)
    );
}

/// A program that prints for ever into a pipe whose reader has gone ends, as clox does when
/// SIGPIPE kills it, with status 141 and nothing on stderr (before: printing errors were
/// dropped and the program ran on for ever).
#[test]
fn printing_into_a_closed_pipe_ends_the_program() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let path = program(
        "print_forever",
        "var i = 0; while (true) { print i; i = i + 1; }\n",
    );
    let mut child = Command::new(common::lox_bin())
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"0\n1\n");
    // The reading end is closed (dropped above): the next block written fails.
    let status = exit_after_pipe_closed(&mut child);
    assert_eq!(status.code(), Some(141));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err, "");
}

/// Output that cannot be written is an I/O error (exit 74, with a message) also when it is all
/// still buffered at the end of the program (a short program printing to a full disk ended 0
/// with its output lost).
#[test]
fn output_to_a_full_disk_is_an_io_error() {
    use std::process::{Command, Stdio};
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("no /dev/full here: nothing to check");
        return;
    };
    let path = program("print_once", "print \"hello\";\n");
    let out = Command::new(common::lox_bin())
        .arg(&path)
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_IO_ERROR));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("Could not write output:"), "{err}");
}

/// The exit status of `child`, whose stdout reader has gone; killed and failed if it is still
/// running after [`TIMEOUT`].
fn exit_after_pipe_closed(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > TIMEOUT {
            child.kill().unwrap();
            panic!("still running {TIMEOUT:?} after its reader closed the pipe");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The same in the REPL: a line that prints into a closed pipe ends the session with 141 (it
/// reported nothing and read the next line, whose prompt then failed: exit 0, as if the input
/// had ended).
#[test]
fn printing_into_a_closed_pipe_ends_the_repl() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(common::lox_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"var i = 0; while (true) { print i; i = i + 1; }\nprint \"after\";\n")
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !seen.windows(4).any(|w| w == b"0\n1\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the REPL printed {:?} and stopped",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    drop(stdout);
    let status = exit_after_pipe_closed(&mut child);
    drop(stdin);
    assert_eq!(status.code(), Some(141));
}

/// A bound method made while the arena is full is rewound, collected and retried (the
/// instruction must change nothing before it allocates), through a global receiver
/// (GET_PROPERTY), a local one (GET_LOCAL_PROPERTY) and `super` (GET_SUPER): each loop's only
/// allocation is that bound method, so every fill of the 2 MiB arena is its rewind.
#[test]
fn bound_methods_made_in_a_full_arena_are_retried() {
    for (name, src) in [
        (
            "bound_global",
            "class A { m() {} }\nvar a = A();\nvar s = 0;\n\
             for (var i = 0; i < 300000; i = i + 1) { a.m; s = s + 1; }\nprint s;\n",
        ),
        (
            "bound_local",
            "class A { m() {} }\nvar s = 0;\n{\n  var b = A();\n\
             for (var i = 0; i < 300000; i = i + 1) { b.m; var t = 1; s = s + t; }\n}\nprint s;\n",
        ),
        (
            "bound_super",
            "class A { m() {} }\nclass B < A { get() { return super.m; } }\n\
             var b = B();\nvar s = 0;\n\
             for (var i = 0; i < 300000; i = i + 1) { b.get(); s = s + 1; }\nprint s;\n",
        ),
    ] {
        let path = program(name, src);
        let run = run_capped(&path, &[("GCCORE_ARENA", "2MiB")]);
        assert_exit(&run, 0);
        assert_eq!(run.stdout, "300000\n", "{name}: {}", describe(&run));
    }
}

/// `GCCORE_MAX_HEAP` caps the live heap on its own (without `GOMEMLIMIT`): a program that keeps
/// everything reachable ends with "Out of memory." at the cap, having mapped a small multiple
/// of it, not the whole 1 GiB arena.
#[test]
fn gccore_max_heap_caps_the_live_heap_on_its_own() {
    an_unbounded_list_ends_at_a_32_mib_cap(
        "unbounded_list_max_heap",
        &[("GCCORE_MAX_HEAP", "32MiB"), ("GCCORE_ARENA", "1GiB")],
    );
}

/// A program that keeps every node it makes reachable, run with `env` (which sets a 32 MiB
/// live-heap cap one way or another): it ends with "Out of memory." having mapped a small
/// multiple of the cap, not its whole arena.
fn an_unbounded_list_ends_at_a_32_mib_cap(name: &str, env: &[(&str, &str)]) {
    let path = program(
        name,
        "class N { init(n) { this.next = n; } }\nvar l = nil;\nwhile (true) l = N(l);\n",
    );
    let run = common::run_lox_capped(
        &[std::ffi::OsStr::new("--gc-stats"), path.as_os_str()],
        env,
        OOM_TIMEOUT,
        8 << 20,
    );
    assert_exit(&run, EXIT_RUNTIME_ERROR);
    assert!(
        first_stderr_line(&run).contains("Out of memory"),
        "expected `Out of memory.`: {}",
        describe(&run)
    );
    let mapped = mapped_bytes(&run);
    assert!(
        mapped < 256 << 20,
        "{mapped} bytes mapped under a 32 MiB live-heap cap ({env:?})"
    );
}

/// A figure of the `--gc-stats` line a run printed on stderr.
fn gc_stat(run: &Run, key: &str) -> u64 {
    let key = format!("{key}=");
    run.stderr
        .split_whitespace()
        .find_map(|f| f.strip_prefix(key.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key}: {}", describe(run)))
}

fn mapped_bytes(run: &Run) -> u64 {
    gc_stat(run, "mapped_bytes")
}
