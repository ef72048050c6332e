//! The Kubernetes controller for `FlinkDeployment`s: kube-runtime [`Controller`]s (one per
//! watched namespace, or one for all) whose reconcile runs the engine's pass —
//! `engine::controller::reconcile`, the same observe → decide → act as `flinkpilot local` —
//! with the [`K8sBackend`] and the [`K8sStore`].
//!
//! - The watch reads objects through [`DeserializeGuard`]: an object that does not read as a
//!   `FlinkDeployment` is reported (a `ValidationError` event and `status.error`) once per
//!   generation and waits for a change; it never stops the watch of the others.
//! - JobManager and TaskManager Deployments (metadata only) wake their owner when they change;
//!   a `FlinkSessionJob` wakes the session cluster it names.
//! - A session cluster named by session jobs gets the finalizer, and its deletion waits until
//!   they are gone (a `CleanupFailed` warning and `status.error` name them), as in the Apache
//!   operator.
//! - While a JobManager Deployment has no ready replica, the resource is polled at most every
//!   `starting_requeue`; the Deployment's status change wakes it at once.
//! - Failed passes back off per object, doubling from `backoff_start` to `backoff_max`; an
//!   invalid new resource waits for its spec to change (`await_change`).
//! - At most `concurrency` passes run at once per controller; one object is never reconciled
//!   twice at the same time.
//! - [`run`] returns once `shutdown` resolves and the passes in flight have finished.
//!
//! `FlinkStateSnapshot`s and `FlinkSessionJob`s are reconciled next to this by the controllers
//! of [`snapshots`] and [`session_jobs`], in the same term (same [`Term`]: store, backend,
//! fence, metrics).

mod metrics_task;
mod per_object;
mod scope;
mod session_jobs;
mod snapshots;

pub use session_jobs::SessionJobReconcileError;
pub use snapshots::SnapshotReconcileError;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::FlinkDeployment;
use engine::controller::{PassError, PassResult};
use engine::{ResourceKey, Settings, StoreError};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::backend::K8sBackend;
use crate::events::EventPublisher;
use crate::leader::Fence;
use crate::metrics::{Metrics, ResourceKind};
use crate::resources::labels::{MANAGED_BY, MANAGED_BY_VALUE};
use crate::store::{Guarded, GuardedSessionJob, GuardedSnapshot, K8sStore};
use per_object::PerObject;

/// Settings of the controller itself (the engine's timing is in [`Settings`]).
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    /// Only `FlinkDeployment`s matching this label selector are reconciled.
    pub label_selector: Option<String>,
    /// Passes running at once, per controller.
    pub concurrency: u16,
    /// First wait after a failed pass; doubled per consecutive failure.
    pub backoff_start: Duration,
    /// Longest wait after failures.
    pub backoff_max: Duration,
    /// Field manager of the store's writes.
    pub field_manager: String,
    /// Shortest wait before the next pass while a JobManager Deployment has no ready replica:
    /// its status changes wake the resource anyway, so polling it sooner only loads the API
    /// server (1,000 starting clusters at the engine's 250 ms would be 4,000 passes a second).
    pub starting_requeue: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            namespaces: Vec::new(),
            label_selector: None,
            concurrency: 16,
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            field_manager: crate::backend::FIELD_MANAGER.to_string(),
            starting_requeue: Duration::from_secs(5),
        }
    }
}

/// What every pass of one leadership term shares.
pub struct Term {
    store: K8sStore,
    backend: K8sBackend,
    engine: Arc<Settings>,
    settings: ControllerSettings,
    fence: Fence,
    metrics: Metrics,
    /// Failures and reported unreadable generations of the `FlinkDeployment`s.
    deployments: PerObject,
    /// The same for the `FlinkStateSnapshot`s.
    snapshots: PerObject,
    /// The same for the `FlinkSessionJob`s.
    session_jobs: PerObject,
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term").finish_non_exhaustive()
    }
}

/// A reconcile that failed; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The engine's pass failed.
    #[error("reconciling FlinkDeployment {key}: {source}")]
    Pass {
        /// The resource.
        key: ResourceKey,
        /// The failure.
        #[source]
        source: PassError,
    },
    /// Reading or writing the resource failed.
    #[error("reconciling FlinkDeployment {key}: {source}")]
    Store {
        /// The resource.
        key: ResourceKey,
        /// The failure.
        #[source]
        source: StoreError,
    },
}

impl ReconcileError {
    /// A short, fixed category for metrics.
    fn category(&self) -> &'static str {
        match self {
            ReconcileError::Pass { source, .. } => match source {
                PassError::Store(_) => "store",
                PassError::Backend(_) => "backend",
                PassError::Act(_) => "status_write",
                PassError::Action(_) => "action",
            },
            ReconcileError::Store { .. } => "store",
        }
    }
}

/// The parts a controller drives.
pub struct Parts {
    /// The API client.
    pub client: Client,
    /// The backend (shared across terms).
    pub backend: K8sBackend,
    /// The one event recorder.
    pub events: EventPublisher,
    /// Open while this replica may write.
    pub fence: Fence,
    /// The operator's metrics.
    pub metrics: Metrics,
    /// The engine's settings.
    pub engine: Arc<Settings>,
    /// The controller's settings.
    pub settings: ControllerSettings,
}

/// Reconciles `FlinkDeployment`s, `FlinkStateSnapshot`s and `FlinkSessionJob`s until
/// `shutdown` resolves, then lets the passes in flight finish. `synced` is called once every
/// watch has listed its objects. The kinds share one store (a deployment's pass sees its
/// snapshot resources from the snapshot caches, a snapshot of a session job its session job
/// from the session job caches), the fence, events, metrics and the shutdown.
pub async fn run(
    parts: &Parts,
    shutdown: impl Future<Output = ()> + Send + 'static,
    synced: impl FnOnce() + Send + 'static,
) {
    let shutdown: Shared<BoxFuture<'static, ()>> = shutdown.boxed().shared();
    let mut watch = watcher::Config::default();
    if let Some(selector) = &parts.settings.label_selector {
        watch = watch.labels(selector);
    }
    let children = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"));
    let controllers: Vec<Controller<Guarded>> = scope::namespaces(&parts.settings)
        .into_iter()
        .map(|ns| {
            let ns = ns.as_deref();
            Controller::new(scope::api::<Guarded>(&parts.client, ns), watch.clone())
                .owns(
                    scope::api::<Deployment>(&parts.client, ns),
                    children.clone(),
                )
                // a session job wakes its session cluster: the finalizer that holds the
                // cluster's deletion while jobs name it, and the deletion once none does
                .watches(
                    scope::api::<GuardedSessionJob>(&parts.client, ns),
                    watcher::Config::default(),
                    |j: GuardedSessionJob| {
                        j.0.as_ref()
                            .ok()
                            .and_then(engine::session_job::deployment_key)
                            .map(|k| ObjectRef::new(&k.name).within(&k.namespace))
                    },
                )
                .with_config(ControllerConfig::default().concurrency(parts.settings.concurrency))
                .graceful_shutdown_on(shutdown.clone())
        })
        .collect();
    let caches: Vec<Store<Guarded>> = controllers.iter().map(Controller::store).collect();
    let snapshot_controllers = snapshots::controllers(parts, &shutdown);
    let snapshot_caches: Vec<Store<GuardedSnapshot>> =
        snapshot_controllers.iter().map(Controller::store).collect();
    let session_job_controllers = session_jobs::controllers(parts, &shutdown);
    let session_job_caches: Vec<Store<GuardedSessionJob>> = session_job_controllers
        .iter()
        .map(Controller::store)
        .collect();
    let term = Arc::new(Term {
        store: K8sStore::new(
            parts.client.clone(),
            caches.clone(),
            parts.events.clone(),
            parts.fence.clone(),
            &parts.settings.field_manager,
        )
        .with_snapshot_caches(snapshot_caches.clone())
        .with_session_job_caches(session_job_caches.clone()),
        backend: parts.backend.clone(),
        engine: parts.engine.clone(),
        settings: parts.settings.clone(),
        fence: parts.fence.clone(),
        metrics: parts.metrics.clone(),
        deployments: PerObject::default(),
        snapshots: PerObject::default(),
        session_jobs: PerObject::default(),
    });
    let gauges = metrics_task::run(
        caches.clone(),
        snapshot_caches.clone(),
        session_job_caches.clone(),
        parts.metrics.clone(),
        shutdown.clone(),
    );
    let ready = {
        let caches = caches.clone();
        async move {
            // a store whose writer is gone never syncs; the controller stops then too
            for cache in &caches {
                let _ = cache.wait_until_ready().await;
            }
            for cache in &snapshot_caches {
                let _ = cache.wait_until_ready().await;
            }
            for cache in &session_job_caches {
                let _ = cache.wait_until_ready().await;
            }
            synced();
        }
    };
    let loops = futures::future::join_all(controllers.into_iter().map(|c| {
        c.run(reconcile, error_policy, term.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    log_controller_error(&e);
                }
            })
    }));
    let snapshot_loops = futures::future::join_all(snapshot_controllers.into_iter().map(|c| {
        c.run(snapshots::reconcile, snapshots::error_policy, term.clone())
            .for_each(|result| async move {
                if let Err(e) = result {
                    log_controller_error(&e);
                }
            })
    }));
    let session_job_loops =
        futures::future::join_all(session_job_controllers.into_iter().map(|c| {
            c.run(
                session_jobs::reconcile,
                session_jobs::error_policy,
                term.clone(),
            )
            .for_each(|result| async move {
                if let Err(e) = result {
                    log_controller_error(&e);
                }
            })
        }));
    tokio::join!(ready, gauges, loops, snapshot_loops, session_job_loops);
}

fn log_controller_error<E: std::error::Error>(e: &E) {
    // kube-runtime's errors: the reconcile's own (already logged in the error policy), object
    // not found in the cache (deleted meanwhile), and watch failures (retried with backoff)
    tracing::debug!(error = %e, "controller");
}

/// One pass over one object.
async fn reconcile(obj: Arc<Guarded>, term: Arc<Term>) -> Result<Action, ReconcileError> {
    let key = scope::key_of(obj.as_ref());
    let guard = term
        .metrics
        .reconcile_started(ResourceKind::FlinkDeployment);
    if !term.fence.is_open() {
        // leadership is ending; the controller is being stopped
        return Ok(Action::await_change());
    }
    let result = match &obj.0 {
        Err(invalid) => report_unreadable(&term, &key, invalid).await,
        Ok(d) => pass(&term, &key, d).await,
    };
    match &result {
        Ok(_) => term.deployments.succeeded(&key),
        Err(e) => guard.failed(e.category()),
    }
    result
}

async fn pass(
    term: &Term,
    key: &ResourceKey,
    d: &FlinkDeployment,
) -> Result<Action, ReconcileError> {
    term.store
        .ensure_finalizer(d)
        .await
        .map_err(|source| ReconcileError::Store {
            key: key.clone(),
            source,
        })?;
    if d.metadata.deletion_timestamp.is_some() && d.spec.job.is_none() {
        // as the Apache operator: a session cluster stays while session jobs name it; their
        // deletion wakes it (the session job watch below)
        let jobs = term.store.session_jobs_of(key);
        if !jobs.is_empty() {
            let status = d.status.clone().unwrap_or_default();
            term.store
                .hold_session_cluster(key, &status, &jobs)
                .await
                .map_err(|source| ReconcileError::Store {
                    key: key.clone(),
                    source,
                })?;
            return Ok(Action::requeue(term.engine.retry_interval));
        }
    }
    let result = engine::controller::reconcile(&term.backend, &term.store, &term.engine, key).await;
    match result {
        Ok(PassResult::Gone) => Ok(Action::await_change()),
        Ok(PassResult::Requeue(after)) => {
            if term.store.failed_before_first_deployment(key) {
                // invalid and never deployed: nothing to observe until the spec changes
                return Ok(Action::await_change());
            }
            if term.backend.take_refused(key) {
                // the API server refused what the spec asks for; retried now and then
                return Ok(Action::requeue(after.max(term.engine.retry_interval)));
            }
            if term.backend.is_starting(key) {
                return Ok(Action::requeue(after.max(term.settings.starting_requeue)));
            }
            Ok(Action::requeue(after))
        }
        Err(source) => Err(ReconcileError::Pass {
            key: key.clone(),
            source,
        }),
    }
}

/// Reports an object that does not read as a `FlinkDeployment`, once per generation.
async fn report_unreadable(
    term: &Term,
    key: &ResourceKey,
    invalid: &kube::core::error_boundary::InvalidObject,
) -> Result<Action, ReconcileError> {
    term.deployments
        .report_unreadable_once::<FlinkDeployment, _, _>(key, invalid, |reference| async move {
            term.store
                .report_unreadable(key, &reference, &invalid.error)
                .await
        })
        .await
        .map_err(|source| ReconcileError::Store {
            key: key.clone(),
            source,
        })?;
    Ok(Action::await_change())
}

/// Backs off per object: `backoff_start · 2^(failures-1)`, capped at `backoff_max`.
fn error_policy(obj: Arc<Guarded>, error: &ReconcileError, term: Arc<Term>) -> Action {
    let key = scope::key_of(obj.as_ref());
    let failures = term.deployments.failed(&key);
    let wait = backoff(&term.settings, failures);
    tracing::warn!(resource = %key, error = %error, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

fn backoff(settings: &ControllerSettings, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    settings
        .backoff_start
        .saturating_mul(factor)
        .min(settings.backoff_max)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap() {
        let s = ControllerSettings::default();
        assert_eq!(backoff(&s, 1), Duration::from_secs(1));
        assert_eq!(backoff(&s, 3), Duration::from_secs(4));
        assert_eq!(backoff(&s, 7), Duration::from_secs(60));
        assert_eq!(backoff(&s, 1000), Duration::from_secs(60));
    }
}
