//! large: objects of more than 32 KiB, each a span of whole pages, and the two caches of
//! freed spans that let them skip mheap's free lists.
//!
//! A large `malloc` takes, in this order: a span of the same length that this thread
//! freed (`LargeCache`, in the thread's mcache, no lock); one that any thread freed
//! (`SpanCache`, in mheap, under the heap lock, reused whole without a split or a merge);
//! a span cut from mheap's free lists; and, when the heap found no memory, the same
//! after every cache gave its objects back (`reclaim`). A free goes the other way: to the
//! thread's cache when the span is short enough, else to mheap, which caches it or
//! coalesces it with its free neighbours. `realloc` keeps the object in place when the
//! new size fits its pages, gives back the pages it no longer needs, or grows into the
//! free pages right after it (`MHeap::resize_large`).
//!
//! Spans in either cache are in state Cached: free for the statistics and for `free`'s
//! double-free check, but whole and mapped to their record in the page map. The thread
//! moves its own kept spans between Large and Cached without the heap lock; that is why
//! `MSpan::state` is atomic.
//!
//! Calls go down from here: to `mcache` (the calling thread's `LargeCache`, its sampling
//! and its sweep count), `mheap` and `scavenger::poll`. The two cache types are data
//! structures that mcache and mheap hold; their methods call only mheap (`LargeCache`
//! gives spans back to it) or nothing (`SpanCache`, whose holder does the rest).

use crate::mheap::HEAP;
use crate::sizeclass::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::{MSpan, SpanState};
use crate::{mcache, pagemap, profile, scavenger};
use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Freed Large spans a thread keeps for its next allocation of the same length. A thread
/// that allocates objects of 5..8 pages at random (`random`'s largest octave) finds a
/// kept span of the length it wants more often the more slots it has, and each miss pays
/// the heap lock twice (one to free the oldest kept span, one to allocate).
const LARGE_SLOTS: usize = 32;
/// The longest span a thread keeps: 16 pages (128 KiB).
pub(crate) const LARGE_CACHE_MAX_PAGES: usize = 16;
/// The most pages a thread keeps in all: 2 MiB (16 spans of the longest kept length, or 32
/// of 8 pages).
const LARGE_CACHE_TOTAL_PAGES: usize = 256;
const _: () = assert!(
    LARGE_CACHE_MAX_PAGES <= u8::MAX as usize,
    "lengths kept as u8"
);

/// Slots of mheap's span cache: 32, so that a program cycling through 32 buffers of
/// 256 KiB (longer than a thread keeps; 8 MiB, the cache's bound in pages) gets each back
/// whole; with fewer, some of them are merged and split again on every round.
pub(crate) const SPAN_CACHE_SLOTS: usize = 32;
/// The most pages the span cache holds in all (8 MiB).
const SPAN_CACHE_MAX_PAGES: usize = 1024;
/// The longest span it keeps (1 MiB): for longer ones the split and the merge it saves
/// cost little next to touching the pages, and keeping them whole would stand in the
/// way of coalescing (and of `realloc` growing a neighbour in place).
const SPAN_CACHE_MAX_SPAN_PAGES: usize = 128;

/// A thread's freed Large spans (state Cached), roughly oldest first: a thread that
/// allocates and frees objects of a few pages in a loop skips the heap lock. Written only
/// by its thread; the counts are atomic only so that `mcache::totals` may read them from
/// another.
pub(crate) struct LargeCache {
    spans: [*mut MSpan; LARGE_SLOTS],
    /// `spans[i]`'s length in pages, so that looking for a length reads no span record.
    pages: [u8; LARGE_SLOTS],
    /// How many spans are kept.
    len: AtomicUsize,
    /// The sum of `pages[..len]`, at most `LARGE_CACHE_TOTAL_PAGES`.
    total: AtomicUsize,
    /// Allocations served from the kept spans, and their pages: they never reach mheap,
    /// whose counts see the rest.
    pub(crate) hits: AtomicU64,
    pub(crate) hit_pages: AtomicU64,
    /// A kept span was taken or one was kept since the last sweep.
    active: bool,
}

impl LargeCache {
    pub(crate) const fn new() -> LargeCache {
        LargeCache {
            spans: [ptr::null_mut(); LARGE_SLOTS],
            pages: [0; LARGE_SLOTS],
            len: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            hit_pages: AtomicU64::new(0),
            active: false,
        }
    }

    /// How many spans are kept.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Their pages.
    #[inline]
    pub(crate) fn total_pages(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Takes a kept span of exactly `npages` pages, now in state Large again and owned by
    /// the caller; or null.
    ///
    /// # Safety
    /// `c` points to the calling thread's own cache, or to the read-only `EMPTY` or
    /// `EXITED` (which keep nothing, so nothing is written through the pointer).
    pub(crate) unsafe fn take(c: *mut LargeCache, npages: usize) -> *mut MSpan {
        // SAFETY: c is valid (caller's contract); it is read through shared references to
        // its atomics and through raw places, and written only once a kept span of that
        // length is found, which EMPTY and EXITED never have: then it is this thread's
        // own cache, which only this thread writes, and the span is one it kept.
        unsafe {
            let n = (*c).len();
            for i in (0..n).rev() {
                if (*c).pages[i] as usize == npages {
                    let s = (*c).spans[i];
                    // The newest takes its place: the order stays close to oldest first
                    // (which eviction relies on) without moving the rest.
                    (*c).spans[i] = (*c).spans[n - 1];
                    (*c).pages[i] = (*c).pages[n - 1];
                    (*c).len.store(n - 1, Ordering::Relaxed);
                    (*c).total.fetch_sub(npages, Ordering::Relaxed);
                    (*c).hits.fetch_add(1, Ordering::Relaxed);
                    (*c).hit_pages.fetch_add(npages as u64, Ordering::Relaxed);
                    (*c).active = true;
                    (*s).set_state(SpanState::Large);
                    return s;
                }
            }
        }
        ptr::null_mut()
    }

    /// Keeps the Large span `s`, which the program just freed and which is at most
    /// `LARGE_CACHE_MAX_PAGES` long; the oldest kept spans go to the heap to make room.
    ///
    /// # Safety
    /// `s` is a Large span the program freed; nothing else refers to it. This is the
    /// calling thread's own cache.
    pub(crate) unsafe fn put(&mut self, s: *mut MSpan) {
        // SAFETY: s is a live span record, ours alone (caller's contract).
        let npages = unsafe { (*s).npages };
        debug_assert!(npages <= LARGE_CACHE_MAX_PAGES);
        let mut evict = 0;
        let mut total = self.total_pages() + npages;
        while self.len() - evict == LARGE_SLOTS || total > LARGE_CACHE_TOTAL_PAGES {
            total -= self.pages[evict] as usize;
            evict += 1;
        }
        if evict > 0 {
            self.release(evict);
        }
        // SAFETY: as above.
        unsafe { (*s).set_state(SpanState::Cached) };
        let n = self.len();
        self.spans[n] = s;
        self.pages[n] = npages as u8;
        self.len.store(n + 1, Ordering::Relaxed);
        self.total.fetch_add(npages, Ordering::Relaxed);
        self.active = true;
    }

    /// Gives the `n` oldest kept spans back to the heap.
    pub(crate) fn release(&mut self, n: usize) {
        for (&s, &pages) in self.spans[..n].iter().zip(&self.pages) {
            // SAFETY: a kept span is this thread's alone until it goes to the heap, which
            // takes it back as the in-use Large span it was.
            unsafe {
                (*s).set_state(SpanState::Large);
                HEAP.free_span(s);
            }
            self.total.fetch_sub(pages as usize, Ordering::Relaxed);
        }
        let len = self.len();
        self.spans.copy_within(n..len, 0);
        self.pages.copy_within(n..len, 0);
        self.len.store(len - n, Ordering::Relaxed);
    }

    /// Gives back half the kept spans when none was taken or kept since the last sweep.
    pub(crate) fn sweep(&mut self) {
        if !self.active {
            self.release(self.len().div_ceil(2));
        }
        self.active = false;
    }

    /// Gives every kept span back to the heap.
    pub(crate) fn release_all(&mut self) {
        self.release(self.len());
        self.active = false;
    }

    /// Checks the kept spans' states, lengths and total.
    pub(crate) fn validate(&self) {
        for (&s, &pages) in self.spans[..self.len()].iter().zip(&self.pages) {
            // SAFETY: spans this thread keeps are its own.
            let (state, npages) = unsafe { ((*s).state(), (*s).npages) };
            assert_eq!(state, SpanState::Cached);
            assert!(npages <= LARGE_CACHE_MAX_PAGES);
            assert_eq!(npages, pages as usize, "kept length");
        }
        let total: usize = self.pages[..self.len()].iter().map(|&p| p as usize).sum();
        assert_eq!(total, self.total_pages(), "kept pages");
        assert!(total <= LARGE_CACHE_TOTAL_PAGES);
    }
}

/// mheap's cache of freed Large spans (state Cached), oldest first: a program that frees
/// and allocates the same length in a loop gets the same span back without a split and a
/// merge. Its pages count as free (`pages_free`). Guarded by the heap lock, as part of
/// `HeapInner`, which moves entries to its free lists (`uncache`) since only it can
/// coalesce them.
pub(crate) struct SpanCache {
    spans: [*mut MSpan; SPAN_CACHE_SLOTS],
    len: usize,
    /// The sum of the entries' `npages`.
    pages: usize,
}

impl SpanCache {
    pub(crate) const fn new() -> SpanCache {
        SpanCache {
            spans: [ptr::null_mut(); SPAN_CACHE_SLOTS],
            len: 0,
            pages: 0,
        }
    }

    /// How many spans are cached.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entry `i` (oldest first; `i < len()`), still in the cache: its `free_time` says
    /// how long it has been idle.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> *mut MSpan {
        self.spans[..self.len][i]
    }

    /// The index of `s`, when it is cached here (and not kept by a thread).
    pub(crate) fn position(&self, s: *mut MSpan) -> Option<usize> {
        self.spans[..self.len].iter().position(|&c| c == s)
    }

    /// Whether a span of `npages` pages may be cached at all.
    #[inline]
    pub(crate) fn fits(npages: usize) -> bool {
        npages <= SPAN_CACHE_MAX_SPAN_PAGES
    }

    /// Whether the oldest entry must go before one of `npages` pages is added.
    #[inline]
    pub(crate) fn needs_room_for(&self, npages: usize) -> bool {
        self.len == SPAN_CACHE_SLOTS || self.pages + npages > SPAN_CACHE_MAX_PAGES
    }

    /// The newest cached span of exactly `npages` pages, taken out of the cache; or null.
    ///
    /// # Safety
    /// The heap lock is held.
    pub(crate) unsafe fn take(&mut self, npages: usize) -> *mut MSpan {
        for i in (0..self.len).rev() {
            let s = self.spans[i];
            // SAFETY: cached spans are live records, guarded by the heap lock (held).
            if unsafe { (*s).npages } == npages {
                // SAFETY: the heap lock is held and i < len.
                return unsafe { self.remove(i) };
            }
        }
        ptr::null_mut()
    }

    /// Adds the freed Large span `s` (already counted as free), which fits and for which
    /// there is room.
    ///
    /// # Safety
    /// The heap lock is held and `s` is on no list.
    pub(crate) unsafe fn push(&mut self, s: *mut MSpan) {
        // SAFETY: s is a live record the heap owns (its lock is held).
        let n = unsafe {
            (*s).set_state(SpanState::Cached);
            (*s).npages
        };
        debug_assert!(Self::fits(n) && !self.needs_room_for(n));
        self.spans[self.len] = s;
        self.len += 1;
        self.pages += n;
    }

    /// Takes entry `i` out of the cache (still in state Cached) and returns it.
    ///
    /// # Safety
    /// The heap lock is held and `i < len()`.
    pub(crate) unsafe fn remove(&mut self, i: usize) -> *mut MSpan {
        let s = self.spans[i];
        self.spans.copy_within(i + 1..self.len, i);
        self.len -= 1;
        // SAFETY: a cached span is a live record, guarded by the heap lock (held).
        self.pages -= unsafe { (*s).npages };
        s
    }

    /// Checks the entries and their page count; returns the pages.
    ///
    /// # Safety
    /// The heap lock is held.
    pub(crate) unsafe fn validate(&self) -> usize {
        invariant!(self.len <= SPAN_CACHE_SLOTS);
        let mut pages = 0;
        for &c in &self.spans[..self.len] {
            // SAFETY: cached spans are live records, guarded by the heap lock (held).
            unsafe {
                invariant_eq!((*c).state(), SpanState::Cached);
                invariant!(!(*c).released && (*c).list.is_null());
                invariant_eq!(pagemap::span_of((*c).start()), c);
                pages += (*c).npages;
            }
        }
        invariant_eq!(pages, self.pages);
        pages
    }
}

/// Allocates a large object of `size` bytes (more than 32 KiB), cleared when `zero`;
/// null when out of memory. The caller has called `crate::init`. Inlined into that
/// caller, `crate::alloc_large`, the one out-of-line call of a large `malloc`.
#[inline(always)]
pub(crate) fn alloc(size: usize, zero: bool) -> *mut u8 {
    if size > isize::MAX as usize {
        return ptr::null_mut();
    }
    // Not div_ceil, whose care for an overflow that size <= isize::MAX rules out costs
    // four instructions here.
    let npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT;
    let mut s = ptr::null_mut();
    if size <= LARGE_CACHE_MAX_PAGES * PAGE_SIZE {
        // SAFETY: the calling thread's cache, or EMPTY or EXITED (which keep nothing).
        s = unsafe { LargeCache::take(mcache::kept_large(), npages) };
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
    // SAFETY: s is a Large span now owned by this allocation.
    unsafe { hand_out(s, size, zero) }
}

/// Allocates `size` bytes aligned to `align` (a power of two above 8 that no size class
/// serves) on a span of its own; null when out of memory. The caller has called
/// `crate::init`.
#[cold]
pub(crate) fn alloc_aligned(align: usize, size: usize) -> *mut u8 {
    if size > isize::MAX as usize || align > isize::MAX as usize / 2 {
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
    // SAFETY: s is a Large span owned by this allocation.
    unsafe { hand_out(s, size, false) }
}

/// The object of the new Large span `s`, sampled for the heap profile when its turn
/// came, cleared when `zero` and its pages may hold old data.
///
/// # Safety
/// `s` is a Large span just allocated for `size` bytes, owned by the caller.
unsafe fn hand_out(s: *mut MSpan, size: usize, zero: bool) -> *mut u8 {
    if profile::enabled() {
        // SAFETY: s is the new span of this allocation.
        unsafe { mcache::sample_large(s, size) };
    }
    // SAFETY: s is ours (caller's contract) and its `size` bytes from `start` are mapped.
    unsafe {
        let p = (*s).start() as *mut u8;
        if zero && (*s).needzero {
            p.write_bytes(0, size);
        }
        (*s).needzero = true;
        p
    }
}

/// The second try at a Large span for `size` bytes aligned to `align`, after the heap
/// found no memory: every cache gives its free objects back first (`mcache::reclaim`),
/// so that the arenas that small objects kept can go back to the OS and make room (glibc
/// consolidates its fast bins before it fails a large request). Out of line and given the
/// size, not the page count, so that the first try keeps nothing alive across its call.
#[cold]
#[inline(never)]
fn alloc_span_reclaimed(size: usize, align: usize) -> *mut MSpan {
    mcache::reclaim();
    let npages = size.div_ceil(PAGE_SIZE).max(1);
    HEAP.alloc_span_aligned(npages, align.max(PAGE_SIZE))
}

/// Frees the large object `p` (whose page the page map knows as no small object's),
/// passed to `call`: to the thread's cache when short enough, else to the heap. A bad
/// pointer is reported.
///
/// # Safety
/// `p` is not null; the program no longer uses it. Inlined into its caller,
/// `crate::free_slow`, the one out-of-line call of a large `free`.
#[inline(always)]
pub(crate) unsafe fn free(p: *mut u8, call: &'static str) {
    // SAFETY: any address may be looked up (see span_of).
    let s = unsafe { span_of(p, call) };
    if s.is_null() {
        return;
    }
    // SAFETY: s is the Large span of the program's object p, freed now: ours alone.
    unsafe {
        if (*s).sample != 0 {
            profile::on_free(s);
        }
        if (*s).npages <= LARGE_CACHE_MAX_PAGES && !crate::checked::enabled() {
            let c = mcache::kept_large_for_put();
            if !c.is_null() {
                (*c).put(s);
                return;
            }
        }
        HEAP.free_span(s);
    }
    scavenger::poll();
}

/// What `realloc` of a large object does.
pub(crate) enum Resize {
    /// The object now has room for the new size, where it is.
    InPlace,
    /// It must move: allocate, copy this many bytes of it, free it.
    Move(usize),
    /// The pointer was bad (reported): return null.
    Bad,
}

/// Resizes the large object `p` to `size` bytes in place if its pages allow (the same
/// number, fewer, or more that are free right after it).
///
/// # Safety
/// `p` is a live object of this allocator, whose page the page map knows as no small
/// object's.
pub(crate) unsafe fn resize(p: *mut u8, size: usize, call: &'static str) -> Resize {
    // SAFETY: any address may be looked up (see span_of).
    let s = unsafe { span_of(p, call) };
    if s.is_null() {
        return Resize::Bad;
    }
    if size > crate::sizeclass::MAX_SMALL_SIZE {
        if size > isize::MAX as usize {
            return Resize::Bad;
        }
        // SAFETY: s is the Large span of the live object p.
        if unsafe { HEAP.resize_large(s, size.div_ceil(PAGE_SIZE)) } {
            return Resize::InPlace;
        }
    }
    // SAFETY: as above.
    Resize::Move(unsafe { (*s).bytes() })
}

/// Usable bytes of the large object `p`; 0 for a bad pointer (reported).
///
/// # Safety
/// `p` is a live object of this allocator, whose page the page map knows as no small
/// object's.
pub(crate) unsafe fn usable_size(p: *mut u8, call: &'static str) -> usize {
    // SAFETY: any address may be looked up (see span_of).
    let s = unsafe { span_of(p, call) };
    if s.is_null() {
        0
    } else {
        // SAFETY: s is the live Large span of p.
        unsafe { (*s).bytes() }
    }
}

/// The Large span that `p` starts; otherwise `p` is reported as a bad pointer passed to
/// `call` (e.g. `"free()"`) and the result is null.
///
/// This runs without a lock on pointers the program may not own, so it reads only
/// atomics: the page map's entry, the span's state, and, once the state said Large, the
/// span's `start`, for "`p` starts the span". What that last read sees is the span's own
/// start: the heap writes `start` only while it owns the record, before the span becomes
/// Large (allocating it, under the lock) or after it stopped being Large (freed to the
/// heap, which merges it), and a thread's own kept spans go Large ↔ Cached without a
/// write of `start`. The acquire load that read Large orders the last write of `start`
/// before it (made before `set_state`'s release store) before this read; a later write
/// of `start` comes only after the span's owner freed the object, so seeing it means the
/// program freed that object at the same time as this call frees a pointer into it: the
/// program's race on that object, as a double free from two threads is, which at worst
/// reports the pointer or takes an object being freed for its start. (Telling the start
/// by the page map alone, from the page before it, costs a second lookup on every large
/// free; this costs a compare.)
///
/// For a pointer the program owns, what it reads is exact: the span became Large, and
/// its pages were mapped to it, before the object reached the program, whose handing of
/// the pointer to this thread orders those writes before these reads; and nothing else
/// changes a live object's span. For any other pointer it may read an entry and a state
/// that are being changed (a span split, merged, freed or handed out at that moment):
/// each value read is whole, and at worst a pointer to a span that was just handed out
/// to another thread passes as that object's start. Freeing a pointer it does not own is
/// then the program's race, which no allocator can tell from a correct free.
///
/// # Safety
/// None beyond the function's: any address may be passed; span records live forever.
#[inline(always)]
unsafe fn span_of(p: *mut u8, call: &str) -> *mut MSpan {
    let addr = p as usize;
    let s = pagemap::span_of(addr);
    let what = if s.is_null() {
        "invalid pointer (not allocated by goalloc)"
    } else {
        // SAFETY: s is a span record, which lives forever; state_acquire_of reads its
        // atomic state alone.
        match unsafe { MSpan::state_acquire_of(s) } {
            // SAFETY: the record lives forever; start_of reads its atomic start alone
            // (see above for what it may see).
            SpanState::Large if unsafe { MSpan::start_of(s) } == addr => return s,
            SpanState::Free | SpanState::Releasing | SpanState::Cached => {
                "double free or invalid pointer"
            }
            _ => "invalid pointer (not the start of an object)",
        }
    };
    crate::checked::invalid_call(call, what, addr);
    ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One thread keeps and reuses Large spans (their state goes Large ↔ Cached without
    /// the heap lock) while another frees spans next to them, which the heap coalesces
    /// and grows into after reading the neighbours' states under the lock. Natively this
    /// checks that the objects and the heap stay intact; under ThreadSanitizer it is the
    /// check that the state is read and written without a data race.
    #[test]
    fn kept_span_states_race_with_neighbours() {
        assert!(crate::init());
        const ROUNDS: usize = 2000;
        let keeper = std::thread::spawn(|| {
            for i in 0..ROUNDS {
                let size = (1 + i % 8) * PAGE_SIZE + 1;
                // SAFETY: objects of this allocator, used within their size, freed once.
                unsafe {
                    let p = crate::malloc(size);
                    assert!(!p.is_null());
                    p.write_bytes(i as u8, size);
                    assert_eq!(*p.add(size - 1), i as u8);
                    crate::free(p);
                }
            }
            mcache::flush_current();
        });
        let neighbour = std::thread::spawn(|| {
            for i in 0..ROUNDS {
                // Longer than a thread keeps: freed to the heap, which coalesces.
                let size = (LARGE_CACHE_MAX_PAGES + 1 + i % 64) * PAGE_SIZE;
                // SAFETY: as above; realloc keeps the first byte and frees the old object.
                unsafe {
                    let p = crate::malloc(size);
                    assert!(!p.is_null());
                    *p = 7;
                    let q = crate::realloc(p, size * 2);
                    assert!(!q.is_null() && *q == 7);
                    crate::free(q);
                }
            }
        });
        keeper.join().unwrap();
        neighbour.join().unwrap();
        crate::validate();
    }
}
