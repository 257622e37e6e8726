//! Keys: the strong references the map stores ([`P`]), hashing, and the
//! equality test used under a shard lock (module doc, rule 2): identity, an
//! earlier verdict (the memo), or a comparison of *plain* objects; any other
//! candidate is compared outside the lock.

use crate::ffi::{sys, Owned, PyErrSet, PyResult};

/// A strong reference stored in the map.
///
/// Ownership: owns one reference to an object of the dict's interpreter. It has
/// no `Drop`: whoever takes it out of the map releases it (`release`), attached
/// to that interpreter and with no shard lock held.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct P(pub(super) *mut sys::PyObject);

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
    pub(super) unsafe fn new_ref(obj: *mut sys::PyObject) -> P {
        // SAFETY: the caller's contract (non-NULL, live, attached).
        unsafe { sys::Py_INCREF(obj) };
        P(obj)
    }

    /// Release this reference as an `Owned` (dropped by the caller, later).
    ///
    /// # Safety
    /// `self` owns a reference (taken out of the map or made by `new_ref`).
    pub(super) unsafe fn owned(self) -> Owned {
        // SAFETY: the caller's contract; non-NULL by construction.
        unsafe { Owned::from_new(self.0).unwrap_or_else(|_| unreachable!()) }
    }
}

/// `hash(obj)`, as the map's 64-bit hash.
pub(super) fn hash_of(obj: *mut sys::PyObject) -> PyResult<u64> {
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
pub(super) fn is_plain(obj: *mut sys::PyObject, depth: u32) -> bool {
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
pub(super) struct Key {
    pub(super) obj: *mut sys::PyObject,
    pub(super) hash: u64,
    pub(super) plain: bool,
    /// Candidates compared with `==` outside the lock, and whether equal. The
    /// strong references keep their addresses from being reused.
    pub(super) memo: Vec<(Owned, bool)>,
}

/// What one lookup under a lock left to do.
#[derive(Default)]
pub(super) struct Pending {
    /// Candidates that need `==` outside the lock (not yet incref'd).
    pub(super) unknown: Vec<P>,
    /// A plain comparison raised (the exception is set).
    pub(super) error: bool,
}

impl Key {
    pub(super) fn new(obj: *mut sys::PyObject) -> PyResult<Key> {
        Ok(Key {
            obj,
            hash: hash_of(obj)?,
            plain: is_plain(obj, 0),
            memo: Vec::new(),
        })
    }

    /// A key whose hash the caller computed (`hash_of(obj)`, no lock held).
    pub(super) fn with_hash(obj: *mut sys::PyObject, hash: u64) -> Key {
        Key {
            obj,
            hash,
            plain: is_plain(obj, 0),
            memo: Vec::new(),
        }
    }

    /// The equality test run under the lock (see the module doc, rule 2).
    pub(super) fn eq_locked(&self, cand: &P, pending: &mut Pending) -> bool {
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
    pub(super) fn hold(pending: &mut Pending) -> Vec<Owned> {
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
    pub(super) fn resolve(&mut self, held: Vec<Owned>) -> PyResult<()> {
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
