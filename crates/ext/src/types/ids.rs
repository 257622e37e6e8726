//! What `Queue` and `Channel` share: owner-free objects found by a
//! process-unique id (`Queue(id)`, unpickling), compared and hashed by it.
//!
//! Ownership: an [`IdTable`] holds weak references only; the objects live as
//! long as some Python object (any interpreter) or value in transit holds
//! them. Any thread.

use crate::ffi::{self, sys};
use crossinterp_core::fork::{self, Holds};
use crossinterp_core::sync::{lock, Arc, Mutex};
use std::collections::BTreeMap;
use std::ffi::c_int;
use std::sync::Weak;

/// An object with a process-unique id.
pub trait HasId {
    fn id(&self) -> u64;
}

/// Every live object of one kind, by id (weak).
pub struct IdTable<T> {
    live: Mutex<BTreeMap<u64, Weak<T>>>,
}

impl<T: HasId> IdTable<T> {
    pub const fn new() -> Self {
        IdTable {
            live: Mutex::new(BTreeMap::new()),
        }
    }

    /// Share `v` and record it (dropping the entries of dead ones).
    pub fn insert(&self, v: T) -> Arc<T> {
        let s = Arc::new(v);
        let mut live = lock(&self.live);
        live.retain(|_, w| w.strong_count() > 0);
        live.insert(s.id(), Arc::downgrade(&s));
        s
    }

    /// The live object `id`.
    pub fn get(&self, id: u64) -> Option<Arc<T>> {
        lock(&self.live).get(&id).and_then(Weak::upgrade)
    }

    /// Every live object (a snapshot).
    pub fn all(&self) -> Vec<Arc<T>> {
        lock(&self.live)
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

impl<T: HasId + 'static> IdTable<T> {
    /// Hold the table and, through `each`, every live object in it across a
    /// `fork()` (`crossinterp_core::fork`): `false` as soon as one is taken.
    /// Holding the table first keeps objects from joining it meanwhile.
    pub fn fork_hold(
        &'static self,
        holds: &mut Holds,
        each: impl Fn(&T, &mut Holds) -> bool,
    ) -> bool {
        let Some(all) = fork::hold_static_with(holds, &self.live, |live| {
            live.values().filter_map(Weak::upgrade).collect::<Vec<_>>()
        }) else {
            return false;
        };
        let ok = all.iter().all(|v| each(v, holds));
        // The upgraded references die after every hold is released: one may
        // be the last, and its items' drops take locks (`fork::Garbage`).
        fork::keep(holds, all);
        ok
    }
}

impl<T: HasId> Default for IdTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The hash of an object with id `id` (never -1).
pub fn hash(id: u64) -> sys::Py_hash_t {
    (id as sys::Py_hash_t).max(1)
}

/// `==` / `!=` by id; `other` is None when the other operand is not of the
/// same kind (then, and for ordering operators, `NotImplemented`).
pub fn compare(id: u64, other: Option<u64>, op: c_int) -> *mut sys::PyObject {
    match other {
        Some(o) if op == sys::Py_EQ || op == sys::Py_NE => {
            if (id == o) == (op == sys::Py_EQ) {
                ffi::bool_true()
            } else {
                ffi::bool_false()
            }
        }
        // SAFETY: NotImplemented is immortal; attached.
        _ => unsafe { sys::Py_NewRef(sys::Py_NotImplemented()) },
    }
}
