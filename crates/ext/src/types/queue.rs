//! `Queue`: PEP 734's cross-interpreter queue, over the engine's
//! `crossinterp_core::queue::Queue`.
//!
//! The queue itself is owner-free Rust memory ([`SharedQueue`], in an `Arc`):
//! every interpreter that holds it has its own Python object (an instance of
//! that interpreter's `crossinterp.queues.Queue`, a subclass of the heap type
//! `_native.QueueBase` made per module) pointing at the same `SharedQueue`.
//! Items are interpreter-neutral [`Value`]s, each bound to the interpreter that
//! put it: when that interpreter is finalized its items follow their unbound
//! policy (`UNBOUND`, `UNBOUND_ERROR`, `UNBOUND_REMOVE`), as in CPython's
//! `_interpqueues`.
//!
//! Blocking `put`/`get` detach from the interpreter (the GIL is released) and
//! sleep until the event itself wakes them; every ~50 ms they re-attach briefly
//! to check for signals (KeyboardInterrupt), which is not polling for data.

use super::ids::{self, HasId, IdTable};
use super::Entry;
use crate::cstr;
use crate::ffi::args::{arity, blocking, bool_of, deadline, timeout_of, Args, KwArgs};
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::runtime::owners::Event;
use crate::runtime::state::Import;
use crate::runtime::{self, Error};
use crate::xi::{self, Converter, Crosses, Shared, Value};
use crossinterp_core::sync::Arc;
use crossinterp_core::{GetError, PutError, Queue, Side};
use std::ffi::c_int;
use std::time::Duration;

static QUEUE_CLASS: Import = Import::new(cstr!("crossinterp.queues"), cstr!("Queue"));
static UNBOUND: Import = Import::new(cstr!("crossinterp.queues"), cstr!("UNBOUND"));
/// `_known_refs`: this interpreter's interning table (`_Interned.refs` in
/// `queues.py`), id -> a weak reference to its one `Queue` object.
static KNOWN_REFS: Import = Import::new(cstr!("crossinterp.queues"), cstr!("_known_refs"));
/// `_known_sweep()`: drop the table's dead entries once it has doubled.
static KNOWN_SWEEP: Import = Import::new(cstr!("crossinterp.queues"), cstr!("_known_sweep"));
/// `_known_acquire()` / `_known_release()`: the table's lock (`_Interned.lock`),
/// under which an entry that is there is replaced.
static KNOWN_ACQUIRE: Import = Import::new(cstr!("crossinterp.queues"), cstr!("_known_acquire"));
static KNOWN_RELEASE: Import = Import::new(cstr!("crossinterp.queues"), cstr!("_known_release"));
/// How many entries the table had after its last sweep, as the native side
/// knows it (`_Interned.swept`'s floor: the Python side keeps the truth).
const SWEEP_FLOOR: isize = 64;

/// What happens to an item whose interpreter was destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    /// `get` returns the `UNBOUND` sentinel in its place.
    Unbound = 1,
    /// `get` raises `ItemInterpreterDestroyed`.
    Error = 2,
    /// The item is removed from the queue.
    Remove = 3,
}

impl Unbound {
    fn from_int(v: i64) -> Option<Unbound> {
        match v {
            1 => Some(Unbound::Unbound),
            2 => Some(Unbound::Error),
            3 => Some(Unbound::Remove),
            _ => None,
        }
    }
}

/// One queued item. Plain data: may be dropped anywhere.
pub struct Item {
    value: Value,
    /// The interpreter that put it (CPython's id).
    origin: i64,
    unbound: Unbound,
    /// Set when `origin` was finalized.
    gone: bool,
}

/// A queue shared by every interpreter that holds it.
///
/// Ownership: owned by no interpreter; kept alive by an `Arc` held by each
/// Python `Queue` object (in any interpreter) and by values in transit. May be
/// used and dropped from any thread.
pub struct SharedQueue {
    q: Queue<Item>,
    /// The `maxsize` it was made with, as reported (negative: unbounded, as
    /// 0 is; the engine queue holds 0 then).
    maxsize: i64,
    default_unbound: Unbound,
}

impl std::fmt::Debug for SharedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedQueue({})", self.q.id())
    }
}

impl PartialEq for SharedQueue {
    fn eq(&self, other: &Self) -> bool {
        self.q.id() == other.q.id()
    }
}

impl HasId for SharedQueue {
    fn id(&self) -> u64 {
        self.q.id()
    }
}

/// Every live queue, by id (weak): for `Queue` lookup by id and for applying
/// unbound policies when an interpreter is finalized.
static LIVE: IdTable<SharedQueue> = IdTable::new();

/// Hold every live queue across a `fork()` (`runtime::fork`).
pub fn fork_hold(holds: &mut crossinterp_core::fork::Holds) -> bool {
    LIVE.fork_hold(holds, |s, holds| s.q.fork_hold(holds))
}

/// The queues' part in owners' lives: when interpreter `iid` is finalized,
/// each of its items follows its unbound policy.
fn on_event(event: &Event<'_>) {
    let Event::Gone(iid) = *event else { return };
    for s in LIVE.all() {
        let removed =
            s.q.remove_where(|it| it.origin == iid && it.unbound == Unbound::Remove);
        drop(removed);
        s.q.for_each_mut(|it| {
            if it.origin == iid {
                it.gone = true;
            }
        });
    }
}

/// The value of a `QueueBase` object (any interpreter), and of a queue in
/// transit: the shared queue.
#[derive(Debug)]
pub struct QueueBase(Arc<SharedQueue>);

type Q<'a> = This<'a, QueueBase>;

impl Shared for SharedQueue {
    /// The attached interpreter's `crossinterp.queues.Queue` object for
    /// this queue: the one it already has, else a new one.
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        // The object this interpreter already has, read straight from the
        // table (a dict lookup and a weakref read), else a new one entered
        // there (a weakref and an insert-if-absent): no Python call either
        // way. Measured on 3.14 (`bench_crossing.py`): a queue round trip
        // 886 -> 597 ns (1.14x a small int's), `put`+`get` 260 -> 172 ns.
        let id = self.q.id();
        interned(id, || {
            runtime::new_subclass_instance(&QUEUE_CLASS, QueueBase(self))
        })
    }
}

/// This interpreter's one `Queue` object for queue `id`: the one in the
/// interning table, else `make()`'s, entered there if `id` has no entry (or
/// the live object another thread entered first). A dead entry not yet
/// swept (the queue's last object here died, as after every
/// `Interpreter.call` that passed it) is replaced under the table's lock
/// (`_Interned` in `queues.py` has the rule that keeps one object per id:
/// only a missing id is filled without the lock). Replaced here rather than
/// by a call into `queues.py`, measured on 3.14 (`bench_crossing.py
/// --quick`, `Interpreter.call(echo, queue)`): 1,257-1,290 -> 971-1,010 ns
/// (2.2x -> 1.7x a small int's).
fn interned(id: u64, make: impl FnOnce() -> PyResult<Owned>) -> PyResult<Owned> {
    let types = &runtime::current()?.types;
    let refs = types.import(&KNOWN_REFS)?;
    // SAFETY: attached; `refs` is the module's dict (held by the type
    // table); every new reference is owned by an `Owned`. PyDict_GetItemRef,
    // PyDict_SetDefaultRef and PyWeakref_GetRef give strong references (or
    // none) and are atomic on free-threaded builds; a weak reference with no
    // callback and the dict calls run no Python code.
    unsafe {
        let key = Owned::from_new(sys::PyLong_FromUnsignedLongLong(id))?;
        if let Some(q) = live_entry(refs, &key)? {
            return Ok(q);
        }
        let obj = make()?;
        let r = Owned::from_new(sys::PyWeakref_NewRef(obj.as_ptr(), std::ptr::null_mut()))?;
        let mut there = std::ptr::null_mut();
        let present = ffi::capi::PyDict_SetDefaultRef(refs, key.as_ptr(), r.as_ptr(), &mut there);
        if present < 0 {
            return Err(PyErrSet);
        }
        let there = Owned::from_new(there)?;
        if present == 0 {
            // Only a table past twice the floor may need a sweep (the Python
            // side decides from its own count).
            if sys::PyDict_Size(refs) >= 2 * SWEEP_FLOOR {
                let sweep = types.import(&KNOWN_SWEEP)?;
                drop(Owned::from_new(sys::PyObject_CallNoArgs(sweep))?);
            }
            return Ok(obj);
        }
        if let Some(q) = referent(there)? {
            return Ok(q);
        }
        // A dead entry: replaced under the lock, unless another thread
        // entered a live object meanwhile.
        let acquire = types.import(&KNOWN_ACQUIRE)?;
        let release = types.import(&KNOWN_RELEASE)?;
        drop(Owned::from_new(sys::PyObject_CallNoArgs(acquire))?);
        let replaced = (|| {
            if let Some(q) = live_entry(refs, &key)? {
                return Ok(q);
            }
            if sys::PyDict_SetItem(refs, key.as_ptr(), r.as_ptr()) < 0 {
                return Err(PyErrSet);
            }
            Ok(obj)
        })();
        // Released whatever happened, the exception (if any) kept.
        let exc = sys::PyErr_GetRaisedException();
        let done = sys::PyObject_CallNoArgs(release);
        if done.is_null() {
            // Releasing a lock this thread holds does not fail; if it did,
            // its error is the one to see.
            if !exc.is_null() {
                sys::Py_DecRef(exc);
            }
            return Err(PyErrSet);
        }
        sys::Py_DecRef(done);
        if !exc.is_null() {
            sys::PyErr_SetRaisedException(exc);
        }
        replaced
    }
}

/// The live object table `refs` holds for `key`, if any (no entry, or a
/// dead one: `None`).
///
/// # Safety
/// Attached; `refs` is the interning table (a live dict of weak references).
unsafe fn live_entry(refs: *mut sys::PyObject, key: &Owned) -> PyResult<Option<Owned>> {
    let mut found = std::ptr::null_mut();
    // SAFETY: attached; GetItemRef gives a new reference or none, and runs no
    // Python code for an int key.
    unsafe {
        if sys::PyDict_GetItemRef(refs, key.as_ptr(), &mut found) < 0 {
            return Err(PyErrSet);
        }
        if found.is_null() {
            return Ok(None);
        }
        referent(Owned::from_new(found)?)
    }
}

/// The live object of weak reference `r`, if any.
fn referent(r: Owned) -> PyResult<Option<Owned>> {
    let mut obj = std::ptr::null_mut();
    // SAFETY: attached; `r` is a live weak reference; GetRef gives a new
    // reference or null.
    unsafe {
        if sys::PyWeakref_GetRef(r.as_ptr(), &mut obj) < 0 {
            return Err(PyErrSet);
        }
        Ok(if obj.is_null() {
            None
        } else {
            Some(Owned::from_new(obj)?)
        })
    }
}

/// The policy code of an `unbounditems` argument: absent/None → the queue's
/// default; else one of the `crossinterp.queues` policy objects.
fn unbound_of(obj: Option<*mut sys::PyObject>, default: Unbound) -> PyResult<Unbound> {
    let Some(obj) = obj else { return Ok(default) };
    // SAFETY: attached; `obj` is a live bound argument.
    unsafe {
        if obj == sys::Py_None() {
            return Ok(default);
        }
        let code = sys::PyObject_GetAttrString(obj, cstr!("_code").as_ptr());
        let v = if code.is_null() {
            sys::PyErr_Clear();
            None
        } else {
            let code = Owned::from_new(code)?;
            let v = sys::PyLong_AsLongLong(code.as_ptr());
            if v == -1 && !sys::PyErr_Occurred().is_null() {
                sys::PyErr_Clear();
            }
            Unbound::from_int(v)
        };
        v.ok_or_else(|| {
            ffi::raise(
                Exc::TypeError,
                &format!(
                    "unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE, not {}",
                    xi::type_name(obj)
                ),
            )
        })
    }
}

fn do_put(
    this: Q,
    obj: *mut sys::PyObject,
    block: bool,
    timeout: Option<Duration>,
    unbound: Option<*mut sys::PyObject>,
    strict: bool,
) -> PyResult<()> {
    // SAFETY: live argument of the attached interpreter.
    let value = unsafe { xi::to_value(obj, strict)? };
    put_value(this, value, block, timeout, unbound)
}

fn put_value(
    this: Q,
    value: xi::Value,
    block: bool,
    timeout: Option<Duration>,
    unbound: Option<*mut sys::PyObject>,
) -> PyResult<()> {
    let shared = &this.0;
    let unbound = unbound_of(unbound, shared.default_unbound)?;
    let item = Item {
        value,
        origin: ffi::interp::current().1,
        unbound,
        gone: false,
    };
    // Room now (always, unbounded): put without detaching from the
    // interpreter, which would cost more than the put itself; only a put
    // that must wait detaches.
    let r = match (shared.q.try_put(item), deadline(block, timeout)) {
        (Err(PutError::Full(item)), Some(dl)) => blocking(|intr| shared.q.put(item, dl, intr)),
        (r, _) => r,
    };
    match r {
        Ok(()) => Ok(()),
        Err(PutError::Full(_)) => Err(Error::QueueFull.into()),
        Err(PutError::Closed(_)) => Err(Error::QueueClosed.into()),
        Err(PutError::Interrupted(_)) => Err(PyErrSet),
    }
}

fn do_get(this: Q, block: bool, timeout: Option<Duration>) -> PyResult<Owned> {
    let shared = &this.0;
    let dl = deadline(block, timeout);
    loop {
        // An item there now: take it without detaching from the interpreter
        // (which would cost more than the get itself); only a get that must
        // wait detaches.
        let r = match (shared.q.try_get(), dl) {
            (Err(GetError::Empty), Some(dl)) => blocking(|intr| shared.q.get(dl, intr)),
            (r, _) => r,
        };
        let item = match r {
            Ok(item) => item,
            Err(GetError::Empty) => return Err(Error::QueueEmpty.into()),
            Err(GetError::Closed) => return Err(Error::QueueClosed.into()),
            Err(GetError::Interrupted) => return Err(PyErrSet),
        };
        if item.gone {
            match item.unbound {
                Unbound::Unbound => {
                    let u = runtime::current()?.types.import(&UNBOUND)?;
                    // SAFETY: attached; the table holds `u`.
                    return Ok(unsafe { Owned::from_borrowed(u) });
                }
                Unbound::Error => return Err(Error::ItemInterpreterDestroyed(item.origin).into()),
                Unbound::Remove => continue,
            }
        }
        return xi::into_python(item.value);
    }
}

static QUEUES_MODULE: Import = Import::new(cstr!("crossinterp"), cstr!("queues"));

/// A timeout's time left, its deadline taken on the module's
/// `time.monotonic` as the stdlib's queue takes it (never the wall clock;
/// read through `crossinterp.queues.time`, as CPython's tests patch it). Only
/// calls with a timeout pay for it; the wait itself is the engine's, on a
/// monotonic clock too.
fn monotonic_timeout(timeout: Option<Duration>) -> PyResult<Option<Duration>> {
    let Some(t) = timeout else { return Ok(None) };
    let Ok(Ok(module)) = runtime::with_current(|rec| rec.types.import(&QUEUES_MODULE)) else {
        // No record any more (a late atexit callback): the engine's own
        // monotonic clock alone.
        // SAFETY: attached; drop the lookup's error.
        unsafe { sys::PyErr_Clear() };
        return Ok(Some(t));
    };
    let clock = || -> PyResult<f64> {
        // SAFETY: attached; `module` is held by the type table.
        unsafe {
            let time =
                Owned::from_new(sys::PyObject_GetAttrString(module, cstr!("time").as_ptr()))?;
            let now = Owned::from_new(sys::PyObject_CallMethod(
                time.as_ptr(),
                cstr!("monotonic").as_ptr(),
                std::ptr::null(),
            ))?;
            let v = sys::PyFloat_AsDouble(now.as_ptr());
            if v == -1.0 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
            Ok(v)
        }
    };
    let end = clock()? + t.as_secs_f64();
    let left = (end - clock()?).max(0.0);
    Ok(Some(Duration::try_from_secs_f64(left).unwrap_or(t)))
}

/// A side code: 0 getters, 1 putters.
fn side_of(obj: *mut sys::PyObject) -> PyResult<Side> {
    match crate::ffi::args::arg_i64(obj, "side")? {
        0 => Ok(Side::Get),
        1 => Ok(Side::Put),
        v => Err(ffi::raise(
            Exc::ValueError,
            &format!("side must be 0 (get) or 1 (put), not {v}"),
        )),
    }
}

fn required(name: &str, v: Option<*mut sys::PyObject>) -> PyResult<*mut sys::PyObject> {
    v.ok_or_else(|| {
        ffi::raise(
            Exc::TypeError,
            &format!("{name} missing required argument 'obj'"),
        )
    })
}

impl QueueBase {
    /// `put(obj, block=True, timeout=None, *, unbounditems=None, strict=False)`
    fn put(this: Q, args: KwArgs) -> PyResult<()> {
        let [obj, block, timeout, unbound, strict] = args.bind(
            "put",
            [
                cstr!("obj"),
                cstr!("block"),
                cstr!("timeout"),
                cstr!("unbounditems"),
                cstr!("strict"),
            ],
            3,
        )?;
        do_put(
            this,
            required("put()", obj)?,
            bool_of(block, true)?,
            monotonic_timeout(timeout_of(timeout)?)?,
            unbound,
            bool_of(strict, false)?,
        )
    }

    /// `put_nowait(obj, *, unbounditems=None, strict=False)`
    fn put_nowait(this: Q, args: KwArgs) -> PyResult<()> {
        let [obj, unbound, strict] = args.bind(
            "put_nowait",
            [cstr!("obj"), cstr!("unbounditems"), cstr!("strict")],
            1,
        )?;
        do_put(
            this,
            required("put_nowait()", obj)?,
            false,
            None,
            unbound,
            bool_of(strict, false)?,
        )
    }

    /// `_put_native(obj)`: `put(obj)` for a value that crosses natively,
    /// containers included; `False` (nothing put) if it would need pickle.
    /// For callers that pickle such values apart (the executor), so that the
    /// receiver's `get` never unpickles.
    fn put_native(this: Q, args: Args) -> PyResult<bool> {
        arity("_put_native", args, 1)?;
        // SAFETY: live argument of the attached interpreter.
        let Some(value) = (unsafe { xi::to_value_native(args[0])? }) else {
            return Ok(false);
        };
        put_value(this, value, true, None, None)?;
        Ok(true)
    }

    /// `get(block=True, timeout=None)`
    fn get(this: Q, args: KwArgs) -> PyResult<Owned> {
        let [block, timeout] = args.bind("get", [cstr!("block"), cstr!("timeout")], 2)?;
        do_get(
            this,
            bool_of(block, true)?,
            monotonic_timeout(timeout_of(timeout)?)?,
        )
    }

    fn get_nowait(this: Q, args: Args) -> PyResult<Owned> {
        arity("get_nowait", args, 0)?;
        do_get(this, false, None)
    }

    fn qsize(this: Q, args: Args) -> PyResult<usize> {
        arity("qsize", args, 0)?;
        Ok(this.0.q.len())
    }

    fn empty(this: Q, args: Args) -> PyResult<bool> {
        arity("empty", args, 0)?;
        Ok(this.0.q.is_empty())
    }

    fn full(this: Q, args: Args) -> PyResult<bool> {
        arity("full", args, 0)?;
        Ok(this.0.q.is_full())
    }

    fn id(this: Q) -> PyResult<u64> {
        Ok(this.0.q.id())
    }

    fn maxsize(this: Q) -> PyResult<i64> {
        Ok(this.0.maxsize)
    }

    fn unbound_default(this: Q) -> PyResult<i64> {
        Ok(this.0.default_unbound as i64)
    }

    /// `QueueBase.__new__(cls, maxsize, unbound)` makes a new queue
    /// (`maxsize` <= 0: unbounded); `QueueBase.__new__(cls, id)` is a new
    /// object for the live queue `id` (`QueueNotFoundError` if none).
    fn new(
        _cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<QueueBase> {
        // SAFETY: attached; `args` is a tuple, `kwargs` NULL or a dict.
        unsafe {
            if !kwargs.is_null() && sys::PyDict_Size(kwargs) != 0 {
                return Err(ffi::raise(
                    Exc::TypeError,
                    "QueueBase() takes no keyword arguments",
                ));
            }
            let n = sys::PyTuple_Size(args);
            if n != 1 && n != 2 {
                return Err(ffi::raise(
                    Exc::TypeError,
                    "QueueBase() takes 1 (id) or 2 (maxsize, unbound) arguments",
                ));
            }
            let a = sys::PyLong_AsLongLong(sys::PyTuple_GetItem(args, 0));
            if a == -1 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
            if n == 1 {
                if a < 0 {
                    return Err(ffi::raise(
                        Exc::ValueError,
                        &format!("queue id must be a non-negative int, got {a}"),
                    ));
                }
                let shared = LIVE.get(a as u64).ok_or(Error::QueueNotFound(a as u64))?;
                return Ok(QueueBase(shared));
            }
            let b = sys::PyLong_AsLongLong(sys::PyTuple_GetItem(args, 1));
            if b == -1 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
            let unbound = Unbound::from_int(b)
                .ok_or_else(|| ffi::raise(Exc::ValueError, "bad unbounditems"))?;
            let cap = usize::try_from(a.max(0))
                .map_err(|_| ffi::raise(Exc::OverflowError, "maxsize too large"))?;
            Ok(QueueBase(LIVE.insert(SharedQueue {
                q: Queue::new(cap),
                maxsize: a,
                default_unbound: unbound,
            })))
        }
    }

    /// `QueueBase._live()`: every live queue, oldest first, as this
    /// interpreter's `Queue` objects.
    fn live(_cls: *mut sys::PyTypeObject, args: Args) -> PyResult<Owned> {
        arity("_live", args, 0)?;
        // SAFETY: attached.
        let list = unsafe { Owned::from_new(sys::PyList_New(0))? };
        for s in LIVE.all() {
            let q = s.to_python()?;
            // SAFETY: attached; `list` is a live list, `q` a live object.
            if unsafe { sys::PyList_Append(list.as_ptr(), q.as_ptr()) } < 0 {
                return Err(PyErrSet);
            }
        }
        Ok(list)
    }

    /// `_watch(waker, side)`: register the loop's waker for getters (side 0)
    /// or putters (side 1); returns the token for `_unwatch`.
    fn watch(this: Q, args: Args) -> PyResult<u64> {
        arity("_watch", args, 2)?;
        // SAFETY: attached; `args[0]` is a live argument.
        let waker = unsafe { super::waker::waker_arg(args[0])? };
        Ok(this.0.q.watch(side_of(args[1])?, waker))
    }

    /// `_unwatch(side, token)` -> bool
    fn unwatch(this: Q, args: Args) -> PyResult<bool> {
        arity("_unwatch", args, 2)?;
        let side = side_of(args[0])?;
        let token = super::waker::token_arg(args[1])?;
        Ok(token.is_some_and(|t| this.0.q.unwatch(side, t)))
    }

    /// `_watchers(side)` -> int: wakers registered on that side now.
    fn watchers(this: Q, args: Args) -> PyResult<usize> {
        arity("_watchers", args, 1)?;
        Ok(this.0.q.watchers(side_of(args[0])?))
    }

    fn hash(this: Q) -> PyResult<sys::Py_hash_t> {
        Ok(ids::hash(this.0.q.id()))
    }

    fn richcompare(this: Q, other: *mut sys::PyObject, op: c_int) -> PyResult<*mut sys::PyObject> {
        let rec = runtime::current()?;
        // SAFETY: attached; `other` is a live argument.
        let other = unsafe { rec.types.downcast::<QueueBase>(other) };
        Ok(ids::compare(this.0.q.id(), other.map(|o| o.0.q.id()), op))
    }
}

crate::native_class! {
    QueueBase {
        name: "crossinterp._native.QueueBase",
        attr: "QueueBase",
        doc: "The native base of crossinterp.queues.Queue: QueueBase(maxsize, unbound) makes a queue, QueueBase(id) attaches to the live queue id.",
        flags: sys::Py_TPFLAGS_BASETYPE,
        methods: [
            (kw, "put", ", obj, block=True, timeout=None, *, unbounditems=None, strict=False", QueueBase::put,
                "Add obj; if full, wait (block) up to timeout seconds for room, else raise QueueFull. strict=True: NotShareableError instead of pickling."),
            (kw, "put_nowait", ", obj, *, unbounditems=None, strict=False", QueueBase::put_nowait, "put(obj, block=False)."),
            (kw, "get", ", block=True, timeout=None", QueueBase::get,
                "Remove and return the next item; if empty, wait (block) up to timeout seconds, else raise QueueEmpty."),
            (fast, "get_nowait", "", QueueBase::get_nowait, "get(block=False)."),
            (fast, "_put_native", ", obj, /", QueueBase::put_native,
                "_put_native(obj) -> bool: put(obj) if it crosses natively (containers included), else False and nothing put."),
            (fast, "qsize", "", QueueBase::qsize, "qsize() -> int: the number of items now."),
            (fast, "empty", "", QueueBase::empty, "empty() -> bool"),
            (fast, "full", "", QueueBase::full, "full() -> bool"),
            (fast, "_watch", ", waker, side, /", QueueBase::watch, "_watch(waker, side) -> int: wake waker's loop when a get (0) or put (1) may proceed."),
            (fast, "_unwatch", ", side, token, /", QueueBase::unwatch, "_unwatch(side, token) -> bool"),
            (fast, "_watchers", ", side, /", QueueBase::watchers, "_watchers(side) -> int"),
            (class, "_live", "", QueueBase::live, "_live() -> list: every live queue, oldest first."),
            (class, "__class_getitem__", ", item, /", crate::ffi::class::class_getitem, "Queue[T]: a types.GenericAlias, for annotations."),
        ],
        getset: [
            ("id", QueueBase::id, "The queue's id, unique in the process."),
            ("maxsize", QueueBase::maxsize, "The capacity (0 or negative: unbounded)."),
            ("_unbound_default", QueueBase::unbound_default, "The default unbound policy (1, 2 or 3)."),
        ],
        slots: [
            (new, QueueBase::new),
            (hash, QueueBase::hash),
            (richcompare, QueueBase::richcompare),
        ],
    }
}

impl Crosses for QueueBase {
    fn crossing(this: Q) -> PyResult<Arc<dyn Shared>> {
        Ok(this.0.clone())
    }
}

static QUEUE_XI: Converter = Converter::class::<QueueBase>();

/// `QueueBase`: shared by reference; items follow their unbound policy when
/// the interpreter that put them is finalized.
pub const ENTRY: Entry = Entry {
    classes: &[QueueBase::DEF],
    hook: Some(on_event),
    converters: &[&QUEUE_XI],
    fork_hold: Some(fork_hold),
};
