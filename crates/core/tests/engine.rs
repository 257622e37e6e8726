//! Unit/integration tests of the engine: owners, guards, views, pending calls,
//! handles. Deterministic; the racy schedules live in `stress.rs` and `loom.rs`.

#![cfg(not(loom))]

mod common;

use common::{attach, finalize, DropCount, Probe, Stats};
use crossinterp_core::{
    current_owner, FinalizeOptions, GuardError, Handle, HandleError, OwnerState, PendingCall,
    Registry, SlowFinalize,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Spin (yielding) until `cond` holds, failing the test after 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn counter_call(counter: &Arc<AtomicUsize>) -> PendingCall {
    let c = counter.clone();
    Box::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    })
}

// ---------------------------------------------------------------- guards, views

#[test]
fn guard_fails_after_finalize_begins() {
    let reg = Registry::new();
    let owner = reg.register(7);
    let view = owner.view().clone();
    let id = owner.id();
    assert_eq!(view.state(), OwnerState::Running);
    assert_eq!(view.tag(), 7);

    // Hold a guard so that finalization stays in Finalizing.
    let held = view.guard().expect("guard while running");
    assert_eq!(view.open_guards(), 1);
    let finalizer = thread::spawn(move || finalize(owner));
    wait_until("Finalizing", || view.state() == OwnerState::Finalizing);

    assert!(!view.is_running());
    assert_eq!(view.guard().unwrap_err(), GuardError::Finalizing(id));
    // A view obtained from the open guard is refused too.
    assert_eq!(held.view().guard().unwrap_err(), GuardError::Finalizing(id));
    assert!(
        !finalizer.is_finished(),
        "finalize returned with a guard open"
    );

    drop(held);
    finalizer.join().unwrap();
    assert_eq!(view.state(), OwnerState::Finalized);
    assert_eq!(view.guard().unwrap_err(), GuardError::Finalizing(id));
}

#[test]
fn view_guard_fails_after_finalized() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let copy = view.clone();
    {
        let g = copy.guard().expect("guard while running");
        assert_eq!(g.id(), view.id());
    }
    assert_eq!(view.open_guards(), 0);
    let report = finalize(owner);
    assert_eq!(report.calls_run, 0);
    assert_eq!(view.state(), OwnerState::Finalized);
    assert_eq!(view.guard().unwrap_err(), GuardError::Finalizing(view.id()));
    assert_eq!(copy.guard().unwrap_err(), GuardError::Finalizing(view.id()));
    assert!(reg.get(view.id()).is_none());
    // The view stays usable as plain memory after its owner is gone.
    assert_eq!(
        format!("{view:?}"),
        format!("View {{ id: {:?}, state: Finalized }}", view.id())
    );
}

#[test]
fn owner_ids_never_reused() {
    let reg = Registry::new();
    let mut last = 0;
    let mut seen = std::collections::HashSet::new();
    // Keep a few owners alive across the loop so that finalize/register interleave.
    let mut kept = Vec::new();
    for i in 0..10_000u64 {
        let owner = reg.register(i);
        let id = owner.id().get();
        assert!(id > last, "id {id} after {last}");
        assert!(seen.insert(id));
        last = id;
        if i % 1000 == 0 {
            kept.push(owner);
        } else {
            finalize(owner);
        }
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(reg.live_count(), kept.len());
    for o in kept {
        finalize(o);
    }
    assert_eq!(reg.live_count(), 0);
    assert!(reg.register(0).id().get() > last);
}

#[test]
fn live_count_back_to_start_after_finalize() {
    let reg = Registry::new();
    let start = reg.live_count();
    let owners: Vec<_> = (0..50).map(|i| reg.register(100 + i)).collect();
    assert_eq!(reg.live_count(), start + 50);
    assert_eq!(reg.views().len(), start + 50);
    let ids: Vec<_> = reg.views().iter().map(|v| v.id()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "views() in id order");
    assert_eq!(reg.find_tag(123).map(|v| v.tag()), Some(123));
    assert_eq!(
        reg.get(owners[3].id()).map(|v| v.id()),
        Some(owners[3].id())
    );

    for (i, o) in owners.into_iter().enumerate() {
        if i % 2 == 0 {
            finalize(o);
        } else {
            let mut ignore = |_: SlowFinalize| {};
            o.abandon(FinalizeOptions {
                warn_after: Duration::from_secs(3600),
                on_slow: &mut ignore,
            });
        }
    }
    assert_eq!(reg.live_count(), start);
    assert!(reg.find_tag(123).is_none());
}

// --------------------------------------------------------------- pending calls

#[test]
fn pending_calls_pushed_before_finalize_run_once_at_finalize() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let other = reg.register(1);
    let id = owner.id();
    let view = owner.view().clone();
    let runs = Arc::new(Mutex::new(Vec::new()));
    for i in 0..10 {
        let runs = runs.clone();
        view.push_pending(Box::new(move |a| {
            runs.lock().unwrap().push((i, a.owner(), current_owner()));
        }))
        .unwrap_or_else(|_| panic!("push refused while running"));
    }
    assert!(view.has_pending());
    assert_eq!(view.pending_len(), 10);
    assert!(
        runs.lock().unwrap().is_empty(),
        "nothing runs before a drain"
    );

    // Finalized from a thread attached to the owner.
    let report = thread::spawn(move || finalize(owner)).join().unwrap();
    assert_eq!(report.calls_run, 10);
    assert_eq!(report.calls_abandoned, 0);
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 10, "each call exactly once");
    for (n, (i, a, cur)) in runs.iter().enumerate() {
        assert_eq!(*i, n, "in push order");
        assert_eq!(*a, id);
        assert_eq!(*cur, Some(id));
    }
    assert!(!view.has_pending());
    assert_eq!(view.pending_len(), 0);
    finalize(other);
}

#[test]
fn push_after_finalized_is_refused_and_hands_call_back() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let id = owner.id();
    let view = owner.view().clone();
    finalize(owner);

    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (r, d) = (ran.clone(), DropCount(dropped.clone()));
    let err = view
        .push_pending(Box::new(move |_| {
            let _keep = &d;
            r.fetch_add(1, Ordering::SeqCst);
        }))
        .expect_err("push after Finalized must be refused");
    assert_eq!(
        err.to_string(),
        "the owner is finalized; the pending call was not queued"
    );
    assert!(!view.has_pending());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        0,
        "the call is handed back intact"
    );
    // It is the very call we pushed: running it works.
    let call = err.into_inner();
    let a = attach(id);
    call(&a);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn drain_pending_runs_calls_queued_by_calls() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let ran = Arc::new(AtomicUsize::new(0));

    // A chain: each call queues the next, five deep.
    fn chain(view: crossinterp_core::View, ran: Arc<AtomicUsize>, depth: usize) -> PendingCall {
        Box::new(move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
            if depth > 1 {
                let next = chain(view.clone(), ran.clone(), depth - 1);
                assert!(view.push_pending(next).is_ok());
            }
        })
    }
    view.push_pending(chain(view.clone(), ran.clone(), 5))
        .ok()
        .unwrap();
    view.push_pending(counter_call(&ran)).ok().unwrap();

    let a = attach(owner.id());
    assert_eq!(view.drain_pending(&a), 6);
    assert_eq!(ran.load(Ordering::SeqCst), 6);
    assert!(!view.has_pending());
    assert_eq!(view.drain_pending(&a), 0);
    drop(a);
    assert_eq!(finalize(owner).calls_run, 0);
}

#[test]
fn panicking_pending_call_does_not_stop_others() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let ran = Arc::new(AtomicUsize::new(0));
    view.push_pending(counter_call(&ran)).ok().unwrap();
    view.push_pending(Box::new(|_| panic!("first")))
        .ok()
        .unwrap();
    view.push_pending(counter_call(&ran)).ok().unwrap();
    let (v, r) = (view.clone(), ran.clone());
    view.push_pending(Box::new(move |_| {
        // Queued by a call of the panicking batch: must still run.
        v.push_pending(counter_call(&r)).ok().unwrap();
        panic!("second")
    }))
    .ok()
    .unwrap();
    view.push_pending(counter_call(&ran)).ok().unwrap();

    let a = attach(owner.id());
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| view.drain_pending(&a)))
        .expect_err("the panic resumes after the drain");
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"first"),
        "the first panic is resumed"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 4, "every other call ran");
    assert!(!view.has_pending());
    drop(a);
    finalize(owner);
}

#[test]
fn panicking_call_at_finalize_still_finalizes() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let ran = Arc::new(AtomicUsize::new(0));
    view.push_pending(Box::new(|_| panic!("boom")))
        .ok()
        .unwrap();
    view.push_pending(counter_call(&ran)).ok().unwrap();

    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| finalize(owner)))
        .expect_err("the call's panic resumes");
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // Finalization completed before the panic resumed.
    assert_eq!(view.state(), OwnerState::Finalized);
    assert_eq!(reg.live_count(), 0);
    assert!(view.push_pending(counter_call(&ran)).is_err());
}

#[test]
fn owner_dropped_without_finalize_abandons_calls() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let (r, d) = (ran.clone(), DropCount(dropped.clone()));
        view.push_pending(Box::new(move |_| {
            let _keep = &d;
            r.fetch_add(1, Ordering::SeqCst);
        }))
        .ok()
        .unwrap();
    }
    drop(owner);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "abandoned calls never run");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        3,
        "abandoned calls are dropped"
    );
    assert_eq!(view.state(), OwnerState::Finalized);
    assert_eq!(reg.live_count(), 0);
    assert!(view.push_pending(counter_call(&ran)).is_err());

    // The explicit form reports what it dropped.
    let owner = reg.register(1);
    owner.view().push_pending(counter_call(&ran)).ok().unwrap();
    let mut ignore = |_: SlowFinalize| {};
    let report = owner.abandon(FinalizeOptions {
        warn_after: Duration::from_secs(3600),
        on_slow: &mut ignore,
    });
    assert_eq!((report.calls_run, report.calls_abandoned), (0, 1));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn wait_pending_wakes_when_a_call_is_pushed() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let idle = reg.register(1);

    let (tx, rx) = mpsc::channel();
    let r = reg.clone();
    let waiter = thread::spawn(move || {
        tx.send(()).unwrap();
        let start = Instant::now();
        let ready = r.wait_pending(Duration::from_secs(30));
        (
            ready.iter().map(|v| v.id()).collect::<Vec<_>>(),
            start.elapsed(),
        )
    });
    rx.recv().unwrap();
    thread::sleep(Duration::from_millis(20));
    let ran = Arc::new(AtomicUsize::new(0));
    view.push_pending(counter_call(&ran)).ok().unwrap();
    let (ids, waited) = waiter.join().unwrap();
    assert_eq!(ids, vec![owner.id()]);
    assert!(
        waited < Duration::from_secs(10),
        "woken by the push, not the timeout"
    );

    // A push already signalled is returned at once; then nothing is ready.
    view.push_pending(counter_call(&ran)).ok().unwrap(); // queue not empty: no new signal
    let a = attach(owner.id());
    assert_eq!(view.drain_pending(&a), 2);
    view.push_pending(counter_call(&ran)).ok().unwrap(); // empty again: signals
    assert_eq!(reg.wait_pending(Duration::ZERO).len(), 1);
    assert!(reg.wait_pending(Duration::from_millis(1)).is_empty());

    // wake_waiters wakes a waiter with nothing to report.
    let r = reg.clone();
    let waiter = thread::spawn(move || r.wait_pending(Duration::from_secs(30)).len());
    let start = Instant::now();
    while !waiter.is_finished() {
        reg.wake_waiters();
        assert!(start.elapsed() < Duration::from_secs(10));
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(waiter.join().unwrap(), 0);
    drop(a);
    finalize(owner);
    finalize(idle);
}

#[test]
fn finalize_waits_for_guard_held_by_other_thread() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let id = owner.id();

    let slow_seen = Arc::new(AtomicBool::new(false));
    let guard_dropped = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let holder = {
        let (view, slow_seen, guard_dropped) =
            (view.clone(), slow_seen.clone(), guard_dropped.clone());
        thread::spawn(move || {
            let g = view.guard().expect("guard while running");
            tx.send(()).unwrap();
            // Hold the guard until finalization has reported at least once.
            wait_until("on_slow", || slow_seen.load(Ordering::SeqCst));
            thread::sleep(Duration::from_millis(20));
            guard_dropped.store(true, Ordering::SeqCst);
            drop(g);
        })
    };
    rx.recv().unwrap();

    let mut reports = Vec::new();
    let mut on_slow = |r: SlowFinalize| {
        reports.push(r);
        slow_seen.store(true, Ordering::SeqCst);
    };
    let a = attach(id);
    let start = Instant::now();
    let report = owner.finalize(
        &a,
        FinalizeOptions {
            warn_after: Duration::from_millis(2),
            on_slow: &mut on_slow,
        },
    );
    let elapsed = start.elapsed();
    holder.join().unwrap();

    assert!(
        guard_dropped.load(Ordering::SeqCst),
        "finalize returned before the guard dropped"
    );
    assert!(!reports.is_empty(), "on_slow never called");
    for r in &reports {
        assert_eq!(r.id, id);
        assert_eq!(r.open_guards, 1);
        assert!(r.waited >= Duration::from_millis(2));
    }
    assert!(reports.windows(2).all(|w| w[0].waited <= w[1].waited));
    assert!(report.waited >= Duration::from_millis(20));
    assert!(report.waited <= elapsed);
    assert_eq!(view.state(), OwnerState::Finalized);
    assert_eq!(view.open_guards(), 0);
    assert_eq!(reg.live_count(), 0);
}

// --------------------------------------------------------------------- handles

#[test]
fn handle_clone_drop_on_many_threads_releases_once() {
    const THREADS: usize = 8;
    const PAYLOADS: usize = 200;
    let reg = Registry::new();
    let owner = reg.register(0);
    let id = owner.id();
    let stats = Stats::new(PAYLOADS);
    let handles: Vec<_> = {
        let a = attach(id);
        (0..PAYLOADS)
            .map(|i| Handle::new(Probe::new(id, i, &stats), owner.view().clone(), &a))
            .collect()
    };
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let mine: Vec<_> = handles.to_vec();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut more = Vec::new();
                for h in &mine {
                    assert!(h.count() >= 1);
                    more.push(h.clone());
                    more.push(h.clone());
                }
                drop(mine);
                if t % 2 == 0 {
                    more.reverse();
                }
                drop(more);
            })
        })
        .collect();
    drop(handles);
    for w in workers {
        w.join().unwrap();
    }
    // Every last drop happened on an unattached thread: all queued.
    assert_eq!(stats.total_released(), 0);
    assert_eq!(owner.view().pending_len(), PAYLOADS);
    let a = attach(id);
    assert_eq!(owner.view().drain_pending(&a), PAYLOADS);
    drop(a);
    for i in 0..PAYLOADS {
        assert_eq!(
            (stats.released(i), stats.abandoned(i)),
            (1, 0),
            "payload {i}"
        );
    }
    assert_eq!(stats.wrong_owner(), 0);
    assert_eq!(finalize(owner).calls_run, 0);
}

#[test]
fn last_handle_drop_while_attached_releases_inline() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let id = owner.id();
    let stats = Stats::new(1);
    let a = attach(id);
    let h = Handle::new(Probe::new(id, 0, &stats), owner.view().clone(), &a);
    let h2 = h.clone();
    assert_eq!(h.count(), 2);
    drop(h);
    assert_eq!(stats.released(0), 0, "not the last handle");
    drop(h2);
    assert_eq!(stats.released(0), 1, "released inline");
    assert!(!owner.view().has_pending(), "no pending call queued");
    assert_eq!(owner.view().pending_len(), 0);
    assert_eq!(stats.wrong_owner(), 0);
    drop(a);

    // Nested scopes: attached to another owner inside, then back.
    let other = reg.register(1);
    let stats = Stats::new(1);
    let h = {
        let a = attach(id);
        Handle::new(Probe::new(id, 0, &stats), owner.view().clone(), &a)
    };
    let outer = attach(id);
    {
        let _inner = attach(other.id());
        assert_eq!(current_owner(), Some(other.id()));
    }
    assert_eq!(current_owner(), Some(id), "outer scope restored");
    drop(h);
    assert_eq!(stats.released(0), 1);
    assert_eq!(owner.view().pending_len(), 0);
    drop(outer);
    assert_eq!(current_owner(), None);
    finalize(owner);
    finalize(other);
}

#[test]
fn last_handle_drop_elsewhere_is_queued_and_runs_at_drain() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let other = reg.register(1);
    let id = owner.id();
    let stats = Stats::new(2);
    let (h0, h1) = {
        let a = attach(id);
        (
            Handle::new(Probe::new(id, 0, &stats), owner.view().clone(), &a),
            Handle::new(Probe::new(id, 1, &stats), owner.view().clone(), &a),
        )
    };
    // Dropped on an unattached thread.
    thread::spawn(move || drop(h0)).join().unwrap();
    // Dropped while attached to another owner.
    {
        let _a = attach(other.id());
        drop(h1);
    }
    assert_eq!(stats.total_released(), 0);
    assert_eq!(owner.view().pending_len(), 2);
    assert!(other.view().pending_len() == 0);

    let a = attach(id);
    assert_eq!(owner.view().drain_pending(&a), 2);
    assert_eq!((stats.released(0), stats.released(1)), (1, 1));
    assert_eq!(stats.total_abandoned(), 0);
    assert_eq!(stats.wrong_owner(), 0);
    drop(a);

    // Queued, then run by finalization.
    let stats = Stats::new(1);
    let h = {
        let a = attach(id);
        Handle::new(Probe::new(id, 0, &stats), owner.view().clone(), &a)
    };
    drop(h);
    assert_eq!(stats.released(0), 0);
    assert_eq!(finalize(owner).calls_run, 1);
    assert_eq!(
        (stats.released(0), stats.abandoned(0), stats.wrong_owner()),
        (1, 0, 0)
    );
    finalize(other);
}

#[test]
fn last_handle_drop_after_finalized_never_releases() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let id = owner.id();
    let stats = Stats::new(3);
    let hs: Vec<_> = {
        let a = attach(id);
        (0..3)
            .map(|i| Handle::new(Probe::new(id, i, &stats), owner.view().clone(), &a))
            .collect()
    };
    let mut hs = hs.into_iter();
    let (h0, h1, h2) = (hs.next().unwrap(), hs.next().unwrap(), hs.next().unwrap());
    let keep = h0.clone();
    finalize(owner);
    assert!(h0.is_dead() && keep.is_dead());
    // Unattached thread, attached to the (gone) owner, attached elsewhere: all no-ops.
    thread::spawn(move || {
        drop(h0);
        drop(keep);
    })
    .join()
    .unwrap();
    {
        let _a = attach(id);
        drop(h1);
    }
    let other = reg.register(1);
    {
        let _a = attach(other.id());
        drop(h2);
    }
    for i in 0..3 {
        assert_eq!(
            (stats.released(i), stats.abandoned(i)),
            (0, 1),
            "payload {i}"
        );
    }
    assert_eq!(other.view().pending_len(), 0);
    finalize(other);
}

#[test]
fn handle_get_typed_errors() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let other = reg.register(1);
    let id = owner.id();
    let stats = Stats::new(1);
    let a = attach(id);
    let h = Handle::new(Probe::new(id, 0, &stats), owner.view().clone(), &a);
    assert_eq!(h.get(&a).map(|p| p.index), Ok(0));
    assert_eq!(h.owner().id(), id);
    assert!(!h.is_dead());
    drop(a);
    {
        let b = attach(other.id());
        let err = h.get(&b).map(|_| ()).unwrap_err();
        assert_eq!(
            err,
            HandleError::WrongOwner {
                owner: id,
                attached: other.id()
            }
        );
        assert!(err.to_string().contains("used while attached to"));
    }
    finalize(owner);
    let a = attach(id);
    let err = h.get(&a).map(|_| ()).unwrap_err();
    assert_eq!(err, HandleError::OwnerGone(id));
    assert!(err.to_string().contains("is gone"));
    assert!(h.is_dead());
    drop(a);
    drop(h);
    assert_eq!((stats.released(0), stats.abandoned(0)), (0, 1));
    finalize(other);
}

#[test]
#[should_panic(expected = "handle created outside its owner")]
fn handle_new_outside_its_owner_panics() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let other = reg.register(1);
    let stats = Stats::new(1);
    let a = attach(other.id());
    let _h = Handle::new(Probe::new(owner.id(), 0, &stats), owner.view().clone(), &a);
}

#[test]
fn begin_finalize_then_wait_for_guards_detached_then_finalize() {
    let reg = Registry::new();
    let owner = reg.register(0);
    let view = owner.view().clone();
    let id = owner.id();
    let g = view.guard().unwrap();

    owner.begin_finalize();
    owner.begin_finalize(); // idempotent
    assert_eq!(view.state(), OwnerState::Finalizing);
    assert_eq!(view.guard().unwrap_err(), GuardError::Finalizing(id));
    // Pending calls are still accepted while finalizing.
    let ran = Arc::new(AtomicUsize::new(0));
    view.push_pending(counter_call(&ran)).ok().unwrap();

    let dropped = Arc::new(AtomicBool::new(false));
    let holder = {
        let dropped = dropped.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            dropped.store(true, Ordering::SeqCst);
            drop(g);
        })
    };
    // The wait runs detached (no Attached on this thread).
    assert_eq!(current_owner(), None);
    let mut reports = 0;
    let mut on_slow = |r: SlowFinalize| {
        assert_eq!(r.open_guards, 1);
        reports += 1;
    };
    let waited = owner.wait_for_guards(&mut FinalizeOptions {
        warn_after: Duration::from_millis(1),
        on_slow: &mut on_slow,
    });
    assert!(dropped.load(Ordering::SeqCst));
    assert!(waited >= Duration::from_millis(10));
    assert!(reports >= 1);
    holder.join().unwrap();
    assert_eq!(
        view.state(),
        OwnerState::Finalizing,
        "waiting does not finalize"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    let report = finalize(owner);
    assert!(
        report.waited < Duration::from_secs(1),
        "no guard left to wait for"
    );
    assert_eq!(report.calls_run, 1);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(view.state(), OwnerState::Finalized);
}

mod shared_mem {
    use crossinterp_core::buffer::{SharedMem, ALIGN};

    #[test]
    fn zeroed_is_aligned_and_zero() {
        for n in [0usize, 1, 63, 64, 65, 4096, 1 << 20] {
            let m = SharedMem::zeroed(n, false).unwrap();
            assert_eq!(m.as_ptr() as usize % ALIGN, 0);
            assert_eq!(m.len(), n);
            // SAFETY: the block has `n` bytes and is not shared.
            let s = unsafe { std::slice::from_raw_parts(m.as_ptr(), n) };
            assert!(s.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn copy_of_copies_and_keeps_readonly() {
        let m = SharedMem::copy_of(b"hello", true).unwrap();
        assert!(m.readonly());
        // SAFETY: 5 bytes, not shared.
        assert_eq!(
            unsafe { std::slice::from_raw_parts(m.as_ptr(), 5) },
            b"hello"
        );
    }

    #[test]
    fn oversized_is_an_error_not_an_abort() {
        assert!(SharedMem::zeroed(usize::MAX - 10, false).is_err());
    }

    #[test]
    fn last_drop_on_another_thread_frees() {
        let m = SharedMem::zeroed(1 << 16, false).unwrap();
        let clones: Vec<_> = (0..4).map(|_| m.clone()).collect();
        drop(m);
        let hs: Vec<_> = clones
            .into_iter()
            .map(|c| std::thread::spawn(move || drop(c)))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
}

mod atomics {
    use crossinterp_core::atomic::{AtomicFlag, AtomicInt, Overflow};

    #[test]
    fn int_ops() {
        let a = AtomicInt::new(5);
        assert_eq!(a.fetch_add(3), Ok(5));
        assert_eq!(a.fetch_sub(10), Ok(8));
        assert_eq!(a.get(), -2);
        assert_eq!(a.swap(7), -2);
        assert!(a.compare_and_set(7, 9) && !a.compare_and_set(7, 1));
        assert_eq!(a.fetch_update(|v| Ok::<_, ()>(v * 2)), Ok(9));
        assert_eq!(a.get(), 18);
        assert_eq!(a.fetch_update(|_| Err::<i64, _>("no")), Err("no"));
        assert_eq!(a.get(), 18);
    }

    #[test]
    fn overflow_leaves_value_unchanged() {
        let a = AtomicInt::new(i64::MAX);
        assert_eq!(a.fetch_add(1), Err(Overflow));
        assert_eq!(a.get(), i64::MAX);
        let b = AtomicInt::new(i64::MIN);
        assert_eq!(b.fetch_sub(1), Err(Overflow));
        assert_eq!(b.get(), i64::MIN);
    }

    #[test]
    fn park_boundary_round_trip() {
        use crossinterp_core::atomic::{FAST_ADD_MAX, PARK_ABOVE};
        let a = AtomicInt::new(PARK_ABOVE - 1);
        assert_eq!(a.fetch_add(1), Ok(PARK_ABOVE - 1));
        assert_eq!(a.fetch_add(1), Ok(PARK_ABOVE)); // parks
        assert_eq!(a.get(), PARK_ABOVE + 1);
        assert_eq!(a.fetch_add(FAST_ADD_MAX), Ok(PARK_ABOVE + 1)); // finds it parked
        assert_eq!(
            a.fetch_sub(FAST_ADD_MAX + 2),
            Ok(PARK_ABOVE + 1 + FAST_ADD_MAX)
        ); // unparks
        assert_eq!(a.get(), PARK_ABOVE - 1);
        assert!(a.compare_and_set(PARK_ABOVE - 1, i64::MAX - 1));
        assert!(!a.compare_and_set(PARK_ABOVE - 1, 0));
        assert_eq!(a.fetch_add(1), Ok(i64::MAX - 1));
        assert_eq!(a.fetch_add(1), Err(Overflow));
        assert_eq!(a.fetch_add(FAST_ADD_MAX + 1), Err(Overflow));
        assert_eq!(a.get(), i64::MAX);
        assert!(a.compare_and_set(i64::MAX, 3));
        assert_eq!(a.swap(i64::MAX), 3);
        assert_eq!(a.swap(-7), i64::MAX);
        assert_eq!(a.fetch_update(|v| Ok::<_, ()>(v + i64::MAX - 1)), Ok(-7));
        assert_eq!(a.fetch_update(|v| Ok::<_, ()>(v - 1)), Ok(i64::MAX - 8));
        assert_eq!(a.get(), i64::MAX - 9);
        assert_eq!(AtomicInt::new(i64::MAX).fetch_sub(-1), Err(Overflow));
        assert_eq!(AtomicInt::new(i64::MIN).fetch_add(-1), Err(Overflow));
        assert_eq!(AtomicInt::new(0).fetch_add(i64::MIN), Ok(0));
    }

    #[test]
    fn adds_from_many_threads_are_not_lost() {
        let a = AtomicInt::new(0);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        a.fetch_add(1).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(a.get(), 40_000);
    }

    #[test]
    fn flag_ops() {
        let f = AtomicFlag::new(false);
        assert!(!f.toggle());
        assert!(f.get());
        assert!(f.compare_and_set(true, false));
        assert!(!f.swap(true));
        assert!(f.same(&f.clone()) && !f.same(&AtomicFlag::new(true)));
    }
}
