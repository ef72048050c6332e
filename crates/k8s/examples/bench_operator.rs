//! Benchmark: `flinkpilot operator` with N FlinkDeployments created at once against the fake API
//! server (in its own process). Measures the time until every deployment has its children
//! (JobManager Deployment, config ConfigMap, REST Service) and a status recording the deploy,
//! the operator's peak RSS (VmHWM) and its RSS after an idle period, and reconciles per second.
//! See BENCHMARKS.md; run it through `scripts/bench-operator`.
//!
//! ```sh
//! bench_operator --flinkpilot target/release/flinkpilot \
//!     --fake target/release/examples/kube_fake_server [--count 1000] [--idle-secs 30]
//! ```

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::FlinkDeployment;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

const NAMESPACE: &str = "bench";
const DEADLINE: Duration = Duration::from_secs(600);

struct Args {
    flinkpilot: PathBuf,
    fake: PathBuf,
    count: usize,
    idle: Duration,
}

fn args() -> Args {
    let mut flinkpilot = None;
    let mut fake = None;
    let mut count = 1000;
    let mut idle = Duration::from_secs(30);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--flinkpilot" => flinkpilot = Some(PathBuf::from(value)),
            "--fake" => fake = Some(PathBuf::from(value)),
            "--count" => count = value.parse().unwrap(),
            "--idle-secs" => idle = Duration::from_secs(value.parse().unwrap()),
            other => panic!("unknown flag {other}"),
        }
    }
    Args {
        flinkpilot: flinkpilot.expect("--flinkpilot PATH"),
        fake: fake.expect("--fake PATH"),
        count,
        idle,
    }
}

/// Kills the child when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Total CPU time (user + system) of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields after the command: state is [0]; utime is [11], stime [12]
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn reconciles(metrics_url: &str) -> u64 {
    let body = reqwest::get(metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find(|l| l.starts_with("flinkpilot_reconciles_total{kind=\"FlinkDeployment\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Names of `kind` objects in the namespace.
async fn names<K>(client: &Client) -> HashSet<String>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), NAMESPACE);
    api.list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.name_any())
        .collect()
}

/// How many deployments have every child and a status recording the deploy.
async fn complete(client: &Client) -> usize {
    let jobmanagers = names::<Deployment>(client).await;
    let configs = names::<ConfigMap>(client).await;
    let services = names::<Service>(client).await;
    let deployments: Api<FlinkDeployment> = Api::namespaced(client.clone(), NAMESPACE);
    deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|d| {
            let name = d.name_any();
            let deployed = d
                .status
                .as_ref()
                .and_then(|s| s.reconciliation_status.as_ref())
                .and_then(|r| r.state)
                .is_some_and(|s| s == api::ReconciliationState::Deployed);
            deployed
                && jobmanagers.contains(&name)
                && configs.contains(&format!("flink-config-{name}"))
                && services.contains(&format!("{name}-rest"))
        })
        .count()
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let fake = Guard(
        Command::new(&args.fake)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_file(&kubeconfig).await;

    let http_port = free_port();
    let log = std::fs::File::create(dir.path().join("operator.log")).unwrap();
    let operator = Guard(
        Command::new(&args.flinkpilot)
            .args([
                "operator",
                "--no-leader-election",
                "--http-addr",
                &format!("127.0.0.1:{http_port}"),
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("FLINKPILOT_LOG", "warn")
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pid = operator.0.id();
    let base = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "the operator never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rss_before, _) = memory(pid);

    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = Client::try_from(config).unwrap();
    let api: Api<FlinkDeployment> = Api::namespaced(client.clone(), NAMESPACE);
    let start = Instant::now();
    let ticks_start = cpu_ticks(pid);
    futures::stream::iter(0..args.count)
        .map(|i| {
            let api = api.clone();
            async move {
                let d = FlinkDeployment::test(&format!("fd-{i:04}"))
                    .application()
                    .in_namespace(NAMESPACE);
                api.create(&PostParams::default(), &d).await.unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let created = start.elapsed();

    loop {
        let done = complete(&client).await;
        if done == args.count {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "only {done} of {} complete after {DEADLINE:?}",
            args.count
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converged = start.elapsed();
    let ticks_converged = cpu_ticks(pid) - ticks_start;
    let passes = reconciles(&format!("{base}/metrics")).await;
    let (_, peak) = memory(pid);

    tokio::time::sleep(args.idle).await;
    let (idle_rss, peak_after) = memory(pid);
    let passes_idle = reconciles(&format!("{base}/metrics")).await - passes;
    let ticks_idle = cpu_ticks(pid) - ticks_start - ticks_converged;
    let hz = 100.0; // USER_HZ on Linux
    let mib = |kib: u64| kib as f64 / 1024.0;

    println!("deployments:                         {}", args.count);
    println!(
        "created (64 requests in flight):     {:.2} s",
        created.as_secs_f64()
    );
    println!(
        "all with children and status:        {:.2} s",
        converged.as_secs_f64()
    );
    println!(
        "reconciles until then:               {passes} ({:.0}/s)",
        passes as f64 / converged.as_secs_f64()
    );
    println!(
        "operator CPU until then:             {:.1} s",
        ticks_converged as f64 / hz
    );
    println!(
        "operator RSS before creating:        {:.1} MiB",
        mib(rss_before)
    );
    println!(
        "operator peak RSS (VmHWM):           {:.1} MiB",
        mib(peak.max(peak_after))
    );
    println!(
        "operator RSS after {:>3} s idle:        {:.1} MiB",
        args.idle.as_secs(),
        mib(idle_rss)
    );
    println!(
        "idle: reconciles/s, CPU:             {:.0}/s, {:.1}% of one core",
        passes_idle as f64 / args.idle.as_secs_f64(),
        ticks_idle as f64 / hz / args.idle.as_secs_f64() * 100.0
    );
    drop(operator);
    drop(fake);
}
