//! The client's transport against things that are not a JobManager: a closed port, a server
//! that never answers, a plain HTTP server, a server that is always unavailable. These need
//! no Flink; everything that does is in `real_flink.rs`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::any;
use flinkpilot_flink::{ClientConfig, Error, FlinkClient, JobId, RetryPolicy, SavepointRequest};
use tokio::net::TcpListener;

fn client(url: &str, timeout: Duration, retry: RetryPolicy) -> FlinkClient {
    FlinkClient::new(
        ClientConfig::new(url)
            .unwrap()
            .with_timeout(timeout)
            .with_retry(retry),
    )
    .unwrap()
}

/// A port nothing listens on: bound, then released.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Serves `app` on a free local port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn closed_port_is_unreachable_within_the_configured_timeout() {
    let timeout = Duration::from_secs(2);
    let url = format!("http://127.0.0.1:{}", closed_port().await);
    let started = Instant::now();
    let err = client(&url, timeout, RetryPolicy::default())
        .health()
        .await
        .unwrap_err();
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("GET /v1/config"), "{text}");
    assert!(text.contains(&url), "{text}");
}

#[tokio::test]
async fn server_that_never_answers_times_out_after_the_configured_timeout() {
    // Accepts connections and reads, but never writes a byte back.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = client(&url, timeout, RetryPolicy::none())
        .jobs()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == timeout),
        "{err}"
    );
    assert!(
        elapsed >= timeout && elapsed < timeout * 4,
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn plain_http_server_is_not_flink() {
    let url = serve(Router::new().fallback(any(|| async { "hello, I am a web server" }))).await;
    let c = client(&url, Duration::from_secs(5), RetryPolicy::none());
    let err = c.health().await.unwrap_err();
    assert!(matches!(err, Error::NotFlink { .. }), "{err}");
    // Every other call notices too, not just the health check.
    let err = c.jobs().await.unwrap_err();
    assert!(matches!(err, Error::NotFlink { .. }), "{err}");

    let url = serve(Router::new().fallback(any(|| async {
        (StatusCode::NOT_FOUND, "<html>no such page</html>")
    })))
    .await;
    let c = client(&url, Duration::from_secs(5), RetryPolicy::none());
    let err = c.health().await.unwrap_err();
    assert!(matches!(err, Error::NotFlink { .. }), "{err}");
    let job: JobId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    // A 404 from something else must not read as "job not found".
    let err = c.job(&job).await.unwrap_err();
    assert!(matches!(err, Error::NotFlink { .. }), "{err}");
}

#[tokio::test]
async fn json_server_without_a_flink_version_is_not_flink() {
    let url = serve(Router::new().fallback(any(|| async {
        axum::Json(serde_json::json!({"status": "ok"}))
    })))
    .await;
    let err = client(&url, Duration::from_secs(5), RetryPolicy::none())
        .health()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFlink { .. }), "{err}");
}

/// A server that answers 503 to everything and counts requests by method.
async fn unavailable_server() -> (String, Arc<AtomicU32>, Arc<AtomicU32>) {
    let gets = Arc::new(AtomicU32::new(0));
    let posts = Arc::new(AtomicU32::new(0));
    let (g, p) = (gets.clone(), posts.clone());
    let app = Router::new().fallback(any(move |method: Method| {
        let (g, p) = (g.clone(), p.clone());
        async move {
            if method == Method::GET {
                g.fetch_add(1, Ordering::SeqCst);
            } else {
                p.fetch_add(1, Ordering::SeqCst);
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"errors": ["Service temporarily unavailable due to an ongoing leader election. Please refresh."]})),
            )
        }
    }));
    (serve(app).await, gets, posts)
}

#[tokio::test]
async fn reads_are_retried_but_a_savepoint_trigger_is_sent_once() {
    let (url, gets, posts) = unavailable_server().await;
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    };
    let c = client(&url, Duration::from_secs(5), retry);

    let err = c.jobs().await.unwrap_err();
    assert!(matches!(err, Error::Flink { status: 503, .. }), "{err}");
    assert!(err.to_string().contains("leader election"), "{err}");
    assert_eq!(
        gets.load(Ordering::SeqCst),
        3,
        "a GET is tried max_attempts times"
    );

    let job: JobId = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let err = c
        .trigger_savepoint(&job, &SavepointRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Flink { status: 503, .. }), "{err}");
    assert_eq!(
        posts.load(Ordering::SeqCst),
        1,
        "a trigger is never repeated"
    );
    assert_eq!(gets.load(Ordering::SeqCst), 3);
}
