//! `ShardedMap`: behaviour against a model, and stress tests named after the
//! races they provoke. Keys are `u64`s hashed by a caller-chosen function, so
//! collisions (equal hashes, different keys) can be forced.

#![cfg(not(loom))]

use crossinterp_core::map::ShardedMap;
use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;

/// A hash with many collisions: only the low 4 bits of the key count.
fn colliding(k: u64) -> u64 {
    k & 0xF
}

fn put(m: &ShardedMap<u64, u64>, h: fn(u64) -> u64, k: u64, v: u64) -> Option<u64> {
    m.write(h(k))
        .insert(h(k), k, v, |x| *x == k)
        .map(|(_, old)| old)
}

fn get(m: &ShardedMap<u64, u64>, h: fn(u64) -> u64, k: u64) -> Option<u64> {
    m.read(h(k)).find(h(k), |x| *x == k).map(|(_, v)| *v)
}

fn del(m: &ShardedMap<u64, u64>, h: fn(u64) -> u64, k: u64) -> Option<u64> {
    m.write(h(k)).remove(h(k), |x| *x == k).map(|(_, v)| v)
}

fn ident(k: u64) -> u64 {
    k
}

#[test]
fn matches_a_hashmap_model() {
    for h in [ident as fn(u64) -> u64, colliding] {
        let m = ShardedMap::with_shards(8);
        let mut model = HashMap::new();
        let mut x: u64 = 12345;
        for _ in 0..20_000 {
            // xorshift
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 300;
            match x % 3 {
                0 => assert_eq!(put(&m, h, k, x), model.insert(k, x)),
                1 => assert_eq!(del(&m, h, k), model.remove(&k)),
                _ => assert_eq!(get(&m, h, k), model.get(&k).copied()),
            }
            assert_eq!(m.len(), model.len());
        }
        let mut all: Vec<_> = m.drain();
        all.sort();
        let mut want: Vec<_> = model.into_iter().collect();
        want.sort();
        assert_eq!(all, want);
        assert!(m.is_empty());
    }
}

#[test]
fn shard_count_is_a_power_of_two_and_keys_spread() {
    assert_eq!(ShardedMap::<u8, u8>::with_shards(0).shard_count(), 1);
    assert_eq!(ShardedMap::<u8, u8>::with_shards(48).shard_count(), 64);
    let m = ShardedMap::<u64, ()>::new();
    // Python's hash(i) == i: consecutive small ints must not share a shard.
    let used: std::collections::HashSet<_> = (0..256u64).map(|i| m.shard_of(i)).collect();
    assert!(used.len() > 48, "only {} shards used", used.len());
}

#[test]
fn candidates_lists_exactly_the_equal_hash_keys() {
    let m = ShardedMap::with_shards(4);
    for k in 0..64u64 {
        put(&m, colliding, k, k);
    }
    let g = m.read(colliding(3));
    let mut c: Vec<u64> = g.candidates(3).map(|(k, _)| *k).collect();
    c.sort();
    assert_eq!(c, (0..4).map(|i| 3 + 16 * i).collect::<Vec<_>>());
}

#[test]
fn insert_keeps_the_stored_key_and_hands_back_the_new_one() {
    let m: ShardedMap<(u64, &str), u32> = ShardedMap::new();
    assert!(m
        .write(1)
        .insert(1, (1, "first"), 10, |k| k.0 == 1)
        .is_none());
    let (given, old) = m
        .write(1)
        .insert(1, (1, "second"), 20, |k| k.0 == 1)
        .unwrap();
    assert_eq!((given, old), ((1, "second"), 10));
    let g = m.read(1);
    assert_eq!(g.find(1, |k| k.0 == 1), Some((&(1, "first"), &20)));
}

#[test]
fn try_locks_fail_while_a_writer_holds_the_shard() {
    let m: ShardedMap<u64, u64> = ShardedMap::with_shards(1);
    let w = m.write(0);
    assert!(m.try_read(5).is_none() && m.try_write(5).is_none());
    drop(w);
    let r = m.read(0);
    assert!(m.try_read(5).is_some() && m.try_write(5).is_none());
    drop(r);
}

const THREADS: u64 = 4;

/// Many threads insert disjoint keys into ONE shard (forcing its table to grow
/// again and again) while readers look up keys inserted before: no reader ever
/// misses a key that was present before it started, and nothing is lost.
#[test]
fn insert_while_resizing() {
    let m = Arc::new(ShardedMap::<u64, u64>::with_shards(1));
    for k in 0..100 {
        put(&m, ident, k, k);
    }
    let go = Arc::new(Barrier::new(THREADS as usize * 2));
    let mut ts = vec![];
    for t in 0..THREADS {
        let (m1, go1) = (m.clone(), go.clone());
        ts.push(thread::spawn(move || {
            let (m, go) = (m1, go1);
            go.wait();
            for i in 0..20_000 {
                let k = 1000 + t * 1_000_000 + i;
                assert_eq!(put(&m, ident, k, k), None);
            }
        }));
        let (m2, go2) = (m.clone(), go.clone());
        ts.push(thread::spawn(move || {
            let (m, go) = (m2, go2);
            go.wait();
            for i in 0..40_000 {
                let k = i % 100;
                assert_eq!(get(&m, ident, k), Some(k));
            }
        }));
    }
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(m.len(), 100 + THREADS as usize * 20_000);
}

/// Threads insert and remove colliding keys while others iterate every shard:
/// iteration never sees a torn entry (value == key * 7 always).
#[test]
fn remove_while_iterating() {
    let m = Arc::new(ShardedMap::<u64, u64>::with_shards(4));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = vec![];
    for t in 0..2u64 {
        let m = m.clone();
        writers.push(thread::spawn(move || {
            for i in 0..30_000u64 {
                let k = (i * 2 + t) % 500;
                if i % 2 == 0 {
                    put(&m, colliding, k, k * 7);
                } else {
                    del(&m, colliding, k);
                }
            }
        }));
    }
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (m, stop) = (m.clone(), stop.clone());
            thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for s in 0..m.shard_count() {
                        for (k, v) in m.read_shard(s).iter() {
                            assert_eq!(*v, k * 7);
                            seen += 1;
                        }
                    }
                }
                seen
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let n: usize = (0..m.shard_count()).map(|s| m.read_shard(s).len()).sum();
    assert_eq!(n, m.len());
}

/// Read-modify-write under the write lock from several threads on a few hot
/// keys: no lost update (what `AtomicDict.update` relies on).
#[test]
fn increment_same_keys_concurrently() {
    let m = Arc::new(ShardedMap::<u64, u64>::new());
    let ts: Vec<_> = (0..THREADS)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || {
                for i in 0..50_000u64 {
                    let k = i % 8;
                    let mut g = m.write(k);
                    match g.get_mut(k, |x| *x == k) {
                        Some(v) => *v += 1,
                        None => g.insert_new(k, k, 1),
                    }
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    let total: u64 = (0..8).map(|k| get(&m, ident, k).unwrap()).sum();
    assert_eq!(total, THREADS * 50_000);
    assert_eq!(m.len(), 8);
}

/// Concurrent inserts of the SAME key: exactly one creates the entry, every
/// other replaces; the count stays 1.
#[test]
fn insert_same_key_race() {
    for _ in 0..50 {
        let m = Arc::new(ShardedMap::<u64, u64>::new());
        let go = Arc::new(Barrier::new(THREADS as usize));
        let ts: Vec<_> = (0..THREADS)
            .map(|t| {
                let (m, go) = (m.clone(), go.clone());
                thread::spawn(move || {
                    go.wait();
                    put(&m, ident, 42, t).is_none()
                })
            })
            .collect();
        let created = ts.into_iter().map(|t| t.join().unwrap());
        assert_eq!(created.filter(|c| *c).count(), 1);
        assert_eq!(m.len(), 1);
    }
}

/// Exclusive reader slots change hands under load: waves of short-lived
/// reader threads — more at once than the pool has slots, so some read
/// through the shard locks — each read while writers keep re-hashing the one
/// shard. A slot handed over with a stale counter would either let a reader
/// overlap a writer (a wrong value, or a crash in the table) or leave a count
/// behind that hangs every later writer (the final `try_write` checks it).
#[test]
fn slot_handoff_vs_writer() {
    use crossinterp_core::map::READER_SLOTS;
    let m = Arc::new(ShardedMap::<u64, u64>::with_shards(1));
    for k in 0..100 {
        put(&m, ident, k, k);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let (m, stop) = (m.clone(), stop.clone());
            thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = 1000 + t * 1_000_000_000 + i;
                    assert_eq!(put(&m, ident, k, k), None);
                    i += 1;
                }
            })
        })
        .collect();
    for wave in 0..20u64 {
        let readers: Vec<_> = (0..READER_SLOTS as u64 + 8)
            .map(|r| {
                let m = m.clone();
                thread::spawn(move || {
                    for i in 0..2_000u64 {
                        let k = (wave + r + i) % 100;
                        assert_eq!(get(&m, ident, k), Some(k));
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    // No reader count was left behind: a write does not have to wait.
    assert!(m.try_write(0).is_some());
}

/// A one-shard map holding key 7, and a thread that keeps replacing its value
/// through `try_write` (never waiting) until `stop`; it returns how many
/// writes it made.
fn value_replacer() -> (
    Arc<ShardedMap<u64, u64>>,
    Arc<std::sync::atomic::AtomicBool>,
    thread::JoinHandle<u64>,
) {
    let m = Arc::new(ShardedMap::<u64, u64>::with_shards(1));
    put(&m, ident, 7, 0);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (m, stop) = (m.clone(), stop.clone());
        thread::spawn(move || {
            let mut v = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(mut g) = m.try_write(7) {
                    v += 1;
                    g.insert(7, 7, v, |x| *x == 7);
                }
            }
            v
        })
    };
    (m, stop, writer)
}

/// One read guard held across two lookups of key 7: whether they disagreed
/// (a writer mutated the shard under this reader).
fn torn_read(m: &ShardedMap<u64, u64>) -> bool {
    let g = m.read(7);
    let a = g.find(7, |x| *x == 7).map(|(_, v)| *v);
    std::hint::spin_loop();
    let b = g.find(7, |x| *x == 7).map(|(_, v)| *v);
    a != b
}

fn stop_replacer(stop: &std::sync::atomic::AtomicBool, writer: thread::JoinHandle<u64>, torn: u64) {
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert_eq!(
        torn, 0,
        "a writer mutated under {torn} fast readers ({writes} writes)"
    );
}

/// The Dekker pair of the fast read path (the reader's counter increment and
/// barrier before it loads `writing`, the writer's flag store and fence before
/// it loads the counters), provoked where it can fail: a reader holds its
/// guard across two lookups of one key while a writer keeps replacing that
/// key's value through `try_write`. If the reader's increment could still sit
/// in its store buffer when it loads the flag (no barrier), the writer could
/// read a zero count, mutate, and the reader's two lookups would disagree.
#[test]
fn fast_read_barrier_vs_writer_drain() {
    let (m, stop, writer) = value_replacer();
    let torn = (0..2_000_000u64).filter(|_| torn_read(&m)).count() as u64;
    stop_replacer(&stop, writer, torn);
}

/// A writer's scan visits only the reader slots some thread owns (the pool
/// of slot ids, loaded after its fence). Provoked: a writer keeps replacing
/// one key's value while new threads keep appearing, each claiming a slot on
/// its first read and holding its guard across two lookups of that key. A
/// scan that missed a slot claimed just before the reader's barrier (the pool
/// read before the fence, say) would let the writer mutate under that reader.
#[test]
fn new_reader_claim_vs_writer_scanning_owned_slots() {
    let (m, stop, writer) = value_replacer();
    let mut torn = 0u64;
    for _ in 0..4_000 {
        let m = m.clone();
        torn += thread::spawn(move || (0..20).filter(|_| torn_read(&m)).count() as u64)
            .join()
            .unwrap();
    }
    stop_replacer(&stop, writer, torn);
}
