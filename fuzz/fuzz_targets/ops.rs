//! libFuzzer target: operation sequences on goalloc checked against a model.
//! Run with `cargo +nightly fuzz run ops` from the repository root.
#![no_main]

#[path = "../ops.rs"]
mod ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ops::run(data);
});
