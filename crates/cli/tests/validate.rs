//! `flinkpilot validate`, run as the real binary on files.

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn flinkpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flinkpilot"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn invalid_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/tests/invalid")
}

#[test]
fn golden_examples_are_valid_and_foreign_documents_skipped() {
    let dir = api::fixtures::compat_dir().join("examples");
    let out = flinkpilot(&["validate", "-f", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let line = stdout(&out);
    assert!(
        line.starts_with("27 resources in 26 files are valid; 8 other documents skipped"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
}

#[test]
fn every_invalid_manifest_fails_naming_file_resource_and_field() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(invalid_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("change-")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 25);
    for file in files {
        let f = file.to_str().unwrap();
        let out = flinkpilot(&["validate", "-f", f]);
        assert_eq!(out.status.code(), Some(1), "{f}: {}", stdout(&out));
        let text = stdout(&out);
        for expected in std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
        {
            let hit = text.lines().any(|l| {
                l.starts_with(&format!("{f}: ")) && l.contains(&format!(": {expected}: "))
            });
            assert!(hit, "{f}: no line for {expected} in:\n{text}");
        }
        assert!(stderr(&out).contains("found in 1 file"), "{}", stderr(&out));
    }
}

#[test]
fn problem_lines_have_the_file_kind_name_path_message_shape() {
    let f = invalid_dir().join("unknown-upgrade-mode.yaml");
    let out = flinkpilot(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(
        stdout(&out).trim_end(),
        format!(
            "{}: FlinkDeployment/counter: spec.job.upgradeMode: `checkpoint` is not a valid value; \
             use one of: savepoint, last-state, stateless (line 24, column 18)",
            f.display()
        )
    );
}

#[test]
fn several_files_by_repeated_and_multi_valued_flags() {
    let dir = api::fixtures::compat_dir().join("examples");
    let (a, b, c) = (
        dir.join("basic.yaml"),
        dir.join("basic-session-job-only.yaml"),
        dir.join("basic-session-deployment-only.yaml"),
    );
    let out = flinkpilot(&[
        "validate",
        "-f",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-f",
        c.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out).trim_end(), "3 resources in 3 files are valid");
}

#[test]
fn stdin_is_read_with_a_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flinkpilot"))
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let manifest =
        std::fs::read_to_string(api::fixtures::compat_dir().join("examples/basic.yaml")).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).trim_end(), "1 resource in 1 file is valid");
}

#[test]
fn malformed_yaml_reports_line_and_column_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.yaml");
    std::fs::write(&f, "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: [x\nspec: {}\n").unwrap();
    let out = flinkpilot(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("{}: line ", f.display())),
        "{text}"
    );
    assert!(text.contains("column"), "{text}");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn a_missing_file_is_reported_and_the_others_still_checked() {
    let good = api::fixtures::compat_dir().join("examples/basic.yaml");
    let out = flinkpilot(&[
        "validate",
        "-f",
        "/nonexistent/x.yaml",
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).trim_end(),
        "/nonexistent/x.yaml: could not read the file: No such file or directory (os error 2)"
    );
}

#[test]
fn validate_without_files_is_a_usage_error() {
    let out = flinkpilot(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--filename"), "{}", stderr(&out));
}
