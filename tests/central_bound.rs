//! mcentral's ready batches are bounded in bytes per class (16 KiB): objects that a
//! thread frees in bulk before it exits do not stay in batches, where each one keeps its
//! span from going back to mheap.
//!
//! One test in its own binary, so that nothing else uses the class meanwhile.

use goalloc::testing::mcentral::CENTRAL;
use goalloc::testing::sizeclass::{size_to_class, CLASS_NPAGES, CLASS_SIZE, PAGE_SIZE};

const BOUND: usize = 16 << 10;

#[test]
fn an_exiting_threads_objects_do_not_stay_in_batches() {
    // A size that nothing else in this process allocates (3456 B would not do: the test
    // harness's channel allocates blocks of that class).
    let size = 5300;
    let class = size_to_class(size);
    assert_eq!(CLASS_SIZE[class], 5376);
    let n = 1500; // about 7.6 MiB

    let objs: Vec<usize> = std::thread::spawn(move || {
        (0..n)
            .map(|i| unsafe {
                let p = goalloc::malloc(size);
                assert!(!p.is_null());
                p.write_bytes(i as u8, size);
                p as usize
            })
            .collect()
    })
    .join()
    .unwrap();
    let before = CENTRAL[class].stats(class);
    assert_eq!(before.alloc_count, n, "{before:?}");
    assert!(before.nspans * CLASS_NPAGES[class] as usize * PAGE_SIZE >= n * size);

    // Another thread frees them all and exits: its cache flushes everything.
    std::thread::spawn(move || {
        for p in objs {
            unsafe { goalloc::free(p as *mut u8) };
        }
    })
    .join()
    .unwrap();
    goalloc::validate();

    let st = CENTRAL[class].stats(class);
    let batched_bytes = st.batched * CLASS_SIZE[class] as usize;
    assert!(
        batched_bytes <= BOUND,
        "{batched_bytes} bytes of class {class} kept in ready batches: {st:?}"
    );
    // The batched objects are the only ones still out of their spans, so at most that
    // many spans stay with mcentral; the rest went back to mheap.
    assert_eq!(st.alloc_count, st.batched, "{st:?}");
    assert!(st.nspans <= st.batched, "{st:?}");
}
