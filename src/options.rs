//! Options: every `GOALLOC_*` environment variable, in one table, read once at start.
//!
//! The environment is read by walking `environ` directly: no allocation, so it works from
//! inside the first `malloc` of a preloaded library. A malformed value prints one warning
//! line and keeps the default.

use crate::os;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One option: its variable, its default, what it means, and how its text is read.
pub struct OptionDef {
    pub name: &'static str,
    pub default: u64,
    /// The default as the user writes it.
    pub default_text: &'static str,
    pub help: &'static str,
    parse: fn(&[u8]) -> Option<u64>,
}

fn parse_bool(v: &[u8]) -> Option<u64> {
    match v {
        b"0" | b"false" | b"off" | b"no" => Some(0),
        b"1" | b"true" | b"on" | b"yes" => Some(1),
        _ => None,
    }
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + (c - b'0') as u64)
    })
}

fn parse_madvise(v: &[u8]) -> Option<u64> {
    match v {
        b"dontneed" | b"DONTNEED" => Some(MADVISE_DONTNEED),
        b"free" | b"FREE" => Some(MADVISE_FREE),
        _ => None,
    }
}

fn parse_invalid(v: &[u8]) -> Option<u64> {
    match v {
        b"abort" => Some(INVALID_ABORT),
        b"warn" => Some(INVALID_WARN),
        b"ignore" => Some(INVALID_IGNORE),
        _ => None,
    }
}

pub const INVALID_ABORT: u64 = 0;
pub const INVALID_WARN: u64 = 1;
pub const INVALID_IGNORE: u64 = 2;

pub const MADVISE_DONTNEED: u64 = 0;
pub const MADVISE_FREE: u64 = 1;

/// Index of each option in `OPTIONS`.
pub const SCAVENGE: usize = 0;
pub const SCAVENGE_DELAY_MS: usize = 1;
pub const MADVISE: usize = 2;
pub const INVALID_FREE: usize = 3;
pub const CHECK: usize = 4;
pub const STATS: usize = 5;
pub const STATS_FILE: usize = 6;
pub const VERBOSE: usize = 7;
pub const PROFILE: usize = 8;
pub const PROFILE_RATE: usize = 9;
pub const PROFILE_SIGNAL: usize = 10;
const NUM_OPTIONS: usize = 11;

fn parse_text(_: &[u8]) -> Option<u64> {
    Some(1)
}

/// The table of options.
pub static OPTIONS: [OptionDef; NUM_OPTIONS] = [
    OptionDef {
        name: "GOALLOC_SCAVENGE",
        default: 1,
        default_text: "1",
        help: "1: a background thread returns idle free pages to the OS; 0: only malloc_trim does",
        parse: parse_bool,
    },
    OptionDef {
        name: "GOALLOC_SCAVENGE_DELAY_MS",
        default: 1000,
        default_text: "1000",
        help: "milliseconds a free page must stay unused before the scavenger may release it",
        parse: parse_u64,
    },
    OptionDef {
        name: "GOALLOC_MADVISE",
        default: MADVISE_DONTNEED,
        default_text: "dontneed",
        help: "dontneed: released pages leave RSS at once and read as zero; free: MADV_FREE, the kernel takes them under pressure",
        parse: parse_madvise,
    },
    OptionDef {
        name: "GOALLOC_INVALID_FREE",
        default: INVALID_ABORT,
        default_text: "abort",
        help: "what a bad pointer passed to free, realloc or malloc_usable_size gets: abort (a goalloc: line, then abort()), warn (the line, and the call does nothing), ignore",
        parse: parse_invalid,
    },
    OptionDef {
        name: "GOALLOC_CHECK",
        default: 0,
        default_text: "0",
        help: "1: checked mode: every double free and every write to freed memory is detected, at a large cost in speed",
        parse: parse_bool,
    },
    OptionDef {
        name: "GOALLOC_STATS",
        default: 0,
        default_text: "0",
        help: "1: print a report (heap totals, a table per size class, the scavenger, peak RSS) at exit",
        parse: parse_bool,
    },
    OptionDef {
        name: "GOALLOC_STATS_FILE",
        default: 0,
        default_text: "stderr",
        help: "the file GOALLOC_STATS appends its report to",
        parse: parse_text,
    },
    OptionDef {
        name: "GOALLOC_VERBOSE",
        default: 0,
        default_text: "0",
        help: "1: print the effective options at start",
        parse: parse_bool,
    },
    OptionDef {
        name: "GOALLOC_PROFILE",
        default: 0,
        default_text: "off",
        help: "heap profiling: the file the profile goes to at exit (gperftools' heap format, for pprof); %p in it is the process id",
        parse: parse_text,
    },
    OptionDef {
        name: "GOALLOC_PROFILE_RATE",
        default: 524288,
        default_text: "524288",
        help: "with GOALLOC_PROFILE: the mean number of bytes allocated between two samples (Go's MemProfileRate); 0: no samples",
        parse: parse_u64,
    },
    OptionDef {
        name: "GOALLOC_PROFILE_SIGNAL",
        default: 0,
        default_text: "0",
        help: "with GOALLOC_PROFILE: a signal number (e.g. 12 for SIGUSR2) on which the profile is written; 0: none",
        parse: parse_u64,
    },
];

static VALUES: [AtomicU64; NUM_OPTIONS] = [const { AtomicU64::new(0) }; NUM_OPTIONS];
static LOADED: AtomicBool = AtomicBool::new(false);

extern "C" {
    static environ: *const *const libc::c_char;
}

/// The value of `name` in the environment, without allocating.
fn getenv(name: &str) -> Option<&'static [u8]> {
    // SAFETY: environ is a null-terminated array of NUL-terminated strings that the
    // program does not free while we read it (we read it once, at initialisation).
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

/// Reads every option from the environment. Called once from `crate::init`.
pub fn load() {
    for (i, opt) in OPTIONS.iter().enumerate() {
        let mut v = opt.default;
        if let Some(text) = getenv(opt.name) {
            match (opt.parse)(text) {
                Some(x) => v = x,
                None => os::write_stderr(&[
                    b"goalloc: warning: ignoring malformed ",
                    opt.name.as_bytes(),
                    b"=",
                    &text[..text.len().min(64)],
                    b" (using the default)",
                ]),
            }
        }
        VALUES[i].store(v, Ordering::Relaxed);
    }
    LOADED.store(true, Ordering::Release);
    if get(VERBOSE) != 0 {
        for opt in OPTIONS.iter() {
            let (value, from): (&[u8], &[u8]) = match getenv(opt.name) {
                Some(t) if (opt.parse)(t).is_some() => (t, b"environment"),
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

/// The text of a text option (`GOALLOC_STATS_FILE`) as the environment gives it now.
pub fn text(i: usize) -> Option<&'static [u8]> {
    getenv(OPTIONS[i].name)
}

/// The value of option `i` (its default before `load`).
#[inline]
pub fn get(i: usize) -> u64 {
    if LOADED.load(Ordering::Acquire) {
        VALUES[i].load(Ordering::Relaxed)
    } else {
        OPTIONS[i].default
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
        for o in &OPTIONS {
            assert!(o.name.starts_with("GOALLOC_"));
            assert!(!o.help.is_empty());
        }
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
