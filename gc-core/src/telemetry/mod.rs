//! What the heap reports: counters and `HeapStats`, Go-named metrics, per-cycle records
//! (gctrace), phase and pause records, minimum mutator utilisation, and their text and JSON
//! renderings.

pub mod gctrace;
pub mod metrics;
pub mod mmu;
pub(crate) mod pacertrace;
pub mod phases;
mod render;
