//! The collector: the state a heap shares, the stop-the-world handshake, mutator scopes and
//! their registry, allocation as the collector sees it, the write barrier, marking, sweeping,
//! weak-reference clearing, ephemerons, finalization and the verifier, and the cycle that runs
//! them.

pub(crate) mod barrier;
pub(crate) mod blocking;
pub(crate) mod collector;
pub(crate) mod cycle;
pub(crate) mod ephemeron;
pub(crate) mod finalize;
pub(crate) mod heap;
pub(crate) mod malloc;
pub(crate) mod mark;
pub(crate) mod object;
pub(crate) mod registry;
pub(crate) mod report;
pub(crate) mod roots;
pub(crate) mod safepoint;
pub(crate) mod scope;
pub(crate) mod stw;
pub(crate) mod sweep;
pub(crate) mod trace;
pub(crate) mod verify;
pub(crate) mod weak;
