//! The controller for `FlinkStateSnapshot`s, next to the deployments' in the same term (same
//! client, fence, events, metrics, store and shutdown): kube-runtime [`Controller`]s (one per
//! watched namespace, or one for all) whose reconcile runs the engine's snapshot pass —
//! `engine::snapshot::controller::reconcile_snapshot`, the same observe → decide → act as
//! `flinkpilot local` — on the [`crate::store::K8sStore`].
//!
//! - A snapshot is woken when the `FlinkDeployment` or `FlinkSessionJob` it refers to changes
//!   (another watch of each, mapped through the snapshot cache to the snapshots naming it):
//!   the engine abandons a snapshot whose job stops running.
//! - An object that does not read as a `FlinkStateSnapshot` is reported once per generation
//!   (a `ValidationError` event and `status.error`) and waits for a change.
//! - Failed passes back off per object like the deployments'.

use std::sync::Arc;

use api::FlinkStateSnapshot;
use engine::controller::PassResult;
use engine::{ResourceKey, StoreError};
use futures::future::{BoxFuture, Shared};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::{Parts, Term, backoff};
use crate::metrics::ResourceKind;
use crate::store::{Guarded, GuardedSessionJob, GuardedSnapshot};

/// A snapshot reconcile that failed; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
#[error("reconciling FlinkStateSnapshot {key}: {source}")]
pub struct SnapshotReconcileError {
    /// The snapshot.
    pub key: ResourceKey,
    /// The failure.
    #[source]
    pub source: StoreError,
}

/// The snapshot controllers of one term: one per watched namespace, or one for all. Each also
/// watches the `FlinkDeployment`s of its namespace and wakes the snapshots that name one that
/// changed.
pub(super) fn controllers(
    parts: &Parts,
    shutdown: &Shared<BoxFuture<'static, ()>>,
) -> Vec<Controller<GuardedSnapshot>> {
    let namespaces: Vec<Option<&str>> = if parts.settings.namespaces.is_empty() {
        vec![None]
    } else {
        parts
            .settings
            .namespaces
            .iter()
            .map(|ns| Some(ns.as_str()))
            .collect()
    };
    namespaces
        .into_iter()
        .map(|ns| {
            let (snapshots, deployments, jobs): (
                Api<GuardedSnapshot>,
                Api<Guarded>,
                Api<GuardedSessionJob>,
            ) = match ns {
                Some(ns) => (
                    Api::namespaced(parts.client.clone(), ns),
                    Api::namespaced(parts.client.clone(), ns),
                    Api::namespaced(parts.client.clone(), ns),
                ),
                None => (
                    Api::all(parts.client.clone()),
                    Api::all(parts.client.clone()),
                    Api::all(parts.client.clone()),
                ),
            };
            let controller = Controller::new(snapshots, watcher::Config::default());
            let cache = controller.store();
            let job_cache = cache.clone();
            controller
                .watches(
                    jobs,
                    watcher::Config::default(),
                    move |j: GuardedSessionJob| {
                        let job = ResourceKey::new(
                            j.namespace().unwrap_or_else(|| "default".into()),
                            j.name_any(),
                        );
                        job_cache
                            .state()
                            .into_iter()
                            .filter(|s| {
                                s.0.as_ref().is_ok_and(|s| {
                                    engine::snapshot::session_job_key(s).as_ref() == Some(&job)
                                })
                            })
                            .map(|s| ObjectRef::from_obj(s.as_ref()))
                            .collect::<Vec<_>>()
                    },
                )
                .watches(
                    deployments,
                    watcher::Config::default(),
                    move |d: Guarded| {
                        let target = ResourceKey::new(
                            d.namespace().unwrap_or_else(|| "default".into()),
                            d.name_any(),
                        );
                        cache
                            .state()
                            .into_iter()
                            .filter(|s| {
                                s.0.as_ref()
                                    .is_ok_and(|s| engine::snapshot::refers_to(s, &target))
                            })
                            .map(|s| ObjectRef::from_obj(s.as_ref()))
                            .collect::<Vec<_>>()
                    },
                )
                .with_config(ControllerConfig::default().concurrency(parts.settings.concurrency))
                .graceful_shutdown_on(shutdown.clone())
        })
        .collect()
}

fn key_of(obj: &GuardedSnapshot) -> ResourceKey {
    ResourceKey::new(
        obj.namespace().unwrap_or_else(|| "default".into()),
        obj.name_any(),
    )
}

/// One pass over one snapshot.
pub(super) async fn reconcile(
    obj: Arc<GuardedSnapshot>,
    term: Arc<Term>,
) -> Result<Action, SnapshotReconcileError> {
    let key = key_of(&obj);
    let guard = term
        .metrics
        .reconcile_started(ResourceKind::FlinkStateSnapshot);
    if !term.fence.is_open() {
        // leadership is ending; the controller is being stopped
        return Ok(Action::await_change());
    }
    let result = match &obj.0 {
        Err(invalid) => report_unreadable(&term, &key, invalid).await,
        Ok(_) => {
            engine::snapshot::controller::reconcile_snapshot(
                &term.backend,
                &term.store,
                &term.engine,
                &key,
            )
            .await
        }
    };
    match result {
        Ok(PassResult::Gone) => {
            term.snapshots.succeeded(&key);
            Ok(Action::await_change())
        }
        Ok(PassResult::Requeue(after)) => {
            term.snapshots.succeeded(&key);
            Ok(Action::requeue(after))
        }
        Err(source) => {
            guard.failed("store");
            Err(SnapshotReconcileError { key, source })
        }
    }
}

/// Reports an object that does not read as a `FlinkStateSnapshot`, once per generation.
async fn report_unreadable(
    term: &Term,
    key: &ResourceKey,
    invalid: &kube::core::error_boundary::InvalidObject,
) -> Result<PassResult, StoreError> {
    term.snapshots
        .report_unreadable_once::<FlinkStateSnapshot, _, _>(key, invalid, |reference| async move {
            term.store
                .report_unreadable_snapshot(key, &reference, &invalid.error)
                .await
        })
        .await?;
    // waits for a change, like a deleted object
    Ok(PassResult::Gone)
}

/// Backs off per snapshot like the deployments.
pub(super) fn error_policy(
    obj: Arc<GuardedSnapshot>,
    error: &SnapshotReconcileError,
    term: Arc<Term>,
) -> Action {
    let key = key_of(&obj);
    let failures = term.snapshots.failed(&key);
    let wait = backoff(&term.settings, failures);
    tracing::warn!(snapshot = %key, error = %error, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}
