//! The cross-call engine: run an operation on a target object in its owner
//! ([`owner_op`]), arguments and results crossing by the module docs' rules,
//! and exceptions captured in the owner and re-raised in the caller.

use super::target::{copy_or_share, share_value, ProxyTarget};
use crate::cstr;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::runtime;
use crate::runtime::pending;
use crate::runtime::state::Import;
use crate::xi::{self, Value};
use crossinterp_core::Attached;
use std::cell::Cell;
use std::ptr::null_mut;

/// An operation on the target object: `(object, arguments)`, run in the
/// owner; `Ok(None)` means "iterator exhausted" (no exception).
pub(super) type Op<'a> =
    dyn FnMut(*mut sys::PyObject, &[*mut sys::PyObject]) -> PyResult<Option<Owned>> + 'a;

/// What comes back from the owner.
enum Outcome {
    Done(Value),
    Exhausted,
    Raised(Value),
}

/// Run `op` on `t`'s object in its owner, `args` crossing from the caller
/// and the result crossing back (see the module docs). In the owner itself
/// it is a plain call.
pub(super) fn owner_op(
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
pub(super) fn owner_op_mode(
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
    super::cycles::bump();
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
    let (here_iid, here_owner) = runtime::with_current(|r| (r.iid, r.view.id()))?;
    // While in our own interpreter, handles of our own objects dropped by this
    // operation release inline.
    // SAFETY: attached to `here` for the whole call (run_in restores it).
    let _attached = unsafe { Attached::enter(here_owner) };
    if here_iid == t.rec.iid {
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
    let outcome = pending::try_run_in_owner(&t.rec, || {
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
        Outcome::Done(v) => xi::into_python(v).map(Some),
        Outcome::Exhausted => Ok(None),
        Outcome::Raised(info) => Err(reraise(t.rec.iid, &info)),
    }
}

/// Take the exception set in the owner as a neutral value:
/// `(builtin type name | None, args | None, excinfo tuple | None)`.
fn capture_exception() -> Value {
    xi::describe_exception(&PROXY_EXC).unwrap_or(Value::None)
}

static PROXY_EXC: Import = Import::new(cstr!("crossinterp._xi"), cstr!("proxy_exc"));
static PROXY_RAISE: Import = Import::new(cstr!("crossinterp._xi"), cstr!("proxy_raise"));

/// Raise, in the caller, the exception described by `info` (from the owner).
pub(super) fn reraise(owner: i64, info: &Value) -> PyErrSet {
    let r = (|| -> PyResult<()> {
        let f = runtime::with_current(|rec| rec.types.import(&PROXY_RAISE))??;
        // SAFETY: attached; the type table holds the function.
        let f = unsafe { Owned::from_borrowed(f) };
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

pub(super) fn some(r: PyResult<Option<Owned>>) -> PyResult<Owned> {
    r?.ok_or_else(|| ffi::raise(ffi::Exc::SystemError, "unexpected end of iteration"))
}

/// [`c_op!`] with operands crossing by value (see [`owner_op_mode`]).
macro_rules! c_op_val {
    ($t:expr, [$($a:expr),*], |$o:ident, $x:ident| $body:expr) => {
        $crate::types::proxy::call::owner_op_mode($t, &[$($a),*], true, &mut |$o, $x| {
            let _ = &$x;
            $crate::ffi::Owned::from_new($body).map(Some)
        })
    };
}

/// Run a C-API function of the object (and arguments) in the owner.
macro_rules! c_op {
    ($t:expr, [$($a:expr),*], |$o:ident, $x:ident| $body:expr) => {
        $crate::types::proxy::call::owner_op($t, &[$($a),*], &mut |$o, $x| {
            let _ = &$x;
            // (Callers invoke this macro inside an `unsafe` block: attached to
            // the owner, `o` and the arguments are live.)
            $crate::ffi::Owned::from_new($body).map(Some)
        })
    };
}

/// Run an int-returning C-API function in the owner; the result as i64.
pub(super) fn int_op(
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
pub(super) unsafe fn vectorcall(
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
pub(super) unsafe fn call_in_owner(
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
