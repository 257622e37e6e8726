//! `crossinterp._native`: multi-phase init, per-interpreter module state, and
//! the module's functions (each a thin `extern "C"` shim that catches panics,
//! drains the interpreter's pending calls and delegates).

use crate::common::{arity, Args};
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::interpreters::{self, CallSpec, Code};
use crate::owners::{self, InterpRecord};
use crate::xi::{self, Value};
use crate::{cstr, errors};
use crossinterp_core::sync::{Arc, Ordering};
use std::ffi::{c_int, c_void};
use std::ptr::{addr_of_mut, null_mut};

/// Per-module state: one strong count on the interpreter's record.
///
/// Ownership: owned by the module object, in that module's interpreter;
/// released by `m_free`.
#[repr(C)]
struct ModState {
    rec: *const InterpRecord,
    /// Strong references to this module's proxy types (also recorded, borrowed,
    /// in the record for fast access).
    proxy_types: [*mut sys::PyObject; 2],
}

/// The record of the module's interpreter.
///
/// # Safety
/// `module` is a live module object created from `MODULE_DEF`, past its exec slot.
unsafe fn module_record<'a>(module: *mut sys::PyObject) -> Option<&'a InterpRecord> {
    // SAFETY: forwarded; module state has our layout.
    unsafe {
        let st = sys::PyModule_GetState(module) as *mut ModState;
        if st.is_null() || (*st).rec.is_null() {
            None
        } else {
            Some(&*(*st).rec)
        }
    }
}

/// Whether `obj` is an instance of this module's type `name` (or a subclass),
/// in the attached interpreter — found through the object's type's module
/// (`PyType_GetModuleByDef`), so objects of foreign types cost one MRO walk
/// and no import.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn is_ours(obj: *mut sys::PyObject, name: &std::ffi::CStr) -> PyResult<bool> {
    // SAFETY: attached; `obj` live; MODULE_DEF is our static definition.
    unsafe {
        let m = sys::PyType_GetModuleByDef(sys::Py_TYPE(obj), addr_of_mut!(MODULE_DEF));
        if m.is_null() {
            sys::PyErr_Clear();
            return Ok(false);
        }
        let tp = Owned::from_new(sys::PyObject_GetAttrString(m, name.as_ptr()))?;
        Ok(sys::PyObject_TypeCheck(obj, tp.as_ptr() as *mut sys::PyTypeObject) != 0)
    }
}

fn arg_i64(obj: *mut sys::PyObject, what: &str) -> PyResult<i64> {
    // SAFETY: attached; `obj` is a live borrowed argument.
    unsafe {
        if sys::PyLong_Check(obj) == 0 {
            return Err(ffi::raise(
                ffi::Exc::TypeError,
                &format!("{what} must be an int, not {}", xi::type_name(obj)),
            ));
        }
        let v = sys::PyLong_AsLongLong(obj);
        if v == -1 && !sys::PyErr_Occurred().is_null() {
            return Err(PyErrSet);
        }
        Ok(v)
    }
}

fn arg_f64(obj: *mut sys::PyObject, what: &str) -> PyResult<f64> {
    // SAFETY: attached; live argument.
    unsafe {
        let v = sys::PyFloat_AsDouble(obj);
        if v == -1.0 && !sys::PyErr_Occurred().is_null() {
            sys::PyErr_Clear();
            return Err(ffi::raise(
                ffi::Exc::TypeError,
                &format!("{what} must be a number, not {}", xi::type_name(obj)),
            ));
        }
        Ok(v)
    }
}

fn id_whence(iid: i64, whence: &str) -> PyResult<*mut sys::PyObject> {
    let id = ffi::new_int(iid)?;
    let w = ffi::new_str(whence)?;
    // SAFETY: attached; PyTuple_Pack takes borrowed references.
    unsafe { Ok(sys::PyTuple_Pack(2, id.as_ptr(), w.as_ptr())) }
}

fn excinfo_or_none(info: Option<Value>) -> PyResult<*mut sys::PyObject> {
    match info {
        None => Ok(ffi::none()),
        Some(v) => Ok(xi::from_value(&v)?.into_ptr()),
    }
}

fn create(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("create", args, 0)?;
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
    Ok(ffi::new_int(interpreters::create(&entries)?)?.into_ptr())
}

fn destroy(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("destroy", args, 1)?;
    interpreters::destroy(arg_i64(args[0], "id")?)?;
    Ok(ffi::none())
}

fn list_all(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("list_all", args, 0)?;
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

fn get_current(m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("get_current", args, 0)?;
    // SAFETY: `m` is our module.
    match unsafe { module_record(m) } {
        Some(rec) => id_whence(rec.iid, rec.whence.as_str()),
        None => id_whence(ffi::interp::current().1, "unknown"),
    }
}

fn get_main(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("get_main", args, 0)?;
    // SAFETY: the main interpreter outlives every caller.
    let iid = unsafe { sys::PyInterpreterState_GetID(sys::PyInterpreterState_Main()) };
    id_whence(iid, "runtime init")
}

fn whence(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("whence", args, 1)?;
    let rec = interpreters::record(arg_i64(args[0], "id")?)?;
    Ok(ffi::new_str(rec.whence.as_str())?.into_ptr())
}

fn is_running(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("is_running", args, 1)?;
    let iid = arg_i64(args[0], "id")?;
    let rec = interpreters::record(iid)?;
    let running = rec.is_running() || ffi::interp::current().1 == iid;
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(running as _) })
}

fn exec(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
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

fn set_main_attrs(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("set_main_attrs", args, 2)?;
    let iid = arg_i64(args[0], "id")?;
    let items = dict_items(args[1], false)?;
    excinfo_or_none(interpreters::set_main_attrs(iid, &items)?)
}

fn call(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
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
        Ok(v) => (xi::from_value(&v)?, ffi::none()),
        Err(info) => {
            // SAFETY: None is immortal.
            (
                unsafe { Owned::from_borrowed(sys::Py_None()) },
                xi::from_value(&info)?.into_ptr(),
            )
        }
    };
    // SAFETY: attached; `info` is a new reference we hand to the tuple.
    unsafe {
        let info = Owned::from_new(info)?;
        Ok(sys::PyTuple_Pack(2, res.as_ptr(), info.as_ptr()))
    }
}

fn is_shareable(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("is_shareable", args, 1)?;
    // SAFETY: attached; live argument.
    let yes = unsafe { xi::is_shareable(args[0])? };
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(yes as _) })
}

fn live_owners(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("live_owners", args, 0)?;
    Ok(ffi::new_int(owners::live_owners() as i64)?.into_ptr())
}

fn set_finalize_warn_after(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
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

/// The interpreter's exit: in the main interpreter, first close the
/// interpreters we created that are still open (idle ones; a clean exit with
/// live interpreters), then finalize this interpreter's owner.
fn finalize_at_exit() {
    let (_, cur) = ffi::interp::current();
    // SAFETY: the main interpreter outlives every caller.
    let main_id = unsafe { sys::PyInterpreterState_GetID(sys::PyInterpreterState_Main()) };
    if cur == main_id {
        // Relaxed: read back by this same thread's finalizations below.
        owners::PROCESS_EXITING.store(true, Ordering::Relaxed);
        // Guards held by Python guard objects must not hold the process exit.
        crate::views::close_all_at_exit();
        for rec in owners::all() {
            if rec.whence == owners::Whence::Crossinterp
                && !rec.is_running()
                && interpreters::destroy(rec.iid).is_err()
            {
                // SAFETY: attached; report and go on with the others.
                unsafe { sys::PyErr_WriteUnraisable(null_mut()) };
            }
        }
    }
    owners::finalize_current();
}

unsafe extern "C" fn at_exit_fallback(_data: *mut c_void) {
    // A panic must not unwind into CPython.
    let _ = std::panic::catch_unwind(finalize_at_exit);
}

extern "C" {
    // Declared in CPython 3.13+'s cpython/pylifecycle.h; pyo3-ffi skips it.
    fn PyUnstable_AtExit(
        interp: *mut sys::PyInterpreterState,
        func: unsafe extern "C" fn(*mut c_void),
        data: *mut c_void,
    ) -> c_int;
}

unsafe extern "C" fn exit_hook(
    _slf: *mut sys::PyObject,
    _unused: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        finalize_at_exit();
        Ok(ffi::none())
    })
}

static mut EXIT_HOOK_DEF: sys::PyMethodDef = sys::PyMethodDef {
    ml_name: cstr!("_crossinterp_finalize_owner").as_ptr(),
    ml_meth: sys::PyMethodDefPointer {
        PyCFunction: exit_hook,
    },
    ml_flags: sys::METH_NOARGS,
    ml_doc: cstr!("Finalize this interpreter's crossinterp owner (atexit hook).").as_ptr(),
};

/// Arrange the current interpreter's owner to be finalized at its exit:
/// a Python-level atexit callback (runs early in the exit: after non-daemon
/// threads are joined, before modules are torn down), and `PyUnstable_AtExit`
/// as the fallback if atexit callbacks were cleared (runs at the end of the
/// interpreter's teardown, still attached). Needs no module object, so
/// `create()` can register a new interpreter without importing the package.
pub fn arrange_exit_hooks() -> PyResult<()> {
    let register = ffi::import_attr(cstr!("atexit"), cstr!("register"))?;
    // SAFETY: attached; EXIT_HOOK_DEF is a static definition that outlives
    // every interpreter; no `self`, no module.
    let hook = unsafe {
        Owned::from_new(sys::PyCFunction_NewEx(
            addr_of_mut!(EXIT_HOOK_DEF),
            null_mut(),
            null_mut(),
        ))?
    };
    ffi::call(&register, &[hook.as_ptr()])?;
    // SAFETY: attached to the current interpreter, which we pass.
    if unsafe { PyUnstable_AtExit(sys::PyInterpreterState_Get(), at_exit_fallback, null_mut()) } < 0
    {
        return Err(PyErrSet);
    }
    Ok(())
}

fn share(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("share", args, 1)?;
    // SAFETY: live argument of the attached interpreter.
    unsafe { crate::proxy::share(args[0]) }.map(Owned::into_ptr)
}

fn proxy_info(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("proxy_info", args, 1)?;
    // SAFETY: live argument of the attached interpreter.
    match unsafe { crate::proxy::info(args[0]) } {
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

fn view(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("view", args, 1)?;
    crate::views::view_of(arg_i64(args[0], "id")?).map(Owned::into_ptr)
}

fn has_pep788(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("has_pep788", args, 0)?;
    let b = crate::views::has_pep788();
    // SAFETY: attached.
    Ok(
        unsafe { Owned::from_borrowed(if b { sys::Py_True() } else { sys::Py_False() }) }
            .into_ptr(),
    )
}

fn hold_guard(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_testing_hold_guard", args, 2)?;
    let rec = interpreters::record(arg_i64(args[0], "id")?)?;
    let secs = arg_f64(args[1], "seconds")?;
    let guard = rec
        .view
        .guard()
        .map_err(|e| errors::from_guard(e, rec.iid))?;
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.max(0.0)));
        drop(guard);
    });
    Ok(ffi::none())
}

fn push_pending(_m: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("_testing_push_pending", args, 2)?;
    let rec = interpreters::record(arg_i64(args[0], "id")?)?;
    // SAFETY: live argument.
    let src = unsafe { ffi::str_utf8(args[1])? };
    let src = std::ffi::CString::new(src)
        // SAFETY: immutable static.
        .map_err(|_| ffi::raise(ffi::Exc::ValueError, "null byte in code"))?;
    let call = Box::new(move |_a: &crossinterp_core::Attached<'_>| {
        // SAFETY: pending calls run attached to their owner (the `Attached` proof).
        unsafe {
            let m = sys::PyImport_AddModuleRef(cstr!("__main__").as_ptr());
            if m.is_null() {
                sys::PyErr_WriteUnraisable(null_mut());
                return;
            }
            let d = sys::PyModule_GetDict(m);
            let r = sys::PyRun_StringFlags(src.as_ptr(), sys::Py_file_input, d, d, null_mut());
            if r.is_null() {
                sys::PyErr_WriteUnraisable(null_mut());
            } else {
                sys::Py_DecRef(r);
            }
            sys::Py_DecRef(m);
        }
    });
    if rec.view.push_pending(call).is_err() {
        return Err(errors::not_found(rec.iid));
    }
    Ok(ffi::none())
}

macro_rules! entry {
    ($name:ident => $body:path) => {
        unsafe extern "C" fn $name(
            module: *mut sys::PyObject,
            args: *mut *mut sys::PyObject,
            nargs: sys::Py_ssize_t,
        ) -> *mut sys::PyObject {
            ffi::trampoline(|| {
                let args: Args = if nargs <= 0 {
                    &[]
                } else {
                    // SAFETY: CPython passes `nargs` valid borrowed pointers.
                    unsafe { std::slice::from_raw_parts(args, nargs as usize) }
                };
                // SAFETY: `module` is our module object.
                if let Some(rec) = unsafe { module_record(module) } {
                    owners::drain_current(rec);
                }
                $body(module, args)
            })
        }
    };
}

entry!(py_create => create);
entry!(py_destroy => destroy);
entry!(py_list_all => list_all);
entry!(py_get_current => get_current);
entry!(py_get_main => get_main);
entry!(py_whence => whence);
entry!(py_is_running => is_running);
entry!(py_exec => exec);
entry!(py_call => call);
entry!(py_set_main_attrs => set_main_attrs);
entry!(py_is_shareable => is_shareable);
entry!(py_live_owners => live_owners);
entry!(py_set_finalize_warn_after => set_finalize_warn_after);
entry!(py_hold_guard => hold_guard);
entry!(py_share => share);
entry!(py_proxy_info => proxy_info);
entry!(py_view => view);
entry!(py_has_pep788 => has_pep788);
entry!(py_push_pending => push_pending);

use crate::method_def as method;

static mut METHODS: [sys::PyMethodDef; 20] = [
    method!("share", py_share, "share(obj) -> obj | SharedObjectProxy\n\nobj itself when it crosses natively, else a proxy of it."),
    method!("proxy_info", py_proxy_info, "proxy_info(obj) -> (owner id, alive) | None"),
    method!("view", py_view, "view(id) -> InterpreterView"),
    method!("has_pep788", py_has_pep788, "has_pep788() -> bool: whether guards are backed by PEP 788 PyInterpreterGuard"),
    method!("create", py_create, "create() -> int\n\nCreate an interpreter with its own GIL."),
    method!("destroy", py_destroy, "destroy(id) -> None\n\nClose an interpreter created by create()."),
    method!("list_all", py_list_all, "list_all() -> list[tuple[int, str]]"),
    method!("get_current", py_get_current, "get_current() -> tuple[int, str]"),
    method!("get_main", py_get_main, "get_main() -> tuple[int, str]"),
    method!("whence", py_whence, "whence(id) -> str"),
    method!("is_running", py_is_running, "is_running(id) -> bool"),
    method!("exec", py_exec, "exec(id, code) -> None | excinfo tuple"),
    method!("call", py_call, "call(id, callable, args, kwargs) -> (result, excinfo | None)"),
    method!("set_main_attrs", py_set_main_attrs, "set_main_attrs(id, dict) -> None | excinfo tuple"),
    method!("is_shareable", py_is_shareable, "is_shareable(obj) -> bool"),
    method!("live_owners", py_live_owners, "live_owners() -> int"),
    method!("set_finalize_warn_after", py_set_finalize_warn_after, "set_finalize_warn_after(seconds) -> float (the old value)"),
    method!("_testing_hold_guard", py_hold_guard, "_testing_hold_guard(id, seconds): a Rust thread holds a guard on the owner."),
    method!("_testing_push_pending", py_push_pending, "_testing_push_pending(id, source): queue a pending call running source in the owner's __main__."),
    sys::PyMethodDef::zeroed(),
];

/// The exec slot: register this interpreter as an owner and arrange its
/// finalization at the interpreter's exit.
unsafe extern "C" fn module_exec(module: *mut sys::PyObject) -> c_int {
    ffi::trampoline_int(|| {
        let (rec, is_new) = owners::register_current();
        // SAFETY: our module's state has the `ModState` layout (m_size).
        unsafe {
            let st = sys::PyModule_GetState(module) as *mut ModState;
            (*st).rec = Arc::into_raw(rec.clone());
        }
        if is_new {
            arrange_exit_hooks()?;
        }
        // SAFETY: attached, in our module's exec slot.
        unsafe {
            crate::queue::add_type(module)?;
            crate::buffer::add_type(module)?;
            crate::channel::add_type(module)?;
            crate::borrowed::add_type(module)?;
            crate::atomics::add_types(module)?;
            crate::proxy::add_types(module)?;
            crate::views::add_types(module)?;
            let st = sys::PyModule_GetState(module) as *mut ModState;
            for (i, name) in [cstr!("SharedObjectProxy"), cstr!("SharedMethodProxy")]
                .iter()
                .enumerate()
            {
                let tp = Owned::from_new(sys::PyObject_GetAttrString(module, name.as_ptr()))?;
                // Release: the type is fully built before other threads of
                // this interpreter can read the slot (Acquire in `proxy`).
                rec.proxy_types[i].store(tp.as_ptr() as usize, Ordering::Release);
                (*st).proxy_types[i] = tp.into_ptr();
            }
            crate::atomic_ref::add_type(module)?;
            crate::atomic_dict::add_type(module)?;
        }
        Ok(())
    })
}

/// GC support: the state's strong references to the proxy types (which
/// reference the module back) must be visible, or module and types would form
/// an uncollectable cycle.
unsafe extern "C" fn module_traverse(
    module: *mut sys::PyObject,
    visit: sys::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: called by the GC with our module; its state has our layout
    // (it may be NULL before the exec slot ran).
    unsafe {
        let st = sys::PyModule_GetState(module) as *mut ModState;
        if st.is_null() {
            return 0;
        }
        for &tp in &(*st).proxy_types {
            if !tp.is_null() {
                let r = visit(tp, arg);
                if r != 0 {
                    return r;
                }
            }
        }
    }
    0
}

/// GC support: drop the state's references to the proxy types.
unsafe extern "C" fn module_clear(module: *mut sys::PyObject) -> c_int {
    // SAFETY: called by the GC (or teardown) with our module, attached.
    unsafe { clear_proxy_types(module) };
    0
}

/// Forget (in the record) and release the module state's proxy types.
///
/// # Safety
/// Attached; `module` is our module object.
unsafe fn clear_proxy_types(module: *mut sys::PyObject) {
    // SAFETY: forwarded; the state has our layout.
    unsafe {
        let st = sys::PyModule_GetState(module) as *mut ModState;
        if st.is_null() {
            return;
        }
        for i in 0..2 {
            let tp = std::mem::replace(&mut (*st).proxy_types[i], null_mut());
            if tp.is_null() {
                continue;
            }
            if !(*st).rec.is_null() {
                // Forget it in the record if it is still ours.
                let _ = (*(*st).rec).proxy_types[i].compare_exchange(
                    tp as usize,
                    0,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            sys::Py_DecRef(tp);
        }
    }
}

unsafe extern "C" fn module_free(module: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: called by CPython with our module; its state has our layout.
        unsafe {
            let st = sys::PyModule_GetState(module as *mut sys::PyObject) as *mut ModState;
            if st.is_null() {
                return;
            }
            clear_proxy_types(module as *mut sys::PyObject);
            if !(*st).rec.is_null() {
                drop(Arc::from_raw((*st).rec));
                (*st).rec = std::ptr::null();
            }
        }
    });
}

static mut SLOTS: [sys::PyModuleDef_Slot; 4] = [
    sys::PyModuleDef_Slot {
        slot: sys::Py_mod_exec,
        value: module_exec as *mut c_void,
    },
    sys::PyModuleDef_Slot {
        slot: sys::Py_mod_multiple_interpreters,
        value: sys::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
    },
    // Every shared structure is behind the engine's own locks/atomics: no
    // hidden reliance on the GIL. (On GIL builds the slot is accepted too.)
    sys::PyModuleDef_Slot {
        slot: sys::Py_mod_gil,
        value: sys::Py_MOD_GIL_NOT_USED,
    },
    sys::PyModuleDef_Slot {
        slot: 0,
        value: null_mut(),
    },
];

static mut MODULE_DEF: sys::PyModuleDef = sys::PyModuleDef {
    m_base: sys::PyModuleDef_HEAD_INIT,
    m_name: cstr!("crossinterp._native").as_ptr(),
    m_doc: cstr!("The native core of crossinterp (see crossinterp/_native.pyi).").as_ptr(),
    m_size: std::mem::size_of::<ModState>() as sys::Py_ssize_t,
    // Only the addresses are taken; CPython reads the tables.
    m_methods: addr_of_mut!(METHODS) as *mut sys::PyMethodDef,
    m_slots: addr_of_mut!(SLOTS) as *mut sys::PyModuleDef_Slot,
    m_traverse: Some(module_traverse),
    m_clear: Some(module_clear),
    m_free: Some(module_free),
};

/// The module's init function (multi-phase: returns the definition).
///
/// # Safety
/// Called by CPython's import machinery, with a thread state attached.
#[no_mangle]
#[allow(non_snake_case)]
pub unsafe extern "C" fn PyInit__native() -> *mut sys::PyObject {
    // SAFETY: MODULE_DEF is a valid static definition; CPython initializes
    // its base once (it is safe to call from several interpreters).
    unsafe { sys::PyModuleDef_Init(addr_of_mut!(MODULE_DEF)) }
}
