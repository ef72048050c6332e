//! Server-side apply through the real kube-rs client (ownership, conflicts, force, removal,
//! status), and Lease-based leader election with `kube-lease-manager` against the fake.

use std::time::Duration;

use flinkpilot_testkit::kube_fake::FakeApiServer;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use serde_json::{Value, json};
use tokio::sync::watch;

async fn fake() -> FakeApiServer {
    FakeApiServer::start()
        .await
        .expect("fake API server starts")
}

fn deployment(replicas: i32, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jm", "labels": labels},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "flink-main-container", "image": "flink:2.0"}]}}},
    })
}

fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// `manager -> (operation, fieldsV1)` of an object's managedFields.
fn managers(obj: &Deployment) -> Vec<(String, String, Value)> {
    obj.managed_fields()
        .iter()
        .map(|m| {
            let fields = m
                .fields_v1
                .as_ref()
                .map(|f| f.0.clone())
                .unwrap_or(Value::Null);
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
                fields,
            )
        })
        .collect()
}

#[tokio::test]
async fn apply_creates_the_object_and_records_the_manager() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let created = api
        .patch(
            "jm",
            &PatchParams::apply("flinkpilot"),
            &Patch::Apply(deployment(1, json!({"app": "jm"}))),
        )
        .await
        .unwrap();
    assert_eq!(created.spec.replicas, Some(1));
    assert_eq!(created.metadata.generation, Some(1));
    let m = managers(&created);
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].0.as_str(), m[0].1.as_str()), ("flinkpilot", "Apply"));
    assert_eq!(m[0].2["f:spec"]["f:replicas"], json!({}));
    assert_eq!(m[0].2["f:metadata"]["f:labels"]["f:app"], json!({}));
    assert!(
        m[0].2["f:metadata"].get("f:name").is_none(),
        "server-set metadata is not owned"
    );
}

#[tokio::test]
async fn reapplying_the_same_configuration_changes_nothing() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let pp = PatchParams::apply("flinkpilot").force();
    let first = api
        .patch("jm", &pp, &Patch::Apply(deployment(1, json!({}))))
        .await
        .unwrap();
    let second = api
        .patch("jm", &pp, &Patch::Apply(deployment(1, json!({}))))
        .await
        .unwrap();
    assert_eq!(first.resource_version(), second.resource_version());
    assert_eq!(first.managed_fields(), second.managed_fields());
}

#[tokio::test]
async fn two_managers_own_their_own_fields_and_share_equal_values() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    api.patch(
        "jm",
        &PatchParams::apply("operator"),
        &Patch::Apply(deployment(1, json!({"a": "1"}))),
    )
    .await
    .unwrap();
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "jm", "labels": {"b": "2"}},
                       "spec": {"replicas": 1}});
    let merged = api
        .patch("jm", &PatchParams::apply("user"), &Patch::Apply(&other))
        .await
        .unwrap();
    assert_eq!(merged.labels().len(), 2, "both managers' labels are kept");
    let m = managers(&merged);
    let user = m.iter().find(|(name, _, _)| name == "user").unwrap();
    assert_eq!(
        user.2["f:spec"]["f:replicas"],
        json!({}),
        "equal values are shared, not conflicts"
    );
    let operator = m.iter().find(|(name, _, _)| name == "operator").unwrap();
    assert_eq!(operator.2["f:spec"]["f:replicas"], json!({}));
}

#[tokio::test]
async fn apply_of_a_field_owned_by_another_manager_conflicts_unless_forced() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    api.patch(
        "jm",
        &PatchParams::apply("operator"),
        &Patch::Apply(deployment(1, json!({}))),
    )
    .await
    .unwrap();
    let scale = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "jm"}, "spec": {"replicas": 3}});

    let err = api_error(
        api.patch("jm", &PatchParams::apply("user"), &Patch::Apply(&scale))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("conflict with \"operator\""),
        "{}",
        err.message
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(
        api.get("jm").await.unwrap().spec.replicas,
        Some(1),
        "nothing written"
    );

    let forced = api
        .patch(
            "jm",
            &PatchParams::apply("user").force(),
            &Patch::Apply(&scale),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.replicas, Some(3));
    let m = managers(&forced);
    let operator = m.iter().find(|(name, _, _)| name == "operator").unwrap();
    assert!(
        operator.2["f:spec"].get("f:replicas").is_none(),
        "force moved ownership away"
    );

    // now the operator is the one that conflicts
    let err = api_error(
        api.patch(
            "jm",
            &PatchParams::apply("operator"),
            &Patch::Apply(deployment(1, json!({}))),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.message.contains("conflict with \"user\""),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn non_apply_writes_take_ownership_and_later_applies_conflict_with_them() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    api.patch(
        "jm",
        &PatchParams::apply("operator"),
        &Patch::Apply(deployment(1, json!({}))),
    )
    .await
    .unwrap();
    let scaled = api
        .patch(
            "jm",
            &PatchParams {
                field_manager: Some("kubectl-scale".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let m = managers(&scaled);
    let kubectl = m
        .iter()
        .find(|(name, _, _)| name == "kubectl-scale")
        .unwrap();
    assert_eq!(
        (kubectl.1.as_str(), &kubectl.2["f:spec"]["f:replicas"]),
        ("Update", &json!({}))
    );
    let err = api_error(
        api.patch(
            "jm",
            &PatchParams::apply("operator"),
            &Patch::Apply(deployment(1, json!({}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn fields_dropped_from_the_applied_configuration_are_removed_unless_shared() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let op = PatchParams::apply("operator");
    api.patch(
        "jm",
        &op,
        &Patch::Apply(deployment(1, json!({"a": "1", "b": "1", "c": "1"}))),
    )
    .await
    .unwrap();
    let shared_c = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "jm", "labels": {"c": "1"}}});
    api.patch("jm", &PatchParams::apply("other"), &Patch::Apply(&shared_c))
        .await
        .unwrap();
    let after = api
        .patch("jm", &op, &Patch::Apply(deployment(1, json!({"a": "1"}))))
        .await
        .unwrap();
    let mut keys: Vec<&String> = after.labels().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["a", "c"],
        "b removed; c still owned by another manager"
    );
}

#[tokio::test]
async fn apply_with_a_stale_resource_version_conflicts() {
    let server = fake().await;
    let api: Api<Deployment> = Api::namespaced(server.client(), "ns");
    let first = api
        .patch(
            "jm",
            &PatchParams::apply("op"),
            &Patch::Apply(deployment(1, json!({}))),
        )
        .await
        .unwrap();
    api.patch(
        "jm",
        &PatchParams::apply("op"),
        &Patch::Apply(deployment(2, json!({}))),
    )
    .await
    .unwrap();
    let mut stale = deployment(3, json!({}));
    stale["metadata"]["resourceVersion"] = json!(first.resource_version());
    let err = api_error(
        api.patch("jm", &PatchParams::apply("op"), &Patch::Apply(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
}

#[tokio::test]
async fn apply_on_the_status_subresource_changes_only_status() {
    let server = fake().await;
    let gvk = GroupVersionKind::gvk("flink.apache.org", "v1beta1", "FlinkDeployment");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "flinkdeployments");
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "ns", &ar);
    let fd = json!({"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
                    "metadata": {"name": "basic"}, "spec": {"image": "flink:2.0"}, "status": {"ignored": true}});
    let created = api
        .patch(
            "basic",
            &PatchParams::apply("flinkpilot"),
            &Patch::Apply(&fd),
        )
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "main-resource apply ignores status"
    );

    let status = json!({"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeployment",
                        "metadata": {"name": "basic"}, "spec": {"image": "ignored"},
                        "status": {"lifecycleState": "DEPLOYED"}});
    let after = api
        .patch_status(
            "basic",
            &PatchParams::apply("flinkpilot"),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(after.data["status"]["lifecycleState"], "DEPLOYED");
    assert_eq!(after.data["spec"]["image"], "flink:2.0");
    assert_eq!(after.metadata.generation, Some(1));
    let entries = after.metadata.managed_fields.unwrap();
    let status_entry = entries
        .iter()
        .find(|e| e.subresource.as_deref() == Some("status"))
        .unwrap();
    assert_eq!(status_entry.operation.as_deref(), Some("Apply"));
}

// ---- leader election ----------------------------------------------------------------------

const LEASE: &str = "flinkpilot-leader";

async fn candidate(client: Client, identity: &str) -> LeaseManager {
    LeaseManagerBuilder::new(client, LEASE)
        .with_namespace("ops")
        .with_identity(identity)
        .with_duration(2)
        .with_grace(1)
        .build()
        .await
        .expect("lease manager starts")
}

fn holder(server: &FakeApiServer) -> Option<String> {
    let lease = server.get_typed::<Lease>("ops", LEASE).expect("a Lease");
    lease.and_then(|l| l.spec).and_then(|s| s.holder_identity)
}

async fn becomes(rx: &mut watch::Receiver<bool>, leader: bool) {
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|v| *v == leader))
        .await
        .expect("leadership changes within the deadline")
        .expect("lease manager alive");
}

/// Waits for the first of two candidates to lead; returns (leader index, receivers).
async fn first_leader(a: &mut watch::Receiver<bool>, b: &mut watch::Receiver<bool>) -> usize {
    let winner = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            r = a.wait_for(|v| *v) => { r.expect("a alive"); 0 }
            r = b.wait_for(|v| *v) => { r.expect("b alive"); 1 }
        }
    })
    .await
    .expect("someone leads within the deadline");
    assert!(!(*a.borrow() && *b.borrow()), "never two leaders");
    winner
}

#[tokio::test]
async fn two_candidates_elect_one_leader_who_hands_over_on_release() {
    let server = fake().await;
    let a = candidate(server.client(), "a").await;
    let b = candidate(server.client(), "b").await;
    let (mut ra, ta) = a.watch().await;
    let (mut rb, tb) = b.watch().await;

    let winner = first_leader(&mut ra, &mut rb).await;
    let (leader, follower) = if winner == 0 {
        (("a", ra, ta), ("b", rb, tb))
    } else {
        (("b", rb, tb), ("a", ra, ta))
    };
    let (follower_name, mut follower_rx, follower_task) = follower;
    let (leader_name, leader_rx, leader_task) = leader;
    assert_eq!(holder(&server).as_deref(), Some(leader_name));
    assert!(!*follower_rx.borrow());

    // the leader steps down: dropping its channel makes the manager release the lease
    drop(leader_rx);
    leader_task.await.unwrap().expect("leader released cleanly");
    becomes(&mut follower_rx, true).await;
    assert_eq!(holder(&server).as_deref(), Some(follower_name));
    drop(follower_rx);
    follower_task
        .await
        .unwrap()
        .expect("follower released cleanly");
}

#[tokio::test]
async fn a_leader_that_stops_renewing_loses_the_lease_after_it_expires() {
    let server = fake().await;
    let a = candidate(server.client(), "a").await;
    let (mut ra, ta) = a.watch().await;
    becomes(&mut ra, true).await;
    let b = candidate(server.client(), "b").await;
    let (mut rb, tb) = b.watch().await;

    // "a" crashes: no release, the lease just stops being renewed
    ta.abort();
    let _ = ta.await;
    assert_eq!(holder(&server).as_deref(), Some("a"));
    becomes(&mut rb, true).await;
    assert_eq!(holder(&server).as_deref(), Some("b"));
    let lease = server.get_typed::<Lease>("ops", LEASE).unwrap().unwrap();
    assert!(lease.spec.unwrap().lease_transitions.unwrap_or(0) >= 2);
    drop((ra, rb));
    tb.await.unwrap().expect("b released cleanly");
}
