//! Statistics: the allocator's figures under the names of Go's `runtime.MemStats`.
//!
//! The figures are exact whenever no other thread is inside the allocator (see `read`):
//! objects in thread caches count as free, and every call on every thread, exited ones
//! included, is counted. The fast path pays one decrement per small `malloc` (of the
//! countdown in the thread's own cache that also paces the heap profile's samples; on
//! x86-64 one `dec` on memory); `free` pays nothing, since frees follow from mallocs and what is live. With
//! `GOALLOC_PROFILE` on, a sampled small object has a span of its own and counts as a
//! large object.

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
    /// Objects of the class allocated so far, by every thread (calls of `malloc` and its
    /// kin that this class served).
    pub mallocs: u64,
    /// Objects of the class freed so far.
    pub frees: u64,
    /// Objects live now (`mallocs - frees`); an object in a thread's cache is free.
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
/// Exact whenever no other thread is inside the allocator (a quiescent point: after the
/// other threads are joined, or while they wait): every call of every thread, exited
/// threads included, is counted, and objects or large spans that thread caches keep for
/// reuse count as free. While other threads allocate, each figure may be off by what
/// they did while it was read, and `mallocs - frees == heap_objects` may not hold.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct goalloc_mem_stats {
    /// Bytes of live objects (small objects at their class size, large at whole pages).
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

/// Gathers the current figures: the heap lock once, the thread caches' registry once,
/// then each class's lock in turn.
///
/// mcentral counts objects as they move to and from the thread caches, mheap counts
/// spans; neither sees what the caches hold or hand out. So the calls come from the
/// caches' own counts (`mcache::totals`: one count per small `malloc`, and one per
/// large allocation served from a kept span), and what the caches hold is subtracted
/// from what mcentral and mheap count as handed out: a free object sitting in a thread's
/// list, or a freed large span a thread keeps, is free here. Frees follow as mallocs
/// minus live objects. With no other thread inside the allocator every figure is exact;
/// while others run, each part is read at a slightly different moment, so the figures
/// may be off by what those threads did during the read.
pub fn read() -> goalloc_mem_stats {
    let h = HEAP.stats();
    let t = crate::mcache::totals();
    let large_mallocs = h.large_allocs + t.large_hits;
    let large_live = (h.large_allocs - h.large_frees).saturating_sub(t.large_kept);
    let large_pages = (h.large_pages_inuse as u64).saturating_sub(t.large_kept_pages);
    let mut st = goalloc_mem_stats {
        heap_alloc: 0,
        total_alloc: (h.large_pages_total + t.large_hit_pages) * PAGE_SIZE as u64,
        heap_sys: h.sys_bytes as u64,
        heap_idle: (h.pages_free * PAGE_SIZE) as u64,
        heap_inuse: (h.pages_inuse * PAGE_SIZE) as u64,
        heap_released: (h.pages_released * PAGE_SIZE) as u64,
        heap_objects: 0,
        mallocs: large_mallocs,
        frees: large_mallocs.saturating_sub(large_live),
        meta_sys: (h.meta_bytes + crate::mcache::meta_bytes()) as u64,
        large_objects: large_live,
        large_bytes: large_pages * PAGE_SIZE as u64,
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
        let live = cs
            .nmalloc
            .saturating_sub(cs.nfree)
            .saturating_sub(t.cached[class]);
        let mallocs = t.nmalloc[class];
        let span_bytes = cs.nspans as u64 * CLASS_NPAGES[class] as u64 * PAGE_SIZE as u64;
        st.by_size[class] = goalloc_class_stats {
            size,
            mallocs,
            frees: mallocs.saturating_sub(live),
            live,
            spans: cs.nspans as u64,
            waste: span_bytes.saturating_sub(live * size),
        };
        st.mallocs += mallocs;
        st.frees += mallocs.saturating_sub(live);
        st.heap_objects += live;
        st.heap_alloc += live * size;
        st.total_alloc += mallocs * size;
    }
    st
}
