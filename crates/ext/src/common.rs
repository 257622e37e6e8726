//! Argument helpers shared by the native types' methods.

use crate::ffi::{self, sys, Exc, PyErrSet, PyResult};
use std::time::{Duration, Instant};

/// The positional arguments of a METH_FASTCALL method.
pub type Args<'a> = &'a [*mut sys::PyObject];

/// Define `unsafe extern "C" fn $name(slf, args, nargs)` for METH_FASTCALL,
/// catching panics, delegating to `$body(slf, args)`.
#[macro_export]
macro_rules! method_fn {
    ($name:ident => $body:path) => {
        unsafe extern "C" fn $name(
            slf: *mut $crate::ffi::sys::PyObject,
            args: *mut *mut $crate::ffi::sys::PyObject,
            nargs: $crate::ffi::sys::Py_ssize_t,
        ) -> *mut $crate::ffi::sys::PyObject {
            $crate::ffi::trampoline(|| {
                let args: $crate::common::Args = if nargs <= 0 {
                    &[]
                } else {
                    // SAFETY: CPython passes `nargs` valid borrowed pointers.
                    unsafe { std::slice::from_raw_parts(args, nargs as usize) }
                };
                $body(slf, args)
            })
        }
    };
}

pub fn arity(name: &str, args: Args, n: usize) -> PyResult<()> {
    if args.len() != n {
        return Err(ffi::raise(
            Exc::TypeError,
            &format!(
                "{name}() takes exactly {n} argument(s) ({} given)",
                args.len()
            ),
        ));
    }
    Ok(())
}

pub fn arg_timeout(obj: *mut sys::PyObject) -> PyResult<Option<Duration>> {
    // SAFETY: attached; live argument.
    unsafe {
        if obj == sys::Py_None() {
            return Ok(None);
        }
        let v = sys::PyFloat_AsDouble(obj);
        if v == -1.0 && !sys::PyErr_Occurred().is_null() {
            return Err(PyErrSet);
        }
        if v.is_nan() || v < 0.0 {
            return Err(ffi::raise(
                Exc::ValueError,
                "timeout must be a non-negative number or None",
            ));
        }
        Ok(Some(
            Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX),
        ))
    }
}

/// Run `f` detached from the interpreter; `f` gets an "interrupted" hook that
/// briefly re-attaches to run signal handlers (true: an exception is set).
pub fn blocking<R>(f: impl FnOnce(&mut dyn FnMut() -> bool) -> R) -> R {
    // SAFETY: entry points run attached; detaching returns our thread state.
    let ts = unsafe { sys::PyEval_SaveThread() };
    let mut interrupted = || {
        // SAFETY: re-attach our own thread state, check, detach again.
        unsafe {
            sys::PyEval_RestoreThread(ts);
            let r = sys::PyErr_CheckSignals() < 0;
            sys::PyEval_SaveThread();
            r
        }
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut interrupted)));
    // SAFETY: re-attach what we detached.
    unsafe { sys::PyEval_RestoreThread(ts) };
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

pub fn deadline(block: bool, timeout: Option<Duration>) -> Option<Option<Instant>> {
    if !block {
        return None;
    }
    Some(timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future)))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 100)
}

pub fn is_true(obj: *mut sys::PyObject) -> PyResult<bool> {
    // SAFETY: attached; live argument.
    match unsafe { sys::PyObject_IsTrue(obj) } {
        -1 => Err(PyErrSet),
        v => Ok(v != 0),
    }
}
