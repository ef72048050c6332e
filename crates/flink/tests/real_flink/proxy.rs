//! The client behind a path prefix and a bearer token, as through the Kubernetes API-server
//! service proxy: an in-test reverse proxy that checks the token, strips the prefix and
//! forwards to the real JobManager.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use flinkpilot_flink::{ClientConfig, Error, FlinkClient, PollOptions, SavepointRequest};
use testkit::CounterArgs;
use tokio::net::TcpListener;

use crate::harness::{JOB_TIMEOUT, Shared, local_path};

const PREFIX: &str = "/api/v1/namespaces/ns/services/jm-rest:8081/proxy";
const TOKEN: &str = "proxy-secret-token";

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
}

fn kube_status(code: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

async fn forward(
    State(up): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!("Bearer {TOKEN}");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return kube_status(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let Some(rest) = uri.path().strip_prefix(PREFIX) else {
        return kube_status(StatusCode::NOT_FOUND, "services \"other\" not found");
    };
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let mut request = up
        .http
        .request(method, format!("{}{rest}{query}", up.base))
        .body(body);
    if let Some(ct) = headers.get("content-type") {
        request = request.header("content-type", ct);
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    (status, answer.bytes().await.unwrap()).into_response()
}

async fn start_proxy(jobmanager: String) -> String {
    let up = Upstream {
        base: jobmanager,
        http: reqwest::Client::new(),
    };
    let app = Router::new().fallback(any(forward)).with_state(up);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub async fn path_prefix_and_bearer_token_reach_flink_through_a_proxy(shared: &Shared) {
    let proxy = start_proxy(shared.cluster.rest_url()).await;
    let base = format!("{proxy}{PREFIX}/");
    let client =
        FlinkClient::new(ClientConfig::new(&base).unwrap().with_bearer_token(TOKEN)).unwrap();

    let health = client.health().await.unwrap();
    assert_eq!(health.version.raw, shared.version());
    let direct = shared.client();
    let job = shared
        .run_counter(&direct, CounterArgs::default(), 1, None)
        .await;
    assert!(client.jobs().await.unwrap().iter().any(|j| j.id == job));
    // A trigger (POST with a JSON body) and its polling go through the prefix too.
    let poll = PollOptions::new(JOB_TIMEOUT, Duration::from_millis(200));
    let location = client
        .savepoint(&job, &SavepointRequest::default(), poll)
        .await
        .unwrap();
    assert!(local_path(&location).join("_metadata").is_file());

    // Without the token the proxy refuses, and the error says so.
    let anonymous = FlinkClient::new(ClientConfig::new(&base).unwrap()).unwrap();
    let err = anonymous.health().await.unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err}"
    );
    // A wrong service in the proxy path is a missing JobManager, not a missing job.
    let wrong = FlinkClient::new(
        ClientConfig::new(&format!(
            "{proxy}/api/v1/namespaces/ns/services/other/proxy/"
        ))
        .unwrap()
        .with_bearer_token(TOKEN),
    )
    .unwrap();
    let err = wrong.job(&job).await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    direct.cancel_job(&job).await.unwrap();
}
