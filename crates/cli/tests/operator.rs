//! `flinkpilot operator`, run as the real binary against the testkit's fake API server through a
//! kubeconfig, with leader election as installed.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::FlinkDeployment;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use testkit::kube_fake::FakeApiServer;

const NS: &str = "team-a";

fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    \
         cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the operator's HTTP server: (status code, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

fn lease_holder(server: &FakeApiServer) -> String {
    server
        .get(
            "coordination.k8s.io/v1",
            "leases",
            "flinkpilot",
            "flinkpilot-operator-leader",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default()
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_deploys_serves_metrics_and_gives_the_lease_back_on_sigterm() {
    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig(server.url())).unwrap();
    server
        .seed(
            serde_json::to_value(
                FlinkDeployment::test("basic")
                    .application()
                    .in_namespace(NS),
            )
            .unwrap(),
        )
        .unwrap();
    let port = free_port();
    let log = dir.path().join("operator.log");
    let mut operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_flinkpilot"))
            .args([
                "operator",
                "--http-addr",
                &format!("127.0.0.1:{port}"),
                "--lease-namespace",
                "flinkpilot",
                "--identity",
                "cli-test",
            ])
            .env("KUBECONFIG", &config)
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();

    let deployed = server
        .wait_for(Duration::from_secs(60), |s| {
            s.get("apps/v1", "deployments", NS, "basic").is_some()
                && s.get("flink.apache.org/v1beta1", "flinkdeployments", NS, "basic")
                    .is_some_and(|d| d["status"]["reconciliationStatus"]["state"] == "DEPLOYED")
        })
        .await;
    assert!(deployed.is_ok(), "not deployed; operator log:\n{}", logs());
    assert_eq!(lease_holder(&server), "cli-test");
    assert_eq!(get(port, "/readyz").map(|r| r.0), Some(200));
    let (code, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("flinkpilot_reconciles_total{kind=\"FlinkDeployment\"}"),
        "{metrics}"
    );

    kill(Pid::from_raw(operator.0.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = operator.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 30 s after SIGTERM; log:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}; log:\n{}", logs());
    assert_ne!(
        lease_holder(&server),
        "cli-test",
        "the lease was given back"
    );
    assert!(logs().contains("flinkpilot operator stopped"), "{}", logs());
}
