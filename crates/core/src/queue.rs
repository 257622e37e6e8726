//! [`Queue`]: a multi-producer, multi-consumer FIFO that belongs to no
//! interpreter — the engine behind PEP 734's `interpreters.Queue`.
//!
//! # Protocol
//!
//! The items live outside the lock, in a lock-free ring of our own
//! (`crate::ring`: Vyukov's bounded MPMC ring, growing for unbounded queues
//! and large bounds, with this queue's flags folded into its two index
//! words; under loom the same code on loom atomics). One mutex guards the
//! rest: the `closed` flag, the wait accounting of both sides and the async
//! watchers; each sleeping getter or putter waits on a condition variable of
//! its own, and a change wakes the side's most recent sleeper first
//! (`wait::Sleepers`: why). Blocking
//! calls follow the wait protocol of `crate::wait`: a `Blocker` decides, each
//! time the call finds it cannot proceed, whether its deadline passed,
//! whether the interrupt hook is due, or how long to wait.
//!
//! Fast path: a put is one CAS of the ring's `tail` word (a get: of `head`),
//! on the producers' (consumers') own cache line; everything else it does is
//! plain loads and stores. Besides the position, the word holds flags:
//! `EXCL` (an exclusive operation or a growth is under way: the call takes
//! the locked path instead), `CLOSED` (tail), `SLEEPERS` (a thread of the
//! other side is asleep) and `WATCHERS` (the other side has async
//! notifiers). The CAS that claims a position replaces a word holding the
//! flags; only when it held `SLEEPERS` or `WATCHERS` does the call take the
//! lock, to wake one sleeper and notify the watchers. So a stream with nobody
//! asleep never takes the lock. A fast call also takes the locked path when
//! the ring must grow, or when a call in flight on its slot (a push that
//! claimed the head position and is writing it, a pop still moving the
//! previous lap's item out) outlasts a few spin steps: under the lock it
//! waits for it as long as it takes (it never blocks).
//!
//! No lost wake-up (`put_vs_sleeping_getter_flag`,
//! `get_vs_sleeping_putter_flag`, `put_get_wakeup`, `bounded_put_waits_for_get`
//! models in `tests/loom_queue.rs`): a getter that would sleep registers in
//! its `Sleepers` under the lock, raises `SLEEPERS` on `tail` (an AcqRel RMW)
//! and only then re-checks the items. A fast put claims its position with a
//! CAS of the same word. The two RMWs are ordered in that word's modification
//! order: if the put's comes first, the getter's RMW reads a tail past the
//! item and its re-check takes it (waiting for its stamp if the put is still
//! writing it: a pop answers empty only when the tail is at its head,
//! `pop_sees_in_flight_push_not_empty` in `tests/loom_ring.rs`); otherwise
//! the put's CAS replaces a word holding `SLEEPERS` and the put takes the
//! lock to wake it. The putter side mirrors it on `head`. A put that sees an
//! asleep getter wakes one (`notify_one` once it has unlocked), and further
//! puts before that getter runs issue no redundant futex wake. Nor does a put
//! wake an asleep getter for an item a getter already on its way will take
//! (spinning with the lock released, or woken and not yet running): each of
//! those re-takes the lock and takes an item before anything else
//! (`spinning_getter_covers_put` model and stress test); items a fast get
//! takes meanwhile leave no item waiting. `close`, `drain` and `remove_where`
//! wake every sleeper of the side they unblock.
//!
//! Spin, then park: a call that would sleep first releases the lock and backs
//! off (`wait::WaitClock`) watching the ring's length and a closed hint,
//! then re-takes the lock and re-checks; only then does it register and
//! sleep. When streaming through a full or empty queue, the other side
//! usually makes progress within that window, which saves a futex sleep and
//! wake-up per item. The hints are advisory: the decision to sleep is made
//! under the lock.
//!
//! A woken getter always takes an item if there is one before it looks at its
//! deadline or hook, so a notification is never spent without effect while an
//! item waits; a getter that leaves empty-handed (deadline, hook) has found the
//! queue empty under the lock.
//!
//! Exclusive mode (`drain`, `remove_where`, `for_each_mut`;
//! `remove_where_vs_fast_put` model and stress test): under the lock, set
//! `EXCL` on `tail`, then on `head`, and wait for the pushes in flight (each
//! position between the head and the tail read then has its stamp). From
//! those RMWs on, every fast CAS of an older word fails and every call that
//! reads the new one takes the locked path, where it waits for the lock. The
//! operation then works on the items in place, O(items): `for_each_mut`
//! mutates them, `drain` takes them all, `remove_where` takes the marked ones
//! and compacts the survivors towards the tail, keeping their order (so the
//! positions still only move forward). It re-opens the words as it ends (also
//! if its callback panics). So it is atomic with respect to puts and gets, as
//! under a single lock. `len` reads both positions at one instant, or, while
//! `head` is shut, under the lock (`len_vs_exclusive`).
//!
//! Close (`close_wakes_blocked_getter`, `close_vs_fast_put`): `close()` shuts
//! `tail` for good (`EXCL | CLOSED`) under the lock and sets `closed`, then
//! wakes everyone. Puts are then refused (handing the item back); gets keep
//! draining the items already in the queue and report [`GetError::Closed`]
//! only once they find it empty under the lock, after `closed` was set: a
//! put whose CAS came before the close's RMW is in the tail, and a pop
//! answers empty only at the tail (waiting for a put still writing).
//!
//! Bounded: a push refuses at `maxsize` (the ring checks its position against
//! a cached head, refreshed before it answers full), so the bound is never
//! exceeded; the ring starts small and doubles up to the bound rounded up to
//! a power of two (`grow_vs_fast_push`: a generation in the index words makes
//! a call that loaded the old ring fail its CAS). Nothing lost: an item is
//! either in the queue, returned by a get, returned by `drain`/`remove_where`,
//! or handed back in a [`PutError`]. Items still in the queue when its last
//! clone drops are dropped with it, on that thread: the extension drains the
//! queue first when its items must be released in their owners.
//!
//! Async waiters (`wait::Notify`): `watch(Side::Get, n)` registers a notifier
//! that every put and the close call (after unlocking), `watch(Side::Put, n)`
//! one that every get, `drain`, `remove_where` and the close call; a notifier
//! is not a sleeper and takes nothing: its owner re-tries with `try_get` /
//! `try_put` (`async_watch_*` tests below). Registering raises `WATCHERS` on
//! the index word of the side whose calls must notify it (the same RMW
//! pairing as a sleeper: `async_watch_then_retry_vs_put`), so fast calls take
//! the lock to notify while any notifier is registered.
//!
//! # Why a mutex (and why not only a mutex)
//!
//! Until the lock-free FIFO, one `Mutex<VecDeque>` guarded the items too:
//! simple to check with loom and a single linearization point for
//! everything, but every put and get took the lock, and the producer and
//! consumer bounced its cache line and contended on it (profiled with
//! `perf`: ~85% of `put`/`get`'s samples on the lock's atomic ops). The mutex
//! is kept for what is rare and needs a single order: sleeping and waking,
//! close, growth, the exclusive operations and the watchers.
//!
//! What is left of the lock-free path's cost: one CAS of the caller's index
//! word, a stamp load and store, and no lock unless a sleeper or watcher is
//! flagged. `benches/queue.rs` measures it against crossbeam-channel, which
//! makes the same one locked RMW per call (its disconnect mark lives in its
//! tail index too). 2026-12-01, commit 407ebb2, AMD EPYC (2 vCPUs, load
//! average 1.1-1.6 from other users), 31 interleaved pairs, ns per item
//! ours / crossbeam (ratio), two runs: SPSC bounded 1024 19.9 / 29.2 (0.68)
//! and 26.8 / 24.9 (1.08); SPSC unbounded 14.2 / 20.7 (0.69) and 23.9 / 23.4
//! (1.02); 2Px2C bounded 1024 28.4 / 33.4 (0.85) and 33.1 / 39.8 (0.83);
//! 2Px2C unbounded 20.8 / 28.6 (0.73) and 19.9 / 29.1 (0.68). The FIFO it
//! replaced (crossbeam-queue behind two gate RMWs), same session: 1.16,
//! 1.91, 1.98, 1.71. SPSC unbounded was the hard row: the producer outruns
//! the consumer and the ring grows under the lock; it ran at 1.18-1.65 while
//! each new ring's stamps were written in full (faulting in its fresh pages
//! with both sides waiting), and at 0.60-1.02 once a new ring started all
//! zero (see `crate::ring`).

pub use crate::error::{GetError, PutError};
use crate::id::next_id;
use crate::ring::{Excl, Pop, Push, Ring, SLEEPERS, WATCHERS};
use crate::sync::DynArc;
use crate::sync::{lock, wait_timeout, Arc, AtomicBool, Mutex};
use crate::sync::{MutexGuard, Ordering};
pub use crate::wait::INTERRUPT_CHECK_INTERVAL;
use crate::wait::{self, Blocker, Next, Notify, Sleepers, WaitClock, Watchers};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::mem::ManuallyDrop;
use std::time::Instant;

struct State {
    closed: bool,
    /// Getters spinning with the lock released (`WaitClock::spin`), each about to
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

impl State {
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
    /// The items (lock-free; see the module doc), with the fast path's flags
    /// in its index words: `tail` holds `CLOSED`, `SLEEPERS` (getters
    /// asleep), `WATCHERS` (`Side::Get` notifiers); `head` holds `SLEEPERS`
    /// (putters asleep) and `WATCHERS` (`Side::Put` notifiers).
    items: Ring<T>,
    /// Set by `close`: what spinning waiters watch (advisory, read without the
    /// lock), on a line of its own so that their loads do not pull the index
    /// words away from the side that writes them.
    closed_hint: CachePadded<AtomicBool>,
    state: Mutex<State>,
}

impl<T> Shared<T> {
    fn has_room(&self, len: usize) -> bool {
        self.maxsize == 0 || len < self.maxsize
    }

    /// Keep `tail`'s [`SLEEPERS`] and `head`'s in step with the
    /// sleepers (under the lock, after a wake-up claimed some).
    fn sync_flags(&self, g: &State) {
        if g.getters.asleep() == 0 {
            self.items.lower(true, SLEEPERS);
        }
        if g.putters.asleep() == 0 {
            self.items.lower(false, SLEEPERS);
        }
    }

    /// After a push (fast, having read `tail`'s flags, or under the
    /// lock): wake one asleep getter if no getter on its way covers the items,
    /// then notify the `Side::Get` watchers (after unlocking).
    fn pushed(&self, mut g: MutexGuard<'_, State>) {
        // Wake an asleep getter only for an item no getter on its way will
        // take: a spinning getter re-takes the lock and takes an item before
        // anything else, as does a woken one (`spinning_getter_covers_put`).
        // The count includes this push's item and every item this thread
        // has seen pushed and not popped (it may count items popped since:
        // a wake-up for nothing, never one missed).
        let covered = g.spinning_getters + g.getters.woken();
        let wake = if self.items.len_seen() > covered {
            g.getters.wake_one()
        } else {
            None
        };
        if wake.is_some() {
            self.sync_flags(&g);
        }
        let notify = g.get_watch.snapshot();
        drop(g);
        wait::ring(wake);
        wait::notify_all(notify);
    }

    /// After a pop: wake one asleep putter, notify the `Side::Put` watchers.
    fn popped(&self, mut g: MutexGuard<'_, State>) {
        let wake = g.putters.wake_one();
        if wake.is_some() {
            self.sync_flags(&g);
        }
        let notify = g.put_watch.snapshot();
        drop(g);
        wait::ring(wake);
        wait::notify_all(notify);
    }

    /// After items left the queue other than by a get: wake every putter.
    fn room_made(&self, mut g: MutexGuard<'_, State>) {
        let wake = g.putters.wake_all();
        self.sync_flags(&g);
        let notify = g.put_watch.snapshot();
        drop(g);
        wait::ring(wake);
        wait::notify_all(notify);
    }

    /// Items now, with the lock held (no exclusive operation or growth runs:
    /// they hold it, so the ring is open).
    fn len_locked(&self) -> usize {
        self.items
            .len()
            .expect("the ring is open while the queue's lock is held")
    }

    /// A put without the lock: `Ok(Ok)` done, `Ok(Err)` full (item handed
    /// back), `Err` take the locked path (closed, an exclusive operation,
    /// or the ring must grow).
    #[inline]
    fn fast_put(&self, item: T) -> Result<Result<(), T>, T> {
        match self.items.push(item) {
            Push::Done(flags) => {
                if flags & (SLEEPERS | WATCHERS) != 0 {
                    self.pushed(lock(&self.state));
                }
                Ok(Ok(()))
            }
            Push::Full(item) => Ok(Err(item)),
            Push::Grow(item) | Push::Shut(item) => Err(item),
        }
    }

    /// A push under the lock, the queue open: `Err` full (item handed back).
    fn locked_push(&self, item: T) -> Result<(), T> {
        // SAFETY: the caller holds `state`'s lock, the one that serializes
        // the ring's growth, exclusive operations and close.
        match unsafe { self.items.push_locked(item) } {
            Push::Done(_) => Ok(()),
            Push::Full(item) => Err(item),
            // Unreachable: with the lock held and `closed` false, `tail` is
            // open (only the close and exclusive operations, under the lock,
            // shut it) and `push_locked` grows instead of answering `Grow`.
            Push::Grow(item) | Push::Shut(item) => Err(item),
        }
    }

    /// A pop under the lock (no exclusive operation runs: `head` is open).
    fn locked_pop(&self) -> Option<T> {
        match self.items.pop_locked() {
            Pop::Item(item, _) => Some(item),
            Pop::Empty | Pop::Shut => None,
        }
    }

    /// A get without the lock: `Ok(Some)` an item, `Ok(None)` empty now,
    /// `Err` the ring's head is shut: take the locked path.
    #[inline]
    fn fast_get(&self) -> Result<Option<T>, ()> {
        match self.items.pop() {
            Pop::Item(item, flags) => {
                if flags & (SLEEPERS | WATCHERS) != 0 {
                    self.popped(lock(&self.state));
                }
                Ok(Some(item))
            }
            Pop::Empty => Ok(None),
            Pop::Shut => Err(()),
        }
    }

    /// Under the lock: shut both index words and wait out the pushes in
    /// flight; the items are then this operation's, in place, until the
    /// returned guard drops (also on a panic), which re-opens them.
    fn exclusive<'a>(&'a self, g: MutexGuard<'a, State>) -> Exclusive<'a, T> {
        Exclusive {
            // SAFETY: `g` is the lock, held for the guard's whole life
            // (`Exclusive` drops `ex` before `g`).
            ex: unsafe { self.items.exclusive() },
            g,
        }
    }
}

/// The exclusive mode of `drain`, `remove_where` and `for_each_mut`: the lock
/// held and the ring shut. Fields drop in order: the ring re-opens (the tail
/// stays shut if closed), then the lock is released.
struct Exclusive<'a, T> {
    ex: Excl<'a, T>,
    g: MutexGuard<'a, State>,
}

impl<'a, T> Exclusive<'a, T> {
    /// Re-open the ring; the lock stays held.
    fn finish(self) -> MutexGuard<'a, State> {
        let Exclusive { ex, g } = self;
        drop(ex);
        g
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
                items: Ring::new(maxsize),
                closed_hint: CachePadded::new(AtomicBool::new(false)),
                state: Mutex::new(State {
                    closed: false,
                    spinning_getters: 0,
                    getters: Sleepers::default(),
                    putters: Sleepers::default(),
                    get_watch: Watchers::default(),
                    put_watch: Watchers::default(),
                }),
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
        // `Full` straight from the lock-free path is linearizable: the ring
        // answers it when the tail word it read was open (no exclusive
        // operation under way, not closed: `close` shuts that word) and the
        // head it read after it was `maxsize` behind that tail (heads only
        // move on, so the queue held `maxsize` items when the tail was read).
        // `try_get`'s `Empty` is decided under the lock below.
        let item = match sh.fast_put(item) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(item)) => return Err(PutError::Full(item)),
            Err(item) => item,
        };
        // The tail is shut (closed, or an exclusive operation: wait for it on
        // the lock), the ring must grow, or a pop in flight outlasted the
        // fast path's wait.
        let g = lock(&sh.state);
        if g.closed {
            return Err(PutError::Closed(item));
        }
        match sh.locked_push(item) {
            Ok(()) => {
                sh.pushed(g);
                Ok(())
            }
            Err(item) => Err(PutError::Full(item)),
        }
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
        let mut item = match sh.fast_put(item) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(item)) | Err(item) => item,
        };
        let mut g = lock(&sh.state);
        let mut blocker = Blocker::new(deadline, interrupted);
        let mut spun = false;
        let mut clock = WaitClock::new();
        loop {
            if g.closed {
                return Err(PutError::Closed(item));
            }
            // Under the lock no exclusive operation runs and `closed` is
            // false: the ring's tail is open (and it may grow here).
            item = match sh.locked_push(item) {
                Ok(()) => {
                    sh.pushed(g);
                    clock.done();
                    return Ok(());
                }
                Err(item) => item,
            };
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
                    // Relaxed loads: advisory, the decision is made under the lock.
                    clock.spin(|| {
                        sh.closed_hint.load(Ordering::Relaxed) || sh.has_room(sh.items.len_seen())
                    });
                    g = lock(&sh.state);
                }
                Next::Wait(d) => {
                    let bell = g.putters.sleep();
                    // Register, then re-check (see the module doc).
                    sh.items.raise(false, SLEEPERS);
                    item = match sh.locked_push(item) {
                        Ok(()) => {
                            g.putters.awake(&bell);
                            sh.sync_flags(&g);
                            sh.pushed(g);
                            clock.done();
                            return Ok(());
                        }
                        Err(item) => item,
                    };
                    clock.sleeping();
                    g = wait_timeout(&bell, g, d);
                    g.putters.awake(&bell);
                    sh.sync_flags(&g);
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
        if let Ok(Some(item)) = sh.fast_get() {
            return Ok(item);
        }
        // Empty (or `head` shut): decide under the lock, where `closed`
        // means no put is in flight (see `close`).
        let g = lock(&sh.state);
        match sh.locked_pop() {
            Some(item) => {
                sh.popped(g);
                Ok(item)
            }
            None if g.closed => Err(GetError::Closed),
            None => Err(GetError::Empty),
        }
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
        if let Ok(Some(item)) = sh.fast_get() {
            return Ok(item);
        }
        let mut g = lock(&sh.state);
        let mut blocker = Blocker::new(deadline, interrupted);
        let mut spun = false;
        let mut clock = WaitClock::new();
        loop {
            // Under the lock no exclusive operation runs: `head` is open.
            if let Some(item) = sh.locked_pop() {
                sh.popped(g);
                clock.done();
                return Ok(item);
            }
            if g.closed {
                // `close` waited out the fast puts in flight before setting
                // `closed` under this lock: the queue is empty for good.
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
                    // and looked at the items again (see `pushed`).
                    g.spinning_getters += 1;
                    drop(g);
                    // Ready: an item, or closed. Relaxed: advisory, the
                    // decision is made under the lock.
                    clock
                        .spin(|| sh.items.len_seen() > 0 || sh.closed_hint.load(Ordering::Relaxed));
                    g = lock(&sh.state);
                    g.spinning_getters -= 1;
                }
                Next::Wait(d) => {
                    let bell = g.getters.sleep();
                    // Register, then re-check (see the module doc).
                    sh.items.raise(true, SLEEPERS);
                    if let Some(item) = sh.locked_pop() {
                        g.getters.awake(&bell);
                        sh.sync_flags(&g);
                        sh.popped(g);
                        clock.done();
                        return Ok(item);
                    }
                    clock.sleeping();
                    g = wait_timeout(&bell, g, d);
                    g.getters.awake(&bell);
                    sh.sync_flags(&g);
                    blocker.waited();
                    spun = false;
                }
            }
        }
    }

    /// Items in the queue now (a snapshot).
    pub fn len(&self) -> usize {
        let sh = &*self.shared;
        // Exact: both positions at one instant. While an exclusive operation
        // (or a growth) has the ring shut, read under the lock, which it
        // releases only once done (`len_vs_exclusive`).
        match sh.items.len() {
            Some(n) => n,
            None => {
                let _g = lock(&sh.state);
                sh.len_locked()
            }
        }
    }

    /// Whether the queue holds no item now (a snapshot; see [`Queue::len`]).
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
        // Shut `tail` for good: a fast put either claimed its position before
        // (its item is below the tail, and a get waits for it if it is still
        // being written) or is refused (`close_vs_fast_put`).
        // SAFETY: the lock is held.
        unsafe { sh.items.close() };
        g.closed = true;
        // Relaxed: advisory (spinners re-check under the lock).
        sh.closed_hint.store(true, Ordering::Relaxed);
        let wake_getters = g.getters.wake_all();
        let wake_putters = g.putters.wake_all();
        sh.sync_flags(&g);
        let mut notify = g.get_watch.snapshot();
        notify.extend(g.put_watch.snapshot());
        drop(g);
        wait::notify_all(notify);
        wait::ring(wake_getters);
        wait::ring(wake_putters);
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
    pub fn remove_where(&self, f: impl FnMut(&T) -> bool) -> Vec<T> {
        let sh = &*self.shared;
        let mut ex = sh.exclusive(lock(&sh.state));
        // Ask about every item first, so a panicking `f` changes nothing (the
        // guard re-opens the ring as it was).
        let marks: Vec<bool> = ex.ex.map(f);
        if !marks.contains(&true) {
            drop(ex.finish());
            return Vec::new();
        }
        // In place: the survivors keep their order, compacted towards the tail.
        let removed = ex.ex.remove_marked(&marks);
        sh.room_made(ex.finish());
        removed
    }

    /// Call `f` on every item in queue order, in place (e.g. to mark the items
    /// of an interpreter that died). `f` runs under the queue's lock: it must be
    /// quick and must not use this queue. If it panics, the items it already
    /// visited keep its changes.
    pub fn for_each_mut(&self, f: impl FnMut(&mut T)) {
        let sh = &*self.shared;
        let mut ex = sh.exclusive(lock(&sh.state));
        ex.ex.for_each_mut(f);
        drop(ex.finish());
    }

    /// Remove and return every item, in queue order; blocked putters wake.
    pub fn drain(&self) -> Vec<T> {
        let sh = &*self.shared;
        let mut ex = sh.exclusive(lock(&sh.state));
        let items = ex.ex.drain();
        let g = ex.finish();
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
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        let token = g.watchers(side).add(n);
        // The index word whose fast calls notify this side; their CASes and
        // this RMW order the re-try after every call that did not see the
        // watcher (it sees their positions, see the module doc).
        self.shared.items.raise(Self::watch_tail(side), WATCHERS);
        token
    }

    /// Whether the index word whose fast calls notify `side` is the tail.
    fn watch_tail(side: Side) -> bool {
        side == Side::Get
    }

    /// Un-register a notifier; `false` if the token is not registered.
    pub fn unwatch(&self, side: Side, token: u64) -> bool {
        let mut g = lock(&self.shared.state);
        let w = g.watchers(side);
        let removed = w.remove(token);
        if w.len() == 0 {
            self.shared.items.lower(Self::watch_tail(side), WATCHERS);
        }
        removed
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

impl<T: 'static> Queue<T> {
    /// Hold this queue across a `fork()` ([`crate::fork`]): its lock taken
    /// and its ring shut with no push or pop in flight. `false`, and nothing
    /// pushed onto `holds`, if the lock is taken (never waits for it).
    pub fn fork_hold(&self, holds: &mut crate::fork::Holds) -> bool {
        let shared = self.shared.clone();
        let Some(g) = crate::sync::try_lock(&shared.state) else {
            return false;
        };
        // SAFETY: the guard borrows `shared`, which `QueueHeld` keeps
        // alive (and in place) until after it dropped the guard.
        let g =
            unsafe { std::mem::transmute::<MutexGuard<'_, State>, MutexGuard<'static, State>>(g) };
        // SAFETY: the lock is held, for the whole life of the exclusive mode
        // (`QueueHeld::drop` ends it first).
        let ex = unsafe { shared.items.quiesce() };
        // SAFETY: as for the guard.
        let ex = unsafe { std::mem::transmute::<Excl<'_, T>, Excl<'static, T>>(ex) };
        holds.push(Box::new(QueueHeld {
            ex: ManuallyDrop::new(ex),
            g: ManuallyDrop::new(g),
            shared: Some(shared),
        }));
        true
    }

    /// Calls in flight in the ring now (a diagnostic for the fork models
    /// and stress tests: none while the queue is held).
    ///
    /// # Safety
    /// The caller holds this queue ([`Queue::fork_hold`]), so its lock.
    #[doc(hidden)]
    pub unsafe fn calls_in_flight(&self) -> usize {
        // SAFETY: the caller's contract: the lock is held.
        unsafe { self.shared.items.in_flight() }
    }
}

/// A queue held across a `fork()` (see [`Queue::fork_hold`]).
struct QueueHeld<T: 'static> {
    /// Borrows `shared` and needs `g` held: dropped first.
    ex: ManuallyDrop<Excl<'static, T>>,
    /// Borrows `shared`: dropped second.
    g: ManuallyDrop<MutexGuard<'static, State>>,
    /// `None` once `release` handed it back (as garbage, dropped after
    /// this; see `fork::Garbage`).
    shared: Option<Arc<Shared<T>>>,
}

impl<T: 'static> Drop for QueueHeld<T> {
    fn drop(&mut self) {
        // SAFETY: each dropped once, here, in the order the fields say,
        // while `shared` lives (fields drop after `drop`, and `release`
        // moves it only into the garbage, which is dropped after this).
        unsafe {
            ManuallyDrop::drop(&mut self.ex);
            ManuallyDrop::drop(&mut self.g);
        }
    }
}

impl<T: 'static> crate::fork::Held for QueueHeld<T> {
    fn release(mut self: Box<Self>, in_child: bool) -> crate::fork::Garbage {
        let shared = self.shared.take().expect("held until released");
        if in_child {
            // The child has only the forking thread, which was not waiting
            // here: every getter or putter registered asleep, woken or
            // spinning is a thread it does not have. A put would otherwise
            // wake a sleeper that is not there (or count a woken one as on
            // its way to the item) and leave a real one asleep.
            let g = &mut *self.g;
            g.spinning_getters = 0;
            g.getters = Sleepers::default();
            g.putters = Sleepers::default();
            // With no sleeper, no fast call needs to take the lock for one.
            shared.sync_flags(&self.g);
        }
        // The ring re-opens, then the lock is released (`drop`).
        drop(self);
        Some(Box::new(shared))
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = lock(&self.shared.state);
        f.debug_struct("Queue")
            .field("id", &self.shared.id)
            .field("maxsize", &self.shared.maxsize)
            .field("len", &self.shared.len_locked())
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
