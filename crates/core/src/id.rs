//! Identifiers of the engine: [`OwnerId`], the id of an owner, and the
//! process-wide id space of queues and channels ([`next_id`]).
//!
//! A leaf module (it imports nothing of the crate but `sync`), so the modules
//! below the registry — `attach`, `error`, `pending` — can name an owner
//! without importing the registry.

use std::fmt;

/// The id of an owner: unique for the life of the process, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(u64);

impl OwnerId {
    /// Wrap a raw id. Only the registry mints owner ids (from its own counter,
    /// starting at 1): that is what makes them unique.
    pub(crate) fn new(raw: u64) -> Self {
        OwnerId(raw)
    }

    /// The raw id (ids start at 1).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A process-unique id for a queue or a channel (one id space for both). Ids
/// start at 1 and are never reused.
pub(crate) fn next_id() -> u64 {
    use crate::sync::statics::{AtomicU64, Ordering};
    // A std atomic even under loom: see `sync::statics`. Relaxed: uniqueness
    // needs only the atomicity of the add.
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
