//! Helpers shared by the stress test files (included by `#[path]`; not a test
//! crate of its own; each file uses what it needs).

#![allow(dead_code)]

/// `small` by default, `big` with `CROSSINTERP_LARGE=1`.
pub fn size(small: usize, big: usize) -> usize {
    if std::env::var_os("CROSSINTERP_LARGE").is_some_and(|v| v == "1") {
        big
    } else {
        small
    }
}

/// Per-consumer record of what it got: (producer, seq) in arrival order.
pub type Log = Vec<(usize, usize)>;

/// Check that every (producer, seq) in `0..producers × 0..per` was consumed
/// exactly once, and that each consumer saw each producer's items in order.
pub fn check_exactly_once_in_order(logs: &[Log], producers: usize, per: usize) {
    let mut seen = vec![vec![0u8; per]; producers];
    for log in logs {
        let mut last = vec![None::<usize>; producers];
        for &(p, s) in log {
            seen[p][s] += 1;
            if let Some(prev) = last[p] {
                assert!(s > prev, "producer {p}: {s} after {prev} (order broken)");
            }
            last[p] = Some(s);
        }
    }
    for (p, row) in seen.iter().enumerate() {
        for (s, &n) in row.iter().enumerate() {
            assert_eq!(n, 1, "producer {p} item {s} consumed {n} times");
        }
    }
}
