//! The `flink.apache.org/v1beta1` resources (`FlinkDeployment`, `FlinkSessionJob`,
//! `FlinkStateSnapshot`), their defaults, validation and spec diff. No I/O.
//!
//! The types are field-for-field the Apache Flink Kubernetes Operator's, so its manifests read
//! unchanged and round-trip exactly (see `tests/round_trip.rs`); the generated CRDs match its
//! schema (see `tests/schema_parity.rs`).

pub mod common;
pub mod config;
pub mod crd;
pub mod deployment;
pub mod diff;
#[cfg(feature = "test-fixtures")]
pub mod fixtures;
pub mod manifest;
pub mod names;
pub mod pod_template;
pub mod reconciled;
pub mod resource;
pub mod schedule;
pub mod session_job;
pub mod snapshot;
pub mod status;
pub mod units;
pub mod validate;

pub use common::{
    DeploymentMode, FlinkVersion, IngressSpec, IngressTls, JobManagerSpec, JobSpec, JobState,
    Resource, TaskManagerSpec, UpgradeMode,
};
pub use config::FlinkConfiguration;
pub use deployment::{
    Condition, FlinkDeployment, FlinkDeploymentSpec, FlinkDeploymentStatus,
    JobManagerDeploymentStatus, TaskManagerInfo,
};
pub use diff::{ChangeKind, FieldChange, SpecDiff, diff, diff_with_mode};
pub use pod_template::PodTemplate;
pub use session_job::{FlinkSessionJob, FlinkSessionJobSpec, FlinkSessionJobStatus};
pub use snapshot::{
    CheckpointSpec, FlinkStateSnapshot, FlinkStateSnapshotSpec, FlinkStateSnapshotState,
    FlinkStateSnapshotStatus, JobKind, JobReference, SavepointSpec,
};
pub use status::{
    Checkpoint, CheckpointInfo, CheckpointType, FlinkJobState, JobStatus, ReconciliationState,
    ReconciliationStatus, ResourceLifecycleState, Savepoint, SavepointFormatType, SavepointInfo,
    SnapshotTriggerType,
};

/// Label that marks the Apache operator's health-check canary resources.
pub const CANARY_LABEL: &str = "flink.apache.org/canary";

/// `true` when the object carries `flink.apache.org/canary: "true"`.
pub fn is_canary(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(CANARY_LABEL))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}
