//! An interpreter of allocator operations, checked against a model. Shared by the fuzz
//! target (`fuzz_targets/ops.rs`) and the stable test that replays the corpus
//! (`tests/fuzz_corpus.rs`).
//!
//! The input is a byte string read as operations: an opcode byte, then its arguments.
//! Objects live in 32 slots; every object is stamped with a pattern and checked before it
//! is freed, reallocated or handed to the second thread; allocations are checked for
//! alignment, usable size, zeroing (calloc) and overlap with every live object. A second
//! thread frees the objects sent to it, so frees happen in any order on two threads.

use std::collections::BTreeMap;
use std::sync::mpsc;

const SLOTS: usize = 32;

#[derive(Clone, Copy)]
struct Obj {
    p: usize,
    len: usize,
    tag: u8,
    /// The alignment asked of aligned_alloc, or 0.
    align: usize,
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    /// A size: the selector picks small (<= 4 KiB), medium (<= 64 KiB) or large (<= 4 MiB).
    fn size(&mut self) -> Option<usize> {
        let sel = self.byte()?;
        let v = self.u16()? as usize;
        Some(match sel % 8 {
            0..=4 => v % 4097,
            5 | 6 => v,
            _ => v * 64,
        })
    }
}

fn pattern(tag: u8, i: usize) -> u8 {
    tag.wrapping_add((i as u8).wrapping_mul(31))
}

/// Stamps at most the first and last 256 bytes (large objects stay cheap to check).
unsafe fn stamp(o: Obj) {
    for i in (0..o.len.min(256)).chain(o.len.saturating_sub(256)..o.len) {
        *(o.p as *mut u8).add(i) = pattern(o.tag, i);
    }
}

unsafe fn verify(o: Obj, what: &str) {
    for i in (0..o.len.min(256)).chain(o.len.saturating_sub(256)..o.len) {
        let b = *(o.p as *const u8).add(i);
        assert_eq!(
            b,
            pattern(o.tag, i),
            "{what}: object {:#x}+{} byte {i} changed",
            o.p,
            o.len
        );
    }
}

struct Model {
    slots: [Option<Obj>; SLOTS],
    /// Live objects by address, with their usable sizes, for the overlap check.
    live: BTreeMap<usize, usize>,
}

impl Model {
    fn admit(&mut self, p: usize, len: usize, align: usize, tag: u8) -> Obj {
        assert_ne!(p, 0, "allocation of {len} bytes failed");
        let usable = unsafe { goalloc::usable_size(p as *const u8) };
        assert!(usable >= len, "usable {usable} < {len}");
        let want = if align > 0 {
            align.max(8)
        } else if len >= 16 {
            16
        } else {
            8
        };
        assert_eq!(p % want, 0, "{p:#x} not {want}-aligned");
        if let Some((&q, &u)) = self.live.range(..=p).next_back() {
            assert!(q + u <= p, "{p:#x} overlaps {q:#x}+{u}");
        }
        if let Some((&q, _)) = self.live.range(p..).next() {
            assert!(p + usable.max(1) <= q, "{p:#x}+{usable} overlaps {q:#x}");
        }
        self.live.insert(p, usable);
        let o = Obj { p, len, tag, align };
        unsafe { stamp(o) };
        o
    }

    fn take(&mut self, slot: usize, what: &str) -> Option<Obj> {
        let o = self.slots[slot].take()?;
        unsafe { verify(o, what) };
        self.live.remove(&o.p);
        Some(o)
    }
}

/// Runs one input. Panics (the fuzzer's finding) on any broken expectation.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let mut m = Model {
        slots: [None; SLOTS],
        live: BTreeMap::new(),
    };
    let (tx, rx) = mpsc::channel::<Obj>();
    let other = std::thread::spawn(move || {
        for o in rx {
            unsafe {
                verify(o, "on the second thread");
                goalloc::free(o.p as *mut u8);
            }
        }
    });
    let mut tag = 0u8;
    while let Some(op) = input.byte() {
        let Some(slot) = input.byte().map(|b| b as usize % SLOTS) else {
            break;
        };
        tag = tag.wrapping_add(1);
        match op % 8 {
            // Allocate into the slot (freeing what was there).
            0..=2 => {
                let Some(len) = input.size() else { break };
                if let Some(o) = m.take(slot, "before reuse of its slot") {
                    unsafe { goalloc::free(o.p as *mut u8) };
                }
                let kind = op % 3;
                let (p, align) = unsafe {
                    match kind {
                        0 => (goalloc::malloc(len) as usize, 0),
                        1 => {
                            let p = goalloc::calloc(1, len);
                            assert!(!p.is_null());
                            for i in 0..len.min(4096) {
                                assert_eq!(*p.add(i), 0, "calloc({len}) byte {i}");
                            }
                            (p as usize, 0)
                        }
                        _ => {
                            let align = 1usize << (input.byte().unwrap_or(4) % 21);
                            (goalloc::aligned_alloc(align, len) as usize, align)
                        }
                    }
                };
                let o = m.admit(p, len, align, tag);
                m.slots[slot] = Some(o);
            }
            // Realloc the slot's object.
            3 => {
                let Some(len) = input.size() else { break };
                let Some(o) = m.take(slot, "before realloc") else {
                    continue;
                };
                let len = len.max(1);
                let q = unsafe { goalloc::realloc(o.p as *mut u8, len) } as usize;
                assert_ne!(q, 0, "realloc to {len}");
                let kept = Obj {
                    p: q,
                    len: o.len.min(len),
                    tag: o.tag,
                    align: 0,
                };
                // The contents up to the smaller size survive (head and tail checked).
                unsafe {
                    for i in 0..kept.len.min(256) {
                        assert_eq!(
                            *(q as *const u8).add(i),
                            pattern(o.tag, i),
                            "realloc kept byte {i}"
                        );
                    }
                }
                let n = m.admit(q, len, 0, tag);
                m.slots[slot] = Some(n);
            }
            // Free here, or with its size.
            4 | 5 => {
                if let Some(o) = m.take(slot, "before free") {
                    unsafe {
                        if op % 8 == 5 && o.align == 0 {
                            goalloc::free_sized(o.p as *mut u8, o.len)
                        } else if op % 8 == 5 {
                            goalloc::free_aligned_sized(o.p as *mut u8, o.align, o.len)
                        } else {
                            goalloc::free(o.p as *mut u8)
                        }
                    }
                }
            }
            // Hand it to the other thread, which checks and frees it.
            6 => {
                if let Some(o) = m.take(slot, "before sending") {
                    tx.send(o).unwrap();
                }
            }
            // Return free memory to the OS now, then check every live object.
            _ => {
                goalloc::release_all();
                for o in m.slots.iter().flatten() {
                    unsafe { verify(*o, "after release_all") };
                }
            }
        }
    }
    for slot in 0..SLOTS {
        if let Some(o) = m.take(slot, "at the end") {
            unsafe { goalloc::free(o.p as *mut u8) };
        }
    }
    drop(tx);
    other.join().unwrap();
    goalloc::validate();
}
