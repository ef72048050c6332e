//! `FlinkSessionJob`s on the Kubernetes API: the engine's [`SessionJobStore`] on [`K8sStore`].
//!
//! The same rules as the deployments' and snapshots' stores (`store/tracked.rs`): reads from
//! the session job controller's watch caches unless the cache has not yet seen our own last
//! write (then from the API server); the status goes to the status subresource as a replace
//! guarded by the `resourceVersion` the decision was made from, re-read on `409` and retried
//! only while the stored status is unchanged; the finalizer
//! (`flinksessionjobs.flink.apache.org/finalizer`) is a merge patch guarded by the version.
//! Every write checks the fence first. A session job's session cluster is read from the
//! deployment caches without touching their bases (the job's pass never writes it).

use api::{FlinkDeployment, FlinkSessionJob, FlinkSessionJobStatus};
use engine::session_job::decide::INVALID;
use engine::session_job::{SESSION_JOB_FINALIZER, SessionJobStore};
use engine::{Event, ResourceKey, StoreError};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::DeserializeGuard;

use super::K8sStore;
use super::tracked::TrackedKind;

/// A `FlinkSessionJob` as the watch caches hold it: read, or kept with why it could not be.
pub type GuardedSessionJob = DeserializeGuard<FlinkSessionJob>;

impl TrackedKind for FlinkSessionJob {
    type Status = FlinkSessionJobStatus;

    fn status(&self) -> Option<&FlinkSessionJobStatus> {
        self.status.as_ref()
    }
}

impl K8sStore {
    /// The cached session job of `key`, if a session job cache holds it.
    pub fn cached_session_job(
        &self,
        key: &ResourceKey,
    ) -> Option<std::sync::Arc<GuardedSessionJob>> {
        self.session_jobs.cached(key)
    }

    /// Whether the engine refused the spec of the session job `key` as invalid and nothing was
    /// ever submitted for it (from the status the store last read or wrote; no API call).
    pub fn session_job_refused(&self, key: &ResourceKey) -> bool {
        self.session_jobs.known_base(key).is_some_and(|b| {
            b.status.as_ref().is_some_and(|s| {
                s.error.as_deref().is_some_and(|e| e.starts_with(INVALID))
                    && s.reconciliation_status
                        .as_ref()
                        .is_none_or(|r| r.is_before_first_deployment())
            })
        })
    }

    /// The names of the session jobs (as the caches hold them) that run in the session
    /// cluster `deployment`, sorted.
    pub fn session_jobs_of(&self, deployment: &ResourceKey) -> Vec<String> {
        let all = self.session_jobs.all();
        let mut names: Vec<String> = engine::session_job::jobs_of(&all, deployment)
            .filter_map(|j| j.metadata.name.clone())
            .collect();
        names.sort();
        names
    }

    /// Holds back the deletion of the session cluster `key` while the session jobs `jobs` name
    /// it (as the Apache operator does): a `CleanupFailed` warning and `status.error` naming
    /// them; the cluster is left alone.
    pub async fn hold_session_cluster(
        &self,
        key: &ResourceKey,
        status: &api::FlinkDeploymentStatus,
        jobs: &[String],
    ) -> Result<(), StoreError> {
        let message = format!(
            "FlinkDeployment {key} is the session cluster of FlinkSessionJob(s) {}; it is \
             deleted once they are",
            jobs.join(", ")
        );
        if status.error.as_deref() == Some(message.as_str()) {
            return Ok(());
        }
        let mut held = status.clone();
        held.error = Some(message.clone());
        self.deployments
            .write_status(&self.writer, key, &held)
            .await?;
        let event = Event::warning(engine::EventReason::CleanupFailed, message);
        self.deployments
            .record_events(&self.writer, key, &[event])
            .await
    }

    /// Whether this store reads session jobs (it was given the session job controller's
    /// caches).
    pub(super) fn keeps_session_jobs(&self) -> bool {
        self.session_jobs.cache_count() > 0
    }

    /// Reports an object that cannot be read as a `FlinkSessionJob`: a `ValidationError`
    /// event and `status.error` naming the field (nothing else is done with it).
    pub async fn report_unreadable_session_job(
        &self,
        key: &ResourceKey,
        reference: &ObjectReference,
        error: &str,
    ) -> Result<(), StoreError> {
        self.session_jobs
            .report_unreadable(
                &self.writer,
                key,
                reference,
                error,
                super::unreadable_message,
                super::unreadable_status,
            )
            .await
    }
}

impl SessionJobStore for K8sStore {
    /// Changes whenever a cached session job changes. The Kubernetes controller is driven by
    /// watches and never polls it.
    async fn session_job_revision(&self) -> Result<u64, StoreError> {
        Ok(self.session_jobs.revision())
    }

    async fn list_session_jobs(&self) -> Result<Vec<FlinkSessionJob>, StoreError> {
        Ok(self.session_jobs.all())
    }

    async fn get_session_job(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkSessionJob>, StoreError> {
        self.session_jobs.get(&self.writer, key).await
    }

    /// The session cluster as the caches hold it, without touching the deployments' bases.
    async fn get_session_deployment(
        &self,
        key: &ResourceKey,
    ) -> Result<Option<FlinkDeployment>, StoreError> {
        self.deployments.peek(&self.writer, key).await
    }

    async fn write_session_job_status(
        &self,
        key: &ResourceKey,
        status: &FlinkSessionJobStatus,
    ) -> Result<(), StoreError> {
        self.session_jobs
            .write_status(&self.writer, key, status)
            .await
    }

    async fn record_session_job_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.session_jobs
            .record_events(&self.writer, key, events)
            .await
    }

    async fn add_session_job_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.session_jobs
            .add_finalizer(&self.writer, key, SESSION_JOB_FINALIZER)
            .await
    }

    async fn remove_session_job_finalizer(&self, key: &ResourceKey) -> Result<(), StoreError> {
        self.session_jobs
            .remove_finalizer(&self.writer, key, SESSION_JOB_FINALIZER)
            .await
    }
}
