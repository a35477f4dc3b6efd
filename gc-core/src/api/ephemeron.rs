//! `GcEphemeronTable<'gc, K, V>`: a table keyed by object identity whose entries keep their
//! value alive only while the key is reachable from somewhere else (the collector's side, and
//! why it is correct under concurrent marking, is `gc::ephemeron`).

use std::fmt;
use std::marker::PhantomData;

use crate::api::cell::Slot;
use crate::api::gc::Gc;
use crate::api::mutator::Mutation;
use crate::gc::ephemeron::EphemeronObj;
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;
use crate::util::error::AllocError;

/// A table from objects (`Gc<'gc, K>`, by identity) to values of type `V`, holding its keys
/// **weakly** and each value only as long as its key is reachable otherwise: an *ephemeron*
/// table, as Lua's weak-keyed tables, JavaScript's `WeakMap` and V8's `EphemeronHashTable`.
///
/// * A value that refers to its own key, or to the key of another entry, does not keep either
///   alive: an entry whose key is reachable only through values of the table dies with it,
///   whatever the chains and cycles through values.
/// * Once its key is collected, an entry is removed by the collector (its value dropped, on the
///   collector thread) before the key's memory can be reused; `len` counts entries not yet
///   removed.
/// * There is no iteration over entries: an entry is reached only through its key, which is
///   what lets the collector drop it safely while mutators run.
///
/// The handle is `Copy`: store it in objects and cells like a `Gc`. Every operation takes the
/// table's lock briefly; values are cloned out (`V` is typically a `Gc`, a [`GcWeak`](crate::GcWeak)
/// or a [`NanBox`](crate::NanBox)).
///
/// **Cost**: marking a table costs one mark-bit test per entry; a table with keys not yet
/// marked when it is scanned is gone over again in each *ephemeron round* of the cycle (one
/// round per link of the longest chain of entries whose value leads to another entry's key)
/// until two rounds have marked something. A cycle that needs more indexes the entries whose
/// keys are unmarked by key (a hash-table insertion each, once), and each later round costs a
/// lookup per object the collector marked since the last one: chains cost time linear in
/// their length (a key a mutator stores while the cycle follows the chain costs a pass over
/// the indexed keys).
/// `docs/benchmarks.md` has figures.
///
/// ```
/// use gc_core::{Config, Gc, GcEphemeronTable, Heap, Mutator, Rootable};
///
/// let heap = Heap::new(Config::default()).unwrap();
/// let mut m: Mutator<Rootable!['gc => GcEphemeronTable<'gc, u64, Gc<'gc, String>>]> =
///     heap.mutator(|mc| GcEphemeronTable::new(mc));
/// m.mutate(|mc, table| {
///     let key = Gc::new(mc, 7u64);
///     table.insert(mc, key, Gc::new(mc, "seven".to_string()));
///     assert_eq!(table.get(key).map(|v| v.as_str().to_owned()), Some("seven".into()));
/// });
/// // The key is not reachable from anywhere else: the next cycle removes the entry.
/// m.collect();
/// assert_eq!(m.mutate(|_, table| table.len()), 0);
/// ```
pub struct GcEphemeronTable<'gc, K: ?Sized, V> {
    inner: Gc<'gc, EphemeronObj<V>>,
    _k: PhantomData<Gc<'gc, K>>,
}

impl<K: ?Sized, V> Clone for GcEphemeronTable<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: ?Sized, V> Copy for GcEphemeronTable<'_, K, V> {}

impl<K: ?Sized, V> fmt::Debug for GcEphemeronTable<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcEphemeronTable({:p})", self.inner.object())
    }
}

impl<'gc, K: ?Sized + 'gc, V: Trace + Send + Sync + 'gc> GcEphemeronTable<'gc, K, V> {
    /// A new, empty table.
    ///
    /// # Panics
    /// Where [`GcEphemeronTable::try_new`] would return an [`AllocError`]
    /// (the arena is exhausted, a heap limit refuses), with its message.
    pub fn new(mc: &Mutation<'gc>) -> Self {
        match Self::try_new(mc) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// A new, empty table, or an error if the arena cannot hold it.
    pub fn try_new(mc: &Mutation<'gc>) -> Result<Self, AllocError> {
        Ok(GcEphemeronTable {
            inner: Gc::try_new(mc, EphemeronObj::new())?,
            _k: PhantomData,
        })
    }

    /// Set the value for `key`, returning the previous one.
    pub fn insert(&self, mc: &Mutation<'gc>, key: Gc<'gc, K>, value: V) -> Option<V> {
        // Insertion barrier on the value (a table allocated during marking is never scanned in
        // that cycle) and on the key: a scope that blocked across the start of marking may hold
        // a key outside the snapshot, and a table already scanned (or never scanned) would not
        // be cleared of it if it stayed unmarked. Any other key a mutator can name is marked by
        // the end of marking anyway, so shading it changes nothing.
        mc.shade_barrier(&key);
        mc.shade_barrier(&value);
        let old = self.inner.map().insert(key.object() as usize, value);
        // Deletion barrier: the marker may not have traced the old value yet.
        if let Some(o) = &old {
            mc.shade_barrier(o);
        }
        old
    }

    /// The value for `key` (a clone).
    ///
    /// # Panics
    /// If `V::clone` uses this or any other ephemeron table (it runs with this table locked):
    /// as a `RefCell` borrowed mutably twice does, rather than wait for its own lock for ever,
    /// or for another table's held by a thread that waits for this one. A `Clone` should not
    /// wait for other threads either: the collector may wait for the table meanwhile.
    pub fn get(&self, key: Gc<'gc, K>) -> Option<V>
    where
        V: Clone,
    {
        self.inner.get_cloned(key.object() as usize)
    }

    /// Whether `key` has an entry.
    pub fn contains_key(&self, key: Gc<'gc, K>) -> bool {
        self.inner.map().contains_key(&(key.object() as usize))
    }

    /// Remove `key`'s entry, returning its value.
    pub fn remove(&self, mc: &Mutation<'gc>, key: Gc<'gc, K>) -> Option<V> {
        let old = self.inner.map().remove(&(key.object() as usize));
        if let Some(o) = &old {
            mc.shade_barrier(o);
        }
        old
    }

    /// Entries not yet removed (an entry whose key died is removed after the cycle that found
    /// it dead).
    pub fn len(&self) -> usize {
        self.inner.map().len()
    }

    /// Whether [`GcEphemeronTable::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: the one edge is to the table object, whose own `trace` handles the entries.
unsafe impl<K: ?Sized, V: Trace> Trace for GcEphemeronTable<'_, K, V> {
    #[inline(always)]
    fn trace(&self, tracer: &mut Tracer) {
        self.inner.trace(tracer);
    }
}

// SAFETY: the handle is the table object's non-null address.
// `WORD_EDGE`: the word is also the one edge the handle's `trace` reports.
unsafe impl<'gc, K: ?Sized + 'gc, V: Trace + 'gc> Slot<'gc> for GcEphemeronTable<'gc, K, V> {
    const WORD_EDGE: bool = true;
    fn to_word(self) -> usize {
        self.inner.to_word()
    }
    unsafe fn from_word(w: usize) -> Self {
        GcEphemeronTable {
            // SAFETY: forwarded contract.
            inner: unsafe { Gc::from_word(w) },
            _k: PhantomData,
        }
    }
}

// SAFETY: `None` is 0, which no table address is.
// `WORD_EDGE`: `None` reports nothing; `Some` is the handle's word, the one edge its `trace`
// reports.
unsafe impl<'gc, K: ?Sized + 'gc, V: Trace + 'gc> Slot<'gc>
    for Option<GcEphemeronTable<'gc, K, V>>
{
    const WORD_EDGE: bool = true;
    fn to_word(self) -> usize {
        self.map_or(0, |t| t.to_word())
    }
    unsafe fn from_word(w: usize) -> Self {
        // SAFETY: forwarded contract; 0 is `None`.
        (w != 0).then(|| unsafe { GcEphemeronTable::from_word(w) })
    }
}
