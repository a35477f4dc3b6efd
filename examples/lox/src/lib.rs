//! # lox: a Lox bytecode VM on gc-core
//!
//! A complete implementation of Lox, the language of *Crafting Interpreters*, written for this
//! project as the first real client of the collector: every runtime object (strings, functions,
//! closures, upvalues, classes, instances, bound methods, and the hash tables of globals,
//! fields and methods) lives on the gc-core heap, and the crate has no `unsafe` code.
//!
//! The data flow: [`scanner`] → [`compiler`] (single pass, to [`chunk::Proto`], plain Rust
//! data) → [`vm`] (loads the protos onto the heap as [`value::Function`]s and runs them).
//! [`value`] defines the one-word NaN-boxed [`value::Value`] and the object kinds; [`table`]
//! the GC-array hash tables and the weak string interner.

#![forbid(unsafe_code)]

pub mod chunk;
pub mod compiler;
pub mod scanner;
pub mod table;
pub mod value;
pub mod vm;

pub use vm::{LoxError, Options, Vm};
