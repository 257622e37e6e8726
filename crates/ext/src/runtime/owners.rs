//! Interpreters as owners: the extension's map from CPython interpreter ids to
//! the engine's owners ([`OwnerRecord`], one per interpreter that imported
//! the extension), registration on import, finalization at the interpreter's
//! exit (with the hooks the types register: nothing here calls up into a
//! type), pending-call draining and the reaper thread.
//!
//! Ownership of the records: `INTERPS` holds one `Arc<OwnerRecord>` per live
//! owner; each module object of that interpreter holds one more (its state),
//! and threads cache one for the interpreter they last entered.
//! A record's raw interpreter pointer is dereferenced only while holding a
//! guard on the record's owner, from the interpreter's own threads, or by
//! `destroy()` on an interpreter it created and marked closing (so nobody else
//! ends it); it never dangles: the owner finalizes before its interpreter is
//! freed.

use super::errors::Error;
use super::pep788;
use super::state::TypeTable;
use crate::ffi::{self, sys, PyErrSet, PyResult};
use crossinterp_core::sync::{
    lock, Arc, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering,
};
use crossinterp_core::{Attached, FinalizeOptions, Owner, Registry, SlowFinalize, View};
use std::collections::BTreeMap;
use std::ptr::null_mut;
use std::time::Duration;

/// How an interpreter came to be (the `whence` of PEP 734's `Interpreter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    /// The main interpreter.
    RuntimeInit,
    /// Created by `crossinterp.interpreters.create()`.
    Crossinterp,
    /// Created elsewhere (the stdlib, another extension, the C API).
    Unknown,
}

impl Whence {
    pub fn as_str(self) -> &'static str {
        match self {
            Whence::RuntimeInit => "runtime init",
            Whence::Crossinterp => "crossinterp",
            Whence::Unknown => "unknown",
        }
    }
}

#[derive(Default)]
struct RunState {
    running: bool,
    closing: bool,
}

/// One interpreter that imported the extension.
///
/// Ownership: shared (`Arc`) by `INTERPS` and the interpreter's module
/// objects; readable from any thread. `interp` may only be dereferenced under
/// a guard of `view` (or on a thread attached to that interpreter).
pub struct OwnerRecord {
    pub iid: i64,
    interp: usize,
    pub view: View,
    pub whence: Whence,
    owner: Mutex<Option<Owner>>,
    run: Mutex<RunState>,
    /// Guards held only to pin memory this interpreter lent (exported
    /// `BorrowedBuffer`s elsewhere): at process exit they must not hang the
    /// exit (see `finalize_current`).
    pub pins: AtomicU64,
    /// Guards held by Python `InterpreterGuard` objects (any interpreter's):
    /// at process exit they must not hang it either.
    pub py_guards: AtomicU64,
    /// Objects of this interpreter held by cross-owner proxy handles, by
    /// handle key: whoever removes an entry releases that reference (the
    /// handle's last drop, or this interpreter's finalization for the rest).
    pub shared: crossinterp_core::SharedRefs<usize>,
    /// Python `Interpreter` objects (of any interpreter) that own a reference
    /// to this interpreter: one made by `create()` is closed when the last
    /// goes (`api::interpreters::decref`).
    pub refs: AtomicI64,
    /// On 3.15: a PEP 788 `PyInterpreterView*` of this interpreter (0 if none).
    pub pep788_view: AtomicUsize,
    /// This interpreter's native types and the Python-side objects they use.
    pub types: TypeTable,
    /// The module that filled `types` (a strong reference, so the module and
    /// its types cannot be collected while the owner runs; released by the
    /// owner's finalization, after which the interpreter's teardown collects
    /// them). NULL before the first exec slot and after finalization.
    module: AtomicPtr<sys::PyObject>,
    /// The same module, as an identity only (never dereferenced): the one
    /// whose GC slots report and release `types`.
    types_owner: AtomicPtr<sys::PyObject>,
}

/// Why an interpreter cannot run code for us now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// It is being closed.
    Closing,
    /// It already runs code for us.
    Running,
}

impl OwnerRecord {
    /// The interpreter pointer.
    ///
    /// # Safety
    /// Dereference it only while holding a guard of `self.view`, or while
    /// attached to this interpreter.
    pub unsafe fn interp_ptr(&self) -> *mut sys::PyInterpreterState {
        self.interp as *mut sys::PyInterpreterState
    }

    /// Mark the interpreter as running code for us; false if it already is or
    /// is being closed.
    pub fn try_start(&self) -> Result<(), StartError> {
        let mut r = lock(&self.run);
        if r.closing {
            return Err(StartError::Closing);
        }
        if r.running {
            return Err(StartError::Running);
        }
        r.running = true;
        Ok(())
    }

    pub fn stop(&self) {
        lock(&self.run).running = false;
    }

    pub fn is_running(&self) -> bool {
        lock(&self.run).running
    }

    /// Refuse further runs; false if running now.
    pub fn try_close(&self) -> bool {
        let mut r = lock(&self.run);
        if r.running || r.closing {
            return false;
        }
        r.closing = true;
        true
    }

    pub fn cancel_close(&self) {
        lock(&self.run).closing = false;
    }

    /// The module that made this interpreter's types (borrowed; NULL after
    /// the owner's finalization).
    pub fn types_module(&self) -> *mut sys::PyObject {
        // Relaxed: written and read attached to this interpreter.
        self.module.load(Ordering::Relaxed)
    }

    /// Whether `module` is the module that owns this record's type table.
    pub fn owns_types(&self, module: *mut sys::PyObject) -> bool {
        // Relaxed: written and read attached to this interpreter.
        self.types_owner.load(Ordering::Relaxed) == module
    }

    /// Make `module` the owner of the type table, if none is (the first
    /// module this interpreter executes). True if it now is.
    ///
    /// # Safety
    /// Attached to this record's interpreter; `module` is our live module.
    pub unsafe fn adopt_module(&self, module: *mut sys::PyObject) -> bool {
        // Relaxed: only this interpreter's exec slot and finalization
        // (attached) touch it.
        if !self.types_owner.load(Ordering::Relaxed).is_null() {
            return false;
        }
        // SAFETY: attached; a new strong reference, released at finalization.
        unsafe { sys::Py_IncRef(module) };
        self.module.store(module, Ordering::Relaxed);
        self.types_owner.store(module, Ordering::Relaxed);
        true
    }
}

/// One step of an owner's life that types take part in.
pub enum Event<'a> {
    /// The owner refuses new guards now (attached to it).
    Begin(&'a OwnerRecord),
    /// Before waiting for open guards, detached (not at process exit).
    Wait(&'a OwnerRecord, Duration),
    /// Pending calls drained, still attached: release what the owner lends.
    Release(&'a OwnerRecord),
    /// The owner is finalized; its interpreter (`iid`) runs no more of our code.
    Gone(i64),
    /// The main interpreter's exit, before any owner finalizes (attached to
    /// the main interpreter).
    ProcessExit,
}

/// A type's part in owners' lives (registered once, at module exec).
pub type Hook = fn(&Event<'_>);

static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Register `hook` (idempotent); hooks run in registration order.
pub fn register_hook(hook: Hook) {
    let mut hooks = lock(&HOOKS);
    if !hooks.iter().any(|h| *h as usize == hook as usize) {
        hooks.push(hook);
    }
}

/// Run every hook for `event`.
pub fn notify(event: Event<'_>) {
    let hooks: Vec<Hook> = lock(&HOOKS).clone();
    for h in hooks {
        h(&event);
    }
}

static INTERPS: Mutex<BTreeMap<i64, Arc<OwnerRecord>>> = Mutex::new(BTreeMap::new());

/// Hold the owner records and the hooks across a `fork()` (`runtime::fork`).
pub fn fork_hold(h: &mut crossinterp_core::fork::Holds) -> bool {
    crossinterp_core::fork::hold_static(h, &INTERPS)
        && crossinterp_core::fork::hold_static(h, &HOOKS)
}

/// Set by the main interpreter's exit before it closes the interpreters that
/// are still open: from then on, a finalization does not wait for guards that
/// only pin lent memory (the process is ending; waiting would hang it).
pub static PROCESS_EXITING: AtomicBool = AtomicBool::new(false);

/// Finalization report interval, in milliseconds (`set_finalize_warn_after`).
pub static WARN_AFTER_MS: AtomicU64 = AtomicU64::new(10_000);

std::thread_local! {
    /// Set while `create()` imports the extension into the interpreter it made.
    pub static CREATING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The record of interpreter `iid`, if it is a live owner.
pub fn get(iid: i64) -> Option<Arc<OwnerRecord>> {
    lock(&INTERPS).get(&iid).cloned()
}

/// Every live record, by id.
pub fn all() -> Vec<Arc<OwnerRecord>> {
    lock(&INTERPS).values().cloned().collect()
}

/// Register the current interpreter (idempotent). Returns the record and
/// whether it is new (then the caller arranges its finalization).
pub fn register_current() -> (Arc<OwnerRecord>, bool) {
    let (interp, iid) = ffi::interp::current();
    let mut map = lock(&INTERPS);
    if let Some(r) = map.get(&iid) {
        return (r.clone(), false);
    }
    // SAFETY: always callable; the main interpreter outlives every other.
    let main_id = unsafe { sys::PyInterpreterState_GetID(sys::PyInterpreterState_Main()) };
    let whence = if iid == main_id {
        Whence::RuntimeInit
    } else if CREATING.with(|c| c.get()) {
        Whence::Crossinterp
    } else {
        Whence::Unknown
    };
    let owner = Registry::global().register(iid as u64);
    let rec = Arc::new(OwnerRecord {
        iid,
        interp: interp as usize,
        view: owner.view().clone(),
        whence,
        owner: Mutex::new(Some(owner)),
        run: Mutex::new(RunState::default()),
        pins: AtomicU64::new(0),
        py_guards: AtomicU64::new(0),
        refs: AtomicI64::new(0),
        shared: crossinterp_core::SharedRefs::new(),
        pep788_view: AtomicUsize::new(pep788::view_of_current()),
        types: TypeTable::default(),
        module: AtomicPtr::new(null_mut()),
        types_owner: AtomicPtr::new(null_mut()),
    });
    map.insert(iid, rec.clone());
    drop(map);
    ffi::interp::set_guard_fn(|iid| get(iid).and_then(|r| r.view.guard().ok()));
    super::pending::start_reaper();
    super::fork::install();
    (rec, true)
}

/// The report of a finalization that waits on open guards: the engine's
/// owner id is not the interpreter's, so the caller names the interpreter.
fn report_slow(iid: i64, s: SlowFinalize) {
    super::warnings::finalization(
        iid,
        &format!(
            "finalization of interpreter {iid} has waited {:.1}s for {} open guard(s); \
             it keeps waiting (memory in use is never freed early). A guard left open blocks \
             the interpreter's exit.",
            s.waited.as_secs_f64(),
            s.open_guards
        ),
    );
}

/// Finalize the owner of the current interpreter: refuse new guards, wait
/// (detached, so guard holders can still enter) for open ones, drain pending
/// calls attached, and forget the record. Idempotent; called from the
/// interpreter's exit (atexit), with `PyUnstable_AtExit` as the fallback when
/// the atexit callbacks were cleared (that one runs after CPython's "last
/// thread" check, so thread states cached by other threads must be gone by
/// then: they are, unless a thread used the interpreter after clearing atexit).
pub fn finalize_current() {
    let (_, iid) = ffi::interp::current();
    let Some(rec) = get(iid) else { return };
    let Some(owner) = lock(&rec.owner).take() else {
        return;
    };
    let warn_after = Duration::from_millis(WARN_AFTER_MS.load(Ordering::Relaxed).max(1));
    let mut report = |s: SlowFinalize| report_slow(iid, s);
    // Relaxed: set once by the exiting main thread before it closes the
    // interpreters whose finalization reads it (same thread, program order).
    let exiting = PROCESS_EXITING.load(Ordering::Relaxed);
    // Acquire: pairs with the Release of the pin counters in `borrowed`.
    // Threads parked at the exit gate inside this interpreter hold guards
    // they never drop, and never touch the interpreter again: not waited for.
    let mut only_pins_left = |open: u64| {
        exiting
            && open
                <= rec.pins.load(Ordering::Acquire)
                    + rec.py_guards.load(Ordering::Acquire)
                    + ffi::interp::parked_in(rec.iid)
    };
    owner.begin_finalize();
    notify(Event::Begin(&rec));
    ffi::interp::detached(|| {
        if !exiting {
            notify(Event::Wait(&rec, warn_after));
        }
        owner.wait_for_guards_until(
            &mut FinalizeOptions {
                warn_after,
                on_slow: &mut report,
            },
            Some(&mut only_pins_left),
        )
    });
    let pinned = rec.pins.load(Ordering::Acquire);
    if exiting && pinned > 0 {
        super::warnings::finalization(
            iid,
            &format!(
                "the process is exiting: interpreter {iid} ends while {pinned} memoryview(s) of \
                 memory it lent are still alive in other interpreters; that memory must not be \
                 used any more."
            ),
        );
    }
    // SAFETY: we run on a thread attached to this interpreter (atexit), and
    // it outlives this call.
    let attached = unsafe { Attached::enter(owner.id()) };
    owner.finalize_when(
        &attached,
        FinalizeOptions {
            warn_after,
            on_slow: &mut report,
        },
        &mut only_pins_left,
    );
    // What the owner still lends (objects referenced by proxies elsewhere)
    // is released here, in the owner, before it goes.
    notify(Event::Release(&rec));
    drop(attached);
    notify(Event::Gone(iid));
    // The module (and its types) may be collected by the teardown now.
    // Relaxed: attached to this interpreter, the only writer.
    let module = rec.module.swap(null_mut(), Ordering::Relaxed);
    if !module.is_null() {
        // SAFETY: attached; the reference `adopt_module` took.
        unsafe { sys::Py_DecRef(module) };
    }
    // Finalized: no guard, so no new cached thread state, and none attached.
    // SAFETY: attached to `iid` (its exit), every guard was waited for.
    unsafe { ffi::interp::delete_cached_for(iid) };
    lock(&INTERPS).remove(&iid);
}

/// The number of live owners (registered and not yet finalized).
pub fn live_owners() -> usize {
    Registry::global().live_count()
}

impl Drop for OwnerRecord {
    fn drop(&mut self) {
        pep788::close_view(self.pep788_view.load(Ordering::Acquire));
    }
}

/// How many interpreters' records a thread keeps at hand: a thread that
/// calls between a few interpreters (main -> worker -> main) finds each in
/// its cache instead of the global map.
const CACHED_RECORDS: usize = 8;

std::thread_local! {
    /// The records of the interpreters this thread asked for, most recent
    /// first (ids are never reused, so a hit is exact; a finalized owner's
    /// record is only memory, dropped when it falls out).
    static LAST: std::cell::RefCell<Vec<Arc<OwnerRecord>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The cached record of `iid` in `cache`, if any.
fn cached(cache: &[Arc<OwnerRecord>], iid: i64) -> Option<&Arc<OwnerRecord>> {
    cache.iter().find(|r| r.iid == iid)
}

/// The record of the attached interpreter (`InterpreterNotFoundError` if it
/// is not an owner: it never imported the extension, or it finalized).
pub fn current() -> PyResult<Arc<OwnerRecord>> {
    let (_, iid) = ffi::interp::current();
    let hit = LAST.with(|c| c.try_borrow().ok().and_then(|c| cached(&c, iid).cloned()));
    if let Some(r) = hit {
        return Ok(r);
    }
    let Some(rec) = get(iid) else {
        return Err(not_an_owner(iid));
    };
    LAST.with(|c| {
        // Busy (a caller up the stack borrows it): just don't cache.
        if let Ok(mut c) = c.try_borrow_mut() {
            c.insert(0, rec.clone());
            c.truncate(CACHED_RECORDS);
        }
    });
    Ok(rec)
}

/// Run `f` with the record of the attached interpreter, borrowed from this
/// thread's cache when it holds that record (no reference count touched: the
/// hot paths of the data layer use this), else as [`current`] finds it.
pub fn with_current<R>(f: impl FnOnce(&OwnerRecord) -> R) -> PyResult<R> {
    let (_, iid) = ffi::interp::current();
    let mut f = Some(f);
    let hit = LAST.with(|c| {
        // A nested call (inside `f`) may borrow again; only a replacement
        // needs the cell exclusively, and `current` then skips caching.
        let c = c.try_borrow().ok()?;
        let r = cached(&c, iid)?;
        f.take().map(|f| f(r))
    });
    if let Some(v) = hit {
        return Ok(v);
    }
    let rec = current()?;
    Ok((f.take().expect("f not yet called"))(&rec))
}

/// `InterpreterNotFoundError` raised without a record's type table (there is
/// none for this interpreter).
#[cold]
fn not_an_owner(iid: i64) -> PyErrSet {
    match ffi::import_attr(
        crate::cstr!("crossinterp._errors"),
        crate::cstr!("InterpreterNotFoundError"),
    ) {
        // SAFETY: `cls` is a live class of the attached interpreter.
        Ok(cls) => unsafe {
            ffi::raise_type(
                cls.as_ptr(),
                &format!(
                    "interpreter {iid} not found (it was closed, or never imported crossinterp)"
                ),
            )
        },
        Err(e) => e,
    }
}

/// The record of live owner `iid`, or `InterpreterNotFoundError`.
pub fn record(iid: i64) -> PyResult<Arc<OwnerRecord>> {
    get(iid).ok_or_else(|| Error::NotFound(iid).into())
}
