//! Pending calls: work queued on an owner by other threads (the last
//! release of a shared object, mostly), run with the owner attached — at the
//! owner's next entry into the extension ([`drain_current`]), around every
//! call into the owner ([`run_in_owner`]), or by the reaper thread, which
//! attaches to idle owners that have calls waiting.
//!
//! Threads: any thread may queue (the engine's `View::push_pending`); the
//! calls run only on a thread attached to their owner.

use super::errors::Error;
use super::owners::{get, OwnerRecord};
use crate::ffi::{self, PyResult};
use crossinterp_core::sync::{lock, Mutex};
use crossinterp_core::GuardError;
use crossinterp_core::{Attached, Registry};
use std::time::Duration;

/// Run the current interpreter's pending calls, if any (entry points call
/// this; it is one relaxed load when there is nothing to do).
pub fn drain_current(rec: &OwnerRecord) {
    if rec.view.has_pending() {
        // SAFETY: entry points run attached to `rec`'s interpreter.
        let attached = unsafe { Attached::enter(rec.view.id()) };
        rec.view.drain_pending(&attached);
    }
}

/// Run `f` attached to interpreter `rec`, under a guard of its owner, after
/// draining its pending calls.
pub fn run_in_owner<R>(rec: &OwnerRecord, f: impl FnOnce() -> R) -> PyResult<R> {
    match try_run_in_owner(rec, f) {
        Ok(r) => r,
        Err(e) => Err(Error::guard(e, rec.iid).into()),
    }
}

/// [`run_in_owner`], handing back a refused guard instead of raising.
pub fn try_run_in_owner<R>(
    rec: &OwnerRecord,
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

/// The process that started the reaper (0: none): a child of `os.fork()` has
/// no reaper thread (fork copies only the forking thread), so it starts its own.
static STARTED_IN: Mutex<u32> = Mutex::new(0);

/// Hold the reaper's start lock across a `fork()` (`runtime::fork`).
pub(super) fn fork_hold(h: &mut crossinterp_core::fork::Holds) -> bool {
    crossinterp_core::fork::hold_static(h, &STARTED_IN)
}

pub(super) fn start_reaper() {
    let mut started = lock(&STARTED_IN);
    let pid = std::process::id();
    if *started == pid {
        return;
    }
    *started = pid;
    let r = std::thread::Builder::new()
        .name("crossinterp-reaper".into())
        .spawn(reaper_loop);
    if let Err(e) = r {
        eprintln!("crossinterp: could not start the reaper thread: {e}");
    }
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
            // Not `run_in_owner`: it would raise the refusal, and this thread
            // has no thread state to raise it in (a segfault in
            // `PyErr_GetRaisedException`, seen racing an `Interpreter.close()`).
            let _ = std::panic::catch_unwind(|| {
                let _ = try_run_in_owner(&rec, || ());
            });
        }
    }
}
