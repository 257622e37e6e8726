//! Owned references, errors and trampolines.

use super::sys;
use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// Marker: a Python exception is set in the current thread state.
#[derive(Debug)]
pub struct PyErrSet;

/// The result of every call that may set a Python exception.
pub type PyResult<T> = Result<T, PyErrSet>;

/// A strong reference to a Python object of the interpreter the current
/// thread is attached to.
///
/// Ownership: owns one reference. Neither `Send` nor `Sync`: it must be dropped
/// on a thread attached to the interpreter that created it (the code never keeps
/// one across a switch of interpreter; values cross as `xi::Value`).
///
/// `repr(transparent)`: a slice of them reads as a slice of object pointers
/// (the container copies' tight loops rely on it).
#[repr(transparent)]
pub struct Owned {
    ptr: NonNull<sys::PyObject>,
    _not_send: PhantomData<*mut ()>,
}

impl Owned {
    /// Take ownership of a new reference; NULL means an exception is set.
    ///
    /// # Safety
    /// `ptr` is NULL (with an exception set) or a new strong reference owned
    /// by the caller, in the interpreter the thread is attached to.
    pub unsafe fn from_new(ptr: *mut sys::PyObject) -> PyResult<Owned> {
        match NonNull::new(ptr) {
            Some(ptr) => Ok(Owned {
                ptr,
                _not_send: PhantomData,
            }),
            None => Err(PyErrSet),
        }
    }

    /// Take a new reference to a borrowed object.
    ///
    /// # Safety
    /// `ptr` is a valid, non-NULL object of the attached interpreter.
    pub unsafe fn from_borrowed(ptr: *mut sys::PyObject) -> Owned {
        // SAFETY: the caller guarantees `ptr` is a live, non-NULL object;
        // we are attached. (`Py_INCREF`: inline on GIL builds, where
        // `Py_IncRef` is a call with a NULL check.)
        unsafe { sys::Py_INCREF(ptr) };
        Owned {
            // SAFETY: the caller guarantees non-NULL.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _not_send: PhantomData,
        }
    }

    /// The borrowed pointer.
    pub fn as_ptr(&self) -> *mut sys::PyObject {
        self.ptr.as_ptr()
    }

    /// Give up ownership, returning the new reference.
    pub fn into_ptr(self) -> *mut sys::PyObject {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: we own one reference to a non-NULL object and (type
        // invariant) the thread is attached to the object's interpreter.
        // `Py_DECREF` is inline on GIL builds (pyo3-ffi calls CPython's
        // `_Py_DecRef` on free-threaded and debug ones); `Py_DecRef` was a
        // call per drop: counted by callgrind on 3.14, a put + get of a
        // 100-entry `str`->`int` dict 82,155 -> 80,350 instructions.
        unsafe { sys::Py_DECREF(self.ptr.as_ptr()) }
    }
}

/// The builtin exception types the extension raises directly.
#[derive(Debug, Clone, Copy)]
pub enum Exc {
    TypeError,
    ValueError,
    SystemError,
    MemoryError,
    RecursionError,
    RuntimeError,
    OverflowError,
    KeyError,
    BufferError,
    TimeoutError,
    OSError,
}

impl Exc {
    fn type_object(self) -> *mut sys::PyObject {
        // SAFETY: reading immutable statics exported by CPython.
        unsafe {
            match self {
                Exc::TypeError => sys::PyExc_TypeError,
                Exc::ValueError => sys::PyExc_ValueError,
                Exc::SystemError => sys::PyExc_SystemError,
                Exc::MemoryError => sys::PyExc_MemoryError,
                Exc::RecursionError => sys::PyExc_RecursionError,
                Exc::RuntimeError => sys::PyExc_RuntimeError,
                Exc::OverflowError => sys::PyExc_OverflowError,
                Exc::KeyError => sys::PyExc_KeyError,
                Exc::OSError => sys::PyExc_OSError,
                Exc::BufferError => sys::PyExc_BufferError,
                Exc::TimeoutError => sys::PyExc_TimeoutError,
            }
        }
    }
}

/// Set `exc(msg)` as the current exception.
pub fn raise(exc: Exc, msg: &str) -> PyErrSet {
    // SAFETY: a builtin exception type (immortal static).
    unsafe { raise_type(exc.type_object(), msg) }
}

/// Set `exc_type(msg)` as the current exception.
///
/// # Safety
/// `exc_type` is a live exception class of the attached interpreter (the
/// runtime's error boundary passes the classes its type table holds).
pub unsafe fn raise_type(exc_type: *mut sys::PyObject, msg: &str) -> PyErrSet {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `exc_type` is a live exception type (a CPython static, or a
    // class a caller holds through `Owned`); `c` is NUL-terminated.
    unsafe { sys::PyErr_SetString(exc_type, c.as_ptr()) };
    PyErrSet
}

/// A `&'static CStr` from a literal.
#[macro_export]
macro_rules! cstr {
    ($s:literal) => {
        // SAFETY: the literal gets a trailing NUL and has none inside (checked
        // at compile time by `CStr::from_bytes_with_nul`).
        // An inline `const` block: evaluated once by the compiler, so a use on
        // a hot path costs nothing at run time (a plain call was not folded
        // and scanned the literal for its NUL on every call).
        const {
            match ::std::ffi::CStr::from_bytes_with_nul(concat!($s, "\0").as_bytes()) {
                Ok(c) => c,
                Err(_) => panic!("interior NUL"),
            }
        }
    };
}

/// Run the body of an `extern "C"` entry point: a panic becomes a
/// `SystemError`, an `Err` becomes NULL with the exception already set.
/// Inlined into each entry point (catching costs nothing until a panic).
#[inline]
pub fn trampoline(f: impl FnOnce() -> PyResult<*mut sys::PyObject>) -> *mut sys::PyObject {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(p)) => p,
        Ok(Err(PyErrSet)) => {
            debug_assert!(
                // SAFETY: attached (we are inside an entry point).
                unsafe { !sys::PyErr_Occurred().is_null() },
                "Err(PyErrSet) without an exception set"
            );
            std::ptr::null_mut()
        }
        Err(payload) => panicked(payload),
    }
}

#[cold]
#[inline(never)]
fn panicked(payload: Box<dyn std::any::Any + Send>) -> *mut sys::PyObject {
    let msg = panic_message(&payload);
    raise(
        Exc::SystemError,
        &format!("crossinterp internal error (Rust panic): {msg}"),
    );
    std::ptr::null_mut()
}

/// Like [`trampoline`] for entry points returning a C int (0 / -1).
pub fn trampoline_int(f: impl FnOnce() -> PyResult<()>) -> std::ffi::c_int {
    let r = trampoline(|| f().map(|()| 1 as *mut sys::PyObject));
    if r.is_null() {
        -1
    } else {
        0
    }
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// `None`, as a new reference.
pub fn none() -> *mut sys::PyObject {
    // SAFETY: Py_None is immortal; Py_NewRef on it is always valid when attached.
    unsafe { sys::Py_NewRef(sys::Py_None()) }
}

/// `True`, as a new reference.
pub fn bool_true() -> *mut sys::PyObject {
    // SAFETY: Py_True is immortal; attached.
    unsafe { sys::Py_NewRef(sys::Py_True()) }
}

/// `False`, as a new reference.
pub fn bool_false() -> *mut sys::PyObject {
    // SAFETY: Py_False is immortal; attached.
    unsafe { sys::Py_NewRef(sys::Py_False()) }
}

/// A new `str` from Rust text.
pub fn new_str(s: &str) -> PyResult<Owned> {
    // SAFETY: pointer/length describe valid UTF-8; attached.
    unsafe {
        Owned::from_new(sys::PyUnicode_FromStringAndSize(
            s.as_ptr() as *const c_char,
            s.len() as sys::Py_ssize_t,
        ))
    }
}

/// A new `int`.
pub fn new_int(v: i64) -> PyResult<Owned> {
    // SAFETY: attached.
    unsafe { Owned::from_new(sys::PyLong_FromLongLong(v)) }
}

/// The UTF-8 text of a `str` (borrowed from the object's cache).
///
/// # Safety
/// `obj` is a live object of the attached interpreter; the returned slice must
/// not outlive it.
pub unsafe fn str_utf8<'a>(obj: *mut sys::PyObject) -> PyResult<&'a str> {
    let mut len: sys::Py_ssize_t = 0;
    // SAFETY: caller guarantees `obj`; CPython type-checks it (TypeError).
    let p = unsafe { sys::PyUnicode_AsUTF8AndSize(obj, &mut len) };
    if p.is_null() {
        return Err(PyErrSet);
    }
    // SAFETY: CPython guarantees `len` bytes of valid UTF-8 at `p`, alive as
    // long as `obj`.
    Ok(unsafe {
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(p as *const u8, len as usize))
    })
}

/// `module.name` imported and fetched.
pub fn import_attr(module: &CStr, name: &CStr) -> PyResult<Owned> {
    // SAFETY: attached; both are NUL-terminated.
    unsafe {
        let m = Owned::from_new(sys::PyImport_ImportModule(module.as_ptr()))?;
        Owned::from_new(sys::PyObject_GetAttrString(m.as_ptr(), name.as_ptr()))
    }
}

/// `callable(*args)`.
pub fn call(callable: &Owned, args: &[*mut sys::PyObject]) -> PyResult<Owned> {
    // SAFETY: attached; every pointer in `args` is a live object (callers pass
    // borrowed pointers of objects they hold).
    unsafe {
        let tuple = Owned::from_new(sys::PyTuple_New(args.len() as sys::Py_ssize_t))?;
        for (i, a) in args.iter().enumerate() {
            sys::Py_IncRef(*a);
            sys::PyTuple_SetItem(tuple.as_ptr(), i as sys::Py_ssize_t, *a);
        }
        Owned::from_new(sys::PyObject_Call(
            callable.as_ptr(),
            tuple.as_ptr(),
            std::ptr::null_mut(),
        ))
    }
}

/// The name of `obj`'s type.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn type_name(obj: *mut sys::PyObject) -> String {
    // SAFETY: every object has a type with a NUL-terminated `tp_name`.
    unsafe {
        let t = sys::Py_TYPE(obj);
        std::ffi::CStr::from_ptr((*t).tp_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// Call `f(item)` for each item of `iterable` (borrowed for the call).
pub fn for_each(
    iterable: &Owned,
    mut f: impl FnMut(*mut sys::PyObject) -> PyResult<()>,
) -> PyResult<()> {
    // SAFETY: attached; `iterable` is live; each item is owned while used.
    unsafe {
        let it = Owned::from_new(sys::PyObject_GetIter(iterable.as_ptr()))?;
        loop {
            let item = sys::PyIter_Next(it.as_ptr());
            if item.is_null() {
                if !sys::PyErr_Occurred().is_null() {
                    return Err(PyErrSet);
                }
                return Ok(());
            }
            let item = Owned::from_new(item)?;
            f(item.as_ptr())?;
        }
    }
}

/// What [`referents`] found about one object.
pub enum Referents {
    /// Not a GC object (or one without `tp_traverse`): it is a leaf.
    Leaf,
    /// The objects its `tp_traverse` visited (with repeats: one per reference).
    Some,
}

/// Append to `out` every object `obj`'s `tp_traverse` visits (one entry per
/// reference, repeats included). Runs no Python code and allocates no Python
/// object (`tp_traverse` only reads the object), so a caller holding the GIL
/// sees one consistent state.
///
/// # Safety
/// Attached to `obj`'s interpreter, with no other thread able to mutate
/// `obj` meanwhile (the GIL held, on a GIL build); `obj` is live.
pub unsafe fn referents(obj: *mut sys::PyObject, out: &mut Vec<*mut sys::PyObject>) -> Referents {
    unsafe extern "C" fn visit(
        o: *mut sys::PyObject,
        arg: *mut std::ffi::c_void,
    ) -> std::ffi::c_int {
        // A panic must not unwind into C: pushing can only fail by aborting
        // (out of memory), so there is nothing to catch here.
        if !o.is_null() {
            // SAFETY: `arg` is the `&mut Vec` passed below, alive for the
            // traversal, used by this thread only.
            unsafe { (*(arg as *mut Vec<*mut sys::PyObject>)).push(o) };
        }
        0
    }
    // SAFETY: the caller's contract; `tp_traverse` is called as CPython's GC
    // calls it, with a visitor that only records.
    unsafe {
        if sys::PyObject_IS_GC(obj) == 0 {
            return Referents::Leaf;
        }
        let tp = sys::Py_TYPE(obj);
        let Some(traverse) = (*tp).tp_traverse else {
            return Referents::Leaf;
        };
        traverse(
            obj,
            visit,
            out as *mut Vec<*mut sys::PyObject> as *mut std::ffi::c_void,
        );
    }
    Referents::Some
}
