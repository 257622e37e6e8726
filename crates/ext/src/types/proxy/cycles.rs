//! Collecting cycles through proxies across interpreters
//! (`crossinterp.collect_cycles()`).
//!
//! A lent object (an entry of its owner's `shared` table) is kept by the
//! owner's table, not by anything CPython's collector can see, so a cycle
//! `a → proxy of b` (in A), `b → proxy of a` (in B) is never collected by
//! either interpreter's GC. The pass here finds such cycles and releases their
//! lend entries; each interpreter's own GC then collects the rest (so
//! finalizers run in their owners).
//!
//! # The pass
//!
//! 1. Per owner `O`, attached to it with its GIL held and without running any
//!    Python code or allocating any Python object between measuring and
//!    deciding: `S` = everything reachable (`tp_traverse`) from `O`'s lent
//!    objects. Each object of `S` gets its refcount minus the references
//!    from inside `S` and minus the lend entries naming it (CPython's trial
//!    deletion): a positive rest
//!    means a reference from outside `S` (a frame, a module, a C extension…),
//!    so the object and everything it reaches is *locally live*. Types,
//!    modules and objects beyond a size cap are not expanded and count as
//!    live (conservative). For each lent object that is not locally live we
//!    record the proxies (of other owners' objects) it reaches through
//!    objects that are not locally live either; and we record every proxy
//!    object that is not locally live.
//! 2. Globally: a lent reference `T` is live when its owner was not analysed,
//!    its object is locally live, or `T` is held by anything other than the
//!    not-locally-live proxy objects found in step 1 (its `Arc` count says
//!    so: a live proxy, a value in a queue, an operation in flight). Liveness
//!    propagates along the recorded edges; every `T` left is garbage.
//! 3. If any lend, proxy creation or proxy operation happened since the pass
//!    began ([`EPOCH`]), the pass gives up (nothing is released). Otherwise
//!    every garbage target is marked collected first (an operation through one
//!    of its proxies — only a finalizer of the garbage can still reach one —
//!    then raises `InterpreterGoneError` instead of touching the object), and
//!    then each owner releases the entries (attached, in its own thread).
//!
//! Why it is safe: per owner the snapshot is atomic (the GIL is held and
//! nothing in it runs Python code); between two owners' snapshots, an
//! interpreter's own threads can only reach objects reachable from its own
//! roots (locally live), and every way a reference moves between
//! interpreters bumps the epoch. Garbage cannot become reachable again, so a
//! pass whose epoch held released only garbage. Mistakes are conservative:
//! an object is kept whenever anything is not understood.
//!
//! Free-threaded builds: there is no public way to stop an interpreter's
//! other threads, and `tp_traverse` concurrent with a mutation is unsafe, so
//! the pass does not analyse anything there (it returns 0; documented in
//! docs/guide.md). There [`super::detect`] reports suspect pairs of
//! interpreters from proxy counts instead.

use super::target::ProxyTarget;
use super::{SharedMethodProxy, SharedObjectProxy};
use crate::ffi::{self, sys, PyResult};
use crate::runtime::owners::{self, OwnerRecord};
use crate::runtime::pending;
use crossinterp_core::sync::{lock, Arc, AtomicBool, AtomicU64, Mutex, Ordering};
use std::collections::{HashMap, HashSet};

/// Bumped by every operation that can move a reference between
/// interpreters: lending (sharing an object), making a proxy, and every
/// proxy operation. A pass that sees it change releases nothing.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// One pass at a time (a second caller returns 0 at once).
static RUNNING: Mutex<()> = Mutex::new(());

/// Objects one owner's analysis expands at most; beyond, objects count as
/// live (conservative: their referents are not subtracted).
const MAX_OBJECTS: usize = 1 << 20;

/// Note that a reference may move between interpreters.
pub fn bump() {
    // SeqCst: ordered before the operation's effects, and against the
    // pass's loads (a pass that reads the old value at its end began its
    // last analysis before this operation started).
    EPOCH.fetch_add(1, Ordering::SeqCst);
}

/// A lent reference, by owner and key.
type Key = (i64, u64);

/// What one owner's analysis found.
struct Local {
    /// Per lent key: `None` if its object is locally live, else the lent
    /// references (of other owners) it reaches through garbage-looking
    /// objects.
    lent: HashMap<u64, Option<Vec<Key>>>,
    /// One entry per proxy object that is not locally live.
    dead_proxies: Vec<Arc<ProxyTarget>>,
}

/// The target of `obj` if it is one of our proxies (either class).
///
/// # Safety
/// Attached to `rec`'s interpreter; `obj` is live.
unsafe fn proxy_of(rec: &OwnerRecord, obj: *mut sys::PyObject) -> Option<Arc<ProxyTarget>> {
    // SAFETY: forwarded.
    unsafe {
        if let Some(p) = rec.types.downcast::<SharedObjectProxy>(obj) {
            return Some(p.get().target.clone());
        }
        rec.types
            .downcast::<SharedMethodProxy>(obj)
            .map(|m| m.get().target.clone())
    }
}

/// Step 1 for the attached owner `rec` (see the module docs).
///
/// # Safety
/// Attached to `rec`'s interpreter with its GIL held (a GIL build); nothing
/// here runs Python code or releases the GIL.
unsafe fn analyse(rec: &OwnerRecord) -> Local {
    let entries = rec.shared.snapshot();
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut objs: Vec<*mut sys::PyObject> = Vec::new();
    let mut lent_refs: Vec<isize> = Vec::new();
    for &(_, obj) in &entries {
        let i = *index.entry(obj).or_insert_with(|| {
            objs.push(obj as *mut sys::PyObject);
            lent_refs.push(0);
            objs.len() - 1
        });
        lent_refs[i] += 1;
    }
    // Expand S breadth-first.
    let mut edges: Vec<Vec<usize>> = Vec::new();
    let mut forced_live: Vec<bool> = Vec::new();
    let mut buf = Vec::new();
    let mut i = 0;
    while i < objs.len() {
        let obj = objs[i];
        let mut out = Vec::new();
        // SAFETY: `obj` is live: it is lent (our entry holds it) or was
        // reached from a live object of this snapshot; attached with the GIL.
        let opaque = unsafe {
            sys::PyType_Check(obj) != 0 || sys::PyModule_Check(obj) != 0 || deferred(obj)
        };
        // Past the cap, objects are not expanded: a GC object among them
        // counts as live (its references are not subtracted).
        let capped = objs.len() >= MAX_OBJECTS;
        buf.clear();
        let leaf = opaque
            || capped
            // SAFETY: as above.
            || matches!(unsafe { ffi::referents(obj, &mut buf) }, ffi::Referents::Leaf);
        forced_live.push(opaque || (capped && !leaf_kind(obj)));
        if !leaf {
            for &r in &buf {
                let j = *index.entry(r as usize).or_insert_with(|| {
                    objs.push(r);
                    lent_refs.push(0);
                    objs.len() - 1
                });
                out.push(j);
            }
        }
        edges.push(out);
        i += 1;
    }
    // Trial deletion: subtract references from inside S and lend entries.
    let mut rest: Vec<isize> = objs
        .iter()
        // SAFETY: live objects (above).
        .map(|&o| unsafe { sys::Py_REFCNT(o) })
        .collect();
    for out in &edges {
        for &j in out {
            rest[j] -= 1;
        }
    }
    let mut live = vec![false; objs.len()];
    let mut work: Vec<usize> = Vec::new();
    for k in 0..objs.len() {
        let r = rest[k] - lent_refs[k];
        if r != 0 || forced_live[k] {
            // r < 0 cannot happen in a consistent snapshot; count it live.
            live[k] = true;
            work.push(k);
        }
    }
    while let Some(k) = work.pop() {
        for &j in &edges[k] {
            if !live[j] {
                live[j] = true;
                work.push(j);
            }
        }
    }
    // Proxies that are not locally live, and their targets' keys.
    let mut target_of: HashMap<usize, Key> = HashMap::new();
    let mut dead_proxies = Vec::new();
    for k in 0..objs.len() {
        if live[k] {
            continue;
        }
        // SAFETY: live object of this interpreter, attached.
        if let Some(t) = unsafe { proxy_of(rec, objs[k]) } {
            target_of.insert(k, (t.rec.iid, t.key()));
            dead_proxies.push(t);
        }
    }
    // Per lent object that is not locally live: the targets it reaches.
    let mut lent = HashMap::new();
    for &(key, obj) in &entries {
        let start = index[&obj];
        if live[start] {
            lent.insert(key, None);
            continue;
        }
        let mut seen = HashSet::new();
        let mut reach = Vec::new();
        let mut stack = vec![start];
        seen.insert(start);
        while let Some(k) = stack.pop() {
            if let Some(t) = target_of.get(&k) {
                reach.push(*t);
            }
            for &j in &edges[k] {
                if !live[j] && seen.insert(j) {
                    stack.push(j);
                }
            }
        }
        lent.insert(key, Some(reach));
    }
    Local { lent, dead_proxies }
}

/// Whether `obj` never holds references (not a GC object).
fn leaf_kind(obj: *mut sys::PyObject) -> bool {
    // SAFETY: `obj` is live (callers); reading its type's flags only.
    unsafe { sys::PyObject_IS_GC(obj) == 0 }
}

/// Whether `obj` uses deferred reference counting (free-threaded builds:
/// references from frames are then not counted, so its count proves nothing).
///
/// # Safety
/// `obj` is live.
#[cfg(Py_GIL_DISABLED)]
unsafe fn deferred(obj: *mut sys::PyObject) -> bool {
    // 64 is `_PyGC_BITS_DEFERRED` (CPython's internal pycore_gc.h).
    // SAFETY: `obj` is live; the byte is read only.
    unsafe { (*obj).ob_gc_bits & 64 != 0 }
}

/// # Safety
/// `obj` is live.
#[cfg(not(Py_GIL_DISABLED))]
unsafe fn deferred(_obj: *mut sys::PyObject) -> bool {
    false
}

/// Whether the pass can run on this build (not on free-threaded builds: see
/// the module docs).
pub const SUPPORTED: bool = cfg!(not(Py_GIL_DISABLED));

/// Run one pass; the number of lent references released.
pub fn collect() -> PyResult<usize> {
    if !SUPPORTED {
        return Ok(0);
    }
    let Ok(_running) = RUNNING.try_lock() else {
        return Ok(0);
    };
    let start = EPOCH.load(Ordering::SeqCst);
    let mut locals: HashMap<i64, Local> = HashMap::new();
    for rec in owners::all() {
        if rec.shared.is_empty() {
            continue;
        }
        // A refused guard (the owner is finalizing): not analysed, so all it
        // lends counts as live.
        // SAFETY: in the closure we are attached to `rec` with its GIL (a GIL
        // build: checked by `SUPPORTED`).
        let r = pending::try_run_in_owner(&rec, || unsafe { analyse(&rec) });
        if let Ok(Ok(local)) = r {
            locals.insert(rec.iid, local);
        }
        if EPOCH.load(Ordering::SeqCst) != start {
            return Ok(0);
        }
    }
    // Step 2: targets and how many garbage-looking proxies hold each.
    let mut targets: HashMap<Key, (Arc<ProxyTarget>, usize)> = HashMap::new();
    for local in locals.values_mut() {
        for t in local.dead_proxies.drain(..) {
            targets
                .entry((t.rec.iid, t.key()))
                .or_insert_with(|| (t.clone(), 0))
                .1 += 1;
        }
    }
    let mut live: HashSet<Key> = HashSet::new();
    let mut work: Vec<Key> = Vec::new();
    for (key, (t, holders)) in &targets {
        let local = locals.get(&key.0).and_then(|l| l.lent.get(&key.1));
        // Our map holds one clone; every other one must be a dead proxy.
        let explained = Arc::strong_count(t) == holders + 1;
        if !explained || !matches!(local, Some(Some(_))) {
            live.insert(*key);
            work.push(*key);
        }
    }
    while let Some(key) = work.pop() {
        if let Some(Some(Some(reach))) = locals.get(&key.0).map(|l| l.lent.get(&key.1)) {
            for r in reach {
                if live.insert(*r) {
                    work.push(*r);
                }
            }
        }
    }
    let garbage: Vec<Arc<ProxyTarget>> = targets
        .into_iter()
        .filter(|(k, _)| !live.contains(k))
        .map(|(_, (t, _))| t)
        .collect();
    drop(locals);
    if garbage.is_empty() || EPOCH.load(Ordering::SeqCst) != start {
        return Ok(0);
    }
    // Step 3: mark all first, then release owner by owner.
    for t in &garbage {
        t.mark_collected();
    }
    let mut by_owner: HashMap<i64, (Arc<OwnerRecord>, Vec<u64>)> = HashMap::new();
    for t in &garbage {
        by_owner
            .entry(t.rec.iid)
            .or_insert_with(|| (t.rec.clone(), Vec::new()))
            .1
            .push(t.key());
    }
    let mut released = 0;
    for (_, (rec, keys)) in by_owner {
        let r = pending::try_run_in_owner(&rec, || {
            let mut n = 0;
            for key in keys {
                if let Some(obj) = rec.shared.take(key) {
                    // SAFETY: attached to the owner (run_in); the entry was one
                    // strong reference and we removed it, so nobody else
                    // releases it. Finalizers may run here, in the owner.
                    unsafe { sys::Py_DecRef(obj as *mut sys::PyObject) };
                    n += 1;
                }
            }
            n
        });
        if let Ok(Ok(n)) = r {
            released += n;
        }
    }
    // Dropping the last clones may release more (as pending calls in their
    // owners): those entries were taken above, so it finds nothing.
    drop(garbage);
    Ok(released)
}

/// The lent references of all owners (a snapshot), for the automatic pass.
pub fn lent_total() -> usize {
    owners::all().iter().map(|r| r.shared.len()).sum()
}

/// Whether the automatic pass runs (`set_auto_collect_cycles`).
static AUTO_ON: AtomicBool = AtomicBool::new(true);

/// Turn the automatic pass on or off; the previous setting.
pub fn set_auto(on: bool) -> bool {
    // Relaxed: a setting (see `auto`).
    AUTO_ON.swap(on, Ordering::Relaxed)
}

/// When the automatic pass last ran, how many references were lent after
/// it, and how long it took.
static AUTO: Mutex<(Option<std::time::Instant>, usize, std::time::Duration)> =
    Mutex::new((None, 0, std::time::Duration::ZERO));

/// The automatic pass (from each interpreter's gc callback): only when more
/// references are lent than after the last pass, and at most once per
/// `interval` or per 50 times the last pass's duration, whichever is longer
/// (so it never takes more than about 2% of the time).
pub fn auto(interval: std::time::Duration) -> PyResult<usize> {
    // Relaxed: a setting, read once per collection.
    if !SUPPORTED || !AUTO_ON.load(Ordering::Relaxed) {
        return Ok(0);
    }
    let total = lent_total();
    let began = std::time::Instant::now();
    {
        let mut a = lock(&AUTO);
        let wait = interval.max(a.2 * 50);
        let due = a.0.is_none_or(|t| began.duration_since(t) >= wait);
        if !due || total <= a.1 {
            return Ok(0);
        }
        a.0 = Some(began);
    }
    let n = collect()?;
    let took = began.elapsed();
    let mut a = lock(&AUTO);
    a.1 = lent_total();
    a.2 = took;
    Ok(n)
}
