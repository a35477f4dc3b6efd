//! The *Crafting Interpreters* test suite (`common::suite_dir`, 246 programs) run against the
//! `lox` binary.
//!
//! - `suite_passes`: every program, as is. Each program states its expected stdout, compile
//!   errors (exact stderr, exit 65) or runtime error (first stderr line, stack trace line, exit
//!   70) in comments; see `common/mod.rs` for the rules. This is the VM's conformance test.
//! - `suite_passes_under_gc_stress`: the same programs with `--gc-stress=N` (default N = 1:
//!   a full collection, with the heap verifier on, at the first poll point after every N-th
//!   allocation), so that any object the VM forgets to root is collected (and caught by the
//!   verifier) while the program still uses it. Output must be identical: the collector must be
//!   invisible. A stress collection completes between scopes, so it never marks while the VM
//!   runs: missed write barriers are the natural cycles' business (`tests/gc.rs`).
//! - `gc_stress_really_collects`: `--gc-stress=1` does trigger collections (`--gc-stats`
//!   reports `gc_cycles` > 0 on a small program), so the stress run is not vacuous.
//! - `expectation_parser_self_check`: the harness itself parses and compares as intended.
//!
//! Set `LOX_BIN` to run another binary (e.g. the reference `clox`, which passes
//! `suite_passes` but knows no `--gc-stress`), `LOX_TEST_THREADS` to change the parallelism
//! (default 2), `LOX_GC_STRESS_N` to change N.

mod common;

use common::{Expectations, Run, par_map, run_file, suite_files, suite_name, test_threads};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The suite snapshot holds this many programs; a different count means the suite directory
/// was not found whole.
const SUITE_SIZE: usize = 246;

/// Wall-clock limit per program (a debug build under GC stress is slow).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `files` (with `flags` before each path) and panics listing every failure.
fn run_suite(label: &str, files: &[PathBuf], flags: &[&str]) {
    let start = Instant::now();
    let results: Vec<Option<(String, Run, Vec<String>)>> = par_map(files, test_threads(), |path| {
        let expectations = Expectations::from_file(path)?;
        let run = run_file(flags, path, &[], TIMEOUT);
        let problems = expectations.check(&run);
        Some((suite_name(path), run, problems))
    });

    let mut passed = 0;
    let mut skipped = 0;
    let mut report = String::new();
    let mut slowest: Option<(Duration, String)> = None;
    for result in results {
        let Some((name, run, problems)) = result else {
            skipped += 1;
            continue;
        };
        if slowest.as_ref().is_none_or(|(t, _)| run.elapsed > *t) {
            slowest = Some((run.elapsed, name.clone()));
        }
        if problems.is_empty() {
            passed += 1;
            continue;
        }
        report.push_str(&format!("\n{name} ({}):\n", run.outcome()));
        for problem in &problems {
            report.push_str(&format!("  - {problem}\n"));
        }
    }
    let failed = files.len() - passed - skipped;
    let slowest = slowest.map_or(String::new(), |(t, name)| {
        format!(", slowest {name} {:.2} s", t.as_secs_f64())
    });
    println!(
        "{label}: {passed} passed, {failed} failed, {skipped} skipped of {} in {:.1} s{slowest}",
        files.len(),
        start.elapsed().as_secs_f64(),
    );
    assert!(
        failed == 0,
        "{label}: {failed} of {} programs failed (binary {}, flags {flags:?}):\n{report}",
        files.len(),
        common::lox_bin().display(),
    );
}

#[test]
fn suite_passes() {
    let files = suite_files();
    assert_eq!(
        files.len(),
        SUITE_SIZE,
        "expected {SUITE_SIZE} programs under {}",
        common::suite_dir().display()
    );
    run_suite("suite", &files, &[]);
}

#[test]
fn suite_passes_under_gc_stress() {
    // The whole suite: a debug build runs it in about 1 s on 2 cores even at N = 1, so no
    // subset is needed.
    let every = std::env::var("LOX_GC_STRESS_N").unwrap_or_else(|_| "1".to_string());
    let flag = format!("--gc-stress={every}");
    run_suite(&format!("gc stress ({flag})"), &suite_files(), &[&flag]);
}

#[test]
fn gc_stress_really_collects() {
    // Guards the stress test against a flag that does nothing: a small program that never
    // fills the heap must still see collections under `--gc-stress=1`, with the heap verifier
    // on (it poisons freed memory, which is what turns a value the VM forgot to root into a
    // failure); without the flag the verifier stays off.
    let path = common::suite_dir().join("closure/nested_closure.lox");
    let field = |stderr: &str, key: &str| {
        stderr
            .split_whitespace()
            .find_map(|f| f.strip_prefix(key))
            .and_then(|n| n.parse::<u64>().ok())
    };
    // `GCCORE_VERIFY=0` in both: the flag turns the verifier on over the environment.
    let off = [("GCCORE_VERIFY", "0")];
    let run = run_file(&["--gc-stress=1", "--gc-stats"], &path, &off, TIMEOUT);
    let cycles = field(&run.stderr, "gc_cycles=");
    assert!(
        run.code == Some(0) && cycles.is_some_and(|n| n > 0),
        "expected gc_cycles > 0 on stderr under --gc-stress=1 ({}):\n{}",
        run.outcome(),
        run.stderr
    );
    assert_eq!(field(&run.stderr, "verify="), Some(1), "{}", run.stderr);
    let plain = run_file(&["--gc-stats"], &path, &off, TIMEOUT);
    assert_eq!(field(&plain.stderr, "verify="), Some(0), "{}", plain.stderr);
}

#[test]
fn expectation_parser_self_check() {
    let source = "print 1; // expect: 1\n\
                  print \"\"; // expect:\n\
                  var a = ; // Error at ';': Expect expression.\n\
                  // [line 7] Error at 'b': Bad.\n\
                  // [c line 8] Error at end: Expect '}' after block.\n\
                  // [java line 9] Error at 'x': Ignored.\n";
    let exp = Expectations::parse(source).unwrap();
    assert_eq!(exp.output, ["1", ""]);
    assert_eq!(
        exp.compile_errors,
        [
            "[line 3] Error at ';': Expect expression.",
            "[line 7] Error at 'b': Bad.",
            "[line 8] Error at end: Expect '}' after block.",
        ]
    );
    assert_eq!(exp.exit_code(), common::EXIT_COMPILE_ERROR);

    let exp = Expectations::parse("\nnil(); // expect runtime error: Can only call.\n").unwrap();
    assert_eq!(exp.runtime_error, Some(("Can only call.".to_string(), 2)));
    assert_eq!(exp.exit_code(), common::EXIT_RUNTIME_ERROR);
    assert_eq!(Expectations::parse("// nontest\nprint 1;"), None);

    let good = Run {
        stdout: "1\n\n".into(),
        stderr: "Boom.\n[line 2] in script\n".into(),
        code: Some(70),
        ..Run::default()
    };
    let exp = Expectations::parse("print 1; // expect: 1\nprint \"\"; // expect:\n")
        .map(|mut e| {
            e.runtime_error = Some(("Boom.".to_string(), 2));
            e
        })
        .unwrap();
    assert_eq!(exp.check(&good), Vec::<String>::new());
    let bad = Run {
        stdout: "2\n".into(),
        stderr: "Boom.\n[line 3] in script\n".into(),
        code: Some(0),
        ..Run::default()
    };
    // Wrong exit code, wrong line 1, missing line 2, wrong stack trace line.
    assert_eq!(exp.check(&bad).len(), 4, "{:?}", exp.check(&bad));
}
