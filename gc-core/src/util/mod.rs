//! Building blocks with no knowledge of the heap: synchronisation primitives (swappable for
//! loom's), internal-failure reporting, and the error types.

#[macro_use]
pub(crate) mod bug;
pub(crate) mod error;
pub(crate) mod primitive;
