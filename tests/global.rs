//! A program that uses goalloc as its `#[global_allocator]`: the test harness itself, and
//! a threaded workload of collections, strings and cross-thread drops, run on it.

use goalloc::GoAlloc;
use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex};

#[global_allocator]
static A: GoAlloc = GoAlloc;

#[test]
fn allocations_really_come_from_goalloc() {
    let v: Vec<u64> = Vec::with_capacity(100);
    assert_ne!(
        goalloc::testing::pagemap::page_class(v.as_ptr() as usize),
        0
    );
    let big: Vec<u8> = vec![0; 1 << 20];
    assert!(goalloc::testing::pagemap::has_span(big.as_ptr() as usize));
    assert!(big.iter().all(|&b| b == 0));
}

#[test]
fn threaded_collections_workload() {
    let shared = Arc::new(Mutex::new(HashMap::<String, Vec<u32>>::new()));
    let (tx, rx) = mpsc::channel::<Box<[u64]>>();
    let mut hs = Vec::new();
    for t in 0..4u32 {
        let shared = shared.clone();
        let tx = tx.clone();
        hs.push(std::thread::spawn(move || {
            let mut local = BTreeMap::new();
            for i in 0..20_000u32 {
                let key = format!("t{t}-k{}", i % 500);
                let v: Vec<u32> = (0..(i % 97)).map(|x| x ^ i).collect();
                local.insert(key.clone(), v.clone());
                if i % 7 == 0 {
                    shared.lock().unwrap().insert(key, v);
                }
                if i % 50 == 0 {
                    let b: Box<[u64]> = (0..(i as u64 % 5000)).collect();
                    tx.send(b).unwrap();
                }
            }
            for (k, v) in &local {
                assert!(k.starts_with(&format!("t{t}-")));
                let key: u32 = k.rsplit('k').next().unwrap().parse().unwrap();
                // The last value stored under a key came from the last i with i % 500 == key:
                // v[x] == x ^ i, and it has i % 97 elements.
                if let Some(&i) = v.first() {
                    assert_eq!(i % 500, key);
                    assert_eq!(v.len() as u32, i % 97);
                    assert!(v.iter().enumerate().all(|(x, &y)| y == x as u32 ^ i));
                }
            }
            local.len()
        }));
    }
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        for b in rx {
            assert!(b.iter().enumerate().all(|(i, &x)| x == i as u64));
            n += 1;
        }
        n
    });
    for h in hs {
        assert_eq!(h.join().unwrap(), 500);
    }
    assert_eq!(consumer.join().unwrap(), 4 * 400);
    let map = shared.lock().unwrap();
    assert_eq!(map.len(), 4 * 500);
    for (k, v) in map.iter() {
        assert!(k.starts_with('t'));
        assert!(v.len() < 97);
    }
    drop(map);
    goalloc::validate();
}

#[test]
fn alignments_and_zeroed_layouts() {
    use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
    for align in [1usize, 2, 4, 8, 16, 32, 64, 4096, 8192, 1 << 16, 1 << 21] {
        for size in [1usize, 7, 8, 15, 16, 100, 4096, 40_000, 100_000] {
            let l = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = alloc_zeroed(l);
                assert_eq!(p as usize % align, 0, "align {align} size {size}");
                assert!((0..size).all(|i| *p.add(i) == 0));
                p.write_bytes(0x11, size);
                let q = realloc(p, l, size * 3);
                assert_eq!(q as usize % align, 0, "realloc keeps align {align}");
                assert!((0..size).all(|i| *q.add(i) == 0x11));
                dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                let r = alloc(l);
                r.write_bytes(1, size);
                dealloc(r, l);
            }
        }
    }
}

/// Layouts of at most 8 bytes and alignment keep the 8-byte class (C's malloc does not use
/// it), and realloc moves objects into and out of it as `alloc` of the new layout would
/// place them: `dealloc` finds the class from the layout (checked by its debug assertion
/// in a debug build, and here by the page map).
#[test]
fn small_layouts_use_the_8_byte_class() {
    use goalloc::testing::pagemap::page_class;
    use goalloc::testing::sizeclass::{CLASS_16, CLASS_8};
    use std::alloc::{alloc, dealloc, realloc, Layout};
    let b = Box::new(7u64);
    assert_eq!(page_class(&*b as *const u64 as usize), CLASS_8);
    let b16 = Box::new(7u128);
    assert_eq!(page_class(&*b16 as *const u128 as usize), CLASS_16);
    unsafe {
        for align in [1usize, 2, 4, 8, 16] {
            // sizes through 8 and 16 bytes, up and down again
            let sizes = [0usize, 1, 5, 8, 9, 16, 24, 100, 8, 3, 0, 40_000, 2, 17, 1];
            let l = Layout::from_size_align(sizes[0], align).unwrap();
            let mut p = alloc(l);
            let mut size = sizes[0];
            for &next in &sizes[1..] {
                let want = if size.max(align) <= 8 { CLASS_8 } else { 0 };
                if want != 0 {
                    assert_eq!(page_class(p as usize), want, "align {align} size {size}");
                } else if size.max(align) <= 16 {
                    assert_eq!(
                        page_class(p as usize),
                        CLASS_16,
                        "align {align} size {size}"
                    );
                }
                assert_eq!(p as usize % align, 0);
                p.write_bytes(0x5c, size);
                let q = realloc(p, Layout::from_size_align(size, align).unwrap(), next);
                assert!(!q.is_null());
                assert!((0..size.min(next)).all(|i| *q.add(i) == 0x5c));
                p = q;
                size = next;
            }
            dealloc(p, Layout::from_size_align(size, align).unwrap());
        }
    }
    drop((b, b16));
    goalloc::validate();
}
