//! Moving a thread off a CPU it shares with the other side of its round
//! trip (used by the backoff of blocking calls, `wait.rs`).
//!
//! # Why
//!
//! A blocked `get` spins, then yields (`wait::WaitClock::spin`). When the
//! two threads of a round trip (an executor's caller and its worker, an echo
//! loop and its client) end up on one CPU, each yield hands that CPU to the
//! other, and they stay together: neither ever sleeps, so no wake-up places
//! one of them elsewhere, and the load balancer does not move a task that
//! ran a moment ago ("cache hot"), even with another CPU idle. Seen with
//! `perf sched` on 3.14 (AMD EPYC, 2 vCPUs): after the pool had idled, the
//! caller and a worker made 787 and 771 switches on CPU 1 during 3,000 round
//! trips while CPU 0 stayed idle, 9.2 µs per round trip against 4.1 µs on
//! two CPUs; a wake-up on this VM puts the woken thread on its waker's CPU.
//!
//! # How
//!
//! [`move_off_this_cpu`] narrows the thread's affinity to every CPU it may
//! use but the one it is on (the kernel moves it at once) and puts the mask
//! back straight after (the thread stays where it was moved). Nothing else
//! changes: the mask is the caller's own before and after. Between the two
//! calls another thread that changes this thread's affinity would see its
//! change undone; nothing in crossinterp does that, and it would be a race
//! in the program anyway. Linux only; elsewhere it does nothing.

/// Move the calling thread to another CPU it is allowed to run on, leaving
/// its affinity mask as it was. Returns the CPU it left and the one it was
/// moved to, or `None` (one CPU allowed, not Linux, or a call failed, in
/// which case nothing changed).
#[cfg(target_os = "linux")]
pub(crate) fn move_off_this_cpu() -> Option<(usize, usize)> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed.
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `mask` is `size` writable bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut mask) } != 0 {
        return None;
    }
    // SAFETY: no arguments; returns -1 on failure.
    let from = unsafe { libc::sched_getcpu() };
    // SAFETY: `mask` is an initialized cpu set (CPU_* read and write bits only).
    if from < 0
        || unsafe { libc::CPU_COUNT(&mask) } < 2
        || !unsafe { libc::CPU_ISSET(from as usize, &mask) }
    {
        return None;
    }
    let original = mask;
    // SAFETY: as above; `from` is below CPU_SETSIZE (it is set in the mask).
    unsafe { libc::CPU_CLR(from as usize, &mut mask) };
    // SAFETY: pid 0, `mask` is `size` readable bytes with at least one CPU set.
    if unsafe { libc::sched_setaffinity(0, size, &mask) } != 0 {
        return None;
    }
    // SAFETY: no arguments. The thread cannot run on `from` until the mask
    // is restored below.
    let to = unsafe { libc::sched_getcpu() };
    // SAFETY: pid 0, `original` is the mask read above. If this failed the
    // thread would keep the narrowed mask; the only failure for a mask that
    // was just accepted is the cpuset having shrunk meanwhile, where the
    // kernel keeps what is still allowed.
    unsafe { libc::sched_setaffinity(0, size, &original) };
    Some((from as usize, to.max(0) as usize))
}

/// See the Linux definition: elsewhere, nothing to do.
#[cfg(not(target_os = "linux"))]
pub(crate) fn move_off_this_cpu() -> Option<(usize, usize)> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::move_off_this_cpu;

    fn mask() -> libc::cpu_set_t {
        // SAFETY: as in `move_off_this_cpu`.
        unsafe {
            let mut m: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of_val(&m), &mut m),
                0
            );
            m
        }
    }

    fn same(a: &libc::cpu_set_t, b: &libc::cpu_set_t) -> bool {
        // SAFETY: CPU_EQUAL reads two initialized sets.
        unsafe { libc::CPU_EQUAL(a, b) }
    }

    #[test]
    fn moves_to_another_allowed_cpu_and_keeps_the_mask() {
        let before = mask();
        // SAFETY: reads an initialized set.
        let allowed = unsafe { libc::CPU_COUNT(&before) };
        match move_off_this_cpu() {
            Some((from, to)) => {
                assert!(allowed >= 2);
                assert_ne!(from, to);
                // SAFETY: reads an initialized set; `to` < CPU_SETSIZE.
                assert!(unsafe { libc::CPU_ISSET(to, &before) });
            }
            None => assert!(allowed < 2, "{allowed} CPUs allowed, yet no move"),
        }
        assert!(same(&mask(), &before));
    }

    #[test]
    fn does_nothing_with_one_cpu_allowed() {
        let before = mask();
        std::thread::spawn(move || {
            // SAFETY: as in `move_off_this_cpu`; this test thread only.
            unsafe {
                let cpu = libc::sched_getcpu() as usize;
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut one);
                assert_eq!(
                    libc::sched_setaffinity(0, std::mem::size_of_val(&one), &one),
                    0
                );
                assert_eq!(move_off_this_cpu(), None);
                assert!(same(&mask(), &one));
                libc::sched_setaffinity(0, std::mem::size_of_val(&before), &before);
            }
        })
        .join()
        .unwrap();
    }
}
