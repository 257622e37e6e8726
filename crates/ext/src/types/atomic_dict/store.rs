//! The shard storage: the dict's state ([`DictState`]), taking shard locks
//! without blocking attached (module doc, rule 5), and the core operations
//! (lookup, the write-locked `with_entry`, store, take, the compare-and-set
//! `merge`, snapshots).

use super::keys::{Key, Pending, P};
use crate::ffi::{interp::detached, sys, Owned, PyErrSet, PyResult};
use crossinterp_core::map::{ReadGuard, ShardedMap, WriteGuard};

/// The state of one `AtomicDict` object.
///
/// Ownership: owned by the Python object (in `Native<DictState>`, see `ffi::class`), in the
/// interpreter that created it; dropped by its `tp_dealloc`, which CPython
/// runs attached to that interpreter — the only reason it may release the
/// Python references it holds (unlike the plain-data types `Native` usually
/// holds).
pub struct DictState {
    pub(super) map: ShardedMap<P, P>,
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

// ------------------------------------------------------------ locking

/// `try_lock` attempts (with a spin hint between) before waiting detached.
pub(super) const SPINS: u32 = 64;

pub(super) fn read_lock(m: &ShardedMap<P, P>, shard: usize) -> ReadGuard<'_, P, P> {
    for _ in 0..SPINS {
        if let Some(g) = m.try_read_shard(shard) {
            return g;
        }
        std::hint::spin_loop();
    }
    detached(|| m.read_shard(shard))
}

pub(super) fn write_lock(m: &ShardedMap<P, P>, shard: usize) -> WriteGuard<'_, P, P> {
    for _ in 0..SPINS {
        if let Some(g) = m.try_write_shard(shard) {
            return g;
        }
        std::hint::spin_loop();
    }
    detached(|| m.write_shard(shard))
}

// ------------------------------------------------------------ core operations

/// The value for `key`, as a new reference; `None` if absent.
pub(super) fn lookup(d: &DictState, key: &mut Key) -> PyResult<Option<Owned>> {
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
pub(super) type Slot<'a> = Option<&'a mut P>;

/// What a `with_entry` decision does to the map.
pub(super) enum Act {
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
pub(super) fn with_entry<R>(
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
pub(super) fn store(d: &DictState, key: &mut Key, value: *mut sys::PyObject) -> PyResult<()> {
    with_entry(d, key, |_| {
        // SAFETY: attached; `value` is a live argument.
        (Act::Store(unsafe { P::new_ref(value) }), ())
    })
}

/// Remove `key`, returning its value (new reference) or `None` if absent.
pub(super) fn take(d: &DictState, key: &mut Key) -> PyResult<Option<Owned>> {
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
pub(super) fn merge(
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
pub(super) fn snapshot(d: &DictState) -> Vec<(Owned, Owned)> {
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

pub(super) fn new_list(items: impl ExactSizeIterator<Item = Owned>) -> PyResult<Owned> {
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

pub(super) fn pair(a: Owned, b: Owned) -> PyResult<Owned> {
    // SAFETY: attached; PyTuple_Pack takes borrowed references.
    unsafe { Owned::from_new(sys::PyTuple_Pack(2, a.as_ptr(), b.as_ptr())) }
}

pub(super) fn to_dict_of(d: &DictState) -> PyResult<Owned> {
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
