//! `FlinkStateSnapshot` resources: one savepoint or checkpoint of the job of a `FlinkDeployment`,
//! reconciled like deployments (observe → decide (pure) → act, one step per pass, the status as
//! the write-ahead log):
//!
//! ```text
//! TRIGGER_PENDING ──(trigger id recorded, then sent)──▶ IN_PROGRESS ──▶ COMPLETED (path)
//!        ▲   │                                              │
//!        │   ├─ alreadyExists: registered as COMPLETED      ├─ failed: retried after a backoff
//!        │   └─ job gone / not RUNNING ──▶ ABANDONED        │  (TRIGGER_PENDING) until
//!        └──────────────────────────────────────────────────┘  backoffLimit, then FAILED
//! ```
//!
//! Deleting a snapshot with `savepoint.disposeOnDelete` disposes its files first (finalizer):
//! through the JobManager while its cluster runs, directly on storage otherwise, and never the
//! savepoint its deployment restores from.
//!
//! The same module names and labels the snapshots the operator takes itself (upgrade,
//! periodic, manual), which the deployment's `decide` creates.

pub mod act;
pub mod controller;
pub mod decide;
pub mod observe;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use api::{
    FlinkDeployment, FlinkStateSnapshot, FlinkStateSnapshotSpec, FlinkStateSnapshotState, JobKind,
    JobReference, SavepointFormatType, SavepointSpec, SnapshotTriggerType,
};

use crate::act::StoreError;
use crate::backend::ResourceKey;

pub use act::{SnapshotStore, act_snapshot, apply_snapshot_outcome};
pub use decide::{SnapshotAction, SnapshotDecision, SnapshotInput, decide_snapshot};
pub use observe::{SnapshotNeeds, SnapshotObserved, observe_snapshot, snapshot_needs};

/// The finalizer of snapshot resources (the Apache operator's name).
pub const SNAPSHOT_FINALIZER: &str = "flinkstatesnapshots.flink.apache.org/finalizer";

/// Label: `SAVEPOINT` or `CHECKPOINT`.
pub const LABEL_SNAPSHOT_TYPE: &str = "snapshot.type";
/// Label: what took the snapshot: `MANUAL`, `PERIODIC`, `UPGRADE`.
pub const LABEL_TRIGGER_TYPE: &str = "snapshot.trigger-type";
/// Label: the snapshot's `status.state`.
pub const LABEL_STATE: &str = "snapshot.state";
/// Label: kind of the referenced resource.
pub const LABEL_JOB_REFERENCE_KIND: &str = "job-reference.kind";
/// Label: name of the referenced resource.
pub const LABEL_JOB_REFERENCE_NAME: &str = "job-reference.name";

/// Savepoint or checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotKind {
    /// A savepoint.
    Savepoint,
    /// A checkpoint.
    Checkpoint,
}

impl SnapshotKind {
    /// `savepoint` / `checkpoint`, for names and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Savepoint => "savepoint",
            SnapshotKind::Checkpoint => "checkpoint",
        }
    }

    /// The kind of a snapshot resource.
    pub fn of(snapshot: &FlinkStateSnapshot) -> SnapshotKind {
        if snapshot.spec.is_checkpoint() && !snapshot.spec.is_savepoint() {
            SnapshotKind::Checkpoint
        } else {
            SnapshotKind::Savepoint
        }
    }
}

/// The key of a snapshot resource.
pub fn snapshot_key(snapshot: &FlinkStateSnapshot) -> ResourceKey {
    ResourceKey::new(
        snapshot
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        snapshot.metadata.name.clone().unwrap_or_default(),
    )
}

/// The deployment a snapshot refers to (same namespace), when it names a `FlinkDeployment`.
pub fn target_key(snapshot: &FlinkStateSnapshot) -> Option<ResourceKey> {
    let reference = snapshot.spec.job_reference.as_ref()?;
    if reference.kind != Some(JobKind::FlinkDeployment) {
        return None;
    }
    let name = reference.name.as_deref().filter(|n| !n.is_empty())?;
    Some(ResourceKey::new(snapshot_key(snapshot).namespace, name))
}

/// The session job a snapshot refers to (same namespace), when it names a `FlinkSessionJob`.
pub fn session_job_key(snapshot: &FlinkStateSnapshot) -> Option<ResourceKey> {
    let reference = snapshot.spec.job_reference.as_ref()?;
    if reference.kind != Some(JobKind::FlinkSessionJob) {
        return None;
    }
    let name = reference.name.as_deref().filter(|n| !n.is_empty())?;
    Some(ResourceKey::new(snapshot_key(snapshot).namespace, name))
}

/// `true` when the snapshot's `jobReference` names the deployment `key`.
pub fn refers_to(snapshot: &FlinkStateSnapshot, key: &ResourceKey) -> bool {
    target_key(snapshot).is_some_and(|t| &t == key)
}

/// What took a snapshot, from its `snapshot.trigger-type` label (`MANUAL` when unset, as the
/// Apache operator assumes).
pub fn trigger_type(snapshot: &FlinkStateSnapshot) -> SnapshotTriggerType {
    snapshot
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_TRIGGER_TYPE))
        .and_then(|v| {
            SnapshotTriggerType::ALL
                .iter()
                .copied()
                .find(|t| t.as_str() == v.as_str())
        })
        .unwrap_or(SnapshotTriggerType::Manual)
}

/// The state of a snapshot (`TRIGGER_PENDING` before its first reconcile).
pub fn state(snapshot: &FlinkStateSnapshot) -> FlinkStateSnapshotState {
    snapshot
        .status
        .as_ref()
        .and_then(|s| s.state)
        .unwrap_or(FlinkStateSnapshotState::TriggerPending)
}

/// Where a snapshot's files are: its status path once completed, or for a registered
/// savepoint the path in its spec.
pub fn snapshot_path(snapshot: &FlinkStateSnapshot) -> Option<String> {
    snapshot
        .status
        .as_ref()
        .and_then(|s| s.path.clone())
        .or_else(|| {
            snapshot
                .spec
                .savepoint
                .as_ref()
                .filter(|s| s.already_exists())
                .and_then(|s| s.path.clone())
        })
}

/// Creation time of an object, epoch milliseconds. Generated snapshot names end in the
/// millisecond they were decided at, which breaks ties of the one-second creation timestamps.
pub fn created_ms(snapshot: &FlinkStateSnapshot) -> i64 {
    let from_name = snapshot
        .metadata
        .name
        .as_deref()
        .and_then(|n| n.rsplit('-').next())
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 1_000_000_000_000);
    let created = snapshot
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond());
    match (created, from_name) {
        // the name is exact; the timestamp is rounded down to the second
        (Some(c), Some(n)) if n / 1000 == c / 1000 => n,
        (Some(c), _) => c,
        (None, n) => n.unwrap_or(0),
    }
}

/// The labels the Apache operator keeps on a snapshot resource: its type, what triggered it,
/// its state, and the referenced resource when it exists. Other labels are kept.
pub fn labels(
    snapshot: &FlinkStateSnapshot,
    state: FlinkStateSnapshotState,
    target_exists: bool,
) -> BTreeMap<String, String> {
    let mut labels = snapshot.metadata.labels.clone().unwrap_or_default();
    let kind = match SnapshotKind::of(snapshot) {
        SnapshotKind::Savepoint => "SAVEPOINT",
        SnapshotKind::Checkpoint => "CHECKPOINT",
    };
    labels.insert(LABEL_SNAPSHOT_TYPE.into(), kind.into());
    labels.insert(
        LABEL_TRIGGER_TYPE.into(),
        trigger_type(snapshot).as_str().into(),
    );
    labels.insert(LABEL_STATE.into(), state.as_str().into());
    if let (true, Some(reference)) = (target_exists, snapshot.spec.job_reference.as_ref()) {
        if let Some(kind) = reference.kind {
            let kind = match kind {
                JobKind::FlinkDeployment => "FlinkDeployment",
                JobKind::FlinkSessionJob => "FlinkSessionJob",
            };
            labels.insert(LABEL_JOB_REFERENCE_KIND.into(), kind.into());
        }
        if let Some(name) = &reference.name {
            labels.insert(LABEL_JOB_REFERENCE_NAME.into(), name.clone());
        }
    }
    labels
}

/// The name of a snapshot the operator takes itself, as the Apache operator names them:
/// `<deployment>-<savepoint|checkpoint>-<trigger type>-<epoch ms>`.
pub fn generated_name(
    deployment: &str,
    kind: SnapshotKind,
    trigger: SnapshotTriggerType,
    at_ms: i64,
) -> String {
    format!(
        "{deployment}-{}-{}-{at_ms}",
        kind.as_str(),
        trigger.as_str().to_lowercase()
    )
}

/// Retries of a snapshot the operator takes itself (periodic, manual through a nonce): a few,
/// so a passing fault is ridden out, and then `FAILED`, so a lasting one (an unwritable
/// directory) is reported and never blocks the next periodic snapshot forever — a spec
/// without `backoffLimit` would retry without end.
pub const GENERATED_BACKOFF_LIMIT: i32 = 2;

/// What a snapshot the operator takes itself looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// Savepoint or checkpoint.
    pub kind: SnapshotKind,
    /// Upgrade, periodic or manual.
    pub trigger: SnapshotTriggerType,
    /// When it was decided (part of its name), epoch milliseconds.
    pub at_ms: i64,
    /// Savepoints: the target directory, or for an upgrade savepoint the savepoint itself.
    pub path: Option<String>,
    /// Savepoint format.
    pub format: SavepointFormatType,
    /// Dispose the files when the resource is deleted
    /// (`kubernetes.operator.savepoint.dispose-on-delete`).
    pub dispose_on_delete: bool,
}

impl Generated {
    /// The resource: an upgrade savepoint is registered (`alreadyExists`), the others are
    /// taken by the snapshot reconciler. Labelled with what triggered it.
    pub fn resource(&self, deployment: &FlinkDeployment) -> FlinkStateSnapshot {
        let name = generated_name(deployment.name(), self.kind, self.trigger, self.at_ms);
        let job_reference = Some(JobReference {
            kind: Some(JobKind::FlinkDeployment),
            name: Some(deployment.name().to_string()),
        });
        let backoff_limit =
            (self.trigger != SnapshotTriggerType::Upgrade).then_some(GENERATED_BACKOFF_LIMIT);
        let spec = match self.kind {
            SnapshotKind::Savepoint => FlinkStateSnapshotSpec {
                job_reference,
                backoff_limit,
                savepoint: Some(SavepointSpec {
                    path: self.path.clone(),
                    format_type: Some(self.format),
                    dispose_on_delete: Some(self.dispose_on_delete),
                    already_exists: Some(self.trigger == SnapshotTriggerType::Upgrade),
                }),
                ..Default::default()
            },
            SnapshotKind::Checkpoint => FlinkStateSnapshotSpec {
                job_reference,
                backoff_limit,
                checkpoint: Some(api::CheckpointSpec {}),
                ..Default::default()
            },
        };
        let mut snapshot = FlinkStateSnapshot {
            metadata: Default::default(),
            spec,
            status: None,
        };
        snapshot.metadata.name = Some(name);
        snapshot.metadata.namespace = deployment.metadata.namespace.clone();
        snapshot.metadata.labels = Some(BTreeMap::from([(
            LABEL_TRIGGER_TYPE.to_string(),
            self.trigger.as_str().to_string(),
        )]));
        snapshot
    }
}

/// RFC 3339 (UTC) of epoch milliseconds, as snapshot status timestamps are written.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Epoch milliseconds of an RFC 3339 timestamp.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// The error of a store that keeps no `FlinkStateSnapshot`s.
pub(crate) fn unsupported_store(name: &str) -> StoreError {
    StoreError {
        message: format!(
            "cannot manage FlinkStateSnapshot {name}: this store has no FlinkStateSnapshot \
             resources; set kubernetes.operator.snapshot.resource.enabled: false to record \
             snapshots in the deployment status instead"
        ),
        transient: false,
    }
}
