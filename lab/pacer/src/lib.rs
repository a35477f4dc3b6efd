//! The pacer lab's pieces (the `pacer-lab` binary is their command line): workload
//! [`scenario`]s made of [`stream`]s, the [`sim`]ulator driving `gc_core::pacer`, trace
//! [`replay`], and [`output`] (CSV, table, figures).

pub mod output;
pub mod replay;
pub mod scenario;
pub mod sim;
pub mod stream;
