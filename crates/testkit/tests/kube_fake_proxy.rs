//! Bearer-token authentication and the service proxy of the fake API server, through plain
//! HTTP (what `--rest-via-apiserver` sends) and the real kube client.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use flinkpilot_testkit::kube_fake::{FakeApiServer, Verb};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const TOKEN: &str = "t0ken-for-tests";
const NS: &str = "team-a";

/// A backend that answers with what it received.
async fn echo() -> SocketAddr {
    let app = Router::new().fallback(
        |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            axum::Json(json!({
                "method": method.as_str(),
                "path": uri.path(),
                "query": uri.query(),
                "authorization": headers.get("authorization").is_some(),
                "body": String::from_utf8_lossy(&body),
            }))
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn proxy_url(server: &FakeApiServer, service: &str, rest: &str) -> String {
    format!(
        "{}/api/v1/namespaces/{NS}/services/{service}/proxy{rest}",
        server.url()
    )
}

async fn call(method: reqwest::Method, url: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn requests_without_the_bearer_token_are_unauthorized_and_the_client_carries_it() {
    let server = FakeApiServer::builder()
        .bearer_token(TOKEN)
        .start()
        .await
        .unwrap();
    let url = format!("{}/api/v1/namespaces/{NS}/configmaps", server.url());
    for token in [None, Some("wrong")] {
        let (status, body) = call(reqwest::Method::GET, &url, token, "").await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Unauthorized");
    }
    let (status, _) = call(reqwest::Method::GET, &url, Some(TOKEN), "").await;
    assert_eq!(status, 200);
    // the fake's own client is configured with the token
    server.client().apiserver_version().await.unwrap();
    // without authentication configured, anything goes
    let open = FakeApiServer::start().await.unwrap();
    let url = format!("{}/api/v1/namespaces/{NS}/configmaps", open.url());
    assert_eq!(call(reqwest::Method::GET, &url, None, "").await.0, 200);
}

#[tokio::test]
async fn the_service_proxy_forwards_to_the_registered_endpoint_like_the_api_server() {
    let server = FakeApiServer::builder()
        .bearer_token(TOKEN)
        .start()
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(server.client(), NS);
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "jm-rest", "namespace": NS},
        "spec": {"ports": [{"name": "rest", "port": 8081}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();

    // an unknown Service
    let (status, body) = call(
        reqwest::Method::GET,
        &proxy_url(&server, "nope:8081", "/v1/jobs"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["message"], "services \"nope\" not found");
    // a known Service without endpoints
    let jobs = proxy_url(&server, "jm-rest:8081", "/v1/jobs?x=1");
    let (status, body) = call(reqwest::Method::GET, &jobs, Some(TOKEN), "").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("ServiceUnavailable")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no endpoints available"),
        "{body}"
    );

    let backend = echo().await;
    server
        .service_proxy()
        .set(NS, "jm-rest", &format!("http://{backend}"));
    let (status, body) = call(reqwest::Method::GET, &jobs, Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/v1/jobs");
    assert_eq!(body["query"], "x=1");
    assert_eq!(
        body["authorization"], false,
        "the caller's credentials stay with the API server"
    );
    // by port name, with a scheme, and a write with its body
    let trigger = proxy_url(&server, "http:jm-rest:rest", "/v1/jobs/abc/savepoints");
    let (status, body) = call(reqwest::Method::POST, &trigger, Some(TOKEN), "{\"a\":1}").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["method"].as_str(), body["body"].as_str()),
        (Some("POST"), Some("{\"a\":1}"))
    );
    // a port the Service does not declare
    let (status, body) = call(
        reqwest::Method::GET,
        &proxy_url(&server, "jm-rest:9999", "/v1/jobs"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    // the proxy needs the token like everything else
    let (status, _) = call(reqwest::Method::GET, &jobs, None, "").await;
    assert_eq!(status, 401);
    // the backend is down
    server
        .service_proxy()
        .set(NS, "jm-rest", &format!("http://{}", closed_port().await));
    let (status, body) = call(reqwest::Method::GET, &jobs, Some(TOKEN), "").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (503, Some("ServiceUnavailable")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("error trying to reach service"),
        "{body}"
    );

    // the request log names them as RBAC sees them: get/create on services/proxy
    let proxied: Vec<(Verb, u16)> = server
        .requests()
        .iter()
        .filter(|r| r.subresource.as_deref() == Some("proxy"))
        .map(|r| {
            assert_eq!(r.resource, "services");
            (r.verb, r.status)
        })
        .collect();
    assert_eq!(
        proxied,
        vec![
            (Verb::Get, 404),
            (Verb::Get, 503),
            (Verb::Get, 200),
            (Verb::Create, 200),
            (Verb::Get, 503),
            (Verb::Get, 503),
        ],
        "the unauthenticated request never reached the proxy"
    );
}
