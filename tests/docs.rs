//! The README documents every option of `options.rs`, with its default; so does the manual
//! page `man/goalloc.3`, which also names every field of the statistics.

#[test]
fn readme_lists_every_option() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for o in &goalloc::options::OPTIONS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", o.name)))
            .unwrap_or_else(|| panic!("README has no options row for {}", o.name));
        let default_text = o.default_text;
        assert!(
            row.contains(&format!("| `{default_text}` |")),
            "{}: default {default_text} in {row}",
            o.name
        );
    }
}

/// The manual page `man/goalloc.3` documents every option with its default, and every
/// field of the statistics that `goalloc.h` declares.
#[test]
fn man_page_lists_every_option_and_statistic() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let page = std::fs::read_to_string(format!("{dir}/man/goalloc.3")).unwrap();
    let lines: Vec<&str> = page.lines().collect();
    for o in &goalloc::options::OPTIONS {
        // .TP / .B NAME / Default / .BR VALUE ...
        let at = lines
            .iter()
            .position(|l| *l == format!(".B {}", o.name))
            .unwrap_or_else(|| panic!("goalloc.3 has no entry `.B {}`", o.name));
        assert!(
            at > 0 && lines[at - 1] == ".TP",
            "{}: a tagged paragraph in ENVIRONMENT",
            o.name
        );
        assert!(
            lines[at + 1] == "Default"
                && lines[at + 2].starts_with(&format!(".BR {} ", o.default_text)),
            "{}: `Default` then `.BR {} ...` after the name, found {:?}",
            o.name,
            o.default_text,
            &lines[at + 1..at + 3]
        );
    }
    // The fields of both structures: the `uint64_t name;` lines of goalloc.h.
    let header = std::fs::read_to_string(format!("{dir}/include/goalloc.h")).unwrap();
    let fields: Vec<&str> = header
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uint64_t ")?.strip_suffix(';'))
        .collect();
    assert!(
        fields.len() > 20,
        "found the fields of goalloc.h: {fields:?}"
    );
    let words: std::collections::HashSet<&str> = page
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    for f in fields {
        assert!(words.contains(f), "goalloc.3 does not name the field {f}");
    }
    let version = format!("\"goalloc {}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        page.lines()
            .any(|l| l.starts_with(".TH GOALLOC 3 ") && l.contains(&version)),
        "the .TH line names {version}, the version of Cargo.toml"
    );
}
