//! `Queue`: PEP 734's cross-interpreter queue, over the engine's
//! `crossinterp_core::queue::Queue`.
//!
//! The queue itself is owner-free Rust memory ([`SharedQueue`], in an `Arc`):
//! every interpreter that holds it has its own Python object (an instance of
//! that interpreter's `crossinterp.queues.Queue`, a subclass of the heap type
//! `_native.QueueBase` made per module) pointing at the same `SharedQueue`.
//! Items are interpreter-neutral [`Value`]s, each bound to the interpreter that
//! put it: when that interpreter is finalized its items follow their unbound
//! policy (`UNBOUND`, `UNBOUND_ERROR`, `UNBOUND_REMOVE`), as in CPython's
//! `_interpqueues`.
//!
//! Blocking `put`/`get` detach from the interpreter (the GIL is released) and
//! sleep until the event itself wakes them; every ~50 ms they re-attach briefly
//! to check for signals (KeyboardInterrupt), which is not polling for data.

use crate::common::{
    alloc_native, arity, bind, blocking, bool_of, deadline, dealloc_native, native_ref, timeout_of,
    Args, Native,
};
use crate::cstr;
use crate::errors;
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::method_fn;
use crate::xi::{self, Value};
use crossinterp_core::sync::{lock, Arc, Mutex};
use crossinterp_core::{GetError, PutError, Queue};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::Weak;
use std::time::Duration;

/// What happens to an item whose interpreter was destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    /// `get` returns the `UNBOUND` sentinel in its place.
    Unbound = 1,
    /// `get` raises `ItemInterpreterDestroyed`.
    Error = 2,
    /// The item is removed from the queue.
    Remove = 3,
}

impl Unbound {
    fn from_int(v: i64) -> Option<Unbound> {
        match v {
            1 => Some(Unbound::Unbound),
            2 => Some(Unbound::Error),
            3 => Some(Unbound::Remove),
            _ => None,
        }
    }
}

/// One queued item. Plain data: may be dropped anywhere.
pub struct Item {
    value: Value,
    /// The interpreter that put it (CPython's id).
    origin: i64,
    unbound: Unbound,
    /// Set when `origin` was finalized.
    gone: bool,
}

/// A queue shared by every interpreter that holds it.
///
/// Ownership: owned by no interpreter; kept alive by an `Arc` held by each
/// Python `Queue` object (in any interpreter) and by values in transit. May be
/// used and dropped from any thread.
pub struct SharedQueue {
    q: Queue<Item>,
    default_unbound: Unbound,
}

impl std::fmt::Debug for SharedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedQueue({})", self.q.id())
    }
}

impl PartialEq for SharedQueue {
    fn eq(&self, other: &Self) -> bool {
        self.q.id() == other.q.id()
    }
}

/// Every live queue, by id (weak): for `Queue` lookup by id and for applying
/// unbound policies when an interpreter is finalized.
static LIVE: Mutex<BTreeMap<u64, Weak<SharedQueue>>> = Mutex::new(BTreeMap::new());

fn new_shared(maxsize: usize, default_unbound: Unbound) -> Arc<SharedQueue> {
    let s = Arc::new(SharedQueue {
        q: Queue::new(maxsize),
        default_unbound,
    });
    let mut live = lock(&LIVE);
    live.retain(|_, w| w.strong_count() > 0);
    live.insert(s.q.id(), Arc::downgrade(&s));
    s
}

/// Interpreter `iid` is being finalized: apply each of its items' policy.
pub fn interpreter_gone(iid: i64) {
    let queues: Vec<Arc<SharedQueue>> = lock(&LIVE).values().filter_map(Weak::upgrade).collect();
    for s in queues {
        let removed =
            s.q.remove_where(|it| it.origin == iid && it.unbound == Unbound::Remove);
        drop(removed);
        s.q.for_each_mut(|it| {
            if it.origin == iid {
                it.gone = true;
            }
        });
    }
}

/// Whether `obj` is a queue of this interpreter's type, and its shared state.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn as_queue(obj: *mut sys::PyObject) -> PyResult<Option<Arc<SharedQueue>>> {
    // SAFETY: attached; `obj` is live and, when ours, a QueueBase.
    unsafe {
        if crate::module::is_ours(obj, cstr!("QueueBase"))? {
            Ok(Some(native_ref::<Arc<SharedQueue>>(obj).clone()))
        } else {
            Ok(None)
        }
    }
}

/// A `crossinterp.queues.Queue` of the attached interpreter for `shared`.
pub fn to_python(shared: &Arc<SharedQueue>) -> PyResult<Owned> {
    let cls = ffi::import_attr(cstr!("crossinterp.queues"), cstr!("Queue"))?;
    // SAFETY: attached; `Queue` subclasses QueueBase (checked by CPython at
    // class creation: same layout plus what Python adds).
    unsafe { alloc_native(cls.as_ptr() as *mut sys::PyTypeObject, shared.clone()) }
}

/// The policy code of an `unbounditems` argument: absent/None → the queue's
/// default; else one of the `crossinterp.queues` policy objects.
fn unbound_of(obj: Option<*mut sys::PyObject>, default: Unbound) -> PyResult<Unbound> {
    let Some(obj) = obj else { return Ok(default) };
    // SAFETY: attached; `obj` is a live bound argument.
    unsafe {
        if obj == sys::Py_None() {
            return Ok(default);
        }
        let code = sys::PyObject_GetAttrString(obj, cstr!("_code").as_ptr());
        let v = if code.is_null() {
            sys::PyErr_Clear();
            None
        } else {
            let code = Owned::from_new(code)?;
            let v = sys::PyLong_AsLongLong(code.as_ptr());
            if v == -1 && !sys::PyErr_Occurred().is_null() {
                sys::PyErr_Clear();
            }
            Unbound::from_int(v)
        };
        v.ok_or_else(|| {
            ffi::raise(
                Exc::TypeError,
                &format!(
                    "unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE, not {}",
                    xi::type_name(obj)
                ),
            )
        })
    }
}

fn do_put(
    slf: *mut sys::PyObject,
    obj: *mut sys::PyObject,
    block: bool,
    timeout: Option<Duration>,
    unbound: Option<*mut sys::PyObject>,
    strict: bool,
) -> PyResult<*mut sys::PyObject> {
    // SAFETY: `slf` is a QueueBase instance (method of the type).
    let shared = unsafe { native_ref::<Arc<SharedQueue>>(slf) };
    let unbound = unbound_of(unbound, shared.default_unbound)?;
    // SAFETY: live argument of the attached interpreter.
    let value = unsafe { xi::to_value(obj, strict)? };
    let item = Item {
        value,
        origin: ffi::interp::current().1,
        unbound,
        gone: false,
    };
    let r = match deadline(block, timeout) {
        None => shared.q.try_put(item),
        Some(dl) => blocking(|intr| shared.q.put(item, dl, intr)),
    };
    match r {
        Ok(()) => Ok(ffi::none()),
        Err(PutError::Full(_)) => Err(errors::raise_by_name(cstr!("QueueFull"), "queue is full")),
        Err(PutError::Closed(_)) => Err(errors::raise_by_name(
            cstr!("QueueError"),
            "queue is closed",
        )),
        Err(PutError::Interrupted(_)) => Err(PyErrSet),
    }
}

fn do_get(
    slf: *mut sys::PyObject,
    block: bool,
    timeout: Option<Duration>,
) -> PyResult<*mut sys::PyObject> {
    // SAFETY: `slf` is a QueueBase instance.
    let shared = unsafe { native_ref::<Arc<SharedQueue>>(slf) };
    let dl = deadline(block, timeout);
    loop {
        let r = match dl {
            None => shared.q.try_get(),
            Some(dl) => blocking(|intr| shared.q.get(dl, intr)),
        };
        let item = match r {
            Ok(item) => item,
            Err(GetError::Empty) => {
                return Err(errors::raise_by_name(cstr!("QueueEmpty"), "queue is empty"))
            }
            Err(GetError::Closed) => {
                return Err(errors::raise_by_name(
                    cstr!("QueueError"),
                    "queue is closed",
                ))
            }
            Err(GetError::Interrupted) => return Err(PyErrSet),
        };
        if item.gone {
            match item.unbound {
                Unbound::Unbound => {
                    return Ok(
                        ffi::import_attr(cstr!("crossinterp.queues"), cstr!("UNBOUND"))?.into_ptr(),
                    )
                }
                Unbound::Error => {
                    return Err(errors::raise_by_name(
                        cstr!("ItemInterpreterDestroyed"),
                        &format!(
                            "the interpreter {} that put this item was destroyed",
                            item.origin
                        ),
                    ))
                }
                Unbound::Remove => continue,
            }
        }
        return Ok(xi::from_value(&item.value)?.into_ptr());
    }
}

/// `put(obj, block=True, timeout=None, *, unbounditems=None, strict=False)`
unsafe extern "C" fn py_put(
    slf: *mut sys::PyObject,
    args: *const *mut sys::PyObject,
    nargs: sys::Py_ssize_t,
    kwnames: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: CPython's METH_FASTCALL|METH_KEYWORDS arguments.
        let [obj, block, timeout, unbound, strict] = unsafe {
            bind(
                "put",
                args,
                nargs,
                kwnames,
                [
                    cstr!("obj"),
                    cstr!("block"),
                    cstr!("timeout"),
                    cstr!("unbounditems"),
                    cstr!("strict"),
                ],
                3,
            )?
        };
        let obj =
            obj.ok_or_else(|| ffi::raise(Exc::TypeError, "put() missing required argument 'obj'"))?;
        do_put(
            slf,
            obj,
            bool_of(block, true)?,
            timeout_of(timeout)?,
            unbound,
            bool_of(strict, false)?,
        )
    })
}

/// `put_nowait(obj, *, unbounditems=None, strict=False)`
unsafe extern "C" fn py_put_nowait(
    slf: *mut sys::PyObject,
    args: *const *mut sys::PyObject,
    nargs: sys::Py_ssize_t,
    kwnames: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: CPython's METH_FASTCALL|METH_KEYWORDS arguments.
        let [obj, unbound, strict] = unsafe {
            bind(
                "put_nowait",
                args,
                nargs,
                kwnames,
                [cstr!("obj"), cstr!("unbounditems"), cstr!("strict")],
                1,
            )?
        };
        let obj = obj.ok_or_else(|| {
            ffi::raise(
                Exc::TypeError,
                "put_nowait() missing required argument 'obj'",
            )
        })?;
        do_put(slf, obj, false, None, unbound, bool_of(strict, false)?)
    })
}

/// `get(block=True, timeout=None)`
unsafe extern "C" fn py_get(
    slf: *mut sys::PyObject,
    args: *const *mut sys::PyObject,
    nargs: sys::Py_ssize_t,
    kwnames: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: CPython's METH_FASTCALL|METH_KEYWORDS arguments.
        let [block, timeout] = unsafe {
            bind(
                "get",
                args,
                nargs,
                kwnames,
                [cstr!("block"), cstr!("timeout")],
                2,
            )?
        };
        do_get(slf, bool_of(block, true)?, timeout_of(timeout)?)
    })
}

fn get_nowait(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("get_nowait", args, 0)?;
    do_get(slf, false, None)
}

fn qsize(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("qsize", args, 0)?;
    // SAFETY: `slf` is a QueueBase instance.
    let n = unsafe { native_ref::<Arc<SharedQueue>>(slf) }.q.len();
    Ok(ffi::new_int(n as i64)?.into_ptr())
}

fn empty(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("empty", args, 0)?;
    // SAFETY: `slf` is a QueueBase instance; attached.
    Ok(unsafe { sys::PyBool_FromLong(native_ref::<Arc<SharedQueue>>(slf).q.is_empty() as _) })
}

fn full(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("full", args, 0)?;
    // SAFETY: `slf` is a QueueBase instance; attached.
    Ok(unsafe { sys::PyBool_FromLong(native_ref::<Arc<SharedQueue>>(slf).q.is_full() as _) })
}

method_fn!(py_get_nowait => get_nowait);
method_fn!(py_qsize => qsize);
method_fn!(py_empty => empty);
method_fn!(py_full => full);

unsafe extern "C" fn get_id(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    // SAFETY: `slf` is a QueueBase instance.
    ffi::trampoline(|| {
        Ok(ffi::new_int(unsafe { native_ref::<Arc<SharedQueue>>(slf) }.q.id() as i64)?.into_ptr())
    })
}

unsafe extern "C" fn get_maxsize(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    // SAFETY: `slf` is a QueueBase instance.
    ffi::trampoline(|| {
        Ok(
            ffi::new_int(unsafe { native_ref::<Arc<SharedQueue>>(slf) }.q.maxsize() as i64)?
                .into_ptr(),
        )
    })
}

unsafe extern "C" fn get_unbound(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    // SAFETY: `slf` is a QueueBase instance.
    ffi::trampoline(|| {
        Ok(
            ffi::new_int(unsafe { native_ref::<Arc<SharedQueue>>(slf) }.default_unbound as i64)?
                .into_ptr(),
        )
    })
}

/// `QueueBase.__new__(cls, maxsize, unbound)`; with `maxsize` < 0, looks up
/// the live queue whose id is `unbound` instead (used by unpickling).
unsafe extern "C" fn tp_new(
    cls: *mut sys::PyTypeObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: attached; `args` is a tuple, `kwargs` NULL or a dict.
        unsafe {
            if !kwargs.is_null() && sys::PyDict_Size(kwargs) != 0 {
                return Err(ffi::raise(
                    Exc::TypeError,
                    "QueueBase() takes no keyword arguments",
                ));
            }
            if sys::PyTuple_Size(args) != 2 {
                return Err(ffi::raise(Exc::TypeError, "QueueBase() takes 2 arguments"));
            }
            let a = sys::PyLong_AsLongLong(sys::PyTuple_GetItem(args, 0));
            if a == -1 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
            let b = sys::PyLong_AsLongLong(sys::PyTuple_GetItem(args, 1));
            if b == -1 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
            let shared = if a < 0 {
                let found = lock(&LIVE).get(&(b as u64)).and_then(Weak::upgrade);
                match found {
                    Some(s) => s,
                    None => {
                        return Err(errors::raise_by_name(
                            cstr!("QueueNotFoundError"),
                            &format!("queue {b} not found"),
                        ))
                    }
                }
            } else {
                let unbound = Unbound::from_int(b)
                    .ok_or_else(|| ffi::raise(Exc::ValueError, "bad unbounditems"))?;
                new_shared(a as usize, unbound)
            };
            Ok(alloc_native(cls, shared)?.into_ptr())
        }
    })
}

unsafe extern "C" fn tp_hash(obj: *mut sys::PyObject) -> sys::Py_hash_t {
    // SAFETY: `obj` is a QueueBase instance.
    let id = unsafe { native_ref::<Arc<SharedQueue>>(obj) }.q.id();
    (id as sys::Py_hash_t).max(1)
}

unsafe extern "C" fn tp_richcompare(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    op: c_int,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `a` is a QueueBase instance; `b` is checked.
        unsafe {
            let other = as_queue(b)?;
            let (Some(other), true) = (other, op == sys::Py_EQ || op == sys::Py_NE) else {
                return Ok(sys::Py_NewRef(sys::Py_NotImplemented()));
            };
            let eq = native_ref::<Arc<SharedQueue>>(a).q.id() == other.q.id();
            Ok(sys::PyBool_FromLong((eq == (op == sys::Py_EQ)) as _))
        }
    })
}

use crate::method_def as method;

macro_rules! kw_method {
    ($name:literal, $f:ident, $doc:literal) => {
        sys::PyMethodDef {
            ml_name: cstr!($name).as_ptr(),
            ml_meth: sys::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: $f,
            },
            ml_flags: sys::METH_FASTCALL | sys::METH_KEYWORDS,
            ml_doc: cstr!($doc).as_ptr(),
        }
    };
}

static mut METHODS: [sys::PyMethodDef; 8] = [
    kw_method!("put", py_put, "put(obj, block=True, timeout=None, *, unbounditems=None, strict=False)\n--\n\nAdd obj; if full, wait (block) up to timeout seconds for room, else raise QueueFull. strict=True: NotShareableError instead of pickling."),
    kw_method!("put_nowait", py_put_nowait, "put_nowait(obj, *, unbounditems=None, strict=False)\n--\n\nput(obj, block=False)."),
    kw_method!("get", py_get, "get(block=True, timeout=None)\n--\n\nRemove and return the next item; if empty, wait (block) up to timeout seconds, else raise QueueEmpty."),
    method!("get_nowait", py_get_nowait, "get_nowait()\n--\n\nget(block=False)."),
    method!("qsize", py_qsize, "qsize() -> int: the number of items now."),
    method!("empty", py_empty, "empty() -> bool"),
    method!("full", py_full, "full() -> bool"),
    sys::PyMethodDef::zeroed(),
];

static mut GETSET: [sys::PyGetSetDef; 4] = [
    sys::PyGetSetDef {
        name: cstr!("id").as_ptr(),
        get: Some(get_id),
        set: None,
        doc: cstr!("The queue's id, unique in the process.").as_ptr(),
        closure: null_mut(),
    },
    sys::PyGetSetDef {
        name: cstr!("maxsize").as_ptr(),
        get: Some(get_maxsize),
        set: None,
        doc: cstr!("The capacity (0: unbounded).").as_ptr(),
        closure: null_mut(),
    },
    sys::PyGetSetDef {
        name: cstr!("_unbound_default").as_ptr(),
        get: Some(get_unbound),
        set: None,
        doc: cstr!("The default unbound policy (1, 2 or 3).").as_ptr(),
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

/// Create this module's `QueueBase` heap type and add it to `module`.
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
            pfunc: dealloc_native::<Arc<SharedQueue>> as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_hash,
            pfunc: tp_hash as *mut c_void,
        },
        sys::PyType_Slot {
            slot: sys::Py_tp_richcompare,
            pfunc: tp_richcompare as *mut c_void,
        },
        // SAFETY (both): only the static tables' addresses are taken.
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
            pfunc: cstr!("The native base of crossinterp.queues.Queue.").as_ptr() as *mut c_void,
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
            cstr!("crossinterp._native.QueueBase"),
            cstr!("QueueBase"),
            std::mem::size_of::<Native<Arc<SharedQueue>>>(),
            sys::Py_TPFLAGS_DEFAULT | sys::Py_TPFLAGS_BASETYPE | sys::Py_TPFLAGS_IMMUTABLETYPE,
            &mut slots,
        )
    }
}
