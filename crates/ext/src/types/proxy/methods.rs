//! The stable-method cache and `SharedMethodProxy`: `p.name` of a method
//! whose resolution cannot change is a method proxy made without entering the
//! owner, and calling it costs one round trip.

use super::call::{call_in_owner, owner_op, some};
use super::target::{share_value, ProxyTarget};
use super::SharedMethodProxy;
use crate::ffi::class::This;
use crate::ffi::{self, sys, Owned, PyResult};
use crate::runtime;
use crate::xi::Value;
use crossinterp_core::sync::Arc;

type M<'a> = This<'a, SharedMethodProxy>;

use crate::ffi::capi::{PyMethod_Self, PyMethod_Type};

/// Whether `res` (just got as `obj.<name>`) is a method bound to `obj` whose
/// lookup cannot resolve differently later: the type and its whole MRO are
/// immutable, instances have no `__dict__`, and lookup is the generic one.
///
/// # Safety
/// Attached; `obj` and `res` are live objects.
pub(super) unsafe fn stable_method(obj: *mut sys::PyObject, res: *mut sys::PyObject) -> bool {
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

/// A method proxy `t.name` in the attached interpreter. The stable-method
/// cache calls this without entering the owner, so a dead target (its owner
/// finalizing or gone) is refused here, as every other operation refuses it.
pub(super) fn method_proxy(t: &Arc<ProxyTarget>, name: &str) -> PyResult<Owned> {
    if t.handle.is_dead() || !t.rec.view.is_running() {
        return Err(t.gone());
    }
    super::cycles::bump();
    runtime::new_instance(SharedMethodProxy {
        target: t.clone(),
        name: name.into(),
        _held: super::detect::Held::new(t.rec.iid),
    })
}

/// `obj` as a `SharedMethodProxy` of the attached interpreter (the type
/// table's downcast).
///
/// # Safety
/// `obj` is a live object of the attached interpreter, alive for `'a`.
pub(super) unsafe fn method_of<'a>(obj: *mut sys::PyObject) -> Option<&'a SharedMethodProxy> {
    let Ok(rec) = runtime::current() else {
        // Not ours (no record): drop the lookup's failure.
        // SAFETY: attached (the caller's contract).
        unsafe { sys::PyErr_Clear() };
        return None;
    };
    // SAFETY: forwarded.
    unsafe { rec.types.downcast::<SharedMethodProxy>(obj) }.map(This::get)
}

/// The value a `SharedMethodProxy` crosses as: the bound method itself (a
/// proxy of it, made in the owner).
///
/// # Safety
/// `obj` is a live `SharedMethodProxy` of the attached interpreter.
pub(super) unsafe fn method_value(
    _rec: &crate::runtime::OwnerRecord,
    obj: *mut sys::PyObject,
) -> PyResult<Option<Value>> {
    // SAFETY: the converter's contract (`obj` is a SharedMethodProxy).
    let m = unsafe { M::from_ptr(obj) }.get();
    let name = ffi::new_str(&m.name)?;
    let bound = owner_op(&m.target, &[name.as_ptr()], &mut |o, a| {
        // SAFETY: attached to the owner; live objects.
        unsafe { Owned::from_new(sys::PyObject_GetAttr(o, a[0])).map(Some) }
    })?
    .expect("getattr never reports exhaustion");
    // SAFETY: `bound` is a live object of the attached interpreter.
    unsafe { share_value(bound.as_ptr()).map(Some) }
}

impl SharedMethodProxy {
    /// `getattr(target, name)` as a value of the caller (materialising the
    /// bound method for anything but calling it).
    fn bound(this: M) -> PyResult<Owned> {
        let name = ffi::new_str(&this.name)?;
        // SAFETY: in the closure: attached to the owner, live objects.
        unsafe {
            some(c_op!(&this.target, [name.as_ptr()], |o, a| {
                sys::PyObject_GetAttr(o, a[0])
            }))
        }
    }

    pub(super) fn call(
        this: M,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<Owned> {
        // SAFETY: CPython passes an args tuple and NULL or a dict.
        unsafe { call_in_owner(&this.target, Some(&this.name), args, kwargs) }
    }

    /// `<SharedMethodProxy dict.get owned by interpreter 2>` (` (gone)` once
    /// the owner is): made without entering the owner.
    pub(super) fn repr(this: M) -> PyResult<Owned> {
        let t = &this.target;
        ffi::new_str(&format!(
            "<SharedMethodProxy {}.{} owned by interpreter {}{}>",
            t.type_name,
            this.name,
            t.owner_iid(),
            if t.alive() { "" } else { " (gone)" }
        ))
    }

    pub(super) fn getattro(this: M, name: *mut sys::PyObject) -> PyResult<Owned> {
        // SAFETY: CPython passes a live name; attached.
        unsafe {
            let nm = ffi::str_utf8(name)?;
            if nm == "__reduce_ex__" || nm == "__reduce__" {
                return Owned::from_new(sys::PyObject_GenericGetAttr(this.as_ptr(), name));
            }
            let b = Self::bound(this)?;
            Owned::from_new(sys::PyObject_GetAttr(b.as_ptr(), name))
        }
    }

    pub(super) fn reduce(_this: M, _args: ffi::args::Args) -> PyResult<Owned> {
        Err(super::not_picklable())
    }
}
