//! goalloc: a `malloc` with the structure of the Go runtime's allocator.
//!
//! # Use
//!
//! As Rust's global allocator (with `default-features = false` in `Cargo.toml`, the
//! process's C `malloc` stays glibc's; by default the `c-api` feature replaces it too):
//!
//! ```
//! #[global_allocator]
//! static A: goalloc::GoAlloc = goalloc::GoAlloc;
//!
//! fn main() {
//!     let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
//!     assert_eq!(v[42], "42");
//!     let st = goalloc::stats::read();
//!     assert!(st.heap_alloc > 0 && st.mallocs >= st.frees);
//! }
//! ```
//!
//! From C, preload `libgoalloc.so` or link `-lgoalloc` (see the README); the `goalloc_*`
//! functions of `include/goalloc.h` are the [`ffi`] module. The crate is `no_std`: it uses
//! `core` and `libc` only, so the C library (the workspace member `cdylib/`, which adds a
//! panic handler that reports and aborts) loads no Rust runtime and no `libgcc_s`. The options are the
//! `GOALLOC_*` environment variables of [`options::OPTIONS`].
//!
//! # Hierarchy
//!
//! ```text
//!  malloc(n) ──► size class ──► mcache (per thread, no locks)
//!                                  │ list empty / too long: move a batch
//!                                  ▼
//!                              mcentral (per class: spans, ready batches; one lock)
//!                                  │ needs a span / span fully free
//!                                  ▼
//!  n > 32 KiB ──► large ─────► mheap (8 KiB pages, spans, arenas, page map; one lock)
//!                                  │ idle free spans
//!                                  ▼
//!                              scavenger thread ──► os (reserve, map, release, free)
//! ```
//!
//! Calls go downward: `lib`/`global_alloc` → `large` → `mcache` → `mcentral` → `mheap` →
//! `os`, and `lib`/`mcache` → `scavenger` → `mheap`, `os`. `large` also calls `mheap`
//! directly, and holds the types of the two caches of freed Large spans: a thread's
//! (`LargeCache`, in its mcache) and mheap's (`SpanCache`); their methods call nothing above
//! their holder. mheap wakes a waiting scavenger through a futex word, without calling it.
//! `lib` initialises the process (`init`) on the slow paths of the first allocation, so
//! that nothing below calls back up for it.
//! The page map (`pagemap`) answers, for any address, whether it is ours and which span and
//! size class it belongs to.
//!
//! # Paths
//!
//! 1. **Small malloc** (≤ 32 KiB): one 4 KiB table indexed by `(size + 7) / 8` gives the
//!    class; the object is popped from the thread's free list for that class. No lock, no
//!    atomic read-modify-write, no system call. Every pointer the C entry points return
//!    is 16-byte aligned; only `GoAlloc`, told by a `Layout` that 8 bytes suffice, uses
//!    the 8-byte class (through a second table).
//! 2. When the list is empty, the mcache takes a chain of objects from the class's
//!    mcentral: a ready batch if one is cached, otherwise objects cut from its partial
//!    spans, otherwise from a new span that mcentral gets from mheap.
//! 3. **Small free**: two loads in the page map give the object's class; the object is
//!    pushed on the freeing thread's list, whichever thread allocated it. When the list
//!    passes its limit, a batch goes back to mcentral (whole, to the ready batches, or
//!    object by object to its spans, where a bit per object marks it returned: cutting a
//!    chain out of a span later reads the bitmap, not the objects). A span whose objects
//!    are all back returns to mheap.
//! 4. **Large** (> 32 KiB, `large`): a span of whole pages. A thread keeps its last 32 freed spans
//!    of at most 16 pages (2 MiB in all) and reuses one of the same length without any
//!    lock; mheap keeps 32 freed spans of up to 1 MiB whole, reused for the same length
//!    without a split or a merge. Otherwise the span is found on mheap's free lists by
//!    length (best fit), else by mapping more of the current arena, else by reserving new
//!    arenas; a free that is not cached coalesces it with free neighbours.
//! 5. **Zeroing**: spans know whether their pages may hold old data (`needzero`): pages
//!    fresh from the OS or released with `MADV_DONTNEED` are zero, so `calloc` of a large
//!    object does not clear them again.
//! 6. **Scavenging**: free spans idle for `GOALLOC_SCAVENGE_DELAY_MS` go back to the OS
//!    (`madvise`) from a background thread, paced to keep in-use plus 10% resident and to
//!    spend about 1% of a core; `malloc_trim(0)` releases everything free at once. See
//!    `scavenger`.
//! 7. **realloc** stays in place when the new size has the same class, or for large
//!    objects the same pages, fewer pages, or more pages that are free right after.
//!
//! # What makes the fast path fast
//!
//! When the thread's list can serve it, neither `malloc` nor `free` has a stack frame, a
//! call or an atomic operation, and no entry point jumps through another
//! (`scripts/bench.sh --callgrind` counts the instructions of a pair; the figures live in
//! the commit history and `benches/results/`, where they can age):
//!
//! - **Initial-exec TLS.** The thread's cache is one load relative to the thread pointer
//!   (`%fs`; `tpidr_el0` on aarch64) through a GOT slot (a `global_asm!` TLS symbol), not
//!   a call to `__tls_get_addr`. The slot starts
//!   at a read-only empty cache whose lists all look empty and full, so the fast paths
//!   never test for a missing cache: the first operation of a thread takes the slow path
//!   for its own reasons and installs the real cache there.
//! - **Size to class by table**: an add, a shift and a byte load, for every small size.
//! - **Page map in two dependent loads.** The arena index is a 32 MiB static in `.bss`
//!   (free until touched), so its address is a constant; then one 16-bit word per page
//!   (a cache line maps 256 KiB of heap) holds the class and the page's index in its span,
//!   read with one `movzx` and turned into a byte offset by `and` and a scaled `lea`. The
//!   class is kept as `class × 16`, which is also the byte offset of the class's list in
//!   the thread cache (`MCache` is `repr(C)` with the lists first) and of its entry in the
//!   table of the bad-pointer check: `free` indexes both with one mask, and no shift.
//! - **The bad-pointer check is one multiply and one compare**: the offset in the span
//!   times a per-class magic number, compared with a per-class bound, tells whether it is
//!   the start of one of the span's objects (see `sizeclass::is_object_offset`). This and
//!   the repeated-free compare are the price of reporting bad frees, a few instructions
//!   that allocators that do not check skip.
//! - **Slow paths out of line.** Refill, overflow, large objects, errors and `errno` are
//!   `#[cold]` functions reached by a tail jump; the exported `malloc`, `free` and
//!   `operator delete` each inline the fast path, so no entry point jumps through another.
//! - **Sized frees** (`free_sized`, C++ sized `delete`, `GoAlloc::dealloc`) take the class
//!   from the size and skip the page map.
//! - **Few trips below the cache.** Lists grow while a thread keeps refilling them
//!   (tcmalloc's rule), within a per-thread limit that grows from 1 MiB to 8 MiB for a
//!   thread that needs it; batches move as whole chains; freed large spans are reused
//!   whole, from the thread's own cache first.
//!
//! # Memory states
//!
//! Address space is None → Reserved (arena reserved, `PROT_NONE`) → Ready (mapped, in
//! spans) → Released (a free span's pages returned with `madvise`) and back to Ready when
//! reused; see `os`. Free spans record when they were freed and whether they are released.
//! An arena whose pages are all free goes back to None when a reservation fails (under
//! `RLIMIT_AS`) and on `malloc_trim`; see `mheap`.
//!
//! # Lock order
//!
//! `mcentral[c].lock` (one class at a time) → `mheap.lock` → `CACHES` (the registry of
//! thread caches, a leaf); the heap profile's stack table has a lock of its own, also a
//! leaf, last in `fork`'s order. The fixed-size allocator for spans is guarded by `mheap.lock`.
//! The scavenger takes only `mheap.lock`, and calls `madvise` without it on spans it has
//! taken off the free lists (state Releasing). No lock is held while calling into the
//! program or libc's locking functions, or while another class's lock is taken.
//!
//! libc's locks come first: stdio's list of streams, then a stream's lock, then the
//! allocator's, since stdio allocates while it holds a stream. `fork()` takes stdio's list
//! and then every allocator lock in this order (`pthread_atfork`), so the child starts
//! with a consistent heap and no thread waits in a cycle with `fork`; a process with one
//! thread takes none, and a signal handler that forks inside a fork only counts. See
//! `fork` for the protocol and the one libc lock it cannot order.
//!
//! # Glossary
//!
//! | name | meaning |
//! | --- | --- |
//! | page | 8 KiB, the unit of mheap |
//! | span (`MSpan`) | contiguous pages: free, one large object, or objects of one class |
//! | size class | one of 66 object sizes, 8 B .. 32 KiB (class 0: large) |
//! | mcache | a thread's free lists, one per class |
//! | mcentral | per class: partial and full spans, ready batches |
//! | mheap | the page heap: arenas, free spans, large objects |
//! | arena | 64 MiB of reserved address space; its metadata lives outside it |
//! | batch | a chain of `CLASS_BATCH[c]` objects moved at once between mcache and mcentral |
//! | scavenger | the background thread that returns idle free pages to the OS |
//! | released | a free span's pages went back to the OS (`HeapReleased`) |

#![cfg_attr(not(test), no_std)]
// The thread-cache slot's twin under Miri, which runs no assembly (see mcache.rs).
#![cfg_attr(miri, feature(thread_local))]
// Every unsafe operation sits in an `unsafe {}` block with a SAFETY line saying why it is
// sound, also inside `unsafe fn` (Rust 2024's default), and every public `unsafe fn` says
// what its caller must ensure.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::missing_safety_doc)]

/// An invariant check for `validate()` code, which runs under allocator locks: a failure
/// ends the process with one `goalloc:` line instead of panicking, because the panic
/// machinery allocates and would deadlock on the lock held.
macro_rules! invariant {
    ($cond:expr $(, $($msg:tt)*)?) => {
        if !$cond {
            $crate::os::fatal(concat!(
                "invariant violated at ",
                file!(),
                ":",
                line!(),
                ": ",
                stringify!($cond)
            ));
        }
    };
}

/// `invariant!(a == b)`.
macro_rules! invariant_eq {
    ($a:expr, $b:expr $(, $($msg:tt)*)?) => {
        invariant!(($a) == ($b))
    };
}

mod checked;
pub mod ffi;
mod fixalloc;
mod fork;
mod global_alloc;
mod large;
mod mcache;
mod mcentral;
mod mheap;
pub mod options;
mod os;
mod pagemap;
pub mod profile;
mod report;
mod scavenger;
mod sizeclass;
mod span;
pub mod stats;
mod sync;
mod unwind;

/// The internals that the integration tests, benchmarks and fuzz targets of this
/// repository check against (the page map's answer, the caches' counts, the locks
/// `fork` takes). Not part of the API: it may change in any release. The modules
/// themselves are the crate's own:
///
/// ```compile_fail
/// let _ = goalloc::mcache::totals();
/// ```
///
/// ```
/// let _ = goalloc::testing::mcache::totals();
/// ```
#[doc(hidden)]
pub mod testing {
    /// Whether the allocator runs in checked mode (`GOALLOC_CHECK`).
    pub mod checked {
        pub use crate::checked::enabled;
    }
    /// Thread caches: their counts and their registry's lock.
    pub mod mcache {
        pub use crate::mcache::{
            exited, meta_bytes, totals, validate_current, CacheTotals, CACHES,
        };
    }
    /// The per-class central lists.
    pub mod mcentral {
        pub use crate::mcentral::CENTRAL;
    }
    /// The page heap.
    pub mod mheap {
        pub use crate::mheap::HEAP;
    }
    /// The page map's answers for an address.
    pub mod pagemap {
        pub use crate::pagemap::page_class;

        /// Whether the page map names a span for `addr` (a large object's pages do).
        pub fn has_span(addr: usize) -> bool {
            !crate::pagemap::span_of(addr).is_null()
        }
    }
    /// Size classes.
    pub mod sizeclass {
        pub use crate::sizeclass::{
            size_to_class, CLASS_16, CLASS_8, CLASS_NPAGES, CLASS_SIZE, MAX_SMALL_SIZE, PAGE_SIZE,
        };
    }
    /// The allocator's lock type.
    pub mod sync {
        pub use crate::sync::Mutex;
    }
}

pub use global_alloc::GoAlloc;

/// The body of the panic handler of a `no_std` library that links goalloc (the C library,
/// `cdylib/`): reports the panic with one line on stderr and aborts, without allocating.
#[doc(hidden)]
pub use os::fatal_panic;

/// goalloc's version, `MAJOR.MINOR.PATCH` from `Cargo.toml` (`goalloc_version()` in C).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};
use mcentral::CENTRAL;
use mheap::HEAP;
use sizeclass::{size_to_class, CLASS_ALIGN, CLASS_SIZE, MAX_SMALL_SIZE, NUM_CLASSES, PAGE_SIZE};

const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;
static INIT_STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// Initialises the allocator: idempotent, allocation-free, safe from any thread. Returns
/// false when the OS refused the page map's address space.
#[inline]
pub fn init() -> bool {
    INIT_STATE.load(Ordering::Acquire) == READY || init_slow()
}

#[cold]
#[inline(never)]
fn init_slow() -> bool {
    match INIT_STATE.compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            options::load();
            profile::init();
            checked::init();
            if !mcache::init() {
                INIT_STATE.store(UNINIT, Ordering::Release);
                return false;
            }
            INIT_STATE.store(READY, Ordering::Release);
            // After READY: pthread_atfork may allocate, which must then find us ready.
            fork::install();
            true
        }
        Err(_) => {
            while INIT_STATE.load(Ordering::Acquire) == INITIALIZING {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            INIT_STATE.load(Ordering::Acquire) == READY
        }
    }
}

/// Allocates `size` bytes, 16-byte aligned whatever the size, as glibc's `malloc` (sizes
/// up to 16 take a 16-byte object). Returns null when out of memory; `size == 0` gives a
/// unique pointer.
///
/// # Safety
/// Safe to call from anywhere; `unsafe` because the result is raw memory.
#[inline]
pub unsafe fn malloc(size: usize) -> *mut u8 {
    if size <= MAX_SMALL_SIZE {
        alloc_small(size_to_class(size), size)
    } else {
        alloc_large(size, false)
    }
}

/// An object of class `class` for a request of `size` bytes, popped from this thread's
/// list, or from the slow path; null when out of memory.
#[inline(always)]
pub(crate) fn alloc_small(class: usize, size: usize) -> *mut u8 {
    let o = mcache::pop(class);
    if !o.is_null() {
        return o;
    }
    alloc_small_slow(class, size)
}

/// `alloc_small` when the list could not serve: the first allocation of a process (or a
/// thread) comes here, so the process is initialised here, before mcache's slow path.
#[cold]
#[inline(never)]
fn alloc_small_slow(class: usize, size: usize) -> *mut u8 {
    if !init() {
        return ptr::null_mut();
    }
    mcache::alloc_slow(class, size)
}

/// A large object (see `large`), once the process is initialised.
#[cold]
#[inline(never)]
fn alloc_large(size: usize, zero: bool) -> *mut u8 {
    if !init() {
        return ptr::null_mut();
    }
    large::alloc(size, zero)
}

/// Frees an object from `malloc`, `calloc`, `realloc` or `aligned_alloc`. Null is ignored.
/// A pointer that is not the start of one of our objects, or a repeated free where that is
/// cheap to see, is reported as `GOALLOC_INVALID_FREE` says (default: a message and abort).
///
/// # Safety
/// `p` is null or was returned by this allocator and is not used again.
#[inline]
pub unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded contract.
    unsafe { free_as(p, "free()") }
}

/// `free`, naming `call` (the entry point the program called, e.g. `"free()"` or
/// `"operator delete"`) when it reports a bad pointer. Inlined into each exported entry
/// point: the fast path is the page-map lookup, the object-start check and the push, with
/// no call and no stack frame; everything else is a tail call.
///
/// # Safety
/// As `free`.
#[inline(always)]
pub unsafe fn free_as(p: *mut u8, call: &'static str) {
    let info = pagemap::page_info(p as usize);
    if info != 0 && pagemap::is_object_start(p as usize, info) {
        // SAFETY: the page map says p starts an object of this class.
        unsafe { mcache::free_at(p, pagemap::info_slot(info), call) }
    } else {
        // SAFETY: forwarded contract.
        unsafe { free_slow(p, info, call) }
    }
}

/// Frees `p`, allocated by `malloc(size)` (or `realloc` to `size`), using the size to
/// skip the page-map lookup.
///
/// # Safety
/// As `free`, and `size` is the size `p` was allocated with.
#[inline]
pub unsafe fn free_sized(p: *mut u8, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_sized_as(p, size, "free_sized()") }
}

/// `free_sized`, naming `call` when it reports a bad pointer or a wrong size.
///
/// # Safety
/// As `free_sized`.
#[inline(always)]
pub unsafe fn free_sized_as(p: *mut u8, size: usize, call: &'static str) {
    // SAFETY: malloc(size) is aligned_alloc(1, size).
    unsafe { free_aligned_sized_as(p, 1, size, call) }
}

#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut u8, info: usize, call: &'static str) {
    if info != 0 {
        report(call, "invalid pointer (not the start of an object)", p);
    } else if !p.is_null() {
        // SAFETY: forwarded contract; the page map knows no small object at p.
        unsafe { large::free(p, call) };
    }
}

/// Reports the bad pointer `p` passed to `call` as `"{call}: {what}"`, without allocating.
#[cold]
fn report(call: &str, what: &str, p: *const u8) {
    checked::invalid_call(call, what, p as usize);
}

/// Allocates `n * size` zeroed bytes; null when the product overflows or out of memory.
///
/// # Safety
/// As `malloc`.
pub unsafe fn calloc(n: usize, size: usize) -> *mut u8 {
    let Some(total) = n.checked_mul(size) else {
        return ptr::null_mut();
    };
    if total <= MAX_SMALL_SIZE {
        let p = alloc_small(size_to_class(total), total);
        if !p.is_null() {
            // SAFETY: p has at least `total` bytes.
            unsafe { p.write_bytes(0, total) };
        }
        p
    } else {
        alloc_large(total, true)
    }
}

/// The class of a small object at `p`, 0 for a large one, or None after reporting a
/// pointer into a small span that does not start an object.
#[inline]
fn small_class_of(p: *const u8, call: &str) -> Option<usize> {
    let info = pagemap::page_info(p as usize);
    if info != 0 && !pagemap::is_object_start(p as usize, info) {
        report(call, "invalid pointer (not the start of an object)", p);
        return None;
    }
    Some(pagemap::info_class(info))
}

/// Usable bytes of the object at `p` (at least what was requested); 0 for null and for a
/// bad pointer (which is reported).
///
/// # Safety
/// `p` is null or a live object of this allocator.
pub unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: forwarded contract.
    unsafe { usable_size_as(p, "malloc_usable_size()") }
}

/// `usable_size`, naming `call` when it reports a bad pointer.
///
/// # Safety
/// As `usable_size`.
pub unsafe fn usable_size_as(p: *const u8, call: &'static str) -> usize {
    if p.is_null() {
        return 0;
    }
    match small_class_of(p, call) {
        None => 0,
        // SAFETY: forwarded contract; the page map knows no small object at p.
        Some(0) => unsafe { large::usable_size(p as *mut u8, call) },
        Some(class) => CLASS_SIZE[class] as usize,
    }
}

/// Resizes the object at `p` to `size` bytes, keeping its contents up to the smaller size.
/// `realloc(null, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns null (glibc's
/// behaviour). On failure returns null and `p` stays valid.
///
/// # Safety
/// `p` is null or a live object of this allocator; on success `p` must not be used again.
pub unsafe fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    // SAFETY: forwarded contract.
    unsafe { realloc_as(p, size, "realloc()") }
}

/// `realloc`, naming `call` when it reports a bad pointer (or finds `p` freed twice).
///
/// # Safety
/// As `realloc`.
pub unsafe fn realloc_as(p: *mut u8, size: usize, call: &'static str) -> *mut u8 {
    if p.is_null() {
        // SAFETY: plain allocation.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // SAFETY: forwarded contract.
        unsafe { free_as(p, call) };
        return ptr::null_mut();
    }
    let Some(class) = small_class_of(p, call) else {
        return ptr::null_mut();
    };
    let old_size = if class != 0 {
        if size <= MAX_SMALL_SIZE && size_to_class(size) == class {
            return p;
        }
        CLASS_SIZE[class] as usize
    } else {
        // SAFETY: forwarded contract; the page map knows no small object at p.
        match unsafe { large::resize(p, size, call) } {
            large::Resize::InPlace => return p,
            large::Resize::Move(old_size) => old_size,
            large::Resize::Bad => return ptr::null_mut(),
        }
    };
    // SAFETY: plain allocation.
    let q = unsafe { malloc(size) };
    if !q.is_null() {
        // SAFETY: both objects hold at least min(old, new) bytes and do not overlap.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old_size.min(size));
            free_as(p, call);
        }
    }
    q
}

/// The size class that serves `size` bytes aligned to `align` (a power of two), or None
/// when a page-aligned large span must. `aligned_alloc` allocates from it and sized frees
/// of aligned objects find it again here.
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    if align <= 8 {
        return (size <= MAX_SMALL_SIZE).then(|| size_to_class(size));
    }
    let want = size.max(align);
    if want > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    // The smallest class of at least `want` bytes whose objects all have the alignment.
    (size_to_class(want)..NUM_CLASSES).find(|&c| CLASS_ALIGN[c] as usize >= align)
}

/// Allocates `size` bytes aligned to `align` (a power of two; otherwise null).
///
/// # Safety
/// As `malloc`.
pub unsafe fn aligned_alloc(align: usize, size: usize) -> *mut u8 {
    if !align.is_power_of_two() {
        return ptr::null_mut();
    }
    match class_for(size, align) {
        Some(class) => alloc_small(class, size),
        None if align <= 8 => alloc_large(size, false),
        None if !init() => ptr::null_mut(),
        None => large::alloc_aligned(align, size),
    }
}

/// Frees `p`, allocated by `aligned_alloc(align, size)`, using the size to skip the
/// page-map lookup.
///
/// # Safety
/// As `free`, and `p` came from `aligned_alloc(align, size)` (or `malloc(size)` when
/// `align` is at most 16 and `size` at least `align`).
#[inline(always)]
pub unsafe fn free_aligned_sized(p: *mut u8, align: usize, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { free_aligned_sized_as(p, align, size, "free_aligned_sized()") }
}

/// `free_aligned_sized`, naming `call` when it reports a bad pointer or a wrong size. A
/// wrong size is found when the object goes back to its span: at once in checked mode
/// (every free goes there), later otherwise.
///
/// # Safety
/// As `free_aligned_sized`.
#[inline(always)]
pub unsafe fn free_aligned_sized_as(p: *mut u8, align: usize, size: usize, call: &'static str) {
    // Profiling gives sampled objects spans of their own, which the page map finds: then
    // the limit is 0 and every sized free takes it. Compared in memory, the limit costs
    // the fast path no instruction over the constant it replaces.
    let limit = profile::SIZED_FREE_LIMIT.load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: the limit is MAX_SMALL_SIZE + 1 or 0; knowing it lets the compiler drop
    // class_for's own test of the size.
    unsafe { core::hint::assert_unchecked(limit <= MAX_SMALL_SIZE + 1) };
    let class = if size < limit {
        class_for(size, align)
    } else {
        None
    };
    match class {
        Some(class) if !p.is_null() => {
            debug_assert_eq!(
                pagemap::page_class(p as usize),
                class,
                "sized free with a wrong size"
            );
            // SAFETY: p is an object of that class (caller's contract).
            unsafe { mcache::free(p, class, call) }
        }
        // SAFETY: forwarded contract.
        _ => unsafe { free_as(p, call) },
    }
}

/// Returns every free page to the OS now (Go's `debug.FreeOSMemory`): the calling thread's
/// cache and every ready batch go back to their spans first, so that fully free spans
/// reach mheap. Returns the bytes released.
pub fn release_all() -> usize {
    if !init() {
        return 0;
    }
    mcache::reclaim();
    HEAP.release_all(scavenger::release_mode())
}

/// Checks every invariant the allocator can check from here: mheap's free lists and
/// counters, every mcentral's spans and batches, and the calling thread's mcache.
pub fn validate() {
    if !init() {
        return;
    }
    HEAP.validate();
    for (class, c) in CENTRAL.iter().enumerate().skip(1) {
        c.validate(class);
    }
    mcache::validate_current();
}
