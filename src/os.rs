//! The OS layer: the only module that maps, releases and unmaps memory.
//!
//! Address space moves between four states, as in Go's `mem.go`:
//!
//! ```text
//!   None ──reserve──► Reserved ──map──► Ready ──release──► Released
//!     ▲                   │               ▲                    │
//!     └──────free─────────┴───────────────┴──────used──────────┘
//! ```
//!
//! - **None**: not mapped; touching it faults.
//! - **Reserved**: mapped `PROT_NONE`, costs no memory and no commit charge; ours to map.
//! - **Ready**: readable and writable; costs memory once touched.
//! - **Released**: readable and writable, but its pages went back to the OS with
//!   `madvise`. After `MADV_DONTNEED` they read as zero; after `MADV_FREE` they may still
//!   hold old data until the kernel reclaims them, so only `MADV_DONTNEED` lets the caller
//!   skip zeroing (`release` says which).
//!
//! Every function here keeps `errno` as it found it: they run inside `malloc` and `free`,
//! whose callers may be inspecting `errno`.
//!
//! Under Miri, which maps only whole read-write anonymous regions and unmaps only whole
//! mappings, the transitions keep their meaning for the heap without the system calls:
//! Reserved is an aligned allocation of uninitialised bytes (`posix_memalign`), Ready
//! writes zeros, Released by `DontNeed` writes zeros, and None leaves the range allocated
//! (nothing reuses it; run Miri with `-Zmiri-ignore-leaks`).

use core::ptr;

/// How `release` returns pages to the OS.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReleaseMode {
    /// `MADV_DONTNEED`: RSS drops at once; the pages read as zero afterwards.
    DontNeed,
    /// `MADV_FREE`: the kernel takes the pages when it needs them; cheaper, but RSS drops
    /// only under pressure and the contents are unspecified until then.
    Free,
}

/// Restores `errno` when dropped.
struct ErrnoGuard(errno::Errno);

impl ErrnoGuard {
    fn new() -> ErrnoGuard {
        ErrnoGuard(errno::errno())
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        errno::set_errno(self.0);
    }
}

/// None → Reserved: `size` bytes of address space aligned to `align` (a power of two that
/// is a multiple of the OS page size). `hints` are where we would like it, best first (to
/// keep arenas contiguous, or where there is room when address space is short); they are
/// wishes, not demands. Returns null when the address space is exhausted.
// Under Miri the twin returns first.
#[cfg_attr(miri, allow(unreachable_code))]
pub fn reserve(size: usize, align: usize, hints: &[usize]) -> *mut u8 {
    let _e = ErrnoGuard::new();
    #[cfg(miri)]
    {
        let _ = hints;
        let mut p = ptr::null_mut();
        // SAFETY: p is a valid out-parameter; align is a power of two and a multiple of
        // the pointer size.
        if unsafe { libc::posix_memalign(&mut p, align, size) } != 0 {
            return ptr::null_mut();
        }
        return p as *mut u8;
    }
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    for &hint in hints {
        if hint == 0 || !hint.is_multiple_of(align) {
            continue;
        }
        // SAFETY: mapping fresh anonymous memory without MAP_FIXED cannot clobber anything.
        let p = unsafe { libc::mmap(hint as *mut _, size, libc::PROT_NONE, flags, -1, 0) };
        if p as usize == hint {
            return p as *mut u8;
        }
        if p != libc::MAP_FAILED {
            // SAFETY: p..p+size is the mapping we just made and nothing else uses it.
            unsafe { libc::munmap(p, size) };
        }
    }
    let Some(total) = size.checked_add(align) else {
        return ptr::null_mut();
    };
    // SAFETY: as above; the over-sized mapping is trimmed to the aligned part below.
    let p = unsafe { libc::mmap(ptr::null_mut(), total, libc::PROT_NONE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return reserve_exact(size, align);
    }
    let start = p as usize;
    let aligned = (start + align - 1) & !(align - 1);
    // SAFETY: both trimmed pieces lie inside the mapping made above and are unused.
    unsafe {
        if aligned > start {
            libc::munmap(p, aligned - start);
        }
        let end = aligned + size;
        if start + total > end {
            libc::munmap(end as *mut _, start + total - end);
        }
    }
    aligned as *mut u8
}

/// `reserve` when there is no room for `size + align` bytes (under `RLIMIT_AS`, say): a
/// mapping of exactly `size` bytes, at the aligned address below or above wherever the
/// kernel would put it. Null when neither is free.
#[cold]
fn reserve_exact(size: usize, align: usize) -> *mut u8 {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: mapping fresh anonymous memory without MAP_FIXED cannot clobber anything.
    let p = unsafe { libc::mmap(ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    let start = p as usize;
    if start.is_multiple_of(align) {
        return p as *mut u8;
    }
    // SAFETY: p..p+size is the mapping just made, unused.
    unsafe { libc::munmap(p, size) };
    let down = start & !(align - 1);
    for hint in [down, down + align] {
        // SAFETY: as above; a mapping that is not at the hint is undone at once.
        let q = unsafe { libc::mmap(hint as *mut _, size, libc::PROT_NONE, flags, -1, 0) };
        if q as usize == hint {
            return q as *mut u8;
        }
        if q != libc::MAP_FAILED {
            // SAFETY: q..q+size is the mapping just made, unused.
            unsafe { libc::munmap(q, size) };
        }
    }
    ptr::null_mut()
}

/// Reserved → Ready. Returns false when the OS refuses (out of memory or commit limit);
/// the range then stays Reserved.
///
/// # Safety
/// `v..v+size` is Reserved address space owned by the caller.
// Under Miri the twin returns first.
#[cfg_attr(miri, allow(unreachable_code))]
pub unsafe fn map(v: *mut u8, size: usize) -> bool {
    let _e = ErrnoGuard::new();
    #[cfg(miri)]
    {
        // SAFETY: v..v+size is ours (the contract), inside an allocation of `reserve`.
        unsafe { v.write_bytes(0, size) };
        return true;
    }
    // SAFETY: MAP_FIXED replaces only v..v+size, Reserved address space of the caller's
    // (the contract), which nothing else maps or uses.
    let p = unsafe {
        libc::mmap(
            v as *mut _,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    p != libc::MAP_FAILED
}

/// Ready → Released: the pages' memory goes back to the OS, the range stays usable.
/// Returns true when the pages now read as zero (for `DontNeed`, when the range is whole
/// OS pages).
///
/// Our 8 KiB pages can be smaller than the OS page (16 or 64 KiB on some aarch64
/// kernels). The kernel refuses an unaligned start and rounds the length up into the
/// neighbour's memory, so only the OS pages wholly inside the range are released; the
/// pieces at its edges keep their contents.
///
/// # Safety
/// `v..v+size` is page-aligned Ready memory that no one uses until it is handed out again.
// Under Miri the twin returns first.
#[cfg_attr(miri, allow(unreachable_code))]
pub unsafe fn release(v: *mut u8, size: usize, mode: ReleaseMode) -> bool {
    let _e = ErrnoGuard::new();
    let (start, len) = os_pages_within(v as usize, size, page_size());
    if len == 0 {
        return false;
    }
    let whole = len == size;
    #[cfg(miri)]
    {
        if mode == ReleaseMode::DontNeed {
            // SAFETY: start..start+len lies inside v..v+size, the caller's.
            unsafe { v.add(start - v as usize).write_bytes(0, len) };
            return whole;
        }
        return false;
    }
    let v = start as *mut libc::c_void;
    // SAFETY: start..start+len lies inside v..v+size, Ready memory that no one uses (the
    // contract): dropping or zeroing its contents harms no one.
    unsafe {
        match mode {
            ReleaseMode::DontNeed => {
                libc::madvise(v, len, libc::MADV_DONTNEED);
                whole
            }
            ReleaseMode::Free => {
                if libc::madvise(v, len, libc::MADV_FREE) != 0 {
                    // Kernels before 4.5 lack MADV_FREE.
                    libc::madvise(v, len, libc::MADV_DONTNEED);
                    return whole;
                }
                false
            }
        }
    }
}

/// The OS page size: 4 KiB on x86-64; 4, 16 or 64 KiB on aarch64, as the kernel was built.
pub fn page_size() -> usize {
    // SAFETY: no preconditions; glibc answers from the loader's copy of AT_PAGESZ, without
    // a system call or an allocation.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// The whole OS pages (of `page` bytes, a power of two) inside `v..v+size`, as (start,
/// length); the length is 0 when there are none.
fn os_pages_within(v: usize, size: usize, page: usize) -> (usize, usize) {
    let start = (v + page - 1) & !(page - 1);
    let end = (v + size) & !(page - 1);
    (start, end.saturating_sub(start))
}

/// Released → Ready. Nothing to do on Linux: a released page comes back on first touch.
///
/// # Safety
/// `v..v+size` is Released memory owned by the caller.
#[inline]
pub unsafe fn used(_v: *mut u8, _size: usize) {}

/// Any state → None.
///
/// # Safety
/// `v..v+size` is a mapping owned by the caller that no one will touch again.
pub unsafe fn free(v: *mut u8, size: usize) {
    let _e = ErrnoGuard::new();
    // SAFETY: the caller's mapping, which no one touches again (the contract).
    #[cfg(not(miri))]
    unsafe {
        libc::munmap(v as *mut _, size)
    };
    #[cfg(miri)]
    let _ = (v, size);
}

/// None → Ready, for metadata (spans, arena records): zeroed memory, page-aligned.
/// Returns null when out of memory.
pub fn alloc_metadata(size: usize) -> *mut u8 {
    map_fresh(size, 0)
}

fn map_fresh(size: usize, extra_flags: i32) -> *mut u8 {
    let _e = ErrnoGuard::new();
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: a fresh anonymous mapping cannot clobber anything.
    let p = unsafe { libc::mmap(ptr::null_mut(), size, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p as *mut u8
    }
}

/// Monotonic time in nanoseconds (coarse clock: cheap, a few milliseconds of resolution,
/// which is all the idle-page bookkeeping needs).
pub fn nanotime() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes `parts` as one line to stderr, without allocating.
pub fn write_stderr(parts: &[&[u8]]) {
    let mut buf = [0u8; 512];
    let mut n = 0;
    for part in parts {
        let take = part.len().min(buf.len() - 1 - n);
        buf[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    buf[n] = b'\n';
    n += 1;
    let _e = ErrnoGuard::new();
    // SAFETY: buf[..n] is initialised; a short or failed write to stderr is ignored.
    unsafe { libc::write(2, buf.as_ptr() as *const _, n) };
}

/// Formats `v` as `0x…` hex into `buf`, returning the text.
pub fn fmt_hex(v: usize, buf: &mut [u8; 18]) -> &[u8] {
    buf[0] = b'0';
    buf[1] = b'x';
    let digits = if v == 0 {
        1
    } else {
        (usize::BITS - v.leading_zeros()).div_ceil(4) as usize
    };
    for i in 0..digits {
        let d = (v >> (4 * (digits - 1 - i))) & 0xf;
        buf[2 + i] = b"0123456789abcdef"[d];
    }
    &buf[..2 + digits]
}

/// Formats `v` in decimal into `buf`, returning the text.
pub fn fmt_dec(mut v: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The one way the allocator dies: a line on stderr that starts with `goalloc:`, then abort.
#[cold]
#[inline(never)]
pub fn fatal(msg: &str) -> ! {
    write_stderr(&[b"goalloc: ", msg.as_bytes()]);
    // SAFETY: abort never returns and needs no invariant.
    unsafe { libc::abort() }
}

/// A panic, which is a bug in the allocator: `goalloc: panic: <message> at <file>:<line>`
/// on stderr, then abort. The panic handler of the std-free C library (`cdylib/`).
#[cold]
#[inline(never)]
pub fn fatal_panic(info: &core::panic::PanicInfo) -> ! {
    struct Line {
        buf: [u8; 400],
        len: usize,
    }
    impl core::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let take = s.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
            self.len += take;
            Ok(())
        }
    }
    let mut line = Line {
        buf: [0; 400],
        len: 0,
    };
    let _ = core::fmt::write(&mut line, format_args!("panic: {}", info.message()));
    if let Some(at) = info.location() {
        let _ = core::fmt::write(&mut line, format_args!(" at {}:{}", at.file(), at.line()));
    }
    write_stderr(&[b"goalloc: ", &line.buf[..line.len]]);
    // SAFETY: abort never returns and needs no invariant.
    unsafe { libc::abort() }
}

/// Like `fatal`, naming a pointer: `goalloc: <msg> <ptr>`.
#[cold]
#[inline(never)]
pub fn fatal_ptr(msg: &str, p: usize) -> ! {
    let mut hex = [0u8; 18];
    write_stderr(&[b"goalloc: ", msg.as_bytes(), b" ", fmt_hex(p, &mut hex)]);
    // SAFETY: abort never returns and needs no invariant.
    unsafe { libc::abort() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_state_transitions() {
        const SIZE: usize = 1 << 20;
        let v = reserve(SIZE, 1 << 20, &[]);
        assert!(!v.is_null());
        assert_eq!(v as usize % (1 << 20), 0);
        // SAFETY: v..v+SIZE is our reservation throughout.
        unsafe {
            assert!(map(v, SIZE));
            v.write_bytes(0xab, SIZE);
            errno::set_errno(errno::Errno(1234));
            assert!(release(v, SIZE, ReleaseMode::DontNeed));
            assert_eq!(errno::errno().0, 1234, "release must keep errno");
            used(v, SIZE);
            assert_eq!(*v, 0, "DONTNEED pages read as zero");
            assert_eq!(*v.add(SIZE - 1), 0);
            free(v, SIZE);
        }
    }

    #[test]
    fn whole_os_pages_within_a_range() {
        const K: usize = 1024;
        assert_eq!(os_pages_within(0x10000, 8 * K, 4 * K), (0x10000, 8 * K));
        assert_eq!(os_pages_within(0x12000, 8 * K, 64 * K), (0x20000, 0));
        assert_eq!(os_pages_within(0x10000, 8 * K, 64 * K), (0x10000, 0));
        assert_eq!(os_pages_within(0x1e000, 80 * K, 64 * K), (0x20000, 64 * K));
        assert_eq!(os_pages_within(0x1e000, 72 * K, 16 * K), (0x20000, 64 * K));
    }

    /// Releasing 8 KiB pieces keeps the pieces between them, and a piece said to read as
    /// zero does, whatever the OS page size (run under `qemu-aarch64 -p 65536` by
    /// scripts/test-aarch64.sh for a 64 KiB one).
    #[test]
    fn release_of_pieces_smaller_than_the_os_page() {
        const SIZE: usize = 1 << 20;
        const PIECE: usize = 8 << 10;
        let v = reserve(SIZE, 1 << 20, &[]);
        assert!(!v.is_null());
        // SAFETY: v..v+SIZE is our reservation throughout.
        unsafe {
            assert!(map(v, SIZE));
            v.write_bytes(0xab, SIZE);
            for i in (0..SIZE / PIECE).step_by(2) {
                let p = v.add(i * PIECE);
                if release(p, PIECE, ReleaseMode::DontNeed) {
                    assert!((0..PIECE).all(|k| *p.add(k) == 0), "piece {i} said zero");
                }
            }
            for i in (1..SIZE / PIECE).step_by(2) {
                let p = v.add(i * PIECE);
                assert!((0..PIECE).all(|k| *p.add(k) == 0xab), "piece {i} lost");
            }
            free(v, SIZE);
        }
    }

    #[test]
    fn formatting() {
        let mut h = [0u8; 18];
        assert_eq!(fmt_hex(0x12345678, &mut h), b"0x12345678");
        assert_eq!(fmt_hex(0, &mut h), b"0x0");
        assert_eq!(fmt_hex(usize::MAX, &mut h), b"0xffffffffffffffff");
        let mut d = [0u8; 20];
        assert_eq!(fmt_dec(0, &mut d), b"0");
        assert_eq!(fmt_dec(1234567, &mut d), b"1234567");
        assert_eq!(fmt_dec(usize::MAX, &mut d), b"18446744073709551615");
    }
}
