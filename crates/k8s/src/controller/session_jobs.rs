//! The controller for `FlinkSessionJob`s, next to the deployments' and snapshots' in the same
//! term (same client, fence, events, metrics, store and shutdown): kube-runtime
//! [`Controller`]s (one per watched namespace, or one for all) whose reconcile runs the
//! engine's session job pass — `engine::session_job::controller::reconcile_session_job`, the
//! same observe → decide → act as `flinkpilot local` — on the [`crate::store::K8sStore`].
//!
//! - A session job is woken when the `FlinkDeployment` it names (`spec.deploymentName`)
//!   changes: a second watch of the deployments, mapped through the session job cache to the
//!   jobs naming it, so a job waiting for its cluster is submitted once the cluster is READY.
//! - An object that does not read as a `FlinkSessionJob` is reported once per generation (a
//!   `ValidationError` event and `status.error`) and waits for a change; so does an invalid
//!   spec the engine refused (`Invalid spec, nothing was changed: …`) — nothing to observe
//!   until the spec changes.
//! - Failed passes back off per object like the deployments'.

use std::sync::Arc;

use api::FlinkSessionJob;
use engine::ResourceKey;
use engine::controller::PassResult;
use engine::session_job::controller::{SessionJobPassError, reconcile_session_job};
use engine::session_job::deployment_key;
use futures::future::{BoxFuture, Shared};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::watcher;

use super::{Parts, Term, backoff, scope};
use crate::metrics::ResourceKind;
use crate::store::{Guarded, GuardedSessionJob};

/// A session job reconcile that failed; the object is retried with backoff.
#[derive(Debug, thiserror::Error)]
#[error("reconciling FlinkSessionJob {key}: {source}")]
pub struct SessionJobReconcileError {
    /// The session job.
    pub key: ResourceKey,
    /// The failure.
    #[source]
    pub source: SessionJobPassError,
}

impl SessionJobReconcileError {
    /// A short, fixed category for metrics.
    fn category(&self) -> &'static str {
        match self.source {
            SessionJobPassError::Store(_) => "store",
            SessionJobPassError::Backend(_) => "backend",
        }
    }
}

/// The session job controllers of one term: one per watched namespace, or one for all. Each
/// also watches the `FlinkDeployment`s of its namespace and wakes the session jobs that name
/// one that changed.
pub(super) fn controllers(
    parts: &Parts,
    shutdown: &Shared<BoxFuture<'static, ()>>,
) -> Vec<Controller<GuardedSessionJob>> {
    scope::namespaces(&parts.settings)
        .into_iter()
        .map(|ns| {
            let ns = ns.as_deref();
            let controller = Controller::new(
                scope::api::<GuardedSessionJob>(&parts.client, ns),
                watcher::Config::default(),
            );
            let cache = controller.store();
            controller
                .watches(
                    scope::api::<Guarded>(&parts.client, ns),
                    watcher::Config::default(),
                    move |d: Guarded| {
                        let cluster = scope::key_of(&d);
                        scope::referring(&cache, |j| deployment_key(j).as_ref() == Some(&cluster))
                    },
                )
                .with_config(ControllerConfig::default().concurrency(parts.settings.concurrency))
                .graceful_shutdown_on(shutdown.clone())
        })
        .collect()
}

/// One pass over one session job.
pub(super) async fn reconcile(
    obj: Arc<GuardedSessionJob>,
    term: Arc<Term>,
) -> Result<Action, SessionJobReconcileError> {
    let key = scope::key_of(obj.as_ref());
    let guard = term
        .metrics
        .reconcile_started(ResourceKind::FlinkSessionJob);
    if !term.fence.is_open() {
        // leadership is ending; the controller is being stopped
        return Ok(Action::await_change());
    }
    let result = match &obj.0 {
        Err(invalid) => report_unreadable(&term, &key, invalid).await,
        Ok(_) => reconcile_session_job(&term.backend, &term.store, &term.engine, &key).await,
    };
    match result {
        Ok(PassResult::Gone) => {
            term.session_jobs.succeeded(&key);
            Ok(Action::await_change())
        }
        Ok(PassResult::Requeue(after)) => {
            term.session_jobs.succeeded(&key);
            if term.store.session_job_refused(&key) {
                // invalid and nothing recorded for it: waits for the spec to change
                return Ok(Action::await_change());
            }
            Ok(Action::requeue(after))
        }
        Err(source) => {
            let error = SessionJobReconcileError { key, source };
            guard.failed(error.category());
            Err(error)
        }
    }
}

/// Reports an object that does not read as a `FlinkSessionJob`, once per generation.
async fn report_unreadable(
    term: &Term,
    key: &ResourceKey,
    invalid: &kube::core::error_boundary::InvalidObject,
) -> Result<PassResult, SessionJobPassError> {
    term.session_jobs
        .report_unreadable_once::<FlinkSessionJob, _, _>(key, invalid, |reference| async move {
            term.store
                .report_unreadable_session_job(key, &reference, &invalid.error)
                .await
        })
        .await?;
    // waits for a change, like a deleted object
    Ok(PassResult::Gone)
}

/// Backs off per session job like the deployments.
pub(super) fn error_policy(
    obj: Arc<GuardedSessionJob>,
    error: &SessionJobReconcileError,
    term: Arc<Term>,
) -> Action {
    let key = scope::key_of(obj.as_ref());
    let failures = term.session_jobs.failed(&key);
    let wait = backoff(&term.settings, failures);
    tracing::warn!(session_job = %key, error = %error, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}
