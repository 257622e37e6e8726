//! The per-owner pending-call queue (multi-producer, single drainer at a time).
//!
//! Any thread may push a call; calls run only on a thread attached to the
//! owner (entry points into the extension, the reaper, or the owner's own
//! finalization), each receiving the [`Attached`] proof.
//!
//! Protocol (modelled in `tests/loom.rs`, `release_routing_vs_finalize`):
//! - `push` takes the lock, refuses if `closed`, else appends.
//! - `close_if_empty` (finalization only) takes the lock and sets `closed` only
//!   when the queue is empty; the finalizer drains until that succeeds. So a call
//!   is either refused (handed back to the pusher) or run: never stranded.
//!
//! A `Mutex<VecDeque>` rather than a lock-free queue: pushes happen on last
//! release of a cross-owner handle (rare next to the work around it), drains take
//! the whole batch with one lock, and the lock gives the close/push race a
//! simple, checkable answer.

use crate::attach::Attached;
use crate::error::PushError;
use crate::sync::{lock, AtomicBool, Mutex, Ordering};
use std::collections::VecDeque;

/// A call queued to run in its owner.
pub type PendingCall = Box<dyn FnOnce(&Attached<'_>) + Send>;

#[derive(Default)]
pub(crate) struct Inner {
    calls: VecDeque<PendingCall>,
    closed: bool,
}

pub(crate) struct PendingQueue {
    inner: Mutex<Inner>,
    /// A hint that `calls` is non-empty, readable without the lock. It is only
    /// written under the lock, so it is exact whenever the lock is free; a reader
    /// that sees a stale value either drains an empty queue or drains later.
    nonempty: AtomicBool,
}

impl PendingQueue {
    pub(crate) fn new() -> Self {
        PendingQueue {
            inner: Mutex::new(Inner::default()),
            nonempty: AtomicBool::new(false),
        }
    }

    /// The lock of the queue (held across a `fork()`: `Registry::fork_hold`).
    pub(crate) fn lock_word(&self) -> &Mutex<Inner> {
        &self.inner
    }

    /// Queue `call`; `Ok(true)` when the queue was empty before (so the caller
    /// should wake a drainer). Refused once the queue is closed.
    pub(crate) fn push(&self, call: PendingCall) -> Result<bool, PushError<PendingCall>> {
        let mut g = lock(&self.inner);
        if g.closed {
            return Err(PushError(call));
        }
        let was_empty = g.calls.is_empty();
        g.calls.push_back(call);
        // Relaxed: the flag is a hint; the calls themselves are published by the
        // mutex, which every drainer takes before reading them.
        self.nonempty.store(true, Ordering::Relaxed);
        Ok(was_empty)
    }

    pub(crate) fn has_pending(&self) -> bool {
        // Relaxed: see the field doc; a stale answer only delays a drain.
        self.nonempty.load(Ordering::Relaxed)
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).calls.len()
    }

    /// Take every queued call.
    pub(crate) fn take_all(&self) -> VecDeque<PendingCall> {
        let mut g = lock(&self.inner);
        self.nonempty.store(false, Ordering::Relaxed);
        std::mem::take(&mut g.calls)
    }

    /// Close the queue if it is empty; returns whether it is now closed.
    pub(crate) fn close_if_empty(&self) -> bool {
        let mut g = lock(&self.inner);
        if g.calls.is_empty() {
            g.closed = true;
        }
        g.closed
    }

    /// Close the queue and hand back whatever it still holds (abandonment).
    pub(crate) fn close_and_take(&self) -> VecDeque<PendingCall> {
        let mut g = lock(&self.inner);
        g.closed = true;
        self.nonempty.store(false, Ordering::Relaxed);
        std::mem::take(&mut g.calls)
    }
}

/// A caught panic, to be resumed once every call has run.
pub(crate) type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

/// Run `calls` in order, attached to their owner. A panicking call does not
/// stop the others: the first panic is kept in `first_panic` (if none is kept
/// already) for the caller to resume once it has finished its own work.
pub(crate) fn run_calls(
    calls: VecDeque<PendingCall>,
    attached: &Attached<'_>,
    first_panic: &mut Option<PanicPayload>,
) -> usize {
    let n = calls.len();
    for call in calls {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(attached)));
        if let Err(p) = r {
            first_panic.get_or_insert(p);
        }
    }
    n
}
