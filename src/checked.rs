//! Bad input and the checked mode.
//!
//! **Bad pointers** are found on the default paths where it is cheap: the page map says
//! "not ours"; a span's state says "already free" (large objects); an offset that is not a
//! multiple of the class size says "inside an object"; a pointer equal to the head of the
//! thread's free list says "freed twice in a row"; an object that comes back to its span
//! while the span's bitmap has it back already says "double free". What happens then is
//! `GOALLOC_INVALID_FREE`: `abort` (default: one `goalloc:` line naming the call and the
//! pointer, then `abort()`), `warn` (the line, and the call does nothing), `ignore`.
//!
//! **Checked mode** (`GOALLOC_CHECK=1`) catches what the fast paths cannot, at the price of
//! speed: every thread cache stays empty, so every `malloc` and `free` goes through
//! mcentral under its lock, where
//! - every `free` reaches the object's span, whose bitmap of returned objects (kept in
//!   every mode) finds a second `free` of any object, however long after the first;
//! - a freed object is filled with `FREE_FILL`, every byte of it, and checked when it is
//!   handed out again: a write after free is found (a span keeps its returned objects in a
//!   bitmap, so no link is kept in freed memory that a stray write could corrupt).
//!
//! The default paths pay nothing for checked mode: it only changes the limits that send
//! every operation to the slow paths.

use crate::options;
use crate::os;
use core::sync::atomic::{AtomicBool, Ordering};

/// What a freed object holds in checked mode.
pub const FREE_FILL: u8 = 0xdb;

static CHECKED: AtomicBool = AtomicBool::new(false);

/// Reads the mode. Called once from `crate::init`, after options.
pub fn init() {
    CHECKED.store(options::get(options::CHECK) != 0, Ordering::Relaxed);
}

/// Whether checked mode is on.
#[inline(always)]
pub fn enabled() -> bool {
    CHECKED.load(Ordering::Relaxed)
}

/// Reports a bad pointer passed to `call` (e.g. `"free(): double free"`), as
/// `GOALLOC_INVALID_FREE` says. Returns only for `warn` and `ignore`; the caller then
/// does nothing with the pointer.
#[cold]
#[inline(never)]
pub fn invalid(what: &str, p: usize) {
    match options::get(options::INVALID_FREE) {
        options::INVALID_IGNORE => {}
        options::INVALID_WARN => {
            let mut hex = [0u8; 18];
            os::write_stderr(&[
                b"goalloc: ",
                what.as_bytes(),
                b" ",
                os::fmt_hex(p, &mut hex),
                b" (ignored)",
            ]);
        }
        _ => os::fatal_ptr(what, p),
    }
}

/// Reports the bad pointer `p` passed to the entry point `call` (e.g. `"free()"`,
/// `"operator delete"`) as `"{call}: {what}"`, as `invalid` does, without allocating.
#[cold]
#[inline(never)]
pub fn invalid_call(call: &str, what: &str, p: usize) {
    let mut msg = [0u8; 160];
    let n = call.len().min(40);
    msg[..n].copy_from_slice(&call.as_bytes()[..n]);
    msg[n] = b':';
    msg[n + 1] = b' ';
    let m = what.len().min(msg.len() - n - 2);
    msg[n + 2..n + 2 + m].copy_from_slice(&what.as_bytes()[..m]);
    // The parts are ASCII, so the text is valid UTF-8.
    invalid(core::str::from_utf8(&msg[..n + 2 + m]).unwrap_or(what), p);
}

/// Fills a freed object.
///
/// # Safety
/// `p` holds `size` writable bytes.
#[inline]
pub unsafe fn fill(p: *mut u8, size: usize) {
    // SAFETY: p holds size writable bytes (caller's contract).
    unsafe { p.write_bytes(FREE_FILL, size) };
}

/// Whether a free object still holds the fill.
///
/// # Safety
/// `p` holds `size` readable bytes.
pub unsafe fn fill_intact(p: *const u8, size: usize) -> bool {
    // SAFETY: p holds size readable bytes (caller's contract), and i < size.
    (0..size).all(|i| unsafe { *p.add(i) } == FREE_FILL)
}
