//! `FlinkSessionJob`: a job submitted to the session cluster of a `FlinkDeployment`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::JobSpec;
use crate::config::FlinkConfiguration;
use crate::resource::{CrdInfo, custom_resource};
use crate::status::{JobStatus, ReconciliationStatus, ResourceLifecycleState};

/// Desired state of a `FlinkSessionJob`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkSessionJobSpec {
    /// The job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSpec>,
    /// Change to restart the job (following its upgrade mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_nonce: Option<i64>,
    /// Flink configuration overrides for this job, flat or nested.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::config::config_field_schema")]
    pub flink_configuration: Option<FlinkConfiguration>,
    /// Name of the session `FlinkDeployment` (same namespace) the job runs in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
}

impl FlinkSessionJobSpec {
    /// The Flink configuration, empty when not set.
    pub fn flink_config(&self) -> &FlinkConfiguration {
        self.flink_configuration
            .as_ref()
            .unwrap_or(FlinkConfiguration::empty())
    }
}

/// Observed state of a `FlinkSessionJob`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlinkSessionJobStatus {
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
}

custom_resource! {
    /// A job running in the session cluster of a `FlinkDeployment`.
    FlinkSessionJob {
        spec: FlinkSessionJobSpec,
        status: FlinkSessionJobStatus,
        crd_name: "flinksessionjobs.flink.apache.org",
        info: CrdInfo {
            kind: "FlinkSessionJob",
            plural: "flinksessionjobs",
            singular: "flinksessionjob",
            short_names: &["sessionjob"],
            printer_columns: &[
                ("Job Status", ".status.jobStatus.state"),
                ("Lifecycle State", ".status.lifecycleState"),
            ],
            scale: None,
            description: "A Flink job running in the session cluster of a FlinkDeployment.",
        },
    }
}
