//! The README's two commands, with stand-ins for what they would build or install:
//!
//! - `goalloc_says_it_builds`: `scripts/goalloc` with a missing library says that it
//!   builds it and how long that took, on stderr, runs the program, and prints nothing the
//!   second time. `CARGO` is a script that links an empty shared library where cargo would
//!   write `libgoalloc.so`, so nothing is compiled for real.
//! - `test_sh_installs_nothing_when_complete`, `test_sh_installs_what_is_missing`,
//!   `test_sh_says_what_to_install`: the first stage of `scripts/test.sh` (`--deps`) with
//!   `PATH` set to a directory of stand-ins: one script per program the suite needs, an
//!   `ldconfig` that lists the peers' libraries, and an `apt-get` that writes its
//!   arguments to a log (and, for `install`, adds the stand-ins of what it was asked for).
//!   With everything there, apt-get is never run, `update` included; with a program and a
//!   library missing, as root, it runs `apt-get update` and installs those two packages;
//!   with `--no-install` (as when not root) it prints the `sudo apt-get install` line.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
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

// ---- scripts/test.sh --deps ---------------------------------------------------------

/// The programs that test.sh checks for, as it names them (its PROGRAMS list).
const PROGRAMS: &[&str] = &[
    "cc",
    "gcc",
    "c++",
    "pkg-config",
    "readelf",
    "ldd",
    "python3",
    "git",
    "sqlite3",
    "perl",
    "xz",
    "sort",
    "sha256sum",
    "timeout",
    "diff",
    "cmp",
    "redis-server",
    "redis-benchmark",
    "redis-cli",
    "man",
    "gzip",
    "dpkg-deb",
    "make",
    "strace",
    "valgrind",
    "google-pprof",
];
const LIBRARIES: &[&str] = &[
    "libtcmalloc_minimal.so.4",
    "libjemalloc.so.2",
    "libmimalloc.so.2",
];

/// A directory to be test.sh's whole PATH: the few real programs test.sh itself runs,
/// a stand-in for each program in `PROGRAMS` except `leave_out`, `cargo` (whose `fmt` and
/// `clippy` answer), an `ldconfig` that lists `LIBRARIES` but `leave_out`, and an
/// `apt-get` that logs its arguments and, for `install`, provides the stand-ins.
struct Stubs {
    bin: PathBuf,
    apt_log: PathBuf,
}

fn stubs(name: &str, leave_out: &[&str]) -> Stubs {
    let dir = scratch(name);
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for real in [
        "bash", "dirname", "sort", "awk", "sed", "mkdir", "cat", "ln", "sh",
    ] {
        let path = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(real))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{real} not found in /usr/bin or /bin"));
        symlink(path, bin.join(real)).unwrap();
    }
    let stub = dir.join("stub");
    write_script(&stub, "exit 0\n");
    // (sort is both: the real one serves for both uses)
    for p in PROGRAMS.iter().filter(|p| !leave_out.contains(p)) {
        if !bin.join(p).exists() {
            symlink(&stub, bin.join(p)).unwrap();
        }
    }
    symlink(&stub, bin.join("cargo")).unwrap();
    // ldconfig -p prints its cache from a file that apt-get's stand-in appends to.
    let libs = dir.join("libs");
    fs::create_dir_all(&libs).unwrap();
    let cache = dir.join("ld.so.cache.txt");
    let mut lines = String::new();
    for l in LIBRARIES.iter().filter(|l| !leave_out.contains(l)) {
        fs::write(libs.join(l), "").unwrap();
        lines += &format!("\t{l} (libc6,x86-64) => {}\n", libs.join(l).display());
    }
    fs::write(&cache, lines).unwrap();
    write_script(
        &bin.join("ldconfig"),
        &format!("cat '{}'\n", cache.display()),
    );
    let apt_log = dir.join("apt-get.log");
    write_script(
        &bin.join("apt-get"),
        &format!(
            "echo \"$*\" >>'{log}'\n\
             [ \"$1\" = install ] || exit 0\n\
             for p in \"$@\"; do\n\
               case $p in\n\
                 redis-server) ln -s '{stub}' '{bin}/redis-server' ;;\n\
                 libmimalloc2.0) echo \"\tlibmimalloc.so.2 (libc6,x86-64) => /x\" >>'{cache}' ;;\n\
               esac\n\
             done\n",
            log = apt_log.display(),
            stub = stub.display(),
            bin = bin.display(),
            cache = cache.display()
        ),
    );
    Stubs { bin, apt_log }
}

fn test_sh_deps(stubs: &Stubs, args: &[&str]) -> Output {
    Command::new(stubs.bin.join("bash"))
        .arg(manifest_dir().join("scripts/test.sh"))
        .arg("--deps")
        .args(args)
        .env_clear()
        .env("PATH", &stubs.bin)
        .env("HOME", stubs.bin.parent().unwrap())
        .output()
        .expect("running scripts/test.sh")
}

fn apt_calls(stubs: &Stubs) -> Vec<String> {
    match fs::read_to_string(&stubs.apt_log) {
        Ok(s) => s.lines().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn test_sh_installs_nothing_when_complete() {
    let stubs = stubs("deps-complete", &[]);
    let out = test_sh_deps(&stubs, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("everything the suite needs is installed"),
        "{}",
        describe(&out)
    );
    assert_eq!(apt_calls(&stubs), Vec::<String>::new(), "no apt-get at all");
}

#[test]
fn test_sh_installs_what_is_missing() {
    if unsafe { libc::geteuid() } != 0 {
        // Not root: test.sh installs nothing and says what to run instead.
        let stubs = stubs("deps-missing-user", &["redis-server", "libmimalloc.so.2"]);
        let out = test_sh_deps(&stubs, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            text(&out.stderr).contains(
                "sudo apt-get update && sudo apt-get install -y libmimalloc2.0 redis-server"
            ),
            "{}",
            describe(&out)
        );
        assert_eq!(apt_calls(&stubs), Vec::<String>::new());
        return;
    }
    let stubs = stubs("deps-missing", &["redis-server", "libmimalloc.so.2"]);
    let out = test_sh_deps(&stubs, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out.stdout).contains("installing the Debian packages: libmimalloc2.0 redis-server"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        apt_calls(&stubs),
        [
            "update -qq",
            "install -y -qq --no-install-recommends libmimalloc2.0 redis-server"
        ]
    );
}

#[test]
fn test_sh_says_what_to_install() {
    let stubs = stubs("deps-no-install", &["c++", "man", "libjemalloc.so.2"]);
    let out = test_sh_deps(&stubs, &["--no-install"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("install them with:\n  sudo apt-get update && sudo apt-get install -y g++ libjemalloc2 man-db\n"),
        "{}",
        describe(&out)
    );
    assert_eq!(apt_calls(&stubs), Vec::<String>::new(), "no apt-get at all");
}
