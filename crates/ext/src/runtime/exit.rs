//! Finalizing each owner at its interpreter's exit.
//!
//! A Python-level atexit callback runs early in the exit (after non-daemon
//! threads are joined, before modules are torn down); `PyUnstable_AtExit` is
//! the fallback if atexit callbacks were cleared (it runs at the end of the
//! interpreter's teardown, still attached). In the main interpreter the exit
//! first tells the types (`Event::ProcessExit`: guards held by Python guard
//! objects are closed, idle interpreters we created are closed), then
//! finalizes its own owner. Before that it closes the exit gate
//! (`ffi::interp::close_gate`): threads blocked in our calls park for good
//! instead of re-attaching, and owners' finalizations do not wait for guards
//! that parked threads hold.

use super::owners::{self, Event};
use crate::cstr;
use crate::ffi::{self, sys, Owned, PyResult};
use crossinterp_core::sync::Ordering;
use std::ptr::null_mut;

fn finalize_at_exit() {
    let (_, cur) = ffi::interp::current();
    // SAFETY: the main interpreter outlives every caller.
    let main_id = unsafe { sys::PyInterpreterState_GetID(sys::PyInterpreterState_Main()) };
    if cur == main_id {
        // Relaxed: read back by this same thread's finalizations below.
        owners::PROCESS_EXITING.store(true, Ordering::Relaxed);
        // From here on, other threads that would re-attach through our code
        // park instead (CPython would end them inside our frames).
        ffi::interp::open_release_window();
        ffi::interp::close_gate();
        owners::notify(Event::ProcessExit);
        // Threads blocked in our waits inside an exec/call release their
        // running-main marks at the gate (see `ffi::interp`).
        ffi::interp::close_release_window();
    }
    owners::finalize_current();
}

fn exit_hook(_module: *mut sys::PyObject) -> PyResult<()> {
    finalize_at_exit();
    Ok(())
}

static EXIT_HOOK_DEF: ffi::class::Table<sys::PyMethodDef> = ffi::class::Table(&[
    crate::native_method!(
        noargs,
        module: ffi::class::no_prologue,
        "_crossinterp_finalize_owner",
        "",
        exit_hook,
        "Finalize this interpreter's crossinterp owner (atexit hook)."
    ),
    sys::PyMethodDef::zeroed(),
]);

/// Arrange the current interpreter's owner to be finalized at its exit (see
/// the module docs). Needs no module object, so `create()` can register a new
/// interpreter without importing the package.
pub fn arrange_exit_hooks() -> PyResult<()> {
    let register = ffi::import_attr(cstr!("atexit"), cstr!("register"))?;
    // SAFETY: attached; the definition is a static that outlives every
    // interpreter; no `self`, no module.
    let hook = unsafe {
        Owned::from_new(sys::PyCFunction_NewEx(
            EXIT_HOOK_DEF.as_mut_ptr(),
            null_mut(),
            null_mut(),
        ))?
    };
    ffi::call(&register, &[hook.as_ptr()])?;
    // SAFETY: attached to the current interpreter, the one it is for.
    unsafe { ffi::capi::at_exit(finalize_at_exit) }
}
