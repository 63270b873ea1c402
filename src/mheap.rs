//! mheap: the page heap. Arenas, free spans by length, and large objects.
//!
//! Memory comes from the OS in arenas of 64 MiB (reserved) and is mapped on demand in
//! steps of at least `GROW_BYTES`. Reserved address space counts against `RLIMIT_AS`
//! whatever its pages hold, so when a reservation fails, the arenas whose pages are all
//! free go back to the OS and it is tried again; `release_all` (`malloc_trim`) gives them
//! back too. A reservation that still does not fit is cut to what the request needs,
//! ending inside an arena. Free spans sit on `free[n]` for n = 1..127 pages and on
//! `free[0]` for 128 pages or more (searched best-fit). Within a list, spans whose pages
//! are still resident come first, released ones last, so reuse prefers memory that does
//! not fault. A freed span is coalesced with free neighbours whose pages are in the same
//! state (both resident or both released), which keeps `HeapReleased` exact. For the
//! scavenger, each list knows its resident span that has waited longest (`resident_last`),
//! so that choosing what to release does not walk the lists.
//!
//! Lock order: an mcentral lock may be held while taking `MHeap.lock`, never the reverse.
//! The `*_locked` functions, as every `HeapInner` function, require `MHeap.lock`.

use crate::fixalloc::FixAlloc;
use crate::large::SpanCache;
use crate::os;
use crate::pagemap::{self, HeapArena, ARENA_SIZE, HEAP_ARENA_BYTES, PAGES_PER_ARENA};
use crate::sizeclass::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::{bitmap_words, MSpan, MSpanList, SpanState, FREEBITS_MAX_WORDS};
use crate::sync::{futex_wait_timeout, futex_wake_one, Guarded, Mutex};
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Free lists by exact length for spans shorter than this many pages.
const NUM_FREE_LISTS: usize = 128;
/// The heap grows its mapped memory by at least this much at a time.
const GROW_BYTES: usize = 1 << 20;

pub struct MHeap {
    pub lock: Mutex,
    inner: Guarded<HeapInner>,
    /// `HeapStats::excess_pages` as the last `free_span` left it (written under the lock,
    /// read without it), for the slow paths' cheap check whether a scavenger is wanted.
    excess: AtomicUsize,
    /// The excess at which `free_span` wakes the thread in `wait_for_excess`;
    /// `usize::MAX` when none waits.
    wake_at: AtomicUsize,
    /// The futex word that thread sleeps on; bumped to wake it.
    excess_wake: AtomicU32,
}

/// Heap statistics, in pages unless named otherwise (Go's MemStats names).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Pages in Small and Large spans (HeapInuse).
    pub pages_inuse: usize,
    /// Pages in free spans, released or not (HeapIdle).
    pub pages_free: usize,
    /// Pages in free spans whose memory went back to the OS (HeapReleased).
    pub pages_released: usize,
    /// Pages of free spans off the lists while being released (counted in `pages_free`).
    pub pages_releasing: usize,
    /// Bytes of heap memory mapped from the OS (HeapSys).
    pub sys_bytes: usize,
    /// Bytes of metadata mapped: spans and arena records.
    pub meta_bytes: usize,
    /// Large objects allocated and freed so far.
    pub large_allocs: u64,
    pub large_frees: u64,
    /// Pages in Large spans now, and allocated to Large spans so far.
    pub large_pages_inuse: usize,
    pub large_pages_total: u64,
}

impl HeapStats {
    /// Resident free pages beyond the retained goal: the heap may keep what is in use plus
    /// 10% of it (Go's retained-heap goal); what is resident beyond that, the scavenger
    /// releases.
    pub fn excess_pages(&self) -> usize {
        let retained = self.pages_inuse + self.pages_free - self.pages_released;
        let goal = self.pages_inuse + self.pages_inuse / 10;
        retained.saturating_sub(goal)
    }
}

/// What one `release_oldest` did.
#[derive(Clone, Copy, Debug)]
pub struct Scavenged {
    /// Bytes released (0: nothing eligible).
    pub bytes: usize,
    /// When nothing was eligible but some resident free span will be after its idle
    /// delay: nanoseconds until the first one is.
    pub wait_ns: u64,
}

/// Sizes of span bitmaps: 1, 2, 4, 8 and 16 words.
const BITMAP_SIZES: usize = 5;
const _: () = assert!(FREEBITS_MAX_WORDS == 1 << (BITMAP_SIZES - 1));

/// Which of mheap's `bitmaps` serves a span of class `class`.
fn bitmap_index(class: u8) -> usize {
    bitmap_words(crate::sizeclass::CLASS_NELEMS[class as usize] as usize).trailing_zeros() as usize
}

/// Whether the arena of record `r` is marked for release: all its reserved pages were
/// counted on the free lists (`HeapArena::free_pages`).
///
/// # Safety
/// `r` is a registered arena's record and the heap lock is held.
unsafe fn wholly_free(r: *const HeapArena) -> bool {
    // SAFETY: `r` is a registered arena's record (the contract), read under the heap lock.
    unsafe { (*r).free_pages == (*r).reserved_pages }
}

/// `release_all` works in chunks of this many pages (64 MiB), so that no span is off the
/// free lists for long.
const RELEASE_ALL_CHUNK_PAGES: usize = 8192;

struct HeapInner {
    /// `free[n]`: free spans of n pages; `free[0]`: spans of `NUM_FREE_LISTS` pages or more.
    free: [MSpanList; NUM_FREE_LISTS],
    /// Bit n set when `free[n]` is not empty.
    nonempty: u128,
    /// The scavenger's index: `resident_last[n]` is the last resident span of `free[n]`
    /// (null when it has none). Resident spans go on the front of their list when freed,
    /// so this is the one that has waited longest, and choosing what to release looks at
    /// one span per list, however many the heap holds. The order is by insertion, not by
    /// `free_time`: a span that goes on a list with an older `free_time` (a cached span
    /// sent to the lists, the rest of a split span) waits behind the ones already there,
    /// for at most one idle delay, since they were all freed before it was inserted.
    resident_last: [*mut MSpan; NUM_FREE_LISTS],
    spanalloc: FixAlloc,
    /// The bitmaps of Small spans (`MSpan::freebits`): `bitmaps[k]` hands out 2^k words.
    bitmaps: [FixAlloc; BITMAP_SIZES],
    /// Spans in state Releasing.
    releasing: MSpanList,
    /// Freed Large spans kept whole (see `large::SpanCache`); their pages count in
    /// `pages_free`.
    cache: SpanCache,
    /// The part of the current reservation not mapped yet: `[cur, cur_end)`.
    cur: usize,
    cur_end: usize,
    /// The records of the arenas we hold, linked by `HeapArena::next`.
    arenas: *mut HeapArena,
    /// Records of arenas given back to the OS, cleared, for the next reservation.
    arena_pool: *mut HeapArena,
    stats: HeapStats,
    /// Spans the last `take_for_release_locked` looked at (cached and free), so that tests
    /// can check that choosing a chunk does not walk the heap.
    take_visits: usize,
}

/// The one heap of the process.
pub static HEAP: MHeap = MHeap {
    lock: Mutex::new(),
    inner: Guarded::new(HeapInner {
        free: [const { MSpanList::new() }; NUM_FREE_LISTS],
        nonempty: 0,
        resident_last: [ptr::null_mut(); NUM_FREE_LISTS],
        releasing: MSpanList::new(),
        cache: SpanCache::new(),
        spanalloc: FixAlloc::new(core::mem::size_of::<MSpan>().next_multiple_of(8)),
        bitmaps: [
            FixAlloc::new(8),
            FixAlloc::new(16),
            FixAlloc::new(32),
            FixAlloc::new(64),
            FixAlloc::new(128),
        ],
        cur: 0,
        cur_end: 0,
        arenas: ptr::null_mut(),
        arena_pool: ptr::null_mut(),
        stats: HeapStats {
            pages_inuse: 0,
            pages_free: 0,
            pages_released: 0,
            pages_releasing: 0,
            sys_bytes: 0,
            meta_bytes: 0,
            large_allocs: 0,
            large_frees: 0,
            large_pages_inuse: 0,
            large_pages_total: 0,
        },
        take_visits: 0,
    }),
    excess: AtomicUsize::new(0),
    wake_at: AtomicUsize::new(usize::MAX),
    excess_wake: AtomicU32::new(0),
};

#[inline]
fn list_index(npages: usize) -> usize {
    if npages < NUM_FREE_LISTS {
        npages
    } else {
        0
    }
}

impl MHeap {
    /// # Safety
    /// `self.lock` is held, and no other reference this function returned is live.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn inner(&self) -> &mut HeapInner {
        // SAFETY: the lock that guards `inner` is held and no other reference to it is
        // live (the contract).
        unsafe { self.inner.get() }
    }

    /// A span of `npages` pages in state Small (of `sizeclass`) or Large (class 0), or
    /// null when out of memory.
    pub fn alloc_span(&self, npages: usize, sizeclass: u8) -> *mut MSpan {
        self.lock.lock();
        // SAFETY: the heap lock is held.
        let s = unsafe { self.inner().alloc_span_locked(npages, 1, sizeclass) };
        self.lock.unlock();
        s
    }

    /// A Large span of `npages` pages whose start is a multiple of `align` bytes (a power
    /// of two above the page size), or null.
    pub fn alloc_span_aligned(&self, npages: usize, align: usize) -> *mut MSpan {
        self.lock.lock();
        // SAFETY: the heap lock is held.
        let s = unsafe {
            self.inner()
                .alloc_span_locked(npages, align >> PAGE_SHIFT, 0)
        };
        self.lock.unlock();
        s
    }

    /// Returns a Small or Large span to the heap.
    ///
    /// # Safety
    /// `s` is an in-use span that nothing refers to any more.
    pub unsafe fn free_span(&self, s: *mut MSpan) {
        // SAFETY: `s` is an in-use span that nothing refers to any more (the contract),
        // freed under the heap lock taken here.
        unsafe {
            self.lock.lock();
            let h = self.inner();
            h.free_span_locked(s, true);
            let excess = h.stats.excess_pages();
            self.excess.store(excess, Ordering::Relaxed);
            self.lock.unlock();
            // Relaxed: the waiter set `wake_at` before its last look at the excess under
            // the
            // lock, which this thread has taken since.
            if excess >= self.wake_at.load(Ordering::Relaxed) {
                self.wake_excess_waiter();
            }
        }
    }

    #[cold]
    fn wake_excess_waiter(&self) {
        if self.wake_at.swap(usize::MAX, Ordering::AcqRel) != usize::MAX {
            self.excess_wake.fetch_add(1, Ordering::Release);
            futex_wake_one(&self.excess_wake);
        }
    }

    /// Blocks until a `free_span` leaves at least `pages` resident free pages over the
    /// goal (or a spurious wake-up); returns at once, false, when there are that many now.
    /// One thread waits at a time (the scavenger): this is how it parks without mheap
    /// calling it.
    pub fn wait_for_excess(&self, pages: usize) -> bool {
        let gen = self.excess_wake.load(Ordering::Acquire);
        self.wake_at.store(pages, Ordering::SeqCst);
        // A free after this look sees `wake_at` (it takes the lock after this thread), and
        // one before it left the excess this look reads.
        let wait = self.excess_pages() < pages;
        if wait {
            futex_wait_timeout(&self.excess_wake, gen, None);
        }
        self.wake_at.store(usize::MAX, Ordering::Relaxed);
        wait
    }

    /// The excess as the last `free_span` left it, read without the lock.
    #[inline]
    pub fn excess_hint(&self) -> usize {
        self.excess.load(Ordering::Relaxed)
    }

    /// Resizes the Large span `s` in place to `npages` pages: shrinking always works,
    /// growing works when the pages after it are free. Returns whether it did.
    ///
    /// # Safety
    /// `s` is a Large span owned by the caller.
    pub unsafe fn resize_large(&self, s: *mut MSpan, npages: usize) -> bool {
        // SAFETY: `s` is the caller's Large span (the contract), resized under the heap
        // lock taken here.
        unsafe {
            self.lock.lock();
            let ok = self.inner().resize_large_locked(s, npages);
            self.lock.unlock();
            ok
        }
    }

    /// Releases the resident free pages that have waited longest on the free lists (see
    /// `HeapInner::resident_last`), if they were freed at least `min_age_ns` before `now`:
    /// at most `max_pages` pages, from the end of one span. How much and when is the
    /// scavenger's choice. The `madvise` runs without the heap lock, on a span taken off
    /// the lists.
    pub fn release_oldest(
        &self,
        now: u64,
        min_age_ns: u64,
        max_pages: usize,
        mode: os::ReleaseMode,
    ) -> Scavenged {
        self.lock.lock();
        // SAFETY: the heap lock is held.
        let (s, wait_ns) = unsafe {
            self.inner()
                .take_for_release_locked(now, min_age_ns, max_pages)
        };
        self.lock.unlock();
        if s.is_null() {
            return Scavenged { bytes: 0, wait_ns };
        }
        // SAFETY: s is in state Releasing: no one else touches it or its pages.
        unsafe {
            let bytes = (*s).bytes();
            let zeroed = os::release((*s).start() as *mut u8, bytes, mode);
            self.lock.lock();
            self.inner().put_released_locked(s, zeroed);
            self.lock.unlock();
            Scavenged { bytes, wait_ns: 0 }
        }
    }

    /// Releases every resident free page now, then gives the arenas left wholly free back
    /// to the OS (their address space too, as glibc's `malloc_trim` shrinks its heap).
    /// Returns the bytes released.
    pub fn release_all(&self, mode: os::ReleaseMode) -> usize {
        let mut total = 0;
        loop {
            let r = self.release_oldest(0, 0, RELEASE_ALL_CHUNK_PAGES, mode);
            if r.bytes == 0 {
                break;
            }
            total += r.bytes;
        }
        self.release_free_arenas();
        total
    }

    /// Gives every wholly free arena back to the OS. Returns the bytes of address space
    /// given back.
    pub fn release_free_arenas(&self) -> usize {
        self.lock.lock();
        // SAFETY: the heap lock is held.
        let bytes = unsafe { self.inner().release_free_arenas_locked() };
        self.lock.unlock();
        bytes
    }

    /// Resident free pages beyond the retained goal (see `HeapStats::excess_pages`).
    pub fn excess_pages(&self) -> usize {
        self.lock.lock();
        // SAFETY: the heap lock is held.
        let e = unsafe { self.inner().stats.excess_pages() };
        self.lock.unlock();
        e
    }

    /// In a forked child: spans whose release was under way in another thread of the
    /// parent go back on the free lists, counted as resident.
    pub fn after_fork_child(&self) {
        // The thread that waited for an excess did not come along.
        self.wake_at.store(usize::MAX, Ordering::Relaxed);
        self.lock.lock();
        // SAFETY: the heap lock is held.
        unsafe {
            let h = self.inner();
            while !h.releasing.is_empty() {
                let s = h.releasing.first;
                h.releasing.remove(s);
                h.stats.pages_releasing -= (*s).npages;
                (*s).set_state(SpanState::Free);
                h.coalesce_and_insert(s);
            }
        }
        self.lock.unlock();
    }

    pub fn stats(&self) -> HeapStats {
        self.lock.lock();
        // SAFETY: the heap lock is held.
        let st = unsafe {
            let h = self.inner();
            let mut st = h.stats;
            st.meta_bytes += h.spanalloc.sys;
            st.meta_bytes += h.bitmaps.iter().map(|b| b.sys).sum::<usize>();
            st
        };
        self.lock.unlock();
        st
    }

    /// Checks every invariant of the free lists against the page map and the counters.
    pub fn validate(&self) {
        self.lock.lock();
        // SAFETY: the heap lock is held.
        unsafe { self.inner().validate_locked() };
        self.lock.unlock();
    }
}

/// Every function here is `unsafe` with one contract (# Safety): the heap lock is held, and
/// the span and arena pointers passed in are records of this heap in the states the
/// function's doc names.
impl HeapInner {
    unsafe fn new_span(&mut self) -> *mut MSpan {
        // SAFETY: the heap lock guards `spanalloc` (the contract of every `HeapInner`
        // function).
        unsafe { self.spanalloc.alloc() as *mut MSpan }
    }

    /// Puts the free span `s` on its list; resident spans first (newest first), released
    /// ones last.
    unsafe fn insert_free(&mut self, s: *mut MSpan) {
        // SAFETY: `s` is a free span record on no list, and the heap lock guards the free
        // lists and their index.
        unsafe {
            let i = list_index((*s).npages);
            if (*s).released {
                self.free[i].push_back(s);
            } else {
                self.free[i].push_front(s);
                if self.resident_last[i].is_null() {
                    self.resident_last[i] = s;
                }
            }
            self.nonempty |= 1u128 << i;
        }
    }

    /// Puts the resident free span `s` on its list as the oldest of its resident spans,
    /// the next the scavenger looks at there.
    unsafe fn insert_free_oldest(&mut self, s: *mut MSpan) {
        // SAFETY: `s` is a resident free span record on no list, and the heap lock guards
        // the free lists and their index.
        unsafe {
            debug_assert!(!(*s).released);
            let i = list_index((*s).npages);
            self.free[i].insert_after(self.resident_last[i], s);
            self.resident_last[i] = s;
            self.nonempty |= 1u128 << i;
        }
    }

    unsafe fn remove_free(&mut self, s: *mut MSpan) {
        // SAFETY: `s` is a free span on its list, whose neighbours are valid records, all
        // under the heap lock.
        unsafe {
            let i = list_index((*s).npages);
            if self.resident_last[i] == s {
                // Resident spans come first: the one before is resident too, or there is
                // none.
                self.resident_last[i] = (*s).prev;
            }
            self.free[i].remove(s);
            if self.free[i].is_empty() {
                self.nonempty &= !(1u128 << i);
            }
        }
    }

    /// Maps a free span's first and last page to it. Its interior pages keep what they
    /// held, null or a stale pointer to the span that was there before (see
    /// `pagemap::clear_info`): only the end pages of a free span are read, by
    /// `coalesce_and_insert` when a neighbour is freed.
    unsafe fn map_free_ends(s: *mut MSpan) {
        // SAFETY: `s` is a span record of ours: its first and last pages lie in registered
        // arenas, and the heap lock serialises writers of their page-map entries.
        unsafe {
            pagemap::set_span((*s).start(), s);
            pagemap::set_span((*s).end() - PAGE_SIZE, s);
        }
    }

    /// The best free span for `npages` pages aligned to `align_pages`, not yet removed
    /// from its list.
    unsafe fn find_free(&self, npages: usize, align_pages: usize) -> *mut MSpan {
        // SAFETY: the free lists hold valid free span records, read under the heap lock.
        unsafe {
            let need = npages + align_pages - 1;
            if need < NUM_FREE_LISTS {
                let mask = self.nonempty & !((1u128 << need) - 1) & !1;
                if mask != 0 {
                    return self.free[mask.trailing_zeros() as usize].first;
                }
            }
            // Best fit among the long spans: fewest pages, then resident, then lowest
            // address.
            let mut best: *mut MSpan = ptr::null_mut();
            let mut s = self.free[0].first;
            while !s.is_null() {
                if (*s).npages >= need
                    && (best.is_null()
                        || (*s).npages < (*best).npages
                        || ((*s).npages == (*best).npages
                            && ((*best).released && !(*s).released
                                || (*best).released == (*s).released
                                    && (*s).start() < (*best).start())))
                {
                    best = s;
                }
                s = (*s).next;
            }
            best
        }
    }

    /// An in-use span of `npages` pages aligned to `align_pages` pages: Large when
    /// `sizeclass` is 0, else Small with a zeroed bitmap. Null when out of memory.
    unsafe fn alloc_span_locked(
        &mut self,
        npages: usize,
        align_pages: usize,
        sizeclass: u8,
    ) -> *mut MSpan {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            if sizeclass == 0 {
                return self.alloc_pages_locked(npages, align_pages, 0);
            }
            // The bitmap first: what fails then has taken no pages.
            let bits = self.bitmaps[bitmap_index(sizeclass)].alloc() as *mut u64;
            if bits.is_null() {
                return ptr::null_mut();
            }
            let s = self.alloc_pages_locked(npages, align_pages, sizeclass);
            if s.is_null() {
                self.bitmaps[bitmap_index(sizeclass)].free(bits as *mut u8);
                return ptr::null_mut();
            }
            (*s).freebits = bits;
            s
        }
    }

    /// `alloc_span_locked` without the bitmap.
    unsafe fn alloc_pages_locked(
        &mut self,
        npages: usize,
        align_pages: usize,
        sizeclass: u8,
    ) -> *mut MSpan {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            debug_assert!(npages > 0 && align_pages.is_power_of_two());
            if align_pages == 1 {
                let s = self.cache.take(npages);
                if !s.is_null() {
                    return self.use_span(s, npages, sizeclass, sizeclass != 0);
                }
            }
            let mut s = self.find_free(npages, align_pages);
            if s.is_null() && self.cache.len() > 0 {
                // Merge what the cache holds before asking the OS for more.
                while self.cache.len() > 0 {
                    self.uncache(0);
                }
                s = self.find_free(npages, align_pages);
            }
            if s.is_null() {
                if !self.grow(npages + align_pages - 1) {
                    return ptr::null_mut();
                }
                s = self.find_free(npages, align_pages);
                if s.is_null() {
                    os::fatal("mheap: no free span after growing the heap");
                }
            }
            self.remove_free(s);
            let align = align_pages << PAGE_SHIFT;
            let head = (((*s).start() + align - 1) & !(align - 1)) - (*s).start();
            if head > 0 {
                // Give back the pages before the aligned start.
                let t = self.split_front(s, head >> PAGE_SHIFT);
                if t.is_null() {
                    self.insert_free(s);
                    return ptr::null_mut();
                }
                self.insert_free(t);
            }
            if (*s).npages > npages {
                let t = self.split_front(s, npages);
                if t.is_null() {
                    self.insert_free(s);
                    return ptr::null_mut();
                }
                // t is the allocation; s the rest, which stays free.
                self.insert_free(s);
                s = t;
            }
            self.use_span(s, npages, sizeclass, true)
        }
    }

    /// Turns the free span `s` of exactly `npages` pages (on no list) into an in-use span.
    /// `map`: its pages must be pointed at it (a cached Large span's still are).
    unsafe fn use_span(
        &mut self,
        s: *mut MSpan,
        npages: usize,
        sizeclass: u8,
        map: bool,
    ) -> *mut MSpan {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            self.stats.pages_free -= npages;
            if (*s).released {
                self.stats.pages_released -= npages;
                os::used((*s).start() as *mut u8, (*s).bytes());
                (*s).released = false;
            }
            (*s).set_state(if sizeclass == 0 {
                SpanState::Large
            } else {
                SpanState::Small
            });
            (*s).sizeclass = sizeclass;
            self.stats.pages_inuse += npages;
            if sizeclass == 0 {
                self.stats.large_allocs += 1;
                self.stats.large_pages_inuse += npages;
                self.stats.large_pages_total += npages as u64;
            }
            if map {
                pagemap::set_range((*s).start(), npages, s, sizeclass);
            }
            s
        }
    }

    /// Caches the freed Large span `s` (already counted as free), making room by sending
    /// the oldest entries to the free lists. False when `s` is too long to cache.
    unsafe fn put_cached(&mut self, s: *mut MSpan) -> bool {
        // SAFETY: `s` is a freed Large span record on no list, and the cache is guarded by
        // the heap lock.
        unsafe {
            let n = (*s).npages;
            if !SpanCache::fits(n) {
                return false;
            }
            while self.cache.needs_room_for(n) {
                self.uncache(0);
            }
            self.cache.push(s);
            true
        }
    }

    /// Moves cache entry `i` to the free lists.
    unsafe fn uncache(&mut self, i: usize) {
        // SAFETY: entry `i` is a valid Cached span record, under the heap lock; it goes to
        // the free lists as a free span.
        unsafe {
            let s = self.cache.remove(i);
            (*s).set_state(SpanState::Free);
            Self::map_free_ends(s);
            self.coalesce_and_insert(s);
        }
    }

    /// Cuts the first `npages` pages off the free span `s` (on no list) into a new free
    /// span, which it returns; `s` keeps the rest. Both keep `s`'s flags and ends mapping.
    unsafe fn split_front(&mut self, s: *mut MSpan, npages: usize) -> *mut MSpan {
        // SAFETY: `s` is a free span record on no list with more than `npages` pages (the
        // contract), under the heap lock; the new record comes from `spanalloc`.
        unsafe {
            debug_assert!(npages < (*s).npages);
            let t = self.new_span();
            if t.is_null() {
                return ptr::null_mut();
            }
            (*t).set_start((*s).start());
            (*t).npages = npages;
            (*t).set_state(SpanState::Free);
            (*t).needzero = (*s).needzero;
            (*t).released = (*s).released;
            (*t).free_time = (*s).free_time;
            (*s).set_start((*s).start() + (npages << PAGE_SHIFT));
            (*s).npages -= npages;
            Self::map_free_ends(t);
            Self::map_free_ends(s);
            t
        }
    }

    /// Maps more memory for at least `npages` pages and adds it as a free span.
    unsafe fn grow(&mut self, npages: usize) -> bool {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let Some(need) = npages.checked_mul(PAGE_SIZE) else {
                return false;
            };
            let ask = need.next_multiple_of(GROW_BYTES);
            if self.cur_end - self.cur < ask {
                // Hand the unmapped rest of this reservation to the free lists first.
                let rest = self.cur_end - self.cur;
                if rest > 0 {
                    if !os::map(self.cur as *mut u8, rest) {
                        return false;
                    }
                    self.add_fresh(self.cur, rest);
                    self.cur = self.cur_end;
                }
                let Some(size) = ask.checked_next_multiple_of(ARENA_SIZE) else {
                    return false;
                };
                let mut size = size;
                let mut base = self.reserve_arenas(size);
                if base == 0 && ask < size {
                    // Short of address space: reserve what this request needs, and no more.
                    size = ask;
                    base = self.reserve_arenas(size);
                }
                if base == 0 {
                    return false;
                }
                self.cur = base;
                self.cur_end = base + size;
            }
            if !os::map(self.cur as *mut u8, ask) {
                return false;
            }
            self.add_fresh(self.cur, ask);
            self.cur += ask;
            true
        }
    }

    /// None → Reserved for `size` bytes (a multiple of `GROW_BYTES`) from an arena's
    /// start, and the arenas they touch registered in the page map. When the OS refuses
    /// (under `RLIMIT_AS`, address space that a free span holds is still counted), the
    /// wholly free arenas go back to it and the reservation is tried once more. Returns
    /// the base, or 0.
    ///
    /// When `size` is not a multiple of the arena size, the last arena is only partly
    /// reserved; the rest of it may hold other mappings, which the page map then calls
    /// ours, with no span: `free` reports them as it reports any pointer not ours. No
    /// other reservation of ours can share the arena, as every one starts an arena.
    unsafe fn reserve_arenas(&mut self, size: usize) -> usize {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let mut retried = false;
            loop {
                // After the current reservation, else below the lowest arena: mappings are
                // placed top down, so there is usually room there when an aligned range
                // elsewhere is hard to find.
                let mut lowest = 0;
                let mut r = self.arenas;
                while !r.is_null() {
                    if lowest == 0 || (*r).base < lowest {
                        lowest = (*r).base;
                    }
                    r = (*r).next;
                }
                let below = lowest.saturating_sub(size) & !(ARENA_SIZE - 1);
                let base = os::reserve(size, ARENA_SIZE, &[self.cur_end, below]) as usize;
                if base != 0 {
                    if base + size <= 1 << pagemap::ADDR_BITS && self.register_arenas(base, size) {
                        return base;
                    }
                    // It counts against RLIMIT_AS.
                    os::free(base as *mut u8, size);
                }
                if retried || self.release_free_arenas_locked() == 0 {
                    return 0;
                }
                retried = true;
            }
        }
    }

    /// Gives each arena of the reservation `[base, base + size)` a record, from the pool
    /// or newly mapped, and registers it. False, with nothing registered, when there is no
    /// memory for the records.
    unsafe fn register_arenas(&mut self, base: usize, size: usize) -> bool {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let mut taken: *mut HeapArena = ptr::null_mut();
            for _ in 0..size.div_ceil(ARENA_SIZE) {
                let mut r = self.arena_pool;
                if r.is_null() {
                    r = os::alloc_metadata(HEAP_ARENA_BYTES) as *mut HeapArena;
                    if r.is_null() {
                        // The records taken so far are clear: they wait in the pool.
                        while !taken.is_null() {
                            let t = taken;
                            taken = (*t).next;
                            (*t).next = self.arena_pool;
                            self.arena_pool = t;
                        }
                        return false;
                    }
                    self.stats.meta_bytes += HEAP_ARENA_BYTES;
                } else {
                    self.arena_pool = (*r).next;
                }
                (*r).next = taken;
                taken = r;
            }
            let mut a = base;
            while !taken.is_null() {
                let r = taken;
                taken = (*r).next;
                (*r).base = a;
                (*r).reserved_pages = (base + size - a).min(ARENA_SIZE) >> PAGE_SHIFT;
                (*r).free_pages = 0;
                (*r).next = self.arenas;
                self.arenas = r;
                pagemap::register_arena(a, r);
                a += ARENA_SIZE;
            }
            true
        }
    }

    /// Gives every arena whose pages are all on the free lists back to the OS (any state
    /// → None): the free spans are cut at its edges, the pieces inside it dropped, its
    /// page-map entry cleared, and its record kept for the next reservation. Cached and
    /// Releasing spans count as in use here. Returns the bytes of address space given back.
    unsafe fn release_free_arenas_locked(&mut self) -> usize {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let mut r = self.arenas;
            while !r.is_null() {
                (*r).free_pages = 0;
                r = (*r).next;
            }
            for list in &self.free {
                let mut s = list.first;
                while !s.is_null() {
                    let end = (*s).end();
                    let mut a = (*s).start();
                    while a < end {
                        let piece_end = ((a | (ARENA_SIZE - 1)) + 1).min(end);
                        (*pagemap::arena_of(a)).free_pages += (piece_end - a) >> PAGE_SHIFT;
                        a = piece_end;
                    }
                    s = (*s).next;
                }
            }
            let mut any = false;
            r = self.arenas;
            while !r.is_null() {
                any |= wholly_free(r);
                r = (*r).next;
            }
            if !any {
                return 0;
            }
            for i in 0..NUM_FREE_LISTS {
                let mut s = self.free[i].first;
                while !s.is_null() {
                    // Pieces that cutting puts back on a list hold no page of a marked
                    // arena:
                    // met again, they are left alone.
                    let next = (*s).next;
                    self.cut_free_arenas(s);
                    s = next;
                }
            }
            let mut bytes = 0;
            let mut link: *mut *mut HeapArena = &mut self.arenas;
            while !(*link).is_null() {
                let r = *link;
                if !wholly_free(r) {
                    link = &mut (*r).next;
                    continue;
                }
                *link = (*r).next;
                let size = (*r).reserved_pages << PAGE_SHIFT;
                pagemap::unregister_arena((*r).base);
                os::free((*r).base as *mut u8, size);
                (*r).base = 0;
                (*r).reserved_pages = 0;
                (*r).free_pages = 0;
                (*r).next = self.arena_pool;
                self.arena_pool = r;
                bytes += size;
            }
            bytes
        }
    }

    /// Takes the pages of the free span `s` (on its list) that lie in arenas marked for
    /// release (see `wholly_free`) out of the heap; what is left of `s` stays on the free
    /// lists. Only its first and last arena can be partly outside `s`: the ones between
    /// are `s`'s alone, so they are marked. When both ends stay and there is no record for
    /// the second piece, the arenas between are unmarked instead.
    unsafe fn cut_free_arenas(&mut self, s: *mut MSpan) {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let start = (*s).start();
            let end = (*s).end();
            let first = start & !(ARENA_SIZE - 1);
            let last = (end - 1) & !(ARENA_SIZE - 1);
            let marked = |base: usize| wholly_free(pagemap::arena_of(base));
            let keep_head = !marked(first);
            let keep_tail = !marked(last);
            if keep_head && keep_tail && last <= first + ARENA_SIZE {
                return;
            }
            let mut t: *mut MSpan = ptr::null_mut();
            if keep_head && keep_tail {
                t = self.new_span();
                if t.is_null() {
                    let mut a = first + ARENA_SIZE;
                    while a < last {
                        (*pagemap::arena_of(a)).free_pages = 0;
                        a += ARENA_SIZE;
                    }
                    return;
                }
            }
            self.remove_free(s);
            // Kept: [start, head_end) and [tail_start, end); dropped: what lies between.
            let head_end = if keep_head { first + ARENA_SIZE } else { start };
            let tail_start = if keep_tail { last } else { end };
            let dropped = (tail_start - head_end) >> PAGE_SHIFT;
            self.stats.pages_free -= dropped;
            if (*s).released {
                self.stats.pages_released -= dropped;
            }
            self.stats.sys_bytes -= dropped << PAGE_SHIFT;
            if keep_tail {
                let tail = if keep_head { t } else { s };
                (*tail).set_start(tail_start);
                (*tail).npages = (end - tail_start) >> PAGE_SHIFT;
                (*tail).set_state(SpanState::Free);
                (*tail).needzero = (*s).needzero;
                (*tail).released = (*s).released;
                (*tail).free_time = (*s).free_time;
                Self::map_free_ends(tail);
                self.insert_free(tail);
            }
            if keep_head {
                (*s).npages = (head_end - start) >> PAGE_SHIFT;
                Self::map_free_ends(s);
                self.insert_free(s);
            } else if !keep_tail {
                self.spanalloc.free(s as *mut u8);
            }
        }
    }

    /// Adds freshly mapped (zero) memory as a free span.
    unsafe fn add_fresh(&mut self, start: usize, bytes: usize) {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let s = self.new_span();
            if s.is_null() {
                // No memory for the record: the pages stay mapped but unused.
                return;
            }
            (*s).set_start(start);
            (*s).npages = bytes >> PAGE_SHIFT;
            (*s).set_state(SpanState::Free);
            (*s).needzero = false;
            (*s).released = false;
            (*s).free_time = os::nanotime();
            self.stats.sys_bytes += bytes;
            self.stats.pages_free += (*s).npages;
            Self::map_free_ends(s);
            self.coalesce_and_insert(s);
        }
    }

    /// Frees the in-use span `s`; a Large one may go to the span cache when `may_cache`
    /// (its pages must then all point at it).
    unsafe fn free_span_locked(&mut self, s: *mut MSpan, may_cache: bool) {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            debug_assert!((*s).state() != SpanState::Free && (*s).list.is_null());
            let npages = (*s).npages;
            let large = (*s).state() == SpanState::Large;
            if large {
                self.stats.large_frees += 1;
                self.stats.large_pages_inuse -= npages;
            } else {
                pagemap::clear_info((*s).start(), npages);
                self.bitmaps[bitmap_index((*s).sizeclass)].free((*s).freebits as *mut u8);
                (*s).freebits = ptr::null_mut();
            }
            (*s).sizeclass = 0;
            (*s).needzero = true;
            (*s).released = false;
            (*s).free_time = os::nanotime();
            self.stats.pages_inuse -= npages;
            self.stats.pages_free += npages;
            if large && may_cache && self.put_cached(s) {
                return;
            }
            Self::map_free_ends(s);
            (*s).set_state(SpanState::Free);
            self.coalesce_and_insert(s);
        }
    }

    /// Merges the free span `s` (on no list) with free neighbours in the same release
    /// state, then puts the result on its list.
    unsafe fn coalesce_and_insert(&mut self, s: *mut MSpan) {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let before = pagemap::span_of((*s).start() - PAGE_SIZE);
            if !before.is_null()
                && MSpan::state_of(before) == SpanState::Free
                && (*before).released == (*s).released
                && (*before).end() == (*s).start()
            {
                self.remove_free(before);
                if (*s).npages > 1 || (*before).npages > 1 {
                    pagemap::set_span((*before).end() - PAGE_SIZE, ptr::null_mut());
                    pagemap::set_span((*s).start(), ptr::null_mut());
                }
                (*s).set_start((*before).start());
                (*s).npages += (*before).npages;
                (*s).needzero |= (*before).needzero;
                (*s).free_time = (*s).free_time.max((*before).free_time);
                self.spanalloc.free(before as *mut u8);
            }
            let after = pagemap::span_of((*s).end());
            if !after.is_null()
                && MSpan::state_of(after) == SpanState::Free
                && (*after).released == (*s).released
                && (*after).start() == (*s).end()
            {
                self.remove_free(after);
                pagemap::set_span((*s).end() - PAGE_SIZE, ptr::null_mut());
                pagemap::set_span((*after).start(), ptr::null_mut());
                (*s).npages += (*after).npages;
                (*s).needzero |= (*after).needzero;
                (*s).free_time = (*s).free_time.max((*after).free_time);
                self.spanalloc.free(after as *mut u8);
            }
            Self::map_free_ends(s);
            self.insert_free(s);
        }
    }

    unsafe fn take_for_release_locked(
        &mut self,
        now: u64,
        min_age_ns: u64,
        max_pages: usize,
    ) -> (*mut MSpan, u64) {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let mut wait_ns = u64::MAX;
            let mut visits = 0;
            // Cached spans idle for the delay go to the free lists, where they can be
            // picked.
            let mut i = 0;
            while i < self.cache.len() {
                visits += 1;
                let age = now.saturating_sub((*self.cache.get(i)).free_time);
                if age >= min_age_ns {
                    self.uncache(i);
                } else {
                    wait_ns = wait_ns.min(min_age_ns - age);
                    i += 1;
                }
            }
            // The oldest resident span of each list; of those old enough, the oldest.
            let mut best: *mut MSpan = ptr::null_mut();
            let mut lists = self.nonempty;
            while lists != 0 {
                let s = self.resident_last[lists.trailing_zeros() as usize];
                lists &= lists - 1;
                if s.is_null() {
                    continue;
                }
                visits += 1;
                let age = now.saturating_sub((*s).free_time);
                if age < min_age_ns {
                    wait_ns = wait_ns.min(min_age_ns - age);
                } else if best.is_null()
                    || (*s).free_time < (*best).free_time
                    || (*s).free_time == (*best).free_time && (*s).start() > (*best).start()
                {
                    best = s;
                }
            }
            self.take_visits = visits;
            if best.is_null() {
                return (
                    ptr::null_mut(),
                    if wait_ns == u64::MAX { 0 } else { wait_ns },
                );
            }
            self.remove_free(best);
            let take = (*best).npages.min(max_pages).max(1);
            if (*best).npages > take {
                // Release the highest pages; the rest stays on the lists, still the oldest.
                let front = self.split_front(best, (*best).npages - take);
                if !front.is_null() {
                    self.insert_free_oldest(front);
                }
            }
            (*best).set_state(SpanState::Releasing);
            self.stats.pages_releasing += (*best).npages;
            self.releasing.push_back(best);
            (best, 0)
        }
    }

    unsafe fn put_released_locked(&mut self, s: *mut MSpan, zeroed: bool) {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            self.releasing.remove(s);
            let n = (*s).npages;
            self.stats.pages_releasing -= n;
            self.stats.pages_released += n;
            (*s).set_state(SpanState::Free);
            (*s).released = true;
            if zeroed {
                (*s).needzero = false;
            }
            self.coalesce_and_insert(s);
        }
    }

    unsafe fn resize_large_locked(&mut self, s: *mut MSpan, npages: usize) -> bool {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            debug_assert!((*s).state() == SpanState::Large);
            let old = (*s).npages;
            if npages == old {
                return true;
            }
            if npages < old {
                let t = self.new_span();
                if t.is_null() {
                    return false;
                }
                (*t).set_start((*s).start() + (npages << PAGE_SHIFT));
                (*t).npages = old - npages;
                (*t).set_state(SpanState::Large);
                (*s).npages = npages;
                // t's pages map to s until free_span_locked rewrites its ends, so it must
                // not
                // be cached.
                self.free_span_locked(t, false);
                // t was never a separate allocation. (After the free, which counted it:
                // before
                // it, the count can be 0, and the subtraction would overflow in a debug
                // build
                // and panic with the heap lock held.)
                self.stats.large_frees -= 1;
                return true;
            }
            let mut after = pagemap::span_of((*s).end());
            if !after.is_null()
                && MSpan::state_of(after) == SpanState::Cached
                && (*after).start() == (*s).end()
            {
                // Merge it back into the free lists, then look again.
                if let Some(i) = self.cache.position(after) {
                    self.uncache(i);
                }
                after = pagemap::span_of((*s).end());
            }
            let extra = npages - old;
            if after.is_null()
                || MSpan::state_of(after) != SpanState::Free
                || (*after).start() != (*s).end()
                || (*after).npages < extra
            {
                return false;
            }
            self.remove_free(after);
            if (*after).npages > extra {
                let t = self.split_front(after, extra);
                if t.is_null() {
                    self.insert_free(after);
                    return false;
                }
                self.insert_free(after);
                self.absorb_free(s, t);
            } else {
                self.absorb_free(s, after);
            }
            true
        }
    }

    /// Appends the free span `t` (on no list, right after `s`) to the Large span `s`.
    unsafe fn absorb_free(&mut self, s: *mut MSpan, t: *mut MSpan) {
        // SAFETY: the `HeapInner` contract: the heap lock is held, so the lists, the cache,
        // the arena records, our page-map entries and the span records reached through them
        // are this thread's alone; spans passed in are in the states the doc names.
        unsafe {
            let n = (*t).npages;
            self.stats.pages_free -= n;
            if (*t).released {
                self.stats.pages_released -= n;
                os::used((*t).start() as *mut u8, (*t).bytes());
            }
            self.stats.pages_inuse += n;
            self.stats.large_pages_inuse += n;
            self.stats.large_pages_total += n as u64;
            pagemap::set_range((*t).start(), n, s, 0);
            (*s).npages += n;
            self.spanalloc.free(t as *mut u8);
        }
    }

    unsafe fn validate_locked(&self) {
        // SAFETY: the heap lock is held: the lists, the cache and the arena records are
        // read only, while no other thread changes them.
        unsafe {
            let mut free_pages = 0;
            let mut released_pages = 0;
            for (i, list) in self.free.iter().enumerate() {
                list.validate();
                invariant_eq!(
                    self.nonempty & (1u128 << i) != 0,
                    !list.is_empty(),
                    "bit {i}"
                );
                let mut s = list.first;
                let mut seen_released = false;
                let mut last_resident: *mut MSpan = ptr::null_mut();
                while !s.is_null() {
                    let sp = &*s;
                    invariant_eq!(sp.state(), SpanState::Free);
                    invariant!(sp.freebits.is_null(), "a free span has no bitmap");
                    invariant_eq!(list_index(sp.npages), i);
                    invariant!(!seen_released || sp.released, "resident spans come first");
                    seen_released |= sp.released;
                    if !sp.released {
                        last_resident = s;
                    }
                    invariant_eq!(pagemap::span_of(sp.start()), s);
                    invariant_eq!(pagemap::span_of(sp.end() - PAGE_SIZE), s);
                    for k in 1..sp.npages.saturating_sub(1) {
                        let a = sp.start() + (k << PAGE_SHIFT);
                        // Interior span pointers may be stale, never the info word.
                        invariant_eq!(pagemap::page_class(a), 0);
                    }
                    // Neighbours in the same state would have been merged.
                    for n in [
                        pagemap::span_of(sp.start() - PAGE_SIZE),
                        pagemap::span_of(sp.end()),
                    ] {
                        if !n.is_null() && MSpan::state_of(n) == SpanState::Free {
                            invariant!((*n).released != sp.released, "unmerged free neighbours");
                        }
                    }
                    free_pages += sp.npages;
                    if sp.released {
                        released_pages += sp.npages;
                    }
                    s = sp.next;
                }
                invariant_eq!(self.resident_last[i], last_resident, "scavenge index {i}");
            }
            let cached = self.cache.validate();
            free_pages += cached;
            self.releasing.validate();
            let mut s = self.releasing.first;
            while !s.is_null() {
                invariant_eq!((*s).state(), SpanState::Releasing);
                free_pages += (*s).npages;
                s = (*s).next;
            }
            let mut reserved = 0;
            let mut r = self.arenas;
            while !r.is_null() {
                invariant_eq!(pagemap::arena_of((*r).base), r);
                invariant!((*r).reserved_pages > 0 && (*r).reserved_pages <= PAGES_PER_ARENA);
                reserved += (*r).reserved_pages << PAGE_SHIFT;
                r = (*r).next;
            }
            // Less when a span record was missing for fresh pages (`add_fresh`).
            invariant!(self.stats.sys_bytes + (self.cur_end - self.cur) <= reserved);
            r = self.arena_pool;
            while !r.is_null() {
                invariant!((*r).base == 0 && (*r).reserved_pages == 0);
                r = (*r).next;
            }
            invariant_eq!(free_pages, self.stats.pages_free);
            invariant_eq!(released_pages, self.stats.pages_released);
            invariant_eq!(
                (self.stats.pages_free + self.stats.pages_inuse) << PAGE_SHIFT,
                self.stats.sys_bytes
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_alloc_free_coalesce() {
        assert!(crate::init());
        let h = &HEAP;
        h.validate();
        // SAFETY: every span used here is allocated in this test and freed once.
        unsafe {
            let a = h.alloc_span(3, 0);
            let b = h.alloc_span(200, 0);
            let c = h.alloc_span(1, 5);
            assert!(!a.is_null() && !b.is_null() && !c.is_null());
            assert_eq!((*a).state(), SpanState::Large);
            assert_eq!((*c).state(), SpanState::Small);
            for s in [a, b, c] {
                assert_eq!((*s).start() % PAGE_SIZE, 0);
                for k in 0..(*s).npages {
                    let p = (*s).start() + k * PAGE_SIZE + 17;
                    assert_eq!(pagemap::span_of(p), s);
                    assert_eq!(pagemap::page_class(p), (*s).sizeclass as usize);
                }
            }
            h.validate();
            h.free_span(b);
            h.free_span(a);
            h.free_span(c);
            // Other tests allocate concurrently (the harness itself runs on goalloc), so
            // the heap's totals are not compared here; validate() checks they add up.
            h.validate();

            let d = h.alloc_span_aligned(4, 1 << 20);
            assert_eq!((*d).start() % (1 << 20), 0);
            assert_eq!((*d).npages, 4);
            h.validate();
            // Growing in place works only when the pages after d are free.
            let grew = h.resize_large(d, 9);
            assert_eq!((*d).npages, if grew { 9 } else { 4 });
            h.validate();
            assert!(h.resize_large(d, 2), "shrinking always works");
            assert_eq!((*d).npages, 2);
            h.validate();
            h.free_span(d);
            h.validate();
        }
    }

    #[test]
    fn wholly_free_arenas_go_back_to_the_os() {
        assert!(crate::init());
        // SAFETY: the spans are used only here; the heap lock is held around the calls of
        // `_locked` functions.
        unsafe {
            let npages = ARENA_SIZE * 7 / 2 / PAGE_SIZE;
            let s = HEAP.alloc_span(npages, 0);
            assert!(!s.is_null());
            let (start, end) = ((*s).start(), (*s).end());
            (start as *mut u8).write(1);
            // The arenas wholly inside the span, which no other span shares.
            let inner = start.next_multiple_of(ARENA_SIZE)..end & !(ARENA_SIZE - 1);
            assert!(inner.len() >= 2 * ARENA_SIZE);
            let sys = HEAP.stats().sys_bytes;
            // Under one hold of the lock, so that no other test takes the pages meanwhile.
            HEAP.lock.lock();
            let h = HEAP.inner();
            h.free_span_locked(s, false);
            let bytes = h.release_free_arenas_locked();
            let sys_after = h.stats.sys_bytes;
            HEAP.lock.unlock();
            assert!(bytes >= inner.len(), "{bytes} bytes given back");
            assert!(
                sys_after + inner.len() <= sys,
                "HeapSys {sys} -> {sys_after}"
            );
            for a in inner.step_by(ARENA_SIZE) {
                assert!(pagemap::arena_of(a).is_null(), "{a:#x} is still ours");
                assert!(pagemap::span_of(a + 12345).is_null());
            }
            HEAP.validate();
            // The address space serves the same length again, and small spans too.
            let t = HEAP.alloc_span(npages, 0);
            let u = HEAP.alloc_span(1, 5);
            assert!(!t.is_null() && !u.is_null());
            ((*t).end() as *mut u8).sub(1).write(2);
            ((*u).start() as *mut u8).write(3);
            HEAP.validate();
            HEAP.free_span(u);
            HEAP.free_span(t);
            HEAP.validate();
        }
    }

    #[test]
    fn releasing_arenas_among_live_spans_keeps_the_heap_valid() {
        assert!(crate::init());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let mut live = [ptr::null_mut::<MSpan>(); 48];
        let mut given_back = 0;
        // SAFETY: the spans are used only here; the heap lock is held around the calls of
        // `_locked` functions.
        unsafe {
            for _ in 0..12 {
                for slot in live.iter_mut() {
                    if slot.is_null() {
                        // Lengths from a page to 48 MiB, Large and Small.
                        let (npages, class) = match rand(3) {
                            0 => (1 + rand(6144), 0),
                            1 => (1 + rand(64), 0),
                            _ => (1, 1 + rand(20) as u8),
                        };
                        let pages = if class == 0 {
                            npages
                        } else {
                            crate::sizeclass::CLASS_NPAGES[class as usize] as usize
                        };
                        *slot = HEAP.alloc_span(pages, class);
                        assert!(!slot.is_null());
                        ((**slot).start() as *mut u8).write(1);
                    }
                }
                HEAP.lock.lock();
                let h = HEAP.inner();
                for slot in live.iter_mut() {
                    if rand(2) == 0 {
                        h.free_span_locked(*slot, rand(2) == 0);
                        *slot = ptr::null_mut();
                    }
                }
                // Some free spans released, so that an arena can hold free spans in both
                // states.
                for _ in 0..4 {
                    let (s, _) = h.take_for_release_locked(u64::MAX, 0, 1 + rand(2048));
                    if !s.is_null() {
                        h.put_released_locked(s, false);
                    }
                }
                given_back += h.release_free_arenas_locked();
                h.validate_locked();
                HEAP.lock.unlock();
            }
            for s in live {
                if !s.is_null() {
                    HEAP.free_span(s);
                }
            }
            HEAP.validate();
        }
        assert!(given_back >= ARENA_SIZE, "{given_back} bytes given back");
    }

    #[test]
    fn huge_span_crosses_arenas() {
        assert!(crate::init());
        // SAFETY: the span is used only here.
        unsafe {
            let npages = (100 << 20) / PAGE_SIZE;
            let s = HEAP.alloc_span(npages, 0);
            assert!(!s.is_null());
            let p = (*s).start() as *mut u8;
            p.write(1);
            p.add((100 << 20) - 1).write(2);
            assert_eq!(pagemap::span_of((*s).start() + (80 << 20)), s);
            HEAP.validate();
            HEAP.free_span(s);
            HEAP.validate();
        }
    }
    /// `2 * n` one-page Large spans from the heap; every other one is freed (not cached),
    /// under one hold of the lock, so that `n` free spans lie between in-use ones and no
    /// two of them merge. Returns the spans still in use.
    fn fragmented_heap(n: usize) -> Vec<*mut MSpan> {
        let spans: Vec<*mut MSpan> = (0..2 * n).map(|_| HEAP.alloc_span(1, 0)).collect();
        assert!(spans.iter().all(|s| !s.is_null()));
        HEAP.lock.lock();
        // SAFETY: the heap lock is held; the spans were allocated above and are freed once.
        unsafe {
            let h = HEAP.inner();
            for &s in spans.iter().step_by(2) {
                h.free_span_locked(s, false);
            }
        }
        HEAP.lock.unlock();
        spans.into_iter().skip(1).step_by(2).collect()
    }

    fn free_all(spans: Vec<*mut MSpan>) {
        for s in spans {
            // SAFETY: each span is in use and freed once.
            unsafe { HEAP.free_span(s) };
        }
    }

    #[test]
    fn choosing_a_chunk_does_not_walk_the_free_spans() {
        assert!(crate::init());
        let n = 4000;
        let live = fragmented_heap(n);
        HEAP.lock.lock();
        // SAFETY: the heap lock is held; the span taken is put back in the same hold.
        let visits = unsafe {
            let h = HEAP.inner();
            let (s, _) = h.take_for_release_locked(u64::MAX, 0, 1);
            assert!(!s.is_null());
            h.put_released_locked(s, false);
            h.take_visits
        };
        HEAP.lock.unlock();
        free_all(live);
        HEAP.validate();
        // Each free list's oldest resident span and the span cache, whatever the heap
        // holds.
        assert!(
            visits <= NUM_FREE_LISTS + crate::large::SPAN_CACHE_SLOTS,
            "{visits} spans looked at with {n} free spans"
        );
    }

    /// The longest hold of the heap lock while `release_all` releases a fragmented heap of
    /// 100,000 free spans: its locked sections, as `release_oldest` runs them (the
    /// scavenger's chunks take the same ones), timed one by one.
    /// A measurement, not a check: run it alone,
    /// `cargo test --release --lib mheap::tests::lock_hold -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn lock_hold_releasing_a_fragmented_heap() {
        use std::time::Instant;
        assert!(crate::init());
        let n = 100_000;
        let live = fragmented_heap(n);
        let mode = os::ReleaseMode::DontNeed;
        let mut takes = Vec::with_capacity(n + 1);
        let mut longest_put = 0u128;
        let mut most_visits = 0;
        let mut chunks = 0;
        let t0 = Instant::now();
        loop {
            HEAP.lock.lock();
            let t = Instant::now();
            // SAFETY: the heap lock is held.
            let (s, _) = unsafe {
                HEAP.inner()
                    .take_for_release_locked(0, 0, RELEASE_ALL_CHUNK_PAGES)
            };
            let took = t.elapsed().as_nanos();
            // SAFETY: the heap lock is held.
            most_visits = most_visits.max(unsafe { HEAP.inner().take_visits });
            HEAP.lock.unlock();
            // Not under the lock: a push may allocate.
            takes.push(took);
            if s.is_null() {
                break;
            }
            chunks += 1;
            // SAFETY: s is Releasing: only this thread touches it.
            unsafe {
                let zeroed = os::release((*s).start() as *mut u8, (*s).bytes(), mode);
                HEAP.lock.lock();
                let t = Instant::now();
                HEAP.inner().put_released_locked(s, zeroed);
                longest_put = longest_put.max(t.elapsed().as_nanos());
                HEAP.lock.unlock();
            }
        }
        let total = t0.elapsed();
        HEAP.lock.lock();
        let t = Instant::now();
        // SAFETY: the heap lock is held.
        unsafe { HEAP.inner().release_free_arenas_locked() };
        let arenas = t.elapsed().as_nanos();
        HEAP.lock.unlock();
        takes.sort_unstable();
        let us = |i: usize| takes[i.min(takes.len() - 1)] as f64 / 1e3;
        println!(
            "{n} free spans: {chunks} chunks in {:.3} s; choosing a chunk: at most {most_visits} \
             spans looked at, hold median {:.1} us, 99th percentile {:.1} us, longest {:.1} us; \
             longest hold putting it back {:.1} us; release_free_arenas {:.1} us",
            total.as_secs_f64(),
            us(takes.len() / 2),
            us(takes.len() * 99 / 100),
            us(takes.len() - 1),
            longest_put as f64 / 1e3,
            arenas as f64 / 1e3
        );
        free_all(live);
        HEAP.validate();
    }
}
