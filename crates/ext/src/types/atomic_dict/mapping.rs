//! The mapping protocol: item access, `get`/`pop`/`setdefault`, snapshots
//! (`keys`, `values`, `items`, `to_dict`, iteration), `clear`, `len`, `in`,
//! `repr` and the constructor.

use super::keys::{Key, P};
use super::store::{
    lookup, new_list, pair, snapshot, store, take, to_dict_of, with_entry, write_lock, Act,
    DictState,
};
use super::update::{for_pairs, not_busy};
use super::D;
use crate::cstr;
use crate::ffi::args::{arity, optional_object_arg, Args};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crossinterp_core::map::ShardedMap;

// ------------------------------------------------------------ errors

pub(super) fn key_error(key: *mut sys::PyObject) -> PyErrSet {
    // SAFETY: attached; `key` is live; KeyError(key), as dict raises.
    unsafe { sys::PyErr_SetObject(sys::PyExc_KeyError, key) };
    PyErrSet
}

// ------------------------------------------------------------ methods

/// `d.__setitem__(key, value)` called as a method (`d[key] = value` goes
/// through the slot, `DictState::setitem`, directly).
pub(super) fn m_setitem(this: D, args: Args) -> PyResult<()> {
    arity("__setitem__", args, 2)?;
    DictState::setitem(this, args[0], Some(args[1]))
}

pub(super) fn m_get(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    if args.is_empty() || args.len() > 2 {
        return Err(ffi::raise(
            Exc::TypeError,
            "get() takes 1 or 2 arguments (key, default=None)",
        ));
    }
    let mut key = Key::new(args[0])?;
    match lookup(this.get(), &mut key)? {
        Some(v) => Ok(v.into_ptr()),
        // SAFETY: live argument.
        None if args.len() == 2 => Ok(unsafe { sys::Py_NewRef(args[1]) }),
        None => Ok(ffi::none()),
    }
}

pub(super) fn m_pop(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    if args.is_empty() || args.len() > 2 {
        return Err(ffi::raise(
            Exc::TypeError,
            "pop() takes 1 or 2 arguments (key[, default])",
        ));
    }
    not_busy(this.as_ptr())?;
    let mut key = Key::new(args[0])?;
    match take(this.get(), &mut key)? {
        Some(v) => Ok(v.into_ptr()),
        // SAFETY: live argument.
        None if args.len() == 2 => Ok(unsafe { sys::Py_NewRef(args[1]) }),
        None => Err(key_error(args[0])),
    }
}

pub(super) fn m_setdefault(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    if args.is_empty() || args.len() > 2 {
        return Err(ffi::raise(
            Exc::TypeError,
            "setdefault() takes 1 or 2 arguments (key, default=None)",
        ));
    }
    not_busy(this.as_ptr())?;
    let default = if args.len() == 2 {
        args[1]
    } else {
        // SAFETY: immortal.
        unsafe { sys::Py_None() }
    };
    let mut key = Key::new(args[0])?;
    let v = with_entry(this.get(), &mut key, |slot| {
        let absent = slot.is_none();
        let found = slot.map_or(default, |v| v.0);
        // SAFETY: attached; `found` (the stored value, alive under the lock,
        // or the live `default` argument) gets a reference for the caller.
        let out = unsafe { P::new_ref(found) };
        if absent {
            // SAFETY: attached; one more reference to `default`, for the map.
            (Act::Store(unsafe { P::new_ref(default) }), out)
        } else {
            (Act::Keep, out)
        }
    })?;
    // SAFETY: a reference we took.
    Ok(unsafe { v.owned() }.into_ptr())
}

pub(super) fn m_keys(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("keys", args, 0)?;
    let snap = snapshot(this.get());
    Ok(new_list(snap.into_iter().map(|(k, _)| k))?.into_ptr())
}

pub(super) fn m_values(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("values", args, 0)?;
    let snap = snapshot(this.get());
    Ok(new_list(snap.into_iter().map(|(_, v)| v))?.into_ptr())
}

pub(super) fn m_items(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("items", args, 0)?;
    let snap = snapshot(this.get());
    let pairs = snap
        .into_iter()
        .map(|(k, v)| pair(k, v))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(new_list(pairs.into_iter())?.into_ptr())
}

pub(super) fn m_clear(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("clear", args, 0)?;
    not_busy(this.as_ptr())?;
    let d = this.get();
    let mut all = Vec::new();
    for s in 0..d.map.shard_count() {
        let mut g = write_lock(&d.map, s);
        all.extend(g.drain());
    }
    for (k, v) in all {
        // SAFETY: taken out of the map, which owned these references.
        unsafe {
            drop(k.owned());
            drop(v.owned());
        }
    }
    Ok(ffi::none())
}

pub(super) fn m_to_dict(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("to_dict", args, 0)?;
    Ok(to_dict_of(this.get())?.into_ptr())
}

impl DictState {
    pub(super) fn new(
        _cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<DictState> {
        // SAFETY: attached; CPython's tp_new arguments.
        let initial =
            unsafe { optional_object_arg(args, kwargs, cstr!("initial"), cstr!("|O:AtomicDict"))? };
        let state = DictState {
            map: ShardedMap::new(),
        };
        // SAFETY: immortal.
        let none = unsafe { sys::Py_None() };
        if let Some(initial) = initial.filter(|&i| i != none) {
            // SAFETY: attached; `initial` is a live argument.
            let items = unsafe {
                if sys::PyDict_Check(initial) != 0 {
                    Owned::from_new(sys::PyDict_Items(initial))?
                } else if sys::PyObject_HasAttrString(initial, cstr!("keys").as_ptr()) != 0 {
                    Owned::from_new(sys::PyMapping_Items(initial))?
                } else {
                    Owned::from_borrowed(initial)
                }
            };
            // The state is not visible to Python yet (the shim allocates the
            // object after this returns); on error it is dropped, releasing
            // what was stored.
            for_pairs(items.as_ptr(), |k, v| store(&state, &mut Key::new(k)?, v))?;
        }
        Ok(state)
    }

    pub(super) fn len(this: D) -> PyResult<usize> {
        Ok(this.map.len())
    }

    pub(super) fn getitem(this: D, key: *mut sys::PyObject) -> PyResult<Owned> {
        let mut k = Key::new(key)?;
        match lookup(this.get(), &mut k)? {
            Some(v) => Ok(v),
            None => Err(key_error(key)),
        }
    }

    pub(super) fn setitem(
        this: D,
        key: *mut sys::PyObject,
        value: Option<*mut sys::PyObject>,
    ) -> PyResult<()> {
        not_busy(this.as_ptr())?;
        let mut k = Key::new(key)?;
        let d = this.get();
        match value {
            None => match take(d, &mut k)? {
                Some(_) => Ok(()),
                None => Err(key_error(key)),
            },
            Some(value) => store(d, &mut k, value),
        }
    }

    pub(super) fn contains(this: D, key: *mut sys::PyObject) -> PyResult<bool> {
        let mut k = Key::new(key)?;
        Ok(lookup(this.get(), &mut k)?.is_some())
    }

    pub(super) fn iter(this: D) -> PyResult<Owned> {
        let snap = snapshot(this.get());
        let keys = new_list(snap.into_iter().map(|(k, _)| k))?;
        // SAFETY: attached; a live list.
        unsafe { Owned::from_new(sys::PyObject_GetIter(keys.as_ptr())) }
    }

    pub(super) fn repr(this: D) -> PyResult<Owned> {
        let obj = this.as_ptr();
        // SAFETY: attached; `obj` live. Py_ReprEnter guards against a dict
        // that contains itself.
        unsafe {
            match sys::Py_ReprEnter(obj) {
                0 => {}
                r if r > 0 => return ffi::new_str("AtomicDict({...})"),
                _ => return Err(PyErrSet),
            }
            let r = (|| {
                let d = to_dict_of(this.get())?;
                let inner = Owned::from_new(sys::PyObject_Repr(d.as_ptr()))?;
                let s = ffi::str_utf8(inner.as_ptr())?;
                ffi::new_str(&format!("AtomicDict({s})"))
            })();
            sys::Py_ReprLeave(obj);
            r
        }
    }
}
