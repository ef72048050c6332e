//! `FlinkStateSnapshot`s under `flinkpilot operator`, against the testkit's fake API server:
//! what needs no running job (a missing target, deletion through the finalizer, leadership).
//! `operator_flink.rs` takes real savepoints through snapshot resources.

#![allow(clippy::unwrap_used)]

mod support;

use api::{FlinkDeployment, FlinkStateSnapshot, JobKind};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use support::operator::{self as op, Options, events, wait};
use testkit::kube_fake::FakeApiServer;

const NS: &str = "team-a";
const FINALIZER: &str = "flinkstatesnapshots.flink.apache.org/finalizer";

fn snapshot(server: &FakeApiServer, name: &str) -> Value {
    server
        .get("flink.apache.org/v1beta1", "flinkstatesnapshots", NS, name)
        .unwrap_or(Value::Null)
}

fn state(server: &FakeApiServer, name: &str) -> String {
    snapshot(server, name)["status"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A savepoint request for the FlinkDeployment `target`.
fn savepoint(name: &str, target: &str) -> FlinkStateSnapshot {
    let mut s = FlinkStateSnapshot::test_savepoint(name, JobKind::FlinkDeployment, target);
    s.metadata.namespace = Some(NS.into());
    s
}

/// Stores a savepoint taken earlier at `path`, as the operator leaves it (finalizer, status
/// through the status subresource: a create drops it).
async fn seed_completed(
    server: &FakeApiServer,
    name: &str,
    target: &str,
    path: &str,
    dispose_on_delete: bool,
) {
    let mut s = savepoint(name, target);
    if let Some(sp) = s.spec.savepoint.as_mut() {
        sp.dispose_on_delete = Some(dispose_on_delete);
    }
    s.metadata.finalizers = Some(vec![FINALIZER.into()]);
    server.seed(serde_json::to_value(&s).unwrap()).unwrap();
    let status = json!({"status": {
        "state": "COMPLETED",
        "path": path,
        "triggerTimestamp": "2026-01-01T00:00:00Z",
        "resultTimestamp": "2026-01-01T00:00:01Z",
        "failures": 0,
    }});
    let api: Api<FlinkStateSnapshot> = Api::namespaced(server.client(), NS);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_snapshot_of_a_missing_deployment_is_abandoned_with_an_event_and_labels() {
    let server = FakeApiServer::start().await.unwrap();
    let operator = op::start(&server, Options::new("op-0"));
    server
        .seed(serde_json::to_value(savepoint("orphan", "nowhere")).unwrap())
        .unwrap();

    wait(&server, "the snapshot is abandoned", |s| {
        state(s, "orphan") == "ABANDONED"
    })
    .await;
    let stored = snapshot(&server, "orphan");
    let error = stored["status"]["error"].as_str().unwrap();
    assert!(
        error.contains("FlinkDeployment nowhere") && error.contains("not found"),
        "{error}"
    );
    assert_eq!(stored["metadata"]["finalizers"], json!([FINALIZER]));
    let labels = &stored["metadata"]["labels"];
    assert_eq!(labels["snapshot.type"], "SAVEPOINT");
    assert_eq!(labels["snapshot.trigger-type"], "MANUAL");
    assert_eq!(labels["snapshot.state"], "ABANDONED");
    assert!(
        labels["job-reference.name"].is_null(),
        "no reference label while the target does not exist: {labels}"
    );
    // events are recorded after the status is written
    wait(
        &server,
        "a SnapshotAbandoned event naming the target",
        |s| {
            events(s, NS, "orphan")
                .iter()
                .any(|(reason, note)| reason == "SnapshotAbandoned" && note.contains("nowhere"))
        },
    )
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn deleting_a_snapshot_that_disposes_its_files_waits_in_the_finalizer_until_they_are() {
    let server = FakeApiServer::start().await.unwrap();
    // the deployment exists but no JobManager runs (nothing answers in the fake), and the
    // operator cannot reach the storage: the files cannot be disposed yet
    server
        .seed(
            serde_json::to_value(FlinkDeployment::test("app").application().in_namespace(NS))
                .unwrap(),
        )
        .unwrap();
    seed_completed(
        &server,
        "kept",
        "app",
        "file:///savepoints/savepoint-kept",
        true,
    )
    .await;
    seed_completed(
        &server,
        "released",
        "app",
        "file:///savepoints/savepoint-released",
        false,
    )
    .await;
    let operator = op::start(&server, Options::new("op-0"));
    wait(&server, "both snapshots are labelled", |s| {
        ["kept", "released"].iter().all(|n| {
            snapshot(s, n)["metadata"]["labels"]["job-reference.name"] == "app"
                && snapshot(s, n)["metadata"]["labels"]["snapshot.state"] == "COMPLETED"
        })
    })
    .await;

    let api: Api<FlinkStateSnapshot> = Api::namespaced(server.client(), NS);
    api.delete("released", &DeleteParams::default())
        .await
        .unwrap();
    api.delete("kept", &DeleteParams::default()).await.unwrap();
    wait(&server, "the snapshot without disposal is gone", |s| {
        snapshot(s, "released").is_null()
    })
    .await;
    wait(&server, "the disposal failure is reported", |s| {
        snapshot(s, "kept")["status"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("savepoint-kept") && e.contains("stays"))
    })
    .await;
    let kept = snapshot(&server, "kept");
    assert!(!kept["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        kept["metadata"]["finalizers"],
        json!([FINALIZER]),
        "the finalizer holds the resource until its files are disposed"
    );
    wait(&server, "a CleanupFailed event", |s| {
        events(s, NS, "kept")
            .iter()
            .any(|(reason, _)| reason == "CleanupFailed")
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn with_two_replicas_only_the_lease_holder_writes_snapshots() {
    let server = FakeApiServer::start().await.unwrap();
    let a = op::start(&server, Options::new("op-a").with_leader_election());
    wait(&server, "op-a holds the lease", |s| {
        s.get(
            "coordination.k8s.io/v1",
            "leases",
            "flinkpilot",
            "flinkpilot-operator-leader",
        )
        .is_some_and(|l| l["spec"]["holderIdentity"] == "op-a")
    })
    .await;
    let b = op::start(&server, Options::new("op-b").with_leader_election());
    server
        .seed(serde_json::to_value(savepoint("orphan", "nowhere")).unwrap())
        .unwrap();
    wait(&server, "the snapshot is abandoned", |s| {
        state(s, "orphan") == "ABANDONED"
    })
    .await;
    let snapshot_writes = |r: &op::Replica| {
        r.writes()
            .into_iter()
            .filter(|(_, path)| path.contains("/flinkstatesnapshots/"))
            .collect::<Vec<_>>()
    };
    assert!(
        snapshot_writes(&a)
            .iter()
            .any(|(m, p)| m == "PUT" && p.ends_with("/orphan/status")),
        "{:?}",
        a.writes()
    );
    assert_eq!(
        snapshot_writes(&b),
        Vec::<(String, String)>::new(),
        "the standby wrote no snapshot"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_malformed_snapshot_is_reported_naming_the_field_and_the_others_go_on() {
    let server = FakeApiServer::start().await.unwrap();
    let mut malformed = serde_json::to_value(savepoint("malformed", "nowhere")).unwrap();
    malformed["spec"]["backoffLimit"] = json!("many");
    server.seed(malformed).unwrap();
    server
        .seed(serde_json::to_value(savepoint("fine", "nowhere")).unwrap())
        .unwrap();
    let operator = op::start(&server, Options::new("op-0"));

    wait(&server, "the readable snapshot is reconciled", |s| {
        state(s, "fine") == "ABANDONED"
    })
    .await;
    wait(&server, "the malformed one is reported", |s| {
        snapshot(s, "malformed")["status"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be read"))
            && events(s, NS, "malformed")
                .iter()
                .any(|(reason, _)| reason == "ValidationError")
    })
    .await;
    let stored = snapshot(&server, "malformed");
    let error = stored["status"]["error"].as_str().unwrap();
    assert!(error.contains("backoffLimit"), "names the field: {error}");
    assert!(
        stored["metadata"]["finalizers"].is_null(),
        "nothing else is done with it"
    );
    operator.stop().await;
}
