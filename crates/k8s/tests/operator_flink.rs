//! `flinkpilot operator` with a real Flink behind `<name>-rest`: the fake API server holds the
//! objects, a test "kubelet" runs the JobManager Deployment as a real local Flink application
//! cluster (the counter job, from the ConfigMap the operator applied), and the operator's REST
//! client talks to it. One scenario: deploy, a savepoint upgrade through the operator that keeps
//! every key's count going, FlinkStateSnapshot resources (the upgrade savepoint registered, a
//! requested savepoint taken and disposed on deletion, periodic savepoints and their
//! retention), then deletion with a final savepoint through the finalizer.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use api::{FlinkDeployment, FlinkStateSnapshot, JobKind, JobSpec, UpgradeMode};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::kubelet::Kubelet;
use support::operator::{self as op, Options, deployment, events, status_str};
use testkit::kube_fake::{FakeApiServer, Verb};
use testkit::{CounterArgs, CounterOutput, FlinkDist, TestJob, wait_until_async};

const NS: &str = "team-a";
const NAME: &str = "counter";
const KEYS: u64 = 4;
/// A cluster start, a savepoint or a deletion on a busy 2-core machine.
const STEP: Duration = Duration::from_secs(180);

fn status(server: &FakeApiServer, pointer: &str) -> String {
    status_str(server, NS, NAME, pointer)
}

/// Waits until the deployment runs a job other than `old_job`, stable; returns its job id and
/// start time.
async fn running_new_job(server: &FakeApiServer, old_job: &str) -> (String, u64) {
    let what = format!("a new job (not {old_job:?}) running and STABLE");
    wait_until_async(STEP, &what, async || {
        let id = status(server, "/jobStatus/jobId");
        !id.is_empty()
            && id != old_job
            && status(server, "/jobStatus/state") == "RUNNING"
            && status(server, "/lifecycleState") == "STABLE"
    })
    .await;
    let start = status(server, "/jobStatus/startTime").parse().unwrap();
    (status(server, "/jobStatus/jobId"), start)
}

/// Per key, the highest count written before `t`.
fn max_before(out: &CounterOutput, t: u64) -> BTreeMap<u64, u64> {
    let mut max = BTreeMap::new();
    for r in out.records().into_iter().filter(|r| r.at_millis < t) {
        let m = max.entry(r.key).or_insert(0);
        *m = (*m).max(r.count);
    }
    max
}

async fn counting_after(out: &CounterOutput, t: u64) {
    wait_until_async(STEP, "every key to be counted by the new job", async || {
        out.first_counts_after(t).len() as u64 == KEYS
    })
    .await;
}

fn snapshots(server: &FakeApiServer) -> Vec<Value> {
    server.list("flink.apache.org/v1beta1", "flinkstatesnapshots", Some(NS))
}

fn snapshot(server: &FakeApiServer, name: &str) -> Value {
    server
        .get("flink.apache.org/v1beta1", "flinkstatesnapshots", NS, name)
        .unwrap_or(Value::Null)
}

fn label<'a>(s: &'a Value, key: &str) -> &'a str {
    s["metadata"]["labels"][key].as_str().unwrap_or_default()
}

fn snapshot_state(s: &Value) -> &str {
    s["status"]["state"].as_str().unwrap_or_default()
}

/// The local directory of a `file:` snapshot path (Flink reports `file:/…`).
fn local(path: &str) -> std::path::PathBuf {
    let path = path
        .strip_prefix("file://")
        .or_else(|| path.strip_prefix("file:"))
        .unwrap_or(path);
    std::path::PathBuf::from(path)
}

/// FlinkStateSnapshot resources with the job running: the upgrade savepoint was registered as
/// one; a requested savepoint is taken (and disposed through the finalizer when deleted);
/// periodic savepoints become resources, and retention deletes the ones past the limit.
async fn snapshot_resources_follow_the_job(server: &FakeApiServer, upgrade_savepoint: &str) {
    wait_until_async(
        STEP,
        "the upgrade savepoint registered as a resource",
        async || {
            snapshots(server).iter().any(|s| {
                label(s, "snapshot.trigger-type") == "UPGRADE"
                    && snapshot_state(s) == "COMPLETED"
                    && s["status"]["path"] == upgrade_savepoint
            })
        },
    )
    .await;

    // a savepoint requested through a resource
    let mut request = FlinkStateSnapshot::test_savepoint("manual", JobKind::FlinkDeployment, NAME);
    request.metadata.namespace = Some(NS.into());
    if let Some(sp) = request.spec.savepoint.as_mut() {
        sp.dispose_on_delete = Some(true);
    }
    let api: Api<FlinkStateSnapshot> = Api::namespaced(server.client(), NS);
    api.create(&PostParams::default(), &request).await.unwrap();
    wait_until_async(STEP, "the requested savepoint to complete", async || {
        snapshot_state(&snapshot(server, "manual")) == "COMPLETED"
    })
    .await;
    let taken = snapshot(server, "manual");
    let path = taken["status"]["path"].as_str().unwrap().to_string();
    assert!(
        local(&path).join("_metadata").is_file(),
        "the savepoint is on disk: {path}"
    );
    for (key, value) in [
        ("snapshot.type", "SAVEPOINT"),
        ("snapshot.trigger-type", "MANUAL"),
        ("snapshot.state", "COMPLETED"),
        ("job-reference.kind", "FlinkDeployment"),
        ("job-reference.name", NAME),
    ] {
        assert_eq!(label(&taken, key), value, "{key}: {taken}");
    }
    api.delete("manual", &DeleteParams::default())
        .await
        .unwrap();
    wait_until_async(
        STEP,
        "the requested savepoint to be disposed and gone",
        async || snapshot(server, "manual").is_null(),
    )
    .await;
    assert!(
        !local(&path).join("_metadata").exists(),
        "disposeOnDelete: the JobManager disposed {path} before the resource went"
    );

    // periodic savepoints as resources, at most one kept besides the one the job restores from
    let deployments: Api<FlinkDeployment> = Api::namespaced(server.client(), NS);
    let config = |interval: Value| {
        json!({"spec": {"flinkConfiguration": {
            "kubernetes.operator.periodic.savepoint.interval": interval,
            "kubernetes.operator.savepoint.history.max.count": "1",
        }}})
    };
    deployments
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(config(json!("2s"))),
        )
        .await
        .unwrap();
    let periodic = |s: &Value| label(s, "snapshot.trigger-type") == "PERIODIC";
    wait_until_async(
        STEP,
        "retention to delete a periodic savepoint",
        async || {
            server.requests().iter().any(|r| {
                r.resource == "flinkstatesnapshots"
                    && r.verb == Verb::Delete
                    && r.name
                        .as_deref()
                        .is_some_and(|n| n.contains("-savepoint-periodic-"))
                    && r.status < 300
            })
        },
    )
    .await;
    let kept: Vec<Value> = snapshots(server).into_iter().filter(periodic).collect();
    assert!(
        kept.iter().any(|s| snapshot_state(s) == "COMPLETED"
            && local(s["status"]["path"].as_str().unwrap())
                .join("_metadata")
                .is_file()),
        "the newest periodic savepoint is kept: {kept:?}"
    );
    // periodic savepoints stop; the deletion below counts savepoint directories
    deployments
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(config(Value::Null)),
        )
        .await
        .unwrap();
    wait_until_async(STEP, "the periodic savepoints to stop", async || {
        let reconciled = status(server, "/reconciliationStatus/lastReconciledSpec");
        !reconciled.is_empty()
            && !reconciled.contains("periodic.savepoint.interval")
            && snapshots(server)
                .iter()
                .all(|s| matches!(snapshot_state(s), "COMPLETED" | "FAILED" | "ABANDONED"))
    })
    .await;
}

fn manifest(job: &TestJob, dir: &std::path::Path, rate: u64) -> FlinkDeployment {
    let args = CounterArgs::default()
        .rate(rate)
        .keys(KEYS)
        .output(dir.join("out"))
        .to_args();
    FlinkDeployment::test(NAME)
        .in_namespace(NS)
        .with_job(JobSpec {
            jar_uri: Some(format!("local://{}", job.jar.display())),
            entry_class: Some(job.entry_class.clone()),
            args: Some(args),
            parallelism: Some(2),
            upgrade_mode: Some(UpgradeMode::Savepoint),
            ..JobSpec::default()
        })
        .with_state_dirs(&format!("file://{}", dir.join("state").display()))
        .with_config("execution.checkpointing.interval", "1s")
        .with_config("kubernetes.operator.job.savepoint-on-deletion", "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_upgrade_through_the_operator_continues_every_count() {
    let dist = FlinkDist::get_default();
    let job = TestJob::build_for("counter", dist);
    let dir = tempfile::Builder::new()
        .prefix("flinkpilot-operator-")
        .tempdir()
        .unwrap();
    let server = FakeApiServer::start().await.unwrap();
    let operator = op::start(&server, Options::new("op-0"));
    let kubelet = Kubelet::start(
        server.client(),
        op::key(NS, NAME),
        dist,
        dir.path(),
        operator.rest.clone(),
    );
    let out = CounterOutput::new(dir.path().join("out"));

    server
        .seed(serde_json::to_value(manifest(&job, dir.path(), 20)).unwrap())
        .unwrap();
    let (first_job, _) = running_new_job(&server, "").await;
    assert_eq!(
        deployment(&server, NS, NAME)["metadata"]["finalizers"],
        json!(["flinkdeployments.flink.apache.org/finalizer"]),
        "savepoint-on-deletion needs the operator at deletion: finalizer"
    );
    wait_until_async(STEP, "some counts", async || {
        let m = out.max_counts();
        m.len() as u64 == KEYS && m.values().all(|c| *c >= 5)
    })
    .await;

    // the spec changes: stop with a savepoint, delete the cluster, deploy from the savepoint
    server.clear_requests();
    let api: Api<FlinkDeployment> = Api::namespaced(server.client(), NS);
    let new_args = CounterArgs::default()
        .rate(24)
        .keys(KEYS)
        .output(dir.path().join("out"))
        .to_args();
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"job": {"args": new_args}}})),
    )
    .await
    .unwrap();
    let (_, start) = running_new_job(&server, &first_job).await;
    counting_after(&out, start).await;
    let before = max_before(&out, start);
    let after = out.first_counts_after(start);
    for (key, first) in &after {
        assert_eq!(
            *first,
            before[key] + 1,
            "key {key} continues exactly ({before:?} → {after:?})"
        );
    }
    let savepoint = status(&server, "/jobStatus/upgradeSavepointPath");
    assert_eq!(
        status(&server, "/jobStatus/savepointInfo/lastSavepoint/location"),
        savepoint
    );
    let config = server
        .get("v1", "configmaps", NS, &format!("flink-config-{NAME}"))
        .unwrap();
    assert!(
        config["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains(&savepoint),
        "the new cluster restores from the recorded savepoint {savepoint}"
    );
    // on the API: the stop was recorded before the old cluster was deleted, and the new one
    // applied after
    let log = server.requests();
    let status_write = log
        .iter()
        .position(|r| {
            r.resource == "flinkdeployments"
                && r.subresource.as_deref() == Some("status")
                && r.is_write()
        })
        .unwrap();
    let deleted = log
        .iter()
        .position(|r| r.resource == "deployments" && r.verb == Verb::Delete)
        .expect("the old JobManager Deployment was deleted");
    let applied = log
        .iter()
        .rposition(|r| {
            r.resource == "deployments"
                && r.verb == Verb::Patch
                && r.patch_type.as_deref() == Some("apply")
        })
        .unwrap();
    assert!(status_write < deleted && deleted < applied);
    assert_eq!(
        kubelet.started.lock().unwrap().len(),
        2,
        "one cluster per plan"
    );
    assert!(
        events(&server, NS, NAME)
            .iter()
            .any(|(r, _)| r == "SpecChanged"),
        "{:?}",
        events(&server, NS, NAME)
    );

    snapshot_resources_follow_the_job(&server, &savepoint).await;

    // deletion: a final savepoint, then the cluster, then the finalizer
    let savepoints_before = std::fs::read_dir(dir.path().join("state/savepoints"))
        .unwrap()
        .count();
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    server
        .wait_for(STEP, |s| deployment(s, NS, NAME).is_null())
        .await
        .unwrap();
    let savepoints_after = std::fs::read_dir(dir.path().join("state/savepoints"))
        .unwrap()
        .count();
    assert_eq!(
        savepoints_after,
        savepoints_before + 1,
        "a savepoint was taken before deletion"
    );
    wait_until_async(STEP, "the local cluster to stop", async || {
        !kubelet.running()
    })
    .await;
    operator.stop().await;
}
