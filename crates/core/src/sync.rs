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
//! A swap would only be worth it with a measurement that says otherwise.

#[cfg(loom)]
pub use loom::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub use std::sync::{
    atomic::{fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

/// Thread-locals: loom needs its own macro so that each modelled thread gets a
/// fresh value.
#[cfg(loom)]
pub(crate) use loom::thread_local;
#[cfg(not(loom))]
pub(crate) use std::thread_local;

/// Give up the processor (a busy-wait's back-off). Under loom this is what
/// lets the model schedule the thread being waited for.
#[cfg(loom)]
pub use loom::thread::yield_now;
#[cfg(not(loom))]
pub use std::thread::yield_now;

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

/// Counters that must be `static` (process-wide id spaces). A `static` cannot
/// hold a loom atomic (loom's exist per model execution), and these counters
/// take part in no inter-thread protocol — ids need only the atomicity of the
/// add — so they are std atomics under loom too.
pub mod statics {
    pub use std::sync::atomic::{AtomicU64, Ordering};
}
