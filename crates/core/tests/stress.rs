//! Stress tests, one per race. Small by default (the whole file runs in a few
//! seconds in debug on 2 cores); `CROSSINTERP_LARGE=1` scales them up.

#![cfg(not(loom))]

mod common;

use common::{attach, finalize, Probe, Rng, Stats};
use crossinterp_core::{GuardError, Handle, OwnerState, PendingCall, Registry, View};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

#[path = "support/stress.rs"]
mod stress_support;
use stress_support::size;

/// N threads take and drop guards in a loop while another thread finalizes.
///
/// Checked: a guard attempt that starts after the thread saw the owner leave
/// Running never succeeds; no guard is ever open once `finalize` has returned
/// (the holder checks while holding it); once a thread is refused it is refused
/// forever; after finalize, no guard can be taken and none is open.
#[test]
fn guard_storm_vs_finalize() {
    let rounds = size(300, 3_000);
    let threads = 3;
    let mut granted_after_start = 0;
    for round in 0..rounds {
        let reg = Registry::new();
        let owner = reg.register(round as u64);
        let view = owner.view().clone();
        let started = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let granted = Arc::new(AtomicUsize::new(0));
        let after_start = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(threads + 1));

        let takers: Vec<_> = (0..threads)
            .map(|t| {
                let (view, started, finished) = (view.clone(), started.clone(), finished.clone());
                let (granted, after_start, barrier) =
                    (granted.clone(), after_start.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    let mut refused = 0;
                    loop {
                        let before = view.state();
                        match view.guard() {
                            Ok(g) => {
                                assert_eq!(refused, 0, "guard granted after a refusal");
                                assert_eq!(
                                    before,
                                    OwnerState::Running,
                                    "guard granted after FINALIZING"
                                );
                                granted.fetch_add(1, Ordering::SeqCst);
                                if started.load(Ordering::SeqCst) {
                                    after_start.fetch_add(1, Ordering::SeqCst);
                                }
                                assert!(
                                    !finished.load(Ordering::SeqCst),
                                    "finalize returned under an open guard"
                                );
                                if t == 0 {
                                    thread::yield_now();
                                }
                                assert_ne!(view.state(), OwnerState::Finalized);
                                assert!(
                                    !finished.load(Ordering::SeqCst),
                                    "finalize returned under an open guard"
                                );
                                drop(g);
                            }
                            Err(e) => {
                                assert_eq!(e, GuardError::Finalizing(view.id()));
                                assert_ne!(view.state(), OwnerState::Running);
                                refused += 1;
                                if refused == 20 {
                                    break;
                                }
                            }
                        }
                    }
                })
            })
            .collect();

        let finalizer = {
            let (started, finished, granted) = (started.clone(), finished.clone(), granted.clone());
            thread::spawn(move || {
                barrier.wait();
                // Let the storm get going (vary the moment from round to round).
                let want = round % 7 * 20;
                while granted.load(Ordering::SeqCst) < want {
                    thread::yield_now();
                }
                started.store(true, Ordering::SeqCst);
                let report = finalize(owner);
                finished.store(true, Ordering::SeqCst);
                report
            })
        };
        for t in takers {
            t.join().unwrap();
        }
        finalizer.join().unwrap();
        assert!(view.guard().is_err());
        assert_eq!(view.open_guards(), 0);
        assert_eq!(view.state(), OwnerState::Finalized);
        assert_eq!(reg.live_count(), 0);
        granted_after_start += after_start.load(Ordering::SeqCst);
    }
    // Not asserted (scheduling decides), but shows the interesting case happened.
    eprintln!(
        "guard_storm_vs_finalize: {granted_after_start} guards granted after finalize was called"
    );
}

/// Thousands of payloads, each cloned and dropped on several threads (some
/// attached to the owner, one to another owner, the rest unattached) while a
/// drainer runs: every release runs exactly once, in its owner.
#[test]
fn handle_clone_drop_storm_across_threads() {
    let payloads = size(20_000, 200_000);
    let threads = 4;
    let reg = Registry::new();
    let owner = reg.register(0);
    let other = reg.register(1);
    let (id, other_id) = (owner.id(), other.id());
    let stats = Stats::new(payloads);
    let handles: Vec<_> = {
        let a = attach(id);
        (0..payloads)
            .map(|i| Handle::new(Probe::new(id, i, &stats), owner.view().clone(), &a))
            .collect()
    };
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(threads + 1));

    let drainer = {
        let (view, done) = (owner.view().clone(), done.clone());
        thread::spawn(move || {
            let a = attach(id);
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                n += view.drain_pending(&a);
                thread::yield_now();
            }
            n
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let mut mine: Vec<_> = handles.to_vec();
            let barrier = barrier.clone();
            thread::spawn(move || {
                // Thread 0: attached to the owner (inline releases); thread 1:
                // attached to another owner (must queue); others: unattached.
                let _a = match t {
                    0 => Some(attach(id)),
                    1 => Some(attach(other_id)),
                    _ => None,
                };
                let mut rng = Rng::new(t as u64 + 1);
                rng.shuffle(&mut mine);
                barrier.wait();
                let mut extra = Vec::new();
                while let Some(h) = mine.pop() {
                    for _ in 0..rng.below(3) {
                        extra.push(h.clone());
                    }
                    drop(h);
                    if extra.len() > 16 {
                        rng.shuffle(&mut extra);
                        extra.truncate(rng.below(8));
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    drop(handles);
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let by_drainer = drainer.join().unwrap();
    let a = attach(id);
    let by_main = owner.view().drain_pending(&a);
    drop(a);
    for i in 0..payloads {
        assert_eq!(
            (stats.released(i), stats.abandoned(i)),
            (1, 0),
            "payload {i}"
        );
    }
    assert_eq!(stats.wrong_owner(), 0);
    assert_eq!(other.view().pending_len(), 0);
    assert!(by_drainer + by_main <= payloads);
    assert_eq!(finalize(owner).calls_run, 0);
    finalize(other);
}

/// Threads drop the last handles while the owner finalizes: every payload is
/// either released (attached to its owner) or abandoned, exactly once.
#[test]
fn release_routing_vs_finalize() {
    let rounds = size(100, 1_000);
    let payloads = size(300, 2_000);
    let threads = 3;
    let (mut ran_total, mut abandoned_total) = (0, 0);
    for round in 0..rounds {
        let reg = Registry::new();
        let owner = reg.register(0);
        let id = owner.id();
        let view = owner.view().clone();
        let stats = Stats::new(payloads);
        let handles: Vec<_> = {
            let a = attach(id);
            (0..payloads)
                .map(|i| Handle::new(Probe::new(id, i, &stats), view.clone(), &a))
                .collect()
        };
        let barrier = Arc::new(Barrier::new(threads + 2));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let mut mine: Vec<_> = handles.to_vec();
                let (barrier, view) = (barrier.clone(), view.clone());
                thread::spawn(move || {
                    let mut rng = Rng::new((round * threads + t) as u64 + 1);
                    rng.shuffle(&mut mine);
                    barrier.wait();
                    while !mine.is_empty() {
                        let chunk = mine.len().min(1 + rng.below(32));
                        let rest = mine.split_off(mine.len() - chunk);
                        // Thread 0 behaves like an entry point: it drops its
                        // chunk attached to the owner, under a guard, when it
                        // can still get one; everyone else drops unattached.
                        if t == 0 {
                            if let Ok(g) = view.guard() {
                                let a = attach(id);
                                drop(rest);
                                drop(a);
                                drop(g);
                                continue;
                            }
                        }
                        drop(rest);
                    }
                })
            })
            .collect();
        let finalizer = {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..round % 5 {
                    thread::yield_now();
                }
                finalize(owner)
            })
        };
        barrier.wait();
        drop(handles);
        for w in workers {
            w.join().unwrap();
        }
        let report = finalizer.join().unwrap();
        for i in 0..payloads {
            let (r, a) = (stats.released(i), stats.abandoned(i));
            assert_eq!(
                r + a,
                1,
                "round {round} payload {i}: released {r}, abandoned {a}"
            );
        }
        assert_eq!(stats.wrong_owner(), 0);
        assert!(report.calls_run <= stats.total_released());
        assert_eq!(view.state(), OwnerState::Finalized);
        assert!(!view.has_pending());
        ran_total += stats.total_released();
        abandoned_total += stats.total_abandoned();
    }
    eprintln!("release_routing_vs_finalize: {ran_total} released, {abandoned_total} abandoned");
}

/// Pushers race drainers (some calls queue follow-ups): every call runs exactly
/// once, in its owner.
#[test]
fn push_pending_vs_drain() {
    let pushers = 2;
    let drainers = 2;
    let per_pusher = size(20_000, 200_000);
    let reg = Registry::new();
    let owner = reg.register(0);
    let id = owner.id();
    let view = owner.view().clone();
    let total = pushers * per_pusher;
    // Slot i: call i; slot total + i: the follow-up queued by call i (every 5th).
    let ran: Arc<Vec<AtomicUsize>> =
        Arc::new((0..2 * total).map(|_| AtomicUsize::new(0)).collect());
    let wrong = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(pushers + drainers));

    fn call(
        slot: usize,
        follow: Option<(View, usize)>,
        ran: Arc<Vec<AtomicUsize>>,
        wrong: Arc<AtomicUsize>,
    ) -> PendingCall {
        Box::new(move |a| {
            if crossinterp_core::current_owner() != Some(a.owner()) {
                wrong.fetch_add(1, Ordering::SeqCst);
            }
            ran[slot].fetch_add(1, Ordering::SeqCst);
            if let Some((view, next)) = follow {
                if view.id() != a.owner() {
                    wrong.fetch_add(1, Ordering::SeqCst);
                }
                assert!(view
                    .push_pending(call(next, None, ran.clone(), wrong.clone()))
                    .is_ok());
            }
        })
    }

    let drain_threads: Vec<_> = (0..drainers)
        .map(|_| {
            let (view, done, barrier) = (view.clone(), done.clone(), barrier.clone());
            thread::spawn(move || {
                let a = attach(id);
                barrier.wait();
                let mut n = 0;
                while !done.load(Ordering::SeqCst) {
                    if view.has_pending() {
                        n += view.drain_pending(&a);
                    } else {
                        thread::yield_now();
                    }
                }
                n
            })
        })
        .collect();
    let push_threads: Vec<_> = (0..pushers)
        .map(|p| {
            let (view, ran, wrong, barrier) =
                (view.clone(), ran.clone(), wrong.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for k in 0..per_pusher {
                    let slot = p * per_pusher + k;
                    let follow = (slot % 5 == 0).then(|| (view.clone(), total + slot));
                    assert!(view
                        .push_pending(call(slot, follow, ran.clone(), wrong.clone()))
                        .is_ok());
                    if k % 64 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for p in push_threads {
        p.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let mut n: usize = drain_threads.into_iter().map(|d| d.join().unwrap()).sum();
    let a = attach(id);
    n += view.drain_pending(&a);
    drop(a);
    let follow_ups = (0..total).filter(|s| s % 5 == 0).count();
    assert_eq!(n, total + follow_ups);
    for s in 0..total {
        assert_eq!(ran[s].load(Ordering::SeqCst), 1, "call {s}");
        let f = ran[total + s].load(Ordering::SeqCst);
        assert_eq!(f, usize::from(s % 5 == 0), "follow-up of {s}");
    }
    assert_eq!(wrong.load(Ordering::SeqCst), 0);
    assert_eq!(finalize(owner).calls_run, 0);
}

/// `AtomicInt`'s fetch-add fast path against its bound: adders (fast `+1`,
/// `+7`; checked `-3`) run across the parked zone's edge while one thread
/// swaps the value between just above and just below it, and near
/// `i64::MAX`. Checked: no add wraps (every value seen is in range), overflow
/// is raised exactly when the room is used up, and nothing is lost: the
/// final value equals the swaps' values plus every successful add after them.
#[test]
fn fetch_add_fast_path_vs_bound() {
    use crossinterp_core::atomic::{AtomicInt, Overflow, PARK_ABOVE};
    use std::sync::atomic::AtomicI64;
    let n = size(200_000, 4_000_000);
    // 1. Near the bound: exactly `room` adds succeed.
    let room = 3_000i64;
    let a = AtomicInt::new(i64::MAX - room);
    let oks = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let (a, oks) = (a.clone(), oks.clone());
            thread::spawn(move || {
                for _ in 0..1_000 {
                    match a.fetch_add(1) {
                        Ok(old) => {
                            assert!(old >= i64::MAX - room, "{old}");
                            oks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Overflow) => assert_eq!(a.get(), i64::MAX),
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(oks.load(Ordering::Relaxed) as i64, room);
    assert_eq!(a.get(), i64::MAX);

    // 2. Across the parked zone's edge, with swaps: conservation.
    let lo = PARK_ABOVE - 1_000_000;
    let hi = PARK_ABOVE + 1_000_000;
    let a = AtomicInt::new(PARK_ABOVE - 5);
    let added = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let adders: Vec<_> = [1i64, 7, -3]
        .into_iter()
        .map(|step| {
            let (a, added, stop) = (a.clone(), added.clone(), stop.clone());
            thread::spawn(move || {
                let mut mine = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let old = if step > 0 {
                        a.fetch_add(step)
                    } else {
                        a.fetch_sub(-step)
                    };
                    let old = old.expect("no overflow this far from the bound");
                    assert!(old > lo - (1 << 40) && old < hi + (1 << 40), "{old}");
                    mine += step;
                }
                added.fetch_add(mine, Ordering::Relaxed);
            })
        })
        .collect();
    let mut rng = Rng::new(7);
    let mut last = PARK_ABOVE - 5;
    let mut drift = 0i64; // sum of (old seen by a swap - the value before it)
    for _ in 0..n {
        let x = if rng.below(2) == 0 {
            PARK_ABOVE + 1 + rng.below(50) as i64
        } else {
            PARK_ABOVE - rng.below(50) as i64
        };
        let old = a.swap(x);
        drift += old - last;
        last = x;
        let g = a.get();
        assert!(g > lo - (1 << 40) && g < hi + (1 << 40), "{g}");
    }
    stop.store(true, Ordering::Relaxed);
    for h in adders {
        h.join().unwrap();
    }
    drift += a.get() - last;
    assert_eq!(drift, added.load(Ordering::Relaxed));
}
