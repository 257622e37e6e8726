//! # crossinterp-core
//!
//! The pure-Rust engine of crossinterp. It knows nothing of Python: the
//! extension (`crates/ext`) maps interpreters onto it.
//!
//! - [`Registry`] — every interpreter that imports the extension is an
//!   [`Owner`] with an id that is never reused and a life
//!   `Running → Finalizing → Finalized` ([`OwnerState`]).
//! - [`Guard`] keeps an owner from finalizing; [`View`] is a weak reference
//!   whose [`View::guard`] fails once finalization began (PEP 788's semantics).
//! - Pending calls: a per-owner queue of closures that run with the owner
//!   attached ([`View::push_pending`], [`View::drain_pending`]).
//! - [`Handle`] — a counted cross-owner reference whose last drop runs the
//!   payload's [`Release`] in its owner.
//! - [`Attached`] — proof that the current thread is attached to an owner.
//! - [`Queue`] — an owner-free MPMC FIFO (PEP 734's `Queue`); [`Channel`] — a
//!   rendezvous channel (PEP 554's). Blocking calls take a deadline and an
//!   interrupt hook; refused items are handed back in the error.
//! - [`smr::Smr`] — safe memory reclamation for one published pointer
//!   (readers never see a released value; `AtomicRef` on free-threaded 3.13).
//! - [`map::ShardedMap`] — a concurrent hash map of independently locked
//!   shards keyed by caller-supplied hashes (the engine of `AtomicDict`).
//!
//! - [`fork`] — holding all of it still across a `fork()`, so that the child
//!   finds no lock held and no call half done by a thread it does not have.
//!
//! All atomics and locks come from `sync.rs`, so `RUSTFLAGS="--cfg loom"` swaps
//! them for loom's; `tests/loom.rs` holds the models.

#![warn(missing_docs)]

#[cfg(not(loom))]
mod affinity;
pub mod atomic;
mod attach;
pub mod buffer;
pub mod channel;
mod error;
pub mod fork;
mod handle;
mod id;
pub mod map;
mod pending;
pub mod queue;
mod registry;
mod ring;
pub mod shared;
pub mod smr;
pub mod sync;
mod wait;

pub use attach::{current_owner, Attached};
pub use channel::{Channel, Offered};
pub use error::{
    CloseError, GetError, GuardError, HandleError, PushError, PutError, RecvError, SendError,
};
pub use handle::{Handle, Release};
pub use id::OwnerId;
pub use pending::PendingCall;
pub use queue::{Queue, Side, INTERRUPT_CHECK_INTERVAL};
pub use registry::{
    FinalizeOptions, FinalizeReport, Guard, Owner, OwnerState, Registry, SlowFinalize, View,
};
pub use shared::SharedRefs;
pub use wait::Notify;
