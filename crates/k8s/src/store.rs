//! [`K8sStore`]: the engine's store on the Kubernetes API — resources read from the
//! controller's watch caches, status written to the status subresource, events through one
//! recorder, the finalizer patched in and out. `FlinkStateSnapshot`s (the engine's
//! `SnapshotStore`, and a deployment's snapshots, `store/snapshots.rs`) and `FlinkSessionJob`s
//! (the engine's `SessionJobStore`, `store/session_jobs.rs`) follow the same rules,
//! implemented once for every kind in `store/tracked.rs`.
//!
//! **Optimistic concurrency.** A status write carries the `resourceVersion` of the object the
//! decision was made from (or of our own previous write). On `409 Conflict` the object is read
//! again: if its status is still the one the decision was based on (someone changed the spec or
//! labels), the write is retried on the new version; if the status changed (another writer), the
//! write fails, nothing after it runs (the engine acts only on persisted status), and the next
//! pass decides again from what is stored.
//!
//! **Reading your own writes.** The watch cache may not have seen our last write yet. The
//! store remembers the `resourceVersion` it wrote last per resource; while the cache holds
//! another version, `get` reads the object from the API server instead.
//!
//! **Finalizer.** On Kubernetes, owner references make the garbage collector delete every
//! child with its `FlinkDeployment`, so the finalizer is only added when deletion needs the
//! operator (see [`needs_finalizer`]); the engine asks for it before its first action.

mod session_jobs;
mod snapshots;
mod tracked;

use api::{FlinkDeployment, FlinkDeploymentStatus};
use engine::{Event, FINALIZER, ResourceKey, ResourceStore, StatusStore, StoreError};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::EventPublisher;
use crate::leader::Fence;

pub use session_jobs::GuardedSessionJob;
pub use snapshots::GuardedSnapshot;
use tracked::{Tracked, TrackedKind, Writer};

/// A `FlinkDeployment` as the watch caches hold it: read, or kept with why it could not be.
pub type Guarded = DeserializeGuard<FlinkDeployment>;

/// Operator option: stop the job with a savepoint before deleting it (Apache).
pub const SAVEPOINT_ON_DELETION: &str = "kubernetes.operator.job.savepoint-on-deletion";

/// Whether deleting `d` needs the operator before the object may go, so it gets the
/// finalizer:
/// - `kubernetes.operator.job.savepoint-on-deletion: true` — the job is stopped with a
///   savepoint first;
/// - high availability — Flink keeps its HA ConfigMaps after its JobManager is gone (they are
///   owned by nothing), and the operator deletes them with the cluster;
///
/// Anything else is deleted by the garbage collector through owner references.
pub fn needs_finalizer(d: &FlinkDeployment) -> bool {
    let config = d.spec.flink_config();
    let flag = config
        .get_bool(SAVEPOINT_ON_DELETION)
        .ok()
        .flatten()
        .unwrap_or(false);
    let ha = ["high-availability.type", "high-availability"]
        .iter()
        .find_map(|k| config.get(k))
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("none"));
    flag || ha
}

impl TrackedKind for FlinkDeployment {
    type Status = FlinkDeploymentStatus;

    fn status(&self) -> Option<&FlinkDeploymentStatus> {
        self.status.as_ref()
    }

    fn wants_finalizer(&self) -> bool {
        needs_finalizer(self)
    }
}

/// The engine's store on the Kubernetes API (see the module docs).
pub struct K8sStore {
    writer: Writer,
    deployments: Tracked<FlinkDeployment>,
    snapshots: Tracked<api::FlinkStateSnapshot>,
    session_jobs: Tracked<api::FlinkSessionJob>,
}

impl std::fmt::Debug for K8sStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sStore")
            .field("caches", &self.deployments.cache_count())
            .finish_non_exhaustive()
    }
}

impl K8sStore {
    /// A store reading from the controller's `caches` (one per watched namespace, or one for
    /// all) and writing through `client` while `fence` is open.
    pub fn new(
        client: Client,
        caches: Vec<Store<Guarded>>,
        events: EventPublisher,
        fence: Fence,
        field_manager: &str,
    ) -> Self {
        K8sStore {
            writer: Writer {
                client,
                events,
                fence,
                field_manager: field_manager.to_string(),
            },
            deployments: Tracked::new(caches),
            snapshots: Tracked::new(Vec::new()),
            session_jobs: Tracked::new(Vec::new()),
        }
    }

    /// Reads `FlinkStateSnapshot`s from the snapshot controller's `caches`: a deployment's
    /// pass sees its snapshot resources, and the snapshot controller's passes run on this
    /// store. Without them a deployment sees no snapshot resources.
    pub fn with_snapshot_caches(mut self, caches: Vec<Store<GuardedSnapshot>>) -> Self {
        self.snapshots = Tracked::new(caches);
        self
    }

    /// Reads `FlinkSessionJob`s from the session job controller's `caches`: its passes run on
    /// this store, and snapshots of session jobs can be taken. Without them the store keeps no
    /// session jobs (a snapshot of one is refused as unsupported).
    pub fn with_session_job_caches(mut self, caches: Vec<Store<GuardedSessionJob>>) -> Self {
        self.session_jobs = Tracked::new(caches);
        self
    }

    /// The cached object of `key`, if a cache holds it.
    pub fn cached(&self, key: &ResourceKey) -> Option<std::sync::Arc<Guarded>> {
        self.deployments.cached(key)
    }

    /// Whether `key` has no deployed spec yet and its status holds an error: an invalid new
    /// resource, which waits for its spec to change.
    pub fn failed_before_first_deployment(&self, key: &ResourceKey) -> bool {
        self.deployments.known_base(key).is_some_and(|b| {
            b.status.as_ref().is_some_and(|s| {
                s.error.is_some()
                    && s.reconciliation_status
                        .as_ref()
                        .is_none_or(|r| r.is_before_first_deployment())
            })
        })
    }

    /// Adds the finalizer to `d` when deleting it needs the operator and it has none (the
    /// engine only asks before an action; an option switched on later is honoured here): the
    /// options of [`needs_finalizer`], and a session cluster that session jobs name (its
    /// deletion waits for theirs).
    pub async fn ensure_finalizer(&self, d: &FlinkDeployment) -> Result<(), StoreError> {
        let deployed = d
            .status
            .as_ref()
            .and_then(|s| s.reconciliation_status.as_ref())
            .is_some_and(|r| !r.is_before_first_deployment());
        let key = engine::decide::resource_key(d);
        let has_jobs = || d.spec.job.is_none() && !self.session_jobs_of(&key).is_empty();
        if d.metadata.deletion_timestamp.is_none()
            && deployed
            && (needs_finalizer(d) || has_jobs())
            && !d.finalizers().iter().any(|f| f == FINALIZER)
        {
            self.deployments
                .add_finalizer(&self.writer, &key, FINALIZER)
                .await?;
        }
        Ok(())
    }

    /// Reports an object that cannot be read as a `FlinkDeployment`: a `ValidationError`
    /// event and `status.error` naming the field (best effort; nothing else is done with it).
    pub async fn report_unreadable(
        &self,
        key: &ResourceKey,
        reference: &ObjectReference,
        error: &str,
    ) -> Result<(), StoreError> {
        self.deployments
            .report_unreadable(
                &self.writer,
                key,
                reference,
                error,
                unreadable_message,
                unreadable_status,
            )
            .await
    }
}

impl StatusStore for K8sStore {
    async fn write_status(
        &self,
        key: &ResourceKey,
        status: &FlinkDeploymentStatus,
    ) -> Result<(), StoreError> {
        self.deployments
            .write_status(&self.writer, key, status)
            .await
    }

    async fn record_events(&self, key: &ResourceKey, events: &[Event]) -> Result<(), StoreError> {
        self.deployments
            .record_events(&self.writer, key, events)
            .await
    }

    async fn add_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        if !self
            .deployments
            .base(&self.writer, key)
            .await?
            .wants_finalizer
        {
            return Ok(());
        }
        self.deployments
            .add_finalizer(&self.writer, key, FINALIZER)
            .await
    }

    async fn finish_deletion(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.deployments
            .remove_finalizer(&self.writer, key, FINALIZER)
            .await
    }

    async fn create_snapshot(&self, snapshot: &api::FlinkStateSnapshot) -> Result<(), StoreError> {
        self.create_snapshot_resource(snapshot).await
    }

    async fn delete_snapshot(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.delete_snapshot_resource(key).await
    }
}

impl ResourceStore for K8sStore {
    /// Changes whenever a cached object changes. The Kubernetes controller is driven by
    /// watches and never polls it.
    async fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.deployments.revision())
    }

    async fn list(&self) -> Result<Vec<FlinkDeployment>, StoreError> {
        Ok(self.deployments.all())
    }

    async fn get(&self, key: &ResourceKey) -> Result<Option<FlinkDeployment>, StoreError> {
        self.deployments.get(&self.writer, key).await
    }

    async fn snapshots_of(
        &self,
        key: &ResourceKey,
    ) -> Result<Vec<api::FlinkStateSnapshot>, StoreError> {
        Ok(self.snapshots_referring_to(key))
    }
}

/// What a `FlinkDeployment` or `FlinkSessionJob` that cannot be read is told, `why` naming the
/// field.
fn unreadable_message(why: &str) -> String {
    format!("Invalid spec, nothing was changed: the object cannot be read: {why}")
}

/// The status of a `FlinkDeployment` or `FlinkSessionJob` that cannot be read.
fn unreadable_status(message: &str) -> serde_json::Value {
    json!({"error": message, "lifecycleState": "FAILED"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deletions_that_need_the_operator_get_the_finalizer() {
        let app = FlinkDeployment::test("a").application();
        assert!(!needs_finalizer(&app), "children go with their owner");
        assert!(needs_finalizer(
            &app.clone().with_config(SAVEPOINT_ON_DELETION, "true")
        ));
        assert!(!needs_finalizer(
            &app.clone().with_config(SAVEPOINT_ON_DELETION, "false")
        ));
        assert!(needs_finalizer(
            &app.clone()
                .with_config("high-availability.type", "kubernetes")
        ));
        assert!(!needs_finalizer(
            &app.clone().with_config("high-availability.type", "NONE")
        ));
        assert!(
            !needs_finalizer(&FlinkDeployment::test("session")),
            "a session cluster goes with its owner too (unless session jobs name it: the store)"
        );
    }
}
