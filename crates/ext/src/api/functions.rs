//! The module-level functions of `crossinterp._native` (the interpreters
//! API and sharing helpers). Each body gets the module object; the module's
//! prologue has drained the interpreter's pending calls.

use super::interpreters::{self, CallError, CallSpec, Code};
use crate::cstr;
pub use crate::ffi::args::{arg_f64, arg_i64};
use crate::ffi::args::{arity, Args};
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::runtime::{owners, Error};
use crate::xi::{self, Value};
use crossinterp_core::sync::Ordering;
use std::ptr::null_mut;

fn id_whence(iid: i64, whence: &str) -> PyResult<*mut sys::PyObject> {
    let id = ffi::new_int(iid)?;
    let w = ffi::new_str(whence)?;
    // SAFETY: attached; PyTuple_Pack takes borrowed references.
    unsafe { Ok(sys::PyTuple_Pack(2, id.as_ptr(), w.as_ptr())) }
}

/// The `errdisplay` item of an excinfo tuple (its last formatted line).
fn errdisplay(info: &Value) -> String {
    match info {
        Value::Tuple(items) => match items.get(5) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

fn excinfo_or_none(info: Option<Value>) -> PyResult<*mut sys::PyObject> {
    match info {
        None => Ok(ffi::none()),
        Some(v) => Ok(xi::into_python(v)?.into_ptr()),
    }
}

pub fn create(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("create", args, 1)?;
    let site = crate::ffi::args::arg_bool(args, 0)?;
    let path = ffi::import_attr(cstr!("sys"), cstr!("path"))?;
    let mut entries = Vec::new();
    // SAFETY: attached; `sys.path` is a live list (items checked).
    unsafe {
        let n = sys::PyList_Size(path.as_ptr());
        for i in 0..n.max(0) {
            let item = sys::PyList_GetItem(path.as_ptr(), i);
            if sys::PyUnicode_Check(item) != 0 {
                entries.push(ffi::str_utf8(item)?.to_owned());
            }
        }
    }
    Ok(ffi::new_int(interpreters::create(&entries, site)?)?.into_ptr())
}

pub fn destroy(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("destroy", args, 1)?;
    interpreters::destroy(arg_i64(args[0], "id")?)?;
    Ok(ffi::none())
}

pub fn incref(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("incref", args, 1)?;
    interpreters::incref(arg_i64(args[0], "id")?)?;
    Ok(ffi::none())
}

pub fn decref(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("decref", args, 1)?;
    let closed = interpreters::decref(arg_i64(args[0], "id")?)?;
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(closed as _) })
}

pub fn list_all(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    // SAFETY: attached.
    let list = unsafe { Owned::from_new(sys::PyList_New(0))? };
    for rec in owners::all() {
        let item = id_whence(rec.iid, rec.whence.as_str())?;
        // SAFETY: attached; `item` is a new reference (NULL checked).
        unsafe {
            let item = Owned::from_new(item)?;
            if sys::PyList_Append(list.as_ptr(), item.as_ptr()) < 0 {
                return Err(PyErrSet);
            }
        }
    }
    Ok(list.into_ptr())
}

pub fn get_current(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    match owners::get(ffi::interp::current().1) {
        Some(rec) => id_whence(rec.iid, rec.whence.as_str()),
        None => id_whence(ffi::interp::current().1, "unknown"),
    }
}

pub fn get_main(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    // SAFETY: the main interpreter outlives every caller.
    let iid = unsafe { sys::PyInterpreterState_GetID(sys::PyInterpreterState_Main()) };
    id_whence(iid, "runtime init")
}

pub fn whence(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("whence", args, 1)?;
    let rec = interpreters::record(arg_i64(args[0], "id")?)?;
    Ok(ffi::new_str(rec.whence.as_str())?.into_ptr())
}

pub fn is_running(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("is_running", args, 1)?;
    let iid = arg_i64(args[0], "id")?;
    let rec = interpreters::record(iid)?;
    let running = rec.is_running() || ffi::interp::current().1 == iid;
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(running as _) })
}

pub fn exec(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("exec", args, 2)?;
    let iid = arg_i64(args[0], "id")?;
    // SAFETY: live argument of the attached interpreter.
    let code: Code = unsafe { interpreters::prepare_code(args[1])? };
    let info = interpreters::exec(iid, &code)?;
    excinfo_or_none(info)
}

/// `(name, value)` pairs of a dict with str keys, as neutral values.
fn dict_items(d: *mut sys::PyObject, strict: bool) -> PyResult<Vec<(String, Value)>> {
    let mut out = Vec::new();
    // SAFETY: attached; `d` is a live dict (checked); PyDict_Next borrows.
    unsafe {
        if sys::PyDict_Check(d) == 0 {
            return Err(ffi::raise(ffi::Exc::TypeError, "expected a dict"));
        }
        let mut pos: sys::Py_ssize_t = 0;
        let mut k = null_mut();
        let mut v = null_mut();
        while sys::PyDict_Next(d, &mut pos, &mut k, &mut v) != 0 {
            if sys::PyUnicode_Check(k) == 0 {
                return Err(ffi::raise(ffi::Exc::TypeError, "names must be str"));
            }
            // Keep both alive while converting (conversion can run Python code).
            let (k, v) = (Owned::from_borrowed(k), Owned::from_borrowed(v));
            out.push((
                ffi::str_utf8(k.as_ptr())?.to_owned(),
                xi::to_value(v.as_ptr(), strict)?,
            ));
        }
    }
    Ok(out)
}

pub fn set_main_attrs(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("set_main_attrs", args, 2)?;
    let iid = arg_i64(args[0], "id")?;
    let items = dict_items(args[1], false)?;
    excinfo_or_none(interpreters::set_main_attrs(iid, &items)?)
}

pub fn call(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("call", args, 4)?;
    let iid = arg_i64(args[0], "id")?;
    // SAFETY: attached; live arguments; types checked before use.
    let spec = unsafe {
        if sys::PyCallable_Check(args[1]) == 0 {
            return Err(ffi::raise(
                ffi::Exc::TypeError,
                &format!("{} object is not callable", xi::type_name(args[1])),
            ));
        }
        if sys::PyTuple_Check(args[2]) == 0 {
            return Err(ffi::raise(ffi::Exc::TypeError, "args must be a tuple"));
        }
        CallSpec {
            callable: xi::to_value(args[1], false)?,
            args: xi::tuple_items(args[2], false)?,
            kwargs: if args[3] == sys::Py_None() {
                Vec::new()
            } else {
                dict_items(args[3], false)?
            },
        }
    };
    let (res, info) = match interpreters::call(iid, &spec)? {
        Ok(v) => match xi::into_python(v) {
            Ok(o) => (o, ffi::none()),
            Err(PyErrSet) => {
                let why = xi::current_exc_message();
                return Err(Error::NotShareableFromCurrent(format!(
                    "the result of the call could not be rebuilt here: {why}"
                ))
                .into());
            }
        },
        Err(CallError::NotShareable(info, what)) => {
            let why = errdisplay(&info);
            return Err(Error::NotShareable(format!("{what} {iid}: {why}")).into());
        }
        Err(CallError::Raised(info)) => {
            // SAFETY: None is immortal.
            (
                unsafe { Owned::from_borrowed(sys::Py_None()) },
                xi::into_python(info)?.into_ptr(),
            )
        }
    };
    // SAFETY: attached; `info` is a new reference we hand to the tuple.
    unsafe {
        let info = Owned::from_new(info)?;
        Ok(sys::PyTuple_Pack(2, res.as_ptr(), info.as_ptr()))
    }
}

pub fn is_shareable(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("is_shareable", args, 1)?;
    // SAFETY: attached; live argument.
    let yes = unsafe { xi::is_shareable(args[0])? };
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(yes as _) })
}

pub fn live_owners(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    Ok(ffi::new_int(owners::live_owners() as i64)?.into_ptr())
}

pub fn set_finalize_warn_after(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("set_finalize_warn_after", args, 1)?;
    let s = arg_f64(args[0], "seconds")?;
    if !(s > 0.0 && s.is_finite()) {
        return Err(ffi::raise(
            ffi::Exc::ValueError,
            "seconds must be a positive finite number",
        ));
    }
    let old = owners::WARN_AFTER_MS.swap(((s * 1000.0) as u64).max(1), Ordering::Relaxed);
    // SAFETY: attached.
    Ok(unsafe { sys::PyFloat_FromDouble(old as f64 / 1000.0) })
}

pub fn share(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("share", args, 1)?;
    // SAFETY: live argument of the attached interpreter.
    unsafe { crate::types::proxy::share(args[0]) }.map(Owned::into_ptr)
}

pub fn collect_cycles(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    let n = crate::types::proxy::cycles::collect()?;
    warn_cycles(crate::types::proxy::detect::check())?;
    ffi::new_int(n as i64).map(Owned::into_ptr)
}

/// A `crossinterp.CycleWarning` per suspect pair (free-threaded builds).
fn warn_cycles(suspects: Vec<crate::types::proxy::detect::Suspect>) -> PyResult<()> {
    for s in &suspects {
        crate::runtime::warnings::cycle(&crate::types::proxy::detect::message(s))?;
    }
    Ok(())
}

/// The gc callback of every interpreter that imports crossinterp: after a
/// collection ("stop"), the automatic cycle pass (rate-limited).
pub fn gc_callback(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("gc_callback", args, 2)?;
    // SAFETY: a live argument of the attached interpreter.
    let stop = unsafe { ffi::str_utf8(args[0]) }.is_ok_and(|s| s == "stop");
    // SAFETY: attached.
    unsafe { sys::PyErr_Clear() };
    if stop {
        crate::types::proxy::cycles::auto(std::time::Duration::from_secs(1))?;
        warn_cycles(crate::types::proxy::detect::auto(
            std::time::Duration::from_secs(1),
        ))?;
    }
    Ok(ffi::none())
}

pub fn set_auto_collect_cycles(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("set_auto_collect_cycles", args, 1)?;
    // SAFETY: a live argument of the attached interpreter.
    if unsafe { sys::PyBool_Check(args[0]) } == 0 {
        return Err(ffi::raise(ffi::Exc::TypeError, "enabled must be a bool"));
    }
    // SAFETY: as above.
    let on = unsafe { args[0] == sys::Py_True() };
    let old = crate::types::proxy::cycles::set_auto(on);
    crate::types::proxy::detect::set_auto(on);
    Ok(if old {
        ffi::bool_true()
    } else {
        ffi::bool_false()
    })
}

pub fn cycles_supported(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    Ok(if crate::types::proxy::cycles::SUPPORTED {
        ffi::bool_true()
    } else {
        ffi::bool_false()
    })
}

pub fn proxy_info(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("proxy_info", args, 1)?;
    // SAFETY: live argument of the attached interpreter.
    match unsafe { crate::types::proxy::info(args[0]) } {
        None => Ok(ffi::none()),
        Some((iid, alive)) => {
            let i = ffi::new_int(iid)?;
            // SAFETY: attached; fresh/borrowed objects.
            unsafe {
                let b = if alive {
                    sys::Py_True()
                } else {
                    sys::Py_False()
                };
                Owned::from_new(sys::PyTuple_Pack(2, i.as_ptr(), b)).map(Owned::into_ptr)
            }
        }
    }
}

pub fn view(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("view", args, 1)?;
    crate::types::views::view_of(arg_i64(args[0], "id")?).map(Owned::into_ptr)
}

pub fn has_pep788(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    let b = crate::runtime::pep788::has_pep788();
    // SAFETY: attached.
    Ok(
        unsafe { Owned::from_borrowed(if b { sys::Py_True() } else { sys::Py_False() }) }
            .into_ptr(),
    )
}

fn py_bool(b: bool) -> *mut sys::PyObject {
    // SAFETY: attached; the immortal singletons, as new references.
    unsafe { Owned::from_borrowed(if b { sys::Py_True() } else { sys::Py_False() }) }.into_ptr()
}

/// Whether [`current_frames`] / [`current_exceptions`] work on this build:
/// 3.13, with the thread-state layout they read checked (see
/// `ffi::capi::own_threads`).
pub fn own_threads_supported(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    Ok(py_bool(own_threads_ok()?))
}

#[cfg(not(Py_3_14))]
fn own_threads_ok() -> PyResult<bool> {
    let get_ident = ffi::import_attr(cstr!("_thread"), cstr!("get_ident"))?;
    let ident = ffi::call(&get_ident, &[])?;
    // SAFETY: attached; `ident` is the int `get_ident()` returned.
    let ident = unsafe { sys::PyLong_AsUnsignedLong(ident.as_ptr()) };
    // SAFETY: attached; plain error check.
    if unsafe { !sys::PyErr_Occurred().is_null() } {
        return Err(PyErrSet);
    }
    // SAFETY: attached.
    Ok(unsafe { ffi::capi::own_threads::layout_ok(ident) })
}

#[cfg(Py_3_14)]
fn own_threads_ok() -> PyResult<bool> {
    Ok(false)
}

/// `sys.audit(event)`.
fn audit(event: &str) -> PyResult<()> {
    let f = ffi::import_attr(cstr!("sys"), cstr!("audit"))?;
    let e = ffi::new_str(event)?;
    ffi::call(&f, &[e.as_ptr()]).map(drop)
}

/// Map each thread of the attached interpreter to what `item` gives for its
/// thread state (a new reference, or None to leave the thread out).
fn own_threads_map(
    event: &str,
    item: impl Fn(*mut sys::PyThreadState) -> PyResult<Option<Owned>>,
) -> PyResult<*mut sys::PyObject> {
    audit(event)?;
    if !own_threads_ok()? {
        return Err(ffi::raise(
            ffi::Exc::RuntimeError,
            &format!(
                "crossinterp: {event}() of this interpreter only is not available on this build"
            ),
        ));
    }
    // SAFETY: attached; a new dict or NULL with an exception set.
    let out = unsafe { Owned::from_new(sys::PyDict_New())? };
    #[cfg(not(Py_3_14))]
    {
        // SAFETY: attached, layout checked just above. Nothing in the walk
        // releases the GIL: `item` makes a frame object or takes a
        // reference, and the keys are ints (no Python code runs; dict
        // insertion of int keys calls no `__eq__`).
        unsafe {
            ffi::capi::own_threads::for_each(|ident, t| -> PyResult<()> {
                let Some(v) = item(t)? else { return Ok(()) };
                let key = Owned::from_new(sys::PyLong_FromUnsignedLong(ident))?;
                if sys::PyDict_SetItem(out.as_ptr(), key.as_ptr(), v.as_ptr()) < 0 {
                    return Err(PyErrSet);
                }
                Ok(())
            })?;
        }
    }
    #[cfg(Py_3_14)]
    let _ = item;
    Ok(out.into_ptr())
}

/// `_current_frames() -> dict[int, frame]`: `sys._current_frames()` for the
/// threads of the calling interpreter only (3.13, issue 11).
pub fn current_frames(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    own_threads_map("sys._current_frames", |t| {
        // SAFETY: attached; `t` is a live thread state of this interpreter
        // (own_threads_map's walk); a new reference or NULL.
        let f = unsafe { sys::PyThreadState_GetFrame(t) };
        if f.is_null() {
            // SAFETY: attached; plain error check.
            if unsafe { !sys::PyErr_Occurred().is_null() } {
                return Err(PyErrSet);
            }
            return Ok(None);
        }
        // SAFETY: a new reference we own.
        Ok(Some(unsafe { Owned::from_new(f as *mut sys::PyObject)? }))
    })
}

/// `_current_exceptions() -> dict[int, BaseException | None]`:
/// `sys._current_exceptions()` for the threads of the calling interpreter
/// only (3.13, issue 11).
pub fn current_exceptions(_m: *mut sys::PyObject) -> PyResult<*mut sys::PyObject> {
    own_threads_map("sys._current_exceptions", |_t| {
        #[cfg(not(Py_3_14))]
        {
            // SAFETY: attached; `t` is a live thread state of this
            // interpreter (the walk), borrowed result.
            let e = unsafe { ffi::capi::own_threads::handled_exception(_t) };
            // SAFETY: attached; Py_None is immortal.
            let e = if e.is_null() {
                unsafe { sys::Py_None() }
            } else {
                e
            };
            // SAFETY: attached; a live object of this interpreter.
            Ok(Some(unsafe { Owned::from_borrowed(e) }))
        }
        #[cfg(Py_3_14)]
        Ok(None)
    })
}
