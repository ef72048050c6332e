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
use kube::runtime::watcher;

use super::{Parts, Term, backoff, scope};
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
    scope::namespaces(&parts.settings)
        .into_iter()
        .map(|ns| {
            let ns = ns.as_deref();
            let controller = Controller::new(
                scope::api::<GuardedSnapshot>(&parts.client, ns),
                watcher::Config::default(),
            );
            let cache = controller.store();
            let job_cache = cache.clone();
            controller
                .watches(
                    scope::api::<GuardedSessionJob>(&parts.client, ns),
                    watcher::Config::default(),
                    move |j: GuardedSessionJob| {
                        let job = scope::key_of(&j);
                        scope::referring(&job_cache, |s| {
                            engine::snapshot::session_job_key(s).as_ref() == Some(&job)
                        })
                    },
                )
                .watches(
                    scope::api::<Guarded>(&parts.client, ns),
                    watcher::Config::default(),
                    move |d: Guarded| {
                        let target = scope::key_of(&d);
                        scope::referring(&cache, |s| engine::snapshot::refers_to(s, &target))
                    },
                )
                .with_config(ControllerConfig::default().concurrency(parts.settings.concurrency))
                .graceful_shutdown_on(shutdown.clone())
        })
        .collect()
}

/// One pass over one snapshot.
pub(super) async fn reconcile(
    obj: Arc<GuardedSnapshot>,
    term: Arc<Term>,
) -> Result<Action, SnapshotReconcileError> {
    let key = scope::key_of(obj.as_ref());
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
    let key = scope::key_of(obj.as_ref());
    let failures = term.snapshots.failed(&key);
    let wait = backoff(&term.settings, failures);
    tracing::warn!(snapshot = %key, error = %error, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}
