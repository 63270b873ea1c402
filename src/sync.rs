//! Locks for allocator code: allocation-free, usable before `main` and in a forked child.
//!
//! A `Mutex` is one `u32` word: 0 unlocked, 1 locked, 2 locked with waiters. The
//! uncontended path is one compare-and-swap; a contended thread spins briefly and then
//! sleeps on the word with `futex(2)`. Nothing here allocates, so a lock can be taken from
//! inside `malloc`, and `reset_after_fork` can rebuild it in a child whose other threads
//! vanished while holding it.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A futex-based mutual exclusion lock that never allocates.
pub struct Mutex {
    state: AtomicU32,
}

impl Mutex {
    pub const fn new() -> Mutex {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
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
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
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
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex_wake_one(&self.state);
        }
    }

    /// Whether some thread holds the lock (for assertions only: the answer may be stale).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }

    /// Forget every holder. Only for the child after `fork()`, where the one thread left
    /// holds the lock (taken in the prepare handler) or no thread does.
    pub fn reset_after_fork(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }
}

impl Default for Mutex {
    fn default() -> Self {
        Mutex::new()
    }
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
        &mut *self.0.get()
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
    }
}
