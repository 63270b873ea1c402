//! The page map: which span owns a page, for any address in the 48-bit address space.
//!
//! As Go's `mheap.arenas` on linux/amd64: a flat index of 2^22 entries, one per 64 MiB
//! arena (`addr >> 26`), each pointing to the arena's `HeapArena` record, which holds a
//! span pointer and a 2-byte page-info word (size class and index of the page in its
//! span) per 8 KiB page. The index is a 32 MiB static in
//! `.bss`, as Go's is: zero pages that cost no memory until an entry is written, and only
//! the entries of arenas we use ever are. Being a static, its address is a constant of
//! the code, not a pointer to load and test.
//!
//! "Is this pointer ours, and of which class?" is two dependent loads: the arena record,
//! then the page's info word. Entries are written under the heap lock and read without
//! it; a reader looks only at pages whose pointers the program got from us, so the
//! program's own synchronisation orders the write before the read.

use crate::sizeclass::PAGE_SHIFT;
use crate::span::MSpan;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU16, Ordering};

/// log2 of the arena size.
pub const ARENA_SHIFT: usize = 26;
/// Bytes per arena: 64 MiB.
pub const ARENA_SIZE: usize = 1 << ARENA_SHIFT;
/// Pages per arena.
pub const PAGES_PER_ARENA: usize = ARENA_SIZE >> PAGE_SHIFT;
/// User-space addresses are below 2^48: 2^47 on x86-64; on aarch64 Linux 2^48, or 2^52
/// for a process that asks for such addresses with a higher `mmap` hint, which `os::reserve`
/// never gives (higher pointers are then not ours).
pub const ADDR_BITS: usize = 48;
/// Entries in the arena index.
pub const ARENA_INDEX_LEN: usize = 1 << (ADDR_BITS - ARENA_SHIFT);

/// Metadata for one arena, kept outside it.
#[repr(C)]
pub struct HeapArena {
    /// The span owning each page, for every page of an in-use span and the first and last
    /// page of a free span. An interior page of a free span is not kept up to date: it is
    /// null if it never was in a span, else it still names the span it was last in (see
    /// `clear_info`), which may since have been freed, merged or reused for other pages.
    pub spans: [AtomicPtr<MSpan>; PAGES_PER_ARENA],
    /// For each page of a Small span, its info word (see `page_info`): the size class and
    /// the page's index within the span, so that `free` can check an object's offset
    /// without loading the span. 0 for every other page. Two bytes a page, so that one
    /// cache line covers 256 KiB of heap: in a large heap freed in random order, `free`'s
    /// load of this word misses the cache about half as often as with four bytes.
    pub pageinfo: [AtomicU16; PAGES_PER_ARENA],
    /// mheap's bookkeeping, under the heap lock: the arena's base address; how many of its
    /// pages, from the base, are reserved (all, except in the last arena of a reservation
    /// made short of address space); the next record on mheap's list of arenas (or of
    /// unused records); and the arena's pages on the free lists, counted while mheap looks
    /// for wholly free arenas to give back.
    pub base: usize,
    pub reserved_pages: usize,
    pub next: *mut HeapArena,
    pub free_pages: usize,
}

/// The arena index, in one `UnsafeCell` around the array of atomics: Miri checks every
/// reference to a static when the code reads the static, looking for the `UnsafeCell`s
/// inside it, which for a bare array of 2^22 atomics took it seconds per lookup. One
/// outer cell stops that search at the top; the code reads only the atomics.
struct ArenaIndex(UnsafeCell<[AtomicPtr<HeapArena>; ARENA_INDEX_LEN]>);
// SAFETY: only the atomics inside are ever accessed (see `entry`).
unsafe impl Sync for ArenaIndex {}

static ARENA_INDEX: ArenaIndex = ArenaIndex(UnsafeCell::new(
    [const { AtomicPtr::new(ptr::null_mut()) }; ARENA_INDEX_LEN],
));

impl ArenaIndex {
    /// The entry of arena `i`.
    ///
    /// # Safety
    /// `i < ARENA_INDEX_LEN`.
    #[inline(always)]
    unsafe fn entry(&self, i: usize) -> &AtomicPtr<HeapArena> {
        // SAFETY: i is in bounds (the contract); the cell's contents are only ever
        // reached as shared references to its atomics, so this one aliases no `&mut`.
        unsafe { &*self.0.get().cast::<AtomicPtr<HeapArena>>().add(i) }
    }
}

/// The record of the arena holding `addr`, or null when no arena of ours holds it.
#[inline(always)]
pub fn arena_of(addr: usize) -> *mut HeapArena {
    let i = arena_index(addr);
    if i < ARENA_INDEX_LEN {
        // SAFETY: i is in bounds.
        unsafe { ARENA_INDEX.entry(i) }.load(Ordering::Acquire)
    } else {
        ptr::null_mut()
    }
}

/// The index of the arena holding `addr`.
#[inline(always)]
fn arena_index(addr: usize) -> usize {
    addr >> ARENA_SHIFT
}

#[inline(always)]
fn page_in_arena(addr: usize) -> usize {
    (addr >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1)
}

/// Where the page-info word keeps the size class: `class << INFO_CLASS_SHIFT`, which is
/// also the byte offset of the class's list in a thread cache and of its entry in
/// `CLASS_OFFSET_CHECK`, so that `free` indexes both with a mask and no shift.
pub const INFO_CLASS_SHIFT: usize = 4;
/// The class bits of the page-info word, in place.
const INFO_CLASS_MASK: usize = 0x7f << INFO_CLASS_SHIFT;
/// Where the page-info word keeps the page's index within its span (bits 11..15).
pub const INFO_PAGE_SHIFT: usize = 11;
const INFO_PAGE_MASK: usize = 0xffff & !((1 << INFO_PAGE_SHIFT) - 1);
const _: () = assert!(
    (crate::sizeclass::NUM_CLASSES - 1) << INFO_CLASS_SHIFT <= INFO_CLASS_MASK
        && INFO_CLASS_MASK < 1 << INFO_PAGE_SHIFT
        && INFO_PAGE_SHIFT <= PAGE_SHIFT,
    "the class fits below the page index"
);
const _: () = {
    let mut c = 1;
    while c < crate::sizeclass::NUM_CLASSES {
        assert!(
            (crate::sizeclass::CLASS_NPAGES[c] as usize - 1) << INFO_PAGE_SHIFT <= INFO_PAGE_MASK,
            "a Small span's page indexes fit in the info word"
        );
        c += 1;
    }
};

/// The page-info word of the page holding `addr`: `class << INFO_CLASS_SHIFT |
/// page_index << INFO_PAGE_SHIFT` for a page of a Small span, 0 when `addr` is in a
/// Large or Free span or not ours at all (the caller then asks `span_of`).
#[inline(always)]
pub fn page_info(addr: usize) -> usize {
    let a = arena_of(addr);
    if a.is_null() {
        return 0;
    }
    // SAFETY: a is a live arena record (records are never freed).
    unsafe { (*a).pageinfo[page_in_arena(addr)].load(Ordering::Relaxed) as usize }
}

/// The size class of the Small span holding `addr`, or 0 (see `page_info`).
#[inline(always)]
pub fn page_class(addr: usize) -> usize {
    info_class(page_info(addr))
}

/// The size class in a page-info word.
#[inline(always)]
pub fn info_class(info: usize) -> usize {
    (info & INFO_CLASS_MASK) >> INFO_CLASS_SHIFT
}

/// `info_class(info) << INFO_CLASS_SHIFT`, with one mask: the byte offset of the class's
/// 16-byte entries (see `INFO_CLASS_SHIFT`).
#[inline(always)]
pub fn info_slot(info: usize) -> usize {
    info & INFO_CLASS_MASK
}

/// The byte offset within its span of the page whose info word is `info`: the page index
/// times the page size, as a mask and a shift (`and` and a scaled `lea` in `free`).
#[inline(always)]
pub fn info_page_offset(info: usize) -> usize {
    (info & INFO_PAGE_MASK) << (PAGE_SHIFT - INFO_PAGE_SHIFT)
}

/// Whether `addr`, in a page whose info word is `info` (class != 0), is the start of an
/// object: its offset in the span is a multiple of the class size below `nelems × size`.
#[inline(always)]
pub fn is_object_start(addr: usize, info: usize) -> bool {
    use crate::sizeclass::{is_object_offset_at, PAGE_SIZE};
    is_object_offset_at(
        info_slot(info),
        (addr & (PAGE_SIZE - 1)) + info_page_offset(info),
    )
}

/// The span owning the page holding `addr`, or null.
#[inline]
pub fn span_of(addr: usize) -> *mut MSpan {
    let a = arena_of(addr);
    if a.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: a is a live arena record.
    unsafe { (*a).spans[page_in_arena(addr)].load(Ordering::Relaxed) }
}

/// Registers the record for the arena at `base`.
///
/// # Safety
/// The heap lock is held, `base` is arena-aligned and below 2^48, and `meta` is a
/// `HeapArena` that lives forever, whose `spans` and `pageinfo` are all zero.
pub unsafe fn register_arena(base: usize, meta: *mut HeapArena) {
    debug_assert!(base >> ARENA_SHIFT < ARENA_INDEX_LEN);
    // SAFETY: base is below 2^48 (the contract), so its index is in bounds.
    unsafe { ARENA_INDEX.entry(base >> ARENA_SHIFT) }.store(meta, Ordering::Release);
}

/// Unregisters the arena at `base`: its addresses are no longer ours. Its record is
/// cleared for reuse but stays mapped, because a reader without the lock (a `free` of a
/// bad pointer) may still hold it.
///
/// # Safety
/// The heap lock is held, `base` is a registered arena, and none of its pages is in a
/// span.
pub unsafe fn unregister_arena(base: usize) -> *mut HeapArena {
    // SAFETY: a registered arena's index is in bounds.
    let a =
        unsafe { ARENA_INDEX.entry(base >> ARENA_SHIFT) }.swap(ptr::null_mut(), Ordering::AcqRel);
    debug_assert!(!a.is_null());
    for i in 0..PAGES_PER_ARENA {
        // SAFETY: a is the arena's record (registered, so live forever); its cells are
        // atomics, so a reader without the lock still holding it sees old values or zeros.
        unsafe {
            (*a).spans[i].store(ptr::null_mut(), Ordering::Relaxed);
            (*a).pageinfo[i].store(0, Ordering::Relaxed);
        }
    }
    a
}

/// Points the page holding `addr` at `s`.
///
/// # Safety
/// The heap lock is held and `addr` lies in a registered arena.
#[inline]
pub unsafe fn set_span(addr: usize, s: *mut MSpan) {
    let a = arena_of(addr);
    debug_assert!(!a.is_null());
    // SAFETY: addr's arena is registered (the contract), so a is its live record.
    unsafe { (*a).spans[page_in_arena(addr)].store(s, Ordering::Relaxed) };
}

/// Calls `f(arena, page index)` for each of the `npages` pages from `start`: one index
/// lookup per arena instead of one per page. The record is passed as a pointer and its
/// cells are reached one by one, never through a reference to the whole record (Miri
/// would retag each of its 16K cells at every call).
///
/// # Safety
/// Every page of the range lies in a registered arena.
#[inline]
unsafe fn for_pages(start: usize, npages: usize, mut f: impl FnMut(*mut HeapArena, usize)) {
    let mut addr = start;
    let mut left = npages;
    while left > 0 {
        let a = arena_of(addr);
        debug_assert!(!a.is_null());
        let i = page_in_arena(addr);
        let n = left.min(PAGES_PER_ARENA - i);
        for k in i..i + n {
            f(a, k);
        }
        addr += n << PAGE_SHIFT;
        left -= n;
    }
}

/// Points every page of `npages` from `start` at `s`, an in-use span. For a Small span
/// (`class != 0`) also sets each page's info word; a Large span's pages keep the info 0
/// that every page outside a Small span has.
///
/// # Safety
/// The heap lock is held and every page of the range lies in a registered arena.
pub unsafe fn set_range(start: usize, npages: usize, s: *mut MSpan, class: u8) {
    // The index in the span of the next page.
    let mut index = 0u16;
    // SAFETY: every page of the range is in a registered arena (the contract), and
    // for_pages passes each one's live record and index below PAGES_PER_ARENA.
    unsafe {
        for_pages(start, npages, |a, i| {
            (*a).spans[i].store(s, Ordering::Relaxed);
            if class != 0 {
                (*a).pageinfo[i].store(
                    (class as u16) << INFO_CLASS_SHIFT | index << INFO_PAGE_SHIFT,
                    Ordering::Relaxed,
                );
                index += 1;
            }
        });
    }
}

/// Sets the info word of every page of `npages` from `start` to 0 (a Small span is being
/// freed). The span pointers of interior pages are left as they are, stale, not null:
/// mheap reads only the end pages of a free span, and `free` of a pointer inside one finds
/// info 0 and a span that is not a Large span starting there (a span that did start there
/// would own the page), so it reports a bad pointer all the same.
///
/// # Safety
/// As `set_range`.
pub unsafe fn clear_info(start: usize, npages: usize) {
    // SAFETY: every page of the range is in a registered arena (the contract), and
    // for_pages passes each one's live record and index below PAGES_PER_ARENA.
    unsafe {
        for_pages(start, npages, |a, i| {
            (*a).pageinfo[i].store(0, Ordering::Relaxed);
        })
    };
}

/// Bytes of metadata per arena.
pub const HEAP_ARENA_BYTES: usize = core::mem::size_of::<HeapArena>();
