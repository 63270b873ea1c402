//! The caches of freed large spans: a thread keeps up to 32 freed spans of at most 128 KiB
//! (2 MiB in all) for its next allocation of the same length, and mheap keeps 32 longer
//! ones (up to 1 MiB each, 8 MiB in all) whole; both give their spans back (at thread
//! exit, and to `release_all` and the scavenger).
//!
//! One test in its own binary, so that no other test allocates large objects meanwhile
//! and the counters can be compared exactly.

use goalloc::stats::read;

/// Large spans kept by all thread caches now.
fn kept() -> u64 {
    goalloc::testing::mcache::totals().large_kept
}

#[test]
fn freed_large_spans_are_kept_reused_and_given_back() {
    unsafe {
        // First of all, before any large free has been counted: shrinking a large object
        // in place frees its tail without counting a free (a debug build once panicked
        // here, with the heap lock held, on the count going below 0).
        let p = goalloc::malloc(1 << 20);
        p.write_bytes(3, 1 << 20);
        let r = goalloc::realloc(p, 300_000);
        assert_eq!(r, p, "shrinking a large object stays in place");
        // Growing back into the pages just given up finds them free. (Here, where no
        // other test runs meanwhile: in a binary of parallel tests, another thread can
        // take the freed tail first.)
        let g = goalloc::realloc(r, 900 << 10);
        assert_eq!(g, p, "regrowth into the freed tail stays in place");
        assert!((0..300_000).step_by(4096).all(|i| *g.add(i) == 3) && *g.add(299_999) == 3);
        goalloc::free(g);
        goalloc::validate();

        let base = read().large_objects;
        let kept0 = kept();

        // Kept by this thread, and free for the statistics.
        let p = goalloc::malloc(100_000);
        p.write_bytes(7, 100_000);
        assert_eq!(read().large_objects, base + 1);
        goalloc::free(p);
        assert_eq!(read().large_objects, base, "a kept span is free");
        assert_eq!(kept(), kept0 + 1, "kept by the thread");
        let q = goalloc::malloc(100_000);
        assert_eq!(q, p, "the kept span comes back for the same length");
        goalloc::free(q);
        goalloc::validate();

        // A thread keeps up to 32 spans, of any lengths up to 16 pages and 256 pages in
        // all; when it exits it gives them to the heap.
        std::thread::spawn(move || {
            let r = goalloc::malloc(90_000);
            r.write_bytes(1, 90_000);
            goalloc::free(r);
            goalloc::validate();
            // 32 objects (the smallest large object has 5 pages): 16 of 5..16 pages, then
            // 5..8, then 16 of 5..8 pages: 256 pages in all.
            let pages = |i: usize| if i < 16 { 5 + i % 12 } else { 5 + i % 4 };
            let sizes: Vec<usize> = (0..32).map(|i| pages(i) * 8192 - 100).collect();
            let objs: Vec<*mut u8> = sizes.iter().map(|&n| goalloc::malloc(n)).collect();
            for (&o, &n) in objs.iter().zip(&sizes) {
                o.write_bytes(5, n);
            }
            let live = read().large_objects;
            let kept_before = kept();
            for &o in &objs {
                goalloc::free(o);
            }
            goalloc::validate();
            assert_eq!(read().large_objects, live - 32);
            assert_eq!(kept(), kept_before + 32, "all 32 are kept by the thread");
            // Each comes back for its length, newest first.
            for (&o, &n) in objs.iter().zip(&sizes).rev() {
                assert_eq!(
                    goalloc::malloc(n),
                    o,
                    "the kept span of {n} bytes comes back"
                );
            }
            assert_eq!(read().large_objects, live);
            assert_eq!(kept(), kept_before);
            for &o in &objs {
                goalloc::free(o);
            }
            goalloc::validate();
            // At most 256 pages: of 17 spans of 16 pages, the oldest goes to the heap.
            goalloc::release_all();
            let n = 16 * 8192 - 100;
            let objs: Vec<*mut u8> = (0..17).map(|_| goalloc::malloc(n)).collect();
            let kept_before = kept();
            for &o in &objs {
                goalloc::free(o);
            }
            goalloc::validate();
            assert_eq!(kept(), kept_before + 16, "16 of 17 kept (256 pages)");
        })
        .join()
        .unwrap();
        assert_eq!(kept(), kept0 + 1, "the exited thread kept nothing");
        assert_eq!(read().large_objects, base);

        // Longer spans (up to 1 MiB) go to mheap's cache: freed (counted) and reused whole.
        let big = 512 << 10;
        let a = goalloc::malloc(big);
        a.write_bytes(3, big);
        goalloc::free(a);
        assert_eq!(read().large_objects, base);
        let b = goalloc::malloc(big);
        assert_eq!(b, a, "mheap's cache gives the same span back");
        goalloc::free(b);
        goalloc::validate();

        // release_all empties both caches, then releases every free page: nothing free
        // stays resident.
        goalloc::release_all();
        let st = read();
        assert_eq!(st.large_objects, base);
        assert_eq!(kept(), 0, "the thread's kept span went back");
        assert_eq!(
            st.heap_idle, st.heap_released,
            "cached spans were released like other free pages"
        );
        goalloc::validate();

        // mheap's cache holds 32 spans: a program that cycles through 32 buffers of
        // 256 KiB (longer than a thread keeps) gets each span back whole, newest first,
        // without a split or a merge. With 16 slots the first 16 freed were merged into
        // one free span, and the allocations then cut it up from its low end instead.
        let n = 256 << 10;
        let bufs: Vec<*mut u8> = (0..32).map(|_| goalloc::malloc(n)).collect();
        for &o in &bufs {
            o.write_bytes(9, n);
        }
        for &o in &bufs {
            goalloc::free(o);
        }
        goalloc::validate();
        for &o in bufs.iter().rev() {
            assert_eq!(goalloc::malloc(n), o, "the cached span comes back whole");
        }
        for &o in &bufs {
            goalloc::free(o);
        }
        goalloc::validate();
    }
}
