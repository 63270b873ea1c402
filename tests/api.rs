//! The Rust API: sizes, alignment, zeroing, realloc, aligned allocation, bad pointers.

mod common;
use common::*;
use goalloc::testing::sizeclass::{CLASS_16, CLASS_SIZE, MAX_SMALL_SIZE, PAGE_SIZE};
use std::collections::HashSet;

/// `goalloc::malloc` is C's `malloc`: 16-byte aligned whatever the size.
fn required_align(_size: usize) -> usize {
    16
}

#[test]
fn every_small_size_fits_and_is_aligned() {
    unsafe {
        let mut live = Vec::new();
        for size in 0..=MAX_SMALL_SIZE + 64 {
            let p = goalloc::malloc(size);
            assert!(!p.is_null(), "malloc({size})");
            assert_eq!(
                p as usize % required_align(size),
                0,
                "alignment of malloc({size})"
            );
            let usable = goalloc::usable_size(p);
            assert!(usable >= size, "usable {usable} < {size}");
            stamp(p, usable.min(4096), size as u64);
            live.push((p, size, usable));
            if live.len() > 64 {
                let (q, sz, us) = live.remove(0);
                assert!(
                    check(q, us.min(4096), sz as u64),
                    "contents of malloc({sz})"
                );
                goalloc::free(q);
            }
        }
        for (q, sz, us) in live {
            assert!(check(q, us.min(4096), sz as u64));
            goalloc::free(q);
        }
    }
    goalloc::validate();
}

#[test]
fn malloc_zero_is_unique() {
    unsafe {
        let ptrs: Vec<*mut u8> = (0..1000).map(|_| goalloc::malloc(0)).collect();
        let set: HashSet<usize> = ptrs.iter().map(|&p| p as usize).collect();
        assert_eq!(set.len(), 1000);
        assert!(ptrs.iter().all(|p| !p.is_null()));
        for p in ptrs {
            goalloc::free(p);
        }
        goalloc::free(std::ptr::null_mut());
    }
}

#[test]
fn overflowing_sizes_give_null() {
    unsafe {
        assert!(goalloc::malloc(usize::MAX).is_null());
        assert!(goalloc::malloc(isize::MAX as usize + 1).is_null());
        assert!(goalloc::calloc(usize::MAX / 2, 4).is_null());
        assert!(goalloc::calloc(1 << 33, 1 << 33).is_null());
        assert!(goalloc::aligned_alloc(64, usize::MAX - 10).is_null());
        assert!(
            goalloc::aligned_alloc(48, 100).is_null(),
            "alignment not a power of two"
        );
        let p = goalloc::malloc(100);
        assert!(goalloc::realloc(p, usize::MAX).is_null());
        stamp(p, 100, 9);
        assert!(check(p, 100, 9), "a failed realloc keeps the object");
        goalloc::free(p);
    }
}

#[test]
fn calloc_zeroes_reused_memory() {
    unsafe {
        for &size in &[1usize, 16, 100, 1000, 5000, 32768, 40000, 300_000, 4 << 20] {
            for _ in 0..20 {
                let p = goalloc::malloc(size);
                p.write_bytes(0xab, size);
                goalloc::free(p);
                let q = goalloc::calloc(1, size);
                assert!((0..size).all(|i| *q.add(i) == 0), "calloc({size}) is zero");
                q.write_bytes(0xcd, size);
                goalloc::free(q);
            }
        }
    }
}

#[test]
fn realloc_keeps_contents_across_classes_and_pages() {
    unsafe {
        let mut p = goalloc::malloc(1);
        let mut size = 1;
        stamp(p, 1, 7);
        let sizes = [
            8,
            17,
            100,
            1024,
            1025,
            4000,
            32768,
            32769,
            70000,
            1 << 20,
            3 << 20,
            100_000,
            40000,
            32768,
            2000,
            24,
            5,
        ];
        for &new in &sizes {
            let q = goalloc::realloc(p, new);
            assert!(!q.is_null());
            assert!(check(q, size.min(new), 7), "realloc {size} -> {new}");
            stamp(q, new, 7);
            assert!(goalloc::usable_size(q) >= new);
            p = q;
            size = new;
        }
        // Same class: in place.
        let q = goalloc::realloc(p, 6);
        assert_eq!(q, p);
        assert!(goalloc::realloc(q, 0).is_null(), "realloc(p, 0) frees");
        let r = goalloc::realloc(std::ptr::null_mut(), 50);
        assert!(!r.is_null());
        goalloc::free(r);
    }
    goalloc::validate();
}

#[test]
fn large_realloc_shrinks_in_place() {
    unsafe {
        // Shrinking a large object always stays in place. (That regrowth into the freed
        // tail stays in place too is checked in large_cache.rs, where no other test can
        // take the tail in between.)
        let p = goalloc::malloc(1 << 20);
        stamp(p, 1 << 20, 3);
        let q = goalloc::realloc(p, 512 << 10);
        assert_eq!(p, q);
        assert_eq!(goalloc::usable_size(q), 512 << 10);
        assert!(check(q, 512 << 10, 3));
        goalloc::free(q);
    }
}

#[test]
fn aligned_alloc_every_power_of_two() {
    unsafe {
        let mut align = 1;
        while align <= 1 << 22 {
            for &size in &[
                0usize,
                1,
                align / 2,
                align,
                align + 1,
                3 * align,
                40000,
                100_000,
            ] {
                let p = goalloc::aligned_alloc(align, size);
                assert!(!p.is_null(), "aligned_alloc({align}, {size})");
                assert_eq!(p as usize % align, 0, "aligned_alloc({align}, {size})");
                assert!(goalloc::usable_size(p) >= size);
                p.write_bytes(0x5a, size);
                goalloc::free(p);
            }
            align *= 2;
        }
    }
    goalloc::validate();
}

#[test]
fn sizes_map_to_their_class() {
    unsafe {
        for (c, &size) in CLASS_SIZE.iter().enumerate().skip(1) {
            let size = size as usize;
            let p = goalloc::malloc(size);
            // malloc leaves the 8-byte class to GoAlloc: its 8 bytes get 16.
            let want = c.max(CLASS_16);
            assert_eq!(
                goalloc::usable_size(p),
                CLASS_SIZE[want] as usize,
                "class {c}"
            );
            assert_eq!(goalloc::testing::pagemap::page_class(p as usize), want);
            goalloc::free(p);
        }
        let p = goalloc::malloc(MAX_SMALL_SIZE + 1);
        assert_eq!(goalloc::usable_size(p), 5 * PAGE_SIZE);
        assert_eq!(goalloc::testing::pagemap::page_class(p as usize), 0);
        goalloc::free(p);
    }
}

#[test]
fn foreign_pointers_are_not_ours() {
    let on_stack = 0u64;
    static GLOBAL: u64 = 0;
    // A page mapped by someone else.
    let foreign = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    } as usize;
    for p in [
        &on_stack as *const u64 as usize,
        &GLOBAL as *const u64 as usize,
        foreign,
        0x12345678,
        usize::MAX - 7,
        1 << 47,
    ] {
        assert_eq!(goalloc::testing::pagemap::page_class(p), 0, "{p:#x}");
        assert!(!goalloc::testing::pagemap::has_span(p), "{p:#x}");
    }
}

/// Runs this test binary again with one test selected and an environment variable that
/// makes it free a bad pointer, and expects an abort with a `goalloc:` line.
fn expect_abort(case: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = common::program_command(&std::env::current_exe().unwrap(), &[])
        .args([
            "--exact",
            "bad_free_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GOALLOC_TEST_BAD_FREE", case)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{case}: status {:?}, stderr {stderr}",
        out.status
    );
    assert!(
        stderr.contains("goalloc: free(): "),
        "{case}: stderr was {stderr}"
    );
}

#[test]
fn bad_free_child() {
    let Ok(case) = std::env::var("GOALLOC_TEST_BAD_FREE") else {
        return; // only meaningful when run by expect_abort
    };
    unsafe {
        match case.as_str() {
            "wild" => goalloc::free(0x12345678 as *mut u8),
            "stack" => {
                let mut x = 0u8;
                goalloc::free(&mut x);
            }
            "large-interior" => {
                let p = goalloc::malloc(100_000);
                goalloc::free(p.add(PAGE_SIZE));
            }
            "large-double" => {
                let p = goalloc::malloc(100_000);
                goalloc::free(p);
                goalloc::free(p);
            }
            _ => unreachable!(),
        }
    }
    eprintln!("no abort for {case}");
}

#[test]
fn bad_frees_abort_with_a_message() {
    for case in ["wild", "stack", "large-interior", "large-double"] {
        expect_abort(case);
    }
}

#[test]
fn checked_mode_follows_the_environment() {
    let p = unsafe { goalloc::malloc(10) };
    unsafe { goalloc::free(p) };
    let want = std::env::var("GOALLOC_CHECK").is_ok_and(|v| v == "1");
    assert_eq!(goalloc::testing::checked::enabled(), want);
}
