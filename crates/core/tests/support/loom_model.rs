//! The loom model runner and the outcome tally shared by the `loom*.rs` test
//! files (included by `#[path]`; not a test crate of its own).

// Not every file that includes this one tallies outcomes.
#![allow(dead_code)]

use std::time::Instant;

/// Run `f` under loom with at most `preemptions` preemptions (`None`: no bound,
/// exhaustive) unless `LOOM_MAX_PREEMPTIONS` says otherwise, and report how many
/// executions it explored and how long it took.
pub fn model<F>(name: &str, preemptions: Option<usize>, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = preemptions;
    }
    let before = RUNS.load(std::sync::atomic::Ordering::SeqCst);
    builder.check(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f()
    });
    let runs = RUNS.load(std::sync::atomic::Ordering::SeqCst) - before;
    eprintln!(
        "loom model {name}: {runs} interleavings in {:.2?}",
        start.elapsed()
    );
}

/// Run `f` on a new loom thread with its own clone of `shared` (a queue, a
/// map, …): the `let q = q.clone(); thread::spawn(move || …)` of every model.
pub fn spawn_with<S, R, F>(shared: &S, f: F) -> loom::thread::JoinHandle<R>
where
    S: Clone + Send + 'static,
    R: Send + 'static,
    F: FnOnce(S) -> R + Send + 'static,
{
    let s = shared.clone();
    loom::thread::spawn(move || f(s))
}

/// Which outcomes a model reached, across all its executions: each model names
/// its possible outcomes and asserts at the end that it reached every one, so
/// a model cannot silently stop exercising the race it is named after.
pub struct Outcomes {
    name: &'static str,
    labels: &'static [&'static str],
    seen: Vec<std::sync::atomic::AtomicUsize>,
}

impl Outcomes {
    pub fn new(name: &'static str, labels: &'static [&'static str]) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Outcomes {
            name,
            labels,
            seen: labels
                .iter()
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect(),
        })
    }
    pub fn hit(&self, label: &str) {
        let i = self
            .labels
            .iter()
            .position(|l| *l == label)
            .unwrap_or_else(|| panic!("unknown outcome {label}"));
        self.seen[i].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn assert_all_reached(&self) {
        let counts: Vec<String> = self
            .labels
            .iter()
            .zip(&self.seen)
            .map(|(l, n)| format!("{l}={}", n.load(std::sync::atomic::Ordering::SeqCst)))
            .collect();
        eprintln!("  {} outcomes: {}", self.name, counts.join(", "));
        for (l, n) in self.labels.iter().zip(&self.seen) {
            assert!(
                n.load(std::sync::atomic::Ordering::SeqCst) > 0,
                "{}: outcome {l} never reached",
                self.name
            );
        }
    }
}
