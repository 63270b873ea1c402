//! GoAlloc: goalloc as Rust's global allocator.
//!
//! ```
//! #[global_allocator]
//! static A: goalloc::GoAlloc = goalloc::GoAlloc;
//!
//! fn main() {
//!     let before = goalloc::stats::read().mallocs;
//!     let v: Vec<u32> = (0..1000).collect();
//!     assert!(goalloc::stats::read().mallocs > before, "the Vec came from goalloc");
//!     drop(v);
//! }
//! ```
//!
//! Layouts with an alignment of at most 16 go through the size classes, and their
//! `dealloc` uses the layout's size to find the class without the page-map lookup. A
//! layout of at most 8 bytes and alignment gets the 8-byte class, which C's `malloc`
//! never uses (its pointers are all 16-byte aligned): Rust states the alignment it needs.

use crate::mcache;
use crate::sizeclass::{size_to_class_8, MAX_SMALL_SIZE};
use core::alloc::{GlobalAlloc, Layout};

/// The goalloc global allocator.
pub struct GoAlloc;

/// The names a bad pointer (or a layout that does not match) is reported under.
const DEALLOC: &str = "GoAlloc::dealloc()";
const REALLOC: &str = "GoAlloc::realloc()";

/// The size whose class serves `layout` when its alignment is at most 16: a class of at
/// least 16 bytes is 16-aligned, one of at least 8 bytes is 8-aligned.
#[inline(always)]
fn class_size(layout: Layout) -> usize {
    layout.size().max(layout.align())
}

#[inline(always)]
fn by_class(layout: Layout) -> bool {
    layout.align() <= 16
}

// SAFETY: every method returns memory that meets the layout, or null on failure, and
// frees only what this allocator handed out (the GlobalAlloc contract).
unsafe impl GlobalAlloc for GoAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = class_size(layout);
        if by_class(layout) && size <= MAX_SMALL_SIZE {
            crate::alloc_small(size_to_class_8(size), layout.size())
        } else if by_class(layout) {
            // SAFETY: plain allocation (a large one).
            unsafe { crate::malloc(size) }
        } else {
            // SAFETY: align is a power of two (Layout guarantees it).
            unsafe { crate::aligned_alloc(layout.align(), layout.size()) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let size = class_size(layout);
        if by_class(layout) && size <= MAX_SMALL_SIZE {
            let class = size_to_class_8(size);
            debug_assert_eq!(
                crate::pagemap::page_class(ptr as usize),
                class,
                "dealloc with another layout"
            );
            // SAFETY: ptr came from `alloc`/`realloc` with this layout, i.e. from this
            // class.
            unsafe { mcache::free(ptr, class, DEALLOC) }
        } else {
            // SAFETY: ptr came from this allocator (a large or over-aligned object).
            unsafe { crate::free_as(ptr, DEALLOC) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if by_class(layout) && class_size(layout) > MAX_SMALL_SIZE {
            // SAFETY: plain allocation; large spans fresh from the OS are not cleared again.
            return unsafe { crate::calloc(1, class_size(layout)) };
        }
        // SAFETY: as `alloc`.
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: p holds layout.size() bytes.
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_class_size = new_size.max(layout.align());
        if by_class(layout) && new_class_size > 8 {
            // Above 8 bytes the C classes are this allocator's: crate::realloc keeps the
            // object when the class is unchanged (a large one when its pages suffice), and
            // otherwise allocates with malloc(new_class_size), which is where `alloc` of
            // the new layout would put it. It reads the old class from the page map, so
            // an object of the 8-byte class moves out of it correctly.
            // SAFETY: ptr is a live object of this allocator.
            return unsafe { crate::realloc_as(ptr, new_class_size, REALLOC) };
        }
        if by_class(layout) && class_size(layout) <= 8 {
            // The 8-byte class to the 8-byte class (new_class_size <= 8 here).
            return ptr;
        }
        // SAFETY: the new layout is valid because the caller promises new_size does not
        // overflow isize when rounded up to the alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as `alloc`.
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks hold at least min(old, new) bytes and are distinct.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        q
    }
}
