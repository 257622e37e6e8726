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
//! The protocol: two generations of reader counters, in a few cache-padded
//! slots so readers on different threads do not share a cache line.
//!
//! - Reader: `g = gen`; `slot.count[g & 1] += 1`; SeqCst fence; re-check
//!   `gen == g` (else undo and retry); the section (load the pointer, take a
//!   reference); `slot.count[g & 1] -= 1`.
//! - Writer (serialised by a mutex): publish the new value; `gen += 1`;
//!   SeqCst fence; wait until every slot's counter of the old parity is 0;
//!   the old value is now unreachable by readers.
//!
//! A thread claims a slot of its own the first time it reads (a slot is
//! found by hashing the thread's id; claims are never given back, a thread
//! that later reuses a dead thread's id inherits its slot). In its own slot a
//! thread updates the counter with plain load/store pairs, so a read section
//! costs one fence (one locked instruction on x86-64) and no contended cache
//! line; threads that find every
//! slot taken share one overflow slot, updated with `fetch_add`/`fetch_sub`.
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

/// Bounds on the number of ownable slots (a writer scans all of them).
const MIN_SLOTS: usize = 8;
const MAX_SLOTS: usize = 32;

/// Busy-wait iterations before a waiting writer starts yielding the CPU.
const SPINS_BEFORE_YIELD: u32 = 64;

/// `Slot::owner` of a slot no thread has claimed.
const FREE: usize = 0;

/// The open read sections of the thread owning the slot (or, for the
/// overflow slot, of every thread without one), per generation parity.
#[derive(Default)]
struct Slot {
    /// The owning thread's id, or [`FREE`]. Only decides who may update the
    /// counters with plain stores; set once, by a CAS from `FREE`.
    owner: AtomicUsize,
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
    /// `owned` ownable slots (a power of two), then the overflow slot.
    slots: Box<[CachePadded<Slot>]>,
    owned: usize,
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
    /// A domain with two ownable slots per available CPU (8 to 32).
    pub fn new() -> Self {
        #[cfg(not(loom))]
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        #[cfg(loom)]
        let cpus = 1;
        Self::with_slots((2 * cpus).clamp(MIN_SLOTS, MAX_SLOTS))
    }

    /// A domain with `n` ownable slots (rounded up to a power of two, clamped
    /// to 1..=32) plus the overflow slot. With one slot, the second reading
    /// thread already shares the overflow slot (what the loom models use to
    /// cover both paths).
    pub fn with_slots(n: usize) -> Self {
        let owned = n.clamp(1, MAX_SLOTS).next_power_of_two();
        Smr {
            gen: AtomicU64::new(0),
            slots: (0..=owned)
                .map(|_| CachePadded::new(Slot::default()))
                .collect(),
            owned,
            writer: Mutex::new(()),
        }
    }

    /// The number of ownable slots.
    pub fn slots(&self) -> usize {
        self.owned
    }

    /// The calling thread's slot, and whether it owns it (else it is the
    /// shared overflow slot).
    #[inline(always)]
    fn slot(&self) -> (&Slot, bool) {
        let tid = thread_id();
        let i = hash(tid) & (self.owned - 1);
        let s = &self.slots[i];
        // Relaxed: `owner` decides nothing but who may use plain stores on
        // the counters, and a thread always sees its own claim.
        if s.owner.load(Ordering::Relaxed) == tid {
            return (s, true);
        }
        self.slot_slow(tid, i)
    }

    #[cold]
    fn slot_slow(&self, tid: usize, first: usize) -> (&Slot, bool) {
        for k in 0..self.owned {
            let s = &self.slots[(first + k) & (self.owned - 1)];
            // Relaxed: as in `slot`; the CAS makes the claim unique.
            let o = s.owner.load(Ordering::Relaxed);
            if o == tid
                || (o == FREE
                    && s.owner
                        .compare_exchange(FREE, tid, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok())
            {
                return (s, true);
            }
        }
        (&self.slots[self.owned], false)
    }

    /// Run `section` as a read section: a value that a concurrent
    /// [`Smr::write`] unpublishes is not handed back to that writer (to be
    /// released) until `section` has returned.
    ///
    /// `section` must be short, must not block, and must not call
    /// [`Smr::write`] on this domain (the writer would wait for it forever).
    /// Lock-free for readers: it retries only when a writer flipped the
    /// generation between two of its loads.
    #[inline(always)]
    pub fn read<R>(&self, section: impl FnOnce() -> R) -> R {
        let (slot, own) = self.slot();
        let parity = loop {
            // Relaxed: only a guess, validated by the re-check below.
            let g = self.gen.load(Ordering::Relaxed);
            let c = &slot.count[(g & 1) as usize];
            enter(c, own);
            // The SeqCst fence: the store→load half of a Dekker pair with
            // the writer (flip; SeqCst fence; counter loads). The two fences
            // are totally ordered: if ours comes first, the writer's counter
            // load sees our increment (and waits for us); if the writer's
            // comes first, our re-check sees its flip (and we retry).
            // Without them both could miss each other.
            //
            // A fence rather than SeqCst accesses (equally correct by the C++
            // model, one locked instruction either way on x86-64): loom
            // models SeqCst fences exactly but treats SeqCst accesses as
            // AcqRel (loom README, "Limitations"), so only the fence form can
            // be model-checked (tests/loom_smr.rs). An asymmetric pair
            // (compiler fence here, sys_membarrier in the writer) was
            // measured and dropped: a read section cost the same, 3.0-3.9 ns
            // either way, while a write went from ~10 ns to ~440 ns (1.9 µs
            // from Python with threads running).
            sync::fence(Ordering::SeqCst);
            // Acquire: pairs with the writer's Release flip, so when we see
            // the new generation we also see the pointer it published before
            // flipping.
            if self.gen.load(Ordering::Acquire) == g {
                break (g & 1) as usize;
            }
            // A writer flipped meanwhile: we are registered under a parity it
            // may not wait for. Undo and register under the current one.
            leave(c, own);
        };
        // Leave the section even if `section` panics.
        let _exit = Exit(&slot.count[parity], own);
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

/// Count a section in. In its own slot only this thread writes the counter,
/// so a plain load/store pair suffices (Relaxed: the fence pair orders it);
/// the overflow slot needs the atomic add.
#[inline(always)]
fn enter(c: &AtomicUsize, own: bool) {
    if own {
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    } else {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Count a section out. Release: the section's accesses happen before a
/// writer that reads this counter at 0 (its Acquire load) releases the value.
#[inline(always)]
fn leave(c: &AtomicUsize, own: bool) {
    if own {
        c.store(c.load(Ordering::Relaxed) - 1, Ordering::Release);
    } else {
        c.fetch_sub(1, Ordering::Release);
    }
}

/// Leaves a read section.
struct Exit<'a>(&'a AtomicUsize, bool);

impl Drop for Exit<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        leave(self.0, self.1);
    }
}

/// Spread thread ids (aligned addresses) over the slots: Fibonacci hashing,
/// the top bits of a multiply.
#[inline]
fn hash(tid: usize) -> usize {
    (tid as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(32) as usize
}

/// A non-zero id unique among live threads: on x86-64 Linux the thread
/// control block's self-pointer (`%fs:0`, one instruction, as CPython's own
/// `_Py_ThreadId`); elsewhere the address of a thread-local.
#[cfg(all(not(loom), target_arch = "x86_64", target_os = "linux"))]
#[inline]
fn thread_id() -> usize {
    let tcb: usize;
    // SAFETY: on x86-64 Linux, %fs points to the current thread's TCB,
    // whose first word is its own address (the TLS ABI); a plain read.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) tcb, options(nostack, readonly, preserves_flags));
    }
    tcb
}

#[cfg(all(not(loom), not(all(target_arch = "x86_64", target_os = "linux"))))]
#[inline]
fn thread_id() -> usize {
    sync::thread_local! {
        static ANCHOR: u8 = const { 0 };
    }
    ANCHOR.with(|a| a as *const u8 as usize)
}

/// Under loom: the modelled thread's number plus one (0 for the model's main
/// thread, then 1, 2, ... in spawn order), the same in every execution, as
/// loom needs. Its `Hash` includes the execution, so the number is read from
/// its `Debug` form.
#[cfg(loom)]
fn thread_id() -> usize {
    let id = format!("{:?}", loom::thread::current().id());
    1 + id
        .trim_start_matches("ThreadId(")
        .trim_end_matches(')')
        .parse::<usize>()
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
        assert!(Smr::new().slots() >= MIN_SLOTS);
    }

    #[test]
    fn threads_claim_own_slots_then_share_the_overflow() {
        let s = std::sync::Arc::new(Smr::with_slots(2));
        assert!(s.slot().1, "first thread owns a slot");
        let owns: Vec<bool> = (0..3)
            .map(|_| {
                let s = s.clone();
                // Sequential threads, kept alive together by a barrier so
                // their ids are distinct.
                std::thread::spawn(move || s.slot().1)
            })
            .map(|h| h.join().unwrap())
            .collect();
        // The main thread holds one slot; a dead thread's id may be reused
        // by the next (it then inherits the slot), so at least one more
        // thread owned a slot and none failed to read.
        assert!(owns.iter().any(|o| *o));
        assert_eq!(s.read(|| 3), 3);
        assert_eq!(s.write(|| Some(1)), Some(1));
    }

    #[test]
    fn ids_are_distinct_across_live_threads() {
        let b = std::sync::Arc::new(std::sync::Barrier::new(4));
        let ids: Vec<usize> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let id = thread_id();
                    b.wait();
                    id
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let mut u = ids.clone();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), 4);
        assert!(ids.iter().all(|i| *i != FREE));
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
