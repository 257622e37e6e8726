//! The crossinterp CPython extension, `crossinterp._native`, on raw pyo3-ffi
//! (PyO3 proper refuses subinterpreters). Thin by design: the engine lives in
//! `crossinterp-core`; this crate maps interpreters onto it.

pub mod atomic_dict;
pub mod atomic_ref;
pub mod atomics;
pub mod borrowed;
pub mod buffer;
pub mod channel;
pub mod common;
pub mod errors;
pub mod ffi;
pub mod interpreters;
pub mod module;
pub mod owners;
pub mod proxy;
pub mod queue;
pub mod views;
pub mod xi;

pub use module::PyInit__native;
