//! Keeps the per-state gauges (`flinkpilot_resources` for `FlinkDeployment`s,
//! `FlinkSessionJob`s and `FlinkStateSnapshot`s, `flinkpilot_jobmanager_deployments`) current
//! from the watch caches.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use api::{FlinkStateSnapshotState, JobManagerDeploymentStatus, ResourceLifecycleState};
use kube::runtime::reflector::Store;

use crate::metrics::{Metrics, ResourceKind};
use crate::store::{Guarded, GuardedSessionJob, GuardedSnapshot};

/// How often the gauges are recomputed.
const INTERVAL: Duration = Duration::from_secs(5);

/// Recomputes the gauges every [`INTERVAL`] until `shutdown` resolves.
pub(super) async fn run(
    caches: Vec<Store<Guarded>>,
    snapshot_caches: Vec<Store<GuardedSnapshot>>,
    session_job_caches: Vec<Store<GuardedSessionJob>>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {
                update(&caches, &metrics);
                update_snapshots(&snapshot_caches, &metrics);
                update_session_jobs(&session_job_caches, &metrics);
            }
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

/// Sets the session job gauges: per `lifecycleState` as derived from the status, like the
/// deployments'; one that cannot be read is `FAILED`.
pub(super) fn update_session_jobs(caches: &[Store<GuardedSessionJob>], metrics: &Metrics) {
    let mut lifecycle: HashMap<ResourceLifecycleState, u64> = HashMap::new();
    for obj in caches.iter().flat_map(Store::state) {
        let state = match &obj.0 {
            Ok(j) => engine::lifecycle::session_job_lifecycle_state(
                &j.status.clone().unwrap_or_default(),
                j.metadata.deletion_timestamp.is_some(),
            ),
            Err(_) => ResourceLifecycleState::Failed,
        };
        *lifecycle.entry(state).or_default() += 1;
    }
    metrics.set_lifecycle_counts(ResourceKind::FlinkSessionJob, lifecycle);
}

/// Sets the snapshot gauges: per `status.state`; a snapshot without one yet is waiting to be
/// triggered (`TRIGGER_PENDING`, as the engine reads it), one that cannot be read is `FAILED`.
pub(super) fn update_snapshots(caches: &[Store<GuardedSnapshot>], metrics: &Metrics) {
    let mut states: HashMap<FlinkStateSnapshotState, u64> = HashMap::new();
    for obj in caches.iter().flat_map(Store::state) {
        let state = match &obj.0 {
            Ok(s) => s
                .status
                .as_ref()
                .and_then(|st| st.state)
                .unwrap_or(FlinkStateSnapshotState::TriggerPending),
            Err(_) => FlinkStateSnapshotState::Failed,
        };
        *states.entry(state).or_default() += 1;
    }
    metrics.set_snapshot_counts(states);
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{FlinkStateSnapshot, FlinkStateSnapshotStatus, JobKind};
    use kube::runtime::{reflector, watcher};
    use prometheus_client::registry::Registry;

    fn snapshot(name: &str, state: Option<FlinkStateSnapshotState>) -> GuardedSnapshot {
        let mut s = FlinkStateSnapshot::test_savepoint(name, JobKind::FlinkDeployment, "job");
        s.metadata.namespace = Some("ns".into());
        s.status = state.map(|state| FlinkStateSnapshotStatus {
            state: Some(state),
            ..FlinkStateSnapshotStatus::default()
        });
        kube::core::DeserializeGuard(Ok(s))
    }

    #[test]
    fn snapshot_gauges_count_cached_snapshots_per_state() {
        let (cache, mut writer) = reflector::store::<GuardedSnapshot>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for (name, state) in [
            ("a", Some(FlinkStateSnapshotState::Completed)),
            ("b", Some(FlinkStateSnapshotState::Completed)),
            ("c", Some(FlinkStateSnapshotState::InProgress)),
            ("d", None),
        ] {
            writer.apply_watcher_event(&watcher::Event::InitApply(snapshot(name, state)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        update_snapshots(&[cache], &metrics);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let count = |state: &str| {
            let series =
                format!("flinkpilot_resources{{kind=\"FlinkStateSnapshot\",state=\"{state}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .map(|v| v.parse::<f64>().unwrap())
        };
        assert_eq!(count("COMPLETED"), Some(2.0), "{text}");
        assert_eq!(count("IN_PROGRESS"), Some(1.0), "{text}");
        assert_eq!(count("TRIGGER_PENDING"), Some(1.0), "{text}");
        assert_eq!(count("FAILED"), Some(0.0), "{text}");
        assert!(
            !text.contains("kind=\"FlinkDeployment\""),
            "snapshots are not counted as deployments: {text}"
        );
    }
}
