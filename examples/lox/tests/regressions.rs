//! Programs that once ran wrong on the `lox` binary, each with the output the reference `clox`
//! gives. Every program carries the suite's expectation comments (`// expect: …`,
//! `// expect runtime error: …`, `// Error …`; see `common/mod.rs`) and is checked against
//! them; where the reference binary is present (`common::clox`), the binary's exit
//! code, stdout and stderr must also equal clox's on the same file.
//!
//! - a closure capturing exactly 256 variables (the most clox allows): the count was stored in
//!   a byte, wrapped to 0, and the closure's 512 operand bytes ran as instructions; 257 is a
//!   compile error;
//! - a runtime error in a property read whose name is on a later line than its receiver
//!   (`o.⏎x`, `this.⏎x`): reported at the name's line (a fused get-local/get-property
//!   instruction reported the receiver's);
//! - `print 0/0;` prints `-nan` (x86's default NaN has its sign bit set; printf's `%g` shows
//!   it), `-(0/0)` prints `nan`.
//!
//! `internal_errors_are_not_lox_errors` checks that a panic inside the interpreter (forced with
//! `LOX_TEST_INTERNAL_ERROR=1`) ends with its own message and exit code (101), never as a Lox
//! runtime error (70).

mod common;

use common::{Expectations, Run, clox, run_file, scratch_dir};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Writes `source` to `target/tmp/lox-regressions/NAME.lox`.
fn program(name: &str, source: &str) -> PathBuf {
    let path = scratch_dir("lox-regressions").join(format!("{name}.lox"));
    std::fs::write(&path, source).expect("write test program");
    path
}

/// Runs the program at `path`, checks it against its expectation comments and, when clox is
/// present, against clox's exit code, stdout and stderr.
fn check(path: &Path) {
    let expectations = Expectations::from_file(path).expect("a test program");
    let run = run_file(&[], path, &[], TIMEOUT);
    let problems = expectations.check(&run);
    assert!(
        problems.is_empty(),
        "{}: {}\n{}",
        path.display(),
        problems.join("\n"),
        describe(&run)
    );
    if let Some(clox) = clox() {
        let out = Command::new(&clox)
            .arg(path)
            .output()
            .expect("run the reference clox");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (out.status.code(), &*stdout, &*stderr),
            "{}: lox and clox differ (left: lox, right: clox)",
            path.display()
        );
    }
}

fn describe(run: &Run) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.outcome(),
        run.stdout.chars().take(2000).collect::<String>(),
        run.stderr.chars().take(2000).collect::<String>(),
    )
}

/// A closure that captures `outer` locals of its grandparent (through its parent's upvalues)
/// and `inner` locals of its parent: `outer + inner` upvalues. Local `aI` holds I, `bJ` holds
/// 1000 + J; the closure returns their sum.
fn many_upvalues(outer: usize, inner: usize) -> String {
    let mut s = String::from("fun a() {\n");
    for i in 0..outer {
        writeln!(s, "  var a{i} = {i};").unwrap();
    }
    s.push_str("  fun b() {\n");
    for j in 0..inner {
        writeln!(s, "    var b{j} = {};", 1000 + j).unwrap();
    }
    s.push_str("    fun c() {\n      return 0");
    for i in 0..outer {
        write!(s, " + a{i}").unwrap();
    }
    for j in 0..inner {
        write!(s, " + b{j}").unwrap();
    }
    s.push_str(";\n    }\n    return c;\n  }\n  return b();\n}\n");
    s
}

#[test]
fn a_closure_captures_256_variables() {
    let (outer, inner) = (200, 56);
    let sum: usize = (0..outer).sum::<usize>() + (0..inner).map(|j| 1000 + j).sum::<usize>();
    let mut source = many_upvalues(outer, inner);
    writeln!(source, "print a()(); // expect: {sum}").unwrap();
    check(&program("upvalues_256", &source));
}

#[test]
fn a_closure_cannot_capture_257_variables() {
    let mut source = many_upvalues(200, 57);
    // The error is reported at the 257th variable's use: `b56` in `c`'s return statement.
    let line = source.lines().count() - 5;
    source.push_str("print a()();\n");
    let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
    lines[line - 1].push_str(" // Error at 'b56': Too many closure variables in function.");
    check(&program("upvalues_257", &(lines.join("\n") + "\n")));
}

#[test]
fn a_property_error_is_reported_at_the_name_line() {
    let source = "\
class A {
  method() {
    return this.
      missing; // expect runtime error: Undefined property 'missing'.
  }
}
A().method();
";
    check(&program("this_property_line", source));
    let source = "\
class A {}
fun f(o) {
  return o.
    x; // expect runtime error: Undefined property 'x'.
}
f(A());
";
    check(&program("local_property_line", source));
    // A global receiver (no fused instruction) was right already; keep it so.
    let source = "\
class A {}
var o = A();
print o.
  y; // expect runtime error: Undefined property 'y'.
";
    check(&program("global_property_line", source));
}

#[test]
fn nan_prints_with_its_sign() {
    let source = "\
print 0/0; // expect: -nan
print -(0/0); // expect: nan
var n = 0/0;
print n == n; // expect: false
";
    check(&program("nan_sign", source));
}

#[test]
fn internal_errors_are_not_lox_errors() {
    let path = program("internal_error", "print 1;\n");
    let run = run_file(&[], &path, &[("LOX_TEST_INTERNAL_ERROR", "1")], TIMEOUT);
    assert_eq!(run.code, Some(101), "{}", describe(&run));
    assert!(
        run.stderr
            .contains("lox: internal error (a bug in the interpreter, not in the program)"),
        "{}",
        describe(&run)
    );
    // Without the hook the same program runs normally.
    let run = run_file(&[], &path, &[], TIMEOUT);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "1\n"));
}

/// Shapes no suite program has, each once wrong in a mutation of the VM that no test saw:
/// more than 64 global names (the globals array grows, its new slots undefined, the old ones
/// kept), `clock()` inside a function (the native's slot popped with its arguments), an
/// assignment to an undefined global used as an expression (the unfused instruction), loops
/// whose condition starts with a literal after a local initialised from a local (a loop head
/// must not fuse with the instruction before it), and a runtime error in a condition written
/// over two lines (reported at the comparison's line).
#[test]
fn shapes_the_suite_does_not_have() {
    let mut many = String::new();
    for i in 0..70 {
        write!(many, "var g{i} = {i}; ").unwrap();
    }
    many.push_str(
        "\nprint g69; // expect: 69\n\
         print g0; // expect: 0\n\
         print clock; // expect: <native fn>\n\
         print late; // expect runtime error: Undefined variable 'late'.\n\
         var late = 1;\n",
    );
    check(&program("many_globals", &many));
    let source = "\
fun timed() {
  var start = clock();
  var label = \"elapsed\";
  print label; // expect: elapsed
  print clock() - start >= 0; // expect: true
  print clock(1, 2) >= start; // expect: true
  print label; // expect: elapsed
}
timed();
";
    check(&program("clock_in_a_function", source));
    let source = "\
var a = \"a\";
print a = \"b\"; // expect: b
a = notDefined = \"c\"; // expect runtime error: Undefined variable 'notDefined'.
";
    check(&program("undefined_global_in_an_expression", source));
    let source = "\
fun countdown(n) {
  var i = n;
  while (0 < i) { print i; i = i - 1; }
  for (var j = i; 0 < 2 - j; j = j + 1) print j;
}
countdown(3);
// expect: 3
// expect: 2
// expect: 1
// expect: 0
// expect: 1
";
    check(&program("literal_first_loop_conditions", source));
    let source = "\
var a = 1;
if (a <
    \"x\" // expect runtime error: Operands must be numbers.
) print a;
";
    check(&program("condition_over_two_lines", source));
}
