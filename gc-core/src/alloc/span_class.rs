//! Span classes: one object type in one size class per span (a BiBoP heap: "big bag of pages").
//!
//! Objects carry no header. What the collector needs to know about an object (how to trace it,
//! its drop glue, its name) is the same for every object of its type, so a span holds objects
//! of **one type** only, and the span records that type once, as a [`TypeTag`]. A small span's
//! **span class** is the pair (type, size class); each span class has its own central lists
//! (Go keys `mcentral` by size class × scan/noscan and keeps pointer bitmaps per object; here
//! tracing is the type's own `Trace` code, so the type itself is the key).
//!
//! The allocator does not know what a tag points to; the collector makes every tag from its
//! per-type table and reads it back from the span (see [`TypeTag::new`]).
//!
//! # Cost
//!
//! A two-pointer node takes 16 bytes instead of 24. The price is fragmentation across types: a
//! partly free span of one type cannot take objects of another, so a heap holds up to one
//! partly used span per span class and mutator cache beyond what the objects need (at most
//! `pages × 8 KiB` each: 16 KiB for 16-byte slots, 32 KiB for most classes up to 8 KiB).
//! An emptied span stays with its span class for a while (kept for reuse, see
//! `alloc::central`), then goes back to the page heap, where it serves any class.
//!
//! # The registry
//!
//! Span classes get dense ids on first use ([`SpanClasses::id`], a map under a lock, taken once
//! per cache entry, not per allocation) and live until the heap is dropped, in a table of
//! lazily made chunks that is read without a lock.
//!
//! One type can come with tags of different addresses: a tag is the address of a constant, and
//! each codegen unit that inlines the allocation path may get a copy of the constant (the Lox VM's
//! object type had two). Such tags share one span class: a tag met for the first time is also
//! looked up by its [`TypeIdentity`], what the collector makes of the type (its trace and drop
//! functions, size and name), and a tag with the identity of a class already made joins that
//! class. The allocation caches still key entries by the tag's address (the fast path compares
//! it), so a cache may hold one entry per copy; the central lists and their spans are shared.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::alloc::central::ClassLists;

/// The identity of an object type, as the allocator sees it: an opaque `'static` address the
/// collector gives meaning to, and the two facts the allocator itself needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TypeTag {
    ptr: *const (),
    /// Objects of this type hold no GC pointers: the marker never reads them.
    pub noscan: bool,
    /// Objects of this type have drop glue: the sweeper must visit each dead one.
    pub drops: bool,
}

// SAFETY: a tag is the address of immutable `'static` data (see `TypeTag::new`); sharing or
// sending the address shares nothing mutable.
unsafe impl Send for TypeTag {}
// SAFETY: as for `Send`.
unsafe impl Sync for TypeTag {}

impl TypeTag {
    /// A tag for the type described at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point to immutable data that lives for the rest of the program, and every tag
    /// of one heap must point to a value of the same type: the collector casts
    /// [`TypeTag::ptr`] back to that type (`gc::object::type_of`).
    pub(crate) const unsafe fn new(ptr: *const (), noscan: bool, drops: bool) -> TypeTag {
        TypeTag { ptr, noscan, drops }
    }

    /// The address the tag was made from.
    #[inline(always)]
    pub(crate) fn ptr(self) -> *const () {
        self.ptr
    }

    /// The allocation-cache key of this type in size class `class`.
    #[inline(always)]
    pub(crate) fn key(self, class: usize) -> CacheKey {
        CacheKey {
            ty: self.ptr as usize,
            class,
        }
    }
}

/// What the collector makes of a type, as far as the spans of a class depend on it (from
/// `gc::object::TypeInfo`; opaque here): tags with equal identities are interchangeable for a
/// span class, since the collector treats objects alike whichever of them they came with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct TypeIdentity {
    /// The trace, chunked-trace and drop functions' addresses (0 for none), the size and the
    /// pointer words.
    pub words: [usize; 5],
    /// The type's name.
    pub name: &'static str,
}

/// The key of a span class in an allocation cache: the type's address and the size class, both
/// compared (two compares; packing them into one word would rely on how many address bits a
/// platform uses, and two keys that collided would allocate one type in another's span).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct CacheKey {
    /// The type's address; 0 for no type (an unused cache entry: no tag is null).
    pub ty: usize,
    /// The size class.
    pub class: usize,
}

impl CacheKey {
    /// The key of an unused cache entry.
    pub(crate) const NONE: CacheKey = CacheKey { ty: 0, class: 0 };
}

/// One span class: a type in a size class, with its central lists.
pub(crate) struct SpanClass {
    /// Size-class index.
    pub size_class: usize,
    /// The type of every object in the class's spans.
    pub tag: TypeTag,
    /// The class's partial and unswept spans.
    pub lists: Mutex<ClassLists>,
}

/// Span classes per chunk of the table.
const CHUNK: usize = 256;
/// Chunks in the table: at most `CHUNK * CHUNKS` span classes per heap.
const CHUNKS: usize = 256;
/// The most span classes a heap can have (distinct (type, size class) pairs allocated).
pub(crate) const MAX_SPAN_CLASSES: usize = CHUNK * CHUNKS;

/// A chunk of the span-class table: `CHUNK` classes, each made once.
type Chunk = Box<[OnceLock<SpanClass>]>;

/// The span classes of one heap.
pub(crate) struct SpanClasses {
    chunks: Box<[OnceLock<Chunk>]>,
    /// Number of span classes made (ids `0..count` are all initialised once this is read with
    /// `Acquire`).
    count: AtomicUsize,
    /// The registry, taken when a cache entry meets a new key.
    ids: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// (type address, size class) → id.
    by_tag: HashMap<(usize, usize), usize>,
    /// (type identity, size class) → id.
    by_identity: HashMap<(TypeIdentity, usize), usize>,
}

impl SpanClasses {
    pub(crate) fn new() -> SpanClasses {
        SpanClasses {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            count: AtomicUsize::new(0),
            ids: Mutex::new(Registry::default()),
        }
    }

    /// The id of the span class of `tag` in size class `size_class`, made on first use; `None`
    /// when the heap already has [`MAX_SPAN_CLASSES`].
    /// A tag not met before joins the class of an earlier tag with the same `identity`
    /// (computed only then).
    pub(crate) fn id(
        &self,
        tag: TypeTag,
        size_class: usize,
        identity: impl FnOnce(TypeTag) -> TypeIdentity,
    ) -> Option<usize> {
        let mut reg = self.ids.lock();
        let by_tag = (tag.ptr as usize, size_class);
        if let Some(&id) = reg.by_tag.get(&by_tag) {
            return Some(id);
        }
        let by_identity = (identity(tag), size_class);
        if let Some(&id) = reg.by_identity.get(&by_identity) {
            reg.by_tag.insert(by_tag, id);
            return Some(id);
        }
        let id = self.count.load(Ordering::Relaxed);
        if id >= MAX_SPAN_CLASSES {
            return None;
        }
        let chunk = self.chunks[id / CHUNK]
            .get_or_init(|| (0..CHUNK).map(|_| OnceLock::new()).collect::<Box<[_]>>());
        if chunk[id % CHUNK]
            .set(SpanClass {
                size_class,
                tag,
                lists: Mutex::new(ClassLists::default()),
            })
            .is_err()
        {
            bug!("span class {id} made twice");
        }
        reg.by_tag.insert(by_tag, id);
        reg.by_identity.insert(by_identity, id);
        // Release: whoever reads the count sees every class below it initialised.
        self.count.store(id + 1, Ordering::Release);
        Some(id)
    }

    /// Span class `id` (made by [`SpanClasses::id`]).
    #[inline]
    pub(crate) fn get(&self, id: usize) -> &SpanClass {
        self.chunks[id / CHUNK]
            .get()
            .and_then(|c| c[id % CHUNK].get())
            .unwrap_or_else(|| bug!("span class {id} used before it was made"))
    }

    /// Number of span classes made so far.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// A tag for allocator tests, where no collector reads what it points to.
#[cfg(test)]
pub(crate) fn test_tag<T>(p: &'static T, noscan: bool) -> TypeTag {
    // SAFETY (test): the allocator's tests never cast a tag back, so the type it points to does
    // not matter; `p` is `'static`.
    unsafe { TypeTag::new(p as *const T as *const (), noscan, false) }
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: u64 = 1;
    static B: u64 = 2;

    fn tag(p: &'static u64, noscan: bool) -> TypeTag {
        test_tag(p, noscan)
    }

    /// Each address a type of its own.
    fn own(t: TypeTag) -> TypeIdentity {
        TypeIdentity {
            words: [t.ptr as usize, 0, 0, 0, 0],
            name: "",
        }
    }

    #[test]
    fn ids_are_dense_and_stable_per_type_and_class() {
        let c = SpanClasses::new();
        let a2 = c.id(tag(&A, false), 2, own).unwrap();
        let b2 = c.id(tag(&B, true), 2, own).unwrap();
        let a3 = c.id(tag(&A, false), 3, own).unwrap();
        assert_eq!((a2, b2, a3), (0, 1, 2));
        assert_eq!(c.id(tag(&A, false), 2, own), Some(a2));
        assert_eq!(c.count(), 3);
        assert_eq!(c.get(b2).size_class, 2);
        assert!(c.get(b2).tag.noscan);
        assert_eq!(c.get(a3).tag, tag(&A, false));
    }

    /// A second address of one type (same identity) joins the first one's class, in each size
    /// class, and is asked for its identity only the first time; another type does not.
    #[test]
    fn tags_with_one_identity_share_a_class() {
        static A2: u64 = 3;
        let c = SpanClasses::new();
        let same = |_: TypeTag| TypeIdentity {
            words: [1, 0, 0, 8, 0],
            name: "A",
        };
        let a = c.id(tag(&A, false), 2, same).unwrap();
        let a2 = c.id(tag(&A2, false), 2, same).unwrap();
        assert_eq!(a, a2);
        assert_eq!(
            c.get(a2).tag,
            tag(&A, false),
            "the class keeps its first tag"
        );
        assert_eq!(c.id(tag(&A2, false), 2, |_| unreachable!()), Some(a));
        let other = c
            .id(tag(&B, false), 2, |_| TypeIdentity {
                words: [1, 0, 0, 8, 0],
                name: "B",
            })
            .unwrap();
        assert_ne!(other, a);
        let a2_3 = c.id(tag(&A2, false), 3, same).unwrap();
        assert_eq!(c.id(tag(&A, false), 3, same), Some(a2_3));
        assert_eq!(c.count(), 3);
    }

    /// The heap's last span class is made, and the next one is refused (`None`, which the
    /// allocation paths turn into `AllocError::TooManyTypes`) rather than indexed past the end;
    /// the classes already made are still found.
    #[test]
    #[cfg_attr(miri, ignore)] // 65 536 classes: minutes under Miri
    fn the_class_past_the_last_is_refused() {
        static SLOTS: [u8; 1024] = [0; 1024];
        let c = SpanClasses::new();
        let size_classes = MAX_SPAN_CLASSES / SLOTS.len();
        for sc in 0..size_classes {
            for slot in &SLOTS {
                assert!(c.id(test_tag(slot, true), sc, own).is_some());
            }
        }
        assert_eq!(c.count(), MAX_SPAN_CLASSES);
        assert_eq!(c.id(test_tag(&A, true), 0, own), None);
        assert_eq!(c.id(test_tag(&SLOTS[0], true), size_classes, own), None);
        assert_eq!(c.count(), MAX_SPAN_CLASSES);
        assert_eq!(
            c.id(test_tag(&SLOTS[5], true), 1, own),
            Some(SLOTS.len() + 5)
        );
        assert_eq!(c.get(MAX_SPAN_CLASSES - 1).size_class, size_classes - 1);
    }

    #[test]
    fn keys_differ_by_class_and_type() {
        let (a, b) = (tag(&A, false), tag(&B, false));
        assert_ne!(a.key(1), a.key(2));
        assert_ne!(a.key(1), b.key(1));
        assert_ne!(a.key(0), CacheKey::NONE);
        assert_eq!(a.key(5).ty, &A as *const u64 as usize);
    }
}
