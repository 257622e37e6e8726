//! Cross-interpreter data: a value leaves interpreter A as an
//! interpreter-neutral [`Value`] and becomes a new object in B.
//!
//! Copied natively: `None`, `bool`, `int` (any size), `float`, `str`, `bytes`,
//! and tuples of these (exact types only: subclasses carry behaviour, so they
//! are pickled). Everything else is pickled (protocol 5) by
//! `crossinterp._xi.dumps`, unless the caller asks for strict sharing, in which
//! case `NotShareableError` is raised.

use crate::cstr;
use crate::errors;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::queue::{self, SharedQueue};
use crossinterp_core::buffer::SharedMem;
use crossinterp_core::sync::Arc;
use std::ffi::c_char;

/// `bytes` this large are not copied at the sender: they are pinned there
/// (immutable, kept alive by a cross-owner handle) and copied once by the
/// receiver, saving a copy and the page faults of a large temporary block.
const PIN_BYTES_FROM: usize = 256 * 1024;

/// Tuples nested deeper than this are pickled as a whole.
const MAX_DEPTH: usize = 64;

/// An interpreter-neutral value. Plain Rust data: `Send`, owned by no
/// interpreter, may be dropped anywhere.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// Little-endian two's complement bytes of an int beyond 64 bits.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    /// A `str` with lone surrogates, as `surrogatepass` UTF-8.
    StrRaw(Vec<u8>),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    /// A pickle, with the sender's `__main__` file so functions and classes
    /// defined there can be found by the receiver.
    Pickled {
        data: Vec<u8>,
        main_file: Option<String>,
    },
    /// A cross-interpreter queue (shared, not copied).
    Queue(Arc<SharedQueue>),
    /// Owner-free shared memory (zero-copy).
    Buffer(Arc<SharedMem>),
    /// A rendezvous channel (shared, not copied).
    Channel(Arc<crate::channel::SharedChannel>),
    /// A memoryview's memory, pinned in its owner (zero-copy, read-only).
    Borrowed(crate::borrowed::Borrowed),
    /// A large `bytes`, pinned in its owner and copied once, by the receiver.
    PinnedBytes(crate::borrowed::Borrowed),
    /// A shared atomic integer.
    AtomicInt(crossinterp_core::atomic::AtomicInt),
    /// A shared atomic boolean.
    AtomicBool(crossinterp_core::atomic::AtomicFlag),
    /// An object of its owner interpreter, shared by reference: the object
    /// itself in the owner, a `SharedObjectProxy` elsewhere.
    Proxy(Arc<crate::proxy::ProxyTarget>),
}

/// Whether `obj` crosses natively (without pickling).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn is_shareable(obj: *mut sys::PyObject) -> PyResult<bool> {
    // SAFETY: forwarded contract.
    unsafe { Ok(native(obj, 0)?.is_some()) }
}

/// Convert `obj` (of the attached interpreter) to a [`Value`].
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn to_value(obj: *mut sys::PyObject, strict: bool) -> PyResult<Value> {
    // SAFETY: forwarded contract.
    if let Some(v) = unsafe { native(obj, 0)? } {
        return Ok(v);
    }
    // SAFETY: forwarded contract.
    if unsafe { crate::atomic_ref::is_atomic_ref(obj)? } {
        return Err(errors::not_shareable(crate::atomic_ref::NOT_SHAREABLE));
    }
    if strict {
        // SAFETY: `obj` is live.
        let tname = unsafe { type_name(obj) };
        return Err(errors::not_shareable(&format!(
            "{tname} object is not shareable between interpreters (strict=True: no pickle fallback)"
        )));
    }
    // SAFETY: `obj` is live.
    unsafe { pickled(obj) }
}

/// Convert a tuple's items, each by [`to_value`].
///
/// # Safety
/// `tuple` is a live tuple of the attached interpreter.
pub unsafe fn tuple_items(tuple: *mut sys::PyObject, strict: bool) -> PyResult<Vec<Value>> {
    // SAFETY: `tuple` is a live tuple; indices are in range.
    unsafe {
        let n = sys::PyTuple_Size(tuple);
        if n < 0 {
            return Err(PyErrSet);
        }
        (0..n)
            .map(|i| to_value(sys::PyTuple_GetItem(tuple, i), strict))
            .collect()
    }
}

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

/// `obj` as a [`Value`] if it crosses natively (without pickling).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn native_value(obj: *mut sys::PyObject) -> PyResult<Option<Value>> {
    // SAFETY: forwarded contract.
    unsafe { native(obj, 0) }
}

/// `Ok(None)`: not natively shareable.
unsafe fn native(obj: *mut sys::PyObject, depth: usize) -> PyResult<Option<Value>> {
    // SAFETY (whole body): `obj` is live and we are attached; every CPython
    // call below is given objects of the checked exact type.
    unsafe {
        if obj == sys::Py_None() {
            return Ok(Some(Value::None));
        }
        if obj == sys::Py_True() {
            return Ok(Some(Value::Bool(true)));
        }
        if obj == sys::Py_False() {
            return Ok(Some(Value::Bool(false)));
        }
        if sys::PyLong_CheckExact(obj) != 0 {
            let mut overflow = 0;
            let v = sys::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
            if overflow == 0 {
                if v == -1 && !sys::PyErr_Occurred().is_null() {
                    return Err(PyErrSet);
                }
                return Ok(Some(Value::Int(v)));
            }
            // Little endian (1), signed.
            let need = sys::PyLong_AsNativeBytes(obj, std::ptr::null_mut(), 0, 1);
            if need < 0 {
                return Err(PyErrSet);
            }
            let mut buf = vec![0u8; need as usize];
            let r = sys::PyLong_AsNativeBytes(obj, buf.as_mut_ptr().cast(), need, 1);
            if r < 0 {
                return Err(PyErrSet);
            }
            return Ok(Some(Value::BigInt(buf)));
        }
        if sys::PyFloat_CheckExact(obj) != 0 {
            return Ok(Some(Value::Float(sys::PyFloat_AsDouble(obj))));
        }
        if sys::PyUnicode_CheckExact(obj) != 0 {
            let mut len: sys::Py_ssize_t = 0;
            let p = sys::PyUnicode_AsUTF8AndSize(obj, &mut len);
            if !p.is_null() {
                let bytes = std::slice::from_raw_parts(p as *const u8, len as usize);
                return Ok(Some(Value::Str(
                    std::str::from_utf8_unchecked(bytes).to_owned(),
                )));
            }
            // Lone surrogates: not UTF-8, but `surrogatepass` round-trips them.
            sys::PyErr_Clear();
            let b = Owned::from_new(sys::PyUnicode_AsEncodedString(
                obj,
                cstr!("utf-8").as_ptr(),
                cstr!("surrogatepass").as_ptr(),
            ))?;
            return Ok(Some(Value::StrRaw(bytes_of(b.as_ptr()).to_vec())));
        }
        if let Some(t) = crate::proxy::proxy_target(obj) {
            return Ok(Some(Value::Proxy(t.clone())));
        }
        if let Some(v) = crate::proxy::method_value(obj)? {
            return Ok(Some(v));
        }
        if sys::PyBytes_CheckExact(obj) != 0 {
            if sys::PyBytes_Size(obj) as usize >= PIN_BYTES_FROM {
                return Ok(Some(Value::PinnedBytes(crate::borrowed::pin(obj)?)));
            }
            return Ok(Some(Value::Bytes(bytes_of(obj).to_vec())));
        }
        if let Some(q) = queue::as_queue(obj)? {
            return Ok(Some(Value::Queue(q)));
        }
        if let Some(m) = crate::buffer::as_buffer(obj)? {
            return Ok(Some(Value::Buffer(m)));
        }
        if let Some(c) = crate::channel::as_channel(obj)? {
            return Ok(Some(Value::Channel(c)));
        }
        if let Some(a) = crate::atomics::as_int(obj)? {
            return Ok(Some(Value::AtomicInt(a)));
        }
        if let Some(a) = crate::atomics::as_flag(obj)? {
            return Ok(Some(Value::AtomicBool(a)));
        }
        if sys::PyMemoryView_Check(obj) != 0 {
            // A view of a whole SharedBuffer crosses as that buffer (owner-free,
            // writable as it is); any other view is lent by its owner.
            let base = Owned::from_new(sys::PyObject_GetAttrString(obj, cstr!("obj").as_ptr()))?;
            if let Some(m) = crate::buffer::as_buffer(base.as_ptr())? {
                let mut view: sys::Py_buffer = std::mem::zeroed();
                if sys::PyObject_GetBuffer(obj, &mut view, sys::PyBUF_SIMPLE) == 0 {
                    let whole = std::ptr::eq(view.buf as *const u8, m.as_ptr())
                        && view.len as usize == m.len();
                    sys::PyBuffer_Release(&mut view);
                    if whole {
                        return Ok(Some(Value::Buffer(m)));
                    }
                } else {
                    sys::PyErr_Clear(); // not contiguous: `pin` reports it
                }
            }
            return Ok(Some(Value::Borrowed(crate::borrowed::pin(obj)?)));
        }
        if let Some(b) = crate::borrowed::as_borrowed(obj)? {
            return Ok(Some(Value::Borrowed(b)));
        }
        if sys::PyTuple_CheckExact(obj) != 0 && depth < MAX_DEPTH {
            let n = sys::PyTuple_Size(obj);
            let mut items = Vec::with_capacity(n as usize);
            for i in 0..n {
                match native(sys::PyTuple_GetItem(obj, i), depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            return Ok(Some(Value::Tuple(items)));
        }
        Ok(None)
    }
}

/// # Safety
/// `obj` is a live `bytes` object; the slice must not outlive it.
unsafe fn bytes_of<'a>(obj: *mut sys::PyObject) -> &'a [u8] {
    // SAFETY: forwarded contract; `bytes` are immutable.
    unsafe {
        let p = sys::PyBytes_AsString(obj);
        let n = sys::PyBytes_Size(obj);
        std::slice::from_raw_parts(p as *const u8, n as usize)
    }
}

unsafe fn pickled(obj: *mut sys::PyObject) -> PyResult<Value> {
    let dumps = ffi::import_attr(cstr!("crossinterp._xi"), cstr!("dumps"))?;
    let res = match ffi::call(&dumps, &[obj]) {
        Ok(r) => r,
        Err(PyErrSet) => {
            // SAFETY: `obj` is live.
            let tname = unsafe { type_name(obj) };
            return Err(errors::not_shareable_from_current(&format!(
                "{tname} object is not shareable between interpreters and cannot be pickled"
            )));
        }
    };
    // `dumps` returns (bytes, main_file | None).
    // SAFETY: `res` is a live object; items are checked before use.
    unsafe {
        let r = res.as_ptr();
        if sys::PyTuple_CheckExact(r) == 0 || sys::PyTuple_Size(r) != 2 {
            return Err(ffi::raise(
                ffi::Exc::SystemError,
                "crossinterp._xi.dumps returned a bad value",
            ));
        }
        let data = sys::PyTuple_GetItem(r, 0);
        let mf = sys::PyTuple_GetItem(r, 1);
        if sys::PyBytes_CheckExact(data) == 0 {
            return Err(ffi::raise(
                ffi::Exc::SystemError,
                "crossinterp._xi.dumps returned a bad value",
            ));
        }
        let main_file = if mf == sys::Py_None() {
            None
        } else {
            Some(ffi::str_utf8(mf)?.to_owned())
        };
        Ok(Value::Pickled {
            data: bytes_of(data).to_vec(),
            main_file,
        })
    }
}

/// Build a new object in the attached interpreter from `v`.
pub fn from_value(v: &Value) -> PyResult<Owned> {
    // SAFETY (whole body): attached; every constructor receives valid data.
    unsafe {
        match v {
            Value::None => Ok(Owned::from_borrowed(sys::Py_None())),
            Value::Bool(true) => Ok(Owned::from_borrowed(sys::Py_True())),
            Value::Bool(false) => Ok(Owned::from_borrowed(sys::Py_False())),
            Value::Int(i) => ffi::new_int(*i),
            Value::BigInt(b) => {
                Owned::from_new(sys::PyLong_FromNativeBytes(b.as_ptr().cast(), b.len(), 1))
            }
            Value::Float(f) => Owned::from_new(sys::PyFloat_FromDouble(*f)),
            Value::Str(s) => ffi::new_str(s),
            Value::StrRaw(b) => Owned::from_new(sys::PyUnicode_DecodeUTF8(
                b.as_ptr() as *const c_char,
                b.len() as sys::Py_ssize_t,
                cstr!("surrogatepass").as_ptr(),
            )),
            Value::Bytes(b) => Owned::from_new(sys::PyBytes_FromStringAndSize(
                b.as_ptr() as *const c_char,
                b.len() as sys::Py_ssize_t,
            )),
            Value::Tuple(items) => {
                let t = Owned::from_new(sys::PyTuple_New(items.len() as sys::Py_ssize_t))?;
                for (i, item) in items.iter().enumerate() {
                    let o = from_value(item)?;
                    // PyTuple_SetItem steals the reference, even on failure.
                    if sys::PyTuple_SetItem(t.as_ptr(), i as sys::Py_ssize_t, o.into_ptr()) < 0 {
                        return Err(PyErrSet);
                    }
                }
                Ok(t)
            }
            Value::Queue(q) => queue::to_python(q),
            Value::Buffer(m) => crate::buffer::to_python(m),
            Value::Channel(c) => crate::channel::to_python(c),
            Value::Borrowed(b) => crate::borrowed::to_python(b),
            Value::PinnedBytes(b) => crate::borrowed::bytes_to_python(b),
            Value::AtomicInt(a) => crate::atomics::int_to_python(a),
            Value::AtomicBool(a) => crate::atomics::flag_to_python(a),
            Value::Proxy(t) => crate::proxy::to_python(t),
            Value::Pickled { data, main_file } => {
                let loads = ffi::import_attr(cstr!("crossinterp._xi"), cstr!("loads"))?;
                let b = Owned::from_new(sys::PyBytes_FromStringAndSize(
                    data.as_ptr() as *const c_char,
                    data.len() as sys::Py_ssize_t,
                ))?;
                let mf = match main_file {
                    Some(s) => ffi::new_str(s)?,
                    None => Owned::from_borrowed(sys::Py_None()),
                };
                ffi::call(&loads, &[b.as_ptr(), mf.as_ptr()])
            }
        }
    }
}
