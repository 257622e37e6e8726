//! `AtomicRef`: a reference to a Python object that any number of threads of
//! one interpreter may read and replace concurrently (seed 004, issue 5).
//!
//! The cell owns one strong reference to the object it holds (never NULL:
//! `None` when empty). `get` returns a new reference; `set`, `get_and_set` and
//! `compare_and_set` (identity) replace it and release the old one after the
//! build's protocol says no reader can still be taking a reference to it,
//! with the thread attached and outside every lock.
//!
//! The one place where the builds differ is [`protocol`]:
//! - GIL builds: the interpreter's GIL serialises every access (an
//!   `AtomicRef` never leaves its interpreter): load + `Py_INCREF`.
//! - free-threaded 3.14+: every stored object gets `PyUnstable_EnableTryIncRef`;
//!   a reader loads the pointer, takes a reference with the fail-able
//!   `PyUnstable_TryIncRef` and re-checks that the cell still holds that
//!   pointer (else drops it and retries). CPython keeps a freed object's
//!   memory mapped and of the same size class until every attached thread
//!   passes a quiescent state (its QSBR), which is what makes the try on a
//!   just-released object safe: it fails, or succeeds on a new object at the
//!   same address, which the re-check rejects.
//! - free-threaded 3.13 (no public fail-able incref): the engine's
//!   [`Smr`](crossinterp_core::smr::Smr). A reader loads the pointer and
//!   increfs inside a read section; a writer releases the replaced object only
//!   after every section that could have loaded it has ended, so the incref
//!   never reaches an object whose count hit zero.
//!
//! Cross-interpreter: refused ([`NOT_SHAREABLE`]). Cycles through an
//! `AtomicRef` are collected (it is a GC type: `tp_traverse`/`tp_clear`).

use super::Entry;
use crate::cstr;
use crate::ffi::args::{arity, optional_object_arg, Args};
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::runtime::Error;
use crate::xi::{Converter, Match};
use crossinterp_core::sync::{AtomicPtr, Ordering};
use std::ffi::{c_int, c_void};

/// Why an `AtomicRef` cannot cross to another interpreter.
pub const NOT_SHAREABLE: &str = "AtomicRef cannot be passed to another interpreter: it holds a \
reference to an object owned by this interpreter, which another interpreter must never touch \
(copying it would make an independent cell, not a shared one). Send values through queues or \
channels, memory as SharedBuffer, share counters or flags as AtomicInt/AtomicBool, or pass \
crossinterp.share(ref): a proxy whose operations run in this interpreter.";

/// The cell behind an `AtomicRef` object.
///
/// Ownership: belongs to one Python object of one interpreter and holds one
/// strong reference, owned by that interpreter, to the object it points to.
/// Touched only by threads attached to that interpreter (the type is refused
/// by the cross-interpreter layer); its reference is released by `tp_clear`
/// or by its `Drop` (run by the object's `tp_dealloc`, on the thread that
/// deallocates it, attached).
pub struct RefSlot {
    /// Never NULL once initialised (zero-filled only between allocation and
    /// the write of the slot, before the object is visible). Owns one strong
    /// reference.
    ptr: AtomicPtr<sys::PyObject>,
    #[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
    smr: crossinterp_core::smr::Smr,
}

/// The per-build parts: prepare an object for publication, take a new
/// reference to the current value, and replace it (unconditionally or by
/// identity). Every function runs attached to the cell's interpreter; they
/// return the replaced object's reference to the caller, who releases it
/// outside the protocol.
mod protocol {
    use super::RefSlot;
    use crate::ffi::sys;
    #[allow(unused_imports)]
    use crossinterp_core::sync::Ordering;

    #[cfg(all(Py_GIL_DISABLED, Py_3_14))]
    use crate::ffi::capi::{PyUnstable_EnableTryIncRef, PyUnstable_TryIncRef};

    /// `Py_INCREF` of free-threaded 3.13, inlined (pyo3-ffi calls the
    /// exported `_Py_IncRef`; the call was ~1 ns of a ~27 ns `get`). PEP 703's
    /// biased counting: an immortal object (local count saturated) is left
    /// alone; the owning thread (`ob_tid`, the thread's TCB address on
    /// x86-64 Linux) bumps its local count without a locked instruction;
    /// any other thread adds one to the shared count, which is kept shifted
    /// left by two flag bits. Elsewhere: the exported function.
    ///
    /// # Safety
    /// Attached; `op` is a live object (count above zero).
    #[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
    #[inline(always)]
    unsafe fn incref_ft313(op: *mut sys::PyObject) {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // SAFETY: the caller's contract: `op`'s header is valid. These are
        // CPython's own counters (pyo3-ffi types them as std atomics), used
        // with relaxed accesses as CPython's inline incref does; not a
        // protocol of ours, hence outside the `sync.rs` facade. `ob_tid` is
        // read atomically (CPython clears it when merging counts).
        unsafe {
            use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
            const SHARED_SHIFT: u32 = 2;
            let local = (*op).ob_ref_local.load(Relaxed);
            if local == u32::MAX {
                return; // immortal
            }
            let tcb: usize;
            std::arch::asm!("mov {}, fs:0", out(reg) tcb, options(nostack, readonly, preserves_flags));
            let tid = &*(std::ptr::addr_of!((*op).ob_tid) as *const AtomicUsize);
            if tid.load(Relaxed) == tcb {
                (*op).ob_ref_local.store(local + 1, Relaxed);
            } else {
                (*op).ob_ref_shared.fetch_add(1 << SHARED_SHIFT, Relaxed);
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        // SAFETY: the caller's contract.
        unsafe {
            sys::Py_INCREF(op)
        }
    }

    /// A new cell holding `obj`'s reference (given to the cell).
    ///
    /// # Safety
    /// Attached; `obj` is a strong reference the caller gives away.
    pub unsafe fn new(obj: *mut sys::PyObject) -> RefSlot {
        // SAFETY: forwarded contract.
        unsafe { prepare(obj) };
        RefSlot {
            ptr: crossinterp_core::sync::AtomicPtr::new(obj),
            #[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
            smr: crossinterp_core::smr::Smr::new(),
        }
    }

    /// Make `obj` ready to be published.
    ///
    /// # Safety
    /// Attached; `obj` is live.
    #[inline]
    pub unsafe fn prepare(obj: *mut sys::PyObject) {
        // TryIncRef may fail spuriously on objects not enabled first.
        #[cfg(all(Py_GIL_DISABLED, Py_3_14))]
        // SAFETY: the caller's contract.
        unsafe {
            PyUnstable_EnableTryIncRef(obj)
        };
        let _ = obj;
    }

    /// A new reference to the current value.
    ///
    /// # Safety
    /// Attached to the cell's interpreter; `cell` is initialised.
    #[inline]
    pub unsafe fn load(cell: &RefSlot) -> *mut sys::PyObject {
        #[cfg(not(Py_GIL_DISABLED))]
        {
            // Relaxed: the GIL orders every access to the cell (it never
            // leaves its interpreter), and nothing can replace the value
            // between the load and the incref.
            let p = cell.ptr.load(Ordering::Relaxed);
            // SAFETY: the cell holds a reference to `p`, so it is alive.
            unsafe { sys::Py_INCREF(p) };
            p
        }
        #[cfg(all(Py_GIL_DISABLED, Py_3_14))]
        loop {
            // Acquire: pairs with the Release/AcqRel publication, so the
            // object's initialisation is visible.
            let p = cell.ptr.load(Ordering::Acquire);
            // SAFETY: `p` was published, so it was a live object; if it has
            // been released since, CPython's QSBR keeps its memory mapped and
            // of the same size class while we are attached, and the try
            // fails (count zero) or succeeds on whatever object now lives
            // there, which the re-check below rejects.
            if unsafe { PyUnstable_TryIncRef(p) } != 0 {
                if cell.ptr.load(Ordering::Acquire) == p {
                    // Still published after we took our reference: it is the
                    // cell's value, and ours to return.
                    return p;
                }
                // SAFETY: the reference we just took.
                unsafe { sys::Py_DECREF(p) };
            }
            std::hint::spin_loop();
        }
        #[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
        {
            cell.smr.read(|| {
                // Acquire: pairs with the writers' Release publication.
                let p = cell.ptr.load(Ordering::Acquire);
                // SAFETY: inside the read section, a value loaded from the
                // cell is not released until the section ends (Smr), so `p`'s
                // count is above zero. An incref never blocks nor runs code.
                unsafe { incref_ft313(p) };
                p
            })
        }
    }

    /// Store `new` (its reference given to the cell); return the old value's
    /// reference, safe to release.
    ///
    /// # Safety
    /// Attached to the cell's interpreter; `new` is a strong reference the
    /// caller gives away; `cell` is initialised.
    pub unsafe fn swap(cell: &RefSlot, new: *mut sys::PyObject) -> *mut sys::PyObject {
        // SAFETY: forwarded.
        unsafe { prepare(new) };
        #[cfg(not(all(Py_GIL_DISABLED, not(Py_3_14))))]
        {
            // AcqRel: Release publishes `new`'s initialisation to readers;
            // Acquire makes the old value's last writes visible to the caller
            // who releases it. (Under the GIL any ordering would do.)
            cell.ptr.swap(new, Ordering::AcqRel)
        }
        #[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
        {
            // Release: see the Smr::write contract. The old value comes back
            // once no read section can still hold it.
            cell.smr
                .write(|| Some(cell.ptr.swap(new, Ordering::AcqRel)))
                .unwrap_or(new)
        }
    }

    /// If the cell holds `expected` (identity), store `new` (its reference
    /// given to the cell) and return `Ok(old reference)`; else give `new`'s
    /// reference back as `Err(new)`.
    ///
    /// # Safety
    /// As [`swap`].
    pub unsafe fn compare_and_swap(
        cell: &RefSlot,
        expected: *mut sys::PyObject,
        new: *mut sys::PyObject,
    ) -> Result<*mut sys::PyObject, *mut sys::PyObject> {
        #[cfg(not(all(Py_GIL_DISABLED, not(Py_3_14))))]
        {
            // SAFETY: forwarded.
            unsafe { prepare(new) };
            // AcqRel/Acquire: as in `swap`.
            cell.ptr
                .compare_exchange(expected, new, Ordering::AcqRel, Ordering::Acquire)
                .map_err(|_| new)
        }
        #[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
        {
            cell.smr
                .write(|| {
                    // Acquire: the value we may hand back for release was
                    // published by another writer (the Smr's writer lock
                    // orders writers too; this does not rely on it).
                    let cur = cell.ptr.load(Ordering::Acquire);
                    (cur == expected).then(|| {
                        // Release: see the Smr::write contract.
                        cell.ptr.store(new, Ordering::Release);
                        cur
                    })
                })
                .ok_or(new)
        }
    }
}

impl Drop for RefSlot {
    /// Release the cell's value (the object is being deallocated: attached,
    /// no reader left).
    fn drop(&mut self) {
        // SAFETY: dropped by the generated `tp_dealloc` (or by the `tp_new`
        // shim if the allocation failed), attached to the cell's interpreter.
        unsafe { clear_cell(self) };
    }
}

/// `self` of the methods and slots.
type R<'a> = This<'a, RefSlot>;

/// Release a reference handed back by the protocol (may run `__del__`).
///
/// # Safety
/// Attached; the caller owns the reference `old` and gives it up.
unsafe fn release(old: *mut sys::PyObject) {
    // SAFETY: the caller's contract.
    unsafe { sys::Py_DECREF(old) }
}

/// A new strong reference to a borrowed argument, for the cell.
///
/// # Safety
/// Attached; `obj` is a live object of the attached interpreter.
unsafe fn owned_arg(obj: *mut sys::PyObject) -> *mut sys::PyObject {
    // SAFETY: the caller's contract.
    unsafe { sys::Py_NewRef(obj) }
}

/// Release the cell's value, leaving `None` (tp_clear and drop).
///
/// # Safety
/// Attached to the cell's interpreter.
unsafe fn clear_cell(cell: &RefSlot) {
    // Acquire: pairs with the publication of the value we may release. NULL
    // only if the cell was never initialised.
    if !cell.ptr.load(Ordering::Acquire).is_null() {
        // SAFETY: attached; None is immortal, the new reference goes to the
        // cell, and the old value it hands back is ours to release.
        unsafe { release(protocol::swap(cell, sys::Py_NewRef(sys::Py_None()))) };
    }
}

impl RefSlot {
    fn get(this: R) -> PyResult<*mut sys::PyObject> {
        // SAFETY: attached; the cell is initialised.
        Ok(unsafe { protocol::load(this.get()) })
    }

    fn set(this: R, args: Args) -> PyResult<()> {
        arity("set", args, 1)?;
        // SAFETY: attached; `args[0]` is a live argument; we give the cell a
        // new reference and release the old one it hands back.
        unsafe { release(protocol::swap(this.get(), owned_arg(args[0]))) };
        Ok(())
    }

    fn get_and_set(this: R, args: Args) -> PyResult<*mut sys::PyObject> {
        arity("get_and_set", args, 1)?;
        // SAFETY: as in `set`; the old reference becomes the result.
        Ok(unsafe { protocol::swap(this.get(), owned_arg(args[0])) })
    }

    fn compare_and_set(this: R, args: Args) -> PyResult<bool> {
        arity("compare_and_set", args, 2)?;
        // SAFETY: attached; live arguments (`expected` is only compared by
        // address); whichever reference comes back is ours to release.
        let won = unsafe {
            match protocol::compare_and_swap(this.get(), args[0], owned_arg(args[1])) {
                Ok(old) => {
                    release(old);
                    true
                }
                Err(new) => {
                    release(new);
                    false
                }
            }
        };
        Ok(won)
    }

    fn reduce(_this: R, _args: Args) -> PyResult<()> {
        Err(Error::not_shareable(NOT_SHAREABLE))
    }

    fn new(
        _cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<RefSlot> {
        // SAFETY: attached; CPython's tp_new arguments; None is immortal.
        let initial = unsafe {
            optional_object_arg(args, kwargs, cstr!("initial"), cstr!("|O:AtomicRef"))?
                .unwrap_or(sys::Py_None())
        };
        // SAFETY: attached; `initial` is a live argument (or None); the new
        // reference goes to the cell (released by its `Drop` if the
        // allocation fails). The zero-filled cell (NULL pointer) a traverse
        // could see before the shim writes it is skipped.
        Ok(unsafe { protocol::new(owned_arg(initial)) })
    }

    fn traverse(this: R, visit: sys::visitproc, arg: *mut c_void) -> c_int {
        // SAFETY: called by the GC with a live AtomicRef (GIL held, or the
        // world stopped on free-threaded builds); the pointer loaded is the
        // cell's value, alive while the cell holds it.
        unsafe {
            let tp = sys::Py_TYPE(this.as_ptr()) as *mut sys::PyObject;
            let r = visit(tp, arg);
            if r != 0 {
                return r;
            }
            // Acquire: as in `clear_cell`.
            let p = this.ptr.load(Ordering::Acquire);
            if p.is_null() {
                0
            } else {
                visit(p, arg)
            }
        }
    }

    fn clear(this: R) {
        // SAFETY: called by the GC with a live AtomicRef, attached.
        unsafe { clear_cell(this.get()) };
    }

    fn repr(this: R) -> PyResult<Owned> {
        let slf = this.as_ptr();
        // SAFETY: attached; `slf` is an AtomicRef; Py_ReprEnter guards a cell
        // that (indirectly) holds itself.
        unsafe {
            match sys::Py_ReprEnter(slf) {
                0 => {}
                r if r > 0 => return ffi::new_str("AtomicRef(...)"),
                _ => return Err(PyErrSet),
            }
            let v = Owned::from_new(protocol::load(this.get()));
            let r = v.and_then(|v| Owned::from_new(sys::PyObject_Repr(v.as_ptr())));
            sys::Py_ReprLeave(slf);
            let r = r?;
            ffi::new_str(&format!("AtomicRef({})", ffi::str_utf8(r.as_ptr())?))
        }
    }
}

crate::native_class! {
    RefSlot {
        name: "crossinterp.AtomicRef",
        attr: "AtomicRef",
        doc: "AtomicRef(initial=None)\n--\n\nA reference to an object that threads of this interpreter read and replace atomically (compare_and_set compares by identity). Safe on free-threaded builds: get() never returns an object being released. Cannot be passed to another interpreter (NotShareableError).",
        flags: sys::Py_TPFLAGS_HAVE_GC,
        methods: [
            (noargs, "get", "", RefSlot::get, "get() -> object: the current value"),
            (fast, "set", ", value, /", RefSlot::set, "set(value) -> None"),
            (fast, "get_and_set", ", value, /", RefSlot::get_and_set, "get_and_set(value) -> object: store, return the old value"),
            (fast, "compare_and_set", ", expected, new, /", RefSlot::compare_and_set, "compare_and_set(expected, new) -> bool: store new if the value is expected (identity)"),
            (fast, "__reduce__", "", RefSlot::reduce, "AtomicRef cannot be pickled or passed to another interpreter (NotShareableError)"),
            (class, "__class_getitem__", ", item, /", crate::ffi::class::class_getitem, "AtomicRef[T]: a types.GenericAlias, for annotations"),
        ],
        getset: [],
        slots: [
            (new, RefSlot::new),
            (traverse, RefSlot::traverse),
            (clear, RefSlot::clear),
            (repr, RefSlot::repr),
        ],
    }
}

static REF_XI: Converter = Converter {
    matches: Match::Class(RefSlot::DEF),
    to_value: None,
    refuse: Some(NOT_SHAREABLE),
};

/// `AtomicRef`: refused at every crossing.
pub const ENTRY: Entry = Entry {
    classes: &[RefSlot::DEF],
    hook: None,
    converters: &[&REF_XI],
    fork_hold: None,
};
