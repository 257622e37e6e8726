//! The module-level functions: the interpreters API ([`interpreters`] is the
//! logic, [`functions`] the Python-facing bodies) and test hooks.
//!
//! Imports every layer below (`ffi`, `runtime`, `xi`, `types`).

pub mod functions;
pub mod interpreters;
pub mod testing;
