//! Spec types shared by `FlinkDeployment` and `FlinkSessionJob`: the job, its upgrade mode and
//! desired state, Flink versions, JobManager/TaskManager resources and the ingress.
//!
//! Every field a user may omit is an `Option` that is skipped when absent, so reading a manifest
//! and writing it back keeps exactly what was written. The Apache operator's defaults live in
//! accessor methods (`JobSpec::state()`, `JobSpec::upgrade_mode()`, …), never in serde.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::ResourceRequirements;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pod_template::PodTemplate;

/// Flink version of the image; flinkpilot accepts v1_16 and newer.
// Variants are ordered: `a < b` means "a is older than b".
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[allow(non_camel_case_types)]
pub enum FlinkVersion {
    /// Flink 1.13 (rejected by validation: too old).
    v1_13,
    /// Flink 1.14 (rejected by validation: too old).
    v1_14,
    /// Flink 1.15 (rejected by validation: too old).
    v1_15,
    /// Flink 1.16.
    v1_16,
    /// Flink 1.17.
    v1_17,
    /// Flink 1.18.
    v1_18,
    /// Flink 1.19.
    v1_19,
    /// Flink 1.20.
    v1_20,
    /// Flink 2.0.
    v2_0,
    /// Flink 2.1.
    v2_1,
    /// Flink 2.2.
    v2_2,
    /// Flink 2.3.
    v2_3,
    /// Flink 2.4.
    v2_4,
}

impl FlinkVersion {
    /// Every version the schema knows, oldest first.
    pub const ALL: [FlinkVersion; 13] = [
        Self::v1_13,
        Self::v1_14,
        Self::v1_15,
        Self::v1_16,
        Self::v1_17,
        Self::v1_18,
        Self::v1_19,
        Self::v1_20,
        Self::v2_0,
        Self::v2_1,
        Self::v2_2,
        Self::v2_3,
        Self::v2_4,
    ];

    /// The oldest version flinkpilot accepts. The Apache operator dropped 1.13/1.14 and
    /// deprecated 1.15; we test 1.20 and 2.3 and accept everything from 1.16 on.
    pub const OLDEST_SUPPORTED: FlinkVersion = FlinkVersion::v1_16;

    /// `true` when `self` is `other` or newer.
    pub fn is_at_least(self, other: FlinkVersion) -> bool {
        self >= other
    }

    /// `true` when flinkpilot accepts this version (see [`Self::OLDEST_SUPPORTED`]).
    pub fn is_supported(self) -> bool {
        self.is_at_least(Self::OLDEST_SUPPORTED)
    }

    /// The wire spelling, e.g. `v1_20`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::v1_13 => "v1_13",
            Self::v1_14 => "v1_14",
            Self::v1_15 => "v1_15",
            Self::v1_16 => "v1_16",
            Self::v1_17 => "v1_17",
            Self::v1_18 => "v1_18",
            Self::v1_19 => "v1_19",
            Self::v1_20 => "v1_20",
            Self::v2_0 => "v2_0",
            Self::v2_1 => "v2_1",
            Self::v2_2 => "v2_2",
            Self::v2_3 => "v2_3",
            Self::v2_4 => "v2_4",
        }
    }

    /// `(major, minor)`, e.g. `(1, 20)`.
    pub fn major_minor(self) -> (u32, u32) {
        let s = &self.as_str()[1..];
        let (major, minor) = s.split_once('_').unwrap_or((s, "0"));
        (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
    }
}

impl fmt::Display for FlinkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the job's state is carried over upgrades and suspends: `stateless` (default),
/// `savepoint` or `last-state`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UpgradeMode {
    /// Stop with a savepoint and restore from it.
    Savepoint,
    /// Restore from the latest checkpoint (or HA metadata).
    LastState,
    /// Start from empty state. The Apache operator's default.
    #[default]
    Stateless,
}

impl UpgradeMode {
    /// The wire spelling, e.g. `last-state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Savepoint => "savepoint",
            Self::LastState => "last-state",
            Self::Stateless => "stateless",
        }
    }
}

impl fmt::Display for UpgradeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Desired state of the job: `running` (default) or `suspended`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// The job should run. The default.
    #[default]
    Running,
    /// The job should be stopped (with its state kept according to the upgrade mode).
    Suspended,
}

impl JobState {
    /// The wire spelling, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Suspended => "suspended",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the cluster runs on Kubernetes: `native` (default) or `standalone`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentMode {
    /// Flink's native Kubernetes integration starts TaskManagers itself. The default.
    #[default]
    Native,
    /// The operator runs JobManager and TaskManager Deployments itself.
    Standalone,
}

impl DeploymentMode {
    /// The wire spelling, e.g. `native`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Standalone => "standalone",
        }
    }
}

impl fmt::Display for DeploymentMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The job of an application deployment or a session job (`spec.job`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// URI of the job jar, e.g. `local:///opt/flink/usrlib/job.jar`.
    #[serde(rename = "jarURI", skip_serializing_if = "Option::is_none")]
    pub jar_uri: Option<String>,
    /// Parallelism of the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// Fully qualified main class of the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    /// Arguments for the job's main class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Desired state of the job: `running` (default) or `suspended`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// Deprecated: change to trigger a manual savepoint. Use a `FlinkStateSnapshot` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_trigger_nonce: Option<i64>,
    /// Savepoint to start from on first deployment and on savepoint redeployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_savepoint_path: Option<String>,
    /// Deprecated: change to trigger a manual checkpoint. Use a `FlinkStateSnapshot` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_trigger_nonce: Option<i64>,
    /// How state is carried over upgrades: `stateless` (default), `savepoint` or `last-state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_mode: Option<UpgradeMode>,
    /// Allow restoring state that no longer maps to an operator of the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_non_restored_state: Option<bool>,
    /// Change to redeploy the job from `initialSavepointPath`, discarding the current state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_redeploy_nonce: Option<i64>,
    /// Change to reset the autoscaler's collected metrics and parallelism overrides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaler_reset_nonce: Option<i64>,
}

impl JobSpec {
    /// The desired state; `running` when not set.
    pub fn state(&self) -> JobState {
        self.state.unwrap_or_default()
    }

    /// The upgrade mode; `stateless` when not set.
    pub fn upgrade_mode(&self) -> UpgradeMode {
        self.upgrade_mode.unwrap_or_default()
    }

    /// The job's parallelism; `0` (meaning "not set") when absent, as in the Apache operator.
    pub fn parallelism(&self) -> i32 {
        self.parallelism.unwrap_or(0)
    }

    /// The job's arguments; empty when not set.
    pub fn args(&self) -> &[String] {
        self.args.as_deref().unwrap_or(&[])
    }

    /// Whether unmapped state may be dropped on restore; `false` when not set.
    pub fn allow_non_restored_state(&self) -> bool {
        self.allow_non_restored_state.unwrap_or(false)
    }
}

/// Simple resources of a JobManager or TaskManager (`spec.jobManager.resource`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// CPU cores, e.g. `0.5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory in Flink (`2048m`, `2g`) or Kubernetes (`2Gi`) syntax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Ephemeral storage as a Kubernetes quantity, e.g. `10Gi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<String>,
}

/// The JobManager (`spec.jobManager`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobManagerSpec {
    /// CPU and memory in the operator's own short form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Kubernetes resource requests and limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Number of JobManager replicas; `1` when not set. More than one needs high availability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// JobManager pod template, merged over `spec.podTemplate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
}

impl JobManagerSpec {
    /// Number of JobManager replicas; `1` when not set.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

/// The TaskManagers (`spec.taskManager`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerSpec {
    /// CPU and memory in the operator's own short form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Kubernetes resource requests and limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Number of TaskManagers. When set it takes precedence over the job's parallelism.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// TaskManager pod template, merged over `spec.podTemplate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
}

/// An Ingress in front of the JobManager's REST endpoint (`spec.ingress`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host and/or path template; `{{name}}` and `{{namespace}}` are replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Ingress class name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Annotations of the Ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels of the Ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// TLS settings of the Ingress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Vec<IngressTls>>,
}

/// One TLS entry of an Ingress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// Hosts covered by the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Secret holding the certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_versions_are_ordered_oldest_first() {
        assert!(FlinkVersion::v2_3.is_at_least(FlinkVersion::v1_20));
        assert!(FlinkVersion::v1_20.is_at_least(FlinkVersion::v1_20));
        assert!(!FlinkVersion::v1_19.is_at_least(FlinkVersion::v1_20));
        assert_eq!(FlinkVersion::v2_3.major_minor(), (2, 3));
        assert_eq!(FlinkVersion::v1_20.major_minor(), (1, 20));
        let mut sorted = FlinkVersion::ALL;
        sorted.sort();
        assert_eq!(sorted, FlinkVersion::ALL);
    }

    #[test]
    fn versions_older_than_1_16_are_unsupported() {
        assert!(!FlinkVersion::v1_15.is_supported());
        assert!(FlinkVersion::v1_16.is_supported());
        assert!(FlinkVersion::v2_4.is_supported());
    }

    #[test]
    fn wire_spellings_match_the_apache_operator() {
        let s = |v: &dyn erased::Ser| v.json();
        assert_eq!(s(&UpgradeMode::LastState), "\"last-state\"");
        assert_eq!(s(&JobState::Suspended), "\"suspended\"");
        assert_eq!(s(&DeploymentMode::Standalone), "\"standalone\"");
        assert_eq!(s(&FlinkVersion::v2_0), "\"v2_0\"");
        for v in FlinkVersion::ALL {
            assert_eq!(s(&v), format!("\"{v}\""));
        }
    }

    #[test]
    fn job_defaults_are_accessors_not_serialized_fields() {
        let job = JobSpec::default();
        assert_eq!(job.state(), JobState::Running);
        assert_eq!(job.upgrade_mode(), UpgradeMode::Stateless);
        assert_eq!(job.parallelism(), 0);
        assert_eq!(serde_json::to_string(&job).unwrap(), "{}");
        assert_eq!(JobManagerSpec::default().replicas(), 1);
    }

    mod erased {
        pub trait Ser {
            fn json(&self) -> String;
        }
        impl<T: serde::Serialize> Ser for T {
            fn json(&self) -> String {
                serde_json::to_string(self).unwrap()
            }
        }
    }
}
