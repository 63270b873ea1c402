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
}

const fn c(name: &'static str, sources: &'static [&'static str]) -> Program {
    Program {
        name,
        sources,
        cxx: false,
        args: &[],
        startup_lib: false,
        timeout: Duration::from_secs(60),
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
const HEADER_API: Program = c("header_api", &["header_api.c"]);
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
    let mut cmd = common::program_command(&exe, preload);
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

/// `GOALLOC_STATS=1` on a python3 run appends the exit report to `GOALLOC_STATS_FILE`.
#[test]
fn python_stats_report_at_exit() {
    let lib = library();
    let dir = work_root().join("python_stats_report");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.txt");
    // The interpreter itself, not a version manager's shim (which would report too).
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for this test");
    let python = String::from_utf8(python.stdout).unwrap().trim().to_string();
    let out = Command::new(&python)
        .args([
            "-c",
            "d = {i: str(i) * 20 for i in range(300000)}; print(len(d))",
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
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "300000");
    let text = fs::read_to_string(&report).expect("the report file was written");
    assert_eq!(
        text.matches("goalloc statistics (at exit)").count(),
        1,
        "{text}"
    );
    for needle in [
        "heap:",
        "totals:",
        "scavenger:",
        "peak RSS:",
        "class     size",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // 300k strings of 100+ bytes went through malloc: the totals say so.
    let mallocs: u64 = text
        .split("totals: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a mallocs count");
    assert!(mallocs > 300_000, "{mallocs} mallocs in:\n{text}");
}
