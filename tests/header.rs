//! The committed C header is what cbindgen makes from the sources today.

#[test]
fn committed_header_is_current() {
    let generated = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/goalloc.h")).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/goalloc.h")).unwrap();
    assert!(
        generated == committed,
        "include/goalloc.h is stale: run `GOALLOC_UPDATE_HEADER=1 cargo build` and commit it"
    );
    for f in [
        "goalloc_malloc",
        "goalloc_free",
        "goalloc_posix_memalign",
        "goalloc_usable_size",
    ] {
        assert!(committed.contains(f), "{f} declared");
    }
}
