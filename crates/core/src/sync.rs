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

/// The lock-free FIFO that holds a [`crate::Queue`]'s items outside its
/// mutex: multi-producer, multi-consumer, bounded or not. `push` and `pop`
/// are each linearizable; an item pushed is published (release) to the `pop`
/// that takes it (acquire).
///
/// With std: crossbeam-queue's `ArrayQueue` for bounds up to
/// [`Fifo::ARRAY_MAX`] (one allocation of `bound` slots, producers and
/// consumers on different cache lines: crossbeam-channel's array flavour), its
/// `SegQueue` when unbounded (crossbeam-channel's list flavour), and a
/// `SegQueue` with a reservation counter above `ARRAY_MAX` (so a huge bound
/// does not allocate its slots up front). Under loom: a bounded array of
/// slots published with loom atomics (Vyukov's), so the models explore the
/// same release/acquire hand-off of items the queue's protocol relies on.
#[cfg(not(loom))]
pub(crate) enum Fifo<T> {
    Array(crossbeam_queue::ArrayQueue<T>),
    Seg(crossbeam_queue::SegQueue<T>),
    Counted {
        items: crossbeam_queue::SegQueue<T>,
        /// Items pushed or being pushed, minus those popped: >= the items in
        /// `items`, <= the bound.
        count: crossbeam_utils::CachePadded<std::sync::atomic::AtomicUsize>,
        bound: usize,
    },
}

#[cfg(not(loom))]
impl<T> Fifo<T> {
    /// The largest bound kept in an `ArrayQueue` (its slots are allocated up
    /// front).
    pub(crate) const ARRAY_MAX: usize = 1 << 12;

    /// An empty FIFO holding at most `bound` items (0: unbounded).
    pub(crate) fn new(bound: usize) -> Self {
        match bound {
            0 => Fifo::Seg(crossbeam_queue::SegQueue::new()),
            b if b <= Self::ARRAY_MAX => Fifo::Array(crossbeam_queue::ArrayQueue::new(b)),
            b => Fifo::Counted {
                items: crossbeam_queue::SegQueue::new(),
                count: Default::default(),
                bound: b,
            },
        }
    }

    /// Append; `Err` hands the item back when the bound is reached.
    #[inline]
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        match self {
            Fifo::Array(q) => q.push(item),
            Fifo::Seg(q) => {
                q.push(item);
                Ok(())
            }
            Fifo::Counted {
                items,
                count,
                bound,
            } => {
                // Relaxed: the counter only bounds the items (each RMW reads
                // the latest count); the item itself is published by the
                // SegQueue.
                if count.fetch_add(1, Ordering::Relaxed) >= *bound {
                    count.fetch_sub(1, Ordering::Relaxed);
                    return Err(item);
                }
                items.push(item);
                Ok(())
            }
        }
    }

    /// Take the front item, if any.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        match self {
            Fifo::Array(q) => q.pop(),
            Fifo::Seg(q) => q.pop(),
            Fifo::Counted { items, count, .. } => {
                let item = items.pop()?;
                // Relaxed: see `push`; released after the pop, so the count
                // never under-counts the items.
                count.fetch_sub(1, Ordering::Relaxed);
                Some(item)
            }
        }
    }

    /// Items now (a snapshot).
    pub(crate) fn len(&self) -> usize {
        match self {
            Fifo::Array(q) => q.len(),
            Fifo::Seg(q) => q.len(),
            Fifo::Counted { items, .. } => items.len(),
        }
    }

    /// Whether it holds no item now (a snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Fifo::Array(q) => q.is_empty(),
            Fifo::Seg(q) => q.is_empty(),
            Fifo::Counted { items, .. } => items.is_empty(),
        }
    }
}

/// See the non-loom definition: a bounded MPMC ring on loom atomics; an
/// unbounded FIFO holds at most [`Fifo::LOOM_UNBOUNDED`] items.
///
/// Linearizable, like crossbeam-queue's `ArrayQueue` and `SegQueue`, and
/// with no waiting of its own: a push writes its item into a cell of its own
/// (an arena indexed by a ticket), then claims and publishes its position in
/// one step, a Release CAS of that position's slot word from "free for
/// position p" to "item of ticket k at position p"; a pop takes the item
/// after an Acquire load of the word and a CAS of the head, and frees the
/// slot for the next lap (Release). So "empty" (the head's slot still free
/// for it) and "full" (the tail's slot still holding the previous lap's
/// item) are each read from the one word that the push or pop that would
/// contradict it must have written: any push or pop that happened before
/// the answer is seen (coherence), and a `None` or a "full" synchronizes with
/// nothing else, so the models still rely on the queue's own gates for every
/// ordering between a fast call and a sleeper.
///
/// An earlier twin (Vyukov's, claim by a tail CAS, then publish by a stamp
/// store) answered `None` whenever the head slot looked empty, even with a
/// completed push of a later slot in the pop's past: not linearizable, and
/// loom reported a lost wake-up in `put_get_wakeup` (at 2 preemptions: a
/// woken getter found "empty" after two completed pushes) that crossbeam's
/// queues cannot produce. Crossbeam's own answer (wait, after a SeqCst fence,
/// for the push that claimed the slot) made the models spin until loom ran
/// out of branches.
#[cfg(loom)]
pub(crate) struct Fifo<T> {
    /// Slot words: `2·p` free for the push at position `p`;
    /// `2·(p·ARENA + k) + 1` holding the item of ticket `k`, pushed at `p`.
    slots: Box<[AtomicUsize]>,
    /// One cell per push (by ticket): written by that push only, before its
    /// slot CAS, taken by the pop that claimed its position.
    arena: Box<[UnsafeCell<Option<T>>]>,
    /// Tickets: std, not loom: only makes each push's cell its own.
    tickets: std::sync::atomic::AtomicUsize,
    head: AtomicUsize,
    /// Lags the pushes by at most those in flight (each push, or one that
    /// finds a position taken, moves it on).
    tail: AtomicUsize,
    unbounded: bool,
}

// SAFETY: an arena cell is written only by the push that drew its ticket,
// before the Release CAS that publishes it, and taken only by the pop whose
// head CAS claimed that position, after an Acquire load of that word; items
// are `Send`.
#[cfg(loom)]
unsafe impl<T: Send> Sync for Fifo<T> {}
// SAFETY: owning the FIFO owns its items, which are `Send`.
#[cfg(loom)]
unsafe impl<T: Send> Send for Fifo<T> {}

/// What a slot word says about position `pos`.
#[cfg(loom)]
enum Slot {
    /// Free for the push at `pos`.
    Free,
    /// Holding the item of that ticket, pushed at `pos`.
    Item(usize),
    /// Behind `pos`: still holding the item pushed a lap before (or, read
    /// stale, anything older).
    Behind,
    /// Already past `pos` (pushed, or freed for a later lap).
    Past,
}

#[cfg(loom)]
impl<T> Fifo<T> {
    /// Capacity of an "unbounded" FIFO under loom (models put a few items).
    pub(crate) const LOOM_UNBOUNDED: usize = 8;
    /// Push attempts per FIFO (per model execution).
    const ARENA: usize = 64;

    pub(crate) fn new(bound: usize) -> Self {
        let cap = if bound == 0 {
            Self::LOOM_UNBOUNDED
        } else {
            bound
        };
        Fifo {
            slots: (0..cap).map(|i| AtomicUsize::new(2 * i)).collect(),
            arena: (0..Self::ARENA).map(|_| UnsafeCell::new(None)).collect(),
            tickets: std::sync::atomic::AtomicUsize::new(0),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            unbounded: bound == 0,
        }
    }

    fn decode(w: usize, pos: usize) -> Slot {
        // (position the word is about, the ticket of the item it holds)
        let (p, item) = if w % 2 == 0 {
            (w / 2, None)
        } else {
            ((w / 2) / Self::ARENA, Some((w / 2) % Self::ARENA))
        };
        match (p.cmp(&pos), item) {
            (std::cmp::Ordering::Equal, None) => Slot::Free,
            (std::cmp::Ordering::Equal, Some(k)) => Slot::Item(k),
            (std::cmp::Ordering::Less, _) => Slot::Behind,
            (std::cmp::Ordering::Greater, _) => Slot::Past,
        }
    }

    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let cap = self.slots.len();
        let k = self
            .tickets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(k < Self::ARENA, "loom Fifo: more than ARENA pushes");
        let cell = &self.arena[k];
        // SAFETY: ticket `k` is this push's alone; nothing reads the cell
        // before the CAS below publishes it.
        unsafe { *cell.get_mut().deref() = Some(item) };
        // Acquire (and AcqRel claims below): a push or pop that learns a
        // position from an index also sees the slot writes that moved it
        // there, so a later position is never taken (or answered empty)
        // before an earlier one is visible: the FIFO stays linearizable.
        let mut pos = self.tail.load(Ordering::Acquire);
        loop {
            let word = &self.slots[pos % cap];
            let full = 2 * (pos * Self::ARENA + k) + 1;
            // "Full" is decided by a plain load, as crossbeam's (a stamp load)
            // is, not by the CAS below (which reads the latest word): a push
            // may miss a pop it has no happens-before with, and the putter's
            // re-check after it raised SLEEPERS relies on the get gate's
            // ordering for that (`get_vs_sleeping_putter_flag`). Acquire:
            // the pop that freed the slot is done with its cell.
            let w = word.load(Ordering::Acquire);
            let w = if w == 2 * pos {
                // Release: publishes the item; Acquire on failure: the word
                // read decides, as in `pop`.
                match word.compare_exchange(2 * pos, full, Ordering::Release, Ordering::Acquire) {
                    Ok(_) => {
                        let _ = self.tail.compare_exchange(
                            pos,
                            pos + 1,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                        return Ok(());
                    }
                    Err(w) => w,
                }
            } else {
                w
            };
            match Self::decode(w, pos) {
                // The slot still holds the item pushed a lap ago, as far as
                // this push can see (or, read stale, anything older: a pop
                // that happened before this push freed the slot, so the load
                // would have read that or later): full.
                Slot::Behind => {
                    assert!(!self.unbounded, "loom Fifo: more than LOOM_UNBOUNDED items");
                    // SAFETY: not published: the cell is still this push's.
                    let item = unsafe { cell.get_mut().deref().take() };
                    return Err(item.expect("written above"));
                }
                // Position taken by another push (or long gone): move the
                // tail past it and try the next one.
                Slot::Item(_) | Slot::Past | Slot::Free => {
                    let _ = self.tail.compare_exchange(
                        pos,
                        pos + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    pos += 1;
                }
            }
        }
    }

    pub(crate) fn pop(&self) -> Option<T> {
        let cap = self.slots.len();
        // Acquire: see `push`.
        let mut pos = self.head.load(Ordering::Acquire);
        loop {
            let word = &self.slots[pos % cap];
            // Acquire: pairs with the push's Release CAS (the item).
            match Self::decode(word.load(Ordering::Acquire), pos) {
                Slot::Item(k) => {
                    match self.head.compare_exchange(
                        pos,
                        pos + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            // SAFETY: the head CAS gave this pop position `pos`,
                            // whose word (read Acquire) published ticket `k`.
                            let item = unsafe { self.arena[k].get_mut().deref().take() };
                            // Release: the slot is free for the push a lap later.
                            word.store(2 * (pos + cap), Ordering::Release);
                            return item;
                        }
                        Err(h) => pos = h,
                    }
                }
                // No push has published position `pos` as far as this pop can
                // see: a push that happened before this pop wrote this word,
                // so the load would have read that or later. Empty.
                Slot::Free | Slot::Behind => return None,
                // Another pop took `pos`: look at the next one.
                Slot::Past => pos += 1,
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        // Head first: every push and pop in the caller's past is counted
        // (a stale head over-counts, never under-counts them).
        let h = self.head.load(Ordering::Acquire);
        self.tail.load(Ordering::Acquire).saturating_sub(h)
    }

    pub(crate) fn is_empty(&self) -> bool {
        // Acquire: as `pop`.
        let pos = self.head.load(Ordering::Acquire);
        !matches!(
            Self::decode(
                self.slots[pos % self.slots.len()].load(Ordering::Acquire),
                pos
            ),
            Slot::Item(_)
        )
    }
}
