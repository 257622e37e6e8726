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
//! (1.00 = as fast; below 1 = faster), in ns per item: from criterion's
//! samples, and from an interleaved run that alternates the two (robust to load
//! from elsewhere), with the spread of the per-pair ratios, the CPU model and
//! the commit. `QUEUE_BENCH_RATIO_ONLY=1` runs only the interleaved part;
//! `QUEUE_BENCH_ROUNDS=N` sets its pairs per row (31). `make bench-core` keeps
//! a criterion baseline (benchmarks/README.md).

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
fn median<T: PartialOrd + Copy>(mut runs: Vec<T>) -> T {
    runs.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    runs[runs.len() / 2]
}

/// The p-quantile (0..=1) of `v`, nearest rank.
fn quantile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Streams per side in the interleaved run (`QUEUE_BENCH_ROUNDS`, default 31).
fn rounds() -> usize {
    std::env::var("QUEUE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(31)
}

/// The CPU model and the commit under test, printed with the figures.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR")])
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cpu}, {cores} CPUs; commit {rev}{}",
        if dirty { " + uncommitted changes" } else { "" }
    )
}

/// Ratios from criterion's samples (case after case; absent with
/// `QUEUE_BENCH_RATIO_ONLY=1`), then from an interleaved run (ours and
/// crossbeam alternately, [`rounds`] streams each): the medians of each side,
/// and the spread (25th-75th percentile) of the per-pair ratios. The
/// interleaved figures are robust to load that changes during the run; the
/// first are what criterion saw.
fn report() {
    let t = TOTALS.lock().unwrap();
    let mean = |id: &str| t.get(id).map(|(d, n)| d.as_secs_f64() / *n as f64);
    let n = rounds();
    println!("\nours vs crossbeam-channel, ns per item ({ITEMS} items per stream; {n} interleaved pairs)");
    println!("{}", machine());
    println!(
        "{:<24}{:>9}{:>9}{:>7}   {:>9}{:>9}{:>7}  {:>11}",
        "", "mean ours", "xbeam", "ratio", "med ours", "xbeam", "ratio", "pair p25-75"
    );
    type Pair = (u64, usize, usize, Option<usize>);
    let cases: [(&str, &str, Pair); 4] = [
        ("spsc", "bounded_1024", (1, 1, BOUND, Some(BOUND))),
        ("spsc", "unbounded", (1, 1, 0, None)),
        ("mpmc_2p2c", "bounded_1024", (2, 2, BOUND, Some(BOUND))),
        ("mpmc_2p2c", "unbounded", (2, 2, 0, None)),
    ];
    let per_item = |secs: f64| secs * 1e9 / ITEMS as f64;
    for (group, kind, (p, c, ours_max, cb_bound)) in cases {
        let means = (
            mean(&format!("{group}/ours_{kind}")),
            mean(&format!("{group}/crossbeam_{kind}")),
        );
        let means = match means {
            (Some(o), Some(x)) => format!("{:>9.1}{:>9.1}{:>7.2}", per_item(o), per_item(x), o / x),
            _ if t.is_empty() => format!("{:>9}{:>9}{:>7}", "-", "-", "-"),
            _ => continue,
        };
        let (mut ro, mut rx, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let o = ours(p, c, ours_max).as_secs_f64();
            let x = crossbeam(p, c, cb_bound).as_secs_f64();
            ro.push(o);
            rx.push(x);
            ratios.push(o / x);
        }
        let (mo, mx) = (median(ro), median(rx));
        println!(
            "{:<24}{means}   {:>9.1}{:>9.1}{:>7.2}  {:>5.2}-{:<5.2}",
            format!("{group} {kind}"),
            per_item(mo),
            per_item(mx),
            mo / mx,
            quantile(ratios.clone(), 0.25),
            quantile(ratios, 0.75),
        );
    }
}

fn main() {
    if std::env::var_os("QUEUE_BENCH_RATIO_ONLY").is_some_and(|v| v == "1") {
        report();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, "spsc", 1, 1);
    bench(&mut c, "mpmc_2p2c", 2, 2);
    c.final_summary();
    report();
}
