//! `GcHashMap<'gc, K, V>`: a hash table for heap objects, keyed by value.
//!
//! A `std::collections::HashMap` in a [`GcRefCell`], with the operations an interpreter's
//! table needs taking the `&Mutation` where they change it. Keys are compared by `Eq` and
//! hashed by `Hash` like any `HashMap`'s: [`GcStr`](crate::GcStr) keys by their text, numbers
//! by value, a key type of the embedder's own (a tagged value whose strings compare by text,
//! say) by whatever its impls say. For a table keyed by object identity, key by
//! `Gc::as_ptr(…) as usize` and keep the object in the value.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::api::mutator::Mutation;
use crate::api::refcell::{GcRef, GcRefCell, GcRefMut};
use crate::gc::mark::tracer::Tracer;
use crate::gc::trace::Trace;

/// A hash table to put in a heap object: keys compared and hashed by value, keys and values
/// traced. Reads take `&self`; changes take the scope's `&Mutation` and run the
/// [`GcRefCell`] barrier. Like a `GcRefCell`, it panics if a change meets a borrow held
/// elsewhere ([`GcHashMap::borrow`], [`GcHashMap::borrow_mut`]), and a read panics if it meets
/// a change: a table that one thread changes while another reads it (shared through a
/// [`Stash`](crate::Stash)) needs a lock of its own, and a key's `Hash` or `Eq` must not read
/// the table it is being inserted into.
///
/// ```
/// use gc_core::{Config, Gc, GcHashMap, GcStr, Heap, Mutator, Rootable, Trace};
///
/// #[derive(Trace)]
/// struct Env<'gc> {
///     vars: GcHashMap<'gc, GcStr<'gc>, f64>,
/// }
///
/// let heap = Heap::new(Config::default()).unwrap();
/// let mut m: Mutator<Rootable!['gc => Gc<'gc, Env<'gc>>]> =
///     heap.mutator(|mc| Gc::new(mc, Env { vars: GcHashMap::new() }));
/// m.mutate(|mc, env| {
///     env.vars.insert(mc, GcStr::new(mc, "x"), 1.5);
///     // Another string with the same text finds the entry.
///     let key = GcStr::new(mc, "x");
///     assert_eq!(env.vars.get(&key), Some(1.5));
///     assert_eq!(env.vars.remove(mc, &key), Some(1.5));
///     assert!(env.vars.is_empty());
/// });
/// ```
pub struct GcHashMap<'gc, K, V, S = RandomState> {
    map: GcRefCell<'gc, HashMap<K, V, S>>,
}

impl<'gc, K: 'gc, V: 'gc> GcHashMap<'gc, K, V, RandomState> {
    /// An empty table.
    pub fn new() -> Self {
        GcHashMap {
            map: GcRefCell::new(HashMap::new()),
        }
    }

    /// An empty table with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        GcHashMap {
            map: GcRefCell::new(HashMap::with_capacity(n)),
        }
    }
}

impl<'gc, K: 'gc, V: 'gc> Default for GcHashMap<'gc, K, V, RandomState> {
    fn default() -> Self {
        GcHashMap::new()
    }
}

impl<'gc, K, V, S> GcHashMap<'gc, K, V, S>
where
    K: Eq + Hash + Trace + 'gc,
    V: Trace + 'gc,
    S: BuildHasher + 'static,
{
    /// An empty table hashing with `hasher` (a `'static` value: it is not traced).
    pub fn with_hasher(hasher: S) -> Self {
        GcHashMap {
            map: GcRefCell::new(HashMap::with_hasher(hasher)),
        }
    }

    /// Insert `value` under `key`; the previous value, if any.
    pub fn insert(&self, mc: &Mutation<'gc>, key: K, value: V) -> Option<V> {
        self.map.borrow_mut(mc).insert(key, value)
    }

    /// Remove the entry for `key`; its value, if any.
    pub fn remove<Q>(&self, mc: &Mutation<'gc>, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.borrow_mut(mc).remove(key)
    }

    /// The value for `key` (a copy: values are usually `Gc`s, numbers or tagged words).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.map.borrow().get(key).cloned()
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.borrow().contains_key(key)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }

    /// Remove every entry.
    pub fn clear(&self, mc: &Mutation<'gc>) {
        self.map.borrow_mut(mc).clear();
    }

    /// The entries, copied out (in the table's order), so that the caller may change the table
    /// while going through them.
    pub fn entries(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.map
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The table, by shared borrow (for iteration and the rest of `HashMap`'s API).
    ///
    /// # Panics
    ///
    /// If it is mutably borrowed.
    #[track_caller]
    pub fn borrow(&self) -> GcRef<'_, 'gc, HashMap<K, V, S>> {
        self.map.borrow()
    }

    /// The table, by mutable borrow, running the barrier.
    ///
    /// # Panics
    ///
    /// If it is borrowed.
    #[track_caller]
    pub fn borrow_mut<'a>(&'a self, mc: &'a Mutation<'gc>) -> GcRefMut<'a, 'gc, HashMap<K, V, S>> {
        self.map.borrow_mut(mc)
    }
}

// SAFETY: traced as its cell (the hasher is `'static`: see `HashMap`'s impl).
unsafe impl<K: Trace, V: Trace, S: 'static> Trace for GcHashMap<'_, K, V, S> {
    const NEEDS_TRACE: bool = K::NEEDS_TRACE || V::NEEDS_TRACE;
    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.map.trace(tracer);
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for GcHashMap<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.map.try_borrow() {
            Ok(m) => f.debug_map().entries(m.iter()).finish(),
            Err(_) => f.write_str("GcHashMap(<mutably borrowed>)"),
        }
    }
}
