//! Human-readable statistics: `malloc_stats()`, `GOALLOC_STATS=1` at exit, `malloc_info`.
//!
//! Everything is formatted with `core::fmt` into a buffer on the stack and written with
//! `write(2)` (or `fwrite` for `malloc_info`'s stream): no allocation, so a report can be
//! printed from inside a failing or exiting program.

use crate::options;
use crate::sizeclass::NUM_CLASSES;
use crate::stats::{self, goalloc_mem_stats};
use core::fmt::{self, Write};

/// Where a report goes.
enum Sink {
    Fd(i32),
    #[cfg_attr(not(feature = "c-api"), allow(dead_code))]
    File(*mut libc::FILE),
}

/// A `fmt::Write` that buffers on the stack and flushes to its sink.
struct Out {
    buf: [u8; 2048],
    len: usize,
    sink: Sink,
}

impl Out {
    fn new(sink: Sink) -> Out {
        Out {
            buf: [0; 2048],
            len: 0,
            sink,
        }
    }

    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: buf[done..len] is initialised; a failed write drops the rest.
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

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// VmHWM (peak resident set) in KiB, read without allocating; 0 if unknown.
fn peak_rss_kib() -> u64 {
    let mut buf = [0u8; 4096];
    // SAFETY: a NUL-terminated path; buf is a valid destination of its length.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut _, buf.len());
        libc::close(fd);
        n
    };
    let text = &buf[..n.max(0) as usize];
    let key = b"VmHWM:";
    let Some(at) = text.windows(key.len()).position(|w| w == key) else {
        return 0;
    };
    text[at + key.len()..]
        .iter()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .fold(0, |v, c| v * 10 + (c - b'0') as u64)
}

fn report(out: &mut Out, st: &goalloc_mem_stats, at_exit: bool) -> fmt::Result {
    let title = if at_exit { "at exit" } else { "now" };
    writeln!(out, "goalloc statistics ({title})")?;
    writeln!(
        out,
        "  heap: {:.1} MiB allocated in {} objects, {:.1} MiB in use in spans, {:.1} MiB idle ({:.1} MiB released), {:.1} MiB mapped",
        mib(st.heap_alloc),
        st.heap_objects,
        mib(st.heap_inuse),
        mib(st.heap_idle),
        mib(st.heap_released),
        mib(st.heap_sys)
    )?;
    writeln!(
        out,
        "  totals: {} mallocs, {} frees, {:.1} MiB allocated; {} large objects live ({:.1} MiB); metadata {:.1} MiB",
        st.mallocs,
        st.frees,
        mib(st.total_alloc),
        st.large_objects,
        mib(st.large_bytes),
        mib(st.meta_sys)
    )?;
    writeln!(
        out,
        "  scavenger: {}, {:.1} MiB released in {} chunks, {:.1} ms CPU, {} wake-ups",
        if st.scav_running != 0 {
            "running"
        } else {
            "not started"
        },
        mib(st.scav_released),
        st.scav_chunks,
        st.scav_cpu_ns as f64 / 1e6,
        st.scav_wakeups
    )?;
    writeln!(out, "  peak RSS: {:.1} MiB", peak_rss_kib() as f64 / 1024.0)?;
    writeln!(
        out,
        "  class     size        live     mallocs       frees  spans   waste KiB"
    )?;
    for class in 1..NUM_CLASSES {
        let c = &st.by_size[class];
        if c.mallocs == 0 && c.spans == 0 {
            continue;
        }
        writeln!(
            out,
            "  {:5} {:8} {:11} {:11} {:11} {:6} {:11.1}",
            class,
            c.size,
            c.live,
            c.mallocs,
            c.frees,
            c.spans,
            c.waste as f64 / 1024.0
        )?;
    }
    Ok(())
}

/// Writes the readable report to `fd`.
pub fn write_report(fd: i32, at_exit: bool) {
    let st = stats::read();
    let mut out = Out::new(Sink::Fd(fd));
    let _ = report(&mut out, &st, at_exit);
    out.flush();
}

/// `malloc_info`'s XML, in the shape glibc gives it.
#[cfg_attr(not(feature = "c-api"), allow(dead_code))]
pub fn write_malloc_info(stream: *mut libc::FILE) {
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

/// `GOALLOC_STATS=1`: the report at exit, on stderr or in `GOALLOC_STATS_FILE`.
extern "C" fn stats_at_exit() {
    if options::get(options::STATS) == 0 {
        return;
    }
    let mut fd = 2;
    let mut path = [0u8; 4096];
    if let Some(name) = options::text(options::STATS_FILE) {
        if !name.is_empty() && name.len() < path.len() {
            path[..name.len()].copy_from_slice(name);
            // SAFETY: path is NUL-terminated (the buffer is zeroed past the name).
            let f = unsafe {
                libc::open(
                    path.as_ptr() as *const libc::c_char,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
                    0o644,
                )
            };
            if f >= 0 {
                fd = f;
            }
        }
    }
    write_report(fd, true);
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
