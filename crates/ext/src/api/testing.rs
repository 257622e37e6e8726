//! Test hooks of `crossinterp._native` (`_testing_*`): not API.

use super::functions::{arg_f64, arg_i64};
use crate::cstr;
use crate::ffi::args::{arity, Args};
use crate::ffi::{self, sys, PyResult};
use crate::runtime::{owners, Error};
use std::ptr::null_mut;

pub fn hold_guard(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_testing_hold_guard", args, 2)?;
    let rec = owners::record(arg_i64(args[0], "id")?)?;
    let secs = arg_f64(args[1], "seconds")?;
    let guard = rec.view.guard().map_err(|e| Error::guard(e, rec.iid))?;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.max(0.0)));
        drop(guard);
    });
    Ok(ffi::none())
}

pub fn push_pending(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_testing_push_pending", args, 2)?;
    let rec = owners::record(arg_i64(args[0], "id")?)?;
    // SAFETY: live argument.
    let src = unsafe { ffi::str_utf8(args[1])? };
    let src = std::ffi::CString::new(src)
        // SAFETY: immutable static.
        .map_err(|_| ffi::raise(ffi::Exc::ValueError, "null byte in code"))?;
    let call = Box::new(move |_a: &crossinterp_core::Attached<'_>| {
        // SAFETY: pending calls run attached to their owner (the `Attached` proof).
        unsafe {
            let m = sys::PyImport_AddModuleRef(cstr!("__main__").as_ptr());
            if m.is_null() {
                sys::PyErr_WriteUnraisable(null_mut());
                return;
            }
            let d = sys::PyModule_GetDict(m);
            let r = sys::PyRun_StringFlags(src.as_ptr(), sys::Py_file_input, d, d, null_mut());
            if r.is_null() {
                sys::PyErr_WriteUnraisable(null_mut());
            } else {
                sys::Py_DecRef(r);
            }
            sys::Py_DecRef(m);
        }
    });
    if rec.view.push_pending(call).is_err() {
        return Err(Error::NotFound(rec.iid).into());
    }
    Ok(ffi::none())
}

/// `_testing_pickle_containers(on)`: containers (and `complex`) take the
/// pickle path again when `on`, so a benchmark compares both in one run.
pub fn pickle_containers(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_testing_pickle_containers", args, 1)?;
    crate::xi::set_pickle_containers(crate::ffi::args::arg_bool(args, 0)?);
    Ok(ffi::none())
}

/// `_testing_xi_cost(obj, n) -> (to_value seconds, rebuild seconds)`: the
/// two halves of a crossing, `n` times each, timed in Rust (no queue).
pub fn xi_cost(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_testing_xi_cost", args, 2)?;
    let n = arg_i64(args[1], "n")?.max(1);
    let t = std::time::Instant::now();
    let mut v = None;
    for _ in 0..n {
        // SAFETY: a live argument of the attached interpreter.
        v = Some(unsafe { crate::xi::to_value(args[0], false)? });
    }
    let conv = t.elapsed().as_secs_f64();
    let v = v.expect("n >= 1");
    let t = std::time::Instant::now();
    for _ in 0..n {
        drop(crate::xi::from_value(&v)?);
    }
    let build = t.elapsed().as_secs_f64();
    // SAFETY: attached.
    let (a, b) = unsafe {
        (
            crate::ffi::Owned::from_new(sys::PyFloat_FromDouble(conv))?,
            crate::ffi::Owned::from_new(sys::PyFloat_FromDouble(build))?,
        )
    };
    // SAFETY: attached; PyTuple_Pack takes borrowed references.
    Ok(unsafe { sys::PyTuple_Pack(2, a.as_ptr(), b.as_ptr()) })
}
