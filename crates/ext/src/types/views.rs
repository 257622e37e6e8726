//! Views and guards from Python (PEP 788's model): `InterpreterView` is a weak
//! reference to an interpreter (it never keeps it alive); `view.guard()` makes
//! an `InterpreterGuard`, which holds off the interpreter's finalization until
//! it is closed (`close()`, the end of a `with` block, or its deallocation).
//!
//! `Interpreter.close()` and the interpreter's own exit wait for open guards,
//! printing a warning every `set_finalize_warn_after` seconds; `close()` from a
//! thread that itself holds a guard on that interpreter raises
//! `InterpreterError` instead of waiting forever. Guards an interpreter holds
//! on *itself* through its own objects are closed by its exit (nothing could
//! close them while it waits), and at process exit guards held by guard
//! objects do not hold the exit.
//!
//! On 3.15 each guard also holds a real PEP 788 `PyInterpreterGuard` of the
//! interpreter (from a `PyInterpreterView` made when the interpreter was
//! registered), so CPython's own finalization waits for it too; and since our
//! owner finalizes at the interpreter's exit, a `PyInterpreterGuard` held by C
//! code keeps our owner alive as well. The 3.15 functions are found at run time
//! (`dlsym`), so one code path serves every version.

use crate::cstr;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::legacy::{alloc_native, dealloc_native, native_ref, Args, Native};
use crate::runtime::owners::Event;
use crate::runtime::owners::{self, OwnerRecord};
use crate::runtime::pep788::{self, NativeGuard};
use crate::runtime::Error;
use crossinterp_core::sync::{lock, Arc, AtomicU64, Mutex, Ordering};
use crossinterp_core::{Guard, OwnerState};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::thread::ThreadId;

// ------------------------------------------------------------------ guards

/// One open guard of a Python `InterpreterGuard`.
struct Held {
    _guard: Guard,
    _native: Option<NativeGuard>,
}

/// The shared state of an `InterpreterGuard` object.
///
/// Ownership: the guard object owns it (one `Arc`), the registry `OPEN`
/// another while open. Touched from any thread; `held` is behind a lock.
struct GuardState {
    no: u64,
    rec: Arc<OwnerRecord>,
    /// The interpreter whose object holds the guard.
    holder: i64,
    /// The thread that took it.
    thread: ThreadId,
    held: Mutex<Option<Held>>,
}

impl GuardState {
    /// Close the guard; false if it was already closed.
    fn close(&self) -> bool {
        let held = lock(&self.held).take();
        if held.is_none() {
            return false;
        }
        lock(&OPEN).remove(&self.no);
        // Release: pairs with the Acquire in the exit-time check.
        self.rec.py_guards.fetch_sub(1, Ordering::Release);
        drop(held);
        true
    }
}

/// Every open guard of a Python guard object, by number.
static OPEN: Mutex<BTreeMap<u64, Arc<GuardState>>> = Mutex::new(BTreeMap::new());
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// The open guards that satisfy `keep` (a snapshot, taken under the lock).
fn open_guards(keep: impl Fn(&GuardState) -> bool) -> Vec<Arc<GuardState>> {
    lock(&OPEN).values().filter(|g| keep(g)).cloned().collect()
}

/// Take a guard on `rec` for a Python `InterpreterGuard`.
fn open_guard(rec: &Arc<OwnerRecord>) -> PyResult<Arc<GuardState>> {
    let refused = |rec: &OwnerRecord| {
        if rec.view.state() == OwnerState::Finalized {
            Error::gone(&format!("interpreter {} is gone", rec.iid))
        } else {
            Error::Finalizing(rec.iid).raise()
        }
    };
    let guard = match rec.view.guard() {
        Ok(g) => g,
        Err(crossinterp_core::GuardError::Finalizing(_)) => return Err(refused(rec)),
        Err(e) => return Err(Error::guard(e, rec.iid).into()),
    };
    let native = match NativeGuard::acquire(rec.pep788_view.load(Ordering::Acquire)) {
        Ok(n) => n,
        Err(()) => {
            drop(guard);
            return Err(refused(rec));
        }
    };
    let (_, holder) = ffi::interp::current();
    // Release: pairs with the Acquire in the exit-time check (a guard object
    // counted there is one whose guard is open).
    rec.py_guards.fetch_add(1, Ordering::Release);
    let st = Arc::new(GuardState {
        // Relaxed: a unique number is all that is needed.
        no: NEXT_GUARD.fetch_add(1, Ordering::Relaxed),
        rec: rec.clone(),
        holder,
        thread: std::thread::current().id(),
        held: Mutex::new(Some(Held {
            _guard: guard,
            _native: native,
        })),
    });
    lock(&OPEN).insert(st.no, st.clone());
    Ok(st)
}

/// Close the guards that interpreter `iid`'s own objects hold on itself (its
/// exit is starting: nothing could close them while it waits), with a warning.
pub fn close_self_guards(iid: i64) {
    let mine = open_guards(|g| g.holder == iid && g.rec.iid == iid);
    let n = mine.iter().filter(|g| g.close()).count();
    if n > 0 {
        eprintln!(
            "crossinterp: WARNING: interpreter {iid} is exiting with {n} guard(s) on itself still open \
             (held by its own InterpreterGuard objects); they are closed now."
        );
    }
}

/// The process is exiting: close every guard Python guard objects hold (they
/// must not hold the exit; their objects are about to go).
pub fn close_all_at_exit() {
    for g in open_guards(|_| true) {
        g.close();
    }
}

/// On 3.15: wait (the caller is detached) until no PEP 788 guard other than
/// our own guard objects' is open on interpreter `rec`, reporting every
/// `warn_after`. CPython itself waits for these guards only after running
/// the interpreter's atexit callbacks, where our owner finalizes; waiting
/// here is what lets a `PyInterpreterGuard` held by C code keep our owner
/// alive too. Uses `_PyInterpreterState_GuardCountdown` (exported by 3.15);
/// without it, returns at once.
pub fn wait_for_native_guards(rec: &OwnerRecord, warn_after: std::time::Duration) {
    type Countdown = unsafe extern "C" fn(*mut sys::PyInterpreterState) -> sys::Py_ssize_t;
    static COUNTDOWN: std::sync::OnceLock<Option<Countdown>> = std::sync::OnceLock::new();
    let f = COUNTDOWN.get_or_init(|| {
        pep788::api()?;
        // SAFETY: dlsym with a NUL-terminated name; 3.15 exports this
        // function with this signature (pycore_pystate.h).
        unsafe {
            let p = pep788::dlsym(
                pep788::RTLD_DEFAULT,
                cstr!("_PyInterpreterState_GuardCountdown").as_ptr(),
            );
            (!p.is_null()).then(|| std::mem::transmute::<*mut c_void, Countdown>(p))
        }
    });
    let Some(f) = *f else { return };
    let ours = || -> isize {
        open_guards(|g| {
            g.rec.iid == rec.iid && lock(&g.held).as_ref().is_some_and(|h| h._native.is_some())
        })
        .len() as isize
    };
    let start = std::time::Instant::now();
    let mut next_report = warn_after;
    loop {
        // SAFETY: the interpreter is alive (it is running its own exit, on
        // the thread that waits here); the function reads one counter.
        let open = unsafe { f(rec.interp_ptr()) };
        if open <= ours() {
            return;
        }
        if start.elapsed() >= next_report {
            eprintln!(
                "crossinterp: WARNING: finalization of interpreter {} has waited {:.1}s for {} PEP 788 \
                 guard(s) held by C code; it keeps waiting.",
                rec.iid,
                start.elapsed().as_secs_f64(),
                open - ours()
            );
            next_report += warn_after;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether the calling thread holds an open guard on `iid` through an object
/// of another interpreter (then closing `iid` from this thread would wait for
/// itself forever; guards `iid`'s own objects hold are closed by its exit).
pub fn held_by_this_thread(iid: i64) -> bool {
    let me = std::thread::current().id();
    !open_guards(|g| {
        g.rec.iid == iid && g.holder != iid && g.thread == me && lock(&g.held).is_some()
    })
    .is_empty()
}

// ------------------------------------------------------------------ Python types

/// The value of an `InterpreterView`: the record (memory only: a view never
/// keeps the interpreter alive). Immutable; any thread.
pub struct ViewObj {
    rec: Arc<OwnerRecord>,
}

/// The value of an `InterpreterGuard`. Any thread may close it.
pub struct GuardObj {
    st: Arc<GuardState>,
}

impl Drop for GuardObj {
    fn drop(&mut self) {
        self.st.close();
    }
}

/// A new `InterpreterView` of `rec` in the attached interpreter.
pub fn view_object(rec: Arc<OwnerRecord>) -> PyResult<Owned> {
    let tp = ffi::import_attr(cstr!("crossinterp._native"), cstr!("InterpreterView"))?;
    // SAFETY: this interpreter's InterpreterView type (layout Native<ViewObj>).
    unsafe { alloc_native(tp.as_ptr() as *mut sys::PyTypeObject, ViewObj { rec }) }
}

/// `view(id)`: the view of live owner `id`.
pub fn view_of(iid: i64) -> PyResult<Owned> {
    let rec = owners::get(iid).ok_or_else(|| PyErrSet::from(Error::NotFound(iid)))?;
    view_object(rec)
}

fn view_current(_cls: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("current", args, 0)?;
    let (_, iid) = ffi::interp::current();
    view_of(iid).map(Owned::into_ptr)
}

fn view_guard(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("guard", args, 0)?;
    // SAFETY: `slf` is a live InterpreterView.
    let rec = unsafe { native_ref::<ViewObj>(slf) }.rec.clone();
    let st = open_guard(&rec)?;
    let tp = ffi::import_attr(cstr!("crossinterp._native"), cstr!("InterpreterGuard"))?;
    // SAFETY: this interpreter's InterpreterGuard type (layout Native<GuardObj>).
    unsafe { alloc_native(tp.as_ptr() as *mut sys::PyTypeObject, GuardObj { st }) }
        .map(Owned::into_ptr)
}

fn view_is_alive(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("is_alive", args, 0)?;
    // SAFETY: `slf` is a live InterpreterView.
    let rec = &unsafe { native_ref::<ViewObj>(slf) }.rec;
    let alive = rec.view.state() == OwnerState::Running;
    // SAFETY: attached.
    Ok(unsafe {
        Owned::from_borrowed(if alive {
            sys::Py_True()
        } else {
            sys::Py_False()
        })
    }
    .into_ptr())
}

fn view_state(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("state", args, 0)?;
    // SAFETY: `slf` is a live InterpreterView.
    let rec = &unsafe { native_ref::<ViewObj>(slf) }.rec;
    let s = match rec.view.state() {
        OwnerState::Running => "running",
        OwnerState::Finalizing => "finalizing",
        OwnerState::Finalized => "finalized",
    };
    ffi::new_str(s).map(Owned::into_ptr)
}

unsafe extern "C" fn view_get_id(slf: *mut sys::PyObject, _c: *mut c_void) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a live InterpreterView.
        let rec = &unsafe { native_ref::<ViewObj>(slf) }.rec;
        ffi::new_int(rec.iid).map(Owned::into_ptr)
    })
}

unsafe extern "C" fn view_repr(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a live InterpreterView.
        let rec = &unsafe { native_ref::<ViewObj>(slf) }.rec;
        let state = match rec.view.state() {
            OwnerState::Running => "alive",
            OwnerState::Finalizing => "finalizing",
            OwnerState::Finalized => "gone",
        };
        ffi::new_str(&format!("InterpreterView(id={}, {state})", rec.iid)).map(Owned::into_ptr)
    })
}

unsafe extern "C" fn view_hash(slf: *mut sys::PyObject) -> sys::Py_hash_t {
    // SAFETY: `slf` is a live InterpreterView.
    let iid = unsafe { native_ref::<ViewObj>(slf) }.rec.iid;
    if iid == -1 {
        -2
    } else {
        iid as sys::Py_hash_t
    }
}

unsafe extern "C" fn view_richcompare(
    a: *mut sys::PyObject,
    b: *mut sys::PyObject,
    op: std::ffi::c_int,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `a` is a live InterpreterView; `b` is checked before use.
        unsafe {
            let same_type = sys::Py_TYPE(a) == sys::Py_TYPE(b);
            if !same_type || (op != sys::Py_EQ && op != sys::Py_NE) {
                return Ok(Owned::from_borrowed(sys::Py_NotImplemented()).into_ptr());
            }
            let eq = native_ref::<ViewObj>(a).rec.iid == native_ref::<ViewObj>(b).rec.iid;
            let r = if (op == sys::Py_EQ) == eq {
                sys::Py_True()
            } else {
                sys::Py_False()
            };
            Ok(Owned::from_borrowed(r).into_ptr())
        }
    })
}

fn guard_close(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("close", args, 0)?;
    // SAFETY: `slf` is a live InterpreterGuard.
    unsafe { native_ref::<GuardObj>(slf) }.st.close();
    Ok(ffi::none())
}

fn guard_enter(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("__enter__", args, 0)?;
    // SAFETY: `slf` is a live InterpreterGuard.
    let st = &unsafe { native_ref::<GuardObj>(slf) }.st;
    if lock(&st.held).is_none() {
        return Err(Error::interpreter("the guard is closed"));
    }
    // SAFETY: attached; `slf` is live.
    Ok(unsafe { Owned::from_borrowed(slf) }.into_ptr())
}

fn guard_exit(slf: *mut sys::PyObject, _args: Args) -> PyResult<*mut sys::PyObject> {
    // SAFETY: `slf` is a live InterpreterGuard.
    unsafe { native_ref::<GuardObj>(slf) }.st.close();
    // SAFETY: attached.
    Ok(unsafe { Owned::from_borrowed(sys::Py_False()) }.into_ptr())
}

fn guard_is_open(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("is_open", args, 0)?;
    // SAFETY: `slf` is a live InterpreterGuard.
    let open = lock(&unsafe { native_ref::<GuardObj>(slf) }.st.held).is_some();
    // SAFETY: attached.
    Ok(unsafe {
        Owned::from_borrowed(if open {
            sys::Py_True()
        } else {
            sys::Py_False()
        })
    }
    .into_ptr())
}

fn guard_view(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    crate::legacy::arity("view", args, 0)?;
    // SAFETY: `slf` is a live InterpreterGuard.
    let rec = unsafe { native_ref::<GuardObj>(slf) }.st.rec.clone();
    view_object(rec).map(Owned::into_ptr)
}

unsafe extern "C" fn guard_repr(slf: *mut sys::PyObject) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: `slf` is a live InterpreterGuard.
        let st = &unsafe { native_ref::<GuardObj>(slf) }.st;
        let open = if lock(&st.held).is_some() {
            "open"
        } else {
            "closed"
        };
        ffi::new_str(&format!("InterpreterGuard(id={}, {open})", st.rec.iid)).map(Owned::into_ptr)
    })
}

fn no_pickle(_slf: *mut sys::PyObject, _args: Args) -> PyResult<*mut sys::PyObject> {
    Err(Error::not_shareable(
        "interpreter guards cannot be pickled or passed to another interpreter; \
         pass the InterpreterView (or the interpreter id) and take a guard there",
    ))
}

crate::method_fn!(py_view_current => view_current);
crate::method_fn!(py_view_guard => view_guard);
crate::method_fn!(py_view_is_alive => view_is_alive);
crate::method_fn!(py_view_state => view_state);
crate::method_fn!(py_guard_close => guard_close);
crate::method_fn!(py_guard_enter => guard_enter);
crate::method_fn!(py_guard_exit => guard_exit);
crate::method_fn!(py_guard_is_open => guard_is_open);
crate::method_fn!(py_guard_view => guard_view);
crate::method_fn!(py_no_pickle => no_pickle);

use crate::method_def as m;

static mut VIEW_METHODS: [sys::PyMethodDef; 6] = [
    m!("current", py_view_current, sys::METH_FASTCALL | sys::METH_CLASS, "current() -> InterpreterView\n\nA view of the interpreter the calling thread runs in."),
    m!("guard", py_view_guard, sys::METH_FASTCALL, "guard() -> InterpreterGuard\n\nHold off the interpreter's finalization until the guard is closed.\nRaises InterpreterFinalizingError if it is finalizing, InterpreterGoneError if it is gone."),
    m!("is_alive", py_view_is_alive, sys::METH_FASTCALL, "is_alive() -> bool\n\nWhether the interpreter is running (not finalizing or gone)."),
    m!("state", py_view_state, sys::METH_FASTCALL, "state() -> str\n\n'running', 'finalizing' or 'finalized'."),
    m!("__reduce__", py_no_pickle, sys::METH_FASTCALL, "Views cross as interpreter ids: not picklable."),
    sys::PyMethodDef::zeroed(),
];

static mut GUARD_METHODS: [sys::PyMethodDef; 8] = [
    m!(
        "close",
        py_guard_close,
        sys::METH_FASTCALL,
        "close() -> None\n\nRelease the guard (idempotent)."
    ),
    m!(
        "is_open",
        py_guard_is_open,
        sys::METH_FASTCALL,
        "is_open() -> bool"
    ),
    m!(
        "view",
        py_guard_view,
        sys::METH_FASTCALL,
        "view() -> InterpreterView"
    ),
    m!(
        "__enter__",
        py_guard_enter,
        sys::METH_FASTCALL,
        "Return the guard (InterpreterError if closed)."
    ),
    m!(
        "__exit__",
        py_guard_exit,
        sys::METH_FASTCALL,
        "Close the guard."
    ),
    m!(
        "__reduce__",
        py_no_pickle,
        sys::METH_FASTCALL,
        "Guards are not picklable."
    ),
    m!(
        "__reduce_ex__",
        py_no_pickle,
        sys::METH_FASTCALL,
        "Guards are not picklable."
    ),
    sys::PyMethodDef::zeroed(),
];

static mut VIEW_GETSET: [sys::PyGetSetDef; 2] = [
    sys::PyGetSetDef {
        name: cstr!("id").as_ptr(),
        get: Some(view_get_id),
        set: None,
        doc: cstr!("The interpreter's id.").as_ptr(),
        closure: null_mut(),
    },
    sys::PyGetSetDef {
        name: std::ptr::null(),
        get: None,
        set: None,
        doc: std::ptr::null(),
        closure: null_mut(),
    },
];

/// Create this module's `InterpreterView` and `InterpreterGuard` types.
///
/// # Safety
/// Attached; `module` is our live module object (its exec slot).
pub unsafe fn add_types(module: *mut sys::PyObject) -> PyResult<()> {
    macro_rules! slot {
        ($s:expr, $f:expr) => {
            sys::PyType_Slot {
                slot: $s,
                pfunc: $f as *mut c_void,
            }
        };
    }
    let mut vslots = [
        slot!(sys::Py_tp_dealloc, dealloc_native::<ViewObj>),
        slot!(sys::Py_tp_repr, view_repr),
        slot!(sys::Py_tp_hash, view_hash),
        slot!(sys::Py_tp_richcompare, view_richcompare),
        slot!(sys::Py_tp_methods, std::ptr::addr_of_mut!(VIEW_METHODS)),
        slot!(sys::Py_tp_getset, std::ptr::addr_of_mut!(VIEW_GETSET)),
        slot!(
            sys::Py_tp_doc,
            cstr!("A weak reference to an interpreter (PEP 788): it never keeps the interpreter alive. Get one with Interpreter.view() or InterpreterView.current().").as_ptr()
        ),
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    let mut gslots = [
        slot!(sys::Py_tp_dealloc, dealloc_native::<GuardObj>),
        slot!(sys::Py_tp_repr, guard_repr),
        slot!(sys::Py_tp_methods, std::ptr::addr_of_mut!(GUARD_METHODS)),
        slot!(
            sys::Py_tp_doc,
            cstr!("An open guard on an interpreter: its finalization waits until the guard is closed (close(), the end of a with block, or deallocation). On 3.15 it also holds a PEP 788 PyInterpreterGuard.").as_ptr()
        ),
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    let flags = sys::Py_TPFLAGS_DEFAULT
        | sys::Py_TPFLAGS_IMMUTABLETYPE
        | sys::Py_TPFLAGS_DISALLOW_INSTANTIATION;
    // SAFETY: the caller's contract; the slots match the layouts.
    unsafe {
        crate::legacy::add_heap_type(
            module,
            cstr!("crossinterp.InterpreterView"),
            cstr!("InterpreterView"),
            std::mem::size_of::<Native<ViewObj>>(),
            flags,
            &mut vslots,
        )?;
        crate::legacy::add_heap_type(
            module,
            cstr!("crossinterp.InterpreterGuard"),
            cstr!("InterpreterGuard"),
            std::mem::size_of::<Native<GuardObj>>(),
            flags,
            &mut gslots,
        )
    }
}

/// Raised by `destroy` when this thread holds a guard on `iid`.
pub fn refuse_self_wait(iid: i64) -> PyErrSet {
    Error::interpreter(&format!(
        "cannot close interpreter {iid}: this thread holds an open guard on it \
         (close the guard first; closing would wait for it forever)"
    ))
}

/// The guards' part in owners' lives.
fn on_event(event: &Event<'_>) {
    match event {
        // Guards on this interpreter held by its own guard objects can never
        // be closed while it waits (its code no longer runs): close them now.
        Event::Begin(rec) => close_self_guards(rec.iid),
        Event::Wait(rec, warn_after) => wait_for_native_guards(rec, *warn_after),
        // Guards held by Python guard objects must not hold the process exit.
        Event::ProcessExit => close_all_at_exit(),
        _ => {}
    }
}

/// `InterpreterView` and `InterpreterGuard` (a guard never crosses).
pub const ENTRY: super::Entry = super::Entry {
    hook: Some(on_event),
    legacy_add: Some(add_types),
    ..super::Entry::EMPTY
};
