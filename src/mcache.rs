//! mcache: a thread's private cache of free objects, one list per size class.
//!
//! The fast paths pop from and push onto a singly linked list of the thread's cache: no
//! lock, no atomic read-modify-write, no system call. A thread's cache is a block of
//! metadata (from a `FixAlloc`, on cache lines of its own) made on the thread's first slow
//! path and reached through an 8-byte initial-exec TLS slot; it goes back to the `FixAlloc`
//! when the thread exits, so a short-lived thread's cache is reused by the next. A list
//! refills from mcentral when empty and flushes a batch back when it grows past `max_len`.
//!
//! `max_len` adapts as tcmalloc's does: it starts small and doubles on each refill up to
//! the class's batch size, then grows by a batch at a time while the thread keeps
//! refilling; a list that keeps overflowing past one batch shrinks by a batch. The sum of
//! `max_len × object size` over all lists stays within the thread's byte limit. The limit
//! starts at `BASE_CACHE_BYTES` and grows a step at a time, up to `MAX_CACHE_BYTES`, for a
//! thread whose lists keep hitting it, as long as all threads together claim at most
//! `OVERALL_CACHE_BYTES` above their base: a thread that churns through many classes gets
//! long lists (and few trips to mcentral) without letting a hundred threads hold a
//! hundred times as much. When a thread exits, a `pthread_key` destructor flushes its
//! lists back to mcentral and gives its claim back.
//!
//! A refill takes at least a cache line's worth of objects (8 of 8 bytes, 4 of 16, ...),
//! so that threads that start on a class together do not get neighbours in one line and
//! slow each other down with false sharing.

use crate::fixalloc::FixAlloc;
use crate::large::LargeCache;
use crate::mcentral::CENTRAL;
use crate::sizeclass::{CLASS_BATCH, CLASS_SIZE, NUM_CLASSES};
use crate::span::{FreeObject, MSpan};
use crate::sync::{Guarded, Mutex};
use core::ptr;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A thread's first limit on `Σ max_len × size`.
pub const BASE_CACHE_BYTES: usize = 1 << 20;
/// The most one thread's limit grows to.
pub const MAX_CACHE_BYTES: usize = 8 << 20;
/// The step by which a limit grows.
const CACHE_STEP_BYTES: usize = 1 << 20;
/// The most all threads' limits together may stand above their base.
const OVERALL_CACHE_BYTES: usize = 32 << 20;
/// `next_sample` and `large_sample` of a thread that takes no samples: no thread
/// allocates 2^63 objects or bytes, so no countdown from here reaches 0.
const NEVER: i64 = i64::MAX;

/// What all threads' limits stand above their base, now.
static CLAIMED: AtomicUsize = AtomicUsize::new(0);
/// Trips below the cache (refills, overflows, large allocations from the heap) between
/// two sweeps of the lists that sat unused.
const SWEEP_TRIPS: u32 = 64;
/// The longest a list may grow, in objects.
const MAX_LIST_LEN: u32 = 8192;

#[repr(C)]
pub struct FreeList {
    pub head: *mut FreeObject,
    /// Objects on the list. Atomic only so that `totals` may read it from another thread
    /// (relaxed loads and stores: the owner's update is still one `inc`/`dec` on memory).
    len: AtomicU32,
    /// Flush when `len` exceeds this. 0 until the thread is registered, so that the first
    /// free of each class takes the slow path.
    pub max_len: u32,
}

impl FreeList {
    #[inline(always)]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u32 {
        self.len.load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn set_len(&self, n: u32) {
        self.len.store(n, Ordering::Relaxed)
    }
}

/// A class's figures and sweep state, 16 bytes like a `FreeList`, so that the fast path
/// that found the list at `cache + class × 16` finds these at a constant distance from it.
#[repr(C)]
struct ClassCounts {
    /// Objects this class may still hand out before the next heap-profile sample: `pop`
    /// takes one off (one `dec` on memory) and leaves the object to the slow path when the
    /// count reaches 0. It also counts the class's allocations: see `MCache::nmalloc`.
    /// `i64::MAX` when profiling is off, which no thread counts down to 0. Written only by
    /// the owner, read by `totals` from any thread.
    next_sample: AtomicI64,
    /// The list's head at the last sweep: a list whose head is the same and that made no
    /// trip was not used since (or only to take and give back its first object).
    seen: *mut FreeObject,
}

const _: () = assert!(core::mem::size_of::<ClassCounts>() == core::mem::size_of::<FreeList>());

/// `repr(C)` so that `lists` is at offset 0: the fast paths then address a list as
/// `cache + class × 16`, with no displacement to add.
#[repr(C)]
pub struct MCache {
    pub lists: [FreeList; NUM_CLASSES],
    counts: [ClassCounts; NUM_CLASSES],
    /// Per class, `next_sample`'s value when it was last set (its start), and the objects
    /// handed out in the countdowns before: see `nmalloc`. Atomic only for `totals`.
    sample_start: [AtomicI64; NUM_CLASSES],
    sample_base: [AtomicU64; NUM_CLASSES],
    /// Bytes of large objects this thread may allocate before the next sample.
    large_sample: i64,
    /// The state of this thread's random numbers (the sampling intervals).
    rng: u64,
    /// The thread is taking a sample: the allocations the unwinder makes are not sampled.
    sampling: bool,
    /// Classes whose first sampling interval was drawn, a bit per class: a thread draws
    /// a class's at its first allocation of the class, not all 66 when it starts.
    drawn: u128,
    /// Overflows in a row past one batch, per class (tcmalloc's `length_overages`).
    overages: [u8; NUM_CLASSES],
    /// `Σ max_len × size`.
    budget_used: usize,
    /// This thread's bound on `budget_used`: `BASE_CACHE_BYTES` plus its claim.
    limit: usize,
    /// Freed Large spans this thread keeps (see `large`).
    large: LargeCache,
    /// Classes whose list went below the cache (a refill or an overflow) since the last
    /// sweep, a bit per class.
    active: u128,
    /// Trips below the cache (refills, overflows, large allocations from the heap) since
    /// the last sweep.
    trips: u32,
    /// The pthread key's value is set, so the destructor will run at thread exit.
    registered: bool,
}

/// A thread's cache and its links on `ALL`. The links lie outside the `MCache`, because
/// other threads write them (under `CACHES`) while the owner holds a `&mut MCache`, which
/// must cover nothing that anyone else writes. The cache is first: a pointer to the node
/// is one to its cache.
#[repr(C)]
struct CacheNode {
    cache: MCache,
    /// The list of every cache in use (`ALL`), guarded by `CACHES`.
    next: *mut CacheNode,
    prev: *mut CacheNode,
}

/// Thread caches come from here (each on cache lines of its own) and go back here when
/// their thread exits. Guarded by `CACHES`, a leaf lock.
static CACHE_ALLOC: Guarded<FixAlloc> = Guarded::new(FixAlloc::new(
    core::mem::size_of::<CacheNode>().next_multiple_of(64),
));
pub static CACHES: Mutex = Mutex::new();
/// The first of the caches in use, linked through `next`/`prev`; guarded by `CACHES`. In
/// a forked child it keeps the caches of the threads that did not come along, whose
/// counts and objects `totals` still sees.
static ALL: Guarded<*mut CacheNode> = Guarded::new(ptr::null_mut());

/// The counts of the caches that went back at their thread's exit, and of the operations
/// of exited threads (which have no cache), per class.
static EXITED_NMALLOC: [AtomicU64; NUM_CLASSES] = [const { AtomicU64::new(0) }; NUM_CLASSES];
static EXITED_LARGE_HITS: AtomicU64 = AtomicU64::new(0);
static EXITED_LARGE_HIT_PAGES: AtomicU64 = AtomicU64::new(0);

/// Bytes mapped for thread caches.
pub fn meta_bytes() -> usize {
    CACHES.lock();
    // SAFETY: CACHES is held.
    let n = unsafe { CACHE_ALLOC.get().sys };
    CACHES.unlock();
    n
}

/// The key whose destructor flushes a thread's cache; `u32::MAX` before `init`.
static CACHE_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Creates the thread-exit key. Called once from `crate::init`; allocation-free.
pub fn init() -> bool {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: key is a valid out-parameter; the destructor is a valid extern "C" fn.
    if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } != 0 {
        return false;
    }
    CACHE_KEY.store(key, Ordering::Release);
    true
}

/// The cache every thread's slot starts at: all lists empty with limit 0, so that the
/// first allocation and the first free of a thread take the slow path, which installs the
/// thread's own cache. The fast paths only read it; nothing ever writes it.
struct EmptyCache(MCache);
// SAFETY: never written (see above), so sharing it between threads is sound.
unsafe impl Sync for EmptyCache {}
static EMPTY: EmptyCache = EmptyCache(MCache::new());
/// The slot of a thread whose cache went back at its exit: as empty as `EMPTY`, but the
/// slow paths then go to mcentral and the heap directly, object by object, instead of
/// giving the thread a cache that nothing would return (the destructors have run).
static EXITED: EmptyCache = EmptyCache(MCache::new());

// An initial-exec TLS slot holding the address of this thread's cache. Rust's
// `thread_local!` (std only; the library links only `core`) in a shared library uses the
// general-dynamic model: a call to `__tls_get_addr` on every access. An initial-exec slot
// is one load relative to the thread pointer (`%fs` on x86-64, `tpidr_el0` on aarch64)
// through a GOT entry the loader fills once. It is only 8 bytes, so a `dlopen` of the
// library still fits in glibc's surplus of static TLS. Its initial value, `&EMPTY`, is
// relocated by the loader before the TLS image is copied to each thread, so the fast
// paths never test it for null.
#[cfg(all(target_arch = "x86_64", not(miri)))]
core::arch::global_asm!(
    ".pushsection .tdata,\"awT\",@progbits",
    ".p2align 3",
    // Global so that every codegen unit links to it, hidden so that no other module
    // sees or interposes it.
    ".globl goalloc_tls_mcache",
    ".hidden goalloc_tls_mcache",
    ".type goalloc_tls_mcache, @object",
    ".size goalloc_tls_mcache, 8",
    "goalloc_tls_mcache:",
    ".quad {empty}",
    ".popsection",
    empty = sym EMPTY,
);
#[cfg(all(target_arch = "aarch64", not(miri)))]
core::arch::global_asm!(
    ".pushsection .tdata,\"awT\",%progbits",
    ".p2align 3",
    ".globl goalloc_tls_mcache",
    ".hidden goalloc_tls_mcache",
    ".type goalloc_tls_mcache, %object",
    ".size goalloc_tls_mcache, 8",
    "goalloc_tls_mcache:",
    ".xword {empty}",
    ".popsection",
    empty = sym EMPTY,
);
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!(
    "goalloc supports Linux on x86_64 and aarch64 only: its thread-cache slot and \
     operator new are written in their assembly"
);
// Miri runs no assembly: there the slot is a `#[thread_local]` static, which Miri
// emulates per thread, with the same initial value.
#[cfg(miri)]
#[thread_local]
static mut MIRI_SLOT: *mut MCache = &raw const EMPTY.0 as *mut MCache;

/// This thread's cache, or `EMPTY` before the thread's first slow path.
#[inline(always)]
fn cache() -> *mut MCache {
    let p: *mut MCache;
    // SAFETY: reads this thread's own slot, which only this thread writes.
    #[cfg(miri)]
    unsafe {
        p = MIRI_SLOT;
    }
    // SAFETY: reads the 8-byte slot defined above in this thread's static TLS block.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr [rip + goalloc_tls_mcache@GOTTPOFF]",
            "mov {p}, qword ptr fs:[{p}]",
            p = out(reg) p,
            options(nostack, preserves_flags, readonly, pure),
        );
    }
    // SAFETY: as above: the slot's offset from the thread pointer comes from the GOT.
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    unsafe {
        core::arch::asm!(
            "adrp {p}, :gottprel:goalloc_tls_mcache",
            "ldr {p}, [{p}, #:gottprel_lo12:goalloc_tls_mcache]",
            "mrs {tp}, tpidr_el0",
            "ldr {p}, [{tp}, {p}]",
            p = out(reg) p,
            tp = out(reg) _,
            options(nostack, preserves_flags, readonly, pure),
        );
    }
    p
}

/// Points this thread's slot at `p`.
fn set_slot(p: *const MCache) {
    // SAFETY: writes this thread's own slot, which no other thread reads.
    #[cfg(miri)]
    unsafe {
        MIRI_SLOT = p as *mut MCache;
    }
    // SAFETY: writes this thread's own slot, defined above.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [rip + goalloc_tls_mcache@GOTTPOFF]",
            "mov qword ptr fs:[{t}], {p}",
            t = out(reg) _,
            p = in(reg) p,
            options(nostack, preserves_flags),
        );
    }
    // SAFETY: as above.
    #[cfg(all(target_arch = "aarch64", not(miri)))]
    unsafe {
        core::arch::asm!(
            "adrp {t}, :gottprel:goalloc_tls_mcache",
            "ldr {t}, [{t}, #:gottprel_lo12:goalloc_tls_mcache]",
            "mrs {tp}, tpidr_el0",
            "str {p}, [{tp}, {t}]",
            t = out(reg) _,
            tp = out(reg) _,
            p = in(reg) p,
            options(nostack, preserves_flags),
        );
    }
}

/// This thread's own cache, made on the thread's first slow path; null once the thread
/// has exited (its destructors ran) or when no memory is left for a cache.
#[inline]
fn own_cache() -> *mut MCache {
    let p = cache();
    if ptr::eq(p, &EMPTY.0) {
        return new_cache();
    }
    if ptr::eq(p, &EXITED.0) {
        return ptr::null_mut();
    }
    p
}

/// Makes the calling thread's cache. The process is initialised (`crate::init`): every
/// path here comes after it, from `crate::alloc_small`'s slow path, which calls it, or
/// from an operation on an object, which needed an allocation first. (A sized free of a
/// pointer that is not ours, before any allocation, gets a cache that is never
/// registered, since the thread-exit key does not exist yet.)
#[cold]
#[inline(never)]
fn new_cache() -> *mut MCache {
    CACHES.lock();
    // SAFETY: CACHES is held; a fresh block of CacheNode's size, 64-byte aligned, is ours
    // alone until it is linked into ALL, which CACHES guards. The cache is the node's
    // first field (`repr(C)`), so the node's pointer is the cache's.
    let p = unsafe {
        let n = CACHE_ALLOC.get().alloc() as *mut CacheNode;
        if !n.is_null() {
            let all = ALL.get();
            n.write(CacheNode {
                cache: MCache::new(),
                next: *all,
                prev: ptr::null_mut(),
            });
            if !(*all).is_null() {
                (**all).prev = n;
            }
            *all = n;
        }
        n as *mut MCache
    };
    CACHES.unlock();
    if p.is_null() {
        return ptr::null_mut();
    }
    if crate::profile::enabled() {
        // SAFETY: p is this thread's new cache, not yet reachable by the fast paths.
        unsafe { (*p).start_sampling() };
    }
    set_slot(p);
    p
}

/// Pops an object of class `class` from this thread's list, or null when it is empty or
/// the class's next object is to be sampled (the fast path alone; `alloc_slow` goes on).
#[inline(always)]
pub fn pop(class: usize) -> *mut u8 {
    let c = cache();
    // SAFETY: c is this thread's cache, or EMPTY or EXITED, which are read-only statics:
    // the list is reached through a raw pointer, never a `&mut`, and it is written only
    // past the empty-list test, which their lists (all empty) never pass. Only this
    // thread writes its own cache, and class < NUM_CLASSES.
    unsafe {
        let l = list_ptr(c, class);
        let o = (*l).head;
        if o.is_null() {
            return ptr::null_mut();
        }
        // The class's counts sit at a constant distance from its list (`lists` at offset
        // 0, both 16 bytes a class): addressed from the list, the countdown is one `dec`
        // on memory and a branch on its flags.
        if count_down(l) {
            return ptr::null_mut();
        }
        (*l).head = (*o).next;
        (*l).set_len((*l).len() - 1);
        o as *mut u8
    }
}

/// List `class` of cache `c`, as a raw pointer: `c` may be `EMPTY` or `EXITED`, into which
/// no `&mut` may point.
///
/// # Safety
/// `c` points to an `MCache` and `class < NUM_CLASSES`.
#[inline(always)]
unsafe fn list_ptr(c: *mut MCache, class: usize) -> *mut FreeList {
    // SAFETY: within the cache's `lists` array (caller's contract); no reference made.
    unsafe { ptr::addr_of_mut!((*c).lists).cast::<FreeList>().add(class) }
}

/// Takes one off the `next_sample` countdown of list `l` of this thread's own cache;
/// true when it is now 0 or less.
///
/// # Safety
/// `l` is a list of the calling thread's own cache (not `EMPTY`).
#[inline(always)]
unsafe fn count_down(l: *mut FreeList) -> bool {
    /// The countdown's distance from its list.
    const OFFSET: usize =
        core::mem::offset_of!(MCache, counts) + core::mem::offset_of!(ClassCounts, next_sample);
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        // One `dec` on memory, addressed from the list, and a `jle`: through the atomic's
        // load and store the compiler loads, decrements, stores and tests (three
        // instructions more).
        // SAFETY: the countdown is an aligned i64 that only this thread writes; an
        // aligned 8-byte read-modify-write by its only writer is what the relaxed load and
        // store would do, and readers on other threads see the old or the new value whole.
        unsafe {
            core::arch::asm!(
                "dec qword ptr [{l} + {off}]",
                "jle {out}",
                l = in(reg) l,
                off = const OFFSET,
                out = label { return true; },
                options(nostack),
            );
        }
        false
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    {
        // SAFETY: l's countdown lies at OFFSET in the same cache.
        let n = unsafe { &*(l.cast::<u8>().add(OFFSET).cast::<AtomicI64>()) };
        let left = n.load(Ordering::Relaxed) - 1;
        n.store(left, Ordering::Relaxed);
        left <= 0
    }
}

/// An object of class `class` for a request of `size` bytes (which a heap-profile sample
/// records) when `pop` gave none; null when out of memory. The process is initialised
/// (`crate::alloc_small` makes sure).
#[cold]
#[inline(never)]
pub(crate) fn alloc_slow(class: usize, size: usize) -> *mut u8 {
    let c = own_cache();
    if c.is_null() {
        // An exited thread: one object straight from mcentral.
        let o = CENTRAL[class].refill(class, 1).0 as *mut u8;
        if !o.is_null() {
            EXITED_NMALLOC[class].fetch_add(1, Ordering::Relaxed);
        }
        return o;
    }
    // SAFETY: the calling thread's own cache.
    unsafe {
        if (*c).counts[class].next_sample.load(Ordering::Relaxed) <= 1 {
            let p = (*c).sample_small(class, size);
            if !p.is_null() {
                return p;
            }
        }
        let l = &mut (*c).lists[class];
        let o = l.head;
        if !o.is_null() {
            // Left by a sample that could not be taken.
            l.head = (*o).next;
            l.set_len(l.len() - 1);
            (*c).count_malloc(class);
            return o as *mut u8;
        }
        (*c).refill(class)
    }
}

/// Pushes a freed object of class `class`, freed by the entry point `call` (which a report
/// of a bad free names).
///
/// # Safety
/// `p` is an allocated object of class `class` that the program no longer uses.
#[inline(always)]
pub unsafe fn free(p: *mut u8, class: usize, call: &'static str) {
    // SAFETY: forwarded contract; the slot of class `class` is its list's offset.
    unsafe { free_at(p, class << crate::pagemap::INFO_CLASS_SHIFT, call) }
}

// `free_at` finds a list at byte offset `class × size_of::<FreeList>()`, which `lists`
// being at offset 0 of `MCache` (`repr(C)`) makes the list's offset in the cache.
const _: () = assert!(core::mem::size_of::<FreeList>() == 1 << crate::pagemap::INFO_CLASS_SHIFT);

/// `free(p, slot >> INFO_CLASS_SHIFT)`, for the caller that has the class as the byte
/// offset `slot` of its list (`pagemap::info_slot`).
///
/// # Safety
/// As `free`.
#[inline(always)]
pub unsafe fn free_at(p: *mut u8, slot: usize, call: &'static str) {
    let class = slot >> crate::pagemap::INFO_CLASS_SHIFT;
    let o = p as *mut FreeObject;
    // SAFETY: slot is the byte offset of list `class` (< NUM_CLASSES) in an MCache. The
    // cache may be EMPTY or EXITED, read-only statics: the list is reached through a raw
    // pointer, never a `&mut`, and written only when it has room, which their lists
    // (limit 0) never have. p is the caller's object of that class, ours to link.
    unsafe {
        let l = cache().cast::<u8>().add(slot).cast::<FreeList>();
        // A full list (always so in EMPTY and EXITED) and an object freed twice in a row
        // (the cheap case of a double free; checked mode sees all) go the slow way.
        if (*l).len() < (*l).max_len && o != (*l).head {
            (*o).next = (*l).head;
            (*l).head = o;
            (*l).set_len((*l).len() + 1);
            return;
        }
        free_slow(p, class, call)
    }
}

/// # Safety
/// As `free`.
#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut u8, class: usize, call: &'static str) {
    let c = own_cache();
    let o = p as *mut FreeObject;
    if c.is_null() {
        // An exited thread: the object goes straight back to mcentral.
        // SAFETY: p is an allocated object of this class that the program gave up
        // (caller's contract): ours to link and return.
        unsafe {
            (*o).next = ptr::null_mut();
            CENTRAL[class].flush(class, o, 1, Some(call));
        }
        return;
    }
    // SAFETY: c is the calling thread's own cache, which only it touches (so a `&mut` to
    // its list is sound), and p is an object of this class it may link (as above).
    unsafe {
        let l = &mut (*c).lists[class];
        if o == l.head {
            crate::checked::invalid_call(call, "double free", p as usize);
            return;
        }
        (*o).next = l.head;
        l.head = o;
        l.set_len(l.len() + 1);
        if l.len() > l.max_len {
            (*c).overflow(class, call);
        }
    }
}

/// Counts a large allocation that went to the heap as a trip below this thread's cache
/// (so that a thread that moved on to large objects still sweeps its lists).
pub fn note_large_trip() {
    let c = cache();
    if ptr::eq(c, &EMPTY.0) || ptr::eq(c, &EXITED.0) {
        return;
    }
    // SAFETY: this thread's own cache; no lock is held by the caller.
    unsafe { (*c).count_trip() }
}

/// Counts `size` bytes of a large allocation against this thread's sampling interval;
/// when the interval runs out, records the Large span `s` as a heap-profile sample.
/// Profiling is on.
///
/// # Safety
/// `s` is the Large span just allocated for those bytes, not yet handed out.
#[cold]
pub unsafe fn sample_large(s: *mut MSpan, size: usize) {
    let c = own_cache();
    if c.is_null() {
        return;
    }
    // SAFETY: c is the calling thread's own cache, which only it touches; s is the new
    // span of those bytes (caller's contract), which the profile may record.
    unsafe {
        if (*c).sampling {
            return;
        }
        (*c).large_sample = (*c).large_sample.saturating_sub(size as i64);
        if (*c).large_sample > 0 {
            return;
        }
        (*c).large_sample = crate::profile::bytes_until_sample(&mut (*c).rng);
        (*c).sampling = true;
        crate::profile::record(s, size);
        (*c).sampling = false;
    }
}

/// The calling thread's kept Large spans, for taking one: those of `EMPTY` or `EXITED`
/// (read-only, keeping nothing) before the thread's first slow path and after its exit.
#[inline]
pub(crate) fn kept_large() -> *mut LargeCache {
    // SAFETY: the field of the thread's cache (or of a static one), addressed without a
    // reference.
    unsafe { ptr::addr_of_mut!((*cache()).large) }
}

/// The calling thread's kept Large spans, for keeping one: null when the thread has
/// exited, or no cache could be made, or its cache cannot be registered (only a
/// registered cache gives its spans back when the thread exits).
pub(crate) fn kept_large_for_put() -> *mut LargeCache {
    let c = own_cache();
    if c.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the calling thread's own cache.
    unsafe {
        if !(*c).registered {
            (*c).register();
            if !(*c).registered {
                return ptr::null_mut();
            }
        }
        &mut (*c).large
    }
}

/// The calling thread's cache and every ready batch go back to their spans, so that
/// spans wholly free reach mheap (`release_all`, and a large allocation that found no
/// memory).
#[cold]
pub(crate) fn reclaim() {
    flush_current();
    for (class, c) in CENTRAL.iter().enumerate().skip(1) {
        c.drain_batches(class);
    }
}

impl MCache {
    /// A cache with every list empty and limit 0, nothing kept, unregistered.
    const fn new() -> MCache {
        MCache {
            lists: [const {
                FreeList {
                    head: ptr::null_mut(),
                    len: AtomicU32::new(0),
                    max_len: 0,
                }
            }; NUM_CLASSES],
            counts: [const {
                ClassCounts {
                    next_sample: AtomicI64::new(NEVER),
                    seen: ptr::null_mut(),
                }
            }; NUM_CLASSES],
            sample_start: [const { AtomicI64::new(NEVER) }; NUM_CLASSES],
            sample_base: [const { AtomicU64::new(0) }; NUM_CLASSES],
            large_sample: NEVER,
            rng: 0,
            sampling: false,
            drawn: 0,
            overages: [0; NUM_CLASSES],
            budget_used: 0,
            limit: BASE_CACHE_BYTES,
            large: LargeCache::new(),
            active: 0,
            trips: 0,
            registered: false,
        }
    }

    /// Objects of class `class` this cache handed to the program (not counting those
    /// handed out as samples, which have spans of their own and count as large objects).
    /// Each countdown of `next_sample` (since `sample_start`) counts the objects handed
    /// out in it; `sample_base` those of the countdowns before.
    fn nmalloc(&self, class: usize) -> u64 {
        let start = self.sample_start[class].load(Ordering::Relaxed);
        let left = self.counts[class]
            .next_sample
            .load(Ordering::Relaxed)
            .max(1);
        let base = self.sample_base[class].load(Ordering::Relaxed);
        base.wrapping_add(start.wrapping_sub(left) as u64)
    }

    /// Counts an object of class `class` handed out by a slow path (`pop` counts its own).
    /// `next_sample` is at least 2 here, so the count stays above 0.
    #[inline]
    fn count_malloc(&self, class: usize) {
        let n = &self.counts[class].next_sample;
        n.store(n.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }

    /// Starts sampling in this cache (profiling is on): every class's countdown at 1,
    /// so that its first allocation draws its first interval (`sample_small`).
    #[cold]
    fn start_sampling(&mut self) {
        self.rng = crate::profile::seed(self as *mut MCache as usize);
        for class in 1..NUM_CLASSES {
            self.sample_start[class].store(1, Ordering::Relaxed);
            self.counts[class].next_sample.store(1, Ordering::Relaxed);
        }
        self.drawn = 0;
        self.large_sample = crate::profile::bytes_until_sample(&mut self.rng);
    }

    /// The allocation of class `class` whose turn it is to be sampled (`next_sample` is 1
    /// or less): an object of `size` bytes on a span of its own, whose free the page map
    /// sends to the slow path (see `profile`). Null at the thread's first allocation of
    /// the class (which draws the first interval), when the unwinder itself allocates,
    /// or when no span was to be had: the caller then hands out an object of the class
    /// the usual way, as the first of the next countdown.
    ///
    /// # Safety
    /// This is the calling thread's own cache.
    #[cold]
    #[inline(never)]
    unsafe fn sample_small(&mut self, class: usize, size: usize) -> *mut u8 {
        let mut p = ptr::null_mut();
        if self.drawn & (1 << class) == 0 {
            // The class's first allocation on this thread: its interval starts here.
            self.drawn |= 1 << class;
        } else if !self.sampling {
            self.sampling = true;
            p = crate::profile::alloc_sampled(size, CLASS_SIZE[class] as usize);
            self.sampling = false;
        }
        let start = self.sample_start[class].load(Ordering::Relaxed);
        let base = &self.sample_base[class];
        base.store(
            base.load(Ordering::Relaxed)
                .wrapping_add(start.wrapping_sub(1) as u64),
            Ordering::Relaxed,
        );
        let mut next = crate::profile::objects_until_sample(&mut self.rng, CLASS_SIZE[class]);
        if p.is_null() {
            next += 1;
        }
        self.sample_start[class].store(next, Ordering::Relaxed);
        self.counts[class]
            .next_sample
            .store(next, Ordering::Relaxed);
        p
    }

    /// Adds this cache's counts to the exited threads'. `CACHES` must be held, and the
    /// cache must then leave `ALL` before the lock is released.
    fn fold_counts_locked(&self) {
        for (class, exited) in EXITED_NMALLOC.iter().enumerate() {
            exited.fetch_add(self.nmalloc(class), Ordering::Relaxed);
        }
        EXITED_LARGE_HITS.fetch_add(self.large.hits.load(Ordering::Relaxed), Ordering::Relaxed);
        EXITED_LARGE_HIT_PAGES.fetch_add(
            self.large.hit_pages.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Has the thread-exit destructor flush this cache; nothing when the key does not
    /// exist (see `new_cache`).
    #[cold]
    fn register(&mut self) {
        let key = CACHE_KEY.load(Ordering::Acquire);
        if key == u32::MAX {
            return;
        }
        // Set first: pthread_setspecific may itself call malloc (keys past the first block).
        self.registered = true;
        // The slot's pointer, not one derived from `self`: `thread_exit` uses the key's
        // value after many later `&mut` borrows of the cache, which would invalidate a
        // pointer derived from this one (Miri reports it under Stacked Borrows).
        let me = cache();
        debug_assert!(ptr::eq(me, self));
        // SAFETY: the key was created by init; the value is this thread's cache.
        unsafe { libc::pthread_setspecific(key, me as *const _) };
    }

    /// Registers the thread if needed and gives list `class` a limit of at least 1.
    #[inline]
    fn prepare(&mut self, class: usize) {
        if !self.registered {
            self.register();
        }
        let l = &mut self.lists[class];
        // Checked mode keeps every list empty (limit 0), so that each operation reaches
        // mcentral, where the checks are.
        if l.max_len == 0 && !crate::checked::enabled() {
            l.max_len = 1;
            self.budget_used += CLASS_SIZE[class] as usize;
        }
    }

    /// # Safety
    /// This is the calling thread's own cache.
    #[cold]
    #[inline(never)]
    unsafe fn refill(&mut self, class: usize) -> *mut u8 {
        self.prepare(class);
        let batch = CLASS_BATCH[class] as u32;
        let l = &mut self.lists[class];
        // At least a cache line's worth: two threads that start allocating objects of a
        // class at the same time then get them from different lines (each refill takes
        // the next objects of the span, which are adjacent in a fresh span).
        let line = (64 / CLASS_SIZE[class]).max(1);
        if l.max_len < line && !crate::checked::enabled() {
            let extra = (line - l.max_len) as usize * CLASS_SIZE[class] as usize;
            if self.budget_used + extra <= self.limit {
                self.budget_used += extra;
                l.max_len = line;
            }
        }
        let want = l.max_len.clamp(1, batch);
        let (head, n) = CENTRAL[class].refill(class, want);
        if n == 0 {
            return ptr::null_mut();
        }
        // The list is empty: the chain minus its first object becomes the list.
        // SAFETY: mcentral handed over a null-terminated chain of n free objects.
        l.head = unsafe { (*head).next };
        l.set_len(n - 1);
        self.count_malloc(class);
        self.grow_max_len(class);
        // SAFETY: this thread's own cache (caller's contract).
        unsafe { self.note_trip(class) };
        head as *mut u8
    }

    /// Counts a trip of list `class` below the cache.
    ///
    /// # Safety
    /// This is the calling thread's own cache.
    #[inline]
    unsafe fn note_trip(&mut self, class: usize) {
        self.active |= 1 << class;
        // SAFETY: this thread's own cache (caller's contract).
        unsafe { self.count_trip() };
    }

    /// Counts a trip below the cache; every `SWEEP_TRIPS` trips, sweeps.
    ///
    /// # Safety
    /// This is the calling thread's own cache.
    #[inline]
    unsafe fn count_trip(&mut self) {
        self.trips += 1;
        if self.trips >= SWEEP_TRIPS {
            // SAFETY: this thread's own cache (caller's contract).
            unsafe { self.sweep() };
        }
    }

    /// Gives back what sat unused since the last sweep (as tcmalloc's thread-cache
    /// scavenging): half of each list that made no trip below the cache and kept its head
    /// meanwhile (its limit drops by a batch, down to one batch), and half of the kept
    /// large spans when none was taken or kept. A thread that moved on from a size leaves
    /// its objects there otherwise, keeping their spans from going back to the heap for
    /// reuse.
    ///
    /// # Safety
    /// This is the calling thread's own cache.
    #[cold]
    #[inline(never)]
    unsafe fn sweep(&mut self) {
        let active = self.active;
        self.active = 0;
        self.trips = 0;
        for class in 1..NUM_CLASSES {
            let head = self.lists[class].head;
            let seen = core::mem::replace(&mut self.counts[class].seen, head);
            if active & (1 << class) != 0 || head.is_null() || head != seen {
                continue;
            }
            let n = self.lists[class].len().div_ceil(2);
            // SAFETY: this thread's own cache; n is at most the list's length.
            unsafe { self.release(class, n) };
            self.counts[class].seen = self.lists[class].head;
            let batch = CLASS_BATCH[class] as u32;
            let l = &mut self.lists[class];
            if l.max_len > batch {
                let new = (l.max_len - batch).max(batch);
                self.budget_used -= (l.max_len - new) as usize * CLASS_SIZE[class] as usize;
                l.max_len = new;
            }
        }
        self.large.sweep();
    }

    fn grow_max_len(&mut self, class: usize) {
        if crate::checked::enabled() {
            return;
        }
        let batch = CLASS_BATCH[class] as u32;
        let size = CLASS_SIZE[class] as usize;
        let l = &mut self.lists[class];
        let new = if l.max_len < batch {
            (l.max_len * 2).min(batch)
        } else {
            (l.max_len + batch).min(MAX_LIST_LEN.max(batch))
        };
        if new <= l.max_len {
            return;
        }
        let extra = (new - l.max_len) as usize * size;
        if self.budget_used + extra > self.limit && !self.raise_limit() {
            // Make room for the next time; this list keeps its limit for now.
            // SAFETY: called on this thread's own cache.
            unsafe { self.shrink_all() };
            return;
        }
        self.budget_used += extra;
        self.lists[class].max_len = new;
    }

    /// Called when a push made `len > max_len`; `call` is the entry point that pushed the
    /// list's head.
    ///
    /// # Safety
    /// This is the calling thread's own cache, and `call` pushed the head of list `class`.
    #[cold]
    #[inline(never)]
    unsafe fn overflow(&mut self, class: usize, call: &'static str) {
        self.prepare(class);
        let batch = CLASS_BATCH[class] as u32;
        let size = CLASS_SIZE[class] as usize;
        let n = self.lists[class].len().min(batch);
        // SAFETY: this thread's own cache; n is at most the list's length; `call` pushed
        // the list's head just now.
        unsafe { self.release_freed_by(class, n, Some(call)) };
        let l = &mut self.lists[class];
        if crate::checked::enabled() {
            // The limit stays 0.
        } else if l.max_len < batch {
            if self.budget_used + size <= self.limit {
                l.max_len += 1;
                self.budget_used += size;
            }
        } else if l.max_len > batch {
            self.overages[class] += 1;
            if self.overages[class] > 3 {
                l.max_len -= batch;
                self.budget_used -= batch as usize * size;
                self.overages[class] = 0;
                let excess = l.len().saturating_sub(l.max_len);
                // SAFETY: this thread's own cache; excess is at most the list's length.
                unsafe { self.release(class, excess) };
            }
        }
        // SAFETY: this thread's own cache.
        unsafe { self.note_trip(class) };
        // Spans may have gone back to mheap; the cache is consistent again.
        crate::scavenger::poll();
    }

    /// Moves the first `n` objects of list `class` to mcentral.
    ///
    /// # Safety
    /// This is the calling thread's own cache and `n` is at most the list's length.
    unsafe fn release(&mut self, class: usize, n: u32) {
        // SAFETY: forwarded contract.
        unsafe { self.release_freed_by(class, n, None) }
    }

    /// `release`, where `head_freed_by` names the entry point that freed the list's head,
    /// when it is the call running now (see `MCentral::flush`).
    ///
    /// # Safety
    /// As `release`.
    unsafe fn release_freed_by(
        &mut self,
        class: usize,
        n: u32,
        head_freed_by: Option<&'static str>,
    ) {
        if n == 0 {
            return;
        }
        let l = &mut self.lists[class];
        debug_assert!(n <= l.len());
        let first = l.head;
        let mut last = first;
        // SAFETY: the list holds len >= n free objects of this class, this thread's own:
        // its first n are cut off as a null-terminated chain that mcentral takes back.
        unsafe {
            for _ in 1..n {
                last = (*last).next;
            }
            l.head = (*last).next;
            l.set_len(l.len() - n);
            (*last).next = ptr::null_mut();
            CENTRAL[class].flush(class, first, n, head_freed_by);
        }
    }

    /// Raises this thread's byte limit by a step, if it and all threads together stay
    /// within their bounds.
    fn raise_limit(&mut self) -> bool {
        if self.limit + CACHE_STEP_BYTES > MAX_CACHE_BYTES {
            return false;
        }
        let before = CLAIMED.fetch_add(CACHE_STEP_BYTES, Ordering::Relaxed);
        if before + CACHE_STEP_BYTES > OVERALL_CACHE_BYTES {
            CLAIMED.fetch_sub(CACHE_STEP_BYTES, Ordering::Relaxed);
            return false;
        }
        self.limit += CACHE_STEP_BYTES;
        true
    }

    /// Halves every list's limit (and contents) to make room under the byte bound.
    ///
    /// # Safety
    /// This is the calling thread's own cache.
    #[cold]
    unsafe fn shrink_all(&mut self) {
        for (class, &size) in CLASS_SIZE.iter().enumerate().skip(1) {
            let size = size as usize;
            let l = &mut self.lists[class];
            if l.max_len <= 1 {
                continue;
            }
            let new = l.max_len / 2;
            self.budget_used -= (l.max_len - new) as usize * size;
            l.max_len = new;
            if l.len() > new {
                let n = l.len() - new;
                // SAFETY: this thread's own cache; n is less than the list's length.
                unsafe { self.release(class, n) };
            }
        }
    }

    /// Returns every cached object to mcentral and forgets the limits.
    ///
    /// # Safety
    /// This is the calling thread's own cache (or one whose thread is exiting, from its destructor).
    pub unsafe fn flush_all(&mut self) {
        for class in 1..NUM_CLASSES {
            let n = self.lists[class].len();
            // SAFETY: this thread's own cache (caller's contract); the whole list.
            unsafe { self.release(class, n) };
            self.lists[class].max_len = 0;
            self.overages[class] = 0;
        }
        self.large.release_all();
        self.active = 0;
        for counts in &mut self.counts {
            counts.seen = ptr::null_mut();
        }
        self.trips = 0;
        self.budget_used = 0;
        CLAIMED.fetch_sub(self.limit - BASE_CACHE_BYTES, Ordering::Relaxed);
        self.limit = BASE_CACHE_BYTES;
        self.registered = false;
    }

    /// Checks each list's length, class and the byte bound.
    pub fn validate(&self) {
        let mut budget = 0;
        for (class, l) in self.lists.iter().enumerate().skip(1) {
            let mut n = 0;
            let mut o = l.head;
            while !o.is_null() {
                assert_eq!(
                    crate::pagemap::page_class(o as usize),
                    class,
                    "object on the right list"
                );
                n += 1;
                assert!(n <= l.len(), "list longer than its count");
                // SAFETY: objects on this thread's lists are ours and free.
                o = unsafe { (*o).next };
            }
            assert_eq!(n, l.len());
            assert!(l.len() <= l.max_len, "class {class}: list within its limit");
            budget += l.max_len as usize * CLASS_SIZE[class] as usize;
        }
        self.large.validate();
        assert_eq!(budget, self.budget_used);
        assert!(budget <= self.limit && self.limit <= MAX_CACHE_BYTES);
        assert!(self.limit - BASE_CACHE_BYTES <= CLAIMED.load(Ordering::Relaxed));
    }
}

/// The pthread key destructor: the thread is exiting, its objects go back to mcentral.
/// If a later destructor allocates again, the cache re-registers and this runs again
/// (glibc repeats destructors up to `PTHREAD_DESTRUCTOR_ITERATIONS` times).
extern "C" fn thread_exit(value: *mut libc::c_void) {
    let c = value as *mut MCache;
    // SAFETY: the value is this exiting thread's own cache, set by `register` from the
    // slot, so it is also its node's pointer (`new_cache`); once the slot no longer
    // points to it, nothing else refers to it, and its links are CACHES's.
    unsafe {
        (*c).flush_all();
        set_slot(&EXITED.0);
        CACHES.lock();
        // Its counts move to the exited threads' in the same critical section that takes
        // it off ALL, so that `totals` sees them once.
        (*c).fold_counts_locked();
        let all = ALL.get();
        let n = c as *mut CacheNode;
        if (*n).prev.is_null() {
            *all = (*n).next;
        } else {
            (*(*n).prev).next = (*n).next;
        }
        if !(*n).next.is_null() {
            (*(*n).next).prev = (*n).prev;
        }
        CACHE_ALLOC.get().free(n as *mut u8);
        CACHES.unlock();
    }
}

/// What the thread caches hold and have counted, summed over every cache in use and the
/// caches of exited threads: the part of the statistics that mcentral and mheap do not
/// see.
pub struct CacheTotals {
    /// Objects each class handed to the program (`malloc` and its kin), ever.
    pub nmalloc: [u64; NUM_CLASSES],
    /// Objects of each class on the caches' lists now: free, though mcentral counts them
    /// as handed out.
    pub cached: [u64; NUM_CLASSES],
    /// Large allocations served from spans a thread kept, and their pages (mheap did not
    /// see them).
    pub large_hits: u64,
    pub large_hit_pages: u64,
    /// Large spans the threads keep now, and their pages: free, though mheap counts them
    /// as in use.
    pub large_kept: u64,
    pub large_kept_pages: u64,
}

/// Sums every cache's counts (under `CACHES`). Exact when no other thread is inside the
/// allocator; while others run, each figure is one they held at some moment during the
/// walk (each is read with one atomic load), not necessarily the same moment for all.
pub fn totals() -> CacheTotals {
    let mut t = CacheTotals {
        nmalloc: [0; NUM_CLASSES],
        cached: [0; NUM_CLASSES],
        large_hits: EXITED_LARGE_HITS.load(Ordering::Relaxed),
        large_hit_pages: EXITED_LARGE_HIT_PAGES.load(Ordering::Relaxed),
        large_kept: 0,
        large_kept_pages: 0,
    };
    for (n, exited) in t.nmalloc.iter_mut().zip(&EXITED_NMALLOC) {
        *n = exited.load(Ordering::Relaxed);
    }
    CACHES.lock();
    // SAFETY: CACHES is held, so every cache on ALL stays allocated and linked; the
    // fields read from other threads' caches are atomics.
    unsafe {
        let mut n = *ALL.get();
        while !n.is_null() {
            let c = n as *const MCache;
            for class in 1..NUM_CLASSES {
                t.nmalloc[class] += (*c).nmalloc(class);
                t.cached[class] += (*c).lists[class].len() as u64;
            }
            t.large_hits += (*c).large.hits.load(Ordering::Relaxed);
            t.large_hit_pages += (*c).large.hit_pages.load(Ordering::Relaxed);
            t.large_kept += (*c).large.len() as u64;
            t.large_kept_pages += (*c).large.total_pages() as u64;
            n = (*n).next;
        }
    }
    CACHES.unlock();
    t
}

/// Flushes the calling thread's cache (tests, and `malloc_trim` later).
pub fn flush_current() {
    let c = own_cache();
    if !c.is_null() {
        // SAFETY: the calling thread's own cache.
        unsafe { (*c).flush_all() };
    }
}

/// In a forked child: only the calling thread's claim is still held.
pub fn after_fork_child() {
    // SAFETY: the calling thread's own cache (or EMPTY), read only.
    let limit = unsafe { (*cache()).limit };
    CLAIMED.store(limit - BASE_CACHE_BYTES, Ordering::Relaxed);
}

/// Whether the calling thread's cache went back at its exit (its destructors are running):
/// from now on its operations go to mcentral and the heap directly.
pub fn exited() -> bool {
    ptr::eq(cache(), &EXITED.0)
}

/// Validates the calling thread's cache.
pub fn validate_current() {
    // SAFETY: the calling thread's own cache, read only.
    unsafe { (*cache()).validate() };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every list of `c` empty with limit 0 and nothing kept: what `EMPTY` and `EXITED`
    /// hold, and must still hold after any operation.
    fn untouched(c: &MCache) -> bool {
        c.lists
            .iter()
            .all(|l| l.head.is_null() && l.len() == 0 && l.max_len == 0)
            && c.large.len() == 0
            && c.large.total_pages() == 0
    }

    /// Runs `f` on a new thread made with `pthread_create`, which (unlike
    /// `std::thread::spawn`, whose new thread allocates before it runs the closure) runs
    /// `f` with the thread's slot still at `EMPTY`; returns `f`'s result.
    fn on_raw_thread(f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void) -> usize {
        let mut t: libc::pthread_t = 0;
        let mut out: *mut libc::c_void = ptr::null_mut();
        // SAFETY: f is a valid thread function; t and out are valid out-parameters.
        unsafe {
            assert_eq!(
                libc::pthread_create(&mut t, ptr::null(), f, ptr::null_mut()),
                0
            );
            assert_eq!(libc::pthread_join(t, &mut out), 0);
        }
        out as usize
    }

    static FROM_MAIN: core::sync::atomic::AtomicPtr<u8> =
        core::sync::atomic::AtomicPtr::new(ptr::null_mut());
    const SMALL: usize = 100;

    /// The first operations of a new thread, on `EMPTY`: a free, then a pop. Returns a
    /// bit per check that failed (no panic may leave an `extern "C"` function).
    extern "C" fn first_ops_on_empty(_: *mut libc::c_void) -> *mut libc::c_void {
        let mut failed = 0;
        if !ptr::eq(cache(), &EMPTY.0) {
            failed |= 1;
        }
        // SAFETY: the first free of this thread meets EMPTY's full list; the object is
        // the main thread's, freed once.
        unsafe { crate::free(FROM_MAIN.load(Ordering::Relaxed)) };
        if ptr::eq(cache(), &EMPTY.0) {
            failed |= 2; // the slow path installs the thread's cache
        }
        failed as *mut libc::c_void
    }

    /// A pop on `EMPTY`, then small and large allocations and frees on `EXITED`.
    extern "C" fn ops_on_empty_and_exited(_: *mut libc::c_void) -> *mut libc::c_void {
        let mut failed = 0;
        if !pop(crate::sizeclass::size_to_class(SMALL)).is_null() || !ptr::eq(cache(), &EMPTY.0) {
            failed |= 1;
        }
        // As if the thread's cache had gone back at its exit.
        set_slot(&EXITED.0);
        // SAFETY: objects of this allocator, each freed once.
        unsafe {
            for size in [SMALL, 16, 100_000, 1 << 20] {
                let p = crate::malloc(size);
                if p.is_null() {
                    failed |= 2;
                    continue;
                }
                p.write_bytes(7, size);
                crate::free(p);
            }
            let p = crate::malloc(SMALL);
            crate::free_sized(p, SMALL);
        }
        if !exited() {
            failed |= 4; // an exited thread stays so
        }
        failed as *mut libc::c_void
    }

    /// The fast paths run on the read-only `EMPTY` (a new thread) and `EXITED` (a thread
    /// whose cache went back) caches, small and large, and leave them as they were. Under
    /// Miri this is also the check that no `&mut` points into them.
    #[test]
    fn empty_and_exited_caches_are_only_read() {
        assert!(crate::init());
        // SAFETY: an object of this allocator, freed once by the thread below.
        FROM_MAIN.store(unsafe { crate::malloc(SMALL) }, Ordering::Relaxed);
        assert_eq!(on_raw_thread(first_ops_on_empty), 0);
        assert_eq!(on_raw_thread(ops_on_empty_and_exited), 0);
        assert!(untouched(&EMPTY.0) && untouched(&EXITED.0));
        crate::validate();
    }
}
