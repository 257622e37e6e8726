use super::Entry;
use crate::ffi::args::{arity, Args};
use crate::ffi::class::{NativeClass, This};
use crate::ffi::{sys, Owned, PyResult};
use crate::runtime;
use crate::xi::{Converter, Crosses, Shared};
use crossinterp_core::sync::{Arc, AtomicI64, Ordering};

/// The value of a `Counter` object; the count is owned by no interpreter.
#[derive(Debug)]
pub struct Counter(Arc<AtomicI64>);

impl Counter {
    fn new(
        _cls: *mut sys::PyTypeObject,
        _args: *mut sys::PyObject,
        _kw: *mut sys::PyObject,
    ) -> PyResult<Counter> {
        Ok(Counter(Arc::new(AtomicI64::new(0))))
    }
    fn get(this: This<Counter>) -> PyResult<i64> {
        Ok(this.0.load(Ordering::Relaxed)) // Relaxed: a lone counter
    }
    fn add(this: This<Counter>, args: Args) -> PyResult<i64> {
        arity("add", args, 1)?;
        let n = crate::ffi::args::arg_i64(args[0], "n")?;
        Ok(this.0.fetch_add(n, Ordering::Relaxed) + n)
    }
}

crate::native_class! {
    Counter {
        name: "crossinterp._native.Counter",
        attr: "Counter",
        doc: "Counter()\n--\n\nA count shared by every interpreter.",
        flags: 0,
        methods: [
            (noargs, "get", "", Counter::get, "get() -> int"),
            (fast, "add", ", n, /", Counter::add, "add(n) -> int: add, return the new count"),
        ],
        getset: [("value", Counter::get, "The count.")],
        slots: [(new, Counter::new)],
    }
}

// Crossing: the same count, a new Counter object in the receiver.
impl Shared for Counter {
    fn to_python(self: Arc<Self>) -> PyResult<Owned> {
        runtime::new_instance(Counter(self.0.clone()))
    }
}

impl Crosses for Counter {
    fn crossing(this: This<Counter>) -> PyResult<Arc<dyn Shared>> {
        Ok(Arc::new(Counter(this.0.clone())))
    }
}

static XI: Converter = Converter::class::<Counter>();

pub const ENTRY: Entry = Entry {
    classes: &[Counter::DEF],
    converters: &[&XI],
    ..Entry::EMPTY
};
