//! A thread's cache is a block of metadata that goes back for reuse when the thread exits;
//! what the thread allocates and frees after that (in later `pthread_key` destructors)
//! goes to mcentral and the heap directly, and none of it is lost.
//!
//! One test in its own binary, so that nothing else uses the classes meanwhile.

use goalloc::testing::mcentral::CENTRAL;
use goalloc::testing::sizeclass::{size_to_class, CLASS_SIZE};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static LATE_RAN: AtomicBool = AtomicBool::new(false);
static LATE_EXITED: AtomicBool = AtomicBool::new(false);
static LATE_OK: AtomicUsize = AtomicUsize::new(0);

const LATE_SIZE: usize = 6400;
const LATE_COUNT: usize = 500;

/// A destructor of a key made after goalloc's, so it runs after goalloc's own.
extern "C" fn late(_: *mut libc::c_void) {
    LATE_RAN.store(true, Ordering::SeqCst);
    LATE_EXITED.store(goalloc::testing::mcache::exited(), Ordering::SeqCst);
    unsafe {
        let mut objs = [std::ptr::null_mut::<u8>(); LATE_COUNT];
        for (i, o) in objs.iter_mut().enumerate() {
            *o = goalloc::malloc(LATE_SIZE);
            assert!(!o.is_null());
            o.write_bytes(i as u8, LATE_SIZE);
        }
        for (i, &o) in objs.iter().enumerate() {
            assert_eq!(*o.add(LATE_SIZE - 1), i as u8);
            goalloc::free(o);
        }
        let big = goalloc::malloc(100_000);
        assert!(!big.is_null());
        big.write_bytes(1, 100_000);
        goalloc::free(big);
    }
    LATE_OK.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn thread_caches_are_reused_and_late_frees_are_not_lost() {
    unsafe { goalloc::free(goalloc::malloc(8)) }; // goalloc's key exists from here on

    // Caches of exited threads are reused: 300 threads one after another take one
    // cache's worth of metadata, not 300.
    let before = goalloc::testing::mcache::meta_bytes();
    for i in 0..300 {
        std::thread::spawn(move || unsafe {
            let p = goalloc::malloc(64 + i % 200);
            assert!(!p.is_null());
            goalloc::free(p);
        })
        .join()
        .unwrap();
    }
    let grown = goalloc::testing::mcache::meta_bytes() - before;
    assert!(grown <= 64 << 10, "thread caches took {grown} more bytes");

    // Operations after goalloc's destructor gave the cache back.
    let mut key: libc::pthread_key_t = 0;
    assert_eq!(unsafe { libc::pthread_key_create(&mut key, Some(late)) }, 0);
    let class = size_to_class(LATE_SIZE);
    assert_eq!(CLASS_SIZE[class], 6528);
    let large_before = goalloc::stats::read().large_objects;
    // Something of the test harness may hold an object of the class: compare with now.
    let before = CENTRAL[class].stats(class);
    std::thread::spawn(move || unsafe {
        let p = goalloc::malloc(100);
        libc::pthread_setspecific(key, std::ptr::dangling::<libc::c_void>());
        goalloc::free(p);
    })
    .join()
    .unwrap();
    assert!(LATE_RAN.load(Ordering::SeqCst), "the late destructor ran");
    assert!(
        LATE_EXITED.load(Ordering::SeqCst),
        "the late destructor ran after goalloc's"
    );
    assert_eq!(LATE_OK.load(Ordering::SeqCst), 1);
    goalloc::validate();
    let st = CENTRAL[class].stats(class);
    assert!(st.nmalloc >= before.nmalloc + LATE_COUNT as u64, "{st:?}");
    assert_eq!(
        st.alloc_count, before.alloc_count,
        "every object came back: {before:?} {st:?}"
    );
    assert_eq!(
        st.nmalloc - before.nmalloc,
        st.nfree - before.nfree,
        "{st:?}"
    );
    assert_eq!(goalloc::stats::read().large_objects, large_before);
}
