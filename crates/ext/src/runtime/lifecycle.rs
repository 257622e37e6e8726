//! The module object's life: its exec slot registers the interpreter as an
//! owner and fills the interpreter's type table; its GC slots report and
//! release the table's references; its free slot drops its share of the
//! owner record. Every module function first drains the interpreter's
//! pending calls ([`enter`]).
//!
//! Ownership: the module state (`ModState`) belongs to its module object, in
//! that module's interpreter. The first module an interpreter executes owns
//! the interpreter's type table (a later one, after `del sys.modules[...]`,
//! shares the same types, so every object of the interpreter has one type
//! per class).

use super::owners::{self, OwnerRecord};
use crate::ffi::{sys, PyResult};
use crossinterp_core::sync::Arc;
use std::ffi::{c_int, c_void};

/// Per-module state: one strong count on the interpreter's record.
#[repr(C)]
pub struct ModState {
    rec: *const OwnerRecord,
}

/// The record of `module`'s interpreter.
///
/// # Safety
/// `module` is a live module object made from our definition.
unsafe fn module_record<'a>(module: *mut sys::PyObject) -> Option<&'a OwnerRecord> {
    // SAFETY: forwarded; the module state has our layout (zeroed before exec).
    unsafe {
        let st = sys::PyModule_GetState(module) as *mut ModState;
        if st.is_null() || (*st).rec.is_null() {
            None
        } else {
            Some(&*(*st).rec)
        }
    }
}

/// The first half of the exec slot: register this interpreter as an owner
/// (arranging its finalization at the interpreter's exit if it is new) and
/// adopt `module` as the owner of its type table if it is the first. The
/// caller then fills the table (`types::setup`).
///
/// # Safety
/// Attached; `module` is our module object, in its exec slot.
pub unsafe fn exec(module: *mut sys::PyObject) -> PyResult<Arc<OwnerRecord>> {
    let (rec, is_new) = owners::register_current();
    // SAFETY: our module's state has the `ModState` layout (m_size).
    unsafe {
        let st = sys::PyModule_GetState(module) as *mut ModState;
        (*st).rec = Arc::into_raw(rec.clone());
    }
    if is_new {
        super::exit::arrange_exit_hooks()?;
        if rec.whence == owners::Whence::RuntimeInit {
            pin_static_extension_types();
        }
    }
    // SAFETY: attached, our module, its exec slot.
    unsafe { rec.adopt_module(module) };
    Ok(rec)
}

/// CPython 3.13 bug (issue 11; docs/guide.md, "CPython 3.13 bugs worked around"):
/// `_datetime`'s types are *static* types shared by every interpreter. The
/// first interpreter to import `_datetime` builds their shared parts (the
/// bases and MRO tuples) with its own object allocator, and the last one to
/// release them (at its teardown) frees them into *its* allocator; with two
/// different own-GIL subinterpreters that is memory of one freed into the
/// other (the process aborts: "free(): invalid pointer", "double free or
/// corruption"), and two first imports at the same time race on the shared
/// state. Importing `_datetime` in the main interpreter (which is torn down
/// last) before any interpreter of ours exists makes it the first importer
/// and the last releaser, so no subinterpreter is either. Called attached to
/// the main interpreter, at its first exec of this module. 3.14 fixed it.
#[cfg(not(Py_3_14))]
fn pin_static_extension_types() {
    // SAFETY: attached (the exec slot); a new reference or NULL with an
    // exception set.
    let m = unsafe { sys::PyImport_ImportModule(crate::cstr!("_datetime").as_ptr()) };
    if m.is_null() {
        // A build without `_datetime`: nothing to pin, nothing to report.
        // SAFETY: attached; the import's error is not the caller's.
        unsafe { sys::PyErr_Clear() };
    } else {
        // SAFETY: attached; the reference we got (the types stay ready
        // until the main interpreter's teardown, module object or not).
        unsafe { sys::Py_DecRef(m) };
    }
}

#[cfg(Py_3_14)]
fn pin_static_extension_types() {}

/// Before every module function: run the interpreter's pending calls.
/// `module` is the module object CPython passes to its functions.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn enter(module: *mut sys::PyObject) {
    // SAFETY: module functions get our module object.
    if let Some(rec) = unsafe { module_record(module) } {
        super::pending::drain_current(rec);
    }
}

/// GC support: the type table's references (the types reference the module
/// back: without this, module and types would be an uncollectable cycle).
///
/// # Safety
/// Called by the GC with our module.
pub unsafe fn traverse(
    module: *mut sys::PyObject,
    visit: sys::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: forwarded.
    match unsafe { module_record(module) } {
        // SAFETY: the GC's contract.
        Some(rec) if rec.owns_types(module) => unsafe { rec.types.traverse(visit, arg) },
        _ => 0,
    }
}

/// GC support: release the type table's references.
///
/// # Safety
/// Called by the GC or the teardown, attached, with our module.
pub unsafe fn clear(module: *mut sys::PyObject) {
    // SAFETY: forwarded.
    if let Some(rec) = unsafe { module_record(module) } {
        if rec.owns_types(module) {
            // SAFETY: attached to the record's interpreter.
            unsafe { rec.types.clear() };
        }
    }
}

/// Free: release the table (if this module owns it) and the record.
///
/// # Safety
/// Called by CPython, attached, once, with our module.
pub unsafe fn free(module: *mut sys::PyObject) {
    // SAFETY: forwarded; the state has our layout.
    unsafe {
        clear(module);
        let st = sys::PyModule_GetState(module) as *mut ModState;
        if st.is_null() || (*st).rec.is_null() {
            return;
        }
        drop(Arc::from_raw((*st).rec));
        (*st).rec = std::ptr::null();
    }
}
