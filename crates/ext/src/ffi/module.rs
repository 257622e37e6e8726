//! Declaring the extension module: multi-phase init, per-interpreter-GIL
//! and free-threading support slots, module state, and the module's
//! functions, from one [`native_module!`](crate::native_module) declaration
//! that generates every `extern "C"` entry point (each catching panics).

use super::sys;
use std::cell::UnsafeCell;

/// The module definition, which CPython writes once (`PyModuleDef_Init`
/// fills its base) and then only reads.
pub struct ModuleDef(pub UnsafeCell<sys::PyModuleDef>);

// SAFETY: CPython initializes the definition's base under its own locking
// (the import machinery) and otherwise only reads it.
unsafe impl Sync for ModuleDef {}

impl ModuleDef {
    pub fn as_ptr(&self) -> *mut sys::PyModuleDef {
        self.0.get()
    }
}

/// The module's slots (exec, multiple interpreters, GIL).
pub struct ModuleSlots(pub [sys::PyModuleDef_Slot; 4]);

// SAFETY: immutable after construction; CPython only reads it.
unsafe impl Sync for ModuleSlots {}

/// Declare the extension module.
///
/// ```ignore
/// native_module! {
///     init: PyInit__native,
///     name: "crossinterp._native",
///     doc: "...",
///     state: ModState,                 // the module state's type (zeroed at creation)
///     exec: lifecycle::exec,           // unsafe fn(*mut PyObject) -> PyResult<()> (and so on)
///     traverse: lifecycle::traverse,   // fn(*mut PyObject, visitproc, *mut c_void) -> c_int
///     clear: lifecycle::clear,         // fn(*mut PyObject)
///     free: lifecycle::free,           // fn(*mut PyObject)
///     prologue: lifecycle::enter,      // fn(*mut PyObject), before every function
///     functions: [(fast, "name", ", a, b, /", body, "doc"), ...],
/// }
/// ```
#[macro_export]
macro_rules! native_module {
    (
        init: $init:ident,
        name: $name:literal,
        doc: $doc:literal,
        state: $State:ty,
        exec: $exec:path,
        traverse: $traverse:path,
        clear: $clear:path,
        free: $free:path,
        prologue: $pro:path,
        functions: [$(($kind:ident, $fname:literal, $fsig:literal, $fbody:path, $fdoc:literal)),* $(,)?] $(,)?
    ) => {
        static FUNCTIONS: $crate::ffi::class::Table<$crate::ffi::sys::PyMethodDef> =
            $crate::ffi::class::Table(&[
                $($crate::native_method!($kind, module: $pro, $fname, $fsig, $fbody, $fdoc),)*
                $crate::ffi::sys::PyMethodDef::zeroed(),
            ]);

        static SLOTS: $crate::ffi::module::ModuleSlots = $crate::ffi::module::ModuleSlots([
            $crate::ffi::sys::PyModuleDef_Slot {
                slot: $crate::ffi::sys::Py_mod_exec,
                value: {
                    unsafe extern "C" fn shim(module: *mut $crate::ffi::sys::PyObject) -> ::std::ffi::c_int {
                        // SAFETY: CPython runs the exec slot attached, with our module.
                        $crate::ffi::trampoline_int(|| unsafe { $exec(module) })
                    }
                    shim
                } as *mut ::std::ffi::c_void,
            },
            $crate::ffi::sys::PyModuleDef_Slot {
                slot: $crate::ffi::sys::Py_mod_multiple_interpreters,
                value: $crate::ffi::sys::Py_MOD_PER_INTERPRETER_GIL_SUPPORTED,
            },
            // Every shared structure is behind the engine's own locks/atomics:
            // no hidden reliance on the GIL. (GIL builds accept the slot too.)
            $crate::ffi::sys::PyModuleDef_Slot {
                slot: $crate::ffi::sys::Py_mod_gil,
                value: $crate::ffi::sys::Py_MOD_GIL_NOT_USED,
            },
            $crate::ffi::sys::PyModuleDef_Slot {
                slot: 0,
                value: ::std::ptr::null_mut(),
            },
        ]);

        static MODULE_DEF: $crate::ffi::module::ModuleDef =
            $crate::ffi::module::ModuleDef(::std::cell::UnsafeCell::new($crate::ffi::sys::PyModuleDef {
                m_base: $crate::ffi::sys::PyModuleDef_HEAD_INIT,
                m_name: $crate::cstr!($name).as_ptr(),
                m_doc: $crate::cstr!($doc).as_ptr(),
                m_size: ::std::mem::size_of::<$State>() as $crate::ffi::sys::Py_ssize_t,
                m_methods: FUNCTIONS.0.as_ptr() as *mut $crate::ffi::sys::PyMethodDef,
                m_slots: SLOTS.0.as_ptr() as *mut $crate::ffi::sys::PyModuleDef_Slot,
                m_traverse: Some({
                    unsafe extern "C" fn shim(
                        module: *mut $crate::ffi::sys::PyObject,
                        visit: $crate::ffi::sys::visitproc,
                        arg: *mut ::std::ffi::c_void,
                    ) -> ::std::ffi::c_int {
                        // No Python code may run, and no panic may unwind, here.
                        // SAFETY: called by the GC with our module.
                        ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| unsafe { $traverse(module, visit, arg) })).unwrap_or(0)
                    }
                    shim
                }),
                m_clear: Some({
                    unsafe extern "C" fn shim(module: *mut $crate::ffi::sys::PyObject) -> ::std::ffi::c_int {
                        // SAFETY: called by the GC or the teardown, attached, with our module.
                        let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| unsafe { $clear(module) }));
                        0
                    }
                    shim
                }),
                m_free: Some({
                    unsafe extern "C" fn shim(module: *mut ::std::ffi::c_void) {
                        // SAFETY: called by CPython, attached, once, with our module.
                        let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| unsafe { $free(module as *mut $crate::ffi::sys::PyObject) }));
                    }
                    shim
                }),
            }));

        /// The module's init function (multi-phase: returns the definition).
        ///
        /// # Safety
        /// Called by CPython's import machinery, with a thread state attached.
        #[no_mangle]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn $init() -> *mut $crate::ffi::sys::PyObject {
            // SAFETY: MODULE_DEF is a valid static definition; CPython
            // initializes its base once (safe from several interpreters).
            unsafe { $crate::ffi::sys::PyModuleDef_Init(MODULE_DEF.as_ptr()) }
        }
    };
}
