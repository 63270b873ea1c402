//! snmalloc as a shared library that replaces the malloc family when preloaded
//! (`LD_PRELOAD=.../libsnmalloc.so`), for scripts/bench.sh.
//!
//! snmalloc-sys's `libc-api` feature compiles snmalloc's override/malloc.cc with the
//! names mangled to `sn_malloc`, `sn_free`, ... into a static library; a Rust cdylib
//! exports only what its Rust code defines (rustc's version script makes the rest local),
//! so the C names are defined here, each a tail call into snmalloc's, and C++ delete
//! (plain and sized); operator new is left to libstdc++, which calls `malloc`.
#![no_std]

use core::ffi::c_void;

extern "C" {
    fn sn_malloc(size: usize) -> *mut c_void;
    fn sn_calloc(count: usize, size: usize) -> *mut c_void;
    fn sn_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn sn_reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void;
    fn sn_free(p: *mut c_void);
    fn sn_cfree(p: *mut c_void);
    fn sn_free_sized(p: *mut c_void, size: usize);
    fn sn_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    fn sn_memalign(align: usize, size: usize) -> *mut c_void;
    fn sn_aligned_alloc(align: usize, size: usize) -> *mut c_void;
    fn sn_valloc(size: usize) -> *mut c_void;
    fn sn_pvalloc(size: usize) -> *mut c_void;
    fn sn_malloc_usable_size(p: *const c_void) -> usize;
}

// snmalloc calls libc (mmap, getenv, futex through syscall) and libstdc++'s few runtime
// helpers: without std nothing else asks for libc, and the library would have no
// DT_NEEDED entry for libc.so.6.
#[link(name = "c")]
extern "C" {}

// Makes the crate link snmalloc-sys's static library (its items are not used here).
use snmalloc_sys as _;

macro_rules! forward {
    ($($name:ident => $target:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        /// # Safety
        /// The C contract of the function of the same name.
        #[no_mangle]
        #[allow(non_snake_case)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: the caller keeps the C contract, which is snmalloc's as well.
            unsafe { $target($($arg),*) }
        }
    )*};
}

forward! {
    malloc => sn_malloc(size: usize) -> *mut c_void;
    calloc => sn_calloc(count: usize, size: usize) -> *mut c_void;
    realloc => sn_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    reallocarray => sn_reallocarray(p: *mut c_void, count: usize, size: usize) -> *mut c_void;
    free => sn_free(p: *mut c_void) -> ();
    cfree => sn_cfree(p: *mut c_void) -> ();
    free_sized => sn_free_sized(p: *mut c_void, size: usize) -> ();
    posix_memalign => sn_posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32;
    memalign => sn_memalign(align: usize, size: usize) -> *mut c_void;
    aligned_alloc => sn_aligned_alloc(align: usize, size: usize) -> *mut c_void;
    valloc => sn_valloc(size: usize) -> *mut c_void;
    pvalloc => sn_pvalloc(size: usize) -> *mut c_void;
    malloc_usable_size => sn_malloc_usable_size(p: *const c_void) -> usize;
}

// C++ delete, plain and sized, as goalloc and Debian's tcmalloc, jemalloc and mimalloc
// define them (operator new is left to libstdc++, which calls malloc and throws
// std::bad_alloc): otherwise libstdc++'s sized delete drops the size and calls free.
forward! {
    _ZdlPv => sn_free(p: *mut c_void) -> ();
    _ZdaPv => sn_free(p: *mut c_void) -> ();
    _ZdlPvm => sn_free_sized(p: *mut c_void, size: usize) -> ();
    _ZdaPvm => sn_free_sized(p: *mut c_void, size: usize) -> ();
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Nothing here can panic; a cdylib without std needs a handler all the same.
    loop {}
}
