//! Argument parsing for the generated shims' bodies: positional arity,
//! keyword binding, timeouts and truth values, and the detach-while-blocking
//! helper the blocking calls use.

use super::{raise, sys, Exc, PyErrSet, PyResult};
use std::time::{Duration, Instant};

/// The positional arguments of a METH_FASTCALL method (borrowed, alive for
/// the call).
pub type Args<'a> = &'a [*mut sys::PyObject];

/// The arguments of a `METH_FASTCALL | METH_KEYWORDS` method: positionals
/// followed by keyword values, with the tuple of keyword names.
#[derive(Clone, Copy)]
pub struct KwArgs<'a> {
    args: *const *mut sys::PyObject,
    nargs: sys::Py_ssize_t,
    kwnames: *mut sys::PyObject,
    _call: std::marker::PhantomData<&'a ()>,
}

impl KwArgs<'_> {
    /// # Safety
    /// Exactly what CPython passed to a `METH_FASTCALL | METH_KEYWORDS`
    /// function, alive for the call.
    pub unsafe fn new(
        args: *const *mut sys::PyObject,
        nargs: sys::Py_ssize_t,
        kwnames: *mut sys::PyObject,
    ) -> Self {
        KwArgs {
            args,
            nargs,
            kwnames,
            _call: std::marker::PhantomData,
        }
    }

    /// Bind to `names` (see [`bind`]): the first `npos` may come by
    /// position, all by keyword; missing ones are `None`.
    pub fn bind<const N: usize>(
        self,
        fname: &str,
        names: [&std::ffi::CStr; N],
        npos: usize,
    ) -> PyResult<[Option<*mut sys::PyObject>; N]> {
        // SAFETY: the constructor's contract.
        unsafe { bind(fname, self.args, self.nargs, self.kwnames, names, npos) }
    }
}

/// `TypeError` unless exactly `n` arguments were given. Inlined (the check is
/// on every method call's hot path); the error is built out of line.
#[inline]
pub fn arity(name: &str, args: Args, n: usize) -> PyResult<()> {
    if args.len() != n {
        return Err(arity_error(name, args.len(), n));
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn arity_error(name: &str, given: usize, n: usize) -> PyErrSet {
    raise(
        Exc::TypeError,
        &format!("{name}() takes exactly {n} argument(s) ({given} given)"),
    )
}

/// Argument `i` as a timeout: `None`, or a non-negative number of seconds.
pub fn arg_timeout(args: Args, i: usize) -> PyResult<Option<Duration>> {
    let obj = args[i];
    // SAFETY: attached; `Args` holds live borrowed arguments (see method_fn!).
    unsafe {
        if obj == sys::Py_None() {
            return Ok(None);
        }
        let v = sys::PyFloat_AsDouble(obj);
        if v == -1.0 && !sys::PyErr_Occurred().is_null() {
            return Err(PyErrSet);
        }
        if v.is_nan() || v < 0.0 {
            return Err(raise(
                Exc::ValueError,
                "timeout must be a non-negative number or None",
            ));
        }
        Ok(Some(
            Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX),
        ))
    }
}

/// Run `f` detached from the interpreter; `f` gets an "interrupted" hook that
/// briefly re-attaches to run signal handlers (true: an exception is set).
/// Every re-attach goes through the exit gate ([`super::interp::attach`]): a
/// thread blocked here when the process exits parks for good instead of
/// being ended by CPython inside our frames.
pub fn blocking<R>(f: impl FnOnce(&mut dyn FnMut() -> bool) -> R) -> R {
    let (_, iid) = super::interp::current();
    // SAFETY: entry points run attached; detaching returns our thread state.
    let ts = unsafe { sys::PyEval_SaveThread() };
    let mut interrupted = || {
        // SAFETY: re-attach our own thread state, check, detach again.
        unsafe {
            super::interp::attach(ts, iid, None);
            let r = sys::PyErr_CheckSignals() < 0;
            sys::PyEval_SaveThread();
            r
        }
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut interrupted)));
    // SAFETY: re-attach what we detached (through the exit gate: at process
    // exit this thread parks instead, see `interp::attach`).
    unsafe { super::interp::attach(ts, iid, None) };
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

pub fn deadline(block: bool, timeout: Option<Duration>) -> Option<Option<Instant>> {
    if !block {
        return None;
    }
    Some(timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future)))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 100)
}

/// Argument `i`'s truth value.
pub fn arg_bool(args: Args, i: usize) -> PyResult<bool> {
    // SAFETY: attached; `Args` holds live borrowed arguments (see method_fn!).
    match unsafe { sys::PyObject_IsTrue(args[i]) } {
        -1 => Err(PyErrSet),
        v => Ok(v != 0),
    }
}

/// Bind `METH_FASTCALL | METH_KEYWORDS` arguments to `names`: the first
/// `npos` may come by position, all by keyword. Missing ones are `None`.
/// `TypeError` for too many positionals, unknown or repeated keywords.
///
/// # Safety
/// `args`/`nargs`/`kwnames` are exactly what CPython passed to a
/// `METH_FASTCALL | METH_KEYWORDS` function (`nargs` positionals followed by
/// one value per name in the `kwnames` tuple, which may be NULL).
pub unsafe fn bind<const N: usize>(
    fname: &str,
    args: *const *mut sys::PyObject,
    nargs: sys::Py_ssize_t,
    kwnames: *mut sys::PyObject,
    names: [&std::ffi::CStr; N],
    npos: usize,
) -> PyResult<[Option<*mut sys::PyObject>; N]> {
    let mut out = [None; N];
    // SAFETY: forwarded contract.
    let nargs = unsafe { sys::PyVectorcall_NARGS(nargs as usize) } as usize;
    if nargs > npos {
        return Err(raise(
            Exc::TypeError,
            &format!("{fname}() takes at most {npos} positional argument(s) ({nargs} given)"),
        ));
    }
    for (i, slot) in out.iter_mut().enumerate().take(nargs) {
        // SAFETY: `i < nargs`: a positional argument.
        *slot = Some(unsafe { *args.add(i) });
    }
    if kwnames.is_null() {
        return Ok(out);
    }
    // SAFETY: `kwnames` is a tuple of str; values follow the positionals.
    unsafe {
        let nkw = sys::PyTuple_Size(kwnames) as usize;
        for k in 0..nkw {
            let key = sys::PyTuple_GetItem(kwnames, k as sys::Py_ssize_t);
            let Some(i) = names
                .iter()
                .position(|n| sys::PyUnicode_CompareWithASCIIString(key, n.as_ptr()) == 0)
            else {
                let k = super::str_utf8(key).unwrap_or("?");
                return Err(raise(
                    Exc::TypeError,
                    &format!("{fname}() got an unexpected keyword argument '{k}'"),
                ));
            };
            if out[i].is_some() {
                return Err(raise(
                    Exc::TypeError,
                    &format!(
                        "{fname}() got multiple values for argument '{}'",
                        names[i].to_string_lossy()
                    ),
                ));
            }
            out[i] = Some(*args.add(nargs + k));
        }
    }
    Ok(out)
}

/// The one optional argument of a `tp_new` taking `(kw=<default>)`, e.g.
/// `AtomicInt(value=0)`: `None` when absent. `format` is `"|O:TypeName"`.
///
/// # Safety
/// Attached; `args` is a live tuple and `kwargs` NULL or a live dict, as
/// CPython passes them to `tp_new`.
pub unsafe fn optional_object_arg(
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
    kw: &std::ffi::CStr,
    format: &std::ffi::CStr,
) -> PyResult<Option<*mut sys::PyObject>> {
    let mut obj: *mut sys::PyObject = std::ptr::null_mut();
    let kwlist: [*const std::ffi::c_char; 2] = [kw.as_ptr(), std::ptr::null()];
    // SAFETY: forwarded; "|O" fills a borrowed object pointer; `kwlist` is
    // NULL-terminated.
    let ok = unsafe {
        sys::PyArg_ParseTupleAndKeywords(
            args,
            kwargs,
            format.as_ptr(),
            kwlist.as_ptr() as _,
            &mut obj as *mut *mut sys::PyObject,
        )
    };
    if ok == 0 {
        return Err(PyErrSet);
    }
    Ok((!obj.is_null()).then_some(obj))
}

/// A timeout argument: absent or `None` → no timeout; else a non-negative
/// real number of seconds (`TypeError` for `bool` and non-numbers,
/// `ValueError` for negative or NaN).
pub fn timeout_of(obj: Option<*mut sys::PyObject>) -> PyResult<Option<Duration>> {
    let Some(obj) = obj else { return Ok(None) };
    // SAFETY: attached; `obj` is a live argument bound by `bind`.
    unsafe {
        if sys::PyBool_Check(obj) != 0 {
            return Err(raise(
                Exc::TypeError,
                "timeout must be a number or None, not bool",
            ));
        }
    }
    arg_timeout(&[obj], 0)
}

/// A truth-value argument with a default.
pub fn bool_of(obj: Option<*mut sys::PyObject>, default: bool) -> PyResult<bool> {
    match obj {
        None => Ok(default),
        Some(o) => arg_bool(&[o], 0),
    }
}

/// An `int` argument as i64 (`TypeError` for other types). `obj` is a live
/// argument of the current call (like every pointer in [`Args`]).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn arg_i64(obj: *mut sys::PyObject, what: &str) -> PyResult<i64> {
    // SAFETY: attached; `obj` is a live borrowed argument.
    unsafe {
        if sys::PyLong_Check(obj) == 0 {
            return Err(raise(
                Exc::TypeError,
                &format!("{what} must be an int, not {}", super::type_name(obj)),
            ));
        }
        let v = sys::PyLong_AsLongLong(obj);
        if v == -1 && !sys::PyErr_Occurred().is_null() {
            return Err(PyErrSet);
        }
        Ok(v)
    }
}

/// A real-number argument as f64 (`TypeError` for other types); `obj` as
/// for [`arg_i64`].
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn arg_f64(obj: *mut sys::PyObject, what: &str) -> PyResult<f64> {
    // SAFETY: attached; live argument.
    unsafe {
        let v = sys::PyFloat_AsDouble(obj);
        if v == -1.0 && !sys::PyErr_Occurred().is_null() {
            sys::PyErr_Clear();
            return Err(raise(
                Exc::TypeError,
                &format!("{what} must be a number, not {}", super::type_name(obj)),
            ));
        }
        Ok(v)
    }
}
