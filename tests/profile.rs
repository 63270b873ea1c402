//! Heap profiles read by google-pprof: c-tests/profile.c's `pprof` case under
//! `GOALLOC_PROFILE`, with the library preloaded, then `google-pprof --text` on the file
//! written at exit. keep_64mib keeps 64 MiB live in 1 KiB objects and churn_1gib
//! allocates and frees 1 GiB in 4 KiB objects: pprof must attribute 64 MiB in use to
//! the first and about 1 GiB allocated to the second, each within 30%.
//!
//! Needs `google-pprof` (Debian's google-perftools) and `cc`; the library is
//! `target/release/libgoalloc.so` (or `GOALLOC_LIB`), used as it is: rebuild it first.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn library() -> PathBuf {
    if let Some(p) = env::var_os("GOALLOC_LIB").filter(|p| !p.is_empty()) {
        return fs::canonicalize(p).expect("GOALLOC_LIB");
    }
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let lib = target.join("release").join("libgoalloc.so");
    assert!(
        lib.exists(),
        "{} is missing: run cargo build --release",
        lib.display()
    );
    fs::canonicalize(lib).unwrap()
}

/// The MB (MiB: bytes / 2^20) pprof's text report gives `function` in column `col`
/// (0: flat, 3: cum).
fn megabytes(report: &str, function: &str, col: usize) -> f64 {
    for line in report.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 6 && fields[5] == function {
            return fields[col].parse().unwrap();
        }
    }
    panic!("{function} is not in the report:\n{report}");
}

#[test]
fn google_pprof_attributes_the_memory() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = env::temp_dir().join(format!("goalloc-profile-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("profile");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(cc)
        .args(["-std=c11", "-O1", "-g", "-pthread", "-I"])
        .arg(root.join("c-tests"))
        .arg(root.join("c-tests/profile.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-ldl")
        .status()
        .expect("cc");
    assert!(st.success());
    let heap = dir.join("run.heap");
    let out = Command::new(&exe)
        .arg("pprof")
        .current_dir(&dir)
        .env("LD_PRELOAD", library())
        .env("GOALLOC_PROFILE", &heap)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pprof = |view: &str| {
        let out = Command::new("google-pprof")
            .args(["--text", view])
            .arg(&exe)
            .arg(&heap)
            .output()
            .expect("google-pprof is needed (apt-get install google-perftools)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let inuse = pprof("--inuse_space");
    let kept = megabytes(&inuse, "keep_64mib", 3);
    assert!(
        (64.0 * 0.7..=64.0 * 1.3).contains(&kept),
        "keep_64mib: {kept} MB in use\n{inuse}"
    );
    let alloc = pprof("--alloc_space");
    let churned = megabytes(&alloc, "churn_1gib", 3);
    assert!(
        (1024.0 * 0.7..=1024.0 * 1.3).contains(&churned),
        "churn_1gib: {churned} MB allocated\n{alloc}"
    );
    // churn_1gib freed everything: nothing of it in use.
    assert!(
        !inuse.lines().any(|l| l.ends_with(" churn_1gib"))
            || megabytes(&inuse, "churn_1gib", 3) < 1.0,
        "{inuse}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The in-use bytes of a heap_v2 profile, scaled as pprof scales them, and its lines.
fn scaled_inuse(text: &str) -> (f64, usize) {
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    let rate: f64 = header
        .rsplit_once("@ heap_v2/")
        .expect("heap_v2 header")
        .1
        .trim()
        .parse()
        .unwrap();
    let (mut bytes, mut n) = (0.0, 0);
    for line in lines.take_while(|l| !l.starts_with("MAPPED_LIBRARIES:")) {
        let Some((counts, stack)) = line.split_once(" @ ") else {
            continue;
        };
        assert!(stack.starts_with("0x"), "{line}");
        let nums: Vec<f64> = counts
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let (objs, size) = (nums[0], nums[1]);
        if objs > 0.0 {
            bytes += size / (1.0 - (-(size / objs) / rate).exp());
        }
        n += 1;
    }
    (bytes, n)
}

/// `goalloc::profile::dump` from Rust: this test binary links goalloc with its C API, so
/// goalloc is its malloc; the test runs itself again with GOALLOC_PROFILE set, and the
/// child keeps 32 MiB in 1 KiB boxes and writes a profile with the Rust API.
#[test]
fn rust_api_dump() {
    if let Some(path) = env::var_os("GOALLOC_PROFILE_TEST_DUMP") {
        let v: Vec<Box<[u8; 1024]>> = (0..32 * 1024).map(|i| Box::new([i as u8; 1024])).collect();
        assert!(goalloc::profile::dump(path.to_str().unwrap()));
        assert!(!goalloc::profile::dump("/nonexistent/dir/x.heap"));
        drop(v);
        return;
    }
    // Off: nothing is written.
    assert!(!goalloc::profile::dump("/tmp/never-written.heap"));
    let dir = env::temp_dir().join(format!("goalloc-profile-rust-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let now = dir.join("now.heap");
    let out = Command::new(env::current_exe().unwrap())
        .args(["--exact", "rust_api_dump", "--test-threads=1"])
        .env("GOALLOC_PROFILE", dir.join("exit.%p.heap"))
        .env("GOALLOC_PROFILE_RATE", "65536")
        .env("GOALLOC_PROFILE_TEST_DUMP", &now)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&now).expect("the child wrote its profile");
    let (bytes, lines) = scaled_inuse(&text);
    let mib = bytes / (1024.0 * 1024.0);
    assert!(
        (32.0 * 0.7..=32.0 * 1.5).contains(&mib),
        "{mib:.1} MiB in use in {lines} lines:\n{}",
        &text[..text.len().min(2000)]
    );
    // And the exit dump, named with the child's pid.
    let exits = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("exit.") && name.ends_with(".heap") && name != "exit.%p.heap"
        })
        .count();
    assert_eq!(exits, 1);
    let _ = fs::remove_dir_all(&dir);
}
