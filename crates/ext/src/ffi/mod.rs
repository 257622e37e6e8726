//! The small safe layer over raw `pyo3-ffi` (in the spirit of the `whenever`
//! project): owned references, "an exception is set" results, panic-catching
//! trampolines, and switching the calling thread between interpreters.

pub mod interp;
mod object;

pub use object::*;
pub use pyo3_ffi as sys;
