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
//! ## Layers
//!
//! Layers, top to bottom: `api` → `gc` → `pacer` → `telemetry` → `alloc` → `util`.
//!
//! ## Map of the crate (data flow top to bottom)
//!
//! | module | concept |
//! |--------|---------|
//! | [`config`] | `Config`, GOGC and friends |
//! | `arena` | the virtual reservation, page allocator and page map |
//! | `size_class` | the size-class table |
//! | `span` | spans and their mark/alloc bitmaps |
//! | `central` | per-class span lists (Go: mcentral) |
//! | `alloc` | per-mutator allocation caches (Go: mcache) |
//! | `object` | object header and per-type info |
//! | [`trace`](Trace) | the `Trace` trait and its std impls |
//! | `gc`, `cell`, `array`, `string`, `weak` | the handles: `Gc`, `GcCell`, `GcArray`/`GcVec`, `GcStr`/`GcBytes`, `GcWeak` |
//! | `barrier` | the write-barrier hook |
//! | `root`, `stash` | roots: root object, root stack, heap-wide stash |
//! | `mutator` | `Mutator`, `Mutation`, scopes |
//! | `blocking` | `Mutation::blocking`: leaving the managed state around blocking calls |
//! | `safepoint` | the stop-the-world handshake |
//! | `mark` | tracing and the grey stack |
//! | `workers` | parallel mark workers and their termination detection |
//! | `sweepgen` | the sweep generation: the sweep claim and the weak-clearing window |
//! | `sweep` | lazy and background sweeping |
//! | [`pacer`] | GOGC, the memory limit, trigger, goal, assist ratio, CPU limiter (pure) |
//! | `pacing` | feeding the pacer and applying its answers |
//! | `scavenger` | returning free pages to the OS |
//! | [`gctrace`] | per-cycle records and Go's gctrace line |
//! | `collector` | when cycles run; the stop-the-world cycle; the collector thread |
//! | `concurrent` | the concurrent cycle: STW 1, concurrent mark, assists, STW 2 |
//! | [`phases`] | phase and pause records |
//! | `verify` | verify mode |
//! | `metrics` | `HeapStats` |
//! | `heap` | the `Heap` handle and shared state |
//! | `bug` | internal invariant failures abort with a report |
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
pub use api::gc::Gc;
pub use api::heap::Heap;
pub use api::mutator::{Mutation, Mutator};
pub use api::nanbox::{NanBox, Unboxed};
pub use api::root::{__DynRootable, NoStack, Root, RootStack, Rootable};
pub use api::stash::Stash;
pub use api::string::{GcBytes, GcStr};
pub use api::weak::GcWeak;
pub use gc::mark::tracer::Tracer;
pub use gc::trace::Trace;
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
