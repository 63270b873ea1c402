//! Locks for allocator code: allocation-free, usable before `main` and in a forked child.
//!
//! A `Mutex` is one `u32` word: 0 unlocked, 1 locked, 2 locked with waiters. The
//! uncontended path is one compare-and-swap; a contended thread spins briefly and then
//! sleeps on the word with `futex(2)`. Nothing here allocates, so a lock can be taken from
//! inside `malloc`, and `reset_after_fork` can rebuild it in a child whose other threads
//! vanished while holding it.
//!
//! Each lock also counts its traffic, for the reports (`counts`): acquisitions, contended
//! acquisitions (the first compare-and-swap failed) and the time it was held, read from
//! the CPU's cycle counter (`ticks`). Only the holder writes the counters, so they are
//! plain loads and stores, no read-modify-write: the cost is two counter reads and a few
//! stores per critical section, and nothing on the paths that take no lock.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A futex-based mutual exclusion lock that never allocates, counting its traffic.
pub struct Mutex {
    state: AtomicU32,
    /// The counters below are written only by the thread that holds the lock (Relaxed
    /// load and store, never a read-modify-write); other threads may read them at any
    /// time and see a recent value.
    acquisitions: AtomicU64,
    contended: AtomicU64,
    /// Sum of the hold times, in `ticks`.
    held_ticks: AtomicU64,
    /// `ticks()` when the holder acquired the lock.
    since: AtomicU64,
}

/// A lock's traffic since the process started (`Mutex::counts`).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct LockCounts {
    /// Times the lock was taken.
    pub acquisitions: u64,
    /// Of those, times it was taken after waiting (spinning or sleeping) for another holder.
    pub contended: u64,
    /// Time the lock was held, in nanoseconds, summed over its acquisitions.
    pub held_ns: u64,
}

/// Adds `n` to a counter that only the lock's holder writes.
#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Mutex {
    pub const fn new() -> Mutex {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            acquisitions: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            held_ticks: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn lock(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        bump(&self.acquisitions, 1);
        self.since.store(ticks(), Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        self.acquire_contended();
        bump(&self.contended, 1);
    }

    fn acquire_contended(&self) {
        // Spin a little first: critical sections here are short.
        for _ in 0..100 {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            futex_wait(&self.state, CONTENDED);
        }
    }

    #[inline]
    pub fn unlock(&self) {
        let held = ticks().wrapping_sub(self.since.load(Ordering::Relaxed));
        bump(&self.held_ticks, held);
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex_wake_one(&self.state);
        }
    }

    /// The lock's traffic so far. Exact when no thread holds the lock; otherwise each
    /// figure may lag by the critical sections in progress.
    pub fn counts(&self) -> LockCounts {
        LockCounts {
            acquisitions: self.acquisitions.load(Ordering::Relaxed),
            contended: self.contended.load(Ordering::Relaxed),
            held_ns: ticks_to_ns(self.held_ticks.load(Ordering::Relaxed)),
        }
    }

    /// Whether some thread holds the lock (for assertions only: the answer may be stale).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }

    /// Forget every holder. Only for the child after `fork()`, where the one thread left
    /// holds the lock (taken in the prepare handler) or no thread does. The counters stay:
    /// the child's report covers its parent's traffic before the fork, as its other
    /// figures do.
    pub fn reset_after_fork(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }
}

impl Default for Mutex {
    fn default() -> Self {
        Mutex::new()
    }
}

// ---- the clock of the hold times -----------------------------------------------------

/// The CPU's cycle counter: `rdtsc` on x86-64 (constant rate on every CPU of the last
/// fifteen years), the virtual counter on aarch64; elsewhere, and under Miri, the
/// monotonic clock in nanoseconds. A few nanoseconds to read, no system call, no fence:
/// a hold time may be off by the few instructions the CPU reorders around the read,
/// which the sum over many acquisitions averages out.
#[inline(always)]
fn ticks() -> u64 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // SAFETY: rdtsc reads a counter; it has no preconditions on x86-64 user code.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    {
        let v: u64;
        // SAFETY: CNTVCT_EL0 is readable from user space on Linux (the kernel enables
        // EL0 access to the virtual counter); reading it touches no memory.
        unsafe {
            core::arch::asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }
    #[cfg(any(miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    {
        monotonic_ns()
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (the precise one: the rate of `ticks` is measured
/// against it).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `ticks()` and `monotonic_ns()` when the library was loaded: the rate of the counter
/// is measured over the process's lifetime, the same interval the counts cover.
static START_TICKS: AtomicU64 = AtomicU64::new(0);
static START_NS: AtomicU64 = AtomicU64::new(0);

/// Runs when the library (or the program it is linked into) is loaded.
extern "C" fn remember_start() {
    START_TICKS.store(ticks(), Ordering::Relaxed);
    START_NS.store(monotonic_ns(), Ordering::Release);
}

#[used]
#[link_section = ".init_array"]
static REMEMBER_START: extern "C" fn() = remember_start;

/// Nanoseconds since the library was loaded (0 if its constructor has not run).
pub fn elapsed_ns() -> u64 {
    let start = START_NS.load(Ordering::Acquire);
    if start == 0 {
        return 0;
    }
    monotonic_ns().saturating_sub(start)
}

/// `t` ticks in nanoseconds, at the rate the counter ran since the library was loaded.
fn ticks_to_ns(t: u64) -> u64 {
    if cfg!(any(
        miri,
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    )) {
        return t;
    }
    let ns = elapsed_ns();
    let dt = ticks().wrapping_sub(START_TICKS.load(Ordering::Relaxed));
    if ns == 0 || dt == 0 {
        return t;
    }
    // In f64, not u128: a u128 division is a call to compiler_builtins' `__udivti3`,
    // which on aarch64 comes with unwind tables that need `rust_eh_personality`, a symbol
    // this panic-free library does not have. 53 bits of precision are plenty for a report.
    (t as f64 * (ns as f64 / dt as f64)) as u64
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    futex_wait_timeout(word, expected, None);
}

/// Sleeps while `*word == expected`, at most `timeout_ns` when given. Returns early on a
/// wake-up, a signal, or when the word already differs.
pub fn futex_wait_timeout(word: &AtomicU32, expected: u32, timeout_ns: Option<u64>) {
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT only reads the word at this valid, aligned address and the
    // optional relative timeout; a spurious return is harmless because every caller
    // re-checks its condition.
    unsafe {
        let e = errno::errno();
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            tsp,
        );
        errno::set_errno(e);
    }
}

/// Wakes one thread sleeping on `word`.
pub fn futex_wake_one(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE does not access memory beyond using the address as a key.
    unsafe {
        let e = errno::errno();
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
        errno::set_errno(e);
    }
}

/// Data guarded by a `Mutex` that lives elsewhere (the Go style: a struct's fields say which
/// lock guards them). Access is `unsafe`: the caller promises it holds the lock.
pub struct Guarded<T>(UnsafeCell<T>);

// SAFETY: every access goes through `get`, whose contract requires the guarding lock.
unsafe impl<T> Sync for Guarded<T> {}

impl<T> Guarded<T> {
    pub const fn new(v: T) -> Guarded<T> {
        Guarded(UnsafeCell::new(v))
    }

    /// # Safety
    /// The caller holds the lock that guards this value, and no other reference to it is live.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller holds the guarding lock and no other reference is live (the
        // contract above), so this is the only access to the value.
        unsafe { &mut *self.0.get() }
    }

    pub fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn mutex_excludes() {
        struct Shared {
            lock: Mutex,
            count: Guarded<u64>,
        }
        let s = Arc::new(Shared {
            lock: Mutex::new(),
            count: Guarded::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        s.lock.lock();
                        // SAFETY: s.lock is held.
                        unsafe { *s.count.get() += 1 };
                        s.lock.unlock();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        s.lock.lock();
        // SAFETY: s.lock is held.
        assert_eq!(unsafe { *s.count.get() }, 400_000);
        s.lock.unlock();
        assert!(!s.lock.is_locked());
        let c = s.lock.counts();
        assert_eq!(c.acquisitions, 400_001);
        assert!(c.contended <= 400_000, "{c:?}");
    }

    /// Every acquisition counts, exactly: a lock taken N times reads N more.
    #[test]
    fn acquisitions_are_exact() {
        let m = Mutex::new();
        m.lock();
        m.unlock();
        let before = m.counts();
        for _ in 0..12_345 {
            m.lock();
            m.unlock();
        }
        let after = m.counts();
        assert_eq!(after.acquisitions - before.acquisitions, 12_345);
        assert_eq!(after.contended, 0, "no other thread: {after:?}");
    }

    /// A thread that finds the lock held counts one contended acquisition, and the time
    /// the holder kept it counts as held.
    #[test]
    fn contention_and_hold_time_count() {
        let m = Arc::new(Mutex::new());
        m.lock();
        let waiter = {
            let m = m.clone();
            std::thread::spawn(move || {
                m.lock();
                m.unlock();
            })
        };
        // long enough for the waiter to try, spin and sleep on the word
        std::thread::sleep(std::time::Duration::from_millis(50));
        m.unlock();
        waiter.join().unwrap();
        let c = m.counts();
        assert_eq!(c.acquisitions, 2, "{c:?}");
        assert_eq!(c.contended, 1, "{c:?}");
        assert!(
            (50_000_000..5_000_000_000).contains(&c.held_ns),
            "held 50 ms at least: {c:?}"
        );
    }
}
