//! [`Queue`]: a multi-producer, multi-consumer FIFO that belongs to no
//! interpreter — the engine behind PEP 734's `interpreters.Queue`.
//!
//! # Protocol
//!
//! One mutex guards the items, the `closed` flag and the wait accounting of both
//! sides; `not_empty` wakes getters, `not_full` wakes putters (bounded queues
//! only). Blocking calls follow the wait protocol of `crate::wait`: a
//! `Blocker` decides, each time the call finds it cannot proceed, whether its
//! deadline passed, whether the interrupt hook is due, or how long to wait.
//!
//! No lost wake-up (`put_get_wakeup`, `bounded_put_waits_for_get` models in
//! `tests/loom_queue.rs`): each side (getters, putters) has its own `Sleepers`,
//! kept under the queue's lock as `wait` describes. A blocked getter registers
//! as asleep in the critical section that found the queue empty, so a put
//! either ran before that check (the getter sees the item) or runs after and
//! sees the sleeper; a put that sees an asleep getter wakes one (`notify_one`
//! once it has unlocked), and further puts before that getter runs issue no
//! redundant futex wake. Nor does a put wake an asleep getter for an item a
//! getter already on its way will take (spinning with the lock released, or
//! woken and not yet running): each of those re-takes the lock and takes an
//! item before anything else (`spinning_getter_covers_put` model and stress
//! test). Putters are woken one per item taken (a get wakes one asleep
//! putter); `close`, `drain` and `remove_where` wake every sleeper of
//! the side they unblock.
//!
//! Spin, then park: a call that would sleep first releases the lock and backs
//! off (`wait::spin_until`) watching a lock-free hint of the queue's length and
//! `closed` flag, then re-takes the lock and re-checks; only then does it
//! register and sleep. When streaming through a full or empty queue, the other
//! side usually makes progress within that window, which saves a futex sleep
//! and wake-up per item. The hint is advisory (written under the lock, read
//! without it): the decision to sleep is always made under the lock.
//!
//! A woken getter always takes an item if there is one before it looks at its
//! deadline or hook, so a notification is never spent without effect while an
//! item waits; a getter that leaves empty-handed (deadline, hook) has found the
//! queue empty under the lock.
//!
//! Close: `close()` sets `closed` and wakes everyone. Puts are then refused
//! (handing the item back); gets keep draining the items already in the queue
//! and report [`GetError::Closed`] only once it is empty (`close_wakes_blocked_getter`).
//!
//! Nothing lost: an item is either in the queue, returned by a get, returned by
//! `drain`/`remove_where`, or handed back in a [`PutError`]. Items still in the
//! queue when its last clone drops are dropped with it, on that thread: the
//! extension drains the queue first when its items must be released in their
//! owners.
//!
//! Async waiters (`wait::Notify`): `watch(Side::Get, n)` registers a notifier
//! that every put and the close call (after unlocking), `watch(Side::Put, n)`
//! one that every get, `drain`, `remove_where` and the close call; a notifier
//! is not a sleeper and takes nothing: its owner re-tries with `try_get` /
//! `try_put` (`async_watch_*` tests below).
//!
//! # Why a mutex
//!
//! `Mutex<VecDeque>` plus two condition variables is checkable with loom end to
//! end and gives `close`, `remove_where` and the unbound-item policies a simple
//! linearization point. `benches/queue.rs` measures it against
//! crossbeam-channel.

pub use crate::error::{GetError, PutError};
use crate::id::next_id;
use crate::sync::DynArc;
use crate::sync::{lock, wait_timeout, Arc, AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
pub use crate::wait::INTERRUPT_CHECK_INTERVAL;
use crate::wait::{self, Blocker, Next, Notify, Sleepers, Watchers};
use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

/// Bit 63 of [`Shared::hint`]: the queue is closed.
const CLOSED_HINT: u64 = 1 << 63;

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Getters spinning with the lock released (`spin_until`), each about to
    /// re-take the lock and take an item if there is one.
    spinning_getters: usize,
    getters: Sleepers,
    putters: Sleepers,
    /// Notified when a get may proceed (a put, the close).
    get_watch: Watchers,
    /// Notified when a put may proceed (a get, `drain`, `remove_where`, the close).
    put_watch: Watchers,
}

/// Which side of a queue a notifier watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Getters: notified by puts and the close.
    Get,
    /// Putters: notified when room is made and by the close.
    Put,
}

impl<T> State<T> {
    fn watchers(&mut self, side: Side) -> &mut Watchers {
        match side {
            Side::Get => &mut self.get_watch,
            Side::Put => &mut self.put_watch,
        }
    }
}

struct Shared<T> {
    id: u64,
    /// 0: unbounded.
    maxsize: usize,
    state: Mutex<State<T>>,
    /// Getters wait here for an item or the close.
    not_empty: Condvar,
    /// Putters wait here for room or the close (bounded queues only).
    not_full: Condvar,
    /// The state summarized for waiters about to sleep: `items.len()`, with
    /// [`CLOSED_HINT`] once closed. Written only under the lock, after every
    /// change ([`Shared::publish`]); read without it ([`Shared::spin_until`]).
    hint: CachePadded<AtomicU64>,
}

impl<T> Shared<T> {
    /// Update the hint from the state (under the lock).
    fn publish(&self, g: &State<T>) {
        let closed = if g.closed { CLOSED_HINT } else { 0 };
        // Relaxed: the hint only tells a spinning waiter when to re-take the
        // lock; everything it then reads is published by the mutex. A stale
        // hint costs a useless re-check or the rest of the spin, never
        // correctness: the decision to sleep is made under the lock.
        self.hint
            .store(g.items.len() as u64 | closed, Ordering::Relaxed);
    }

    /// Before sleeping: spin, then yield, for a short bounded while until the
    /// hint says `ready` (or the steps run out). Called with no lock held; the
    /// caller then re-takes the lock and re-checks. Saves a futex sleep and
    /// wake-up per item when the other side is about to make progress (the
    /// common case when streaming through a full or empty queue).
    fn spin_until(&self, ready: impl Fn(u64) -> bool) {
        // Relaxed: see `publish`.
        wait::spin_until(|| ready(self.hint.load(Ordering::Relaxed)));
    }

    /// Whether a hint says a put may proceed (room, or closed: it will fail).
    fn put_ready(&self, hint: u64) -> bool {
        hint & CLOSED_HINT != 0 || self.has_room((hint & !CLOSED_HINT) as usize)
    }

    fn has_room(&self, len: usize) -> bool {
        self.maxsize == 0 || len < self.maxsize
    }

    /// Append under the lock, unlock, then wake one asleep getter if any.
    fn push(&self, mut g: MutexGuard<'_, State<T>>, item: T) {
        g.items.push_back(item);
        self.publish(&g);
        // Wake an asleep getter only for an item no getter on its way will
        // take: a spinning getter re-takes the lock and takes an item before
        // anything else, as does a woken one (`spinning_getter_covers_put`).
        // Waking one anyway costs a futex wake-up whose getter finds nothing,
        // and, with more threads than cores, the CPU the spinner needed.
        let covered = g.spinning_getters + g.getters.woken();
        let wake = g.items.len() > covered && g.getters.wake_one();
        let notify = g.get_watch.snapshot();
        drop(g);
        if wake {
            self.not_empty.notify_one();
        }
        wait::notify_all(notify);
    }

    /// Take the front item under the lock, unlock, then wake one asleep putter.
    fn pop(&self, mut g: MutexGuard<'_, State<T>>) -> Option<T> {
        let item = g.items.pop_front()?;
        self.publish(&g);
        let wake = g.putters.wake_one();
        let notify = g.put_watch.snapshot();
        drop(g);
        if wake {
            self.not_full.notify_one();
        }
        wait::notify_all(notify);
        Some(item)
    }

    /// After items left the queue other than by a get: wake every putter.
    fn room_made(&self, mut g: MutexGuard<'_, State<T>>) {
        self.publish(&g);
        let wake = g.putters.wake_all();
        let notify = g.put_watch.snapshot();
        drop(g);
        if wake {
            self.not_full.notify_all();
        }
        wait::notify_all(notify);
    }
}

/// A multi-producer, multi-consumer FIFO queue, optionally bounded.
///
/// Ownership: owned by no interpreter. Every clone shares the same queue (an
/// `Arc` inside); any method may be called from any thread, attached to any
/// interpreter or none. `Send + Sync` when `T: Send`. The interrupt hooks of
/// [`Queue::put`] and [`Queue::get`] run on the calling thread with no lock held,
/// so they may take the GIL.
///
/// Items are plain Rust values: the queue never runs Python code. Items left in
/// the queue are dropped with its last clone, on the thread that drops it.
pub struct Queue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Queue<T> {
    /// A new, empty, open queue holding at most `maxsize` items (0: unbounded).
    pub fn new(maxsize: usize) -> Self {
        Queue {
            shared: Arc::new(Shared {
                id: next_id(),
                maxsize,
                state: Mutex::new(State {
                    items: VecDeque::new(),
                    closed: false,
                    spinning_getters: 0,
                    getters: Sleepers::default(),
                    putters: Sleepers::default(),
                    get_watch: Watchers::default(),
                    put_watch: Watchers::default(),
                }),
                not_empty: Condvar::new(),
                not_full: Condvar::new(),
                hint: CachePadded::new(AtomicU64::new(0)),
            }),
        }
    }

    /// The queue's process-unique id (never reused; shared with channel ids).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The bound given at creation (0: unbounded).
    pub fn maxsize(&self) -> usize {
        self.shared.maxsize
    }

    /// Put `item` at the back if there is room right now.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        let sh = &*self.shared;
        let g = lock(&sh.state);
        if g.closed {
            return Err(PutError::Closed(item));
        }
        if !sh.has_room(g.items.len()) {
            return Err(PutError::Full(item));
        }
        sh.push(g, item);
        Ok(())
    }

    /// Put `item` at the back, waiting for room until `deadline` (`None`:
    /// forever).
    ///
    /// While blocked, `interrupted` is called every
    /// [`INTERRUPT_CHECK_INTERVAL`] with no lock held; when it returns `true`
    /// the put gives up with [`PutError::Interrupted`]. Room is tried before
    /// the deadline: a deadline in the past behaves like [`Queue::try_put`].
    /// Every error hands the item back.
    pub fn put(
        &self,
        item: T,
        deadline: Option<Instant>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), PutError<T>> {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        let mut blocker = Blocker::new(deadline, interrupted);
        let mut spun = false;
        loop {
            if g.closed {
                return Err(PutError::Closed(item));
            }
            if sh.has_room(g.items.len()) {
                sh.push(g, item);
                return Ok(());
            }
            match blocker.next() {
                Next::Expired => return Err(PutError::Full(item)),
                Next::Hook => {
                    drop(g);
                    if blocker.run_hook() {
                        return Err(PutError::Interrupted(item));
                    }
                    g = lock(&sh.state);
                }
                Next::Wait(_) if !spun => {
                    spun = true;
                    drop(g);
                    sh.spin_until(|h| sh.put_ready(h));
                    g = lock(&sh.state);
                }
                Next::Wait(d) => {
                    g.putters.sleep();
                    g = wait_timeout(&sh.not_full, g, d);
                    g.putters.awake();
                    blocker.waited();
                    spun = false;
                }
            }
        }
    }

    /// Take the front item if there is one right now. An empty closed queue
    /// reports [`GetError::Closed`], an empty open one [`GetError::Empty`].
    pub fn try_get(&self) -> Result<T, GetError> {
        let sh = &*self.shared;
        let g = lock(&sh.state);
        let closed = g.closed;
        sh.pop(g).ok_or(if closed {
            GetError::Closed
        } else {
            GetError::Empty
        })
    }

    /// Take the front item, waiting for one until `deadline` (`None`: forever).
    ///
    /// After [`Queue::close`], items still queued are returned first; then
    /// [`GetError::Closed`]. A deadline that passes gives [`GetError::Empty`].
    /// While blocked, `interrupted` is called every [`INTERRUPT_CHECK_INTERVAL`]
    /// with no lock held; `true` gives [`GetError::Interrupted`] and no item is
    /// taken. An item that is there is taken before the deadline is looked at.
    pub fn get(
        &self,
        deadline: Option<Instant>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<T, GetError> {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        let mut blocker = Blocker::new(deadline, interrupted);
        let mut spun = false;
        loop {
            if !g.items.is_empty() {
                // `pop` cannot fail: checked non-empty under this lock.
                return sh.pop(g).ok_or(GetError::Empty);
            }
            if g.closed {
                return Err(GetError::Closed);
            }
            match blocker.next() {
                Next::Expired => return Err(GetError::Empty),
                Next::Hook => {
                    drop(g);
                    if blocker.run_hook() {
                        return Err(GetError::Interrupted);
                    }
                    g = lock(&sh.state);
                }
                Next::Wait(_) if !spun => {
                    spun = true;
                    // Counted as on its way until it has re-taken the lock
                    // and looked at the items again (see `push`).
                    g.spinning_getters += 1;
                    drop(g);
                    // Ready: an item, or closed.
                    sh.spin_until(|h| h != 0);
                    g = lock(&sh.state);
                    g.spinning_getters -= 1;
                }
                Next::Wait(d) => {
                    g.getters.sleep();
                    g = wait_timeout(&sh.not_empty, g, d);
                    g.getters.awake();
                    blocker.waited();
                    spun = false;
                }
            }
        }
    }

    /// Items in the queue now (a snapshot).
    pub fn len(&self) -> usize {
        lock(&self.shared.state).items.len()
    }

    /// Whether the queue holds no item now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is bounded and at its bound now (a snapshot).
    pub fn is_full(&self) -> bool {
        !self.shared.has_room(self.len())
    }

    /// Close the queue: further puts are refused, gets drain what is left and
    /// then report [`GetError::Closed`]; every blocked call wakes. Returns
    /// whether this call closed it (`false`: it was already closed).
    pub fn close(&self) -> bool {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        if g.closed {
            return false;
        }
        g.closed = true;
        sh.publish(&g);
        let wake_getters = g.getters.wake_all();
        let wake_putters = g.putters.wake_all();
        let mut notify = g.get_watch.snapshot();
        notify.extend(g.put_watch.snapshot());
        drop(g);
        wait::notify_all(notify);
        if wake_getters {
            sh.not_empty.notify_all();
        }
        if wake_putters {
            sh.not_full.notify_all();
        }
        true
    }

    /// Whether [`Queue::close`] was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }

    /// Remove every item for which `f` returns `true` and return them in queue
    /// order; the others keep their order. Blocked putters are woken if room
    /// was made.
    ///
    /// `f` runs under the queue's lock, once per item, before anything changes:
    /// it must be quick and must not use this queue (that would deadlock). If it
    /// panics, the queue is left untouched.
    pub fn remove_where(&self, mut f: impl FnMut(&T) -> bool) -> Vec<T> {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        // Ask about every item first, so a panicking `f` changes nothing.
        let marks: Vec<bool> = g.items.iter().map(&mut f).collect();
        let n = marks.iter().filter(|&&m| m).count();
        if n == 0 {
            return Vec::new();
        }
        let mut removed = Vec::with_capacity(n);
        let mut kept = VecDeque::with_capacity(g.items.len() - n);
        for (item, remove) in std::mem::take(&mut g.items).into_iter().zip(marks) {
            if remove {
                removed.push(item);
            } else {
                kept.push_back(item);
            }
        }
        g.items = kept;
        sh.room_made(g);
        removed
    }

    /// Call `f` on every item in queue order, in place (e.g. to mark the items
    /// of an interpreter that died). `f` runs under the queue's lock: it must be
    /// quick and must not use this queue. If it panics, the items it already
    /// visited keep its changes.
    pub fn for_each_mut(&self, f: impl FnMut(&mut T)) {
        lock(&self.shared.state).items.iter_mut().for_each(f);
    }

    /// Remove and return every item, in queue order; blocked putters wake.
    pub fn drain(&self) -> Vec<T> {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        let items: Vec<T> = std::mem::take(&mut g.items).into();
        if !items.is_empty() {
            sh.room_made(g);
        }
        items
    }

    /// Register a notifier for one side (see [`Notify`]): called, with no lock
    /// held, after every change that may let a call of that side proceed. The
    /// returned token un-registers it ([`Queue::unwatch`]). Register, then
    /// re-try (`try_get`/`try_put`): no change is missed.
    pub fn watch(&self, side: Side, n: DynArc<dyn Notify>) -> u64 {
        lock(&self.shared.state).watchers(side).add(n)
    }

    /// Un-register a notifier; `false` if the token is not registered.
    pub fn unwatch(&self, side: Side, token: u64) -> bool {
        lock(&self.shared.state).watchers(side).remove(token)
    }

    /// Notifiers registered on one side now (a snapshot, for tests).
    pub fn watchers(&self, side: Side) -> usize {
        lock(&self.shared.state).watchers(side).len()
    }

    /// Threads blocked in [`Queue::get`] now (a snapshot, for tests and
    /// diagnostics).
    pub fn blocked_getters(&self) -> usize {
        lock(&self.shared.state).getters.blocked()
    }

    /// Threads blocked in [`Queue::put`] now (a snapshot, for tests and
    /// diagnostics).
    pub fn blocked_putters(&self) -> usize {
        lock(&self.shared.state).putters.blocked()
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = lock(&self.shared.state);
        f.debug_struct("Queue")
            .field("id", &self.shared.id)
            .field("maxsize", &self.shared.maxsize)
            .field("len", &g.items.len())
            .field("closed", &g.closed)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl Notify for Count {
        fn notify(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn async_watch_get_side() {
        let q = Queue::<u32>::new(0);
        let c = DynArc::new(Count(AtomicUsize::new(0)));
        let t = q.watch(Side::Get, c.clone());
        assert_eq!(q.watchers(Side::Get), 1);
        q.try_put(1).ok();
        q.try_put(2).ok();
        assert_eq!(c.0.load(Ordering::Relaxed), 2);
        // A get notifies the put side only.
        assert_eq!(q.try_get().ok(), Some(1));
        assert_eq!(c.0.load(Ordering::Relaxed), 2);
        q.close();
        assert_eq!(c.0.load(Ordering::Relaxed), 3);
        assert!(q.unwatch(Side::Get, t));
        assert!(!q.unwatch(Side::Get, t));
        assert_eq!(q.watchers(Side::Get), 0);
    }

    #[test]
    fn async_watch_put_side() {
        let q = Queue::<u32>::new(1);
        let c = DynArc::new(Count(AtomicUsize::new(0)));
        let t = q.watch(Side::Put, c.clone());
        q.try_put(1).ok();
        assert_eq!(c.0.load(Ordering::Relaxed), 0);
        q.try_get().ok();
        assert_eq!(c.0.load(Ordering::Relaxed), 1);
        q.try_put(2).ok();
        assert_eq!(q.drain(), vec![2]);
        assert_eq!(c.0.load(Ordering::Relaxed), 2);
        q.unwatch(Side::Put, t);
        q.try_put(3).ok();
        q.try_get().ok();
        assert_eq!(c.0.load(Ordering::Relaxed), 2);
    }
}
