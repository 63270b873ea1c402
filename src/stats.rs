//! Statistics: the allocator's figures under the names of Go's `runtime.MemStats`.
//!
//! Nothing here is counted on the fast paths. Small objects are counted by mcentral when
//! they move between thread caches and mcentral (under the lock it holds anyway), as Go
//! counts them when a span is cached: an object sitting in a thread's cache counts as
//! allocated, so `Mallocs`, `Frees`, `HeapAlloc` and `HeapObjects` may run ahead of the
//! program by what the caches hold (at most a few batches per class and thread). Large
//! objects and every page figure are exact.

use crate::mcentral::CENTRAL;
use crate::mheap::HEAP;
use crate::scavenger;
use crate::sizeclass::{CLASS_NPAGES, CLASS_SIZE, NUM_CLASSES, PAGE_SIZE};
use core::sync::atomic::Ordering::Relaxed;

pub use crate::report::{print, Format, Json};

/// Entries of `goalloc_mem_stats.by_size`: the size classes, 0 (large) included.
pub const GOALLOC_NUM_CLASSES: usize = 67;
const _: () = assert!(GOALLOC_NUM_CLASSES == NUM_CLASSES);

/// One size class (Go's `MemStats.BySize` entry, with span figures added).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
#[allow(non_camel_case_types)]
pub struct goalloc_class_stats {
    /// Object size of the class, in bytes.
    pub size: u64,
    /// Objects of the class allocated so far.
    pub mallocs: u64,
    /// Objects of the class freed so far.
    pub frees: u64,
    /// Objects live now (`mallocs - frees`).
    pub live: u64,
    /// Spans of the class in use.
    pub spans: u64,
    /// Bytes of those spans that hold no live object (free objects and tails).
    pub waste: u64,
}

/// The allocator's figures, in bytes unless named otherwise, under the names of Go's
/// `runtime.MemStats` (`heap_alloc` is `HeapAlloc`). The reports (`GOALLOC_STATS`,
/// `goalloc_stats_print`, `malloc_stats`) print each under its field name.
///
/// Exactness: large objects and the page figures (`heap_sys`, `heap_idle`, `heap_inuse`,
/// `heap_released`, `meta_sys`) are exact. Small objects are counted when they move
/// between a thread's cache and the central lists, so an object free in a thread's cache
/// still counts as allocated: `mallocs`, `frees`, `heap_objects`, `heap_alloc` and
/// `by_size` may run ahead of the program by what the caches hold.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct goalloc_mem_stats {
    /// Bytes of allocated objects (small objects at their class size, large at whole pages).
    pub heap_alloc: u64,
    /// Bytes allocated so far, freed or not.
    pub total_alloc: u64,
    /// Bytes of heap memory mapped from the OS.
    pub heap_sys: u64,
    /// Bytes in free spans, released or not.
    pub heap_idle: u64,
    /// Bytes in spans in use.
    pub heap_inuse: u64,
    /// Bytes of free spans returned to the OS.
    pub heap_released: u64,
    /// Live objects.
    pub heap_objects: u64,
    /// Objects allocated so far.
    pub mallocs: u64,
    /// Objects freed so far.
    pub frees: u64,
    /// Bytes of metadata mapped from the OS (span records, arena records, thread caches).
    pub meta_sys: u64,
    /// Large objects (over 32 KiB) live now, and their bytes.
    pub large_objects: u64,
    pub large_bytes: u64,
    /// 1 when the scavenger thread runs in this process.
    pub scav_running: u64,
    /// Bytes the scavenger thread has released.
    pub scav_released: u64,
    /// Chunks it has released.
    pub scav_chunks: u64,
    /// CPU time it has used, in nanoseconds.
    pub scav_cpu_ns: u64,
    /// Times it woke up.
    pub scav_wakeups: u64,
    /// Per size class; entry 0 is unused (class 0 stands for large objects).
    pub by_size: [goalloc_class_stats; GOALLOC_NUM_CLASSES],
}

/// Gathers the current figures: the heap lock once, then each class's lock in turn.
pub fn read() -> goalloc_mem_stats {
    let h = HEAP.stats();
    let mut st = goalloc_mem_stats {
        heap_alloc: 0,
        total_alloc: h.large_pages_total * PAGE_SIZE as u64,
        heap_sys: h.sys_bytes as u64,
        heap_idle: (h.pages_free * PAGE_SIZE) as u64,
        heap_inuse: (h.pages_inuse * PAGE_SIZE) as u64,
        heap_released: (h.pages_released * PAGE_SIZE) as u64,
        heap_objects: 0,
        mallocs: h.large_allocs,
        frees: h.large_frees,
        meta_sys: (h.meta_bytes + crate::mcache::meta_bytes()) as u64,
        large_objects: h.large_allocs - h.large_frees,
        large_bytes: (h.large_pages_inuse * PAGE_SIZE) as u64,
        scav_running: scavenger::running() as u64,
        scav_released: scavenger::RELEASED_BYTES.load(Relaxed),
        scav_chunks: scavenger::CHUNKS.load(Relaxed),
        scav_cpu_ns: scavenger::CPU_NS.load(Relaxed),
        scav_wakeups: scavenger::WAKEUPS.load(Relaxed),
        by_size: [goalloc_class_stats::default(); NUM_CLASSES],
    };
    st.heap_alloc = st.large_bytes;
    st.heap_objects = st.large_objects;
    for (class, c) in CENTRAL.iter().enumerate().skip(1) {
        let cs = c.stats(class);
        let size = CLASS_SIZE[class] as u64;
        let live = cs.nmalloc - cs.nfree;
        let span_bytes = cs.nspans as u64 * CLASS_NPAGES[class] as u64 * PAGE_SIZE as u64;
        st.by_size[class] = goalloc_class_stats {
            size,
            mallocs: cs.nmalloc,
            frees: cs.nfree,
            live,
            spans: cs.nspans as u64,
            waste: span_bytes.saturating_sub(live * size),
        };
        st.mallocs += cs.nmalloc;
        st.frees += cs.nfree;
        st.heap_objects += live;
        st.heap_alloc += live * size;
        st.total_alloc += cs.nmalloc * size;
    }
    st
}
