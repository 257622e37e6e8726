//! Moving the calling thread between interpreters.
//!
//! A thread never holds two interpreters at once: it detaches from the one it
//! is in, attaches a fresh thread state of the target, runs, deletes that thread
//! state (which detaches), and re-attaches to where it was. So no lock-ordering
//! deadlock between interpreters' GILs is possible.
//!
//! Thread states are not cached per (thread, interpreter): `Py_EndInterpreter`
//! is a fatal error while an interpreter has any thread state but the
//! finalizing one, so every entry deletes its own before leaving.

use super::sys;
use super::{raise, PyErrSet, PyResult};

/// Run `f` on this OS thread attached to `interp`.
///
/// If the thread is already attached to `interp`, `f` runs directly. Otherwise
/// the current thread state (if any) is detached for the duration, and
/// re-attached afterwards — also if `f` panics (the panic then resumes).
///
/// Errors (`PyErrSet`) are reported in the caller's interpreter: when the
/// target's thread state cannot be created, a `MemoryError` is set there.
///
/// # Safety
/// `interp` must stay alive for the whole call: the caller holds a guard on its
/// owner (or is the code that created it and has not destroyed it). Any Python
/// object `f` touches must belong to `interp`; `f` must leave no exception set.
pub unsafe fn run_in<R>(interp: *mut sys::PyInterpreterState, f: impl FnOnce() -> R) -> PyResult<R> {
    // SAFETY: always callable; returns NULL when no thread state is attached.
    let save = unsafe { sys::PyThreadState_GetUnchecked() };
    // SAFETY: `save` is attached (non-NULL checked), so reading its interpreter is valid.
    if !save.is_null() && unsafe { sys::PyThreadState_GetInterpreter(save) } == interp {
        return Ok(f());
    }
    if !save.is_null() {
        // SAFETY: `save` is the attached thread state; detaching returns it.
        unsafe { sys::PyEval_SaveThread() };
    }
    // SAFETY: `interp` is alive (caller's contract). PyThreadState_New needs no
    // attached thread state.
    let ts = unsafe { sys::PyThreadState_New(interp) };
    if ts.is_null() {
        if !save.is_null() {
            // SAFETY: re-attach what we detached.
            unsafe { sys::PyEval_RestoreThread(save) };
            // SAFETY: reading an immutable static.
            return Err(raise(unsafe { sys::PyExc_MemoryError }, "cannot create a thread state"));
        }
        return Err(PyErrSet);
    }
    // SAFETY: `ts` is a fresh thread state of `interp`, owned by this thread.
    unsafe { sys::PyEval_RestoreThread(ts) };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: `ts` is attached and ours; Clear then DeleteCurrent detaches it.
    unsafe {
        if !sys::PyErr_Occurred().is_null() {
            // Contract violation by `f`; do not leak it into the next user.
            sys::PyErr_Clear();
        }
        sys::PyThreadState_Clear(ts);
        sys::PyThreadState_DeleteCurrent();
    }
    if !save.is_null() {
        // SAFETY: `save` was detached above and belongs to this thread.
        unsafe { sys::PyEval_RestoreThread(save) };
    }
    match r {
        Ok(v) => Ok(v),
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Run `f` with the current thread detached from its interpreter (for waits
/// that must not block the interpreter: the GIL is released on GIL builds).
pub fn detached<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: always callable.
    let save = unsafe { sys::PyThreadState_GetUnchecked() };
    if save.is_null() {
        return f();
    }
    // SAFETY: `save` is this thread's attached state.
    let ts = unsafe { sys::PyEval_SaveThread() };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: re-attach what we detached.
    unsafe { sys::PyEval_RestoreThread(ts) };
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// The interpreter the current thread is attached to, and its id.
pub fn current() -> (*mut sys::PyInterpreterState, i64) {
    // SAFETY: called from entry points, where a thread state is attached.
    unsafe {
        let interp = sys::PyInterpreterState_Get();
        (interp, sys::PyInterpreterState_GetID(interp))
    }
}
