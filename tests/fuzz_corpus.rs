//! Replays the fuzz corpus (`fuzz/corpus/ops/*`) on stable: every input the fuzzer kept
//! runs through the same interpreter and model as `fuzz/fuzz_targets/ops.rs`.

#[path = "../fuzz/ops.rs"]
#[allow(dead_code)]
mod ops;

#[test]
fn fuzz_corpus_replays() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/ops");
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("fuzz/corpus/ops")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        // A fuzzer running beside the tests may replace files while we read.
        let Ok(data) = std::fs::read(e.path()) else {
            continue;
        };
        ops::run(&data);
        n += 1;
    }
    assert!(n > 0, "the corpus is empty");
    eprintln!("replayed {n} corpus inputs");
}
