//! The runtime: what the extension keeps per interpreter and per process.
//!
//! - [`owners`]: each interpreter that imported the extension is an owner
//!   ([`owners::OwnerRecord`]); registration, finalization (with the hooks
//!   types register);
//! - [`pending`]: pending calls, run attached to their owner, and the reaper;
//! - [`state`]: the per-interpreter type table;
//! - [`errors`]: the one mapping from failures to crossinterp's exceptions;
//! - [`exit`]: finalizing owners at their interpreter's exit;
//! - [`lifecycle`]: the module object's exec / traverse / clear / free;
//! - [`pep788`]: CPython 3.15's interpreter views and guards;
//! - [`warnings`]: finalization warnings (`crossinterp.FinalizationWarning`).
//!
//! Imports only `ffi` and the engine.

pub mod errors;
pub mod exit;
pub mod fork;
pub mod lifecycle;
pub mod owners;
pub mod pending;
pub mod pep788;
pub mod state;
pub mod warnings;

pub use errors::Error;
pub use owners::{current, with_current, OwnerRecord};

use crate::ffi::class::NativeClass;
use crate::ffi::{Owned, PyResult};

/// A new instance of the attached interpreter's `T` holding `value`.
#[inline]
pub fn new_instance<T: NativeClass>(value: T) -> PyResult<Owned> {
    with_current(|rec| rec.types.new_instance(value))?
}

/// A new instance of the attached interpreter's Python class `cls`, a
/// subclass of `T` (see `TypeTable::new_subclass_instance`).
#[inline]
pub fn new_subclass_instance<T: NativeClass>(cls: &state::Import, value: T) -> PyResult<Owned> {
    with_current(|rec| rec.types.new_subclass_instance(cls, value))?
}
