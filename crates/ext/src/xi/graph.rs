//! Native copies of containers: `list`, `tuple`, `dict`, `set`, `frozenset`
//! and `bytearray` (exact types only), nested in any way with each other and
//! with the values [`super::native`] copies or shares.
//!
//! A container crosses as a [`Graph`]: a flat table of nodes, one per
//! distinct container object (a memo keyed by the object's address, the
//! objects kept alive for the whole conversion), whose items are either a
//! leaf [`Value`] or a reference to another node. So:
//!
//! - **Shared substructure keeps its identity**, as with pickle: `[a, a]`
//!   rebuilds as a list holding the same object twice, and a DAG crosses in
//!   time and size linear in its distinct containers.
//! - **Cycles are kept**, as with pickle, when they close on a mutable
//!   container (`l.append(l)`, `d["self"] = d`, `l = [(l,)]` entered at the
//!   list): the receiver creates every list, dict and set empty first, then
//!   fills them. A cycle that closes on a tuple or frozenset still being
//!   converted (a tuple entered before the list that holds it) cannot be
//!   rebuilt bottom-up: the whole value is then pickled instead, and pickle
//!   keeps that cycle too. Nothing is refused for its shape.
//! - **No recursion on the C stack**: conversion walks an explicit stack and
//!   the rebuild goes through the node table in the order conversion
//!   finished the nodes (children first), so 100,000 nested lists cross
//!   like any other value, on any thread's stack. Dropping, cloning or
//!   printing a graph is flat too.
//! - **Mutation while converting cannot crash**: each container's items are
//!   snapshotted as strong references before any of them is looked at — a
//!   list or dict under its critical section on free-threaded builds (the
//!   lock its own methods take), a set through `PySequence_List` (which
//!   takes it), a bytearray under its critical section (free-threaded
//!   3.13, whose bytearrays lock nothing: under a buffer export, so a
//!   concurrent resize raises `BufferError` in the resizing thread).
//!   A concurrent mutation lands before or after the snapshot, never in it.
//!
//! Any item that does not cross natively makes the whole value go the old
//! way (pickle, or `NotShareableError` with `strict=True`): a container is
//! never half native, half pickled, so identity across it is never split.
//! Subclasses (an `OrderedDict`, a `defaultdict`, a `list` subclass) are not
//! containers here and are pickled, so their type survives.

use super::{native, Mode, Value};
use crate::ffi::capi::with_critical_section;
use crate::ffi::{self, sys, Owned, PyErrSet, PyResult};
use std::collections::HashMap;
use std::ffi::c_char;

/// An item of a container: a leaf value, or another container of the graph.
#[derive(Debug, Clone)]
pub enum Item {
    Ref(u32),
    Val(Value),
}

#[derive(Debug, Clone)]
enum Node {
    /// Being converted (never in a finished graph).
    Pending,
    List(Vec<Item>),
    Tuple(Vec<Item>),
    /// Pairs in the dict's order.
    Dict(Vec<(Item, Item)>),
    Set(Vec<Item>),
    FrozenSet(Vec<Item>),
    ByteArray(Vec<u8>),
}

/// Containers in transit: node 0 is the root.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    /// Every node, each after the nodes it holds (except the mutable ones
    /// still being converted when it was reached: a cycle).
    order: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
    ByteArray,
}

/// # Safety
/// `obj` is a live object; attached.
unsafe fn kind_of(obj: *mut sys::PyObject) -> Option<Kind> {
    // SAFETY: forwarded; exact type checks read the type pointer only.
    unsafe {
        if sys::PyList_CheckExact(obj) != 0 {
            Some(Kind::List)
        } else if sys::PyTuple_CheckExact(obj) != 0 {
            Some(Kind::Tuple)
        } else if sys::PyDict_CheckExact(obj) != 0 {
            Some(Kind::Dict)
        } else if sys::PySet_CheckExact(obj) != 0 {
            Some(Kind::Set)
        } else if sys::PyFrozenSet_CheckExact(obj) != 0 {
            Some(Kind::FrozenSet)
        } else if sys::PyByteArray_CheckExact(obj) != 0 {
            Some(Kind::ByteArray)
        } else {
            None
        }
    }
}

/// Whether `obj` is one of the containers this module copies.
///
/// # Safety
/// `obj` is a live object; attached.
pub unsafe fn is_container(obj: *mut sys::PyObject) -> bool {
    // SAFETY: forwarded.
    unsafe { kind_of(obj).is_some() }
}

struct Frame {
    node: u32,
    kind: Kind,
    /// The container's items (a dict's as key, value, key, value...), held.
    items: Vec<Owned>,
    pos: usize,
    out: Vec<Item>,
}

struct Builder {
    nodes: Vec<Node>,
    order: Vec<u32>,
    memo: HashMap<usize, u32>,
    /// The memoized containers, alive until the end: an address in `memo`
    /// stays its object's.
    keep: Vec<Owned>,
    stack: Vec<Frame>,
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

impl Builder {
    /// The item for `obj`; `Ok(None)`: it (or a cycle through it) does not
    /// cross natively.
    ///
    /// # Safety
    /// `obj` is live (held by the caller until this returns); attached.
    unsafe fn item(&mut self, obj: *mut sys::PyObject) -> PyResult<Option<Item>> {
        // SAFETY: forwarded.
        let Some(kind) = (unsafe { kind_of(obj) }) else {
            // SAFETY: forwarded; leaves never recurse into containers.
            return Ok(unsafe { native(obj, 0, Mode::Leaf)? }.map(Item::Val));
        };
        if let Some(&i) = self.memo.get(&(obj as usize)) {
            let pending = matches!(self.nodes[i as usize], Node::Pending);
            if pending && matches!(kind, Kind::Tuple | Kind::FrozenSet) {
                return Ok(None); // a cycle closing on an immutable container
            }
            return Ok(Some(Item::Ref(i)));
        }
        let Ok(i) = u32::try_from(self.nodes.len()) else {
            return Ok(None); // 4 billion containers: let pickle say what it thinks
        };
        self.memo.insert(obj as usize, i);
        // SAFETY: `obj` is live.
        self.keep.push(unsafe { Owned::from_borrowed(obj) });
        if kind == Kind::ByteArray {
            // SAFETY: a live bytearray.
            self.nodes
                .push(Node::ByteArray(unsafe { bytearray_bytes(obj)? }));
            self.order.push(i);
        } else {
            self.nodes.push(Node::Pending);
            // SAFETY: `obj` is live and of kind `kind`.
            let items = unsafe { snapshot(obj, kind)? };
            self.stack.push(Frame {
                node: i,
                kind,
                out: Vec::with_capacity(items.len()),
                items,
                pos: 0,
            });
        }
        Ok(Some(Item::Ref(i)))
    }

    fn finish(&mut self, f: Frame) {
        let node = match f.kind {
            Kind::List => Node::List(f.out),
            Kind::Tuple => Node::Tuple(f.out),
            Kind::Set => Node::Set(f.out),
            Kind::FrozenSet => Node::FrozenSet(f.out),
            Kind::Dict => {
                let mut pairs = Vec::with_capacity(f.out.len() / 2);
                let mut it = f.out.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Node::Dict(pairs)
            }
            Kind::ByteArray => unreachable!("bytearrays have no frame"),
        };
        self.nodes[f.node as usize] = node;
        self.order.push(f.node);
    }
}

/// `root` (a container: [`is_container`]) as a graph; `Ok(None)` if some
/// part of it does not cross natively.
///
/// # Safety
/// `root` is a live object of the attached interpreter.
pub unsafe fn convert(root: *mut sys::PyObject) -> PyResult<Option<Graph>> {
    let mut b = Builder {
        nodes: Vec::new(),
        order: Vec::new(),
        memo: HashMap::new(),
        keep: Vec::new(),
        stack: Vec::new(),
    };
    // SAFETY: forwarded.
    if unsafe { b.item(root)? }.is_none() {
        return Ok(None);
    }
    while let Some(t) = b.stack.len().checked_sub(1) {
        let top = &mut b.stack[t];
        if top.pos == top.items.len() {
            let f = b.stack.pop().expect("a frame");
            b.finish(f);
            continue;
        }
        let child = top.items[top.pos].as_ptr();
        top.pos += 1;
        // SAFETY: `child` is held by frame `t`, which stays on the stack
        // until after this returns (new frames go above it).
        match unsafe { b.item(child)? } {
            Some(item) => b.stack[t].out.push(item),
            None => return Ok(None),
        }
    }
    Ok(Some(Graph {
        nodes: b.nodes,
        order: b.order,
    }))
}

fn broken() -> PyErrSet {
    ffi::raise(
        ffi::Exc::SystemError,
        "crossinterp: a container's item was not rebuilt before its container",
    )
}

fn resolve(objs: &[Option<Owned>], item: &Item) -> PyResult<Owned> {
    match item {
        // SAFETY: attached (the caller's); the object is live in `objs`.
        Item::Ref(j) => match objs.get(*j as usize) {
            Some(Some(o)) => Ok(unsafe { Owned::from_borrowed(o.as_ptr()) }),
            _ => Err(broken()),
        },
        Item::Val(v) => super::from_value(v),
    }
}

/// Build the graph's objects in the attached interpreter; the root's.
pub fn build(g: &Graph) -> PyResult<Owned> {
    let mut objs: Vec<Option<Owned>> = Vec::with_capacity(g.nodes.len());
    // First every mutable container, empty (a bytearray whole), so that a
    // cycle can name them before they are filled.
    // SAFETY (both loops): attached; every constructor and setter gets objects
    // of the type it takes, and list indices below the size given to
    // PyList_New (whose slots start NULL and are each set once here; a list
    // dropped half-filled releases only what it holds).
    unsafe {
        for node in &g.nodes {
            objs.push(match node {
                Node::List(items) => Some(Owned::from_new(sys::PyList_New(
                    items.len() as sys::Py_ssize_t,
                ))?),
                Node::Dict(_) => Some(Owned::from_new(sys::PyDict_New())?),
                Node::Set(_) => Some(Owned::from_new(sys::PySet_New(std::ptr::null_mut()))?),
                Node::ByteArray(b) => Some(Owned::from_new(sys::PyByteArray_FromStringAndSize(
                    b.as_ptr() as *const c_char,
                    b.len() as sys::Py_ssize_t,
                ))?),
                Node::Tuple(_) | Node::FrozenSet(_) | Node::Pending => None,
            });
        }
        for &i in &g.order {
            let i = i as usize;
            match &g.nodes[i] {
                Node::List(items) => {
                    let l = objs[i].as_ref().ok_or_else(broken)?.as_ptr();
                    for (k, it) in items.iter().enumerate() {
                        let o = resolve(&objs, it)?;
                        sys::PyList_SET_ITEM(l, k as sys::Py_ssize_t, o.into_ptr());
                    }
                }
                Node::Dict(pairs) => {
                    let d = objs[i].as_ref().ok_or_else(broken)?.as_ptr();
                    for (k, v) in pairs {
                        let (k, v) = (resolve(&objs, k)?, resolve(&objs, v)?);
                        if sys::PyDict_SetItem(d, k.as_ptr(), v.as_ptr()) < 0 {
                            return Err(PyErrSet);
                        }
                    }
                }
                Node::Set(items) => {
                    let s = objs[i].as_ref().ok_or_else(broken)?.as_ptr();
                    for it in items {
                        if sys::PySet_Add(s, resolve(&objs, it)?.as_ptr()) < 0 {
                            return Err(PyErrSet);
                        }
                    }
                }
                Node::Tuple(items) => {
                    let t = Owned::from_new(sys::PyTuple_New(items.len() as sys::Py_ssize_t))?;
                    for (k, it) in items.iter().enumerate() {
                        let o = resolve(&objs, it)?;
                        // A new tuple: its slots are set once, here.
                        sys::PyTuple_SET_ITEM(t.as_ptr(), k as sys::Py_ssize_t, o.into_ptr());
                    }
                    objs[i] = Some(t);
                }
                Node::FrozenSet(items) => {
                    // PySet_Add may fill a frozenset no one else has seen yet.
                    let s = Owned::from_new(sys::PyFrozenSet_New(std::ptr::null_mut()))?;
                    for it in items {
                        if sys::PySet_Add(s.as_ptr(), resolve(&objs, it)?.as_ptr()) < 0 {
                            return Err(PyErrSet);
                        }
                    }
                    objs[i] = Some(s);
                }
                Node::ByteArray(_) => {}
                Node::Pending => return Err(broken()),
            }
        }
    }
    objs.into_iter().next().flatten().ok_or_else(broken)
}
