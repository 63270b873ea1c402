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
//!  n > 32 KiB ───────────────► mheap (8 KiB pages, spans, arenas, page map; one lock)
//!                                  │ idle free spans
//!                                  ▼
//!                              scavenger thread ──► os (reserve, map, release, free)
//! ```
//!
//! Calls go downward only: `lib`/`global_alloc` → `mcache` → `mcentral` → `mheap` → `os`.
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
//! 4. **Large** (> 32 KiB): a span of whole pages. A thread keeps its last 32 freed spans
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
//! A small `malloc` plus `free` is about 60 instructions (`scripts/bench.sh --callgrind`,
//! the same for fixed sizes, cycling sizes and a ring of 1000 live objects): 18 in
//! `malloc` and 39 in `free`, `ret` included (their code, as `objdump -d` shows it), the
//! rest the calls through the PLT. Neither has a stack frame, a call or an atomic
//! operation when the thread's list can serve it:
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
//!   the repeated-free compare are the price of reporting bad frees, about 12
//!   instructions, which allocators that do not check skip.
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
#![allow(clippy::missing_safety_doc)]

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

pub mod checked;
pub mod ffi;
pub mod fixalloc;
mod fork;
mod global_alloc;
pub mod mcache;
pub mod mcentral;
pub mod mheap;
pub mod options;
pub mod os;
pub mod pagemap;
pub mod profile;
mod report;
pub mod scavenger;
pub mod sizeclass;
pub mod span;
pub mod stats;
pub mod sync;
mod unwind;

pub use global_alloc::GoAlloc;

/// goalloc's version, `MAJOR.MINOR.PATCH` from `Cargo.toml` (`goalloc_version()` in C).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering};
use mcentral::CENTRAL;
use mheap::HEAP;
use sizeclass::{size_to_class, CLASS_ALIGN, CLASS_SIZE, MAX_SMALL_SIZE, NUM_CLASSES, PAGE_SIZE};
use span::SpanState;

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
        mcache::alloc(size_to_class(size), size)
    } else {
        alloc_large(size, false)
    }
}

#[cold]
#[inline(never)]
fn alloc_large(size: usize, zero: bool) -> *mut u8 {
    if size > isize::MAX as usize || !init() {
        return ptr::null_mut();
    }
    let npages = size.div_ceil(PAGE_SIZE);
    let mut s = ptr::null_mut();
    if npages <= mcache::LARGE_CACHE_MAX_PAGES {
        s = mcache::take_large(npages);
    }
    if s.is_null() {
        s = HEAP.alloc_span(npages, 0);
        mcache::note_large_trip();
        scavenger::poll();
        if s.is_null() {
            s = alloc_span_reclaimed(size, PAGE_SIZE);
            if s.is_null() {
                return ptr::null_mut();
            }
        }
    }
    if profile::enabled() {
        // SAFETY: s is the new span of this allocation.
        unsafe { mcache::sample_large(s, size) };
    }
    // SAFETY: s is a Large span now owned by this allocation.
    unsafe {
        let p = (*s).start as *mut u8;
        if zero && (*s).needzero {
            p.write_bytes(0, size);
        }
        (*s).needzero = true;
        p
    }
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
        // SAFETY: forwarded contract.
        let s = unsafe { large_span_of(p, call) };
        if !s.is_null() && unsafe { (*s).sample } != 0 {
            // SAFETY: s is the Large span of the program's object p, freed now.
            unsafe { profile::on_free(s) };
        }
        // SAFETY: s is the Large span of the program's object p.
        if !s.is_null() && !unsafe { mcache::put_large(s) } {
            // SAFETY: as above.
            unsafe { HEAP.free_span(s) };
            scavenger::poll();
        }
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
        let p = mcache::alloc(size_to_class(total), total);
        if !p.is_null() {
            // SAFETY: p has at least `total` bytes.
            unsafe { p.write_bytes(0, total) };
        }
        p
    } else {
        alloc_large(total, true)
    }
}

/// The Large span that `p` starts; otherwise `p` is reported as a bad pointer passed to
/// `call` (e.g. `"free()"`) and the result is null.
unsafe fn large_span_of(p: *mut u8, call: &str) -> *mut span::MSpan {
    let s = pagemap::span_of(p as usize);
    let what = if s.is_null() {
        "invalid pointer (not allocated by goalloc)"
    } else {
        // SAFETY: span records live forever; the state of a span the program owns is stable.
        match unsafe { (*s).state } {
            SpanState::Large if unsafe { (*s).start } == p as usize => return s,
            SpanState::Free | SpanState::Releasing | SpanState::Cached => {
                "double free or invalid pointer"
            }
            _ => "invalid pointer (not the start of an object)",
        }
    };
    report(call, what, p);
    ptr::null_mut()
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
        Some(0) => {
            // SAFETY: forwarded contract.
            let s = unsafe { large_span_of(p as *mut u8, call) };
            if s.is_null() {
                0
            } else {
                // SAFETY: s is the live Large span of p.
                unsafe { (*s).bytes() }
            }
        }
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
        // SAFETY: forwarded contract.
        let s = unsafe { large_span_of(p, call) };
        if s.is_null() {
            return ptr::null_mut();
        }
        if size > MAX_SMALL_SIZE {
            if size > isize::MAX as usize {
                return ptr::null_mut();
            }
            // SAFETY: s is the Large span of the live object p.
            if unsafe { HEAP.resize_large(s, size.div_ceil(PAGE_SIZE)) } {
                return p;
            }
        }
        // SAFETY: as above.
        unsafe { (*s).bytes() }
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
        Some(class) => mcache::alloc(class, size),
        None if align <= 8 => alloc_large(size, false),
        None => alloc_large_aligned(align, size),
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

#[cold]
fn alloc_large_aligned(align: usize, size: usize) -> *mut u8 {
    if size > isize::MAX as usize || align > isize::MAX as usize / 2 || !init() {
        return ptr::null_mut();
    }
    let npages = size.div_ceil(PAGE_SIZE).max(1);
    let mut s = HEAP.alloc_span_aligned(npages, align.max(PAGE_SIZE));
    if s.is_null() {
        s = alloc_span_reclaimed(size, align);
        if s.is_null() {
            return ptr::null_mut();
        }
    }
    if profile::enabled() {
        // SAFETY: s is the new span of this allocation.
        unsafe { mcache::sample_large(s, size) };
    }
    // SAFETY: s is a Large span owned by this allocation.
    unsafe {
        (*s).needzero = true;
        (*s).start as *mut u8
    }
}

/// Returns every free page to the OS now (Go's `debug.FreeOSMemory`): the calling thread's
/// cache and every ready batch go back to their spans first, so that fully free spans
/// reach mheap. Returns the bytes released.
pub fn release_all() -> usize {
    if !init() {
        return 0;
    }
    reclaim_caches();
    HEAP.release_all(scavenger::release_mode())
}

/// The second try at a Large span for `size` bytes aligned to `align`, after the heap
/// found no memory: `reclaim_caches` first, so that the arenas that freed small objects
/// kept can go back to the OS and make room (glibc consolidates its fast bins before it
/// fails a large request). Out of line and given the size, not the page count, so that
/// the first try keeps nothing alive across its call.
#[cold]
#[inline(never)]
fn alloc_span_reclaimed(size: usize, align: usize) -> *mut span::MSpan {
    reclaim_caches();
    let npages = size.div_ceil(PAGE_SIZE).max(1);
    HEAP.alloc_span_aligned(npages, align.max(PAGE_SIZE))
}

/// The calling thread's cache and every ready batch go back to their spans, so that spans
/// wholly free reach mheap.
#[cold]
fn reclaim_caches() {
    mcache::flush_current();
    for (class, c) in CENTRAL.iter().enumerate().skip(1) {
        c.drain_batches(class);
    }
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
