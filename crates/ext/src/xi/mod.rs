//! Cross-interpreter data: a value leaves interpreter A as an
//! interpreter-neutral [`Value`] and becomes a new object in B.
//!
//! Copied natively: `None`, `bool`, `int` (any size), `float`, `complex`,
//! `str`, `bytes`, and the containers `tuple`, `list`, `dict`, `set`,
//! `frozenset`, `bytearray` nested in any way, shared substructure and cycles
//! kept (see [`graph`]) (exact types only: subclasses carry behaviour, so
//! they are pickled). `is_shareable` keeps the stdlib's answer (only the
//! tuples of shareable values among the containers, no `complex`): the rest
//! is our faster copy of what the stdlib pickles. Shared: whatever a type registered a [`Converter`] for (as
//! CPython's `_PyXIData_RegisterClass`): the type's own value crosses as a
//! [`Shared`] and becomes that type's object in the receiver; this layer
//! names no type. Everything else is pickled (protocol 5) by
//! `crossinterp._xi.dumps`, unless the caller asks for strict sharing, in which
//! case `NotShareableError` is raised.

pub mod graph;

use crate::cstr;
use crate::ffi::class::{ClassDef, NativeClass, This};
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crate::runtime::state::Import;
use crate::runtime::{self, Error, OwnerRecord};
use crossinterp_core::sync::{Arc, AtomicBool, Ordering};
use std::ffi::c_char;
use std::sync::OnceLock;

static DUMPS: Import = Import::new(cstr!("crossinterp._xi"), cstr!("dumps"));
static LOADS: Import = Import::new(cstr!("crossinterp._xiload"), cstr!("loads"));

/// The exception set in the attached interpreter, taken and described by
/// `helper` (a function of `crossinterp._xi` taking the exception), as a
/// value; `Err(exc)` hands the exception back (cleared) when the helper
/// fails or its result does not cross.
pub fn describe_exception(helper: &Import) -> Result<Value, Option<Owned>> {
    // SAFETY: attached; an exception is set (callers checked), and we take it.
    let exc = unsafe { Owned::from_new(sys::PyErr_GetRaisedException()) }.map_err(|_| None)?;
    let r = runtime::with_current(|rec| rec.types.import(helper))
        .and_then(|f| f)
        // SAFETY: attached; the type table holds the function.
        .map(|f| unsafe { Owned::from_borrowed(f) })
        .and_then(|f| ffi::call(&f, &[exc.as_ptr()]))
        // SAFETY: `o` is live.
        .and_then(|o| unsafe { to_value(o.as_ptr(), true) });
    r.map_err(|PyErrSet| {
        // SAFETY: attached; drop the helper's failure.
        unsafe { sys::PyErr_Clear() };
        Some(exc)
    })
}

/// `bytes` this large are not copied at the sender: they are pinned there
/// (immutable, kept alive by a cross-owner handle) and copied once by the
/// receiver, saving a copy and the page faults of a temporary block.
/// Measured (3.14, put in main + get in a subinterpreter, 8 in flight): the
/// two-copy path costs 0.33 / 0.42 / 0.62 / 18 / 48 µs at 1 / 4 / 16 / 64 /
/// 128 KiB, pinning 0.53 / 0.57 / 0.63 / 1.2 / 2.0 µs: from 64 KiB the
/// temporary block is freed on the receiver's thread and glibc gives its pages
/// back, so the next one faults them in again (the receiver's own `bytes`
/// costs what `bytes(bytearray)` does). They cross at 16 KiB.
const PIN_BYTES_FROM: usize = 16 * 1024;

/// Tuples nested deeper than this leave the recursive fast path: they are
/// copied as a [`graph::Graph`] (on an explicit stack), or for
/// `is_shareable` and `strict=True` not shareable.
const MAX_DEPTH: usize = 64;

/// Longer tuples skip the recursive fast path (a [`Value`] per item, built
/// then dropped) and cross as a [`graph::Graph`] (one stream), except where
/// only the stdlib's shareable values may cross ([`Mode::Stdlib`]).
/// Measured (3.14, put + get of a tuple of small ints in one thread): the
/// fast path 167 / 286 / 382 / 827 / 2,187 ns at 2 / 8 / 12 / 32 / 100
/// items, the graph 273 / 306 / 326 / 439 / 808 ns: they cross between 8
/// and 12. A task's item (8 values, a tuple inside) stays on the fast path.
const TUPLE_FAST_MAX: sys::Py_ssize_t = 8;

/// Test hook (`_testing_pickle_containers`): containers and `complex` go
/// through pickle again, for benchmarks comparing the two paths.
static PICKLE_CONTAINERS: AtomicBool = AtomicBool::new(false);

/// Set the test hook [`PICKLE_CONTAINERS`].
pub fn set_pickle_containers(on: bool) {
    PICKLE_CONTAINERS.store(on, Ordering::Relaxed); // Relaxed: a lone flag
}

/// What [`native`] copies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// What the stdlib shares (`is_shareable`, the proxy's "copy or share").
    Stdlib,
    /// A container's item: the stdlib's values but tuples, and `complex`
    /// (the graph walks containers itself).
    Leaf,
    /// A tuple's item on the fast path: `Leaf` and tuples of these.
    Copy,
    /// Everything: containers as a [`graph::Graph`].
    Full,
}

/// An interpreter-neutral value. Plain Rust data: `Send`, owned by no
/// interpreter, may be dropped anywhere.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// Little-endian two's complement bytes of an int beyond 64 bits.
    BigInt(Vec<u8>),
    Float(f64),
    Complex(f64, f64),
    Str(String),
    /// A `str` with lone surrogates, as `surrogatepass` UTF-8.
    StrRaw(Vec<u8>),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    /// Containers (lists, dicts, sets...; tuples holding them), flat.
    Graph(Box<graph::Graph>),
    /// A pickle, with the sender's `__main__` file so functions and classes
    /// defined there can be found by the receiver.
    Pickled {
        data: Vec<u8>,
        main_file: Option<String>,
    },
    /// A value a type shares (see [`Converter`]): a queue, a buffer, a proxy...
    Shared(Arc<dyn Shared>),
}

/// A value of a native type in transit: owned by no interpreter, dropped
/// anywhere (what must be released in an owner is routed there by the
/// value's own handle).
pub trait Shared: Send + Sync + std::fmt::Debug + 'static {
    /// Its object in the attached interpreter (given a reference of the
    /// value's own `Arc`, so a type whose value is already an `Arc` crosses
    /// with no allocation).
    fn to_python(self: Arc<Self>) -> PyResult<Owned>;
}

/// A native class whose objects cross as a [`Shared`] value (the common
/// case; [`Converter::class`] makes its converter).
pub trait Crosses: NativeClass {
    /// The value `this` crosses as.
    fn crossing(this: This<'_, Self>) -> PyResult<Arc<dyn Shared>>;
}

/// The converter function of a [`Crosses`] class.
///
/// # Safety
/// As [`ToValue`]: `obj` is a live instance of `T`'s type.
unsafe fn crossing_of<T: Crosses>(
    _rec: &OwnerRecord,
    obj: *mut sys::PyObject,
) -> PyResult<Option<Value>> {
    // SAFETY: the converter's contract (the type table matched `T`).
    let this = unsafe { This::<T>::from_ptr(obj) };
    Ok(Some(Value::Shared(T::crossing(this)?)))
}

impl Converter {
    /// The converter of a [`Crosses`] class.
    pub const fn class<T: Crosses>() -> Converter {
        Converter {
            matches: Match::Class(T::DEF),
            to_value: Some(crossing_of::<T>),
            refuse: None,
        }
    }
}

/// Which objects a [`Converter`] takes.
pub enum Match {
    /// Instances of one of our classes (or of subclasses).
    Class(&'static ClassDef),
    /// Instances of a builtin type (or of subclasses), e.g. `memoryview`.
    Builtin(fn() -> *mut sys::PyTypeObject),
}

/// A converter's function: the value of a matching object, `Ok(None)` if
/// it is not natively shareable after all.
/// It gets the attached interpreter's record, whose type table matched it.
pub type ToValue = unsafe fn(&OwnerRecord, *mut sys::PyObject) -> PyResult<Option<Value>>;

/// How one type's objects cross (registered once per process, at the first
/// module exec).
pub struct Converter {
    pub matches: Match,
    /// The value of a matching object; `Ok(None)`: not natively shareable
    /// after all (it is then pickled).
    ///
    /// # Safety
    /// Called attached, with a live matching object.
    pub to_value: Option<ToValue>,
    /// Matching objects are never shared: `to_value` raises
    /// `NotShareableError` with this message (and `is_shareable` says no).
    pub refuse: Option<&'static str>,
}

static CONVERTERS: OnceLock<&'static [&'static Converter]> = OnceLock::new();

/// Register the process's converters (the module's exec slot; every
/// module passes the same list, the first one wins).
pub fn register(list: &'static [&'static Converter]) {
    let _ = CONVERTERS.set(list);
}

fn converters() -> &'static [&'static Converter] {
    CONVERTERS.get().copied().unwrap_or(&[])
}

/// The converter of `obj`, if any.
///
/// # Safety
/// `obj` is a live object of the attached interpreter, whose record is `rec`.
unsafe fn converter_of(rec: &OwnerRecord, obj: *mut sys::PyObject) -> Option<&'static Converter> {
    // Exact types first, and then their immediate base (our Python-level
    // classes, `queues.Queue` over `QueueBase`): pointer compares only. Most
    // objects that get here are instances of the converter's own type or of
    // that one subclass, and the subclass checks below walk an MRO per
    // converter (measured: the scan was 7% of a `SharedBuffer`'s put+get,
    // the fifth entry of the list, and 8% of a `Queue`'s).
    // SAFETY: forwarded; `obj` is live, so is its type, whose `tp_base` is
    // set once when the type is made (null only for `object`).
    let (tp, base) = unsafe {
        let tp = sys::Py_TYPE(obj);
        (tp, (*tp).tp_base)
    };
    for t in [tp, base] {
        if t.is_null() {
            break;
        }
        let exact = converters().iter().copied().find(|c| match &c.matches {
            Match::Class(def) => rec.types.type_of_def(def) == t,
            Match::Builtin(b) => b() == t,
        });
        if exact.is_some() {
            return exact;
        }
    }
    // SAFETY: forwarded; PyType_GetFlags reads the flags on every build
    // (an atomic field on free-threaded ones).
    let heap = unsafe { sys::PyType_GetFlags(tp) } & sys::Py_TPFLAGS_HEAPTYPE != 0;
    converters().iter().copied().find(|c| match &c.matches {
        // A static type cannot subclass one of our heap types.
        // SAFETY: forwarded; the table's types are this interpreter's.
        Match::Class(def) => heap && unsafe { rec.types.is_def(def, obj) },
        // SAFETY: forwarded; builtin types are immortal statics.
        Match::Builtin(tp) => unsafe { sys::PyObject_TypeCheck(obj, tp()) != 0 },
    })
}

/// Whether `obj` crosses natively (without pickling).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn is_shareable(obj: *mut sys::PyObject) -> PyResult<bool> {
    // SAFETY: forwarded contract.
    unsafe { Ok(native(obj, 0, Mode::Stdlib)?.is_some()) }
}

/// Convert `obj` (of the attached interpreter) to a [`Value`].
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn to_value(obj: *mut sys::PyObject, strict: bool) -> PyResult<Value> {
    // SAFETY: forwarded contract.
    // strict=True takes what the stdlib shares and nothing else, so that it
    // agrees with `is_shareable` (our copies of containers are a faster
    // pickle, not a promise of the stdlib's).
    let mode = if strict || PICKLE_CONTAINERS.load(Ordering::Relaxed) {
        Mode::Stdlib
    } else {
        Mode::Full
    };
    if let Some(v) = unsafe { native(obj, 0, mode)? } {
        return Ok(v);
    }
    // SAFETY: forwarded contract.
    if let Some(msg) = unsafe { refusal(obj)? } {
        return Err(Error::NotShareable(msg.to_owned()).into());
    }
    if strict {
        // SAFETY: `obj` is live.
        let tname = unsafe { type_name(obj) };
        return Err(Error::NotShareable(format!(
            "{tname} object is not shareable between interpreters (strict=True: no pickle fallback)"
        ))
        .into());
    }
    // SAFETY: `obj` is live.
    unsafe { pickled(obj) }
}

/// Convert `obj` natively, containers included ([`Mode::Full`], as a
/// non-strict crossing), but never by pickle: `Ok(None)` if it does not cross
/// that way (for a caller that pickles apart whatever does not, and must know
/// that the receiver's `get` cannot fail on it).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn to_value_native(obj: *mut sys::PyObject) -> PyResult<Option<Value>> {
    let mode = if PICKLE_CONTAINERS.load(Ordering::Relaxed) {
        Mode::Stdlib
    } else {
        Mode::Full
    };
    // SAFETY: forwarded contract.
    unsafe { native(obj, 0, mode) }
}

/// Convert a tuple's items, each by [`to_value`].
///
/// # Safety
/// `tuple` is a live tuple of the attached interpreter.
pub unsafe fn tuple_items(tuple: *mut sys::PyObject, strict: bool) -> PyResult<Vec<Value>> {
    // SAFETY: `tuple` is a live tuple; indices are in range.
    unsafe {
        let n = sys::PyTuple_Size(tuple);
        if n < 0 {
            return Err(PyErrSet);
        }
        (0..n)
            .map(|i| to_value(sys::PyTuple_GetItem(tuple, i), strict))
            .collect()
    }
}

pub use crate::ffi::type_name;

/// `obj` as a [`Value`] if it crosses natively (without pickling).
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
pub unsafe fn native_value(obj: *mut sys::PyObject) -> PyResult<Option<Value>> {
    // SAFETY: forwarded contract.
    unsafe { native(obj, 0, Mode::Stdlib) }
}

/// `Ok(None)`: not natively shareable.
unsafe fn native(obj: *mut sys::PyObject, depth: usize, mode: Mode) -> PyResult<Option<Value>> {
    // SAFETY (whole body): `obj` is live and we are attached; every CPython
    // call below is given objects of the checked exact type.
    unsafe {
        if obj == sys::Py_None() {
            return Ok(Some(Value::None));
        }
        if obj == sys::Py_True() {
            return Ok(Some(Value::Bool(true)));
        }
        if obj == sys::Py_False() {
            return Ok(Some(Value::Bool(false)));
        }
        if sys::PyLong_CheckExact(obj) != 0 {
            let mut overflow = 0;
            let v = sys::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
            if overflow == 0 {
                if v == -1 && !sys::PyErr_Occurred().is_null() {
                    return Err(PyErrSet);
                }
                return Ok(Some(Value::Int(v)));
            }
            // Little endian (1), signed.
            let need = sys::PyLong_AsNativeBytes(obj, std::ptr::null_mut(), 0, 1);
            if need < 0 {
                return Err(PyErrSet);
            }
            let mut buf = vec![0u8; need as usize];
            let r = sys::PyLong_AsNativeBytes(obj, buf.as_mut_ptr().cast(), need, 1);
            if r < 0 {
                return Err(PyErrSet);
            }
            return Ok(Some(Value::BigInt(buf)));
        }
        if sys::PyFloat_CheckExact(obj) != 0 {
            return Ok(Some(Value::Float(sys::PyFloat_AsDouble(obj))));
        }
        if sys::PyUnicode_CheckExact(obj) != 0 {
            let mut len: sys::Py_ssize_t = 0;
            let p = sys::PyUnicode_AsUTF8AndSize(obj, &mut len);
            if !p.is_null() {
                let bytes = std::slice::from_raw_parts(p as *const u8, len as usize);
                return Ok(Some(Value::Str(
                    std::str::from_utf8_unchecked(bytes).to_owned(),
                )));
            }
            // Lone surrogates: not UTF-8, but `surrogatepass` round-trips them.
            sys::PyErr_Clear();
            let b = Owned::from_new(sys::PyUnicode_AsEncodedString(
                obj,
                cstr!("utf-8").as_ptr(),
                cstr!("surrogatepass").as_ptr(),
            ))?;
            return Ok(Some(Value::StrRaw(bytes_of(b.as_ptr()).to_vec())));
        }
        if sys::PyBytes_CheckExact(obj) != 0 && (sys::PyBytes_Size(obj) as usize) < PIN_BYTES_FROM {
            return Ok(Some(Value::Bytes(bytes_of(obj).to_vec())));
        }
        if mode != Mode::Stdlib && sys::PyComplex_CheckExact(obj) != 0 {
            let c = sys::PyComplex_AsCComplex(obj);
            return Ok(Some(Value::Complex(c.real, c.imag)));
        }
        // Tuples of leaves: the fast path (no memo), for tuples not inside
        // another container (`Leaf`: the graph makes them nodes).
        if sys::PyTuple_CheckExact(obj) != 0
            && depth < MAX_DEPTH
            && mode != Mode::Leaf
            && (mode == Mode::Stdlib || sys::PyTuple_Size(obj) <= TUPLE_FAST_MAX)
        {
            let n = sys::PyTuple_Size(obj);
            let mut items = Vec::with_capacity(n as usize);
            let inner = if mode == Mode::Stdlib {
                mode
            } else {
                Mode::Copy
            };
            let mut all = true;
            for i in 0..n {
                match native(sys::PyTuple_GetItem(obj, i), depth + 1, inner)? {
                    Some(v) => items.push(v),
                    None => {
                        all = false;
                        break;
                    }
                }
            }
            if all {
                return Ok(Some(Value::Tuple(items)));
            }
        }
        if mode == Mode::Full && graph::is_container(obj) {
            return Ok(graph::convert(obj)?.map(|g| Value::Graph(Box::new(g))));
        }
        if mode != Mode::Full && sys::PyTuple_CheckExact(obj) != 0 {
            return Ok(None);
        }
        runtime::owners::with_current(|rec| match converter_of(rec, obj) {
            Some(Converter {
                to_value: Some(f), ..
            }) => f(rec, obj),
            _ => Ok(None),
        })?
    }
}

/// The refusal message of `obj`'s type, if its type never crosses.
///
/// # Safety
/// `obj` is a live object of the attached interpreter.
unsafe fn refusal(obj: *mut sys::PyObject) -> PyResult<Option<&'static str>> {
    let rec = runtime::current()?;
    // SAFETY: forwarded.
    Ok(unsafe { converter_of(&rec, obj) }.and_then(|c| c.refuse))
}

/// # Safety
/// `obj` is a live `bytes` object; the slice must not outlive it.
pub unsafe fn bytes_of<'a>(obj: *mut sys::PyObject) -> &'a [u8] {
    // SAFETY: forwarded contract; `bytes` are immutable.
    unsafe {
        let p = sys::PyBytes_AsString(obj);
        let n = sys::PyBytes_Size(obj);
        std::slice::from_raw_parts(p as *const u8, n as usize)
    }
}

unsafe fn pickled(obj: *mut sys::PyObject) -> PyResult<Value> {
    let rec = runtime::current()?;
    // SAFETY: attached; the table holds the function.
    let dumps = unsafe { Owned::from_borrowed(rec.types.import(&DUMPS)?) };
    let res = match ffi::call(&dumps, &[obj]) {
        Ok(r) => r,
        Err(PyErrSet) => {
            // SAFETY: `obj` is live.
            let tname = unsafe { type_name(obj) };
            let why = current_exc_message();
            return Err(Error::NotShareableFromCurrent(format!(
                "{tname} object is not shareable between interpreters and cannot be pickled: {why}"
            ))
            .into());
        }
    };
    // `dumps` returns (bytes, main_file | None).
    // SAFETY: `res` is a live object; items are checked before use.
    unsafe {
        let r = res.as_ptr();
        if sys::PyTuple_CheckExact(r) == 0 || sys::PyTuple_Size(r) != 2 {
            return Err(ffi::raise(
                ffi::Exc::SystemError,
                "crossinterp._xi.dumps returned a bad value",
            ));
        }
        let data = sys::PyTuple_GetItem(r, 0);
        let mf = sys::PyTuple_GetItem(r, 1);
        if sys::PyBytes_CheckExact(data) == 0 {
            return Err(ffi::raise(
                ffi::Exc::SystemError,
                "crossinterp._xi.dumps returned a bad value",
            ));
        }
        let main_file = if mf == sys::Py_None() {
            None
        } else {
            Some(ffi::str_utf8(mf)?.to_owned())
        };
        Ok(Value::Pickled {
            data: bytes_of(data).to_vec(),
            main_file,
        })
    }
}

/// `str()` of the exception set in the attached interpreter, which stays set
/// (a placeholder if it cannot be described).
pub fn current_exc_message() -> String {
    // SAFETY: attached; the exception is taken, described and put back.
    unsafe {
        let exc = sys::PyErr_GetRaisedException();
        if exc.is_null() {
            return String::new();
        }
        let s = sys::PyObject_Str(exc);
        let msg = if s.is_null() {
            sys::PyErr_Clear();
            String::from("(the error could not be described)")
        } else {
            let s = Owned::from_new(s).ok();
            let m = s.as_ref().and_then(|s| ffi::str_utf8(s.as_ptr()).ok());
            let m = m.map(str::to_owned);
            sys::PyErr_Clear();
            m.unwrap_or_default()
        };
        sys::PyErr_SetRaisedException(exc);
        msg
    }
}

/// Build a new object in the attached interpreter from `v`, consuming it (a
/// shared value hands its own reference over: no count is touched).
pub fn into_python(v: Value) -> PyResult<Owned> {
    match v {
        Value::Shared(s) => s.to_python(),
        v => from_value(&v),
    }
}

/// Build a new object in the attached interpreter from `v`.
pub fn from_value(v: &Value) -> PyResult<Owned> {
    // SAFETY (whole body): attached; every constructor receives valid data.
    unsafe {
        match v {
            Value::None => Ok(Owned::from_borrowed(sys::Py_None())),
            Value::Bool(true) => Ok(Owned::from_borrowed(sys::Py_True())),
            Value::Bool(false) => Ok(Owned::from_borrowed(sys::Py_False())),
            Value::Int(i) => ffi::new_int(*i),
            Value::BigInt(b) => {
                Owned::from_new(sys::PyLong_FromNativeBytes(b.as_ptr().cast(), b.len(), 1))
            }
            Value::Float(f) => Owned::from_new(sys::PyFloat_FromDouble(*f)),
            Value::Complex(re, im) => Owned::from_new(sys::PyComplex_FromDoubles(*re, *im)),
            Value::Graph(g) => graph::build(g),
            Value::Str(s) => ffi::new_str(s),
            Value::StrRaw(b) => Owned::from_new(sys::PyUnicode_DecodeUTF8(
                b.as_ptr() as *const c_char,
                b.len() as sys::Py_ssize_t,
                cstr!("surrogatepass").as_ptr(),
            )),
            Value::Bytes(b) => Owned::from_new(sys::PyBytes_FromStringAndSize(
                b.as_ptr() as *const c_char,
                b.len() as sys::Py_ssize_t,
            )),
            Value::Tuple(items) => {
                let t = Owned::from_new(sys::PyTuple_New(items.len() as sys::Py_ssize_t))?;
                for (i, item) in items.iter().enumerate() {
                    let o = from_value(item)?;
                    // PyTuple_SetItem steals the reference, even on failure.
                    if sys::PyTuple_SetItem(t.as_ptr(), i as sys::Py_ssize_t, o.into_ptr()) < 0 {
                        return Err(PyErrSet);
                    }
                }
                Ok(t)
            }
            Value::Shared(v) => Arc::clone(v).to_python(),
            Value::Pickled { data, main_file } => {
                let rec = runtime::current()?;
                let loads = Owned::from_borrowed(rec.types.import(&LOADS)?);
                let b = Owned::from_new(sys::PyBytes_FromStringAndSize(
                    data.as_ptr() as *const c_char,
                    data.len() as sys::Py_ssize_t,
                ))?;
                let mf = match main_file {
                    Some(s) => ffi::new_str(s)?,
                    None => Owned::from_borrowed(sys::Py_None()),
                };
                ffi::call(&loads, &[b.as_ptr(), mf.as_ptr()])
            }
        }
    }
}
