//! The public handles: `Heap`, `Mutator` and `Mutation`, `Gc`, cells (one-word `GcCell`,
//! borrow-flagged `GcRefCell`), arrays, strings, hash tables, weak references, ephemeron tables,
//! cleanups and finalizer queues, NaN-boxed values, roots and the stash, blocking regions.

pub(crate) mod array;
pub(crate) mod blocking;
pub(crate) mod cell;
pub(crate) mod ephemeron;
pub(crate) mod finalize;
pub(crate) mod gc;
pub(crate) mod heap;
pub(crate) mod mutator;
pub(crate) mod nanbox;
pub(crate) mod refcell;
pub(crate) mod root;
pub(crate) mod stash;
pub(crate) mod string;
pub(crate) mod table;
pub(crate) mod weak;
