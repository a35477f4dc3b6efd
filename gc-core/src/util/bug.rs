//! Internal invariant failures: report and abort.
//!
//! A broken invariant of the collector (a span in two places, a traced pointer outside the
//! heap) means memory may already be corrupt, and other threads may be waiting on the thread
//! that found it (a pause, the end of marking): unwinding would leave the process hanging or
//! running on with a corrupt heap. So `bug!` prints the report with a backtrace and aborts,
//! on whatever thread it happens.

/// Report an internal invariant failure (`format!` arguments) and abort the process.
macro_rules! bug {
    ($($arg:tt)*) => {
        $crate::util::bug::abort(format_args!($($arg)*))
    };
}

/// Print `msg` and a backtrace to stderr and abort.
#[cold]
#[inline(never)]
pub(crate) fn abort(msg: std::fmt::Arguments<'_>) -> ! {
    let bt = std::backtrace::Backtrace::force_capture();
    fatal(format!(
        "gc-core bug: {msg}\n(thread {:?})\n{bt}\naborting",
        std::thread::current().name().unwrap_or("<unnamed>")
    ))
}

/// Write `report` (one line or several) to stderr in one write and abort the process. One
/// write, because other threads may be printing panic reports at the same moment (several mark
/// workers running the same panicking `Trace` impl), and the panic hook does not take the
/// lock `eprintln!` takes between its pieces.
#[cold]
#[inline(never)]
pub(crate) fn fatal(mut report: String) -> ! {
    use std::io::Write;
    report.push('\n');
    let _ = std::io::stderr().write_all(report.as_bytes());
    std::process::abort()
}

/// Aborts the process if dropped while armed, i.e. when a panic unwinds through the code it
/// guards (user `Trace` code during marking: a tracer that unwinds loses its grey objects and
/// would let marking end incomplete). [`AbortOnUnwind::disarm`] at the normal end.
pub(crate) struct AbortOnUnwind(pub &'static str);

impl AbortOnUnwind {
    /// The guarded code finished without unwinding.
    #[inline]
    pub(crate) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for AbortOnUnwind {
    #[cold]
    fn drop(&mut self) {
        fatal(format!(
            "gc-core: a panic unwound through {} (a `Trace` implementation or a gc-core bug); \
             marking cannot go on without the work it held: aborting",
            self.0
        ));
    }
}
