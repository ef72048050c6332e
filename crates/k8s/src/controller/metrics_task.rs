//! Keeps the per-state gauges (`flinkpilot_resources`, `flinkpilot_jobmanager_deployments`)
//! current from the watch caches.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use api::{JobManagerDeploymentStatus, ResourceLifecycleState};
use kube::runtime::reflector::Store;

use crate::metrics::{Metrics, ResourceKind};
use crate::store::Guarded;

/// How often the gauges are recomputed.
const INTERVAL: Duration = Duration::from_secs(5);

/// Recomputes the gauges every [`INTERVAL`] until `shutdown` resolves.
pub(super) async fn run(
    caches: Vec<Store<Guarded>>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => update(&caches, &metrics),
        }
    }
}

/// Sets the gauges from what the caches hold.
pub(super) fn update(caches: &[Store<Guarded>], metrics: &Metrics) {
    let mut lifecycle: HashMap<ResourceLifecycleState, u64> = HashMap::new();
    let mut jobmanager: HashMap<JobManagerDeploymentStatus, u64> = HashMap::new();
    for obj in caches.iter().flat_map(Store::state) {
        let Ok(d) = &obj.0 else {
            *lifecycle.entry(ResourceLifecycleState::Failed).or_default() += 1;
            continue;
        };
        let status = d.status.clone().unwrap_or_default();
        let state = engine::lifecycle_state(&status, d.metadata.deletion_timestamp.is_some());
        *lifecycle.entry(state).or_default() += 1;
        if let Some(jm) = status.job_manager_deployment_status {
            *jobmanager.entry(jm).or_default() += 1;
        }
    }
    metrics.set_lifecycle_counts(ResourceKind::FlinkDeployment, lifecycle);
    metrics.set_jobmanager_status_counts(jobmanager);
}
