//! Helpers shared by the webhook tests: AdmissionReview bodies and in-memory deployment lookups.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use api::FlinkDeployment;
use flinkpilot_k8s::webhook::{DeploymentLookup, LookupError};
use serde_json::{Value, json};

pub mod install;
pub mod kubelet;
pub mod operator;

/// Deployments by (namespace, name).
#[derive(Default)]
pub struct Clusters(pub BTreeMap<(String, String), FlinkDeployment>);

impl Clusters {
    pub fn with(mut self, d: FlinkDeployment) -> Self {
        let ns = d
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        self.0.insert((ns, d.name().to_string()), d);
        self
    }
}

impl DeploymentLookup for Clusters {
    async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FlinkDeployment>, LookupError> {
        Ok(self
            .0
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
}

/// A lookup whose API server is down; the error text must never reach the client.
pub struct Unreachable;

pub const INTERNAL_DETAIL: &str = "dial tcp 10.96.0.1:443: connect: connection refused";

impl DeploymentLookup for Unreachable {
    async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<FlinkDeployment>, LookupError> {
        Err(LookupError {
            namespace: namespace.into(),
            name: name.into(),
            source: INTERNAL_DETAIL.into(),
        })
    }
}

static UID: AtomicUsize = AtomicUsize::new(0);

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

/// An `AdmissionReview` request for `object` (and `old` on updates), with the group, version
/// and kind taken from the object itself.
pub fn review(operation: &str, object: &Value, old: Option<&Value>) -> Value {
    let source = if object.is_null() {
        old.unwrap()
    } else {
        object
    };
    let api_version = source["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = source["kind"].as_str().unwrap();
    let name = source["metadata"]["name"].as_str().unwrap_or("");
    let namespace = source["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let uid = format!("uid-{}", UID.fetch_add(1, Ordering::Relaxed));
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": plural(kind)},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": plural(kind)},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old.cloned().unwrap_or(Value::Null),
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": format!("{}Options", operation_word(operation))}
        }
    })
}

fn operation_word(op: &str) -> &'static str {
    match op {
        "CREATE" => "Create",
        "UPDATE" => "Update",
        "DELETE" => "Delete",
        _ => "Connect",
    }
}

pub fn to_json<T: serde::Serialize>(r: &T) -> Value {
    serde_json::to_value(r).unwrap()
}

/// The `response` of an AdmissionReview answer.
pub fn response(answer: &Value) -> &Value {
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{answer}");
    assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
    &answer["response"]
}

/// The fields named by a denial's causes.
pub fn cause_fields(response: &Value) -> Vec<String> {
    response["status"]["details"]["causes"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}
