//! [`Queue`]: a multi-producer, multi-consumer FIFO that belongs to no
//! interpreter — the engine behind PEP 734's `interpreters.Queue`.
//!
//! # Protocol
//!
//! Items live in a lock-free store (crossbeam-queue's `ArrayQueue` when
//! bounded, `SegQueue` when not; under loom a loom-checked `Mutex<VecDeque>`
//! with the same operations, so the models check this file's protocol and
//! trust the library's). A put or get that can proceed takes no lock: it
//! passes a *gate*, touches the store, and checks a counter of waiters. The
//! mutex guards only the wait accounting (`Sleepers`, `Watchers`) and the
//! operations that need the whole queue to themselves.
//!
//! Gates (`put_gate`, `get_gate`: one word per side, each on its own cache
//! line): a put or get enters by a `fetch_add` of the in-flight count and
//! leaves by a `fetch_sub`. An *exclusive* operation (`remove_where`,
//! `drain`, `for_each_mut`) holds the mutex, sets `EXCL` on both gates and
//! waits until both counts are zero; an operation entering sees `EXCL` in the
//! value its `fetch_add` returned, leaves, and waits for the mutex. Both are
//! read-modify-writes of one word, so one of them sees the other
//! (`exclusive_vs_put_get` model). `close()` sets `CLOSED` on the put gate (a
//! put entering after it is refused), waits until no put is in flight, then
//! sets the final `closed` flag: from then on an empty store stays empty, so
//! a get that read `closed` before finding the store empty reports
//! [`GetError::Closed`] (`put_in_flight_vs_close` model; `close_while_sending`
//! stress test).
//!
//! No lost wake-up (`put_get_wakeup`, `bounded_put_waits_for_get`,
//! `put_vs_registering_getter` models in `tests/loom_queue.rs`): each side
//! has its own `Sleepers` and `Watchers`, kept under the mutex as `wait`
//! describes, and a lock-free summary, `get_waiting` / `put_waiting` (asleep
//! threads plus notifiers of that side), stored under the mutex after every
//! change and followed by a SeqCst fence. A getter about to sleep registers
//! under the mutex, fences, and re-tries the store before it waits (the
//! condition variable releases the mutex atomically); a put stores its item,
//! fences, and loads `get_waiting`. The two store→fence→load sequences are
//! Dekker's: either the re-try sees the item or the put sees the waiter, and
//! then takes the mutex (so it cannot notify before the getter waits), claims
//! one asleep getter (`wake_one`) and notifies it after unlocking, and calls
//! the get side's notifiers. Getters and putters are symmetric (a get wakes
//! one asleep putter); `close`, `drain` and `remove_where` wake every sleeper
//! of the side they unblock.
//!
//! Spin, then park: a call that would sleep first backs off
//! (`wait::spin_until`) watching the store's emptiness (or fullness) and the
//! `closed` flag, then re-tries; only then does it register and sleep. When
//! streaming through a full or empty queue, the other side usually makes
//! progress within that window, which saves a futex sleep and wake-up per item.
//!
//! A woken getter always takes an item if there is one before it looks at its
//! deadline or hook, so a notification is never spent without effect while an
//! item waits; a getter that leaves empty-handed (deadline, hook) found the
//! store empty.
//!
//! Close: puts are then refused (handing the item back); gets keep draining
//! the items already in the queue and report [`GetError::Closed`] only once it
//! is empty (`close_wakes_blocked_getter`).
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
//! `try_put` (`async_watch_*` tests below). Registering stores the side's
//! waiting summary and fences, as a sleeper does.
//!
//! # Why not one mutex
//!
//! Until 0.x (see CHANGELOG) one mutex guarded the items too: every put and get
//! then bounced the mutex's cache line between the producing and consuming
//! cores and, on a loaded machine, parked behind a preempted holder (futex
//! sleep and wake), 1.2-6x slower than crossbeam-channel in `benches/queue.rs`.
//! Now a put and a get touch different cache lines (their gate, the store's
//! tail or head) and take no lock unless someone waits.

pub use crate::error::{GetError, PutError};
use crate::id::next_id;
use crate::sync::DynArc;
use crate::sync::{
    fence, lock, wait_timeout, yield_now, Arc, AtomicBool, AtomicUsize, Condvar, Mutex,
    MutexGuard, Ordering,
};
pub use crate::wait::INTERRUPT_CHECK_INTERVAL;
use crate::wait::{self, Blocker, Next, Notify, Sleepers, Watchers};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::time::Instant;

/// Gate bit: an exclusive operation holds (or is taking) the queue.
const EXCL: usize = 1 << (usize::BITS - 1);
/// Put-gate bit: the queue is closing or closed; puts are refused.
const CLOSED: usize = 1 << (usize::BITS - 2);
/// Gate bits: operations in flight.
const COUNT: usize = CLOSED - 1;

/// The items: crossbeam-queue's lock-free queues (a well-kept library; its
/// `ArrayQueue` is the array flavour crossbeam-channel's bounded channel uses).
#[cfg(not(loom))]
enum Store<T> {
    Bounded(crossbeam_queue::ArrayQueue<T>),
    Unbounded(crossbeam_queue::SegQueue<T>),
}

#[cfg(not(loom))]
impl<T> Store<T> {
    fn new(maxsize: usize) -> Self {
        if maxsize == 0 {
            Store::Unbounded(crossbeam_queue::SegQueue::new())
        } else {
            Store::Bounded(crossbeam_queue::ArrayQueue::new(maxsize))
        }
    }
    #[inline]
    fn push(&self, item: T) -> Result<(), T> {
        match self {
            Store::Bounded(q) => q.push(item),
            Store::Unbounded(q) => {
                q.push(item);
                Ok(())
            }
        }
    }
    #[inline]
    fn pop(&self) -> Option<T> {
        match self {
            Store::Bounded(q) => q.pop(),
            Store::Unbounded(q) => q.pop(),
        }
    }
    fn len(&self) -> usize {
        match self {
            Store::Bounded(q) => q.len(),
            Store::Unbounded(q) => q.len(),
        }
    }
    fn is_empty(&self) -> bool {
        match self {
            Store::Bounded(q) => q.is_empty(),
            Store::Unbounded(q) => q.is_empty(),
        }
    }
}

/// Under loom: the same operations over a loom mutex, so every access is a
/// scheduling point the models explore (crossbeam-queue is not
/// loom-instrumented; the models check this file's protocol around it).
#[cfg(loom)]
struct Store<T> {
    maxsize: usize,
    items: Mutex<std::collections::VecDeque<T>>,
}

#[cfg(loom)]
impl<T> Store<T> {
    fn new(maxsize: usize) -> Self {
        Store {
            maxsize,
            items: Mutex::new(std::collections::VecDeque::new()),
        }
    }
    fn push(&self, item: T) -> Result<(), T> {
        let mut g = lock(&self.items);
        if self.maxsize != 0 && g.len() >= self.maxsize {
            return Err(item);
        }
        g.push_back(item);
        Ok(())
    }
    fn pop(&self) -> Option<T> {
        lock(&self.items).pop_front()
    }
    fn len(&self) -> usize {
        lock(&self.items).len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the mutex guards: the wait accounting of both sides.
struct State {
    /// `close()` ran (set first thing under the lock).
    closed: bool,
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
    store: Store<T>,
    /// Puts in flight, with [`EXCL`] and [`CLOSED`].
    put_gate: CachePadded<AtomicUsize>,
    /// Gets in flight, with [`EXCL`].
    get_gate: CachePadded<AtomicUsize>,
    /// Asleep getters plus get-side notifiers (see the module's protocol).
    get_waiting: CachePadded<AtomicUsize>,
    /// Asleep putters plus put-side notifiers.
    put_waiting: AtomicUsize,
    /// Final: closed and no put in flight; an empty store now stays empty.
    closed: AtomicBool,
    state: Mutex<State>,
    /// Getters wait here for an item or the close.
    not_empty: Condvar,
    /// Putters wait here for room or the close (bounded queues only).
    not_full: Condvar,
}

/// What a gated attempt found.
enum Try<T> {
    Done,
    /// The put found no room (the item comes back) or the get no item.
    No(Option<T>),
    /// The put gate is closed (the item comes back).
    Closed(Option<T>),
}

/// Clears `EXCL` on both gates when an exclusive operation ends (or unwinds).
struct ExclGuard<'a, T>(&'a Shared<T>);

impl<T> Drop for ExclGuard<'_, T> {
    fn drop(&mut self) {
        // Release: the next operation to enter (Acquire `fetch_add`) sees
        // everything the exclusive operation did to the store.
        self.0.put_gate.fetch_and(!EXCL, Ordering::Release);
        self.0.get_gate.fetch_and(!EXCL, Ordering::Release);
    }
}

/// Items taken out by an exclusive operation; whatever is left in `items` goes
/// back into the store, in order, when it drops (also when a callback panics).
struct Restore<'a, T> {
    store: &'a Store<T>,
    items: Vec<T>,
}

impl<T> Drop for Restore<'_, T> {
    fn drop(&mut self) {
        for item in self.items.drain(..) {
            // Cannot fail: the store held at least these items a moment ago
            // and nothing else touches it during an exclusive operation.
            let _ = self.store.push(item);
        }
    }
}

impl<T> Shared<T> {
    /// Enter a gate. `Err(())`: an exclusive operation holds the queue; the
    /// caller has left again and should wait for the mutex, then retry.
    #[inline]
    fn enter(gate: &AtomicUsize) -> Result<usize, ()> {
        // Acquire: pairs with the Release clear of `EXCL` ([`ExclGuard`]).
        let g = gate.fetch_add(1, Ordering::Acquire);
        if g & EXCL != 0 {
            Self::leave(gate);
            return Err(());
        }
        Ok(g)
    }

    #[inline]
    fn leave(gate: &AtomicUsize) {
        // SeqCst: the operation's side of the Dekker pair with a waiter (see
        // `after_put`); its Release half pairs with the Acquire loads of
        // `drain_gate` (an exclusive operation or the close sees what this
        // operation did) and with a registering waiter's read-modify-write of
        // this gate (`publish_waiting`).
        gate.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wait (no lock but the caller's mutex held) until no operation is in
    /// flight through `gate` (they take no lock, so they finish).
    fn drain_gate(gate: &AtomicUsize) {
        // Acquire: pairs with `leave`'s Release.
        while gate.load(Ordering::Acquire) & COUNT != 0 {
            yield_now();
        }
    }

    /// One put attempt through the gate. Does not wake anyone: the caller
    /// calls [`Shared::after_put`] once it holds no lock. With `locked`, the
    /// caller holds the mutex (so no exclusive operation can hold the gate).
    #[inline]
    fn try_push(&self, item: T, locked: bool) -> Try<T> {
        loop {
            let g = match Self::enter(&self.put_gate) {
                Ok(g) => g,
                Err(()) => {
                    debug_assert!(!locked, "EXCL set while the mutex is held");
                    drop(lock(&self.state));
                    continue;
                }
            };
            if g & CLOSED != 0 {
                Self::leave(&self.put_gate);
                return Try::Closed(Some(item));
            }
            let r = self.store.push(item);
            Self::leave(&self.put_gate);
            return match r {
                Ok(()) => Try::Done,
                Err(item) => Try::No(Some(item)),
            };
        }
    }

    /// One get attempt through the gate (see [`Shared::try_push`]).
    #[inline]
    fn try_pop(&self, locked: bool) -> Result<T, GetError> {
        loop {
            if Self::enter(&self.get_gate).is_err() {
                debug_assert!(!locked, "EXCL set while the mutex is held");
                drop(lock(&self.state));
                continue;
            }
            // Acquire, and read before the pop: `closed` is set once no put is
            // in flight and none can start, so if it was set before the store
            // was found empty, the store stays empty.
            let closed = self.closed.load(Ordering::Acquire);
            let item = self.store.pop();
            Self::leave(&self.get_gate);
            return match item {
                Some(v) => Ok(v),
                None if closed => Err(GetError::Closed),
                None => Err(GetError::Empty),
            };
        }
    }

    /// After an item went in (no lock held): wake one asleep getter and call
    /// the get side's notifiers, if the summary says there are any.
    #[inline]
    fn after_put(&self) {
        // SeqCst load after the put's SeqCst `leave` of the put gate: the put's
        // side of the Dekker pair; the waiter's side is `publish_waiting`
        // (SeqCst store of `get_waiting`, then a SeqCst read-modify-write of
        // the put gate, then the re-try). Both read-modify-writes are of one
        // word: if the waiter's comes later it acquires the put's item (its
        // re-try sees it); if it comes earlier, the waiter's store precedes
        // this load in the single SeqCst order, so this load sees the waiter.
        if self.get_waiting.load(Ordering::SeqCst) != 0 {
            let mut g = lock(&self.state);
            let wake = g.getters.wake_one();
            let notify = g.get_watch.snapshot();
            self.publish_waiting(&g);
            drop(g);
            if wake {
                self.not_empty.notify_one();
            }
            wait::notify_all(notify);
        }
    }

    /// After an item came out by a get (no lock held): the mirror of
    /// [`Shared::after_put`] for putters.
    #[inline]
    fn after_get(&self) {
        // SeqCst: as in `after_put`, with `put_waiting` and the get gate.
        if self.put_waiting.load(Ordering::SeqCst) != 0 {
            let mut g = lock(&self.state);
            let wake = g.putters.wake_one();
            let notify = g.put_watch.snapshot();
            self.publish_waiting(&g);
            drop(g);
            if wake {
                self.not_full.notify_one();
            }
            wait::notify_all(notify);
        }
    }

    /// Store both sides' waiting summaries from the accounting (under the
    /// lock), then read-modify-write both gates: the waiter's side of the
    /// Dekker pair with `after_put` / `after_get` (its re-try follows).
    fn publish_waiting(&self, g: &State) {
        // SeqCst stores (only written under the lock) and SeqCst no-op
        // read-modify-writes of the gates: see `after_put`. The fence makes
        // the same order explicit for the store's own accesses (and for loom,
        // which models SeqCst accesses as AcqRel but SeqCst fences exactly).
        self.get_waiting.store(
            g.getters.asleep() + g.get_watch.len(),
            Ordering::SeqCst,
        );
        self.put_waiting.store(
            g.putters.asleep() + g.put_watch.len(),
            Ordering::SeqCst,
        );
        self.put_gate.fetch_add(0, Ordering::SeqCst);
        self.get_gate.fetch_add(0, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Whether a put may proceed now (a hint read without the lock).
    fn put_ready(&self) -> bool {
        // Relaxed: a hint for the spin; the re-try decides.
        self.closed.load(Ordering::Relaxed) || self.has_room(self.store.len())
    }

    fn has_room(&self, len: usize) -> bool {
        self.maxsize == 0 || len < self.maxsize
    }

    /// Take the queue exclusively: the mutex, then `EXCL` on both gates and
    /// no operation in flight. `EXCL` is cleared when the guard drops.
    fn exclusive(&self) -> (MutexGuard<'_, State>, ExclGuard<'_, T>) {
        let g = lock(&self.state);
        // AcqRel: one read-modify-write order per gate with every `enter`.
        self.put_gate.fetch_or(EXCL, Ordering::AcqRel);
        self.get_gate.fetch_or(EXCL, Ordering::AcqRel);
        let excl = ExclGuard(self);
        Self::drain_gate(&self.put_gate);
        Self::drain_gate(&self.get_gate);
        (g, excl)
    }

    /// Every item, out of the store (during an exclusive operation).
    fn take_all(&self) -> Restore<'_, T> {
        let mut items = Vec::with_capacity(self.store.len());
        while let Some(item) = self.store.pop() {
            items.push(item);
        }
        Restore {
            store: &self.store,
            items,
        }
    }

    /// After items left the queue other than by a get: wake every putter.
    fn room_made(&self, mut g: MutexGuard<'_, State>) {
        let wake = g.putters.wake_all();
        let notify = g.put_watch.snapshot();
        self.publish_waiting(&g);
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
                store: Store::new(maxsize),
                put_gate: CachePadded::new(AtomicUsize::new(0)),
                get_gate: CachePadded::new(AtomicUsize::new(0)),
                get_waiting: CachePadded::new(AtomicUsize::new(0)),
                put_waiting: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                state: Mutex::new(State {
                    closed: false,
                    getters: Sleepers::default(),
                    putters: Sleepers::default(),
                    get_watch: Watchers::default(),
                    put_watch: Watchers::default(),
                }),
                not_empty: Condvar::new(),
                not_full: Condvar::new(),
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
        match sh.try_push(item, false) {
            Try::Done => {
                sh.after_put();
                Ok(())
            }
            Try::No(item) => Err(PutError::Full(item.expect("handed back"))),
            Try::Closed(item) => Err(PutError::Closed(item.expect("handed back"))),
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
        let mut item = match sh.try_push(item, false) {
            Try::Done => {
                sh.after_put();
                return Ok(());
            }
            Try::Closed(item) => return Err(PutError::Closed(item.expect("handed back"))),
            Try::No(item) => item.expect("handed back"),
        };
        let mut blocker = Blocker::new(deadline, interrupted);
        let mut spun = false;
        loop {
            match blocker.next() {
                Next::Expired => return Err(PutError::Full(item)),
                Next::Hook => {
                    if blocker.run_hook() {
                        return Err(PutError::Interrupted(item));
                    }
                }
                Next::Wait(_) if !spun => {
                    spun = true;
                    wait::spin_until(|| sh.put_ready());
                }
                Next::Wait(d) => {
                    let mut g = lock(&sh.state);
                    g.putters.sleep();
                    sh.publish_waiting(&g);
                    // The re-try after registering (the Dekker pair's load side).
                    let r = sh.try_push(item, true);
                    if let Try::No(Some(back)) = r {
                        item = back;
                        g = wait_timeout(&sh.not_full, g, d);
                        g.putters.awake();
                        sh.publish_waiting(&g);
                        drop(g);
                        blocker.waited();
                        spun = false;
                    } else {
                        g.putters.awake();
                        sh.publish_waiting(&g);
                        drop(g);
                        match r {
                            Try::Done => {
                                sh.after_put();
                                return Ok(());
                            }
                            Try::Closed(back) | Try::No(back) => {
                                return Err(PutError::Closed(back.expect("handed back")))
                            }
                        }
                    }
                    // Woken, timed out or spurious: re-try before anything else.
                }
            }
            match sh.try_push(item, false) {
                Try::Done => {
                    sh.after_put();
                    return Ok(());
                }
                Try::Closed(back) => return Err(PutError::Closed(back.expect("handed back"))),
                Try::No(back) => item = back.expect("handed back"),
            }
        }
    }

    /// Take the front item if there is one right now. An empty closed queue
    /// reports [`GetError::Closed`], an empty open one [`GetError::Empty`].
    pub fn try_get(&self) -> Result<T, GetError> {
        let sh = &*self.shared;
        let r = sh.try_pop(false);
        if r.is_ok() {
            sh.after_get();
        }
        r
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
        let mut blocker = Blocker::new(deadline, interrupted);
        let mut spun = false;
        loop {
            match sh.try_pop(false) {
                Err(GetError::Empty) => {}
                r => {
                    if r.is_ok() {
                        sh.after_get();
                    }
                    return r;
                }
            }
            match blocker.next() {
                Next::Expired => return Err(GetError::Empty),
                Next::Hook => {
                    if blocker.run_hook() {
                        return Err(GetError::Interrupted);
                    }
                }
                Next::Wait(_) if !spun => {
                    spun = true;
                    // Ready: an item, or closed. Relaxed: a hint for the spin.
                    wait::spin_until(|| {
                        !sh.store.is_empty() || sh.closed.load(Ordering::Relaxed)
                    });
                }
                Next::Wait(d) => {
                    let mut g = lock(&sh.state);
                    g.getters.sleep();
                    sh.publish_waiting(&g);
                    // The re-try after registering (the Dekker pair's load side).
                    let r = sh.try_pop(true);
                    if let Err(GetError::Empty) = r {
                        g = wait_timeout(&sh.not_empty, g, d);
                    }
                    g.getters.awake();
                    sh.publish_waiting(&g);
                    drop(g);
                    match r {
                        Err(GetError::Empty) => {
                            blocker.waited();
                            spun = false;
                        }
                        r => {
                            if r.is_ok() {
                                sh.after_get();
                            }
                            return r;
                        }
                    }
                }
            }
        }
    }

    /// Items in the queue now (a snapshot).
    pub fn len(&self) -> usize {
        self.shared.store.len()
    }

    /// Whether the queue holds no item now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.shared.store.is_empty()
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
        // AcqRel: one read-modify-write order with every put's `enter`: a put
        // that entered before is waited for, one that enters after is refused.
        sh.put_gate.fetch_or(CLOSED, Ordering::AcqRel);
        Shared::<T>::drain_gate(&sh.put_gate);
        // Release: pairs with `try_pop`'s Acquire load (no put can follow).
        sh.closed.store(true, Ordering::Release);
        let wake_getters = g.getters.wake_all();
        let wake_putters = g.putters.wake_all();
        let mut notify = g.get_watch.snapshot();
        notify.extend(g.put_watch.snapshot());
        sh.publish_waiting(&g);
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

    /// Whether [`Queue::close`] was called (and has taken effect).
    pub fn is_closed(&self) -> bool {
        // Acquire: as in `try_pop`.
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Remove every item for which `f` returns `true` and return them in queue
    /// order; the others keep their order. Blocked putters are woken if room
    /// was made.
    ///
    /// `f` runs with the queue held exclusively, once per item, before anything
    /// changes: it must be quick and must not use this queue (that would
    /// deadlock). If it panics, the queue is left untouched.
    pub fn remove_where(&self, mut f: impl FnMut(&T) -> bool) -> Vec<T> {
        let sh = &*self.shared;
        let (g, excl) = sh.exclusive();
        let mut all = sh.take_all();
        // Ask about every item first, so a panicking `f` changes nothing
        // (`all` puts every item back when it drops).
        let marks: Vec<bool> = all.items.iter().map(&mut f).collect();
        let n = marks.iter().filter(|&&m| m).count();
        if n == 0 {
            drop(all);
            drop(excl);
            return Vec::new();
        }
        let mut removed = Vec::with_capacity(n);
        let mut kept = Vec::with_capacity(all.items.len() - n);
        for (item, remove) in std::mem::take(&mut all.items).into_iter().zip(marks) {
            if remove {
                removed.push(item);
            } else {
                kept.push(item);
            }
        }
        all.items = kept;
        drop(all);
        drop(excl);
        sh.room_made(g);
        removed
    }

    /// Call `f` on every item in queue order, in place (e.g. to mark the items
    /// of an interpreter that died). `f` runs with the queue held exclusively:
    /// it must be quick and must not use this queue. If it panics, the items it
    /// already visited keep its changes.
    pub fn for_each_mut(&self, f: impl FnMut(&mut T)) {
        let sh = &*self.shared;
        let (g, excl) = sh.exclusive();
        let mut all = sh.take_all();
        all.items.iter_mut().for_each(f);
        drop(all);
        drop(excl);
        drop(g);
    }

    /// Remove and return every item, in queue order; blocked putters wake.
    pub fn drain(&self) -> Vec<T> {
        let sh = &*self.shared;
        let (g, excl) = sh.exclusive();
        let items = std::mem::take(&mut sh.take_all().items);
        drop(excl);
        if items.is_empty() {
            drop(g);
        } else {
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
        sh.publish_waiting(&g);
        token
    }

    /// Un-register a notifier; `false` if the token is not registered.
    pub fn unwatch(&self, side: Side, token: u64) -> bool {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        let removed = g.watchers(side).remove(token);
        sh.publish_waiting(&g);
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

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("id", &self.shared.id)
            .field("maxsize", &self.shared.maxsize)
            .field("len", &self.len())
            .field("closed", &self.is_closed())
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
