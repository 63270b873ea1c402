//! The fork protocol: which locks `fork()` holds, in what order with libc's, and how the
//! child starts.
//!
//! # Why a protocol at all
//!
//! A child of a multithreaded process has one thread, the one that called `fork`. Had
//! another thread been inside a critical section of mcentral or mheap at that instant, the
//! child would find the lock held for ever and the structure half-updated. So the
//! `pthread_atfork` prepare handler takes every allocator lock, the parent handler
//! releases them, and the child handler reinitialises them (its only thread is their
//! holder).
//!
//! # The order with libc's locks
//!
//! glibc's `fork` runs the prepare handlers first and only then takes its own locks,
//! among them the list of stdio streams (`_IO_list_lock`). Any thread may hold that list
//! while it waits for one stream's lock (`fflush(NULL)`, `exit`), and any thread may hold
//! a stream's lock while it allocates (`getline`, `fprintf`, `fseek` and `flockfile`
//! callers). Were the allocator's locks held from prepare on, this cycle could form:
//! the forking thread holds the allocator's locks and waits for the list; the flusher
//! holds the list and waits for a stream; the stream's holder waits in `malloc` for the
//! allocator. Hence the order, for every thread, forking or not:
//!
//! ```text
//! _IO_list_lock (stdio's stream list) → a stream's lock → mcentral[c].lock → mheap.lock
//!     → CACHES → profile's LOCK
//! ```
//!
//! The prepare handler takes the stream list before any allocator lock, with no
//! allocator lock held while it waits; glibc's `fork` takes the list again afterwards,
//! which is allowed because it is a recursive lock and this thread owns it. No allocator
//! code calls into stdio or waits for any libc lock while it holds one of its own.
//!
//! One libc lock remains after the prepare handlers that the protocol cannot order:
//! glibc 2.34 and later briefly take the NSS database lock to copy its state, and glibc
//! allocates under that lock only while it (re)reads `nsswitch.conf`, so a `fork` that
//! coincides with a thread's first name-service lookup could still wait. glibc's own
//! malloc avoids that only because its locks are taken inside `fork` itself, after every
//! other lock, which a replacement cannot do.
//!
//! # One thread, and re-entry from a signal handler
//!
//! A process that has never had a second thread (glibc's `__libc_single_threaded`) has
//! nobody who could hold a lock at the fork: the handlers do nothing, as glibc's malloc
//! takes no lock then. That also makes `fork` from a signal handler safe there: the
//! interrupted code may hold an allocator lock, and the child, a copy of the same single
//! thread, continues it when the handler returns.
//!
//! In a multithreaded process a signal handler that forks while its thread is already
//! forking (between the prepare and the parent handler) would wait for ever on the locks
//! its own thread holds. The protocol counts nesting instead: the owner's inner prepare
//! only adds one, and the inner parent and child handlers only take it away; the
//! outermost fork's handlers do the work. Signals are blocked while a handler takes or
//! releases the locks, so the count and the locks always agree when a signal lands.

use crate::mcache;
use crate::mcentral::CENTRAL;
use crate::mheap::HEAP;
use crate::profile;
use crate::scavenger;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

extern "C" {
    /// glibc's lock of the list of stdio streams (recursive; exported since glibc 2.2.5).
    fn _IO_list_lock();
    fn _IO_list_unlock();
    /// Makes the list lock free again, whoever held it: for the child.
    fn _IO_list_resetlock();
    /// Non-zero while the process has never had a second thread (glibc 2.32).
    static __libc_single_threaded: libc::c_char;
}

/// How many `fork` calls of the thread `OWNER` are between their prepare and their parent
/// or child handler, 0 when none are. Written only by the owner while it holds every
/// allocator lock (or, to 1 and back to 0, with those locks just taken or about to be
/// released), read by any thread, which only needs to tell whether it is itself the owner.
static DEPTH: AtomicU32 = AtomicU32::new(0);
/// `pthread_self()` of the thread whose `fork` holds the allocator's locks.
static OWNER: AtomicUsize = AtomicUsize::new(0);

/// Registers the handlers. Called once, after the allocator is ready (`pthread_atfork`
/// may allocate).
pub fn install() {
    // SAFETY: the handlers are extern "C" functions of this library, which stays loaded.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

fn single_threaded() -> bool {
    // SAFETY: glibc keeps the variable for the life of the process; it changes only
    // inside pthread_create and fork, so a volatile read of one byte sees a real value.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

fn self_id() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// Whether the calling thread's own fork holds the locks (it is re-entered from a
/// signal handler when it asks in prepare).
fn owned_by_caller() -> bool {
    DEPTH.load(Ordering::Relaxed) > 0 && OWNER.load(Ordering::Relaxed) == self_id()
}

/// Runs `f` with every signal blocked in the calling thread.
fn without_signals(f: impl FnOnce()) {
    // SAFETY: a zeroed sigset_t is a valid (empty) set; sigfillset and pthread_sigmask
    // only read and write the local sets.
    let old = unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    f();
    // SAFETY: restores the mask saved above from a local set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
}

extern "C" fn prepare() {
    if single_threaded() {
        return;
    }
    if owned_by_caller() {
        DEPTH.fetch_add(1, Ordering::Relaxed);
        return;
    }
    without_signals(|| {
        // SAFETY: glibc's exported lock; no allocator lock is held here (lock order above).
        unsafe { _IO_list_lock() };
        for c in CENTRAL.iter().skip(1) {
            c.lock.lock();
        }
        HEAP.lock.lock();
        mcache::CACHES.lock();
        profile::before_fork();
        OWNER.store(self_id(), Ordering::Relaxed);
        DEPTH.store(1, Ordering::Relaxed);
    });
}

extern "C" fn parent() {
    if !owned_by_caller() {
        return; // prepare took nothing: one thread
    }
    if DEPTH.load(Ordering::Relaxed) > 1 {
        DEPTH.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    without_signals(|| {
        DEPTH.store(0, Ordering::Relaxed);
        OWNER.store(0, Ordering::Relaxed);
        profile::after_fork_parent();
        mcache::CACHES.unlock();
        HEAP.lock.unlock();
        for c in CENTRAL.iter().skip(1).rev() {
            c.lock.unlock();
        }
        // SAFETY: taken in prepare by this thread; glibc's fork has dropped its own hold.
        unsafe { _IO_list_unlock() };
    });
}

extern "C" fn child() {
    if !owned_by_caller() {
        // One thread at the fork: the child is an exact copy of it, locks included, and
        // what it holds it releases as the parent would.
        return;
    }
    if DEPTH.load(Ordering::Relaxed) > 1 {
        // The child of a fork made by a signal handler inside an outer fork: the outer
        // one's handlers, which still run in this process when the handler returns,
        // release the locks.
        DEPTH.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    without_signals(|| {
        DEPTH.store(0, Ordering::Relaxed);
        OWNER.store(0, Ordering::Relaxed);
        // The child's only thread took these locks in prepare.
        profile::after_fork_child();
        mcache::CACHES.reset_after_fork();
        HEAP.lock.reset_after_fork();
        for c in CENTRAL.iter().skip(1) {
            c.lock.reset_after_fork();
        }
        // glibc resets the stream list in a multithreaded fork's child before the child
        // handlers run; resetting it again costs nothing and covers a glibc that did not
        // see the process as multithreaded.
        // SAFETY: the child has one thread, which holds no stdio lock here.
        unsafe { _IO_list_resetlock() };
        HEAP.after_fork_child();
        mcache::after_fork_child();
        scavenger::after_fork_child();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `f` on a thread of its own and ends the test process with a failure if it
    /// does not finish within 10 s: a handler that waits on a lock its own thread holds
    /// never would, and with every allocator lock held nothing that allocates (a panic,
    /// the harness) could report it, so the watchdog only writes and exits.
    fn finishes(what: &'static str, f: impl FnOnce() + Send + 'static) {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            f();
            flag.store(true, Ordering::Release);
        });
        for _ in 0..1000 {
            if done.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for part in ["fork tests: ", what, " did not finish within 10 s\n"] {
            // SAFETY: writes a valid buffer to stderr.
            unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
        }
        // SAFETY: ends the process without running anything that could allocate.
        unsafe { libc::_exit(101) };
    }

    /// The tests take every allocator lock: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_fork_inside_a_fork_only_counts() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // The test harness runs each test on a thread of its own: the process is not
        // single-threaded, so prepare takes the locks.
        assert!(!single_threaded());
        finishes("a nested fork's handlers", || {
            prepare();
            assert!(HEAP.lock.is_locked() && mcache::CACHES.is_locked());
            assert!(owned_by_caller());
            // What a signal handler's fork does between the outer prepare and parent:
            // the inner prepare must not wait for the locks this thread holds.
            prepare();
            assert_eq!(DEPTH.load(Ordering::Relaxed), 2);
            parent();
            assert!(
                HEAP.lock.is_locked(),
                "the inner parent released the outer's locks"
            );
            assert!(CENTRAL[1].lock.is_locked());
            prepare();
            child();
            assert!(
                HEAP.lock.is_locked(),
                "the inner child released the outer's locks"
            );
            parent();
            assert_eq!(DEPTH.load(Ordering::Relaxed), 0);
            assert!(!owned_by_caller());
        });
        // Everything is free again: another thread can take every lock.
        finishes("taking the locks afterwards", || {
            for c in CENTRAL.iter().skip(1) {
                c.lock.lock();
                c.lock.unlock();
            }
            HEAP.lock.lock();
            HEAP.lock.unlock();
        });
    }

    #[test]
    fn stdio_list_is_taken_before_the_allocator() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // While another thread holds stdio's stream list, prepare waits for it without
        // holding any allocator lock, so that thread can still allocate (as fflush(NULL)
        // does, through a stream whose holder allocates).
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            // SAFETY: glibc's exported recursive lock, released below on this thread.
            unsafe { _IO_list_lock() };
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // With the list held, the heap lock can still be taken although a fork is
            // waiting (had prepare taken it before the list, this would wait for ever;
            // other tests may hold it for a moment, so no assertion on its state).
            HEAP.lock.lock();
            HEAP.lock.unlock();
            // SAFETY: taken above by this thread.
            unsafe { _IO_list_unlock() };
        });
        held_rx.recv().unwrap();
        let forker = std::thread::spawn(|| {
            prepare();
            parent();
        });
        std::thread::sleep(Duration::from_millis(100)); // prepare is waiting for the list
        go_tx.send(()).unwrap();
        finishes("the list holder", move || holder.join().unwrap());
        finishes("the forking thread", move || forker.join().unwrap());
    }
}
