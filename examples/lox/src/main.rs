//! `lox [--gc-stats] [--gc-stress[=N]] [FILE]`: run a Lox script, or start a REPL (`--help`).
//!
//! Exit codes follow the book (and `sysexits.h`): 64 usage, 65 compile error, 70 runtime error,
//! 74 unreadable file, 78 bad heap configuration (`GOGC`, `GCCORE_ARENA`, …); 101 an internal
//! error (a panic: a bug in the interpreter, never a Lox error), reported as such on stderr.

use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use gc_core::{Config, Heap, HeapStats};
use lox::{LoxError, Options, Vm};

/// Run a Lox script, or start a REPL, on the gc-core heap. Reads GOGC, GOMEMLIMIT,
/// GODEBUG=gctrace=1 and the GCCORE_* settings.
#[derive(clap::Parser)]
#[command(name = "lox")]
struct Args {
    /// The script to run (none: a REPL).
    file: Option<String>,
    /// Print the collector's figures at the end.
    #[arg(long)]
    gc_stats: bool,
    /// Collect every N allocations (default 1), with the heap verifier on.
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true,
          default_missing_value = "1", value_parser = positive)]
    gc_stress: Option<u64>,
}

/// `--gc-stress`'s count: a whole number of at least 1.
fn positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got {s:?}")),
    }
}

/// Parse the command line; on a usage error, the message and the book's exit code (64), after
/// `--help` the help and 0.
fn parse_args() -> Result<Args, u8> {
    <Args as clap::Parser>::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() { 64 } else { 0 }
    })
}

/// Exit code of an internal error (a panic), as Rust's own for a panicking `main`.
const EXIT_INTERNAL: u8 = 101;

fn main() -> ExitCode {
    // A panic is a bug in the interpreter: say so, and never let it pass for a Lox error.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("lox: internal error (a bug in the interpreter, not in the program): {info}");
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            default_hook(info);
        }
    }));
    // The compiler recurses on nested code: give it a big stack (reserved, not committed).
    let worker = std::thread::Builder::new()
        .name("lox".into())
        .stack_size(256 << 20)
        .spawn(run)
        .expect("spawn the interpreter thread");
    ExitCode::from(worker.join().unwrap_or(EXIT_INTERNAL))
}

fn run() -> u8 {
    let args = match parse_args() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut config = match Config::from_env() {
        // `from_env` read GCCORE_VERIFY (any of its spellings); stress mode adds it.
        Ok(c) => {
            let verify = c.get_verify() || args.gc_stress.is_some();
            c.verify(verify)
        }
        Err(e) => {
            eprintln!("lox: {e}");
            return 78;
        }
    };
    // A soft memory limit also caps the live heap: a Lox program has no other way to learn
    // that it is out of memory (see the README).
    if config.get_max_heap().is_none() {
        let limit = config.get_memory_limit();
        config = config.max_heap(limit);
    }
    let heap = match Heap::new(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("lox: {e}");
            return 78;
        }
    };
    // Tests of the internal-error path force one here.
    if std::env::var_os("LOX_TEST_INTERNAL_ERROR").is_some_and(|v| v == "1") {
        panic!("forced by LOX_TEST_INTERNAL_ERROR=1");
    }
    let options = Options {
        gc_stress: args.gc_stress,
    };
    // Buffered in blocks into a file or a pipe; a line at a time on a terminal (as C's stdio
    // does for clox), so that output shows as it is printed.
    let stdout = std::io::stdout();
    let out: Box<dyn Write> = if stdout.is_terminal() {
        Box::new(stdout)
    } else {
        Box::new(BufWriter::with_capacity(1 << 16, stdout))
    };
    let mut vm = Vm::new(&heap, options, out);
    let mut code = match &args.file {
        Some(path) => run_file(&mut vm, path),
        None => repl(&mut vm),
    };
    if let Err(e) = vm.flush()
        && code == 0
    {
        code = report(&LoxError::Output(e));
    }
    if args.gc_stats {
        print_stats(&heap.stats(), vm.stress_collections(), heap.verify_mode());
    }
    code
}

fn run_file(vm: &mut Vm, path: &str) -> u8 {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Could not open file \"{path}\": {e}.");
            return 74;
        }
    };
    let Ok(src) = String::from_utf8(bytes) else {
        eprintln!("Could not read file \"{path}\": it is not valid UTF-8.");
        return 65;
    };
    match vm.interpret(&src) {
        Ok(()) => 0,
        Err(e) => report(&e),
    }
}

/// Print an error on stderr in the book's format; the exit code it calls for.
fn report(e: &LoxError) -> u8 {
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let (lines, code) = match e {
        LoxError::Compile(lines) => (lines, 65),
        LoxError::Runtime(lines) => (lines, 70),
        // The reader went away (`lox prog.lox | head`): end quietly with the status of a
        // process that SIGPIPE ended, as clox's is.
        LoxError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return 141,
        LoxError::Output(e) => {
            let _ = writeln!(err, "Could not write output: {e}.");
            return 74;
        }
    };
    for l in lines {
        let _ = writeln!(err, "{l}");
    }
    code
}

fn repl(vm: &mut Vm) -> u8 {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("lox: cannot start the line editor: {e}");
            return 74;
        }
    };
    loop {
        match editor.readline("> ") {
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                if let Err(e) = vm.interpret(&line) {
                    let code = report(&e);
                    // Output that cannot be written ends the session as it ends a script
                    // (141 for a closed pipe): there is nowhere to print what comes next.
                    if matches!(e, LoxError::Output(_)) {
                        return code;
                    }
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => return 0, // end of input
        }
    }
}

fn print_stats(s: &HeapStats, stress_collections: u64, verify: bool) {
    let mean_us = if s.pauses == 0 {
        0.0
    } else {
        s.pause_total.as_secs_f64() * 1e6 / s.pauses as f64
    };
    eprintln!(
        "gc_cycles={} pauses={} pause_total_ms={:.3} pause_mean_us={:.1} pause_max_us={} \
         mark_total_ms={:.3} objects_allocated={} objects_freed={} heap_live_bytes={} \
         heap_goal_bytes={} mapped_bytes={} stress_collections={} verify={}",
        s.gc_cycles,
        s.pauses,
        s.pause_total.as_secs_f64() * 1e3,
        mean_us,
        s.pause_max.as_micros(),
        s.mark_total.as_secs_f64() * 1e3,
        s.objects_allocated,
        s.objects_freed,
        s.heap_live,
        s.heap_goal,
        s.mapped_bytes,
        stress_collections,
        u8::from(verify),
    );
}
