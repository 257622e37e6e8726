//! Moving the calling thread between interpreters.
//!
//! A thread never holds two interpreters at once: it detaches from the one it
//! is in, attaches a thread state of the target, runs, detaches, and
//! re-attaches where it was. So no lock-ordering deadlock between
//! interpreters' GILs is possible.
//!
//! ## Thread-state cache
//!
//! Creating a thread state costs from ~5 µs (3.13) to ~150 µs (3.14+) and
//! ~700 µs (3.13t, which sets up mimalloc heaps per thread state), so one is
//! cached per (OS thread, interpreter) — which also makes `threading.local`
//! in the target behave across calls. Rules:
//!
//! - a cached thread state is attached only inside [`run_in`], which callers
//!   run under a guard of the target's owner;
//! - the owner's finalization (which first waits for every guard, so no cached
//!   state is attached) deletes every cached state of its interpreter
//!   ([`delete_cached_for`]) before `Py_EndInterpreter` checks that the
//!   interpreter has no other thread state;
//! - at thread exit, the thread deletes its own cached states of interpreters
//!   that are still running (attaching each one under a guard);
//! - whoever first swaps an entry's pointer to 0 deletes it (the entry's lock
//!   settles a finalizer and an exiting thread racing for it);
//! - threads with no thread state of their own (the reaper, foreign threads)
//!   get a fresh thread state per entry instead: caching one there would make
//!   it the thread's `PyGILState` state, which another thread's deletion would
//!   leave dangling.
//!
//! Re-entrant chains (A calls into B, whose code calls into A) reuse the
//! thread state already suspended for A on this thread.

use super::sys;
use super::{raise, Exc, PyErrSet, PyResult};
use crossinterp_core::sync::{lock, Arc, Mutex};
use crossinterp_core::sync::{AtomicUsize, Ordering};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

// ## The exit gate
//
// Every re-attach of a thread state that this extension does on a thread
// other than the exiting one goes through [`attach`]. At process exit, before
// CPython marks the runtime as finalizing, the exiting thread closes the gate
// ([`close_gate`]): from then on, a thread that would re-attach parks for
// good instead, detached and holding no Python state (the process ends under
// it). This matters because CPython ends a thread that re-attaches during
// finalization: 3.13 with `pthread_exit`, a forced unwind that would cross
// our `extern "C"` and `catch_unwind` frames (the process aborts: "FATAL:
// exception not rethrown"); 3.14+ parks it inside `take_gil`. The gate closes
// while no thread is between its check and the end of its re-attach (a count
// the closer waits for, detached), so no re-attach of ours can start once
// CPython may kill it.

/// Threads between the gate check and the end of their re-attach, plus
/// [`GATE_CLOSED`] once closed.
static GATE: AtomicUsize = AtomicUsize::new(0);
const GATE_CLOSED: usize = 1 << (usize::BITS - 1);

/// Threads parked at the closed gate, by interpreter they were inside (each
/// interpreter of the thread's chain): their guards will never be dropped,
/// and they never touch those interpreters again.
static PARKED: Mutex<BTreeMap<i64, u64>> = Mutex::new(BTreeMap::new());

std::thread_local! {
    /// Set on the thread that closed the gate (it goes on with the exit).
    static CLOSER: Cell<bool> = const { Cell::new(false) };
}

std::thread_local! {
    /// While this thread ends another interpreter for a caller (`closing`):
    /// the caller's detached thread state and its interpreter's id.
    static CLOSING_FROM: Cell<Option<(usize, i64)>> = const { Cell::new(None) };
}

/// Run `f`, which ends another interpreter on this thread, on behalf of
/// `save`: this thread's detached thread state of interpreter `iid` (the
/// caller of `close()`). While `f` runs, [`in_closer`] can reach it.
pub fn closing<R>(save: *mut sys::PyThreadState, iid: i64, f: impl FnOnce() -> R) -> R {
    let prev = CLOSING_FROM.with(|c| c.replace(Some((save as usize, iid))));
    struct Restore(Option<(usize, i64)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CLOSING_FROM.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(prev);
    f()
}

/// Run `f` attached to the interpreter whose `close()` is ending interpreter
/// `exiting` on this thread (see [`closing`]), then return to the thread's
/// previous state (attached to `exiting`, or detached). `None`, and `f` not
/// run, when this thread closes nothing for a caller or the process is
/// exiting (the exit gate is closed).
///
/// # Safety
/// Called on the thread running `exiting`'s exit; if a thread state is
/// attached it is this thread's, of `exiting`. `f` touches only objects of
/// the closer's interpreter and leaves no exception set.
pub unsafe fn in_closer<R>(exiting: i64, f: impl FnOnce() -> R) -> Option<R> {
    let (save, iid) = CLOSING_FROM.with(|c| c.get())?;
    if gate_closed() {
        return None;
    }
    // SAFETY: always callable.
    let cur = unsafe { sys::PyThreadState_GetUnchecked() };
    if !cur.is_null() {
        // SAFETY: `cur` is this thread's attached state (the contract).
        unsafe { sys::PyEval_SaveThread() };
    }
    // SAFETY: `save` is this thread's detached state of the closer, which
    // is blocked in `closing` (so alive and not attached anywhere).
    unsafe { attach(save as *mut sys::PyThreadState, iid, Some(exiting)) };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: `save` is attached and ours; `cur` (if any) was detached above.
    unsafe {
        if !sys::PyErr_Occurred().is_null() {
            sys::PyErr_Clear(); // contract violation by `f`: do not leak it
        }
        sys::PyEval_SaveThread();
        if !cur.is_null() {
            attach(cur, exiting, None);
        }
    }
    match r {
        Ok(v) => Some(v),
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Close the exit gate (see above); idempotent. Called attached, at the main
/// interpreter's exit, before any owner finalizes; waits detached for
/// re-attaches under way to finish.
pub fn close_gate() {
    CLOSER.with(|c| c.set(true));
    // AcqRel: pairs with the readers' AcqRel increments/decrements.
    if GATE.fetch_or(GATE_CLOSED, Ordering::AcqRel) & GATE_CLOSED != 0 {
        return;
    }
    detached(|| {
        // Acquire: see the readers' decrements.
        while GATE.load(Ordering::Acquire) & !GATE_CLOSED != 0 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    });
}

/// Whether the exit gate is closed.
pub fn gate_closed() -> bool {
    // Acquire: pairs with `close_gate`.
    GATE.load(Ordering::Acquire) & GATE_CLOSED != 0
}

/// The number of threads parked at the closed gate while inside `iid`.
pub fn parked_in(iid: i64) -> u64 {
    lock(&PARKED).get(&iid).copied().unwrap_or(0)
}

/// Re-attach `ts` (a detached thread state of this thread), unless the exit
/// gate is closed: then park this thread for good (see above). `own`: the
/// id of `ts`'s interpreter (read while attached: at exit CPython may already
/// have freed a detached state); `inside`: another interpreter this thread is
/// inside besides `own` and the suspended chain.
///
/// # Safety
/// As for `PyEval_RestoreThread(ts)`: `ts` is this thread's, detached, and
/// no thread state is attached on this thread.
pub unsafe fn attach(ts: *mut sys::PyThreadState, own: i64, inside: Option<i64>) {
    if CLOSER.with(|c| c.get()) {
        // SAFETY: forwarded.
        unsafe { sys::PyEval_RestoreThread(ts) };
        return;
    }
    // AcqRel: pairs with `close_gate`'s `fetch_or`: either it sees us
    // counted (and waits), or we see it closed.
    if GATE.fetch_add(1, Ordering::AcqRel) & GATE_CLOSED != 0 {
        GATE.fetch_sub(1, Ordering::AcqRel);
        release_own_marks();
        park_forever(own, inside);
    }
    // SAFETY: forwarded; the runtime is not finalizing yet (the gate is open
    // and cannot close before we are done).
    unsafe { sys::PyEval_RestoreThread(ts) };
    GATE.fetch_sub(1, Ordering::AcqRel);
}

#[cold]
fn park_forever(own: i64, inside: Option<i64>) -> ! {
    let mut iids: Vec<i64> = CACHE
        .try_with(|c| {
            c.try_borrow()
                .map(|c| c.suspended.iter().map(|s| s.0).collect())
        })
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    iids.push(own);
    iids.extend(inside);
    iids.sort_unstable();
    iids.dedup();
    {
        let mut map = lock(&PARKED);
        for i in iids {
            *map.entry(i).or_default() += 1;
        }
    }
    loop {
        std::thread::park();
    }
}

// ## Running-main marks at the exit
//
// A thread inside our `exec`/`call` holds CPython's "running main" mark of
// the target interpreter on its thread state there (`capi::running_main`).
// If it is blocked in one of our waits when the process exits, it parks at
// the gate with the mark still set, and CPython's teardown of the remaining
// subinterpreters then clears a thread state that "runs main" (debug builds
// abort: `!_PyThreadState_IsRunningMain(tstate)`) — attaching it on the
// exiting thread, where it is bound to another thread's `PyGILState` (debug
// builds abort on that too). So the exit opens a release window before
// closing the gate: a thread that reaches the closed gate while the window
// is open attaches each thread state it holds a mark on (its own: the
// runtime is not finalizing yet, and the closer waits for it), unmarks it,
// and deletes it (which also unbinds it from this thread's `PyGILState`;
// the frames on it are the ones CPython's teardown would clear), then parks.
// The closer waits, detached and bounded, for every live mark to be dropped
// or released, then closes the window (and waits for releases under way).
// Threads holding a mark that never come to the gate (running Python code,
// sleeping in CPython) are left to CPython, as with the stdlib.

std::thread_local! {
    /// Thread states this thread holds a running-main mark on, innermost last.
    static OWN_MARKS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks set and neither dropped nor released.
static LIVE_MARKS: AtomicUsize = AtomicUsize::new(0);
/// Releases under way, plus [`GATE_CLOSED`] once the window is closed; the
/// window is open while [`RELEASE_OPEN`] is set and this is not closed.
static RELEASE: AtomicUsize = AtomicUsize::new(0);
static RELEASE_OPEN: AtomicUsize = AtomicUsize::new(0);
/// How long the exit waits for marked threads to come to the gate: blocked
/// waits re-attach every `INTERRUPT_CHECK_INTERVAL` (50 ms).
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Set CPython's running-main mark of the attached interpreter on this
/// thread state (see `capi::running_main::set`); remembered for the exit.
pub fn mark_main() -> bool {
    // SAFETY: attached (our callers run inside `run_in`); a `true` is undone
    // by `unmark_main` on this thread state, or released at the exit.
    if !unsafe { super::capi::running_main::set() } {
        return false;
    }
    // SAFETY: attached (checked by `set` succeeding).
    let ts = unsafe { sys::PyThreadState_Get() } as usize;
    OWN_MARKS.with(|m| m.borrow_mut().push(ts));
    // AcqRel: read by the closer's wait.
    LIVE_MARKS.fetch_add(1, Ordering::AcqRel);
    true
}

/// Undo a `true` [`mark_main`], attached with the thread state it marked.
pub fn unmark_main() {
    // SAFETY: attached with the marked thread state (caller's contract).
    unsafe { super::capi::running_main::unset() };
    // SAFETY: attached.
    let ts = unsafe { sys::PyThreadState_Get() } as usize;
    let _ = OWN_MARKS.try_with(|m| {
        let mut m = m.borrow_mut();
        if let Some(i) = m.iter().rposition(|&t| t == ts) {
            m.remove(i);
        }
    });
    LIVE_MARKS.fetch_sub(1, Ordering::AcqRel);
}

/// At the closed gate: if the release window is open, unmark and delete
/// every thread state this thread holds a mark on (see above). Nothing is
/// attached on this thread (the gate's contract).
fn release_own_marks() {
    // Acquire: pairs with `open_release_window`.
    if RELEASE_OPEN.load(Ordering::Acquire) == 0 {
        return;
    }
    if RELEASE.fetch_add(1, Ordering::AcqRel) & GATE_CLOSED != 0 {
        RELEASE.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let marks = OWN_MARKS
        .try_with(|m| std::mem::take(&mut *m.borrow_mut()))
        .unwrap_or_default();
    for &ts in marks.iter().rev() {
        let p = ts as *mut sys::PyThreadState;
        // SAFETY: `p` is this thread's detached thread state (it marked it
        // inside a run that has not returned, and nothing is attached now);
        // its interpreter is alive (the closer, still in its atexit hook,
        // ends none while a release is under way) and the runtime is not
        // finalizing yet, so attaching cannot end this thread. Attach,
        // unmark, clear, delete (detaches); no Python code runs.
        unsafe {
            sys::PyEval_RestoreThread(p);
            super::capi::running_main::unset();
            sys::PyThreadState_Clear(p);
            sys::PyThreadState_DeleteCurrent();
        }
        forget_deleted(ts);
        LIVE_MARKS.fetch_sub(1, Ordering::AcqRel);
    }
    RELEASE.fetch_sub(1, Ordering::AcqRel);
}

/// A thread state this thread deleted: drop it from the caches (the
/// interpreter's finalization must not delete it again).
fn forget_deleted(ts: usize) {
    let _ = CACHE.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.cached.retain(|(_, e)| {
                let mut g = lock(&e.ts);
                if *g == ts {
                    *g = 0;
                    false
                } else {
                    true
                }
            });
        }
    });
}

/// Open the release window (the closer, before [`close_gate`]).
pub fn open_release_window() {
    // Release: pairs with `release_own_marks`.
    RELEASE_OPEN.store(1, Ordering::Release);
}

/// Wait (detached, at most [`RELEASE_WAIT`]) for the live marks to be
/// dropped or released, then close the release window and wait for the
/// releases under way. Called by the closer after [`close_gate`].
pub fn close_release_window() {
    // Acquire: see the marks' counts.
    if LIVE_MARKS.load(Ordering::Acquire) == 0 {
        RELEASE.fetch_or(GATE_CLOSED, Ordering::AcqRel);
        return;
    }
    detached(|| {
        let until = std::time::Instant::now() + RELEASE_WAIT;
        while LIVE_MARKS.load(Ordering::Acquire) != 0 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        RELEASE.fetch_or(GATE_CLOSED, Ordering::AcqRel);
        while RELEASE.load(Ordering::Acquire) & !GATE_CLOSED != 0 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    });
}

/// One cached thread state. `ts` is 0 once deleted.
struct CachedTs {
    ts: Mutex<usize>,
}

/// Every cached thread state, by interpreter id (for deletion at finalization).
static BY_INTERP: Mutex<BTreeMap<i64, Vec<Arc<CachedTs>>>> = Mutex::new(BTreeMap::new());

/// The owner views to take a guard on at thread exit, by interpreter id.
pub type GuardFn = fn(i64) -> Option<crossinterp_core::Guard>;
static GUARD_FOR: Mutex<Option<GuardFn>> = Mutex::new(None);

/// Hold the thread-state cache (its table and every cached state's lock)
/// and the exit gate's bookkeeping across a `fork()` (`runtime::fork`).
pub fn fork_hold(h: &mut crossinterp_core::fork::Holds) -> bool {
    use crossinterp_core::fork::{hold_in, hold_static, hold_static_with};
    let Some(cached) = hold_static_with(h, &BY_INTERP, |m| {
        m.values().flatten().cloned().collect::<Vec<_>>()
    }) else {
        return false;
    };
    cached.iter().all(|c| hold_in(h, c, |c| &c.ts))
        && hold_static(h, &GUARD_FOR)
        && hold_static(h, &PARKED)
}

/// Tell the cache how to take a guard on an interpreter's owner (the owners
/// module does, at start-up).
pub fn set_guard_fn(f: GuardFn) {
    *lock(&GUARD_FOR) = Some(f);
}

#[derive(Default)]
struct ThreadCache {
    cached: Vec<(i64, Arc<CachedTs>)>,
    /// Thread states this thread detached to enter another interpreter,
    /// innermost last: `(interpreter id, thread state)`.
    suspended: Vec<(i64, usize)>,
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        if gate_closed() {
            // The process is exiting: attaching now could end this thread
            // inside CPython (see the exit gate); the process frees them.
            return;
        }
        let guard_for = *lock(&GUARD_FOR);
        for (iid, entry) in self.cached.drain(..) {
            let mut ts = lock(&entry.ts);
            if *ts == 0 {
                continue;
            }
            // Running interpreter: delete it here, attached, under a guard.
            // Finalizing one: its finalizer deletes it (it is waiting for our
            // lock or will take it next).
            let Some(guard) = guard_for.and_then(|g| g(iid)) else {
                continue;
            };
            let p = std::mem::replace(&mut *ts, 0) as *mut sys::PyThreadState;
            // SAFETY: `p` is a detached thread state of a live interpreter
            // (guarded) that only this thread uses; this thread has no other
            // thread state attached at exit. Attach, clear, delete (detaches).
            unsafe {
                if sys::PyThreadState_GetUnchecked().is_null() {
                    sys::PyEval_RestoreThread(p);
                    sys::PyThreadState_Clear(p);
                    sys::PyThreadState_DeleteCurrent();
                }
            }
            drop(ts);
            drop(guard);
            forget_entry(iid, &entry);
        }
    }
}

std::thread_local! {
    static CACHE: RefCell<ThreadCache> = RefCell::new(ThreadCache::default());
}

fn forget_entry(iid: i64, entry: &Arc<CachedTs>) {
    let mut map = lock(&BY_INTERP);
    if let Some(v) = map.get_mut(&iid) {
        v.retain(|e| !Arc::ptr_eq(e, entry));
        if v.is_empty() {
            map.remove(&iid);
        }
    }
}

/// Delete every cached thread state of interpreter `iid`.
///
/// # Safety
/// The calling thread is attached to `iid` (its finalization), no cached
/// thread state of `iid` is attached anywhere (all guards were waited for),
/// and no new one can be created (the owner refuses guards).
pub unsafe fn delete_cached_for(iid: i64) -> usize {
    let entries = lock(&BY_INTERP).remove(&iid).unwrap_or_default();
    // The interpreter's thread states now, without ours. At process exit
    // CPython may already have deleted a cached state of a thread parked at
    // the exit gate (3.13's and 3.14's teardown of remaining
    // subinterpreters deletes the leftover head state): only states still in
    // the interpreter's list are ours to delete.
    // SAFETY: attached to `iid` (contract): its list is stable while we hold
    // its thread state (no other thread of it runs our code: all guards are
    // gone; a parked thread never attaches).
    let live: Vec<usize> = unsafe {
        let me = sys::PyThreadState_Get();
        let mut v = Vec::new();
        let mut t = sys::PyInterpreterState_ThreadHead(sys::PyThreadState_GetInterpreter(me));
        while !t.is_null() {
            if t != me {
                v.push(t as usize);
            }
            t = sys::PyThreadState_Next(t);
        }
        v
    };
    let mut n = 0;
    for e in entries {
        let mut ts = lock(&e.ts);
        let p = std::mem::replace(&mut *ts, 0) as *mut sys::PyThreadState;
        if !p.is_null() && live.contains(&(p as usize)) {
            // SAFETY: per the contract, `p` is a detached thread state of the
            // interpreter we are attached to; clearing a non-current state of
            // the current interpreter and deleting it is what CPython itself
            // does for leftover threads.
            unsafe {
                sys::PyThreadState_Clear(p);
                sys::PyThreadState_Delete(p);
            }
            n += 1;
        }
    }
    n
}

/// The id of interpreter `interp`.
fn id_of(interp: *mut sys::PyInterpreterState) -> i64 {
    // SAFETY: callers pass a live interpreter.
    unsafe { sys::PyInterpreterState_GetID(interp) }
}

/// Run `f` on this OS thread attached to `interp`.
///
/// If the thread is already attached to `interp`, `f` runs directly. Otherwise
/// the current thread state (if any) is detached for the duration and
/// re-attached afterwards — also if `f` panics (the panic then resumes).
///
/// Errors (`PyErrSet`) are reported in the caller's interpreter: when the
/// target's thread state cannot be created, a `MemoryError` is set there.
///
/// # Safety
/// `interp` must stay alive for the whole call: the caller holds a guard on its
/// owner (or is the code that created it and has not destroyed it). Any Python
/// object `f` touches must belong to `interp`; `f` must leave no exception set.
pub unsafe fn run_in<R>(
    interp: *mut sys::PyInterpreterState,
    f: impl FnOnce() -> R,
) -> PyResult<R> {
    // SAFETY: always callable; returns NULL when no thread state is attached.
    let save = unsafe { sys::PyThreadState_GetUnchecked() };
    // SAFETY: `save` is attached (non-NULL checked), so reading its interpreter is valid.
    let save_interp = if save.is_null() {
        std::ptr::null_mut()
    } else {
        unsafe { sys::PyThreadState_GetInterpreter(save) }
    };
    if save_interp == interp {
        return Ok(f());
    }
    let target = id_of(interp);
    let (ts, fresh) = if save.is_null() {
        // No thread state of our own: a fresh one, deleted on the way out.
        // SAFETY: `interp` is alive; needs no attached thread state.
        (unsafe { sys::PyThreadState_New(interp) }, true)
    } else {
        (cached_or_new(interp, target), false)
    };
    if ts.is_null() {
        if save.is_null() {
            return Err(PyErrSet);
        }
        // SAFETY: immutable static; we are still attached to `save`.
        return Err(raise(Exc::MemoryError, "cannot create a thread state"));
    }
    let save_iid = if save.is_null() {
        0
    } else {
        id_of(save_interp)
    };
    if !save.is_null() {
        // SAFETY: `save` is this thread's attached state.
        unsafe { sys::PyEval_SaveThread() };
        CACHE.with(|c| c.borrow_mut().suspended.push((save_iid, save as usize)));
    }
    // SAFETY: `ts` is a detached thread state of `interp` used only by this
    // thread; nothing is attached on this thread now.
    unsafe { attach(ts, target, None) };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: `ts` is attached and ours.
    unsafe {
        if !sys::PyErr_Occurred().is_null() {
            // Contract violation by `f`; do not leak it into the next user.
            sys::PyErr_Clear();
        }
        if fresh {
            sys::PyThreadState_Clear(ts);
            sys::PyThreadState_DeleteCurrent();
        } else {
            sys::PyEval_SaveThread();
        }
    }
    if !save.is_null() {
        CACHE.with(|c| c.borrow_mut().suspended.pop());
        // SAFETY: `save` was detached above and belongs to this thread.
        unsafe { attach(save, save_iid, Some(target)) };
    }
    match r {
        Ok(v) => Ok(v),
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// This thread's thread state for `interp`: one suspended further out on this
/// thread (re-entrant chain), else the cached one, else a new cached one.
/// NULL if one cannot be created.
fn cached_or_new(interp: *mut sys::PyInterpreterState, iid: i64) -> *mut sys::PyThreadState {
    let found = CACHE.with(|c| {
        let c = c.borrow();
        if let Some(&(_, ts)) = c.suspended.iter().rev().find(|(i, _)| *i == iid) {
            return Some(ts);
        }
        c.cached
            .iter()
            .find(|(i, _)| *i == iid)
            .map(|(_, e)| *lock(&e.ts))
            .filter(|&p| p != 0)
    });
    if let Some(p) = found {
        return p as *mut sys::PyThreadState;
    }
    // SAFETY: `interp` is alive (run_in's contract); needs no attached state.
    let ts = unsafe { sys::PyThreadState_New(interp) };
    if ts.is_null() {
        return ts;
    }
    let entry = Arc::new(CachedTs {
        ts: Mutex::new(ts as usize),
    });
    lock(&BY_INTERP).entry(iid).or_default().push(entry.clone());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.cached.retain(|(i, _)| *i != iid);
        c.cached.push((iid, entry));
    });
    ts
}

/// Run `f` with the current thread detached from its interpreter (for waits
/// that must not block the interpreter: the GIL is released on GIL builds).
pub fn detached<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: always callable.
    let save = unsafe { sys::PyThreadState_GetUnchecked() };
    if save.is_null() {
        return f();
    }
    let (_, iid) = current();
    // SAFETY: `save` is this thread's attached state.
    let ts = unsafe { sys::PyEval_SaveThread() };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: re-attach what we detached.
    unsafe { attach(ts, iid, None) };
    match r {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// The interpreter the current thread is attached to, and its id.
pub fn current() -> (*mut sys::PyInterpreterState, i64) {
    // SAFETY: called from entry points, where a thread state is attached.
    unsafe {
        let interp = sys::PyInterpreterState_Get();
        (interp, sys::PyInterpreterState_GetID(interp))
    }
}
