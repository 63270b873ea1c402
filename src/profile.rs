//! profile: heap profiling, sampled as Go samples, written for pprof.
//!
//! # Sampling
//!
//! With `GOALLOC_PROFILE=PATH`, about one allocation per `GOALLOC_PROFILE_RATE` bytes
//! (default 512 KiB, Go's `MemProfileRate`) is sampled: its call stack and requested size
//! go to a bucket of the stack table. Each byte allocated has the same chance to be
//! sampled, as in Go and tcmalloc: the distance to the next sampled byte is drawn from an
//! exponential distribution of mean RATE (a Poisson process), so an object of `n` bytes
//! is sampled with probability `1 - exp(-n / RATE)`, which pprof divides out again.
//!
//! - **Small objects**: each thread cache counts down, per size class, the objects left
//!   until the next sample (`mcache::ClassCounts::next_sample`, drawn as an exponential
//!   number of bytes over the class size: one Poisson process per class, which together
//!   sample every byte alike). The countdown is the counter the fast path already kept
//!   for the statistics, so profiling costs `malloc` one branch; when profiling is off it
//!   starts at `i64::MAX` and never runs out.
//! - **The sampled object gets a Large span of its own** (as tcmalloc does): the span
//!   records its bucket (`MSpan::sample`), and `free` finds it through the page map's
//!   slow path, which every Large span takes anyway. Plain `free` pays nothing, and a
//!   sized free (`free_sized`, C++ sized `delete`, Rust's `dealloc`) takes the page map
//!   when profiling is on (`SIZED_FREE_LIMIT`). A sampled object costs a page of memory,
//!   so profiling adds about one page per `GOALLOC_PROFILE_RATE` bytes allocated (8 KiB
//!   per 512 KiB, 1.6%, at the default rate), and it counts in the statistics as a large
//!   object.
//! - **Large objects** (and aligned ones above a page) are counted in bytes against a
//!   per-thread countdown when their span is allocated.
//!
//! # Stacks
//!
//! Debian builds programs without frame pointers, so stacks come from the unwind tables:
//! libgcc_s's `_Unwind_Backtrace`, loaded with `dlopen` by a constructor of this library
//! (never from inside `malloc`, where the loader's locks may be held). The allocations
//! the unwinder itself makes are not sampled (the thread cache's `sampling` flag), and
//! samples taken before the constructor ran have no stack and are left out. Frames of
//! goalloc's own shared object are dropped from the top, so that the first frame is the
//! program's. At most `MAX_DEPTH` frames are kept.
//!
//! The stack table is a hash table of buckets, one per (stack, requested size), in
//! memory mapped for it (`os::alloc_metadata`), never from `malloc`; buckets are never
//! freed. `LOCK` guards it; it is a leaf (nothing else is taken while it is held), and
//! `fork` takes it last.
//!
//! # Output
//!
//! gperftools' heap-profile text format, which `google-pprof` and `go tool pprof` read:
//! a header `heap profile: N: B [ N: B] @ heap_v2/RATE`, a line per bucket with its
//! sampled objects and bytes in use and allocated since start and its stack, then
//! `MAPPED_LIBRARIES:` and the contents of `/proc/self/maps`. The figures are the samples
//! as taken; `heap_v2/RATE` tells pprof to scale each line by `1 / (1 - exp(-avg / RATE))`
//! (avg: the line's bytes per object), as Go scales its own. The profile is written at
//! exit, by `goalloc_profile_dump` (`dump`), and on `GOALLOC_PROFILE_SIGNAL`.

use crate::mheap::HEAP;
use crate::options;
use crate::os;
use crate::sizeclass::{MAX_SMALL_SIZE, PAGE_SIZE};
use crate::span::MSpan;
use crate::sync::{Guarded, Mutex};
use crate::unwind;
use core::ffi::{c_int, c_void};
use core::fmt::{self, Write};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// The most frames a sample keeps.
pub const MAX_DEPTH: usize = 64;

/// Profiling is on (`GOALLOC_PROFILE` set and a rate above 0).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// `GOALLOC_PROFILE_RATE`.
static RATE: AtomicU64 = AtomicU64::new(524288);
/// `GOALLOC_PROFILE_SIGNAL`, 0 when none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Sizes below this, freed with their size (`free_sized` and its kin), go to their size
/// class's list directly; larger ones, and all when profiling is on, go through the page
/// map as `free` does, which finds the sampled objects. `MAX_SMALL_SIZE + 1`, or 0.
pub static SIZED_FREE_LIMIT: AtomicUsize = AtomicUsize::new(MAX_SMALL_SIZE + 1);

/// The path `GOALLOC_PROFILE` named at start, NUL-terminated (the program may change
/// its environment later).
static PATH: Guarded<[u8; 4096]> = Guarded::new([0; 4096]);

/// Whether heap profiling is on.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Reads the options. Called from `crate::init`, after `options::load`: once, or again
/// after an initialisation that failed, when it does nothing more once enabled.
pub fn init() {
    if ENABLED.load(Ordering::Acquire) {
        return;
    }
    let Some(path) = options::text(options::PROFILE) else {
        return;
    };
    let rate = options::get(options::PROFILE_RATE);
    if path.is_empty() || rate == 0 {
        return;
    }
    // SAFETY: only the one thread that initialises runs this, before ENABLED is set;
    // nothing reads PATH until it is.
    unsafe {
        let buf = PATH.get();
        let n = path.len().min(buf.len() - 1);
        buf[..n].copy_from_slice(&path[..n]);
    }
    RATE.store(rate.min(1 << 40), Ordering::Relaxed);
    SIGNAL.store(
        options::get(options::PROFILE_SIGNAL).min(64) as i32,
        Ordering::Relaxed,
    );
    SIZED_FREE_LIMIT.store(0, Ordering::Relaxed);
    ENABLED.store(true, Ordering::Release);
}

// ---- random intervals --------------------------------------------------------------

/// A seed for a thread's generator: its cache's address and the time.
pub fn seed(salt: usize) -> u64 {
    (salt as u64 ^ os::nanotime().rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// xorshift64*.
fn next_u64(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The natural logarithm of `x > 0` (core has no `ln` without std): `x = m × 2^e` with
/// `m` in [1, 2), and `ln m = 2 atanh(s)`, `s = (m-1)/(m+1) < 1/3`, whose series has
/// converged to 1e-13 after 12 terms.
fn ln(x: f64) -> f64 {
    const LN2: f64 = core::f64::consts::LN_2;
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let (mut term, mut sum, mut k) = (s, 0.0, 1.0);
    for _ in 0..12 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    e as f64 * LN2 + 2.0 * sum
}

/// An exponentially distributed number of bytes of mean `RATE`: the distance to the
/// next sampled byte.
fn exp_bytes(state: &mut u64) -> f64 {
    // Uniform in (0, 1]: 53 random bits, plus one so that ln never sees 0.
    let u = ((next_u64(state) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    -ln(u) * RATE.load(Ordering::Relaxed) as f64
}

/// Bytes to allocate before the next sampled large allocation: at least 1.
pub fn bytes_until_sample(state: &mut u64) -> i64 {
    (exp_bytes(state) as i64).clamp(1, 1 << 60)
}

/// Objects of `size` bytes to allocate up to and including the next sampled one: the
/// object that holds the next sampled byte.
pub fn objects_until_sample(state: &mut u64, size: u32) -> i64 {
    (exp_bytes(state) / size as f64) as i64 + 1
}

// ---- the stack table ---------------------------------------------------------------

/// The samples of one (stack, requested size).
#[repr(C)]
struct Bucket {
    /// The next bucket of the same hash chain.
    next: u32,
    depth: u32,
    hash: u64,
    size: usize,
    allocs: u64,
    frees: u64,
    stack: [usize; MAX_DEPTH],
}

/// log2 of the hash chains.
const HASH_BITS: usize = 16;
/// Bucket pointers in one chunk of the directory.
const DIR_CHUNK: usize = 4096;
/// Chunks in the directory: at most 4 Mi buckets.
const DIR_CHUNKS: usize = 1024;
/// Bytes of bucket memory mapped at a time.
const ARENA_BYTES: usize = 1 << 20;

/// The stack table: buckets found by hash, and by number (`MSpan::sample` - 1).
struct Table {
    /// `1 << HASH_BITS` chain heads: bucket number + 1, 0 for none.
    heads: *mut u32,
    /// Chunks of `DIR_CHUNK` bucket pointers.
    dir: [*mut *mut Bucket; DIR_CHUNKS],
    nbuckets: usize,
    /// Where the next bucket goes, and the bytes left there.
    arena: *mut u8,
    arena_left: usize,
    /// Bytes mapped for the table.
    sys: usize,
}

static LOCK: Mutex = Mutex::new();

/// The traffic of the stack table's lock, for the reports.
pub fn lock_counts() -> crate::sync::LockCounts {
    LOCK.counts()
}
static TABLE: Guarded<Table> = Guarded::new(Table {
    heads: ptr::null_mut(),
    dir: [ptr::null_mut(); DIR_CHUNKS],
    nbuckets: 0,
    arena: ptr::null_mut(),
    arena_left: 0,
    sys: 0,
});

/// A bucket's bytes with `depth` frames (the unused tail of `stack` is not mapped for).
fn bucket_bytes(depth: usize) -> usize {
    (core::mem::offset_of!(Bucket, stack) + depth * 8).next_multiple_of(8)
}

/// The frames of bucket `b`. Only these are mapped for it (`bucket_bytes`), so the
/// bucket is reached through raw pointers, never as a whole `&Bucket`.
///
/// # Safety
/// `b` is a bucket of the table, which `LOCK` guards (or the caller's own table).
unsafe fn frames<'a>(b: *const Bucket) -> &'a [usize] {
    // SAFETY: the bucket's header and its first `depth` frames are mapped and were
    // written when it was made, and buckets are never freed nor their frames changed.
    unsafe {
        core::slice::from_raw_parts(
            ptr::addr_of!((*b).stack) as *const usize,
            (*b).depth as usize,
        )
    }
}

fn hash(stack: &[usize], size: usize) -> u64 {
    let mut h = size as u64 ^ 0xcbf2_9ce4_8422_2325;
    for &f in stack {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

impl Table {
    /// Bucket `n`.
    ///
    /// # Safety
    /// `n < self.nbuckets`.
    unsafe fn bucket(&self, n: usize) -> *mut Bucket {
        // SAFETY: bucket n was made, so its directory chunk is mapped and holds it.
        unsafe { *self.dir[n / DIR_CHUNK].add(n % DIR_CHUNK) }
    }

    /// The number of the bucket of (stack, size), made when new; None when out of memory.
    ///
    /// # Safety
    /// The table's pointers are its own (null or mapped by it): `&mut self` is the table
    /// under `LOCK`, or a test's own.
    unsafe fn find_or_add(&mut self, stack: &[usize], size: usize) -> Option<usize> {
        if self.heads.is_null() {
            let bytes = (1 << HASH_BITS) * 4;
            self.heads = os::alloc_metadata(bytes) as *mut u32;
            if self.heads.is_null() {
                return None;
            }
            self.sys += bytes;
        }
        let h = hash(stack, size);
        // SAFETY: `heads` has `1 << HASH_BITS` entries; each chain links only buckets
        // that were made (numbers + 1 below `nbuckets` + 1), whose headers are mapped.
        let (head, found) = unsafe {
            let head = self.heads.add(h as usize & ((1 << HASH_BITS) - 1));
            let mut n = *head;
            while n != 0 {
                let b = self.bucket(n as usize - 1);
                if (*b).hash == h && (*b).size == size && frames(b) == stack {
                    break;
                }
                n = (*b).next;
            }
            (head, n)
        };
        if found != 0 {
            return Some(found as usize - 1);
        }
        // A new bucket.
        let id = self.nbuckets;
        if id >= DIR_CHUNK * DIR_CHUNKS {
            return None;
        }
        let chunk = &mut self.dir[id / DIR_CHUNK];
        if chunk.is_null() {
            let bytes = DIR_CHUNK * 8;
            *chunk = os::alloc_metadata(bytes) as *mut *mut Bucket;
            if chunk.is_null() {
                return None;
            }
            self.sys += bytes;
        }
        let need = bucket_bytes(stack.len());
        if self.arena_left < need {
            self.arena = os::alloc_metadata(ARENA_BYTES);
            if self.arena.is_null() {
                self.arena_left = 0;
                return None;
            }
            self.arena_left = ARENA_BYTES;
            self.sys += ARENA_BYTES;
        }
        let b = self.arena as *mut Bucket;
        // SAFETY: the arena has `need` bytes left, fresh and zeroed, for the header and
        // the stack's frames, which are all that is written (and ever read) of the
        // bucket; `chunk` is mapped with room for DIR_CHUNK pointers; `head` is the
        // chain head found above, with no bucket made since.
        unsafe {
            self.arena = self.arena.add(need);
            (*b).next = *head;
            (*b).depth = stack.len() as u32;
            (*b).hash = h;
            (*b).size = size;
            let frames = ptr::addr_of_mut!((*b).stack) as *mut usize;
            ptr::copy_nonoverlapping(stack.as_ptr(), frames, stack.len());
            *chunk.add(id % DIR_CHUNK) = b;
            *head = id as u32 + 1;
        }
        self.arena_left -= need;
        self.nbuckets += 1;
        Some(id)
    }
}

/// Takes `LOCK`, with `GOALLOC_PROFILE_SIGNAL` blocked in this thread while it is held
/// (so that the signal's dump never waits for a lock its own thread holds). Returns the
/// signal mask to restore.
fn lock() -> Option<libc::sigset_t> {
    let sig = SIGNAL.load(Ordering::Relaxed);
    let mut old = None;
    if sig != 0 {
        // SAFETY: sigemptyset, sigaddset and pthread_sigmask only touch the local sets.
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            let mut prev: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut prev);
            old = Some(prev);
        }
    }
    LOCK.lock();
    old
}

fn unlock(old: Option<libc::sigset_t>) {
    LOCK.unlock();
    if let Some(old) = old {
        // SAFETY: restores the mask `lock` saved.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
    }
}

// ---- taking and dropping samples ---------------------------------------------------

/// A sampled small object: `size` bytes requested, of a class of `class_size` bytes, on
/// a Large span of its own (page-aligned, so any alignment a class serves is met).
/// Null when the heap has no span.
pub fn alloc_sampled(size: usize, class_size: usize) -> *mut u8 {
    let s = HEAP.alloc_span(class_size.div_ceil(PAGE_SIZE), 0);
    if s.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: s is a new Large span, owned by this allocation.
    unsafe {
        (*s).needzero = true;
        record(s, size);
        (*s).start() as *mut u8
    }
}

/// Records the Large span `s`, holding an object of `size` requested bytes, as a sample
/// with the calling thread's stack. No allocator lock is held.
///
/// # Safety
/// `s` is a Large span just allocated, not yet handed to the program.
pub unsafe fn record(s: *mut MSpan, size: usize) {
    let mut frames = [0usize; MAX_DEPTH];
    let depth = backtrace(&mut frames);
    if depth == 0 {
        return;
    }
    let old = lock();
    // SAFETY: LOCK is held, so the table is ours; `id` was just found or made; the
    // caller owns `s`.
    unsafe {
        let table = TABLE.get();
        if let Some(id) = table.find_or_add(&frames[..depth], size) {
            let b = table.bucket(id);
            (*b).allocs += 1;
            (*s).sample = id as u32 + 1;
        }
    }
    unlock(old);
}

/// The program frees the sampled object of the Large span `s` (`s.sample != 0`).
///
/// # Safety
/// `s` is the program's Large span, being freed by it.
#[cold]
pub unsafe fn on_free(s: *mut MSpan) {
    let old = lock();
    // SAFETY: LOCK is held; the caller owns `s`, whose sample names a bucket that
    // `record` made (buckets are never freed).
    unsafe {
        let b = TABLE.get().bucket((*s).sample as usize - 1);
        (*b).frees += 1;
        (*s).sample = 0;
    }
    unlock(old);
}

// ---- the unwinder ------------------------------------------------------------------

type UnwindTraceFn = extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int;
type UnwindBacktrace = unsafe extern "C" fn(UnwindTraceFn, *mut c_void) -> c_int;
type UnwindGetIp = unsafe extern "C" fn(*mut c_void) -> usize;

/// libgcc_s's `_Unwind_Backtrace`, `_Unwind_GetIP` and `_Unwind_Find_FDE`, 0 until
/// loaded.
static UNWIND_BACKTRACE: AtomicUsize = AtomicUsize::new(0);
static UNWIND_GET_IP: AtomicUsize = AtomicUsize::new(0);
static UNWIND_FIND_FDE: AtomicUsize = AtomicUsize::new(0);
/// The executable segment of goalloc's own shared object: leading frames in it are
/// dropped. Empty when goalloc is linked into the program itself, whose frames are not
/// to be dropped.
static OWN_START: AtomicUsize = AtomicUsize::new(0);
static OWN_END: AtomicUsize = AtomicUsize::new(0);

/// `_Unwind_Backtrace`'s reason codes.
const URC_NO_REASON: c_int = 0;
const URC_NORMAL_STOP: c_int = 4;

struct Trace<'a> {
    frames: &'a mut [usize; MAX_DEPTH],
    depth: usize,
    /// Still in goalloc's own frames.
    leading: bool,
    get_ip: UnwindGetIp,
}

impl Trace<'_> {
    /// Adds the frame at `ip` (once past goalloc's own); false when the trace is full.
    fn push(&mut self, ip: usize) -> bool {
        if self.leading {
            let (lo, hi) = (
                OWN_START.load(Ordering::Relaxed),
                OWN_END.load(Ordering::Relaxed),
            );
            if ip >= lo && ip < hi {
                return true;
            }
            self.leading = false;
        }
        self.frames[self.depth] = ip;
        self.depth += 1;
        self.depth < MAX_DEPTH
    }
}

extern "C" fn trace_frame(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: arg is the `Trace` that `backtrace` passed, alive during the walk.
    let t = unsafe { &mut *(arg as *mut Trace) };
    // SAFETY: ctx is the unwinder's context for this frame.
    let ip = unsafe { (t.get_ip)(ctx) };
    if ip == 0 || !t.push(ip) {
        URC_NORMAL_STOP
    } else {
        URC_NO_REASON
    }
}

/// Fills `frames` with the return addresses of the calling thread's stack, the
/// program's innermost first; the number of frames, 0 when the unwinder is not loaded.
#[inline(never)]
fn backtrace(frames: &mut [usize; MAX_DEPTH]) -> usize {
    let bt = UNWIND_BACKTRACE.load(Ordering::Acquire);
    let ip = UNWIND_GET_IP.load(Ordering::Acquire);
    if bt == 0 || ip == 0 {
        return 0;
    }
    // SAFETY: both were found by dlsym under these names in libgcc_s, whose ABI they
    // have; the library stays loaded.
    let (bt, get_ip): (UnwindBacktrace, UnwindGetIp) = unsafe {
        (
            core::mem::transmute::<usize, UnwindBacktrace>(bt),
            core::mem::transmute::<usize, UnwindGetIp>(ip),
        )
    };
    let mut t = Trace {
        frames,
        depth: 0,
        leading: true,
        get_ip,
    };
    let find = UNWIND_FIND_FDE.load(Ordering::Acquire);
    if find != 0 {
        unwind::check_unloads();
        // SAFETY: find is libgcc's _Unwind_Find_FDE, found by dlsym under its name.
        let ok = unsafe {
            unwind::walk(core::mem::transmute::<usize, unwind::FindFde>(find), |ip| {
                t.push(ip)
            })
        };
        if ok {
            return t.depth;
        }
        // A frame without a simple rule: the whole stack again, the slow way.
        t.depth = 0;
        t.leading = true;
    }
    // SAFETY: trace_frame matches the callback type; t outlives the call.
    unsafe { bt(trace_frame, &mut t as *mut Trace as *mut c_void) };
    t.depth
}

/// `dl_iterate_phdr`'s callback: finds the object holding `*data` (an address of ours)
/// and stores its executable segment, unless it is the program itself (the first).
unsafe extern "C" fn find_own(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid `info`, whose `dlpi_phdr` has `dlpi_phnum`
    // entries, and the `[usize; 2]` that `profile_ctor` lends it for the call.
    let (index, phdrs, base) = unsafe {
        let info = &*info;
        (
            &mut *(data as *mut [usize; 2]),
            core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize),
            info.dlpi_addr as usize,
        )
    };
    let addr = index[0];
    let first = index[1] == 0;
    index[1] += 1;
    for ph in phdrs {
        if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_X == 0 {
            continue;
        }
        let lo = base + ph.p_vaddr as usize;
        let hi = lo + ph.p_memsz as usize;
        if addr >= lo && addr < hi {
            if !first {
                OWN_START.store(lo, Ordering::Relaxed);
                OWN_END.store(hi, Ordering::Relaxed);
            }
            return 1;
        }
    }
    0
}

/// Loads the unwinder and installs the signal handler: from a constructor, outside
/// `malloc` (`dlopen` allocates and takes the loader's lock).
extern "C" fn profile_ctor() {
    if options::text(options::PROFILE).is_none() || !crate::init() || !enabled() {
        return;
    }
    let mut data = [find_own as *const () as usize, 0];
    // SAFETY: find_own matches the callback type and reads only what the loader gives.
    unsafe { libc::dl_iterate_phdr(Some(find_own), &mut data as *mut _ as *mut c_void) };
    // SAFETY: a NUL-terminated name; the handle is kept for ever.
    unsafe {
        let h = libc::dlopen(c"libgcc_s.so.1".as_ptr(), libc::RTLD_NOW);
        if h.is_null() {
            os::write_stderr(&[
                b"goalloc: GOALLOC_PROFILE: cannot load libgcc_s.so.1: samples will have no stack",
            ]);
            return;
        }
        let bt = libc::dlsym(h, c"_Unwind_Backtrace".as_ptr());
        let ip = libc::dlsym(h, c"_Unwind_GetIP".as_ptr());
        let find = libc::dlsym(h, c"_Unwind_Find_FDE".as_ptr());
        if !find.is_null() {
            UNWIND_FIND_FDE.store(find as usize, Ordering::Release);
        }
        if !bt.is_null() && !ip.is_null() {
            UNWIND_GET_IP.store(ip as usize, Ordering::Release);
            UNWIND_BACKTRACE.store(bt as usize, Ordering::Release);
        }
    }
    let sig = SIGNAL.load(Ordering::Relaxed);
    if sig != 0 {
        // SAFETY: a zeroed sigaction with a valid handler; sigaction does not allocate.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, ptr::null_mut()) != 0 {
                os::write_stderr(&[b"goalloc: GOALLOC_PROFILE_SIGNAL: not a signal number"]);
            }
        }
    }
}

extern "C" fn on_signal(_sig: c_int) {
    let e = errno::errno();
    dump_default();
    errno::set_errno(e);
}

/// The profile at exit.
extern "C" fn profile_at_exit() {
    if enabled() {
        dump_default();
    }
}

#[used]
#[link_section = ".init_array"]
static PROFILE_INIT: extern "C" fn() = profile_ctor;

#[used]
#[link_section = ".fini_array"]
static PROFILE_AT_EXIT: extern "C" fn() = profile_at_exit;

// ---- writing the profile -----------------------------------------------------------

/// A `fmt::Write` to a file descriptor through a buffer on the stack.
struct Out {
    fd: c_int,
    buf: [u8; 4096],
    len: usize,
    failed: bool,
}

impl Out {
    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: buf[done..len] is initialised.
            let n = unsafe {
                libc::write(
                    self.fd,
                    self.buf[done..].as_ptr() as *const c_void,
                    self.len - done,
                )
            };
            if n < 0 && errno::errno().0 == libc::EINTR {
                continue;
            }
            if n <= 0 {
                self.failed = true;
                break;
            }
            done += n as usize;
        }
        self.len = 0;
    }

    /// `v` in decimal, right-aligned in `width` columns.
    fn dec(&mut self, v: u64, width: usize) {
        let mut digits = [0u8; 20];
        let text = os::fmt_dec(v as usize, &mut digits);
        const SPACES: [u8; 24] = [b' '; 24];
        self.bytes(&SPACES[..width.min(SPACES.len()).saturating_sub(text.len())]);
        self.bytes(text);
    }

    /// ` 0x` and `v` in 16 hex digits.
    fn hex(&mut self, v: u64) {
        let mut buf = *b" 0x0000000000000000";
        for (k, c) in buf[3..].iter_mut().enumerate() {
            *c = b"0123456789abcdef"[(v >> (60 - 4 * k)) as usize & 15];
        }
        self.bytes(&buf);
    }

    fn bytes(&mut self, b: &[u8]) {
        for chunk in b.chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// Writes the profile to `GOALLOC_PROFILE`'s path.
pub fn dump_default() -> bool {
    if !ENABLED.load(Ordering::Acquire) {
        return false;
    }
    // SAFETY: init wrote PATH before it set ENABLED (Release), seen set above (Acquire),
    // and nothing writes PATH again.
    let path = unsafe { &*PATH.as_ptr() };
    let n = path.iter().position(|&c| c == 0).unwrap_or(0);
    dump_bytes(&path[..n])
}

/// Writes the heap profile to `path`, replacing the file; `%p` in the path becomes the
/// process id. False when profiling is off (`GOALLOC_PROFILE` unset) or the file could
/// not be written. It does not allocate, so it may be called from anywhere, a signal
/// handler included.
///
/// ```no_run
/// #[global_allocator]
/// static A: goalloc::GoAlloc = goalloc::GoAlloc;
///
/// fn main() {
///     // ... run with GOALLOC_PROFILE=/tmp/app.%p.heap in the environment ...
///     if !goalloc::profile::dump("/tmp/app.now.heap") {
///         eprintln!("no profile: GOALLOC_PROFILE is not set");
///     }
/// }
/// ```
pub fn dump(path: &str) -> bool {
    dump_bytes(path.as_bytes())
}

/// `dump`, for a path in bytes.
pub fn dump_bytes(path: &[u8]) -> bool {
    if !enabled() || path.is_empty() {
        return false;
    }
    // The path with %p expanded, NUL-terminated.
    let mut name = [0u8; 4200];
    let mut len = 0;
    let mut i = 0;
    while i < path.len() && len + 21 < name.len() {
        if path[i] == b'%' && path.get(i + 1) == Some(&b'p') {
            let mut digits = [0u8; 20];
            // SAFETY: getpid has no preconditions.
            let pid = os::fmt_dec(unsafe { libc::getpid() } as usize, &mut digits);
            name[len..len + pid.len()].copy_from_slice(pid);
            len += pid.len();
            i += 2;
        } else {
            name[len] = path[i];
            len += 1;
            i += 1;
        }
    }
    // SAFETY: name is NUL-terminated (zeroed past len).
    let fd = unsafe {
        libc::open(
            name.as_ptr() as *const libc::c_char,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut out = Out {
        fd,
        buf: [0; 4096],
        len: 0,
        failed: false,
    };
    let rate = RATE.load(Ordering::Relaxed);
    let old = lock();
    // SAFETY: LOCK is held; buckets 0..nbuckets exist.
    unsafe {
        let t = TABLE.get();
        let (mut inuse, mut inuse_bytes, mut allocs, mut alloc_bytes) = (0u64, 0u64, 0u64, 0u64);
        for id in 0..t.nbuckets {
            let b = t.bucket(id);
            let (n, size) = ((*b).allocs, (*b).size as u64);
            inuse += n - (*b).frees;
            inuse_bytes += (n - (*b).frees) * size;
            allocs += n;
            alloc_bytes += n * size;
        }
        let _ = writeln!(
            out,
            "heap profile: {inuse:6}: {inuse_bytes:8} [{allocs:6}: {alloc_bytes:8}] @ heap_v2/{rate}"
        );
        for id in 0..t.nbuckets {
            let b = t.bucket(id);
            let (n, size) = ((*b).allocs, (*b).size as u64);
            let live = n - (*b).frees;
            // Formatted by hand: a profile may have a line per sample (random sizes make
            // a bucket each), and core::fmt spends thousands of instructions on a line.
            out.dec(live, 6);
            out.bytes(b": ");
            out.dec(live * size, 8);
            out.bytes(b" [");
            out.dec(n, 6);
            out.bytes(b": ");
            out.dec(n * size, 8);
            out.bytes(b"] @");
            for &f in frames(b) {
                out.hex(f as u64);
            }
            out.bytes(b"\n");
        }
    }
    unlock(old);
    out.bytes(b"\nMAPPED_LIBRARIES:\n");
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let maps = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if maps >= 0 {
        let mut chunk = [0u8; 4096];
        loop {
            // SAFETY: chunk is a valid destination of its length.
            let n = unsafe { libc::read(maps, chunk.as_mut_ptr() as *mut c_void, chunk.len()) };
            if n <= 0 {
                break;
            }
            out.bytes(&chunk[..n as usize]);
        }
        // SAFETY: opened above.
        unsafe { libc::close(maps) };
    }
    out.flush();
    // SAFETY: opened above.
    let closed = unsafe { libc::close(fd) } == 0;
    !out.failed && closed
}

// ---- fork --------------------------------------------------------------------------

/// `fork`'s prepare handler: takes `LOCK` (last of the allocator's locks).
pub fn before_fork() {
    LOCK.lock();
}

/// `fork`'s parent handler.
pub fn after_fork_parent() {
    LOCK.unlock();
}

/// `fork`'s child handler: the child keeps the parent's samples and writes its own file.
pub fn after_fork_child() {
    LOCK.reset_after_fork();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_is_accurate() {
        for &x in &[1e-300, 1e-16, 0.001, 0.1, 0.25, 0.5, 0.7, 0.999, 1.0] {
            let want = f64::ln(x);
            assert!((ln(x) - want).abs() <= 1e-11 * want.abs().max(1.0), "{x}");
        }
    }

    #[test]
    fn intervals_have_the_rate_as_mean() {
        let mut s = seed(1);
        let n = 200_000;
        let sum: f64 = (0..n).map(|_| exp_bytes(&mut s)).sum();
        let mean = sum / n as f64;
        let rate = RATE.load(Ordering::Relaxed) as f64;
        assert!(
            (mean / rate - 1.0).abs() < 0.02,
            "mean {mean} against {rate}"
        );
        // Objects of 1 KiB: a sample every 512 objects on average.
        let sum: i64 = (0..n).map(|_| objects_until_sample(&mut s, 1024)).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean / 512.5 - 1.0).abs() < 0.02, "mean {mean} objects");
    }

    #[test]
    fn buckets_are_found_again() {
        let mut t = Table {
            heads: ptr::null_mut(),
            dir: [ptr::null_mut(); DIR_CHUNKS],
            nbuckets: 0,
            arena: ptr::null_mut(),
            arena_left: 0,
            sys: 0,
        };
        // SAFETY: the table is this test's own.
        unsafe {
            let a = t.find_or_add(&[1, 2, 3], 16).unwrap();
            let b = t.find_or_add(&[1, 2, 3], 32).unwrap();
            let c = t.find_or_add(&[1, 2], 16).unwrap();
            assert_eq!((a, b, c), (0, 1, 2));
            assert_eq!(t.find_or_add(&[1, 2, 3], 16), Some(a));
            assert_eq!(t.find_or_add(&[1, 2], 16), Some(c));
            for i in 0..10_000usize {
                assert_eq!(t.find_or_add(&[i, i + 1], 8), Some(3 + i));
            }
            assert_eq!(t.find_or_add(&[5000, 5001], 8), Some(5003));
            assert_eq!(frames(t.bucket(5003)), [5000, 5001]);
        }
    }
}
