//! Public C API functions and objects pyo3-ffi 0.28 does not declare, and
//! the dynamic-symbol lookup used for API that only some versions have.
//! Every declaration here follows the CPython header named beside it.

use super::sys;
use std::ffi::{c_char, c_int, c_void};

extern "C" {
    /// cpython/pylifecycle.h (3.13+): run `func(data)` at the end of
    /// `interp`'s teardown, attached.
    pub fn PyUnstable_AtExit(
        interp: *mut sys::PyInterpreterState,
        func: unsafe extern "C" fn(*mut c_void),
        data: *mut c_void,
    ) -> c_int;

    /// classobject.h: the bound-method type.
    pub static mut PyMethod_Type: sys::PyTypeObject;
    /// classobject.h: the `self` of a bound method (borrowed).
    pub fn PyMethod_Self(m: *mut sys::PyObject) -> *mut sys::PyObject;

    /// dlfcn.h: a symbol of the global scope (the interpreter's own C API).
    pub fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

#[cfg(all(Py_GIL_DISABLED, Py_3_14))]
extern "C" {
    /// cpython/object.h (3.14+): a fail-able incref (0 if the count hit zero).
    pub fn PyUnstable_TryIncRef(op: *mut sys::PyObject) -> c_int;
    /// cpython/object.h (3.14+): allow `PyUnstable_TryIncRef` on `op`.
    pub fn PyUnstable_EnableTryIncRef(op: *mut sys::PyObject);
}

/// `RTLD_DEFAULT` on Linux/glibc: search the global symbol scope.
pub const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

/// Run `f` at the end of the current interpreter's teardown
/// (`PyUnstable_AtExit`), attached; a panic in `f` is caught.
///
/// # Safety
/// Attached to the interpreter the callback is for.
pub unsafe fn at_exit(f: fn()) -> super::PyResult<()> {
    unsafe extern "C" fn trampoline(data: *mut c_void) {
        // SAFETY: `data` is the `fn()` registered below.
        let f: fn() = unsafe { std::mem::transmute::<*mut c_void, fn()>(data) };
        // A panic must not unwind into CPython.
        let _ = std::panic::catch_unwind(f);
    }
    // SAFETY: attached (the caller's contract), to the interpreter we pass.
    if unsafe { PyUnstable_AtExit(sys::PyInterpreterState_Get(), trampoline, f as *mut c_void) } < 0
    {
        return Err(super::PyErrSet);
    }
    Ok(())
}
