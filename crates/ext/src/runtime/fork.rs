//! `os.fork()` (or any `fork()` of the process): the engine is held still
//! across it, so that the child finds no lock held and no queue call half
//! done by a thread it does not have (`crossinterp_core::fork` says why and
//! how). The `pthread_atfork` handlers are installed once per process, by
//! the first interpreter that registers as an owner; what they hold:
//! - every structure a type file declares in its `Entry::fork_hold`
//!   (queues, channels, ...) and every lock [`register`]ed;
//! - the owner registry (its table, the reaper's signal, each owner's
//!   pending calls and idle lock) and the owner records;
//! - the thread-state cache, the exit gate's bookkeeping and the creation
//!   lock (`ffi::interp`, `ffi::capi`).
//!
//! Not held: `AtomicDict`'s shards and `AtomicRef`s (a thread inside one at
//! the fork leaves it unusable in the child). CPython's own after-fork code
//! runs around these handlers and is CPython's.
//!
//! Ownership: the holds live in a thread-local of the forking thread from
//! the prepare handler to the parent's or the child's.

use crossinterp_core::fork::{self, Holds};
use crossinterp_core::sync::{lock, Mutex};
use crossinterp_core::Registry;
use std::cell::RefCell;
use std::time::Duration;

/// Holds the lock-holders of one kind of structure (or one lock): `false`
/// as soon as one is taken (see `fork::hold_all`).
pub type HoldFn = fn(&mut Holds) -> bool;

static HOLDERS: Mutex<Vec<HoldFn>> = Mutex::new(Vec::new());

/// How long a fork may wait for other threads to leave the engine's locks
/// before it goes on without holding them. A critical section of the engine
/// lasts microseconds; one that needs the GIL (held by the forking thread)
/// never ends while it waits, and this bounds what that costs the fork.
const PATIENCE: Duration = Duration::from_millis(250);

std::thread_local! {
    static HELD: RefCell<Option<Holds>> = const { RefCell::new(None) };
}

/// Hold `f`'s structures across every fork from now on (idempotent).
pub fn register(f: HoldFn) {
    let mut v = lock(&HOLDERS);
    if !v.iter().any(|g| *g as usize == f as usize) {
        v.push(f);
    }
}

/// Install the handlers (once per process; later calls do nothing).
pub fn install() {
    if !crate::ffi::capi::at_fork(prepare, parent, child) {
        eprintln!("crossinterp: could not register the fork handlers (pthread_atfork)");
    }
}

/// Everything, in the order it is taken (released in reverse; what the
/// holds kept alive is dropped only after, `fork::Garbage`).
fn hold_everything(h: &mut Holds) -> bool {
    let Some(fns) = fork::hold_static_with(h, &HOLDERS, |v| v.clone()) else {
        return false;
    };
    fns.iter().all(|f| f(h))
        && Registry::global().fork_hold(h)
        && super::owners::fork_hold(h)
        && super::pending::fork_hold(h)
        && crate::ffi::interp::fork_hold(h)
        && crate::ffi::capi::no_site::fork_hold(h)
}

fn prepare() {
    let holds = fork::hold_all(PATIENCE, hold_everything);
    HELD.with(|c| *c.borrow_mut() = holds);
}

fn release(in_child: bool) {
    if let Some(holds) = HELD.with(|c| c.borrow_mut().take()) {
        fork::release(holds, in_child);
    }
}

fn parent() {
    release(false);
}

fn child() {
    release(true);
}
