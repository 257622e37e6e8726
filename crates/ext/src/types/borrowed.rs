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

use super::buffer;
use super::Entry;
use crate::cstr;
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::runtime::{self, owners, Error};
use crate::xi::{Converter, Match, Shared, Value};
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

/// The mutable part of a `BorrowedBuffer` object.
struct LoanState {
    borrowed: Option<Borrowed>,
    exports: usize,
    guard: Option<Guard>,
    /// The owner's record while `guard` pins it (its `pins` counts us).
    pinned: Option<Arc<owners::OwnerRecord>>,
}

/// The value of a `BorrowedBuffer` object, owned by that object in its
/// interpreter; behind a lock because free-threaded builds may export and
/// release it from several threads at once.
pub struct BorrowedBuffer(Mutex<LoanState>);

type BB<'a> = This<'a, BorrowedBuffer>;

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
    runtime::new_instance(BorrowedBuffer(Mutex::new(LoanState {
        borrowed: Some(b.clone()),
        exports: 0,
        guard: None,
        pinned: None,
    })))
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
    let r =
        unsafe { ffi::mem::bytes_copy_of(std::slice::from_raw_parts(b.ptr as *const u8, b.len)) };
    drop(guard);
    r
}

fn released() -> PyErrSet {
    ffi::raise(Exc::ValueError, "operation on a released BorrowedBuffer")
}

/// The pinned buffer of a `BorrowedBuffer` (`ValueError` if released).
fn borrowed_of(this: BB) -> PyResult<Borrowed> {
    match &lock(&this.0).borrowed {
        Some(b) => Ok(b.clone()),
        None => Err(released()),
    }
}

fn unpin(st: &mut LoanState) {
    if let Some(r) = st.pinned.take() {
        // Release: pairs with the finalizer's Acquire load of the counter.
        r.pins.fetch_sub(1, Ordering::Release);
    }
    st.guard = None;
}

impl BorrowedBuffer {
    fn getbuffer(this: BB, view: *mut sys::Py_buffer, flags: c_int) -> PyResult<()> {
        let mut st = lock(&this.0);
        let Some(b) = st.borrowed.clone() else {
            // SAFETY: `view` is CPython's to fill; on failure its `obj` must
            // be NULL.
            unsafe { (*view).obj = null_mut() };
            return Err(released());
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
                    // SAFETY: as above.
                    unsafe { (*view).obj = null_mut() };
                    return Err(gone(&b));
                }
            }
        }
        // Read-only: the owner's object may be immutable (bytes).
        // SAFETY: attached; `view` is CPython's to fill; the memory stays
        // valid while an export holds the guard on its owner (taken above).
        if unsafe {
            sys::PyBuffer_FillInfo(
                view,
                this.as_ptr(),
                b.ptr as *mut c_void,
                b.len as sys::Py_ssize_t,
                1,
                flags,
            )
        } < 0
        {
            if st.exports == 0 {
                st.guard = None;
            }
            return Err(PyErrSet);
        }
        st.exports += 1;
        Ok(())
    }

    fn releasebuffer(this: BB, _view: *mut sys::Py_buffer) {
        let mut st = lock(&this.0);
        st.exports = st.exports.saturating_sub(1);
        if st.exports == 0 {
            // The last export is gone: stop pinning the owner.
            unpin(&mut st);
        }
    }

    fn len(this: BB) -> PyResult<usize> {
        borrowed_of(this).map(|b| b.len)
    }

    fn release(this: BB) -> PyResult<()> {
        let mut st = lock(&this.0);
        if st.exports > 0 {
            return Err(ffi::raise(
                Exc::BufferError,
                "cannot release a BorrowedBuffer while a memoryview of it is alive",
            ));
        }
        let b = st.borrowed.take();
        drop(st);
        drop(b); // the last handle routes PyBuffer_Release to the owner
        Ok(())
    }

    fn owner(this: BB) -> PyResult<i64> {
        match &lock(&this.0).borrowed {
            Some(b) => Ok(b.handle.owner().tag() as i64),
            None => Err(released()),
        }
    }

    /// Size, owner and whether it runs, and the lend state (memoryviews
    /// alive, each one pinning the owner).
    fn repr(this: BB) -> PyResult<String> {
        let st = lock(&this.0);
        Ok(match &st.borrowed {
            Some(b) => format!(
                "<BorrowedBuffer nbytes={} owner={} {} memoryviews={}>",
                b.len,
                b.handle.owner().tag() as i64,
                if b.handle.owner().is_running() {
                    "alive"
                } else {
                    "gone"
                },
                st.exports
            ),
            None => "<BorrowedBuffer released>".to_owned(),
        })
    }

    fn alive(this: BB) -> PyResult<bool> {
        Ok(lock(&this.0)
            .borrowed
            .as_ref()
            .is_some_and(|b| b.handle.owner().is_running()))
    }
}

crate::native_class! {
    BorrowedBuffer {
        name: "crossinterp.BorrowedBuffer",
        attr: "BorrowedBuffer",
        doc: "A read-only, zero-copy view of memory owned by another interpreter (a memoryview that crossed). While a memoryview of it is alive the owner cannot finish closing; after the owner is gone, making one raises InterpreterGoneError.",
        flags: sys::Py_TPFLAGS_DISALLOW_INSTANTIATION,
        methods: [
            (noargs, "release", "", BorrowedBuffer::release,
                "release() -> None\n\nUnpin the owner's memory now (BufferError while a memoryview of it is alive)."),
        ],
        getset: [
            ("owner", BorrowedBuffer::owner, "The id of the interpreter that owns the memory."),
            ("alive", BorrowedBuffer::alive, "Whether the owner still runs (memoryviews can be made)."),
        ],
        slots: [
            (getbuffer, BorrowedBuffer::getbuffer),
            (releasebuffer, BorrowedBuffer::releasebuffer),
            (sq_len, BorrowedBuffer::len),
            (repr, BorrowedBuffer::repr),
        ],
    }
}

/// A memoryview's memory in transit (zero-copy, read-only), or a large
/// `bytes` pinned in its owner (copied once, by the receiver).
#[derive(Debug)]
enum BorrowedValue {
    View(Borrowed),
    Bytes(Borrowed),
}

impl Shared for BorrowedValue {
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        match &*self {
            BorrowedValue::View(b) => to_python(b),
            BorrowedValue::Bytes(b) => bytes_to_python(b),
        }
    }
}

fn shared(v: BorrowedValue) -> Value {
    Value::Shared(Arc::new(v))
}

impl crate::xi::Crosses for BorrowedBuffer {
    fn crossing(this: BB) -> PyResult<Arc<dyn Shared>> {
        Ok(Arc::new(BorrowedValue::View(borrowed_of(this)?)))
    }
}

/// A memoryview: a view of a whole `SharedBuffer` crosses as that buffer
/// (owner-free, writable as it is); any other view is lent by its owner.
///
/// # Safety
/// `obj` is a live memoryview of the attached interpreter.
unsafe fn memoryview_value(
    _rec: &crate::runtime::OwnerRecord,
    obj: *mut sys::PyObject,
) -> PyResult<Option<Value>> {
    // SAFETY: forwarded; `view` is filled by GetBuffer before use.
    unsafe {
        let base = Owned::from_new(sys::PyObject_GetAttrString(obj, cstr!("obj").as_ptr()))?;
        if let Some(m) = buffer::as_buffer(base.as_ptr())? {
            let mut view: sys::Py_buffer = std::mem::zeroed();
            if sys::PyObject_GetBuffer(obj, &mut view, sys::PyBUF_SIMPLE) == 0 {
                let whole =
                    std::ptr::eq(view.buf as *const u8, m.as_ptr()) && view.len as usize == m.len();
                sys::PyBuffer_Release(&mut view);
                if whole {
                    return Ok(Some(Value::Shared(m)));
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
unsafe fn bytes_value(
    _rec: &crate::runtime::OwnerRecord,
    obj: *mut sys::PyObject,
) -> PyResult<Option<Value>> {
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

static BORROWED_XI: Converter = Converter::class::<BorrowedBuffer>();

static MEMORYVIEW_XI: Converter = Converter {
    matches: Match::Builtin(memoryview_type),
    to_value: Some(memoryview_value),
    refuse: None,
};

static BYTES_XI: Converter = Converter {
    matches: Match::Builtin(bytes_type),
    to_value: Some(bytes_value),
    refuse: None,
};

/// `BorrowedBuffer`, and the lending of memoryviews and large `bytes`.
pub const ENTRY: Entry = Entry {
    classes: &[BorrowedBuffer::DEF],
    hook: None,
    converters: &[&BORROWED_XI, &MEMORYVIEW_XI, &BYTES_XI],
    fork_hold: None,
};
