//! The call observer: every HTTP call is reported once per attempt with its endpoint as a path
//! template (ids replaced by placeholders), its method, the class of its outcome and its
//! duration. Against a small local server that answers like a JobManager.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use flinkpilot_flink::{
    CallObserver, CallOutcome, ClientConfig, FlinkClient, JobId, ObservedCall, OperationStatus,
    RetryPolicy, SavepointRequest, TriggerId,
};
use serde_json::json;
use tokio::net::TcpListener;

const RUNNING: &str = "0123456789abcdef0123456789abcdef";
const GARBLED: &str = "11111111111111111111111111111111";
const MISSING: &str = "22222222222222222222222222222222";
const TRIGGER: &str = "fedcba9876543210fedcba9876543210";

/// What the observer saw: (endpoint, method, outcome, duration).
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, &'static str, CallOutcome, Duration)>>);

impl CallObserver for Recorder {
    fn observe(&self, call: &ObservedCall<'_>) {
        self.0.lock().unwrap().push((
            call.endpoint.to_string(),
            call.method,
            call.outcome,
            call.duration,
        ));
    }
}

impl Recorder {
    fn take(&self) -> Vec<(String, &'static str, CallOutcome)> {
        self.0
            .lock()
            .unwrap()
            .drain(..)
            .map(|(e, m, o, _)| (e, m, o))
            .collect()
    }
}

fn client(
    url: &str,
    recorder: &Arc<Recorder>,
    timeout: Duration,
    retry: RetryPolicy,
) -> FlinkClient {
    let config = ClientConfig::new(url)
        .unwrap()
        .with_timeout(timeout)
        .with_retry(retry)
        .with_observer(recorder.clone());
    FlinkClient::new(config).unwrap()
}

/// A JobManager look-alike: one running job, one whose state does not decode, one savepoint
/// trigger that completed, and savepoint triggers failing with Flink's 500.
async fn jobmanager() -> String {
    async fn job_status(Path(job): Path<String>) -> impl IntoResponse {
        match job.as_str() {
            RUNNING => (StatusCode::OK, axum::Json(json!({"status": "RUNNING"}))),
            GARBLED => (StatusCode::OK, axum::Json(json!({"status": 7}))),
            _ => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"errors": [format!("Job {job} not found")]})),
            ),
        }
    }
    let app = Router::new()
        .route("/v1/jobs/{job}/status", get(job_status))
        .route(
            "/v1/jobs/{job}/savepoints/{trigger}",
            get(|| async {
                axum::Json(json!({
                    "status": {"id": "COMPLETED"},
                    "operation": {"location": "file:/savepoints/savepoint-0123"}
                }))
            }),
        )
        .route(
            "/v1/jobs/{job}/savepoints",
            post(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"errors": ["Internal server error."]})),
                )
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn calls_are_reported_with_id_free_templates_and_classified_outcomes() {
    let url = jobmanager().await;
    let recorder = Arc::new(Recorder::default());
    let c = client(
        &url,
        &recorder,
        Duration::from_secs(5),
        RetryPolicy::default(),
    );
    let running: JobId = RUNNING.parse().unwrap();
    let trigger: TriggerId = TRIGGER.parse().unwrap();

    c.job_state(&running).await.unwrap();
    let status = c.savepoint_status(&running, &trigger).await.unwrap();
    assert!(
        matches!(status, OperationStatus::Completed(_)),
        "{status:?}"
    );
    c.job_state(&MISSING.parse().unwrap()).await.unwrap_err();
    c.job_state(&GARBLED.parse().unwrap()).await.unwrap_err();
    c.trigger_savepoint(&running, &SavepointRequest::default())
        .await
        .unwrap_err();

    let seen = recorder.take();
    let expected = [
        ("/jobs/:jobid/status", "GET", CallOutcome::Ok),
        ("/jobs/:jobid/savepoints/:triggerid", "GET", CallOutcome::Ok),
        ("/jobs/:jobid/status", "GET", CallOutcome::Http4xx),
        ("/jobs/:jobid/status", "GET", CallOutcome::Decode),
        ("/jobs/:jobid/savepoints", "POST", CallOutcome::Http5xx),
    ];
    let seen_ref: Vec<(&str, &str, CallOutcome)> =
        seen.iter().map(|(e, m, o)| (e.as_str(), *m, *o)).collect();
    assert_eq!(seen_ref, expected, "one report per call, in order");
    for (endpoint, _, _) in &seen {
        for id in [RUNNING, GARBLED, MISSING, TRIGGER] {
            assert!(!endpoint.contains(id), "{endpoint} holds an id");
        }
    }
}

#[tokio::test]
async fn transport_failures_are_reported_per_attempt_as_unreachable_or_timeout() {
    let recorder = Arc::new(Recorder::default());
    // a port nothing listens on
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
    };
    let c = client(
        &format!("http://{closed}"),
        &recorder,
        Duration::from_secs(2),
        retry,
    );
    c.jobs().await.unwrap_err();
    assert_eq!(
        recorder.take(),
        vec![
            ("/jobs".to_string(), "GET", CallOutcome::Unreachable),
            ("/jobs".to_string(), "GET", CallOutcome::Unreachable),
        ],
        "a retried read is reported once per attempt"
    );

    // accepts connections, never answers
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(300);
    let c = client(
        &format!("http://{silent}"),
        &recorder,
        timeout,
        RetryPolicy::none(),
    );
    let job: JobId = RUNNING.parse().unwrap();
    c.cancel_job(&job).await.unwrap_err();
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (endpoint, method, outcome, duration) = &seen[0];
    assert_eq!(
        (endpoint.as_str(), *method, *outcome),
        ("/jobs/:jobid", "PATCH", CallOutcome::Timeout)
    );
    assert!(*duration >= timeout, "{duration:?}");
}
