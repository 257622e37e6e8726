//! Zero-copy views of interpreter-owned memory.
//!
//! A `memoryview` (of `bytes`, a `bytearray`, an `array`, ...) crossing to
//! another interpreter is not copied: its exporter's buffer is pinned in the
//! owner (a `Py_buffer` held through a cross-owner [`Handle`]) and arrives as
//! a read-only `BorrowedBuffer` over the same memory.
//!
//! - While a memoryview of a `BorrowedBuffer` is alive, the object holds a
//!   guard on the owner: the owner cannot finish finalizing (its `close()`
//!   waits, and warns if that takes long), so the memory stays valid.
//! - With no such export, the owner may go; afterwards exporting raises
//!   `InterpreterGoneError`.
//! - When the last `BorrowedBuffer` (in any interpreter) goes, the pinned
//!   buffer is released *in its owner* (`PyBuffer_Release` with the owner
//!   attached: inline if we are there, else as a pending call); after the owner
//!   is gone there is nothing left to release.
//! - Arriving back in its own interpreter, it is a plain `memoryview` of the
//!   original exporter.

use crate::cstr;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::legacy::{alloc_native, dealloc_native, native_ref, Native};
use crate::runtime::owners;
use crate::runtime::Error;
use crossinterp_core::sync::{lock, Arc, Mutex, Ordering};
use crossinterp_core::{Attached, Guard, Handle, Release};
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

/// A `Py_buffer` held in its owner, released there.
pub struct Pinned {
    view: sys::Py_buffer,
}

// SAFETY: the Py_buffer's pointers are only dereferenced (by readers) under a
// guard of the owner, and released (`PyBuffer_Release`) only in the owner,
// through `Release::release`; moving the struct between threads is harmless.
unsafe impl Send for Pinned {}
// SAFETY: shared access reads the immutable `buf`/`len` fields only.
unsafe impl Sync for Pinned {}

impl Release for Pinned {
    fn release(mut self, _attached: &Attached<'_>) {
        // SAFETY: `Release::release` runs with the owner attached (the
        // `Attached` proof); the view was filled by PyObject_GetBuffer there.
        unsafe { sys::PyBuffer_Release(&mut self.view) };
    }
}

/// A pinned buffer in transit: the handle plus its address and length.
#[derive(Clone)]
pub struct Borrowed {
    handle: Handle<Pinned>,
    ptr: usize,
    len: usize,
}

impl std::fmt::Debug for Borrowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Borrowed({} bytes of owner {})",
            self.len,
            self.handle.owner().id()
        )
    }
}

/// Pin `obj` (a memoryview of the attached interpreter).
///
/// # Safety
/// `obj` is a live memoryview of the attached interpreter.
pub unsafe fn pin(obj: *mut sys::PyObject) -> PyResult<Borrowed> {
    let (_, iid) = ffi::interp::current();
    let rec = owners::get(iid).ok_or_else(|| PyErrSet::from(Error::NotFound(iid)))?;
    // SAFETY: attached; `view` is filled by GetBuffer (contiguous bytes).
    let view = unsafe {
        let mut view: sys::Py_buffer = std::mem::zeroed();
        if sys::PyObject_GetBuffer(obj, &mut view, sys::PyBUF_SIMPLE) < 0 {
            return Err(PyErrSet);
        }
        view
    };
    let (ptr, len) = (view.buf as usize, view.len as usize);
    // SAFETY: entry points run attached to `rec`'s interpreter.
    let attached = unsafe { Attached::enter(rec.view.id()) };
    let handle = Handle::new(Pinned { view }, rec.view.clone(), &attached);
    Ok(Borrowed { handle, ptr, len })
}

/// The value of a `BorrowedBuffer` object (`Native<Mutex<State>>`), owned by that
/// object in its interpreter; behind a lock because free-threaded builds may
/// export and release it from several threads at once.
struct State {
    borrowed: Option<Borrowed>,
    exports: usize,
    guard: Option<Guard>,
    /// The owner's record while `guard` pins it (its `pins` counts us).
    pinned: Option<Arc<owners::OwnerRecord>>,
}

fn gone(b: &Borrowed) -> PyErrSet {
    Error::gone(&format!(
        "the interpreter that owns this memory (owner {}) is finalizing or gone",
        b.handle.owner().id()
    ))
}

/// The object for `b` in the attached interpreter: a `memoryview` of the
/// original exporter in its owner, a `BorrowedBuffer` elsewhere.
pub fn to_python(b: &Borrowed) -> PyResult<Owned> {
    let (_, iid) = ffi::interp::current();
    if b.handle.owner().tag() as i64 == iid {
        // SAFETY: attached to the owner; the handle's payload is valid there.
        let attached = unsafe { Attached::enter(b.handle.owner().id()) };
        let pinned = b.handle.get(&attached).map_err(|_| gone(b))?;
        // SAFETY: attached; `obj` is the exporter, kept alive by the view.
        return unsafe { Owned::from_new(sys::PyMemoryView_FromObject(pinned.view.obj)) };
    }
    let tp = ffi::import_attr(cstr!("crossinterp._native"), cstr!("BorrowedBuffer"))?;
    let state = Mutex::new(State {
        borrowed: Some(b.clone()),
        exports: 0,
        guard: None,
        pinned: None,
    });
    // SAFETY: attached; this interpreter's BorrowedBuffer type, whose layout
    // and dealloc are `Native<Mutex<State>>`'s.
    unsafe { alloc_native(tp.as_ptr() as *mut sys::PyTypeObject, state) }
}

/// A `bytes` of the attached interpreter equal to the pinned `bytes` `b`: in
/// its owner, the original (immutable) object; elsewhere one copy made
/// straight from the owner's memory, read under a guard of the owner
/// (`InterpreterGoneError` if it is finalizing or gone).
pub fn bytes_to_python(b: &Borrowed) -> PyResult<Owned> {
    let (_, iid) = ffi::interp::current();
    if b.handle.owner().tag() as i64 == iid {
        // SAFETY: attached to the owner; the handle's payload is valid there.
        let attached = unsafe { Attached::enter(b.handle.owner().id()) };
        let pinned = b.handle.get(&attached).map_err(|_| gone(b))?;
        // SAFETY: `obj` is the pinned bytes object, kept alive by the view.
        return Ok(unsafe { Owned::from_borrowed(pinned.view.obj) });
    }
    let guard = b.handle.owner().guard().map_err(|_| gone(b))?;
    // SAFETY: the guard keeps the owner (and so the pinned, immutable bytes
    // object and its memory) alive during the copy; attached to our own
    // interpreter, where the new object is made.
    let r = unsafe {
        Owned::from_new(sys::PyBytes_FromStringAndSize(
            b.ptr as *const std::ffi::c_char,
            b.len as sys::Py_ssize_t,
        ))
    };
    drop(guard);
    r
}

/// The pinned buffer of `obj` if it is a `BorrowedBuffer` of this interpreter.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn as_borrowed(obj: *mut sys::PyObject) -> PyResult<Option<Borrowed>> {
    // SAFETY: attached; `obj` is live and, when ours, a BorrowedBuffer.
    unsafe {
        if !crate::legacy::is_ours(obj, cstr!("BorrowedBuffer"))? {
            return Ok(None);
        }
        match &lock(native_ref::<Mutex<State>>(obj)).borrowed {
            Some(b) => Ok(Some(b.clone())),
            None => Err(ffi::raise(
                ffi::Exc::ValueError,
                "operation on a released BorrowedBuffer",
            )),
        }
    }
}

unsafe extern "C" fn getbuffer(
    slf: *mut sys::PyObject,
    view: *mut sys::Py_buffer,
    flags: c_int,
) -> c_int {
    ffi::trampoline_int(|| {
        // SAFETY: `slf` is a BorrowedBuffer; `view` is CPython's to fill.
        unsafe {
            let mut st = lock(native_ref::<Mutex<State>>(slf));
            let Some(b) = st.borrowed.clone() else {
                (*view).obj = null_mut();
                return Err(ffi::raise(
                    ffi::Exc::ValueError,
                    "operation on a released BorrowedBuffer",
                ));
            };
            if st.exports == 0 {
                match b.handle.owner().guard() {
                    Ok(g) => {
                        st.guard = Some(g);
                        if let Some(r) = owners::get(b.handle.owner().tag() as i64) {
                            // Release: the finalizer's Acquire load sees the pin
                            // with the guard it accounts for.
                            r.pins.fetch_add(1, Ordering::Release);
                            st.pinned = Some(r);
                        }
                    }
                    Err(_) => {
                        (*view).obj = null_mut();
                        return Err(gone(&b));
                    }
                }
            }
            // Read-only: the owner's object may be immutable (bytes).
            if sys::PyBuffer_FillInfo(
                view,
                slf,
                b.ptr as *mut c_void,
                b.len as sys::Py_ssize_t,
                1,
                flags,
            ) < 0
            {
                if st.exports == 0 {
                    st.guard = None;
                }
                return Err(PyErrSet);
            }
            st.exports += 1;
            Ok(())
        }
    })
}

unsafe extern "C" fn releasebuffer(slf: *mut sys::PyObject, _view: *mut sys::Py_buffer) {
    // SAFETY: `slf` is a BorrowedBuffer with this export open.
    let mut st = lock(unsafe { native_ref::<Mutex<State>>(slf) });
    st.exports = st.exports.saturating_sub(1);
    if st.exports == 0 {
        // The last export is gone: stop pinning the owner.
        unpin(&mut st);
    }
}

fn unpin(st: &mut State) {
    if let Some(r) = st.pinned.take() {
        // Release: pairs with the finalizer's Acquire load of the counter.
        r.pins.fetch_sub(1, Ordering::Release);
    }
    st.guard = None;
}

unsafe extern "C" fn sq_length(slf: *mut sys::PyObject) -> sys::Py_ssize_t {
    // SAFETY: `slf` is a BorrowedBuffer.
    match &lock(unsafe { native_ref::<Mutex<State>>(slf) }).borrowed {
        Some(b) => b.len as sys::Py_ssize_t,
        None => {
            ffi::raise(
                ffi::Exc::ValueError,
                "operation on a released BorrowedBuffer",
            );
            -1
        }
    }
}

unsafe extern "C" fn release(
    slf: *mut sys::PyObject,
    _unused: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a BorrowedBuffer.
        let mut st = lock(unsafe { native_ref::<Mutex<State>>(slf) });
        if st.exports > 0 {
            return Err(ffi::raise(
                ffi::Exc::BufferError,
                "cannot release a BorrowedBuffer while a memoryview of it is alive",
            ));
        }
        let b = st.borrowed.take();
        drop(st);
        drop(b); // the last handle routes PyBuffer_Release to the owner
        Ok(ffi::none())
    })
}

unsafe extern "C" fn get_owner(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a BorrowedBuffer.
        let iid = match &lock(unsafe { native_ref::<Mutex<State>>(slf) }).borrowed {
            Some(b) => b.handle.owner().tag() as i64,
            None => {
                return Err(ffi::raise(
                    ffi::Exc::ValueError,
                    "operation on a released BorrowedBuffer",
                ))
            }
        };
        Ok(ffi::new_int(iid)?.into_ptr())
    })
}

unsafe extern "C" fn get_alive(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    // SAFETY: `slf` is a BorrowedBuffer; attached.
    let alive = lock(unsafe { native_ref::<Mutex<State>>(slf) })
        .borrowed
        .as_ref()
        .is_some_and(|b| b.handle.owner().is_running());
    // SAFETY: attached.
    unsafe { sys::PyBool_FromLong(alive as _) }
}

static mut METHODS: [sys::PyMethodDef; 2] = [
    sys::PyMethodDef {
        ml_name: cstr!("release").as_ptr(),
        ml_meth: sys::PyMethodDefPointer { PyCFunction: release },
        ml_flags: sys::METH_NOARGS,
        ml_doc: cstr!("release() -> None\n\nUnpin the owner's memory now (BufferError while a memoryview of it is alive).").as_ptr(),
    },
    sys::PyMethodDef::zeroed(),
];

static mut GETSET: [sys::PyGetSetDef; 3] = [
    sys::PyGetSetDef {
        name: cstr!("owner").as_ptr(),
        get: Some(get_owner),
        set: None,
        doc: cstr!("The id of the interpreter that owns the memory.").as_ptr(),
        closure: null_mut(),
    },
    sys::PyGetSetDef {
        name: cstr!("alive").as_ptr(),
        get: Some(get_alive),
        set: None,
        doc: cstr!("Whether the owner still runs (memoryviews can be made).").as_ptr(),
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

/// Create this module's `BorrowedBuffer` heap type and add it to `module`.
/// # Safety
/// Attached; `module` is our live module object (its exec slot).
pub unsafe fn add_type(module: *mut sys::PyObject) -> PyResult<()> {
    let mut slots = [
        sys::PyType_Slot { slot: sys::Py_tp_dealloc, pfunc: dealloc_native::<Mutex<State>> as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_bf_getbuffer, pfunc: getbuffer as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_bf_releasebuffer, pfunc: releasebuffer as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_sq_length, pfunc: sq_length as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_methods, pfunc: std::ptr::addr_of_mut!(METHODS) as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_getset, pfunc: std::ptr::addr_of_mut!(GETSET) as *mut c_void },
        sys::PyType_Slot {
            slot: sys::Py_tp_doc,
            pfunc: cstr!("A read-only, zero-copy view of memory owned by another interpreter (a memoryview that crossed). While a memoryview of it is alive the owner cannot finish closing; after the owner is gone, making one raises InterpreterGoneError.").as_ptr() as *mut c_void,
        },
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    // SAFETY: the caller's contract (attached, our module); the slots match
    // the layout.
    unsafe {
        crate::legacy::add_heap_type(
            module,
            cstr!("crossinterp.BorrowedBuffer"),
            cstr!("BorrowedBuffer"),
            std::mem::size_of::<Native<Mutex<State>>>(),
            sys::Py_TPFLAGS_DEFAULT
                | sys::Py_TPFLAGS_IMMUTABLETYPE
                | sys::Py_TPFLAGS_DISALLOW_INSTANTIATION,
            &mut slots,
        )
    }
}

/// A memoryview's memory in transit (zero-copy, read-only), or a large
/// `bytes` pinned in its owner (copied once, by the receiver).
#[derive(Debug)]
enum BorrowedValue {
    View(Borrowed),
    Bytes(Borrowed),
}

impl crate::xi::Shared for BorrowedValue {
    fn to_python(&self) -> PyResult<Owned> {
        match self {
            BorrowedValue::View(b) => to_python(b),
            BorrowedValue::Bytes(b) => bytes_to_python(b),
        }
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn shared(v: BorrowedValue) -> crate::xi::Value {
    crate::xi::Value::Shared(Arc::new(v))
}

/// # Safety
/// `obj` is a live `BorrowedBuffer` of the attached interpreter.
unsafe fn borrowed_value(obj: *mut sys::PyObject) -> PyResult<Option<crate::xi::Value>> {
    // SAFETY: forwarded.
    Ok(unsafe { as_borrowed(obj)? }.map(|b| shared(BorrowedValue::View(b))))
}

/// A memoryview: a view of a whole `SharedBuffer` crosses as that buffer
/// (owner-free, writable as it is); any other view is lent by its owner.
///
/// # Safety
/// `obj` is a live memoryview of the attached interpreter.
unsafe fn memoryview_value(obj: *mut sys::PyObject) -> PyResult<Option<crate::xi::Value>> {
    // SAFETY: forwarded; `view` is filled by GetBuffer before use.
    unsafe {
        let base = Owned::from_new(sys::PyObject_GetAttrString(obj, cstr!("obj").as_ptr()))?;
        if let Some(m) = super::buffer::as_buffer(base.as_ptr())? {
            let mut view: sys::Py_buffer = std::mem::zeroed();
            if sys::PyObject_GetBuffer(obj, &mut view, sys::PyBUF_SIMPLE) == 0 {
                let whole =
                    std::ptr::eq(view.buf as *const u8, m.as_ptr()) && view.len as usize == m.len();
                sys::PyBuffer_Release(&mut view);
                if whole {
                    return Ok(Some(crate::xi::Value::Shared(Arc::new(
                        super::buffer::BufferValue(m),
                    ))));
                }
            } else {
                sys::PyErr_Clear(); // not contiguous: `pin` reports it
            }
        }
        Ok(Some(shared(BorrowedValue::View(pin(obj)?))))
    }
}

/// A large `bytes` (smaller ones are copied by `xi` itself).
///
/// # Safety
/// `obj` is a live `bytes` of the attached interpreter.
unsafe fn bytes_value(obj: *mut sys::PyObject) -> PyResult<Option<crate::xi::Value>> {
    // SAFETY: forwarded.
    unsafe {
        if sys::PyBytes_CheckExact(obj) == 0 {
            return Ok(None); // a subclass: pickled
        }
        Ok(Some(shared(BorrowedValue::Bytes(pin(obj)?))))
    }
}

fn memoryview_type() -> *mut sys::PyTypeObject {
    std::ptr::addr_of_mut!(sys::PyMemoryView_Type)
}

fn bytes_type() -> *mut sys::PyTypeObject {
    std::ptr::addr_of_mut!(sys::PyBytes_Type)
}

static BORROWED_XI: crate::xi::Converter = crate::xi::Converter {
    matches: crate::xi::Match::Named(cstr!("BorrowedBuffer")),
    to_value: Some(borrowed_value),
    refuse: None,
};

static MEMORYVIEW_XI: crate::xi::Converter = crate::xi::Converter {
    matches: crate::xi::Match::Builtin(memoryview_type),
    to_value: Some(memoryview_value),
    refuse: None,
};

static BYTES_XI: crate::xi::Converter = crate::xi::Converter {
    matches: crate::xi::Match::Builtin(bytes_type),
    to_value: Some(bytes_value),
    refuse: None,
};

/// `BorrowedBuffer`, and the lending of memoryviews and large `bytes`.
pub const ENTRY: super::Entry = super::Entry {
    converters: &[&BORROWED_XI, &MEMORYVIEW_XI, &BYTES_XI],
    legacy_add: Some(add_type),
    ..super::Entry::EMPTY
};
