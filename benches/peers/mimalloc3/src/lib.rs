//! mimalloc 3 as a shared library that replaces the malloc family when preloaded
//! (`LD_PRELOAD=.../libmimalloc3.so`), for scripts/bench.sh.
//!
//! libmimalloc-sys compiles mimalloc's C source into a static library. Its `override`
//! feature defines `malloc` and the rest in that library, but a Rust cdylib exports only
//! the symbols its Rust code defines (rustc's version script makes the rest local), so
//! that `malloc` would stay hidden. The entry points are therefore defined here, each a
//! tail call into mimalloc's `mi_` function, the same forwarding that mimalloc's own
//! alloc-override.c does with aliases.
#![no_std]

use core::ffi::c_void;

extern "C" {
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_calloc(count: usize, size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn mi_reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void;
    fn mi_free(p: *mut c_void);
    fn mi_free_size(p: *mut c_void, size: usize);
    fn mi_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    fn mi_memalign(align: usize, size: usize) -> *mut c_void;
    fn mi_aligned_alloc(align: usize, size: usize) -> *mut c_void;
    fn mi_valloc(size: usize) -> *mut c_void;
    fn mi_pvalloc(size: usize) -> *mut c_void;
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mi_version() -> i32;
}

// mimalloc calls libc (mmap, pthread keys, getenv): without std nothing else asks for it,
// and the library would have no DT_NEEDED entry for libc.so.6.
#[link(name = "c")]
extern "C" {}

// Makes the crate link libmimalloc-sys's static library (its items are not used here).
use libmimalloc_sys as _;

macro_rules! forward {
    ($($name:ident => $target:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        /// # Safety
        /// The C contract of the function of the same name.
        #[no_mangle]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the caller keeps the C contract, which is mimalloc's as well.
            unsafe { $target($($arg),*) }
        }
    )*};
}

forward! {
    malloc => mi_malloc(size: usize) -> *mut c_void;
    calloc => mi_calloc(count: usize, size: usize) -> *mut c_void;
    realloc => mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    reallocarray => mi_reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void;
    free => mi_free(p: *mut c_void) -> ();
    cfree => mi_free(p: *mut c_void) -> ();
    posix_memalign => mi_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    memalign => mi_memalign(align: usize, size: usize) -> *mut c_void;
    aligned_alloc => mi_aligned_alloc(align: usize, size: usize) -> *mut c_void;
    valloc => mi_valloc(size: usize) -> *mut c_void;
    pvalloc => mi_pvalloc(size: usize) -> *mut c_void;
    malloc_usable_size => mi_usable_size(p: *const c_void) -> usize;
}

/// mimalloc's version as a number (30302 is 3.3.2), for the bench report's meta.txt.
#[no_mangle]
pub extern "C" fn mimalloc3_version() -> i32 {
    // SAFETY: mi_version only returns a constant.
    unsafe { mi_version() }
}

// C++ delete, plain and sized, as goalloc and Debian's tcmalloc, jemalloc and mimalloc
// define them (operator new is left to libstdc++, which calls malloc and throws
// std::bad_alloc): otherwise libstdc++'s sized delete drops the size and calls free.
forward! {
    _ZdlPv => mi_free(p: *mut c_void) -> ();
    _ZdaPv => mi_free(p: *mut c_void) -> ();
    _ZdlPvm => mi_free_size(p: *mut c_void, size: usize) -> ();
    _ZdaPvm => mi_free_size(p: *mut c_void, size: usize) -> ();
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Nothing here can panic; a cdylib without std needs a handler all the same.
    loop {}
}
