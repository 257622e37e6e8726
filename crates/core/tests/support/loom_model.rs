//! The loom model runner shared by the `loom*.rs` test files (included by
//! `#[path]`; not a test crate of its own).

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
