//! Options: every `GOALLOC_*` environment variable, in one table, read once at start.
//!
//! The environment is read by walking `environ` directly: no allocation, so it works from
//! inside the first `malloc` of a preloaded library. Values forgive: case does not matter
//! (`Warn`, `FREE`), surrounding blanks are dropped, and every on/off option takes
//! `0`/`1`, `no`/`yes`, `false`/`true` and `off`/`on`. A malformed value prints one warning
//! line that lists the valid values, and keeps the default; a `GOALLOC_*` variable that
//! is no option (a typo such as `GOALLOC_STAT`) prints one warning that names the option
//! it probably meant. The first read of any option loads them all, whichever
//! entry point it comes from: a program whose first call is a bad `free` gets the
//! `GOALLOC_INVALID_FREE` it asked for, and `GOALLOC_VERBOSE` prints for it.

use crate::os;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One option: its variable, its default, what it means, and how its text is read.
pub struct OptionDef {
    pub name: &'static str,
    pub default: u64,
    /// The default as the user writes it.
    pub default_text: &'static str,
    pub help: &'static str,
    /// The values it accepts, as the warning for a malformed one lists them.
    pub values: &'static str,
    parse: fn(&[u8]) -> Option<u64>,
}

/// The words of an on/off option and their values; any case.
const BOOL_WORDS: [(&str, u64); 8] = [
    ("0", 0),
    ("1", 1),
    ("no", 0),
    ("yes", 1),
    ("false", 0),
    ("true", 1),
    ("off", 0),
    ("on", 1),
];
/// `BOOL_WORDS`, as a warning lists them.
const BOOL_VALUES: &str = "0, 1, no, yes, false, true, off, on";

/// The value of `v` when it is one of `words`, in any case.
fn lookup(v: &[u8], words: &[(&str, u64)]) -> Option<u64> {
    words
        .iter()
        .find(|(w, _)| v.eq_ignore_ascii_case(w.as_bytes()))
        .map(|&(_, x)| x)
}

fn parse_bool(v: &[u8]) -> Option<u64> {
    lookup(v, &BOOL_WORDS)
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + (c - b'0') as u64)
    })
}

const MADVISE_WORDS: [(&str, u64); 2] = [("dontneed", MADVISE_DONTNEED), ("free", MADVISE_FREE)];

fn parse_madvise(v: &[u8]) -> Option<u64> {
    lookup(v, &MADVISE_WORDS)
}

const INVALID_WORDS: [(&str, u64); 3] = [
    ("abort", INVALID_ABORT),
    ("warn", INVALID_WARN),
    ("ignore", INVALID_IGNORE),
];

fn parse_invalid(v: &[u8]) -> Option<u64> {
    lookup(v, &INVALID_WORDS)
}

/// `GOALLOC_STATS` takes these besides the on/off words (on is `text`).
const STATS_WORDS: [(&str, u64); 2] = [("text", STATS_TEXT), ("json", STATS_JSON)];

fn parse_stats(v: &[u8]) -> Option<u64> {
    lookup(v, &STATS_WORDS).or_else(|| parse_bool(v))
}

pub const INVALID_ABORT: u64 = 0;
pub const INVALID_WARN: u64 = 1;
pub const INVALID_IGNORE: u64 = 2;

pub const MADVISE_DONTNEED: u64 = 0;
pub const MADVISE_FREE: u64 = 1;

pub const STATS_OFF: u64 = 0;
pub const STATS_TEXT: u64 = 1;
pub const STATS_JSON: u64 = 2;

/// Declares `Opt`, an option per variant named as its variable without `GOALLOC_`, and
/// `OPTIONS`, their rows in the same order, each row's `name` made from its variant: a
/// variant cannot name another option's row, so there are no indexes to get wrong.
macro_rules! options {
    ($($opt:ident { $($field:ident: $value:expr,)* })*) => {
        /// An option, named as its variable without `GOALLOC_`: `get(SCAVENGE)` is
        /// `GOALLOC_SCAVENGE`'s value, and `OPTIONS[SCAVENGE as usize]` its row.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub enum Opt {
            $($opt,)*
        }

        pub use Opt::*;

        impl Opt {
            /// Every option, in the table's order.
            pub const ALL: [Opt; NUM_OPTIONS] = [$(Opt::$opt),*];
        }

        const NUM_OPTIONS: usize = [$(Opt::$opt),*].len();

        /// The table of options, in `Opt`'s order.
        pub static OPTIONS: [OptionDef; NUM_OPTIONS] = [$(
            OptionDef {
                name: concat!("GOALLOC_", stringify!($opt)),
                $($field: $value,)*
            },
        )*];
    };
}

fn parse_text(_: &[u8]) -> Option<u64> {
    Some(1)
}

options! {
    SCAVENGE {
        default: 1,
        default_text: "1",
        help: "1: a background thread returns idle free pages to the OS; 0: only malloc_trim does",
        values: BOOL_VALUES,
        parse: parse_bool,
    }
    SCAVENGE_DELAY_MS {
        default: 1000,
        default_text: "1000",
        help: "milliseconds a free page must stay unused before the scavenger may release it",
        values: "a whole number of milliseconds",
        parse: parse_u64,
    }
    MADVISE {
        default: MADVISE_DONTNEED,
        default_text: "dontneed",
        help: "dontneed: released pages leave RSS at once and read as zero; free: MADV_FREE, the kernel takes them under pressure",
        values: "dontneed, free",
        parse: parse_madvise,
    }
    INVALID_FREE {
        default: INVALID_ABORT,
        default_text: "abort",
        help: "what a bad pointer passed to free, realloc or malloc_usable_size gets: abort (a goalloc: line, then abort()), warn (the line, and the call does nothing), ignore",
        values: "abort, warn, ignore",
        parse: parse_invalid,
    }
    CHECK {
        default: 0,
        default_text: "0",
        help: "1: checked mode: every double free and every write to freed memory is detected, at a large cost in speed",
        values: BOOL_VALUES,
        parse: parse_bool,
    }
    STATS {
        default: 0,
        default_text: "0",
        help: "1 (or text): print a report at exit: the program and its pid, every figure of goalloc_mem_stats, peak RSS, a row per size class in use; json: the same as one JSON object on one line",
        values: "0, 1, text, json, no, yes, false, true, off, on",
        parse: parse_stats,
    }
    STATS_FILE {
        default: 0,
        default_text: "stderr",
        help: "the file GOALLOC_STATS appends its report to: %p stands for the pid, a relative name is taken from the directory the program started in; one warning when it cannot be opened (the report then goes to stderr)",
        values: "a file name",
        parse: parse_text,
    }
    VERBOSE {
        default: 0,
        default_text: "0",
        help: "1: print goalloc's version, the file it was loaded from and the effective options at start",
        values: BOOL_VALUES,
        parse: parse_bool,
    }
    PROFILE {
        default: 0,
        default_text: "off",
        help: "heap profiling: the file the profile goes to at exit (gperftools' heap format, for pprof); %p in it is the process id",
        values: "a file name",
        parse: parse_text,
    }
    PROFILE_RATE {
        default: 524288,
        default_text: "524288",
        help: "with GOALLOC_PROFILE: the mean number of bytes allocated between two samples (Go's MemProfileRate); 0: no samples",
        values: "a whole number of bytes",
        parse: parse_u64,
    }
    PROFILE_SIGNAL {
        default: 0,
        default_text: "0",
        help: "with GOALLOC_PROFILE: a signal number (e.g. 12 for SIGUSR2) on which the profile is written; 0: none",
        values: "a signal number",
        parse: parse_u64,
    }
}

static VALUES: [AtomicU64; NUM_OPTIONS] = [const { AtomicU64::new(0) }; NUM_OPTIONS];
/// Every value is stored. Threads that race to load all store the same values (the
/// environment's), so none waits for another: a waiting loop could spin forever in a
/// signal handler that interrupted the load on its own thread.
static LOADED: AtomicBool = AtomicBool::new(false);
/// A thread has claimed the warnings and the `GOALLOC_VERBOSE` lines, printed once.
static REPORTED: AtomicBool = AtomicBool::new(false);

extern "C" {
    static environ: *const *const libc::c_char;
}

/// The value of `name` in the environment, without allocating.
fn getenv(name: &str) -> Option<&'static [u8]> {
    // SAFETY: environ is a null-terminated array of NUL-terminated strings that the
    // program does not free while we read it (we read it when the options load, and the
    // text options, GOALLOC_STATS_FILE and GOALLOC_PROFILE, at start and at exit).
    unsafe {
        let mut e = environ;
        if e.is_null() {
            return None;
        }
        while !(*e).is_null() {
            let entry = core::ffi::CStr::from_ptr(*e).to_bytes();
            if entry.len() > name.len()
                && entry.starts_with(name.as_bytes())
                && entry[name.len()] == b'='
            {
                return Some(&entry[name.len() + 1..]);
            }
            e = e.add(1);
        }
    }
    None
}

/// The value `text` gives option `opt`, blanks around it ignored; None when malformed.
fn parse(opt: &OptionDef, text: &[u8]) -> Option<u64> {
    (opt.parse)(text.trim_ascii())
}

/// `goalloc: warning: ignoring GOALLOC_MADVISE=never (valid: dontneed, free); using the
/// default, dontneed`.
fn warn_malformed(opt: &OptionDef, text: &[u8]) {
    os::write_stderr(&[
        b"goalloc: warning: ignoring ",
        opt.name.as_bytes(),
        b"=",
        &text[..text.len().min(64)],
        b" (valid: ",
        opt.values.as_bytes(),
        b"); using the default, ",
        opt.default_text.as_bytes(),
    ]);
}

/// Names that begin with `GOALLOC_` but are read by goalloc's own build and test tools,
/// not by the library: no warning for them.
const NOT_OPTIONS: [&str; 8] = [
    "GOALLOC_LIB",           // tests/c_tests.rs, c-tests/check.h: the library under test
    "GOALLOC_EXPECT",        // c-tests/check.h: fail unless malloc is goalloc's
    "GOALLOC_UPDATE_HEADER", // build.rs: write include/goalloc.h
    "GOALLOC_PROPTEST_SEED", // tests/property.rs
    "GOALLOC_PROPTEST_CASES",
    "GOALLOC_TEST_BAD_FREE", // tests/api.rs: the case a child process runs
    "GOALLOC_TEST_RUNNER",   // tests/common: qemu-user for the aarch64 tests
    "GOALLOC_PROFILE_TEST_DUMP", // c-tests/profile.c
];

/// The entries of `environ` (`NAME=value`), without allocating.
struct Environ(*const *const libc::c_char);

impl Environ {
    fn new() -> Environ {
        // SAFETY: reading the pointer; environ is null or a valid array (see getenv).
        Environ(unsafe { environ })
    }
}

impl Iterator for Environ {
    type Item = &'static [u8];
    fn next(&mut self) -> Option<&'static [u8]> {
        // SAFETY: as in getenv: a null-terminated array of NUL-terminated strings that
        // the program does not change while we read it at initialisation.
        unsafe {
            if self.0.is_null() || (*self.0).is_null() {
                return None;
            }
            let entry = core::ffi::CStr::from_ptr(*self.0).to_bytes();
            self.0 = self.0.add(1);
            Some(entry)
        }
    }
}

/// One warning for each variable that starts with `GOALLOC_` (in any case) and is no
/// option, naming the option it most likely means, or all of them.
fn warn_unknown_variables() {
    for entry in Environ::new() {
        let name = entry.split(|&c| c == b'=').next().unwrap_or(entry);
        if name.len() < 8 || !name[..8].eq_ignore_ascii_case(b"GOALLOC_") {
            continue;
        }
        if OPTIONS.iter().any(|o| o.name.as_bytes() == name)
            || NOT_OPTIONS.iter().any(|n| n.as_bytes() == name)
        {
            continue;
        }
        let name = &name[..name.len().min(64)];
        match nearest_option(name) {
            Some(o) => os::write_stderr(&[
                b"goalloc: warning: ignoring unknown variable ",
                name,
                b" (did you mean ",
                o.name.as_bytes(),
                b"?)",
            ]),
            None => {
                let mut parts: [&[u8]; 4 + 2 * NUM_OPTIONS] = [b""; 4 + 2 * NUM_OPTIONS];
                parts[0] = b"goalloc: warning: ignoring unknown variable ";
                parts[1] = name;
                parts[2] = b" (the options are";
                for (i, o) in OPTIONS.iter().enumerate() {
                    parts[3 + 2 * i] = if i == 0 { b" " } else { b", " };
                    parts[4 + 2 * i] = o.name.as_bytes();
                }
                parts[3 + 2 * NUM_OPTIONS] = b")";
                os::write_stderr(&parts);
            }
        }
    }
}

/// The option whose name is closest to `name` (case ignored): at most two letters
/// inserted, deleted or changed, or one name a prefix of the other.
fn nearest_option(name: &[u8]) -> Option<&'static OptionDef> {
    let mut best: Option<(usize, &OptionDef)> = None;
    for o in OPTIONS.iter() {
        let d = edit_distance(name, o.name.as_bytes());
        let prefix = {
            let n = name.len().min(o.name.len());
            n > 8 + 3 && name[..n].eq_ignore_ascii_case(&o.name.as_bytes()[..n])
        };
        if (d <= 2 || prefix) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, o));
        }
    }
    best.map(|(_, o)| o)
}

/// Levenshtein distance of two names of up to 64 bytes, case ignored; on the stack.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    const MAX: usize = 64;
    let (a, b) = (&a[..a.len().min(MAX)], &b[..b.len().min(MAX)]);
    let mut prev = [0usize; MAX + 1];
    let mut cur = [0usize; MAX + 1];
    for (j, p) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *p = j;
    }
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let change = prev[j] + !ca.eq_ignore_ascii_case(&cb) as usize;
            cur[j + 1] = change.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Reads every option from the environment, unless that is done: from `crate::init`, and
/// from `get` on any path that reads an option before it.
#[inline]
pub fn load() {
    if !LOADED.load(Ordering::Acquire) {
        load_slow();
    }
}

#[cold]
#[inline(never)]
fn load_slow() {
    let report = !REPORTED.swap(true, Ordering::Relaxed);
    for (i, opt) in OPTIONS.iter().enumerate() {
        let mut v = opt.default;
        if let Some(text) = getenv(opt.name) {
            match parse(opt, text) {
                Some(x) => v = x,
                None if report => warn_malformed(opt, text),
                None => {}
            }
        }
        VALUES[i].store(v, Ordering::Relaxed);
    }
    if report {
        warn_unknown_variables();
    }
    LOADED.store(true, Ordering::Release);
    if report && get(VERBOSE) != 0 {
        crate::report::write_version_line();
        for opt in OPTIONS.iter() {
            let (value, from): (&[u8], &[u8]) = match getenv(opt.name) {
                Some(t) if parse(opt, t).is_some() => (t, b"environment"),
                _ => (opt.default_text.as_bytes(), b"default"),
            };
            let value = &value[..value.len().min(200)];
            os::write_stderr(&[
                b"goalloc: option ",
                opt.name.as_bytes(),
                b"=",
                value,
                b" (",
                from,
                b")",
            ]);
        }
    }
}

/// The text of a text option (`GOALLOC_STATS_FILE`, `GOALLOC_PROFILE`) as the environment
/// gives it now.
pub fn text(opt: Opt) -> Option<&'static [u8]> {
    getenv(opt.def().name)
}

/// The value of `opt`; the first call loads them all.
#[inline]
pub fn get(opt: Opt) -> u64 {
    load();
    VALUES[opt as usize].load(Ordering::Relaxed)
}

impl Opt {
    /// The option's row of `OPTIONS`.
    pub fn def(self) -> &'static OptionDef {
        &OPTIONS[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_bool(b"0"), Some(0));
        assert_eq!(parse_bool(b"on"), Some(1));
        assert_eq!(parse_bool(b"2"), None);
        assert_eq!(parse_u64(b"1500"), Some(1500));
        assert_eq!(parse_u64(b"15x"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_madvise(b"free"), Some(MADVISE_FREE));
        assert_eq!(parse_madvise(b"dontneed"), Some(MADVISE_DONTNEED));
        assert_eq!(parse_madvise(b"never"), None);
        assert_eq!(parse_invalid(b"warn"), Some(INVALID_WARN));
        assert_eq!(parse_invalid(b"crash"), None);
        assert_eq!(parse_stats(b"json"), Some(STATS_JSON));
        assert_eq!(parse_stats(b"text"), Some(STATS_TEXT));
        assert_eq!(parse_stats(b"1"), Some(STATS_TEXT));
        assert_eq!(parse_stats(b"no"), Some(STATS_OFF));
        assert_eq!(parse_stats(b"xml"), None);
        for (i, o) in OPTIONS.iter().enumerate() {
            assert!(o.name.starts_with("GOALLOC_"));
            assert!(!o.help.is_empty());
            assert!(!o.values.is_empty());
            if i != STATS_FILE as usize && i != PROFILE as usize {
                assert_eq!(
                    parse(o, o.default_text.as_bytes()),
                    Some(o.default),
                    "{}",
                    o.name
                );
            }
        }
    }

    #[test]
    fn every_option_is_its_own_row() {
        // `get(opt)` reads `VALUES[opt as usize]`, which `load` fills from row `opt as
        // usize`: that row must be the option's own, named as the variant is.
        assert_eq!(Opt::ALL.len(), OPTIONS.len());
        for (i, &o) in Opt::ALL.iter().enumerate() {
            assert_eq!(o as usize, i);
            assert_eq!(o.def().name, format!("GOALLOC_{o:?}"));
        }
        assert_eq!(PROFILE_RATE.def().name, "GOALLOC_PROFILE_RATE");
        assert_eq!(SCAVENGE_DELAY_MS.def().default, 1000);
        let mut names: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OPTIONS.len());
    }

    #[test]
    fn values_forgive_case_and_blanks() {
        for (yes, no) in [("1", "0"), ("yes", "no"), ("true", "false"), ("on", "off")] {
            for (y, n) in [
                (yes.to_string(), no.to_string()),
                (yes.to_uppercase(), no.to_uppercase()),
                (format!(" {yes}\t"), format!("{no} ")),
            ] {
                for o in [SCAVENGE, CHECK, STATS, VERBOSE] {
                    assert_eq!(parse(o.def(), y.as_bytes()), Some(1), "{y}");
                    assert_eq!(parse(o.def(), n.as_bytes()), Some(0), "{n}");
                }
            }
        }
        assert_eq!(parse(INVALID_FREE.def(), b"Warn"), Some(INVALID_WARN));
        assert_eq!(parse(INVALID_FREE.def(), b"IGNORE"), Some(INVALID_IGNORE));
        assert_eq!(parse(MADVISE.def(), b"FREE"), Some(MADVISE_FREE));
        assert_eq!(parse(MADVISE.def(), b"DontNeed"), Some(MADVISE_DONTNEED));
        assert_eq!(parse(STATS.def(), b"JSON"), Some(STATS_JSON));
        assert_eq!(parse(SCAVENGE_DELAY_MS.def(), b" 250 "), Some(250));
        assert_eq!(parse(SCAVENGE.def(), b"enabled"), None);
        assert_eq!(parse(SCAVENGE.def(), b""), None);
    }

    #[test]
    fn warnings_list_every_word_an_option_takes() {
        let listed = |o: Opt, w: &str| o.def().values.split(", ").any(|v| v == w);
        for (w, _) in BOOL_WORDS {
            for o in [SCAVENGE, CHECK, STATS, VERBOSE] {
                assert!(listed(o, w), "{w} in {}", o.def().values);
            }
        }
        for (w, _) in MADVISE_WORDS {
            assert!(listed(MADVISE, w));
        }
        for (w, _) in INVALID_WORDS {
            assert!(listed(INVALID_FREE, w));
        }
        for (w, _) in STATS_WORDS {
            assert!(listed(STATS, w));
        }
        assert_eq!(SCAVENGE.def().values, BOOL_VALUES);
        let bool_list: Vec<&str> = BOOL_WORDS.iter().map(|(w, _)| *w).collect();
        assert_eq!(BOOL_VALUES, bool_list.join(", "));
    }

    #[test]
    fn typos_find_their_option() {
        let near = |n: &str| nearest_option(n.as_bytes()).map(|o| o.name);
        assert_eq!(near("GOALLOC_STAT"), Some("GOALLOC_STATS"));
        assert_eq!(near("goalloc_stats"), Some("GOALLOC_STATS"));
        assert_eq!(near("GOALLOC_STATSFILE"), Some("GOALLOC_STATS_FILE"));
        assert_eq!(near("GOALLOC_MADVICE"), Some("GOALLOC_MADVISE"));
        assert_eq!(
            near("GOALLOC_SCAVENGE_DELAY"),
            Some("GOALLOC_SCAVENGE_DELAY_MS")
        );
        assert_eq!(near("GOALLOC_INVALID"), Some("GOALLOC_INVALID_FREE"));
        assert_eq!(near("GOALLOC_VERBOS"), Some("GOALLOC_VERBOSE"));
        assert_eq!(near("GOALLOC_FOO"), None);
        assert_eq!(near("GOALLOC_DEBUG"), None);
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
        assert_eq!(edit_distance(b"", b"abc"), 3);
        assert_eq!(edit_distance(b"ABC", b"abc"), 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri does not provide `environ`")]
    fn reads_the_environment_without_allocating() {
        // PATH is set in any test environment; a name that is a prefix of it is not.
        assert!(getenv("PATH").is_some());
        assert!(getenv("PAT").is_none());
        assert!(getenv("GOALLOC_NO_SUCH_OPTION").is_none());
    }
}
