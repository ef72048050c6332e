//! The few Flink REST calls these tests need, kept local on purpose: the typed client lives
//! in `crates/flink`, and the testkit must not depend on what it tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use flinkpilot_testkit::{SessionCluster, TestJob, wait_for};
use serde_json::{Value, json};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Uploads the job's jar and runs it; returns the job id.
pub async fn submit(
    cluster: &SessionCluster,
    job: &TestJob,
    args: &[String],
    parallelism: u32,
) -> String {
    let client = client();
    let jar = std::fs::read(&job.jar).unwrap();
    let part = reqwest::multipart::Part::bytes(jar)
        .file_name(format!("{}.jar", job.name))
        .mime_str("application/x-java-archive")
        .unwrap();
    let form = reqwest::multipart::Form::new().part("jarfile", part);
    let upload: Value = client
        .post(format!("{}/jars/upload", cluster.rest_url()))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let filename = upload["filename"]
        .as_str()
        .unwrap_or_else(|| panic!("upload failed: {upload}"));
    let jar_id = filename.rsplit('/').next().unwrap();

    let response = client
        .post(format!("{}/jars/{jar_id}/run", cluster.rest_url()))
        .json(&json!({
            "entryClass": job.entry_class,
            "programArgsList": args,
            "parallelism": parallelism,
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(
        status.is_success(),
        "running {} failed ({status}): {body}",
        job.name
    );
    body["jobid"].as_str().unwrap().to_string()
}

/// The job's state (`RUNNING`, `FAILED`, …).
pub async fn job_state(cluster: &SessionCluster, job_id: &str) -> String {
    let body: Value = client()
        .get(format!("{}/jobs/{job_id}", cluster.rest_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["state"]
        .as_str()
        .unwrap_or_else(|| panic!("no state in {body}"))
        .to_string()
}

/// Waits until the job reaches `state`; panics earlier if it reaches another terminal state.
pub async fn wait_for_state(
    cluster: &SessionCluster,
    job_id: &str,
    state: &str,
    timeout: Duration,
) {
    let what = format!("job {job_id} to be {state}");
    wait_for(timeout, &what, async || {
        let current = job_state(cluster, job_id).await;
        let terminal = ["FAILED", "CANCELED", "FINISHED"].contains(&current.as_str());
        assert!(
            current == state || !terminal,
            "job {job_id} is {current}, expected {state}\n{}",
            cluster.log_tails(40)
        );
        (current == state).then_some(())
    })
    .await;
}

/// The raw `/jobs/:id/exceptions` response, as text.
pub async fn exceptions(cluster: &SessionCluster, job_id: &str) -> String {
    client()
        .get(format!("{}/jobs/{job_id}/exceptions", cluster.rest_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Cancels the job and waits until it is CANCELED.
pub async fn cancel(cluster: &SessionCluster, job_id: &str) {
    let response = client()
        .patch(format!("{}/jobs/{job_id}?mode=cancel", cluster.rest_url()))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "cancel {job_id}: {}",
        response.status()
    );
    wait_for_state(cluster, job_id, "CANCELED", Duration::from_secs(60)).await;
}
