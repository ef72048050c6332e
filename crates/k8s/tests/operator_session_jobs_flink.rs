//! `FlinkSessionJob`s under `flinkpilot operator` with a real Flink session cluster behind
//! `<name>-rest`: the fake API server holds the objects, the test "kubelet" runs the session
//! FlinkDeployment's JobManager Deployment as a real local Flink session cluster, and the
//! operator uploads the counter job's jar (a `file://` path on its own filesystem, then an
//! `http://` URI it downloads) and runs it there. One scenario: submit, a savepoint upgrade to
//! the jar over HTTP that restores the new job from the recorded savepoint (every key's count
//! continues), a `FlinkStateSnapshot` of the session job, then deletion (the job is cancelled,
//! the cluster stays, the finalizer goes).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot, JobKind, JobSpec, UpgradeMode};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::kubelet::Kubelet;
use support::operator::{self as op, Options};
use testkit::kube_fake::FakeApiServer;
use testkit::{CounterArgs, CounterOutput, FlinkDist, TestJob, wait_until_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "team-a";
const SESSION: &str = "session";
const NAME: &str = "counter";
const KEYS: u64 = 4;
/// A cluster start, a savepoint or a deletion on a busy 2-core machine.
const STEP: Duration = Duration::from_secs(180);

fn session_job(server: &FakeApiServer) -> Value {
    server
        .get("flink.apache.org/v1beta1", "flinksessionjobs", NS, NAME)
        .unwrap_or(Value::Null)
}

fn status(server: &FakeApiServer, pointer: &str) -> String {
    session_job(server)["status"]
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Waits until the session job runs a job other than `old_job`, DEPLOYED and STABLE; returns
/// its job id and start time.
async fn running_new_job(server: &FakeApiServer, old_job: &str) -> (String, u64) {
    let what = format!("a new session job (not {old_job:?}) running and STABLE");
    wait_until_async(STEP, &what, async || {
        let id = status(server, "/jobStatus/jobId");
        !id.is_empty()
            && id != old_job
            && status(server, "/jobStatus/state") == "RUNNING"
            && status(server, "/lifecycleState") == "STABLE"
            && status(server, "/reconciliationStatus/state") == "DEPLOYED"
    })
    .await;
    let start = status(server, "/jobStatus/startTime").parse().unwrap();
    (status(server, "/jobStatus/jobId"), start)
}

/// The session cluster's REST client.
fn flink(kubelet: &Kubelet) -> flink::FlinkClient {
    flink::FlinkClient::from_url(&kubelet.rest_url().expect("the session cluster runs")).unwrap()
}

/// The state of job `id` in the session cluster.
async fn flink_state(kubelet: &Kubelet, id: &str) -> String {
    let job: flink::JobId = id.parse().unwrap();
    flink(kubelet)
        .job_state(&job)
        .await
        .unwrap()
        .as_str()
        .to_string()
}

/// A `file:` path without its scheme (Flink reports `file:/…`).
fn local(path: &str) -> &Path {
    Path::new(
        path.strip_prefix("file://")
            .or_else(|| path.strip_prefix("file:"))
            .unwrap_or(path),
    )
}

/// Serves the file `jar` over HTTP to every request; returns its URL and the number of
/// requests served.
async fn serve_jar(jar: &Path) -> (String, Arc<AtomicUsize>) {
    let bytes = std::fs::read(jar).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jobs/counter.jar", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 8192];
            let _ = socket.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&bytes).await;
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, served)
}

fn counter_args(dir: &Path, rate: u64) -> Vec<String> {
    CounterArgs::default()
        .rate(rate)
        .keys(KEYS)
        .output(dir.join("out"))
        .to_args()
}

fn manifests(job: &TestJob, dir: &Path) -> (FlinkDeployment, FlinkSessionJob) {
    let cluster = FlinkDeployment::test(SESSION)
        .in_namespace(NS)
        .with_state_dirs(&format!("file://{}", dir.join("state").display()))
        .with_config("taskmanager.numberOfTaskSlots", "4")
        .with_config("execution.checkpointing.interval", "1s");
    let mut session_job = FlinkSessionJob::test(NAME, SESSION).with_job(JobSpec {
        jar_uri: Some(format!("file://{}", job.jar.display())),
        entry_class: Some(job.entry_class.clone()),
        args: Some(counter_args(dir, 20)),
        parallelism: Some(2),
        upgrade_mode: Some(UpgradeMode::Savepoint),
        ..JobSpec::default()
    });
    session_job.metadata.namespace = Some(NS.into());
    (cluster, session_job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_job_runs_upgrades_to_an_http_jar_with_its_state_and_is_cancelled_on_deletion() {
    let dist = FlinkDist::get_default();
    let job = TestJob::build_for("counter", dist);
    let dir = tempfile::Builder::new()
        .prefix("flinkpilot-operator-session-")
        .tempdir()
        .unwrap();
    let server = FakeApiServer::start().await.unwrap();
    let operator = op::start(&server, Options::new("op-0"));
    let kubelet = Kubelet::start(
        server.client(),
        op::key(NS, SESSION),
        dist,
        dir.path(),
        operator.rest.clone(),
    );
    let out = CounterOutput::new(dir.path().join("out"));
    let (cluster, session_job_manifest) = manifests(&job, dir.path());
    server.seed(serde_json::to_value(cluster).unwrap()).unwrap();
    server
        .seed(serde_json::to_value(session_job_manifest).unwrap())
        .unwrap();

    // submitted once the session cluster is READY, under the recorded job id
    let (first_job, _) = running_new_job(&server, "").await;
    assert_eq!(flink_state(&kubelet, &first_job).await, "RUNNING");
    assert_eq!(
        session_job(&server)["metadata"]["finalizers"],
        json!(["flinksessionjobs.flink.apache.org/finalizer"])
    );
    wait_until_async(STEP, "some counts", async || {
        let m = out.max_counts();
        m.len() as u64 == KEYS && m.values().all(|c| *c >= 5)
    })
    .await;

    // an argument and the jar's URI change: stop with a savepoint, download the jar, submit
    // it again from the savepoint
    let (url, served) = serve_jar(&job.jar).await;
    let api: Api<FlinkSessionJob> = Api::namespaced(server.client(), NS);
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"job": {
            "args": counter_args(dir.path(), 24),
            "jarURI": url,
        }}})),
    )
    .await
    .unwrap();
    let (second_job, start) = running_new_job(&server, &first_job).await;
    assert!(served.load(Ordering::SeqCst) >= 1, "the jar was downloaded");
    assert!(
        !std::env::temp_dir()
            .join(format!("{second_job}-counter.jar"))
            .exists(),
        "the downloaded jar is removed once uploaded"
    );
    let savepoint = status(&server, "/jobStatus/upgradeSavepointPath");
    assert!(
        local(&savepoint).join("_metadata").is_file(),
        "the upgrade savepoint is recorded and on disk: {savepoint:?}"
    );
    assert_eq!(flink_state(&kubelet, &first_job).await, "FINISHED");
    let restored = flink(&kubelet)
        .checkpoints(&second_job.parse().unwrap())
        .await
        .unwrap()
        .latest
        .restored
        .expect("the new job restored from a snapshot");
    assert!(restored.is_savepoint, "{restored:?}");
    assert_eq!(
        restored.external_path.as_deref().map(local),
        Some(local(&savepoint)),
        "the new job restored from the recorded savepoint"
    );
    wait_until_async(STEP, "every key to be counted by the new job", async || {
        out.first_counts_after(start).len() as u64 == KEYS
    })
    .await;
    for (key, first) in out.first_counts_after(start) {
        let before = out
            .records()
            .into_iter()
            .filter(|r| r.key == key && r.at_millis < start)
            .map(|r| r.count)
            .max()
            .unwrap_or(0);
        assert_eq!(first, before + 1, "key {key} continues from the savepoint");
    }

    // a FlinkStateSnapshot of the session job: a savepoint through its session cluster
    let mut request = FlinkStateSnapshot::test_savepoint("manual", JobKind::FlinkSessionJob, NAME);
    request.metadata.namespace = Some(NS.into());
    let snapshots: Api<FlinkStateSnapshot> = Api::namespaced(server.client(), NS);
    snapshots
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    let snapshot = || {
        server
            .get(
                "flink.apache.org/v1beta1",
                "flinkstatesnapshots",
                NS,
                "manual",
            )
            .unwrap_or(Value::Null)
    };
    wait_until_async(
        STEP,
        "the session job's savepoint to complete",
        async || snapshot()["status"]["state"] == "COMPLETED",
    )
    .await;
    let path = snapshot()["status"]["path"].as_str().unwrap().to_string();
    assert!(local(&path).join("_metadata").is_file(), "{path}");
    assert_eq!(
        snapshot()["metadata"]["labels"]["job-reference.kind"],
        "FlinkSessionJob"
    );

    // deletion: the job is cancelled, then the finalizer goes; the cluster stays
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    server
        .wait_for(STEP, |s| {
            s.get("flink.apache.org/v1beta1", "flinksessionjobs", NS, NAME)
                .is_none()
        })
        .await
        .unwrap();
    assert_eq!(flink_state(&kubelet, &second_job).await, "CANCELED");
    assert!(kubelet.running(), "the session cluster stays");
    operator.stop().await;
}
