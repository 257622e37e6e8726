//! Owner-free atomics shared by every interpreter and thread: the engine of
//! `crossinterp.AtomicInt` / `AtomicBool` (seed 004).
//!
//! Plain words in an `Arc`: no interpreter owns them, so they cross
//! interpreters by sharing the `Arc`, and every operation is one atomic
//! instruction or a compare-exchange loop (`AtomicInt`: a `fetch_add` fast
//! path, see its protocol). All operations are `SeqCst`: these
//! are user-facing synchronisation primitives whose users reason in program
//! order (as with `threading.Lock`), and on x86-64 an RMW costs the same at any
//! ordering.

use crate::sync::{
    lock, spin_hint, yield_now, Arc, AtomicBool, AtomicI64, Mutex, Ordering::SeqCst,
};
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

/// Values above this live in the side cell (the word holds `PARKED`); public
/// for the tests that cross it.
pub const PARK_ABOVE: i64 = 1 << 62;
/// The largest `n` the fetch-add fast path takes (`1..=FAST_ADD_MAX`).
pub const FAST_ADD_MAX: i64 = 1 << 24;
/// A word at or below this is the value itself; above it, the value is parked.
const REAL_MAX: i64 = (1 << 62) + (1 << 60);
/// The word while the value is parked (plus the adds in flight, see below).
const PARKED: i64 = (1 << 62) + (1 << 61);

/// The shared state of an [`AtomicInt`].
struct Word {
    /// The value itself (`w <= REAL_MAX`), or `PARKED` plus the adds of fast
    /// paths that found it parked and have not taken theirs back yet.
    w: AtomicI64,
    /// The value while parked (> `PARK_ABOVE`); read and written only under
    /// this lock, and only meaningful while `w > REAL_MAX`.
    side: Mutex<i64>,
}

/// A shared signed 64-bit integer that raises [`Overflow`] instead of wrapping.
///
/// Ownership: owned by no interpreter; each handle (`Clone`) shares the same
/// word; use and drop from any thread.
///
/// The protocol (loom models `fetch_add_fast_path_vs_bound`,
/// `unpark_waits_for_fast_adds`, `checked_add_vs_overflow`): an add of
/// `1..=FAST_ADD_MAX` is one hardware `fetch_add`, checked by the old value it
/// returns. Wrapping is impossible because the word never holds a value near
/// `i64::MAX`: a value above `PARK_ABOVE` (2^62) is *parked* — kept in `side`
/// under its lock, the word set to `PARKED` (2^62 + 2^61). So:
///
/// * an add whose old word is a value (`<= REAL_MAX`) is applied and
///   linearized at the `fetch_add` (the result cannot overflow, see the bound
///   below); if the result is above `PARK_ABOVE`, the adder parks the value
///   before it returns;
/// * an add whose old word is parked takes its add back (`fetch_sub`; a
///   parked word is never read as a value, so nobody saw it) and goes the
///   locked, checked way;
/// * every other write (CAS loops, `set`, `swap`) stores only values
///   `<= PARK_ABOVE` in the word and parks larger ones under the lock; leaving
///   the parked state (a write of a value `<= PARK_ABOVE`) waits, under the
///   lock, until the word is exactly `PARKED` (no add in flight: fast adds are
///   all positive, so their sum is zero only when there is none).
///
/// The bound: each thread has at most one fast add in flight, and a thread
/// whose add left the word above `PARK_ABOVE` parks it before its next
/// operation; so the word stays within `PARK_ABOVE + T * FAST_ADD_MAX` while a
/// value and within `PARKED + T * FAST_ADD_MAX` while parked, for `T` threads.
/// Both hold (zones disjoint, no wrap) while `T < 2^36` — more threads than any
/// kernel can run (Linux caps a system at a few million).
#[derive(Clone)]
pub struct AtomicInt {
    v: Arc<Word>,
}

impl Default for AtomicInt {
    fn default() -> Self {
        AtomicInt::new(0)
    }
}

impl AtomicInt {
    /// A new integer holding `v`.
    pub fn new(v: i64) -> Self {
        let (w, side) = if v > PARK_ABOVE { (PARKED, v) } else { (v, 0) };
        AtomicInt {
            v: Arc::new(Word {
                w: AtomicI64::new(w),
                side: Mutex::new(side),
            }),
        }
    }

    /// Whether two handles share the same integer.
    pub fn same(&self, other: &AtomicInt) -> bool {
        Arc::ptr_eq(&self.v, &other.v)
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> i64 {
        let w = self.v.w.load(SeqCst);
        if w <= REAL_MAX {
            w
        } else {
            self.locked_set(|_| None)
        }
    }

    /// Store `v`.
    pub fn set(&self, v: i64) {
        self.swap(v);
    }

    /// Store `v`, returning the previous value.
    pub fn swap(&self, v: i64) -> i64 {
        if v <= PARK_ABOVE {
            let mut w = self.v.w.load(SeqCst);
            while w <= REAL_MAX {
                match self.v.w.compare_exchange_weak(w, v, SeqCst, SeqCst) {
                    Ok(old) => return old,
                    Err(actual) => w = actual,
                }
            }
        }
        self.locked_set(|_| Some(v))
    }

    /// Add `n`, returning the previous value; on overflow nothing changes.
    ///
    /// `n` in `1..=FAST_ADD_MAX`: one `fetch_add` (see the type's protocol);
    /// otherwise a checked compare-exchange loop.
    #[inline]
    pub fn fetch_add(&self, n: i64) -> Result<i64, Overflow> {
        if (1..=FAST_ADD_MAX).contains(&n) {
            let old = self.v.w.fetch_add(n, SeqCst);
            if old <= REAL_MAX {
                // A value: `old + n <= REAL_MAX + FAST_ADD_MAX`, no overflow.
                if old + n > PARK_ABOVE {
                    self.park_if_high();
                }
                return Ok(old);
            }
            self.fast_add_found_parked(n)
        } else {
            self.fetch_update(|old| old.checked_add(n).ok_or(Overflow))
        }
    }

    /// Subtract `n`, returning the previous value; on overflow nothing changes.
    #[inline]
    pub fn fetch_sub(&self, n: i64) -> Result<i64, Overflow> {
        if (-FAST_ADD_MAX..=-1).contains(&n) {
            return self.fetch_add(-n);
        }
        self.fetch_update(|old| old.checked_sub(n).ok_or(Overflow))
    }

    /// If the value is `expected`, store `new`; returns whether it did.
    pub fn compare_and_set(&self, expected: i64, new: i64) -> bool {
        if expected <= PARK_ABOVE && new <= PARK_ABOVE {
            // While parked the value is above PARK_ABOVE, so not `expected`,
            // and the word (> REAL_MAX) is not `expected` either.
            return self
                .v
                .w
                .compare_exchange(expected, new, SeqCst, SeqCst)
                .is_ok();
        }
        self.locked_set(|cur| (cur == expected).then_some(new)) == expected
    }

    /// Replace the value by `f(old)` atomically (retrying if another thread
    /// changed it meanwhile); returns the previous value, or `f`'s error with
    /// nothing changed. `f` never runs under the side lock (it may use this
    /// integer).
    #[inline]
    pub fn fetch_update<E>(&self, mut f: impl FnMut(i64) -> Result<i64, E>) -> Result<i64, E> {
        let mut cur = self.v.w.load(SeqCst);
        loop {
            // `cur` is the word itself (a value) or the parked value.
            let from_word = cur <= REAL_MAX;
            if !from_word {
                cur = self.get();
            }
            let new = f(cur)?;
            if from_word && new <= PARK_ABOVE {
                match self.v.w.compare_exchange_weak(cur, new, SeqCst, SeqCst) {
                    Ok(old) => return Ok(old),
                    Err(actual) => cur = actual,
                }
            } else {
                // Parked, or parking: a compare-and-set under the lock.
                let seen = self.locked_set(|c| (c == cur).then_some(new));
                if seen == cur {
                    return Ok(cur);
                }
                // Retry from the word (the parked value is re-read above).
                cur = self.v.w.load(SeqCst);
            }
        }
    }

    /// A fast add found the value parked: take the add back (nobody read the
    /// parked word as a value), then add under the lock, checked.
    #[cold]
    #[inline(never)]
    fn fast_add_found_parked(&self, n: i64) -> Result<i64, Overflow> {
        self.v.w.fetch_sub(n, SeqCst);
        self.locked(|cur| cur.checked_add(n).map(Some).ok_or(Overflow))
    }

    /// A fast add left the word above `PARK_ABOVE`: park the value (unless
    /// another operation already did, or brought it back down).
    #[cold]
    #[inline(never)]
    fn park_if_high(&self) {
        let mut side = lock(&self.v.side);
        let mut w = self.v.w.load(SeqCst);
        while w > PARK_ABOVE && w <= REAL_MAX {
            *side = w;
            match self.v.w.compare_exchange(w, PARKED, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(actual) => w = actual,
            }
        }
    }

    /// [`Self::locked`] for an `f` that cannot fail.
    fn locked_set(&self, mut f: impl FnMut(i64) -> Option<i64>) -> i64 {
        match self.locked(|c| Ok::<_, std::convert::Infallible>(f(c))) {
            Ok(c) => c,
            Err(never) => match never {},
        }
    }

    /// Under the side lock: `f(current)` gives the new value (`None`: leave
    /// it); returns the current value it saw. `f` must not call back into
    /// this integer (it runs under the lock), and may run more than once.
    fn locked<E>(&self, mut f: impl FnMut(i64) -> Result<Option<i64>, E>) -> Result<i64, E> {
        let mut side = lock(&self.v.side);
        loop {
            let w = self.v.w.load(SeqCst);
            let parked = w > REAL_MAX;
            let cur = if parked { *side } else { w };
            let Some(new) = f(cur)? else {
                return Ok(cur);
            };
            if new > PARK_ABOVE {
                *side = new;
                if parked || self.v.w.compare_exchange(w, PARKED, SeqCst, SeqCst).is_ok() {
                    return Ok(cur);
                }
            } else if parked {
                // Unpark once no fast add is in flight on the parked word
                // (each takes its add back at once, outside the lock).
                let mut spins = 0u32;
                while self
                    .v
                    .w
                    .compare_exchange(PARKED, new, SeqCst, SeqCst)
                    .is_err()
                {
                    spins += 1;
                    if spins < 64 {
                        spin_hint();
                    } else {
                        yield_now();
                    }
                }
                return Ok(cur);
            } else if self.v.w.compare_exchange(w, new, SeqCst, SeqCst).is_ok() {
                return Ok(cur);
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
