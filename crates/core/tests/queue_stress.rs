//! Stress tests of `Queue`, one per race. Small by default (each a few seconds
//! at most in debug on 2 cores); `CROSSINTERP_LARGE=1` scales them up.

#![cfg(not(loom))]

use crossinterp_core::queue::{GetError, PutError, Queue};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/stress.rs"]
mod stress_support;
use stress_support::{check_exactly_once_in_order, size, Log};

fn soon(us: u64) -> Option<Instant> {
    Some(Instant::now() + Duration::from_micros(us))
}

/// 4 producers, 4 consumers, per-producer sequence numbers, over a small
/// bounded queue and an unbounded one. Producers mix blocking puts, puts with
/// tiny deadlines (retried with the handed-back item) and try_put; consumers mix
/// blocking gets, gets with tiny deadlines and try_get, until Closed.
///
/// Checked: every item consumed exactly once; per-producer FIFO as seen by each
/// consumer; nothing left; no thread blocked at the end.
#[test]
fn nothing_lost_4_producers_4_consumers() {
    let per = size(50_000, 500_000);
    for maxsize in [0, 4] {
        let q = Queue::new(maxsize);
        let barrier = Arc::new(Barrier::new(8));
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let (q, barrier) = (q.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    for s in 0..per {
                        let mut item = (p, s);
                        loop {
                            let r = match s % 3 {
                                0 => q.put(item, None, &mut || false),
                                1 => q.put(item, soon(50), &mut || false),
                                _ => q.try_put(item),
                            };
                            match r {
                                Ok(()) => break,
                                Err(PutError::Full(back)) => {
                                    item = back;
                                    thread::yield_now();
                                }
                                Err(e) => panic!("unexpected {e:?}"),
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..4)
            .map(|c| {
                let (q, barrier) = (q.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    let mut log = Log::new();
                    let mut i = 0usize;
                    loop {
                        i += 1;
                        let r = match (i + c) % 3 {
                            0 => q.get(None, &mut || false),
                            1 => q.get(soon(50), &mut || false),
                            _ => q.try_get(),
                        };
                        match r {
                            Ok(item) => log.push(item),
                            Err(GetError::Empty) => thread::yield_now(),
                            Err(GetError::Closed) => return log,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.close();
        let logs: Vec<Log> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        check_exactly_once_in_order(&logs, 4, per);
        assert!(q.is_empty());
        assert_eq!(q.blocked_getters() + q.blocked_putters(), 0);
    }
}

/// Producers put into a small bounded queue (blocking and with deadlines) while
/// a consumer takes some items and another thread closes the queue.
///
/// Checked: every item is exactly once either consumed, left in the queue (and
/// drained), or handed back (`Closed`); after the close every put fails; every
/// blocked producer is woken.
#[test]
fn close_while_sending() {
    let rounds = size(1_000, 20_000);
    let per = 50;
    for round in 0..rounds {
        let q = Queue::new(2);
        let closed = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let (q, closed) = (q.clone(), closed.clone());
                thread::spawn(move || {
                    let mut back = Vec::new();
                    for s in 0..per {
                        let was_closed = closed.load(Ordering::SeqCst);
                        let item = p * per + s;
                        let r = if s % 2 == 0 {
                            q.put(item, None, &mut || false)
                        } else {
                            q.put(item, soon(200), &mut || false)
                        };
                        match r {
                            Ok(()) => assert!(!was_closed, "put accepted after close"),
                            Err(PutError::Closed(i)) => back.push(i),
                            Err(PutError::Full(i)) => back.push(i),
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                    back
                })
            })
            .collect();
        let consumer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..(round % 40) {
                    match q.get(soon(500), &mut || false) {
                        Ok(i) => got.push(i),
                        Err(_) => break,
                    }
                }
                got
            })
        };
        if round % 3 != 0 {
            thread::sleep(Duration::from_micros((round % 7) as u64 * 50));
        }
        q.close();
        closed.store(true, Ordering::SeqCst);
        let mut seen = vec![0u8; 3 * per];
        for p in producers {
            for i in p.join().unwrap() {
                seen[i] += 1;
            }
        }
        for i in consumer.join().unwrap() {
            seen[i] += 1;
        }
        for i in q.drain() {
            seen[i] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1), "round {round}: {seen:?}");
        assert_eq!(q.blocked_putters(), 0);
    }
}

/// Consumers blocked on (or draining) a queue while it is filled and closed.
///
/// Checked: every item put is got exactly once, even those put just before the
/// close; every consumer ends with `Closed`, none stays blocked.
#[test]
fn close_while_receiving() {
    let rounds = size(1_000, 20_000);
    for round in 0..rounds {
        let q = Queue::new(if round % 2 == 0 { 0 } else { 3 });
        let n = round % 20;
        let done = Arc::new(AtomicUsize::new(0));
        let consumers: Vec<_> = (0..3)
            .map(|c| {
                let (q, done) = (q.clone(), done.clone());
                thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let r = if c == 0 {
                            q.get(soon(300), &mut || false)
                        } else {
                            q.get(None, &mut || false)
                        };
                        match r {
                            Ok(i) => got.push(i),
                            Err(GetError::Empty) => {}
                            Err(GetError::Closed) => break,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    got
                })
            })
            .collect();
        for i in 0..n {
            q.put(i, None, &mut || false).unwrap();
        }
        q.close();
        let mut seen = vec![0u8; n];
        for c in consumers {
            for i in c.join().unwrap() {
                seen[i] += 1;
            }
        }
        assert_eq!(done.load(Ordering::SeqCst), 3);
        assert!(seen.iter().all(|&k| k == 1), "round {round}: {seen:?}");
        assert_eq!(q.blocked_getters(), 0);
    }
}

/// `remove_where` and `for_each_mut` (the unbound-item policies) racing puts
/// and gets: every item is got, removed, or left, exactly once; order among the
/// survivors is preserved per producer.
#[test]
fn remove_where_vs_put_and_get() {
    let per = size(50_000, 500_000);
    let q = Queue::new(8);
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|p| {
            let q = q.clone();
            thread::spawn(move || {
                for s in 0..per {
                    q.put((p, s, false), None, &mut || false).unwrap();
                }
            })
        })
        .collect();
    let consumer = {
        let q = q.clone();
        thread::spawn(move || {
            let mut log = Vec::new();
            while let Ok(item) = q.get(None, &mut || false) {
                log.push(item);
            }
            log
        })
    };
    let remover = {
        let (q, stop) = (q.clone(), stop.clone());
        thread::spawn(move || {
            let mut removed = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                q.for_each_mut(|it| it.2 = it.1 % 5 == 0);
                removed.extend(q.remove_where(|it| it.2 && it.1 % 10 == 0));
                thread::yield_now();
            }
            removed
        })
    };
    for p in producers {
        p.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let removed = remover.join().unwrap();
    q.close();
    let got = consumer.join().unwrap();
    let mut seen = vec![vec![0u8; per]; 2];
    let mut last = [None::<usize>; 2];
    for &(p, s, _) in &got {
        seen[p][s] += 1;
        if let Some(prev) = last[p] {
            assert!(s > prev, "order broken: {s} after {prev}");
        }
        last[p] = Some(s);
    }
    for &(p, s, marked) in &removed {
        assert!(marked && s % 10 == 0, "removed an unmatched item");
        seen[p][s] += 1;
    }
    assert!(seen.iter().flatten().all(|&n| n == 1));
}

/// Getters that spin, sleep and are woken, against bursts of puts with pauses
/// between them (so that the getters keep crossing from spinning to asleep
/// and back): a put does not wake an asleep getter for an item a spinning or
/// woken one will take, and no item is ever left in the queue while a getter
/// sleeps (each get has a 5 s deadline: `Empty` there is a stranded item).
/// Checked: every item taken exactly once.
#[test]
fn spinning_getter_covers_put() {
    const GETTERS: usize = 3;
    let bursts = size(300, 3_000);
    let q: Queue<usize> = Queue::new(0);
    let consumers: Vec<_> = (0..GETTERS)
        .map(|_| {
            let q = q.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match q.get(Some(Instant::now() + Duration::from_secs(5)), &mut || false) {
                        Ok(usize::MAX) => return got,
                        Ok(x) => got.push(x),
                        Err(e) => panic!("a getter found no item for 5 s: {e:?} (stranded)"),
                    }
                }
            })
        })
        .collect();
    let mut n = 0;
    for b in 0..bursts {
        for _ in 0..(1 + b % 4) {
            q.put(n, None, &mut || false).unwrap();
            n += 1;
        }
        // Let the getters run out of items: some spin, some fall asleep.
        let pause = Instant::now() + Duration::from_micros((b % 5) as u64 * 10);
        while Instant::now() < pause {
            std::hint::spin_loop();
        }
    }
    for _ in 0..GETTERS {
        q.put(usize::MAX, None, &mut || false).unwrap();
    }
    let mut all: Vec<usize> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
    assert!(q.is_empty());
}

/// The fast put against a getter going to sleep (the put gate's SLEEPERS flag):
/// a getter blocks (no deadline) on an empty queue while a put arrives after a
/// varying delay (before, during or after the getter's spin). Checked: every
/// getter gets its item within a generous bound (a lost wake-up would leave it
/// asleep: the bound catches it instead of hanging the suite), on both an
/// unbounded and a bounded queue.
#[test]
fn put_vs_sleeping_getter_flag() {
    let rounds = size(2_000, 50_000);
    for maxsize in [0, 8] {
        let q = Queue::new(maxsize);
        let got = Arc::new(AtomicUsize::new(0));
        let getter = {
            let (q, got) = (q.clone(), got.clone());
            thread::spawn(move || {
                for i in 0..rounds {
                    assert_eq!(q.get(None, &mut || false), Ok(i));
                    got.store(i + 1, Ordering::SeqCst);
                }
            })
        };
        for i in 0..rounds {
            // 0..~60 µs: lands in the getter's spin, its yield window, or after
            // it sleeps.
            let delay = Instant::now() + Duration::from_micros((i % 7 * 10) as u64);
            while Instant::now() < delay {
                std::hint::spin_loop();
            }
            q.try_put(i).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while got.load(Ordering::SeqCst) <= i {
                assert!(Instant::now() < deadline, "getter not woken for item {i}");
                thread::yield_now();
            }
        }
        getter.join().unwrap();
        assert!(q.is_empty());
    }
}

/// `remove_where`, `drain` and `for_each_mut` (the exclusive mode that shuts the
/// fast path's gates) against streaming fast puts and gets: 2 producers, 2
/// consumers, and a thread that repeatedly removes the multiples of 5, marks
/// items in place (a no-op mark) and, now and then, drains. Checked: every
/// item is consumed or removed or drained exactly once, and each consumer sees
/// each producer's items in order (a put slipping past the shut gate would land
/// ahead of the survivors put back).
#[test]
fn remove_where_vs_fast_put() {
    let per = size(30_000, 300_000);
    for maxsize in [0, 64] {
        let q = Queue::new(maxsize);
        let done = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for s in 0..per {
                        q.put((p, s), None, &mut || false).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || {
                    let mut log = Log::new();
                    loop {
                        match q.get(None, &mut || false) {
                            Ok(item) => log.push(item),
                            Err(GetError::Closed) => return log,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                })
            })
            .collect();
        let remover = {
            let (q, done) = (q.clone(), done.clone());
            thread::spawn(move || {
                let mut log = Log::new();
                let mut n = 0u32;
                while !done.load(Ordering::SeqCst) {
                    n += 1;
                    let removed = q.remove_where(|&(_, s)| s % 5 == 0);
                    let mut last = [None::<usize>; 2];
                    for &(p, s) in &removed {
                        assert!(last[p].is_none_or(|l| s > l), "remove_where order");
                        last[p] = Some(s);
                    }
                    log.extend(removed);
                    q.for_each_mut(|item| *item = (item.0, item.1));
                    if n % 50 == 0 {
                        log.extend(q.drain());
                    }
                    thread::yield_now();
                }
                log
            })
        };
        for p in producers {
            p.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let removed = remover.join().unwrap();
        q.close();
        let mut logs: Vec<Log> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        // Removed and drained items are checked for "exactly once" only (a
        // drain's items and a consumer's interleave in time, not in one log).
        let mut seen = vec![vec![0u8; per]; 2];
        for &(p, s) in &removed {
            seen[p][s] += 1;
        }
        let consumed: Log = logs.iter().flatten().copied().collect();
        for &(p, s) in &consumed {
            seen[p][s] += 1;
        }
        for (p, row) in seen.iter().enumerate() {
            for (s, &n) in row.iter().enumerate() {
                assert_eq!(n, 1, "producer {p} item {s} seen {n} times");
            }
        }
        for log in logs.iter_mut() {
            let mut last = [None::<usize>; 2];
            for &(p, s) in log.iter() {
                assert!(last[p].is_none_or(|l| s > l), "producer {p}: order broken");
                last[p] = Some(s);
            }
        }
        assert!(q.is_empty());
    }
}

/// `close` against streaming fast puts: a put that returned `Ok` has its item
/// consumed, a refused one is handed back, nothing else; a getter never sees
/// `Closed` while a successful put's item is missing.
#[test]
fn close_vs_fast_put() {
    let rounds = size(2_000, 20_000);
    for _ in 0..rounds {
        let q = Queue::new(0);
        let putter = {
            let q = q.clone();
            thread::spawn(move || {
                let mut ok = 0usize;
                for i in 0..64usize {
                    match q.try_put(i) {
                        Ok(()) => ok += 1,
                        Err(PutError::Closed(back)) => {
                            assert_eq!(back, i);
                            break;
                        }
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                ok
            })
        };
        thread::yield_now();
        q.close();
        let mut got = 0usize;
        while let Ok(x) = q.try_get() {
            assert_eq!(x, got);
            got += 1;
        }
        let ok = putter.join().unwrap();
        assert_eq!(
            got, ok,
            "a put returned Ok but its item was not there after the close"
        );
    }
}

/// `len` against exclusive operations: one thread marks every item again and
/// again (`for_each_mut`, as an interpreter's close does) while another reads
/// the length of a queue that holds exactly `N` items all along; every read
/// must say `N` (the items are out of the FIFO while they are marked).
#[test]
fn len_vs_exclusive() {
    const N: usize = 8;
    let reads = size(50_000, 500_000);
    for maxsize in [0, 64] {
        let q = Queue::new(maxsize);
        for i in 0..N {
            q.try_put(i).unwrap();
        }
        let done = Arc::new(AtomicBool::new(false));
        let marker = {
            let (q, done) = (q.clone(), done.clone());
            thread::spawn(move || {
                let mut rounds = 0usize;
                while !done.load(Ordering::SeqCst) {
                    q.for_each_mut(|x| *x += N);
                    rounds += 1;
                }
                rounds
            })
        };
        for _ in 0..reads {
            assert_eq!(q.len(), N, "len read while the items were out");
            assert!(!q.is_empty());
        }
        done.store(true, Ordering::SeqCst);
        let rounds = marker.join().unwrap();
        let items = q.drain();
        assert_eq!(items.len(), N);
        assert!(items.iter().enumerate().all(|(i, &x)| x == i + rounds * N));
    }
}
