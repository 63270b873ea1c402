//! Micro-benchmarks: goalloc's `GoAlloc` against the system allocator (criterion).
//!
//! ```sh
//! cargo bench --bench alloc                 # everything (5-8 minutes on 2 cores)
//! cargo bench --bench alloc -- 'pair/.*/64$' # a filter (a regex on group/allocator/size)
//! ```
//!
//! The same file is also a bench of benches/rust, whose `peers` feature (on by default
//! there) adds the `mimalloc`, `snmalloc-rs` and `tikv-jemallocator` crates' allocators.
//! goalloc's own build never depends on them:
//!
//! ```sh
//! cargo bench --manifest-path benches/rust/Cargo.toml --bench alloc -- 'pair/.*/64$'
//! ```
//!
//! Groups, each with one benchmark per allocator (`goalloc`, `system`, and with `peers`
//! `mimalloc`, `snmalloc`, `jemalloc`):
//! - `pair/SIZE`: `alloc` then `dealloc` of one object, for a representative set of size
//!   classes (8 B .. 32 KiB) and large sizes (64 KiB, 1 MiB);
//! - `batch32/SIZE`: 32 `alloc`s then 32 `dealloc`s, so that the free lists really turn;
//! - `realloc_growth`: an object grown from 16 B to 1 MiB by doubling, then freed;
//! - `alloc_zeroed/SIZE`: `alloc_zeroed` and `dealloc`;
//! - `cross_thread_free`: objects of 16 B .. 1 KiB allocated here and freed by another
//!   thread, in chunks of 1024 (time per object).
//!
//! With the package's default `c-api` feature the bench executable itself defines
//! `malloc` and `free`, which then replace glibc's in this process, so that
//! `std::alloc::System` would measure goalloc again. The `system` side therefore checks
//! where `System`'s memory comes from and, when it is goalloc's, calls glibc's own entry
//! points (`__libc_malloc` and friends), which is what `System` calls in any program that
//! does not replace `malloc`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use goalloc::GoAlloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

extern "C" {
    fn __libc_malloc(size: usize) -> *mut u8;
    fn __libc_calloc(n: usize, size: usize) -> *mut u8;
    fn __libc_realloc(p: *mut u8, size: usize) -> *mut u8;
    fn __libc_memalign(align: usize, size: usize) -> *mut u8;
    fn __libc_free(p: *mut u8);
}

/// glibc's allocator, called through the entry points that glibc keeps for this.
struct Glibc;

// SAFETY: glibc's malloc family returns memory aligned to 16 bytes (memalign for more),
// valid for the requested size, or null; each pointer is freed with __libc_free.
unsafe impl GlobalAlloc for Glibc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain calls into glibc's allocator.
        unsafe {
            if layout.align() <= 16 {
                __libc_malloc(layout.size())
            } else {
                __libc_memalign(layout.align(), layout.size())
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: ptr came from glibc's allocator (alloc above).
        unsafe { __libc_free(ptr) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 {
            // SAFETY: plain call into glibc's allocator.
            unsafe { __libc_calloc(1, layout.size()) }
        } else {
            // SAFETY: as alloc; the object holds layout.size() bytes.
            unsafe {
                let p = self.alloc(layout);
                if !p.is_null() {
                    p.write_bytes(0, layout.size());
                }
                p
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= 16 {
            // SAFETY: ptr came from __libc_malloc/__libc_calloc/__libc_realloc.
            unsafe { __libc_realloc(ptr, new_size) }
        } else {
            // SAFETY: copy into a new object of the same alignment, then free the old one.
            unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let q = self.alloc(new_layout);
                if !q.is_null() {
                    q.copy_from_nonoverlapping(ptr, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                q
            }
        }
    }
}

/// The system allocator as this process can reach it: `System` when it is not goalloc.
enum SystemAlloc {
    Std,
    Glibc,
}

impl SystemAlloc {
    fn detect() -> SystemAlloc {
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: a plain allocation, freed right after with the same layout.
        let p = unsafe { System.alloc(layout) };
        assert!(!p.is_null());
        let is_goalloc = goalloc::testing::pagemap::page_class(p as usize) != 0;
        // SAFETY: p came from System.alloc with this layout.
        unsafe { System.dealloc(p, layout) };
        if is_goalloc {
            eprintln!(
                "alloc bench: System resolves to goalloc in this binary (c-api feature); \
                 `system` calls glibc's __libc_* functions instead"
            );
            SystemAlloc::Glibc
        } else {
            SystemAlloc::Std
        }
    }
}

/// The allocators under test, as trait objects.
// `peers` is a feature of benches/rust, which builds this file too; goalloc has none.
#[allow(unexpected_cfgs)]
fn allocators() -> Vec<(&'static str, &'static (dyn GlobalAlloc + Sync))> {
    static GO: GoAlloc = GoAlloc;
    static GLIBC: Glibc = Glibc;
    static SYSTEM: OnceLock<SystemAlloc> = OnceLock::new();
    let system: &'static (dyn GlobalAlloc + Sync) = match SYSTEM.get_or_init(SystemAlloc::detect) {
        SystemAlloc::Std => &System,
        SystemAlloc::Glibc => &GLIBC,
    };
    #[allow(unused_mut)]
    let mut list: Vec<(&'static str, &'static (dyn GlobalAlloc + Sync))> =
        vec![("goalloc", &GO), ("system", system)];
    #[cfg(feature = "peers")]
    {
        static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
        static SNMALLOC: snmalloc_rs::SnMalloc = snmalloc_rs::SnMalloc;
        static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
        list.extend([
            ("mimalloc", &MIMALLOC as &'static (dyn GlobalAlloc + Sync)),
            ("snmalloc", &SNMALLOC),
            ("jemalloc", &JEMALLOC),
        ]);
    }
    list
}

const PAIR_SIZES: &[usize] = &[
    8,
    16,
    24,
    32,
    48,
    64,
    128,
    256,
    512,
    1024,
    2048,
    4096,
    8192,
    16384,
    32768,
    65536,
    1 << 20,
];

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, if size >= 16 { 16 } else { 8 }).unwrap()
}

fn bench_pairs(c: &mut Criterion) {
    let allocs = allocators();
    let mut group = c.benchmark_group("pair");
    for &size in PAIR_SIZES {
        let l = layout(size);
        for &(name, a) in &allocs {
            group.bench_with_input(BenchmarkId::new(name, size), &l, |b, &l| {
                b.iter(|| {
                    // SAFETY: non-zero size; the object is freed with its layout.
                    unsafe {
                        let p = a.alloc(black_box(l));
                        assert!(!p.is_null());
                        p.write(1);
                        a.dealloc(black_box(p), l);
                    }
                })
            });
        }
    }
    group.finish();
}

fn bench_batch(c: &mut Criterion) {
    let allocs = allocators();
    let mut group = c.benchmark_group("batch32");
    for &size in &[16usize, 64, 256, 1024, 4096, 32768] {
        let l = layout(size);
        group.throughput(Throughput::Elements(32));
        for &(name, a) in &allocs {
            group.bench_with_input(BenchmarkId::new(name, size), &l, |b, &l| {
                let mut ptrs = [std::ptr::null_mut::<u8>(); 32];
                b.iter(|| {
                    // SAFETY: non-zero sizes; each object is freed once with its layout.
                    unsafe {
                        for p in ptrs.iter_mut() {
                            *p = a.alloc(l);
                            assert!(!p.is_null());
                            p.write(1);
                        }
                        for &p in black_box(&ptrs).iter() {
                            a.dealloc(p, l);
                        }
                    }
                })
            });
        }
    }
    group.finish();
}

fn bench_realloc(c: &mut Criterion) {
    let allocs = allocators();
    let mut group = c.benchmark_group("realloc_growth");
    for &(name, a) in &allocs {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut size = 16usize;
                let mut l = layout(size);
                // SAFETY: every realloc passes the object's current layout; the last one
                // is freed with its layout.
                unsafe {
                    let mut p = a.alloc(l);
                    assert!(!p.is_null());
                    p.write(7);
                    while size < (1 << 20) {
                        let new_size = size * 2;
                        p = a.realloc(p, l, new_size);
                        assert!(!p.is_null());
                        p.add(new_size - 1).write(7);
                        size = new_size;
                        l = layout(size);
                    }
                    assert_eq!(black_box(p).read(), 7);
                    a.dealloc(p, l);
                }
            })
        });
    }
    group.finish();
}

fn bench_zeroed(c: &mut Criterion) {
    let allocs = allocators();
    let mut group = c.benchmark_group("alloc_zeroed");
    for &size in &[64usize, 4096, 65536, 1 << 20] {
        let l = layout(size);
        for &(name, a) in &allocs {
            group.bench_with_input(BenchmarkId::new(name, size), &l, |b, &l| {
                b.iter(|| {
                    // SAFETY: non-zero size; the object is freed with its layout.
                    unsafe {
                        let p = a.alloc_zeroed(black_box(l));
                        assert!(!p.is_null());
                        assert_eq!(p.add(size / 2).read(), 0);
                        a.dealloc(black_box(p), l);
                    }
                })
            });
        }
    }
    group.finish();
}

/// A pointer sent to the freeing thread, with the layout it was allocated with.
struct Chunk(Vec<(usize, Layout)>);

fn bench_cross_thread(c: &mut Criterion) {
    const CHUNK: usize = 1024;
    let allocs = allocators();
    let mut group = c.benchmark_group("cross_thread_free");
    group.throughput(Throughput::Elements(1));
    for &(name, a) in &allocs {
        // The freeing thread lives as long as this benchmark; it frees every chunk it
        // gets and answers when the chunk is done.
        let (to_worker, from_bench) = mpsc::sync_channel::<Chunk>(4);
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let worker = thread::spawn(move || {
            for chunk in from_bench {
                for (p, l) in chunk.0 {
                    // SAFETY: p was allocated by `a` with layout l and is freed once.
                    unsafe { a.dealloc(p as *mut u8, l) };
                }
                if done_tx.send(()).is_err() {
                    break;
                }
            }
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64;
                let mut left = iters as usize;
                let mut in_flight = 0usize;
                let start = Instant::now();
                while left > 0 {
                    let n = left.min(CHUNK);
                    let mut chunk = Vec::with_capacity(n);
                    for _ in 0..n {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let l = layout(16 << (seed % 7));
                        // SAFETY: non-zero size; freed by the worker with this layout.
                        let p = unsafe { a.alloc(l) };
                        assert!(!p.is_null());
                        // SAFETY: p holds at least one byte.
                        unsafe { p.write(1) };
                        chunk.push((p as usize, l));
                    }
                    to_worker.send(Chunk(chunk)).unwrap();
                    in_flight += 1;
                    // keep at most two chunks in flight
                    if in_flight > 2 {
                        done_rx.recv().unwrap();
                        in_flight -= 1;
                    }
                    left -= n;
                }
                while in_flight > 0 {
                    done_rx.recv().unwrap();
                    in_flight -= 1;
                }
                start.elapsed()
            })
        });
        drop(to_worker);
        worker.join().unwrap();
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_pairs, bench_batch, bench_realloc, bench_zeroed, bench_cross_thread
}
criterion_main!(benches);
