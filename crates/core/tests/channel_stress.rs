//! Stress tests of `Channel`, one per race. Small by default (each a few
//! seconds at most in debug on 2 cores); `CROSSINTERP_LARGE=1` scales them up.

#![cfg(not(loom))]

use crossinterp_core::channel::{Channel, RecvError, SendError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/stress.rs"]
mod stress_support;
use stress_support::size;

fn soon(us: u64) -> Option<Instant> {
    Some(Instant::now() + Duration::from_micros(us))
}

/// Tally of what happened to items `0..n`: received, or handed back to the
/// sender. Each must happen exactly once.
struct Tally {
    received: Vec<u8>,
    handed_back: Vec<u8>,
}

impl Tally {
    fn new(n: usize) -> Self {
        Tally {
            received: vec![0; n],
            handed_back: vec![0; n],
        }
    }
    fn check(&self, what: &str) {
        for (i, (&r, &b)) in self.received.iter().zip(&self.handed_back).enumerate() {
            assert_eq!(
                r + b,
                1,
                "{what}: item {i} received {r} times, handed back {b} times"
            );
        }
    }
}

/// 4 senders, 4 receivers, per-sender sequence numbers. Senders mix blocking
/// sends, sends with tiny deadlines (retried with the handed-back item) and
/// try_send; receivers mix blocking recvs, recvs with deadlines and try_recv,
/// until the send end is closed and nothing is pending.
///
/// Checked: every item received exactly once; each receiver sees each sender's
/// items in order (a send completes before the next starts, so this is the
/// rendezvous order); a send returned `Ok` only for a received item.
#[test]
fn nothing_lost_4_producers_4_consumers() {
    let per = size(5_000, 100_000);
    let ch = Channel::new();
    let barrier = Arc::new(Barrier::new(8));
    let senders: Vec<_> = (0..4)
        .map(|p| {
            let (ch, barrier) = (ch.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for s in 0..per {
                    let mut item = (p, s);
                    loop {
                        let r = match s % 3 {
                            0 => ch.send(item, None, &mut || false),
                            1 => ch.send(item, soon(100), &mut || false),
                            _ => ch.try_send(item),
                        };
                        match r {
                            Ok(()) => break,
                            Err(SendError::Timeout(back)) | Err(SendError::NoReceiver(back)) => {
                                item = back;
                                thread::yield_now();
                            }
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    let receivers: Vec<_> = (0..4)
        .map(|c| {
            let (ch, barrier) = (ch.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut log = Vec::new();
                let mut i = 0usize;
                loop {
                    i += 1;
                    let r = match (i + c) % 3 {
                        0 => ch.recv(None, &mut || false),
                        1 => ch.recv(soon(100), &mut || false),
                        _ => ch.try_recv(),
                    };
                    match r {
                        Ok(item) => log.push(item),
                        Err(RecvError::Empty) | Err(RecvError::Timeout) => thread::yield_now(),
                        Err(RecvError::Closed) => return log,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    ch.close_send().unwrap();
    let mut seen = vec![vec![0u8; per]; 4];
    for r in receivers {
        let mut last = [None::<usize>; 4];
        for (p, s) in r.join().unwrap() {
            seen[p][s] += 1;
            if let Some(prev) = last[p] {
                assert!(s > prev, "sender {p}: {s} received after {prev}");
            }
            last[p] = Some(s);
        }
    }
    assert!(
        seen.iter().flatten().all(|&n| n == 1),
        "an item was lost or duplicated"
    );
    assert!(ch.is_empty());
    assert_eq!(ch.waiting_receivers(), 0);
}

/// Senders (blocking and with deadlines) and a receiver, while another thread
/// force-closes the channel (sometimes trying a plain close first).
///
/// Checked: each item is exactly once received or handed back (Closed or
/// Timeout); once the close returned, no send succeeds; the forced close's
/// count matches the items it handed back as `Closed` after being pending.
#[test]
fn close_while_sending() {
    let rounds = size(1_000, 20_000);
    let per = 20;
    for round in 0..rounds {
        let ch = Channel::new();
        let closed = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..3)
            .map(|p| {
                let (ch, closed) = (ch.clone(), closed.clone());
                thread::spawn(move || {
                    let mut back = Vec::new();
                    for s in 0..per {
                        let was_closed = closed.load(Ordering::SeqCst);
                        let item = p * per + s;
                        let r = if s % 2 == 0 {
                            ch.send(item, None, &mut || false)
                        } else {
                            ch.send(item, soon(300), &mut || false)
                        };
                        match r {
                            Ok(()) => assert!(!was_closed, "send succeeded after close"),
                            Err(SendError::Closed(i)) | Err(SendError::Timeout(i)) => back.push(i),
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                    back
                })
            })
            .collect();
        let receiver = {
            let ch = ch.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                for _ in 0..(round % 30) {
                    match ch.recv(soon(500), &mut || false) {
                        Ok(i) => got.push(i),
                        Err(RecvError::Closed) => break,
                        Err(_) => {}
                    }
                }
                got
            })
        };
        thread::sleep(Duration::from_micros((round % 5) as u64 * 100));
        if round % 2 == 0 {
            // A plain close is refused while sends are pending, or succeeds.
            let _ = ch.close(false);
        }
        let _ = ch.close(true);
        closed.store(true, Ordering::SeqCst);
        let mut tally = Tally::new(3 * per);
        for s in senders {
            for i in s.join().unwrap() {
                tally.handed_back[i] += 1;
            }
        }
        for i in receiver.join().unwrap() {
            tally.received[i] += 1;
        }
        tally.check(&format!("round {round}"));
        assert!(ch.is_empty());
    }
}

/// Receivers blocked (with and without deadlines) while senders send and the
/// send end closes.
///
/// Checked: every item sent `Ok` is received exactly once, every other handed
/// back; every receiver ends with `Closed`, none stays blocked.
#[test]
fn close_while_receiving() {
    let rounds = size(1_000, 20_000);
    for round in 0..rounds {
        let ch = Channel::new();
        let n = round % 12;
        let receivers: Vec<_> = (0..3)
            .map(|c| {
                let ch = ch.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let r = if c == 0 {
                            ch.recv(soon(300), &mut || false)
                        } else {
                            ch.recv(None, &mut || false)
                        };
                        match r {
                            Ok(i) => got.push(i),
                            Err(RecvError::Timeout) => {}
                            Err(RecvError::Closed) => break,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                    got
                })
            })
            .collect();
        let mut tally = Tally::new(n);
        for i in 0..n {
            match if i % 2 == 0 {
                ch.send(i, None, &mut || false)
            } else {
                ch.try_send(i)
            } {
                Ok(()) => {}
                Err(SendError::NoReceiver(i)) => tally.handed_back[i] += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        if round % 2 == 0 {
            ch.close_send().unwrap();
        } else {
            ch.close(false).unwrap();
        }
        for r in receivers {
            for i in r.join().unwrap() {
                tally.received[i] += 1;
            }
        }
        tally.check(&format!("round {round}"));
        assert_eq!(ch.waiting_receivers(), 0);
    }
}

/// Sends with tiny deadlines (and interrupt hooks that fire) racing receivers
/// with tiny deadlines and try_recv: the withdraw-or-taken decision.
///
/// Checked: each item is exactly once received or handed back; a send that
/// returned Ok was received.
#[test]
fn send_timeout_vs_recv() {
    let n = size(20_000, 400_000);
    let ch = Channel::new();
    let barrier = Arc::new(Barrier::new(4));
    let senders: Vec<_> = (0..2)
        .map(|p| {
            let (ch, barrier) = (ch.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut back = Vec::new();
                for i in (p..n).step_by(2) {
                    let r = match i % 4 {
                        0 => ch.send(i, soon((i % 50) as u64), &mut || false),
                        1 => ch.send(i, soon(200), &mut || true),
                        2 => ch.try_send(i),
                        _ => ch.send(i, Some(Instant::now()), &mut || false),
                    };
                    match r {
                        Ok(()) => {}
                        Err(SendError::Timeout(i))
                        | Err(SendError::Interrupted(i))
                        | Err(SendError::NoReceiver(i)) => back.push(i),
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
                back
            })
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let receivers: Vec<_> = (0..2)
        .map(|c| {
            let (ch, barrier, stop) = (ch.clone(), barrier.clone(), stop.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut got = Vec::new();
                let mut k = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    k += 1;
                    let r = if c == 0 {
                        ch.recv(soon(k % 40), &mut || false)
                    } else {
                        ch.try_recv()
                    };
                    if let Ok(i) = r {
                        got.push(i);
                    }
                }
                got
            })
        })
        .collect();
    let mut tally = Tally::new(n);
    for s in senders {
        for i in s.join().unwrap() {
            tally.handed_back[i] += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for r in receivers {
        for i in r.join().unwrap() {
            tally.received[i] += 1;
        }
    }
    tally.check("send_timeout_vs_recv");
    let received = tally.received.iter().filter(|&&r| r == 1).count();
    assert!(received > 0, "no rendezvous happened at all");
    assert!(ch.is_empty());
}
