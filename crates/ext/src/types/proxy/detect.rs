//! Detecting cross-interpreter proxy cycles where they cannot be collected
//! (free-threaded builds), from the engine's own bookkeeping only.
//!
//! On free-threaded builds `collect_cycles()` analyses nothing (see
//! [`super::cycles`]): the pass would have to `tp_traverse` objects that other
//! threads of their interpreter may mutate at the same time, and there is no
//! public API to stop them. CPython 3.13's `gc.callbacks` do not help: in
//! `Python/gc_free_threading.c` the "start" and "stop" callbacks are invoked
//! by `gc_collect_main` outside `gc_collect_internal`, whose
//! `_PyEval_StopTheWorld` / `_PyEval_StartTheWorld` bracket only the
//! collector's own phases, so the callbacks run with every other thread
//! running. Per-object critical sections would not make a whole-graph
//! snapshot consistent either.
//!
//! What this module does instead never touches a Python object: every proxy
//! object (of either class) made in interpreter `H` of an object owned by
//! another interpreter `O` holds a [`Held`] token that counts it in the
//! counter of the pair `(H, O)`; dropping the proxy object uncounts it and
//! lowers the pair's *low-water mark* (the fewest proxies `H` held of `O`'s
//! objects since the last check). A check (each `collect_cycles()` call, and
//! after garbage collections at most once a second) reads, per pair of
//! interpreters `{A, B}` that hold proxies of each other's objects, how many
//! they held *throughout* the interval since the previous check: the lesser of
//! the two directions' low-water marks. When that number has grown in
//! [`GROWTH_CHECKS`] intervals without ever falling (intervals without change
//! do not count either way), the pair warns once (a
//! `crossinterp.CycleWarning` through `warnings`, in the interpreter running
//! the check): proxies that both interpreters keep accumulating of each
//! other's objects and never release is what a growing number of proxy
//! cycles looks like. It is a heuristic: a single cycle made once does not
//! grow (not warned), and two interpreters that legitimately keep ever more
//! proxies of each other's objects look the same (warned). Transient proxies
//! (released before the next check) never count.
//!
//! On GIL builds (where the pass collects) nothing here is counted.

use crate::ffi;
use crossinterp_core::sync::{lock, Arc, AtomicBool, AtomicU64, Mutex, Ordering};
use std::collections::{BTreeMap, BTreeSet};

/// Whether proxies are counted and checks run (free-threaded builds only).
pub const ACTIVE: bool = cfg!(Py_GIL_DISABLED);

/// How many intervals of growth (with no fall) make a pair warn.
pub const GROWTH_CHECKS: u32 = 3;

/// The proxy objects one interpreter holds of another's objects.
#[derive(Default)]
struct Pair {
    /// Live proxy objects.
    count: AtomicU64,
    /// The least `count` since the last check.
    low: AtomicU64,
}

/// `(holder, owner)` → its counter. Entries with no proxy left are pruned by
/// the check (a token holds a clone, so an entry only the map holds has none).
static PAIRS: Mutex<BTreeMap<(i64, i64), Arc<Pair>>> = Mutex::new(BTreeMap::new());

/// Per unordered pair `(a, b)`, `a < b`: what the previous check saw, and how
/// many intervals it grew in since it last fell; and the pairs that warned.
struct History {
    seen: BTreeMap<(i64, i64), (u64, u32)>,
    warned: BTreeSet<(i64, i64)>,
}

static HISTORY: Mutex<History> = Mutex::new(History {
    seen: BTreeMap::new(),
    warned: BTreeSet::new(),
});

/// Counts one proxy object of its interpreter (`None`: not counted — a GIL
/// build, or a proxy in its owner itself). Part of the proxy object's value,
/// so it is dropped with it.
pub struct Held(Option<Arc<Pair>>);

impl Held {
    /// Count a new proxy object, in the attached interpreter, of an object
    /// of `owner`.
    pub fn new(owner: i64) -> Held {
        if !ACTIVE {
            return Held(None);
        }
        let (_, holder) = ffi::interp::current();
        if holder == owner {
            return Held(None);
        }
        let mut pairs = lock(&PAIRS);
        let pair = pairs.entry((holder, owner)).or_default().clone();
        // Relaxed: a statistic, read by the (heuristic) check; counted under
        // the map's lock so that a pruning check never drops a counted pair.
        pair.count.fetch_add(1, Ordering::Relaxed);
        Held(Some(pair))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(pair) = &self.0 {
            // Relaxed: statistics (see `new`).
            let left = pair.count.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
            pair.low.fetch_min(left, Ordering::Relaxed);
        }
    }
}

/// A pair of interpreters that warned: `(a, b, proxies a holds of b's
/// objects, proxies b holds of a's)`.
pub type Suspect = (i64, i64, u64, u64);

/// One check (see the module docs): the pairs that warn now (each pair once
/// per process).
pub fn check() -> Vec<Suspect> {
    if !ACTIVE {
        return Vec::new();
    }
    // Per direction: (held throughout the interval, held now).
    let mut held: BTreeMap<(i64, i64), (u64, u64)> = BTreeMap::new();
    {
        let mut pairs = lock(&PAIRS);
        pairs.retain(|key, pair| {
            // Relaxed: statistics (see `Held::new`).
            let now = pair.count.load(Ordering::Relaxed);
            let low = pair.low.swap(now, Ordering::Relaxed).min(now);
            held.insert(*key, (low, now));
            now != 0 || Arc::strong_count(pair) > 1
        });
    }
    let mut history = lock(&HISTORY);
    let History { seen, warned } = &mut *history;
    let mut out = Vec::new();
    let mut mutual = BTreeSet::new();
    for (&(a, b), &(low_ab, now_ab)) in &held {
        if a >= b {
            continue;
        }
        let Some(&(low_ba, now_ba)) = held.get(&(b, a)) else {
            continue;
        };
        mutual.insert((a, b));
        let kept = low_ab.min(low_ba);
        let (prev, grew) = seen.entry((a, b)).or_insert((0, 0));
        if kept > *prev {
            *grew += 1;
        } else if kept < *prev {
            *grew = 0;
        }
        *prev = kept;
        if *grew >= GROWTH_CHECKS && kept > 0 && warned.insert((a, b)) {
            out.push((a, b, now_ab, now_ba));
        }
    }
    // A pair that no longer holds proxies both ways starts over.
    seen.retain(|key, _| mutual.contains(key));
    out
}

/// Whether the automatic check runs (follows `set_auto_collect_cycles`).
static AUTO_ON: AtomicBool = AtomicBool::new(true);

/// Follow `set_auto_collect_cycles`.
pub fn set_auto(on: bool) {
    // Relaxed: a setting.
    AUTO_ON.store(on, Ordering::Relaxed);
}

/// When the automatic check last ran.
static LAST: Mutex<Option<std::time::Instant>> = Mutex::new(None);

/// The automatic check (from the gc callbacks): at most once per `interval`.
pub fn auto(interval: std::time::Duration) -> Vec<Suspect> {
    // Relaxed: a setting, read once per collection.
    if !ACTIVE || !AUTO_ON.load(Ordering::Relaxed) {
        return Vec::new();
    }
    {
        let now = std::time::Instant::now();
        let mut last = lock(&LAST);
        if last.is_some_and(|t| now.duration_since(t) < interval) {
            return Vec::new();
        }
        *last = Some(now);
    }
    check()
}

/// The warning's text for one suspect pair.
pub fn message(&(a, b, ab, ba): &Suspect) -> String {
    format!(
        "interpreters {a} and {b} keep a growing number of proxies of each other's objects \
         ({ab} held in interpreter {a}, {ba} in interpreter {b}, not released across \
         {GROWTH_CHECKS} checks): this looks like reference cycles through proxies across \
         the two interpreters, which are not collected on free-threaded builds \
         (collect_cycles() cannot traverse objects other threads may mutate) until one of \
         them closes; break them by dropping the proxies (del them, or clear the objects \
         holding them) or by closing one of the interpreters"
    )
}
