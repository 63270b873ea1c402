//! Statistics reports: `GOALLOC_STATS` at exit, `goalloc_stats_print`, `malloc_stats`,
//! `malloc_info`, and the version line of `GOALLOC_VERBOSE`.
//!
//! A report is formatted with `core::fmt` into one buffer on the stack, big enough for the
//! largest report, and written with one `write(2)` (or one `fwrite` to a stream): no
//! allocation, so it can be printed from inside a failing or exiting program, and reports
//! that several processes append to one file (`make -j` under `GOALLOC_STATS=1`) do not
//! interleave. Each report opens with the program and its pid; its figures carry the field
//! names of `goalloc_mem_stats`, in the text report as in the JSON one, which is the same
//! report as one object on one line.

use crate::options;
use crate::os;
use crate::sizeclass::NUM_CLASSES;
use crate::stats::{self, goalloc_class_stats, goalloc_mem_stats};
use crate::sync::LockCounts;
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

/// How a report is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// Lines for a reader: one figure per line, then a table of the size classes in use.
    Text,
    /// The same figures as one JSON object on one line, for tools.
    Json,
}

impl Format {
    /// `goalloc_stats_print`'s `opts`: `""` or `text`, or `json`, in any case.
    pub fn parse(opts: &[u8]) -> Option<Format> {
        let opts = opts.trim_ascii();
        if opts.is_empty() || opts.eq_ignore_ascii_case(b"text") {
            Some(Format::Text)
        } else if opts.eq_ignore_ascii_case(b"json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

/// When a report is taken, as its first line says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    Exit,
    Now,
}

/// Where a report goes: a file descriptor, or an open stream (`print_to_stream` and
/// `write_malloc_info` are unsafe for that promise).
enum Sink {
    Fd(i32),
    File(*mut libc::FILE),
}

/// Room for the largest report: every class in use with 20-digit figures, every lock
/// taken, and a command line of control characters escaped in JSON
/// (`largest_report_fits` checks it).
const OUT_SIZE: usize = 40 * 1024;

/// A `fmt::Write` that buffers on the stack and writes to its sink when full or flushed.
struct Out {
    buf: [u8; OUT_SIZE],
    len: usize,
    sink: Sink,
    /// A write to the sink failed or fell short.
    failed: bool,
}

impl Out {
    fn new(sink: Sink) -> Out {
        Out {
            buf: [0; OUT_SIZE],
            len: 0,
            sink,
            failed: false,
        }
    }

    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: buf[done..len] is initialised; fd or stream is the caller's.
            let n = unsafe {
                match self.sink {
                    Sink::Fd(fd) => {
                        libc::write(fd, self.buf[done..].as_ptr() as *const _, self.len - done)
                    }
                    Sink::File(f) => {
                        libc::fwrite(self.buf[done..].as_ptr() as *const _, 1, self.len - done, f)
                            as isize
                    }
                }
            };
            if n <= 0 {
                self.failed = true;
                break;
            }
            done += n as usize;
        }
        self.len = 0;
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

/// What a figure counts, for the text report's second column.
#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Count,
    Nanos,
}

/// One figure of `goalloc_mem_stats`: its field name, unit, value and meaning.
struct Field {
    name: &'static str,
    unit: Unit,
    get: fn(&goalloc_mem_stats) -> u64,
    meaning: &'static str,
}

/// `Field` of a `goalloc_mem_stats` field, named as the field is.
macro_rules! field {
    ($name:ident, $unit:ident, $meaning:literal) => {
        Field {
            name: stringify!($name),
            unit: Unit::$unit,
            get: |s| s.$name,
            meaning: $meaning,
        }
    };
}

/// Every scalar field of `goalloc_mem_stats`, in the struct's order.
#[rustfmt::skip]
static FIELDS: [Field; 17] = [
    field!(heap_alloc, Bytes, "live objects (small at their class size, large in whole pages)"),
    field!(total_alloc, Bytes, "allocated since start, freed or not"),
    field!(heap_sys, Bytes, "heap mapped from the OS (heap_inuse + heap_idle)"),
    field!(heap_idle, Bytes, "in free spans, released or not"),
    field!(heap_inuse, Bytes, "in spans in use"),
    field!(heap_released, Bytes, "free spans returned to the OS"),
    field!(heap_objects, Count, "live objects (mallocs - frees)"),
    field!(mallocs, Count, "objects allocated since start"),
    field!(frees, Count, "objects freed since start"),
    field!(meta_sys, Bytes, "metadata mapped from the OS (spans, arenas, thread caches)"),
    field!(large_objects, Count, "live objects over 32 KiB"),
    field!(large_bytes, Bytes, "their pages"),
    field!(scav_running, Count, "1 when the scavenger thread runs"),
    field!(scav_released, Bytes, "released to the OS by the scavenger thread"),
    field!(scav_chunks, Count, "chunks it released"),
    field!(scav_cpu_ns, Nanos, "CPU time it used"),
    field!(scav_wakeups, Count, "times it woke up"),
];

/// The size classes a report lists: those that ever held an object.
fn classes_in_use(st: &goalloc_mem_stats) -> impl Iterator<Item = (usize, &goalloc_class_stats)> {
    st.by_size
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, c)| c.mallocs != 0 || c.spans != 0)
}

fn field_line<W: Write + ?Sized>(
    out: &mut W,
    name: &str,
    unit: Unit,
    v: u64,
    meaning: &str,
) -> fmt::Result {
    write!(out, "  {name:<14}{v:>14}  ")?;
    match unit {
        Unit::Bytes => write!(out, "{:<14}", Mib(v))?,
        Unit::Nanos => write!(out, "{:<14}", Ms(v))?,
        Unit::Count => write!(out, "{:<14}", "")?,
    }
    writeln!(out, "{meaning}")
}

/// `(12.3 MiB)`.
struct Mib(u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = Tenths(self.0 as f64 / (1u64 << 20) as f64, " MiB");
        f.pad(s.as_str(&mut [0; 48]))
    }
}

/// `(1.3 ms)`.
struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = Tenths(self.0 as f64 / 1e6, " ms");
        f.pad(s.as_str(&mut [0; 48]))
    }
}

/// `(x.y unit)` formatted into a small buffer, so that `pad` can align it as one string.
struct Tenths(f64, &'static str);

impl Tenths {
    fn as_str<'a>(&self, buf: &'a mut [u8; 48]) -> &'a str {
        let mut w = Small { buf, len: 0 };
        let _ = write!(w, "({:.1}{})", self.0, self.1);
        let len = w.len;
        core::str::from_utf8(&buf[..len]).unwrap_or("")
    }
}

/// A `fmt::Write` into a fixed slice; what does not fit is dropped.
struct Small<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Small<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let take = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// The text report's figures: one line per field of `goalloc_mem_stats`.
fn text_fields<W: Write + ?Sized>(out: &mut W, st: &goalloc_mem_stats) -> fmt::Result {
    for f in FIELDS.iter() {
        field_line(out, f.name, f.unit, (f.get)(st), f.meaning)?;
    }
    Ok(())
}

/// The text report's table: the legend line, the column names, a row per class in use.
fn text_classes<W: Write + ?Sized>(out: &mut W, st: &goalloc_mem_stats) -> fmt::Result {
    writeln!(
        out,
        "  by_size, the classes in use: size = bytes per object, live = mallocs - frees, \
         spans = spans in use, waste = bytes of those spans holding no live object"
    )?;
    writeln!(
        out,
        "  class     size      mallocs        frees         live    spans        waste"
    )?;
    for (class, c) in classes_in_use(st) {
        writeln!(
            out,
            "  {:5} {:8} {:12} {:12} {:12} {:8} {:12}",
            class, c.size, c.mallocs, c.frees, c.live, c.spans, c.waste
        )?;
    }
    Ok(())
}

/// The JSON report's figures, without the braces: `"heap_alloc":1,...,"by_size":[...]`.
fn json_fields<W: Write + ?Sized>(out: &mut W, st: &goalloc_mem_stats) -> fmt::Result {
    for (i, f) in FIELDS.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}\"{}\":{}", f.name, (f.get)(st))?;
    }
    out.write_str(",\"by_size\":[")?;
    for (i, (class, c)) in classes_in_use(st).enumerate() {
        let sep = if i == 0 { "" } else { "," };
        write!(
            out,
            "{sep}{{\"class\":{class},\"size\":{},\"mallocs\":{},\"frees\":{},\"live\":{},\"spans\":{},\"waste\":{}}}",
            c.size, c.mallocs, c.frees, c.live, c.spans, c.waste
        )?;
    }
    out.write_str("]")
}

/// The figures as the text report gives them (without its first lines, which name the
/// process): one line per field, then the size classes in use.
impl fmt::Display for goalloc_mem_stats {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        text_fields(f, self)?;
        text_classes(f, self)
    }
}

/// The figures as one JSON object on one line: every field of `goalloc_mem_stats` under
/// its name, and `by_size` as an array of the classes in use, each with its `class`.
pub struct Json<'a>(pub &'a goalloc_mem_stats);

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{")?;
        json_fields(f, self.0)?;
        f.write_str("}")
    }
}

/// The allocator's locks and their traffic (`sync::Mutex::counts`), with what the report
/// relates them to: the calls of malloc and free, and the time since the library loaded.
struct Locks {
    /// `mallocs + frees`.
    calls: u64,
    elapsed_ns: u64,
    heap: LockCounts,
    caches: LockCounts,
    profile: LockCounts,
    /// Per size class; entry 0 unused.
    central: [LockCounts; NUM_CLASSES],
}

impl Locks {
    /// Reads every lock's counters (no lock taken) after `st` was read.
    fn read(st: &goalloc_mem_stats) -> Locks {
        let mut central = [LockCounts::default(); NUM_CLASSES];
        for (c, m) in central
            .iter_mut()
            .zip(crate::mcentral::CENTRAL.iter())
            .skip(1)
        {
            *c = m.lock.counts();
        }
        Locks {
            calls: st.mallocs.saturating_add(st.frees),
            elapsed_ns: crate::sync::elapsed_ns(),
            heap: crate::mheap::HEAP.lock.counts(),
            caches: crate::mcache::CACHES.counts(),
            profile: crate::profile::lock_counts(),
            central,
        }
    }

    /// The rows of the section: the mheap lock, the thread caches' registry, the profile's
    /// stack table, the mcentral locks together (`mcentral`), then each mcentral lock
    /// that was taken (`mcentral[class]`).
    fn each(&self, mut f: impl FnMut(Name, &LockCounts) -> fmt::Result) -> fmt::Result {
        let mut all = LockCounts::default();
        for c in self.central.iter().skip(1) {
            all.acquisitions = all.acquisitions.saturating_add(c.acquisitions);
            all.contended = all.contended.saturating_add(c.contended);
            all.held_ns = all.held_ns.saturating_add(c.held_ns);
        }
        f(Name("mheap", None), &self.heap)?;
        f(Name("caches", None), &self.caches)?;
        f(Name("profile", None), &self.profile)?;
        f(Name("mcentral", None), &all)?;
        for (class, c) in self.central.iter().enumerate().skip(1) {
            if c.acquisitions != 0 {
                f(Name("mcentral", Some(class)), c)?;
            }
        }
        Ok(())
    }

    /// `v` per million calls of malloc and free.
    fn per_million(&self, v: u64) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            v as f64 * 1e6 / self.calls as f64
        }
    }

    /// Percent of the time since start that `held_ns` covers.
    fn held_percent(&self, held_ns: u64) -> f64 {
        if self.elapsed_ns == 0 {
            0.0
        } else {
            held_ns as f64 * 100.0 / self.elapsed_ns as f64
        }
    }
}

/// A lock's name in the report: `mheap`, `mcentral`, `mcentral[5]`.
struct Name(&'static str, Option<usize>);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut buf = [0u8; 32];
        let mut w = Small {
            buf: &mut buf,
            len: 0,
        };
        let _ = match self.1 {
            Some(class) => write!(w, "{}[{class}]", self.0),
            None => w.write_str(self.0),
        };
        let len = w.len;
        f.pad(core::str::from_utf8(&buf[..len]).unwrap_or("?"))
    }
}

/// The text report's section of the locks: the legend line, the column names, a row per
/// lock.
fn text_locks<W: Write + ?Sized>(out: &mut W, l: &Locks) -> fmt::Result {
    writeln!(
        out,
        "  locks, per million malloc+free ({} calls, {:.3} s since start): acquisitions, \
         contended = taken after waiting, held_ns = time held; /M = per million calls, \
         ns/acq = mean hold, held% = share of the time since start",
        l.calls,
        l.elapsed_ns as f64 / 1e9
    )?;
    writeln!(
        out,
        "  lock           acquisitions    contended           held_ns       acq/M  \
         contended/M    held_ns/M    ns/acq   held%"
    )?;
    l.each(|name, c| {
        writeln!(
            out,
            "  {name:<12} {:>14} {:>12} {:>17} {:>11.1} {:>12.1} {:>12.0} {:>9.1} {:>7.3}",
            c.acquisitions,
            c.contended,
            c.held_ns,
            l.per_million(c.acquisitions),
            l.per_million(c.contended),
            l.per_million(c.held_ns),
            if c.acquisitions == 0 {
                0.0
            } else {
                c.held_ns as f64 / c.acquisitions as f64
            },
            l.held_percent(c.held_ns)
        )
    })
}

/// The JSON report's `locks` member: `{"calls":..,"elapsed_ns":..,"by_lock":[..]}`, each
/// lock with its counts and the per-million figures of the text report.
fn json_locks<W: Write + ?Sized>(out: &mut W, l: &Locks) -> fmt::Result {
    write!(
        out,
        "{{\"calls\":{},\"elapsed_ns\":{},\"by_lock\":[",
        l.calls, l.elapsed_ns
    )?;
    let mut first = true;
    l.each(|name, c| {
        let sep = if first { "" } else { "," };
        first = false;
        write!(
            out,
            "{sep}{{\"lock\":\"{name}\",\"acquisitions\":{},\"contended\":{},\"held_ns\":{},\
             \"acquisitions_per_million\":{:.3},\"contended_per_million\":{:.3},\
             \"held_ns_per_million\":{:.1}}}",
            c.acquisitions,
            c.contended,
            c.held_ns,
            l.per_million(c.acquisitions),
            l.per_million(c.contended),
            l.per_million(c.held_ns)
        )
    })?;
    out.write_str("]}")
}

/// A JSON string of `bytes`: quotes, backslashes and control characters escaped, bytes
/// that are not UTF-8 as U+FFFD.
fn json_string<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> fmt::Result {
    out.write_char('"')?;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.write_str("\\\"")?,
                '\\' => out.write_str("\\\\")?,
                c if (c as u32) < 0x20 || c == '\u{7f}' => write!(out, "\\u{:04x}", c as u32)?,
                c => out.write_char(c)?,
            }
        }
        if !chunk.invalid().is_empty() {
            out.write_str("\\ufffd")?;
        }
    }
    out.write_char('"')
}

/// `bytes` on one line of the text report: control characters and bytes that are not
/// UTF-8 as `?`, so that a command line cannot break the report's lines.
fn text_string<W: Write + ?Sized>(out: &mut W, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.write_char(if c.is_control() { '?' } else { c })?;
        }
        if !chunk.invalid().is_empty() {
            out.write_char('?')?;
        }
    }
    Ok(())
}

/// The process a report is about: its pid and command line, read without allocating.
struct Process {
    pid: u32,
    /// `/proc/self/cmdline` (arguments separated by NUL), or `program_invocation_name`.
    cmdline: [u8; 512],
    len: usize,
    /// The command line is longer than `cmdline`.
    truncated: bool,
}

/// Bytes of the command line a report shows.
const COMMAND_MAX: usize = 256;

impl Process {
    fn this() -> Process {
        let mut p = Process {
            // SAFETY: getpid has no preconditions.
            pid: unsafe { libc::getpid() } as u32,
            cmdline: [0; 512],
            len: 0,
            truncated: false,
        };
        let n = read_proc(c"/proc/self/cmdline", &mut p.cmdline);
        if n > 0 {
            p.len = n;
            p.truncated = n == p.cmdline.len();
            while p.len > 0 && p.cmdline[p.len - 1] == 0 {
                p.len -= 1;
            }
        } else {
            extern "C" {
                static program_invocation_name: *const libc::c_char;
            }
            // SAFETY: glibc sets program_invocation_name to argv[0] (NUL-terminated)
            // before any constructor runs, or leaves it null.
            let name = unsafe {
                let n = program_invocation_name;
                if n.is_null() {
                    &b"?"[..]
                } else {
                    core::ffi::CStr::from_ptr(n).to_bytes()
                }
            };
            let n = name.len().min(p.cmdline.len());
            p.cmdline[..n].copy_from_slice(&name[..n]);
            p.len = n;
        }
        p
    }

    /// The file name of argv[0]: `python3`, `cc1`.
    fn program(&self) -> &[u8] {
        let argv0 = self.cmdline[..self.len]
            .split(|&c| c == 0)
            .next()
            .unwrap_or(&[]);
        let name = argv0.rsplit(|&c| c == b'/').next().unwrap_or(argv0);
        let name = &name[..name.len().min(128)];
        if name.is_empty() {
            b"?"
        } else {
            name
        }
    }

    /// Each byte of the command line as shown, its arguments separated by spaces, and
    /// whether it was cut short.
    fn command(&self) -> ([u8; COMMAND_MAX], usize, bool) {
        let mut buf = [0u8; COMMAND_MAX];
        let n = self.len.min(COMMAND_MAX);
        for (b, &c) in buf.iter_mut().zip(&self.cmdline[..n]) {
            *b = if c == 0 { b' ' } else { c };
        }
        (buf, n, self.truncated || self.len > COMMAND_MAX)
    }
}

/// Reads the start of a /proc file into `buf`; the bytes read, 0 on failure.
fn read_proc(path: &core::ffi::CStr, buf: &mut [u8]) -> usize {
    // SAFETY: a NUL-terminated path; buf is a valid destination of its length.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return 0;
        }
        let mut done = 0;
        while done < buf.len() {
            let n = libc::read(fd, buf[done..].as_mut_ptr() as *mut _, buf.len() - done);
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        libc::close(fd);
        done
    }
}

/// VmHWM (peak resident set) in bytes, read without allocating; 0 if unknown.
fn peak_rss() -> u64 {
    let mut buf = [0u8; 4096];
    let n = read_proc(c"/proc/self/status", &mut buf);
    let text = &buf[..n];
    let key = b"VmHWM:";
    let Some(at) = text.windows(key.len()).position(|w| w == key) else {
        return 0;
    };
    let kib = text[at + key.len()..]
        .iter()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .fold(0u64, |v, c| v * 10 + (c - b'0') as u64);
    kib * 1024
}

/// Everything one report says.
struct Report<'a> {
    st: &'a goalloc_mem_stats,
    locks: &'a Locks,
    process: &'a Process,
    when: When,
    peak_rss: u64,
}

impl Report<'_> {
    fn write<W: Write + ?Sized>(&self, out: &mut W, format: Format) -> fmt::Result {
        match format {
            Format::Text => self.text(out),
            Format::Json => self.json(out),
        }
    }

    fn text<W: Write + ?Sized>(&self, out: &mut W) -> fmt::Result {
        let when = match self.when {
            When::Exit => "at exit",
            When::Now => "now",
        };
        write!(out, "goalloc {} statistics of ", crate::VERSION)?;
        text_string(out, self.process.program())?;
        writeln!(out, " (pid {}) {when}", self.process.pid)?;
        let (command, len, cut) = self.process.command();
        out.write_str("  command: ")?;
        text_string(out, &command[..len])?;
        writeln!(out, "{}", if cut { " ..." } else { "" })?;
        text_fields(out, self.st)?;
        field_line(
            out,
            "peak_rss",
            Unit::Bytes,
            self.peak_rss,
            "peak resident set (VmHWM of /proc/self/status; not in goalloc_mem_stats)",
        )?;
        text_classes(out, self.st)?;
        text_locks(out, self.locks)
    }

    fn json<W: Write + ?Sized>(&self, out: &mut W) -> fmt::Result {
        write!(
            out,
            "{{\"allocator\":\"goalloc\",\"version\":\"{}\",\"program\":",
            crate::VERSION
        )?;
        json_string(out, self.process.program())?;
        write!(out, ",\"pid\":{},\"command\":", self.process.pid)?;
        let (command, len, cut) = self.process.command();
        json_string(out, &command[..len])?;
        let when = match self.when {
            When::Exit => "exit",
            When::Now => "now",
        };
        write!(out, ",\"command_truncated\":{cut},\"when\":\"{when}\",")?;
        json_fields(out, self.st)?;
        write!(out, ",\"peak_rss\":{},\"locks\":", self.peak_rss)?;
        json_locks(out, self.locks)?;
        writeln!(out, "}}")
    }
}

/// Takes the figures now and writes the report to `sink` in one piece; false when the
/// write failed.
fn write_report(sink: Sink, format: Format, when: When) -> bool {
    let st = stats::read();
    let locks = Locks::read(&st);
    let process = Process::this();
    let report = Report {
        st: &st,
        locks: &locks,
        process: &process,
        when,
        peak_rss: peak_rss(),
    };
    let mut out = Out::new(sink);
    let _ = report.write(&mut out, format);
    out.flush();
    !out.failed
}

/// `malloc_stats()`: the text report on stderr.
#[cfg_attr(not(feature = "c-api"), allow(dead_code))]
pub fn malloc_stats() {
    write_report(Sink::Fd(2), Format::Text, When::Now);
}

/// Writes the report of this process now (the program and its pid, every figure of
/// [`goalloc_mem_stats`], peak RSS, the size classes in use) to stderr with one
/// `write(2)`, as text or as one line of JSON. Allocates nothing.
///
/// For the figures alone, [`goalloc_mem_stats`] implements `Display` (the text report's
/// lines) and [`Json`] shows them as a JSON object.
pub fn print(format: Format) {
    write_report(Sink::Fd(2), format, When::Now);
}

/// `goalloc_stats_print`: the report to `stream`, or to stderr when it is null; false
/// when the write failed.
///
/// # Safety
/// `stream` is null or an open stream.
pub unsafe fn print_to_stream(stream: *mut libc::FILE, format: Format) -> bool {
    let sink = if stream.is_null() {
        Sink::Fd(2)
    } else {
        Sink::File(stream)
    };
    write_report(sink, format, When::Now)
}

/// `malloc_info`'s XML, in the shape glibc gives it.
///
/// # Safety
/// `stream` is an open stream.
#[cfg_attr(not(feature = "c-api"), allow(dead_code))]
pub unsafe fn write_malloc_info(stream: *mut libc::FILE) {
    let st = stats::read();
    let mut out = Out::new(Sink::File(stream));
    let _ = (|| -> fmt::Result {
        writeln!(out, "<malloc version=\"1\">")?;
        writeln!(out, "<heap nr=\"0\">")?;
        writeln!(out, "<sizes>")?;
        for class in 1..NUM_CLASSES {
            let c = &st.by_size[class];
            let free = c.waste / c.size.max(1);
            if c.spans > 0 {
                let from = if class == 1 {
                    0
                } else {
                    st.by_size[class - 1].size + 1
                };
                writeln!(
                    out,
                    "  <size from=\"{from}\" to=\"{}\" total=\"{}\" count=\"{free}\"/>",
                    c.size,
                    free * c.size
                )?;
            }
        }
        writeln!(out, "</sizes>")?;
        let small_free: u64 = st.by_size.iter().map(|c| c.waste).sum();
        // glibc writes the free totals and the system sizes per heap and again for all;
        // with one heap they are the same lines. The mmap total comes only in the second.
        for all in [false, true] {
            writeln!(out, "<total type=\"fast\" count=\"0\" size=\"0\"/>")?;
            writeln!(
                out,
                "<total type=\"rest\" count=\"0\" size=\"{}\"/>",
                st.heap_idle + small_free
            )?;
            if all {
                writeln!(
                    out,
                    "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
                    st.large_objects, st.large_bytes
                )?;
            }
            writeln!(out, "<system type=\"current\" size=\"{}\"/>", st.heap_sys)?;
            writeln!(out, "<system type=\"max\" size=\"{}\"/>", st.heap_sys)?;
            writeln!(out, "<aspace type=\"total\" size=\"{}\"/>", st.heap_sys)?;
            writeln!(out, "<aspace type=\"mprotect\" size=\"{}\"/>", st.heap_sys)?;
            if !all {
                writeln!(out, "</heap>")?;
            }
        }
        writeln!(out, "</malloc>")
    })();
    out.flush();
}

// ---- the report at exit --------------------------------------------------------------

/// Longest path of `GOALLOC_STATS_FILE`, start directory included.
const PATH_MAX: usize = 4096;

/// The directory the program started in, for a relative `GOALLOC_STATS_FILE`: a program
/// that changes directory still writes its report where the user expects it. Written
/// once by `remember_start_dir` before `len` is published.
struct StartDir {
    path: UnsafeCell<[u8; PATH_MAX]>,
    len: AtomicUsize,
}

// SAFETY: `path` is written only before `len` is set (Release), and read only after `len`
// is seen non-zero (Acquire); it is never written again.
unsafe impl Sync for StartDir {}

static START_DIR: StartDir = StartDir {
    path: UnsafeCell::new([0; PATH_MAX]),
    len: AtomicUsize::new(0),
};

impl StartDir {
    fn get(&self) -> &[u8] {
        let len = self.len.load(Ordering::Acquire);
        // SAFETY: see `unsafe impl Sync`: path[..len] was written before len.
        unsafe { &(&*self.path.get())[..len] }
    }
}

/// Runs when the library (or the program it is linked into) is loaded: when a relative
/// `GOALLOC_STATS_FILE` is set, remembers the working directory (`getcwd` into the static
/// buffer; it allocates nothing when given one).
extern "C" fn remember_start_dir() {
    let Some(name) = options::text(options::STATS_FILE) else {
        return;
    };
    if name.is_empty() || name[0] == b'/' || START_DIR.len.load(Ordering::Relaxed) != 0 {
        return;
    }
    let path = START_DIR.path.get() as *mut libc::c_char;
    // SAFETY: the buffer is PATH_MAX bytes and nothing reads it before len is set; the
    // constructor runs once, before the program's threads.
    let ok = unsafe { !libc::getcwd(path, PATH_MAX).is_null() };
    if ok {
        // SAFETY: getcwd wrote a NUL-terminated string into the buffer.
        let len = unsafe { core::ffi::CStr::from_ptr(path).to_bytes().len() };
        START_DIR.len.store(len, Ordering::Release);
    }
}

#[used]
#[link_section = ".init_array"]
static REMEMBER_START_DIR: extern "C" fn() = remember_start_dir;

/// The path of the report file: `name` with `%p` replaced by `pid` and `%%` by `%`, under
/// `start_dir` when relative, NUL-terminated in `buf`; its length without the NUL, or
/// None when it does not fit.
fn stats_file_path(
    name: &[u8],
    pid: u32,
    start_dir: &[u8],
    buf: &mut [u8; PATH_MAX],
) -> Option<usize> {
    /// Appends `s` to `w`; false when it does not fit.
    fn fits(w: &mut Small, s: &[u8]) -> bool {
        if w.len + s.len() > w.buf.len() {
            return false;
        }
        w.buf[w.len..w.len + s.len()].copy_from_slice(s);
        w.len += s.len();
        true
    }
    let mut w = Small {
        buf: &mut buf[..PATH_MAX - 1],
        len: 0,
    };
    if name.first() != Some(&b'/') && !start_dir.is_empty() {
        if !fits(&mut w, start_dir) {
            return None;
        }
        if start_dir.last() != Some(&b'/') && !fits(&mut w, b"/") {
            return None;
        }
    }
    let mut rest = name;
    while let Some((&c, tail)) = rest.split_first() {
        let ok = match (c, tail.first()) {
            (b'%', Some(b'p')) => {
                rest = &tail[1..];
                let mut digits = [0u8; 10];
                let mut d = Small {
                    buf: &mut digits,
                    len: 0,
                };
                let _ = write!(d, "{pid}");
                let n = d.len;
                fits(&mut w, &digits[..n])
            }
            (b'%', Some(b'%')) => {
                rest = &tail[1..];
                fits(&mut w, b"%")
            }
            _ => {
                rest = tail;
                fits(&mut w, &[c])
            }
        };
        if !ok {
            return None;
        }
    }
    let len = w.len;
    buf[len] = 0;
    Some(len)
}

/// The text of the common errors of `open`, so that the warning needs no `strerror`
/// (whose translation may allocate).
fn errno_text(e: i32) -> &'static str {
    match e {
        libc::ENOENT => "No such file or directory",
        libc::EACCES => "Permission denied",
        libc::EISDIR => "Is a directory",
        libc::ENOTDIR => "Not a directory",
        libc::EROFS => "Read-only file system",
        libc::ENOSPC => "No space left on device",
        libc::ENAMETOOLONG => "File name too long",
        libc::EMFILE | libc::ENFILE => "Too many open files",
        libc::ELOOP => "Too many levels of symbolic links",
        _ => "open failed",
    }
}

/// `GOALLOC_STATS`: the report at exit, on stderr or appended to `GOALLOC_STATS_FILE`.
extern "C" fn stats_at_exit() {
    let format = match options::get(options::STATS) {
        options::STATS_OFF => return,
        options::STATS_JSON => Format::Json,
        _ => Format::Text,
    };
    let mut fd = 2;
    if let Some(name) = options::text(options::STATS_FILE).filter(|n| !n.is_empty()) {
        let mut path = [0u8; PATH_MAX];
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        match stats_file_path(name, pid, START_DIR.get(), &mut path) {
            None => os::write_stderr(&[
                b"goalloc: warning: GOALLOC_STATS_FILE is too long (",
                &name[..name.len().min(64)],
                b"...); the report goes to stderr",
            ]),
            Some(len) => {
                // SAFETY: path is NUL-terminated by stats_file_path.
                let f = unsafe {
                    libc::open(
                        path.as_ptr() as *const libc::c_char,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                        0o644,
                    )
                };
                if f >= 0 {
                    fd = f;
                } else {
                    let e = errno::errno().0;
                    os::write_stderr(&[
                        b"goalloc: warning: cannot open GOALLOC_STATS_FILE ",
                        &path[..len],
                        b": ",
                        errno_text(e).as_bytes(),
                        b"; the report goes to stderr",
                    ]);
                }
            }
        }
    }
    write_report(Sink::Fd(fd), format, When::Exit);
    if fd != 2 {
        // SAFETY: fd was opened above.
        unsafe { libc::close(fd) };
    }
}

// Runs when the library (or the program it is linked into) is finalised at exit, with no
// registration from inside malloc.
#[used]
#[link_section = ".fini_array"]
static STATS_AT_EXIT: extern "C" fn() = stats_at_exit;

// ---- GOALLOC_VERBOSE -----------------------------------------------------------------

/// `goalloc: version 0.1.0, loaded from /usr/lib/libgoalloc.so.0.1.0`: the file that holds
/// this code (the library, or the program goalloc is linked into), from `/proc/self/maps`
/// rather than `dladdr`, which would take the dynamic loader's lock.
pub fn write_version_line() {
    let mut buf = [0u8; 8192];
    let here = write_version_line as *const () as usize;
    let path = mapping_of(here, &mut buf).unwrap_or(b"? (/proc/self/maps is unreadable)");
    os::write_stderr(&[
        b"goalloc: version ",
        crate::VERSION.as_bytes(),
        b", loaded from ",
        path,
    ]);
}

/// The path of the mapping that contains `addr`, read from `/proc/self/maps` a buffer at
/// a time (a line is at most a path of 4096 bytes and its 80 bytes of fields).
fn mapping_of(addr: usize, buf: &mut [u8; 8192]) -> Option<&[u8]> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut have = 0;
    let mut found = None;
    'read: loop {
        // SAFETY: buf[have..] is writable.
        let n = unsafe { libc::read(fd, buf[have..].as_mut_ptr() as *mut _, buf.len() - have) };
        let end_of_file = n <= 0;
        have += n.max(0) as usize;
        let mut start = 0;
        loop {
            let nl = buf[start..have].iter().position(|&c| c == b'\n');
            let line_end = match nl {
                Some(i) => start + i,
                None if end_of_file && start < have => have,
                None => break,
            };
            if let Some(range) = mapping_path(&buf[start..line_end], addr) {
                found = Some(range.start + start..range.end + start);
                break 'read;
            }
            start = (line_end + 1).min(have);
            if nl.is_none() {
                break;
            }
        }
        if end_of_file || (start == 0 && have == buf.len()) {
            break;
        }
        buf.copy_within(start..have, 0);
        have -= start;
    }
    // SAFETY: fd was opened above.
    unsafe { libc::close(fd) };
    found.map(|r| &buf[r])
}

/// For one line of `/proc/self/maps` (`start-end perms offset dev inode path`): the range
/// of its path within the line when the mapping contains `addr`.
fn mapping_path(line: &[u8], addr: usize) -> Option<core::ops::Range<usize>> {
    let hex = |s: &[u8]| {
        s.iter().try_fold(0usize, |v, &c| {
            let d = (c as char).to_digit(16)? as usize;
            v.checked_mul(16)?.checked_add(d)
        })
    };
    let dash = line.iter().position(|&c| c == b'-')?;
    let space = line.iter().position(|&c| c == b' ')?;
    let (lo, hi) = (hex(&line[..dash])?, hex(line.get(dash + 1..space)?)?);
    if addr < lo || addr >= hi {
        return None;
    }
    // Skip the range and four more fields; the rest, less its leading blanks, is the path.
    let mut i = 0;
    for _ in 0..5 {
        while i < line.len() && line[i] == b' ' {
            i += 1;
        }
        while i < line.len() && line[i] != b' ' {
            i += 1;
        }
    }
    while i < line.len() && line[i] == b' ' {
        i += 1;
    }
    Some(i..line.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_stats() -> goalloc_mem_stats {
        let mut st = stats::read();
        for (i, c) in st.by_size.iter_mut().enumerate().skip(1) {
            *c = goalloc_class_stats {
                size: i as u64 * 16,
                mallocs: u64::MAX,
                frees: u64::MAX,
                live: u64::MAX,
                spans: u64::MAX,
                waste: u64::MAX,
            };
        }
        st.heap_alloc = u64::MAX;
        st
    }

    #[test]
    fn largest_report_fits() {
        let st = full_stats();
        let mut process = Process::this();
        process.pid = u32::MAX;
        process.cmdline = [1; 512]; // control characters: 6 bytes each in JSON
        process.len = 512;
        process.truncated = true;
        for format in [Format::Text, Format::Json] {
            let mut s = String::new();
            let max = LockCounts {
                acquisitions: u64::MAX,
                contended: u64::MAX,
                held_ns: u64::MAX,
            };
            let locks = Locks {
                calls: 1,
                elapsed_ns: 1,
                heap: max,
                caches: max,
                profile: max,
                central: [max; NUM_CLASSES],
            };
            let r = Report {
                st: &st,
                locks: &locks,
                process: &process,
                when: When::Exit,
                peak_rss: u64::MAX,
            };
            r.write(&mut s, format).unwrap();
            assert!(s.len() <= OUT_SIZE, "{format:?}: {} bytes", s.len());
        }
    }

    #[test]
    fn text_report_names_every_field() {
        let st = stats::read();
        let process = Process::this();
        let mut s = String::new();
        let locks = Locks::read(&st);
        let r = Report {
            st: &st,
            locks: &locks,
            process: &process,
            when: When::Now,
            peak_rss: 1 << 20,
        };
        r.write(&mut s, Format::Text).unwrap();
        let first = s.lines().next().unwrap();
        assert!(first.starts_with(&format!("goalloc {} statistics of ", crate::VERSION)));
        assert!(
            first.ends_with(&format!("(pid {}) now", std::process::id())),
            "{first}"
        );
        for f in FIELDS.iter() {
            let line = s
                .lines()
                .find(|l| l.split_whitespace().next() == Some(f.name))
                .unwrap_or_else(|| panic!("{} missing in\n{s}", f.name));
            let v: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
            assert_eq!(v, (f.get)(&st), "{line}");
        }
        assert!(s.contains("peak_rss             1048576  (1.0 MiB)"), "{s}");
    }

    /// The locks' section follows the class table: a row per lock with its counts and the
    /// per-million figures, in the text report and in the JSON one.
    #[test]
    fn reports_show_the_locks() {
        let st = stats::read();
        let mut locks = Locks::read(&st);
        locks.calls = 2_000_000;
        locks.elapsed_ns = 2_000_000_000;
        locks.heap = LockCounts {
            acquisitions: 3000,
            contended: 10,
            held_ns: 200_000_000,
        };
        locks.central = [LockCounts::default(); NUM_CLASSES];
        locks.central[5] = LockCounts {
            acquisitions: 500,
            contended: 1,
            held_ns: 50_000,
        };
        let process = Process::this();
        let r = Report {
            st: &st,
            locks: &locks,
            process: &process,
            when: When::Now,
            peak_rss: 0,
        };
        let mut text = String::new();
        r.write(&mut text, Format::Text).unwrap();
        let section = &text[text
            .find("\n  locks, per million malloc+free")
            .expect(&text)..];
        let rows: Vec<Vec<&str>> = section
            .lines()
            .skip(3)
            .map(|l| l.split_whitespace().collect())
            .collect();
        let names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
        assert_eq!(
            names,
            ["mheap", "caches", "profile", "mcentral", "mcentral[5]"],
            "{section}"
        );
        assert_eq!(
            rows[0][1..],
            [
                "3000",
                "10",
                "200000000",
                "1500.0",
                "5.0",
                "100000000",
                "66666.7",
                "10.000"
            ],
            "{section}"
        );
        assert_eq!(rows[3][1..4], ["500", "1", "50000"], "{section}");

        let mut json = String::new();
        r.write(&mut json, Format::Json).unwrap();
        assert!(
            json.contains(
                ",\"locks\":{\"calls\":2000000,\"elapsed_ns\":2000000000,\"by_lock\":[\
                 {\"lock\":\"mheap\",\"acquisitions\":3000,\"contended\":10,\
                 \"held_ns\":200000000,\"acquisitions_per_million\":1500.000,\
                 \"contended_per_million\":5.000,\"held_ns_per_million\":100000000.0}"
            ),
            "{json}"
        );
        assert!(json.ends_with("}]}}\n"), "{json}");
    }

    #[test]
    fn fields_are_the_struct_fields() {
        // Debug prints the struct's fields in order: the table must follow it.
        let st = stats::read();
        let debug = format!("{st:?}");
        let mut at = 0;
        for f in FIELDS.iter() {
            let key = format!("{}: {}", f.name, (f.get)(&st));
            let i = debug[at..]
                .find(&key)
                .unwrap_or_else(|| panic!("{key} in {debug}"));
            at += i + key.len();
        }
        assert!(
            debug[at..].starts_with(", by_size:"),
            "{}",
            &debug[at..at + 20]
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_string(&mut s, b"a\"b\\c\nd\x01\xffe").unwrap();
        assert_eq!(
            s,
            "\"a\\\"b\\\\c\\nd\\u0001\\ufffde\"".replace("\\n", "\\u000a")
        );
        let mut t = String::new();
        text_string(&mut t, b"a\nb\xffc").unwrap();
        assert_eq!(t, "a?b?c");
    }

    #[test]
    fn stats_file_paths() {
        let mut buf = [0u8; PATH_MAX];
        let mut path = |name: &str, dir: &str| {
            stats_file_path(name.as_bytes(), 42, dir.as_bytes(), &mut buf)
                .map(|n| String::from_utf8(buf[..n].to_vec()).unwrap())
        };
        assert_eq!(path("r.%p.txt", "/home/u").unwrap(), "/home/u/r.42.txt");
        assert_eq!(path("r.txt", "/").unwrap(), "/r.txt");
        assert_eq!(path("/tmp/%p-%%p-%x", "/home").unwrap(), "/tmp/42-%p-%x");
        assert_eq!(path("a%", "").unwrap(), "a%");
        assert_eq!(
            path(&"x".repeat(PATH_MAX - 1), "").unwrap().len(),
            PATH_MAX - 1
        );
        assert!(path(&"x".repeat(PATH_MAX), "").is_none());
        assert!(path(&"x".repeat(PATH_MAX - 3), "/d").is_none());
    }

    #[test]
    fn maps_lines() {
        let line = b"7f0000001000-7f0000002000 r-xp 00001000 08:01 123    /usr/lib/lib go.so";
        assert_eq!(
            mapping_path(line, 0x7f0000001800).map(|r| &line[r]),
            Some(&b"/usr/lib/lib go.so"[..])
        );
        assert_eq!(mapping_path(line, 0x7f0000002000), None);
        let anon = b"7f0000001000-7f0000002000 rw-p 00000000 00:00 0 ";
        assert_eq!(mapping_path(anon, 0x7f0000001000).map(|r| r.len()), Some(0));
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no /proc")]
    fn this_code_is_found_in_the_maps() {
        let mut buf = [0u8; 8192];
        let path = mapping_of(
            this_code_is_found_in_the_maps as *const () as usize,
            &mut buf,
        )
        .unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(path, exe.as_os_str().as_encoded_bytes());
    }

    #[test]
    fn formats() {
        assert_eq!(Format::parse(b""), Some(Format::Text));
        assert_eq!(Format::parse(b"Text"), Some(Format::Text));
        assert_eq!(Format::parse(b" JSON"), Some(Format::Json));
        assert_eq!(Format::parse(b"xml"), None);
    }
}
