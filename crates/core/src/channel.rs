//! [`Channel`]: a PEP 554-style rendezvous channel. A send completes only when
//! a receive has taken its item; a send that gives up (deadline, interrupt,
//! forced close) gets its item back. Never both.
//!
//! # State machine
//!
//! The channel has two ends, each open or closed:
//!
//! ```text
//!             close_send()                     close_recv() / close(_)
//!  (send open, ───────────▶ (send closed, ───────────────────────────▶ (both closed)
//!   recv open)               recv open)
//!      │                                                                     ▲
//!      └──────────────── close_recv() / close(_) ────────────────────────────┘
//! ```
//!
//! - **send open, recv open**: sends and receives rendezvous.
//! - **send closed, recv open** ([`Channel::close_send`], never refused while
//!   the send end is open): new sends fail with [`SendError::Closed`]; sends
//!   already pending stay pending and can still be received (or time out);
//!   receives take them, then report [`RecvError::Closed`] once none is pending.
//! - **recv closed** ([`Channel::close_recv`] or [`Channel::close`]; always both
//!   ends closed from then on, since nothing could be received): sends fail with
//!   [`SendError::Closed`], receives with [`RecvError::Closed`]. This state is
//!   only entered with no send pending: without `force`, a close that would
//!   strand pending items is refused with [`CloseError::NotEmpty`] (PEP 554's
//!   `ChannelNotEmptyError`) and changes nothing; `close(true)` hands every
//!   pending item back to its blocked sender as [`SendError::Closed`].
//! - Closing an end that is already closed gives [`CloseError::Closed`].
//!
//! The life of one item:
//!
//! ```text
//!  send(item) ──▶ handed ─────────────────────────────▶ received   (a receive was
//!      │          (to one blocked receive; send is Ok)              waiting)
//!      └────────▶ offered ──▶ taken by a receive ───────▶ received   (send Ok)
//!                 (sender       ├─▶ withdrawn by the sender         (Timeout / Interrupted)
//!                  blocked)     └─▶ returned by close(true)          (Closed)
//! ```
//!
//! # Protocol
//!
//! One mutex guards everything. A receive that must block takes a ticket and
//! queues it in `waiting`. A sender that finds a ticket there pops the oldest
//! and hands its item to *that* receive (`handed`, keyed by receive ticket),
//! then wakes the blocked receivers. A blocked receive, whenever it holds the
//! lock, first takes the item handed to it; it leaves empty-handed (close,
//! deadline, or to run its interrupt hook unlocked) only after removing its
//! ticket from `waiting` in the same critical section that found nothing handed
//! to it. So every handed item is received, by the receive it was handed to:
//! the handing send may return `Ok` at once (`channel_send_recv_rendezvous`
//! model). Handing to one specific receive, rather than to whichever blocked
//! receive runs first, keeps each receiver's view in send order: a send that
//! returned `Ok` was received by a receive that started before the next send
//! of the same sender.
//!
//! A receive registers in `waiting` only while no offer is pending (it takes
//! the oldest offer instead), and a sender offers only while `waiting` is empty:
//! the two never coexist. When no receive is waiting, the sender appends an *offer* (its item and a
//! ticket) and waits on `senders_cv` until its ticket has left `offers` (taken:
//! `Ok`), or moved to `returned` (forced close: `Closed`). If its deadline passes
//! or its hook says stop, it re-checks under the lock and withdraws the offer if
//! it is still there — one critical section decides, so the item is received
//! or handed back, exactly once (`channel_send_withdraw_vs_recv` model).
//! Receivers take offers in ticket order (FIFO) and wake the blocked senders.
//!
//! Async callers (`wait::Notify`, no thread blocked): `watch(Side::Get, n)`
//! registers a notifier for receivers, called after every new offer and every
//! close; `watch(Side::Put, n)` one for async senders, called after every
//! offer taken and every close. An async send is an [`Channel::offer`] (handed
//! to a blocked receive at once, or queued with a ticket, as a blocking send's
//! offer is), then [`Channel::offer_outcome`] on each notification; on
//! cancellation or its deadline the caller [`Channel::withdraw_offer`]s it, and
//! that one critical section decides, as for a blocking send: the item is
//! received or handed back, exactly once. An async receive is a `try_recv`
//! per notification.
//!
//! Blocked senders all wait on one condition variable and a taken offer wakes
//! them all; likewise blocked receivers when an item is handed. Blocked callers
//! are threads, few, and each re-checks its own ticket.

pub use crate::error::{CloseError, RecvError, SendError};
use crate::id::next_id;
pub use crate::queue::Side;
use crate::sync::{lock, wait_timeout, Arc, Condvar, DynArc, Mutex, MutexGuard};
use crate::wait::{self, Blocker, Next, Notify, Watchers};
use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

struct Offer<T> {
    ticket: u64,
    item: T,
}

struct State<T> {
    /// Items of blocked senders, waiting for a receiver; tickets ascending.
    offers: VecDeque<Offer<T>>,
    /// Tickets of blocked receives no item has been handed to, oldest first.
    waiting: VecDeque<u64>,
    /// Items handed to blocked receives (by their ticket): already received.
    handed: Vec<(u64, T)>,
    /// Offers taken back by a forced close, for their blocked senders.
    returned: Vec<Offer<T>>,
    /// The next send ticket.
    next_ticket: u64,
    /// The next receive ticket.
    next_recv_ticket: u64,
    /// Senders waiting on `senders_cv`.
    senders: usize,
    send_closed: bool,
    recv_closed: bool,
    /// Notified when a receive may proceed (an offer, a close).
    recv_watch: Watchers,
    /// Notified when a pending offer's fate may have changed (taken, close).
    send_watch: Watchers,
}

/// What [`Channel::offer`] did with the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Handed to a receive blocked right now: delivered.
    Handed,
    /// Queued as a pending offer with this ticket.
    Pending(u64),
}

impl<T> State<T> {
    fn watchers(&mut self, side: Side) -> &mut Watchers {
        match side {
            Side::Get => &mut self.recv_watch,
            Side::Put => &mut self.send_watch,
        }
    }

    /// No send can succeed.
    fn send_refused(&self) -> bool {
        self.send_closed || self.recv_closed
    }

    /// Nothing is or will be receivable (handed items aside).
    fn recv_refused(&self) -> bool {
        self.recv_closed || (self.send_closed && self.offers.is_empty())
    }

    /// The item handed to the blocked receive `ticket`, if any.
    fn take_handed(&mut self, ticket: u64) -> Option<T> {
        let pos = self.handed.iter().position(|(t, _)| *t == ticket)?;
        Some(self.handed.swap_remove(pos).1)
    }

    /// Un-register the blocked receive `ticket` (nothing was handed to it).
    fn unwait(&mut self, ticket: u64) {
        let pos = self.waiting.iter().position(|&t| t == ticket);
        debug_assert!(pos.is_some(), "un-registering a receive not waiting");
        if let Some(pos) = pos {
            self.waiting.remove(pos);
        }
    }

    /// Register a receive about to block; returns its ticket.
    fn wait_recv(&mut self) -> u64 {
        let ticket = self.next_recv_ticket;
        self.next_recv_ticket += 1;
        self.waiting.push_back(ticket);
        ticket
    }

    fn is_offered(&self, ticket: u64) -> bool {
        self.offers
            .binary_search_by_key(&ticket, |o| o.ticket)
            .is_ok()
    }

    /// Take back a pending offer (the caller checked it is pending).
    fn withdraw(&mut self, ticket: u64) -> Option<T> {
        let pos = self
            .offers
            .binary_search_by_key(&ticket, |o| o.ticket)
            .ok()?;
        self.offers.remove(pos).map(|o| o.item)
    }

    /// What became of the offer `ticket`: `None` while it is pending.
    fn outcome(&mut self, ticket: u64) -> Option<Result<(), T>> {
        if let Some(pos) = self.returned.iter().position(|o| o.ticket == ticket) {
            return Some(Err(self.returned.swap_remove(pos).item));
        }
        if self.is_offered(ticket) {
            None
        } else {
            Some(Ok(()))
        }
    }
}

struct Shared<T> {
    id: u64,
    state: Mutex<State<T>>,
    /// Blocked receivers wait here for a handed item or a close.
    receivers_cv: Condvar,
    /// Blocked senders wait here for their offer to be taken or returned.
    senders_cv: Condvar,
}

impl<T> Shared<T> {
    /// Hand `item` to the oldest blocked receive no item was handed to, unlock
    /// and wake the blocked receivers; `Err(item)` (still locked) if there is
    /// no such receive.
    fn hand<'a>(
        &self,
        mut g: MutexGuard<'a, State<T>>,
        item: T,
    ) -> Result<(), (MutexGuard<'a, State<T>>, T)> {
        let Some(receiver) = g.waiting.pop_front() else {
            return Err((g, item));
        };
        g.handed.push((receiver, item));
        drop(g);
        // All: the one this item is for must wake; the others re-check and wait.
        self.receivers_cv.notify_all();
        Ok(())
    }

    /// Take the oldest offer, if any; wakes the blocked senders.
    fn take_offer(&self, mut g: MutexGuard<'_, State<T>>) -> Option<T> {
        let offer = g.offers.pop_front()?;
        let wake = g.senders > 0;
        let notify = g.send_watch.snapshot();
        drop(g);
        if wake {
            self.senders_cv.notify_all();
        }
        wait::notify_all(notify);
        Some(offer.item)
    }
}

/// A rendezvous channel: every send waits for a receive (PEP 554's channels).
///
/// Ownership: owned by no interpreter. Every clone shares the same channel (an
/// `Arc` inside); any method may be called from any thread, attached to any
/// interpreter or none. `Send + Sync` when `T: Send`. The interrupt hooks of
/// [`Channel::send`] and [`Channel::recv`] run on the calling thread with no
/// lock held, so they may take the GIL. The channel never runs Python code.
pub struct Channel<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Channel<T> {
    /// A new channel with both ends open.
    pub fn new() -> Self {
        Channel {
            shared: Arc::new(Shared {
                id: next_id(),
                state: Mutex::new(State {
                    offers: VecDeque::new(),
                    waiting: VecDeque::new(),
                    handed: Vec::new(),
                    returned: Vec::new(),
                    next_ticket: 0,
                    next_recv_ticket: 0,
                    senders: 0,
                    send_closed: false,
                    recv_closed: false,
                    recv_watch: Watchers::default(),
                    send_watch: Watchers::default(),
                }),
                receivers_cv: Condvar::new(),
                senders_cv: Condvar::new(),
            }),
        }
    }

    /// The channel's process-unique id (never reused; shared with queue ids).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Send `item` and wait until a receive has taken it, or until `deadline`
    /// (`None`: forever).
    ///
    /// - `Ok(())`: a receive has the item (or a receive blocked in
    ///   [`Channel::recv`] was handed it and will return it).
    /// - [`SendError::Timeout`]: the deadline passed first; the item was
    ///   withdrawn. A deadline already in the past still hands the item to a
    ///   receive that is blocked right now.
    /// - [`SendError::Interrupted`]: `interrupted`, called every
    ///   [`INTERRUPT_CHECK_INTERVAL`](crate::INTERRUPT_CHECK_INTERVAL) while
    ///   blocked with no lock held, returned `true` before a receive took the
    ///   item; it was withdrawn. If a receive took it while the hook ran, the
    ///   send returns `Ok` even though the hook returned `true`: the caller still
    ///   has the interrupt to report, and no item is lost.
    /// - [`SendError::Closed`]: the send end was closed (or the receive end)
    ///   before the item was offered, or `close(true)` took the pending item
    ///   back.
    ///
    /// If the hook panics, a still-pending item is withdrawn (and dropped)
    /// before the panic resumes.
    pub fn send(
        &self,
        item: T,
        deadline: Option<Instant>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<(), SendError<T>> {
        let sh = &*self.shared;
        let g = lock(&sh.state);
        if g.send_refused() {
            return Err(SendError::Closed(item));
        }
        let (mut g, item) = match sh.hand(g, item) {
            Ok(()) => return Ok(()),
            Err(back) => back,
        };
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.offers.push_back(Offer { ticket, item });
        let notify = g.recv_watch.snapshot();
        if !notify.is_empty() {
            drop(g);
            wait::notify_all(notify);
            g = lock(&sh.state);
        }
        let mut blocker = Blocker::new(deadline, interrupted);
        loop {
            match g.outcome(ticket) {
                Some(Ok(())) => return Ok(()),
                Some(Err(item)) => return Err(SendError::Closed(item)),
                None => {}
            }
            match blocker.next() {
                Next::Expired => return Err(SendError::Timeout(self.withdraw(g, ticket))),
                Next::Hook => {
                    drop(g);
                    let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        blocker.run_hook()
                    }));
                    g = lock(&sh.state);
                    match stop {
                        Err(panic) => {
                            if g.is_offered(ticket) {
                                drop(self.withdraw(g, ticket));
                            } else {
                                drop(g.outcome(ticket));
                                drop(g);
                            }
                            std::panic::resume_unwind(panic);
                        }
                        Ok(false) => {}
                        Ok(true) => {
                            return match g.outcome(ticket) {
                                Some(Ok(())) => Ok(()),
                                Some(Err(item)) => Err(SendError::Closed(item)),
                                None => Err(SendError::Interrupted(self.withdraw(g, ticket))),
                            };
                        }
                    }
                }
                Next::Wait(d) => {
                    g.senders += 1;
                    g = wait_timeout(&sh.senders_cv, g, d);
                    g.senders -= 1;
                    blocker.waited();
                }
            }
        }
    }

    /// Withdraw the pending offer `ticket` (the caller checked, under this same
    /// lock, that it is pending) and unlock.
    fn withdraw(&self, mut g: MutexGuard<'_, State<T>>, ticket: u64) -> T {
        match g.withdraw(ticket) {
            Some(item) => item,
            None => unreachable!("withdrawing an offer that is not pending"),
        }
    }

    /// An async send: hand `item` to a receive blocked right now
    /// ([`Offered::Handed`]: delivered), else queue it as a pending offer
    /// ([`Offered::Pending`]) that receives take in order, as a blocked
    /// sender's. No thread waits: the caller learns the offer's fate from
    /// [`Channel::offer_outcome`] when its [`Side::Put`] notifier is called, and
    /// takes it back with [`Channel::withdraw_offer`]. [`SendError::Closed`]
    /// when the send or receive end is closed.
    pub fn offer(&self, item: T) -> Result<Offered, SendError<T>> {
        let sh = &*self.shared;
        let g = lock(&sh.state);
        if g.send_refused() {
            return Err(SendError::Closed(item));
        }
        let (mut g, item) = match sh.hand(g, item) {
            Ok(()) => return Ok(Offered::Handed),
            Err(back) => back,
        };
        let ticket = g.next_ticket;
        g.next_ticket += 1;
        g.offers.push_back(Offer { ticket, item });
        let notify = g.recv_watch.snapshot();
        drop(g);
        wait::notify_all(notify);
        Ok(Offered::Pending(ticket))
    }

    /// The fate of offer `ticket`: `None` while pending, `Some(Ok(()))` once
    /// received (or for a ticket not known), `Some(Err(item))` when a forced
    /// close handed it back (reported once).
    pub fn offer_outcome(&self, ticket: u64) -> Option<Result<(), T>> {
        lock(&self.shared.state).outcome(ticket)
    }

    /// Take back offer `ticket` if it is still pending (`Some`: it will never
    /// be received); `None`: it was received, or handed back by a forced close
    /// (see [`Channel::offer_outcome`]).
    pub fn withdraw_offer(&self, ticket: u64) -> Option<T> {
        lock(&self.shared.state).withdraw(ticket)
    }

    /// Register a notifier: [`Side::Get`] for receivers (new offers, closes),
    /// [`Side::Put`] for async senders (offers taken, closes). Register, then
    /// re-try: no change is missed.
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

    /// PEP 554's `send_nowait`: hand `item` to a receive that is blocked in
    /// [`Channel::recv`] right now, or give it back.
    ///
    /// `Ok(())` means a blocked receive took the item: it will return it,
    /// whatever its deadline or hook says afterwards (the rendezvous is
    /// complete). [`SendError::NoReceiver`] means no receive was blocked and not
    /// already handed an item: nothing changed, the item is back (PEP 554: "return
    /// False if not received"). [`SendError::Closed`] when the send or receive
    /// end is closed. Never waits; the item is never left in the channel.
    pub fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        let sh = &*self.shared;
        let g = lock(&sh.state);
        if g.send_refused() {
            return Err(SendError::Closed(item));
        }
        sh.hand(g, item)
            .map_err(|(_, item)| SendError::NoReceiver(item))
    }

    /// Receive the oldest pending item, waiting for a send until `deadline`
    /// (`None`: forever).
    ///
    /// [`RecvError::Closed`] once the receive end is closed, or the send end is
    /// closed and no send is pending; [`RecvError::Timeout`] when the deadline
    /// passes; [`RecvError::Interrupted`] when `interrupted` (called every
    /// [`INTERRUPT_CHECK_INTERVAL`](crate::INTERRUPT_CHECK_INTERVAL) while
    /// blocked, with no lock held) returns `true`. An item handed to this
    /// receive before it gave up is always returned: an error means no item was
    /// taken. A pending item is taken before the deadline is looked at.
    pub fn recv(
        &self,
        deadline: Option<Instant>,
        interrupted: &mut dyn FnMut() -> bool,
    ) -> Result<T, RecvError> {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        if !g.offers.is_empty() {
            return sh.take_offer(g).ok_or(RecvError::Empty);
        }
        if g.recv_refused() {
            return Err(RecvError::Closed);
        }
        let mut blocker = Blocker::new(deadline, interrupted);
        let mut me = g.wait_recv();
        loop {
            // Registered: the item handed to this receive comes first. Once it
            // is taken, `me` is no longer in `waiting` (the sender popped it).
            if let Some(item) = g.take_handed(me) {
                return Ok(item);
            }
            // Nothing handed: `me` is still in `waiting`, so no offer was made
            // since it registered; one made before would have been taken.
            // Stay defensive all the same.
            if !g.offers.is_empty() {
                g.unwait(me);
                return sh.take_offer(g).ok_or(RecvError::Empty);
            }
            if g.recv_refused() {
                g.unwait(me);
                return Err(RecvError::Closed);
            }
            match blocker.next() {
                Next::Expired => {
                    g.unwait(me);
                    return Err(RecvError::Timeout);
                }
                Next::Hook => {
                    // Un-register while the hook runs unlocked: nothing can be
                    // handed to this receive meanwhile, so `true` from the hook
                    // never strands an item.
                    g.unwait(me);
                    drop(g);
                    if blocker.run_hook() {
                        return Err(RecvError::Interrupted);
                    }
                    g = lock(&sh.state);
                    if !g.offers.is_empty() {
                        return sh.take_offer(g).ok_or(RecvError::Empty);
                    }
                    if g.recv_refused() {
                        return Err(RecvError::Closed);
                    }
                    me = g.wait_recv();
                }
                Next::Wait(d) => {
                    g = wait_timeout(&sh.receivers_cv, g, d);
                    blocker.waited();
                }
            }
        }
    }

    /// Receive the oldest pending item if a send is pending right now
    /// (completing that send). [`RecvError::Empty`] if none is;
    /// [`RecvError::Closed`] if none is and none can come. Items handed to
    /// blocked receives are theirs, never taken here.
    pub fn try_recv(&self) -> Result<T, RecvError> {
        let sh = &*self.shared;
        let g = lock(&sh.state);
        let refused = g.recv_refused();
        sh.take_offer(g).ok_or(if refused {
            RecvError::Closed
        } else {
            RecvError::Empty
        })
    }

    /// Close the send end: new sends fail with [`SendError::Closed`]; pending
    /// sends stay receivable; receives report [`RecvError::Closed`] once none is
    /// pending. [`CloseError::Closed`] if the send end was already closed.
    pub fn close_send(&self) -> Result<(), CloseError> {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        if g.send_closed {
            return Err(CloseError::Closed);
        }
        g.send_closed = true;
        let wake = !g.waiting.is_empty();
        let notify = g.recv_watch.snapshot();
        drop(g);
        if wake {
            sh.receivers_cv.notify_all();
        }
        wait::notify_all(notify);
        Ok(())
    }

    /// Close the receive end (and so the channel: nothing sent could be
    /// received). Refused with [`CloseError::NotEmpty`] while sends are pending
    /// (use [`Channel::close`] with `force` to hand them back);
    /// [`CloseError::Closed`] if the receive end was already closed.
    pub fn close_recv(&self) -> Result<(), CloseError> {
        self.close_ends(false, false).map(|_| ())
    }

    /// Close both ends. With sends pending: refused with
    /// [`CloseError::NotEmpty`] unless `force`, in which case every pending item
    /// is handed back to its blocked sender as [`SendError::Closed`]. Returns
    /// how many were handed back. [`CloseError::Closed`] if both ends were
    /// already closed.
    pub fn close(&self, force: bool) -> Result<usize, CloseError> {
        self.close_ends(true, force)
    }

    fn close_ends(&self, both: bool, force: bool) -> Result<usize, CloseError> {
        let sh = &*self.shared;
        let mut g = lock(&sh.state);
        let already = if both {
            g.send_closed && g.recv_closed
        } else {
            g.recv_closed
        };
        if already {
            return Err(CloseError::Closed);
        }
        let pending = g.offers.len();
        if pending > 0 && !force {
            return Err(CloseError::NotEmpty { pending });
        }
        let offers = std::mem::take(&mut g.offers);
        g.returned.extend(offers);
        g.send_closed = true;
        g.recv_closed = true;
        let wake_senders = pending > 0 && g.senders > 0;
        let wake_receivers = !g.waiting.is_empty();
        let mut notify = g.recv_watch.snapshot();
        notify.extend(g.send_watch.snapshot());
        drop(g);
        wait::notify_all(notify);
        if wake_senders {
            sh.senders_cv.notify_all();
        }
        if wake_receivers {
            sh.receivers_cv.notify_all();
        }
        Ok(pending)
    }

    /// Sends pending (offered, not yet received) now (a snapshot).
    pub fn len(&self) -> usize {
        lock(&self.shared.state).offers.len()
    }

    /// Whether no send is pending now (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the send end is closed.
    pub fn is_send_closed(&self) -> bool {
        lock(&self.shared.state).send_closed
    }

    /// Whether the receive end (and so the whole channel) is closed.
    pub fn is_recv_closed(&self) -> bool {
        lock(&self.shared.state).recv_closed
    }

    /// Receives blocked in [`Channel::recv`] that no item has been handed to
    /// yet: how many [`Channel::try_send`]s would succeed now (a snapshot).
    pub fn waiting_receivers(&self) -> usize {
        lock(&self.shared.state).waiting.len()
    }

    /// Iterate over received items until the channel reports
    /// [`RecvError::Closed`]. Each step blocks without deadline or interrupt
    /// hook; use [`Channel::recv`] directly for those.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { channel: self }
    }
}

/// Blocking iterator over a channel's items; ends at [`RecvError::Closed`]. See
/// [`Channel::iter`].
pub struct Iter<'a, T> {
    channel: &'a Channel<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        // Without deadline or hook, the only error is Closed.
        self.channel.recv(None, &mut || false).ok()
    }
}

impl<'a, T> IntoIterator for &'a Channel<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: 'static> Channel<T> {
    /// Hold this channel across a `fork()` ([`crate::fork`]): its lock
    /// taken. `false`, and nothing pushed onto `holds`, if the lock is taken
    /// (never waits for it).
    pub fn fork_hold(&self, holds: &mut crate::fork::Holds) -> bool {
        let shared = self.shared.clone();
        let Some(g) = crate::sync::try_lock(&shared.state) else {
            return false;
        };
        // SAFETY: the guard borrows `shared`, which `ChannelHeld` keeps alive
        // (and in place) until after it dropped the guard.
        let g = unsafe {
            std::mem::transmute::<MutexGuard<'_, State<T>>, MutexGuard<'static, State<T>>>(g)
        };
        holds.push(Box::new(ChannelHeld {
            g: std::mem::ManuallyDrop::new(g),
            shared: Some(shared),
        }));
        true
    }
}

/// A channel held across a `fork()` (see [`Channel::fork_hold`]).
struct ChannelHeld<T: 'static> {
    /// Borrows `shared`: dropped first.
    g: std::mem::ManuallyDrop<MutexGuard<'static, State<T>>>,
    /// `None` once `release` handed it back (see `fork::Garbage`).
    shared: Option<Arc<Shared<T>>>,
}

impl<T: 'static> Drop for ChannelHeld<T> {
    fn drop(&mut self) {
        // SAFETY: dropped once, here, while `shared` lives (fields drop
        // after `drop`; `release` moves it only into the garbage, dropped
        // after this).
        unsafe { std::mem::ManuallyDrop::drop(&mut self.g) };
    }
}

impl<T: 'static> crate::fork::Held for ChannelHeld<T> {
    fn release(mut self: Box<Self>, in_child: bool) -> crate::fork::Garbage {
        let shared = self.shared.take().expect("held until released");
        if in_child {
            // The child has only the forking thread, which was not blocked
            // here. A blocked receive's ticket would take the next send's
            // item and never return it (the send would report it received:
            // lost); a blocked sender's count only costs wake-ups. Their
            // pending offers stay: the child has the items, as it has a
            // queue's, and may receive them.
            let g = &mut *self.g;
            g.waiting.clear();
            g.senders = 0;
        }
        drop(self);
        Some(Box::new(shared))
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = lock(&self.shared.state);
        f.debug_struct("Channel")
            .field("id", &self.shared.id)
            .field("pending", &g.offers.len())
            .field("send_closed", &g.send_closed)
            .field("recv_closed", &g.recv_closed)
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

    fn count() -> DynArc<Count> {
        DynArc::new(Count(AtomicUsize::new(0)))
    }

    #[test]
    fn async_offer_taken_withdrawn_returned() {
        let ch = Channel::<u32>::new();
        let (r, s) = (count(), count());
        ch.watch(Side::Get, r.clone());
        let ts = ch.watch(Side::Put, s.clone());
        let Ok(Offered::Pending(t1)) = ch.offer(1) else {
            panic!("no receive blocked: the offer is pending")
        };
        assert_eq!(r.0.load(Ordering::Relaxed), 1);
        assert!(ch.offer_outcome(t1).is_none());
        assert_eq!(ch.try_recv().ok(), Some(1));
        assert_eq!(s.0.load(Ordering::Relaxed), 1);
        assert!(matches!(ch.offer_outcome(t1), Some(Ok(()))));
        assert!(ch.withdraw_offer(t1).is_none()); // received: nothing to take back
        let Ok(Offered::Pending(t2)) = ch.offer(2) else {
            panic!()
        };
        assert_eq!(ch.withdraw_offer(t2), Some(2));
        assert!(ch.try_recv().is_err()); // withdrawn: never received
        let Ok(Offered::Pending(t3)) = ch.offer(3) else {
            panic!()
        };
        assert_eq!(ch.close(true).ok(), Some(1));
        assert!(ch.withdraw_offer(t3).is_none());
        assert!(matches!(ch.offer_outcome(t3), Some(Err(3))));
        assert!(r.0.load(Ordering::Relaxed) >= 3 && s.0.load(Ordering::Relaxed) >= 2);
        assert!(matches!(ch.offer(4), Err(SendError::Closed(4))));
        assert!(ch.unwatch(Side::Put, ts));
        assert_eq!(ch.watchers(Side::Put), 0);
        assert_eq!(ch.watchers(Side::Get), 1);
    }

    #[test]
    fn async_offer_handed_to_a_blocked_receive() {
        let ch = Channel::<u32>::new();
        let ch2 = ch.clone();
        let t = std::thread::spawn(move || ch2.recv(None, &mut || false).ok());
        while ch.waiting_receivers() == 0 {
            std::thread::yield_now();
        }
        assert_eq!(ch.offer(9).ok(), Some(Offered::Handed));
        assert_eq!(t.join().ok().flatten(), Some(9));
    }
}
