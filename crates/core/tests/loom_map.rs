//! Loom models of `ShardedMap` (the engine of `AtomicDict`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom_map \
//!     --target-dir target/loom -- --test-threads 1 --nocapture
//! ```
//!
//! Each model is bounded (`preemption_bound`, overridable with
//! `LOOM_MAX_PREEMPTIONS`) and prints its wall time. The shard locks are
//! loom's `RwLock` (through `sync.rs`), so every interleaving of lock
//! acquisitions, and of the `len` counter's updates, is explored; the tables
//! themselves are plain data inside the locks.

#![cfg(loom)]

use crossinterp_core::map::ShardedMap;
use loom::sync::Arc;
use loom::thread;

#[path = "support/loom_model.rs"]
mod loom_model;
use loom_model::model;

type Map = ShardedMap<u64, u64>;

fn put(m: &Map, k: u64, v: u64) -> Option<u64> {
    m.write(k).insert(k, k, v, |x| *x == k).map(|(_, old)| old)
}

fn get(m: &Map, k: u64) -> Option<u64> {
    m.read(k).find(k, |x| *x == k).map(|(_, v)| *v)
}

fn del(m: &Map, k: u64) -> Option<u64> {
    m.write(k).remove(k, |x| *x == k).map(|(_, v)| v)
}

/// One shard. A writer inserts enough keys to make the table grow twice (an
/// empty `HashTable` allocates on the first insert and re-hashes at 4 and 8
/// entries) while a reader looks up a key that was there before: the reader
/// always finds it, with its value, and reads a `len` between the two bounds.
#[test]
fn resize_vs_reader() {
    model("resize_vs_reader", Some(3), || {
        let m = Arc::new(Map::with_shards(1));
        put(&m, 0, 100);
        let w = {
            let m = m.clone();
            thread::spawn(move || {
                for k in 1..9 {
                    assert_eq!(put(&m, k, k), None);
                }
            })
        };
        assert_eq!(get(&m, 0), Some(100));
        let n = m.len();
        assert!((1..=9).contains(&n), "len {n}");
        w.join().unwrap();
        assert_eq!(m.len(), 9);
        assert_eq!(get(&m, 8), Some(8));
    });
}

/// Two threads insert the same (absent) key: exactly one creates the entry and
/// the other replaces the winner's value (it gets that value back); the final
/// value is the last writer's; the count is 1.
#[test]
fn insert_vs_insert_same_key() {
    model("insert_vs_insert_same_key", None, || {
        let m = Arc::new(Map::with_shards(2));
        let t = {
            let m = m.clone();
            thread::spawn(move || put(&m, 7, 1))
        };
        let mine = put(&m, 7, 2);
        let theirs = t.join().unwrap();
        let last = get(&m, 7).unwrap();
        match (mine, theirs) {
            // We created it; they replaced our 2 with 1 (they were last).
            (None, Some(2)) => assert_eq!(last, 1),
            // They created it; we replaced their 1 with 2.
            (Some(1), None) => assert_eq!(last, 2),
            other => panic!("not exactly one winner: {other:?}"),
        }
        assert_eq!(m.len(), 1);
    });
}

/// Remove against get of the same key: the get sees the value or nothing (never
/// anything else), exactly one removal succeeds, and `len` ends at 0 without
/// ever being observed negative or above 1.
#[test]
fn remove_vs_get() {
    model("remove_vs_get", None, || {
        let m = Arc::new(Map::with_shards(2));
        put(&m, 3, 30);
        let t = {
            let m = m.clone();
            thread::spawn(move || del(&m, 3))
        };
        let seen = get(&m, 3);
        assert!(seen == Some(30) || seen.is_none());
        let n = m.len();
        assert!(n <= 1);
        let mine = del(&m, 3);
        let theirs = t.join().unwrap();
        assert_eq!(
            mine.is_some() as u8 + theirs.is_some() as u8,
            1,
            "{mine:?} {theirs:?}"
        );
        assert_eq!(m.len(), 0);
        assert_eq!(get(&m, 3), None);
    });
}

/// A per-shard snapshot iteration against an insert and a remove in another
/// shard: each shard's snapshot is consistent (a key is seen with its value,
/// never twice), and the keys that no one touched are always seen.
#[test]
fn iterate_vs_insert_remove() {
    model("iterate_vs_insert_remove", Some(3), || {
        let m = Arc::new(Map::with_shards(4));
        // Find keys in different shards.
        let a = 1u64;
        let b = (2..).find(|k| m.shard_of(*k) != m.shard_of(a)).unwrap();
        let c = (b + 1..)
            .find(|k| m.shard_of(*k) != m.shard_of(a) && m.shard_of(*k) != m.shard_of(b))
            .unwrap();
        put(&m, a, a * 10);
        put(&m, c, c * 10);
        let t = {
            let m = m.clone();
            thread::spawn(move || {
                put(&m, b, b * 10);
                del(&m, c);
            })
        };
        let mut seen = Vec::new();
        for s in 0..m.shard_count() {
            for (k, v) in m.read_shard(s).iter() {
                assert_eq!(*v, k * 10);
                seen.push(*k);
            }
        }
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len(), "a key seen twice");
        assert!(seen.contains(&a));
        t.join().unwrap();
        assert_eq!(m.len(), 2);
    });
}

/// Read-modify-write of one key from two threads, each under the shard's
/// write lock: no lost update.
#[test]
fn update_vs_update() {
    model("update_vs_update", None, || {
        let m = Arc::new(Map::with_shards(1));
        let bump = |m: &Map| {
            let mut g = m.write(5);
            match g.get_mut(5, |x| *x == 5) {
                Some(v) => *v += 1,
                None => g.insert_new(5, 5, 1),
            }
        };
        let t = {
            let m = m.clone();
            thread::spawn(move || bump(&m))
        };
        bump(&m);
        t.join().unwrap();
        assert_eq!(get(&m, 5), Some(2));
        assert_eq!(m.len(), 1);
    });
}

/// The reader fast path (slot counters + `writing` flag, Dekker) against a
/// writer that re-hashes the table: the table is a loom `UnsafeCell`, so a
/// fast reader overlapping the writer's mutation would fail the model. Two
/// readers (two slots under loom) and one writer.
#[test]
fn fast_read_vs_resize() {
    model("fast_read_vs_resize", Some(3), || {
        let m = Arc::new(Map::with_shards(1));
        for k in 0..3 {
            put(&m, k, k + 10);
        }
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    assert_eq!(get(&m, 1), Some(11));
                    // `try_read` may fall back to the lock, or fail while a
                    // writer is inside; it never returns a torn view.
                    if let Some(g) = m.try_read(2) {
                        assert_eq!(g.find(2, |x| *x == 2).map(|(_, v)| *v), Some(12));
                    }
                })
            })
            .collect();
        // 3 -> 4 entries: the table grows (re-hash) under the write lock.
        assert_eq!(put(&m, 3, 13), None);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(m.len(), 4);
    });
}

/// `try_write` never waits: with a fast reader inside it gives up (and leaves
/// the flag down, so later readers take the fast path again); without, it
/// succeeds. Either way the map is intact afterwards.
#[test]
fn try_write_vs_fast_reader() {
    model("try_write_vs_fast_reader", None, || {
        let m = Arc::new(Map::with_shards(1));
        put(&m, 1, 10);
        let r = {
            let m = m.clone();
            thread::spawn(move || get(&m, 1))
        };
        if let Some(mut g) = m.try_write(1) {
            g.insert(1, 1, 20, |x| *x == 1);
        }
        let seen = r.join().unwrap();
        assert!(seen == Some(10) || seen == Some(20));
        assert!(get(&m, 1).is_some());
        // The flag is down: a write now succeeds without waiting.
        assert!(m.try_write(1).is_some());
    });
}

/// Exclusive reader slots change hands: three reader threads share the two
/// slots a map has under loom, so whichever starts last either reads through
/// the lock (no free slot) or claims the slot of one that has exited — with
/// no join between them, only the pool's Release/Acquire orders the old
/// owner's last counter store before the new owner's first. Meanwhile the
/// writer re-hashes the table (a loom `UnsafeCell`): a fast reader counting
/// from a stale counter value, or overlapping the writer, fails the model.
#[test]
fn slot_handoff_vs_writer() {
    model("slot_handoff_vs_writer", Some(2), || {
        let m = Arc::new(Map::with_shards(1));
        for k in 0..3 {
            put(&m, k, k + 10);
        }
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || assert_eq!(get(&m, 1), Some(11)))
            })
            .collect();
        // 3 -> 4 entries: the table grows (re-hash) under the write lock.
        assert_eq!(put(&m, 3, 13), None);
        for r in readers {
            r.join().unwrap();
        }
        // Every counter is back to zero: a write does not wait.
        assert!(m.try_write(0).is_some());
    });
}
