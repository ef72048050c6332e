//! Every manifest under `tests/invalid/` is rejected, with exactly the field paths its
//! `# expect: <path>` lines name (no more, no fewer); and every example of the Apache operator
//! validates clean.
//!
//! Files named `change-*.yaml` hold two documents of one kind: the spec that was reconciled,
//! then the new one; they test the validation of the change.

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flinkpilot_api as api;

use api::manifest::{Content, Resource, parse_documents};
use api::validate;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The field paths of every problem in a file: parse errors (by their field, `<yaml>` when the
/// YAML itself is broken) and validation problems.
fn problem_paths(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut paths = BTreeSet::new();
    let mut resources = Vec::new();
    for doc in parse_documents(&text) {
        match doc.content {
            Ok(Content::Resource(r)) => resources.push(*r),
            Ok(Content::Other { kind, .. }) => panic!("{}: unexpected {kind}", file.display()),
            Err(e) => {
                paths.insert(e.field.unwrap_or_else(|| "<yaml>".into()));
            }
        }
    }
    let name = file.file_name().unwrap().to_string_lossy();
    if name.starts_with("change-") {
        let problems = match resources.as_slice() {
            [Resource::Deployment(old), Resource::Deployment(new)] => {
                let mut p = validate::deployment_change(&old.spec, &new.spec);
                p.extend(validate::deployment(old));
                p.extend(validate::deployment(new));
                p
            }
            [Resource::SessionJob(old), Resource::SessionJob(new)] => {
                let mut p = validate::session_job_change(&old.spec, &new.spec);
                p.extend(validate::session_job(old, None));
                p.extend(validate::session_job(new, None));
                p
            }
            other => panic!("{name}: a change file needs two documents of one kind, got {other:?}"),
        };
        paths.extend(problems.into_iter().map(|p| p.path));
    } else {
        let set: Vec<&Resource> = resources.iter().collect();
        for r in &resources {
            paths.extend(validate::resource(r, &set).into_iter().map(|p| p.path));
        }
    }
    paths
}

fn expected_paths(file: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect:"))
        .map(|p| p.trim().to_string())
        .collect()
}

#[test]
fn every_invalid_manifest_is_rejected_with_the_expected_field_paths() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let files = yaml_files(&dir);
    assert!(
        files.len() >= 25,
        "the invalid corpus shrank to {} files",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let expected = expected_paths(file);
        assert!(
            !expected.is_empty(),
            "{name} has no `# expect: <path>` line"
        );
        let got = problem_paths(file);
        if got != expected {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} file(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn every_golden_example_validates_clean() {
    let dir = api::fixtures::compat_dir().join("examples");
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in yaml_files(&dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = parse_documents(&text);
        let resources: Vec<Resource> = docs
            .into_iter()
            .filter_map(|d| match d.content.unwrap() {
                Content::Resource(r) => Some(*r),
                Content::Other { .. } => None,
            })
            .collect();
        let set: Vec<&Resource> = resources.iter().collect();
        for r in &resources {
            checked += 1;
            for p in validate::resource(r, &set) {
                failures.push(format!("{} {} {}: {p}", file.display(), r.kind(), r.name()));
            }
        }
    }
    assert!(checked >= 25, "only {checked} resources checked");
    assert!(
        failures.is_empty(),
        "golden examples with problems:\n  {}",
        failures.join("\n  ")
    );
}
