//! TEMPORARY: the pre-class-layer helpers the types not yet ported to
//! `ffi::class` still use (raw layouts, hand-written shims, type lookup by
//! name). Removed when the last type is ported.

pub use crate::ffi::args::*;
use crate::ffi::{sys, Owned, PyErrSet, PyResult};

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
                let args: $crate::ffi::args::Args = if nargs <= 0 {
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

/// Define `unsafe extern "C" fn $name(slf, _)` for METH_NOARGS (CPython
/// checks the argument count; its call path is a little shorter than
/// METH_FASTCALL's, which matters for one-instruction methods such as
/// `AtomicInt.inc`), catching panics, delegating to `$body(slf)`.
#[macro_export]
macro_rules! noargs_fn {
    ($name:ident => $body:path) => {
        unsafe extern "C" fn $name(
            slf: *mut $crate::ffi::sys::PyObject,
            _unused: *mut $crate::ffi::sys::PyObject,
        ) -> *mut $crate::ffi::sys::PyObject {
            $crate::ffi::trampoline(|| $body(slf))
        }
    };
}

/// A `PyMethodDef` for a `METH_FASTCALL` function made by [`method_fn!`]:
/// `method_def!("name", f, "doc")`, or with explicit flags
/// `method_def!("name", f, flags, "doc")` (e.g. `METH_FASTCALL | METH_CLASS`).
#[macro_export]
macro_rules! method_def {
    ($name:literal, $f:ident, $doc:literal) => {
        $crate::method_def!($name, $f, $crate::ffi::sys::METH_FASTCALL, $doc)
    };
    ($name:literal, $f:ident, $flags:expr, $doc:literal) => {
        $crate::ffi::sys::PyMethodDef {
            ml_name: $crate::cstr!($name).as_ptr(),
            ml_meth: $crate::ffi::sys::PyMethodDefPointer {
                PyCFunctionFast: $f,
            },
            ml_flags: $flags,
            ml_doc: $crate::cstr!($doc).as_ptr(),
        }
    };
}

/// Create a heap type from `spec_name`/`basicsize`/`flags`/`slots` bound to
/// `module` (so `PyType_GetModuleByDef` finds it) and add it as `attr`.
///
/// # Safety
/// Attached; `module` is our live module object; `slots` is a valid,
/// zero-terminated slot table whose functions match `basicsize`'s layout.
pub unsafe fn add_heap_type(
    module: *mut sys::PyObject,
    spec_name: &std::ffi::CStr,
    attr: &std::ffi::CStr,
    basicsize: usize,
    flags: std::ffi::c_ulong,
    slots: &mut [sys::PyType_Slot],
) -> PyResult<()> {
    let mut spec = sys::PyType_Spec {
        name: spec_name.as_ptr(),
        basicsize: basicsize as std::ffi::c_int,
        itemsize: 0,
        flags: flags as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: forwarded contract; CPython copies what it keeps of `spec`.
    unsafe {
        let tp = crate::ffi::Owned::from_new(sys::PyType_FromModuleAndSpec(
            module,
            &mut spec,
            std::ptr::null_mut(),
        ))?;
        if sys::PyModule_AddObjectRef(module, attr.as_ptr(), tp.as_ptr()) < 0 {
            return Err(PyErrSet);
        }
    }
    Ok(())
}

/// The object layout of every native type of this crate: the Python object
/// header, then one Rust value, written by [`alloc_native`] before the object
/// is visible and dropped by [`dealloc_native`].
///
/// Ownership: the value belongs to the Python object (of one interpreter);
/// it is dropped on whichever thread deallocates the object, so `T` holds
/// only plain Rust data (shared state behind `Arc`s, locks, atomics).
#[repr(C)]
pub struct Native<T> {
    ob_base: sys::PyObject,
    value: T,
}

/// Allocate an instance of `cls` holding `value`.
///
/// # Safety
/// Attached; `cls` is a live type whose instances have `Native<T>`'s layout
/// (a type made with `size_of::<Native<T>>()`, or a Python subclass of one
/// that adds no storage before it) and whose `tp_dealloc` is
/// `dealloc_native::<T>` (or calls it).
pub unsafe fn alloc_native<T>(
    cls: *mut sys::PyTypeObject,
    value: T,
) -> PyResult<crate::ffi::Owned> {
    // SAFETY: forwarded; GenericAlloc zero-fills, and writing the value over
    // the zeroed field before the object escapes is its initialization.
    unsafe {
        let obj = crate::ffi::Owned::from_new(sys::PyType_GenericAlloc(cls, 0))?;
        std::ptr::write(&mut (*(obj.as_ptr() as *mut Native<T>)).value, value);
        Ok(obj)
    }
}

/// The value of a native object.
///
/// # Safety
/// `obj` is a live object made by `alloc_native::<T>`, outliving the borrow.
pub unsafe fn native_ref<'a, T>(obj: *mut sys::PyObject) -> &'a T {
    // SAFETY: forwarded; the value was initialized at allocation.
    unsafe { &(*(obj as *mut Native<T>)).value }
}

/// `tp_dealloc` of a native type: drop the value, free the object, release
/// the reference every instance of a heap type holds to its type.
///
/// # Safety
/// Called by CPython, once, for a dead object made by `alloc_native::<T>`.
pub unsafe extern "C" fn dealloc_native<T>(obj: *mut sys::PyObject) {
    // SAFETY: forwarded contract; the type outlives this call (we hold its
    // reference until the last line).
    unsafe {
        let tp = sys::Py_TYPE(obj);
        std::ptr::drop_in_place(&mut (*(obj as *mut Native<T>)).value);
        let free: sys::freefunc = std::mem::transmute(sys::PyType_GetSlot(tp, sys::Py_tp_free));
        free(obj as *mut std::ffi::c_void);
        sys::Py_DecRef(tp as *mut sys::PyObject);
    }
}

/// Whether `obj` is an instance of this interpreter's native type `name`
/// (looked up by attribute on the module that made the types).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn is_ours(obj: *mut sys::PyObject, name: &std::ffi::CStr) -> PyResult<bool> {
    let Ok(rec) = crate::runtime::current() else {
        // SAFETY: attached.
        unsafe { sys::PyErr_Clear() };
        return Ok(false);
    };
    let m = rec.types_module();
    if m.is_null() {
        return Ok(false);
    }
    // SAFETY: attached; `m` is our live module (the record holds it).
    unsafe {
        let tp = Owned::from_new(sys::PyObject_GetAttrString(m, name.as_ptr()))?;
        Ok(sys::PyObject_TypeCheck(obj, tp.as_ptr() as *mut sys::PyTypeObject) != 0)
    }
}
