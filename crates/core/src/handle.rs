//! Cross-owner handles: a payload that belongs to one owner (for the extension:
//! one strong reference to a Python object, taken in its interpreter), shared by
//! any number of threads and interpreters.
//!
//! Counting is an [`Arc`]: clone is one relaxed atomic add and drop one release
//! decrement (seed 002: no synchronisation beyond the atomic op). When the count
//! reaches zero the payload's [`Release::release`] must run in the owner:
//! - inline, when the dropping thread is attached to the owner;
//! - otherwise as a pending call on the owner (run at its next entry point, by
//!   the reaper, or at its finalization);
//! - never, when the owner is already Finalized: its interpreter and everything
//!   in it is gone, so the payload is dropped as plain data (its `Drop` must
//!   therefore never touch the interpreter).

use crate::attach::Attached;
use crate::error::HandleError;
use crate::registry::{OwnerState, View};
use crate::sync::Arc;
use std::fmt;
use std::mem::ManuallyDrop;

/// A payload whose release must run in its owner.
///
/// `Drop` of the payload (if any) must be harmless anywhere: it runs only when
/// the owner is gone and `release` can no longer be called.
pub trait Release: Send + Sync + 'static {
    /// Release the payload's resources in its owner.
    fn release(self, attached: &Attached<'_>);
}

struct Inner<P: Release> {
    owner: View,
    payload: ManuallyDrop<P>,
}

/// A counted, cross-owner reference to a payload owned by one owner.
///
/// Ownership: the payload belongs to `owner()`. The handle may be cloned and
/// dropped from any thread, attached to any interpreter or none; the payload may
/// be read only while attached to its owner ([`Handle::get`]). After the owner is
/// Finalized the handle is dead: `get` fails and the last drop does nothing.
pub struct Handle<P: Release> {
    inner: Arc<Inner<P>>,
}

impl<P: Release> Handle<P> {
    /// Wrap `payload`, created in the owner `attached` is for.
    pub fn new(payload: P, owner: View, attached: &Attached<'_>) -> Self {
        assert_eq!(
            owner.id(),
            attached.owner(),
            "handle created outside its owner"
        );
        Handle {
            inner: Arc::new(Inner {
                owner,
                payload: ManuallyDrop::new(payload),
            }),
        }
    }

    /// The owner of the payload.
    pub fn owner(&self) -> &View {
        &self.inner.owner
    }

    /// The payload, if the calling thread is attached to its owner and the owner
    /// is not Finalized.
    pub fn get<'a>(&'a self, attached: &'a Attached<'_>) -> Result<&'a P, HandleError> {
        let owner = &self.inner.owner;
        if owner.id() != attached.owner() {
            return Err(HandleError::WrongOwner {
                owner: owner.id(),
                attached: attached.owner(),
            });
        }
        if owner.state() == OwnerState::Finalized {
            return Err(HandleError::OwnerGone(owner.id()));
        }
        Ok(&self.inner.payload)
    }

    /// Whether the owner is Finalized (the handle is dead).
    pub fn is_dead(&self) -> bool {
        self.inner.owner.state() == OwnerState::Finalized
    }

    /// Number of handles sharing this payload (a snapshot).
    pub fn count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }
}

impl<P: Release> Clone for Handle<P> {
    fn clone(&self) -> Self {
        Handle {
            inner: self.inner.clone(),
        }
    }
}

impl<P: Release> Drop for Inner<P> {
    fn drop(&mut self) {
        // SAFETY: `payload` is taken exactly once, here, and never used again
        // (`self` is being dropped).
        let payload = unsafe { ManuallyDrop::take(&mut self.payload) };
        let id = self.owner.id();
        if let Some(attached) = Attached::current().filter(|a| a.owner() == id) {
            if self.owner.state() != OwnerState::Finalized {
                payload.release(&attached);
                return;
            }
            drop(payload);
            return;
        }
        let call = Box::new(move |a: &Attached<'_>| payload.release(a));
        if let Err(refused) = self.owner.push_pending(call) {
            // The owner is Finalized: nothing of its interpreter remains to
            // release. Dropping the call drops the payload as plain data.
            drop(refused.into_inner());
        }
    }
}

impl<P: Release> fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("owner", &self.inner.owner)
            .field("count", &self.count())
            .finish()
    }
}
