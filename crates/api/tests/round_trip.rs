//! Every manifest in the Apache operator's examples (`<compat>/examples/*.yaml`) reads into our
//! types, and writing it back keeps exactly what the user wrote: no field lost, none added, no
//! value changed (compared as JSON values; `1` and `1.0` count as the same number).
//!
//! Documents of other kinds in those files (Secrets, cert-manager objects, a
//! HorizontalPodAutoscaler) are skipped by their `apiVersion`/`kind`, never by file name.

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use flinkpilot_api as api;

use api::fixtures::compat_dir;
use api::manifest::{Content, Resource, parse_documents};
use serde_json::Value;

fn example_files() -> Vec<PathBuf> {
    let dir = compat_dir().join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the full example corpus in {}",
        dir.display()
    );
    files
}

/// Differences between what was written and what we wrote back, with their paths.
fn differences(path: &str, written: &Value, ours: &Value, out: &mut Vec<String>) {
    match (written, ours) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(w) => differences(&p, v, w, out),
                    None => out.push(format!("{p}: lost (was {v})")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: added ({})", b[k]));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{i}]"), v, w, out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: changed from {a} to {b}")),
    }
}

fn to_value(r: &Resource) -> Value {
    match r {
        Resource::Deployment(d) => serde_json::to_value(d),
        Resource::SessionJob(j) => serde_json::to_value(j),
        Resource::Snapshot(s) => serde_json::to_value(s),
    }
    .unwrap()
}

#[test]
fn every_golden_example_round_trips_exactly() {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in example_files() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        // What the user wrote, document by document (empty documents are not documents).
        let written: Vec<Value> = serde_saphyr::from_multiple::<Value>(&text)
            .unwrap_or_else(|e| panic!("{name}: not YAML: {e}"))
            .into_iter()
            .filter(|v| !v.is_null())
            .collect();
        let docs = parse_documents(&text);
        assert_eq!(docs.len(), written.len(), "{name}: document count differs");
        for (doc, written) in docs.iter().zip(&written) {
            match &doc.content {
                Ok(Content::Resource(r)) => {
                    *kinds.entry(r.kind().to_string()).or_default() += 1;
                    let mut diffs = Vec::new();
                    differences("", written, &to_value(r), &mut diffs);
                    for d in diffs {
                        failures.push(format!("{name} ({} {}): {d}", r.kind(), r.name()));
                    }
                }
                Ok(Content::Other { kind, .. }) => *skipped.entry(kind.clone()).or_default() += 1,
                Err(e) => failures.push(format!("{name} line {}: does not parse: {e}", doc.line)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "round-trip failures:\n  {}",
        failures.join("\n  ")
    );
    // The corpus holds all three kinds and some foreign documents; make sure each was exercised.
    for kind in ["FlinkDeployment", "FlinkSessionJob", "FlinkStateSnapshot"] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in the corpus: {kinds:?}"
        );
    }
    assert!(skipped.contains_key("Secret") && skipped.contains_key("HorizontalPodAutoscaler"));
    assert!(kinds.values().sum::<usize>() >= 25, "{kinds:?}");
}

#[test]
fn round_trip_check_catches_lost_added_and_changed_fields() {
    let written = serde_json::json!({"a": 1, "b": {"c": "x"}, "l": [1, 2]});
    let ours = serde_json::json!({"a": 1.0, "b": {"d": "y"}, "l": [1, 3]});
    let mut diffs = Vec::new();
    differences("", &written, &ours, &mut diffs);
    assert_eq!(
        diffs,
        [
            ".b.c: lost (was \"x\")",
            ".b.d: added (\"y\")",
            ".l[1]: changed from 2 to 3"
        ]
    );
}
