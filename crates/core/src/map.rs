//! [`ShardedMap`]: a concurrent hash map split into independently locked
//! shards — the engine of `crossinterp.AtomicDict`, independent of Python.
//!
//! # Design
//!
//! - `N` shards (a power of two, [`DEFAULT_SHARDS`] by default), each a
//!   [`hashbrown::HashTable`] guarded by the reader protocol below, each on its
//!   own cache line pair (`crossbeam_utils::CachePadded`).
//! - Reads do not write to shared memory (a plain reader-writer lock would:
//!   its reader count bounces between the cores of every thread reading the
//!   shard, which measured as *no* speed-up from 1 to 2 threads on a 90 % read
//!   load). Instead, a distributed reader lock in the style of Linux's
//!   "big reader" locks / BRAVO: each thread has a reader slot (one of
//!   up to [`READER_SLOTS`], by thread), and each slot a counter per shard on the
//!   slot's own cache lines. A slot is *exclusive*: a thread claims the lowest
//!   free one from a process-wide pool on its first read and gives it back when
//!   it exits (`reader_slot`), so only its owner ever writes a slot's counters
//!   and a reader updates its counter with a plain load and store, not a locked
//!   read-modify-write (`slot_handoff_vs_writer` loom model: the pool's
//!   Release/Acquire hands the zeroed counters to the next owner). A thread
//!   with no slot (more threads than the map has slots) or whose slot is beyond
//!   the map's count reads through the shard's `RwLock` (slow path). A reader
//!   1. increments its slot's counter for the shard, then a SeqCst fence
//!      (on x86 the increment is itself the barrier, a locked `xchg`:
//!      `enter_read`),
//!   2. loads the shard's `writing` flag (Acquire): clear → it reads the table
//!      and decrements its counter (Release) when done; set → it decrements
//!      and falls back to the shard's `RwLock` in read mode (slow path).
//!
//!   The barrier is the only locked instruction of a fast read (it was three:
//!   an RMW to increment, the fence, an RMW to decrement; measured with
//!   `perf` on 3.13t, those were most of a lookup's cycles).
//!
//!   A writer takes the shard's `RwLock` in write mode (excluding slow readers
//!   and other writers), sets `writing`, a SeqCst fence, waits until every
//!   slot's counter for the shard is 0 (Acquire loads; readers hold it for a
//!   lookup only, never blocking inside), mutates, clears `writing` (Release)
//!   and unlocks. The two store→fence→load sequences are Dekker's (the SeqCst
//!   fences are totally ordered, so the later one's load sees the earlier
//!   one's store): either the reader
//!   sees `writing` set, or the writer sees the reader's count — never
//!   neither (`fast_read_vs_resize` loom model; the table lives in a loom
//!   `UnsafeCell`, so a reader overlapping a writer would be reported). A
//!   reader that sees the flag clear synchronizes with the previous writer's
//!   Release store, so it sees that writer's table.
//!   Cost: 64 shards × 128 bytes, plus per slot 4 × 128 bytes of counters
//!   (≤ 16 KiB per map in all); a write scans one counter per slot a thread
//!   owns (the process-wide pool of slot ids says which, loaded with Acquire
//!   after the writer's fence: `drain_readers`). A thread must not take a shard's write lock
//!   while it holds a read guard of the same shard (it would wait for itself).
//! - The caller supplies every key's 64-bit hash and an equality closure: keys
//!   are compared by whatever the caller decides (the extension compares Python
//!   objects, some of them only outside the lock; see below). `HashTable` was
//!   chosen over `std::collections::HashMap` because it takes exactly that — a
//!   hash and an `eq` closure per call — with no `Hash`/`Eq` impls on the key.
//! - The caller's hash is first spread (`spread`: a multiply by an odd constant
//!   and a xor-shift, both bijective, so two hashes collide after spreading iff
//!   they collided before). Python's `hash(i) == i` for small ints would
//!   otherwise pile every key into shard 0 and give hashbrown's 7-bit tags no
//!   entropy. The shard is taken from bits 40.. of the spread hash; hashbrown
//!   uses the low bits for the bucket and the top 7 for the tag, so the three
//!   never overlap (for tables below 2^40 buckets).
//! - A shard's table grows (re-hashes) inside that shard's write lock: a
//!   resize blocks that shard only, readers of other shards never notice
//!   (`insert_while_resizing` tests, `resize_vs_reader` loom model).
//! - `len` is one atomic counter updated inside the write lock of the mutated
//!   shard: exact when no mutation is in flight, and never negative (every
//!   decrement is ordered after its increment by the shard lock, so it follows
//!   it in the counter's modification order too).
//!
//! # Comparing outside the lock
//!
//! The equality closure runs under the shard lock. A caller whose equality may
//! block or re-enter (Python's `__eq__`) uses it only for the comparisons it
//! can make without that (identity, plain builtin types) and records the other
//! candidates ([`ReadGuard::candidates`] lists them), compares those after
//! releasing the lock, memoizes the verdicts, and looks up again under the
//! lock: the second lookup is decided under the lock from identity and the
//! memo, so no version check is needed (a key inserted meanwhile is simply a
//! new candidate, and the caller loops).
//!
//! # Ownership
//!
//! The map owns its keys and values (`K`, `V` are dropped with it or handed
//! back by `remove`/`insert`/`drain`). Mutating calls hand displaced keys and
//! values back to the caller, which drops them after releasing the lock: a
//! drop that runs user code (a Python `__del__`) must never run under a shard
//! lock.

use crate::sync::{
    self, AtomicBool, AtomicI64, AtomicU64, ConstPtr, MutPtr, Ordering, RwLock, RwLockReadGuard,
    RwLockWriteGuard, UnsafeCell,
};
use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use std::fmt;

/// The default number of shards: enough that a handful of threads rarely meet
/// on one lock, few enough that an empty map stays small (64 × 128 bytes).
pub const DEFAULT_SHARDS: usize = 64;

/// One key-value pair and the caller's hash of the key.
struct Entry<K, V> {
    hash: u64,
    key: K,
    value: V,
}

/// The table of one shard, behind that shard's lock.
struct Shard<K, V> {
    table: HashTable<Entry<K, V>>,
}

/// The most reader slots a map has, and the size of the process-wide pool of
/// slot ids (see the module doc): a thread owns one id while it lives; a
/// thread that finds the pool empty, or whose id is beyond a map's slot count,
/// reads that map through the shard locks (correct, only slower). A map has
/// the smallest power of two >= twice the machine's parallelism, at least 8
/// and at most this: a write scans the counters of the owned slots only, but
/// a thread beyond the map's slots reads through the lock.
/// Under loom: 2, one per modelled reader thread.
#[cfg(not(loom))]
pub const READER_SLOTS: usize = 16;
/// See the non-loom definition.
#[cfg(loom)]
pub const READER_SLOTS: usize = 2;

/// Counters per cache-line pair in the reader table.
const PER_LINE: usize = 16;

/// One shard: the writers' lock, the `writing` flag and the table.
struct ShardCell<K, V> {
    lock: RwLock<()>,
    writing: AtomicBool,
    data: UnsafeCell<Shard<K, V>>,
}

/// One shard on its own cache lines.
type Slot<K, V> = CachePadded<ShardCell<K, V>>;

/// How many reader slots a new map gets (see [`READER_SLOTS`]).
#[cfg(not(loom))]
fn reader_slots() -> usize {
    let n = std::thread::available_parallelism().map_or(8, |n| n.get());
    (2 * n).next_power_of_two().clamp(8, READER_SLOTS)
}

/// Under loom: [`READER_SLOTS`].
#[cfg(loom)]
fn reader_slots() -> usize {
    READER_SLOTS
}

/// "This thread has no reader slot": the pool was empty at its first read, or
/// its slot was already given back (a read from a later thread-local's
/// destructor).
const NO_SLOT: usize = usize::MAX;

/// Claim the lowest free id of `pool` (bit `i` set: id `i` is owned), or
/// [`NO_SLOT`] if all [`READER_SLOTS`] are owned. Acquire: the previous
/// owner's last counter stores (Release) happen before ours, so we start from
/// the zeros it left.
macro_rules! claim_slot {
    ($pool:expr) => {{
        let pool = $pool;
        let mut cur = pool.load(Ordering::Acquire);
        loop {
            let free = !cur & ((1u64 << READER_SLOTS) - 1);
            if free == 0 {
                break NO_SLOT;
            }
            let id = free.trailing_zeros() as usize;
            match pool.compare_exchange_weak(
                cur,
                cur | (1 << id),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break id,
                Err(now) => cur = now,
            }
        }
    }};
}

/// Give slot `id` back to `pool` when its thread exits. Release: our counter
/// stores (all back to zero: a read guard never outlives the read call that
/// made it, nor moves to another thread) happen before the next owner's claim.
macro_rules! release_slot {
    ($pool:expr, $id:expr) => {{
        if $id != NO_SLOT {
            $pool.fetch_and(!(1u64 << $id), Ordering::Release);
        }
    }};
}

/// The process-wide pool of reader slot ids (bit `i` set: id `i` is owned).
#[cfg(not(loom))]
static POOL: crate::sync::statics::AtomicU64 = crate::sync::statics::AtomicU64::new(0);

/// The calling thread's exclusive reader slot ([`NO_SLOT`] if none).
#[cfg(not(loom))]
#[inline]
fn reader_slot() -> usize {
    use crate::sync::statics::Ordering;
    struct Claim(usize);
    impl Drop for Claim {
        fn drop(&mut self) {
            release_slot!(&POOL, self.0);
        }
    }
    std::thread_local! {
        static SLOT: Claim = Claim(claim_slot!(&POOL));
    }
    SLOT.try_with(|s| s.0).unwrap_or(NO_SLOT)
}

/// The slot ids owned now, for a writer's scan ([`ShardedMap::drain_readers`]
/// says why Acquire, after the writer's fence, is enough and needed).
#[cfg(not(loom))]
#[inline]
fn claimed_slots() -> u64 {
    POOL.load(crate::sync::statics::Ordering::Acquire)
}

#[cfg(loom)]
type Pool = std::sync::Arc<loom::sync::atomic::AtomicU64>;

#[cfg(loom)]
loom::lazy_static! {
    static ref POOL: Pool = std::sync::Arc::new(loom::sync::atomic::AtomicU64::new(0));
}

/// The calling thread's reader slot under loom: the same pool, as a loom
/// atomic that exists per model execution (`lazy_static!` resets with each
/// execution, `thread_local!` is per modelled thread and dropped when it
/// ends), so the models check the hand-off of a slot between threads and the
/// writers' view of which slots are owned. Each claim holds the pool by an
/// `Arc`: loom drops the statics before the main thread's locals.
#[cfg(loom)]
fn reader_slot() -> usize {
    struct Claim(usize, Pool);
    impl Drop for Claim {
        fn drop(&mut self) {
            release_slot!(&*self.1, self.0);
        }
    }
    loom::thread_local! {
        static SLOT: Claim = {
            let pool: Pool = POOL.clone();
            Claim(claim_slot!(&*pool), pool)
        };
    }
    SLOT.with(|s| s.0)
}

/// Under loom: the same, from the model's pool.
#[cfg(loom)]
fn claimed_slots() -> u64 {
    POOL.load(Ordering::Acquire)
}

/// The reader's half of the Dekker pair, first step: add one to this
/// thread's counter `c` for the shard, then a full barrier, before the
/// `writing` flag is loaded.
///
/// Portable form (and the one the loom models check): a plain store, then a
/// `SeqCst` fence. Fences rather than `SeqCst` accesses: the fence pairing is
/// what the C++/Rust model guarantees for two locations, and what loom checks
/// (it treats `SeqCst` accesses as `AcqRel`).
///
/// On x86 (outside loom) the barrier is the increment itself, a locked
/// read-modify-write (`xchg`), instead of a store followed by `mfence`. In
/// the x86 memory model a locked instruction orders every earlier and later
/// load and store of ordinary memory, which is all the Dekker pair needs (a
/// later load cannot pass it, so the `writing` load happens after the
/// counter is globally visible); `mfence` additionally orders non-temporal
/// and write-combining accesses, which none of this uses, and costs more
/// (measured: a 3.13t reads-only `d[k]` loop, one thread, Intel Xeon, 1.643x
/// -> 1.590x a plain dict's time, medians of 6 alternating processes). The compiler cannot
/// hoist the later flag load above it either: a `SeqCst` RMW acquires.
/// crossbeam-epoch's `pin` makes the same substitution (a locked
/// `compare_exchange` for `fence(SeqCst)` on x86) for the same reason.
#[inline(always)]
fn enter_read(c: &AtomicU64) {
    // A plain load: only this thread writes its slot's counters (module doc).
    let n = c.load(Ordering::Relaxed) + 1;
    if cfg!(all(
        not(loom),
        any(target_arch = "x86", target_arch = "x86_64")
    )) {
        // SeqCst: the locked form (the barrier); see above.
        c.swap(n, Ordering::SeqCst);
    } else {
        c.store(n, Ordering::Relaxed);
        sync::fence(Ordering::SeqCst);
    }
}

/// Spread a caller's hash over all 64 bits (see the module doc). Bijective.
#[inline]
fn spread(hash: u64) -> u64 {
    let h = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// A concurrent hash map of `N` independently locked shards.
///
/// Ownership: owns its entries; share it between threads by reference or
/// `Arc`. `K` and `V` must be `Send` for the map to be `Sync` (the standard
/// lock's rules). Entries displaced by a mutation are returned to the caller
/// and dropped where it decides (never under a shard lock).
pub struct ShardedMap<K, V> {
    shards: Box<[Slot<K, V>]>,
    /// Reader counters: slot `r`, shard `s` is
    /// `readers[r * lines + s / PER_LINE][s % PER_LINE]`.
    readers: Box<[CachePadded<[AtomicU64; PER_LINE]>]>,
    lines: usize,
    /// The number of reader slots (a power of two).
    slots: usize,
    mask: usize,
    len: AtomicI64,
}

// SAFETY: the tables are only reached through the guards: shared access
// (`&K`, `&V` on several threads at once: needs `Sync`) under the reader
// protocol or the read lock, exclusive access (moving `K`, `V` in and out:
// needs `Send`) under the write lock with every fast reader drained.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for ShardedMap<K, V> {}
// SAFETY: as above; the map owns its entries.
unsafe impl<K: Send, V: Send> Send for ShardedMap<K, V> {}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedMap")
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .finish()
    }
}

impl<K, V> ShardedMap<K, V> {
    /// An empty map with [`DEFAULT_SHARDS`] shards.
    pub fn new() -> Self {
        Self::with_shards(DEFAULT_SHARDS)
    }

    /// An empty map with `n` shards, rounded up to a power of two (at least 1).
    pub fn with_shards(n: usize) -> Self {
        let n = n.max(1).next_power_of_two();
        let shards = (0..n)
            .map(|_| {
                CachePadded::new(ShardCell {
                    lock: RwLock::new(()),
                    writing: AtomicBool::new(false),
                    data: UnsafeCell::new(Shard {
                        table: HashTable::new(),
                    }),
                })
            })
            .collect();
        let lines = n.div_ceil(PER_LINE);
        let slots = reader_slots();
        let readers = (0..slots * lines)
            .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        ShardedMap {
            shards,
            readers,
            lines,
            slots,
            mask: n - 1,
            len: AtomicI64::new(0),
        }
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard a hash maps to.
    #[inline]
    pub fn shard_of(&self, hash: u64) -> usize {
        (spread(hash) >> 40) as usize & self.mask
    }

    /// The number of entries: exact when no mutation is in flight; under
    /// concurrent mutation, some value the count had recently.
    pub fn len(&self) -> usize {
        // Relaxed: a statistic; no data is published through it.
        self.len.load(Ordering::Relaxed).max(0) as usize
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read-lock the shard of `hash`, if no writer holds it.
    #[inline]
    pub fn try_read(&self, hash: u64) -> Option<ReadGuard<'_, K, V>> {
        self.try_read_shard(self.shard_of(hash))
    }

    /// Read-lock the shard of `hash`, waiting for writers.
    pub fn read(&self, hash: u64) -> ReadGuard<'_, K, V> {
        self.read_shard(self.shard_of(hash))
    }

    /// Write-lock the shard of `hash`, if nobody holds it.
    #[inline]
    pub fn try_write(&self, hash: u64) -> Option<WriteGuard<'_, K, V>> {
        self.try_write_shard(self.shard_of(hash))
    }

    /// Write-lock the shard of `hash`, waiting for everyone else.
    pub fn write(&self, hash: u64) -> WriteGuard<'_, K, V> {
        self.write_shard(self.shard_of(hash))
    }

    /// The slot ids this map has counters for (`slots` is a power of two,
    /// at most [`READER_SLOTS`] < 64).
    #[inline]
    fn slot_mask(&self) -> u64 {
        (1u64 << self.slots) - 1
    }

    /// The reader counter of `slot` (`< self.slots`) for shard `i`.
    #[inline]
    fn counter(&self, slot: usize, i: usize) -> &AtomicU64 {
        &self.readers[slot * self.lines + i / PER_LINE][i % PER_LINE]
    }

    /// The fast read path (module doc): `None` if a writer is at work.
    #[inline]
    fn fast_read(&self, i: usize) -> Option<ReadGuard<'_, K, V>> {
        let cell = &self.shards[i];
        let slot = reader_slot();
        if slot >= self.slots {
            // No slot of ours in this map (NO_SLOT, or more threads than
            // slots): read through the lock.
            return None;
        }
        let c = self.counter(slot, i);
        // The reader half of the Dekker pair (module doc): increment, full
        // barrier (`enter_read`), load.
        enter_read(c);
        // Acquire: seeing `false` stored by a writer (Release) shows us its table.
        if !cell.writing.load(Ordering::Acquire) {
            return Some(ReadGuard {
                p: Some(cell.data.get()),
                how: ReadHow::Fast(c),
                _not_send: std::marker::PhantomData,
            });
        }
        // Release: pairs with the writer's acquire load; we read nothing.
        c.store(c.load(Ordering::Relaxed) - 1, Ordering::Release);
        None
    }

    /// Read-lock shard `i` (`i < shard_count()`), if no writer holds it.
    #[inline]
    pub fn try_read_shard(&self, i: usize) -> Option<ReadGuard<'_, K, V>> {
        if let Some(g) = self.fast_read(i) {
            return Some(g);
        }
        let cell = &self.shards[i];
        sync::try_read(&cell.lock).map(|g| ReadGuard {
            p: Some(cell.data.get()),
            how: ReadHow::Locked(g),
            _not_send: std::marker::PhantomData,
        })
    }

    /// Read-lock shard `i`, waiting.
    pub fn read_shard(&self, i: usize) -> ReadGuard<'_, K, V> {
        if let Some(g) = self.fast_read(i) {
            return g;
        }
        let cell = &self.shards[i];
        let g = sync::read(&cell.lock);
        ReadGuard {
            p: Some(cell.data.get()),
            how: ReadHow::Locked(g),
            _not_send: std::marker::PhantomData,
        }
    }

    /// With shard `i`'s write lock held: raise `writing` and wait for the fast
    /// readers already inside to leave; or, if `!wait` and some are inside,
    /// lower it again and give up (`None`).
    fn drain_readers<'a>(
        &'a self,
        i: usize,
        g: RwLockWriteGuard<'a, ()>,
        wait: bool,
    ) -> Option<WriteGuard<'a, K, V>> {
        let cell = &self.shards[i];
        // The writer half of the Dekker pair (see `fast_read`): store, SeqCst
        // fence, loads. Relaxed store: the fence orders it.
        cell.writing.store(true, Ordering::Relaxed);
        sync::fence(Ordering::SeqCst);
        // Only a slot some thread owns can have a reader inside, so only
        // those are scanned (with a few threads, 2-3 counters rather than all
        // `slots`). A reader claims its slot (an RMW on the pool) before its
        // increment and barrier, so if its barrier precedes our fence this
        // load sees the claim (fence-to-fence ordering), and if our fence
        // precedes its barrier it sees `writing` and goes through the lock.
        // A slot given back has its counter at zero, and its owner's last
        // reads are over: Acquire, because reading that give-back (a Release
        // RMW, or any later RMW of its release sequence) is then what orders
        // those reads before our mutation (loom's `try_write_vs_fast_reader`
        // reports the reader's and our accesses to the table as concurrent
        // with a Relaxed load here).
        let mut owned = claimed_slots() & self.slot_mask();
        while owned != 0 {
            let slot = owned.trailing_zeros() as usize;
            owned &= owned - 1;
            let c = self.counter(slot, i);
            let mut spins = 0u32;
            // Acquire: a reader's Release decrement is seen with all its
            // reads of the table before it.
            while c.load(Ordering::Acquire) != 0 {
                if !wait {
                    // Release: we touched nothing.
                    cell.writing.store(false, Ordering::Release);
                    return None;
                }
                spins += 1;
                // Under loom every turn yields (a spin without a yield point
                // would make the model explore each iteration).
                if spins < 64 && !cfg!(loom) {
                    std::hint::spin_loop();
                } else {
                    crate::sync::yield_now();
                }
            }
        }
        Some(WriteGuard {
            p: Some(cell.data.get_mut()),
            writing: &cell.writing,
            _lock: g,
            len: &self.len,
        })
    }

    /// Write-lock shard `i`, if nobody (writer or reader) is in it.
    #[inline]
    pub fn try_write_shard(&self, i: usize) -> Option<WriteGuard<'_, K, V>> {
        let g = sync::try_write(&self.shards[i].lock)?;
        self.drain_readers(i, g, false)
    }

    /// Write-lock shard `i`, waiting for the writer and readers inside (fast
    /// readers never block inside, so that wait is short).
    pub fn write_shard(&self, i: usize) -> WriteGuard<'_, K, V> {
        let g = sync::write(&self.shards[i].lock);
        match self.drain_readers(i, g, true) {
            Some(w) => w,
            None => unreachable!("drain_readers(wait = true) always succeeds"),
        }
    }

    /// Remove every entry, one shard at a time (each under its write lock),
    /// and hand them back. Entries inserted concurrently into a shard already
    /// drained stay.
    pub fn drain(&self) -> Vec<(K, V)> {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            out.extend(self.write_shard(i).drain());
        }
        out
    }
}

/// A read lock on one shard. Lookups by hash + equality, and iteration of that
/// shard's entries.
pub struct ReadGuard<'a, K, V> {
    /// `Some` until dropped (the access ends before the lock is released).
    p: Option<ConstPtr<Shard<K, V>>>,
    how: ReadHow<'a>,
    /// `!Send`: a fast guard decrements its thread's own slot counter with a
    /// plain store, which only that thread may do.
    _not_send: std::marker::PhantomData<*const ()>,
}

enum ReadHow<'a> {
    /// Fast path: this slot counter is held.
    Fast(&'a AtomicU64),
    /// Slow path: the shard's lock in read mode.
    Locked(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
}

impl<K, V> Drop for ReadGuard<'_, K, V> {
    fn drop(&mut self) {
        self.p = None;
        if let ReadHow::Fast(c) = self.how {
            // Release: our reads of the table happen before a writer that
            // sees the count drop (see `drain_readers`). A plain load and
            // store: the counter is this thread's (the guard is `!Send`).
            c.store(c.load(Ordering::Relaxed) - 1, Ordering::Release);
        }
    }
}

impl<K, V> ReadGuard<'_, K, V> {
    #[inline]
    fn shard(&self) -> &Shard<K, V> {
        // SAFETY: `p` is `Some` until drop; while this guard lives no writer
        // mutates the shard (module doc: reader protocol / read lock).
        unsafe { self.p.as_ref().unwrap_unchecked().deref() }
    }
}

/// A write lock on one shard: lookups and mutations.
pub struct WriteGuard<'a, K, V> {
    /// `Some` until dropped (the access ends before `writing` is cleared).
    p: Option<MutPtr<Shard<K, V>>>,
    writing: &'a AtomicBool,
    _lock: RwLockWriteGuard<'a, ()>,
    len: &'a AtomicI64,
}

impl<K, V> Drop for WriteGuard<'_, K, V> {
    fn drop(&mut self) {
        self.p = None;
        // Release: fast readers that see the flag clear see our table.
        self.writing.store(false, Ordering::Release);
        // `_lock` is released after this.
    }
}

impl<K, V> WriteGuard<'_, K, V> {
    #[inline]
    fn shard(&self) -> &Shard<K, V> {
        // SAFETY: `p` is `Some` until drop; this guard is the shard's only
        // accessor (write lock held, fast readers drained).
        unsafe { self.p.as_ref().unwrap_unchecked().deref() }
    }

    #[inline]
    fn shard_mut(&mut self) -> &mut Shard<K, V> {
        // SAFETY: as in `shard`, and `&mut self` makes this borrow unique.
        unsafe { self.p.as_ref().unwrap_unchecked().deref() }
    }
}

macro_rules! read_ops {
    () => {
        /// The entry whose key has `hash` and satisfies `eq`. `eq` is called
        /// only for keys of exactly that hash, in an unspecified order, and
        /// the first key it accepts wins.
        #[inline]
        pub fn find(&self, hash: u64, mut eq: impl FnMut(&K) -> bool) -> Option<(&K, &V)> {
            self.shard()
                .table
                .find(spread(hash), |e| e.hash == hash && eq(&e.key))
                .map(|e| (&e.key, &e.value))
        }

        /// Every entry whose key has exactly `hash` (collision candidates).
        pub fn candidates(&self, hash: u64) -> impl Iterator<Item = (&K, &V)> + '_ {
            self.shard()
                .table
                .iter_hash(spread(hash))
                .filter(move |e| e.hash == hash)
                .map(|e| (&e.key, &e.value))
        }

        /// Every entry of this shard.
        pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
            self.shard().table.iter().map(|e| (&e.key, &e.value))
        }

        /// The number of entries in this shard.
        pub fn len(&self) -> usize {
            self.shard().table.len()
        }

        /// Whether this shard is empty.
        pub fn is_empty(&self) -> bool {
            self.shard().table.is_empty()
        }
    };
}

impl<K, V> ReadGuard<'_, K, V> {
    read_ops!();
}

impl<K, V> WriteGuard<'_, K, V> {
    read_ops!();

    // Relaxed on `len`: the counter publishes nothing (see `ShardedMap::len`);
    // its updates are ordered among themselves by the shard lock.
    fn count(&self, d: i64) {
        self.len.fetch_add(d, Ordering::Relaxed);
    }

    /// The value of the entry whose key has `hash` and satisfies `eq`, for
    /// replacing in place (the key set does not change).
    pub fn get_mut(&mut self, hash: u64, mut eq: impl FnMut(&K) -> bool) -> Option<&mut V> {
        self.shard_mut()
            .table
            .find_mut(spread(hash), |e| e.hash == hash && eq(&e.key))
            .map(|e| &mut e.value)
    }

    /// The entry whose key has `hash` and satisfies `eq`, to read, replace
    /// the value of, or remove.
    pub fn entry(
        &mut self,
        hash: u64,
        mut eq: impl FnMut(&K) -> bool,
    ) -> Option<Occupied<'_, K, V>> {
        let len = self.len;
        let e = self
            .shard_mut()
            .table
            .find_entry(spread(hash), |e| e.hash == hash && eq(&e.key))
            .ok()?;
        Some(Occupied { e, len })
    }

    /// Insert `key` → `value`, which the caller has established is absent
    /// (a lookup under this same guard found no equal key). Inserting a key
    /// that is present makes two entries for it.
    pub fn insert_new(&mut self, hash: u64, key: K, value: V) {
        self.shard_mut()
            .table
            .insert_unique(spread(hash), Entry { hash, key, value }, |e| spread(e.hash));
        self.count(1);
    }

    /// Insert or replace: if a key satisfying `eq` is present, its value is
    /// replaced and `Some((key, old_value))` hands back the `key` passed in and
    /// the displaced value (the stored key is kept, as Python's `dict` does);
    /// else the pair is inserted and `None` returned.
    pub fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        eq: impl FnMut(&K) -> bool,
    ) -> Option<(K, V)> {
        match self.get_mut(hash, eq) {
            Some(v) => Some((key, std::mem::replace(v, value))),
            None => {
                self.insert_new(hash, key, value);
                None
            }
        }
    }

    /// Remove the entry whose key has `hash` and satisfies `eq`.
    pub fn remove(&mut self, hash: u64, mut eq: impl FnMut(&K) -> bool) -> Option<(K, V)> {
        let entry = self
            .shard_mut()
            .table
            .find_entry(spread(hash), |e| e.hash == hash && eq(&e.key))
            .ok()?;
        let (e, _) = entry.remove();
        self.count(-1);
        Some((e.key, e.value))
    }

    /// Remove every entry of this shard and hand them back.
    pub fn drain(&mut self) -> Vec<(K, V)> {
        let out: Vec<(K, V)> = self
            .shard_mut()
            .table
            .drain()
            .map(|e| (e.key, e.value))
            .collect();
        self.count(-(out.len() as i64));
        // Give the memory of a cleared table back (a `clear()`ed dict shrinks too).
        self.shard_mut().table.shrink_to_fit(|e| spread(e.hash));
        out
    }
}

/// One entry of a write-locked shard (see [`WriteGuard::entry`]).
pub struct Occupied<'g, K, V> {
    e: hashbrown::hash_table::OccupiedEntry<'g, Entry<K, V>>,
    len: &'g AtomicI64,
}

impl<K, V> Occupied<'_, K, V> {
    /// The stored key.
    pub fn key(&self) -> &K {
        &self.e.get().key
    }

    /// The value.
    pub fn value(&self) -> &V {
        &self.e.get().value
    }

    /// The value, to replace in place.
    pub fn value_mut(&mut self) -> &mut V {
        &mut self.e.get_mut().value
    }

    /// Remove the entry, handing back its key and value.
    pub fn remove(self) -> (K, V) {
        let (e, _) = self.e.remove();
        // Relaxed: as in `WriteGuard::count`.
        self.len.fetch_add(-1, Ordering::Relaxed);
        (e.key, e.value)
    }
}
