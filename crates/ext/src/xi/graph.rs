//! Native copies of containers: `list`, `tuple`, `dict`, `set`, `frozenset`
//! and `bytearray` (exact types only), nested in any way with each other and
//! with the values [`super::native`] copies or shares.
//!
//! A container crosses as a [`Graph`]: a flat table of nodes, one per
//! distinct container object (a memo keyed by the object's address, the
//! objects kept alive for the whole conversion), whose items are encoded in
//! one byte stream: a leaf inline (a tag, then its bytes), or a reference to
//! another node. One stream, not a Rust value per item: measured, a `Value`
//! per item (56 bytes, and a `String` per `str`) made the copy of a
//! 10,000-item dict twice as slow as pickle (page faults of the fresh
//! memory, allocations); the stream costs about what a pickle does. So:
//!
//! - **Shared substructure keeps its identity**, as with pickle: `[a, a]`
//!   rebuilds as a list holding the same object twice, and a DAG crosses in
//!   time and size linear in its distinct containers.
//! - **Cycles are kept**, as with pickle, when they close on a mutable
//!   container (`l.append(l)`, `d["self"] = d`, `l = [(l,)]` entered at the
//!   list): the receiver creates every list and set, and every dict a
//!   cycle closes on, empty first, then fills them (any other dict is made
//!   at its turn from all its pairs, so that it gets the table kind its
//!   original had). A cycle that closes on a tuple or frozenset still being
//!   converted (a tuple entered before the list that holds it) cannot be
//!   rebuilt bottom-up: the whole value is then pickled instead, and pickle
//!   keeps that cycle too. Nothing is refused for its shape.
//! - **No recursion on the C stack**: conversion walks an explicit stack and
//!   the rebuild goes through the node table in the order conversion
//!   finished the nodes (children first), so 100,000 nested lists cross
//!   like any other value, on any thread's stack. Dropping, cloning or
//!   printing a graph is flat too.
//! - **Mutation while converting cannot crash**: a container wholly of the
//!   commonest leaves is encoded in one pass that nothing can interleave
//!   with (below; free-threaded, the pass holds the container's lock and
//!   takes no other: a `str` whose UTF-8 CPython would make under the
//!   str's own lock ends it, since waiting for that lock may let go of the
//!   container's); any other container's items are snapshotted as strong
//!   references before any of them is looked at — a
//!   list or dict under its critical section on free-threaded builds (the
//!   lock its own methods take), a set through `PySequence_List` (which
//!   takes it), a bytearray under its critical section (free-threaded
//!   3.13, whose bytearrays lock nothing: under a buffer export, so a
//!   concurrent resize raises `BufferError` in the resizing thread).
//!   A concurrent mutation lands before or after the snapshot, never in it.
//!
//! - **The commonest leaves take an inline path** (`quick_leaf`): a compact
//!   `int` (read from its fields, as CPython's own inline functions do), a
//!   `float`, a `str`; ints go in fixed widths (1 or 4 bytes), which decode
//!   without a loop. A `str` carries the hash its sender had cached (every
//!   interpreter of a process hashes with the one secret), and the rebuilt
//!   `str` gets it, so a dict or set in the receiver does not hash its keys
//!   again; an ASCII `str` is read in place and rebuilt at its size with one
//!   copy, no UTF-8 decoding ([`T_ASCII`]); dicts are rebuilt presized. A dict made only of such leaves is
//!   encoded in one pass, in place, with no snapshot (nothing in that pass
//!   runs Python code or detaches: the GIL, or on free-threaded builds the
//!   dict's critical section held for the pass, keeps it unchanged); so is
//!   a free-threaded list (with the GIL lists are read in place anyway).
//!   Measured on 3.14 (a put+get in one
//!   thread): a 10,000-entry `str`->`int` dict 703 -> 394 us, a 10,000-int
//!   list 112 -> 77 us (pickle's dumps+loads: 795-841 and 113-140 us); what
//!   is left is CPython's: creating the objects and inserting into the dict.
//!
//! - **Rows and records are copied in place**: a tuple, list or dict of
//!   such leaves and `None`/`True`/`False` that nothing
//!   but its container refers to is written into its container's items
//!   ([`T_TUPLE_LEAVES`]...), with no node, memo entry or frame: it occurs
//!   once in the value, so no identity is lost (one referred to twice keeps
//!   its node). Free-threaded, a list or dict is read under its lock for
//!   that, and one that another thread moves meanwhile into a container
//!   still to come makes the conversion start again with every list and
//!   dict a node, so identity still holds ([`Builder::inline_container`]).
//!   The memo itself is a scan of the few nodes most values have, and an Fx
//!   hash map beyond. Measured on 3.14 (put + get in one
//!   thread, against pickle's dumps+loads in the same run): a list of 1,000
//!   `(int, str, float)` rows 1.80x pickle's speed (was 0.7x), of 1,000
//!   `[int, str]` 2.15x (1.12x), of 1,000 three-key dicts 1.30x (1.02x),
//!   and 1.57x once each node crosses a `str` it repeats once (its keys:
//!   [`StrMemo`]), which then arrives as one object, as with pickle.
//!
//! Any item that does not cross natively makes the whole value go the old
//! way (pickle, or `NotShareableError` with `strict=True`): a container is
//! never half native, half pickled, so identity across it is never split.
//! Subclasses (an `OrderedDict`, a `defaultdict`, a `list` subclass) are not
//! containers here and are pickled, so their type survives.

use super::{native, Mode, Value};
use crate::ffi::capi::with_critical_section;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use crossinterp_core::sync::{lock, Mutex};
use rustc_hash::FxHashMap;
use std::ffi::c_char;

/// The stream buffers of large containers, kept for the next conversion.
///
/// A large container's stream is a block of hundreds of KiB. Freed by the
/// receiver after the rebuild, it lands next to the free top of glibc's
/// heap, which then passes the trim threshold and goes back to the system:
/// the next conversion (and CPython's next large block, such as a dict's
/// keys) faults every page in again. Measured on 3.14 (a put + get + drop
/// of a 10,000-entry `str`->`int` dict in one thread, 2-vCPU AMD EPYC):
/// 87 page faults per copy without a pool, none with it; put 100 -> 68 us,
/// get 364 -> 259 us, drop 107 -> 75 us. The pool is small and bounded
/// (buffers from [`POOL_FROM_BYTES`] to [`POOL_UP_TO_BYTES`], at most
/// [`POOL_MAX`] of them), so at most 16 MiB stay reserved.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Hold the buffer pool across a `fork()` (`runtime::fork`).
pub fn fork_hold(h: &mut crossinterp_core::fork::Holds) -> bool {
    crossinterp_core::fork::hold_static(h, &POOL)
}

/// A container of this many items or more takes its buffer from [`POOL`].
const POOL_FROM_ITEMS: usize = 4096;
/// Smaller buffers are left to the allocator (cheap, recycled in place).
const POOL_FROM_BYTES: usize = 16 << 10;
/// Larger ones are freed: few values are so large, and that much idle
/// memory should go back to the system.
const POOL_UP_TO_BYTES: usize = 4 << 20;
/// How many buffers are kept at most.
const POOL_MAX: usize = 4;

/// A buffer for the stream of a container of [`POOL_FROM_ITEMS`] or more
/// items: the largest kept one, or a new one.
fn take_buffer() -> Vec<u8> {
    lock(&POOL).pop().unwrap_or_default()
}

/// Keep `v`'s memory for a later conversion, if it is of the pool's sizes
/// and the pool has room.
fn give_buffer(mut v: Vec<u8>) {
    // (The size is checked before the lock: most buffers are small.)
    if (POOL_FROM_BYTES..=POOL_UP_TO_BYTES).contains(&v.capacity()) {
        v.clear();
        let mut kept = lock(&POOL);
        if kept.len() < POOL_MAX {
            // The largest last: `take_buffer` pops it.
            let at = kept.partition_point(|k| k.capacity() <= v.capacity());
            kept.insert(at, v);
        }
    }
}

impl Drop for Graph {
    /// The stream goes back to [`POOL`] (if it is of its sizes).
    fn drop(&mut self) {
        give_buffer(std::mem::take(&mut self.stream));
    }
}

// The stream's tags: each item is a tag and its payload.
const T_NONE: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
/// Zigzag LEB128 (a small int takes a byte or two).
const T_INT: u8 = 3;
/// 8 bytes (`f64` bits, little endian).
const T_FLOAT: u8 = 4;
/// 16 bytes: real, imaginary.
const T_COMPLEX: u8 = 5;
/// Length (LEB128), then UTF-8.
const T_STR: u8 = 6;
/// Length, then `surrogatepass` UTF-8 (a `str` with lone surrogates).
const T_STR_RAW: u8 = 7;
/// Length, then the bytes.
const T_BYTES: u8 = 8;
/// Length, then little-endian two's complement.
const T_BIGINT: u8 = 9;
/// A node index (LEB128).
const T_REF: u8 = 10;
/// An index (LEB128) into [`Graph::others`].
const T_OTHER: u8 = 11;
/// One byte, signed (fixed widths decode without a loop).
const T_I8: u8 = 12;
/// 4 bytes, signed, little endian.
const T_I32: u8 = 13;
/// 8 bytes of the hash the sender's `str` had cached, then as [`T_STR`]: the
/// receiver's equal `str` gets it (every interpreter of the process hashes
/// with the same secret), so a dict or set does not hash its keys again.
const T_STR_HASHED: u8 = 14;
/// A tuple inline, with no node: its length (LEB128), then its items, each
/// a leaf of [`inline_leaf`]'s. Only for a container nothing else can reach
/// (see [`Builder::inline_container`]), so no identity is lost.
const T_TUPLE_LEAVES: u8 = 15;
/// A list inline, as [`T_TUPLE_LEAVES`].
const T_LIST_LEAVES: u8 = 16;
/// A dict inline: its number of pairs, then key, value, key,
/// value... in its order, each a leaf of [`inline_leaf`]'s.
const T_DICT_LEAVES: u8 = 17;
/// Before a `str`'s tag ([`T_STR`], [`T_STR_HASHED`], [`T_ASCII`],
/// [`T_ASCII_HASHED`]): the receiver keeps the `str` it
/// makes as its node's next remembered one (see [`StrMemo`]).
const T_KEEP: u8 = 18;
/// The node's remembered `str` of this index (LEB128), again (the same
/// object in the receiver, as the same object was in the sender).
const T_STR_AGAIN: u8 = 19;
/// As [`T_STR`], of an ASCII `str`: the receiver makes it at its size and
/// copies the bytes, with no UTF-8 decoding ([`ffi::capi::ascii_str_new`]).
const T_ASCII: u8 = 20;
/// As [`T_STR_HASHED`], of an ASCII `str` (see [`T_ASCII`]).
const T_ASCII_HASHED: u8 = 21;

#[derive(Debug, Clone, Copy)]
enum Kind {
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
    ByteArray,
}

/// One container: its kind, its items' span of the stream and their count
/// (a dict's pairs count twice: key, value, key, value... in its order; a
/// bytearray's span is its bytes). `len == usize::MAX`: being converted.
#[derive(Debug, Clone, Copy)]
struct Node {
    kind: Kind,
    start: usize,
    end: usize,
    len: usize,
    /// Referred to while it was still being converted (a cycle closes on
    /// it): the receiver makes it before any node, empty, and fills it at
    /// its turn. Any other dict is made at its turn, from all its pairs at
    /// once ([`ffi::capi::_PyDict_FromItems`]).
    early: bool,
}

const PENDING: usize = usize::MAX;

/// Containers in transit: node 0 is the root.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    /// Every node, each after the nodes it holds (except the mutable ones
    /// still being converted when it was reached: a cycle).
    order: Vec<u32>,
    stream: Vec<u8>,
    /// Leaves the stream does not hold: shared values (queues, buffers...).
    others: Vec<Value>,
}

/// The container kind of exact type `tp` (addresses only: the builtin types
/// are statics of the interpreter).
fn kind_of_type(tp: *mut sys::PyTypeObject) -> Option<Kind> {
    // Only the statics' addresses are taken (safe): nothing is read.
    if tp == &raw mut sys::PyList_Type {
        Some(Kind::List)
    } else if tp == &raw mut sys::PyTuple_Type {
        Some(Kind::Tuple)
    } else if tp == &raw mut sys::PyDict_Type {
        Some(Kind::Dict)
    } else if tp == &raw mut sys::PySet_Type {
        Some(Kind::Set)
    } else if tp == &raw mut sys::PyFrozenSet_Type {
        Some(Kind::FrozenSet)
    } else if tp == &raw mut sys::PyByteArray_Type {
        Some(Kind::ByteArray)
    } else {
        None
    }
}

/// Whether `obj` is one of the containers this module copies.
///
/// # Safety
/// `obj` is a live object; attached.
pub unsafe fn is_container(obj: *mut sys::PyObject) -> bool {
    // SAFETY: forwarded (the type of a live object).
    kind_of_type(unsafe { sys::Py_TYPE(obj) }).is_some()
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// An int that fits 64 bits: the narrowest fixed width of 1 or 4 bytes, or
/// zigzag LEB128.
#[inline(always)]
fn put_int(out: &mut Vec<u8>, v: i64) {
    if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[T_I8, b as u8]);
    } else if let Ok(w) = i32::try_from(v) {
        let b = w.to_le_bytes();
        out.extend_from_slice(&[T_I32, b[0], b[1], b[2], b[3]]);
    } else {
        out.push(T_INT);
        put_len(out, ((v << 1) ^ (v >> 63)) as u64 as usize);
    }
}

/// A node of fewer items than this does not remember its `str`s: the
/// table would cost more than the few it could save. Measured on 3.13t,
/// where each record of a list is a node of its own: a table per
/// three-key record made a list of 1,000 records 309 -> 377 µs.
const STR_MEMO_FROM_ITEMS: usize = 16;

/// The `str`s of one node's items that something else refers to too (a
/// dict key of every record of a list: `"id"`, `"name"`...), by address,
/// each held until the end: its second and later occurrences in the node
/// cross as an index ([`T_STR_AGAIN`]), and the receiver makes the `str`
/// once, as pickle's memo does. Per node, because the receiver decodes each
/// node's items in order (a node's stream is written when it is finished,
/// after the nodes it holds: an index into another node's strs could come
/// before their definition). A `str` only its container refers to cannot
/// occur twice and is not looked up. Measured on 3.14 (put + get in one
/// thread): a list of 1,000 three-key dicts 136 -> 113 µs.
#[derive(Default)]
struct StrMemo {
    /// Whether this node remembers its `str`s at all.
    on: bool,
    /// Made at the first `str` remembered.
    table: Option<Box<StrTable>>,
}

#[derive(Default)]
struct StrTable {
    at: FxHashMap<usize, u32>,
    keep: Vec<Owned>,
}

/// What [`StrMemo::see`] says of a `str`.
enum Seen {
    /// Met before in this node: its index.
    Again(u32),
    /// Remembered now: the receiver is to keep it ([`T_KEEP`]).
    Kept,
}

impl StrMemo {
    /// The memo of a node of `items` items.
    fn new(items: usize) -> StrMemo {
        StrMemo {
            on: items >= STR_MEMO_FROM_ITEMS,
            table: None,
        }
    }

    /// `obj` (a live `str`, with more references than its container's) met
    /// in this node's items: again, or remembered now (held until the end).
    ///
    /// # Safety
    /// `obj` is a live `str`; attached.
    #[inline]
    unsafe fn see(&mut self, obj: *mut sys::PyObject) -> Option<Seen> {
        let t = self.table.get_or_insert_with(Box::default);
        if let Some(&i) = t.at.get(&(obj as usize)) {
            return Some(Seen::Again(i));
        }
        let i = u32::try_from(t.keep.len()).ok()?;
        t.at.insert(obj as usize, i);
        // SAFETY: forwarded: a live object.
        t.keep.push(unsafe { Owned::from_borrowed(obj) });
        Some(Seen::Kept)
    }

    /// How many are remembered (a mark for [`StrMemo::rollback`]).
    fn mark(&self) -> usize {
        self.table.as_ref().map_or(0, |t| t.keep.len())
    }

    /// Forget the ones remembered since `mark` (their bytes were dropped).
    fn rollback(&mut self, mark: usize) {
        if let Some(t) = &mut self.table {
            for o in t.keep.drain(mark..) {
                t.at.remove(&(o.as_ptr() as usize));
            }
        }
    }

    fn clear(&mut self) {
        self.rollback(0);
    }
}

/// The commonest leaves, inline, reading the objects' fields where CPython's
/// own inline functions do: a compact `int` (|v| < 2^30), a `float`, a `str`
/// with UTF-8. `false`: `obj` is none of those (or its UTF-8 cannot be had),
/// and the caller takes [`leaf`]'s general path. Runs no Python code and
/// leaves no exception set.
///
/// `alone`: the references `obj` has when only its container (and, read
/// from a snapshot, the snapshot) refers to it: such a `str` cannot occur
/// twice, and is not looked up in `strs`.
///
/// # Safety
/// `obj` is live, of type `tp`; attached.
#[inline(always)]
unsafe fn quick_leaf(
    out: &mut Vec<u8>,
    strs: &mut StrMemo,
    alone: sys::Py_ssize_t,
    obj: *mut sys::PyObject,
    tp: *mut sys::PyTypeObject,
) -> bool {
    // SAFETY (whole body): `obj` is live and of the compared exact type; a
    // str's UTF-8 stays valid while `obj` is held (by the caller).
    unsafe {
        if tp == &raw mut sys::PyLong_Type {
            match ffi::capi::long_compact_value(obj) {
                Some(v) => {
                    put_int(out, v);
                    true
                }
                None => false,
            }
        } else if tp == &raw mut sys::PyUnicode_Type {
            let ascii = ffi::capi::str_is_ascii(obj);
            let (p, len) = if ascii {
                // Its characters are its UTF-8, read in place (no call).
                ffi::capi::ascii_str_bytes(obj)
            } else {
                // (Free-threaded, making a str's UTF-8 takes its lock, which a
                // one-pass copy under its container's lock must not wait for:
                // such a str goes `leaf`'s way, which makes it first.)
                if !ffi::capi::str_utf8_ready(obj) {
                    return false;
                }
                let mut len: sys::Py_ssize_t = 0;
                let p = sys::PyUnicode_AsUTF8AndSize(obj, &mut len);
                if p.is_null() {
                    sys::PyErr_Clear(); // lone surrogates (or no memory): the general path
                    return false;
                }
                (p as *const u8, len as usize)
            };
            if strs.on && sys::Py_REFCNT(obj) > alone {
                // Maybe elsewhere in this node too (see `StrMemo`).
                match strs.see(obj) {
                    Some(Seen::Again(i)) => {
                        out.push(T_STR_AGAIN);
                        put_len(out, i as usize);
                        return true;
                    }
                    Some(Seen::Kept) => out.push(T_KEEP),
                    None => {}
                }
            }
            let hash = ffi::capi::str_cached_hash(obj);
            if hash != -1 {
                out.push(if ascii { T_ASCII_HASHED } else { T_STR_HASHED });
                out.extend_from_slice(&(hash as i64).to_le_bytes());
            } else {
                out.push(if ascii { T_ASCII } else { T_STR });
            }
            put_len(out, len);
            ffi::mem::extend_short(out, p, len);
            true
        } else if tp == &raw mut sys::PyFloat_Type {
            let b = ffi::capi::float_value(obj).to_le_bytes();
            out.extend_from_slice(&[T_FLOAT, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            true
        } else {
            false
        }
    }
}

/// [`quick_leaf`]'s leaves and `None`, `True`, `False`: what an inline
/// tuple ([`T_TUPLE_LEAVES`]) may hold.
///
/// # Safety
/// As [`quick_leaf`].
#[inline(always)]
unsafe fn inline_leaf(out: &mut Vec<u8>, strs: &mut StrMemo, obj: *mut sys::PyObject) -> bool {
    // SAFETY: forwarded; the singletons are compared by address only.
    unsafe {
        // Read in place from a container only it refers to: alone at 1.
        if quick_leaf(out, strs, 1, obj, (*obj).ob_type) {
            true
        } else if obj == sys::Py_None() {
            out.push(T_NONE);
            true
        } else if obj == sys::Py_True() {
            out.push(T_TRUE);
            true
        } else if obj == sys::Py_False() {
            out.push(T_FALSE);
            true
        } else {
            false
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_len(out, b.len());
    out.extend_from_slice(b);
}

struct Frame {
    node: u32,
    kind: Kind,
    /// The container (held by the builder's `keep`).
    obj: *mut sys::PyObject,
    /// Its items are read from it, one at a time (a tuple; a list with the
    /// GIL), rather than from `items`.
    direct: bool,
    /// The container's items (a dict's as key, value, key, value...), held.
    items: Vec<Owned>,
    pos: usize,
    /// Items encoded so far.
    count: usize,
    /// Its items, encoded (moved to the stream when it is done).
    out: Vec<u8>,
    /// The `str`s its items repeat.
    strs: StrMemo,
}

impl Frame {
    /// The references an item has when only this frame's container refers
    /// to it: the container's, and a snapshot's if the items come from one.
    fn alone(&self) -> sys::Py_ssize_t {
        if self.direct {
            1
        } else {
            2
        }
    }
}

struct Builder {
    nodes: Vec<Node>,
    order: Vec<u32>,
    stream: Vec<u8>,
    others: Vec<Value>,
    /// Container address -> node, once there are more than [`MEMO_SCAN_MAX`]
    /// nodes (empty until then: `keep` is scanned instead).
    memo: FxHashMap<usize, u32>,
    /// The memoized containers, node `i`'s at `keep[i]`, alive until the
    /// end: an address in the memo stays its object's.
    keep: Vec<Owned>,
    stack: Vec<Frame>,
    /// Finished frames' buffers, for the next frames.
    spare: Vec<Vec<u8>>,
    /// Where the root's reference is written (and dropped).
    root_out: Vec<u8>,
    /// The addresses of the lists and dicts copied in place (free-threaded:
    /// see [`Builder::inline_container`]). One met again means another
    /// thread moved it meanwhile: the conversion then starts again with
    /// [`Builder::in_place`] off.
    #[cfg(Py_GIL_DISABLED)]
    inlined: rustc_hash::FxHashSet<usize>,
    /// Whether lists and dicts may be copied in place (free-threaded: off
    /// for a second conversion, after one met again).
    #[cfg(Py_GIL_DISABLED)]
    in_place: bool,
    /// Set when a container in [`Builder::inlined`] was met again.
    #[cfg(Py_GIL_DISABLED)]
    met_again: bool,
}

/// Up to this many containers, the memo is a scan of the builder's `keep`
/// (no hashing): most values hold a few (a task's tuples and its argument,
/// say). Measured (3.14, put + get of a task-like tuple of 8 holding
/// two tuples and a list of 100 ints): hashing the 4 addresses into a map
/// was 7% of the cycles.
const MEMO_SCAN_MAX: usize = 32;

impl Builder {
    /// The node of container `obj`, if it has one.
    #[inline]
    fn memo_get(&self, obj: *mut sys::PyObject) -> Option<u32> {
        if self.memo.is_empty() {
            // At most MEMO_SCAN_MAX nodes (see `memo_add`).
            self.keep
                .iter()
                .position(|o| o.as_ptr() == obj)
                .map(|i| i as u32)
        } else {
            self.memo.get(&(obj as usize)).copied()
        }
    }

    /// Record node `i` of `obj`, just pushed on `keep`.
    #[inline]
    fn memo_add(&mut self, obj: *mut sys::PyObject, i: u32) {
        if self.keep.len() <= MEMO_SCAN_MAX {
            return;
        }
        if self.memo.is_empty() {
            // The map starts now: every node so far (this one included).
            self.memo.reserve(self.keep.len() * 2);
            for (j, o) in self.keep.iter().enumerate() {
                self.memo.insert(o.as_ptr() as usize, j as u32);
            }
        } else {
            self.memo.insert(obj as usize, i);
        }
    }
}

/// The items of a container as strong references, taken atomically with
/// respect to the container's own methods.
///
/// # Safety
/// `obj` is a live object of kind `kind`; attached.
unsafe fn snapshot(obj: *mut sys::PyObject, kind: Kind) -> PyResult<Vec<Owned>> {
    // SAFETY (whole body): `obj` is live and of the checked exact type;
    // indices are in range of the size read under the same section; taking
    // a reference (an incref) runs no Python code.
    unsafe {
        match kind {
            Kind::List => Ok(with_critical_section(obj, || {
                let n = sys::PyList_GET_SIZE(obj);
                (0..n)
                    .map(|i| Owned::from_borrowed(sys::PyList_GET_ITEM(obj, i)))
                    .collect()
            })),
            Kind::Tuple => {
                let n = sys::PyTuple_GET_SIZE(obj);
                Ok((0..n)
                    .map(|i| Owned::from_borrowed(sys::PyTuple_GET_ITEM(obj, i)))
                    .collect())
            }
            Kind::Dict => Ok(with_critical_section(obj, || {
                let mut v = Vec::with_capacity(2 * sys::PyDict_Size(obj).max(0) as usize);
                let mut pos: sys::Py_ssize_t = 0;
                let mut k = std::ptr::null_mut();
                let mut val = std::ptr::null_mut();
                while sys::PyDict_Next(obj, &mut pos, &mut k, &mut val) != 0 {
                    v.push(Owned::from_borrowed(k));
                    v.push(Owned::from_borrowed(val));
                }
                v
            })),
            Kind::Set | Kind::FrozenSet => {
                // A private list (its own lock taken inside on free-threaded
                // builds), then read as one.
                let l = Owned::from_new(sys::PySequence_List(obj))?;
                let n = sys::PyList_GET_SIZE(l.as_ptr());
                Ok((0..n)
                    .map(|i| Owned::from_borrowed(sys::PyList_GET_ITEM(l.as_ptr(), i)))
                    .collect())
            }
            Kind::ByteArray => unreachable!("bytearrays are copied whole"),
        }
    }
}

/// A bytearray's bytes. With the GIL no other thread runs during the copy;
/// free-threaded 3.14+ bytearrays take their critical section in every
/// method, so the copy is made under it. Free-threaded 3.13 bytearrays take
/// no lock at all: the copy is made under a buffer export, which makes a
/// concurrent resize fail with `BufferError` (in the resizing thread) rather
/// than free the bytes being read.
///
/// # Safety
/// `obj` is a live bytearray; attached.
unsafe fn bytearray_bytes(obj: *mut sys::PyObject) -> PyResult<Vec<u8>> {
    #[cfg(all(Py_GIL_DISABLED, not(Py_3_14)))]
    // SAFETY: the view is filled by a successful GetBuffer and released once;
    // `buf` holds `len` readable bytes until then.
    unsafe {
        let mut view = std::mem::MaybeUninit::<sys::Py_buffer>::uninit();
        if sys::PyObject_GetBuffer(obj, view.as_mut_ptr(), sys::PyBUF_SIMPLE) < 0 {
            return Err(PyErrSet);
        }
        let mut view = view.assume_init();
        let b = if view.len > 0 {
            std::slice::from_raw_parts(view.buf as *const u8, view.len as usize).to_vec()
        } else {
            Vec::new()
        };
        sys::PyBuffer_Release(&mut view);
        Ok(b)
    }
    #[cfg(not(all(Py_GIL_DISABLED, not(Py_3_14))))]
    // SAFETY: `obj` is a live bytearray; its size and storage are read
    // together with no other thread able to resize it (the GIL, or its
    // critical section), and copied before the section ends.
    unsafe {
        Ok(with_critical_section(obj, || {
            let n = sys::PyByteArray_Size(obj);
            let p = sys::PyByteArray_AsString(obj);
            if n <= 0 || p.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p as *const u8, n as usize).to_vec()
            }
        }))
    }
}

/// Encode leaf `obj` (not a container) to `out`; `Ok(false)`: it does not
/// cross natively. The common types inline, on one read of the type (the
/// same rules as [`native`], which takes the rest, its values kept in
/// `others`).
///
/// # Safety
/// `obj` is live, of type `tp`; attached.
unsafe fn leaf(
    out: &mut Vec<u8>,
    strs: &mut StrMemo,
    alone: sys::Py_ssize_t,
    others: &mut Vec<Value>,
    obj: *mut sys::PyObject,
    tp: *mut sys::PyTypeObject,
) -> PyResult<bool> {
    {
        // SAFETY (whole body): `obj` is live and of the compared exact type;
        // a str's UTF-8 and a bytes' data stay valid while `obj` is held.
        unsafe {
            // No container's lock is held here: a str's UTF-8 may be made
            // (under its own lock, free-threaded) for `quick_leaf` to take it.
            if tp == &raw mut sys::PyUnicode_Type
                && !ffi::capi::str_utf8_ready(obj)
                && sys::PyUnicode_AsUTF8AndSize(obj, std::ptr::null_mut()).is_null()
            {
                sys::PyErr_Clear(); // lone surrogates (or no memory): `native` below
            }
            if quick_leaf(out, strs, alone, obj, tp) {
                return Ok(true);
            }
            if tp == &raw mut sys::PyLong_Type {
                // Not compact: up to 64 bits inline, a bigger one below.
                let mut overflow = 0;
                let v = sys::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
                if overflow == 0 {
                    if v == -1 && !sys::PyErr_Occurred().is_null() {
                        return Err(PyErrSet);
                    }
                    put_int(out, v);
                    return Ok(true);
                }
            } else if tp == &raw mut sys::PyUnicode_Type {
                // A str without UTF-8 (lone surrogates): `native` encodes it.
            } else if obj == sys::Py_None() {
                out.push(T_NONE);
                return Ok(true);
            } else if tp == &raw mut sys::PyBool_Type {
                out.push(if obj == sys::Py_True() {
                    T_TRUE
                } else {
                    T_FALSE
                });
                return Ok(true);
            } else if tp == &raw mut sys::PyBytes_Type
                && (sys::PyBytes_Size(obj) as usize) < super::PIN_BYTES_FROM
            {
                put_bytes(out, T_BYTES, super::bytes_of(obj));
                return Ok(true);
            } else if tp == &raw mut sys::PyComplex_Type {
                let c = sys::PyComplex_AsCComplex(obj);
                out.push(T_COMPLEX);
                out.extend_from_slice(&c.real.to_le_bytes());
                out.extend_from_slice(&c.imag.to_le_bytes());
                return Ok(true);
            }
            // A shared value's converter may run Python code: `obj` is held
            // meanwhile (a list read in place no longer holds it for sure).
            let _held = Owned::from_borrowed(obj);
            match native(obj, 0, Mode::Leaf)? {
                None => Ok(false),
                Some(Value::BigInt(b)) => {
                    put_bytes(out, T_BIGINT, &b);
                    Ok(true)
                }
                Some(Value::StrRaw(b)) => {
                    put_bytes(out, T_STR_RAW, &b);
                    Ok(true)
                }
                Some(v) => {
                    out.push(T_OTHER);
                    put_len(out, others.len());
                    others.push(v);
                    Ok(true)
                }
            }
        }
    }
}

/// A dict's items, each by [`quick_leaf`], key, value, key, value... in its
/// order; `None` at the first item that is not one of those (`out` then
/// holds a part, for the caller to clear). The count of items written.
///
/// # Safety
/// `obj` is a live dict; attached, and no other thread can change the dict
/// until this returns: with the GIL (this runs no Python code), or inside
/// the dict's critical section (free-threaded; this never detaches, so the
/// section is never suspended).
#[inline(never)]
unsafe fn quick_dict(
    out: &mut Vec<u8>,
    strs: &mut StrMemo,
    obj: *mut sys::PyObject,
) -> Option<usize> {
    // SAFETY: forwarded: the borrowed key and value live as long as the
    // dict is unchanged, which it is until this returns.
    unsafe {
        out.reserve(sys::PyDict_Size(obj).max(0) as usize * 12 + 16);
        let mut pos: sys::Py_ssize_t = 0;
        let mut k = std::ptr::null_mut();
        let mut v = std::ptr::null_mut();
        let mut count = 0;
        while sys::PyDict_Next(obj, &mut pos, &mut k, &mut v) != 0 {
            // In place: a key or value only the dict refers to has one reference.
            if !quick_leaf(out, strs, 1, k, (*k).ob_type)
                || !quick_leaf(out, strs, 1, v, (*v).ob_type)
            {
                return None;
            }
            count += 2;
        }
        Some(count)
    }
}

/// A free-threaded list's items, each by [`quick_leaf`], in order, with no
/// snapshot; `None` at the first item that is not one of those (`out` then
/// holds a part, for the caller to clear). The count of items written.
///
/// # Safety
/// `obj` is a live list; attached, inside the list's critical section (the
/// lock its own methods take, so no other thread changes it until this
/// returns; this never detaches, so the section is never suspended).
#[cfg(Py_GIL_DISABLED)]
#[inline(never)]
unsafe fn quick_list(
    out: &mut Vec<u8>,
    strs: &mut StrMemo,
    obj: *mut sys::PyObject,
) -> Option<usize> {
    // SAFETY: forwarded: the list's size and items cannot change while its
    // section is held, so each index is in range and each item alive.
    unsafe {
        let n = sys::PyList_GET_SIZE(obj);
        out.reserve(n.max(0) as usize * 4 + 16);
        for i in 0..n {
            let child = sys::PyList_GET_ITEM(obj, i);
            if !quick_leaf(out, strs, 1, child, (*child).ob_type) {
                return None;
            }
        }
        Some(n.max(0) as usize)
    }
}

/// [`quick_dict`] (or, free-threaded, [`quick_list`]) for a container of
/// kind `kind`, in the one place that knows what makes the pass safe on
/// each build: the GIL, or the container's critical section. `None` if the
/// container is not wholly of quick leaves, or is of another kind (sets go
/// through a private list; tuples, and with the GIL lists, are read in place
/// anyway, see [`Builder::item`]).
///
/// # Safety
/// `obj` is a live object of kind `kind`; attached.
unsafe fn quick_container(
    out: &mut Vec<u8>,
    strs: &mut StrMemo,
    obj: *mut sys::PyObject,
    kind: Kind,
) -> Option<usize> {
    match kind {
        // SAFETY: a live dict; with the GIL nothing else runs during the
        // pass, and free-threaded the dict's section is held for it.
        Kind::Dict => unsafe { with_critical_section(obj, || quick_dict(out, strs, obj)) },
        // SAFETY: a live list, inside its section.
        #[cfg(Py_GIL_DISABLED)]
        Kind::List => unsafe { with_critical_section(obj, || quick_list(out, strs, obj)) },
        _ => None,
    }
}

/// Write container `obj`'s items to `out` as the inline container `tag`
/// (its length, then each item by [`inline_leaf`]); whether every item was
/// one (if not, `out` and `strs` are rolled back).
///
/// # Safety
/// `obj` is a live container of kind `kind` (a tuple, list or dict) that
/// nothing changes until this returns (see [`Builder::inline_container`]);
/// attached.
unsafe fn inline_leaves(
    out: &mut Vec<u8>,
    strs: &mut StrMemo,
    obj: *mut sys::PyObject,
    kind: Kind,
    tag: u8,
) -> bool {
    // SAFETY: forwarded: the count and items are read only, each item live
    // while its unchanged container holds it.
    unsafe {
        let (mark, strs_mark) = (out.len(), strs.mark());
        out.push(tag);
        let ok = match kind {
            Kind::Dict => {
                put_len(out, sys::PyDict_Size(obj).max(0) as usize);
                let (mut pos, mut k, mut v) = (0, std::ptr::null_mut(), std::ptr::null_mut());
                let mut ok = true;
                while ok && sys::PyDict_Next(obj, &mut pos, &mut k, &mut v) != 0 {
                    ok = inline_leaf(out, strs, k) && inline_leaf(out, strs, v);
                }
                ok
            }
            _ => {
                let list = matches!(kind, Kind::List);
                let n = if list {
                    sys::PyList_GET_SIZE(obj)
                } else {
                    sys::PyTuple_GET_SIZE(obj)
                };
                put_len(out, n as usize);
                (0..n).all(|k| {
                    inline_leaf(
                        out,
                        strs,
                        if list {
                            sys::PyList_GET_ITEM(obj, k)
                        } else {
                            sys::PyTuple_GET_ITEM(obj, k)
                        },
                    )
                })
            }
        };
        if !ok {
            out.truncate(mark);
            strs.rollback(strs_mark);
        }
        ok
    }
}

impl Builder {
    /// Whether the conversion stopped at a container copied in place met
    /// again (see [`Builder::inlined`]); never with the GIL.
    fn met_again(&self) -> bool {
        #[cfg(Py_GIL_DISABLED)]
        return self.met_again;
        #[cfg(not(Py_GIL_DISABLED))]
        false
    }

    /// The buffer of frame `t` (`None`: the root's reference).
    fn out(&mut self, t: Option<usize>) -> &mut Vec<u8> {
        match t {
            Some(t) => &mut self.stack[t].out,
            None => &mut self.root_out,
        }
    }

    /// Encode `obj` to `out`; `Ok(false)`: it (or a cycle through it) does
    /// not cross natively. A new container gets a node (and a frame, above
    /// the caller's, unless it is a bytearray).
    ///
    /// # Safety
    /// `obj` is live (held by the caller until this returns); attached.
    unsafe fn item(&mut self, t: Option<usize>, obj: *mut sys::PyObject) -> PyResult<bool> {
        // SAFETY: forwarded (the type of a live object).
        // (The field itself, as CPython's inline `Py_TYPE`: pyo3-ffi's is a
        // call on 3.14, a measurable part of a small item's cost.)
        let tp = unsafe { (*obj).ob_type };
        // The common leaves first, before the six container checks.
        let common = tp == &raw mut sys::PyLong_Type
            || tp == &raw mut sys::PyUnicode_Type
            || tp == &raw mut sys::PyFloat_Type;
        let kind = if common { None } else { kind_of_type(tp) };
        let Some(kind) = kind else {
            // (The root is a container: its memo is never used.)
            let mut root_strs = StrMemo::default();
            let (out, strs, alone) = match t {
                Some(t) => {
                    let f = &mut self.stack[t];
                    let alone = f.alone();
                    (&mut f.out, &mut f.strs, alone)
                }
                None => (&mut self.root_out, &mut root_strs, 1),
            };
            // SAFETY: forwarded; leaves never recurse into containers.
            return unsafe { leaf(out, strs, alone, &mut self.others, obj, tp) };
        };
        if let Some(t) = t {
            // SAFETY: forwarded (a live container of kind `kind`, held as
            // `item` says).
            if unsafe { self.inline_container(t, obj, kind) } {
                return Ok(true);
            }
        }
        if let Some(i) = self.memo_get(obj) {
            let pending = self.nodes[i as usize].len == PENDING;
            if pending && matches!(kind, Kind::Tuple | Kind::FrozenSet) {
                return Ok(false); // a cycle closing on an immutable container
            }
            self.nodes[i as usize].early |= pending;
            let out = self.out(t);
            out.push(T_REF);
            put_len(out, i as usize);
            return Ok(true);
        }
        // (A container copied in place earlier, met again: see `inlined`.)
        #[cfg(Py_GIL_DISABLED)]
        if self.inlined.contains(&(obj as usize)) {
            self.met_again = true;
            return Ok(false);
        }
        let Ok(i) = u32::try_from(self.nodes.len()) else {
            return Ok(false); // 4 billion containers: let pickle say what it thinks
        };
        // SAFETY: `obj` is live.
        self.keep.push(unsafe { Owned::from_borrowed(obj) });
        self.memo_add(obj, i);
        let out = self.out(t);
        out.push(T_REF);
        put_len(out, i as usize);
        if let Kind::ByteArray = kind {
            // SAFETY: a live bytearray.
            let b = unsafe { bytearray_bytes(obj)? };
            let start = self.stream.len();
            self.stream.extend_from_slice(&b);
            self.nodes.push(Node {
                kind,
                start,
                end: self.stream.len(),
                len: b.len(),
                early: false,
            });
            self.order.push(i);
        } else {
            self.nodes.push(Node {
                kind,
                start: 0,
                end: 0,
                len: PENDING,
                early: false,
            });
            // A tuple's items live as long as the tuple (held). With the GIL
            // a list is read in place too: encoding a builtin scalar runs no
            // Python code and releases nothing, so nothing can change the
            // list meanwhile; what may (a shared value's converter) is given
            // a reference it holds, and the list's size and item are read
            // again for every item. Free-threaded lists, dicts and sets are
            // snapshotted (see `snapshot`).
            let direct = matches!(kind, Kind::Tuple)
                || (cfg!(not(Py_GIL_DISABLED)) && matches!(kind, Kind::List));
            // SAFETY: `obj` is a live container (its length is read only).
            let n = unsafe { sys::PyObject_Length(obj) }.max(0) as usize;
            let mut buf = if n >= POOL_FROM_ITEMS {
                take_buffer()
            } else {
                self.spare.pop().unwrap_or_default()
            };
            buf.clear();
            // A container wholly of the commonest leaves is encoded in place,
            // in one pass, with no snapshot, where `quick_container` takes
            // its kind (a dict; free-threaded, a list): `quick_leaf` runs no
            // Python code and never detaches, so nothing can change the
            // container meanwhile (the GIL, or its critical section held for
            // the pass). At the first other item the pass is dropped and the
            // container goes the general way.
            // SAFETY: `obj` is live and of kind `kind`.
            let mut strs = StrMemo::new(n);
            if let Some(count) = unsafe { quick_container(&mut buf, &mut strs, obj, kind) } {
                self.stack.push(Frame {
                    node: i,
                    kind,
                    obj,
                    direct: false,
                    items: Vec::new(),
                    pos: 0,
                    count,
                    out: buf,
                    strs,
                });
                return Ok(true);
            }
            buf.clear();
            strs.clear();
            let (items, n) = if direct {
                (Vec::new(), n)
            } else {
                // SAFETY: `obj` is live and of kind `kind`.
                let items = unsafe { snapshot(obj, kind)? };
                let n = items.len();
                (items, n)
            };
            // About what small items take: one growth at most, usually none.
            buf.reserve(n * 4 + 16);
            self.stack.push(Frame {
                node: i,
                kind,
                obj,
                direct,
                items,
                pos: 0,
                count: 0,
                out: buf,
                strs,
            });
        }
        Ok(true)
    }

    /// Encode container `obj` (of kind `kind`), an item of frame `t`'s
    /// container, inline ([`T_TUPLE_LEAVES`], [`T_LIST_LEAVES`],
    /// [`T_DICT_LEAVES`]) if nothing else can reach it and all its items are
    /// [`inline_leaf`]'s; whether it was. Most containers in a large value
    /// are such rows and records (`[(k, v), ...]`, `[{"id": 1, ...}, ...]`):
    /// measured on 3.14 (put + get in one thread), a node each (memo, frame,
    /// buffer) made a list of 1,000 pairs 1.4x slower than pickle's
    /// dumps+loads, and a list of 1,000 three-key dicts as slow.
    ///
    /// Nothing else can reach it when the only references to it are its
    /// container's and, for a frame reading a snapshot, the snapshot's: it
    /// then occurs once in the value, so copying it in place keeps every
    /// identity (and it cannot be on a cycle). With the GIL nothing can
    /// change it or its count while this runs ([`inline_leaf`] runs no
    /// Python code). Free-threaded, another thread may take a reference
    /// just after the count was read: a tuple is then at worst copied as
    /// one more equal tuple of leaves; a list or dict is read under its
    /// critical section (the lock its own methods take, so the pass sees
    /// one state of it), and its address is recorded in
    /// [`Builder::inlined`], so that should the racing thread put it in a
    /// container the conversion reaches later, the conversion starts again
    /// with every list and dict a node of its own (memoized: one object
    /// arrives as one), instead of the object arriving as two. (Not the
    /// pickle way: free-threaded 3.13's pickler reads a list that another
    /// thread changes with no lock, and crashed in the test of this race.)
    /// Measured (3.13t, put + get of 1,000 three-key dicts in one thread):
    /// a node each made the copy slower than pickle's dumps+loads.
    ///
    /// # Safety
    /// `obj` is a live container of kind `kind`, an item of frame `t`'s
    /// container, held by it (or its snapshot) while this runs; attached.
    #[inline(never)]
    unsafe fn inline_container(&mut self, t: usize, obj: *mut sys::PyObject, kind: Kind) -> bool {
        let tag = match kind {
            Kind::Tuple => T_TUPLE_LEAVES,
            Kind::List => T_LIST_LEAVES,
            Kind::Dict => T_DICT_LEAVES,
            _ => return false,
        };
        let frame = &mut self.stack[t];
        let alone = frame.alone();
        // SAFETY: forwarded: `obj` is live and of kind `kind`.
        if unsafe { sys::Py_REFCNT(obj) } != alone {
            return false;
        }
        // Copied in place once already: it must keep its identity (`item`
        // then has the conversion start again).
        #[cfg(Py_GIL_DISABLED)]
        if !matches!(kind, Kind::Tuple)
            && (!self.in_place || self.inlined.contains(&(obj as usize)))
        {
            return false;
        }
        let (out, strs) = (&mut frame.out, &mut frame.strs);
        // SAFETY: forwarded: a live container of kind `kind`, unchanged while
        // the pass runs (a tuple; a list or dict with the GIL, as nothing in
        // the pass runs Python code, or free-threaded inside its critical
        // section, which the pass never suspends: it never detaches).
        let ok = unsafe {
            if matches!(kind, Kind::Tuple) {
                inline_leaves(out, strs, obj, kind, tag)
            } else {
                with_critical_section(obj, || inline_leaves(out, strs, obj, kind, tag))
            }
        };
        #[cfg(Py_GIL_DISABLED)]
        if ok && !matches!(kind, Kind::Tuple) {
            self.inlined.insert(obj as usize);
        }
        ok
    }

    fn finish(&mut self, f: Frame) {
        let node = &mut self.nodes[f.node as usize];
        node.start = self.stream.len();
        if self.stream.is_empty() {
            // The first container done (the only one of a flat value): its
            // buffer becomes the stream, no copy.
            let mut out = f.out;
            std::mem::swap(&mut self.stream, &mut out);
            self.spare.push(out);
        } else {
            self.stream.extend_from_slice(&f.out);
            self.spare.push(f.out);
        }
        node.end = self.stream.len();
        node.len = f.count;
        self.order.push(f.node);
    }
}

/// `root` (a container: [`is_container`]) as a graph; `Ok(None)` if some
/// part of it does not cross natively.
///
/// # Safety
/// `root` is a live object of the attached interpreter.
pub unsafe fn convert(root: *mut sys::PyObject) -> PyResult<Option<Graph>> {
    // SAFETY: forwarded.
    let first = unsafe { convert_with(root, true)? };
    #[cfg(Py_GIL_DISABLED)]
    if let Err(true) = first {
        // A list or dict copied in place was met again (another thread
        // moved it meanwhile): again, with every one a memoized node.
        // SAFETY: forwarded.
        return unsafe { convert_with(root, false) }.map(Result::ok);
    }
    Ok(first.ok())
}

/// [`convert`], with lists and dicts copied in place or not (free-threaded;
/// with the GIL they always may be); `Err(met_again)` if some part does not
/// cross natively, `met_again` telling whether that was a container copied
/// in place met again (free-threaded: see [`Builder::inlined`]).
///
/// # Safety
/// As [`convert`].
unsafe fn convert_with(root: *mut sys::PyObject, in_place: bool) -> PyResult<Result<Graph, bool>> {
    #[cfg(not(Py_GIL_DISABLED))]
    let _ = in_place;
    let mut b = Builder {
        nodes: Vec::new(),
        order: Vec::new(),
        stream: Vec::new(),
        others: Vec::new(),
        memo: FxHashMap::default(),
        keep: Vec::new(),
        stack: Vec::new(),
        spare: Vec::new(),
        root_out: Vec::new(),
        #[cfg(Py_GIL_DISABLED)]
        inlined: Default::default(),
        #[cfg(Py_GIL_DISABLED)]
        in_place,
        #[cfg(Py_GIL_DISABLED)]
        met_again: false,
    };
    // SAFETY: forwarded.
    if !unsafe { b.item(None, root)? } {
        return Ok(Err(b.met_again()));
    }
    while let Some(t) = b.stack.len().checked_sub(1) {
        let top = &mut b.stack[t];
        let alone = top.alone();
        // A run of the commonest leaves, encoded in one tight loop (most of
        // a flat container's items): `quick_leaf` runs no Python code, so a
        // list read in place cannot change under it.
        // SAFETY: as for the general path below: the container is live and
        // of its frame's kind, indices are below the size read, and each
        // item is held (by its snapshot, or by its container).
        unsafe {
            // The item array and the position are held in locals for the
            // run: through `top` they were loaded from and stored to the
            // frame at every item (the stream's growth is a call the
            // compiler must assume could change them). Counted by callgrind
            // on 3.14 (put + get in one thread of a list of 100 small ints):
            // 15,030 -> 14,460 instructions.
            let items: &[*mut sys::PyObject] = if top.direct {
                let (n, base) = match top.kind {
                    Kind::List => (
                        sys::PyList_GET_SIZE(top.obj),
                        (*(top.obj as *mut sys::PyListObject)).ob_item as *const _,
                    ),
                    _ => (
                        sys::PyTuple_GET_SIZE(top.obj),
                        (*(top.obj as *mut sys::PyTupleObject)).ob_item.as_ptr() as *const _,
                    ),
                };
                // A list's item array stays put while no Python code runs
                // (`quick_leaf` runs none); an empty list's may be NULL.
                if n > 0 {
                    std::slice::from_raw_parts(base, n as usize)
                } else {
                    &[]
                }
            } else {
                // `Owned` is one object pointer (`repr(transparent)`).
                std::slice::from_raw_parts(top.items.as_ptr() as *const _, top.items.len())
            };
            let start = top.pos;
            let mut pos = start;
            let (out, strs) = (&mut top.out, &mut top.strs);
            while let Some(&child) = items.get(pos) {
                if !quick_leaf(out, strs, alone, child, (*child).ob_type) {
                    break;
                }
                pos += 1;
            }
            top.pos = pos;
            top.count += pos - start;
        }
        let child = if top.direct {
            // SAFETY: the frame's container is live (held by `keep`) and a
            // list or tuple as its kind says; the index is below the size
            // read just now.
            unsafe {
                let n = match top.kind {
                    Kind::List => sys::PyList_GET_SIZE(top.obj),
                    _ => sys::PyTuple_GET_SIZE(top.obj),
                };
                if (top.pos as sys::Py_ssize_t) < n {
                    Some(match top.kind {
                        Kind::List => sys::PyList_GET_ITEM(top.obj, top.pos as sys::Py_ssize_t),
                        _ => sys::PyTuple_GET_ITEM(top.obj, top.pos as sys::Py_ssize_t),
                    })
                } else {
                    None
                }
            }
        } else {
            top.items.get(top.pos).map(|o| o.as_ptr())
        };
        let Some(child) = child else {
            let f = b.stack.pop().expect("a frame");
            b.finish(f);
            continue;
        };
        top.pos += 1;
        // SAFETY: `child` is held by frame `t` (its snapshot, or its
        // container while no Python code runs: `item` takes a reference
        // before anything that could run some), and frame `t` stays on the
        // stack until after this returns (new frames go above it).
        if !unsafe { b.item(Some(t), child)? } {
            return Ok(Err(b.met_again()));
        }
        b.stack[t].count += 1;
    }
    // A large container's buffer that did not become the stream (a nested
    // value's), back to the pool.
    for v in b.spare.drain(..) {
        give_buffer(v);
    }
    Ok(Ok(Graph {
        nodes: b.nodes,
        order: b.order,
        stream: b.stream,
        others: b.others,
    }))
}

fn broken() -> PyErrSet {
    ffi::raise(
        ffi::Exc::SystemError,
        "crossinterp: a container crossed in a form it cannot be rebuilt from",
    )
}

/// A reader of one node's items.
struct Reader<'a> {
    g: &'a Graph,
    pos: usize,
    end: usize,
    /// The node's remembered `str`s ([`T_KEEP`]), in order.
    strs: Vec<Owned>,
    /// Scratch for a dict's pairs before the dict is made ([`Reader::dict`]),
    /// empty between dicts: a list's records reuse one buffer.
    pairs: Vec<Owned>,
}

impl Reader<'_> {
    #[inline(always)]
    fn byte(&mut self) -> PyResult<u8> {
        if self.pos >= self.end {
            return Err(broken());
        }
        self.pos += 1;
        Ok(self.g.stream[self.pos - 1])
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> PyResult<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.end)
            .ok_or_else(broken)?;
        let s = &self.g.stream[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[inline(always)]
    fn len(&mut self) -> PyResult<usize> {
        // One byte: the common case (small ints, short strings, few nodes).
        if self.pos < self.end && self.g.stream[self.pos] < 0x80 {
            self.pos += 1;
            return Ok(self.g.stream[self.pos - 1] as usize);
        }
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(broken())
    }

    #[inline(always)]
    fn fixed<const N: usize>(&mut self) -> PyResult<[u8; N]> {
        let b = self.take(N)?;
        b.try_into().map_err(|_| broken())
    }

    fn f64(&mut self) -> PyResult<f64> {
        Ok(f64::from_le_bytes(self.fixed()?))
    }

    /// An inline container's item: a leaf only (no nested container, no
    /// reference to a node).
    #[inline(always)]
    fn next_leaf(&mut self, objs: &[Option<Owned>]) -> PyResult<Owned> {
        if matches!(
            self.g.stream.get(self.pos),
            Some(&(T_TUPLE_LEAVES | T_LIST_LEAVES | T_DICT_LEAVES | T_REF | T_OTHER))
        ) {
            return Err(broken());
        }
        self.next(objs)
    }

    /// The next `n` key-value pairs (leaves only, for an inline dict:
    /// `LEAVES`) and then the dict of them ([`dict_of_pairs`]).
    fn dict<const LEAVES: bool>(&mut self, n: usize, objs: &[Option<Owned>]) -> PyResult<Owned> {
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.reserve(2 * n);
        let mut got = Ok(());
        for _ in 0..2 * n {
            let item = if LEAVES {
                self.next_leaf(objs)
            } else {
                self.next(objs)
            };
            match item {
                Ok(o) => pairs.push(o),
                Err(e) => {
                    got = Err(e);
                    break;
                }
            }
        }
        // SAFETY: attached (the caller's); an even count of live objects.
        let d = got.and_then(|()| unsafe { dict_of_pairs(&pairs) });
        pairs.clear();
        self.pairs = pairs;
        d
    }

    /// An inline container (its tag read): its leaves, rebuilt.
    #[inline(never)]
    fn inline(&mut self, tag: u8, objs: &[Option<Owned>]) -> PyResult<Owned> {
        let n = self.len()?;
        // Each item takes a byte at least: a length beyond the span is broken.
        let items = if tag == T_DICT_LEAVES {
            n.checked_mul(2)
        } else {
            Some(n)
        };
        if items.is_none_or(|m| m > self.end - self.pos) {
            return Err(broken());
        }
        // SAFETY (whole body): attached (the caller's); the constructors and
        // setters get objects of their types, and a new tuple's or list's
        // slots (NULL at creation) are each set once, below the size given.
        unsafe {
            if tag == T_DICT_LEAVES {
                return self.dict::<true>(n, objs);
            }
            let c = Owned::from_new(match tag {
                T_TUPLE_LEAVES => sys::PyTuple_New(n as sys::Py_ssize_t),
                _ => sys::PyList_New(n as sys::Py_ssize_t),
            })?;
            for k in 0..n as sys::Py_ssize_t {
                match tag {
                    T_TUPLE_LEAVES => {
                        sys::PyTuple_SET_ITEM(c.as_ptr(), k, self.next_leaf(objs)?.into_ptr())
                    }
                    _ => sys::PyList_SET_ITEM(c.as_ptr(), k, self.next_leaf(objs)?.into_ptr()),
                }
            }
            Ok(c)
        }
    }

    /// A `str` item whose tag (`T_STR`, `T_STR_HASHED`, `T_ASCII` or
    /// `T_ASCII_HASHED`) was just read. Apart from [`Reader::next`] so that
    /// `next` does not call itself for a [`T_KEEP`]: a function that calls
    /// itself is never inlined, and `next` was a call per item (~10
    /// instructions of its ~40 for an int).
    #[inline(always)]
    fn str_item(&mut self, tag: u8) -> PyResult<Owned> {
        let hash = if matches!(tag, T_ASCII_HASHED | T_STR_HASHED) {
            Some(i64::from_le_bytes(self.fixed()?) as sys::Py_hash_t)
        } else {
            None
        };
        let n = self.len()?;
        let b = self.take(n)?;
        // SAFETY: attached (the caller's); `T_ASCII*` bytes are ASCII (the
        // sender read the str's kind), `T_STR*` ones UTF-8 (copied from
        // CPython's own UTF-8 of a str).
        unsafe {
            let s = Owned::from_new(if matches!(tag, T_ASCII_HASHED | T_ASCII) {
                ffi::capi::ascii_str_new(b)
            } else {
                sys::PyUnicode_FromStringAndSize(b.as_ptr() as *const c_char, n as sys::Py_ssize_t)
            })?;
            if let Some(hash) = hash {
                // Just made here: no other thread has it yet (a shared
                // singleton is left alone: `str_set_hash`).
                ffi::capi::str_set_hash(s.as_ptr(), hash);
            }
            Ok(s)
        }
    }

    /// The next item as an object.
    #[inline(always)]
    fn next(&mut self, objs: &[Option<Owned>]) -> PyResult<Owned> {
        let tag = self.byte()?;
        // SAFETY (whole match): attached (the caller's); a ref's object is
        // live in `objs`; the constructors get the stream's bytes (`T_STR`
        // ones are UTF-8: copied from CPython's own UTF-8 of a str).
        unsafe {
            match tag {
                T_I8 => ffi::new_int(self.fixed::<1>()?[0] as i8 as i64),
                T_I32 => ffi::new_int(i32::from_le_bytes(self.fixed()?) as i64),
                T_ASCII_HASHED | T_STR_HASHED | T_ASCII | T_STR => self.str_item(tag),
                T_NONE => Ok(Owned::from_borrowed(sys::Py_None())),
                T_FALSE => Ok(Owned::from_borrowed(sys::Py_False())),
                T_TRUE => Ok(Owned::from_borrowed(sys::Py_True())),
                T_INT => {
                    let z = self.len()? as u64;
                    ffi::new_int(((z >> 1) as i64) ^ -((z & 1) as i64))
                }
                T_FLOAT => Owned::from_new(sys::PyFloat_FromDouble(self.f64()?)),
                T_COMPLEX => {
                    let (re, im) = (self.f64()?, self.f64()?);
                    Owned::from_new(sys::PyComplex_FromDoubles(re, im))
                }
                T_STR_RAW | T_BYTES | T_BIGINT => {
                    let n = self.len()?;
                    let b = self.take(n)?;
                    let (p, n) = (b.as_ptr(), b.len() as sys::Py_ssize_t);
                    Owned::from_new(match tag {
                        T_STR_RAW => sys::PyUnicode_DecodeUTF8(
                            p as *const c_char,
                            n,
                            crate::cstr!("surrogatepass").as_ptr(),
                        ),
                        T_BYTES => sys::PyBytes_FromStringAndSize(p as *const c_char, n),
                        _ => sys::PyLong_FromNativeBytes(p.cast(), n as usize, 1),
                    })
                }
                T_TUPLE_LEAVES | T_LIST_LEAVES | T_DICT_LEAVES => self.inline(tag, objs),
                T_KEEP => {
                    let tag = self.byte()?;
                    if !matches!(tag, T_STR | T_STR_HASHED | T_ASCII | T_ASCII_HASHED) {
                        return Err(broken());
                    }
                    let s = self.str_item(tag)?;
                    self.strs.push(Owned::from_borrowed(s.as_ptr()));
                    Ok(s)
                }
                T_STR_AGAIN => {
                    let i = self.len()?;
                    match self.strs.get(i) {
                        Some(s) => Ok(Owned::from_borrowed(s.as_ptr())),
                        None => Err(broken()),
                    }
                }
                T_REF => match objs.get(self.len()?) {
                    Some(Some(o)) => Ok(Owned::from_borrowed(o.as_ptr())),
                    _ => Err(broken()),
                },
                T_OTHER => match self.g.others.get(self.len()?) {
                    Some(v) => super::from_value(v),
                    None => Err(broken()),
                },
                _ => Err(broken()),
            }
        }
    }
}

/// A new dict of `pairs` (key, value, key, value...), in order: one
/// presized table, the compact one for `str` keys when every key is an
/// exact `str`, as the dict a literal or pickle makes (`_PyDict_NewPresized`
/// plus inserts made the general table, 24-byte entries against 16: a
/// 10,000-entry `str`->`int` dict took 294,992 bytes where its original
/// took 207,616).
///
/// # Safety
/// Attached; `pairs` has an even length.
unsafe fn dict_of_pairs(pairs: &[Owned]) -> PyResult<Owned> {
    // `Owned` is one object pointer (`repr(transparent)`): the slice reads
    // as the keys at even places and the values at odd ones.
    let p = pairs.as_ptr() as *const *mut sys::PyObject;
    // SAFETY: attached (the caller's); `pairs.len() / 2` pairs of live
    // objects, which the call borrows (it takes its own references).
    unsafe {
        Owned::from_new(ffi::capi::_PyDict_FromItems(
            p,
            2,
            p.wrapping_add(1),
            2,
            (pairs.len() / 2) as sys::Py_ssize_t,
        ))
    }
}

/// Build the graph's objects in the attached interpreter; the root's.
pub fn build(g: &Graph) -> PyResult<Owned> {
    let mut objs: Vec<Option<Owned>> = Vec::with_capacity(g.nodes.len());
    // First every list and set, and every dict a cycle closes on, empty (a
    // bytearray whole), so that a cycle can name them before they are
    // filled; the other dicts are made at their turn (`dict_of_pairs`).
    // SAFETY (both loops): attached; every constructor and setter gets objects
    // of the type it takes, and list and tuple indices below the size given
    // at creation (whose slots start NULL and are each set once here; a list
    // dropped half-filled releases only what it holds).
    unsafe {
        for node in &g.nodes {
            objs.push(match node.kind {
                Kind::List => Some(Owned::from_new(sys::PyList_New(
                    node.len as sys::Py_ssize_t,
                ))?),
                Kind::Dict if node.early => Some(Owned::from_new(ffi::capi::_PyDict_NewPresized(
                    (node.len / 2) as sys::Py_ssize_t,
                ))?),
                Kind::Set => Some(Owned::from_new(sys::PySet_New(std::ptr::null_mut()))?),
                Kind::ByteArray => {
                    let b = g.stream.get(node.start..node.end).ok_or_else(broken)?;
                    Some(Owned::from_new(sys::PyByteArray_FromStringAndSize(
                        b.as_ptr() as *const c_char,
                        b.len() as sys::Py_ssize_t,
                    ))?)
                }
                Kind::Dict | Kind::Tuple | Kind::FrozenSet => None,
            });
        }
        for &i in &g.order {
            let i = i as usize;
            let node = g.nodes[i];
            if node.len == PENDING {
                return Err(broken());
            }
            let mut r = Reader {
                g,
                pos: node.start,
                end: node.end,
                strs: Vec::new(),
                pairs: Vec::new(),
            };
            match node.kind {
                Kind::List => {
                    let l = objs[i].as_ref().ok_or_else(broken)?.as_ptr();
                    // The new list's item array, of `node.len` NULL slots
                    // (it never moves: nothing else has the list yet), held
                    // in a local rather than reloaded at every item.
                    let slots = (*(l as *mut sys::PyListObject)).ob_item;
                    for k in 0..node.len {
                        slots.add(k).write(r.next(&objs)?.into_ptr());
                    }
                }
                Kind::Dict if node.early => {
                    let d = objs[i].as_ref().ok_or_else(broken)?.as_ptr();
                    for _ in 0..node.len / 2 {
                        let k = r.next(&objs)?;
                        let v = r.next(&objs)?;
                        if sys::PyDict_SetItem(d, k.as_ptr(), v.as_ptr()) < 0 {
                            return Err(PyErrSet);
                        }
                    }
                }
                Kind::Dict => objs[i] = Some(r.dict::<false>(node.len / 2, &objs)?),
                Kind::Set => {
                    let s = objs[i].as_ref().ok_or_else(broken)?.as_ptr();
                    for _ in 0..node.len {
                        if sys::PySet_Add(s, r.next(&objs)?.as_ptr()) < 0 {
                            return Err(PyErrSet);
                        }
                    }
                }
                Kind::Tuple => {
                    let t = Owned::from_new(sys::PyTuple_New(node.len as sys::Py_ssize_t))?;
                    for k in 0..node.len {
                        let o = r.next(&objs)?;
                        // A new tuple: its slots are set once, here.
                        sys::PyTuple_SET_ITEM(t.as_ptr(), k as sys::Py_ssize_t, o.into_ptr());
                    }
                    objs[i] = Some(t);
                }
                Kind::FrozenSet => {
                    // PySet_Add may fill a frozenset no one else has seen yet.
                    let s = Owned::from_new(sys::PyFrozenSet_New(std::ptr::null_mut()))?;
                    for _ in 0..node.len {
                        if sys::PySet_Add(s.as_ptr(), r.next(&objs)?.as_ptr()) < 0 {
                            return Err(PyErrSet);
                        }
                    }
                    objs[i] = Some(s);
                }
                Kind::ByteArray => {}
            }
        }
    }
    objs.into_iter().next().flatten().ok_or_else(broken)
}
