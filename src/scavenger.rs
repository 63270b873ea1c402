//! The scavenger: a background thread that returns idle free pages to the OS.
//!
//! Pacing follows Go's `mgcscavenge.go`, adapted to explicit `free`:
//! - **Goal**: the heap keeps what is in use plus 10% of it resident (in use plus free
//!   pages not yet released); resident free pages beyond that are the scavenger's work
//!   (`HeapStats::excess_pages`).
//! - **Idle delay**: a free span is released only after it has stayed free for
//!   `GOALLOC_SCAVENGE_DELAY_MS`, so memory freed and reallocated in a loop stays resident.
//! - **Order**: the free spans that have waited longest first (never a page of a span in
//!   use), in chunks of at most `CHUNK_PAGES` and no more than the excess, each taken off
//!   the free lists under the heap lock and released with `madvise` without it.
//! - **CPU budget**: 1% of one core, as a token bucket of the thread's own CPU time that
//!   refills at 1/`BUDGET_DIVISOR` of elapsed time and holds at most `BUCKET_NS`, so that
//!   a sudden drop of a large heap is released in one burst and the long-run rate is 1%.
//!
//! The policy (how much per wake-up, when to sleep, when to park) is [`Pacer::step`],
//! written against two narrow interfaces as Go's `scavengerState` is against its
//! `scavenge` and `sleepStub` functions: [`Pages`], what the scavenger asks of the heap
//! (the excess, and the release of its oldest resident free pages), and [`Clock`], its
//! time. The thread passes `mheap::HEAP` and the OS clocks; the tests pass a simulated
//! heap and clock and check the pacing without real time.
//!
//! The thread starts once the excess passes `START_EXCESS_PAGES`, so a small short-lived
//! program never gets one. It is started from the tails of the allocator's slow paths
//! (`poll`), where no lock is held, because `pthread_create` itself calls `malloc`. It
//! blocks every signal, is detached and named `goalloc-scav`, and when there is nothing to
//! do it waits in `MHeap::wait_for_excess` until a free leaves `WAKE_EXCESS_PAGES` over the
//! goal. Calls go downward only: the slow paths call `poll`, the scavenger calls mheap and
//! os, and mheap never calls the scavenger. A forked child starts its own when it needs one.

use crate::mheap::{MHeap, Scavenged, HEAP};
use crate::options;
use crate::os::ReleaseMode;
use crate::sizeclass::PAGE_SHIFT;
use crate::sync::futex_wait_timeout;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Excess at which the thread is first started: 4 MiB.
const START_EXCESS_PAGES: usize = (4 << 20) >> PAGE_SHIFT;
/// Excess at which a parked thread is woken: 1 MiB.
const WAKE_EXCESS_PAGES: usize = (1 << 20) >> PAGE_SHIFT;
/// Most pages released per chunk: 16 MiB, so that no span is off the free lists for long
/// and the budget is checked between chunks.
const CHUNK_PAGES: usize = (16 << 20) >> PAGE_SHIFT;
/// CPU budget: the bucket refills at 1/BUDGET_DIVISOR of elapsed time.
const BUDGET_DIVISOR: u64 = 100;
/// Most CPU time the bucket holds: enough that a heap of a few GiB freed at once is
/// released in one burst, since `madvise`'s kernel time grows with the bytes released,
/// rather than over minutes at the long-run rate (figures in
/// `benches/results/scavenge_index.md`).
const BUCKET_NS: i64 = 500_000_000;

const NOT_STARTED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
/// `pthread_create` failed, or `GOALLOC_SCAVENGE=0`: no thread in this process.
const FAILED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// The word the thread's timed sleeps wait on; nothing wakes it early.
static SLEEP: AtomicU32 = AtomicU32::new(0);

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

/// What the scavenger asks of the page heap.
pub trait Pages {
    /// Resident free pages beyond the retained goal.
    fn excess_pages(&self) -> usize;
    /// Releases at most `max_pages` of the resident free pages that have waited longest,
    /// if they were freed at least `min_age_ns` before `now`; else says how long until
    /// some are (`wait_ns`), or that none are free (0).
    fn release_oldest(
        &self,
        now: u64,
        min_age_ns: u64,
        max_pages: usize,
        mode: ReleaseMode,
    ) -> Scavenged;
}

impl Pages for MHeap {
    fn excess_pages(&self) -> usize {
        MHeap::excess_pages(self)
    }

    fn release_oldest(
        &self,
        now: u64,
        min_age_ns: u64,
        max_pages: usize,
        mode: ReleaseMode,
    ) -> Scavenged {
        MHeap::release_oldest(self, now, min_age_ns, max_pages, mode)
    }
}

/// The scavenger's time.
pub trait Clock {
    /// Monotonic time in nanoseconds, on the clock of the heap's `free_time` stamps
    /// (`os::nanotime`) or ahead of it.
    fn now(&self) -> u64;
    /// The CPU time the scavenger's thread has used, in nanoseconds.
    fn cpu(&self) -> u64;
}

/// The OS clocks: `CLOCK_MONOTONIC`, which never lags the coarse clock that stamps free
/// spans, so that a span is old enough after the wait `release_oldest` named; and the
/// thread's CPU time.
struct OsClock;

impl Clock for OsClock {
    fn now(&self) -> u64 {
        clock_ns(libc::CLOCK_MONOTONIC)
    }

    fn cpu(&self) -> u64 {
        clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
    }
}

/// What the thread does after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// A chunk was released: step again.
    Continue,
    /// Sleep this many nanoseconds: over the CPU budget, or the pages over the goal have
    /// not been idle long enough yet.
    Sleep(u64),
    /// Nothing to release: wait until a free leaves an excess again.
    Park,
}

/// One step's outcome.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    pub next: Next,
    /// Bytes released.
    pub bytes: usize,
    /// CPU time spent releasing them.
    pub cpu_ns: u64,
}

/// The scavenger's pacing: the idle delay, the release mode and the CPU budget.
pub struct Pacer {
    delay_ns: u64,
    mode: ReleaseMode,
    /// The budget's token bucket, in nanoseconds of CPU time; negative when overdrawn.
    tokens: i64,
    /// When the bucket was last refilled.
    last: u64,
}

impl Pacer {
    /// A pacer with a full bucket at time `now`.
    pub fn new(now: u64, delay_ns: u64, mode: ReleaseMode) -> Pacer {
        Pacer {
            delay_ns,
            mode,
            tokens: BUCKET_NS,
            last: now,
        }
    }

    /// One wake-up: refills the budget; when it is not overdrawn and pages are over the
    /// goal, releases one chunk (at most `CHUNK_PAGES`, and no more than the excess) of the
    /// oldest pages idle for the delay; says what to do next.
    pub fn step(&mut self, pages: &impl Pages, clock: &impl Clock) -> Step {
        let now = clock.now();
        let refill = (now.saturating_sub(self.last) / BUDGET_DIVISOR) as i64;
        self.tokens = (self.tokens + refill).min(BUCKET_NS);
        self.last = now;
        let mut step = Step {
            next: Next::Park,
            bytes: 0,
            cpu_ns: 0,
        };
        if self.tokens < 0 {
            // Over budget: sleep until the bucket is positive again.
            step.next = Next::Sleep(self.tokens.unsigned_abs() * BUDGET_DIVISOR);
            return step;
        }
        let excess = pages.excess_pages();
        if excess == 0 {
            return step;
        }
        let cpu0 = clock.cpu();
        let r = pages.release_oldest(now, self.delay_ns, excess.min(CHUNK_PAGES), self.mode);
        step.cpu_ns = clock.cpu().saturating_sub(cpu0);
        self.tokens -= step.cpu_ns as i64;
        step.bytes = r.bytes;
        step.next = if r.bytes > 0 {
            Next::Continue
        } else if r.wait_ns > 0 {
            Next::Sleep(r.wait_ns)
        } else {
            Next::Park
        };
        step
    }
}

/// Starts the thread once the heap's excess passed `START_EXCESS_PAGES`. Call only where
/// no allocator lock is held and no cache is half-updated: `pthread_create` allocates.
#[inline]
pub fn poll() {
    if HEAP.excess_hint() >= START_EXCESS_PAGES && STATE.load(Ordering::Relaxed) == NOT_STARTED {
        start();
    }
}

#[cold]
#[inline(never)]
fn start() {
    if STATE
        .compare_exchange(NOT_STARTED, STARTING, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    if !enabled() {
        STATE.store(FAILED, Ordering::Release);
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

extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: the name is a NUL-terminated string under 16 bytes.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), c"goalloc-scav".as_ptr()) };
    let delay_ns = options::get(options::SCAVENGE_DELAY_MS).saturating_mul(1_000_000);
    let mut pacer = Pacer::new(OsClock.now(), delay_ns, release_mode());
    loop {
        let step = pacer.step(&HEAP, &OsClock);
        CPU_NS.fetch_add(step.cpu_ns, Ordering::Relaxed);
        if step.bytes > 0 {
            RELEASED_BYTES.fetch_add(step.bytes as u64, Ordering::Relaxed);
            CHUNKS.fetch_add(1, Ordering::Relaxed);
        }
        match step.next {
            Next::Continue => continue,
            Next::Sleep(ns) => futex_wait_timeout(&SLEEP, 0, Some(ns)),
            Next::Park => {
                if !HEAP.wait_for_excess(WAKE_EXCESS_PAGES) {
                    // The excess is back already: no sleep, no wake-up.
                    continue;
                }
            }
        }
        WAKEUPS.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    /// Simulated time: tests advance it, and the simulated heap charges CPU time to it.
    #[derive(Default)]
    struct FakeClock {
        now: Cell<u64>,
        cpu: Cell<u64>,
    }

    impl Clock for FakeClock {
        fn now(&self) -> u64 {
            self.now.get()
        }
        fn cpu(&self) -> u64 {
            self.cpu.get()
        }
    }

    impl FakeClock {
        fn sleep(&self, ns: u64) {
            self.now.set(self.now.get() + ns);
        }
    }

    /// A heap with `excess` resident free pages over the goal, all freed at `freed_at`;
    /// releasing costs `ns_per_page` of CPU (and as much wall time).
    struct FakeHeap<'a> {
        clock: &'a FakeClock,
        excess: Cell<usize>,
        freed_at: u64,
        ns_per_page: u64,
        /// `max_pages` of each call of `release_oldest`.
        asked: Cell<[usize; 64]>,
        calls: Cell<usize>,
    }

    impl<'a> FakeHeap<'a> {
        fn new(clock: &'a FakeClock, excess: usize, freed_at: u64, ns_per_page: u64) -> Self {
            FakeHeap {
                clock,
                excess: Cell::new(excess),
                freed_at,
                ns_per_page,
                asked: Cell::new([0; 64]),
                calls: Cell::new(0),
            }
        }
    }

    impl Pages for FakeHeap<'_> {
        fn excess_pages(&self) -> usize {
            self.excess.get()
        }

        fn release_oldest(
            &self,
            now: u64,
            min_age_ns: u64,
            max_pages: usize,
            _: ReleaseMode,
        ) -> Scavenged {
            let n = self.calls.get();
            let mut asked = self.asked.get();
            asked[n % 64] = max_pages;
            self.asked.set(asked);
            self.calls.set(n + 1);
            if self.excess.get() == 0 {
                return Scavenged {
                    bytes: 0,
                    wait_ns: 0,
                };
            }
            if now < self.freed_at + min_age_ns {
                return Scavenged {
                    bytes: 0,
                    wait_ns: self.freed_at + min_age_ns - now,
                };
            }
            let pages = max_pages.min(self.excess.get());
            self.excess.set(self.excess.get() - pages);
            let cost = pages as u64 * self.ns_per_page;
            self.clock.cpu.set(self.clock.cpu.get() + cost);
            self.clock.now.set(self.clock.now.get() + cost);
            Scavenged {
                bytes: pages << PAGE_SHIFT,
                wait_ns: 0,
            }
        }
    }

    #[test]
    fn releases_the_excess_in_chunks_then_parks() {
        let clock = FakeClock::default();
        clock.sleep(10 * S);
        let excess = 5 * CHUNK_PAGES + 100;
        let heap = FakeHeap::new(&clock, excess, 0, 10);
        let mut pacer = Pacer::new(clock.now(), S, ReleaseMode::DontNeed);
        let mut released = 0;
        let mut steps = 0;
        loop {
            let step = pacer.step(&heap, &clock);
            released += step.bytes;
            steps += 1;
            if step.next != Next::Continue {
                assert_eq!(step.next, Next::Park);
                break;
            }
        }
        assert_eq!(released, excess << PAGE_SHIFT);
        // Six chunks, none over CHUNK_PAGES, then one call that sees no excess and parks
        // without asking the heap.
        assert_eq!(steps, 7);
        assert_eq!(heap.calls.get(), 6);
        let asked = heap.asked.get();
        assert_eq!(
            asked[..6],
            [
                CHUNK_PAGES,
                CHUNK_PAGES,
                CHUNK_PAGES,
                CHUNK_PAGES,
                CHUNK_PAGES,
                100
            ]
        );
    }

    #[test]
    fn sleeps_until_the_pages_are_idle_long_enough() {
        let clock = FakeClock::default();
        clock.sleep(100 * S);
        // Freed 300 ms ago, with a delay of 1 s.
        let heap = FakeHeap::new(&clock, 1000, 100 * S - 300 * MS, 10);
        let mut pacer = Pacer::new(clock.now(), S, ReleaseMode::DontNeed);
        let step = pacer.step(&heap, &clock);
        assert_eq!(step.next, Next::Sleep(700 * MS));
        assert_eq!(step.bytes, 0);
        clock.sleep(700 * MS);
        let step = pacer.step(&heap, &clock);
        assert_eq!(step.next, Next::Continue);
        assert_eq!(step.bytes, 1000 << PAGE_SHIFT);
        assert_eq!(pacer.step(&heap, &clock).next, Next::Park);
    }

    #[test]
    fn parks_when_nothing_is_over_the_goal() {
        let clock = FakeClock::default();
        let heap = FakeHeap::new(&clock, 0, 0, 10);
        let mut pacer = Pacer::new(clock.now(), 0, ReleaseMode::DontNeed);
        assert_eq!(pacer.step(&heap, &clock).next, Next::Park);
        assert_eq!(heap.calls.get(), 0, "the heap was not asked");
    }

    #[test]
    fn spends_one_percent_of_a_core_after_a_burst() {
        let clock = FakeClock::default();
        // More work than a minute at the budget releases: 1 ms of CPU per MiB.
        let ns_per_page = MS >> (20 - PAGE_SHIFT);
        let heap = FakeHeap::new(&clock, usize::MAX / 2, 0, ns_per_page);
        let mut pacer = Pacer::new(clock.now(), 0, ReleaseMode::DontNeed);
        let mut first_sleep = None;
        let mut cpu = 0;
        while clock.now() < 60 * S {
            let step = pacer.step(&heap, &clock);
            cpu += step.cpu_ns;
            match step.next {
                Next::Continue => {}
                Next::Sleep(ns) => {
                    first_sleep.get_or_insert(cpu);
                    clock.sleep(ns);
                }
                Next::Park => panic!("parked with work left"),
            }
        }
        // The bucket's burst comes first, whole, up to one chunk over.
        let burst = first_sleep.unwrap();
        let chunk_ns = CHUNK_PAGES as u64 * ns_per_page;
        // (The bucket refills by 1% of the burst's own time meanwhile.)
        let bucket = BUCKET_NS as u64;
        assert!(
            burst >= bucket && burst <= bucket + 2 * bucket / BUDGET_DIVISOR + chunk_ns,
            "{burst}"
        );
        // Then 1% of the time: over the minute, the burst plus 600 ms, within a chunk.
        let budget = BUCKET_NS as u64 + 60 * S / BUDGET_DIVISOR;
        assert!(
            cpu + chunk_ns >= budget && cpu <= budget + chunk_ns,
            "{cpu} ns of CPU"
        );
    }
}
