//! The resource types the fake serves: a data table, so adding a type is one line.

use serde_json::Value;

/// Where the scale subresource reads and writes replicas (paths like `.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleSpec {
    /// Path of the desired replicas, e.g. `.spec.taskManager.replicas`.
    pub spec_replicas_path: String,
    /// Path of the observed replicas, e.g. `.status.taskManager.replicas`.
    pub status_replicas_path: String,
    /// Path of the label selector string reported in `Scale.status.selector`, if any.
    pub label_selector_path: Option<String>,
}

/// One served resource type (one group/version/plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    /// API version, e.g. `v1beta1`.
    pub version: String,
    /// Plural resource name used in URLs, e.g. `flinkdeployments`.
    pub plural: String,
    /// Singular name, e.g. `flinkdeployment`.
    pub singular: String,
    /// Kind, e.g. `FlinkDeployment`.
    pub kind: String,
    /// Namespaced (`true`) or cluster-scoped.
    pub namespaced: bool,
    /// Has the `status` subresource: main-resource writes ignore `.status`, `/status` writes
    /// change only `.status`, and `generation` counts spec changes only.
    pub status: bool,
    /// Has the `scale` subresource.
    pub scale: Option<ScaleSpec>,
    /// Short names announced in discovery.
    pub short_names: Vec<String>,
    /// Field-selector paths accepted besides `metadata.name` and `metadata.namespace`.
    pub selectable_fields: Vec<String>,
    /// Still served (a deleted CRD stops serving its type).
    pub served: bool,
}

impl ResourceType {
    /// A namespaced type without subresources. `api_version` is `group/version` or `v1`.
    pub fn namespaced(api_version: &str, plural: &str, kind: &str) -> Self {
        let (group, version) = split_api_version(api_version);
        Self {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.to_string(),
            namespaced: true,
            status: false,
            scale: None,
            short_names: Vec::new(),
            selectable_fields: Vec::new(),
            served: true,
        }
    }

    /// A cluster-scoped type without subresources.
    pub fn cluster(api_version: &str, plural: &str, kind: &str) -> Self {
        Self {
            namespaced: false,
            ..Self::namespaced(api_version, plural, kind)
        }
    }

    /// Adds the status subresource.
    pub fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    /// Adds the scale subresource with the given JSON paths (`.spec.replicas` style).
    pub fn with_scale(mut self, spec: &str, status: &str, selector: Option<&str>) -> Self {
        self.scale = Some(ScaleSpec {
            spec_replicas_path: spec.to_string(),
            status_replicas_path: status.to_string(),
            label_selector_path: selector.map(str::to_string),
        });
        self
    }

    /// Adds short names for discovery.
    pub fn with_short_names(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Adds selectable fields for `fieldSelector`.
    pub fn with_fields(mut self, fields: &[&str]) -> Self {
        self.selectable_fields = fields.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` for core), as the real server names a type in messages.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Splits `group/version` (or `v1`) into its parts.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The types served from the start. One line per type.
pub fn builtin_types() -> Vec<ResourceType> {
    use ResourceType as R;
    let event_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ];
    vec![
        R::cluster("v1", "namespaces", "Namespace")
            .with_status()
            .with_short_names(&["ns"]),
        R::namespaced("v1", "pods", "Pod")
            .with_status()
            .with_short_names(&["po"])
            .with_fields(&["spec.nodeName", "spec.serviceAccountName", "status.phase"]),
        R::namespaced("v1", "services", "Service")
            .with_status()
            .with_short_names(&["svc"]),
        R::namespaced("v1", "configmaps", "ConfigMap").with_short_names(&["cm"]),
        R::namespaced("v1", "secrets", "Secret").with_fields(&["type"]),
        R::namespaced("v1", "serviceaccounts", "ServiceAccount").with_short_names(&["sa"]),
        R::namespaced("v1", "events", "Event")
            .with_short_names(&["ev"])
            .with_fields(&event_fields),
        R::namespaced("v1", "endpoints", "Endpoints").with_short_names(&["ep"]),
        R::namespaced("v1", "persistentvolumeclaims", "PersistentVolumeClaim").with_status(),
        R::namespaced("apps/v1", "deployments", "Deployment")
            .with_status()
            .with_short_names(&["deploy"]),
        R::namespaced("apps/v1", "replicasets", "ReplicaSet")
            .with_status()
            .with_short_names(&["rs"]),
        R::namespaced("networking.k8s.io/v1", "ingresses", "Ingress")
            .with_status()
            .with_short_names(&["ing"]),
        R::namespaced("coordination.k8s.io/v1", "leases", "Lease"),
        R::namespaced("events.k8s.io/v1", "events", "Event")
            .with_short_names(&["ev"])
            .with_fields(&[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "type",
            ]),
        R::namespaced("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget").with_status(),
        R::cluster(
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
        )
        .with_status()
        .with_short_names(&["crd", "crds"]),
        R::namespaced(
            "flink.apache.org/v1beta1",
            "flinkdeployments",
            "FlinkDeployment",
        )
        .with_status()
        .with_scale(
            ".spec.taskManager.replicas",
            ".status.taskManager.replicas",
            Some(".status.taskManager.labelSelector"),
        )
        .with_short_names(&["flinkdep"]),
        R::namespaced(
            "flink.apache.org/v1beta1",
            "flinksessionjobs",
            "FlinkSessionJob",
        )
        .with_status(),
        R::namespaced(
            "flink.apache.org/v1beta1",
            "flinkstatesnapshots",
            "FlinkStateSnapshot",
        )
        .with_status()
        .with_short_names(&["flinksnp"]),
        R::namespaced(
            "flink.apache.org/v1beta1",
            "flinkbluegreendeployments",
            "FlinkBlueGreenDeployment",
        )
        .with_status(),
    ]
}

/// The set of served types; indices are stable for the life of a server.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// A registry holding the built-in table.
    pub fn builtin() -> Self {
        Self {
            types: builtin_types(),
        }
    }

    /// All types ever registered (check `served`).
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type at `idx`.
    pub fn get(&self, idx: usize) -> Option<&ResourceType> {
        self.types.get(idx)
    }

    /// Finds a served type by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.types.iter().position(|t| {
            t.served && t.group == group && t.version == version && t.plural == plural
        })
    }

    /// Finds a served type by `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        let (group, version) = split_api_version(api_version);
        self.types
            .iter()
            .position(|t| t.served && t.group == group && t.version == version && t.kind == kind)
    }

    /// Adds a type, or replaces the definition of the same group/version/plural (served again).
    /// Returns its index.
    pub fn register(&mut self, rt: ResourceType) -> usize {
        let existing = self
            .types
            .iter()
            .position(|t| t.group == rt.group && t.version == rt.version && t.plural == rt.plural);
        match existing {
            Some(idx) => {
                self.types[idx] = ResourceType { served: true, ..rt };
                idx
            }
            None => {
                self.types.push(ResourceType { served: true, ..rt });
                self.types.len() - 1
            }
        }
    }

    /// Stops serving a type; returns its index when it was served.
    pub fn unserve(&mut self, group: &str, version: &str, plural: &str) -> Option<usize> {
        let idx = self.find(group, version, plural)?;
        self.types[idx].served = false;
        Some(idx)
    }
}

/// The resource types a `CustomResourceDefinition` object declares (one per served version).
pub fn types_from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let (Some(plural), Some(kind)) = (names["plural"].as_str(), names["kind"].as_str()) else {
        return Vec::new();
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let short: Vec<&str> = names["shortNames"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let api_version = format!("{group}/{version}");
            let mut rt = if namespaced {
                ResourceType::namespaced(&api_version, plural, kind)
            } else {
                ResourceType::cluster(&api_version, plural, kind)
            };
            if let Some(singular) = names["singular"].as_str() {
                rt.singular = singular.to_string();
            }
            rt.short_names = short.iter().map(|s| s.to_string()).collect();
            let sub = &v["subresources"];
            rt.status = sub.get("status").is_some();
            if let Some(scale) = sub.get("scale") {
                rt.scale = Some(ScaleSpec {
                    spec_replicas_path: scale["specReplicasPath"].as_str()?.to_string(),
                    status_replicas_path: scale["statusReplicasPath"].as_str()?.to_string(),
                    label_selector_path: scale["labelSelectorPath"].as_str().map(str::to_string),
                });
            }
            rt.selectable_fields = v["selectableFields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f["jsonPath"].as_str())
                        .map(|p| p.trim_start_matches('.').to_string())
                        .collect()
                })
                .unwrap_or_default();
            Some(rt)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_table_has_unique_group_version_plural() {
        let types = builtin_types();
        for (i, a) in types.iter().enumerate() {
            for b in &types[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "duplicate {}",
                    a.qualified_name()
                );
            }
        }
    }

    #[test]
    fn crd_object_declares_subresources_and_scope() {
        let crd = json!({
            "spec": {
                "group": "example.com",
                "names": {"plural": "widgets", "kind": "Widget", "singular": "widget"},
                "scope": "Cluster",
                "versions": [
                    {"name": "v1", "served": true, "subresources": {"status": {},
                      "scale": {"specReplicasPath": ".spec.n", "statusReplicasPath": ".status.n"}}},
                    {"name": "v0", "served": false}
                ]
            }
        });
        let types = types_from_crd(&crd);
        assert_eq!(types.len(), 1);
        assert!(!types[0].namespaced);
        assert!(types[0].status);
        assert_eq!(
            types[0]
                .scale
                .as_ref()
                .map(|s| s.spec_replicas_path.as_str()),
            Some(".spec.n")
        );
    }
}
