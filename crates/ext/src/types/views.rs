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

use super::Entry;
use crate::cstr;
use crate::ffi::args::{arity, Args};
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::runtime::owners::Event;
use crate::runtime::owners::{self, OwnerRecord};
use crate::runtime::pep788::{self, NativeGuard};
use crate::runtime::{self, Error};
use crossinterp_core::sync::{lock, Arc, AtomicU64, Mutex, Ordering};
use crossinterp_core::{Guard, OwnerState};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
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

/// Hold the open guards' table across a `fork()` (`runtime::fork`).
fn fork_hold(h: &mut crossinterp_core::fork::Holds) -> bool {
    crossinterp_core::fork::hold_static(h, &OPEN)
}
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
        runtime::warnings::finalization(
            iid,
            &format!(
                "interpreter {iid} is exiting with {n} guard(s) on itself still open (held by its \
                 own InterpreterGuard objects); they are closed now."
            ),
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
            runtime::warnings::finalization(
                rec.iid,
                &format!(
                    "finalization of interpreter {} has waited {:.1}s for {} PEP 788 guard(s) \
                     held by C code; it keeps waiting.",
                    rec.iid,
                    start.elapsed().as_secs_f64(),
                    open - ours()
                ),
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
pub struct InterpreterView {
    rec: Arc<OwnerRecord>,
}

/// The value of an `InterpreterGuard`. Any thread may close it.
pub struct InterpreterGuard {
    st: Arc<GuardState>,
}

impl Drop for InterpreterGuard {
    fn drop(&mut self) {
        self.st.close();
    }
}

type V<'a> = This<'a, InterpreterView>;
type G<'a> = This<'a, InterpreterGuard>;

/// A new `InterpreterView` of `rec` in the attached interpreter.
pub fn view_object(rec: Arc<OwnerRecord>) -> PyResult<Owned> {
    runtime::new_instance(InterpreterView { rec })
}

/// `view(id)`: the view of live owner `id`.
pub fn view_of(iid: i64) -> PyResult<Owned> {
    let rec = owners::get(iid).ok_or_else(|| PyErrSet::from(Error::NotFound(iid)))?;
    view_object(rec)
}

fn no_pickle() -> PyErrSet {
    Error::not_shareable(
        "interpreter guards cannot be pickled or passed to another interpreter; \
         pass the InterpreterView (or the interpreter id) and take a guard there",
    )
}

impl InterpreterView {
    fn current(_cls: *mut sys::PyTypeObject, args: Args) -> PyResult<Owned> {
        arity("current", args, 0)?;
        let (_, iid) = ffi::interp::current();
        view_of(iid)
    }

    fn guard(this: V, args: Args) -> PyResult<Owned> {
        arity("guard", args, 0)?;
        let st = open_guard(&this.rec)?;
        runtime::new_instance(InterpreterGuard { st })
    }

    fn is_alive(this: V, args: Args) -> PyResult<bool> {
        arity("is_alive", args, 0)?;
        Ok(this.rec.view.state() == OwnerState::Running)
    }

    fn state(this: V, args: Args) -> PyResult<&'static str> {
        arity("state", args, 0)?;
        Ok(match this.rec.view.state() {
            OwnerState::Running => "running",
            OwnerState::Finalizing => "finalizing",
            OwnerState::Finalized => "finalized",
        })
    }

    fn reduce(_this: V, _args: Args) -> PyResult<()> {
        Err(no_pickle())
    }

    fn id(this: V) -> PyResult<i64> {
        Ok(this.rec.iid)
    }

    fn repr(this: V) -> PyResult<String> {
        let state = match this.rec.view.state() {
            OwnerState::Running => "alive",
            OwnerState::Finalizing => "finalizing",
            OwnerState::Finalized => "gone",
        };
        Ok(format!("InterpreterView(id={}, {state})", this.rec.iid))
    }

    /// The id (the shim maps -1 to -2).
    fn hash(this: V) -> PyResult<sys::Py_hash_t> {
        Ok(this.rec.iid as sys::Py_hash_t)
    }

    fn richcompare(this: V, other: *mut sys::PyObject, op: c_int) -> PyResult<Owned> {
        // SAFETY: attached; `other` is a live argument, and an instance of
        // this very type (checked first) when read as one.
        unsafe {
            let same_type = sys::Py_TYPE(this.as_ptr()) == sys::Py_TYPE(other);
            if !same_type || (op != sys::Py_EQ && op != sys::Py_NE) {
                return Ok(Owned::from_borrowed(sys::Py_NotImplemented()));
            }
            let eq = this.rec.iid == V::from_ptr(other).rec.iid;
            let r = if (op == sys::Py_EQ) == eq {
                sys::Py_True()
            } else {
                sys::Py_False()
            };
            Ok(Owned::from_borrowed(r))
        }
    }
}

impl InterpreterGuard {
    fn close(this: G, args: Args) -> PyResult<()> {
        arity("close", args, 0)?;
        this.st.close();
        Ok(())
    }

    fn enter(this: G, args: Args) -> PyResult<Owned> {
        arity("__enter__", args, 0)?;
        if lock(&this.st.held).is_none() {
            return Err(Error::interpreter("the guard is closed"));
        }
        Ok(this.to_owned())
    }

    fn exit(this: G, _args: Args) -> PyResult<bool> {
        this.st.close();
        Ok(false)
    }

    fn is_open(this: G, args: Args) -> PyResult<bool> {
        arity("is_open", args, 0)?;
        Ok(lock(&this.st.held).is_some())
    }

    fn view(this: G, args: Args) -> PyResult<Owned> {
        arity("view", args, 0)?;
        view_object(this.st.rec.clone())
    }

    fn reduce(_this: G, _args: Args) -> PyResult<()> {
        Err(no_pickle())
    }

    fn repr(this: G) -> PyResult<String> {
        let open = if lock(&this.st.held).is_some() {
            "open"
        } else {
            "closed"
        };
        Ok(format!("InterpreterGuard(id={}, {open})", this.st.rec.iid))
    }
}

crate::native_class! {
    InterpreterView {
        name: "crossinterp.InterpreterView",
        attr: "InterpreterView",
        doc: "A weak reference to an interpreter (PEP 788): it never keeps the interpreter alive. Get one with Interpreter.view() or InterpreterView.current().",
        flags: sys::Py_TPFLAGS_DISALLOW_INSTANTIATION,
        methods: [
            (class, "current", "", InterpreterView::current,
                "current() -> InterpreterView\n\nA view of the interpreter the calling thread runs in."),
            (fast, "guard", "", InterpreterView::guard,
                "guard() -> InterpreterGuard\n\nHold off the interpreter's finalization until the guard is closed.\nRaises InterpreterFinalizingError if it is finalizing, InterpreterGoneError if it is gone."),
            (fast, "is_alive", "", InterpreterView::is_alive,
                "is_alive() -> bool\n\nWhether the interpreter is running (not finalizing or gone)."),
            (fast, "state", "", InterpreterView::state,
                "state() -> str\n\n'running', 'finalizing' or 'finalized'."),
            (fast, "__reduce__", "", InterpreterView::reduce,
                "Views cross as interpreter ids: not picklable."),
        ],
        getset: [("id", InterpreterView::id, "The interpreter's id.")],
        slots: [
            (repr, InterpreterView::repr),
            (hash, InterpreterView::hash),
            (richcompare, InterpreterView::richcompare),
        ],
    }
}

crate::native_class! {
    InterpreterGuard {
        name: "crossinterp.InterpreterGuard",
        attr: "InterpreterGuard",
        doc: "An open guard on an interpreter: its finalization waits until the guard is closed (close(), the end of a with block, or deallocation). On 3.15 it also holds a PEP 788 PyInterpreterGuard.",
        flags: sys::Py_TPFLAGS_DISALLOW_INSTANTIATION,
        methods: [
            (fast, "close", "", InterpreterGuard::close, "close() -> None\n\nRelease the guard (idempotent)."),
            (fast, "is_open", "", InterpreterGuard::is_open, "is_open() -> bool"),
            (fast, "view", "", InterpreterGuard::view, "view() -> InterpreterView"),
            (fast, "__enter__", "", InterpreterGuard::enter, "Return the guard (InterpreterError if closed)."),
            (fast, "__exit__", ", *exc_info", InterpreterGuard::exit, "Close the guard."),
            (fast, "__reduce__", "", InterpreterGuard::reduce, "Guards are not picklable."),
            (fast, "__reduce_ex__", ", protocol, /", InterpreterGuard::reduce, "Guards are not picklable."),
        ],
        getset: [],
        slots: [(repr, InterpreterGuard::repr)],
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
pub const ENTRY: Entry = Entry {
    classes: &[InterpreterView::DEF, InterpreterGuard::DEF],
    hook: Some(on_event),
    converters: &[],
    fork_hold: Some(fork_hold),
};
