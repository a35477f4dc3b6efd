//! The collector: the state a heap shares, the stop-the-world handshake, the write barrier,
//! marking, sweeping, weak-reference clearing and the verifier, and the cycle that runs them.

pub(crate) mod barrier;
pub(crate) mod collector;
pub(crate) mod concurrent;
pub(crate) mod heap;
pub(crate) mod mark;
pub(crate) mod object;
pub(crate) mod safepoint;
pub(crate) mod sweep;
pub(crate) mod trace;
pub(crate) mod verify;
