//! Unit tests of `Channel`: rendezvous, send_nowait (`try_send`), timeouts,
//! interrupts, the close state machine, iteration.

#![cfg(not(loom))]

use crossinterp_core::channel::{Channel, CloseError, RecvError, SendError};
use crossinterp_core::INTERRUPT_CHECK_INTERVAL;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn never() -> impl FnMut() -> bool {
    || false
}

fn in_ms(ms: u64) -> Option<Instant> {
    Some(Instant::now() + Duration::from_millis(ms))
}

fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Start a thread blocked in `send(item, None)`; returns once it is pending.
fn pending_send<T: Send + 'static>(
    ch: &Channel<T>,
    item: T,
) -> thread::JoinHandle<Result<(), SendError<T>>> {
    let before = ch.len();
    let h = {
        let ch = ch.clone();
        thread::spawn(move || ch.send(item, None, &mut never()))
    };
    until("send pending", || ch.len() == before + 1);
    h
}

/// Start a thread blocked in `recv(None)`; returns once it is waiting.
fn waiting_recv<T: Send + 'static>(ch: &Channel<T>) -> thread::JoinHandle<Result<T, RecvError>> {
    let before = ch.waiting_receivers();
    let h = {
        let ch = ch.clone();
        thread::spawn(move || ch.recv(None, &mut never()))
    };
    until("receiver waiting", || ch.waiting_receivers() == before + 1);
    h
}

#[test]
fn send_returns_only_once_received() {
    let ch = Channel::new();
    let returned = Arc::new(AtomicBool::new(false));
    let sender = {
        let (ch, returned) = (ch.clone(), returned.clone());
        thread::spawn(move || {
            let r = ch.send(5u32, None, &mut never());
            returned.store(true, Ordering::SeqCst);
            r
        })
    };
    until("send pending", || ch.len() == 1);
    thread::sleep(Duration::from_millis(30));
    assert!(!returned.load(Ordering::SeqCst), "send returned unreceived");
    assert_eq!(ch.recv(None, &mut never()), Ok(5));
    assert_eq!(sender.join().unwrap(), Ok(()));
    assert!(ch.is_empty());
}

#[test]
fn send_to_waiting_receiver_completes_at_once() {
    let ch = Channel::new();
    let r = waiting_recv(&ch);
    ch.send(1u8, in_ms(0), &mut never()).unwrap();
    assert_eq!(r.join().unwrap(), Ok(1));
}

#[test]
fn pending_sends_are_received_in_order() {
    let ch = Channel::new();
    let senders: Vec<_> = (0..4).map(|i| pending_send(&ch, i)).collect();
    assert_eq!(ch.len(), 4);
    let got: Vec<i32> = (0..4).map(|_| ch.try_recv().unwrap()).collect();
    assert_eq!(got, vec![0, 1, 2, 3]);
    for s in senders {
        assert_eq!(s.join().unwrap(), Ok(()));
    }
}

#[test]
fn try_send_needs_a_waiting_receiver() {
    let ch = Channel::new();
    assert_eq!(ch.try_send("x"), Err(SendError::NoReceiver("x")));
    assert!(ch.is_empty(), "a refused try_send leaves nothing behind");
    let r1 = waiting_recv(&ch);
    let r2 = waiting_recv(&ch);
    assert_eq!(ch.waiting_receivers(), 2);
    ch.try_send("a").unwrap();
    ch.try_send("b").unwrap();
    assert_eq!(ch.waiting_receivers(), 0);
    assert_eq!(ch.try_send("c"), Err(SendError::NoReceiver("c")));
    let mut got = vec![r1.join().unwrap().unwrap(), r2.join().unwrap().unwrap()];
    got.sort();
    assert_eq!(got, vec!["a", "b"]);
}

/// An item handed to a blocked receive is returned by it even if its deadline
/// passes before it runs: the rendezvous completed when `try_send` said Ok.
#[test]
fn handed_item_beats_receiver_deadline() {
    for _ in 0..20 {
        let ch = Channel::new();
        let r = {
            let ch = ch.clone();
            thread::spawn(move || ch.recv(in_ms(3), &mut never()))
        };
        let start = Instant::now();
        loop {
            match ch.try_send(7u8) {
                Ok(()) => {
                    assert_eq!(r.join().unwrap(), Ok(7));
                    break;
                }
                Err(SendError::NoReceiver(_)) if start.elapsed() < Duration::from_secs(5) => {
                    if r.is_finished() {
                        assert_eq!(r.join().unwrap(), Err(RecvError::Timeout));
                        break;
                    }
                    thread::yield_now();
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
}

#[test]
fn try_recv_takes_pending_send() {
    let ch = Channel::new();
    assert_eq!(ch.try_recv(), Err(RecvError::Empty));
    let s = pending_send(&ch, 9u64);
    assert_eq!(ch.try_recv(), Ok(9));
    assert_eq!(s.join().unwrap(), Ok(()));
    assert_eq!(ch.try_recv(), Err(RecvError::Empty));
}

#[test]
fn try_recv_never_takes_a_handed_item() {
    let ch = Channel::new();
    let r = waiting_recv(&ch);
    ch.try_send(1u8).unwrap();
    assert_eq!(ch.try_recv(), Err(RecvError::Empty));
    assert_eq!(r.join().unwrap(), Ok(1));
}

#[test]
fn send_timeout_withdraws_and_hands_back() {
    let ch = Channel::new();
    let start = Instant::now();
    let r = ch.send(String::from("late"), in_ms(100), &mut never());
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(r, Err(SendError::Timeout(String::from("late"))));
    assert!(ch.is_empty());
    assert_eq!(ch.try_recv(), Err(RecvError::Empty));
    // A past deadline with no receiver waiting: withdrawn at once.
    assert_eq!(
        ch.send(String::from("now"), in_ms(0), &mut never()),
        Err(SendError::Timeout(String::from("now")))
    );
}

#[test]
fn recv_timeout() {
    let ch: Channel<u8> = Channel::new();
    let start = Instant::now();
    assert_eq!(ch.recv(in_ms(100), &mut never()), Err(RecvError::Timeout));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(ch.waiting_receivers(), 0);
    assert_eq!(ch.try_send(1), Err(SendError::NoReceiver(1)));
}

#[test]
fn send_interrupted_withdraws() {
    let ch = Channel::new();
    let start = Instant::now();
    let r = ch.send(3u8, None, &mut || true);
    assert_eq!(r, Err(SendError::Interrupted(3)));
    assert!(start.elapsed() >= INTERRUPT_CHECK_INTERVAL);
    assert!(ch.is_empty());
}

#[test]
fn recv_interrupted_unregisters() {
    let ch: Channel<u8> = Channel::new();
    let mut calls = 0;
    let r = ch.recv(None, &mut || {
        calls += 1;
        calls == 3
    });
    assert_eq!(r, Err(RecvError::Interrupted));
    assert_eq!(calls, 3);
    assert_eq!(ch.waiting_receivers(), 0);
    assert_eq!(ch.try_send(1), Err(SendError::NoReceiver(1)));
}

#[test]
fn hook_panic_in_send_withdraws_item() {
    let ch = Channel::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ch.send(1u8, None, &mut || panic!("hook panicked"))
    }));
    assert!(r.is_err());
    assert!(ch.is_empty(), "the panicking send's item stayed offered");
    assert_eq!(ch.try_recv(), Err(RecvError::Empty));
}

#[test]
fn close_send_keeps_pending_receivable() {
    let ch = Channel::new();
    let s = pending_send(&ch, 1u8);
    assert_eq!(ch.close_send(), Ok(()));
    assert_eq!(ch.close_send(), Err(CloseError::Closed));
    assert!(ch.is_send_closed() && !ch.is_recv_closed());
    assert_eq!(ch.send(2, None, &mut never()), Err(SendError::Closed(2)));
    assert_eq!(ch.try_send(2), Err(SendError::Closed(2)));
    assert_eq!(ch.recv(None, &mut never()), Ok(1));
    assert_eq!(s.join().unwrap(), Ok(()));
    assert_eq!(ch.recv(None, &mut never()), Err(RecvError::Closed));
    assert_eq!(ch.try_recv(), Err(RecvError::Closed));
    // The receive end can still be closed, then the whole channel is.
    assert_eq!(ch.close_recv(), Ok(()));
    assert_eq!(ch.close(false), Err(CloseError::Closed));
}

#[test]
fn close_send_wakes_blocked_receivers() {
    let ch: Channel<u8> = Channel::new();
    let rs: Vec<_> = (0..3).map(|_| waiting_recv(&ch)).collect();
    ch.close_send().unwrap();
    for r in rs {
        assert_eq!(r.join().unwrap(), Err(RecvError::Closed));
    }
}

#[test]
fn close_recv_refused_while_pending() {
    let ch = Channel::new();
    let s = pending_send(&ch, 1u8);
    assert_eq!(ch.close_recv(), Err(CloseError::NotEmpty { pending: 1 }));
    assert!(
        !ch.is_recv_closed() && !ch.is_send_closed(),
        "refusal changes nothing"
    );
    assert_eq!(ch.try_recv(), Ok(1));
    assert_eq!(s.join().unwrap(), Ok(()));
    assert_eq!(ch.close_recv(), Ok(()));
    assert_eq!(ch.close_recv(), Err(CloseError::Closed));
    assert!(ch.is_recv_closed() && ch.is_send_closed());
    assert_eq!(ch.send(2, None, &mut never()), Err(SendError::Closed(2)));
    assert_eq!(ch.recv(None, &mut never()), Err(RecvError::Closed));
}

#[test]
fn close_recv_wakes_blocked_receivers() {
    let ch: Channel<u8> = Channel::new();
    let r = waiting_recv(&ch);
    ch.close_recv().unwrap();
    assert_eq!(r.join().unwrap(), Err(RecvError::Closed));
}

#[test]
fn close_not_forced_refused_while_pending() {
    let ch = Channel::new();
    let s1 = pending_send(&ch, 1u8);
    let s2 = pending_send(&ch, 2u8);
    assert_eq!(ch.close(false), Err(CloseError::NotEmpty { pending: 2 }));
    assert_eq!(ch.try_recv(), Ok(1));
    assert_eq!(ch.try_recv(), Ok(2));
    assert_eq!(s1.join().unwrap(), Ok(()));
    assert_eq!(s2.join().unwrap(), Ok(()));
    assert_eq!(ch.close(false), Ok(0));
    assert_eq!(ch.close(true), Err(CloseError::Closed));
}

#[test]
fn close_forced_hands_pending_back_to_senders() {
    let ch = Channel::new();
    let senders: Vec<_> = (0..3).map(|i| pending_send(&ch, i)).collect();
    let r = ch.close(true);
    assert_eq!(r, Ok(3));
    for (i, s) in senders.into_iter().enumerate() {
        assert_eq!(s.join().unwrap(), Err(SendError::Closed(i)));
    }
    assert!(ch.is_empty());
    assert_eq!(ch.recv(None, &mut never()), Err(RecvError::Closed));
}

#[test]
fn close_after_close_send_with_pending() {
    let ch = Channel::new();
    let s = pending_send(&ch, 1u8);
    ch.close_send().unwrap();
    assert_eq!(ch.close(false), Err(CloseError::NotEmpty { pending: 1 }));
    assert_eq!(ch.close(true), Ok(1));
    assert_eq!(s.join().unwrap(), Err(SendError::Closed(1)));
}

#[test]
fn iteration_until_closed() {
    let ch = Channel::new();
    let producer = {
        let ch = ch.clone();
        thread::spawn(move || {
            for i in 0..10 {
                ch.send(i, None, &mut never()).unwrap();
            }
            ch.close_send().unwrap();
        })
    };
    let got: Vec<i32> = ch.iter().collect();
    producer.join().unwrap();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    let mut n = 0;
    for _ in &ch {
        n += 1;
    }
    assert_eq!(n, 0);
}

#[test]
fn clones_share_and_ids_differ() {
    let a: Channel<u8> = Channel::new();
    let b = a.clone();
    let c: Channel<u8> = Channel::default();
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    let r = waiting_recv(&b);
    a.try_send(4).unwrap();
    assert_eq!(r.join().unwrap(), Ok(4));
    assert!(format!("{a:?}").contains("pending: 0"));
}

#[test]
fn error_display_and_into_inner() {
    assert_eq!(
        SendError::NoReceiver(1).to_string(),
        "no receiver is waiting on the channel"
    );
    assert_eq!(format!("{:?}", SendError::Timeout(1)), "Timeout(..)");
    assert_eq!(SendError::Closed(5).into_inner(), 5);
    assert_eq!(
        CloseError::NotEmpty { pending: 2 }.to_string(),
        "the channel has 2 pending item(s)"
    );
    assert_eq!(RecvError::Closed.to_string(), "the channel is closed");
}
