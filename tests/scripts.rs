//! The README's first command, with a stand-in for what it would build:
//!
//! - `goalloc_says_it_builds`: `scripts/goalloc` with a missing library says that it
//!   builds it and how long that took, on stderr, runs the program, and prints nothing the
//!   second time. `CARGO` is a script that links an empty shared library where cargo would
//!   write `libgoalloc.so`, so nothing is compiled for real.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under `<target>/scripts-test/`.
fn scratch(name: &str) -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => manifest_dir().join(dir),
        _ => manifest_dir().join("target"),
    };
    let dir = target.join("scripts-test").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

// ---- scripts/goalloc ----------------------------------------------------------------

#[test]
fn goalloc_says_it_builds() {
    let dir = scratch("goalloc");
    let target = dir.join("target");
    let log = dir.join("cargo.log");
    let cargo = dir.join("cargo");
    write_script(
        &cargo,
        &format!(
            "echo \"$@\" >>'{log}'\nmkdir -p \"$CARGO_TARGET_DIR/release\"\n\
             exec cc -shared -fPIC -x c /dev/null -o \"$CARGO_TARGET_DIR/release/libgoalloc.so\"\n",
            log = log.display()
        ),
    );
    let run = || {
        Command::new(manifest_dir().join("scripts/goalloc"))
            .args(["sh", "-c", "echo ran with $LD_PRELOAD"])
            .env("CARGO", &cargo)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("LD_PRELOAD")
            .output()
            .expect("running scripts/goalloc")
    };
    let lib = target.join("release/libgoalloc.so");

    let first = run();
    assert!(first.status.success(), "{}", describe(&first));
    assert_eq!(
        text(&first.stdout),
        format!("ran with {}\n", lib.display()),
        "{}",
        describe(&first)
    );
    let err = text(&first.stderr);
    assert!(
        err.contains(&format!(
            "goalloc: building {} (first run, about a minute)...",
            lib.display()
        )),
        "says what it builds before building:\n{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("goalloc: built in ") && l.ends_with(" s; running sh")),
        "says when it is done:\n{err}"
    );
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "build --release --lib --quiet\n"
    );

    let second = run();
    assert!(second.status.success(), "{}", describe(&second));
    assert_eq!(text(&second.stderr), "", "nothing to build, nothing said");
    assert_eq!(
        fs::read_to_string(&log).unwrap().lines().count(),
        1,
        "cargo ran once"
    );
}
