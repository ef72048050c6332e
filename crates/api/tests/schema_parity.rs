//! Our generated CRDs against the Apache operator's (`<compat>/crds/*.yml`): names, printer
//! columns, subresources, and every property path of the OpenAPI schema with its type, enum
//! values and free-form markers, in both directions (fields we lack AND fields we add).
//!
//! Differences that are accepted are listed in `ALLOWED_IN_POD_TEMPLATE` below, each with its reason. Things that
//! are never compared: `description` (ours are written here; the golden has none), `format`
//! (schemars adds `int32`/`int64`/`double`; Fabric8 emits none), `nullable` (kube's schema
//! pipeline marks every `Option` nullable; Fabric8 never does) and `required` (the golden has no
//! required fields at all; ours come only from Kubernetes' own types inside `podTemplate` and
//! `resources`, where Kubernetes requires them for a valid pod anyway).

// test helpers outside #[test] functions may unwrap too
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use flinkpilot_api as api;

use api::fixtures::compat_dir;
use serde_json::Value;

/// Accepted differences, all inside the three pod templates (`spec.podTemplate`,
/// `spec.jobManager.podTemplate`, `spec.taskManager.podTemplate`), which are Kubernetes' `Pod`
/// passed through to the Flink pods untouched, not flinkpilot's own API.
///
/// The golden CRD was generated from the Kubernetes 1.36 model (it has `spec.schedulingGroup`,
/// new in 1.36, and lacks `spec.evictionResponders`, new in 1.37); the workspace builds
/// k8s-openapi with `latest`, which is 1.37. Each entry is a field 1.37 added (or, for the alpha
/// `nodeAllocatableResourceClaimStatuses`, reshaped). A pod template using one of them is only
/// meaningful on a 1.37 cluster either way. Entries are `(path inside the pod template, what
/// differs)`, where `<container>` is `containers`, `initContainers` or `ephemeralContainers`,
/// `<probe>` is `livenessProbe`, `readinessProbe` or `startupProbe` and `<hook>` is
/// `postStart` or `preStop`. An entry that matches nothing fails the test, so the list stays
/// exact when either side changes.
const ALLOWED_IN_POD_TEMPLATE: &[(&str, &str)] = &[
    // 1.37: HTTP probes and hooks can use HTTP/2 (`protocol`); gRPC probes got a `mode`.
    (
        "spec.<container>[].lifecycle.<hook>.httpGet.protocol",
        ADDED,
    ),
    ("spec.<container>[].<probe>.httpGet.protocol", ADDED),
    ("spec.<container>[].<probe>.grpc.mode", ADDED),
    // 1.37: bind-mount options on volume mounts.
    ("spec.<container>[].volumeMounts[].bindMountOptions", ADDED),
    // 1.37: eviction responders on the pod spec.
    ("spec.evictionResponders", ADDED),
    // 1.37: per-volume file ownership (`user`, `defaultUser`) and emptyDir `mode`.
    ("spec.volumes[].configMap.defaultUser", ADDED),
    ("spec.volumes[].configMap.items[].user", ADDED),
    ("spec.volumes[].downwardAPI.defaultUser", ADDED),
    ("spec.volumes[].downwardAPI.items[].user", ADDED),
    ("spec.volumes[].secret.defaultUser", ADDED),
    ("spec.volumes[].secret.items[].user", ADDED),
    ("spec.volumes[].projected.defaultUser", ADDED),
    (
        "spec.volumes[].projected.sources[].clusterTrustBundle.user",
        ADDED,
    ),
    (
        "spec.volumes[].projected.sources[].configMap.items[].user",
        ADDED,
    ),
    (
        "spec.volumes[].projected.sources[].downwardAPI.items[].user",
        ADDED,
    ),
    (
        "spec.volumes[].projected.sources[].podCertificate.user",
        ADDED,
    ),
    (
        "spec.volumes[].projected.sources[].secret.items[].user",
        ADDED,
    ),
    (
        "spec.volumes[].projected.sources[].serviceAccountToken.user",
        ADDED,
    ),
    ("spec.volumes[].emptyDir.mode", ADDED),
    // 1.37: pod status fields (status is never written by users into a template).
    ("status.volumeHealth", ADDED),
    (
        "status.nodeAllocatableResourceClaimStatuses[].mapping",
        ADDED,
    ),
    (
        "status.nodeAllocatableResourceClaimStatuses[].overhead",
        ADDED,
    ),
    (
        "status.nodeAllocatableResourceClaimStatuses[].resources",
        MISSING,
    ),
];

const ADDED: &str = "not in golden (we add it)";
const MISSING: &str = "missing in ours";

/// The pod templates whose contents `ALLOWED_IN_POD_TEMPLATE` applies to.
const POD_TEMPLATES: &[&str] = &[
    "spec.podTemplate.",
    "spec.jobManager.podTemplate.",
    "spec.taskManager.podTemplate.",
];

/// Rewrites a path inside a pod template to the placeholder form used in the allow-list.
fn normalize_pod_path(rest: &str) -> String {
    let mut out = rest.to_string();
    for c in ["initContainers[]", "ephemeralContainers[]", "containers[]"] {
        out = out.replacen(&format!("spec.{c}"), "spec.<container>[]", 1);
    }
    for p in ["livenessProbe", "readinessProbe", "startupProbe"] {
        out = out.replace(&format!("[].{p}."), "[].<probe>.");
    }
    for h in ["postStart", "preStop"] {
        out = out.replace(&format!("lifecycle.{h}."), "lifecycle.<hook>.");
    }
    out
}

/// The allow-list entry that accepts this difference, if any.
fn allowed_by(d: &Diff) -> Option<usize> {
    let rest = POD_TEMPLATES.iter().find_map(|p| d.path.strip_prefix(p))?;
    let rest = normalize_pod_path(rest);
    ALLOWED_IN_POD_TEMPLATE
        .iter()
        .position(|(path, what)| *path == rest && d.what == *what)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Diff {
    path: String,
    what: String,
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            if self.path.is_empty() {
                "<root>"
            } else {
                &self.path
            },
            self.what
        )
    }
}

/// The comparable "shape" of one schema node, ignoring descriptions, formats and nullability.
fn signature(node: &Value) -> String {
    let get = |k: &str| node.get(k);
    if get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "int-or-string".into();
    }
    let mut sig = match get("type").and_then(Value::as_str) {
        Some(t) => t.to_string(),
        None => "untyped".into(),
    };
    if get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        sig.push_str("+preserve-unknown-fields");
    }
    if let Some(Value::Array(values)) = get("enum") {
        let mut v: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        v.sort();
        sig.push_str(&format!(" enum[{}]", v.join(",")));
    }
    sig
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, golden: &Value, ours: &Value, diffs: &mut Vec<Diff>) {
    let (gs, os) = (signature(golden), signature(ours));
    if gs != os {
        diffs.push(Diff {
            path: path.into(),
            what: format!("type `{gs}` (golden) vs `{os}` (ours)"),
        });
    }
    let props = |v: &Value| {
        v.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (gp, op) = (props(golden), props(ours));
    let keys: BTreeSet<&String> = gp.keys().chain(op.keys()).collect();
    for key in keys {
        let p = join(path, key);
        match (gp.get(key), op.get(key)) {
            (Some(g), Some(o)) => walk(&p, g, o, diffs),
            (Some(_), None) => diffs.push(Diff {
                path: p,
                what: "missing in ours".into(),
            }),
            (None, Some(_)) => diffs.push(Diff {
                path: p,
                what: "not in golden (we add it)".into(),
            }),
            (None, None) => {}
        }
    }
    for (key, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
        let p = format!("{path}{suffix}");
        match (golden.get(key), ours.get(key)) {
            (Some(g), Some(o)) => walk(&p, g, o, diffs),
            (Some(_), None) => diffs.push(Diff {
                path: p,
                what: format!("`{key}` missing in ours"),
            }),
            (None, Some(_)) => diffs.push(Diff {
                path: p,
                what: format!("`{key}` not in golden"),
            }),
            (None, None) => {}
        }
    }
}

fn golden_crd(plural: &str) -> Value {
    let path = compat_dir().join(format!("crds/{plural}.flink.apache.org-v1.yml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn our_crd(plural: &str) -> Value {
    let crd = api::crd::all()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD for {plural}"));
    serde_json::to_value(crd).unwrap()
}

/// Compares one CRD and returns the indexes of the allow-list entries it used.
fn check(plural: &str) -> BTreeSet<usize> {
    let (golden, ours) = (golden_crd(plural), our_crd(plural));

    // Everything outside the schema must match exactly.
    for pointer in [
        "/spec/group",
        "/spec/names",
        "/spec/scope",
        "/metadata/name",
    ] {
        assert_eq!(
            golden.pointer(pointer),
            ours.pointer(pointer),
            "{plural}: {pointer} differs"
        );
    }
    let (gv, ov) = (&golden["spec"]["versions"][0], &ours["spec"]["versions"][0]);
    for key in [
        "name",
        "served",
        "storage",
        "additionalPrinterColumns",
        "subresources",
    ] {
        assert_eq!(
            gv.get(key),
            ov.get(key),
            "{plural}: versions[0].{key} differs"
        );
    }
    assert_eq!(golden["spec"]["versions"].as_array().map(Vec::len), Some(1));

    let mut diffs = Vec::new();
    let schema = "/schema/openAPIV3Schema";
    walk(
        "",
        gv.pointer(schema).unwrap(),
        ov.pointer(schema).unwrap(),
        &mut diffs,
    );
    let unexpected: Vec<String> = diffs
        .iter()
        .filter(|d| allowed_by(d).is_none())
        .map(|d| d.to_string())
        .collect();
    assert!(
        unexpected.is_empty(),
        "{plural}: {} schema difference(s) from the Apache operator's CRD (fix the types, or \
         add a commented entry to ALLOWED):\n  {}",
        unexpected.len(),
        unexpected.join("\n  ")
    );
    diffs.iter().filter_map(allowed_by).collect()
}

#[test]
fn flink_deployment_crd_matches_the_apache_operator() {
    let used = check("flinkdeployments");
    let stale: Vec<&str> = ALLOWED_IN_POD_TEMPLATE
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, (path, _))| *path)
        .collect();
    assert!(
        stale.is_empty(),
        "allow-list entries that match no difference (remove them): {stale:?}"
    );
}

#[test]
fn flink_session_job_crd_matches_the_apache_operator() {
    assert!(
        check("flinksessionjobs").is_empty(),
        "session jobs have no pod template"
    );
}

#[test]
fn flink_state_snapshot_crd_matches_the_apache_operator() {
    assert!(
        check("flinkstatesnapshots").is_empty(),
        "snapshots have no pod template"
    );
}

#[test]
fn parity_walk_reports_missing_extra_and_retyped_fields() {
    // The checker itself must catch each kind of difference, or a green run means nothing.
    let golden = serde_json::json!({"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "integer"},
        "e": {"type": "string", "enum": ["x", "y"]},
        "l": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}}
    }});
    let ours = serde_json::json!({"type": "object", "properties": {
        "b": {"type": "string", "nullable": true, "description": "ignored"},
        "c": {"type": "string"},
        "e": {"type": "string", "enum": ["x", "z"]},
        "l": {"type": "array", "items": {"type": "object", "properties": {}}}
    }});
    let mut diffs = Vec::new();
    walk("", &golden, &ours, &mut diffs);
    let got: Vec<String> = diffs.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        got,
        [
            "a: missing in ours",
            "b: type `integer` (golden) vs `string` (ours)",
            "c: not in golden (we add it)",
            "e: type `string enum[\"x\",\"y\"]` (golden) vs `string enum[\"x\",\"z\"]` (ours)",
            "l[].n: missing in ours",
        ]
    );
}
