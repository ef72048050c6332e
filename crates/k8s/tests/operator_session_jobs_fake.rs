//! `FlinkSessionJob`s under `flinkpilot operator`, against the testkit's fake API server: what
//! needs no running Flink (a malformed object, an invalid spec, a job waiting for its session
//! cluster). `operator_session_jobs_flink.rs` runs session jobs in a real Flink.

#![allow(clippy::unwrap_used)]

mod support;

use api::{FlinkDeployment, FlinkSessionJob, JobSpec};
use serde_json::{Value, json};
use support::operator::{self as op, Options, events, wait};
use testkit::kube_fake::FakeApiServer;

const NS: &str = "team-a";
const FINALIZER: &str = "flinksessionjobs.flink.apache.org/finalizer";

fn session_job(server: &FakeApiServer, name: &str) -> Value {
    server
        .get("flink.apache.org/v1beta1", "flinksessionjobs", NS, name)
        .unwrap_or(Value::Null)
}

fn error(server: &FakeApiServer, name: &str) -> String {
    session_job(server, name)["status"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A session job of the local jar `jar` in the session cluster `cluster`.
fn job(name: &str, cluster: &str, jar: &str) -> FlinkSessionJob {
    let mut j = FlinkSessionJob::test(name, cluster).with_job(JobSpec::test(jar));
    j.metadata.namespace = Some(NS.into());
    j
}

#[tokio::test]
async fn a_malformed_session_job_is_reported_once_naming_the_field_and_the_others_go_on() {
    let server = FakeApiServer::start().await.unwrap();
    let mut malformed = serde_json::to_value(job("malformed", "session", "file:///x.jar")).unwrap();
    malformed["spec"]["job"]["parallelism"] = json!("many");
    server.seed(malformed).unwrap();
    server
        .seed(serde_json::to_value(job("fine", "session", "file:///x.jar")).unwrap())
        .unwrap();
    let operator = op::start(&server, Options::new("op-0"));

    wait(&server, "the readable session job is reconciled", |s| {
        error(s, "fine").starts_with("Waiting for the session cluster: ")
    })
    .await;
    wait(&server, "the malformed one is reported", |s| {
        error(s, "malformed").contains("cannot be read")
            && events(s, NS, "malformed")
                .iter()
                .any(|(reason, _)| reason == "ValidationError")
    })
    .await;
    let stored = session_job(&server, "malformed");
    let message = stored["status"]["error"].as_str().unwrap();
    assert!(
        message.contains("spec.job.parallelism"),
        "names the field: {message}"
    );
    assert_eq!(stored["status"]["lifecycleState"], "FAILED");
    assert!(
        stored["metadata"]["finalizers"].is_null(),
        "nothing else is done with it"
    );

    // the same generation is not reported again: the report's own status write comes back
    // through the watch and is not answered by another (checked after the good one has gone
    // on to see its cluster appear)
    let status_writes = |s: &FakeApiServer| {
        s.requests()
            .iter()
            .filter(|r| {
                r.resource == "flinksessionjobs"
                    && r.name.as_deref() == Some("malformed")
                    && r.subresource.as_deref() == Some("status")
                    && r.is_write()
            })
            .count()
    };
    assert_eq!(status_writes(&server), 1);
    server
        .seed(serde_json::to_value(FlinkDeployment::test("session").in_namespace(NS)).unwrap())
        .unwrap();
    wait(&server, "the good one to see its cluster", |s| {
        error(s, "fine").contains("is not ready")
    })
    .await;
    assert_eq!(status_writes(&server), 1, "reported once per generation");
    operator.stop().await;
}

#[tokio::test]
async fn an_invalid_session_job_gets_an_event_and_status_error_and_nothing_is_submitted() {
    let server = FakeApiServer::start().await.unwrap();
    server
        .seed(serde_json::to_value(FlinkDeployment::test("session").in_namespace(NS)).unwrap())
        .unwrap();
    // a jar the operator cannot fetch (local paths and http(s) only)
    server
        .seed(
            serde_json::to_value(job(
                "remote",
                "session",
                "ftp://user:secret@example.com/counter.jar",
            ))
            .unwrap(),
        )
        .unwrap();
    let operator = op::start(&server, Options::new("op-0"));

    wait(&server, "the invalid spec is reported", |s| {
        error(s, "remote").starts_with("Invalid spec, nothing was changed: ")
            && events(s, NS, "remote")
                .iter()
                .any(|(_, note)| note.starts_with("Invalid spec"))
    })
    .await;
    let message = error(&server, "remote");
    assert!(
        message.contains("spec.job.jarURI"),
        "names the field: {message}"
    );
    assert!(
        !message.contains("secret")
            && events(&server, NS, "remote")
                .iter()
                .all(|(_, note)| !note.contains("secret")),
        "the URI's credentials are in no status or event: {message}"
    );
    let stored = session_job(&server, "remote");
    assert!(
        stored["status"]["jobStatus"]["jobId"].is_null(),
        "no job id recorded: {stored}"
    );
    assert!(
        stored["status"]["reconciliationStatus"]["lastReconciledSpec"].is_null(),
        "no target recorded: {stored}"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_session_job_waits_for_its_cluster_is_woken_by_it_and_can_be_deleted_meanwhile() {
    let server = FakeApiServer::start().await.unwrap();
    server
        .seed(serde_json::to_value(job("counter", "session", "file:///jobs/counter.jar")).unwrap())
        .unwrap();
    // no timed passes within the test: only a watch event can wake the job
    let mut options = Options::new("op-0");
    options.engine.observe_interval = std::time::Duration::from_secs(600);
    options.engine.retry_interval = std::time::Duration::from_secs(600);
    let operator = op::start(&server, options);

    wait(&server, "the job waits for the missing cluster", |s| {
        error(s, "counter").starts_with("Waiting for the session cluster: ")
            && error(s, "counter").contains("does not exist")
    })
    .await;
    let stored = session_job(&server, "counter");
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!([FINALIZER]),
        "the finalizer is there before any action"
    );
    assert!(stored["status"]["jobStatus"]["jobId"].is_null(), "{stored}");
    // events are recorded after the status is written
    wait(&server, "an event saying what the job waits for", |s| {
        events(s, NS, "counter")
            .iter()
            .any(|(_, note)| note.contains("does not exist"))
    })
    .await;

    // the session cluster appears and wakes the job; its JobManager never gets ready here (no
    // kubelet)
    server
        .seed(serde_json::to_value(FlinkDeployment::test("session").in_namespace(NS)).unwrap())
        .unwrap();
    wait(&server, "the job waits for the cluster to be ready", |s| {
        error(s, "counter").contains("FlinkDeployment session is not ready")
    })
    .await;
    let stored = session_job(&server, "counter");
    assert!(stored["status"]["jobStatus"]["jobId"].is_null(), "{stored}");

    // deleting it while it waits: nothing runs, the finalizer goes
    let api: kube::Api<FlinkSessionJob> = kube::Api::namespaced(server.client(), NS);
    api.delete("counter", &Default::default()).await.unwrap();
    // the fake keeps an object with a finalizer until it is removed
    wait(
        &server,
        "the finalizer removed and the session job gone",
        |s| session_job(s, "counter").is_null(),
    )
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_session_cluster_is_deleted_only_once_no_session_job_names_it() {
    const DEPLOYMENT_FINALIZER: &str = "flinkdeployments.flink.apache.org/finalizer";
    let server = FakeApiServer::start().await.unwrap();
    server
        .seed(serde_json::to_value(FlinkDeployment::test("session").in_namespace(NS)).unwrap())
        .unwrap();
    server
        .seed(serde_json::to_value(job("counter", "session", "file:///jobs/counter.jar")).unwrap())
        .unwrap();
    let operator = op::start(&server, Options::new("op-0"));
    let cluster = |s: &FakeApiServer| {
        s.get(
            "flink.apache.org/v1beta1",
            "flinkdeployments",
            NS,
            "session",
        )
        .unwrap_or(Value::Null)
    };
    wait(&server, "the session cluster to get the finalizer", |s| {
        cluster(s)["metadata"]["finalizers"] == json!([DEPLOYMENT_FINALIZER])
    })
    .await;

    let deployments: kube::Api<FlinkDeployment> = kube::Api::namespaced(server.client(), NS);
    deployments
        .delete("session", &Default::default())
        .await
        .unwrap();
    wait(&server, "the deletion held, naming the session job", |s| {
        cluster(s)["status"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("FlinkSessionJob(s) counter"))
            && events(s, NS, "session")
                .iter()
                .any(|(reason, note)| reason == "CleanupFailed" && note.contains("counter"))
    })
    .await;
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.resource == "deployments" && r.verb == testkit::kube_fake::Verb::Delete),
        "the cluster is left alone while the job names it"
    );

    let jobs: kube::Api<FlinkSessionJob> = kube::Api::namespaced(server.client(), NS);
    jobs.delete("counter", &Default::default()).await.unwrap();
    wait(
        &server,
        "the session job and then its cluster to be gone",
        |s| session_job(s, "counter").is_null() && cluster(s).is_null(),
    )
    .await;
    operator.stop().await;
}
