//! unwind: call stacks for the heap profile, from the unwind tables, with a cache.
//!
//! Debian builds without frame pointers, so a stack is walked with the call-frame
//! information (CFI) of `.eh_frame`. libgcc_s's `_Unwind_Backtrace` does that, but
//! interprets each frame's CFI program again on every walk, which made the walk most of
//! what a sample costs (commit 4ca1474 has the callgrind figures). As libunwind's fast
//! trace does, this module reduces a return address's CFI to the rule that almost all
//! x86-64 code follows: the frame's canonical frame address (CFA) is RSP or RBP plus a
//! constant, the return address is at a constant offset from it, and RBP is unchanged or
//! saved at a constant offset. The rule of each address is computed once, from the FDE
//! that libgcc's `_Unwind_Find_FDE` finds, and kept in `CACHE`; a walk is then a cache
//! lookup and two or three loads a frame.
//!
//! A frame whose CFI says anything else (a CFA that is an expression or another register,
//! a signal frame, an unknown instruction) has no rule: the caller then walks the stack
//! with `_Unwind_Backtrace` instead. The cache is emptied when a shared object is
//! unloaded (`dlpi_subs` changed), since another may later be loaded at its addresses.
//! The rules are x86-64's; on other targets every walk is libgcc's.

// Only x86-64's `walk` uses the rules; the rest of the module stays compiled (and tested)
// everywhere.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, Ordering};

/// `struct dwarf_eh_bases` of libgcc.
#[repr(C)]
pub struct EhBases {
    tbase: *mut c_void,
    dbase: *mut c_void,
    func: *mut c_void,
}

/// libgcc_s's `_Unwind_Find_FDE`: the FDE covering `pc`, or null; fills `bases`.
pub type FindFde = unsafe extern "C" fn(pc: *mut c_void, bases: *mut EhBases) -> *const u8;

// A rule in the cache is 64 bits: `cfa_off` in bits 0..31, `ra_off` in 32..39, `rbp_off`
// in 40..47, the flags below in 48..51, and the low 12 bits of the address in 52..63,
// checked on lookup.
const F_CFA_RBP: u64 = 1 << 48;
const F_RBP_SAVED: u64 = 1 << 49;
const F_END: u64 = 1 << 50;
const F_VALID: u64 = 1 << 51;

/// A frame's rule, unpacked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rule {
    pub cfa_rbp: bool,
    pub cfa_off: i32,
    pub ra_off: i8,
    /// RBP's save slot from the CFA, if saved.
    pub rbp_off: Option<i8>,
    /// The outermost frame: no return address.
    pub end: bool,
}

/// The cache's value for `rule` at `ip`.
fn pack(rule: Rule, ip: usize) -> u64 {
    let mut v = (rule.cfa_off as u32 as u64)
        | ((rule.ra_off as u8 as u64) << 32)
        | ((rule.rbp_off.unwrap_or(0) as u8 as u64) << 40)
        | F_VALID
        | ((ip as u64 & 0xfff) << 52);
    if rule.cfa_rbp {
        v |= F_CFA_RBP;
    }
    if rule.rbp_off.is_some() {
        v |= F_RBP_SAVED;
    }
    if rule.end {
        v |= F_END;
    }
    v
}

fn unpack(v: u64, ip: usize) -> Option<Rule> {
    if v & F_VALID == 0 || (v >> 52) != ip as u64 & 0xfff {
        return None;
    }
    Some(Rule {
        cfa_rbp: v & F_CFA_RBP != 0,
        cfa_off: v as u32 as i32,
        ra_off: (v >> 32) as u8 as i8,
        rbp_off: (v & F_RBP_SAVED != 0).then_some((v >> 40) as u8 as i8),
        end: v & F_END != 0,
    })
}

/// Entries of the cache (a power of two): 256 KiB of `.bss`, untouched until used.
const CACHE_SIZE: usize = 1 << 14;
/// Slots probed from an address's home slot before giving up.
const PROBES: usize = 16;
/// A slot being written: its key is not yet an address.
const BUSY: u64 = 1;

struct Entry {
    /// The return address (or 0: free; `BUSY`: being written).
    key: AtomicU64,
    value: AtomicU64,
}

static CACHE: [Entry; CACHE_SIZE] = [const {
    Entry {
        key: AtomicU64::new(0),
        value: AtomicU64::new(0),
    }
}; CACHE_SIZE];

/// `dlpi_subs` when the cache was last checked.
static SUBS: AtomicU64 = AtomicU64::new(0);

fn home(ip: usize) -> usize {
    (ip as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as usize >> (64 - CACHE_SIZE.trailing_zeros())
}

fn lookup(ip: usize) -> Option<Rule> {
    let h = home(ip);
    for i in 0..PROBES {
        let e = &CACHE[(h + i) & (CACHE_SIZE - 1)];
        let k = e.key.load(Ordering::Acquire);
        if k == ip as u64 {
            return unpack(e.value.load(Ordering::Acquire), ip);
        }
        if k == 0 {
            return None;
        }
    }
    None
}

fn insert(ip: usize, rule: Rule) {
    let h = home(ip);
    for i in 0..PROBES {
        let e = &CACHE[(h + i) & (CACHE_SIZE - 1)];
        match e
            .key
            .compare_exchange(0, BUSY, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                e.value.store(pack(rule, ip), Ordering::Release);
                e.key.store(ip as u64, Ordering::Release);
                return;
            }
            Err(k) if k == ip as u64 => return,
            Err(_) => {}
        }
    }
}

/// Empties the cache if a shared object was unloaded since it was last checked.
pub fn check_unloads() {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid info; data is the u64 below.
        unsafe { *(data as *mut u64) = (*info).dlpi_subs };
        1
    }
    let mut subs = 0u64;
    // SAFETY: first matches the callback type and writes only `subs`.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut subs as *mut u64 as *mut c_void) };
    if SUBS.swap(subs, Ordering::AcqRel) != subs {
        for e in CACHE.iter() {
            e.value.store(0, Ordering::Release);
            e.key.store(0, Ordering::Release);
        }
    }
}

// ---- reading the CFI ----------------------------------------------------------------

/// A cursor over CFI bytes, a range of a loaded object's `.eh_frame` (a CIE or an FDE,
/// by its length). Invariant: `p..end` is readable (`new` is promised so), and `p`
/// moves only forward up to `end` (its methods read only below `end` and never move `p`
/// past it) or back to where it was.
struct Reader {
    p: *const u8,
    end: *const u8,
}

impl Reader {
    /// # Safety
    /// `p..end` is readable memory for as long as the reader is used.
    unsafe fn new(p: *const u8, end: *const u8) -> Reader {
        Reader { p, end }
    }

    fn u8(&mut self) -> Option<u8> {
        if self.p >= self.end {
            return None;
        }
        // SAFETY: `p < end`, inside the readable range.
        unsafe {
            let v = *self.p;
            self.p = self.p.add(1);
            Some(v)
        }
    }

    fn fixed(&mut self, n: usize) -> Option<u64> {
        if (self.end as usize).saturating_sub(self.p as usize) < n {
            return None;
        }
        let mut v = 0u64;
        // SAFETY: `p + n <= end`, inside the readable range.
        unsafe {
            for i in 0..n {
                v |= (*self.p.add(i) as u64) << (8 * i);
            }
            self.p = self.p.add(n);
        }
        Some(v)
    }

    fn uleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= ((b & 0x7f) as u64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
    }

    fn sleb(&mut self) -> Option<i64> {
        let mut v = 0i64;
        let mut shift = 0;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= ((b & 0x7f) as i64) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
        }
    }

    /// Skips a pointer of DW_EH_PE encoding `enc`.
    fn skip_encoded(&mut self, enc: u8) -> Option<()> {
        if enc == 0xff {
            return Some(());
        }
        if enc & 0x70 == 0x50 {
            // aligned
            let a = (self.p as usize).next_multiple_of(8);
            self.skip((a - self.p as usize) as u64)?;
        }
        match enc & 0x0f {
            0x00 | 0x04 | 0x0c => self.fixed(8).map(drop),
            0x01 => self.uleb().map(drop),
            0x09 => self.sleb().map(drop),
            0x02 | 0x0a => self.fixed(2).map(drop),
            0x03 | 0x0b => self.fixed(4).map(drop),
            _ => None,
        }
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        if ((self.end as usize).saturating_sub(self.p as usize) as u64) < n {
            return None;
        }
        // SAFETY: `p + n <= end`: still inside the range.
        self.p = unsafe { self.p.add(n as usize) };
        Some(())
    }
}

/// How a register is recovered, as far as the rules here go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reg {
    Same,
    /// Saved at CFA + n.
    At(i64),
    Undefined,
    /// Anything else.
    Other,
}

#[derive(Clone, Copy)]
struct Row {
    cfa_reg: u64,
    cfa_off: i64,
    /// The CFA is not register + offset.
    cfa_other: bool,
    rbp: Reg,
    ra: Reg,
}

const DW_RBP: u64 = 6;
const DW_RSP: u64 = 7;
const DW_RA: u64 = 16;

fn set(row: &mut Row, reg: u64, r: Reg) {
    match reg {
        DW_RBP => row.rbp = r,
        DW_RA => row.ra = r,
        _ => {}
    }
}

/// Runs the CFA program `r` from `row`, for code at `pc`, starting at location `loc`;
/// `initial` is the CIE's row (for restore). Stops at the first row past `pc`.
fn run(
    r: &mut Reader,
    row: &mut Row,
    initial: &Row,
    mut loc: u64,
    pc: u64,
    code_align: u64,
    data_align: i64,
) -> Option<()> {
    let mut stack = [*row; 8];
    let mut depth = 0;
    while r.p < r.end {
        let op = r.u8()?;
        let (high, low) = (op & 0xc0, op & 0x3f);
        let mut advance = None;
        match high {
            0x40 => advance = Some(low as u64 * code_align),
            0x80 => {
                let off = r.uleb()? as i64 * data_align;
                set(row, low as u64, Reg::At(off));
            }
            0xc0 => set(row, low as u64, pick(initial, low as u64)),
            _ => match op {
                0x00 => {}
                0x02 => advance = Some(r.fixed(1)? * code_align),
                0x03 => advance = Some(r.fixed(2)? * code_align),
                0x04 => advance = Some(r.fixed(4)? * code_align),
                0x05 => {
                    let reg = r.uleb()?;
                    let off = r.uleb()? as i64 * data_align;
                    set(row, reg, Reg::At(off));
                }
                0x06 => {
                    let reg = r.uleb()?;
                    set(row, reg, pick(initial, reg));
                }
                0x07 => {
                    let reg = r.uleb()?;
                    set(row, reg, Reg::Undefined);
                }
                0x08 => {
                    let reg = r.uleb()?;
                    set(row, reg, Reg::Same);
                }
                0x09 => {
                    let reg = r.uleb()?;
                    r.uleb()?;
                    set(row, reg, Reg::Other);
                }
                0x0a => {
                    if depth == stack.len() {
                        return None;
                    }
                    stack[depth] = *row;
                    depth += 1;
                }
                0x0b => {
                    if depth == 0 {
                        return None;
                    }
                    depth -= 1;
                    // The CFA is not part of the remembered state in practice (GCC
                    // emits def_cfa again where it changes), but DWARF says it is.
                    *row = stack[depth];
                }
                0x0c => {
                    row.cfa_reg = r.uleb()?;
                    row.cfa_off = r.uleb()? as i64;
                    row.cfa_other = false;
                }
                0x0d => {
                    row.cfa_reg = r.uleb()?;
                    row.cfa_other = false;
                }
                0x0e => row.cfa_off = r.uleb()? as i64,
                0x0f => {
                    let n = r.uleb()?;
                    r.skip(n)?;
                    row.cfa_other = true;
                }
                0x10 | 0x16 => {
                    let reg = r.uleb()?;
                    let n = r.uleb()?;
                    r.skip(n)?;
                    set(row, reg, Reg::Other);
                }
                0x11 => {
                    let reg = r.uleb()?;
                    let off = r.sleb()? * data_align;
                    set(row, reg, Reg::At(off));
                }
                0x12 => {
                    row.cfa_reg = r.uleb()?;
                    row.cfa_off = r.sleb()? * data_align;
                    row.cfa_other = false;
                }
                0x13 => row.cfa_off = r.sleb()? * data_align,
                0x14 => {
                    let reg = r.uleb()?;
                    r.uleb()?;
                    set(row, reg, Reg::Other);
                }
                0x15 => {
                    let reg = r.uleb()?;
                    r.sleb()?;
                    set(row, reg, Reg::Other);
                }
                0x2e => {
                    r.uleb()?;
                }
                0x2f => {
                    let reg = r.uleb()?;
                    let off = -(r.uleb()? as i64) * data_align;
                    set(row, reg, Reg::At(off));
                }
                _ => return None,
            },
        }
        if let Some(d) = advance {
            loc += d;
            if loc > pc {
                return Some(());
            }
        }
    }
    Some(())
}

fn pick(initial: &Row, reg: u64) -> Reg {
    match reg {
        DW_RBP => initial.rbp,
        DW_RA => initial.ra,
        _ => Reg::Same,
    }
}

/// The rule of the code at `pc` (a return address minus one, or the address itself for
/// the innermost frame), from its FDE; None when there is none or it is not a rule.
///
/// # Safety
/// `find` is libgcc's `_Unwind_Find_FDE`.
unsafe fn compute(find: FindFde, pc: usize) -> Option<Rule> {
    let mut bases = EhBases {
        tbase: core::ptr::null_mut(),
        dbase: core::ptr::null_mut(),
        func: core::ptr::null_mut(),
    };
    // SAFETY: `find` is libgcc's (the caller's promise), which takes any address.
    let fde = unsafe { find(pc as *mut c_void, &mut bases) };
    if fde.is_null() {
        return None;
    }
    // SAFETY: an FDE that libgcc found lies in a loaded object's `.eh_frame`: its length
    // word and CIE offset are readable, the offset leads back to its CIE in the same
    // section, and each record spans the length in its first word (the 64-bit form,
    // length 0xffffffff, is refused).
    let (mut r, mut f) = unsafe {
        let fde_len = (fde as *const u32).read_unaligned() as usize;
        if fde_len == 0 || fde_len == 0xffff_ffff {
            return None;
        }
        let cie_ptr = (fde.add(4) as *const u32).read_unaligned() as usize;
        let cie = fde.add(4).sub(cie_ptr);
        let cie_len = (cie as *const u32).read_unaligned() as usize;
        if cie_len == 0 || cie_len == 0xffff_ffff {
            return None;
        }
        (
            Reader::new(cie.add(8), cie.add(4 + cie_len)),
            Reader::new(fde.add(8), fde.add(4 + fde_len)),
        )
    };
    // The CIE.
    let version = r.u8()?;
    let aug_start = r.p;
    let mut aug_len = 0;
    while r.u8()? != 0 {
        aug_len += 1;
    }
    // SAFETY: `r.u8` just read these `aug_len` bytes, inside the CIE.
    let aug = unsafe { core::slice::from_raw_parts(aug_start, aug_len) };
    let code_align = r.uleb()?;
    let data_align = r.sleb()?;
    let ra_reg = if version == 1 {
        r.u8()? as u64
    } else {
        r.uleb()?
    };
    if ra_reg != DW_RA {
        return None;
    }
    let mut fde_enc = 0u8;
    let z = aug.first() == Some(&b'z');
    if !aug.is_empty() {
        if !z {
            return None;
        }
        let len = r.uleb()?;
        let data_start = r.p;
        r.skip(len)?;
        let data_end = r.p;
        r.p = data_start;
        for &c in &aug[1..] {
            match c {
                b'R' => fde_enc = r.u8()?,
                b'P' => {
                    let enc = r.u8()?;
                    r.skip_encoded(enc)?;
                }
                b'L' => {
                    r.u8()?;
                }
                // A signal frame ('S'), or what is not known here.
                _ => return None,
            }
        }
        r.p = data_end;
    }
    let mut row = Row {
        cfa_reg: DW_RSP,
        cfa_off: 8,
        cfa_other: false,
        rbp: Reg::Same,
        ra: Reg::Same,
    };
    let initial_row = row;
    run(
        &mut r,
        &mut row,
        &initial_row,
        0,
        u64::MAX,
        code_align,
        data_align,
    )?;
    let initial = row;
    // The FDE.
    f.skip_encoded(fde_enc)?;
    f.skip_encoded(fde_enc & 0x0f)?;
    if z {
        let n = f.uleb()?;
        f.skip(n)?;
    }
    let func = bases.func as u64;
    if func == 0 || (pc as u64) < func {
        return None;
    }
    run(
        &mut f, &mut row, &initial, func, pc as u64, code_align, data_align,
    )?;
    if row.cfa_other || (row.cfa_reg != DW_RSP && row.cfa_reg != DW_RBP) {
        return None;
    }
    let cfa_off = i32::try_from(row.cfa_off).ok()?;
    let end = row.ra == Reg::Undefined;
    let ra_off = match row.ra {
        Reg::At(n) => i8::try_from(n).ok()?,
        Reg::Undefined => 0,
        _ => return None,
    };
    let rbp_off = match row.rbp {
        Reg::Same => None,
        Reg::At(n) => Some(i8::try_from(n).ok()?),
        _ => return None,
    };
    Some(Rule {
        cfa_rbp: row.cfa_reg == DW_RBP,
        cfa_off,
        ra_off,
        rbp_off,
        end,
    })
}

/// The rule of the frame at `ip` (`first`: the innermost frame, where `ip` is not a
/// return address), from the cache or computed and cached.
///
/// # Safety
/// As `compute`.
unsafe fn rule(find: FindFde, ip: usize, first: bool) -> Option<Rule> {
    if let Some(r) = lookup(ip) {
        return Some(r);
    }
    // SAFETY: `find` is libgcc's, as the caller promises.
    let r = unsafe { compute(find, if first { ip } else { ip - 1 }) }?;
    insert(ip, r);
    Some(r)
}

/// Walks the calling thread's stack: calls `f` with each return address, innermost
/// first, until `f` returns false or the stack ends. False when a frame has no rule
/// (the caller then walks with `_Unwind_Backtrace`).
///
/// # Safety
/// `find` is libgcc's `_Unwind_Find_FDE`; the stack's CFI is correct (as any unwinder
/// assumes).
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn walk(_find: FindFde, _f: impl FnMut(usize) -> bool) -> bool {
    // The cached rules describe x86-64 frames (RSP, RBP); elsewhere every walk is
    // libgcc's.
    false
}

/// See the other `walk`.
///
/// # Safety
/// As there.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub unsafe fn walk(find: FindFde, mut f: impl FnMut(usize) -> bool) -> bool {
    let (mut ip, mut sp, mut bp): (usize, usize, usize);
    // SAFETY: reads three registers; the address is this function's own code, whose CFI
    // describes the frame as it is here (the asm does not move the stack pointer).
    unsafe {
        core::arch::asm!(
        "lea {ip}, [rip]",
        "mov {sp}, rsp",
        "mov {bp}, rbp",
        ip = out(reg) ip,
        sp = out(reg) sp,
        bp = out(reg) bp,
        options(nomem, nostack, preserves_flags),
        )
    };
    let mut first = true;
    loop {
        // SAFETY: `find` is libgcc's, as the caller promises.
        let Some(r) = (unsafe { rule(find, ip, first) }) else {
            return false;
        };
        if r.end {
            return true;
        }
        let cfa = (if r.cfa_rbp { bp } else { sp }).wrapping_add(r.cfa_off as isize as usize);
        // The CFA of a caller lies above its callee's stack pointer; anything else is
        // a stack this walk does not understand.
        if cfa <= sp || cfa - sp > 1 << 30 {
            return false;
        }
        // SAFETY: the rule, from the frame's CFI (correct, as the caller promises), puts
        // the return address (and RBP's save slot) in the caller's part of this thread's
        // stack, which lies within 1 GiB above `sp` (checked above).
        let ra = unsafe {
            if let Some(o) = r.rbp_off {
                bp = (cfa.wrapping_add(o as isize as usize) as *const usize).read();
            }
            (cfa.wrapping_add(r.ra_off as isize as usize) as *const usize).read()
        };
        sp = cfa;
        ip = ra;
        first = false;
        if ip == 0 || !f(ip) {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_pack_and_unpack() {
        let rules = [
            Rule {
                cfa_rbp: false,
                cfa_off: 8,
                ra_off: -8,
                rbp_off: None,
                end: false,
            },
            Rule {
                cfa_rbp: true,
                cfa_off: 16,
                ra_off: -8,
                rbp_off: Some(-16),
                end: false,
            },
            Rule {
                cfa_rbp: false,
                cfa_off: 1 << 20,
                ra_off: -8,
                rbp_off: Some(-56),
                end: true,
            },
        ];
        for (i, &r) in rules.iter().enumerate() {
            let ip = 0x5555_0000_1234 + i * 77;
            assert_eq!(unpack(pack(r, ip), ip), Some(r));
            assert_eq!(
                unpack(pack(r, ip), ip + 1),
                None,
                "the tag tells addresses apart"
            );
        }
        assert_eq!(unpack(0, 0), None);
    }

    /// The walk gives the return addresses libgcc's `_Unwind_Backtrace` gives (the test
    /// binary links libgcc_s, as Rust's std does).
    #[test]
    #[cfg(target_arch = "x86_64")]
    #[inline(never)]
    fn walks_as_libgcc_does() {
        type Trace = extern "C" fn(*mut c_void, *mut c_void) -> c_int;
        extern "C" {
            fn _Unwind_Find_FDE(pc: *mut c_void, bases: *mut EhBases) -> *const u8;
            fn _Unwind_Backtrace(f: Trace, arg: *mut c_void) -> c_int;
            fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
        }
        extern "C" fn push(ctx: *mut c_void, arg: *mut c_void) -> c_int {
            // SAFETY: arg is the Vec below; ctx the unwinder's context.
            unsafe { (*(arg as *mut Vec<usize>)).push(_Unwind_GetIP(ctx)) };
            0
        }
        #[inline(never)]
        fn both(depth: usize) -> (Vec<usize>, Vec<usize>, bool) {
            if depth > 0 {
                let r = both(depth - 1);
                std::hint::black_box(depth);
                return r;
            }
            let mut ours = Vec::with_capacity(256);
            let mut theirs: Vec<usize> = Vec::with_capacity(256);
            // SAFETY: libgcc's functions, with their own types.
            let ok = unsafe {
                let ok = walk(_Unwind_Find_FDE, |ip| {
                    ours.push(ip);
                    ours.len() < 200
                });
                _Unwind_Backtrace(push, &mut theirs as *mut Vec<usize> as *mut c_void);
                ok
            };
            (ours, theirs, ok)
        }
        let (ours, mut theirs, ok) = both(5);
        // libgcc reports the outermost frame, whose return address is undefined, as 0.
        while theirs.last() == Some(&0) {
            theirs.pop();
        }
        assert!(ok, "a frame without a rule: {ours:x?}");
        // theirs starts in `both` at the call of _Unwind_Backtrace, ours at the return
        // from `walk`: both go on through the same callers.
        assert!(ours.len() > 6, "{ours:x?}");
        assert_eq!(ours.len(), theirs.len(), "{ours:x?} {theirs:x?}");
        assert_eq!(ours[1..], theirs[1..], "{ours:x?} {theirs:x?}");
        // The rules are cached: a second walk (from another call site of this test)
        // gives the same frames in `both` and as many in all.
        let (again, _, _) = both(5);
        assert_eq!(again[..5], ours[..5]);
        assert_eq!(again.len(), ours.len());
    }

    #[test]
    fn leb128() {
        let bytes = [0xe5u8, 0x8e, 0x26, 0x7f, 0x80, 0x7f];
        let range = bytes.as_ptr_range();
        // SAFETY: the range of `bytes`, which outlives the reader.
        let mut r = unsafe { Reader::new(range.start, range.end) };
        assert_eq!(r.uleb(), Some(624485));
        assert_eq!(r.sleb(), Some(-1));
        assert_eq!(r.sleb(), Some(-128));
        assert_eq!(r.u8(), None);
    }
}
