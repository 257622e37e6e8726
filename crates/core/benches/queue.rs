//! Streaming throughput of `Queue` against crossbeam-channel, same run.
//!
//! ```text
//! cargo bench -p crossinterp-core --bench queue -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Each iteration streams 100k `u64`s from P producer threads to C consumer
//! threads (SPSC: 1→1; MPMC: 2→2), bounded (1024) and unbounded, spawning and
//! joining the threads inside the timed region for both sides alike. After
//! criterion's own report, a table gives our time per stream over crossbeam's
//! (1.00 = as fast; below 1 = faster): from criterion's samples, and from an
//! interleaved run that alternates the two (robust to load from elsewhere).

use criterion::{BenchmarkId, Criterion, Throughput};
use crossinterp_core::Queue;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const ITEMS: u64 = 100_000;
const BOUND: usize = 1024;

/// (total time, streams) per benchmark id, for the ratio table.
static TOTALS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(id: &str, d: Duration, n: u64) {
    let mut t = TOTALS.lock().unwrap();
    let e = t.entry(id.to_string()).or_default();
    e.0 += d;
    e.1 += n;
}

/// One stream through our queue (`maxsize` 0: unbounded).
fn ours(producers: u64, consumers: usize, maxsize: usize) -> Duration {
    let q = Queue::new(maxsize);
    let start = Instant::now();
    let sum = thread::scope(|s| {
        let prods: Vec<_> = (0..producers)
            .map(|_| {
                let q = &q;
                s.spawn(move || {
                    for i in 0..ITEMS / producers {
                        q.put(i, None, &mut || false).unwrap();
                    }
                })
            })
            .collect();
        let cons: Vec<_> = (0..consumers)
            .map(|_| {
                let q = &q;
                s.spawn(move || {
                    let mut sum = 0u64;
                    while let Ok(v) = q.get(None, &mut || false) {
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        for p in prods {
            p.join().unwrap();
        }
        q.close();
        cons.into_iter().map(|c| c.join().unwrap()).sum::<u64>()
    });
    let d = start.elapsed();
    black_box(sum);
    d
}

/// One stream through crossbeam-channel (`bound` None: unbounded).
fn crossbeam(producers: u64, consumers: usize, bound: Option<usize>) -> Duration {
    let (tx, rx) = match bound {
        Some(b) => crossbeam_channel::bounded(b),
        None => crossbeam_channel::unbounded(),
    };
    let start = Instant::now();
    let sum = thread::scope(|s| {
        let prods: Vec<_> = (0..producers)
            .map(|_| {
                let tx = tx.clone();
                s.spawn(move || {
                    for i in 0..ITEMS / producers {
                        tx.send(i).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let cons: Vec<_> = (0..consumers)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || {
                    let mut sum = 0u64;
                    while let Ok(v) = rx.recv() {
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        for p in prods {
            p.join().unwrap();
        }
        cons.into_iter().map(|c| c.join().unwrap()).sum::<u64>()
    });
    let d = start.elapsed();
    black_box(sum);
    d
}

fn bench(c: &mut Criterion, group: &str, producers: u64, consumers: usize) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(20);
    type Run = Box<dyn Fn() -> Duration>;
    let cases: [(&str, Run); 4] = [
        (
            "ours_bounded_1024",
            Box::new(move || ours(producers, consumers, BOUND)),
        ),
        (
            "crossbeam_bounded_1024",
            Box::new(move || crossbeam(producers, consumers, Some(BOUND))),
        ),
        (
            "ours_unbounded",
            Box::new(move || ours(producers, consumers, 0)),
        ),
        (
            "crossbeam_unbounded",
            Box::new(move || crossbeam(producers, consumers, None)),
        ),
    ];
    for (name, run) in cases {
        let id = format!("{group}/{name}");
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let d: Duration = (0..iters).map(|_| run()).sum();
                record(&id, d, iters);
                d
            })
        });
    }
    g.finish();
}

/// Median of `runs`.
fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Ratios from criterion's samples (case after case), then from an interleaved
/// run (ours and crossbeam alternately, 31 streams each, medians): the second is
/// robust to load that changes during the run, the first is what criterion saw.
fn report() {
    let t = TOTALS.lock().unwrap();
    let mean = |id: &str| t.get(id).map(|(d, n)| d.as_secs_f64() / *n as f64);
    println!("\nours vs crossbeam-channel, time per 100k-item stream");
    println!(
        "{:<24}{:>12}{:>12}{:>8}   {:>12}{:>12}{:>8}",
        "", "mean ours", "crossbeam", "ratio", "median ours", "crossbeam", "ratio"
    );
    type Pair = (u64, usize, usize, Option<usize>);
    let cases: [(&str, &str, Pair); 4] = [
        ("spsc", "bounded_1024", (1, 1, BOUND, Some(BOUND))),
        ("spsc", "unbounded", (1, 1, 0, None)),
        ("mpmc_2p2c", "bounded_1024", (2, 2, BOUND, Some(BOUND))),
        ("mpmc_2p2c", "unbounded", (2, 2, 0, None)),
    ];
    for (group, kind, (p, c, ours_max, cb_bound)) in cases {
        let (Some(o), Some(x)) = (
            mean(&format!("{group}/ours_{kind}")),
            mean(&format!("{group}/crossbeam_{kind}")),
        ) else {
            continue;
        };
        let (mut ro, mut rx) = (Vec::new(), Vec::new());
        for _ in 0..31 {
            ro.push(ours(p, c, ours_max));
            rx.push(crossbeam(p, c, cb_bound));
        }
        let (mo, mx) = (median(ro), median(rx));
        println!(
            "{:<24}{:>10.2}ms{:>10.2}ms{:>8.2}   {:>10.2}ms{:>10.2}ms{:>8.2}",
            format!("{group} {kind}"),
            o * 1e3,
            x * 1e3,
            o / x,
            mo.as_secs_f64() * 1e3,
            mx.as_secs_f64() * 1e3,
            mo.as_secs_f64() / mx.as_secs_f64()
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, "spsc", 1, 1);
    bench(&mut c, "mpmc_2p2c", 2, 2);
    c.final_summary();
    report();
}
