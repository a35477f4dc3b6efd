//! rust-gc (the `gc` crate, 0.5): a thread-local mark-sweep collector that finds its roots by
//! counting, per object, the `Gc` handles outside the heap; it collects on allocation when the
//! heap passes its threshold. Mutable fields are `GcCell`s.

// rust-gc's derives expand to impls inside a `const` block, which this lint flags.
#![allow(non_local_definitions)]

use gc::{Finalize, Gc, GcCell, Trace};

crate::handles::handle_peer!(RustGcPeer, Gc, GcCell, [Trace, Finalize]);
