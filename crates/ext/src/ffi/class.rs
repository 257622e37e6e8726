//! The typed class layer: one way to declare a native Python type.
//!
//! A native type is a Rust value `T` stored after the Python object header
//! ([`Native<T>`]). `T` implements [`NativeClass`], whose one item, the
//! [`ClassDef`], is written by the [`native_class!`](crate::native_class)
//! macro from a single declaration of the type's name, doc, flags,
//! constructor, methods, getters and slots. The macro generates every
//! `extern "C"` shim: each catches panics (through [`trampoline`]), turns
//! `Err(PyErrSet)` into NULL / -1, and hands the body a typed [`This<T>`]
//! instead of a raw `self`; method docs get a `$self` text signature so
//! `inspect.signature` works.
//!
//! What this layer does not know: which interpreter a type object belongs to.
//! Type objects are per interpreter (heap types made in each module's exec
//! slot); the runtime's type table keeps them, indexed by each class's
//! [`TypeIndex`], and answers "is this object ours" ([`This::downcast`] given
//! the type object).
//!
//! Ownership and threads: a `ClassDef` and its tables are immutable statics,
//! shared by every interpreter. A [`This<T>`] borrows an instance for the
//! duration of one call into the extension, on the calling thread; `T` is
//! dropped on whichever thread deallocates the object, so `T` holds plain Rust
//! data (shared state behind `Arc`s, locks, atomics) and anything that must be
//! released in a particular interpreter is routed there by its own handle.

use super::{sys, trampoline, trampoline_int, Owned, PyErrSet, PyResult};
use crossinterp_core::sync::{AtomicUsize, Ordering};
use std::ffi::{c_int, c_ulong, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The object layout of every native type: the Python object header, then
/// one Rust value, written by [`alloc`] before the object is visible and
/// dropped by the generated `tp_dealloc`.
#[repr(C)]
pub struct Native<T> {
    ob_base: sys::PyObject,
    value: T,
}

/// A native type: the Rust value its instances hold, and its declaration.
///
/// # Safety
/// `DEF` must describe a type whose instances have `Native<Self>`'s layout:
/// `native_class!` guarantees it (the basicsize, deallocator and every shim
/// are generated for `Self`); do not implement this trait by hand.
pub unsafe trait NativeClass: Sized + 'static {
    /// The declaration (see [`native_class!`](crate::native_class)).
    const DEF: &'static ClassDef;
}

/// A process-wide small integer identifying one native class (or one
/// Python-side object the runtime fetches per interpreter): the index of its
/// entry in each interpreter's table. Assigned on first use, never changes.
pub struct TypeIndex(AtomicUsize);

const UNASSIGNED: usize = usize::MAX;
static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

impl TypeIndex {
    pub const fn new() -> TypeIndex {
        TypeIndex(AtomicUsize::new(UNASSIGNED))
    }

    /// This entry's index (assigned now if it has none yet).
    #[inline]
    pub fn get(&self) -> usize {
        // Relaxed: the index is a plain number with no data behind it; a
        // racing first use settles on one value by the compare-exchange.
        let i = self.0.load(Ordering::Relaxed);
        if i != UNASSIGNED {
            return i;
        }
        self.assign()
    }

    #[cold]
    fn assign(&self) -> usize {
        let fresh = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
        match self
            .0
            .compare_exchange(UNASSIGNED, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            // Another thread assigned first; `fresh` is wasted (harmless).
            Err(won) => won,
        }
    }
}

impl Default for TypeIndex {
    fn default() -> Self {
        TypeIndex::new()
    }
}

/// An immutable table CPython keeps a pointer to (`tp_methods`, `tp_getset`,
/// a slot list). `Sync` because nothing ever writes it: CPython only reads
/// method and getset definitions.
pub struct Table<T: 'static>(pub &'static [T]);

// SAFETY: the table is immutable for the life of the process (see above);
// the raw pointers it holds point at other statics.
unsafe impl<T> Sync for Table<T> {}

impl<T> Table<T> {
    /// The table as CPython wants it (CPython's fields are `*mut` for
    /// historical reasons; it never writes through them).
    pub fn as_mut_ptr(&self) -> *mut T {
        self.0.as_ptr() as *mut T
    }
}

/// One `PyType_Slot` of a declaration.
pub struct Slot {
    pub slot: c_int,
    pub pfunc: *mut c_void,
}

/// Everything CPython needs to make a native type, once per interpreter.
pub struct ClassDef {
    /// `tp_name`: the dotted name the type reports (`module.Name`).
    pub name: &'static CStr,
    /// The attribute name on the module (the part after the last dot).
    pub attr: &'static CStr,
    /// `tp_doc`, starting with the constructor's text signature.
    pub doc: &'static CStr,
    pub flags: c_ulong,
    pub basicsize: usize,
    /// Zero-terminated `PyMethodDef` table (or `None`).
    pub methods: Option<&'static Table<sys::PyMethodDef>>,
    /// Zero-terminated `PyGetSetDef` table (or `None`).
    pub getset: Option<&'static Table<sys::PyGetSetDef>>,
    /// Every other slot (tp_new, tp_dealloc, tp_repr...), not terminated.
    pub slots: &'static Table<Slot>,
    /// The class's entry in each interpreter's type table.
    pub index: TypeIndex,
}

impl ClassDef {
    /// Create this type bound to `module` (so `PyType_GetModuleByDef` finds
    /// the module from it).
    ///
    /// # Safety
    /// Attached; `module` is a live module object of the attached interpreter.
    pub unsafe fn create(&'static self, module: *mut sys::PyObject) -> PyResult<Owned> {
        let mut slots: Vec<sys::PyType_Slot> = self
            .slots
            .0
            .iter()
            .map(|s| sys::PyType_Slot {
                slot: s.slot,
                pfunc: s.pfunc,
            })
            .collect();
        slots.push(sys::PyType_Slot {
            slot: sys::Py_tp_doc,
            pfunc: self.doc.as_ptr() as *mut c_void,
        });
        if let Some(m) = self.methods {
            slots.push(sys::PyType_Slot {
                slot: sys::Py_tp_methods,
                pfunc: m.as_mut_ptr() as *mut c_void,
            });
        }
        if let Some(g) = self.getset {
            slots.push(sys::PyType_Slot {
                slot: sys::Py_tp_getset,
                pfunc: g.as_mut_ptr() as *mut c_void,
            });
        }
        slots.push(sys::PyType_Slot {
            slot: 0,
            pfunc: std::ptr::null_mut(),
        });
        let mut spec = sys::PyType_Spec {
            name: self.name.as_ptr(),
            basicsize: self.basicsize as c_int,
            itemsize: 0,
            flags: (sys::Py_TPFLAGS_DEFAULT | sys::Py_TPFLAGS_IMMUTABLETYPE | self.flags) as _,
            slots: slots.as_mut_ptr(),
        };
        // SAFETY: the caller's contract; CPython copies what it keeps of the
        // spec and slot list; the tables are statics.
        unsafe {
            Owned::from_new(sys::PyType_FromModuleAndSpec(
                module,
                &mut spec,
                std::ptr::null_mut(),
            ))
        }
    }
}

/// A borrowed instance of the native type `T`, for the duration of one call
/// into the extension: the object and its typed value.
pub struct This<'a, T> {
    obj: NonNull<sys::PyObject>,
    _value: PhantomData<&'a T>,
}

impl<T> Clone for This<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for This<'_, T> {}

impl<'a, T: NativeClass> This<'a, T> {
    /// # Safety
    /// `obj` is a live instance of `T`'s type (or a subclass), alive for `'a`
    /// (CPython guarantees both for the `self` of a type's own slots and
    /// methods: method descriptors check the type of `self`).
    #[inline]
    pub unsafe fn from_ptr(obj: *mut sys::PyObject) -> This<'a, T> {
        This {
            // SAFETY: forwarded; instances are never NULL.
            obj: unsafe { NonNull::new_unchecked(obj) },
            _value: PhantomData,
        }
    }

    /// `obj` as a `T` if it is an instance of `tp` (or a subclass), where
    /// `tp` is the attached interpreter's type object for `T`.
    ///
    /// # Safety
    /// `obj` is a live object of the attached interpreter, alive for `'a`;
    /// `tp` is this interpreter's type object for `T` (from the type table).
    #[inline]
    pub unsafe fn downcast(
        obj: *mut sys::PyObject,
        tp: *mut sys::PyTypeObject,
    ) -> Option<This<'a, T>> {
        // SAFETY: forwarded; an instance of `tp` has `Native<T>`'s layout.
        unsafe {
            let ot = sys::Py_TYPE(obj);
            if ot == tp || sys::PyType_IsSubtype(ot, tp) != 0 {
                Some(This::from_ptr(obj))
            } else {
                None
            }
        }
    }

    /// The object (borrowed).
    #[inline]
    pub fn as_ptr(self) -> *mut sys::PyObject {
        self.obj.as_ptr()
    }

    /// A new strong reference to the object.
    pub fn to_owned(self) -> Owned {
        // SAFETY: attached (inside a call); the object is live for `'a`.
        unsafe { Owned::from_borrowed(self.as_ptr()) }
    }

    /// The value.
    #[inline]
    pub fn get(self) -> &'a T {
        // SAFETY: the value was written at allocation and lives as long as
        // the object, which outlives `'a` (constructor contract).
        unsafe { &(*(self.obj.as_ptr() as *mut Native<T>)).value }
    }
}

impl<T: NativeClass> std::ops::Deref for This<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        self.get()
    }
}

/// Allocate an instance of `tp` holding `value`.
///
/// # Safety
/// Attached; `tp` is the attached interpreter's type object for `T`, or a
/// (Python) subclass of it.
pub unsafe fn alloc<T: NativeClass>(tp: *mut sys::PyTypeObject, value: T) -> PyResult<Owned> {
    // SAFETY: forwarded; GenericAlloc zero-fills, and writing the value over
    // the zeroed field before the object escapes is its initialization.
    unsafe {
        let obj = Owned::from_new(sys::PyType_GenericAlloc(tp, 0))?;
        std::ptr::write(&mut (*(obj.as_ptr() as *mut Native<T>)).value, value);
        Ok(obj)
    }
}

/// `__class_getitem__` of a generic native type (`AtomicRef[T]`,
/// `AtomicDict[K, V]`): a `types.GenericAlias` of the class, as builtin
/// generics return. Declare it as `(class, "__class_getitem__", ", item, /",
/// class::class_getitem, "...")`.
pub fn class_getitem(cls: *mut sys::PyTypeObject, args: super::args::Args) -> PyResult<Owned> {
    super::args::arity("__class_getitem__", args, 1)?;
    // SAFETY: attached (a method body); `cls` is the class the method was
    // looked up on and `args[0]` a borrowed argument, both alive for the
    // call; Py_GenericAlias takes neither reference and returns a new one.
    unsafe { Owned::from_new(sys::Py_GenericAlias(cls as *mut sys::PyObject, args[0])) }
}

/// `tp_dealloc` of a native type: untrack from the GC if tracked, drop the
/// value, free the object, release the reference every instance of a heap
/// type holds to its type.
///
/// # Safety
/// Called by CPython, once, for a dead instance of `T`'s type.
pub unsafe extern "C" fn dealloc<T: NativeClass>(obj: *mut sys::PyObject) {
    // A panic must not unwind into CPython: the drop of the value is the only
    // Rust code here; abort-free, it is caught and reported as unraisable.
    // SAFETY: forwarded contract; the type outlives this call (we hold its
    // reference until the last line).
    unsafe {
        let tp = sys::Py_TYPE(obj);
        // PyType_GetFlags: `tp_flags` is an atomic on free-threaded builds.
        if sys::PyType_GetFlags(tp) & sys::Py_TPFLAGS_HAVE_GC != 0 {
            sys::PyObject_GC_UnTrack(obj as *mut c_void);
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::ptr::drop_in_place(&mut (*(obj as *mut Native<T>)).value)
        }));
        if r.is_err() {
            // The value is half-dropped; leak the rest rather than free it.
            return;
        }
        let free: sys::freefunc = std::mem::transmute(sys::PyType_GetSlot(tp, sys::Py_tp_free));
        free(obj as *mut c_void);
        sys::Py_DecRef(tp as *mut sys::PyObject);
    }
}

/// A value a method or slot body returns, turned into a new reference.
pub trait IntoPy {
    fn into_py(self) -> PyResult<*mut sys::PyObject>;
}

impl IntoPy for Owned {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        Ok(self.into_ptr())
    }
}

/// A raw pointer is a new reference (NULL: an exception is set).
impl IntoPy for *mut sys::PyObject {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        if self.is_null() {
            Err(PyErrSet)
        } else {
            Ok(self)
        }
    }
}

impl IntoPy for () {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        Ok(super::none())
    }
}

impl IntoPy for bool {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        // SAFETY: attached (inside a call); True/False are immortal.
        Ok(unsafe { sys::PyBool_FromLong(self as _) })
    }
}

impl IntoPy for i64 {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        super::new_int(self).map(Owned::into_ptr)
    }
}

impl IntoPy for u64 {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        // SAFETY: attached (inside a call).
        unsafe { Owned::from_new(sys::PyLong_FromUnsignedLongLong(self)).map(Owned::into_ptr) }
    }
}

impl IntoPy for usize {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        (self as u64).into_py()
    }
}

impl IntoPy for f64 {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        // SAFETY: attached (inside a call).
        unsafe { Owned::from_new(sys::PyFloat_FromDouble(self)).map(Owned::into_ptr) }
    }
}

impl IntoPy for &str {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        super::new_str(self).map(Owned::into_ptr)
    }
}

impl IntoPy for String {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        self.as_str().into_py()
    }
}

impl<T: IntoPy> IntoPy for Option<T> {
    #[inline]
    fn into_py(self) -> PyResult<*mut sys::PyObject> {
        match self {
            Some(v) => v.into_py(),
            None => Ok(super::none()),
        }
    }
}

/// A module function prologue that does nothing.
#[inline(always)]
pub fn no_prologue(_module: *mut sys::PyObject) {}

/// The shim bodies' plumbing (used by the macros; not for direct use).
#[doc(hidden)]
pub mod shim {
    pub use super::super::args::{Args, KwArgs};
    use super::*;

    /// Run a body returning a Python value.
    #[inline(always)]
    pub fn obj<R: IntoPy>(f: impl FnOnce() -> PyResult<R>) -> *mut sys::PyObject {
        trampoline(|| f()?.into_py())
    }

    /// Run a body returning 0 / -1.
    #[inline(always)]
    pub fn int(f: impl FnOnce() -> PyResult<()>) -> c_int {
        trampoline_int(f)
    }

    /// Run a body returning a truth value (1 / 0, -1 on error).
    #[inline(always)]
    pub fn truth(f: impl FnOnce() -> PyResult<bool>) -> c_int {
        let mut v = false;
        match trampoline_int(|| {
            v = f()?;
            Ok(())
        }) {
            0 => v as c_int,
            e => e,
        }
    }

    /// Run a body returning a size (-1 on error).
    #[inline(always)]
    pub fn ssize(f: impl FnOnce() -> PyResult<sys::Py_ssize_t>) -> sys::Py_ssize_t {
        let mut v = 0;
        match trampoline_int(|| {
            v = f()?;
            Ok(())
        }) {
            0 => v,
            _ => -1,
        }
    }

    /// Run a body returning a hash (-1 on error; a hash of -1 becomes -2).
    #[inline(always)]
    pub fn hash(f: impl FnOnce() -> PyResult<sys::Py_hash_t>) -> sys::Py_hash_t {
        let mut v = 0;
        match trampoline_int(|| {
            v = f()?;
            Ok(())
        }) {
            0 if v == -1 => -2,
            0 => v,
            _ => -1,
        }
    }

    /// The positional arguments of a vectorcall-style call.
    ///
    /// # Safety
    /// `args`/`nargs` are what CPython passed to a METH_FASTCALL function.
    #[inline(always)]
    pub unsafe fn args<'a>(args: *const *mut sys::PyObject, nargs: sys::Py_ssize_t) -> Args<'a> {
        if nargs <= 0 {
            &[]
        } else {
            // SAFETY: CPython passes `nargs` valid borrowed pointers.
            unsafe { std::slice::from_raw_parts(args, nargs as usize) }
        }
    }
}

/// Declare a native type: implements [`NativeClass`] for `$T`, generating
/// its `PyMethodDef`/`PyGetSetDef`/slot tables and every panic-catching shim.
///
/// ```ignore
/// native_class! {
///     MyType {
///         name: "crossinterp._native.MyType",
///         doc: "MyType(x)\n--\n\nWhat it is.",
///         flags: 0,                       // extra Py_TPFLAGS_* (BASETYPE, HAVE_GC)
///         methods: [
///             // kind  name   extra params of the text signature  body          doc
///             (noargs, "get", "",                  MyType::get, "get() -> int"),
///             (fast,   "set", ", value, /",        MyType::set, "set(value)"),
///             (kw,     "put", ", obj, block=True", MyType::put, "..."),
///             (class,  "make", ", x, /",           MyType::make, "..."),
///             (coexist_o, "__getitem__", ", key, /", MyType::getitem, "..."),
///         ],
///         getset: [("id", MyType::id, "The id.")],
///         slots: [(new, MyType::new), (repr, MyType::repr), (hash, MyType::hash)],
///     }
/// }
/// ```
///
/// Body signatures, by kind (`R: IntoPy`; `This<'_, T>` is `self`):
/// - methods: `noargs` `fn(This<T>) -> PyResult<R>`; `fast`
///   `fn(This<T>, Args) -> PyResult<R>`; `kw` `fn(This<T>, KwArgs) -> PyResult<R>`;
///   `class` `fn(*mut PyTypeObject, Args) -> PyResult<R>`;
///   `coexist_o` (`METH_O | METH_COEXIST`: a dunder that replaces the slot
///   wrapper of its name, so that the bound method is a vectorcall) `fn(This<T>,
///   *mut PyObject) -> PyResult<R>`; `coexist_fast` (`METH_FASTCALL |
///   METH_COEXIST`) `fn(This<T>, Args) -> PyResult<R>`;
///   `class_varkw` (`METH_VARARGS | METH_KEYWORDS | METH_CLASS`, for
///   `PyArg_ParseTupleAndKeywords`) `fn(*mut PyTypeObject, args: *mut PyObject,
///   kwargs: *mut PyObject /*NULL*/) -> PyResult<R>`;
/// - getters: `fn(This<T>) -> PyResult<R>`;
/// - slots: see `native_slot!`.
///
/// The text signature is `name($self<params>)`, so `inspect.signature`
/// reports `self` and the parameters.
#[macro_export]
macro_rules! native_class {
    (
        $T:ty {
            name: $name:literal,
            attr: $attr:literal,
            doc: $doc:literal,
            flags: $flags:expr,
            methods: [$(($kind:ident, $mname:literal, $msig:literal, $mbody:path, $mdoc:literal)),* $(,)?],
            getset: [$(($gname:literal, $gbody:path, $gdoc:literal)),* $(,)?],
            slots: [$(($sname:ident, $sbody:path)),* $(,)?] $(,)?
        }
    ) => {
        // SAFETY: the layout, deallocator and shims below are all generated
        // for `$T` (see `NativeClass`).
        unsafe impl $crate::ffi::class::NativeClass for $T {
            const DEF: &'static $crate::ffi::class::ClassDef = {
                static DEF: $crate::ffi::class::ClassDef = $crate::ffi::class::ClassDef {
                name: $crate::cstr!($name),
                attr: $crate::cstr!($attr),
                doc: $crate::cstr!($doc),
                flags: $flags,
                basicsize: ::std::mem::size_of::<$crate::ffi::class::Native<$T>>(),
                methods: $crate::native_class!(@methods $T; $(($kind, $mname, $msig, $mbody, $mdoc))*),
                getset: $crate::native_class!(@getset $T; $(($gname, $gbody, $gdoc))*),
                slots: {
                    static SLOTS: $crate::ffi::class::Table<$crate::ffi::class::Slot> =
                        $crate::ffi::class::Table(&[
                            $crate::ffi::class::Slot {
                                slot: $crate::ffi::sys::Py_tp_dealloc,
                                pfunc: $crate::ffi::class::dealloc::<$T> as *mut ::std::ffi::c_void,
                            },
                            $($crate::native_slot!($T, $sname, $sbody)),*
                        ]);
                    &SLOTS
                },
                index: $crate::ffi::class::TypeIndex::new(),
                };
                &DEF
            };
        }
    };
    (@methods $T:ty;) => { None };
    (@methods $T:ty; $(($kind:ident, $mname:literal, $msig:literal, $mbody:path, $mdoc:literal))+) => {{
        static METHODS: $crate::ffi::class::Table<$crate::ffi::sys::PyMethodDef> =
            $crate::ffi::class::Table(&[
                $($crate::native_method!($kind, $T, $mname, $msig, $mbody, $mdoc),)+
                $crate::ffi::sys::PyMethodDef::zeroed(),
            ]);
        Some(&METHODS)
    }};
    (@getset $T:ty;) => { None };
    (@getset $T:ty; $(($gname:literal, $gbody:path, $gdoc:literal))+) => {{
        static GETSET: $crate::ffi::class::Table<$crate::ffi::sys::PyGetSetDef> =
            $crate::ffi::class::Table(&[
                $($crate::ffi::sys::PyGetSetDef {
                    name: $crate::cstr!($gname).as_ptr(),
                    get: Some({
                        unsafe extern "C" fn get(
                            slf: *mut $crate::ffi::sys::PyObject,
                            _closure: *mut ::std::ffi::c_void,
                        ) -> *mut $crate::ffi::sys::PyObject {
                            $crate::ffi::class::shim::obj(|| {
                                // SAFETY: getset descriptors check the type of `self`.
                                $gbody(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) })
                            })
                        }
                        get
                    }),
                    set: None,
                    doc: $crate::cstr!($gdoc).as_ptr(),
                    closure: ::std::ptr::null_mut(),
                },)+
                $crate::ffi::sys::PyGetSetDef {
                    name: ::std::ptr::null(),
                    get: None,
                    set: None,
                    doc: ::std::ptr::null(),
                    closure: ::std::ptr::null_mut(),
                },
            ]);
        Some(&GETSET)
    }};
}

/// One `PyMethodDef` of a class (`$T`) or of the module (`module: prologue`,
/// where the body gets the module object instead of `This`, after
/// `prologue(module)` ran), with its shim.
/// Kinds: see [`native_class!`]; the text signature is
/// `name($self<params>)` (`$module` for module functions).
#[macro_export]
macro_rules! native_method {
    (noargs, module: $pro:path, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($module", $sig, $doc, $crate::ffi::sys::METH_NOARGS,
            PyCFunction: {
                unsafe extern "C" fn shim(
                    slf: *mut $crate::ffi::sys::PyObject,
                    _unused: *mut $crate::ffi::sys::PyObject,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        $pro(slf);
                        $body(slf)
                    })
                }
                shim
            })
    };
    (fast, module: $pro:path, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($module", $sig, $doc, $crate::ffi::sys::METH_FASTCALL,
            PyCFunctionFast: {
                unsafe extern "C" fn shim(
                    slf: *mut $crate::ffi::sys::PyObject,
                    args: *mut *mut $crate::ffi::sys::PyObject,
                    nargs: $crate::ffi::sys::Py_ssize_t,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        $pro(slf);
                        // SAFETY: CPython's METH_FASTCALL arguments.
                        $body(slf, unsafe { $crate::ffi::class::shim::args(args, nargs) })
                    })
                }
                shim
            })
    };
    (kw, module: $pro:path, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($module", $sig, $doc,
            $crate::ffi::sys::METH_FASTCALL | $crate::ffi::sys::METH_KEYWORDS,
            PyCFunctionFastWithKeywords: {
                unsafe extern "C" fn shim(
                    slf: *mut $crate::ffi::sys::PyObject,
                    args: *const *mut $crate::ffi::sys::PyObject,
                    nargs: $crate::ffi::sys::Py_ssize_t,
                    kwnames: *mut $crate::ffi::sys::PyObject,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        $pro(slf);
                        // SAFETY: CPython's METH_FASTCALL|METH_KEYWORDS arguments.
                        $body(slf, unsafe { $crate::ffi::args::KwArgs::new(args, nargs, kwnames) })
                    })
                }
                shim
            })
    };
    (noargs, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($self", $sig, $doc, $crate::ffi::sys::METH_NOARGS,
            PyCFunction: {
                unsafe extern "C" fn shim(
                    slf: *mut $crate::ffi::sys::PyObject,
                    _unused: *mut $crate::ffi::sys::PyObject,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        // SAFETY: method descriptors check the type of `self`.
                        $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) })
                    })
                }
                shim
            })
    };
    (fast, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@fast $crate::ffi::sys::METH_FASTCALL, $T, $name, $sig, $body, $doc)
    };
    (@fast $flags:expr, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($self", $sig, $doc, $flags,
            PyCFunctionFast: {
                unsafe extern "C" fn shim(
                    slf: *mut $crate::ffi::sys::PyObject,
                    args: *mut *mut $crate::ffi::sys::PyObject,
                    nargs: $crate::ffi::sys::Py_ssize_t,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        // SAFETY: method descriptors check the type of `self`;
                        // CPython's METH_FASTCALL arguments.
                        $body(
                            unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) },
                            unsafe { $crate::ffi::class::shim::args(args, nargs) },
                        )
                    })
                }
                shim
            })
    };
    // A dunder method that replaces the slot wrapper CPython would put under
    // its name (METH_COEXIST): `d.__getitem__` becomes a vectorcall builtin
    // method instead of a method-wrapper, which packs every call's arguments
    // into a new tuple (CPython's dict does the same for its `__getitem__`
    // and `__contains__`). The slot itself (`d[k]`) is unchanged.
    (coexist_o, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($self", $sig, $doc,
            $crate::ffi::sys::METH_O | $crate::ffi::sys::METH_COEXIST,
            PyCFunction: {
                unsafe extern "C" fn shim(
                    slf: *mut $crate::ffi::sys::PyObject,
                    arg: *mut $crate::ffi::sys::PyObject,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        // SAFETY: method descriptors check the type of `self`;
                        // METH_O passes one borrowed, live argument.
                        $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, arg)
                    })
                }
                shim
            })
    };
    (coexist_fast, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@fast
            $crate::ffi::sys::METH_FASTCALL | $crate::ffi::sys::METH_COEXIST,
            $T, $name, $sig, $body, $doc)
    };
    (kw, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($self", $sig, $doc,
            $crate::ffi::sys::METH_FASTCALL | $crate::ffi::sys::METH_KEYWORDS,
            PyCFunctionFastWithKeywords: {
                unsafe extern "C" fn shim(
                    slf: *mut $crate::ffi::sys::PyObject,
                    args: *const *mut $crate::ffi::sys::PyObject,
                    nargs: $crate::ffi::sys::Py_ssize_t,
                    kwnames: *mut $crate::ffi::sys::PyObject,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        // SAFETY: method descriptors check the type of `self`;
                        // CPython's METH_FASTCALL|METH_KEYWORDS arguments.
                        $body(
                            unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) },
                            unsafe { $crate::ffi::args::KwArgs::new(args, nargs, kwnames) },
                        )
                    })
                }
                shim
            })
    };
    (class, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($type", $sig, $doc,
            $crate::ffi::sys::METH_FASTCALL | $crate::ffi::sys::METH_CLASS,
            PyCFunctionFast: {
                unsafe extern "C" fn shim(
                    cls: *mut $crate::ffi::sys::PyObject,
                    args: *mut *mut $crate::ffi::sys::PyObject,
                    nargs: $crate::ffi::sys::Py_ssize_t,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        // SAFETY: CPython's METH_FASTCALL arguments.
                        $body(
                            cls as *mut $crate::ffi::sys::PyTypeObject,
                            unsafe { $crate::ffi::class::shim::args(args, nargs) },
                        )
                    })
                }
                shim
            })
    };
    (class_varkw, $T:ty, $name:literal, $sig:literal, $body:path, $doc:literal) => {
        $crate::native_method!(@def $name, "($type", $sig, $doc,
            $crate::ffi::sys::METH_VARARGS | $crate::ffi::sys::METH_KEYWORDS | $crate::ffi::sys::METH_CLASS,
            PyCFunctionWithKeywords: {
                unsafe extern "C" fn shim(
                    cls: *mut $crate::ffi::sys::PyObject,
                    args: *mut $crate::ffi::sys::PyObject,
                    kwargs: *mut $crate::ffi::sys::PyObject,
                ) -> *mut $crate::ffi::sys::PyObject {
                    $crate::ffi::class::shim::obj(|| {
                        $body(cls as *mut $crate::ffi::sys::PyTypeObject, args, kwargs)
                    })
                }
                shim
            })
    };
    (@def $name:literal, $open:literal, $sig:literal, $doc:literal, $flags:expr, $field:ident: $f:expr) => {
        $crate::ffi::sys::PyMethodDef {
            ml_name: $crate::cstr!($name).as_ptr(),
            ml_meth: $crate::ffi::sys::PyMethodDefPointer { $field: $f },
            ml_flags: $flags,
            ml_doc: match ::std::ffi::CStr::from_bytes_with_nul(
                concat!($name, $open, $sig, ")\n--\n\n", $doc, "\0").as_bytes(),
            ) {
                Ok(c) => c,
                Err(_) => panic!("interior NUL"),
            }
            .as_ptr(),
        }
    };
}

/// One `Slot` of a class `$T` with its generated shim. Body signatures by
/// slot (`This` is `This<'_, $T>`, `Obj` is `*mut PyObject` borrowed):
///
/// | slot | body |
/// |---|---|
/// | `new` | `fn(*mut PyTypeObject, args: Obj, kwargs: Obj /*NULL*/) -> PyResult<$T>` |
/// | `new_raw` | `fn(*mut PyTypeObject, Obj, Obj) -> PyResult<impl IntoPy>` (makes the object itself) |
/// | `repr`, `str`, `iter`, `iternext`, `nb_int`, `nb_index`, `nb_float`, unary `nb_*` | `fn(This) -> PyResult<impl IntoPy>` |
/// | `hash` | `fn(This) -> PyResult<Py_hash_t>` |
/// | `len` (sq and mp) | `fn(This) -> PyResult<usize>` |
/// | `bool` | `fn(This) -> PyResult<bool>` |
/// | `contains` | `fn(This, Obj) -> PyResult<bool>` |
/// | `richcompare` | `fn(This, Obj, c_int) -> PyResult<impl IntoPy>` |
/// | `getattro`, `getitem` | `fn(This, Obj) -> PyResult<impl IntoPy>` |
/// | `setattro`, `setitem` | `fn(This, Obj, Option<Obj>) -> PyResult<()>` (None: delete) |
/// | `call` | `fn(This, args: Obj, kwargs: Obj /*NULL*/) -> PyResult<impl IntoPy>` |
/// | binary `nb_*` | `fn(Obj, Obj) -> PyResult<impl IntoPy>` (either operand may be ours) |
/// | `nb_power`, `nb_inplace_power` | `fn(Obj, Obj, Obj) -> PyResult<impl IntoPy>` |
/// | `getbuffer` | `fn(This, *mut Py_buffer, c_int) -> PyResult<()>` |
/// | `releasebuffer` | `fn(This, *mut Py_buffer)` (must not fail) |
/// | `traverse` | `fn(This, visitproc, *mut c_void) -> c_int` (no Python calls) |
/// | `clear` | `fn(This)` |
/// | `dealloc` | `fn(This) -> G`: runs first; its guard `G` is held while the default `tp_dealloc` drops the value and frees the object, then dropped (replaces the default deallocator) |
#[macro_export]
macro_rules! native_slot {
    ($T:ty, new, $body:path) => {
        $crate::native_slot!(@slot Py_tp_new, {
            unsafe extern "C" fn shim(
                cls: *mut $crate::ffi::sys::PyTypeObject,
                args: *mut $crate::ffi::sys::PyObject,
                kwargs: *mut $crate::ffi::sys::PyObject,
            ) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| {
                    let value: $T = $body(cls, args, kwargs)?;
                    // SAFETY: `cls` is our type or a subclass (tp_new is
                    // inherited only by subclasses).
                    unsafe { $crate::ffi::class::alloc::<$T>(cls, value) }
                })
            }
            shim
        })
    };
    ($T:ty, new_raw, $body:path) => {
        $crate::native_slot!(@slot Py_tp_new, {
            unsafe extern "C" fn shim(
                cls: *mut $crate::ffi::sys::PyTypeObject,
                args: *mut $crate::ffi::sys::PyObject,
                kwargs: *mut $crate::ffi::sys::PyObject,
            ) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| $body(cls, args, kwargs))
            }
            shim
        })
    };
    ($T:ty, repr, $body:path) => { $crate::native_slot!(@unary $T, Py_tp_repr, $body) };
    ($T:ty, str, $body:path) => { $crate::native_slot!(@unary $T, Py_tp_str, $body) };
    ($T:ty, iter, $body:path) => { $crate::native_slot!(@unary $T, Py_tp_iter, $body) };
    ($T:ty, iternext, $body:path) => { $crate::native_slot!(@unary $T, Py_tp_iternext, $body) };
    ($T:ty, nb_int, $body:path) => { $crate::native_slot!(@unary $T, Py_nb_int, $body) };
    ($T:ty, nb_index, $body:path) => { $crate::native_slot!(@unary $T, Py_nb_index, $body) };
    ($T:ty, nb_float, $body:path) => { $crate::native_slot!(@unary $T, Py_nb_float, $body) };
    ($T:ty, nb_negative, $body:path) => { $crate::native_slot!(@unary $T, Py_nb_negative, $body) };
    ($T:ty, nb_positive, $body:path) => { $crate::native_slot!(@unary $T, Py_nb_positive, $body) };
    ($T:ty, nb_absolute, $body:path) => { $crate::native_slot!(@unary $T, Py_nb_absolute, $body) };
    ($T:ty, nb_invert, $body:path) => { $crate::native_slot!(@unary $T, Py_nb_invert, $body) };
    ($T:ty, hash, $body:path) => {
        $crate::native_slot!(@slot Py_tp_hash, {
            unsafe extern "C" fn shim(slf: *mut $crate::ffi::sys::PyObject) -> $crate::ffi::sys::Py_hash_t {
                $crate::ffi::class::shim::hash(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) })
                })
            }
            shim
        })
    };
    ($T:ty, hash_not_implemented, $_body:tt) => {
        $crate::native_slot!(@slot Py_tp_hash, $crate::ffi::sys::PyObject_HashNotImplemented)
    };
    ($T:ty, sq_len, $body:path) => { $crate::native_slot!(@len $T, Py_sq_length, $body) };
    ($T:ty, mp_len, $body:path) => { $crate::native_slot!(@len $T, Py_mp_length, $body) };
    ($T:ty, bool, $body:path) => {
        $crate::native_slot!(@slot Py_nb_bool, {
            unsafe extern "C" fn shim(slf: *mut $crate::ffi::sys::PyObject) -> ::std::ffi::c_int {
                $crate::ffi::class::shim::truth(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) })
                })
            }
            shim
        })
    };
    ($T:ty, contains, $body:path) => {
        $crate::native_slot!(@slot Py_sq_contains, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                item: *mut $crate::ffi::sys::PyObject,
            ) -> ::std::ffi::c_int {
                $crate::ffi::class::shim::truth(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, item)
                })
            }
            shim
        })
    };
    ($T:ty, richcompare, $body:path) => {
        $crate::native_slot!(@slot Py_tp_richcompare, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                other: *mut $crate::ffi::sys::PyObject,
                op: ::std::ffi::c_int,
            ) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| {
                    // SAFETY: tp_richcompare is called with an instance of
                    // the type as its first argument.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, other, op)
                })
            }
            shim
        })
    };
    ($T:ty, getattro, $body:path) => { $crate::native_slot!(@binself $T, Py_tp_getattro, $body) };
    ($T:ty, getitem, $body:path) => { $crate::native_slot!(@binself $T, Py_mp_subscript, $body) };
    ($T:ty, setattro, $body:path) => { $crate::native_slot!(@setter $T, Py_tp_setattro, $body) };
    ($T:ty, setitem, $body:path) => { $crate::native_slot!(@setter $T, Py_mp_ass_subscript, $body) };
    ($T:ty, call, $body:path) => {
        $crate::native_slot!(@slot Py_tp_call, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                args: *mut $crate::ffi::sys::PyObject,
                kwargs: *mut $crate::ffi::sys::PyObject,
            ) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, args, kwargs)
                })
            }
            shim
        })
    };
    ($T:ty, nb_add, $body:path) => { $crate::native_slot!(@binary Py_nb_add, $body) };
    ($T:ty, nb_subtract, $body:path) => { $crate::native_slot!(@binary Py_nb_subtract, $body) };
    ($T:ty, nb_multiply, $body:path) => { $crate::native_slot!(@binary Py_nb_multiply, $body) };
    ($T:ty, nb_remainder, $body:path) => { $crate::native_slot!(@binary Py_nb_remainder, $body) };
    ($T:ty, nb_divmod, $body:path) => { $crate::native_slot!(@binary Py_nb_divmod, $body) };
    ($T:ty, nb_lshift, $body:path) => { $crate::native_slot!(@binary Py_nb_lshift, $body) };
    ($T:ty, nb_rshift, $body:path) => { $crate::native_slot!(@binary Py_nb_rshift, $body) };
    ($T:ty, nb_and, $body:path) => { $crate::native_slot!(@binary Py_nb_and, $body) };
    ($T:ty, nb_xor, $body:path) => { $crate::native_slot!(@binary Py_nb_xor, $body) };
    ($T:ty, nb_or, $body:path) => { $crate::native_slot!(@binary Py_nb_or, $body) };
    ($T:ty, nb_floor_divide, $body:path) => { $crate::native_slot!(@binary Py_nb_floor_divide, $body) };
    ($T:ty, nb_true_divide, $body:path) => { $crate::native_slot!(@binary Py_nb_true_divide, $body) };
    ($T:ty, nb_matrix_multiply, $body:path) => { $crate::native_slot!(@binary Py_nb_matrix_multiply, $body) };
    ($T:ty, nb_inplace_add, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_add, $body) };
    ($T:ty, nb_inplace_subtract, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_subtract, $body) };
    ($T:ty, nb_inplace_multiply, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_multiply, $body) };
    ($T:ty, nb_inplace_remainder, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_remainder, $body) };
    ($T:ty, nb_inplace_lshift, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_lshift, $body) };
    ($T:ty, nb_inplace_rshift, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_rshift, $body) };
    ($T:ty, nb_inplace_and, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_and, $body) };
    ($T:ty, nb_inplace_xor, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_xor, $body) };
    ($T:ty, nb_inplace_or, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_or, $body) };
    ($T:ty, nb_inplace_floor_divide, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_floor_divide, $body) };
    ($T:ty, nb_inplace_true_divide, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_true_divide, $body) };
    ($T:ty, nb_inplace_matrix_multiply, $body:path) => { $crate::native_slot!(@binary Py_nb_inplace_matrix_multiply, $body) };
    ($T:ty, nb_power, $body:path) => { $crate::native_slot!(@ternary Py_nb_power, $body) };
    ($T:ty, nb_inplace_power, $body:path) => { $crate::native_slot!(@ternary Py_nb_inplace_power, $body) };
    ($T:ty, getbuffer, $body:path) => {
        $crate::native_slot!(@slot Py_bf_getbuffer, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                view: *mut $crate::ffi::sys::Py_buffer,
                flags: ::std::ffi::c_int,
            ) -> ::std::ffi::c_int {
                $crate::ffi::class::shim::int(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, view, flags)
                })
            }
            shim
        })
    };
    ($T:ty, releasebuffer, $body:path) => {
        $crate::native_slot!(@slot Py_bf_releasebuffer, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                view: *mut $crate::ffi::sys::Py_buffer,
            ) {
                // CPython may release a buffer while an exception is pending
                // (a temporary memoryview dropped by a failed
                // `memoryview(b)[0] = 1`): set it aside, so that it is
                // neither taken for this slot's failure nor lost.
                // SAFETY: attached (CPython calls this slot attached).
                let pending = unsafe { $crate::ffi::sys::PyErr_GetRaisedException() };
                $crate::ffi::class::shim::int(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, view);
                    Ok(())
                });
                // A panic (the only possible failure) was turned into a
                // SystemError; this slot cannot report it: make it unraisable,
                // then restore the pending exception (stolen back; null is
                // fine).
                // SAFETY: attached (CPython calls this slot attached).
                unsafe {
                    if !$crate::ffi::sys::PyErr_Occurred().is_null() {
                        $crate::ffi::sys::PyErr_WriteUnraisable(slf);
                    }
                    $crate::ffi::sys::PyErr_SetRaisedException(pending);
                }
            }
            shim
        })
    };
    ($T:ty, traverse, $body:path) => {
        $crate::native_slot!(@slot Py_tp_traverse, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                visit: $crate::ffi::sys::visitproc,
                arg: *mut ::std::ffi::c_void,
            ) -> ::std::ffi::c_int {
                // The GC may not run Python code here, and a panic must not
                // unwind into it: a panicking traverse reports nothing.
                ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                    // SAFETY: tp_traverse is called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, visit, arg)
                }))
                .unwrap_or(0)
            }
            shim
        })
    };
    ($T:ty, clear, $body:path) => {
        $crate::native_slot!(@slot Py_tp_clear, {
            unsafe extern "C" fn shim(slf: *mut $crate::ffi::sys::PyObject) -> ::std::ffi::c_int {
                $crate::ffi::class::shim::int(|| {
                    // SAFETY: tp_clear is called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) });
                    Ok(())
                })
            }
            shim
        })
    };
    ($T:ty, dealloc, $body:path) => {
        // Listed after the default `Py_tp_dealloc` slot, so it replaces it
        // (CPython applies a spec's slots in order).
        $crate::native_slot!(@slot Py_tp_dealloc, {
            unsafe extern "C" fn shim(slf: *mut $crate::ffi::sys::PyObject) {
                // A panic must not unwind into CPython: a panicking body
                // leaves no guard, and the object is still deallocated.
                let guard = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                    // SAFETY: tp_dealloc is called once with a dead instance
                    // of the type, whose value is live until the default
                    // deallocator below drops it.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) })
                }));
                // SAFETY: CPython's one call for a dead instance of `$T`.
                unsafe { $crate::ffi::class::dealloc::<$T>(slf) };
                let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || drop(guard)));
            }
            shim
        })
    };
    (@unary $T:ty, $slot:ident, $body:path) => {
        $crate::native_slot!(@slot $slot, {
            unsafe extern "C" fn shim(slf: *mut $crate::ffi::sys::PyObject) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| {
                    // SAFETY: unary slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) })
                })
            }
            shim
        })
    };
    (@len $T:ty, $slot:ident, $body:path) => {
        $crate::native_slot!(@slot $slot, {
            unsafe extern "C" fn shim(slf: *mut $crate::ffi::sys::PyObject) -> $crate::ffi::sys::Py_ssize_t {
                $crate::ffi::class::shim::ssize(|| {
                    // SAFETY: slots are called with an instance of the type.
                    let n: usize = $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) })?;
                    Ok(n as $crate::ffi::sys::Py_ssize_t)
                })
            }
            shim
        })
    };
    (@binself $T:ty, $slot:ident, $body:path) => {
        $crate::native_slot!(@slot $slot, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                key: *mut $crate::ffi::sys::PyObject,
            ) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) }, key)
                })
            }
            shim
        })
    };
    (@setter $T:ty, $slot:ident, $body:path) => {
        $crate::native_slot!(@slot $slot, {
            unsafe extern "C" fn shim(
                slf: *mut $crate::ffi::sys::PyObject,
                key: *mut $crate::ffi::sys::PyObject,
                value: *mut $crate::ffi::sys::PyObject,
            ) -> ::std::ffi::c_int {
                $crate::ffi::class::shim::int(|| {
                    // SAFETY: slots are called with an instance of the type.
                    $body(
                        unsafe { $crate::ffi::class::This::<$T>::from_ptr(slf) },
                        key,
                        (!value.is_null()).then_some(value),
                    )
                })
            }
            shim
        })
    };
    (@binary $slot:ident, $body:path) => {
        $crate::native_slot!(@slot $slot, {
            unsafe extern "C" fn shim(
                a: *mut $crate::ffi::sys::PyObject,
                b: *mut $crate::ffi::sys::PyObject,
            ) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| $body(a, b))
            }
            shim
        })
    };
    (@ternary $slot:ident, $body:path) => {
        $crate::native_slot!(@slot $slot, {
            unsafe extern "C" fn shim(
                a: *mut $crate::ffi::sys::PyObject,
                b: *mut $crate::ffi::sys::PyObject,
                c: *mut $crate::ffi::sys::PyObject,
            ) -> *mut $crate::ffi::sys::PyObject {
                $crate::ffi::class::shim::obj(|| $body(a, b, c))
            }
            shim
        })
    };
    (@slot $slot:ident, $f:expr) => {
        $crate::ffi::class::Slot {
            slot: $crate::ffi::sys::$slot,
            pfunc: $f as *mut ::std::ffi::c_void,
        }
    };
}
