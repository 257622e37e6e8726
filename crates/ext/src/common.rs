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

/// `TypeError` unless exactly `n` arguments were given. Inlined (the check is
/// on every method call's hot path); the error is built out of line.
#[inline]
pub fn arity(name: &str, args: Args, n: usize) -> PyResult<()> {
    if args.len() != n {
        return Err(arity_error(name, args.len(), n));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn arity_error(name: &str, given: usize, n: usize) -> PyErrSet {
    ffi::raise(
        Exc::TypeError,
        &format!("{name}() takes exactly {n} argument(s) ({given} given)"),
    )
}

/// Argument `i` as a timeout: `None`, or a non-negative number of seconds.
pub fn arg_timeout(args: Args, i: usize) -> PyResult<Option<Duration>> {
    let obj = args[i];
    // SAFETY: attached; `Args` holds live borrowed arguments (see method_fn!).
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

/// Argument `i`'s truth value.
pub fn arg_bool(args: Args, i: usize) -> PyResult<bool> {
    // SAFETY: attached; `Args` holds live borrowed arguments (see method_fn!).
    match unsafe { sys::PyObject_IsTrue(args[i]) } {
        -1 => Err(PyErrSet),
        v => Ok(v != 0),
    }
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

/// Bind `METH_FASTCALL | METH_KEYWORDS` arguments to `names`: the first
/// `npos` may come by position, all by keyword. Missing ones are `None`.
/// `TypeError` for too many positionals, unknown or repeated keywords.
///
/// # Safety
/// `args`/`nargs`/`kwnames` are exactly what CPython passed to a
/// `METH_FASTCALL | METH_KEYWORDS` function (`nargs` positionals followed by
/// one value per name in the `kwnames` tuple, which may be NULL).
pub unsafe fn bind<const N: usize>(
    fname: &str,
    args: *const *mut sys::PyObject,
    nargs: sys::Py_ssize_t,
    kwnames: *mut sys::PyObject,
    names: [&std::ffi::CStr; N],
    npos: usize,
) -> PyResult<[Option<*mut sys::PyObject>; N]> {
    let mut out = [None; N];
    // SAFETY: forwarded contract.
    let nargs = unsafe { sys::PyVectorcall_NARGS(nargs as usize) } as usize;
    if nargs > npos {
        return Err(ffi::raise(
            Exc::TypeError,
            &format!("{fname}() takes at most {npos} positional argument(s) ({nargs} given)"),
        ));
    }
    for (i, slot) in out.iter_mut().enumerate().take(nargs) {
        // SAFETY: `i < nargs`: a positional argument.
        *slot = Some(unsafe { *args.add(i) });
    }
    if kwnames.is_null() {
        return Ok(out);
    }
    // SAFETY: `kwnames` is a tuple of str; values follow the positionals.
    unsafe {
        let nkw = sys::PyTuple_Size(kwnames) as usize;
        for k in 0..nkw {
            let key = sys::PyTuple_GetItem(kwnames, k as sys::Py_ssize_t);
            let Some(i) = names
                .iter()
                .position(|n| sys::PyUnicode_CompareWithASCIIString(key, n.as_ptr()) == 0)
            else {
                let k = crate::ffi::str_utf8(key).unwrap_or("?");
                return Err(ffi::raise(
                    Exc::TypeError,
                    &format!("{fname}() got an unexpected keyword argument '{k}'"),
                ));
            };
            if out[i].is_some() {
                return Err(ffi::raise(
                    Exc::TypeError,
                    &format!(
                        "{fname}() got multiple values for argument '{}'",
                        names[i].to_string_lossy()
                    ),
                ));
            }
            out[i] = Some(*args.add(nargs + k));
        }
    }
    Ok(out)
}

/// The one optional argument of a `tp_new` taking `(kw=<default>)`, e.g.
/// `AtomicInt(value=0)`: `None` when absent. `format` is `"|O:TypeName"`.
///
/// # Safety
/// Attached; `args` is a live tuple and `kwargs` NULL or a live dict, as
/// CPython passes them to `tp_new`.
pub unsafe fn optional_object_arg(
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
    kw: &std::ffi::CStr,
    format: &std::ffi::CStr,
) -> PyResult<Option<*mut sys::PyObject>> {
    let mut obj: *mut sys::PyObject = std::ptr::null_mut();
    let kwlist: [*const std::ffi::c_char; 2] = [kw.as_ptr(), std::ptr::null()];
    // SAFETY: forwarded; "|O" fills a borrowed object pointer; `kwlist` is
    // NULL-terminated.
    let ok = unsafe {
        sys::PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            format.as_ptr(),
            kwlist.as_ptr() as _,
            &mut obj as *mut *mut sys::PyObject,
        )
    };
    if ok == 0 {
        return Err(PyErrSet);
    }
    Ok((!obj.is_null()).then_some(obj))
}

/// A timeout argument: absent or `None` → no timeout; else a non-negative
/// real number of seconds (`TypeError` for `bool` and non-numbers,
/// `ValueError` for negative or NaN).
pub fn timeout_of(obj: Option<*mut sys::PyObject>) -> PyResult<Option<Duration>> {
    let Some(obj) = obj else { return Ok(None) };
    // SAFETY: attached; `obj` is a live argument bound by `bind`.
    unsafe {
        if sys::PyBool_Check(obj) != 0 {
            return Err(ffi::raise(
                Exc::TypeError,
                "timeout must be a number or None, not bool",
            ));
        }
    }
    arg_timeout(&[obj], 0)
}

/// A truth-value argument with a default.
pub fn bool_of(obj: Option<*mut sys::PyObject>, default: bool) -> PyResult<bool> {
    match obj {
        None => Ok(default),
        Some(o) => arg_bool(&[o], 0),
    }
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
