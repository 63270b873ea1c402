//! Fixed-size allocator for metadata: spans and other records, never from `malloc`.
//!
//! As Go's `mfixalloc.go`: objects of one size carved from chunks mapped straight from the
//! OS, with a free list of returned objects. Returned memory is reused for the same kind of
//! object and never goes back to the OS. Every object handed out is zeroed.
//!
//! A `FixAlloc` has no lock of its own: its owner's lock guards it.

use crate::os;
use core::ptr;

const CHUNK_BYTES: usize = 64 << 10;

struct Link {
    next: *mut Link,
}

pub struct FixAlloc {
    size: usize,
    free_list: *mut Link,
    chunk: *mut u8,
    chunk_left: usize,
    /// Bytes handed out and not returned.
    pub inuse: usize,
    /// Bytes mapped from the OS for this allocator.
    pub sys: usize,
}

impl FixAlloc {
    /// An allocator of `size`-byte objects (`size` at least a pointer and a multiple of 8).
    pub const fn new(size: usize) -> FixAlloc {
        assert!(
            size >= core::mem::size_of::<Link>() && size.is_multiple_of(8) && size <= CHUNK_BYTES
        );
        FixAlloc {
            size,
            free_list: ptr::null_mut(),
            chunk: ptr::null_mut(),
            chunk_left: 0,
            inuse: 0,
            sys: 0,
        }
    }

    /// A zeroed object, or null when the OS has no memory left.
    ///
    /// # Safety
    /// The owner's lock is held.
    pub unsafe fn alloc(&mut self) -> *mut u8 {
        let p = if !self.free_list.is_null() {
            let l = self.free_list;
            let p = l as *mut u8;
            // SAFETY: l is an object of ours that `free` put on the list, `size` bytes
            // that no one else uses; the owner's lock (the contract) keeps the list ours.
            unsafe {
                self.free_list = (*l).next;
                p.write_bytes(0, self.size);
            }
            p
        } else {
            if self.chunk_left < self.size {
                let c = os::alloc_metadata(CHUNK_BYTES);
                if c.is_null() {
                    return ptr::null_mut();
                }
                self.sys += CHUNK_BYTES;
                self.chunk = c;
                self.chunk_left = CHUNK_BYTES;
            }
            // Fresh chunk memory is zero already.
            let p = self.chunk;
            // SAFETY: chunk_left >= size bytes remain in the chunk, so the result is at most
            // one past its end.
            self.chunk = unsafe { self.chunk.add(self.size) };
            self.chunk_left -= self.size;
            p
        };
        self.inuse += self.size;
        p
    }

    /// Returns an object for reuse.
    ///
    /// # Safety
    /// The owner's lock is held; `p` came from `alloc` of this allocator and is not used again.
    pub unsafe fn free(&mut self, p: *mut u8) {
        let l = p as *mut Link;
        // SAFETY: p is an object of this allocator (at least a pointer's size, 8-aligned)
        // that the caller gives up, so its first word is ours to write.
        unsafe { (*l).next = self.free_list };
        self.free_list = l;
        self.inuse -= self.size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_zeroes() {
        let mut f = FixAlloc::new(48);
        // SAFETY: this test owns `f` alone, so its "lock" is held.
        unsafe {
            let mut v = Vec::new();
            for i in 0..5000 {
                let p = f.alloc();
                assert!(!p.is_null());
                assert_eq!(p as usize % 8, 0);
                assert!((0..48).all(|k| *p.add(k) == 0));
                p.write_bytes(i as u8 | 1, 48);
                v.push(p);
            }
            let mut sorted = v.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), v.len(), "objects are distinct");
            assert_eq!(f.inuse, 5000 * 48);
            let sys = f.sys;
            for &p in &v {
                f.free(p);
            }
            assert_eq!(f.inuse, 0);
            for _ in 0..5000 {
                let p = f.alloc();
                assert!((0..48).all(|k| *p.add(k) == 0), "reused objects are zeroed");
            }
            assert_eq!(f.sys, sys, "reuse maps nothing new");
        }
    }
}
