//! Errors: configuration, heap creation and allocation failures are values, not crashes.

use std::fmt;

/// A configuration value that could not be accepted (from the environment or the builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable or setting, e.g. `"GOGC"`.
    pub var: &'static str,
    /// The value given.
    pub value: String,
    /// The forms that are accepted.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Why a [`Heap`](crate::Heap) could not be created.
#[derive(Debug)]
pub enum HeapError {
    /// The configuration was rejected.
    Config(ConfigError),
    /// The arena reservation is smaller than one span of the largest size class.
    ReservationTooSmall {
        /// Bytes requested (rounded down to whole pages).
        requested: usize,
        /// The smallest reservation accepted.
        minimum: usize,
    },
    /// The operating system refused the address-space reservation.
    Reserve(std::io::Error),
    /// The collector thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapError::Config(e) => write!(f, "{e}"),
            HeapError::ReservationTooSmall { requested, minimum } => write!(
                f,
                "arena reservation of {requested} bytes is too small: at least {minimum} bytes \
                 (one span of the largest size class) are needed"
            ),
            HeapError::Reserve(e) => write!(f, "could not reserve the arena: {e}"),
            HeapError::Thread(e) => write!(f, "could not start the collector thread: {e}"),
        }
    }
}

impl std::error::Error for HeapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeapError::Config(e) => Some(e),
            HeapError::Reserve(e) | HeapError::Thread(e) => Some(e),
            HeapError::ReservationTooSmall { .. } => None,
        }
    }
}

impl From<ConfigError> for HeapError {
    fn from(e: ConfigError) -> Self {
        HeapError::Config(e)
    }
}

/// An allocation that could not be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocError {
    /// The arena reservation has no run of pages large enough. Collection cannot run inside a
    /// mutation scope, so leave the scope (letting the collector free garbage) and retry, or
    /// configure a larger reservation.
    OutOfMemory {
        /// Bytes requested.
        requested: usize,
        /// Size of the arena reservation.
        reservation: usize,
    },
    /// The live heap is over the configured [`Config::max_heap`](crate::Config::max_heap): the
    /// last completed cycle found `live` bytes live. The refusal starts a cycle; once a cycle
    /// finds less live (the embedder dropped data), allocation works again.
    HeapLimit {
        /// Bytes the last completed cycle reached by tracing (live when it began).
        live: usize,
        /// The configured limit.
        limit: usize,
    },
    /// With a [`Config::max_heap`](crate::Config::max_heap) limit, the heap grew past `bound`
    /// (twice the larger of the heap goal and the limit) without a collection completing:
    /// a collection needs every mutation scope to end, and one has not (it does not poll
    /// `should_yield`, or allocates faster than that). Leave the scope so that a collection can
    /// run; allocation works again once the heap is back under the bound.
    HeapLimitInScope {
        /// Bytes allocated and not yet freed.
        heap: usize,
        /// The bound it passed.
        bound: usize,
        /// The configured live-heap limit.
        limit: usize,
    },
    /// The GC CPU limiter has been engaged for longer than the pacer's fail-fast window
    /// ([`PacerConfig::limiter_fail_fast_ns`](crate::pacer::PacerConfig::limiter_fail_fast_ns)):
    /// under its memory limit the heap needs more collection than half the CPU can give (the
    /// live heap is near or over the limit). Allocations that need a new span fail until the
    /// limiter has stayed off for more than a quarter of the window (and 2 ms), which it does
    /// once the GC uses less than half the CPU again, or the program has allocated nothing for
    /// that long (then the collector runs no cycles): drop data, or back off, and allocation
    /// works again. Changing the
    /// limit (`Heap::set_memory_limit`) lifts the stall at once. The refusal starts a cycle, as [`AllocError::HeapLimit`]
    /// does.
    MemoryLimitStall {
        /// How long the limiter had been engaged.
        limiter_on: std::time::Duration,
    },
    /// The requested array or string length overflows the address space.
    TooLarge {
        /// Elements requested.
        len: usize,
    },
    /// The heap already has the most span classes it can have (distinct pairs of an object
    /// type and a size class that have been allocated: each has its own spans).
    TooManyTypes {
        /// The most span classes a heap can have.
        limit: usize,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::OutOfMemory {
                requested,
                reservation,
            } => write!(
                f,
                "gc-core: out of memory: cannot allocate {requested} bytes in an arena \
                 reservation of {reservation} bytes"
            ),
            AllocError::HeapLimit { live, limit } => write!(
                f,
                "gc-core: out of memory: the last collection found {live} bytes live, over the \
                 heap limit of {limit} bytes"
            ),
            AllocError::HeapLimitInScope { heap, bound, limit } => write!(
                f,
                "gc-core: out of memory: the heap reached {heap} bytes inside a mutation scope, \
                 over its bound of {bound} bytes (twice the goal or the heap limit of {limit} \
                 bytes): end the scope so that a collection can run"
            ),
            AllocError::MemoryLimitStall { limiter_on } => write!(
                f,
                "gc-core: out of memory: the GC CPU limiter has been engaged for {:.0} ms under \
                 the memory limit, past the fail-fast window (the live heap is at or over the \
                 limit)",
                limiter_on.as_secs_f64() * 1e3
            ),
            AllocError::TooLarge { len } => {
                write!(
                    f,
                    "gc-core: allocation of {len} elements overflows the address space"
                )
            }
            AllocError::TooManyTypes { limit } => write!(
                f,
                "gc-core: too many object types: the heap has its limit of {limit} span classes \
                 (distinct type and size-class pairs)"
            ),
        }
    }
}

impl std::error::Error for AllocError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each message puts each figure in its place.
    #[test]
    fn allocation_errors_say_their_figures() {
        let msg = |e: AllocError| e.to_string();
        assert!(
            msg(AllocError::OutOfMemory {
                requested: 11,
                reservation: 22
            })
            .contains("cannot allocate 11 bytes in an arena reservation of 22 bytes")
        );
        assert!(
            msg(AllocError::HeapLimit {
                live: 33,
                limit: 22
            })
            .contains("found 33 bytes live, over the heap limit of 22 bytes")
        );
        let m = msg(AllocError::HeapLimitInScope {
            heap: 44,
            bound: 33,
            limit: 22,
        });
        assert!(
            m.contains("reached 44 bytes inside a mutation scope, over its bound of 33 bytes")
                && m.contains("the heap limit of 22 bytes"),
            "{m}"
        );
        assert!(
            msg(AllocError::MemoryLimitStall {
                limiter_on: std::time::Duration::from_millis(1500)
            })
            .contains("engaged for 1500 ms")
        );
        assert!(msg(AllocError::TooLarge { len: 7 }).contains("allocation of 7 elements"));
        assert!(msg(AllocError::TooManyTypes { limit: 9 }).contains("its limit of 9 span classes"));
    }
}
