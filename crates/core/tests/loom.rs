//! Loom models of the engine's protocols.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p crossinterp-core --release --test loom \
//!     --target-dir target/loom -- --test-threads 1 --nocapture
//! ```
//!
//! Each model is bounded (`preemption_bound`, overridable with
//! `LOOM_MAX_PREEMPTIONS`) and prints its wall time. Under loom, timed condvar
//! waits are untimed, so the finalizer's `on_slow` path never fires (the models
//! use a one-hour `warn_after`); `Registry::global()` does not exist, each model
//! makes its own `Registry::new()`.

#![cfg(loom)]

use crossinterp_core::{
    current_owner, Attached, FinalizeOptions, FinalizeReport, GuardError, Handle, Owner, OwnerId,
    OwnerState, PendingCall, Registry, Release, SlowFinalize, View,
};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use std::time::Duration;

#[path = "support/loom_model.rs"]
mod loom_model;
use loom_model::model;

/// Pretend the current (modelled) thread is attached to `owner`.
fn attach(owner: OwnerId) -> Attached<'static> {
    // SAFETY: in the engine's own tests there is no interpreter: the token only
    // stands for one, and nothing reached through it touches interpreter memory.
    unsafe { Attached::enter(owner) }
}

fn no_report() -> impl FnMut(SlowFinalize) {
    |_| panic!("on_slow cannot fire under loom with a one-hour warn_after")
}

/// Finalize `owner` attached to it on the current thread.
fn finalize(owner: Owner) -> FinalizeReport {
    let a = attach(owner.id());
    finalize_attached(owner, &a)
}

fn finalize_attached(owner: Owner, a: &Attached<'_>) -> FinalizeReport {
    let mut on_slow = no_report();
    owner.finalize(
        a,
        FinalizeOptions {
            warn_after: Duration::from_secs(3600),
            on_slow: &mut on_slow,
        },
    )
}

#[derive(Default)]
struct Counts {
    released: AtomicUsize,
    abandoned: AtomicUsize,
    wrong_owner: AtomicUsize,
}

/// A payload that records whether it was released (and where) or abandoned.
struct Probe {
    owner: OwnerId,
    counts: Arc<Counts>,
    released: bool,
}

impl Release for Probe {
    fn release(mut self, attached: &Attached<'_>) {
        if attached.owner() != self.owner || current_owner() != Some(self.owner) {
            self.counts.wrong_owner.fetch_add(1, SeqCst);
        }
        self.counts.released.fetch_add(1, SeqCst);
        self.released = true;
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.released {
            self.counts.abandoned.fetch_add(1, SeqCst);
        }
    }
}

fn new_handle(owner: &Owner, counts: &Arc<Counts>) -> Handle<Probe> {
    let a = attach(owner.id());
    let probe = Probe {
        owner: owner.id(),
        counts: counts.clone(),
        released: false,
    };
    Handle::new(probe, owner.view().clone(), &a)
}

/// A guard taken concurrently with finalize: either the guard is refused, or
/// finalize waits until it drops. Never "guard granted" and "finalize finished
/// while the guard is open".
#[test]
fn guard_vs_finalize() {
    model("guard_vs_finalize", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let view = owner.view().clone();
        let finished = Arc::new(AtomicBool::new(false));
        let taker = {
            let (view, finished) = (view.clone(), finished.clone());
            thread::spawn(move || match view.guard() {
                Ok(g) => {
                    assert!(
                        !finished.load(SeqCst),
                        "finalize finished under an open guard"
                    );
                    assert_ne!(view.state(), OwnerState::Finalized);
                    drop(g);
                    true
                }
                Err(e) => {
                    assert_eq!(e, GuardError::Finalizing(view.id()));
                    assert_ne!(view.state(), OwnerState::Running);
                    false
                }
            })
        };
        let report = finalize(owner);
        finished.store(true, SeqCst);
        taker.join().unwrap();
        assert_eq!(report.calls_run, 0);
        assert_eq!(view.state(), OwnerState::Finalized);
        assert_eq!(view.open_guards(), 0);
        assert!(view.guard().is_err());
    });
}

/// A view looked up in the registry and upgraded to a guard while the owner
/// finalizes: absent from the registry implies Finalized; a granted guard holds
/// finalization off; a refused one saw the owner leave Running.
#[test]
fn view_upgrade_vs_finalize() {
    model("view_upgrade_vs_finalize", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let id = owner.id();
        let view = owner.view().clone();
        let finished = Arc::new(AtomicBool::new(false));
        let upgrader = {
            let (reg, view, finished) = (reg.clone(), view.clone(), finished.clone());
            thread::spawn(move || match reg.get(id) {
                None => {
                    // Removal from the registry comes after FINALIZED.
                    assert_eq!(view.state(), OwnerState::Finalized);
                }
                Some(v) => match v.guard() {
                    Ok(g) => {
                        assert!(
                            !finished.load(SeqCst),
                            "finalize finished under an open guard"
                        );
                        assert_ne!(v.state(), OwnerState::Finalized);
                        drop(g);
                    }
                    Err(_) => assert_ne!(v.state(), OwnerState::Running),
                },
            })
        };
        finalize(owner);
        finished.store(true, SeqCst);
        upgrader.join().unwrap();
        assert!(reg.get(id).is_none());
        assert!(view.guard().is_err());
    });
}

/// Two guards open before finalization, dropped on two threads while it waits:
/// the last drop wakes the finalizer (a lost wake-up is a loom deadlock).
#[test]
fn last_guard_drop_wakes_finalizer() {
    model("last_guard_drop_wakes_finalizer", Some(4), || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let view = owner.view().clone();
        let dropped = Arc::new(AtomicUsize::new(0));
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let g = view.guard().unwrap();
                let dropped = dropped.clone();
                thread::spawn(move || {
                    dropped.fetch_add(1, SeqCst);
                    drop(g);
                })
            })
            .collect();
        finalize(owner);
        assert_eq!(
            dropped.load(SeqCst),
            2,
            "finalize returned before both guards dropped"
        );
        assert_eq!(view.open_guards(), 0);
        for h in holders {
            h.join().unwrap();
        }
    });
}

/// The last handle drop on another (unattached) thread while the owner
/// finalizes; the owner's thread drops the other clone attached. The release
/// runs exactly once in the owner, or the payload is abandoned: never both,
/// never neither.
#[test]
fn release_routing_vs_finalize() {
    model("release_routing_vs_finalize", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let counts = Arc::new(Counts::default());
        let h = new_handle(&owner, &counts);
        let h2 = h.clone();
        let dropper = thread::spawn(move || drop(h));
        let a = attach(owner.id());
        drop(h2);
        finalize_attached(owner, &a);
        drop(a);
        dropper.join().unwrap();
        let (r, ab) = (counts.released.load(SeqCst), counts.abandoned.load(SeqCst));
        assert_eq!(r + ab, 1, "released {r}, abandoned {ab}");
        assert_eq!(counts.wrong_owner.load(SeqCst), 0);
    });
}

/// Two unattached threads race to drop the last two clones while the owner
/// finalizes: whichever drop is last routes the release, which runs once or
/// is abandoned once.
#[test]
fn release_routing_two_droppers_vs_finalize() {
    model("release_routing_two_droppers_vs_finalize", Some(5), || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let counts = Arc::new(Counts::default());
        let h = new_handle(&owner, &counts);
        let droppers: Vec<_> = [h.clone(), h]
            .into_iter()
            .map(|h| thread::spawn(move || drop(h)))
            .collect();
        let report = finalize(owner);
        for d in droppers {
            d.join().unwrap();
        }
        let (r, ab) = (counts.released.load(SeqCst), counts.abandoned.load(SeqCst));
        assert_eq!(r + ab, 1, "released {r}, abandoned {ab}");
        assert_eq!(
            report.calls_run, r,
            "only finalization could run the release"
        );
        assert_eq!(counts.wrong_owner.load(SeqCst), 0);
    });
}

/// Clones and drops on two threads plus the creator: the release runs exactly
/// once (queued by whichever unattached thread drops last, then drained).
#[test]
fn handle_clone_drop_across_threads() {
    model("handle_clone_drop_across_threads", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let counts = Arc::new(Counts::default());
        let h = new_handle(&owner, &counts);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let mine = h.clone();
                thread::spawn(move || {
                    let again = mine.clone();
                    drop(mine);
                    drop(again);
                })
            })
            .collect();
        drop(h);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counts.released.load(SeqCst), 0, "no thread was attached");
        let a = attach(owner.id());
        assert_eq!(owner.view().drain_pending(&a), 1);
        assert_eq!(counts.released.load(SeqCst), 1);
        assert_eq!(counts.abandoned.load(SeqCst), 0);
        assert_eq!(counts.wrong_owner.load(SeqCst), 0);
        assert_eq!(finalize_attached(owner, &a).calls_run, 0);
    });
}

/// A push concurrent with the finalizer's drain-and-close: the call is run by
/// finalization or handed back to the pusher, never stranded in a closed queue.
#[test]
fn push_pending_vs_close() {
    model("push_pending_vs_close", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let view = owner.view().clone();
        let ran = Arc::new(AtomicUsize::new(0));
        let pusher = {
            let (view, ran) = (view.clone(), ran.clone());
            thread::spawn(move || {
                let call: PendingCall = Box::new(move |_| {
                    ran.fetch_add(1, SeqCst);
                });
                view.push_pending(call).is_ok()
            })
        };
        let report = finalize(owner);
        let accepted = pusher.join().unwrap();
        assert_eq!(ran.load(SeqCst), usize::from(accepted), "accepted iff run");
        assert_eq!(report.calls_run, usize::from(accepted));
        assert!(!view.has_pending());
        assert_eq!(view.pending_len(), 0);
    });
}

/// The same race against abandonment (finalized unattached): an accepted call is
/// dropped unrun by `abandon`, a refused one is handed back; never run, never
/// leaked.
#[test]
fn push_pending_vs_abandon() {
    model("push_pending_vs_abandon", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let view = owner.view().clone();
        let counts = Arc::new(Counts::default());
        let pusher = {
            let (view, counts) = (view.clone(), counts.clone());
            thread::spawn(move || {
                let probe = Probe {
                    owner: view.id(),
                    counts,
                    released: false,
                };
                let call: PendingCall = Box::new(move |a| probe.release(a));
                match view.push_pending(call) {
                    Ok(()) => true,
                    Err(refused) => {
                        drop(refused.into_inner());
                        false
                    }
                }
            })
        };
        let mut on_slow = no_report();
        let report = owner.abandon(FinalizeOptions {
            warn_after: Duration::from_secs(3600),
            on_slow: &mut on_slow,
        });
        let accepted = pusher.join().unwrap();
        assert_eq!(report.calls_abandoned, usize::from(accepted));
        assert_eq!(counts.released.load(SeqCst), 0);
        assert_eq!(counts.abandoned.load(SeqCst), 1);
        assert_eq!(view.state(), OwnerState::Finalized);
    });
}

/// A drainer concurrent with a pusher whose first call queues a follow-up:
/// every call runs exactly once (what the concurrent drain misses, a later
/// drain runs).
#[test]
fn drain_vs_push() {
    model("drain_vs_push", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let id = owner.id();
        let view = owner.view().clone();
        let ran: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());

        fn count(ran: &Arc<[AtomicUsize; 3]>, i: usize, follow: Option<View>) -> PendingCall {
            let ran = ran.clone();
            Box::new(move |a| {
                assert_eq!(current_owner(), Some(a.owner()));
                ran[i].fetch_add(1, SeqCst);
                if let Some(v) = follow {
                    assert!(v.push_pending(count(&ran, 2, None)).is_ok());
                }
            })
        }

        let pusher = {
            let (view, ran) = (view.clone(), ran.clone());
            thread::spawn(move || {
                assert!(view
                    .push_pending(count(&ran, 0, Some(view.clone())))
                    .is_ok());
                assert!(view.push_pending(count(&ran, 1, None)).is_ok());
            })
        };
        let a = attach(id);
        let mut n = view.drain_pending(&a);
        pusher.join().unwrap();
        n += view.drain_pending(&a);
        assert_eq!(n, 3);
        for (i, r) in ran.iter().enumerate() {
            assert_eq!(r.load(SeqCst), 1, "call {i}");
        }
        assert!(!view.has_pending());
        assert_eq!(finalize_attached(owner, &a).calls_run, 0);
    });
}

/// The extension's split finalization: the finalizer waits for guards detached,
/// then attaches and finalizes, while a guard holder attached to the owner drops
/// one handle clone and the finalizer dropped the other unattached beforehand.
/// The release runs exactly once, in its owner, and is never abandoned (the
/// owner was alive for both drops).
#[test]
fn wait_for_guards_detached_then_finalize() {
    model("wait_for_guards_detached_then_finalize", None, || {
        let reg = Registry::new();
        let owner = reg.register(0);
        let id = owner.id();
        let counts = Arc::new(Counts::default());
        let h = new_handle(&owner, &counts);
        let g = owner.view().guard().unwrap();
        let mine = h.clone();
        let holder = thread::spawn(move || {
            let a = attach(id);
            drop(mine);
            drop(a);
            drop(g);
        });
        drop(h);
        let mut on_slow = no_report();
        owner.wait_for_guards(&mut FinalizeOptions {
            warn_after: Duration::from_secs(3600),
            on_slow: &mut on_slow,
        });
        assert_eq!(owner.view().open_guards(), 0);
        finalize(owner);
        holder.join().unwrap();
        assert_eq!(counts.released.load(SeqCst), 1);
        assert_eq!(counts.abandoned.load(SeqCst), 0);
        assert_eq!(counts.wrong_owner.load(SeqCst), 0);
    });
}

/// The cross-interpreter release of a shared buffer: clones dropped on
/// different threads (standing for interpreters) free the block once, after the
/// last drop, and only then (loom reports leaks and use-after-free of its Arc).
#[test]
fn shared_mem_freed_once_after_last_drop() {
    use crossinterp_core::buffer::SharedMem;
    model("shared_mem_freed_once_after_last_drop", None, || {
        let m = SharedMem::zeroed(64, false).unwrap();
        let a = m.clone();
        let b = m.clone();
        let ta = thread::spawn(move || {
            // The block stays valid while this clone lives.
            // SAFETY: 64 bytes, read-only access in this model.
            assert_eq!(unsafe { *a.as_ptr() }, 0);
            drop(a);
        });
        let tb = thread::spawn(move || drop(b));
        drop(m);
        ta.join().unwrap();
        tb.join().unwrap();
    });
}

/// Two threads add 1 to `i64::MAX - 1`: exactly one add fits, the other
/// reports `Overflow` and changes nothing (the CAS loop never wraps).
#[test]
fn checked_add_vs_overflow() {
    use crossinterp_core::atomic::{AtomicInt, Overflow};
    model("checked_add_vs_overflow", None, || {
        let a = AtomicInt::new(i64::MAX - 1);
        let b = a.clone();
        let t = thread::spawn(move || b.fetch_add(1));
        let mine = a.fetch_add(1);
        let theirs = t.join().unwrap();
        let oks = [mine, theirs].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1);
        assert!([mine, theirs].contains(&Err(Overflow)));
        assert_eq!(a.get(), i64::MAX);
    });
}

/// Two fast adds (the first crossing into the parked zone) race a `set` to
/// just below `i64::MAX`: no add wraps, an add after the set is checked, and
/// the final value is the set's plus the adds that came after it (each add's
/// old value says which side of the set it fell on). Fails if `set` stores
/// a value near the bound in the word (a fast add then wraps).
#[test]
fn fetch_add_fast_path_vs_bound() {
    use crossinterp_core::atomic::{AtomicInt, Overflow, PARK_ABOVE};
    model("fetch_add_fast_path_vs_bound", None, || {
        let a = AtomicInt::new(PARK_ABOVE);
        let (b, c) = (a.clone(), a.clone());
        let t1 = thread::spawn(move || b.fetch_add(1));
        let t2 = thread::spawn(move || c.set(i64::MAX - 1));
        let mine = a.fetch_add(1);
        let theirs = t1.join().unwrap();
        t2.join().unwrap();
        let fin = a.get();
        let mut after = 0;
        for r in [mine, theirs] {
            match r {
                Ok(old) if old >= i64::MAX - 1 => after += 1,
                Ok(old) => assert!((PARK_ABOVE..=PARK_ABOVE + 1).contains(&old), "{old}"),
                Err(Overflow) => assert_eq!(fin, i64::MAX),
            }
        }
        assert_eq!(fin, i64::MAX - 1 + after, "{mine:?} {theirs:?}");
    });
}

/// A fast add finds the value parked (at `i64::MAX`) while a `set(5)`
/// unparks it: the add either came first (overflow, final 5) or after (it saw
/// 5, final 6). Fails if the unpark does not wait for the add in flight to
/// be taken back (the set's 5 then loses it: the add sees 4).
#[test]
fn unpark_waits_for_fast_adds() {
    use crossinterp_core::atomic::{AtomicInt, Overflow};
    model("unpark_waits_for_fast_adds", None, || {
        let a = AtomicInt::new(i64::MAX);
        let b = a.clone();
        let t = thread::spawn(move || b.fetch_add(1));
        a.set(5);
        let r = t.join().unwrap();
        match r {
            Ok(old) => assert_eq!((old, a.get()), (5, 6)),
            Err(Overflow) => assert_eq!(a.get(), 5),
        }
    });
}

/// Concurrent adds and a compare-and-set: no update is lost.
#[test]
fn atomic_int_updates_not_lost() {
    use crossinterp_core::atomic::AtomicInt;
    model("atomic_int_updates_not_lost", None, || {
        let a = AtomicInt::new(0);
        let b = a.clone();
        let t = thread::spawn(move || {
            b.fetch_add(2).unwrap();
            b.fetch_update(|v| Ok::<_, ()>(v * 10)).unwrap()
        });
        a.fetch_sub(1).unwrap();
        t.join().unwrap();
        // Either (0 - 1 + 2) * 10 = 10, (0 + 2) * 10 - 1 = 19, or (0 + 2 - 1) * 10 = 10.
        assert!([10, 19].contains(&a.get()), "{}", a.get());
    });
}

/// A lent reference (a proxy's object) released by its handle's last drop in
/// another thread, racing the owner's finalization, which releases whatever
/// is still lent: released exactly once, always attached to the owner, and
/// never after the owner finalized.
#[test]
fn proxy_release_vs_owner_finalization() {
    use crossinterp_core::SharedRefs;

    struct Lent {
        refs: Arc<SharedRefs<usize>>,
        key: u64,
        released: Arc<AtomicUsize>,
        after_finalized: Arc<AtomicBool>,
        finalized: Arc<AtomicBool>,
    }
    impl Release for Lent {
        fn release(self, _attached: &Attached<'_>) {
            if self.refs.take(self.key).is_some() {
                if self.finalized.load(SeqCst) {
                    self.after_finalized.store(true, SeqCst);
                }
                self.released.fetch_add(1, SeqCst);
            }
        }
    }

    model("proxy_release_vs_owner_finalization", None, || {
        let reg = Registry::new();
        let owner = reg.register(1);
        let refs = Arc::new(SharedRefs::new());
        let released = Arc::new(AtomicUsize::new(0));
        let after = Arc::new(AtomicBool::new(false));
        let finalized = Arc::new(AtomicBool::new(false));
        let key = refs.insert(7usize);
        let handle = {
            let a = attach(owner.id());
            Handle::new(
                Lent {
                    refs: refs.clone(),
                    key,
                    released: released.clone(),
                    after_finalized: after.clone(),
                    finalized: finalized.clone(),
                },
                owner.view().clone(),
                &a,
            )
        };
        let dropper = thread::spawn(move || drop(handle));
        // The owner's finalization: finalize (drains pending releases), then
        // release what is still lent, then it is gone.
        let a = attach(owner.id());
        finalize_attached(owner, &a);
        for _ in refs.take_all() {
            released.fetch_add(1, SeqCst);
        }
        finalized.store(true, SeqCst);
        drop(a);
        dropper.join().unwrap();
        assert_eq!(released.load(SeqCst), 1, "released exactly once");
        assert!(!after.load(SeqCst), "released after the owner finalized");
        assert!(refs.is_empty());
    });
}
