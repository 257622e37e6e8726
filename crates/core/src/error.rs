//! Typed errors of the engine. Errors that refuse a payload hand it back, so a
//! caller never loses what it tried to give away (crossbeam-channel's style).

use crate::id::OwnerId;
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

/// Why a [`Queue`](crate::Queue) refused an item. The item is handed back.
#[derive(PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue is full: no room now ([`Queue::try_put`](crate::Queue::try_put)),
    /// or none came before the deadline ([`Queue::put`](crate::Queue::put)).
    Full(T),
    /// The queue is closed: it takes no more items.
    Closed(T),
    /// The interrupt hook asked the blocked put to stop; the item was not put.
    Interrupted(T),
}

impl<T> PutError<T> {
    /// Take back the refused item.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(t) | PutError::Closed(t) | PutError::Interrupted(t) => t,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            PutError::Full(_) => "Full",
            PutError::Closed(_) => "Closed",
            PutError::Interrupted(_) => "Interrupted",
        }
    }
}
impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(..)", self.kind())
    }
}
impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutError::Full(_) => "the queue is full",
            PutError::Closed(_) => "the queue is closed",
            PutError::Interrupted(_) => "the put was interrupted",
        })
    }
}
impl<T> std::error::Error for PutError<T> {}

/// Why a [`Queue`](crate::Queue) gave no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// The queue is empty ([`Queue::try_get`](crate::Queue::try_get)), or no
    /// item came before the deadline ([`Queue::get`](crate::Queue::get)).
    Empty,
    /// The queue is closed and every item left in it has been taken.
    Closed,
    /// The interrupt hook asked the blocked get to stop; no item was taken.
    Interrupted,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GetError::Empty => "the queue is empty",
            GetError::Closed => "the queue is closed and empty",
            GetError::Interrupted => "the get was interrupted",
        })
    }
}
impl std::error::Error for GetError {}

/// Why a [`Channel`](crate::Channel) send did not complete. The item is handed
/// back: it was not received, and never will be.
#[derive(PartialEq, Eq)]
pub enum SendError<T> {
    /// [`Channel::try_send`](crate::Channel::try_send) only: no receiver was
    /// blocked in `recv` to take the item at once.
    NoReceiver(T),
    /// The deadline passed before a receiver took the item; it was withdrawn.
    Timeout(T),
    /// The channel's send end (or its receive end) is closed, or a forced close
    /// took the pending item back from the channel.
    Closed(T),
    /// The interrupt hook asked the blocked send to stop before a receiver took
    /// the item; it was withdrawn.
    Interrupted(T),
}

impl<T> SendError<T> {
    /// Take back the item that was not received.
    pub fn into_inner(self) -> T {
        match self {
            SendError::NoReceiver(t)
            | SendError::Timeout(t)
            | SendError::Closed(t)
            | SendError::Interrupted(t) => t,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            SendError::NoReceiver(_) => "NoReceiver",
            SendError::Timeout(_) => "Timeout",
            SendError::Closed(_) => "Closed",
            SendError::Interrupted(_) => "Interrupted",
        }
    }
}
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(..)", self.kind())
    }
}
impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::NoReceiver(_) => "no receiver is waiting on the channel",
            SendError::Timeout(_) => "timed out waiting for a receiver",
            SendError::Closed(_) => "the channel is closed",
            SendError::Interrupted(_) => "the send was interrupted",
        })
    }
}
impl<T> std::error::Error for SendError<T> {}

/// Why a [`Channel`](crate::Channel) receive gave no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// [`Channel::try_recv`](crate::Channel::try_recv) only: no item is pending.
    Empty,
    /// The receive end is closed, or the send end is closed and no item is
    /// pending.
    Closed,
    /// The deadline passed before an item came.
    Timeout,
    /// The interrupt hook asked the blocked receive to stop; no item was taken.
    Interrupted,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvError::Empty => "no item is pending on the channel",
            RecvError::Closed => "the channel is closed",
            RecvError::Timeout => "timed out waiting for an item",
            RecvError::Interrupted => "the receive was interrupted",
        })
    }
}
impl std::error::Error for RecvError {}

/// Why a [`Channel`](crate::Channel) close was refused. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseError {
    /// Items are pending (sent, not yet received) and the close was not forced
    /// (PEP 554's `ChannelNotEmptyError`).
    NotEmpty {
        /// How many sends are pending.
        pending: usize,
    },
    /// The end(s) this call closes were already closed.
    Closed,
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseError::NotEmpty { pending } => {
                write!(f, "the channel has {pending} pending item(s)")
            }
            CloseError::Closed => f.write_str("the channel is already closed"),
        }
    }
}
impl std::error::Error for CloseError {}
