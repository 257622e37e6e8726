//! Owners, guards and views: the process-wide registry.
//!
//! An *owner* stands for one interpreter. Its life is
//! `Running → Finalizing → Finalized`; ids are never reused.
//!
//! The guard protocol (PEP 788's, for our own entry points) lives in one atomic
//! word per owner:
//!
//! ```text
//!  bit 63: FINALIZING   bit 62: FINALIZED   bits 0..62: open guards
//! ```
//!
//! - taking a guard is a CAS loop that fails as soon as a flag bit is set, so no
//!   guard is ever granted after finalization began (`guard_vs_finalize` model);
//! - dropping a guard decrements; if it was the last one and FINALIZING is set,
//!   it wakes the finalizer under `idle_lock`, the lock the finalizer re-checks
//!   the count under, so the wake-up cannot be lost;
//! - finalization sets FINALIZING with one `fetch_or`, then waits for the count
//!   to reach zero, reporting (never hanging silently) every `warn_after`.

use crate::attach::Attached;
use crate::error::{GuardError, PushError};
use crate::id::OwnerId;
use crate::pending::{run_calls, PendingCall, PendingQueue};
use crate::sync::{lock, wait_timeout, Arc, AtomicU64, Condvar, Mutex, Ordering};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

const FINALIZING: u64 = 1 << 63;
const FINALIZED: u64 = 1 << 62;
const COUNT_MASK: u64 = FINALIZED - 1;

/// The phase of an owner's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Guards may be taken.
    Running,
    /// Finalization has begun: no new guard; waiting for open ones, draining.
    Finalizing,
    /// Done: pending calls are refused, handles are dead.
    Finalized,
}

/// Wakes whoever drains pending calls for idle owners (the extension's reaper).
struct Signal {
    ready: Mutex<Vec<OwnerId>>,
    cv: Condvar,
}

impl Signal {
    fn notify(&self, id: OwnerId) {
        let mut g = lock(&self.ready);
        if !g.contains(&id) {
            g.push(id);
        }
        drop(g);
        self.cv.notify_all();
    }
}

/// The shared control block of one owner. Plain Rust memory, independent of
/// the interpreter's: views may outlive the interpreter safely.
pub(crate) struct OwnerCell {
    id: OwnerId,
    tag: u64,
    word: AtomicU64,
    pending: PendingQueue,
    /// Taken by the last guard's drop and by the finalizer's re-check.
    idle_lock: Mutex<()>,
    idle_cv: Condvar,
    signal: Arc<Signal>,
}

impl OwnerCell {
    fn state_of(word: u64) -> OwnerState {
        if word & FINALIZED != 0 {
            OwnerState::Finalized
        } else if word & FINALIZING != 0 {
            OwnerState::Finalizing
        } else {
            OwnerState::Running
        }
    }

    fn try_guard(&self) -> Result<(), GuardError> {
        // Relaxed first read: the CAS below validates it.
        let mut cur = self.word.load(Ordering::Relaxed);
        loop {
            if cur & (FINALIZING | FINALIZED) != 0 {
                return Err(GuardError::Finalizing(self.id));
            }
            if cur & COUNT_MASK == COUNT_MASK {
                return Err(GuardError::TooManyGuards(self.id));
            }
            // Acquire on success: the guard holder sees everything published
            // before the owner was last observed running (pairs with the
            // Release in `release_guard`). Failure needs nothing: we retry.
            match self.word.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    fn release_guard(&self) {
        // Release: the guard holder's work happens-before the finalizer's
        // Acquire load of a zero count.
        let prev = self.word.fetch_sub(1, Ordering::Release);
        debug_assert!(prev & COUNT_MASK > 0, "guard count underflow");
        if prev & COUNT_MASK == 1 && prev & FINALIZING != 0 {
            // Last guard while finalizing: wake the finalizer. Taking the lock
            // orders this wake-up after its re-check (no lost wake-up).
            let _g = lock(&self.idle_lock);
            self.idle_cv.notify_all();
        }
    }

    fn open_guards(&self) -> u64 {
        self.word.load(Ordering::Acquire) & COUNT_MASK
    }
}

/// A weak, copyable reference to an owner: it never keeps the interpreter
/// alive, and [`View::guard`] fails once finalization began.
///
/// Ownership: owned by whoever holds it; may be cloned, used and dropped from
/// any thread, attached to any interpreter or none (it holds only the owner's
/// small control block, never the interpreter's memory).
#[derive(Clone)]
pub struct View {
    cell: Arc<OwnerCell>,
}

impl View {
    /// The owner's id.
    pub fn id(&self) -> OwnerId {
        self.cell.id
    }

    /// The opaque tag given at registration (the extension stores the
    /// interpreter id there).
    pub fn tag(&self) -> u64 {
        self.cell.tag
    }

    /// The owner's phase, as of now.
    pub fn state(&self) -> OwnerState {
        // Acquire: a caller that sees Finalized also sees the finalization's work.
        OwnerCell::state_of(self.cell.word.load(Ordering::Acquire))
    }

    /// Whether guards can still be taken.
    pub fn is_running(&self) -> bool {
        self.state() == OwnerState::Running
    }

    /// Take a guard: the owner cannot finish finalizing while it is open.
    /// Never blocks; fails once finalization has begun.
    pub fn guard(&self) -> Result<Guard, GuardError> {
        self.cell.try_guard()?;
        Ok(Guard {
            cell: self.cell.clone(),
        })
    }

    /// Number of guards open right now (a snapshot).
    pub fn open_guards(&self) -> u64 {
        self.cell.open_guards()
    }

    /// Queue `call` to run in the owner. Refused (handed back) once the owner is
    /// finalized; accepted while it finalizes (the finalizer drains it).
    pub fn push_pending(&self, call: PendingCall) -> Result<(), PushError<PendingCall>> {
        let was_empty = self.cell.pending.push(call)?;
        if was_empty {
            self.cell.signal.notify(self.cell.id);
        }
        Ok(())
    }

    /// Whether calls are waiting (a hint, cheap enough for every entry point).
    pub fn has_pending(&self) -> bool {
        self.cell.pending.has_pending()
    }

    /// Number of queued calls (takes the queue's lock).
    pub fn pending_len(&self) -> usize {
        self.cell.pending.len()
    }

    /// Run every queued call, including ones queued by the calls themselves.
    /// Returns how many ran.
    ///
    /// # Panics
    /// If `attached` is for another owner (a bug in the caller), or after all
    /// calls ran (including those queued by the calls), re-raising the first
    /// panic of a call.
    pub fn drain_pending(&self, attached: &Attached<'_>) -> usize {
        assert_eq!(attached.owner(), self.cell.id, "drained from another owner");
        let mut n = 0;
        let mut first_panic = None;
        while self.cell.pending.has_pending() {
            n += run_calls(self.cell.pending.take_all(), attached, &mut first_panic);
        }
        if let Some(p) = first_panic {
            std::panic::resume_unwind(p);
        }
        n
    }

    pub(crate) fn same_owner(&self, id: OwnerId) -> bool {
        self.cell.id == id
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("id", &self.id())
            .field("state", &self.state())
            .finish()
    }
}

/// Keeps its owner from finishing finalization while it is open.
///
/// Ownership: held by one party; `Send + Sync`, may be dropped from any
/// thread. Not `Clone`: every guard is taken through [`View::guard`] so none is
/// ever created after finalization began.
pub struct Guard {
    cell: Arc<OwnerCell>,
}

impl Guard {
    /// The owner's id.
    pub fn id(&self) -> OwnerId {
        self.cell.id
    }

    /// A view of the same owner.
    pub fn view(&self) -> View {
        View {
            cell: self.cell.clone(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.cell.release_guard();
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").field("id", &self.id()).finish()
    }
}

/// A report that finalization is waiting on open guards for longer than
/// [`FinalizeOptions::warn_after`].
#[derive(Debug, Clone, Copy)]
pub struct SlowFinalize {
    /// The owner being finalized.
    pub id: OwnerId,
    /// How long finalization has waited so far.
    pub waited: Duration,
    /// Guards still open.
    pub open_guards: u64,
}

/// How a finalization behaves while guards are open.
pub struct FinalizeOptions<'a> {
    /// Report after this long, then again every such interval. The wait itself
    /// never gives up: freeing what a guard holder still uses would be worse.
    pub warn_after: Duration,
    /// Called with each report (the extension prints a loud warning).
    pub on_slow: &'a mut dyn FnMut(SlowFinalize),
}

/// What a finalization did.
#[derive(Debug, Clone, Copy)]
pub struct FinalizeReport {
    /// Time spent waiting for open guards.
    pub waited: Duration,
    /// Pending calls run during finalization.
    pub calls_run: usize,
    /// Pending calls dropped without running (only when finalized unattached).
    pub calls_abandoned: usize,
}

/// The unique right to finalize one owner, held by (the extension's record of)
/// its interpreter.
///
/// Ownership: one per owner, not `Clone`. Finalize it from a thread attached to
/// the owner's interpreter ([`Owner::finalize`]); dropping it unfinalized
/// finalizes without running pending calls (see [`Owner::abandon`]).
pub struct Owner {
    view: View,
    registry: Arc<RegistryInner>,
    done: bool,
}

impl Owner {
    /// The owner's id.
    pub fn id(&self) -> OwnerId {
        self.view.id()
    }

    /// A view of this owner.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Finalize: refuse new guards, wait for open ones (reporting while slow),
    /// drain pending calls in the owner, refuse further calls, mark Finalized and
    /// leave the registry.
    ///
    /// `attached` must be for this owner (the calling thread is attached to it).
    ///
    /// # Panics
    /// If `attached` is for another owner, or re-raising the first panic of a
    /// pending call once finalization has completed (the owner is Finalized and
    /// out of the registry either way).
    pub fn finalize(
        mut self,
        attached: &Attached<'_>,
        opts: FinalizeOptions<'_>,
    ) -> FinalizeReport {
        assert!(
            self.view.same_owner(attached.owner()),
            "finalized from another owner"
        );
        self.finish(Some(attached), opts)
    }

    /// Finalize without being attached to the owner (its interpreter is already
    /// gone or cannot be entered): waits for guards like [`Owner::finalize`] but
    /// drops pending calls instead of running them.
    pub fn abandon(mut self, opts: FinalizeOptions<'_>) -> FinalizeReport {
        self.finish(None, opts)
    }

    /// Begin finalization: from now on no guard can be taken. Idempotent.
    /// [`Owner::finalize`] does this itself; call it first when the wait for
    /// open guards must happen elsewhere (see [`Owner::wait_for_guards`]).
    pub fn begin_finalize(&self) {
        // AcqRel: Release publishes the owner's state to guard-takers that fail;
        // Acquire pairs with releases of guards dropped before this point.
        self.view.cell.word.fetch_or(FINALIZING, Ordering::AcqRel);
    }

    /// Begin finalization and wait until no guard is open, reporting through
    /// `opts.on_slow` while slow. The extension calls this with its thread
    /// detached from the interpreter, so that guard holders can still enter it,
    /// then calls [`Owner::finalize`] attached (whose own wait is then instant:
    /// after `begin_finalize` the count only goes down).
    pub fn wait_for_guards(&self, opts: &mut FinalizeOptions<'_>) -> Duration {
        self.wait_for_guards_until(opts, None)
    }

    /// Like [`Owner::wait_for_guards`], but also stop waiting as soon as
    /// `enough(open_guards)` says so (checked at least every 50 ms). For the
    /// extension's process exit, where guards that only pin memory lent to an
    /// exiting interpreter must not hang the exit. The guards still open stay
    /// valid objects: dropping them later only lowers the count.
    pub fn wait_for_guards_until(
        &self,
        opts: &mut FinalizeOptions<'_>,
        mut enough: Option<&mut dyn FnMut(u64) -> bool>,
    ) -> Duration {
        self.begin_finalize();
        let cell = &self.view.cell;
        let start = Instant::now();
        let mut next_report = opts.warn_after;
        let mut g = lock(&cell.idle_lock);
        loop {
            let open = cell.open_guards();
            if open == 0 || enough.as_mut().is_some_and(|f| f(open)) {
                break;
            }
            let waited = start.elapsed();
            if waited >= next_report {
                drop(g);
                (opts.on_slow)(SlowFinalize {
                    id: cell.id,
                    waited,
                    open_guards: open,
                });
                next_report = waited + opts.warn_after;
                g = lock(&cell.idle_lock);
                continue;
            }
            let mut nap = next_report - waited;
            if enough.is_some() {
                // Only the last guard's drop wakes us: poll the predicate.
                nap = nap.min(Duration::from_millis(50));
            }
            g = wait_timeout(&cell.idle_cv, g, nap);
        }
        start.elapsed()
    }

    /// [`Owner::finalize`], stopping the wait for open guards early when
    /// `enough(open_guards)` says so (see [`Owner::wait_for_guards_until`]).
    pub fn finalize_when(
        mut self,
        attached: &Attached<'_>,
        opts: FinalizeOptions<'_>,
        enough: &mut dyn FnMut(u64) -> bool,
    ) -> FinalizeReport {
        assert!(
            self.view.same_owner(attached.owner()),
            "finalized from another owner"
        );
        self.finish_when(Some(attached), opts, Some(enough))
    }

    fn finish(
        &mut self,
        attached: Option<&Attached<'_>>,
        opts: FinalizeOptions<'_>,
    ) -> FinalizeReport {
        self.finish_when(attached, opts, None)
    }

    fn finish_when(
        &mut self,
        attached: Option<&Attached<'_>>,
        mut opts: FinalizeOptions<'_>,
        enough: Option<&mut dyn FnMut(u64) -> bool>,
    ) -> FinalizeReport {
        self.done = true;
        let waited = self.wait_for_guards_until(&mut opts, enough);
        let cell = &self.view.cell;

        let mut calls_run = 0;
        let mut calls_abandoned = 0;
        // A panicking call must not cut finalization short: the queue would stay
        // open (later pushes stranded), the owner Finalizing forever and still in
        // the registry. Finish first, then resume the panic.
        let mut first_panic = None;
        match attached {
            Some(a) => loop {
                calls_run += run_calls(cell.pending.take_all(), a, &mut first_panic);
                if cell.pending.close_if_empty() {
                    break;
                }
            },
            None => calls_abandoned = cell.pending.close_and_take().len(),
        }

        // Release: whoever sees FINALIZED sees the drained queue and all the
        // finalization's effects.
        cell.word.fetch_or(FINALIZED, Ordering::Release);
        lock(&self.registry.owners).remove(&cell.id.get());
        if let Some(p) = first_panic {
            std::panic::resume_unwind(p);
        }
        FinalizeReport {
            waited,
            calls_run,
            calls_abandoned,
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.done {
            let mut ignore = |_: SlowFinalize| {};
            self.finish(
                None,
                FinalizeOptions {
                    warn_after: Duration::from_secs(3600),
                    on_slow: &mut ignore,
                },
            );
        }
    }
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owner").field("view", &self.view).finish()
    }
}

struct RegistryInner {
    owners: Mutex<BTreeMap<u64, View>>,
    next_id: AtomicU64,
    signal: Arc<Signal>,
}

/// The registry of owners. The extension uses one per process
/// ([`Registry::global`]); tests and loom models make their own.
///
/// Ownership: shared; every method may be called from any thread.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            inner: Arc::new(RegistryInner {
                owners: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(1),
                signal: Arc::new(Signal {
                    ready: Mutex::new(Vec::new()),
                    cv: Condvar::new(),
                }),
            }),
        }
    }

    /// The process-wide registry.
    #[cfg(not(loom))]
    pub fn global() -> &'static Registry {
        static GLOBAL: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(Registry::new)
    }

    /// Register a new owner in the Running state. `tag` is opaque to the engine.
    pub fn register(&self, tag: u64) -> Owner {
        // Relaxed: uniqueness needs only the atomicity of the add.
        let id = OwnerId::new(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let view = View {
            cell: Arc::new(OwnerCell {
                id,
                tag,
                word: AtomicU64::new(0),
                pending: PendingQueue::new(),
                idle_lock: Mutex::new(()),
                idle_cv: Condvar::new(),
                signal: self.inner.signal.clone(),
            }),
        };
        lock(&self.inner.owners).insert(id.get(), view.clone());
        Owner {
            view,
            registry: self.inner.clone(),
            done: false,
        }
    }

    /// The view of a registered (not yet Finalized) owner.
    pub fn get(&self, id: OwnerId) -> Option<View> {
        lock(&self.inner.owners).get(&id.get()).cloned()
    }

    /// The first registered owner with this tag.
    pub fn find_tag(&self, tag: u64) -> Option<View> {
        lock(&self.inner.owners)
            .values()
            .find(|v| v.tag() == tag)
            .cloned()
    }

    /// Owners registered and not yet Finalized.
    pub fn live_count(&self) -> usize {
        lock(&self.inner.owners).len()
    }

    /// Views of every live owner, in id order.
    pub fn views(&self) -> Vec<View> {
        lock(&self.inner.owners).values().cloned().collect()
    }

    /// Wait up to `timeout` until some owner has pending calls, and return their
    /// views (owners that left the registry meanwhile are skipped). Used by the
    /// reaper thread, which attaches to each under a guard and drains it.
    pub fn wait_pending(&self, timeout: Duration) -> Vec<View> {
        let sig = &self.inner.signal;
        let mut g = lock(&sig.ready);
        if g.is_empty() {
            g = wait_timeout(&sig.cv, g, timeout);
        }
        let ids = std::mem::take(&mut *g);
        drop(g);
        let owners = lock(&self.inner.owners);
        ids.iter()
            .filter_map(|id| owners.get(&id.get()).cloned())
            .collect()
    }

    /// Hold the registry across a `fork()` ([`crate::fork`]): its owner
    /// table, the reaper's signal, and each owner's pending-call queue and
    /// idle lock. `false` as soon as one is taken (never waits for it).
    pub fn fork_hold(&self, holds: &mut crate::fork::Holds) -> bool {
        use crate::fork::{hold_in, hold_in_with};
        let Some(cells) = hold_in_with(
            holds,
            &self.inner,
            |r| &r.owners,
            |owners| owners.values().map(|v| v.cell.clone()).collect::<Vec<_>>(),
        ) else {
            return false;
        };
        hold_in(holds, &self.inner.signal, |s| &s.ready)
            && cells.iter().all(|c| {
                hold_in(holds, c, |c| c.pending.lock_word()) && hold_in(holds, c, |c| &c.idle_lock)
            })
    }

    /// Wake every `wait_pending` caller (e.g. to shut the reaper down).
    pub fn wake_waiters(&self) {
        self.inner.signal.cv.notify_all();
    }
}
