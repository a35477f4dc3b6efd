//! Hash tables on the GC heap: [`Table`] (string keys to values: globals, fields, methods) and
//! [`Interner`] (the weak set of all strings).
//!
//! Both are open-addressing tables with linear probing over a GC array, grown to keep the load
//! at most 3/4 (Lox never deletes a field, method or global, so `Table` has no tombstones). Growth allocates the new array *before*
//! changing anything, so an allocation failure leaves the table as it was and the VM can retry
//! the instruction after a collection.
//!
//! Keys are interned strings, so a key compares by identity (the `Value` bits) and its hash is
//! the one cached in the string object.

use gc_core::{AllocError, Gc, GcArray, GcCell, GcStr, GcWeak, Mutation, Trace};

use crate::value::{LoxStr, Obj, Value, hash_bytes, is_nil, nil, str_hash};

/// Buckets of a table's first array (three fields fit before it grows).
const TABLE_MIN_BUCKETS: usize = 4;
/// Buckets of the interner's first array.
const INTERNER_MIN_BUCKETS: usize = 8;

/// Whether `count` used entries exceed the 3/4 load limit for `capacity` buckets.
fn over_load(count: usize, capacity: usize) -> bool {
    count * 4 > capacity * 3
}

/// A map from interned strings to values. Slot `2i` holds bucket `i`'s key (`nil` when
/// empty), slot `2i + 1` its value.
#[derive(Trace)]
pub struct Table<'gc> {
    /// Keys in use.
    count: GcCell<'gc, usize>,
    entries: GcCell<'gc, Option<GcArray<'gc, Value<'gc>>>>,
}

impl<'gc> Table<'gc> {
    pub fn new() -> Self {
        Table {
            count: GcCell::new(0),
            entries: GcCell::new(None),
        }
    }

    /// The bucket holding `key`, or the empty bucket where it would go.
    #[inline]
    fn find(entries: GcArray<'gc, Value<'gc>>, key: Gc<'gc, Obj<'gc>>) -> usize {
        let mask = entries.len() / 2 - 1;
        let key_bits = Value::gc(key).to_bits();
        let mut i = str_hash(key) as usize & mask;
        loop {
            let k = entries.get(2 * i);
            if k.to_bits() == key_bits || is_nil(k) {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The value of `key`. Inlined: it is on the path of every property access.
    #[inline(always)]
    pub fn get(&self, key: Gc<'gc, Obj<'gc>>) -> Option<Value<'gc>> {
        let entries = self.entries.get()?;
        let key_bits = Value::gc(key).to_bits();
        let mask = entries.len() / 2 - 1;
        let mut i = str_hash(key) as usize & mask;
        loop {
            let k = entries.get(2 * i);
            if k.to_bits() == key_bits {
                return Some(entries.get(2 * i + 1));
            }
            if is_nil(k) {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert or overwrite; returns whether the key is new. Fails only if growing fails, and
    /// then the table is unchanged.
    pub fn set(
        &self,
        mc: &Mutation<'gc>,
        key: Gc<'gc, Obj<'gc>>,
        value: Value<'gc>,
    ) -> Result<bool, AllocError> {
        // Overwriting an existing key (the common case) needs no growth check.
        if let Some(e) = self.entries.get() {
            let i = Self::find(e, key);
            if e.get(2 * i).to_bits() == Value::gc(key).to_bits() {
                e.set(mc, 2 * i + 1, value);
                return Ok(false);
            }
        }
        let count = self.count.get();
        let entries = match self.entries.get() {
            Some(e) if !over_load(count + 1, e.len() / 2) => e,
            old => self.grow(mc, old)?,
        };
        let i = Self::find(entries, key);
        self.count.set(mc, self.count.get() + 1);
        entries.set(mc, 2 * i, Value::gc(key));
        entries.set(mc, 2 * i + 1, value);
        Ok(true)
    }

    /// Copy every entry of `from` into this table (inheritance copies methods down).
    pub fn add_all(&self, mc: &Mutation<'gc>, from: &Table<'gc>) -> Result<(), AllocError> {
        if let Some(entries) = from.entries.get() {
            for i in 0..entries.len() / 2 {
                if let Some(k) = entries.get(2 * i).as_gc() {
                    self.set(mc, k, entries.get(2 * i + 1))?;
                }
            }
        }
        Ok(())
    }

    /// A new, larger array with the live entries of `old` rehashed into it (tombstones are
    /// dropped), installed as this table's entries.
    fn grow(
        &self,
        mc: &Mutation<'gc>,
        old: Option<GcArray<'gc, Value<'gc>>>,
    ) -> Result<GcArray<'gc, Value<'gc>>, AllocError> {
        // Double the bucket count (the old array has two slots per bucket).
        let buckets = old.map_or(TABLE_MIN_BUCKETS, |o| o.len());
        let new = GcArray::try_new(mc, 2 * buckets, nil())?;
        let mut count = 0;
        if let Some(old) = old {
            for i in 0..old.len() / 2 {
                if let Some(k) = old.get(2 * i).as_gc() {
                    let j = Self::find(new, k);
                    new.set(mc, 2 * j, Value::gc(k));
                    new.set(mc, 2 * j + 1, old.get(2 * i + 1));
                    count += 1;
                }
            }
        }
        self.entries.set(mc, Some(new));
        self.count.set(mc, count);
        Ok(new)
    }
}

impl Default for Table<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// The set of all live strings, so that equal strings are one object. Entries are weak: a
/// string nothing else references is collected, and its entry reads as dead (a tombstone)
/// until the next rehash drops it. Each bucket's hash is kept in a parallel noscan array, so a
/// probe compares hashes without touching the string objects.
#[derive(Trace)]
pub struct Interner<'gc> {
    /// Entries ever filled since the last rehash (live or dead).
    count: GcCell<'gc, usize>,
    weaks: GcCell<'gc, Option<GcArray<'gc, Option<GcWeak<'gc, Obj<'gc>>>>>>,
    hashes: GcCell<'gc, Option<GcArray<'gc, u32>>>,
}

type Weaks<'gc> = GcArray<'gc, Option<GcWeak<'gc, Obj<'gc>>>>;

impl<'gc> Interner<'gc> {
    pub fn new() -> Self {
        Interner {
            count: GcCell::new(0),
            weaks: GcCell::new(None),
            hashes: GcCell::new(None),
        }
    }

    /// Live strings held (for tests and statistics; walks the table).
    pub fn live(&self, mc: &Mutation<'gc>) -> usize {
        self.weaks.get().map_or(0, |e| {
            e.iter()
                .filter(|w| w.is_some_and(|w| w.upgrade(mc).is_some()))
                .count()
        })
    }

    /// The string object with contents `s`, creating it if there is none.
    pub fn intern(&self, mc: &Mutation<'gc>, s: &str) -> Result<Gc<'gc, Obj<'gc>>, AllocError> {
        let hash = hash_bytes(s.as_bytes());
        if let (Some(weaks), Some(hashes)) = (self.weaks.get(), self.hashes.get())
            && let Some(found) = Self::lookup(mc, weaks, hashes, s, hash)
        {
            return Ok(found);
        }
        // Allocate everything first, then insert: a failure changes nothing.
        let chars = GcStr::try_new(mc, s)?;
        let obj = Gc::try_new(mc, Obj::String(LoxStr { hash, chars }))?;
        let weak = obj.try_downgrade(mc)?;
        let (weaks, hashes) = match (self.weaks.get(), self.hashes.get()) {
            (Some(w), Some(h)) if !over_load(self.count.get() + 1, w.len()) => (w, h),
            (old, old_hashes) => self.rehash(mc, old.zip(old_hashes))?,
        };
        let mask = weaks.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match weaks.get(i) {
                None => {
                    self.count.set(mc, self.count.get() + 1);
                    break;
                }
                // Reuse the bucket of a collected string.
                Some(w) if w.is_dead() => break,
                Some(_) => i = (i + 1) & mask,
            }
        }
        hashes.set(mc, i, hash);
        weaks.set(mc, i, Some(weak));
        Ok(obj)
    }

    fn lookup(
        mc: &Mutation<'gc>,
        weaks: Weaks<'gc>,
        hashes: GcArray<'gc, u32>,
        s: &str,
        hash: u32,
    ) -> Option<Gc<'gc, Obj<'gc>>> {
        let mask = weaks.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let w = weaks.get(i)?;
            if hashes.get(i) == hash
                && let Some(o) = w.upgrade(mc)
                && let Obj::String(ls) = &*o
                && ls.chars.as_str() == s
            {
                return Some(o);
            }
            i = (i + 1) & mask;
        }
    }

    /// New arrays holding the live entries of `old`, sized for twice as many (or the same
    /// size if most of `old` was dead).
    ///
    /// Liveness is read with `is_dead` and hashes from the parallel array, not by upgrading:
    /// an upgrade while the collector marks would shade (keep alive for this cycle) every
    /// interned string, and each shading is work done inside the mutation scope.
    fn rehash(
        &self,
        mc: &Mutation<'gc>,
        old: Option<(Weaks<'gc>, GcArray<'gc, u32>)>,
    ) -> Result<(Weaks<'gc>, GcArray<'gc, u32>), AllocError> {
        let live: Vec<(GcWeak<'gc, Obj<'gc>>, u32)> = old
            .map(|(weaks, hashes)| {
                (0..weaks.len())
                    .filter_map(|i| {
                        let w = weaks.get(i)?;
                        (!w.is_dead()).then(|| (w, hashes.get(i)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut capacity = INTERNER_MIN_BUCKETS;
        while over_load(live.len() * 2 + 1, capacity) {
            capacity *= 2;
        }
        let weaks = GcArray::try_new(mc, capacity, None)?;
        let hashes = GcArray::try_new(mc, capacity, 0u32)?;
        let mask = capacity - 1;
        for &(w, hash) in &live {
            let mut i = hash as usize & mask;
            while weaks.get(i).is_some() {
                i = (i + 1) & mask;
            }
            weaks.set(mc, i, Some(w));
            hashes.set(mc, i, hash);
        }
        self.weaks.set(mc, Some(weaks));
        self.hashes.set(mc, Some(hashes));
        self.count.set(mc, live.len());
        Ok((weaks, hashes))
    }
}

impl Default for Interner<'_> {
    fn default() -> Self {
        Self::new()
    }
}
