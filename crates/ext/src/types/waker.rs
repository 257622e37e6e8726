//! `LoopWaker`: the wake-up fd of one asyncio event loop, through which the
//! engine's structures wake that loop's awaiters (see `crossinterp._asyncio`).
//!
//! A connected pair of non-blocking Unix sockets: the loop watches the read
//! end (`loop.add_reader(waker.fileno(), ...)`); the engine's [`Notify`] calls
//! (a put on a watched queue, its close, ...) write one byte to the write end,
//! from whatever thread made the change, attached to any interpreter or none.
//! Writes coalesce: a `pending` flag is set by the first notification and
//! cleared by the loop's `_drain()` after it read the bytes and before it
//! re-tries its waiters, so a burst of puts costs one syscall and one loop
//! wake-up, and a notification that lands after the clear writes again (no
//! wake-up lost; `_drain` says why the order matters).
//!
//! Why a socket pair and not `loop.call_soon_threadsafe` through a pending
//! call: the notifier runs on the changing thread with no GIL of the loop's
//! interpreter; a byte on an fd the loop already polls needs none, and one fd
//! serves every awaiter of the loop (std's `UnixStream`: no dependency).

use super::Entry;
use crate::ffi::args::{arity, Args};
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{self, sys, Exc, PyResult};
use crossinterp_core::sync::{AtomicBool, DynArc, Ordering};
use crossinterp_core::Notify;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// The two ends and the coalescing flag. Owned by no interpreter: kept alive
/// by the Python `LoopWaker` object and by every structure it watches.
pub struct Waker {
    read: UnixStream,
    write: UnixStream,
    /// A byte was written since the last `_drain()`.
    pending: AtomicBool,
}

impl Notify for Waker {
    fn notify(&self) {
        // AcqRel: the change being notified is published by the structure's
        // mutex (released before this call); the flag only coalesces writes.
        if !self.pending.swap(true, Ordering::AcqRel) {
            // WouldBlock: the socket buffer is full, so the loop has bytes to
            // read already and will re-try; any other error (the loop closed
            // its end) has nobody left to wake.
            let _ = (&self.write).write(&[1]);
        }
    }
}

/// The value of a `LoopWaker` object.
pub struct LoopWaker(pub DynArc<Waker>);

impl std::fmt::Debug for LoopWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoopWaker({})", self.0.read.as_raw_fd())
    }
}

type W<'a> = This<'a, LoopWaker>;

/// The waker a `_watch(waker, ...)` argument holds (Queue and Channel
/// share it): `TypeError` for anything but a `LoopWaker`.
///
/// # Safety
/// Attached; `obj` is a live argument.
pub unsafe fn waker_arg(obj: *mut sys::PyObject) -> PyResult<DynArc<Waker>> {
    let rec = crate::runtime::current()?;
    // SAFETY: the caller's contract.
    match unsafe { rec.types.downcast::<LoopWaker>(obj) } {
        Some(w) => Ok(w.0.clone()),
        None => {
            // SAFETY: the caller's contract.
            let name = unsafe { crate::xi::type_name(obj) };
            Err(ffi::raise(
                Exc::TypeError,
                &format!("_watch() needs a LoopWaker, not {name}"),
            ))
        }
    }
}

/// The token of an `_unwatch(side, token)` call: `None` for a negative one
/// (never handed out, so nothing to unwatch).
pub fn token_arg(obj: *mut sys::PyObject) -> PyResult<Option<u64>> {
    let token = crate::ffi::args::arg_i64(obj, "token")?;
    Ok(u64::try_from(token).ok())
}

fn os_error(e: std::io::Error) -> ffi::PyErrSet {
    ffi::raise(Exc::OSError, &format!("LoopWaker: {e}"))
}

impl LoopWaker {
    fn new(
        _cls: *mut sys::PyTypeObject,
        _args: *mut sys::PyObject,
        _kw: *mut sys::PyObject,
    ) -> PyResult<LoopWaker> {
        let (read, write) = UnixStream::pair().map_err(os_error)?;
        read.set_nonblocking(true).map_err(os_error)?;
        write.set_nonblocking(true).map_err(os_error)?;
        Ok(LoopWaker(DynArc::new(Waker {
            read,
            write,
            pending: AtomicBool::new(false),
        })))
    }

    fn fileno(this: W, args: Args) -> PyResult<i64> {
        arity("fileno", args, 0)?;
        Ok(i64::from(this.0.read.as_raw_fd()))
    }

    /// `_drain()`: read every byte written, then clear the flag; returns how
    /// many bytes were read. The caller re-tries its waiters after this.
    ///
    /// Read first, clear after: a notifier whose swap found the flag set
    /// swapped before the clear, so its change (published before its
    /// notification) is seen by the re-try that follows; one whose swap comes
    /// after the clear writes a fresh byte. Clearing first would lose
    /// wake-ups: a notifier could set the flag after the clear and have its
    /// byte eaten by the read, leaving the flag set with nothing to read, and
    /// every later notification would then skip its write.
    fn drain(this: W, args: Args) -> PyResult<i64> {
        arity("_drain", args, 0)?;
        let mut buf = [0u8; 256];
        let mut n = 0i64;
        let r = loop {
            match (&this.0.read).read(&mut buf) {
                Ok(0) => break Ok(n),
                Ok(k) => {
                    n += k as i64;
                    // A short read emptied the socket: no second syscall
                    // just to hear WouldBlock (a byte written since is read
                    // at the next wake-up).
                    if k < buf.len() {
                        break Ok(n);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(os_error(e)),
            }
        };
        // Release: pairs with the notifiers' AcqRel swap (see `notify`).
        this.0.pending.store(false, Ordering::Release);
        r
    }

    /// `_notify()`: what the engine calls, from Python (tests, re-scans).
    fn notify(this: W, args: Args) -> PyResult<()> {
        arity("_notify", args, 0)?;
        this.0.notify();
        Ok(())
    }
}

crate::native_class! {
    LoopWaker {
        name: "crossinterp._native.LoopWaker",
        attr: "LoopWaker",
        doc: "LoopWaker()\n--\n\nThe wake-up fd of one event loop: queues and channels it watches write a byte to it when an awaiter may proceed.",
        flags: 0,
        methods: [
            (fast, "fileno", "", LoopWaker::fileno, "fileno() -> int: the fd to watch for reading."),
            (fast, "_drain", "", LoopWaker::drain, "_drain() -> int: re-arm, and read what was written."),
            (fast, "_notify", "", LoopWaker::notify, "_notify() -> None: wake the loop, as a watched change does."),
        ],
        getset: [],
        slots: [(new, LoopWaker::new)],
    }
}

/// `LoopWaker`: local to one interpreter (it does not cross).
pub const ENTRY: Entry = Entry {
    classes: &[LoopWaker::DEF],
    ..Entry::EMPTY
};
