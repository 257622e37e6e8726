//! [`Ring`]: the lock-free FIFO that holds a [`crate::Queue`]'s items, with
//! the queue's fast-path flags folded into its two index words, so that a
//! fast put or get is one locked RMW (the CAS of its index).
//!
//! # Algorithm
//!
//! Vyukov's bounded MPMC ring (the published idea: per-slot sequence stamps,
//! monotonic head and tail positions), written here for this queue, plus
//! growth, the queue's flags and in-place exclusive operations.
//!
//! - A ring of `cap` slots (a power of two, at least 2); position `p` lives
//!   in slot `p & (cap - 1)`. A slot's stamp says what it holds: `p` = free
//!   for the push at position `p`; `p + 1` = holding the item pushed at `p`;
//!   the pop of `p` frees the slot for position `p + cap`. A ring starts
//!   all zero, and a zero stamp word means "free for its position in the
//!   ring's first lap" (a written word carries [`WRITTEN`]): so making a
//!   ring writes no slot, and its fresh pages are touched only as the calls
//!   reach them.
//! - `tail` (producers' cache line) and `head` (consumers') are words of
//!   [`POS_BITS`] position bits (wrapping: every comparison is a signed
//!   difference), a generation (bumped by every growth) and flags: [`EXCL`]
//!   (an exclusive operation or a growth is under way: take the locked
//!   path), [`CLOSED`] (tail only, kept), [`SLEEPERS`] and [`WATCHERS`]
//!   (the other side has threads asleep / async notifiers: a call that gets
//!   through takes the lock to wake or notify them). Both positions only
//!   ever move forward (exclusive operations too: `remove_where` compacts
//!   the survivors towards the tail and moves the head).
//! - Push: load `tail`; shut → locked path; bound reached (a cached head,
//!   refreshed before answering) → full; slot free for `p` → CAS `tail`
//!   from the loaded word to `p + 1` (flags and generation kept), write the
//!   item, publish the stamp `p + 1` (Release). The CAS is the only locked
//!   RMW, and the word it replaced holds the flags the queue must act on.
//!   Slot still holding the item of `p - cap`: if `head` says the ring holds
//!   `cap` items, it is full (grow under the lock, or full at the bound);
//!   otherwise that item's pop is in flight (its CAS is done, it is moving
//!   the item out): wait for its stamp, a pop in flight never blocks.
//! - Pop: load `head`; shut → locked path; stamp `h + 1` → CAS `head`, move
//!   the item out, stamp `h + cap` (Release). Stamp not yet `h + 1`: empty
//!   only if `tail` is at `h`; otherwise a push claimed `h` and is writing
//!   it: wait for its stamp (`pop_sees_in_flight_push_not_empty`: answering
//!   empty there would let a getter that raised `SLEEPERS` after that push's
//!   CAS sleep with an item in the queue, and is not linearizable).
//! - Calls in flight: a fast call waits for one on its slot a few steps
//!   ([`FAST_WAITS`]), then takes the locked path, where the lock holder
//!   waits as long as it takes (a call in flight is a few instructions from
//!   done and never blocks).
//! - Growth (under the queue's lock, when a push finds the ring full below
//!   the bound): shut both words ([`EXCL`]), wait for the pushes in flight,
//!   make a ring of twice the slots (first lap from the head), move the items
//!   to their positions in it (O(items): only their slots are written),
//!   publish it (Release), and re-open both words with the generation + 1.
//!   It starts at 32 slots (or the bound, rounded up to a power of two, if
//!   smaller) and stops at the bound rounded up.
//!
//! Orderings: every access to an index word (`head`, `tail`) is SeqCst.
//! For loads and RMWs that is the same instruction as Acquire/AcqRel on
//! x86-64 and AArch64 (a `mov`/`ldar` load, a `lock cmpxchg`/`casal`), and
//! the only plain stores to these words are the rare ends of exclusive
//! operations. What the protocol needs is Release on the claiming CASes and
//! Acquire on the loads (the call sites say why); SeqCst adds one total
//! order over all index-word accesses, so a load never returns a word older
//! than the last SeqCst RMW before it in that order. The loom models then
//! explore far fewer stale reads (`put_get_wakeup`: 2.96M interleavings in
//! 208 s with Acquire/AcqRel, 0.82M in 56 s with SeqCst). The stamps,
//! stored on every call, stay Release/Acquire.
//!
//! Why the generation (`grow_vs_fast_push`): a growth moves the items into
//! a new ring without moving `head` or `tail`; a pop that loaded the old
//! ring, saw an item there and stalled would otherwise still win its CAS
//! after the growth and take the old copy of an item that now lives in the
//! new ring (whose slot then never frees: the next push there waits
//! forever). Each index word carries the generation, so that CAS fails.
//! Rings only grow (at most [`POS_BITS`] times), so the generation never
//! wraps; old rings stay allocated until the ring drops (a stalled call may
//! still read their stamps), at most as much again as the current one.

use crate::sync::{spin_hint, yield_now, AtomicPtr, AtomicU64, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;

/// Index word flag: an exclusive operation (or a growth, or on `tail` the
/// close) is under way: fast calls of that side take the locked path.
pub(crate) const EXCL: u64 = 1 << 63;
/// `tail` flag: the queue is closed (set with [`EXCL`] by the close, kept).
pub(crate) const CLOSED: u64 = 1 << 62;
/// Index word flag: a thread of the other side is asleep (`tail`: a getter;
/// `head`: a putter).
pub(crate) const SLEEPERS: u64 = 1 << 61;
/// Index word flag: the other side has async notifiers.
pub(crate) const WATCHERS: u64 = 1 << 60;
/// Position bits of an index word (and of a stamp). 2^40 positions: a
/// stale word could only be mistaken for a current one by a call stalled
/// while 2^40 items went through (hours at full speed).
pub(crate) const POS_BITS: u32 = 40;
const POS: u64 = (1 << POS_BITS) - 1;
/// Set in every stamp word written, so that a zero word means "never
/// written" (see [`Slots::stamp`]).
const WRITTEN: u64 = 1 << POS_BITS;
/// One generation, the field just above the position.
const GEN_ONE: u64 = 1 << POS_BITS;
/// Slots of a new ring (or the bound, rounded up, if smaller). Under loom,
/// 2: the models then grow after two items.
#[cfg(not(loom))]
const INITIAL_CAP: u64 = 32;
#[cfg(loom)]
const INITIAL_CAP: u64 = 2;

/// `a - b` in position arithmetic (wrapping at [`POS_BITS`], signed).
#[inline]
fn diff(a: u64, b: u64) -> i64 {
    ((a.wrapping_sub(b) << (64 - POS_BITS)) as i64) >> (64 - POS_BITS)
}

/// The word `w` with its position moved on by one (flags, generation kept).
#[inline]
fn next(w: u64) -> u64 {
    (w & !POS) | (w.wrapping_add(1) & POS)
}

/// How many steps a call without the lock waits for a call in flight on its
/// slot before it takes the locked path (where only the lock holder waits).
/// Waiting without the lock is only to save the lock in the common case: a
/// call in flight is a few instructions from done. Under loom, 1: two
/// threads that wait without bound for a third can be scheduled by the
/// model in turn forever (a yield into another waiter counts as no
/// preemption), which no bound on preemptions cuts short.
#[cfg(not(loom))]
const FAST_WAITS: u32 = 10;
#[cfg(loom)]
const FAST_WAITS: u32 = 1;

/// One step of a wait for a call in flight (which never blocks).
#[inline]
fn backoff(step: &mut u32) {
    if cfg!(loom) || *step >= 6 {
        yield_now();
    } else {
        for _ in 0..1u32 << *step {
            spin_hint();
        }
        *step += 1;
    }
}

struct Slot<T> {
    /// Zero, or [`WRITTEN`] and a position (see [`Slots::stamp`]).
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// `n` slots, all zero.
#[cfg(not(loom))]
fn zeroed_slots<T>(n: usize) -> Box<[Slot<T>]> {
    let layout = std::alloc::Layout::array::<Slot<T>>(n).expect("ring size fits in memory");
    // SAFETY: `n >= 2`, so the layout is not zero-sized; all-zero bytes are
    // a valid `Slot<T>` (a zero `AtomicU64`, a `MaybeUninit` inside
    // `UnsafeCell`s, which any bytes are); the pointer is from the global
    // allocator with the layout `Box<[Slot<T>]>` frees it with.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<Slot<T>>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n))
    }
}

/// `n` slots, all zero (loom's atomics must be made by their constructor).
#[cfg(loom)]
fn zeroed_slots<T>(n: usize) -> Box<[Slot<T>]> {
    (0..n)
        .map(|_| Slot {
            stamp: AtomicU64::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        })
        .collect()
}

/// One ring of slots; the ring it replaced is kept in `prev`.
///
/// Rings are handled through raw pointers only (from `Box::into_raw`; the
/// live one in `Prod::ring`/`Cons::ring`, older ones in the `prev` chain),
/// never as a `Box` while calls may read them, and freed together when the
/// `Ring` drops.
struct Slots<T> {
    mask: u64,
    /// The first position of its first lap (see [`Slots::new`]).
    base: u64,
    slots: Box<[Slot<T>]>,
    /// The ring this one replaced (null for the first): kept allocated,
    /// since stalled calls may still read its stamps.
    prev: *mut Slots<T>,
}

impl<T> Slots<T> {
    /// A ring of `cap` slots whose first lap starts at position `base` (the
    /// head when it is made): every slot is free for its position in
    /// `[base, base + cap)`. The slots start all zero (a zero stamp word
    /// means exactly that, see [`Slots::stamp`]), so a new ring is not
    /// written slot by slot: its pages are touched as the calls reach them
    /// (with std, fresh zeroed memory from the allocator), and a growth
    /// writes only the items it moves.
    fn new(cap: u64, base: u64, prev: *mut Slots<T>) -> Self {
        Slots {
            mask: cap - 1,
            base,
            slots: zeroed_slots(cap as usize),
            prev,
        }
    }

    /// The stamp of `pos`'s slot: the word's position bits, or, for a word
    /// never written (zero), the slot's position in the first lap.
    #[inline]
    fn stamp(&self, pos: u64, order: Ordering) -> u64 {
        let raw = self.slot(pos).stamp.load(order);
        if raw == 0 {
            self.base
                .wrapping_add(pos.wrapping_sub(self.base) & self.mask)
                & POS
        } else {
            raw & POS
        }
    }

    /// Set the stamp of `pos`'s slot to `v` (never a zero word: [`WRITTEN`]).
    #[inline]
    fn set_stamp(&self, pos: u64, v: u64, order: Ordering) {
        self.slot(pos).stamp.store((v & POS) | WRITTEN, order);
    }

    #[inline]
    fn cap(&self) -> u64 {
        self.mask + 1
    }

    #[inline]
    fn slot(&self, pos: u64) -> &Slot<T> {
        &self.slots[(pos & self.mask) as usize]
    }
}

/// The producers' cache line.
struct Prod<T> {
    tail: AtomicU64,
    /// The current ring (the same pointer as `Cons::ring`: one copy per side,
    /// so a call reads only its own side's line).
    ring: AtomicPtr<Slots<T>>,
    /// A head position seen lately (<= the real one: heads only move on),
    /// so that a bounded push reads the consumers' line only when it may be
    /// at the bound.
    head_seen: AtomicU64,
}

/// The consumers' cache line.
struct Cons<T> {
    head: AtomicU64,
    ring: AtomicPtr<Slots<T>>,
}

/// What a [`Ring::push`] did.
pub(crate) enum Push<T> {
    /// Pushed; the `tail` flags it replaced ([`SLEEPERS`], [`WATCHERS`]).
    Done(u64),
    /// At the bound: the item handed back.
    Full(T),
    /// The ring is full below the bound: grow it (under the lock) and retry.
    Grow(T),
    /// `tail` is shut ([`EXCL`] or [`CLOSED`]), or a pop in flight on the
    /// slot outlasted the wait: take the locked path.
    Shut(T),
}

/// What a [`Ring::pop`] did.
pub(crate) enum Pop<T> {
    /// The front item and the `head` flags its CAS replaced.
    Item(T, u64),
    /// No item (`tail` was at the head).
    Empty,
    /// `head` is shut ([`EXCL`]), or a push in flight on the head slot
    /// outlasted the wait: take the locked path.
    Shut,
}

/// A multi-producer, multi-consumer FIFO, bounded or not (see the module
/// doc). The methods marked `unsafe` must be called with the owner's lock
/// held: it serializes growth, the exclusive operations, the close and the
/// flag changes.
pub(crate) struct Ring<T> {
    prod: CachePadded<Prod<T>>,
    cons: CachePadded<Cons<T>>,
    /// 0: unbounded.
    bound: u64,
    /// The largest ring: the bound rounded up to a power of two, or (unbounded)
    /// half the position space.
    max_cap: u64,
}

// SAFETY: an item is written only by the push whose tail CAS claimed its
// position, before that slot's Release stamp, and moved out only by the pop
// whose head CAS claimed it, after an Acquire load of that stamp (or by an
// exclusive operation, under the lock, after waiting for the stamps of every
// claimed position); items are `Send`.
unsafe impl<T: Send> Sync for Ring<T> {}
// SAFETY: owning the ring owns its items, which are `Send`.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T> Ring<T> {
    /// An empty ring holding at most `bound` items (0: unbounded).
    pub(crate) fn new(bound: usize) -> Self {
        let max_cap = if bound == 0 {
            1 << (POS_BITS - 1)
        } else {
            (bound as u64)
                .max(2)
                .next_power_of_two()
                .min(1 << (POS_BITS - 1))
        };
        let ring = Box::into_raw(Box::new(Slots::new(
            INITIAL_CAP.min(max_cap),
            0,
            std::ptr::null_mut(),
        )));
        Ring {
            prod: CachePadded::new(Prod {
                tail: AtomicU64::new(0),
                ring: AtomicPtr::new(ring),
                head_seen: AtomicU64::new(0),
            }),
            cons: CachePadded::new(Cons {
                head: AtomicU64::new(0),
                ring: AtomicPtr::new(ring),
            }),
            bound: (bound as u64).min(max_cap),
            max_cap,
        }
    }

    /// Append `item` without the lock (see [`Push`]). A pop in flight on the
    /// slot is waited for a few steps only ([`FAST_WAITS`]), then the call
    /// answers [`Push::Shut`] and the caller waits for it under the lock.
    #[inline]
    pub(crate) fn push(&self, item: T) -> Push<T> {
        self.push_with(item, false)
    }

    #[inline]
    fn push_with(&self, item: T, patient: bool) -> Push<T> {
        let mut step = 0;
        let mut waits = 0;
        // SeqCst (see the module doc; Acquire needed): pairs with the
        // Release of the stores that end an exclusive operation or a growth,
        // so a call that reads the re-opened word sees what was done under it.
        let mut w = self.prod.tail.load(Ordering::SeqCst);
        loop {
            if w & (EXCL | CLOSED) != 0 {
                return Push::Shut(item);
            }
            let p = w & POS;
            if self.bound != 0
                // Relaxed: a hint (any value read is a head that was, so <=
                // the real one: the test is conservative).
                && diff(p, self.prod.head_seen.load(Ordering::Relaxed)) >= self.bound as i64
            {
                // SeqCst: as above.
                let h = self.cons.head.load(Ordering::SeqCst) & POS;
                self.prod.head_seen.store(h, Ordering::Relaxed);
                if diff(p, h) >= self.bound as i64 {
                    // Full when `tail` was read: it was at `p` then, and the
                    // head no further than `h` (heads only move on).
                    return Push::Full(item);
                }
            }
            // Acquire: pairs with the growth's Release store of a new ring
            // (its slots and moved items are visible before it is used).
            // SAFETY: rings are freed only when the Ring drops.
            let ring = unsafe { &*self.prod.ring.load(Ordering::Acquire) };
            let slot = ring.slot(p);
            // Acquire: pairs with the Release stamp of the pop (or exclusive
            // operation) that moved the previous lap's item out of this slot,
            // so this push's write comes after that read.
            let d = diff(ring.stamp(p, Ordering::Acquire), p);
            if d == 0 {
                // SeqCst (AcqRel needed) on success: Release, so that a call
                // that reads this
                // tail (Acquire) also sees the pops this push waited for (the
                // stamp it acquired), and so never reads a head behind them;
                // Acquire, chaining the pushes before it. The item itself is
                // published by the stamp below, and the flags returned need
                // only this word's modification order (a sleeper's `raise`
                // is an RMW on it: see `Queue`). SeqCst (Acquire needed) on
                // failure: the word read is the next snapshot.
                match self.prod.tail.compare_exchange(
                    w,
                    next(w),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS gave this push position `p`; the
                        // slot is free (stamp `p`, acquired) and no pop reads
                        // it before the stamp below.
                        unsafe { slot.value.get_mut().deref().write(item) };
                        // Release: publishes the item to the pop that
                        // acquires this stamp.
                        ring.set_stamp(p, p.wrapping_add(1), Ordering::Release);
                        return Push::Done(w & (SLEEPERS | WATCHERS));
                    }
                    Err(cur) => {
                        w = cur;
                        continue;
                    }
                }
            }
            if d < 0 {
                // The slot holds the item of an earlier lap. SeqCst: as the
                // first load.
                let h = self.cons.head.load(Ordering::SeqCst) & POS;
                if diff(p, h) >= ring.cap() as i64 {
                    // `cap` items when `tail` was read (as above).
                    return if ring.cap() < self.max_cap {
                        Push::Grow(item)
                    } else {
                        Push::Full(item)
                    };
                }
                // Its pop is in flight: wait for its stamp.
                waits += 1;
                if !patient && waits > FAST_WAITS {
                    return Push::Shut(item);
                }
            }
            // d > 0: another push took `p` (this `tail` was stale). Either
            // way, back off (under loom, a yield: a stale read repeated is a
            // spin the model must be able to schedule out of) and look
            // again (SeqCst: as the first load).
            backoff(&mut step);
            w = self.prod.tail.load(Ordering::SeqCst);
        }
    }

    /// Take the front item without the lock (see [`Pop`]). A push in flight
    /// on the head slot is waited for a few steps only ([`FAST_WAITS`]),
    /// then the call answers [`Pop::Shut`] and the caller waits for it
    /// under the lock.
    #[inline]
    pub(crate) fn pop(&self) -> Pop<T> {
        self.pop_with(false)
    }

    /// [`Ring::pop`] with the lock held: waits for a push in flight as long
    /// as it takes; [`Pop::Shut`] never (no exclusive operation runs).
    pub(crate) fn pop_locked(&self) -> Pop<T> {
        self.pop_with(true)
    }

    #[inline]
    fn pop_with(&self, patient: bool) -> Pop<T> {
        let mut step = 0;
        let mut waits = 0;
        // SeqCst: as in `push`.
        let mut w = self.cons.head.load(Ordering::SeqCst);
        loop {
            if w & EXCL != 0 {
                return Pop::Shut;
            }
            let h = w & POS;
            // Acquire: as in `push`.
            // SAFETY: rings are freed only when the Ring drops.
            let ring = unsafe { &*self.cons.ring.load(Ordering::Acquire) };
            let slot = ring.slot(h);
            // Acquire: pairs with the push's Release stamp (the item).
            let d = diff(ring.stamp(h, Ordering::Acquire), h.wrapping_add(1));
            if d == 0 {
                // SeqCst (AcqRel needed) on success: Release, so that a call
                // that reads this
                // head (Acquire) also sees the push of the item taken (its
                // stamp, acquired above) and so never reads a tail behind
                // this head: a pop that answered "empty" or waited for a push
                // on a stale tail would be wrong (loom found the second with
                // this CAS Relaxed: in `close_wakes_blocked_getter` a getter
                // read head 1, then tail 0, and waited forever for a push at
                // position 1). SeqCst on failure: as in `push`.
                match self.cons.head.compare_exchange(
                    w,
                    next(w),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS gave this pop position `h`, whose
                        // stamp (acquired) says the item is written; nothing
                        // else reads or writes it until the stamp below.
                        let item = unsafe { slot.value.get().deref().assume_init_read() };
                        // Release: the push a lap later writes the slot after
                        // this read.
                        ring.set_stamp(h, h.wrapping_add(ring.cap()), Ordering::Release);
                        return Pop::Item(item, w & (SLEEPERS | WATCHERS));
                    }
                    Err(cur) => {
                        w = cur;
                        continue;
                    }
                }
            }
            if d < 0 {
                // Not published. SeqCst (Acquire needed): as above (only the
                // position is used).
                if self.prod.tail.load(Ordering::SeqCst) & POS == h {
                    // Empty when `tail` was read (the head was at `h` or
                    // further, and never passes the tail).
                    return Pop::Empty;
                }
                // A push claimed `h` and is writing it: wait for its stamp.
                waits += 1;
                if !patient && waits > FAST_WAITS {
                    return Pop::Shut;
                }
            }
            // d > 0: another pop took `h` (this `head` was stale). Back off
            // (see `push`) and look again.
            backoff(&mut step);
            w = self.cons.head.load(Ordering::Acquire);
        }
    }

    /// Items now, exactly (a snapshot of both positions at one instant);
    /// `None` while an exclusive operation or a growth is under way (read
    /// it again under the lock).
    pub(crate) fn len(&self) -> Option<usize> {
        loop {
            // SeqCst: as in `push`. The tail did not move between its two
            // reads, so it was `t1` when the head was read.
            let t1 = self.prod.tail.load(Ordering::SeqCst);
            let h = self.cons.head.load(Ordering::SeqCst);
            let t2 = self.prod.tail.load(Ordering::SeqCst);
            if h & EXCL != 0 {
                return None;
            }
            if t1 == t2 {
                return Some(diff(t1 & POS, h & POS).max(0) as usize);
            }
            spin_hint();
        }
    }

    /// Items now or fewer since (the head read first, then the tail: never
    /// fewer than the items of the pushes and pops this thread has seen).
    /// Two loads: for the wake-up decision after a push, and as the
    /// advisory hint spinning waiters watch.
    pub(crate) fn len_seen(&self) -> usize {
        // SeqCst: as in `push`.
        let h = self.cons.head.load(Ordering::SeqCst);
        let t = self.prod.tail.load(Ordering::SeqCst);
        diff(t & POS, h & POS).max(0) as usize
    }

    /// Set `bit` ([`SLEEPERS`], [`WATCHERS`]) on `tail` (`tail_side`) or
    /// `head`, with the lock held. SeqCst (AcqRel needed): see `Queue`'s
    /// module doc; the
    /// re-check the caller makes next reads the positions this RMW read or
    /// later ones (coherence), and waits for the stamps of any in flight.
    pub(crate) fn raise(&self, tail_side: bool, bit: u64) {
        self.word(tail_side).fetch_or(bit, Ordering::SeqCst);
    }

    /// Clear `bit` if set, with the lock held. SeqCst (Relaxed would do: the
    /// flags change only under the lock, so the load is exact; clearing
    /// publishes nothing): see the module doc.
    pub(crate) fn lower(&self, tail_side: bool, bit: u64) {
        let word = self.word(tail_side);
        if word.load(Ordering::SeqCst) & bit != 0 {
            word.fetch_and(!bit, Ordering::SeqCst);
        }
    }

    fn word(&self, tail_side: bool) -> &AtomicU64 {
        if tail_side {
            &self.prod.tail
        } else {
            &self.cons.head
        }
    }

    /// Shut `tail` for good (the close). No wait is needed for the pushes in
    /// flight: a pop answers empty only once `tail` is at its head, so an
    /// item whose push claimed its position before this RMW is taken (its
    /// stamp waited for) before any "empty" (`close_vs_fast_put`).
    ///
    /// # Safety
    /// The owner's lock is held.
    pub(crate) unsafe fn close(&self) {
        // SeqCst (Relaxed would do: the RMW's place in the modification
        // order of `tail` is what refuses later pushes): see the module doc.
        self.prod.tail.fetch_or(EXCL | CLOSED, Ordering::SeqCst);
    }

    /// [`Ring::push`], growing the ring when it is full below the bound.
    /// Never [`Push::Grow`]; [`Push::Shut`] only when closed.
    ///
    /// # Safety
    /// The owner's lock is held.
    pub(crate) unsafe fn push_locked(&self, mut item: T) -> Push<T> {
        loop {
            match self.push_with(item, true) {
                Push::Grow(it) => {
                    item = it;
                    // SAFETY: the caller holds the lock.
                    unsafe { self.grow() };
                }
                r => return r,
            }
        }
    }

    /// Double the ring (moving the items to their positions in the new one).
    ///
    /// # Safety
    /// The owner's lock is held.
    unsafe fn grow(&self) {
        // SAFETY: the caller holds the lock.
        let mut ex = unsafe { self.exclusive() };
        let old = ex.ring;
        let cap = (old.cap() * 2).min(self.max_cap);
        if cap == old.cap() {
            return;
        }
        let (h, t) = (ex.head, ex.tail);
        // Relaxed: the pointer changes only under the lock, which is held.
        // The new ring keeps the old one in its chain (freed with the Ring).
        let new = Slots::new(cap, h, self.cons.ring.load(Ordering::Relaxed));
        let mut q = h;
        while q != t {
            // SAFETY: exclusive mode: every position in [h, t) is published
            // and no call reads or writes it; the old copy is never read again
            // (positions below the head are not dropped).
            unsafe {
                let v = old.slot(q).value.get().deref().assume_init_read();
                new.slot(q).value.get_mut().deref().write(v);
            }
            // Relaxed: the new ring is published (with this) by the Release
            // stores of its pointer below.
            new.set_stamp(q, q.wrapping_add(1), Ordering::Relaxed);
            q = q.wrapping_add(1) & POS;
        }
        let new_ptr = Box::into_raw(Box::new(new));
        // Release: pairs with the calls' Acquire loads of the ring pointer.
        self.prod.ring.store(new_ptr, Ordering::Release);
        self.cons.ring.store(new_ptr, Ordering::Release);
        // SAFETY: still under the lock: the new ring is the live one.
        ex.ring = unsafe { &*new_ptr };
        ex.generation = GEN_ONE;
    }

    /// Shut both index words and wait for the pushes in flight: the items at
    /// `[head, tail)` are then the exclusive operation's until the returned
    /// guard drops (also on a panic), which re-opens them. Pops in flight
    /// (their positions below the head) touch other slots and are not waited
    /// for: their slots are not among the items', and a push that meets one
    /// waits for it as it always does.
    ///
    /// # Safety
    /// The owner's lock is held (for the guard's whole life).
    pub(crate) unsafe fn exclusive(&self) -> Excl<'_, T> {
        // SeqCst (Acquire needed): pairs with a previous exclusive
        // operation's Release. From
        // these RMWs on, every CAS of a word read before them fails, and every
        // call that reads them takes the locked path. Tail first: the head
        // then read bounds the pops done (pops never pass the tail).
        let t = self.prod.tail.fetch_or(EXCL, Ordering::SeqCst) & POS;
        let h = self.cons.head.fetch_or(EXCL, Ordering::SeqCst) & POS;
        // SAFETY: the ring is replaced only under the lock, which is held.
        let ring = unsafe { &*self.cons.ring.load(Ordering::Acquire) };
        let mut q = h;
        while q != t {
            let mut step = 0;
            // Acquire: pairs with the push's Release stamp (its item).
            while ring.stamp(q, Ordering::Acquire) != (q.wrapping_add(1) & POS) {
                backoff(&mut step);
            }
            q = q.wrapping_add(1) & POS;
        }
        Excl {
            owner: self,
            ring,
            head: h,
            tail: t,
            generation: 0,
        }
    }
}

impl<T> Ring<T> {
    /// [`Ring::exclusive`], and also wait for the pops in flight: then no
    /// call is half done anywhere in the ring (for a `fork()`, whose child
    /// would never see another thread's call finish; see [`crate::fork`]).
    ///
    /// A pop in flight has moved the head past its position `q` (its CAS)
    /// and not yet stamped the slot `q + cap` (free for the next lap): its
    /// slot still says `q + 1`. Every other position below the head, in this
    /// ring's last lap, says something else: `q + cap` (popped, or taken by
    /// an exclusive operation), `q + cap + 1` (pushed again), or, in a ring
    /// made by a growth, a first-lap word that decodes to `q + cap`.
    ///
    /// # Safety
    /// The owner's lock is held (for the guard's whole life).
    pub(crate) unsafe fn quiesce(&self) -> Excl<'_, T> {
        // SAFETY: forwarded.
        let ex = unsafe { self.exclusive() };
        let cap = ex.ring.cap();
        let mut q = ex.head.wrapping_sub(cap) & POS;
        while q != ex.head {
            let mut step = 0;
            // Acquire: pairs with the pop's Release stamp (it is done with
            // the slot).
            while ex.ring.stamp(q, Ordering::Acquire) == (q.wrapping_add(1) & POS) {
                backoff(&mut step);
            }
            q = q.wrapping_add(1) & POS;
        }
        ex
    }

    /// Calls in flight now (pushes between the head and the tail whose
    /// stamps are not written, pops below the head whose slots are not
    /// freed): the quiesced state has none. For tests and models.
    ///
    /// # Safety
    /// The owner's lock is held.
    pub(crate) unsafe fn in_flight(&self) -> usize {
        // SAFETY: the ring is replaced only under the lock, which is held.
        let ring = unsafe { &*self.cons.ring.load(Ordering::Acquire) };
        let t = self.prod.tail.load(Ordering::SeqCst) & POS;
        let h = self.cons.head.load(Ordering::SeqCst) & POS;
        let cap = ring.cap();
        let mut n = 0;
        let mut q = h.wrapping_sub(cap) & POS;
        while q != h {
            if ring.stamp(q, Ordering::Acquire) == (q.wrapping_add(1) & POS) {
                n += 1;
            }
            q = q.wrapping_add(1) & POS;
        }
        while q != t {
            if ring.stamp(q, Ordering::Acquire) != (q.wrapping_add(1) & POS) {
                n += 1;
            }
            q = q.wrapping_add(1) & POS;
        }
        n
    }
}

/// The exclusive mode of a [`Ring`] (see [`Ring::exclusive`]).
pub(crate) struct Excl<'a, T> {
    owner: &'a Ring<T>,
    ring: &'a Slots<T>,
    head: u64,
    tail: u64,
    /// Added to both words' generation on re-opening (a growth).
    generation: u64,
}

impl<T> Excl<'_, T> {
    /// The positions of the items, front first.
    fn positions(&self) -> impl Iterator<Item = u64> {
        let (h, n) = (self.head, diff(self.tail, self.head) as u64);
        (0..n).map(move |i| h.wrapping_add(i) & POS)
    }

    /// `f` of every item, front first.
    pub(crate) fn map<R>(&self, mut f: impl FnMut(&T) -> R) -> Vec<R> {
        self.positions()
            .map(|q| {
                let cell = self.ring.slot(q).value.get();
                // SAFETY: exclusive mode: the item at `q` is written and no
                // call touches it while this guard lives.
                f(unsafe { cell.deref().assume_init_ref() })
            })
            .collect()
    }

    /// Call `f` on every item, front first, in place.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        for q in self.positions() {
            // SAFETY: as in `map`, and `&mut self` makes this the only access.
            f(unsafe { self.ring.slot(q).value.get_mut().deref().assume_init_mut() });
        }
    }

    /// Take every item, front first.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let out = self.positions().map(|q| self.take(q)).collect();
        self.head = self.tail;
        out
    }

    /// Move the item at `q` out and free its slot for the next lap.
    fn take(&self, q: u64) -> T {
        let slot = self.ring.slot(q);
        // SAFETY: as in `map`; the slot is freed below and `q` leaves the
        // items (the caller moves the head past it or overwrites it).
        let v = unsafe { slot.value.get().deref().assume_init_read() };
        // Release: pairs with the Acquire stamp load of the push a lap later.
        self.ring
            .set_stamp(q, q.wrapping_add(self.ring.cap()), Ordering::Release);
        v
    }

    /// Remove the items whose mark is `true` (one mark per item, front first)
    /// and return them in order; the others keep their order, compacted
    /// towards the tail (the head moves on by the count removed).
    pub(crate) fn remove_marked(&mut self, marks: &[bool]) -> Vec<T> {
        let positions: Vec<u64> = self.positions().collect();
        assert_eq!(positions.len(), marks.len(), "one mark per item");
        let removed: Vec<T> = positions
            .iter()
            .zip(marks)
            .filter(|(_, &m)| m)
            .map(|(&q, _)| {
                let slot = self.ring.slot(q);
                // SAFETY: as in `map`; the slot is overwritten by a survivor
                // below or falls below the new head.
                unsafe { slot.value.get().deref().assume_init_read() }
            })
            .collect();
        // From the back: each survivor moves to the next free position down
        // from the tail (never below its own, so no survivor is overwritten
        // before it moved).
        let mut free = self.tail;
        for (&q, &m) in positions.iter().zip(marks).rev() {
            if m {
                continue;
            }
            free = free.wrapping_sub(1) & POS;
            if free != q {
                // SAFETY: as in `map`; `q` (read) and `free` (holding a
                // removed or already moved item) are distinct slots.
                unsafe {
                    let v = self.ring.slot(q).value.get().deref().assume_init_read();
                    self.ring.slot(free).value.get_mut().deref().write(v);
                }
            }
        }
        // The positions [head, free) leave the items: their slots are free
        // for the next lap.
        let mut q = self.head;
        while q != free {
            // Release: as in `take`.
            self.ring
                .set_stamp(q, q.wrapping_add(self.ring.cap()), Ordering::Release);
            q = q.wrapping_add(1) & POS;
        }
        self.head = free;
        removed
    }
}

impl<T> Drop for Excl<'_, T> {
    fn drop(&mut self) {
        let r = self.owner;
        // SeqCst loads (Relaxed would do: under the lock, with EXCL set,
        // nothing else writes these words: every CAS fails, flags change
        // under the lock).
        let t = r.prod.tail.load(Ordering::SeqCst);
        let h = r.cons.head.load(Ordering::SeqCst);
        let keep = if t & CLOSED != 0 { EXCL } else { 0 };
        // SeqCst (Release needed, both): pairs with the calls' loads of the
        // words.
        // Tail first, head last: `len` reads a head without EXCL only before
        // this operation began or after it ended.
        r.prod.tail.store(
            ((t & !EXCL) | keep).wrapping_add(self.generation),
            Ordering::SeqCst,
        );
        r.cons.head.store(
            ((h & !(EXCL | POS)) | self.head).wrapping_add(self.generation),
            Ordering::SeqCst,
        );
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self`: no other access.
        let h = self.cons.head.load(Ordering::Relaxed) & POS;
        let t = self.prod.tail.load(Ordering::Relaxed) & POS;
        let mut ptr = self.cons.ring.load(Ordering::Relaxed);
        // SAFETY: `ptr` came from `Box::into_raw`; `&mut self`: no call uses
        // it any more.
        let ring = unsafe { &*ptr };
        let mut q = h;
        while q != t {
            // SAFETY: the items at [h, t) are written and owned by the ring;
            // each is dropped once (older rings hold only moved-out copies,
            // which `MaybeUninit` does not drop).
            unsafe { ring.slot(q).value.get_mut().deref().assume_init_drop() };
            q = q.wrapping_add(1) & POS;
        }
        while !ptr.is_null() {
            // SAFETY: every ring in the chain came from `Box::into_raw` and
            // is freed only here, once (each is in the chain once).
            let slots = unsafe { Box::from_raw(ptr) };
            ptr = slots.prev;
        }
    }
}
