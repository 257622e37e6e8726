//! The shared reference: [`ObjRef`] (one strong reference, released in its
//! owner), [`ProxyTarget`] (the state every proxy of it shares), sharing an
//! object of the attached interpreter and the owner's finalization sweep.

use super::SharedObjectProxy;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::runtime::owners::OwnerRecord;
use crate::runtime::{self, Error};
use crate::xi::{self, Value};
use crossinterp_core::sync::{Arc, AtomicBool, Mutex, Ordering};
use crossinterp_core::{Attached, Handle, Release};

/// One strong reference to an object of interpreter `rec`, released there.
pub struct ObjRef {
    key: u64,
    rec: Arc<OwnerRecord>,
}

impl Release for ObjRef {
    fn release(self, _attached: &Attached<'_>) {
        let taken = self.rec.shared.take(self.key);
        if let Some(obj) = taken {
            // SAFETY: `release` runs attached to the owner (the `Attached`
            // proof); the entry was the reference this handle held, and we
            // removed it, so nobody else releases it.
            unsafe { sys::Py_DecRef(obj as *mut sys::PyObject) };
        }
    }
}

/// The shared state of every proxy of one shared reference, in any
/// interpreter.
///
/// Ownership: `Arc`-shared by the proxies and the values in transit; may be
/// dropped on any thread (the handle routes the release to the owner). The
/// object itself is touched only while attached to the owner, under a guard or
/// in the owner's own threads.
pub struct ProxyTarget {
    pub(super) handle: Handle<ObjRef>,
    /// The owner's record (its interpreter pointer is used under a guard).
    pub(super) rec: Arc<OwnerRecord>,
    /// The key of the reference in the owner's `shared` table.
    key: u64,
    /// The object. Dereferenced only attached to the owner while it is not
    /// Finalized: then our handle keeps the reference (its entry is removed by
    /// our own last drop, or by the owner's finalization, after which `get`
    /// fails).
    obj: usize,
    /// Attribute names that resolve, on this object, to a method whose
    /// resolution cannot change (immutable type and MRO, no instance dict,
    /// generic attribute lookup): `p.name` then makes a method proxy without
    /// entering the owner, and `p.name(...)` costs one round trip.
    pub(super) methods: Mutex<Vec<Box<str>>>,
    /// The object's type name when it was shared (for `repr`, which must
    /// work without entering the owner, and after the owner is gone).
    pub(super) type_name: Box<str>,
    /// Set by `collect_cycles()` before it releases the reference (the
    /// target was part of an unreachable cross-interpreter cycle): from then
    /// on `obj` is never dereferenced.
    collected: AtomicBool,
}

impl std::fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyTarget(owner {}, key {})", self.rec.iid, self.key)
    }
}

impl ProxyTarget {
    /// The owner's interpreter id.
    pub fn owner_iid(&self) -> i64 {
        self.rec.iid
    }

    /// The key of the reference in the owner's `shared` table.
    pub(super) fn key(&self) -> u64 {
        self.key
    }

    /// `collect_cycles()` is about to release the reference.
    pub(super) fn mark_collected(&self) {
        // SeqCst: every operation that starts after the pass marked the
        // target sees the mark (the pass releases only after marking all).
        self.collected.store(true, Ordering::SeqCst);
    }

    /// Whether `collect_cycles()` released the reference.
    pub fn is_collected(&self) -> bool {
        self.collected.load(Ordering::SeqCst)
    }

    /// The object, for a thread attached to the owner.
    pub(super) fn local_obj(&self) -> PyResult<*mut sys::PyObject> {
        let (_, cur) = ffi::interp::current();
        if cur != self.rec.iid {
            return Err(ffi::raise(
                ffi::Exc::SystemError,
                "proxy target used outside its owner",
            ));
        }
        // SAFETY: attached to the owner (checked above); the proof does not
        // outlive this function.
        let attached = unsafe { Attached::enter(self.rec.view.id()) };
        if self.is_collected() {
            return Err(Error::gone(&format!(
                "this shared object (owned by interpreter {}) was released by \
                 crossinterp.collect_cycles(): it was part of a cross-interpreter \
                 cycle that nothing else could reach",
                self.rec.iid
            )));
        }
        match self.handle.get(&attached) {
            Ok(_) => Ok(self.obj as *mut sys::PyObject),
            Err(_) => Err(self.gone()),
        }
    }

    /// Whether the object can still be reached (the owner runs and our
    /// reference was not swept).
    pub(super) fn alive(&self) -> bool {
        !self.handle.is_dead()
            && !self.is_collected()
            && self.rec.view.state() == crossinterp_core::OwnerState::Running
    }

    pub(super) fn gone(&self) -> PyErrSet {
        Error::gone(&format!(
            "the interpreter that owns this shared object (interpreter {}) is finalizing or gone",
            self.rec.iid
        ))
    }
}

/// Share `obj`, an object of the attached interpreter: one new strong
/// reference held by a new handle.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn share_current(obj: *mut sys::PyObject) -> PyResult<Arc<ProxyTarget>> {
    super::cycles::bump();
    let rec = runtime::current()?;
    if rec.view.state() == crossinterp_core::OwnerState::Finalized {
        return Err(Error::gone(&format!(
            "interpreter {} has finalized: it cannot share objects",
            rec.iid
        )));
    }
    // SAFETY: attached; `obj` is live. The reference is recorded before the
    // handle exists, so either its release or the finalization sweep finds it.
    unsafe { sys::Py_IncRef(obj) };
    let key = rec.shared.insert(obj as usize);
    // SAFETY: attached to `rec`'s interpreter; the proof ends in this block.
    let handle = unsafe {
        let attached = Attached::enter(rec.view.id());
        Handle::new(
            ObjRef {
                key,
                rec: rec.clone(),
            },
            rec.view.clone(),
            &attached,
        )
    };
    Ok(Arc::new(ProxyTarget {
        handle,
        rec,
        key,
        obj: obj as usize,
        methods: Mutex::new(Vec::new()),
        // SAFETY: attached; `obj` is live (the caller's contract).
        type_name: unsafe { ffi::type_name(obj) }.into_boxed_str(),
        collected: AtomicBool::new(false),
    }))
}

/// Release, in the finalizing owner `rec`, every reference proxies elsewhere
/// still hold (they are dead from now on: the owner is Finalized).
pub fn release_all(rec: &OwnerRecord) {
    for obj in rec.shared.take_all() {
        // SAFETY: called attached to the owner at its finalization; each
        // entry was one strong reference, removed here so nobody else
        // releases it.
        unsafe { sys::Py_DecRef(obj as *mut sys::PyObject) };
    }
}

/// `obj` as it crosses in a proxy operation: natively when it can, else as a
/// proxy of it (the caller's object stays where it is).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn share_value(obj: *mut sys::PyObject) -> PyResult<Value> {
    // SAFETY: forwarded.
    unsafe {
        if let Some(v) = xi::native_value(obj)? {
            return Ok(v);
        }
        Ok(Value::Shared(share_current(obj)?))
    }
}

/// `obj` by the data layer's rules (native, else pickled), or as a proxy
/// when it cannot be pickled.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub(super) unsafe fn copy_or_share(obj: *mut sys::PyObject) -> PyResult<Value> {
    // SAFETY: forwarded.
    unsafe {
        if let Some(v) = xi::native_value(obj)? {
            return Ok(v);
        }
        match xi::to_value(obj, false) {
            Ok(v) => Ok(v),
            Err(PyErrSet) => {
                sys::PyErr_Clear();
                Ok(Value::Shared(share_current(obj)?))
            }
        }
    }
}

/// The object for `t` in the attached interpreter: the original object in
/// its owner, a `SharedObjectProxy` elsewhere.
pub fn to_python(t: &Arc<ProxyTarget>) -> PyResult<Owned> {
    let (_, iid) = ffi::interp::current();
    if iid == t.rec.iid {
        let obj = t.local_obj()?;
        // SAFETY: attached to the owner; `obj` is live (our handle holds it).
        return Ok(unsafe { Owned::from_borrowed(obj) });
    }
    super::cycles::bump();
    runtime::new_instance(SharedObjectProxy {
        target: t.clone(),
        _held: super::detect::Held::new(t.rec.iid),
    })
}

/// The target of `obj` if it is a `SharedObjectProxy` of the attached
/// interpreter (the type table's downcast).
///
/// # Safety
/// `obj` is a live object of the attached interpreter, alive for `'a`.
pub unsafe fn proxy_target<'a>(obj: *mut sys::PyObject) -> Option<&'a Arc<ProxyTarget>> {
    let Ok(rec) = runtime::current() else {
        // Not ours (no record): drop the lookup's failure.
        // SAFETY: attached (the caller's contract).
        unsafe { sys::PyErr_Clear() };
        return None;
    };
    // SAFETY: forwarded.
    let this = unsafe { rec.types.downcast::<SharedObjectProxy>(obj) }?;
    Some(&this.get().target)
}
