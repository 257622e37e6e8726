//! Helpers shared by `engine.rs` and `stress.rs` (not compiled under loom).

#![allow(dead_code)]

use crossinterp_core::{
    current_owner, Attached, FinalizeOptions, FinalizeReport, Owner, OwnerId, Release, SlowFinalize,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Pretend the current thread is attached to `owner`.
pub fn attach(owner: OwnerId) -> Attached<'static> {
    // SAFETY: in the engine's own tests there is no interpreter: the token only
    // stands for one, and nothing reached through it touches interpreter memory.
    unsafe { Attached::enter(owner) }
}

/// Finalize `owner` from the current thread, attached to it, never reporting.
pub fn finalize(owner: Owner) -> FinalizeReport {
    let a = attach(owner.id());
    let mut ignore = |_: SlowFinalize| {};
    owner.finalize(
        &a,
        FinalizeOptions {
            warn_after: Duration::from_secs(3600),
            on_slow: &mut ignore,
        },
    )
}

/// Counters of what happened to a set of [`Probe`]s, one slot per payload.
pub struct Stats {
    /// `release` ran (attached to the right owner or not: see `wrong_owner`).
    pub released: Vec<AtomicUsize>,
    /// Dropped as plain data, without `release` (the owner was gone).
    pub abandoned: Vec<AtomicUsize>,
    /// `release` ran with a token, or a thread-local, for another owner.
    pub wrong_owner: AtomicUsize,
}

impl Stats {
    pub fn new(n: usize) -> Arc<Stats> {
        Arc::new(Stats {
            released: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            abandoned: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            wrong_owner: AtomicUsize::new(0),
        })
    }
    pub fn released(&self, i: usize) -> usize {
        self.released[i].load(Ordering::SeqCst)
    }
    pub fn abandoned(&self, i: usize) -> usize {
        self.abandoned[i].load(Ordering::SeqCst)
    }
    pub fn total_released(&self) -> usize {
        (0..self.released.len()).map(|i| self.released(i)).sum()
    }
    pub fn total_abandoned(&self) -> usize {
        (0..self.abandoned.len()).map(|i| self.abandoned(i)).sum()
    }
    pub fn wrong_owner(&self) -> usize {
        self.wrong_owner.load(Ordering::SeqCst)
    }
}

/// A payload that records whether its release ran, in which owner, or whether
/// it was dropped unreleased.
pub struct Probe {
    pub owner: OwnerId,
    pub index: usize,
    pub stats: Arc<Stats>,
    released: bool,
}

impl Probe {
    pub fn new(owner: OwnerId, index: usize, stats: &Arc<Stats>) -> Probe {
        Probe {
            owner,
            index,
            stats: stats.clone(),
            released: false,
        }
    }
}

impl Release for Probe {
    fn release(mut self, attached: &Attached<'_>) {
        if attached.owner() != self.owner || current_owner() != Some(self.owner) {
            self.stats.wrong_owner.fetch_add(1, Ordering::SeqCst);
        }
        self.stats.released[self.index].fetch_add(1, Ordering::SeqCst);
        self.released = true;
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.released {
            self.stats.abandoned[self.index].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Counts its drops (to see that an abandoned call dropped what it captured).
pub struct DropCount(pub Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A small deterministic PRNG (xorshift64*), for shuffles in stress tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
