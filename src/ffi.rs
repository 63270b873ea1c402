//! The C ABI: the malloc family under its libc names and under the `goalloc_` prefix.
//!
//! With the `c-api` feature (on by default) the libc names are exported, so
//! `libgoalloc.so` replaces the C library's allocator when preloaded or linked. The
//! `goalloc_*` names are always exported and declared in `include/goalloc.h`, for programs
//! that link goalloc beside another malloc.
//!
//! Every exported function has an address of its own: each sits in a section of its own,
//! `.text.<name>` (the name `-ffunction-sections` gives it anyway), because LLVM merges
//! functions whose code is the same into aliases of one address only within one section.
//! Without that, `malloc` and `goalloc_malloc`, or `operator delete` and `operator
//! delete[]`, would share an address, and tools that know functions by address cannot
//! tell them apart: valgrind's memcheck, which replaces the allocation functions of
//! every library by name, then took every `delete` of a linked C++ program for a
//! `delete[]` and reported thousands of mismatched frees. Each entry point also passes
//! its own name to what it reports.
//!
//! Here C's conventions are applied to the Rust API: `errno` is set to `ENOMEM` when an
//! allocation fails and to `EINVAL` for a bad alignment; `free` keeps `errno`;
//! `posix_memalign` returns its error, and sets `errno` too for `ENOMEM` (not for
//! `EINVAL`), as glibc's does.

use core::ffi::{c_char, c_void};
use core::ptr;

#[inline]
fn set_errno(e: i32) {
    errno::set_errno(errno::Errno(e));
}

#[inline]
fn enomem_if_null(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p as *mut c_void
}

/// `malloc(3)`.
///
/// # Safety
/// None: any arguments may be passed, from any thread (the result is raw memory).
#[no_mangle]
#[link_section = ".text.goalloc_malloc"]
pub unsafe extern "C" fn goalloc_malloc(size: usize) -> *mut c_void {
    // SAFETY: malloc's contract asks nothing of the caller.
    unsafe { malloc_inline(size) }
}

/// `malloc` for the C entry points: the size class, a pop from this thread's list, and
/// otherwise a tail call to the slow path, which also sets `errno`.
#[inline(always)]
unsafe fn malloc_inline(size: usize) -> *mut c_void {
    if size <= crate::sizeclass::MAX_SMALL_SIZE {
        let p = crate::mcache::pop(crate::sizeclass::size_to_class(size));
        if !p.is_null() {
            return p as *mut c_void;
        }
    }
    // SAFETY: malloc's contract asks nothing of the caller.
    unsafe { malloc_slow(size) }
}

#[cold]
#[inline(never)]
unsafe fn malloc_slow(size: usize) -> *mut c_void {
    // SAFETY: malloc's contract asks nothing of the caller.
    enomem_if_null(unsafe { crate::malloc(size) })
}

/// `free(3)`.
///
/// # Safety
/// `p` is null or a live object of this allocator, not used again.
#[no_mangle]
#[link_section = ".text.goalloc_free"]
pub unsafe extern "C" fn goalloc_free(p: *mut c_void) {
    // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
    unsafe { crate::free_as(p as *mut u8, "goalloc_free()") }
}

/// `calloc(3)`.
///
/// # Safety
/// None: any arguments may be passed, from any thread (the result is raw memory).
#[no_mangle]
#[link_section = ".text.goalloc_calloc"]
pub unsafe extern "C" fn goalloc_calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: calloc asks nothing of the caller.
    enomem_if_null(unsafe { crate::calloc(n, size) })
}

/// `realloc(3)`; `realloc(p, 0)` frees `p` and returns NULL, as glibc does.
///
/// # Safety
/// `p` is null or a live object of this allocator, not used again after a non-null
/// result.
#[no_mangle]
#[link_section = ".text.goalloc_realloc"]
pub unsafe extern "C" fn goalloc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as realloc(3) requires, `p` is null or a live object of ours.
    unsafe { realloc_as(p, size, "goalloc_realloc()") }
}

/// `realloc` with `errno`, naming `call` in reports.
#[inline(always)]
unsafe fn realloc_as(p: *mut c_void, size: usize, call: &'static str) -> *mut c_void {
    // SAFETY: the caller passes null or a live object of ours (realloc's contract).
    let q = unsafe { crate::realloc_as(p as *mut u8, size, call) };
    if q.is_null() && (size != 0 || p.is_null()) {
        set_errno(libc::ENOMEM);
    }
    q as *mut c_void
}

/// `reallocarray(3)`: `realloc(p, n * size)` with the product checked for overflow.
///
/// # Safety
/// As `goalloc_realloc`.
#[no_mangle]
#[link_section = ".text.goalloc_reallocarray"]
pub unsafe extern "C" fn goalloc_reallocarray(
    p: *mut c_void,
    n: usize,
    size: usize,
) -> *mut c_void {
    // SAFETY: as reallocarray(3) requires, `p` is null or a live object of ours.
    unsafe { reallocarray_as(p, n, size, "goalloc_reallocarray()") }
}

#[inline(always)]
unsafe fn reallocarray_as(
    p: *mut c_void,
    n: usize,
    size: usize,
    call: &'static str,
) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: `p` is null or a live object of ours (the caller's contract).
        Some(total) => unsafe { realloc_as(p, total, call) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `posix_memalign(3)`: `EINVAL` unless `align` is a power of two and a multiple of
/// `sizeof(void *)`, with `errno` left alone; `ENOMEM` when out of memory, also in
/// `errno` (glibc, tcmalloc, jemalloc and mimalloc set it, and programs read it).
///
/// # Safety
/// `out` is valid for writing a pointer.
#[no_mangle]
#[link_section = ".text.goalloc_posix_memalign"]
pub unsafe extern "C" fn goalloc_posix_memalign(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    // SAFETY: aligned_alloc asks nothing of the caller; the caller of posix_memalign passes
    // an `out` valid for a write.
    unsafe {
        let p = crate::aligned_alloc(align, size);
        if p.is_null() {
            set_errno(libc::ENOMEM);
            return libc::ENOMEM;
        }
        *out = p as *mut c_void;
    }
    0
}

/// `aligned_alloc(3)`: NULL with `EINVAL` unless `align` is a power of two.
///
/// # Safety
/// None: any arguments may be passed, from any thread (the result is raw memory).
#[no_mangle]
#[link_section = ".text.goalloc_aligned_alloc"]
pub unsafe extern "C" fn goalloc_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: aligned_alloc asks nothing of the caller.
    enomem_if_null(unsafe { crate::aligned_alloc(align, size) })
}

/// `memalign(3)`: as glibc, an alignment that is not a power of two is rounded up to one.
///
/// # Safety
/// None: any arguments may be passed, from any thread (the result is raw memory).
#[no_mangle]
#[link_section = ".text.goalloc_memalign"]
pub unsafe extern "C" fn goalloc_memalign(align: usize, size: usize) -> *mut c_void {
    let Some(align) = align.max(1).checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    // SAFETY: aligned_alloc asks nothing of the caller.
    enomem_if_null(unsafe { crate::aligned_alloc(align, size) })
}

/// `valloc(3)`: aligned to the OS page.
///
/// # Safety
/// None: any arguments may be passed, from any thread (the result is raw memory).
#[no_mangle]
#[link_section = ".text.goalloc_valloc"]
pub unsafe extern "C" fn goalloc_valloc(size: usize) -> *mut c_void {
    // SAFETY: aligned_alloc asks nothing of the caller.
    enomem_if_null(unsafe { crate::aligned_alloc(os_page_size(), size) })
}

/// `pvalloc(3)`: page-aligned, size rounded up to whole OS pages.
///
/// # Safety
/// None: any arguments may be passed, from any thread (the result is raw memory).
#[no_mangle]
#[link_section = ".text.goalloc_pvalloc"]
pub unsafe extern "C" fn goalloc_pvalloc(size: usize) -> *mut c_void {
    let page = os_page_size();
    let Some(rounded) = size.max(1).checked_next_multiple_of(page) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: aligned_alloc asks nothing of the caller.
    enomem_if_null(unsafe { crate::aligned_alloc(page, rounded) })
}

fn os_page_size() -> usize {
    crate::os::page_size()
}

/// `malloc_usable_size(3)`: 0 for NULL.
///
/// # Safety
/// `p` is null or a live object of this allocator.
#[no_mangle]
#[link_section = ".text.goalloc_usable_size"]
pub unsafe extern "C" fn goalloc_usable_size(p: *const c_void) -> usize {
    // SAFETY: as malloc_usable_size(3) requires, `p` is null or a live object of ours.
    unsafe { crate::usable_size_as(p as *const u8, "goalloc_usable_size()") }
}

/// C23 `free_sized`: `size` is what was passed to `malloc`/`calloc`/`realloc`.
///
/// # Safety
/// `p` is null or a live object of this allocator of `size` bytes, not used again.
#[no_mangle]
#[link_section = ".text.goalloc_free_sized"]
pub unsafe extern "C" fn goalloc_free_sized(p: *mut c_void, size: usize) {
    // SAFETY: as free_sized requires, `p` is null or a live object of `size` bytes.
    unsafe { crate::free_sized_as(p as *mut u8, size, "goalloc_free_sized()") }
}

/// C23 `free_aligned_sized`: for objects from `aligned_alloc(align, size)`.
///
/// # Safety
/// `p` is null or a live object from `aligned_alloc(align, size)`, not used again.
#[no_mangle]
#[link_section = ".text.goalloc_free_aligned_sized"]
pub unsafe extern "C" fn goalloc_free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
    // SAFETY: as free_aligned_sized requires, `p` is null or from aligned_alloc(align, size).
    unsafe {
        crate::free_aligned_sized_as(p as *mut u8, align, size, "goalloc_free_aligned_sized()")
    }
}

/// Returns every free page to the OS now; the number of bytes released.
#[no_mangle]
#[link_section = ".text.goalloc_release_all"]
pub extern "C" fn goalloc_release_all() -> usize {
    crate::release_all()
}

/// Fills `out` with the allocator's figures (see `struct goalloc_mem_stats`): exact
/// whenever no other thread is inside the allocator, with the objects that thread caches
/// hold counted as free.
///
/// # Safety
/// `out` is null or valid for writing a `goalloc_mem_stats`.
#[no_mangle]
#[link_section = ".text.goalloc_read_mem_stats"]
pub unsafe extern "C" fn goalloc_read_mem_stats(out: *mut crate::stats::goalloc_mem_stats) {
    if !out.is_null() {
        // SAFETY: `out` is not null, and the caller passes one valid for a write.
        unsafe { *out = crate::stats::read() };
    }
}

/// Writes the statistics report of this process now to `out`, or to stderr when `out` is
/// NULL: a first line naming goalloc's version, the program and its pid, every figure of
/// `struct goalloc_mem_stats` under its field name, peak RSS and a row per size class in
/// use. `opts` NULL, `""` or `"text"` gives the text report, `"json"` the same as one JSON
/// object on one line (case does not matter). The report is formatted without allocating
/// and handed to `out` with one `fwrite` (to stderr with one `write`). Returns 0; -1 with
/// `errno` `EINVAL` for other `opts`, -1 when the write failed.
///
/// # Safety
/// `out` is null or an open stream; `opts` is null or a NUL-terminated string.
#[no_mangle]
#[link_section = ".text.goalloc_stats_print"]
pub unsafe extern "C" fn goalloc_stats_print(out: *mut libc::FILE, opts: *const c_char) -> i32 {
    let opts = if opts.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller passes a NUL-terminated string.
        unsafe { core::ffi::CStr::from_ptr(opts) }.to_bytes()
    };
    let Some(format) = crate::report::Format::parse(opts) else {
        set_errno(libc::EINVAL);
        return -1;
    };
    // SAFETY: the caller passes null or an open stream.
    if unsafe { crate::report::print_to_stream(out, format) } {
        0
    } else {
        -1
    }
}

/// Writes the heap profile (see `GOALLOC_PROFILE`) to `path`, replacing the file; `%p`
/// in the path becomes the process id. A null `path` means `GOALLOC_PROFILE`'s. Returns
/// 0, or -1 when profiling is off or the file could not be written.
///
/// # Safety
/// `path` is null or a NUL-terminated string.
#[no_mangle]
#[link_section = ".text.goalloc_profile_dump"]
pub unsafe extern "C" fn goalloc_profile_dump(path: *const core::ffi::c_char) -> i32 {
    let ok = if path.is_null() {
        crate::profile::dump_default()
    } else {
        // SAFETY: the caller passes a NUL-terminated path.
        crate::profile::dump_bytes(unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes())
    };
    if ok {
        0
    } else {
        -1
    }
}

/// goalloc's version, `"MAJOR.MINOR.PATCH"` as in its `Cargo.toml`; the header's
/// `GOALLOC_VERSION_*` macros give the version it was compiled against.
#[no_mangle]
#[link_section = ".text.goalloc_version"]
pub extern "C" fn goalloc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The libc names, exported only with the `c-api` feature.
///
/// # Safety
/// Each function has the contract of its `goalloc_` twin, which is C's.
#[cfg(feature = "c-api")]
mod libc_names {
    use super::*;

    #[no_mangle]
    #[link_section = ".text.malloc"]
    pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
        // SAFETY: malloc's contract asks nothing of the caller.
        unsafe { malloc_inline(size) }
    }

    #[no_mangle]
    #[link_section = ".text.free"]
    pub unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, "free()") }
    }

    #[no_mangle]
    #[link_section = ".text.cfree"]
    pub unsafe extern "C" fn cfree(p: *mut c_void) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, "cfree()") }
    }

    #[no_mangle]
    #[link_section = ".text.calloc"]
    pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
        // SAFETY: calloc's contract asks nothing of the caller.
        unsafe { goalloc_calloc(n, size) }
    }

    #[no_mangle]
    #[link_section = ".text.realloc"]
    pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: as realloc(3) requires, `p` is null or a live object of ours.
        unsafe { realloc_as(p, size, "realloc()") }
    }

    #[no_mangle]
    #[link_section = ".text.reallocarray"]
    pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
        // SAFETY: as reallocarray(3) requires, `p` is null or a live object of ours.
        unsafe { reallocarray_as(p, n, size, "reallocarray()") }
    }

    #[no_mangle]
    #[link_section = ".text.posix_memalign"]
    pub unsafe extern "C" fn posix_memalign(
        out: *mut *mut c_void,
        align: usize,
        size: usize,
    ) -> i32 {
        // SAFETY: as posix_memalign(3) requires, `out` is valid for a write.
        unsafe { goalloc_posix_memalign(out, align, size) }
    }

    #[no_mangle]
    #[link_section = ".text.aligned_alloc"]
    pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
        // SAFETY: the aligned allocations ask nothing of the caller.
        unsafe { goalloc_aligned_alloc(align, size) }
    }

    #[no_mangle]
    #[link_section = ".text.memalign"]
    pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
        // SAFETY: the aligned allocations ask nothing of the caller.
        unsafe { goalloc_memalign(align, size) }
    }

    #[no_mangle]
    #[link_section = ".text.valloc"]
    pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
        // SAFETY: the aligned allocations ask nothing of the caller.
        unsafe { goalloc_valloc(size) }
    }

    #[no_mangle]
    #[link_section = ".text.pvalloc"]
    pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
        // SAFETY: the aligned allocations ask nothing of the caller.
        unsafe { goalloc_pvalloc(size) }
    }

    #[no_mangle]
    #[link_section = ".text.malloc_usable_size"]
    pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
        // SAFETY: as malloc_usable_size(3) requires, `p` is null or a live object of ours.
        unsafe { crate::usable_size_as(p as *const u8, "malloc_usable_size()") }
    }

    #[no_mangle]
    #[link_section = ".text.free_sized"]
    pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
        // SAFETY: as free_sized requires, `p` is null or a live object of `size` bytes.
        unsafe { crate::free_sized_as(p as *mut u8, size, "free_sized()") }
    }

    #[no_mangle]
    #[link_section = ".text.free_aligned_sized"]
    pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, align: usize, size: usize) {
        // SAFETY: as free_aligned_sized requires, `p` is null or from aligned_alloc(align, size).
        unsafe { crate::free_aligned_sized_as(p as *mut u8, align, size, "free_aligned_sized()") }
    }

    // glibc's own names for its malloc family (GLIBC_2.2.5), which some programs and
    // runtimes call directly: they are goalloc's too, as in tcmalloc and mimalloc, so
    // that what they allocate can go to `free` and back.

    #[no_mangle]
    #[link_section = ".text.__libc_malloc"]
    pub unsafe extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
        // SAFETY: malloc's contract asks nothing of the caller.
        unsafe { malloc_inline(size) }
    }

    #[no_mangle]
    #[link_section = ".text.__libc_calloc"]
    pub unsafe extern "C" fn __libc_calloc(n: usize, size: usize) -> *mut c_void {
        // SAFETY: calloc's contract asks nothing of the caller.
        unsafe { goalloc_calloc(n, size) }
    }

    #[no_mangle]
    #[link_section = ".text.__libc_realloc"]
    pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: as realloc(3) requires, `p` is null or a live object of ours.
        unsafe { realloc_as(p, size, "__libc_realloc()") }
    }

    #[no_mangle]
    #[link_section = ".text.__libc_free"]
    pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, "__libc_free()") }
    }

    #[no_mangle]
    #[link_section = ".text.__libc_memalign"]
    pub unsafe extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
        // SAFETY: the aligned allocations ask nothing of the caller.
        unsafe { goalloc_memalign(align, size) }
    }

    #[no_mangle]
    #[link_section = ".text.__libc_valloc"]
    pub unsafe extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
        // SAFETY: the aligned allocations ask nothing of the caller.
        unsafe { goalloc_valloc(size) }
    }

    #[no_mangle]
    #[link_section = ".text.__libc_pvalloc"]
    pub unsafe extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
        // SAFETY: the aligned allocations ask nothing of the caller.
        unsafe { goalloc_pvalloc(size) }
    }

    /// Releases free memory; returns 1 when something was released (glibc's contract).
    #[no_mangle]
    #[link_section = ".text.malloc_trim"]
    pub extern "C" fn malloc_trim(_pad: usize) -> i32 {
        (crate::release_all() > 0) as i32
    }

    /// Accepted and ignored: glibc's tunables do not apply. Returns 1 (success).
    #[no_mangle]
    #[link_section = ".text.mallopt"]
    pub extern "C" fn mallopt(_param: i32, _value: i32) -> i32 {
        1
    }

    /// glibc's figures from ours: `arena` is what the heap mapped, `uordblks` the bytes
    /// of allocated objects, `fordblks` the rest of the mapped heap, `hblks`/`hblkhd` the
    /// large objects, `keepcost` the free bytes `malloc_trim` would release.
    #[no_mangle]
    #[link_section = ".text.mallinfo2"]
    pub extern "C" fn mallinfo2() -> libc::mallinfo2 {
        let st = crate::stats::read();
        libc::mallinfo2 {
            arena: st.heap_sys as usize,
            ordblks: 0,
            smblks: 0,
            hblks: st.large_objects as usize,
            hblkhd: st.large_bytes as usize,
            usmblks: 0,
            fsmblks: 0,
            uordblks: st.heap_alloc as usize,
            fordblks: st.heap_sys.saturating_sub(st.heap_alloc) as usize,
            keepcost: st.heap_idle.saturating_sub(st.heap_released) as usize,
        }
    }

    #[no_mangle]
    #[link_section = ".text.mallinfo"]
    pub extern "C" fn mallinfo() -> libc::mallinfo {
        let m = mallinfo2();
        let clamp = |v: usize| v.min(i32::MAX as usize) as i32;
        libc::mallinfo {
            arena: clamp(m.arena),
            ordblks: 0,
            smblks: 0,
            hblks: clamp(m.hblks),
            hblkhd: clamp(m.hblkhd),
            usmblks: 0,
            fsmblks: 0,
            uordblks: clamp(m.uordblks),
            fordblks: clamp(m.fordblks),
            keepcost: clamp(m.keepcost),
        }
    }

    /// A readable summary on stderr, as glibc's `malloc_stats`.
    #[no_mangle]
    #[link_section = ".text.malloc_stats"]
    pub extern "C" fn malloc_stats() {
        crate::report::malloc_stats();
    }

    /// The figures as XML in glibc's shape, with one `<size>` element per size class.
    #[no_mangle]
    #[link_section = ".text.malloc_info"]
    pub unsafe extern "C" fn malloc_info(options: i32, stream: *mut libc::FILE) -> i32 {
        if options != 0 || stream.is_null() {
            set_errno(libc::EINVAL);
            return -1;
        }
        // SAFETY: `stream` is not null, and the caller passes an open stream.
        unsafe { crate::report::write_malloc_info(stream) };
        0
    }
}

/// The C++ allocation operators (Itanium ABI names), exported with the `c-api` feature.
///
/// `operator new` that cannot allocate calls the program's new-handler and retries, as the
/// standard requires; without one it throws `std::bad_alloc` through libstdc++'s
/// `std::__throw_bad_alloc`, both found with `dlsym` so that C programs need no libstdc++.
///
/// # Safety
/// The `new` operators ask nothing of their callers; each `delete` takes null or an object
/// of the matching `new`, not used again, and a sized one the size (and alignment) given
/// to that `new`.
#[cfg(feature = "c-api")]
mod cxx {
    use super::*;
    use crate::os;

    type Handler = Option<unsafe extern "C" fn()>;

    fn lookup(name: &core::ffi::CStr) -> *mut c_void {
        // SAFETY: dlsym reads the NUL-terminated name and nothing else of ours.
        unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
    }

    /// One allocation attempt for `new_loop` (`align` is 1 for the forms without
    /// `std::align_val_t`); never unwinds. An aligned new of fewer bytes than its
    /// alignment takes `align` bytes, whose class has that alignment, as
    /// `delete_aligned_sized` assumes.
    unsafe extern "C" fn try_alloc(size: usize, align: usize) -> *mut c_void {
        // SAFETY: malloc and aligned_alloc ask nothing of the caller.
        unsafe {
            if align <= 16 {
                crate::malloc(size.max(align)) as *mut c_void
            } else {
                crate::aligned_alloc(align, size) as *mut c_void
            }
        }
    }

    /// The program's new-handler, or null.
    unsafe extern "C" fn new_handler() -> *mut c_void {
        let get = lookup(c"_ZSt15get_new_handlerv");
        if get.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: the symbol is libstdc++'s `std::get_new_handler()`, a C++ function of
        // no arguments that returns the handler, a plain function pointer or null.
        let handler = unsafe {
            let get: unsafe extern "C" fn() -> Handler = core::mem::transmute(get);
            get()
        };
        match handler {
            Some(h) => h as *mut c_void,
            None => ptr::null_mut(),
        }
    }

    /// libstdc++'s `std::__throw_bad_alloc`, or an abort when there is no C++ runtime.
    unsafe extern "C" fn bad_alloc_thrower() -> *mut c_void {
        let f = lookup(c"_ZSt17__throw_bad_allocv");
        if f.is_null() {
            os::fatal("operator new: out of memory and no C++ runtime to throw std::bad_alloc");
        }
        f
    }

    /// `operator new`'s loop (size, align, nothrow: rdi, rsi, rdx on x86-64; x0, x1, x2 on
    /// aarch64): allocate; on failure call the new-handler and retry; without one return
    /// null (nothrow) or throw `std::bad_alloc`. Written in assembly with call-frame
    /// information because the handler and the throw unwind through it, which a Rust
    /// frame built with `panic = "abort"` would turn into an abort.
    #[cfg(target_arch = "x86_64")]
    #[unsafe(naked)]
    unsafe extern "C" fn new_loop(_size: usize, _align: usize, _nothrow: usize) -> *mut c_void {
        core::arch::naked_asm!(
            ".cfi_startproc",
            "push rbx",
            ".cfi_adjust_cfa_offset 8",
            ".cfi_offset rbx, -16",
            "push r12",
            ".cfi_adjust_cfa_offset 8",
            ".cfi_offset r12, -24",
            "push r13",
            ".cfi_adjust_cfa_offset 8",
            ".cfi_offset r13, -32",
            "mov rbx, rdi",
            "mov r12, rsi",
            "mov r13, rdx",
            "2:",
            "mov rdi, rbx",
            "mov rsi, r12",
            "call {try_alloc}",
            "test rax, rax",
            "jnz 4f",
            "call {new_handler}",
            "test rax, rax",
            "jz 3f",
            "call rax",
            "jmp 2b",
            "3:",
            "test r13, r13",
            "jnz 4f",
            "call {thrower}",
            "call rax",
            "4:",
            "pop r13",
            ".cfi_adjust_cfa_offset -8",
            "pop r12",
            ".cfi_adjust_cfa_offset -8",
            "pop rbx",
            ".cfi_adjust_cfa_offset -8",
            "ret",
            ".cfi_endproc",
            try_alloc = sym try_alloc,
            new_handler = sym new_handler,
            thrower = sym bad_alloc_thrower,
        )
    }

    /// `new_loop` for aarch64: size, align and nothrow live in x19..x21 across the calls.
    #[cfg(target_arch = "aarch64")]
    #[unsafe(naked)]
    unsafe extern "C" fn new_loop(_size: usize, _align: usize, _nothrow: usize) -> *mut c_void {
        core::arch::naked_asm!(
            ".cfi_startproc",
            "stp x29, x30, [sp, #-48]!",
            ".cfi_def_cfa_offset 48",
            ".cfi_offset x30, -40",
            ".cfi_offset x29, -48",
            "mov x29, sp",
            "stp x19, x20, [sp, #16]",
            ".cfi_offset x20, -24",
            ".cfi_offset x19, -32",
            "str x21, [sp, #32]",
            ".cfi_offset x21, -16",
            "mov x19, x0",
            "mov x20, x1",
            "mov x21, x2",
            "2:",
            "mov x0, x19",
            "mov x1, x20",
            "bl {try_alloc}",
            "cbnz x0, 4f",
            "bl {new_handler}",
            "cbz x0, 3f",
            "blr x0",
            "b 2b",
            "3:",
            "cbnz x21, 4f",
            "bl {thrower}",
            "blr x0",
            "4:",
            "ldr x21, [sp, #32]",
            "ldp x19, x20, [sp, #16]",
            "ldp x29, x30, [sp], #48",
            ".cfi_def_cfa_offset 0",
            ".cfi_restore x30",
            ".cfi_restore x29",
            ".cfi_restore x21",
            ".cfi_restore x20",
            ".cfi_restore x19",
            "ret",
            ".cfi_endproc",
            try_alloc = sym try_alloc,
            new_handler = sym new_handler,
            thrower = sym bad_alloc_thrower,
        )
    }

    /// The sized delete of an object from `try_alloc(size, align)`, naming `call`.
    #[inline(always)]
    unsafe fn delete_aligned_sized(p: *mut c_void, size: usize, align: usize, call: &'static str) {
        // SAFETY: the caller passes null or a live object of `try_alloc(size, align)`,
        // which took `size.max(align)` bytes from malloc for small alignments.
        unsafe {
            if align <= 16 {
                crate::free_sized_as(p as *mut u8, size.max(align), call)
            } else {
                crate::free_aligned_sized_as(p as *mut u8, align, size, call)
            }
        }
    }

    /// Declares exported `operator new` variants that load `align` and `nothrow` (rsi and
    /// rdx on x86-64, x1 and x2 on aarch64) and jump to `new_loop`, leaving no frame of
    /// their own.
    macro_rules! operator_new {
        ($($name:ident($($arg:ident),*) => [$($x86:literal),*] [$($a64:literal),*];)*) => {$(
            #[unsafe(naked)]
            #[no_mangle]
            pub unsafe extern "C" fn $name($($arg: usize),*) -> *mut c_void {
                #[cfg(target_arch = "x86_64")]
                core::arch::naked_asm!($($x86,)* "jmp {l}", l = sym new_loop);
                #[cfg(target_arch = "aarch64")]
                core::arch::naked_asm!($($a64,)* "b {l}", l = sym new_loop);
            }
        )*};
    }

    operator_new! {
        // new(size), new[](size)
        _Znwm(size) => ["mov esi, 1", "xor edx, edx"] ["mov x1, #1", "mov x2, #0"];
        _Znam(size) => ["mov esi, 1", "xor edx, edx"] ["mov x1, #1", "mov x2, #0"];
        // new(size, nothrow)
        _ZnwmRKSt9nothrow_t(size, nothrow) =>
            ["mov esi, 1", "mov edx, 1"] ["mov x1, #1", "mov x2, #1"];
        _ZnamRKSt9nothrow_t(size, nothrow) =>
            ["mov esi, 1", "mov edx, 1"] ["mov x1, #1", "mov x2, #1"];
        // new(size, align)
        _ZnwmSt11align_val_t(size, align) => ["xor edx, edx"] ["mov x2, #0"];
        _ZnamSt11align_val_t(size, align) => ["xor edx, edx"] ["mov x2, #0"];
        // new(size, align, nothrow): the third argument is the nothrow_t reference, never
        // null.
        _ZnwmSt11align_val_tRKSt9nothrow_t(size, align, nothrow) => [] [];
        _ZnamSt11align_val_tRKSt9nothrow_t(size, align, nothrow) => [] [];
    }

    /// The names the delete operators report bad pointers (and wrong sizes) under.
    const DELETE: &str = "operator delete";
    const DELETE_ARRAY: &str = "operator delete[]";

    // operator delete: plain, array, nothrow
    #[no_mangle]
    #[link_section = ".text._ZdlPv"]
    pub unsafe extern "C" fn _ZdlPv(p: *mut c_void) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdaPv"]
    pub unsafe extern "C" fn _ZdaPv(p: *mut c_void) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE_ARRAY) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdlPvRKSt9nothrow_t"]
    pub unsafe extern "C" fn _ZdlPvRKSt9nothrow_t(p: *mut c_void, _: *const c_void) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdaPvRKSt9nothrow_t"]
    pub unsafe extern "C" fn _ZdaPvRKSt9nothrow_t(p: *mut c_void, _: *const c_void) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE_ARRAY) }
    }
    // sized delete: the size finds the class without the page map
    #[no_mangle]
    #[link_section = ".text._ZdlPvm"]
    pub unsafe extern "C" fn _ZdlPvm(p: *mut c_void, size: usize) {
        // SAFETY: as free_sized requires, `p` is null or a live object of `size` bytes.
        unsafe { crate::free_sized_as(p as *mut u8, size, DELETE) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdaPvm"]
    pub unsafe extern "C" fn _ZdaPvm(p: *mut c_void, size: usize) {
        // SAFETY: as free_sized requires, `p` is null or a live object of `size` bytes.
        unsafe { crate::free_sized_as(p as *mut u8, size, DELETE_ARRAY) }
    }
    // aligned delete
    #[no_mangle]
    #[link_section = ".text._ZdlPvSt11align_val_t"]
    pub unsafe extern "C" fn _ZdlPvSt11align_val_t(p: *mut c_void, _align: usize) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdaPvSt11align_val_t"]
    pub unsafe extern "C" fn _ZdaPvSt11align_val_t(p: *mut c_void, _align: usize) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE_ARRAY) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdlPvSt11align_val_tRKSt9nothrow_t"]
    pub unsafe extern "C" fn _ZdlPvSt11align_val_tRKSt9nothrow_t(
        p: *mut c_void,
        _align: usize,
        _: *const c_void,
    ) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdaPvSt11align_val_tRKSt9nothrow_t"]
    pub unsafe extern "C" fn _ZdaPvSt11align_val_tRKSt9nothrow_t(
        p: *mut c_void,
        _align: usize,
        _: *const c_void,
    ) {
        // SAFETY: as free(3) requires, `p` is null or a live object of ours, not used again.
        unsafe { crate::free_as(p as *mut u8, DELETE_ARRAY) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdlPvmSt11align_val_t"]
    pub unsafe extern "C" fn _ZdlPvmSt11align_val_t(p: *mut c_void, size: usize, align: usize) {
        // SAFETY: as sized delete requires, `p` is null or from `new` of `size` and `align`.
        unsafe { delete_aligned_sized(p, size, align, DELETE) }
    }
    #[no_mangle]
    #[link_section = ".text._ZdaPvmSt11align_val_t"]
    pub unsafe extern "C" fn _ZdaPvmSt11align_val_t(p: *mut c_void, size: usize, align: usize) {
        // SAFETY: as sized delete requires, `p` is null or from `new` of `size` and `align`.
        unsafe { delete_aligned_sized(p, size, align, DELETE_ARRAY) }
    }
}
