//! `act`: persist the decided status first (write-ahead), then carry out the actions through
//! the backend and the JobManager's REST API, then persist what they changed.

use std::future::Future;

use api::{FlinkDeployment, FlinkDeploymentStatus};
use flink::{JobId, SavepointRequest, StopRequest, TriggerId};

use crate::action::{Action, Event, Outcome, SavepointCall};
use crate::backend::{ClusterBackend, ResourceKey};
use crate::decide::{Decision, apply_outcome};
use crate::failpoint::{self, Point};

/// The finalizer that keeps a resource until its cluster is gone (the Apache operator's name,
/// so resources move between the two operators unchanged).
pub const FINALIZER: &str = "flinkdeployments.flink.apache.org/finalizer";

/// A store operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    /// What failed, naming the object.
    pub message: String,
    /// Whether retrying may succeed (I/O, conflicts).
    pub transient: bool,
}

/// Where resources' status and events are persisted: the local file store, or the Kubernetes
/// status subresource and Events.
pub trait StatusStore: Send + Sync + 'static {
    /// Persists the status. Durable when it returns.
    fn write_status(
        &self,
        key: &ResourceKey,
        status: &FlinkDeploymentStatus,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records events (best effort: a lost event never stops a reconcile).
    fn record_events(
        &self,
        key: &ResourceKey,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds [`FINALIZER`] so a deletion waits for the cluster to be removed.
    fn add_finalizer(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes [`FINALIZER`]; a resource being deleted then disappears.
    fn finish_deletion(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a `FlinkStateSnapshot` (in its own namespace). One that exists already under
    /// that name is left as it is and counts as created.
    fn create_snapshot(
        &self,
        snapshot: &api::FlinkStateSnapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let name = snapshot.metadata.name.clone().unwrap_or_default();
        async move { Err(crate::snapshot::unsupported_store(&name)) }
    }

    /// Deletes a `FlinkStateSnapshot` (with Kubernetes semantics: it stays, marked for
    /// deletion, until its finalizer is removed). A missing one counts as deleted.
    fn delete_snapshot(
        &self,
        key: &ResourceKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let name = key.to_string();
        async move { Err(crate::snapshot::unsupported_store(&name)) }
    }
}

/// What one `act` did.
#[derive(Clone, Debug, PartialEq)]
pub struct ActReport {
    /// The status after the actions (as persisted).
    pub status: FlinkDeploymentStatus,
    /// Failures of actions: `(action name, message, transient)`.
    pub failures: Vec<(String, String, bool)>,
    /// The resource is gone (its deletion finished).
    pub removed: bool,
}

/// An `act` that could not persist what it must persist before going on.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// Writing the status (or the finalizer) failed; nothing after it was done.
    #[error("cannot persist the status of {key}: {source}")]
    Store {
        /// The resource.
        key: ResourceKey,
        /// The store's error.
        source: StoreError,
    },
}

/// Carries out a decision for `resource`.
pub async fn act<B: ClusterBackend, S: StatusStore>(
    backend: &B,
    store: &S,
    resource: &FlinkDeployment,
    decision: &Decision,
    now_ms: i64,
) -> Result<ActReport, ActError> {
    let key = crate::decide::resource_key(resource);
    let store_err = |source| ActError::Store {
        key: key.clone(),
        source,
    };
    let deleting = resource.metadata.deletion_timestamp.is_some();
    let has_finalizer = resource
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !deleting && !has_finalizer && !decision.actions.is_empty() {
        store.add_finalizer(&key).await.map_err(store_err)?;
    }
    let current = resource.status.clone().unwrap_or_default();
    if decision.status != current {
        store
            .write_status(&key, &decision.status)
            .await
            .map_err(store_err)?;
    }
    record(store, &key, &decision.events).await;
    failpoint::check(Point::AfterStatusWrite, &decision.actions);

    let mut status = decision.status.clone();
    let mut failures = Vec::new();
    let mut events = Vec::new();
    let mut removed = false;
    for action in &decision.actions {
        let outcome = run(backend, store, &key, action).await;
        if let Outcome::Failed { message, transient } = &outcome {
            tracing::warn!(resource = %key, action = action.name(), %message, "action failed");
            failures.push((action.name().to_string(), message.clone(), *transient));
        }
        if matches!(action, Action::FinishDeletion) && outcome == Outcome::Done {
            removed = true;
            continue;
        }
        let (next, new_events) = apply_outcome(&status, action, &outcome, now_ms);
        status = next;
        events.extend(new_events);
        if outcome != Outcome::Done {
            // The next pass decides again from what is observed.
            break;
        }
    }
    failpoint::check(Point::AfterAction, &decision.actions);
    if removed {
        return Ok(ActReport {
            status,
            failures,
            removed,
        });
    }
    if status != decision.status {
        store.write_status(&key, &status).await.map_err(store_err)?;
    }
    record(store, &key, &events).await;
    Ok(ActReport {
        status,
        failures,
        removed,
    })
}

async fn record<S: StatusStore>(store: &S, key: &ResourceKey, events: &[Event]) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = store.record_events(key, events).await {
        tracing::warn!(resource = %key, error = %e, "could not record events");
    }
}

/// Runs one action.
async fn run<B: ClusterBackend, S: StatusStore>(
    backend: &B,
    store: &S,
    key: &ResourceKey,
    action: &Action,
) -> Outcome {
    let backend_result = |r: Result<(), crate::BackendError>| match r {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed {
            transient: e.is_transient(),
            message: e.to_string(),
        },
    };
    match action {
        Action::Deploy(plan) => backend_result(backend.deploy(key, plan).await),
        Action::DeleteCluster => backend_result(backend.delete(key).await),
        Action::Scale { taskmanagers, .. } => {
            backend_result(backend.scale(key, *taskmanagers).await)
        }
        Action::StopWithSavepoint(call) => savepoint(backend, key, call, true).await,
        Action::TriggerSavepoint(call) => savepoint(backend, key, call, false).await,
        Action::CancelJob { job_id } => {
            let result = async {
                let client = backend.flink_client(key).map_err(|e| e.to_string())?;
                let job: JobId = job_id
                    .parse()
                    .map_err(|e: flink::ids::InvalidId| e.to_string())?;
                client.cancel_job(&job).await.map_err(|e| e.to_string())
            };
            flink_result(result.await)
        }
        Action::FinishDeletion => store_result(store.finish_deletion(key).await),
        Action::TriggerCheckpoint { job_id, trigger_id } => flink_result(
            crate::snapshot::act::trigger_checkpoint(backend, key, job_id, trigger_id).await,
        ),
        Action::DisposeSnapshot { path, via_flink } => {
            crate::snapshot::act::dispose(backend, key, path, *via_flink).await
        }
        Action::CreateSnapshotResource(snapshot) => {
            store_result(store.create_snapshot(snapshot).await)
        }
        Action::DeleteSnapshotResource { name } => {
            let snapshot = ResourceKey::new(key.namespace.clone(), name.clone());
            store_result(store.delete_snapshot(&snapshot).await)
        }
    }
}

fn store_result(result: Result<(), StoreError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed {
            message: e.message,
            transient: e.transient,
        },
    }
}

pub(crate) async fn savepoint<B: ClusterBackend>(
    backend: &B,
    key: &ResourceKey,
    call: &SavepointCall,
    stop: bool,
) -> Outcome {
    let result = async {
        let client = backend.flink_client(key).map_err(|e| e.to_string())?;
        let job: JobId = call
            .job_id
            .parse()
            .map_err(|e: flink::ids::InvalidId| e.to_string())?;
        let trigger: TriggerId = call
            .trigger_id
            .parse()
            .map_err(|e: flink::ids::InvalidId| e.to_string())?;
        let sent = if stop {
            let request = StopRequest {
                target_directory: call.target_dir.clone(),
                drain: call.drain,
                format_type: Some(call.format),
                trigger_id: Some(trigger),
            };
            client.trigger_stop(&job, &request).await
        } else {
            let request = SavepointRequest {
                target_directory: call.target_dir.clone(),
                cancel_job: false,
                format_type: Some(call.format),
                trigger_id: Some(trigger),
            };
            client.trigger_savepoint(&job, &request).await
        };
        sent.map(|_| ()).map_err(|e| e.to_string())
    };
    flink_result(result.await)
}

pub(crate) fn flink_result(result: Result<(), String>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        // The next pass observes the job and the trigger and decides again.
        Err(message) => Outcome::Failed {
            message,
            transient: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use api::{FlinkDeployment, ReconciliationState, UpgradeMode};

    use super::*;
    use crate::decide::{DecideInput, FreshIds, decide};
    use crate::observation::{ClusterObservation, JobObservation, Observation};
    use crate::plan::ClusterPlan;
    use crate::settings::Settings;
    use crate::{BackendError, ClusterObservation as Cluster};

    /// A store in memory; `fail_writes` makes every status write fail.
    #[derive(Default)]
    struct MemStore {
        status: Mutex<Option<FlinkDeploymentStatus>>,
        events: Mutex<Vec<Event>>,
        finalizer: Mutex<bool>,
        fail_writes: bool,
    }

    impl StatusStore for MemStore {
        async fn write_status(
            &self,
            _: &ResourceKey,
            status: &FlinkDeploymentStatus,
        ) -> Result<(), StoreError> {
            if self.fail_writes {
                return Err(StoreError {
                    message: "disk full".into(),
                    transient: true,
                });
            }
            *self.status.lock().unwrap() = Some(status.clone());
            Ok(())
        }
        async fn record_events(&self, _: &ResourceKey, events: &[Event]) -> Result<(), StoreError> {
            self.events.lock().unwrap().extend_from_slice(events);
            Ok(())
        }
        async fn add_finalizer(&self, _: &ResourceKey) -> Result<(), StoreError> {
            *self.finalizer.lock().unwrap() = true;
            Ok(())
        }
        async fn finish_deletion(&self, _: &ResourceKey) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// A backend that records, for each deploy, the status persisted at that moment.
    struct Recorder<'a> {
        store: &'a MemStore,
        seen: Mutex<Vec<(String, Option<FlinkDeploymentStatus>)>>,
    }

    impl ClusterBackend for Recorder<'static> {
        async fn observe(&self, _: &ResourceKey) -> Result<ClusterObservation, BackendError> {
            Ok(Cluster::Absent)
        }
        async fn deploy(&self, _: &ResourceKey, plan: &ClusterPlan) -> Result<(), BackendError> {
            let status = self.store.status.lock().unwrap().clone();
            self.seen
                .lock()
                .unwrap()
                .push((plan.job.as_ref().unwrap().job_id.clone(), status));
            Ok(())
        }
        async fn delete(&self, _: &ResourceKey) -> Result<(), BackendError> {
            Ok(())
        }
        async fn scale(&self, _: &ResourceKey, _: u32) -> Result<(), BackendError> {
            Ok(())
        }
        fn flink_client(&self, key: &ResourceKey) -> Result<flink::FlinkClient, BackendError> {
            Err(BackendError::Transient {
                key: key.clone(),
                message: "no REST in this test".into(),
            })
        }
        async fn snapshot_exists(&self, _: &str) -> Option<bool> {
            None
        }
        async fn latest_checkpoint_on_storage(&self, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    fn first_decision(d: &FlinkDeployment) -> crate::decide::Decision {
        let obs = Observation {
            cluster: Cluster::Absent,
            job: JobObservation::NotFound,
            trigger: None,
            latest_checkpoint: None,
            failure_cause: None,
            snapshots: Default::default(),
            progress: Default::default(),
        };
        decide(DecideInput {
            resource: d,
            observation: &obs,
            settings: &Settings::default(),
            now_ms: 1,
            fresh: &FreshIds::generate(),
        })
    }

    fn app() -> FlinkDeployment {
        FlinkDeployment::test("counter")
            .application()
            .with_upgrade_mode(UpgradeMode::Savepoint)
            .with_state_dirs("file:///fp")
    }

    #[tokio::test]
    async fn the_status_is_persisted_before_the_deploy_and_again_after_it() {
        let store: &'static MemStore = Box::leak(Box::default());
        let backend = Recorder {
            store,
            seen: Mutex::new(Vec::new()),
        };
        let d = app();
        let decision = first_decision(&d);
        let report = act(&backend, store, &d, &decision, 1).await.unwrap();
        let seen = backend.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let (job_id, at_deploy) = &seen[0];
        let at_deploy = at_deploy.clone().expect("status written before deploying");
        assert_eq!(
            at_deploy.job_status.unwrap().job_id.as_deref(),
            Some(job_id.as_str())
        );
        assert_eq!(
            at_deploy.reconciliation_status.unwrap().state,
            Some(ReconciliationState::Upgrading)
        );
        let after = store.status.lock().unwrap().clone().unwrap();
        assert_eq!(after, report.status);
        assert_eq!(
            after.reconciliation_status.unwrap().state,
            Some(ReconciliationState::Deployed)
        );
        assert!(
            *store.finalizer.lock().unwrap(),
            "finalizer added before acting"
        );
        assert!(!store.events.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn nothing_is_done_when_the_status_cannot_be_persisted() {
        let store: &'static MemStore = Box::leak(Box::new(MemStore {
            fail_writes: true,
            ..MemStore::default()
        }));
        let backend = Recorder {
            store,
            seen: Mutex::new(Vec::new()),
        };
        let d = app();
        let decision = first_decision(&d);
        let err = act(&backend, store, &d, &decision, 1).await.unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(backend.seen.lock().unwrap().is_empty());
    }
}
