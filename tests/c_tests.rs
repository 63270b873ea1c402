//! C and C++ test programs (c-tests/) run against the built `libgoalloc.so`.
//!
//! Each program is compiled and run twice, as two tests:
//! - `<name>_preload`: a plain binary, run with `LD_PRELOAD=<abs path of libgoalloc.so>`;
//! - `<name>_linked`: linked with `-L<dir> -lgoalloc -Wl,-rpath,<dir>`, run without
//!   preload. The `header_api` programs (which use `include/goalloc.h`) exist only in
//!   this mode.
//!
//! Both run with `GOALLOC_EXPECT=1` and `GOALLOC_LIB=<that file>`, so every program
//! first proves that its malloc (and what else it uses) really is goalloc's, from that
//! very file (c-tests/check.h).
//!
//! The library is `$CARGO_TARGET_DIR/release/libgoalloc.so` (default
//! `<manifest dir>/target/release/libgoalloc.so`), or the file `GOALLOC_LIB` names (it
//! must be called `libgoalloc.so`). If it does not exist it is built once with
//! `cargo build --release --lib`; an existing file is used as it is, so rebuild it after
//! changing the allocator. Binaries and their output go to `<target>/c-tests/<test>/`.
//! Compilers are `cc` and `c++`, or `$CC` and `$CXX`. With `GOALLOC_TEST_RUNNER` (a
//! qemu-user command) the programs run under it: scripts/test-aarch64.sh runs them for
//! aarch64 that way, with the cross compilers and `GOALLOC_LIB` of the aarch64 build.

mod common;
use common::command_line;
use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// How a program reaches goalloc.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Preload,
    Linked,
}

/// One test program under c-tests/.
struct Program {
    /// Stem of the test names and of the binary.
    name: &'static str,
    /// Sources, relative to c-tests/.
    sources: &'static [&'static str],
    cxx: bool,
    args: &'static [&'static str],
    /// Links c-tests/startup_lib.c, built as a shared library beside the binary.
    startup_lib: bool,
    /// Wall-clock limit for one run.
    timeout: Duration,
    /// A program (and its arguments) that runs the binary, e.g. valgrind.
    wrapper: &'static [&'static str],
}

const fn c(name: &'static str, sources: &'static [&'static str]) -> Program {
    Program {
        name,
        sources,
        cxx: false,
        args: &[],
        startup_lib: false,
        timeout: Duration::from_secs(60),
        wrapper: &[],
    }
}

const API: Program = c("api", &["api.c"]);
const ALIGN: Program = c("align", &["align.c"]);
const ALIGNED: Program = c("aligned", &["aligned.c"]);
const OVERFLOW: Program = c("overflow", &["overflow.c"]);
const REALLOC: Program = c("realloc", &["realloc.c"]);
/// 4 threads for 1000 ms.
const THREADS: Program = Program {
    args: &["4", "1000"],
    ..c("threads", &["threads.c"])
};
/// 300 forks; a hung child kills itself after 10 s (alarm), so the time limit is
/// only reached by a parent that hangs.
const FORK: Program = Program {
    args: &["300"],
    timeout: Duration::from_secs(120),
    ..c("fork", &["fork.c"])
};
/// fork beside stdio's locks for 3 s; a hang is caught by the program's own watchdog.
const FORK_STDIO: Program = Program {
    args: &["3000"],
    ..c("fork_stdio", &["fork_stdio.c"])
};
/// fork from a SIGPROF handler while the main loop forks, for 3 s; watchdog as above.
const FORK_SIGNAL: Program = Program {
    args: &["3000"],
    ..c("fork_signal", &["fork_signal.c"])
};
/// 5000 threads, 50 at a time.
const THREAD_CHURN: Program = Program {
    args: &["5000", "50"],
    ..c("thread_churn", &["thread_churn.c"])
};
const STARTUP: Program = Program {
    startup_lib: true,
    ..c("startup", &["startup.c"])
};
const CXX_NEW: Program = Program {
    cxx: true,
    ..c("cxx_new", &["cxx_new.cpp"])
};
/// The scavenger's cases, each in a process of its own; about 20 s.
const SCAVENGE: Program = Program {
    timeout: Duration::from_secs(120),
    ..c("scavenge", &["scavenge.c"])
};
/// Bad pointers and checked mode, each case in a process of its own.
const BADFREE: Program = c("badfree", &["badfree.c"]);
/// Out of memory under RLIMIT_AS.
const OOM: Program = c("oom", &["oom.c"]);
/// Statistics and the glibc-compatible views.
const STATS: Program = c("stats", &["stats.c"]);
/// Exact counts at quiescent points, across threads.
const STATS_EXACT: Program = c("stats_exact", &["stats_exact.c"]);
/// glibc's `__libc_malloc` & co., called directly and mixed with `free` & co.
const LIBC_NAMES: Program = c("libc_names", &["libc_names.c"]);
/// Heap profiling: its figures, threads, fork, a signal, free first (tests/profile.rs
/// reads a profile with google-pprof).
const PROFILE: Program = c("profile", &["profile.c"]);
const HEADER_API: Program = c("header_api", &["header_api.c"]);
/// A C++ program under valgrind's memcheck, which exits with 99 when it reports an error.
const VALGRIND_CXX: Program = Program {
    cxx: true,
    timeout: Duration::from_secs(180),
    wrapper: &["valgrind", "--error-exitcode=99"],
    ..c("valgrind_cxx", &["valgrind_cxx.cpp"])
};
const HEADER_API_CPP: Program = Program {
    cxx: true,
    ..c("header_api_cpp", &["header_api.cpp"])
};

macro_rules! c_test {
    ($test:ident, $program:expr, $mode:expr) => {
        #[test]
        fn $test() {
            run(&$program, $mode, stringify!($test));
        }
    };
}

c_test!(api_preload, API, Mode::Preload);
c_test!(api_linked, API, Mode::Linked);
c_test!(align_preload, ALIGN, Mode::Preload);
c_test!(align_linked, ALIGN, Mode::Linked);
c_test!(aligned_preload, ALIGNED, Mode::Preload);
c_test!(aligned_linked, ALIGNED, Mode::Linked);
c_test!(overflow_preload, OVERFLOW, Mode::Preload);
c_test!(overflow_linked, OVERFLOW, Mode::Linked);
c_test!(realloc_preload, REALLOC, Mode::Preload);
c_test!(realloc_linked, REALLOC, Mode::Linked);
c_test!(threads_preload, THREADS, Mode::Preload);
c_test!(threads_linked, THREADS, Mode::Linked);
c_test!(fork_preload, FORK, Mode::Preload);
c_test!(fork_linked, FORK, Mode::Linked);
c_test!(fork_stdio_preload, FORK_STDIO, Mode::Preload);
c_test!(fork_stdio_linked, FORK_STDIO, Mode::Linked);
c_test!(fork_signal_preload, FORK_SIGNAL, Mode::Preload);
c_test!(fork_signal_linked, FORK_SIGNAL, Mode::Linked);
c_test!(thread_churn_preload, THREAD_CHURN, Mode::Preload);
c_test!(thread_churn_linked, THREAD_CHURN, Mode::Linked);
c_test!(startup_preload, STARTUP, Mode::Preload);
c_test!(startup_linked, STARTUP, Mode::Linked);
c_test!(cxx_new_preload, CXX_NEW, Mode::Preload);
c_test!(cxx_new_linked, CXX_NEW, Mode::Linked);
c_test!(scavenge_preload, SCAVENGE, Mode::Preload);
c_test!(scavenge_linked, SCAVENGE, Mode::Linked);
c_test!(badfree_preload, BADFREE, Mode::Preload);
c_test!(badfree_linked, BADFREE, Mode::Linked);
c_test!(oom_preload, OOM, Mode::Preload);
c_test!(oom_linked, OOM, Mode::Linked);
c_test!(stats_preload, STATS, Mode::Preload);
c_test!(stats_linked, STATS, Mode::Linked);
c_test!(stats_exact_preload, STATS_EXACT, Mode::Preload);
c_test!(stats_exact_linked, STATS_EXACT, Mode::Linked);
c_test!(libc_names_preload, LIBC_NAMES, Mode::Preload);
c_test!(libc_names_linked, LIBC_NAMES, Mode::Linked);
c_test!(profile_preload, PROFILE, Mode::Preload);
c_test!(profile_linked, PROFILE, Mode::Linked);
c_test!(header_api_linked, HEADER_API, Mode::Linked);
c_test!(header_api_cpp_linked, HEADER_API_CPP, Mode::Linked);

// ---- paths ---------------------------------------------------------------------------

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                manifest_dir().join(dir)
            }
        }
        _ => manifest_dir().join("target"),
    }
}

fn work_root() -> PathBuf {
    target_dir().join("c-tests")
}

// ---- the library -------------------------------------------------------------------

/// The absolute path of libgoalloc.so, built if missing (once per process; a file lock
/// keeps concurrent test processes from building at the same time).
fn library() -> PathBuf {
    static LIB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match LIB.get_or_init(find_or_build_library) {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn find_or_build_library() -> Result<PathBuf, String> {
    if let Some(path) = env::var_os("GOALLOC_LIB").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let path =
            fs::canonicalize(&path).map_err(|e| format!("GOALLOC_LIB={}: {e}", path.display()))?;
        if path.file_name() != Some("libgoalloc.so".as_ref()) {
            return Err(format!(
                "GOALLOC_LIB={}: the file must be named libgoalloc.so (for -lgoalloc)",
                path.display()
            ));
        }
        return Ok(path);
    }
    let lib = target_dir().join("release").join("libgoalloc.so");
    if !lib.exists() {
        let root = work_root();
        fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
        let lock_path = root.join("build.lock");
        let lock = File::create(&lock_path)
            .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
        lock.lock()
            .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
        if !lib.exists() {
            build_library(&lib)?;
        }
        drop(lock);
    }
    fs::canonicalize(&lib).map_err(|e| format!("{}: {e}", lib.display()))
}

fn build_library(lib: &Path) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")));
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--lib"])
        .current_dir(manifest_dir());
    eprintln!("c_tests: {} is missing; running {cmd:?}", lib.display());
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !lib.exists() {
        return Err(format!(
            "{cmd:?} succeeded but {} does not exist",
            lib.display()
        ));
    }
    Ok(())
}

/// A hint for failure messages: a library older than the allocator's sources is
/// probably stale (this harness does not rebuild an existing library).
fn staleness_note(lib: &Path) -> String {
    fn newest(path: &Path, best: &mut Option<(SystemTime, PathBuf)>) {
        let Ok(meta) = fs::metadata(path) else { return };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(path) {
                for e in entries.flatten() {
                    newest(&e.path(), best);
                }
            }
        } else if let Ok(t) = meta.modified() {
            if best.as_ref().is_none_or(|(b, _)| t > *b) {
                *best = Some((t, path.to_path_buf()));
            }
        }
    }
    let Ok(built) = fs::metadata(lib).and_then(|m| m.modified()) else {
        return String::new();
    };
    let mut best = None;
    for p in ["src", "Cargo.toml", "build.rs"] {
        newest(&manifest_dir().join(p), &mut best);
    }
    match best {
        Some((t, path)) if t > built => format!(
            "\nnote: {} is older than {}: rebuild it with `cargo build --release`",
            lib.display(),
            path.display()
        ),
        _ => String::new(),
    }
}

// ---- compiling ---------------------------------------------------------------------

fn compiler(cxx: bool) -> OsString {
    let (var, default) = if cxx { ("CXX", "c++") } else { ("CC", "cc") };
    env::var_os(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from(default))
}

fn run_compiler(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "compiling {what} failed ({}):\n$ {}\n{}{}",
            out.status,
            command_line(&cmd),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Flags shared by every compilation.
fn common_flags(cmd: &mut Command, cxx: bool, src_dir: &Path) {
    cmd.arg(if cxx { "-std=c++17" } else { "-std=c11" })
        .args(["-O1", "-g", "-pthread", "-Wall", "-Werror"])
        .arg("-I")
        .arg(src_dir);
}

/// Builds the program for a mode into dir; returns the executable.
fn compile(p: &Program, mode: Mode, lib: &Path, dir: &Path) -> PathBuf {
    let src_dir = manifest_dir().join("c-tests");
    let exe = dir.join(p.name);
    let mut cmd = Command::new(compiler(p.cxx));
    common_flags(&mut cmd, p.cxx, &src_dir);
    // The header's types serve preloaded programs too (they find the functions with dlsym).
    cmd.arg("-I").arg(manifest_dir().join("include"));
    cmd.args(p.sources.iter().map(|s| src_dir.join(s)));
    cmd.arg("-o").arg(&exe);
    if p.startup_lib {
        let mut so = Command::new(compiler(false));
        common_flags(&mut so, false, &src_dir);
        so.args(["-fPIC", "-shared"])
            .arg(src_dir.join("startup_lib.c"))
            .arg("-o")
            .arg(dir.join("libstartup_lib.so"));
        run_compiler(so, "startup_lib.c");
        cmd.arg(format!("-L{}", dir.display()))
            .arg(format!("-Wl,-rpath,{}", dir.display()))
            .arg("-lstartup_lib");
    }
    if mode == Mode::Linked {
        let lib_dir = lib.parent().expect("library path has a directory");
        cmd.arg(format!("-L{}", lib_dir.display()))
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
            .args(["-Wl,--no-as-needed", "-lgoalloc"]);
    }
    cmd.arg("-ldl");
    run_compiler(cmd, &p.sources.join(" "));
    exe
}

// ---- running -----------------------------------------------------------------------

fn read_tail(path: &Path, max: usize) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if text.len() > max {
        let mut cut = text.len() - max;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        format!("[... {cut} bytes cut ...]\n{}", &text[cut..])
    } else {
        text
    }
}

fn describe(status: Option<ExitStatus>, timeout: Duration) -> String {
    match status {
        None => format!("did not finish within {timeout:?} and was killed"),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => {
                let name = match sig {
                    libc_signals::SIGABRT => " (SIGABRT: a CHECK failed or the allocator aborted)",
                    libc_signals::SIGSEGV => " (SIGSEGV)",
                    libc_signals::SIGBUS => " (SIGBUS)",
                    libc_signals::SIGALRM => " (SIGALRM)",
                    libc_signals::SIGKILL => " (SIGKILL)",
                    _ => "",
                };
                format!(
                    "was killed by signal {sig}{name}{}",
                    if s.core_dumped() { ", core dumped" } else { "" }
                )
            }
            _ => format!("{s}"),
        },
    }
}

/// Signal numbers on Linux (no extra crates in this test).
mod libc_signals {
    pub const SIGABRT: i32 = 6;
    pub const SIGBUS: i32 = 7;
    pub const SIGKILL: i32 = 9;
    pub const SIGSEGV: i32 = 11;
    pub const SIGALRM: i32 = 14;
}

fn run(p: &Program, mode: Mode, test: &str) {
    let lib = library();
    let dir = work_root().join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let exe = compile(p, mode, &lib, &dir);

    let stdout_path = dir.join("stdout.txt");
    let stderr_path = dir.join("stderr.txt");
    let preload: &[(&str, &std::ffi::OsStr)] = match mode {
        Mode::Preload => &[("LD_PRELOAD", lib.as_os_str())],
        Mode::Linked => &[],
    };
    let mut cmd = match p.wrapper.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(&exe).envs(preload.iter().copied());
            cmd
        }
        None => common::program_command(&exe, preload),
    };
    cmd.args(p.args)
        .current_dir(&dir)
        .env("GOALLOC_EXPECT", "1")
        .env("GOALLOC_LIB", &lib)
        // cargo points LD_LIBRARY_PATH at target/*/deps, which may hold another build of
        // the library; the programs must load the one named above.
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("creating stdout.txt"))
        .stderr(File::create(&stderr_path).expect("creating stderr.txt"));
    if mode == Mode::Linked {
        cmd.env_remove("LD_PRELOAD");
    }

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let status = loop {
        match child.try_wait().expect("waiting for the test program") {
            Some(status) => break Some(status),
            None if started.elapsed() > p.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    let elapsed = started.elapsed();
    let stdout = read_tail(&stdout_path, 16 * 1024);
    let stderr = read_tail(&stderr_path, 16 * 1024);
    let ok = matches!(status, Some(s) if s.success());
    if !ok {
        panic!(
            "{test}: {} {} after {elapsed:.2?}\n$ {}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}{}",
            exe.display(),
            describe(status, p.timeout),
            command_line(&cmd),
            staleness_note(&lib),
        );
    }
    // shown with --nocapture (or --show-output)
    println!("{test}: ok in {elapsed:.2?}\n{stdout}{stderr}");
}

/// valgrind's memcheck replaces the allocation functions of every library by name,
/// `libgoalloc.so`'s included, and tells them apart by address: a correct C++ program
/// linked with `-lgoalloc` must get no error from it (it reported thousands of mismatched
/// frees when `operator delete` and `operator delete[]` shared an address).
#[test]
fn valgrind_cxx_linked() {
    let found = Command::new("valgrind").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "valgrind is needed for this test (Debian: apt-get install valgrind)"
    );
    run(&VALGRIND_CXX, Mode::Linked, "valgrind_cxx_linked");
    let stderr = fs::read_to_string(work_root().join("valgrind_cxx_linked/stderr.txt"))
        .expect("valgrind's output");
    assert!(
        stderr.contains("ERROR SUMMARY: 0 errors from 0 contexts"),
        "valgrind reported errors:\n{stderr}"
    );
}

/// No two functions `libgoalloc.so` exports share an address, so that tools that know
/// functions by address (valgrind, profilers, debuggers) name the one the program called.
#[test]
fn exported_functions_have_addresses_of_their_own() {
    let lib = library();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("nm (binutils) is needed for this test");
    assert!(out.status.success(), "nm -D {} failed", lib.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut by_address: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for line in text.lines() {
        // "<address> <type> <name>"; T/t: code, W/w: weak, i: an ifunc
        if let [address, kind, name] = line.split_whitespace().collect::<Vec<_>>()[..] {
            if matches!(kind, "T" | "t" | "W" | "w" | "i") {
                by_address.entry(address).or_default().push(name);
            }
        }
    }
    for name in ["malloc", "free", "_ZdlPv", "_ZdaPv", "__libc_malloc"] {
        assert!(
            by_address.values().flatten().any(|n| *n == name),
            "{name} is not exported by {}:\n{text}",
            lib.display()
        );
    }
    let shared: Vec<String> = by_address
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(address, names)| format!("{address}: {}", names.join(" ")))
        .collect();
    assert!(
        shared.is_empty(),
        "exported functions that share an address in {}:\n{}",
        lib.display(),
        shared.join("\n")
    );
}

/// `GOALLOC_STATS=1` on a python3 run appends the exit report to `GOALLOC_STATS_FILE`.
#[test]
fn python_stats_report_at_exit() {
    let lib = library();
    let dir = work_root().join("python_stats_report");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.txt");
    let out = Command::new(reports::python())
        .args([
            "-c",
            "import os; d = {i: str(i) * 20 for i in range(300000)}; print(len(d), os.getpid())",
        ])
        .env("LD_PRELOAD", &lib)
        .env("PYTHONMALLOC", "malloc")
        .env("GOALLOC_STATS", "1")
        .env("GOALLOC_STATS_FILE", &report)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (count, pid) = stdout.trim().split_once(' ').unwrap();
    assert_eq!(count, "300000");
    let text = fs::read_to_string(&report).expect("the report file was written");
    let r = reports::parse_text_reports(&text);
    assert_eq!(r.len(), 1, "{text}");
    assert_eq!(r[0].pid.to_string(), pid);
    assert!(r[0].program.starts_with("python3"), "{:?}", r[0]);
    assert_eq!(r[0].when, "at exit");
    assert!(r[0].command.contains("range(300000)"), "{:?}", r[0]);
    // 300k strings of 100+ bytes went through malloc: the totals say so.
    assert!(r[0].field("mallocs") > 300_000, "{text}");
    assert!(r[0].field("heap_sys") >= r[0].field("heap_inuse"), "{text}");
    assert!(r[0].field("peak_rss") > 10 << 20, "{text}");
    assert!(r[0].classes.len() > 10, "{text}");
}

// ---- statistics reports, version and options under a real program --------------------

mod reports;

/// A python3 command under the library, run in `dir`, with `env` set; its output.
fn python_under_goalloc(dir: &Path, script: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(reports::python());
    cmd.args(["-c", script])
        .current_dir(dir)
        .env("LD_PRELOAD", library())
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("GOALLOC_STATS")
        .env_remove("GOALLOC_STATS_FILE")
        .env_remove("GOALLOC_VERBOSE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        command_line(&cmd),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = work_root().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `GOALLOC_STATS=json` writes one JSON object on one line that python3's `json` reads,
/// with every field of the header's struct under its name, and the process's names.
#[test]
fn stats_json_at_exit() {
    let dir = fresh_dir("stats_json_at_exit");
    let report = dir.join("report.json");
    let out = python_under_goalloc(
        &dir,
        "import os; d = [str(i) * 20 for i in range(100000)]; print(os.getpid())",
        &[
            ("GOALLOC_STATS", "json"),
            ("GOALLOC_STATS_FILE", report.to_str().unwrap()),
            ("PYTHONMALLOC", "malloc"),
        ],
    );
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let text = fs::read_to_string(&report).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let r = reports::parse_json_lines(&text);
    assert_eq!(r.len(), 1);
    let names: Vec<&str> = r[0].members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, reports::json_report_members());
    assert_eq!(r[0].get("pid"), pid);
    assert_eq!(r[0].get("version"), format!("\"{}\"", reports::VERSION));
    assert!(r[0].get("program").starts_with("\"python3"), "{r:?}");
    assert_eq!(r[0].get("when"), "\"exit\"");
    assert!(r[0].number("mallocs") > 100_000);
    assert_eq!(
        r[0].number("heap_sys"),
        r[0].number("heap_inuse") + r[0].number("heap_idle")
    );
    assert!(!r[0].classes.is_empty());
    for c in &r[0].classes {
        assert_eq!(c[4], c[2] - c[3], "live = mallocs - frees: {c:?}");
    }
}

/// A program name with a quote, a backslash, a newline and a byte that is not UTF-8
/// stays one JSON string and one line of the text report.
#[test]
fn stats_reports_escape_the_program_name() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let dir = fresh_dir("stats_escape");
    let name = std::ffi::OsStr::from_bytes(b"we\"ird\\na\nme\xff");
    for format in ["json", "text"] {
        let report = dir.join(format!("report.{format}"));
        // bash, not dash: dash leaves with _exit, which runs no exit handlers.
        let out = Command::new("bash")
            .arg0(name)
            .args(["-c", "echo $$"])
            .env("LD_PRELOAD", library())
            .env_remove("LD_LIBRARY_PATH")
            .env("GOALLOC_STATS", format)
            .env("GOALLOC_STATS_FILE", &report)
            .output()
            .unwrap();
        assert!(out.status.success());
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let text = fs::read_to_string(&report).unwrap();
        if format == "json" {
            let r = reports::parse_json_lines(&text);
            assert_eq!(r.len(), 1, "{text}");
            assert_eq!(r[0].get("program"), r#""we\"ird\\na\nme\ufffd""#);
            assert_eq!(r[0].get("pid"), pid);
        } else {
            let r = reports::parse_text_reports(&text);
            assert_eq!(r.len(), 1, "{text}");
            assert_eq!(r[0].program, "we\"ird\\na?me?");
            assert_eq!(r[0].pid.to_string(), pid);
            assert!(
                r[0].command.starts_with("we\"ird\\na?me? -c echo $$"),
                "{r:?}"
            );
        }
    }
}

/// Reports of processes that exit at the same moment and append to one file: each is
/// whole, and its first line names its own process.
#[test]
fn concurrent_reports_are_told_apart() {
    use std::io::{BufRead, BufReader};
    const N: usize = 8;
    let dir = fresh_dir("concurrent_reports");
    for format in ["text", "json"] {
        let report = dir.join(format!("reports.{format}"));
        let mut children = Vec::new();
        for i in 0..N {
            // Each allocates its own mix (so each report has its own figures and a row per
            // class it used, 5 to 6 KiB of text), says so, and exits when stdin closes.
            let script = format!(
                "import sys; tag = 'tag-{i}'; d = [bytes(s % 3000) for s in range({})]; \
                 print('ready', flush=True); sys.stdin.read()",
                20000 + 1000 * i
            );
            let child = Command::new(reports::python())
                .args(["-c", &script])
                .env("LD_PRELOAD", library())
                .env_remove("LD_LIBRARY_PATH")
                .env("PYTHONMALLOC", "malloc")
                .env("GOALLOC_STATS", format)
                .env("GOALLOC_STATS_FILE", &report)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            children.push(child);
        }
        let mut stdins = Vec::new();
        for c in children.iter_mut() {
            let mut line = String::new();
            BufReader::new(c.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "ready\n");
            stdins.push(c.stdin.take().unwrap());
        }
        drop(stdins); // all exit now
        let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let text = fs::read_to_string(&report).unwrap();
        let seen: Vec<(u32, String)> = if format == "text" {
            let r = reports::parse_text_reports(&text);
            r.iter().map(|r| (r.pid, r.command.clone())).collect()
        } else {
            assert_eq!(text.lines().count(), N, "{text}");
            reports::parse_json_lines(&text)
                .iter()
                .map(|r| (r.number("pid") as u32, r.get("command").to_string()))
                .collect()
        };
        assert_eq!(seen.len(), N, "{format}: {text}");
        for (i, pid) in pids.iter().enumerate() {
            let mine: Vec<&(u32, String)> = seen.iter().filter(|(p, _)| p == pid).collect();
            assert_eq!(mine.len(), 1, "{format}: one report of pid {pid}: {seen:?}");
            assert!(
                mine[0].1.contains(&format!("tag-{i}'")),
                "{format}: pid {pid} is child {i}: {}",
                mine[0].1
            );
        }
    }
}

/// `make -j2` under goalloc, both recipes running at once, all appending to one file: a
/// report per process (make's own, each recipe's), each whole and naming its process.
#[test]
fn make_j2_reports_are_told_apart() {
    let dir = fresh_dir("make_j2_reports");
    let report = dir.join("reports.txt");
    let py = reports::python();
    // Each recipe waits until the other has started, so that both run and exit together.
    let makefile = format!(
        "all: a b\n\
         a b:\n\
         \t{py} -c \"import os, time; open('$@', 'w').close(); d = [str(i) for i in range(50000)]; \
         other = {{'a': 'b', 'b': 'a'}}['$@']; [time.sleep(0.01) for _ in range(500) if not os.path.exists(other)]\"\n"
    );
    fs::write(dir.join("Makefile"), makefile).unwrap();
    let out = Command::new("make")
        .args(["-j2", "-s"])
        .current_dir(&dir)
        .env("LD_PRELOAD", library())
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env("GOALLOC_STATS", "1")
        .env("GOALLOC_STATS_FILE", &report)
        .output()
        .expect("make is needed for this test");
    assert!(
        out.status.success(),
        "make failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&report).unwrap();
    let r = reports::parse_text_reports(&text);
    let mut pids: Vec<u32> = r.iter().map(|r| r.pid).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), r.len(), "one report per process: {text}");
    assert_eq!(
        r.iter().filter(|r| r.program == "make").count(),
        1,
        "{text}"
    );
    for target in ["a", "b"] {
        let recipe = format!("['{target}']");
        assert_eq!(
            r.iter()
                .filter(|r| r.program.starts_with("python3") && r.command.contains(&recipe))
                .count(),
            1,
            "one report of recipe {target}: {text}"
        );
    }
}

/// `GOALLOC_STATS_FILE=report.%p.txt`: `%p` is the pid, and a relative name is taken
/// from the directory the program started in, though it changed directory since.
#[test]
fn stats_file_pid_and_start_dir() {
    let dir = fresh_dir("stats_file_pid");
    let elsewhere = fresh_dir("stats_file_pid_elsewhere");
    let out = python_under_goalloc(
        &dir,
        &format!(
            "import os; os.chdir({:?}); print(os.getpid())",
            elsewhere.to_str().unwrap()
        ),
        &[
            ("GOALLOC_STATS", "1"),
            ("GOALLOC_STATS_FILE", "report.%p.txt"),
        ],
    );
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let name = format!("report.{pid}.txt");
    let text = fs::read_to_string(dir.join(&name))
        .unwrap_or_else(|e| panic!("{name} in the start directory: {e}"));
    let r = reports::parse_text_reports(&text);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].pid.to_string(), pid);
    assert!(
        fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "nothing where it went"
    );
}

/// A report file that cannot be opened gives one warning naming it and why, and the
/// report goes to stderr instead.
#[test]
fn stats_file_that_cannot_be_opened_warns() {
    let dir = fresh_dir("stats_file_unopenable");
    let path = dir.join("no-such-dir").join("r.txt");
    let out = python_under_goalloc(
        &dir,
        "pass",
        &[
            ("GOALLOC_STATS", "1"),
            ("GOALLOC_STATS_FILE", path.to_str().unwrap()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warning = format!(
        "goalloc: warning: cannot open GOALLOC_STATS_FILE {}: No such file or directory; \
         the report goes to stderr\n",
        path.display()
    );
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    let r = reports::parse_text_reports(&stderr.replace(&warning, ""));
    assert_eq!(r.len(), 1, "{stderr}");
}

/// `GOALLOC_VERBOSE=1` names the version and the file goalloc was loaded from.
#[test]
fn verbose_names_version_and_library() {
    let dir = fresh_dir("verbose_version");
    let out = python_under_goalloc(&dir, "pass", &[("GOALLOC_VERBOSE", "1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "goalloc: version {}, loaded from {}\n",
        reports::VERSION,
        library().display()
    );
    assert!(stderr.starts_with(&want), "want {want:?}, got:\n{stderr}");
    assert!(stderr.contains("goalloc: option GOALLOC_VERBOSE=1 (environment)\n"));
}

/// Values in any case and as yes/no words are taken; a malformed value's warning lists
/// the valid ones; an unknown `GOALLOC_` variable gets one warning naming the option it
/// probably meant (or all of them).
#[test]
fn options_forgive_and_explain() {
    let dir = fresh_dir("options_forgive");
    // A bad free: with GOALLOC_INVALID_FREE=Warn it prints a line and the program goes on.
    let script =
        "import ctypes; ctypes.CDLL(None).free(ctypes.c_void_p(0x12345678)); print('alive')";
    let out = python_under_goalloc(
        &dir,
        script,
        &[
            ("GOALLOC_INVALID_FREE", "Warn"),
            ("GOALLOC_STATS", "ON"),
            ("GOALLOC_SCAVENGE", "No"),
            ("GOALLOC_MADVISE", "never"),
            ("GOALLOC_STAT", "1"),
            ("GOALLOC_FOO", "2"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alive\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let once = |line: &str| {
        assert_eq!(
            stderr.matches(line).count(),
            1,
            "{line:?} once in:\n{stderr}"
        );
    };
    once("goalloc: free(): invalid pointer (not allocated by goalloc) 0x12345678 (ignored)\n");
    once(
        "goalloc: warning: ignoring GOALLOC_MADVISE=never (valid: dontneed, free); \
         using the default, dontneed\n",
    );
    once(
        "goalloc: warning: ignoring unknown variable GOALLOC_STAT (did you mean GOALLOC_STATS?)\n",
    );
    once(
        "goalloc: warning: ignoring unknown variable GOALLOC_FOO (the options are \
         GOALLOC_SCAVENGE, GOALLOC_SCAVENGE_DELAY_MS, GOALLOC_MADVISE, GOALLOC_INVALID_FREE, \
         GOALLOC_CHECK, GOALLOC_STATS, GOALLOC_STATS_FILE, GOALLOC_VERBOSE, GOALLOC_PROFILE, \
         GOALLOC_PROFILE_RATE, GOALLOC_PROFILE_SIGNAL)\n",
    );
    // GOALLOC_STATS=ON: the report; GOALLOC_SCAVENGE=No: the scavenger never started.
    let at = stderr.find("goalloc 0").expect("a report");
    let r = reports::parse_text_reports(&stderr[at..]);
    assert_eq!(r.len(), 1, "{stderr}");
    assert_eq!(r[0].field("scav_running"), 0);
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("goalloc: warning"))
            .count(),
        3,
        "{stderr}"
    );
}

/// The report at exit reaches its file in one `write(2)` (seen with strace), so that
/// reports appended by processes that exit together cannot interleave.
#[test]
fn report_at_exit_is_one_write() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("report_at_exit_is_one_write: strace is not installed; not run");
        return;
    }
    let dir = fresh_dir("report_one_write");
    for format in ["text", "json"] {
        let report = dir.join(format!("report.{format}"));
        let trace = dir.join(format!("strace.{format}"));
        // Only the traced program runs under goalloc; strace itself does not.
        let out = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-s",
                "0",
                "-e",
                "trace=openat,write,writev,pwrite64,close",
            ])
            .arg("-o")
            .arg(&trace)
            .arg("-E")
            .arg(format!("LD_PRELOAD={}", library().display()))
            .args(["-E", &format!("GOALLOC_STATS={format}")])
            .arg("-E")
            .arg(format!("GOALLOC_STATS_FILE={}", report.display()))
            .arg(reports::python())
            .args(["-c", "d = [str(i) * (i % 500) for i in range(20000)]"])
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let size = fs::metadata(&report).unwrap().len();
        assert!(
            size > 4096,
            "a report larger than a pipe's atomic write: {size} bytes"
        );
        let trace = fs::read_to_string(&trace).unwrap();
        let name = format!("\"{}\"", report.display());
        let open = trace
            .lines()
            .find(|l| l.contains("openat(") && l.contains(&name))
            .unwrap_or_else(|| panic!("no openat of {name} in\n{trace}"));
        let fd = open.rsplit("= ").next().unwrap().trim();
        let writes: Vec<&str> = trace
            .lines()
            .skip_while(|l| *l != open)
            .take_while(|l| !l.contains(&format!("close({fd})")))
            .filter(|l| {
                ["write(", "writev(", "pwrite64("]
                    .iter()
                    .any(|w| l.contains(&format!("{w}{fd},")))
            })
            .collect();
        assert_eq!(writes.len(), 1, "{format}: {writes:#?}");
        assert!(
            writes[0].ends_with(&format!("= {size}")),
            "{format}: {}",
            writes[0]
        );
    }
}
