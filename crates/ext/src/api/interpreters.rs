//! The native half of `crossinterp.interpreters`: creating, running in and
//! closing interpreters on the C API (not by wrapping `_interpreters`), so the
//! engine controls every attach and detach.

use crate::cstr;
use crate::ffi::capi::running_main;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::runtime::owners::{self, Event, OwnerRecord, StartError, Whence, CREATING};
use crate::runtime::state::Import;
use crate::runtime::{pending, Error};
use crate::types::Entry;
use crate::xi::{self, Value};
use crossinterp_core::sync::Ordering;
use std::ffi::{c_char, CString};

/// Information about an exception raised in another interpreter, as a tuple
/// of str `(type_name, type_qualname, type_module, msg, formatted, errdisplay)`.
pub type ExcInfo = Value;

pub use owners::record;

/// The interpreters API's part in owners' lives: at process exit, close the
/// idle interpreters we created that are still open (a clean exit with live
/// interpreters).
fn on_event(event: &Event<'_>) {
    if let Event::ProcessExit = event {
        for rec in owners::all() {
            if rec.whence == Whence::Crossinterp && !rec.is_running() && destroy(rec.iid).is_err() {
                // SAFETY: attached (the main interpreter's exit); report and
                // go on with the others.
                unsafe { sys::PyErr_WriteUnraisable(std::ptr::null_mut()) };
            }
        }
    }
}

/// The module's entry for the interpreters API (a hook, no class).
pub const ENTRY: Entry = Entry {
    hook: Some(on_event),
    ..Entry::EMPTY
};

static EXCINFO: Import = Import::new(cstr!("crossinterp._xi"), cstr!("excinfo"));

/// Capture the exception set in the attached interpreter as an [`ExcInfo`].
fn capture_excinfo() -> ExcInfo {
    match xi::describe_exception(&EXCINFO) {
        Ok(v) => v,
        Err(None) => fallback_excinfo("SystemError", "error indicator was empty"),
        Err(Some(exc)) => {
            // SAFETY: `exc` is live.
            let name = unsafe { xi::type_name(exc.as_ptr()) };
            fallback_excinfo(&name, "(the exception could not be described)")
        }
    }
}

fn fallback_excinfo(name: &str, msg: &str) -> ExcInfo {
    let s = |x: &str| Value::Str(x.to_owned());
    Value::Tuple(vec![
        s(name),
        s(name),
        s("builtins"),
        s(msg),
        s(&format!("{name}: {msg}\n")),
        s(&format!("{name}: {msg}")),
    ])
}

/// Keep an interpreter "running" for the duration of a call, so that it
/// cannot be closed meanwhile.
struct Running<'a>(&'a OwnerRecord);

impl<'a> Running<'a> {
    fn start(rec: &'a OwnerRecord) -> PyResult<Self> {
        let (_, cur) = ffi::interp::current();
        if cur == rec.iid {
            return Err(Error::interpreter("interpreter already running"));
        }
        match rec.try_start() {
            Ok(()) => Ok(Running(rec)),
            Err(StartError::Closing) => Err(Error::NotFound(rec.iid).into()),
            Err(_) => Err(Error::interpreter("interpreter already running")),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Marks the attached interpreter as running its `__main__` (CPython's own
/// mark, read by `_interpreters.is_running()` and `_interpreters.destroy()`)
/// while a crossinterp `exec`/`call`/`prepare_main` runs there; unmarked on
/// drop (even on a panic), on the same thread state.
struct MainMark(bool);

impl MainMark {
    fn set() -> Self {
        // Attached to the target (inside `run_in_owner`); a `true` is undone
        // by `drop` on this thread state (or released at the process exit).
        MainMark(ffi::interp::mark_main())
    }
}

impl Drop for MainMark {
    fn drop(&mut self) {
        if self.0 {
            // Attached with the thread state `set` marked (the run restores
            // it before returning).
            ffi::interp::unmark_main();
        }
    }
}

/// `__main__.__dict__` of the attached interpreter (borrowed).
fn main_dict() -> PyResult<*mut sys::PyObject> {
    // SAFETY: attached. The __main__ module lives in sys.modules, so its dict
    // stays alive after we drop our reference to the module.
    unsafe {
        let m = Owned::from_new(sys::PyImport_AddModuleRef(cstr!("__main__").as_ptr()))?;
        let d = sys::PyModule_GetDict(m.as_ptr());
        if d.is_null() {
            return Err(PyErrSet);
        }
        Ok(d)
    }
}

/// What `exec` runs.
pub enum Code {
    Source(CString),
    /// A marshalled code object.
    Marshalled(Vec<u8>),
}

/// Turn `code` (str, code object, or function taking no arguments) into
/// [`Code`] in the caller's interpreter.
///
/// # Safety
/// `code` is a live object of the attached interpreter.
pub unsafe fn prepare_code(code: *mut sys::PyObject) -> PyResult<Code> {
    // SAFETY (whole body): attached; `code` is live; type checks precede use.
    unsafe {
        if sys::PyUnicode_Check(code) != 0 {
            let s = ffi::str_utf8(code)?;
            return CString::new(s).map(Code::Source).map_err(|_| {
                ffi::raise(
                    ffi::Exc::ValueError,
                    "source code string cannot contain null bytes",
                )
            });
        }
        let co = if sys::PyFunction_Check(code) != 0 {
            if !sys::PyFunction_GetClosure(code).is_null() {
                return Err(ffi::raise(
                    ffi::Exc::ValueError,
                    "functions with closures cannot be run in another interpreter",
                ));
            }
            let co = Owned::from_borrowed(sys::PyFunction_GetCode(code));
            let argc = Owned::from_new(sys::PyObject_GetAttrString(
                co.as_ptr(),
                cstr!("co_argcount").as_ptr(),
            ))?;
            let kwc = Owned::from_new(sys::PyObject_GetAttrString(
                co.as_ptr(),
                cstr!("co_kwonlyargcount").as_ptr(),
            ))?;
            if sys::PyLong_AsLong(argc.as_ptr()) != 0 || sys::PyLong_AsLong(kwc.as_ptr()) != 0 {
                return Err(ffi::raise(
                    ffi::Exc::ValueError,
                    "only functions that take no arguments can be passed to exec()",
                ));
            }
            co
        } else if sys::PyCode_Check(code) != 0 {
            Owned::from_borrowed(code)
        } else {
            return Err(ffi::raise(
                ffi::Exc::TypeError,
                &format!(
                    "exec() expects a str, a code object or a function, not {}",
                    xi::type_name(code)
                ),
            ));
        };
        // A code object with free variables needs closure cells, which
        // `PyEval_EvalCode` cannot supply (it would crash): refuse it.
        let free = Owned::from_new(sys::PyObject_GetAttrString(
            co.as_ptr(),
            cstr!("co_freevars").as_ptr(),
        ))?;
        let nfree = sys::PyObject_Length(free.as_ptr());
        if nfree < 0 {
            return Err(PyErrSet);
        }
        if nfree > 0 {
            return Err(ffi::raise(
                ffi::Exc::ValueError,
                "code objects with free variables (closures) cannot be run in another interpreter",
            ));
        }
        let b = Owned::from_new(sys::PyMarshal_WriteObjectToString(co.as_ptr(), 4))?;
        let n = sys::PyBytes_Size(b.as_ptr());
        let p = sys::PyBytes_AsString(b.as_ptr());
        Ok(Code::Marshalled(
            std::slice::from_raw_parts(p as *const u8, n as usize).to_vec(),
        ))
    }
}

/// Run `code` in `__main__` of the attached interpreter.
fn run_code(code: &Code) -> Result<(), ExcInfo> {
    let run = || -> PyResult<()> {
        let d = main_dict()?;
        // SAFETY: attached; `d` is a live dict; the code/source are valid.
        unsafe {
            let res = match code {
                // Compiled under the stdlib's file name for scripts, so that
                // tracebacks read as `concurrent.interpreters`' do.
                Code::Source(src) => {
                    let co = Owned::from_new(sys::Py_CompileString(
                        src.as_ptr(),
                        cstr!("<script>").as_ptr(),
                        sys::Py_file_input,
                    ))?;
                    sys::PyEval_EvalCode(co.as_ptr(), d, d)
                }
                Code::Marshalled(b) => {
                    let co = Owned::from_new(sys::PyMarshal_ReadObjectFromString(
                        b.as_ptr() as *const c_char,
                        b.len() as sys::Py_ssize_t,
                    ))?;
                    sys::PyEval_EvalCode(co.as_ptr(), d, d)
                }
            };
            Owned::from_new(res).map(drop)
        }
    };
    run().map_err(|PyErrSet| capture_excinfo())
}

/// `exec(id, code)`: `None` on success, else the excinfo tuple.
pub fn exec(iid: i64, code: &Code) -> PyResult<Option<ExcInfo>> {
    let rec = record(iid)?;
    let _running = Running::start(&rec)?;
    let r = pending::run_in_owner(&rec, || {
        let _main = MainMark::set();
        run_code(code)
    })?;
    Ok(r.err())
}

/// `set_main_attrs(id, items)`: bind each name in the target's `__main__`.
pub fn set_main_attrs(iid: i64, items: &[(String, Value)]) -> PyResult<Option<ExcInfo>> {
    let rec = record(iid)?;
    let _running = Running::start(&rec)?;
    let r = pending::run_in_owner(&rec, || {
        let _main = MainMark::set();
        let set = || -> PyResult<()> {
            let d = main_dict()?;
            for (k, v) in items {
                let o = xi::from_value(v)?;
                let key = CString::new(k.as_str()).map_err(|_| {
                    ffi::raise(ffi::Exc::ValueError, "names cannot contain null bytes")
                })?;
                // SAFETY: attached; live dict and value.
                if unsafe { sys::PyDict_SetItemString(d, key.as_ptr(), o.as_ptr()) } < 0 {
                    return Err(PyErrSet);
                }
            }
            Ok(())
        };
        set().map_err(|PyErrSet| capture_excinfo())
    })?;
    Ok(r.err())
}

/// The parts of a call, neutral.
pub struct CallSpec {
    pub callable: Value,
    pub args: Vec<Value>,
    pub kwargs: Vec<(String, Value)>,
}

/// Why a call failed in the target.
pub enum CallError {
    /// The callable raised (`ExecutionFailed` in the caller).
    Raised(ExcInfo),
    /// The callable or an argument could not be rebuilt in the target, or the
    /// result could not leave it (`NotShareableError` in the caller, as in
    /// `concurrent.interpreters`); `.1` says which.
    NotShareable(ExcInfo, &'static str),
}

static CALL_IN_MAIN: Import = Import::new(cstr!("crossinterp._xiload"), cstr!("call_in_main"));

/// `f(*args, **kwargs)` in the attached interpreter. A callable with no
/// frame of its own (a builtin such as `eval`, `exec` or `dir`, a type, a
/// partial) is called from a frame running in `__main__`, so that what it
/// reads from its caller's frame is `__main__`'s namespace.
///
/// # Safety
/// Attached; `f` and `args` (a tuple) are live, `kwargs` is a live dict or NULL.
unsafe fn call_object(
    f: *mut sys::PyObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> PyResult<Owned> {
    // SAFETY (whole body): forwarded contract.
    unsafe {
        if sys::PyFunction_Check(f) != 0 {
            return Owned::from_new(sys::PyObject_Call(f, args, kwargs));
        }
        let rec = crate::runtime::current()?;
        let helper = Owned::from_borrowed(rec.types.import(&CALL_IN_MAIN)?);
        let kw = if kwargs.is_null() {
            sys::Py_None()
        } else {
            kwargs
        };
        ffi::call(&helper, &[f, args, kw])
    }
}

/// `call(id, callable, args, kwargs)`: `Ok(result)` or why it failed.
pub fn call(iid: i64, spec: &CallSpec) -> PyResult<Result<Value, CallError>> {
    let rec = record(iid)?;
    let _running = Running::start(&rec)?;
    pending::run_in_owner(&rec, || {
        let _main = MainMark::set();
        let not_shareable = |what| CallError::NotShareable(capture_excinfo(), what);
        // The callable and its arguments, rebuilt here.
        let inputs = || -> PyResult<(Owned, Owned, Option<Owned>)> {
            let f = xi::from_value(&spec.callable)?;
            // SAFETY: attached; tuple/dict built from fresh objects.
            unsafe {
                let args = Owned::from_new(sys::PyTuple_New(spec.args.len() as sys::Py_ssize_t))?;
                for (i, a) in spec.args.iter().enumerate() {
                    let o = xi::from_value(a)?;
                    sys::PyTuple_SetItem(args.as_ptr(), i as sys::Py_ssize_t, o.into_ptr());
                }
                let kwargs = if spec.kwargs.is_empty() {
                    None
                } else {
                    let d = Owned::from_new(sys::PyDict_New())?;
                    for (k, v) in &spec.kwargs {
                        let key = ffi::new_str(k)?;
                        let val = xi::from_value(v)?;
                        if sys::PyDict_SetItem(d.as_ptr(), key.as_ptr(), val.as_ptr()) < 0 {
                            return Err(PyErrSet);
                        }
                    }
                    Some(d)
                };
                Ok((f, args, kwargs))
            }
        };
        let (f, args, kwargs) = inputs().map_err(|PyErrSet| {
            not_shareable("the callable or its arguments could not be rebuilt in the interpreter")
        })?;
        // SAFETY: attached; live objects.
        let res = unsafe {
            call_object(
                f.as_ptr(),
                args.as_ptr(),
                kwargs.as_ref().map_or(std::ptr::null_mut(), |d| d.as_ptr()),
            )
        }
        .map_err(|PyErrSet| CallError::Raised(capture_excinfo()))?;
        // SAFETY: `res` is live.
        unsafe { xi::to_value(res.as_ptr(), false) }
            .map_err(|PyErrSet| not_shareable("the result could not leave the interpreter"))
    })
}

/// In the attached (new) interpreter: copy the creator's `sys.path` and
/// register it as an owner (no package import: that costs milliseconds;
/// importing crossinterp there later finds this registration). `CREATING`
/// is set by the caller, so the record's whence is ours.
fn setup_current(sys_path: &[String]) -> PyResult<()> {
    let sys_mod_path = ffi::import_attr(cstr!("sys"), cstr!("path"))?;
    // SAFETY: attached; `sys.path` is a list.
    unsafe {
        if sys::PyList_SetSlice(
            sys_mod_path.as_ptr(),
            0,
            sys::PY_SSIZE_T_MAX,
            std::ptr::null_mut(),
        ) < 0
        {
            return Err(PyErrSet);
        }
        for p in sys_path {
            let s = ffi::new_str(p)?;
            if sys::PyList_Append(sys_mod_path.as_ptr(), s.as_ptr()) < 0 {
                return Err(PyErrSet);
            }
        }
    }
    let (_rec, is_new) = owners::register_current();
    if is_new {
        crate::runtime::exit::arrange_exit_hooks()?;
    }
    Ok(())
}

/// The one-line display of an [`ExcInfo`] (its `errdisplay`).
fn excinfo_line(info: &ExcInfo) -> String {
    match info {
        Value::Tuple(items) => match items.get(5) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// `_interpreters.destroy(iid)`, keeping the exception set by the caller (if
/// any) and dropping the destroy's own.
fn destroy_stdlib(iid: i64) {
    // SAFETY: attached; the set exception (or NULL) is put back below.
    let saved = unsafe { sys::PyErr_GetRaisedException() };
    let r = ffi::import_attr(cstr!("_interpreters"), cstr!("destroy")).and_then(|f| {
        let id = ffi::new_int(iid)?;
        ffi::call(&f, &[id.as_ptr()])
    });
    if r.is_err() {
        // SAFETY: attached; the destroy's error is not the caller's.
        unsafe { sys::PyErr_Clear() };
    }
    // SAFETY: attached; `saved` is ours (stolen back), or NULL.
    unsafe { sys::PyErr_SetRaisedException(saved) };
}

/// Create an interpreter with its own GIL (CPython's `_interpreters.create`
/// with the `'isolated'` config where the build lets us attach to it by id,
/// so that CPython records it as its own: `whence` is `"_interpreters
/// module"` and `_interpreters` works on it), copy the caller's `sys.path`
/// into it and register it as an owner (without importing the package
/// there). Without `site`, the creator's `site_import` is cleared while
/// CPython creates it (see [`ffi::capi::no_site`]), where the build allows.
pub fn create(sys_path: &[String], site: bool) -> PyResult<i64> {
    if !ffi::capi::lookup::available() {
        return create_own(sys_path, site);
    }
    let f = match ffi::import_attr(cstr!("_interpreters"), cstr!("create")) {
        Ok(f) => f,
        Err(PyErrSet) => {
            // SAFETY: attached; no `_interpreters`: create on the C API.
            unsafe { sys::PyErr_Clear() };
            return create_own(sys_path, site);
        }
    };
    let cfg = ffi::new_str("isolated")?;
    // An import of crossinterp during the creation (a `sitecustomize`, on
    // this thread) registers the interpreter as ours too.
    CREATING.with(|c| c.set(true));
    let make = || ffi::call(&f, &[cfg.as_ptr()]);
    let r = if site {
        make()
    } else {
        match ffi::capi::no_site::run(true, make) {
            Ok(Some(r)) => r,
            Ok(None) => make(),
            Err(e) => Err(e),
        }
    };
    CREATING.with(|c| c.set(false));
    let id = match r {
        Ok(id) => id,
        Err(PyErrSet) => {
            // Only CPython's "creation failed" becomes ours (a MemoryError,
            // say, stays what it is).
            // SAFETY: attached; an exception is set (the creation's), taken
            // here and put back before returning.
            let exc = unsafe { sys::PyErr_GetRaisedException() };
            let matches = match ffi::import_attr(cstr!("_interpreters"), cstr!("InterpreterError"))
            {
                // SAFETY: attached; live objects.
                Ok(c) => (unsafe { sys::PyErr_GivenExceptionMatches(exc, c.as_ptr()) }) != 0,
                Err(PyErrSet) => {
                    // SAFETY: attached; the lookup's error is not the one to report.
                    unsafe { sys::PyErr_Clear() };
                    false
                }
            };
            // SAFETY: attached; `exc` is ours (stolen back).
            unsafe { sys::PyErr_SetRaisedException(exc) };
            if !matches {
                return Err(PyErrSet);
            }
            let info = capture_excinfo();
            return Err(Error::interpreter(&format!(
                "interpreter creation failed: {}",
                excinfo_line(&info)
            )));
        }
    };
    // SAFETY: attached; `id` is the int `_interpreters.create` returned.
    let iid = unsafe { sys::PyLong_AsLongLong(id.as_ptr()) };
    // SAFETY: attached; plain error check.
    if iid == -1 && unsafe { !sys::PyErr_Occurred().is_null() } {
        return Err(PyErrSet);
    }
    // SAFETY: attached; CPython's lookup under its list lock. The pointer
    // stays valid while the interpreter lives: it was made on this thread a
    // moment ago, and only a `_interpreters.destroy()` of an id read from a
    // listing by another thread in this window could end it first.
    let interp = unsafe { ffi::capi::lookup::by_id(iid) };
    if interp.is_null() {
        return Err(PyErrSet);
    }
    // SAFETY: the caller is attached (entry point): detach it, attach a
    // fresh thread state of the new interpreter on this thread.
    let (save, ts) = unsafe {
        let save = sys::PyEval_SaveThread();
        let ts = sys::PyThreadState_New(interp);
        if ts.is_null() {
            sys::PyEval_RestoreThread(save);
            destroy_stdlib(iid);
            return Err(ffi::raise(
                ffi::Exc::MemoryError,
                "cannot create a thread state",
            ));
        }
        sys::PyEval_RestoreThread(ts);
        (save, ts)
    };
    CREATING.with(|c| c.set(true));
    let r = setup_current(sys_path);
    CREATING.with(|c| c.set(false));
    let failed = r.err().map(|PyErrSet| capture_excinfo());
    // SAFETY: `ts` is attached and ours, with no frame: delete it, then
    // re-attach the caller's.
    unsafe {
        sys::PyThreadState_Clear(ts);
        sys::PyThreadState_DeleteCurrent();
        sys::PyEval_RestoreThread(save);
    }
    if let Some(info) = failed {
        destroy_stdlib(iid);
        return Err(Error::interpreter(&format!(
            "could not set up the new interpreter: {}",
            excinfo_line(&info)
        )));
    }
    Ok(iid)
}

/// [`create`] on the C API (`Py_NewInterpreterFromConfig`), for builds
/// without `_interpreters` or its lookup.
fn create_own(sys_path: &[String], site: bool) -> PyResult<i64> {
    let cfg = sys::PyInterpreterConfig {
        use_main_obmalloc: 0,
        allow_fork: 0,
        allow_exec: 0,
        allow_threads: 1,
        allow_daemon_threads: 0,
        check_multi_interp_extensions: 1,
        gil: sys::PyInterpreterConfig_OWN_GIL,
    };
    // SAFETY: the caller is attached (entry point); `save` is its thread state.
    let save = unsafe { sys::PyThreadState_Get() };
    let make = || {
        let mut ts: *mut sys::PyThreadState = std::ptr::null_mut();
        // SAFETY: valid config; on success the new interpreter's thread
        // state is attached and `save` detached.
        let status = unsafe { sys::Py_NewInterpreterFromConfig(&mut ts, &cfg) };
        (status, ts)
    };
    let (status, ts) = if site {
        make()
    } else {
        match ffi::capi::no_site::run(false, make)? {
            Some(status) => status,
            None => make(),
        }
    };
    // SAFETY: plain struct inspection.
    if unsafe { sys::PyStatus_Exception(status) } != 0 || ts.is_null() {
        // SAFETY: make sure the caller's state is attached again.
        unsafe {
            if sys::PyThreadState_GetUnchecked() != save {
                sys::PyThreadState_Swap(save);
            }
        }
        let msg = if status.err_msg.is_null() {
            "interpreter creation failed".to_owned()
        } else {
            // SAFETY: CPython sets a NUL-terminated static message.
            unsafe { std::ffi::CStr::from_ptr(status.err_msg) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(Error::interpreter(&format!(
            "interpreter creation failed: {msg}"
        )));
    }
    // SAFETY: `ts` is attached; reading its interpreter id.
    let iid = unsafe { sys::PyInterpreterState_GetID(sys::PyThreadState_GetInterpreter(ts)) };

    // Now attached to the new interpreter.
    CREATING.with(|c| c.set(true));
    let r = setup_current(sys_path);
    CREATING.with(|c| c.set(false));
    match r {
        Ok(()) => {
            // SAFETY: `ts` is attached and ours; delete it, then re-attach `save`.
            unsafe {
                sys::PyThreadState_Clear(ts);
                sys::PyThreadState_DeleteCurrent();
                sys::PyEval_RestoreThread(save);
            }
            Ok(iid)
        }
        Err(PyErrSet) => {
            let info = capture_excinfo();
            // SAFETY: `ts` is attached, has no frame; ending the interpreter
            // leaves no thread state attached, then we re-attach `save`.
            unsafe {
                sys::Py_EndInterpreter(ts);
                sys::PyEval_RestoreThread(save);
            }
            Err(Error::interpreter(&format!(
                "could not set up the new interpreter: {}",
                excinfo_line(&info)
            )))
        }
    }
}

/// Close (destroy) interpreter `iid`, created by [`create`].
pub fn destroy(iid: i64) -> PyResult<()> {
    let rec = record(iid)?;
    let (_, cur) = ffi::interp::current();
    if cur == iid {
        return Err(Error::interpreter("cannot close the current interpreter"));
    }
    if crate::types::views::held_by_this_thread(iid) {
        return Err(crate::types::views::refuse_self_wait(iid));
    }
    if rec.whence != owners::Whence::Crossinterp {
        return Err(Error::interpreter(&format!(
            "interpreter {iid} was not created by crossinterp; close it where it was created"
        )));
    }
    if !rec.try_close() {
        if rec.is_running() {
            return Err(Error::interpreter(
                "interpreter is running; cannot close it",
            ));
        }
        return Err(Error::NotFound(iid).into());
    }
    // SAFETY: we created it and marked it closing: nobody else ends it.
    if unsafe { running_main::is(rec.interp_ptr()) } {
        // Running code for someone else (`_interpreters.exec`, say).
        rec.cancel_close();
        return Err(Error::interpreter(
            "interpreter is running; cannot close it",
        ));
    }
    // SAFETY: `rec` is a live owner we created and marked closing, so nobody
    // else destroys it; while not Finalized its interpreter is alive. We
    // detach from our interpreter, attach a fresh thread state of the target
    // and end it (which runs our atexit finalization there), then re-attach.
    let (_, caller) = ffi::interp::current();
    unsafe {
        let interp = rec.interp_ptr();
        let save = sys::PyEval_SaveThread();
        let ts = sys::PyThreadState_New(interp);
        if ts.is_null() {
            sys::PyEval_RestoreThread(save);
            rec.cancel_close();
            return Err(ffi::raise(
                ffi::Exc::MemoryError,
                "cannot create a thread state",
            ));
        }
        sys::PyEval_RestoreThread(ts);
        // Finalization warnings of the target go to us, the caller.
        ffi::interp::closing(save, caller, || sys::Py_EndInterpreter(ts));
        sys::PyEval_RestoreThread(save);
    }
    Ok(())
}

/// A Python `Interpreter` object now owns a reference to `iid`.
pub fn incref(iid: i64) -> PyResult<()> {
    // AcqRel: the count decides who closes the interpreter.
    record(iid)?.refs.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// A Python `Interpreter` object that owned a reference to `iid` went. The
/// last one closes an interpreter made by `create()` (as the stdlib does),
/// unless it is running (it then lives until `close()` or exit); true if
/// this call closed it.
pub fn decref(iid: i64) -> PyResult<bool> {
    let rec = record(iid)?;
    // AcqRel: pairs with `incref`.
    let last = rec.refs.fetch_sub(1, Ordering::AcqRel) == 1;
    if !last || rec.whence != Whence::Crossinterp || rec.is_running() {
        return Ok(false);
    }
    drop(rec);
    destroy(iid).map(|()| true)
}
