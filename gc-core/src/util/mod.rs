//! Leaf types every layer may use: the configuration (the heap's and the pacer's knobs) and the
//! error types, synchronisation primitives (swappable for loom's), CPU clocks, software prefetch,
//! internal-failure reporting, panics caught from user code.

#[macro_use]
pub(crate) mod bug;
pub(crate) mod clock;
pub mod config;
pub(crate) mod error;
pub(crate) mod pacer_config;
pub(crate) mod prefetch;
pub(crate) mod primitive;
pub(crate) mod unwind;
