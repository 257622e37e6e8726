//! Which owner the current thread is attached to.
//!
//! The engine knows nothing of Python; the extension tells it, with
//! [`Attached::enter`], when a thread attaches to an interpreter. The engine uses
//! that to run a release inline when the last handle drops in its own owner,
//! and pending calls receive an `&Attached` as proof that they run in their owner.

use crate::id::OwnerId;
use crate::sync::thread_local;
use std::cell::Cell;
use std::marker::PhantomData;

// loom's `thread_local!` (edition-2021 `expr` fragment) does not take a
// `const { }` initializer; std's wants one (clippy: missing_const_for_thread_local).
#[cfg(not(loom))]
thread_local! {
    static CURRENT: Cell<Option<OwnerId>> = const { Cell::new(None) };
}
#[cfg(loom)]
thread_local! {
    static CURRENT: Cell<Option<OwnerId>> = Cell::new(None);
}

/// Proof that the current thread is attached to one owner (for CPython: holds an
/// attached thread state of that interpreter).
///
/// Ownership: lives on the stack of the thread that attached; it is neither
/// `Send` nor `Sync`, and scopes nest (the previous owner, if any, is restored
/// on drop — a thread that detaches from A to attach to B enters a new scope).
pub struct Attached<'a> {
    owner: OwnerId,
    prev: Option<OwnerId>,
    restore: bool,
    _not_send: PhantomData<*const ()>,
    _scope: PhantomData<&'a ()>,
}

impl<'a> Attached<'a> {
    /// Record that the current thread is now attached to `owner`.
    ///
    /// # Safety
    /// For the whole life of the returned value the calling thread must be
    /// attached to `owner`'s interpreter, and that interpreter must not be
    /// destroyed. The extension upholds this by creating the value right after
    /// attaching (under a guard, or inside the owner's own finalization) and
    /// dropping it before detaching.
    pub unsafe fn enter(owner: OwnerId) -> Attached<'a> {
        let prev = CURRENT.with(|c| c.replace(Some(owner)));
        Attached {
            owner,
            prev,
            restore: true,
            _not_send: PhantomData,
            _scope: PhantomData,
        }
    }

    /// A token for the owner the thread is already known to be attached to
    /// (used to release inline); it does not change the thread-local.
    pub(crate) fn current() -> Option<Attached<'static>> {
        current_owner().map(|owner| Attached {
            owner,
            prev: None,
            restore: false,
            _not_send: PhantomData,
            _scope: PhantomData,
        })
    }

    /// The owner this thread is attached to.
    pub fn owner(&self) -> OwnerId {
        self.owner
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if self.restore {
            let prev = self.prev;
            // `try_with`: at thread exit the thread-local may already be gone.
            let _ = CURRENT.try_with(|c| c.set(prev));
        }
    }
}

/// The owner the current thread is attached to, as told by [`Attached::enter`].
pub fn current_owner() -> Option<OwnerId> {
    CURRENT.try_with(|c| c.get()).ok().flatten()
}
