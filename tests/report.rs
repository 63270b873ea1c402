//! The Rust side of the statistics reports and the version: `Display` and `Json` of the
//! figures, `goalloc::stats::print`, and the version against `Cargo.toml` and the header.

mod reports;
use reports::{header_fields, json_report_members, parse_json_lines, parse_text_reports};
use std::process::Command;

/// `Display` gives a line per field of the header's struct, with its value, and the
/// class table; `Json` the same figures as an object that python3's `json` reads.
#[test]
fn figures_display_as_text_and_json() {
    let v: Vec<Box<[u8; 48]>> = (0..1000).map(|_| Box::new([1u8; 48])).collect();
    let st = goalloc::stats::read();
    drop(v);
    let text = st.to_string();
    let fields = header_fields();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        fields.len()
            + 2
            + st.by_size
                .iter()
                .skip(1)
                .filter(|c| c.mallocs > 0 || c.spans > 0)
                .count(),
        "{text}"
    );
    for (line, name) in lines.iter().zip(&fields) {
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some(name.as_str()), "{text}");
        let v: u64 = words.next().unwrap().parse().unwrap();
        let debug = format!("{st:?}");
        assert!(
            debug.contains(&format!("{name}: {v},")),
            "{name} {v} in {debug}"
        );
    }
    assert!(
        text.contains("\n      4       48 "),
        "class 4 (48 bytes) in use: {text}"
    );

    let json = goalloc::stats::Json(&st).to_string();
    assert!(!json.contains('\n'));
    let parsed = parse_json_lines(&json);
    assert_eq!(parsed.len(), 1);
    let names: Vec<&str> = parsed[0].members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, fields, "{json}");
    assert_eq!(parsed[0].number("mallocs"), st.mallocs);
    assert_eq!(parsed[0].number("heap_alloc"), st.heap_alloc);
    let row = parsed[0]
        .classes
        .iter()
        .find(|c| c[0] == 4)
        .expect("class 4");
    let c = &st.by_size[4];
    assert_eq!(row, &[4, 48, c.mallocs, c.frees, c.live, c.spans, c.waste]);
}

/// Run by `print_writes_the_report_to_stderr` in a child process: prints and returns.
#[test]
fn print_child() {
    // only meaningful in the child
    if let Ok(format) = std::env::var("REPORT_TEST_PRINT") {
        // a large object: one mheap lock at least, counted in the locks' section
        // SAFETY: p comes from goalloc::malloc and is freed once.
        unsafe {
            let p = goalloc::malloc(1 << 20);
            assert!(!p.is_null());
            goalloc::free(p);
        }
        goalloc::stats::print(if format == "json" {
            goalloc::stats::Format::Json
        } else {
            goalloc::stats::Format::Text
        })
    }
}

#[test]
fn print_writes_the_report_to_stderr() {
    let mut outputs = Vec::new();
    for format in ["text", "json"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "print_child", "--test-threads=1", "--nocapture"])
            .env("REPORT_TEST_PRINT", format)
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        // The harness prints nothing on stderr; the report is all there is.
        outputs.push((out.status, stderr));
    }
    let text = parse_text_reports(&outputs[0].1);
    assert_eq!(text.len(), 1, "{}", outputs[0].1);
    assert_eq!(text[0].when, "now");
    assert!(text[0].command.contains("print_child"), "{:?}", text[0]);
    assert!(text[0].lock("mheap")[0] > 0, "{:?}", text[0]);
    let json = parse_json_lines(&outputs[1].1);
    assert_eq!(json.len(), 1);
    let names: Vec<&str> = json[0].members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, json_report_members());
    assert_eq!(json[0].get("when"), "\"now\"");
    assert_eq!(json[0].get("allocator"), "\"goalloc\"");
    assert!(json[0].number("mallocs") > 0);
    let names: Vec<&str> = json[0].locks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..4], ["mheap", "caches", "profile", "mcentral"]);
    assert!(json[0].locks[0].1[0] > 0, "{:?}", json[0]);
}

/// The version in `Cargo.toml`, read from the file itself.
fn cargo_toml_version() -> String {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let package = toml.split("[package]").nth(1).unwrap();
    let line = package
        .lines()
        .find(|l| l.starts_with("version = "))
        .expect("a version in [package]");
    line.trim_start_matches("version = ")
        .trim_matches('"')
        .to_string()
}

#[test]
fn version_is_cargo_tomls() {
    let want = cargo_toml_version();
    assert_eq!(goalloc::VERSION, want);
    // SAFETY: goalloc_version returns a static NUL-terminated string.
    let c = unsafe { std::ffi::CStr::from_ptr(goalloc::ffi::goalloc_version()) };
    assert_eq!(c.to_str().unwrap(), want);
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/goalloc.h")).unwrap();
    let define = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap_or_else(|| panic!("{name} in goalloc.h"))
            .to_string()
    };
    let parts: Vec<&str> = want.split('.').collect();
    assert_eq!(define("GOALLOC_VERSION_MAJOR"), parts[0]);
    assert_eq!(define("GOALLOC_VERSION_MINOR"), parts[1]);
    assert_eq!(define("GOALLOC_VERSION_PATCH"), parts[2]);
    assert_eq!(define("GOALLOC_VERSION"), format!("\"{want}\""));
}
