//! The one place where atomics, locks and threads are imported (by this crate
//! and by the extension, which uses it through `crossinterp_core::sync`).
//!
//! Under `RUSTFLAGS="--cfg loom"` every primitive comes from [`loom`], so the
//! protocols built on them can be model-checked; otherwise from `std`.
//!
//! Why `std::sync::Mutex` and not `parking_lot`: since Rust 1.62 the std mutex
//! is a futex on Linux (one atomic op uncontended, same as parking_lot), it has a
//! loom twin with the same API, and the locks in this crate guard short,
//! uncontended critical sections (pending-call queues, finalization hand-off).
//! A swap would only be worth it with a measurement that says otherwise; the
//! one made (2026-12-01, `benches/queue.rs`, the queue's mutex and condvars
//! swapped for parking_lot's) said the opposite: per-pair ratios to
//! crossbeam-channel 1.26-1.28 bounded and 1.04 unbounded with parking_lot,
//! 1.15 and 1.00 with std, same machine, alternating binaries.
//! Likewise `std::sync::RwLock` (the shards of [`crate::map::ShardedMap`]):
//! futex-based, one atomic RMW to read-lock and one to unlock, with a loom twin.

#[cfg(loom)]
pub use loom::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

#[cfg(not(loom))]
pub use std::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

#[cfg(not(loom))]
pub use self::cell::{ConstPtr, MutPtr, UnsafeCell};
/// A cell whose shared/exclusive accesses loom tracks (and reports when they
/// race); with std, a thin wrapper over `std::cell::UnsafeCell` with the same
/// API (`get`/`get_mut` give pointers whose `deref` is the access).
#[cfg(loom)]
pub use loom::cell::{ConstPtr, MutPtr, UnsafeCell};

#[cfg(not(loom))]
mod cell {
    /// See the re-export.
    #[derive(Debug, Default)]
    pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    /// A shared access to an [`UnsafeCell`]'s value.
    #[derive(Debug)]
    pub struct ConstPtr<T>(*const T);

    /// An exclusive access to an [`UnsafeCell`]'s value.
    #[derive(Debug)]
    pub struct MutPtr<T>(*mut T);

    impl<T> UnsafeCell<T> {
        /// A cell holding `v`.
        pub fn new(v: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(v))
        }

        /// A pointer for shared access.
        pub fn get(&self) -> ConstPtr<T> {
            ConstPtr(self.0.get())
        }

        /// A pointer for exclusive access.
        pub fn get_mut(&self) -> MutPtr<T> {
            MutPtr(self.0.get())
        }
    }

    impl<T> ConstPtr<T> {
        /// The value.
        ///
        /// # Safety
        /// No exclusive access to the cell overlaps this borrow.
        pub unsafe fn deref(&self) -> &T {
            // SAFETY: the caller's contract.
            unsafe { &*self.0 }
        }
    }

    impl<T> MutPtr<T> {
        /// The value, exclusively.
        ///
        /// # Safety
        /// No other access to the cell overlaps this borrow.
        #[allow(clippy::mut_from_ref)] // loom's API, mirrored
        pub unsafe fn deref(&self) -> &mut T {
            // SAFETY: the caller's contract.
            unsafe { &mut *self.0 }
        }
    }
}

/// Yield the thread, giving up the processor (a busy-wait's back-off). Under
/// loom this is a scheduling point: what lets the model run the thread being
/// waited for.
#[cfg(loom)]
pub use loom::thread::yield_now;
#[cfg(not(loom))]
pub use std::thread::yield_now;

/// Thread-locals: loom needs its own macro so that each modelled thread gets a
/// fresh value.
#[cfg(loom)]
pub(crate) use loom::thread_local;
#[cfg(not(loom))]
pub(crate) use std::thread_local;

/// One iteration of a busy-wait: a CPU pause hint (loom: a yield, which is
/// how a spin loop must be written for the model to terminate).
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Lock a mutex, ignoring poisoning.
///
/// Every critical section in this crate leaves its data consistent before any
/// code that could panic runs (user callbacks always run outside the locks), so a
/// poisoned lock still guards valid data.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Lock a mutex without waiting, ignoring poisoning (as [`lock`]): `None`
/// if anyone holds it.
pub fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        // loom's mutex answers with std's error type too.
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Read-lock a reader-writer lock, ignoring poisoning (as [`lock`]).
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-lock a reader-writer lock, ignoring poisoning (as [`lock`]).
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Read-lock without waiting: `None` if a writer holds (or, std's policy,
/// waits for) the lock.
pub fn try_read<T>(l: &RwLock<T>) -> Option<RwLockReadGuard<'_, T>> {
    match l.try_read() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Write-lock without waiting: `None` if anyone holds the lock.
pub fn try_write<T>(l: &RwLock<T>) -> Option<RwLockWriteGuard<'_, T>> {
    match l.try_write() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Wait on a condition variable for at most `timeout`.
///
/// Under loom, timeouts do not exist (the model explores every interleaving, so
/// a timed wait is modelled as an untimed one); callers must re-check their
/// condition in a loop either way.
pub fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    #[allow(unused_variables)] timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    #[cfg(loom)]
    {
        match cv.wait(guard) {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
    #[cfg(not(loom))]
    {
        match cv.wait_timeout(guard, timeout) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }
}

/// Shared handles to trait objects ([`crate::wait::Notify`]): loom's `Arc`
/// cannot hold an unsized value, and a notifier takes part in no protocol a
/// model checks (it is called with no lock held, after the change it reports
/// is published by the structure's mutex), so it is std's `Arc` under loom too.
pub use std::sync::Arc as DynArc;

/// Counters that must be `static` (process-wide id spaces). A `static` cannot
/// hold a loom atomic (loom's exist per model execution), and these counters
/// take part in no inter-thread protocol — ids need only the atomicity of the
/// add — so they are std atomics under loom too. (The one exception,
/// `map`'s pool of reader slots, has a loom twin of its own: a `lazy_static!`
/// loom atomic, so its hand-off is modelled.)
pub mod statics {
    pub use std::sync::atomic::{AtomicU64, Ordering};
}
