//! `Channel`: a PEP 554-style rendezvous channel between interpreters, over
//! the engine's `crossinterp_core::Channel`: `send` returns once a `recv` has
//! taken the item. Owner-free, like `Queue`: every interpreter holding it has
//! its own `crossinterp.channels.Channel` object over the same channel.

use super::ids::{self, HasId, IdTable};
use super::Entry;
use crate::cstr;
use crate::ffi::args::{arg_bool, arg_timeout, arity, blocking, deadline, Args};
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{self, sys, Exc, Owned, PyErrSet, PyResult};
use crate::runtime::state::Import;
use crate::runtime::{self, Error};
use crate::xi::{self, Converter, Crosses, Shared, Value};
use crossinterp_core::sync::Arc;
use crossinterp_core::{Channel, CloseError, Offered, RecvError, SendError, Side};
use std::ffi::c_int;

static CHANNEL_CLASS: Import = Import::new(cstr!("crossinterp.channels"), cstr!("Channel"));

/// A channel shared by every interpreter that holds it.
///
/// Ownership: owned by no interpreter; kept alive by each Python `Channel`
/// object (any interpreter) and values in transit; usable and droppable from
/// any thread. Items are interpreter-neutral values.
pub struct SharedChannel {
    ch: Channel<Value>,
}

impl std::fmt::Debug for SharedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedChannel({})", self.ch.id())
    }
}

impl HasId for SharedChannel {
    fn id(&self) -> u64 {
        self.ch.id()
    }
}

static LIVE: IdTable<SharedChannel> = IdTable::new();

/// Hold every live channel across a `fork()` (`runtime::fork`).
pub fn fork_hold(holds: &mut crossinterp_core::fork::Holds) -> bool {
    LIVE.fork_hold(holds, |s, holds| s.ch.fork_hold(holds))
}

/// The value of a `ChannelBase` object (any interpreter), and of a channel
/// in transit.
#[derive(Debug)]
pub struct ChannelBase(Arc<SharedChannel>);

type C<'a> = This<'a, ChannelBase>;

impl Shared for SharedChannel {
    /// A `crossinterp.channels.Channel` of the attached interpreter.
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        runtime::new_subclass_instance(&CHANNEL_CLASS, ChannelBase(self))
    }
}

fn closed() -> PyErrSet {
    Error::ChannelClosed("channel is closed").into()
}

fn ticket_of(obj: *mut sys::PyObject) -> PyResult<u64> {
    let t = crate::ffi::args::arg_i64(obj, "ticket")?;
    u64::try_from(t).map_err(|_| ffi::raise(Exc::ValueError, "ticket must be >= 0"))
}

/// A side code: 0 receivers, 1 async senders.
fn side_of(obj: *mut sys::PyObject) -> PyResult<Side> {
    match crate::ffi::args::arg_i64(obj, "side")? {
        0 => Ok(Side::Get),
        1 => Ok(Side::Put),
        v => Err(ffi::raise(
            Exc::ValueError,
            &format!("side must be 0 (recv) or 1 (send), not {v}"),
        )),
    }
}

fn timeout_error(what: &str) -> PyErrSet {
    ffi::raise(Exc::TimeoutError, &format!("{what} timed out"))
}

impl ChannelBase {
    /// `_send(obj, block, timeout) -> bool`: blocking sends return True once
    /// received; non-blocking ones return whether a waiting receiver took it.
    fn send(this: C, args: Args) -> PyResult<bool> {
        arity("_send", args, 4)?;
        let shared = this.0.clone();
        let block = arg_bool(args, 1)?;
        let timeout = arg_timeout(args, 2)?;
        // SAFETY: live argument of the attached interpreter.
        let value = unsafe { xi::to_value(args[0], arg_bool(args, 3)?)? };
        // A receive blocked now takes the item at once: hand it over without
        // detaching from the interpreter (which costs more than the hand-off);
        // only a send that must wait for a receive detaches.
        let r = match (shared.ch.try_send(value), deadline(block, timeout)) {
            (Err(SendError::NoReceiver(value)), Some(dl)) => {
                blocking(|intr| shared.ch.send(value, dl, intr))
            }
            (r, _) => r,
        };
        let received = match r {
            // A receive may take the item while the interrupt hook runs: the item
            // was delivered, and the signal's exception (if any) is still raised.
            // SAFETY: attached (re-attached by `blocking`).
            Ok(()) if unsafe { !sys::PyErr_Occurred().is_null() } => return Err(PyErrSet),
            Ok(()) => true,
            Err(SendError::NoReceiver(_)) => false,
            Err(SendError::Timeout(_)) => return Err(timeout_error("send")),
            Err(SendError::Closed(_)) => return Err(closed()),
            Err(SendError::Interrupted(_)) => return Err(PyErrSet),
        };
        Ok(received)
    }

    /// `_recv(block, timeout) -> (True, obj) | (False, None)` (the latter only
    /// when non-blocking and nothing is pending).
    fn recv(this: C, args: Args) -> PyResult<*mut sys::PyObject> {
        arity("_recv", args, 2)?;
        let shared = this.0.clone();
        let block = arg_bool(args, 0)?;
        let timeout = arg_timeout(args, 1)?;
        // A send pending now: take it without detaching (as `send` above).
        let r = match (shared.ch.try_recv(), deadline(block, timeout)) {
            (Err(RecvError::Empty), Some(dl)) => blocking(|intr| shared.ch.recv(dl, intr)),
            (r, _) => r,
        };
        match r {
            Ok(v) => {
                let obj = xi::into_python(v)?;
                // SAFETY: attached; live objects; True is immortal.
                Ok(unsafe { sys::PyTuple_Pack(2, sys::Py_True(), obj.as_ptr()) })
            }
            // SAFETY: attached; immortal singletons.
            Err(RecvError::Empty) => {
                Ok(unsafe { sys::PyTuple_Pack(2, sys::Py_False(), sys::Py_None()) })
            }
            Err(RecvError::Timeout) => Err(timeout_error("recv")),
            Err(RecvError::Closed) => Err(closed()),
            Err(RecvError::Interrupted) => Err(PyErrSet),
        }
    }

    /// `_offer(obj, strict) -> int`: an async send's offer: -1 if a blocked
    /// receive took it at once, else the ticket of the pending offer.
    fn offer(this: C, args: Args) -> PyResult<i64> {
        arity("_offer", args, 2)?;
        // SAFETY: live argument of the attached interpreter.
        let value = unsafe { xi::to_value(args[0], arg_bool(args, 1)?)? };
        match this.0.ch.offer(value) {
            Ok(Offered::Handed) => Ok(-1),
            Ok(Offered::Pending(t)) => i64::try_from(t)
                .map_err(|_| ffi::raise(Exc::OverflowError, "offer ticket out of range")),
            Err(_) => Err(closed()),
        }
    }

    /// `_offer_done(ticket) -> bool`: True once received, False while
    /// pending; `ChannelClosedError` if a forced close handed it back.
    fn offer_done(this: C, args: Args) -> PyResult<bool> {
        arity("_offer_done", args, 1)?;
        let t = ticket_of(args[0])?;
        match this.0.ch.offer_outcome(t) {
            None => Ok(false),
            Some(Ok(())) => Ok(true),
            Some(Err(_)) => Err(closed()),
        }
    }

    /// `_withdraw(ticket) -> bool`: True if the offer was still pending (it
    /// will never be received).
    fn withdraw(this: C, args: Args) -> PyResult<bool> {
        arity("_withdraw", args, 1)?;
        Ok(this.0.ch.withdraw_offer(ticket_of(args[0])?).is_some())
    }

    /// `_watch(waker, side)`: wake the waker's loop for receivers (0) or
    /// async senders (1); returns the token for `_unwatch`.
    fn watch(this: C, args: Args) -> PyResult<u64> {
        arity("_watch", args, 2)?;
        // SAFETY: attached; `args[0]` is a live argument.
        let waker = unsafe { super::waker::waker_arg(args[0])? };
        Ok(this.0.ch.watch(side_of(args[1])?, waker))
    }

    /// `_unwatch(side, token) -> bool`
    fn unwatch(this: C, args: Args) -> PyResult<bool> {
        arity("_unwatch", args, 2)?;
        let side = side_of(args[0])?;
        let token = super::waker::token_arg(args[1])?;
        Ok(token.is_some_and(|t| this.0.ch.unwatch(side, t)))
    }

    /// `_watchers(side) -> int`
    fn watchers(this: C, args: Args) -> PyResult<usize> {
        arity("_watchers", args, 1)?;
        Ok(this.0.ch.watchers(side_of(args[0])?))
    }

    /// `_close(send, recv, force) -> int` (items handed back by a forced close).
    fn close(this: C, args: Args) -> PyResult<usize> {
        arity("_close", args, 3)?;
        let shared = this.0.clone();
        let (send, recv, force) = (arg_bool(args, 0)?, arg_bool(args, 1)?, arg_bool(args, 2)?);
        let r = match (send, recv) {
            (true, false) => shared.ch.close_send().map(|()| 0),
            (false, true) if !force => shared.ch.close_recv().map(|()| 0),
            _ => shared.ch.close(force),
        };
        match r {
            Ok(n) => Ok(n),
            Err(CloseError::Closed) => {
                Err(Error::ChannelClosed("channel (end) already closed").into())
            }
            Err(CloseError::NotEmpty { pending }) => Err(Error::ChannelNotEmpty(pending).into()),
        }
    }

    fn id(this: C) -> PyResult<u64> {
        Ok(this.0.ch.id())
    }

    fn pending(this: C) -> PyResult<usize> {
        Ok(this.0.ch.len())
    }

    fn send_closed(this: C) -> PyResult<bool> {
        Ok(this.0.ch.is_send_closed())
    }

    fn recv_closed(this: C) -> PyResult<bool> {
        Ok(this.0.ch.is_recv_closed())
    }

    /// `ChannelBase.__new__(cls, id)`: id < 0 makes a new channel, else
    /// looks up the live channel with that id (unpickling).
    fn new(
        _cls: *mut sys::PyTypeObject,
        args: *mut sys::PyObject,
        kwargs: *mut sys::PyObject,
    ) -> PyResult<ChannelBase> {
        // SAFETY: attached; `args` is a tuple, `kwargs` NULL or a dict.
        unsafe {
            if (!kwargs.is_null() && sys::PyDict_Size(kwargs) != 0) || sys::PyTuple_Size(args) != 1
            {
                return Err(ffi::raise(
                    Exc::TypeError,
                    "ChannelBase() takes 1 positional argument",
                ));
            }
            let id = sys::PyLong_AsLongLong(sys::PyTuple_GetItem(args, 0));
            if id == -1 && !sys::PyErr_Occurred().is_null() {
                return Err(PyErrSet);
            }
            let shared = if id < 0 {
                LIVE.insert(SharedChannel { ch: Channel::new() })
            } else {
                LIVE.get(id as u64)
                    .ok_or(Error::ChannelNotFound(id as u64))?
            };
            Ok(ChannelBase(shared))
        }
    }

    fn hash(this: C) -> PyResult<sys::Py_hash_t> {
        Ok(ids::hash(this.0.ch.id()))
    }

    fn richcompare(this: C, other: *mut sys::PyObject, op: c_int) -> PyResult<*mut sys::PyObject> {
        let rec = runtime::current()?;
        // SAFETY: attached; `other` is a live argument.
        let other = unsafe { rec.types.downcast::<ChannelBase>(other) };
        Ok(ids::compare(this.0.ch.id(), other.map(|o| o.0.ch.id()), op))
    }
}

crate::native_class! {
    ChannelBase {
        name: "crossinterp._native.ChannelBase",
        attr: "ChannelBase",
        doc: "ChannelBase(id)\n--\n\nThe native base of crossinterp.channels.Channel.",
        flags: sys::Py_TPFLAGS_BASETYPE,
        methods: [
            (fast, "_send", ", obj, block, timeout, strict, /", ChannelBase::send, "_send(obj, block, timeout, strict) -> bool"),
            (fast, "_recv", ", block, timeout, /", ChannelBase::recv, "_recv(block, timeout) -> (found, obj)"),
            (fast, "_offer", ", obj, strict, /", ChannelBase::offer, "_offer(obj, strict) -> int: -1 (received at once) or the pending offer's ticket"),
            (fast, "_offer_done", ", ticket, /", ChannelBase::offer_done, "_offer_done(ticket) -> bool: received yet"),
            (fast, "_withdraw", ", ticket, /", ChannelBase::withdraw, "_withdraw(ticket) -> bool: taken back before any receive"),
            (fast, "_watch", ", waker, side, /", ChannelBase::watch, "_watch(waker, side) -> int"),
            (fast, "_unwatch", ", side, token, /", ChannelBase::unwatch, "_unwatch(side, token) -> bool"),
            (fast, "_watchers", ", side, /", ChannelBase::watchers, "_watchers(side) -> int"),
            (fast, "_close", ", send, recv, force, /", ChannelBase::close, "_close(send, recv, force) -> int"),
            (class, "__class_getitem__", ", item, /", crate::ffi::class::class_getitem, "Channel[T]: a types.GenericAlias, for annotations."),
        ],
        getset: [
            ("id", ChannelBase::id, "The channel's id, unique in the process."),
            ("pending", ChannelBase::pending, "Sends waiting for a receiver now."),
            ("send_closed", ChannelBase::send_closed, "Whether the send end is closed."),
            ("recv_closed", ChannelBase::recv_closed, "Whether the receive end is closed."),
        ],
        slots: [
            (new, ChannelBase::new),
            (hash, ChannelBase::hash),
            (richcompare, ChannelBase::richcompare),
        ],
    }
}

impl Crosses for ChannelBase {
    fn crossing(this: C) -> PyResult<Arc<dyn Shared>> {
        Ok(this.0.clone())
    }
}

static CHANNEL_XI: Converter = Converter::class::<ChannelBase>();

/// `ChannelBase`: shared by reference.
pub const ENTRY: Entry = Entry {
    classes: &[ChannelBase::DEF],
    hook: None,
    converters: &[&CHANNEL_XI],
    fork_hold: Some(fork_hold),
};
