//! `SharedBuffer`: owner-free, 64-byte aligned memory exposing the buffer
//! protocol in every interpreter, zero-copy.
//!
//! Each interpreter that holds the buffer has its own `SharedBuffer` object
//! (of that interpreter's heap type) pointing at the same
//! `crossinterp_core::buffer::SharedMem`; the memory is freed when the last
//! reference in any interpreter goes. Exports (memoryviews) are counted per
//! object, so `release()` refuses while one of *its* exports is alive, as a
//! `bytearray` refuses to resize.

use crate::cstr;
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::legacy::{alloc_native, dealloc_native, native_ref, Native};
use crossinterp_core::buffer::SharedMem;
use crossinterp_core::sync::{lock, Arc, Mutex};
use std::ffi::{c_char, c_int, c_void};
use std::ptr::null_mut;

/// The value of a `SharedBuffer` object (`Native<Mutex<State>>`), owned by that
/// object in its interpreter; behind a lock because free-threaded builds may
/// export and release it from several threads at once.
struct State {
    /// `None` once released.
    mem: Option<Arc<SharedMem>>,
    /// Live exports (memoryviews) of this object.
    exports: usize,
}

/// A new `SharedBuffer` object of `cls` over `mem`, with no export.
///
/// # Safety
/// Attached; `cls` is a SharedBuffer type (layout and dealloc of
/// `Native<Mutex<State>>`).
unsafe fn alloc_with(cls: *mut sys::PyTypeObject, mem: Arc<SharedMem>) -> PyResult<Owned> {
    let state = Mutex::new(State {
        mem: Some(mem),
        exports: 0,
    });
    // SAFETY: forwarded contract.
    unsafe { alloc_native(cls, state) }
}

fn buffer_type() -> PyResult<Owned> {
    ffi::import_attr(cstr!("crossinterp._native"), cstr!("SharedBuffer"))
}

/// The shared memory of `obj` if it is a (live) `SharedBuffer` of this
/// interpreter; `ValueError` if released.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn as_buffer(obj: *mut sys::PyObject) -> PyResult<Option<Arc<SharedMem>>> {
    // SAFETY: attached; `obj` is live and, when ours, a SharedBuffer.
    unsafe {
        if !crate::legacy::is_ours(obj, cstr!("SharedBuffer"))? {
            return Ok(None);
        }
        match &lock(native_ref::<Mutex<State>>(obj)).mem {
            Some(m) => Ok(Some(m.clone())),
            None => Err(released()),
        }
    }
}

/// A `SharedBuffer` of the attached interpreter over `mem`.
pub fn to_python(mem: &Arc<SharedMem>) -> PyResult<Owned> {
    let tp = buffer_type()?;
    // SAFETY: `tp` is this interpreter's SharedBuffer type.
    unsafe { alloc_with(tp.as_ptr() as *mut sys::PyTypeObject, mem.clone()) }
}

fn released() -> PyErrSet {
    ffi::raise(ffi::Exc::ValueError, "operation on a released SharedBuffer")
}

fn buffer_error(msg: &str) -> PyErrSet {
    ffi::raise(ffi::Exc::BufferError, msg)
}

fn alloc_error(e: crossinterp_core::buffer::AllocError) -> PyErrSet {
    ffi::raise(ffi::Exc::MemoryError, &e.to_string())
}

unsafe extern "C" fn tp_new(
    cls: *mut sys::PyTypeObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: attached; `args` is a tuple, `kwargs` NULL or a dict.
        unsafe {
            let first = if sys::PyTuple_Size(args) > 0 {
                sys::PyTuple_GetItem(args, 0)
            } else if !kwargs.is_null() {
                sys::PyDict_GetItemString(kwargs, cstr!("nbytes").as_ptr())
            } else {
                null_mut()
            };
            if !first.is_null() && sys::PyBool_Check(first) != 0 {
                return Err(ffi::raise(
                    Exc::TypeError,
                    "nbytes must be an int, not bool",
                ));
            }
        }
        let mut nbytes: sys::Py_ssize_t = 0;
        let mut readonly: c_int = 0;
        let kwlist: [*const c_char; 3] = [
            cstr!("nbytes").as_ptr(),
            cstr!("readonly").as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: attached; the format matches the out-pointers ("n" →
        // Py_ssize_t, "p" → int); `kwlist` is NULL-terminated.
        let ok = unsafe {
            sys::PyArg_ParseTupleAndKeywords(
                args,
                kwargs,
                cstr!("n|$p:SharedBuffer").as_ptr(),
                kwlist.as_ptr() as _,
                &mut nbytes as *mut sys::Py_ssize_t,
                &mut readonly as *mut c_int,
            )
        };
        if ok == 0 {
            return Err(PyErrSet);
        }
        if nbytes < 0 {
            return Err(ffi::raise(
                Exc::ValueError,
                &format!("nbytes must be >= 0, got {nbytes}"),
            ));
        }
        let mem = SharedMem::zeroed(nbytes as usize, readonly != 0).map_err(alloc_error)?;
        // SAFETY: `cls` is SharedBuffer (final type).
        Ok(unsafe {
            alloc_native(
                cls,
                Mutex::new(State {
                    mem: Some(mem),
                    exports: 0,
                }),
            )?
        }
        .into_ptr())
    })
}

unsafe extern "C" fn copy_of(
    cls: *mut sys::PyObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        let mut src: *mut sys::PyObject = null_mut();
        let mut readonly: c_int = 0;
        let kwlist: [*const c_char; 3] = [
            cstr!("obj").as_ptr(),
            cstr!("readonly").as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: as in tp_new; "O" → borrowed object pointer.
        let ok = unsafe {
            sys::PyArg_ParseTupleAndKeywords(
                args,
                kwargs,
                cstr!("O|$p:copy_of").as_ptr(),
                kwlist.as_ptr() as _,
                &mut src as *mut *mut sys::PyObject,
                &mut readonly as *mut c_int,
            )
        };
        if ok == 0 {
            return Err(PyErrSet);
        }
        // SAFETY: attached; a zeroed Py_buffer is filled by GetBuffer, and
        // released below on every path once filled.
        unsafe {
            let mut view: sys::Py_buffer = std::mem::zeroed();
            if sys::PyObject_GetBuffer(src, &mut view, sys::PyBUF_SIMPLE) < 0 {
                return Err(PyErrSet);
            }
            let bytes = std::slice::from_raw_parts(view.buf as *const u8, view.len as usize);
            let mem = SharedMem::copy_of(bytes, readonly != 0);
            sys::PyBuffer_Release(&mut view);
            let mem = mem.map_err(alloc_error)?;
            Ok(alloc_with(cls as *mut sys::PyTypeObject, mem)?.into_ptr())
        }
    })
}

unsafe extern "C" fn release(
    slf: *mut sys::PyObject,
    _unused: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a SharedBuffer.
        let mut st = lock(unsafe { native_ref::<Mutex<State>>(slf) });
        if st.exports > 0 {
            return Err(buffer_error(&format!(
                "cannot release a SharedBuffer while {} memoryview(s) of it are alive",
                st.exports
            )));
        }
        let mem = st.mem.take();
        drop(st);
        drop(mem);
        Ok(ffi::none())
    })
}

unsafe extern "C" fn getbuffer(
    slf: *mut sys::PyObject,
    view: *mut sys::Py_buffer,
    flags: c_int,
) -> c_int {
    ffi::trampoline_int(|| {
        // SAFETY: `slf` is a SharedBuffer; `view` is CPython's to fill.
        unsafe {
            let mut st = lock(native_ref::<Mutex<State>>(slf));
            let Some(mem) = st.mem.clone() else {
                (*view).obj = null_mut();
                return Err(buffer_error("SharedBuffer was released"));
            };
            // FillInfo checks PyBUF_WRITABLE against `readonly`, takes a
            // reference to `slf` in view.obj (so the object, and its Arc,
            // outlive the view).
            if sys::PyBuffer_FillInfo(
                view,
                slf,
                mem.as_ptr() as *mut c_void,
                mem.len() as sys::Py_ssize_t,
                mem.readonly() as c_int,
                flags,
            ) < 0
            {
                return Err(PyErrSet);
            }
            st.exports += 1;
            Ok(())
        }
    })
}

unsafe extern "C" fn releasebuffer(slf: *mut sys::PyObject, _view: *mut sys::Py_buffer) {
    // SAFETY: `slf` is a SharedBuffer with at least this export open.
    let mut st = lock(unsafe { native_ref::<Mutex<State>>(slf) });
    st.exports = st.exports.saturating_sub(1);
}

unsafe extern "C" fn sq_length(slf: *mut sys::PyObject) -> sys::Py_ssize_t {
    // SAFETY: `slf` is a SharedBuffer.
    match &lock(unsafe { native_ref::<Mutex<State>>(slf) }).mem {
        Some(m) => m.len() as sys::Py_ssize_t,
        None => {
            released();
            -1
        }
    }
}

unsafe extern "C" fn get_nbytes(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a SharedBuffer.
        let n = match &lock(unsafe { native_ref::<Mutex<State>>(slf) }).mem {
            Some(m) => m.len(),
            None => return Err(released()),
        };
        Ok(ffi::new_int(n as i64)?.into_ptr())
    })
}

unsafe extern "C" fn get_readonly(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a SharedBuffer.
        let ro = match &lock(unsafe { native_ref::<Mutex<State>>(slf) }).mem {
            Some(m) => m.readonly(),
            None => return Err(released()),
        };
        // SAFETY: attached.
        Ok(unsafe { sys::PyBool_FromLong(ro as _) })
    })
}

unsafe extern "C" fn get_released(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    // SAFETY: `slf` is a SharedBuffer; attached.
    let r = lock(unsafe { native_ref::<Mutex<State>>(slf) })
        .mem
        .is_none();
    // SAFETY: attached.
    unsafe { sys::PyBool_FromLong(r as _) }
}

unsafe extern "C" fn tp_repr(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a SharedBuffer.
        let s = match &lock(unsafe { native_ref::<Mutex<State>>(slf) }).mem {
            Some(m) => format!(
                "<SharedBuffer nbytes={} readonly={}>",
                m.len(),
                if m.readonly() { "True" } else { "False" }
            ),
            None => "<SharedBuffer released>".to_owned(),
        };
        Ok(ffi::new_str(&s)?.into_ptr())
    })
}

static mut METHODS: [sys::PyMethodDef; 3] = [
    sys::PyMethodDef {
        ml_name: cstr!("copy_of").as_ptr(),
        ml_meth: sys::PyMethodDefPointer { PyCFunctionWithKeywords: copy_of },
        ml_flags: sys::METH_VARARGS | sys::METH_KEYWORDS | sys::METH_CLASS,
        ml_doc: cstr!("copy_of(obj, *, readonly=False) -> SharedBuffer\n\nA new SharedBuffer holding a copy of a contiguous buffer (bytes, bytearray, memoryview, array...).").as_ptr(),
    },
    sys::PyMethodDef {
        ml_name: cstr!("release").as_ptr(),
        ml_meth: sys::PyMethodDefPointer { PyCFunction: release },
        ml_flags: sys::METH_NOARGS,
        ml_doc: cstr!("release() -> None\n\nDrop this object's reference to the memory now (BufferError while a memoryview of it is alive).").as_ptr(),
    },
    sys::PyMethodDef::zeroed(),
];

static mut GETSET: [sys::PyGetSetDef; 4] = [
    sys::PyGetSetDef {
        name: cstr!("nbytes").as_ptr(),
        get: Some(get_nbytes),
        set: None,
        doc: cstr!("Size in bytes.").as_ptr(),
        closure: null_mut(),
    },
    sys::PyGetSetDef {
        name: cstr!("readonly").as_ptr(),
        get: Some(get_readonly),
        set: None,
        doc: cstr!("Whether memoryviews of it are read-only.").as_ptr(),
        closure: null_mut(),
    },
    sys::PyGetSetDef {
        name: cstr!("released").as_ptr(),
        get: Some(get_released),
        set: None,
        doc: cstr!("Whether release() was called.").as_ptr(),
        closure: null_mut(),
    },
    sys::PyGetSetDef {
        name: std::ptr::null(),
        get: None,
        set: None,
        doc: std::ptr::null(),
        closure: null_mut(),
    },
];

/// Create this module's `SharedBuffer` heap type and add it to `module`.
/// # Safety
/// Attached; `module` is our live module object (its exec slot).
pub unsafe fn add_type(module: *mut sys::PyObject) -> PyResult<()> {
    let mut slots = [
        sys::PyType_Slot { slot: sys::Py_tp_new, pfunc: tp_new as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_dealloc, pfunc: dealloc_native::<Mutex<State>> as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_repr, pfunc: tp_repr as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_bf_getbuffer, pfunc: getbuffer as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_bf_releasebuffer, pfunc: releasebuffer as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_sq_length, pfunc: sq_length as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_methods, pfunc: std::ptr::addr_of_mut!(METHODS) as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_getset, pfunc: std::ptr::addr_of_mut!(GETSET) as *mut c_void },
        sys::PyType_Slot {
            slot: sys::Py_tp_doc,
            pfunc: cstr!("SharedBuffer(nbytes, *, readonly=False)\n--\n\nZero-filled, 64-byte aligned memory owned by no interpreter: pass it to other interpreters and every one sees the same bytes (zero-copy, through memoryview). Freed when the last reference in any interpreter goes.").as_ptr() as *mut c_void,
        },
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    // SAFETY: the caller's contract (attached, our module); the slots match
    // the layout.
    unsafe {
        crate::legacy::add_heap_type(
            module,
            cstr!("crossinterp.SharedBuffer"),
            cstr!("SharedBuffer"),
            std::mem::size_of::<Native<Mutex<State>>>(),
            sys::Py_TPFLAGS_DEFAULT | sys::Py_TPFLAGS_IMMUTABLETYPE,
            &mut slots,
        )
    }
}

/// A `SharedBuffer` in transit.
#[derive(Debug)]
pub struct BufferValue(pub Arc<SharedMem>);

impl crate::xi::Shared for BufferValue {
    fn to_python(&self) -> PyResult<Owned> {
        to_python(&self.0)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// # Safety
/// `obj` is a live `SharedBuffer` of the attached interpreter.
unsafe fn buffer_value(obj: *mut sys::PyObject) -> PyResult<Option<crate::xi::Value>> {
    // SAFETY: forwarded.
    Ok(unsafe { as_buffer(obj)? }.map(|m| crate::xi::Value::Shared(Arc::new(BufferValue(m)))))
}

static BUFFER_XI: crate::xi::Converter = crate::xi::Converter {
    matches: crate::xi::Match::Named(cstr!("SharedBuffer")),
    to_value: Some(buffer_value),
    refuse: None,
};

/// `SharedBuffer`: owner-free memory, shared zero-copy.
pub const ENTRY: super::Entry = super::Entry {
    converters: &[&BUFFER_XI],
    legacy_add: Some(add_type),
    ..super::Entry::EMPTY
};
