//! Size classes: Go's table, and size-to-class lookup by table.
//!
//! The object sizes and pages per span are those of Go's `runtime/sizeclasses.go` (the
//! 66-class table of the seeds, without Go 1.16's 24-byte class, so that every class of 16
//! bytes or more is a multiple of 16 and therefore 16-byte aligned, as C's `malloc`
//! promises). Everything else — objects per span, the two lookup tables, batch sizes,
//! alignments, the divide magic — is computed here by `const fn` at compile time, and the
//! tests re-run Go's generator (`mksizeclasses.go`'s algorithm) and check that it yields
//! exactly this table.
//!
//! Go's rule for pages per span: the fewest pages whose tail (the bytes left over after
//! cutting the span into objects) is at most 1/8 of the span; then each size is raised to
//! the largest that still fits the same number of objects in those pages.

/// log2 of the page size.
pub const PAGE_SHIFT: usize = 13;
/// The unit in which mheap manages memory.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// The largest size served by a size class; larger requests are whole-page spans.
pub const MAX_SMALL_SIZE: usize = 32768;
/// Number of classes including class 0, which stands for "large".
pub const NUM_CLASSES: usize = 67;

/// The granularity of the size-to-class table.
const SIZE_STEP: usize = 8;

// Do not edit by hand: CLASS_SIZE and CLASS_NPAGES are the output of Go's algorithm,
// checked by `table_matches_go_generator`.

/// Object size of each class, in bytes (class 0: large objects, no fixed size).
pub const CLASS_SIZE: [u32; NUM_CLASSES] = [
    0, 8, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352,
    384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
    2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];

/// Go's pages-per-span rule (used by the generator in the tests): the fewest pages whose tail waste is at most 1/8 of the span.
#[cfg(test)]
pub const fn npages_for(size: usize) -> usize {
    let mut alloc = PAGE_SIZE;
    while alloc % size > alloc / 8 {
        alloc += PAGE_SIZE;
    }
    alloc / PAGE_SIZE
}

/// Pages per span of each class, as Go's generator assigns them (checked in the tests:
/// a class whose size was raised to fill its span keeps the page count of the size it
/// started from, e.g. 1792 bytes in 2 pages).
pub const CLASS_NPAGES: [u8; NUM_CLASSES] = [
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2, 9, 7, 5, 8, 3,
    10, 7, 4,
];

const fn gen_nelems() -> [u16; NUM_CLASSES] {
    let mut t = [0u16; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        t[c] = (CLASS_NPAGES[c] as usize * PAGE_SIZE / CLASS_SIZE[c] as usize) as u16;
        c += 1;
    }
    t
}

/// Objects per span of each class.
pub const CLASS_NELEMS: [u16; NUM_CLASSES] = gen_nelems();

/// The class of the 8-byte objects, the only class that is not 16-byte aligned.
pub const CLASS_8: usize = 1;
/// The smallest class C's `malloc` uses: 16 bytes.
pub const CLASS_16: usize = 2;
const _: () = assert!(CLASS_SIZE[CLASS_8] == 8 && CLASS_SIZE[CLASS_16] == 16);

/// The smallest class of at least `size` bytes, from class `first` on, for every size
/// step: the body of both lookup tables.
const fn gen_size_to_class(first: usize) -> [u8; MAX_SMALL_SIZE / SIZE_STEP + 1] {
    let mut t = [0u8; MAX_SMALL_SIZE / SIZE_STEP + 1];
    let mut c = first;
    let mut i = 0;
    while i < t.len() {
        let size = i * SIZE_STEP;
        while (CLASS_SIZE[c] as usize) < size {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
}

/// Class for sizes 0..=32768, indexed by `(size + 7) / 8`, for the C entry points: one
/// table of 4 KiB, so that the lookup is an add, a shift and a load for every small size
/// (every class size is a multiple of 8, so rounding up to 8 never changes the class).
/// Sizes 0..=16 all get the 16-byte class: glibc on x86-64 returns memory aligned to
/// `alignof(max_align_t)` = 16 for every request, and programs built against it rely on
/// that, so C's `malloc` never uses the 8-byte class.
pub const SIZE_TO_CLASS: [u8; MAX_SMALL_SIZE / SIZE_STEP + 1] = gen_size_to_class(CLASS_16);

/// `SIZE_TO_CLASS` for callers that state the alignment they need (Rust's `Layout`):
/// sizes up to 8 get the 8-byte class, every other size the same class. A second table
/// rather than a test of the size, so that this lookup too is a load.
pub const SIZE_TO_CLASS_8: [u8; MAX_SMALL_SIZE / SIZE_STEP + 1] = gen_size_to_class(CLASS_8);

/// `table[(size + 7) / 8]`.
// (size + 7) / 8 is an add and a shift, where div_ceil adds a compare.
#[allow(clippy::manual_div_ceil)]
#[inline(always)]
fn lookup(table: &[u8; MAX_SMALL_SIZE / SIZE_STEP + 1], size: usize) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE);
    // SAFETY: the index is in range for size <= MAX_SMALL_SIZE, which every caller checks
    // first (the tests run every size through here with debug assertions on).
    unsafe { *table.get_unchecked((size + SIZE_STEP - 1) / SIZE_STEP) as usize }
}

/// The class of a request of `size` bytes from C (`malloc`, `calloc`, `realloc`, sized
/// frees, C++ `operator new`), `size <= MAX_SMALL_SIZE`: 16-byte aligned whatever the
/// size. Sizes 0..=16 get class 2 (malloc(0) returns a unique object).
#[inline(always)]
pub fn size_to_class(size: usize) -> usize {
    lookup(&SIZE_TO_CLASS, size)
}

/// The class of a request of `size` bytes that needs at most 8-byte alignment (a Rust
/// `Layout` with `align() <= 8`), `size <= MAX_SMALL_SIZE`: class 1 for sizes 0..=8,
/// `size_to_class(size)` above.
#[inline(always)]
pub fn size_to_class_8(size: usize) -> usize {
    lookup(&SIZE_TO_CLASS_8, size)
}

/// The bytes a batch aims at. Far smaller than tcmalloc's 64 KiB: a class in steady use
/// between threads keeps about three batches alive (the freeing thread's list, mcentral's
/// ready batches, the allocating thread's list), so a rarely used class costs a few
/// batches of memory. `prodcons` (about 50 classes in use) peaked at 12.8 MiB with 64 KiB
/// batches, 3.6 MiB with 16 KiB and 3.0 MiB with 4 KiB, its time within the noise each
/// time. The small classes stay at `BATCH_MAX_OBJECTS`.
const BATCH_TARGET_BYTES: usize = 4096;
/// The most objects in a batch.
const BATCH_MAX_OBJECTS: usize = 32;

const fn gen_batch() -> [u16; NUM_CLASSES] {
    let mut t = [0u16; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        // As tcmalloc sizes its transfers, with our own bounds: a fixed number of bytes,
        // between 2 objects and BATCH_MAX_OBJECTS.
        let mut n = BATCH_TARGET_BYTES / CLASS_SIZE[c] as usize;
        if n < 2 {
            n = 2;
        }
        if n > BATCH_MAX_OBJECTS {
            n = BATCH_MAX_OBJECTS;
        }
        t[c] = n as u16;
        c += 1;
    }
    t
}

/// Objects moved at once between an mcache and mcentral.
pub const CLASS_BATCH: [u16; NUM_CLASSES] = gen_batch();

const fn gen_align() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        let size = CLASS_SIZE[c];
        // Spans start on a page boundary, so object i sits at a multiple of the largest
        // power of two dividing the size, capped by the page size.
        let mut a = size & size.wrapping_neg();
        if a > PAGE_SIZE as u32 {
            a = PAGE_SIZE as u32;
        }
        t[c] = a;
        c += 1;
    }
    t
}

/// The alignment every object of the class has.
pub const CLASS_ALIGN: [u32; NUM_CLASSES] = gen_align();

const fn gen_div_magic() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        t[c] = (u32::MAX / CLASS_SIZE[c]).wrapping_add(1);
        c += 1;
    }
    t
}

/// `offset / size` is `(offset * CLASS_DIV_MAGIC) >> 32` for every offset inside a span
/// (Go's `divMagic`; checked exhaustively in the tests).
pub const CLASS_DIV_MAGIC: [u32; NUM_CLASSES] = gen_div_magic();

const fn gen_offset_check() -> [[u64; 2]; NUM_CLASSES] {
    let mut t = [[0u64; 2]; NUM_CLASSES];
    let mut c = 1;
    while c < NUM_CLASSES {
        let m = CLASS_DIV_MAGIC[c] as u64;
        // The error of the magic number: size × M − 2³², below size.
        let e = CLASS_SIZE[c] as u64 * m - (1 << 32);
        let limit = if e == 0 {
            // A power of two: multiples map to 0, and the span has no tail.
            1
        } else {
            CLASS_NELEMS[c] as u64 * e
        };
        t[c][0] = m | limit << 32;
        c += 1;
    }
    t
}

/// Per class, for `is_object_offset` in one load: `M = CLASS_DIV_MAGIC` in the low half and
/// the bound on `offset × M mod 2³²` for an object's start in the high half. An entry is
/// 16 bytes (the second word unused), as a thread cache's list is, so that `free` finds
/// both at the byte offset `class × 16` that the page-info word holds.
pub static CLASS_OFFSET_CHECK: [[u64; 2]; NUM_CLASSES] = gen_offset_check();

/// Whether byte `offset` of a span of class `class` starts an object, with one multiply
/// and one compare. With `M = CLASS_DIV_MAGIC[class] = ⌈2³²/size⌉` and `e = size × M − 2³²`
/// (`0 ≤ e < size`), `x = offset × M mod 2³²` is:
/// - `k × e` when `offset = k × size` (for every offset in our spans `k × e` stays below
///   2³²), so the k-th object's start gives `k × e`, and the starts of the `nelems` objects
///   are exactly the multiples below `nelems × e`, which keeps out the one multiple that a
///   span's tail can hold;
/// - at least `M` otherwise (`offset × (M − 2³²/size) < offset` stays below `2³²/size`),
///   and `M > nelems × e` because `nelems × e < nelems × size ≤ 80 KiB < 2³²/32768 ≤ M`.
///
/// When `e = 0` (sizes that are powers of two, whose spans have no tail), the starts are
/// the offsets with `x = 0`. Both cases are checked exhaustively in the tests.
#[cfg(test)]
#[inline(always)]
pub fn is_object_offset(class: usize, offset: usize) -> bool {
    debug_assert!(class > 0 && class < NUM_CLASSES);
    is_object_offset_at(class * 16, offset)
}

/// `is_object_offset(slot / 16, offset)`, for the caller that has `class × 16` at hand
/// (the page-info word's class bits, see `pagemap::INFO_CLASS_SHIFT`).
#[inline(always)]
pub fn is_object_offset_at(slot: usize, offset: usize) -> bool {
    debug_assert!(slot.is_multiple_of(16) && slot / 16 < NUM_CLASSES);
    // SAFETY: slot = class × 16 with class < NUM_CLASSES: the first word of the class's
    // 16-byte entry.
    let check = unsafe { *((CLASS_OFFSET_CHECK.as_ptr() as *const u8).add(slot) as *const u64) };
    (offset as u32).wrapping_mul(check as u32) < (check >> 32) as u32
}

/// Index of the object at byte `offset` of a span of class `class`.
#[inline(always)]
pub fn object_index(class: usize, offset: usize) -> usize {
    ((offset as u64 * CLASS_DIV_MAGIC[class] as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `mksizeclasses.go` algorithm, with alignment 16 from 16 bytes on (the rule
    /// that yields the 66-class table).
    fn go_generator() -> Vec<(usize, usize)> {
        let mut classes: Vec<(usize, usize)> = vec![(0, 0)];
        let mut align = 8;
        let mut size = align;
        while size <= MAX_SMALL_SIZE {
            if size.is_power_of_two() {
                if size >= 2048 {
                    align = 256;
                } else if size >= 128 {
                    align = size / 8;
                } else if size >= 16 {
                    align = 16;
                }
            }
            let npages = npages_for(size);
            let alloc = npages * PAGE_SIZE;
            let last = *classes.last().unwrap();
            if classes.len() > 1 && npages == last.1 && alloc / size == alloc / last.0 {
                classes.last_mut().unwrap().0 = size;
            } else {
                classes.push((size, npages));
            }
            size += align;
        }
        // Grow each size to the largest that fits the same number of objects in the span.
        for c in classes.iter_mut().skip(1) {
            let psize = c.1 * PAGE_SIZE;
            let new_size = (psize / (psize / c.0)) & !(128 - 1);
            if new_size > c.0 {
                c.0 = new_size;
            }
        }
        classes
    }

    #[test]
    fn table_matches_go_generator() {
        let gen = go_generator();
        assert_eq!(gen.len(), NUM_CLASSES);
        for (c, &(size, npages)) in gen.iter().enumerate().skip(1) {
            assert_eq!(CLASS_SIZE[c] as usize, size, "class {c} size");
            assert_eq!(CLASS_NPAGES[c] as usize, npages, "class {c} pages");
        }
    }

    #[test]
    fn every_class_is_sound() {
        for c in 1..NUM_CLASSES {
            let size = CLASS_SIZE[c] as usize;
            let span = CLASS_NPAGES[c] as usize * PAGE_SIZE;
            let nelems = CLASS_NELEMS[c] as usize;
            assert!(
                size > CLASS_SIZE[c - 1] as usize,
                "class {c}: sizes increase"
            );
            assert!(size <= span, "class {c}: object fits its span");
            assert_eq!(nelems, span / size, "class {c}: objects per span");
            let tail = span - nelems * size;
            assert!(
                tail <= span / 8,
                "class {c}: tail waste {tail} over 1/8 of {span}"
            );
            let want_align = if size < 16 { 8 } else { 16 };
            assert_eq!(size % want_align, 0, "class {c}: alignment");
            assert!(CLASS_ALIGN[c] as usize >= want_align);
            assert_eq!(size % CLASS_ALIGN[c] as usize, 0);
            assert!(CLASS_BATCH[c] >= 2 && CLASS_BATCH[c] as usize <= BATCH_MAX_OBJECTS);
            let batch_bytes = CLASS_BATCH[c] as usize * size;
            assert!(
                batch_bytes <= (4 << 10usize).max(2 * size),
                "class {c}: a batch of {batch_bytes} bytes"
            );
            // Rounding a request up to its class loses at most Go's bound: its table's
            // "max waste" column stays under 15.6% for the classes of 128 bytes and up.
            let prev = CLASS_SIZE[c - 1] as usize;
            if prev >= 128 {
                let waste = (size - (prev + 1)) as f64 / size as f64;
                assert!(waste < 0.16, "class {c}: rounding waste {waste}");
            }
        }
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, MAX_SMALL_SIZE);
    }

    #[test]
    fn size_to_class_is_smallest_fit() {
        for size in 0..=MAX_SMALL_SIZE {
            // C: the smallest 16-byte aligned class that fits.
            let c = size_to_class(size);
            assert!((CLASS_16..NUM_CLASSES).contains(&c), "size {size}");
            assert!(CLASS_SIZE[c] as usize >= size, "size {size} fits class {c}");
            assert_eq!(
                CLASS_ALIGN[c] % 16,
                0,
                "size {size}: class {c} is 16-aligned"
            );
            assert!(
                c == CLASS_16 || (CLASS_SIZE[c - 1] as usize) < size,
                "size {size}: class {c} is the smallest that fits"
            );
            // Rust: the smallest class that fits, the 8-byte one included; the same as
            // C's above 8 bytes, so that both agree wherever both can be asked.
            let c8 = size_to_class_8(size);
            assert!((CLASS_8..NUM_CLASSES).contains(&c8), "size {size}");
            assert!(
                CLASS_SIZE[c8] as usize >= size,
                "size {size} fits class {c8}"
            );
            assert!(
                c8 == CLASS_8 || (CLASS_SIZE[c8 - 1] as usize) < size,
                "size {size}: class {c8} is the smallest that fits"
            );
            assert_eq!(c8 == CLASS_8, size <= 8, "size {size}");
            if size > 8 {
                assert_eq!(c, c8, "size {size}");
            }
        }
    }

    #[test]
    fn object_offset_test_is_exact() {
        for c in 1..NUM_CLASSES {
            let size = CLASS_SIZE[c] as usize;
            let span = CLASS_NPAGES[c] as usize * PAGE_SIZE;
            let used = CLASS_NELEMS[c] as usize * size;
            for off in 0..span {
                let want = off % size == 0 && off < used;
                assert_eq!(is_object_offset(c, off), want, "class {c} offset {off}");
            }
        }
    }

    #[test]
    fn div_magic_is_exact() {
        for c in 1..NUM_CLASSES {
            let size = CLASS_SIZE[c] as usize;
            let span = CLASS_NPAGES[c] as usize * PAGE_SIZE;
            for off in 0..span {
                assert_eq!(object_index(c, off), off / size, "class {c} offset {off}");
            }
        }
    }
}
