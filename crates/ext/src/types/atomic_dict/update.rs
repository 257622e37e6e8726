//! `update`, `compare_and_set` and the `reduce*` family, with the "inside an
//! operation of this dict" guard ([`Busy`], module doc, rule 6).

use super::keys::{hash_of, is_plain, Key, P};
use super::store::{merge, with_entry, Act};
use super::D;
use crate::cstr;
use crate::ffi::args::{arity, Args, KwArgs};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use rustc_hash::FxHashMap;
use std::cell::{Cell, RefCell};
use std::ptr::null_mut;

// ------------------------------------------------------------ "inside an op" marker

std::thread_local! {
    /// The dicts this thread is inside an `update`/`reduce*` of.
    static BUSY: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// `BUSY`'s length: lets the common case (0) skip the `RefCell`.
    static BUSY_N: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as inside an update of a dict until dropped.
pub(super) struct Busy(usize);

impl Busy {
    pub(super) fn enter(slf: *mut sys::PyObject) -> PyResult<Busy> {
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
pub(super) fn not_busy(slf: *mut sys::PyObject) -> PyResult<()> {
    if BUSY_N.with(|n| n.get()) != 0 && BUSY.with(|b| b.borrow().contains(&(slf as usize))) {
        return Err(ffi::raise(
            ffi::Exc::RuntimeError,
            "AtomicDict mutated from inside its own update()/reduce() (its callback, or code \
             the callback triggered); return the new value from the callback instead",
        ));
    }
    Ok(())
}

pub(super) fn check_callable(f: *mut sys::PyObject, what: &str) -> PyResult<()> {
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

/// `update(key, fn, default=None)`.
pub(super) fn m_update(this: D, args: KwArgs) -> PyResult<*mut sys::PyObject> {
    let a = args.bind("update", [cstr!("key"), cstr!("fn"), cstr!("default")], 3)?;
    let (Some(k), Some(f)) = (a[0], a[1]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "update() missing required argument: update(key, fn, default=None)",
        ));
    };
    check_callable(f, "update()'s fn")?;
    // SAFETY: immortal.
    let default = a[2].unwrap_or(unsafe { sys::Py_None() });
    let _busy = Busy::enter(this.as_ptr())?;
    let mut key = Key::new(k)?;
    let new = merge(this.get(), &mut key, |cur| {
        let arg = cur.map_or(default, |c| c.as_ptr());
        // SAFETY: attached; `f` and `arg` are live.
        unsafe { Owned::from_new(sys::PyObject_CallOneArg(f, arg)) }
    })?;
    Ok(new.into_ptr())
}

/// `compare_and_set(key, expected, new)`.
pub(super) fn m_cas(this: D, args: KwArgs) -> PyResult<*mut sys::PyObject> {
    let a = args.bind(
        "compare_and_set",
        [cstr!("key"), cstr!("expected"), cstr!("new")],
        3,
    )?;
    let (Some(k), Some(expected), Some(new)) = (a[0], a[1], a[2]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "compare_and_set() takes exactly 3 arguments (key, expected, new)",
        ));
    };
    not_busy(this.as_ptr())?;
    let mut key = Key::new(k)?;
    let expected_plain = is_plain(expected, 0);
    let mut err = false;
    let ok = with_entry(this.get(), &mut key, |slot| {
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
pub(super) fn for_pairs(
    iterable: *mut sys::PyObject,
    mut f: impl FnMut(*mut sys::PyObject, *mut sys::PyObject) -> PyResult<()>,
) -> PyResult<()> {
    // SAFETY: attached; `iterable` is a live borrowed argument.
    let iterable = unsafe { Owned::from_borrowed(iterable) };
    ffi::for_each(&iterable, |item| {
        // SAFETY: attached; `item` is live for the call; checked before use.
        unsafe {
            let t = if sys::PyTuple_CheckExact(item) != 0 {
                Owned::from_borrowed(item)
            } else {
                Owned::from_new(sys::PySequence_Tuple(item)).map_err(|_| {
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
            )
        }
    })
}

/// `reduce(iterable, fn)`: aggregate locally with `fn(old, new)`, then merge
/// each distinct key with the compare-and-set loop.
pub(super) fn m_reduce(this: D, args: KwArgs) -> PyResult<*mut sys::PyObject> {
    let a = args.bind("reduce", [cstr!("iterable"), cstr!("fn")], 2)?;
    let (Some(iterable), Some(f)) = (a[0], a[1]) else {
        return Err(ffi::raise(
            Exc::TypeError,
            "reduce() takes exactly 2 arguments (iterable, fn)",
        ));
    };
    check_callable(f, "reduce()'s fn")?;
    let _busy = Busy::enter(this.as_ptr())?;
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
    let d = this.get();
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
pub(super) enum Acc {
    Int(i64),
    Obj(Owned),
}

impl Acc {
    pub(super) fn to_object(&self) -> PyResult<Owned> {
        match self {
            Acc::Int(n) => ffi::new_int(*n),
            // SAFETY: live.
            Acc::Obj(o) => Ok(unsafe { Owned::from_borrowed(o.as_ptr()) }),
        }
    }

    /// `self + v`.
    pub(super) fn add(&mut self, v: *mut sys::PyObject) -> PyResult<()> {
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
pub(super) fn small_int(obj: *mut sys::PyObject) -> Option<i64> {
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

/// No index (`sum_into`'s chains of keys of equal hash).
const NONE: usize = usize::MAX;

/// Local aggregation of sums per distinct key (first-seen order), then a merge
/// of each into the map: the int sums shard by shard ([`add_int_sums`]), the
/// rest key by key. `each` feeds `(key, addend)` pairs to `add`; `items` is
/// the argument they come from (its size, if a list or tuple, sizes the local
/// table).
pub(super) fn sum_into(
    this: D,
    items: *mut sys::PyObject,
    each: impl FnOnce(&mut dyn FnMut(*mut sys::PyObject, Addend) -> PyResult<()>) -> PyResult<()>,
) -> PyResult<()> {
    let _busy = Busy::enter(this.as_ptr())?;
    // Local aggregation, in first-seen order: `accs[i]` is the i-th distinct
    // key (the first object seen of it, held) with its sum, `hashes[i]` its
    // hash; `first[hash]` is the last distinct key seen of that hash and
    // `next[i]` the one before it of the same hash (rare). Keys are equal as
    // a dict's are: the same hash, then identity or `==`. Not a Python dict
    // of int indices: a thread-safe dict lookup, an int object and its
    // conversion per word were a third of a 4,096-word batch's time on 3.13t.
    // rustc-hash: a Python hash needs no second, DoS-resistant hash.
    let mut accs: Vec<(Owned, Acc)> = Vec::new();
    let mut hashes: Vec<u64> = Vec::new();
    let mut next: Vec<usize> = Vec::new();
    // Sized for a quarter of an exact list's or tuple's items as distinct
    // keys (growing from empty rehashed 10 times for 1,500 keys).
    // SAFETY: attached; `items` is a live argument; the checks read its type
    // and size.
    let size = unsafe {
        if sys::PyList_CheckExact(items) != 0 {
            sys::PyList_GET_SIZE(items) as usize
        } else if sys::PyTuple_CheckExact(items) != 0 {
            sys::PyTuple_GET_SIZE(items) as usize
        } else {
            0
        }
    };
    let mut first: FxHashMap<u64, usize> =
        FxHashMap::with_capacity_and_hasher((size / 4).min(1 << 14), Default::default());
    each(&mut |k, addend| {
        let h = hash_of(k)?;
        let mut at = first.get(&h).copied().unwrap_or(NONE);
        while at != NONE {
            let c = accs[at].0.as_ptr();
            if c == k {
                break;
            }
            // SAFETY: attached; both live (`accs` holds `c`, the caller `k`);
            // no lock is held, so `==` may run any code.
            match unsafe { sys::PyObject_RichCompareBool(c, k, sys::Py_EQ) } {
                1 => break,
                0 => at = next[at],
                _ => return Err(PyErrSet),
            }
        }
        let i = if at != NONE {
            at
        } else {
            let i = accs.len();
            next.push(first.insert(h, i).unwrap_or(NONE));
            hashes.push(h);
            // SAFETY: attached; `k` is live.
            accs.push((unsafe { Owned::from_borrowed(k) }, Acc::Int(0)));
            i
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
    let d = this.get();
    // Every key hashed before any lock is taken (module doc, rule 1).
    let mut keys: Vec<Key> = accs
        .iter()
        .zip(&hashes)
        .map(|((k, _), &h)| Key::with_hash(k.as_ptr(), h))
        .collect();
    let mut slow = Vec::new();
    add_int_sums(d, &keys, &accs, &mut slow)?;
    for i in slow {
        let (key, acc) = (&mut keys[i], &accs[i].1);
        if let Acc::Int(n) = acc {
            // Fast path, one write-locked pass (`locked_sum`). `add_int_sums`
            // leaves a key here when a candidate needed `==` outside the lock.
            let n = *n;
            let done = with_entry(d, key, |slot| match locked_sum(slot.as_deref(), n) {
                Some(Ok(p)) => (Act::Store(p), Ok(true)),
                Some(Err(e)) => (Act::Keep, Err(e)),
                None => (Act::Keep, Ok(false)),
            })??;
            if done {
                continue;
            }
        }
        merge(d, key, |cur| match cur {
            None => acc.to_object(),
            Some(c) => {
                if let (Some(x), Acc::Int(n)) = (small_int(c.as_ptr()), acc) {
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

/// Keys updated per hold of a shard's write lock by [`add_int_sums`]: bounds
/// how long a reader or writer of that shard waits (about 32 lookups and int
/// allocations, a few microseconds).
const PER_HOLD: usize = 32;

std::thread_local! {
    /// Where this thread's next [`add_int_sums`] starts its walk over the
    /// shards; seeded from the address of this thread's slot, so threads
    /// merging at once start in different places.
    static NEXT_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The int sums of `accs` (`Acc::Int`) added into `d` shard by shard: each
/// shard's write lock is taken once per [`PER_HOLD`] of its keys rather than
/// once per key. With two threads merging batches of a word count the lock
/// words and the shards' table headers moved between their CPUs at every key
/// (profile in benchmarks/README.md, "Word counts merged shard by shard").
/// The walk starts at a shard that differs per thread and per call, so two
/// threads rarely want the same shard at the same time.
///
/// A key this cannot finish under the lock (an `Acc::Obj` sum, a stored value
/// that is not an exact int or whose sum overflows, a candidate key that needs
/// `==` outside the lock) is left in `slow`, untouched, for the caller's
/// per-key path. Displaced values are released after each unlock (module doc,
/// rule 3).
fn add_int_sums(
    d: &super::DictState,
    keys: &[Key],
    accs: &[(Owned, Acc)],
    slow: &mut Vec<usize>,
) -> PyResult<()> {
    let shards = d.map.shard_count();
    // A counting sort of the int sums by shard: `order[at[s]..at[s + 1]]` are
    // shard s's.
    let mut at = vec![0usize; shards + 1];
    let mut shard_of = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let s = d.map.shard_of(key.hash);
        shard_of.push(s);
        if matches!(accs[i].1, Acc::Int(_)) {
            at[s + 1] += 1;
        } else {
            slow.push(i);
        }
    }
    for s in 0..shards {
        at[s + 1] += at[s];
    }
    let mut fill = at.clone();
    let mut order = vec![0usize; at[shards]];
    for (i, &s) in shard_of.iter().enumerate() {
        if matches!(accs[i].1, Acc::Int(_)) {
            order[fill[s]] = i;
            fill[s] += 1;
        }
    }
    let first = NEXT_SHARD.with(|c| {
        let mut v = c.get();
        if v == usize::MAX {
            // Thread-local slots of different threads are far apart; mix the
            // address so neighbouring threads' starts differ.
            v = (c as *const Cell<usize> as usize >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        // Any odd step visits every start in turn (`shards` is a power of two).
        c.set(v.wrapping_add(shards / 2 + 1));
        v
    });
    // One pass that only tries each shard's lock, leaving a busy shard's
    // chunk for later, then a pass that waits for what was left: a thread
    // that met the other's chunk went to sleep on it (a futex wait and
    // wake-up, tens of microseconds on a VM, against a few for the chunk).
    let mut later: Vec<(usize, usize)> = Vec::new();
    for step in 0..shards {
        let s = (first.wrapping_add(step)) & (shards - 1);
        let mut from = at[s];
        while from < at[s + 1] {
            let to = (from + PER_HOLD).min(at[s + 1]);
            match d.map.try_write_shard(s) {
                Some(g) => add_chunk(g, &order[from..to], keys, accs, slow)?,
                None => later.push((s, from)),
            }
            from = to;
        }
    }
    for (s, from) in later {
        let to = (from + PER_HOLD).min(at[s + 1]);
        let g = super::store::write_lock(&d.map, s);
        add_chunk(g, &order[from..to], keys, accs, slow)?;
    }
    Ok(())
}

/// What a write-locked pass stores for the int sum `n` added to a slot's
/// value `cur` (absent: 0): the new int; `None` if `cur` is not an exact int
/// or the sum overflows i64 (the per-key path decides); `Err` with
/// MemoryError set if the int cannot be made (reported after the unlock). An
/// int allocation runs no Python code and waits for nothing (module doc,
/// rule 2), so it may run under the lock.
fn locked_sum(cur: Option<&P>, n: i64) -> Option<PyResult<P>> {
    let c = match cur {
        None => 0,
        Some(v) => small_int(v.0)?,
    };
    let sum = c.checked_add(n)?;
    // SAFETY: attached (every caller is); returns a new reference or NULL with
    // MemoryError set.
    let o = unsafe { sys::PyLong_FromLongLong(sum) };
    Some(if o.is_null() { Err(PyErrSet) } else { Ok(P(o)) })
}

/// [`add_int_sums`] under one hold of a shard's lock `g`: the sums of the
/// keys `chunk` (indices into `keys` and `accs`, all of `g`'s shard). Releases
/// `g`, then the displaced values.
fn add_chunk(
    mut g: crossinterp_core::map::WriteGuard<'_, P, P>,
    chunk: &[usize],
    keys: &[Key],
    accs: &[(Owned, Acc)],
    slow: &mut Vec<usize>,
) -> PyResult<()> {
    let mut released: [Option<P>; PER_HOLD] = [None; PER_HOLD];
    let mut error = false;
    for (j, &i) in chunk.iter().enumerate() {
        let key = &keys[i];
        let Acc::Int(n) = accs[i].1 else {
            unreachable!()
        };
        let mut pending = super::keys::Pending::default();
        match g.entry(key.hash, |k| key.eq_locked(k, &mut pending)) {
            _ if pending.error => {
                error = true;
                break;
            }
            Some(mut e) => match locked_sum(Some(e.value()), n) {
                Some(Ok(p)) => released[j] = Some(std::mem::replace(e.value_mut(), p)),
                Some(Err(_)) => {
                    error = true;
                    break;
                }
                None => slow.push(i),
            },
            None if pending.unknown.is_empty() => match locked_sum(None, n) {
                // SAFETY: attached; the key is alive (`accs` holds it).
                Some(Ok(p)) => g.insert_new(key.hash, unsafe { P::new_ref(key.obj) }, p),
                Some(Err(_)) => {
                    error = true;
                    break;
                }
                None => unreachable!("0 + an i64 fits in an i64"),
            },
            // A candidate of equal hash needs `==` outside the lock.
            None => slow.push(i),
        }
    }
    drop(g);
    for p in released.into_iter().flatten() {
        // SAFETY: taken out of the map, which owned a reference.
        drop(unsafe { p.owned() });
    }
    if error {
        return Err(PyErrSet);
    }
    Ok(())
}

/// What one input of `reduce_sum`/`reduce_count` adds.
pub(super) enum Addend {
    One,
    Obj(*mut sys::PyObject),
}

pub(super) fn m_reduce_sum(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("reduce_sum", args, 1)?;
    sum_into(this, args[0], |add| {
        for_pairs(args[0], |k, v| add(k, Addend::Obj(v)))
    })?;
    Ok(ffi::none())
}

pub(super) fn m_reduce_count(this: D, args: Args) -> PyResult<*mut sys::PyObject> {
    arity("reduce_count", args, 1)?;
    sum_into(this, args[0], |add| {
        // SAFETY: attached; `args[0]` is a live borrowed argument.
        let iterable = unsafe { Owned::from_borrowed(args[0]) };
        ffi::for_each(&iterable, |item| add(item, Addend::One))
    })?;
    Ok(ffi::none())
}
