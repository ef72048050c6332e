//! The webhook gives the same verdicts as `flinkpilot validate` on the shared corpora: every
//! manifest of `crates/api/tests/invalid/` is denied with exactly the field paths its
//! `# expect:` lines name, and every example of the Apache operator is admitted.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use api::FlinkDeployment;
use axum::body::{Body, to_bytes};
use axum::http::Request;
use flinkpilot_k8s::webhook::{WebhookState, app};
use serde_json::Value;
use support::{Clusters, cause_fields, response, review};
use tower::ServiceExt;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn is_flink(doc: &Value) -> bool {
    doc["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("flink.apache.org/"))
}

/// The session clusters a file defines, for session jobs in the same file.
fn clusters(docs: &[Value]) -> Clusters {
    docs.iter()
        .filter(|d| d["kind"] == "FlinkDeployment")
        .filter_map(|d| serde_json::from_value::<FlinkDeployment>(d.clone()).ok())
        .fold(Clusters::default(), Clusters::with)
}

async fn respond(clusters: Clusters, request: &Value) -> Value {
    let resp = app(WebhookState::new(clusters))
        .oneshot(
            Request::post("/validate")
                .body(Body::from(serde_json::to_vec(request).unwrap()))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    response(&answer).clone()
}

/// The fields the webhook names for the documents of one file.
async fn denied_fields(file: &Path) -> BTreeSet<String> {
    let docs = documents(file);
    let name = file.file_name().unwrap().to_string_lossy();
    let mut fields = BTreeSet::new();
    if name.starts_with("change-") {
        let [old, new] = docs.as_slice() else {
            panic!("{name}: a change file holds two documents");
        };
        let resp = respond(clusters(&docs), &review("UPDATE", new, Some(old))).await;
        fields.extend(cause_fields(&resp));
    } else {
        for doc in &docs {
            let resp = respond(clusters(&docs), &review("CREATE", doc, None)).await;
            fields.extend(cause_fields(&resp));
        }
    }
    fields
}

fn expected_fields(file: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# expect:"))
        .map(|p| p.trim().to_string())
        .collect()
}

#[tokio::test]
async fn every_invalid_manifest_is_denied_with_the_expected_fields() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/tests/invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 25, "only {} invalid manifests", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let expected = expected_fields(file);
        assert!(!expected.is_empty(), "{}: no `# expect:`", file.display());
        let got = denied_fields(file).await;
        if got != expected {
            failures.push(format!(
                "{}: expected {expected:?}, got {got:?}",
                file.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} file(s) judged differently by the webhook:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[tokio::test]
async fn every_apache_example_is_admitted() {
    let dir = api::fixtures::compat_dir().join("examples");
    let mut admitted = 0;
    let mut failures = Vec::new();
    for file in yaml_files(&dir) {
        let docs = documents(&file);
        for doc in docs.iter().filter(|d| is_flink(d)) {
            let resp = respond(clusters(&docs), &review("CREATE", doc, None)).await;
            if resp["allowed"] == true {
                admitted += 1;
            } else {
                failures.push(format!("{}: {}", file.display(), resp["status"]["message"]));
            }
        }
    }
    assert!(failures.is_empty(), "denied:\n  {}", failures.join("\n  "));
    assert!(admitted >= 25, "only {admitted} resources admitted");
}
