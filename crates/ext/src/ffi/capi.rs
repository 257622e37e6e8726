//! Public C API functions and objects pyo3-ffi 0.28 does not declare, and
//! the dynamic-symbol lookup used for API that only some versions have.
//! Every declaration here follows the CPython header named beside it.

use super::sys;
use std::ffi::{c_char, c_int, c_void};

extern "C" {
    /// cpython/pylifecycle.h (3.13+): run `func(data)` at the end of
    /// `interp`'s teardown, attached.
    pub fn PyUnstable_AtExit(
        interp: *mut sys::PyInterpreterState,
        func: unsafe extern "C" fn(*mut c_void),
        data: *mut c_void,
    ) -> c_int;

    /// cpython/dictobject.h (3.13-3.15, exported): an empty dict with room
    /// for `minused` items without a resize (what a copy of a dict of known
    /// size wants; `PyDict_New` grows through every power of two).
    pub fn _PyDict_NewPresized(minused: sys::Py_ssize_t) -> *mut sys::PyObject;

    /// internal/pycore_dict.h (3.13-3.15, `PyAPI_FUNC`, the same signature
    /// in all three; what `BUILD_MAP` uses): a new dict of the `length`
    /// pairs `keys[i * keys_offset]`, `values[i * values_offset]`, in
    /// order (a later equal key replaces the value, as `PyDict_SetItem`
    /// does), presized, and with the compact table of `str` keys when every
    /// key is an exact `str` (`_PyDict_NewPresized` always makes the
    /// general table: 24-byte entries against 16). Borrows the keys and
    /// values (takes its own references). NULL with an exception set on
    /// failure (an unhashable key, no memory).
    pub fn _PyDict_FromItems(
        keys: *const *mut sys::PyObject,
        keys_offset: sys::Py_ssize_t,
        values: *const *mut sys::PyObject,
        values_offset: sys::Py_ssize_t,
        length: sys::Py_ssize_t,
    ) -> *mut sys::PyObject;

    /// classobject.h: the bound-method type.
    pub static mut PyMethod_Type: sys::PyTypeObject;
    /// classobject.h: the `self` of a bound method (borrowed).
    pub fn PyMethod_Self(m: *mut sys::PyObject) -> *mut sys::PyObject;

    /// dictobject.h (3.13+): insert `default_value` under `key` if `key` is
    /// absent, atomically (free-threaded builds too); `*result` gets a new
    /// reference to the value now there (if `result` is not null). Returns
    /// 1 if the key was present, 0 if inserted, -1 with an exception set.
    pub fn PyDict_SetDefaultRef(
        p: *mut sys::PyObject,
        key: *mut sys::PyObject,
        default_value: *mut sys::PyObject,
        result: *mut *mut sys::PyObject,
    ) -> c_int;

    /// dlfcn.h: a symbol of the global scope (the interpreter's own C API).
    pub fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

#[cfg(all(Py_GIL_DISABLED, Py_3_14))]
extern "C" {
    /// cpython/object.h (3.14+): a fail-able incref (0 if the count hit zero).
    pub fn PyUnstable_TryIncRef(op: *mut sys::PyObject) -> c_int;
    /// cpython/object.h (3.14+): allow `PyUnstable_TryIncRef` on `op`.
    pub fn PyUnstable_EnableTryIncRef(op: *mut sys::PyObject);
}

/// `RTLD_DEFAULT` on Linux/glibc: search the global symbol scope.
pub const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

/// Run `f` at the end of the current interpreter's teardown
/// (`PyUnstable_AtExit`), attached; a panic in `f` is caught.
///
/// # Safety
/// Attached to the interpreter the callback is for.
pub unsafe fn at_exit(f: fn()) -> super::PyResult<()> {
    unsafe extern "C" fn trampoline(data: *mut c_void) {
        // SAFETY: `data` is the `fn()` registered below.
        let f: fn() = unsafe { std::mem::transmute::<*mut c_void, fn()>(data) };
        // A panic must not unwind into CPython.
        let _ = std::panic::catch_unwind(f);
    }
    // SAFETY: attached (the caller's contract), to the interpreter we pass.
    if unsafe { PyUnstable_AtExit(sys::PyInterpreterState_Get(), trampoline, f as *mut c_void) } < 0
    {
        return Err(super::PyErrSet);
    }
    Ok(())
}

/// The process's `fork()` handlers (see [`at_fork`]).
struct ForkHandlers {
    prepare: fn(),
    parent: fn(),
    child: fn(),
}

static FORK_HANDLERS: std::sync::OnceLock<ForkHandlers> = std::sync::OnceLock::new();

/// Run `prepare` just before every `fork()` of this process, on the forking
/// thread, and `parent` or `child` just after it, on that thread in each
/// process (`pthread_atfork`; CPython's `os.fork()` and every other fork
/// go through them). Once per process: later calls, with any handlers, do
/// nothing (the handlers are inherited by a child). A panic in a handler is
/// caught. `false`: the registration failed (no memory).
pub fn at_fork(prepare: fn(), parent: fn(), child: fn()) -> bool {
    fn run(pick: fn(&ForkHandlers) -> fn()) {
        if let Some(h) = FORK_HANDLERS.get() {
            // A panic must not unwind into libc's fork().
            let _ = std::panic::catch_unwind(pick(h));
        }
    }
    extern "C" fn prepare_tr() {
        run(|h| h.prepare);
    }
    extern "C" fn parent_tr() {
        run(|h| h.parent);
    }
    extern "C" fn child_tr() {
        run(|h| h.child);
    }
    let mut first = false;
    FORK_HANDLERS.get_or_init(|| {
        first = true;
        ForkHandlers {
            prepare,
            parent,
            child,
        }
    });
    if !first {
        return true;
    }
    // SAFETY: three `extern "C"` functions of no arguments that live as long
    // as the process: CPython never unloads an extension module's library.
    unsafe { libc::pthread_atfork(Some(prepare_tr), Some(parent_tr), Some(child_tr)) == 0 }
}

/// CPython's "this interpreter is running its `__main__`" mark (the
/// interpreter's `threads.main`), which `_interpreters.is_running()`,
/// `_interpreters.destroy()` and `concurrent.interpreters` read. There is no
/// public API for it: these are CPython internals (`pycore_pystate.h`:
/// `_PyInterpreterState_SetRunningMain`, `_PyInterpreterState_SetNotRunningMain`,
/// `_PyInterpreterState_IsRunningMain`), exported by 3.13–3.15 and looked up
/// at run time, so that a build without them only loses the mark.
pub mod running_main {
    use super::{dlsym, sys, RTLD_DEFAULT};
    use std::ffi::{c_int, c_void};

    struct Api {
        set: unsafe extern "C" fn(*mut sys::PyInterpreterState) -> c_int,
        unset: unsafe extern "C" fn(*mut sys::PyInterpreterState),
        is: unsafe extern "C" fn(*mut sys::PyInterpreterState) -> c_int,
    }

    fn api() -> Option<&'static Api> {
        static API: std::sync::OnceLock<Option<Api>> = std::sync::OnceLock::new();
        API.get_or_init(|| {
            // SAFETY: dlsym with NUL-terminated names; each symbol, when
            // present, has the signature of CPython's pycore_pystate.h.
            unsafe {
                let f = |n: &std::ffi::CStr| dlsym(RTLD_DEFAULT, n.as_ptr());
                let (a, b, c) = (
                    f(crate::cstr!("_PyInterpreterState_SetRunningMain")),
                    f(crate::cstr!("_PyInterpreterState_SetNotRunningMain")),
                    f(crate::cstr!("_PyInterpreterState_IsRunningMain")),
                );
                if a.is_null() || b.is_null() || c.is_null() {
                    return None;
                }
                type Set = unsafe extern "C" fn(*mut sys::PyInterpreterState) -> c_int;
                type Unset = unsafe extern "C" fn(*mut sys::PyInterpreterState);
                Some(Api {
                    set: std::mem::transmute::<*mut c_void, Set>(a),
                    unset: std::mem::transmute::<*mut c_void, Unset>(b),
                    is: std::mem::transmute::<*mut c_void, Set>(c),
                })
            }
        })
        .as_ref()
    }

    /// Mark the attached interpreter as running its main in this thread
    /// state; false (no exception set) if it already runs it elsewhere or the
    /// internal is missing.
    ///
    /// # Safety
    /// Attached; pair a `true` with [`unset`] on the same thread state.
    pub unsafe fn set() -> bool {
        let Some(api) = api() else { return false };
        // SAFETY: attached (caller's contract).
        unsafe {
            let interp = sys::PyInterpreterState_Get();
            if (api.is)(interp) != 0 {
                return false;
            }
            if (api.set)(interp) < 0 {
                sys::PyErr_Clear();
                return false;
            }
        }
        true
    }

    /// Undo a successful [`set`].
    ///
    /// # Safety
    /// Attached with the thread state that [`set`] marked.
    pub unsafe fn unset() {
        if let Some(api) = api() {
            // SAFETY: attached with the marked thread state (caller's contract).
            unsafe { (api.unset)(sys::PyInterpreterState_Get()) };
        }
    }

    /// Whether `interp` runs its main now (false without the internal).
    ///
    /// # Safety
    /// `interp` is alive for the duration of the call.
    pub unsafe fn is(interp: *mut sys::PyInterpreterState) -> bool {
        // SAFETY: `interp` is alive (caller's contract); a plain read.
        api().is_some_and(|api| unsafe { (api.is)(interp) } != 0)
    }
}

/// CPython's interpreter lookup by id (`_PyInterpreterState_LookUpID`,
/// `pycore_interp.h`: it holds the runtime's interpreter list lock while
/// searching), exported by 3.13–3.15 and looked up at run time: `None` when
/// the build lacks it.
pub mod lookup {
    use super::{dlsym, sys, RTLD_DEFAULT};
    use std::ffi::c_void;

    type LookUp = unsafe extern "C" fn(i64) -> *mut sys::PyInterpreterState;

    fn api() -> Option<LookUp> {
        static API: std::sync::OnceLock<Option<LookUp>> = std::sync::OnceLock::new();
        *API.get_or_init(|| {
            // SAFETY: dlsym with a NUL-terminated name; the symbol, when
            // present, has the signature of CPython's pycore_interp.h.
            unsafe {
                let p = dlsym(
                    RTLD_DEFAULT,
                    crate::cstr!("_PyInterpreterState_LookUpID").as_ptr(),
                );
                (!p.is_null()).then(|| std::mem::transmute::<*mut c_void, LookUp>(p))
            }
        })
    }

    /// Whether the lookup is available.
    pub fn available() -> bool {
        api().is_some()
    }

    /// The interpreter with id `iid` (NULL with an exception set if there is
    /// none, or without the internal).
    ///
    /// # Safety
    /// Attached. The pointer is valid only while that interpreter lives.
    pub unsafe fn by_id(iid: i64) -> *mut sys::PyInterpreterState {
        match api() {
            // SAFETY: attached (caller's contract); CPython's lookup.
            Some(f) => unsafe { f(iid) },
            None => {
                crate::ffi::raise(
                    crate::ffi::Exc::RuntimeError,
                    "cannot look interpreters up by id on this build",
                );
                std::ptr::null_mut()
            }
        }
    }
}

/// Run `f` inside a critical section on `obj` (free-threaded builds: the
/// object's own lock, the one its type's methods take, so a concurrent
/// mutation waits; it is suspended and resumed as the GIL would be if `f`
/// blocks). With the GIL, `f` simply runs: the caller holds the GIL and `f`
/// must not run Python code that could release it for long.
///
/// # Safety
/// Attached; `obj` is live for the whole call.
pub unsafe fn with_critical_section<R>(obj: *mut sys::PyObject, f: impl FnOnce() -> R) -> R {
    #[cfg(Py_GIL_DISABLED)]
    {
        /// Ends the section on every path out, a panic's unwinding included
        /// (the trampoline catches it; the lock must not stay held).
        struct End(std::mem::MaybeUninit<sys::PyCriticalSection>);
        impl Drop for End {
            fn drop(&mut self) {
                // SAFETY: begun in `with_critical_section` on this thread,
                // the innermost section (`f` ends whatever it begins).
                unsafe { sys::PyCriticalSection_End(self.0.as_mut_ptr()) };
            }
        }
        let mut cs = End(std::mem::MaybeUninit::uninit());
        // SAFETY: attached (the caller's contract); `cs` is not moved after
        // this (it lives on this frame until its drop ends the section).
        unsafe { sys::PyCriticalSection_Begin(cs.0.as_mut_ptr(), obj) };
        f()
    }
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let _ = obj;
        f()
    }
}

/// The calling interpreter's own threads, for `sys._current_frames()` and
/// `sys._current_exceptions()` on 3.13 (issue 11).
///
/// CPython 3.13's versions of both walk the thread states of *every*
/// interpreter: for a thread running in an own-GIL subinterpreter they make
/// that thread's frame object with the caller's allocator (and, for
/// exceptions, take references to another interpreter's objects), without
/// that interpreter's GIL. The subinterpreter later frees the frame object
/// into its own allocator and the process aborts ("free(): invalid
/// pointer"). 3.14 maps only the calling interpreter's threads; these do
/// the same on 3.13, through the public `struct _ts` of
/// `Include/cpython/pystate.h` (3.13), whose layout is checked against the
/// calling thread before it is trusted ([`layout_ok`]).
#[cfg(not(Py_3_14))]
pub mod own_threads {
    use super::sys;
    use std::ffi::{c_int, c_ulong, c_void};

    /// `_PyErr_StackItem` (cpython/pystate.h, 3.13).
    #[repr(C)]
    struct ErrStackItem {
        exc_value: *mut sys::PyObject,
        previous_item: *mut ErrStackItem,
    }

    /// The start of `struct _ts` (cpython/pystate.h, 3.13), up to `thread_id`.
    #[repr(C)]
    struct TsHead {
        prev: *mut c_void,
        next: *mut c_void,
        interp: *mut sys::PyInterpreterState,
        eval_breaker: usize,
        status: u32,
        whence: c_int,
        state: c_int,
        py_recursion_remaining: c_int,
        py_recursion_limit: c_int,
        c_recursion_remaining: c_int,
        recursion_headroom: c_int,
        tracing: c_int,
        what_event: c_int,
        current_frame: *mut c_void,
        c_profilefunc: *mut c_void,
        c_tracefunc: *mut c_void,
        c_profileobj: *mut sys::PyObject,
        c_traceobj: *mut sys::PyObject,
        current_exception: *mut sys::PyObject,
        exc_info: *mut ErrStackItem,
        dict: *mut sys::PyObject,
        gilstate_counter: c_int,
        async_exc: *mut sys::PyObject,
        thread_id: c_ulong,
    }

    /// Whether the layout above matches this build: the attached thread
    /// state's `interp` and `thread_id` read through it are the ones the C
    /// API and `ident` (the caller's `threading.get_ident()`) give.
    ///
    /// # Safety
    /// Attached.
    pub unsafe fn layout_ok(ident: c_ulong) -> bool {
        // SAFETY: attached (contract): `me` is a live thread state whose
        // first bytes have at least this prefix's size on every 3.13 build.
        unsafe {
            let me = sys::PyThreadState_Get();
            let head = me as *const TsHead;
            (*head).interp == sys::PyThreadState_GetInterpreter(me) && (*head).thread_id == ident
        }
    }

    /// Call `f(thread ident, thread state)` for every thread state of the
    /// attached interpreter.
    ///
    /// # Safety
    /// Attached, and [`layout_ok`] returned true on this build; `f` must
    /// not release the GIL. The walk takes no `HEAD_LOCK` (internal): it
    /// relies on what holding this interpreter's GIL guarantees on a GIL
    /// build — a thread state of it is deleted only by a thread attached to
    /// it (CPython's thread exit, `PyGILState_Release`, and all of
    /// crossinterp's deletions attach first), so no node is freed under
    /// the walk; one added concurrently (at the head, under CPython's lock)
    /// is simply not seen.
    pub unsafe fn for_each<E>(
        mut f: impl FnMut(c_ulong, *mut sys::PyThreadState) -> Result<(), E>,
    ) -> Result<(), E> {
        // SAFETY: attached (contract); the list belongs to our interpreter.
        unsafe {
            let me = sys::PyThreadState_Get();
            let mut t = sys::PyInterpreterState_ThreadHead(sys::PyThreadState_GetInterpreter(me));
            while !t.is_null() {
                f((*(t as *const TsHead)).thread_id, t)?;
                t = sys::PyThreadState_Next(t);
            }
        }
        Ok(())
    }

    /// The exception `t` is handling (borrowed; NULL for none), as 3.13's
    /// `_PyErr_GetTopmostException` finds it.
    ///
    /// # Safety
    /// As for [`for_each`]; `t` is a thread state of the attached
    /// interpreter.
    pub unsafe fn handled_exception(t: *mut sys::PyThreadState) -> *mut sys::PyObject {
        // SAFETY: the contract; `exc_info` is never NULL on a live state.
        unsafe {
            let mut item = (*(t as *const TsHead)).exc_info;
            if item.is_null() {
                return std::ptr::null_mut();
            }
            while (*item).exc_value.is_null() && !(*item).previous_item.is_null() {
                item = (*item).previous_item;
            }
            (*item).exc_value
        }
    }
}

/// Creating an interpreter without running `site` in it. CPython has no
/// option for that (gh-112434 asks for one): a new interpreter copies its
/// creator's `PyConfig`, `site_import` included, and imports `site` when it
/// is set. So the creator's own `config.site_import` is cleared for the
/// duration of the creation and restored after it. The config is reached
/// with `_Py_GetConfig` (internal/pycore_pystate.h, exported by 3.13–3.15,
/// looked up at run time) and read through pyo3-ffi's `PyConfig` (the public
/// cpython/initconfig.h layout), which is checked once against `sys.flags`
/// before it is trusted: without the symbol or on a mismatch, `site` runs.
pub mod no_site {
    use super::{dlsym, sys, RTLD_DEFAULT};
    use crate::ffi::{self, PyResult};
    use crossinterp_core::sync::{lock, Mutex};
    use std::ffi::c_void;

    type GetConfig = unsafe extern "C" fn() -> *const sys::PyConfig;

    fn api() -> Option<GetConfig> {
        static API: std::sync::OnceLock<Option<GetConfig>> = std::sync::OnceLock::new();
        *API.get_or_init(|| {
            // SAFETY: dlsym with a NUL-terminated name; the symbol, when
            // present, has the signature of CPython's pycore_pystate.h.
            unsafe {
                let p = dlsym(RTLD_DEFAULT, crate::cstr!("_Py_GetConfig").as_ptr());
                (!p.is_null()).then(|| std::mem::transmute::<*mut c_void, GetConfig>(p))
            }
        })
    }

    /// `sys.flags.<name>` as an int.
    fn flag(flags: &ffi::Owned, name: &std::ffi::CStr) -> PyResult<i64> {
        // SAFETY: attached; `flags` is live.
        let v = unsafe {
            ffi::Owned::from_new(sys::PyObject_GetAttrString(flags.as_ptr(), name.as_ptr()))
        }?;
        ffi::args::arg_i64(v.as_ptr(), "flag")
    }

    /// Whether the fields of `cfg` match the interpreter's `sys.flags`
    /// (those set from the config at start-up), i.e. pyo3-ffi's layout is
    /// this build's.
    ///
    /// # Safety
    /// Attached; `cfg` is the attached interpreter's config.
    unsafe fn layout_matches(cfg: *const sys::PyConfig) -> PyResult<bool> {
        let flags = ffi::import_attr(crate::cstr!("sys"), crate::cstr!("flags"))?;
        // SAFETY: `cfg` points to a live config (caller's contract); the
        // fields read are plain ints of the public layout.
        let c = unsafe { &*cfg };
        let pairs = [
            (
                i64::from(c.site_import == 0),
                flag(&flags, crate::cstr!("no_site"))?,
            ),
            (
                i64::from(c.isolated),
                flag(&flags, crate::cstr!("isolated"))?,
            ),
            (
                i64::from(c.use_environment == 0),
                flag(&flags, crate::cstr!("ignore_environment"))?,
            ),
            (
                i64::from(c.bytes_warning),
                flag(&flags, crate::cstr!("bytes_warning"))?,
            ),
            (i64::from(c.inspect), flag(&flags, crate::cstr!("inspect"))?),
            (
                i64::from(c.interactive),
                flag(&flags, crate::cstr!("interactive"))?,
            ),
            (
                i64::from(c.optimization_level),
                flag(&flags, crate::cstr!("optimize"))?,
            ),
            (
                i64::from(c.write_bytecode == 0),
                flag(&flags, crate::cstr!("dont_write_bytecode"))?,
            ),
            (
                i64::from(c.user_site_directory == 0),
                flag(&flags, crate::cstr!("no_user_site"))?,
            ),
            (i64::from(c.quiet), flag(&flags, crate::cstr!("quiet"))?),
            (
                i64::from(c.dev_mode),
                flag(&flags, crate::cstr!("dev_mode"))?,
            ),
            (
                i64::from(c.safe_path),
                flag(&flags, crate::cstr!("safe_path"))?,
            ),
        ];
        Ok(pairs.iter().all(|(a, b)| a == b))
    }

    /// The config a creation copies, if it can be written safely: the
    /// attached interpreter's (`Py_NewInterpreterFromConfig` called
    /// attached), or the main interpreter's (`from_main`: `_interpreters.create`
    /// detaches first, and CPython then copies the main interpreter's). The
    /// latter is found at the same offset in the main `PyInterpreterState`
    /// as the attached interpreter's config is in its own (one struct type).
    fn config(from_main: bool) -> PyResult<Option<*mut sys::PyConfig>> {
        let Some(get) = api() else { return Ok(None) };
        // SAFETY: attached (entry point); CPython's accessor.
        let cfg = unsafe { get() };
        if cfg.is_null() {
            return Ok(None);
        }
        // The layout is the build's: checked once per process (every
        // interpreter of it shares the build), on the attached interpreter
        // against its own flags.
        static CHECKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ok = match CHECKED.get() {
            Some(ok) => *ok,
            None => {
                // SAFETY: attached; `cfg` is the attached interpreter's.
                let ok = unsafe { layout_matches(cfg) }?;
                *CHECKED.get_or_init(|| ok)
            }
        };
        if !ok {
            return Ok(None);
        }
        if !from_main {
            return Ok(Some(cfg.cast_mut()));
        }
        // SAFETY: attached; plain accessors of live interpreter states (the
        // main one lives as long as the runtime).
        let (cur, main) = unsafe {
            (
                sys::PyInterpreterState_Get(),
                sys::PyInterpreterState_Main(),
            )
        };
        let offset = (cfg as usize).wrapping_sub(cur as usize);
        if cur.is_null() || main.is_null() || offset >= 1 << 20 {
            return Ok(None); // not inside the struct: do not guess
        }
        Ok(Some((main as usize + offset) as *mut sys::PyConfig))
    }

    /// Serialises the creations that clear a creator's `site_import`, so
    /// that each restores the value it found.
    static CREATING: Mutex<()> = Mutex::new(());

    /// Hold the creation lock across a `fork()` (`runtime::fork`).
    pub fn fork_hold(h: &mut crossinterp_core::fork::Holds) -> bool {
        crossinterp_core::fork::hold_static(h, &CREATING)
    }

    /// Run `f` (which creates an interpreter) with `site_import` cleared in
    /// the config it copies (see [`config`]); `None` (and `f` not run) when
    /// that cannot be done on this build.
    pub fn run<R>(from_main: bool, f: impl FnOnce() -> R) -> PyResult<Option<R>> {
        let Some(cfg) = config(from_main)? else {
            return Ok(None);
        };
        // Taken detached: the holder needs the creator's GIL back to finish.
        let _g = crate::ffi::interp::detached(|| lock(&CREATING));
        // SAFETY: `cfg` is the `PyConfig` of the attached interpreter (alive
        // while we are attached to it) or of the main one (alive as long as
        // the runtime): interpreter storage, mutable (`_Py_GetConfig` only
        // hands it out as const); the layout was checked above. Only the
        // creations serialised by `CREATING` write the field, each restoring
        // what it read. CPython reads it only when it creates an
        // interpreter copying this config: a creation by another thread at
        // the same moment (the stdlib's `_interpreters.create()`, say) also
        // skips `site` (documented).
        unsafe {
            let old = std::ptr::read_volatile(&(*cfg).site_import);
            std::ptr::write_volatile(&mut (*cfg).site_import, 0);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            std::ptr::write_volatile(&mut (*cfg).site_import, old);
            match r {
                Ok(v) => Ok(Some(v)),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    }
}

/// cpython/floatobject.h: a `float` is its header and one `double`
/// (`PyFloat_AS_DOUBLE`, a macro pyo3-ffi does not carry).
#[repr(C)]
struct FloatHead {
    ob_base: sys::PyObject,
    ob_fval: f64,
}

/// The value of a `float` without the call (`PyFloat_AS_DOUBLE`).
///
/// # Safety
/// Attached; `obj` is a live object passing `PyFloat_Check`.
#[inline(always)]
pub unsafe fn float_value(obj: *mut sys::PyObject) -> f64 {
    // SAFETY: the caller's contract: a float (or subclass) starts with the
    // `PyFloatObject` layout; `ob_fval` is set at creation and never changes.
    unsafe { std::ptr::addr_of!((*(obj as *const FloatHead)).ob_fval).read() }
}

/// cpython/unicodeobject.h (3.12+): every `str` starts with `PyASCIIObject`:
/// its header, `length`, then `hash` (-1 until computed).
#[repr(C)]
struct StrHead {
    ob_base: sys::PyObject,
    length: sys::Py_ssize_t,
    hash: sys::Py_hash_t,
}

/// cpython/unicodeobject.h (3.12+): a compact non-ASCII `str` continues its
/// `PyASCIIObject` head with its UTF-8's length, then the UTF-8 itself (NULL
/// until made). `state` is the head's bit field (`_Py_ALIGNED_DEF(4, ...)`
/// on 3.14: a 32-bit word right after `hash` on every version).
#[cfg(Py_GIL_DISABLED)]
#[repr(C)]
struct CompactStrHead {
    head: StrStateHead,
    utf8_length: sys::Py_ssize_t,
    utf8: *mut c_char,
}

/// A `str`'s head up to its state word (see [`CompactStrHead`]): the
/// whole `PyASCIIObject`, padded as C pads it (its size is where a compact
/// ASCII str's characters begin).
#[repr(C)]
struct StrStateHead {
    head: StrHead,
    state: u32,
}

// Our head and pyo3-ffi's `PyASCIIObject` agree on where the characters
// begin (two readings of the header, checked on every build we compile for).
const _: () =
    assert!(std::mem::size_of::<StrStateHead>() == std::mem::size_of::<sys::PyASCIIObject>());

/// The `ascii` bit of a `str`'s state: `interned:2, kind:3, compact:1,
/// ascii:1` from the lowest bit up (3.12, 3.13, and 3.14+ with the GIL);
/// free-threaded 3.14+ makes `interned` a whole byte, which moves the bits
/// after it up by 6.
const STR_STATE_ASCII: u32 = if cfg!(all(Py_GIL_DISABLED, Py_3_14)) {
    1 << 12
} else {
    1 << 6
};

/// Whether `str` `obj` is ASCII (`PyUnicode_IS_ASCII`, a static inline
/// function on 3.13 and a call on 3.14+, without the call): then its
/// characters are its UTF-8.
///
/// # Safety
/// Attached; `obj` is a live object passing `PyUnicode_Check`.
#[inline(always)]
pub unsafe fn str_is_ascii(obj: *mut sys::PyObject) -> bool {
    // SAFETY: the caller's contract: a str starts with the `PyASCIIObject`
    // layout, whose state word follows `hash` on every supported version;
    // its `ascii` bit is set at creation and never changes (a plain read,
    // also free-threaded: no thread writes those bits after creation).
    unsafe {
        let state = std::ptr::addr_of!((*(obj as *const StrStateHead)).state).read();
        state & STR_STATE_ASCII != 0
    }
}

/// The characters of the ASCII `str` `obj` (its UTF-8): a pointer to them and
/// their count, read from its fields (`PyUnicode_AsUTF8AndSize` without the
/// call: callgrind on 3.14, a put + get of a 100-entry `str`->`int` dict
/// 80,350 -> 78,755 instructions). Valid while `obj` is alive (a str never changes).
///
/// # Safety
/// Attached; `obj` is a live exact `str` for which [`str_is_ascii`] holds
/// (an exact str is compact: its characters follow its `PyASCIIObject`).
#[inline(always)]
pub unsafe fn ascii_str_bytes(obj: *mut sys::PyObject) -> (*const u8, usize) {
    // SAFETY: the caller's contract: a compact ASCII str's `length` bytes
    // follow its head (`_PyUnicode_COMPACT_DATA`), both set at creation.
    unsafe {
        let len = std::ptr::addr_of!((*(obj as *const StrHead)).length).read();
        (
            (obj as *const StrStateHead).add(1) as *const u8,
            len as usize,
        )
    }
}

/// Check, once per interpreter at import, that the `str` fields this module
/// reads in place of CPython's inline functions ([`str_is_ascii`],
/// [`ascii_str_bytes`], [`str_cached_hash`]) are where this build keeps
/// them: an ASCII and two non-ASCII `str`s must read as CPython says. A
/// build whose layout differs from the headers read here (free-threaded
/// 3.14+ moves the state's bits, and no such build was at hand to run) fails
/// the import with `SystemError` instead of corrupting strings later.
///
/// # Safety
/// Attached.
pub unsafe fn check_str_layout() -> super::PyResult<()> {
    use super::Owned;
    // SAFETY: attached (the caller's); every object is a new exact `str`
    // (compact), held while read.
    unsafe {
        let ascii = Owned::from_new(sys::PyUnicode_FromStringAndSize(c"ab~".as_ptr(), 3))?;
        let latin1 = Owned::from_new(sys::PyUnicode_FromString(c"\xc3\xa9a".as_ptr()))?;
        let wide = Owned::from_new(sys::PyUnicode_FromString(c"\xe2\x82\xacab".as_ptr()))?;
        let hash = sys::PyObject_Hash(ascii.as_ptr());
        if hash == -1 {
            return Err(super::PyErrSet);
        }
        let ok = str_is_ascii(ascii.as_ptr())
            && !str_is_ascii(latin1.as_ptr())
            && !str_is_ascii(wide.as_ptr())
            && {
                let (p, n) = ascii_str_bytes(ascii.as_ptr());
                std::slice::from_raw_parts(p, n) == b"ab~"
            }
            && str_cached_hash(ascii.as_ptr()) == hash;
        if ok {
            Ok(())
        } else {
            Err(super::raise(
                super::Exc::SystemError,
                "crossinterp: this CPython keeps str fields elsewhere than the headers it was built against say",
            ))
        }
    }
}

/// A new `str` of the ASCII bytes `b`: allocated at its final size and
/// filled with one copy, where `PyUnicode_FromStringAndSize` would scan the
/// bytes for UTF-8 as it copies them. Below 2 bytes CPython's constructor
/// is used (the empty and one-character `str`s are shared singletons).
/// NULL with an exception set on failure (no memory).
///
/// # Safety
/// Attached; every byte of `b` is below 0x80 (a `str` with any other byte
/// would be malformed: its sender read [`str_is_ascii`]).
pub unsafe fn ascii_str_new(b: &[u8]) -> *mut sys::PyObject {
    let n = b.len() as sys::Py_ssize_t;
    // SAFETY: attached (the caller's); `PyUnicode_New(n, 127)` makes a
    // compact ASCII `str` of `n` bytes (plus its NUL, set by CPython) at
    // `PyUnicode_DATA`, which the copy fills exactly; the caller vouches
    // that the bytes are ASCII, as the `str`'s kind says.
    unsafe {
        if n < 2 {
            return sys::PyUnicode_FromStringAndSize(b.as_ptr() as *const c_char, n);
        }
        let s = sys::PyUnicode_New(n, 127);
        if !s.is_null() {
            // A compact ASCII str's characters follow its `PyASCIIObject`
            // (`_PyUnicode_COMPACT_DATA`; `PyUnicode_DATA` is a call on
            // 3.14+, 2.4% of a 10,000-key dict's copy there).
            let data = (s as *mut StrStateHead).add(1) as *mut u8;
            super::mem::copy_short(b.as_ptr(), data, b.len());
        }
        s
    }
}

/// Whether `PyUnicode_AsUTF8AndSize(obj)` can answer without taking `obj`'s
/// lock: an ASCII `str` (its characters are its UTF-8) or one whose UTF-8
/// was made already. Free-threaded CPython makes a missing UTF-8 under the
/// str's critical section, and beginning a section inside another one (a
/// dict's or list's, held for a one-pass copy) may suspend the outer one
/// while it waits, letting another thread change that container midway.
/// With the GIL no lock is taken (and the GIL is not released): always true.
///
/// # Safety
/// Attached; `obj` is a live object of exact type `str` (so compact).
#[inline(always)]
pub unsafe fn str_utf8_ready(obj: *mut sys::PyObject) -> bool {
    #[cfg(Py_GIL_DISABLED)]
    // SAFETY: the caller's contract: an exact `str` is compact, so its head
    // is `PyASCIIObject` and, when not ASCII, `PyCompactUnicodeObject`. The
    // state is set at creation (the bits read here never change); the UTF-8
    // pointer is published by CPython with a release store once made, and
    // read here as CPython reads it (an acquire load). CPython's own field,
    // not a protocol of ours: outside the `sync.rs` facade.
    unsafe {
        use std::sync::atomic::{AtomicPtr, Ordering::Acquire};
        if str_is_ascii(obj) {
            return true;
        }
        let utf8 =
            std::ptr::addr_of!((*(obj as *const CompactStrHead)).utf8) as *const AtomicPtr<c_char>;
        !(*utf8).load(Acquire).is_null()
    }
    #[cfg(not(Py_GIL_DISABLED))]
    {
        let _ = obj;
        true
    }
}

/// The hash `str` `obj` has cached, or -1 if none.
///
/// # Safety
/// Attached; `obj` is a live object passing `PyUnicode_Check`, of this
/// interpreter (its GIL held on GIL builds).
#[inline(always)]
pub unsafe fn str_cached_hash(obj: *mut sys::PyObject) -> sys::Py_hash_t {
    #[cfg(Py_GIL_DISABLED)]
    // SAFETY: the caller's contract: a str starts with the `PyASCIIObject`
    // layout. Another thread may be storing the hash meanwhile: CPython
    // reads and writes it with relaxed atomic accesses on free-threaded
    // builds (`PyUnicode_HASH`, `PyUnicode_SET_HASH`), so this reads it the
    // same way, and sees -1 or the whole hash. CPython's own field, not a
    // protocol of ours: outside the `sync.rs` facade.
    unsafe {
        use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
        let hash = std::ptr::addr_of!((*(obj as *const StrHead)).hash) as *const AtomicIsize;
        (*hash).load(Relaxed)
    }
    #[cfg(not(Py_GIL_DISABLED))]
    // SAFETY: the caller's contract: a str starts with the `PyASCIIObject`
    // layout, and the GIL we hold orders this read after any store of it.
    unsafe {
        std::ptr::addr_of!((*(obj as *const StrHead)).hash).read()
    }
}

/// Give a new `str` the hash its equal had in another interpreter of this
/// process (every interpreter hashes with the process's one secret), so
/// that inserting it in a dict or set does not hash it again.
///
/// A `str` of fewer than 2 characters is left alone: the empty `str` and the
/// one-character Latin-1 ones are singletons that every interpreter shares.
///
/// # Safety
/// Attached; `obj` is a `str` this thread's call just returned, and no other
/// thread can reach it yet unless it is such a singleton; `hash` is the hash
/// of an equal `str`.
#[inline(always)]
pub unsafe fn str_set_hash(obj: *mut sys::PyObject, hash: sys::Py_hash_t) {
    let head = obj as *mut StrHead;
    // SAFETY: the caller's contract: a str of 2 characters or more that
    // CPython just created is fresh, unseen by other threads; a hash still
    // -1 is not computed yet (a str's is set once).
    unsafe {
        if std::ptr::addr_of!((*head).length).read() >= 2
            && std::ptr::addr_of!((*head).hash).read() == -1
        {
            std::ptr::addr_of_mut!((*head).hash).write(hash);
        }
    }
}

/// cpython/longintrepr.h (3.12+): the head of an `int`'s value, `lv_tag`
/// (digit count << 3 | sign: 0 positive, 1 zero, 2 negative) and the first
/// 30-bit digit (`PYLONG_BITS_IN_DIGIT` is 30 on every build we support:
/// none of the provisioned `pyconfig.h` overrides it). pyo3-ffi skips the
/// header's `PyUnstable_Long_IsCompact`/`CompactValue` (static inline
/// functions), so they are re-expressed here from the documented layout.
#[repr(C)]
struct LongHead {
    ob_base: sys::PyObject,
    lv_tag: usize,
    digit0: u32,
}

/// The value of `obj` if it is a *compact* int (at most one digit, |v| < 2^30)
/// — `PyUnstable_Long_CompactValue` without the call; `None` for any other
/// int (the caller falls back to `PyLong_AsLongLong`).
///
/// # Safety
/// Attached; `obj` is a live object passing `PyLong_Check`.
#[inline(always)]
pub unsafe fn long_compact_value(obj: *mut sys::PyObject) -> Option<i64> {
    let head = obj as *const LongHead;
    // SAFETY: the caller's contract: `obj` is a live int (or subclass), whose
    // object starts with the `PyLongObject` layout, so `lv_tag` is readable.
    let tag = unsafe { std::ptr::addr_of!((*head).lv_tag).read() };
    if tag >= (2 << 3) {
        return None;
    }
    match tag & 3 {
        1 => Some(0),
        // SAFETY: as above; a compact non-zero int has one initialised digit.
        sign => {
            Some((1 - sign as i64) * unsafe { std::ptr::addr_of!((*head).digit0).read() } as i64)
        }
    }
}
