//! `AtomicDict`: a concurrent dict for free-threaded builds (and, with the same
//! API, GIL builds), over `crossinterp_core::map::ShardedMap`.
//!
//! # Ownership
//!
//! An `AtomicDict` belongs to the interpreter that created it: its entries are
//! strong references to that interpreter's objects. Any thread attached to that
//! interpreter may use it; it cannot cross to another interpreter (`__reduce__`
//! refuses, so `prepare_main`, `call` and queues raise `NotShareableError`).
//!
//! # Rules that keep it deadlock- and crash-free
//!
//! 1. `hash(key)` runs before any lock is taken.
//! 2. No Python code runs under a shard lock: no `__eq__`, no `__del__`, no
//!    callback; the only CPython calls made under it are increfs, plain
//!    comparisons (below), exact-int reads, and (`reduce_sum`/`reduce_count`)
//!    allocating an `int`, none of which runs Python code, re-enters us or
//!    waits for another thread. Under the lock keys are compared by identity, by an earlier
//!    verdict (the memo, below), or — when both are *plain* (exact `str`,
//!    `int`, `float`, `bytes`, `bool`, `None`, or exact tuples of these),
//!    whose comparison runs no user code and never blocks — by
//!    `PyObject_RichCompareBool`. Any other candidate of equal hash is
//!    recorded, the lock released, compared with `==` outside, the verdict
//!    memoized (holding a strong reference to the candidate, so its address
//!    cannot be reused meanwhile), and the lookup repeated under the lock. The
//!    repeated lookup is decided under the lock from identity and the memo, so
//!    it needs no version check; a key inserted meanwhile is just a new
//!    candidate.
//! 3. Keys and values displaced by a mutation are released (decref'd, which
//!    may run `__del__`) only after the lock is released.
//! 4. Values found under a read lock are incref'd before it is released: a
//!    writer needs the write lock to take an entry out, so the reference read
//!    is alive (no fail-able incref is needed).
//! 5. A thread never waits on a shard lock attached: it tries, spins briefly,
//!    then waits detached (`ffi::interp::detached`), so it cannot hold up a
//!    stop-the-world pause (3.13t) or keep the GIL (GIL builds) from the lock's
//!    holder. A thread that acquired a lock detached re-attaches holding it;
//!    the only code that may then wait for it while the world is stopped is
//!    the GC, whose `tp_traverse`/`tp_clear` only *try* the shard locks and
//!    skip a busy shard (skipping a visit only keeps objects alive).
//! 6. `update`/`reduce*` mark the thread as "inside an operation of dict X";
//!    a mutation of X from that thread meanwhile (from the callback, or from
//!    `__eq__`/`__add__` it triggers) raises `RuntimeError` instead of
//!    livelocking the compare-and-set loop.

//!
//! # Files
//!
//! `keys.rs` (stored references, hashing, equality under a lock), `store.rs`
//! (the state, shard locking, the core operations), `update.rs` (update,
//! compare-and-set, reduce*, the busy guard), `mapping.rs` (the mapping
//! protocol, snapshots, the constructor); this file declares the class, its
//! GC slots and its entry.

mod keys;
mod mapping;
mod store;
mod update;

pub use store::DictState;

use super::Entry;
use crate::ffi::args::Args;
use crate::ffi::class::This;
use crate::ffi::{self, sys, Exc, PyResult};
use std::ffi::{c_int, c_void};

/// `self` of the methods and slots.
type D<'a> = This<'a, DictState>;

impl DictState {
    fn traverse(this: D, visit: sys::visitproc, arg: *mut c_void) -> c_int {
        // SAFETY: CPython's GC calls this with a live AtomicDict. Only *try*
        // the shard locks (module doc, rule 5): a busy shard is skipped, which
        // can only keep its objects alive longer.
        unsafe {
            let r = visit(sys::Py_TYPE(this.as_ptr()) as *mut sys::PyObject, arg);
            if r != 0 {
                return r;
            }
            let d = this.get();
            for s in 0..d.map.shard_count() {
                let Some(g) = d.map.try_read_shard(s) else {
                    continue;
                };
                for (k, v) in g.iter() {
                    for p in [k.0, v.0] {
                        let r = visit(p, arg);
                        if r != 0 {
                            return r;
                        }
                    }
                }
            }
            0
        }
    }

    fn clear(this: D) {
        // SAFETY: the GC calls this with a live AtomicDict (attached). As in
        // `traverse`, busy shards are skipped; references are released after
        // each shard's lock.
        unsafe {
            let d = this.get();
            for s in 0..d.map.shard_count() {
                let Some(mut g) = d.map.try_write_shard(s) else {
                    continue;
                };
                let taken = g.drain();
                drop(g);
                for (k, v) in taken {
                    drop(k.owned());
                    drop(v.owned());
                }
            }
        }
    }

    fn reduce_ex(_this: D, _args: Args) -> PyResult<()> {
        Err(ffi::raise(
            Exc::TypeError,
            "cannot pickle or share 'AtomicDict': it holds references to objects of one \
             interpreter (pass d.to_dict(), or share a Queue)",
        ))
    }
}

crate::native_class! {
    DictState {
        name: "crossinterp.AtomicDict",
        attr: "AtomicDict",
        doc: "AtomicDict(initial=None)\n--\n\nA concurrent dict for free-threaded Python (same API on GIL builds): 64 independently locked shards, never one global lock. d[k], d[k] = v, del d[k], get, pop, setdefault, len (exact when no mutation is in flight), compare_and_set, update(key, fn, default), reduce/reduce_sum/reduce_count, and snapshot iteration that never fails under concurrent mutation. Belongs to the interpreter that created it: it cannot be shared with other interpreters (NotShareableError).",
        flags: sys::Py_TPFLAGS_HAVE_GC,
        methods: [
            // The three dunders also as vectorcall methods (see `coexist_o`):
            // a bound `d.__getitem__` (`map(d.__getitem__, keys)`, `sorted(keys,
            // key=d.__getitem__)`, hot loops) then calls without a tuple per call.
            (coexist_o, "__getitem__", ", key, /", DictState::getitem, "d[key]: the value for key; KeyError if absent."),
            (coexist_fast, "__setitem__", ", key, value, /", mapping::m_setitem, "d[key] = value."),
            (coexist_o, "__contains__", ", key, /", DictState::contains, "key in d."),
            (fast, "get", ", key, default=None, /", mapping::m_get, "The value for key, else default."),
            (fast, "pop", ", key, /, *default", mapping::m_pop, "Remove key and return its value; default (or KeyError) if absent."),
            (fast, "setdefault", ", key, default=None, /", mapping::m_setdefault, "The value for key; if absent, insert default (atomically) and return it."),
            (kw, "update", ", key, fn, default=None", update::m_update, "Atomically replace the value for key by fn(current) (fn(default) if absent) in a compare-and-set loop; fn may run more than once. Returns the value stored."),
            (kw, "compare_and_set", ", key, expected, new", update::m_cas, "If key's value is expected (identity; or equality when both are plain builtin values), store new. Returns whether it did."),
            (kw, "reduce", ", iterable, fn", update::m_reduce, "Merge (key, value) pairs: fn(old, new) for keys present (fn must be associative)."),
            (fast, "reduce_sum", ", iterable, /", update::m_reduce_sum, "Add each (key, number) pair's number to key's value (absent: the number)."),
            (fast, "reduce_count", ", iterable, /", update::m_reduce_count, "Add 1 to the count of each key of the iterable (absent: 0)."),
            (fast, "keys", "", mapping::m_keys, "A list of the keys (a snapshot, each shard consistent)."),
            (fast, "values", "", mapping::m_values, "A list of the values (a snapshot)."),
            (fast, "items", "", mapping::m_items, "A list of (key, value) pairs (a snapshot)."),
            (fast, "clear", "", mapping::m_clear, "Remove every item."),
            (fast, "to_dict", "", mapping::m_to_dict, "A plain dict copy (a snapshot)."),
            (fast, "__reduce_ex__", ", protocol, /", DictState::reduce_ex, "AtomicDict cannot be pickled or shared between interpreters."),
            (fast, "__reduce__", "", DictState::reduce_ex, "AtomicDict cannot be pickled or shared between interpreters."),
            (class, "__class_getitem__", ", item, /", crate::ffi::class::class_getitem, "AtomicDict[K, V]: a types.GenericAlias, for annotations."),
        ],
        getset: [],
        slots: [
            (new, DictState::new),
            (traverse, DictState::traverse),
            (clear, DictState::clear),
            (repr, DictState::repr),
            (iter, DictState::iter),
            (hash_not_implemented, none),
            (mp_len, DictState::len),
            (getitem, DictState::getitem),
            (setitem, DictState::setitem),
            (contains, DictState::contains),
        ],
    }
}

/// `AtomicDict` (no crossing: it is not shareable between interpreters).
pub const ENTRY: Entry = Entry {
    classes: &[<DictState as crate::ffi::class::NativeClass>::DEF],
    hook: None,
    converters: &[],
    fork_hold: None,
};
