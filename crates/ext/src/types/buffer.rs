//! `SharedBuffer`: owner-free, 64-byte aligned memory exposing the buffer
//! protocol in every interpreter, zero-copy.
//!
//! Each interpreter that holds the buffer has its own `SharedBuffer` object
//! (of that interpreter's heap type) pointing at the same
//! `crossinterp_core::buffer::SharedMem`; the memory is freed when the last
//! reference in any interpreter goes. Exports (memoryviews) are counted per
//! object, so `release()` refuses while one of *its* exports is alive, as a
//! `bytearray` refuses to resize.

use super::Entry;
use crate::cstr;
use crate::ffi::args::{arity, Args};
use crate::ffi::class::{self, NativeClass, This};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::runtime;
use crate::xi::{Converter, Crosses, Shared};
use crossinterp_core::buffer::SharedMem;
use crossinterp_core::sync::{lock, Arc, Mutex};
use std::ffi::{c_char, c_int, c_void};
use std::ptr::null_mut;

/// The mutable part of a `SharedBuffer` object.
struct BufferState {
    /// `None` once released.
    mem: Option<Arc<SharedMem>>,
    /// Live exports (memoryviews) of this object.
    exports: usize,
}

/// The value of a `SharedBuffer` object, owned by that object in its
/// interpreter; behind a lock because free-threaded builds may export and
/// release it from several threads at once.
pub struct SharedBuffer(Mutex<BufferState>);

type B<'a> = This<'a, SharedBuffer>;

/// Parse `(first, *, readonly=False)` as `format` says (its first unit fills
/// `out`, then `|$p`): the `readonly` flag.
///
/// # Safety
/// Attached; `args`/`kwargs` as CPython passes them; `format`'s first unit
/// writes exactly a `T` (e.g. "n" for `Py_ssize_t`, "O" for an object pointer).
unsafe fn parse_with_readonly<T>(
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
    first: &std::ffi::CStr,
    format: &std::ffi::CStr,
    out: &mut T,
) -> PyResult<bool> {
    let mut readonly: c_int = 0;
    let kwlist: [*const c_char; 3] = [first.as_ptr(), cstr!("readonly").as_ptr(), std::ptr::null()];
    // SAFETY: the caller's contract; "p" fills an int; `kwlist` is
    // NULL-terminated.
    let ok = unsafe {
        sys::PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            format.as_ptr(),
            kwlist.as_ptr() as _,
            out as *mut T,
            &mut readonly as *mut c_int,
        )
    };
    if ok == 0 {
        return Err(PyErrSet);
    }
    Ok(readonly != 0)
}

impl SharedBuffer {
    /// The value over `mem`, with no export.
    fn over(mem: Arc<SharedMem>) -> SharedBuffer {
        SharedBuffer(Mutex::new(BufferState {
            mem: Some(mem),
            exports: 0,
        }))
    }
}

/// The shared memory of `obj` if it is a (live) `SharedBuffer` of this
/// interpreter; `ValueError` if released.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn as_buffer(obj: *mut sys::PyObject) -> PyResult<Option<Arc<SharedMem>>> {
    let Ok(rec) = runtime::current() else {
        // Not an owner: nothing here is ours.
        // SAFETY: attached; drop the lookup's error.
        unsafe { sys::PyErr_Clear() };
        return Ok(None);
    };
    // SAFETY: forwarded; `obj` outlives this call.
    let Some(this) = (unsafe { rec.types.downcast::<SharedBuffer>(obj) }) else {
        return Ok(None);
    };
    mem_of(this).map(Some)
}

/// The memory of a `SharedBuffer` (`ValueError` if released).
fn mem_of(this: B) -> PyResult<Arc<SharedMem>> {
    match &lock(&this.get().0).mem {
        Some(m) => Ok(m.clone()),
        None => Err(released()),
    }
}

/// A `SharedBuffer` of the attached interpreter over `mem`.
pub fn to_python(mem: &Arc<SharedMem>) -> PyResult<Owned> {
    runtime::new_instance(SharedBuffer::over(mem.clone()))
}

fn released() -> PyErrSet {
    ffi::raise(Exc::ValueError, "operation on a released SharedBuffer")
}

fn buffer_error(msg: &str) -> PyErrSet {
    ffi::raise(Exc::BufferError, msg)
}

fn alloc_error(e: crossinterp_core::buffer::AllocError) -> PyErrSet {
    ffi::raise(Exc::MemoryError, &e.to_string())
}

impl SharedBuffer {
    /// `SharedBuffer(nbytes, *, readonly=False)`.
    fn new(
        _cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<SharedBuffer> {
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
        // SAFETY: attached; CPython's arguments; "n" fills a Py_ssize_t.
        let readonly = unsafe {
            parse_with_readonly(
                args,
                kwargs,
                cstr!("nbytes"),
                cstr!("n|$p:SharedBuffer"),
                &mut nbytes,
            )?
        };
        if nbytes < 0 {
            return Err(ffi::raise(
                Exc::ValueError,
                &format!("nbytes must be >= 0, got {nbytes}"),
            ));
        }
        let mem = SharedMem::zeroed(nbytes as usize, readonly).map_err(alloc_error)?;
        Ok(SharedBuffer::over(mem))
    }

    /// `SharedBuffer.copy_of(obj, *, readonly=False)` (a class method).
    fn copy_of(
        cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<Owned> {
        let mut src: *mut sys::PyObject = null_mut();
        // SAFETY: attached; CPython's arguments; "O" fills a borrowed object.
        let readonly = unsafe {
            parse_with_readonly(args, kwargs, cstr!("obj"), cstr!("O|$p:copy_of"), &mut src)?
        };
        // SAFETY: attached; a zeroed Py_buffer is filled by GetBuffer, and
        // released below on every path once filled.
        let mem = unsafe {
            let mut view: sys::Py_buffer = std::mem::zeroed();
            if sys::PyObject_GetBuffer(src, &mut view, sys::PyBUF_SIMPLE) < 0 {
                return Err(PyErrSet);
            }
            let bytes = std::slice::from_raw_parts(view.buf as *const u8, view.len as usize);
            let mem = SharedMem::copy_of(bytes, readonly);
            sys::PyBuffer_Release(&mut view);
            mem.map_err(alloc_error)?
        };
        // SAFETY: attached; `cls` is the class the method was looked up on:
        // SharedBuffer (a final type, so never a subclass).
        unsafe { class::alloc(cls, SharedBuffer::over(mem)) }
    }

    fn release(this: B) -> PyResult<()> {
        let mut st = lock(&this.0);
        if st.exports > 0 {
            return Err(buffer_error(&format!(
                "cannot release a SharedBuffer while {} memoryview(s) of it are alive",
                st.exports
            )));
        }
        let mem = st.mem.take();
        drop(st);
        drop(mem);
        Ok(())
    }

    /// `with SharedBuffer(n) as buf:` is `buf` (ValueError if released).
    fn enter(this: B, args: Args) -> PyResult<Owned> {
        arity("__enter__", args, 0)?;
        if lock(&this.0).mem.is_none() {
            return Err(released());
        }
        Ok(this.to_owned())
    }

    /// The end of the `with` block: `release()` (BufferError, chained to the
    /// block's exception if any, while a memoryview of it is alive). Never
    /// suppresses the block's exception.
    fn exit(this: B, _args: Args) -> PyResult<bool> {
        Self::release(this)?;
        Ok(false)
    }

    fn getbuffer(this: B, view: *mut sys::Py_buffer, flags: c_int) -> PyResult<()> {
        let mut st = lock(&this.0);
        let Some(mem) = st.mem.clone() else {
            // SAFETY: `view` is CPython's to fill; on failure its `obj` must
            // be NULL.
            unsafe { (*view).obj = null_mut() };
            return Err(buffer_error("SharedBuffer was released"));
        };
        // FillInfo checks PyBUF_WRITABLE against `readonly`, takes a
        // reference to the object in view.obj (so the object, and its Arc,
        // outlive the view).
        // SAFETY: attached; `view` is CPython's to fill; the memory stays
        // valid while the object (referenced by the view) holds its Arc.
        if unsafe {
            sys::PyBuffer_FillInfo(
                view,
                this.as_ptr(),
                mem.as_ptr() as *mut c_void,
                mem.len() as sys::Py_ssize_t,
                mem.readonly() as c_int,
                flags,
            )
        } < 0
        {
            return Err(PyErrSet);
        }
        st.exports += 1;
        Ok(())
    }

    fn releasebuffer(this: B, _view: *mut sys::Py_buffer) {
        let mut st = lock(&this.0);
        st.exports = st.exports.saturating_sub(1);
    }

    fn len(this: B) -> PyResult<usize> {
        match &lock(&this.0).mem {
            Some(m) => Ok(m.len()),
            None => Err(released()),
        }
    }

    fn nbytes(this: B) -> PyResult<usize> {
        Self::len(this)
    }

    fn readonly(this: B) -> PyResult<bool> {
        match &lock(&this.0).mem {
            Some(m) => Ok(m.readonly()),
            None => Err(released()),
        }
    }

    fn released(this: B) -> PyResult<bool> {
        Ok(lock(&this.0).mem.is_none())
    }

    /// Size, mode, and the lend state: how many memoryviews of it are alive
    /// (each one blocks `release()`).
    fn repr(this: B) -> PyResult<String> {
        let st = lock(&this.0);
        Ok(match &st.mem {
            Some(m) => format!(
                "<SharedBuffer nbytes={} readonly={} memoryviews={}>",
                m.len(),
                if m.readonly() { "True" } else { "False" },
                st.exports
            ),
            None => "<SharedBuffer released>".to_owned(),
        })
    }
}

crate::native_class! {
    SharedBuffer {
        name: "crossinterp.SharedBuffer",
        attr: "SharedBuffer",
        doc: "SharedBuffer(nbytes, *, readonly=False)\n--\n\nZero-filled, 64-byte aligned memory owned by no interpreter: pass it to other interpreters and every one sees the same bytes (zero-copy, through memoryview). Freed when the last reference in any interpreter goes.",
        flags: 0,
        methods: [
            (class_varkw, "copy_of", ", obj, *, readonly=False", SharedBuffer::copy_of,
                "copy_of(obj, *, readonly=False) -> SharedBuffer\n\nA new SharedBuffer holding a copy of a contiguous buffer (bytes, bytearray, memoryview, array...)."),
            (noargs, "release", "", SharedBuffer::release,
                "release() -> None\n\nDrop this object's reference to the memory now (BufferError while a memoryview of it is alive)."),
            (fast, "__enter__", "", SharedBuffer::enter, "Return the buffer (ValueError if released)."),
            (fast, "__exit__", ", *exc_info", SharedBuffer::exit, "release() it (BufferError while a memoryview of it is alive)."),
        ],
        getset: [
            ("nbytes", SharedBuffer::nbytes, "Size in bytes."),
            ("readonly", SharedBuffer::readonly, "Whether memoryviews of it are read-only."),
            ("released", SharedBuffer::released, "Whether release() was called."),
        ],
        slots: [
            (new, SharedBuffer::new),
            (repr, SharedBuffer::repr),
            (getbuffer, SharedBuffer::getbuffer),
            (releasebuffer, SharedBuffer::releasebuffer),
            (sq_len, SharedBuffer::len),
        ],
    }
}

/// A `SharedBuffer` in transit: the owner-free memory itself.
impl Shared for SharedMem {
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        to_python(&self)
    }
}

impl Crosses for SharedBuffer {
    fn crossing(this: B) -> PyResult<Arc<dyn Shared>> {
        Ok(mem_of(this)?)
    }
}

static BUFFER_XI: Converter = Converter::class::<SharedBuffer>();

/// `SharedBuffer`: owner-free memory, shared zero-copy.
pub const ENTRY: Entry = Entry {
    classes: &[SharedBuffer::DEF],
    hook: None,
    converters: &[&BUFFER_XI],
    fork_hold: None,
};
