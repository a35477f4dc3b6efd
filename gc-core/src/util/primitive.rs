//! Synchronisation primitives of the small concurrency protocols, swappable for `loom`'s.
//!
//! Normal builds use `std` atomics and `parking_lot`'s mutex and condition variable. Under
//! `--cfg loom` the same names are loom's model-checked versions, so the loom tests explore every
//! interleaving of the real code of the safepoint handshake (`safepoint.rs`), of mark
//! termination detection (`gc/mark/work.rs`) and of the sweep claim and weak-clearing window
//! (`sweepgen.rs`).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, fence};

/// One step of a busy-wait loop (a yield point for loom).
#[inline]
pub(crate) fn spin_wait() {
    #[cfg(not(loom))]
    {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// A mutex-protected condition: `lock`, `wait`, `notify_all`.
#[derive(Default)]
pub(crate) struct Monitor {
    #[cfg(not(loom))]
    m: parking_lot::Mutex<()>,
    #[cfg(not(loom))]
    cv: parking_lot::Condvar,
    #[cfg(loom)]
    m: loom::sync::Mutex<()>,
    #[cfg(loom)]
    cv: loom::sync::Condvar,
}

/// A held [`Monitor`].
#[cfg(not(loom))]
pub(crate) type MonitorGuard<'a> = parking_lot::MutexGuard<'a, ()>;
/// A held [`Monitor`].
#[cfg(loom)]
pub(crate) type MonitorGuard<'a> = loom::sync::MutexGuard<'a, ()>;

impl Monitor {
    /// Take the lock.
    pub(crate) fn lock(&self) -> MonitorGuard<'_> {
        #[cfg(not(loom))]
        return self.m.lock();
        #[cfg(loom)]
        return self.m.lock().unwrap();
    }

    /// Release the lock, sleep until notified, take it again.
    pub(crate) fn wait<'a>(&self, g: MonitorGuard<'a>) -> MonitorGuard<'a> {
        #[cfg(not(loom))]
        {
            let mut g = g;
            self.cv.wait(&mut g);
            g
        }
        #[cfg(loom)]
        return self.cv.wait(g).unwrap();
    }

    /// Release the lock, sleep until notified or `timeout` has passed, take it again.
    pub(crate) fn wait_for<'a>(
        &self,
        g: MonitorGuard<'a>,
        timeout: std::time::Duration,
    ) -> MonitorGuard<'a> {
        #[cfg(not(loom))]
        {
            let mut g = g;
            self.cv.wait_for(&mut g, timeout);
            g
        }
        #[cfg(loom)]
        return self.cv.wait_timeout(g, timeout).unwrap().0;
    }

    /// Wake every waiter (the caller holds the lock, or has just changed what they wait for
    /// under it).
    pub(crate) fn notify_all(&self) {
        self.cv.notify_all();
    }

    /// Take the lock and wake every waiter: a waiter that checked its condition under the lock
    /// before it slept cannot miss this.
    pub(crate) fn wake_all(&self) {
        let _g = self.lock();
        self.cv.notify_all();
    }

    /// [`Monitor::wake_all`] for one waiter (one that has not been woken already, if any).
    pub(crate) fn wake_one(&self) {
        let _g = self.lock();
        self.cv.notify_one();
    }
}

/// A reader-writer lock without poisoning: `read`, `write`.
#[derive(Default)]
pub(crate) struct RwLock {
    #[cfg(not(loom))]
    l: parking_lot::RwLock<()>,
    #[cfg(loom)]
    l: loom::sync::RwLock<()>,
}

/// A [`RwLock`] held for reading.
#[cfg(not(loom))]
pub(crate) type ReadGuard<'a> = parking_lot::RwLockReadGuard<'a, ()>;
/// A [`RwLock`] held for reading.
#[cfg(loom)]
pub(crate) type ReadGuard<'a> = loom::sync::RwLockReadGuard<'a, ()>;
/// A [`RwLock`] held for writing.
#[cfg(not(loom))]
pub(crate) type WriteGuard<'a> = parking_lot::RwLockWriteGuard<'a, ()>;
/// A [`RwLock`] held for writing.
#[cfg(loom)]
pub(crate) type WriteGuard<'a> = loom::sync::RwLockWriteGuard<'a, ()>;

impl RwLock {
    /// Take the lock shared.
    pub(crate) fn read(&self) -> ReadGuard<'_> {
        #[cfg(not(loom))]
        return self.l.read();
        #[cfg(loom)]
        return self.l.read().unwrap();
    }

    /// Take the lock exclusively.
    pub(crate) fn write(&self) -> WriteGuard<'_> {
        #[cfg(not(loom))]
        return self.l.write();
        #[cfg(loom)]
        return self.l.write().unwrap();
    }
}
