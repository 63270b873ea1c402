//! Reading goalloc's statistics reports back, for tests/report.rs and tests/c_tests.rs:
//! the text report parsed strictly (a line out of place fails), the JSON report parsed by
//! python3's `json` module, and the field names of `goalloc_mem_stats` from the header.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The scalar fields of `struct goalloc_mem_stats` in include/goalloc.h, in order.
pub fn header_fields() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/goalloc.h");
    let header = std::fs::read_to_string(path).unwrap();
    let body = header
        .split("typedef struct goalloc_mem_stats {")
        .nth(1)
        .and_then(|b| b.split("} goalloc_mem_stats;").next())
        .expect("struct goalloc_mem_stats in goalloc.h");
    let fields: Vec<String> = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uint64_t "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_string)
        .collect();
    assert!(fields.len() > 10 && fields[0] == "heap_alloc", "{fields:?}");
    fields
}

/// The python3 interpreter itself, not a version manager's shim (which would be under
/// goalloc too, and report).
pub fn python() -> String {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 is needed for this test");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .clone()
}

/// One text report, as read back.
#[derive(Debug)]
pub struct TextReport {
    pub program: String,
    pub pid: u32,
    /// `at exit` or `now`.
    pub when: String,
    pub command: String,
    /// Every figure line: name, value.
    pub fields: Vec<(String, u64)>,
    /// Rows of the class table: class, size, mallocs, frees, live, spans, waste.
    pub classes: Vec<[u64; 7]>,
    /// Rows of the locks' section: name, and acquisitions, contended, held_ns.
    pub locks: Vec<(String, [u64; 3])>,
}

impl TextReport {
    pub fn lock(&self, name: &str) -> [u64; 3] {
        self.locks
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no lock {name} in {self:?}"))
            .1
    }

    pub fn field(&self, name: &str) -> u64 {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
            .1
    }
}

/// The reports in `text`, one after another, each checked line by line: the title
/// (`goalloc V statistics of PROGRAM (pid N) WHEN`), the command, every field of the
/// header's struct in order, `peak_rss`, the legend, the column names and the class rows,
/// then the locks' legend, column names and rows (mheap, caches, profile, mcentral first).
/// A report cut short or with a line of another in between fails.
pub fn parse_text_reports(text: &str) -> Vec<TextReport> {
    let fields = header_fields();
    let mut reports = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(title) = lines.next() {
        let fail = |why: &str| -> ! { panic!("{why}\n--- in ---\n{text}") };
        let rest = title
            .strip_prefix(&format!("goalloc {VERSION} statistics of "))
            .unwrap_or_else(|| fail(&format!("not a title line: {title:?}")));
        let (program, rest) = rest
            .rsplit_once(" (pid ")
            .unwrap_or_else(|| fail(&format!("no pid in {title:?}")));
        let (pid, when) = rest
            .split_once(") ")
            .unwrap_or_else(|| fail(&format!("no pid in {title:?}")));
        let command = lines
            .next()
            .and_then(|l| l.strip_prefix("  command: "))
            .unwrap_or_else(|| fail(&format!("no command line after {title:?}")));
        let mut report = TextReport {
            program: program.to_string(),
            pid: pid.parse().unwrap_or_else(|_| fail(title)),
            when: when.to_string(),
            command: command.to_string(),
            fields: Vec::new(),
            classes: Vec::new(),
            locks: Vec::new(),
        };
        for name in fields.iter().map(String::as_str).chain(["peak_rss"]) {
            let line = lines.next().unwrap_or_else(|| fail("report cut short"));
            let mut words = line.split_whitespace();
            if !line.starts_with("  ") || words.next() != Some(name) {
                fail(&format!("expected the {name} line, got {line:?}"));
            }
            let v = words.next().and_then(|v| v.parse().ok());
            report.fields.push((
                name.to_string(),
                v.unwrap_or_else(|| fail(&format!("no value in {line:?}"))),
            ));
        }
        let legend = lines.next().unwrap_or_else(|| fail("no legend"));
        if !legend.starts_with("  by_size, the classes in use: size = bytes per object") {
            fail(&format!("expected the legend, got {legend:?}"));
        }
        let columns = lines.next().unwrap_or_else(|| fail("no column names"));
        let names: Vec<&str> = columns.split_whitespace().collect();
        if names
            != [
                "class", "size", "mallocs", "frees", "live", "spans", "waste",
            ]
        {
            fail(&format!("expected the column names, got {columns:?}"));
        }
        while let Some(row) = lines.next_if(|l| l.starts_with("  ") && !l.starts_with("  locks, "))
        {
            let v: Vec<u64> = row
                .split_whitespace()
                .map(|w| {
                    w.parse()
                        .unwrap_or_else(|_| fail(&format!("bad row {row:?}")))
                })
                .collect();
            let row: [u64; 7] = v
                .try_into()
                .unwrap_or_else(|_| fail(&format!("bad row {row:?}")));
            report.classes.push(row);
        }
        let legend = lines.next().unwrap_or_else(|| fail("no locks' legend"));
        if !legend.starts_with("  locks, per million malloc+free (") {
            fail(&format!("expected the locks' legend, got {legend:?}"));
        }
        let columns = lines
            .next()
            .unwrap_or_else(|| fail("no locks' column names"));
        let names: Vec<&str> = columns.split_whitespace().collect();
        if names
            != [
                "lock",
                "acquisitions",
                "contended",
                "held_ns",
                "acq/M",
                "contended/M",
                "held_ns/M",
                "ns/acq",
                "held%",
            ]
        {
            fail(&format!(
                "expected the locks' column names, got {columns:?}"
            ));
        }
        while let Some(row) = lines.next_if(|l| l.starts_with("  ")) {
            let words: Vec<&str> = row.split_whitespace().collect();
            let bad = || -> ! { fail(&format!("bad lock row {row:?}")) };
            if words.len() != 9 || words[4..].iter().any(|w| w.parse::<f64>().is_err()) {
                bad();
            }
            let counts: Vec<u64> = words[1..4]
                .iter()
                .map(|w| w.parse().unwrap_or_else(|_| bad()))
                .collect();
            report
                .locks
                .push((words[0].to_string(), counts.try_into().unwrap()));
        }
        let first: Vec<&str> = report
            .locks
            .iter()
            .take(4)
            .map(|(n, _)| n.as_str())
            .collect();
        if first != ["mheap", "caches", "profile", "mcentral"] {
            fail(&format!("locks' rows begin with {first:?}"));
        }
        reports.push(report);
    }
    reports
}

/// One JSON report as python3's `json` module reads it back.
#[derive(Debug)]
pub struct JsonReport {
    /// Every member but `by_size`, in order, each value as `json.dumps` gives it.
    pub members: Vec<(String, String)>,
    /// `by_size`: class, size, mallocs, frees, live, spans, waste.
    pub classes: Vec<[u64; 7]>,
    /// `locks.by_lock`: name, and acquisitions, contended, held_ns.
    pub locks: Vec<(String, [u64; 3])>,
}

impl JsonReport {
    pub fn get(&self, name: &str) -> &str {
        &self
            .members
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
            .1
    }
    pub fn number(&self, name: &str) -> u64 {
        self.get(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} is no number in {self:?}"))
    }
}

/// Parses every line of `text` with `json.loads` (each must be one object, and every
/// entry of its `by_size` exactly the seven members of a class), in a python3 that does
/// not run under goalloc.
pub fn parse_json_lines(text: &str) -> Vec<JsonReport> {
    const SCRIPT: &str = r#"
import json, sys
COLUMNS = ["class", "size", "mallocs", "frees", "live", "spans", "waste"]
LOCK_COLUMNS = ["lock", "acquisitions", "contended", "held_ns", "acquisitions_per_million",
                "contended_per_million", "held_ns_per_million"]
for line in sys.stdin:
    o = json.loads(line)
    assert isinstance(o, dict), line
    print("report")
    for k, v in o.items():
        if k == "by_size":
            for c in v:
                assert list(c.keys()) == COLUMNS, c
                assert all(isinstance(x, int) for x in c.values()), c
                print("class", *[c[x] for x in COLUMNS])
        else:
            print("member", k, json.dumps(v))
        if k == "locks":
            assert list(v.keys()) == ["calls", "elapsed_ns", "by_lock"], v
            for l in v["by_lock"]:
                assert list(l.keys()) == LOCK_COLUMNS, l
                assert all(isinstance(l[x], int) for x in LOCK_COLUMNS[1:4]), l
                print("lock", l["lock"], l["acquisitions"], l["contended"], l["held_ns"])
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // written from another thread: python3 answers as it reads, and an answer larger
    // than the pipe's buffer would block it while this thread still writes
    let mut stdin = child.stdin.take().unwrap();
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    assert!(
        out.status.success(),
        "python3's json module rejects the report: {}\n--- report ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reports: Vec<JsonReport> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        if line == "report" {
            reports.push(JsonReport {
                members: Vec::new(),
                classes: Vec::new(),
                locks: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("class ") {
            let v: Vec<u64> = rest.split(' ').map(|w| w.parse().unwrap()).collect();
            reports
                .last_mut()
                .unwrap()
                .classes
                .push(v.try_into().unwrap());
        } else if let Some(rest) = line.strip_prefix("lock ") {
            let w: Vec<&str> = rest.split(' ').collect();
            let v: Vec<u64> = w[1..].iter().map(|x| x.parse().unwrap()).collect();
            reports
                .last_mut()
                .unwrap()
                .locks
                .push((w[0].to_string(), v.try_into().unwrap()));
        } else if let Some(rest) = line.strip_prefix("member ") {
            let (k, v) = rest.split_once(' ').unwrap();
            reports
                .last_mut()
                .unwrap()
                .members
                .push((k.to_string(), v.to_string()));
        }
    }
    reports
}

/// The member names a JSON report has, in order: the process, every field of the header's
/// struct, `peak_rss` and `locks`.
pub fn json_report_members() -> Vec<String> {
    let mut names: Vec<String> = [
        "allocator",
        "version",
        "program",
        "pid",
        "command",
        "command_truncated",
        "when",
    ]
    .map(String::from)
    .to_vec();
    names.extend(header_fields());
    names.push("peak_rss".to_string());
    names.push("locks".to_string());
    names
}
