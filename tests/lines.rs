//! Two threads that start allocating small objects of one class at the same time get them
//! from different cache lines (a refill takes at least a line's worth), so that they do
//! not slow each other down with false sharing.
//!
//! One test in its own binary: nothing else has used goalloc's classes when it starts.

use std::sync::{Arc, Barrier};

#[test]
fn threads_starting_together_get_different_lines() {
    assert!(goalloc::init());
    if goalloc::testing::checked::enabled() {
        // GOALLOC_CHECK=1 takes one object at a time, on purpose (every operation
        // reaches mcentral, where the checks are).
        return;
    }
    for size in [8usize, 16, 32] {
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    // SAFETY: a plain allocation.
                    let p = unsafe { goalloc::malloc(size) };
                    // Both threads hold their caches until both have allocated.
                    barrier.wait();
                    let addr = p as usize;
                    barrier.wait();
                    // SAFETY: p came from goalloc::malloc and is freed once.
                    unsafe { goalloc::free(p) };
                    addr
                })
            })
            .collect();
        let addrs: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_ne!(
            addrs[0] / 64,
            addrs[1] / 64,
            "{size}-byte objects {:#x} and {:#x} of two threads share a cache line",
            addrs[0],
            addrs[1]
        );
    }
}
