//! The scavenger: a background thread that returns idle free pages to the OS.
//!
//! Pacing follows Go's `mgcscavenge.go`, adapted to explicit `free`:
//! - **Goal**: the heap keeps what is in use plus 10% of it resident (in use plus free
//!   pages not yet released); resident free pages beyond that are the scavenger's work
//!   (`HeapStats::excess_pages`).
//! - **Idle delay**: a free span is released only after it has stayed free for
//!   `GOALLOC_SCAVENGE_DELAY_MS`, so memory freed and reallocated in a loop stays resident.
//! - **Order**: the free spans that have waited longest first (never a page of a span in
//!   use), in chunks of at most `CHUNK_PAGES`, each taken off the free lists under the heap
//!   lock and released with `madvise` without it.
//! - **CPU budget**: 1% of one core, as a token bucket of the thread's own CPU time that
//!   refills at 10 ms per second and holds at most 500 ms. `madvise` costs 0.04 to 0.14 ms
//!   of kernel time per MiB released, by machine and load, so a sudden drop of a heap of
//!   3.5 to 12 GiB is released in one burst; over a minute the thread stays within 2%
//!   of a core, and the long-run rate is 1%.
//!
//! The thread starts only once the excess passes `START_EXCESS_PAGES`, so a small
//! short-lived program never gets one. It is started from the tails of the allocator's
//! slow paths (`poll`), where no lock is held, because `pthread_create` itself calls
//! `malloc`. It blocks every signal, is detached and named `goalloc-scav`, and sleeps on a
//! futex while there is nothing to do; `free` wakes it when the excess passes
//! `WAKE_EXCESS_PAGES`. A forked child starts its own when it needs one.

use crate::mheap::HEAP;
use crate::options;
use crate::os::{self, ReleaseMode};
use crate::sizeclass::PAGE_SHIFT;
use crate::sync::{futex_wait_timeout, futex_wake_one};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Excess at which the thread is first started: 4 MiB.
const START_EXCESS_PAGES: usize = (4 << 20) >> PAGE_SHIFT;
/// Excess at which a parked thread is woken: 1 MiB.
const WAKE_EXCESS_PAGES: usize = (1 << 20) >> PAGE_SHIFT;
/// Most pages released per chunk: 16 MiB.
const CHUNK_PAGES: usize = (16 << 20) >> PAGE_SHIFT;
/// CPU budget: the bucket refills at 1/BUDGET_DIVISOR of elapsed time.
const BUDGET_DIVISOR: u64 = 100;
/// Most CPU time the bucket holds: enough to release a few GiB in one burst. At 100 ms,
/// a freed 1 GiB heap ran out of budget on a loaded 2-core machine (0.1-0.14 ms per MiB)
/// and took over 5 s to fall below 64 MiB, the last part 16 MiB per half second.
const BUCKET_NS: i64 = 500_000_000;

const NOT_STARTED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(NOT_STARTED);
static START_WANTED: AtomicBool = AtomicBool::new(false);
static PARKED: AtomicBool = AtomicBool::new(false);
/// The futex word the thread sleeps on; bumped to wake it.
static WAKE: AtomicU32 = AtomicU32::new(0);

/// Bytes the scavenger thread has released.
pub static RELEASED_BYTES: AtomicU64 = AtomicU64::new(0);
/// Chunks it has released.
pub static CHUNKS: AtomicU64 = AtomicU64::new(0);
/// CPU time it has used, in nanoseconds.
pub static CPU_NS: AtomicU64 = AtomicU64::new(0);
/// Times it woke up (from a park or a timed sleep).
pub static WAKEUPS: AtomicU64 = AtomicU64::new(0);

fn enabled() -> bool {
    options::get(options::SCAVENGE) != 0
}

pub fn release_mode() -> ReleaseMode {
    if options::get(options::MADVISE) == options::MADVISE_FREE {
        ReleaseMode::Free
    } else {
        ReleaseMode::DontNeed
    }
}

/// Called after mheap freed a span, without locks, with the excess it saw.
#[inline]
pub fn on_free(excess_pages: usize) {
    if excess_pages < WAKE_EXCESS_PAGES {
        return;
    }
    match STATE.load(Ordering::Relaxed) {
        RUNNING if PARKED.load(Ordering::Relaxed) && PARKED.swap(false, Ordering::AcqRel) => {
            WAKE.fetch_add(1, Ordering::Release);
            futex_wake_one(&WAKE);
        }
        NOT_STARTED if excess_pages >= START_EXCESS_PAGES && enabled() => {
            START_WANTED.store(true, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// Starts the thread if `on_free` asked for it. Call only where no allocator lock is held
/// and no cache is half-updated: `pthread_create` allocates.
#[inline]
pub fn poll() {
    if START_WANTED.load(Ordering::Relaxed) {
        start();
    }
}

#[cold]
#[inline(never)]
fn start() {
    START_WANTED.store(false, Ordering::Relaxed);
    if STATE
        .compare_exchange(NOT_STARTED, STARTING, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    // SAFETY: plain pthread calls on local, initialised structures; the new thread runs
    // `thread_main`, which touches only allocator globals.
    let ok = unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        // The thread inherits this mask: it must never run the program's signal handlers.
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 256 << 10);
        let mut tid: libc::pthread_t = 0;
        let e = errno::errno();
        let rc = libc::pthread_create(&mut tid, &attr, thread_main, core::ptr::null_mut());
        errno::set_errno(e);
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        rc == 0
    };
    STATE.store(if ok { RUNNING } else { FAILED }, Ordering::Release);
}

/// Whether the scavenger thread is running in this process.
pub fn running() -> bool {
    STATE.load(Ordering::Acquire) == RUNNING
}

/// In a forked child: the parent's thread did not come along.
pub fn after_fork_child() {
    STATE.store(NOT_STARTED, Ordering::Relaxed);
    START_WANTED.store(false, Ordering::Relaxed);
    PARKED.store(false, Ordering::Relaxed);
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn sleep(ns: u64) {
    let gen = WAKE.load(Ordering::Acquire);
    futex_wait_timeout(&WAKE, gen, Some(ns));
    WAKEUPS.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: the name is a NUL-terminated string under 16 bytes.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"goalloc-scav".as_ptr()) };
    let delay_ns = options::get(options::SCAVENGE_DELAY_MS).saturating_mul(1_000_000);
    let mode = release_mode();
    let mut tokens = BUCKET_NS;
    let mut last = clock_ns(libc::CLOCK_MONOTONIC);
    loop {
        let now = clock_ns(libc::CLOCK_MONOTONIC);
        let refill = ((now - last) / BUDGET_DIVISOR) as i64;
        tokens = (tokens + refill).min(BUCKET_NS);
        last = now;
        if tokens < 0 {
            // Over budget: sleep until the bucket is positive again.
            sleep((-tokens) as u64 * BUDGET_DIVISOR);
            continue;
        }
        let cpu0 = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        let r = HEAP.scavenge_chunk(os::nanotime(), delay_ns, CHUNK_PAGES, mode, true);
        let cpu = clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - cpu0;
        tokens -= cpu as i64;
        CPU_NS.fetch_add(cpu, Ordering::Relaxed);
        if r.bytes > 0 {
            RELEASED_BYTES.fetch_add(r.bytes as u64, Ordering::Relaxed);
            CHUNKS.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if r.wait_ns > 0 {
            // Work exists but is not idle long enough yet. The coarse clock that stamps
            // free spans lags by a few milliseconds: add that much.
            sleep(r.wait_ns + 5_000_000);
            continue;
        }
        // Nothing to do: park until `on_free` sees an excess again.
        let gen = WAKE.load(Ordering::Acquire);
        PARKED.store(true, Ordering::Release);
        if HEAP.excess_pages() >= WAKE_EXCESS_PAGES {
            PARKED.store(false, Ordering::Relaxed);
            continue;
        }
        futex_wait_timeout(&WAKE, gen, None);
        PARKED.store(false, Ordering::Relaxed);
        WAKEUPS.fetch_add(1, Ordering::Relaxed);
    }
}
