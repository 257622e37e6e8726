//! The crossinterp CPython extension, `crossinterp._native`, on raw pyo3-ffi
//! (PyO3 proper refuses subinterpreters). Thin by design: the engine lives in
//! `crossinterp-core`; this crate maps interpreters onto it, in layers that
//! import only downward (see docs/development.md):
//!
//! - [`ffi`]: the safe layer over pyo3-ffi, with the typed class layer;
//! - [`runtime`]: per-interpreter state and its type table, owners, pending
//!   calls, the one error mapping, exit;
//! - [`xi`]: cross-interpreter values (types register their conversions);
//! - [`types`]: one file or folder per Python type;
//! - [`api`]: the module-level functions;
//! - `module`: the module definition (lists, nothing else).

pub mod api;
pub mod ffi;
mod module;
pub mod runtime;
pub mod types;
pub mod xi;

pub use module::PyInit__native;
