//! # gc-core: a Go-style tracing garbage collector for an embedded heap
//!
//! gc-core gives a Rust program (typically a language interpreter or VM) a real tracing garbage
//! collector with a small, sound API in the style of gc-arena and a runtime modelled on Go's:
//! size-classed spans in an mmap-reserved arena, per-mutator allocation caches, mark bits in
//! bitmaps, concurrent marking with Go's hybrid write barrier, mark assists, lazy and
//! background sweeping, and a safepoint handshake that waits only for mutators inside a
//! mutation scope.
//!
//! ```
//! use gc_core::{Config, Gc, GcCell, Heap, Mutator, Rootable, Trace};
//!
//! #[derive(Trace)]
//! struct Node<'gc> {
//!     value: u64,
//!     next: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
//! }
//!
//! #[derive(Trace)]
//! struct Root<'gc> {
//!     list: GcCell<'gc, Option<Gc<'gc, Node<'gc>>>>,
//! }
//!
//! let heap = Heap::new(Config::default()).unwrap();
//! let mut m: Mutator<Rootable!['gc => Root<'gc>]> =
//!     heap.mutator(|_mc| Root { list: GcCell::new(None) });
//! m.mutate(|mc, root| {
//!     for value in 0..100 {
//!         let next = GcCell::new(root.list.get());
//!         root.list.set(mc, Some(Gc::new(mc, Node { value, next })));
//!     }
//! });
//! m.collect(); // the list is reachable from the root: nothing is freed
//! let sum = m.mutate(|_mc, root| {
//!     let mut sum = 0;
//!     let mut cur = root.list.get();
//!     while let Some(n) = cur {
//!         sum += n.value;
//!         cur = n.next.get();
//!     }
//!     sum
//! });
//! assert_eq!(sum, 4950);
//! ```
//!
//! ## Map of the crate
//!
//! Layers, top to bottom: `api` → `gc` → `pacer` → `telemetry` → `alloc` → `util`.
//!
//! A folder uses only itself and the folders below it (checked by `tests/layering.rs`).
//!
//! | folder | concept (Go's counterpart) |
//! |--------|----------------------------|
//! | `api` | the public handles: `Heap`, `Mutator`, `Mutation`, `Gc`, cells, arrays, strings, weak references, ephemeron tables, cleanups and finalizer queues, `NanBox`, roots, `Stash`, blocking regions |
//! | `gc` | the collector: shared state by owner, stopping the world, mutator registry and scopes, allocation as the collector sees it (`mallocgc`), the write barrier, marking (`mgcmark`, `mgcwork`), the one cycle (`mgc`), sweeping, weak clearing, ephemerons, finalization (`mfinal`), verify mode, `Trace` |
//! | [`pacer`] | the pure pacer model (`mgcpacer`, `mgclimit`), its controller, the scavenger |
//! | `telemetry` | [`metrics`] (`HeapStats`, `runtime/metrics` names), [`gctrace`], [`phases`], [`mmu`] |
//! | `alloc` | arena and page map, size classes, spans, central lists and sweep generation, caches (`mheap`, `mcentral`, `mcache`) |
//! | `util` | [`config`] and the pacer's knobs (`PacerConfig`, re-exported by [`pacer`]), errors, loom-swappable primitives, CPU clocks, `bug!` |
//!
//! See `docs/design.md` for the design and the soundness argument.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate self as gc_core;

#[macro_use]
mod util;

mod alloc;
mod api;
mod gc;
pub mod pacer;
mod telemetry;

pub use api::array::{GcArray, GcVec, VecObj};
pub use api::cell::{GcCell, Slot};
pub use api::ephemeron::GcEphemeronTable;
pub use api::finalize::GcFinalizers;
pub use api::gc::Gc;
pub use api::heap::Heap;
pub use api::mutator::{Mutation, Mutator};
pub use api::nanbox::{NanBox, Unboxed};
pub use api::refcell::{BorrowError, BorrowMutError, GcRef, GcRefCell, GcRefMut};
pub use api::root::{__DynRootable, NoStack, Root, RootStack, Rootable};
pub use api::stash::{Stash, StashValue};
pub use api::string::{GcBytes, GcStr};
pub use api::table::GcHashMap;
pub use api::weak::GcWeak;
pub use gc::mark::tracer::Tracer;
#[doc(hidden)]
pub use gc::trace::HoldsSelf;
pub use gc::trace::{Trace, UnsafeDrop};
pub use gc::weak::WeakBox;
pub use gc_derive::Trace;
pub use telemetry::metrics::HeapStats;
pub use telemetry::{gctrace, metrics, mmu, phases};
pub use util::config::{self, Config};
pub use util::error::{AllocError, ConfigError, HeapError};

/// Layout constants, for documentation and tests.
pub mod layout {
    pub use crate::alloc::arena::{MIN_RESERVATION, PAGE_SIZE};
    pub use crate::alloc::size_class::{CLASSES, MAX_SMALL_SIZE, NUM_CLASSES, SizeClass};
}
