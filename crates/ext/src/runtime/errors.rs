//! The one boundary where engine and extension errors become Python
//! exceptions.
//!
//! Every failure the extension reports with one of crossinterp's own
//! exception classes is an [`Error`] value; converting it into [`PyErrSet`]
//! (`?` does, through `From`) raises it. The classes are defined in
//! `crossinterp/_errors.py` (documented there and in the stubs) and fetched
//! once per interpreter into its type table, so each interpreter raises its
//! own classes. Engine errors (`GuardError`, the queue's and channel's) are
//! mapped here too, once: the callers say which interpreter or queue the
//! error is about and hand the payload back where the engine does.

use super::owners::current;
use super::state::Import;
use crate::cstr;
use crate::ffi::{self, sys, PyErrSet};
use crossinterp_core::GuardError;

static INTERPRETER_ERROR: Import =
    Import::new(cstr!("crossinterp._errors"), cstr!("InterpreterError"));
static NOT_FOUND: Import = Import::new(
    cstr!("crossinterp._errors"),
    cstr!("InterpreterNotFoundError"),
);
static GONE: Import = Import::new(cstr!("crossinterp._errors"), cstr!("InterpreterGoneError"));
static FINALIZING: Import = Import::new(
    cstr!("crossinterp._errors"),
    cstr!("InterpreterFinalizingError"),
);
static NOT_SHAREABLE: Import =
    Import::new(cstr!("crossinterp._errors"), cstr!("NotShareableError"));
static QUEUE_ERROR: Import = Import::new(cstr!("crossinterp._errors"), cstr!("QueueError"));
static QUEUE_NOT_FOUND: Import =
    Import::new(cstr!("crossinterp._errors"), cstr!("QueueNotFoundError"));
static QUEUE_EMPTY: Import = Import::new(cstr!("crossinterp._errors"), cstr!("QueueEmpty"));
static QUEUE_FULL: Import = Import::new(cstr!("crossinterp._errors"), cstr!("QueueFull"));
static ITEM_DESTROYED: Import = Import::new(
    cstr!("crossinterp._errors"),
    cstr!("ItemInterpreterDestroyed"),
);
static CHANNEL_NOT_FOUND: Import =
    Import::new(cstr!("crossinterp._errors"), cstr!("ChannelNotFoundError"));
static CHANNEL_CLOSED: Import =
    Import::new(cstr!("crossinterp._errors"), cstr!("ChannelClosedError"));
static CHANNEL_EMPTY: Import =
    Import::new(cstr!("crossinterp._errors"), cstr!("ChannelEmptyError"));
static CHANNEL_NOT_EMPTY: Import =
    Import::new(cstr!("crossinterp._errors"), cstr!("ChannelNotEmptyError"));

/// A failure reported with one of crossinterp's exception classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `InterpreterError(msg)`.
    Interpreter(String),
    /// `InterpreterNotFoundError` for interpreter `iid`.
    NotFound(i64),
    /// `InterpreterGoneError(msg)`: the owner of a shared object or memory
    /// finalized.
    Gone(String),
    /// `InterpreterFinalizingError` for interpreter `iid`: no new guard.
    Finalizing(i64),
    /// `InterpreterError`: interpreter `iid`'s guard counter is saturated.
    TooManyGuards(i64),
    /// `NotShareableError(msg)`.
    NotShareable(String),
    /// `NotShareableError(msg)` whose cause is the exception set now.
    NotShareableFromCurrent(String),
    /// `QueueError("queue is closed")`.
    QueueClosed,
    /// `QueueNotFoundError` for queue `id`.
    QueueNotFound(u64),
    /// `QueueEmpty`.
    QueueEmpty,
    /// `QueueFull`.
    QueueFull,
    /// `ItemInterpreterDestroyed`: interpreter `iid`, which put the item, is gone.
    ItemInterpreterDestroyed(i64),
    /// `ChannelNotFoundError` for channel `id`.
    ChannelNotFound(u64),
    /// `ChannelClosedError(msg)`.
    ChannelClosed(&'static str),
    /// `ChannelEmptyError(msg)`.
    ChannelEmpty(&'static str),
    /// `ChannelNotEmptyError`: `pending` sends still wait.
    ChannelNotEmpty(usize),
}

impl Error {
    /// `InterpreterError(msg)`, raised.
    pub fn interpreter(msg: &str) -> PyErrSet {
        Error::Interpreter(msg.to_owned()).raise()
    }

    /// `NotShareableError(msg)`, raised.
    pub fn not_shareable(msg: &str) -> PyErrSet {
        Error::NotShareable(msg.to_owned()).raise()
    }

    /// `InterpreterGoneError(msg)`, raised.
    pub fn gone(msg: &str) -> PyErrSet {
        Error::Gone(msg.to_owned()).raise()
    }

    /// A refused guard on interpreter `iid`.
    pub fn guard(e: GuardError, iid: i64) -> Error {
        match e {
            GuardError::Finalizing(_) => Error::Finalizing(iid),
            GuardError::TooManyGuards(_) => Error::TooManyGuards(iid),
        }
    }

    fn class(&self) -> &'static Import {
        match self {
            Error::Interpreter(_) | Error::TooManyGuards(_) => &INTERPRETER_ERROR,
            Error::NotFound(_) => &NOT_FOUND,
            Error::Gone(_) => &GONE,
            Error::Finalizing(_) => &FINALIZING,
            Error::NotShareable(_) | Error::NotShareableFromCurrent(_) => &NOT_SHAREABLE,
            Error::QueueClosed => &QUEUE_ERROR,
            Error::QueueNotFound(_) => &QUEUE_NOT_FOUND,
            Error::QueueEmpty => &QUEUE_EMPTY,
            Error::QueueFull => &QUEUE_FULL,
            Error::ItemInterpreterDestroyed(_) => &ITEM_DESTROYED,
            Error::ChannelNotFound(_) => &CHANNEL_NOT_FOUND,
            Error::ChannelClosed(_) => &CHANNEL_CLOSED,
            Error::ChannelEmpty(_) => &CHANNEL_EMPTY,
            Error::ChannelNotEmpty(_) => &CHANNEL_NOT_EMPTY,
        }
    }

    fn message(&self) -> String {
        match self {
            Error::Interpreter(m) | Error::Gone(m) | Error::NotShareable(m) => m.clone(),
            Error::NotShareableFromCurrent(m) => m.clone(),
            Error::NotFound(iid) => format!(
                "interpreter {iid} not found (it was closed, or never imported crossinterp)"
            ),
            Error::Finalizing(iid) => {
                format!("interpreter {iid} is finalizing: no new guard can be taken")
            }
            Error::TooManyGuards(iid) => format!("interpreter {iid} has too many open guards"),
            Error::QueueClosed => "queue is closed".to_owned(),
            Error::QueueNotFound(id) => format!("queue {id} not found"),
            Error::QueueEmpty => "queue is empty".to_owned(),
            Error::QueueFull => "queue is full".to_owned(),
            Error::ItemInterpreterDestroyed(iid) => {
                format!("the interpreter {iid} that put this item was destroyed")
            }
            Error::ChannelNotFound(id) => format!("channel {id} not found"),
            Error::ChannelClosed(m) | Error::ChannelEmpty(m) => (*m).to_owned(),
            Error::ChannelNotEmpty(n) => {
                format!("{n} send(s) still pending; close(force=True) hands them back")
            }
        }
    }

    /// Raise it in the attached interpreter.
    #[cold]
    #[inline(never)]
    pub fn raise(self) -> PyErrSet {
        let keep_cause = matches!(self, Error::NotShareableFromCurrent(_));
        // Keep an exception that is already set (the cause) out of the lookup.
        // SAFETY: attached (errors are raised inside entry points).
        let cause = unsafe { sys::PyErr_GetRaisedException() };
        let import = self.class();
        // The interpreter's cached class; an interpreter that is no owner
        // (any more) imports it afresh.
        let mut fresh = None;
        let class = match current() {
            Ok(rec) => rec.types.import(import),
            Err(PyErrSet) => {
                // SAFETY: attached; drop the lookup's error.
                unsafe { sys::PyErr_Clear() };
                ffi::import_attr(import.module, import.attr).map(|c| {
                    let p = c.as_ptr();
                    fresh = Some(c);
                    p
                })
            }
        };
        if let Ok(cls) = class {
            {
                // SAFETY: `cls` is a live exception class of this interpreter.
                unsafe { ffi::raise_type(cls, &self.message()) };
                if keep_cause && !cause.is_null() {
                    // SAFETY: attached; an exception is set (just raised); the
                    // cause reference is stolen by PyException_SetCause.
                    unsafe {
                        let exc = sys::PyErr_GetRaisedException();
                        sys::PyException_SetCause(exc, cause);
                        sys::PyErr_SetRaisedException(exc);
                    }
                    return PyErrSet;
                }
            }
        }
        // (On a failed lookup, the lookup's own error stays set.)
        if !cause.is_null() {
            // SAFETY: we own `cause`.
            unsafe { sys::Py_DecRef(cause) };
        }
        PyErrSet
    }
}

impl From<Error> for PyErrSet {
    #[inline]
    fn from(e: Error) -> PyErrSet {
        e.raise()
    }
}
