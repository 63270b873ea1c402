//! Commit subjects are at most 72 characters, the figures and reasoning in the body.
//!
//! - `subjects_after_the_rule_fit`: every commit after `RULE_BASE` (main when the rule
//!   began; the history before it is published and stays as it is) has a short subject.
//!   Outside a git checkout, or in a shallow clone without `RULE_BASE`, it prints why and
//!   checks nothing.
//! - `a_long_subject_is_found`: the same check, on a scratch repository whose last commit
//!   has a 73-character subject, finds that commit (and passes a 72-character one).
//! - `the_hook_refuses_a_long_subject`: `scripts/commit-msg`, installed as the
//!   `commit-msg` hook of a scratch repository, lets `git commit` through with a
//!   72-character subject and stops it with a 73-character one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The longest subject allowed, in characters.
const MAX_SUBJECT: usize = 72;
/// main when the rule began: commits after it must follow it.
const RULE_BASE: &str = "186f8d7";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under `<target>/commit-messages-test/`.
fn scratch(name: &str) -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => manifest_dir().join(dir),
        _ => manifest_dir().join("target"),
    };
    let dir = target.join("commit-messages-test").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `git ARGS` in `dir`, with an identity and without the user's configuration.
fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs")
}

/// The commits of `base..HEAD` in `repo` whose subject is longer than `MAX_SUBJECT`
/// characters, as `hash subject (N characters)`; Err with the reason when `repo` is no
/// git checkout or lacks `base` (a shallow clone).
fn long_subjects(repo: &Path, base: &str) -> Result<Vec<String>, String> {
    let found = git(repo, &["cat-file", "-e", &format!("{base}^{{commit}}")]);
    if !found.status.success() {
        return Err(format!(
            "{} has no commit {base} (not a git checkout, or a shallow clone): {}",
            repo.display(),
            String::from_utf8_lossy(&found.stderr).trim()
        ));
    }
    let log = git(repo, &["log", "--format=%h %s", &format!("{base}..HEAD")]);
    assert!(log.status.success(), "git log: {log:?}");
    Ok(String::from_utf8(log.stdout)
        .expect("subjects in UTF-8")
        .lines()
        .filter_map(|line| {
            let subject = line.split_once(' ').map_or("", |(_, s)| s);
            let n = subject.chars().count();
            (n > MAX_SUBJECT).then(|| format!("{line} ({n} characters)"))
        })
        .collect())
}

#[test]
fn subjects_after_the_rule_fit() {
    match long_subjects(&manifest_dir(), RULE_BASE) {
        Err(why) => println!("commit subjects not checked: {why}"),
        Ok(long) => assert!(
            long.is_empty(),
            "subjects over {MAX_SUBJECT} characters (put the details in the body):\n{}",
            long.join("\n")
        ),
    }
}

/// A scratch repository with one commit, tagged `base`.
fn repo_with_base(name: &str) -> PathBuf {
    let dir = scratch(name);
    assert!(git(&dir, &["init", "-q"]).status.success());
    let base = git(&dir, &["commit", "-q", "--allow-empty", "-m", "base"]);
    assert!(base.status.success(), "{base:?}");
    assert!(git(&dir, &["tag", "base"]).status.success());
    dir
}

#[test]
fn a_long_subject_is_found() {
    let dir = repo_with_base("history");
    let fits = format!("a → b {}", "x".repeat(MAX_SUBJECT - 6));
    let long = "y".repeat(MAX_SUBJECT + 1);
    for subject in [&fits, &long] {
        let c = git(&dir, &["commit", "-q", "--allow-empty", "-m", subject]);
        assert!(c.status.success(), "{c:?}");
    }
    let found = long_subjects(&dir, "base").unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&long), "{found:?}");
    assert!(found[0].ends_with("(73 characters)"), "{found:?}");
    assert!(long_subjects(&dir, "no-such-commit").is_err());
}

#[test]
fn the_hook_refuses_a_long_subject() {
    let dir = repo_with_base("hook");
    let hooks = dir.join("hooks");
    fs::create_dir_all(&hooks).unwrap();
    std::os::unix::fs::symlink(
        manifest_dir().join("scripts/commit-msg"),
        hooks.join("commit-msg"),
    )
    .unwrap();
    let hooks = hooks.to_str().unwrap();
    let commit = |message: &str| {
        git(
            &dir,
            &[
                "-c",
                &format!("core.hooksPath={hooks}"),
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                message,
            ],
        )
    };
    // 72 characters, "→" counted as one, with a body: accepted.
    let fits = format!("a → b {}", "x".repeat(MAX_SUBJECT - 6));
    let ok = commit(&format!("{fits}\n\nthe body, with the figures"));
    assert!(ok.status.success(), "{ok:?}");
    // 73: refused, saying why, and nothing is committed.
    let long = "y".repeat(MAX_SUBJECT + 1);
    let refused = commit(&format!("{long}\n\nthe body"));
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the subject has 73 characters; at most 72"),
        "{stderr}"
    );
    let head = git(&dir, &["log", "-1", "--format=%s"]);
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), fits);
}
