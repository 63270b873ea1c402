//! MSpan: a run of contiguous pages, and lists of spans.
//!
//! A span is in one of five states (`SpanState`):
//! - **Free**: owned by mheap, on one of its free lists. Its first and last pages map to it
//!   in the page map; interior pages are not read while it is free, and keep whatever
//!   they mapped to before (possibly a record that no longer starts there, which `free`
//!   reports as a bad pointer all the same). It remembers when it was freed
//!   (`free_time`), whether its pages went back to the OS (`released`) and whether they
//!   may hold old data (`needzero`).
//! - **Small**: cut into `nelems` objects of class `sizeclass`, owned by that class's
//!   mcentral. Every page maps to the span. Objects `[freeindex, nelems)` were never handed
//!   out; objects returned to the span have their bit set in `freebits` (as Go's
//!   `allocBits`, a bitmap rather than a list threaded through the objects: taking a batch
//!   out of a span then reads no object, where following a list would wait for a cache
//!   miss per object). The bitmap lives outside the record, sized by class (8 to 128
//!   bytes, from mheap's `bitmaps`), so that the records of Free and Large spans and of
//!   the classes with few objects per span do not carry room for 1024 bits. Invariant:
//!   `alloc_count + nreturned + (nelems - freeindex) == nelems`, where `alloc_count`
//!   counts objects held by caches, transfer batches and the program.
//! - **Large**: one object of `npages` pages (class 0), handed to the program. Every page
//!   maps to the span.
//! - **Releasing**: free, taken off the free lists by the scavenger, which returns its
//!   pages to the OS without the heap lock; on mheap's `releasing` list.
//! - **Cached**: a freed Large span kept whole, by its thread or by mheap's span cache
//!   (see `large`), for the next allocation of its length. Free for the statistics, its
//!   pages still all map to it.
//!
//! The state is atomic: a thread moves its own kept spans between Large and Cached
//! without the heap lock (see `MSpan::state`).

use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// A free object: its first word links it to the next.
#[repr(C)]
pub struct FreeObject {
    pub next: *mut FreeObject,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SpanState {
    Free = 0,
    Small = 1,
    Large = 2,
    /// Free, taken off the free lists while its pages are being released (the scavenger
    /// calls `madvise` without the heap lock); on mheap's `releasing` list.
    Releasing = 3,
    /// A freed Large span kept whole in mheap's span cache, for the next allocation of
    /// the same length; its pages count as free and resident.
    Cached = 4,
}

/// The most words a span's `freebits` has: enough for the most objects a span holds (1024
/// of 8 B).
pub const FREEBITS_MAX_WORDS: usize = 16;

/// Words of the bitmap of a span of `nelems` objects: a power of two, so that the bitmaps
/// come in five sizes (1, 2, 4, 8 and 16 words).
pub const fn bitmap_words(nelems: usize) -> usize {
    nelems.div_ceil(64).next_power_of_two()
}

#[repr(C)]
pub struct MSpan {
    pub next: *mut MSpan,
    pub prev: *mut MSpan,
    /// The list this span is on, or null.
    pub list: *mut MSpanList,
    /// Address of the first page. Atomic, and read with `start`/`start_of`, because
    /// `free` of a pointer the program may not own reads it without a lock while the
    /// heap may be splitting or merging that span (see `large::span_of`); every other
    /// access is under the span's owner (the heap lock, or mcentral's for a Small span,
    /// whose start does not change), where a relaxed load is a plain one.
    start: AtomicUsize,
    pub npages: usize,
    /// Small: `bitmap_words(nelems)` words, a bit per object returned to this span (and
    /// not taken again). Null in every other state.
    pub freebits: *mut u64,
    /// Set bits in `freebits`.
    pub nreturned: u32,
    /// No bit is set in the words of `freebits` before this one.
    pub scan: u32,
    /// Objects from this index on were never handed out (Small).
    pub freeindex: u32,
    pub nelems: u32,
    /// Objects handed out of the span and not returned to it (Small).
    pub alloc_count: u32,
    pub elemsize: u32,
    pub sizeclass: u8,
    /// A `SpanState`, atomic because a thread moves its own kept Large spans between
    /// Large and Cached without the heap lock while other threads, under the lock, read
    /// the state of the span next to theirs, and `free` of a bad pointer reads any span's
    /// without it: see `state` and `set_state`.
    state: AtomicU8,
    /// Pages may hold old data, so zeroed requests must clear them.
    pub needzero: bool,
    /// Free: the pages were returned to the OS.
    pub released: bool,
    /// Large: 1 + the heap-profile bucket of the sampled object it holds, 0 when the
    /// object was not sampled (see `profile`). In the record's padding.
    pub sample: u32,
    /// Free: when the span was freed (`os::nanotime`).
    pub free_time: u64,
}

impl MSpan {
    /// The span's state. Relaxed: what a reader decides from it does not depend on other
    /// memory it could order. Free is written (and left) only under the heap lock, which
    /// orders it for every reader under the lock; the writes made without the lock (a
    /// thread's kept spans, Large ↔ Cached) are never Free, so a reader under the lock
    /// that coalesces or grows into a neighbour decides the same whichever of them it
    /// sees. A reader without any lock sees a Large span it owns as Large, through the
    /// synchronisation that handed it the object.
    #[inline]
    pub fn state(&self) -> SpanState {
        MSpan::from_state_bits(self.state.load(Ordering::Relaxed))
    }

    /// `state` of the span record at `s`, for a reader without a lock that may not own
    /// the span (`free` of a bad pointer): it reads the atomic alone and makes no
    /// reference to the record, whose other fields the heap may be writing meanwhile.
    ///
    /// # Safety
    /// `s` points to a span record (records live forever).
    #[inline]
    pub unsafe fn state_of(s: *const MSpan) -> SpanState {
        // SAFETY: s is a live record (caller's contract); the atomic field alone is
        // borrowed, and atomics may be read while other threads write them.
        let state = unsafe { &*ptr::addr_of!((*s).state) };
        MSpan::from_state_bits(state.load(Ordering::Relaxed))
    }

    /// `state_of` with an acquire load, which pairs with `set_state`'s release store: a
    /// reader that sees Large here also sees every write made to the record before the
    /// span became Large (its `start` and `npages`), for large `free`, which reads `start`
    /// of a span it found Large without any lock (see `large::span_of`).
    ///
    /// # Safety
    /// As `state_of`.
    #[inline]
    pub unsafe fn state_acquire_of(s: *const MSpan) -> SpanState {
        // SAFETY: as in state_of.
        let state = unsafe { &*ptr::addr_of!((*s).state) };
        MSpan::from_state_bits(state.load(Ordering::Acquire))
    }

    /// Sets the span's state. The caller owns the span: under the heap lock, or a thread
    /// moving its own kept span. Release, for `state_acquire_of` (readers under the lock
    /// need no more than relaxed, for the reasons given at `state`).
    #[inline]
    pub fn set_state(&self, state: SpanState) {
        self.state.store(state as u8, Ordering::Release)
    }

    #[inline]
    fn from_state_bits(bits: u8) -> SpanState {
        match bits {
            0 => SpanState::Free,
            1 => SpanState::Small,
            2 => SpanState::Large,
            3 => SpanState::Releasing,
            _ => SpanState::Cached,
        }
    }

    /// Address of the first page.
    #[inline]
    pub fn start(&self) -> usize {
        self.start.load(Ordering::Relaxed)
    }

    /// `start` of the record at `s` without a reference to the record, for `free` of a
    /// pointer the program may not own (see `state_of`).
    ///
    /// # Safety
    /// `s` points to a span record (records live forever).
    #[inline]
    pub unsafe fn start_of(s: *const MSpan) -> usize {
        // SAFETY: s is a live record (caller's contract); only the atomic field is
        // borrowed, and atomics may be read while other threads write them.
        let start = unsafe { &*ptr::addr_of!((*s).start) };
        start.load(Ordering::Relaxed)
    }

    /// Sets the first page's address; the caller owns the span (the heap lock).
    #[inline]
    pub fn set_start(&self, start: usize) {
        self.start.store(start, Ordering::Relaxed)
    }

    #[inline]
    pub fn end(&self) -> usize {
        self.start() + (self.npages << crate::sizeclass::PAGE_SHIFT)
    }

    #[inline]
    pub fn bytes(&self) -> usize {
        self.npages << crate::sizeclass::PAGE_SHIFT
    }

    /// Objects available in the span itself (returned or never handed out).
    #[inline]
    pub fn nfree(&self) -> u32 {
        self.nelems - self.alloc_count
    }

    /// Marks object `i` as returned to the span `s`. False, and nothing changed, when it
    /// was never handed out or is already back: a double free (or a bad pointer) that
    /// reached the span.
    ///
    /// It takes a raw pointer, not `&mut self`: a `&mut` to the record would claim all of
    /// it, state and start included, which other threads read without a lock (the heap
    /// looking at a neighbour, `free` of a bad pointer); only the fields written here are
    /// touched.
    ///
    /// # Safety
    /// `s` is a span record; the span's owner lock is held.
    #[inline]
    pub unsafe fn put_returned(s: *mut MSpan, i: usize) -> bool {
        let w = i / 64;
        let bit = 1u64 << (i % 64);
        // SAFETY: s is a record whose bitmap, cursor and counts the owner lock (held)
        // guards; i < freeindex <= nelems, so w is within the bitmap.
        unsafe {
            if i >= (*s).freeindex as usize {
                return false;
            }
            let word = (*s).freebits.add(w);
            if *word & bit != 0 {
                return false;
            }
            *word |= bit;
            (*s).nreturned += 1;
            if (w as u32) < (*s).scan {
                (*s).scan = w as u32;
            }
        }
        true
    }

    /// Takes the lowest returned object's index of span `s`, or None. Reads only the
    /// bitmap: the objects themselves stay untouched (a linked free list would cost a
    /// dependent cache miss per object). A raw pointer, as for `put_returned`.
    ///
    /// # Safety
    /// `s` is a span record; the span's owner lock is held.
    #[inline]
    pub unsafe fn take_returned(s: *mut MSpan) -> Option<usize> {
        // SAFETY: s is a record whose bitmap, cursor and counts the owner lock (held)
        // guards; nreturned > 0, so a set bit lies at or after the scan word, within the
        // bitmap.
        unsafe {
            if (*s).nreturned == 0 {
                return None;
            }
            let mut w = (*s).scan as usize;
            while *(*s).freebits.add(w) == 0 {
                w += 1;
            }
            let word = (*s).freebits.add(w);
            let bits = *word;
            *word = bits & (bits - 1);
            (*s).nreturned -= 1;
            (*s).scan = w as u32;
            Some(w * 64 + bits.trailing_zeros() as usize)
        }
    }

    /// Checks the Small invariant against the bitmap of returned objects.
    ///
    /// # Safety
    /// The span's owner lock is held.
    pub unsafe fn validate_small(&self) {
        invariant_eq!(self.state(), SpanState::Small);
        invariant!(self.freeindex <= self.nelems);
        invariant!(!self.freebits.is_null(), "a Small span has a bitmap");
        let mut n = 0u32;
        // SAFETY: a Small span's bitmap has bitmap_words(nelems) words, guarded by the
        // span's owner lock (held).
        let words = unsafe {
            core::slice::from_raw_parts(self.freebits, bitmap_words(self.nelems as usize))
        };
        for (w, &bits) in words.iter().enumerate() {
            invariant!(
                bits == 0 || w as u32 >= self.scan,
                "a returned object before the scan"
            );
            let mut b = bits;
            while b != 0 {
                let i = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                invariant!(
                    i < self.freeindex as usize,
                    "a returned object was handed out before"
                );
                n += 1;
            }
        }
        invariant_eq!(n, self.nreturned);
        invariant_eq!(
            self.alloc_count + n + (self.nelems - self.freeindex),
            self.nelems
        );
    }
}

/// A doubly linked list of spans (the span's `next`/`prev`/`list` fields).
pub struct MSpanList {
    pub first: *mut MSpan,
    pub last: *mut MSpan,
    pub len: usize,
}

impl Default for MSpanList {
    fn default() -> Self {
        MSpanList::new()
    }
}

impl MSpanList {
    pub const fn new() -> MSpanList {
        MSpanList {
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            len: 0,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.first.is_null()
    }

    /// # Safety
    /// `s` is a valid span on no list; the list's owner lock is held.
    pub unsafe fn push_front(&mut self, s: *mut MSpan) {
        // SAFETY: s is a valid span on no list, and the list and its spans are guarded by the
        // owner lock, held (caller's contract); the list's spans are valid.
        unsafe {
            debug_assert!((*s).list.is_null());
            (*s).prev = ptr::null_mut();
            (*s).next = self.first;
            if self.first.is_null() {
                self.last = s;
            } else {
                (*self.first).prev = s;
            }
            self.first = s;
            (*s).list = self;
            self.len += 1;
        }
    }

    /// # Safety
    /// As `push_front`.
    pub unsafe fn push_back(&mut self, s: *mut MSpan) {
        // SAFETY: as `push_front`.
        unsafe {
            debug_assert!((*s).list.is_null());
            (*s).next = ptr::null_mut();
            (*s).prev = self.last;
            if self.last.is_null() {
                self.first = s;
            } else {
                (*self.last).next = s;
            }
            self.last = s;
            (*s).list = self;
            self.len += 1;
        }
    }

    /// Puts `s` right after `at`, or first when `at` is null.
    ///
    /// # Safety
    /// `s` is a valid span on no list; `at` is null or on this list; the list's owner lock
    /// is held.
    pub unsafe fn insert_after(&mut self, at: *mut MSpan, s: *mut MSpan) {
        if at.is_null() {
            // SAFETY: the caller's contract is push_front's.
            return unsafe { self.push_front(s) };
        }
        // SAFETY: `s` and `at` are valid records (the contract), `at` and its successor are
        // on this list, and the owner lock keeps every other thread off their links.
        unsafe {
            debug_assert!((*s).list.is_null() && core::ptr::eq((*at).list, self));
            (*s).prev = at;
            (*s).next = (*at).next;
            if (*at).next.is_null() {
                self.last = s;
            } else {
                (*(*at).next).prev = s;
            }
            (*at).next = s;
            (*s).list = self;
        }
        self.len += 1;
    }

    /// # Safety
    /// `s` is on this list; the list's owner lock is held.
    pub unsafe fn remove(&mut self, s: *mut MSpan) {
        // SAFETY: s and its neighbours are valid spans on this list, guarded by the owner lock
        // (held; caller's contract).
        unsafe {
            debug_assert!(core::ptr::eq((*s).list, self));
            if (*s).prev.is_null() {
                self.first = (*s).next;
            } else {
                (*(*s).prev).next = (*s).next;
            }
            if (*s).next.is_null() {
                self.last = (*s).prev;
            } else {
                (*(*s).next).prev = (*s).prev;
            }
            (*s).next = ptr::null_mut();
            (*s).prev = ptr::null_mut();
            (*s).list = ptr::null_mut();
            self.len -= 1;
        }
    }

    /// Checks the links and the count.
    ///
    /// # Safety
    /// The list's owner lock is held.
    pub unsafe fn validate(&self) {
        // SAFETY: the list's spans are valid, guarded by the owner lock (held).
        unsafe {
            let mut n = 0;
            let mut prev: *mut MSpan = ptr::null_mut();
            let mut s = self.first;
            while !s.is_null() {
                invariant_eq!((*s).prev, prev);
                invariant_eq!((*s).list as *const MSpanList, self as *const MSpanList);
                n += 1;
                prev = s;
                s = (*s).next;
            }
            invariant_eq!(self.last, prev);
            invariant_eq!(n, self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize) -> MSpan {
        MSpan {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            list: ptr::null_mut(),
            start: AtomicUsize::new(start),
            npages: 1,
            freebits: ptr::null_mut(),
            nreturned: 0,
            scan: 0,
            freeindex: 0,
            nelems: 0,
            alloc_count: 0,
            elemsize: 0,
            sizeclass: 0,
            state: AtomicU8::new(SpanState::Free as u8),
            needzero: false,
            released: false,
            sample: 0,
            free_time: 0,
        }
    }

    #[test]
    fn list_operations() {
        let mut spans: Vec<MSpan> = (0..6).map(span).collect();
        let p: Vec<*mut MSpan> = spans.iter_mut().map(|s| s as *mut MSpan).collect();
        let mut l = MSpanList::new();
        // SAFETY: the spans outlive the list and this test is the only user.
        unsafe {
            for &s in &p[..3] {
                l.push_front(s);
            }
            for &s in &p[3..] {
                l.push_back(s);
            }
            l.validate();
            assert_eq!(l.len, 6);
            let order: Vec<usize> = {
                let mut v = vec![];
                let mut s = l.first;
                while !s.is_null() {
                    v.push((*s).start());
                    s = (*s).next;
                }
                v
            };
            assert_eq!(order, vec![2, 1, 0, 3, 4, 5]);
            l.remove(p[2]);
            l.remove(p[5]);
            l.remove(p[0]);
            l.validate();
            assert_eq!(l.len, 3);
            assert!((*p[2]).list.is_null());
            l.remove(p[1]);
            l.remove(p[3]);
            l.remove(p[4]);
            l.validate();
            assert!(l.is_empty());
        }
    }

    #[test]
    fn insert_after_links_in_place() {
        let mut spans: Vec<MSpan> = (0..4).map(span).collect();
        let p: Vec<*mut MSpan> = spans.iter_mut().map(|s| s as *mut MSpan).collect();
        let mut l = MSpanList::new();
        // SAFETY: the spans outlive the list and this test is the only user.
        unsafe {
            l.insert_after(ptr::null_mut(), p[0]);
            l.insert_after(p[0], p[2]);
            l.insert_after(p[0], p[1]);
            l.insert_after(p[2], p[3]);
            l.validate();
            let mut order = vec![];
            let mut s = l.first;
            while !s.is_null() {
                order.push((*s).start());
                s = (*s).next;
            }
            assert_eq!(order, vec![0, 1, 2, 3]);
            assert_eq!(l.last, p[3]);
        }
    }

    #[test]
    fn span_record_size() {
        // README's known limits quote it.
        assert_eq!(core::mem::size_of::<MSpan>(), 88);
    }

    #[test]
    fn bitmap_sizes() {
        assert_eq!(bitmap_words(1), 1);
        assert_eq!(bitmap_words(64), 1);
        assert_eq!(bitmap_words(65), 2);
        assert_eq!(bitmap_words(170), 4);
        assert_eq!(bitmap_words(1024), FREEBITS_MAX_WORDS);
        for c in 1..crate::sizeclass::NUM_CLASSES {
            let n = crate::sizeclass::CLASS_NELEMS[c] as usize;
            assert!(bitmap_words(n) * 64 >= n && bitmap_words(n) <= FREEBITS_MAX_WORDS);
        }
    }

    #[test]
    fn returned_objects_come_back_lowest_first() {
        let mut bits = [0u64; FREEBITS_MAX_WORDS];
        let mut s = span(0x10000);
        s.freebits = bits.as_mut_ptr();
        s.set_state(SpanState::Small);
        s.nelems = 1024;
        s.elemsize = 8;
        s.freeindex = 1024;
        s.alloc_count = 1024;
        let sp: *mut MSpan = &mut s;
        // SAFETY: this test owns the span; it is used through sp alone from here.
        unsafe {
            assert_eq!(MSpan::take_returned(sp), None);
            for i in [1023, 5, 64, 700, 63, 0] {
                assert!(MSpan::put_returned(sp, i));
                (*sp).alloc_count -= 1;
            }
            assert!(!MSpan::put_returned(sp, 64), "already back");
            (*sp).freeindex = 1000;
            assert!(!MSpan::put_returned(sp, 1010), "never handed out");
            (*sp).freeindex = 1024;
            (*sp).validate_small();
            assert_eq!((*sp).nreturned, 6);
            assert_eq!(MSpan::take_returned(sp), Some(0));
            assert_eq!(MSpan::take_returned(sp), Some(5));
            (*sp).alloc_count += 2;
            // One returned below the cursor is still found first.
            assert!(MSpan::put_returned(sp, 1));
            (*sp).alloc_count -= 1;
            (*sp).validate_small();
            let rest: Vec<usize> = core::iter::from_fn(|| MSpan::take_returned(sp)).collect();
            assert_eq!(rest, vec![1, 63, 64, 700, 1023]);
            (*sp).alloc_count += 5;
            assert_eq!((*sp).nreturned, 0);
            (*sp).validate_small();
        }
    }
}
