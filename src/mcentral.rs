//! mcentral: the shared store of objects of one size class.
//!
//! Each class has spans with free objects (`partial`) and spans without (`full`), plus a
//! transfer cache of ready batches: chains of exactly `CLASS_BATCH[class]` objects that a
//! thread flushed and another can take whole, in O(1), without touching the spans (as
//! tcmalloc's transfer cache). Objects in batches count as allocated for their spans.
//! When every object of a span is back in the span, the span goes back to mheap.
//!
//! Lock order: one mcentral lock at a time, and none is held while mheap's is taken: a
//! class unlocks before it asks mheap for a span or gives spans back, so that a thread
//! waiting for the heap (which may be mapping memory) holds up no one else's class. Only
//! `fork` holds several: every class's lock, then mheap's (the order of `lib.rs`).

use crate::checked;
use crate::mheap::HEAP;
use crate::os;
use crate::pagemap;
use crate::sizeclass::{
    object_index, CLASS_BATCH, CLASS_NELEMS, CLASS_NPAGES, CLASS_SIZE, NUM_CLASSES,
};
use crate::span::{FreeObject, MSpan, MSpanList, SpanState};
use crate::sync::{Guarded, Mutex};
use core::ptr;

/// Most ready batches a class keeps.
const MAX_BATCHES: usize = 32;
/// Bytes a class may keep in ready batches (at least one batch). Every batched object
/// keeps its span from going back to mheap, and batches outlive the threads that flushed
/// them: a larger bound lets short-lived threads leave spans behind in every class they
/// touched (the `threads` workload's peak RSS grows with it, its time does not). One
/// batch in each direction is enough for a producer and a consumer.
const BATCH_BYTES_LIMIT: usize = 16 << 10;

/// One class's central store, on cache lines of its own against false sharing.
#[repr(C, align(128))]
pub struct MCentral {
    pub lock: Mutex,
    inner: Guarded<CentralInner>,
}

/// Per-class counters (objects moved between caches and mcentral).
#[derive(Clone, Copy, Default, Debug)]
pub struct CentralStats {
    /// Spans of this class in use (partial + full).
    pub nspans: usize,
    /// Objects in the transfer cache.
    pub batched: usize,
    /// Objects held outside the spans (by caches, batches or the program).
    pub alloc_count: usize,
    /// Objects handed to thread caches so far (Go's approximation of Mallocs: an object
    /// counts when it reaches a cache, not when the program takes it).
    pub nmalloc: u64,
    /// Objects taken back from thread caches so far.
    pub nfree: u64,
}

struct CentralInner {
    partial: MSpanList,
    full: MSpanList,
    batches: [*mut FreeObject; MAX_BATCHES],
    nbatches: usize,
    nmalloc: u64,
    nfree: u64,
}

/// The central stores, indexed by size class (entry 0 unused).
pub static CENTRAL: [MCentral; NUM_CLASSES] = [const {
    MCentral {
        lock: Mutex::new(),
        inner: Guarded::new(CentralInner {
            partial: MSpanList::new(),
            full: MSpanList::new(),
            batches: [ptr::null_mut(); MAX_BATCHES],
            nbatches: 0,
            nmalloc: 0,
            nfree: 0,
        }),
    }
}; NUM_CLASSES];

#[inline]
fn max_batches(class: usize) -> usize {
    let batch_bytes = CLASS_BATCH[class] as usize * CLASS_SIZE[class] as usize;
    (BATCH_BYTES_LIMIT / batch_bytes).clamp(1, MAX_BATCHES)
}

/// Moves up to `want` objects from span `s` onto the chain `*head`. Returns how many.
/// Returned objects come first, lowest index first, found in the span's bitmap; then
/// objects never handed out. In checked mode a returned object must still hold the fill
/// (else something wrote to it after free).
///
/// # Safety
/// The caller owns `s` (its mcentral lock is held, or the span is not published yet).
unsafe fn take_from_span(s: *mut MSpan, want: u32, head: &mut *mut FreeObject) -> u32 {
    // SAFETY: the caller owns s (contract), so its fields and bitmap are ours to
    // change; every index taken (a returned one, or one below nelems) names an object
    // of the span, inside its pages, free and ours to link.
    unsafe {
        let mut n = 0;
        let size = (*s).elemsize as usize;
        let checked = checked::enabled();
        while n < want {
            let Some(i) = MSpan::take_returned(s) else {
                break;
            };
            let o = ((*s).start() + i * size) as *mut FreeObject;
            if checked && !checked::fill_intact(o as *const u8, size) {
                os::fatal_ptr("write after free detected in the object at", o as usize);
            }
            (*o).next = *head;
            *head = o;
            n += 1;
        }
        while n < want && (*s).freeindex < (*s).nelems {
            let o = ((*s).start() + (*s).freeindex as usize * size) as *mut FreeObject;
            (*o).next = *head;
            *head = o;
            (*s).freeindex += 1;
            n += 1;
        }
        (*s).alloc_count += n;
        n
    }
}

/// Returns object `o` to its span `s` (in checked mode, filled). False when it is not
/// allocated (the span has it back already, or never handed it out): a double free,
/// already reported, naming `freed_by` (see `MCentral::flush`).
///
/// # Safety
/// The span's mcentral lock is held; `o` is an object of `s`.
#[inline]
unsafe fn return_to_span(s: *mut MSpan, o: *mut FreeObject, freed_by: Option<&str>) -> bool {
    // SAFETY: the span's mcentral lock is held and o is an object of s (contract): its
    // index is within the span, and o is ours to fill once the bitmap took it back.
    unsafe {
        let i = object_index((*s).sizeclass as usize, o as usize - (*s).start());
        if !MSpan::put_returned(s, i) {
            report(freed_by, "double free", o);
            return false;
        }
        if checked::enabled() {
            checked::fill(o as *mut u8, (*s).elemsize as usize);
        }
        (*s).alloc_count -= 1;
        true
    }
}

/// Reports a bad object found on its way back to its span: `freed_by` names the entry
/// point that freed it, when that is the call running now; otherwise the object was freed
/// by an earlier call that nothing recorded, and the report says so instead of naming one.
#[cold]
fn report(freed_by: Option<&str>, what: &str, o: *mut FreeObject) {
    match freed_by {
        Some(call) => checked::invalid_call(call, what, o as usize),
        None => checked::invalid_call(
            what,
            "in an earlier call, seen when freed objects returned to their span",
            o as usize,
        ),
    }
}

impl MCentral {
    /// # Safety
    /// `self.lock` is held.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn inner(&self) -> &mut CentralInner {
        // SAFETY: self.lock is held (contract): the inner state is ours alone until it is
        // released.
        unsafe { self.inner.get() }
    }

    /// Hands out a chain of up to `want` objects (at least one, unless out of memory).
    /// Returns the chain's head (null-terminated) and its length.
    pub fn refill(&self, class: usize, want: u32) -> (*mut FreeObject, u32) {
        let mut head: *mut FreeObject = ptr::null_mut();
        let mut n = 0;
        self.lock.lock();
        // SAFETY: the class lock is held for every access to `c` and its spans.
        unsafe {
            let c = self.inner();
            if want == CLASS_BATCH[class] as u32 && c.nbatches > 0 {
                c.nbatches -= 1;
                let b = c.batches[c.nbatches];
                c.nmalloc += want as u64;
                self.lock.unlock();
                return (b, want);
            }
            while n < want {
                let s = c.partial.first;
                if s.is_null() {
                    break;
                }
                n += take_from_span(s, want - n, &mut head);
                if (*s).nfree() == 0 {
                    c.partial.remove(s);
                    c.full.push_front(s);
                }
            }
            c.nmalloc += n as u64;
        }
        self.lock.unlock();
        if n > 0 {
            return (head, n);
        }
        // Grow without our lock: mheap may have to map memory.
        let s = HEAP.alloc_span(CLASS_NPAGES[class] as usize, class as u8);
        if s.is_null() {
            return (ptr::null_mut(), 0);
        }
        // SAFETY: s is ours alone until it is on a list.
        unsafe {
            (*s).elemsize = CLASS_SIZE[class];
            (*s).nelems = CLASS_NELEMS[class] as u32;
            (*s).freeindex = 0;
            (*s).alloc_count = 0;
            (*s).nreturned = 0;
            (*s).scan = 0;
            n = take_from_span(s, want, &mut head);
            self.lock.lock();
            let c = self.inner();
            c.nmalloc += n as u64;
            if (*s).nfree() == 0 {
                c.full.push_front(s);
            } else {
                c.partial.push_front(s);
            }
            self.lock.unlock();
        }
        (head, n)
    }

    /// Takes back a null-terminated chain of `n` objects of this class. `head_freed_by`
    /// names the entry point that freed the chain's first object when that is the call
    /// running now (a free whose push overflowed its list; in checked mode every free, as
    /// the lists hold nothing), so that a bad object found here is reported under the name
    /// the program called.
    ///
    /// # Safety
    /// Every object on the chain is an allocated object of this class that nothing else
    /// refers to.
    pub unsafe fn flush(
        &self,
        class: usize,
        mut head: *mut FreeObject,
        mut n: u32,
        head_freed_by: Option<&'static str>,
    ) {
        let first = head;
        let batch = CLASS_BATCH[class] as u32;
        let mut empty: *mut MSpan = ptr::null_mut();
        self.lock.lock();
        // SAFETY: the class lock is held, so its state and its spans are ours; the chain
        // holds n allocated objects of this class that nothing else refers to (contract),
        // ours to link into batches or return to their spans, whose page map entries name
        // them (a span of another class is reported, not touched).
        unsafe {
            let c = self.inner();
            while n >= batch && c.nbatches < max_batches(class) {
                // Cut one batch off the front of the chain.
                let first = head;
                let mut last = head;
                for _ in 1..batch {
                    last = (*last).next;
                }
                head = (*last).next;
                (*last).next = ptr::null_mut();
                c.batches[c.nbatches] = first;
                c.nbatches += 1;
                c.nfree += batch as u64;
                n -= batch;
            }
            while !head.is_null() {
                let o = head;
                head = (*o).next;
                let freed_by = if o == first { head_freed_by } else { None };
                let s = pagemap::span_of(o as usize);
                if s.is_null() || (*s).sizeclass as usize != class {
                    // Only a sized free with the wrong size brings an object here. A compare
                    // per object on this slow path keeps it from corrupting another class's
                    // lists (objects that travel in whole batches are not looked at).
                    report(freed_by, "the size does not match the object", o);
                    continue;
                }
                debug_assert!(!s.is_null() && (*s).sizeclass as usize == class);
                if !return_to_span(s, o, freed_by) {
                    continue;
                }
                c.nfree += 1;
                // Checked mode keeps empty spans: their free objects carry the fill and the
                // bitmap that later frees and allocations are checked against.
                if (*s).alloc_count == 0 && !checked::enabled() {
                    // Every object is back: the span returns to mheap once we unlock.
                    if core::ptr::eq((*s).list, &c.full) {
                        c.full.remove(s);
                    } else {
                        c.partial.remove(s);
                    }
                    (*s).next = empty;
                    empty = s;
                } else if core::ptr::eq((*s).list, &c.full) {
                    c.full.remove(s);
                    c.partial.push_front(s);
                }
            }
        }
        self.lock.unlock();
        while !empty.is_null() {
            let s = empty;
            // SAFETY: the spans on `empty` left the class's lists with every object back:
            // no one else refers to them, and mheap takes them as the in-use spans they
            // are.
            unsafe {
                empty = (*s).next;
                (*s).next = ptr::null_mut();
                HEAP.free_span(s);
            }
        }
    }

    /// Returns every ready batch's objects to their spans, and fully free spans to mheap.
    pub fn drain_batches(&self, class: usize) {
        self.lock.lock();
        // SAFETY: the class lock is held.
        let taken = unsafe {
            let c = self.inner();
            let mut chain: *mut FreeObject = ptr::null_mut();
            let mut n = 0;
            while c.nbatches > 0 {
                c.nbatches -= 1;
                let b = c.batches[c.nbatches];
                let mut last = b;
                while !(*last).next.is_null() {
                    last = (*last).next;
                }
                (*last).next = chain;
                chain = b;
                n += CLASS_BATCH[class] as u32;
            }
            // The objects leave the batches as if a cache took them; `return_objects`
            // counts them back in.
            c.nmalloc += n as u64;
            (chain, n)
        };
        self.lock.unlock();
        if taken.1 > 0 {
            // SAFETY: the batches held allocated objects of this class, now ours alone.
            unsafe { self.return_objects(class, taken.0) };
        }
    }

    /// Returns a chain of objects to their spans, bypassing the transfer cache.
    ///
    /// # Safety
    /// As `flush`: every object on the chain is an allocated object of this class that
    /// nothing else refers to.
    unsafe fn return_objects(&self, class: usize, head: *mut FreeObject) {
        // SAFETY: the chain holds allocated objects of this class that nothing else refers
        // to (contract): cutting it into pieces and flushing each keeps that true of each.
        unsafe {
            // A batch-sized flush would refill the transfer cache; feed the chain in pieces
            // smaller than a batch instead.
            let batch = CLASS_BATCH[class] as u32;
            let mut head = head;
            while !head.is_null() {
                let first = head;
                let mut last = head;
                let mut k = 1;
                while k < batch - 1 && !(*last).next.is_null() {
                    last = (*last).next;
                    k += 1;
                }
                head = (*last).next;
                (*last).next = ptr::null_mut();
                self.flush(class, first, k, None);
            }
        }
    }

    pub fn stats(&self, class: usize) -> CentralStats {
        self.lock.lock();
        // SAFETY: the class lock is held.
        let st = unsafe {
            let c = self.inner();
            let mut st = CentralStats {
                nspans: c.partial.len + c.full.len,
                batched: c.nbatches * CLASS_BATCH[class] as usize,
                alloc_count: 0,
                nmalloc: c.nmalloc,
                nfree: c.nfree,
            };
            for list in [&c.partial, &c.full] {
                let mut s = list.first;
                while !s.is_null() {
                    st.alloc_count += (*s).alloc_count as usize;
                    s = (*s).next;
                }
            }
            st
        };
        self.lock.unlock();
        st
    }

    /// Checks the lists, every span's object accounting and the batches.
    pub fn validate(&self, class: usize) {
        self.lock.lock();
        // SAFETY: the class lock is held.
        unsafe {
            let c = self.inner();
            c.partial.validate();
            c.full.validate();
            for (list, want_full) in [(&c.partial, false), (&c.full, true)] {
                let mut s = list.first;
                while !s.is_null() {
                    invariant_eq!((*s).state(), SpanState::Small);
                    invariant_eq!((*s).sizeclass as usize, class);
                    (*s).validate_small();
                    invariant_eq!((*s).nfree() == 0, want_full, "span on the right list");
                    invariant!((*s).alloc_count > 0 || !want_full);
                    s = (*s).next;
                }
            }
            for &b in &c.batches[..c.nbatches] {
                let mut n = 0;
                let mut o = b;
                while !o.is_null() {
                    invariant_eq!(pagemap::page_class(o as usize), class);
                    n += 1;
                    o = (*o).next;
                }
                invariant_eq!(n, CLASS_BATCH[class] as usize);
            }
        }
        self.lock.unlock();
    }
}
