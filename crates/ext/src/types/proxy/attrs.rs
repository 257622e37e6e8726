//! The object protocol of `SharedObjectProxy`: attribute get/set, calls,
//! repr/str, hash, comparisons and the context-manager methods, each run in
//! the owner.

use super::call::{call_in_owner, int_op, owner_op, some, vectorcall};
use super::methods::{method_proxy, stable_method};
use super::SharedObjectProxy;
use crate::ffi::args::Args;
use crate::ffi::class::This;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crossinterp_core::sync::lock;
use std::cell::Cell;
use std::ffi::c_int;
use std::ptr::null_mut;

type P<'a> = This<'a, SharedObjectProxy>;

impl SharedObjectProxy {
    pub(super) fn getattro(this: P, name: *mut sys::PyObject) -> PyResult<Owned> {
        // SAFETY: CPython passes a live attribute name; in the closure we are
        // attached to the owner with live objects.
        unsafe {
            let t = &this.get().target;
            let nm = ffi::str_utf8(name)?;
            if nm == "__reduce_ex__" || nm == "__reduce__" {
                // Pickling a proxy is refused by our own __reduce__.
                return Owned::from_new(sys::PyObject_GenericGetAttr(this.as_ptr(), name));
            }
            if lock(&t.methods).iter().any(|m| &**m == nm) {
                return method_proxy(t, nm);
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
                return method_proxy(t, nm);
            }
            Ok(r)
        }
    }

    pub(super) fn setattro(
        this: P,
        name: *mut sys::PyObject,
        value: Option<*mut sys::PyObject>,
    ) -> PyResult<()> {
        let args: &[*mut sys::PyObject] = match &value {
            None => &[name],
            Some(v) => &[name, *v],
        };
        owner_op(&this.target, args, &mut |o, a| {
            let v = if a.len() == 2 { a[1] } else { null_mut() };
            // SAFETY: attached to the owner; live objects (`v` NULL = delete).
            unsafe {
                if sys::PyObject_SetAttr(o, a[0], v) < 0 {
                    return Err(PyErrSet);
                }
                Ok(Some(Owned::from_borrowed(sys::Py_None())))
            }
        })?;
        Ok(())
    }

    pub(super) fn call(
        this: P,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<Owned> {
        // SAFETY: CPython passes an args tuple and NULL or a dict.
        unsafe { call_in_owner(&this.target, None, args, kwargs) }
    }

    /// `<SharedObjectProxy of dict owned by interpreter 2: {'a': 1}>`: what
    /// it is, of what type, whose; the object's own repr (got in the owner)
    /// while the owner runs, `(gone)` after (no exception: debuggers call it).
    pub(super) fn repr(this: P) -> PyResult<Owned> {
        let t = &this.target;
        let head = format!(
            "SharedObjectProxy of {} owned by interpreter {}",
            t.type_name,
            t.owner_iid()
        );
        if !t.alive() {
            return ffi::new_str(&format!("<{head} (gone)>"));
        }
        // SAFETY: in the closure: attached to the owner, live objects.
        let inner = unsafe { some(c_op!(t, [], |o, a| sys::PyObject_Repr(o)))? };
        // SAFETY: the owner's repr crossed back as a str of ours (checked by
        // str_utf8, which raises TypeError for anything else).
        let inner = unsafe { ffi::str_utf8(inner.as_ptr())? };
        ffi::new_str(&format!("<{head}: {inner}>"))
    }

    pub(super) fn str(this: P) -> PyResult<Owned> {
        // SAFETY: in the closure: attached to the owner, live objects.
        unsafe { some(c_op!(&this.target, [], |o, a| sys::PyObject_Str(o))) }
    }

    pub(super) fn hash(this: P) -> PyResult<sys::Py_hash_t> {
        // SAFETY: in the closure: attached to the owner, a live object.
        // (A real hash of -1 is reported as -2 by the shim, as CPython does.)
        int_op(&this.target, &[], &|o, _| unsafe {
            sys::PyObject_Hash(o) as i64
        })
        .map(|v| v as sys::Py_hash_t)
    }

    pub(super) fn richcompare(this: P, other: *mut sys::PyObject, op: c_int) -> PyResult<Owned> {
        // SAFETY: CPython passes a live operand; in the closure we are
        // attached to the owner with live objects.
        unsafe {
            some(c_op_val!(&this.target, [other], |o, a| {
                sys::PyObject_RichCompare(o, a[0], op)
            }))
        }
    }

    /// Call `target.<name>(*args)` in the owner (the context-manager methods).
    fn call_method_fast(this: P, name: &str, args: Args) -> PyResult<Owned> {
        // SAFETY: in the closure we are attached to the owner with live objects.
        some(owner_op(&this.target, args, &mut |o, a| unsafe {
            vectorcall(o, Some(name), a, &[])
        }))
    }

    pub(super) fn enter(this: P, args: Args) -> PyResult<Owned> {
        Self::call_method_fast(this, "__enter__", args)
    }

    pub(super) fn exit(this: P, args: Args) -> PyResult<Owned> {
        Self::call_method_fast(this, "__exit__", args)
    }

    pub(super) fn reduce(_this: P, _args: Args) -> PyResult<Owned> {
        Err(super::not_picklable())
    }
}
