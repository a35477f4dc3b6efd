//! Marking: the tracer, and the workers that run it in parallel.

pub(crate) mod tracer;
pub(crate) mod workers;
