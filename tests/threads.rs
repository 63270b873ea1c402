//! Threads that free each other's objects, every object stamped and verified; thread exit
//! returns caches.

mod common;
use common::*;
use std::sync::mpsc;
use std::thread;

struct Obj {
    p: usize,
    len: usize,
    tag: u64,
}

/// Each thread allocates stamped objects and sends most of them to the next thread in a
/// ring, which verifies and frees them (cross-thread free); the rest it frees itself.
#[test]
fn ring_of_threads_frees_each_others_objects() {
    const THREADS: usize = 4;
    // Under Miri, which interprets every step, fewer rounds (still many batches each way).
    const ROUNDS: usize = if cfg!(miri) { 600 } else { 40_000 };
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Vec<Obj>>()).unzip();
    let mut handles = Vec::new();
    for (i, rx) in rxs.into_iter().enumerate() {
        let tx = txs[(i + 1) % THREADS].clone();
        handles.push(thread::spawn(move || {
            let mut rng = Rng::new(i as u64 + 1);
            let mut own = Vec::new();
            let mut outgoing = Vec::new();
            let mut verified = 0usize;
            for r in 0..ROUNDS {
                let len = if rng.below(50) == 0 {
                    32768 + rng.size(300_000)
                } else {
                    rng.size(4096)
                };
                let tag = ((i as u64) << 32) | r as u64;
                // SAFETY: the object is ours until freed below or by the receiver.
                let p = unsafe { goalloc::malloc(len) };
                assert!(!p.is_null());
                unsafe { stamp(p, len, tag) };
                let o = Obj {
                    p: p as usize,
                    len,
                    tag,
                };
                if rng.below(3) == 0 {
                    own.push(o);
                } else {
                    outgoing.push(o);
                }
                if outgoing.len() == 64 {
                    tx.send(std::mem::take(&mut outgoing)).unwrap();
                }
                if own.len() > 200 {
                    let o = own.swap_remove(rng.below(own.len() as u64) as usize);
                    unsafe {
                        assert!(check(o.p as *const u8, o.len, o.tag), "own object intact");
                        goalloc::free(o.p as *mut u8);
                    }
                }
                while let Ok(batch) = rx.try_recv() {
                    for o in batch {
                        unsafe {
                            assert!(
                                check(o.p as *const u8, o.len, o.tag),
                                "received object intact"
                            );
                            goalloc::free(o.p as *mut u8);
                        }
                        verified += 1;
                    }
                }
            }
            tx.send(outgoing).unwrap();
            drop(tx);
            for o in own {
                unsafe {
                    assert!(check(o.p as *const u8, o.len, o.tag));
                    goalloc::free(o.p as *mut u8);
                }
            }
            goalloc::testing::mcache::validate_current();
            (rx, verified)
        }));
    }
    drop(txs);
    // Join all first: a receiver must outlive every thread that may still send to it.
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut total = 0;
    for (rx, verified) in results {
        total += verified;
        // Drain what arrived after the thread's loop ended.
        for batch in rx.try_iter() {
            for o in batch {
                unsafe {
                    assert!(check(o.p as *const u8, o.len, o.tag));
                    goalloc::free(o.p as *mut u8);
                }
                total += 1;
            }
        }
    }
    assert!(
        total > THREADS * ROUNDS / 2,
        "most objects crossed threads: {total}"
    );
    goalloc::validate();
}

/// Thousands of short-lived threads: each leaves objects in its cache when it exits, and
/// the thread-exit destructor must hand them back, so the heap stays bounded.
#[test]
fn exiting_threads_return_their_caches() {
    let before = goalloc::testing::mheap::HEAP.stats();
    // Under Miri, fewer and smaller waves.
    let (waves, threads, objects) = if cfg!(miri) {
        (2, 4, 100)
    } else {
        (40, 50, 300)
    };
    for wave in 0..waves {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                thread::spawn(move || {
                    let mut rng = Rng::new((wave * 100 + t) as u64);
                    let mut v = Vec::new();
                    for _ in 0..objects {
                        let len = rng.size(2048);
                        v.push(unsafe { goalloc::malloc(len) } as usize);
                    }
                    for p in v {
                        unsafe { goalloc::free(p as *mut u8) };
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    let after = goalloc::testing::mheap::HEAP.stats();
    // 2000 threads each caching up to its bound would hold gigabytes; returned caches
    // leave the heap near where it started.
    let grown = (after.pages_inuse as isize - before.pages_inuse as isize) * 8192;
    assert!(grown < 64 << 20, "heap in use grew by {grown} bytes");
    goalloc::validate();
}

/// Pages are released (`release_all`, as the scavenger does: spans taken off the lists,
/// `madvise` without the lock) while other threads allocate, free and reuse them; every
/// object stays intact, reused released memory reads as zero from calloc, and the heap's
/// invariants hold.
#[test]
fn release_races_with_allocation() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let releaser = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut total = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                total += goalloc::release_all();
                goalloc::testing::mheap::HEAP.validate();
            }
            total
        })
    };
    let workers: Vec<_> = (0..3)
        .map(|t| {
            thread::spawn(move || {
                let mut rng = Rng::new(77 + t);
                let mut live: Vec<(usize, usize, u64)> = Vec::new();
                for i in 0..if cfg!(miri) { 150 } else { 4000u64 } {
                    let len = if rng.below(3) == 0 {
                        32768 + rng.size(4 << 20)
                    } else {
                        rng.size(20000)
                    };
                    let p = unsafe { goalloc::calloc(1, len) };
                    assert!(!p.is_null());
                    assert!(
                        unsafe { (0..len).step_by(61).all(|k| *p.add(k) == 0) },
                        "calloc zero"
                    );
                    unsafe { stamp(p, len.min(4096), i) };
                    live.push((p as usize, len, i));
                    if live.len() > 40 {
                        let (q, l, tag) = live.swap_remove(rng.below(live.len() as u64) as usize);
                        assert!(unsafe { check(q as *const u8, l.min(4096), tag) });
                        unsafe { goalloc::free(q as *mut u8) };
                    }
                }
                for (q, l, tag) in live {
                    assert!(unsafe { check(q as *const u8, l.min(4096), tag) });
                    unsafe { goalloc::free(q as *mut u8) };
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let released = releaser.join().unwrap();
    assert!(released > 0, "something was released while the workers ran");
    goalloc::validate();
}
