//! `Channel`: a PEP 554-style rendezvous channel between interpreters, over
//! the engine's `crossinterp_core::Channel`: `send` returns once a `recv` has
//! taken the item. Owner-free, like `Queue`: every interpreter holding it has
//! its own `crossinterp.channels.Channel` object over the same channel.

use crate::common::{
    alloc_native, arg_bool, arg_timeout, arity, blocking, deadline, dealloc_native, native_ref,
    Args, Native,
};
use crate::cstr;
use crate::errors;
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::method_fn;
use crate::xi::{self, Value};
use crossinterp_core::sync::{lock, Arc, Mutex};
use crossinterp_core::{Channel, CloseError, RecvError, SendError};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::Weak;

/// A channel shared by every interpreter that holds it.
///
/// Ownership: owned by no interpreter; kept alive by each Python `Channel`
/// object (any interpreter) and values in transit; usable and droppable from
/// any thread. Items are interpreter-neutral values.
pub struct SharedChannel {
    ch: Channel<Value>,
}

impl std::fmt::Debug for SharedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedChannel({})", self.ch.id())
    }
}

static LIVE: Mutex<BTreeMap<u64, Weak<SharedChannel>>> = Mutex::new(BTreeMap::new());

fn new_shared() -> Arc<SharedChannel> {
    let s = Arc::new(SharedChannel { ch: Channel::new() });
    let mut live = lock(&LIVE);
    live.retain(|_, w| w.strong_count() > 0);
    live.insert(s.ch.id(), Arc::downgrade(&s));
    s
}

/// The shared channel of `obj`, if it is a channel of this interpreter.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn as_channel(obj: *mut sys::PyObject) -> PyResult<Option<Arc<SharedChannel>>> {
    // SAFETY: attached; `obj` is live and, when ours, a ChannelBase.
    unsafe {
        if crate::module::is_ours(obj, cstr!("ChannelBase"))? {
            Ok(Some(native_ref::<Arc<SharedChannel>>(obj).clone()))
        } else {
            Ok(None)
        }
    }
}

/// A `crossinterp.channels.Channel` of the attached interpreter.
pub fn to_python(shared: &Arc<SharedChannel>) -> PyResult<Owned> {
    let cls = ffi::import_attr(cstr!("crossinterp.channels"), cstr!("Channel"))?;
    // SAFETY: `Channel` subclasses ChannelBase.
    unsafe { alloc_native(cls.as_ptr() as *mut sys::PyTypeObject, shared.clone()) }
}

fn closed() -> PyErrSet {
    errors::raise_by_name(cstr!("ChannelClosedError"), "channel is closed")
}

fn timeout_error(what: &str) -> PyErrSet {
    // SAFETY: immutable static.
    ffi::raise_class(
        &unsafe { Owned::from_borrowed(sys::PyExc_TimeoutError) },
        &format!("{what} timed out"),
    )
}

/// `_send(obj, block, timeout) -> bool`: blocking sends return True once
/// received; non-blocking ones return whether a waiting receiver took it.
fn send(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_send", args, 4)?;
    // SAFETY: `slf` is a ChannelBase instance.
    let shared = unsafe { native_ref::<Arc<SharedChannel>>(slf) }.clone();
    let block = arg_bool(args, 1)?;
    let timeout = arg_timeout(args, 2)?;
    // SAFETY: live argument of the attached interpreter.
    let value = unsafe { xi::to_value(args[0], arg_bool(args, 3)?)? };
    let r = match deadline(block, timeout) {
        None => shared.ch.try_send(value),
        Some(dl) => blocking(|intr| shared.ch.send(value, dl, intr)),
    };
    let received = match r {
        // A receive may take the item while the interrupt hook runs: the item
        // was delivered, and the signal's exception (if any) is still raised.
        // SAFETY: attached (re-attached by `blocking`).
        Ok(()) if unsafe { !sys::PyErr_Occurred().is_null() } => return Err(PyErrSet),
        Ok(()) => true,
        Err(SendError::NoReceiver(_)) => false,
        Err(SendError::Timeout(_)) => return Err(timeout_error("send")),
        Err(SendError::Closed(_)) => return Err(closed()),
        Err(SendError::Interrupted(_)) => return Err(PyErrSet),
    };
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(received as _) })
}

/// `_recv(block, timeout) -> (True, obj) | (False, None)` (the latter only
/// when non-blocking and nothing is pending).
fn recv(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_recv", args, 2)?;
    // SAFETY: `slf` is a ChannelBase instance.
    let shared = unsafe { native_ref::<Arc<SharedChannel>>(slf) }.clone();
    let block = arg_bool(args, 0)?;
    let timeout = arg_timeout(args, 1)?;
    let r = match deadline(block, timeout) {
        None => shared.ch.try_recv(),
        Some(dl) => blocking(|intr| shared.ch.recv(dl, intr)),
    };
    match r {
        Ok(v) => {
            let obj = xi::from_value(&v)?;
            // SAFETY: attached; live objects; True is immortal.
            Ok(unsafe { sys::PyTuple_Pack(2, sys::Py_True(), obj.as_ptr()) })
        }
        // SAFETY: attached; immortal singletons.
        Err(RecvError::Empty) => {
            Ok(unsafe { sys::PyTuple_Pack(2, sys::Py_False(), sys::Py_None()) })
        }
        Err(RecvError::Timeout) => Err(timeout_error("recv")),
        Err(RecvError::Closed) => Err(closed()),
        Err(RecvError::Interrupted) => Err(PyErrSet),
    }
}

/// `_close(send, recv, force) -> int` (items handed back by a forced close).
fn close(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_close", args, 3)?;
    // SAFETY: `slf` is a ChannelBase instance.
    let shared = unsafe { native_ref::<Arc<SharedChannel>>(slf) }.clone();
    let (send, recv, force) = (arg_bool(args, 0)?, arg_bool(args, 1)?, arg_bool(args, 2)?);
    let r = match (send, recv) {
        (true, false) => shared.ch.close_send().map(|()| 0),
        (false, true) if !force => shared.ch.close_recv().map(|()| 0),
        _ => shared.ch.close(force),
    };
    match r {
        Ok(n) => Ok(ffi::new_int(n as i64)?.into_ptr()),
        Err(CloseError::Closed) => Err(errors::raise_by_name(
            cstr!("ChannelClosedError"),
            "channel (end) already closed",
        )),
        Err(CloseError::NotEmpty { pending }) => Err(errors::raise_by_name(
            cstr!("ChannelNotEmptyError"),
            &format!("{pending} send(s) still pending; close(force=True) hands them back"),
        )),
    }
}

method_fn!(py_send => send);
method_fn!(py_recv => recv);
method_fn!(py_close => close);

unsafe extern "C" fn get_id(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    // SAFETY: `slf` is a ChannelBase instance.
    ffi::trampoline(|| {
        Ok(
            ffi::new_int(unsafe { native_ref::<Arc<SharedChannel>>(slf) }.ch.id() as i64)?
                .into_ptr(),
        )
    })
}

unsafe extern "C" fn get_pending(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    // SAFETY: `slf` is a ChannelBase instance.
    ffi::trampoline(|| {
        Ok(
            ffi::new_int(unsafe { native_ref::<Arc<SharedChannel>>(slf) }.ch.len() as i64)?
                .into_ptr(),
        )
    })
}

unsafe extern "C" fn get_send_closed(
    slf: *mut sys::PyObject,
    _c: *mut c_void,
) -> *mut sys::PyObject {
    // SAFETY: `slf` is a ChannelBase instance; attached.
    unsafe { sys::PyBool_FromLong(native_ref::<Arc<SharedChannel>>(slf).ch.is_send_closed() as _) }
}

unsafe extern "C" fn get_recv_closed(
    slf: *mut sys::PyObject,
    _c: *mut c_void,
) -> *mut sys::PyObject {
    // SAFETY: `slf` is a ChannelBase instance; attached.
    unsafe { sys::PyBool_FromLong(native_ref::<Arc<SharedChannel>>(slf).ch.is_recv_closed() as _) }
}

/// `ChannelBase.__new__(cls, id)`: id < 0 makes a new channel, else looks up
/// the live channel with that id (unpickling).
unsafe extern "C" fn tp_new(
    cls: *mut sys::PyTypeObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: attached; `args` is a tuple, `kwargs` NULL or a dict.
        unsafe {
            if (!kwargs.is_null() && sys::PyDict_Size(kwargs) != 0) || sys::PyTuple_Size(args) != 1
            {
                return Err(ffi::raise(
                    Exc::TypeError,
                    "ChannelBase() takes 1 positional argument",
                ));
            }
            let id = sys::PyLong_AsLongLong(sys::PyTuple_GetItem(args, 0));
            if id == -1 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
            let shared = if id < 0 {
                new_shared()
            } else {
                match lock(&LIVE).get(&(id as u64)).and_then(Weak::upgrade) {
                    Some(s) => s,
                    None => {
                        return Err(errors::raise_by_name(
                            cstr!("ChannelNotFoundError"),
                            &format!("channel {id} not found"),
                        ))
                    }
                }
            };
            Ok(alloc_native(cls, shared)?.into_ptr())
        }
    })
}

unsafe extern "C" fn tp_hash(obj: *mut sys::PyObject) -> sys::Py_hash_t {
    // SAFETY: `obj` is a ChannelBase instance.
    (unsafe { native_ref::<Arc<SharedChannel>>(obj) }.ch.id() as sys::Py_hash_t).max(1)
}

unsafe extern "C" fn tp_richcompare(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    op: c_int,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `a` is a ChannelBase instance; `b` is checked.
        unsafe {
            let other = as_channel(b)?;
            let (Some(other), true) = (other, op == sys::Py_EQ || op == sys::Py_NE) else {
                return Ok(sys::Py_NewRef(sys::Py_NotImplemented()));
            };
            let eq = native_ref::<Arc<SharedChannel>>(a).ch.id() == other.ch.id();
            Ok(sys::PyBool_FromLong((eq == (op == sys::Py_EQ)) as _))
        }
    })
}

use crate::method_def as method;

static mut METHODS: [sys::PyMethodDef; 4] = [
    method!(
        "_send",
        py_send,
        "_send(obj, block, timeout, strict) -> bool"
    ),
    method!("_recv", py_recv, "_recv(block, timeout) -> (found, obj)"),
    method!("_close", py_close, "_close(send, recv, force) -> int"),
    sys::PyMethodDef::zeroed(),
];

macro_rules! getter {
    ($name:literal, $f:ident, $doc:literal) => {
        sys::PyGetSetDef {
            name: cstr!($name).as_ptr(),
            get: Some($f),
            set: None,
            doc: cstr!($doc).as_ptr(),
            closure: null_mut(),
        }
    };
}

static mut GETSET: [sys::PyGetSetDef; 5] = [
    getter!("id", get_id, "The channel's id, unique in the process."),
    getter!("pending", get_pending, "Sends waiting for a receiver now."),
    getter!(
        "send_closed",
        get_send_closed,
        "Whether the send end is closed."
    ),
    getter!(
        "recv_closed",
        get_recv_closed,
        "Whether the receive end is closed."
    ),
    sys::PyGetSetDef {
        name: std::ptr::null(),
        get: None,
        set: None,
        doc: std::ptr::null(),
        closure: null_mut(),
    },
];

/// Create this module's `ChannelBase` heap type and add it to `module`.
/// # Safety
/// Attached; `module` is our live module object (its exec slot).
pub unsafe fn add_type(module: *mut sys::PyObject) -> PyResult<()> {
    let mut slots = [
        sys::PyType_Slot {
            slot: sys::Py_tp_new,
            pfunc: tp_new as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_dealloc,
            pfunc: dealloc_native::<Arc<SharedChannel>> as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_hash,
            pfunc: tp_hash as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_richcompare,
            pfunc: tp_richcompare as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_methods,
            pfunc: std::ptr::addr_of_mut!(METHODS) as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_getset,
            pfunc: std::ptr::addr_of_mut!(GETSET) as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_doc,
            pfunc: cstr!("The native base of crossinterp.channels.Channel.").as_ptr()
                as *mut c_void,
        },
        sys::PyType_Slot {
            slot: 0,
            pfunc: null_mut(),
        },
    ];
    // SAFETY: the caller's contract (attached, our module); the slots match
    // the layout.
    unsafe {
        crate::common::add_heap_type(
            module,
            cstr!("crossinterp._native.ChannelBase"),
            cstr!("ChannelBase"),
            std::mem::size_of::<Native<Arc<SharedChannel>>>(),
            sys::Py_TPFLAGS_DEFAULT | sys::Py_TPFLAGS_BASETYPE | sys::Py_TPFLAGS_IMMUTABLETYPE,
            &mut slots,
        )
    }
}
