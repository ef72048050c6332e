//! `--rest-via-apiserver`: the operator reaches the JobManager only through the API server's
//! service proxy, with the kubeconfig's bearer token. The fake API server requires the token and
//! forwards `services/counter-rest:8081/proxy/…` to a real local Flink that the test kubelet
//! runs from the applied ConfigMap. The job runs, a requested savepoint is taken through the
//! proxy and lands on disk, the REST latency histogram shows the calls by endpoint template,
//! and the token shows nowhere: not in the logs, the events or the status.
//!
//! In its own test binary: it installs the global log subscriber.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{FlinkDeployment, FlinkStateSnapshot, JobKind, JobSpec, UpgradeMode};
use kube::Api;
use kube::api::PostParams;
use serde_json::Value;
use support::kubelet::Kubelet;
use support::operator::{self as op, Options, deployment, status_str};
use testkit::kube_fake::{FakeApiServer, Verb};
use testkit::{CounterArgs, FlinkDist, TestJob, wait_until_async};

const NS: &str = "team-a";
const NAME: &str = "counter";
const TOKEN: &str = "proxy-t0ken-7f3a9c";
/// A cluster start or a savepoint on a busy 2-core machine.
const STEP: Duration = Duration::from_secs(180);

/// Everything logged, at debug level, by every thread of this test binary.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || LogSink(sink.clone()))
        .init();
    logs
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn manifest(job: &TestJob, dir: &std::path::Path) -> FlinkDeployment {
    let args = CounterArgs::default()
        .rate(20)
        .keys(2)
        .output(dir.join("out"))
        .to_args();
    FlinkDeployment::test(NAME)
        .in_namespace(NS)
        .with_job(JobSpec {
            jar_uri: Some(format!("local://{}", job.jar.display())),
            entry_class: Some(job.entry_class.clone()),
            args: Some(args),
            parallelism: Some(1),
            upgrade_mode: Some(UpgradeMode::Savepoint),
            ..JobSpec::default()
        })
        .with_state_dirs(&format!("file://{}", dir.join("state").display()))
}

fn snapshot(server: &FakeApiServer, name: &str) -> Value {
    server
        .get("flink.apache.org/v1beta1", "flinkstatesnapshots", NS, name)
        .unwrap_or(Value::Null)
}

/// A free local port for the metrics server.
fn free_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The value of the `/metrics` sample line that starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_via_apiserver_runs_the_job_and_takes_a_savepoint_through_the_service_proxy() {
    let logs = capture_logs();
    let dist = FlinkDist::get_default();
    let job = TestJob::build_for("counter", dist);
    let dir = tempfile::Builder::new()
        .prefix("flinkpilot-proxy-")
        .tempdir()
        .unwrap();
    let server = FakeApiServer::builder()
        .bearer_token(TOKEN)
        .start()
        .await
        .unwrap();
    let metrics_addr = free_addr();
    let operator = op::start(
        &server,
        Options::new("op-0")
            .with_rest_via_apiserver()
            .with_http(metrics_addr),
    );
    let _kubelet = Kubelet::start(
        server.client(),
        op::key(NS, NAME),
        dist,
        dir.path(),
        server.service_proxy(),
    );

    server
        .seed(serde_json::to_value(manifest(&job, dir.path())).unwrap())
        .unwrap();
    wait_until_async(STEP, "the job RUNNING and STABLE", async || {
        status_str(&server, NS, NAME, "/jobStatus/state") == "RUNNING"
            && status_str(&server, NS, NAME, "/lifecycleState") == "STABLE"
    })
    .await;
    let job_id = status_str(&server, NS, NAME, "/jobStatus/jobId");

    // a savepoint requested through a resource, triggered and polled through the proxy
    let mut request = FlinkStateSnapshot::test_savepoint("manual", JobKind::FlinkDeployment, NAME);
    request.metadata.namespace = Some(NS.into());
    let snapshots: Api<FlinkStateSnapshot> = Api::namespaced(server.client(), NS);
    snapshots
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    wait_until_async(STEP, "the requested savepoint to complete", async || {
        snapshot(&server, "manual")["status"]["state"] == "COMPLETED"
    })
    .await;
    let path = snapshot(&server, "manual")["status"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let local = path
        .strip_prefix("file://")
        .or_else(|| path.strip_prefix("file:"))
        .unwrap_or(&path);
    assert!(
        std::path::Path::new(local).join("_metadata").is_file(),
        "the savepoint is on disk: {path}"
    );

    // every JobManager call went through the proxy, authenticated; the trigger among them
    let proxied: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.subresource.as_deref() == Some("proxy"))
        .collect();
    let shown: Vec<String> = proxied
        .iter()
        .map(|r| format!("{} {} → {}", r.method, r.path, r.status))
        .collect();
    assert!(
        proxied
            .iter()
            .all(|r| r.name.as_deref() == Some("counter-rest")),
        "{shown:#?}"
    );
    assert!(
        proxied.iter().any(|r| r.verb == Verb::Create
            && r.path.ends_with("/savepoints")
            && (200..300).contains(&r.status)),
        "the savepoint trigger went through the proxy: {shown:#?}"
    );
    assert!(
        server.requests().iter().all(|r| r.status != 401),
        "every request carried the token"
    );

    // the REST latency histogram and the snapshot gauge on /metrics
    let url = format!("http://{metrics_addr}/metrics");
    let mut text = String::new();
    wait_until_async(Duration::from_secs(30), "the snapshot gauge", async || {
        text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        sample(
            &text,
            "flinkpilot_resources{kind=\"FlinkStateSnapshot\",state=\"COMPLETED\"}",
        ) == Some(1.0)
    })
    .await;
    let calls = |endpoint: &str, method: &str| {
        sample(
            &text,
            &format!(
                "flinkpilot_flink_rest_request_duration_seconds_count{{endpoint=\"{endpoint}\",method=\"{method}\",outcome=\"ok\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    assert!(calls("/jobs/:jobid/savepoints", "POST") >= 1.0, "{text}");
    assert!(
        calls("/jobs/:jobid/savepoints/:triggerid", "GET") >= 1.0,
        "{text}"
    );
    assert!(!text.contains(&job_id), "no job id in any label: {text}");

    // the token nowhere a person or another program reads
    let mut exposed = vec![deployment(&server, NS, NAME), snapshot(&server, "manual")];
    exposed.extend(server.list("events.k8s.io/v1", "events", Some(NS)));
    let exposed = serde_json::to_string(&exposed).unwrap();
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("calling Flink"),
        "the client's debug lines are captured"
    );
    for (what, text) in [("status and events", &exposed), ("logs", &logged)] {
        assert!(!text.contains(TOKEN), "the token is in the {what}");
        assert!(
            !text.to_ascii_lowercase().contains("authorization"),
            "an Authorization header is in the {what}"
        );
    }
    operator.stop().await;
}
