//! References an owner lent to others, released exactly once.
//!
//! A proxy's handle holds one reference to an object of its owner; the owner
//! records it here under a key. Two parties may end it:
//! - the handle's last drop (routed to the owner: inline or a pending call);
//! - the owner's finalization, which releases whatever is still lent (the
//!   handles elsewhere are dead from then on).
//!
//! Whoever *takes* the entry releases it, so a reference is released exactly
//! once whichever comes first, and never after the owner finalized (the
//! finalizer takes everything, and a later handle drop finds nothing). The
//! table is one mutex-protected map: its operations are short and a proxy
//! operation never touches it (only sharing and releasing do).

use crate::sync::{lock, AtomicU64, Mutex, Ordering};
use std::collections::HashMap;

/// The references an owner lent, by key.
///
/// Ownership: one per owner (the extension keeps it in the owner's record);
/// `T` is plain data (for the extension, an object address), released by
/// whoever takes it, attached to the owner.
pub struct SharedRefs<T> {
    map: Mutex<HashMap<u64, T>>,
    next: AtomicU64,
}

impl<T> Default for SharedRefs<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> SharedRefs<T> {
    /// An empty table.
    pub fn new() -> Self {
        SharedRefs {
            map: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }

    /// Record `value`; returns its key.
    pub fn insert(&self, value: T) -> u64 {
        // Relaxed: only uniqueness is needed; the map's lock orders the rest.
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.map).insert(key, value);
        key
    }

    /// Take the entry `key`, if nobody took it yet (the caller releases it).
    pub fn take(&self, key: u64) -> Option<T> {
        lock(&self.map).remove(&key)
    }

    /// Take every entry (the owner's finalization releases them).
    pub fn take_all(&self) -> Vec<T> {
        lock(&self.map).drain().map(|(_, v)| v).collect()
    }

    /// Every entry as `(key, value)` (a snapshot; the entries stay).
    pub fn snapshot(&self) -> Vec<(u64, T)>
    where
        T: Clone,
    {
        lock(&self.map)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Whether `key` is still recorded (a snapshot).
    pub fn contains(&self, key: u64) -> bool {
        lock(&self.map).contains_key(&key)
    }

    /// Number of entries (a snapshot).
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether nothing is lent (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
