//! `crossinterp._native`: the module definition — its types and functions,
//! nothing else. A new native type is one line in `TYPES`.

use crate::api::{functions as f, interpreters, testing};
use crate::ffi::{sys, PyResult};
use crate::runtime::lifecycle;
use crate::types::{self, Entry};

/// Every type file's contribution, in the order their hooks run.
static TYPES: &[Entry] = &[
    types::views::ENTRY,
    interpreters::ENTRY,
    types::proxy::ENTRY,
    types::queue::ENTRY,
    types::channel::ENTRY,
    types::buffer::ENTRY,
    types::borrowed::ENTRY,
    types::atomics::ENTRY,
    types::atomic_ref::ENTRY,
    types::atomic_dict::ENTRY,
    types::waker::ENTRY,
];

/// The exec slot: the interpreter becomes an owner; its types are made.
///
/// # Safety
/// Attached; `module` is our module object, in its exec slot.
unsafe fn exec(module: *mut sys::PyObject) -> PyResult<()> {
    // SAFETY: forwarded.
    unsafe {
        crate::ffi::capi::check_str_layout()?;
        let rec = lifecycle::exec(module)?;
        types::setup(module, &rec, TYPES)?;
    }
    // The package's one version: Cargo's (maturin stamps the same into the
    // wheel's metadata; `crossinterp.__version__` reads this attribute).
    let version = concat!(env!("CARGO_PKG_VERSION"), "\0");
    // SAFETY: attached, in the exec slot; both strings are NUL-terminated and
    // static; AddStringConstant copies the value.
    if unsafe {
        sys::PyModule_AddStringConstant(module, c"__version__".as_ptr(), version.as_ptr().cast())
    } < 0
    {
        return Err(crate::ffi::PyErrSet);
    }
    Ok(())
}

crate::native_module! {
    init: PyInit__native,
    name: "crossinterp._native",
    doc: "The native core of crossinterp (see crossinterp/_native.pyi).",
    state: lifecycle::ModState,
    exec: exec,
    traverse: lifecycle::traverse,
    clear: lifecycle::clear,
    free: lifecycle::free,
    prologue: lifecycle::enter,
    functions: [
        (fast, "share", ", obj, /", f::share, "share(obj) -> obj | SharedObjectProxy\n\nobj itself when it crosses natively, else a proxy of it."),
        (noargs, "collect_cycles", "", f::collect_cycles, "collect_cycles() -> int\n\nRelease the lent objects of unreachable cross-interpreter proxy cycles; how many were released."),
        (fast, "set_auto_collect_cycles", ", enabled, /", f::set_auto_collect_cycles, "set_auto_collect_cycles(enabled) -> bool (the old setting)"),
        (noargs, "cycles_supported", "", f::cycles_supported, "cycles_supported() -> bool: whether collect_cycles() can collect on this build"),
        (fast, "gc_callback", ", phase, info, /", f::gc_callback, "gc_callback(phase, info): gc.callbacks hook running the automatic cycle pass"),
        (fast, "proxy_info", ", obj, /", f::proxy_info, "proxy_info(obj) -> (owner id, alive) | None"),
        (fast, "view", ", id, /", f::view, "view(id) -> InterpreterView"),
        (noargs, "_own_threads_supported", "", f::own_threads_supported, "_own_threads_supported() -> bool: whether _current_frames/_current_exceptions work here (3.13)"),
        (noargs, "_current_frames", "", f::current_frames, "_current_frames() -> dict[int, frame]: sys._current_frames() of this interpreter's threads only"),
        (noargs, "_current_exceptions", "", f::current_exceptions, "_current_exceptions() -> dict[int, BaseException | None]: sys._current_exceptions() of this interpreter's threads only"),
        (noargs, "has_pep788", "", f::has_pep788, "has_pep788() -> bool: whether guards are backed by PEP 788 PyInterpreterGuard"),
        (fast, "create", ", site, /", f::create, "create(site) -> int\n\nCreate an interpreter with its own GIL (without running site in it if site is false, where the build allows)."),
        (fast, "destroy", ", id, /", f::destroy, "destroy(id) -> None\n\nClose an interpreter created by create()."),
        (fast, "incref", ", id, /", f::incref, "incref(id) -> None\n\nAn Interpreter object now owns a reference to interpreter id."),
        (fast, "decref", ", id, /", f::decref, "decref(id) -> bool\n\nDrop such a reference; the last one closes an idle interpreter made by create() (True if it did)."),
        (noargs, "list_all", "", f::list_all, "list_all() -> list[tuple[int, str]]"),
        (noargs, "get_current", "", f::get_current, "get_current() -> tuple[int, str]"),
        (noargs, "get_main", "", f::get_main, "get_main() -> tuple[int, str]"),
        (fast, "whence", ", id, /", f::whence, "whence(id) -> str"),
        (fast, "is_running", ", id, /", f::is_running, "is_running(id) -> bool"),
        (fast, "exec", ", id, code, /", f::exec, "exec(id, code) -> None | excinfo tuple"),
        (fast, "call", ", id, callable, args, kwargs, /", f::call, "call(id, callable, args, kwargs) -> (result, excinfo | None)"),
        (fast, "set_main_attrs", ", id, attrs, /", f::set_main_attrs, "set_main_attrs(id, dict) -> None | excinfo tuple"),
        (fast, "is_shareable", ", obj, /", f::is_shareable, "is_shareable(obj) -> bool"),
        (noargs, "live_owners", "", f::live_owners, "live_owners() -> int"),
        (fast, "set_finalize_warn_after", ", seconds, /", f::set_finalize_warn_after, "set_finalize_warn_after(seconds) -> float (the old value)"),
        (fast, "_testing_hold_guard", ", id, seconds, /", testing::hold_guard, "_testing_hold_guard(id, seconds): a Rust thread holds a guard on the owner."),
        (fast, "_testing_pickle_containers", ", on, /", testing::pickle_containers, "_testing_pickle_containers(on): containers and complex cross by pickle again (benchmarks)."),
        (fast, "_testing_xi_cost", ", obj, n, /", testing::xi_cost, "_testing_xi_cost(obj, n) -> (seconds converting, seconds rebuilding), n times each."),
        (fast, "_testing_push_pending", ", id, source, /", testing::push_pending, "_testing_push_pending(id, source): queue a pending call running source in the owner's __main__."),
    ],
}
