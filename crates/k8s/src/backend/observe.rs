//! What runs for a `FlinkDeployment`, read from its JobManager Deployment and the cluster's pods:
//! a pure mapping to the engine's [`ClusterObservation`], tested without an API server.

use engine::ClusterObservation;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::resources::labels::{COMPONENT, Component};

/// Annotation on the JobManager Deployment holding the plan hash it was deployed with.
pub const PLAN_HASH_ANNOTATION: &str = "flinkpilot.apache.org/plan-hash";

/// Container states that mean the pod will not come up by itself (Apache operator: crash
/// loops and image errors make the JobManager deployment `ERROR`).
const FAILED_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The plan hash recorded on a JobManager Deployment.
pub fn plan_hash(jobmanager: &Deployment) -> Option<String> {
    jobmanager
        .metadata
        .annotations
        .as_ref()?
        .get(PLAN_HASH_ANNOTATION)
        .cloned()
}

/// The cluster as seen in Kubernetes.
///
/// - no JobManager Deployment → `Absent`;
/// - the Deployment is being deleted, cannot create its pods (`ReplicaFailure`), or a
///   JobManager pod crash-loops, cannot pull its image or has failed → `Failed` with the reason;
/// - a ready JobManager replica → `Running`, with the TaskManagers that are ready (the
///   standalone TaskManager Deployment's ready replicas, else ready TaskManager pods, which
///   Flink's native mode creates itself);
/// - otherwise → `Starting`.
pub fn cluster(
    jobmanager: Option<&Deployment>,
    pods: &[Pod],
    taskmanager: Option<&Deployment>,
) -> ClusterObservation {
    let Some(jm) = jobmanager else {
        return ClusterObservation::Absent;
    };
    let plan_hash = plan_hash(jm);
    let failed = |reason: String| ClusterObservation::Failed {
        plan_hash: plan_hash.clone(),
        reason,
        log_tail: None,
    };
    let name = jm.metadata.name.as_deref().unwrap_or_default();
    if jm.metadata.deletion_timestamp.is_some() {
        return failed(format!("the JobManager Deployment {name} is being deleted"));
    }
    let status = jm.status.clone().unwrap_or_default();
    for condition in status.conditions.iter().flatten() {
        let kind = condition.type_.as_deref().unwrap_or_default();
        let status = condition.status.as_deref();
        let stuck = match kind {
            "ReplicaFailure" => status == Some("True"),
            "Progressing" => {
                status == Some("False")
                    && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
            }
            _ => false,
        };
        if stuck {
            return failed(format!(
                "the JobManager Deployment {name} cannot come up ({}): {}",
                condition.reason.as_deref().unwrap_or(kind),
                condition.message.as_deref().unwrap_or("no message")
            ));
        }
    }
    let jobmanager_pods = pods.iter().filter(|p| is(p, Component::JobManager));
    for pod in jobmanager_pods {
        if let Some(reason) = pod_failure(pod) {
            return failed(reason);
        }
    }
    if status.ready_replicas.unwrap_or(0) < 1 {
        return ClusterObservation::Starting { plan_hash };
    }
    let taskmanagers = match taskmanager {
        Some(tm) => tm
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        None => pods
            .iter()
            .filter(|p| is(p, Component::TaskManager) && ready(p))
            .count()
            .try_into()
            .unwrap_or(i32::MAX),
    };
    ClusterObservation::Running {
        plan_hash,
        taskmanagers: u32::try_from(taskmanagers.max(0)).unwrap_or(0),
    }
}

fn is(pod: &Pod, component: Component) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(COMPONENT))
        .is_some_and(|c| c == component.label())
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a JobManager pod will not run, if it will not.
fn pod_failure(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() == Some("Failed") {
        return Some(format!(
            "JobManager pod {name} failed: {}",
            status
                .message
                .as_deref()
                .or(status.reason.as_deref())
                .unwrap_or("no reason given")
        ));
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        if let Some(reason) = container_failure(container) {
            return Some(format!("JobManager pod {name}: {reason}"));
        }
    }
    None
}

fn container_failure(c: &ContainerStatus) -> Option<String> {
    let waiting = c.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    if !FAILED_WAITING_REASONS.contains(&reason) {
        return None;
    }
    let mut text = format!("container {} is in {reason}", c.name);
    if let Some(message) = waiting.message.as_deref().filter(|m| !m.is_empty()) {
        text.push_str(&format!(": {message}"));
    }
    if let Some(last) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
        text.push_str(&format!(
            " (last exit code {}{})",
            last.exit_code,
            last.reason
                .as_deref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default()
        ));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(value: serde_json::Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    fn jm(ready: i32) -> Deployment {
        deployment(json!({
            "metadata": {"name": "basic", "annotations": {PLAN_HASH_ANNOTATION: "abc"}},
            "status": {"replicas": 1, "readyReplicas": ready}
        }))
    }

    fn pod(component: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("basic-{component}-1"), "labels": {"component": component}},
            "status": status
        }))
        .unwrap()
    }

    fn ready_pod(component: &str) -> Pod {
        pod(
            component,
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        )
    }

    #[test]
    fn no_jobmanager_deployment_is_an_absent_cluster() {
        assert_eq!(cluster(None, &[], None), ClusterObservation::Absent);
    }

    #[test]
    fn a_jobmanager_without_ready_replicas_is_starting_with_its_plan_hash() {
        assert_eq!(
            cluster(Some(&jm(0)), &[], None),
            ClusterObservation::Starting {
                plan_hash: Some("abc".into())
            }
        );
    }

    #[test]
    fn a_ready_jobmanager_is_running_with_its_ready_taskmanagers() {
        let pods = [
            ready_pod("jobmanager"),
            ready_pod("taskmanager"),
            ready_pod("taskmanager"),
            pod("taskmanager", json!({"phase": "Pending"})),
        ];
        assert_eq!(
            cluster(Some(&jm(1)), &pods, None),
            ClusterObservation::Running {
                plan_hash: Some("abc".into()),
                taskmanagers: 2
            },
            "native: ready TaskManager pods"
        );
        let tm = deployment(
            json!({"metadata": {"name": "basic-taskmanager"}, "status": {"readyReplicas": 3}}),
        );
        assert_eq!(
            cluster(Some(&jm(1)), &pods, Some(&tm)),
            ClusterObservation::Running {
                plan_hash: Some("abc".into()),
                taskmanagers: 3
            },
            "standalone: the TaskManager Deployment's ready replicas"
        );
    }

    #[test]
    fn crash_loops_and_image_errors_fail_the_cluster_with_the_reason() {
        for reason in ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"] {
            let p = pod(
                "jobmanager",
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "flink-main-container", "ready": false, "restartCount": 4,
                    "image": "flink:2.3", "imageID": "",
                    "state": {"waiting": {"reason": reason, "message": "back-off 40s"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}
                }]}),
            );
            match cluster(Some(&jm(0)), &[p], None) {
                ClusterObservation::Failed {
                    plan_hash,
                    reason: r,
                    ..
                } => {
                    assert_eq!(plan_hash.as_deref(), Some("abc"));
                    assert!(
                        r.contains(reason) && r.contains("flink-main-container"),
                        "{r}"
                    );
                    assert!(r.contains("last exit code 1"), "{r}");
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_taskmanager_crash_loop_does_not_fail_the_cluster() {
        let p = pod(
            "taskmanager",
            json!({"containerStatuses": [{"name": "c", "ready": false, "restartCount": 1,
                "image": "", "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        assert!(matches!(
            cluster(Some(&jm(1)), &[p], None),
            ClusterObservation::Running { .. }
        ));
    }

    #[test]
    fn replica_failures_and_deletion_fail_the_cluster() {
        let quota = deployment(json!({
            "metadata": {"name": "basic"},
            "status": {"conditions": [{"type": "ReplicaFailure", "status": "True",
                "reason": "FailedCreate", "message": "exceeded quota"}]}
        }));
        match cluster(Some(&quota), &[], None) {
            ClusterObservation::Failed { reason, .. } => {
                assert!(reason.contains("FailedCreate") && reason.contains("exceeded quota"))
            }
            other => panic!("{other:?}"),
        }
        let deleting = deployment(json!({
            "metadata": {"name": "basic", "deletionTimestamp": "2027-01-01T00:00:00Z"},
            "status": {"readyReplicas": 1}
        }));
        assert!(matches!(
            cluster(Some(&deleting), &[], None),
            ClusterObservation::Failed { .. }
        ));
    }
}
