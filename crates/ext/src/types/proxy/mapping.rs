//! The container protocols of `SharedObjectProxy`: length, items,
//! membership and iteration, each run in the owner.

use super::call::{int_op, owner_op, some};
use super::SharedObjectProxy;
use crate::ffi::class::{IntoPy, This};
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::xi;
use std::ptr::null_mut;

type P<'a> = This<'a, SharedObjectProxy>;

/// The result of `__next__`: the next item, or `None` when the iterator is
/// exhausted (NULL without an exception, as `tp_iternext` reports it).
pub(super) struct Next(Option<Owned>);

impl IntoPy for Next {
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        Ok(self.0.map_or(null_mut(), Owned::into_ptr))
    }
}

impl SharedObjectProxy {
    pub(super) fn len(this: P) -> PyResult<usize> {
        // SAFETY: in the closure: attached to the owner, a live object.
        int_op(&this.target, &[], &|o, _| unsafe {
            sys::PyObject_Size(o) as i64
        })
        .map(|n| n as usize)
    }

    pub(super) fn contains(this: P, item: *mut sys::PyObject) -> PyResult<bool> {
        // SAFETY: in the closure: attached to the owner, live objects.
        int_op(&this.target, &[item], &|o, a| unsafe {
            sys::PySequence_Contains(o, a[0]) as i64
        })
        .map(|v| v != 0)
    }

    pub(super) fn getitem(this: P, key: *mut sys::PyObject) -> PyResult<Owned> {
        // SAFETY: CPython passes a live key; in the closure we are attached
        // to the owner with live objects.
        unsafe {
            some(c_op!(&this.target, [key], |o, a| sys::PyObject_GetItem(
                o, a[0]
            )))
        }
    }

    pub(super) fn setitem(
        this: P,
        key: *mut sys::PyObject,
        value: Option<*mut sys::PyObject>,
    ) -> PyResult<()> {
        let args: &[*mut sys::PyObject] = match &value {
            None => &[key],
            Some(v) => &[key, *v],
        };
        owner_op(&this.target, args, &mut |o, a| {
            // SAFETY: attached to the owner; live objects.
            unsafe {
                let r = if a.len() == 2 {
                    sys::PyObject_SetItem(o, a[0], a[1])
                } else {
                    sys::PyObject_DelItem(o, a[0])
                };
                if r < 0 {
                    return Err(PyErrSet);
                }
                Ok(Some(Owned::from_borrowed(sys::Py_None())))
            }
        })?;
        Ok(())
    }

    pub(super) fn iter(this: P) -> PyResult<Owned> {
        // SAFETY: in the closure: attached to the owner, a live object.
        unsafe { some(c_op!(&this.target, [], |o, a| sys::PyObject_GetIter(o))) }
    }

    pub(super) fn iternext(this: P) -> PyResult<Next> {
        let r = owner_op(&this.target, &[], &mut |o, _| {
            // SAFETY: attached to the owner; a live object.
            unsafe {
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
            }
        })?;
        Ok(Next(r))
    }
}
