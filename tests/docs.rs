//! The README documents every option of `options.rs`, with its default.

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
