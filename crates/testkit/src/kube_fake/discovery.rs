//! Discovery documents (`/version`, `/api`, `/apis`, per group/version resource lists, and the
//! aggregated `apidiscovery.k8s.io/v2` form), generated from the registry.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::registry::ResourceType;

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

/// The `Accept` value kube-rs sends for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.contains("as=APIGroupDiscoveryList")
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-flinkpilot-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api` (core versions).
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Group → versions, in registration order of first appearance (core excluded).
fn groups(types: &[&ResourceType]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let versions = out.entry(t.group.clone()).or_default();
        if !versions.contains(&t.version) {
            versions.push(t.version.clone());
        }
    }
    out
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn group_list(types: &[&ResourceType]) -> Value {
    let groups: Vec<Value> = groups(types)
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(types: &[&ResourceType], name: &str) -> Option<Value> {
    let groups = groups(types);
    let versions = groups.get(name)?;
    let mut g = group_json(name, versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` when nothing is served there.
pub fn resource_list(types: &[&ResourceType], group: &str, version: &str) -> Option<Value> {
    let matching: Vec<&&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if matching.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in matching {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": VERBS,
            "shortNames": t.short_names,
        }));
        if t.status {
            resources.push(json!({
                "name": format!("{}/status", t.plural), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": SUB_VERBS,
            }));
        }
        if t.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", t.plural), "singularName": "",
                "namespaced": t.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": SUB_VERBS,
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

fn aggregated_resource(t: &ResourceType) -> Value {
    let mut subs = Vec::new();
    if t.status {
        subs.push(json!({"subresource": "status", "verbs": SUB_VERBS,
            "responseKind": {"group": t.group, "version": t.version, "kind": t.kind}}));
    }
    if t.scale.is_some() {
        subs.push(json!({"subresource": "scale", "verbs": SUB_VERBS,
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}}));
    }
    json!({
        "resource": t.plural,
        "responseKind": {"group": t.group, "version": t.version, "kind": t.kind},
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": VERBS,
        "shortNames": t.short_names,
        "subresources": subs,
    })
}

/// Aggregated discovery: core (`core == true`, from `/api`) or all named groups (`/apis`).
pub fn aggregated(types: &[&ResourceType], core: bool) -> Value {
    let mut by_group: BTreeMap<&str, BTreeMap<&str, Vec<Value>>> = BTreeMap::new();
    for t in types.iter().filter(|t| t.group.is_empty() == core) {
        by_group
            .entry(t.group.as_str())
            .or_default()
            .entry(t.version.as_str())
            .or_default()
            .push(aggregated_resource(t));
    }
    let items: Vec<Value> = by_group
        .into_iter()
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .into_iter()
                .map(|(v, resources)| json!({"version": v, "resources": resources, "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": g}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}
