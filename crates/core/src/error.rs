//! Typed errors of the engine. Errors that refuse a payload hand it back, so a
//! caller never loses what it tried to give away (crossbeam-channel's style).

use crate::registry::OwnerId;
use std::fmt;

/// Why a [`Guard`](crate::Guard) could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardError {
    /// The owner has begun finalizing (or is done): no new guard can be taken.
    Finalizing(OwnerId),
    /// The owner's guard counter is saturated (2^62 open guards).
    TooManyGuards(OwnerId),
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Finalizing(id) => write!(f, "owner {id} is finalizing or finalized"),
            GuardError::TooManyGuards(id) => write!(f, "owner {id} has too many open guards"),
        }
    }
}
impl std::error::Error for GuardError {}

/// A pending call was refused: the owner is finalized and will never run it.
/// The call is handed back (dropping it abandons whatever it captured).
pub struct PushError<T>(pub T);

impl<T> PushError<T> {
    /// Take back the refused payload.
    pub fn into_inner(self) -> T {
        self.0
    }
}
impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushError(..)")
    }
}
impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the owner is finalized; the pending call was not queued")
    }
}
impl<T> std::error::Error for PushError<T> {}

/// Why a [`Handle`](crate::Handle)'s payload could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// The handle's owner is finalizing or finalized: the handle is dead.
    OwnerGone(OwnerId),
    /// The payload was asked for while attached to another owner.
    WrongOwner {
        /// The handle's owner.
        owner: OwnerId,
        /// The owner the calling thread is attached to.
        attached: OwnerId,
    },
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandleError::OwnerGone(id) => write!(f, "the owner {id} of this handle is gone"),
            HandleError::WrongOwner { owner, attached } => write!(
                f,
                "handle owned by {owner} used while attached to {attached}"
            ),
        }
    }
}
impl std::error::Error for HandleError {}
