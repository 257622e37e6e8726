//! `AtomicDict`: a concurrent dict for free-threaded builds (and, with the same
//! API, GIL builds), over `crossinterp_core::map::ShardedMap`.
//!
//! # Ownership
//!
//! An `AtomicDict` belongs to the interpreter that created it: its entries are
//! strong references to that interpreter's objects. Any thread attached to that
//! interpreter may use it; it cannot cross to another interpreter (`__reduce__`
//! refuses, so `prepare_main`, `call` and queues raise `NotShareableError`).
//!
//! # Rules that keep it deadlock- and crash-free
//!
//! 1. `hash(key)` runs before any lock is taken.
//! 2. No Python code runs under a shard lock: no `__eq__`, no `__del__`, no
//!    callback; the only CPython calls made under it are increfs, plain
//!    comparisons (below), exact-int reads, and (`reduce_sum`/`reduce_count`)
//!    allocating an `int`, none of which runs Python code, re-enters us or
//!    waits for another thread. Under the lock keys are compared by identity, by an earlier
//!    verdict (the memo, below), or — when both are *plain* (exact `str`,
//!    `int`, `float`, `bytes`, `bool`, `None`, or exact tuples of these),
//!    whose comparison runs no user code and never blocks — by
//!    `PyObject_RichCompareBool`. Any other candidate of equal hash is
//!    recorded, the lock released, compared with `==` outside, the verdict
//!    memoized (holding a strong reference to the candidate, so its address
//!    cannot be reused meanwhile), and the lookup repeated under the lock. The
//!    repeated lookup is decided under the lock from identity and the memo, so
//!    it needs no version check; a key inserted meanwhile is just a new
//!    candidate.
//! 3. Keys and values displaced by a mutation are released (decref'd, which
//!    may run `__del__`) only after the lock is released.
//! 4. Values found under a read lock are incref'd before it is released: a
//!    writer needs the write lock to take an entry out, so the reference read
//!    is alive (no fail-able incref is needed).
//! 5. A thread never waits on a shard lock attached: it tries, spins briefly,
//!    then waits detached (`ffi::interp::detached`), so it cannot hold up a
//!    stop-the-world pause (3.13t) or keep the GIL (GIL builds) from the lock's
//!    holder. A thread that acquired a lock detached re-attaches holding it;
//!    the only code that may then wait for it while the world is stopped is
//!    the GC, whose `tp_traverse`/`tp_clear` only *try* the shard locks and
//!    skip a busy shard (skipping a visit only keeps objects alive).
//! 6. `update`/`reduce*` mark the thread as "inside an operation of dict X";
//!    a mutation of X from that thread meanwhile (from the callback, or from
//!    `__eq__`/`__add__` it triggers) raises `RuntimeError` instead of
//!    livelocking the compare-and-set loop.

use crate::cstr;
use crate::ffi::{self, interp::detached, sys, Exc, Owned, PyErrSet, PyResult};
use crate::legacy::{alloc_native, arity, bind, dealloc_native, native_ref, Args, Native};
use crate::method_fn;
use crossinterp_core::map::{ReadGuard, ShardedMap, WriteGuard};
use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

/// A strong reference stored in the map.
///
/// Ownership: owns one reference to an object of the dict's interpreter. It has
/// no `Drop`: whoever takes it out of the map releases it (`release`), attached
/// to that interpreter and with no shard lock held.
#[derive(Clone, Copy, PartialEq, Eq)]
struct P(*mut sys::PyObject);

// SAFETY: a `P` is only dereferenced or released by threads attached to the
// dict's interpreter (every entry point is); the map merely moves it between
// threads, which is what the shard locks order.
unsafe impl Send for P {}
// SAFETY: as for `Send`: shared access only reads the pointer value.
unsafe impl Sync for P {}

impl P {
    /// A new strong reference to `obj`.
    ///
    /// # Safety
    /// Attached; `obj` is live.
    unsafe fn new_ref(obj: *mut sys::PyObject) -> P {
        // SAFETY: the caller's contract (non-NULL, live, attached).
        unsafe { sys::Py_INCREF(obj) };
        P(obj)
    }

    /// Release this reference as an `Owned` (dropped by the caller, later).
    ///
    /// # Safety
    /// `self` owns a reference (taken out of the map or made by `new_ref`).
    unsafe fn owned(self) -> Owned {
        // SAFETY: the caller's contract; non-NULL by construction.
        unsafe { Owned::from_new(self.0).unwrap_or_else(|_| unreachable!()) }
    }
}

/// The state of one `AtomicDict` object.
///
/// Ownership: owned by the Python object (in `Native<DictState>`), in the
/// interpreter that created it; dropped by its `tp_dealloc`, which CPython
/// runs attached to that interpreter — the only reason it may release the
/// Python references it holds (unlike the plain-data types `Native` usually
/// holds).
pub struct DictState {
    map: ShardedMap<P, P>,
}

impl Drop for DictState {
    fn drop(&mut self) {
        let all = self.map.drain();
        for (k, v) in all {
            // SAFETY: dropped by tp_dealloc, attached (see the type's doc); each
            // entry owned one reference to its key and one to its value.
            unsafe {
                drop(k.owned());
                drop(v.owned());
            }
        }
    }
}

fn state<'a>(slf: *mut sys::PyObject) -> &'a DictState {
    // SAFETY: CPython calls a type's methods and slots with an instance of the
    // type as `slf`, initialized at creation and alive for the call.
    unsafe { native_ref::<DictState>(slf) }
}

// ------------------------------------------------------------ locking

/// `try_lock` attempts (with a spin hint between) before waiting detached.
const SPINS: u32 = 64;

fn read_lock(m: &ShardedMap<P, P>, shard: usize) -> ReadGuard<'_, P, P> {
    for _ in 0..SPINS {
        if let Some(g) = m.try_read_shard(shard) {
            return g;
        }
        std::hint::spin_loop();
    }
    detached(|| m.read_shard(shard))
}

fn write_lock(m: &ShardedMap<P, P>, shard: usize) -> WriteGuard<'_, P, P> {
    for _ in 0..SPINS {
        if let Some(g) = m.try_write_shard(shard) {
            return g;
        }
        std::hint::spin_loop();
    }
    detached(|| m.write_shard(shard))
}

// ------------------------------------------------------------ "inside an op" marker

std::thread_local! {
    /// The dicts this thread is inside an `update`/`reduce*` of.
    static BUSY: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// `BUSY`'s length: lets the common case (0) skip the `RefCell`.
    static BUSY_N: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as inside an update of a dict until dropped.
struct Busy(usize);

impl Busy {
    fn enter(slf: *mut sys::PyObject) -> PyResult<Busy> {
        not_busy(slf)?;
        BUSY.with(|b| b.borrow_mut().push(slf as usize));
        BUSY_N.with(|n| n.set(n.get() + 1));
        Ok(Busy(slf as usize))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| {
            let mut b = b.borrow_mut();
            if let Some(i) = b.iter().rposition(|x| *x == self.0) {
                b.remove(i);
            }
        });
        BUSY_N.with(|n| n.set(n.get() - 1));
    }
}

/// `RuntimeError` if this thread is inside an `update`/`reduce*` of `slf`.
fn not_busy(slf: *mut sys::PyObject) -> PyResult<()> {
    if BUSY_N.with(|n| n.get()) != 0 && BUSY.with(|b| b.borrow().contains(&(slf as usize))) {
        return Err(ffi::raise(
            ffi::Exc::RuntimeError,
            "AtomicDict mutated from inside its own update()/reduce() (its callback, or code \
             the callback triggered); return the new value from the callback instead",
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ keys

/// `hash(obj)`, as the map's 64-bit hash.
fn hash_of(obj: *mut sys::PyObject) -> PyResult<u64> {
    // SAFETY: attached; `obj` is a live argument.
    let h = unsafe { sys::PyObject_Hash(obj) };
    if h == -1 {
        // SAFETY: attached.
        if unsafe { !sys::PyErr_Occurred().is_null() } {
            return Err(PyErrSet);
        }
    }
    Ok(h as u64)
}

/// Whether comparing `obj` with another plain object runs no user code (and
/// cannot block): exact `str`, `int`, `float`, `bytes`, `bool`, `None`, and
/// exact tuples of these (nested at most 3 deep).
fn is_plain(obj: *mut sys::PyObject, depth: u32) -> bool {
    // SAFETY: attached; `obj` is live (an argument, or a key kept alive by the
    // shard lock or a strong reference); the checks read only its type.
    unsafe {
        if sys::PyUnicode_CheckExact(obj) != 0
            || sys::PyLong_CheckExact(obj) != 0
            || sys::PyFloat_CheckExact(obj) != 0
            || sys::PyBytes_CheckExact(obj) != 0
            || sys::PyBool_Check(obj) != 0
            || obj == sys::Py_None()
        {
            return true;
        }
        if depth < 3 && sys::PyTuple_CheckExact(obj) != 0 {
            let n = sys::PyTuple_GET_SIZE(obj);
            return (0..n).all(|i| is_plain(sys::PyTuple_GET_ITEM(obj, i), depth + 1));
        }
        false
    }
}

/// A key being looked up: its object, hash, plainness, and the verdicts of the
/// comparisons made outside the lock so far.
struct Key {
    obj: *mut sys::PyObject,
    hash: u64,
    plain: bool,
    /// Candidates compared with `==` outside the lock, and whether equal. The
    /// strong references keep their addresses from being reused.
    memo: Vec<(Owned, bool)>,
}

/// What one lookup under a lock left to do.
#[derive(Default)]
struct Pending {
    /// Candidates that need `==` outside the lock (not yet incref'd).
    unknown: Vec<P>,
    /// A plain comparison raised (the exception is set).
    error: bool,
}

impl Key {
    fn new(obj: *mut sys::PyObject) -> PyResult<Key> {
        Ok(Key {
            obj,
            hash: hash_of(obj)?,
            plain: is_plain(obj, 0),
            memo: Vec::new(),
        })
    }

    /// The equality test run under the lock (see the module doc, rule 2).
    fn eq_locked(&self, cand: &P, pending: &mut Pending) -> bool {
        if cand.0 == self.obj {
            return true;
        }
        if let Some((_, v)) = self.memo.iter().find(|(o, _)| o.as_ptr() == cand.0) {
            return *v;
        }
        if self.plain && is_plain(cand.0, 0) {
            // SAFETY: attached; both live; both plain, so no user code runs.
            match unsafe { sys::PyObject_RichCompareBool(cand.0, self.obj, sys::Py_EQ) } {
                1 => return true,
                0 => return false,
                _ => {
                    pending.error = true;
                    return false;
                }
            }
        }
        pending.unknown.push(*cand);
        false
    }

    /// Take strong references to the unknown candidates (call under the lock).
    fn hold(pending: &mut Pending) -> Vec<Owned> {
        if pending.unknown.is_empty() {
            return Vec::new();
        }
        pending
            .unknown
            .drain(..)
            // SAFETY: attached; each is a key of the locked shard, alive.
            .map(|p| unsafe { Owned::from_borrowed(p.0) })
            .collect()
    }

    /// Compare held candidates with `==` (no lock held), memoizing.
    fn resolve(&mut self, held: Vec<Owned>) -> PyResult<()> {
        for c in held {
            // SAFETY: attached; both live (we hold `c`, the caller `obj`).
            let r = unsafe { sys::PyObject_RichCompareBool(c.as_ptr(), self.obj, sys::Py_EQ) };
            if r < 0 {
                return Err(PyErrSet);
            }
            self.memo.push((c, r == 1));
        }
        Ok(())
    }
}

// ------------------------------------------------------------ core operations

/// The value for `key`, as a new reference; `None` if absent.
fn lookup(d: &DictState, key: &mut Key) -> PyResult<Option<Owned>> {
    let shard = d.map.shard_of(key.hash);
    loop {
        let mut pending = Pending::default();
        let g = read_lock(&d.map, shard);
        let hit = g
            .find(key.hash, |k| key.eq_locked(k, &mut pending))
            // SAFETY: attached; the value is alive while the read lock is held.
            .map(|(_, v)| unsafe { P::new_ref(v.0) });
        let held = Key::hold(&mut pending);
        drop(g);
        // SAFETY: `hit` is a reference we took.
        let hit = hit.map(|p| unsafe { p.owned() });
        if pending.error {
            return Err(PyErrSet);
        }
        if hit.is_some() || held.is_empty() {
            return Ok(hit);
        }
        key.resolve(held)?;
    }
}

/// What `with_entry` saw under the write lock: the current value (borrowed,
/// alive while the lock is held), or absent.
type Slot<'a> = Option<&'a mut P>;

/// What a `with_entry` decision does to the map.
enum Act {
    /// Leave it.
    Keep,
    /// Store this new reference as the value (inserting the key if absent).
    Store(P),
    /// Remove the entry.
    Remove,
}

/// Find `key` under its shard's write lock and let `decide` choose what to do
/// with its slot (called once, under the lock, with the lookup definitive; it
/// must not run Python code beyond increfs and plain comparisons). Displaced
/// references are released after the lock is released. Returns `decide`'s
/// result.
fn with_entry<R>(
    d: &DictState,
    key: &mut Key,
    mut decide: impl FnMut(Slot<'_>) -> (Act, R),
) -> PyResult<R> {
    let shard = d.map.shard_of(key.hash);
    loop {
        let mut pending = Pending::default();
        let mut g = write_lock(&d.map, shard);
        let mut released: [Option<P>; 2] = [None, None];
        let r = match g.entry(key.hash, |k| key.eq_locked(k, &mut pending)) {
            _ if pending.error => None,
            Some(mut e) => {
                let (act, r) = decide(Some(e.value_mut()));
                match act {
                    Act::Keep => {}
                    Act::Store(new) => released[0] = Some(std::mem::replace(e.value_mut(), new)),
                    Act::Remove => {
                        let (k, v) = e.remove();
                        released = [Some(k), Some(v)];
                    }
                }
                Some(r)
            }
            None if pending.unknown.is_empty() => {
                let (act, r) = decide(None);
                if let Act::Store(new) = act {
                    // SAFETY: attached; the caller's key is alive.
                    g.insert_new(key.hash, unsafe { P::new_ref(key.obj) }, new);
                }
                Some(r)
            }
            None => None,
        };
        if pending.error {
            drop(g);
            return Err(PyErrSet);
        }
        let held = Key::hold(&mut pending);
        drop(g);
        for p in released.into_iter().flatten() {
            // SAFETY: taken out of the map, which owned a reference.
            drop(unsafe { p.owned() });
        }
        if let Some(r) = r {
            return Ok(r);
        }
        key.resolve(held)?;
    }
}

/// `d[key] = value`.
fn store(d: &DictState, key: &mut Key, value: *mut sys::PyObject) -> PyResult<()> {
    with_entry(d, key, |_| {
        // SAFETY: attached; `value` is a live argument.
        (Act::Store(unsafe { P::new_ref(value) }), ())
    })
}

/// Remove `key`, returning its value (new reference) or `None` if absent.
fn take(d: &DictState, key: &mut Key) -> PyResult<Option<Owned>> {
    with_entry(d, key, |slot| match slot {
        // SAFETY: attached; the value is alive under the lock.
        Some(v) => (Act::Remove, Some(unsafe { P::new_ref(v.0) })),
        None => (Act::Keep, None),
    })
    // SAFETY: a reference we took.
    .map(|o| o.map(|p| unsafe { p.owned() }))
}

/// The compare-and-set loop behind `update` and `reduce*`: `combine(current)`
/// (current: `None` if absent) computes the new value with no lock held; it is
/// installed only if the entry still holds the same value object (or is still
/// absent), else `combine` runs again on the newer value. Returns the value
/// installed.
fn merge(
    d: &DictState,
    key: &mut Key,
    mut combine: impl FnMut(Option<&Owned>) -> PyResult<Owned>,
) -> PyResult<Owned> {
    // The value the next attempt starts from: read under the write lock of the
    // failed attempt, so a retry costs one lock, not two.
    let mut cur = lookup(d, key)?;
    loop {
        let new = combine(cur.as_ref())?;
        let expected = cur.as_ref().map(|c| c.as_ptr());
        let outcome = with_entry(d, key, |slot| {
            let now = slot.as_ref().map(|v| v.0);
            if now == expected {
                // SAFETY: attached; `new` is alive (we hold it).
                (Act::Store(unsafe { P::new_ref(new.as_ptr()) }), None)
            } else {
                // SAFETY: attached; the value is alive under the lock.
                (Act::Keep, Some(now.map(|p| unsafe { P::new_ref(p) })))
            }
        })?;
        match outcome {
            None => return Ok(new),
            // SAFETY: a reference we took.
            Some(now) => cur = now.map(|p| unsafe { p.owned() }),
        }
    }
}

// ------------------------------------------------------------ snapshot

/// Every entry, as new references: each shard copied under its read lock
/// (weakly consistent across shards).
fn snapshot(d: &DictState) -> Vec<(Owned, Owned)> {
    let mut raw: Vec<(P, P)> = Vec::with_capacity(d.map.len());
    for s in 0..d.map.shard_count() {
        let g = read_lock(&d.map, s);
        raw.reserve(g.len());
        for (k, v) in g.iter() {
            // SAFETY: attached; keys and values are alive under the lock.
            raw.push(unsafe { (P::new_ref(k.0), P::new_ref(v.0)) });
        }
    }
    raw.into_iter()
        // SAFETY: references we took.
        .map(|(k, v)| unsafe { (k.owned(), v.owned()) })
        .collect()
}

fn new_list(items: impl ExactSizeIterator<Item = Owned>) -> PyResult<Owned> {
    // SAFETY: attached; PyList_SET_ITEM steals each reference into a fresh list
    // of the right size.
    unsafe {
        let list = Owned::from_new(sys::PyList_New(items.len() as sys::Py_ssize_t))?;
        for (i, o) in items.enumerate() {
            sys::PyList_SET_ITEM(list.as_ptr(), i as sys::Py_ssize_t, o.into_ptr());
        }
        Ok(list)
    }
}

fn pair(a: Owned, b: Owned) -> PyResult<Owned> {
    // SAFETY: attached; PyTuple_Pack takes borrowed references.
    unsafe { Owned::from_new(sys::PyTuple_Pack(2, a.as_ptr(), b.as_ptr())) }
}

fn to_dict_of(d: &DictState) -> PyResult<Owned> {
    // SAFETY: attached.
    let out = unsafe { Owned::from_new(sys::PyDict_New())? };
    for (k, v) in snapshot(d) {
        // SAFETY: attached; all live.
        if unsafe { sys::PyDict_SetItem(out.as_ptr(), k.as_ptr(), v.as_ptr()) } < 0 {
            return Err(PyErrSet);
        }
    }
    Ok(out)
}

// ------------------------------------------------------------ errors

fn key_error(key: *mut sys::PyObject) -> PyErrSet {
    // SAFETY: attached; `key` is live; KeyError(key), as dict raises.
    unsafe { sys::PyErr_SetObject(sys::PyExc_KeyError, key) };
    PyErrSet
}

fn check_callable(f: *mut sys::PyObject, what: &str) -> PyResult<()> {
    // SAFETY: attached; live argument.
    if unsafe { sys::PyCallable_Check(f) } == 0 {
        // SAFETY: live argument.
        let tname = unsafe { crate::xi::type_name(f) };
        return Err(ffi::raise(
            Exc::TypeError,
            &format!("{what} must be callable, not {tname}"),
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ methods

fn m_get(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    if args.is_empty() || args.len() > 2 {
        return Err(ffi::raise(
            Exc::TypeError,
            "get() takes 1 or 2 arguments (key, default=None)",
        ));
    }
    let mut key = Key::new(args[0])?;
    match lookup(state(slf), &mut key)? {
        Some(v) => Ok(v.into_ptr()),
        // SAFETY: live argument.
        None if args.len() == 2 => Ok(unsafe { sys::Py_NewRef(args[1]) }),
        None => Ok(ffi::none()),
    }
}

fn m_pop(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    if args.is_empty() || args.len() > 2 {
        return Err(ffi::raise(
            Exc::TypeError,
            "pop() takes 1 or 2 arguments (key[, default])",
        ));
    }
    not_busy(slf)?;
    let mut key = Key::new(args[0])?;
    match take(state(slf), &mut key)? {
        Some(v) => Ok(v.into_ptr()),
        // SAFETY: live argument.
        None if args.len() == 2 => Ok(unsafe { sys::Py_NewRef(args[1]) }),
        None => Err(key_error(args[0])),
    }
}

fn m_setdefault(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    if args.is_empty() || args.len() > 2 {
        return Err(ffi::raise(
            Exc::TypeError,
            "setdefault() takes 1 or 2 arguments (key, default=None)",
        ));
    }
    not_busy(slf)?;
    let default = if args.len() == 2 {
        args[1]
    } else {
        // SAFETY: immortal.
        unsafe { sys::Py_None() }
    };
    let mut key = Key::new(args[0])?;
    let v = with_entry(state(slf), &mut key, |slot| {
        let absent = slot.is_none();
        let found = slot.map_or(default, |v| v.0);
        // SAFETY: attached; `found` (the stored value, alive under the lock,
        // or the live `default` argument) gets a reference for the caller.
        let out = unsafe { P::new_ref(found) };
        if absent {
            // SAFETY: attached; one more reference to `default`, for the map.
            (Act::Store(unsafe { P::new_ref(default) }), out)
        } else {
            (Act::Keep, out)
        }
    })?;
    // SAFETY: a reference we took.
    Ok(unsafe { v.owned() }.into_ptr())
}

/// `update(key, fn, default=None)`.
fn m_update(
    slf: *mut sys::PyObject,
    a: [Option<*mut sys::PyObject>; 3],
) -> PyResult<*mut sys::PyObject> {
    let (Some(k), Some(f)) = (a[0], a[1]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "update() missing required argument: update(key, fn, default=None)",
        ));
    };
    check_callable(f, "update()'s fn")?;
    // SAFETY: immortal.
    let default = a[2].unwrap_or(unsafe { sys::Py_None() });
    let _busy = Busy::enter(slf)?;
    let mut key = Key::new(k)?;
    let new = merge(state(slf), &mut key, |cur| {
        let arg = cur.map_or(default, |c| c.as_ptr());
        // SAFETY: attached; `f` and `arg` are live.
        unsafe { Owned::from_new(sys::PyObject_CallOneArg(f, arg)) }
    })?;
    Ok(new.into_ptr())
}

/// `compare_and_set(key, expected, new)`.
fn m_cas(
    slf: *mut sys::PyObject,
    a: [Option<*mut sys::PyObject>; 3],
) -> PyResult<*mut sys::PyObject> {
    let (Some(k), Some(expected), Some(new)) = (a[0], a[1], a[2]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "compare_and_set() takes exactly 3 arguments (key, expected, new)",
        ));
    };
    not_busy(slf)?;
    let mut key = Key::new(k)?;
    let expected_plain = is_plain(expected, 0);
    let mut err = false;
    let ok = with_entry(state(slf), &mut key, |slot| {
        let Some(v) = slot else {
            return (Act::Keep, false);
        };
        let same = v.0 == expected
            || (expected_plain && is_plain(v.0, 0) && {
                // SAFETY: attached; both live and plain: no user code runs.
                match unsafe { sys::PyObject_RichCompareBool(v.0, expected, sys::Py_EQ) } {
                    1 => true,
                    0 => false,
                    _ => {
                        err = true;
                        false
                    }
                }
            });
        if same {
            // SAFETY: attached; `new` is a live argument.
            (Act::Store(unsafe { P::new_ref(new) }), true)
        } else {
            (Act::Keep, false)
        }
    })?;
    if err {
        return Err(PyErrSet);
    }
    // SAFETY: attached.
    Ok(unsafe { sys::PyBool_FromLong(ok as _) })
}

/// Call `f(item_key, item_value)` for each `(key, value)` pair of `iterable`.
fn for_pairs(
    iterable: *mut sys::PyObject,
    mut f: impl FnMut(*mut sys::PyObject, *mut sys::PyObject) -> PyResult<()>,
) -> PyResult<()> {
    // SAFETY: attached; all objects live; items checked before use.
    unsafe {
        let it = Owned::from_new(sys::PyObject_GetIter(iterable))?;
        loop {
            let item = sys::PyIter_Next(it.as_ptr());
            if item.is_null() {
                if !sys::PyErr_Occurred().is_null() {
                    return Err(PyErrSet);
                }
                return Ok(());
            }
            let item = Owned::from_new(item)?;
            let t = if sys::PyTuple_CheckExact(item.as_ptr()) != 0 {
                item
            } else {
                Owned::from_new(sys::PySequence_Tuple(item.as_ptr())).map_err(|_| {
                    sys::PyErr_Clear();
                    ffi::raise(Exc::TypeError, "expected an iterable of (key, value) pairs")
                })?
            };
            if sys::PyTuple_GET_SIZE(t.as_ptr()) != 2 {
                return Err(ffi::raise(
                    Exc::ValueError,
                    "expected an iterable of (key, value) pairs (an item is not a pair)",
                ));
            }
            f(
                sys::PyTuple_GET_ITEM(t.as_ptr(), 0),
                sys::PyTuple_GET_ITEM(t.as_ptr(), 1),
            )?;
        }
    }
}

/// `reduce(iterable, fn)`: aggregate locally with `fn(old, new)`, then merge
/// each distinct key with the compare-and-set loop.
fn m_reduce(
    slf: *mut sys::PyObject,
    a: [Option<*mut sys::PyObject>; 2],
) -> PyResult<*mut sys::PyObject> {
    let (Some(iterable), Some(f)) = (a[0], a[1]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "reduce() takes exactly 2 arguments (iterable, fn)",
        ));
    };
    check_callable(f, "reduce()'s fn")?;
    let _busy = Busy::enter(slf)?;
    let call2 = |x: *mut sys::PyObject, y: *mut sys::PyObject| -> PyResult<Owned> {
        let argv = [x, y];
        // SAFETY: attached; `f` and both arguments are live.
        unsafe { Owned::from_new(sys::PyObject_Vectorcall(f, argv.as_ptr(), 2, null_mut())) }
    };
    // SAFETY: attached.
    let local = unsafe { Owned::from_new(sys::PyDict_New())? };
    for_pairs(iterable, |k, v| {
        let mut old = null_mut();
        // SAFETY: attached; all live; `old` receives a new reference or NULL.
        unsafe {
            match sys::PyDict_GetItemRef(local.as_ptr(), k, &mut old) {
                -1 => Err(PyErrSet),
                0 => {
                    if sys::PyDict_SetItem(local.as_ptr(), k, v) < 0 {
                        return Err(PyErrSet);
                    }
                    Ok(())
                }
                _ => {
                    let old = Owned::from_new(old)?;
                    let new = call2(old.as_ptr(), v)?;
                    if sys::PyDict_SetItem(local.as_ptr(), k, new.as_ptr()) < 0 {
                        return Err(PyErrSet);
                    }
                    Ok(())
                }
            }
        }
    })?;
    let d = state(slf);
    // SAFETY: attached; `local` is our private dict.
    let items = unsafe { Owned::from_new(sys::PyDict_Items(local.as_ptr()))? };
    // SAFETY: a list of 2-tuples we own.
    let n = unsafe { sys::PyList_Size(items.as_ptr()) };
    for i in 0..n {
        // SAFETY: in range; borrowed items of a list only we hold.
        let (k, v) = unsafe {
            let t = sys::PyList_GetItem(items.as_ptr(), i);
            (sys::PyTuple_GET_ITEM(t, 0), sys::PyTuple_GET_ITEM(t, 1))
        };
        let mut key = Key::new(k)?;
        merge(d, &mut key, |cur| match cur {
            Some(c) => call2(c.as_ptr(), v),
            // SAFETY: live (held by `items`).
            None => Ok(unsafe { Owned::from_borrowed(v) }),
        })?;
    }
    Ok(ffi::none())
}

/// A local sum: an i64 while it fits, else a Python object.
enum Acc {
    Int(i64),
    Obj(Owned),
}

impl Acc {
    fn to_object(&self) -> PyResult<Owned> {
        match self {
            Acc::Int(n) => ffi::new_int(*n),
            // SAFETY: live.
            Acc::Obj(o) => Ok(unsafe { Owned::from_borrowed(o.as_ptr()) }),
        }
    }

    /// `self + v`.
    fn add(&mut self, v: *mut sys::PyObject) -> PyResult<()> {
        if let (Acc::Int(n), Some(x)) = (&*self, small_int(v)) {
            if let Some(s) = n.checked_add(x) {
                *self = Acc::Int(s);
                return Ok(());
            }
        }
        let cur = self.to_object()?;
        // SAFETY: attached; both live.
        *self = Acc::Obj(unsafe { Owned::from_new(sys::PyNumber_Add(cur.as_ptr(), v))? });
        Ok(())
    }
}

/// `obj` as an i64 if it is an exact int that fits.
fn small_int(obj: *mut sys::PyObject) -> Option<i64> {
    // SAFETY: attached; `obj` live; type checked first.
    unsafe {
        if sys::PyLong_CheckExact(obj) == 0 {
            return None;
        }
        let mut overflow = 0;
        let v = sys::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        // An exact int cannot fail to convert other than by overflow.
        (overflow == 0).then_some(v)
    }
}

/// Local aggregation of sums per distinct key (first-seen order), then a merge
/// of each into the map. `each` feeds `(key, addend)` pairs to `add`.
fn sum_into(
    slf: *mut sys::PyObject,
    each: impl FnOnce(&mut dyn FnMut(*mut sys::PyObject, Addend) -> PyResult<()>) -> PyResult<()>,
) -> PyResult<()> {
    let _busy = Busy::enter(slf)?;
    // key -> index into `accs` (as an int object).
    // SAFETY: attached.
    let index = unsafe { Owned::from_new(sys::PyDict_New())? };
    let mut accs: Vec<(Owned, Acc)> = Vec::new();
    each(&mut |k, addend| {
        let mut idx = null_mut();
        // SAFETY: attached; all live; `idx` receives a new reference or NULL.
        let i = unsafe {
            match sys::PyDict_GetItemRef(index.as_ptr(), k, &mut idx) {
                -1 => return Err(PyErrSet),
                0 => {
                    let i = accs.len();
                    let io = ffi::new_int(i as i64)?;
                    if sys::PyDict_SetItem(index.as_ptr(), k, io.as_ptr()) < 0 {
                        return Err(PyErrSet);
                    }
                    accs.push((Owned::from_borrowed(k), Acc::Int(0)));
                    i
                }
                _ => {
                    let io = Owned::from_new(idx)?;
                    sys::PyLong_AsSsize_t(io.as_ptr()) as usize
                }
            }
        };
        let acc = &mut accs[i].1;
        match addend {
            Addend::One => match acc {
                Acc::Int(n) if *n < i64::MAX => {
                    *n += 1;
                    Ok(())
                }
                other => other.add(ffi::new_int(1)?.as_ptr()),
            },
            Addend::Obj(v) => acc.add(v),
        }
    })?;
    let d = state(slf);
    for (k, acc) in accs {
        let mut key = Key::new(k.as_ptr())?;
        if let Acc::Int(n) = acc {
            // Fast path, one write-locked pass: absent or an exact int whose
            // sum fits in i64 -> store a new int made under the lock (an int
            // allocation runs no Python code and waits for nothing; see the
            // module doc, rule 2).
            let done = with_entry(d, &mut key, |slot| {
                let cur = match slot {
                    None => Some(0),
                    Some(v) => small_int(v.0),
                };
                match cur.and_then(|c| c.checked_add(n)) {
                    Some(sum) => {
                        // SAFETY: attached; returns a new reference or NULL
                        // with MemoryError set (reported after the unlock).
                        let o = unsafe { sys::PyLong_FromLongLong(sum) };
                        if o.is_null() {
                            (Act::Keep, Err(PyErrSet))
                        } else {
                            (Act::Store(P(o)), Ok(true))
                        }
                    }
                    None => (Act::Keep, Ok(false)),
                }
            })??;
            if done {
                continue;
            }
        }
        merge(d, &mut key, |cur| match cur {
            None => acc.to_object(),
            Some(c) => {
                if let (Some(x), Acc::Int(n)) = (small_int(c.as_ptr()), &acc) {
                    if let Some(s) = x.checked_add(*n) {
                        return ffi::new_int(s);
                    }
                }
                let a = acc.to_object()?;
                // SAFETY: attached; both live.
                unsafe { Owned::from_new(sys::PyNumber_Add(c.as_ptr(), a.as_ptr())) }
            }
        })?;
    }
    Ok(())
}

/// What one input of `reduce_sum`/`reduce_count` adds.
enum Addend {
    One,
    Obj(*mut sys::PyObject),
}

fn m_reduce_sum(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("reduce_sum", args, 1)?;
    sum_into(slf, |add| for_pairs(args[0], |k, v| add(k, Addend::Obj(v))))?;
    Ok(ffi::none())
}

fn m_reduce_count(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("reduce_count", args, 1)?;
    sum_into(slf, |add| {
        // SAFETY: attached; all objects live.
        unsafe {
            let it = Owned::from_new(sys::PyObject_GetIter(args[0]))?;
            loop {
                let item = sys::PyIter_Next(it.as_ptr());
                if item.is_null() {
                    if !sys::PyErr_Occurred().is_null() {
                        return Err(PyErrSet);
                    }
                    return Ok(());
                }
                let item = Owned::from_new(item)?;
                add(item.as_ptr(), Addend::One)?;
            }
        }
    })?;
    Ok(ffi::none())
}

fn m_keys(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("keys", args, 0)?;
    let snap = snapshot(state(slf));
    Ok(new_list(snap.into_iter().map(|(k, _)| k))?.into_ptr())
}

fn m_values(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("values", args, 0)?;
    let snap = snapshot(state(slf));
    Ok(new_list(snap.into_iter().map(|(_, v)| v))?.into_ptr())
}

fn m_items(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("items", args, 0)?;
    let snap = snapshot(state(slf));
    let pairs = snap
        .into_iter()
        .map(|(k, v)| pair(k, v))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(new_list(pairs.into_iter())?.into_ptr())
}

fn m_clear(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("clear", args, 0)?;
    not_busy(slf)?;
    let d = state(slf);
    let mut all = Vec::new();
    for s in 0..d.map.shard_count() {
        let mut g = write_lock(&d.map, s);
        all.extend(g.drain());
    }
    for (k, v) in all {
        // SAFETY: taken out of the map, which owned these references.
        unsafe {
            drop(k.owned());
            drop(v.owned());
        }
    }
    Ok(ffi::none())
}

fn m_to_dict(slf: *mut sys::PyObject, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("to_dict", args, 0)?;
    Ok(to_dict_of(state(slf))?.into_ptr())
}

fn m_reduce_ex(_slf: *mut sys::PyObject, _args: Args) -> PyResult<*mut sys::PyObject> {
    Err(ffi::raise(
        Exc::TypeError,
        "cannot pickle or share 'AtomicDict': it holds references to objects of one \
         interpreter (pass d.to_dict(), or share a Queue)",
    ))
}

method_fn!(py_get => m_get);
method_fn!(py_pop => m_pop);
method_fn!(py_setdefault => m_setdefault);
method_fn!(py_reduce_sum => m_reduce_sum);
method_fn!(py_reduce_count => m_reduce_count);
method_fn!(py_keys => m_keys);
method_fn!(py_values => m_values);
method_fn!(py_items => m_items);
method_fn!(py_clear => m_clear);
method_fn!(py_to_dict => m_to_dict);
method_fn!(py_reduce_ex => m_reduce_ex);

/// Define a METH_FASTCALL|METH_KEYWORDS entry point binding `names` (`npos`
/// of them positional) and delegating to `$body(slf, bound)`.
macro_rules! kw_fn {
    ($name:ident => $body:path, $fname:literal, [$($arg:literal),*], $npos:expr) => {
        unsafe extern "C" fn $name(
            slf: *mut sys::PyObject,
            args: *const *mut sys::PyObject,
            nargs: sys::Py_ssize_t,
            kwnames: *mut sys::PyObject,
        ) -> *mut sys::PyObject {
            ffi::trampoline(|| {
                // SAFETY: CPython's METH_FASTCALL|METH_KEYWORDS arguments.
                let bound = unsafe {
                    bind($fname, args, nargs, kwnames, [$(cstr!($arg)),*], $npos)?
                };
                $body(slf, bound)
            })
        }
    };
}

kw_fn!(py_update => m_update, "update", ["key", "fn", "default"], 3);
kw_fn!(py_cas => m_cas, "compare_and_set", ["key", "expected", "new"], 3);
kw_fn!(py_reduce => m_reduce, "reduce", ["iterable", "fn"], 2);

// ------------------------------------------------------------ slots

unsafe extern "C" fn dict_new(
    cls: *mut sys::PyTypeObject,
    args: *mut sys::PyObject,
    kwargs: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: attached; CPython's tp_new arguments.
        let initial = unsafe {
            crate::legacy::optional_object_arg(
                args,
                kwargs,
                cstr!("initial"),
                cstr!("|O:AtomicDict"),
            )?
        }
        .unwrap_or(null_mut());
        let state = DictState {
            map: ShardedMap::new(),
        };
        // SAFETY: `cls` is AtomicDict (its tp_dealloc is `dict_dealloc`).
        let obj = unsafe { alloc_native(cls, state)? };
        // SAFETY: immortal.
        let none = unsafe { sys::Py_None() };
        if !initial.is_null() && initial != none {
            // SAFETY: attached; `initial` is a live argument.
            let items = unsafe {
                if sys::PyDict_Check(initial) != 0 {
                    Owned::from_new(sys::PyDict_Items(initial))?
                } else if sys::PyObject_HasAttrString(initial, cstr!("keys").as_ptr()) != 0 {
                    Owned::from_new(sys::PyMapping_Items(initial))?
                } else {
                    Owned::from_borrowed(initial)
                }
            };
            let d = self::state(obj.as_ptr());
            for_pairs(items.as_ptr(), |k, v| store(d, &mut Key::new(k)?, v))?;
        }
        Ok(obj.into_ptr())
    })
}

unsafe extern "C" fn dict_dealloc(obj: *mut sys::PyObject) {
    // SAFETY: CPython calls tp_dealloc once, attached, for a dead AtomicDict:
    // untrack it from the GC first (it is a GC type), then drop the state
    // (releasing the entries) and free it.
    unsafe {
        sys::PyObject_GC_UnTrack(obj as *mut c_void);
        dealloc_native::<DictState>(obj);
    }
}

unsafe extern "C" fn dict_traverse(
    obj: *mut sys::PyObject,
    visit: sys::visitproc,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: CPython's GC calls this with a live AtomicDict. Only *try* the
    // shard locks (module doc, rule 5): a busy shard is skipped, which can
    // only keep its objects alive longer.
    unsafe {
        let r = visit(sys::Py_TYPE(obj) as *mut sys::PyObject, arg);
        if r != 0 {
            return r;
        }
        let d = native_ref::<DictState>(obj);
        for s in 0..d.map.shard_count() {
            let Some(g) = d.map.try_read_shard(s) else {
                continue;
            };
            for (k, v) in g.iter() {
                for p in [k.0, v.0] {
                    let r = visit(p, arg);
                    if r != 0 {
                        return r;
                    }
                }
            }
        }
        0
    }
}

unsafe extern "C" fn dict_clear(obj: *mut sys::PyObject) -> c_int {
    // SAFETY: the GC calls this with a live AtomicDict (attached). As in
    // `dict_traverse`, busy shards are skipped; references are released after
    // each shard's lock.
    unsafe {
        let d = native_ref::<DictState>(obj);
        for s in 0..d.map.shard_count() {
            let Some(mut g) = d.map.try_write_shard(s) else {
                continue;
            };
            let taken = g.drain();
            drop(g);
            for (k, v) in taken {
                drop(k.owned());
                drop(v.owned());
            }
        }
    }
    0
}

unsafe extern "C" fn dict_len(obj: *mut sys::PyObject) -> sys::Py_ssize_t {
    state(obj).map.len() as sys::Py_ssize_t
}

unsafe extern "C" fn dict_subscript(
    obj: *mut sys::PyObject,
    key: *mut sys::PyObject,
) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        let mut k = Key::new(key)?;
        match lookup(state(obj), &mut k)? {
            Some(v) => Ok(v.into_ptr()),
            None => Err(key_error(key)),
        }
    })
}

unsafe extern "C" fn dict_ass_subscript(
    obj: *mut sys::PyObject,
    key: *mut sys::PyObject,
    value: *mut sys::PyObject,
) -> c_int {
    ffi::trampoline_int(|| {
        not_busy(obj)?;
        let mut k = Key::new(key)?;
        let d = state(obj);
        if value.is_null() {
            match take(d, &mut k)? {
                Some(_) => Ok(()),
                None => Err(key_error(key)),
            }
        } else {
            store(d, &mut k, value)
        }
    })
}

unsafe extern "C" fn dict_contains(obj: *mut sys::PyObject, key: *mut sys::PyObject) -> c_int {
    let r = ffi::trampoline(|| {
        let mut k = Key::new(key)?;
        let found = lookup(state(obj), &mut k)?.is_some();
        // SAFETY: attached.
        Ok(unsafe { sys::PyBool_FromLong(found as _) })
    });
    if r.is_null() {
        return -1;
    }
    // SAFETY: a bool we just made.
    unsafe {
        let yes = r == sys::Py_True();
        sys::Py_DecRef(r);
        yes as c_int
    }
}

unsafe extern "C" fn dict_iter(obj: *mut sys::PyObject) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        let snap = snapshot(state(obj));
        let keys = new_list(snap.into_iter().map(|(k, _)| k))?;
        // SAFETY: attached; a live list.
        unsafe { Owned::from_new(sys::PyObject_GetIter(keys.as_ptr())) }.map(Owned::into_ptr)
    })
}

unsafe extern "C" fn dict_repr(obj: *mut sys::PyObject) -> *mut sys::PyObject {
    ffi::trampoline(|| {
        // SAFETY: attached; `obj` live. Py_ReprEnter guards against a dict
        // that contains itself.
        unsafe {
            match sys::Py_ReprEnter(obj) {
                0 => {}
                r if r > 0 => return Ok(ffi::new_str("AtomicDict({...})")?.into_ptr()),
                _ => return Err(PyErrSet),
            }
            let r = (|| {
                let d = to_dict_of(state(obj))?;
                let inner = Owned::from_new(sys::PyObject_Repr(d.as_ptr()))?;
                let s = ffi::str_utf8(inner.as_ptr())?;
                ffi::new_str(&format!("AtomicDict({s})"))
            })();
            sys::Py_ReprLeave(obj);
            r.map(Owned::into_ptr)
        }
    })
}

use crate::method_def as m;

macro_rules! kw {
    ($name:literal, $f:ident, $doc:literal) => {
        sys::PyMethodDef {
            ml_name: cstr!($name).as_ptr(),
            ml_meth: sys::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: $f,
            },
            ml_flags: sys::METH_FASTCALL | sys::METH_KEYWORDS,
            ml_doc: cstr!($doc).as_ptr(),
        }
    };
}

static mut METHODS: [sys::PyMethodDef; 16] = [
    m!("get", py_get, "get(key, default=None, /)\n--\n\nThe value for key, else default."),
    m!("pop", py_pop, "pop(key, default=<missing>, /)\n--\n\nRemove key and return its value; default (or KeyError) if absent."),
    m!("setdefault", py_setdefault, "setdefault(key, default=None, /)\n--\n\nThe value for key; if absent, insert default (atomically) and return it."),
    kw!("update", py_update, "update(key, fn, default=None)\n--\n\nAtomically replace the value for key by fn(current) (fn(default) if absent) in a compare-and-set loop; fn may run more than once. Returns the value stored."),
    kw!("compare_and_set", py_cas, "compare_and_set(key, expected, new)\n--\n\nIf key's value is expected (identity; or equality when both are plain builtin values), store new. Returns whether it did."),
    kw!("reduce", py_reduce, "reduce(iterable, fn)\n--\n\nMerge (key, value) pairs: fn(old, new) for keys present (fn must be associative)."),
    m!("reduce_sum", py_reduce_sum, "reduce_sum(iterable, /)\n--\n\nAdd each (key, number) pair's number to key's value (absent: the number)."),
    m!("reduce_count", py_reduce_count, "reduce_count(iterable, /)\n--\n\nAdd 1 to the count of each key of the iterable (absent: 0)."),
    m!("keys", py_keys, "keys()\n--\n\nA list of the keys (a snapshot, each shard consistent)."),
    m!("values", py_values, "values()\n--\n\nA list of the values (a snapshot)."),
    m!("items", py_items, "items()\n--\n\nA list of (key, value) pairs (a snapshot)."),
    m!("clear", py_clear, "clear()\n--\n\nRemove every item."),
    m!("to_dict", py_to_dict, "to_dict()\n--\n\nA plain dict copy (a snapshot)."),
    m!("__reduce_ex__", py_reduce_ex, "AtomicDict cannot be pickled or shared between interpreters."),
    m!("__reduce__", py_reduce_ex, "AtomicDict cannot be pickled or shared between interpreters."),
    sys::PyMethodDef::zeroed(),
];

/// Create this module's `AtomicDict` heap type.
///
/// # Safety
/// Attached; `module` is our live module object (its exec slot).
pub unsafe fn add_type(module: *mut sys::PyObject) -> PyResult<()> {
    let mut slots = [
        sys::PyType_Slot { slot: sys::Py_tp_new, pfunc: dict_new as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_dealloc, pfunc: dict_dealloc as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_traverse, pfunc: dict_traverse as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_clear, pfunc: dict_clear as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_repr, pfunc: dict_repr as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_iter, pfunc: dict_iter as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_hash, pfunc: sys::PyObject_HashNotImplemented as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_mp_length, pfunc: dict_len as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_mp_subscript, pfunc: dict_subscript as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_mp_ass_subscript, pfunc: dict_ass_subscript as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_sq_contains, pfunc: dict_contains as *mut c_void },
        sys::PyType_Slot { slot: sys::Py_tp_methods, pfunc: std::ptr::addr_of_mut!(METHODS) as *mut c_void },
        sys::PyType_Slot {
            slot: sys::Py_tp_doc,
            pfunc: cstr!("AtomicDict(initial=None)\n--\n\nA concurrent dict for free-threaded Python (same API on GIL builds): 64 independently locked shards, never one global lock. d[k], d[k] = v, del d[k], get, pop, setdefault, len (exact when no mutation is in flight), compare_and_set, update(key, fn, default), reduce/reduce_sum/reduce_count, and snapshot iteration that never fails under concurrent mutation. Belongs to the interpreter that created it: it cannot be shared with other interpreters (NotShareableError).").as_ptr() as *mut c_void,
        },
        sys::PyType_Slot { slot: 0, pfunc: null_mut() },
    ];
    let flags = sys::Py_TPFLAGS_DEFAULT | sys::Py_TPFLAGS_IMMUTABLETYPE | sys::Py_TPFLAGS_HAVE_GC;
    // SAFETY: the caller's contract; the slots match `Native<DictState>`.
    unsafe {
        crate::legacy::add_heap_type(
            module,
            cstr!("crossinterp.AtomicDict"),
            cstr!("AtomicDict"),
            std::mem::size_of::<Native<DictState>>(),
            flags,
            &mut slots,
        )
    }
}

/// `AtomicDict` (no crossing: it is not shareable between interpreters).
pub const ENTRY: super::Entry = super::Entry {
    legacy_add: Some(add_type),
    ..super::Entry::EMPTY
};
