//! Sharing any object: `share(obj)` and `SharedObjectProxy`.
//!
//! A proxy stands, in any interpreter, for one object of its *owner*
//! interpreter. It holds a cross-owner [`Handle`] to one strong reference
//! taken in the owner; every operation on it runs in the owner with the
//! owner attached (the calling thread detaches from its own interpreter,
//! attaches a thread state of the owner under a guard, works, detaches and
//! re-attaches: it never holds two interpreters, so no lock-order deadlock
//! between GILs exists). Arguments cross by the data layer's rules, except that
//! what is not natively shareable crosses as a proxy of the caller's object
//! (never pickled); results cross back the same way. So `p.append(x)` on a
//! proxied list appends `x` itself when `x` is an int, and a proxy of `x`
//! when `x` is a list.
//!
//! Exceptions raised in the owner are re-raised in the caller with the same
//! type when it is a builtin exception type (the owner's formatted traceback
//! added as a note), else as `ExecutionFailed` carrying it.
//!
//! Release: the last handle to an object drops its reference *in the owner*
//! (inline if the dropping thread is attached there, else as a pending call),
//! so its `__del__` and weakref callbacks run there. When the owner finalizes,
//! every reference still held by proxies elsewhere is released by the owner's
//! finalization and those proxies are dead: each operation raises
//! `InterpreterGoneError`.
//!
//! Every reference a handle holds is recorded in its owner's record
//! (`OwnerRecord::shared`); whoever removes the entry releases it, so the
//! reference is dropped exactly once whichever of "last handle dropped" and
//! "owner finalized" comes first.

use crate::cstr;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::legacy::{alloc_native, native_ref};
use crate::runtime::owners::{self, OwnerRecord};
use crate::runtime::Error;
use crate::xi::{self, Value};
use crossinterp_core::sync::{lock, Arc, Mutex};
use crossinterp_core::{Attached, Handle, Release};
use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

/// One strong reference to an object of interpreter `rec`, released there.
pub struct ObjRef {
    key: u64,
    rec: Arc<OwnerRecord>,
}

impl Release for ObjRef {
    fn release(self, _attached: &Attached<'_>) {
        let taken = self.rec.shared.take(self.key);
        if let Some(obj) = taken {
            // SAFETY: `release` runs attached to the owner (the `Attached`
            // proof); the entry was the reference this handle held, and we
            // removed it, so nobody else releases it.
            unsafe { sys::Py_DecRef(obj as *mut sys::PyObject) };
        }
    }
}

/// The shared state of every proxy of one shared reference, in any
/// interpreter.
///
/// Ownership: `Arc`-shared by the proxies and the values in transit; may be
/// dropped on any thread (the handle routes the release to the owner). The
/// object itself is touched only while attached to the owner, under a guard or
/// in the owner's own threads.
pub struct ProxyTarget {
    handle: Handle<ObjRef>,
    /// The owner's record (its interpreter pointer is used under a guard).
    rec: Arc<OwnerRecord>,
    /// The key of the reference in the owner's `shared` table.
    key: u64,
    /// The object. Dereferenced only attached to the owner while it is not
    /// Finalized: then our handle keeps the reference (its entry is removed by
    /// our own last drop, or by the owner's finalization, after which `get`
    /// fails).
    obj: usize,
    /// Attribute names that resolve, on this object, to a method whose
    /// resolution cannot change (immutable type and MRO, no instance dict,
    /// generic attribute lookup): `p.name` then makes a method proxy without
    /// entering the owner, and `p.name(...)` costs one round trip.
    methods: Mutex<Vec<Box<str>>>,
}

impl std::fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyTarget(owner {}, key {})", self.rec.iid, self.key)
    }
}

impl ProxyTarget {
    /// The owner's interpreter id.
    pub fn owner_iid(&self) -> i64 {
        self.rec.iid
    }

    /// The object, for a thread attached to the owner.
    fn local_obj(&self) -> PyResult<*mut sys::PyObject> {
        let (_, cur) = ffi::interp::current();
        if cur != self.rec.iid {
            return Err(ffi::raise(
                ffi::Exc::SystemError,
                "proxy target used outside its owner",
            ));
        }
        // SAFETY: attached to the owner (checked above); the proof does not
        // outlive this function.
        let attached = unsafe { Attached::enter(self.rec.view.id()) };
        match self.handle.get(&attached) {
            Ok(_) => Ok(self.obj as *mut sys::PyObject),
            Err(_) => Err(self.gone()),
        }
    }

    fn gone(&self) -> PyErrSet {
        Error::gone(&format!(
            "the interpreter that owns this shared object (interpreter {}) is finalizing or gone",
            self.rec.iid
        ))
    }
}

extern "C" {
    // Not declared by pyo3-ffi 0.28; both are public, stable C API.
    static mut PyMethod_Type: sys::PyTypeObject;
    fn PyMethod_Self(m: *mut sys::PyObject) -> *mut sys::PyObject;
}

/// The value of a `SharedObjectProxy` object.
///
/// Ownership: owned by the proxy object in its interpreter; immutable, so it
/// may be read from any thread of that interpreter (free-threaded builds
/// included) without locking.
pub struct ProxyObj {
    target: Arc<ProxyTarget>,
}

/// The value of a `SharedMethodProxy` object: `target.name`, a method whose
/// resolution is stable (see [`ProxyTarget::methods`]). Immutable.
pub struct MethodObj {
    target: Arc<ProxyTarget>,
    name: Box<str>,
}

/// The record of the attached interpreter.
fn current_record() -> PyResult<Arc<OwnerRecord>> {
    crate::runtime::current()
}

/// Share `obj`, an object of the attached interpreter: one new strong
/// reference held by a new handle.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn share_current(obj: *mut sys::PyObject) -> PyResult<Arc<ProxyTarget>> {
    let rec = current_record()?;
    if rec.view.state() == crossinterp_core::OwnerState::Finalized {
        return Err(Error::gone(&format!(
            "interpreter {} has finalized: it cannot share objects",
            rec.iid
        )));
    }
    // SAFETY: attached; `obj` is live. The reference is recorded before the
    // handle exists, so either its release or the finalization sweep finds it.
    unsafe { sys::Py_IncRef(obj) };
    let key = rec.shared.insert(obj as usize);
    // SAFETY: attached to `rec`'s interpreter; the proof ends in this block.
    let handle = unsafe {
        let attached = Attached::enter(rec.view.id());
        Handle::new(
            ObjRef {
                key,
                rec: rec.clone(),
            },
            rec.view.clone(),
            &attached,
        )
    };
    Ok(Arc::new(ProxyTarget {
        handle,
        rec,
        key,
        obj: obj as usize,
        methods: Mutex::new(Vec::new()),
    }))
}

/// Release, in the finalizing owner `rec`, every reference proxies elsewhere
/// still hold (they are dead from now on: the owner is Finalized).
pub fn release_all(rec: &OwnerRecord) {
    for obj in rec.shared.take_all() {
        // SAFETY: called attached to the owner at its finalization; each
        // entry was one strong reference, removed here so nobody else
        // releases it.
        unsafe { sys::Py_DecRef(obj as *mut sys::PyObject) };
    }
}

/// The target of `obj` if it is a `SharedObjectProxy` (of any interpreter:
/// the type is recognised by its deallocator, one pointer comparison).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn proxy_target<'a>(obj: *mut sys::PyObject) -> Option<&'a Arc<ProxyTarget>> {
    // SAFETY: forwarded; a type with our deallocator has our layout.
    unsafe {
        let tp = sys::Py_TYPE(obj);
        // Our two deallocators have distinct bodies (distinct drop glue), so
        // their addresses cannot be merged.
        if (*tp)
            .tp_dealloc
            .is_some_and(|d| d as usize == proxy_dealloc as sys::destructor as usize)
        {
            Some(&native_ref::<ProxyObj>(obj).target)
        } else {
            None
        }
    }
}

/// # Safety
/// `obj` is a live object of the attached interpreter.
unsafe fn method_of<'a>(obj: *mut sys::PyObject) -> Option<&'a MethodObj> {
    // SAFETY: forwarded; a type with our deallocator has our layout.
    unsafe {
        if (*sys::Py_TYPE(obj))
            .tp_dealloc
            .is_some_and(|d| d as usize == method_dealloc as sys::destructor as usize)
        {
            Some(native_ref::<MethodObj>(obj))
        } else {
            None
        }
    }
}

/// The value a `SharedMethodProxy` crosses as: the bound method itself (a
/// proxy of it, made in the owner).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn method_value(obj: *mut sys::PyObject) -> PyResult<Option<Value>> {
    // SAFETY: forwarded.
    let Some(m) = (unsafe { method_of(obj) }) else {
        return Ok(None);
    };
    let name = ffi::new_str(&m.name)?;
    let bound = owner_op(&m.target, &[name.as_ptr()], &mut |o, a| {
        // SAFETY: attached to the owner; live objects.
        unsafe { Owned::from_new(sys::PyObject_GetAttr(o, a[0])).map(Some) }
    })?
    .expect("getattr never reports exhaustion");
    // SAFETY: `bound` is a live object of the attached interpreter.
    unsafe { share_value(bound.as_ptr()).map(Some) }
}

/// `obj` as it crosses in a proxy operation: natively when it can, else as a
/// proxy of it (the caller's object stays where it is).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn share_value(obj: *mut sys::PyObject) -> PyResult<Value> {
    // SAFETY: forwarded.
    unsafe {
        if let Some(v) = xi::native_value(obj)? {
            return Ok(v);
        }
        Ok(Value::Shared(Arc::new(ProxyValue(share_current(obj)?))))
    }
}

/// `obj` by the data layer's rules (native, else pickled), or as a proxy
/// when it cannot be pickled.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
unsafe fn copy_or_share(obj: *mut sys::PyObject) -> PyResult<Value> {
    // SAFETY: forwarded.
    unsafe {
        if let Some(v) = xi::native_value(obj)? {
            return Ok(v);
        }
        match xi::to_value(obj, false) {
            Ok(v) => Ok(v),
            Err(PyErrSet) => {
                sys::PyErr_Clear();
                Ok(Value::Shared(Arc::new(ProxyValue(share_current(obj)?))))
            }
        }
    }
}

/// The object for `t` in the attached interpreter: the original object in
/// its owner, a `SharedObjectProxy` elsewhere.
pub fn to_python(t: &Arc<ProxyTarget>) -> PyResult<Owned> {
    let (_, iid) = ffi::interp::current();
    if iid == t.rec.iid {
        let obj = t.local_obj()?;
        // SAFETY: attached to the owner; `obj` is live (our handle holds it).
        return Ok(unsafe { Owned::from_borrowed(obj) });
    }
    let rec = current_record()?;
    // SAFETY: attached; the type is this interpreter's proxy type.
    unsafe {
        let tp = proxy_type(&rec, 0, cstr!("SharedObjectProxy"))?;
        alloc_native(
            tp.as_ptr() as *mut sys::PyTypeObject,
            ProxyObj { target: t.clone() },
        )
    }
}

/// This interpreter's proxy type `which` (0: object, 1: method).
fn proxy_type(rec: &OwnerRecord, which: usize, name: &std::ffi::CStr) -> PyResult<Owned> {
    let _ = (rec, which);
    ffi::import_attr(cstr!("crossinterp._native"), name)
}

/// A method proxy `t.name` in the attached interpreter.
fn method_proxy(t: &Arc<ProxyTarget>, name: &str) -> PyResult<Owned> {
    let rec = current_record()?;
    // SAFETY: attached; this interpreter's method proxy type.
    unsafe {
        let tp = proxy_type(&rec, 1, cstr!("SharedMethodProxy"))?;
        alloc_native(
            tp.as_ptr() as *mut sys::PyTypeObject,
            MethodObj {
                target: t.clone(),
                name: name.into(),
            },
        )
    }
}

/// An operation on the target object: `(object, arguments)`, run in the
/// owner; `Ok(None)` means "iterator exhausted" (no exception).
type Op<'a> = dyn FnMut(*mut sys::PyObject, &[*mut sys::PyObject]) -> PyResult<Option<Owned>> + 'a;

/// What comes back from the owner.
enum Outcome {
    Done(Value),
    Exhausted,
    Raised(Value),
}

/// Run `op` on `t`'s object in its owner, `args` crossing from the caller
/// and the result crossing back (see the module docs). In the owner itself
/// it is a plain call.
fn owner_op(
    t: &ProxyTarget,
    args: &[*mut sys::PyObject],
    op: &mut Op<'_>,
) -> PyResult<Option<Owned>> {
    owner_op_mode(t, args, false, op)
}

/// [`owner_op`]; with `by_value`, arguments that are not natively shareable
/// cross by copy (pickle) when they can, as proxies only when they cannot.
/// Comparisons and arithmetic use it: `proxy == [1, 2]` must compare with a
/// list in the owner, not with a proxy that would hand the comparison back.
fn owner_op_mode(
    t: &ProxyTarget,
    args: &[*mut sys::PyObject],
    by_value: bool,
    op: &mut Op<'_>,
) -> PyResult<Option<Owned>> {
    let depth = DEPTH.with(|d| d.get());
    if depth >= MAX_DEPTH {
        return Err(ffi::raise(
            ffi::Exc::RecursionError,
            "maximum depth of nested shared-object operations exceeded \
             (a chain of proxies calling into each other's interpreters)",
        ));
    }
    DEPTH.with(|d| d.set(depth + 1));
    let r = owner_op_inner(t, args, by_value, op);
    DEPTH.with(|d| d.set(depth));
    r
}

/// Nested proxy operations allowed on one thread (each crossing costs a
/// few native frames; this keeps a runaway chain far from the C stack's end).
const MAX_DEPTH: u32 = 200;

std::thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

fn owner_op_inner(
    t: &ProxyTarget,
    args: &[*mut sys::PyObject],
    by_value: bool,
    op: &mut Op<'_>,
) -> PyResult<Option<Owned>> {
    let here = current_record()?;
    // While in our own interpreter, handles of our own objects dropped by this
    // operation release inline.
    // SAFETY: attached to `here` for the whole call (run_in restores it).
    let _attached = unsafe { Attached::enter(here.view.id()) };
    if here.iid == t.rec.iid {
        let obj = t.local_obj()?;
        return op(obj, args);
    }
    let vals = args
        .iter()
        // SAFETY: the caller's arguments are live objects of this interpreter.
        .map(|&a| unsafe {
            if by_value {
                copy_or_share(a)
            } else {
                share_value(a)
            }
        })
        .collect::<PyResult<Vec<Value>>>()?;
    let outcome = owners::try_run_in_owner(&t.rec, || {
        let mut run = || -> PyResult<Option<Value>> {
            let obj = t.local_obj()?;
            let objs = vals
                .iter()
                .map(xi::from_value)
                .collect::<PyResult<Vec<Owned>>>()?;
            let ptrs: Vec<*mut sys::PyObject> = objs.iter().map(Owned::as_ptr).collect();
            match op(obj, &ptrs)? {
                None => Ok(None),
                // SAFETY: `r` is a live object of the owner (attached).
                Some(r) => unsafe { share_value(r.as_ptr()).map(Some) },
            }
        };
        match run() {
            Ok(Some(v)) => Outcome::Done(v),
            Ok(None) => Outcome::Exhausted,
            Err(PyErrSet) => Outcome::Raised(capture_exception()),
        }
    });
    let outcome = match outcome {
        Err(_refused) => return Err(t.gone()),
        Ok(r) => r?,
    };
    match outcome {
        Outcome::Done(v) => xi::from_value(&v).map(Some),
        Outcome::Exhausted => Ok(None),
        Outcome::Raised(info) => Err(reraise(t.rec.iid, &info)),
    }
}

/// Take the exception set in the owner as a neutral value:
/// `(builtin type name | None, args | None, excinfo tuple | None)`.
fn capture_exception() -> Value {
    // SAFETY: attached; an exception is set (callers checked), and we take it.
    let exc = unsafe { Owned::from_new(sys::PyErr_GetRaisedException()) };
    let Ok(exc) = exc else {
        return Value::None;
    };
    let r = ffi::import_attr(cstr!("crossinterp._xi"), cstr!("proxy_exc"))
        .and_then(|f| ffi::call(&f, &[exc.as_ptr()]))
        // SAFETY: `o` is live.
        .and_then(|o| unsafe { xi::to_value(o.as_ptr(), true) });
    match r {
        Ok(v) => v,
        Err(PyErrSet) => {
            // SAFETY: attached; drop the helper's failure.
            unsafe { sys::PyErr_Clear() };
            Value::None
        }
    }
}

/// Raise, in the caller, the exception described by `info` (from the owner).
fn reraise(owner: i64, info: &Value) -> PyErrSet {
    let r = (|| -> PyResult<()> {
        let f = ffi::import_attr(cstr!("crossinterp._xi"), cstr!("proxy_raise"))?;
        let iid = ffi::new_int(owner)?;
        let info = xi::from_value(info)?;
        ffi::call(&f, &[iid.as_ptr(), info.as_ptr()])?;
        Ok(())
    })();
    match r {
        Err(PyErrSet) => PyErrSet,
        Ok(()) => ffi::raise(
            ffi::Exc::SystemError,
            "crossinterp._xi.proxy_raise returned without raising",
        ),
    }
}

/// Whether `res` (just got as `obj.<name>`) is a method bound to `obj` whose
/// lookup cannot resolve differently later: the type and its whole MRO are
/// immutable, instances have no `__dict__`, and lookup is the generic one.
///
/// # Safety
/// Attached; `obj` and `res` are live objects.
unsafe fn stable_method(obj: *mut sys::PyObject, res: *mut sys::PyObject) -> bool {
    // SAFETY: forwarded; reading type fields of live types.
    unsafe {
        let tp = sys::Py_TYPE(obj);
        let generic = (*tp).tp_getattro.is_some_and(|g| {
            g as usize == sys::PyObject_GenericGetAttr as sys::getattrofunc as usize
        });
        if !generic || (*tp).tp_dictoffset != 0 {
            return false;
        }
        let mro = (*tp).tp_mro;
        if mro.is_null() {
            return false;
        }
        for i in 0..sys::PyTuple_Size(mro) {
            let base = sys::PyTuple_GetItem(mro, i) as *mut sys::PyTypeObject;
            if sys::PyType_GetFlags(base) & sys::Py_TPFLAGS_IMMUTABLETYPE == 0 {
                return false;
            }
        }
        if sys::PyCFunction_Check(res) != 0 {
            return sys::PyCFunction_GetSelf(res) == obj;
        }
        if sys::Py_TYPE(res) == std::ptr::addr_of_mut!(PyMethod_Type) {
            return PyMethod_Self(res) == obj;
        }
        false
    }
}

// ------------------------------------------------------------------ slots

/// # Safety
/// `slf` is a live `SharedObjectProxy`.
unsafe fn target<'a>(slf: *mut sys::PyObject) -> &'a Arc<ProxyTarget> {
    // SAFETY: forwarded.
    unsafe { &native_ref::<ProxyObj>(slf).target }
}

fn some(r: PyResult<Option<Owned>>) -> PyResult<Owned> {
    r?.ok_or_else(|| ffi::raise(ffi::Exc::SystemError, "unexpected end of iteration"))
}

/// [`c_op!`] with operands crossing by value (see [`owner_op_mode`]).
macro_rules! c_op_val {
    ($t:expr, [$($a:expr),*], |$o:ident, $x:ident| $body:expr) => {
        owner_op_mode($t, &[$($a),*], true, &mut |$o, $x| {
            let _ = &$x;
            Owned::from_new($body).map(Some)
        })
    };
}

/// Run a C-API function of the object (and arguments) in the owner.
macro_rules! c_op {
    ($t:expr, [$($a:expr),*], |$o:ident, $x:ident| $body:expr) => {
        owner_op($t, &[$($a),*], &mut |$o, $x| {
            let _ = &$x;
            // (Callers invoke this macro inside an `unsafe` block: attached to
            // the owner, `o` and the arguments are live.)
            Owned::from_new($body).map(Some)
        })
    };
}

unsafe extern "C" fn proxy_getattro(
    slf: *mut sys::PyObject,
    name: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: CPython passes a live proxy and attribute name.
        unsafe {
            let t = target(slf);
            let nm = ffi::str_utf8(name)?;
            if nm == "__reduce_ex__" || nm == "__reduce__" {
                // Pickling a proxy is refused by our own __reduce__.
                return Owned::from_new(sys::PyObject_GenericGetAttr(slf, name))
                    .map(Owned::into_ptr);
            }
            if lock(&t.methods).iter().any(|m| &**m == nm) {
                return method_proxy(t, nm).map(Owned::into_ptr);
            }
            let is_method = Cell::new(false);
            let r = some(owner_op(t, &[name], &mut |o, a| {
                let res = Owned::from_new(sys::PyObject_GetAttr(o, a[0]))?;
                if stable_method(o, res.as_ptr()) {
                    is_method.set(true);
                    return Ok(Some(Owned::from_borrowed(sys::Py_None())));
                }
                Ok(Some(res))
            }))?;
            if is_method.get() {
                let mut m = lock(&t.methods);
                if !m.iter().any(|x| &**x == nm) {
                    m.push(nm.into());
                }
                drop(m);
                return method_proxy(t, nm).map(Owned::into_ptr);
            }
            Ok(r.into_ptr())
        }
    })
}

unsafe extern "C" fn proxy_setattro(
    slf: *mut sys::PyObject,
    name: *mut sys::PyObject,
    value: *mut sys::PyObject,
) -> c_int {
    ffi::trampoline_int(|| {
        // SAFETY: CPython passes a live proxy and name; `value` NULL = delete.
        unsafe {
            let t = target(slf);
            let args: &[*mut sys::PyObject] = if value.is_null() {
                &[name]
            } else {
                &[name, value]
            };
            owner_op(t, args, &mut |o, a| {
                let v = if a.len() == 2 { a[1] } else { null_mut() };
                if sys::PyObject_SetAttr(o, a[0], v) < 0 {
                    return Err(PyErrSet);
                }
                Ok(Some(Owned::from_borrowed(sys::Py_None())))
            })?;
            Ok(())
        }
    })
}

/// Split `args` (tuple) and `kwargs` (dict or NULL) into one argument list
/// and the keyword names.
///
/// # Safety
/// Attached; `args` is a live tuple, `kwargs` NULL or a live dict.
unsafe fn call_parts(
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> PyResult<(Vec<*mut sys::PyObject>, Vec<Owned>)> {
    // SAFETY: forwarded; borrowed items stay alive with their containers
    // (held by the caller for the whole call).
    unsafe {
        let n = sys::PyTuple_Size(args);
        let mut all: Vec<*mut sys::PyObject> =
            (0..n).map(|i| sys::PyTuple_GetItem(args, i)).collect();
        let mut names = Vec::new();
        if !kwargs.is_null() {
            let mut pos: sys::Py_ssize_t = 0;
            let mut k = null_mut();
            let mut v = null_mut();
            while sys::PyDict_Next(kwargs, &mut pos, &mut k, &mut v) != 0 {
                names.push(Owned::from_borrowed(k));
                all.push(v);
            }
        }
        Ok((all, names))
    }
}

/// Call `callable` (or `method` of it) in the owner with `a` = positionals
/// followed by the values of `kwnames` (given as Rust strings).
///
/// # Safety
/// Attached to the owner; `callable` and `a` are live.
unsafe fn vectorcall(
    callable: *mut sys::PyObject,
    method: Option<&str>,
    a: &[*mut sys::PyObject],
    kwnames: &[String],
) -> PyResult<Option<Owned>> {
    // SAFETY: forwarded contract.
    unsafe {
        let npos = a.len() - kwnames.len();
        let names = if kwnames.is_empty() {
            None
        } else {
            let t = Owned::from_new(sys::PyTuple_New(kwnames.len() as sys::Py_ssize_t))?;
            for (i, k) in kwnames.iter().enumerate() {
                let s = ffi::new_str(k)?;
                sys::PyTuple_SetItem(t.as_ptr(), i as sys::Py_ssize_t, s.into_ptr());
            }
            Some(t)
        };
        let kw = names.as_ref().map_or(null_mut(), Owned::as_ptr);
        let r = match method {
            None => sys::PyObject_Vectorcall(callable, a.as_ptr(), npos, kw),
            Some(m) => {
                let name = ffi::new_str(m)?;
                let mut full = Vec::with_capacity(a.len() + 1);
                full.push(callable);
                full.extend_from_slice(a);
                sys::PyObject_VectorcallMethod(name.as_ptr(), full.as_ptr(), npos + 1, kw)
            }
        };
        Owned::from_new(r).map(Some)
    }
}

/// `target(*args, **kwargs)` or `target.method(*args, **kwargs)` in the owner.
///
/// # Safety
/// Attached; `args` a live tuple, `kwargs` NULL or a live dict.
unsafe fn call_in_owner(
    t: &ProxyTarget,
    method: Option<&str>,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> PyResult<Owned> {
    // SAFETY: forwarded.
    let (all, names) = unsafe { call_parts(args, kwargs)? };
    let kwnames = names
        .iter()
        // SAFETY: keyword names are live str objects.
        .map(|k| unsafe { ffi::str_utf8(k.as_ptr()).map(str::to_owned) })
        .collect::<PyResult<Vec<String>>>()?;
    // SAFETY: in the closure: attached to the owner, live objects.
    some(owner_op(t, &all, &mut |o, a| unsafe {
        vectorcall(o, method, a, &kwnames)
    }))
}

unsafe extern "C" fn proxy_call(
    slf: *mut sys::PyObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: CPython passes a live proxy, an args tuple and NULL or a dict.
        unsafe { call_in_owner(target(slf), None, args, kwargs).map(Owned::into_ptr) }
    })
}

unsafe extern "C" fn method_call(
    slf: *mut sys::PyObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: CPython passes a live method proxy, an args tuple and NULL or a dict.
        unsafe {
            let m = native_ref::<MethodObj>(slf);
            call_in_owner(&m.target, Some(&m.name), args, kwargs).map(Owned::into_ptr)
        }
    })
}

/// `getattr(target, name)` as a value of the caller (materialising a method
/// proxy's bound method for anything but calling it).
///
/// # Safety
/// `slf` is a live method proxy.
unsafe fn method_bound(slf: *mut sys::PyObject) -> PyResult<Owned> {
    // SAFETY: forwarded.
    unsafe {
        let m = native_ref::<MethodObj>(slf);
        let name = ffi::new_str(&m.name)?;
        some(c_op!(&m.target, [name.as_ptr()], |o, a| {
            sys::PyObject_GetAttr(o, a[0])
        }))
    }
}

unsafe extern "C" fn method_repr(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: live method proxy; the bound method is a live object.
        unsafe {
            let b = method_bound(slf)?;
            Owned::from_new(sys::PyObject_Repr(b.as_ptr())).map(Owned::into_ptr)
        }
    })
}

unsafe extern "C" fn method_getattro(
    slf: *mut sys::PyObject,
    name: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: live method proxy and name.
        unsafe {
            let nm = ffi::str_utf8(name)?;
            if nm == "__reduce_ex__" || nm == "__reduce__" {
                return Owned::from_new(sys::PyObject_GenericGetAttr(slf, name))
                    .map(Owned::into_ptr);
            }
            let b = method_bound(slf)?;
            Owned::from_new(sys::PyObject_GetAttr(b.as_ptr(), name)).map(Owned::into_ptr)
        }
    })
}

macro_rules! unary_slot {
    ($name:ident, $f:path) => {
        unsafe extern "C" fn $name(slf: *mut sys::PyObject) -> *mut sys::PyObject {
            ffi::trampoline(|| {
                // SAFETY: CPython passes a live proxy.
                unsafe { some(c_op!(target(slf), [], |o, a| $f(o))).map(Owned::into_ptr) }
            })
        }
    };
}

unary_slot!(proxy_repr, sys::PyObject_Repr);
unary_slot!(proxy_str, sys::PyObject_Str);
unary_slot!(proxy_iter, sys::PyObject_GetIter);
unary_slot!(nb_negative, sys::PyNumber_Negative);
unary_slot!(nb_positive, sys::PyNumber_Positive);
unary_slot!(nb_invert, sys::PyNumber_Invert);
unary_slot!(nb_absolute, sys::PyNumber_Absolute);
unary_slot!(nb_int, sys::PyNumber_Long);
unary_slot!(nb_float, sys::PyNumber_Float);
unary_slot!(nb_index, sys::PyNumber_Index);

unsafe extern "C" fn proxy_iternext(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: CPython passes a live proxy.
        unsafe {
            let r = owner_op(target(slf), &[], &mut |o, _| {
                if sys::PyIter_Check(o) == 0 {
                    return Err(ffi::raise(
                        ffi::Exc::TypeError,
                        &format!("'{}' object is not an iterator", xi::type_name(o)),
                    ));
                }
                let n = sys::PyIter_Next(o);
                if n.is_null() {
                    if sys::PyErr_Occurred().is_null() {
                        return Ok(None);
                    }
                    return Err(PyErrSet);
                }
                Owned::from_new(n).map(Some)
            })?;
            // NULL without an exception: the iterator is exhausted.
            Ok(r.map_or(null_mut(), Owned::into_ptr))
        }
    })
}

/// A binary number slot: the proxy may be either operand.
fn binop(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    f: unsafe extern "C" fn(*mut sys::PyObject, *mut sys::PyObject) -> *mut sys::PyObject,
) -> PyResult<*mut sys::PyObject> {
    // SAFETY: CPython passes live operands; `f` gets live objects in the owner.
    unsafe {
        let r = if let Some(t) = proxy_target(a) {
            c_op_val!(t, [b], |o, x| f(o, x[0]))
        } else if let Some(t) = proxy_target(b) {
            c_op_val!(t, [a], |o, x| f(x[0], o))
        } else {
            return Ok(Owned::from_borrowed(sys::Py_NotImplemented()).into_ptr());
        };
        some(r).map(Owned::into_ptr)
    }
}

macro_rules! binary_slot {
    ($name:ident, $f:path) => {
        unsafe extern "C" fn $name(
            a: *mut sys::PyObject,
            b: *mut sys::PyObject,
        ) -> *mut sys::PyObject {
            ffi::trampoline(|| binop(a, b, $f))
        }
    };
}

binary_slot!(nb_add, sys::PyNumber_Add);
binary_slot!(nb_subtract, sys::PyNumber_Subtract);
binary_slot!(nb_multiply, sys::PyNumber_Multiply);
binary_slot!(nb_remainder, sys::PyNumber_Remainder);
binary_slot!(nb_divmod, sys::PyNumber_Divmod);
binary_slot!(nb_lshift, sys::PyNumber_Lshift);
binary_slot!(nb_rshift, sys::PyNumber_Rshift);
binary_slot!(nb_and, sys::PyNumber_And);
binary_slot!(nb_xor, sys::PyNumber_Xor);
binary_slot!(nb_or, sys::PyNumber_Or);
binary_slot!(nb_floor_divide, sys::PyNumber_FloorDivide);
binary_slot!(nb_true_divide, sys::PyNumber_TrueDivide);
binary_slot!(nb_matrix_multiply, sys::PyNumber_MatrixMultiply);
binary_slot!(nb_inplace_add, sys::PyNumber_InPlaceAdd);
binary_slot!(nb_inplace_subtract, sys::PyNumber_InPlaceSubtract);
binary_slot!(nb_inplace_multiply, sys::PyNumber_InPlaceMultiply);
binary_slot!(nb_inplace_remainder, sys::PyNumber_InPlaceRemainder);
binary_slot!(nb_inplace_lshift, sys::PyNumber_InPlaceLshift);
binary_slot!(nb_inplace_rshift, sys::PyNumber_InPlaceRshift);
binary_slot!(nb_inplace_and, sys::PyNumber_InPlaceAnd);
binary_slot!(nb_inplace_xor, sys::PyNumber_InPlaceXor);
binary_slot!(nb_inplace_or, sys::PyNumber_InPlaceOr);
binary_slot!(nb_inplace_floor_divide, sys::PyNumber_InPlaceFloorDivide);
binary_slot!(nb_inplace_true_divide, sys::PyNumber_InPlaceTrueDivide);
binary_slot!(
    nb_inplace_matrix_multiply,
    sys::PyNumber_InPlaceMatrixMultiply
);

fn ternop(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    c: *mut sys::PyObject,
    inplace: bool,
) -> PyResult<*mut sys::PyObject> {
    let f = if inplace {
        sys::PyNumber_InPlacePower
    } else {
        sys::PyNumber_Power
    };
    // SAFETY: CPython passes live operands; `f` gets live objects in the owner.
    unsafe {
        let r = if let Some(t) = proxy_target(a) {
            c_op_val!(t, [b, c], |o, x| f(o, x[0], x[1]))
        } else if let Some(t) = proxy_target(b) {
            c_op_val!(t, [a, c], |o, x| f(x[0], o, x[1]))
        } else {
            return Ok(Owned::from_borrowed(sys::Py_NotImplemented()).into_ptr());
        };
        some(r).map(Owned::into_ptr)
    }
}

unsafe extern "C" fn nb_power(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    c: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| ternop(a, b, c, false))
}

unsafe extern "C" fn nb_inplace_power(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    c: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| ternop(a, b, c, true))
}

/// Run an int-returning C-API function in the owner; the result as i64.
fn int_op(
    t: &ProxyTarget,
    args: &[*mut sys::PyObject],
    f: &dyn Fn(*mut sys::PyObject, &[*mut sys::PyObject]) -> i64,
) -> PyResult<i64> {
    let r = some(owner_op(t, args, &mut |o, a| {
        let v = f(o, a);
        // SAFETY: attached to the owner.
        unsafe {
            if v == -1 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
        }
        ffi::new_int(v).map(Some)
    }))?;
    // SAFETY: `r` is a live int of the caller (crossed natively).
    let v = unsafe { sys::PyLong_AsLongLong(r.as_ptr()) };
    // SAFETY: attached.
    if v == -1 && unsafe { !sys::PyErr_Occurred().is_null() } {
        return Err(PyErrSet);
    }
    Ok(v)
}

/// Run an int-returning slot body: its value, or -1 with an exception set
/// (a panic becomes `SystemError`).
fn int_slot(what: &str, f: impl FnOnce() -> PyResult<i64>) -> i64 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(PyErrSet)) => -1,
        Err(_) => {
            ffi::raise(
                ffi::Exc::SystemError,
                &format!("panic in SharedObjectProxy.{what}"),
            );
            -1
        }
    }
}

unsafe extern "C" fn proxy_hash(slf: *mut sys::PyObject) -> sys::Py_hash_t {
    int_slot("__hash__", || {
        // SAFETY: live proxy; the closure runs attached to the owner.
        let t = unsafe { target(slf) };
        // -1 is the error value: a real hash of -1 is reported as -2 (as CPython does).
        int_op(t, &[], &|o, _| unsafe { sys::PyObject_Hash(o) as i64 }).map(|v| {
            if v == -1 {
                -2
            } else {
                v
            }
        })
    }) as sys::Py_hash_t
}

unsafe extern "C" fn proxy_len(slf: *mut sys::PyObject) -> sys::Py_ssize_t {
    int_slot("__len__", || {
        // SAFETY: live proxy; the closure runs attached to the owner.
        let t = unsafe { target(slf) };
        int_op(t, &[], &|o, _| unsafe { sys::PyObject_Size(o) as i64 })
    }) as sys::Py_ssize_t
}

unsafe extern "C" fn proxy_bool(slf: *mut sys::PyObject) -> c_int {
    int_slot("__bool__", || {
        // SAFETY: live proxy; the closure runs attached to the owner.
        let t = unsafe { target(slf) };
        int_op(t, &[], &|o, _| unsafe { sys::PyObject_IsTrue(o) as i64 })
    }) as c_int
}

unsafe extern "C" fn proxy_contains(slf: *mut sys::PyObject, item: *mut sys::PyObject) -> c_int {
    int_slot("__contains__", || {
        // SAFETY: live proxy and item; the closure runs attached to the owner.
        let t = unsafe { target(slf) };
        int_op(t, &[item], &|o, a| unsafe {
            sys::PySequence_Contains(o, a[0]) as i64
        })
    }) as c_int
}

unsafe extern "C" fn proxy_getitem(
    slf: *mut sys::PyObject,
    key: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: live proxy and key.
        unsafe {
            some(c_op!(target(slf), [key], |o, a| sys::PyObject_GetItem(
                o, a[0]
            )))
            .map(Owned::into_ptr)
        }
    })
}

unsafe extern "C" fn proxy_setitem(
    slf: *mut sys::PyObject,
    key: *mut sys::PyObject,
    value: *mut sys::PyObject,
) -> c_int {
    ffi::trampoline_int(|| {
        // SAFETY: live proxy and key; `value` NULL = delete.
        unsafe {
            let args: &[*mut sys::PyObject] = if value.is_null() {
                &[key]
            } else {
                &[key, value]
            };
            owner_op(target(slf), args, &mut |o, a| {
                let r = if a.len() == 2 {
                    sys::PyObject_SetItem(o, a[0], a[1])
                } else {
                    sys::PyObject_DelItem(o, a[0])
                };
                if r < 0 {
                    return Err(PyErrSet);
                }
                Ok(Some(Owned::from_borrowed(sys::Py_None())))
            })?;
            Ok(())
        }
    })
}

unsafe extern "C" fn proxy_richcompare(
    slf: *mut sys::PyObject,
    other: *mut sys::PyObject,
    op: c_int,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: live proxy and operand.
        unsafe {
            some(c_op_val!(target(slf), [other], |o, a| {
                sys::PyObject_RichCompare(o, a[0], op)
            }))
            .map(Owned::into_ptr)
        }
    })
}

/// Call `target.<name>(*args)` in the owner (the context-manager methods).
fn call_method_fast(
    slf: *mut sys::PyObject,
    name: &str,
    args: crate::legacy::Args,
) -> PyResult<*mut sys::PyObject> {
    // SAFETY: `slf` is a live proxy (methods of its type); in the closure we
    // are attached to the owner with live objects.
    unsafe {
        some(owner_op(target(slf), args, &mut |o, a| {
            vectorcall(o, Some(name), a, &[])
        }))
        .map(Owned::into_ptr)
    }
}

fn proxy_enter(slf: *mut sys::PyObject, args: crate::legacy::Args) -> PyResult<*mut sys::PyObject> {
    call_method_fast(slf, "__enter__", args)
}

fn proxy_exit(slf: *mut sys::PyObject, args: crate::legacy::Args) -> PyResult<*mut sys::PyObject> {
    call_method_fast(slf, "__exit__", args)
}

fn proxy_reduce(
    _slf: *mut sys::PyObject,
    _args: crate::legacy::Args,
) -> PyResult<*mut sys::PyObject> {
    Err(Error::not_shareable(
        "a shared object proxy cannot be pickled: pass it to another interpreter by itself \
         (or inside a tuple), where it arrives as a proxy of the same object",
    ))
}

crate::method_fn!(py_proxy_enter => proxy_enter);
crate::method_fn!(py_proxy_exit => proxy_exit);
crate::method_fn!(py_proxy_reduce => proxy_reduce);

use crate::method_def as m;

static mut PROXY_METHODS: [sys::PyMethodDef; 5] = [
    m!(
        "__enter__",
        py_proxy_enter,
        "Run the target's __enter__ in its owner."
    ),
    m!(
        "__exit__",
        py_proxy_exit,
        "Run the target's __exit__ in its owner."
    ),
    m!(
        "__reduce__",
        py_proxy_reduce,
        "Proxies are not picklable (NotShareableError)."
    ),
    m!(
        "__reduce_ex__",
        py_proxy_reduce,
        "Proxies are not picklable (NotShareableError)."
    ),
    sys::PyMethodDef::zeroed(),
];

static mut METHOD_METHODS: [sys::PyMethodDef; 3] = [
    m!(
        "__reduce__",
        py_proxy_reduce,
        "Proxies are not picklable (NotShareableError)."
    ),
    m!(
        "__reduce_ex__",
        py_proxy_reduce,
        "Proxies are not picklable (NotShareableError)."
    ),
    sys::PyMethodDef::zeroed(),
];

/// Drop a proxy's value; when the current interpreter is the target's
/// owner, record that we are attached there, so the last handle releases
/// inline (the object's `__del__` runs now, not at the next entry point).
///
/// # Safety
/// Called by CPython, once, for a dead object of type `T`'s layout.
unsafe fn dealloc_attached<T>(
    obj: *mut sys::PyObject,
    owner: i64,
    view_id: crossinterp_core::OwnerId,
) {
    let (_, cur) = ffi::interp::current();
    // SAFETY: attached to `cur` (CPython deallocates attached); when it is
    // the owner, the proof lives only for this deallocation.
    unsafe {
        let _attached = (cur == owner).then(|| Attached::enter(view_id));
        crate::legacy::dealloc_native::<T>(obj);
    }
}

unsafe extern "C" fn proxy_dealloc(obj: *mut sys::PyObject) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: CPython deallocates a proxy once; its value is live until
        // `dealloc_native` drops it.
        unsafe {
            let t = &native_ref::<ProxyObj>(obj).target;
            let (owner, vid) = (t.rec.iid, t.rec.view.id());
            dealloc_attached::<ProxyObj>(obj, owner, vid);
        }
    });
}

unsafe extern "C" fn method_dealloc(obj: *mut sys::PyObject) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: as `proxy_dealloc`, for a method proxy.
        unsafe {
            let t = &native_ref::<MethodObj>(obj).target;
            let (owner, vid) = (t.rec.iid, t.rec.view.id());
            dealloc_attached::<MethodObj>(obj, owner, vid);
        }
    });
}

/// `share(obj)`: `obj` itself when it crosses natively (a proxy included),
/// else a new proxy of it.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn share(obj: *mut sys::PyObject) -> PyResult<Owned> {
    // SAFETY: forwarded.
    unsafe {
        if xi::native_value(obj)?.is_some() {
            return Ok(Owned::from_borrowed(obj));
        }
        let t = share_current(obj)?;
        let rec = current_record()?;
        let tp = proxy_type(&rec, 0, cstr!("SharedObjectProxy"))?;
        alloc_native(
            tp.as_ptr() as *mut sys::PyTypeObject,
            ProxyObj { target: t },
        )
    }
}

/// `(owner id, alive)` of a proxy, `None` for other objects.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn info(obj: *mut sys::PyObject) -> Option<(i64, bool)> {
    // SAFETY: forwarded.
    let t = unsafe { proxy_target(obj).or_else(|| method_of(obj).map(|m| &m.target)) }?;
    Some((
        t.rec.iid,
        !t.handle.is_dead() && t.rec.view.state() == crossinterp_core::OwnerState::Running,
    ))
}

/// Create this module's `SharedObjectProxy` and `SharedMethodProxy` types and
/// record them for `rec` (the module's interpreter).
///
/// # Safety
/// Attached; `module` is our live module object (its exec slot).
pub unsafe fn add_types(module: *mut sys::PyObject) -> PyResult<()> {
    macro_rules! slot {
        ($s:expr, $f:expr) => {
            sys::PyType_Slot {
                slot: $s,
                pfunc: $f as *mut c_void,
            }
        };
    }
    let mut slots = [
        slot!(sys::Py_tp_dealloc, proxy_dealloc),
        slot!(sys::Py_tp_getattro, proxy_getattro),
        slot!(sys::Py_tp_setattro, proxy_setattro),
        slot!(sys::Py_tp_call, proxy_call),
        slot!(sys::Py_tp_repr, proxy_repr),
        slot!(sys::Py_tp_str, proxy_str),
        slot!(sys::Py_tp_hash, proxy_hash),
        slot!(sys::Py_tp_richcompare, proxy_richcompare),
        slot!(sys::Py_tp_iter, proxy_iter),
        slot!(sys::Py_tp_iternext, proxy_iternext),
        slot!(sys::Py_mp_length, proxy_len),
        slot!(sys::Py_sq_length, proxy_len),
        slot!(sys::Py_mp_subscript, proxy_getitem),
        slot!(sys::Py_mp_ass_subscript, proxy_setitem),
        slot!(sys::Py_sq_contains, proxy_contains),
        slot!(sys::Py_nb_bool, proxy_bool),
        slot!(sys::Py_nb_add, nb_add),
        slot!(sys::Py_nb_subtract, nb_subtract),
        slot!(sys::Py_nb_multiply, nb_multiply),
        slot!(sys::Py_nb_remainder, nb_remainder),
        slot!(sys::Py_nb_divmod, nb_divmod),
        slot!(sys::Py_nb_power, nb_power),
        slot!(sys::Py_nb_negative, nb_negative),
        slot!(sys::Py_nb_positive, nb_positive),
        slot!(sys::Py_nb_absolute, nb_absolute),
        slot!(sys::Py_nb_invert, nb_invert),
        slot!(sys::Py_nb_lshift, nb_lshift),
        slot!(sys::Py_nb_rshift, nb_rshift),
        slot!(sys::Py_nb_and, nb_and),
        slot!(sys::Py_nb_xor, nb_xor),
        slot!(sys::Py_nb_or, nb_or),
        slot!(sys::Py_nb_int, nb_int),
        slot!(sys::Py_nb_float, nb_float),
        slot!(sys::Py_nb_index, nb_index),
        slot!(sys::Py_nb_floor_divide, nb_floor_divide),
        slot!(sys::Py_nb_true_divide, nb_true_divide),
        slot!(sys::Py_nb_matrix_multiply, nb_matrix_multiply),
        slot!(sys::Py_nb_inplace_add, nb_inplace_add),
        slot!(sys::Py_nb_inplace_subtract, nb_inplace_subtract),
        slot!(sys::Py_nb_inplace_multiply, nb_inplace_multiply),
        slot!(sys::Py_nb_inplace_remainder, nb_inplace_remainder),
        slot!(sys::Py_nb_inplace_power, nb_inplace_power),
        slot!(sys::Py_nb_inplace_lshift, nb_inplace_lshift),
        slot!(sys::Py_nb_inplace_rshift, nb_inplace_rshift),
        slot!(sys::Py_nb_inplace_and, nb_inplace_and),
        slot!(sys::Py_nb_inplace_xor, nb_inplace_xor),
        slot!(sys::Py_nb_inplace_or, nb_inplace_or),
        slot!(sys::Py_nb_inplace_floor_divide, nb_inplace_floor_divide),
        slot!(sys::Py_nb_inplace_true_divide, nb_inplace_true_divide),
        slot!(sys::Py_nb_inplace_matrix_multiply, nb_inplace_matrix_multiply),
        slot!(sys::Py_tp_methods, std::ptr::addr_of_mut!(PROXY_METHODS)),
        slot!(
            sys::Py_tp_doc,
            cstr!("A proxy of an object owned by another interpreter (made by crossinterp.share()).\n\nEvery operation runs in the owner, with the owner attached; arguments and results cross natively when they can, else as proxies. After the owner is closed every operation raises InterpreterGoneError.").as_ptr()
        ),
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    let mut mslots = [
        slot!(sys::Py_tp_dealloc, method_dealloc),
        slot!(sys::Py_tp_call, method_call),
        slot!(sys::Py_tp_repr, method_repr),
        slot!(sys::Py_tp_getattro, method_getattro),
        slot!(sys::Py_tp_methods, std::ptr::addr_of_mut!(METHOD_METHODS)),
        slot!(
            sys::Py_tp_doc,
            cstr!("A method of a shared object, called in the object's owner in one round trip.")
                .as_ptr()
        ),
        sys::PyType_Slot {
            slot: 0,
            pfunc: null_mut(),
        },
    ];
    let flags = sys::Py_TPFLAGS_DEFAULT
        | sys::Py_TPFLAGS_IMMUTABLETYPE
        | sys::Py_TPFLAGS_DISALLOW_INSTANTIATION;
    // SAFETY: the caller's contract; the slots match the layouts.
    unsafe {
        crate::legacy::add_heap_type(
            module,
            cstr!("crossinterp.SharedObjectProxy"),
            cstr!("SharedObjectProxy"),
            std::mem::size_of::<crate::legacy::Native<ProxyObj>>(),
            flags,
            &mut slots,
        )?;
        crate::legacy::add_heap_type(
            module,
            cstr!("crossinterp.SharedMethodProxy"),
            cstr!("SharedMethodProxy"),
            std::mem::size_of::<crate::legacy::Native<MethodObj>>(),
            flags,
            &mut mslots,
        )
    }
}

/// A shared object in transit: the object itself in its owner, a proxy
/// elsewhere.
#[derive(Debug)]
pub struct ProxyValue(pub Arc<ProxyTarget>);

impl crate::xi::Shared for ProxyValue {
    fn to_python(&self) -> PyResult<Owned> {
        to_python(&self.0)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// # Safety
/// `obj` is a live `SharedObjectProxy` of the attached interpreter.
unsafe fn proxy_value(obj: *mut sys::PyObject) -> PyResult<Option<Value>> {
    // SAFETY: forwarded.
    Ok(unsafe { proxy_target(obj) }.map(|t| Value::Shared(Arc::new(ProxyValue(t.clone())))))
}

static PROXY_XI: crate::xi::Converter = crate::xi::Converter {
    matches: crate::xi::Match::Named(cstr!("SharedObjectProxy")),
    to_value: Some(proxy_value),
    refuse: None,
};

static METHOD_XI: crate::xi::Converter = crate::xi::Converter {
    matches: crate::xi::Match::Named(cstr!("SharedMethodProxy")),
    to_value: Some(method_value),
    refuse: None,
};

/// The proxies' part in owners' lives: a finalizing owner releases every
/// reference proxies elsewhere still hold (they are dead from then on).
fn on_event(event: &crate::runtime::owners::Event<'_>) {
    if let crate::runtime::owners::Event::Release(rec) = event {
        release_all(rec);
    }
}

/// `SharedObjectProxy` and `SharedMethodProxy`.
pub const ENTRY: super::Entry = super::Entry {
    hook: Some(on_event),
    converters: &[&PROXY_XI, &METHOD_XI],
    legacy_add: Some(add_types),
    ..super::Entry::EMPTY
};
