//! Sharing any object: `share(obj)` and `SharedObjectProxy`.
//!
//! A proxy stands, in any interpreter, for one object of its *owner*
//! interpreter. It holds a cross-owner [`Handle`] to one strong reference
//! taken in the owner; every operation on it runs in the owner with the
//! owner attached (the calling thread detaches from its own interpreter,
//! attaches a thread state of the owner under a guard, works, detaches and
//! re-attaches: it never holds two interpreters, so no lock-order deadlock
//! between GILs exists). Arguments cross by the data layer's rules, except that
//! what is not natively shareable crosses as a proxy of the caller's object
//! (never pickled); results cross back the same way. So `p.append(x)` on a
//! proxied list appends `x` itself when `x` is an int, and a proxy of `x`
//! when `x` is a list.
//!
//! Exceptions raised in the owner are re-raised in the caller with the same
//! type when it is a builtin exception type (the owner's formatted traceback
//! added as a note), else as `ExecutionFailed` carrying it.
//!
//! Release: the last handle to an object drops its reference *in the owner*
//! (inline if the dropping thread is attached there, else as a pending call),
//! so its `__del__` and weakref callbacks run there. When the owner finalizes,
//! every reference still held by proxies elsewhere is released by the owner's
//! finalization and those proxies are dead: each operation raises
//! `InterpreterGoneError`.
//!
//! Every reference a handle holds is recorded in its owner's record
//! (`OwnerRecord::shared`); whoever removes the entry releases it, so the
//! reference is dropped exactly once whichever of "last handle dropped" and
//! "owner finalized" comes first.

//!
//! Layout: [`target`] (the shared reference and its release), [`call`] (the
//! cross-call engine), [`methods`] (the stable-method cache and
//! `SharedMethodProxy`), [`attrs`] (attributes, calls, repr, hash,
//! comparisons), [`number`] and [`mapping`] (the protocols); this file
//! declares the two classes, their converters and [`ENTRY`].

#[macro_use]
mod call;
mod attrs;
pub mod cycles;
pub mod detect;
mod mapping;
mod methods;
mod number;
mod target;

pub use target::{release_all, share_current, share_value, to_python, ObjRef, ProxyTarget};

use super::Entry;
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{sys, Owned, PyErrSet, PyResult};
use crate::runtime::owners::Event;
use crate::runtime::{self, Error};
use crate::xi::{self, Converter, Match};
use crossinterp_core::sync::Arc;
use crossinterp_core::Attached;

/// The value of a `SharedObjectProxy` object.
///
/// Ownership: owned by the proxy object in its interpreter; immutable, so it
/// may be read from any thread of that interpreter (free-threaded builds
/// included) without locking.
pub struct SharedObjectProxy {
    target: Arc<ProxyTarget>,
    /// Counts this proxy object for the free-threaded cycle detection.
    _held: detect::Held,
}

/// The value of a `SharedMethodProxy` object: `target.name`, a method whose
/// resolution is stable (see [`ProxyTarget::methods`]). Immutable.
pub struct SharedMethodProxy {
    target: Arc<ProxyTarget>,
    name: Box<str>,
    /// Counts this proxy object for the free-threaded cycle detection.
    _held: detect::Held,
}

/// `NotShareableError`: proxies are not picklable.
fn not_picklable() -> PyErrSet {
    Error::not_shareable(
        "a shared object proxy cannot be pickled: pass it to another interpreter by itself \
         (or inside a tuple), where it arrives as a proxy of the same object",
    )
}

/// Deallocating a proxy: when the current interpreter is the target's
/// owner, record that we are attached there for the drop of the value, so
/// the last handle releases inline (the object's `__del__` runs now, not at
/// the next entry point).
fn dealloc_attached(target: &ProxyTarget) -> Option<Attached<'static>> {
    let (_, cur) = crate::ffi::interp::current();
    // SAFETY: attached to `cur` (CPython deallocates attached); when it is
    // the owner, the proof lives only for this deallocation (the class
    // layer drops it right after freeing the object).
    (cur == target.rec.iid).then(|| unsafe { Attached::enter(target.rec.view.id()) })
}

impl SharedObjectProxy {
    fn dealloc(this: This<'_, Self>) -> Option<Attached<'static>> {
        dealloc_attached(&this.get().target)
    }
}

impl SharedMethodProxy {
    fn dealloc(this: This<'_, Self>) -> Option<Attached<'static>> {
        dealloc_attached(&this.get().target)
    }
}

crate::native_class! {
    SharedObjectProxy {
        name: "crossinterp.SharedObjectProxy",
        attr: "SharedObjectProxy",
        doc: "A proxy of an object owned by another interpreter (made by crossinterp.share()).\n\nEvery operation runs in the owner, with the owner attached; arguments and results cross natively when they can, else as proxies. After the owner is closed every operation raises InterpreterGoneError.",
        flags: sys::Py_TPFLAGS_DISALLOW_INSTANTIATION,
        methods: [
            (fast, "__enter__", ", /", SharedObjectProxy::enter, "Run the target's __enter__ in its owner."),
            (fast, "__exit__", ", *exc_info", SharedObjectProxy::exit, "Run the target's __exit__ in its owner."),
            (fast, "__reduce__", ", /", SharedObjectProxy::reduce, "Proxies are not picklable (NotShareableError)."),
            (fast, "__reduce_ex__", ", protocol, /", SharedObjectProxy::reduce, "Proxies are not picklable (NotShareableError)."),
        ],
        getset: [],
        slots: [
            (dealloc, SharedObjectProxy::dealloc),
            (getattro, SharedObjectProxy::getattro),
            (setattro, SharedObjectProxy::setattro),
            (call, SharedObjectProxy::call),
            (repr, SharedObjectProxy::repr),
            (str, SharedObjectProxy::str),
            (hash, SharedObjectProxy::hash),
            (richcompare, SharedObjectProxy::richcompare),
            (iter, SharedObjectProxy::iter),
            (iternext, SharedObjectProxy::iternext),
            (mp_len, SharedObjectProxy::len),
            (sq_len, SharedObjectProxy::len),
            (getitem, SharedObjectProxy::getitem),
            (setitem, SharedObjectProxy::setitem),
            (contains, SharedObjectProxy::contains),
            (bool, number::bool),
            (nb_add, number::add),
            (nb_subtract, number::subtract),
            (nb_multiply, number::multiply),
            (nb_remainder, number::remainder),
            (nb_divmod, number::divmod),
            (nb_power, number::power),
            (nb_negative, number::negative),
            (nb_positive, number::positive),
            (nb_absolute, number::absolute),
            (nb_invert, number::invert),
            (nb_lshift, number::lshift),
            (nb_rshift, number::rshift),
            (nb_and, number::and),
            (nb_xor, number::xor),
            (nb_or, number::or),
            (nb_int, number::int),
            (nb_float, number::float),
            (nb_index, number::index),
            (nb_floor_divide, number::floor_divide),
            (nb_true_divide, number::true_divide),
            (nb_matrix_multiply, number::matrix_multiply),
            (nb_inplace_add, number::inplace_add),
            (nb_inplace_subtract, number::inplace_subtract),
            (nb_inplace_multiply, number::inplace_multiply),
            (nb_inplace_remainder, number::inplace_remainder),
            (nb_inplace_power, number::inplace_power),
            (nb_inplace_lshift, number::inplace_lshift),
            (nb_inplace_rshift, number::inplace_rshift),
            (nb_inplace_and, number::inplace_and),
            (nb_inplace_xor, number::inplace_xor),
            (nb_inplace_or, number::inplace_or),
            (nb_inplace_floor_divide, number::inplace_floor_divide),
            (nb_inplace_true_divide, number::inplace_true_divide),
            (nb_inplace_matrix_multiply, number::inplace_matrix_multiply),
        ],
    }
}

crate::native_class! {
    SharedMethodProxy {
        name: "crossinterp.SharedMethodProxy",
        attr: "SharedMethodProxy",
        doc: "A method of a shared object, called in the object's owner in one round trip.",
        flags: sys::Py_TPFLAGS_DISALLOW_INSTANTIATION,
        methods: [
            (fast, "__reduce__", ", /", SharedMethodProxy::reduce, "Proxies are not picklable (NotShareableError)."),
            (fast, "__reduce_ex__", ", protocol, /", SharedMethodProxy::reduce, "Proxies are not picklable (NotShareableError)."),
        ],
        getset: [],
        slots: [
            (dealloc, SharedMethodProxy::dealloc),
            (call, SharedMethodProxy::call),
            (repr, SharedMethodProxy::repr),
            (getattro, SharedMethodProxy::getattro),
        ],
    }
}

/// `share(obj)`: `obj` itself when it crosses natively (a proxy included),
/// else a new proxy of it.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn share(obj: *mut sys::PyObject) -> PyResult<Owned> {
    // SAFETY: forwarded.
    unsafe {
        if xi::native_value(obj)?.is_some() {
            return Ok(Owned::from_borrowed(obj));
        }
        let target = share_current(obj)?;
        let _held = detect::Held::new(target.owner_iid());
        runtime::new_instance(SharedObjectProxy { target, _held })
    }
}

/// `(owner id, alive)` of a proxy, `None` for other objects.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn info(obj: *mut sys::PyObject) -> Option<(i64, bool)> {
    // SAFETY: forwarded.
    let t = unsafe {
        target::proxy_target(obj).or_else(|| methods::method_of(obj).map(|m| &m.target))
    }?;
    Some((t.rec.iid, t.alive()))
}

/// A shared object in transit: the object itself in its owner, a proxy
/// elsewhere.
impl xi::Shared for ProxyTarget {
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        to_python(&self)
    }
}

impl xi::Crosses for SharedObjectProxy {
    fn crossing(this: This<'_, Self>) -> PyResult<Arc<dyn xi::Shared>> {
        Ok(this.get().target.clone())
    }
}

static PROXY_XI: Converter = Converter::class::<SharedObjectProxy>();

static METHOD_XI: Converter = Converter {
    matches: Match::Class(SharedMethodProxy::DEF),
    to_value: Some(methods::method_value),
    refuse: None,
};

/// The proxies' part in owners' lives: a finalizing owner releases every
/// reference proxies elsewhere still hold (they are dead from then on).
fn on_event(event: &Event<'_>) {
    if let Event::Release(rec) = event {
        release_all(rec);
    }
}

/// `SharedObjectProxy` and `SharedMethodProxy`.
pub const ENTRY: Entry = Entry {
    classes: &[SharedObjectProxy::DEF, SharedMethodProxy::DEF],
    hook: Some(on_event),
    converters: &[&PROXY_XI, &METHOD_XI],
    fork_hold: None,
};
