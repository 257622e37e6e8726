//! `AtomicInt` and `AtomicBool`: owner-free atomics shared by every
//! interpreter and thread (seed 004), over `crossinterp_core::atomic`.
//!
//! Each interpreter holding one has its own Python object over the same word;
//! the object's field never changes after creation, so free-threaded builds
//! need no lock around it. Overflow raises `OverflowError` and changes nothing.

use super::Entry;
use crate::ffi::args::{arg_bool, arity, optional_object_arg, Args};
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::runtime;
use crate::xi::{Converter, Crosses, Shared};
use crossinterp_core::atomic::{AtomicFlag, AtomicInt};
use crossinterp_core::sync::Arc;
use std::ffi::c_int;

/// The value of an `AtomicInt` object: the shared word. Owned by the object
/// (of one interpreter); the word itself by no interpreter.
pub struct PyAtomicInt(AtomicInt);

/// The value of an `AtomicBool` object.
pub struct PyAtomicBool(AtomicFlag);

/// An `int` argument (not `bool`) as i64: `TypeError` / `OverflowError`.
#[inline(always)]
fn to_i64(args: Args, i: usize, what: &str) -> PyResult<i64> {
    let obj = args[i];
    // SAFETY: attached; `Args` holds live borrowed arguments; an exact `int`
    // has the `PyLongObject` layout `long_compact_value` reads.
    unsafe {
        // The common case first: an exact small int (`add(1)`), one type
        // compare and one tag read.
        if sys::Py_TYPE(obj) == std::ptr::addr_of_mut!(sys::PyLong_Type) {
            if let Some(v) = ffi::capi::long_compact_value(obj) {
                return Ok(v);
            }
        }
        if sys::PyLong_Check(obj) == 0 || sys::PyBool_Check(obj) != 0 {
            return Err(ffi::raise(
                Exc::TypeError,
                &format!("{what} must be an int, not {}", crate::xi::type_name(obj)),
            ));
        }
        // The common small argument (`add(1)`) without the call.
        if let Some(v) = ffi::capi::long_compact_value(obj) {
            return Ok(v);
        }
        let v = sys::PyLong_AsLongLong(obj);
        if v == -1 && !sys::PyErr_Occurred().is_null() {
            return Err(PyErrSet);
        }
        Ok(v)
    }
}

#[cold]
#[inline(never)]
fn overflow(op: &str, a: i64, n: i64) -> PyErrSet {
    ffi::raise(
        Exc::OverflowError,
        &format!("AtomicInt overflow: {a} {op} {n} does not fit in a signed 64-bit integer; the value is unchanged"),
    )
}

/// The optional `n` argument (default 1).
#[inline(always)]
fn step(args: Args, name: &str) -> PyResult<i64> {
    match args.len() {
        0 => Ok(1),
        1 => to_i64(args, 0, "n"),
        _ => Err(ffi::raise(
            Exc::TypeError,
            &format!("{name}() takes at most 1 argument"),
        )),
    }
}

// Inlined into each caller: the hot path of inc()/add() is one CAS.
#[inline(always)]
fn add_op(a: &AtomicInt, n: i64, sub: bool) -> PyResult<(i64, i64)> {
    let r = if sub { a.fetch_sub(n) } else { a.fetch_add(n) };
    match r {
        Ok(old) => Ok((old, if sub { old - n } else { old + n })),
        Err(_) => Err(overflow(if sub { "-" } else { "+" }, a.get(), n)),
    }
}

type I<'a> = This<'a, PyAtomicInt>;
type B<'a> = This<'a, PyAtomicBool>;

impl PyAtomicInt {
    fn get(this: I) -> PyResult<i64> {
        Ok(this.0.get())
    }
    fn set(this: I, args: Args) -> PyResult<()> {
        arity("set", args, 1)?;
        this.0.set(to_i64(args, 0, "value")?);
        Ok(())
    }
    fn add(this: I, args: Args) -> PyResult<i64> {
        Ok(add_op(&this.0, step(args, "add")?, false)?.1)
    }
    fn sub(this: I, args: Args) -> PyResult<i64> {
        Ok(add_op(&this.0, step(args, "sub")?, true)?.1)
    }
    fn fetch_add(this: I, args: Args) -> PyResult<i64> {
        Ok(add_op(&this.0, step(args, "fetch_add")?, false)?.0)
    }
    fn fetch_sub(this: I, args: Args) -> PyResult<i64> {
        Ok(add_op(&this.0, step(args, "fetch_sub")?, true)?.0)
    }
    fn inc(this: I) -> PyResult<i64> {
        Ok(add_op(&this.0, 1, false)?.1)
    }
    fn dec(this: I) -> PyResult<i64> {
        Ok(add_op(&this.0, 1, true)?.1)
    }
    fn get_and_set(this: I, args: Args) -> PyResult<i64> {
        arity("get_and_set", args, 1)?;
        Ok(this.0.swap(to_i64(args, 0, "value")?))
    }
    fn compare_and_set(this: I, args: Args) -> PyResult<bool> {
        arity("compare_and_set", args, 2)?;
        let (e, n) = (to_i64(args, 0, "expected")?, to_i64(args, 1, "new")?);
        Ok(this.0.compare_and_set(e, n))
    }
    /// `update(fn)`: replace the value with `fn(old)` in a compare-and-set
    /// loop (`fn` may run more than once under contention); returns the new
    /// value.
    fn update(this: I, args: Args) -> PyResult<i64> {
        arity("update", args, 1)?;
        let f = args[0];
        // SAFETY: attached; live argument.
        if unsafe { sys::PyCallable_Check(f) } == 0 {
            return Err(ffi::raise(Exc::TypeError, "update() expects a callable"));
        }
        let mut new_value = 0;
        this.0.fetch_update(|old| -> PyResult<i64> {
            let o = ffi::new_int(old)?;
            // SAFETY: attached; `f` and `o` are live.
            let r = unsafe { Owned::from_new(sys::PyObject_CallOneArg(f, o.as_ptr()))? };
            new_value = to_i64(&[r.as_ptr()], 0, "update()'s function result")?;
            Ok(new_value)
        })?;
        Ok(new_value)
    }

    fn new(
        _cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<PyAtomicInt> {
        // SAFETY: attached; CPython's tp_new arguments.
        let value = unsafe {
            optional_object_arg(
                args,
                kwargs,
                crate::cstr!("value"),
                crate::cstr!("|O:AtomicInt"),
            )?
        };
        let v = match value {
            None => 0,
            Some(v) => to_i64(&[v], 0, "value")?,
        };
        Ok(PyAtomicInt(AtomicInt::new(v)))
    }
    fn index(this: I) -> PyResult<i64> {
        Ok(this.0.get())
    }
    fn truth(this: I) -> PyResult<bool> {
        Ok(this.0.get() != 0)
    }
    fn iadd(slf: *mut sys::PyObject, other: *mut sys::PyObject) -> PyResult<Owned> {
        Self::inplace(slf, other, false)
    }
    fn isub(slf: *mut sys::PyObject, other: *mut sys::PyObject) -> PyResult<Owned> {
        Self::inplace(slf, other, true)
    }
    fn inplace(slf: *mut sys::PyObject, other: *mut sys::PyObject, sub: bool) -> PyResult<Owned> {
        // SAFETY: in-place slots are called on the left operand, which is
        // an AtomicInt (CPython tries the left operand's in-place slot only).
        let this = unsafe { I::from_ptr(slf) };
        add_op(&this.0, to_i64(&[other], 0, "operand")?, sub)?;
        Ok(this.to_owned())
    }
    fn richcompare(this: I, other: *mut sys::PyObject, op: c_int) -> PyResult<*mut sys::PyObject> {
        let x = this.0.get();
        let rec = runtime::current()?;
        // SAFETY: attached; `other` is a live argument.
        let Some(other) = (unsafe { rec.types.downcast::<PyAtomicInt>(other) }) else {
            // Anything else compares as the int this holds would (floats,
            // Fractions...; NotImplemented for the rest).
            let lhs = ffi::new_int(x)?;
            // SAFETY: attached; live objects.
            return unsafe { Ok(sys::PyObject_RichCompare(lhs.as_ptr(), other, op)) };
        };
        let y = other.0.get();
        let r = match op {
            sys::Py_LT => x < y,
            sys::Py_LE => x <= y,
            sys::Py_EQ => x == y,
            sys::Py_NE => x != y,
            sys::Py_GT => x > y,
            _ => x >= y,
        };
        Ok(if r {
            ffi::bool_true()
        } else {
            ffi::bool_false()
        })
    }
    fn repr(this: I) -> PyResult<String> {
        Ok(format!("AtomicInt({})", this.0.get()))
    }
}

crate::native_class! {
    PyAtomicInt {
        name: "crossinterp.AtomicInt",
        attr: "AtomicInt",
        doc: "AtomicInt(value=0)\n--\n\nA signed 64-bit integer shared by every thread and interpreter, updated atomically. Owned by no interpreter: pass it to others and all see the same counter. Overflow raises OverflowError and leaves the value unchanged. `a += n` and `a -= n` are atomic.",
        flags: 0,
        methods: [
            (noargs, "get", "", PyAtomicInt::get, "get() -> int"),
            (fast, "set", ", value, /", PyAtomicInt::set, "set(value) -> None"),
            (fast, "add", ", n=1, /", PyAtomicInt::add, "add(n=1) -> int: add atomically, return the new value"),
            (fast, "sub", ", n=1, /", PyAtomicInt::sub, "sub(n=1) -> int: subtract atomically, return the new value"),
            (fast, "fetch_add", ", n=1, /", PyAtomicInt::fetch_add, "fetch_add(n=1) -> int: add atomically, return the old value"),
            (fast, "fetch_sub", ", n=1, /", PyAtomicInt::fetch_sub, "fetch_sub(n=1) -> int: subtract atomically, return the old value"),
            (noargs, "inc", "", PyAtomicInt::inc, "inc() -> int: add 1, return the new value"),
            (noargs, "dec", "", PyAtomicInt::dec, "dec() -> int: subtract 1, return the new value"),
            (fast, "get_and_set", ", value, /", PyAtomicInt::get_and_set, "get_and_set(value) -> int: store, return the old value"),
            (fast, "compare_and_set", ", expected, new, /", PyAtomicInt::compare_and_set, "compare_and_set(expected, new) -> bool"),
            (fast, "update", ", fn, /", PyAtomicInt::update, "update(fn) -> int: store fn(old) atomically (fn may be retried), return the new value"),
        ],
        getset: [],
        slots: [
            (new, PyAtomicInt::new),
            (repr, PyAtomicInt::repr),
            (richcompare, PyAtomicInt::richcompare),
            (hash_not_implemented, none),
            (nb_index, PyAtomicInt::index),
            (nb_int, PyAtomicInt::index),
            (bool, PyAtomicInt::truth),
            (nb_inplace_add, PyAtomicInt::iadd),
            (nb_inplace_subtract, PyAtomicInt::isub),
        ],
    }
}

impl PyAtomicBool {
    fn get(this: B) -> PyResult<bool> {
        Ok(this.0.get())
    }
    fn set(this: B, args: Args) -> PyResult<()> {
        arity("set", args, 1)?;
        this.0.set(arg_bool(args, 0)?);
        Ok(())
    }
    fn get_and_set(this: B, args: Args) -> PyResult<bool> {
        arity("get_and_set", args, 1)?;
        Ok(this.0.swap(arg_bool(args, 0)?))
    }
    fn compare_and_set(this: B, args: Args) -> PyResult<bool> {
        arity("compare_and_set", args, 2)?;
        Ok(this
            .0
            .compare_and_set(arg_bool(args, 0)?, arg_bool(args, 1)?))
    }
    fn toggle(this: B) -> PyResult<bool> {
        Ok(!this.0.toggle())
    }
    fn new(
        _cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<PyAtomicBool> {
        let mut value: c_int = 0;
        let kwlist: [*const std::ffi::c_char; 2] =
            [crate::cstr!("value").as_ptr(), std::ptr::null()];
        // SAFETY: attached; "|p" fills an int.
        if unsafe {
            sys::PyArg_ParseTupleAndKeywords(
                args,
                kwargs,
                crate::cstr!("|p:AtomicBool").as_ptr(),
                kwlist.as_ptr() as _,
                &mut value as *mut c_int,
            )
        } == 0
        {
            return Err(PyErrSet);
        }
        Ok(PyAtomicBool(AtomicFlag::new(value != 0)))
    }
    fn truth(this: B) -> PyResult<bool> {
        Ok(this.0.get())
    }
    fn repr(this: B) -> PyResult<String> {
        Ok(format!(
            "AtomicBool({})",
            if this.0.get() { "True" } else { "False" }
        ))
    }
}

crate::native_class! {
    PyAtomicBool {
        name: "crossinterp.AtomicBool",
        attr: "AtomicBool",
        doc: "AtomicBool(value=False)\n--\n\nA boolean shared by every thread and interpreter, updated atomically.",
        flags: 0,
        methods: [
            (noargs, "get", "", PyAtomicBool::get, "get() -> bool"),
            (fast, "set", ", value, /", PyAtomicBool::set, "set(value) -> None"),
            (fast, "get_and_set", ", value, /", PyAtomicBool::get_and_set, "get_and_set(value) -> bool: store, return the old value"),
            (fast, "compare_and_set", ", expected, new, /", PyAtomicBool::compare_and_set, "compare_and_set(expected, new) -> bool"),
            (noargs, "toggle", "", PyAtomicBool::toggle, "toggle() -> bool: flip, return the new value"),
        ],
        getset: [],
        slots: [
            (new, PyAtomicBool::new),
            (repr, PyAtomicBool::repr),
            (hash_not_implemented, none),
            (bool, PyAtomicBool::truth),
        ],
    }
}

// ------------------------------------------------------------------ crossing

#[derive(Debug)]
struct SharedInt(AtomicInt);

impl Shared for SharedInt {
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        runtime::new_instance(PyAtomicInt(self.0.clone()))
    }
}

#[derive(Debug)]
struct SharedBool(AtomicFlag);

impl Shared for SharedBool {
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        runtime::new_instance(PyAtomicBool(self.0.clone()))
    }
}

impl Crosses for PyAtomicInt {
    fn crossing(this: I) -> PyResult<Arc<dyn Shared>> {
        Ok(Arc::new(SharedInt(this.0.clone())))
    }
}

impl Crosses for PyAtomicBool {
    fn crossing(this: B) -> PyResult<Arc<dyn Shared>> {
        Ok(Arc::new(SharedBool(this.0.clone())))
    }
}

static INT_XI: Converter = Converter::class::<PyAtomicInt>();
static BOOL_XI: Converter = Converter::class::<PyAtomicBool>();

/// `AtomicInt` and `AtomicBool`: shared by reference (the same word).
pub const ENTRY: Entry = Entry {
    classes: &[PyAtomicInt::DEF, PyAtomicBool::DEF],
    hook: None,
    converters: &[&INT_XI, &BOOL_XI],
    fork_hold: None,
};
