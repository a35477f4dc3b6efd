//! Panics caught from user code: run several pieces, each even if one before it panicked, and
//! go on with the first panic once all have run.
//!
//! The library runs user code whose panic must not stop the work around it: drop glue at heap
//! teardown (every object is dropped, as a `Vec`'s drop drops every element), cleanups (the
//! others still run), work deferred to the end of a scope. What such code panics with is a
//! payload of any type, and dropping a payload runs its `Drop`, which is user code too and may
//! panic in turn (`std::panic::panic_any` of a type whose `Drop` panics). Dropped carelessly,
//! that second panic would unwind out of the loop and leave the rest undone (or, on a thread
//! already unwinding, abort the process). Every payload the library does not hand back is
//! therefore dropped by [`drop_payload`].

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// What a panic carries.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Drop a caught panic's payload; if its `Drop` panics, that panic's own payload is dropped
/// the same way, and so on a few times, after which the last one is leaked (a payload whose
/// drop panics with another such payload, for ever, would otherwise keep this loop going).
pub(crate) fn drop_payload(mut p: Payload) {
    for _ in 0..8 {
        match catch_unwind(AssertUnwindSafe(move || drop(p))) {
            Ok(()) => return,
            Err(again) => p = again,
        }
    }
    std::mem::forget(p);
}

/// Keeps the first panic of a series of pieces of work, each run even if one before it
/// panicked; later panics' payloads are dropped ([`drop_payload`]).
#[derive(Default)]
pub(crate) struct FirstPanic(Option<Payload>);

impl FirstPanic {
    /// Run `f`, catching a panic.
    pub(crate) fn run(&mut self, f: impl FnOnce()) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            self.keep(p);
        }
    }

    /// Keep `p` if it is the first panic; drop it otherwise.
    pub(crate) fn keep(&mut self, p: Payload) {
        if self.0.is_none() {
            self.0 = Some(p);
        } else {
            drop_payload(p);
        }
    }

    /// Go on unwinding with the first panic, if there was one; if this thread is unwinding
    /// already (a second panic would abort the process), drop it instead.
    pub(crate) fn resume(self) {
        match self.0 {
            Some(p) if !std::thread::panicking() => resume_unwind(p),
            Some(p) => drop_payload(p),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A payload whose `Drop` panics (once: its own payload is a plain string), counting drops.
    struct PanicsOnDrop(Arc<AtomicUsize>);

    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("the payload's Drop panicked");
        }
    }

    /// Every piece runs, whatever the ones before it panicked with (payloads that panic when
    /// dropped included), and the first panic's payload is the one that goes on.
    #[test]
    fn every_piece_runs_and_the_first_panic_goes_on() {
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = AtomicUsize::new(0);
        let mut first = FirstPanic::default();
        first.run(|| {
            ran.fetch_add(1, Ordering::SeqCst);
        });
        assert!(first.0.is_none());
        first.run(|| std::panic::panic_any(7u32));
        for _ in 0..3 {
            let d = drops.clone();
            first.run(|| {
                ran.fetch_add(1, Ordering::SeqCst);
                std::panic::panic_any(PanicsOnDrop(d))
            });
        }
        first.run(|| {
            ran.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 5, "every piece ran");
        assert_eq!(
            drops.load(Ordering::SeqCst),
            3,
            "the later payloads were dropped"
        );
        let resumed = catch_unwind(AssertUnwindSafe(|| first.resume())).unwrap_err();
        assert_eq!(
            resumed.downcast_ref::<u32>(),
            Some(&7),
            "the first panic went on"
        );
        // No panic: nothing to resume.
        FirstPanic::default().resume();
    }

    /// A payload whose `Drop` panics with another such payload, for ever: dropped a bounded
    /// number of times, then leaked, and the call returns.
    #[test]
    // The leak is the point, and Miri reports leaks.
    #[cfg_attr(miri, ignore)]
    fn a_payload_that_panics_for_ever_when_dropped_is_given_up() {
        struct Forever(Arc<AtomicUsize>);
        impl Drop for Forever {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
                std::panic::panic_any(Forever(self.0.clone()));
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        drop_payload(Box::new(Forever(drops.clone())));
        assert_eq!(drops.load(Ordering::SeqCst), 8);
    }

    /// On a thread that is unwinding already, the first panic is dropped, not resumed (which
    /// would abort), also when its payload panics when dropped.
    #[test]
    fn while_unwinding_the_first_panic_is_dropped() {
        let drops = Arc::new(AtomicUsize::new(0));
        struct ResumeOnDrop(Option<FirstPanic>);
        impl Drop for ResumeOnDrop {
            fn drop(&mut self) {
                assert!(std::thread::panicking());
                self.0.take().unwrap().resume();
            }
        }
        let d = drops.clone();
        let r = catch_unwind(AssertUnwindSafe(move || {
            let mut first = FirstPanic::default();
            first.run(|| std::panic::panic_any(PanicsOnDrop(d)));
            let _guard = ResumeOnDrop(Some(first));
            std::panic::panic_any("outer");
        }));
        assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"outer"));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
