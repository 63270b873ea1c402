//! goalloc as the global allocator of a Rust program: threads fill collections, pass
//! boxes to each other (so memory is freed on another thread than the one that took it)
//! and the main thread checks the totals. The output is the same every run.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static A: goalloc::GoAlloc = goalloc::GoAlloc;

/// Bytes in goalloc's spans in use now.
fn heap_inuse() -> usize {
    goalloc::stats::read().heap_inuse as usize
}

fn main() {
    // A large Vec shows in goalloc's heap: Rust's allocations are goalloc's.
    let before = heap_inuse();
    let big = vec![1u8; 4 << 20];
    let after = heap_inuse();
    let from_goalloc = after >= before + big.len();
    println!(
        "Vec of 4 MiB came from goalloc: {}",
        if from_goalloc { "yes" } else { "no" }
    );
    drop(big);

    const THREADS: u64 = 4;
    const ITEMS: u64 = 25_000;
    let (tx, rx) = mpsc::channel::<Box<[u64]>>();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut words: HashMap<String, u64> = HashMap::new();
                let mut lists: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
                for i in 0..ITEMS {
                    *words.entry(format!("w{}", i % 1000)).or_default() += i;
                    lists.entry(i % 64).or_default().push(t * ITEMS + i);
                    if i % 100 == 0 {
                        // Freed by the main thread.
                        let b: Box<[u64]> = (0..i % 3000).collect();
                        tx.send(b).unwrap();
                    }
                }
                let words_sum: u64 = words.values().sum();
                let lists_sum: u64 = lists.values().flatten().sum();
                (words.len() as u64, words_sum, lists_sum)
            })
        })
        .collect();
    drop(tx);

    let (mut boxes, mut box_sum) = (0u64, 0u64);
    for b in rx {
        boxes += 1;
        box_sum += b.iter().sum::<u64>();
    }
    let (mut keys, mut words_sum, mut lists_sum) = (0, 0, 0);
    for w in workers {
        let (k, ws, ls) = w.join().unwrap();
        keys += k;
        words_sum += ws;
        lists_sum += ls;
    }
    println!("{THREADS} threads: {keys} keys, word sum {words_sum}, list sum {lists_sum}");
    println!("{boxes} boxes freed across threads, sum {box_sum}");
    println!("{}", if from_goalloc { "done" } else { "FAILED" });
    if !from_goalloc {
        std::process::exit(1);
    }
}
