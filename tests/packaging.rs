//! Packaging: `scripts/install.sh` into a fresh prefix, then the examples of `examples/`
//! built against the installed files the way a user builds them.
//!
//! - `install_layout`: the files, the symbolic links, the soname (`readelf -d`), the
//!   exported names, the header, and what `pkg-config` answers; a second install with
//!   `DESTDIR` puts the files under it and keeps the prefix in the `.pc` file;
//! - `install_libdir_and_uninstall`: `--libdir lib/x86_64-linux-gnu` puts the libraries
//!   and the `.pc` file there (and `pkg-config` says so), and a program built against it
//!   runs; `--uninstall` without that libdir removes nothing and fails, with it it removes
//!   the 7 files and nothing else;
//! - `man_page_renders_and_its_example_runs`: `man -l` formats the installed `goalloc.3`
//!   without a warning, and the C program of its EXAMPLES builds and runs;
//! - `deb_package_contents`: `scripts/deb.sh` builds `goalloc_<version>-1_<arch>.deb`;
//!   `dpkg-deb -c` lists exactly the files of an install under `/usr` (libraries in the
//!   multiarch directory, the manual page compressed) and the documents, owned by root,
//!   with their modes and links; the control fields; unpacked with `dpkg-deb -x` into a
//!   directory of the test (never installed), the library's soname, the `.pc` file and
//!   the manual page;
//! - `c_example_shared`, `cpp_example_shared`: `examples/c/hello.c` and
//!   `examples/cpp/hello.cpp` built with `pkg-config --cflags --libs goalloc`, run with
//!   `LD_LIBRARY_PATH=<prefix>/lib`; the binary needs `libgoalloc.so.0`, `ldd` finds it
//!   in the prefix, and the output (which says whether malloc/new came from goalloc) is
//!   compared line by line;
//! - `c_example_static`: `hello.c` linked with `libgoalloc.a` and what
//!   `pkg-config --static --libs goalloc` adds, run without the shared library;
//! - `release_build_has_both_libraries`: `cargo build --release` leaves `libgoalloc.a` and
//!   `libgoalloc.so` in `target/release`, and `hello.c` links with either as the README
//!   shows;
//! - `rust_example`: `examples/rust`, a separate crate with goalloc as its global
//!   allocator, built with cargo and run;
//! - `examples_are_not_targets_of_goalloc`: `cargo metadata` of goalloc lists none of them.
//!
//! Everything goes to `<target>/packaging/` (`<target>`: `$CARGO_TARGET_DIR` or
//! `target/`): the prefix (`prefix/`, removed first), the binaries (`bin/`), and the two
//! cargo target directories: install.sh's (`install/`) and the Rust example's
//! (`rust-example/`). They are kept apart because a crate that depends on goalloc makes
//! cargo put its own `libgoalloc.so` (without soname) in `release/` of its target
//! directory. Only `release_build_has_both_libraries` builds in `target/release`, with the
//! `cargo build --release` that the README gives. The first run takes about a minute
//! (two cargo builds of the dependencies, side by side); later runs a few seconds.
//!
//! Needs `pkg-config`, `readelf`, `ldd`, `man` (man-db), `dpkg-deb`, `gzip`, and
//! `cc`/`c++` (or `$CC`/`$CXX`).

mod common;
use common::command_line;
use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const SONAME: &str = "libgoalloc.so.0";

const C_EXPECTED: &str = "\
hello from goalloc_malloc
goalloc_usable_size >= 64: yes
after goalloc_realloc to 100000 bytes: hello from goalloc_malloc
goalloc_posix_memalign(4096, 100) is aligned: yes
malloc(1 MiB) came from goalloc: yes
calloc zeros: 1000, sum after realloc: 1999000
small objects checked: 1000
done
";

const CPP_EXPECTED: &str = "\
new unsigned char[1 MiB] came from goalloc: yes
100 alignas(256) objects aligned: yes
250 keys, 80000 values, sum 3199960000
hello from goalloc_malloc in C++
done
";

const RUST_EXPECTED: &str = "\
Vec of 4 MiB came from goalloc: yes
4 threads: 4000 keys, word sum 1249950000, list sum 4999950000
1000 boxes freed across threads, sum 1373795000
done
";

// ---- paths -------------------------------------------------------------------------

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => manifest_dir().join(dir), // join keeps an absolute dir
        _ => manifest_dir().join("target"),
    }
}

/// `<target>/packaging`: everything this test writes.
fn work_dir() -> PathBuf {
    target_dir().join("packaging")
}

fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")))
}

// ---- running commands --------------------------------------------------------------

/// What to say when a program cannot be started at all.
fn missing_tool_hint(program: &OsStr) -> &'static str {
    match program.to_str() {
        Some("pkg-config") => {
            "pkg-config is not installed; the packaging tests need it (Debian/Ubuntu: \
             apt-get install pkg-config)"
        }
        Some("readelf") => "readelf is not installed (Debian/Ubuntu: apt-get install binutils)",
        Some("ldd") => "ldd is not installed (Debian/Ubuntu: apt-get install libc-bin)",
        Some("man") => "man is not installed (Debian/Ubuntu: apt-get install man-db)",
        Some("dpkg-deb") | Some("dpkg") => "dpkg-deb is not installed (Debian/Ubuntu: dpkg)",
        Some("cc") | Some("c++") => {
            "no C/C++ compiler (Debian/Ubuntu: apt-get install gcc g++, or set CC/CXX)"
        }
        _ => "",
    }
}

/// Runs `cmd` to completion with its output captured, killing it after `limit`; panics
/// with the command line and its output unless it exits with status 0.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = command_line(cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!(
                "cannot run `{line}`: {e}\n{}",
                missing_tool_hint(cmd.get_program())
            )
        }
        Err(e) => panic!("cannot run `{line}`: {e}"),
    };
    // Read both pipes on threads, so that a chatty command cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out_pipe, &mut v).map(|_| v)
    });
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err_pipe, &mut v).map(|_| v)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap().unwrap_or_default();
    let stderr = err_reader.join().unwrap().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "`{line}` did not finish within {limit:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    if !status.success() {
        panic!(
            "`{line}` failed ({status})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

fn stdout_of(cmd: &mut Command, limit: Duration) -> String {
    String::from_utf8(run(cmd, limit).stdout).expect("output is UTF-8")
}

const BUILD_LIMIT: Duration = Duration::from_secs(900);
const TOOL_LIMIT: Duration = Duration::from_secs(60);
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Compares a program's output with what it must print, line by line.
fn assert_output(what: &str, got: &str, want: &str) {
    if got != want {
        let mut diff = String::new();
        let (g, w): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
        for i in 0..g.len().max(w.len()) {
            let (gl, wl) = (g.get(i).copied(), w.get(i).copied());
            if gl != wl {
                diff += &format!(
                    "line {}: expected {:?}, got {:?}\n",
                    i + 1,
                    wl.unwrap_or("<none>"),
                    gl.unwrap_or("<none>")
                );
            }
        }
        panic!("{what}: unexpected output\n{diff}--- full output ---\n{got}");
    }
}

// ---- the installation --------------------------------------------------------------

/// Runs install.sh into `prefix` with `DESTDIR` if given; returns its stdout.
fn run_install(prefix: &Path, destdir: Option<&Path>) -> String {
    run_install_with(&[], prefix, destdir)
}

/// Runs install.sh with options (`--libdir DIR`, `--uninstall`) before the prefix.
fn run_install_with(options: &[&str], prefix: &Path, destdir: Option<&Path>) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(manifest_dir().join("scripts/install.sh"))
        .args(options)
        .arg(prefix)
        .current_dir(manifest_dir())
        .env("CARGO", cargo())
        .env("CARGO_TARGET_DIR", work_dir());
    match destdir {
        Some(d) => cmd.env("DESTDIR", d),
        None => cmd.env_remove("DESTDIR"),
    };
    stdout_of(&mut cmd, BUILD_LIMIT)
}

/// The prefix, installed once per test process into a fresh `<target>/packaging/prefix`.
fn prefix() -> PathBuf {
    static PREFIX: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = PREFIX.get_or_init(|| {
        let prefix = work_dir().join("prefix");
        match fs::remove_dir_all(&prefix) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(format!("removing {}: {e}", prefix.display()))
            }
            _ => {}
        }
        let started = Instant::now();
        std::panic::catch_unwind(|| run_install(&prefix, None))
            .map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "scripts/install.sh failed".to_string())
            })
            .map(|_| {
                eprintln!(
                    "packaging: installed into {} in {:.1?}",
                    prefix.display(),
                    started.elapsed()
                );
                prefix
            })
    });
    match result {
        Ok(p) => p.clone(),
        Err(e) => panic!("scripts/install.sh did not install: {e}"),
    }
}

/// `pkg-config ARGS goalloc` against the prefix's `.pc` file, as arguments.
fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("pkg-config");
    cmd.args(args)
        .arg("goalloc")
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .env_remove("PKG_CONFIG_SYSROOT_DIR");
    stdout_of(&mut cmd, TOOL_LIMIT)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn readelf(args: &[&str], file: &Path) -> String {
    stdout_of(Command::new("readelf").args(args).arg(file), TOOL_LIMIT)
}

/// The shared libraries a binary or library names (DT_NEEDED).
fn needed(file: &Path) -> Vec<String> {
    readelf(&["-d", "-W"], file)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect()
}

#[test]
fn install_layout() {
    let prefix = prefix();
    let lib = prefix.join("lib");
    let real = format!("libgoalloc.so.{VERSION}");

    // The files and the links between them.
    let real_meta = fs::symlink_metadata(lib.join(&real)).expect("the shared library");
    assert!(real_meta.file_type().is_file(), "{real} is a regular file");
    for (link, to) in [(SONAME, real.as_str()), ("libgoalloc.so", SONAME)] {
        let target = fs::read_link(lib.join(link))
            .unwrap_or_else(|e| panic!("{} is not a symbolic link: {e}", lib.join(link).display()));
        assert_eq!(target, Path::new(to), "{link} points to {to}");
    }
    let archive = fs::read(lib.join("libgoalloc.a")).expect("the static library");
    assert!(
        archive.starts_with(b"!<arch>\n"),
        "libgoalloc.a is an ar archive"
    );
    assert_eq!(
        fs::read_to_string(prefix.join("include/goalloc.h")).expect("the installed header"),
        fs::read_to_string(manifest_dir().join("include/goalloc.h")).unwrap(),
        "the installed header is include/goalloc.h"
    );
    assert_eq!(
        fs::read_to_string(prefix.join("share/man/man3/goalloc.3")).expect("the manual page"),
        fs::read_to_string(manifest_dir().join("man/goalloc.3")).unwrap(),
        "the installed manual page is man/goalloc.3"
    );

    // The soname, and what the library exports.
    let dynamic = readelf(&["-d", "-W"], &lib.join(&real));
    assert!(
        dynamic.contains(&format!("Library soname: [{SONAME}]")),
        "{real} has the soname {SONAME}:\n{dynamic}"
    );
    // Built without Rust's std: the C library needs libc alone (no libgcc_s for std's
    // unwinder) and imports nothing of the unwinder.
    assert_eq!(
        needed(&lib.join(&real)),
        ["libc.so.6"],
        "{real} needs only libc"
    );
    let symbols = readelf(&["--dyn-syms", "-W"], &lib.join(&real));
    assert!(
        !symbols.contains("_Unwind_"),
        "{real} imports the unwinder:\n{symbols}"
    );
    for name in [
        "malloc",
        "free",
        "goalloc_malloc",
        "goalloc_read_mem_stats",
        "_Znwm",
    ] {
        assert!(
            symbols
                .lines()
                .any(|l| l.contains(" GLOBAL ") && l.split_whitespace().last() == Some(name)),
            "{real} exports {name}"
        );
    }

    // pkg-config.
    let p = prefix.display();
    assert_eq!(pkg_config(&prefix, &["--modversion"]), [VERSION]);
    assert_eq!(pkg_config(&prefix, &["--variable=prefix"]), [p.to_string()]);
    assert_eq!(
        pkg_config(&prefix, &["--cflags"]),
        [format!("-I{p}/include")]
    );
    assert_eq!(
        pkg_config(&prefix, &["--libs"]),
        [format!("-L{p}/lib"), "-lgoalloc".to_string()]
    );
    let static_libs = pkg_config(&prefix, &["--static", "--libs"]);
    assert!(
        static_libs.len() > 2
            && static_libs.starts_with(&[format!("-L{p}/lib"), "-lgoalloc".to_string()])
            && static_libs[2..].iter().all(|a| a.starts_with("-l")),
        "--static --libs adds the native libraries of the static library: {static_libs:?}"
    );
    assert!(
        static_libs.iter().any(|a| a == "-lpthread" || a == "-lc"),
        "the native libraries look like rustc's list: {static_libs:?}"
    );

    // DESTDIR: the files go under it, the .pc file names the prefix.
    let destdir = work_dir().join("destdir");
    let _ = fs::remove_dir_all(&destdir);
    run_install(Path::new("/opt/goalloc"), Some(&destdir));
    let staged = destdir.join("opt/goalloc");
    for f in [
        format!("lib/{real}"),
        format!("lib/{SONAME}"),
        "lib/libgoalloc.so".to_string(),
        "lib/libgoalloc.a".to_string(),
        "include/goalloc.h".to_string(),
    ] {
        assert!(staged.join(&f).exists(), "DESTDIR install has {f}");
    }
    let pc = fs::read_to_string(staged.join("lib/pkgconfig/goalloc.pc")).unwrap();
    assert!(
        pc.lines().next() == Some("prefix=/opt/goalloc"),
        "DESTDIR install: the .pc file names the prefix, not DESTDIR:\n{pc}"
    );
    fs::remove_dir_all(&destdir).unwrap();
}

/// Every file and symbolic link under `dir`, relative to it, sorted; directories left out.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn install_libdir_and_uninstall() {
    // The build is the one of prefix(): this install only copies.
    prefix();
    let multiarch = "lib/x86_64-linux-gnu";
    let root = work_dir().join("prefix-libdir");
    let _ = fs::remove_dir_all(&root);
    // A file of someone else's in the library directory, which --uninstall must leave.
    fs::create_dir_all(root.join(multiarch)).unwrap();
    fs::write(root.join(multiarch).join("libother.so.1"), "not goalloc's").unwrap();

    let out = run_install_with(&["--libdir", multiarch], &root, None);
    let real = format!("libgoalloc.so.{VERSION}");
    let mut want: Vec<String> = [
        "include/goalloc.h".to_string(),
        format!("{multiarch}/libgoalloc.a"),
        format!("{multiarch}/libgoalloc.so"),
        format!("{multiarch}/{SONAME}"),
        format!("{multiarch}/{real}"),
        format!("{multiarch}/libother.so.1"),
        format!("{multiarch}/pkgconfig/goalloc.pc"),
        "share/man/man3/goalloc.3".to_string(),
    ]
    .into();
    want.sort();
    assert_eq!(
        files_under(&root),
        want,
        "install.sh --libdir {multiarch}:\n{out}"
    );
    assert!(
        !root.join("lib/libgoalloc.so").exists(),
        "nothing in lib/ itself"
    );
    let lib = root.join(multiarch);
    let pc = fs::read_to_string(lib.join("pkgconfig/goalloc.pc")).unwrap();
    assert!(
        pc.lines()
            .any(|l| l == format!("libdir=${{exec_prefix}}/{multiarch}")),
        "the .pc file's libdir is under exec_prefix:\n{pc}"
    );
    let pkg = |args: &[&str]| {
        let mut cmd = Command::new("pkg-config");
        cmd.args(args)
            .arg("goalloc")
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .env_remove("PKG_CONFIG_SYSROOT_DIR");
        stdout_of(&mut cmd, TOOL_LIMIT)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pkg(&["--libs"]),
        [format!("-L{}", lib.display()), "-lgoalloc".to_string()]
    );
    // A program built against it finds the library there.
    let mut flags = pkg(&["--cflags"]);
    flags.extend(pkg(&["--libs"]));
    let exe = compile("c/hello.c", "hello_c_libdir", &flags);
    assert_output(
        "hello.c against --libdir",
        &run_example(&exe, Some(&lib)),
        C_EXPECTED,
    );

    // --uninstall with another libdir finds no library there and removes nothing.
    let wrong = Command::new("bash")
        .arg(manifest_dir().join("scripts/install.sh"))
        .arg("--uninstall")
        .arg(&root)
        .env_remove("DESTDIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        wrong.status.code() == Some(1) && err.contains("nothing removed"),
        "--uninstall without the install's --libdir: {}\n{err}",
        wrong.status
    );
    assert_eq!(files_under(&root), want);
    // With the install's libdir, given as an absolute path this time, it removes every
    // file of goalloc's and leaves the other one.
    let lib_abs = lib.display().to_string();
    let out = run_install_with(&["--libdir", &lib_abs, "--uninstall"], &root, None);
    assert_eq!(
        files_under(&root),
        [format!("{multiarch}/libother.so.1")],
        "after --uninstall:\n{out}"
    );
    assert!(out.contains("removed 7 files of goalloc"), "{out}");
}

#[test]
fn man_page_renders_and_its_example_runs() {
    let prefix = prefix();
    let page = prefix.join("share/man/man3/goalloc.3");
    // man -l formats the file as `man goalloc` would; --warnings has groff report what
    // it could not format (an unknown macro, a line it had to break badly...).
    let out = run(
        Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&page)
            .env("MANWIDTH", "80")
            .env_remove("MAN_KEEP_FORMATTING")
            .env_remove("MANPAGER")
            .env("PAGER", "cat"),
        TOOL_LIMIT,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.trim().is_empty(), "man warns:\n{warnings}");
    for heading in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "ENVIRONMENT",
        "STATISTICS",
        "EXAMPLES",
    ] {
        assert!(
            text.lines().any(|l| l == heading),
            "the rendered page has {heading}:\n{text}"
        );
    }
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.contains(&format!("goalloc {VERSION}"))),
        "the footer names the version of Cargo.toml, {VERSION}"
    );

    // The C program of EXAMPLES, built and run against the installed library.
    let source = fs::read_to_string(&page).unwrap();
    let example = source
        .split(".EX\n")
        .filter_map(|b| b.split_once(".EE\n").map(|(code, _)| code))
        .find(|code| code.contains("int main"))
        .expect("the page has a C example")
        .replace("\\en", "\\n");
    let src = work_dir().join("bin/man_example.c");
    fs::create_dir_all(src.parent().unwrap()).unwrap();
    fs::write(&src, example).unwrap();
    let exe = work_dir().join("bin/man_example");
    let mut cmd = Command::new(compiler(false));
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(&src)
        .args(pkg_config(&prefix, &["--cflags", "--libs"]))
        .arg("-o")
        .arg(&exe);
    run(&mut cmd, BUILD_LIMIT);
    let out = run_example(&exe, Some(&prefix.join("lib")));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert!(
        words.len() == 5
            && words[1] == "bytes"
            && words[2] == "in"
            && words[4] == "objects"
            && words[0].parse::<u64>().is_ok_and(|b| b >= 1000)
            && words[3].parse::<u64>().is_ok_and(|n| n >= 1),
        "the example prints the heap's bytes and objects: {out:?}"
    );
}

// ---- the Debian package -------------------------------------------------------------

#[test]
fn deb_package_contents() {
    // The build is the one of prefix(): deb.sh's install.sh only copies.
    prefix();
    let out_dir = work_dir().join("deb");
    let _ = fs::remove_dir_all(&out_dir);
    let out = stdout_of(
        Command::new("bash")
            .arg(manifest_dir().join("scripts/deb.sh"))
            .arg("--out")
            .arg(&out_dir)
            .current_dir(manifest_dir())
            .env("CARGO", cargo())
            .env("CARGO_TARGET_DIR", work_dir())
            .env_remove("DESTDIR")
            .env_remove("DEB_MAINTAINER"),
        BUILD_LIMIT,
    );
    let deb = PathBuf::from(out.lines().last().expect("deb.sh prints the path last"));
    let arch = stdout_of(Command::new("dpkg").arg("--print-architecture"), TOOL_LIMIT);
    let arch = arch.trim();
    assert_eq!(
        deb,
        out_dir.join(format!("goalloc_{VERSION}-1_{arch}.deb")),
        "{out}"
    );
    let multiarch = stdout_of(
        Command::new(compiler(false)).arg("-print-multiarch"),
        TOOL_LIMIT,
    );
    let lib = format!("./usr/lib/{}", multiarch.trim());
    let real = format!("libgoalloc.so.{VERSION}");

    // dpkg-deb -c: "perms owner/group size date time path [-> target]"; directories
    // left out.
    let listing = stdout_of(Command::new("dpkg-deb").arg("-c").arg(&deb), TOOL_LIMIT);
    let mut entries = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 6, "dpkg-deb -c line: {line}");
        assert_eq!(f[1], "root/root", "owned by root: {line}");
        if f[0].starts_with('d') {
            continue;
        }
        let entry = match f[0].chars().next() {
            Some('l') => format!("{} -> {}", f[5], f.get(7).copied().unwrap_or("?")),
            _ => format!("{} {}", f[5], &f[0][1..]),
        };
        entries.push(entry);
    }
    entries.sort();
    let mut want = vec![
        "./usr/include/goalloc.h rw-r--r--".to_string(),
        format!("{lib}/libgoalloc.a rw-r--r--"),
        format!("{lib}/{real} rwxr-xr-x"),
        format!("{lib}/{SONAME} -> {real}"),
        format!("{lib}/libgoalloc.so -> {SONAME}"),
        format!("{lib}/pkgconfig/goalloc.pc rw-r--r--"),
        "./usr/share/doc/goalloc/changelog.gz rw-r--r--".to_string(),
        "./usr/share/doc/goalloc/copyright rw-r--r--".to_string(),
        "./usr/share/man/man3/goalloc.3.gz rw-r--r--".to_string(),
    ];
    want.sort();
    assert_eq!(entries, want, "dpkg-deb -c:\n{listing}");

    // The control fields.
    let field = |name: &str| {
        stdout_of(
            Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name),
            TOOL_LIMIT,
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "goalloc");
    assert_eq!(field("Version"), format!("{VERSION}-1"));
    assert_eq!(field("Architecture"), arch);
    let depends = field("Depends");
    assert!(
        depends.starts_with("libc6 (>= 2.") && depends.ends_with(')'),
        "Depends: {depends}"
    );

    // Unpacked into a directory of this test (dpkg-deb -x; nothing is installed): the
    // library has its soname, the .pc file names /usr and the multiarch directory, and
    // the manual page is man/goalloc.3.
    let unpacked = out_dir.join("unpacked");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        TOOL_LIMIT,
    );
    let lib_dir = unpacked.join(&lib[2..]);
    let dynamic = readelf(&["-d", "-W"], &lib_dir.join(&real));
    assert!(
        dynamic.contains(&format!("Library soname: [{SONAME}]")),
        "{dynamic}"
    );
    let pc = fs::read_to_string(lib_dir.join("pkgconfig/goalloc.pc")).unwrap();
    assert!(pc.starts_with("prefix=/usr\n"), "{pc}");
    assert!(
        pc.contains(&format!(
            "\nlibdir=${{exec_prefix}}/lib/{}\n",
            multiarch.trim()
        )),
        "{pc}"
    );
    let page = run(
        Command::new("gzip")
            .arg("-dc")
            .arg(unpacked.join("usr/share/man/man3/goalloc.3.gz")),
        TOOL_LIMIT,
    )
    .stdout;
    assert_eq!(
        page,
        fs::read(manifest_dir().join("man/goalloc.3")).unwrap(),
        "the packaged manual page"
    );
    let copyright = fs::read_to_string(unpacked.join("usr/share/doc/goalloc/copyright")).unwrap();
    assert!(
        copyright.contains("License: MIT or Apache-2.0"),
        "{copyright}"
    );
}

// ---- the C and C++ examples --------------------------------------------------------

fn compiler(cxx: bool) -> OsString {
    let (var, default) = if cxx { ("CXX", "c++") } else { ("CC", "cc") };
    env::var_os(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from(default))
}

/// Compiles `examples/<source>` to `<work>/bin/<name>` with the given pkg-config flags.
fn compile(source: &str, name: &str, flags: &[String]) -> PathBuf {
    let cxx = source.ends_with(".cpp");
    let bin = work_dir().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let exe = bin.join(name);
    let _ = fs::remove_file(&exe);
    let mut cmd = Command::new(compiler(cxx));
    cmd.arg(if cxx { "-std=c++17" } else { "-std=c11" })
        .args(["-O2", "-Wall", "-Wextra", "-Werror"]);
    if cxx {
        cmd.arg("-pthread");
    }
    cmd.arg(manifest_dir().join("examples").join(source))
        .args(flags)
        .arg("-o")
        .arg(&exe);
    run(&mut cmd, BUILD_LIMIT);
    exe
}

/// Runs an example with only the prefix's lib/ (or nothing) on the library path.
fn run_example(exe: &Path, library_path: Option<&Path>) -> String {
    let mut cmd = Command::new(exe);
    cmd.env_remove("LD_PRELOAD").env_remove("LD_LIBRARY_PATH");
    if let Some(dir) = library_path {
        cmd.env("LD_LIBRARY_PATH", dir);
    }
    stdout_of(&mut cmd, RUN_LIMIT)
}

/// The binary needs libgoalloc.so.0, and the loader finds it in the prefix.
fn check_loads_installed_library(exe: &Path, prefix: &Path) {
    let needs = needed(exe);
    assert!(
        needs.iter().any(|n| n == SONAME),
        "{} needs {SONAME} (the soname), not {needs:?}",
        exe.display()
    );
    let lib = prefix.join("lib");
    let ldd = stdout_of(
        Command::new("ldd")
            .arg(exe)
            .env_remove("LD_PRELOAD")
            .env("LD_LIBRARY_PATH", &lib),
        TOOL_LIMIT,
    );
    let want = format!("{SONAME} => {}", lib.join(SONAME).display());
    assert!(
        ldd.lines().any(|l| l.trim_start().starts_with(&want)),
        "ldd shows `{want}`:\n{ldd}"
    );
}

fn shared_example(source: &str, name: &str, expected: &str) {
    let prefix = prefix();
    let flags = pkg_config(&prefix, &["--cflags", "--libs"]);
    let exe = compile(source, name, &flags);
    check_loads_installed_library(&exe, &prefix);
    let out = run_example(&exe, Some(&prefix.join("lib")));
    assert_output(source, &out, expected);
}

#[test]
fn c_example_shared() {
    shared_example("c/hello.c", "hello_c_shared", C_EXPECTED);
}

#[test]
fn cpp_example_shared() {
    shared_example("cpp/hello.cpp", "hello_cpp_shared", CPP_EXPECTED);
}

#[test]
fn c_example_static() {
    let prefix = prefix();
    // pkg-config --static adds Libs.private; -lgoalloc itself would pick the shared
    // library, which sits beside the archive, so it becomes -l:libgoalloc.a.
    let mut flags = pkg_config(&prefix, &["--cflags"]);
    let libs = pkg_config(&prefix, &["--static", "--libs"]);
    assert!(libs.iter().any(|a| a == "-lgoalloc"), "{libs:?}");
    flags.extend(libs.into_iter().map(|a| {
        if a == "-lgoalloc" {
            "-l:libgoalloc.a".to_string()
        } else {
            a
        }
    }));
    let exe = compile("c/hello.c", "hello_c_static", &flags);
    let needs = needed(&exe);
    assert!(
        !needs.iter().any(|n| n.starts_with("libgoalloc")),
        "the static binary needs no libgoalloc: {needs:?}"
    );
    let out = run_example(&exe, None);
    assert_output("c/hello.c linked statically", &out, C_EXPECTED);
}

// ---- the development build ---------------------------------------------------------

/// What the README says of `cargo build --release`: `target/release` gets both libraries,
/// and a C program links with either, as the README shows (`-Iinclude` for the header).
#[test]
fn release_build_has_both_libraries() {
    let release = target_dir().join("release");
    // Nothing to do when test.sh or the user built it already; a second or so otherwise
    // on top of the build the C tests need anyway.
    run(
        Command::new(cargo())
            .args([
                "build",
                "--release",
                "--quiet",
                "--lib",
                "-p",
                "goalloc-cdylib",
            ])
            .current_dir(manifest_dir()),
        BUILD_LIMIT,
    );
    let archive = fs::read(release.join("libgoalloc.a"))
        .expect("cargo build --release writes target/release/libgoalloc.a");
    assert!(
        archive.starts_with(b"!<arch>\n"),
        "libgoalloc.a is an ar archive"
    );
    assert!(release.join("libgoalloc.so").is_file(), "and libgoalloc.so");

    let include = manifest_dir().join("include");
    let bin = work_dir().join("bin");
    fs::create_dir_all(&bin).unwrap();
    // cc -Iinclude app.c target/release/libgoalloc.a -lm -lrt -lpthread -o app
    let static_exe = bin.join("hello_c_release_static");
    let mut cc = Command::new(compiler(false));
    cc.arg("-I")
        .arg(&include)
        .arg(manifest_dir().join("examples/c/hello.c"))
        .arg(release.join("libgoalloc.a"))
        .args(["-lm", "-lrt", "-lpthread", "-o"])
        .arg(&static_exe);
    run(&mut cc, BUILD_LIMIT);
    assert!(
        !needed(&static_exe)
            .iter()
            .any(|n| n.starts_with("libgoalloc")),
        "linked with the archive, the program needs no libgoalloc"
    );
    assert_output(
        "hello.c linked with target/release/libgoalloc.a",
        &run_example(&static_exe, None),
        C_EXPECTED,
    );
    // cc -Iinclude app.c -L target/release -lgoalloc -Wl,-rpath,$PWD/target/release -o app
    let shared_exe = bin.join("hello_c_release_shared");
    let mut cc = Command::new(compiler(false));
    cc.arg("-I")
        .arg(&include)
        .arg(manifest_dir().join("examples/c/hello.c"))
        .arg("-L")
        .arg(&release)
        .arg("-lgoalloc")
        .arg(format!("-Wl,-rpath,{}", release.display()))
        .arg("-o")
        .arg(&shared_exe);
    run(&mut cc, BUILD_LIMIT);
    assert!(
        needed(&shared_exe).iter().any(|n| n == "libgoalloc.so"),
        "-lgoalloc takes the shared library beside the archive: {:?}",
        needed(&shared_exe)
    );
    assert_output(
        "hello.c linked with target/release/libgoalloc.so",
        &run_example(&shared_exe, None),
        C_EXPECTED,
    );
}

// ---- the Rust example --------------------------------------------------------------

#[test]
fn rust_example() {
    let manifest = manifest_dir().join("examples/rust/Cargo.toml");
    let target = work_dir().join("rust-example");
    let started = Instant::now();
    run(
        Command::new(cargo())
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target),
        BUILD_LIMIT,
    );
    eprintln!(
        "packaging: built examples/rust in {:.1?}",
        started.elapsed()
    );
    let exe = target.join("release/goalloc-example");
    let out = stdout_of(
        Command::new(&exe)
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH"),
        RUN_LIMIT,
    );
    assert_output("examples/rust", &out, RUST_EXPECTED);
}

#[test]
fn examples_are_not_targets_of_goalloc() {
    // cargo finds examples/*.rs and examples/*/main.rs by itself; the examples here are
    // C, C++ and a crate of their own, which goalloc's build must leave alone.
    let meta = stdout_of(
        Command::new(cargo())
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(manifest_dir().join("Cargo.toml")),
        TOOL_LIMIT,
    );
    let examples = manifest_dir().join("examples");
    let examples = examples.to_string_lossy();
    for sub in ["c/", "cpp/", "rust/"] {
        let path = format!("\"src_path\":\"{examples}/{sub}");
        assert!(
            !meta.contains(&path),
            "goalloc's cargo metadata has a target under examples/{sub}"
        );
    }
    assert!(
        !meta.contains("goalloc-example"),
        "examples/rust is not a member of goalloc's workspace"
    );
}
