//! Owner-free atomics shared by every interpreter and thread: the engine of
//! `crossinterp.AtomicInt` / `AtomicBool` (seed 004).
//!
//! Plain words in an `Arc`: no interpreter owns them, so they cross
//! interpreters by sharing the `Arc`, and every operation is one atomic
//! instruction or a compare-exchange loop. All operations are `SeqCst`: these
//! are user-facing synchronisation primitives whose users reason in program
//! order (as with `threading.Lock`), and on x86-64 an RMW costs the same at any
//! ordering.

use crate::sync::{Arc, AtomicBool, AtomicI64, Ordering::SeqCst};
use std::fmt;

/// The result would not fit in a signed 64-bit integer; the value is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("result does not fit in a signed 64-bit integer")
    }
}
impl std::error::Error for Overflow {}

/// A shared signed 64-bit integer.
///
/// Ownership: owned by no interpreter; each handle (`Clone`) shares the same
/// word; use and drop from any thread.
#[derive(Clone, Default)]
pub struct AtomicInt {
    v: Arc<AtomicI64>,
}

impl AtomicInt {
    /// A new integer holding `v`.
    pub fn new(v: i64) -> Self {
        AtomicInt {
            v: Arc::new(AtomicI64::new(v)),
        }
    }

    /// Whether two handles share the same integer.
    pub fn same(&self, other: &AtomicInt) -> bool {
        Arc::ptr_eq(&self.v, &other.v)
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.v.load(SeqCst)
    }

    /// Store `v`.
    pub fn set(&self, v: i64) {
        self.v.store(v, SeqCst)
    }

    /// Store `v`, returning the previous value.
    pub fn swap(&self, v: i64) -> i64 {
        self.v.swap(v, SeqCst)
    }

    /// Add `n`, returning the previous value; on overflow nothing changes.
    ///
    /// A compare-exchange loop (not `fetch_add`, which wraps): the add is
    /// applied only if it fits (`checked_add_vs_overflow` loom model).
    #[inline]
    pub fn fetch_add(&self, n: i64) -> Result<i64, Overflow> {
        self.fetch_update(|old| old.checked_add(n).ok_or(Overflow))
    }

    /// Subtract `n`, returning the previous value; on overflow nothing changes.
    #[inline]
    pub fn fetch_sub(&self, n: i64) -> Result<i64, Overflow> {
        self.fetch_update(|old| old.checked_sub(n).ok_or(Overflow))
    }

    /// If the value is `expected`, store `new`; returns whether it did.
    pub fn compare_and_set(&self, expected: i64, new: i64) -> bool {
        self.v
            .compare_exchange(expected, new, SeqCst, SeqCst)
            .is_ok()
    }

    /// Replace the value by `f(old)` atomically (retrying if another thread
    /// changed it meanwhile); returns the previous value, or `f`'s error with
    /// nothing changed.
    #[inline]
    pub fn fetch_update<E>(&self, mut f: impl FnMut(i64) -> Result<i64, E>) -> Result<i64, E> {
        let mut cur = self.v.load(SeqCst);
        loop {
            let new = f(cur)?;
            match self.v.compare_exchange_weak(cur, new, SeqCst, SeqCst) {
                Ok(old) => return Ok(old),
                Err(actual) => cur = actual,
            }
        }
    }
}

impl fmt::Debug for AtomicInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AtomicInt({})", self.get())
    }
}

/// A shared boolean.
///
/// Ownership: as [`AtomicInt`].
#[derive(Clone, Default)]
pub struct AtomicFlag {
    v: Arc<AtomicBool>,
}

impl AtomicFlag {
    /// A new flag holding `v`.
    pub fn new(v: bool) -> Self {
        AtomicFlag {
            v: Arc::new(AtomicBool::new(v)),
        }
    }

    /// Whether two handles share the same flag.
    pub fn same(&self, other: &AtomicFlag) -> bool {
        Arc::ptr_eq(&self.v, &other.v)
    }

    /// The current value.
    pub fn get(&self) -> bool {
        self.v.load(SeqCst)
    }

    /// Store `v`.
    pub fn set(&self, v: bool) {
        self.v.store(v, SeqCst)
    }

    /// Store `v`, returning the previous value.
    pub fn swap(&self, v: bool) -> bool {
        self.v.swap(v, SeqCst)
    }

    /// If the value is `expected`, store `new`; returns whether it did.
    pub fn compare_and_set(&self, expected: bool, new: bool) -> bool {
        self.v
            .compare_exchange(expected, new, SeqCst, SeqCst)
            .is_ok()
    }

    /// Flip the value, returning the previous one.
    pub fn toggle(&self) -> bool {
        self.v.fetch_xor(true, SeqCst)
    }
}

impl fmt::Debug for AtomicFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AtomicFlag({})", self.get())
    }
}
