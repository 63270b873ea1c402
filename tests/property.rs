//! Random operation sequences from a seed: no overlap, contents intact, usable size at
//! least the request, alignment; the allocator's invariants hold throughout.
//! `GOALLOC_PROPTEST_SEED=n` replays one seed; `GOALLOC_PROPTEST_CASES=n` runs more.

mod common;
use common::*;
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
struct Live {
    len: usize,
    usable: usize,
    tag: u64,
}

fn overlaps(live: &BTreeMap<usize, Live>, p: usize, usable: usize) -> bool {
    if let Some((&q, l)) = live.range(..=p).next_back() {
        if q + l.usable > p {
            return true;
        }
    }
    if let Some((&q, _)) = live.range(p..).next() {
        if q < p + usable.max(1) {
            return true;
        }
    }
    false
}

fn run(seed: u64, ops: usize) {
    let mut rng = Rng::new(seed);
    let mut live: BTreeMap<usize, Live> = BTreeMap::new();
    let mut keys: Vec<usize> = Vec::new();
    for step in 0..ops {
        let ctx = format!("seed {seed} step {step}");
        let op = rng.below(100);
        if op < 45 || keys.is_empty() {
            let (len, align) = match rng.below(10) {
                0 => (32768 + rng.size(2 << 20), 0),
                1 => (rng.size(40_000), 1usize << rng.below(17)),
                2 => (rng.size(64) * 8, 0),
                _ => (rng.size(4096), 0),
            };
            let zeroed = rng.below(5) == 0 && align == 0;
            let p = unsafe {
                if align != 0 {
                    goalloc::aligned_alloc(align, len)
                } else if zeroed {
                    goalloc::calloc(1, len)
                } else {
                    goalloc::malloc(len)
                }
            } as usize;
            assert_ne!(p, 0, "{ctx}: allocation of {len}");
            let usable = unsafe { goalloc::usable_size(p as *const u8) };
            assert!(usable >= len, "{ctx}: usable {usable} < {len}");
            let want_align = if align != 0 {
                align.max(8)
            } else if len >= 16 {
                16
            } else {
                8
            };
            assert_eq!(p % want_align, 0, "{ctx}: alignment");
            assert!(
                !overlaps(&live, p, usable),
                "{ctx}: {p:#x}+{usable} overlaps a live object"
            );
            if zeroed {
                assert!(
                    unsafe { (0..len).all(|i| *(p as *const u8).add(i) == 0) },
                    "{ctx}: calloc"
                );
            }
            let tag = rng.next();
            unsafe { stamp(p as *mut u8, len, tag) };
            live.insert(p, Live { len, usable, tag });
            keys.push(p);
        } else if op < 85 {
            let i = rng.below(keys.len() as u64) as usize;
            let p = keys.swap_remove(i);
            let l = live.remove(&p).unwrap();
            assert!(
                unsafe { check(p as *const u8, l.len, l.tag) },
                "{ctx}: contents before free"
            );
            unsafe { goalloc::free(p as *mut u8) };
        } else {
            let i = rng.below(keys.len() as u64) as usize;
            let p = keys[i];
            let l = live.remove(&p).unwrap();
            let new_len = match rng.below(4) {
                0 => 32768 + rng.size(1 << 20),
                1 => l.len / 2,
                2 => l.len + rng.size(256),
                _ => rng.size(8192),
            }
            .max(1);
            let q = unsafe { goalloc::realloc(p as *mut u8, new_len) } as usize;
            assert_ne!(q, 0, "{ctx}: realloc");
            let keep = l.len.min(new_len);
            assert!(
                unsafe { check(q as *const u8, keep, l.tag) },
                "{ctx}: realloc kept contents"
            );
            let usable = unsafe { goalloc::usable_size(q as *const u8) };
            assert!(usable >= new_len, "{ctx}: usable after realloc");
            assert!(
                !overlaps(&live, q, usable),
                "{ctx}: realloc result overlaps"
            );
            let tag = rng.next();
            unsafe { stamp(q as *mut u8, new_len, tag) };
            live.insert(
                q,
                Live {
                    len: new_len,
                    usable,
                    tag,
                },
            );
            keys[i] = q;
        }
        if step % 5000 == 4999 {
            goalloc::validate();
        }
    }
    for (p, l) in live {
        assert!(
            unsafe { check(p as *const u8, l.len, l.tag) },
            "seed {seed}: contents at end"
        );
        unsafe { goalloc::free(p as *mut u8) };
    }
    goalloc::validate();
}

#[test]
fn random_operation_sequences() {
    if let Ok(seed) = std::env::var("GOALLOC_PROPTEST_SEED") {
        run(
            seed.parse().expect("GOALLOC_PROPTEST_SEED is a number"),
            50_000,
        );
        return;
    }
    let cases: u64 = std::env::var("GOALLOC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    for seed in 1..=cases {
        run(seed, 20_000);
    }
}

#[test]
fn random_sequences_on_several_threads() {
    let hs: Vec<_> = (0..3)
        .map(|t| std::thread::spawn(move || run(1000 + t, 20_000)))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}
