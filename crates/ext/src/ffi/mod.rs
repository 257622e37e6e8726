//! The safe layer over raw `pyo3-ffi` (in the spirit of the `whenever`
//! project): owned references, "an exception is set" results, panic-catching
//! trampolines, argument parsing, switching the calling thread between
//! interpreters, and the typed class layer ([`class`]) every native type is
//! declared with.
//!
//! This layer knows nothing of owners, types or the module: it imports only
//! `pyo3-ffi` and the engine's `sync` facade.

pub mod args;
pub mod capi;
pub mod class;
pub mod interp;
pub mod mem;
pub mod module;
mod object;

pub use object::*;
pub use pyo3_ffi as sys;
