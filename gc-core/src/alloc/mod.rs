//! The allocator (Go: `mheap`, `mcentral`, `mcache`): the arena and its page map, size classes,
//! spans with their bitmaps, span classes (one object type per span), the central span lists
//! with the sweep generation, and the per-mutator allocation caches.

pub(crate) mod arena;
pub(crate) mod cache;
pub(crate) mod central;
pub(crate) mod mheap;
pub(crate) mod size_class;
pub(crate) mod span;
pub(crate) mod span_class;
pub(crate) mod span_slab;
pub(crate) mod sweepgen;
