//! Per-interpreter state: the type table.
//!
//! Every native type is a heap type made once per interpreter (by the first
//! `crossinterp._native` module the interpreter executes), and several types
//! need Python-side objects (`crossinterp.queues.Queue`, the exception
//! classes of `crossinterp._errors`, `crossinterp._xi.dumps`...). The table
//! holds one strong reference to each, by the process-wide [`TypeIndex`] of
//! its class or [`Import`]: "is this object ours" is an index and a type
//! check, and a Python-side object is imported once per interpreter, on first
//! use (lazily: those modules import `_native` themselves).
//!
//! Ownership: the table belongs to its interpreter's owner record and is
//! touched only by threads attached to that interpreter. Its references are
//! reported to the GC by the module that filled it (its `m_traverse`; the
//! types reference that module back, so the pair is a cycle the GC must see)
//! and released by that module's `m_clear` / `m_free`, during the
//! interpreter's teardown. Readers load an entry and use it while attached;
//! an entry is cleared only when the module that owns it is being collected,
//! which cannot happen while the interpreter runs (the owner record keeps
//! the module alive until the owner's finalization, see `owners`), so a
//! loaded entry stays valid for the call that loaded it.

use crate::ffi::class::{NativeClass, This, TypeIndex};
use crate::ffi::{self, sys, Exc, Owned, PyResult};
use crossinterp_core::sync::{AtomicPtr, Ordering};
use std::ffi::{c_int, c_void, CStr};
use std::ptr::null_mut;

/// The extension module (imported on demand by `type_of`).
const MODULE: &CStr = crate::cstr!("crossinterp._native");

/// Room for every class and import of the crate (checked at assignment).
pub const CAPACITY: usize = 64;

/// A Python-side object the runtime fetches once per interpreter:
/// `module.attr`.
pub struct Import {
    pub module: &'static CStr,
    pub attr: &'static CStr,
    index: TypeIndex,
}

impl Import {
    pub const fn new(module: &'static CStr, attr: &'static CStr) -> Import {
        Import {
            module,
            attr,
            index: TypeIndex::new(),
        }
    }
}

/// One interpreter's table (see the module docs).
pub struct TypeTable {
    entries: [AtomicPtr<sys::PyObject>; CAPACITY],
}

fn slot(index: &TypeIndex) -> usize {
    let i = index.get();
    assert!(i < CAPACITY, "crossinterp: type table full");
    i
}

impl Default for TypeTable {
    fn default() -> Self {
        TypeTable {
            entries: std::array::from_fn(|_| AtomicPtr::new(null_mut())),
        }
    }
}

impl TypeTable {
    /// This interpreter's type object for `T`.
    #[inline]
    pub fn type_of<T: NativeClass>(&self) -> PyResult<*mut sys::PyTypeObject> {
        // Acquire: pairs with the Release in `add_class` (the type is fully
        // built before other threads of this interpreter see it).
        let p = self.entries[slot(&T::DEF.index)].load(Ordering::Acquire);
        if p.is_null() {
            return self.type_of_slow(T::DEF);
        }
        Ok(p as *mut sys::PyTypeObject)
    }

    /// An interpreter registered by `create()` has not imported the module
    /// yet: importing it makes the types (its exec slot fills this table).
    #[cold]
    fn type_of_slow(&self, def: &ffi::class::ClassDef) -> PyResult<*mut sys::PyTypeObject> {
        ffi::import_attr(MODULE, def.attr)?;
        // Acquire: as in `type_of`.
        let p = self.entries[slot(&def.index)].load(Ordering::Acquire);
        if p.is_null() {
            return Err(unavailable(def.attr));
        }
        Ok(p as *mut sys::PyTypeObject)
    }

    /// `obj` as a `T`, if it is an instance of this interpreter's `T` (or
    /// of a subclass).
    ///
    /// # Safety
    /// `obj` is a live object of the attached interpreter (this table's),
    /// alive for `'a`.
    #[inline]
    pub unsafe fn downcast<'a, T: NativeClass>(
        &self,
        obj: *mut sys::PyObject,
    ) -> Option<This<'a, T>> {
        // Acquire: as in `type_of`.
        let tp = self.entries[slot(&T::DEF.index)].load(Ordering::Acquire);
        if tp.is_null() {
            return None;
        }
        // SAFETY: forwarded; `tp` is this interpreter's type for `T`.
        unsafe { This::downcast(obj, tp as *mut sys::PyTypeObject) }
    }

    /// Whether `obj` is an instance of this interpreter's `T` (or a subclass).
    ///
    /// # Safety
    /// As [`downcast`](Self::downcast).
    #[inline]
    pub unsafe fn is<T: NativeClass>(&self, obj: *mut sys::PyObject) -> bool {
        // SAFETY: forwarded.
        unsafe { self.downcast::<T>(obj).is_some() }
    }

    /// This interpreter's type for the class `def`; null before it is made.
    #[inline]
    pub fn type_of_def(&self, def: &ffi::class::ClassDef) -> *mut sys::PyTypeObject {
        // Acquire: as in `type_of`.
        self.entries[slot(&def.index)].load(Ordering::Acquire) as *mut sys::PyTypeObject
    }

    /// Whether `obj` is an instance of this interpreter's class `def` (or of
    /// a subclass).
    ///
    /// # Safety
    /// `obj` is a live object of the attached interpreter (this table's).
    #[inline]
    pub unsafe fn is_def(&self, def: &ffi::class::ClassDef, obj: *mut sys::PyObject) -> bool {
        let tp = self.type_of_def(def);
        // SAFETY: forwarded; `tp` is a live type when non-null.
        !tp.is_null() && unsafe { sys::PyObject_TypeCheck(obj, tp) != 0 }
    }

    /// A new instance of this interpreter's `T` holding `value`.
    pub fn new_instance<T: NativeClass>(&self, value: T) -> PyResult<Owned> {
        let tp = self.type_of::<T>()?;
        // SAFETY: attached (callers run in entry points); `tp` is `T`'s type.
        unsafe { ffi::class::alloc(tp, value) }
    }

    /// A new instance of the Python class `cls` (a subclass of `T` defined
    /// in Python, e.g. `crossinterp.queues.Queue` over `QueueBase`).
    pub fn new_subclass_instance<T: NativeClass>(&self, cls: &Import, value: T) -> PyResult<Owned> {
        let tp = self.import(cls)? as *mut sys::PyTypeObject;
        let base = self.type_of::<T>()?;
        // SAFETY: attached; both are live types of this interpreter.
        if unsafe { sys::PyType_IsSubtype(tp, base) } == 0 {
            return Err(ffi::raise(
                Exc::SystemError,
                &format!(
                    "{}.{} is not a subclass of {}",
                    cls.module.to_string_lossy(),
                    cls.attr.to_string_lossy(),
                    T::DEF.attr.to_string_lossy()
                ),
            ));
        }
        // SAFETY: `tp` is a subclass of `T`'s type (checked).
        unsafe { ffi::class::alloc(tp, value) }
    }

    /// `import.module.attr` of this interpreter (borrowed: the table holds it).
    #[inline]
    pub fn import(&self, import: &Import) -> PyResult<*mut sys::PyObject> {
        let e = &self.entries[slot(&import.index)];
        // Acquire: pairs with the AcqRel exchange below.
        let p = e.load(Ordering::Acquire);
        if !p.is_null() {
            return Ok(p);
        }
        self.import_slow(e, import)
    }

    #[cold]
    fn import_slow(
        &self,
        e: &AtomicPtr<sys::PyObject>,
        import: &Import,
    ) -> PyResult<*mut sys::PyObject> {
        let obj = ffi::import_attr(import.module, import.attr)?.into_ptr();
        // AcqRel: publish our object (Release), or see the winner's (Acquire).
        match e.compare_exchange(null_mut(), obj, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(obj),
            Err(won) => {
                // SAFETY: attached; we own `obj`, the table holds `won`.
                unsafe { sys::Py_DecRef(obj) };
                Ok(won)
            }
        }
    }

    /// Create `def`'s type for `module` and record it.
    ///
    /// # Safety
    /// Attached; `module` is our live module object, in its exec slot.
    pub unsafe fn add_class(
        &self,
        module: *mut sys::PyObject,
        def: &'static ffi::class::ClassDef,
    ) -> PyResult<()> {
        let e = &self.entries[slot(&def.index)];
        // Relaxed: only the exec slot (attached, this interpreter) writes.
        let mut tp = e.load(Ordering::Relaxed);
        if tp.is_null() {
            // SAFETY: the caller's contract.
            let t = unsafe { def.create(module)? };
            tp = t.into_ptr();
            // Release: the type is fully built before other threads see it.
            e.store(tp, Ordering::Release);
        }
        // SAFETY: attached; `module` is live; AddObjectRef takes its own reference.
        if unsafe { sys::PyModule_AddObjectRef(module, def.attr.as_ptr(), tp) } < 0 {
            return Err(ffi::PyErrSet);
        }
        Ok(())
    }

    /// GC support: report every reference the table holds.
    ///
    /// # Safety
    /// Called from the owning module's `m_traverse`.
    pub unsafe fn traverse(&self, visit: sys::visitproc, arg: *mut c_void) -> c_int {
        for e in &self.entries {
            // Relaxed: the GC runs with this interpreter's world stopped or
            // under its GIL; entries are only written attached.
            let p = e.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: the GC's contract; `p` is a live object we hold.
                let r = unsafe { visit(p, arg) };
                if r != 0 {
                    return r;
                }
            }
        }
        0
    }

    /// Release every reference (the owning module's `m_clear` / `m_free`).
    ///
    /// # Safety
    /// Attached to this table's interpreter.
    pub unsafe fn clear(&self) {
        for e in &self.entries {
            // AcqRel: whoever swaps a non-null entry out releases it, once.
            let p = e.swap(null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: attached; we owned that reference.
                unsafe { sys::Py_DecRef(p) };
            }
        }
    }
}

#[cold]
#[inline(never)]
fn unavailable(what: &CStr) -> ffi::PyErrSet {
    ffi::raise(
        Exc::RuntimeError,
        &format!(
            "crossinterp: {} is not available in this interpreter (its crossinterp module is finalizing)",
            what.to_string_lossy()
        ),
    )
}
