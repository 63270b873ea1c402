//! A thread's lists that sit unused while the thread keeps going below its cache for
//! other classes are swept: half of such a list goes back at each sweep, so a thread that
//! moved on from a size does not keep that size's objects (and their spans) for good.
//!
//! One test in its own binary, so that nothing else uses the class meanwhile.

use goalloc::testing::mcentral::CENTRAL;
use goalloc::testing::sizeclass::{size_to_class, CLASS_SIZE};

#[test]
fn a_list_left_unused_goes_back() {
    std::thread::spawn(|| unsafe {
        let size = 6400;
        let class = size_to_class(size);
        assert_eq!(CLASS_SIZE[class], 6528);
        let base = CENTRAL[class].stats(class).alloc_count;

        // Use the class: 64 objects live at once, then all freed to this thread's list.
        for _ in 0..20 {
            let objs: Vec<*mut u8> = (0..64).map(|_| goalloc::malloc(size)).collect();
            for &o in &objs {
                assert!(!o.is_null());
                o.write_bytes(1, size);
            }
            for o in objs {
                goalloc::free(o);
            }
        }
        let held = CENTRAL[class].stats(class).alloc_count - base;
        assert!(
            held >= 32,
            "the thread's list holds the freed objects ({held})"
        );

        // Move on to other sizes: many refills and overflows of other classes.
        for round in 0..400 {
            let size = 16 + (round % 40) * 24;
            let objs: Vec<*mut u8> = (0..200).map(|_| goalloc::malloc(size)).collect();
            for o in objs {
                goalloc::free(o);
            }
        }
        let st = CENTRAL[class].stats(class);
        let left = st.alloc_count - base;
        // What is still out of the spans is at most the ready batches (bounded apart).
        assert!(
            left <= st.batched,
            "{left} objects of the unused class still held (held {held} before): {st:?}"
        );
    })
    .join()
    .unwrap();
}
