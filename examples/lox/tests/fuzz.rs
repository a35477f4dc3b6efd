//! Mutation fuzzing of the `lox` binary: malformed and hostile programs must end in a clean
//! Lox outcome, never a crash.
//!
//! `mutated_programs_never_crash` takes programs of the suite (`common::suite_dir`), applies
//! 1 to 4 random mutations to each (delete, duplicate, swap, insert or replace tokens from a
//! small Lox vocabulary; delete, insert or flip bytes; truncate; insert 2000 copies of an
//! opening token such as `(`), plus some generated programs (deeply nested expressions,
//! blocks, functions, closures and classes; very long literals), and runs the binary on each.
//! Every run must exit with 0, 65 (compile error) or 70 (runtime error) — or 74 when the
//! input is not valid UTF-8 — and an error exit must say something on stderr. A signal, exit
//! 101 (a Rust panic), any other code, or a stderr containing `panicked` or `RUST_BACKTRACE`
//! is a failure: the scanner, compiler and VM must turn every input into a Lox error.
//!
//! A mutation may create an endless loop, so a run that hits its 10 s limit only counts as a
//! failure if the reference `clox` (when present) ends on the same input within 1 s. Runs
//! use a 512 MiB heap (`GCCORE_ARENA`) under a 2 GiB address-space cap (`ulimit -v`), so that
//! a runaway run aborts (a failure) instead of exhausting the machine.
//!
//! Inputs are drawn from `SmallRng`s with fixed seeds, plus one seed from `$LOX_FUZZ_SEED`
//! (decimal or `0x` hex) or else from the clock; it is printed. Runs stop once the time
//! budget (about 60 s) is spent. Failing inputs are saved under
//! `target/tmp/lox-fuzz/fail-SEED-INDEX.lox` and listed in the failure message.

mod common;

use common::{Run, par_map, scratch_dir, suite_files, suite_name, test_threads};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seeds always run, so that a regression is caught by every run of the test.
const FIXED_SEEDS: [u64; 3] = [0x10c5_0001, 0x10c5_0002, 0x10c5_0003];
/// Inputs per seed (4 seeds: 320 runs when time allows).
const CASES_PER_SEED: usize = 80;
/// No new run starts after this much time.
const BUDGET: Duration = Duration::from_secs(60);
/// Limit for one run.
const RUN_TIMEOUT: Duration = Duration::from_secs(10);
/// Heap size for the runs (`GCCORE_ARENA`), and the cap on each run's address space: a run
/// that balloons (a compiler bug did, at 500 MB/s) fails alone instead of taking the machine.
const ARENA: &[(&str, &str)] = &[("GCCORE_ARENA", "512MiB")];
const MAX_KIB: u64 = 2 << 20;
/// A timeout is a failure when `clox` runs the same input in less than this.
const CLOX_QUICK: Duration = Duration::from_secs(1);

/// Tokens inserted by the token mutations.
const VOCABULARY: &[&str] = &[
    "(", ")", "{", "}", ";", ".", ",", "=", "+", "-", "*", "/", "!", "<", ">", "<=", ">=", "==",
    "!=", "\"", "class", "fun", "var", "this", "super", "return", "print", "while", "for", "if",
    "else", "and", "or", "nil", "true", "false", "1e300", "0", "-1", "1.5", "\"x\"", "x", "f",
    "init", "clock", "//", "\n",
];

/// Openers repeated 2000 times by the deep-nesting mutation.
const NESTERS: &[&str] = &[
    "(",
    "{",
    "[",
    "!",
    "-",
    "fun f(){",
    "class C < ",
    "print ",
    "return ",
    "super.",
    "this.",
    "a.",
    "f(",
    "if(true)",
    "while(false)",
    "var a = ",
];

/// Bytes inserted by the byte mutations: NUL, controls, quotes, and invalid UTF-8.
const ODD_BYTES: &[u8] = b"\0\x01\x07\x08\t\n\r\x1b\x7f\"\\/@#$%^&|~`'[]?:\xff\xfe\xc3\xe2\x80";

/// One generated input.
struct Case {
    seed: u64,
    index: usize,
    /// Where it came from and what was done to it, for the report.
    recipe: String,
    program: Vec<u8>,
}

/// How one run went.
enum Verdict {
    Pass,
    /// Hit the time limit, and no evidence that it should not have.
    Inconclusive,
    Fail(String),
    /// Not run: the time budget was spent.
    Skipped,
}

#[test]
fn mutated_programs_never_crash() {
    let extra_seed = match std::env::var("LOX_FUZZ_SEED") {
        Ok(text) => parse_seed(&text).unwrap_or_else(|| panic!("bad LOX_FUZZ_SEED `{text}`")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    };
    println!("fuzz: extra seed {extra_seed} (rerun with LOX_FUZZ_SEED={extra_seed})");

    let sources: Vec<(String, Vec<u8>)> = suite_files()
        .iter()
        .map(|path| {
            (
                suite_name(path),
                std::fs::read(path).expect("read suite file"),
            )
        })
        .collect();
    assert!(!sources.is_empty(), "no suite programs found");

    let mut cases = Vec::new();
    for seed in FIXED_SEEDS.into_iter().chain([extra_seed]) {
        let mut rng = SmallRng::seed_from_u64(seed);
        for index in 0..CASES_PER_SEED {
            let (recipe, program) = make_input(&mut rng, &sources);
            cases.push(Case {
                seed,
                index,
                recipe,
                program,
            });
        }
    }

    let dir = scratch_dir("lox-fuzz");
    let clox = common::clox().unwrap_or_default();
    let start = Instant::now();
    let verdicts = par_map(&cases, test_threads(), |case| {
        if start.elapsed() >= BUDGET {
            return Verdict::Skipped;
        }
        let path = dir.join(format!("case-{}-{}.lox", case.seed, case.index));
        std::fs::write(&path, &case.program).expect("write fuzz input");
        let run = common::run_lox_capped(&[&path], ARENA, RUN_TIMEOUT, MAX_KIB);
        let verdict = judge(case, &run, &path, &clox);
        if let Verdict::Fail(_) = verdict {
            let kept = dir.join(format!("fail-{}-{}.lox", case.seed, case.index));
            let _ = std::fs::rename(&path, &kept);
        } else {
            let _ = std::fs::remove_file(&path);
        }
        verdict
    });

    let (mut passed, mut inconclusive, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for (case, verdict) in cases.iter().zip(verdicts) {
        match verdict {
            Verdict::Pass => passed += 1,
            Verdict::Inconclusive => inconclusive += 1,
            Verdict::Skipped => skipped += 1,
            Verdict::Fail(why) => failures.push(format!(
                "- {}: {}\n  input: {}\n{why}",
                case.recipe,
                shorten(&case.program),
                dir.join(format!("fail-{}-{}.lox", case.seed, case.index))
                    .display(),
            )),
        }
    }
    println!(
        "fuzz: {} runs in {:.1} s: {passed} clean, {inconclusive} hit the {} s limit, {} \
         failed, {skipped} not run (time budget)",
        cases.len() - skipped,
        start.elapsed().as_secs_f64(),
        RUN_TIMEOUT.as_secs(),
        failures.len(),
    );
    assert!(
        failures.is_empty(),
        "{} of {} fuzz inputs crashed {} (extra seed {extra_seed}; rerun with \
         LOX_FUZZ_SEED={extra_seed}):\n{}",
        failures.len(),
        cases.len() - skipped,
        common::lox_bin().display(),
        failures.join("\n"),
    );
}

/// Decides whether a run ended cleanly.
fn judge(case: &Case, run: &Run, path: &Path, clox: &Path) -> Verdict {
    let mut problems = Vec::new();
    if let Some(err) = &run.spawn_error {
        problems.push(format!("could not start the binary: {err}"));
    } else if run.timed_out {
        // Endless loops are legal Lox; a hang is a bug only if clox is quick on this input.
        let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
        if clox.exists() && !same(&common::lox_bin(), clox) {
            let reference = common::run_binary(clox, &[path], &[], RUN_TIMEOUT);
            if !reference.timed_out && reference.elapsed < CLOX_QUICK {
                problems.push(format!(
                    "timed out after {:.1} s, but clox ended in {:.2} s ({})",
                    run.elapsed.as_secs_f64(),
                    reference.elapsed.as_secs_f64(),
                    reference.outcome()
                ));
            }
        }
        if problems.is_empty() {
            return Verdict::Inconclusive;
        }
    } else if let Some(signal) = run.signal {
        problems.push(format!("killed by signal {signal}"));
    } else {
        let utf8 = std::str::from_utf8(&case.program).is_ok();
        match run.code {
            Some(0) => {}
            Some(65 | 70) if run.stderr.trim().is_empty() => problems.push(format!(
                "exit code {} with nothing on stderr",
                run.code.unwrap_or_default()
            )),
            Some(65 | 70) => {}
            Some(74) if !utf8 => {}
            Some(101) => problems.push("exit code 101 (Rust panic)".to_string()),
            other => problems.push(format!("unexpected exit code {other:?}")),
        }
    }
    for marker in ["panicked", "RUST_BACKTRACE"] {
        if run.stderr.contains(marker) {
            problems.push(format!("stderr contains `{marker}`"));
        }
    }
    if problems.is_empty() {
        return Verdict::Pass;
    }
    let mut why = format!("  {}\n", problems.join("; "));
    why.push_str(&run.stderr_head(8));
    Verdict::Fail(why)
}

fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The start of an input, printable, for the report.
fn shorten(program: &[u8]) -> String {
    let text = String::from_utf8_lossy(&program[..program.len().min(160)]);
    let mut shown: String = text.escape_debug().collect();
    if program.len() > 160 {
        shown.push_str(&format!("… ({} bytes)", program.len()));
    }
    shown
}

/// Draws one input: usually a mutated suite program, sometimes a generated one.
fn make_input(rng: &mut SmallRng, sources: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    if rng.gen_ratio(1, 10) {
        return generated(rng);
    }
    let (name, source) = sources.choose(rng).expect("non-empty suite");
    let mut program = source.clone();
    let mut steps = Vec::new();
    for _ in 0..rng.gen_range(1..=4) {
        steps.push(mutate(rng, &mut program));
    }
    (format!("{name} + {}", steps.join(", ")), program)
}

/// Applies one random mutation and describes it.
fn mutate(rng: &mut SmallRng, program: &mut Vec<u8>) -> String {
    let mut tokens = tokenize(program);
    let description = match rng.gen_range(0..11) {
        0 | 1 if !tokens.is_empty() => {
            let at = rng.gen_range(0..tokens.len());
            let end = (at + rng.gen_range(1..=3)).min(tokens.len());
            tokens.drain(at..end);
            format!("delete tokens {at}..{end}")
        }
        2 if !tokens.is_empty() => {
            let at = rng.gen_range(0..tokens.len());
            let end = (at + rng.gen_range(1..=8)).min(tokens.len());
            let copy: Vec<Vec<u8>> = tokens[at..end].to_vec();
            let to = rng.gen_range(0..=tokens.len());
            tokens.splice(to..to, copy);
            format!("copy tokens {at}..{end} to {to}")
        }
        3 if !tokens.is_empty() => {
            let a = rng.gen_range(0..tokens.len());
            let b = rng.gen_range(0..tokens.len());
            tokens.swap(a, b);
            format!("swap tokens {a} and {b}")
        }
        4 | 5 => {
            let word = VOCABULARY.choose(rng).expect("vocabulary");
            let to = rng.gen_range(0..=tokens.len());
            tokens.insert(to, format!(" {word} ").into_bytes());
            format!("insert `{}` at token {to}", word.escape_debug())
        }
        6 if !tokens.is_empty() => {
            let word = VOCABULARY.choose(rng).expect("vocabulary");
            let at = rng.gen_range(0..tokens.len());
            tokens[at] = word.as_bytes().to_vec();
            format!("replace token {at} with `{}`", word.escape_debug())
        }
        7 => {
            let at = rng.gen_range(0..=program.len());
            let byte = if rng.gen_bool(0.5) {
                *ODD_BYTES.choose(rng).expect("odd bytes")
            } else {
                rng.r#gen::<u8>()
            };
            program.insert(at, byte);
            return format!("insert byte {byte:#04x} at {at}");
        }
        8 if !program.is_empty() => {
            let at = rng.gen_range(0..program.len());
            if rng.gen_bool(0.5) {
                let end = (at + rng.gen_range(1..=16)).min(program.len());
                program.drain(at..end);
                return format!("delete bytes {at}..{end}");
            }
            let bit = rng.gen_range(0..8);
            program[at] ^= 1 << bit;
            return format!("flip bit {bit} of byte {at}");
        }
        9 => {
            let at = rng.gen_range(0..=program.len());
            program.truncate(at);
            return format!("truncate at {at}");
        }
        _ => {
            let nester = NESTERS.choose(rng).expect("nesters");
            let at = rng.gen_range(0..=tokens.len());
            tokens.insert(at, nester.repeat(2000).into_bytes());
            format!("insert 2000 × `{nester}` at token {at}")
        }
    };
    *program = tokens.concat();
    description
}

/// Splits a program into rough Lox tokens (whitespace, comments, strings, numbers, words,
/// operators, single odd bytes); concatenating them gives the program back.
fn tokenize(program: &[u8]) -> Vec<Vec<u8>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < program.len() {
        let c = program[i];
        let rest = &program[i..];
        let len = if c.is_ascii_whitespace() {
            rest.iter().take_while(|b| b.is_ascii_whitespace()).count()
        } else if rest.starts_with(b"//") {
            rest.iter().take_while(|&&b| b != b'\n').count()
        } else if c == b'"' {
            rest[1..]
                .iter()
                .position(|&b| b == b'"')
                .map_or(rest.len(), |p| p + 2)
        } else if c.is_ascii_digit() {
            rest.iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'.')
                .count()
        } else if c.is_ascii_alphabetic() || c == b'_' {
            rest.iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count()
        } else if rest.len() >= 2 && matches!(&rest[..2], b"==" | b"!=" | b"<=" | b">=") {
            2
        } else {
            1
        };
        tokens.push(rest[..len].to_vec());
        i += len;
    }
    tokens
}

/// A generated program that stresses a limit: deep nesting of each construct, long chains,
/// long literals.
fn generated(rng: &mut SmallRng) -> (String, Vec<u8>) {
    let depth = rng.gen_range(200..=3000);
    let (what, program) = match rng.gen_range(0..9) {
        0 => (
            "nested parentheses",
            format!("print {}1{};", "(".repeat(depth), ")".repeat(depth)),
        ),
        1 => (
            "nested blocks",
            format!("{}print 1;{}", "{".repeat(depth), "}".repeat(depth)),
        ),
        2 => (
            "nested functions",
            format!("{}print 1;{}", "fun f() {".repeat(depth), "}".repeat(depth)),
        ),
        3 => (
            "nested closures",
            format!(
                "var x = 1;\n{}print x;{}\n",
                "fun f() { var y = x;".repeat(depth),
                " return y; }".repeat(depth)
            ),
        ),
        4 => (
            "nested classes",
            format!(
                "class A {{}}\n{} print 1; {}",
                "fun g() { class B < A { m() { super.m(); ".repeat(depth),
                "} } }".repeat(depth)
            ),
        ),
        5 => ("unary chain", format!("print {}true;", "!-".repeat(depth))),
        6 => (
            "call chain",
            format!("fun f() {{ return f; }}\nprint f{};", "()".repeat(depth)),
        ),
        7 => (
            "long string",
            format!("print \"{}\";", "x".repeat(depth * 1000)),
        ),
        _ => (
            "long identifier and number",
            format!("var {} = {};", "a".repeat(depth * 100), "9".repeat(depth)),
        ),
    };
    (
        format!("generated {what} (depth {depth})"),
        program.into_bytes(),
    )
}

#[test]
fn tokenizer_round_trips() {
    for path in suite_files().iter().take(40) {
        let source = std::fs::read(path).expect("read suite file");
        assert_eq!(tokenize(&source).concat(), source, "{}", path.display());
    }
}
