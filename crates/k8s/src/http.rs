//! The operator's plain-HTTP endpoints, for the kubelet and Prometheus:
//!
//! - `GET /healthz`: 200 while the process serves requests at all (liveness).
//! - `GET /readyz`: 200 once the [`Readiness`] flag is set, 503 before (readiness).
//! - `GET /metrics`: the [`Registry`] in the OpenMetrics text format
//!   (see [`crate::metrics::Metrics`] for the operator's own families).
//!
//! What "ready" means: this replica can do its job. The controller sets the flag once its
//! watches have synced their caches. With leader election, a standby replica (one that does not
//! hold the lease) sets it as soon as its own caches (those the admission webhook reads) have
//! synced: readiness never depends on leadership, so both replicas stay behind the webhook and
//! metrics Services and a failover does not wait for a readiness probe.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// Content type of the OpenMetrics text exposition that prometheus-client writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A shared "this replica is ready" flag. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets or clears the flag.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the flag is set.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the handlers share: the metrics registry and the readiness flag.
#[derive(Clone, Debug)]
pub struct HttpState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

impl HttpState {
    /// State serving `registry` (complete: nothing can be registered after this) and
    /// `readiness`.
    pub fn new(registry: Registry, readiness: Readiness) -> Self {
        Self {
            registry: Arc::new(registry),
            readiness,
        }
    }
}

/// The router: `/healthz`, `/readyz`, `/metrics`.
pub fn app(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced yet\n",
        )
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(_) => {
            tracing::error!("could not encode the metrics registry");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not encode the metrics\n",
            )
                .into_response()
        }
    }
}

/// The health and metrics server failed.
#[derive(Debug, thiserror::Error)]
#[error("the health and metrics server on {addr} failed: {source}")]
pub struct ServeError {
    /// Address it listened on.
    pub addr: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Serves [`app`] on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
    tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, ResourceKind};
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_path(app: Router, path: &str) -> (StatusCode, Option<String>, String) {
        let resp = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, ctype, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_answers_ok_even_before_ready() {
        let state = HttpState::new(Registry::default(), Readiness::new());
        let (status, _, body) = get_path(app(state), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ok\n");
    }

    #[tokio::test]
    async fn readyz_follows_the_shared_flag() {
        let readiness = Readiness::new();
        let router = app(HttpState::new(Registry::default(), readiness.clone()));
        let (status, _, _) = get_path(router.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        readiness.set_ready(true);
        let (status, _, body) = get_path(router.clone(), "/readyz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
        readiness.set_ready(false);
        let (status, _, _) = get_path(router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn metrics_serves_the_registry_as_openmetrics_text() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        drop(metrics.reconcile_started(ResourceKind::FlinkDeployment));
        let router = app(HttpState::new(registry, Readiness::new()));
        let (status, ctype, body) = get_path(router, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(
            body.contains("flinkpilot_reconciles_total{kind=\"FlinkDeployment\"} 1\n"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[tokio::test]
    async fn serve_answers_on_a_socket_and_stops_on_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            HttpState::new(Registry::default(), Readiness::new()),
            async {
                let _ = stopped.await;
            },
        ));
        let body = reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok\n");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
