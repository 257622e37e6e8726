//! `AtomicInt` and `AtomicBool`: owner-free atomics shared by every
//! interpreter and thread (seed 004), over `crossinterp_core::atomic`.
//!
//! Each interpreter holding one has its own Python object over the same word;
//! the object's field never changes after creation, so free-threaded builds
//! need no lock around it. Overflow raises `OverflowError` and changes nothing.

use crate::common::{alloc_native, arity, dealloc_native, native_ref, Args, Native};
use crate::cstr;
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::{method_fn, noargs_fn};
use crossinterp_core::atomic::{AtomicFlag, AtomicInt};
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

/// An `int` argument (not `bool`) as i64: `TypeError` / `OverflowError`.
fn to_i64(args: Args, i: usize, what: &str) -> PyResult<i64> {
    let obj = args[i];
    // SAFETY: attached; `Args` holds live borrowed arguments.
    unsafe {
        if sys::PyLong_Check(obj) == 0 || sys::PyBool_Check(obj) != 0 {
            return Err(ffi::raise(
                Exc::TypeError,
                &format!("{what} must be an int, not {}", crate::xi::type_name(obj)),
            ));
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
    // SAFETY: immutable static.
    ffi::raise_class(
        &unsafe { Owned::from_borrowed(sys::PyExc_OverflowError) },
        &format!("AtomicInt overflow: {a} {op} {n} does not fit in a signed 64-bit integer; the value is unchanged"),
    )
}

fn int(v: i64) -> PyResult<*mut sys::PyObject> {
    Ok(ffi::new_int(v)?.into_ptr())
}

fn boolean(v: bool) -> PyResult<*mut sys::PyObject> {
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(v as _) })
}

/// The optional `n` argument (default 1).
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

/// The counter of `slf`, for the AtomicInt type's own methods.
fn this_int<'a>(slf: *mut sys::PyObject) -> &'a AtomicInt {
    // SAFETY: CPython calls a type's methods with an instance of the type as
    // `slf`, initialized at creation and alive for the call.
    unsafe { native_ref::<AtomicInt>(slf) }
}

/// The flag of `slf`, for the AtomicBool type's own methods.
fn this_flag<'a>(slf: *mut sys::PyObject) -> &'a AtomicFlag {
    // SAFETY: as in `this_int`.
    unsafe { native_ref::<AtomicFlag>(slf) }
}

fn i_get(slf: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    int(this_int(slf).get())
}
fn i_set(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("set", args, 1)?;
    let v = to_i64(args, 0, "value")?;
    this_int(slf).set(v);
    Ok(ffi::none())
}
fn i_add(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    int(add_op(this_int(slf), step(args, "add")?, false)?.1)
}
fn i_sub(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    int(add_op(this_int(slf), step(args, "sub")?, true)?.1)
}
fn i_fetch_add(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    int(add_op(this_int(slf), step(args, "fetch_add")?, false)?.0)
}
fn i_fetch_sub(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    int(add_op(this_int(slf), step(args, "fetch_sub")?, true)?.0)
}
fn i_inc(slf: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    int(add_op(this_int(slf), 1, false)?.1)
}
fn i_dec(slf: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    int(add_op(this_int(slf), 1, true)?.1)
}
fn i_get_and_set(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("get_and_set", args, 1)?;
    let v = to_i64(args, 0, "value")?;
    int(this_int(slf).swap(v))
}
fn i_cas(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("compare_and_set", args, 2)?;
    let (e, n) = (to_i64(args, 0, "expected")?, to_i64(args, 1, "new")?);
    boolean(this_int(slf).compare_and_set(e, n))
}
/// `update(fn)`: replace the value with `fn(old)` in a compare-and-set loop
/// (`fn` may run more than once under contention); returns the new value.
fn i_update(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("update", args, 1)?;
    let f = args[0];
    // SAFETY: attached; live argument.
    if unsafe { sys::PyCallable_Check(f) } == 0 {
        return Err(ffi::raise(Exc::TypeError, "update() expects a callable"));
    }
    let a = this_int(slf);
    let mut new_value = 0;
    a.fetch_update(|old| -> PyResult<i64> {
        let o = ffi::new_int(old)?;
        // SAFETY: attached; `f` and `o` are live.
        let r = unsafe { Owned::from_new(sys::PyObject_CallOneArg(f, o.as_ptr()))? };
        new_value = to_i64(&[r.as_ptr()], 0, "update()'s function result")?;
        Ok(new_value)
    })?;
    int(new_value)
}

noargs_fn!(py_i_get => i_get);
method_fn!(py_i_set => i_set);
method_fn!(py_i_add => i_add);
method_fn!(py_i_sub => i_sub);
method_fn!(py_i_fetch_add => i_fetch_add);
method_fn!(py_i_fetch_sub => i_fetch_sub);
noargs_fn!(py_i_inc => i_inc);
noargs_fn!(py_i_dec => i_dec);
method_fn!(py_i_get_and_set => i_get_and_set);
method_fn!(py_i_cas => i_cas);
method_fn!(py_i_update => i_update);

fn b_get(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("get", args, 0)?;
    boolean(this_flag(slf).get())
}
fn truth(args: Args, i: usize) -> PyResult<bool> {
    crate::common::arg_bool(args, i)
}
fn b_set(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("set", args, 1)?;
    this_flag(slf).set(truth(args, 0)?);
    Ok(ffi::none())
}
fn b_get_and_set(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("get_and_set", args, 1)?;
    boolean(this_flag(slf).swap(truth(args, 0)?))
}
fn b_cas(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("compare_and_set", args, 2)?;
    boolean(this_flag(slf).compare_and_set(truth(args, 0)?, truth(args, 1)?))
}
fn b_toggle(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("toggle", args, 0)?;
    boolean(!this_flag(slf).toggle())
}

method_fn!(py_b_get => b_get);
method_fn!(py_b_set => b_set);
method_fn!(py_b_get_and_set => b_get_and_set);
method_fn!(py_b_cas => b_cas);
method_fn!(py_b_toggle => b_toggle);

unsafe extern "C" fn int_new(
    cls: *mut sys::PyTypeObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: attached; CPython's tp_new arguments.
        let value = unsafe {
            crate::common::optional_object_arg(args, kwargs, cstr!("value"), cstr!("|O:AtomicInt"))?
        }
        .unwrap_or(null_mut());
        let v = if value.is_null() {
            0
        } else {
            to_i64(&[value], 0, "value")?
        };
        // SAFETY: `cls` is AtomicInt.
        Ok(unsafe { alloc_native(cls, AtomicInt::new(v))? }.into_ptr())
    })
}

unsafe extern "C" fn bool_new(
    cls: *mut sys::PyTypeObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        let mut value: c_int = 0;
        let kwlist: [*const std::ffi::c_char; 2] = [cstr!("value").as_ptr(), std::ptr::null()];
        // SAFETY: attached; "|p" fills an int.
        if unsafe {
            sys::PyArg_ParseTupleAndKeywords(
                args,
                kwargs,
                cstr!("|p:AtomicBool").as_ptr(),
                kwlist.as_ptr() as _,
                &mut value as *mut c_int,
            )
        } == 0
        {
            return Err(PyErrSet);
        }
        // SAFETY: `cls` is AtomicBool.
        Ok(unsafe { alloc_native(cls, AtomicFlag::new(value != 0))? }.into_ptr())
    })
}

unsafe extern "C" fn int_index(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    // SAFETY: `slf` is an AtomicInt.
    ffi::trampoline(|| int(unsafe { native_ref::<AtomicInt>(slf) }.get()))
}

unsafe extern "C" fn int_bool(slf: *mut sys::PyObject) -> c_int {
    // SAFETY: `slf` is an AtomicInt.
    (unsafe { native_ref::<AtomicInt>(slf) }.get() != 0) as c_int
}

unsafe extern "C" fn int_iadd(
    slf: *mut sys::PyObject,
    other: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is an AtomicInt (in-place slots are called on the left operand).
        add_op(
            unsafe { native_ref::<AtomicInt>(slf) },
            to_i64(&[other], 0, "operand")?,
            false,
        )?;
        // SAFETY: `slf` is live.
        Ok(unsafe { sys::Py_NewRef(slf) })
    })
}

unsafe extern "C" fn int_isub(
    slf: *mut sys::PyObject,
    other: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: as in `int_iadd`.
        add_op(
            unsafe { native_ref::<AtomicInt>(slf) },
            to_i64(&[other], 0, "operand")?,
            true,
        )?;
        // SAFETY: `slf` is live.
        Ok(unsafe { sys::Py_NewRef(slf) })
    })
}

unsafe extern "C" fn int_richcompare(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    op: c_int,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `a` is an AtomicInt; `b` is checked.
        unsafe {
            let x = native_ref::<AtomicInt>(a).get();
            let y = if crate::module::is_ours(b, cstr!("AtomicInt"))? {
                native_ref::<AtomicInt>(b).get()
            } else {
                // Anything else compares as the int this holds would
                // (floats, Fractions...; NotImplemented for the rest).
                let lhs = ffi::new_int(x)?;
                return Owned::from_new(sys::PyObject_RichCompare(lhs.as_ptr(), b, op))
                    .map(Owned::into_ptr);
            };
            let r = match op {
                sys::Py_LT => x < y,
                sys::Py_LE => x <= y,
                sys::Py_EQ => x == y,
                sys::Py_NE => x != y,
                sys::Py_GT => x > y,
                _ => x >= y,
            };
            boolean(r)
        }
    })
}

unsafe extern "C" fn int_repr(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    // SAFETY: `slf` is an AtomicInt.
    ffi::trampoline(|| {
        Ok(ffi::new_str(&format!(
            "AtomicInt({})",
            unsafe { native_ref::<AtomicInt>(slf) }.get()
        ))?
        .into_ptr())
    })
}

unsafe extern "C" fn bool_bool(slf: *mut sys::PyObject) -> c_int {
    // SAFETY: `slf` is an AtomicBool.
    unsafe { native_ref::<AtomicFlag>(slf) }.get() as c_int
}

unsafe extern "C" fn bool_repr(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    // SAFETY: `slf` is an AtomicBool.
    ffi::trampoline(|| {
        let v = if unsafe { native_ref::<AtomicFlag>(slf) }.get() {
            "True"
        } else {
            "False"
        };
        Ok(ffi::new_str(&format!("AtomicBool({v})"))?.into_ptr())
    })
}

use crate::method_def as m;

/// A METH_NOARGS method (see `noargs_fn!`).
macro_rules! m0 {
    ($name:literal, $f:ident, $doc:literal) => {
        sys::PyMethodDef {
            ml_name: cstr!($name).as_ptr(),
            ml_meth: sys::PyMethodDefPointer { PyCFunction: $f },
            ml_flags: sys::METH_NOARGS,
            ml_doc: cstr!($doc).as_ptr(),
        }
    };
}

static mut INT_METHODS: [sys::PyMethodDef; 12] = [
    m0!("get", py_i_get, "get() -> int"),
    m!("set", py_i_set, "set(value) -> None"),
    m!(
        "add",
        py_i_add,
        "add(n=1) -> int: add atomically, return the new value"
    ),
    m!(
        "sub",
        py_i_sub,
        "sub(n=1) -> int: subtract atomically, return the new value"
    ),
    m!(
        "fetch_add",
        py_i_fetch_add,
        "fetch_add(n=1) -> int: add atomically, return the old value"
    ),
    m!(
        "fetch_sub",
        py_i_fetch_sub,
        "fetch_sub(n=1) -> int: subtract atomically, return the old value"
    ),
    m0!("inc", py_i_inc, "inc() -> int: add 1, return the new value"),
    m0!(
        "dec",
        py_i_dec,
        "dec() -> int: subtract 1, return the new value"
    ),
    m!(
        "get_and_set",
        py_i_get_and_set,
        "get_and_set(value) -> int: store, return the old value"
    ),
    m!(
        "compare_and_set",
        py_i_cas,
        "compare_and_set(expected, new) -> bool"
    ),
    m!(
        "update",
        py_i_update,
        "update(fn) -> int: store fn(old) atomically (fn may be retried), return the new value"
    ),
    sys::PyMethodDef::zeroed(),
];

static mut BOOL_METHODS: [sys::PyMethodDef; 6] = [
    m!("get", py_b_get, "get() -> bool"),
    m!("set", py_b_set, "set(value) -> None"),
    m!(
        "get_and_set",
        py_b_get_and_set,
        "get_and_set(value) -> bool: store, return the old value"
    ),
    m!(
        "compare_and_set",
        py_b_cas,
        "compare_and_set(expected, new) -> bool"
    ),
    m!(
        "toggle",
        py_b_toggle,
        "toggle() -> bool: flip, return the new value"
    ),
    sys::PyMethodDef::zeroed(),
];

/// The shared integer of `obj`, if it is an `AtomicInt` of this interpreter.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn as_int(obj: *mut sys::PyObject) -> PyResult<Option<AtomicInt>> {
    // SAFETY: forwarded; when ours, `obj` is an AtomicInt.
    unsafe {
        Ok(if crate::module::is_ours(obj, cstr!("AtomicInt"))? {
            Some(native_ref::<AtomicInt>(obj).clone())
        } else {
            None
        })
    }
}

/// The shared flag of `obj`, if it is an `AtomicBool` of this interpreter.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn as_flag(obj: *mut sys::PyObject) -> PyResult<Option<AtomicFlag>> {
    // SAFETY: forwarded; when ours, `obj` is an AtomicBool.
    unsafe {
        Ok(if crate::module::is_ours(obj, cstr!("AtomicBool"))? {
            Some(native_ref::<AtomicFlag>(obj).clone())
        } else {
            None
        })
    }
}

/// An `AtomicInt` of the attached interpreter over `v`.
pub fn int_to_python(v: &AtomicInt) -> PyResult<Owned> {
    let tp = ffi::import_attr(cstr!("crossinterp._native"), cstr!("AtomicInt"))?;
    // SAFETY: this interpreter's AtomicInt type.
    unsafe { alloc_native(tp.as_ptr() as *mut sys::PyTypeObject, v.clone()) }
}

/// An `AtomicBool` of the attached interpreter over `v`.
pub fn flag_to_python(v: &AtomicFlag) -> PyResult<Owned> {
    let tp = ffi::import_attr(cstr!("crossinterp._native"), cstr!("AtomicBool"))?;
    // SAFETY: this interpreter's AtomicBool type.
    unsafe { alloc_native(tp.as_ptr() as *mut sys::PyTypeObject, v.clone()) }
}

/// Create this module's `AtomicInt` and `AtomicBool` heap types.
///
/// # Safety
/// Attached; `module` is our live module object (its exec slot).
pub unsafe fn add_types(module: *mut sys::PyObject) -> PyResult<()> {
    let mut int_slots = [
        sys::PyType_Slot { slot: sys::Py_tp_new, pfunc: int_new as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_dealloc, pfunc: dealloc_native::<AtomicInt> as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_repr, pfunc: int_repr as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_richcompare, pfunc: int_richcompare as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_hash, pfunc: sys::PyObject_HashNotImplemented as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_nb_index, pfunc: int_index as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_nb_int, pfunc: int_index as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_nb_bool, pfunc: int_bool as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_nb_inplace_add, pfunc: int_iadd as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_nb_inplace_subtract, pfunc: int_isub as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_methods, pfunc: std::ptr::addr_of_mut!(INT_METHODS) as *mut c_void },
        sys::PyType_Slot {
            slot: sys::Py_tp_doc,
            pfunc: cstr!("AtomicInt(value=0)\n--\n\nA signed 64-bit integer shared by every thread and interpreter, updated atomically. Owned by no interpreter: pass it to others and all see the same counter. Overflow raises OverflowError and leaves the value unchanged. `a += n` and `a -= n` are atomic.").as_ptr() as *mut c_void,
        },
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    let mut bool_slots = [
        sys::PyType_Slot { slot: sys::Py_tp_new, pfunc: bool_new as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_dealloc, pfunc: dealloc_native::<AtomicFlag> as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_repr, pfunc: bool_repr as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_hash, pfunc: sys::PyObject_HashNotImplemented as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_nb_bool, pfunc: bool_bool as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_methods, pfunc: std::ptr::addr_of_mut!(BOOL_METHODS) as *mut c_void },
        sys::PyType_Slot {
            slot: sys::Py_tp_doc,
            pfunc: cstr!("AtomicBool(value=False)\n--\n\nA boolean shared by every thread and interpreter, updated atomically.").as_ptr() as *mut c_void,
        },
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    let flags = sys::Py_TPFLAGS_DEFAULT | sys::Py_TPFLAGS_IMMUTABLETYPE;
    // SAFETY: the caller's contract; the slots match the layouts.
    unsafe {
        crate::common::add_heap_type(
            module,
            cstr!("crossinterp.AtomicInt"),
            cstr!("AtomicInt"),
            std::mem::size_of::<Native<AtomicInt>>(),
            flags,
            &mut int_slots,
        )?;
        crate::common::add_heap_type(
            module,
            cstr!("crossinterp.AtomicBool"),
            cstr!("AtomicBool"),
            std::mem::size_of::<Native<AtomicFlag>>(),
            flags,
            &mut bool_slots,
        )
    }
}
