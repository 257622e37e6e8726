//! Holding the engine still across `fork()`.
//!
//! `fork()` copies only the thread that calls it. Whatever another thread was
//! in the middle of stays half done in the child for good:
//! - a lock it held stays locked;
//! - a push or pop of a queue it had begun (its CAS done, its slot not yet
//!   stamped) is never finished, and the next call that meets that slot waits
//!   for it;
//! - the waits it had registered (a getter asleep on a queue, a receive's
//!   ticket on a channel) belong to a thread the child does not have: a put
//!   would wake a sleeper that is not there, a send hand its item to a
//!   receive that will never return it.
//!
//! The first call in the child that needs such a lock or slot then waits
//! forever. Seen (`fork/while_daemon_thread_blocked_in_get`, about one run in
//! 400, and 7 in 60 with threads churning timed gets): a queue's lock held by
//! a getter that had just woken for its interrupt check, taken again in the
//! child by `Interpreter.close`.
//!
//! So, just before the fork (the extension's `pthread_atfork` prepare
//! handler, on the forking thread), everything the child may use is *held*
//! ([`Held`]): each lock taken, each queue's ring shut with every call in
//! flight finished. Just after it, the parent releases all of it unchanged;
//! the child first forgets the threads it does not have (a queue's sleepers
//! and spinners, a channel's blocked receives and senders), then releases.
//!
//! Taking locks inside `fork()` while other threads run could deadlock: a
//! thread may hold one lock while it waits for another the forking thread
//! already took, or for the GIL, which the forking thread holds. So a hold is
//! only ever *tried*: when one fails, everything taken so far is released in
//! reverse order, the thread yields, and [`hold_all`] tries again, for at most
//! its patience; past that the fork goes on unheld, as it would without this
//! module (a child may then hang; the parent never does). Waiting for a
//! ring's calls in flight with its lock held is bounded: such a call is a few
//! instructions from done and never blocks.
//!
//! Ownership: the holds belong to the forking thread, from the prepare
//! handler to the parent's or the child's; they are not `Send`.

use crate::sync::{try_lock, Arc, MutexGuard};
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

/// Something held across a `fork()` (see the module doc).
pub trait Held {
    /// Let go of it, and hand back what kept it alive (an `Arc`), for
    /// [`release`] to drop once nothing is held any more. `in_child`: this
    /// is the child of the fork, which has only the forking thread: first
    /// forget every other thread registered as waiting in it.
    fn release(self: Box<Self>, in_child: bool) -> Garbage;
}

/// What a released hold kept alive (see [`Held::release`]). Dropping it
/// may be the last reference to a structure, whose items' drops may take
/// locks (a pending-call queue, a buffer pool) that a hold still held would
/// deadlock on; so it is dropped after every hold is released.
pub type Garbage = Option<Box<dyn std::any::Any>>;

/// Everything held for one fork, in the order it was taken.
pub type Holds = Vec<Box<dyn Held>>;

/// Release `holds` in reverse order (the last taken first), then drop what
/// they kept alive.
pub fn release(holds: Holds, in_child: bool) {
    let garbage: Vec<Garbage> = holds
        .into_iter()
        .rev()
        .map(|h| h.release(in_child))
        .collect();
    drop(garbage);
}

/// Keep `v` alive until every hold is released (see [`Garbage`]): for the
/// references a holder upgraded to reach the structures it holds.
pub fn keep<T: 'static>(holds: &mut Holds, v: T) {
    holds.push(Box::new(Keep(v)));
}

struct Keep<T>(T);

impl<T: 'static> Held for Keep<T> {
    fn release(self: Box<Self>, _in_child: bool) -> Garbage {
        Some(Box::new(self.0))
    }
}

/// Run `attempt` until it takes everything (it pushes each hold onto the
/// vector, and answers `false` as soon as one could not be taken), for at
/// most `patience`; `None` when it never did (nothing is held then).
pub fn hold_all(patience: Duration, mut attempt: impl FnMut(&mut Holds) -> bool) -> Option<Holds> {
    let start = Instant::now();
    let mut tries = 0u32;
    loop {
        let mut holds = Holds::new();
        if attempt(&mut holds) {
            return Some(holds);
        }
        release(holds, false);
        if start.elapsed() >= patience {
            return None;
        }
        tries += 1;
        // A lock holder on this CPU needs the CPU: yield; one that waits for
        // something this thread holds (the GIL) needs time: sleep a little.
        if tries < 64 {
            crate::sync::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// A `static` mutex, held.
struct StaticHeld<T: 'static>(#[allow(dead_code)] MutexGuard<'static, T>);

impl<T: 'static> Held for StaticHeld<T> {
    fn release(self: Box<Self>, _in_child: bool) -> Garbage {
        None
    }
}

/// Hold a `static` mutex: `false` (and nothing pushed) if it is taken.
pub fn hold_static<T: 'static>(holds: &mut Holds, m: &'static crate::sync::Mutex<T>) -> bool {
    hold_static_with(holds, m, |_| ()).is_some()
}

/// [`hold_static`], and what `read` makes of the data under the lock (e.g.
/// the members of a table, to hold each next); `None` if the lock is taken.
pub fn hold_static_with<T: 'static, R>(
    holds: &mut Holds,
    m: &'static crate::sync::Mutex<T>,
    read: impl FnOnce(&T) -> R,
) -> Option<R> {
    let g = try_lock(m)?;
    let r = read(&g);
    holds.push(Box::new(StaticHeld(g)));
    Some(r)
}

/// A mutex inside shared state, held; the `Arc` keeps it alive.
struct ArcHeld<O: 'static, T: 'static> {
    /// Borrows from `owner` (dropped first, in `drop`).
    guard: ManuallyDrop<MutexGuard<'static, T>>,
    /// `None` once `release` handed it back.
    owner: Option<Arc<O>>,
}

impl<O: 'static, T: 'static> Drop for ArcHeld<O, T> {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, while `owner` (moved out by `release`
        // only into the garbage, which is dropped after this) keeps the mutex
        // it borrows alive.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
    }
}

impl<O: 'static, T: 'static> Held for ArcHeld<O, T> {
    fn release(mut self: Box<Self>, _in_child: bool) -> Garbage {
        let owner = self.owner.take();
        drop(self);
        owner.map(|o| Box::new(o) as Box<dyn std::any::Any>)
    }
}

/// Hold the mutex `m` finds in `owner`: `false` (and nothing pushed) if it
/// is taken.
pub fn hold_in<O: 'static, T: 'static>(
    holds: &mut Holds,
    owner: &Arc<O>,
    m: impl FnOnce(&O) -> &crate::sync::Mutex<T>,
) -> bool {
    hold_in_with(holds, owner, m, |_| ()).is_some()
}

/// [`hold_in`], and what `read` makes of the data under the lock (e.g. the
/// members of a table, to hold each next); `None` if the lock is taken.
pub fn hold_in_with<O: 'static, T: 'static, R>(
    holds: &mut Holds,
    owner: &Arc<O>,
    m: impl FnOnce(&O) -> &crate::sync::Mutex<T>,
    read: impl FnOnce(&T) -> R,
) -> Option<R> {
    let owner = owner.clone();
    let g = try_lock(m(&owner))?;
    let r = read(&g);
    // SAFETY: the guard borrows a mutex inside `*owner`, which the `Arc`
    // stored next to it keeps alive (and in place) until after the guard is
    // dropped (`ArcHeld::drop`); the `'static` is never observed outside.
    let g = unsafe { std::mem::transmute::<MutexGuard<'_, T>, MutexGuard<'static, T>>(g) };
    holds.push(Box::new(ArcHeld {
        guard: ManuallyDrop::new(g),
        owner: Some(owner),
    }));
    Some(r)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{lock, Mutex};

    static POOL: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    /// Like a queue item whose drop gives a buffer back to a pool.
    struct GivesBack(u32);

    impl Drop for GivesBack {
        fn drop(&mut self) {
            lock(&POOL).push(self.0);
        }
    }

    /// A hold released first may have kept alive the last reference to
    /// something whose drop takes a lock a later-released hold still has:
    /// dropped during the release, it would deadlock (std's mutex is not
    /// re-entrant). It is dropped once everything is released.
    #[test]
    fn what_holds_kept_alive_is_dropped_after_every_lock_is_free() {
        let mut holds = Holds::new();
        assert!(hold_static(&mut holds, &POOL));
        keep(&mut holds, GivesBack(7));
        release(holds, false);
        assert_eq!(*lock(&POOL), vec![7]);
    }

    /// `hold_all` retries until every hold is taken, releasing the partial
    /// set between tries, and gives up after its patience.
    #[test]
    fn hold_all_retries_then_gives_up() {
        static A: Mutex<()> = Mutex::new(());
        let mut tries = 0;
        let held = hold_all(Duration::from_secs(5), |h| {
            tries += 1;
            tries >= 3 && hold_static(h, &A)
        });
        assert_eq!(tries, 3);
        let held = held.expect("taken on the third try");
        // Held: another hold of `A` is refused until patience runs out.
        let start = Instant::now();
        assert!(hold_all(Duration::from_millis(20), |h| hold_static(h, &A)).is_none());
        assert!(start.elapsed() >= Duration::from_millis(20));
        release(held, false);
        assert!(hold_all(Duration::from_millis(20), |h| hold_static(h, &A)).is_some());
    }
}
