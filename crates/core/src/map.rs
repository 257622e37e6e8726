//! [`ShardedMap`]: a concurrent hash map split into independently locked
//! shards — the engine of `crossinterp.AtomicDict`, independent of Python.
//!
//! # Design
//!
//! - `N` shards (a power of two, [`DEFAULT_SHARDS`] by default), each a
//!   reader-writer lock (`std::sync::RwLock` through `sync.rs`, so loom can
//!   check it) around a [`hashbrown::HashTable`], each on its own cache line
//!   pair (`crossbeam_utils::CachePadded`) so that threads working on different
//!   shards do not share a lock word.
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

use crate::sync::{self, AtomicI64, Ordering, RwLock, RwLockReadGuard, RwLockWriteGuard};
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

/// One shard: its lock and table, on its own cache lines.
type Slot<K, V> = CachePadded<RwLock<Shard<K, V>>>;

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
    mask: usize,
    len: AtomicI64,
}

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
                CachePadded::new(RwLock::new(Shard {
                    table: HashTable::new(),
                }))
            })
            .collect();
        ShardedMap {
            shards,
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

    /// Read-lock shard `i` (`i < shard_count()`), if no writer holds it.
    #[inline]
    pub fn try_read_shard(&self, i: usize) -> Option<ReadGuard<'_, K, V>> {
        sync::try_read(&self.shards[i]).map(|g| ReadGuard { g })
    }

    /// Read-lock shard `i`, waiting.
    pub fn read_shard(&self, i: usize) -> ReadGuard<'_, K, V> {
        ReadGuard {
            g: sync::read(&self.shards[i]),
        }
    }

    /// Write-lock shard `i`, if nobody holds it.
    #[inline]
    pub fn try_write_shard(&self, i: usize) -> Option<WriteGuard<'_, K, V>> {
        sync::try_write(&self.shards[i]).map(|g| WriteGuard { g, len: &self.len })
    }

    /// Write-lock shard `i`, waiting.
    pub fn write_shard(&self, i: usize) -> WriteGuard<'_, K, V> {
        WriteGuard {
            g: sync::write(&self.shards[i]),
            len: &self.len,
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
    g: RwLockReadGuard<'a, Shard<K, V>>,
}

/// A write lock on one shard: lookups and mutations.
pub struct WriteGuard<'a, K, V> {
    g: RwLockWriteGuard<'a, Shard<K, V>>,
    len: &'a AtomicI64,
}

macro_rules! read_ops {
    () => {
        /// The entry whose key has `hash` and satisfies `eq`. `eq` is called
        /// only for keys of exactly that hash, in an unspecified order, and
        /// the first key it accepts wins.
        #[inline]
        pub fn find(&self, hash: u64, mut eq: impl FnMut(&K) -> bool) -> Option<(&K, &V)> {
            self.g
                .table
                .find(spread(hash), |e| e.hash == hash && eq(&e.key))
                .map(|e| (&e.key, &e.value))
        }

        /// Every entry whose key has exactly `hash` (collision candidates).
        pub fn candidates(&self, hash: u64) -> impl Iterator<Item = (&K, &V)> + '_ {
            self.g
                .table
                .iter_hash(spread(hash))
                .filter(move |e| e.hash == hash)
                .map(|e| (&e.key, &e.value))
        }

        /// Every entry of this shard.
        pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
            self.g.table.iter().map(|e| (&e.key, &e.value))
        }

        /// The number of entries in this shard.
        pub fn len(&self) -> usize {
            self.g.table.len()
        }

        /// Whether this shard is empty.
        pub fn is_empty(&self) -> bool {
            self.g.table.is_empty()
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
        self.g
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
        let e = self
            .g
            .table
            .find_entry(spread(hash), |e| e.hash == hash && eq(&e.key))
            .ok()?;
        Some(Occupied { e, len: self.len })
    }

    /// Insert `key` → `value`, which the caller has established is absent
    /// (a lookup under this same guard found no equal key). Inserting a key
    /// that is present makes two entries for it.
    pub fn insert_new(&mut self, hash: u64, key: K, value: V) {
        self.g
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
            .g
            .table
            .find_entry(spread(hash), |e| e.hash == hash && eq(&e.key))
            .ok()?;
        let (e, _) = entry.remove();
        self.count(-1);
        Some((e.key, e.value))
    }

    /// Remove every entry of this shard and hand them back.
    pub fn drain(&mut self) -> Vec<(K, V)> {
        let out: Vec<(K, V)> = self.g.table.drain().map(|e| (e.key, e.value)).collect();
        self.count(-(out.len() as i64));
        // Give the memory of a cleared table back (a `clear()`ed dict shrinks too).
        self.g.table.shrink_to_fit(|e| spread(e.hash));
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
