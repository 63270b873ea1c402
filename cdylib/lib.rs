//! `libgoalloc.so`: the `goalloc` crate with its C exports (`malloc`, `free`, ..., the
//! `goalloc_*` API and C++ `operator new`/`delete`), linked without Rust's std.
//!
//! The allocator itself uses only `core` and `libc`. Linking std into the C library would
//! bring std's panic machinery, whose backtrace printer (a DWARF reader and a symbol
//! demangler) is most of a std-linked library's code, and a dependency on `libgcc_s`:
//! about 0.4 MiB more resident memory in every process that preloads the library. Without
//! std this crate supplies the panic handler: a panic, which would be a bug in the
//! allocator, prints its location and aborts (the profiles build with `panic = "abort"`).
// A `cargo test --lib` of the workspace builds this crate as a test harness, with std.
#![cfg_attr(not(test), no_std)]

// Links the allocator and, through its `c-api` feature, its exported symbols.
extern crate allocator;

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    allocator::fatal_panic(info)
}
