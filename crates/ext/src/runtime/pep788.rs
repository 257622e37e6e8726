//! PEP 788 (CPython 3.15): real `PyInterpreterView`s and
//! `PyInterpreterGuard`s, found at run time (`dlsym`) so that one code path
//! serves every version: each owner record keeps a view of its interpreter,
//! and guards taken from Python also hold a native guard, so CPython's own
//! finalization waits for them too.
//!
//! Threads: every function here may be called from any thread; those that
//! need a thread state say so.

use crate::cstr;
use crate::ffi::sys;
use std::ffi::c_void;

pub use crate::ffi::capi::{dlsym, RTLD_DEFAULT};

pub struct Pep788 {
    view_from_current: unsafe extern "C" fn() -> *mut c_void,
    view_close: unsafe extern "C" fn(*mut c_void),
    guard_from_view: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
    guard_close: unsafe extern "C" fn(*mut c_void),
}

pub fn api() -> Option<&'static Pep788> {
    static API: std::sync::OnceLock<Option<Pep788>> = std::sync::OnceLock::new();
    API.get_or_init(|| {
        // SAFETY: dlsym with NUL-terminated names; each symbol, when present,
        // has the PEP 788 signature declared by CPython 3.15's pystate.h.
        unsafe {
            let f = |n: &std::ffi::CStr| dlsym(RTLD_DEFAULT, n.as_ptr());
            let (a, b, c, d) = (
                f(cstr!("PyInterpreterView_FromCurrent")),
                f(cstr!("PyInterpreterView_Close")),
                f(cstr!("PyInterpreterGuard_FromView")),
                f(cstr!("PyInterpreterGuard_Close")),
            );
            if a.is_null() || b.is_null() || c.is_null() || d.is_null() {
                return None;
            }
            Some(Pep788 {
                view_from_current: std::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn() -> *mut c_void,
                >(a),
                view_close: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void)>(
                    b,
                ),
                guard_from_view: std::mem::transmute::<
                    *mut c_void,
                    unsafe extern "C" fn(*mut c_void) -> *mut c_void,
                >(c),
                guard_close: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void)>(
                    d,
                ),
            })
        }
    })
    .as_ref()
}

/// Whether this Python has PEP 788 guards (3.15+).
pub fn has_pep788() -> bool {
    api().is_some()
}

/// A PEP 788 view of the attached interpreter, or 0 (before 3.15, or on
/// failure). Called when the interpreter is registered.
pub fn view_of_current() -> usize {
    let Some(api) = api() else { return 0 };
    // SAFETY: called attached (registration runs in the interpreter).
    unsafe {
        let v = (api.view_from_current)();
        if v.is_null() {
            sys::PyErr_Clear();
        }
        v as usize
    }
}

/// Close a view made by [`view_of_current`] (0: nothing).
pub fn close_view(v: usize) {
    if v == 0 {
        return;
    }
    if let Some(api) = api() {
        // SAFETY: `v` came from PyInterpreterView_FromCurrent and is closed
        // once (the record's drop); closing a view needs no thread state.
        unsafe { (api.view_close)(v as *mut c_void) };
    }
}

/// A real PEP 788 guard, closed on drop.
pub struct NativeGuard(usize);

impl NativeGuard {
    /// A guard from `view` (an owner record's PEP 788 view, 0: none): Ok(None)
    /// when this Python has no PEP 788 or there is no view, Err when the
    /// interpreter refuses guards (finalizing).
    #[allow(clippy::result_unit_err)]
    pub fn acquire(view: usize) -> Result<Option<NativeGuard>, ()> {
        let Some(api) = api() else { return Ok(None) };
        if view == 0 {
            return Ok(None);
        }
        // SAFETY: `view` is an owner record's live PEP 788 view; taking a guard
        // from a view needs no particular thread state.
        let g = unsafe { (api.guard_from_view)(view as *mut c_void) };
        if g.is_null() {
            // SAFETY: attached (entry point); a refusal may set an exception.
            unsafe { sys::PyErr_Clear() };
            return Err(());
        }
        Ok(Some(NativeGuard(g as usize)))
    }
}

impl Drop for NativeGuard {
    fn drop(&mut self) {
        if let Some(api) = api() {
            // SAFETY: a guard from PyInterpreterGuard_FromView, closed once.
            unsafe { (api.guard_close)(self.0 as *mut c_void) };
        }
    }
}
