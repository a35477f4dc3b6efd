//! The pacer: when a cycle starts, where it should end, and who marks how much (Go 1.19:
//! `gcControllerState` in `runtime/mgcpacer.go`, design 44167 "GC pacer redesign" and design
//! 48409 "soft memory limit"; the CPU limiter of `mgclimit.go`; the scavenger goals of
//! `mgcscavenge.go`).
//!
//! Everything here is **pure**: no clock, thread, atomic or global. The collector feeds it what
//! it measured (bytes marked, scan work done, bytes allocated, CPU time of assists and
//! workers, memory mapped) and applies what it returns (trigger, heap goal, assist ratio, worker
//! counts). A simulator or a test can drive the same code in virtual time:
//!
//! ```
//! use gc_core::pacer::{MemoryStats, Pacer};
//! let mut p = Pacer::new(Some(100), None, 4);
//! // The first cycle ended with 64 MiB marked, all of it scannable, no stacks or globals.
//! p.reset_live(64 << 20, 64 << 20, 64 << 20, 0);
//! p.commit(true, 64 << 20);
//! let (trigger, goal) = p.trigger(MemoryStats::default());
//! assert_eq!(goal, 128 << 20); // GOGC=100: marked × 2
//! // The trigger lies between the lowest trigger (by default 0.8 of the way from the marked heap
//! // to the goal) and the goal.
//! assert!(trigger >= (64 << 20) + (64 << 20) / 10 * 8 && trigger < goal);
//! ```
//!
//! # Units
//!
//! Bytes are `u64`. *Scan work* is eight bytes per unit of the marker's work: one unit per
//! object scanned and per non-null edge followed (roots included), so a node with two pointers
//! costs three units. The scannable heap (`heap_scan`) a cycle expects is last cycle's scan work
//! plus the bytes of the scannable spans allocated since, a coarser measure of the same thing
//! (Go counts both up to an object's last pointer word). Times are nanoseconds of CPU.

mod model;
pub use crate::util::pacer_config::*;
pub use model::*;

pub(crate) mod controller;
pub(crate) mod scavenger;
