//! The waiting machinery of the engine's blocking calls: deadlines and the
//! interrupt hook ([`Blocker`], used by [`Queue`](crate::Queue) and
//! [`Channel`](crate::Channel)), exact wait accounting for the waiters of one
//! side, woken most recent first ([`Sleepers`]), and the bounded spin before a sleep
//! ([`WaitClock`]) (both used by `Queue`).
//!
//! # Protocol
//!
//! A blocking call holds its structure's mutex while it checks whether it can
//! proceed. Each time it finds it cannot, it asks its [`Blocker`] what to do
//! next ([`Blocker::next`]):
//! - [`Next::Expired`]: the deadline passed; the call gives up (having found,
//!   under the lock, that it could not proceed);
//! - [`Next::Hook`]: the interrupt hook is due; the call releases the lock,
//!   runs it ([`Blocker::run_hook`]; `true` ends the call), re-takes the lock
//!   and re-checks;
//! - [`Next::Wait`]: wait on the condition variable for at most that long
//!   (until the hook is due or the deadline, whichever comes first), then call
//!   [`Blocker::waited`] and re-check.
//!
//! The hook runs every [`INTERRUPT_CHECK_INTERVAL`] spent blocked, never before
//! the call first blocks, and at least one wait separates two runs. A call that
//! never blocks never reads the clock.
//!
//! No lost wake-up, with a [`Sleepers`] per side (all of it touched only
//! under the lock):
//! - a waiter registers itself as asleep ([`Sleepers::sleep`], which gives it
//!   a condition variable of its own, a [`Bell`]) in the critical section
//!   that found it cannot proceed, and `Condvar::wait` releases the lock
//!   atomically: a change that would let it proceed either ran before that
//!   check (the waiter sees it) or runs after and sees the sleeper;
//! - a change that sees an asleep waiter moves the most recent one to
//!   "woken" ([`Sleepers::wake_one`]) and rings its bell once it has
//!   unlocked. Further changes before that waiter runs find no *asleep*
//!   waiter and issue no redundant futex wake ([`Sleepers::wake_all`]: every
//!   sleeper, each bell rung);
//! - every wait is followed, under the lock, by [`Sleepers::awake`], which
//!   un-registers a waiter no one claimed (a timeout, a spurious wake-up),
//!   else consumes the notification on its way to it. So the counts stay
//!   exact whether a thread woke by notification, timeout or spuriously; a
//!   ring that arrives after its waiter already left is one spurious wake-up
//!   of a bell no one waits on any more.
//!
//! Spin, then park: a call that would sleep may first release the lock and
//! back off for a few microseconds ([`WaitClock::spin`]: spinning, then yielding,
//! crossbeam's schedule) while a lock-free hint says it cannot proceed, then
//! re-take the lock and re-check; only then does it register and sleep. The
//! hint is the caller's and is advisory: the decision to sleep is always made
//! under the lock, as above.
//!
//! Waiters that are not threads ([`Notify`], kept in a [`Watchers`] list under
//! the same lock): an event loop cannot park a thread per awaiter, so it
//! registers one notifier; every change that would wake a sleeper of that side
//! also takes a snapshot of the side's notifiers under the lock and calls them
//! once it has unlocked. A notifier only says "re-try without blocking": the
//! awaiter's retry (a `try_get`, `try_put`, ...) under the lock decides. No lost
//! wake-up: a watcher registers, then re-tries; a change either ran before that
//! retry (the retry sees it) or after the registration (it sees the watcher).
//!
//! The loom models of these rules are those of the structures that use them
//! (`tests/loom_queue.rs`).

use crate::sync::{Arc, Condvar, DynArc};
use std::time::{Duration, Instant};

/// A waiter that is not a thread (e.g. an event loop's wake-up fd): told, with
/// no lock held, that the side it watches may now proceed. Must be quick, must
/// not block and must not call back into the structure that notifies it.
pub trait Notify: Send + Sync {
    /// The watched side may proceed: re-try without blocking.
    fn notify(&self);
}

/// The notifiers registered on one side of a structure (e.g. its getters).
/// Only touched under the structure's lock.
#[derive(Default)]
pub(crate) struct Watchers {
    next: u64,
    list: Vec<(u64, DynArc<dyn Notify>)>,
}

impl Watchers {
    /// Register `n`; the token un-registers it.
    pub(crate) fn add(&mut self, n: DynArc<dyn Notify>) -> u64 {
        self.next += 1;
        self.list.push((self.next, n));
        self.next
    }

    /// Un-register; `false`: no such token (already removed).
    pub(crate) fn remove(&mut self, token: u64) -> bool {
        let before = self.list.len();
        self.list.retain(|(t, _)| *t != token);
        self.list.len() != before
    }

    /// The notifiers to call once the lock is released (empty: none; no
    /// allocation then).
    #[inline]
    pub(crate) fn snapshot(&self) -> Vec<DynArc<dyn Notify>> {
        // Inlined empty check: every put and get of a queue takes a snapshot
        // and almost always finds no notifier (profiled at ~9% of a streaming
        // put/get when the collect and the drop were out-of-line calls).
        if self.list.is_empty() {
            return Vec::new();
        }
        self.list.iter().map(|(_, n)| n.clone()).collect()
    }

    /// Registered notifiers now.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

/// Call every notifier of a snapshot (no lock held).
#[inline]
pub(crate) fn notify_all(ns: Vec<DynArc<dyn Notify>>) {
    // The empty case (no notifier: almost every put and get) stays at the
    // call site; the loop is out of line.
    if !ns.is_empty() {
        notify_each(ns);
    }
}

#[inline(never)]
fn notify_each(ns: Vec<DynArc<dyn Notify>>) {
    for n in ns {
        n.notify();
    }
}

/// How often a blocked call runs its interrupt hook: after each
/// `INTERRUPT_CHECK_INTERVAL` spent blocked (never before the call first blocks).
///
/// Under loom it is zero: the hook then runs before every wait, so the models
/// explore the window in which the hook runs with the lock released.
#[cfg(not(loom))]
pub const INTERRUPT_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// See the non-loom definition.
#[cfg(loom)]
pub const INTERRUPT_CHECK_INTERVAL: Duration = Duration::ZERO;

/// Backoff a blocking call takes (no lock held) before it sleeps: busy
/// spinning for the budget of 6 exponential steps (1 + 2 + … + 32 = 63
/// `spin_loop`s, its hint checked after each), then yields until
/// [`SPIN_WINDOW`] has passed since it began, as crossbeam's backoff does but
/// bounded by time rather than by a count of yields: a `sched_yield` with
/// nothing else runnable returns in well under a microsecond, and the other
/// side of a cross-interpreter round trip (a Python loop taking the item,
/// doing a little work, putting the reply) commonly needs a few
/// microseconds; a futex sleep and wake-up costs 5-20 µs on a VM. Measured
/// (benchmarks/README.md, "the spin window"): 4 yields left most executor
/// and small-transfer round trips asleep.
///
/// The busy steps are cut to [`SHARED_SPIN_STEPS`] while this thread's yields
/// run other threads (a yield of [`SHARED_CPU_YIELD`] or more): the two sides
/// of a round trip then share one CPU (a scheduler can leave two threads that
/// yield to each other together, even with another CPU idle), and every busy
/// step only delays the other side. Measured on 3.14 (AMD EPYC, 2 vCPUs): 6
/// busy steps (63 `pause`s, ~1.5 µs) were 18% of the cycles of an executor
/// round trip pinned to one CPU (10.5 µs; 7.4 µs with 2 steps), while on two
/// CPUs they catch a reply that comes within ~1 µs without a syscall (a
/// `SharedBuffer` transfer and ack: 1.0 µs with 6 steps, 1.3 µs with 2).
///
/// Under loom: one step (one hint load), so the models cover the unlocked
/// window without exploring a spin loop.
#[cfg(not(loom))]
const SPIN_STEPS: u32 = 6;
#[cfg(loom)]
const SPIN_STEPS: u32 = 1;
/// The busy steps while this thread's yields run other threads.
#[cfg(not(loom))]
const SHARED_SPIN_STEPS: u32 = 2;
/// A yield that takes this long ran another thread on this CPU (one with
/// nothing else runnable returns in well under a microsecond).
#[cfg(not(loom))]
const SHARED_CPU_YIELD: Duration = Duration::from_micros(2);
/// A thread whose backoff met this many yields in a row that ran another
/// thread on its CPU (plus 0-8 more, by thread, so that the two sides of
/// a round trip do not move at once and meet again) moves itself to another
/// CPU it may use ([`crate::affinity::move_off_this_cpu`]: why, and how
/// its affinity mask stays its own). Measured on 3.14 (AMD EPYC, 2 vCPUs),
/// an executor's `submit(abs, 1).result()` after the pool idled for 50 ms,
/// ten runs each: 5.4-7.9 µs per round trip without the move (the caller
/// and a worker on one CPU), 4.0-4.3 µs with it, after 1-13 moves per run.
#[cfg(not(loom))]
const MOVE_AFTER: u32 = 8;
/// At most one move per this long per thread: on a machine with more
/// runnable threads than CPUs every yield runs another thread, and moving
/// cannot help; this bounds what it costs there (two system calls and a
/// migration per thread per interval).
#[cfg(not(loom))]
const MOVE_INTERVAL: Duration = Duration::from_millis(10);
/// How long the yielding part of the backoff lasts at first, and at least
/// (see [`SPIN_STEPS`]).
#[cfg(not(loom))]
const SPIN_WINDOW: Duration = Duration::from_micros(20);
/// How long it may grow to when this thread's recent waits ended just after
/// it gave up (see [`next_window`]), while its CPU has nothing else to run.
/// A sleep costs more than its system calls on a VM: the waiting vCPU halts,
/// and its wake-up is an interrupt through the hypervisor. Measured on 3.14
/// (AMD EPYC, 2 vCPUs), a `bytes` transfer and ack through two queues, the
/// receiver copying for ~70 µs at 4 MiB: with a 50 µs cap the sender slept
/// and the transfer took 101-146 µs (medians) against 80-107 µs for the
/// stdlib's spinning `get_nowait` loop (ours spinning the same way: 107);
/// with 200 µs, 75-78 µs against 75-87. The price: a thread whose items
/// come every 60-250 µs yields through every gap instead of sleeping (a
/// consumer at a 150 µs period used 98% of its CPU, 42% with the 50 µs cap)
/// — but only while yielding runs nothing else there: once a yield runs
/// another thread, the window stops at [`SHARED_MAX_SPIN_WINDOW`].
#[cfg(not(loom))]
const MAX_SPIN_WINDOW: Duration = Duration::from_micros(200);
/// The window's cap while this thread's yields run other threads on its CPU
/// (their time is what a longer window would take).
#[cfg(not(loom))]
const SHARED_MAX_SPIN_WINDOW: Duration = Duration::from_micros(50);
/// How many slow yields in a row cap the window at
/// [`SHARED_MAX_SPIN_WINDOW`]. A thread that competes for this CPU makes
/// every yield slow; on a VM a lone yield also takes 2 µs now and then with
/// nothing else to run (the host's interrupts), and capping on that one
/// yield sent a 1 MiB transfer's sender to sleep in most rounds: measured
/// (3.14, Intel Xeon, 2 vCPUs, a 1 MiB `bytes` transfer and ack whose
/// receiver copies for ~50 µs), 82-102 µs per transfer with the cap on the
/// first slow yield, 63-77 µs with two in a row, and 61-70 µs for the same
/// loop spinning in Python (the stdlib's spinning loop: 68-75 µs).
#[cfg(not(loom))]
const SHARED_YIELDS_TO_CAP: u32 = 2;
/// What this thread's backoffs carry from one blocking call to the next.
#[cfg(not(loom))]
#[derive(Clone, Copy)]
struct ThreadBackoff {
    /// The last yield took [`SHARED_CPU_YIELD`] or more (a hint for the next
    /// backoff's busy steps: nothing else).
    shared: bool,
    /// Yields in a row that ran another thread on this CPU (see
    /// [`MOVE_AFTER`]).
    run: u32,
    /// When this thread last moved off its CPU.
    moved: Option<Instant>,
    /// The yield window: [`SPIN_WINDOW`], grown and shrunk by
    /// [`next_window`] as the blocking calls end.
    window: Duration,
}

#[cfg(not(loom))]
std::thread_local! {
    static BACKOFF: std::cell::Cell<ThreadBackoff> = const {
        std::cell::Cell::new(ThreadBackoff { shared: false, run: 0, moved: None, window: SPIN_WINDOW })
    };
}

#[cfg(not(loom))]
impl ThreadBackoff {
    /// After a yield (`shared`: it ran another thread on this CPU): count
    /// such yields in a row and move off this CPU after [`MOVE_AFTER`] of
    /// them (plus `jitter`), at most once per [`MOVE_INTERVAL`].
    fn after_yield(&mut self, shared: bool, jitter: u32) {
        self.shared = shared;
        if !shared {
            self.run = 0;
            return;
        }
        self.run += 1;
        let due = self.moved.is_none_or(|t| t.elapsed() >= MOVE_INTERVAL);
        if self.run >= MOVE_AFTER + jitter && due {
            crate::affinity::move_off_this_cpu();
            self.run = 0;
            self.moved = Some(Instant::now());
        }
    }
}

/// The yield window after a blocking call that waited `waited` (from its
/// first yield) and slept (`slept`) or was caught by its backoff, given the
/// window it had.
///
/// A call that slept and still got its item soon after would have saved its
/// futex sleep and wake-up (5-50 µs on a VM: the idle vCPU halts and the
/// wake is an interrupt through the hypervisor) with a longer window: the
/// next one covers that wait plus a quarter, up to [`MAX_SPIN_WINDOW`]. A
/// wait beyond the cap plus a quarter (an idle worker, a long task, a copy
/// of many MiB) resets the window, so a thread that waits for long stretches
/// pays [`SPIN_WINDOW`] before each sleep, as before (a window that cannot
/// catch its waits would only add to them). A call caught by its backoff moves the
/// window an eighth of the way down to what it needed, no lower than
/// [`SPIN_WINDOW`]. Measured on 3.14 (AMD EPYC, 2 vCPUs): a 1 MiB `bytes`
/// transfer and ack, whose receiver copies for ~22 µs, took 24.0 µs (median
/// of 9 rounds) with the fixed 20 µs window against the stdlib's spinning
/// 23.1 µs, and 23.1-23.5 µs against 23.7-24.7 µs with a fixed 100 µs.
#[cfg(not(loom))]
fn next_window(window: Duration, waited: Duration, slept: bool) -> Duration {
    let want = waited + waited / 4;
    if slept {
        // The wait includes the wake-up's own latency: a near miss of the
        // cap keeps the cap rather than falling back to the floor.
        if waited <= MAX_SPIN_WINDOW + MAX_SPIN_WINDOW / 4 {
            want.clamp(SPIN_WINDOW, MAX_SPIN_WINDOW)
        } else {
            SPIN_WINDOW
        }
    } else if want < window {
        (window - (window - want) / 8).max(SPIN_WINDOW)
    } else {
        window
    }
}

/// The backoff of one blocking call: [`WaitClock::spin`] before each sleep,
/// [`WaitClock::sleeping`] as it sleeps, [`WaitClock::done`] once it got what
/// it waited for (which tunes this thread's yield window, [`next_window`]).
/// A call that ends otherwise (deadline, close, interrupt) teaches nothing.
///
/// Owned by the blocking call, on its thread; never shared.
pub(crate) struct WaitClock {
    #[cfg(not(loom))]
    start: Option<Instant>,
    #[cfg(not(loom))]
    slept: bool,
}

impl WaitClock {
    pub(crate) fn new() -> Self {
        WaitClock {
            #[cfg(not(loom))]
            start: None,
            #[cfg(not(loom))]
            slept: false,
        }
    }

    /// Before sleeping: spin, then yield, for a short bounded while until
    /// `ready` returns `true` (or the window passes). Called with no lock
    /// held; the caller then re-takes the lock and re-checks. `ready` reads
    /// the caller's lock-free hint (and justifies that load's ordering). Saves
    /// a futex sleep and wake-up per item when the other side is about to
    /// make progress.
    pub(crate) fn spin(&mut self, mut ready: impl FnMut() -> bool) {
        #[cfg(not(loom))]
        let steps = if BACKOFF.with(|c| c.get().shared) {
            SHARED_SPIN_STEPS
        } else {
            SPIN_STEPS
        };
        #[cfg(loom)]
        let steps = SPIN_STEPS;
        // The busy part: (1 << steps) - 1 `spin_loop`s, the budget of
        // crossbeam's exponential steps, with `ready` checked after every one
        // rather than between steps. Checked between doubling steps, a reply
        // that came during the 32-pause step waited for the rest of it:
        // measured on 3.15 (AMD EPYC, 2 vCPUs, a subinterpreter echoing over
        // two queues), a small-int round trip 650 -> 500 ns, a 1 KiB
        // `SharedBuffer` transfer and ack 1050 -> 730 ns; an executor round
        // trip pinned to one CPU unchanged (7.4 us). A check is one load of
        // the caller's hint; nothing contends for it but the one writer it
        // waits for.
        for _ in 0..(1u32 << steps) - 1 {
            if ready() {
                return;
            }
            std::hint::spin_loop();
        }
        #[cfg(not(loom))]
        {
            // The window counts from this spin's start (a call that woke
            // and must wait again yields for a whole window again).
            let window = BACKOFF.with(|c| c.get().window);
            let begun = Instant::now();
            // The call's wait is timed from its first yield: a call caught
            // by the busy part reads no clock (two reads were ~50 ns of a
            // 420 ns ping-pong) and has nothing to teach.
            self.start.get_or_insert(begun);
            let mut limit = window;
            // Yields in a row that took SHARED_CPU_YIELD or more.
            let mut slow = 0u32;
            while !ready() {
                let before = Instant::now();
                if before - begun >= limit {
                    return;
                }
                std::thread::yield_now();
                let shared = before.elapsed() >= SHARED_CPU_YIELD;
                slow = if shared { slow + 1 } else { 0 };
                if slow >= SHARED_YIELDS_TO_CAP {
                    // Others want this CPU: a long window would be theirs.
                    limit = window.min(SHARED_MAX_SPIN_WINDOW);
                }
                BACKOFF.with(|c| {
                    let mut b = c.get();
                    // 0-8 more by thread (where this thread's slot lives).
                    b.after_yield(shared, (c as *const _ as usize >> 4) as u32 % 5 * 2);
                    c.set(b);
                });
            }
        }
    }

    /// The call is about to sleep on its condition variable.
    pub(crate) fn sleeping(&mut self) {
        #[cfg(not(loom))]
        {
            self.slept = true;
        }
    }

    /// The call got what it waited for: tune this thread's window.
    pub(crate) fn done(self) {
        #[cfg(not(loom))]
        if let Some(start) = self.start {
            let waited = start.elapsed();
            BACKOFF.with(|c| {
                let mut b = c.get();
                b.window = next_window(b.window, waited, self.slept);
                c.set(b);
            });
        }
    }
}

/// What a blocked call should do next.
pub(crate) enum Next {
    /// The deadline has passed.
    Expired,
    /// Run the interrupt hook (with the lock released), then re-check.
    Hook,
    /// Wait on the condition variable for at most this long, then re-check.
    Wait(Duration),
}

/// The deadline and interrupt hook of one blocking call, and when the hook is
/// next due. Used by the thread making the call, under the call's lock (except
/// [`Blocker::run_hook`], which the caller runs unlocked).
pub(crate) struct Blocker<'a> {
    deadline: Option<Instant>,
    hook: &'a mut dyn FnMut() -> bool,
    /// Set the first time the call would block: a call that never blocks never
    /// reads the clock.
    next_hook: Option<Instant>,
    /// The hook ran since the last wait: wait at least once before the next run.
    hook_ran: bool,
}

impl<'a> Blocker<'a> {
    pub(crate) fn new(deadline: Option<Instant>, hook: &'a mut dyn FnMut() -> bool) -> Self {
        Blocker {
            deadline,
            hook,
            next_hook: None,
            hook_ran: false,
        }
    }

    /// Decide the next step of a call that cannot proceed right now.
    pub(crate) fn next(&mut self) -> Next {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return Next::Expired;
        }
        let next_hook = *self.next_hook.get_or_insert(now + INTERRUPT_CHECK_INTERVAL);
        if now >= next_hook && !self.hook_ran {
            return Next::Hook;
        }
        // Wait until the hook is due; if it just ran and is due again already
        // (a zero interval, or a slow hook), one full interval.
        let mut until = if next_hook > now {
            next_hook
        } else {
            now + INTERRUPT_CHECK_INTERVAL
        };
        if let Some(d) = self.deadline {
            until = until.min(d);
        }
        Next::Wait(until - now)
    }

    /// Run the hook; `true` means "stop". Call with no lock held.
    pub(crate) fn run_hook(&mut self) -> bool {
        let stop = (self.hook)();
        self.next_hook = Some(Instant::now() + INTERRUPT_CHECK_INTERVAL);
        self.hook_ran = true;
        stop
    }

    /// Record that the call waited once.
    pub(crate) fn waited(&mut self) {
        self.hook_ran = false;
    }
}

/// The condition variable one sleeping waiter waits on, its own: whoever
/// claims that waiter ([`Sleepers::wake_one`], [`Sleepers::wake_all`]) holds
/// a clone and notifies it once it has unlocked.
pub(crate) type Bell = Arc<Condvar>;

/// Wait accounting of the waiters of one side of a structure (e.g. the
/// getters of a queue), and which of them a change wakes. Only touched under
/// the structure's lock, which every waiter waits with.
///
/// `asleep.len() + woken` is the number of threads between
/// [`Sleepers::sleep`] and [`Sleepers::awake`]; `woken` of them have a
/// notification on its way.
///
/// # The most recent sleeper first
///
/// Each sleeper waits on a [`Bell`] of its own, and [`Sleepers::wake_one`]
/// rings the one that went to sleep last (a stack), where one condition
/// variable for the side would wake the one that has slept longest (the
/// kernel's futex queue is first in, first out). A pool of threads getting
/// tasks from one queue (an executor's workers) that gets one task at a time
/// then keeps handing it to the thread that just finished one and is still
/// spinning, or woke a moment ago, while the rest stay asleep. First in, first
/// out, the tasks went round every worker: each woke from a long sleep (a
/// futex wake-up of a halted vCPU), and the idle one yielded on the CPU of the
/// one at work. Measured on 3.14 (Intel Xeon, 2 vCPUs; benchmarks/README.md,
/// "The most recent sleeper first"): an executor with 2 workers round-tripped
/// a 10,000-int list in 214-227 µs against 172-183 µs with one worker; which
/// waiter gets an item is no part of a queue's contract (its items stay first
/// in, first out).
#[derive(Default)]
pub(crate) struct Sleepers {
    /// Sleepers no notification is on its way to, the most recent last.
    asleep: Vec<Bell>,
    woken: usize,
}

impl Sleepers {
    /// The calling thread is about to wait: the bell to wait on.
    pub(crate) fn sleep(&mut self) -> Bell {
        let bell = Arc::new(Condvar::new());
        self.asleep.push(bell.clone());
        bell
    }

    /// The calling thread's wait on `bell` returned, for whatever reason: if
    /// no one claimed it (a timeout, a spurious wake-up, or it found what it
    /// waited for before sleeping), it un-registers; else it consumes the
    /// notification on its way.
    pub(crate) fn awake(&mut self, bell: &Bell) {
        match self.asleep.iter().rposition(|b| Arc::ptr_eq(b, bell)) {
            Some(i) => {
                self.asleep.remove(i);
            }
            None => {
                debug_assert!(self.woken > 0, "awake without sleep");
                self.woken -= 1;
            }
        }
    }

    /// Sleepers no notification is on its way to.
    pub(crate) fn asleep(&self) -> usize {
        self.asleep.len()
    }

    /// Sleepers a notification is on its way to (woken, not yet running).
    pub(crate) fn woken(&self) -> usize {
        self.woken
    }

    /// Claim the most recent sleeper that no notification is on its way to:
    /// the bell to ring (`notify_one`, after unlocking).
    pub(crate) fn wake_one(&mut self) -> Option<Bell> {
        let bell = self.asleep.pop()?;
        self.woken += 1;
        Some(bell)
    }

    /// Claim every sleeper: the bells to ring (after unlocking).
    pub(crate) fn wake_all(&mut self) -> Vec<Bell> {
        self.woken += self.asleep.len();
        std::mem::take(&mut self.asleep)
    }

    /// Threads blocked (asleep or woken and not yet running).
    pub(crate) fn blocked(&self) -> usize {
        self.asleep.len() + self.woken
    }
}

/// Ring the bells [`Sleepers::wake_one`] or [`Sleepers::wake_all`] claimed
/// (with no lock held).
pub(crate) fn ring(bells: impl IntoIterator<Item = Bell>) {
    for b in bells {
        b.notify_one();
    }
}

#[cfg(all(test, not(loom)))]
mod window_tests {
    use super::{next_window, MAX_SPIN_WINDOW, SPIN_WINDOW};
    use std::time::Duration;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_sleep_that_ended_soon_after_grows_the_window_to_cover_it() {
        assert_eq!(next_window(SPIN_WINDOW, us(24), true), us(30));
        // Never below the floor, never above the cap.
        assert_eq!(next_window(SPIN_WINDOW, us(4), true), SPIN_WINDOW);
        assert_eq!(next_window(SPIN_WINDOW, us(100), true), us(125));
        assert_eq!(next_window(SPIN_WINDOW, us(170), true), MAX_SPIN_WINDOW);
    }

    #[test]
    fn a_long_sleep_resets_the_window() {
        // A near miss of the cap keeps the cap; beyond it plus a quarter,
        // the floor.
        assert_eq!(next_window(SPIN_WINDOW, us(240), true), MAX_SPIN_WINDOW);
        assert_eq!(next_window(MAX_SPIN_WINDOW, us(251), true), SPIN_WINDOW);
        assert_eq!(
            next_window(us(100), Duration::from_secs(3), true),
            SPIN_WINDOW
        );
    }

    #[test]
    fn a_wait_caught_by_the_backoff_moves_the_window_down_slowly() {
        // Needed 10 µs (12.5 with the margin) of a 50 µs window: an eighth
        // of the way down.
        let w = next_window(us(50), us(10), false);
        assert_eq!(w, us(50) - (us(50) - us(10) - us(10) / 4) / 8);
        // Repeated, it settles at the floor.
        let mut w = MAX_SPIN_WINDOW;
        for _ in 0..200 {
            w = next_window(w, us(1), false);
        }
        assert_eq!(w, SPIN_WINDOW);
        // A catch that needed the whole window keeps it.
        assert_eq!(next_window(us(40), us(39), false), us(40));
    }
}
