//! Interpreters as owners: the extension's map from CPython interpreter ids to
//! the engine's owners, registration on import, finalization at the
//! interpreter's exit, pending-call draining and the reaper thread.
//!
//! Ownership of the records: `INTERPS` holds one `Arc<InterpRecord>` per live
//! owner; each module object of that interpreter holds one more (its state).
//! A record's raw interpreter pointer is dereferenced only while holding a
//! guard on the record's owner, from the interpreter's own threads, or by
//! `destroy()` on an interpreter it created and marked closing (so nobody else
//! ends it); it never dangles: the owner finalizes before its interpreter is
//! freed.

use crate::ffi::{self, sys, PyResult};
use crossinterp_core::sync::{lock, Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};
use crossinterp_core::GuardError;
use crossinterp_core::{Attached, FinalizeOptions, Owner, Registry, SlowFinalize, View};
use std::collections::BTreeMap;
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
pub struct InterpRecord {
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
    /// This interpreter's `SharedObjectProxy` and `SharedMethodProxy` types
    /// (borrowed; the module state holds them), 0 when not (or no longer) set.
    pub proxy_types: [AtomicUsize; 2],
    /// On 3.15: a PEP 788 `PyInterpreterView*` of this interpreter (0 if none).
    pub pep788_view: AtomicUsize,
}

impl InterpRecord {
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
    pub fn try_start(&self) -> Result<(), &'static str> {
        let mut r = lock(&self.run);
        if r.closing {
            return Err("closing");
        }
        if r.running {
            return Err("running");
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
}

static INTERPS: Mutex<BTreeMap<i64, Arc<InterpRecord>>> = Mutex::new(BTreeMap::new());

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
pub fn get(iid: i64) -> Option<Arc<InterpRecord>> {
    lock(&INTERPS).get(&iid).cloned()
}

/// Every live record, by id.
pub fn all() -> Vec<Arc<InterpRecord>> {
    lock(&INTERPS).values().cloned().collect()
}

/// Register the current interpreter (idempotent). Returns the record and
/// whether it is new (then the caller arranges its finalization).
pub fn register_current() -> (Arc<InterpRecord>, bool) {
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
    let rec = Arc::new(InterpRecord {
        iid,
        interp: interp as usize,
        view: owner.view().clone(),
        whence,
        owner: Mutex::new(Some(owner)),
        run: Mutex::new(RunState::default()),
        pins: AtomicU64::new(0),
        py_guards: AtomicU64::new(0),
        shared: crossinterp_core::SharedRefs::new(),
        proxy_types: [AtomicUsize::new(0), AtomicUsize::new(0)],
        pep788_view: AtomicUsize::new(crate::views::pep788_view_of_current()),
    });
    map.insert(iid, rec.clone());
    drop(map);
    ffi::interp::set_guard_fn(|iid| get(iid).and_then(|r| r.view.guard().ok()));
    start_reaper();
    (rec, true)
}

fn report_slow(s: SlowFinalize) {
    eprintln!(
        "crossinterp: WARNING: finalization of interpreter owner {} has waited {:.1}s for {} open guard(s); \
         it keeps waiting (memory in use is never freed early). A guard left open blocks the interpreter's exit.",
        s.id,
        s.waited.as_secs_f64(),
        s.open_guards
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
    let mut report = report_slow;
    // Relaxed: set once by the exiting main thread before it closes the
    // interpreters whose finalization reads it (same thread, program order).
    let exiting = PROCESS_EXITING.load(Ordering::Relaxed);
    // Acquire: pairs with the Release of the pin counters in `borrowed`.
    let mut only_pins_left = |open: u64| {
        exiting && open <= rec.pins.load(Ordering::Acquire) + rec.py_guards.load(Ordering::Acquire)
    };
    owner.begin_finalize();
    // Guards on this interpreter held by its own guard objects can never be
    // closed while it waits (its code no longer runs): close them now.
    crate::views::close_self_guards(iid);
    ffi::interp::detached(|| {
        if !exiting {
            crate::views::wait_for_native_guards(&rec, warn_after);
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
        eprintln!(
            "crossinterp: WARNING: the process is exiting: interpreter {iid} ends while {pinned} \
             memoryview(s) of memory it lent are still alive in other interpreters; \
             that memory must not be used any more."
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
    // Objects still referenced by proxies elsewhere are released here, in
    // their owner, before it goes (those proxies are dead from now on).
    crate::proxy::release_all(&rec);
    drop(attached);
    // Items this interpreter put in queues follow their unbound policy.
    crate::queue::interpreter_gone(iid);
    // Finalized: no guard, so no new cached thread state, and none attached.
    // SAFETY: attached to `iid` (its exit), every guard was waited for.
    unsafe { ffi::interp::delete_cached_for(iid) };
    lock(&INTERPS).remove(&iid);
}

/// Run the current interpreter's pending calls, if any (entry points call
/// this; it is one relaxed load when there is nothing to do).
pub fn drain_current(rec: &InterpRecord) {
    if rec.view.has_pending() {
        // SAFETY: entry points run attached to `rec`'s interpreter.
        let attached = unsafe { Attached::enter(rec.view.id()) };
        rec.view.drain_pending(&attached);
    }
}

/// Run `f` attached to interpreter `rec`, under a guard of its owner, after
/// draining its pending calls.
pub fn run_in_owner<R>(rec: &InterpRecord, f: impl FnOnce() -> R) -> PyResult<R> {
    match try_run_in_owner(rec, f) {
        Ok(r) => r,
        Err(e) => Err(crate::errors::from_guard(e, rec.iid)),
    }
}

/// [`run_in_owner`], handing back a refused guard instead of raising.
pub fn try_run_in_owner<R>(
    rec: &InterpRecord,
    f: impl FnOnce() -> R,
) -> Result<PyResult<R>, GuardError> {
    let guard = rec.view.guard()?;
    // SAFETY: the guard keeps the owner (so its interpreter) alive until the
    // end of this function.
    let r = unsafe {
        ffi::interp::run_in(rec.interp_ptr(), || {
            // SAFETY: `run_in` attached us to the owner's interpreter.
            let attached = Attached::enter(rec.view.id());
            rec.view.drain_pending(&attached);
            let r = f();
            drop(attached);
            r
        })
    };
    drop(guard);
    Ok(r)
}

/// Grace period before the reaper drains an owner: an owner that is busy will
/// usually drain its calls itself at its next entry point.
const REAPER_GRACE: Duration = Duration::from_millis(2);

fn start_reaper() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let r = std::thread::Builder::new()
            .name("crossinterp-reaper".into())
            .spawn(reaper_loop);
        if let Err(e) = r {
            eprintln!("crossinterp: could not start the reaper thread: {e}");
        }
    });
}

fn reaper_loop() {
    loop {
        let views = Registry::global().wait_pending(Duration::from_millis(500));
        for v in views {
            std::thread::sleep(REAPER_GRACE);
            if !v.has_pending() {
                continue;
            }
            let Some(rec) = get(v.tag() as i64) else {
                continue;
            };
            // A refused guard means the owner is finalizing: it drains itself.
            let _ = std::panic::catch_unwind(|| {
                let _ = run_in_owner(&rec, || ());
            });
        }
    }
}

/// The number of live owners (registered and not yet finalized).
pub fn live_owners() -> usize {
    Registry::global().live_count()
}

impl Drop for InterpRecord {
    fn drop(&mut self) {
        crate::views::close_pep788_view(self.pep788_view.load(Ordering::Acquire));
    }
}
