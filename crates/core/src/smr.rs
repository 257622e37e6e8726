//! Safe memory reclamation for one published pointer: the engine of
//! `crossinterp.AtomicRef` on free-threaded CPython 3.13, which has no public
//! fail-able incref (seed 004).
//!
//! A reader may only take a reference to the published value inside a short
//! **read section** ([`Smr::read`]); a writer that unpublishes a value waits
//! ([`Smr::write`]) until every read section that could have seen it has
//! ended, and only then may the old value be released. So a reader never
//! touches a value whose last reference was dropped.
//!
//! The protocol: two generations of reader counters, striped over a few
//! cache-padded slots so readers on different threads do not share a cache
//! line.
//!
//! - Reader: `g = gen`; `slot.count[g & 1] += 1`; re-check `gen == g` (else
//!   undo and retry); the section (load the pointer, take a reference);
//!   `slot.count[g & 1] -= 1`.
//! - Writer (serialised by a mutex): publish the new value; `gen += 1`; wait
//!   until every slot's counter of the old parity is 0; the old value is now
//!   unreachable by readers.
//!
//! Why it is safe: a reader whose re-check saw `gen == g` is counted under
//! parity `g & 1` before the writer that moves `gen` away from `g` reads the
//! counters (a SeqCst fence between the store and the load on both sides, see
//! [`Smr::read`]), so that writer waits for it. A reader whose re-check saw
//! the new `gen` also sees the new pointer (the writer published before it
//! flipped), so it cannot hold the old one. The loom models are in
//! `tests/loom_smr.rs`.
//!
//! Read sections must be tiny and must never block, call [`Smr::write`] or run
//! arbitrary code: a writer spins (then yields) while one is open.

use crate::sync::{self, AtomicU64, AtomicUsize, Mutex, Ordering};
use crossbeam_utils::CachePadded;

/// Upper bound on the number of slots (a writer scans all of them).
const MAX_SLOTS: usize = 16;

/// Busy-wait iterations before a waiting writer starts yielding the CPU.
const SPINS_BEFORE_YIELD: u32 = 64;

/// One stripe of reader counters: the open read sections of the threads that
/// map to it, per generation parity.
#[derive(Default)]
struct Slot {
    count: [AtomicUsize; 2],
}

/// A reclamation domain for one published pointer (or any value that readers
/// load inside [`Smr::read`] and writers replace inside [`Smr::write`]).
///
/// Ownership: plain Rust data owned by whatever embeds it (an `AtomicRef`
/// object); readers and writers may be any threads, and it may be dropped on
/// any thread once no one uses it.
pub struct Smr {
    /// The generation; readers register under its parity.
    gen: AtomicU64,
    slots: Box<[CachePadded<Slot>]>,
    /// Serialises writers: each flip must have drained the previous one's
    /// readers before the next flip reuses that parity.
    writer: Mutex<()>,
}

impl Default for Smr {
    fn default() -> Self {
        Self::new()
    }
}

impl Smr {
    /// A domain with one slot per available CPU (a power of two, at most 16).
    pub fn new() -> Self {
        #[cfg(not(loom))]
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        #[cfg(loom)]
        let cpus = 2;
        Self::with_slots(cpus)
    }

    /// A domain with `n` slots (rounded up to a power of two, clamped to
    /// 1..=16). One slot makes every reader share a counter (what the loom
    /// models use to exercise collisions).
    pub fn with_slots(n: usize) -> Self {
        let n = n.clamp(1, MAX_SLOTS).next_power_of_two();
        Smr {
            gen: AtomicU64::new(0),
            slots: (0..n).map(|_| CachePadded::new(Slot::default())).collect(),
            writer: Mutex::new(()),
        }
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Run `section` as a read section: a value that a concurrent
    /// [`Smr::write`] unpublishes is not handed back to that writer (to be
    /// released) until `section` has returned.
    ///
    /// `section` must be short, must not block, and must not call
    /// [`Smr::write`] on this domain (the writer would wait for it forever).
    /// Lock-free for readers: it retries only when a writer flipped the
    /// generation between two of its loads.
    #[inline]
    pub fn read<R>(&self, section: impl FnOnce() -> R) -> R {
        let slot = &self.slots[thread_index() & (self.slots.len() - 1)];
        let parity = loop {
            // Relaxed: only a guess, validated by the re-check below.
            let g = self.gen.load(Ordering::Relaxed);
            let c = &slot.count[(g & 1) as usize];
            // Relaxed + the SeqCst fence: the store→load half of a Dekker
            // pair with the writer (flip; SeqCst fence; counter loads). The
            // two fences are totally ordered: if ours comes first, the
            // writer's counter load sees this increment (and waits for us);
            // if the writer's comes first, our re-check sees its flip (and we
            // retry). Without the fences both could miss each other.
            //
            // Fences rather than SeqCst accesses (equally correct by the C++
            // model): loom models SeqCst fences exactly but treats SeqCst
            // accesses as AcqRel (loom README, "Limitations"), so only the
            // fence form can be model-checked (tests/loom_smr.rs).
            c.fetch_add(1, Ordering::Relaxed);
            sync::fence(Ordering::SeqCst);
            // Acquire: pairs with the writer's Release flip, so when we see
            // the new generation we also see the pointer it published before
            // flipping.
            if self.gen.load(Ordering::Acquire) == g {
                break (g & 1) as usize;
            }
            // A writer flipped meanwhile: we are registered under a parity it
            // may not wait for. Undo and register under the current one.
            // Release: pairs with the writer's counter load like the exit below.
            c.fetch_sub(1, Ordering::Release);
        };
        // Leave the section even if `section` panics.
        let _exit = Exit(&slot.count[parity]);
        section()
    }

    /// Run `publish` serialised with every other writer of this domain. If it
    /// returns `Some(old)` (it unpublished `old`: readers can no longer load
    /// it), wait until every read section that may have loaded `old` has
    /// ended, then hand `old` back: the caller may now release it. `None`:
    /// nothing was unpublished, nothing to wait for.
    ///
    /// `publish` must make its change with at least `Release` ordering (so a
    /// reader that sees the new generation sees the change). Blocks only for
    /// other writers and for read sections already open (a few instructions
    /// each): it spins, then yields.
    pub fn write<T>(&self, publish: impl FnOnce() -> Option<T>) -> Option<T> {
        let _serial = sync::lock(&self.writer);
        let old = publish()?;
        // Release: a reader that acquires the new generation sees what
        // `publish` stored. Then the SeqCst fence: the writer's half of the
        // Dekker pair described in `read`.
        let g = self.gen.fetch_add(1, Ordering::Release);
        sync::fence(Ordering::SeqCst);
        let parity = (g & 1) as usize;
        for slot in self.slots.iter() {
            let mut spins = 0u32;
            // After the fence (see `read`). Acquire: pairs with each
            // reader's Release exit, so everything a reader did in its
            // section (e.g. taking a reference to `old`) happens before the
            // caller releases `old`.
            while slot.count[parity].load(Ordering::Acquire) != 0 {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    sync::spin_hint();
                } else {
                    sync::yield_now();
                }
            }
        }
        Some(old)
    }
}

/// Leaves a read section.
struct Exit<'a>(&'a AtomicUsize);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        // Release: the section's accesses happen before a writer that reads
        // this counter at 0 (its Acquire load) releases the value.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// The calling thread's slot index (any integer; masked by the caller).
#[cfg(not(loom))]
#[inline]
fn thread_index() -> usize {
    use std::cell::Cell;
    // Threads take indices round-robin on first use, so up to `slots`
    // threads each get their own cache line.
    static NEXT: crate::sync::statics::AtomicU64 = crate::sync::statics::AtomicU64::new(0);
    sync::thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let v = i.get();
        if v != usize::MAX {
            return v;
        }
        // Relaxed: an id, no protocol (see `sync::statics`).
        let v = NEXT.fetch_add(1, crate::sync::statics::Ordering::Relaxed) as usize;
        i.set(v);
        v
    })
}

/// Under loom: the modelled thread's number (0 for the model's main thread,
/// then 1, 2, ... in spawn order), which is the same in every execution — a
/// process-wide counter would not be, and loom needs determinism. Its `Hash`
/// includes the execution, so the number is read from its `Debug` form.
#[cfg(loom)]
fn thread_index() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    id.trim_start_matches("ThreadId(")
        .trim_end_matches(')')
        .parse()
        .unwrap_or(0)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn slots_are_a_power_of_two_within_bounds() {
        assert_eq!(Smr::with_slots(0).slots(), 1);
        assert_eq!(Smr::with_slots(3).slots(), 4);
        assert_eq!(Smr::with_slots(1000).slots(), MAX_SLOTS);
        assert!(Smr::new().slots() >= 1);
    }

    #[test]
    fn write_without_readers_returns_old() {
        let s = Smr::new();
        assert_eq!(s.write(|| Some(7)), Some(7));
        assert_eq!(s.write(|| None::<u8>), None);
        assert_eq!(s.read(|| 5), 5);
    }

    #[test]
    fn panicking_section_leaves_it() {
        let s = Smr::with_slots(1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.read(|| panic!("boom"));
        }));
        assert!(r.is_err());
        // A writer would hang here if the section were still counted.
        assert_eq!(s.write(|| Some(1)), Some(1));
    }
}
