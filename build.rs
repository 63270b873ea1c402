//! Generates the C header `goalloc.h` from `src/ffi.rs` with cbindgen.
//!
//! The header is written to `OUT_DIR`; `tests/header.rs` fails when the committed
//! `include/goalloc.h` differs from it. `GOALLOC_UPDATE_HEADER=1 cargo build` also writes
//! it to `include/goalloc.h`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed=src/stats.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=GOALLOC_UPDATE_HEADER");
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("goalloc.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    // The version macros come from Cargo.toml, so the header cannot disagree with it.
    let version = format!(
        "\n// goalloc's version, from its Cargo.toml; goalloc_version() gives the library's.\n\
         #define GOALLOC_VERSION_MAJOR {}\n\
         #define GOALLOC_VERSION_MINOR {}\n\
         #define GOALLOC_VERSION_PATCH {}\n\
         #define GOALLOC_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    );
    let header = cbindgen::Builder::new()
        .with_config(config)
        .with_after_include(version)
        .with_src(crate_dir.join("src/ffi.rs"))
        .with_src(crate_dir.join("src/stats.rs"))
        .generate()
        .expect("cbindgen could not generate goalloc.h");
    header.write_to_file(&out);
    if std::env::var_os("GOALLOC_UPDATE_HEADER").is_some_and(|v| v == "1") {
        header.write_to_file(crate_dir.join("include/goalloc.h"));
    }
}
