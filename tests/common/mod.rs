//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// xorshift64*: a small seeded generator, so every failure can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A size skewed towards small values, up to `max`.
    pub fn size(&mut self, max: usize) -> usize {
        let bits = self.below(usize::BITS as u64 - max.leading_zeros() as u64 + 1);
        (self.next() as usize & ((1usize << bits) - 1)).min(max)
    }
}

/// The byte expected at offset `i` of an object stamped with `tag`.
#[inline]
pub fn pattern(tag: u64, i: usize) -> u8 {
    (tag.wrapping_mul(31).wrapping_add(i as u64 * 7) >> 3) as u8
}

/// # Safety
/// `p` holds `len` writable bytes.
pub unsafe fn stamp(p: *mut u8, len: usize, tag: u64) {
    for i in 0..len {
        *p.add(i) = pattern(tag, i);
    }
}

/// # Safety
/// `p` holds `len` readable bytes.
pub unsafe fn check(p: *const u8, len: usize, tag: u64) -> bool {
    (0..len).all(|i| *p.add(i) == pattern(tag, i))
}

/// A command as a shell line, with the environment it sets (for failure messages).
pub fn command_line(cmd: &std::process::Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s += &format!("{}={} ", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    s += &cmd.get_program().to_string_lossy();
    for a in cmd.get_args() {
        s += " ";
        s += &a.to_string_lossy();
    }
    s
}

/// A command that runs the program `exe`: directly, or, when `GOALLOC_TEST_RUNNER` names
/// a qemu-user command (`qemu-aarch64 -L /usr/aarch64-linux-gnu`, as
/// scripts/test-aarch64.sh sets it), under it, with `guest_env` set for the program only
/// (`-E`), so that an `LD_PRELOAD` of another architecture's library does not reach qemu.
pub fn program_command(
    exe: &std::path::Path,
    guest_env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Command {
    let runner = std::env::var("GOALLOC_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let Some(qemu) = words.next() else {
        let mut cmd = std::process::Command::new(exe);
        cmd.envs(guest_env.iter().copied());
        return cmd;
    };
    let mut cmd = std::process::Command::new(qemu);
    cmd.args(words);
    for (k, v) in guest_env {
        let mut kv = std::ffi::OsString::from(k);
        kv.push("=");
        kv.push(v);
        cmd.arg("-E").arg(kv).env_remove(k);
    }
    cmd.arg(exe);
    cmd
}
