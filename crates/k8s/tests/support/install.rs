//! Helpers for the install manifest tests: rendering the manifest for a set of options and
//! finding documents in it.

use flinkpilot_k8s::install::{self, InstallOptions};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The manifest for `opts`, as JSON values.
pub fn manifest(opts: &InstallOptions) -> Vec<Value> {
    let text = install::to_yaml(opts).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

/// Options watching `namespaces`.
pub fn listed(namespaces: &[&str]) -> InstallOptions {
    InstallOptions {
        watch_namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// One option set of each shape: all namespaces, listed namespaces, no cert-manager, no webhook.
pub fn variants() -> Vec<InstallOptions> {
    vec![
        InstallOptions::default(),
        listed(&["team-a", "team-b"]),
        InstallOptions {
            cert_manager: false,
            ..listed(&["team-a"])
        },
        InstallOptions {
            webhook: false,
            namespace: "ops".into(),
            ..Default::default()
        },
    ]
}

/// The document of `kind` named `name` in `namespace` (`None`: cluster-scoped).
pub fn find<'a>(
    docs: &'a [Value],
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> Option<&'a Value> {
    docs.iter().find(|d| {
        d["kind"] == kind
            && d["metadata"]["name"] == name
            && d["metadata"]["namespace"].as_str() == namespace
    })
}

/// `doc` as a typed object.
pub fn typed<T: DeserializeOwned>(doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap()
}
