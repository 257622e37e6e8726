//! `update`, `compare_and_set` and the `reduce*` family, with the "inside an
//! operation of this dict" guard ([`Busy`], module doc, rule 6).

use super::keys::{is_plain, Key, P};
use super::store::{merge, with_entry, Act};
use super::D;
use crate::cstr;
use crate::ffi::args::{arity, Args, KwArgs};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use std::cell::{Cell, RefCell};
use std::ptr::null_mut;

// ------------------------------------------------------------ "inside an op" marker

std::thread_local! {
    /// The dicts this thread is inside an `update`/`reduce*` of.
    static BUSY: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// `BUSY`'s length: lets the common case (0) skip the `RefCell`.
    static BUSY_N: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as inside an update of a dict until dropped.
pub(super) struct Busy(usize);

impl Busy {
    pub(super) fn enter(slf: *mut sys::PyObject) -> PyResult<Busy> {
        not_busy(slf)?;
        BUSY.with(|b| b.borrow_mut().push(slf as usize));
        BUSY_N.with(|n| n.set(n.get() + 1));
        Ok(Busy(slf as usize))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| {
            let mut b = b.borrow_mut();
            if let Some(i) = b.iter().rposition(|x| *x == self.0) {
                b.remove(i);
            }
        });
        BUSY_N.with(|n| n.set(n.get() - 1));
    }
}

/// `RuntimeError` if this thread is inside an `update`/`reduce*` of `slf`.
pub(super) fn not_busy(slf: *mut sys::PyObject) -> PyResult<()> {
    if BUSY_N.with(|n| n.get()) != 0 && BUSY.with(|b| b.borrow().contains(&(slf as usize))) {
        return Err(ffi::raise(
            ffi::Exc::RuntimeError,
            "AtomicDict mutated from inside its own update()/reduce() (its callback, or code \
             the callback triggered); return the new value from the callback instead",
        ));
    }
    Ok(())
}

pub(super) fn check_callable(f: *mut sys::PyObject, what: &str) -> PyResult<()> {
    // SAFETY: attached; live argument.
    if unsafe { sys::PyCallable_Check(f) } == 0 {
        // SAFETY: live argument.
        let tname = unsafe { crate::xi::type_name(f) };
        return Err(ffi::raise(
            Exc::TypeError,
            &format!("{what} must be callable, not {tname}"),
        ));
    }
    Ok(())
}

/// `update(key, fn, default=None)`.
pub(super) fn m_update(this: D, args: KwArgs) -> PyResult<*mut sys::PyObject> {
    let a = args.bind("update", [cstr!("key"), cstr!("fn"), cstr!("default")], 3)?;
    let (Some(k), Some(f)) = (a[0], a[1]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "update() missing required argument: update(key, fn, default=None)",
        ));
    };
    check_callable(f, "update()'s fn")?;
    // SAFETY: immortal.
    let default = a[2].unwrap_or(unsafe { sys::Py_None() });
    let _busy = Busy::enter(this.as_ptr())?;
    let mut key = Key::new(k)?;
    let new = merge(this.get(), &mut key, |cur| {
        let arg = cur.map_or(default, |c| c.as_ptr());
        // SAFETY: attached; `f` and `arg` are live.
        unsafe { Owned::from_new(sys::PyObject_CallOneArg(f, arg)) }
    })?;
    Ok(new.into_ptr())
}

/// `compare_and_set(key, expected, new)`.
pub(super) fn m_cas(this: D, args: KwArgs) -> PyResult<*mut sys::PyObject> {
    let a = args.bind(
        "compare_and_set",
        [cstr!("key"), cstr!("expected"), cstr!("new")],
        3,
    )?;
    let (Some(k), Some(expected), Some(new)) = (a[0], a[1], a[2]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "compare_and_set() takes exactly 3 arguments (key, expected, new)",
        ));
    };
    not_busy(this.as_ptr())?;
    let mut key = Key::new(k)?;
    let expected_plain = is_plain(expected, 0);
    let mut err = false;
    let ok = with_entry(this.get(), &mut key, |slot| {
        let Some(v) = slot else {
            return (Act::Keep, false);
        };
        let same = v.0 == expected
            || (expected_plain && is_plain(v.0, 0) && {
                // SAFETY: attached; both live and plain: no user code runs.
                match unsafe { sys::PyObject_RichCompareBool(v.0, expected, sys::Py_EQ) } {
                    1 => true,
                    0 => false,
                    _ => {
                        err = true;
                        false
                    }
                }
            });
        if same {
            // SAFETY: attached; `new` is a live argument.
            (Act::Store(unsafe { P::new_ref(new) }), true)
        } else {
            (Act::Keep, false)
        }
    })?;
    if err {
        return Err(PyErrSet);
    }
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(ok as _) })
}

/// Call `f(item_key, item_value)` for each `(key, value)` pair of `iterable`.
pub(super) fn for_pairs(
    iterable: *mut sys::PyObject,
    mut f: impl FnMut(*mut sys::PyObject, *mut sys::PyObject) -> PyResult<()>,
) -> PyResult<()> {
    // SAFETY: attached; `iterable` is a live borrowed argument.
    let iterable = unsafe { Owned::from_borrowed(iterable) };
    ffi::for_each(&iterable, |item| {
        // SAFETY: attached; `item` is live for the call; checked before use.
        unsafe {
            let t = if sys::PyTuple_CheckExact(item) != 0 {
                Owned::from_borrowed(item)
            } else {
                Owned::from_new(sys::PySequence_Tuple(item)).map_err(|_| {
                    sys::PyErr_Clear();
                    ffi::raise(Exc::TypeError, "expected an iterable of (key, value) pairs")
                })?
            };
            if sys::PyTuple_GET_SIZE(t.as_ptr()) != 2 {
                return Err(ffi::raise(
                    Exc::ValueError,
                    "expected an iterable of (key, value) pairs (an item is not a pair)",
                ));
            }
            f(
                sys::PyTuple_GET_ITEM(t.as_ptr(), 0),
                sys::PyTuple_GET_ITEM(t.as_ptr(), 1),
            )
        }
    })
}

/// `reduce(iterable, fn)`: aggregate locally with `fn(old, new)`, then merge
/// each distinct key with the compare-and-set loop.
pub(super) fn m_reduce(this: D, args: KwArgs) -> PyResult<*mut sys::PyObject> {
    let a = args.bind("reduce", [cstr!("iterable"), cstr!("fn")], 2)?;
    let (Some(iterable), Some(f)) = (a[0], a[1]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "reduce() takes exactly 2 arguments (iterable, fn)",
        ));
    };
    check_callable(f, "reduce()'s fn")?;
    let _busy = Busy::enter(this.as_ptr())?;
    let call2 = |x: *mut sys::PyObject, y: *mut sys::PyObject| -> PyResult<Owned> {
        let argv = [x, y];
        // SAFETY: attached; `f` and both arguments are live.
        unsafe { Owned::from_new(sys::PyObject_Vectorcall(f, argv.as_ptr(), 2, null_mut())) }
    };
    // SAFETY: attached.
    let local = unsafe { Owned::from_new(sys::PyDict_New())? };
    for_pairs(iterable, |k, v| {
        let mut old = null_mut();
        // SAFETY: attached; all live; `old` receives a new reference or NULL.
        unsafe {
            match sys::PyDict_GetItemRef(local.as_ptr(), k, &mut old) {
                -1 => Err(PyErrSet),
                0 => {
                    if sys::PyDict_SetItem(local.as_ptr(), k, v) < 0 {
                        return Err(PyErrSet);
                    }
                    Ok(())
                }
                _ => {
                    let old = Owned::from_new(old)?;
                    let new = call2(old.as_ptr(), v)?;
                    if sys::PyDict_SetItem(local.as_ptr(), k, new.as_ptr()) < 0 {
                        return Err(PyErrSet);
                    }
                    Ok(())
                }
            }
        }
    })?;
    let d = this.get();
    // SAFETY: attached; `local` is our private dict.
    let items = unsafe { Owned::from_new(sys::PyDict_Items(local.as_ptr()))? };
    // SAFETY: a list of 2-tuples we own.
    let n = unsafe { sys::PyList_Size(items.as_ptr()) };
    for i in 0..n {
        // SAFETY: in range; borrowed items of a list only we hold.
        let (k, v) = unsafe {
            let t = sys::PyList_GetItem(items.as_ptr(), i);
            (sys::PyTuple_GET_ITEM(t, 0), sys::PyTuple_GET_ITEM(t, 1))
        };
        let mut key = Key::new(k)?;
        merge(d, &mut key, |cur| match cur {
            Some(c) => call2(c.as_ptr(), v),
            // SAFETY: live (held by `items`).
            None => Ok(unsafe { Owned::from_borrowed(v) }),
        })?;
    }
    Ok(ffi::none())
}

/// A local sum: an i64 while it fits, else a Python object.
pub(super) enum Acc {
    Int(i64),
    Obj(Owned),
}

impl Acc {
    pub(super) fn to_object(&self) -> PyResult<Owned> {
        match self {
            Acc::Int(n) => ffi::new_int(*n),
            // SAFETY: live.
            Acc::Obj(o) => Ok(unsafe { Owned::from_borrowed(o.as_ptr()) }),
        }
    }

    /// `self + v`.
    pub(super) fn add(&mut self, v: *mut sys::PyObject) -> PyResult<()> {
        if let (Acc::Int(n), Some(x)) = (&*self, small_int(v)) {
            if let Some(s) = n.checked_add(x) {
                *self = Acc::Int(s);
                return Ok(());
            }
        }
        let cur = self.to_object()?;
        // SAFETY: attached; both live.
        *self = Acc::Obj(unsafe { Owned::from_new(sys::PyNumber_Add(cur.as_ptr(), v))? });
        Ok(())
    }
}

/// `obj` as an i64 if it is an exact int that fits.
pub(super) fn small_int(obj: *mut sys::PyObject) -> Option<i64> {
    // SAFETY: attached; `obj` live; type checked first.
    unsafe {
        if sys::PyLong_CheckExact(obj) == 0 {
            return None;
        }
        let mut overflow = 0;
        let v = sys::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        // An exact int cannot fail to convert other than by overflow.
        (overflow == 0).then_some(v)
    }
}

/// Local aggregation of sums per distinct key (first-seen order), then a merge
/// of each into the map. `each` feeds `(key, addend)` pairs to `add`.
pub(super) fn sum_into(
    this: D,
    each: impl FnOnce(&mut dyn FnMut(*mut sys::PyObject, Addend) -> PyResult<()>) -> PyResult<()>,
) -> PyResult<()> {
    let _busy = Busy::enter(this.as_ptr())?;
    // key -> index into `accs` (as an int object).
    // SAFETY: attached.
    let index = unsafe { Owned::from_new(sys::PyDict_New())? };
    let mut accs: Vec<(Owned, Acc)> = Vec::new();
    each(&mut |k, addend| {
        let mut idx = null_mut();
        // SAFETY: attached; all live; `idx` receives a new reference or NULL.
        let i = unsafe {
            match sys::PyDict_GetItemRef(index.as_ptr(), k, &mut idx) {
                -1 => return Err(PyErrSet),
                0 => {
                    let i = accs.len();
                    let io = ffi::new_int(i as i64)?;
                    if sys::PyDict_SetItem(index.as_ptr(), k, io.as_ptr()) < 0 {
                        return Err(PyErrSet);
                    }
                    accs.push((Owned::from_borrowed(k), Acc::Int(0)));
                    i
                }
                _ => {
                    let io = Owned::from_new(idx)?;
                    sys::PyLong_AsSsize_t(io.as_ptr()) as usize
                }
            }
        };
        let acc = &mut accs[i].1;
        match addend {
            Addend::One => match acc {
                Acc::Int(n) if *n < i64::MAX => {
                    *n += 1;
                    Ok(())
                }
                other => other.add(ffi::new_int(1)?.as_ptr()),
            },
            Addend::Obj(v) => acc.add(v),
        }
    })?;
    let d = this.get();
    for (k, acc) in accs {
        let mut key = Key::new(k.as_ptr())?;
        if let Acc::Int(n) = acc {
            // Fast path, one write-locked pass: absent or an exact int whose
            // sum fits in i64 -> store a new int made under the lock (an int
            // allocation runs no Python code and waits for nothing; see the
            // module doc, rule 2).
            let done = with_entry(d, &mut key, |slot| {
                let cur = match slot {
                    None => Some(0),
                    Some(v) => small_int(v.0),
                };
                match cur.and_then(|c| c.checked_add(n)) {
                    Some(sum) => {
                        // SAFETY: attached; returns a new reference or NULL
                        // with MemoryError set (reported after the unlock).
                        let o = unsafe { sys::PyLong_FromLongLong(sum) };
                        if o.is_null() {
                            (Act::Keep, Err(PyErrSet))
                        } else {
                            (Act::Store(P(o)), Ok(true))
                        }
                    }
                    None => (Act::Keep, Ok(false)),
                }
            })??;
            if done {
                continue;
            }
        }
        merge(d, &mut key, |cur| match cur {
            None => acc.to_object(),
            Some(c) => {
                if let (Some(x), Acc::Int(n)) = (small_int(c.as_ptr()), &acc) {
                    if let Some(s) = x.checked_add(*n) {
                        return ffi::new_int(s);
                    }
                }
                let a = acc.to_object()?;
                // SAFETY: attached; both live.
                unsafe { Owned::from_new(sys::PyNumber_Add(c.as_ptr(), a.as_ptr())) }
            }
        })?;
    }
    Ok(())
}

/// What one input of `reduce_sum`/`reduce_count` adds.
pub(super) enum Addend {
    One,
    Obj(*mut sys::PyObject),
}

pub(super) fn m_reduce_sum(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("reduce_sum", args, 1)?;
    sum_into(this, |add| {
        for_pairs(args[0], |k, v| add(k, Addend::Obj(v)))
    })?;
    Ok(ffi::none())
}

pub(super) fn m_reduce_count(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("reduce_count", args, 1)?;
    sum_into(this, |add| {
        // SAFETY: attached; `args[0]` is a live borrowed argument.
        let iterable = unsafe { Owned::from_borrowed(args[0]) };
        ffi::for_each(&iterable, |item| add(item, Addend::One))
    })?;
    Ok(ffi::none())
}
