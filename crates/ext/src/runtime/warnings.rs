//! Finalization warnings: `crossinterp.FinalizationWarning` (a
//! `RuntimeWarning`) through `warnings`, in the interpreter whose `close()` is
//! ending the one that warns (so its filters, `catch_warnings` and
//! `pytest.warns` apply). When no interpreter can take it (an interpreter
//! ended by CPython, by its own exit, or at process exit), the documented
//! fallback: the same text on stderr, prefixed `crossinterp:
//! FinalizationWarning:`.

use crate::cstr;
use crate::ffi::{self, sys};
use std::ffi::CString;
use std::ptr::null_mut;

/// Warn about the finalization of interpreter `exiting`; called on the thread
/// running its exit (attached to it, or detached while waiting).
pub fn finalization(exiting: i64, msg: &str) {
    // SAFETY: our callers run on `exiting`'s exit thread (attached to it or
    // detached); the closure touches only the closer's objects and clears
    // what it raises.
    let warned = unsafe { ffi::interp::in_closer(exiting, || warn_attached(msg)) };
    if warned != Some(true) {
        eprintln!("crossinterp: FinalizationWarning: {msg}");
    }
}

/// `warnings.warn(msg, FinalizationWarning, stacklevel=2)` (the line that
/// called `close()`) in the attached interpreter
/// (which imported crossinterp: it called `close()`). False if the text
/// cannot be a C string.
fn warn_attached(msg: &str) -> bool {
    let Ok(text) = CString::new(msg) else {
        return false;
    };
    let cat = ffi::import_attr(cstr!("crossinterp._errors"), cstr!("FinalizationWarning"));
    // SAFETY: attached (in_closer); `cat` is alive for the call, the
    // RuntimeWarning fallback is a static type object.
    unsafe {
        let cat_ptr = match &cat {
            Ok(c) => c.as_ptr(),
            Err(_) => {
                sys::PyErr_Clear();
                sys::PyExc_RuntimeWarning
            }
        };
        if sys::PyErr_WarnEx(cat_ptr, text.as_ptr(), 2) < 0 {
            // A filter made it an error: nothing can catch it in the middle
            // of a close; report it as unraisable (stderr) and go on.
            sys::PyErr_WriteUnraisable(null_mut());
        }
    }
    true
}

/// `warnings.warn(msg, crossinterp.CycleWarning)` in the attached
/// interpreter (a `ResourceWarning` if the category cannot be imported). An
/// `Err` when a filter turned it into an exception (the caller propagates it).
pub fn cycle(msg: &str) -> ffi::PyResult<()> {
    let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    let cat = ffi::import_attr(cstr!("crossinterp._errors"), cstr!("CycleWarning"));
    // SAFETY: attached (our callers are entry points of the attached
    // interpreter); `cat` is alive for the call, the ResourceWarning fallback
    // is a static type object.
    unsafe {
        let cat_ptr = match &cat {
            Ok(c) => c.as_ptr(),
            Err(_) => {
                sys::PyErr_Clear();
                sys::PyExc_ResourceWarning
            }
        };
        if sys::PyErr_WarnEx(cat_ptr, text.as_ptr(), 1) < 0 {
            return Err(ffi::PyErrSet);
        }
    }
    Ok(())
}
