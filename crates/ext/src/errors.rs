//! The one boundary where engine errors become Python exceptions.
//!
//! The exception classes are defined in `crossinterp/_errors.py` (documented
//! there and in the stubs); they are looked up by name in the raising
//! interpreter, so each interpreter raises its own classes.

use crate::cstr;
use crate::ffi::{self, sys, PyErrSet};
use crossinterp_core::GuardError;
use std::ffi::CStr;

fn raise_named(name: &CStr, msg: &str, keep_cause: bool) -> PyErrSet {
    // Keep an exception that is already set (the cause) out of the import.
    // SAFETY: attached (all callers run in entry points).
    let cause = unsafe { sys::PyErr_GetRaisedException() };
    match ffi::import_attr(cstr!("crossinterp._errors"), name) {
        Ok(t) => {
            ffi::raise_class(&t, msg);
            if keep_cause && !cause.is_null() {
                // SAFETY: attached; an exception is set (just raised); the
                // cause reference is stolen by PyException_SetCause.
                unsafe {
                    let exc = sys::PyErr_GetRaisedException();
                    sys::PyException_SetCause(exc, cause);
                    sys::PyErr_SetRaisedException(exc);
                }
            } else if !cause.is_null() {
                // SAFETY: we own `cause`.
                unsafe { sys::Py_DecRef(cause) };
            }
        }
        Err(PyErrSet) => {
            // The import error stays set; drop the older one.
            if !cause.is_null() {
                // SAFETY: we own `cause`.
                unsafe { sys::Py_DecRef(cause) };
            }
        }
    }
    PyErrSet
}

/// Raise the class `name` of `crossinterp._errors` with `msg`.
pub fn raise_by_name(name: &CStr, msg: &str) -> PyErrSet {
    raise_named(name, msg, false)
}

/// `InterpreterError(msg)`.
pub fn interpreter_error(msg: &str) -> PyErrSet {
    raise_named(cstr!("InterpreterError"), msg, false)
}

/// `InterpreterNotFoundError` for interpreter `iid`.
pub fn not_found(iid: i64) -> PyErrSet {
    raise_named(
        cstr!("InterpreterNotFoundError"),
        &format!("interpreter {iid} not found (it was closed, or never imported crossinterp)"),
        false,
    )
}

/// `NotShareableError(msg)`.
pub fn not_shareable(msg: &str) -> PyErrSet {
    raise_named(cstr!("NotShareableError"), msg, false)
}

/// `NotShareableError(msg)` from the exception currently set.
pub fn not_shareable_from_current(msg: &str) -> PyErrSet {
    raise_named(cstr!("NotShareableError"), msg, true)
}

/// A guard on interpreter `iid` was refused.
pub fn from_guard(e: GuardError, iid: i64) -> PyErrSet {
    match e {
        GuardError::Finalizing(_) => raise_named(
            cstr!("InterpreterFinalizingError"),
            &format!("interpreter {iid} is finalizing"),
            false,
        ),
        GuardError::TooManyGuards(_) => {
            interpreter_error(&format!("interpreter {iid} has too many open guards"))
        }
    }
}
