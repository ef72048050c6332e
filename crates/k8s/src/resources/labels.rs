//! Labels and selectors, as Flink's native deployer and the Apache operator's standalone mode
//! write them: `app=<name>`, `type=flink-native-kubernetes|flink-standalone-kubernetes`, and
//! `component=jobmanager|taskmanager` on pods.

use std::collections::BTreeMap;

/// Label key of the cluster id.
pub const APP: &str = "app";
/// Label key of the deployment type.
pub const TYPE: &str = "type";
/// Label key of the Flink component (`jobmanager`, `taskmanager`).
pub const COMPONENT: &str = "component";
/// `type` of clusters whose TaskManagers Flink itself starts (Flink's `LABEL_TYPE_NATIVE_TYPE`).
pub const TYPE_NATIVE: &str = "flink-native-kubernetes";
/// `type` of standalone clusters (the Apache operator's `LABEL_TYPE_STANDALONE_TYPE`).
pub const TYPE_STANDALONE: &str = "flink-standalone-kubernetes";
/// Marks the objects flinkpilot applied, so pruning never touches what Flink creates itself
/// with the same `app`/`type` labels (TaskManager pods, HA ConfigMaps).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "flinkpilot";

/// Native (Flink starts TaskManager pods) or standalone (we run a TaskManager Deployment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterType {
    /// Flink's native Kubernetes integration.
    Native,
    /// Standalone JobManager and TaskManager Deployments.
    Standalone,
}

impl ClusterType {
    /// The `type` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Native => TYPE_NATIVE,
            Self::Standalone => TYPE_STANDALONE,
        }
    }
}

/// A Flink process kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The JobManager.
    JobManager,
    /// A TaskManager.
    TaskManager,
}

impl Component {
    /// The `component` label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::JobManager => "jobmanager",
            Self::TaskManager => "taskmanager",
        }
    }
}

/// `app` and `type`: the labels of every object of the cluster (Flink's common labels).
pub fn common(cluster_id: &str, kind: ClusterType) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP.to_string(), cluster_id.to_string()),
        (TYPE.to_string(), kind.label().to_string()),
    ])
}

/// The selector of one component's pods: the common labels plus `component`.
pub fn selector(
    cluster_id: &str,
    kind: ClusterType,
    component: Component,
) -> BTreeMap<String, String> {
    let mut labels = common(cluster_id, kind);
    labels.insert(COMPONENT.to_string(), component.label().to_string());
    labels
}

/// Labels of an object we apply: `extra` (user labels) overlaid with the common labels and
/// [`MANAGED_BY`], so the identifying labels cannot be overridden.
pub fn object(
    cluster_id: &str,
    kind: ClusterType,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = extra.clone();
    labels.extend(common(cluster_id, kind));
    labels.insert(MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string());
    labels
}

/// The label selector (`a=b,c=d`) of every object flinkpilot applied for a cluster: what an
/// apply loop lists to find children the current plan no longer contains.
pub fn managed_selector(cluster_id: &str, kind: ClusterType) -> String {
    let mut labels = common(cluster_id, kind);
    labels.insert(MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string());
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
