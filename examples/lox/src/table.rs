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
/// until the table is rebuilt without it. Each bucket's hash is kept in a parallel noscan
/// array, so a probe compares hashes without touching the string objects.
///
/// The table is rebuilt **incrementally**, [`STEP`] buckets per `intern`, in two passes. When
/// it reaches its load limit, a first pass counts its live entries (inserts meanwhile still go
/// into it, a few past the limit); then a new table is made for twice as many (so it can also
/// shrink) and a second pass moves the live entries into it, while lookups try both tables.
/// Rebuilt all at once, a table of 131 072 buckets took 1.1–1.3 ms inside one instruction,
/// which a collection waiting for the VM to reach a poll point had to wait out
/// (`string_build.lox`: pauses of up to 2–3 ms, nearly all of it waiting for the mutator).
#[derive(Trace)]
pub struct Interner<'gc> {
    /// Entries ever filled in the current table since it was made (live or dead).
    count: GcCell<'gc, usize>,
    weaks: GcCell<'gc, Option<Weaks<'gc>>>,
    hashes: GcCell<'gc, Option<GcArray<'gc, u32>>>,
    /// The table being drained into the current one, if any.
    old_weaks: GcCell<'gc, Option<Weaks<'gc>>>,
    old_hashes: GcCell<'gc, Option<GcArray<'gc, u32>>>,
    /// The position of the pass in progress: buckets of the current table counted (first
    /// pass) or of the old table moved (second pass); [`IDLE`] when no pass runs.
    pass: GcCell<'gc, usize>,
    /// Live entries the first pass has counted, and strings inserted since it began.
    live: GcCell<'gc, usize>,
}

type Weaks<'gc> = GcArray<'gc, Option<GcWeak<'gc, Obj<'gc>>>>;

/// Buckets a pass handles per `intern` (a few microseconds).
const STEP: usize = 256;
/// `Interner::pass` when no pass runs.
const IDLE: usize = usize::MAX;

impl<'gc> Interner<'gc> {
    pub fn new() -> Self {
        Interner {
            count: GcCell::new(0),
            weaks: GcCell::new(None),
            hashes: GcCell::new(None),
            old_weaks: GcCell::new(None),
            old_hashes: GcCell::new(None),
            pass: GcCell::new(IDLE),
            live: GcCell::new(0),
        }
    }

    /// Live strings held (for tests and statistics; walks the table).
    pub fn live(&self, mc: &Mutation<'gc>) -> usize {
        let live = |w: &Option<GcWeak<'gc, Obj<'gc>>>| w.is_some_and(|w| w.upgrade(mc).is_some());
        let current = self
            .weaks
            .get()
            .map_or(0, |e| e.iter().filter(live).count());
        // The old table's buckets below `pass` are in the current one now.
        let old = self
            .old_weaks
            .get()
            .map_or(0, |e| e.iter().skip(self.pass.get()).filter(live).count());
        current + old
    }

    /// The string object with contents `s`, creating it if there is none.
    pub fn intern(&self, mc: &Mutation<'gc>, s: &str) -> Result<Gc<'gc, Obj<'gc>>, AllocError> {
        let hash = hash_bytes(s.as_bytes());
        self.step(mc, STEP)?;
        for (weaks, hashes) in [
            (self.weaks.get(), self.hashes.get()),
            (self.old_weaks.get(), self.old_hashes.get()),
        ] {
            if let (Some(weaks), Some(hashes)) = (weaks, hashes)
                && let Some(found) = Self::lookup(mc, weaks, hashes, s, hash)
            {
                return Ok(found);
            }
        }
        // Allocate everything first, then insert: a failure changes nothing.
        let chars = GcStr::try_new(mc, s)?;
        let obj = Gc::try_new(mc, Obj::String(LoxStr { hash, chars }))?;
        let weak = obj.try_downgrade(mc)?;
        let (weaks, hashes) = match (self.weaks.get(), self.hashes.get()) {
            (Some(w), Some(h)) => (w, h),
            _ => {
                let w = GcArray::try_new(mc, INTERNER_MIN_BUCKETS, None)?;
                let h = GcArray::try_new(mc, INTERNER_MIN_BUCKETS, 0u32)?;
                self.weaks.set(mc, Some(w));
                self.hashes.set(mc, Some(h));
                (w, h)
            }
        };
        if self.pass.get() != IDLE {
            self.live.set(mc, self.live.get() + 1);
        }
        Self::insert(mc, weaks, hashes, &self.count, weak, hash);
        if over_load(self.count.get(), weaks.len()) && self.pass.get() == IDLE {
            // Full: start counting.
            self.pass.set(mc, 0);
            self.live.set(mc, 0);
        }
        Ok(obj)
    }

    /// Put `weak` (a string with `hash`, in no table yet) in a free or dead bucket.
    fn insert(
        mc: &Mutation<'gc>,
        weaks: Weaks<'gc>,
        hashes: GcArray<'gc, u32>,
        count: &GcCell<'gc, usize>,
        weak: GcWeak<'gc, Obj<'gc>>,
        hash: u32,
    ) {
        let mask = weaks.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match weaks.get(i) {
                None => {
                    count.set(mc, count.get() + 1);
                    break;
                }
                // Reuse the bucket of a collected string.
                Some(w) if w.is_dead() => break,
                Some(_) => i = (i + 1) & mask,
            }
        }
        hashes.set(mc, i, hash);
        weaks.set(mc, i, Some(weak));
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

    /// Advance the pass in progress by up to `step` buckets. At the end of the first pass,
    /// make the new table (the only allocation: if it fails, nothing has changed but the pass's
    /// position, and the next `intern` tries again); at the end of the second, let the old
    /// table go.
    ///
    /// Liveness is read with `is_dead` and hashes from the parallel array, not by upgrading:
    /// an upgrade while the collector marks would shade (keep alive for this cycle) every
    /// interned string, and each shading is work done inside the mutation scope.
    fn step(&self, mc: &Mutation<'gc>, step: usize) -> Result<(), AllocError> {
        let (pass, Some(weaks), Some(hashes)) =
            (self.pass.get(), self.weaks.get(), self.hashes.get())
        else {
            return Ok(());
        };
        if pass == IDLE {
            return Ok(());
        }
        if let (Some(old), Some(old_hashes)) = (self.old_weaks.get(), self.old_hashes.get()) {
            // Second pass: move the old table's live entries.
            let to = pass.saturating_add(step).min(old.len());
            for i in pass..to {
                if let Some(w) = old.get(i)
                    && !w.is_dead()
                {
                    Self::insert(mc, weaks, hashes, &self.count, w, old_hashes.get(i));
                }
            }
            if to == old.len() {
                self.old_weaks.set(mc, None);
                self.old_hashes.set(mc, None);
                self.pass.set(mc, IDLE);
            } else {
                self.pass.set(mc, to);
            }
            return Ok(());
        }
        // First pass: count the live entries.
        let to = pass.saturating_add(step).min(weaks.len());
        let live = (pass..to)
            .filter(|&i| weaks.get(i).is_some_and(|w| !w.is_dead()))
            .count();
        self.live.set(mc, self.live.get() + live);
        if to < weaks.len() {
            self.pass.set(mc, to);
            return Ok(());
        }
        // Room for twice the live entries, and for the strings inserted while the second pass
        // runs (at most one per `step`).
        let need = self.live.get() * 2 + weaks.len() / step + 1;
        let mut capacity = INTERNER_MIN_BUCKETS;
        while over_load(need, capacity) {
            capacity *= 2;
        }
        self.pass.set(mc, weaks.len());
        let new_weaks = GcArray::try_new(mc, capacity, None)?;
        let new_hashes = GcArray::try_new(mc, capacity, 0u32)?;
        self.old_weaks.set(mc, Some(weaks));
        self.old_hashes.set(mc, Some(hashes));
        self.weaks.set(mc, Some(new_weaks));
        self.hashes.set(mc, Some(new_hashes));
        self.count.set(mc, 0);
        self.pass.set(mc, 0);
        Ok(())
    }
}

impl Default for Interner<'_> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gc_core::{Config, Heap, Mutator, Rootable};

    #[derive(Trace)]
    struct Holder<'gc> {
        strings: Interner<'gc>,
        kept: GcArray<'gc, Option<Gc<'gc, Obj<'gc>>>>,
    }

    type R = Rootable!['gc => Holder<'gc>];

    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 1000;
    /// One string in this many is kept.
    const KEEP: usize = 10;

    fn text(round: usize, i: usize) -> String {
        format!("s{round}-{i}")
    }

    /// 40 000 strings through many incremental rebuilds (both passes interleaved with
    /// lookups, new strings and collections, verify mode on): a kept string interned again is
    /// the same object whichever table it sits in, every kept one survives every rebuild, the
    /// dead ones are dropped, and the table is sized for the survivors, not for all that passed
    /// through.
    #[test]
    fn rebuilds_keep_strings_canonical_and_drop_the_dead() {
        let heap = Heap::new(Config::default().verify(true)).unwrap();
        let kept_len = ROUNDS * PER_ROUND / KEEP;
        let mut m: Mutator<R> = heap.mutator(|mc| Holder {
            strings: Interner::new(),
            kept: GcArray::new(mc, kept_len, None),
        });
        let mut passes_seen = 0;
        for round in 0..ROUNDS {
            m.mutate(|mc, h| {
                for i in 0..PER_ROUND {
                    let o = h.strings.intern(mc, &text(round, i)).unwrap();
                    if i % KEEP == 0 {
                        h.kept.set(mc, (round * PER_ROUND + i) / KEEP, Some(o));
                    }
                    // A kept string of an earlier round: still the canonical object.
                    if round > 0 && i % 97 == 0 {
                        let (r, j) = (i % round, (i / KEEP) * KEEP);
                        let again = h.strings.intern(mc, &text(r, j)).unwrap();
                        let k = h.kept.get((r * PER_ROUND + j) / KEEP).unwrap();
                        assert!(Gc::ptr_eq(again, k), "{} interned twice", text(r, j));
                    }
                    if h.strings.pass.get() != IDLE {
                        passes_seen += 1;
                    }
                }
            });
            if round % 3 == 0 {
                m.collect();
            }
        }
        assert!(passes_seen > 0, "no rebuild ran");
        m.collect();
        m.collect();
        m.mutate(|mc, h| {
            for round in 0..ROUNDS {
                for i in (0..PER_ROUND).step_by(KEEP) {
                    let again = h.strings.intern(mc, &text(round, i)).unwrap();
                    let k = h.kept.get((round * PER_ROUND + i) / KEEP).unwrap();
                    assert!(Gc::ptr_eq(again, k));
                }
            }
            let live = h.strings.live(mc);
            assert_eq!(live, kept_len, "only the kept strings are left");
        });
        // The table is rebuilt for the survivors once enough new strings fill it: intern more
        // garbage, collect, and look at its size.
        for round in ROUNDS..ROUNDS + 20 {
            m.mutate(|mc, h| {
                for i in 0..PER_ROUND {
                    h.strings.intern(mc, &text(round, i)).unwrap();
                }
            });
            m.collect();
        }
        m.mutate(|mc, h| {
            let len = h.strings.weaks.get().unwrap().len();
            // 4 000 survivors, twice as many buckets, plus room: 16 384 or 32 768; 40 000
            // strings in one table would need 65 536.
            assert!(
                len <= 32_768,
                "{len} buckets for {} live strings",
                h.strings.live(mc)
            );
        });
    }
}
