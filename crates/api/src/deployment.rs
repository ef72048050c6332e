//! `FlinkDeployment`: a Flink cluster, either running one application job (`spec.job` set) or
//! serving as a session cluster for `FlinkSessionJob`s.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    DeploymentMode, FlinkVersion, IngressSpec, JobManagerSpec, JobSpec, TaskManagerSpec,
};
use crate::config::FlinkConfiguration;
use crate::pod_template::PodTemplate;
use crate::resource::{CrdInfo, custom_resource};
use crate::status::{JobStatus, ReconciliationStatus, ResourceLifecycleState, wire_enum};

/// Desired state of a `FlinkDeployment`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkDeploymentSpec {
    /// The application job. Absent for a session cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSpec>,
    /// Change to restart the cluster (following the job's upgrade mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    /// Flink configuration overrides, flat (`a.b: v`) or nested (`a: {b: v}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::config::config_field_schema")]
    pub flink_configuration: Option<FlinkConfiguration>,
    /// Flink image of the JobManager and TaskManager pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Pull policy of the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Kubernetes service account of the Flink pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Flink version of the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flink_version: Option<FlinkVersion>,
    /// Ingress in front of the REST endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Base pod template of JobManager and TaskManager pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
    /// The JobManager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_manager: Option<JobManagerSpec>,
    /// The TaskManagers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<TaskManagerSpec>,
    /// Log configuration files by name (`log4j-console.properties`, `logback-console.xml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<BTreeMap<String, String>>,
    /// `native` (default) or `standalone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<DeploymentMode>,
}

impl FlinkDeploymentSpec {
    /// The Flink configuration, empty when not set.
    pub fn flink_config(&self) -> &FlinkConfiguration {
        self.flink_configuration
            .as_ref()
            .unwrap_or(FlinkConfiguration::empty())
    }

    /// The deployment mode; `native` when not set.
    pub fn mode(&self) -> DeploymentMode {
        self.mode.unwrap_or_default()
    }

    /// `true` for a session cluster (no `job`).
    pub fn is_session_cluster(&self) -> bool {
        self.job.is_none()
    }

    /// Number of JobManager replicas; `1` when not set.
    pub fn job_manager_replicas(&self) -> i32 {
        self.job_manager
            .as_ref()
            .map_or(1, JobManagerSpec::replicas)
    }

    /// Number of TaskManagers if set explicitly.
    pub fn task_manager_replicas(&self) -> Option<i32> {
        self.task_manager.as_ref().and_then(|tm| tm.replicas)
    }
}

wire_enum! {
    /// State of the JobManager deployment (`status.jobManagerDeploymentStatus`).
    JobManagerDeploymentStatus {
        /// Deployed, but the REST endpoint is not ready yet.
        DeployedNotReady => "DEPLOYED_NOT_READY",
        /// Being deployed.
        Deploying => "DEPLOYING",
        /// Failed to deploy.
        Error => "ERROR",
        /// Not present.
        Missing => "MISSING",
        /// Running and reachable.
        Ready => "READY",
    }
}

/// Observed TaskManagers, read by the scale subresource (`status.taskManager`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagerInfo {
    /// Label selector of the TaskManager pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Number of TaskManager replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// A status condition, as in `metav1.Condition` but with every field optional like the Apache
/// operator's schema.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Running`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `True`, `False` or `Unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Machine-readable reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Generation the condition was computed for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Observed state of a `FlinkDeployment`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkDeploymentStatus {
    /// The observed job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
    /// Last error, for people and for `kubectl describe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Generation of the spec last reconciled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle state, shown by `kubectl get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_state: Option<ResourceLifecycleState>,
    /// What was last reconciled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciliation_status: Option<ReconciliationStatus>,
    /// Information about the cluster, e.g. `flink-version`, `flink-revision`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_info: Option<BTreeMap<String, String>>,
    /// State of the JobManager deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_manager_deployment_status: Option<JobManagerDeploymentStatus>,
    /// Observed TaskManagers (scale subresource).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_manager: Option<TaskManagerInfo>,
    /// Conditions, e.g. whether the job is running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

custom_resource! {
    /// A Flink cluster: an application cluster running `spec.job`, or a session cluster.
    FlinkDeployment {
        spec: FlinkDeploymentSpec,
        status: FlinkDeploymentStatus,
        crd_name: "flinkdeployments.flink.apache.org",
        info: CrdInfo {
            kind: "FlinkDeployment",
            plural: "flinkdeployments",
            singular: "flinkdeployment",
            short_names: &["flinkdep"],
            printer_columns: &[
                ("Job Status", ".status.jobStatus.state"),
                ("Lifecycle State", ".status.lifecycleState"),
            ],
            scale: Some((
                ".spec.taskManager.replicas",
                ".status.taskManager.replicas",
                ".status.taskManager.labelSelector",
            )),
            description: "A Flink cluster: an application cluster running spec.job, or a \
                          session cluster for FlinkSessionJobs.",
        },
    }
}

impl FlinkDeployment {
    /// `true` for the Apache operator's health-check canaries (label
    /// `flink.apache.org/canary: "true"`), which are never deployed or validated.
    pub fn is_canary(&self) -> bool {
        crate::is_canary(&self.metadata)
    }
}
