//! Roots as the collector sees them: each mutator's root set (type-erased), and the stash's
//! table of heap-wide roots. (The root object, root stack and `Stash` handle that users see are
//! in the API layer.)

use std::sync::atomic::Ordering;

use crate::gc::heap::{ObjAddr, Shared};
use crate::gc::mark::tracer::Tracer;

/// Type-erased access to a mutator's roots for the collector.
pub(crate) trait RootSet {
    /// Trace the root object and the root stack.
    fn trace_roots(&self, t: &mut Tracer);

    /// Whether the root stack is borrowed (inside `RootStack::with`); only its owner asks.
    fn stack_in_use(&self) -> bool;
}

/// Slots of stashed objects; read by the collector with the world stopped.
#[derive(Default)]
pub(crate) struct StashTable {
    slots: Vec<Option<ObjAddr>>,
    free: Vec<usize>,
}

impl StashTable {
    /// Add an entry; returns its slot.
    pub(crate) fn insert(&mut self, a: ObjAddr) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(a);
                i
            }
            None => {
                self.slots.push(Some(a));
                self.slots.len() - 1
            }
        }
    }

    /// Trace every stashed object.
    pub(crate) fn trace(&self, t: &mut Tracer) {
        for a in self.slots.iter().flatten() {
            t.edge(a.0);
        }
    }

    /// The entry in `slot`.
    pub(crate) fn get(&self, slot: usize) -> ObjAddr {
        self.slots[slot].expect("live stash slot")
    }

    /// Remove the entry in `slot`.
    pub(crate) fn remove(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.free.push(slot);
    }

    /// Number of live stash handles.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// Add `a` to the stash of `h`; returns its slot. The stash is greyed at STW 1, so an entry
/// added while marking is shaded here (it may come from a scope that blocked across STW 1, whose
/// locals the marker has not seen).
pub(crate) fn stash(h: &Shared, a: ObjAddr) -> usize {
    if h.mark.marking.load(Ordering::Relaxed) {
        crate::gc::mark::roots::shade(h, [a]);
    }
    h.stash.lock().insert(a)
}
