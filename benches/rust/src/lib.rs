//! Rust workloads for comparing global allocators: one binary per allocator
//! (`src/bin/rust-*.rs`), each a `#[global_allocator]` and a call to [`main`].
//!
//! ```sh
//! rust-goalloc json [SCALE]        # serde_json: parse a generated document and rebuild it
//! rust-goalloc threads [SCALE]     # threads build and drop collections, pass Boxes around
//! rust-goalloc boxes N SIZE        # N Box alloc+drop pairs of SIZE bytes (for callgrind)
//! rust-goalloc loop N SIZE         # the same loop without the allocation (its own cost)
//! rust-goalloc goalloc-sized N SIZE  # N GoAlloc.alloc+dealloc pairs (the sized free)
//! rust-goalloc goalloc-free N SIZE   # N goalloc::malloc+free pairs (free reads the page map)
//! ```
//!
//! Every mode prints one deterministic result line (the same under every allocator), so a
//! script can check that all allocators did the same work. scripts/bench-rust.sh builds
//! the binaries and runs them interleaved.

use serde_json::{Map, Value};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::mpsc;
use std::thread;

/// FNV-1a, 64 bits: a checksum of the output that does not allocate.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// xorshift64*: deterministic pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
];

fn words(rng: &mut Rng, n: u64) -> String {
    let mut s = String::new();
    for i in 0..1 + rng.below(n) {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

/// A document of `records` user records, each with nested objects and arrays.
fn generate(records: usize) -> String {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut users = Vec::with_capacity(records);
    for id in 0..records {
        let mut u = Map::new();
        u.insert("id".into(), Value::from(id as u64));
        u.insert("name".into(), Value::from(words(&mut rng, 3)));
        u.insert(
            "email".into(),
            Value::from(format!(
                "user{}@example.{}",
                rng.below(1_000_000),
                WORDS[id % 26]
            )),
        );
        u.insert("active".into(), Value::from(rng.below(3) != 0));
        u.insert(
            "score".into(),
            Value::from(rng.below(1_000_000) as f64 / 1000.0),
        );
        let tags: Vec<Value> = (0..rng.below(6))
            .map(|_| Value::from(WORDS[rng.below(26) as usize]))
            .collect();
        u.insert("tags".into(), Value::from(tags));
        let mut addr = Map::new();
        addr.insert("street".into(), Value::from(words(&mut rng, 2)));
        addr.insert("city".into(), Value::from(WORDS[rng.below(26) as usize]));
        addr.insert(
            "zip".into(),
            Value::from(format!("{:05}", rng.below(100_000))),
        );
        u.insert("address".into(), Value::from(addr));
        let history: Vec<Value> = (0..rng.below(12))
            .map(|i| {
                let mut h = Map::new();
                h.insert(
                    "ts".into(),
                    Value::from(1_700_000_000 + i * 3600 + rng.below(3600)),
                );
                h.insert(
                    "amount".into(),
                    Value::from(rng.below(100_000) as i64 - 20_000),
                );
                h.insert("note".into(), Value::from(words(&mut rng, 6)));
                Value::from(h)
            })
            .collect();
        u.insert("history".into(), Value::from(history));
        users.push(Value::from(u));
    }
    let mut doc = Map::new();
    doc.insert("version".into(), Value::from(3));
    doc.insert("users".into(), Value::from(users));
    serde_json::to_string(&Value::from(doc)).expect("serialize")
}

/// A new document from a parsed one: every record reshaped, its strings rebuilt, its
/// history summed, and an index of users by city.
fn rebuild(doc: &Value) -> Value {
    let users = doc["users"].as_array().expect("users");
    let mut by_city: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        let mut r = Map::new();
        let id = u["id"].as_u64().expect("id");
        r.insert("user_id".into(), Value::from(id));
        r.insert(
            "display".into(),
            Value::from(u["name"].as_str().expect("name").to_uppercase()),
        );
        let email = u["email"].as_str().expect("email");
        let (local, domain) = email.split_once('@').expect("email");
        r.insert("domain".into(), Value::from(domain.to_string()));
        r.insert("login".into(), Value::from(local.replace("user", "u-")));
        let mut tags: Vec<String> = u["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        tags.sort();
        tags.dedup();
        r.insert("tags".into(), Value::from(tags.join(",")));
        let history = u["history"].as_array().expect("history");
        let total: i64 = history.iter().map(|h| h["amount"].as_i64().unwrap()).sum();
        let notes: Vec<Value> = history
            .iter()
            .filter(|h| h["amount"].as_i64().unwrap() > 0)
            .map(|h| {
                Value::from(
                    h["note"]
                        .as_str()
                        .unwrap()
                        .split(' ')
                        .rev()
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            })
            .collect();
        r.insert("total".into(), Value::from(total));
        r.insert("notes".into(), Value::from(notes));
        r.insert("score".into(), u["score"].clone());
        let city = u["address"]["city"].as_str().expect("city").to_string();
        by_city.entry(city).or_default().push(Value::from(id));
        out.push(Value::from(r));
    }
    let mut doc = Map::new();
    doc.insert("version".into(), Value::from(4));
    doc.insert("records".into(), Value::from(out));
    doc.insert(
        "by_city".into(),
        Value::from(
            by_city
                .into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect::<Map<_, _>>(),
        ),
    );
    Value::from(doc)
}

fn json(scale: f64) {
    let records = (20_000.0 * scale).max(100.0) as usize;
    let rounds = 4;
    let text = generate(records);
    let mut fnv = Fnv::new();
    let mut out_bytes = 0;
    for round in 0..rounds {
        let doc: Value = serde_json::from_str(&text).expect("parse");
        let new = rebuild(&doc);
        drop(doc);
        let out = if round % 2 == 0 {
            serde_json::to_string(&new)
        } else {
            serde_json::to_string_pretty(&new)
        }
        .expect("serialize");
        drop(new);
        // The rebuilt text parses again (a second document alive beside the first).
        let again: Value = serde_json::from_str(&out).expect("reparse");
        assert_eq!(again["records"].as_array().unwrap().len(), records);
        fnv.bytes(out.as_bytes());
        out_bytes += out.len();
    }
    println!(
        "json: records={records} rounds={rounds} in_bytes={} out_bytes={out_bytes} fnv={:016x}",
        text.len(),
        fnv.0
    );
}

/// What one thread hands to the next: allocated here, freed there.
struct Msg {
    words: Vec<String>,
    values: Box<[u64]>,
}

fn threads(scale: f64) {
    let nthreads = 16;
    let waves = 4;
    let iters = (400.0 * scale).max(10.0) as u64;
    let mut total = 0u64;
    for wave in 0..waves {
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..nthreads {
            let (tx, rx) = mpsc::channel::<Box<Msg>>();
            senders.push(tx);
            receivers.push(rx);
        }
        // Thread t sends to thread t+1 (mod n) and receives from thread t-1.
        senders.rotate_left(1);
        let handles: Vec<_> = senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(t, (tx, rx))| {
                thread::spawn(move || worker((wave * nthreads + t) as u64, iters, tx, rx))
            })
            .collect();
        for h in handles {
            total = total.wrapping_add(h.join().expect("worker"));
        }
    }
    println!("threads: threads={nthreads} waves={waves} iters={iters} sum={total:016x}");
}

fn take(m: &Msg) -> u64 {
    let mut s = m.values.iter().fold(0u64, |a, &v| a.wrapping_add(v));
    for w in &m.words {
        s = s.wrapping_add(w.len() as u64 * 31 + w.as_bytes()[0] as u64);
    }
    s
}

fn worker(id: u64, iters: u64, tx: mpsc::Sender<Box<Msg>>, rx: mpsc::Receiver<Box<Msg>>) -> u64 {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut sum = 0u64;
    for i in 0..iters {
        // A map of strings, a tree and a vector of strings, built and dropped.
        let n = 16 + rng.below(200) as usize;
        let mut v: Vec<String> = Vec::new();
        for j in 0..n {
            v.push(format!("{id}-{i}-{j}-{}", WORDS[rng.below(26) as usize]));
        }
        let mut tree = BTreeMap::new();
        for (j, s) in v.iter().enumerate() {
            tree.insert(rng.next() % 4096, (j, s.clone()));
        }
        let mut map: HashMap<String, Vec<u32>> = HashMap::new();
        for s in v.iter().take(n / 2) {
            let key = s[s.rfind('-').unwrap() + 1..].to_string();
            map.entry(key).or_default().push(s.len() as u32);
        }
        sum = sum.wrapping_add(
            tree.values()
                .map(|(j, s)| (*j + s.len()) as u64)
                .sum::<u64>(),
        );
        sum = sum.wrapping_add(
            map.values()
                .map(|l| l.iter().map(|&x| x as u64).sum::<u64>())
                .sum(),
        );
        drop(tree);
        drop(map);
        // Half of the strings and a fresh array go to the next thread, which frees them.
        v.truncate(n / 2);
        let values: Box<[u64]> = (0..1 + rng.below(64)).map(|k| k * i).collect();
        tx.send(Box::new(Msg { words: v, values })).expect("send");
        while let Ok(m) = rx.try_recv() {
            sum = sum.wrapping_add(take(&m));
        }
    }
    drop(tx);
    for m in rx {
        sum = sum.wrapping_add(take(&m));
    }
    sum
}

#[inline(never)]
fn boxes<const N: usize>(n: u64) -> u64 {
    let mut s = 0u64;
    for i in 0..n {
        let b = black_box(Box::new([i as u8; N]));
        s = s.wrapping_add(b[N - 1] as u64);
    }
    s
}

#[inline(never)]
fn stack<const N: usize>(n: u64) -> u64 {
    let mut s = 0u64;
    for i in 0..n {
        let b = black_box([i as u8; N]);
        s = s.wrapping_add(b[N - 1] as u64);
    }
    s
}

#[inline(never)]
fn goalloc_sized(n: u64, size: usize) -> u64 {
    let l = Layout::from_size_align(size, 16).unwrap();
    let mut s = 0u64;
    for i in 0..n {
        // SAFETY: non-zero size; the object is freed with its layout.
        unsafe {
            let p = black_box(goalloc::GoAlloc.alloc(l));
            p.write(i as u8);
            s = s.wrapping_add(p.read() as u64);
            goalloc::GoAlloc.dealloc(p, l);
        }
    }
    s
}

#[inline(never)]
fn goalloc_free(n: u64, size: usize) -> u64 {
    let mut s = 0u64;
    for i in 0..n {
        // SAFETY: non-zero size; the object is freed once.
        unsafe {
            let p = black_box(goalloc::malloc(size));
            p.write(i as u8);
            s = s.wrapping_add(p.read() as u64);
            goalloc::free(p);
        }
    }
    s
}

fn pairs(mode: &str, n: u64, size: usize) -> u64 {
    macro_rules! by_size {
        ($f:ident) => {
            match size {
                16 => $f::<16>(n),
                32 => $f::<32>(n),
                64 => $f::<64>(n),
                256 => $f::<256>(n),
                1024 => $f::<1024>(n),
                4096 => $f::<4096>(n),
                _ => usage(),
            }
        };
    }
    match mode {
        "boxes" => by_size!(boxes),
        "loop" => by_size!(stack),
        "goalloc-sized" => goalloc_sized(n, size),
        "goalloc-free" => goalloc_free(n, size),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: rust-ALLOC json|threads [SCALE]\n       \
         rust-ALLOC boxes|loop|goalloc-sized|goalloc-free N SIZE (SIZE 16 32 64 256 1024 4096)"
    );
    std::process::exit(2)
}

/// The entry point of every binary: `allocator` is the name of its global allocator.
pub fn main(allocator: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("json") | Some("threads") => {
            let scale: f64 = arg(1)
                .map_or(Ok(1.0), str::parse)
                .unwrap_or_else(|_| usage());
            if arg(0) == Some("json") {
                json(scale)
            } else {
                threads(scale)
            }
        }
        Some(mode) => {
            let n: u64 = arg(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage());
            let size: usize = arg(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| usage());
            println!("{mode}: n={n} size={size} sum={}", pairs(mode, n, size));
        }
        None => usage(),
    }
    // The allocator's name goes to stderr so that the result line is the same for all.
    eprintln!("allocator: {allocator}");
}
